/* fault guest: prints one line, loads an empty IDT and raises #BP — the
 * resulting triple fault must end the VMM with a clear report, not a hang. */
#include "guest.h"

void guest_main(uint32_t start_info)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {0, 0};

	(void)start_info;
	puts_serial("FAULT about to triple-fault\n");
	__asm__ volatile("lidt %0; int3" : : "m"(idtr));
	puts_serial("FAULT still alive?\n");
	guest_reset();
}
