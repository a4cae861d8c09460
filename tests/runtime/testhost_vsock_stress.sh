#!/bin/sh
# By-hand stall hunt for issue 13 (docs/testing.md "Known failures"), not a
# ctest: runs inside the nested test host:
#   cmake --build build --target squib vstress
#   flock /work/testhost.lock testhost/run.sh --rootfs --timeout 1500 \
#       --bin build/runtime/squib --bin /usr/bin/curl \
#       --bin build/tests/runtime/vstress \
#       --file tests/snapshot/testhost_lib.sh:/test/testhost_lib.sh \
#       [--bin /usr/bin/gdb] \
#       tests/runtime/testhost_vsock_stress.sh [MINUTES] [VCPUS] [LOAD]
# (gdb is optional: its attach to a hung squib once came just before a
# test-host panic, so leave it out when the other evidence matters more.)
# One boot of the guest kit's Linux (root on virtio-blk, vmw_vsock_virtio_
# transport on a uds_path, squib at SQB_LOG_LEVEL=debug), `sqbtool
# vsock-agent` in the guest, then host-initiated streams in turn (ping-pong
# lines, one-byte echo, bulk host->guest, bulk guest->host) and
# guest-initiated ones (`sqbtool vsock-bench cid:2 5555` in the guest against
# `vstress serve` on "<uds_path>_5555": bulk both ways and echo) until MINUTES
# (default 15) have passed.  A stream that moves no byte for 3 s prints
# "VSTRESS stall"; the script then records, in this order: the guest's
# /proc/interrupts (through the serial console, which also wakes the vCPU),
# whether the stream resumed, and squib's queue dump (a probe connection to
# an unused guest port: the guest's RST, or the 2 s kill timer, closes it,
# and every close dumps every queue).  Results: "STRESS-RESULT" lines.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
MINUTES=${1:-15}
VCPUS=${2:-1}
LOAD=${3:-0} # 1: the guest also reads its disk in a loop (other interrupts)
pid=""
# api, wait_for (and pass/bad): testhost_lib.sh; cleanup, die, send and cmd
# are this script's own (defined after it)
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v wait_for >/dev/null || { echo "STRESS-RESULT fatal: testhost_lib.sh not found"; exit 1; }
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "${vsp:-}" ] && kill -9 "$vsp" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -rf "$T"
}
die() { echo "STRESS-RESULT fatal: $*"; [ -f "${log:-}" ] && tail -n 40 "$log"; cleanup; exit 1; }
send() { echo "$1" >&3; sleep 0.3; }
ncmd=0
cmd() { # cmd SECONDS COMMAND (under 60 bytes with the marker)
	ncmd=$((ncmd + 1))
	send "$2; echo CMD-$ncmd-END"
	wait_for "^CMD-$ncmd-END" "$log" "$1"
}
irqs() { # the guest's virtio interrupt lines, tagged; 1 if the console is dead
	cmd 20 'grep -E "virtio|vsock" /proc/interrupts' || { echo "  (console did not answer)"; return 1; }
	tail -n 12 "$log" | tr -d '\r' | grep -E '^ *[0-9]+:' | sed "s/^/  GUEST-IRQ[$1]: /"
}

