#!/bin/sh
# Runs INSIDE the arm64 test host (driver: bench/arm64_vs_qemu.sh): the same
# Debian arm64 kernel, initramfs and ext4 root (virtio-blk) under squib and
# under qemu-system-aarch64 -M virt with KVM, 2 vCPUs, 256 MiB, timed:
#   boot  process start -> the guest's SQUIB-READY line
#   load  a snapshot of the running workload (squib: Full, File backend,
#         mmap; QEMU: migration stream to a file, `-incoming exec:cat FILE`):
#         process start -> running (squib: PUT /snapshot/load with resume_vm
#         answered; QEMU: `info status` says running) and -> the first new
#         SQUIB-COUNTER line on the console
# Prints "BENCH vmm=squib|qemu what=boot|load ..." lines; ROUNDS (arg 1, default 1).
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
rounds=${1:-1}
now() { read -r t _ </proc/uptime; echo "$t"; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
lines() { head -n "$( (wc -l <"$1") 2>/dev/null || echo 0)" "$1" 2>/dev/null | tr -d '\r'; }
wait_for() { # REGEX FILE SECONDS
	i=0
	while [ $i -lt $(($3 * 20)) ]; do
		lines "$2" | grep -qE "$1" && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
kill9() { [ "${1:-0}" -gt 1 ] && kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
args="console=ttyAMA0 panic=-1 quiet"
D=${SQB_BENCH_DIR:-/test}
K=$G/Image I=$D/initramfs.cpio.gz
# SQB_BENCH_ONLY=qemu|squib runs one side; SQB_BENCH_QEMU_ACCEL="tcg -cpu max"
# tries the QEMU side without KVM (the script's own check, on any host)
only=${SQB_BENCH_ONLY:-}
qaccel=${SQB_BENCH_QEMU_ACCEL:-kvm -cpu host}

squib_boot() { # LOG DISK EXTRA_ARGS -> pid sock; t0 at process start
	sock=$T/s.sock
	rm -f "$sock"
	t0=$(now)
	squib --api-sock "$sock" --no-serial-input </dev/null >"$1" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
	sqb-api "$sock" PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}' >/dev/null
	sqb-api "$sock" PUT /boot-source "{\"kernel_image_path\": \"$K\", \"initrd_path\": \"$I\", \"boot_args\": \"$args$3\"}" >/dev/null
	sqb-api "$sock" PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$2\", \"is_root_device\": true, \"is_read_only\": false}" >/dev/null
	sqb-api "$sock" PUT /actions '{"action_type": "InstanceStart"}' >/dev/null
}
qemu_run() { # LOG DISK EXTRA_ARGS [QEMU ARGS...] -> qpid; monitor on fd 3
	log=$1 disk=$2 extra=$3
	shift 3
	rm -f "$T/mon.in"
	mkfifo "$T/mon.in"
	t0=$(now)
	qemu-system-aarch64 -M virt,gic-version=3,its=off -accel $qaccel -smp 2 -m 256 \
		-nodefaults -no-user-config -display none -serial "file:$log" \
		-kernel "$K" -initrd "$I" -append "$args root=/dev/vda rw$extra" \
		-drive "if=none,id=rd,file=$disk,format=raw" -device virtio-blk-device,drive=rd \
		-monitor stdio "$@" <"$T/mon.in" >>"$T/mon.out" 2>&1 &
	qpid=$!
	exec 3<>"$T/mon.in" # O_RDWR: never blocks, even if QEMU died
}
mon() { # COMMAND [SECONDS (10)]: run it, wait for the next prompt; 1 if none
	: >"$T/mon.out"
	echo "$1" >&3
	i=0
	while [ $i -lt $((${2:-10} * 20)) ]; do
		[ "$(tail -c 7 "$T/mon.out" 2>/dev/null)" = "(qemu) " ] && { tr -d '\033' <"$T/mon.out"; return 0; }
		kill -0 "$qpid" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	tr -d '\033' <"$T/mon.out"
	return 1
}
before() { awk -v d="$1" -v n="$(now)" 'BEGIN { exit !(n < d) }'; }
ready() { lines "$1" | sed -n 's/^SQUIB-READY uptime=\([0-9.]*\).*/\1/p' | head -n1; }

[ -c /dev/kvm ] || [ "$only" = qemu ] || { echo "FAIL: no /dev/kvm"; exit 1; }
command -v qemu-system-aarch64 >/dev/null || { echo "FAIL: no qemu-system-aarch64 in the test host"; exit 1; }
qemu-system-aarch64 --version | head -n1 | sed 's/^/INFO: /'
r=1
while [ $r -le "$rounds" ]; do
	# boot
	cp $D/rootfs.ext4 "$T/d.ext4"
	[ "$only" = qemu ] || squib_boot "$T/s.log" "$T/d.ext4" ""
	[ "$only" = qemu ] || { wait_for '^SQUIB-READY' "$T/s.log" 300 && t1=$(now) &&
		echo "BENCH vmm=squib what=boot round=$r s=$(dt "$t0" "$t1") guest_uptime=$(ready "$T/s.log")" ||
		{ echo "FAIL: squib boot"; tail -n 20 "$T/s.log"; }; }
	kill9 "${pid:-0}"
	cp $D/rootfs.ext4 "$T/d.ext4"
	[ "$only" = squib ] || qemu_run "$T/q.log" "$T/d.ext4" ""
	[ "$only" = squib ] || { wait_for '^SQUIB-READY' "$T/q.log" 300 && t1=$(now) &&
		echo "BENCH vmm=qemu what=boot round=$r s=$(dt "$t0" "$t1") guest_uptime=$(ready "$T/q.log")" ||
		{ echo "FAIL: qemu boot"; tail -n 20 "$T/q.log"; cat "$T/mon.out"; }; }
	exec 3>&-
	kill9 "${qpid:-0}"

	# load: squib, Full snapshot of the workload, File + mmap
	cp $D/rootfs.ext4 "$T/d.ext4"
	[ "$only" = qemu ] || squib_boot "$T/s.log" "$T/d.ext4" " sqb.arm64work"
	if [ "$only" = qemu ]; then
		:
	elif wait_for '^SQUIB-COUNTER 6$' "$T/s.log" 300; then
		sqb-api "$sock" PATCH /vm '{"state": "Paused"}' >/dev/null
		sqb-api "$sock" PUT /snapshot/create "{\"snapshot_path\": \"$T/f.state\", \"mem_file_path\": \"$T/f.mem\"}" >/dev/null
		kill9 "$pid"
		cnt=$(lines "$T/s.log" | sed -n 's/^SQUIB-COUNTER \([0-9]*\)$/\1/p' | tail -n1)
		rm -f "$sock"
		t0=$(now)
		squib --api-sock "$sock" --no-serial-input </dev/null >"$T/s2.log" 2>&1 &
		pid=$!
		i=0
		while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
		c=$(sqb-api "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$T/f.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/f.mem\"}, \"resume_vm\": true}")
		t1=$(now)
		wait_for '^SQUIB-COUNTER [0-9]+$' "$T/s2.log" 60
		t2=$(now)
		[ "$c" = 204 ] && echo "BENCH vmm=squib what=load round=$r s=$(dt "$t0" "$t1") to_counter=$(dt "$t0" "$t2") mem_file=$(du -k "$T/f.mem" | cut -f1)KiB" ||
			{ echo "FAIL: squib load $c"; tail -n 20 "$T/s2.log"; }
	else
		echo "FAIL: squib workload"
		tail -n 20 "$T/s.log"
	fi
	kill9 "${pid:-0}"
	rm -f "$T/f.state" "$T/f.mem"

	# load: QEMU, migration to a file, -incoming exec:cat FILE
	cp $D/rootfs.ext4 "$T/d.ext4"
	[ "$only" = squib ] || qemu_run "$T/q.log" "$T/d.ext4" " sqb.arm64work"
	if [ "$only" = squib ]; then
		:
	elif wait_for '^SQUIB-COUNTER 6$' "$T/q.log" 300; then
		mon stop >/dev/null || echo "INFO: qemu: no prompt after stop"
		echo "INFO: qemu: migrating to a file"
		mon "migrate \"exec:cat > $T/q.mig\"" 300 >/dev/null || echo "INFO: qemu: no prompt after migrate"
		dl=$(awk -v n="$(now)" 'BEGIN { print n + 300 }')
		while before "$dl" && ! mon "info migrate" | grep -q 'Migration status: completed'; do
			sleep 0.2
		done
		mon "info migrate" | grep -q 'Migration status: completed' ||
			{ echo "FAIL: qemu migration did not complete"; mon "info migrate"; }
		exec 3>&-
		kill9 "$qpid"
		cnt=$(lines "$T/q.log" | sed -n 's/^SQUIB-COUNTER \([0-9]*\)$/\1/p' | tail -n1)
		qemu_run "$T/q2.log" "$T/d.ext4" " sqb.arm64work" -incoming "exec:cat $T/q.mig"
		dl=$(awk -v n="$(now)" 'BEGIN { print n + 120 }')
		# the stream says the source was stopped: the destination stays
		# paused once it is in (as after libvirt's save), then `cont`
		while before "$dl" && kill -0 "$qpid" 2>/dev/null &&
			! mon "info status" | grep -qE 'VM status: (paused$|paused[^ ]|running)'; do
			sleep 0.05
		done
		mon cont >/dev/null
		t1=$(now)
		wait_for '^SQUIB-COUNTER [0-9]+$' "$T/q2.log" 60
		t2=$(now)
		kill -0 "$qpid" 2>/dev/null && mon "info status" | grep -q 'VM status: running' &&
			echo "BENCH vmm=qemu what=load round=$r s=$(dt "$t0" "$t1") to_counter=$(dt "$t0" "$t2") mem_file=$(du -k "$T/q.mig" | cut -f1)KiB" ||
			{ echo "FAIL: qemu incoming"; cat "$T/mon.out"; tail -n 10 "$T/q2.log"; }
		exec 3>&-
	else
		echo "FAIL: qemu workload"
		tail -n 20 "$T/q.log"
		exec 3>&-
	fi
	kill9 "$qpid"
	rm -f "$T/q.mig"
	r=$((r + 1))
done
rm -rf "$T"
