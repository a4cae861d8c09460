/* Dirty tracker core: option checking, the epoch bitmap layout of
 * include/squib/dirty.h (ranges in order, one bit per granule, LSB first),
 * the lock-free mark bitmap and the start/collect/stop state machine.  The
 * mechanisms live behind struct sqb_dirty_ops in the dirty_*.c backends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dirty_int.h"
#include "log.h"
#include "squib/errors.h"

/* Index = enum sqb_dirty_backend; AUTO tries auto_order[] instead. */
static const struct sqb_dirty_ops *const backends[SQB_DIRTY_BACKEND_MAX_] = {
    [SQB_DIRTY_KVM] = &sqb_dirty_kvm_ops,
    [SQB_DIRTY_UFFD_WP] = &sqb_dirty_uffd_wp_ops,
    [SQB_DIRTY_UFFD_ASYNC] = &sqb_dirty_uffd_async_ops,
    [SQB_DIRTY_MPROTECT] = &sqb_dirty_mprotect_ops,
    [SQB_DIRTY_SOFTDIRTY] = &sqb_dirty_softdirty_ops,
    [SQB_DIRTY_EXIT] = &sqb_dirty_exit_ops,
};

static const enum sqb_dirty_backend auto_order[] = {
    SQB_DIRTY_UFFD_ASYNC,
    SQB_DIRTY_UFFD_WP,
    SQB_DIRTY_MPROTECT,
};

const char *sqb_dirty_backend_name(enum sqb_dirty_backend b)
{
	if (b == SQB_DIRTY_AUTO)
		return "auto";
	if ((unsigned)b < SQB_DIRTY_BACKEND_MAX_ && backends[b])
		return backends[b]->name;
	return "unknown";
}

int sqb_dirty_caps(unsigned *caps, enum sqb_dirty_backend b)
{
	if (!caps || b <= SQB_DIRTY_AUTO || b >= SQB_DIRTY_BACKEND_MAX_ || !backends[b])
		return -EINVAL;
	*caps = backends[b]->caps;
	return backends[b]->probe();
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int check_ranges(sqb_dirty *d, const struct sqb_dirty_opts *o)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	RETURN_ERROR_IF(!o->ranges || o->nranges == 0, -EINVAL, "no ranges");
	RETURN_ERROR_IF(o->nranges > SQB_DIRTY_MAX_RANGES, -SQB_ELIMIT, "too many ranges");
	for (unsigned i = 0; i < o->nranges; i++) {
		const struct sqb_dirty_range *r = &o->ranges[i];
		struct dirty_range *x = &d->ranges[i];

		RETURN_ERROR_IF(!r->host || ((uintptr_t)r->host & (page - 1)), -EINVAL,
				"host not page aligned");
		RETURN_ERROR_IF(r->len == 0 || (r->len | r->gpa) & (d->granule - 1), -EINVAL,
				"gpa/len not granule multiples");
		RETURN_ERROR_IF(r->gpa + r->len < r->gpa, -EINVAL, "range wraps");
		for (unsigned j = 0; j < i; j++) {
			const struct sqb_dirty_range *q = &o->ranges[j];
			RETURN_ERROR_IF(r->gpa < q->gpa + q->len && q->gpa < r->gpa + r->len,
					-EINVAL, "ranges overlap in gpa");
			RETURN_ERROR_IF((uintptr_t)r->host < (uintptr_t)q->host + q->len &&
					    (uintptr_t)q->host < (uintptr_t)r->host + r->len,
					-EINVAL, "ranges overlap in host memory");
		}
		x->host = r->host;
		x->gpa = r->gpa;
		x->len = r->len;
		x->kvm_slot = r->kvm_slot;
		x->kvm_flags = r->kvm_flags;
		x->first = d->ngran;
		x->ngran = r->len >> d->gshift;
		d->ngran += x->ngran;
	}
	d->nranges = o->nranges;
	d->nwords = SQB_DIRTY_BITMAP_WORDS(d->ngran);
	return 0;
}

static int open_backend(sqb_dirty *d, enum sqb_dirty_backend b)
{
	int err;

	if ((unsigned)b >= SQB_DIRTY_BACKEND_MAX_ || !backends[b])
		return -EINVAL;
	d->ops = backends[b];
	err = d->ops->probe();
	if (err) {
		sqb_warn("dirty: backend %s unavailable on this host", d->ops->name);
		return err;
	}
	err = d->ops->init(d);
	if (err)
		sqb_debug("dirty: backend %s init failed: %s", d->ops->name, sqb_strerror(err));
	return err;
}

