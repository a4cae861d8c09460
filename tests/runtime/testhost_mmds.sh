#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --bin /usr/sbin/ip tests/runtime/testhost_mmds.sh
# Firecracker's MMDS with Debian's Linux and its own TCP stack, the steps of
# Firecracker's test_mmds.py (test_mmds_snapshot, test_mmds_v2_negative,
# test_larger_than_mss_payloads, test_mmds_response) and its user guide:
#   - eth0 has the mtu given to PUT /network-interfaces (VIRTIO_NET_F_MTU);
#   - MMDS V2 on eth0 at 169.254.169.250 with a route to it; the guest asks
#     without a token (401 and Firecracker's text), with a bad token, for a
#     token (PUT /latest/api/token), then reads the document in IMDS and JSON
#     form and a value larger than two MSS whole (its FNV-1a checked here);
#   - a PATCH from the host is seen by the guest's next GET;
#   - Full snapshot, SIGKILL, load in a new squib: GET /vm/config shows the
#     same mmds-config, the old token is refused ("MMDS token not valid."),
#     the document is gone (the guest reads null, the host {}), and after a
#     new PUT /mmds the guest reads it with a new token.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
MIP=169.254.169.250
# pass, bad, api, wait_for, start_squib, stop_squib: the test-host helpers
# (the ctest wrapper puts them beside this script; a direct run finds them
# in tests/snapshot/)
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v start_squib >/dev/null || { echo "FAIL: testhost_lib.sh not found"; exit 1; }
die() { bad "$*"; cleanup; exit 1; }
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	exec 3>&- 2>/dev/null
	"$IP" link del sqbM 2>/dev/null
	rm -rf "$T"
}

