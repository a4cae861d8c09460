#!/usr/bin/env bash
# Run a test inside the nested test host: a QEMU TCG virtual machine with an
# AMD CPU that has SVM and nested paging, booting the guest kit's Debian cloud
# kernel with kvm/kvm-amd loaded, so /dev/kvm inside is real KVM even where
# the machine's own /dev/kvm cannot run Linux (PVM) or is missing.
#
#   testhost/run.sh [options] SCRIPT [ARGS...]
#
# SCRIPT (any executable, usually a shell script) runs inside as /test/run
# with ARGS, cwd /test, PATH including /usr/bin where --bin programs go, and
# SQB_GUEST_DIR=/guest holding the guest kit (vmlinuz, vmlinux,
# initramfs.cpio.gz).  Its stdout/stderr go to the test host's serial console.
# Options:
#   --bin PATH       copy an executable to /usr/bin with its shared libraries
#                    (found with ldd); repeatable
#   --file SRC[:DST] copy a file into the test host (default DST /test/NAME)
#   --no-vmlinux     leave the 50 MB uncompressed PVH vmlinux out
#   --rootfs         add the guest kit's root image (/guest/rootfs.ext4, 128 MiB)
#                    and sqbtool (/guest/sqbtool) for root-on-virtio-blk tests
#   --timeout S      wall-clock limit (default 300); QEMU is killed after it
#   --log FILE       keep the full serial log there
#   --mem M --smp N  test host size (default 4G, $SQB_TESTHOST_SMP or 2)
#   --quiet          print only the test's own output (default adds progress)
#   --auto           run SCRIPT directly on this machine when its /dev/kvm is
#                    hardware KVM (not PVM); SQB_TESTHOST=always|never overrides
# Exit status: the test's own status; 124 timeout; 125 the test host failed
# (no exit marker: QEMU error, kernel panic); 2 usage.  A run whose test host
# panicked, or that failed with a nested guest's triple fault, is run again
# from a fresh boot, up to $SQB_TESTHOST_ATTEMPTS (3) attempts in all
# (SQB_TESTHOST_RETRY_TRIPLE=0: not for triple faults).  Two more, for tests
# that opt in (docs/testing.md "Environment retries"): a failed run whose test
# printed a line starting SQUIB-TESTHOST-RETRY (the test proved an emulator
# stall itself), and a test that prints SQUIB-TESTHOST-HEARTBEAT lines whose
# test host then says nothing at all for $SQB_TESTHOST_SILENCE_S (90) seconds
# (the test host itself stopped); both are run again on the same budget.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
timeout=300 mem=4G smp=${SQB_TESTHOST_SMP:-2} log="" quiet=0 vmlinux=1 auto=0 rootfs=0
bins=() files=()
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) bins+=("$2"); shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--no-vmlinux) vmlinux=0; shift ;;
	--rootfs) rootfs=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--auto) auto=1; shift ;;
	--) shift; break ;;
	-*) echo "testhost: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { sed -n '2,35p' "$0" >&2; exit 2; }
script=$1
shift
say() { [ "$quiet" = 1 ] || echo "testhost: $*" >&2; }
fail() { echo "testhost: error: $*" >&2; exit 125; }

# Hardware KVM (Intel VT-x / AMD-V) runs Linux guests directly; PVM cannot.
hw_kvm() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] &&
		grep -qwE 'vmx|svm' /proc/cpuinfo
}
mode=${SQB_TESTHOST:-}
if [ -z "$mode" ]; then
	mode=always
	[ "$auto" = 1 ] && hw_kvm && mode=never
fi
if [ "$mode" = never ]; then
	[ -f "$script" ] || fail "no such test script: $script"
	guest=$("$repo/guest/build-guest.sh" --quiet) || fail "guest kit build failed"
	direct=$(mktemp -d "${TMPDIR:-/tmp}/sqb-direct.XXXXXX")
	trap 'rm -rf "$direct"' EXIT
	for b in "${bins[@]+"${bins[@]}"}"; do ln -s "$(cd "$(dirname "$b")" && pwd)/$(basename "$b")" "$direct/"; done
	say "hardware KVM here: running $script directly (no test host)"
	set +e
	PATH=$direct:$PATH SQB_GUEST_DIR=$guest timeout -k 5 "$timeout" "$script" "$@"
	rc=$?
	[ $rc = 124 ] && echo "testhost: timed out after ${timeout}s" >&2
	exit $rc
fi