static int open_auto(sqb_dirty *d)
{
	int err = -ENOTSUP;

	if (d->kvm_vm_fd >= 0)
		return open_backend(d, SQB_DIRTY_KVM);
	for (size_t i = 0; i < sizeof(auto_order) / sizeof(auto_order[0]); i++) {
		if (backends[auto_order[i]]->probe() != 0)
			continue; /* quietly: the next one may do */
		err = open_backend(d, auto_order[i]);
		if (err == 0)
			return 0;
	}
	return err;
}

int sqb_dirty_open(sqb_dirty **out, const struct sqb_dirty_opts *o)
{
	sqb_dirty *d;
	int err;

	if (!out || !o)
		return -EINVAL;
	*out = NULL;
	RETURN_ERROR_IF(o->version != SQB_DIRTY_OPTS_VERSION, -SQB_EVERSION, "opts version");
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->granule = o->granule ? o->granule : SQB_DIRTY_GRANULE_DEFAULT;
	d->kvm_vm_fd = o->kvm_vm_fd;
	d->protect = o->protect;
	d->protect_ctx = o->protect_ctx;
	err = -EINVAL;
	if ((d->granule & (d->granule - 1)) || d->granule < (uint64_t)sysconf(_SC_PAGESIZE) ||
	    d->granule > (2u << 20))
		goto err_free;
	d->gshift = (unsigned)__builtin_ctzll(d->granule);
	err = check_ranges(d, o);
	if (err)
		goto err_free;
	err = -ENOMEM;
	d->marks = calloc(d->nwords, sizeof(uint64_t));
	d->pending = calloc(d->nwords, sizeof(uint64_t));
	if (!d->marks || !d->pending)
		goto err_free;
	pthread_mutex_init(&d->lock, NULL);
	err = o->backend == SQB_DIRTY_AUTO ? open_auto(d) : open_backend(d, o->backend);
	if (err)
		goto err_mutex;
	d->state = DIRTY_OPEN;
	*out = d;
	return 0;

err_mutex:
	pthread_mutex_destroy(&d->lock);
err_free:
	free((void *)d->marks);
	free((void *)d->pending);
	free(d);
	return err;
}

int sqb_dirty_start(sqb_dirty *d)
{
	int err;

	if (!d)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	err = -SQB_ESTATE;
	if (d->state == DIRTY_OPEN || d->state == DIRTY_STOPPED) {
		/* Faults from a previous armed period belong to no epoch now. */
		for (size_t w = 0; w < d->nwords; w++)
			atomic_store(&d->pending[w], 0);
		err = d->ops->start(d);
		d->state = err ? DIRTY_FAILED : DIRTY_ARMED;
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

void dirty_drain_pending(sqb_dirty *d, uint64_t *bm)
{
	for (size_t w = 0; w < d->nwords; w++) {
		if (atomic_load_explicit(&d->pending[w], memory_order_relaxed))
			bm[w] |= atomic_exchange(&d->pending[w], 0);
	}
}

int sqb_dirty_collect(sqb_dirty *d, uint64_t *bm, size_t nwords, uint64_t *ndirty)
{
	uint64_t t0 = now_ns(), n = 0;
	int err;

	if (!d || !bm || nwords < d->nwords)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	err = -SQB_ESTATE;
	if (d->state != DIRTY_ARMED)
		goto out;
	memset(bm, 0, d->nwords * sizeof(uint64_t));
	err = d->ops->collect(d, bm);
	if (err) {
		sqb_debug("dirty: %s collect failed: %s", d->ops->name, sqb_strerror(err));
		d->state = DIRTY_FAILED;
		goto out;
	}
	/* After the backend: a mark racing us lands either here or next time,
	 * and a mark is only issued after its write completed. */
	for (size_t w = 0; w < d->nwords; w++) {
		if (atomic_load_explicit(&d->marks[w], memory_order_relaxed))
			bm[w] |= atomic_exchange(&d->marks[w], 0);
		n += (uint64_t)__builtin_popcountll(bm[w]);
	}
	d->n_collects++;
	d->n_reported += n;
	d->last_ns = now_ns() - t0;
	if (ndirty)
		*ndirty = n;
out:
	pthread_mutex_unlock(&d->lock);
	return err;
}

int sqb_dirty_mark(sqb_dirty *d, uint64_t gpa, uint64_t len)
{
	if (!d)
		return -EINVAL;
	if (len == 0)
		return 0;
	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];
		size_t g, last;

		if (gpa < r->gpa || gpa - r->gpa >= r->len)
			continue;
		if (len > r->len - (gpa - r->gpa)) /* spills into the next range? */
			return -SQB_ENOTFOUND;
		g = r->first + ((gpa - r->gpa) >> d->gshift);
		last = r->first + ((gpa - r->gpa + len - 1) >> d->gshift);
		for (; g <= last; g++)
			dirty_set_bit(d->marks, g);
		atomic_fetch_add_explicit(&d->n_marked, 1, memory_order_relaxed);
		return 0;
	}
	return -SQB_ENOTFOUND;
}

