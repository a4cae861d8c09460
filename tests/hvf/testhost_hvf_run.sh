#!/usr/bin/env bash
# ctest driver of hvf.testhost_emu (docs/hvf.md): runs testhost_hvf.sh in the
# arm64 test host with squib and hvf-selftest built with SQB_HVF=ON
# (SQB_HVF=ON scripts/build-arm64.sh build-arm64-hvf), the tiny guests and
# sqb-api.  Exit 77 (skip) with the reason when the arm64 side is missing.
#   testhost_hvf_run.sh ARM64_BINS_DIR HVF_BUILD_DIR [linux]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bins=${1:-} a64=${2:-$repo/build-arm64-hvf} extra=${3:-}
img=--no-image
[ "$extra" = linux ] && img=
skip() { echo "SKIP: $*"; exit 77; }
[ -n "$bins" ] && [ -f "$bins/hello.img" ] && [ -x "$bins/sqb-api" ] ||
	skip "no arm64 cross compiler (aarch64-linux-gnu-gcc): tiny guest not built"
[ -x "$a64/runtime/squib" ] && [ -x "$a64/runtime/hvf_emu/hvf-selftest" ] ||
	skip "no HVF arm64 build in $a64: run SQB_HVF=ON scripts/build-arm64.sh $a64, then make hvf-selftest there"
command -v qemu-system-aarch64 >/dev/null || skip "qemu-system-aarch64 not installed (qemu-system-arm)"
"$repo/testhost/arm64-kit.sh" --quiet >/dev/null || skip "arm64 kit (Debian arm64 kernel) unavailable"
"$repo/testhost/run-arm64.sh" $img --timeout "${SQB_ARM64_TIMEOUT:-540}" \
	--bin "$a64/runtime/squib" --bin "$a64/tools/squib-snap" --bin "$a64/restore/pager/squib-pager" --bin "$a64/runtime/hvf_emu/hvf-selftest" --bin "$bins/sqb-api" \
	--file "$bins/hello.img" --file "$a64/runtime/hvf_emu/hvf_guest.img" "$here/testhost_hvf.sh" $extra
rc=$?
[ "$rc" = 125 ] && skip "the arm64 test host did not come up"
exit "$rc"
