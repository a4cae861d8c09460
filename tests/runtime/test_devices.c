/* Unit: the UART and i8042 models and the device bus without a hypervisor —
 * register semantics (DLAB, LSR, IIR/THRE acknowledge, RX FIFO, loopback),
 * interrupt and reset requests through the host callbacks, unclaimed
 * addresses, and symmetric save/restore of device state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dev.h"

struct fake_host {
	unsigned int irqs[16];
	int resets;
	char out[256];
	size_t out_len;
};

static void fake_irq(void *o, unsigned int irq)
{
	((struct fake_host *)o)->irqs[irq & 15]++;
}

static void fake_reset(void *o)
{
	((struct fake_host *)o)->resets++;
}

static void fake_out(void *o, const uint8_t *b, size_t n)
{
	struct fake_host *h = o;
	memcpy(h->out + h->out_len, b, n);
	h->out_len += n;
}

static uint8_t rd(struct sqb_devices *d, uint16_t port)
{
	uint8_t v = 0;
	sqb_bus_access(d, SQB_BUS_PIO, port, &v, 1, 0);
	return v;
}

static void wr(struct sqb_devices *d, uint16_t port, uint8_t v)
{
	sqb_bus_access(d, SQB_BUS_PIO, port, &v, 1, 1);
}

static void setup_devs(struct sqb_devices *d, struct fake_host *h, struct sqb_dev_host *dh)
{
	memset(h, 0, sizeof(*h));
	*dh = (struct sqb_dev_host){h, fake_irq, fake_reset, fake_out};
	sqb_devices_init(d, dh);
}

static void test_uart_registers_and_interrupts(void **state)
{
	struct sqb_devices d;
	struct fake_host h;
	struct sqb_dev_host dh;

	(void)state;
	setup_devs(&d, &h, &dh);
	assert_int_equal(rd(&d, 0x3fd) & 0x60, 0x60); /* THR empty, transmitter idle */
	wr(&d, 0x3f8, 'h');
	wr(&d, 0x3f8, 'i');
	assert_int_equal(h.out_len, 2);
	assert_memory_equal(h.out, "hi", 2);
	assert_int_equal(h.irqs[4], 0); /* IER = 0: no interrupts */
	/* DLAB: divisor latch instead of THR/IER. */
	wr(&d, 0x3fb, 0x80);
	wr(&d, 0x3f8, 0x01);
	wr(&d, 0x3f9, 0x00);
	assert_int_equal(rd(&d, 0x3f8), 0x01);
	assert_int_equal(h.out_len, 2);
	wr(&d, 0x3fb, 0x03);
	/* Enabling THRE interrupts fires one; reading IIR acknowledges it. */
	wr(&d, 0x3f9, 0x02);
	assert_int_equal(h.irqs[4], 1);
	assert_int_equal(rd(&d, 0x3fa) & 0x0f, 0x02);
	assert_int_equal(rd(&d, 0x3fa) & 0x0f, 0x01);
	/* Receive: data-ready, RDA interrupt has priority, FIFO order. */
	wr(&d, 0x3f9, 0x03);
	assert_int_equal(sqb_uart_input(&d.uart, (const uint8_t *)"ab", 2), 2);
	assert_true(h.irqs[4] >= 2);
	assert_int_equal(rd(&d, 0x3fd) & 1, 1);
	assert_int_equal(rd(&d, 0x3fa) & 0x0f, 0x04);
	assert_int_equal(rd(&d, 0x3f8), 'a');
	assert_int_equal(rd(&d, 0x3f8), 'b');
	assert_int_equal(rd(&d, 0x3fd) & 1, 0);
	/* The FIFO is bounded. */
	uint8_t many[100];
	memset(many, 'x', sizeof(many));
	assert_int_equal(sqb_uart_input(&d.uart, many, sizeof(many)), SQB_UART_FIFO);
	/* Loopback (MCR bit 4) keeps output off the console. */
	wr(&d, 0x3fc, 0x10);
	wr(&d, 0x3f8, 'z');
	assert_int_equal(h.out_len, 2);
	/* Wrong-size accesses are ignored, reads all-ones. */
	uint32_t w = 0;
	sqb_bus_access(&d, SQB_BUS_PIO, 0x3f8, (uint8_t *)&w, 4, 0);
	assert_int_equal(w, 0xffffffffu);
	sqb_devices_destroy(&d);
}

