/* i8042 keyboard controller, only as much as a microVM needs (Firecracker's
 * model): command 0xFE on port 0x64 pulses the CPU reset line, which ends
 * the VM cleanly; Ctrl+Alt+Del queues the key scancodes and raises IRQ 1,
 * again after each data read while bytes remain (one byte per interrupt).
 * A bus device, DEVS type 2 (snapshots.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

struct i8042_regs {
	uint8_t status, cmd, ctr, outp;
	uint8_t buf_len;
	uint8_t buf[SQB_I8042_BUF];
};

struct sqb_i8042 {
	pthread_mutex_t lock;
	struct i8042_regs st;
};

#define I8042_DATA     0
#define I8042_CMD      4
#define ST_OBF	       0x01
#define ST_SYS	       0x04
#define ST_CMD	       0x08
#define ST_UNLOCKED    0x10 /* keyboard not inhibited (no "Keylock active") */
#define CMD_READ_CTR   0x20
#define CMD_WRITE_CTR  0x60
#define CMD_READ_OUTP  0xd0
#define CMD_WRITE_OUTP 0xd1
#define CMD_RESET_CPU  0xfe

static void i8042_push(struct sqb_i8042 *k, uint8_t b)
{
	if (k->st.buf_len < SQB_I8042_BUF)
		k->st.buf[k->st.buf_len++] = b;
	k->st.status |= ST_OBF;
}

static uint8_t i8042_pop(struct sqb_i8042 *k)
{
	uint8_t b = 0;

	if (k->st.buf_len) {
		b = k->st.buf[0];
		memmove(k->st.buf, k->st.buf + 1, --k->st.buf_len);
	}
	if (!k->st.buf_len)
		k->st.status &= ~ST_OBF;
	return b;
}

static void i8042_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			 int is_write)
{
	struct sqb_i8042 *k = d->priv;
	int reset = 0, more = 0;

	if (size != 1 || (off != I8042_DATA && off != I8042_CMD)) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (!is_write) {
		if (off == I8042_CMD) {
			data[0] = (uint8_t)(k->st.status | ST_SYS | ST_UNLOCKED);
		} else {
			data[0] = i8042_pop(k);
			/* a guest reads one byte per interrupt: signal the next one */
			more = k->st.buf_len > 0;
		}
	} else if (off == I8042_CMD) {
		k->st.cmd = data[0];
		k->st.status |= ST_CMD;
		switch (data[0]) {
		case CMD_READ_CTR:
			i8042_push(k, k->st.ctr);
			break;
		case CMD_READ_OUTP:
			i8042_push(k, k->st.outp);
			break;
		case CMD_RESET_CPU:
			reset = 1;
			break;
		default:
			break;
		}
	} else {
		k->st.status &= ~ST_CMD;
		if (k->st.cmd == CMD_WRITE_CTR)
			k->st.ctr = data[0];
		else if (k->st.cmd == CMD_WRITE_OUTP)
			k->st.outp = data[0];
		else
			i8042_push(k, 0xfa); /* keyboard ACK for device commands */
		k->st.cmd = 0;
	}
	pthread_mutex_unlock(&k->lock);
	if (more)
		sqb_irq_pulse(d->irq);
	if (reset)
		d->ctx.host->request_reset(d->ctx.host->opaque);
}

int sqb_i8042_ctrl_alt_del(struct sqb_dev *d)
{
	/* Set-1 scancodes: Ctrl, Alt, Del (E0 53) down, then up. */
	static const uint8_t seq[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
	struct sqb_i8042 *k = d->priv;

	pthread_mutex_lock(&k->lock);
	if (k->st.buf_len + sizeof(seq) > SQB_I8042_BUF) {
		pthread_mutex_unlock(&k->lock);
		return -EBUSY;
	}
	for (size_t i = 0; i < sizeof(seq); i++)
		i8042_push(k, seq[i]);
	pthread_mutex_unlock(&k->lock);
	sqb_irq_pulse(d->irq);
	return 0;
}

static void i8042_reset(struct sqb_dev *d)
{
	struct sqb_i8042 *k = d->priv;

	pthread_mutex_lock(&k->lock);
	memset(&k->st, 0, sizeof(k->st));
	k->st.ctr = 0x47;
	k->st.outp = 0x01;
	pthread_mutex_unlock(&k->lock);
}

static int i8042_realize(struct sqb_dev *d, const void *cfg)
{
	struct sqb_i8042 *k = calloc(1, sizeof(*k));

	(void)cfg;
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	d->priv = k;
	i8042_reset(d);
	return 0;
}

static void i8042_unrealize(struct sqb_dev *d)
{
	struct sqb_i8042 *k = d->priv;

	pthread_mutex_destroy(&k->lock);
	free(k);
	d->priv = NULL;
}

/* DEVS type 2, version 1, 24 bytes (snapshots.md): status cmd ctr outp
 * buf_len, 3 reserved, buf[16]. */
static int i8042_state(struct sqb_dev *d, struct sqb_devst *s)
{
	struct sqb_i8042 *k = d->priv;
	struct i8042_regs r;

	pthread_mutex_lock(&k->lock);
	r = k->st;
	sqb_devst_u8(s, &r.status, "status");
	sqb_devst_u8(s, &r.cmd, "cmd");
	sqb_devst_u8(s, &r.ctr, "ctr");
	sqb_devst_u8(s, &r.outp, "outp");
	sqb_devst_u8_max(s, &r.buf_len, SQB_I8042_BUF, "buf_len");
	sqb_devst_reserved(s, 3);
	sqb_devst_bytes(s, r.buf, SQB_I8042_BUF, "buf");
	if (s->load && !s->err)
		k->st = r;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static int i8042_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	/* data port 0x60 and command port 0x64, as two one-port ranges */
	*o = (struct sqb_dev_describe){.hid = "PNP0303",
				       .hid_eisa = 1,
				       .name = "PS2K",
				       .space = SQB_BUS_PIO,
				       .base = d->base,
				       .len = 1,
				       .base2 = d->base + 4,
				       .len2 = 1};
	if (d->irq) {
		o->irq_kind = SQB_DESC_IRQ_LEGACY;
		o->gsi = d->irq->gsi;
	}
	return 0;
}

const struct sqb_dev_ops sqb_i8042_ops = {
    .realize = i8042_realize,
    .unrealize = i8042_unrealize,
    .access = i8042_access,
    .state = i8042_state,
    .reset = i8042_reset,
    .describe = i8042_describe,
};
