#!/bin/bash
# Benchmarks pam_totp.so against google-authenticator-libpam through the real libpam, checks
# scale and concurrency, and prints the tables quoted in docs/PERFORMANCE.md. Not part of the
# test run. Needs root (both modules run as root, as under sshd).
#
#   bench/run.sh                 everything (10-15 minutes on 2 cores, 4 of them status --all)
#   BENCH_ROUNDS=5 bench/run.sh  more interleaved rounds per comparison row (default 3)
#   BENCH_PER_ROUND=200          logins per module and path in each round (default 200)
#   BENCH_N=1000                 logins per row of the scale check (default 300)
#   BENCH_SKIP_SCALE=1           only the comparison tables
#   BENCH_SKIP_LDAP=1            leave out the directory (LDAP) backend
#   BENCH_TPUT=64:5:3            directory throughput: clients, full logins each, rounds
#   BENCH_OLD_MODULE=/path/.so   an earlier build of the module to time loading beside this one
#   BENCH_DISK_DIR=/var/tmp      where the on-disk run keeps its files (must not be tmpfs)
#   REPO=/path/to/checkout       the tree whose module and CLI are built (default: this one)
set -euo pipefail

REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
N=${BENCH_N:-300}
ROUNDS=${BENCH_ROUNDS:-3}
PER=${BENCH_PER_ROUND:-200}
BACKUP_PER=${BENCH_BACKUP_PER_ROUND:-$PER}
SCALE_USERS=${BENCH_SCALE_USERS:-100000}
DISK_DIR=${BENCH_DISK_DIR:-/var/tmp}
NSSW=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so

if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh: run as root (the modules read root-owned files and lock state)" >&2
    exit 2
fi
need=()
for pkg in libpam-google-authenticator libnss-wrapper libpam0g-dev time slapd ldap-utils openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    # slapd's own service is never used: pam-bench ldap runs a throwaway one (tests/src/slapd.rs).
    sh "$REPO/packaging/apt-install.sh" "${need[@]}"
fi
TPUT=${BENCH_TPUT:-64:5:3}

echo "== building (release)"
(cd "$REPO" && cargo build --release -p pam-totp -q)
(cd "$REPO" && cargo build --release -p pam-totp-cli -q) || echo "   (CLI did not build; status --all skipped)"
cargo build --release -q --manifest-path "$REPO/bench/Cargo.toml"
MODULE=$REPO/target/release/libpam_totp.so
CLI=$REPO/target/release/pam-totp
BENCH=$REPO/bench/target/release/pam-bench
SECURITY=/usr/lib/x86_64-linux-gnu/security
DLOPEN=$REPO/bench/target/dlopen-time
cc -O2 -o "$DLOPEN" "$REPO/bench/dlopen.c" -Wl,--no-as-needed -lpam -ldl

