#!/bin/sh
# Runs inside the nested test host (docs/testing.md), or directly on hardware KVM:
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --bin /usr/sbin/ip tests/runtime/testhost_netvsock.sh
# The guest kit's Linux (root on virtio-blk) with Debian's virtio_net on tap A
# and vmw_vsock_virtio_transport on uds_path P1 (docs/network.md):
#   - eth0 comes up with an address; TCP transfers both ways to a listener on
#     the test host, each checked (FNV-1a of what was sent, the pattern of
#     what came back), with their times;
#   - a host client reaches the guest's vsock agent through P1 (`CONNECT
#     <port>` -> `OK ...`), every answer checked;
#   - Full snapshot while TCP rounds and a vsock client run, SIGKILL; tap A is
#     deleted, tap B takes its host address; load with network_overrides onto
#     tap B and vsock_override onto P2: the guest's TCP rounds go on through
#     tap B, a host client reaches the agent through P2, the vsock connection
#     cut by the snapshot ended on both sides (EOF on the host, ECONNRESET or
#     ENOTCONN in the guest), nothing hangs;
#   - two clones of that snapshot at once, each in a network namespace of its
#     own (same host address, own tap, own uds_path, squib's per-clone
#     guest_mac and guest_cid): both go on with TCP and answer vsock, each
#     agent on its clone's new cid.
# Every wait is bounded (the longest, a 64 MiB round each way, 120 s); the
# whole script ends well inside run.sh's timeout.  Environment failures
# (docs/testing.md "Environment retries"): the script prints a heartbeat
# line every 5 s (run.sh hides them and runs the test again from a fresh
# boot if the test host then goes silent for 90 s), and on any failure it
# checks whether the guest shows the emulator's stall (env_stall below);
# only then does it print SQUIB-TESTHOST-RETRY and exit 3, which run.sh
# answers with a fresh boot (3 attempts in all).  Any other failure (a wrong
# checksum, a refused or unreset connection, a wrong byte, a guest that
# answers but fails) is the test's verdict at once.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
MIB=64 # measured transfer, each way (issue 13)
BUSY_MIB=4 # the rounds that run across the snapshot
fail=0
# a squib that died closes its serial FIFO: the next write to it must fail
# (and the test say so), not kill the test with SIGPIPE
trap '' PIPE
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; env_check; }
crash_lines() {
	[ -n "${log:-}" ] && [ -f "$log" ] || return 0
	grep -nE 'Kernel panic|BUG:|Oops|general protection|RIP:|Call Trace|triple fault|virtio_net|vsock' \
		"$log" | tail -n 40 | sed 's/^/CONSOLE: /'
}
die() {
	echo "FAIL: $*"
	env_check
	crash_lines
	[ -n "${log:-}" ] && [ -f "$log" ] && tail -n 40 "$log"
	cleanup
	exit 1
}
now() { read -r t _ </proc/uptime; echo "$t"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (b-a)*1000}'; }
pid="" spid="" cpid="" hbpid=""
cleanup() {
	[ -n "$hbpid" ] && kill -9 "$hbpid" 2>/dev/null
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
	[ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null
	exec 3>&- 2>/dev/null
	"$IP" link del sqbA 2>/dev/null
	"$IP" link del sqbB 2>/dev/null
	for p_ in ${qpid1:-} ${qpid2:-} ${spid1:-} ${spid2:-}; do
		[ "$p_" -gt 1 ] && kill -9 "$p_" 2>/dev/null
	done
	"$IP" netns del c1 2>/dev/null
	"$IP" netns del c2 2>/dev/null
	rm -rf "$T"
}

api() { # api METHOD PATH [JSON] -> HTTP status; body in $T/api.out
	# -m: a squib whose API never answers fails the step (code 000)
	if [ -n "${3:-}" ]; then
		curl -s -m 60 -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2"
	else
		curl -s -m 60 -o "$T/api.out" -w '%{http_code}' --unix-socket "$sock" -X "$1" \
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

# One console line; squib's UART takes 64 bytes at a time (testhost_blk.sh).
send() {
	[ ${#1} -lt 60 ] || { echo "FAIL: test bug: console line over 60 bytes: $1"; fail=1; }
	echo "$1" >&3
	sleep 0.5
}
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
	# info, not debug: at debug squib also logs every vsock packet
	# (Firecracker's muxer line), and so many lines on the console's file
	# land inside the guest's own lines that a check waiting for one missed
	# it (CI, session 15); SQB_NETVSOCK_LOG=debug for the close reasons
	SQB_LOG_LEVEL=${SQB_NETVSOCK_LOG:-info} squib --api-sock "$sock" <"$fifo" >"$log" 2>&1 &
	pid=$!
	exec 3>"$fifo"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$sock" ] || die "$1: no API socket"
}

alive() { # alive PID: running, not a zombie waiting for this shell
	case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) in
	'' | Z | X) return 1 ;;
	esac
}
reap() { # reap PID: SIGKILL, and wait for it at most 30 s
	kill -9 "$1" 2>/dev/null
	i_=0
	while alive "$1" && [ $i_ -lt 300 ]; do sleep 0.1; i_=$((i_ + 1)); done
	alive "$1" && { echo "INFO: pid $1 outlived SIGKILL by 30 s"; return 1; }
	wait "$1" 2>/dev/null
	return 0
}
stop_squib() { # SIGKILL, as a crash would
	reap "$pid"
	pid=""
	exec 3>&-
}

# ---- environment failures (docs/testing.md "Environment retries") ----
# The squib the next check looks at: the current one unless a step names
# another (the clones): its pid, console log, console fd, API socket and
# network namespace.  net_up: the guest's eth0 has 10.0.0.2.
cur_pid="" cur_log="" cur_fd="" cur_sock="" cur_ns="" net_up=0 nprobe=0 env_checked=0
kvm_counts() { # kvm_counts DEBUGFS_DIR -> "exits io mmio irq_inj pf_guest"
	for f_ in exits io_exits mmio_exits irq_injections pf_guest; do
		printf '%s ' "$(cat "$1/$f_" 2>/dev/null || echo x)"
	done
}
vcpu_ticks() { # vcpu_ticks PID -> user+system ticks (1/100 s) of its vCPU threads
	s_=0
	for t_ in /proc/"$1"/task/*; do
		case $(cat "$t_/comm" 2>/dev/null) in
		*vcpu*) s_=$((s_ + $(sed 's/.*) //' "$t_/stat" | awk '{ print $12 + $13 }'))) ;;
		esac
	done
	echo "$s_"
}
# env_stall: 0 (and the evidence in stall_why) only when the guest shows the
# emulator's stall as session 8 caught it (an L2 vCPU live-locked in KVM,
# walking page tables from the test host's own CR3, an exception always
# pending): squib is alive and its API answers; the guest answers neither
# a console line nor, once eth0 is up, ICMP from its kernel for 15 s; over
# that time its vCPU thread ran (at least half the time on a CPU: not halted
# waiting for an interrupt squib owed), not one exit reached squib (no port
# or MMIO access, so squib cannot be holding it), KVM injected no interrupt
# although the probes made squib raise some, and KVM kept injecting page
# faults (pf_guest grew by 100 or more).  Anything short of all of these is
# not retried: the failure stands as the test's verdict.
env_stall() {
	p_=${cur_pid:-$pid} l_=${cur_log:-$log} fd_=${cur_fd:-3} s_k=${cur_sock:-$sock}
	if [ "${p_:-0}" -le 1 ] || ! alive "$p_"; then
		echo "INFO: env check: squib is not running: not an emulator stall"
		return 1
	fi
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
	d_=$(ls -d /sys/kernel/debug/kvm/"$p_"-* 2>/dev/null | head -n 1)
	[ -n "$d_" ] || { echo "INFO: env check: no KVM debugfs for squib $p_: no verdict on the environment"; return 1; }
	a_=$(kvm_counts "$d_") ta_=$(vcpu_ticks "$p_") t0_=$(now)
	nprobe=$((nprobe + 1))
	eval "echo 'echo ENVPROBE-$nprobe' >&$fd_" 2>/dev/null
	pings=0
	if [ "$net_up" = 1 ]; then
		if [ -n "$cur_ns" ]; then
			pings=$("$IP" netns exec "$cur_ns" ping -c 5 -w 6 10.0.0.2 2>/dev/null | grep -c 'bytes from')
		else
			pings=$(ping -c 5 -w 6 10.0.0.2 2>/dev/null | grep -c 'bytes from')
		fi
	fi
	console=0
	wait_for "^ENVPROBE-$nprobe" "$l_" 15 && console=1
	b_=$(kvm_counts "$d_") tb_=$(vcpu_ticks "$p_") t1_=$(now)
	api_=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --unix-socket "$s_k" http://localhost/)
	set -- $a_ $b_
	busy_=$(awk -v a="$ta_" -v b="$tb_" -v s="$t0_" -v e="$t1_" 'BEGIN { printf "%.0f", (b - a) / ((e - s) * 100) * 100 }')
	stall_why="squib $p_ alive, API GET / $api_; console probe answered=$console, ICMP replies=$pings;"
	stall_why="$stall_why vCPU on a CPU $busy_% of $(ms "$t0_" "$t1_") ms; KVM exits $1->$6,"
	stall_why="$stall_why io $2->$7, mmio $3->$8, irq injections $4->$9, pf_guest $5->${10}"
	echo "INFO: env check: $stall_why"
	[ "$api_" = 200 ] || return 1
	[ "$console" = 0 ] && [ "$pings" = 0 ] || { echo "INFO: env check: the guest answers: not an emulator stall"; return 1; }
	case "$2$3$4$5$7$8$9${10}" in *x*) echo "INFO: env check: a KVM counter is missing: no verdict on the environment"; return 1 ;; esac
	[ "$busy_" -ge 50 ] && [ "$2" = "$7" ] && [ "$3" = "$8" ] && [ "$4" = "$9" ] &&
		[ $((${10} - $5)) -ge 100 ] || { echo "INFO: env check: not the emulator's stall signature"; return 1; }
}
env_check() { # on the first failure only: the emulator's stall ends the run for a fresh boot
	[ "$env_checked" = 0 ] || return 0
	env_checked=1
	env_stall || return 0
	echo "SQUIB-TESTHOST-RETRY emulator stall (L2 vCPU live-locked in the test host's KVM): $stall_why"
	crash_lines
	cleanup
	exit 3
}

# after a failed vsock exchange: what the guest's agent and squib said
vsock_why() { # vsock_why LOG PID
	if [ "${2:-0}" -gt 1 ] && kill -0 "$2" 2>/dev/null; then echo "  squib $2 is alive"; else
		echo "  squib ${2:-?} is gone"; fi
	sleep 25 # the guest's agent gives up after 20 s: its last line too
	grep -E 'SQUIB-VAGENT|vsock|seccomp|virtio' "$1" | tail -n 30 | sed 's/^/  WHY: /'
	grep -vE 'SQUIB-TCP|vsock|CMD-' "$1" | tail -n 25 | sed 's/^/  LOG: /'
}

# last round number of the guest's TCP rounds that ended ok, in FILE
tcp_n() { sed -n 's/.*SQUIB-TCP [a-z]* n=\([0-9]*\) ok.*/\1/p' "$1" | tail -n1; }
stat_() { cat "/sys/class/net/$1/statistics/$2" 2>/dev/null || echo 0; }

SQBTOOL=$G/sqbtool
command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
# busybox sh runs its own ip applet for a plain `ip`: iproute2's by its path
IP=""
for p_ in /usr/bin/ip /usr/sbin/ip /sbin/ip /bin/ip; do
	[ -x "$p_" ] && "$p_" -V 2>&1 | grep -q iproute2 && IP=$p_ && break
done
[ -n "$IP" ] || { echo "FAIL: no iproute2 ip in the test host (--bin /usr/sbin/ip)"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] && [ -x "$SQBTOOL" ] || { echo "FAIL: $G/rootfs.ext4 or sqbtool missing (--rootfs)"; exit 1; }
[ -c /dev/net/tun ] || insmod /lib/modules/tun.ko 2>/dev/null
[ -c /dev/net/tun ] || { echo "FAIL: no /dev/net/tun (tun.ko from the guest kit)"; exit 1; }
# the heartbeat run.sh watches (in the test host only; run.sh hides it)
if [ "${SQB_IN_TESTHOST:-0}" = 1 ]; then
	(while sleep 5; do echo "SQUIB-TESTHOST-HEARTBEAT"; done) &
	hbpid=$!
fi

cp "$G/rootfs.ext4" "$T/root.ext4"
# tap A: the host side of the first VMM; tap B: where the load goes, with the
# same MAC and (once A is gone) the same address, as a replacement host would
"$IP" tuntap add dev sqbA mode tap && "$IP" tuntap add dev sqbB mode tap || die "ip tuntap add"
"$IP" addr add 10.0.0.1/24 dev sqbA && "$IP" link set sqbA up || die "address on sqbA"
macA=$(cat /sys/class/net/sqbA/address)
"$IP" link set sqbB address "$macA" || die "MAC of sqbB"
"$SQBTOOL" tcpserve 5001 >"$T/serve.log" 2>&1 &
spid=$!
wait_for 'SQUIB-TCPSERVE ready' "$T/serve.log" 10 || die "tcpserve: $(cat "$T/serve.log")"

# ---- boot: root on virtio-blk, eth0 on tap A, vsock on P1 ----
start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "sqbA",
	"guest_mac": "06:00:0a:00:00:02"}')
[ "$c" = 204204 ] || die "PUT /drives, /network-interfaces: $c $(cat "$T/api.out")"
c=$(api PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$T/v1.sock\"}")
[ "$c" = 204 ] || die "PUT /vsock: $c $(cat "$T/api.out")"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || die "boot: API answered $c1 $c2 $c3: $(cat "$T/api.out")"
t0=$(now)
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
grep -q 'SQUIB-READY.* root=/dev/vda' "$log" || die "root is not /dev/vda: $(grep -E 'SQUIB-(READY|ROOT-ERROR)' "$log")"
grep 'SQUIB-ROOT-ERROR' "$log" && bad "a module did not load"
echo "SQUIB-NET-TIME boot_to_ready_ms=$(ms "$t0" "$(now)")"

cmd 20 'cat /sys/class/net/eth0/address' || die "console"
grep -q '^06:00:0a:00:00:02' "$log" && pass "virtio_net: eth0 has the guest_mac of PUT /network-interfaces" ||
	{ cmd 20 'dmesg | grep -iE "virtio|vsock" | tail'; die "no eth0 with guest_mac"; }
cmd 20 'ip addr add 10.0.0.2/24 dev eth0' || bad "ip addr"
cmd 20 'ip link set eth0 up' || bad "ip link up"
cmd 30 'ping -c 2 -W 5 10.0.0.1 | grep received' &&
	grep -qE '2 packets received' "$log" && pass "eth0 is up, the guest pings tap A's address" ||
	bad "ping 10.0.0.1: $(grep 'received' "$log")"
net_up=1 # from here the environment check also pings the guest

# ---- transfers, measured ----
rx0=$(stat_ sqbA rx_bytes)
cmd 120 "sqbtool tcp 10.0.0.1 5001 $MIB 1" || bad "tcp round did not finish in 120 s"
grep -E 'SQUIB-TCP (put|get) n=1 ' "$log" | sed 's/^/  /'
grep -q "SQUIB-TCP put n=1 ok mib=$MIB" "$log" &&
	pass "guest -> host: $MIB MiB over TCP, the host's FNV-1a matches" || bad "TCP put"
grep -q "SQUIB-TCP get n=1 ok mib=$MIB" "$log" &&
	pass "host -> guest: $MIB MiB over TCP, every byte is the pattern's" || bad "TCP get"
rx1=$(stat_ sqbA rx_bytes)
[ $((rx1 - rx0)) -ge $((MIB * 1048576)) ] && pass "tap A carried it ($(((rx1 - rx0) / 1048576)) MiB from the guest)" ||
	bad "tap A rx_bytes grew by $((rx1 - rx0)) only"

# ---- vsock: agent in the guest, client on the host through P1 ----
send 'sqbtool vsock-agent 1234 &'
wait_for 'SQUIB-VAGENT ready' "$log" 30 || die "vsock agent: $(grep SQUIB-VAGENT "$log")"
timeout 120 "$SQBTOOL" vsock-client "$T/v1.sock" 1234 300 >"$T/vc1.log" 2>&1
cat "$T/vc1.log" | sed 's/^/  /'
grep -q '^SQUIB-VCLIENT connected OK ' "$T/vc1.log" && grep -q 'SQUIB-VCLIENT ok lines=300' "$T/vc1.log" &&
	pass "host client through P1: CONNECT 1234 -> OK, 300 lines answered with their checksums" ||
	{ bad "vsock through P1"; vsock_why "$log" "$pid"; }
# the environment check on a guest that is fine must say so (and shows that
# its counters are there to read): a check that called a live guest stalled
# would retry real failures
if env_stall; then
	env_checked=1 # no retry for this one: the checker itself is wrong
	bad "the environment check calls a live guest stalled"
else
	grep -q "^ENVPROBE-$nprobe" "$log" && pass "the environment check sees the live guest answer" ||
		bad "the environment check's console probe got no answer from a live guest"
fi

# ---- busy: TCP rounds and a vsock client, then a Full snapshot ----
send "sqbtool tcp 10.0.0.1 5001 $BUSY_MIB 0 &"
"$SQBTOOL" vsock-client "$T/v1.sock" 1234 0 >"$T/vc_busy.log" 2>&1 &
cpid=$!
wait_for 'SQUIB-VCLIENT connected' "$T/vc_busy.log" 30 || bad "busy vsock client: $(cat "$T/vc_busy.log")"
wait_for 'SQUIB-TCP get n=2 ' "$log" 180 || bad "TCP rounds do not progress"
n_snap=$(tcp_n "$log")
t0=$(now)
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\",
	\"snapshot_type\": \"Full\"}")
