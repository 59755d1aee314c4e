#!/bin/sh
# Installs Debian packages quietly for `make deps` and tests/install-deps.sh (as root).
# The package lists are updated first when they are missing or more than a day old, so a fresh
# machine never shows apt's "E: Unable to locate package" lines. apt's output is shown only when
# something fails.
#   packaging/apt-install.sh PACKAGE...
set -u
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() {
    echo "$1 failed:" >&2
    cat "$log" >&2
    exit 1
}

if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
    echo "apt-get update (package lists missing or older than a day)"
    apt-get update -q >"$log" 2>&1 || fail "apt-get update"
fi
apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 || fail "apt-get install $*"
