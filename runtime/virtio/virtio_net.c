/* virtio-net (device id 1; virtio 1.x section 5.1) on a tap opened with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: Firecracker's feature set (MAC,
 * checksum and TSO/UFO offloads, mergeable RX buffers), rx/tx token buckets,
 * no busy polling; state record [F-110]. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "virtio_priv.h"

#define Q_RX 0
#define Q_TX 1

/* struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu (le16
 * each); status and max_virtqueue_pairs read 0 (their features are not
 * offered), mtu only with VIRTIO_NET_F_MTU, at offset 10 as Firecracker. */
#define NET_CFG_LEN	6u
#define NET_CFG_LEN_MTU 12u

/* struct virtio_net_hdr_v1: flags u8, gso_type u8, hdr_len, gso_size,
 * csum_start, csum_offset, num_buffers (le16 each). */
#define HDR_NUM_BUFFERS 10

struct net {
	int tap;
	uint8_t mac[6];
	bool has_mac;
	uint16_t mtu; /* 0: VIRTIO_NET_F_MTU not offered */
	struct sqb_vio_rl rx_rl, tx_rl;
	bool rx_has_rl, tx_has_rl;
	struct sqb_vio_rl st_rx, st_tx; /* staged by a restore, committed by restored() */
	uint8_t st_mac[6];
	uint64_t offloads_for; /* driver_features the tap offloads were set for */
	bool offloads_valid;
	uint32_t rx_len;     /* a frame read from the tap, not yet delivered */
	uint16_t rx_ran_out; /* avail index where rx_mrg last found no buffer */
	bool rx_charged;     /* ... and already paid to the rx limiter */
	bool tap_broken;     /* the tap failed: the device keeps running, frames drop */
	bool has_detour;
	struct sqb_vio_net_detour detour; /* MMDS: frames before the tap (virtio.h) */
	struct sqb_vio_net_stats st;
	struct sqb_vq_chain first; /* first chain of a mergeable frame */
	uint16_t mrg_heads[SQB_VQ_MAX_SIZE];
	uint32_t mrg_lens[SQB_VQ_MAX_SIZE];
	uint8_t rxbuf[SQB_VIO_NET_MAX_BUF];
	uint8_t txbuf[SQB_VIO_NET_MAX_BUF];
};

static bool acked(const sqb_vio_dev *dev, int bit)
{
	return (dev->drv_features >> bit) & 1;
}

/* The tap hands the guest what the guest said it can take (Firecracker maps
 * the same four bits); without GUEST_CSUM the kernel finishes checksums. */
