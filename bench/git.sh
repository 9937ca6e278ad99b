#!/usr/bin/env bash
# Git channel benchmark: `handoff send --doc` (fetch + commit latest.md and the archived copy + push + the
# pointer on the embedded bus) side by side with the shell recipe users have today, run by the git CLI in
# its own clone of a second bare repository on the same server:
#     write latest.md and an archived copy; git add -A && git commit && git push
# over file://, over ssh:// to a real sshd on loopback (own host key, a generated client key), and over
# https:// to `git http-backend` behind TLS and basic auth on loopback (tests/fixtures/git_http_server.py,
# a CA made here by openssl; both clients get the token from the same `credential.helper = store`).
# Median wall time of N runs each, taken in turn (a handoff send, then a CLI recipe, N times), so that a
# machine that speeds up or slows down during the run weighs on both alike; each pushes to its own bare
# repository, so each is the only writer of its repository, as on a quiet repo. Writes its results into
# BENCHMARKS.md between the git-bench markers.
#
#   bash bench/git.sh          # N=30
#   N=10 bash bench/git.sh
#   HANDOFF_BIN=path/to/release/handoff bash bench/git.sh   # an already built binary
#   KINDS=ssh bash bench/git.sh   # rerun some rows only: they replace theirs in BENCHMARKS.md, with a note
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${N:-30}
KINDS=${KINDS:-file ssh https}
. "$here/bench/lib.sh"
handoff=$(handoff_bin)

work=$(mktemp -d)
sshd_pid=
http_pid=
cleanup() {
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
  [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# sshd as this user, everything in $work
mkdir -p "$work/home/.ssh" "$work/srv"
start_sshd "$work"
port=$sshd_port
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_bench"
cp "$work/home/.ssh/id_bench.pub" "$work/authorized_keys"

# the user's side: ~/.ssh/config alias, known_hosts, nss_wrapper so ssh sees this HOME
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_DATA_HOME=$work/home/.local/share HANDOFF_MACHINE=bench
unset HANDOFF_CONFIG BUS_URL BUS_USER BUS_PASS
printf 'Host benchsrv\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile ~/.ssh/id_bench\n  IdentitiesOnly yes\n' "$port" "$(id -un)" > "$HOME/.ssh/config"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" > "$HOME/.ssh/known_hosts"
ssh_sees_home "$work"
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$XDG_CONFIG_HOME/handoff"

# git smart HTTP over TLS with basic auth; the token only in the credential store
need openssl
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
    -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile server.ext 2>/dev/null
)
hport=$(free_port)
GIT_HTTP_TEST_AUTH=bench:bench-token python3 "$here/tests/fixtures/git_http_server.py" "$hport" "$work/srv" \
  "$work/server.pem" "$work/server.key" >"$work/http.out" 2>"$work/http.log" &
http_pid=$!
for _ in $(seq 100); do grep -q listening "$work/http.out" 2>/dev/null && break; sleep 0.1; done
printf 'https://bench:bench-token@localhost:%s\n' "$hport" > "$HOME/.git-credentials"
printf '[credential]\n\thelper = store\n' > "$HOME/.gitconfig"
export GIT_SSL_CAINFO=$work/ca.pem

# a ~6 KiB markdown document
doc=$work/doc.md
python3 - "$doc" <<'EOF'
import sys
lines = ["# Session recap", ""] + [f"- item {i}: the parser handles case {i} and the tests cover it" for i in range(90)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF

now() { python3 -c 'import time; print(time.perf_counter())'; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

rows=()
for kind in $KINDS; do
  # one bare repository each on the same server: interleaved runs would otherwise see each other's pushes
  bare=$work/srv/$kind.git
  cli_bare=$work/srv/cli-$kind.git
  git init -q --bare -b main "$bare"
  git init -q --bare -b main "$cli_bare"
  case $kind in
    file) url="file://$bare"; cli_url="file://$cli_bare" ;;
    ssh) url="benchsrv:$bare"; cli_url="benchsrv:$cli_bare" ;;
    https)
      url="https://localhost:$hport/$kind.git"; cli_url="https://localhost:$hport/cli-$kind.git"
      git --git-dir="$bare" config http.receivepack true
      git --git-dir="$cli_bare" config http.receivepack true
      ;;
  esac
  printf '[git]\nremote = "%s"\ncheckout = "%s"\n' "$url" "$work/handoff-$kind" > "$XDG_CONFIG_HOME/handoff/config.toml"
  "$handoff" send --doc "$doc" --title warmup >/dev/null
  # the CLI's clone starts with one commit pushed, as handoff's has its warm-up
  git clone -q "$cli_url" "$work/cli-$kind" 2>/dev/null
  (
    cd "$work/cli-$kind"
    git checkout -q -b main 2>/dev/null || true
    cp "$doc" latest.md && git add -A && git commit -q -m warmup && git push -q -u origin main
  )
  h=(); g=(); c=()
  for i in $(seq "$N"); do
    # one of each in turn, so a machine that speeds up or slows down during the run affects both alike
    t0=$(date +%s.%N)
    "$handoff" send --doc "$doc" --title "bench $i" >/dev/null
    t1=$(date +%s.%N)
    h+=("$(python3 -c "print($t1-$t0)")")
    t0=$(date +%s.%N)
    (
      cd "$work/cli-$kind"
      mkdir -p handoffs/2026/11
      cp "$doc" latest.md
      cp "$doc" "handoffs/2026/11/cli-bench-$i.md"
      git add -A && git commit -q -m "handoff from cli: bench $i" && git push -q
    )
    t1=$(date +%s.%N)
    g+=("$(python3 -c "print($t1-$t0)")")
  done
  for b in "$bare" "$cli_bare"; do
    count=$(git --git-dir="$b" rev-list --count main)
    [ "$count" = $((N + 1)) ] || { echo "expected $((N + 1)) commits in $b, found $count" >&2; exit 1; }
  done
  # the git channel's own share, from handoff's log (from "delivering ... channel=git" to the next step's
  # start), in runs of their own: the timed ones above run without logging, as the CLI does
  for i in $(seq "$(( (N + 2) / 3 ))"); do
    RUST_LOG=handoff=info "$handoff" send --doc "$doc" --title "logged $i" >/dev/null 2>"$work/log"
    c+=("$(python3 - "$work/log" <<'PY'
import re, sys, datetime
ts = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+Z).*delivering.*channel=(\w+)", line)
    if m:
        ts.setdefault(m.group(2), datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
print((ts["bus"] - ts["git"]).total_seconds())
PY
)")
  done
  hm=$(median "${h[@]}"); gm=$(median "${g[@]}"); cm=$(median "${c[@]}")
  ratio=$(python3 -c "print(f'{$hm/$gm:.2f}')")
  cratio=$(python3 -c "print(f'{$cm/$gm:.2f}')")
  rows+=("| $kind:// | $hm s | $cm s | $gm s | ${ratio}× | ${cratio}× |")
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- git-bench:start -->
## git: \`handoff send --doc\` vs \`git add && git commit && git push\`