# The emulator: QEMU 10 (bookworm-backports, fetched once by scripts/qemu10.sh)
# unless SQB_TESTHOST_QEMU says otherwise: "system" for the host's own
# qemu-system-x86_64 (Debian 12: QEMU 7.2, whose nested SVM corrupted Linux
# guests in squib's tests, docs/testing.md "The test host"), or a path.
qemu_choice=${SQB_TESTHOST_QEMU:-10}
case "$qemu_choice" in
10)
	if ! qemu=$("$repo/scripts/qemu10.sh" --quiet 2>"${TMPDIR:-/tmp}/sqb-qemu10.$$"); then
		echo "testhost: WARNING: QEMU 10 is not available ($(tail -n 1 "${TMPDIR:-/tmp}/sqb-qemu10.$$"));" \
			"falling back to this host's QEMU, which is less reliable as a test host" >&2
		qemu=""
	fi
	rm -f "${TMPDIR:-/tmp}/sqb-qemu10.$$"
	;;
system) qemu="" ;;
*) qemu=$qemu_choice ;;
esac
if [ -z "$qemu" ]; then
	qemu=$(command -v qemu-system-x86_64) ||
		fail "qemu-system-x86_64 not found (package qemu-system-x86; scripts/deps.sh installs it)"
fi
[ -x "$qemu" ] || fail "SQB_TESTHOST_QEMU=$qemu is not an executable"
# The test host's own kernel has panicked inside KVM_RUN under both QEMUs
# (a fault taken with the host's GS base not yet restored after #VMEXIT:
# the emulator's nested SVM, not the test).  Such a run has no verdict, so
# it is run again from the start, up to this many attempts in all.
attempts=${SQB_TESTHOST_ATTEMPTS:-3}
[ -f "$script" ] || fail "no such test script: $script"
guest=$("$repo/guest/build-guest.sh" --quiet) || fail "guest kit build failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/sqb-testhost.XXXXXX")
qpid=""
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		sleep 1
		kill -KILL "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Base initramfs (busybox, kvm modules, init), cached next to the guest kit.
base=$guest/testhost-base.cpio.gz
kit=$(cat "$here/init.sh" "$guest/stamp" | sha256sum | cut -c1-16)
if [ ! -f "$base" ] || [ "$(cat "$base.stamp" 2>/dev/null)" != "$kit" ]; then
	say "building test-host base initramfs"
	b=$work/base
	mkdir -p "$b"/{bin,sbin,usr/bin,usr/sbin,lib/modules,dev,proc,sys,tmp,run,root,etc,test}
	cp "$guest/busybox" "$b/bin/busybox"
	cp "$guest"/modules/*.ko "$b/lib/modules/"
	install -m 0755 "$here/init.sh" "$b/init"
	echo "root:x:0:0:root:/root:/bin/sh" >"$b/etc/passwd"
	(cd "$b" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) >"$base.tmp.$$"
	mv "$base.tmp.$$" "$base"
	echo "$kit" >"$base.stamp"
fi

# Payload (uncompressed cpio, put first: the kernel unpacks both in order;
# after a compressed archive it would not find an uncompressed one):
# the test, its arguments, programs with their libraries, the guest kit.
p=$work/payload
mkdir -p "$p/test" "$p/usr/bin" "$p/guest"
install -m 0755 "$script" "$p/test/run"
: >"$p/test/args"
for a in "$@"; do printf '%s\n' "$a" >>"$p/test/args"; done
for b in "${bins[@]+"${bins[@]}"}"; do
	[ -x "$b" ] || fail "--bin $b is not an executable"
	cp "$b" "$p/usr/bin/"
	# ldd lines: "libx.so => /path (addr)" or "/lib64/ld-linux... (addr)"
	for lib in $(ldd "$b" 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}'); do
		[ -e "$p$lib" ] && continue
		mkdir -p "$p$(dirname "$lib")"
		cp -L "$lib" "$p$lib"
	done
done
for f in "${files[@]+"${files[@]}"}"; do
	src=${f%%:*}
	dst=/test/$(basename "$src")
	[ "$src" != "$f" ] && dst=${f#*:}
	[ -e "$src" ] || fail "--file $src does not exist"
	mkdir -p "$p$(dirname "$dst")"
	cp -rL "$src" "$p$dst"
done
cp "$guest/vmlinuz" "$guest/initramfs.cpio.gz" "$p/guest/"
[ "$vmlinux" = 1 ] && cp "$guest/vmlinux" "$p/guest/"
[ "$rootfs" = 1 ] && cp "$guest/rootfs.ext4" "$guest/sqbtool" "$p/guest/"
(cd "$p" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) \
	>"$work/payload.cpio"
cat "$work/payload.cpio" "$base" >"$work/initrd"

[ -n "$log" ] || log=$work/serial.log
# If run.sh itself is killed (ctest's own timeout), QEMU dies with it.
pdeath=()
setpriv --help 2>/dev/null | grep -q -- --pdeathsig && pdeath=(setpriv --pdeathsig KILL)
qemu_version=$("$qemu" --version 2>/dev/null | head -n 1 | sed 's/ (.*//')

