#!/bin/sh
# Experiment for the testhost_blk triple fault (docs/testing.md "Known
# failures"), inside the nested test host:
#   testhost/run.sh --rootfs --no-vmlinux --timeout 600 --bin build/runtime/squib \
#       --bin /usr/bin/curl tests/snapshot/testhost_blk_loop.sh [BUDGET_S] [MODES]
# One boot of the guest kit's Linux with its root on virtio-blk, the writer
# and the O_DIRECT holder as in testhost_blk.sh; first NOSNAP rounds of a
# fresh holder's 32 MiB O_DIRECT read without any snapshot; then one Full
# taken while the writer writes, loaded again and again (the root image put
# back each time) in the restore modes MODES cycles through ("mmap eager"),
# each load doing what testhost_blk.sh does after its Full load: the writer
# goes on and verifies, then the holder's O_DIRECT read.  Prints one
# LOOP-RESULT line per load and a LOOP-SUMMARY; exit 1 if any load failed.
G=${SQB_GUEST_DIR:-/guest}
export SQB_CRASH_CHECK=${SQB_CRASH_CHECK:-1} SQB_SNAP_SELFCHECK=${SQB_SNAP_SELFCHECK:-1}
T=$(mktemp -d)
budget=${1:-420}
modes=${2:-mmap eager}
nosnap=${3:-3}
fresh=${4:-0}
pid="" bpid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$bpid" ] && kill -9 "$bpid" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -rf "$T"
}
die() { echo "LOOP-FAIL: $*"; [ -n "${log:-}" ] && tail -n 30 "$log"; cleanup; exit 2; }
now() { read -r t _ </proc/uptime; echo "${t%.*}"; }
api() {
	if [ -n "${3:-}" ]; then
		curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2"
	else
		curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			"http://localhost$2"
	fi
}
wait_for() { # wait_for REGEX FILE SECONDS: 0 found, 1 timeout, 2 squib gone
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		head -n "$( (wc -l <"$2") 2>/dev/null || echo 0)" "$2" 2>/dev/null | grep -qE "$1" && return 0
		[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 2
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
send() { echo "$1" >&3; sleep 0.5; }
start_squib() {
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
stop_squib() {
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=""
	exec 3>&-
}
writer_n() { cat "$@" | sed -n 's/.*SQUIB-WRITER .*n=\([0-9]*\).*/\1/p' | tail -n1; }

# After a load: what testhost_blk.sh does after its Full load; sets res, why.
check_load() { # check_load N_FULL WRITER_PID HOLDER_PID
	res=ok why=""
	wait_for "SQUIB-WRITER n=$((($1 / 25 + 2) * 25))([^0-9]|\$)" "$log" 60
	case $? in 0) ;; 2) res=FAIL why="squib ended before the writer went on" ;; *) res=FAIL why="writer" ;; esac
	if [ $res = ok ]; then
		send "kill -USR1 $2"
		wait_for 'SQUIB-WRITER (verify ok|bad)' "$log" 60
		case $? in 0) ;; 2) res=FAIL why="squib ended in the writer's verify" ;; *) res=FAIL why="verify" ;; esac
	fi
	if [ $res = ok ]; then
		send "kill -USR1 $3"
		wait_for 'SQUIB-HOLD (ok gen=1|bad)' "$log" 60
		case $? in 0) ;; 2) res=FAIL why="squib ended in the holder's read" ;; *) res=FAIL why="holder" ;; esac
		grep -q 'SQUIB-HOLD bad' "$log" && res=FAIL why="holder: $(grep 'SQUIB-HOLD bad' "$log")"
	fi
	if [ $res != ok ]; then
		grep -nE 'triple|shutdown|crash|Oops|BUG|panic|error|HOLD|squib' "$log" | tail -n 150 | sed 's/^/LOG: /'
		tail -n 15 "$log" | sed 's/^/TAIL: /'
	fi
}