static void apply_offloads(sqb_vio_dev *dev, struct net *n)
{
	unsigned int fl = 0;

	if (n->offloads_valid && n->offloads_for == dev->drv_features)
		return;
	if (acked(dev, SQB_VIO_F_NET_GUEST_CSUM)) {
		fl |= TUN_F_CSUM;
		if (acked(dev, SQB_VIO_F_NET_GUEST_TSO4))
			fl |= TUN_F_TSO4;
		if (acked(dev, SQB_VIO_F_NET_GUEST_TSO6))
			fl |= TUN_F_TSO6;
		if (acked(dev, SQB_VIO_F_NET_GUEST_UFO))
			fl |= TUN_F_UFO;
	}
	if (ioctl(n->tap, TUNSETOFFLOAD, fl))
		sqb_debug("virtio-net: TUNSETOFFLOAD 0x%x: %s", fl, strerror(errno));
	n->offloads_for = dev->drv_features;
	n->offloads_valid = true;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

#define RX_DONE	   1 /* delivered */
#define RX_DROPPED 2 /* no buffer of this driver can ever hold it */

/* One chain holds the whole frame (no MRG_RXBUF).  RX_DONE, RX_DROPPED,
 * 0 when no buffer is available, <0 on a hostile ring. */
static int rx_one(sqb_vio_dev *dev, struct net *n, const char **why)
{
	struct sqb_vq *q = &dev->vq[Q_RX];
	struct sqb_vq_chain *c = &dev->chain;
	int rc = sqb_vq_pop(q, &dev->host.mem, c, why);

	if (rc <= 0)
		return rc;
	if (c->write_len < n->rx_len) {
		/* The driver sized its buffers for smaller frames than the tap
		 * gave us: drop the frame, keep the buffer for the next one. */
		sqb_vq_unpop(q);
		return RX_DROPPED;
	}
	put_le16(n->rxbuf + HDR_NUM_BUFFERS, 1);
	sqb_vq_write_bytes(c, 0, n->rxbuf, n->rx_len);
	rc = sqb_vq_push(q, &dev->host.mem, c->head, n->rx_len, why);
	return rc < 0 ? rc : RX_DONE;
}

/* VIRTIO_NET_F_MRG_RXBUF (5.1.6.4): spread the frame over as many chains as
 * it needs, num_buffers in the first; nothing is published unless all of
 * it fits, so a short ring leaves the frame waiting, not half-delivered. */
static int rx_mrg(sqb_vio_dev *dev, struct net *n, const char **why)
{
	struct sqb_vq *q = &dev->vq[Q_RX];
	struct sqb_vq_chain *c = &dev->chain;
	uint32_t off = 0, k = 0;
	uint8_t nb[2];
	int rc;

	while (off < n->rx_len) {
		uint32_t take;

		if (k == q->num) {
			/* Even a full ring of these buffers cannot hold it. */
			for (; k; k--)
				sqb_vq_unpop(q);
			return RX_DROPPED;
		}
		rc = sqb_vq_pop(q, &dev->host.mem, c, why);
		if (rc <= 0) {
			n->rx_ran_out = q->next_avail;
			for (; k; k--)
				sqb_vq_unpop(q);
			return rc;
		}
		take = c->write_len < n->rx_len - off ? (uint32_t)c->write_len : n->rx_len - off;
		/* The header must not be split: the first buffer holds it whole. */
		if (k == 0 && take < SQB_VIO_NET_HDR_LEN) {
			sqb_vq_unpop(q);
			return RX_DROPPED;
		}
		sqb_vq_write_bytes(c, 0, n->rxbuf + off, take);
		if (k == 0)
			memcpy(&n->first, c, sizeof(*c));
		n->mrg_heads[k] = c->head;
		n->mrg_lens[k] = take;
		k++;
		off += take;
	}
	put_le16(nb, (uint16_t)k);
	sqb_vq_write_bytes(&n->first, HDR_NUM_BUFFERS, nb, 2);
	for (uint32_t i = 0; i < k; i++) {
		rc = sqb_vq_push(q, &dev->host.mem, n->mrg_heads[i], n->mrg_lens[i], why);
		if (rc < 0)
			return rc;
	}
	return RX_DONE;
}

static int tap_read(struct net *n)
{
	ssize_t r;

	do
		r = read(n->tap, n->rxbuf, sizeof(n->rxbuf));
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r <= 0) {
		/* A tap never reads empty: an error or EOF means it is gone.  The
		 * device stops receiving (an error of this device, not the VMM). */
		sqb_warn("virtio-net: tap read: %s; device stops receiving",
			 r < 0 ? strerror(errno) : "end of file");
		n->tap_broken = true;
		return 0;
	}
	if ((size_t)r < SQB_VIO_NET_HDR_LEN) {
		n->st.rx_dropped++;
		return -1;
	}
	n->rx_len = (uint32_t)r;
	n->rx_charged = false;
	return 1;
}

/* The detour's next frame into rxbuf behind a zeroed vnet header (no
 * offload flags: the detour's checksums are complete). */
