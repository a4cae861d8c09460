/* Device state <-> DEVS sections (docs/format.md 9.1 [F-56]): one explicit
 * field-by-field encoder per device of runtime/dev.h, with the invariants
 * checked again on load.  Device types are listed in docs/snapshots.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snap_priv.h"

#define DEV_UART  1u
#define DEV_I8042 2u

/* UART v1: ier iir lcr mcr lsr msr scr dll dlm thr_irq_pending rx_len, 5
 * reserved bytes, rx[64]: 80 bytes. */
#define UART_ENC 80
static size_t uart_enc(const void *st, uint8_t *o)
{
	const struct sqb_uart_state *s = st;

	memset(o, 0, UART_ENC);
	o[0] = s->ier, o[1] = s->iir, o[2] = s->lcr, o[3] = s->mcr, o[4] = s->lsr;
	o[5] = s->msr, o[6] = s->scr, o[7] = s->dll, o[8] = s->dlm;
	o[9] = s->thr_irq_pending, o[10] = s->rx_len;
	memcpy(o + 16, s->rx, SQB_UART_FIFO);
	return UART_ENC;
}

static int uart_dec(const uint8_t *in, size_t len, void *st)
{
	struct sqb_uart_state *s = st;

	if (len != UART_ENC || in[10] > SQB_UART_FIFO || in[9] > 1)
		return -SQB_ECORRUPT;
	for (int i = 11; i < 16; i++)
		if (in[i])
			return -SQB_ERESERVED;
	memset(s, 0, sizeof(*s));
	s->ier = in[0], s->iir = in[1], s->lcr = in[2], s->mcr = in[3], s->lsr = in[4];
	s->msr = in[5], s->scr = in[6], s->dll = in[7], s->dlm = in[8];
	s->thr_irq_pending = in[9], s->rx_len = in[10];
	memcpy(s->rx, in + 16, SQB_UART_FIFO);
	return 0;
}

/* i8042 v1: status cmd ctr outp buf_len, 3 reserved bytes, buf[16]: 24 bytes. */
#define I8042_ENC 24
static size_t i8042_enc(const void *st, uint8_t *o)
{
	const struct sqb_i8042_state *s = st;

	memset(o, 0, I8042_ENC);
	o[0] = s->status, o[1] = s->cmd, o[2] = s->ctr, o[3] = s->outp, o[4] = s->buf_len;
	memcpy(o + 8, s->buf, SQB_I8042_BUF);
	return I8042_ENC;
}

static int i8042_dec(const uint8_t *in, size_t len, void *st)
{
	struct sqb_i8042_state *s = st;

	if (len != I8042_ENC || in[4] > SQB_I8042_BUF || in[5] || in[6] || in[7])
		return -SQB_ECORRUPT;
	memset(s, 0, sizeof(*s));
	s->status = in[0], s->cmd = in[1], s->ctr = in[2], s->outp = in[3], s->buf_len = in[4];
	memcpy(s->buf, in + 8, SQB_I8042_BUF);
	return 0;
}

struct dev_codec {
	const char *name; /* sqb_devices_table[].name */
	uint32_t type, version;
	uint32_t irq;
	size_t (*enc)(const void *st, uint8_t *out);
	int (*dec)(const uint8_t *in, size_t len, void *st);
};

static const struct dev_codec codecs[] = {
    {"uart0", DEV_UART, 1, 4, uart_enc, uart_dec},
    {"i8042", DEV_I8042, 1, 1, i8042_enc, i8042_dec},
};

static const struct dev_codec *codec_for(const char *name)
{
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (!strcmp(codecs[i].name, name))
			return &codecs[i];
	return NULL;
}

int sqb_snap_devs_save(struct sqb_vm *vm, sqb_snap_writer *w)
{
	for (unsigned int i = 0; i < sqb_devices_count; i++) {
		const struct sqb_dev_desc *dd = &sqb_devices_table[i];
		const struct dev_codec *c;
		uint8_t st[256], enc[256];
		struct sqb_device dev;

		if (!dd->save)
			continue; /* stateless (e.g. the POST-code port) */
		c = codec_for(dd->name);
		if (!c || dd->state_size > sizeof(st))
			return -SQB_EUNSUPPORTED; /* a stateful device without an encoder */
		dd->save(&vm->devs, st);
		memset(&dev, 0, sizeof(dev));
		dev.type = c->type;
		dev.version = c->version;
		dev.bus_addr = dd->base;
		dev.irq = c->irq;
		snprintf(dev.id, sizeof(dev.id), "%s", dd->name);
		dev.state = enc;
		dev.state_len = c->enc(st, enc);
		FORWARD_IF_ERROR(sqb_writer_add_device(w, &dev));
	}
	return 0;
}

/* Every stateful device of this VMM must be in the snapshot, and every
 * device in the snapshot must be one this VMM has. */
int sqb_snap_devs_load(struct sqb_vm *vm, const sqb_snap *s, struct sqb_diag *diag)
{
	unsigned int n = sqb_snap_device_count(s), found = 0, stateful = 0;
	uint64_t seen = 0;

	for (unsigned int i = 0; i < sqb_devices_count; i++)
		stateful += sqb_devices_table[i].save != NULL;
	for (unsigned int k = 0; k < n; k++) {
		struct sqb_device dev;
		const struct sqb_dev_desc *dd = NULL;
		const struct dev_codec *c;
		void *backing = NULL;
		uint8_t st[256];
		int err;

		FORWARD_IF_ERROR(sqb_snap_device(s, k, &dev, &backing, diag));
		for (unsigned int i = 0; i < sqb_devices_count && i < 64; i++)
			if (!strcmp(sqb_devices_table[i].name, dev.id) &&
			    sqb_devices_table[i].save && !(seen & (1ULL << i))) {
				dd = &sqb_devices_table[i];
				seen |= 1ULL << i;
			}
		c = dd ? codec_for(dd->name) : NULL;
		if (!c || c->type != dev.type || c->version != dev.version ||
		    dev.bus_addr != dd->base) {
			sqb_snap_diag(diag, "DEVS",
				      "device '%s' (type %u v%u) is not one this squib has", dev.id,
				      dev.type, dev.version);
			free(backing);
			return -SQB_EMISMATCH;
		}
		memset(st, 0, sizeof(st));
		err = c->dec(dev.state, dev.state_len, st);
		if (!err)
			err = dd->restore(&vm->devs, st);
		free(backing);
		if (err) {
			sqb_snap_diag(diag, "DEVS", "device '%s': state is invalid", dd->name);
			return err < 0 && err > -1000 ? -SQB_ECORRUPT : err;
		}
		found++;
	}
	if (found != stateful) {
		sqb_snap_diag(diag, "DEVS", "snapshot holds %u of this VMM's %u stateful devices",
			      found, stateful);
		return -SQB_EMISMATCH;
	}
	return 0;
}
