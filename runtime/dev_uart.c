/* 16550A UART serial console (0x3f8, IRQ 4) as a bus device: transmit to
 * the platform's serial sink, a 64-byte receive FIFO fed by the host,
 * THRE/RDA interrupts (16550 data sheet); DEVS type 1 (snapshots.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

struct uart_regs {
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t thr_irq_pending;
	uint8_t rx_len;
	uint8_t rx[SQB_UART_FIFO];
};

struct sqb_uart {
	pthread_mutex_t lock;
	struct uart_regs st;
	struct sqb_dev *dev;
};

enum { UART_RBR_THR = 0, UART_IER, UART_IIR_FCR, UART_LCR, UART_MCR, UART_LSR, UART_MSR, UART_SCR };

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

/* Recompute IIR; return 1 if an interrupt should be raised. */
static int uart_update_iir(struct sqb_uart *u)
{
	struct uart_regs *s = &u->st;
	uint8_t iir = IIR_NONE;

	if ((s->ier & IER_RDI) && s->rx_len)
		iir = IIR_RDI;
	else if ((s->ier & IER_THRI) && s->thr_irq_pending)
		iir = IIR_THRI;
	s->iir = iir | IIR_FIFO;
	return iir != IIR_NONE;
}

static uint8_t uart_read(struct sqb_uart *u, uint64_t off, int *irq)
{
	struct uart_regs *s = &u->st;
	uint8_t v = 0;

	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_len) {
			v = s->rx[0];
			memmove(s->rx, s->rx + 1, --s->rx_len);
		}
		*irq = uart_update_iir(u);
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR_FCR:
		v = s->iir;
		if ((s->iir & 0x0f) == IIR_THRI)
			s->thr_irq_pending = 0; /* reading IIR acknowledges THRE */
		uart_update_iir(u);
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_len ? LSR_DR : 0);
	case UART_MSR:
		return (s->mcr & MCR_LOOP) ? (uint8_t)((s->mcr & 0x0f) << 4)
					   : 0xb0; /* DCD DSR CTS */
	default:
		return s->scr;
	}
}

static void uart_write(struct sqb_uart *u, uint64_t off, uint8_t v, int *irq, int *out)
{
	struct uart_regs *s = &u->st;

	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		*out = 1;
		s->thr_irq_pending = 1;
		*irq = uart_update_iir(u);
		return;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_irq_pending = 1; /* enabling THRE with an empty THR fires */
		s->ier = v & 0x0f;
		*irq = uart_update_iir(u);
		return;
	case UART_IIR_FCR:
		if (v & 0x02)
			s->rx_len = 0;
		return;
	case UART_LCR:
		s->lcr = v;
		return;
	case UART_MCR:
		s->mcr = v & 0x1f;
		return;
	case UART_SCR:
		s->scr = v;
		return;
	default:
		return; /* LSR, MSR are read-only */
	}
}

static void uart_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			int is_write)
{
	struct sqb_uart *u = d->priv;
	int irq = 0, out = 0;
	uint8_t ch = data[0];

	if (size != 1) { /* the 16550 has byte registers only */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (is_write)
		uart_write(u, off, ch, &irq, &out);
	else
		data[0] = uart_read(u, off, &irq);
	/* loopback is decided under the lock: MCR may change right after */
	if (out && (u->st.mcr & MCR_LOOP))
		out = 0;
	pthread_mutex_unlock(&u->lock);
	if (out)
		d->ctx.host->serial_out(d->ctx.host->opaque, &ch, 1);
	if (irq)
		sqb_irq_pulse(d->irq);
}

size_t sqb_uart_input(struct sqb_dev *d, const uint8_t *buf, size_t len)
{
	struct sqb_uart *u = d->priv;
	size_t n;
	int irq;

	pthread_mutex_lock(&u->lock);
	n = SQB_UART_FIFO - u->st.rx_len;
	if (n > len)
		n = len;
	memcpy(u->st.rx + u->st.rx_len, buf, n);
	u->st.rx_len += n;
	irq = uart_update_iir(u);
	pthread_mutex_unlock(&u->lock);
	if (irq && n)
		sqb_irq_pulse(d->irq);
	return n;
}

static void uart_reset(struct sqb_dev *d)
{
	struct sqb_uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	memset(&u->st, 0, sizeof(u->st));
	u->st.iir = 0xc1;
	u->st.lsr = 0x60;
	u->st.dll = 12; /* 9600 baud */
	pthread_mutex_unlock(&u->lock);
}

static int uart_realize(struct sqb_dev *d, const void *cfg)
{
	struct sqb_uart *u = calloc(1, sizeof(*u));

	(void)cfg;
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->dev = d;
	d->priv = u;
	uart_reset(d);
	return 0;
}

static void uart_unrealize(struct sqb_dev *d)
{
	struct sqb_uart *u = d->priv;

	pthread_mutex_destroy(&u->lock);
	free(u);
	d->priv = NULL;
}

/* DEVS type 1, version 1, 80 bytes (snapshots.md): ier iir lcr mcr lsr msr
 * scr dll dlm thr_irq_pending rx_len, 5 reserved, rx[64]. */
static int uart_state(struct sqb_dev *d, struct sqb_devst *s)
{
	struct sqb_uart *u = d->priv;
	struct uart_regs r;

	pthread_mutex_lock(&u->lock);
	r = u->st;
	sqb_devst_u8(s, &r.ier, "ier");
	sqb_devst_u8(s, &r.iir, "iir");
	sqb_devst_u8(s, &r.lcr, "lcr");
	sqb_devst_u8(s, &r.mcr, "mcr");
	sqb_devst_u8(s, &r.lsr, "lsr");
	sqb_devst_u8(s, &r.msr, "msr");
	sqb_devst_u8(s, &r.scr, "scr");
	sqb_devst_u8(s, &r.dll, "dll");
	sqb_devst_u8(s, &r.dlm, "dlm");
	sqb_devst_u8_max(s, &r.thr_irq_pending, 1, "thr_irq_pending");
	sqb_devst_u8_max(s, &r.rx_len, SQB_UART_FIFO, "rx_len");
	sqb_devst_reserved(s, 5);
	sqb_devst_bytes(s, r.rx, SQB_UART_FIFO, "rx");
	if (s->load && !s->err)
		u->st = r;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	*o = (struct sqb_dev_describe){.hid = "PNP0501",
				       .hid_eisa = 1,
				       .name = "COM1",
				       .space = SQB_BUS_PIO,
				       .base = d->base,
				       .len = (uint32_t)d->len};
	if (d->irq) {
		o->irq_kind = SQB_DESC_IRQ_LEGACY;
		o->gsi = d->irq->gsi;
	}
	return 0;
}

const struct sqb_dev_ops sqb_uart_ops = {
    .realize = uart_realize,
    .unrealize = uart_unrealize,
    .access = uart_access,
    .state = uart_state,
    .reset = uart_reset,
    .describe = uart_describe,
};
