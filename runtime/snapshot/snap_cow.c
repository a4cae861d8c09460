/* Copy-before-write for background snapshots (docs/snapshots.md,
 * "Background snapshots"): guest pages the memory file still has to read
 * are write-protected with userfaultfd while the VM is paused; a handler
 * thread copies a page aside before the first write to it (guest, KVM or
 * VMM), so the file holds exactly the memory of the pause instant.  A small,
 * sparse set (a Diff at 1 %) is instead copied aside whole while paused: a
 * memcpy of its pages costs less than protecting the span they lie in.
 *
 * A live create (a background create asked of a RUNNING VM) protects the
 * pages that hold data before it pauses (sqb_snap_cow_prearm): while the
 * guest still runs the handler only notes a written page and un-protects
 * it; in the pause only those pages (and data that appeared outside the
 * early cover) are protected again, so the pause no longer pays ~85 ns
 * for every populated page. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "snap_priv.h"

#define PG	4096u
#define COW_GAP 64 /* pages */
/* copy at the pause when the set is at most this many pages and at most
 * 1/COW_SPARSE of guest memory */
#define COW_COPY_MAX 4096u
#define COW_SPARSE   16u

struct cow_region {
	uint8_t *host;
	uint64_t npages;
	uint64_t *prot;	 /* 1: still protected, not yet read or copied */
	uint8_t **aside; /* copy of the page at the pause instant */
	/* live create: protected before the pause (the early cover), and
	 * written (un-protected) since then; NULL otherwise */
	uint64_t *early, *touched;
};

struct sqb_snap_cow {
	int uffd, evfd;
	pthread_t thr;
	int thread;
	pthread_mutex_t lock;
	unsigned int nreg;
	struct cow_region reg[SQB_GMEM_MAX_REGIONS];
	uint64_t copied;
	int failed;    /* a page could not be copied aside: the snapshot is void */
	int pre;       /* live create before its pause: note and un-protect only */
	uint8_t *pool; /* copy mode: every wanted page, copied while paused */
	uint64_t pooled, pool_cap;
};

static int wp(int uffd, const void *a, uint64_t len, int on)
{
	struct uffdio_writeprotect w = {{(uint64_t)(uintptr_t)a, len},
					on ? UFFDIO_WRITEPROTECT_MODE_WP : 0};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

static int bit(const uint64_t *b, uint64_t p)
{
	return (int)((b[p / 64] >> (p % 64)) & 1);
}

/* A write fault on a protected page: keep its pause-instant bytes, then
 * let the writer go on (un-protecting wakes it). */
static void cow_fault(struct sqb_snap_cow *c, uint64_t addr)
{
	uint64_t a = addr & ~(uint64_t)(PG - 1);

	pthread_mutex_lock(&c->lock);
	for (unsigned int r = 0; r < c->nreg; r++) {
		struct cow_region *g = &c->reg[r];
		uint64_t base = (uint64_t)(uintptr_t)g->host;

		if (a < base || a >= base + g->npages * PG)
			continue;
		uint64_t p = (a - base) / PG;
		if (c->pre) {
			if (g->touched)
				g->touched[p / 64] |= 1ull << (p % 64);
		} else if (bit(g->prot, p)) {
			uint8_t *copy = malloc(PG);
			if (copy) {
				memcpy(copy, g->host + p * PG, PG);
				g->aside[p] = copy;
				c->copied++;
			} else {
				c->failed = 1;
			}
			g->prot[p / 64] &= ~(1ull << (p % 64));
		}
		break;
	}
	if (wp(c->uffd, (void *)(uintptr_t)a, PG, 0) && errno != ENOENT)
		c->failed = 1;
	pthread_mutex_unlock(&c->lock);
}

static void *cow_thread(void *arg)
{
	struct sqb_snap_cow *c = arg;

	for (;;) {
		struct pollfd pf[2] = {{c->uffd, POLLIN, 0}, {c->evfd, POLLIN, 0}};
		struct uffd_msg m;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		while (read(c->uffd, &m, sizeof(m)) == (ssize_t)sizeof(m))
			if (m.event == UFFD_EVENT_PAGEFAULT)
				cow_fault(c, m.arg.pagefault.address);
	}
	return NULL;
}

/* Protect every page whose bit is set in set (runs of set bits, one ioctl
 * each). */
static int arm_region(struct sqb_snap_cow *c, struct cow_region *g, const uint64_t *set)
{
	uint64_t p = 0;

	while (p < g->npages) {
		uint64_t q;

		if (!bit(set, p)) {
			p++;
			continue;
		}
		/* a gap of up to COW_GAP unwanted pages is protected with its
		 * neighbours: one ioctl (a KVM MMU invalidation each) costs more
		 * in the pause than walking a few more PTEs; a write to a gap
		 * page is only un-protected, never copied */
		for (q = p + 1; q < g->npages; q++) {
			uint64_t e = q;

			while (e < g->npages && e - q < COW_GAP && !bit(set, e))
				e++;
			if (e >= g->npages || !bit(set, e))
				break;
			q = e;
		}
		FORWARD_IF_ERROR(wp(c->uffd, g->host + p * PG, (q - p) * PG, 1));
		p = q;
	}
	return 0;
}

/* The copy pool outlives a create: allocating (zeroing) fresh pages cost
 * more of the pause than the copy itself, so the last pool is kept, at most
 * COW_COPY_MAX pages, and reused by the next create of the process. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool_cache;
static uint64_t pool_cache_pages;

static uint8_t *pool_get(uint64_t n, uint64_t *cap)
{
	uint8_t *p = NULL;

	pthread_mutex_lock(&pool_lock);
	if (pool_cache && pool_cache_pages >= n) {
		p = pool_cache;
		*cap = pool_cache_pages;
		pool_cache = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	if (p)
		return p;
	*cap = n > 256 ? n : 256; /* at least 1 MiB */
	p = malloc(*cap * PG);
	return p;
}

