#!/usr/bin/env bash
# Runs the README's two set-up commands, as written, on fresh Debian 12 root file systems made
# with debootstrap: once as root without sudo (the commands with `sudo ` left out, as the README
# says), once through sudo from a user whose rustup toolchain is in their home (sudo's
# secure_path drops ~/.cargo/bin). Not part of tests/run-all.sh nor of CI: it takes about 15
# minutes on 2 CPUs (two builds from scratch and two test runs), about 3.5 GB in /var/tmp, and
# the Debian mirror; see the README.
#
#   sudo tests/fresh-readme.sh                       both scenarios
#   FRESH_README_SCENARIOS=root tests/fresh-readme.sh  one of root, sudo
#   FRESH_README_TEST_ENV="SKIP_FUZZ=1 SKIP_PACKAGING=1"   environment of the test command (default)
#   FRESH_README_LOCK=/tmp/e2e.lock                  flock this file around each test command
#   FRESH_README_MIRROR=http://deb.debian.org/debian
#   FRESH_README_KEEP=1                              keep the work directory (path printed)
#
# Needs root, debootstrap (installed with apt-get if missing), network access to the Debian
# mirror and a Rust toolchain (rustup) for root on this host, which is copied into the fresh
# systems. Everything runs in a private mount namespace, so the /proc, /sys and /dev mounts of
# the fresh systems never show on the host and go away with the script even if it is killed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
    echo "tests/fresh-readme.sh: run as root" >&2
    exit 1
fi
if [ -z "${FRESH_README_IN_NS:-}" ]; then
    exec env FRESH_README_IN_NS=1 unshare --mount --propagation private "$0" "$@"
fi

