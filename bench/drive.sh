#!/usr/bin/env bash
# Drive channel benchmark: a 1 GiB payload up and down through `handoff` (opendal) side by side with
# `rclone copyto` on the same remote in the same run, with peak RSS. Remotes are real servers made by
# `rclone serve s3` and `rclone serve sftp` on loopback (plus a `local` remote), as in the tests.
# Writes its results into BENCHMARKS.md between the drive markers.
#
#   bash bench/drive.sh            # 1 GiB
#   SIZE_MIB=256 bash bench/drive.sh
#   HANDOFF_BIN=path/to/release/handoff bash bench/drive.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SIZE_MIB=${SIZE_MIB:-1024}
export PATH="$here/.test-tools/venv/bin:$PATH"
command -v rclone >/dev/null || { echo "rclone missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }

if [ -n "${HANDOFF_BIN:-}" ]; then
  handoff=$HANDOFF_BIN   # an already built release binary
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
  cargo build --release --bin handoff -q
  handoff="$CARGO_TARGET_DIR/release/handoff"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

mkdir -p "$work"/{home,served-s3/bucket,served-sftp,local,srvhome,out}
: > "$work/empty.conf"
key_id=benchaccesskey0001; secret=bench-secret-key-0123456789
s3port=$(free_port)
HOME=$work/srvhome rclone --config "$work/empty.conf" serve s3 --addr 127.0.0.1:$s3port --auth-key "$key_id,$secret" "$work/served-s3" 2>"$work/s3.log" &
pids+=($!)
ssh-keygen -q -t ed25519 -N '' -f "$work/id" >/dev/null
sftpport=$(free_port)
HOME=$work/srvhome rclone --config "$work/empty.conf" serve sftp --addr 127.0.0.1:$sftpport --user bench --pass unused-pass --authorized-keys "$work/id.pub" "$work/served-sftp" 2>"$work/sftp.log" &
pids+=($!)
wait_port "$s3port"; wait_port "$sftpport"

export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_DATA_HOME=$work/home/.local/share HANDOFF_MACHINE=bench
unset RCLONE_CONFIG RCLONE_CONFIG_PASS HANDOFF_CONFIG BUS_URL
mkdir -p "$XDG_CONFIG_HOME/rclone" "$XDG_CONFIG_HOME/handoff" "$HOME/.ssh"
conf=$XDG_CONFIG_HOME/rclone/rclone.conf
# ssh (behind opendal's sftp) finds ~ through the password database: give it this HOME via nss_wrapper, so
# its known_hosts is the bench's own.
nss=$(ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so 2>/dev/null | head -1 || true)
[ -n "$nss" ] || { echo "libnss_wrapper.so missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
echo "$(id -un):x:$(id -u):$(id -g):bench:$HOME:/bin/sh" > "$work/passwd"
echo "$(id -gn):x:$(id -g):" > "$work/group"
export LD_PRELOAD=$nss NSS_WRAPPER_PASSWD=$work/passwd NSS_WRAPPER_GROUP=$work/group SSH_AUTH_SOCK=
cat > "$conf" <<EOF
[s3]
type = s3
provider = Rclone
access_key_id = $key_id
secret_access_key = $secret
endpoint = http://127.0.0.1:$s3port

[sftp]
type = sftp
host = 127.0.0.1
port = $sftpport
user = bench
key_file = $work/id
shell_type = none

[local]
type = local
EOF

payload=$work/payload.bin
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$payload"

# seconds and peak RSS (KiB) of a command, from /usr/bin/time
measure() {
  local log=$work/time.log
  /usr/bin/time -f '%e %M' -o "$log" "$@" >"$work/cmd.out" 2>"$work/cmd.err" || { cat "$work/cmd.out" "$work/cmd.err" >&2; return 1; }
  cat "$log"
}
mibps() { python3 -c "print(f'{$SIZE_MIB/max($1,0.001):.0f}')"; }
ratio() { python3 -c "print(f'{$2/max($1,0.001):.2f}')"; }

rows=()
for remote in s3 sftp local; do
  case $remote in
    s3) folder=bucket/bench ;;
    local) folder=$work/local/bench ;;
    *) folder=bench ;;
  esac
  printf '[drive]\nremote = "%s"\nfolder = "%s"\n' "$remote" "$folder" > "$XDG_CONFIG_HOME/handoff/config.toml"
  # upload: handoff send (hash + upload + pointer) vs rclone copyto
  read -r h_up h_up_rss < <(measure "$handoff" --json send --to any --file "$payload" --via drive)
  uri=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print([s["receipt"]["uri"] for s in j["receipt"]["steps"] if s.get("receipt") and s["receipt"]["channel"]=="drive"][0])' "$work/cmd.out")
  read -r r_up r_up_rss < <(measure rclone --config "$conf" copyto "$payload" "$remote:$folder/rclone-copy.bin")
  # download: handoff fetch (download + sha256 verify) vs rclone copyto
  id=$(HANDOFF_MACHINE=other "$handoff" --json sync | python3 -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin)["sync"]["messages"] if m.get("pointer")][-1])')
  rm -rf "$work/out"/*
  read -r h_down h_down_rss < <(HANDOFF_MACHINE=other measure "$handoff" fetch "$id" --out "$work/out")
  read -r r_down r_down_rss < <(measure rclone --config "$conf" copyto "$remote:$folder/rclone-copy.bin" "$work/out/rclone.bin")
  cmp -s "$payload" "$work/out/payload.bin" || { echo "fetched payload differs" >&2; exit 1; }
  rows+=("| $remote | up | $h_up s ($(mibps "$h_up") MiB/s) | $r_up s ($(mibps "$r_up") MiB/s) | $(ratio "$h_up" "$r_up")× | $((h_up_rss / 1024)) MiB | $((r_up_rss / 1024)) MiB |")
  rows+=("| $remote | down | $h_down s ($(mibps "$h_down") MiB/s) | $r_down s ($(mibps "$r_down") MiB/s) | $(ratio "$h_down" "$r_down")× | $((h_down_rss / 1024)) MiB | $((r_down_rss / 1024)) MiB |")
  # keep disk use bounded
  rm -rf "$work/served-s3/bucket/bench" "$work/served-sftp/bench" "$work/local/bench" "$work/out"/*
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- drive-bench:start -->
## drive: ${SIZE_MIB} MiB through handoff vs rclone copyto

Run by \`bash bench/drive.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $(rclone version | head -1), release build.
Servers are \`rclone serve s3\` / \`rclone serve sftp\` on loopback (and a \`local\` remote), so the
network is not the bottleneck: this measures the client's own overhead. "up" for handoff is the whole
\`handoff send --file\` (sha256 pass + upload + pointer); "down" is \`handoff fetch\` (download + sha256 verify).
Speed ratio = handoff throughput / rclone throughput (target ≥ 0.8×).

| remote | way | handoff | rclone copyto | ratio | handoff peak RSS | rclone peak RSS |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
<!-- drive-bench:end -->
EOF
)
cd "$here"
touch BENCHMARKS.md
python3 - "$section" <<'EOF'
import re, sys
section = sys.argv[1]
text = open("BENCHMARKS.md").read()
if "<!-- drive-bench:start -->" in text:
    text = re.sub(r"<!-- drive-bench:start -->.*?<!-- drive-bench:end -->", lambda _: section, text, flags=re.S)
else:
    text = (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + section + "\n"
open("BENCHMARKS.md", "w").write(text)
EOF
echo "$section"
