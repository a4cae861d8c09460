/* virtio-blk, virtio-rng and the ext devices (net, vsock, balloon) on the
 * VM's bus: each device is a virtio-mmio slot whose library device
 * (runtime/virtio/) gets guest memory, its irqfd, an ioeventfd per queue and
 * a rate-limit timerfd on the VM's event loop (docs/virtio.md "Integrating
 * it", docs/format.md [F-101], [F-104], [F-108]). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dev_mmio.h"
#include "dev_virtio.h"
#include "vmm_priv.h"

#define VDEV_MAX_QUEUES 5 /* the balloon's, with hinting and reporting */

struct vdev;

struct vdev_queue {
	struct vdev *v;
	uint32_t index;
	int fd;	     /* eventfd, or -1 */
	int64_t h;   /* event-loop handle, 0 if none */
	int ioevent; /* assigned as a KVM ioeventfd */
};

struct vdev {
	struct sqb_mmio_dev_ops ops; /* per instance: ops.id is the device's id */
	char id[SQB_VDEV_ID_MAX + 1];
	int is_blk;
	/* blk: what the device was created from (host hints, [F-104]) */
	char *path;
	int read_only;
	enum sqb_vio_cache cache;
	enum sqb_vio_engine engine;
	int64_t io_h; /* Async: the completion eventfd on the loop, 0 if none */
	struct sqb_vio_rl_config rl;
	int has_rl;
	/* pmem: the file, its mapping (map_len bytes, the file's first) and
	 * where the guest sees it */
	int is_pmem;
	int pmem_fd;
	uint8_t *pmem_host;
	uint64_t pmem_file_len, pmem_map_len, pmem_gpa;
	/* built by dev_net.c / dev_vsock.c (NULL: blk or rng) */
	struct sqb_vdev_ext ext;
	int has_ext;
	int64_t host_h; /* the ext's host fd on the loop, 0 if none */
	int64_t tick_h; /* the ext's periodic tick on the loop, 0 if none */
	uint64_t tick_period;

	sqb_vio_dev *dev;
	struct sqb_mmio_slot_info slot;
	struct vdev_queue q[VDEV_MAX_QUEUES];
	unsigned int nq;
	int timer_fd;
	int64_t timer_h;
	/* Quiesced for a snapshot: loop callbacks hold `lock` while they run
	 * the device and only note `pending` while quiesced, so no request
	 * starts between the drain and the resume ([F-101]). */
	pthread_mutex_t lock;
	int quiesced, pending;
	int direct_queues;     /* the ext's: queue eventfds stay off the loop */
	int *freed;	       /* during sqb_vm_add_mmio_dev: destroy() ran */
	struct sqb_diag *diag; /* during sqb_vm_add_mmio_dev: the caller's */
};

/* ---- host callbacks (run with the library device's lock held) ---- */

static uint8_t *host_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	struct vdev *v = opaque;

	return sqb_gmem_map(v->slot.mem, gpa, len, write);
}

static void host_raise(void *opaque)
{
	struct vdev *v = opaque;

	sqb_irq_pulse(v->slot.irq);
}

/* virtio-pci: an MSI-X message through the function's table (dev_pci.c) */
static void host_raise_vector(void *opaque, uint16_t vector)
{
	struct vdev *v = opaque;

	if (v->slot.msi)
		v->slot.msi(v->slot.msi_arg, vector);
}

/* Where queue i's notify lands: virtio-mmio's QueueNotify register with the
 * queue index as datamatch, or virtio-pci's own notify address without one
 * (as Firecracker), 2 bytes wide: Linux writes 16 bits, and PVM's KVM
 * refuses a wildcard length; another width takes the exit path there. */
static void notify_at(const struct vdev *v, unsigned int i, uint64_t *off, unsigned int *len,
		      int *has_match)
{
	if (v->slot.pci) {
		*off = SQB_VIO_PCI_NOTIFY_OFF + (uint64_t)SQB_VIO_PCI_NOTIFY_MULT * i;
		*len = 2;
		*has_match = 0;
	} else {
		*off = SQB_VIO_MMIO_QUEUE_NOTIFY;
		*len = 4;
		*has_match = 1;
	}
}