static void detour_read(struct net *n)
{
	uint8_t *f = n->rxbuf + SQB_VIO_NET_HDR_LEN;
	size_t cap = sizeof(n->rxbuf) - SQB_VIO_NET_HDR_LEN;
	size_t len = n->detour.rx(n->detour.ctx, f, cap);

	if (!len)
		return;
	if (len > cap) { /* the detour makes frames of at most 1514 bytes */
		n->st.rx_dropped++;
		return;
	}
	memset(n->rxbuf, 0, SQB_VIO_NET_HDR_LEN);
	n->rx_len = (uint32_t)(SQB_VIO_NET_HDR_LEN + len);
	n->rx_charged = false;
	n->st.rx_detoured++;
}

static int net_rx(sqb_vio_dev *dev, const char **why)
{
	struct net *n = dev->priv;
	bool pushed = false;
	int rc = 0;

	apply_offloads(dev, n);
	for (;;) {
		if (!n->rx_len && n->has_detour && n->detour.pending(n->detour.ctx))
			detour_read(n);
		if (!n->rx_len) {
			if (n->tap_broken)
				break;
			rc = tap_read(n);
			if (rc < 0)
				continue;
			if (rc == 0)
				break;
		}
		if (n->rx_has_rl && !n->rx_charged) {
			if (!sqb_vio_rl_throttle_ok(dev, &n->rx_rl,
						    n->rx_len - SQB_VIO_NET_HDR_LEN)) {
				dev->m.throttled++;
				rc = 0;
				break; /* the timer's poll resumes us */
			}
			n->rx_charged = true;
		}
		rc =
		    acked(dev, SQB_VIO_F_NET_MRG_RXBUF) ? rx_mrg(dev, n, why) : rx_one(dev, n, why);
		if (rc < 0)
			break;
		if (rc == 0) {
			/* No buffer: the frame waits; the driver's RX notify resumes.
			 * A mergeable frame that took k buffers and then ran out gave
			 * them back, so "new buffers" means past where it ran out:
			 * avail_event goes there, else the buffers it gave back count
			 * as new and this loop never ends (the event loop spins, the
			 * guest never gets them: seen with Linux after a load). */
			struct sqb_vq *q = &dev->vq[Q_RX];
			uint16_t next = q->next_avail;

			if (acked(dev, SQB_VIO_F_NET_MRG_RXBUF))
				q->next_avail = n->rx_ran_out;
			rc = sqb_vq_enable_notify(q, &dev->host.mem, why);
			q->next_avail = next;
			if (rc > 0)
				continue;
			break;
		}
		if (rc == RX_DONE) {
			pushed = true;
			n->st.rx_frames++;
			n->st.rx_bytes += n->rx_len - SQB_VIO_NET_HDR_LEN;
		} else {
			n->st.rx_dropped++;
		}
		n->rx_len = 0;
		rc = 0;
	}
	if (pushed)
		sqb_vio_signal_used(dev, Q_RX);
	return rc < 0 ? rc : 0;
}