t1=$(now)
[ "$c" = 204204 ] && pass "Full snapshot while TCP rounds and a vsock client run (TCP round $n_snap done)" ||
	die "snapshot: $c $(cat "$T/api.out")"
echo "SQUIB-NET-TIME pause_and_full_snapshot_ms=$(ms "$t0" "$t1")"
stop_squib
wait_for 'SQUIB-VCLIENT end' "$T/vc_busy.log" 25 &&
	pass "the host's vsock client saw its connection end when squib died ($(grep 'SQUIB-VCLIENT end' "$T/vc_busy.log"))" ||
	bad "busy vsock client did not see the end: $(tail -n 2 "$T/vc_busy.log")"
kill -9 "$cpid" 2>/dev/null
cpid=""

# ---- tap A goes away; tap B takes its place; load with overrides ----
"$IP" link del sqbA || bad "ip link del sqbA"
"$IP" addr add 10.0.0.1/24 dev sqbB && "$IP" link set sqbB up || die "address on sqbB"
rxb0=$(stat_ sqbB rx_bytes)
[ -S "$T/v1.sock" ] && echo "  (the killed squib's P1 stays behind, as docs/network.md says)"
start_squib load
t0=$(now)
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"},
	\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"sqbB\"}],
	\"vsock_override\": {\"uds_path\": \"$T/v2.sock\"}, \"resume_vm\": true}")
