/* ARM PrimeCell PL011 UART (ARM DDI 0183) as a bus device on arm64: the
 * registers Linux's amba-pl011 driver and earlycon use, transmit to the
 * platform's serial sink, a 64-byte receive FIFO fed by the host, TX/RX
 * interrupts (edge-signalled, as the device tree says); DEVS type 3. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

enum {
	PL011_DR = 0x000,
	PL011_RSR = 0x004,
	PL011_FR = 0x018,
	PL011_ILPR = 0x020,
	PL011_IBRD = 0x024,
	PL011_FBRD = 0x028,
	PL011_LCRH = 0x02c,
	PL011_CR = 0x030,
	PL011_IFLS = 0x034,
	PL011_IMSC = 0x038,
	PL011_RIS = 0x03c,
	PL011_MIS = 0x040,
	PL011_ICR = 0x044,
	PL011_DMACR = 0x048,
	PL011_ID = 0xfe0, /* PeriphID0..3, PCellID0..3: one byte per word */
};

#define FR_RXFE	   0x10
#define FR_TXFF	   0x20
#define FR_RXFF	   0x40
#define FR_TXFE	   0x80
#define INT_RX	   0x10
#define INT_TX	   0x20
#define INT_ALL	   0x7ff
#define PL011_FIFO SQB_UART_FIFO

/* The identification bytes the AMBA bus matches the driver by (TRM 3.3.x). */
static const uint8_t pl011_id[8] = {0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

struct pl011_regs {
	uint32_t ibrd, fbrd, lcrh, cr, ifls, imsc, ris, dmacr, ilpr;
	uint8_t rx_len;
	uint8_t rx[PL011_FIFO];
};

struct sqb_pl011 {
	pthread_mutex_t lock;
	struct pl011_regs st;
	struct sqb_dev *dev;
};

/* Set bits in RIS; 1 when an unmasked interrupt became pending (an edge). */
static int pl011_raise(struct pl011_regs *s, uint32_t bits)
{
	uint32_t before = s->ris & s->imsc;

	s->ris |= bits;
	return ((s->ris & s->imsc) & ~before) != 0;
}

static uint32_t pl011_read(struct sqb_pl011 *u, uint64_t off)
{
	struct pl011_regs *s = &u->st;
	uint32_t v;

	if (off >= PL011_ID && off < PL011_ID + 0x20)
		return (off & 3) ? 0 : pl011_id[(off - PL011_ID) / 4];
	switch (off) {
	case PL011_DR:
		if (!s->rx_len)
			return 0;
		v = s->rx[0];
		memmove(s->rx, s->rx + 1, --s->rx_len);
		if (!s->rx_len)
			s->ris &= ~INT_RX;
		return v;
	case PL011_FR:
		return FR_TXFE | (s->rx_len ? 0 : FR_RXFE) |
		       (s->rx_len == PL011_FIFO ? FR_RXFF : 0);
	case PL011_ILPR:
		return s->ilpr;
	case PL011_IBRD:
		return s->ibrd;
	case PL011_FBRD:
		return s->fbrd;
	case PL011_LCRH:
		return s->lcrh;
	case PL011_CR:
		return s->cr;
	case PL011_IFLS:
		return s->ifls;
	case PL011_IMSC:
		return s->imsc;
	case PL011_RIS:
		return s->ris;
	case PL011_MIS:
		return s->ris & s->imsc;
	case PL011_DMACR:
		return s->dmacr;
	default:
		return 0; /* RSR and reserved offsets */
	}
}

/* Returns 1 when the line must pulse. */
static int pl011_write(struct sqb_pl011 *u, uint64_t off, uint32_t v)
{
	struct pl011_regs *s = &u->st;
	uint32_t before;

	switch (off) {
	case PL011_DR: {
		uint8_t c = (uint8_t)v;
		const struct sqb_dev_host *h = u->dev->ctx.host;
		if (h && h->serial_out)
			h->serial_out(h->opaque, &c, 1);
		/* the byte left at once: the FIFO is empty again */
		return pl011_raise(s, INT_TX);
	}
	case PL011_ILPR:
		s->ilpr = v & 0xff;
		return 0;
	case PL011_IBRD:
		s->ibrd = v & 0xffff;
		return 0;
	case PL011_FBRD:
		s->fbrd = v & 0x3f;
		return 0;
	case PL011_LCRH:
		s->lcrh = v & 0xff;
		return 0;
	case PL011_CR:
		s->cr = v & 0xffff;
		return 0;
	case PL011_IFLS:
		s->ifls = v & 0x3f;
		return 0;
	case PL011_IMSC:
		before = s->ris & s->imsc;
		s->imsc = v & INT_ALL;
		return ((s->ris & s->imsc) & ~before) != 0;
	case PL011_ICR:
		s->ris &= ~(v & INT_ALL);
		/* data still waiting keeps its interrupt asserted */
		return s->rx_len ? pl011_raise(s, INT_RX) : 0;
	case PL011_DMACR:
		s->dmacr = v & 7;
		return 0;
	default:
		return 0; /* RSR/ECR clear, read-only and reserved offsets */
	}
}

static void pl011_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			 int is_write)
{
	struct sqb_pl011 *u = d->priv;
	uint32_t v = 0;
	int irq = 0;

	/* 8/16/32-bit accesses at their natural offset; the rest are ignored */
	if (size > 4 || size == 3 || off >= SQB_PL011_WINDOW) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (is_write) {
		memcpy(&v, data, size); /* the guest is little-endian, as the host */
		irq = pl011_write(u, off & ~3ULL, v);
	} else {
		v = pl011_read(u, off & ~3ULL);
		memcpy(data, &v, size);
	}
	pthread_mutex_unlock(&u->lock);
	if (irq)
		sqb_irq_pulse(d->irq);
}

