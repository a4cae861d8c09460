#!/bin/sh
# Runs inside the nested test host (docs/testing.md), started by
# testhost_balloon_ctest.sh with squib, squib-pager and curl.
# virtio-balloon with the guest kit's Linux (cloud kernel, its virtio_balloon
# module; issue 14, docs/testing.md): the driver binds; inflating
# takes pages out of the guest (MemTotal falls by the target: no
# DEFLATE_ON_OOM) and GET /balloon/statistics says actual = target and
# carries the driver's statistics; deflating gives them back; free page
# reporting hands a freed 96 MiB tmpfs file back to the host (squib's RSS
# falls).  Then a 32 MiB checksummed pattern in guest RAM (tmpfs), the
# balloon inflated to 48 MiB, a Full snapshot, and three clones -- mmap,
# lazy File, Uffd through squib-pager -- each find the pattern intact, the
# balloon at 48 MiB, and deflate to 0 with the pattern still intact.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
# pass/bad/api/lines/wait_for/start_squib/stop_squib
. "$(dirname "$0")/testhost_lib.sh"

n=0
guest() { # guest 'COMMAND' -> its output line "R<n> <output>" in $out
	n=$((n + 1))
	echo "echo R$n \$($1)" >&3
	wait_for "^R$n( |\$)" "$log" "${2:-60}" || { bad "guest: no answer to $1"; out=""; return 1; }
	out=$(lines "$log" | sed -n "s/^R$n //p" | tail -n1)
}

# sets $mt (not in a subshell: guest's counter n must advance in this shell)
memtotal() { guest "awk '/^MemTotal/ {print \$2}' /proc/meminfo"; mt=$out; }

actual_mib() { # GET /balloon/statistics' actual_mib, or -1
	[ "$(api GET /balloon/statistics)" = 200 ] || { echo -1; return; }
	sed -n 's/.*"actual_mib": *\([0-9]*\).*/\1/p' $T/api.out
}

balloon_to() { # balloon_to MIB WHAT -> 0 when the guest reached it within 90 s
	c=$(api PATCH /balloon "{\"amount_mib\": $1}")
	[ "$c" = 204 ] || { bad "$2: PATCH /balloon $1: $c $(cat $T/api.out)"; return 1; }
	i=0
	while [ $i -lt 180 ]; do
		[ "$(actual_mib)" = "$1" ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	bad "$2: the balloon did not reach $1 MiB (actual $(actual_mib), $(cat $T/api.out))"
	return 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }

start_squib parent
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /balloon '{"amount_mib": 0, "deflate_on_oom": false,
	"stats_polling_interval_s": 1, "free_page_reporting": true}')
c4=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3$c4" = 204204204204 ] || { bad "boot: API answered $c1 $c2 $c3 $c4"; exit 1; }
wait_for 'SQUIB-READY' "$log" 180 || { bad "no SQUIB-READY"; tail -n 30 "$log"; exit 1; }
# without root= the initramfs loads no modules: load them (virtio_balloon last)
guest 'for m in $(cat /lib/modules/load.order); do insmod /lib/modules/$m.ko 2>/dev/null; done; ls /sys/bus/virtio/drivers/virtio_balloon | grep -c virtio'
[ "$out" = 1 ] && pass "Linux's virtio_balloon driver bound squib's balloon" ||
	{ bad "virtio_balloon: bound devices '$out'"; exit 1; }
memtotal
mt0=$mt

# inflate, statistics, deflate
if balloon_to 64 inflate; then
	memtotal
	[ $((mt0 - mt)) -eq 65536 ] &&
		pass "inflated to 64 MiB: the guest's MemTotal fell by 64 MiB ($mt0 -> $mt kB)" ||
		bad "inflated to 64 MiB: MemTotal $mt0 -> $mt kB"
fi
sleep 2
api GET /balloon/statistics >/dev/null
grep -q '"free_memory"' $T/api.out && grep -q '"total_memory"' $T/api.out &&
	pass "statistics from the driver: $(cat $T/api.out)" ||
	{
		bad "statistics: $(cat $T/api.out)"
		guest 'cat /sys/bus/virtio/drivers/virtio_balloon/virtio*/features; grep -i virtio /proc/interrupts | tr -s " " | tr "\n" ";"'
		echo "  guest: features and interrupts: $out"
		lines "$log" | grep -iE 'balloon|virtio' | grep -v '^R[0-9]' | tail -n 10 | sed 's/^/  log: /'
	}
