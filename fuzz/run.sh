#!/bin/bash
# Bounded fuzzing for CI: builds the cargo-fuzz targets on the stable toolchain and runs each for
# FUZZ_SECONDS (default 60) starting from the committed corpus. Exits non-zero if any target
# found a crash; the input is then in fuzz/artifacts/<target>/ and must become a unit test in
# pam_totp_core/tests/fuzz_regressions.rs.
#
#   fuzz/run.sh                          all targets, 60 s each
#   FUZZ_SECONDS=10 fuzz/run.sh answer   one target, 10 s
#   FUZZ_UPDATE_CORPUS=1 fuzz/run.sh     keep new interesting inputs in fuzz/corpus/ (then
#                                        `cargo fuzz cmin <target>` before committing)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${FUZZ_SECONDS:-60}
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, ...); RUSTC_BOOTSTRAP lets the
# stable compiler accept them. No nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
# Default cargo-fuzz profile: optimised, with debug assertions and overflow checks.
cargo fuzz build
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -n "${FUZZ_UPDATE_CORPUS:-}" ]; then
        dirs=("corpus/$t")
    else
        scratch=$(mktemp -d)
        dirs=("$scratch" "corpus/$t")
    fi
    echo "== $t: ${SECS} s"
    log=$(mktemp)
    status=0
    cargo fuzz run "$t" "${dirs[@]}" -- -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written)|panicked" "$log" || true
    if [ "$status" != 0 ]; then
        failed+=("$t")
        tail -40 "$log"
    fi
    rm -f "$log"
    if [ -z "${FUZZ_UPDATE_CORPUS:-}" ]; then rm -rf "$scratch"; fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crash in ${#targets[@]} targets"
