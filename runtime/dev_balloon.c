/* virtio-balloon on the VM's bus: a virtio-mmio slot whose library device
 * (runtime/virtio/virtio_balloon.c) gets guest memory, its irqfd, an
 * ioeventfd per queue, the statistics timer, and a discard that drops guest
 * pages as their host backing needs (docs/virtio.md "virtio-balloon",
 * docs/format.md [F-120], [F-121]). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dev_balloon.h"
#include "dev_mmio.h"
#include "log.h"
#include "vmm_priv.h"

#define BQ_MAX	 5
#define MAPS_MAX (64u << 20) /* a /proc/self/maps larger than this is refused */
#define PAGE	 4096ull

struct bdev;

struct bq {
	struct bdev *v;
	uint32_t index;
	int fd;
	int64_t h;
	int ioevent;
};

struct bdev {
	struct sqb_mmio_dev_ops ops;
	struct sqb_balloon_cfg cfg;
	uint64_t guest_mib;
	sqb_vio_dev *dev;
	struct sqb_mmio_slot_info slot;
	struct bq q[BQ_MAX];
	unsigned int nq;
	int64_t stats_h; /* the loop's periodic timer, 0 if none */
	int maps_fd;	 /* /proc/self/maps, opened where the seccomp filter allows it */
	pthread_mutex_t lock;
	int quiesced, pending;
	int *freed;
};

/* ---- discarding host memory ---- */

