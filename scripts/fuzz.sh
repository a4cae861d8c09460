#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and run the
# snapfmt reader target for N seconds (default 600) on one core, nice'd.
#   scripts/fuzz.sh [seconds] [extra libFuzzer args...]
# New interesting inputs go to build-fuzz/corpus/ (seeded from the saved
# corpus and the golden files); crashes to build-fuzz/artifacts/.  Minimize
# and copy the ones worth keeping into tests/fuzz/corpus/snap_reader/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSQB_FUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DSQB_MODULES="snapfmt;tests" >/dev/null
cmake --build build-fuzz -j2 --target fuzz_snap_reader
mkdir -p build-fuzz/corpus build-fuzz/artifacts
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec nice -n 10 build-fuzz/tests/fuzz/fuzz_snap_reader \
  -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 "$@" \
  build-fuzz/corpus tests/fuzz/corpus/snap_reader tests/golden/valid tests/golden/invalid
