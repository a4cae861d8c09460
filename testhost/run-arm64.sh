#!/usr/bin/env bash
# Run a test inside the arm64 test host: qemu-system-aarch64 (TCG) with
# -M virt,virtualization=on,gic-version=3 -cpu max, booting Debian's arm64
# cloud kernel (testhost/arm64-kit.sh) at EL2, so /dev/kvm inside is real
# arm64 KVM (VHE, vGICv3).  Same interface as testhost/run.sh: command in,
# exit status and log out.
#
#   testhost/run-arm64.sh [options] SCRIPT [ARGS...]
#
# SCRIPT runs inside as /test/run with ARGS, cwd /test, SQB_GUEST_DIR=/guest
# holding the kit's Image.  Options:
#   --bin PATH       copy an arm64 executable to /usr/bin with the shared
#                    libraries its NEEDED entries name (aarch64 readelf);
#                    repeatable
#   --libdir DIR     search DIR too for those libraries (before the host's
#                    arm64 ones); repeatable
#   --file SRC[:DST] copy a file in (default DST /test/NAME); repeatable
#   --no-image       leave the 27 MB kernel Image out of /guest
#   --out-disk FILE  attach FILE (a raw file on this host, made by the
#                    caller) as a virtio-blk disk: the way large files come
#                    out (the test writes e.g. a tar to it; /test/out-disk
#                    says it is there; the test host's kernel has virtio,
#                    virtio_mmio and virtio_blk as modules, which the test
#                    loads itself)
#   --timeout S      wall-clock limit (default 300); QEMU is killed after it
#   --log FILE       keep the full serial log there
#   --mem M --smp N  test host size (default 2G, 2)
#   --quiet          print only the test's own output
# Exit status: the test's own; 124 timeout; 125 the test host failed (no
# exit marker, QEMU missing); 2 usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
timeout=300 mem=2G smp=2 log="" quiet=0 image=1 outdisk=""
bins=() files=() xlibdirs=""
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) bins+=("$2"); shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--libdir) xlibdirs="$xlibdirs $2"; shift 2 ;;
	--no-image) image=0; shift ;;
	--out-disk) outdisk=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--) shift; break ;;
	-*) echo "testhost-arm64: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { sed -n '2,30p' "$0" >&2; exit 2; }
script=$1
shift
say() { [ "$quiet" = 1 ] || echo "testhost-arm64: $*" >&2; }
fail() { echo "testhost-arm64: error: $*" >&2; exit 125; }

command -v qemu-system-aarch64 >/dev/null ||
	fail "qemu-system-aarch64 not found (package qemu-system-arm)"
command -v aarch64-linux-gnu-readelf >/dev/null ||
	fail "aarch64-linux-gnu-readelf not found (scripts/build-arm64.sh installs the cross tools)"
[ -f "$script" ] || fail "no such test script: $script"
kit=$("$here/arm64-kit.sh" --quiet) || fail "arm64 kit (kernel, busybox) unavailable"

work=$(mktemp -d "${TMPDIR:-/tmp}/sqb-testhost-arm64.XXXXXX")
qpid=""
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -KILL "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Base initramfs (busybox + init), cached beside the kit.
base=$kit/testhost-base.cpio.gz
stamp=$(cat "$here/init-arm64.sh" "$kit/stamp" | sha256sum | cut -c1-16)
if [ ! -f "$base" ] || [ "$(cat "$base.stamp" 2>/dev/null)" != "$stamp" ]; then
	say "building arm64 test-host base initramfs"
	b=$work/base
	mkdir -p "$b"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,test}
	cp "$kit/busybox" "$b/bin/busybox"
	install -m 0755 "$here/init-arm64.sh" "$b/init"
	echo "root:x:0:0:root:/root:/bin/sh" >"$b/etc/passwd"
	(cd "$b" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) >"$base.tmp.$$"
	mv "$base.tmp.$$" "$base"
	echo "$stamp" >"$base.stamp"
fi

