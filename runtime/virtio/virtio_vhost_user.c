/* vhost-user block: a virtio-blk device whose queue a backend process serves
 * (Firecracker's VhostUserBlock, docs/virtio.md "vhost-user block").  squib
 * negotiates features, answers config space from the backend's GET_CONFIG
 * and, at DRIVER_OK, hands the backend guest RAM, the ring and two eventfds;
 * the requests themselves never pass through squib. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "vhost_user.h"
#include "virtio_priv.h"

/* Firecracker's AVAILABLE_FEATURES for vhost-user block, FLUSH added for
 * cache_type Writeback. */
#define VHB_AVAILABLE                                                                              \
	(1ull << SQB_VIO_F_VERSION_1 | 1ull << SQB_VIO_F_RING_EVENT_IDX |                          \
	 1ull << SQB_VHU_F_PROTOCOL_FEATURES | 1ull << SQB_VIO_F_BLK_RO)
#define VHB_PROTOCOL (1ull << SQB_VHU_PF_CONFIG | 1ull << SQB_VHU_PF_REPLY_ACK)

struct vhb {
	sqb_vhu *c;
	struct sqb_vio_vhost_io io;
	char id[32];
	int active;    /* the backend holds the ring */
	int logged;    /* the broken connection was logged */
	char why[256]; /* the last failure (reset_why points here) */
	struct sqb_vio_vhost_metrics m;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int pf(const sqb_vhu *c)
{
	return (c->features >> SQB_VHU_F_PROTOCOL_FEATURES) & 1;
}

int sqb_vio_vhost_blk_open(sqb_vhu **out, const char *socket, int writeback, int timeout_ms,
			   char *why, size_t len)
{
	uint64_t want = VHB_AVAILABLE | (writeback ? 1ull << SQB_VIO_F_BLK_FLUSH : 0), be = 0;
	sqb_vhu *c = NULL;
	char w[200] = "";
	uint64_t t0 = now_us();
	int err;

	*out = NULL;
	if ((err = sqb_vhu_connect(&c, socket, timeout_ms, why, len)) < 0)
		return err;
	if ((err = sqb_vhu_request(c, SQB_VHU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0, w, sizeof(w))) <
	    0) {
		snprintf(why, len, "Set owner failed: %s", w);
		goto err;
	}
	if ((err = sqb_vhu_get_u64(c, SQB_VHU_GET_FEATURES, &be, w, sizeof(w))) < 0) {
		snprintf(why, len, "Get features failed: %s", w);
		goto err;
	}
	c->features = want & be;
	if (!(c->features & 1ull << SQB_VIO_F_VERSION_1)) {
		snprintf(why, len,
			 "the backend does not offer VIRTIO_F_VERSION_1 (features 0x%llx); "
			 "squib's virtio-mmio transport is modern only",
			 (unsigned long long)be);
		err = -ENOTSUP;
		goto err;
	}
	if (pf(c)) {
		uint64_t bp = 0;

		if ((err = sqb_vhu_get_u64(c, SQB_VHU_GET_PROTOCOL_FEATURES, &bp, w, sizeof(w))) <
		    0) {
			snprintf(why, len, "Get protocol features failed: %s", w);
			goto err;
		}
		c->protocol_features = VHB_PROTOCOL & bp;
		if ((err = sqb_vhu_set_u64(c, SQB_VHU_SET_PROTOCOL_FEATURES, c->protocol_features,
					   w, sizeof(w))) < 0) {
			snprintf(why, len, "Set protocol features failed: %s", w);
			goto err;
		}
		sqb_vhu_set_reply_ack(c, (c->protocol_features >> SQB_VHU_PF_REPLY_ACK) & 1);
	}
	if ((c->protocol_features >> SQB_VHU_PF_CONFIG) & 1) {
		if ((err = sqb_vhu_get_config(c, SQB_VHU_BLK_CONFIG_LEN, c->config, w, sizeof(w))) <
		    0) {
			snprintf(why, len, "Get config failed: %s", w);
			goto err;
		}
		c->config_len = SQB_VHU_BLK_CONFIG_LEN;
	}
	c->init_us = now_us() - t0;
	*out = c;
	return 0;
err:
	sqb_vhu_close(c);
	return err;
}

int sqb_vio_vhost_read_only(const sqb_vhu *c)
{
	return c && (c->features >> SQB_VIO_F_BLK_RO) & 1;
}

void sqb_vio_vhost_close(sqb_vhu *c)
{
	sqb_vhu_close(c);
}

/* ---- device ops -------------------------------------------------------- */

static void vhb_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct vhb *b = dev->priv;

