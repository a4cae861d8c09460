#!/bin/sh
# Runs inside the nested test host (docs/testing.md), or directly on hardware KVM:
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --bin /sbin/e2fsck tests/snapshot/testhost_blk.sh
# The guest kit's Linux with its root on virtio-blk (PUT /drives, Firecracker's
# is_root_device) and virtio-rng (PUT /entropy):
#   - root is /dev/vda (ext4), `mount` and `df` show it;
#   - a second drive with is_read_only refuses writes, and its file is unchanged;
#   - a writer writes checksummed files continuously (each fsynced before it
#     counts); Full snapshot while it writes, SIGKILL squib, load in a new squib:
#     every write the writer saw complete is on the disk, and it goes on;
#   - a holder process read 32 MiB with O_DIRECT (device writes into guest RAM,
#     which KVM's dirty log does not see) after the base: a 3-deep Diff chain
#     (D1 D2 D3 over the loaded Full) restores that buffer intact, the same
#     file's page cache too, and the writer verifies again;
#   - a clean shutdown (writer stopped, root remounted read-only, reboot) leaves
#     an image that `e2fsck -fn` finds clean;
#   - a boot of its own with PUT /entropy and the root drive read-only:
#     /dev/hwrng gives bytes (read under a timeout), the root refuses writes.
# Exit 77 (skip) while squib answers PUT /drives or PUT /entropy with an error:
# the virtio-blk/virtio-rng API is not in this build yet.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
# A guest triple fault logs the last vCPU state squib knew and a check of
# the guest's exception path against the load (docs/testing.md "Known
# failures"); costs two ioctls per exit after a load, nothing before.
export SQB_CRASH_CHECK=${SQB_CRASH_CHECK:-1}
fail=0
pass() { echo "PASS: $*"; }
# A squib that died closes its serial FIFO: the next write must fail (and
# the test report it), not kill the test with SIGPIPE.
trap '' PIPE
bad() { # the first failure also shows what the current squib last said
	echo "FAIL: $*"
	[ "$fail" = 1 ] && return 0
	fail=1
	if [ -n "${pid:-}" ] && [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)" != S ] &&
		[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)" != R ]; then
		echo "INFO: squib (pid $pid) is not running"
	fi
	[ -n "${log:-}" ] && [ -f "$log" ] && tail -n 40 "$log" | tr -d '\r' | grep -v 'virtio_blk virtio' |
		sed 's/^/  | /'
}
# What a guest crash leaves on the console (a panic falls back to a triple
# fault when the reboot does not take), wherever it is in the log.
crash_lines() {
	[ -n "${log:-}" ] && [ -f "$log" ] || return 0
	grep -nE 'Kernel panic|BUG:|Oops|general protection|RIP:|Call Trace|triple fault|stopped|virtio_blk|I/O error|crash check|shutdown' \
		"$log" | tail -n 120 | sed 's/^/CONSOLE: /'
}
die() { echo "FAIL: $*"; crash_lines; [ -n "${log:-}" ] && [ -f "$log" ] && tail -n 40 "$log"; cleanup; exit 1; }
now() { read -r t _ </proc/uptime; echo "$t"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (b-a)*1000}'; }
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -rf "$T"
}

api() { # api METHOD PATH [JSON] -> HTTP status; body in $T/api.out
	if [ -n "${3:-}" ]; then
		curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2"
	else
		curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			"http://localhost$2"
	fi
}

