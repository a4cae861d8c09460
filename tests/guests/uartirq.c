/* uartirq guest: the UART's interrupt path end to end — PIC masked, IOAPIC
 * pin 4 routed to vector 0x41, IER = RDA|THRE.  Counts THRE interrupts
 * caused by its own output and collects rx= bytes of host input that only
 * arrive through receive interrupts, then prints them. */
#include "guest.h"

#define UART_VECTOR 0x41
#define IOAPIC_BASE 0xfec00000UL
#define COM1	    0x3f8

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint64_t thr_irqs, rx_len;
static volatile char rx[16];

void uart_isr(void);
void uart_irq(void)
{
	uint8_t iir;

	while (!((iir = inb(COM1 + 2)) & 1)) {
		if ((iir & 0x0e) == 0x04) {
			uint8_t c = inb(COM1);
			if (rx_len < sizeof(rx) - 1)
				rx[rx_len++] = (char)c;
		} else if ((iir & 0x0e) == 0x02) {
			thr_irqs++;
		} else {
			break;
		}
	}
	lapic_write(0xb0, 0); /* EOI */
}

__asm__(".text\n.globl uart_isr\nuart_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call uart_irq\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n");

static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC_BASE = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + 0x10) = v;
}

void guest_main(uint32_t start_info)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	uint64_t want, a = (uint64_t)(uintptr_t)uart_isr;

	cmdline_init(start_info);
	want = cmdline_u64("rx", 3);
	if (want > sizeof(rx) - 1)
		want = sizeof(rx) - 1;
	idt[UART_VECTOR] = (struct idt_entry){
	    (uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff); /* mask both PICs: the IOAPIC delivers */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff);
	ioapic_write(0x10 + 2 * 4 + 1, 0);	 /* pin 4 -> APIC 0 */
	ioapic_write(0x10 + 2 * 4, UART_VECTOR); /* fixed, edge, high, unmasked */
	outb(COM1 + 4, 0x08);			 /* MCR.OUT2 */
	outb(COM1 + 1, 0x03);			 /* IER = RDA | THRE */
	__asm__ volatile("sti");
	puts_serial("UARTIRQ ready\n");
	while (rx_len < want)
		__asm__ volatile("hlt");
	__asm__ volatile("cli");
	rx[rx_len] = 0;
	puts_serial("UARTIRQ rx=");
	puts_serial((const char *)rx);
	puts_serial(" thr_irqs=");
	put_u64(thr_irqs ? 1 : 0);
	puts_serial("\n");
	guest_reset();
}
