#!/usr/bin/env bash
# Runs a command (by default the cargo tests) as on a host where a syslog daemon owns /dev/log,
# as journald does on every systemd machine: a stand-in daemon listens on a socket that /dev/log
# links to, like journald's /run/systemd/journal/dev-log. It all happens in a private mount
# namespace with its own copy of /dev, so the host's /dev/log (present or not) is never touched.
# The log tests must pass like this: they capture the module's lines without the host's /dev/log.
#
#   sudo tests/with-syslog-daemon.sh                        cargo test --workspace --locked
#   sudo tests/with-syslog-daemon.sh cargo test -p pam-totp-e2e --test ssh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "tests/with-syslog-daemon.sh: run as root" >&2
    exit 1
fi
if [ -z "${WITH_SYSLOG_DAEMON_NS:-}" ]; then
    exec env WITH_SYSLOG_DAEMON_NS=1 unshare --mount --propagation unchanged "$0" "$@"
fi
# Nothing mounted here reaches the host. In a chroot `/` is no mount point: each mount then.
mount --make-rprivate / 2>/dev/null ||
    findmnt -rno TARGET | while read -r m; do mount --make-private "$m"; done
[ $# -gt 0 ] || set -- cargo test --workspace --locked

work=$(mktemp -d /tmp/pam-totp-syslog-daemon.XXXXXX)
# Like /run/systemd/journal: every user reaches the socket.
chmod 0755 "$work"
daemon=
cleanup() {
    [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
    umount -l "$work/host-dev" 2>/dev/null || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# The daemon: reads every datagram and counts them, as journald would store them.
python3 - "$work/dev-log" "$work/received" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
import os
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(65536).decode("utf-8", "replace").rstrip("\n\0") + "\n")
PY
daemon=$!
for _ in $(seq 50); do [ -S "$work/dev-log" ] && break; sleep 0.1; done
[ -S "$work/dev-log" ] || { echo "the stand-in daemon did not start" >&2; exit 1; }

# A /dev of our own: a tmpfs with the host's entries bind-mounted back, /dev/log a link.
mkdir "$work/host-dev"
mount --rbind /dev "$work/host-dev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for from in "$work/host-dev"/*; do
    name=${from##*/}
    to=/dev/$name
    if [ "$name" = log ]; then
        continue
    elif [ "$name" = ptmx ]; then
        # Opening a bind-mounted ptmx does not find its devpts; the link does.
        ln -s pts/ptmx "$to"
    elif [ -L "$from" ]; then
        ln -s "$(readlink "$from")" "$to"
    elif [ -d "$from" ]; then
        mkdir "$to" && mount --rbind "$from" "$to"
    else
        : >"$to" && mount --bind "$from" "$to"
    fi
done
umount -l "$work/host-dev"
ln -s "$work/dev-log" /dev/log
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' ||
    { echo "/dev/log does not reach the stand-in daemon" >&2; exit 1; }
echo "with-syslog-daemon: a daemon listens on /dev/log -> $work/dev-log; running: $*"

status=0
"$@" || status=$?
echo "with-syslog-daemon: the daemon received $(wc -l <"$work/received") lines, $(grep -c 'pam_totp' "$work/received" || true) from pam_totp (tests without a capture)"
exit "$status"
