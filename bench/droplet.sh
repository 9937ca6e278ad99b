#!/usr/bin/env bash
# Droplet channel benchmark: a 1 GiB upload through `handoff send --via droplet` (openssh mux + SFTP)
# side by side with `scp` to the same sshd in the same run, with peak RSS. The sshd is a real one on
# loopback with its own host key, as in the tests. Writes its results into BENCHMARKS.md between the
# droplet markers.
#
#   bash bench/droplet.sh            # 1 GiB
#   SIZE_MIB=256 RUNS=3 bash bench/droplet.sh
#   HANDOFF_BIN=path/to/release/handoff bash bench/droplet.sh   # an already built binary
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
. "$here/bench/lib.sh"
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
handoff=$(handoff_bin)

work=$(mktemp -d)
sshd_pid=""
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# --- the server: own host key, authorized client key, everything in $work
mkdir -p "$work"/{home/.ssh,drop,scp-drop}
start_sshd "$work"
port=$sshd_port
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_bench" >/dev/null
cp "$work/home/.ssh/id_bench.pub" "$work/authorized_keys"

# --- the client, set up as a user would: ~/.ssh/config alias + known_hosts; ssh finds ~ via passwd, so
# nss_wrapper gives it this HOME
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_DATA_HOME=$work/home/.local/share XDG_STATE_HOME=$work/home/.local/state HANDOFF_MACHINE=bench
unset HANDOFF_CONFIG BUS_URL BUS_USER BUS_PASS
ssh_sees_home "$work"
printf 'Host bench-droplet\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile ~/.ssh/id_bench\n  IdentitiesOnly yes\n' "$port" "$(id -un)" > "$HOME/.ssh/config"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" > "$HOME/.ssh/known_hosts"
chmod 600 "$HOME/.ssh/config" "$HOME/.ssh/id_bench"
mkdir -p "$XDG_CONFIG_HOME/handoff"
printf '[droplet]\nhost = "bench-droplet"\ndir = "%s"\n\n[route]\ndroplet_max = "4GiB"\n' "$work/drop" > "$XDG_CONFIG_HOME/handoff/config.toml"

payload="$work/payload.bin"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$payload"

best_scp=""; best_gcm=""; best_handoff=""; rss_handoff=0; rss_scp=0
secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }
for run in $(seq "$RUNS"); do
  rm -f "$work"/scp-drop/* "$work"/drop/*
  sync  # no dirty pages from the previous command charged to this one
  /usr/bin/time -f '%e %M' -o "$work/t.scp" scp -q -o BatchMode=yes "$payload" "bench-droplet:$work/scp-drop/payload.bin"
  read -r t_scp m_scp < "$work/t.scp"
  # the same cipher handoff puts first when the user's ssh config names none (see channels/src/droplet/transport.rs)
  rm -f "$work"/scp-drop/*
  sync
  /usr/bin/time -f '%e %M' -o "$work/t.gcm" scp -q -o BatchMode=yes -c aes128-gcm@openssh.com "$payload" "bench-droplet:$work/scp-drop/payload.bin"
  read -r t_gcm _ < "$work/t.gcm"
  # each handoff run sends a new job (new idempotency key), so nothing is skipped as already there
  sync
  /usr/bin/time -f '%e %M' -o "$work/t.h" "$handoff" send --to any --via droplet --file "$payload" "bench $run" > /dev/null
  read -r t_h m_h < "$work/t.h"
  cmp -s "$payload" "$work/drop/"handoff-*-payload.bin || { echo "uploaded bytes differ" >&2; exit 1; }
  echo "run $run: scp ${t_scp}s (${m_scp} KiB), scp -c aes128-gcm ${t_gcm}s, handoff ${t_h}s (${m_h} KiB)"
  best_scp=$(faster "$best_scp" "$t_scp")
  best_gcm=$(faster "$best_gcm" "$t_gcm")
  best_handoff=$(faster "$best_handoff" "$t_h")
  [ "$m_h" -gt "$rss_handoff" ] && rss_handoff=$m_h
  [ "$m_scp" -gt "$rss_scp" ] && rss_scp=$m_scp
done

read -r thr_scp thr_h ratio thr_gcm ratio_gcm < <(python3 -c "
import sys
size=float(sys.argv[1]); s=float(sys.argv[2]); h=float(sys.argv[3]); g=float(sys.argv[4])
print(f'{size/s:.0f} {size/h:.0f} {s/h:.2f} {size/g:.0f} {g/h:.2f}')" "$SIZE_MIB" "$best_scp" "$best_handoff" "$best_gcm")
machine="$(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
section=$(cat <<EOF
<!-- droplet:begin -->
## droplet (SSH server directory over SFTP)

\`bash bench/droplet.sh\` — ${SIZE_MIB} MiB of random bytes uploaded to a real sshd on loopback (own host key,
\`internal-sftp\`), best of ${RUNS} runs each, same server and same run, \`sync\` before each command. handoff
includes hashing the file while it streams, the outbox entry, an fsync on the server and the
temp-name-then-rename there, and the pointer on the bus; \`scp\` only copies.

| tool | best time | throughput | peak RSS |
|---|---|---|---|
| \`scp\` | $(secs "$best_scp") s | ${thr_scp} MiB/s | $((rss_scp / 1024)) MiB |
| \`scp -c aes128-gcm@openssh.com\` | $(secs "$best_gcm") s | ${thr_gcm} MiB/s | |
| \`handoff send --via droplet\` | $(secs "$best_handoff") s | ${thr_h} MiB/s | $((rss_handoff / 1024)) MiB |

handoff / scp throughput: **${ratio}×** (target ≥ 0.8×; scp as a user runs it, with ssh's default cipher).
Against scp given the cipher handoff prefers (AES-GCM, put first only when the user's ssh config names
no \`Ciphers\`): **${ratio_gcm}×**. Machine: ${machine}; $(date -u +%Y-%m-%d).
<!-- droplet:end -->
EOF
)
bench_md="$here/BENCHMARKS.md"
[ -f "$bench_md" ] || printf '# Benchmarks\n\nEach section is written by its script under `bench/`.\n' > "$bench_md"
python3 - "$bench_md" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pat = re.compile(r"<!-- droplet:begin -->.*?<!-- droplet:end -->", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
echo "$section"
