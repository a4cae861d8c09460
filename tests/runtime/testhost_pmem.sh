#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --file tests/snapshot/testhost_lib.sh:/test/testhost_lib.sh tests/runtime/testhost_pmem.sh
# virtio-pmem with Debian's Linux (its virtio_pmem and nd_pmem modules, from
# the guest kit), the steps of Firecracker's docs/pmem.md and test_pmem.py:
#   - an 8 MiB file with a known pattern is /dev/pmem0 in the guest, which
#     reads the pattern whole;
#   - the guest writes another pattern and syncs: the host file has it;
#   - a read-only device: the guest reads it, the file is never written;
#   - Full snapshot, SIGKILL, load in a new squib: the guest reads its last
#     pattern from /dev/pmem0 again (the file mapped at the same address).
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v start_squib >/dev/null || { echo "FAIL: testhost_lib.sh not found"; exit 1; }
pid="" # cleanup, die, send, cmd: testhost_lib.sh

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] && [ -x "$G/sqbtool" ] || { echo "FAIL: $G/rootfs.ext4 or sqbtool missing (--rootfs)"; exit 1; }
cp "$G/rootfs.ext4" "$T/root.ext4"
"$G/sqbtool" memfill 8 7 "$T/pm.img" >/dev/null || die "memfill"
"$G/sqbtool" memfill 4 5 "$T/ro.img" >/dev/null || die "memfill"
ro_sum=$(md5sum <"$T/ro.img")

start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /pmem/pm0 "{\"id\": \"pm0\", \"path_on_host\": \"$T/pm.img\"}")
c=$c$(api PUT /pmem/pm1 "{\"id\": \"pm1\", \"path_on_host\": \"$T/ro.img\", \"read_only\": true}")
[ "$c" = 204204204 ] || die "PUT /drives, /pmem: $c $(cat "$T/api.out")"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || die "boot: API answered $c1 $c2 $c3: $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
grep 'SQUIB-ROOT-ERROR' "$log" && bad "a module did not load"
cmd 30 'ls /dev/pmem*' || bad "console"
lines "$log" | grep -q '/dev/pmem0' && lines "$log" | grep -q '/dev/pmem1' &&
	pass "Linux's virtio_pmem and nd_pmem give /dev/pmem0 and /dev/pmem1" ||
	{ cmd 20 'dmesg | grep -iE "pmem|nvdimm|nd_" | tail'; die "no /dev/pmem0: $(lines "$log" | tail -n 12)"; }

cmd 60 'sqbtool memcheck 8 7 /dev/pmem0' || bad "memcheck did not finish"
lines "$log" | grep -q 'SQUIB-MEMCHECK ok mib=8' && pass "the guest reads the host file's 8 MiB pattern through /dev/pmem0" ||
	bad "pmem0 read: $(lines "$log" | grep SQUIB-MEMCHECK | tail -n 1)"
cmd 60 'sqbtool memcheck 4 5 /dev/pmem1' || bad "memcheck did not finish"
[ "$(lines "$log" | grep -c 'SQUIB-MEMCHECK ok mib=4')" -ge 1 ] && pass "the read-only device reads its 4 MiB pattern" ||
	bad "pmem1 read: $(lines "$log" | grep SQUIB-MEMCHECK | tail -n 1)"
cmd 60 'sqbtool memfill 8 9 /dev/pmem0 && sync' || bad "memfill did not finish"
"$G/sqbtool" memcheck 8 9 "$T/pm.img" | grep -q 'SQUIB-MEMCHECK ok' &&
	pass "the guest's new pattern is in the host file" || bad "host file after the guest's write: $("$G/sqbtool" memcheck 8 9 "$T/pm.img")"
[ "$(md5sum <"$T/ro.img")" = "$ro_sum" ] && pass "the read-only file is unchanged" || bad "ro.img changed"

c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\",
	\"snapshot_type\": \"Full\"}")
[ "$c" = 204204 ] && pass "Full snapshot" || die "snapshot: $c $(cat "$T/api.out")"
stop_squib
pid=""
start_squib load
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"}, \"resume_vm\": true}")
[ "$c" = 204 ] && pass "loaded in a new squib" || die "load: $c $(cat "$T/api.out")"
cmd 20 'echo 3 >/proc/sys/vm/drop_caches' || bad "drop_caches"
cmd 60 'sqbtool memcheck 8 9 /dev/pmem0' || bad "memcheck after load did not finish"
[ "$(lines "$log" | grep -c 'SQUIB-MEMCHECK ok mib=8')" -ge 1 ] &&
	pass "after the load the guest reads its last pattern through /dev/pmem0 (the file mapped again)" ||
	bad "pmem0 after load: $(lines "$log" | grep SQUIB-MEMCHECK | tail -n 1)"
stop_squib
pid=""
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
cleanup
exit $fail
