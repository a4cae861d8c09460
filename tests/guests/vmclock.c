/* vmclock guest: finds the VMClock page as an OS does (RSDP at 0xe0000 ->
 * XSDT -> FADT -> DSDT; Device VCLK by its _HID "AMZNC10C", the page from
 * its _CRS QWord memory range, its GSI from the GED's _EVT case that
 * notifies \_SB.VCLK), routes that IOAPIC pin to a vector, prints the
 * page's fixed fields once:
 *   "VMCLOCK addr=<hex> gsi=<n> magic=<hex> size=<n> version=<n>
 *    counter_id=<n> status=<n> flags=<hex>"
 * and then, read under the ABI's seq_count protocol (even and unchanged
 * across the read), "VCLK disruption=<n> generation=<n> seq=<n> irqs=<n>"
 * whenever the counters or the count of notifications change. */
#include "guest.h"

#define VCLK_VECTOR  0x43
#define TIMER_VECTOR 0x40

static void none(const char *why)
{
	puts_serial("VMCLOCK none: ");
	puts_serial(why);
	puts_serial("\n");
	guest_reset();
}

void guest_main(uint32_t start_info)
{
	static const char notify_vclk[] = {(char)0x86, 0x5c, 0x2e, '_', 'S', 'B',
					   '_',	       'V',  'C',  'L', 'K'};
	const uint8_t *dsdt, *dev, *q, *n;
	const volatile uint8_t *pg;
	uint64_t dis = ~0ULL, gen = ~0ULL, seen = ~0ULL;
	uint32_t len, gsi, seq_seen = ~0u;

	cmdline_init(start_info);
	dsdt = acpi_dsdt(&len);
	dev = mem_find(dsdt, len, "AMZNC10C", 8);
	if (!dev)
		none("no AMZNC10C device");
	/* _CRS: QWord Address Space Descriptor (0x8A, length 43), memory */
	q = mem_find(dev, len - (uint32_t)(dev - dsdt), "\x8a\x2b\x00\x00", 4);
	if (!q)
		none("no QWord memory range");
	pg = (const volatile uint8_t *)(uintptr_t)rd64(q + 14);
	if (rd64(q + 38) != 4096)
		none("the range is not one page");
	/* If (Arg0 == gsi) { Notify (\_SB.VCLK, 0x80) }: 0x0A gsi 0x86 ... */
	n = mem_find(dsdt, len, notify_vclk, sizeof(notify_vclk));
	if (!n || n[-2] != 0x0a)
		none("no GED case for VCLK");
	gsi = n[-1];
	puts_serial("VMCLOCK addr=");
	put_hex((uint64_t)(uintptr_t)pg);
	puts_serial(" gsi=");
	put_u64(gsi);
	puts_serial(" magic=");
	put_hex(rd32(pg + 0));
	puts_serial(" size=");
	put_u64(rd32(pg + 4));
	puts_serial(" version=");
	put_u64((uint64_t)pg[8] | (uint64_t)pg[9] << 8);
	puts_serial(" counter_id=");
	put_u64(pg[10]);
	puts_serial(" status=");
	put_u64(pg[34]);
	puts_serial(" flags=");
	put_hex(rd64(pg + 24));
	puts_serial("\n");

	idt_set(VCLK_VECTOR, count_isr); /* irq_count: its notifications */
	idt_set(TIMER_VECTOR, eoi_isr);
	idt_load();
	irq_route_gsi(gsi, VCLK_VECTOR, TIMER_VECTOR);
	for (;;) {
		uint32_t s1, s2;
		uint64_t d, g, k = irq_count;

		/* the ABI's reader: retry while odd or changed underneath */
		do {
			s1 = rd32(pg + 12);
			__asm__ volatile("" ::: "memory");
			d = rd64(pg + 16);
			g = rd64(pg + 104);
			__asm__ volatile("" ::: "memory");
			s2 = rd32(pg + 12);
		} while ((s1 & 1) || s1 != s2);
		if (d != dis || g != gen || k != seen || s1 != seq_seen) {
			dis = d, gen = g, seen = k, seq_seen = s1;
			puts_serial("VCLK disruption=");
			put_u64(d);
			puts_serial(" generation=");
			put_u64(g);
			puts_serial(" seq=");
			put_u64(s1);
			puts_serial(" irqs=");
			put_u64(k);
			puts_serial("\n");
		}
		__asm__ volatile("sti; hlt; cli");
	}
}
