/* Private state shared by the dirty tracker core and its backends.  Each
 * backend fills one struct sqb_dirty_ops; dirty_core.c owns the granule
 * bitmap layout, the mark bitmap and the state machine. */
#ifndef SQB_DIRTY_INT_H
#define SQB_DIRTY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "squib/dirty.h"

struct dirty_range {
	uint8_t *host;
	uint64_t gpa;
	uint64_t len;
	uint32_t kvm_slot;
	uint32_t kvm_flags;
	size_t first; /* index of the range's first granule in the epoch bitmap */
	size_t ngran; /* granules in this range */
};

enum dirty_state { DIRTY_OPEN, DIRTY_ARMED, DIRTY_STOPPED, DIRTY_FAILED };

struct sqb_dirty_ops {
	enum sqb_dirty_backend id;
	const char *name;
	unsigned caps;
	int (*probe)(void);			    /* 0 if usable on this host, else -ENOTSUP */
	int (*init)(sqb_dirty *d);		    /* acquire backend resources */
	int (*start)(sqb_dirty *d);		    /* arm all ranges */
	int (*collect)(sqb_dirty *d, uint64_t *bm); /* OR this epoch into bm, re-arm */
	int (*stop)(sqb_dirty *d);		    /* disarm all ranges */
	void (*fini)(sqb_dirty *d);		    /* release; called once, after stop */
	/* exit-driven backends: log and re-grant granule g of r (may be NULL) */
	int (*fault)(sqb_dirty *d, const struct dirty_range *r, size_t g);
};

struct sqb_dirty {
	const struct sqb_dirty_ops *ops;
	uint64_t granule;
	unsigned gshift;
	struct dirty_range ranges[SQB_DIRTY_MAX_RANGES];
	unsigned nranges;
	size_t ngran;
	size_t nwords;
	_Atomic uint64_t *marks;   /* sqb_dirty_mark() bits, drained by every collect */
	_Atomic uint64_t *pending; /* fault bits set by fault-driven backends */
	pthread_mutex_t lock;	   /* serialises start/collect/stop */
	enum dirty_state state;
	int kvm_vm_fd;
	sqb_dirty_protect_fn protect;
	void *protect_ctx;
	_Atomic uint64_t n_faults, n_marked, n_coarsened;
	uint64_t n_collects, n_reported, last_ns;
	void *priv; /* backend private */
};

extern const struct sqb_dirty_ops sqb_dirty_kvm_ops;
extern const struct sqb_dirty_ops sqb_dirty_uffd_wp_ops;
extern const struct sqb_dirty_ops sqb_dirty_uffd_async_ops;
extern const struct sqb_dirty_ops sqb_dirty_mprotect_ops;
extern const struct sqb_dirty_ops sqb_dirty_softdirty_ops;
extern const struct sqb_dirty_ops sqb_dirty_exit_ops;

/* Granule index (global, across ranges) of a host address, or -1. */
static inline long dirty_host_granule(const sqb_dirty *d, uintptr_t a, const struct dirty_range **r)
{
	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *x = &d->ranges[i];
		if (a >= (uintptr_t)x->host && a - (uintptr_t)x->host < x->len) {
			if (r)
				*r = x;
			return (long)(x->first + ((a - (uintptr_t)x->host) >> d->gshift));
		}
	}
	return -1;
}

static inline void dirty_set_bit(_Atomic uint64_t *bm, size_t g)
{
	atomic_fetch_or_explicit(&bm[g / 64], 1ull << (g % 64), memory_order_seq_cst);
}

/* Move every pending fault bit into bm (exchange per word, so a fault that
 * lands after its word was taken stays for the next collect). */
void dirty_drain_pending(sqb_dirty *d, uint64_t *bm);

typedef int (*dirty_run_fn)(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n);

/* Re-arm what bm reports, range by range: fn(d, r, g, n) re-arms granules
 * [g, g+n) of r.  One call per run of set bits while a range has at most
 * ngran/div + 16 runs, else one call for the whole range (cheaper than many
 * runs: see the backends' div).  Returns the first error. */
int dirty_rearm(sqb_dirty *d, const uint64_t *bm, size_t div, dirty_run_fn fn);

#endif
