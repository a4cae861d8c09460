#!/bin/sh
# Inside the test host (bench/net_vs_qemu.sh): the guest kit's Linux (root on
# virtio-blk, 1 vCPU, 256 MiB) booted RUNS times in squib (API: drives,
# network-interfaces on tap sqbT, vsock on a uds_path) and in QEMU -M microvm
# (KVM, virtio-net-device on the same tap, QEMU's default userspace backend,
# vhost=off; vhost-vsock-device where /dev/vhost-vsock exists), same kernel,
# initramfs and root image.  Each boot:
#   - guest: `sqbtool netbench 10.0.0.1 5001 MIB PINGS` against `sqbtool
#     tcpserve` on the test host: TCP guest->host and host->guest MB/s (10^6
#     bytes/s, plain bytes, no checksums), 1-byte ping-pong p50/p99 in us;
#   - guest: `sqbtool vsock-agent 1234`; test host: `sqbtool vsock-bench`
#     through squib's uds_path (CONNECT 1234) or AF_VSOCK cid 3 (QEMU):
#     host->guest and guest->host MB/s, ping-pong p50/p99.
# Prints every run, the medians side by side and squib/QEMU ratios (for
# latencies QEMU/squib, so above 1.0 favours squib everywhere).
#   net_vs_qemu_inner.sh [RUNS] [MIB] [PINGS] [VMMS] [gueststat]
runs=${1:-3} mib=${2:-64} pings=${3:-2000}
gueststat=$([ "${5:-}" = gueststat ] && echo 1 || echo 0)
G=${SQB_GUEST_DIR:-/guest}
SQBTOOL=$G/sqbtool
T=$(mktemp -d)
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wait_for() { # REGEX FILE SECONDS (complete lines only)
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		head -n "$( (wc -l <"$2") 2>/dev/null || echo 0)" "$2" 2>/dev/null | grep -qE "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
api() { # api PATH JSON
	curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$T/api.sock" -X PUT \
		-H 'Content-Type: application/json' -d "$2" "http://localhost$1"
}
send() { echo "$1" >&3; sleep 0.5; } # squib's UART takes 64 bytes at a time
gstat() { # N: one line GSTATN <interrupt lines of virtio devices> <cpu line of /proc/stat>
	send "echo GSTAT$1 \$(grep -i virtio /proc/interrupts | tr -s ' ' | tr '\n' '|') \$(head -n1 /proc/stat)"
	wait_for "^GSTAT$1 " "$T/con" 20 && echo "run $n $vmm $(grep -a "^GSTAT$1 " "$T/con" | tail -n1 | tr -d '\r')"
}

IP=""
for p_ in /usr/bin/ip /usr/sbin/ip /sbin/ip /bin/ip; do
	[ -x "$p_" ] && "$p_" -V 2>&1 | grep -q iproute2 && IP=$p_ && break
done
[ -n "$IP" ] || { echo "bench: no iproute2 ip (--bin)"; exit 1; }
[ -c /dev/net/tun ] || insmod /lib/modules/tun.ko 2>/dev/null
if [ ! -c /dev/vhost-vsock ]; then
	if [ -d /test/mods ]; then
		for m in vsock vmw_vsock_virtio_transport_common vhost_iotlb vhost vhost_vsock; do
			[ -f /test/mods/$m.ko ] && insmod /test/mods/$m.ko 2>/dev/null
		done
	else
		modprobe vhost_vsock 2>/dev/null
	fi
fi
qvsock=0
# squib's guest memory is a memfd: transparent huge pages for it (squib-thp,
# huge_pages Transparent) need shmem THP allowed on madvise
case "${4:-}" in *squib-thp*) echo advise >/sys/kernel/mm/transparent_hugepage/shmem_enabled ;; esac
[ -c /dev/vhost-vsock ] && qvsock=1
"$IP" tuntap add dev sqbT mode tap && "$IP" addr add 10.0.0.1/24 dev sqbT &&
	"$IP" link set sqbT up || { echo "bench: cannot set up tap sqbT"; exit 1; }
