/* virtio-vsock on the VM's bus: the library device (runtime/virtio/
 * virtio_vsock.c, Firecracker's Unix-socket protocol) in a virtio-mmio slot
 * with its sockets' epoll fd on the event loop (docs/network.md;
 * docs/format.md [F-111], [F-112]). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "dev_net.h"

struct vsock_arg {
	uint64_t cid;
	char *path;
};

static int vsock_create(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
			struct sqb_diag *diag)
{
	struct vsock_arg *a = arg;
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;

	/* Benchmarks only (docs/network.md): SQB_VSOCK_RX_BATCH=1 reads a host
	 * socket once per RX buffer, the path before batched reads;
	 * SQB_VSOCK_TX_BATCH=1 sends each guest TX packet on its own. */
	const char *batch = getenv("SQB_VSOCK_RX_BATCH");
	const char *txbatch = getenv("SQB_VSOCK_TX_BATCH");
	int rc;

	o.guest_cid = a->cid;
	o.uds_path = a->path;
	rc = sqb_vio_vsock_new(out, host, &o, diag);
	if (!rc && batch && *batch)
		sqb_vio_vsock_set_rx_batch(*out, (unsigned int)strtoul(batch, NULL, 10));
	if (!rc && txbatch && *txbatch)
		sqb_vio_vsock_set_tx_batch(*out, (unsigned int)strtoul(txbatch, NULL, 10));
	return rc;
}

static void vsock_arg_free(void *arg)
{
	struct vsock_arg *a = arg;

	free(a->path);
	free(a);
}

int sqb_vdev_add_vsock(sqb_vm *vm, const struct sqb_vdev_vsock_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_vdev_ext ext = {0};
	struct vsock_arg *a;

	if (!vm || !cfg || cfg->version != SQB_VDEV_VSOCK_VERSION || !cfg->uds_path)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->path = strdup(cfg->uds_path))) {
		free(a);
		return -ENOMEM;
	}
	a->cid = cfg->guest_cid;
	ext.create = vsock_create;
	ext.host_fd = sqb_vio_vsock_host_fd;
	/* edge-triggered like the inner set: host_ready drains it, and a
	 * level fd would spin the loop while the device is quiesced */
	ext.host_events = EPOLLIN | EPOLLET;
	ext.host_ready = sqb_vio_vsock_host_ready;
	ext.free_arg = vsock_arg_free;
	ext.arg = a;
	return sqb_vdev_add_ext(vm, SQB_VDEV_VSOCK_ID, SQB_VIO_ID_VSOCK, &ext, diag);
}
