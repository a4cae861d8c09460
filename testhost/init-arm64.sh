#!/bin/busybox sh
# /init of the arm64 test host (testhost/run-arm64.sh): the Debian arm64
# kernel has KVM built in (VHE at EL2, vGICv3), so /dev/kvm is there once
# devtmpfs is; run /test/run, report SQUIB-TESTHOST-EXIT=<n>, power off.
/bin/busybox --install -s /bin
export PATH=/test:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root TMPDIR=/tmp SQB_GUEST_DIR=/guest SQB_IN_TESTHOST=1
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
ip link set lo up 2>/dev/null
read -r up _ </proc/uptime
kvm=no
[ -c /dev/kvm ] && kvm=yes
echo "SQUIB-TESTHOST-BEGIN uptime=$up kvm=$kvm arch=$(uname -m)"
dmesg | grep -iE 'kvm \[|kvm:' | awk 'NR <= 5'
set --
if [ -f /test/args ]; then
	while IFS= read -r a; do set -- "$@" "$a"; done </test/args
fi
cd /test
/test/run "$@" </dev/null
rc=$?
read -r up _ </proc/uptime
echo "SQUIB-TESTHOST-EXIT=$rc uptime=$up"
sync
poweroff -f