"$SQBTOOL" tcpserve 5001 >"$T/serve.log" 2>&1 &
spid=$!
wait_for 'SQUIB-TCPSERVE ready' "$T/serve.log" 10 || { echo "bench: tcpserve: $(cat "$T/serve.log")"; exit 1; }

# One boot of VMM (squib|qemu): both benchmarks, one result line in $T/VMM.res.
run_one() {
	vmm=$1 n=$2
	cp "$G/rootfs.ext4" "$T/root.ext4"
	rm -f "$T/in" "$T/api.sock" "$T/v.sock"
	mkfifo "$T/in"
	: >"$T/con"
	if [ "${vmm%%-*}" = squib ]; then
		# debug: squib says why it closes a host vsock connection (a few lines);
		# squib-rx1: one read per vsock RX buffer, the path before batching;
		# squib-tx1: one send per vsock TX packet; squib-base: the binary
		# given as SQB_BENCH_BASE to bench/net_vs_qemu.sh (an older build)
		bin=squib
		[ "$vmm" = squib-base ] && bin=squib-base
		SQB_VSOCK_RX_BATCH=$([ "$vmm" = squib-rx1 ] && echo 1 || echo 32) \
			SQB_VSOCK_TX_BATCH=$([ "$vmm" = squib-tx1 ] && echo 1 || echo 64) \
			SQB_LOG_LEVEL=debug $bin --api-sock "$T/api.sock" <"$T/in" >"$T/con" 2>&1 &
		vpid=$!
		exec 3>"$T/in"
		i=0
		while [ ! -S "$T/api.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		c=$(api /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
			\"is_root_device\": true, \"is_read_only\": false}")
		c=$c$(api /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "sqbT",
			"guest_mac": "06:00:0a:00:00:02"}')
		c=$c$(api /vsock "{\"guest_cid\": 3, \"uds_path\": \"$T/v.sock\"}")
		# squib-thp: guest memory on transparent huge pages, as QEMU's
		# anonymous RAM gets them (needs shmem THP: set below)
		hp=$([ "$vmm" = squib-thp ] && echo ', "huge_pages": "Transparent"')
		c=$c$(api /machine-config "{\"vcpu_count\": 1, \"mem_size_mib\": 256$hp}")
		c=$c$(api /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
			\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
		c=$c$(api /actions '{"action_type": "InstanceStart"}')
		[ "$c" = 204204204204204204 ] || echo "run $n squib: API answered $c: $(cat "$T/api.out")"
		target=$T/v.sock
	else
		vs=""
		[ $qvsock = 1 ] && vs="-device vhost-vsock-device,guest-cid=3"
		# shellcheck disable=SC2086
		qemu-system-x86_64 -M microvm -enable-kvm -cpu host -m 256 -smp 1 \
			-nodefaults -no-user-config -display none -serial stdio \
			-kernel "$G/vmlinuz" -initrd "$G/initramfs.cpio.gz" \
			-append "$args root=LABEL=sqbroot rw" \
			-drive id=root,file="$T/root.ext4",format=raw,if=none,cache=writeback,aio=threads \
			-device virtio-blk-device,drive=root \
			-netdev tap,id=n0,ifname=sqbT,script=no,downscript=no \
			-device virtio-net-device,netdev=n0,mac=06:00:0a:00:00:02 $vs \
			<"$T/in" >"$T/con" 2>&1 &
		vpid=$!
		exec 3>"$T/in"
		target=cid:3
	fi
	line=""
	if wait_for 'SQUIB-READY' "$T/con" 180; then
		send 'ip addr add 10.0.0.2/24 dev eth0'
		send 'ip link set eth0 up'
		send 'ping -c 1 -W 5 10.0.0.1 >/dev/null; echo PING-$?'
		wait_for '^PING-' "$T/con" 20
		send "sqbtool netbench 10.0.0.1 5001 $mib $pings"
		if wait_for 'SQUIB-NETBENCH' "$T/con" 600; then
			line=$(grep -m1 'SQUIB-NETBENCH' "$T/con" | tr -d '\r')
		else
			echo "run $n $vmm: no TCP result"; tail -n 10 "$T/con"
		fi
		if [ "${vmm%%-*}" = squib ] || [ $qvsock = 1 ]; then
			send 'sqbtool vsock-agent 1234 &'
			if wait_for 'SQUIB-VAGENT ready' "$T/con" 30; then
				# 5th argument "gueststat": the guest's interrupt counts and
				# CPU times around the vsock bench (where each VMM's cost shows)
				[ "$gueststat" = 1 ] && gstat 0
				v=$(timeout 600 "$SQBTOOL" vsock-bench "$target" 1234 "$mib" "$pings" 2>&1)
				[ "$gueststat" = 1 ] && gstat 1
				echo "$v" | grep -q 'SQUIB-VSOCKBENCH h2g' && line="$line $(echo "$v" |
					sed -e 's/.*SQUIB-VSOCKBENCH //' -e 's/\([a-z0-9_]*\)=/v_\1=/g')" ||
					{ echo "run $n $vmm vsock: $v"; grep -E 'vsock|VAGENT' "$T/con" | tail -n 12; }
			else
				echo "run $n $vmm: no vsock agent: $(grep SQUIB-VAGENT "$T/con")"
			fi
		fi
		echo "run $n $vmm $line"
		[ -n "$line" ] && echo "$line" >>"$T/$vmm.res"
		send 'reboot -f'
	else
		echo "run $n $vmm: no SQUIB-READY"; tail -n 15 "$T/con"
	fi
	i=0
	while kill -0 "$vpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$vpid" 2>/dev/null
	wait "$vpid" 2>/dev/null
	exec 3>&-
}

