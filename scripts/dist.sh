#!/usr/bin/env bash
# Builds release archives of handoff into dist/, each with a sha256 sum beside it:
#   handoff-<version>-x86_64-unknown-linux-gnu.tar.gz   (this machine's toolchain)
#   handoff-<version>-x86_64-pc-windows-gnu.zip         (mingw-w64: Debian's `mingw-w64`)
#   handoff-<version>-{aarch64,x86_64}-apple-darwin.tar.gz   only where Apple's SDK is present: on a Mac, or
#     with SDKROOT pointing at a MacOSX.sdk for cargo-zigbuild; otherwise skipped with a note (a macOS
#     binary cannot be linked without it).
# Each archive holds the binary, README.md, SECURITY.md, the licence notice and config/handoff.example.toml.
# Nothing test-only goes in (no bcryptprimitives.dll stand-in: real Windows has ProcessPrng).
#
# Each release build goes to <target dir>/<target triple>/release, used by nothing else (the test builds are
# debug), and is removed once its archive is made: a release build of the workspace takes several GB.
# KEEP_BUILD=1 keeps them (a second run then only relinks).
#
#   bash scripts/dist.sh            # all it can build here
#   bash scripts/dist.sh linux      # one: linux | windows | macos
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$here/.test-tools/venv/bin:$PATH"
only=${1:-all}
version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="handoff"))')
target_dir=${CARGO_TARGET_DIR:-$here/target}
out=$here/dist
mkdir -p "$out"
skipped=()

sum() { (cd "$out" && sha256sum "$1" > "$1.sha256" && cat "$1.sha256"); }
# done TRIPLE: removes the release build of TRIPLE unless KEEP_BUILD=1
done_with() { [ "${KEEP_BUILD:-}" = 1 ] || rm -rf "${target_dir:?}/$1/release"; }
stage() {   # stage DIR BINARY...
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$@" "$dir/"
  cp README.md SECURITY.md config/handoff.example.toml "$dir/"
  printf 'handoff %s is licensed under MIT OR Apache-2.0.\n' "$version" > "$dir/LICENSE.txt"
}

linux() {
  local t=x86_64-unknown-linux-gnu name="handoff-$version-x86_64-unknown-linux-gnu"
  cargo build --release --locked --target "$t" --bin handoff
  # the binary runs and is the version being packaged
  "$target_dir/$t/release/handoff" --version | grep -qw "$version" \
    || { echo "the built handoff does not report version $version" >&2; exit 1; }
  stage "$out/$name" "$target_dir/$t/release/handoff"
  tar -C "$out" -czf "$out/$name.tar.gz" "$name"
  rm -rf "${out:?}/$name"
  sum "$name.tar.gz"
  done_with "$t"
}

windows() {
  local t=x86_64-pc-windows-gnu name="handoff-$version-x86_64-pc-windows-gnu"
  command -v x86_64-w64-mingw32-gcc >/dev/null || { echo "mingw-w64 is missing: apt-get install mingw-w64" >&2; exit 1; }
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  cargo build --release --locked --target "$t" --bin handoff
  stage "$out/$name" "$target_dir/$t/release/handoff.exe"
  rm -f "$out/$name.zip"
  (cd "$out" && python3 -m zipfile -c "$name.zip" "$name")
  rm -rf "${out:?}/$name"
  sum "$name.zip"
  done_with "$t"
}

macos() {
  local t
  for t in aarch64-apple-darwin x86_64-apple-darwin; do
    local name="handoff-$version-$t"
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    if [ "$(uname -s)" = Darwin ]; then
      cargo build --release --locked --target "$t" --bin handoff
    elif [ -n "${SDKROOT:-}" ] && [ -d "$SDKROOT" ] && command -v cargo-zigbuild >/dev/null; then
      cargo zigbuild --release --locked --target "$t" --bin handoff
    else
      echo "note: no macOS SDK here (not a Mac, and SDKROOT does not name a MacOSX.sdk): $name skipped" >&2
      skipped+=("$name (no macOS SDK)")
      continue
    fi
    stage "$out/$name" "$target_dir/$t/release/handoff"
    tar -C "$out" -czf "$out/$name.tar.gz" "$name"
    rm -rf "${out:?}/$name"
    sum "$name.tar.gz"
    done_with "$t"
  done
}

case $only in
  linux) linux ;;
  windows) windows ;;
  macos) macos ;;
  all) linux; windows; macos ;;
  *) echo "usage: $0 [linux|windows|macos|all]" >&2; exit 2 ;;
esac
echo "archives in $out"
if [ ${#skipped[@]} -gt 0 ]; then
  printf 'NOT built: %s\n' "${skipped[@]}" >&2
fi
