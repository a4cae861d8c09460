#!/bin/sh
# ctest entry of snapshot.testhost_identity_rng: builds the guest kit's
# generic kernel (guest/build-guest.sh --flavour generic, fetched on first
# use), boots the nested test host with squib, curl and that kernel in
# /guest/generic, and runs testhost_identity_rng.sh inside.  $1: squib.
here=$(cd "$(dirname "$0")" && pwd)
squib=${1:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
gk=$(bash "$here/../../guest/build-guest.sh" --flavour generic --quiet) ||
	{ echo "skip: the generic guest kernel cannot be fetched or built" >&2; exit 77; }
# SQB_GUEST_GENERIC_DIR serves a direct run (hardware KVM, no test host)
SQB_GUEST_GENERIC_DIR=$gk exec bash "$here/../../testhost/run.sh" --auto --timeout 520 --no-vmlinux \
	--bin "$squib" --bin "$curl" --file "$here/testhost_lib.sh:/test/testhost_lib.sh" \
	--file "$gk/vmlinuz:/guest/generic/vmlinuz" \
	--file "$gk/initramfs.cpio.gz:/guest/generic/initramfs.cpio.gz" \
	"$here/testhost_identity_rng.sh"
