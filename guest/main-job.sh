#!/bin/sh
# The Linux stage of scripts/main.sh: boot the default guest in squib through
# the API and show its console (boot-linux.sh), then snapshot a running guest,
# SIGKILL squib, load the snapshot in a new squib and let the guest prove its
# state survived (tests/snapshot/testhost_snapshot.sh).  With a squib that
# answers PUT /drives the guest's root is on virtio-blk and the console shows
# mount, df and /dev/hwrng (boot-linux.sh decides).  Runs inside the
# nested test host (testhost/main-stage.sh copies both scripts to /test) or
# directly where /dev/kvm is hardware KVM.
here=$(cd "$(dirname "$0")" && pwd)
pick() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done; return 1; }
boot=$(pick /test/boot-linux.sh "$here/boot-linux.sh") || { echo "main-job: boot-linux.sh missing"; exit 2; }
snap=$(pick /test/testhost_snapshot.sh "$here/../tests/snapshot/testhost_snapshot.sh") ||
	{ echo "main-job: testhost_snapshot.sh missing"; exit 2; }

echo "=== boot the Linux guest and show its console ==="
sh "$boot" "$@" || { echo "main-job: boot stage failed"; exit 1; }
echo "=== snapshot, kill, load in a new squib, check the guest ==="
sh "$snap" || { echo "main-job: snapshot/restore stage failed"; exit 1; }
echo "main-job: Linux guest booted, snapshotted and restored"
