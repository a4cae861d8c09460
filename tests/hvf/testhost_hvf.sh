#!/bin/sh
# Runs INSIDE the arm64 test host (testhost/run-arm64.sh; driver:
# testhost_hvf_run.sh).  The HVF backend over its KVM emulation (docs/hvf.md):
#   1. hvf-selftest: Diff from hv_vm_protect write faults checked for
#      exactness, HVF_GIC_STATE + [F-55], postcopy by access exceptions;
#   2. squib built with SQB_HVF=ON boots the tiny arm64 guest (hello.img)
#      through the API with 1 and 2 vCPUs: DTB, RAM pattern, 40 virtual-timer
#      ticks, the secondary started by PSCI CPU_ON in the VMM, SYSTEM_OFF;
#   3. a Full snapshot of it mid-run, loaded in a new HVF squib by File:
#      the default load (exit-driven postcopy: hv_vm_protect, each page
#      fetched on the guest's first access) and mmap; then Full + Diff
#      through the API (exit-driven tracking), the Diff loaded through
#      squib-pager and, by File, lazily (postcopy of the chain);
#   4. optional (arg "linux"): Debian's arm64 kernel, 2 vCPUs, to a shell.
# Prints PASS:/FAIL:/INFO: lines; exit 1 on any FAIL.
T=$(mktemp -d)
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

# file_load STATE MEM EXTRA_JSON NAME: load by File in a new HVF squib; the
# ticks of $T/before.log and the new log must be 1..40 once each
file_load() {
	sock=$T/load.sock log=$T/load-$4.log
	rm -f "$sock"
	# the log on its own file: info lines must not split the guest's lines
	SQB_LOG_LEVEL=info squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>"$log.err" &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(sqb-api "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$1\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$2\"}, \"resume_vm\": true$3}" 2>&1)
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; rc=124; else wait "$pid"; rc=$?; fi
	cat "$T/before.log" "$log" | grep -o '^arm64-guest: tick [0-9]*$' | awk '{print $3}' >"$T/ticks"
	[ "$c" = 204 ] && awk 'NR != $1 { bad = 1 } END { exit bad || NR != 40 }' "$T/ticks" &&
		grep -q 'arm64-guest: mem ok' "$log" && [ $rc = 0 ] &&
		pass "HVF squib: $4 load by File: ticks 1..40 once each, RAM pattern intact, exit 0" ||
		{ bad "HVF squib: $4 load by File (API $c, exit $rc)"; tr '\n' ' ' <"$T/ticks"; echo; tail -n 15 "$log" "$log.err"; }
	n=$(sed -n 's/.*hvf: \([0-9]*\) pages fetched by access faults.*/\1/p' "$log.err" | tail -n 1)
	echo "INFO: $4 load: ${n:-?} pages fetched by access faults"
	if [ "${3#*mmap}" != "$3" ]; then
		! grep -q 'exit-driven postcopy' "$log.err" && pass "$4 load: no postcopy" ||
			bad "mmap load armed a postcopy"
	else
		grep -q 'exit-driven postcopy: .*(armed)' "$log.err" && [ "${n:-0}" -gt 0 ] &&
			pass "$4 load: exit-driven postcopy (hv_vm_protect), $n pages fetched by access faults" ||
			bad "$4 load: no exit-driven postcopy seen (fetched ${n:-?})"
	fi
}