t1=$(now)
[ "$c" = 204 ] && pass "loaded with network_overrides onto sqbB and vsock_override onto P2" ||
	die "load: $c $(cat "$T/api.out")"
echo "SQUIB-NET-TIME load_ms=$(ms "$t0" "$t1")"
[ -S "$T/v2.sock" ] && pass "P2 is bound" || bad "no socket at P2"

wait_for 'SQUIB-TCP (put|get) n=[0-9]+ ok' "$log" 120 &&
	pass "the guest's TCP rounds go on through tap B ($(grep -E 'SQUIB-TCP (put|get) n=[0-9]+ ok' "$log" | head -n1))" ||
	bad "no TCP round ended ok after the load: $(grep 'SQUIB-TCP' "$log" | tail -n 3)"
grep 'SQUIB-TCP' "$log" | head -n 4 | sed 's/^/  /'
wait_for 'SQUIB-VAGENT conn=2 end' "$log" 30 &&
	pass "the guest's end of the cut vsock connection ended ($(grep -o 'SQUIB-VAGENT conn=2 end.*' "$log"))" ||
	bad "the agent's old connection did not end: $(grep SQUIB-VAGENT "$log")"
timeout 120 "$SQBTOOL" vsock-client "$T/v2.sock" 1234 300 >"$T/vc2.log" 2>&1
cat "$T/vc2.log" | sed 's/^/  /'
grep -q 'SQUIB-VCLIENT ok lines=300' "$T/vc2.log" &&
	pass "host client through P2: the guest's agent answers 300 lines after the load" ||
	{ bad "vsock through P2"; vsock_why "$log" "$pid"; }