DIRS=()
cleanup() {
    for d in "${DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# new_dir BASE: a new run directory under BASE (mode 0755, removed on exit), in NEW_DIR.
new_dir() {
    NEW_DIR=$(mktemp -d "$1/pam-totp-bench.XXXXXX")
    DIRS+=("$NEW_DIR")
    chmod 755 "$NEW_DIR"
}

# Runs pam-bench with the run's nss_wrapper passwd file preloaded.
pb() {
    local dir=$1
    shift
    NSS_WRAPPER_PASSWD=$dir/passwd NSS_WRAPPER_GROUP=$dir/group LD_PRELOAD=$NSSW "$BENCH" "$@"
}

# field FILE LABEL KEY -> value of KEY on the ROW line with LABEL.
field() {
    awk -v l="label=$2" -v k="$3" '$2 == l { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}

echo "== machine"
echo "   nproc: $(nproc); $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); memory: $(free -m | awk '/Mem:/ {print $2}') MiB"
echo "   kernel: $(uname -r); libpam: $(dpkg-query -W -f '${Version}' libpam0g); google-authenticator: $(dpkg-query -W -f '${Version}' libpam-google-authenticator)"

# check_rows ROWS: a warning for every ROW line whose logins did not all give the expected result.
check_rows() {
    local label ok n
    for label in $(awk '$1 == "ROW" { sub("label=", "", $2); print $2 }' "$1"); do
        ok=$(field "$1" "$label" ok)
        n=$(field "$1" "$label" n)
        [ "$ok" = "$n" ] || echo "   WARNING: $label: only $ok of $n logins gave the expected result ($(field "$1" "$label" codes))"
    done
}

# row_table ROWS PREFIX TITLE: one comparison table from the ROW lines of `pam-bench sshd`, each
# row's median minus the pam_permit baseline's median measured the same way (PREFIX txn or auth).
row_table() {
    local rows=$1 m=$2 title=$3
    local base_us
    base_us=$(field "$rows" base "${m}_median_us")
    echo "   $title"
    printf '   | %-22s | %11s | %9s | %6s | %18s | %18s |\n' "path (median - baseline)" "pam_totp us" "GA us" "ratio" "pam_totp p10..p90" "GA p10..p90"
    printf '   |%s|%s|%s|%s|%s|%s|\n' "------------------------" "------------:" "----------:" "-------:" "-------------------:" "-------------------:"
    for r in success:"successful TOTP login" wrong:"wrong code" backup:"backup code" none:"not enrolled, nullok"; do
        local k=${r%%:*} name=${r#*:}
        awk -v name="$name" -v t="$(field "$rows" "totp-$k" "${m}_median_us")" -v g="$(field "$rows" "ga-$k" "${m}_median_us")" -v b="$base_us" \
            -v t10="$(field "$rows" "totp-$k" "${m}_p10_us")" -v t90="$(field "$rows" "totp-$k" "${m}_p90_us")" \
            -v g10="$(field "$rows" "ga-$k" "${m}_p10_us")" -v g90="$(field "$rows" "ga-$k" "${m}_p90_us")" \
            'BEGIN { tt = t - b; gg = g - b; printf "   | %-24s | %11.0f | %9.0f | %6.2f | %18s | %18s |\n", name, tt, gg, (gg > 0 ? tt / gg : 0), t10 ".." t90, g10 ".." g90 }'
    done
    printf '   pam_permit baseline (absolute median): %s us\n' "$base_us"
}

compare() {
    local base=$1 what=$2
    new_dir "$base"
    local dir=$NEW_DIR
    local rows=$dir/rows.txt
    local users=$((ROUNDS * (2 * PER + BACKUP_PER) + 10))
    echo
    echo "== pam_totp against google-authenticator (GA), $what ($(df -T "$dir" | awk 'NR == 2 {print $2}') at $dir)"
    echo "   $ROUNDS interleaved rounds of $PER users per path ($BACKUP_PER for backup codes), one login per user per path"
    pb "$dir" gen --dir "$dir" --module "$MODULE" --totp "$users" --ga "$users" --plain "$((ROUNDS * PER))" >/dev/null
    sync
    pb "$dir" sshd --dir "$dir" --rounds "$ROUNDS" --per-round "$PER" --backup-per-round "$BACKUP_PER" >"$rows"
    check_rows "$rows"
    row_table "$rows" txn "as sshd pays it: pam_start + pam_authenticate + pam_end per login, module loading included"
    echo
    row_table "$rows" auth "pam_authenticate alone (the same logins)"
    pb "$dir" race --dir "$dir" --service ga --kind totp --users "g:$((users - 10)):5" --procs 20 --rounds 5 --same-user --label ga-same-code | sed 's/^/   /' >"$dir/ga-race.txt" || true
    pb "$dir" race --dir "$dir" --service ga --kind backup --users "g:$((users - 5)):5" --procs 20 --rounds 5 --same-user --label ga-same-scratch | sed 's/^/   /' >>"$dir/ga-race.txt" || true
    echo "   google-authenticator, 20 concurrent logins with one code, 5 rounds (successes per round; 1 is correct):"
    sed 's/child_maxrss_kb=[0-9]*//' "$dir/ga-race.txt"
}

echo
echo "== module loading: dlopen(RTLD_NOW) + dlclose from a C program linked with libpam (like sshd)"
OLD_MODULE=${BENCH_OLD_MODULE:-}
for so in "$MODULE" $OLD_MODULE; do
    echo "   $so: $(stat -c %s "$so") bytes, $(readelf -r "$so" | grep -c 'R_X86_64') relocations, NEEDED: $(readelf -d "$so" | awk '/NEEDED/ { gsub(/[][]/, "", $5); printf "%s ", $5 }')"
done
"$DLOPEN" 2000 "$MODULE" $OLD_MODULE "$SECURITY/pam_google_authenticator.so" "$SECURITY/pam_permit.so" | sed 's/^/   /'

# directory BASE WHAT: the directory backend beside local files and GA, as sshd pays it with
# pam_setcred (which records a success: the second connection), then 64-client throughput. The
# throwaway slapd keeps its database under the run's directory (TMPDIR), on the same file
# system as the local files.
directory() {
    local base=$1 what=$2
    new_dir "$base"
    local dir=$NEW_DIR
    local rows=$dir/ldap-rows.txt
    local n=$((ROUNDS * PER)) t
    t=$(echo "$TPUT" | awk -F: '{ print $1 * $2 * $3 }')
    echo
    echo "== the directory (LDAP) backend, $what ($(df -T "$dir" | awk 'NR == 2 {print $2}') at $dir)"
    echo "   slapd on loopback (the tests' harness: otp module, shipped schema and ACL, test CA); the module"
    echo "   binds as the validator account: ldapi:// with SASL EXTERNAL, ldap:// with StartTLS and a simple bind"
    pb "$dir" gen --dir "$dir" --module "$MODULE" --totp $((2 * n + t + 1)) --ga $((2 * n)) --plain "$n" --ldap $((4 * n + 2 * t + 2)) >/dev/null
    sync
    TMPDIR=$dir pb "$dir" ldap --dir "$dir" --rounds "$ROUNDS" --per-round "$PER" --throughput "$TPUT" >"$rows"
    grep '^SLAPD' "$rows" | sed 's/^/   /'
    check_rows "$rows"
    # Absolute medians: the directory costs milliseconds, and in these interleaved runs the
    # pam_permit transaction itself varies by more than the local-files module costs over it.
    echo "   as sshd pays it: pam_start + pam_authenticate + pam_setcred (on success) + pam_end, absolute medians"
    echo "   $ROUNDS interleaved rounds of $PER users per path, one login per user"
    printf '   | %-22s | %11s | %9s | %9s | %9s | %8s | %11s |\n' "path (us per login)" "local files" "ldapi" "StartTLS" "GA" "ldapi/GA" "StartTLS/GA"
    printf '   |%s|%s|%s|%s|%s|%s|%s|\n' "------------------------" "------------:" "----------:" "----------:" "----------:" "---------:" "------------:"
    for r in success:"successful TOTP login" wrong:"wrong code"; do
        local k=${r%%:*} name=${r#*:}
        awk -v name="$name" -v f="$(field "$rows" "files-$k" txn_median_us)" \
            -v i="$(field "$rows" "ldapi-$k" txn_median_us)" -v s="$(field "$rows" "starttls-$k" txn_median_us)" \
            -v g="$(field "$rows" "ga-$k" txn_median_us)" \
            'BEGIN { printf "   | %-22s | %11.0f | %9.0f | %9.0f | %9.0f | %8.2f | %11.2f |\n", name, f, i, s, g, i / g, s / g }'
    done
    printf '   pam_permit baseline (same transaction, absolute median): %s us\n' "$(field "$rows" base txn_median_us)"
    echo "   p10..p90 (absolute) and the parts: pam_authenticate alone, pam_setcred alone (medians)"
    for label in files-success ldapi-success starttls-success ga-success files-wrong ldapi-wrong starttls-wrong ga-wrong; do
        local cred="no pam_setcred (failed login)"
        [ "$(field "$rows" "$label" setcred_n)" = 0 ] || cred="setcred $(field "$rows" "$label" setcred_median_us) us"
        printf '   %-17s txn %s..%s us, authenticate %s us, %s\n' "$label" \
            "$(field "$rows" "$label" txn_p10_us)" "$(field "$rows" "$label" txn_p90_us)" \
            "$(field "$rows" "$label" auth_median_us)" "$cred"
    done
    echo "   throughput: $(echo "$TPUT" | cut -d: -f1) forked clients released together, full logins (with pam_setcred)"
    grep '^TPUT' "$rows" | sed 's/^TPUT /   /'
}

compare "$DISK_DIR" "on disk: fsync costs real I/O"
compare /dev/shm "on tmpfs: fsync is free, so this is the CPU cost"
if [ -z "${BENCH_SKIP_LDAP:-}" ]; then
    directory "$DISK_DIR" "on disk: slapd's commits and the local files' fsyncs cost real I/O"
    directory /dev/shm "on tmpfs: the CPU and protocol cost"
fi

if [ -n "${BENCH_SKIP_SCALE:-}" ]; then
    exit 0
fi

if [ -z "${BENCH_SKIP_LDAP:-}" ]; then
    echo
    echo "== directory scale (on disk): success-path cost with 10 and with $SCALE_USERS users enrolled in the directory"
    echo "   the same users log in $N times each way, their token and state put back before each login (not timed)"
    for count in 10 "$SCALE_USERS"; do
        new_dir "$DISK_DIR"
        d=$NEW_DIR
        t0=$(date +%s)
        # The same password database size in both (nss_wrapper scans it): only the directory differs.
        pb "$d" gen --dir "$d" --module "$MODULE" --ldap "$count" --plain $((SCALE_USERS - count + 10)) >/dev/null
        echo "   generated $count directory users in $(($(date +%s) - t0)) s"
        sync
        TMPDIR=$d pb "$d" ldap --dir "$d" --scale-users "d:0:10" --n "$N" | sed 's/^/   /'
        rm -rf "$d"
    done
fi

echo
echo "== scale (on disk): success-path cost with 10 and with $SCALE_USERS enrolled users"
small=$(mktemp -d "$DISK_DIR/pam-totp-bench.XXXXXX")
big=$(mktemp -d "$DISK_DIR/pam-totp-bench.XXXXXX")
DIRS+=("$small" "$big")
chmod 755 "$small" "$big"
t0=$(date +%s)
# The same password database size (nss_wrapper scans it) in both: only the enrollment differs.
pb "$small" gen --dir "$small" --module "$MODULE" --totp 10 --plain "$SCALE_USERS" >/dev/null
pb "$big" gen --dir "$big" --module "$MODULE" --totp "$SCALE_USERS" --plain 10 >/dev/null
echo "   generated $SCALE_USERS secret + state files in $(($(date +%s) - t0)) s"
# Flush the generated files first: otherwise the first logins' fsyncs pay for writing them back.
sync
# --restore puts back each user's pre-login state before the login (not timed), so the 10 users
# can log in $N times; the same is done for the big set, where each user logs in once.
pb "$small" run --dir "$small" --service totp --kind totp --users "t:0:10" --n "$N" --restore --expect 0 --label "10-users" | sed 's/^/   /'
pb "$big" run --dir "$big" --service totp --kind totp --users "t:0:$N" --restore --expect 0 --label "$SCALE_USERS-users" | sed 's/^/   /'
# nss_wrapper (like glibc's files backend) scans the passwd file linearly: users half-way down a
# $SCALE_USERS-line file cost more in getpwnam, whichever module asks. Shown apart.
pb "$big" run --dir "$big" --service totp --kind totp --users "t:$((SCALE_USERS / 2)):$N" --restore --expect 0 --label "$SCALE_USERS-users-mid-passwd" | sed 's/^/   /'

# The CLI lists the password database in one pass (getent passwd, which nss_wrapper answers from
# its file) and looks up through NSS only state-file users that listing missed.
if [ -x "$CLI" ] && "$CLI" status --help >/dev/null 2>&1; then
    echo "   pam-totp status --all over $SCALE_USERS enrolled users (users only in nss_wrapper's passwd file):"
    if NSS_WRAPPER_PASSWD=$big/passwd NSS_WRAPPER_GROUP=$big/group LD_PRELOAD=$NSSW timeout "${BENCH_STATUS_TIMEOUT:-900}" \
        /usr/bin/time -v "$CLI" --config "$big/pam_totp.conf" status --all 2>"$big/time.txt" >"$big/status.txt"; then
        echo "     output lines: $(wc -l <"$big/status.txt")"
    else
        echo "     did not finish within ${BENCH_STATUS_TIMEOUT:-900} s"
    fi
    grep -E "Elapsed|Maximum resident" "$big/time.txt" | sed 's/^\s*/     /'
else
    echo "   pam-totp status --all: not available in this build (skipped)"
fi

echo
echo "== 64 concurrent logins (on disk, $SCALE_USERS enrolled users), 5 rounds each"
pb "$big" race --dir "$big" --service totp --kind totp --users "t:1000:320" --procs 64 --rounds 5 --label different-users | sed 's/^/   /'
pb "$big" race --dir "$big" --service totp --kind totp --users "t:400:5" --procs 64 --rounds 5 --same-user --label same-user-same-code | sed 's/^/   /'
pb "$big" race --dir "$big" --service totp --kind backup --users "t:500:5" --procs 64 --rounds 5 --same-user --label same-user-same-backup-code | sed 's/^/   /'
pb "$big" check --dir "$big" | sed 's/^/   /'
