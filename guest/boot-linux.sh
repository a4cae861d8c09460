#!/bin/sh
# Boot the default Linux guest (guest kit) in squib through the Firecracker
# API and show its console: configure, InstanceStart, wait for SQUIB-READY,
# run a few commands over the serial console, shut down with SendCtrlAltDel.
# With the guest kit's rootfs.ext4 at hand ($SQB_GUEST_DIR) the root goes on
# virtio-blk (PUT /drives/rootfs, is_root_device) with virtio-rng (PUT
# /entropy) and the console shows `mount`, `df` and bytes from /dev/hwrng;
# while squib answers those requests with an error (400/404: not built yet)
# it says so and boots from the initramfs alone, as before.
# Needs squib and curl in PATH and real KVM; on machines without it run it
# inside the nested test host:
#
#   testhost/run.sh --auto --bin build/runtime/squib --bin "$(command -v curl)" guest/boot-linux.sh
#
# Optional arguments: VCPUS (default 2), MEM_MIB (default 256), KERNEL
# (vmlinuz = bzImage, default; vmlinux = PVH).
vcpus=${1:-2} mem=${2:-256} kimg=${3:-vmlinuz}
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
sock=$T/api.sock
mkfifo "$T/in"
now() { read -r t _ </proc/uptime; echo "$t"; }
api() {
	curl -s -w ' -> HTTP %{http_code}\n' --unix-socket "$sock" -X "$1" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://localhost$2"
}
wait_for() {
	i=0
	while [ $i -lt $(($2 * 10)) ]; do
		grep -qE "$1" "$T/console" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

t0=$(now)
squib --api-sock "$sock" <"$T/in" >"$T/console" 2>&1 &
pid=$!
exec 3>"$T/in"
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
disk=0
if [ -f "$G/rootfs.ext4" ]; then
	cp "$G/rootfs.ext4" "$T/rootfs.ext4"
	echo "== PUT /drives/rootfs (root on virtio-blk), /entropy"
	out=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/rootfs.ext4\",
		\"is_root_device\": true, \"is_read_only\": false}")
	echo "$out"
	case "$out" in
	*'HTTP 204') disk=1 ;;
	*) echo "== squib has no virtio-blk drives yet (the answer above): booting from the initramfs only;"
	   echo "== the root on virtio-blk switches on by itself once PUT /drives answers 204" ;;
	esac
	if [ $disk = 1 ]; then
		out=$(api PUT /entropy '{}')
		echo "$out"
		case "$out" in *'HTTP 204') ;; *) echo "== no virtio-rng yet: /dev/hwrng will be missing" ;; esac
	fi
else
	echo "== no $G/rootfs.ext4: booting from the initramfs only"
fi
echo "== PUT /machine-config, /boot-source, /actions InstanceStart"
api PUT /machine-config "{\"vcpu_count\": $vcpus, \"mem_size_mib\": $mem}"
api PUT /boot-source "{\"kernel_image_path\": \"$G/$kimg\", \"initrd_path\": \"$G/initramfs.cpio.gz\"}"
api PUT /actions '{"action_type": "InstanceStart"}'
rc=0
if wait_for SQUIB-READY 120; then
	echo "== ready $(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }') s after squib started"
	echo 'uname -a; grep -c ^processor /proc/cpuinfo; free -m' >&3
	wait_for 'SQUIB-DONE' 30
	if [ $disk = 1 ]; then
		# short lines: squib takes 64 bytes of serial input at a time
		sleep 0.5
		echo 'sqb-check show; echo DISK-SHOWN' >&3
		wait_for '^DISK-SHOWN' 30 || echo "== the mount/df/hwrng commands did not finish"
		grep -q 'root=/dev/vda' "$T/console" || { echo "== the root is not /dev/vda"; rc=1; }
	fi
	echo "== PUT /actions SendCtrlAltDel"
	api PUT /actions '{"action_type": "SendCtrlAltDel"}'
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
else
	echo "== no SQUIB-READY within 120 s"
	rc=1
fi
# A demo, not a test (tests/x86boot/testhost_squib.sh checks the shutdown).
kill $pid 2>/dev/null && echo "== squib still running 30 s after SendCtrlAltDel: killed it"
wait $pid 2>/dev/null
# the console once squib is gone: a follower killed at the end lost its
# buffered tail (SQUIB-READY and the commands' output)
echo "== the guest's console"
cat "$T/console"
exec 3>&-
rm -rf "$T"
exit $rc
