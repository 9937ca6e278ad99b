#!/usr/bin/env bash
# The user's other machines, checked from Linux (called by scripts/test.sh; also runnable alone):
#
# * Windows: builds handoff.exe for x86_64-pc-windows-gnu with Debian's mingw-w64 and runs it under Wine
#   (wine64, a throwaway WINEPREFIX, no display): the embedded send -> sync -> fetch round trip (text and a
#   file, sha256 checked), a Windows client <-> Linux client exchange over a real `handoff bus serve` with the
#   env file in %USERPROFILE%\.secrets (refused while its ACL lets Everyone read it), `doctor` (which bus,
#   from where, native paths, the env file's ACL), and `hooks install` into a settings file whose
#   SessionStart command Wine's cmd.exe then runs.
#   Wine 8 lacks bcryptprimitives.dll's ProcessPrng, which Rust's std imports: a stand-in built here from a
#   few lines of C by mingw (RtlGenRandom behind it) sits next to the test's copy of the .exe. It is never
#   shipped (scripts/dist.sh does not build it).
# * macOS: every library of the workspace built for aarch64-apple-darwin with cargo-zigbuild (zig as the C
#   compiler for libgit2 and SQLite), and everything (tests, binaries) type-checked for x86_64-apple-darwin
#   (linking binaries needs Apple's SDK, which a cross build does not have). One pass per target keeps a
#   cold 2-core CI run affordable.
#
# Every check fails loudly; a missing tool fails with the command that installs it (never a skip).
#   bash scripts/test-cross.sh            # both
#   bash scripts/test-cross.sh windows    # or: macos
#   WINDOWS_EXE=path/handoff.exe bash scripts/test-cross.sh windows   # an already built .exe, no debug build
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
what=${1:-all}
export PATH="$here/.test-tools/venv/bin:$PATH"
target_dir=${CARGO_TARGET_DIR:-$here/target}
# the cross builds share one target dir: the workspace's own by default (host build scripts and proc
# macros are reused from the Linux build), or CROSS_TARGET_DIR to build them while that one is busy
cross_dir=${CROSS_TARGET_DIR:-$target_dir}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "FAIL: $1 is missing: run \`bash scripts/install-test-deps.sh\` ($2)" >&2; exit 1; }
}
need_target() {
  rustup target list --installed | grep -qx "$1" || { echo "FAIL: the Rust target $1 is missing: run \`rustup target add $1\` (scripts/install-test-deps.sh does)" >&2; exit 1; }
}
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

# Runs at exit: stops the bus and Wine, removes the scratch dir, and keeps the script's own exit status
# (a trap's last command would otherwise become it: wineserver still saving its registry made `rm -rf`
# fail once in CI after every check had passed).
cleanup_windows() {
  local status=$?
  if [ -n "${bus_pid:-}" ]; then kill "$bus_pid" 2>/dev/null || true; fi
  WINEPREFIX=$work/prefix wineserver -k 2>/dev/null || true
  WINEPREFIX=$work/prefix wineserver -w 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work" 2>/dev/null || echo "note: could not remove $work" >&2; }
  exit "$status"
}

