#!/usr/bin/env bash
# Build squib's default Linux guest from Debian packages: the cloud kernel
# (linux-image-cloud-amd64, resolved to its versioned package with apt-cache)
# and busybox-static, downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x` -- nothing is installed on the host.  Output, cached until
# the package versions or the kit's sources change:
#
#   CACHE/guest/vmlinuz            bzImage (boot protocol, 64-bit entry)
#   CACHE/guest/vmlinux            the same kernel uncompressed (PVH ELF)
#   CACHE/guest/initramfs.cpio.gz  busybox + sqbtool + guest/init.sh as /init
#   CACHE/guest/modules/           kvm.ko kvm-amd.ko irqbypass.ko (test host)
#   CACHE/guest/busybox            static busybox (the test host's initramfs uses it)
#   CACHE/guest/release            kernel release, e.g. 6.1.0-56-cloud-amd64
#
# Usage: guest/build-guest.sh [--cache DIR] [--force] [--quiet]
#   CACHE defaults to $SQB_GUEST_CACHE or <repo>/guest-cache.
# Prints the output directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${SQB_GUEST_CACHE:-$repo/guest-cache}
force=0
quiet=0
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=$2; shift 2 ;;
	--force) force=1; shift ;;
	--quiet) quiet=1; shift ;;
	*) echo "usage: $0 [--cache DIR] [--force] [--quiet]" >&2; exit 2 ;;
	esac
done
say() { [ "$quiet" = 1 ] || echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg-deb cpio gzip cc flock od lz4 xz; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the build deps)"
done
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)
out=$cache/guest

# One builder at a time; the others wait and then find the cache fresh.
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for $cache/.lock"

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || die "apt-cache cannot resolve linux-image-cloud-amd64 (run apt-get update)"
kver=$(candidate "$kpkg")
bbver=$(candidate busybox-static)
[ -n "$kver" ] && [ "$kver" != "(none)" ] || die "no candidate version for $kpkg"
[ -n "$bbver" ] && [ "$bbver" != "(none)" ] || die "no candidate version for busybox-static"
kit=$(cat "$here/init.sh" "$here/sqbtool.c" "$here/build-guest.sh" | sha256sum | cut -c1-16)
key="$kpkg=$kver busybox-static=$bbver kit=$kit"

if [ "$force" = 0 ] && [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ]; then
	say "cached: $key"
	echo "$out"
	exit 0
fi

# Debian file names encode the version with ':' as '%3a'.
debfile() { echo "$cache/debs/${1}_${2//:/%3a}_amd64.deb"; }
kdeb=$(debfile "$kpkg" "$kver")
bbdeb=$(debfile busybox-static "$bbver")
say "downloading what is not cached yet into $cache/debs"
[ -f "$kdeb" ] || (cd "$cache/debs" && apt-get download -q "$kpkg=$kver") >&2 ||
	die "apt-get download $kpkg failed"
[ -f "$bbdeb" ] || (cd "$cache/debs" && apt-get download -q "busybox-static=$bbver") >&2 ||
	die "apt-get download busybox-static failed"
[ -f "$kdeb" ] || die "expected $kdeb after download"
[ -f "$bbdeb" ] || die "expected $bbdeb after download"

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "unpacking $kpkg $kver and busybox-static $bbver"
dpkg-deb -x "$kdeb" "$work/k"
dpkg-deb -x "$bbdeb" "$work/bb"
vmlinuz=$(ls "$work"/k/boot/vmlinuz-* | head -n1)
release=${vmlinuz##*/vmlinuz-}
mkdir -p "$work/out/modules"
cp "$vmlinuz" "$work/out/vmlinuz"
cp "$work/bb/bin/busybox" "$work/out/busybox"
echo "$release" >"$work/out/release"
for m in arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko virt/lib/irqbypass.ko; do
	cp "$work/k/lib/modules/$release/kernel/$m" "$work/out/modules/" ||
		die "module $m missing from $kpkg"
done

# vmlinux: the bzImage's payload (setup header payload_offset/length,
# boot protocol 2.08+) decompressed.  It is the stripped ELF with its PVH note.
rd() { od -An -t "u$2" -j "$1" -N "$2" "$vmlinuz" | tr -d ' \n'; }
sects=$(rd $((0x1f1)) 1)
[ "$sects" = 0 ] && sects=4
start=$(((sects + 1) * 512 + $(rd $((0x248)) 4)))
len=$(rd $((0x24c)) 4)
magic=$(od -An -t x1 -j "$start" -N 4 "$vmlinuz" | tr -d ' \n')
case "$magic" in
02214c18) dec=(lz4 -dc) ;;
1f8b*) dec=(gzip -dc) ;;
fd377a58) dec=(xz -dc) ;;
28b52ffd) dec=(zstd -dc) ;;
*) die "unknown kernel compression (payload magic $magic)" ;;
esac
tail -c +$((start + 1)) "$vmlinuz" | head -c "$len" | "${dec[@]}" >"$work/out/vmlinux" 2>/dev/null || true
[ "$(od -An -t x1 -N 4 "$work/out/vmlinux" | tr -d ' \n')" = 7f454c46 ] ||
	die "could not extract vmlinux from $vmlinuz"

say "building initramfs"
cc -static -O2 -Wall -o "$work/sqbtool" "$here/sqbtool.c"
ir=$work/initramfs
mkdir -p "$ir"/{bin,sbin,dev,proc,sys,run,tmp,etc,root}
cp "$work/bb/bin/busybox" "$ir/bin/busybox"
cp "$work/sqbtool" "$ir/bin/sqbtool"
install -m 0755 "$here/init.sh" "$ir/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$ir/etc/passwd"
find "$ir" -exec touch -h -d @0 {} +
(cd "$ir" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --reproducible --quiet | gzip -9 -n) \
	>"$work/out/initramfs.cpio.gz"
echo "$key" >"$work/out/stamp"

rm -rf "$out.old"
[ -d "$out" ] && mv "$out" "$out.old"
mv "$work/out" "$out"
rm -rf "$out.old"
say "built $out ($(du -sh "$out" | cut -f1)): kernel $release"
echo "$out"