static void pool_put(uint8_t *p, uint64_t cap)
{
	pthread_mutex_lock(&pool_lock);
	if (!pool_cache || pool_cache_pages < cap) {
		uint8_t *old = pool_cache;

		pool_cache = p;
		pool_cache_pages = cap;
		p = old;
	}
	pthread_mutex_unlock(&pool_lock);
	free(p);
}

/* Pages wanted in all regions, stopping early past COW_COPY_MAX. */
static uint64_t want_count(struct sqb_vm *vm, uint64_t *const want[], uint64_t *total)
{
	uint64_t n = 0;

	*total = 0;
	for (unsigned int r = 0; r < vm->mem.nregions; r++) {
		uint64_t np = vm->mem.regions[r].size / PG;

		*total += np;
		for (uint64_t k = 0; k < (np + 63) / 64 && n <= COW_COPY_MAX; k++)
			n += (uint64_t)__builtin_popcountll(want[r][k]);
	}
	return n;
}

/* Copy mode: every wanted page into one pool now, while the VM is paused;
 * nothing is protected, no thread runs, the guest never faults. */
static int arm_copy(struct sqb_snap_cow *c, struct sqb_vm *vm, uint64_t n)
{
	uint64_t k = 0;

	c->pool = pool_get(n, &c->pool_cap);
	if (!c->pool)
		return -ENOMEM;
	for (unsigned int r = 0; r < vm->mem.nregions; r++) {
		struct cow_region *g = &c->reg[r];

		g->host = vm->mem.regions[r].host;
		g->npages = vm->mem.regions[r].size / PG;
		c->nreg = r + 1; /* g->prot: cleared as copied */
		g->aside = calloc(g->npages ? g->npages : 1, sizeof(*g->aside));
		if (!g->aside)
			return -ENOMEM;
		for (uint64_t w = 0; w < (g->npages + 63) / 64; w++)
			while (g->prot[w] && k < n) {
				uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(g->prot[w]);

				g->aside[p] = c->pool + k++ * PG;
				memcpy(g->aside[p], g->host + p * PG, PG);
				g->prot[w] &= g->prot[w] - 1;
			}
	}
	c->pooled = k;
	sqb_debug("snapshot: %llu pages copied aside at the pause (sparse set, no write-protect)",
		  (unsigned long long)k);
	return 0;
}

/* The userfaultfd in write-protect mode over every region, and the handler
 * thread.  Nothing is protected yet. */