static void test_i8042_reset_and_ctrl_alt_del(void **state)
{
	struct sqb_devices d;
	struct fake_host h;
	struct sqb_dev_host dh;

	(void)state;
	setup_devs(&d, &h, &dh);
	assert_int_equal(rd(&d, 0x64) & 1, 0);
	assert_int_equal(sqb_i8042_ctrl_alt_del(&d.i8042), 0);
	assert_int_equal(h.irqs[1], 1);
	assert_int_equal(rd(&d, 0x64) & 1, 1);
	assert_int_equal(rd(&d, 0x60), 0x1d); /* Ctrl down first */
	for (int i = 0; i < 7; i++)
		rd(&d, 0x60);
	assert_int_equal(rd(&d, 0x64) & 1, 0);
	/* Command byte round trip, then the reset line. */
	wr(&d, 0x64, 0x60);
	wr(&d, 0x60, 0x45);
	wr(&d, 0x64, 0x20);
	assert_int_equal(rd(&d, 0x60), 0x45);
	assert_int_equal(h.resets, 0);
	wr(&d, 0x64, 0xfe);
	assert_int_equal(h.resets, 1);
	sqb_devices_destroy(&d);
}

static void test_bus_unclaimed_and_state_round_trip(void **state)
{
	struct sqb_devices d, d2;
	struct fake_host h, h2;
	struct sqb_dev_host dh, dh2;
	uint8_t buf[8];

	(void)state;
	setup_devs(&d, &h, &dh);
	setup_devs(&d2, &h2, &dh2);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sqb_bus_access(&d, SQB_BUS_PIO, 0x1234, buf, 2, 0), 0);
	assert_int_equal(buf[0] & buf[1], 0xff);
	assert_int_equal(sqb_bus_access(&d, SQB_BUS_MMIO, 0xd0000000ULL, buf, 8, 0), 0);
	assert_int_equal(buf[7], 0xff);
	/* Put state in, save each device by its table entry, restore into a
	 * fresh set, and compare the encodings. */
	wr(&d, 0x3fb, 0x03);
	wr(&d, 0x3f9, 0x01);
	wr(&d, 0x3ff, 0x5a);
	sqb_uart_input(&d.uart, (const uint8_t *)"xyz", 3);
	sqb_i8042_ctrl_alt_del(&d.i8042);
	for (unsigned int i = 0; i < sqb_devices_count; i++) {
		const struct sqb_dev_desc *dd = &sqb_devices_table[i];
		uint8_t s1[256], s2[256];

		if (!dd->save)
			continue;
		assert_true(dd->state_size <= sizeof(s1));
		memset(s1, 0, sizeof(s1));
		memset(s2, 0, sizeof(s2));
		dd->save(&d, s1);
		assert_int_equal(dd->restore(&d2, s1), 0);
		dd->save(&d2, s2);
		assert_memory_equal(s1, s2, dd->state_size);
	}
	assert_int_equal(rd(&d2, 0x3ff), 0x5a);
	assert_int_equal(rd(&d2, 0x3f8), 'x');
	/* Restore refuses impossible state. */
	struct sqb_uart_state bad;
	sqb_uart_save(&d, &bad);
	bad.rx_len = SQB_UART_FIFO + 1;
	assert_int_equal(sqb_uart_restore(&d2, &bad), -EINVAL);
	sqb_devices_destroy(&d);
	sqb_devices_destroy(&d2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uart_registers_and_interrupts),
	    cmocka_unit_test(test_i8042_reset_and_ctrl_alt_del),
	    cmocka_unit_test(test_bus_unclaimed_and_state_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
