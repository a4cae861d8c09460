#!/usr/bin/env bash
# Build squib twice (release, and ASan+UBSan) and run the whole test suite in
# both.  Any failing test or sanitizer report fails this script.
#   scripts/test.sh            everything
#   SQB_TEST_FILTER=regex      only tests whose name matches (ctest -R)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
filter=()
[ -n "${SQB_TEST_FILTER:-}" ] && filter=(-R "$SQB_TEST_FILTER")

echo "== release build =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" "${filter[@]}"

echo "== ASan+UBSan build (unit tests) =="
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSQB_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit "${filter[@]}"
