/* vmgenid guest: finds the VM Generation ID as an OS does (Microsoft's
 * VMGenID spec: RSDP at 0xe0000 -> XSDT -> FADT -> DSDT, Device VGEN's ADDR
 * package) and the GED's interrupt (its _CRS Extended Interrupt), routes
 * that IOAPIC pin to a vector, and prints "GENID <hi> <lo> irqs=<n>"
 * whenever the ID or the count of notifications changes. */
#include "guest.h"

#define GED_VECTOR   0x42
#define TIMER_VECTOR 0x40
#define IOAPIC_BASE  0xfec00000UL

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint64_t ged_irqs;

void ged_isr(void);
void timer_isr(void);
void ged_irq(void)
{
	ged_irqs++;
	lapic_write(0xb0, 0); /* EOI */
}

void timer_irq(void)
{
	lapic_write(0xb0, 0);
}

__asm__(".text\n.globl ged_isr\nged_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call ged_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n"
	".globl timer_isr\ntimer_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call timer_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n");

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
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

/* An AML integer (ACPI 6.4 20.2.3): Zero, One, Byte, Word, DWord, QWord. */
static uint64_t aml_int(const uint8_t **pp)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	int n = 0;

	switch (*p++) {
	case 0x01:
		v = 1;
		break;
	case 0x0a:
		n = 1;
		break;
	case 0x0b:
		n = 2;
		break;
	case 0x0c:
		n = 4;
		break;
	case 0x0e:
		n = 8;
		break;
	default:
		break;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*pp = p + n;
	return v;
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

void guest_main(uint32_t start_info)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	const uint8_t *rsdp = (const uint8_t *)0xe0000UL, *xsdt, *fadt, *dsdt, *p, *ged;
	uint64_t addr, lo = 0, hi = 0, seen = ~0ULL;
	static const char addr_name[6] = {0x08, 'A', 'D', 'D', 'R', 0x12}; /* NameOp .. PackageOp */
	uint32_t len, gsi;

	cmdline_init(start_info);
	xsdt = (const uint8_t *)(uintptr_t)rd64(rsdp + 24);
	fadt = (const uint8_t *)(uintptr_t)rd64(xsdt + 36);
	dsdt = (const uint8_t *)(uintptr_t)rd64(fadt + 140);
	len = rd32(dsdt + 4);
	p = find(dsdt, len, addr_name, sizeof(addr_name));
	ged = find(dsdt, len, "ACPI0013", 8);
	if (!find(dsdt, len, "VMGENCTR", 8) || !p || !ged ||
	    !(ged = find(ged, len - (uint32_t)(ged - dsdt), "\x89\x06\x00", 3))) {
		puts_serial("VMGENID none\n");
		guest_reset();
	}
	p += 6;
	p += (*p >> 6) + 1; /* PkgLength */
	p++;		    /* NumElements (2) */
	addr = aml_int(&p);
	addr |= aml_int(&p) << 32;
	gsi = rd32(ged + 5);
	puts_serial("VMGENID addr=");
	put_hex(addr);
	puts_serial(" gsi=");
	put_u64(gsi);
	puts_serial("\n");

	idt_set(GED_VECTOR, ged_isr);
	idt_set(TIMER_VECTOR, timer_isr);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff); /* PICs masked: the IOAPIC delivers */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff);
	ioapic_write(0x10 + 2 * gsi + 1, 0);	       /* -> APIC 0 */
	ioapic_write(0x10 + 2 * gsi, GED_VECTOR);      /* fixed, edge, high, unmasked */
	lapic_write(0x3e0, 0xb);		       /* timer: divide by 1 */
	lapic_write(0x320, TIMER_VECTOR | (1u << 17)); /* periodic: wakes hlt */
	lapic_write(0x380, 10000000);		       /* ~10 ms */
	for (;;) {
		uint64_t nlo = *(volatile uint64_t *)(uintptr_t)addr;
		uint64_t nhi = *(volatile uint64_t *)(uintptr_t)(addr + 8);
		uint64_t n = ged_irqs;

		if (nlo != lo || nhi != hi || n != seen) {
			lo = nlo, hi = nhi, seen = n;
			puts_serial("GENID ");
			put_hex(hi);
			puts_serial(" ");
			put_hex(lo);
			puts_serial(" irqs=");
			put_u64(n);
			puts_serial("\n");
		}
		__asm__ volatile("sti; hlt; cli");
	}
}
