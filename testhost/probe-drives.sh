#!/bin/sh
# Does this squib build answer Firecracker's PUT /drives/{drive_id} and
# PUT /entropy?  Starts SQUIB on a private API socket (no guest is started,
# no /dev/kvm is needed), sends one read-only drive and an entropy device,
# and exits 0 when both answer 204; otherwise prints what squib answered and
# exits 1 (2: squib or curl cannot run).  Used to gate the root-on-virtio-blk
# parts of the main job and the testhost_blk test.
#   testhost/probe-drives.sh SQUIB
squib=${1:?usage: probe-drives.sh SQUIB}
command -v curl >/dev/null || { echo "probe-drives: curl not found"; exit 2; }
[ -x "$squib" ] || { echo "probe-drives: $squib is not an executable"; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/sqb-probe.XXXXXX")
dd if=/dev/zero of="$T/probe.img" bs=4096 count=1 2>/dev/null
"$squib" --api-sock "$T/api.sock" </dev/null >"$T/log" 2>&1 &
pid=$!
i=0
while [ ! -S "$T/api.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
put() { # put PATH JSON -> "CODE BODY"
	curl -s -o "$T/out" -w '%{http_code}' --unix-socket "$T/api.sock" -X PUT \
		-H 'Content-Type: application/json' -d "$2" "http://localhost$1"
	printf ' %s' "$(cat "$T/out" 2>/dev/null)"
}
rc=0
if [ ! -S "$T/api.sock" ]; then
	echo "probe-drives: squib did not open its API socket: $(tail -n 3 "$T/log")"
	rc=2
else
	d=$(put /drives/probe "{\"drive_id\": \"probe\", \"path_on_host\": \"$T/probe.img\",
		\"is_root_device\": false, \"is_read_only\": true}")
	e=$(put /entropy '{}')
	case "$d" in
	204*) ;;
	*) echo "PUT /drives/probe answered HTTP $d"; rc=1 ;;
	esac
	case "$e" in
	204*) ;;
	*) echo "PUT /entropy answered HTTP $e"; rc=1 ;;
	esac
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$T"
exit $rc
