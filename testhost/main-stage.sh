#!/usr/bin/env bash
# Stage 2 of scripts/main.sh: boot the default Linux guest (guest kit: Debian
# cloud kernel + busybox initramfs) in squib through the API and show its
# console -- directly where /dev/kvm is hardware KVM, otherwise inside the
# nested test host (docs/testing.md); then snapshot the running guest, kill
# squib, load the snapshot in a new squib and check the guest's state
# (guest/main-job.sh).  When squib answers PUT /drives and PUT /entropy
# (testhost/probe-drives.sh) the guest's root is on virtio-blk (the guest
# kit's rootfs.ext4) and the console shows mount, df and /dev/hwrng; while it
# answers them with an error this stage says so and boots from the initramfs.
#   testhost/main-stage.sh [BUILD_DIR (default build)] [VCPUS] [MEM_MIB]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
squib=$build/runtime/squib
if [ ! -x "$squib" ]; then
	echo "stage 2: skipped: $squib is not built"
	exit 0
fi
curl=$(command -v curl) || { echo "stage 2: curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
rootfs=()
if why=$(sh "$repo/testhost/probe-drives.sh" "$squib"); then
	echo "stage 2: squib answers PUT /drives and /entropy: the guest's root goes on virtio-blk"
	rootfs=(--rootfs)
else
	echo "stage 2: squib has no virtio-blk/virtio-rng API yet, the guest boots from its initramfs:"
	echo "$why" | sed 's/^/stage 2:   /'
fi
exec "$repo/testhost/run.sh" --auto --no-vmlinux --timeout 420 "${rootfs[@]+"${rootfs[@]}"}" \
	--bin "$squib" --bin "$curl" \
	--file "$repo/guest/boot-linux.sh" --file "$repo/tests/snapshot/testhost_snapshot.sh" \
	"$repo/guest/main-job.sh" "${2:-2}" "${3:-256}"
