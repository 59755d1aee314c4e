#!/bin/sh
# The cargo that `make` and tests/run-all.sh use, checked against the workspace's rust-version
# (edition 2024 needs cargo 1.85; Debian 12's own cargo is 1.65).
#
#   packaging/cargo.sh ARGS...   runs cargo ARGS
#   packaging/cargo.sh --bindir  prints the directory of a cargo root can run (for PATH)
#   packaging/cargo.sh --check   only checks, prints the cargo used
#   packaging/cargo.sh --user    prints the user cargo runs as when not the caller (under sudo)
#
# Where cargo comes from:
# - through sudo (SUDO_USER set), the invoking user's rustup toolchain (~/.cargo/bin) first, since
#   sudo's secure_path drops it. cargo then runs as that user when the checkout is theirs, so that
#   target/ and ~/.cargo stay theirs; `--bindir` resolves rustup's proxy to the toolchain itself,
#   which root can run without the user's ~/.rustup settings;
# - otherwise cargo in PATH, else ~/.cargo/bin/cargo (rustup installed, shell not restarted).
# A missing or old cargo is one line on stderr with the fix, and exit status 1.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
min=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$top/Cargo.toml" | head -n 1)
rustup_fix="install Rust with rustup as the user who builds: curl --proto '=https' -sSf https://sh.rustup.rs | sh (see README: Rust toolchain)"

user=
home=
cargo=
if [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -n "$home" ] && [ -x "$home/.cargo/bin/cargo" ]; then
        cargo=$home/.cargo/bin/cargo
        user=$SUDO_USER
    fi
fi
if [ -z "$cargo" ]; then
    cargo=$(command -v cargo 2>/dev/null)
    if [ -z "$cargo" ] && [ -n "${HOME:-}" ] && [ -x "$HOME/.cargo/bin/cargo" ]; then
        cargo=$HOME/.cargo/bin/cargo
    fi
fi
if [ -z "$cargo" ]; then
    echo "error: cargo not found (this code needs Rust >= $min): $rustup_fix" >&2
    exit 1
fi

# The invoking user builds in a checkout of theirs.
runas=
if [ -n "$user" ] && [ "$(stat -c %U "$top")" = "$user" ]; then
    runas=$user
fi

# Runs the found cargo: as the invoking user if the checkout is theirs, else as ourselves.
as_builder() {
    if [ -n "$runas" ]; then
        runuser -u "$runas" -- env HOME="$home" PATH="$home/.cargo/bin:$PATH" "$@"
    elif [ -n "$user" ]; then
        # Root builds in a checkout that is not the user's: the user's toolchain, root's CARGO_HOME.
        env RUSTUP_HOME="$home/.rustup" PATH="$home/.cargo/bin:$PATH" "$@"
    else
        env PATH="$(dirname "$cargo"):$PATH" "$@"
    fi
}

version=$(as_builder "$cargo" --version 2>/dev/null | sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p')
if [ -z "$version" ]; then
    echo "error: $cargo --version failed (no default toolchain? try: rustup default stable): $rustup_fix" >&2
    exit 1
fi
older=$(printf '%s\n%s\n' "$min" "$version" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)
if [ "$older" != "$min" ]; then
    echo "error: $cargo is $version, older than the $min this code needs (edition 2024): $rustup_fix" >&2
    exit 1
fi

case "${1:-}" in
--check)
    echo "cargo $version ($cargo${user:+, as $user})"
    ;;
--user)
    [ -z "$runas" ] || echo "$runas"
    ;;
--bindir)
    # rustup's proxy needs the user's ~/.rustup; the toolchain's own bin directory does not.
    real=$(as_builder rustup which cargo 2>/dev/null) || real=$cargo
    dirname "$real"
    ;;
*)
    as_builder "$cargo" "$@"
    ;;
esac
