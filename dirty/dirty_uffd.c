/* userfaultfd write-protect backends.  uffd-wp: a handler thread receives
 * each first write to a protected granule, logs it and un-protects it.
 * uffd-async: the kernel resolves write faults itself (UFFD_FEATURE_WP_ASYNC)
 * and PAGEMAP_SCAN reports-and-re-protects written pages in one walk.  Both
 * see guest (via KVM's fault path), host and kernel writes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "dirty_int.h"
#include "linux_compat.h"
#include "log.h"
#include "squib/errors.h"

#define UF_SCAN_VEC 512

struct uffd_priv {
	int uffd;
	int evfd;    /* uffd-wp: wakes the handler thread for exit */
	int pagemap; /* uffd-async: /proc/self/pagemap */
	bool async;
	bool thread;
	atomic_bool failed; /* the handler could not un-protect: collect fails */
	pthread_t thr;
	pthread_mutex_t lock; /* handler's grant versus collect's drain+re-protect */
	struct page_region vec[UF_SCAN_VEC];
};

static int uffd_features(uint64_t *features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) != 0)
		err = -errno;
	close(fd);
	*features = api.features;
	return err;
}

static const uint64_t uf_need_wp =
    UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

static int uf_probe_common(uint64_t need)
{
	uint64_t f = 0;
	int err = uffd_features(&f);

	if (err) {
		sqb_warn("dirty: userfaultfd unavailable: %s", strerror(-err));
		return -ENOTSUP;
	}
	if ((f & need) != need) {
		sqb_warn("dirty: userfaultfd lacks features 0x%llx (WP, WP_UNPOPULATED, "
			 "WP_HUGETLBFS_SHMEM, WP_ASYNC)",
			 (unsigned long long)(need & ~f));
		return -ENOTSUP;
	}
	return 0;
}

static int uf_probe_wp(void)
{
	return uf_probe_common(uf_need_wp);
}

static int uf_probe_async(void)
{
	struct pm_scan_arg arg = {.size = sizeof(arg)};
	int err = uf_probe_common(uf_need_wp | UFFD_FEATURE_WP_ASYNC), fd;

	if (err)
		return err;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOTSUP;
	/* An empty scan: 0 where PAGEMAP_SCAN exists, ENOTTY where it does not. */
	err = ioctl(fd, PAGEMAP_SCAN, &arg) < 0 && errno == ENOTTY ? -ENOTSUP : 0;
	close(fd);
	if (err)
		sqb_warn("dirty: PAGEMAP_SCAN unsupported (needs Linux 6.7+)");
	return err;
}

