#!/bin/sh
# Runs inside the nested test host (testhost/run.sh --bin squib --bin curl):
# squib boots the guest kit's Debian cloud kernel through the Firecracker API
# -- bzImage with 1 vCPU, PVH vmlinux with 2 vCPUs -- to SQUIB-READY, runs a
# command in the guest over the serial console, pauses and resumes it (the
# guest's counter stops, then continues without a gap) and shuts it down with
# SendCtrlAltDel.  Prints PASS/FAIL lines and SQUIB-BOOT-TIME lines.
# Runs directly (testhost/run.sh --auto) where /dev/kvm is hardware KVM.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
now() { read -r t _ </proc/uptime; echo "$t"; }

api() { # api METHOD PATH [JSON] -> prints the HTTP status code
	if [ -n "${3:-}" ]; then
		curl -s -o $T/api.out -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2"
	else
		curl -s -o $T/api.out -w '%{http_code}' --unix-socket "$sock" -X "$1" \
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

counters() { grep -o 'SQUIB-COUNTER [0-9]*' "$log" | awk '{print $2}'; }

run_case() { # run_case NAME KERNEL VCPUS
	name=$1 kernel=$2 vcpus=$3
	sock=$T/$name.sock log=$T/$name.log fifo=$T/$name.in
	rm -f "$sock" "$fifo"
	mkfifo "$fifo"
	t0=$(now)
	squib --api-sock "$sock" <"$fifo" >"$log" 2>&1 &
	pid=$!
	exec 3>"$fifo"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$sock" ] || { bad "$name: squib did not create its API socket"; cat "$log"; return; }

	args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux"
	args="$args i8042.dumbkbd quiet sqb.run=counter:200+keeper:16:9+irqs:3"
	c1=$(api PUT /machine-config "{\"vcpu_count\": $vcpus, \"mem_size_mib\": 256}")
	c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$kernel\",
		\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
	t1=$(now)
	c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
	[ "$c1$c2$c3" = 204204204 ] && pass "$name: API configure + InstanceStart" ||
		{ bad "$name: API answered $c1 $c2 $c3: $(cat $T/api.out)"; }

	if wait_for 'SQUIB-READY' "$log" 120; then
		t2=$(now)
		pass "$name: guest reached SQUIB-READY"
		grep -m1 SQUIB-READY "$log"
		echo "SQUIB-BOOT-TIME $name process_to_ready=$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}') start_to_ready=$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')"
	else
		bad "$name: no SQUIB-READY within 120 s"
		tail -n 30 "$log"
		kill -9 "$pid" 2>/dev/null
		exec 3>&-
		return
	fi
	grep -q "SQUIB-READY.*cpus=$vcpus " "$log" && pass "$name: guest sees $vcpus vCPUs" ||
		bad "$name: guest does not see $vcpus vCPUs"

	echo 'echo answer-$((6 * 7))' >&3
	wait_for '^answer-42' "$log" 30 && wait_for 'SQUIB-DONE rc=0' "$log" 10 &&
		pass "$name: serial command ran in the guest" || bad "$name: serial command"

	wait_for 'SQUIB-COUNTER 3' "$log" 30 || bad "$name: counter not running"
	c=$(api PATCH /vm '{"state": "Paused"}')
	[ "$c" = 204 ] || bad "$name: pause answered $c $(cat $T/api.out)"
	sleep 0.5
	n1=$(counters | wc -l)
	sleep 2
	n2=$(counters | wc -l)
	[ "$n1" = "$n2" ] && pass "$name: counter stopped while paused" ||
		bad "$name: counter moved while paused ($n1 -> $n2)"
	c=$(api PATCH /vm '{"state": "Resumed"}')
	[ "$c" = 204 ] || bad "$name: resume answered $c $(cat $T/api.out)"
	wait_for "SQUIB-COUNTER $((n2 + 2))([^0-9]|\$)" "$log" 30 &&
		pass "$name: counter continues after resume" || bad "$name: counter after resume"
	counters | awk 'NR > 1 && $1 != prev + 1 { gap = 1 } { prev = $1 } END { exit gap }' &&
		pass "$name: counter has no gap" || bad "$name: counter has a gap"
	# The keeper's 16 MiB pattern in anonymous memory survived pause/resume.
	# (it fills its pattern first: on a loaded host that takes a while)
	wait_for 'SQUIB-KEEPER ready' "$log" 90 || true
	kpid=$(sed -n 's/.*SQUIB-KEEPER ready pid=\([0-9]*\).*/\1/p' "$log" | awk 'NR == 1')
	if [ -n "$kpid" ]; then
		k0=$(grep -c 'SQUIB-KEEPER ok gen=' "$log")
		echo "kill -USR1 $kpid" >&3
		wait_for "SQUIB-KEEPER ok gen=$((k0 + 1))([^0-9]|\$)" "$log" 30 &&
			! grep -q 'SQUIB-KEEPER bad' "$log" &&
			pass "$name: keeper's RAM pattern intact" || bad "$name: keeper check"
	else
		bad "$name: keeper did not start"
	fi

	c=$(api PUT /actions '{"action_type": "SendCtrlAltDel"}')
	[ "$c" = 204 ] || bad "$name: SendCtrlAltDel answered $c $(cat $T/api.out)"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then
		bad "$name: squib still running 20 s after SendCtrlAltDel"
		grep -vE 'SQUIB-(COUNTER|IRQS|KEEPER ok)' "$log" | tail -n 12
		grep SQUIB-IRQS "$log" | tail -n 1
		kill -9 "$pid"
	else
		wait "$pid"
		rc=$?
		grep -q SQUIB-CTRL-ALT-DEL "$log" && [ $rc = 0 ] &&
			pass "$name: SendCtrlAltDel shut the guest down (squib exit 0)" ||
			{ bad "$name: shutdown (squib exit $rc)"; tail -n 20 "$log"; }
	fi
	exec 3>&-
}

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
run_case bz1 $G/vmlinuz 1
[ -f $G/vmlinux ] && run_case pvh2 $G/vmlinux 2
rm -rf "$T"
exit $fail