# A new Full of the running boot VM for every load (the boot VM paused
# meanwhile), each loaded with its own copy of the root image.
fresh_loop() {
	bsock=$sock bpid=$pid blog=$log
	exec 4>&3
	it=0 fails="" summary=""
	while [ $(($(now) - t_begin)) -lt "$budget" ]; do
		it=$((it + 1))
		set -- $modes
		k=$(((it - 1) % $# + 1))
		eval "mode=\${$k}"
		sock=$bsock log=$blog pid=$bpid
		if [ $it -gt 1 ]; then
			c=$(api PATCH /vm '{"state": "Resumed"}')
			[ "$c" = 204 ] || die "resume the boot VM: $c"
			n=$(writer_n "$blog")
			wait_for "SQUIB-WRITER n=$(((n / 25 + 3) * 25))([^0-9]|\$)" "$blog" 60 ||
				die "boot VM writer after load $((it - 1))"
		fi
		echo "echo 3 >/proc/sys/vm/drop_caches; echo DROP-$it" >&4
		wait_for "^DROP-$it" "$blog" 30 || die "drop_caches $it"
		c=$(api PATCH /vm '{"state": "Paused"}')
		c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/f.state\",
			\"mem_file_path\": \"$T/f.mem\", \"snapshot_type\": \"Full\"}")
		[ "$c" = 204204 ] || die "Full $it: $c $(cat "$T/api.out")"
		n_full=$(writer_n "$blog")
		grep 'self-check' "$blog" | tail -n 3 | sed "s/^/LOOP-SELFCHECK full=$it: /"
		cp "$T/root.ext4" "$T/root.load.ext4"
		sum0=$(md5sum <"$T/f.mem")
		pid=""
		start_squib "load$it"
		c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/f.state\",
			\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/f.mem\"},
			\"track_dirty_pages\": true, \"resume_vm\": true, \"squib\": {\"restore\": \"$mode\",
			\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.load.ext4\"}]}}")
		[ "$c" = 204 ] || die "load $it ($mode): $c $(cat "$T/api.out")"
		t0=$(now)
		check_load "$n_full" "$wpid" "$hpid"
		echo "LOOP-RESULT fresh load=$it mode=$mode n_full=$n_full $res $why t=$(($(now) - t0))s"
		summary="$summary $mode:$res"
		[ $res = ok ] || fails="$fails $it/$mode"
		stop_squib
		sum1=$(md5sum <"$T/f.mem")
		[ "$sum0" = "$sum1" ] && echo "LOOP-MEMFILE load=$it unchanged" ||
			echo "LOOP-MEMFILE load=$it CHANGED under the mapping: $sum0 -> $sum1"
		rm -f "$T/root.load.ext4" "$T/f.mem" "$T/f.state"
	done
	echo "LOOP-SUMMARY fresh loads=$it fails=[${fails# }] :$summary"
	cleanup
	[ -z "$fails" ]
}

cp "$G/rootfs.ext4" "$T/root.ext4"
start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
dd if=/dev/urandom of="$T/ro.img" bs=1M count=8 2>/dev/null
c=$c$(api PUT /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$T/ro.img\",
	\"is_root_device\": false, \"is_read_only\": true}")
c=$c$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256, "track_dirty_pages": true}')
c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c" = 204204204204204 ] || die "boot: $c $(cat "$T/api.out")"
wait_for 'SQUIB-READY' "$log" 180 || die "no SQUIB-READY"
t_begin=$(now)
# what testhost_blk.sh does before its workloads: the read-only drive
send 'sqb-check drives; echo DRV-DONE'
wait_for '^DRV-DONE' "$log" 30 || die "sqb-check drives"
ro_dev=$(sed -n 's/^DRIVE \(vd[a-z]*\) 16384 ro=.*/\1/p' "$log" | awk 'NR == 1')
[ -n "$ro_dev" ] || die "no read-only drive"
send "sqb-check rowrite $ro_dev; echo ROW-DONE"
wait_for '^ROW-DONE' "$log" 30 || die "rowrite"
send "sqb-check rosum $ro_dev 8; echo ROS-DONE"
wait_for '^ROS-DONE' "$log" 30 || die "rosum"

# ---- A: the holder's read without any snapshot ----
ok=0
for r in $(seq 1 "$nosnap"); do
	nr=$(grep -c 'SQUIB-HOLD ready' "$log")
	send "sqbtool holdread /data/big.pat 32 5 &"
	i=0
	while [ "$(grep -c 'SQUIB-HOLD ready' "$log")" = "$nr" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	h=$(sed -n 's/.*SQUIB-HOLD ready pid=\([0-9]*\).*/\1/p' "$log" | tail -n1)
	[ $i -lt 300 ] && [ -n "$h" ] || die "nosnap holder $r did not start"
	n0=$(grep -c 'SQUIB-HOLD ok gen=1' "$log")
	send "kill -USR1 $h"
	i=0
	while [ "$(grep -c 'SQUIB-HOLD ok gen=1' "$log")" = "$n0" ] && [ $i -lt 600 ]; do
		kill -0 "$pid" 2>/dev/null || break
		grep -q 'SQUIB-HOLD bad' "$log" && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ "$(grep -c 'SQUIB-HOLD ok gen=1' "$log")" != "$n0" ]; then
		ok=$((ok + 1))
		echo "LOOP-RESULT nosnap round=$r ok"
	else
		echo "LOOP-RESULT nosnap round=$r FAIL"
		grep -E 'triple|shutdown|HOLD bad' "$log" | tail -n 5
		kill -0 "$pid" 2>/dev/null || die "the VM stopped without a snapshot: $(tail -n 5 "$log")"
	fi
	send "kill $h"