wait_for() { # wait_for REGEX FILE SECONDS
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		# complete lines only: a marker half written must not match
		head -n "$( (wc -l <"$2") 2>/dev/null || echo 0)" "$2" 2>/dev/null | grep -qE "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Type one line on the guest's console.  squib takes at most 64 bytes of
# serial input at a time (the UART FIFO) and drops the rest, so lines stay
# short (the longer checks live in the image as /bin/sqb-check) and each
# waits a moment for the guest to drain the FIFO.
send() {
	[ ${#1} -lt 60 ] || { echo "FAIL: test bug: console line over 60 bytes: $1"; fail=1; }
	echo "$1" >&3
	sleep 0.5
}
# Run one console command and wait for its end marker; output lands in $log.
ncmd=0
cmd() { # cmd SECONDS COMMAND
	ncmd=$((ncmd + 1))
	send "$2; echo CMD-$ncmd-END"
	wait_for "^CMD-$ncmd-END" "$log" "$1"
}

start_squib() { # start_squib NAME -> pid, sock, log, fd 3 = serial input
	sock=$T/$1.sock log=$T/$1.log fifo=$T/$1.in
	rm -f "$sock" "$fifo"
	mkfifo "$fifo"
	squib --api-sock "$sock" <"$fifo" >"$log" 2>&1 &
	pid=$!
	exec 3>"$fifo"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$sock" ] || die "$1: no API socket"
}

stop_squib() { # SIGKILL, as a crash would
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=""
	exec 3>&-
}

# last number N in "SQUIB-WRITER n=N" or "verify ok n=N" lines of FILE...
writer_n() { cat "$@" | sed -n 's/.*SQUIB-WRITER .*n=\([0-9]*\).*/\1/p' | tail -n1; }

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
command -v e2fsck >/dev/null || { echo "FAIL: e2fsck not in the test host (--bin /sbin/e2fsck)"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] || { echo "FAIL: $G/rootfs.ext4 missing (run.sh --rootfs)"; exit 1; }

cp "$G/rootfs.ext4" "$T/root.ext4"
# read-only drive: 8 MiB of random bytes, remembered by checksum
dd if=/dev/urandom of="$T/ro.img" bs=1M count=8 2>/dev/null
ro_sum=$(md5sum <"$T/ro.img")

# ---- does this squib have drives and entropy?  (a squib of its own) ----
# /entropy is used in a boot of its own at the end, so a virtio-rng problem
# cannot hide what the disk checks find (and the other way round).
start_squib probe
cd_=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
cd_="$cd_ $(cat "$T/api.out")"
ce_=$(api PUT /entropy '{}')
ce_="$ce_ $(cat "$T/api.out")"
stop_squib
case "$cd_" in
204*) ;;
*)
	echo "SKIP: squib answered PUT /drives/rootfs with HTTP $cd_"
	echo "SKIP: virtio-blk drives are not in this squib yet; nothing to test"
	cleanup
	exit 77
	;;
esac
case "$ce_" in
204*) ;;
*) echo "SKIP: squib answered PUT /entropy with HTTP $ce_"; cleanup; exit 77 ;;
esac

# ---- boot with the root on virtio-blk ----
start_squib boot
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
[ "$c" = 204 ] || die "PUT /drives/rootfs: $c $(cat "$T/api.out")"
c=$(api PUT /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$T/ro.img\",
	\"is_root_device\": false, \"is_read_only\": true}")
[ "$c" = 204 ] || die "PUT /drives/scratch (read-only): $c $(cat "$T/api.out")"
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256, "track_dirty_pages": true}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || die "boot: API answered $c1 $c2 $c3: $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
grep -q 'SQUIB-READY.* root=/dev/vda' "$log" && pass "booted with its root on virtio-blk (/dev/vda)" ||
	die "root is not /dev/vda: $(grep -E 'SQUIB-(READY|ROOT-ERROR)' "$log")"

cmd 30 'mount | grep " / "; df -k /' || bad "mount/df"
grep -qE '^/dev/vda on / type ext4 \(rw' "$log" && pass "mount shows /dev/vda on / as ext4 rw" ||
	bad "mount does not show /dev/vda on / rw"

