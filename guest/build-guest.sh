#!/usr/bin/env bash
# Build squib's default Linux guest from Debian packages: the cloud kernel
# (linux-image-cloud-amd64, resolved to its versioned package with apt-cache)
# and busybox-static, downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x` -- nothing is installed on the host.  Output, cached until
# the package versions or the kit's sources change:
#
#   CACHE/guest/vmlinuz            bzImage (boot protocol, 64-bit entry)
#   CACHE/guest/vmlinux            the same kernel uncompressed (PVH ELF)
#   CACHE/guest/initramfs.cpio.gz  busybox + sqbtool + guest/init.sh as /init +
#                                  the virtio modules (lib/modules/load.order)
#   CACHE/guest/rootfs.ext4        ext4 root image (mke2fs -d, no mounts): busybox,
#                                  sqbtool, init.sh as /sbin/init, /data/big.pat,
#                                  blkbench.sh as /bin/sqb-blkbench, sqbcheck.sh
#                                  as /bin/sqb-check
#   CACHE/guest/sqbtool            the workloads, static (also runs on the host)
#   CACHE/guest/modules/           kvm.ko kvm-amd.ko irqbypass.ko tun.ko (test host)
#   CACHE/guest/busybox            static busybox (the test host's initramfs uses it)
#   CACHE/guest/release            kernel release, e.g. 6.1.0-56-cloud-amd64
#   CACHE/guest/config             the kernel's build configuration
#
# --flavour generic builds the same kit from Debian's generic kernel of the
# same version and ABI (linux-image-6.1.0-N-amd64 next to -cloud-amd64),
# fetched only when asked for, into CACHE/guest-generic/: vmlinuz, vmlinux,
# initramfs.cpio.gz (its own modules), modules/, busybox, sqbtool, release,
# config -- no rootfs.ext4 (the cloud kit's image carries no kernel parts).
# The cloud kernel lacks CONFIG_VMGENID; the generic one has it, so clone
# identity tests use it to see Linux's vmgenid driver (docs/fleet.md).
#
# Usage: guest/build-guest.sh [--cache DIR] [--flavour cloud|generic] [--force] [--quiet]
#   CACHE defaults to $SQB_GUEST_CACHE or <repo>/guest-cache.
# Prints the output directory on stdout.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${SQB_GUEST_CACHE:-$repo/guest-cache}
force=0
quiet=0
flavour=cloud
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=$2; shift 2 ;;
	--flavour) flavour=$2; shift 2 ;;
	--force) force=1; shift ;;
	--quiet) quiet=1; shift ;;
	*) echo "usage: $0 [--cache DIR] [--flavour cloud|generic] [--force] [--quiet]" >&2; exit 2 ;;
	esac
done
say() { [ "$quiet" = 1 ] || echo "build-guest: $*" >&2; }
case "$flavour" in
cloud | generic) ;;
*) echo "build-guest: error: --flavour $flavour: cloud or generic" >&2; exit 2 ;;
esac
die() { echo "build-guest: error: $*" >&2; exit 1; }
# Any other failing command says which one, never a silent exit.
trap 'echo "build-guest: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

for tool in apt-cache apt-get dpkg-deb cpio gzip cc flock od lz4 xz mke2fs e2fsck; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the build deps)"
done
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)
out=$cache/guest
[ "$flavour" = generic ] && out=$cache/guest-generic

# One builder at a time; the others wait and then find the cache fresh.
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for $cache/.lock"

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && !f {print $2; f = 1}'; }
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !f {print $2; f = 1}')
[ -n "$kpkg" ] || die "apt-cache cannot resolve linux-image-cloud-amd64 (run apt-get update)"
# the generic kernel of the cloud one's version and ABI: one source, two configs
[ "$flavour" = generic ] && kpkg=${kpkg%-cloud-amd64}-amd64
kver=$(candidate "$kpkg")
bbver=$(candidate busybox-static)
[ -n "$kver" ] && [ "$kver" != "(none)" ] || die "no candidate version for $kpkg"
[ -n "$bbver" ] && [ "$bbver" != "(none)" ] || die "no candidate version for busybox-static"
kit=$(cat "$here/init.sh" "$here/sqbtool.c" "$here/blkbench.sh" "$here/sqbcheck.sh" \
	"$here/build-guest.sh" |
	sha256sum | cut -c1-16)