static int cow_open(struct sqb_snap_cow *c, struct sqb_vm *vm)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
					     UFFD_FEATURE_WP_HUGETLBFS_SHMEM};

	/* not user-mode-only: KVM's own accesses to guest memory must fault too */
	c->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (c->uffd < 0 || ioctl(c->uffd, UFFDIO_API, &api))
		return -errno;
	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->evfd < 0)
		return -errno;
	c->nreg = vm->mem.nregions;
	for (unsigned int r = 0; r < c->nreg; r++) {
		struct cow_region *g = &c->reg[r];
		struct uffdio_register reg = {
		    {(uint64_t)(uintptr_t)vm->mem.regions[r].host, vm->mem.regions[r].size},
		    UFFDIO_REGISTER_MODE_WP};

		g->host = vm->mem.regions[r].host;
		g->npages = vm->mem.regions[r].size / PG;
		g->aside = calloc(g->npages ? g->npages : 1, sizeof(*g->aside));
		if (!g->aside)
			return -ENOMEM;
		if (ioctl(c->uffd, UFFDIO_REGISTER, &reg))
			return -errno;
	}
	FORWARD_IF_ERROR(-pthread_create(&c->thr, NULL, cow_thread, c));
	c->thread = 1;
	return 0;
}

/* A new engine owning maps[r] (one bit per page of region r) as the
 * protected set (prot) or a live create's early cover (early); the maps are
 * freed with it, or now if it cannot be made. */
static struct sqb_snap_cow *cow_new(struct sqb_vm *vm, uint64_t *const maps[], int early)
{
	struct sqb_snap_cow *c = calloc(1, sizeof(*c));

	for (unsigned int r = 0; r < vm->mem.nregions; r++) {
		if (!c)
			free(maps[r]);
		else if (early)
			c->reg[r].early = maps[r];
		else
			c->reg[r].prot = maps[r];
	}
	if (!c)
		return NULL;
	c->uffd = c->evfd = -1;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

int sqb_snap_cow_prearm(struct sqb_snap_cow **out, struct sqb_vm *vm, uint64_t *const cover[])
{
	struct sqb_snap_cow *c = cow_new(vm, cover, 1);
	int err;

	if (!c)
		return -ENOMEM;
	c->pre = 1;
	err = cow_open(c, vm);
	for (unsigned int r = 0; r < c->nreg && !err; r++) {
		struct cow_region *g = &c->reg[r];

		g->touched = calloc((g->npages + 63) / 64 ? (g->npages + 63) / 64 : 1, 8);
		if (!g->touched)
			err = -ENOMEM;
	}
	/* the guest runs: a page written from here on is noted (touched) */
	for (unsigned int r = 0; r < c->nreg && !err; r++)
		err = arm_region(c, &c->reg[r], c->reg[r].early);
	if (err) {
		sqb_snap_cow_free(c);
		return err;
	}
	/* SQB_FAULT=live_slow_pause (tests): the guest writes a while before
	 * the pause, so that many protected pages are written meanwhile */
	if (sqb_fault_enabled("live_slow_pause"))
		usleep(300000);
	*out = c;
	return 0;
}

/* A live create in its pause: the pages to save are want[]; those written
 * since the early protection, or outside it, are protected now.  A sparse
 * set is not copied aside here (unlike arm_copy): it is protected already,
 * and a copy costs the pause more than protecting the few pages written. */
static int cow_finish(struct sqb_snap_cow *c, uint64_t *const want[])
{
	uint64_t again = 0;
	int err = 0;

	pthread_mutex_lock(&c->lock);
	c->pre = 0; /* from here a fault on a wanted page copies it aside */
	for (unsigned int r = 0; r < c->nreg; r++) {
		struct cow_region *g = &c->reg[r];
		uint64_t nw = (g->npages + 63) / 64;

		g->prot = want[r]; /* owned from here on */
		if (err)
			continue;
		/* again: wanted and (written since, or never protected) */
		for (uint64_t w = 0; w < nw; w++) {
			g->touched[w] = g->prot[w] & (g->touched[w] | ~g->early[w]);
			again += (uint64_t)__builtin_popcountll(g->touched[w]);
		}
		err = arm_region(c, g, g->touched);
	}
	pthread_mutex_unlock(&c->lock);
	sqb_debug("snapshot: live create: %llu pages protected again at the pause",
		  (unsigned long long)again);
	return err;
}

int sqb_snap_cow_arm(struct sqb_snap_cow **out, struct sqb_vm *vm, uint64_t *const want[],
		     struct sqb_snap_cow *pre)
{
	struct sqb_snap_cow *c;
	int err = 0;
	uint64_t total, n;

