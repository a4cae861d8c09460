#!/usr/bin/env bash
# Network and vsock benchmark: squib vs QEMU -M microvm with the same guest
# kit (Debian's kernel, virtio_net, vmw_vsock_virtio_transport, sqbtool) on a
# tap inside the nested test host (or directly on hardware KVM): TCP MB/s
# guest->host and host->guest, 1-byte TCP ping-pong p50/p99, vsock MB/s both
# ways and ping-pong (squib: Firecracker's uds_path; QEMU: vhost-vsock-device,
# so the test host loads vhost_vsock from the guest kit's kernel package),
# medians side by side with squib/QEMU ratios (bench/net_vs_qemu_inner.sh).
# Not a ctest: run it by hand, under `flock /work/testhost.lock` on a shared
# machine.
#
#   bench/net_vs_qemu.sh [BUILD_DIR] [RUNS] [MIB] [PINGS] [VMMS] [gueststat]
#
# VMMS: comma-separated boot order of each round (default squib,qemu);
# squib-rx1 is squib with SQB_VSOCK_RX_BATCH=1 (one read per vsock RX buffer),
# squib-tx1 with SQB_VSOCK_TX_BATCH=1 (one send per vsock TX packet), squib-base
# the binary SQB_BENCH_BASE names (a file called squib-base, an older build).
# gueststat: each round also prints the guest's virtio interrupt counts and its
# /proc/stat cpu line before and after the vsock bench (GSTAT0 / GSTAT1).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
shift || true
guest=$("$repo/guest/build-guest.sh" --quiet)
cache=$(dirname "$guest")
rel=$(cat "$guest/release")
ip=$(PATH=$PATH:/sbin:/usr/sbin command -v ip)
bins=(--bin "$(command -v qemu-system-x86_64)" --bin "$(command -v curl)" --bin "$ip")
[ -x "$build/runtime/squib" ] && bins+=(--bin "$build/runtime/squib")
# SQB_BENCH_BASE: an older squib binary named squib-base, run as VMM squib-base
if [ -n "${SQB_BENCH_BASE:-}" ]; then
	[ "$(basename "$SQB_BENCH_BASE")" = squib-base ] || { echo "bench: SQB_BENCH_BASE must be a file named squib-base"; exit 1; }
	bins+=(--bin "$SQB_BENCH_BASE")
fi
# QEMU's vsock is vhost-vsock: the host side is the test host's kernel
mods=$(mktemp -d)
trap 'rm -rf "$mods"' EXIT
deb=$(ls "$cache"/debs/linux-image-"$rel"_*.deb 2>/dev/null | head -n1 || true)
if [ -n "$deb" ]; then
	dpkg-deb -x "$deb" "$mods/x"
	for m in vsock vmw_vsock_virtio_transport_common vhost_iotlb vhost vhost_vsock; do
		find "$mods/x/lib/modules/$rel" -name "$m.ko" -exec cp {} "$mods/" \;
	done
	rm -rf "$mods/x"
else
	echo "bench: no kernel package for $rel in $cache/debs: QEMU without vsock"
fi
"$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout "${SQB_BENCH_TIMEOUT:-1500}" "${bins[@]}" \
	--file /usr/share/qemu:/usr/share/qemu --file "$mods:/test/mods" \
	"$repo/bench/net_vs_qemu_inner.sh" "$@"
