/* i8042 keyboard controller, only as much as a microVM needs (Firecracker's
 * model): command 0xFE on port 0x64 pulses the CPU reset line, which ends
 * the VM cleanly; Ctrl+Alt+Del queues the key scancodes and raises IRQ 1,
 * again after each data read while bytes remain (one byte per interrupt). */
#include <errno.h>
#include <string.h>

#include "dev.h"

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
#define KBD_IRQ	       1

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

void sqb_i8042_io(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		  int is_write)
{
	struct sqb_i8042 *k = &d->i8042;
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
		k->host->irq_pulse(k->host->opaque, KBD_IRQ);
	if (reset)
		k->host->request_reset(k->host->opaque);
}

int sqb_i8042_ctrl_alt_del(struct sqb_i8042 *k)
{
	/* Set-1 scancodes: Ctrl, Alt, Del (E0 53) down, then up. */
	static const uint8_t seq[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};

	pthread_mutex_lock(&k->lock);
	if (k->st.buf_len + sizeof(seq) > SQB_I8042_BUF) {
		pthread_mutex_unlock(&k->lock);
		return -EBUSY;
	}
	for (size_t i = 0; i < sizeof(seq); i++)
		i8042_push(k, seq[i]);
	pthread_mutex_unlock(&k->lock);
	k->host->irq_pulse(k->host->opaque, KBD_IRQ);
	return 0;
}

void sqb_i8042_save(struct sqb_devices *d, void *state)
{
	pthread_mutex_lock(&d->i8042.lock);
	memcpy(state, &d->i8042.st, sizeof(d->i8042.st));
	pthread_mutex_unlock(&d->i8042.lock);
}

int sqb_i8042_restore(struct sqb_devices *d, const void *state)
{
	const struct sqb_i8042_state *s = state;

	if (s->buf_len > SQB_I8042_BUF)
		return -EINVAL;
	pthread_mutex_lock(&d->i8042.lock);
	d->i8042.st = *s;
	pthread_mutex_unlock(&d->i8042.lock);
	return 0;
}
