#!/bin/sh
# Fuzz every harness (fuzz/fuzz_*.c) with libFuzzer, ASan and UBSan, one after the other.
#
# Usage: scripts/fuzz.sh [options] [harness ...]     (harness: stun, sdp, pc, ... ; default all)
#   -t, --seconds N   fuzz each harness N seconds (default 1800: the issue's 30 minutes)
#   --total N         share N seconds between the harnesses instead (what .ci/run does)
#   --build DIR       build folder (default build/fuzz); clang, -DTERN_FUZZ=ON
#   --merge           afterwards, add the inputs that found new coverage to fuzz/corpus/<h>/,
#                     named by their SHA-256 (review and commit them)
#   -h, --help        this text
#
# Each harness starts from fuzz/corpus/<h>/ and its regressions, and writes what it finds to
# DIR/work/<h>/ (kept between runs, so a second run goes on where the first stopped). A crash,
# leak, timeout (25 s) or memory blow-up (2.5 GiB) stops that harness: the input is saved in
# DIR/artifacts/<h>/ and the script says where, then goes on with the next and fails at the
# end. Fix the bug, then keep the input as fuzz/regressions/<h>/<sha256 of the file> so that
# ctest replays it for ever. One line per harness sums up the run: executions, their rate,
# new coverage. Runs one harness at a time: each is single-threaded.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=1800
total=""
build="$top/build/fuzz"
merge=false

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
    -t | --seconds) seconds=$2; shift 2 ;;
    --total) total=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --merge) merge=true; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
    esac
done

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(cd "$top/fuzz" && ls fuzz_*.c | sed -e 's/^fuzz_//' -e 's/\.c$//')
fi
count=$(echo "$targets" | wc -w)
if [ -n "$total" ]; then
    seconds=$((total / count))
    [ "$seconds" -ge 10 ] || seconds=10
fi

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (scripts/setup.sh test)" >&2; exit 2; }
echo "== building the harnesses in $build (clang, libFuzzer, ASan, UBSan)"
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON \
    -DTERN_BUILD_TESTS=OFF -DTERN_BUILD_EXAMPLES=OFF >/dev/null
bins=""
for t in $targets; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086 # one target name per word
cmake --build "$build" -j "$(nproc)" --target $bins >/dev/null

echo "== fuzzing $count harnesses, $seconds s each"
mkdir -p "$build/logs"
failed=""
for t in $targets; do
    work="$build/work/$t"
    art="$build/artifacts/$t"
    log="$build/logs/$t.log"
    mkdir -p "$work" "$art"
    set +e
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 \
        -print_final_stats=1 -artifact_prefix="$art/" \
        "$work" "$top/fuzz/corpus/$t" "$top/fuzz/regressions/$t" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    runs=${runs:-0}
    rate=$((runs / seconds))
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz %-18s ok      %10s runs %7s/s %6s new inputs\n' "$t" "$runs" "$rate" "${units:-0}"
    else
        failed="$failed $t"
        printf 'fuzz %-18s FAILED  (exit %s) see %s\n' "$t" "$rc" "$log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix)' "$log" | head -5 | sed 's/^/    /'
        for f in "$art"/*; do
            [ -e "$f" ] || continue
            echo "    keep it: cp $f $top/fuzz/regressions/$t/$(sha256sum "$f" | cut -c1-64)"
        done
    fi
done

if $merge; then
    echo "== merging new coverage into fuzz/corpus"
    for t in $targets; do
        "$build/fuzz/fuzz_$t" -merge=1 -timeout=25 "$top/fuzz/corpus/$t" "$build/work/$t" \
            >"$build/logs/$t.merge.log" 2>&1 || echo "merge of $t failed: $build/logs/$t.merge.log"
        # libFuzzer names files by SHA-1; the corpus names them by SHA-256.
        for f in "$top/fuzz/corpus/$t"/*; do
            sum=$(sha256sum "$f" | cut -c1-64)
            [ "$(basename "$f")" = "$sum" ] || mv "$f" "$top/fuzz/corpus/$t/$sum"
        done
    done
fi

if [ -n "$failed" ]; then
    echo "== fuzzing found problems in:$failed"
    exit 1
fi
echo "== fuzzing found nothing"