timeout 10 "$SQBTOOL" vsock-client "$T/v1.sock" 1234 1 >"$T/vc3.log" 2>&1
grep -q 'SQUIB-VCLIENT error connect' "$T/vc3.log" && pass "P1 answers nobody" ||
	bad "P1 after the load: $(cat "$T/vc3.log")"
cmd 60 'ping -c 1 -W 5 10.0.0.1 | grep received' || bad "ping after load"
n_now=$(tcp_n "$log")
echo "  TCP rounds: $n_snap before the snapshot, up to ${n_now:-none} after the load"
rxb1=$(stat_ sqbB rx_bytes)
[ $((rxb1 - rxb0)) -ge $((BUSY_MIB * 1048576)) ] && pass "tap B carried the guest's traffic ($(((rxb1 - rxb0) / 1048576)) MiB)" ||
	bad "tap B rx_bytes grew by $((rxb1 - rxb0)) only"
stop_squib

# ---- two clones of the snapshot at once, each in a network namespace of
# its own with the same host address on its own tap, its own P, and squib's
# per-clone guest_mac and guest_cid (docs/network.md) ----
for k in 1 2; do
	"$IP" netns add c$k && "$IP" -n c$k link set lo up && "$IP" -n c$k tuntap add dev sqbC mode tap &&
		"$IP" -n c$k link set sqbC address "$macA" && "$IP" -n c$k addr add 10.0.0.1/24 dev sqbC &&
		"$IP" -n c$k link set sqbC up || die "namespace c$k with its tap"
	"$IP" netns exec c$k "$SQBTOOL" tcpserve 5001 >"$T/serve$k.log" 2>&1 &
	eval "spid$k=\$!"
	wait_for 'SQUIB-TCPSERVE ready' "$T/serve$k.log" 10 || die "tcpserve in c$k: $(cat "$T/serve$k.log")"
	sock=$T/c$k.sock
	mkfifo "$T/c$k.in"
	"$IP" netns exec c$k env SQB_LOG_LEVEL=${SQB_NETVSOCK_LOG:-info} squib --api-sock "$sock" <"$T/c$k.in" \
		>"$T/c$k.log" 2>&1 &
	eval "qpid$k=\$!"
	eval "exec $((3 + k))>\"\$T/c\$k.in\""
	eval "cur_pid=\$qpid$k"
	cur_log=$T/c$k.log cur_fd=$((3 + k)) cur_sock=$sock cur_ns=c$k
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
		\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"},
		\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"sqbC\"}],
		\"vsock_override\": {\"uds_path\": \"$T/p$k.sock\"}, \"resume_vm\": true,
		\"squib\": {\"network\": [{\"iface_id\": \"eth0\", \"guest_mac\": \"06:00:0a:00:00:1$k\"}],
		\"vsock\": {\"guest_cid\": $((10 + k))}}}")
	[ "$c" = 204 ] || bad "clone $k: load answered $c $(cat "$T/api.out")"
