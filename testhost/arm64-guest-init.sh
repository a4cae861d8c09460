#!/bin/busybox sh
# /sbin/init of the arm64 Linux guest's root image (testhost/arm64-guest.sh),
# reached from the initramfs (guest/init.sh) by switch_root to root=/dev/vda.
# Prints the kit's readiness marker (docs/testing.md, "Guest kit"):
#   SQUIB-READY uptime=S cpus=N mem_kb=K root=DEV
# then, with sqb.arm64work on the command line, the snapshot workload
# (tests/arm64/testhost_arm64_linux.sh), every line a SQUIB- marker:
#   SQUIB-COUNTER n       every 500 ms (sqbtool counter), on vCPU 0
#   SQUIB-KEEPER ok gen=n 16 MiB RAM pattern verified every 5 s, on the last vCPU
#   SQUIB-WRITER n= / verify ok   fsynced checksummed files in /data/w, read
#                         back from disk (caches dropped) every 4 s
#   SQUIB-UPTIME s        /proc/uptime every 2 s
# There is no serial input on arm64 yet: the workload runs by itself.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
root=$(awk '$2 == "/" && $1 != "rootfs" { d = $1 } END { print d }' /proc/mounts)
read -r up _ </proc/uptime
echo "SQUIB-READY uptime=$up cpus=$(grep -c ^processor /proc/cpuinfo)" \
	"mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo) root=$root"
case " $(cat /proc/cmdline) " in
*" sqb.arm64work "*)
	last=$(($(grep -c ^processor /proc/cpuinfo) - 1))
	taskset -c 0 sqbtool counter 500 &
	taskset -c "$last" sqbtool keeper 16 5 &
	sqbtool writer /data/w 32 11 &
	wpid=$!
	(while sleep 2; do read -r u _ </proc/uptime; echo "SQUIB-UPTIME $u"; done) &
	(while sleep 4; do kill -USR1 "$wpid" 2>/dev/null || break; done) &
	;;
esac
while :; do sleep 3600; done
