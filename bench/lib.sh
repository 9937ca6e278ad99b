# Shared by the bench scripts. Source it after `set -euo pipefail`, with $here set to the repository root:
#     . "$here/bench/lib.sh"

# need CMD: fails, naming the command that installs it, when CMD is not on PATH.
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$1 missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
}

# handoff_bin: prints the release binary to measure: $HANDOFF_BIN when set, else one built here.
handoff_bin() {
  if [ -n "${HANDOFF_BIN:-}" ]; then
    echo "$HANDOFF_BIN"
    return
  fi
  local target=${CARGO_TARGET_DIR:-$here/target}
  CARGO_TARGET_DIR=$target cargo build --release --bin handoff -q >&2
  echo "$target/release/handoff"
}

# free_port: prints a TCP port free on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: waits up to 10 s for something to listen on PORT.
wait_port() {
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2
  exit 1
}

# ssh_sees_home DIR: ssh finds ~ through the password database, not $HOME; nss_wrapper (preloaded into
# everything started from now on) gives it the current $HOME, from passwd/group files written in DIR.
ssh_sees_home() {
  local nss
  nss=$(ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so 2>/dev/null | head -1 || true)
  [ -n "$nss" ] || { echo "libnss_wrapper.so missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
  echo "$(id -un):x:$(id -u):$(id -g):bench:$HOME:/bin/sh" > "$1/passwd"
  echo "$(id -gn):x:$(id -g):" > "$1/group"
  export LD_PRELOAD=$nss NSS_WRAPPER_PASSWD=$1/passwd NSS_WRAPPER_GROUP=$1/group SSH_AUTH_SOCK=
}

# start_sshd DIR: a real sshd as this user on a free loopback port, with its own host key
# (DIR/host_key) and DIR/authorized_keys (to be filled by the caller), SFTP served by internal-sftp.
# Sets sshd_port and sshd_pid (the caller kills it).
start_sshd() {
  local dir=$1
  [ -x /usr/sbin/sshd ] || { echo "sshd missing: run bash scripts/install-test-deps.sh" >&2; exit 1; }
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" >/dev/null
  touch "$dir/authorized_keys"
  sshd_port=$(free_port)
  [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
  cat > "$dir/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
Subsystem sftp internal-sftp
MaxStartups 100
UseDNS no
EOF
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  sshd_pid=$!
  wait_port "$sshd_port"
}

# faster BEST T: prints whichever of BEST (may be empty) and T is the smaller number.
faster() { if [ -z "$1" ] || awk "BEGIN { exit !($2 < $1) }"; then echo "$2"; else echo "$1"; fi; }
