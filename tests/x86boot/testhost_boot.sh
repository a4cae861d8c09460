#!/bin/sh
# Runs inside the nested test host (testhost/run.sh): /dev/kvm must be real
# KVM with nested paging, and the x86boot loaders must boot the guest kit's
# Debian cloud kernel on it to the guest's readiness marker -- as a bzImage
# with 1 vCPU and as a PVH vmlinux with 2 vCPUs.
# Runs directly (testhost/run.sh --auto) where /dev/kvm is hardware KVM.
fail=0
check() { if "$@"; then echo "PASS: $*"; else echo "FAIL: $*"; fail=1; fi; }
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)

check test -c /dev/kvm
if [ -n "${SQB_IN_TESTHOST:-}" ]; then
	check grep -qx 1 /sys/module/kvm_amd/parameters/nested
	check grep -qx Y /sys/module/kvm_amd/parameters/npt
fi
[ -c /dev/kvm ] || exit 1

boot() { # boot NAME KERNEL CPUS [MARKER [EXTRA_CMDLINE]]
	xbrun -c "$3" -m 256 -t 120 -i $G/initramfs.cpio.gz -u "${4:-SQUIB-READY}" \
		-a "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet ${5:-}" \
		"$2" >"$T/$1.log" 2>&1
	rc=$?
	grep -E 'XBRUN|SQUIB-|Kernel panic|BUG' "$T/$1.log"
	if [ $rc -ne 0 ]; then
		echo "--- $1: xbrun exit $rc, console tail:"
		tail -n 25 "$T/$1.log"
	fi
	return $rc
}
check boot bzimage $G/vmlinuz 1
check grep -q 'SQUIB-READY.*cpus=1' $T/bzimage.log
if [ -f $G/vmlinux ]; then
	# The guest kit's memory workload: a 32 MiB pattern written, then verified.
	check boot pvh $G/vmlinux 2 SQUIB-MEMCHECK sqb.run=memfill:32:5+memcheck:32:5
	check grep -q 'SQUIB-READY.*cpus=2' $T/pvh.log
	check grep -q 'SQUIB-MEMCHECK ok mib=32' $T/pvh.log
fi
rm -rf "$T"
exit $fail