static int tap_write(struct net *n, uint32_t len)
{
	ssize_t r;

	do
		r = write(n->tap, n->txbuf, len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r != (ssize_t)len) {
		sqb_debug("virtio-net: tap write: %s", r < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 1;
}

/* A TX frame is completed (used element) only after the tap took it, so a
 * frame the guest saw completed was sent; one the tap would not take yet
 * stays on the avail ring until the tap is writable again. */
static int net_tx(sqb_vio_dev *dev, const char **why)
{
	struct net *n = dev->priv;
	struct sqb_vq *q = &dev->vq[Q_TX];
	struct sqb_vq_chain *c = &dev->chain;
	bool pushed = false, detoured = false;
	int rc;

	apply_offloads(dev, n);
	for (;;) {
		uint32_t len;

		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		if (c->read_len < SQB_VIO_NET_HDR_LEN || c->read_len > SQB_VIO_NET_MAX_BUF) {
			n->st.tx_dropped++;
		} else {
			len = (uint32_t)c->read_len;
			if (n->tx_has_rl &&
			    !sqb_vio_rl_throttle_ok(dev, &n->tx_rl, len - SQB_VIO_NET_HDR_LEN)) {
				dev->m.throttled_tx++;
				sqb_vq_unpop(q);
				rc = 0;
				break;
			}
			sqb_vq_read_bytes(c, 0, n->txbuf, len);
			if (n->has_detour &&
			    n->detour.tx(n->detour.ctx, n->txbuf + SQB_VIO_NET_HDR_LEN,
					 len - SQB_VIO_NET_HDR_LEN)) {
				n->st.tx_detoured++;
				detoured = true;
				rc = 1;
			} else {
				rc = tap_write(n, len);
			}
			if (rc == 0) {
				if (n->tx_has_rl) {
					sqb_vio_rl_replenish(&n->tx_rl, 1, SQB_VIO_TOK_OPS);
					sqb_vio_rl_replenish(&n->tx_rl, len - SQB_VIO_NET_HDR_LEN,
							     SQB_VIO_TOK_BYTES);
				}
				sqb_vq_unpop(q);
				break;
			}
			if (rc < 0) {
				n->st.tx_dropped++;
			} else {
				n->st.tx_frames++;
				n->st.tx_bytes += len - SQB_VIO_NET_HDR_LEN;
			}
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, 0, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, Q_TX);
	/* The detour answered (an ARP reply, a TCP segment): deliver it now,
	 * no tap event will come for it. */
	if (detoured && rc >= 0 && n->detour.pending(n->detour.ctx)) {
		int rrc = net_rx(dev, why);
		if (rrc < 0)
			return rrc;
	}
	return rc < 0 ? rc : 0;
}

static int net_process(sqb_vio_dev *dev, unsigned int q, const char **why)
{
	return q == Q_RX ? net_rx(dev, why) : net_tx(dev, why);
}

/* [F-101]: every TX frame the guest queued goes to the tap before a save. */
static void net_quiesce(sqb_vio_dev *dev)
{
	sqb_vio_process_locked(dev, Q_TX);
}

int sqb_vio_net_tap_ready(sqb_vio_dev *dev)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_NET)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	sqb_vio_process_locked(dev, Q_TX);
	sqb_vio_process_locked(dev, Q_RX);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static uint32_t net_config_len(sqb_vio_dev *dev)
{
	return ((struct net *)dev->priv)->mtu ? NET_CFG_LEN_MTU : NET_CFG_LEN;
}

static void net_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct net *n = dev->priv;
	uint8_t cfg[NET_CFG_LEN_MTU] = {0};

	memcpy(cfg, n->mac, 6);
	put_le16(cfg + 10, n->mtu);
	memcpy(dst, cfg + off, len); /* off + len <= net_config_len() */
}

/* Device record, 272 bytes ([F-110]): the MAC as saved (informational: the
 * configured one wins), then the rx and tx limiters ([F-106] records). */
static void net_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *b)
{
	struct net *n = dev->priv;
	uint64_t now = sqb_vio_now(dev);
	uint32_t flags = n->has_mac;
	size_t at = b->off;

	if (b->load) {
		n->st_rx = n->rx_rl;
		n->st_tx = n->tx_rl;
	} else {
		memcpy(n->st_mac, n->mac, 6);
	}
	for (int i = 0; i < 6; i++)
		sqb_vio_sv_u8(b, &n->st_mac[i], "net mac");
	sqb_vio_sv_reserved(b, 2, "net reserved");
	sqb_vio_sv_u32(b, &flags, "net flags");
	sqb_vio_sv_reserved(b, 4, "net reserved");
	if (b->load && !b->err && (flags & ~1u))
		return sqb_vio_sv_fail(b, -SQB_ERESERVED, at + 8, "net: reserved flag set");
	sqb_vio_sv_limiter(b, b->load ? &n->st_rx : &n->rx_rl, now);
	sqb_vio_sv_limiter(b, b->load ? &n->st_tx : &n->tx_rl, now);
	if (b->load && !b->err) {
		bool rx = n->st_rx.bw.enabled || n->st_rx.ops.enabled || n->st_rx.blocked;
		bool tx = n->st_tx.bw.enabled || n->st_tx.ops.enabled || n->st_tx.blocked;
		if ((rx || tx) && !dev->host.timer.arm)
			sqb_vio_sv_fail(b, -EINVAL, at,
					"a net rate limiter in the state, but no host timer");
	}
}

