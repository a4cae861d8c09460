/* exit-cost guest for the benchmark: prints one line, then n= writes to the
 * POST-code port 0x80 (each a VM exit to the VMM), then a final line.
 * spam=N first prints N bytes of lines of letters (the serial rate
 * limiter's test).  boottimer=1 writes to Firecracker's boot-timer page
 * (0xc000_0000): three writes that must not count (a wrong value, a 16-bit
 * write, the magic at offset 1), then the byte 123 at offset 0. */
#include "guest.h"

void guest_main(uint32_t start_info)
{
	uint64_t n;

	cmdline_init(start_info);
	n = cmdline_u64("n", 10000);
	puts_serial("EXITS start\n");
	if (cmdline_u64("boottimer", 0)) {
		volatile uint8_t *bt = (volatile uint8_t *)0xc0000000UL;

		bt[0] = 122;
		*(volatile uint16_t *)bt = 123;
		bt[1] = 123;
		bt[0] = 123;
		puts_serial("EXITS boot timer written\n");
	}
	for (uint64_t i = 0, spam = cmdline_u64("spam", 0); i < spam; i++)
		puts_serial(i % 64 == 63 ? "\n" : (const char[]){(char)('a' + i % 26), 0});
	for (uint64_t i = 0; i < n; i++)
		outb(0x80, (uint8_t)i);
	puts_serial("EXITS done n=");
	put_u64(n);
	puts_serial("\n");
	guest_reset();
}
