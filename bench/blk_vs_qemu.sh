#!/usr/bin/env bash
# virtio-blk benchmark: squib vs QEMU -M microvm on the same root image and
# the same guest, inside the nested test host (or directly on hardware KVM).
# Sequential write/read MB/s (busybox dd, O_DIRECT, 1 MiB blocks) and 4 KiB
# random-read IOPS (O_DIRECT pread loop; and busybox dd iflag=direct, one
# process per read), and the snapshot pause window while the guest reads
# the disk (squib Full snapshot vs QEMU stop + migrate to a file + cont),
# medians side by side with squib/QEMU ratios.  Not a ctest: run it by hand,
# under `flock /work/testhost.lock` on a shared machine.
#
#   bench/blk_vs_qemu.sh [BUILD_DIR] [RUNS] [DISK_MIB] [RANDOM_READS] [Sync|Async]
#
# Without a squib that answers PUT /drives only QEMU is measured.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
shift || true
bins=(--bin "$(command -v qemu-system-x86_64)" --bin "$(command -v curl)")
if [ -x "$build/runtime/squib" ]; then
	if why=$(sh "$repo/testhost/probe-drives.sh" "$build/runtime/squib"); then
		bins+=(--bin "$build/runtime/squib")
	else
		echo "bench: squib has no virtio-blk drives yet, measuring QEMU only: $why" | tr '\n' ' '
		echo
	fi
fi
exec "$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout 1500 "${bins[@]}" \
	--file /usr/share/qemu:/usr/share/qemu \
	"$repo/bench/blk_vs_qemu_inner.sh" "$@"
