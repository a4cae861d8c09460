/* Fleet test guest (tests/fleet, bench/fleet_bench.c): fills mib= MiB at
 * 4 MiB with a per-page pattern, says "FLEET ready", then sleeps in HLT
 * (an idle clone costs no CPU) and wakes only on UART receive interrupts:
 *   'p'  answers "PONG" (the clone runs: the benchmark's latency mark)
 *   'v'  checks every filled page, "FLEET OK pages=N" or "FLEET BAD page=N"
 *   'w'  writes one word into each of wpages= pages (a clone's own data)
 * Interrupt path as uartirq.c: PIC masked, IOAPIC pin 4 -> vector 0x41. */
#include "guest.h"

#define UART_VECTOR 0x41
#define IOAPIC_BASE 0xfec00000UL
#define COM1	    0x3f8
#define FILL_BASE   (4UL << 20)

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint8_t rxq[64];
static volatile uint32_t rx_head, rx_tail; /* head: ISR, tail: main loop */

void fleet_isr(void);
void fleet_irq(void)
{
	uint8_t iir;

	while (!((iir = inb(COM1 + 2)) & 1)) {
		if ((iir & 0x0e) != 0x04 && (iir & 0x0e) != 0x0c)
			break;
		while (inb(COM1 + 5) & 1) {
			uint8_t c = inb(COM1);
			if (rx_head - rx_tail < sizeof(rxq))
				rxq[rx_head++ % sizeof(rxq)] = c;
		}
	}
	lapic_write(0xb0, 0); /* EOI */
}

__asm__(".text\n.globl fleet_isr\nfleet_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call fleet_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n");

static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC_BASE = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + 0x10) = v;
}

static uint64_t page_pattern(uint64_t p)
{
	uint64_t z = p * 0x9e3779b97f4a7c15ULL + 0x5157;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	return z ^ (z >> 31);
}

static void irq_setup(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	uint64_t a = (uint64_t)(uintptr_t)fleet_isr;

	idt[UART_VECTOR] = (struct idt_entry){
	    (uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff); /* mask both PICs: the IOAPIC delivers */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff);
	ioapic_write(0x10 + 2 * 4 + 1, 0);	 /* pin 4 -> APIC 0 */
	ioapic_write(0x10 + 2 * 4, UART_VECTOR); /* fixed, edge, high, unmasked */
	outb(COM1 + 4, 0x08);			 /* MCR.OUT2 */
	outb(COM1 + 1, 0x01);			 /* IER = RDA only: output polls */
}

void guest_main(uint32_t start_info)
{
	uint64_t pages, wpages, gen = 0;
	volatile uint64_t *b = (volatile uint64_t *)FILL_BASE;

	cmdline_init(start_info);
	pages = cmdline_u64("mib", 4) << 8;
	wpages = cmdline_u64("wpages", 16);
	if (wpages > pages)
		wpages = pages;
	for (uint64_t p = 0; p < pages; p++) {
		b[p * 512] = page_pattern(p);
		b[p * 512 + 511] = ~page_pattern(p);
	}
	irq_setup();
	puts_serial("FLEET ready\n");
	for (;;) {
		uint8_t ch;

		__asm__ volatile("cli");
		if (rx_head == rx_tail) {
			__asm__ volatile("sti; hlt"); /* the interrupt shadow: no lost wake-up */
			continue;
		}
		__asm__ volatile("sti");
		ch = rxq[rx_tail++ % sizeof(rxq)];
		if (ch == 'p') {
			puts_serial("PONG\n");
		} else if (ch == 'v') {
			uint64_t bad = pages;
			for (uint64_t p = 0; p < pages && bad == pages; p++)
				if (b[p * 512] != page_pattern(p) ||
				    b[p * 512 + 511] != ~page_pattern(p))
					bad = p;
			if (bad == pages) {
				puts_serial("FLEET OK pages=");
				put_u64(pages);
			} else {
				puts_serial("FLEET BAD page=");
				put_u64(bad);
			}
			puts_serial("\n");
		} else if (ch == 'w') {
			gen++;
			for (uint64_t p = 0; p < wpages; p++)
				b[p * 512 + 7] = gen; /* beside the checked words */
			puts_serial("WROTE\n");
		}
	}
}
