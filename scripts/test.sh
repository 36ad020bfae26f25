#!/usr/bin/env bash
# The whole test suite. Installs what it needs when missing, and fails loudly rather
# than skipping anything. `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is required (Rust toolchain from rustup)"

# --- host tools -----------------------------------------------------------------------
apt_missing=()
command -v cc >/dev/null || apt_missing+=(gcc)
command -v c++ >/dev/null || apt_missing+=(g++)
command -v pkg-config >/dev/null || apt_missing+=(pkg-config)
if ((${#apt_missing[@]})); then
  say "installing ${apt_missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

# --- host suite -----------------------------------------------------------------------
say "format"
cargo fmt --all -- --check

say "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "tests (host)"
cargo test --workspace --locked

say "host platform (root, real physical addresses)"
cargo test --locked -p dma-tests --features host --test host

say "benches compile and run once (criterion test mode)"
cargo test --locked -p dma-benches --benches

say "docs (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

say "demo"
cargo run --locked -q -p dma-core --example demo >/dev/null

say "qemu system suite"; tests/qemu/run.sh
say "cross"; scripts/cross.sh
say "all suites passed"
