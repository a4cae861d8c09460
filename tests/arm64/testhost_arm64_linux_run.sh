#!/usr/bin/env bash
# ctest driver of arm64.testhost_linux (docs/arm64.md): builds the arm64
# Linux guest (testhost/arm64-guest.sh), runs testhost_arm64_linux.sh in the
# arm64 test host with the arm64 squib, squib-snap, squib-pager and sqb-api,
# then checks each arm64 state file it sent out base64 on the console with
# THIS host's (x86) squib-snap, and the memory files it wrote to an out disk
# (a tar): the x86 squib-snap verifies the Full and the Diff chain, extracts
# the same dense memory the arm64 squib-snap did (md5), merges the chain into
# a Full that pairs and extracts the same, writes a Diff of it again, and
# diffs the two state files.
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
truncate -s 1G "$states/out.img" # sparse: only what the tar writes is stored
"$repo/testhost/run-arm64.sh" --mem 3G --timeout "${SQB_ARM64_TIMEOUT:-900}" --bin "$a64/runtime/squib" \
	--out-disk "$states/out.img" \
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

# The memory files, through the out disk.
check() { # DESCRIPTION COMMAND...: PASS/FAIL, the command's output on a FAIL
	local d=$1
	shift
	if "$@" >"$states/check.out" 2>&1; then
		echo "PASS: $d"
	else
		echo "FAIL: $d:"
		sed 's/^/  /' "$states/check.out" | head -n 20
		rc=1
	fi
}
md5_of() { # SNAPSHOT [--parent P]: md5 of the dense memory the x86 squib-snap extracts
	rm -f "$states/x.raw"
	"$snap" extract "$@" --memory "$states/x.raw" >/dev/null 2>"$states/extract.err" &&
		md5sum <"$states/x.raw" | cut -d' ' -f1
	rm -f "$states/x.raw"
}
arm_md5() { tr -d '\r' <"$log" | sed -n "s/^SQUIB-ARM64-MD5 $1 \([0-9a-f]*\) .*/\1/p" | sed -n 1p; } # reads all: no SIGPIPE under pipefail
if [ "$(tr -d '\r' <"$log" | grep -c '^SQUIB-ARM64-OUT tar$')" != 0 ]; then # grep -c reads it all: no SIGPIPE under pipefail
	m=$states/mem
	mkdir -p "$m"
	tar -xf "$states/out.img" -C "$m"
	ls -l "$m" | awk 'NR > 1 { print "INFO: out disk: " $5 " bytes " $9 }'
	check "x86 squib-snap verifies the arm64 Full (state + memory)" \
		"$snap" verify "$m/f.state" --memory-file "$m/f.mem"
	check "x86 squib-snap verifies the arm64 Diff over the Full (state + memory + parent)" \
		"$snap" verify "$m/d.state" --memory-file "$m/d.mem" --parent "$m/f.mem"
	check "x86 squib-snap inspects the arm64 Diff's memory file (kind, parent)" \
		sh -c "'$snap' inspect '$m/d.mem' | grep -qiE 'kind.*diff' && '$snap' inspect '$m/d.mem' | grep -qi parent"
	fm=$(arm_md5 f) dm=$(arm_md5 d)
	xf=$(md5_of "$m/f.mem") xd=$(md5_of "$m/d.mem" --parent "$m/f.mem")
	check "dense memory of the Full: x86 and arm64 squib-snap extract the same bytes ($xf)" \
		test -n "$fm" -a "$xf" = "$fm"
	check "dense memory of the Diff over the Full: x86 and arm64 extract the same bytes ($xd)" \
		test -n "$dm" -a "$xd" = "$dm"
	check "the Diff changed the memory (its dense image differs from the Full's)" test "$xd" != "$xf"
	check "x86 squib-snap merges the arm64 chain into a Full with its state file" \
		"$snap" merge "$m/f.mem" "$m/d.mem" -o "$states/m.mem" --state "$m/d.state" --state-out "$states/m.state"
	check "the merged pair pairs and verifies" "$snap" pair "$states/m.state" "$states/m.mem"
	check "the merged Full holds the Diff chain's bytes" test "$(md5_of "$states/m.mem")" = "$dm"
	check "x86 squib-snap writes the merged Full as a Diff on the arm64 Full" \
		"$snap" diff "$m/f.mem" "$states/m.mem" --output "$states/dd.mem"
	check "that Diff over the Full holds the same bytes" \
		test "$(md5_of "$states/dd.mem" --parent "$m/f.mem")" = "$dm"
	check "x86 squib-snap diffs the two arm64 state files (registers by name)" \
		sh -c "'$snap' diff '$m/f.state' '$m/d.state' --parent '$m/f.mem' >'$states/sdiff' && grep -qE 'pc|PC|x0|X0' '$states/sdiff'"
	head -n 12 "$states/sdiff" 2>/dev/null | sed 's/^/INFO: state diff: /'
else
	echo "FAIL: the arm64 memory files did not come out on the out disk"
	rc=1
fi
[ -n "${SQB_ARM64_KEEP:-}" ] && mkdir -p "$SQB_ARM64_KEEP" && cp "$states"/*.state "$SQB_ARM64_KEEP/" 2>/dev/null
exit "$rc"