if balloon_to 0 deflate; then
	memtotal
	[ "$mt" = "$mt0" ] && pass "deflated to 0: MemTotal back to $mt kB" ||
		bad "deflated: MemTotal $mt kB, $mt0 before"
fi

# free page reporting: a freed 96 MiB is handed back (2 MiB blocks, ~2 s delay)
guest 'dd if=/dev/zero of=/run/big bs=1M count=96 2>/dev/null; echo ok'
sleep 3
r_full=$(rss_kb)
guest 'rm /run/big; echo ok'
i=0
while [ $i -lt 60 ] && [ "$(rss_kb)" -gt $((r_full - 49152)) ]; do sleep 0.5; i=$((i + 1)); done
r_after=$(rss_kb)
[ "$r_after" -le $((r_full - 49152)) ] &&
	pass "free page reporting: squib's RSS fell from $r_full to $r_after kB after the guest freed 96 MiB" ||
	{
		bad "free page reporting: squib's RSS $r_full -> $r_after kB after the guest freed 96 MiB"
		grep -E 'Rss|VmRSS' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ';'
		echo
	}

# the pattern, the balloon at 48 MiB, the snapshot
guest 'sqbtool memfill 32 7 /run/mem.pat | tail -n1' 120
case "$out" in *SQUIB-MEMFILL\ done*) ;; *) bad "memfill: $out"; exit 1 ;; esac
balloon_to 48 "before the snapshot" || exit 1
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/bal.state\",
	\"mem_file_path\": \"$T/bal.mem\"}")
[ "$c" = 204204 ] && pass "snapshotted with the balloon at 48 MiB" ||
	{ bad "snapshot: $c $(cat $T/api.out)"; exit 1; }
stop_squib

for mode in mmap lazy uffd; do
	start_squib "clone-$mode"
	ppid=""
	if [ $mode = uffd ]; then
		squib-pager "$T/pager.sock" "$T/bal.mem" >"$T/pager.log" 2>&1 &
		ppid=$!
		i=0
		while [ ! -S "$T/pager.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		mb="{\"backend_type\": \"Uffd\", \"backend_path\": \"$T/pager.sock\"}"
		ext=""
	else
		mb="{\"backend_type\": \"File\", \"backend_path\": \"$T/bal.mem\"}"
		ext=", \"squib\": {\"restore\": \"$mode\"}"
	fi
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/bal.state\",
		\"mem_backend\": $mb, \"resume_vm\": true$ext}")
	if [ "$c" != 204 ]; then
		bad "$mode: load $c $(cat $T/api.out)"
	else
		guest 'sqbtool memcheck 32 7 /run/mem.pat | tail -n1' 120
		case "$out" in *SQUIB-MEMCHECK\ ok*) pass "$mode: the 32 MiB pattern is intact" ;;
		*) bad "$mode: memcheck after the load: $out" ;; esac
		api GET /balloon >/dev/null
		grep -q '"amount_mib": *48' $T/api.out && [ "$(actual_mib)" = 48 ] &&
			pass "$mode: the balloon is at 48 MiB after the load" ||
			bad "$mode: balloon $(cat $T/api.out), actual $(actual_mib)"
		if balloon_to 0 "$mode: deflate"; then
			memtotal
			guest 'sqbtool memcheck 32 7 /run/mem.pat | tail -n1' 120
			case "$out" in *SQUIB-MEMCHECK\ ok*)
				[ "$mt" = "$mt0" ] &&
					pass "$mode: deflated to 0 (MemTotal $mt kB), pattern intact" ||
					bad "$mode: deflated: MemTotal $mt kB, $mt0 at boot" ;;
			*) bad "$mode: memcheck after the deflate: $out" ;; esac
		fi
	fi
	stop_squib
	if [ -n "$ppid" ] && [ "$ppid" -gt 1 ]; then
		kill "$ppid" 2>/dev/null
		wait "$ppid" 2>/dev/null
		rm -f "$T/pager.sock"
	fi
done
rm -rf "$T"
exit $fail