/* The library asks for a poll at an absolute CLOCK_MONOTONIC time; a
 * timerfd needs no lock, so any thread may arm it. */
static void host_arm(void *opaque, uint64_t deadline_ns)
{
	struct vdev *v = opaque;
	struct itimerspec it = {{0, 0}, {0, 0}};

	if (v->timer_fd < 0)
		return;
	if (!deadline_ns)
		deadline_ns = 1; /* zero would disarm */
	it.it_value.tv_sec = (time_t)(deadline_ns / 1000000000ULL);
	it.it_value.tv_nsec = (long)(deadline_ns % 1000000000ULL);
	timerfd_settime(v->timer_fd, TFD_TIMER_ABSTIME, &it, NULL);
}

/* ---- event-loop callbacks ---- */

/* queue >= 0: a notify; -1: poll every queue; -2: the ext's host fd;
 * -3: Async virtio-blk completions. */
static void run_locked(struct vdev *v, int queue)
{
	pthread_mutex_lock(&v->lock);
	if (v->quiesced)
		v->pending = 1;
	else if (queue >= 0)
		sqb_vio_queue_notify(v->dev, (uint32_t)queue);
	else if (queue == -2)
		v->ext.host_ready(v->dev);
	else if (queue == -3)
		sqb_vio_blk_io_ready(v->dev);
	else
		sqb_vio_dev_poll(v->dev);
	pthread_mutex_unlock(&v->lock);
}

/* Async virtio-blk: io_uring posted completions.  The count is cleared
 * here, so a level-triggered fd does not spin while quiesced (quiesce has
 * drained the ring; resume reaps whatever came since). */
static void on_blk_io(int fd, uint32_t events, void *arg)
{
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	run_locked(arg, -3);
}

/* Host side (a tap, the vsock sockets' epoll fd): edge-triggered, so an
 * edge that arrives while quiesced is made up for at resume. */
static void on_host(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	run_locked(arg, -2);
}

static void on_notify(int fd, uint32_t events, void *arg)
{
	struct vdev_queue *q = arg;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return; /* spurious wakeup: nothing counted */
	run_locked(q->v, (int)q->index);
}

static void on_timer(int fd, uint32_t events, void *arg)
{
	(void)fd; /* the loop already read the timerfd */
	(void)events;
	run_locked(arg, -1);
}

static void on_tick(int fd, uint32_t events, void *arg)
{
	struct vdev *v = arg;

	(void)fd;
	(void)events;
	pthread_mutex_lock(&v->lock);
	if (!v->quiesced) /* a tick while quiesced is simply skipped */
		v->ext.tick(v->dev);
	pthread_mutex_unlock(&v->lock);
}

/* ---- slot ops ---- */

static int arm_tick(struct vdev *v)
{
	uint64_t ns;

	if (!v->has_ext || !v->ext.tick || !v->ext.tick_ns || !v->dev)
		return 0;
	ns = v->ext.tick_ns(v->dev);
	if (ns == v->tick_period && (v->tick_h > 0 || !ns))
		return 0;
	if (v->tick_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->tick_h);
	v->tick_h = 0;
	v->tick_period = ns;
	if (!ns || !v->slot.loop)
		return 0;
	v->tick_h = sqb_evloop_timer(v->slot.loop, ns, 1, on_tick, v);
	if (v->tick_h < 0) {
		int err = (int)v->tick_h;

		v->tick_h = 0;
		return err;
	}
	return 0;
}

static void release_fds(struct vdev *v)
{
	for (unsigned int i = 0; i < v->nq; i++) {
		struct vdev_queue *q = &v->q[i];

		if (q->h > 0 && v->slot.loop)
			sqb_evloop_del(v->slot.loop, q->h);
		if (q->ioevent) {
			uint64_t off;
			unsigned int len;
			int m;

			notify_at(v, q->index, &off, &len, &m);
			v->slot.ioeventfd(&v->slot, off, len, q->index, m, q->fd, 0);
		}
		if (q->fd >= 0)
			close(q->fd);
		q->h = 0, q->ioevent = 0, q->fd = -1;
	}
	if (v->host_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->host_h);
	v->host_h = 0;
	/* before the library closes the eventfd in sqb_vio_dev_free() */
	if (v->io_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->io_h);
	v->io_h = 0;
	if (v->tick_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->tick_h);
	v->tick_h = 0;
	if (v->timer_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->timer_h);
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	v->timer_h = 0;
	v->timer_fd = -1;
}

