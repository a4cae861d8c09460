/* Device state of a virtio-mmio device as an explicit little-endian byte
 * string (docs/format.md 9.1.1, [F-100] to [F-109]): one symmetric function
 * saves and restores the transport, each queue, the device record and the
 * rate limiter, comparing invariants on restore (bhyve's
 * SNAPSHOT_VAR_CMP_OR_LEAVE).  A failed restore leaves the device as it was. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_priv.h"

void sqb_vio_sv_fail(struct sqb_vio_sbuf *b, int err, size_t at, const char *fmt, ...)
{
	va_list ap;

	if (b->err)
		return;
	b->err = err;
	if (!b->diag)
		return;
	b->diag->offset = at;
	snprintf(b->diag->section, sizeof(b->diag->section), "virtio state");
	va_start(ap, fmt);
	vsnprintf(b->diag->reason, sizeof(b->diag->reason), fmt, ap);
	va_end(ap);
}

/* Room for n more bytes: grow when saving, bound-check when loading. */
static uint8_t *sv_take(struct sqb_vio_sbuf *b, size_t n, const char *name)
{
	uint8_t *p;

	if (b->err)
		return NULL;
	if (b->load) {
		if (b->len - b->off < n) {
			sqb_vio_sv_fail(b, -SQB_ETRUNCATED, b->off, "state ends inside %s", name);
			return NULL;
		}
	} else if (b->cap - b->off < n) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		uint8_t *nb;
		while (cap - b->off < n)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->buf = nb;
		b->cap = cap;
	}
	p = b->buf + b->off;
	b->off += n;
	if (!b->load)
		b->len = b->off;
	return p;
}

static void sv_le(struct sqb_vio_sbuf *b, uint64_t *v, unsigned int n, const char *name)
{
	uint8_t *p = sv_take(b, n, name);

	if (!p)
		return;
	if (b->load) {
		*v = 0;
		for (unsigned int i = 0; i < n; i++)
			*v |= (uint64_t)p[i] << (8 * i);
	} else {
		for (unsigned int i = 0; i < n; i++)
			p[i] = (uint8_t)(*v >> (8 * i));
	}
}

void sqb_vio_sv_u8(struct sqb_vio_sbuf *b, uint8_t *v, const char *name)
{
	uint64_t t = *v;
	sv_le(b, &t, 1, name);
	*v = (uint8_t)t;
}

void sqb_vio_sv_u16(struct sqb_vio_sbuf *b, uint16_t *v, const char *name)
{
	uint64_t t = *v;
	sv_le(b, &t, 2, name);
	*v = (uint16_t)t;
}

void sqb_vio_sv_u32(struct sqb_vio_sbuf *b, uint32_t *v, const char *name)
{
	uint64_t t = *v;
	sv_le(b, &t, 4, name);
	*v = (uint32_t)t;
}

void sqb_vio_sv_u64(struct sqb_vio_sbuf *b, uint64_t *v, const char *name)
{
	sv_le(b, v, 8, name);
}

static void sv_cmp(struct sqb_vio_sbuf *b, uint64_t cur, unsigned int n, const char *name)
{
	uint64_t v = cur;
	size_t at = b->off;

	sv_le(b, &v, n, name);
	if (b->load && !b->err && v != cur)
		sqb_vio_sv_fail(b, -SQB_EMISMATCH, at,
				"%s is %llu in the snapshot but %llu in this device", name,
				(unsigned long long)v, (unsigned long long)cur);
}

void sqb_vio_sv_cmp_u16(struct sqb_vio_sbuf *b, uint16_t cur, const char *name)
{
	sv_cmp(b, cur, 2, name);
}

void sqb_vio_sv_cmp_u32(struct sqb_vio_sbuf *b, uint32_t cur, const char *name)
{
	sv_cmp(b, cur, 4, name);
}

void sqb_vio_sv_cmp_u64(struct sqb_vio_sbuf *b, uint64_t cur, const char *name)
{
	sv_cmp(b, cur, 8, name);
}

