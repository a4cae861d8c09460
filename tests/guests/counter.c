/* counter guest: prints "count=N" forever (or up to max=), busy-waiting
 * delay= iterations between lines, so a pause/resume (or a snapshot) shows
 * continuity.  Echoes serial input as "RX <byte>" (stdin -> UART), and polls
 * the i8042: a key press (SendCtrlAltDel) ends it. */
#include "guest.h"

void guest_main(uint32_t start_info)
{
	uint64_t max, delay;

	cmdline_init(start_info);
	max = cmdline_u64("max", 0);
	delay = cmdline_u64("delay", 20000);
	puts_serial("COUNTER start\n");
	for (uint64_t n = 1; !max || n <= max; n++) {
		puts_serial("count=");
		put_u64(n);
		puts_serial("\n");
		delay_loop(delay);
		while (inb(0x3fd) & 1) { /* LSR.DR: a byte from the host */
			uint8_t ch = inb(0x3f8);
			puts_serial("RX ");
			putc_serial((char)ch);
			puts_serial("\n");
		}
		if (inb(0x64) & 1) {
			uint8_t sc = inb(0x60);
			puts_serial("COUNTER key ");
			put_hex(sc);
			puts_serial(" (ctrl-alt-del), resetting\n");
			guest_reset();
		}
	}
	puts_serial("COUNTER done\n");
	guest_reset();
}