static int uf_wp(struct uffd_priv *p, void *a, uint64_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
	    .range = {.start = (uintptr_t)a, .len = len},
	    .mode = mode,
	};

	while (ioctl(p->uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

static void uf_fault(sqb_dirty *d, struct uffd_priv *p, uintptr_t addr)
{
	const struct dirty_range *r;
	long g = dirty_host_granule(d, addr, &r);
	uint8_t *base;

	if (g < 0)
		return;
	base = r->host + (((size_t)g - r->first) << d->gshift);
	/* Counted before the un-protect wakes the writer. */
	atomic_fetch_add_explicit(&d->n_faults, 1, memory_order_relaxed);
	pthread_mutex_lock(&p->lock);
	/* Under the lock a collect sees either the protected granule or the
	 * set bit, never a writable granule with a clear bit. */
	if (uf_wp(p, base, d->granule, 0) != 0) {
		/* Unblock the writer at any price and report the whole range. */
		p->failed = uf_wp(p, r->host, r->len, 0) != 0;
		for (size_t i = 0; i < r->ngran; i++)
			dirty_set_bit(d->pending, r->first + i);
	}
	dirty_set_bit(d->pending, (size_t)g);
	pthread_mutex_unlock(&p->lock);
}

static void *uf_thread(void *arg)
{
	sqb_dirty *d = arg;
	struct uffd_priv *p = d->priv;
	struct uffd_msg msg[32];

	for (;;) {
		struct pollfd pfd[2] = {{p->uffd, POLLIN, 0}, {p->evfd, POLLIN, 0}};
		ssize_t n;

		/* Never leave while the tracker lives: a writer may be blocked
		 * on a fault only this thread can resolve. */
		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				p->failed = true;
			continue;
		}
		if (pfd[1].revents)
			break;
		n = read(p->uffd, msg, sizeof(msg));
		if (n < 0)
			continue; /* EAGAIN: another wakeup consumed it */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			if (msg[i].event == UFFD_EVENT_PAGEFAULT &&
			    (msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
				uf_fault(d, p, (uintptr_t)msg[i].arg.pagefault.address);
		}
	}
	return NULL;
}

static void uf_fini(sqb_dirty *d);

static int uf_init_common(sqb_dirty *d, bool async)
{
	struct uffdio_api api = {.api = UFFD_API, .features = uf_need_wp};
	struct uffd_priv *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	p->async = async;
	p->evfd = p->pagemap = -1;
	pthread_mutex_init(&p->lock, NULL);
	d->priv = p;
	if (async)
		api.features |= UFFD_FEATURE_WP_ASYNC;
	/* Not UFFD_USER_MODE_ONLY: kernel-mode faults (read() into the range,
	 * KVM's get_user_pages) must be tracked too. */
	p->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	err = -errno;
	if (p->uffd < 0)
		goto fail;
	err = ioctl(p->uffd, UFFDIO_API, &api) ? -errno : 0;
	for (unsigned i = 0; i < d->nranges && !err; i++) {
		struct uffdio_register reg = {
		    .range = {.start = (uintptr_t)d->ranges[i].host, .len = d->ranges[i].len},
		    .mode = UFFDIO_REGISTER_MODE_WP,
		};
		err = ioctl(p->uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
	}
	if (err)
		goto fail;
	if (async) {
		p->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		err = p->pagemap < 0 ? -errno : 0;
	} else {
		p->evfd = eventfd(0, EFD_CLOEXEC);
		err = p->evfd < 0 ? -errno : -pthread_create(&p->thr, NULL, uf_thread, d);
		p->thread = err == 0;
	}
	if (err)
		goto fail;
	return 0;
fail:
	uf_fini(d);
	return err;
}

static int uf_init_wp(sqb_dirty *d)
{
	return uf_init_common(d, false);
}

static int uf_init_async(sqb_dirty *d)
{
	return uf_init_common(d, true);
}

static int uf_all(sqb_dirty *d, uint64_t mode)
{
	for (unsigned i = 0; i < d->nranges; i++)
		FORWARD_IF_ERROR(uf_wp(d->priv, d->ranges[i].host, d->ranges[i].len, mode));
	return 0;
}

static int uf_start(sqb_dirty *d)
{
	return uf_all(d, UFFDIO_WRITEPROTECT_MODE_WP);
}

static int uf_stop(sqb_dirty *d)
{
	struct uffd_priv *p = d->priv;
	int err;

	pthread_mutex_lock(&p->lock);
	err = uf_all(d, 0);
	pthread_mutex_unlock(&p->lock);
	return err;
}

static int uf_reprotect_run(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n)
{
	return uf_wp(d->priv, r->host + (g << d->gshift), n << d->gshift,
		     UFFDIO_WRITEPROTECT_MODE_WP);
}

static int uf_collect_wp(sqb_dirty *d, uint64_t *bm)
{
	struct uffd_priv *p = d->priv;
	int err;

	pthread_mutex_lock(&p->lock);
	dirty_drain_pending(d, bm);
	/* dirty_bench: ~1 us per run, ~65 ns per populated page for a range. */
	err = dirty_rearm(d, bm, 16, uf_reprotect_run);
	pthread_mutex_unlock(&p->lock);
	if (!err && p->failed)
		err = -EIO;
	return err;
}

/* One PAGEMAP_SCAN walk reports written pages and write-protects them again
 * under the page-table lock, so a racing write is either seen as written now
 * or faults (asynchronously) after the re-protect and is seen next time. */
static int uf_collect_async(sqb_dirty *d, uint64_t *bm)
{
	struct uffd_priv *p = d->priv;

	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];
		uint64_t start = (uintptr_t)r->host, end = start + r->len;

		while (start < end) {
			struct pm_scan_arg a = {
			    .size = sizeof(a),
			    .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			    .start = start,
			    .end = end,
			    .vec = (uintptr_t)p->vec,
			    .vec_len = UF_SCAN_VEC,
			    .category_mask = PAGE_IS_WRITTEN,
			    .return_mask = PAGE_IS_WRITTEN,
			};
			long n = ioctl(p->pagemap, PAGEMAP_SCAN, &a);

			if (n < 0)
				return -errno;
			for (long k = 0; k < n; k++) {
				size_t g0 = r->first +
					    ((p->vec[k].start - (uintptr_t)r->host) >> d->gshift);
				size_t g1 = r->first +
					    ((p->vec[k].end - 1 - (uintptr_t)r->host) >> d->gshift);

				for (size_t g = g0; g <= g1; g++)
					bm[g / 64] |= 1ull << (g % 64);
			}
			if (a.walk_end <= start)
				return -EIO; /* no progress: never loop forever */
			start = a.walk_end;
		}
	}
	return 0;
}

static void uf_fini(sqb_dirty *d)
{
	struct uffd_priv *p = d->priv;
	uint64_t one = 1;

	if (!p)
		return;
	if (p->thread) {
		if (write(p->evfd, &one, sizeof(one)) != sizeof(one))
			sqb_warn("dirty: cannot wake uffd handler");
		pthread_join(p->thr, NULL);
	}
	if (p->uffd >= 0)
		close(p->uffd); /* unregisters every range */
	if (p->evfd >= 0)
		close(p->evfd);
	if (p->pagemap >= 0)
		close(p->pagemap);
	pthread_mutex_destroy(&p->lock);
	free(p);
	d->priv = NULL;
}

const struct sqb_dirty_ops sqb_dirty_uffd_wp_ops = {
    .id = SQB_DIRTY_UFFD_WP,
    .name = "uffd-wp",
    .caps = SQB_DIRTY_SEES_GUEST | SQB_DIRTY_SEES_HOST | SQB_DIRTY_SEES_KERNEL,
    .probe = uf_probe_wp,
    .init = uf_init_wp,
    .start = uf_start,
    .collect = uf_collect_wp,
    .stop = uf_stop,
    .fini = uf_fini,
};

const struct sqb_dirty_ops sqb_dirty_uffd_async_ops = {
    .id = SQB_DIRTY_UFFD_ASYNC,
    .name = "uffd-async",
    .caps = SQB_DIRTY_SEES_GUEST | SQB_DIRTY_SEES_HOST | SQB_DIRTY_SEES_KERNEL,
    .probe = uf_probe_async,
    .init = uf_init_async,
    .start = uf_start,
    .collect = uf_collect_async,
    .stop = uf_stop,
    .fini = uf_fini,
};
