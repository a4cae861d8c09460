#!/usr/bin/env bash
# Boot benchmark: squib vs QEMU -M microvm booting the guest kit's Debian
# kernel + initramfs to SQUIB-READY, inside the nested test host (or directly
# on hardware KVM).  Not a pass/fail test: prints medians and the ratio.
#
#   testhost/bench-boot.sh [BUILD_DIR] [RUNS] [VCPUS] [MEM_MIB] [vmlinuz|vmlinux]
#
# BUILD_DIR (default build) must hold runtime/squib and
# runtime/x86boot/tests/bootmark; without squib only QEMU is measured.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
shift || true
bins=(--bin "$build/runtime/x86boot/tests/bootmark" --bin "$(command -v qemu-system-x86_64)")
[ -x "$build/runtime/squib" ] && bins+=(--bin "$build/runtime/squib")
[ "${4:-vmlinuz}" = vmlinux ] || bins+=(--no-vmlinux)
exec "$repo/testhost/run.sh" --auto --timeout 900 "${bins[@]}" \
	--file /usr/share/qemu:/usr/share/qemu \
	"$repo/testhost/bench-boot-inner.sh" "$@"
