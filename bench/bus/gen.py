"""Writes N messages in the original's JSON-lines format: 20 machines plus broadcasts; machine m0 has
read everything except its last 5 messages (a realistic inbox: long history, little unread)."""
import json, sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(1, n + 1):
    to = "any" if i % 10 == 0 else f"m{i % 20}"
    m = {"id": i, "ts": "2026-11-01T00:00:00", "from": f"m{(i + 1) % 20}", "to": to, "body": f"message {i} " + "x" * 200, "tags": []}
    if i < n - 200:
        m["read_by"] = ["m0"]
    out.write(json.dumps(m) + "\n")
