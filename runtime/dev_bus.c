/* The device bus: the explicit, ordered device table of a squib microVM
 * (port I/O and MMIO ranges) and the dispatcher vCPU exits go through.
 * Unclaimed addresses read as all-ones and swallow writes, like an empty
 * ISA bus.  Virtio-MMIO devices join this table in later issues. */
#include <string.h>

#include "dev.h"

static void null_io(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		    int is_write)
{
	(void)d;
	(void)off;
	if (!is_write)
		memset(data, 0, size);
}

const struct sqb_dev_desc sqb_devices_table[] = {
    {"uart0", SQB_BUS_PIO, 0x3f8, 8, sizeof(struct sqb_uart_state), SQB_UART_STATE_VERSION,
     sqb_uart_io, sqb_uart_save, sqb_uart_restore},
    {"i8042", SQB_BUS_PIO, 0x60, 5, sizeof(struct sqb_i8042_state), SQB_I8042_STATE_VERSION,
     sqb_i8042_io, sqb_i8042_save, sqb_i8042_restore},
    /* POST code port: guests (and the exit benchmark) write here freely. */
    {"postcode", SQB_BUS_PIO, 0x80, 1, 0, 0, null_io, NULL, NULL},
};
const unsigned int sqb_devices_count = sizeof(sqb_devices_table) / sizeof(sqb_devices_table[0]);

void sqb_devices_init(struct sqb_devices *d, const struct sqb_dev_host *host)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->uart.lock, NULL);
	d->uart.host = host;
	d->uart.irq = 4;
	d->uart.st.iir = 0xc1;
	d->uart.st.lsr = 0x60;
	d->uart.st.dll = 12; /* 9600 baud */
	pthread_mutex_init(&d->i8042.lock, NULL);
	d->i8042.host = host;
	d->i8042.st.ctr = 0x47;
	d->i8042.st.outp = 0x01;
}

void sqb_devices_destroy(struct sqb_devices *d)
{
	pthread_mutex_destroy(&d->uart.lock);
	pthread_mutex_destroy(&d->i8042.lock);
}

int sqb_bus_access(struct sqb_devices *d, enum sqb_bus_space space, uint64_t addr, uint8_t *data,
		   unsigned int size, int is_write)
{
	for (unsigned int i = 0; i < sqb_devices_count; i++) {
		const struct sqb_dev_desc *dd = &sqb_devices_table[i];

		if (dd->space == space && addr >= dd->base && addr - dd->base < dd->len) {
			dd->io(d, addr - dd->base, data, size, is_write);
			return 1;
		}
	}
	if (!is_write)
		memset(data, 0xff, size);
	return 0;
}
