#!/bin/sh
# Runs inside the nested test host (docs/testing.md), from testhost_memhp_ctest.sh:
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --file tests/snapshot/testhost_lib.sh:/test/testhost_lib.sh \
#       --file virtio_mem.ko:/test/virtio_mem.ko tests/runtime/testhost_memhp.sh
# Memory hotplug with Debian's Linux and its virtio_mem module (CONFIG_VIRTIO_MEM=m;
# the guest kit does not carry it, so it reaches the guest as a read-only drive
# holding the .ko, read back with head -c and insmod'ed):
#   - PATCH /hotplug/memory requested_size_mib: the driver plugs it, MemTotal grows
#     by it, GET /hotplug/memory says it is plugged;
#   - a workload larger than the boot RAM lives in the plugged memory (a tmpfs file
#     with a pattern, sqbtool memfill/memcheck);
#   - Full snapshot, SIGKILL, load in a new squib: the pattern reads back, MemTotal
#     and the plugged size are unchanged; then the guest gives memory back on a
#     smaller request.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
KO=${SQB_VIRTIO_MEM_KO:-/test/virtio_mem.ko}
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v start_squib >/dev/null || { echo "FAIL: testhost_lib.sh not found"; exit 1; }
pid="" # cleanup, die, send, cmd: testhost_lib.sh
memtotal() { # the guest's MemTotal in KiB, from its last MemTotal line
	cmd 20 'grep MemT /proc/meminfo' >/dev/null || return 1
	lines "$log" | sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' | tail -n 1
}

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] && [ -x "$G/sqbtool" ] || { echo "FAIL: $G/rootfs.ext4 or sqbtool missing (--rootfs)"; exit 1; }
[ -f "$KO" ] || { echo "FAIL: $KO missing (testhost_memhp_ctest.sh extracts it)"; exit 1; }
cp "$G/rootfs.ext4" "$T/root.ext4"
# the module as a drive: its bytes, padded to whole sectors
kosize=$(wc -c <"$KO")
cp "$KO" "$T/mod.img"
pad=$(((512 - kosize % 512) % 512))
[ "$pad" -gt 0 ] && head -c "$pad" /dev/zero >>"$T/mod.img"

start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
args="$args memhp_default_state=online_movable"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /drives/mod "{\"drive_id\": \"mod\", \"path_on_host\": \"$T/mod.img\",
	\"is_root_device\": false, \"is_read_only\": true}")
c=$c$(api PUT /hotplug/memory '{"total_size_mib": 1024, "block_size_mib": 2, "slot_size_mib": 128}')
[ "$c" = 204204204 ] || die "PUT /drives, /hotplug/memory: $c $(cat "$T/api.out")"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || die "boot: API answered $c1 $c2 $c3: $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
grep 'SQUIB-ROOT-ERROR' "$log" && bad "a module did not load"
cmd 30 "head -c $kosize /dev/vdb >/tmp/vm.ko" || bad "reading the module"
cmd 30 'insmod /tmp/vm.ko; echo INS=$?' || bad "insmod did not finish"
lines "$log" | grep -q '^INS=0' && pass "Linux's virtio_mem module loads" ||
	{ cmd 20 'dmesg | tail -n 15'; die "insmod virtio_mem: $(lines "$log" | tail -n 15)"; }
mt0=$(memtotal)
[ -n "$mt0" ] || die "no MemTotal: $(lines "$log" | tail -n 5)"

c=$(api PATCH /hotplug/memory '{"requested_size_mib": 256}')
[ "$c" = 204 ] || die "PATCH /hotplug/memory: $c $(cat "$T/api.out")"
i=0
while [ $i -lt 60 ]; do
	api GET /hotplug/memory >/dev/null
	grep -q '"plugged_size_mib":256' "$T/api.out" && break
	sleep 2
	i=$((i + 1))
done
grep -q '"plugged_size_mib":256' "$T/api.out" && pass "the driver plugged the 256 MiB asked for" ||
	{ cmd 20 'dmesg | grep -i virtio_mem | tail'; die "plugged: $(cat "$T/api.out")"; }
# the driver onlines each memory block after plugging it: MemTotal follows
i=0
while :; do
	mt1=$(memtotal)
	[ -n "$mt1" ] && [ $((mt1 - mt0)) -ge $((250 * 1024)) ] && break
	[ $i -lt 30 ] || break
	sleep 2
	i=$((i + 1))
done
[ -n "$mt1" ] && [ $((mt1 - mt0)) -ge $((250 * 1024)) ] &&
	pass "MemTotal grew from $mt0 kB to $mt1 kB" || bad "MemTotal $mt0 -> $mt1 kB"

# 200 MiB in tmpfs: more than the 128 MiB of boot RAM holds
cmd 20 'mkdir /hp;mount -t tmpfs -osize=240m t /hp' || bad "tmpfs"
cmd 600 'sqbtool memfill 200 11 /hp/f; echo MF=$?' || bad "memfill did not finish"
lines "$log" | grep -q '^MF=0' && pass "a 200 MiB workload fits (hotplugged memory)" ||
	bad "memfill: $(lines "$log" | tail -n 5)"
cmd 600 'sqbtool memcheck 200 11 /hp/f' || bad "memcheck did not finish"
[ "$(lines "$log" | grep -c 'SQUIB-MEMCHECK ok mib=200')" -ge 1 ] && pass "the workload reads its pattern" ||
	bad "memcheck: $(lines "$log" | grep SQUIB-MEMCHECK | tail -n 1)"

c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\",
	\"snapshot_type\": \"Full\"}")
[ "$c" = 204204 ] && pass "Full snapshot with 256 MiB plugged" || die "snapshot: $c $(cat "$T/api.out")"
stop_squib
pid=""
start_squib load
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"}, \"resume_vm\": true}")
[ "$c" = 204 ] && pass "loaded in a new squib" || die "load: $c $(cat "$T/api.out")"
c=$(api GET /hotplug/memory)
grep -q '"plugged_size_mib":256' "$T/api.out" && pass "GET /hotplug/memory after the load: 256 MiB plugged" ||
	bad "after the load: $c $(cat "$T/api.out")"
cmd 600 'sqbtool memcheck 200 11 /hp/f' || bad "memcheck after load did not finish"
[ "$(lines "$log" | grep -c 'SQUIB-MEMCHECK ok mib=200')" -ge 1 ] &&
	pass "after the load the workload reads its pattern from hotplugged memory" ||
	bad "memcheck after load: $(lines "$log" | grep SQUIB-MEMCHECK | tail -n 1)"
mt2=$(memtotal)
[ "$mt2" = "$mt1" ] && pass "MemTotal after the load: $mt2 kB" || bad "MemTotal after the load: $mt2 kB (before: $mt1)"
# memory goes back: the file is freed, a smaller request is unplugged
cmd 30 'rm /hp/f; umount /hp' || bad "rm"
c=$(api PATCH /hotplug/memory '{"requested_size_mib": 64}')
[ "$c" = 204 ] || bad "PATCH 64: $c $(cat "$T/api.out")"
i=0
while [ $i -lt 60 ]; do
	api GET /hotplug/memory >/dev/null
	grep -q '"plugged_size_mib":64' "$T/api.out" && break
	sleep 2
	i=$((i + 1))
done
grep -q '"plugged_size_mib":64' "$T/api.out" && pass "after the load the driver unplugs down to 64 MiB" ||
	bad "unplug after the load: $(cat "$T/api.out")"
stop_squib
pid=""
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
cleanup
exit $fail