static int read_maps(int fd, char **out, size_t *out_len)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	/* pread from 0 restarts the seq_file; unlike lseek it is on the
	 * event loop's and the vCPU's seccomp lists (a notify may run on
	 * either) */
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= MAPS_MAX || !(nb = realloc(buf, cap * 2))) {
				free(buf);
				return cap >= MAPS_MAX ? -SQB_ELIMIT : -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		n = pread(fd, buf + len, cap - len - 1, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	return 0;
}

/* One piece inside one mapping: the right tool for its kind. */
static int discard_piece(uint8_t *p, uint64_t len, int shared, int file)
{
	if (shared)
		return madvise(p, len, MADV_REMOVE) ? -errno : 0;
	if (file) {
		/* MADV_DONTNEED would bring the file's bytes back: replace the
		 * mapping with fresh anonymous zero pages instead */
		void *r = mmap(p, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
		return r == MAP_FAILED ? -errno : 0;
	}
	return madvise(p, len, MADV_DONTNEED) ? -errno : 0;
}

int sqb_balloon_discard_host(uint8_t *host, uint64_t len, int maps_fd)
{
	uintptr_t a = (uintptr_t)host, b = a + len, covered = 0;
	char *maps = NULL, *line;
	size_t mlen;
	int own = maps_fd < 0, err;

	if (!host || !len || (a & (PAGE - 1)) || (len & (PAGE - 1)) || b < a)
		return -EINVAL;
	/* The common case, guest RAM in the VM's memfd: one call punches the
	 * hole (and a lazy restore's userfaultfd sees UFFD_EVENT_REMOVE). */
	if (!madvise(host, len, MADV_REMOVE))
		return 0;
	if (errno != EINVAL && errno != EACCES && errno != EOPNOTSUPP)
		return -errno;
	/* Private mappings (an mmap-loaded snapshot: anonymous plus file runs)
	 * need to be told apart: ask the kernel which VMAs cover the range. */
	if (own && (maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	err = read_maps(maps_fd, &maps, &mlen);
	if (own)
		close(maps_fd);
	if (err)
		return err;
	for (line = maps; !err && line && *line;) {
		char *nl = strchr(line, '\n');
		unsigned long s, e, off, ino;
		char perms[8];
		unsigned int maj, min;

		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &s, &e, perms, &off, &maj, &min,
			   &ino) == 7 &&
		    e > a && s < b) {
			uintptr_t ps = s > a ? s : a, pe = e < b ? e : b;

			err = discard_piece((uint8_t *)ps, pe - ps, perms[3] == 's', ino != 0);
			covered += pe - ps;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(maps);
	if (!err && covered != len)
		err = -EFAULT; /* part of the range is not mapped at all */
	return err;
}

/* ---- host callbacks (under the library device's lock) ---- */

static uint8_t *host_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	struct bdev *v = opaque;

	return sqb_gmem_map(v->slot.mem, gpa, len, write);
}

static void host_raise(void *opaque)
{
	struct bdev *v = opaque;

	sqb_irq_pulse(v->slot.irq);
}

/* [F-121]: checked against guest RAM, dropped, then reported written so
 * that the next Diff records the pages as zero (KVM's log never sees a
 * page that went away). */
static int host_discard(void *opaque, uint64_t gpa, uint64_t len)
{
	struct bdev *v = opaque;
	struct sqb_gmem *m = v->slot.mem;
	const struct sqb_gmem_hooks *h;
	int err;

	for (unsigned int i = 0; m && i < m->nregions; i++) {
		const struct sqb_mem_region *r = &m->regions[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		err = sqb_balloon_discard_host(r->host + (gpa - r->gpa), len, v->maps_fd);
		if (err)
			sqb_warn("balloon: discarding guest 0x%llx+0x%llx failed: %s",
				 (unsigned long long)gpa, (unsigned long long)len,
				 sqb_strerror(err));
		h = __atomic_load_n(&m->hooks, __ATOMIC_ACQUIRE);
		if (h && h->written)
			h->written(h->opaque, gpa, len);
		return err;
	}
	return -EFAULT;
}

/* ---- event-loop callbacks ---- */

static void run_locked(struct bdev *v, int queue)
{
	pthread_mutex_lock(&v->lock);
	if (v->quiesced)
		v->pending = 1;
	else if (queue >= 0)
		sqb_vio_queue_notify(v->dev, (uint32_t)queue);
	else
		sqb_vio_dev_poll(v->dev);
	pthread_mutex_unlock(&v->lock);
}

static void on_notify(int fd, uint32_t events, void *arg)
{
	struct bq *q = arg;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	run_locked(q->v, (int)q->index);
}

static void on_stats_timer(int fd, uint32_t events, void *arg)
{
	struct bdev *v = arg;

	(void)fd;
	(void)events;
	pthread_mutex_lock(&v->lock);
	if (!v->quiesced) /* a tick while quiesced is simply skipped */
		(void)sqb_vio_balloon_stats_tick(v->dev);
	pthread_mutex_unlock(&v->lock);
}

/* ---- slot ops ---- */

static void release_fds(struct bdev *v)
{
	for (unsigned int i = 0; i < v->nq; i++) {
		struct bq *q = &v->q[i];

		if (q->h > 0 && v->slot.loop)
			sqb_evloop_del(v->slot.loop, q->h);
		if (q->ioevent)
			v->slot.ioeventfd(&v->slot, SQB_VIO_MMIO_QUEUE_NOTIFY, 4, q->index, 1,
					  q->fd, 0);
		if (q->fd >= 0)
			close(q->fd);
		q->h = 0, q->ioevent = 0, q->fd = -1;
	}
	if (v->stats_h > 0 && v->slot.loop)
		sqb_evloop_del(v->slot.loop, v->stats_h);
	v->stats_h = 0;
	if (v->maps_fd >= 0)
		close(v->maps_fd);
	v->maps_fd = -1;
}

static int wire_queue(struct bdev *v, unsigned int i)
{
	struct bq *q = &v->q[i];
	int err;

	q->v = v;
	q->index = i;
	q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->fd < 0)
		return -errno;
	err = v->slot.ioeventfd(&v->slot, SQB_VIO_MMIO_QUEUE_NOTIFY, 4, i, 1, q->fd, 1);
	if (err == -ENOSYS) {
		close(q->fd);
		q->fd = -1;
		return 0;
	}
	if (err < 0)
		return err;
	q->ioevent = 1;
	if (!v->slot.loop)
		return -EINVAL;
	q->h = sqb_evloop_add(v->slot.loop, q->fd, EPOLLIN, on_notify, q);
	return q->h < 0 ? (int)q->h : 0;
}

static int arm_stats(struct bdev *v, uint16_t interval_s)
{
	if (v->stats_h > 0)
		sqb_evloop_del(v->slot.loop, v->stats_h);
	v->stats_h = 0;
	if (!interval_s || !v->slot.loop)
		return 0;
	v->stats_h = sqb_evloop_timer(v->slot.loop, (uint64_t)interval_s * 1000000000ull, 1,
				      on_stats_timer, v);
	return v->stats_h < 0 ? (int)v->stats_h : 0;
}

static int bdev_realize(void *opaque, const struct sqb_mmio_slot_info *slot)
{
	struct bdev *v = opaque;
	struct sqb_vio_host host = {
	    .mem = {v, host_map},
	    .irq = {v, host_raise},
	};
	struct sqb_vio_balloon_opts o = SQB_VIO_BALLOON_OPTS_INIT;
	struct sqb_diag d = {0};
	int err;

	v->slot = *slot;
	/* here, on the API thread: the event loop may not open files */
	v->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (v->maps_fd < 0)
		sqb_debug("balloon: /proc/self/maps: %s (private mappings: no discard)",
			  strerror(errno));
	o.amount_mib = v->cfg.amount_mib;
	o.deflate_on_oom = v->cfg.deflate_on_oom;
	o.stats_polling_interval_s = v->cfg.stats_polling_interval_s;
	o.free_page_hinting = v->cfg.free_page_hinting;
	o.free_page_reporting = v->cfg.free_page_reporting;
	o.guest_mib = v->guest_mib;
	o.discard = (struct sqb_vio_discard){v, host_discard};
	if ((err = sqb_vio_balloon_new(&v->dev, &o, &host, &d)) < 0)
		return err;
	v->nq = sqb_vio_num_queues(v->dev);
	if (v->nq > BQ_MAX)
		return -SQB_ELIMIT;
	for (unsigned int i = 0; i < v->nq; i++)
		v->q[i].fd = -1;
	for (unsigned int i = 0; i < v->nq; i++)
		if ((err = wire_queue(v, i)) < 0)
			return err;
	return arm_stats(v, v->cfg.stats_polling_interval_s);
}

static void bdev_access(void *opaque, uint64_t off, uint8_t *data, unsigned int size, int is_write)
{
	struct bdev *v = opaque;

	if (!v->dev) {
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	sqb_vio_mmio_access(v->dev, off, data, size, is_write);
}

static int bdev_quiesce(void *opaque)
{
	struct bdev *v = opaque;

	pthread_mutex_lock(&v->lock);
	v->quiesced = 1;
	pthread_mutex_unlock(&v->lock);
	return sqb_vio_quiesce(v->dev);
}

static void bdev_resume(void *opaque)
{
	struct bdev *v = opaque;
	int pending;

	pthread_mutex_lock(&v->lock);
	v->quiesced = 0;
	pending = v->pending;
	v->pending = 0;
	if (pending)
		sqb_vio_dev_poll(v->dev);
	pthread_mutex_unlock(&v->lock);
}

static int bdev_save(void *opaque, uint8_t *buf, size_t cap, size_t *len)
{
	struct bdev *v = opaque;
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

static int bdev_load(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		     struct sqb_diag *diag)
{
	struct bdev *v = opaque;
	struct sqb_diag d = {0};
	int err = sqb_vio_dev_restore(v->dev, version, buf, len, &d);

	if (err < 0 && diag)
		*diag = d;
	/* the snapshot's polling interval wins over the configured one */
	if (!err && sqb_vio_balloon_stats_interval(v->dev) != v->cfg.stats_polling_interval_s) {
		v->cfg.stats_polling_interval_s = sqb_vio_balloon_stats_interval(v->dev);
		err = arm_stats(v, v->cfg.stats_polling_interval_s);
	}
	return err;
}

static void bdev_free(struct bdev *v)
{
	if (!v)
		return;
	release_fds(v);
	sqb_vio_dev_free(v->dev);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static void bdev_destroy(void *opaque)
{
	struct bdev *v = opaque;

	if (v->freed)
		*v->freed = 1;
	bdev_free(v);
}

int sqb_balloon_add(sqb_vm *vm, const struct sqb_balloon_cfg *cfg, struct sqb_diag *diag)
{
	struct bdev *v;
	int freed = 0, err;

	if (!vm || !cfg || cfg->version != SQB_BALLOON_VERSION)
		return -EINVAL;
	if (cfg->amount_mib > vm->mem.size >> 20) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Amount of pages requested is too large.");
		return -EINVAL;
	}
	if (!(v = calloc(1, sizeof(*v))))
		return -ENOMEM;
	v->cfg = *cfg;
	v->guest_mib = vm->mem.size >> 20;
	v->maps_fd = -1;
	for (unsigned int i = 0; i < BQ_MAX; i++)
		v->q[i].fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	v->ops = (struct sqb_mmio_dev_ops){
	    .id = SQB_BALLOON_ID,
	    .virtio_device_id = SQB_VIO_ID_BALLOON,
	    .state_version = SQB_VIO_STATE_VERSION,
	    .realize = bdev_realize,
	    .access = bdev_access,
	    .quiesce = bdev_quiesce,
	    .resume = bdev_resume,
	    .save = bdev_save,
	    .load = bdev_load,
	    .destroy = bdev_destroy,
	};
	v->freed = &freed;
	err = sqb_vm_add_mmio_dev(vm, &v->ops, v, NULL, diag);
	if (err < 0) {
		if (!freed)
			bdev_free(v);
		return err;
	}
	v->freed = NULL;
	return 0;
}

static struct bdev *find(sqb_vm *vm)
{
	struct sqb_dev *d = vm ? sqb_bus_by_id(&vm->bus, SQB_BALLOON_ID) : NULL;
	const struct sqb_mmio_dev_ops *ops = NULL;
	void *opaque;

	if (!d || d->cls != &sqb_dev_classes[SQB_DEVCLS_MMIO_SLOT])
		return NULL;
	opaque = sqb_mmio_slot_opaque(d, &ops);
	return ops && ops->realize == bdev_realize ? opaque : NULL;
}

sqb_vio_dev *sqb_balloon_dev(sqb_vm *vm)
{
	struct bdev *v = find(vm);

	return v ? v->dev : NULL;
}

int sqb_balloon_set_stats_interval(sqb_vm *vm, uint16_t interval_s)
{
	struct bdev *v = find(vm);
	int err;

	if (!v || !v->dev)
		return -ENODEV;
	if ((err = sqb_vio_balloon_set_stats_interval(v->dev, interval_s)) < 0)
		return err;
	if (interval_s == v->cfg.stats_polling_interval_s)
		return 0;
	v->cfg.stats_polling_interval_s = interval_s;
	return arm_stats(v, interval_s);
}

void sqb_balloon_poll(sqb_vm *vm)
{
	struct bdev *v = find(vm);

	if (v && v->dev)
		run_locked(v, -1);
}

uint64_t sqb_balloon_guest_mib(sqb_vm *vm)
{
	return vm ? vm->mem.size >> 20 : 0;
}
