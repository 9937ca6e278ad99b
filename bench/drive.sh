#!/usr/bin/env bash
# Drive channel benchmark: a 1 GiB payload up and down through `handoff` side by side with
# `rclone copyto` on the same remote in the same run, with peak RSS. Remotes are real servers made by
# `rclone serve s3` and `rclone serve sftp` on loopback (plus a `local` remote), as in the tests.
# Writes its results into BENCHMARKS.md between the drive markers.
#
#   bash bench/drive.sh            # 1 GiB
#   SIZE_MIB=256 RUNS=3 bash bench/drive.sh   # best of 3 runs per row
#   HANDOFF_BIN=path/to/release/handoff bash bench/drive.sh
#   REMOTES="sftp" bash bench/drive.sh   # only some of s3, sftp, local (the other rows of BENCHMARKS.md stay)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-1}
export PATH="$here/.test-tools/venv/bin:$PATH"
. "$here/bench/lib.sh"
need rclone
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
handoff=$(handoff_bin)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT


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
# ssh (for the sftp remote) finds ~ through the password database: give it this HOME via nss_wrapper, so
# its known_hosts is the bench's own.
ssh_sees_home "$work"
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
  # every command starts with no dirty pages left by the one before (writeback would be charged to it)
  sync
  /usr/bin/time -f '%e %M' -o "$log" "$@" >"$work/cmd.out" 2>"$work/cmd.err" || { cat "$work/cmd.out" "$work/cmd.err" >&2; return 1; }
  cat "$log"
}
mibps() { python3 -c "print(f'{$SIZE_MIB/max($1,0.001):.0f}')"; }
ratio() { python3 -c "print(f'{$2/max($1,0.001):.2f}')"; }

