/* virtio-net on the VM's bus: the library device (runtime/virtio/virtio_net.c)
 * in a virtio-mmio slot with its tap on the event loop, edge-triggered, no
 * polling (docs/network.md; docs/format.md [F-110], [F-113]). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dev_net.h"
#include "mmds.h"
#include "mmds_ns.h"
#include "vmm_priv.h" /* sqb_now_ns */

struct net_arg {
	int tap_fd; /* ours until the device dup()s it */
	int has_mac, has_rx, has_tx;
	uint16_t mtu;
	uint8_t mac[6];
	struct sqb_vio_rl_config rx, tx;
	sqb_mmds *mmds;	 /* shared store (the controller's), or NULL */
	sqb_mmds_ns *ns; /* this device's MMDS stack, or NULL */
	struct sqb_vio_net_detour detour;
};

static uint64_t mono_ms(void)
{
	return sqb_now_ns() / 1000000u;
}

/* The MMDS stack as the virtio-net device's frame detour (virtio.h). */
static bool mmds_tx(void *ctx, const uint8_t *frame, size_t len)
{
	return sqb_mmds_ns_detour(ctx, frame, len, mono_ms());
}

static bool mmds_pending(void *ctx)
{
	return sqb_mmds_ns_pending(ctx);
}

static size_t mmds_rx(void *ctx, uint8_t *buf, size_t cap)
{
	return sqb_mmds_ns_next_frame(ctx, buf, cap, mono_ms());
}

static void mmds_reset(void *ctx)
{
	sqb_mmds_ns_reset(ctx);
}

static int mmds_respond(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
			size_t *resp_len)
{
	return sqb_mmds_http_respond(ctx, req, len, mono_ms(), resp, resp_len);
}

static int net_create(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
		      struct sqb_diag *diag)
{
	struct net_arg *a = arg;
	struct sqb_vio_net_opts o = SQB_VIO_NET_OPTS_INIT;

	o.tap_fd = a->tap_fd;
	o.mac = a->has_mac ? a->mac : NULL;
	o.rx_rate_limiter = a->has_rx ? &a->rx : NULL;
	o.tx_rate_limiter = a->has_tx ? &a->tx : NULL;
	o.mtu = a->mtu;
	if (a->ns)
		o.detour = &a->detour;
	return sqb_vio_net_new(out, host, &o, diag);
}

static void net_arg_free(void *arg)
{
	struct net_arg *a = arg;

	if (a->tap_fd >= 0)
		close(a->tap_fd);
	sqb_mmds_ns_free(a->ns);
	free(a);
}

int sqb_vdev_net_tap_open(int *fd, const char *name, struct sqb_diag *diag)
{
	int err = sqb_vio_net_tap_open(fd, name, diag);

	if (err < 0 && diag)
		snprintf(diag->section, sizeof(diag->section), "tap %.24s", name ? name : "");
	return err;
}

static int iface_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 1 || n > SQB_VDEV_IFACE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '_' || (id[i] >= '0' && id[i] <= '9') ||
		      ((id[i] | 0x20) >= 'a' && (id[i] | 0x20) <= 'z')))
			return 0;
	return 1;
}

static void bus_id(char out[SQB_VDEV_ID_MAX + 1], const char *iface_id)
{
	snprintf(out, SQB_VDEV_ID_MAX + 1, SQB_VDEV_NET_PREFIX "%s", iface_id);
}

int sqb_vdev_add_net(sqb_vm *vm, const struct sqb_vdev_net_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_vdev_ext ext = {0};
	struct net_arg *a;
	char id[SQB_VDEV_ID_MAX + 1];
	int err;

	if (!vm || !cfg || cfg->version != SQB_VDEV_NET_VERSION || !iface_ok(cfg->iface_id) ||
	    (cfg->tap_fd < 0 && !cfg->host_dev_name))
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (cfg->tap_fd >= 0) {
		a->tap_fd = fcntl(cfg->tap_fd, F_DUPFD_CLOEXEC, 0);
		if (a->tap_fd < 0) {
			err = -errno;
			free(a);
			return err;
		}
	} else if ((err = sqb_vdev_net_tap_open(&a->tap_fd, cfg->host_dev_name, diag)) < 0) {
		free(a);
		return err;
	}
	if (cfg->mac) {
		memcpy(a->mac, cfg->mac, 6);
		a->has_mac = 1;
	}
	a->mtu = cfg->mtu;
	if (cfg->rx_rate_limiter) {
		a->rx = *cfg->rx_rate_limiter;
		a->has_rx = 1;
	}
	if (cfg->tx_rate_limiter) {
		a->tx = *cfg->tx_rate_limiter;
		a->has_tx = 1;
	}
	if (cfg->mmds) {
		struct sqb_mmds_ns_config nc = {
		    .ipv4 = cfg->mmds_ipv4,
		    .mac = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01}, /* Firecracker's MMDS MAC */
		    .respond = mmds_respond,
		    .ctx = cfg->mmds,
		    .metrics = sqb_mmds_metrics_ref(cfg->mmds),
		};
		err = sqb_mmds_ns_new(&nc, &a->ns);
		if (err < 0) {
			net_arg_free(a);
			return err;
		}
		a->mmds = cfg->mmds;
		a->detour = (struct sqb_vio_net_detour){.ctx = a->ns,
							.tx = mmds_tx,
							.pending = mmds_pending,
							.rx = mmds_rx,
							.reset = mmds_reset};
	}
	ext.create = net_create;
	ext.host_fd = sqb_vio_net_tap_fd;
	ext.host_events = EPOLLIN | EPOLLOUT | EPOLLET;
	ext.host_ready = sqb_vio_net_tap_ready;
	ext.free_arg = net_arg_free;
	ext.arg = a;
	bus_id(id, cfg->iface_id);
	err = sqb_vdev_add_ext(vm, id, SQB_VIO_ID_NET, &ext, diag);
	if (err < 0 && diag && !diag->section[0])
		snprintf(diag->section, sizeof(diag->section), "iface %.24s", cfg->iface_id);
	return err;
}

int sqb_vdev_net_set_rate_limiters(sqb_vm *vm, const char *iface_id,
				   const struct sqb_vio_rl_config *rx,
				   const struct sqb_vio_rl_config *tx)
{
	char id[SQB_VDEV_ID_MAX + 1];
	sqb_vio_dev *d;

	if (!iface_ok(iface_id))
		return -ENODEV;
	bus_id(id, iface_id);
	d = sqb_vdev_lib(vm, id);
	if (!d || sqb_vio_device_id(d) != SQB_VIO_ID_NET)
		return -ENODEV;
	return sqb_vio_net_set_rate_limiters(d, rx, tx);
}

int sqb_vdev_net_stats(sqb_vm *vm, const char *iface_id, struct sqb_vio_net_stats *st)
{
	char id[SQB_VDEV_ID_MAX + 1];
	sqb_vio_dev *d;

	if (!iface_ok(iface_id))
		return -ENODEV;
	bus_id(id, iface_id);
	d = sqb_vdev_lib(vm, id);
	if (!d || sqb_vio_device_id(d) != SQB_VIO_ID_NET)
		return -ENODEV;
	return sqb_vio_net_stats(d, st);
}