windows() {
  need x86_64-w64-mingw32-gcc "installs Debian's mingw-w64"
  need wine "installs Debian's wine64"
  need jq "installs jq"
  need_target x86_64-pc-windows-gnu
  step "building handoff.exe (x86_64-pc-windows-gnu, mingw-w64) and the Linux handoff"
  local t0=$SECONDS
  local exe="$cross_dir/x86_64-pc-windows-gnu/debug/handoff.exe" linux="$target_dir/debug/handoff"
  if [ -n "${WINDOWS_EXE:-}" ]; then
    exe=$WINDOWS_EXE   # an already built handoff.exe (e.g. from scripts/dist.sh) instead of a debug build
  else
    CARGO_TARGET_DIR=$cross_dir cargo build --quiet --target x86_64-pc-windows-gnu --bin handoff
  fi
  cargo build --quiet --bin handoff
  echo "built in $((SECONDS - t0)) s"

  work=$(mktemp -d)
  bus_pid=
  trap cleanup_windows EXIT
  mkdir -p "$work/bin" "$work/linux-home"
  cp "$exe" "$work/bin/handoff.exe"
  # the test-only ProcessPrng stand-in (Wine 8's bcryptprimitives.dll does not export it)
  cat > "$work/prng.c" <<'EOF'
#include <windows.h>
#include <ntsecapi.h>
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bin/bcryptprimitives.dll" "$work/prng.c" -ladvapi32

  # Wine: its own prefix, no display, no Mono/Gecko installers, quiet
  export WINEPREFIX=$work/prefix WINEDEBUG=-all DISPLAY= WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d;bcryptprimitives=n,b"
  unset HANDOFF_CONFIG HANDOFF_MACHINE HANDOFF_DATA_DIR BUS_URL BUS_USER BUS_PASS WAYLAND_DISPLAY
  step "starting Wine in $WINEPREFIX"
  t0=$SECONDS
  wine wineboot --init >/dev/null 2>&1 || true
  wineserver -w
  echo "prefix ready in $((SECONDS - t0)) s"
  local wuser profile
  wuser=$(wine cmd /c 'echo %USERNAME%' 2>/dev/null | tr -d '\r')
  profile="$WINEPREFIX/drive_c/users/$wuser"
  [ -d "$profile" ] || fail "no Wine profile directory at $profile"
  winpath() { printf 'Z:%s' "${1//\//\\}"; }
  h() { wine "$work/bin/handoff.exe" "$@" 2>>"$work/wine.err" | tr -d '\r'; }

  step "Windows: embedded send -> sync -> fetch"
  printf 'build log line 1\nbuild log line 2\n' > "$work/build.log"
  h --machine laptop send --to desktop "tests pass on windows" --json > "$work/s1.json" || fail "send: $(cat "$work/s1.json" "$work/wine.err")"
  h --machine laptop send --to desktop --file "$(winpath "$work/build.log")" "the log" --json > "$work/s2.json" || fail "send --file: $(cat "$work/s2.json" "$work/wine.err")"
  h --machine desktop sync --json > "$work/sync.json" || fail "sync: $(cat "$work/sync.json" "$work/wine.err")"
  jq -e '[.sync.messages[].body] | any(. == "tests pass on windows")' "$work/sync.json" >/dev/null || fail "sync did not show the text: $(cat "$work/sync.json")"
  local pid
  pid=$(jq -r '[.sync.messages[] | select(.pointer != null)][0].id' "$work/sync.json")
  [ -n "$pid" ] && [ "$pid" != null ] || fail "sync listed no pointer: $(cat "$work/sync.json")"
  mkdir -p "$work/inbox"
  h --machine desktop fetch "$pid" --out "$(winpath "$work/inbox")" --json > "$work/fetch.json" || fail "fetch: $(cat "$work/fetch.json" "$work/wine.err")"
  local got
  got=$(find "$work/inbox" -name build.log | head -1)
  [ -n "$got" ] && cmp -s "$got" "$work/build.log" || fail "the fetched file differs or is missing: $(cat "$work/fetch.json")"
  h --machine desktop sync --json > "$work/sync2.json"
  jq -e '.sync.messages | length == 0' "$work/sync2.json" >/dev/null || fail "a second sync showed messages again: $(cat "$work/sync2.json")"
  echo "ok: text and file handed over, sha256 verified, shown once"

  step "Windows <-> Linux over handoff bus serve"
  local port pass=cross-test-$RANDOM$RANDOM
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BUS_PASS=$pass "$linux" bus serve --listen "127.0.0.1:$port" --data "$work/busdata" >"$work/bus.log" 2>&1 &
  bus_pid=$!
  for _ in $(seq 100); do curl -fs -u "claude:$pass" "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs -u "claude:$pass" "http://127.0.0.1:$port/health" >/dev/null || fail "bus serve did not start: $(cat "$work/bus.log")"
  mkdir -p "$profile/.secrets" "$work/linux-home/.secrets"
  printf 'BUS_USER=claude\nBUS_PASS=%s\nBUS_URL=http://127.0.0.1:%s\n' "$pass" "$port" | tee "$profile/.secrets/claude-bus.env" > "$work/linux-home/.secrets/claude-bus.env"
  chmod 600 "$work/linux-home/.secrets/claude-bus.env"
  # the env file's ACL: Wine gives a file without a stored security descriptor a DACL made from its Unix
  # mode (the user, SYSTEM, and an Everyone entry for the "other" bits), so a world-readable file must be
  # refused, naming Everyone and the icacls fix, and a 0600 one accepted
  chmod 644 "$profile/.secrets/claude-bus.env"
  local code=0
  h --machine winbox send --to linuxbox "must not leave: the env file is readable by Everyone" > "$work/w0.out" 2>&1 || code=$?
  [ "$code" = 78 ] || fail "a world-readable env file was not refused with exit 78 (got $code): $(cat "$work/w0.out" "$work/wine.err")"
  tail -n 5 "$work/wine.err" | grep -q "readable by others (its ACL lets .*Everyone.* read it); fix it with: icacls" \
    || fail "the refusal does not name Everyone and the icacls fix: $(tail -n 5 "$work/wine.err")"
  chmod 600 "$profile/.secrets/claude-bus.env"
  lx() { HOME=$work/linux-home XDG_CONFIG_HOME=$work/linux-home/.config XDG_DATA_HOME=$work/linux-home/.local/share "$linux" "$@"; }
  h --machine winbox send --to linuxbox "hello from windows" --json > "$work/w1.json" || fail "windows send over the bus: $(cat "$work/w1.json" "$work/wine.err")"
  lx --machine linuxbox sync --json > "$work/l1.json" || fail "linux sync: $(cat "$work/l1.json")"
  jq -e '[.sync.messages[] | select(.from == "winbox") | .body] == ["hello from windows"]' "$work/l1.json" >/dev/null || fail "Linux did not get Windows' message: $(cat "$work/l1.json")"
  lx --machine linuxbox send --to winbox "hello back from linux" --json >/dev/null || fail "linux send"
  h --machine winbox sync --json > "$work/w2.json" || fail "windows sync over the bus: $(cat "$work/w2.json" "$work/wine.err")"
  jq -e '[.sync.messages[] | select(.from == "linuxbox") | .body] == ["hello back from linux"]' "$work/w2.json" >/dev/null || fail "Windows did not get Linux's message: $(cat "$work/w2.json")"
  echo "ok: both directions over a real bus"

  step "Windows: doctor names the bus, where it came from, with native paths"
  h --machine winbox doctor --json > "$work/doctor.json" || true
  local detail
  detail=$(jq -r '.checks[] | select(.check == "config") | .detail' "$work/doctor.json" 2>/dev/null) || fail "doctor --json: $(cat "$work/doctor.json" "$work/wine.err")"
  case "$detail" in
    *"bus http://127.0.0.1:$port (from BUS_URL in the env file C:\\users\\$wuser\\.secrets\\claude-bus.env)"*) ;;
    *) fail "doctor's config line does not name the bus and its env file with native separators: $detail" ;;
  esac
  case "$detail" in *embedded*) fail "doctor claims the embedded default while using a bus: $detail" ;; esac
  jq -e '.checks[] | select(.check == "bus") | .ok' "$work/doctor.json" >/dev/null || fail "doctor's bus check failed: $(cat "$work/doctor.json")"
  jq -e '.checks[] | select(.check == "secrets: bus env file") | .ok and (.detail | contains("readable only by you, SYSTEM and Administrators (its ACL)"))' "$work/doctor.json" >/dev/null \
    || fail "doctor does not report the env file's ACL as private: $(cat "$work/doctor.json")"
  echo "ok: $detail"

  step "Windows: hooks install, and cmd.exe runs the SessionStart command"
  mkdir -p "$work/proj"
  h hooks install --project --dir "$(winpath "$work/proj")" --json > "$work/hooks.json" || fail "hooks install: $(cat "$work/hooks.json" "$work/wine.err")"
  local cmdline
  cmdline=$(jq -r '.hooks.SessionStart[0].hooks[0].command' "$work/proj/.claude/settings.json")
  case "$cmdline" in
    *'\'*) fail "the hook's command line has backslashes (Git Bash would eat them): $cmdline" ;;
    *handoff.exe\ sync\ --format\ claude-hook) ;;
    *) fail "unexpected hook command: $cmdline" ;;
  esac
  wine cmd /c "$cmdline" 2>>"$work/wine.err" | tr -d '\r' > "$work/hook.out" || fail "cmd.exe could not run the hook: $cmdline"
  jq -e '.hookSpecificOutput.hookEventName == "SessionStart"' "$work/hook.out" >/dev/null || fail "the hook printed no SessionStart JSON: $(cat "$work/hook.out")"
  echo "ok: $cmdline"
  kill "$bus_pid" 2>/dev/null || true
  bus_pid=
}

