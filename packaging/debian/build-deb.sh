#!/bin/sh
# Turns a `make install DESTDIR=ROOT PREFIX=/usr` tree into libpam-totp_<version>_<arch>.deb with
# dpkg-deb: adds the control files, maintainer scripts, copyright, changelog and lintian
# overrides. Called by `make deb`; needs dpkg-dev (dpkg-shlibdeps) and nothing from crates.io.
# Usage: build-deb.sh ROOT OUTDIR
set -eu

root=$(cd "$1" && pwd)
outdir=$2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
package=libpam-totp
umask 022

version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$here/changelog")
cargo_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$top/Cargo.toml")
if [ "${version%-*}" != "$cargo_version" ]; then
    echo "build-deb: packaging/debian/changelog says $version but Cargo.toml says $cargo_version;" \
        "add a changelog entry" >&2
    exit 1
fi
arch=$(dpkg --print-architecture)
# Reproducible: file times and the changelog's gzip header come from the changelog date.
SOURCE_DATE_EPOCH=$(date -d "$(sed -n 's/^ -- .*>  //p' "$here/changelog" | head -n1)" +%s)
export SOURCE_DATE_EPOCH

doc="$root/usr/share/doc/$package"
install -d -m 0755 "$root/DEBIAN" "$doc" "$root/usr/share/lintian/overrides"
install -m 0644 "$here/copyright" "$doc/copyright"
gzip -9n < "$here/changelog" > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/$package"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done

# Every file under /etc is a conffile (Debian policy 10.7.2).
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"

# Shared-library dependencies of the ELF files, as dh_shlibdeps would compute them.
elves=$(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | while read -r f; do
    if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then echo "$f"; fi
done)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debian"
printf 'Source: pam-totp\n\nPackage: %s\nArchitecture: any\n' "$package" > "$work/debian/control"
depends=$(cd "$work" && for f in $elves; do printf -- '-e%s\n' "$root/$f"; done |
    xargs dpkg-shlibdeps -O 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
    xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$depends/" "$here/control.in" > "$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"

find "$root" -type d -exec chmod 0755 {} +
# The state tells when and from where users log in: root's alone.
chmod 0700 "$root/var/lib/pam-totp"
mkdir -p "$outdir"
dpkg-deb --root-owner-group -Zxz --build "$root" "$outdir/${package}_${version}_${arch}.deb"
