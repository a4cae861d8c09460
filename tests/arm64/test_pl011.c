/* PL011 UART (runtime/dev_pl011.c) checked against the PrimeCell UART
 * (PL011) Technical Reference Manual, ARM DDI 0183: identification
 * registers, reset values, FR/RIS/MIS/IMSC/ICR behaviour, and the DEVS
 * type 3 encoding byte for byte (docs/snapshots.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev.h"

static uint8_t out[256];
static size_t nout;
static int pulses;

static void sink(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	memcpy(out + nout, buf, len);
	nout += len;
}

static void pulse(struct sqb_irq *irq)
{
	(void)irq;
	pulses++;
}

static struct sqb_irq line = {1, -1, pulse, NULL};
static const struct sqb_dev_host host = {NULL, NULL, sink};

static struct sqb_dev *mk(void)
{
	struct sqb_dev_ctx ctx = {NULL, NULL, &line, &host};
	struct sqb_dev *d;

	nout = 0;
	pulses = 0;
	assert_int_equal(
	    sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_PL011], "uart0", 0x9000000, &ctx, NULL),
	    0);
	return d;
}

static uint32_t rd(struct sqb_dev *d, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	d->cls->ops->access(d, off, (uint8_t *)&v, 4, 0);
	return v;
}

static void wr(struct sqb_dev *d, uint64_t off, uint32_t v)
{
	d->cls->ops->access(d, off, (uint8_t *)&v, 4, 1);
}

/* TRM 3.3.14-3.3.15: part number 0x011, designer 0x41 (ARM), PrimeCell
 * identification 0xB105F00D. */
static void test_ids(void **state)
{
	struct sqb_dev *d = mk();
	uint32_t pid = 0, cid = 0;

	(void)state;
	for (int i = 0; i < 4; i++) {
		pid |= (rd(d, 0xfe0 + 4 * i) & 0xff) << (8 * i);
		cid |= (rd(d, 0xff0 + 4 * i) & 0xff) << (8 * i);
	}
	assert_int_equal(pid & 0xfff, 0x011);
	assert_int_equal((pid >> 12) & 0xff, 0x41);
	assert_int_equal(cid, 0xb105f00d);
	assert_int_equal(sqb_dev_classes[SQB_DEVCLS_PL011].window, 0x1000);
	sqb_dev_free(d);
}

/* TRM 3.2 register summary reset values: UARTFR TXFE and RXFE set
 * (0x90), UARTCR 0x0300 (TXE, RXE), UARTIFLS 0x12, UARTIMSC 0. */
static void test_reset_values(void **state)
{
	struct sqb_dev *d = mk();

	(void)state;
	assert_int_equal(rd(d, 0x018), 0x90);
	assert_int_equal(rd(d, 0x030), 0x300);
	assert_int_equal(rd(d, 0x034), 0x12);
	assert_int_equal(rd(d, 0x038), 0);
	assert_int_equal(rd(d, 0x040), 0);
	sqb_dev_free(d);
}

/* Transmit: UARTDR writes go out; TXRIS rises (the FIFO empties at once),
 * MIS = RIS & IMSC, UARTICR clears (TRM 3.3.12-3.3.13). */
static void test_tx_and_interrupts(void **state)
{
	struct sqb_dev *d = mk();

	(void)state;
	wr(d, 0x000, 'o');
	wr(d, 0x000, 'k');
	assert_int_equal(nout, 2);
	assert_memory_equal(out, "ok", 2);
	assert_true(rd(d, 0x03c) & 0x20);  /* TXRIS */
	assert_int_equal(rd(d, 0x040), 0); /* masked */
	assert_int_equal(pulses, 0);
	wr(d, 0x038, 0x20); /* TXIM: the pending TX interrupt now fires */
	assert_int_equal(rd(d, 0x040), 0x20);
	assert_int_equal(pulses, 1);
	wr(d, 0x044, 0x20);
	assert_int_equal(rd(d, 0x03c) & 0x20, 0);
	assert_int_equal(rd(d, 0x040), 0);
	sqb_dev_free(d);
}

/* Receive: RXFE clears when data arrives, RXRIS with RXIM pulses the line,
 * UARTDR pops in order, the FIFO holds 64 bytes at most. */
static void test_rx(void **state)
{
	struct sqb_dev *d = mk();
	uint8_t big[100];

	(void)state;
	wr(d, 0x038, 0x10); /* RXIM */
	assert_int_equal(sqb_pl011_input(d, (const uint8_t *)"hi", 2), 2);
	assert_int_equal(rd(d, 0x018) & 0x10, 0);
	assert_int_equal(rd(d, 0x040), 0x10);
	assert_int_equal(pulses, 1);
	assert_int_equal(rd(d, 0x000), 'h');
	assert_int_equal(rd(d, 0x000), 'i');
	assert_true(rd(d, 0x018) & 0x10);
	assert_int_equal(rd(d, 0x03c) & 0x10, 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(sqb_pl011_input(d, big, sizeof(big)), 64);
	assert_true(rd(d, 0x018) & 0x40); /* RXFF */
	sqb_dev_free(d);
}

/* Hostile accesses: odd sizes and offsets outside the window are ignored. */
static void test_hostile_access(void **state)
{
	struct sqb_dev *d = mk();
	uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	(void)state;
	d->cls->ops->access(d, 0x2000, b, 4, 1);
	d->cls->ops->access(d, 0x000, b, 8, 1);
	d->cls->ops->access(d, 0x000, b, 3, 0);
	assert_int_equal(nout, 0);
	assert_int_equal(b[0], 0);
	sqb_dev_free(d);
}

/* DEVS type 3 v1: 9 × u32 (IBRD FBRD LCR_H CR IFLS IMSC RIS DMACR ILPR),
 * rx_len u8, 7 reserved, rx[64] = 108 bytes. */
static void test_state_encoding(void **state)
{
	struct sqb_dev *d = mk(), *e;
	uint8_t *buf;
	size_t len;
	const char *field = NULL;

	(void)state;
	wr(d, 0x024, 0x1a);
	wr(d, 0x02c, 0x70);
	sqb_pl011_input(d, (const uint8_t *)"A", 1);
	assert_int_equal(sqb_dev_save(d, &buf, &len), 0);
	assert_int_equal(len, 108);
	assert_int_equal(buf[0], 0x1a); /* IBRD */
	assert_int_equal(buf[8], 0x70); /* LCR_H */
	assert_int_equal(buf[12], 0x00);
	assert_int_equal(buf[13], 0x03); /* CR 0x0300 */
	assert_int_equal(buf[16], 0x12); /* IFLS */
	assert_int_equal(buf[24], 0x10); /* RIS: RXRIS */
	assert_int_equal(buf[36], 1);	 /* rx_len */
	assert_int_equal(buf[44], 'A');	 /* rx[0] */
	e = mk();
	assert_int_equal(sqb_dev_load(e, 1, buf, len, &field), 0);
	assert_int_equal(rd(e, 0x000), 'A');
	buf[36] = 65; /* more than the FIFO */
	assert_true(sqb_dev_load(e, 1, buf, len, &field) < 0);
	buf[36] = 1;
	buf[40] = 1; /* reserved */
	assert_true(sqb_dev_load(e, 1, buf, len, &field) < 0);
	free(buf);
	sqb_dev_free(d);
	sqb_dev_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_reset_values),
	    cmocka_unit_test(test_tx_and_interrupts),
	    cmocka_unit_test(test_rx),
	    cmocka_unit_test(test_hostile_access),
	    cmocka_unit_test(test_state_encoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
