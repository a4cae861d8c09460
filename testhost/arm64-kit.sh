#!/usr/bin/env bash
# The arm64 test host's kit (docs/arm64.md): Debian's arm64 cloud kernel
# (linux-image-cloud-arm64, resolved to its versioned package) and
# busybox-static:arm64, fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` -- never installed.  KVM is built into that kernel.
# Prints the kit directory (vmlinuz as shipped, Image unpacked, busybox, stamp);
# cached in $SQB_GUEST_CACHE (default <repo>/guest-cache)/arm64.
#   testhost/arm64-kit.sh [--quiet]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SQB_GUEST_CACHE:-$repo/guest-cache}/arm64
quiet=0
[ "${1:-}" = --quiet ] && quiet=1
say() { [ "$quiet" = 1 ] || echo "arm64-kit: $*" >&2; }
die() { echo "arm64-kit: error: $*" >&2; exit 1; }
mkdir -p "$cache/debs"
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for $cache/.lock"
if [ -f "$cache/stamp" ] && [ -f "$cache/Image" ] && [ -x "$cache/busybox" ]; then
	echo "$cache"
	exit 0
fi
dpkg --print-foreign-architectures | grep -qx arm64 ||
	die "dpkg has no arm64 architecture (scripts/build-arm64.sh adds it)"
kpkg=$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ && !f { sub(":arm64", "", $2); print $2; f = 1 }')
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-arm64:arm64 (apt-get update?)"
say "downloading $kpkg:arm64 and busybox-static:arm64"
(cd "$cache/debs" && chmod 0777 . && apt-get download -q "$kpkg:arm64" busybox-static:arm64 >/dev/null) ||
	die "apt-get download failed"
rm -rf "$cache/x"
mkdir -p "$cache/x"
for d in "$cache"/debs/"$kpkg"_*.deb "$cache"/debs/busybox-static_*arm64.deb; do
	dpkg-deb -x "$d" "$cache/x"
done
cp "$cache"/x/boot/vmlinuz-* "$cache/vmlinuz"
# squib loads a plain Image (the boot protocol's format): Debian's bookworm
# vmlinuz is one already (an EFI-stub Image); a gzip'd one is unpacked.
if gzip -t "$cache/vmlinuz" 2>/dev/null; then
	gzip -dc "$cache/vmlinuz" >"$cache/Image.tmp"
	mv "$cache/Image.tmp" "$cache/Image"
else
	cp "$cache/vmlinuz" "$cache/Image"
fi
cp "$cache/x/bin/busybox" "$cache/busybox"
basename "$(ls "$cache"/debs/"$kpkg"_*.deb)" >"$cache/stamp"
rm -rf "$cache/x"
echo "$cache"
