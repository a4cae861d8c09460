/* 16550A UART serial console (0x3f8, IRQ 4): transmit to the VMM's serial
 * sink, a 64-byte receive FIFO fed by the host, THRE/RDA interrupts.  The
 * register model follows the 16550 data sheet; state is a plain struct. */
#include <errno.h>
#include <string.h>

#include "dev.h"

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
	struct sqb_uart_state *s = &u->st;
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
	struct sqb_uart_state *s = &u->st;
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
	struct sqb_uart_state *s = &u->st;

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

void sqb_uart_io(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		 int is_write)
{
	struct sqb_uart *u = &d->uart;
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
	pthread_mutex_unlock(&u->lock);
	if (out && !(u->st.mcr & MCR_LOOP))
		u->host->serial_out(u->host->opaque, &ch, 1);
	if (irq)
		u->host->irq_pulse(u->host->opaque, u->irq);
}

size_t sqb_uart_input(struct sqb_uart *u, const uint8_t *buf, size_t len)
{
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
		u->host->irq_pulse(u->host->opaque, u->irq);
	return n;
}

void sqb_uart_save(struct sqb_devices *d, void *state)
{
	pthread_mutex_lock(&d->uart.lock);
	memcpy(state, &d->uart.st, sizeof(d->uart.st));
	pthread_mutex_unlock(&d->uart.lock);
}

int sqb_uart_restore(struct sqb_devices *d, const void *state)
{
	const struct sqb_uart_state *s = state;

	if (s->rx_len > SQB_UART_FIFO)
		return -EINVAL;
	pthread_mutex_lock(&d->uart.lock);
	d->uart.st = *s;
	pthread_mutex_unlock(&d->uart.lock);
	return 0;
}