[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the arm64 test host"; exit 1; }

# 1. the self-test
hvf-selftest /test/hvf_guest.img "$T" >"$T/selftest.log" 2>&1
rc=$?
cat "$T/selftest.log"
[ $rc = 0 ] && pass "hvf-selftest (dirty exactness, GIC blob, postcopy)" || bad "hvf-selftest exit $rc"

# 2. squib with the HVF backend, through the Firecracker API
for n in 1 2; do
	sock=$T/tiny$n.sock log=$T/tiny$n.log
	# the emulation issues KVM ioctls from vCPU threads the KVM seccomp lists do not foresee
	squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(sqb-api "$sock" PUT /machine-config "{\"vcpu_count\": $n, \"mem_size_mib\": 64}" 2>&1)
	c=$c$(sqb-api "$sock" PUT /boot-source '{"kernel_image_path": "/test/hello.img"}' 2>&1)
	c=$c$(sqb-api "$sock" PUT /actions '{"action_type": "InstanceStart"}' 2>&1)
	[ "$c" = 204204204 ] || bad "HVF squib, $n vCPU: API answered $c"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		rc=124
	else
		wait "$pid"
		rc=$?
	fi
	grep -q 'arm64-guest: dtb ok' "$log" && grep -q 'arm64-guest: mem ok' "$log" &&
		grep -q 'arm64-guest: tick 40' "$log" && grep -q 'arm64-guest: done' "$log" && [ $rc = 0 ] &&
		pass "HVF squib, $n vCPU: DTB, RAM pattern, 40 ticks, PSCI SYSTEM_OFF (squib exit 0)" ||
		{ bad "HVF squib, $n vCPU (squib exit $rc)"; tail -n 25 "$log"; }
	if [ $n = 1 ]; then
		grep -q 'arm64-guest: cpu1 absent' "$log" && pass "1 vCPU: PSCI CPU_ON of MPIDR 1 refused" ||
			bad "1 vCPU: cpu1 line"
	else
		grep -q 'arm64-guest: cpu1' "$log" && ! grep -q 'cpu1 absent' "$log" &&
			pass "2 vCPUs: the secondary came up through CPU_ON (backend PSCI, emulated exit)" ||
			bad "2 vCPUs: no line from the secondary"
	fi
done
# 3. Full snapshot of the HVF squib mid-run (vCPU records, HVF_GIC_STATE),
#    squib killed, loaded (File) in a new HVF squib: the ticks go on
sock=$T/snap.sock log=$T/snap.log
squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
c=$(sqb-api "$sock" PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64}' 2>&1)
c=$c$(sqb-api "$sock" PUT /boot-source '{"kernel_image_path": "/test/hello.img"}' 2>&1)
c=$c$(sqb-api "$sock" PUT /actions '{"action_type": "InstanceStart"}' 2>&1)
i=0
while ! grep -q 'arm64-guest: tick 8$' "$log" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
c=$c$(sqb-api "$sock" PATCH /vm '{"state": "Paused"}' 2>&1)
c=$c$(sqb-api "$sock" PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\"}" 2>&1)
rawc=$(sqb-api "$sock" PUT /snapshot/create "{\"snapshot_path\": \"$T/r.state\", \"mem_file_path\": \"$T/r.mem\", \"squib\": {\"mem_format\": \"raw\"}}" 2>&1)
kill -9 "$pid"
wait "$pid" 2>/dev/null
if [ "$c" = 204204204204204 ]; then
	pass "HVF squib: Full snapshot of the running 2-vCPU guest"
	squib-snap verify --decode "$T/s.state" >/dev/null 2>&1 && squib-snap inspect "$T/s.state" | grep -q 'aarch64/hvf' &&
		pass "squib-snap verifies it and names it aarch64/hvf" || { bad "squib-snap on the HVF snapshot"; squib-snap inspect "$T/s.state" 2>&1 | head -20; }
	cp "$log" "$T/before.log"
	# default load (first load of the file: exit-driven postcopy, each page
	# fetched and verified on the guest's first access), then mmap
	file_load "$T/s.state" "$T/s.mem" "" default
	file_load "$T/s.state" "$T/s.mem" ', "squib": {"restore": "mmap"}' mmap
	# one flipped byte in the guest's pattern area (RAM + 2 MiB + 32 KiB of
	# a raw memory file): the guest's own access fetches it (no filler), the
	# checksum fails, the VM stops and squib exits 2; the guest never
	# reaches its pattern check
	if [ "$rawc" = 204 ]; then
		printf '\377' | dd of="$T/r.mem" bs=1 seek=2129920 conv=notrunc 2>/dev/null
		sock=$T/bad.sock log=$T/bad.log
		SQB_LAZY_NO_FILL=1 SQB_LOG_LEVEL=info squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>"$log.err" &
		pid=$!
		i=0
		while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		c=$(sqb-api "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$T/r.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/r.mem\"}, \"resume_vm\": true}" 2>&1)
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
		if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; rc=124; else wait "$pid"; rc=$?; fi
		[ $rc = 2 ] && ! grep -q 'arm64-guest: mem' "$log" && grep -q 'exit-driven postcopy: .*(armed)' "$log.err" &&
			grep -q 'checksum' "$log.err" &&
			pass "a flipped byte met by the guest's access fault: VM stopped (checksum), squib exit 2, the guest never saw it (API $c)" ||
			{ bad "flipped byte under exit-driven postcopy (API $c, exit $rc)"; tail -n 5 "$log"; tail -n 10 "$log.err"; }
	else
		bad "raw-format snapshot create: $rawc"
	fi
	# a snapshot of a VM loaded by exit-driven postcopy with pages not yet
	# fetched (no filler): the create fetches (and verifies) every page
	# first, so the new snapshot holds the memory, not the zeros of pages
	# never installed; loaded by mmap, the guest goes on from tick 9
	sock=$T/re.sock log=$T/re.log
	SQB_LAZY_NO_FILL=1 squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(sqb-api "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"}, \"resume_vm\": false, \"squib\": {\"restore\": \"lazy\"}}" 2>&1)
	c=$c$(sqb-api "$sock" PUT /snapshot/create "{\"snapshot_path\": \"$T/s2.state\", \"mem_file_path\": \"$T/s2.mem\"}" 2>&1)
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	if [ "$c" = 204204 ]; then
		file_load "$T/s2.state" "$T/s2.mem" ', "squib": {"restore": "mmap"}' "snapshot of an unfetched postcopy VM, mmap"
	else
		bad "snapshot of a postcopy VM: API $c"
		tail -n 10 "$log"
	fi