# One console line; squib's UART takes 64 bytes at a time.
send() {
	[ ${#1} -lt 60 ] || { echo "FAIL: test bug: console line over 60 bytes: $1"; fail=1; }
	echo "$1" >&3
	sleep 0.5
}
ncmd=0
cmd() { # cmd SECONDS COMMAND: waits for its (short) end marker
	ncmd=$((ncmd + 1))
	send "$2;echo Z$ncmd."
	wait_for "^Z$ncmd\\." "$log" "$1"
}
# the last "SQUIB-HTTP ..." line and body of the console
last_http() { grep -E '^SQUIB-HTTP ' "$log" | tail -n 1; }
last_body() { grep -oE 'SQUIB-BODY<.*>SQUIB-BODY' "$log" | tail -n 1 | sed 's/^SQUIB-BODY<//; s/>SQUIB-BODY$//'; }
http() { # http SECONDS GUEST-ARGS...: one sqbtool http in the guest
	s_=$1
	shift
	cmd "$s_" ". /e;h $*" || bad "guest: sqbtool http $* did not finish"
}

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
IP=""
for p_ in /usr/bin/ip /usr/sbin/ip /sbin/ip /bin/ip; do
	[ -x "$p_" ] && "$p_" -V 2>&1 | grep -q iproute2 && IP=$p_ && break
done
[ -n "$IP" ] || { echo "FAIL: no iproute2 ip in the test host (--bin /usr/sbin/ip)"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] && [ -x "$G/sqbtool" ] || { echo "FAIL: $G/rootfs.ext4 or sqbtool missing (--rootfs)"; exit 1; }
"$G/sqbtool" 2>&1 | grep -q 'http \[-s FILE\]' || { echo "FAIL: the guest kit's sqbtool has no http (rebuild the kit)"; exit 1; }
[ -c /dev/net/tun ] || insmod /lib/modules/tun.ko 2>/dev/null
[ -c /dev/net/tun ] || { echo "FAIL: no /dev/net/tun (tun.ko from the guest kit)"; exit 1; }

cp "$G/rootfs.ext4" "$T/root.ext4"
"$IP" tuntap add dev sqbM mode tap && "$IP" link set sqbM up || die "ip tuntap add"

# A value larger than two MSS (test_larger_than_mss_payloads; 1360 bytes at
# this interface's MTU of 1400).
big=$(awk 'BEGIN{for(i=0;i<2920;i++)printf "%c", 97+(i*7)%26}')
doc="{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-12345678\", \"reservation-id\": \"r-fea54097\"}}, \"big\": \"$big\"}"

# ---- boot: MMDS V2 on eth0 at $MIP ----
start_squib boot
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
	\"is_root_device\": true, \"is_read_only\": false}")
c=$c$(api PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "sqbM",
	"guest_mac": "06:00:0a:00:00:02", "mtu": 1400}')
c=$c$(api PUT /mmds/config "{\"version\": \"V2\", \"ipv4_address\": \"$MIP\",
	\"network_interfaces\": [\"eth0\"]}")
c=$c$(api PUT /mmds "$doc")
[ "$c" = 204204204204 ] || die "PUT /drives, /network-interfaces, /mmds/config, /mmds: $c $(cat "$T/api.out")"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || die "boot: API answered $c1 $c2 $c3: $(cat "$T/api.out")"
wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 180 || die "no SQUIB-READY"
# swagger's NetworkInterface.mtu reaches Linux through VIRTIO_NET_F_MTU
cmd 20 'echo MTU=$(cat /sys/class/net/eth0/mtu)' || bad "console"
grep -q '^MTU=1400' "$log" && pass "Linux took the mtu of PUT /network-interfaces (1400)" ||
	bad "eth0 mtu: $(grep '^MTU=' "$log")"
cmd 20 'ip addr add 10.0.0.2/24 dev eth0' || bad "ip addr"
cmd 20 'ip link set eth0 up' || bad "ip link up"
cmd 20 "ip route add $MIP dev eth0" || bad "ip route"
# each console line runs in its own sh -c (guest/init.sh): names for the
# requests go into /e, which every request line sources
cmd 10 "echo 'M=$MIP;P=/latest/meta-data' >/e" || bad "console"
cmd 10 "echo 'TK=X-metadata-token' >>/e" || bad "console"
cmd 10 "echo 'TT=X-metadata-token-ttl-seconds' >>/e" || bad "console"
cmd 10 "echo \"AJ='Accept: application/json'\" >>/e" || bad "console"
cmd 10 "echo 'h(){ sqbtool http \"\$@\";}' >>/e" || bad "console"

# ---- V2 without and with a token (test_mmds_v2_negative) ----
http 30 '$M GET $P/ami-id'
last_http | grep -q 'status=401' && last_body | grep -q 'No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to specify the session token.' &&
	pass "V2 GET without a token: 401 with Firecracker's text" ||
	bad "V2 GET without a token: $(last_http) $(last_body)"
http 30 '$M GET /latest "$TK: foo"'
last_http | grep -q 'status=401' && last_body | grep -q 'MMDS token not valid.' &&
	pass "V2 GET with a made-up token: 401 MMDS token not valid." ||
	bad "bad token: $(last_http) $(last_body)"
http 30 '$M PUT /latest/api/token "$TT: 0"'
last_http | grep -q 'status=400' && last_body | grep -q 'Invalid time to live value provided for token: 0. Please provide a value between 1 and 21600.' &&
	pass "token TTL 0 refused with Firecracker's text" || bad "TTL 0: $(last_http) $(last_body)"
http 30 '-s /k $M PUT /latest/api/token "$TT: 60"'
last_http | grep -q 'status=200' && pass "PUT /latest/api/token: a token" || die "no token: $(last_http) $(last_body)"

# ---- the document in IMDS and JSON form (test_mmds_response) ----
http 30 '$M GET $P "$TK: @/k"'
grep -A1 '^SQUIB-BODY<ami-id.\{0,1\}$' "$log" | grep -q '^reservation-id>SQUIB-BODY' &&
	pass "IMDS listing of /latest/meta-data" || bad "IMDS listing: $(last_http) $(grep -A2 'SQUIB-BODY<' "$log" | tail -n 3)"
http 30 '$M GET $P/ami-id "$TK: @/k"'
[ "$(last_body)" = "ami-12345678" ] && pass "IMDS value: ami-12345678" || bad "IMDS value: $(last_http) $(last_body)"
http 30 '$M GET $P/ami-id "$TK: @/k" "$AJ"'
[ "$(last_body)" = '"ami-12345678"' ] && pass "JSON value: \"ami-12345678\"" || bad "JSON value: $(last_http) $(last_body)"
http 30 '$M GET /big "$TK: @/k"'
last_http | grep -q 'status=200 len=2920 ' && [ "$(last_body)" = "$big" ] &&
	pass "a 2920-byte value (over two MSS) arrives whole" ||
	bad "big value: $(last_http) body=$(last_body | wc -c)"
http 30 '$M GET /nope "$TK: @/k"'
last_http | grep -q 'status=404' && last_body | grep -q 'Resource not found: /nope.' &&
	pass "404 Resource not found: /nope." || bad "404: $(last_http) $(last_body)"
# test_guest_mmds_hang: a Content-Length larger than what comes is
# answered at once, not waited for
http 30 '$M GET / "$TK: @/k" "Content-Length: 100"'
last_body | grep -q 'Invalid request' && pass "GET with Content-Length 100 and no body: Invalid request, no hang" ||
	bad "Content-Length GET: $(last_http) $(last_body)"
http 30 '$M PUT / "$TK: @/k" "Content-Length: 100"'
last_body | grep -q 'Invalid request' && pass "PUT with Content-Length 100 and no body: Invalid request" ||
	bad "Content-Length PUT: $(last_http) $(last_body)"
c=$(api PATCH /mmds '{"latest": {"meta-data": {"ami-id": "ami-87654321"}}}')
[ "$c" = 204 ] || bad "PATCH /mmds: $c $(cat "$T/api.out")"
http 30 '$M GET $P/ami-id "$TK: @/k"'
[ "$(last_body)" = "ami-87654321" ] && pass "a PATCH from the host is what the guest reads next" ||
	bad "after PATCH: $(last_http) $(last_body)"
c=$(api GET /vm/config)
cfg_before=$(grep -o '"mmds-config":{[^}]*}' "$T/api.out")
echo "  $cfg_before"

# ---- snapshot, kill, load (test_mmds_snapshot) ----
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/s.state\", \"mem_file_path\": \"$T/s.mem\",
	\"snapshot_type\": \"Full\"}")