# Stream the test's output while it runs: the console from the begin marker
# on, complete lines only, markers and heartbeats hidden.
stream() {
	local size nl
	size=$(stat -c %s "$log" 2>/dev/null || echo 0)
	[ "$size" -gt "$shown" ] || return 0
	tail -c +$((shown + 1)) "$log" | head -c $((size - shown)) >"$work/chunk" || true # tail may see EPIPE: the log grows
	nl=$(tr -cd '\n' <"$work/chunk" | wc -c)
	if [ "${1:-}" = final ]; then
		cp "$work/chunk" "$work/lines"
	elif [ "$nl" -gt 0 ]; then
		head -n "$nl" "$work/chunk" >"$work/lines" # complete lines only
	else
		return 0
	fi
	shown=$((shown + $(wc -c <"$work/lines")))
	tr -d '\r' <"$work/lines" | awk -v on="$streaming" '
		/^SQUIB-TESTHOST-BEGIN/ { on = 1; next }
		/^SQUIB-TESTHOST-EXIT=/ { on = 0; next }
		/^SQUIB-TESTHOST-HEARTBEAT/ { next }
		on { print }
		END { print on > "/dev/stderr" }' 2>"$work/stream.state"
	streaming=$(cat "$work/stream.state")
}

# A test that prints heartbeats promises a console line at least every few
# seconds for as long as it runs; this long a silence after the first one
# means the test host itself stopped (its shell loop no longer runs).
silence=${SQB_TESTHOST_SILENCE_S:-90}

# One boot of the test host: sets timed_out, silent, exitline, begin and qemu_rc.
boot() {
	: >"$log"
	say "booting test host ($qemu_version TCG, $smp vCPUs, $mem, timeout ${timeout}s), log $log"
	start=$(date +%s.%N)
	"${pdeath[@]}" "$qemu" -accel tcg -cpu EPYC-v3,+svm,+npt -m "$mem" -smp "$smp" \
		-nodefaults -no-user-config -display none -no-reboot \
		-serial "file:$log" \
		-kernel "$guest/vmlinuz" -initrd "$work/initrd" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1 reboot=k" \
		>"$work/qemu.out" 2>&1 &
	qpid=$!
	local deadline=$(($(date +%s) + timeout)) size last_size=-1 last_growth hb=0 t
	timed_out=0 silent=0 shown=0 streaming=0
	last_growth=$(date +%s)
	while kill -0 "$qpid" 2>/dev/null; do
		stream
		t=$(date +%s)
		if [ "$t" -ge "$deadline" ]; then
			timed_out=1
			break
		fi
		size=$(stat -c %s "$log" 2>/dev/null || echo 0)
		if [ "$size" != "$last_size" ]; then
			last_size=$size last_growth=$t
			[ "$hb" = 1 ] || ! grep -q '^SQUIB-TESTHOST-HEARTBEAT' "$log" || hb=1
		elif [ "$hb" = 1 ] && [ $((t - last_growth)) -ge "$silence" ]; then
			silent=1
			break
		fi
		grep -q '^SQUIB-TESTHOST-EXIT=' "$log" 2>/dev/null && sleep 2 && break
		sleep 0.5
	done
	qemu_rc=0
	if kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		sleep 1
		kill -KILL "$qpid" 2>/dev/null || true
	fi
	wait "$qpid" 2>/dev/null || qemu_rc=$?
	qpid=""
	local end
	end=$(date +%s.%N)
	stream final
	begin=$(tr -d '\r' <"$log" | grep -m1 '^SQUIB-TESTHOST-BEGIN' || true)
	exitline=$(tr -d '\r' <"$log" | grep -m1 '^SQUIB-TESTHOST-EXIT=' || true)
	say "wall $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s; ${begin:-no begin marker}; ${exitline:-no exit marker}"
}

