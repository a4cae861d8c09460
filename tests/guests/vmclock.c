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
#define IOAPIC_BASE  0xfec00000UL

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint64_t vclk_irqs;

void vclk_isr(void);
void timer_isr(void);
void vclk_irq(void)
{
	vclk_irqs++;
	lapic_write(0xb0, 0); /* EOI */
}

void timer_irq(void)
{
	lapic_write(0xb0, 0);
}

__asm__(".text\n.globl vclk_isr\nvclk_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call vclk_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n"
	".globl timer_isr\ntimer_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call timer_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n");

static uint32_t rd32(const volatile uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const volatile uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static const uint8_t *find(const uint8_t *p, uint32_t n, const char *s, uint32_t m)
{
	for (uint32_t i = 0; i + m <= n; i++) {
		uint32_t k = 0;

		while (k < m && p[i + k] == (uint8_t)s[k])
			k++;
		if (k == m)
			return p + i;
	}
	return 0;
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC_BASE = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + 0x10) = v;
}

static void idt_set(unsigned int vec, void (*fn)(void))
{
	uint64_t a = (uint64_t)(uintptr_t)fn;

	idt[vec] = (struct idt_entry){(uint16_t)a,	   0x08, 0, 0x8e, (uint16_t)(a >> 16),
				      (uint32_t)(a >> 32), 0};
}

static void none(const char *why)
{
	puts_serial("VMCLOCK none: ");
	puts_serial(why);
	puts_serial("\n");
	guest_reset();
}

void guest_main(uint32_t start_info)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	static const char notify_vclk[] = {(char)0x86, 0x5c, 0x2e, '_', 'S', 'B',
					   '_',	       'V',  'C',  'L', 'K'};
	const uint8_t *rsdp = (const uint8_t *)0xe0000UL, *xsdt, *fadt, *dsdt, *dev, *q, *n;
	const volatile uint8_t *pg;
	uint64_t dis = ~0ULL, gen = ~0ULL, seen = ~0ULL;
	uint32_t len, gsi, seq_seen = ~0u;

	cmdline_init(start_info);
	xsdt = (const uint8_t *)(uintptr_t)rd64(rsdp + 24);
	fadt = (const uint8_t *)(uintptr_t)rd64(xsdt + 36);
	dsdt = (const uint8_t *)(uintptr_t)rd64(fadt + 140);
	len = rd32(dsdt + 4);
	dev = find(dsdt, len, "AMZNC10C", 8);
	if (!dev)
		none("no AMZNC10C device");
	/* _CRS: QWord Address Space Descriptor (0x8A, length 43), memory */
	q = find(dev, len - (uint32_t)(dev - dsdt), "\x8a\x2b\x00\x00", 4);
	if (!q)
		none("no QWord memory range");
	pg = (const volatile uint8_t *)(uintptr_t)rd64(q + 14);
	if (rd64(q + 38) != 4096)
		none("the range is not one page");
	/* If (Arg0 == gsi) { Notify (\_SB.VCLK, 0x80) }: 0x0A gsi 0x86 ... */
	n = find(dsdt, len, notify_vclk, sizeof(notify_vclk));
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

	idt_set(VCLK_VECTOR, vclk_isr);
	idt_set(TIMER_VECTOR, timer_isr);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff); /* PICs masked: the IOAPIC delivers */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff);
	ioapic_write(0x10 + 2 * gsi + 1, 0);	       /* -> APIC 0 */
	ioapic_write(0x10 + 2 * gsi, VCLK_VECTOR);     /* fixed, edge, high, unmasked */
	lapic_write(0x3e0, 0xb);		       /* timer: divide by 1 */
	lapic_write(0x320, TIMER_VECTOR | (1u << 17)); /* periodic: wakes hlt */
	lapic_write(0x380, 10000000);		       /* ~10 ms */
	for (;;) {
		uint32_t s1, s2;
		uint64_t d, g, k = vclk_irqs;

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
