# Shell helpers for the Linux snapshot tests that run inside the test host
# (testhost_snapshot.sh, testhost_identity.sh, testhost_identity_rng.sh,
# testhost_balloon.sh; docs/testing.md).  Sourced,
# not run: the *_ctest.sh wrapper copies it next to the test as
# /test/testhost_lib.sh (direct runs find it beside the script).  Expects T
# (a scratch folder); sets fail, and pid/sock/log/fd 3 per start_squib.
fail=0
# A squib that died closes its serial FIFO: the next write to fd 3 must fail
# (and the test report it), not kill the test with SIGPIPE.
trap '' PIPE
pass() { echo "PASS: $*"; }
bad() { # the first failure also shows what the current squib last said
	echo "FAIL: $*"
	[ "$fail" = 1 ] && return 0
	fail=1
	if [ "${pid:-0}" -gt 1 ] && ! alive "$pid"; then
		echo "INFO: squib (pid $pid) is no longer running"
	fi
	if [ -n "${log:-}" ] && [ -f "$log" ]; then
		echo "INFO: the last lines of $log:"
		tail -n 30 "$log" | tr -d '\r' | sed 's/^/  | /'
	fi
}

api() { # api METHOD PATH [JSON] -> HTTP status; body in $T/api.out
	if [ -n "${3:-}" ]; then
		curl -s -o $T/api.out -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2"
	else
		curl -s -o $T/api.out -w '%{http_code}' --unix-socket "$sock" -X "$1" \
			"http://localhost$2"
	fi
}

lines() { # complete lines of FILE only: a marker half written must not count
	head -n "$( (wc -l <"$1") 2>/dev/null || echo 0)" "$1" 2>/dev/null | tr -d '\r'
}

alive() { # alive PID: running (a squib that exited stays a zombie of this
	# shell until waited for, and kill -0 still finds a zombie)
	case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) in
	'' | Z | X) return 1 ;;
	esac
}

wait_for() { # wait_for REGEX FILE SECONDS: 0 once a complete line matches;
	# 1 at the deadline, or as soon as the current squib ($pid) has exited
	# (CI once waited 300 s on a squib that had died in its guest's boot)
	wf_end=$(($(date +%s) + $3))
	while :; do
		lines "$2" | grep -qE "$1" && return 0
		if [ "${pid:-0}" -gt 1 ] && ! alive "$pid"; then
			lines "$2" | grep -qE "$1" && return 0 # its last words
			echo "INFO: squib (pid $pid) exited while this test waited for /$1/ in $2"
			return 1
		fi
		[ "$(date +%s)" -lt "$wf_end" ] || return 1
		sleep 0.2
	done
}

start_squib() { # start_squib NAME -> pid, sock, log, fd 3 = serial input
	sock=$T/$1.sock log=$T/$1.log fifo=$T/$1.in
	rm -f "$sock" "$fifo"
	mkfifo "$fifo"
	# shellcheck disable=SC2086 # SQB_SQUIB_ARGS: extra flags, word-split
	squib --api-sock "$sock" ${SQB_SQUIB_ARGS:-} <"$fifo" >"$log" 2>&1 &
	pid=$!
	exec 3>"$fifo"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$sock" ] || { bad "$1: no API socket"; cat "$log"; exit 1; }
}

stop_squib() {
	[ "$pid" -gt 1 ] && kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	exec 3>&-
}

# The console helpers of the Linux tests (a script may define its own after
# sourcing this file): cleanup (kills $pid, closes fd 3, removes $T), die,
# send (one console line of at most 60 bytes to fd 3) and cmd SECONDS
# COMMAND (runs COMMAND in the guest and waits for its end marker in $log).
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -rf "$T"
}
die() { bad "$*"; cleanup; exit 1; }
send() {
	[ ${#1} -lt 60 ] || { echo "FAIL: test bug: console line over 60 bytes: $1"; fail=1; }
	echo "$1" >&3
	sleep 0.5
}
ncmd=0
cmd() { # cmd SECONDS COMMAND: waits for its end marker
	ncmd=$((ncmd + 1))
	send "$2;echo Z$ncmd."
	wait_for "^Z$ncmd\\." "$log" "$1"
}
