/* Freestanding runtime for the test guests: serial printing (no LSR polling
 * — each port access is a VM exit, and squib's UART is always ready), the
 * command line copied out of hvm_start_info, and reset via the i8042. */
#include "guest.h"

#define COM1		 0x3f8
#define START_INFO_MAGIC 0x336ec578

static char cmdline[512];
static volatile int print_lock_word;

void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void putc_serial(char c)
{
	outb(COM1, (uint8_t)c);
}

void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

void put_u64(uint64_t v)
{
	char b[21];
	int i = 20;

	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_serial(b + i);
}

void put_hex(uint64_t v)
{
	static const char d[] = "0123456789abcdef";
	puts_serial("0x");
	for (int i = 60; i >= 0; i -= 4)
		putc_serial(d[(v >> i) & 15]);
}

void print_lock(void)
{
	while (__atomic_exchange_n(&print_lock_word, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

void print_unlock(void)
{
	__atomic_store_n(&print_lock_word, 0, __ATOMIC_RELEASE);
}

void cmdline_init(uint32_t start_info)
{
	const uint32_t *si = (const uint32_t *)(uintptr_t)start_info;
	const char *src;
	unsigned int i = 0;

	if (!start_info || si[0] != START_INFO_MAGIC)
		return;
	src = (const char *)(uintptr_t)si[6]; /* cmdline_paddr (u64 at offset 24), low half */
	if (!src)
		return;
	while (src[i] && i < sizeof(cmdline) - 1) {
		cmdline[i] = src[i];
		i++;
	}
	cmdline[i] = 0;
}

uint64_t cmdline_u64(const char *name, uint64_t def)
{
	const char *p = cmdline;

	while (*p) {
		const char *n = name, *q = p;
		while (*n && *q == *n) {
			n++;
			q++;
		}
		if (!*n && *q == '=' && (p == cmdline || p[-1] == ' ')) {
			uint64_t v = 0;
			q++;
			if (*q < '0' || *q > '9')
				return def;
			while (*q >= '0' && *q <= '9')
				v = v * 10 + (uint64_t)(*q++ - '0');
			return v;
		}
		p++;
	}
	return def;
}

void delay_loop(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		;
}

void guest_reset(void)
{
	outb(0x64, 0xfe);
	for (;;)
		__asm__ volatile("cli; hlt");
}

const uint8_t *mem_find(const uint8_t *p, uint32_t n, const char *s, uint32_t m)
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

const uint8_t *acpi_dsdt(uint32_t *len)
{
	const uint8_t *rsdp = (const uint8_t *)0xe0000UL, *xsdt, *fadt, *dsdt;

	xsdt = (const uint8_t *)(uintptr_t)rd64(rsdp + 24);
	fadt = (const uint8_t *)(uintptr_t)rd64(xsdt + 36);
	dsdt = (const uint8_t *)(uintptr_t)rd64(fadt + 140);
	*len = rd32(dsdt + 4);
	return dsdt;
}

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
volatile uint64_t irq_count;

void idt_set(unsigned int vec, void (*isr)(void))
{
	uint64_t a = (uint64_t)(uintptr_t)isr;

	idt[vec] = (struct idt_entry){(uint16_t)a,	   0x08, 0, 0x8e, (uint16_t)(a >> 16),
				      (uint32_t)(a >> 32), 0};
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};

	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void count_irq(void);
void count_irq(void)
{
	irq_count++;
	lapic_write(0xb0, 0); /* EOI */
}

void eoi_irq(void);
void eoi_irq(void)
{
	lapic_write(0xb0, 0);
}

/* caller-saved registers around the C handler, then iretq */
#define ISR_STUB(name, fn)                                                                         \
	".globl " name "\n" name ":\n"                                                             \
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"                                  \
	"push %r8\npush %r9\npush %r10\npush %r11\n"                                               \
	"call " fn "\n"                                                                            \
	"pop %r11\npop %r10\npop %r9\npop %r8\n"                                                   \
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n"
__asm__(".text\n" ISR_STUB("count_isr", "count_irq") ISR_STUB("eoi_isr", "eoi_irq"));

#define IOAPIC_BASE 0xfec00000UL

static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC_BASE = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + 0x10) = v;
}

void irq_route_gsi(uint32_t gsi, unsigned int vector, unsigned int timer_vec)
{
	outb(0x21, 0xff); /* PICs masked: the IOAPIC delivers */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff);
	ioapic_write(0x10 + 2 * gsi + 1, 0);	    /* -> APIC 0 */
	ioapic_write(0x10 + 2 * gsi, vector);	    /* fixed, edge, high, unmasked */
	if (!timer_vec)
		return;
	lapic_write(0x3e0, 0xb);		    /* timer: divide by 1 */
	lapic_write(0x320, timer_vec | (1u << 17)); /* periodic: wakes hlt */
	lapic_write(0x380, 10000000);		    /* ~10 ms */
}

/* Guests without secondary vCPUs never get here. */
__attribute__((weak)) void ap_main(void)
{
}
