#!/usr/bin/env bash
# Bus benchmarks (issue 2): durable POST throughput with 64 clients, unread-query latency at 1k/100k/1M
# stored messages, and `handoff sync` with nothing new vs the curl + jq one-liner — each side by side with
# the Flask-style bus or curl in the same run. Prints a markdown section for BENCHMARKS.md.
# Usage: bash bench/bus/run.sh [--quick]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
quick=${1:-}
dur=10; sizes="1000 100000 1000000"
if [ "$quick" = "--quick" ]; then dur=3; sizes="1000 100000"; fi
bash scripts/install-test-deps.sh >/dev/null
venv="$here/.test-tools/venv"
"$venv/bin/python" -c 'import flask' 2>/dev/null || "$venv/bin/pip" install -q flask
cargo build --release --quiet --bin handoff
bin="${CARGO_TARGET_DIR:-$here/target}/release/handoff"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export BUS_PASS=bench-pass BUS_USER=claude
export BUS_AUTH_B64=$(printf 'claude:%s' "$BUS_PASS" | base64 -w0)

start_handoff() { # data dir -> sets URL
  BUS_PASS=$BUS_PASS "$bin" bus serve --listen 127.0.0.1:0 --data "$1" > "$work/serve.out" 2>"$work/serve.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q http "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(grep -o 'http://[0-9.:]*' "$work/serve.out")
}
start_flask() { # data file -> sets URL
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BUS_DATA="$1" PORT=$port "$venv/bin/python" tests/fixtures/original_bus.py >"$work/flask.log" 2>&1 &
  pids+=($!)
  URL="http://127.0.0.1:$port"
  for _ in $(seq 600); do curl -sf -u "claude:$BUS_PASS" "$URL/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "flask bus did not start" >&2; exit 1
}
stop_last() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }
rps() { grep 'Requests/sec' | awk '{print $2}'; }
p50() { grep -E '^ +50%' | awk '{print $2}'; }
to_ms() { python3 -c "import sys; v=sys.argv[1]; u=v.lstrip('0123456789.'); n=float(v[:len(v)-len(u)]); print(round(n*{'us':0.001,'ms':1,'s':1000}[u],3))" "$1"; }

echo "## Bus (bench/bus/run.sh$([ -n "$quick" ] && echo " $quick"))"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)."
echo "Load generator (wrk) runs on the same cores as the server."
echo

# 1. durable POST throughput, 64 concurrent clients
start_handoff "$work/h-post"
h=$(wrk -t2 -c64 -d${dur}s -s bench/bus/post.lua "$URL" | rps)
stored=$(curl -s -u "claude:$BUS_PASS" "$URL/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
stop_last
start_flask "$work/flask-post.jsonl"
f=$(wrk -t2 -c64 -d${dur}s -s bench/bus/post.lua "$URL" | rps)
stop_last
echo "| POST /post, 64 clients, ${dur}s | handoff bus serve (fsync per group) | Flask bus (no fsync) | ratio |"
echo "|---|---|---|---|"
echo "| posts/s | $h ($stored stored) | $f | $(python3 -c "print(round($h/$f,1))")× |"
echo

# 2. unread query latency by store size
echo "| GET /messages?to=m0&unread_by=m0, median latency | handoff | Flask bus | ratio (Flask/handoff) |"
echo "|---|---|---|---|"
first=""
for n in $sizes; do
  python3 bench/bus/gen.py "$n" > "$work/gen-$n.jsonl"
  "$bin" bus import "$work/gen-$n.jsonl" --data "$work/h-$n" >/dev/null
  start_handoff "$work/h-$n"
  export BUS_GET_PATH="/messages?to=m0&unread_by=m0"
  hl=$(to_ms "$(wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$URL" | p50)")
  stop_last
  [ -z "$first" ] && first=$hl
  if [ "$n" -le 100000 ]; then
    start_flask "$work/gen-$n.jsonl"
    fl=$(to_ms "$(wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$URL" | p50)")
    stop_last
    ratio=$(python3 -c "print(round($fl/$hl,1))")
  else
    fl="not run"; ratio="—"
  fi
  echo "| $n messages | ${hl} ms ($(python3 -c "print(round($hl/$first,2))")× the 1k figure) | ${fl} ms | $ratio |"
done
echo

# 3. handoff sync (nothing new), whole process, vs the curl + jq one-liner doing the same GET
start_handoff "$work/h-sync"
home="$work/home"; mkdir -p "$home/.secrets"
printf 'BUS_USER=claude\nBUS_PASS=%s\nBUS_URL=%s\n' "$BUS_PASS" "$URL" > "$home/.secrets/claude-bus.env"
chmod 600 "$home/.secrets/claude-bus.env"
curl -s -u "claude:$BUS_PASS" -H 'Content-Type: application/json' -d '{"from":"other","to":"idle","body":"old"}' "$URL/post" >/dev/null
run_env="env -u BUS_PASS -u BUS_USER HOME=$home XDG_DATA_HOME=$work/xdg-data XDG_CONFIG_HOME=$work/xdg-config"
$run_env "$bin" --machine idle sync >/dev/null
hyperfine -N --warmup 5 --runs 50 --export-json "$work/sync.json" \
  "$run_env $bin --machine idle sync" \
  "bash -c 'source $home/.secrets/claude-bus.env; curl -s -u \"\$BUS_USER:\$BUS_PASS\" \"\$BUS_URL/messages?to=idle&unread_by=idle\" | jq -r \".messages[].body\"'" >/dev/null
read -r hs cs < <(python3 -c "import json; r=json.load(open('$work/sync.json'))['results']; print(round(r[0]['median']*1000,2), round(r[1]['median']*1000,2))")
echo "| whole process, nothing new, median of 50 | handoff sync | curl + jq one-liner | ratio (handoff/curl) |"
echo "|---|---|---|---|"
echo "| wall time | ${hs} ms | ${cs} ms | $(python3 -c "print(round($hs/$cs,2))") |"
