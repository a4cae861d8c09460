#!/bin/sh
# ctest entry of testhost_memhp.sh: Debian's virtio_mem.ko is not in the guest
# kit, so it is taken from the kit's cached cloud-kernel package (the kit's
# own kernel: same release) and handed to the test host as a file.
#   testhost_memhp_ctest.sh TIMEOUT_S SQUIB
# Skips (77) without the test host, or without the cached package.
here=$(cd "$(dirname "$0")" && pwd)
repo=$here/../..
timeout=$1 squib=${2:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
[ -f "$repo/testhost/run.sh" ] || { echo "skip: no testhost/run.sh" >&2; exit 77; }
if ! command -v qemu-system-x86_64 >/dev/null && ! [ -c /dev/kvm ]; then
	echo "skip: no qemu-system-x86_64 for the test host" >&2
	exit 77
fi
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
guest=$("$repo/guest/build-guest.sh" --quiet) || { echo "guest kit build failed" >&2; exit 1; }
rel=$(cat "$guest/release")
deb=$(ls "$guest/../debs/linux-image-${rel}_"*.deb 2>/dev/null | head -n 1)
[ -f "$deb" ] || { echo "skip: no cached linux-image-$rel package next to the guest kit" >&2; exit 77; }
command -v dpkg-deb >/dev/null || { echo "skip: no dpkg-deb to unpack $deb" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards '*/virtio_mem.ko'
ko=$(find "$tmp" -name virtio_mem.ko | head -n 1)
[ -f "$ko" ] || { echo "$deb has no virtio_mem.ko (CONFIG_VIRTIO_MEM=m expected)" >&2; exit 1; }
bash "$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout "$timeout" \
	--bin "$squib" --bin "$curl" --file "$here/../snapshot/testhost_lib.sh:/test/testhost_lib.sh" \
	--file "$ko:/test/virtio_mem.ko" "$here/testhost_memhp.sh"
