#!/usr/bin/env bash
# Build squib three times and test: release (the whole suite), ASan+UBSan
# (the whole suite except the test-host tests) and ThreadSanitizer (the
# runtime, snapshot, restore and virtio tests).  Any failing test or
# sanitizer report fails this script.
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

# Sanitizer runs: everything but the test-host tests (they boot QEMU in
# software mode for minutes and test squib in a nested guest, which the
# release run above already covers).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build (whole suite except test-host) =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSQB_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure -j"$jobs" -E testhost "${filter[@]}"

# ThreadSanitizer: the multi-threaded parts (vCPU threads, the event loop,
# device threads, lazy/Uffd restore helpers).  Suppressions, each with its
# reason, live in scripts/tsan.supp.
echo "== ThreadSanitizer build (runtime, snapshot, restore, virtio, mmds) =="
# history_size=7: TSan keeps more of each thread's history, so the partner stack of
# a kernel-ordered guest-memory pairing (scripts/tsan.supp) survives and its
# suppression can match (a memhp_guests report once lost it)
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=7:suppressions=$PWD/scripts/tsan.supp"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSQB_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs"
tsan_re='^(runtime|snapshot|restore|virtio|mmds)\.'
[ -n "${SQB_TEST_FILTER:-}" ] && tsan_re="$SQB_TEST_FILTER"
# Left out here, both run in the release and ASan builds:
# runtime.virtio_guests: its guests finish on their own timing, which TSan's
#   slowdown turns into races of the test against the guest (the device's
#   threading is covered here by virtio.threads and the runtime tests);
# runtime.jailer_*: the jail has no /proc, which TSan's runtime needs.
# snapshot.blk_chain: like virtio_guests, a rate-limited guest on its own timing.
ctest --test-dir build-tsan --output-on-failure -j"$jobs" -R "$tsan_re" \
	-E 'testhost|bench|runtime\.virtio_guests|runtime\.jailer|snapshot\.blk_chain'