kvmstat() { # the test host's KVM counters for squib's VM (debugfs)
	d=$(ls -d /sys/kernel/debug/kvm/"$pid"-* 2>/dev/null | head -n 1)
	[ -n "$d" ] || { echo "(no kvm debugfs for $pid)"; return; }
	for f in exits halt_exits halt_wakeup irq_injections irq_window_exits irq_exits \
		io_exits mmio_exits signal_exits request_irq_exits nmi_injections blocking; do
		[ -f "$d/$f" ] && printf '%s=%s ' "$f" "$(cat "$d/$f")"
	done
	echo
}
# What the test host knows about a guest that stopped answering, before
# anything is sent to it: squib's threads (CPU ticks, wait channel), the
# vCPU thread's kernel stack, KVM's counters twice, 1 s of KVM trace events.
hostdiag() {
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
	for t in /proc/"$pid"/task/*; do
		echo "  HOST[$1] thread $(cat "$t/comm") $(cut -d' ' -f3,14,15 "$t/stat") wchan=$(cat "$t/wchan" 2>/dev/null) syscall=$(cut -d' ' -f1-3 "$t/syscall" 2>/dev/null)"
		case $(cat "$t/comm") in *vcpu*) sed "s/^/  HOST[$1] vcpu stack: /" "$t/stack" 2>/dev/null ;; esac
	done
	echo "  HOST[$1] kvm: $(kvmstat)"
	sleep 2
	echo "  HOST[$1] kvm 2 s later: $(kvmstat)"
	for t in /proc/"$pid"/task/*; do
		echo "  HOST[$1] thread $(cat "$t/comm") $(cut -d' ' -f3,14,15 "$t/stat") wchan=$(cat "$t/wchan" 2>/dev/null)"
	done
	tr=/sys/kernel/debug/tracing
	[ -d /sys/kernel/tracing/events ] && tr=/sys/kernel/tracing
	if [ -d "$tr/events/kvm" ]; then
		: >"$tr/trace"
		echo 1 >"$tr/events/kvm/enable"
		sleep 1
		echo 0 >"$tr/events/kvm/enable"
		echo "  HOST[$1] kvm trace: $(grep -c . "$tr/trace") lines; events by name:"
		grep -v '^#' "$tr/trace" | sed -nE 's/.* (kvm_[a-z_]+):.*/\1/p' | sort | uniq -c | sed "s/^/  HOST[$1]   /"
		echo "  HOST[$1] interrupts accepted by vector: $(sed -nE 's/.*kvm_apic_accept_irq:.* vec ([0-9]+).*/\1/p' "$tr/trace" | sort | uniq -c | tr '\n' ' ')"
		echo "  HOST[$1] exits by reason: $(sed -nE 's/.*kvm_exit: (vcpu [0-9]+ )?reason ([A-Za-z_0-9]+).*/\2/p' "$tr/trace" | sort | uniq -c | sort -rn | head -n 8 | tr '\n' ' ')"
		echo "  HOST[$1] entries by rip: $(sed -nE 's/.*kvm_entry: vcpu [0-9]+, rip (0x[0-9a-f]+).*/\1/p' "$tr/trace" | sort | uniq -c | sort -rn | head -n 8 | tr '\n' ' ')"
		grep -v '^#' "$tr/trace" | grep -vE 'kvm_entry|kvm_cpuid|kvm_emulate_insn' | tail -n 30 | cut -c1-200 | sed "s/^/  HOST[$1] trace: /"
	else
		echo "  HOST[$1] (no kvm trace events)"
	fi
	grep -nE 'vsock .*(queue|closing|EOF)' "$log" | tail -n 4 | sed "s/^/  HOST[$1] squib said: /"
}

command -v squib >/dev/null && command -v vstress >/dev/null && [ -f "$G/rootfs.ext4" ] ||
	die "squib, vstress or $G/rootfs.ext4 missing"
[ -c /dev/kvm ] || die "no /dev/kvm"
cp "$G/rootfs.ext4" "$T/root.ext4"
sock=$T/api.sock log=$T/squib.log fifo=$T/in
mkfifo "$fifo"
# SQB_CRASH_CHECK: a nested triple fault says what the exception path held
SQB_CRASH_CHECK=${SQB_CRASH_CHECK:-1} SQB_LOG_LEVEL=debug squib --api-sock "$sock" <"$fifo" >>"$log" 2>&1 &
pid=$!
exec 3>"$fifo"
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$T/v.sock\"}")
c=$c$(api PUT /machine-config "{\"vcpu_count\": $VCPUS, \"mem_size_mib\": 256}")
c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c" = 204204204204204 ] || die "API: $c $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
cmd 20 'uname -r; cat /proc/cmdline' || die "console"
send 'sqbtool vsock-agent 1234 &'
wait_for 'SQUIB-VAGENT ready' "$log" 30 || die "agent: $(grep SQUIB-VAGENT "$log")"
[ "$LOAD" = 1 ] && send 'while :; do cat /data/big.pat >/dev/null; done &'
irqs start
vstress serve "$T/v.sock_5555" >"$T/serve.out" 2>&1 &
vsp=$!

