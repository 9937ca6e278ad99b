#!/usr/bin/env bash
# `handoff sync` with 200 unread messages behind a link with a 50 ms round trip (bench/sync/delay_proxy.py:
# 25 ms each way on loopback) against the seed's naive Python loop (bench/sync/naive_loop.py: GET unread,
# then one POST per ack, no connection reuse) through the same proxy, in the same run, against both
# `handoff bus serve` (batch ack) and the original Flask bus (tests/fixtures/original_bus.py: concurrent
# per-id acks). Reports wall times (best of RUNS), the ratio, and HTTP requests and TCP connections per
# run as the proxy counted them. Prints a markdown section; with --write, replaces it in BENCHMARKS.md.
# Usage: bash bench/sync/run.sh [--write] [RUNS]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
. "$here/bench/lib.sh"
write=""
if [ "${1:-}" = "--write" ]; then write=1; shift; fi
runs=${1:-3}
n=200
delay_ms=25
venv="$here/.test-tools/venv"
py="$venv/bin/python"
[ -x "$py" ] || { echo "python venv missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
"$py" -c 'import flask, requests' 2>/dev/null || { echo "flask/requests missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
bin=$(handoff_bin)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export BUS_USER=claude BUS_PASS=bench-pass

start_handoff() { # -> sets bus_port
  "$bin" bus serve --listen 127.0.0.1:0 --data "$work/serve-data" > "$work/serve.out" 2>"$work/serve.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q http "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  bus_port=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | sed 's/.*://')
}
start_flask() { # -> sets bus_port
  bus_port=$(free_port)
  BUS_DATA="$work/flask.jsonl" PORT=$bus_port "$py" tests/fixtures/original_bus.py >"$work/flask.log" 2>&1 &
  pids+=($!)
  wait_port "$bus_port"
}
start_proxy() { # -> sets proxy_port
  proxy_port=$(free_port)
  "$py" bench/sync/delay_proxy.py "$proxy_port" "$bus_port" "$delay_ms" "$work/counts" &
  pids+=($!)
  wait_port "$proxy_port"
}
stop_pids() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
fill() { # READER: posts $n messages for READER straight to the bus (not through the proxy)
  "$py" - "$1" "$bus_port" "$n" <<'PY'
import sys, requests
reader, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = requests.Session()
s.auth = ("claude", "bench-pass")
for i in range(n):
    s.post(f"http://127.0.0.1:{port}/post", json={"from": "bench", "to": reader, "body": f"message {i} for {reader}: " + "x" * 200}).raise_for_status()
PY
}
now() { date +%s.%N; }
counts() { cat "$work/counts"; }

measure() { # LABEL -> appends a table row
  local label=$1 best_sync="" best_loop="" rt_sync="" rt_loop="" t0 t1 before after
  for r in $(seq "$runs"); do
    # handoff sync, as machine s$r, with its own data dir and the env file users have
    local home="$work/home-$label-$r"
    mkdir -p "$home/.secrets"
    printf 'BUS_USER=claude\nBUS_PASS=bench-pass\nBUS_URL=http://127.0.0.1:%s\n' "$proxy_port" > "$home/.secrets/claude-bus.env"
    chmod 600 "$home/.secrets/claude-bus.env"
    fill "s$r"
    before=$(counts)
    t0=$(now)
    env -u BUS_URL -u BUS_USER -u BUS_PASS HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
      "$bin" sync --machine "s$r" --json > "$work/sync.json"
    t1=$(now)
    after=$(counts)
    got=$(grep -c '"body"' "$work/sync.json" || true)
    [ "$got" -ge "$n" ] || { echo "sync showed $got of $n messages" >&2; exit 1; }
    best_sync=$(faster "$best_sync" "$(echo "$t1 - $t0" | bc -l)")
    rt_sync="$(( ${after#* } - ${before#* } )) requests, $(( ${after% *} - ${before% *} )) connection(s)"
    # the naive loop, as machine l$r
    fill "l$r"
    before=$(counts)
    t0=$(now)
    BUS_URL="http://127.0.0.1:$proxy_port" "$py" bench/sync/naive_loop.py "l$r" > /dev/null 2>&1
    t1=$(now)
    after=$(counts)
    best_loop=$(faster "$best_loop" "$(echo "$t1 - $t0" | bc -l)")
    rt_loop="$(( ${after#* } - ${before#* } )) requests, $(( ${after% *} - ${before% *} )) connection(s)"
  done
  ratio=$(echo "$best_sync / $best_loop" | bc -l)
  rows+=$(printf '| %s | %.2f s (%s) | %.2f s (%s) | %.3f× |' "$label" "$best_sync" "$rt_sync" "$best_loop" "$rt_loop" "$ratio")$'\n'
}

case "$bin" in */debug/*) build="Debug build (\$HANDOFF_BIN)";; *) build="Release build";; esac
rows=""
start_handoff; start_proxy; measure "handoff bus serve (batch ack)"; stop_pids
start_flask; start_proxy; measure "original Flask bus (concurrent acks)"; stop_pids

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
section="<!-- sync-bench:start -->
## Session start behind a 50 ms round trip (bench/sync/run.sh)

Machine: $machine; $(date -u +%Y-%m-%d). $build; best of $runs runs.
$n unread messages (~230 bytes each) through bench/sync/delay_proxy.py (${delay_ms} ms added each way on
loopback, connecting costs one round trip too). Requests and connections are counted by the proxy.

| bus | \`handoff sync\` (whole process) | naive Python loop (GET, then POST per ack) | ratio (sync/loop) |
|---|---|---|---|
$rows
Target: ≤ 0.1× the loop. Run: \`bash bench/sync/run.sh --write\`.
<!-- sync-bench:end -->"
echo "$section"
if [ -n "$write" ]; then
  SECTION="$section" python3 - <<'PY'
import os, re
p = "BENCHMARKS.md"
s = open(p).read()
new = os.environ["SECTION"]
if "<!-- sync-bench:start -->" in s:
    s = re.sub(r"<!-- sync-bench:start -->.*?<!-- sync-bench:end -->", lambda _: new, s, flags=re.S)
else:
    s = s.rstrip("\n") + "\n\n" + new + "\n"
open(p, "w").write(s)
PY
fi
