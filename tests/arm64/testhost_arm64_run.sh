#!/usr/bin/env bash
# ctest driver of arm64.testhost_tiny_guest (docs/arm64.md): runs
# testhost_arm64.sh in the arm64 test host with the arm64 squib, squib-snap,
# the tiny guest and sqb-api, then reads the arm64 snapshot's state file
# (sent out base64 on the console) with THIS host's (x86) squib-snap.
#   testhost_arm64_run.sh ARM64_BINS_DIR ARM64_BUILD_DIR HOST_SQUIB_SNAP [linux]
# Exit 77 (skip) with the reason when the arm64 side is not available.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bins=${1:-} a64=${2:-$repo/build-arm64} snap=${3:-} extra=${4:-}
skip() { echo "SKIP: $*"; exit 77; }
[ -n "$bins" ] && [ -f "$bins/hello.img" ] && [ -x "$bins/sqb-api" ] ||
	skip "no arm64 cross compiler (aarch64-linux-gnu-gcc): tiny guest not built; run scripts/build-arm64.sh"
[ -x "$a64/runtime/squib" ] && [ -x "$a64/tools/squib-snap" ] ||
	skip "no arm64 squib in $a64: run scripts/build-arm64.sh"
command -v qemu-system-aarch64 >/dev/null || skip "qemu-system-aarch64 not installed (qemu-system-arm)"
"$repo/testhost/arm64-kit.sh" --quiet >/dev/null || skip "arm64 kit (Debian arm64 kernel) unavailable"
log=$(mktemp)
trap 'rm -f "$log" "$log.state"' EXIT
img=--no-image
[ "$extra" = linux ] && img=
"$repo/testhost/run-arm64.sh" $img --timeout "${SQB_ARM64_TIMEOUT:-540}" --bin "$a64/runtime/squib" \
	--bin "$a64/tools/squib-snap" --bin "$a64/restore/pager/squib-pager" --bin "$bins/sqb-api" --file "$bins/hello.img" \
	"$here/testhost_arm64.sh" $extra 2>&1 | tee "$log" | grep -v '^[A-Za-z0-9+/=]\{40,\}$'
rc=${PIPESTATUS[0]}
[ "$rc" = 125 ] && skip "the arm64 test host did not come up"
sed -n '/^SQUIB-ARM64-STATE-BEGIN/,/^SQUIB-ARM64-STATE-END/p' "$log" | sed '1d;$d' | tr -d '\r' |
	base64 -d >"$log.state" 2>/dev/null
if [ -s "$log.state" ] && [ -n "$snap" ]; then
	if "$snap" verify "$log.state" >/dev/null 2>&1 &&
		"$snap" inspect "$log.state" | grep -q 'machine *aarch64/kvm'; then
		echo "PASS: x86 squib-snap verifies and inspects the arm64 snapshot (aarch64/kvm)"
		"$snap" inspect "$log.state" | grep -E 'vcpu [0-9]:|records:'
	else
		echo "FAIL: x86 squib-snap on the arm64 snapshot:"
		"$snap" verify "$log.state"
		rc=1
	fi
else
	echo "FAIL: no arm64 snapshot state came out of the test host"
	rc=1
fi
exit "$rc"
