#!/usr/bin/env bash
# Package test (issue 6): builds the .deb and the .rpm with `make deb rpm`, lints and inspects
# them, checks the ELF module, tries `make install`/`make uninstall` into a scratch DESTDIR,
# installs the .deb, logs an enrolled user in through a PAM service naming `pam_totp.so` by its
# bare name, wires the module into common-auth with pam-auth-update and back, and purges the
# package. Run as root on Debian 12 (CI runs it after the cargo tests):
#   sudo tests/packaging.sh
# Everything it adds (users, PAM service files, the package) is removed on exit, also on
# failure. The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$PWD
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
PATH="$PATH:/usr/sbin:/sbin"

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok      %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/        /'; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$desc"; else fail "$desc" "$out"; fi
}
# Stops the run after a failure the later steps depend on.
fatal() { fail "$1" "${2:-}"; echo "stopping: later steps depend on this"; exit 1; }
step() { printf '\n== %s\n' "$*"; }
# useradd/userdel/chpasswd fail while another process holds /etc/passwd's lock: try again.
retry() {
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        "$@" && return 0
        sleep 1
    done
    return 1
}

package=libpam-totp
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
tmp=$(mktemp -d /tmp/pam-totp-packaging.XXXXXX)
chmod 0755 "$tmp"
service=pkgtotp-test$$
service_common=pkgtotp-common$$
user_a=pkgtotp-a$$
user_b=pkgtotp-b$$
statedir=/var/lib/pam-totp
# Paths the package owns that a source install or another test may have left: moved aside
# while the test runs and put back afterwards.
stash_paths=(/etc/security/pam_totp.conf "$statedir" /usr/share/pam-configs/totp)
common_files=(/etc/pam.d/common-auth /etc/pam.d/common-account /etc/pam.d/common-password
    /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive)
we_installed=no

cleanup() {
    local status=$?
    set +e
    trap '' INT TERM # finish cleaning up even if interrupted again
    step "cleaning up"
    if [ "$we_installed" = yes ] && dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q installed; then
        dpkg -P "$package" >"$tmp/cleanup-purge.log" 2>&1 || cat "$tmp/cleanup-purge.log"
    fi
    for u in "$user_a" "$user_b"; do
        if getent passwd "$u" >/dev/null; then retry userdel -r "$u" >/dev/null 2>&1; fi
    done
    rm -f "/etc/pam.d/$service" "/etc/pam.d/$service_common"
    # common-* must be as they were; if anything went wrong half-way, put the copies back.
    if [ -d "$tmp/orig" ]; then
        for f in "${common_files[@]}"; do
            [ -f "$tmp/orig/${f##*/}" ] || continue
            if ! cmp -s "$tmp/orig/${f##*/}" "$f"; then
                echo "restoring $f"
                cp -p "$tmp/orig/${f##*/}" "$f"
            fi
        done
    fi
    for p in "${stash_paths[@]}"; do
        if [ -e "$tmp/stash$p" ]; then
            rm -rf "$p"
            mkdir -p "$(dirname "$p")"
            mv "$tmp/stash$p" "$p"
        fi
    done
    rm -rf "$tmp"
    echo
    echo "$passed passed, $failed failed"
    if [ "$failed" -gt 0 ]; then exit 1; fi
    exit "$status"
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 130' INT TERM

step "prerequisites"
if [ "$(id -u)" != 0 ]; then
    fatal "runs as root (installs a package, adds users and PAM services)"
fi
need=()
for p in lintian rpm cpio fakeroot oathtool dpkg-dev binutils passwd libpam-runtime make gzip; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "apt-get install ${need[*]}"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$tmp/apt.log" 2>&1 || fatal "apt-get install ${need[*]}" "$(tail -n 20 "$tmp/apt.log")"
fi
if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
    fatal "$package is not installed before the test (it would be purged)"
fi
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg --print-architecture)
case "$(cut -d. -f1 /etc/debian_version)" in
    12) deb_pamdir=/lib/$triplet/security ;;     # bookworm: the spelling libpam-modules uses
    *) deb_pamdir=/usr/lib/$triplet/security ;;  # trixie and later: files under /usr only
