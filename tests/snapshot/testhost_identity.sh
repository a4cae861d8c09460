#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --bin build/runtime/squib --bin /usr/bin/curl \
#       tests/snapshot/testhost_identity.sh
# Clone identity with the guest kit's Linux (issue 14): Linux enumerates the
# DSDT's VGEN (VMGENCTR) and GED (ACPI0013) devices without ACPI errors, the
# GED takes its interrupt, and every load of one snapshot raises it once
# (the guest runs _EVT -> Notify(VGEN, 0x80)); clock_realtime keeps the
# clone's wall clock right across a dormant gap (a clone loaded without it
# lags by the gap).  The
# kit's kernel (Debian cloud 6.1) is built without CONFIG_VMGENID, so the
# driver's reseed is not shown here; testhost_identity_rng.sh shows it with
# the kit's generic kernel (docs/snapshots.md "Clone identity").
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
# pass/bad/api/lines/wait_for/start_squib/stop_squib
. "$(dirname "$0")/testhost_lib.sh"

# GED interrupt count: the /proc/interrupts line of the ACPI GED (Linux
# names it after the device, "ACPI:Ged").
ged_irqs() { # ged_irqs TAG -> prints "TAG <count>" on the console
	echo "echo $1 \$(grep -i ged /proc/interrupts | awk '{s=0; for (i=2; i<=NF; i++) if (\$i ~ /^[0-9]+\$/) s+=\$i; else break; print s}')" >&3
}

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }

start_squib boot
# clocksource=kvm-clock: clock_realtime moves kvmclock; a Linux that keeps
# time on the raw TSC (its choice when the TSC is invariant) does not see it
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
args="$args clocksource=kvm-clock"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || { bad "boot: API answered $c1 $c2 $c3"; exit 1; }
wait_for 'SQUIB-READY' "$log" 180 || { bad "no SQUIB-READY"; tail -n 30 "$log"; exit 1; }
echo 'echo VGEN-HID $(cat /sys/bus/acpi/devices/VMGENCTR:00/hid 2>/dev/null) GED-HID $(cat /sys/bus/acpi/devices/ACPI0013:00/hid 2>/dev/null)' >&3
wait_for '^VGEN-HID' "$log" 30
grep -q '^VGEN-HID VMGENCTR GED-HID ACPI0013' "$log" &&
	pass "Linux enumerated VGEN (VMGENCTR) and GED (ACPI0013) from the DSDT" ||
	bad "ACPI devices: $(grep VGEN-HID "$log")"
echo 'echo ACPI-ERRORS $(dmesg | grep -ciE "acpi (error|bios error|exception)|_EVT|evged.*fail")' >&3
wait_for 'ACPI-ERRORS [0-9]' "$log" 30
grep -q 'ACPI-ERRORS 0' "$log" && pass "no ACPI errors in dmesg" ||
	bad "ACPI errors: $(dmesg 2>/dev/null | tail -n 0; grep ACPI-ERRORS "$log")"
ged_irqs GED-BOOT
wait_for 'GED-BOOT [0-9]' "$log" 30
grep -qE 'GED-BOOT 0([^0-9]|$)' "$log" && pass "the GED's interrupt is requested (0 so far)" ||
	bad "GED interrupt line: $(grep GED-BOOT "$log"; grep -i ged /proc/interrupts)"
echo 'echo CLOCKSOURCE $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)' >&3
wait_for 'CLOCKSOURCE [a-z]' "$log" 30
grep -q 'CLOCKSOURCE kvm-clock' "$log" && pass "the guest keeps time with kvm-clock" ||
	bad "guest clocksource: $(grep CLOCKSOURCE "$log")"
# the guest's wall clock against the host's before the snapshot: the
# clone's must keep that offset (within a few seconds), not lose the gap
echo 'echo GUEST-DATE $(date +%s)' >&3
wait_for '^GUEST-DATE [0-9]' "$log" 30
off0=$(($(date +%s) - $(sed -n 's/^GUEST-DATE \([0-9]*\).*/\1/p' "$log" | tail -n1)))
echo "guest wall clock before the snapshot: host - guest = $off0 s"
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/id.state\",
	\"mem_file_path\": \"$T/id.mem\"}")
[ "$c" = 204204 ] && pass "snapshotted" || { bad "snapshot: $c $(cat $T/api.out)"; exit 1; }
stop_squib
sleep 20 # dormant: wall time passes, the snapshot's clock does not

# clone A with clock_realtime, clone B without (the control: its wall clock
# lags by the gap)
for clone in A B; do
	rt=true
	[ $clone = B ] && rt=false
	start_squib "clone$clone"
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/id.state\",
		\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/id.mem\"},
		\"resume_vm\": true, \"clock_realtime\": $rt}")
	[ "$c" = 204 ] || { bad "clone $clone: load $c $(cat $T/api.out)"; exit 1; }
	ged_irqs "GED-$clone"
	wait_for "GED-$clone [0-9]" "$log" 60
	grep -qE "GED-$clone 1([^0-9]|\$)" "$log" &&
		pass "clone $clone: the GED interrupt came once after the load" ||
		bad "clone $clone: $(grep "GED-$clone" "$log")"
	echo 'echo GUEST-DATE $(date +%s)' >&3
	wait_for '^GUEST-DATE [0-9]' "$log" 30
	g=$(sed -n 's/^GUEST-DATE \([0-9]*\).*/\1/p' "$log" | tail -n1)
	h=$(date +%s)
	d=$((h - g - off0))
	if [ $rt = true ]; then
		[ "${d#-}" -le 5 ] &&
			pass "clone $clone: clock_realtime: the guest's date kept its offset to the host's (changed by $d s) across a >= 20 s gap" ||
			bad "clone $clone: guest date $g, host $h: offset $((h - g)) s, $off0 s before the snapshot"
	else
		[ "$d" -ge 15 ] &&
			pass "clone $clone: without clock_realtime the guest's date lags by the gap ($d s)" ||
			bad "clone $clone (control): guest date lags by only $d s"
	fi
	stop_squib
done
rm -rf "$T"
exit $fail