void sqb_vio_sv_reserved(struct sqb_vio_sbuf *b, size_t n, const char *name)
{
	size_t at = b->off;
	uint8_t *p = sv_take(b, n, name);

	if (!p)
		return;
	if (!b->load) {
		memset(p, 0, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i]) {
			sqb_vio_sv_fail(b, -SQB_ERESERVED, at + i, "%s is not zero", name);
			return;
		}
}

/* Queue record, 40 bytes ([F-103]). */
static void sv_queue(struct sqb_vio_sbuf *b, struct sqb_vq *q, unsigned int i, bool broken)
{
	size_t at = b->off;
	uint32_t flags = (q->ready ? 1u : 0) | (q->signalled_valid ? 2u : 0);

	sqb_vio_sv_u16(b, &q->num, "queue num");
	sqb_vio_sv_cmp_u16(b, q->max_num, "queue num_max");
	sqb_vio_sv_u32(b, &flags, "queue flags");
	sqb_vio_sv_u64(b, &q->desc, "queue desc_addr");
	sqb_vio_sv_u64(b, &q->avail, "queue driver_addr");
	sqb_vio_sv_u64(b, &q->used, "queue device_addr");
	sqb_vio_sv_u16(b, &q->next_avail, "queue next_avail");
	sqb_vio_sv_u16(b, &q->next_used, "queue next_used");
	sqb_vio_sv_u16(b, &q->signalled_used, "queue signalled_used");
	sqb_vio_sv_reserved(b, 2, "queue reserved");
	if (!b->load || b->err)
		return;
	if (flags & ~3u)
		return sqb_vio_sv_fail(b, -SQB_ERESERVED, at + 8, "queue %u: reserved flag set", i);
	q->ready = flags & 1;
	q->signalled_valid = (flags >> 1) & 1;
	if (q->ready && (q->num == 0 || q->num > q->max_num || (q->num & (q->num - 1))))
		sqb_vio_sv_fail(b, -SQB_ECORRUPT, at,
				"queue %u: size %u is not a power of two <= %u", i, q->num,
				q->max_num);
	else if (q->ready && !broken && q->next_avail != q->next_used)
		/* [F-101]: quiesce completed every popped buffer before the save. */
		sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 32,
				"queue %u: next_avail %u != next_used %u: a request in flight", i,
				q->next_avail, q->next_used);
}

/* Bucket record, 56 bytes ([F-106]); times relative to now. */
static void sv_bucket(struct sqb_vio_sbuf *b, struct sqb_vio_tb *tb, uint64_t now)
{
	size_t at = b->off;
	uint32_t flags = tb->enabled;
	uint64_t elapsed = tb->enabled && now > tb->last_update ? now - tb->last_update : 0;

	sqb_vio_sv_u32(b, &flags, "bucket flags");
	sqb_vio_sv_reserved(b, 4, "bucket reserved");
	sqb_vio_sv_u64(b, &tb->size, "bucket size");
	sqb_vio_sv_u64(b, &tb->initial_burst, "bucket one_time_burst");
	sqb_vio_sv_u64(b, &tb->refill_ms, "bucket refill_time_ms");
	sqb_vio_sv_u64(b, &tb->burst, "bucket burst_left");
	sqb_vio_sv_u64(b, &tb->budget, "bucket budget");
	sqb_vio_sv_u64(b, &elapsed, "bucket elapsed_ns");
	if (!b->load || b->err)
		return;
	if (flags & ~1u)
		return sqb_vio_sv_fail(b, -SQB_ERESERVED, at, "bucket: reserved flag set");
	if (!flags) {
		/* A disabled bucket carries no state: all zero. */
		if (tb->size || tb->initial_burst || tb->refill_ms || tb->burst || tb->budget ||
		    elapsed)
			return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at, "disabled bucket with values");
		memset(tb, 0, sizeof(*tb));
		return;
	}
	if (!tb->size || !tb->refill_ms || tb->refill_ms > UINT64_MAX / 1000000ull ||
	    tb->budget > tb->size || tb->burst > tb->initial_burst)
		return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at, "bucket values out of range");
	{
		struct sqb_vio_bucket cfg = {tb->size, tb->initial_burst, tb->refill_ms};
		uint64_t budget = tb->budget, burst = tb->burst;
		struct sqb_vio_rl tmp;
		sqb_vio_rl_init(&tmp, &(struct sqb_vio_rl_config){cfg, {0, 0, 0}}, now);
		*tb = tmp.bw;
		tb->budget = budget;
		tb->burst = burst;
		tb->last_update = elapsed < now ? now - elapsed : 0;
	}
}

