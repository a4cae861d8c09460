#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --file tests/snapshot/testhost_lib.sh:/test/testhost_lib.sh tests/runtime/testhost_pci.sh
# Firecracker's --enable-pci with Debian's Linux (its own virtio_pci driver),
# the checks of Firecracker's test_pci.py:
#   - 00:00.0 is the host bridge 8086:0d57 (class 0x060000);
#   - the root drive is virtio-blk 1af4:1042 with BAR0 in the 64-bit window,
#     the entropy device 1af4:1044; the guest mounts its root through it and
#     its interrupts are MSI-X (PCI-MSI in /proc/interrupts);
#   - queue fields in the common configuration cannot change once the
#     device runs (test_queue_config_immutable, with busybox devmem; the
#     guest boots with iomem=relaxed: its kernel has IO_STRICT_DEVMEM);
#   - Full snapshot, SIGKILL, load in a squib started WITHOUT --enable-pci:
#     the snapshot rebuilds the PCI functions, the guest reads its disk and
#     /dev/hwrng again.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v start_squib >/dev/null || { echo "FAIL: testhost_lib.sh not found"; exit 1; }
pid="" # cleanup, die, send, cmd: testhost_lib.sh

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] || { echo "FAIL: $G/rootfs.ext4 missing (--rootfs)"; exit 1; }
cp "$G/rootfs.ext4" "$T/root.ext4"

SQB_SQUIB_ARGS=--enable-pci start_squib boot
args="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet iomem=relaxed"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /entropy '{}')
c=$c$(api PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$T/v.sock\"}")
c=$c$(api PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}')
c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c" = 204204204204204204 ] || die "boot: API answered $c: $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 240 || die "no SQUIB-READY: $(lines "$log" | tail -n 30)"
grep -q 'SQUIB-ROOT-ERROR' "$log" && die "root: $(grep SQUIB-ROOT-ERROR "$log")"
lines "$log" | grep -q 'SQUIB-READY.*root=/dev/vda' && pass "Linux mounted its root from virtio-blk over PCI" ||
	bad "no root=/dev/vda: $(grep SQUIB-READY "$log")"
cmd 20 'cat /proc/cmdline' || bad "console"
lines "$log" | grep -q 'console=ttyS0.*pci=off' && bad "pci=off on the guest's command line with --enable-pci"

# console lines stay under 60 bytes (send): short commands, short markers
cmd 20 'ln -s /sys/bus/pci/devices /p' || bad "console"
cmd 20 'for d in /p/*;do echo P $d $(cat $d/[vd]e*);done' || bad "listing PCI devices"
cmd 20 'echo C $(cat /p/0000:00:00.0/class)' || bad "class"
lines "$log" | grep -q '^P /p/0000:00:00.0 0x0d57 0x8086' && lines "$log" | grep -q '^C 0x060000' &&
	pass "00:00.0 is Firecracker's host bridge 8086:0d57, class 0x060000" ||
	bad "host bridge: $(lines "$log" | grep -E '^[PC] ')"
blk=$(lines "$log" | sed -n 's/^P \/p\/\([0-9a-f:.]*\) 0x1042 0x1af4$/\1/p' | head -n 1)
rng=$(lines "$log" | sed -n 's/^P \/p\/\([0-9a-f:.]*\) 0x1044 0x1af4$/\1/p' | head -n 1)
[ -n "$blk" ] && [ -n "$rng" ] && pass "virtio-blk 1af4:1042 at $blk, virtio-rng 1af4:1044 at $rng" ||
	die "virtio-pci functions: $(lines "$log" | grep '^P ')"
