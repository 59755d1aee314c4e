#!/bin/sh
# Builds pam-totp-<version>-1.<arch>.rpm with rpmbuild from packaging/rpm/pam-totp.spec, using
# the binaries `make build` left in target/release. Works on Debian (package `rpm`) as on Fedora.
# Usage: build-rpm.sh OUTDIR
set -eu

outdir=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$top/Cargo.toml")
topdir="$top/target/packaging/rpmbuild"
rm -rf "$topdir"
mkdir -p "$topdir" "$outdir"
# `make install` strips and gzips already; Debian's brp-compress is not even dash-clean.
# --nodeps: BuildRequires name Fedora packages, which a Debian rpm database does not know.
rpmbuild -bb --nodeps --with prebuilt \
    --define "_topdir $topdir" \
    --define "srcdir $top" \
    --define "pt_version $version" \
    --define "_build_id_links none" \
    --define "__os_install_post %{nil}" \
    "$here/pam-totp.spec"
find "$topdir/RPMS" -name '*.rpm' -exec cp {} "$outdir/" \;
ls "$outdir"/pam-totp-"$version"-*.rpm
