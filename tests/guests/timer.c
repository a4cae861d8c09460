/* timer guest: programs the LAPIC timer (periodic, vector 0x40, period=
 * bus cycles), sleeps in HLT and counts interrupts; prints every tenth tick
 * and "TIMER OK" after ticks= interrupts. */
#include "guest.h"

#define TIMER_VECTOR	 0x40
#define LAPIC_SVR	 0xf0
#define LAPIC_LVT_TIMER	 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV	 0x3e0

void guest_main(uint32_t start_info)
{
	uint64_t want, period, last = 0;

	cmdline_init(start_info);
	want = cmdline_u64("ticks", 50);
	period = cmdline_u64("period", 2000000); /* 2 ms at KVM's 1 GHz APIC bus */
	puts_serial("TIMER start\n");
	idt_set(TIMER_VECTOR, count_isr); /* irq_count: the ticks */
	idt_load();
	lapic_write(LAPIC_SVR, 0x1ff);
	lapic_write(LAPIC_TIMER_DIV, 0xb); /* divide by 1 */
	lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | (1u << 17));
	lapic_write(LAPIC_TIMER_INIT, (uint32_t)period);
	while (irq_count < want) {
		__asm__ volatile("sti; hlt; cli");
		if (irq_count / 10 != last / 10) {
			puts_serial("tick ");
			put_u64(irq_count);
			puts_serial("\n");
		}
		last = irq_count;
	}
	lapic_write(LAPIC_TIMER_INIT, 0);
	puts_serial("TIMER OK ticks=");
	put_u64(irq_count);
	puts_serial("\n");
	guest_reset();
}
