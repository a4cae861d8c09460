#!/usr/bin/env bash
# The arm64 Linux guest of the arm64 test host (docs/arm64.md, "Linux with
# root on virtio-blk"): built from the arm64 kit's cached .debs
# (testhost/arm64-kit.sh) the way guest/build-guest.sh builds the x86 guest,
# nothing installed, no mounts:
#
#   KIT/guest/initramfs.cpio.gz  busybox, guest/init.sh as /init (root= ->
#                                insmod lib/modules/load.order, mount, switch_root),
#                                the virtio modules this kernel builds as modules
#   KIT/guest/rootfs.ext4        ext4 root image (mke2fs -d): busybox and its applets,
#                                sqbtool (guest/sqbtool.c, cross-built static),
#                                testhost/arm64-guest-init.sh as /sbin/init
#   KIT/guest/stamp              what it was built from
#
# Usage: testhost/arm64-guest.sh [--quiet]; prints KIT/guest.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
quiet=0
[ "${1:-}" = --quiet ] && quiet=1
say() { [ "$quiet" = 1 ] || echo "arm64-guest: $*" >&2; }
die() { echo "arm64-guest: error: $*" >&2; exit 1; }
trap 'echo "arm64-guest: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

for tool in aarch64-linux-gnu-gcc dpkg-deb cpio gzip mke2fs e2fsck; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/build-arm64.sh, scripts/deps.sh)"
done
kit=$("$here/arm64-kit.sh" --quiet) || die "arm64 kit unavailable"
out=$kit/guest
kdeb=$(ls "$kit"/debs/linux-image-*_arm64.deb | awk 'NR == 1')
[ -f "$kdeb" ] || die "no arm64 kernel .deb in $kit/debs"
mib=${SQB_ARM64_ROOTFS_MIB:-48}
key="$(basename "$kdeb") $(cat "$here/arm64-guest.sh" "$here/arm64-guest-init.sh" "$repo/guest/init.sh" \
	"$repo/guest/sqbtool.c" | sha256sum | cut -c1-16) mib=$mib"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ]; then
	echo "$out"
	exit 0
fi
exec 9>"$kit/.guest.lock"
flock -w 600 9 || die "timed out waiting for $kit/.guest.lock"

work=$(mktemp -d "$kit/.guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kdeb" "$work/k"
release=$(ls "$work/k/lib/modules" | awk 'NR == 1')
kmods=$work/k/lib/modules/$release
kconfig=$work/k/boot/config-$release
[ -f "$kconfig" ] || die "kernel config $kconfig missing from $(basename "$kdeb")"
mkdir -p "$work/out"
aarch64-linux-gnu-gcc -static -O2 -Wall -o "$work/sqbtool" "$repo/guest/sqbtool.c"

# Initramfs: stage 1 of guest/init.sh (root=/dev/vda from squib's root drive).
ir=$work/initramfs
mkdir -p "$ir"/{bin,sbin,dev,proc,sys,run,tmp,etc,root,newroot,lib/modules}
cp "$kit/busybox" "$ir/bin/busybox"
install -m 0755 "$repo/guest/init.sh" "$ir/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$ir/etc/passwd"
echo "squib guest kit initramfs" >"$ir/etc/sqb-initramfs"
# Modules in dependency order from each one's modinfo "depends=" (no
# modules.dep in a .deb); =y in the config needs none.
order=()
visit() {
	local m=${1//-/_} f d
	for d in "${order[@]+"${order[@]}"}"; do [ "$d" = "$m" ] && return 0; done
	if sed 's/.*\///; s/\.ko$//; s/-/_/g' "$kmods/modules.builtin" | grep -qx "$m"; then
		return 0
	fi
	f=$(find "$kmods/kernel" -name '*.ko' | awk -v n="$m" '{ b = $0; sub(/.*\//, "", b);
		sub(/\.ko$/, "", b); gsub(/-/, "_", b) } b == n && !x { print; x = 1 }')
	[ -n "$f" ] || die "module $m is neither built in nor in $(basename "$kdeb")"
	for d in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' '); do visit "$d"; done
	order+=("$m")
	cp "$f" "$ir/lib/modules/$m.ko"
}
for pair in VIRTIO_MMIO:virtio_mmio VIRTIO_BLK:virtio_blk EXT4_FS:ext4; do
	sym=${pair%%:*} mod=${pair#*:}
	case "$(sed -n "s/^CONFIG_$sym=//p" "$kconfig")" in
	y) say "CONFIG_$sym=y: built in" ;;
	m) visit "$mod" ;;
	*) die "CONFIG_$sym is not set: this kernel cannot use $mod" ;;
	esac
done
printf '%s\n' "${order[@]+"${order[@]}"}" >"$ir/lib/modules/load.order"
say "kernel $release, initramfs modules: ${order[*]-none}"
(cd "$ir" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --quiet | gzip -6 -n) >"$work/out/initramfs.cpio.gz"

# Root image: the workload's own init (no serial input on arm64 yet).
rf=$work/rootfs
mkdir -p "$rf"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc,root,mnt,data}
cp "$kit/busybox" "$rf/bin/busybox"
# the applet list from the x86 busybox-static of the same source (the arm64
# one cannot run here); the few applets init uses are checked below
for a in sh mount umount cat echo sleep awk grep cut tr taskset kill sync ls mkdir dmesg reboot \
	poweroff head tail wc md5sum dd rm cp mv ps uname df find stat date; do
	ln -sf /bin/busybox "$rf/bin/$a"
done
cp "$work/sqbtool" "$rf/bin/sqbtool"
install -m 0755 "$here/arm64-guest-init.sh" "$rf/sbin/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$rf/etc/passwd"
echo "root:x:0:" >"$rf/etc/group"
chmod 1777 "$rf/tmp"
find "$rf" -exec touch -h -d @0 {} +
E2FSPROGS_FAKE_TIME=1 mke2fs -q -F -t ext4 -b 4096 -L sqbroot -U 5c0b1e00-0000-4000-8000-0000000000a6 \
	-E root_owner=0:0,hash_seed=5c0b1e00-0000-4000-8000-0000000000a7 \
	-d "$rf" "$work/out/rootfs.ext4" "${mib}M" >/dev/null || die "mke2fs -d failed"
e2fsck -fn "$work/out/rootfs.ext4" >/dev/null 2>&1 || die "e2fsck finds the new rootfs.ext4 unclean"
echo "$key" >"$work/out/stamp"
rm -rf "$out"
mv "$work/out" "$out"
say "built $out ($(du -sh "$out" | cut -f1))"
echo "$out"