# ---- read-only drive ----
cmd 30 'sqb-check drives'
ro_dev=$(sed -n 's/^DRIVE \(vd[a-z]*\) 16384 ro=.*/\1/p' "$log" | awk 'NR == 1')
if [ -z "$ro_dev" ]; then
	cmd 20 'dmesg | grep -i virtio | tail -n 15'
	die "no 8 MiB drive in the guest: $(grep '^DRIVE' "$log" | tr '\n' ' ')"
fi
grep -q "^DRIVE $ro_dev 16384 ro=1" "$log" && pass "read-only drive is $ro_dev, read-only in the guest" ||
	bad "$ro_dev is not read-only in the guest"
cmd 30 "sqb-check rowrite $ro_dev"
grep -qE '^RO-WRITE1 [1-9]' "$log" && grep -qE '^RO-WRITE2 [1-9]' "$log" &&
	pass "writes to the read-only drive fail (also after blockdev --setrw)" ||
	bad "a write to the read-only drive succeeded: $(grep '^RO-WRITE' "$log" | tr '\n' ' ')"
cmd 30 "sqb-check rosum $ro_dev 8"
g_sum=$(sed -n 's/^RO-SUM \([0-9a-f]*\).*/\1/p' "$log" | awk 'NR == 1')
[ "$(md5sum <"$T/ro.img")" = "$ro_sum" ] && [ "$g_sum  -" = "$ro_sum" ] &&
	pass "read-only drive: the guest reads the file's bytes, the file is unchanged" ||
	bad "read-only drive content (guest $g_sum, host $(md5sum <"$T/ro.img"), was $ro_sum)"

# ---- PATCH of path_on_host after boot (Firecracker's drive update) ----
# another file, half the size: the guest gets a configuration-change
# interrupt, sees the new capacity and reads the new file's bytes
dd if=/dev/urandom of="$T/ro2.img" bs=1M count=4 2>/dev/null
ro2_sum=$(md5sum <"$T/ro2.img")
c=$(api PATCH /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$T/ro2.img\"}")
[ "$c" = 204 ] || bad "PATCH /drives/scratch path_on_host: $c $(cat "$T/api.out")"
cmd 30 'sleep 1; sqb-check drives'
cmd 30 "sqb-check rosum $ro_dev 4"
g2_sum=$(sed -n 's/^RO-SUM \([0-9a-f]*\).*/\1/p' "$log" | awk 'NR == 2')
grep -q "^DRIVE $ro_dev 8192 ro=1" "$log" && [ "$g2_sum  -" = "$ro2_sum" ] &&
	pass "PATCH of path_on_host after boot: the guest sees the new file's size and bytes" ||
	bad "after the PATCH: $(grep "^DRIVE $ro_dev" "$log" | tr '\n' ' '), guest sum $g2_sum, file $ro2_sum"

# ---- workloads: writer and the O_DIRECT holder ----
send 'sqbtool writer /data/w 64 11 &'
send 'sqbtool holdread /data/big.pat 32 5 &'
wait_for 'SQUIB-WRITER ready' "$log" 30 && wait_for 'SQUIB-HOLD ready' "$log" 30 ||
	die "workloads did not start"
wpid=$(sed -n 's/.*SQUIB-WRITER ready pid=\([0-9]*\).*/\1/p' "$log" | awk 'NR == 1')
hpid=$(sed -n 's/.*SQUIB-HOLD ready pid=\([0-9]*\).*/\1/p' "$log" | awk 'NR == 1')
wait_for 'SQUIB-WRITER n=50([^0-9]|$)' "$log" 60 || die "writer does not progress"
# the page cache must not hold big.pat yet: the read after the base fills it
cmd 30 'echo 3 >/proc/sys/vm/drop_caches'

# ---- Full snapshot while the writer writes, SIGKILL, load ----
t0=$(now)
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/f.state\", \"mem_file_path\": \"$T/f.mem\",
	\"snapshot_type\": \"Full\"}")
t1=$(now)
[ "$c" = 204204 ] && pass "paused and took a Full snapshot while the writer writes" ||
	die "Full snapshot: $c $(cat "$T/api.out")"
