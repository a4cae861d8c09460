#!/usr/bin/env bash
# ctest snapshot.guest_kit: checks the guest kit's root image and initramfs
# without booting anything (no KVM, no test host).  From the formats' own
# rules, not from build-guest.sh: e2fsck must find the ext4 image clean; the
# files init needs are in it (debugfs); /data/big.pat holds sqbtool's
# pattern; the initramfs carries /init, the marker, and virtio_mmio,
# virtio_blk, virtio_rng, virtio_net, vmw_vsock_virtio_transport, virtio_balloon with every
# module named in a module's modinfo `depends=` loaded before it (what
# modules.dep would order).
# Exit 77 when the kit cannot be built here (no apt sources / no network).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATH=$PATH:/sbin:/usr/sbin
fail=0
bad() { echo "FAIL: $*"; fail=1; }
pass() { echo "PASS: $*"; }
for t in e2fsck debugfs cpio gzip; do
	command -v $t >/dev/null || { echo "skip: $t not found (scripts/deps.sh installs it)"; exit 77; }
done
if ! out=$("$repo/guest/build-guest.sh" --quiet 2>"${TMPDIR:-/tmp}/sqb-kit.err.$$"); then
	err=$(cat "${TMPDIR:-/tmp}/sqb-kit.err.$$")
	rm -f "${TMPDIR:-/tmp}/sqb-kit.err.$$"
	case "$err" in
	*"cannot resolve"* | *"apt-get download"* | *"no candidate"*)
		echo "skip: the guest kit cannot be fetched here: $err"; exit 77 ;;
	esac
	echo "FAIL: guest/build-guest.sh: $err"
	exit 1
fi
rm -f "${TMPDIR:-/tmp}/sqb-kit.err.$$"
G=$out
T=$(mktemp -d "${TMPDIR:-/tmp}/sqb-kit.XXXXXX")
trap 'rm -rf "$T"' EXIT

img=$G/rootfs.ext4
[ -f "$img" ] || { echo "FAIL: $img missing"; exit 1; }
e2fsck -fn "$img" >"$T/fsck" 2>&1 && pass "e2fsck -fn: rootfs.ext4 is clean" ||
	bad "e2fsck -fn: $(tail -n 5 "$T/fsck")"
[ "$(dumpe2fs -h "$img" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p')" = sqbroot ] &&
	pass "label sqbroot (root=LABEL=sqbroot)" || bad "label is not sqbroot"
for f in /sbin/init /bin/busybox /bin/sh /bin/mount /sbin/switch_root /bin/sqbtool \
	/bin/sqb-check /bin/sqb-blkbench /etc/passwd /data/big.pat; do
	debugfs -R "stat $f" "$img" >"$T/stat" 2>&1
	grep -q '^Inode:' "$T/stat" || bad "$f missing from the image"
done
debugfs -R "stat /sbin/init" "$img" 2>/dev/null | grep -q 'Mode:  0755' &&
	pass "/sbin/init is executable" || bad "/sbin/init mode"
debugfs -R "dump /data/big.pat $T/big.pat" "$img" >/dev/null 2>&1
"$G/sqbtool" memcheck 32 5 "$T/big.pat" | grep -q 'SQUIB-MEMCHECK ok mib=32' &&
	pass "/data/big.pat is sqbtool's 32 MiB pattern, seed 5" || bad "/data/big.pat content"

mkdir "$T/ir"
(cd "$T/ir" && gzip -dc "$G/initramfs.cpio.gz" | cpio -id --quiet 2>/dev/null)
[ -x "$T/ir/init" ] && [ -f "$T/ir/etc/sqb-initramfs" ] && pass "initramfs: /init and its marker" ||
	bad "initramfs: /init or /etc/sqb-initramfs missing"
order=$T/ir/lib/modules/load.order
[ -f "$order" ] || { bad "initramfs: lib/modules/load.order missing"; exit 1; }
for m in virtio_mmio virtio_blk virtio_rng virtio_net vmw_vsock_virtio_transport virtio_balloon; do
	grep -qx "$m" "$order" && [ -f "$T/ir/lib/modules/$m.ko" ] || bad "module $m not in the initramfs"
done
seen=" "
while read -r m; do
	ko=$T/ir/lib/modules/$m.ko
	[ -f "$ko" ] || { bad "$m listed but $m.ko missing"; continue; }
	name=$(tr '\0' '\n' <"$ko" | sed -n 's/^name=//p' | awk 'NR == 1')
	[ "$name" = "$m" ] || bad "$m.ko says name=$name"
	for d in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
		d=${d//-/_}
		case "$seen" in *" $d "*) ;; *) bad "$m needs $d, which is not loaded before it" ;; esac
	done
	seen="$seen$m "
done <"$order"
[ $fail = 0 ] && pass "load.order: every module after all it depends on ($(tr '\n' ' ' <"$order"))"
exit $fail