size_t sqb_pl011_input(struct sqb_dev *d, const uint8_t *buf, size_t len)
{
	struct sqb_pl011 *u = d->priv;
	size_t n;
	int irq;

	pthread_mutex_lock(&u->lock);
	n = PL011_FIFO - u->st.rx_len;
	if (n > len)
		n = len;
	memcpy(u->st.rx + u->st.rx_len, buf, n);
	u->st.rx_len = (uint8_t)(u->st.rx_len + n);
	irq = n ? pl011_raise(&u->st, INT_RX) : 0;
	pthread_mutex_unlock(&u->lock);
	if (irq)
		sqb_irq_pulse(d->irq);
	return n;
}

static int pl011_realize(struct sqb_dev *d, const void *cfg)
{
	struct sqb_pl011 *u = calloc(1, sizeof(*u));

	(void)cfg;
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->dev = d;
	u->st.cr = 0x300;  /* TXE | RXE: the reset value */
	u->st.ifls = 0x12; /* half-full triggers */
	d->priv = u;
	return 0;
}

static void pl011_unrealize(struct sqb_dev *d)
{
	struct sqb_pl011 *u = d->priv;

	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
	d->priv = NULL;
}

static void pl011_reset(struct sqb_dev *d)
{
	struct sqb_pl011 *u = d->priv;

	pthread_mutex_lock(&u->lock);
	memset(&u->st, 0, sizeof(u->st));
	u->st.cr = 0x300;
	u->st.ifls = 0x12;
	pthread_mutex_unlock(&u->lock);
}

/* DEVS type 3 version 1 (docs/snapshots.md): 9 × u32 registers, rx_len
 * u8 (≤ 64), 7 reserved bytes, rx[64]. */
static int pl011_state(struct sqb_dev *d, struct sqb_devst *s)
{
	struct sqb_pl011 *u = d->priv;
	struct pl011_regs r;

	pthread_mutex_lock(&u->lock);
	r = u->st;
	pthread_mutex_unlock(&u->lock);
	sqb_devst_u32(s, &r.ibrd, "ibrd");
	sqb_devst_u32(s, &r.fbrd, "fbrd");
	sqb_devst_u32(s, &r.lcrh, "lcr_h");
	sqb_devst_u32(s, &r.cr, "cr");
	sqb_devst_u32(s, &r.ifls, "ifls");
	sqb_devst_u32(s, &r.imsc, "imsc");
	sqb_devst_u32(s, &r.ris, "ris");
	sqb_devst_u32(s, &r.dmacr, "dmacr");
	sqb_devst_u32(s, &r.ilpr, "ilpr");
	sqb_devst_u8_max(s, &r.rx_len, PL011_FIFO, "rx_len");
	sqb_devst_reserved(s, 7);
	sqb_devst_bytes(s, r.rx, sizeof(r.rx), "rx");
	if (s->err)
		return s->err;
	if (s->load) {
		if ((r.imsc | r.ris) & ~INT_ALL) {
			s->field = "imsc/ris";
			return s->err = -SQB_ECORRUPT;
		}
		pthread_mutex_lock(&u->lock);
		u->st = r;
		pthread_mutex_unlock(&u->lock);
	}
	return 0;
}

static int pl011_describe(struct sqb_dev *d, struct sqb_dev_describe *out)
{
	memset(out, 0, sizeof(*out));
	out->hid = "arm,pl011";
	memcpy(out->name, "UAR0", 5);
	out->space = SQB_BUS_MMIO;
	out->base = d->base;
	out->len = (uint32_t)d->len;
	out->irq_kind = SQB_DESC_IRQ_GSI;
	out->gsi = d->irq ? d->irq->gsi : 0;
	return 0;
}

const struct sqb_dev_ops sqb_pl011_ops = {
    .realize = pl011_realize,
    .unrealize = pl011_unrealize,
    .access = pl011_access,
    .state = pl011_state,
    .reset = pl011_reset,
    .describe = pl011_describe,
};
