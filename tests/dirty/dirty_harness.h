/* Exactness harness shared by the dirty tests and bench/dirty_bench.c:
 * writer threads (plain stores, kernel writes via read(), alias-mapping
 * writes + sqb_dirty_mark, a tiny KVM guest) race collects; after every
 * epoch the writers pause and a shadow copy built only from reported
 * granules must equal memory.  Misses must be zero; over-reports are
 * counted. */
#ifndef SQB_DIRTY_HARNESS_H
#define SQB_DIRTY_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "squib/dirty.h"

struct hx_opts {
	enum sqb_dirty_backend backend;
	uint64_t granule;
	unsigned pages;	     /* 4 KiB pages of tracked memory (split in two ranges) */
	unsigned threads;    /* host writer threads */
	unsigned epochs;     /* check windows (each ends quiescent) */
	unsigned writes;     /* writes per thread per epoch */
	bool anon;	     /* private anonymous memory (no alias mapping) */
	bool kernel;	     /* some writes are read() from a pipe into the range */
	bool guest;	     /* a tiny KVM guest writes pages too (if the backend sees guests) */
	unsigned fork_every; /* fork a writing child every N epochs (anon only), 0 = never */
	bool unmarked;	     /* negative control: alias writes skip sqb_dirty_mark */
	bool verbose;
};

struct hx_result {
	uint64_t epochs, collects, racing_collects;
	uint64_t host_writes, kernel_writes, alias_writes, guest_writes, child_writes;
	uint64_t misses;  /* changed or written but never reported: must be 0 */
	uint64_t over;	  /* reported but never written */
	uint64_t written; /* granule-epochs written */
	struct sqb_dirty_stats stats;
	char skip[160]; /* non-empty: could not run here, and why */
};

/* xorshift64: the harness's (and dirty_bench's) cheap reproducible PRNG. */
uint64_t hx_rnd(uint64_t *state);

/* 0 on a completed run (check r->misses), -ENOTSUP with r->skip filled when
 * the backend or KVM is unavailable, other negative codes on failure. */
int hx_run(struct hx_result *r, const struct hx_opts *o);

#endif