macos() {
  need cargo-zigbuild "installs ziglang and cargo-zigbuild from PyPI into .test-tools/venv"
  need python-zig "installs ziglang from PyPI into .test-tools/venv"
  need_target aarch64-apple-darwin
  need_target x86_64-apple-darwin
  # Two full builds plus four checks of the workspace cost more than a cold 2-core CI can spend, so each
  # target gets one pass: Apple silicon builds every library (zig compiles libgit2 and SQLite's C), Intel
  # type-checks everything (cfg(target_os = "macos") code is the same on both). Both go through zig: a plain
  # `cargo check` would hand the C of ring, libgit2 and SQLite to the host cc, which knows no -arch.
  step "macOS aarch64-apple-darwin: every library built with zig"
  local t0=$SECONDS
  CARGO_TARGET_DIR=$cross_dir cargo zigbuild --quiet --target aarch64-apple-darwin --workspace --all-features --lib
  echo "ok: aarch64-apple-darwin in $((SECONDS - t0)) s"
  step "macOS x86_64-apple-darwin: tests and binaries type-checked"
  t0=$SECONDS
  CARGO_TARGET_DIR=$cross_dir cargo-zigbuild check --quiet --target x86_64-apple-darwin --workspace --all-features --all-targets
  echo "ok: x86_64-apple-darwin in $((SECONDS - t0)) s"
}

case $what in
  windows) windows ;;
  macos) macos ;;
  all) windows; macos ;;
  *) echo "usage: $0 [windows|macos|all]" >&2; exit 2 ;;
esac
echo "cross checks passed"
