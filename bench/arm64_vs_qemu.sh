#!/usr/bin/env bash
# squib vs QEMU on arm64 KVM (docs/arm64.md, "squib vs QEMU"): runs
# bench/arm64_vs_qemu_inner.sh in the arm64 test host (testhost/run-arm64.sh)
# with the arm64 squib, Debian's arm64 qemu-system-aarch64
# (testhost/arm64-qemu-kit.sh) and the arm64 Linux guest with its root on
# virtio-blk (testhost/arm64-guest.sh); prints each round and a table of
# medians with the ratio QEMU / squib.
#   bench/arm64_vs_qemu.sh [ROUNDS (1)] [ARM64_BUILD_DIR (build-arm64)] [SQB_API_BIN]
# Needs the arm64 build (scripts/build-arm64.sh) and the x86 build's
# build/tests/arm64/sqb-api (or SQB_API_BIN).  Run it under
# `flock /work/testhost.lock` where test hosts are shared.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
rounds=${1:-1} a64=${2:-$repo/build-arm64} api=${3:-$repo/build/tests/arm64/sqb-api}
die() { echo "arm64_vs_qemu: $*" >&2; exit 1; }
[ -x "$a64/runtime/squib" ] || die "no arm64 squib in $a64 (scripts/build-arm64.sh)"
[ -x "$api" ] || die "no arm64 sqb-api at $api (build the x86 tree first)"
gdir=$("$repo/testhost/arm64-guest.sh" --quiet) || die "arm64 guest unavailable"
q=$("$repo/testhost/arm64-qemu-kit.sh" --quiet) || die "arm64 QEMU kit unavailable"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$repo/testhost/run-arm64.sh" --mem 3G --timeout $((300 + rounds * 600)) \
	--libdir "$q/root/usr/lib/aarch64-linux-gnu" --libdir "$q/root/lib/aarch64-linux-gnu" \
	--bin "$a64/runtime/squib" --bin "$api" --bin "$q/root/usr/bin/qemu-system-aarch64" \
	--file "$gdir/initramfs.cpio.gz" --file "$gdir/rootfs.ext4" \
	"$here/arm64_vs_qemu_inner.sh" "$rounds" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tr -d '\r' <"$log" | awk '
function med(k,   n, i, j, t, a) {
	n = split(v[k], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : ""
}
/^BENCH / {
	delete f
	for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	k = f["vmm"] " " f["what"]
	v[k " s"] = v[k " s"] " " f["s"]
	if ("to_counter" in f) v[k " c"] = v[k " c"] " " f["to_counter"]
	if ("guest_uptime" in f) v[k " u"] = v[k " u"] " " f["guest_uptime"]
}
END {
	printf "\n| Measure (median, s) | squib | QEMU | QEMU / squib |\n|---|---:|---:|---:|\n"
	row("process start -> SQUIB-READY (boot, root on virtio-blk)", "boot s")
	row("guest uptime at SQUIB-READY", "boot u")
	row("process start -> guest running (snapshot load)", "load s")
	row("process start -> first counter line after the load", "load c")
}
function row(name, k,   a, b) {
	split(k, p, " ")
	a = med("squib " p[1] " " p[2]); b = med("qemu " p[1] " " p[2])
	if (a == "" || b == "") { printf "| %s | %s | %s | - |\n", name, a, b; return }
	printf "| %s | %.2f | %.2f | %.1f |\n", name, a, b, (a > 0 ? b / a : 0)
}'
exit "$rc"