/* Rate limiter record, 128 bytes ([F-106]). */
static void sv_limiter(struct sqb_vio_sbuf *b, struct sqb_vio_rl *rl, uint64_t now)
{
	size_t at = b->off;
	uint32_t flags = rl->blocked;
	uint64_t left = rl->blocked && rl->blocked_until > now ? rl->blocked_until - now : 0;

	sqb_vio_sv_u32(b, &flags, "limiter flags");
	sqb_vio_sv_reserved(b, 4, "limiter reserved");
	sqb_vio_sv_u64(b, &left, "limiter blocked_ns");
	sv_bucket(b, &rl->bw, now);
	sv_bucket(b, &rl->ops, now);
	if (!b->load || b->err)
		return;
	if (flags & ~1u)
		return sqb_vio_sv_fail(b, -SQB_ERESERVED, at, "limiter: reserved flag set");
	if (!flags && left)
		return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 8,
				       "limiter not blocked but blocked_ns set");
	rl->blocked = flags & 1;
	rl->blocked_until = rl->blocked ? now + left : 0;
}

void sqb_vio_sv_limiter(struct sqb_vio_sbuf *b, struct sqb_vio_rl *rl, uint64_t now)
{
	sv_limiter(b, rl, now);
}

#define KNOWN_STATUS                                                                               \
	(SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_DRIVER_OK | SQB_VIO_S_FEATURES_OK |  \
	 SQB_VIO_S_NEEDS_RESET | SQB_VIO_S_FAILED)

/* Transport record, 56 bytes ([F-102]), then the queues. */
static void sv_transport(struct sqb_vio_sbuf *b, sqb_vio_dev *d)
{
	size_t at = b->off;

	sqb_vio_sv_cmp_u32(b, d->ops->device_id, "device_id");
	sqb_vio_sv_cmp_u32(b, d->ops->num_queues, "num_queues");
	sqb_vio_sv_cmp_u64(b, d->dev_features, "device_features");
	sqb_vio_sv_u64(b, &d->drv_features, "driver_features");
	sqb_vio_sv_u32(b, &d->status, "status");
	sqb_vio_sv_u32(b, &d->dev_features_sel, "device_features_sel");
	sqb_vio_sv_u32(b, &d->drv_features_sel, "driver_features_sel");
	sqb_vio_sv_u32(b, &d->queue_sel, "queue_sel");
	sqb_vio_sv_u32(b, &d->isr, "interrupt_status");
	sqb_vio_sv_u32(b, &d->config_gen, "config_generation");
	sqb_vio_sv_reserved(b, 8, "transport reserved");
	if (b->load && !b->err) {
		if (d->status & ~KNOWN_STATUS)
			return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 24,
					       "unknown status bits 0x%x", d->status);
		if (d->isr & ~3u)
			return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 40,
					       "unknown interrupt_status bits 0x%x", d->isr);
		/* Before FEATURES_OK the driver may have written anything. */
		if ((d->status & SQB_VIO_S_FEATURES_OK) && (d->drv_features & ~d->dev_features))
			return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 16,
					       "driver_features not a subset of device_features");
	}
	for (unsigned int i = 0; i < d->ops->num_queues; i++)
		sv_queue(b, &d->vq[i], i, (d->status & SQB_VIO_S_NEEDS_RESET) != 0);
}

