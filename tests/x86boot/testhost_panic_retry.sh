#!/bin/sh
# x86boot.testhost_panic_retry: when the test host's own kernel panics (the
# emulator's nested SVM has done this inside KVM_RUN, docs/testing.md "The
# test host"), testhost/run.sh reports it, runs the test again from a fresh
# boot, and after the last attempt exits 125 (no verdict), never 0.  The
# panic here is a real one: the test writes 'c' to /proc/sysrq-trigger.
# With SQUIB and FAULT_ELF (tests/guests' fault.elf) as arguments, also: a
# failed run in which a nested guest triple-faulted (a real one: squib boots
# fault.elf on the test host's KVM) is run again, and the last attempt's
# failure is the test's own status (1), never 0 or 125.  Also the two
# environment retries of run.sh that a test opts into (see below).
#   testhost_panic_retry.sh [SQUIB FAULT_ELF]
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../../testhost/run.sh
[ -f "$run" ] || { echo "skip: no testhost/run.sh" >&2; exit 77; }
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "skip: no qemu-system-x86_64 for the test host" >&2; exit 77; }
t=$(mktemp -d "${TMPDIR:-/tmp}/sqb-panic.XXXXXX")
trap 'rm -rf "$t"' EXIT
cat >"$t/panic.sh" <<'IN'
#!/bin/sh
echo "SQB-PANIC-TEST: panicking the test host now"
echo 1 >/proc/sys/kernel/sysrq
echo c >/proc/sysrq-trigger
echo "SQB-PANIC-TEST: still alive after the sysrq crash"
IN
SQB_TESTHOST=always SQB_TESTHOST_ATTEMPTS=2 bash "$run" --no-vmlinux --timeout 200 "$t/panic.sh" >"$t/out" 2>&1
rc=$?
cat "$t/out"
fail=0
check() { # check DESCRIPTION COMMAND...
	d=$1; shift
	if "$@"; then echo "PASS: $d"; else echo "FAIL: $d"; fail=1; fi
}
check "exit status 125 (no verdict), got $rc" [ "$rc" = 125 ]
check "two boots of the test host" [ "$(grep -c '^testhost: booting test host' "$t/out")" = 2 ]
check "each attempt reports the test host's panic" \
	[ "$(grep -c "THE TEST HOST'S OWN KERNEL PANICKED (attempt [12] of 2" "$t/out")" = 2 ]
check "the second attempt is announced" grep -q 'running the test again from the start (attempt 2 of 2)' "$t/out"
check "the final message says there is no verdict" grep -q 'panicked in all 2 attempts; no verdict' "$t/out"
# (the prefix only: the kernel's panic lines may land inside the echoed
# line on the console, as in one CI run of session 15)
check "the test ran in both attempts" [ "$(grep -c '^SQB-PANIC-TEST: ' "$t/out")" = 2 ]
check "nothing ran after the panic" sh -c "! grep -q 'still alive' '$t/out'"

# The environment retries a test opts into (docs/testing.md "Environment
# retries"): a failed run that printed SQUIB-TESTHOST-RETRY runs again and the
# last attempt's status is the test's own (3); a test that printed a heartbeat
# and then nothing for SQB_TESTHOST_SILENCE_S runs again and ends in 125.
cat >"$t/retry.sh" <<'IN'
#!/bin/sh
echo "SQB-RETRY-TEST: failing with the marker"
echo "SQUIB-TESTHOST-RETRY emulator stall: made up by the test"
exit 3
IN
SQB_TESTHOST=always SQB_TESTHOST_ATTEMPTS=2 bash "$run" --no-vmlinux --timeout 200 "$t/retry.sh" >"$t/out3" 2>&1
rc=$?
cat "$t/out3"
check "retry marker: exit status 3 (the test's own failure), got $rc" [ "$rc" = 3 ]
check "retry marker: two boots of the test host" [ "$(grep -c '^testhost: booting test host' "$t/out3")" = 2 ]
check "retry marker: each attempt is reported" \
	[ "$(grep -c 'THE TEST REPORTED AN EMULATOR STALL (attempt [12] of 2' "$t/out3")" = 2 ]
check "retry marker: the final message says the test fails" \
	grep -q 'reported an emulator stall in all 2 attempts: the test fails' "$t/out3"
cat >"$t/silent.sh" <<'IN'
#!/bin/sh
echo "SQUIB-TESTHOST-HEARTBEAT"
echo "SQB-SILENT-TEST: silent from now on"
sleep 150
echo "SQB-SILENT-TEST: still running after the silence"
IN
SQB_TESTHOST=always SQB_TESTHOST_ATTEMPTS=2 SQB_TESTHOST_SILENCE_S=10 bash "$run" --no-vmlinux --timeout 200 \
	"$t/silent.sh" >"$t/out4" 2>&1
rc=$?
cat "$t/out4"
check "silence: exit status 125 (no verdict), got $rc" [ "$rc" = 125 ]
check "silence: two boots of the test host" [ "$(grep -c '^testhost: booting test host' "$t/out4")" = 2 ]
check "silence: each attempt is reported" \
	[ "$(grep -c 'THE TEST HOST WENT SILENT: no console line for 10s' "$t/out4")" = 2 ]
check "silence: the heartbeat is hidden" sh -c "! grep -q '^SQUIB-TESTHOST-HEARTBEAT' '$t/out4'"
check "silence: nothing ran after the silence was seen" sh -c "! grep -q 'still running' '$t/out4'"

squib=${1:-} fault=${2:-}
if [ -x "$squib" ] && [ -f "$fault" ]; then
	cat >"$t/triple.sh" <<'IN'
#!/bin/sh
printf '{"boot-source":{"kernel_image_path":"/test/fault.elf"},"machine-config":{"vcpu_count":1,"mem_size_mib":16}}' >/tmp/cfg.json
squib --no-api --config-file /tmp/cfg.json >/tmp/squib.out 2>&1
rc=$?
cat /tmp/squib.out
echo "SQB-TRIPLE-TEST: squib exited $rc"
# 100 KB after the triple fault's line, more than a pipe holds: run.sh must
# still see the line (session 5's "tr <log | grep -q" under pipefail did not)
seq 1 20000 | sed 's/^/SQB-TRIPLE-TEST filler /' | tail -c 102400 | sed 1d
[ "$rc" = 0 ]
IN
	SQB_TESTHOST=always SQB_TESTHOST_ATTEMPTS=2 bash "$run" --no-vmlinux --timeout 200 \
		--bin "$squib" --file "$fault:/test/fault.elf" "$t/triple.sh" >"$t/out2" 2>&1
	rc=$?
	grep -v "SQB-TRIPLE-TEST filler" "$t/out2"
	check "triple fault: exit status 1 (the test's own failure), got $rc" [ "$rc" = 1 ]
	check "triple fault: squib reported the guest's triple fault" \
		grep -q 'guest shutdown (triple fault)' "$t/out2"
	check "triple fault: two boots of the test host" \
		[ "$(grep -c '^testhost: booting test host' "$t/out2")" = 2 ]
	check "triple fault: each attempt is reported" \
		[ "$(grep -c 'A NESTED GUEST TRIPLE-FAULTED in this failed run (attempt [12] of 2' "$t/out2")" = 2 ]
	check "triple fault: the filler after it reached the console" \
		grep -q 'SQB-TRIPLE-TEST filler 20000' "$t/out2"
	check "triple fault: the final message says the test fails" \
		grep -q 'triple-faulted in all 2 attempts: the test fails' "$t/out2"
else
	echo "INFO: no squib or fault.elf given: the triple-fault retry is not checked"
fi
exit $fail
