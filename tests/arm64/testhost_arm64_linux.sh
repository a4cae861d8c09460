#!/bin/sh
# Runs INSIDE the arm64 test host (testhost/run-arm64.sh; driver:
# testhost_arm64_linux_run.sh).  Debian's arm64 cloud kernel under the arm64
# squib with its root on virtio-blk (testhost/arm64-guest.sh's initramfs and
# ext4 image; virtio-mmio slots in the device tree), through the API:
#   1. 1 and 2 vCPUs boot to the readiness marker with root=/dev/vda;
#   2. the 2-vCPU guest runs its workload (counter on vCPU 0, 16 MiB RAM
#      pattern on vCPU 1, fsynced checksummed files on the root disk, uptime):
#      Full snapshot, resumed, more work, Diff snapshot (KVM dirty log), squib
#      killed; the Diff loaded by File with squib's default (a first load:
#      lazy, each chunk verified as installed), with squib.restore mmap and
#      with eager, and (b) lazily through squib-pager (Uffd), each in a new
#      squib on its own copy
#      of the disk as it was at the Diff: counter, RAM pattern, uptime and the
#      files on disk must go on;
#   3. both state files go out base64 on the console (x86 squib-snap checks);
#      with an out disk, the memory files too (as a tar, with this side's md5
#      of the dense memory of the Full and of the Diff over it).
# Prints PASS:/FAIL:/INFO:/TIME: lines; exit 1 on any FAIL.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
now() { read -r t _ </proc/uptime; echo "$t"; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
api() { sqb-api "$sock" "$@" 2>"$T/api.out"; }
lines() { # FILE: complete console lines, CR removed (the guest's tty writes CRLF)
	head -n "$( (wc -l <"$1") 2>/dev/null || echo 0)" "$1" 2>/dev/null | tr -d '\r'
}
wait_for() { # REGEX FILE SECONDS
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		lines "$2" | grep -qE "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
lastnum() { # PREFIX FILE: the number after PREFIX on its last complete line
	lines "$2" | sed -n "s/^$1\([0-9][0-9.]*\).*/\1/p" | tail -n1
}
start_squib() { # NAME -> pid sock log
	sock=$T/$1.sock log=$T/$1.log
	rm -f "$sock"
	squib --api-sock "$sock" --no-serial-input </dev/null >"$log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$sock" ] || { bad "$1: no API socket"; cat "$log"; exit 1; }
}
stop_squib() {
	[ "${pid:-0}" -gt 1 ] && kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=0
}
args="console=ttyAMA0 panic=-1 quiet"

[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the arm64 test host"; exit 1; }
[ -f "$G/Image" ] && [ -f /test/initramfs.cpio.gz ] && [ -f /test/rootfs.ext4 ] ||
	{ echo "FAIL: kernel, initramfs or rootfs.ext4 missing"; exit 1; }

# 1: boot to the readiness marker, root on virtio-blk; 2 vCPUs: the workload
for n in 1 2; do
	cp /test/rootfs.ext4 "$T/disk$n.ext4"
	start_squib linux$n
	t0=$(now)
	w=""
	[ $n = 2 ] && w=" sqb.arm64work"
	c=$(api PUT /machine-config "{\"vcpu_count\": $n, \"mem_size_mib\": 256, \"track_dirty_pages\": true}")
	c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/Image\", \"initrd_path\": \"/test/initramfs.cpio.gz\", \"boot_args\": \"$args$w\"}")
	c=$c$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/disk$n.ext4\", \"is_root_device\": true, \"is_read_only\": false}")
	c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
	[ "$c" = 204204204204 ] || { bad "linux$n: API answered $c: $(cat "$T/api.out")"; stop_squib; continue; }
	if wait_for "^SQUIB-READY .*root=/dev/vda" "$log" "${SQB_ARM64_LINUX_S:-240}"; then
		t1=$(now)
		pass "Debian arm64 kernel, $n vCPU, root on virtio-blk: $(lines "$log" | grep -m1 '^SQUIB-READY')"
		echo "TIME: squib boot vcpus=$n api_to_ready_s=$(dt "$t0" "$t1") guest_uptime_s=$(lines "$log" | sed -n 's/^SQUIB-READY uptime=\([0-9.]*\).*/\1/p')"
	else
		bad "linux$n: no SQUIB-READY with root=/dev/vda"
		tail -n 30 "$log"
		stop_squib
		continue
	fi
	[ $n = 1 ] && stop_squib
done