done
echo "LOOP-NOSNAP ok=$ok of $nosnap"

# ---- the test's workloads and the Full ----
nr=$(grep -c 'SQUIB-HOLD ready' "$log")
send 'sqbtool writer /data/w 64 11 &'
send 'sqbtool holdread /data/big.pat 32 5 &'
wait_for 'SQUIB-WRITER ready' "$log" 30 || die "writer did not start"
i=0
while [ "$(grep -c 'SQUIB-HOLD ready' "$log")" = "$nr" ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ $i -lt 300 ] || die "holder did not start"
wpid=$(sed -n 's/.*SQUIB-WRITER ready pid=\([0-9]*\).*/\1/p' "$log" | tail -n1)
hpid=$(sed -n 's/.*SQUIB-HOLD ready pid=\([0-9]*\).*/\1/p' "$log" | tail -n1)
wait_for 'SQUIB-WRITER n=50([^0-9]|$)' "$log" 60 || die "writer does not progress"
send 'echo 3 >/proc/sys/vm/drop_caches; echo DROP-DONE'
wait_for '^DROP-DONE' "$log" 30 || die "drop_caches"
if [ "$fresh" = 1 ]; then
	fresh_loop
	exit $?
fi
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/f.state\", \"mem_file_path\": \"$T/f.mem\",
	\"snapshot_type\": \"Full\"}")
[ "$c" = 204204 ] || die "Full: $c $(cat "$T/api.out")"
n_full=$(writer_n "$log")
stop_squib
cp "$T/root.ext4" "$T/root.snap"
echo "LOOP-FULL taken n_full=$n_full writer=$wpid holder=$hpid t=$(($(now) - t_begin))s"

# ---- B: load the same Full again and again ----
it=0
set -- $modes
nm=$#
fails=""
summary=""
while [ $(($(now) - t_begin)) -lt "$budget" ]; do
	it=$((it + 1))
	k=$(((it - 1) % nm + 1))
	eval "mode=\${$k}"
	cp "$T/root.snap" "$T/root.ext4"
	start_squib "load$it"
	t0=$(now)
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/f.state\",
		\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/f.mem\"},
		\"track_dirty_pages\": true, \"resume_vm\": true, \"squib\": {\"restore\": \"$mode\"}}")
	[ "$c" = 204 ] || die "load $it ($mode): $c $(cat "$T/api.out")"
	res=ok why=""
	wait_for "SQUIB-WRITER n=$(((n_full / 25 + 2) * 25))([^0-9]|\$)" "$log" 60
	case $? in 0) ;; 2) res=FAIL why="squib ended before the writer went on" ;; *) res=FAIL why="writer" ;; esac
	if [ $res = ok ]; then
		send "kill -USR1 $wpid"
		wait_for 'SQUIB-WRITER (verify ok|bad)' "$log" 60
		case $? in 0) ;; 2) res=FAIL why="squib ended in the writer's verify" ;; *) res=FAIL why="verify" ;; esac
	fi
	if [ $res = ok ]; then
		send "kill -USR1 $hpid"
		wait_for 'SQUIB-HOLD (ok gen=1|bad)' "$log" 60
		case $? in 0) ;; 2) res=FAIL why="squib ended in the holder's read" ;; *) res=FAIL why="holder" ;; esac
		grep -q 'SQUIB-HOLD bad' "$log" && res=FAIL why="holder: $(grep 'SQUIB-HOLD bad' "$log")"
	fi
	echo "LOOP-RESULT load=$it mode=$mode $res $why t=$(($(now) - t0))s"
	summary="$summary $mode:$res"
	if [ $res != ok ]; then
		fails="$fails $it/$mode"
		grep -nE 'triple|shutdown|crash|Oops|BUG|panic|error|HOLD|squib' "$log" | tail -n 150 | sed 's/^/LOG: /'
		tail -n 15 "$log" | sed 's/^/TAIL: /'
	fi
	stop_squib
done
echo "LOOP-SUMMARY loads=$it fails=[${fails# }] :$summary"
cleanup
[ -z "$fails" ]
