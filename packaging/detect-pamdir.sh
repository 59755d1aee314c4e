#!/bin/sh
# Prints the directory where this system's libpam finds modules named without a path, so that
# `make install` puts pam_totp.so next to pam_unix.so whatever the distribution.
#
# On dpkg systems the answer is the path spelled by the package that ships pam_unix.so:
# bookworm ships /lib/<triplet>/security, trixie and later /usr/lib/<triplet>/security. Under
# the /usr merge both spellings are one directory, but dpkg only knows the one packages use.
# Elsewhere: the first candidate directory that holds pam_unix.so.
set -u

if command -v dpkg-query >/dev/null 2>&1; then
    path=$(dpkg-query -S '*/security/pam_unix.so' 2>/dev/null | sed -n '1s/^.*: \(\/.*\)$/\1/p')
    if [ -n "$path" ]; then
        dirname "$path"
        exit 0
    fi
fi

triplet=$( (dpkg-architecture -qDEB_HOST_MULTIARCH || gcc -print-multiarch) 2>/dev/null)
for dir in /usr/lib64/security /lib64/security \
    ${triplet:+/usr/lib/$triplet/security /lib/$triplet/security} \
    /usr/lib/*-linux-gnu*/security /usr/lib/security /lib/security; do
    if [ -e "$dir/pam_unix.so" ]; then
        echo "$dir"
        exit 0
    fi
done
echo "detect-pamdir: no pam_unix.so found; set PAMDIR=/path/to/security" >&2
exit 1
