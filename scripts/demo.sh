#!/usr/bin/env bash
# The main job on the embedded default: machine "laptop" hands off to machine "desktop" (send -> sync),
# with no config file, no server and no network. Runs in a throwaway HOME so it touches nothing of yours.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${HANDOFF_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --manifest-path "$here/Cargo.toml" --bin handoff
  bin="${CARGO_TARGET_DIR:-$here/target}/debug/handoff"
fi
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
export HOME="$demo/home" XDG_CONFIG_HOME="$demo/config" XDG_DATA_HOME="$demo/data" XDG_CACHE_HOME="$demo/cache"
unset HANDOFF_CONFIG BUS_URL BUS_USER BUS_PASS || true
mkdir -p "$HOME"
printf 'build log line 1\nbuild log line 2\n' > "$demo/build.log"

echo "\$ handoff --machine laptop send --to desktop \"tests pass; PR #42 ready for review\""
"$bin" --machine laptop send --to desktop "tests pass; PR #42 ready for review"
echo "\$ handoff --machine laptop send --to desktop --file build.log \"the log you asked for\""
"$bin" --machine laptop send --to desktop --file "$demo/build.log" "the log you asked for"
echo "\$ handoff --machine desktop sync --fetch --out ./inbox"
"$bin" --machine desktop sync --fetch --out "$demo/inbox"
echo "\$ handoff --machine desktop sync   # again: nothing new"
"$bin" --machine desktop sync
cmp "$demo/build.log" "$demo/inbox/"*/build.log && echo "round trip ok: message shown once, file fetched with sha256 verified"
