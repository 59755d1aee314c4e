#!/usr/bin/env bash
# Installs the Debian packages the build and the whole test suite need (Debian 12 or later).
# Run as root. Safe to run again: apt-get skips what is installed. The package lists are updated
# first only when they are missing or more than a day old (packaging/apt-install.sh).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "tests/install-deps.sh: run as root (sudo tests/install-deps.sh)" >&2
  exit 1
fi
packages=(
  # build: the unversioned libpam.so the module links against
  libpam0g-dev pkg-config
  # real libpam clients, real sshd and its clients
  openssh-server openssh-client python3-paramiko
  # QR decoding, code computation, clock shifting
  zbar-tools oathtool libfaketime
  # the peer we compare with and import from
  libpam-google-authenticator
  # packages and their linters
  lintian rpm fakeroot dpkg-dev cpio
  # the throwaway directory servers of the LDAP backend's tests (tests/src/slapd.rs): slapd with
  # its otp module, the ldap-utils clients, and openssl for the test CA. slapd's maintainer
  # script makes a default /etc/ldap/slapd.d and tries to start the system service; a failed
  # start does not fail the install (its postinst ignores it), and the tests never use that
  # service: each runs its own slapd on free ports.
  slapd ldap-utils openssl
  # misc tools used by tests
  util-linux procps passwd file binutils libnss-wrapper time
)
had_slapd=$(dpkg-query -W -f='${Status}' slapd 2>/dev/null | grep -c 'ok installed' || true)
sh "$(dirname "$0")/../packaging/apt-install.sh" "${packages[@]}"
# Installing slapd starts the system's LDAP server (port 389, an empty dc=nodomain directory)
# where systemd runs. The tests never use it; when this script brought slapd in, it stops and
# disables that service again rather than leave a server running that nobody asked for.
if [ "$had_slapd" = 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  if systemctl disable --now slapd >/dev/null 2>&1; then
    echo "install-deps: stopped and disabled the slapd service that installing slapd started (the tests run their own)"
  fi
fi
echo "install-deps: ${#packages[@]} packages present"
