#!/bin/busybox sh
# /init of the nested test host (testhost/run.sh): load kvm + kvm-amd so
# /dev/kvm is real (nested SVM) KVM, run /test/run, report its exit status on
# the serial console as SQUIB-TESTHOST-EXIT=<n> and power off.
/bin/busybox --install -s /bin
export PATH=/test:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root TMPDIR=/tmp SQB_GUEST_DIR=/guest SQB_IN_TESTHOST=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
ip link set lo up 2>/dev/null

for m in irqbypass kvm kvm-amd; do
	insmod "/lib/modules/$m.ko" || echo "testhost: insmod $m failed"
done
read -r up _ </proc/uptime
echo "SQUIB-TESTHOST-BEGIN uptime=$up kvm=$([ -c /dev/kvm ] && echo yes || echo no)"

# Arguments for the test come from /test/args (one per line), written by run.sh.
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