esac
pass "root, tools present (Debian $(cat /etc/debian_version), module dir $deb_pamdir)"

# The PAM client of the test harness (built by the cargo tests that run before this script).
pam_client=${PAM_CLIENT:-target/${PAM_TOTP_PROFILE:-debug}/pam-client}
[ -x "$pam_client" ] || fatal "no $pam_client: build the tests first (cargo build --workspace)"

step "building: make deb rpm"
start=$(date +%s)
if ! make deb rpm >"$tmp/build.log" 2>&1; then
    fatal "make deb rpm" "$(tail -n 30 "$tmp/build.log")"
fi
echo "make deb rpm took $(($(date +%s) - start)) s"
grep '^warning' "$tmp/build.log" || true
deb=target/packages/${package}_${version}-1_${arch}.deb
rpmfile=$(ls target/packages/pam-totp-"$version"-1.*.rpm 2>/dev/null | head -n1)
check "make deb rpm made $deb" test -s "$deb"
check "make deb rpm made target/packages/pam-totp-$version-1.<arch>.rpm" test -s "$rpmfile"
[ -s "$deb" ] || fatal "no .deb to test"

step "the module's ELF interface"
mkdir -p "$tmp/deb" "$tmp/rpm"
dpkg-deb -x "$deb" "$tmp/deb"
(cd "$tmp/rpm" && rpm2cpio "$top/$rpmfile" | cpio -idm --quiet) || fail "unpacking the .rpm"
expected_symbols=$'pam_sm_acct_mgmt\npam_sm_authenticate\npam_sm_chauthtok\npam_sm_close_session\npam_sm_open_session\npam_sm_setcred'
for so in target/release/libpam_totp.so "$tmp/deb$deb_pamdir/pam_totp.so" "$tmp/rpm/usr/lib64/security/pam_totp.so"; do
    name=${so#"$tmp"/}
    if [ ! -f "$so" ]; then fail "$name exists"; continue; fi
    symbols=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort)
    if [ "$symbols" = "$expected_symbols" ]; then
        pass "$name exports exactly the six pam_sm_* entry points"
    else
        fail "$name exports exactly the six pam_sm_* entry points" "$symbols"
    fi
    check "$name: NEEDED libpam.so.0 (linked dynamically)" \
        sh -c "readelf -d '$so' | grep -q 'NEEDED.*\[libpam\.so\.0\]'"
    check "$name: undefined pam_get_item@LIBPAM_1.0 (libpam not copied in)" \
        sh -c "nm -D --undefined-only '$so' | grep -q 'pam_get_item@LIBPAM_1.0'"
done
for f in "$tmp/deb$deb_pamdir/pam_totp.so" "$tmp/deb/usr/bin/pam-totp" "$tmp/rpm/usr/lib64/security/pam_totp.so"; do
    check "${f#"$tmp"/} is stripped" sh -c "! readelf -S '$f' | grep -q '\.symtab'"
done

step "lintian"
if lintian --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1; then
    pass "lintian: no errors or warnings beyond the overrides"
else
    fail "lintian: no errors or warnings beyond the overrides" "$(grep -v 'running with root' "$tmp/lintian.log")"
fi
sed 's/^/        /' "$tmp/lintian.log" | grep -v 'running with root' || true

