/* The virtio-mmio transport, modern only (virtio 1.x section 4.2.2, Version
 * register 2): register window, feature negotiation (VIRTIO_F_VERSION_1
 * required), status with reset-on-0, queue setup, interrupt status/ack,
 * DEVICE_NEEDS_RESET on a hostile ring, and queue-notify dispatch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "virtio_priv.h"

enum {
	R_MAGIC = 0x000,
	R_VERSION = 0x004,
	R_DEVICE_ID = 0x008,
	R_VENDOR_ID = 0x00c,
	R_DEV_FEATURES = 0x010,
	R_DEV_FEATURES_SEL = 0x014,
	R_DRV_FEATURES = 0x020,
	R_DRV_FEATURES_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM_MAX = 0x034,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_INT_STATUS = 0x060,
	R_INT_ACK = 0x064,
	R_STATUS = 0x070,
	R_QUEUE_DESC_LO = 0x080,
	R_QUEUE_DESC_HI = 0x084,
	R_QUEUE_DRIVER_LO = 0x090,
	R_QUEUE_DRIVER_HI = 0x094,
	R_QUEUE_DEVICE_LO = 0x0a0,
	R_QUEUE_DEVICE_HI = 0x0a4,
	R_SHM_SEL = 0x0ac,
	R_SHM_LEN_LO = 0x0b0,
	R_SHM_LEN_HI = 0x0b4,
	R_SHM_BASE_LO = 0x0b8,
	R_SHM_BASE_HI = 0x0bc,
	R_QUEUE_RESET = 0x0c0,
	R_CONFIG_GEN = 0x0fc,
	R_CONFIG = 0x100,
};

static uint64_t clock_now(void *opaque)
{
	struct timespec ts;

	(void)opaque;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sqb_vio_now(sqb_vio_dev *dev)
{
	return dev->host.clock.now_ns(dev->host.clock.opaque);
}

int sqb_vio_dev_init(sqb_vio_dev *dev, const struct sqb_vio_ops *ops,
		     const struct sqb_vio_host *host, uint64_t features,
		     const struct sqb_vio_rl_config *rl)
{
	if (!host || !host->mem.map || !host->irq.raise || ops->num_queues > SQB_VIO_MAX_QUEUES)
		return -EINVAL;
	/* A throttled queue waits for the timer: without one it would stall. */
	if (rl && !host->timer.arm)
		return -EINVAL;
	if (pthread_mutex_init(&dev->lock, NULL))
		return -ENOMEM;
	dev->ops = ops;
	dev->host = *host;
	if (!dev->host.clock.now_ns)
		dev->host.clock.now_ns = clock_now;
	dev->dev_features = features | 1ull << SQB_VIO_F_VERSION_1 |
			    1ull << SQB_VIO_F_RING_EVENT_IDX | 1ull << SQB_VIO_F_RING_INDIRECT_DESC;
	for (unsigned int i = 0; i < SQB_VIO_MAX_QUEUES; i++) {
		dev->vq[i].max_num = i < ops->num_queues ? SQB_VQ_MAX_SIZE : 0;
		sqb_vq_reset(&dev->vq[i]);
		dev->msix_queue[i] = SQB_VIO_MSI_NO_VECTOR;
	}
	dev->msix_config = SQB_VIO_MSI_NO_VECTOR;
	dev->has_rl = rl != NULL;
	sqb_vio_rl_init(&dev->rl, rl, sqb_vio_now(dev));
	return 0;
}