[ "$c" = 204204 ] && pass "Full snapshot" || die "snapshot: $c $(cat "$T/api.out")"
stop_squib
start_squib load
c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/s.state\",
	\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/s.mem\"}, \"resume_vm\": true}")
[ "$c" = 204 ] && pass "loaded in a new squib" || die "load: $c $(cat "$T/api.out")"
c=$(api GET /vm/config)
cfg_after=$(grep -o '"mmds-config":{[^}]*}' "$T/api.out")
[ -n "$cfg_before" ] && [ "$cfg_before" = "$cfg_after" ] &&
	pass "mmds-config kept: $cfg_after" || bad "mmds-config before '$cfg_before' after '$cfg_after'"
c=$(api GET /mmds)
[ "$c" = 200 ] && [ "$(cat "$T/api.out")" = "{}" ] && pass "the host's GET /mmds after the load: {}" ||
	bad "GET /mmds after load: $c $(cat "$T/api.out")"
http 60 '$M GET /latest "$TK: @/k"'
last_http | grep -q 'status=401' && last_body | grep -q 'MMDS token not valid.' &&
	pass "the token from before the snapshot is refused after the load" ||
	bad "old token after load: $(last_http) $(last_body)"
http 30 '-s /k $M PUT /latest/api/token "$TT: 60"'
last_http | grep -q 'status=200' || bad "new token: $(last_http) $(last_body)"
http 30 '$M GET / "$TK: @/k" "$AJ"'
[ "$(last_body)" = "null" ] && pass "the document is not in the snapshot: the guest reads null" ||
	bad "document after load: $(last_http) $(last_body)"
c=$(api PUT /mmds '{"latest": {"meta-data": {"ami-id": "ami-clone"}}}')
[ "$c" = 204 ] || bad "PUT /mmds after load: $c $(cat "$T/api.out")"
http 30 '$M GET $P/ami-id "$TK: @/k"'
[ "$(last_body)" = "ami-clone" ] && pass "after a new PUT /mmds the clone's guest reads it" ||
	bad "after re-PUT: $(last_http) $(last_body)"
stop_squib
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
[ $fail = 0 ] || { echo "== last console lines"; tail -n 30 "$log"; }
cleanup
exit $fail