step "the .deb: files, modes, control"
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' | sed 's| \./| /|; s|/$||' >"$tmp/deb-list"
deb_has() { # MODE PATH
    grep -qxF -- "$1 root/root $2" "$tmp/deb-list" || { echo "missing: $1 root/root $2"; return 1; }
}
check "module $deb_pamdir/pam_totp.so 0644" deb_has -rw-r--r-- "$deb_pamdir/pam_totp.so"
check "CLI /usr/bin/pam-totp 0755" deb_has -rwxr-xr-x /usr/bin/pam-totp
for f in /etc/security/pam_totp.conf /usr/share/pam-configs/totp /usr/lib/tmpfiles.d/pam-totp.conf \
    /usr/share/man/man8/pam_totp.8.gz /usr/share/man/man5/pam_totp.conf.5.gz \
    /usr/share/man/man1/pam-totp.1.gz \
    /usr/share/bash-completion/completions/pam-totp /usr/share/zsh/vendor-completions/_pam-totp \
    /usr/share/fish/vendor_completions.d/pam-totp.fish \
    /usr/share/doc/$package/README.md /usr/share/doc/$package/copyright \
    /usr/share/doc/$package/changelog.Debian.gz /usr/share/lintian/overrides/$package; do
    check "ships $f (0644)" deb_has -rw-r--r-- "$f"
done
for f in docs/*.md config/pam.d/*.example config/sshd_config.d/*.example packaging/ldap/*; do
    [ -f "$f" ] || continue
    case $f in
        docs/*) dest=/usr/share/doc/$package/${f##*/} ;;
        packaging/ldap/*) dest=/usr/share/doc/$package/ldap/${f##*/} ;;
        *) dest=/usr/share/doc/$package/examples/${f##*/} ;;
    esac
    check "ships $f as $dest" deb_has -rw-r--r-- "$dest"
done
# The fleet guide and the directory files by name: the loop above checks only what the tree has.
fleet_docs=(fleet.md ldap/pam-totp.ldif ldap/pam-totp.schema ldap/389ds-99pam-totp.ldif
    ldap/pam-totp-acl.ldif ldap/INSTALL.md)
for f in "${fleet_docs[@]}"; do
    check "ships /usr/share/doc/$package/$f" deb_has -rw-r--r-- "/usr/share/doc/$package/$f"
done
check "the ldap files are the source's, uncompressed (for ldapadd -f and sed)" \
    sh -c "for f in packaging/ldap/*; do cmp \"\$f\" \"$tmp/deb/usr/share/doc/$package/ldap/\${f##*/}\" || exit 1; done"
check "ships the state directory /var/lib/pam-totp (0700 root)" deb_has drwx------ /var/lib/pam-totp
check "every file is root/root" sh -c "! grep -v ' root/root ' '$tmp/deb-list'"
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles lists /etc/security/pam_totp.conf" grep -qxF /etc/security/pam_totp.conf "$tmp/control/conffiles"
if [ -f config/pam_totp.conf.example ]; then
    check "the shipped config is config/pam_totp.conf.example" \
        cmp config/pam_totp.conf.example "$tmp/deb/etc/security/pam_totp.conf"
else
    fail "config/pam_totp.conf.example exists in the source tree"
fi
check "Depends: libpam0g, libpam-runtime, libc6" \
    sh -c "grep '^Depends:' '$tmp/control/control' | grep 'libpam0g' | grep 'libpam-runtime' | grep -q 'libc6'"
check "Version: $version-1" grep -qx "Version: $version-1" "$tmp/control/control"
check "postinst runs pam-auth-update --package" grep -q '^ *pam-auth-update --package$' "$tmp/control/postinst"
check "prerm runs pam-auth-update --package --remove totp on remove" \
    sh -c "grep -q '\"\$1\" = \"remove\"' '$tmp/control/prerm' && grep -q 'pam-auth-update --package --remove totp' '$tmp/control/prerm'"
check "postrm removes /var/lib/pam-totp on purge" \
    sh -c "grep -q '\"\$1\" = \"purge\"' '$tmp/control/postrm' && grep -q 'rm -rf /var/lib/pam-totp' '$tmp/control/postrm'"
for s in postinst prerm postrm; do
    check "$s is valid sh" sh -n "$tmp/control/$s"
done
check "md5sums match the payload" sh -c "cd '$tmp/deb' && md5sum --quiet -c '$tmp/control/md5sums'"
profile="$tmp/deb/usr/share/pam-configs/totp"
check "pam-configs profile: Default: no" grep -qx 'Default: no' "$profile"
check "pam-configs profile: Auth-Type: Additional" grep -qx 'Auth-Type: Additional' "$profile"
check "pam-configs profile: pam_totp.so nullok" grep -qP '^\t\S.*\tpam_totp\.so nullok$' "$profile"
check "tmpfiles.d: d /var/lib/pam-totp 0700 root root" \
    grep -qE '^d +/var/lib/pam-totp +0700 +root +root' "$tmp/deb/usr/lib/tmpfiles.d/pam-totp.conf"

step "the .rpm: files, modes, requires, scriptlets"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}: %{FILENAMES}\n]' \
    "$rpmfile" >"$tmp/rpm-list" 2>"$tmp/rpm-err"
