/* cpuid guest: executes CPUID for a fixed set of leaves and RDMSR for a few
 * MSRs and prints what it sees, one line each, for the custom CPU template
 * test (tests/runtime/test_cpu_config.c), then resets:
 *   CPUID <leaf> <subleaf> <eax> <ebx> <ecx> <edx>
 *   MSR <index> <value>
 *   CPUID done */
#include "guest.h"

static const uint32_t leaves[][2] = {
    {0x1, 0}, {0x7, 0}, {0xd, 1}, {0x80000001, 0}, {0x80000008, 0},
};

/* PAT (not a boot MSR, guest-readable) and IA32_MISC_ENABLE (a boot MSR:
 * squib's boot value wins over a template, as Firecracker's). */
static const uint32_t msrs[] = {0x277, 0x1a0};

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static uint64_t rdmsr(uint32_t idx)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(idx));
	return ((uint64_t)hi << 32) | lo;
}

void guest_main(uint32_t start_info)
{
	(void)start_info;
	for (unsigned int i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		uint32_t r[4];

		cpuid(leaves[i][0], leaves[i][1], r);
		puts_serial("CPUID ");
		put_hex(leaves[i][0]);
		puts_serial(" ");
		put_hex(leaves[i][1]);
		for (int k = 0; k < 4; k++) {
			puts_serial(" ");
			put_hex(r[k]);
		}
		puts_serial("\n");
	}
	for (unsigned int i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
		puts_serial("MSR ");
		put_hex(msrs[i]);
		puts_serial(" ");
		put_hex(rdmsr(msrs[i]));
		puts_serial("\n");
	}
	puts_serial("CPUID done\n");
	guest_reset();
}