end=$(($(cut -d. -f1 /proc/uptime) + MINUTES * 60))
k=0 nstall=0 nfail=0 nok=0
while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
	k=$((k + 1))
	case $((k % 5)) in
	1) m=lines n=3000 ;;
	2) m=echo n=5000 ;;
	3) m=sink n=4096 ;; # KiB
	4) m=src n=4 ;;     # MiB
	0) m=guest n=0 ;;
	esac
	if [ $m = guest ]; then # guest-initiated: 2 MiB each way, 2000 pings
		ng=$(grep -c 'VSTRESS stall' "$T/serve.out")
		nb=$(grep -c 'SQUIB-VSOCKBENCH' "$log")
		# squib's debug lines share the log with the console and may cut
		# into a marker: wait for the bench's own result line instead
		send 'sqbtool vsock-bench cid:2 5555 2 2000'
		i=0
		while [ $i -lt 2000 ] && [ "$(grep -c 'SQUIB-VSOCKBENCH' "$log")" = "$nb" ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if grep -o 'SQUIB-VSOCKBENCH [a-z0-9]*' "$log" | tail -n +$((nb + 1)) |
			grep -q 'SQUIB-VSOCKBENCH h2g'; then
			nok=$((nok + 1))
		else
			nfail=$((nfail + 1))
			echo "STRESS-RESULT stream $k (guest-initiated): $(tail -n 5 "$log" | grep -E 'VSOCKBENCH|ping' | tr '\n' ' ')"
			tail -n 4 "$T/serve.out" | sed 's/^/  SERVE: /'
			grep -nE 'vsock .*(queue|closing|EOF)' "$log" | tail -n 12 | sed 's/^/  SQUIB-DUMP: /'
			irqs "guest-initiated $k"
		fi
		[ "$(grep -c 'VSTRESS stall' "$T/serve.out")" = "$ng" ] || {
			nstall=$((nstall + 1))
			echo "STRESS-RESULT stream $k (guest-initiated) stalled: $(grep 'VSTRESS' "$T/serve.out" | tail -n 3 | tr '\n' ' ')"
		}
		continue
	fi
	out=$T/s$k.out
	vstress "$T/v.sock" 1234 $m $n 3000 90 >"$out" 2>&1 &
	vp=$!
	# watch: a stall line or the end of the client
	while kill -0 $vp 2>/dev/null && ! grep -qs 'VSTRESS stall' "$out"; do sleep 0.2; done
	if grep -q 'VSTRESS stall' "$out"; then
		nstall=$((nstall + 1))
		echo "STRESS-RESULT stream $k ($m $n): $(grep 'VSTRESS stall' "$out" | head -n 1)"
		hostdiag "stall $k"
		dead=0
		irqs "stall $k" || dead=1
		sleep 2
		grep -q 'VSTRESS resumed' "$out" && echo "  after the console command: $(grep 'VSTRESS resumed' "$out" | head -n 1)"
		# the probe: squib dumps every queue when it closes it
		timeout 10 vstress "$T/v.sock" 4321 lines 1 1000 5 >"$T/probe$k.out" 2>&1
		echo "  probe: $(tr '\n' ' ' <"$T/probe$k.out")"
		sleep 3
		grep -nE 'vsock .*(queue|closing|EOF)' "$log" | tail -n 12 | sed 's/^/  SQUIB-DUMP: /'
		irqs "after probe $k" || [ $dead = 0 ] || {
			hostdiag "dead $k"
			# last, as it stops every thread for a moment: where squib's
			# threads are (a vCPU thread in a futex would be squib's deadlock)
			command -v gdb >/dev/null && timeout 60 gdb -p "$pid" -batch -nx \
				-ex 'thread apply all bt 12' 2>&1 | grep -E '^Thread|^#' | head -n 80 | sed 's/^/  GDB: /'
			echo "STRESS-RESULT stream $k: the guest answers neither its console nor vsock: stop"
			kill $vp 2>/dev/null
			break
		}
	fi
	wait $vp
	rc=$?
	if [ $rc = 0 ]; then
		nok=$((nok + 1))
		[ $((k % 20)) = 0 ] && echo "STRESS-PROGRESS stream $k: $(tail -n 1 "$out")"
	else
		nfail=$((nfail + 1))
		echo "STRESS-RESULT stream $k ($m $n) rc=$rc: $(tr '\n' ' ' <"$out")"
		grep -nE 'vsock .*(queue|closing|EOF)' "$log" | tail -n 12 | sed 's/^/  SQUIB-DUMP: /'
		grep -E 'SQUIB-VAGENT' "$log" | tail -n 3 | sed 's/^/  AGENT: /'
		kill -0 "$pid" 2>/dev/null || { grep -E 'crash check|triple|shutdown' "$log" | head -n 60; die "squib is gone"; }
	fi
	# squib's own log must not fill the test host's memory
	[ "$(wc -c <"$log")" -gt 50000000 ] && : >"$log"
done
irqs end
echo "STRESS-RESULT done (load $LOAD): $k streams, $nok ok, $nstall stalled, $nfail failed (vcpus $VCPUS, $MINUTES min)"
cleanup
[ $nstall = 0 ] && [ $nfail = 0 ]