e2v=$(mke2fs -V 2>&1 | awk 'NR == 1 {print $2}')
key="flavour=$flavour $kpkg=$kver busybox-static=$bbver kit=$kit mke2fs=$e2v rootfs_mib=${SQB_ROOTFS_MIB:-128}"

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
vmlinuz=$(ls "$work"/k/boot/vmlinuz-* | awk 'NR == 1')
release=${vmlinuz##*/vmlinuz-}
mkdir -p "$work/out/modules"
cp "$vmlinuz" "$work/out/vmlinuz"
cp "$work/bb/bin/busybox" "$work/out/busybox"
echo "$release" >"$work/out/release"
cp "$work/k/boot/config-$release" "$work/out/config" || die "kernel config missing from $kpkg"
# tun.ko: the test host's taps for virtio-net tests (no dependencies).
for m in arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko virt/lib/irqbypass.ko drivers/net/tun.ko; do
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
cp "$work/sqbtool" "$work/out/sqbtool"
ir=$work/initramfs
mkdir -p "$ir"/{bin,sbin,dev,proc,sys,run,tmp,etc,root,newroot,lib/modules}
cp "$work/bb/bin/busybox" "$ir/bin/busybox"
cp "$work/sqbtool" "$ir/bin/sqbtool"
install -m 0755 "$here/init.sh" "$ir/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$ir/etc/passwd"
# Marks the initramfs: init.sh switches to root= only from here.
echo "squib guest kit initramfs" >"$ir/etc/sqb-initramfs"

# The virtio modules a root on virtio-blk, /dev/hwrng, eth0 and AF_VSOCK need, with what they
# depend on, in load order (dependencies first).  The .deb has no
# modules.dep (depmod writes it at install time), so the order comes from
# each module's own modinfo "depends=" field, as depmod reads it; a driver
# the kernel's config builds in (=y, or listed in modules.builtin) needs no
# module.
kmods=$work/k/lib/modules/$release
kconfig=$work/k/boot/config-$release
[ -f "$kconfig" ] || die "kernel config $kconfig missing from $kpkg"
modpath() { # module name -> path under $kmods ('-' and '_' are the same)
	local n=${1//-/_}
	find "$kmods/kernel" -name '*.ko*' | awk -v n="$n" '
		{ b = $0; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b) }
		b == n && !found { print; found = 1 }'
}
is_builtin() { # module name -> 0 if built into the kernel
	local n=${1//-/_}
	sed 's/.*\///; s/\.ko$//; s/-/_/g' "$kmods/modules.builtin" | grep -qx "$n"
}
order=()
visit() {
	local m=${1//-/_} f d
	for d in "${order[@]+"${order[@]}"}"; do [ "$d" = "$m" ] && return 0; done
	if is_builtin "$m"; then
		say "module $m: built into the kernel"
		return 0
	fi
	f=$(modpath "$m")
	[ -n "$f" ] || die "module $m is neither built in nor in $kpkg"
	case "$f" in *.ko) ;; *) die "compressed module $f: not supported yet" ;; esac
	for d in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
		visit "$d"
	done
	order+=("$m")
	cp "$f" "$ir/lib/modules/$m.ko"
}
# CONFIG symbol -> module: checked against the config so a kernel that builds
# one of them in is handled, and one that lacks it is an error.
# virtio_net pulls in net_failover and failover, the vsock transport vsock
# and vmw_vsock_virtio_transport_common (docs/network.md).
# virtio_balloon: balloon tests load it by hand (docs/testing.md).
# virtio_pmem and nd_pmem (with libnvdimm): /dev/pmem0 for virtio-pmem.
for pair in VIRTIO_MMIO:virtio_mmio VIRTIO_PCI:virtio_pci VIRTIO_BLK:virtio_blk HW_RANDOM_VIRTIO:virtio_rng \
	EXT4_FS:ext4 VIRTIO_NET:virtio_net VIRTIO_VSOCKETS:vmw_vsock_virtio_transport \
	VIRTIO_BALLOON:virtio_balloon VIRTIO_PMEM:virtio_pmem BLK_DEV_PMEM:nd_pmem; do
	sym=${pair%%:*} mod=${pair#*:}
	val=$(sed -n "s/^CONFIG_$sym=//p" "$kconfig")
	case "$val" in
	y) say "CONFIG_$sym=y: $mod built in" ;;
	m) visit "$mod" ;;
	*) die "CONFIG_$sym is not set in $kconfig: this kernel cannot use $mod" ;;
	esac