void sqb_vio_dev_free(sqb_vio_dev *dev)
{
	if (!dev)
		return;
	if (dev->ops->free)
		dev->ops->free(dev);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

unsigned int sqb_vio_num_queues(const sqb_vio_dev *dev)
{
	return dev->ops->num_queues;
}

uint32_t sqb_vio_device_id(const sqb_vio_dev *dev)
{
	return dev->ops->device_id;
}

uint32_t sqb_vio_status(sqb_vio_dev *dev)
{
	uint32_t s;

	pthread_mutex_lock(&dev->lock);
	s = dev->status;
	pthread_mutex_unlock(&dev->lock);
	return s;
}

const char *sqb_vio_reset_reason(sqb_vio_dev *dev)
{
	const char *why;

	pthread_mutex_lock(&dev->lock);
	why = dev->reset_why;
	pthread_mutex_unlock(&dev->lock);
	return why;
}

void sqb_vio_raise(sqb_vio_dev *dev, uint32_t bit, int q)
{
	dev->isr |= bit;
	dev->irqs++;
	if (dev->pci) { /* MSI-X: the vector the driver mapped, none: no interrupt */
		uint16_t vec = q < 0 ? dev->msix_config : dev->msix_queue[q];

		if (vec != SQB_VIO_MSI_NO_VECTOR)
			dev->host.irq.raise_vector(dev->host.irq.opaque, vec);
		return;
	}
	dev->host.irq.raise(dev->host.irq.opaque);
}

void sqb_vio_config_changed(sqb_vio_dev *dev)
{
	dev->config_gen++;
	if (dev->status & SQB_VIO_S_DRIVER_OK)
		sqb_vio_raise(dev, SQB_VIO_INT_CONFIG, -1);
}

void sqb_vio_signal_used(sqb_vio_dev *dev, unsigned int q)
{
	if (sqb_vq_should_signal(&dev->vq[q], &dev->host.mem))
		sqb_vio_raise(dev, SQB_VIO_INT_VRING, (int)q);
}

/* virtio 1.x 2.1.2: the device sets DEVICE_NEEDS_RESET and, once the driver
 * is up (DRIVER_OK), sends a configuration change notification; queues stay
 * stopped until reset. */
static void needs_reset(sqb_vio_dev *dev, const char *why)
{
	if (dev->status & SQB_VIO_S_NEEDS_RESET)
		return;
	sqb_debug("virtio dev %u: DEVICE_NEEDS_RESET: %s", dev->ops->device_id, why);
	dev->status |= SQB_VIO_S_NEEDS_RESET;
	dev->reset_why = why;
	sqb_vio_config_changed(dev);
}

void sqb_vio_needs_reset(sqb_vio_dev *dev, const char *why)
{
	needs_reset(dev, why);
}

static void dev_reset(sqb_vio_dev *dev)
{
	dev->status = 0;
	dev->reset_why = NULL;
	dev->drv_features = 0;
	dev->dev_features_sel = dev->drv_features_sel = 0;
	dev->queue_sel = 0;
	dev->isr = 0;
	for (unsigned int i = 0; i < SQB_VIO_MAX_QUEUES; i++)
		sqb_vq_reset(&dev->vq[i]);
	dev->msix_config = SQB_VIO_MSI_NO_VECTOR;
	for (unsigned int i = 0; i < SQB_VIO_MAX_QUEUES; i++)
		dev->msix_queue[i] = SQB_VIO_MSI_NO_VECTOR;
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

static bool queue_live(const sqb_vio_dev *dev, unsigned int q)
{
	return q < dev->ops->num_queues && dev->vq[q].ready &&
	       (dev->status & SQB_VIO_S_DRIVER_OK) && !(dev->status & SQB_VIO_S_NEEDS_RESET);
}

void sqb_vio_process_locked(sqb_vio_dev *dev, unsigned int q)
{
	const char *why = NULL;

	if (!queue_live(dev, q))
		return;
	if (dev->ops->process(dev, q, &why) < 0) {
		if (!(dev->status & SQB_VIO_S_NEEDS_RESET) && q < SQB_VIO_METRICS_QUEUES)
			dev->m.queue_fails[q]++;
		needs_reset(dev, why ? why : "bad descriptor chain");
	}
}

void sqb_vio_lat_add(struct sqb_vio_lat *l, uint64_t us)
{
	l->sum_us += us;
	if (!l->min_us || us < l->min_us)
		l->min_us = us;
	if (us > l->max_us)
		l->max_us = us;
}

void sqb_vio_get_metrics(sqb_vio_dev *dev, struct sqb_vio_metrics *out)
{
	pthread_mutex_lock(&dev->lock);
	*out = dev->m;
	pthread_mutex_unlock(&dev->lock);
}

int sqb_vio_queue_notify(sqb_vio_dev *dev, uint32_t queue_index)
{
	pthread_mutex_lock(&dev->lock);
	if (queue_index < SQB_VIO_METRICS_QUEUES)
		dev->m.notify[queue_index]++;
	sqb_vio_process_locked(dev, queue_index);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_dev_poll(sqb_vio_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	if (dev->has_rl && dev->rl.blocked && !sqb_vio_rl_expire(&dev->rl, sqb_vio_now(dev))) {
		/* Early: ask for the timer again rather than spin. */
		if (dev->host.timer.arm)
			dev->host.timer.arm(dev->host.timer.opaque, dev->rl.blocked_until);
	} else {
		for (unsigned int q = 0; q < dev->ops->num_queues; q++)
			sqb_vio_process_locked(dev, q);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_quiesce(sqb_vio_dev *dev)
{
	int err;

	pthread_mutex_lock(&dev->lock);
	dev->quiesce_err = 0;
	if (dev->ops->quiesce)
		dev->ops->quiesce(dev);
	err = dev->quiesce_err;
	pthread_mutex_unlock(&dev->lock);
	return err;
}

bool sqb_vio_throttle_ok(sqb_vio_dev *dev, uint64_t bytes, bool count_bytes)
{
	uint64_t now, at = 0;

	if (!dev->has_rl)
		return true;
	now = sqb_vio_now(dev);
	/* A notify after the deadline need not wait for the timer's poll. */
	sqb_vio_rl_expire(&dev->rl, now);
	if (!sqb_vio_rl_consume(&dev->rl, 1, SQB_VIO_TOK_OPS, now, &at))
		goto throttled;
	if (count_bytes && !sqb_vio_rl_consume(&dev->rl, bytes, SQB_VIO_TOK_BYTES, now, &at)) {
		sqb_vio_rl_replenish(&dev->rl, 1, SQB_VIO_TOK_OPS);
		goto throttled;
	}
	/* An over-consumption succeeds but blocks later requests: arm now. */
	if (dev->rl.blocked && dev->host.timer.arm)
		dev->host.timer.arm(dev->host.timer.opaque, dev->rl.blocked_until);
	return true;
throttled:
	dev->m.throttled++;
	if (dev->host.timer.arm)
		dev->host.timer.arm(dev->host.timer.opaque, at);
	return false;
}

bool sqb_vio_rl_throttle_ok(sqb_vio_dev *dev, struct sqb_vio_rl *rl, uint64_t bytes)
{
	uint64_t now = sqb_vio_now(dev), at = 0;

	sqb_vio_rl_expire(rl, now);
	if (!sqb_vio_rl_consume(rl, 1, SQB_VIO_TOK_OPS, now, &at))
		goto throttled;
	if (!sqb_vio_rl_consume(rl, bytes, SQB_VIO_TOK_BYTES, now, &at)) {
		sqb_vio_rl_replenish(rl, 1, SQB_VIO_TOK_OPS);
		goto throttled;
	}
	if (rl->blocked && dev->host.timer.arm)
		dev->host.timer.arm(dev->host.timer.opaque, rl->blocked_until);
	return true;
throttled:
	if (dev->host.timer.arm)
		dev->host.timer.arm(dev->host.timer.opaque, at);
	return false;
}

int sqb_vio_set_rate_limiter(sqb_vio_dev *dev, const struct sqb_vio_rl_config *rl)
{
	if (rl && !dev->host.timer.arm)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	dev->has_rl = rl != NULL;
	sqb_vio_rl_init(&dev->rl, rl, sqb_vio_now(dev));
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* FEATURES_OK: the driver must accept VERSION_1 and nothing not offered. */
uint32_t sqb_vio_status_write(sqb_vio_dev *dev, uint32_t v)
{
	uint32_t set = v & ~dev->status;

	if (v == 0) {
		dev_reset(dev);
		return 0;
	}
	/* Bits the spec does not define are dropped, so a saved state only ever
	 * holds known bits ([F-102]). */
	v &= SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_DRIVER_OK |
	     SQB_VIO_S_FEATURES_OK | SQB_VIO_S_FAILED;
	set = v & ~dev->status;
	if ((set & SQB_VIO_S_FEATURES_OK) && (!(dev->drv_features & 1ull << SQB_VIO_F_VERSION_1) ||
					      (dev->drv_features & ~dev->dev_features) ||
					      (dev->ops->required_features & ~dev->drv_features)))
		v &= ~SQB_VIO_S_FEATURES_OK;
	if ((set & SQB_VIO_S_DRIVER_OK) && !(dev->status & SQB_VIO_S_FEATURES_OK) &&
	    !(v & SQB_VIO_S_FEATURES_OK))
		v &= ~SQB_VIO_S_DRIVER_OK;
	/* Bits are only ever added; NEEDS_RESET belongs to the device. */
	dev->status |= v & ~SQB_VIO_S_NEEDS_RESET;
	if ((set & v & SQB_VIO_S_DRIVER_OK) && dev->ops->activate) {
		const char *why = NULL;

		if (dev->ops->activate(dev, &why) < 0)
			needs_reset(dev, why ? why : "activation failed");
	}
	if (dev->status & SQB_VIO_S_FEATURES_OK) {
		bool ev = (dev->drv_features >> SQB_VIO_F_RING_EVENT_IDX) & 1;
		bool ind = (dev->drv_features >> SQB_VIO_F_RING_INDIRECT_DESC) & 1;
		for (unsigned int i = 0; i < SQB_VIO_MAX_QUEUES; i++) {
			dev->vq[i].event_idx = ev;
			dev->vq[i].indirect = ind;
		}
	}
	return dev->status;
}

static uint32_t reg_read(sqb_vio_dev *dev, uint32_t off)
{
	struct sqb_vq *q = dev->queue_sel < dev->ops->num_queues ? &dev->vq[dev->queue_sel] : NULL;

	switch (off) {
	case R_MAGIC:
		return SQB_VIO_MAGIC;
	case R_VERSION:
		return 2;
	case R_DEVICE_ID:
		return dev->ops->device_id;
	case R_VENDOR_ID:
		return SQB_VIO_VENDOR_ID;
	case R_DEV_FEATURES:
		return dev->dev_features_sel < 2
			   ? (uint32_t)(dev->dev_features >> (32 * dev->dev_features_sel))
			   : 0;
	case R_QUEUE_NUM_MAX:
		return q ? q->max_num : 0;
	case R_QUEUE_READY:
		return q ? q->ready : 0;
	case R_INT_STATUS:
		if (dev->ops->isr_vring_default && dev->isr != SQB_VIO_INT_CONFIG)
			return SQB_VIO_INT_VRING;
		return dev->isr;
	case R_STATUS:
		return dev->status;
	case R_SHM_LEN_LO:
	case R_SHM_LEN_HI:
	case R_SHM_BASE_LO:
	case R_SHM_BASE_HI:
		return 0xffffffffu; /* no shared memory regions (4.2.2: length -1) */
	case R_CONFIG_GEN:
		return dev->config_gen;
	default:
		return 0; /* write-only or unknown */
	}
}

static void set_half(uint64_t *v, int hi, uint32_t val)
{
	if (hi)
		*v = (*v & 0xffffffffull) | (uint64_t)val << 32;
	else
		*v = (*v & ~0xffffffffull) | val;
}

void sqb_vio_queue_ready_write(sqb_vio_dev *dev, struct sqb_vq *q, uint32_t v)
{
	const char *why = NULL;

	if (!v) {
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (sqb_vq_validate(q, &dev->host.mem, &why)) {
		needs_reset(dev, why);
		return;
	}
	q->ready = true;
}

static void reg_write(sqb_vio_dev *dev, uint32_t off, uint32_t v)
{
	struct sqb_vq *q = dev->queue_sel < dev->ops->num_queues ? &dev->vq[dev->queue_sel] : NULL;
	bool feat_open = (dev->status & (SQB_VIO_S_FEATURES_OK | SQB_VIO_S_DRIVER_OK)) == 0;
	/* Queue layout may only change while the queue is not ready (4.2.2.2). */
	bool q_open = q && !q->ready;

	switch (off) {
	case R_DEV_FEATURES_SEL:
		dev->dev_features_sel = v;
		break;
	case R_DRV_FEATURES:
		if (feat_open && dev->drv_features_sel < 2)
			set_half(&dev->drv_features, (int)dev->drv_features_sel, v);
		break;
	case R_DRV_FEATURES_SEL:
		dev->drv_features_sel = v;
		break;
	case R_QUEUE_SEL:
		dev->queue_sel = v;
		break;
	case R_QUEUE_NUM:
		if (q_open)
			q->num = (uint16_t)(v > 0xffff ? 0 : v);
		break;
	case R_QUEUE_READY:
		if (q)
			sqb_vio_queue_ready_write(dev, q, v);
		break;
	case R_QUEUE_NOTIFY:
		sqb_vio_process_locked(dev, v & 0xffff);
		break;
	case R_INT_ACK:
		dev->isr &= ~v;
		break;
	case R_STATUS:
		sqb_vio_status_write(dev, v);
		break;
	case R_QUEUE_DESC_LO:
	case R_QUEUE_DESC_HI:
		if (q_open)
			set_half(&q->desc, off == R_QUEUE_DESC_HI, v);
		break;
	case R_QUEUE_DRIVER_LO:
	case R_QUEUE_DRIVER_HI:
		if (q_open)
			set_half(&q->avail, off == R_QUEUE_DRIVER_HI, v);
		break;
	case R_QUEUE_DEVICE_LO:
	case R_QUEUE_DEVICE_HI:
		if (q_open)
			set_half(&q->used, off == R_QUEUE_DEVICE_HI, v);
		break;
	default:
		break; /* read-only, SHMSel, QueueReset (not offered), unknown */
	}
}

void sqb_vio_config_access(sqb_vio_dev *dev, uint32_t off, uint8_t *data, unsigned int size,
			   int is_write)
{
	uint32_t len = dev->ops->config_len ? dev->ops->config_len(dev) : 0;

	if (is_write) {
		/* blk, rng, net, vsock: no writable config fields */
		if (dev->ops->config_write && off < len)
			dev->ops->config_write(dev, off, data,
					       size <= len - off ? size : len - off);
		return;
	}
	memset(data, 0, size);
	if (off < len)
		dev->ops->config_read(dev, off, data, size <= len - off ? size : len - off);
}

int sqb_vio_mmio_access(sqb_vio_dev *dev, uint64_t offset, void *data, unsigned int size,
			int is_write)
{
	uint8_t *b = data;

	if (!dev || !data || (size != 1 && size != 2 && size != 4 && size != 8))
		return -EINVAL;
	if (offset >= SQB_VIO_MMIO_SIZE || size > SQB_VIO_MMIO_SIZE - offset) {
		if (!is_write)
			memset(b, 0, size);
		return -EINVAL;
	}
	pthread_mutex_lock(&dev->lock);
	if (offset >= R_CONFIG) {
		sqb_vio_config_access(dev, (uint32_t)offset - R_CONFIG, b, size, is_write);
	} else if (size != 4 || (offset & 3)) {
		/* 4.2.2.2: registers are accessed as aligned 32-bit words only. */
		if (!is_write)
			memset(b, 0, size);
	} else if (is_write) {
		uint32_t v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			     (uint32_t)b[3] << 24;
		reg_write(dev, (uint32_t)offset, v);
	} else {
		uint32_t v = reg_read(dev, (uint32_t)offset);
		for (int i = 0; i < 4; i++)
			b[i] = (uint8_t)(v >> (8 * i));
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}
