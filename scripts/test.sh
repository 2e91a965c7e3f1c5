#!/bin/sh
# Install what is missing, build, and run the whole test suite: first with gcc and warnings as
# errors, then again under AddressSanitizer and UndefinedBehaviorSanitizer, then a short run of
# every fuzz harness.
# The browser suite (ctest label browser: headless Chromium and Firefox ESR against the native
# peers) and the NAT lab (ctest label netlab: network namespaces, nftables NATs, coturn;
# tests/netlab/netlab.py --full is the whole matrix) need root and take minutes: they run once,
# in the sanitizer pass, where tern's side of every case is also checked by ASan and UBSan.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -L unit, or -LE browser]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" test
jobs=$(nproc)

run_suite() {
    dir=$1
    shift
    cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure -j "$jobs" $ctest_args)
}

ctest_args="-LE browser|netlab $*"
echo "== gcc, -Werror (all but the browser suite and the NAT lab)"
CC=gcc run_suite "$top/build/gcc"
echo "== clang, -Werror (unit, fuzz replay, lint)"
ctest_args="-L unit|fuzz|lint $*"
CC=clang run_suite "$top/build/clang"
ctest_args="$*"
echo "== gcc, ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CC=gcc run_suite "$top/build/asan" -DTERN_SANITIZE=address,undefined
# Every fuzz harness for a share of TERN_FUZZ_SECONDS (default 300: 5 minutes in all; 0 skips);
# scripts/fuzz.sh runs them longer.
if [ "${TERN_FUZZ_SECONDS:-300}" -gt 0 ]; then
    echo "== clang, libFuzzer + ASan + UBSan: every harness, ${TERN_FUZZ_SECONDS:-300} s in all"
    "$top/scripts/fuzz.sh" --total "${TERN_FUZZ_SECONDS:-300}" --build "$top/build/fuzz"
fi
echo "== all tests passed"