	memcpy(dst, b->c->config + off, len); /* bounded by config_len */
}

static uint32_t vhb_config_len(sqb_vio_dev *dev)
{
	struct vhb *b = dev->priv;

	return b->c->config_len;
}

/* The queue is the backend's: a notify never reaches squib (the ioeventfd
 * is its kick fd). */
static int vhb_process(sqb_vio_dev *dev, unsigned int q, const char **why)
{
	(void)dev, (void)q, (void)why;
	return 0;
}

static int vhb_fail(struct vhb *b, int err, const char **why, const char *step, const char *w)
{
	snprintf(b->why, sizeof(b->why), "vhost-user backend: %s: %s", step, w);
	sqb_err("vhost-user drive %s: %s", b->id, b->why);
	*why = b->why;
	return err < 0 ? err : -EIO;
}

/* The ring's three areas as squib's own addresses (the backend translates
 * them through the memory table's userspace addresses). */
static int ring_addrs(sqb_vio_dev *dev, uint64_t *desc, uint64_t *used, uint64_t *avail)
{
	const struct sqb_vq *q = &dev->vq[0];
	uint8_t *d = dev->host.mem.map(dev->host.mem.opaque, q->desc, 16ull * q->num, 0);
	uint8_t *a = dev->host.mem.map(dev->host.mem.opaque, q->avail, 6 + 2ull * q->num, 0);
	uint8_t *u = dev->host.mem.map(dev->host.mem.opaque, q->used, 6 + 8ull * q->num, 0);

	if (!d || !a || !u)
		return -EFAULT;
	*desc = (uint64_t)(uintptr_t)d;
	*avail = (uint64_t)(uintptr_t)a;
	*used = (uint64_t)(uintptr_t)u;
	return 0;
}

static int send_mem_table(struct vhb *b, const char **why)
{
	struct sqb_vio_vhost_region r[SQB_VHU_MAX_REGIONS];
	struct sqb_vhu_mem_region m[SQB_VHU_MAX_REGIONS];
	int fds[SQB_VHU_MAX_REGIONS];
	uint8_t buf[SQB_VHU_MAX_PAYLOAD];
	char w[200] = "";
	size_t len;
	int n, err;

	n = b->io.regions(b->io.opaque, r, SQB_VHU_MAX_REGIONS);
	if (n <= 0)
		return vhb_fail(b, n < 0 ? n : -EINVAL, why, "SET_MEM_TABLE",
				"guest memory is not shareable (no memfd)");
	for (int i = 0; i < n; i++) {
		if (r[i].fd < 0)
			return vhb_fail(b, -EINVAL, why, "SET_MEM_TABLE",
					"a guest memory region has no fd");
		m[i] = (struct sqb_vhu_mem_region){
		    r[i].gpa, r[i].size, (uint64_t)(uintptr_t)r[i].host, r[i].fd_offset, r[i].fd};
		fds[i] = r[i].fd;
	}
	len = sqb_vhu_mem_encode(buf, sizeof(buf), m, (unsigned int)n);
	err = sqb_vhu_request(b->c, SQB_VHU_SET_MEM_TABLE, buf, (uint32_t)len, fds, (unsigned int)n,
			      NULL, 0, w, sizeof(w));
	return err < 0 ? vhb_fail(b, err, why, "SET_MEM_TABLE", w) : 0;
}

static int vhb_activate_backend(sqb_vio_dev *dev, const char **why);

/* DRIVER_OK: Firecracker's activate + setup_backend, in its order; its
 * duration and failures are the device's metrics. */
static int vhb_activate(sqb_vio_dev *dev, const char **why)
{
	struct vhb *b = dev->priv;
	uint64_t t0 = now_us();
	int active = b->active, err = vhb_activate_backend(dev, why);

	if (err < 0)
		b->m.activate_fails++;
	else if (!active)
		b->m.activate_time_us = now_us() - t0;
	return err;
}