# 2: Full, more work, Diff, kill; load by mmap and through the pager
snap_ok=0
if [ "${pid:-0}" -gt 1 ]; then
	if wait_for '^SQUIB-WRITER verify ok' "$log" 120 && wait_for '^SQUIB-KEEPER ok gen=1' "$log" 60 &&
		wait_for '^SQUIB-COUNTER 6$' "$log" 60; then
		pass "workload running: counter, RAM pattern verified, files verified on disk"
	else
		bad "workload did not start"
		lines "$log" | tail -n 20
	fi
	c=$(api PATCH /vm '{"state": "Paused"}')
	c=$c$(api PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$T/f.state\", \"mem_file_path\": \"$T/f.mem\"}")
	c=$c$(api PATCH /vm '{"state": "Resumed"}')
	full_at=$(lastnum 'SQUIB-COUNTER ' "$log")
	wait_for "^SQUIB-COUNTER $((full_at + 8))\$" "$log" 60 || bad "no work after the Full snapshot"
	c=$c$(api PATCH /vm '{"state": "Paused"}')
	c=$c$(api PUT /snapshot/create "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"$T/d.state\", \"mem_file_path\": \"$T/d.mem\"}")
	stop_squib
	if [ "$c" = 204204204204204 ]; then
		pass "Full at counter $full_at, resumed, Diff (dirty log) at counter $(lastnum 'SQUIB-COUNTER ' "$log"), squib killed"
		snap_ok=1
	else
		bad "Full/Diff create: $c $(cat "$T/api.out")"
	fi
	cp "$log" "$T/before.log"
	cnt=$(lastnum 'SQUIB-COUNTER ' "$log")
	gen=$(lastnum 'SQUIB-KEEPER ok gen=' "$log")
	wn=$(lastnum 'SQUIB-WRITER verify ok n=' "$log")
	up=$(lastnum 'SQUIB-UPTIME ' "$log")
	echo "INFO: at the Diff: counter $cnt, keeper gen $gen, writer verified n=$wn, uptime $up"
	for d in A B C D; do cp "$T/disk2.ext4" "$T/disk$d.ext4"; done
	ls -l "$T"/f.mem "$T"/d.mem | awk '{ print "INFO: " $5 " bytes " $9 }'
	du -k "$T/d.mem" | awk '{ print "INFO: d.mem allocated " $1 " KiB" }'
	for f in f.state d.state d.mem; do
		squib-snap verify --decode "$T/$f" >"$T/verify.out" 2>&1 && pass "squib-snap (arm64) verifies $f" ||
			bad "squib-snap verify $f: $(cat "$T/verify.out")"
	done
	squib-snap inspect "$T/d.mem" 2>&1 | grep -E "^(kind|parent|role)"
	for f in f d; do
		echo "SQUIB-ARM64-STATE-BEGIN $f"
		base64 "$T/$f.state"
		echo "SQUIB-ARM64-STATE-END $f"
	done
	# The memory files are too big for the console: with an out disk
	# (run-arm64.sh --out-disk) all four files go out as a tar on it, with
	# the md5 of the dense memory this arm64 squib-snap extracts from each
	# layer, for the x86 squib-snap to match.  The test host's own kernel
	# has virtio as modules: the guest's initramfs carries them (same kit).
	if [ -f /test/out-disk ]; then
		mkdir -p "$T/mods"
		(cd "$T/mods" && zcat /test/initramfs.cpio.gz | cpio -i -d 'lib/modules/*' 2>/dev/null)
		while read -r m; do
			insmod "$T/mods/lib/modules/$m.ko" 2>/dev/null
		done <"$T/mods/lib/modules/load.order"
		i=0
		while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		if [ -b /dev/vda ]; then
			squib-snap extract "$T/f.mem" --memory "$T/x.raw" >/dev/null 2>&1 &&
				echo "SQUIB-ARM64-MD5 f $(md5sum <"$T/x.raw" | cut -d' ' -f1) $(wc -c <"$T/x.raw")"
			rm -f "$T/x.raw"
			squib-snap extract "$T/d.mem" --parent "$T/f.mem" --memory "$T/x.raw" >/dev/null 2>&1 &&
				echo "SQUIB-ARM64-MD5 d $(md5sum <"$T/x.raw" | cut -d' ' -f1) $(wc -c <"$T/x.raw")"
			rm -f "$T/x.raw"
			if tar -cf /dev/vda -C "$T" f.state f.mem d.state d.mem && sync; then
				echo "SQUIB-ARM64-OUT tar"
			else
				bad "tar of the snapshot files onto the out disk failed"
			fi
		else
			bad "the out disk (/dev/vda) did not appear: $(lsmod 2>/dev/null | grep -c virtio) virtio modules"
		fi
	fi
