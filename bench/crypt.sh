#!/usr/bin/env bash
# End-to-end encryption benchmark: one payload through a drive `local` remote, sent and fetched by
# `handoff` with and without `--encrypt`, side by side in the same run with what a user would otherwise do
# (`age -r … -o x.age` then `rclone copyto`; `rclone copyto` then `age -d -i …`), with peak RSS.
# Writes its results into BENCHMARKS.md between the crypt markers.
#
#   bash bench/crypt.sh            # 1 GiB
#   SIZE_MIB=256 REPS=5 bash bench/crypt.sh   # medians of REPS rounds (default 3)
#   HANDOFF_BIN=path/to/release/handoff bash bench/crypt.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-3}
export PATH="$here/.test-tools/venv/bin:$PATH"
. "$here/bench/lib.sh"
need rclone
need age
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
handoff=$(handoff_bin)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work"/{home,remote,out,bus}
unset RCLONE_CONFIG RCLONE_CONFIG_PASS HANDOFF_CONFIG
# a real bus on loopback, shared by two machines that each have their own data dir (and key)
port=$(free_port)
export BUS_USER=bench BUS_PASS=bench-bus-pass-0123 BUS_URL=http://127.0.0.1:$port
"$handoff" bus serve --listen 127.0.0.1:$port --data "$work/bus" 2>"$work/bus.log" &
pids+=($!)
wait_port "$port"
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config
mkdir -p "$XDG_CONFIG_HOME/rclone" "$XDG_CONFIG_HOME/handoff"
conf=$XDG_CONFIG_HOME/rclone/rclone.conf
printf '[here]\ntype = local\n' > "$conf"
printf '[drive]\nremote = "here"\nfolder = "%s"\n' "$work/remote/h" > "$XDG_CONFIG_HOME/handoff/config.toml"
A=(env HANDOFF_MACHINE=a XDG_DATA_HOME="$work/data-a")
B=(env HANDOFF_MACHINE=b XDG_DATA_HOME="$work/data-b")
"${A[@]}" "$handoff" keys >/dev/null
"${B[@]}" "$handoff" keys >/dev/null
"${A[@]}" "$handoff" sync >/dev/null
age_a=$("${A[@]}" "$handoff" keys show); age_b=$("${B[@]}" "$handoff" keys show)

payload=$work/payload.bin
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$payload"

measure() {
  local log=$work/time.log
  /usr/bin/time -f '%e %M' -o "$log" "$@" >"$work/cmd.out" 2>"$work/cmd.err" || { cat "$work/cmd.out" "$work/cmd.err" >&2; return 1; }
  cat "$log"
}
last_pointer() { "${B[@]}" "$handoff" --json sync | python3 -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin)["sync"]["messages"] if m.get("pointer")][-1])'; }

# one sample: "<label>\t<seconds>\t<peak RSS KiB>" appended to $work/samples
sample() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$work/samples"; }
: > "$work/samples"
for rep in $(seq "$REPS"); do
  rm -rf "$work/out"/* "$work/remote"/*
  # up: plain send, encrypted send, age + rclone
  read -r t rss < <(measure "${A[@]}" "$handoff" send --to b --keep --file "$payload"); sample 'up: `handoff send --file`' "$t" "$rss"
  plain_id=$(last_pointer)
  read -r t rss < <(measure "${A[@]}" "$handoff" send --encrypt --to b --keep --file "$payload"); sample 'up: `handoff send --encrypt --file`' "$t" "$rss"
  enc_id=$(last_pointer)
  read -r t1 rss1 < <(measure age -r "$age_a" -r "$age_b" -o "$work/manual.age" "$payload")
  read -r t2 rss2 < <(measure rclone --config "$conf" copyto "$work/manual.age" "here:$work/remote/manual.age")
  sample 'up: `age -r … -o x.age` + `rclone copyto`' "$(python3 -c "print(f'{$t1+$t2:.2f}')")" "$(( rss1 > rss2 ? rss1 : rss2 ))"
  rm -f "$work/manual.age"
  # down
  read -r t rss < <(measure "${B[@]}" "$handoff" fetch "$plain_id" --out "$work/out/plain"); sample 'down: `handoff fetch`' "$t" "$rss"
  rm -rf "$work/out/plain"
  read -r t rss < <(measure "${B[@]}" "$handoff" fetch "$enc_id" --out "$work/out/enc"); sample 'down: `handoff fetch` (decrypting)' "$t" "$rss"
  cmp -s "$payload" "$work/out/enc/payload.bin" || { echo "decrypted payload differs" >&2; exit 1; }
  rm -rf "$work/out/enc"
  read -r t1 rss1 < <(measure rclone --config "$conf" copyto "here:$work/remote/manual.age" "$work/out/manual.age")
  read -r t2 rss2 < <(measure age -d -i "$work/data-b/handoff/keys/identity.txt" -o "$work/out/manual.bin" "$work/out/manual.age")
  sample 'down: `rclone copyto` + `age -d -i …`' "$(python3 -c "print(f'{$t1+$t2:.2f}')")" "$(( rss1 > rss2 ? rss1 : rss2 ))"
  cmp -s "$payload" "$work/out/manual.bin" || { echo "age-decrypted payload differs" >&2; exit 1; }
done
# medians (and the largest peak RSS) per line, in the order measured; the two ratios
summary=$(python3 - "$work/samples" "$SIZE_MIB" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, t, rss = line.rstrip("\n").split("\t")
    rows.setdefault(label, []).append((float(t), int(rss)))
size = float(sys.argv[2])
med = {k: statistics.median(t for t, _ in v) for k, v in rows.items()}
for k, v in rows.items():
    print(f"| {k} | {med[k]:.2f} s ({size / max(med[k], 0.001):.0f} MiB/s) | {max(r for _, r in v) // 1024} MiB |")
up = med["up: `age -r … -o x.age` + `rclone copyto`"] / med["up: `handoff send --encrypt --file`"]
down = med["down: `rclone copyto` + `age -d -i …`"] / med["down: `handoff fetch` (decrypting)"]
print(f"RATIOS {up:.2f} {down:.2f}")
PY
)
rows_text=$(grep -v '^RATIOS' <<<"$summary")
read -r _ ratio_up ratio_down < <(grep '^RATIOS' <<<"$summary")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- crypt-bench:start -->
## end-to-end encryption: ${SIZE_MIB} MiB, encrypted by handoff vs age + rclone

Run by \`bash bench/crypt.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), age $(age --version) (Debian), $(rclone version | head -1), release build.
A drive \`local\` remote, so the disk, not a network, is the limit. handoff's up is the whole command
(sha256, encryption into the outbox while hashing, upload, encrypted pointer on a \`handoff bus serve\` on loopback); its
down is download + streaming decryption with the plaintext's sha256 checked. The manual recipe is what
a user would otherwise run: the two commands' times added. Medians of ${REPS} rounds (largest peak RSS). Speed ratio (handoff throughput / the recipe's):
up ${ratio_up}×, down ${ratio_down}× (target ≥ 0.8×).

| what | time | peak RSS |
|---|---|---|
$rows_text
<!-- crypt-bench:end -->
EOF
)
cd "$here"
touch BENCHMARKS.md
python3 - "$section" <<'EOF'
import re, sys
section = sys.argv[1]
text = open("BENCHMARKS.md").read()
if "<!-- crypt-bench:start -->" in text:
    text = re.sub(r"<!-- crypt-bench:start -->.*?<!-- crypt-bench:end -->", lambda _: section, text, flags=re.S)
else:
    text = (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + section + "\n"
open("BENCHMARKS.md", "w").write(text)
EOF
echo "$section"
