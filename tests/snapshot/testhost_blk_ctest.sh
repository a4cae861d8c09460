#!/bin/sh
# ctest entry of snapshot.testhost_blk: boots the nested test host with squib,
# curl and e2fsck and runs testhost_blk.sh inside with the guest kit's root
# image.  $1: the squib binary.  Skips (77) without booting anything while
# squib answers PUT /drives or PUT /entropy with an error (virtio-blk and
# virtio-rng not in this build).
here=$(cd "$(dirname "$0")" && pwd)
repo=$here/../..
squib=${1:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
why=$(sh "$repo/testhost/probe-drives.sh" "$squib")
case $? in
0) ;;
1)
	echo "skip: this squib has no virtio-blk/virtio-rng API yet: $why" | tr '\n' ' ' >&2
	echo >&2
	exit 77
	;;
*) echo "probe of $squib failed: $why" >&2; exit 1 ;;
esac
e2fsck=$(PATH=$PATH:/sbin:/usr/sbin command -v e2fsck) ||
	{ echo "e2fsck not found (package e2fsprogs; scripts/deps.sh installs it)" >&2; exit 1; }
# Four boots at most, not run.sh's three: this is the longest test-host test
# and the one the emulator's nested faults hit most (in session 15 one CI run
# saw two nested triple faults and a test-host panic in a row, the run before
# and after it none; docs/testing.md "Known failures").  Only runs without a
# verdict are run again.
export SQB_TESTHOST_ATTEMPTS=${SQB_TESTHOST_ATTEMPTS:-4}
exec bash "$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout 560 --bin "$squib" \
	--bin "$curl" --bin "$e2fsck" "$here/testhost_blk.sh"
