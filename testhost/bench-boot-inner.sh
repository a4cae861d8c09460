#!/bin/sh
# Inside the test host (testhost/bench-boot.sh): boot the guest kit's kernel
# + initramfs RUNS times in squib (--no-api --config-file) and in QEMU
# (-M microvm, KVM) with the same kernel, initramfs, memory and vCPUs, timing
# process start to SQUIB-READY with bootmark; print per-run times, medians,
# the ratio squib/QEMU and squib's memory beyond guest RAM.
runs=${1:-5} vcpus=${2:-1} mem=${3:-256} kimg=${4:-vmlinuz}
G=${SQB_GUEST_DIR:-/guest}
T=$(mktemp -d)
args="console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd quiet"
cat >"$T/cfg.json" <<JSON
{"boot-source": {"kernel_image_path": "$G/$kimg", "initrd_path": "$G/initramfs.cpio.gz",
                 "boot_args": "$args"},
 "machine-config": {"vcpu_count": $vcpus, "mem_size_mib": $mem}}
JSON
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

have_squib=0
command -v squib >/dev/null && have_squib=1
echo "bench: $runs runs, $vcpus vCPUs, $mem MiB, kernel $kimg, squib=$have_squib"
for i in $(seq 1 "$runs"); do
	if [ $have_squib = 1 ]; then
		if out=$(bootmark SQUIB-READY 120 "$T/squib.$i.log" -- squib --no-api --config-file "$T/cfg.json"); then
			echo "run $i squib $out"
			echo "$out" | field ms >>"$T/squib.ms"
			echo "$out" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } } END { print r["rss_anon_kb"] + r["rss_file_kb"] }' >>"$T/squib.kb"
		else
			echo "run $i squib FAILED"; tail -n 15 "$T/squib.$i.log"
		fi
	fi
	if out=$(bootmark SQUIB-READY 120 "$T/qemu.$i.log" -- qemu-system-x86_64 -M microvm \
		-enable-kvm -cpu host -m "$mem" -smp "$vcpus" -nodefaults -no-user-config \
		-display none -serial stdio -kernel "$G/$kimg" -initrd "$G/initramfs.cpio.gz" \
		-append "$args"); then
		echo "run $i qemu-microvm $out"
		echo "$out" | field ms >>"$T/qemu.ms"
	else
		echo "run $i qemu-microvm FAILED"; tail -n 15 "$T/qemu.$i.log"
	fi
done
q=$(median <"$T/qemu.ms" 2>/dev/null)
echo "BENCH qemu-microvm start_to_ready_median_ms=$q"
if [ $have_squib = 1 ] && [ -s "$T/squib.ms" ]; then
	s=$(median <"$T/squib.ms")
	echo "BENCH squib start_to_ready_median_ms=$s vmm_rss_kb_median=$(median <"$T/squib.kb")"
	echo "BENCH ratio squib/qemu=$(awk -v s="$s" -v q="$q" 'BEGIN { printf "%.3f", s / q }') (target <= 0.8)"
fi
rm -rf "$T"
