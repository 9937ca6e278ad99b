"""The seed's naive session-start loop, as users ran it before handoff: GET the unread messages, then one
POST per message to ack it, with plain `requests` calls (no session, so no connection reuse).

Usage: BUS_URL=... BUS_USER=... BUS_PASS=... python3 naive_loop.py READER"""
import os, sys
import requests

url, auth, me = os.environ["BUS_URL"].rstrip("/"), (os.environ["BUS_USER"], os.environ["BUS_PASS"]), sys.argv[1]
msgs = requests.get(f"{url}/messages", params={"to": me, "unread_by": me, "limit": 500}, auth=auth).json()["messages"]
for m in msgs:
    print(f"[{m['id']}] {m['from']}: {m['body'][:80]}")
    requests.post(f"{url}/ack/{m['id']}", json={"reader": me}, auth=auth).raise_for_status()
print(f"{len(msgs)} message(s)", file=sys.stderr)