# Payload: the test, its arguments, programs with their arm64 libraries.
p=$work/payload
mkdir -p "$p/test" "$p/usr/bin" "$p/guest" "$p/lib/aarch64-linux-gnu"
install -m 0755 "$script" "$p/test/run"
: >"$p/test/args"
for a in "$@"; do printf '%s\n' "$a" >>"$p/test/args"; done
libdirs="$xlibdirs /usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib"
addlibs() { # NEEDED entries, recursively, into /lib/aarch64-linux-gnu
	local lib d
	for lib in $(aarch64-linux-gnu-readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		[ -e "$p/lib/aarch64-linux-gnu/$lib" ] && continue
		for d in $libdirs; do
			if [ -e "$d/$lib" ]; then
				cp -L "$d/$lib" "$p/lib/aarch64-linux-gnu/"
				addlibs "$d/$lib"
				break
			fi
		done
		[ -e "$p/lib/aarch64-linux-gnu/$lib" ] || fail "no arm64 $lib for $1"
	done
}
for b in "${bins[@]+"${bins[@]}"}"; do
	[ -x "$b" ] || fail "--bin $b is not an executable"
	cp "$b" "$p/usr/bin/"
	addlibs "$b"
done
if [ ${#bins[@]} -gt 0 ]; then
	for d in /lib /usr/aarch64-linux-gnu/lib; do
		[ -e "$d/ld-linux-aarch64.so.1" ] && { cp -L "$d/ld-linux-aarch64.so.1" "$p/lib/"; break; }
	done
fi
for f in "${files[@]+"${files[@]}"}"; do
	src=${f%%:*}
	dst=/test/$(basename "$src")
	[ "$src" != "$f" ] && dst=${f#*:}
	[ -e "$src" ] || fail "--file $src does not exist"
	mkdir -p "$p$(dirname "$dst")"
	cp -rL "$src" "$p$dst"
done
[ "$image" = 1 ] && cp "$kit/Image" "$p/guest/"
outdev=()
if [ -n "$outdisk" ]; then
	[ -f "$outdisk" ] || fail "--out-disk $outdisk is not a file"
	echo "virtio-blk" >"$p/test/out-disk"
	# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
	outdev=(-drive "if=none,id=out,format=raw,file=$outdisk" -device virtio-blk-device,drive=out)
fi
(cd "$p" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) \
	>"$work/payload.cpio"
cat "$work/payload.cpio" "$base" >"$work/initrd"

[ -n "$log" ] || log=$work/serial.log
: >"$log"
say "booting arm64 test host (TCG, -cpu max, $smp vCPUs, $mem, timeout ${timeout}s), log $log"
start=$(date +%s.%N)
pdeath=()
setpriv --help 2>/dev/null | grep -q -- --pdeathsig && pdeath=(setpriv --pdeathsig KILL)
# pauth-impdef: QEMU's cheap pointer-authentication hash (the architected
# QARMA one dominates TCG time); the kernel does not care which it is.
"${pdeath[@]}" qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 \
	-cpu max,pauth-impdef=on -accel tcg,thread=multi -m "$mem" -smp "$smp" \
	-nodefaults -no-user-config -display none -no-reboot \
	-serial "file:$log" \
	-kernel "$kit/Image" -initrd "$work/initrd" "${outdev[@]+"${outdev[@]}"}" \
	-append "console=ttyAMA0 quiet loglevel=3 panic=-1" \
	>"$work/qemu.out" 2>&1 &
qpid=$!

deadline=$(($(date +%s) + timeout))
timed_out=0 shown=0
show() { # the console since last time, markers hidden
	local size
	size=$(stat -c %s "$log" 2>/dev/null || echo 0)
	[ "$size" -gt "$shown" ] || return 0
	tail -c +$((shown + 1)) "$log" | head -c $((size - shown)) | tr -d '\r' |
		grep -v '^SQUIB-TESTHOST-' >&2 || true
	shown=$size
}
while kill -0 "$qpid" 2>/dev/null; do
	show
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		break
	fi
	grep -q '^SQUIB-TESTHOST-EXIT=' "$log" 2>/dev/null && sleep 1 && break
	sleep 0.5
done
kill -KILL "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
qpid=""
show
end=$(date +%s.%N)
begin=$(tr -d '\r' <"$log" | grep -m1 '^SQUIB-TESTHOST-BEGIN' || true)
exitline=$(tr -d '\r' <"$log" | grep -m1 '^SQUIB-TESTHOST-EXIT=' || true)
say "wall $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s; ${begin:-no begin marker}; ${exitline:-no exit marker}"
if [ -z "$exitline" ]; then
	if [ "$timed_out" = 1 ]; then
		echo "testhost-arm64: timed out after ${timeout}s" >&2
		exit 124
	fi
	echo "testhost-arm64: the test host ended without an exit marker" >&2
	cat "$work/qemu.out" >&2
	exit 125
fi
rc=${exitline#SQUIB-TESTHOST-EXIT=}
exit "${rc%% *}"
