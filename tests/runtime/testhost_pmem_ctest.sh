#!/bin/sh
# ctest entry of runtime.testhost_pmem: boots the nested test host with squib
# and curl and runs testhost_pmem.sh inside with the guest kit's root image.
# $1: the squib binary.  Skips (77) where the test host cannot run here.
here=$(cd "$(dirname "$0")" && pwd)
repo=$here/../..
squib=${1:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
[ -f "$repo/testhost/run.sh" ] || { echo "skip: no testhost/run.sh" >&2; exit 77; }
if ! command -v qemu-system-x86_64 >/dev/null && ! [ -c /dev/kvm ]; then
	echo "skip: no qemu-system-x86_64 for the test host" >&2
	exit 77
fi
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
exec bash "$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout 400 --bin "$squib" \
	--bin "$curl" --file "$here/../snapshot/testhost_lib.sh:/test/testhost_lib.sh" \
	"$here/testhost_pmem.sh"