static void sv_device(struct sqb_vio_sbuf *b, sqb_vio_dev *d, uint64_t now)
{
	bool ev, ind;

	sv_transport(b, d);
	if (d->ops->state)
		d->ops->state(d, b);
	sv_limiter(b, &d->rl, now);
	if (b->load && !b->err && b->off != b->len)
		sqb_vio_sv_fail(b, -SQB_ECORRUPT, b->off, "%zu bytes after the end of the state",
				b->len - b->off);
	ev = (d->status & SQB_VIO_S_FEATURES_OK) &&
	     ((d->drv_features >> SQB_VIO_F_RING_EVENT_IDX) & 1);
	ind = (d->status & SQB_VIO_S_FEATURES_OK) &&
	      ((d->drv_features >> SQB_VIO_F_RING_INDIRECT_DESC) & 1);
	for (unsigned int i = 0; b->load && i < SQB_VIO_MAX_QUEUES; i++) {
		d->vq[i].event_idx = ev;
		d->vq[i].indirect = ind;
	}
	if (b->load && !b->err) {
		d->has_rl = d->rl.bw.enabled || d->rl.ops.enabled || d->rl.blocked;
		if (d->has_rl && !d->host.timer.arm)
			sqb_vio_sv_fail(b, -EINVAL, b->len - 128,
					"a rate limiter in the state, but no host timer to run it");
	}
}

int sqb_vio_dev_save(sqb_vio_dev *dev, uint8_t **out, size_t *out_len)
{
	struct sqb_vio_sbuf b = {0};

	*out = NULL;
	*out_len = 0;
	pthread_mutex_lock(&dev->lock);
	sv_device(&b, dev, sqb_vio_now(dev));
	pthread_mutex_unlock(&dev->lock);
	if (b.err) {
		free(b.buf);
		return b.err;
	}
	*out = b.buf;
	*out_len = b.len;
	return 0;
}

int sqb_vio_dev_restore(sqb_vio_dev *dev, uint32_t version, const uint8_t *buf, size_t len,
			struct sqb_diag *diag)
{
	struct sqb_vio_sbuf b = {.buf = (uint8_t *)buf, .len = len, .load = 1, .diag = diag};
	const size_t from = offsetof(struct sqb_vio_dev, dev_features);
	const size_t to = offsetof(struct sqb_vio_dev, chain);
	uint8_t saved[offsetof(struct sqb_vio_dev, chain)];
	bool raise;

	if (version < SQB_VIO_STATE_MIN_VERSION || version > SQB_VIO_STATE_VERSION) {
		sqb_vio_sv_fail(&b, -SQB_EVERSION, 0, "state version %u, this squib reads %u..%u",
				version, SQB_VIO_STATE_MIN_VERSION, SQB_VIO_STATE_VERSION);
		return b.err;
	}
	pthread_mutex_lock(&dev->lock);
	/* Plain fields only: a byte copy is a complete rollback point. */
	memcpy(saved, (uint8_t *)dev + from, to - from);
	sv_device(&b, dev, sqb_vio_now(dev));
	if (b.err)
		memcpy((uint8_t *)dev + from, saved, to - from);
	if (!b.err)
		dev->reset_why = (dev->status & SQB_VIO_S_NEEDS_RESET)
				     ? "saved while in DEVICE_NEEDS_RESET"
				     : NULL;
	if (!b.err && dev->ops->restored)
		dev->ops->restored(dev);
	raise = !b.err && dev->isr;
	/* An interrupt that was pending when saved is delivered again (edge). */
	/* (virtio-pci: a message is never lost that way; one the guest had
	 * masked is in the function's PBA, one it had not is in the saved
	 * local APIC, so nothing is sent again) */
	if (raise && !dev->pci)
		dev->host.irq.raise(dev->host.irq.opaque);
	pthread_mutex_unlock(&dev->lock);
	return b.err;
}
