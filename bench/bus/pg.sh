#!/usr/bin/env bash
# Bus on PostgreSQL (issue 9): durable POST throughput (64 clients) and unread-query latency, on the
# embedded store and on PostgreSQL with one and with two `bus serve` replicas, all in the same run.
# PostgreSQL runs with its defaults (fsync on, synchronous_commit on): a 200 means committed to disk.
# Prints a markdown section for BENCHMARKS.md.
# Usage: bash bench/bus/pg.sh [--quick]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
quick=${1:-}
dur=10; n=100000
if [ "$quick" = "--quick" ]; then dur=3; n=20000; fi
bash scripts/install-test-deps.sh >/dev/null
cargo build --release --quiet --bin handoff
bin="${CARGO_TARGET_DIR:-$here/target}/release/handoff"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
chmod 755 "$work"
pids=()
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$work/pg" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export BUS_PASS=bench-pass BUS_USER=claude
export BUS_AUTH_B64=$(printf 'claude:%s' "$BUS_PASS" | base64 -w0)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL: its own cluster, password auth, on a free loopback port
export PGPASSWORD=bench-pg-pass
pgport=$(free_port)
mkdir "$work/pg"; echo "$PGPASSWORD" > "$work/pw"
[ ${#as_pg[@]} -gt 0 ] && chown nobody "$work/pg" "$work/pw"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U handoff --auth=scram-sha-256 --pwfile="$work/pw" -E UTF8 >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pgport -c listen_addresses=127.0.0.1 -k $work/pg -c max_connections=200" start >/dev/null
pg_url() { echo "postgres://handoff@127.0.0.1:$pgport/$1?sslmode=disable"; }
newdb() { "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U handoff -d postgres -qc "CREATE DATABASE $1"; }

serve() { # store args... -> prints URL
  local out="$work/serve.$RANDOM"
  "$bin" bus serve --listen 127.0.0.1:0 "$@" > "$out" 2>"$out.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q http "$out" 2>/dev/null && break; sleep 0.1; done
  grep -o 'http://[0-9.:]*' "$out"
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
rps() { grep 'Requests/sec' | awk '{print $2}'; }
p50() { grep -E '^ +50%' | awk '{print $2}'; }
p99() { grep -E '^ +99%' | awk '{print $2}'; }
to_ms() { python3 -c "import sys; v=sys.argv[1]; u=v.lstrip('0123456789.'); n=float(v[:len(v)-len(u)]); print(round(n*{'us':0.001,'ms':1,'s':1000}[u],3))" "$1"; }
count() { curl -s -u "claude:$BUS_PASS" "$1/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }

echo "## Bus on PostgreSQL (bench/bus/pg.sh$([ -n "$quick" ] && echo " $quick"))"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)."
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on the same machine (defaults: fsync and synchronous_commit on), loopback TCP."
echo "wrk, the replicas and PostgreSQL share the same cores (shared with other work: figures are indicative)."
echo

# 1. durable POST throughput, 64 concurrent clients in total
u=$(serve --data "$work/sqlite-post")
s_rps=$(wrk -t2 -c64 -d${dur}s -s bench/bus/post.lua "$u" | rps); s_n=$(count "$u")
stop_all
newdb post1
u=$(serve --store "$(pg_url post1)")
p1_rps=$(wrk -t2 -c64 -d${dur}s -s bench/bus/post.lua "$u" | rps); p1_n=$(count "$u")
stop_all
newdb post2
ua=$(serve --store "$(pg_url post2)"); ub=$(serve --store "$(pg_url post2)")
wrk -t1 -c32 -d${dur}s -s bench/bus/post.lua "$ua" > "$work/wa" & wa=$!
wrk -t1 -c32 -d${dur}s -s bench/bus/post.lua "$ub" > "$work/wb" & wb=$!
wait $wa $wb
p2_rps=$(python3 -c "print(round($(rps < "$work/wa") + $(rps < "$work/wb"), 2))"); p2_n=$(count "$ua")
stop_all
echo "| POST /post, 64 clients, ${dur}s, 200 only after commit | posts/s | stored | vs embedded |"
echo "|---|---|---|---|"
echo "| embedded store (SQLite, group commit) | $s_rps | $s_n | 1× |"
echo "| PostgreSQL, 1 replica | $p1_rps | $p1_n | $(python3 -c "print(round($p1_rps/$s_rps,2))")× |"
echo "| PostgreSQL, 2 replicas (32 clients each) | $p2_rps | $p2_n | $(python3 -c "print(round($p2_rps/$s_rps,2))")× |"
echo

# 2. unread-query latency: n stored messages, m0 has read all but its last few
python3 bench/bus/gen.py "$n" > "$work/gen.jsonl"
"$bin" bus import "$work/gen.jsonl" --data "$work/sqlite-read" >/dev/null
newdb readdb
"$bin" bus import "$work/gen.jsonl" --store "$(pg_url readdb)" >/dev/null
export BUS_GET_PATH="/messages?to=m0&unread_by=m0"
u=$(serve --data "$work/sqlite-read")
wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$u" > "$work/ls"
stop_all
u=$(serve --store "$(pg_url readdb)")
wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$u" > "$work/l1"
stop_all
ua=$(serve --store "$(pg_url readdb)"); ub=$(serve --store "$(pg_url readdb)")
wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$ua" > "$work/l2a" & wa=$!
wrk -t1 -c1 -d${dur}s --latency -s bench/bus/get.lua "$ub" > "$work/l2b" & wb=$!
wait $wa $wb
stop_all
row() { echo "| $1 | $(to_ms "$(p50 < "$2")") ms | $(to_ms "$(p99 < "$2")") ms | $(rps < "$2") |"; }
echo "| GET /messages?to=m0&unread_by=m0, $n stored, 1 client per replica | median | p99 | queries/s |"
echo "|---|---|---|---|"
row "embedded store" "$work/ls"
row "PostgreSQL, 1 replica" "$work/l1"
row "PostgreSQL, 2 replicas: replica A" "$work/l2a"
row "PostgreSQL, 2 replicas: replica B" "$work/l2b"
echo