static int wire_queue(struct vdev *v, unsigned int i)
{
	struct vdev_queue *q = &v->q[i];
	uint64_t off;
	unsigned int len;
	int err, m;

	q->v = v;
	q->index = i;
	q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->fd < 0)
		return -errno;
	notify_at(v, i, &off, &len, &m);
	err = v->slot.ioeventfd(&v->slot, off, len, i, m, q->fd, 1);
	if (err == -ENOSYS && v->direct_queues) {
		if (v->diag)
			snprintf(v->diag->reason, sizeof(v->diag->reason),
				 "a vhost-user device needs the hypervisor's ioeventfd");
		return -ENOTSUP;
	}
	if (err == -ENOSYS) { /* no ioeventfd: the write arrives through access() */
		close(q->fd);
		q->fd = -1;
		return 0;
	}
	if (err < 0)
		return err;
	q->ioevent = 1;
	if (v->direct_queues) /* the backend reads it */
		return 0;
	if (!v->slot.loop)
		return -EINVAL;
	q->h = sqb_evloop_add(v->slot.loop, q->fd, EPOLLIN, on_notify, q);
	return q->h < 0 ? (int)q->h : 0;
}

static int open_backing(const char *path, int read_only, int *fd, struct sqb_diag *diag)
{
	*fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (*fd < 0) {
		int e = errno;

		/* Firecracker's VirtioBlockError::BackingFile text */
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Error manipulating the backing file: %s (os error %d) %s",
				 sqb_os_strerror(e), e, path);
		return -e;
	}
	return 0;
}

static int vdev_realize(void *opaque, const struct sqb_mmio_slot_info *slot)
{
	struct vdev *v = opaque;
	struct sqb_vio_host host = {
	    .mem = {v, host_map},
	    .irq = {v, host_raise, host_raise_vector},
	    .clock = {NULL, NULL},
	    .timer = {v, host_arm},
	};
	struct sqb_diag d = {0};
	int err, fd = -1;

	v->slot = *slot;
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (v->timer_fd < 0)
		return -errno;
	if (v->has_ext && v->ext.prepare && (err = v->ext.prepare(v->ext.arg, slot->mem)) < 0)
		return err;
	if (v->has_ext) {
		err = v->ext.create(v->ext.arg, &v->dev, &host, v->diag);
	} else if (v->is_blk) {
		struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;

		err = open_backing(v->path, v->read_only, &fd, NULL);
		if (err < 0)
			return err;
		o.fd = fd;
		o.read_only = v->read_only;
		o.cache = v->cache;
		o.drive_id = v->id;
		o.rate_limiter = v->has_rl ? &v->rl : NULL;
		o.engine = v->engine;
		err = sqb_vio_blk_new(&v->dev, &host, &o, &d);
		close(fd); /* the device holds its own dup */
		if (err < 0 && v->diag && d.reason[0]) {
			*v->diag = d;
			snprintf(v->diag->section, sizeof(v->diag->section), "drive %.24s", v->id);
		}
	} else if (v->is_pmem) {
		struct sqb_vio_pmem_opts o = {SQB_VIO_OPTS_VERSION,
					      v->pmem_fd,
					      v->read_only,
					      v->pmem_file_len,
					      v->pmem_gpa,
					      v->pmem_map_len,
					      v->has_rl ? &v->rl : NULL};

		err = sqb_vio_pmem_new(&v->dev, &host, &o);
	} else {
		struct sqb_vio_rng_opts o = SQB_VIO_RNG_OPTS_INIT;

		o.rate_limiter = v->has_rl ? &v->rl : NULL;
		err = sqb_vio_rng_new(&v->dev, &host, &o);
	}
	if (err < 0)
		return err;
	if (v->slot.pci && v->direct_queues) {
		if (v->diag)
			snprintf(v->diag->reason, sizeof(v->diag->reason),
				 "a vhost-user device needs the virtio-mmio transport (squib has "
				 "no MSI routing for its backend): start squib without "
				 "--enable-pci");
		return -ENOTSUP;
	}
	if (v->slot.pci && (err = sqb_vio_pci_enable(v->dev)) < 0)
		return err;
	v->nq = sqb_vio_num_queues(v->dev);
	if (v->nq > VDEV_MAX_QUEUES)
		return -SQB_ELIMIT;
	for (unsigned int i = 0; i < v->nq; i++)
		v->q[i].fd = -1;
	for (unsigned int i = 0; i < v->nq; i++)
		if ((err = wire_queue(v, i)) < 0)
			return err;
	v->timer_h = sqb_evloop_add(v->slot.loop, v->timer_fd, EPOLLIN, on_timer, v);
	if (v->timer_h < 0)
		return (int)v->timer_h;
	if (v->has_ext && v->ext.host_fd) {
		int hfd = v->ext.host_fd(v->dev);

		if (hfd < 0)
			return hfd;
		v->host_h = sqb_evloop_add(v->slot.loop, hfd, v->ext.host_events, on_host, v);
		if (v->host_h < 0)
			return (int)v->host_h;
	}
	if (v->is_blk && v->engine == SQB_VIO_ENGINE_ASYNC) {
		v->io_h =
		    sqb_evloop_add(v->slot.loop, sqb_vio_blk_io_fd(v->dev), EPOLLIN, on_blk_io, v);
		if (v->io_h < 0)
			return (int)v->io_h;
	}
	return arm_tick(v);
}