attempt=1
while :; do
	boot
	# A panic of the test host's own kernel (QEMU ended by itself, no exit
	# marker, the panic on its console) is the emulator's failure: no verdict.
	# (grep reads the log itself: under pipefail, "tr <log | grep -q" fails
	# whenever grep stops at a match before tr has written the rest, which
	# is how session 5's CI missed a triple fault and gave no second run.)
	if [ -z "$exitline" ] && [ "$timed_out" = 0 ] &&
		grep -q 'Kernel panic - not syncing' "$log"; then
		echo "testhost: THE TEST HOST'S OWN KERNEL PANICKED (attempt $attempt of $attempts; the" \
			"emulator's nested SVM, not the test: docs/testing.md \"The test host\"):" >&2
		tr -d '\r' <"$log" | grep -E -B2 -A12 '\] (BUG|Oops|general protection|stack guard|Kernel panic)' |
			head -n 40 | sed 's/^/testhost:   /' >&2
		if [ "$attempt" -lt "$attempts" ]; then
			attempt=$((attempt + 1))
			echo "testhost: running the test again from the start (attempt $attempt of $attempts)" >&2
			continue
		fi
		echo "testhost: the test host panicked in all $attempts attempts; no verdict" >&2
		exit 125
	fi
	# A test that prints heartbeats, whose test host then went silent (no
	# exit marker, not a single console byte for $silence s): the test host's
	# own kernel or the emulator stopped, nothing the test's programs can do
	# (they are ordinary processes in it).  No verdict; run again.
	if [ "$silent" = 1 ] && [ -z "$exitline" ]; then
		echo "testhost: THE TEST HOST WENT SILENT: no console line for ${silence}s from a test" \
			"that prints a heartbeat every few seconds (attempt $attempt of $attempts; the test" \
			"host itself stopped: docs/testing.md \"Environment retries\"); its last console lines:" >&2
		tr -d '\r' <"$log" | tail -n 15 | sed 's/^/testhost:   /' >&2
		if [ "$attempt" -lt "$attempts" ]; then
			attempt=$((attempt + 1))
			echo "testhost: running the test again from the start (attempt $attempt of $attempts)" >&2
			continue
		fi
		echo "testhost: the test host went silent in all $attempts attempts; no verdict" >&2
		exit 125
	fi
	# A nested Linux guest that triple-faulted in a failed run: under this
	# emulator's nested SVM, guests triple-fault at random, fresh boots with
	# no snapshot included (docs/testing.md "Known failures"), so such a run
	# is run again too.  A guest that triple-faults every time still fails.
	rc=${exitline#SQUIB-TESTHOST-EXIT=}
	rc=${rc%% *}
	if [ -n "$exitline" ] && [ "$rc" != 0 ] && [ "${SQB_TESTHOST_RETRY_TRIPLE:-1}" = 1 ] &&
		grep -q 'guest shutdown (triple fault)' "$log"; then
		echo "testhost: A NESTED GUEST TRIPLE-FAULTED in this failed run (attempt $attempt of" \
			"$attempts; fresh Linux boots triple-fault at random under this emulator too:" \
			"docs/testing.md \"Known failures\"); the failure is above" >&2
		if [ "$attempt" -lt "$attempts" ]; then
			attempt=$((attempt + 1))
			echo "testhost: running the test again from the start (attempt $attempt of $attempts)" >&2
			continue
		fi
		echo "testhost: a nested guest triple-faulted in all $attempts attempts: the test fails" >&2
		break
	fi
	# A failed run whose test printed SQUIB-TESTHOST-RETRY: the test itself
	# checked the evidence of an emulator stall (its own header says which)
	# before it gave up; any other failure of such a test is its verdict.
	if [ -n "$exitline" ] && [ "$rc" != 0 ] && grep -q '^SQUIB-TESTHOST-RETRY' "$log"; then
		echo "testhost: THE TEST REPORTED AN EMULATOR STALL (attempt $attempt of $attempts):" >&2
		tr -d '\r' <"$log" | grep '^SQUIB-TESTHOST-RETRY' | head -n 3 | sed 's/^/testhost:   /' >&2
		if [ "$attempt" -lt "$attempts" ]; then
			attempt=$((attempt + 1))
			echo "testhost: running the test again from the start (attempt $attempt of $attempts)" >&2
			continue
		fi
		echo "testhost: the test reported an emulator stall in all $attempts attempts: the test fails" >&2
	fi
	break
done
if [ "$timed_out" = 1 ] && [ -z "$exitline" ]; then
	echo "testhost: timed out after ${timeout}s; last console lines:" >&2
	tail -n 30 "$log" >&2
	exit 124
fi
if [ -z "$exitline" ]; then
	echo "testhost: the test host ended without an exit marker (QEMU status $qemu_rc)" >&2
	cat "$work/qemu.out" >&2
	tail -n 40 "$log" >&2
	exit 125
fi
exit "$rc" # parsed from the exit marker in the attempt loop
