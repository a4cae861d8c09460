#!/bin/busybox sh
# /init of squib's default guest (built by guest/build-guest.sh), and /sbin/init
# of its root filesystem image.  With root=DEV on the command line (a VMM's
# root drive adds `root=/dev/vda rw`) the initramfs copy loads the virtio
# modules (lib/modules/load.order), mounts DEV and switch_roots to it; without
# root= it stays on the initramfs.  Then: mount the basics, print the
# readiness marker with the uptime, start the workloads the kernel command
# line asks for, run commands read from the serial console.  Protocol
# (docs/testing.md, "Guest kit"):
#   SQUIB-READY uptime=S cpus=N mem_kb=K root=DEV|initramfs   once, when init is up
#   root=/dev/X, root=LABEL=L or root=UUID=U (the kit's image: LABEL=sqbroot)
#   SQUIB-ROOT-ERROR reason                 root= given but not usable: stays on
#                                           the initramfs
#   sqb.run=W[+W...] on the command line   workloads, W = name[:arg[:arg]]:
#       memfill:MIB:SEED  memcheck:MIB:SEED  counter[:MS]  keeper:MIB:SEED
#       irqs[:S]          SQUIB-IRQS <ttyS0 and i8042 interrupt counts> every S s
#       writer:SLOTS:SEED checksummed fsynced writes to /data/w (root on a disk)
#       poweroff          (reboot -f: with reboot=k the VMM sees a reset)
#   a console line       runs as a shell command, then SQUIB-DONE rc=N
#   Ctrl-Alt-Del         SQUIB-CTRL-ALT-DEL, then reboot -f
[ -e /bin/sh ] || /bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

# Stage 1, only on the initramfs: root=DEV -> modules, mount, switch_root.
root_dev="" root_mode=rw root_type=ext4 root_wait=10
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root_dev=${arg#root=} ;;
	ro) root_mode=ro ;;
	rw) root_mode=rw ;;
	rootfstype=*) root_type=${arg#rootfstype=} ;;
	rootwait=*) root_wait=${arg#rootwait=} ;;
	esac
done
root_error() {
	echo "SQUIB-ROOT-ERROR $*"
	umount /newroot 2>/dev/null
}
if [ -f /etc/sqb-initramfs ] && [ -n "$root_dev" ]; then
	for m in $(cat /lib/modules/load.order 2>/dev/null); do
		insmod "/lib/modules/$m.ko" || echo "SQUIB-ROOT-ERROR insmod $m failed"
	done
	# root=LABEL=x / UUID=x (busybox findfs) as well as root=/dev/x
	want=$root_dev
	i=0
	while [ $i -lt $((root_wait * 10)) ]; do
		case "$want" in
		LABEL=* | UUID=*) root_dev=$(findfs "$want" 2>/dev/null) || root_dev=$want ;;
		esac
		[ -b "$root_dev" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -b "$root_dev" ]; then
		root_error "$root_dev did not appear within ${root_wait}s" \
			"(block devices: $(ls /sys/block | tr '\n' ' '))"
	elif ! mount -t "$root_type" -o "$root_mode" "$root_dev" /newroot; then
		root_error "mount -t $root_type -o $root_mode $root_dev failed"
	elif [ ! -x /newroot/sbin/init ]; then
		root_error "$root_dev has no /sbin/init"
	else
		umount /proc /sys
		mount --move /dev /newroot/dev
		exec switch_root /newroot /sbin/init
	fi
fi
if [ -f /etc/sqb-initramfs ]; then
	root_now=initramfs
else
	root_now=$(awk '$2 == "/" && $1 != "rootfs" { d = $1 } END { print d }' /proc/mounts)
fi
mkdir -p /run /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname squib-guest

# With ctrl-alt-del=0 the kernel turns Ctrl-Alt-Del into SIGINT for init
# (instead of an immediate hard restart), so the marker below gets out.
echo 0 >/proc/sys/kernel/ctrl-alt-del
trap 'echo SQUIB-CTRL-ALT-DEL; sync; reboot -f' INT
trap 'echo SQUIB-TERM; reboot -f' TERM

read -r up _ < /proc/uptime
echo "SQUIB-READY uptime=$up cpus=$(grep -c ^processor /proc/cpuinfo)" \
     "mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo) root=$root_now"

workload() {
	IFS=: read -r name a b <<EOF
$1
EOF
	case "$name" in
	memfill) sqbtool memfill "${a:-16}" "${b:-1}" /run/mem.pat ;;
	memcheck) sqbtool memcheck "${a:-16}" "${b:-1}" /run/mem.pat ;;
	counter) sqbtool counter "${a:-500}" & ;;
	keeper) sqbtool keeper "${a:-16}" "${b:-1}" & ;;
	irqs) # debugging aid: interrupt counts of the console and keyboard
		(while sleep "${a:-5}"; do
			echo "SQUIB-IRQS $(grep -E 'i8042|ttyS0' /proc/interrupts | tr -s ' ' | tr '\n' ';')"
		done) & ;;
	writer) sqbtool writer /data/w "${a:-64}" "${b:-11}" & ;;
	poweroff) echo SQUIB-POWEROFF; sync; reboot -f ;;
	*) echo "SQUIB-ERROR unknown workload $name" ;;
	esac
}

for arg in $(cat /proc/cmdline); do
	case "$arg" in
	sqb.run=*)
		for w in $(echo "${arg#sqb.run=}" | tr '+' ' '); do
			workload "$w"
		done
		;;
	esac
done

stty -echo 2>/dev/null
while :; do
	if ! read -r line; then
		sleep 1
		continue
	fi
	[ -n "$line" ] || continue
	sh -c "$line"
	echo "SQUIB-DONE rc=$?"
done