static void vdev_access(void *opaque, uint64_t off, uint8_t *data, unsigned int size, int is_write)
{
	struct vdev *v = opaque;

	if (!v->dev) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	if (v->slot.pci)
		sqb_vio_pci_access(v->dev, off, data, size, is_write);
	else
		sqb_vio_mmio_access(v->dev, off, data, size, is_write);
}

static unsigned int vdev_num_queues(void *opaque)
{
	struct vdev *v = opaque;

	return v->dev ? sqb_vio_num_queues(v->dev) : 0;
}

static void vdev_vectors(void *opaque, uint16_t *vec, unsigned int n, unsigned int nvec, int set)
{
	struct vdev *v = opaque;

	if (v->dev)
		sqb_vio_pci_vectors(v->dev, vec, n, nvec, set);
}

static int vdev_quiesce(void *opaque)
{
	struct vdev *v = opaque;

	pthread_mutex_lock(&v->lock); /* waits for a notify that is running */
	v->quiesced = 1;
	pthread_mutex_unlock(&v->lock);
	return sqb_vio_quiesce(v->dev);
}

static void vdev_resume(void *opaque)
{
	struct vdev *v = opaque;
	int pending;

	pthread_mutex_lock(&v->lock);
	v->quiesced = 0;
	pending = v->pending;
	v->pending = 0;
	if (pending)
		sqb_vio_dev_poll(v->dev);
	if (v->io_h > 0) /* a completion may have come while quiesced */
		sqb_vio_blk_io_ready(v->dev);
	if (v->has_ext && v->ext.host_ready)
		v->ext.host_ready(v->dev); /* an edge may have come while quiesced */
	pthread_mutex_unlock(&v->lock);
}

static int vdev_save(void *opaque, uint8_t *buf, size_t cap, size_t *len)
{
	struct vdev *v = opaque;
	uint8_t *st = NULL;
	size_t n = 0;
	int err = sqb_vio_dev_save(v->dev, &st, &n);

	if (err < 0)
		return err;
	*len = n;
	if (buf && cap >= n)
		memcpy(buf, st, n);
	else if (buf)
		err = -ENOSPC;
	free(st);
	return err;
}