cmd 20 "echo B \$(head -n 1 /p/$blk/resource)" || bad "resource"
bar=$(lines "$log" | sed -n 's/^B \(0x[0-9a-f]*\) .*/\1/p' | tail -n 1)
[ -n "$bar" ] && [ "$bar" != 0x0000000000000000 ] && pass "virtio-blk BAR0 at $bar" || die "BAR0: $(lines "$log" | grep '^B ')"
cmd 20 'echo M $(grep -c PCI-MSI /proc/interrupts)' || bad "interrupts"
[ "$(lines "$log" | sed -n 's/^M //p' | tail -n 1)" -ge 2 ] 2>/dev/null &&
	pass "the virtio functions interrupt through MSI-X" || bad "no PCI-MSI interrupts: $(lines "$log" | grep '^M ')"
cmd 30 'echo H $(head -c 999 /dev/hwrng | md5sum)' || bad "hwrng"
lines "$log" | grep -q '^H [0-9a-f]\{32\}' && pass "/dev/hwrng reads through virtio-rng over PCI" || bad "hwrng: $(lines "$log" | tail -n 5)"

# virtio-vsock over PCI (1af4:1053): Linux's vmw_vsock_virtio_transport,
# an agent in the guest, Firecracker's CONNECT from the host
send 'sqbtool vsock-agent 1234 &'
wait_for 'SQUIB-VAGENT ready' "$log" 30 || bad "vsock agent: $(lines "$log" | grep SQUIB-VAGENT)"
timeout 60 "$G/sqbtool" vsock-client "$T/v.sock" 1234 50 >"$T/vc.log" 2>&1
grep -q 'SQUIB-VCLIENT ok lines=50' "$T/vc.log" && pass "vsock over PCI: CONNECT 1234, 50 lines answered" ||
	bad "vsock over PCI: $(tail -n 3 "$T/vc.log")"

# test_queue_config_immutable: select queue 0, poison each field, read back
# (each console command runs on its own: addresses inline, in hex)
rd() { cmd 20 "echo R$1 \$(devmem $(printf '0x%x' $((bar + $1))) $2)" || bad "devmem"; }
wr() { cmd 20 "devmem $(printf '0x%x' $((bar + $1))) $2 $3" || bad "devmem"; }
wr 0x16 16 0
rd 0x18 16
rd 0x1c 16
rd 0x20 32
before=$(lines "$log" | grep -E '^R0x(18|1c|20) ' | tail -n 3 | tr '\n' ' ')
wr 0x18 16 0
wr 0x1c 16 0
wr 0x20 32 0xdeadbeef
rd 0x18 16
rd 0x1c 16
rd 0x20 32
after=$(lines "$log" | grep -E '^R0x(18|1c|20) ' | tail -n 3 | tr '\n' ' ')
case "$before" in
*"R0x18 0x0000 "* | "") bad "queue 0 reads no size: $before" ;;
esac
[ -n "$before" ] && [ "$before" = "$after" ] && pass "queue fields stay as they were after DRIVER_OK ($after)" ||
	bad "queue fields changed: '$before' -> '$after'"

# test_hotplug.py test_hotplug_block: a drive after boot, found by a rescan,
# read; removed by the guest, then unplugged; plugged again for the snapshot
head -c 1048576 /dev/urandom >"$T/hp.img"
hp_sum=$(head -c 4096 "$T/hp.img" | md5sum | cut -d' ' -f1)
hp_body="{\"drive_id\": \"block0\", \"path_on_host\": \"$T/hp.img\", \"is_root_device\": false,
	\"is_read_only\": false}"
c=$(api PUT /drives/block0 "$hp_body")
[ "$c" = 204 ] && pass "PUT /drives/block0 after boot: hot-plugged" || die "hot-plug: $c $(cat "$T/api.out")"
cmd 30 'echo 1 >/sys/bus/pci/rescan' || bad "rescan"
cmd 20 'for d in /p/*;do echo P $d $(cat $d/[vd]e*);done' || bad "listing"
hp=$(lines "$log" | sed -n 's/^P \/p\/\([0-9a-f:.]*\) 0x1042 0x1af4$/\1/p' | grep -v "^$blk\$" | tail -n 1)
[ -n "$hp" ] && pass "the rescan finds the hot-plugged virtio-blk at $hp" ||
	die "no new virtio-blk after the rescan: $(lines "$log" | grep '^P ' | tail -n 4)"