rows=()
REMOTES=${REMOTES:-s3 sftp local}
for remote in $REMOTES; do
  case $remote in
    s3) folder=bucket/bench ;;
    local) folder=$work/local/bench ;;
    *) folder=bench ;;
  esac
  printf '[drive]\nremote = "%s"\nfolder = "%s"\n' "$remote" "$folder" > "$XDG_CONFIG_HOME/handoff/config.toml"
  b_h_up=""; b_r_up=""; b_h_down=""; b_r_down=""; h_up_rss=0; r_up_rss=0; h_down_rss=0; r_down_rss=0
  for run in $(seq "$RUNS"); do
    # upload: handoff send (hash + upload + pointer) vs rclone copyto; which goes first alternates between
    # runs, so neither always inherits the state (page cache, server heap) the other leaves behind
    h_up() {
      read -r t m < <(measure "$handoff" --json send --to any --file "$payload" --via drive)
      b_h_up=$(faster "$b_h_up" "$t"); h_up_rss=$(( m > h_up_rss ? m : h_up_rss ))
    }
    r_up() {
      read -r t m < <(measure rclone --config "$conf" copyto "$payload" "$remote:$folder/rclone-copy.bin")
      b_r_up=$(faster "$b_r_up" "$t"); r_up_rss=$(( m > r_up_rss ? m : r_up_rss ))
    }
    if (( run % 2 )); then h_up; r_up; else r_up; h_up; fi
    # download: handoff fetch (download + sha256 verify) vs rclone copyto
    id=$(HANDOFF_MACHINE=other "$handoff" --json sync | python3 -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin)["sync"]["messages"] if m.get("pointer")][-1])')
    rm -rf "$work/out"/*
    # Both tools download the same object (the one handoff stored), after one unmeasured read of it: a
    # server like \`rclone serve s3\` computes an object's MD5 the first time it serves it (rclone's own
    # uploads carry it in their metadata, handoff's do not), and that one-off cost belongs to neither client.
    stored=$(rclone --config "$conf" lsf -R --files-only "$remote:$folder" | grep -v '^rclone-copy.bin$' | head -1)
    rclone --config "$conf" cat "$remote:$folder/$stored" > /dev/null
    h_down() {
      read -r t m < <(HANDOFF_MACHINE=other measure "$handoff" fetch "$id" --out "$work/out")
      b_h_down=$(faster "$b_h_down" "$t"); h_down_rss=$(( m > h_down_rss ? m : h_down_rss ))
    }
    r_down() {
      read -r t m < <(measure rclone --config "$conf" copyto "$remote:$folder/$stored" "$work/out/rclone.bin")
      b_r_down=$(faster "$b_r_down" "$t"); r_down_rss=$(( m > r_down_rss ? m : r_down_rss ))
    }
    if (( run % 2 )); then h_down; r_down; else r_down; h_down; fi
    cmp -s "$payload" "$work/out/payload.bin" || { echo "fetched payload differs" >&2; exit 1; }
    echo "$remote run $run: up handoff ${b_h_up}s rclone ${b_r_up}s; down handoff ${b_h_down}s rclone ${b_r_down}s (best so far)" >&2
    # keep disk use bounded; through the remote, so the server's own caches know (rclone serve's VFS)
    rclone --config "$conf" purge "$remote:$folder" >/dev/null 2>&1 || true
    rm -rf "$work/out"/*
  done
  rm -rf "$work/served-s3/bucket/bench" "$work/served-sftp/bench" "$work/local/bench"
  h_up=$b_h_up; r_up=$b_r_up; h_down=$b_h_down; r_down=$b_r_down
  rows+=("| $remote | up | $h_up s ($(mibps "$h_up") MiB/s) | $r_up s ($(mibps "$r_up") MiB/s) | $(ratio "$h_up" "$r_up")× | $((h_up_rss / 1024)) MiB | $((r_up_rss / 1024)) MiB |")
  rows+=("| $remote | down | $h_down s ($(mibps "$h_down") MiB/s) | $r_down s ($(mibps "$r_down") MiB/s) | $(ratio "$h_down" "$r_down")× | $((h_down_rss / 1024)) MiB | $((r_down_rss / 1024)) MiB |")
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- drive-bench:start -->
## drive: ${SIZE_MIB} MiB through handoff vs rclone copyto

Run by \`bash bench/drive.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), load $(cut -d' ' -f1-3 /proc/loadavg), $(rclone version | head -1), release build, best of ${RUNS} run(s) per cell.
Servers are \`rclone serve s3\` / \`rclone serve sftp\` on loopback (and a \`local\` remote), so the
network is not the bottleneck: this measures the client's own overhead. s3 and local go through opendal;
sftp through the system ssh and SFTP (the droplet's pipelined transfers). "up" for handoff is the whole
\`handoff send --file\` (upload hashing as it streams, pointer); "down" is \`handoff fetch\` (download hashing as it
streams, sha256 checked, fsync). \`sync\` before each command; which tool goes first alternates between runs;
both tools download the object handoff stored, after one unmeasured read of it.
Speed ratio = handoff throughput / rclone throughput (target ≥ 0.8×).

| remote | way | handoff | rclone copyto | ratio | handoff peak RSS | rclone peak RSS |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
<!-- drive-bench:end -->
EOF
)
cd "$here"
touch BENCHMARKS.md
python3 - "$section" "$REMOTES" <<'EOF'
import re, sys
section, ran = sys.argv[1], sys.argv[2].split()
text = open("BENCHMARKS.md").read()
old = re.search(r"<!-- drive-bench:start -->.*?<!-- drive-bench:end -->", text, flags=re.S)
if old:
    # rows of remotes not run this time stay, with the date of their run
    kept = [l for l in old.group(0).splitlines() if l.startswith("| ") and l.split("|")[1].strip() not in ran + ["remote"]]
    when = re.search(r"on (\d{4}-\d{2}-\d{2})", old.group(0))
    if kept:
        names = sorted({l.split("|")[1].strip() for l in kept})
        note = f"\nRows for {', '.join(names)}: from the earlier run" + (f" of {when.group(1)}" if when else "") + " (not rerun).\n"
        rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| remote")]
        order = {"s3": 0, "sftp": 1, "local": 2}
        allrows = sorted(kept + rows, key=lambda l: (order.get(l.split("|")[1].strip(), 9), l.split("|")[2].strip() != "up"))
        sep = "|---|---|---|---|---|---|---|\n"
        head = section.partition(sep)[0]
        section = head + sep + "\n".join(allrows) + "\n" + note + "<!-- drive-bench:end -->"
    text = text[:old.start()] + section + text[old.end():]
else:
    text = (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + section + "\n"
open("BENCHMARKS.md", "w").write(text)
EOF
echo "$section"