sed 's/^/        /' "$tmp/rpm-list"
rpm_has() { # MODE FLAGS PATH
    grep -qxF -- "$1 root:root $2: $3" "$tmp/rpm-list" || { echo "missing: $1 root:root $2: $3"; return 1; }
}
check "rpm: /usr/lib64/security/pam_totp.so 0755" rpm_has -rwxr-xr-x "" /usr/lib64/security/pam_totp.so
check "rpm: /usr/bin/pam-totp 0755" rpm_has -rwxr-xr-x "" /usr/bin/pam-totp
check "rpm: /etc/security/pam_totp.conf is %config(noreplace)" rpm_has -rw-r--r-- cn /etc/security/pam_totp.conf
check "rpm: /usr/lib/tmpfiles.d/pam-totp.conf" rpm_has -rw-r--r-- "" /usr/lib/tmpfiles.d/pam-totp.conf
check "rpm: /var/lib/pam-totp 0700" rpm_has drwx------ "" /var/lib/pam-totp
for f in /usr/share/man/man8/pam_totp.8.gz /usr/share/man/man5/pam_totp.conf.5.gz \
    /usr/share/man/man1/pam-totp.1.gz /usr/share/doc/pam-totp/README.md; do
    check "rpm: $f (%doc)" rpm_has -rw-r--r-- d "$f"
done
check "rpm: /usr/share/licenses/pam-totp/LICENSE (%license)" rpm_has -rw-r--r-- l /usr/share/licenses/pam-totp/LICENSE
for f in /usr/share/bash-completion/completions/pam-totp /usr/share/zsh/site-functions/_pam-totp \
    /usr/share/fish/vendor_completions.d/pam-totp.fish; do
    check "rpm: $f" rpm_has -rw-r--r-- "" "$f"
