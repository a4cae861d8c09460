#!/bin/sh
# /bin/sqb-check in the guest kit's root image: the guest side of the
# root-on-virtio-blk checks (tests/snapshot/testhost_blk.sh, guest/boot-linux.sh),
# so that each console line a test types stays short (squib's serial input
# takes at most 64 bytes at a time).  Every result is one line with a marker.
#   sqb-check show          mount, df -h, 32 bytes of /dev/hwrng (the main job)
#   sqb-check drives        DRIVE <vdX> <sectors> ro=<0|1>, one per virtio disk
#   sqb-check rowrite DEV   RO-WRITE1 <dd status>, then after blockdev --setrw
#                           RO-WRITE2 <status> (both must fail on a read-only drive)
#   sqb-check rosum DEV MIB RO-SUM <md5 of the first MIB MiB, O_DIRECT>
#   sqb-check hwrng         HWRNG <hex digits read from 64 bytes> <rng_current>;
#                           reads under a 20 s timeout, diagnostics when short
#   sqb-check rootro        ROOT-RO-WRITE <status of a write to /data>
#   sqb-check shutdown      sync, remount / read-only: ROOT-RO or ROOT-RO-FAILED
case "${1:-}" in
show)
	mount
	df -h
	echo "/dev/hwrng, 32 bytes:"
	timeout 20 dd if=/dev/hwrng bs=32 count=1 2>/dev/null | hexdump -C
	echo "rng_current: $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
	;;
drives)
	for d in /sys/block/vd*; do
		[ -e "$d" ] && echo "DRIVE ${d##*/} $(cat "$d/size") ro=$(cat "$d/ro")"
	done
	;;
rowrite)
	dd if=/dev/zero of="/dev/$2" bs=4096 count=4 oflag=direct conv=fsync 2>/dev/null
	echo "RO-WRITE1 $?"
	blockdev --setrw "/dev/$2" 2>/dev/null
	dd if=/dev/zero of="/dev/$2" bs=4096 count=4 oflag=direct conv=fsync 2>/dev/null
	echo "RO-WRITE2 $?"
	;;
rosum)
	echo "RO-SUM $(dd if="/dev/$2" bs=1M count="$3" iflag=direct 2>/dev/null | md5sum)"
	;;
hwrng)
	n=$(timeout 20 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n' | wc -c)
	cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
	echo "HWRNG $n $cur"
	if [ "$n" != 128 ]; then
		echo "rng_available: $(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)"
		for d in /sys/bus/virtio/devices/*; do
			[ -e "$d" ] && echo "virtio ${d##*/} id=$(cat "$d/device") status=$(cat "$d/status")"
		done
		dmesg | grep -iE 'virtio|rng' | tail -n 10
	fi
	;;
rootro)
	(echo x >/data/rofile) 2>/dev/null
	echo "ROOT-RO-WRITE $?"
	;;
shutdown)
	sync
	if mount -o remount,ro /; then echo ROOT-RO; else echo ROOT-RO-FAILED; fi
	;;
*)
	echo "usage: sqb-check show|drives|rowrite DEV|rosum DEV MIB|hwrng|rootro|shutdown" >&2
	exit 2
	;;
esac