mirror=${FRESH_README_MIRROR:-http://deb.debian.org/debian}
scenarios=${FRESH_README_SCENARIOS:-root sudo}
test_env=${FRESH_README_TEST_ENV:-SKIP_FUZZ=1 SKIP_PACKAGING=1}
work=$(mktemp -d /var/tmp/pam-totp-fresh-readme.XXXXXX)
start=$(date +%s)
mounted=()

log() { printf '\n[fresh-readme %4ds] %s\n' "$(($(date +%s) - start))" "$*"; }
cleanup() {
    local m
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        m=${mounted[i]}
        umount -R "$m" 2>/dev/null || umount -lR "$m" 2>/dev/null || true
    done
    if [ -n "${FRESH_README_KEEP:-}" ]; then
        echo "kept $work"
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT

# The README's set-up commands: the first ```sh block after the "... two commands" heading.
mapfile -t commands < <(awk '
    /^#+ .*two commands/ { inside = 1; next }
    inside && /^```sh/ { block = 1; next }
    block && /^```/ { exit }
    block { sub(/[ \t]+#.*$/, ""); if (length($0)) print }
' "$here/README.md")
if [ "${#commands[@]}" != 2 ]; then
    echo "expected two set-up commands in README.md, found ${#commands[@]}: ${commands[*]}" >&2
    exit 1
fi
for c in "${commands[@]}"; do
    case $c in
    "sudo "*) ;;
    *) echo "README set-up command without sudo prefix: $c" >&2; exit 1 ;;
    esac
done
log "README set-up commands: ${commands[0]} ; ${commands[1]}"

# The checkout, taken once at the start: the files git tracks or would track (no target/, no
# .git), so that both scenarios test the same tree.
mkdir -p "$work/src"
(cd "$here" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$work/src"
copy_source() {
    cp -a "$work/src" "$1"
}

command -v debootstrap >/dev/null || sh "$here/packaging/apt-install.sh" debootstrap

# Host toolchain to copy: CARGO_HOME and RUSTUP_HOME with only the default toolchain.
cargo_home=$(dirname "$(dirname "$(command -v cargo || echo "$HOME/.cargo/bin/cargo")")")
rustup_home=$(rustup show home)
toolchain=$(sed -n 's/^default_toolchain *= *"\(.*\)"/\1/p' "$rustup_home/settings.toml")
[ -x "$cargo_home/bin/cargo" ] && [ -d "$rustup_home/toolchains/$toolchain" ] || {
    echo "no rustup toolchain found on this host ($cargo_home, $rustup_home/toolchains/$toolchain)" >&2
    exit 1
}

log "debootstrap bookworm (minbase) from $mirror"
base=$work/base
debootstrap --variant=minbase --include=ca-certificates bookworm "$base" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# What a fresh server has beside the minimal base: a root account to log in as, sudo for the
# user scenario, make (the README's prerequisite). No services start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
chmod 0755 "$base/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$base/etc/resolv.conf"
printf '127.0.1.1\t%s\n' "$(hostname)" >>"$base/etc/hosts"
chroot "$base" apt-get install -y -q --no-install-recommends make sudo >"$work/base-apt.log" 2>&1 ||
    { tail -n 30 "$work/base-apt.log" >&2; exit 1; }

# Copies the toolchain to HOME inside ROOT, owned by OWNER, with rustup's shell set-up.
give_toolchain() {
    local root=$1 home=$2 owner=$3
    mkdir -p "$root$home/.rustup/toolchains"
    cp -a "$cargo_home" "$root$home/.cargo"
    cp -a "$rustup_home/settings.toml" "$root$home/.rustup/"
    cp -a "$rustup_home/toolchains/$toolchain" "$root$home/.rustup/toolchains/"
    for f in .profile .bashrc; do
        # shellcheck disable=SC2016 # written for the user's shell
        echo '. "$HOME/.cargo/env"' >>"$root$home/$f"
    done
    chroot "$root" chown -R "$owner" "$home/.cargo" "$home/.rustup" "$home/.profile" "$home/.bashrc"
}

mount_system() {
    local root=$1
    mount -t proc proc "$root/proc" && mounted+=("$root/proc")
    mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys")
    mount --rbind /dev "$root/dev" && mounted+=("$root/dev")
    mount -t tmpfs tmpfs "$root/run" && mounted+=("$root/run")
}

# Runs a command line in ROOT as USER through a login shell, timed; the test command under the
# lock if one is given.
in_root() {
    local root=$1 user=$2 line=$3 what=$4 t0 status=0
    t0=$(date +%s)
    log "$what: $line"
    local run=(chroot "$root" runuser -l "$user" -c "$line")
    if [ -n "${FRESH_README_LOCK:-}" ] && [[ $line == *run-all.sh* ]]; then
        run=(flock "$FRESH_README_LOCK" "${run[@]}")
    fi
    "${run[@]}" >"$work/$what.log" 2>&1 || status=$?
    echo "  exit $status after $(($(date +%s) - t0)) s (log: $what.log)"
    if [ "$status" != 0 ]; then
        tail -n 40 "$work/$what.log" >&2
        return 1
    fi
}

failed=()
for scenario in $scenarios; do
    root=$work/$scenario
    log "scenario $scenario: fresh copy of the base system"
    cp -a "$base" "$root"
    mount_system "$root"
    case $scenario in
    root)
        give_toolchain "$root" /root root:root
        copy_source "$root/root/pam-totp"
        # As root there is no sudo to type: the README's commands without it.
        in_root "$root" root "cd ~/pam-totp && ${commands[0]#sudo }" "$scenario-install" &&
            in_root "$root" root "cd ~/pam-totp && $test_env ${commands[1]#sudo }" "$scenario-tests" &&
            chroot "$root" test -x /usr/local/bin/pam-totp ||
            failed+=("$scenario")
        ;;
    sudo)
        chroot "$root" useradd -m -s /bin/bash -G sudo admin
        echo 'admin ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/admin"
        chmod 0440 "$root/etc/sudoers.d/admin"
        give_toolchain "$root" /home/admin admin:admin
        copy_source "$root/home/admin/pam-totp"
        chroot "$root" chown -R admin:admin /home/admin/pam-totp
        # sudo keeps only env_keep variables: the test settings go on sudo's command line.
        in_root "$root" admin "cd ~/pam-totp && ${commands[0]}" "$scenario-install" &&
            in_root "$root" admin "cd ~/pam-totp && sudo $test_env ${commands[1]#sudo }" "$scenario-tests" &&
            chroot "$root" test -x /usr/local/bin/pam-totp &&
            chroot "$root" runuser -u admin -- test -w /home/admin/pam-totp/target/release/pam-totp ||
            failed+=("$scenario")
        ;;
    *)
        echo "unknown scenario $scenario (root, sudo)" >&2
        failed+=("$scenario")
        ;;
    esac
done

log "done in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" != 0 ]; then
    echo "fresh-readme: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fresh-readme: the README's two commands passed in: $scenarios"
