#!/bin/busybox sh
# /init of squib's default guest (built by guest/build-guest.sh): mount the
# basics, print the readiness marker with the uptime, start the workloads the
# kernel command line asks for, then run commands read from the serial
# console.  Protocol (docs/testing.md, "Guest kit"):
#   SQUIB-READY uptime=S cpus=N mem_kb=K   once, when init is up
#   sqb.run=W[+W...] on the command line   workloads, W = name[:arg[:arg]]:
#       memfill:MIB:SEED  memcheck:MIB:SEED  counter[:MS]  keeper:MIB:SEED
#       irqs[:S]          SQUIB-IRQS <ttyS0 and i8042 interrupt counts> every S s
#       poweroff          (reboot -f: with reboot=k the VMM sees a reset)
#   a console line       runs as a shell command, then SQUIB-DONE rc=N
#   Ctrl-Alt-Del         SQUIB-CTRL-ALT-DEL, then reboot -f
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
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
     "mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"

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
