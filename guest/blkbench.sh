#!/bin/sh
# /bin/sqb-blkbench in the guest kit's root image: block-device throughput
# as the guest sees it, for bench/blk_vs_qemu.sh.  Finds the virtio-blk disk
# of exactly MIB MiB (so the VMM's device order does not matter), then with
# O_DIRECT (busybox dd oflag/iflag=direct, no guest page cache):
#   sequential write MIB MiB in 1 MiB blocks (conv=fsync), sequential read,
#   4 KiB random reads: COUNT from one process (sqbtool randread, pread) and
#   COUNT/10 as one busybox dd each (includes a fork+exec per read).
# Prints one line: SQUIB-BLKBENCH dev=vdX seqw_mbs=.. seqr_mbs=.. rand_iops=.. rand_dd_iops=..
#   sqb-blkbench MIB [COUNT]
mib=${1:?usage: sqb-blkbench MIB [COUNT]} count=${2:-4000}
dev=""
for d in /sys/block/vd*; do
	[ "$(cat "$d/size")" = $((mib * 2048)) ] && dev=${d##*/}
done
[ -n "$dev" ] || { echo "SQUIB-BLKBENCH bad: no ${mib} MiB virtio disk ($(ls /sys/block | tr '\n' ' '))"; exit 1; }
# Debian's busybox dd prints no rate line: time it (sqbtool uptime, ms).
now() { sqbtool uptime | sed -n 's/^SQUIB-UPTIME //p'; }
rate() { # rate T0 T1 -> MB/s (10^6) for $mib MiB
	awk -v a="$1" -v b="$2" -v m="$mib" 'BEGIN { if (b > a) printf "%.1f", m * 1048576 / (b - a) / 1e6; else print "nan" }'
}
t0=$(now)
dd if=/dev/zero of=/dev/$dev bs=1M count=$mib oflag=direct conv=fsync 2>/dev/null || t0=fail
t1=$(now)
w=nan
[ "$t0" = fail ] || w=$(rate "$t0" "$t1")
t0=$(now)
dd if=/dev/$dev of=/dev/null bs=1M count=$mib iflag=direct 2>/dev/null || t0=fail
t1=$(now)
r=nan
[ "$t0" = fail ] || r=$(rate "$t0" "$t1")
i=$(sqbtool randread /dev/$dev "$count" 4096 | sed -n 's/.*iops=\([0-9.]*\).*/\1/p')
n=$((count / 10)) blocks=$((mib * 256)) k=0
t0=$(now)
while [ $k -lt $n ]; do
	dd if=/dev/$dev of=/dev/null bs=4096 count=1 skip=$(((RANDOM * 32768 + RANDOM) % blocks)) \
		iflag=direct 2>/dev/null
	k=$((k + 1))
done
t1=$(now)
d=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { if (b > a) printf "%.0f", n / (b - a); else print "nan" }')
echo "SQUIB-BLKBENCH dev=$dev seqw_mbs=$w seqr_mbs=$r rand_iops=${i:-nan} rand_dd_iops=$d"