int sqb_dirty_fault(sqb_dirty *d, uint64_t gpa)
{
	if (!d)
		return -EINVAL;
	if (!d->ops->fault)
		return -ENOTSUP;
	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->len)
			return d->ops->fault(d, r, (size_t)((gpa - r->gpa) >> d->gshift));
	}
	return 0;
}

int sqb_dirty_stop(sqb_dirty *d)
{
	int err = 0;

	if (!d)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (d->state == DIRTY_ARMED || d->state == DIRTY_FAILED) {
		err = d->ops->stop(d);
		d->state = DIRTY_STOPPED;
	} else {
		err = -SQB_ESTATE;
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

void sqb_dirty_free(sqb_dirty *d)
{
	if (!d)
		return;
	if (d->state == DIRTY_ARMED || d->state == DIRTY_FAILED)
		sqb_dirty_stop(d);
	d->ops->fini(d);
	pthread_mutex_destroy(&d->lock);
	free((void *)d->marks);
	free((void *)d->pending);
	free(d);
}

int sqb_dirty_stats(const sqb_dirty *d, struct sqb_dirty_stats *out)
{
	sqb_dirty *m = (sqb_dirty *)d; /* the lock only orders reads against collect */

	if (!d || !out)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	out->faults = atomic_load(&m->n_faults);
	out->marked = atomic_load(&m->n_marked);
	out->coarsened = atomic_load(&m->n_coarsened);
	out->collects = m->n_collects;
	out->reported = m->n_reported;
	out->last_collect_ns = m->last_ns;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

size_t sqb_dirty_ngranules(const sqb_dirty *d)
{
	return d ? d->ngran : 0;
}

uint64_t sqb_dirty_granule(const sqb_dirty *d)
{
	return d ? d->granule : 0;
}

enum sqb_dirty_backend sqb_dirty_backend_of(const sqb_dirty *d)
{
	return d ? d->ops->id : SQB_DIRTY_AUTO;
}

/* Next set bit of bm in [g, end), or end. */
static size_t next_bit(const uint64_t *bm, size_t g, size_t end, bool set)
{
	while (g < end) {
		uint64_t w = bm[g / 64];

		if (!set)
			w = ~w;
		w >>= g % 64;
		if (w) {
			g += (size_t)__builtin_ctzll(w);
			return g < end ? g : end;
		}
		g = (g / 64 + 1) * 64;
	}
	return end;
}

static int for_each_run(sqb_dirty *d, const struct dirty_range *r, const uint64_t *bm,
			dirty_run_fn fn)
{
	size_t end = r->first + r->ngran, g = r->first;

	while ((g = next_bit(bm, g, end, true)) < end) {
		size_t e = next_bit(bm, g, end, false);
		int err = fn(d, r, g - r->first, e - g);

		if (err < 0)
			return err;
		g = e;
	}
	return 0;
}

static size_t count_runs(const struct dirty_range *r, const uint64_t *bm)
{
	size_t runs = 0, end = r->first + r->ngran;

	for (size_t w = r->first / 64; w * 64 < end; w++) {
		uint64_t prev = w ? bm[w - 1] >> 63 : 0, mask = ~0ull;
		uint64_t starts = bm[w] & ~((bm[w] << 1) | prev);

		if (w == r->first / 64) { /* a run may start at the range start */
			mask &= ~0ull << (r->first % 64);
			starts |= bm[w] & (1ull << (r->first % 64));
		}
		if ((w + 1) * 64 > end)
			mask &= ~0ull >> (64 - end % 64);
		runs += (size_t)__builtin_popcountll(starts & mask);
	}
	return runs;
}

int dirty_rearm(sqb_dirty *d, const uint64_t *bm, size_t div, dirty_run_fn fn)
{
	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];

		if (count_runs(r, bm) <= r->ngran / div + 16)
			FORWARD_IF_ERROR(for_each_run(d, r, bm, fn));
		else
			FORWARD_IF_ERROR(fn(d, r, 0, r->ngran));
	}
	return 0;
}
