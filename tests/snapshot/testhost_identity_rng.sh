#!/bin/sh
# Runs inside the nested test host (docs/testing.md), started by
# testhost_identity_rng_ctest.sh with the guest kit's generic kernel in
# /guest/generic (guest/build-guest.sh --flavour generic: CONFIG_VMGENID=y).
# Clone identity as Linux sees it (issue 14, docs/fleet.md "Clone identity"):
# Linux's vmgenid driver binds squib's VGEN device (_HID VMGENCTR, ADDR
# package); a guest loop prints 16 bytes of /dev/urandom every 0.2 s with a
# sequence number and the generation ID read just before; the parent is
# snapshotted, resumed and keeps printing; two clones loaded from the
# snapshot must print, for every sequence number, bytes that differ from
# each other and from the parent's -- from their first read after the load
# on (a read begun before the snapshot is told by the old ID) -- and each
# clone's kernel logs exactly one "crng reseeded due to virtual machine
# fork" (6.1 add_vmfork_randomness) while the ID at the ADDR address (read
# with devmem) changed.
G=${SQB_GUEST_GENERIC_DIR:-/guest/generic}
T=$(mktemp -d)
# pass/bad/api/lines/wait_for/start_squib/stop_squib
. "$(dirname "$0")/testhost_lib.sh"

# RND lines of a log: "SEQ GEN HEX" (GEN: the ID's first 8 bytes as devmem
# prints them, HEX: 32 hex digits), complete lines only
rnd() { lines "$1" | sed -n 's/^RND \([0-9][0-9]*\) \(0x[0-9A-Fa-f]*\) \([0-9a-f]\{32\}\)$/\1 \2 \3/p'; }
# the ID at the VGEN ADDR address: two 64-bit devmem reads
VGEN_ID='echo VGEN-ID $(devmem 0xff000 64) $(devmem 0xff008 64)'

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/vmlinuz" ] && [ -f "$G/initramfs.cpio.gz" ] ||
	{ echo "FAIL: no generic kernel kit in $G"; exit 1; }

start_squib parent
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
c1=$(api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}')
c2=$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
	\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
c3=$(api PUT /actions '{"action_type": "InstanceStart"}')
[ "$c1$c2$c3" = 204204204 ] || { bad "boot: API answered $c1 $c2 $c3"; exit 1; }
wait_for 'SQUIB-READY' "$log" 240 || { bad "no SQUIB-READY"; tail -n 40 "$log"; exit 1; }
pass "the generic kernel ($(lines "$log" | sed -n 's/.*Linux version \([^ ]*\).*/\1/p' | head -n1)) booted"

# the driver: /sys/bus/acpi/drivers/vmgenid/VMGENCTR:00 exists once it bound
echo 'echo VGEN-BOUND $(ls /sys/bus/acpi/drivers/vmgenid/ 2>&1 | grep -c VMGENCTR)' >&3
wait_for '^VGEN-BOUND [0-9]' "$log" 30
lines "$log" | grep -q '^VGEN-BOUND 1' &&
	pass "Linux's vmgenid driver bound squib's VGEN device (VMGENCTR:00)" ||
	bad "vmgenid driver: $(lines "$log" | grep VGEN-BOUND) (dmesg: $(dmesg 2>/dev/null | grep -i vmgenid))"
echo 'echo ACPI-ERRORS $(dmesg | grep -ciE "acpi (error|bios error|exception)|vmgenid")' >&3
wait_for '^ACPI-ERRORS [0-9]' "$log" 30
lines "$log" | grep -q '^ACPI-ERRORS 0' && pass "no ACPI or vmgenid errors in dmesg" ||
	bad "dmesg: $(lines "$log" | grep ACPI-ERRORS)"
echo "$VGEN_ID" >&3
wait_for '^VGEN-ID 0x' "$log" 30
id_parent=$(lines "$log" | sed -n 's/^VGEN-ID //p' | tail -n1)
echo "parent's VMGenID: $id_parent"

# the urandom loop: reading the pool is what the loop does first after any
# wakeup, so a clone's first line is its first read after the load.  Each
# line also carries the generation ID read just before the pool: a line
# whose read began before the snapshot (the parent's ID in a clone) says
# nothing about the clone and is left out; every other clone line was read
# after squib wrote the new ID, which it does before the vCPUs run.
echo '(n=0; while :; do n=$((n + 1)); g=$(devmem 0xff000 64); r=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"); echo "RND $n $g $r"; sleep 0.2; done) &' >&3
wait_for '^RND 5 ' "$log" 60 || { bad "no urandom loop output"; tail -n 20 "$log"; exit 1; }
c=$(api PATCH /vm '{"state": "Paused"}')
c=$c$(api PUT /snapshot/create "{\"snapshot_path\": \"$T/rng.state\",
	\"mem_file_path\": \"$T/rng.mem\"}")
