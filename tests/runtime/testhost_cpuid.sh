#!/bin/sh
# Runs inside the nested test host (docs/testing.md):
#   testhost/run.sh --rootfs --bin build/runtime/squib --bin /usr/bin/curl \
#       --file tests/snapshot/testhost_lib.sh:/test/testhost_lib.sh tests/runtime/testhost_cpuid.sh
# Firecracker's CPUID normalization seen by Debian's Linux (docs/cpuid.md;
# Firecracker's test_topology.py and test_cpu_features_x86_64.py): for 2
# vCPUs with smt off and 4 with smt on (all four with SQB_CPUID_ALL=1), /proc/cpuinfo shows every vCPU in one
# package ("siblings" = vCPUs), "cpu cores" = vCPUs / threads per core,
# "core id" = vCPU / threads per core, and the normalized "model name"
# (AMD EPYC, or Intel(R) Xeon(R) Processor).  In the test host the guest's
# CPUID exits to KVM, so Linux reads what squib set.
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
for lib_ in "$(dirname "$0")/testhost_lib.sh" "$(dirname "$0")/../snapshot/testhost_lib.sh"; do
	[ -f "$lib_" ] && . "$lib_" && break
done
command -v start_squib >/dev/null || { echo "FAIL: testhost_lib.sh not found"; exit 1; }
pid="" # cleanup, die, send, cmd: testhost_lib.sh

command -v squib >/dev/null || { echo "FAIL: squib not in the test host"; exit 1; }
[ -c /dev/kvm ] || { echo "FAIL: no /dev/kvm in the test host"; exit 1; }
[ -f "$G/rootfs.ext4" ] || { echo "FAIL: $G/rootfs.ext4 missing (--rootfs)"; exit 1; }
cp "$G/rootfs.ext4" "$T/root.ext4"
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"

# field NAME: the values of one /proc/cpuinfo field, one per vCPU, in order
field() { lines "$log" | grep "^C$1" | sed 's/^[^:]*: *//' | tr '\n' ' ' | sed 's/ $//'; }

check() { # check VCPUS SMT
	n=$1 smt=$2 tpc=1
	[ "$smt" = true ] && [ "$n" -gt 1 ] && tpc=2
	start_squib "c$n$smt"
	c=$(api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$T/root.ext4\",
		\"is_root_device\": true, \"is_read_only\": false}")
	c=$c$(api PUT /machine-config "{\"vcpu_count\": $n, \"mem_size_mib\": 256, \"smt\": $smt}")
	c=$c$(api PUT /boot-source "{\"kernel_image_path\": \"$G/vmlinuz\",
		\"initrd_path\": \"$G/initramfs.cpio.gz\", \"boot_args\": \"$args\"}")
	c=$c$(api PUT /actions '{"action_type": "InstanceStart"}')
	[ "$c" = 204204204204 ] || die "$n vCPUs smt $smt: API answered $c: $(cat "$T/api.out")"
	wait_for 'SQUIB-READY|SQUIB-ROOT-ERROR' "$log" 240 || die "$n vCPUs smt $smt: no SQUIB-READY"
	# each console line is its own sh -c (guest/init.sh); field() picks
	# the fields out of every line starting with p, m, s or c
	cmd 60 "grep '^[pmsc]' /proc/cpuinfo|sed s/^/C/" || bad "console"
	want_core="" i=0
	while [ $i -lt "$n" ]; do
		want_core="$want_core${want_core:+ }$((i / tpc))"
		i=$((i + 1))
	done
	want_sib=$(printf "$n %.0s" $(seq "$n") | sed 's/ $//')
	want_cores=$(printf "$((n / tpc)) %.0s" $(seq "$n") | sed 's/ $//')
	procs=$(field processor)
	sib=$(field siblings)
	cores=$(field 'cpu cores')
	cid=$(field 'core id')
	model=$(field 'model name' | cut -d' ' -f1-4)
	echo "INFO: $n vCPUs smt $smt: processors [$procs] siblings [$sib] cpu cores [$cores]" \
		"core id [$cid] model [$model]"
	[ "$(echo "$procs" | wc -w)" = "$n" ] && pass "$n vCPUs smt $smt: Linux sees $n processors" ||
		bad "$n vCPUs smt $smt: processors [$procs]"
	[ "$sib" = "$want_sib" ] && pass "$n vCPUs smt $smt: siblings $n on every vCPU (one package)" ||
		bad "$n vCPUs smt $smt: siblings [$sib], wanted [$want_sib]"
	[ "$cores" = "$want_cores" ] && pass "$n vCPUs smt $smt: cpu cores $((n / tpc))" ||
		bad "$n vCPUs smt $smt: cpu cores [$cores], wanted [$want_cores]"
	[ "$cid" = "$want_core" ] && pass "$n vCPUs smt $smt: core ids [$cid] ($tpc thread(s) per core)" ||
		bad "$n vCPUs smt $smt: core id [$cid], wanted [$want_core]"
	case $(field 'model name' | head -c 200) in
	"AMD EPYC"* | "Intel(R) Xeon(R) Processor"*) pass "$n vCPUs smt $smt: model name is Firecracker's" ;;
	*) bad "$n vCPUs smt $smt: model name [$(field 'model name')]" ;;
	esac
	stop_squib
	pid=""
}

# two boots cover both smt settings and both sizes (each boot of Linux in
# the nested test host costs about 25 s of CI time; all four cases:
# SQB_CPUID_ALL=1)
check 2 false
check 4 true
if [ "${SQB_CPUID_ALL:-0}" = 1 ]; then
	check 2 true
	check 4 false
fi
if grep -lE 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log 2>/dev/null; then
	bad "sanitizer report: $(grep -hE -A5 'ERROR: AddressSanitizer|runtime error:' "$T"/*.log | head -n 20)"
fi
cleanup
exit $fail
