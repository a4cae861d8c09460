#!/bin/sh
# Runs INSIDE the arm64 test host (testhost/run-arm64.sh; driver:
# testhost_arm64_run.sh).  squib (arm64 build) on arm64 KVM, through the
# Firecracker API (sqb-api, no curl here):
#   1. the tiny guest (hello.img) boots with 1 vCPU: DTB seen, RAM pattern,
#      40 timer ticks, PSCI SYSTEM_OFF ends squib with status 0;
#   2. the same with 2 vCPUs: the second comes up through PSCI CPU_ON;
#   3. Full snapshot mid-run, squib killed, the snapshot loaded (File) in a
#      new squib: ticks continue, the pattern holds; squib-snap verifies it;
#      the state file goes out base64 on the console for the x86 squib-snap;
#   3b. clone identity: the step-3 snapshot loaded twice (paused) and one of
#      those loads' snapshot loaded again, each load snapshotted at once;
#      read from the memory files (squib-snap extract --memory): a new VM
#      generation ID per load (never the saved one, never another load's,
#      the same bytes as the device record), VMClock's disruption_marker and
#      vm_generation_counter + 1 per load (seq_count even);
#   5. Full, then Diff (dirty log), loaded through squib-pager (Uffd);
#   4. optional (arg "linux"): Debian's arm64 cloud kernel to a shell marker
#      with 1 and 2 vCPUs; the 2-vCPU one snapshotted, killed and loaded.
# Prints PASS:/FAIL:/INFO: lines; exit 1 on any FAIL.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
now() { read -r t _ </proc/uptime; echo "$t"; }
api() { sqb-api "$sock" "$@" 2>"$T/api.out"; }
wait_for() { # REGEX FILE SECONDS
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		# complete lines only: a marker half written must not match
		head -n "$( (wc -l <"$2") 2>/dev/null || echo 0)" "$2" 2>/dev/null | grep -qE "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
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
wait_exit() { # SECONDS -> rc of squib, 124 if it did not end
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt $(($1 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
}
boot() { # NAME VCPUS MIB KERNEL [INITRD ARGS]
	start_squib "$1"
	t0=$(now)
	c=$(api PUT /machine-config "{\"vcpu_count\": $2, \"mem_size_mib\": $3}")
	if [ -n "${5:-}" ]; then
		c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$4\", \"initrd_path\": \"$5\", \"boot_args\": \"$6\"}")
	else
		c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$4\"}")
	fi
	c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
	[ "$c" = 204204204 ] || { bad "$1: API answered $c: $(cat $T/api.out)"; cat "$log"; return 1; }
}

[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the arm64 test host"; exit 1; }
dmesg | grep -q 'VHE mode initialized' && echo "INFO: host KVM in VHE mode" ||
	echo "INFO: host KVM: $(dmesg | grep -m1 -iE 'kvm \[1\]: .*(mode|initialized)')"

# 1 + 2: the tiny guest, 1 and 2 vCPUs
for n in 1 2; do
	boot tiny$n $n 64 /test/hello.img || continue
	wait_exit 60
	rc=$?
	t1=$(now)
	grep -q 'arm64-guest: dtb ok' "$log" && grep -q 'arm64-guest: mem ok' "$log" &&
		grep -q 'arm64-guest: tick 40' "$log" && grep -q 'arm64-guest: done' "$log" && [ $rc = 0 ] &&
		pass "tiny guest, $n vCPU: DTB, RAM pattern, 40 ticks, PSCI SYSTEM_OFF (squib exit 0)" ||
		{ bad "tiny guest, $n vCPU (squib exit $rc)"; tail -n 20 "$log"; }
	if [ $n = 1 ]; then
		grep -q 'arm64-guest: cpu1 absent' "$log" && pass "1 vCPU: PSCI CPU_ON of MPIDR 1 refused" ||
			bad "1 vCPU: cpu1 line"
	else
		grep -q 'arm64-guest: cpu1 on' "$log" && pass "2 vCPUs: the secondary came up through PSCI CPU_ON" ||
			bad "2 vCPUs: no secondary"
	fi
	echo "INFO: tiny$n: API start to squib exit $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s (40 ticks of 50 ms = 2 s)"
done

# 3: Full snapshot mid-run, kill, load
if boot snap 2 64 /test/hello.img; then
	wait_for 'arm64-guest: tick 8$' "$log" 30 || bad "snapshot: no tick 8"
	c=$(api PATCH /vm '{"state": "Paused"}')
	c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/tiny.state\", \"mem_file_path\": \"$T/tiny.mem\"}")
	if [ "$c" = 204204 ]; then
		pass "paused and took a Full snapshot of the running tiny guest (2 vCPUs)"
	else
		bad "snapshot create: $c $(cat $T/api.out)"
	fi
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	cp "$log" "$T/before.log"
	last=$(grep -o '^arm64-guest: tick [0-9]*$' "$T/before.log" | tail -n1 | awk '{print $3}')
	if squib-snap verify --decode "$T/tiny.state" >"$T/verify.out" 2>&1; then
		pass "squib-snap (arm64) verifies the arm64 snapshot"
	else
		bad "squib-snap verify: $(cat $T/verify.out)"
	fi
	squib-snap inspect "$T/tiny.state" 2>&1 | awk 'NR <= 40'
	echo "SQUIB-ARM64-STATE-BEGIN"
	base64 "$T/tiny.state"
	echo "SQUIB-ARM64-STATE-END"
	start_squib load
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/tiny.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/tiny.mem\"}, \"resume_vm\": true}")
	if [ "$c" = 204 ]; then
		pass "new squib loaded the arm64 snapshot and resumed"
		wait_exit 60
		rc=$?
		next=$((last + 1))
		# the snapshot may split a line: join the two consoles raw, then
		# every tick 1..40 must be there once, in order
		cat "$T/before.log" "$log" | grep -o '^arm64-guest: tick [0-9]*$' | awk '{print $3}' >"$T/ticks"
		awk 'NR != $1 { bad = 1 } END { exit bad || NR != 40 }' "$T/ticks" &&
			grep -q 'arm64-guest: mem ok' "$log" && grep -q 'arm64-guest: done' "$log" && [ $rc = 0 ] &&
			pass "restored guest went on from tick $next to 40 (none lost or repeated), RAM pattern intact, powered off (exit 0)" ||
			{ bad "restored guest (squib exit $rc, last tick before $last)"; tr '\n' ' ' <"$T/ticks"; echo; tail -n 15 "$log"; }
		grep -q 'arm64-guest: hello' "$log" && bad "restored guest started over" || true
	else
		bad "snapshot load: $c $(cat $T/api.out)"
		tail -n 20 "$log"
		kill -9 "$pid" 2>/dev/null
	fi