echo "SQUIB-BLK-TIME full_pause_to_files_ms=$(ms "$t0" "$t1")"
n_full=$(writer_n "$log")
stop_squib

start_squib full
t2=$(now)
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/f.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/f.mem\"},
	\"track_dirty_pages\": true, \"resume_vm\": true}")
t3=$(now)
[ "$c" = 204 ] && pass "a new squib loaded the Full snapshot (root drive re-opened)" ||
	die "load Full: $c $(cat "$T/api.out")"
echo "SQUIB-BLK-TIME full_load_ms=$(ms "$t2" "$t3")"
wait_for "SQUIB-WRITER n=$(((n_full / 25 + 2) * 25))([^0-9]|\$)" "$log" 60 &&
	pass "writer goes on after the load (past n=$n_full)" || bad "writer after the Full load"
send "kill -USR1 $wpid"
wait_for 'SQUIB-WRITER (verify ok|bad)' "$log" 60 && ! grep -q 'SQUIB-WRITER bad' "$log" &&
	pass "every write the writer saw complete is on the disk ($(grep -o 'verify ok n=[0-9]*' "$log" | tail -n1))" ||
	bad "writer verify after the Full load: $(grep -E 'SQUIB-WRITER (bad|verify)' "$log" | tail -n2)"

# ---- the guest reads into RAM; three Diffs; SIGKILL; load the chain ----
send "kill -USR1 $hpid"
wait_for 'SQUIB-HOLD (ok gen=1|bad)' "$log" 60 && ! grep -q 'SQUIB-HOLD bad' "$log" ||
	die "holder's O_DIRECT read: $(grep 'SQUIB-HOLD' "$log" | tail -n1)"
cmd 60 'sqbtool memcheck 32 5 /data/big.pat' && grep -q 'SQUIB-MEMCHECK ok mib=32' "$log" ||
	die "buffered read of big.pat: $(grep SQUIB-MEMCHECK "$log" | tail -n1)"
for d in 1 2 3; do
	c=$(api PATCH /vm '{"state": "Paused"}')
	t0=$(now)
	c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/d$d.state\",
		\"mem_file_path\": \"$T/d$d.mem\", \"snapshot_type\": \"Diff\"}")
	t1=$(now)
	[ "$c" = 204204 ] || die "Diff $d: $c $(cat "$T/api.out")"
	echo "SQUIB-BLK-TIME diff${d}_create_ms=$(ms "$t0" "$t1") mem_file_bytes=$(du -k "$T/d$d.mem" | cut -f1)KiB"
	[ $d = 3 ] && break
	c=$(api PATCH /vm '{"state": "Resumed"}')
	[ "$c" = 204 ] || die "resume after Diff $d: $c $(cat "$T/api.out")"
	n=$(writer_n "$log")
	wait_for "SQUIB-WRITER n=$(((n / 25 + 1) * 25))([^0-9]|\$)" "$log" 60 || bad "writer after Diff $d"
done
pass "took Diffs D1 D2 D3 over the loaded Full while the writer writes"
n_chain=$(writer_n "$log")
stop_squib

start_squib chain
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/d3.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/d3.mem\"},
	\"resume_vm\": true}")
[ "$c" = 204 ] && pass "a new squib loaded the 3-deep Diff chain D3 -> D2 -> D1 -> Full" ||
	die "load D3: $c $(cat "$T/api.out")"
send "kill -USR1 $hpid"
wait_for 'SQUIB-HOLD (ok gen=2|bad)' "$log" 60 && ! grep -q 'SQUIB-HOLD bad' "$log" &&
	pass "the 32 MiB the device wrote into the holder's RAM survived the Diff chain" ||
	bad "holder after the chain load: $(grep 'SQUIB-HOLD' "$log" | tail -n1)"
