#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting, lints, unit tests, the
# end-to-end tests through the real libpam and a real sshd (as root), and the packages.
#   sudo tests/run-all.sh            everything
#   SKIP_DEPS=1 tests/run-all.sh     do not call apt-get (dependencies already installed)
#   SKIP_FUZZ=1 tests/run-all.sh     leave out the bounded fuzzing run
#   SKIP_PACKAGING=1 tests/run-all.sh  leave out building, linting and installing the packages
#   FUZZ_SECONDS=60 tests/run-all.sh fuzz each target longer (default 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

# The cargo to use (one line with the fix if it is missing or older than rust-version). Through
# sudo that is the invoking user's rustup toolchain, which secure_path leaves out of PATH: then
# everything is built as that user (packaging/cargo.sh), and root only runs the tests, with the
# user's toolchain and crates, giving back at the end whatever it created in their checkout or
# cargo home.
bindir=$(sh packaging/cargo.sh --bindir)
export PATH="$bindir:$PATH"
builder=$(sh packaging/cargo.sh --user)
if [ -n "$builder" ]; then
  CARGO_HOME=$(getent passwd "$builder" | cut -d: -f6)/.cargo
  export CARGO_HOME
  trap 'find target fuzz/target "$CARGO_HOME" ! -user "$builder" -exec chown -h "$builder": {} + 2>/dev/null || true' EXIT
  build() { sh packaging/cargo.sh "$@"; }
else
  build() { cargo "$@"; }
fi

if [ "${SKIP_DEPS:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
  step "installing Debian packages"
  tests/install-deps.sh
fi

step "cargo fmt --check"
build fmt --all --check

step "cargo clippy -D warnings"
build clippy --workspace --all-targets --locked -- -D warnings

step "cargo build"
build build --workspace --locked

step "the module links libpam dynamically"
readelf -d target/debug/libpam_totp.so | grep -q 'NEEDED.*libpam\.so\.0' ||
  { echo "libpam_totp.so does not link libpam.so.0 dynamically" >&2; exit 1; }

step "cargo test (unit, CLI, libpam and sshd end-to-end)"
build test --workspace --locked --no-run
cargo test --workspace --locked

if [ "${SKIP_PACKAGING:-0}" != 1 ] && [ -x tests/packaging.sh ] && [ "$(id -u)" = 0 ]; then
  step "packages (.deb and .rpm)"
  tests/packaging.sh
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "bounded fuzzing (cargo-fuzz, ${FUZZ_SECONDS:-30} s per target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} fuzz/run.sh
fi
echo
echo "run-all: all steps passed"