done
grep -q '^CONFIG_ACPI=y' "$kconfig" || die "CONFIG_ACPI is off: virtio-mmio devices come from the DSDT"
if [ "$flavour" = generic ]; then
	grep -q '^CONFIG_VMGENID=y' "$kconfig" || die "CONFIG_VMGENID is not built into $kpkg"
fi
printf '%s\n' "${order[@]+"${order[@]}"}" >"$ir/lib/modules/load.order"
say "initramfs modules (load order): ${order[*]-none}"

find "$ir" -exec touch -h -d @0 {} +
(cd "$ir" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --reproducible --quiet | gzip -9 -n) \
	>"$work/out/initramfs.cpio.gz"

# Root filesystem: a directory tree turned into ext4 by mke2fs -d (no loop
# device, no mount, no root needed).  busybox applets as symlinks from its
# own --list-full; the same init.sh as /sbin/init (it knows it is no longer
# on the initramfs); /data/big.pat is a 32 MiB pattern the tests read.
if [ "$flavour" = cloud ]; then
	say "building rootfs.ext4 (${SQB_ROOTFS_MIB:-128} MiB)"
	rf=$work/rootfs
	mkdir -p "$rf"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc,root,mnt,data}
	cp "$work/bb/bin/busybox" "$rf/bin/busybox"
	for a in $("$rf/bin/busybox" --list-full); do
		[ -e "$rf/$a" ] || [ -L "$rf/$a" ] || ln -s /bin/busybox "$rf/$a"
	done
	cp "$work/sqbtool" "$rf/bin/sqbtool"
	install -m 0755 "$here/init.sh" "$rf/sbin/init"
	install -m 0755 "$here/blkbench.sh" "$rf/bin/sqb-blkbench"
	install -m 0755 "$here/sqbcheck.sh" "$rf/bin/sqb-check"
	echo "root:x:0:0:root:/root:/bin/sh" >"$rf/etc/passwd"
	echo "root:x:0:" >"$rf/etc/group"
	echo "squib-guest" >"$rf/etc/hostname"
	chmod 1777 "$rf/tmp"
	"$work/sqbtool" memfill 32 5 "$rf/data/big.pat" >/dev/null || die "sqbtool memfill failed"
	find "$rf" -exec touch -h -d @0 {} +
	# Fixed UUID, hash seed and time: the same inputs give the same image.
	E2FSPROGS_FAKE_TIME=1 mke2fs -q -F -t ext4 -b 4096 -L sqbroot -U 5c0b1e00-0000-4000-8000-000000000001 \
		-E root_owner=0:0,hash_seed=5c0b1e00-0000-4000-8000-000000000002 \
		-d "$rf" "$work/out/rootfs.ext4" "${SQB_ROOTFS_MIB:-128}M" >/dev/null ||
		die "mke2fs -d failed"
	e2fsck -fn "$work/out/rootfs.ext4" >/dev/null 2>&1 || die "e2fsck finds the new rootfs.ext4 unclean"
fi
echo "$key" >"$work/out/stamp"

rm -rf "$out.old"
[ -d "$out" ] && mv "$out" "$out.old"
mv "$work/out" "$out"
rm -rf "$out.old"
say "built $out ($(du -sh "$out" | cut -f1)): kernel $release"
echo "$out"