Run by \`bash bench/git.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $(git --version), release build,
N=$N runs each, taken in turn (handoff, CLI, handoff, ...), each into its own bare repository on the same
server, ~6 KiB document. handoff's time is the whole command: start-up, config, outbox, the clone check, commit of
latest.md + archived copy, push (over ssh on the one push connection, with no fetch when nothing moved),
and the pointer on the (embedded) bus. The CLI's time is only the recipe (writing both files, add, commit,
push). ssh:// is a real sshd on loopback (both run the system OpenSSH client: handoff's git transport
starts \`ssh host git-receive-pack '/path'\` as git does); https:// is \`git http-backend\` behind a small Python TLS server with basic auth
on loopback (handoff's smart-HTTP transport on rustls, git's on curl), the token from \`credential.helper
= store\` for both. Ratio = handoff median / CLI median (target ≤ 1.0×). "git channel" is the
channel's own share of a send (lock, clone check, commit, checkout, push; from handoff's own log
timestamps, in $(( (N + 2) / 3 )) further sends with logging on: the timed sends run without it, as the CLI
does); the rest of the command is start-up, the outbox and the bus pointer, shared by every send.
Over ssh, handoff starts the push's connection as soon as it knows the document goes to git, so the
handshake overlaps writing the outbox: part of it falls before the git channel's window.

| remote | handoff send --doc (median) | of which the git channel | git add+commit+push (median) | ratio (whole command) | ratio (git channel) |
|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
<!-- git-bench:end -->
EOF
)
cd "$here"
touch BENCHMARKS.md
python3 - "$section" "$KINDS" <<'EOF'
import re, sys
section, kinds = sys.argv[1], sys.argv[2].split()
text = open("BENCHMARKS.md").read()
if "<!-- git-bench:start -->" in text and sorted(kinds) != ["file", "https", "ssh"]:
    # a partial rerun: only its rows change, and a note says which rows are newer
    old = re.search(r"<!-- git-bench:start -->.*?<!-- git-bench:end -->", text, flags=re.S).group(0)
    new = old
    for line in section.splitlines():
        m = re.match(r"\| (\w+):// \|", line)
        if m:
            new = re.sub(r"^\| " + m.group(1) + r":// \|.*$", lambda _: line, new, flags=re.M)
    head = re.search(r"^Run by .*$", section, flags=re.M).group(0)
    note = "Rerun of the " + ", ".join(k + "://" for k in kinds) + " row(s) only (`KINDS=" + " ".join(kinds) + " bash bench/git.sh`): " + head[len("Run by "):]
    # the previous rerun's note (one line) goes; the blank line before the table stays
    new = re.sub(r"\n<!-- git-bench:rerun -->\n[^\n]*", "", new)
    new = new.replace("\n\n| remote |", "\n<!-- git-bench:rerun -->\n" + note + "\n\n| remote |", 1)
    text = text.replace(old, new)
elif "<!-- git-bench:start -->" in text:
    text = re.sub(r"<!-- git-bench:start -->.*?<!-- git-bench:end -->", lambda _: section, text, flags=re.S)
else:
    text = (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + section + "\n"
open("BENCHMARKS.md", "w").write(text)
EOF
echo "$section"