	if (pre) {
		err = cow_finish(pre, want);
		if (err) {
			sqb_snap_cow_free(pre);
			return err;
		}
		*out = pre;
		return 0;
	}
	n = want_count(vm, want, &total);
	if (!(c = cow_new(vm, want, 0)))
		return -ENOMEM;
	/* SQB_FAULT=bg_protect (tests): write-protect even a sparse set */
	if (n <= COW_COPY_MAX && n * COW_SPARSE <= total && !sqb_fault_enabled("bg_protect")) {
		err = arm_copy(c, vm, n);
	} else {
		err = cow_open(c, vm);
		for (unsigned int r = 0; r < c->nreg && !err; r++)
			err = arm_region(c, &c->reg[r], c->reg[r].prot);
	}
	if (err) {
		sqb_snap_cow_free(c);
		return err;
	}
	*out = c;
	return 0;
}

int sqb_snap_cow_read(struct sqb_snap_cow *c, unsigned int r, uint64_t first, uint32_t n,
		      const uint8_t *kinds, uint8_t *dst)
{
	struct cow_region *g = &c->reg[r];
	int err = 0;

	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p = first + i;

		if (kinds[i] != SQB_PAGE_DATA)
			continue;
		if (g->aside[p]) {
			memcpy(dst + (uint64_t)i * PG, g->aside[p], PG);
			if (!c->pool)
				free(g->aside[p]);
			g->aside[p] = NULL;
		} else {
			/* still protected: nobody changed it since the pause */
			memcpy(dst + (uint64_t)i * PG, g->host + p * PG, PG);
		}
	}
	/* un-protect what was read, one ioctl per run of protected pages */
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i;

		while (j < n && bit(g->prot, first + j)) {
			g->prot[(first + j) / 64] &= ~(1ull << ((first + j) % 64));
			j++;
		}
		if (j > i && wp(c->uffd, g->host + (first + i) * PG, (uint64_t)(j - i) * PG, 0) &&
		    !err)
			err = -errno;
		i = j > i ? j : i + 1;
	}
	if (c->failed)
		err = -ENOMEM;
	pthread_mutex_unlock(&c->lock);
	return err;
}

uint64_t sqb_snap_cow_copied(struct sqb_snap_cow *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->lock);
	n = c->copied;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void sqb_snap_cow_free(struct sqb_snap_cow *c)
{
	if (!c)
		return;
	if (c->uffd >= 0) {
		/* un-registering un-protects and wakes every waiting fault */
		for (unsigned int r = 0; r < c->nreg; r++) {
			struct uffdio_range rg = {(uint64_t)(uintptr_t)c->reg[r].host,
						  c->reg[r].npages * PG};
			ioctl(c->uffd, UFFDIO_UNREGISTER, &rg);
		}
	}
	if (c->thread) {
		uint64_t one = 1;

		if (write(c->evfd, &one, sizeof(one)) < 0)
			sqb_warn("snapshot: cannot wake the copy-before-write thread");
		pthread_join(c->thr, NULL);
	}
	for (unsigned int r = 0; r < SQB_GMEM_MAX_REGIONS; r++) { /* every map it owns */
		for (uint64_t p = 0; !c->pool && c->reg[r].aside && p < c->reg[r].npages; p++)
			free(c->reg[r].aside[p]);
		free(c->reg[r].aside);
		free(c->reg[r].prot);
		free(c->reg[r].early);
		free(c->reg[r].touched);
	}
	if (c->uffd >= 0)
		close(c->uffd);
	if (c->evfd >= 0)
		close(c->evfd);
	if (c->pool)
		pool_put(c->pool, c->pool_cap);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
