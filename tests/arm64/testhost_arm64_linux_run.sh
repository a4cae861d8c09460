#!/usr/bin/env bash
# ctest driver of arm64.testhost_linux (docs/arm64.md): builds the arm64
# Linux guest (testhost/arm64-guest.sh), runs testhost_arm64_linux.sh in the
# arm64 test host with the arm64 squib, squib-snap, squib-pager and sqb-api,
# then checks each arm64 state file it sent out base64 on the console with
# THIS host's (x86) squib-snap.
#   testhost_arm64_linux_run.sh ARM64_BINS_DIR ARM64_BUILD_DIR HOST_SQUIB_SNAP
# Exit 77 (skip) with the reason when the arm64 side is not available.
# SQB_ARM64_KEEP=DIR keeps the state files there.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bins=${1:-} a64=${2:-$repo/build-arm64} snap=${3:-}
skip() { echo "SKIP: $*"; exit 77; }
[ -n "$bins" ] && [ -x "$bins/sqb-api" ] ||
	skip "no arm64 cross compiler (aarch64-linux-gnu-gcc): sqb-api not built; run scripts/build-arm64.sh"
[ -x "$a64/runtime/squib" ] && [ -x "$a64/tools/squib-snap" ] ||
	skip "no arm64 squib in $a64: run scripts/build-arm64.sh"
command -v qemu-system-aarch64 >/dev/null || skip "qemu-system-aarch64 not installed (qemu-system-arm)"
"$repo/testhost/arm64-kit.sh" --quiet >/dev/null || skip "arm64 kit (Debian arm64 kernel) unavailable"
gdir=$("$repo/testhost/arm64-guest.sh" --quiet) || skip "arm64 guest (initramfs, rootfs.ext4) could not be built"
log=$(mktemp)
states=$(mktemp -d)
trap 'rm -rf "$log" "$states"' EXIT
"$repo/testhost/run-arm64.sh" --mem 3G --timeout "${SQB_ARM64_TIMEOUT:-900}" --bin "$a64/runtime/squib" \
	--bin "$a64/tools/squib-snap" --bin "$a64/restore/pager/squib-pager" --bin "$bins/sqb-api" \
	--file "$gdir/initramfs.cpio.gz" --file "$gdir/rootfs.ext4" \
	"$here/testhost_arm64_linux.sh" 2>&1 | tee "$log" | grep -v '^[A-Za-z0-9+/=]\{40,\}$'
rc=${PIPESTATUS[0]}
[ "$rc" = 125 ] && skip "the arm64 test host did not come up"
n=0
for name in $(tr -d '\r' <"$log" | sed -n 's/^SQUIB-ARM64-STATE-BEGIN \([a-z0-9]*\)$/\1/p'); do
	tr -d '\r' <"$log" | sed -n "/^SQUIB-ARM64-STATE-BEGIN $name\$/,/^SQUIB-ARM64-STATE-END $name\$/p" |
		sed '1d;$d' | base64 -d >"$states/$name.state" 2>/dev/null
	if "$snap" verify "$states/$name.state" >/dev/null 2>&1 &&
		"$snap" inspect "$states/$name.state" | grep -q 'machine *aarch64/kvm'; then
		echo "PASS: x86 squib-snap verifies and inspects the arm64 state $name.state (aarch64/kvm)"
		"$snap" inspect "$states/$name.state" | grep -E 'vcpu [0-9]:|records:|^kind|parent'
		n=$((n + 1))
	else
		echo "FAIL: x86 squib-snap on the arm64 state $name.state:"
		"$snap" verify "$states/$name.state"
		rc=1
	fi
done
[ "$n" -ge 2 ] || { echo "FAIL: $n arm64 state files came out of the test host (want 2)"; rc=1; }
[ -n "${SQB_ARM64_KEEP:-}" ] && mkdir -p "$SQB_ARM64_KEEP" && cp "$states"/*.state "$SQB_ARM64_KEEP/" 2>/dev/null
exit "$rc"