cmd 60 'sqbtool memcheck 32 5 /data/big.pat' && grep -q 'SQUIB-MEMCHECK ok mib=32' "$log" &&
	pass "big.pat reads back right after the chain load (its page cache was device-written)" ||
	bad "big.pat after the chain load: $(grep SQUIB-MEMCHECK "$log" | tail -n1)"
wait_for "SQUIB-WRITER n=$(((n_chain / 25 + 2) * 25))([^0-9]|\$)" "$log" 60 &&
	pass "writer goes on after the chain load (past n=$n_chain)" || bad "writer after the chain load"
send "kill -USR1 $wpid"
wait_for 'SQUIB-WRITER (verify ok|bad)' "$log" 60 && ! grep -q 'SQUIB-WRITER bad' "$log" &&
	pass "every completed write is on the disk after the chain load ($(grep -o 'verify ok n=[0-9]*' "$log" | tail -n1))" ||
	bad "writer verify after the chain load: $(grep -E 'SQUIB-WRITER (bad|verify)' "$log" | tail -n2)"

# ---- clean shutdown, then e2fsck ----
send "kill -USR2 $wpid; kill $hpid"
wait_for 'SQUIB-WRITER stopped' "$log" 60 || bad "writer did not stop"
cmd 60 'sqbtool wcheck /data/w 11' && grep -q 'SQUIB-WCHECK ok' "$log" &&
	pass "a new process finds every journalled write ($(grep -o 'SQUIB-WCHECK ok.*' "$log"))" ||
	bad "wcheck: $(grep SQUIB-WCHECK "$log")"
cmd 60 'sqb-check shutdown'
grep -q '^ROOT-RO-FAILED' "$log" || ! grep -q '^ROOT-RO' "$log" && bad "remount of / read-only failed"
send 'reboot -f'
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
	bad "guest did not reboot"
	stop_squib
else
	wait "$pid"
	rc=$?
	pid=""
	[ $rc = 0 ] || bad "squib exit $rc after the guest's reboot"
fi
exec 3>&-
if e2fsck -fn "$T/root.ext4" >"$T/fsck.out" 2>&1; then
	pass "e2fsck -fn finds the root image clean after the clean shutdown"
else
	bad "e2fsck -fn: $(tail -n 15 "$T/fsck.out")"
fi
[ "$(md5sum <"$T/ro.img")" = "$ro_sum" ] && pass "read-only drive file unchanged at the end" ||
	bad "read-only drive file changed"

# ---- virtio-rng: a boot of its own ----
start_squib rng
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": true}")
c=$c$(api PUT /entropy '{}')
c=$c$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c" = 204204204204204 ] || die "rng boot: API answered $c: $(cat "$T/api.out")"
wait_for 'SQUIB-READY' "$log" 180 || die "rng boot: no SQUIB-READY"
grep -q 'SQUIB-READY.* root=/dev/vda' "$log" || bad "rng boot: root is not /dev/vda"
cmd 40 'sqb-check hwrng' || bad "hwrng command did not finish"
if grep -qE '^HWRNG 128 virtio_rng' "$log"; then
	pass "/dev/hwrng gives 64 bytes from virtio_rng"
else
	bad "/dev/hwrng: $(grep '^HWRNG' "$log")"
	tail -n 25 "$log"
fi
# read-only root: a write must fail
cmd 30 'sqb-check rootro'
grep -qE '^ROOT-RO-WRITE [1-9]' "$log" && pass "a read-only root drive refuses writes (root=/dev/vda ro)" ||
	bad "a write to the read-only root succeeded"
send 'reboot -f'
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
stop_squib
e2fsck -fn "$T/root.ext4" >"$T/fsck.out" 2>&1 || bad "e2fsck after the read-only boot: $(tail -n 5 "$T/fsck.out")"
[ $fail = 0 ] || { crash_lines; echo "== last console lines"; tail -n 30 "$log"; }
cleanup
exit $fail
