/* memory-pattern guest: deterministic pseudo-random writes (splitmix64) into
 * every 4 KiB page of `mib=` MiB starting at 4 MiB, `wpp=` words per page in
 * disjoint slots, then a verify pass; prints the checksum the host checks.
 * First probes an unclaimed MMIO address (must read all-ones). */
#include "guest.h"

#define REGION_BASE (4UL << 20)

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Walk every page; write (or verify) wpp words; return the checksum, or
 * set *bad to the first mismatching address. */
static uint64_t pass(uint64_t mib, uint64_t wpp, uint64_t seed, int write, uint64_t *bad)
{
	uint64_t pages = mib << 8, slot = 512 / wpp, sum = 0, s = seed;
	volatile uint64_t *base = (volatile uint64_t *)REGION_BASE;

	for (uint64_t p = 0; p < pages; p++) {
		for (uint64_t w = 0; w < wpp; w++) {
			uint64_t r = splitmix(&s);
			uint64_t idx = p * 512 + w * slot + (r >> 55) % slot;
			if (write)
				base[idx] = r;
			else if (base[idx] != r && !*bad)
				*bad = (uint64_t)(uintptr_t)&base[idx];
			sum = (sum ^ r) * 0x100000001b3ULL;
		}
	}
	return sum;
}

void guest_main(uint32_t start_info)
{
	uint64_t mib, wpp, seed, sum, sum2, bad = 0;

	cmdline_init(start_info);
	mib = cmdline_u64("mib", 4);
	wpp = cmdline_u64("wpp", 4);
	seed = cmdline_u64("seed", 1);
	if (wpp < 1 || wpp > 512)
		wpp = 4;
	/* An unclaimed MMIO address in the 32-bit hole: the write is dropped and
	 * the read sees all-ones (the VMM's MMIO exit path). */
	*(volatile uint32_t *)0xd0000000UL = 0x12345678;
	puts_serial("PATTERN mmio-hole=");
	put_hex(*(volatile uint32_t *)0xd0000000UL);
	puts_serial("\n");
	puts_serial("PATTERN start mib=");
	put_u64(mib);
	puts_serial("\n");
	sum = pass(mib, wpp, seed, 1, &bad);
	sum2 = pass(mib, wpp, seed, 0, &bad);
	if (bad || sum != sum2) {
		puts_serial("PATTERN BAD at ");
		put_hex(bad);
		puts_serial("\n");
	} else {
		puts_serial("PATTERN OK mib=");
		put_u64(mib);
		puts_serial(" checksum=");
		put_hex(sum);
		puts_serial("\n");
	}
	guest_reset();
}
