#!/bin/sh
# Inside the test host (bench/blk_vs_qemu.sh): the guest kit's Linux with its
# root on virtio-blk plus a second, MIB MiB raw disk, booted RUNS times in
# squib (API: PUT /drives) and in QEMU (-M microvm, KVM, virtio-blk-device
# with cache=writeback, aio=threads: the host page cache as squib's pread/pwrite
# use it), same kernel, initramfs, root image, memory and vCPU; in each boot
# the guest runs sqb-blkbench (guest/blkbench.sh).  Prints every run, the
# medians side by side and squib/QEMU ratios (higher is better; target >= 1.0).
# Then, in the same boot, the snapshot pause window while the disk is busy:
# the guest reads the bench disk in a loop (O_DIRECT, 1 MiB), and the host
# times pause -> complete snapshot on disk -> running again: squib PATCH
# /vm Paused, PUT /snapshot/create Full, PATCH /vm Resumed; QEMU (HMP on a
# pipe) stop, migrate "exec:cat>FILE" (returns when all state is written),
# cont.  squib fsyncs its files ([F-70]), QEMU's cat does not.  Lower is
# better; its ratio is QEMU/squib, so above 1.0 favours squib as well.
#   blk_vs_qemu_inner.sh [RUNS] [MIB] [COUNT] [ENGINE]
# ENGINE: squib's io_engine for both disks, Sync (default) or Async (io_uring).
runs=${1:-3} mib=${2:-192} count=${3:-4000} engine=${4:-Sync}
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wait_for() { # REGEX FILE SECONDS
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		grep -qE "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
api() { # api PATH JSON, or api METHOD PATH JSON
	m=PUT
	[ $# = 3 ] && { m=$1; shift; }
	curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$T/api.sock" -X "$m" \
		-H 'Content-Type: application/json' -d "$2" "http://localhost$1"
}
now_ms() { awk '{ printf "%.0f", $1 * 1000 }' /proc/uptime; } # 10 ms steps

# The pause window while the guest reads dev (vdX) in a loop; appends
# pause_ms=N to the result line of this boot.
pause_window() {
	vmm=$1 dev=$2
	echo "b(){ dd if=/dev/$dev of=/dev/null bs=1M iflag=direct; }" >&3
	sleep 0.5
	echo 'while :;do b;done 2>/dev/null &' >&3
	sleep 3
	rm -f "$T/snap.state" "$T/snap.mem" "$T/q.snap"
	if [ "$vmm" = squib ]; then
		t0=$(now_ms)
		c=$(api PATCH /vm '{"state": "Paused"}')
		c=$c$(api /snapshot/create "{\"snapshot_type\": \"Full\",
			\"snapshot_path\": \"$T/snap.state\", \"mem_file_path\": \"$T/snap.mem\"}")
		c=$c$(api PATCH /vm '{"state": "Resumed"}')
		t1=$(now_ms)
		[ "$c" = 204204204 ] || { echo "squib snapshot: $c $(cat "$T/api.out")"; return 1; }
	else
		t0=$(now_ms)
		echo stop >&4
		echo "migrate \"exec:cat>$T/q.snap\"" >&4
		echo cont >&4
		echo 'info status' >&4
		wait_for 'VM status: running' "$T/mon.log" 120 || { echo "qemu: no cont"; return 1; }
		t1=$(now_ms)
		grep -qi 'error' "$T/mon.log" && { echo "qemu monitor: $(tr -d '\r' <"$T/mon.log" | tail -n 5)"; return 1; }
	fi
	echo " pause_ms=$((t1 - t0))"
}

# One boot: start the VMM (squib|qemu) with its console on $T/con, fd 3 its input,
# run the benchmark, append the result line to $T/<vmm>.res, shut down.
run_one() {
	vmm=$1 n=$2
	cp "$G/rootfs.ext4" "$T/root.ext4"
	rm -f "$T/bench.img" "$T/in" "$T/api.sock" "$T/mon.in" "$T/mon.out" "$T/mon.log"
	dd if=/dev/zero of="$T/bench.img" bs=1M count=0 seek="$mib" 2>/dev/null
	mkfifo "$T/in"
	: >"$T/con"
	if [ "$vmm" = squib ]; then
		squib --api-sock "$T/api.sock" <"$T/in" >"$T/con" 2>&1 &
		vpid=$!
		exec 3>"$T/in"
		i=0
		while [ ! -S "$T/api.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		c=$(api /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
			\"is_root_device\": true, \"is_read_only\": false, \"io_engine\": \"$engine\"}")
		c=$c$(api /drives/bench "{\"drive_id\": \"bench\", \"path_on_host\": \"$T/bench.img\",
			\"is_root_device\": false, \"is_read_only\": false, \"io_engine\": \"$engine\"}")
		c=$c$(api /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
		c=$c$(api /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
			\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
		c=$c$(api /actions '{"action_type": "InstanceStart"}')
		[ "$c" = 204204204204204 ] || echo "run $n squib: API answered $c: $(cat "$T/api.out")"
	else
		mkfifo "$T/mon.in" "$T/mon.out"
		cat "$T/mon.out" >"$T/mon.log" &
		mpid=$!
		qemu-system-x86_64 -M microvm -enable-kvm -cpu host -m 256 -smp 1 \
			-nodefaults -no-user-config -display none -serial stdio \
			-monitor pipe:"$T/mon" \
			-kernel "$G/vmlinuz" -initrd "$G/initramfs.cpio.gz" \
			-append "$args root=LABEL=sqbroot rw" \
			-drive id=root,file="$T/root.ext4",format=raw,if=none,cache=writeback,aio=threads \
			-device virtio-blk-device,drive=root \
			-drive id=bench,file="$T/bench.img",format=raw,if=none,cache=writeback,aio=threads \
			-device virtio-blk-device,drive=bench <"$T/in" >"$T/con" 2>&1 &
		vpid=$!
		exec 3>"$T/in" 4>"$T/mon.in"
	fi
	if wait_for 'SQUIB-READY' "$T/con" 180; then
		grep -q 'SQUIB-READY.* root=/dev/vd' "$T/con" || echo "run $n $vmm: root not on virtio-blk"
		echo "sqb-blkbench $mib $count" >&3
		if wait_for 'SQUIB-BLKBENCH' "$T/con" 600; then
			line=$(grep -m1 'SQUIB-BLKBENCH' "$T/con" | tr -d '\r')
			dev=$(echo "$line" | sed -n 's/.* dev=\(vd[a-z]*\).*/\1/p')
			[ -n "$dev" ] && line="$line$(pause_window "$vmm" "$dev")"
			echo "run $n $vmm $line"
			echo "$line" >>"$T/$vmm.res"
		else
			echo "run $n $vmm: no result"; tail -n 10 "$T/con"
		fi
		echo 'reboot -f' >&3
	else
		echo "run $n $vmm: no SQUIB-READY"; tail -n 15 "$T/con"
	fi
	i=0
	while kill -0 "$vpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$vpid" 2>/dev/null
	wait "$vpid" 2>/dev/null
	exec 3>&- 4>&-
	[ -n "${mpid:-}" ] && { kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null; mpid=""; }
}

vmms=""
if command -v squib >/dev/null; then
	vmms="squib"
else
	echo "bench: no squib in the test host: QEMU only"
fi
command -v qemu-system-x86_64 >/dev/null && vmms="$vmms qemu" || echo "bench: no QEMU: squib only"
echo "bench: $runs runs, ${mib} MiB disk, $count random reads, 1 vCPU, 256 MiB; VMMs:$vmms"
for n in $(seq 1 "$runs"); do
	for v in $vmms; do
		run_one "$v" "$n"
	done
done

field() { sed -n "s/.* $1=\([0-9.a-z]*\).*/\1/p" "$T/$2.res" 2>/dev/null | grep -v nan | median; }
echo "squib io_engine: $engine"
printf '%-22s %12s %12s %8s\n' measure squib qemu-microvm ratio
for f in seqw_mbs seqr_mbs rand_iops rand_dd_iops pause_ms; do
	s=$(field $f squib) q=$(field $f qemu)
	# higher is better, except for the pause window (ratio QEMU/squib)
	r=$(awk -v s="$s" -v q="$q" -v f="$f" 'BEGIN { if (s + 0 > 0 && q + 0 > 0) printf "%.2f", f == "pause_ms" ? q / s : s / q; else print "n/a" }')
	printf '%-22s %12s %12s %8s\n' "$f" "${s:-n/a}" "${q:-n/a}" "$r"
	echo "BENCH $f squib=${s:-nan} qemu=${q:-nan} ratio=$r"
done
rm -rf "$T"