static int vhb_activate_backend(sqb_vio_dev *dev, const char **why)
{
	struct vhb *b = dev->priv;
	const struct sqb_vq *q = &dev->vq[0];
	uint8_t addr[SQB_VHU_VRING_ADDR_LEN];
	uint64_t desc, used, avail;
	char w[200] = "";
	int kick = -1, call = -1, err;

	if (b->active)
		return 0;
	if (!q->ready)
		return vhb_fail(b, -EINVAL, why, "activate", "queue 0 is not ready at DRIVER_OK");
	err = sqb_vhu_set_u64(b->c, SQB_VHU_SET_FEATURES,
			      dev->drv_features |
				  (b->c->features & 1ull << SQB_VHU_F_PROTOCOL_FEATURES),
			      w, sizeof(w));
	if (err < 0)
		return vhb_fail(b, err, why, "SET_FEATURES", w);
	if ((err = send_mem_table(b, why)) < 0)
		return err;
	if ((err = sqb_vhu_set_state(b->c, SQB_VHU_SET_VRING_NUM, 0, q->num, w, sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_NUM", w);
	if (ring_addrs(dev, &desc, &used, &avail) < 0)
		return vhb_fail(b, -EFAULT, why, "SET_VRING_ADDR", "the ring is outside guest RAM");
	sqb_vhu_vring_addr_encode(addr, 0, 0, desc, used, avail, 0);
	if ((err = sqb_vhu_request(b->c, SQB_VHU_SET_VRING_ADDR, addr, sizeof(addr), NULL, 0, NULL,
				   0, w, sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_ADDR", w);
	if ((err = sqb_vhu_set_state(b->c, SQB_VHU_SET_VRING_BASE, 0, q->next_avail, w,
				     sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_BASE", w);
	if ((err = b->io.queue_fds(b->io.opaque, 0, &kick, &call)) < 0 || kick < 0 || call < 0)
		return vhb_fail(b, err < 0 ? err : -ENOTSUP, why, "activate",
				"no ioeventfd / irqfd to hand over (vhost-user needs KVM's)");
	if ((err = sqb_vhu_set_vring_fd(b->c, SQB_VHU_SET_VRING_CALL, 0, call, w, sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_CALL", w);
	if ((err = sqb_vhu_set_vring_fd(b->c, SQB_VHU_SET_VRING_KICK, 0, kick, w, sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_KICK", w);
	if (pf(b->c) &&
	    (err = sqb_vhu_set_state(b->c, SQB_VHU_SET_VRING_ENABLE, 0, 1, w, sizeof(w))) < 0)
		return vhb_fail(b, err, why, "SET_VRING_ENABLE", w);
	b->active = 1;
	sqb_debug("vhost-user drive %s: backend active (features 0x%llx)", b->id,
		  (unsigned long long)dev->drv_features);
	return 0;
}

/* Status 0: take the ring back, so that a driver that sets the device up
 * again starts from a stopped backend. */
static void vhb_reset(sqb_vio_dev *dev)
{
	struct vhb *b = dev->priv;
	const char *why = NULL;
	char w[200] = "";
	uint32_t base = 0;

	if (!b->active)
		return;
	b->active = 0;
	if (pf(b->c) && sqb_vhu_set_state(b->c, SQB_VHU_SET_VRING_ENABLE, 0, 0, w, sizeof(w)) < 0) {
		vhb_fail(b, -EIO, &why, "SET_VRING_ENABLE 0", w);
		return;
	}
	if (sqb_vhu_get_vring_base(b->c, 0, &base, w, sizeof(w)) < 0)
		vhb_fail(b, -EIO, &why, "GET_VRING_BASE", w);
}

/* Firecracker refuses to snapshot a VM with a vhost-user device; the API
 * refuses first, this keeps a DEVS record from ever being written. */
static void vhb_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *sb)
{
	(void)dev;
	sqb_vio_sv_fail(sb, -ENOTSUP, sb->off,
			"vhost-user block devices cannot be saved in a snapshot");
}

static void vhb_free(sqb_vio_dev *dev)
{
	struct vhb *b = dev->priv;

	if (!b)
		return;
	sqb_vhu_close(b->c);
	free(b);
	dev->priv = NULL;
}

static const struct sqb_vio_ops vhb_ops = {
    .device_id = SQB_VIO_ID_BLK,
    .num_queues = 1,
    .config_read = vhb_config_read,
    .config_len = vhb_config_len,
    .process = vhb_process,
    .state = vhb_state,
    .free = vhb_free,
    .reset = vhb_reset,
    .activate = vhb_activate,
    .isr_vring_default = true,
};

int sqb_vio_vhost_blk_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
			  const struct sqb_vio_vhost_blk_opts *opts, struct sqb_diag *diag)
{
	sqb_vio_dev *dev;
	struct vhb *b;
	int err;

	*out = NULL;
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || !opts->conn || !opts->io.regions ||
	    !opts->io.queue_fds)
		return -EINVAL;
	if (sqb_vhu_broken(opts->conn)) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason), "vhost-user backend: %s",
				 sqb_vhu_broken(opts->conn));
		return -EPIPE;
	}
	dev = calloc(1, sizeof(*dev));
	b = calloc(1, sizeof(*b));
	if (!dev || !b) {
		free(dev);
		free(b);
		return -ENOMEM;
	}
	if ((err = sqb_vio_dev_init(dev, &vhb_ops, host, 0, NULL)) < 0) {
		free(dev);
		free(b);
		return err;
	}
	/* What the guest may ack: the backend's share of ours, without the
	 * vhost-user-only PROTOCOL_FEATURES bit (no virtio driver knows it). */
	dev->dev_features = opts->conn->features & ~(1ull << SQB_VHU_F_PROTOCOL_FEATURES);
	b->c = opts->conn;
	b->io = opts->io;
	snprintf(b->id, sizeof(b->id), "%s", opts->drive_id ? opts->drive_id : "?");
	dev->priv = b;
	*out = dev;
	return 0;
}

int sqb_vio_vhost_blk_config_update(sqb_vio_dev *dev, char *why, size_t len)
{
	struct vhb *b;
	uint8_t cfg[SQB_VHU_BLK_CONFIG_LEN];
	char w[200] = "";
	int err = 0;

	if (!dev || dev->ops != &vhb_ops)
		return -EINVAL;
	b = dev->priv;
	pthread_mutex_lock(&dev->lock);
	uint64_t t0 = now_us();
	if (!((b->c->protocol_features >> SQB_VHU_PF_CONFIG) & 1)) {
		snprintf(why, len, "the backend did not negotiate VHOST_USER_PROTOCOL_F_CONFIG");
		err = -ENOTSUP;
	} else if ((err = sqb_vhu_get_config(b->c, sizeof(cfg), cfg, w, sizeof(w))) < 0) {
		snprintf(why, len, "Get config failed: %s", w);
		sqb_err("vhost-user drive %s: config update: %s", b->id, w);
	} else {
		memcpy(b->c->config, cfg, sizeof(cfg));
		sqb_vio_config_changed(dev); /* the interrupt once the driver is up */
		b->m.config_change_time_us = now_us() - t0;
	}
	if (err < 0)
		b->m.cfg_fails++;
	pthread_mutex_unlock(&dev->lock);
	return err;
}

int sqb_vio_vhost_metrics(sqb_vio_dev *dev, struct sqb_vio_vhost_metrics *out)
{
	struct vhb *b;

	memset(out, 0, sizeof(*out));
	if (!dev || dev->ops != &vhb_ops)
		return -EINVAL;
	b = dev->priv;
	pthread_mutex_lock(&dev->lock);
	*out = b->m;
	out->init_time_us = b->c->init_us;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_vhost_sock_fd(sqb_vio_dev *dev)
{
	return dev && dev->ops == &vhb_ops ? sqb_vhu_fd(((struct vhb *)dev->priv)->c) : -1;
}

int sqb_vio_vhost_sock_ready(sqb_vio_dev *dev)
{
	struct vhb *b;
	char w[200] = "";

	if (!dev || dev->ops != &vhb_ops)
		return -EINVAL;
	b = dev->priv;
	pthread_mutex_lock(&dev->lock);
	if (sqb_vhu_check_idle(b->c, w, sizeof(w)) && !b->logged) {
		b->logged = 1;
		snprintf(b->why, sizeof(b->why), "vhost-user backend: %s",
			 sqb_vhu_broken(b->c) ? sqb_vhu_broken(b->c) : w);
		sqb_err("vhost-user drive %s: %s", b->id, b->why);
		/* the guest learns through NEEDS_RESET; a ring the backend still
		 * held is no longer served */
		if (b->active)
			sqb_vio_needs_reset(dev, b->why);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

const char *sqb_vio_vhost_broken(sqb_vio_dev *dev)
{
	const char *w;

	if (!dev || dev->ops != &vhb_ops)
		return NULL;
	pthread_mutex_lock(&dev->lock);
	w = sqb_vhu_broken(((struct vhb *)dev->priv)->c);
	pthread_mutex_unlock(&dev->lock);
	return w;
}