fi

# 3b: clone identity (docs/snapshots.md "Clone identity").  The VMGenID's ID
# is at 0x801f_fff0 and the VMClock page at 0x801f_e000 (arch/aarch64/
# layout.h): offsets 0x1ffff0 and 0x1fe000 of the one RAM region.
GEN_OFF=$((0x1ffff0)) CLK_OFF=$((0x1fe000))
hexat() { od -A n -t x1 -j "$2" -N "$3" "$1" | tr -d ' \n'; } # FILE OFF LEN
u64at() { od -A n -t u8 -j "$2" -N 8 "$1" | tr -d ' \n'; }    # FILE OFF (LE host)
ident() { # NAME STATE MEM -> "id disruption generation seq"; the device record's ID checked
	squib-snap extract "$3" --memory "$T/$1.raw" --force >/dev/null 2>&1 ||
		{ bad "$1: squib-snap extract --memory $3" >&2; return 1; }
	squib-snap extract "$2" --device vmgenid -o "$T/$1.dev" --force >/dev/null 2>&1 ||
		{ bad "$1: no vmgenid device record in $2" >&2; return 1; }
	id=$(hexat "$T/$1.raw" $GEN_OFF 16)
	[ "$id" = "$(hexat "$T/$1.dev" 8 16)" ] ||
		bad "$1: the ID in memory ($id) is not the device record's ($(hexat "$T/$1.dev" 8 16))"  >&2
	echo "$id $(u64at "$T/$1.raw" $((CLK_OFF + 16))) $(u64at "$T/$1.raw" $((CLK_OFF + 104))) $(od -A n -t u4 -j $((CLK_OFF + 12)) -N 4 "$T/$1.raw" | tr -d ' \n')"
	rm -f "$T/$1.raw"
}
reload() { # NAME STATE MEM: load paused in a new squib, snapshot it at once, kill
	start_squib "$1"
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$2\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$3\"}, \"resume_vm\": false}")
	c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/$1.state\", \"mem_file_path\": \"$T/$1.mem\"}")
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	[ "$c" = 204204 ] || { bad "$1: load + snapshot: $c $(cat $T/api.out)"; tail -n 5 "$log"; return 1; }
}
check_ids() { # saved, load 1, load 2, load 1 reloaded: 4 x (id disruption generation seq)
	if [ $# = 16 ] && [ "$1" != 00000000000000000000000000000000 ] && [ "${#1}" = 32 ] &&
		[ "$5" != "$1" ] && [ "$9" != "$1" ] && [ "$9" != "$5" ] && [ "${13}" != "$5" ] &&
		[ "${13}" != "$1" ] && [ "${13}" != "$9" ]; then
		pass "VM generation ID: a new one at every load of one snapshot (saved, two loads and a reload all differ), memory = device record"
	else
		bad "VM generation ID did not change per load"
	fi
	if [ $# = 16 ] && [ "$6" = $(($2 + 1)) ] && [ "$7" = $(($3 + 1)) ] && [ "${10}" = $(($2 + 1)) ] &&
		[ "${11}" = $(($3 + 1)) ] && [ "${14}" = $(($2 + 2)) ] && [ "${15}" = $(($3 + 2)) ] &&
		[ $(($4 % 2 + $8 % 2 + ${12} % 2 + ${16} % 2)) = 0 ]; then
		pass "VMClock: disruption_marker and vm_generation_counter + 1 per load ($2 -> $6, $2 -> ${10}, then ${14}), seq_count even"
	else
		bad "VMClock counters did not go up by one per load"
	fi
}
if [ -f "$T/tiny.state" ] && reload gen1 "$T/tiny.state" "$T/tiny.mem" &&
	reload gen2 "$T/tiny.state" "$T/tiny.mem" && reload gen3 "$T/gen1.state" "$T/gen1.mem"; then
	s0=$(ident saved "$T/tiny.state" "$T/tiny.mem")
	s1=$(ident gen1 "$T/gen1.state" "$T/gen1.mem")
	s2=$(ident gen2 "$T/gen2.state" "$T/gen2.mem")
	s3=$(ident gen3 "$T/gen3.state" "$T/gen3.mem")
	echo "INFO: id disruption_marker vm_generation_counter seq_count: saved $s0; load 1 $s1; load 2 $s2; load 1 reloaded $s3"
	check_ids $s0 $s1 $s2 $s3
	rm -f "$T"/gen*.mem
fi

# 5: Full, then a Diff from KVM's dirty log, loaded through squib-pager (Uffd)
if command -v squib-pager >/dev/null && start_squib dboot; then
	c=$(api PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64, "track_dirty_pages": true}')
	c=$c$(api PUT /boot-source '{"kernel_image_path": "/test/hello.img"}')
	c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
	wait_for 'arm64-guest: tick 5$' "$log" 30 || bad "diff: no tick 5"
	c=$c$(api PATCH /vm '{"state": "Paused"}')
	c=$c$(api PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$T/f0.state\", \"mem_file_path\": \"$T/f0.mem\"}")
	c=$c$(api PATCH /vm '{"state": "Resumed"}')
	wait_for 'arm64-guest: tick 12$' "$log" 30 || bad "diff: no tick 12"
	c=$c$(api PATCH /vm '{"state": "Paused"}')
	c=$c$(api PUT /snapshot/create "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"$T/d1.state\", \"mem_file_path\": \"$T/d1.mem\"}")
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	cp "$log" "$T/before.log"
	if [ "$c" = 204204204204204204204204 ]; then
		pass "Full then Diff snapshot of the tiny guest (2 vCPUs, dirty log)"
		squib-snap inspect "$T/d1.mem" 2>&1 | grep -E "^(kind|parent)"
		squib-pager "$T/pager.sock" "$T/d1.mem" >"$T/pager.log" 2>&1 &
		ppid=$!
		i=0
		while [ ! -S "$T/pager.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		start_squib dload
		c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/d1.state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"$T/pager.sock\"}, \"resume_vm\": true}")
		if [ "$c" = 204 ]; then
			wait_exit 60
			rc=$?
			cat "$T/before.log" "$log" | grep -o '^arm64-guest: tick [0-9]*$' | awk '{print $3}' >"$T/ticks"
			awk 'NR != $1 { bad = 1 } END { exit bad || NR != 40 }' "$T/ticks" &&
				grep -q 'arm64-guest: mem ok' "$log" && [ $rc = 0 ] &&
				pass "Diff loaded through squib-pager (Uffd): ticks 1..40 once each, RAM pattern intact, exit 0" ||
				{ bad "Diff + Uffd load (squib exit $rc)"; tail -n 10 "$log"; cat "$T/pager.log"; }
		else
			bad "Diff + Uffd load: $c $(cat $T/api.out)"
			tail -n 10 "$log"
			kill -9 "$pid" 2>/dev/null
		fi
		kill -9 "$ppid" 2>/dev/null
	else
		bad "Full/Diff create: $c $(cat $T/api.out)"
	fi
fi

# 4: Debian's arm64 kernel to a shell marker (optional: slow under TCG); with
# 2 vCPUs its init then counts once a second (timer interrupts through the
# GIC), is snapshotted, killed and loaded: the counter must go on.
if [ "${1:-}" = linux ] && [ -f "$G/Image" ]; then
	mkdir -p "$T/ird/bin" "$T/ird/proc" "$T/ird/dev"
	cp /bin/busybox "$T/ird/bin/busybox"
	cat >"$T/ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo SQUIB-ARM64-SHELL cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo) uptime=$(/bin/busybox cut -d" " -f1 /proc/uptime)
i=0
while [ $i -lt 100000 ]; do echo SQUIB-ARM64-COUNTER $i; i=$((i + 1)); /bin/busybox sleep 1; done
INIT
	chmod 755 "$T/ird/init"
	(cd "$T/ird" && find . | cpio -o -H newc 2>/dev/null) >"$T/ird.cpio"
	for n in 1 2; do
		boot linux$n $n 256 "$G/Image" "$T/ird.cpio" "console=ttyAMA0 earlycon panic=-1 quiet" || continue
		if wait_for 'SQUIB-ARM64-SHELL' "$log" "${SQB_ARM64_LINUX_S:-240}"; then
			t1=$(now)
			pass "Debian arm64 kernel, $n vCPU: $(grep -m1 -o 'SQUIB-ARM64-SHELL.*' "$log")"
			echo "INFO: linux$n: API start to shell marker $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
		else
			bad "Debian arm64 kernel, $n vCPU: no shell marker"
			tail -n 25 "$log"
			kill -9 "$pid" 2>/dev/null
			continue
		fi
		# the guest's tty writes CRLF
		if [ $n = 2 ] && ! wait_for 'SQUIB-ARM64-COUNTER 3[^0-9]' "$log" 60; then
			bad "Linux, 2 vCPUs: the counter did not reach 3"
			tail -n 5 "$log"
		elif [ $n = 2 ]; then
			c=$(api PATCH /vm '{"state": "Paused"}')
			c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/lx.state\", \"mem_file_path\": \"$T/lx.mem\"}")
			kill -9 "$pid"
			wait "$pid" 2>/dev/null
			last=$(tr -d '\r' <"$log" | grep -o '^SQUIB-ARM64-COUNTER [0-9]*$' | tail -n1 | awk '{print $2}')
			[ "$c" = 204204 ] || bad "linux snapshot: $c $(cat $T/api.out)"
			start_squib lxload
			c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/lx.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/lx.mem\"}, \"resume_vm\": true}")
			if [ "$c" = 204 ] && wait_for "SQUIB-ARM64-COUNTER $((last + 3))[^0-9]" "$log" 60; then
				pass "Linux (2 vCPUs) snapshotted at counter $last, killed, loaded: the counter goes on (timer interrupts through the restored GIC)"
			else
				bad "Linux snapshot load: $c $(cat $T/api.out)"
				tail -n 20 "$log"
			fi
		fi
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
fi
rm -rf "$T"
exit $fail