fi

check_restored() { # WHAT: the workload in $log went on from the Diff's values
	ok=1
	wait_for "^SQUIB-COUNTER $((cnt + 8))\$" "$log" 90 || { ok=0; echo "INFO: counter did not reach $((cnt + 8))"; }
	wait_for "^SQUIB-KEEPER ok gen=$((gen + 1))\$" "$log" 60 || { ok=0; echo "INFO: no keeper gen $((gen + 1))"; }
	wait_for '^SQUIB-WRITER verify ok' "$log" 60 || { ok=0; echo "INFO: no writer verify"; }
	first=$(lines "$log" | sed -n 's/^SQUIB-COUNTER \([0-9]*\)$/\1/p' | head -n1)
	[ -n "$first" ] && [ "$first" -ge "$cnt" ] && [ "$first" -le $((cnt + 2)) ] ||
		{ ok=0; echo "INFO: first counter after the load: $first (at the Diff: $cnt)"; }
	nwn=$(lastnum 'SQUIB-WRITER verify ok n=' "$log")
	[ -n "$nwn" ] && [ "$nwn" -ge "${wn:-0}" ] || { ok=0; echo "INFO: writer verified n=$nwn < $wn"; }
	nup=$(lines "$log" | sed -n 's/^SQUIB-UPTIME \([0-9.]*\)$/\1/p' | head -n1)
	awk -v a="$up" -v b="$nup" 'BEGIN { exit !(b != "" && b + 0 > a + 0) }' ||
		{ ok=0; echo "INFO: uptime after the load $nup, before $up"; }
	lines "$log" | grep -E '^SQUIB-(KEEPER|WRITER|MEMCHECK) bad|^SQUIB-READY|Kernel panic|EXT4-fs error' &&
		ok=0
	if [ $ok = 1 ]; then
		pass "$1: counter $first..$(lastnum 'SQUIB-COUNTER ' "$log"), keeper gen $((gen + 1)) (16 MiB pattern intact), writer verified n=$nwn from disk, uptime $up -> $nup"
	else
		bad "$1: the workload did not go on"
		lines "$log" | tail -n 25
	fi
}

if [ $snap_ok = 1 ]; then
	# File backend, the Diff over its parent, each load with the disk as it
	# was at the Diff: (a) squib's default, a first load of these files, so
	# lazy with each chunk verified as installed (docs/snapshots.md "First
	# loads"); (c) mmap; (d) eager
	for m in default:A mmap:C eager:D; do
		mode=${m%:*} disk=${m#*:}
		ext=""
		[ "$mode" = default ] || ext="\"restore\": \"$mode\", "
		start_squib "load$disk"
		t0=$(now)
		c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/d.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/d.mem\"}, \"resume_vm\": true, \"squib\": {$ext\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/disk$disk.ext4\"}]}}")
		t1=$(now)
		if [ "$c" = 204 ]; then
			wait_for '^SQUIB-COUNTER' "$log" 60
			t2=$(now)
			echo "TIME: squib load backend=File-$mode api_s=$(dt "$t0" "$t1") to_first_counter_s=$(dt "$t0" "$t2")"
			check_restored "Diff loaded by File ($mode)"
		else
			bad "File ($mode) load: $c $(cat "$T/api.out")"
			tail -n 20 "$log"
		fi
		stop_squib
	done
	# (b) lazily through squib-pager (Uffd)
	squib-pager "$T/pager.sock" "$T/d.mem" >"$T/pager.log" 2>&1 &
	ppid=$!
	i=0
	while [ ! -S "$T/pager.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	start_squib loadB
	t0=$(now)
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/d.state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"$T/pager.sock\"}, \"resume_vm\": true, \"squib\": {\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/diskB.ext4\"}]}}")
	t1=$(now)
	if [ "$c" = 204 ]; then
		wait_for '^SQUIB-COUNTER' "$log" 60
		t2=$(now)
		echo "TIME: squib load backend=Uffd api_s=$(dt "$t0" "$t1") to_first_counter_s=$(dt "$t0" "$t2")"
		check_restored "Diff loaded lazily (Uffd, squib-pager)"
	else
		bad "Uffd load: $c $(cat "$T/api.out")"
		tail -n 20 "$log"
		cat "$T/pager.log"
	fi
	stop_squib
	[ "$ppid" -gt 1 ] && kill -9 "$ppid" 2>/dev/null
fi
rm -rf "$T"
exit $fail
