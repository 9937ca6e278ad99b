#!/usr/bin/env bash
# Installs what the tests talk to (Debian packages, PyPI, npm), then runs the whole test suite.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/install-test-deps.sh
export PATH="$here/.test-tools/venv/bin:$PATH"
# every channel is a cargo feature: the code and its tests must also build with none of them
cargo check --workspace --no-default-features --all-targets --quiet
suite=0
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo test --workspace --all-features --doc --quiet
  cargo nextest run --workspace --all-features --no-fail-fast || suite=$?
else
  cargo test --workspace --all-features --no-fail-fast || suite=$?
fi
# the user's other machines (run even when the suite failed, so both results show): the Windows binary
# under Wine, every crate compiled for macOS
cross=0
bash scripts/test-cross.sh || cross=$?
[ "$suite" = 0 ] && [ "$cross" = 0 ]
