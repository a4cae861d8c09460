/* vhost-user block drives on the VM's bus (Firecracker's VhostUserBlock):
 * an ext device of dev_virtio.c whose queue eventfd and irqfd go to the
 * backend process, whose guest RAM is the VM's memfd, and whose socket the
 * loop watches for a backend that goes away (docs/virtio.md "vhost-user
 * block"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "dev_virtio.h"
#include "gmem.h"
#include "vmm_priv.h"

struct vhu_arg {
	sqb_vm *vm;
	char id[SQB_VDEV_ID_MAX + 1];
	struct sqb_gmem *mem;
	sqb_vhu *conn; /* until create hands it to the device */
};

static int vhu_prepare(void *arg, struct sqb_gmem *mem)
{
	struct vhu_arg *a = arg;

	a->mem = mem;
	return 0;
}

/* Guest RAM as the backend maps it: the memfd at each region's offset. */
static int vhu_regions(void *opaque, struct sqb_vio_vhost_region *out, unsigned int max)
{
	struct vhu_arg *a = opaque;
	struct sqb_gmem *m = a->mem;
	unsigned int n = 0;

	if (!m || m->fd < 0)
		return -ENOTSUP;
	for (unsigned int i = 0; i < m->nregions && n < max; i++) {
		const struct sqb_mem_region *r = &m->regions[i];

		out[n++] =
		    (struct sqb_vio_vhost_region){r->gpa, r->size, r->fd_offset, r->host, m->fd};
	}
	return (int)n;
}

static int vhu_queue_fds(void *opaque, unsigned int q, int *kick, int *call)
{
	struct vhu_arg *a = opaque;

	return sqb_vdev_direct_fds(a->vm, a->id, q, kick, call);
}

static int vhu_create(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
		      struct sqb_diag *diag)
{
	struct vhu_arg *a = arg;
	struct sqb_vio_vhost_blk_opts o = {
	    SQB_VIO_OPTS_VERSION, a->conn, a->id, {a, vhu_regions, vhu_queue_fds}};
	int err;

	/* Firecracker backs guest memory with a memfd when a vhost-user device
	 * is configured; squib's RAM is one already, unless huge_pages 2M */
	if (!a->mem || a->mem->fd < 0) {
		if (diag) {
			snprintf(diag->section, sizeof(diag->section), "drive %.24s", a->id);
			snprintf(
			    diag->reason, sizeof(diag->reason),
			    "a vhost-user drive needs guest memory the backend can map (a "
			    "memfd); huge_pages 2M memory is private hugetlb memory, and guest "
			    "memory larger than RLIMIT_FSIZE is private anonymous memory");
		}
		return -ENOTSUP;
	}
	err = sqb_vio_vhost_blk_new(out, host, &o, diag);
	if (err == 0)
		a->conn = NULL; /* the device's now */
	else if (diag)
		snprintf(diag->section, sizeof(diag->section), "drive %.24s", a->id);
	return err;
}

static int vhu_host_fd(sqb_vio_dev *dev)
{
	return sqb_vio_vhost_sock_fd(dev);
}

static int vhu_host_ready(sqb_vio_dev *dev)
{
	return sqb_vio_vhost_sock_ready(dev);
}

static void vhu_free_arg(void *arg)
{
	struct vhu_arg *a = arg;

	sqb_vio_vhost_close(a->conn);
	free(a);
}

int sqb_vdev_add_vhost_blk(sqb_vm *vm, const char *drive_id, sqb_vhu *conn, struct sqb_diag *diag)
{
	struct vhu_arg *a;
	struct sqb_vdev_ext ext = {0};

	if (!vm || !drive_id || !conn || strlen(drive_id) > SQB_VDEV_ID_MAX) {
		sqb_vio_vhost_close(conn);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		sqb_vio_vhost_close(conn);
		return -ENOMEM;
	}
	a->vm = vm;
	a->conn = conn;
	snprintf(a->id, sizeof(a->id), "%s", drive_id);
	ext.create = vhu_create;
	ext.prepare = vhu_prepare;
	ext.host_fd = vhu_host_fd;
	ext.host_events = EPOLLIN | EPOLLRDHUP | EPOLLET;
	ext.host_ready = vhu_host_ready;
	ext.free_arg = vhu_free_arg;
	ext.arg = a;
	ext.direct_queues = 1;
	return sqb_vdev_add_ext(vm, drive_id, SQB_VIO_ID_BLK, &ext, diag);
}

int sqb_vdev_vhost_metrics(sqb_vm *vm, const char *drive_id, struct sqb_vio_vhost_metrics *out)
{
	sqb_vio_dev *d = sqb_vdev_lib(vm, drive_id);

	if (!d || sqb_vio_vhost_sock_fd(d) < 0)
		return -ENODEV;
	return sqb_vio_vhost_metrics(d, out);
}

int sqb_vdev_vhost_config_update(sqb_vm *vm, const char *drive_id, char *why, size_t len)
{
	sqb_vio_dev *d = sqb_vdev_lib(vm, drive_id);

	if (!d || sqb_vio_vhost_sock_fd(d) < 0)
		return -ENODEV;
	return sqb_vio_vhost_blk_config_update(d, why, len);
}
