/* kvmclock guest: turns kvmclock on (MSR_KVM_SYSTEM_TIME_NEW) and watches
 * its pvclock page for PVCLOCK_GUEST_STOPPED (flags bit 1), which KVM sets
 * when the VMM calls KVM_KVMCLOCK_CTRL (Firecracker does at every pause and
 * after a snapshot load; Linux's watchdogs clear it and skip the pause).
 * Prints "KCLK start" (or "KCLK none" without the feature), then
 * "KCLK stopped N" each time it sees the flag, clearing it as Linux does,
 * and "KCLK tick N" every delay= iterations. */
#include "guest.h"

struct pvclock {
	uint32_t version, pad0;
	uint64_t tsc_timestamp, system_time;
	uint32_t mul;
	int8_t shift;
	uint8_t flags, pad[2];
} __attribute__((packed));

static volatile struct pvclock pvc __attribute__((aligned(64)));

void guest_main(uint32_t start_info)
{
	uint32_t a, b, c, d;
	uint64_t delay, stops = 0;

	cmdline_init(start_info);
	delay = cmdline_u64("delay", 2000);
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000001u));
	if (!(a & (1u << 3))) { /* KVM_FEATURE_CLOCKSOURCE2 */
		puts_serial("KCLK none\n");
		guest_reset();
	}
	uint64_t msr = (uint64_t)(uintptr_t)&pvc | 1;
	__asm__ volatile("wrmsr"
			 :
			 : "c"(0x4b564d01u), "a"((uint32_t)msr), "d"((uint32_t)(msr >> 32)));
	puts_serial("KCLK start\n");
	for (uint64_t n = 1;; n++) {
		if (__atomic_load_n(&pvc.flags, __ATOMIC_ACQUIRE) & 2) {
			__atomic_and_fetch(&pvc.flags, (uint8_t)~2u, __ATOMIC_RELEASE);
			puts_serial("KCLK stopped ");
			put_u64(++stops);
			puts_serial("\n");
		}
		if (n % 64 == 0) {
			puts_serial("KCLK tick ");
			put_u64(n / 64);
			puts_serial("\n");
		}
		delay_loop(delay);
	}
}