static int vdev_load(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		     struct sqb_diag *diag)
{
	struct vdev *v = opaque;
	struct sqb_diag d = {0};
	int err = sqb_vio_dev_restore(v->dev, version, buf, len, &d);

	if (err < 0 && diag) {
		*diag = d;
		if (v->is_blk || v->is_pmem) { /* name the device and its file ([F-104]) */
			char *r = diag->reason;
			size_t cap = sizeof(diag->reason);
			int n = snprintf(r, cap, "%s '%s' (%.60s): ", v->is_pmem ? "pmem" : "drive",
					 v->id, v->path);
			size_t used = n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;

			snprintf(r + used, cap - used, "%s",
				 d.reason[0] ? d.reason : sqb_strerror(err));
		}
	}
	/* the snapshot's tick period (the balloon's polling interval) wins */
	if (!err)
		err = arm_tick(v);
	return err;
}

static void vdev_free(struct vdev *v)
{
	if (!v)
		return;
	release_fds(v);
	sqb_vio_dev_free(v->dev);
	if (v->has_ext && v->ext.free_arg)
		v->ext.free_arg(v->ext.arg);
	pthread_mutex_destroy(&v->lock);
	/* the memslot may still point here: the VM goes away with its devices
	 * (a guest access after this would fault in KVM, never in squib) */
	if (v->pmem_host)
		munmap(v->pmem_host, v->pmem_map_len);
	if (v->pmem_fd >= 0)
		close(v->pmem_fd);
	free(v->path);
	free(v);
}

static void vdev_destroy(void *opaque)
{
	struct vdev *v = opaque;

	if (v->freed)
		*v->freed = 1;
	vdev_free(v);
}

static struct vdev *vdev_new(const char *id, uint32_t virtio_id)
{
	struct vdev *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->timer_fd = -1;
	v->pmem_fd = -1;
	for (unsigned int i = 0; i < VDEV_MAX_QUEUES; i++)
		v->q[i].fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	v->ops = (struct sqb_mmio_dev_ops){
	    .id = v->id,
	    .virtio_device_id = virtio_id,
	    .state_version = SQB_VIO_STATE_VERSION,
	    .realize = vdev_realize,
	    .access = vdev_access,
	    .quiesce = vdev_quiesce,
	    .resume = vdev_resume,
	    .save = vdev_save,
	    .load = vdev_load,
	    .destroy = vdev_destroy,
	    .num_queues = vdev_num_queues,
	    .vectors = vdev_vectors,
	};
	return v;
}

static int attach(struct sqb_vm *vm, struct vdev *v, struct sqb_diag *diag)
{
	int freed = 0, err;

	v->freed = &freed;
	v->diag = diag;
	err = sqb_vm_add_mmio_dev(vm, &v->ops, v, NULL, diag);
	if (err < 0) {
		if (!freed)
			vdev_free(v);
		return err;
	}
	v->freed = NULL;
	v->diag = NULL;
	return 0;
}

static int id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 1 || n > SQB_VDEV_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '_' || (id[i] >= '0' && id[i] <= '9') ||
		      ((id[i] | 0x20) >= 'a' && (id[i] | 0x20) <= 'z')))
			return 0;
	return 1;
}

int sqb_vdev_add_blk(sqb_vm *vm, const struct sqb_vdev_blk_cfg *cfg, struct sqb_diag *diag)
{
	struct vdev *v;
	int err, fd;

	if (!vm || !cfg || cfg->version != SQB_VDEV_BLK_VERSION || !cfg->path ||
	    !id_ok(cfg->drive_id))
		return -EINVAL;
	/* Open once here so that the message names the drive and the file. */
	if ((err = open_backing(cfg->path, cfg->read_only, &fd, diag)) < 0) {
		if (diag)
			snprintf(diag->section, sizeof(diag->section), "drive %.24s",
				 cfg->drive_id);
		return err;
	}
	close(fd);
	v = vdev_new(cfg->drive_id, SQB_VIO_ID_BLK);
	if (!v || !(v->path = strdup(cfg->path))) {
		if (v)
			vdev_free(v);
		return -ENOMEM;
	}
	v->is_blk = 1;
	v->read_only = cfg->read_only;
	v->cache = cfg->cache;
	v->engine = cfg->engine;
	if (cfg->rate_limiter) {
		v->rl = *cfg->rate_limiter;
		v->has_rl = 1;
	}
	return attach(vm, v, diag);
}

