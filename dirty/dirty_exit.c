/* exit-driven backend, the shape of macOS hvf tracking: the caller's
 * protect callback strips guest write permission (hv_vm_protect), its vCPU
 * loop reports each write fault through sqb_dirty_fault(), which logs the
 * granule and re-grants it.  Collect drains and re-protects like mprotect. */
#include <errno.h>

#include "dirty_int.h"
#include "log.h"

static int ex_probe(void)
{
	return 0; /* runs wherever the caller can supply a protect callback */
}

static int ex_init(sqb_dirty *d)
{
	RETURN_ERROR_IF(!d->protect, -EINVAL, "exit backend needs opts.protect");
	return 0;
}

static int ex_protect(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n, int w)
{
	return d->protect(d->protect_ctx, r->gpa + (g << d->gshift), (uint64_t)n << d->gshift, w);
}

static int ex_all(sqb_dirty *d, int writable)
{
	for (unsigned i = 0; i < d->nranges; i++)
		FORWARD_IF_ERROR(ex_protect(d, &d->ranges[i], 0, d->ranges[i].ngran, writable));
	return 0;
}

static int ex_start(sqb_dirty *d)
{
	return ex_all(d, 0);
}

static int ex_stop(sqb_dirty *d)
{
	return ex_all(d, 1);
}

/* Bit before and after the grant, as in the mprotect backend: every write
 * to a writable granule follows a set bit, and a collect that drained and
 * re-protected between the two leaves the bit set for the next epoch. */
static int ex_fault(sqb_dirty *d, const struct dirty_range *r, size_t g)
{
	int err;

	dirty_set_bit(d->pending, r->first + g);
	err = ex_protect(d, r, g, 1, 1);
	dirty_set_bit(d->pending, r->first + g);
	if (err)
		return err;
	atomic_fetch_add_explicit(&d->n_faults, 1, memory_order_relaxed);
	return 1;
}

static int ex_reprotect_run(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n)
{
	return ex_protect(d, r, g, n, 0);
}

static int ex_collect(sqb_dirty *d, uint64_t *bm)
{
	dirty_drain_pending(d, bm);
	return dirty_rearm(d, bm, 32, ex_reprotect_run);
}

static void ex_fini(sqb_dirty *d)
{
	(void)d;
}

const struct sqb_dirty_ops sqb_dirty_exit_ops = {
    .id = SQB_DIRTY_EXIT,
    .name = "exit",
    .caps = SQB_DIRTY_SEES_GUEST,
    .probe = ex_probe,
    .init = ex_init,
    .start = ex_start,
    .collect = ex_collect,
    .stop = ex_stop,
    .fini = ex_fini,
    .fault = ex_fault,
};