done
for k in 1 2; do
	eval "cur_pid=\$qpid$k"
	cur_log=$T/c$k.log cur_fd=$((3 + k)) cur_sock=$T/c$k.sock cur_ns=c$k
	wait_for 'SQUIB-TCP (put|get) n=[0-9]+ ok' "$T/c$k.log" 150 &&
		pass "clone $k: TCP rounds go on through its own tap in namespace c$k" ||
		{ bad "clone $k: no TCP round ok: $(grep SQUIB-TCP "$T/c$k.log" | tail -n 2)"
		  eval "vsock_why \"\$T/c\$k.log\" \"\$qpid$k\""; }
	timeout 120 "$SQBTOOL" vsock-client "$T/p$k.sock" 1234 100 >"$T/vcc$k.log" 2>&1
	grep -q 'SQUIB-VCLIENT ok lines=100' "$T/vcc$k.log" &&
		pass "clone $k: its agent answers 100 lines through its own uds_path" ||
		{ bad "clone $k vsock: $(cat "$T/vcc$k.log")"; vsock_why "$T/c$k.log" "$(eval echo \$qpid$k)"; }
	wait_for "SQUIB-VAGENT conn=[0-9]+ open cid=$((10 + k))([^0-9]|\$)" "$T/c$k.log" 10 &&
		pass "clone $k: the guest answers on its new guest_cid $((10 + k))" ||
		bad "clone $k cid: $(grep 'SQUIB-VAGENT.*open' "$T/c$k.log" | tail -n 1)"
	echo "  clone $k tap rx_bytes: $("$IP" netns exec c$k cat /sys/class/net/sqbC/statistics/rx_bytes)"
done
for k in 1 2; do
	eval "p_=\$qpid$k s_=\$spid$k"
	[ "${p_:-0}" -gt 1 ] && kill -9 "$p_" 2>/dev/null
	[ "${s_:-0}" -gt 1 ] && kill -9 "$s_" 2>/dev/null
	eval "exec $((3 + k))>&-"
	eval "qpid$k='' spid$k=''"
	"$IP" netns del c$k 2>/dev/null
done
cur_pid="" cur_log="" cur_fd="" cur_sock="" cur_ns=""
# a squib built with -DSQB_SANITIZE=ON reports into its log
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
[ $fail = 0 ] || { crash_lines; echo "== last console lines"; tail -n 30 "$log"; }
cleanup
exit $fail
