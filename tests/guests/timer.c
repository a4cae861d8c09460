/* timer guest: programs the LAPIC timer (periodic, vector 0x40, period=
 * bus cycles), sleeps in HLT and counts interrupts; prints every tenth tick
 * and "TIMER OK" after ticks= interrupts. */
#include "guest.h"

#define TIMER_VECTOR	 0x40
#define LAPIC_EOI	 0xb0
#define LAPIC_SVR	 0xf0
#define LAPIC_LVT_TIMER	 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV	 0x3e0

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint64_t ticks;

void timer_isr(void);
void timer_tick(void)
{
	ticks++;
	lapic_write(LAPIC_EOI, 0);
}

__asm__(".text\n.globl timer_isr\ntimer_isr:\n"
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"
	"push %r8\npush %r9\npush %r10\npush %r11\n"
	"call timer_tick\n"
	"pop %r11\npop %r10\npop %r9\npop %r8\n"
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n");

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
	uint64_t want, period, last = 0;

	cmdline_init(start_info);
	want = cmdline_u64("ticks", 50);
	period = cmdline_u64("period", 2000000); /* 2 ms at KVM's 1 GHz APIC bus */
	puts_serial("TIMER start\n");
	idt_set(TIMER_VECTOR, timer_isr);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	lapic_write(LAPIC_SVR, 0x1ff);
	lapic_write(LAPIC_TIMER_DIV, 0xb); /* divide by 1 */
	lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | (1u << 17));
	lapic_write(LAPIC_TIMER_INIT, (uint32_t)period);
	while (ticks < want) {
		__asm__ volatile("sti; hlt; cli");
		if (ticks / 10 != last / 10) {
			puts_serial("tick ");
			put_u64(ticks);
			puts_serial("\n");
		}
		last = ticks;
	}
	lapic_write(LAPIC_TIMER_INIT, 0);
	puts_serial("TIMER OK ticks=");
	put_u64(ticks);
	puts_serial("\n");
	guest_reset();
}