#define PMEM_ALIGN (2ULL << 20)

/* Firecracker's PmemMmap: the 2 MiB rounded length reserved as private
 * anonymous memory, the file mapped over its start (MAP_FIXED, shared), so
 * the tail past the file's end is memory the file never sees. */
static int pmem_map(struct vdev *v, struct sqb_diag *diag)
{
	int prot = PROT_READ | (v->read_only ? 0 : PROT_WRITE);
	struct stat st;
	void *p;
	int e;

	v->pmem_fd = open(v->path, (v->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (v->pmem_fd < 0 || fstat(v->pmem_fd, &st) < 0) {
		e = errno;
		snprintf(diag->reason, sizeof(diag->reason),
			 "Error accessing backing file: %s (os error %d) %s", sqb_os_strerror(e), e,
			 v->path);
		return -e;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(diag->reason, sizeof(diag->reason),
			 "Error accessing backing file: not a regular file %s", v->path);
		return -EINVAL;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(v->pmem_fd, 0, SEEK_END);

		st.st_size = end < 0 ? 0 : end;
	}
	if (st.st_size <= 0) {
		snprintf(diag->reason, sizeof(diag->reason), "Error backing file size is 0");
		return -EINVAL;
	}
	v->pmem_file_len = (uint64_t)st.st_size;
	if (v->pmem_file_len > UINT64_MAX - PMEM_ALIGN)
		return -EFBIG;
	v->pmem_map_len = (v->pmem_file_len + PMEM_ALIGN - 1) & ~(PMEM_ALIGN - 1);
	p = mmap(NULL, v->pmem_map_len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		goto err;
	v->pmem_host = p;
	p = mmap(p, v->pmem_file_len, prot, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, v->pmem_fd, 0);
	if (p == MAP_FAILED)
		goto err;
	return 0;
err:
	e = errno;
	snprintf(diag->reason, sizeof(diag->reason),
		 "Error accessing backing file: %s (os error %d) %s", sqb_os_strerror(e), e,
		 v->path);
	return -e;
}

int sqb_vdev_add_pmem(sqb_vm *vm, const struct sqb_vdev_pmem_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_diag d = {0};
	struct vdev *v;
	int err;

	if (!vm || !cfg || cfg->version != SQB_VDEV_PMEM_VERSION || !cfg->path ||
	    !id_ok(cfg->id))
		return -EINVAL;
	v = vdev_new(cfg->id, SQB_VIO_ID_PMEM);
	if (!v || !(v->path = strdup(cfg->path))) {
		if (v)
			vdev_free(v);
		return -ENOMEM;
	}
	v->is_pmem = 1;
	v->read_only = cfg->read_only;
	if (cfg->rate_limiter) {
		v->rl = *cfg->rate_limiter;
		v->has_rl = 1;
	}
	err = pmem_map(v, &d);
	if (!err)
		err = sqb_vm_map_device_mem(vm, v->pmem_map_len, v->pmem_host, v->read_only,
					    &v->pmem_gpa, &d);
	if (err < 0) {
		if (diag) {
			*diag = d;
			snprintf(diag->section, sizeof(diag->section), "pmem %.24s", cfg->id);
		}
		vdev_free(v);
		return err;
	}
	return attach(vm, v, diag);
}

int sqb_vdev_add_ext(sqb_vm *vm, const char *id, uint32_t virtio_id, const struct sqb_vdev_ext *ext,
		     struct sqb_diag *diag)
{
	struct vdev *v;

	if (!vm || !ext || !ext->create || !id || !*id || strlen(id) > SQB_VDEV_ID_MAX ||
	    (ext->host_fd && !ext->host_ready) || (!ext->tick != !ext->tick_ns)) {
		if (ext && ext->free_arg)
			ext->free_arg(ext->arg);
		return -EINVAL;
	}
	v = vdev_new(id, virtio_id);
	if (!v) {
		if (ext->free_arg)
			ext->free_arg(ext->arg);
		return -ENOMEM;
	}
	v->ext = *ext;
	v->has_ext = 1;
	v->direct_queues = ext->direct_queues;
	return attach(vm, v, diag);
}

int sqb_vdev_add_rng(sqb_vm *vm, const struct sqb_vio_rl_config *rl, struct sqb_diag *diag)
{
	struct vdev *v;

	if (!vm)
		return -EINVAL;
	v = vdev_new(SQB_VDEV_RNG_ID, SQB_VIO_ID_RNG);
	if (!v)
		return -ENOMEM;
	if (rl) {
		v->rl = *rl;
		v->has_rl = 1;
	}
	return attach(vm, v, diag);
}

/* Our devices are the slots whose ops realize with vdev_realize. */
static struct vdev *find(sqb_vm *vm, const char *id)
{
	struct sqb_dev *d = vm ? sqb_bus_by_id(&vm->bus, id) : NULL;
	const struct sqb_mmio_dev_ops *ops = NULL;
	void *opaque;

	if (!d || !sqb_dev_is_virtio(d))
		return NULL;
	opaque = sqb_mmio_slot_opaque(d, &ops);
	return ops && ops->realize == vdev_realize ? opaque : NULL;
}

int sqb_vdev_blk_set_path(sqb_vm *vm, const char *drive_id, const char *path, struct sqb_diag *diag)
{
	struct vdev *v = find(vm, drive_id);
	char *copy;
	int err, fd;

	if (!v || !v->is_blk)
		return -ENODEV;
	if (!path)
		return -EINVAL;
	if ((err = open_backing(path, v->read_only, &fd, diag)) < 0)
		return err;
	if (!(copy = strdup(path))) {
		close(fd);
		return -ENOMEM;
	}
	err = sqb_vio_blk_set_backing(v->dev, fd);
	close(fd);
	if (err < 0) {
		free(copy);
		return err;
	}
	pthread_mutex_lock(&v->lock);
	free(v->path);
	v->path = copy;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int sqb_vdev_set_rate_limiter(sqb_vm *vm, const char *id, const struct sqb_vio_rl_config *rl)
{
	struct vdev *v = find(vm, id);

	if (!v)
		return -ENODEV;
	return sqb_vio_set_rate_limiter(v->dev, rl);
}

void sqb_vdev_poll_all(sqb_vm *vm)
{
	for (unsigned int i = 0; vm && i < vm->bus.ndevs; i++) {
		struct vdev *v = find(vm, vm->bus.devs[i]->id);

		if (v)
			run_locked(v, -1);
	}
}

void sqb_vdev_poll(sqb_vm *vm, const char *id)
{
	struct vdev *v = find(vm, id);

	if (v && v->dev)
		run_locked(v, -1);
}

int sqb_vdev_direct_fds(sqb_vm *vm, const char *id, unsigned int q, int *kick, int *call)
{
	struct vdev *v = find(vm, id);

	if (!v || !v->direct_queues || q >= v->nq || v->q[q].fd < 0)
		return -ENODEV;
	if (!v->slot.irq || v->slot.irq->fd < 0)
		return -ENOTSUP;
	*kick = v->q[q].fd;
	*call = v->slot.irq->fd;
	return 0;
}

int sqb_vdev_retick(sqb_vm *vm, const char *id)
{
	struct vdev *v = find(vm, id);

	if (!v || !v->dev)
		return -ENODEV;
	return arm_tick(v);
}

uint64_t sqb_vdev_blk_capacity(sqb_vm *vm, const char *drive_id)
{
	struct vdev *v = find(vm, drive_id);

	return v && v->is_blk ? sqb_vio_blk_capacity(v->dev) : 0;
}

sqb_vio_dev *sqb_vdev_lib(sqb_vm *vm, const char *id)
{
	struct vdev *v = find(vm, id);

	return v ? v->dev : NULL;
}

int sqb_vdev_pmem_region(sqb_vm *vm, const char *id, uint64_t *gpa, uint64_t *size)
{
	struct vdev *v = find(vm, id);

	if (!v || !v->is_pmem)
		return -ENODEV;
	*gpa = v->pmem_gpa;
	*size = v->pmem_map_len;
	return 0;
}