static void net_restored(sqb_vio_dev *dev)
{
	struct net *n = dev->priv;

	n->rx_rl = n->st_rx;
	n->tx_rl = n->st_tx;
	n->rx_has_rl = n->rx_rl.bw.enabled || n->rx_rl.ops.enabled || n->rx_rl.blocked;
	n->tx_has_rl = n->tx_rl.bw.enabled || n->tx_rl.ops.enabled || n->tx_rl.blocked;
	n->offloads_valid = false;
	n->rx_len = 0;
	if (n->has_detour && n->detour.reset)
		n->detour.reset(n->detour.ctx); /* no MMDS connection survives a load */
	/* [F-113]: a clone with another MAC: the guest's netdev keeps its address until
	 * the driver re-probes; the config space already shows the new one. */
	if (memcmp(n->st_mac, n->mac, 6))
		sqb_vio_config_changed(dev);
	/* A TX frame queued before the save (the tap was full at quiesce) had
	 * its notify in the old process; with EVENT_IDX the driver sends none
	 * until avail idx passes avail_event again: run both queues now. */
	sqb_vio_process_locked(dev, Q_TX);
	sqb_vio_process_locked(dev, Q_RX);
}

/* The driver reset the device: its TCP peers (MMDS) are gone with it. */
static void net_reset(sqb_vio_dev *dev)
{
	struct net *n = dev->priv;

	if (n->has_detour && n->detour.reset)
		n->detour.reset(n->detour.ctx);
}

static void net_free(sqb_vio_dev *dev)
{
	struct net *n = dev->priv;

	if (n) {
		close(n->tap);
		free(n);
	}
}

static const struct sqb_vio_ops net_ops = {
    .device_id = SQB_VIO_ID_NET,
    .num_queues = 2,
    .config_read = net_config_read,
    .config_len = net_config_len,
    .process = net_process,
    .state = net_state,
    .free = net_free,
    .quiesce = net_quiesce,
    .restored = net_restored,
    .reset = net_reset,
};

static int fail(struct sqb_diag *d, int rc, const char *reason)
{
	if (d) {
		d->offset = UINT64_MAX;
		snprintf(d->section, sizeof(d->section), "virtio-net");
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
	}
	return rc;
}

int sqb_vio_net_tap_open(int *fd, const char *ifname, struct sqb_diag *diag)
{
	struct ifreq ifr = {0};
	int hdr = SQB_VIO_NET_HDR_LEN, t, rc;

	*fd = -1;
	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
		return fail(diag, -EINVAL, "host_dev_name empty or longer than 15 bytes");
	t = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t < 0)
		return fail(diag, -errno, "cannot open /dev/net/tun");
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t, TUNSETIFF, &ifr)) {
		rc = -errno;
		close(t);
		return fail(diag, rc, "TUNSETIFF failed: no such tap, or it is busy");
	}
	if (ioctl(t, TUNSETVNETHDRSZ, &hdr)) {
		rc = -errno;
		close(t);
		return fail(diag, rc, "TUNSETVNETHDRSZ 12 failed");
	}
	*fd = t;
	return 0;
}