cmd 30 'echo V $(head -c 4096 /dev/vdb | md5sum)' || bad "read vdb"
lines "$log" | grep -q "^V $hp_sum" && pass "the guest reads the hot-plugged drive's bytes" ||
	bad "vdb: $(lines "$log" | grep '^V ' | tail -n 1), want $hp_sum"
cmd 20 "echo 1 >/p/$hp/remove" || bad "remove"
c=$(api DELETE /drives/block0)
[ "$c" = 204 ] && pass "DELETE /drives/block0: unplugged" || bad "unplug: $c $(cat "$T/api.out")"
c=$(api DELETE /drives/block0)
[ "$c" = 400 ] && grep -q 'Device not found' "$T/api.out" && pass "a second DELETE: Device not found" ||
	bad "second unplug: $c $(cat "$T/api.out")"
cmd 30 'echo 1 >/sys/bus/pci/rescan;ls /p | wc -l' || bad "rescan"
cmd 20 "echo G \$(ls /p | grep -c $hp)" || bad "gone"
lines "$log" | grep -q "^G 0" && pass "after the unplug and a rescan the slot is empty" ||
	bad "after unplug: $(lines "$log" | grep '^G ' | tail -n 1)"
c=$(api PUT /drives/block0 "$hp_body")
[ "$c" = 204 ] || bad "hot-plug again: $c $(cat "$T/api.out")"
cmd 30 'echo 1 >/sys/bus/pci/rescan' || bad "rescan"
cmd 30 'echo W $(head -c 4096 /dev/vdb | md5sum)' || bad "read vdb again"
lines "$log" | grep -q "^W $hp_sum" && pass "plugged again into the freed slot, it reads" ||
	bad "vdb again: $(lines "$log" | grep '^W ' | tail -n 1)"

cmd 30 'echo pci-was-here >/root/p.txt;sync' || bad "write"
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\",
	\"snapshot_type\": \"Full\"}")
[ "$c" = 204204 ] && pass "Full snapshot of the PCI VM" || die "snapshot: $c $(cat "$T/api.out")"
stop_squib
pid=""
SQB_SQUIB_ARGS= start_squib load
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"}, \"resume_vm\": true,
	\"vsock_override\": {\"uds_path\": \"$T/v2.sock\"}}")
[ "$c" = 204 ] && pass "loaded in a new squib (no --enable-pci: the snapshot says PCI)" || die "load: $c $(cat "$T/api.out")"
cmd 30 'echo 3 >/proc/sys/vm/drop_caches;cat /root/p.txt' || bad "console after load"
lines "$log" | grep -q '^pci-was-here' && pass "after the load the guest reads its disk through virtio-pci" ||
	bad "disk after load: $(lines "$log" | tail -n 5)"
cmd 30 'echo H2 $(head -c 999 /dev/hwrng | md5sum)' || bad "hwrng after load"
timeout 60 "$G/sqbtool" vsock-client "$T/v2.sock" 1234 20 >"$T/vc2.log" 2>&1
grep -q 'SQUIB-VCLIENT ok lines=20' "$T/vc2.log" && pass "after the load the guest's vsock agent answers a new client" ||
	bad "vsock after load: $(tail -n 3 "$T/vc2.log")"
cmd 30 'echo X $(head -c 4096 /dev/vdb | md5sum)' || bad "vdb after load"
lines "$log" | grep -q "^X $hp_sum" && pass "after the load the hot-plugged drive reads in its slot" ||
	bad "vdb after load: $(lines "$log" | grep '^X ' | tail -n 1)"
lines "$log" | grep -q '^H2 [0-9a-f]\{32\}' && pass "after the load /dev/hwrng still reads" ||
	bad "hwrng after load: $(lines "$log" | tail -n 5)"
stop_squib
pid=""
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
cleanup
exit $fail