vmms=""
command -v squib >/dev/null && vmms="squib" || echo "bench: no squib in the test host: QEMU only"
command -v qemu-system-x86_64 >/dev/null && vmms="$vmms qemu" || echo "bench: no QEMU: squib only"
# VMMS (4th argument, comma-separated, in boot order): e.g. squib-rx1,squib,squib-rx1,squib
# compares squib's vsock RX with one read per buffer (squib-rx1) and batched reads
[ -n "${4:-}" ] && vmms=$(echo "$4" | tr , ' ')
echo "bench: $runs runs, $mib MiB each way, $pings pings, 1 vCPU, 256 MiB; VMMs:$vmms;" \
	"QEMU vsock: $([ $qvsock = 1 ] && echo vhost-vsock || echo none, no /dev/vhost-vsock)"
for n in $(seq 1 "$runs"); do
	for v in $vmms; do
		run_one "$v" "$n"
	done
done

field() { sed -n "s/.* $1=\([0-9.a-z]*\).*/\1/p" "$T/$2.res" 2>/dev/null | grep -v nan | median; }
printf '%-16s %12s %12s %8s\n' measure squib qemu-microvm ratio
for f in g2h_mbs h2g_mbs rr_p50_us rr_p99_us v_h2g_mbs v_g2h_mbs v_rr_p50_us v_rr_p99_us; do
	s=$(field $f squib) q=$(field $f qemu)
	# higher is better, except for latencies (ratio QEMU/squib)
	r=$(awk -v s="$s" -v q="$q" -v f="$f" 'BEGIN { if (s + 0 > 0 && q + 0 > 0) printf "%.2f", f ~ /_us$/ ? q / s : s / q; else print "n/a" }')
	printf '%-16s %12s %12s %8s\n' "$f" "${s:-n/a}" "${q:-n/a}" "$r"
	echo "BENCH $f squib=${s:-nan} qemu=${q:-nan} ratio=$r"
done
# Medians of every other VMM in the boot order (variants of squib), same fields.
for v in $(echo "$vmms" | tr ' ' '\n' | awk '!seen[$0]++'); do
	[ "$v" = squib ] || [ "$v" = qemu ] && continue
	out="BENCH-VARIANT $v"
	for f in g2h_mbs h2g_mbs rr_p50_us rr_p99_us v_h2g_mbs v_g2h_mbs v_rr_p50_us v_rr_p99_us; do
		out="$out $f=$(field $f "$v")"
	done
	echo "$out"
done
[ "$spid" -gt 1 ] && kill "$spid" 2>/dev/null
"$IP" link del sqbT 2>/dev/null
rm -rf "$T"
