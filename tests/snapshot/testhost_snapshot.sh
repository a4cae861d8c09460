#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --bin build-snapshot/runtime/squib --bin /usr/bin/curl \
#       tests/snapshot/testhost_snapshot.sh
# squib boots the guest kit's Linux (1 vCPU, 256 MiB) with a counter and a
# keeper process holding a 16 MiB pattern in RAM, snapshots it (Full), is
# SIGKILLed, and a new squib loads the snapshot: the counter continues
# without a gap, the keeper finds its RAM intact and keeps running, uptime
# continues, and the restored guest reboots cleanly.  Prints PASS/FAIL and
# SQUIB-SNAP-TIME lines.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
# pass/bad/api/lines/wait_for/start_squib/stop_squib
. "$(dirname "$0")/testhost_lib.sh"
now() { read -r t _ </proc/uptime; echo "$t"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (b-a)*1000}'; }

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }

# ---- boot, run, snapshot, kill ----
start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
args="$args sqb.run=counter:200+keeper:16:9"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256, "track_dirty_pages": true}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || { bad "boot: API answered $c1 $c2 $c3"; exit 1; }
wait_for 'SQUIB-READY' "$log" 180 || { bad "no SQUIB-READY"; tail -n 30 "$log"; exit 1; }
wait_for 'SQUIB-KEEPER ready' "$log" 60 && wait_for 'SQUIB-COUNTER 5([^0-9]|$)' "$log" 60 ||
	{ bad "workloads did not start"; tail -n 30 "$log"; exit 1; }
echo 'echo UPTIME-BEFORE $(cut -d" " -f1 /proc/uptime)' >&3
wait_for 'UPTIME-BEFORE [0-9]' "$log" 30 || bad "uptime before"
up0=$(sed -n 's/^UPTIME-BEFORE \([0-9.]*\).*/\1/p' "$log" | tail -n1)
t0=$(now)
c=$(api PATCH /vm '{"state": "Paused"}')
t1=$(now)
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/linux.state\",
	\"mem_file_path\": \"$T/linux.mem\"}")
t2=$(now)
[ "$c" = 204204 ] && pass "paused and snapshotted a running Linux guest" ||
	{ bad "snapshot: $c $(cat $T/api.out)"; exit 1; }
echo "SQUIB-SNAP-TIME create_ms=$(ms "$t1" "$t2") pause_to_files_ms=$(ms "$t0" "$t2")" \
	"mem_file_bytes=$(wc -c <"$T/linux.mem")"
kill -9 "$pid"
wait "$pid" 2>/dev/null
exec 3>&-
cp "$log" $T/before.log
sleep 1

# ---- load in a new squib ----
start_squib load
t3=$(now)
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/linux.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/linux.mem\"},
	\"resume_vm\": true}")
t4=$(now)
[ "$c" = 204 ] && pass "new squib loaded the snapshot and resumed" ||
	{ bad "load: $c $(cat $T/api.out)"; tail -n 20 "$log"; exit 1; }
last=$(grep -o 'SQUIB-COUNTER [0-9]*' $T/before.log | tail -n1 | awk '{print $2}')
wait_for "SQUIB-COUNTER $((last + 3))([^0-9]|\$)" "$log" 60 &&
	pass "counter continues after the load" || bad "counter after the load"
t5=$(now)
echo "SQUIB-SNAP-TIME load_ms=$(ms "$t3" "$t4") load_to_counter_ms=$(ms "$t3" "$t5")"
cat $T/before.log "$log" | grep -o 'SQUIB-COUNTER [0-9]*' | awk '{print $2}' |
	awk 'NR > 1 && $1 != prev + 1 { gap = 1 } { prev = $1 } END { exit gap }' &&
	pass "counter has no gap or repeat across snapshot, kill and load" ||
	bad "counter has a gap across the load"
kpid=$(sed -n 's/.*SQUIB-KEEPER ready pid=\([0-9]*\).*/\1/p' $T/before.log | awk 'NR == 1')
k0=$(cat $T/before.log "$log" | grep -c 'SQUIB-KEEPER ok gen=')
echo "kill -USR1 $kpid" >&3
wait_for "SQUIB-KEEPER ok gen=$((k0 + 1))([^0-9]|\$)" "$log" 60 &&
	! grep -q 'SQUIB-KEEPER bad' "$log" &&
	pass "keeper process found its 16 MiB RAM pattern intact and keeps running" ||
	bad "keeper after the load"
echo 'echo UPTIME-AFTER $(cut -d" " -f1 /proc/uptime)' >&3
wait_for 'UPTIME-AFTER [0-9]' "$log" 30 || bad "uptime after"
up1=$(sed -n 's/^UPTIME-AFTER \([0-9.]*\).*/\1/p' "$log" | tail -n1)
awk -v a="$up0" -v b="$up1" 'BEGIN{exit !(b >= a)}' &&
	pass "uptime continues ($up0 s before the snapshot, $up1 s after the load)" ||
	bad "uptime went backwards ($up0 -> $up1)"
echo "SQUIB-SNAP-TIME guest_uptime_before=$up0 guest_uptime_after=$up1" \
	"host_gap_s=$(awk -v a="$t2" -v b="$t4" 'BEGIN{print b-a}')"
# Shut the restored guest down from inside: reboot through the i8042 reset
# line (reboot=k) ends squib with status 0.
echo 'reboot -f' >&3
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
	bad "restored guest did not reboot"
	tail -n 15 "$log"
	kill -9 "$pid"
else
	wait "$pid"
	rc=$?
	[ $rc = 0 ] && pass "restored guest rebooted cleanly (squib exit 0)" ||
		bad "squib exit $rc after the restored guest's reboot"
fi
exec 3>&-
rm -rf "$T"
exit $fail