else
	bad "HVF squib snapshot: API answered $c"
	tail -n 15 "$log"
fi

# 3b. Full, then a Diff through the API: squib's dirty tracking on the HVF
#     backend is SQB_DIRTY_EXIT (hv_vm_protect + write faults); the Diff is
#     loaded through squib-pager (Uffd) and the guest goes on
sock=$T/dboot.sock log=$T/dboot.log
squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
c=$(sqb-api "$sock" PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64, "track_dirty_pages": true}' 2>&1)
c=$c$(sqb-api "$sock" PUT /boot-source '{"kernel_image_path": "/test/hello.img"}' 2>&1)
c=$c$(sqb-api "$sock" PUT /actions '{"action_type": "InstanceStart"}' 2>&1)
i=0
while ! grep -q 'arm64-guest: tick 5$' "$log" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
c=$c$(sqb-api "$sock" PATCH /vm '{"state": "Paused"}' 2>&1)
c=$c$(sqb-api "$sock" PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$T/f0.state\", \"mem_file_path\": \"$T/f0.mem\"}" 2>&1)
c=$c$(sqb-api "$sock" PATCH /vm '{"state": "Resumed"}' 2>&1)
i=0
while ! grep -q 'arm64-guest: tick 12$' "$log" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
c=$c$(sqb-api "$sock" PATCH /vm '{"state": "Paused"}' 2>&1)
c=$c$(sqb-api "$sock" PUT /snapshot/create "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"$T/d1.state\", \"mem_file_path\": \"$T/d1.mem\"}" 2>&1)
kill -9 "$pid"
wait "$pid" 2>/dev/null
cp "$log" "$T/before.log"
if [ "$c" = 204204204204204204204204 ]; then
	pass "HVF squib: Full then Diff through the API (exit-driven dirty tracking)"
	squib-snap inspect "$T/d1.mem" 2>&1 | grep -E "^(kind|parent)" | sed 's/^/INFO: /'
	squib-pager "$T/pager.sock" "$T/d1.mem" >"$T/pager.log" 2>&1 &
	ppid=$!
	i=0
	while [ ! -S "$T/pager.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	sock=$T/dload.sock log=$T/dload.log
	squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(sqb-api "$sock" PUT /snapshot/load "{\"snapshot_path\": \"$T/d1.state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"$T/pager.sock\"}, \"resume_vm\": true}" 2>&1)
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; rc=124; else wait "$pid"; rc=$?; fi
	cat "$T/before.log" "$log" | grep -o '^arm64-guest: tick [0-9]*$' | awk '{print $3}' >"$T/ticks"
	[ "$c" = 204 ] && awk 'NR != $1 { bad = 1 } END { exit bad || NR != 40 }' "$T/ticks" &&
		grep -q 'arm64-guest: mem ok' "$log" && [ $rc = 0 ] &&
		pass "HVF squib: Diff loaded through squib-pager: ticks 1..40 once each, RAM pattern intact, exit 0" ||
		{ bad "HVF squib: Diff load (API $c, exit $rc)"; tail -n 10 "$log"; cat "$T/pager.log"; }
	kill -9 "$ppid" 2>/dev/null
	# the Full + Diff chain by File, lazily: pages of both layers fetched
	# on the guest's first access
	file_load "$T/d1.state" "$T/d1.mem" ', "squib": {"restore": "lazy"}' "Diff chain lazy"
else
	bad "HVF squib: Full/Diff create: $c"
	tail -n 10 "$log"
fi

# 4. optional (arg "linux"): Debian's arm64 cloud kernel under the HVF squib,
#    2 vCPUs, to a shell marker, then a counter driven by timer interrupts
G=${SQB_GUEST_DIR:-/guest}
if [ "${1:-}" = linux ] && [ -f "$G/Image" ]; then
	mkdir -p "$T/ird/bin" "$T/ird/proc"
	cp /bin/busybox "$T/ird/bin/busybox"
	cat >"$T/ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo SQUIB-HVF-SHELL cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)
i=0
while [ $i -lt 100000 ]; do echo SQUIB-HVF-COUNTER $i; i=$((i + 1)); /bin/busybox sleep 1; done
INIT
	chmod 755 "$T/ird/init"
	(cd "$T/ird" && find . | cpio -o -H newc 2>/dev/null) >"$T/ird.cpio"
	sock=$T/linux.sock log=$T/linux.log
	squib --api-sock "$sock" --no-seccomp --no-serial-input </dev/null >"$log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(sqb-api "$sock" PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}' 2>&1)
	c=$c$(sqb-api "$sock" PUT /boot-source "{\"kernel_image_path\": \"$G/Image\", \"initrd_path\": \"$T/ird.cpio\", \"boot_args\": \"console=ttyAMA0 earlycon panic=-1 quiet\"}" 2>&1)
	c=$c$(sqb-api "$sock" PUT /actions '{"action_type": "InstanceStart"}' 2>&1)
	i=0
	while ! grep -q 'SQUIB-HVF-COUNTER 3[^0-9]' "$log" && kill -0 "$pid" 2>/dev/null && [ $i -lt 3000 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q 'SQUIB-HVF-SHELL cpus=2' "$log" && grep -q 'SQUIB-HVF-COUNTER 3[^0-9]' "$log" &&
		pass "HVF squib: Debian arm64 kernel, 2 vCPUs, shell and a timer-driven counter ($(i=$i; echo $((i / 10))) s)" ||
		{ bad "HVF squib: Debian arm64 kernel (API $c)"; tail -n 30 "$log"; }
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
fi

rm -rf "$T"
exit $fail