done
for f in docs/*.md config/pam.d/*.example config/sshd_config.d/*.example packaging/ldap/*; do
    [ -f "$f" ] || continue
    case $f in
        docs/*) dest=/usr/share/doc/pam-totp/${f##*/} ;;
        packaging/ldap/*) dest=/usr/share/doc/pam-totp/ldap/${f##*/} ;;
        *) dest=/usr/share/doc/pam-totp/examples/${f##*/} ;;
    esac
    check "rpm: $dest (%doc)" rpm_has -rw-r--r-- d "$dest"
done
check "rpm: owns the directory /usr/share/doc/pam-totp/ldap" rpm_has drwxr-xr-x "" /usr/share/doc/pam-totp/ldap
for f in "${fleet_docs[@]}"; do
    check "rpm: /usr/share/doc/pam-totp/$f (%doc)" rpm_has -rw-r--r-- d "/usr/share/doc/pam-totp/$f"
done
check "rpm: nothing else (no pam-configs, no /lib)" sh -c "! grep -Ev ': (/usr/lib64/security/pam_totp\.so|/usr/bin/pam-totp|/etc/security/pam_totp\.conf|/usr/lib/tmpfiles\.d/pam-totp\.conf|/var/lib/pam-totp|/usr/share/(man/man[158]|doc/pam-totp|licenses/pam-totp|bash-completion/completions|zsh/site-functions|fish/vendor_completions\.d)(/[^/]*)?(/[^/]*)?)\$' '$tmp/rpm-list'"
if [ -f config/pam_totp.conf.example ]; then
    check "rpm: the shipped config is config/pam_totp.conf.example" \
        cmp config/pam_totp.conf.example "$tmp/rpm/etc/security/pam_totp.conf"
fi
rpm -qp --requires "$rpmfile" >"$tmp/rpm-requires" 2>/dev/null
for r in 'libpam.so.0()(64bit)' 'libpam.so.0(LIBPAM_1.0)(64bit)' 'libc.so.6()(64bit)' pam; do
    check "rpm requires $r" grep -qxF "$r" "$tmp/rpm-requires"
done
check "rpm: Name pam-totp, Version $version, License Apache-2.0" \
    sh -c "[ \"\$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{LICENSE}' '$rpmfile')\" = 'pam-totp $version 1 Apache-2.0' ]"
rpm -qp --qf '%{POSTIN}' "$rpmfile" >"$tmp/rpm-post" 2>/dev/null
rpm -qp --qf '%{POSTUN}' "$rpmfile" >"$tmp/rpm-postun" 2>/dev/null
check "rpm %post: only when selinuxenabled" grep -q 'command -v selinuxenabled .* && selinuxenabled' "$tmp/rpm-post"
check "rpm %post: semanage fcontext var_auth_t for /var/lib/pam-totp" \
    grep -qF "semanage fcontext -a -t var_auth_t '/var/lib/pam-totp(/.*)?'" "$tmp/rpm-post"
check "rpm %post: restorecon -R /var/lib/pam-totp" grep -qF 'restorecon -R /var/lib/pam-totp' "$tmp/rpm-post"
check "rpm %postun: removes the file context on erase" \
    sh -c "grep -q '\"\$1\" -eq 0' '$tmp/rpm-postun' && grep -qF \"semanage fcontext -d '/var/lib/pam-totp(/.*)?'\" '$tmp/rpm-postun'"
check "rpm %post and %postun are valid sh" sh -c "sh -n '$tmp/rpm-post' && sh -n '$tmp/rpm-postun'"
check "rpm %post does nothing and succeeds without SELinux" \
    sh -c "command -v selinuxenabled >/dev/null && selinuxenabled && exit 0; sh -e '$tmp/rpm-post' 1"

step "make install / make uninstall into a scratch DESTDIR"
stage=$tmp/stage
if make -s install DESTDIR="$stage" PREFIX=/usr/local >"$tmp/install.log" 2>&1; then
    pass "make install DESTDIR=... PREFIX=/usr/local"
else
    fail "make install DESTDIR=... PREFIX=/usr/local" "$(tail -n 20 "$tmp/install.log")"
fi
src_pamdir=$(make -s print-pamdir)
check "make install: module in the detected PAM directory $src_pamdir" test -f "$stage$src_pamdir/pam_totp.so"
check "make install: PAM directory is where pam_unix.so is" test -e "$src_pamdir/pam_unix.so"
check "make install: /usr/local/bin/pam-totp" test -x "$stage/usr/local/bin/pam-totp"
check "make install: config in /etc/security whatever PREFIX" test -f "$stage/etc/security/pam_totp.conf"
check "make install: man page under /usr/local/share/man" test -f "$stage/usr/local/share/man/man8/pam_totp.8.gz"
make -s install DESTDIR="$tmp/stage2" PAMDIR=/opt/pam-test/security >/dev/null 2>&1
check "make install PAMDIR=... is honoured" test -f "$tmp/stage2/opt/pam-test/security/pam_totp.so"
make -s uninstall DESTDIR="$stage" PREFIX=/usr/local >"$tmp/uninstall.log" 2>&1
left=$(find "$stage" ! -type d)
if [ -z "$left" ]; then pass "make uninstall removes every file"; else fail "make uninstall removes every file" "$left"; fi

step "installing the .deb"
mkdir -p "$tmp/orig" "$tmp/stash"
for f in "${common_files[@]}"; do [ -f "$f" ] && cp -p "$f" "$tmp/orig/"; done
for p in "${stash_paths[@]}"; do
    if [ -e "$p" ]; then
        mkdir -p "$tmp/stash$(dirname "$p")"
        mv "$p" "$tmp/stash$p"
        echo "moved $p aside for the test"
    fi
done
seen_before=$(grep -c '^totp$' /var/lib/pam/seen 2>/dev/null)
we_installed=yes
if dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1; then
    pass "dpkg -i $deb"
else
    fatal "dpkg -i $deb" "$(cat "$tmp/dpkg-i.log")"
fi
check "dpkg: $package is installed" sh -c "dpkg-query -W -f='\${Status}' $package | grep -qx 'install ok installed'"
check "module at $deb_pamdir/pam_totp.so" test -f "$deb_pamdir/pam_totp.so"
check "/usr/bin/pam-totp runs" /usr/bin/pam-totp --help
check "/var/lib/pam-totp exists, 0700 root" sh -c "[ \"\$(stat -c '%a %U' $statedir)\" = '700 root' ]"
for f in "${common_files[@]}"; do
    check "postinst left ${f##*/} unchanged (Default: no)" cmp "$tmp/orig/${f##*/}" "$f"
done
check "pam-auth-update knows the profile (totp in /var/lib/pam/seen)" grep -qx totp /var/lib/pam/seen

step "logging in through the installed module"
for u in "$user_a" "$user_b"; do
    retry useradd -m -s /bin/sh "$u" 2>>"$tmp/useradd.log" || fatal "useradd $u" "$(cat "$tmp/useradd.log")"
done
set_passwords() { printf '%s:%s\n' "$user_a" "pw-A-$$" "$user_b" "pw-B-$$" | chpasswd; }
retry set_passwords 2>>"$tmp/useradd.log" || fatal "chpasswd" "$(cat "$tmp/useradd.log")"
printf 'auth\trequired\tpam_totp.so\naccount\trequired\tpam_permit.so\n' >"/etc/pam.d/$service"
if /usr/bin/pam-totp enroll --json --user "$user_a" >"$tmp/enroll.json" 2>"$tmp/enroll.err"; then
    pass "pam-totp enroll --json --user $user_a"
else
    fatal "pam-totp enroll --json --user $user_a" "$(cat "$tmp/enroll.err")"
fi
secret=$(sed -n 's/.*"secret": *"\([A-Z2-7=]*\)".*/\1/p' "$tmp/enroll.json" | head -n1)
secret_file=$(sed -n 's/.*"secret_file": *"\([^"]*\)".*/\1/p' "$tmp/enroll.json" | head -n1)
backup=$(grep -o '"[A-Za-z0-9]\{5\}-[A-Za-z0-9]\{5\}"' "$tmp/enroll.json" | head -n1 | tr -d '"')
[ -n "$secret" ] && [ -n "$backup" ] || fatal "enroll printed a secret and backup codes" "$(sed 's/"secret": *"[^"]*"/"secret": "(hidden)"/' "$tmp/enroll.json")"
check "secret file $secret_file: 0600, owned by $user_a" \
    sh -c "[ \"\$(stat -c '%a %U' '$secret_file')\" = '600 $user_a' ]"
login() { # SERVICE USER ANSWERS...
    local svc=$1 user=$2 answers=()
    shift 2
    for a in "$@"; do answers+=(--answer "$a"); done
    "$pam_client" "${answers[@]}" "$svc" "$user" >/dev/null
}
refused() { ! login "$@"; }
code=$(oathtool --totp -b "$secret")
check "login with the current code (service uses bare pam_totp.so)" login "$service" "$user_a" "$code"
check "the same code a second time is refused" refused "$service" "$user_a" "$code"
wrong=$(printf '%06d' $(((10#$code + 500000) % 1000000)))
check "a wrong code is refused" refused "$service" "$user_a" "$wrong"
check "user without a secret, no nullok: refused" refused "$service" "$user_b" 123456
check "state $statedir/$user_a/: root, 0700" sh -c "[ \"\$(stat -c '%a %U' '$statedir/$user_a')\" = '700 root' ]"
check "state records in $statedir/$user_a/: root, 0600" sh -c "for f in '$statedir/$user_a'/*.state; do [ \"\$(stat -c '%a %U' \"\$f\")\" = '600 root' ] || exit 1; done"

step "pam-auth-update --enable totp / --disable totp"
printf '@include common-auth\naccount\trequired\tpam_permit.so\n' >"/etc/pam.d/$service_common"
check "pam-auth-update --enable totp" pam-auth-update --enable totp
# Expected: the original with the profile's line first in the "Additional" block (highest
# priority), i.e. after pam_permit.so and before the other Additional modules.
awk '{ print } /^# and here are more per-package modules/ {
        print "auth\t[success=ok ignore=ignore default=die]\tpam_totp.so nullok" }' \
    "$tmp/orig/common-auth" >"$tmp/expected-common-auth"
check "common-auth = original + pam_totp.so nullok after pam_permit.so" \
    diff -u "$tmp/expected-common-auth" /etc/pam.d/common-auth
for f in "${common_files[@]:1}"; do
    check "${f##*/} unchanged by --enable totp" cmp "$tmp/orig/${f##*/}" "$f"
done
check "common-auth: password, then a backup code" login "$service_common" "$user_a" "pw-A-$$" "$backup"
check "common-auth: the used backup code is refused" \
    refused "$service_common" "$user_a" "pw-A-$$" "$backup"
# Asked for a code like everybody (the prompt tells nobody who is enrolled); any answer.
check "common-auth: user without a secret passes with the password (nullok)" \
    login "$service_common" "$user_b" "pw-B-$$" ""
check "common-auth: wrong password is refused" \
    refused "$service_common" "$user_b" "not-the-password"
check "pam-auth-update --disable totp" pam-auth-update --disable totp
check "common-auth is byte-identical to before after --disable totp" cmp "$tmp/orig/common-auth" /etc/pam.d/common-auth
check "common-auth: password alone passes again for the enrolled user" login "$service_common" "$user_a" "pw-A-$$"

step "dpkg -P (with the profile enabled: prerm must take it out of common-auth)"
pam-auth-update --enable totp
check "pam_totp.so is in common-auth before the purge" grep -q 'pam_totp\.so' /etc/pam.d/common-auth
dpkg-query -L "$package" >"$tmp/owned"
if dpkg -P "$package" >"$tmp/dpkg-P.log" 2>&1; then pass "dpkg -P $package"; else fail "dpkg -P $package" "$(cat "$tmp/dpkg-P.log")"; fi
check "dpkg: $package is gone" sh -c "! dpkg-query -W -f='\${Status}' $package 2>/dev/null | grep -q installed"
left=$(while read -r p; do [ -e "$p" ] && [ ! -d "$p" ] && echo "$p"; done <"$tmp/owned")
if [ -z "$left" ]; then pass "every file of the package is removed"; else fail "every file of the package is removed" "$left"; fi
check "/etc/security/pam_totp.conf (conffile) removed" test ! -e /etc/security/pam_totp.conf
check "/var/lib/pam-totp and its state removed" test ! -e "$statedir"
check "/usr/share/pam-configs/totp removed" test ! -e /usr/share/pam-configs/totp
for f in "${common_files[@]}"; do
    check "${f##*/} byte-identical to before the install" cmp "$tmp/orig/${f##*/}" "$f"
done
check "totp no longer in /var/lib/pam/seen" sh -c "[ \"\$(grep -c '^totp\$' /var/lib/pam/seen)\" = '$seen_before' ]"
