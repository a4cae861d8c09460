/* SMP guest: the bootstrap vCPU copies the real-mode trampoline to 0x8000
 * and sends INIT/SIPI/SIPI to all others; each secondary enters long mode,
 * fills and verifies its own 64 KiB region and reports; the BSP re-checks
 * every region and prints "SMP OK cpus=N" once all cpus= have reported. */
#include "guest.h"

#define REGION_BASE  (8UL << 20)
#define REGION_WORDS 8192
#define LAPIC_ID     0x20
#define LAPIC_ICR_LO 0x300
#define TRAMP_BASE   0x8000

extern char tramp_start[], tramp_end[];
static volatile uint32_t done_mask;
static volatile uint32_t reported;

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t fill_word(uint32_t id, uint64_t i)
{
	return ((uint64_t)(id + 1) << 40) ^ (i * 0x9e3779b97f4a7c15ULL);
}

static int fill_and_check(uint32_t id, uint64_t *sum)
{
	volatile uint64_t *r = (volatile uint64_t *)(REGION_BASE + (uint64_t)id * REGION_WORDS * 8);
	uint64_t s = 0;

	for (uint64_t i = 0; i < REGION_WORDS; i++)
		r[i] = fill_word(id, i);
	for (uint64_t i = 0; i < REGION_WORDS; i++) {
		if (r[i] != fill_word(id, i))
			return -1;
		s = (s ^ r[i]) * 0x100000001b3ULL;
	}
	*sum = s;
	return 0;
}

static void report(uint32_t id, int ok, uint64_t sum)
{
	print_lock();
	puts_serial("cpu ");
	put_u64(id);
	puts_serial(ok ? " ok sum=" : " BAD sum=");
	put_hex(sum);
	puts_serial("\n");
	print_unlock();
}

void ap_main(void)
{
	uint32_t id = lapic_read(LAPIC_ID) >> 24;
	uint64_t sum = 0;
	int ok = id < 32 && fill_and_check(id, &sum) == 0;

	report(id, ok, sum);
	if (ok)
		__atomic_or_fetch(&done_mask, 1u << id, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&reported, 1, __ATOMIC_SEQ_CST);
}

void guest_main(uint32_t start_info)
{
	uint64_t cpus, sum = 0, start;
	uint32_t want;

	cmdline_init(start_info);
	cpus = cmdline_u64("cpus", 2);
	if (cpus < 1 || cpus > 32)
		cpus = 2;
	want = (uint32_t)((cpus >= 32 ? 0xffffffffu : (1u << cpus) - 1));
	puts_serial("SMP start cpus=");
	put_u64(cpus);
	puts_serial("\n");
	memcpy((void *)TRAMP_BASE, tramp_start, (unsigned long)(tramp_end - tramp_start));
	if (cpus > 1) {
		lapic_write(0xf0, 0x1ff);
		lapic_write(LAPIC_ICR_LO, 0x000c4500); /* INIT, all excluding self */
		delay_loop(1000);
		lapic_write(LAPIC_ICR_LO, 0x000c4600 | (TRAMP_BASE >> 12)); /* SIPI */
		delay_loop(200);
		lapic_write(LAPIC_ICR_LO, 0x000c4600 | (TRAMP_BASE >> 12));
	}
	report(0, fill_and_check(0, &sum) == 0, sum);
	__atomic_or_fetch(&done_mask, 1u, __ATOMIC_SEQ_CST);
	/* Wait for every secondary; give up after ~2^36 TSC cycles (tens of
	 * seconds) so a missing vCPU is reported, not hung on.  A count of
	 * spins would be too short under emulation on a loaded host. */
	start = rdtsc();
	while ((done_mask & want) != want && rdtsc() - start < (1ULL << 36))
		cpu_relax();
	print_lock();
	if ((done_mask & want) == want) {
		puts_serial("SMP OK cpus=");
		put_u64(cpus);
	} else {
		puts_serial("SMP FAIL mask=");
		put_hex(done_mask);
	}
	puts_serial("\n");
	print_unlock();
	guest_reset();
}