int sqb_vio_net_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_net_opts *opts, struct sqb_diag *diag)
{
	sqb_vio_dev *dev;
	struct net *n;
	uint64_t f;
	int rc;

	*out = NULL;
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || opts->tap_fd < 0)
		return fail(diag, -EINVAL, "bad options (version or tap_fd)");
	if ((opts->rx_rate_limiter || opts->tx_rate_limiter) && (!host || !host->timer.arm))
		return fail(diag, -EINVAL, "a rate limiter needs host.timer");
	dev = calloc(1, sizeof(*dev));
	n = calloc(1, sizeof(*n));
	if (!dev || !n) {
		free(dev);
		free(n);
		return -ENOMEM;
	}
	n->tap = fcntl(opts->tap_fd, F_DUPFD_CLOEXEC, 0);
	if (n->tap < 0) {
		rc = fail(diag, -errno, "cannot duplicate the tap descriptor");
		goto err;
	}
	if (opts->mac) {
		memcpy(n->mac, opts->mac, 6);
		n->has_mac = true;
	}
	if (opts->mtu && opts->mtu < 68) {
		rc = fail(diag, -EINVAL, "mtu below 68");
		close(n->tap);
		goto err;
	}
	n->mtu = opts->mtu;
	if (opts->detour) {
		if (!opts->detour->tx || !opts->detour->pending || !opts->detour->rx) {
			rc = fail(diag, -EINVAL, "detour without tx, pending or rx");
			close(n->tap);
			goto err;
		}
		n->detour = *opts->detour;
		n->has_detour = true;
	}
	f = 1ull << SQB_VIO_F_NET_CSUM | 1ull << SQB_VIO_F_NET_GUEST_CSUM |
	    1ull << SQB_VIO_F_NET_GUEST_TSO4 | 1ull << SQB_VIO_F_NET_GUEST_TSO6 |
	    1ull << SQB_VIO_F_NET_GUEST_UFO | 1ull << SQB_VIO_F_NET_HOST_TSO4 |
	    1ull << SQB_VIO_F_NET_HOST_TSO6 | 1ull << SQB_VIO_F_NET_HOST_UFO |
	    1ull << SQB_VIO_F_NET_MRG_RXBUF;
	if (n->has_mac)
		f |= 1ull << SQB_VIO_F_NET_MAC;
	if (n->mtu)
		f |= 1ull << SQB_VIO_F_NET_MTU;
	dev->priv = n;
	rc = sqb_vio_dev_init(dev, &net_ops, host, f, NULL);
	if (rc) {
		fail(diag, rc, "bad host callbacks");
		close(n->tap);
		goto err;
	}
	sqb_vio_rl_init(&n->rx_rl, opts->rx_rate_limiter, sqb_vio_now(dev));
	sqb_vio_rl_init(&n->tx_rl, opts->tx_rate_limiter, sqb_vio_now(dev));
	n->rx_has_rl = opts->rx_rate_limiter != NULL;
	n->tx_has_rl = opts->tx_rate_limiter != NULL;
	*out = dev;
	return 0;
err:
	free(n);
	free(dev);
	return rc;
}

int sqb_vio_net_tap_fd(sqb_vio_dev *dev)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_NET)
		return -EINVAL;
	return ((struct net *)dev->priv)->tap;
}

int sqb_vio_net_set_rate_limiters(sqb_vio_dev *dev, const struct sqb_vio_rl_config *rx,
				  const struct sqb_vio_rl_config *tx)
{
	struct net *n;

	if (!dev || dev->ops->device_id != SQB_VIO_ID_NET)
		return -EINVAL;
	if ((rx || tx) && !dev->host.timer.arm)
		return -EINVAL;
	n = dev->priv;
	pthread_mutex_lock(&dev->lock);
	sqb_vio_rl_init(&n->rx_rl, rx, sqb_vio_now(dev));
	sqb_vio_rl_init(&n->tx_rl, tx, sqb_vio_now(dev));
	n->rx_has_rl = rx != NULL;
	n->tx_has_rl = tx != NULL;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_net_stats(sqb_vio_dev *dev, struct sqb_vio_net_stats *st)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_NET)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	*st = ((struct net *)dev->priv)->st;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}