[ "$c" = 204204 ] && pass "snapshotted" || { bad "snapshot: $c $(cat $T/api.out)"; exit 1; }
last=$(rnd "$log" | tail -n1 | cut -d' ' -f1)
c=$(api PATCH /vm '{"state": "Resumed"}')
[ "$c" = 204 ] || { bad "resume of the parent: $c $(cat $T/api.out)"; exit 1; }
wait_for "^RND $((last + 6)) " "$log" 60 || bad "the parent printed nothing after the snapshot"
rnd "$log" | awk -v l="$last" '$1 > l {print $1, $3}' >$T/parent.rnd
gen0=${id_parent%% *}
echo "parent: last line before the snapshot RND $last; $(wc -l <$T/parent.rnd) lines after"
stop_squib

for clone in A B; do
	start_squib "clone$clone"
	c=$(api PUT /snapshot/load "{\"snapshot_path\": \"$T/rng.state\",
		\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/rng.mem\"},
		\"resume_vm\": true}")
	[ "$c" = 204 ] || { bad "clone $clone: load $c $(cat $T/api.out)"; exit 1; }
	wait_for "^RND $((last + 6)) " "$log" 60 || bad "clone $clone printed no urandom lines"
	rnd "$log" | awk -v g="$gen0" '$2 != g {print $1, $3}' >$T/clone$clone.rnd
	old=$(rnd "$log" | awk -v g="$gen0" '$2 == g' | wc -l)
	[ "$old" -le 1 ] && echo "clone $clone: $old line(s) read before the snapshot (parent's ID) left out" ||
		bad "clone $clone: $old lines carry the parent's generation ID"
	echo "dmesg | grep -c 'crng reseeded due to virtual machine fork' | sed 's/^/RESEEDS /'" >&3
	wait_for '^RESEEDS [0-9]' "$log" 30
	lines "$log" | grep -q '^RESEEDS 1$' &&
		pass "clone $clone: the kernel reseeded its crng once for the VM fork" ||
		bad "clone $clone: $(lines "$log" | grep RESEEDS) reseeds logged"
	echo "$VGEN_ID" >&3
	wait_for '^VGEN-ID 0x' "$log" 30
	id=$(lines "$log" | sed -n 's/^VGEN-ID //p' | tail -n1)
	eval "id_$clone=\$id"
	echo "clone $clone: VMGenID $id; first line after the load: $(head -n1 $T/clone$clone.rnd)"
	# where the first read fell against the reseed message on the console
	lines "$log" | grep -nE '^RND |crng reseeded' | head -n 3 | sed "s/^/clone $clone console: /"
	stop_squib
done

case "$id_A $id_B" in
*0x*0x*0x*0x*)
	[ "$id_A" != "$id_parent" ] && [ "$id_B" != "$id_parent" ] && [ "$id_A" != "$id_B" ] &&
		pass "the ID at ADDR changed in each clone (parent, A, B all differ)" ||
		bad "VMGenID parent $id_parent, A $id_A, B $id_B" ;;
*) bad "could not read the VMGenID with devmem: A '$id_A' B '$id_B'" ;;
esac

# For every sequence number two of parent, A, B printed: different bytes.
first_a=$(head -n1 $T/cloneA.rnd | cut -d' ' -f1)
first_b=$(head -n1 $T/cloneB.rnd | cut -d' ' -f1)
[ -n "$first_a" ] && [ -n "$first_b" ] || bad "a clone has no line read with its new ID"
same=$(cat $T/parent.rnd $T/cloneA.rnd $T/cloneB.rnd | sort | uniq -d | wc -l)
common=$(cat $T/parent.rnd $T/cloneA.rnd $T/cloneB.rnd | cut -d' ' -f1 | sort | uniq -d | wc -l)
hexdup=$(cat $T/parent.rnd $T/cloneA.rnd $T/cloneB.rnd | cut -d' ' -f2 | sort | uniq -d | wc -l)
if [ "$common" -ge 3 ] && [ "$same" = 0 ] && [ "$hexdup" = 0 ]; then
	pass "urandom differs in parent and both clones from the first read after the load on ($common sequence numbers compared, clones from RND $first_a / RND $first_b)"
else
	bad "urandom: $same equal lines, $hexdup repeated outputs over $common shared sequence numbers"
	for f in parent cloneA cloneB; do head -n 3 $T/$f.rnd | sed "s/^/$f: /"; done
fi
rm -rf "$T"
exit $fail
