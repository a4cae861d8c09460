/* mprotect backend: ranges are PROT_READ while armed; a SIGSEGV handler
 * logs the faulting granule and re-grants it PROT_READ|PROT_WRITE.  Sees host
 * threads only (a syscall writing into a read-only page fails with EFAULT).
 * Survives vm.max_map_count by widening re-grants (docs/dirty.md). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dirty_int.h"
#include "log.h"
#include "squib/errors.h"

#define MP_MAX_TRACKERS 32
/* A re-grant that hits the VMA limit widens to this many granules, then to
 * the whole segment: fewer, larger VMAs at the price of over-reporting. */
#define MP_COARSE_GRANULES 512

/* Host-contiguous ranges form one segment.  Last-resort grants and
 * re-protects cover a whole segment: its edges border memory that is not
 * tracked (already writable, so nothing splits) rather than another range
 * (where a whole-range call could need a split at the VMA limit). */
struct mp_priv {
	unsigned seg_of[SQB_DIRTY_MAX_RANGES];
	uint8_t *seg_host[SQB_DIRTY_MAX_RANGES];
	size_t seg_len[SQB_DIRTY_MAX_RANGES];
	unsigned nseg;
};

static _Atomic(sqb_dirty *) mp_reg[MP_MAX_TRACKERS];
static atomic_int mp_inflight;
static pthread_mutex_t mp_install_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction mp_old;

static int mp_probe(void)
{
	return 0;
}

/* Set the bits of [g, g+n) (range-relative), make it writable, set them again.
 * Setting before the grant means every write to a writable page follows a
 * set bit; setting after covers a collect that drained and re-protected in
 * between (see docs/dirty.md, "why nothing is lost"). */
static int mp_grant_bits(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n)
{
	int err;

	for (size_t i = 0; i < n; i++)
		dirty_set_bit(d->pending, r->first + g + i);
	err = mprotect(r->host + (g << d->gshift), n << d->gshift, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < n; i++)
		dirty_set_bit(d->pending, r->first + g + i);
	return err;
}

static void mp_set_segment(sqb_dirty *d, unsigned s)
{
	const struct mp_priv *p = d->priv;

	for (unsigned i = 0; i < d->nranges; i++)
		for (size_t g = 0; p->seg_of[i] == s && g < d->ranges[i].ngran; g++)
			dirty_set_bit(d->pending, d->ranges[i].first + g);
}

/* The same set-grant-set order for every range of r's segment. */
static int mp_grant_segment(sqb_dirty *d, const struct dirty_range *r)
{
	struct mp_priv *p = d->priv;
	unsigned s = p->seg_of[r - d->ranges];
	int err;

	mp_set_segment(d, s);
	err = mprotect(p->seg_host[s], p->seg_len[s], PROT_READ | PROT_WRITE);
	mp_set_segment(d, s);
	return err;
}

static bool mp_handle(sqb_dirty *d, uintptr_t addr)
{
	const struct dirty_range *r;
	long gl = dirty_host_granule(d, addr, &r);
	size_t g, blk;

	if (gl < 0)
		return false;
	g = (size_t)gl - r->first;
	if (mp_grant_bits(d, r, g, 1) == 0) {
		atomic_fetch_add_explicit(&d->n_faults, 1, memory_order_relaxed);
		return true;
	}
	/* ENOMEM: the split would exceed vm.max_map_count.  A wider grant
	 * merges neighbouring VMAs instead of splitting. */
	atomic_fetch_add_explicit(&d->n_coarsened, 1, memory_order_relaxed);
	blk = g - g % MP_COARSE_GRANULES;
	if (mp_grant_bits(d, r, blk,
			  r->ngran - blk < MP_COARSE_GRANULES ? r->ngran - blk
							      : MP_COARSE_GRANULES) == 0)
		return true;
	if (mp_grant_segment(d, r) == 0)
		return true;
	/* Cannot make the page writable: let the fault kill the process like
	 * any unrecoverable segfault rather than spin on it. */
	signal(SIGSEGV, SIG_DFL);
	return true;
}

static void mp_sigsegv(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	bool handled = false;

	atomic_fetch_add(&mp_inflight, 1);
	if (si->si_code == SEGV_ACCERR) {
		for (int i = 0; i < MP_MAX_TRACKERS && !handled; i++) {
			sqb_dirty *d = atomic_load(&mp_reg[i]);

			if (d)
				handled = mp_handle(d, (uintptr_t)si->si_addr);
		}
	}
	atomic_fetch_sub(&mp_inflight, 1);
	errno = saved;
	if (handled)
		return;
	if (mp_old.sa_flags & SA_SIGINFO) {
		mp_old.sa_sigaction(sig, si, uc);
	} else if (mp_old.sa_handler != SIG_DFL && mp_old.sa_handler != SIG_IGN) {
		mp_old.sa_handler(sig);
	} else {
		signal(SIGSEGV, SIG_DFL); /* the faulting access repeats and kills us */
	}
}

/* (Re)install the handler unless it is ours.  Checked at every init and
 * start, as test frameworks and runtimes replace SIGSEGV handlers freely;
 * whoever replaces it while a tracker is armed must chain to it. */
static int mp_ensure_handler(void)
{
	struct sigaction sa, cur;
	int err = 0;

	pthread_mutex_lock(&mp_install_lock);
	if (sigaction(SIGSEGV, NULL, &cur) != 0) {
		err = -errno;
	} else if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != mp_sigsegv) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = mp_sigsegv;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, &mp_old) != 0)
			err = -errno;
	}
	pthread_mutex_unlock(&mp_install_lock);
	return err;
}

static void mp_segments(sqb_dirty *d, struct mp_priv *p)
{
	unsigned order[SQB_DIRTY_MAX_RANGES], n = d->nranges, nseg = 0;

	for (unsigned i = 0; i < n; i++) { /* insertion sort by host address */
		unsigned j = i;

		while (j > 0 && d->ranges[order[j - 1]].host > d->ranges[i].host) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (unsigned k = 0; k < n; k++) {
		const struct dirty_range *r = &d->ranges[order[k]];

		if (k == 0 || p->seg_host[nseg - 1] + p->seg_len[nseg - 1] != r->host) {
			p->seg_host[nseg] = r->host;
			p->seg_len[nseg++] = 0;
		}
		p->seg_len[nseg - 1] += r->len;
		p->seg_of[order[k]] = nseg - 1;
	}
	p->nseg = nseg;
}

static int mp_init(sqb_dirty *d)
{
	int err = mp_ensure_handler();

	if (err)
		return err;
	d->priv = calloc(1, sizeof(struct mp_priv));
	if (!d->priv)
		return -ENOMEM;
	mp_segments(d, d->priv);
	for (int i = 0; i < MP_MAX_TRACKERS; i++) {
		sqb_dirty *expect = NULL;

		if (atomic_compare_exchange_strong(&mp_reg[i], &expect, d))
			return 0;
	}
	free(d->priv);
	d->priv = NULL;
	return -SQB_ELIMIT;
}

static int mp_protect_all(sqb_dirty *d, int prot)
{
	for (unsigned i = 0; i < d->nranges; i++)
		if (mprotect(d->ranges[i].host, d->ranges[i].len, prot) != 0)
			return -errno;
	return 0;
}

static int mp_start(sqb_dirty *d)
{
	FORWARD_IF_ERROR(mp_ensure_handler());
	return mp_protect_all(d, PROT_READ);
}

static int mp_reprotect_run(sqb_dirty *d, const struct dirty_range *r, size_t g, size_t n)
{
	return mprotect(r->host + (g << d->gshift), n << d->gshift, PROT_READ) ? -errno : 0;
}

static int mp_collect(sqb_dirty *d, uint64_t *bm)
{
	struct mp_priv *p = d->priv;
	int err;

	/* Drain first, re-protect second: a write between the two lands on a
	 * page still writable and is part of this epoch's copy; after the
	 * re-protect it faults and sets a bit for the next epoch.  Many runs:
	 * one whole-range call is cheaper (dirty_bench: ~3 us per run with
	 * VMA merging, ~75 ns per populated page for the range). */
	dirty_drain_pending(d, bm);
	err = dirty_rearm(d, bm, 32, mp_reprotect_run);
	/* At the VMA limit: whole segments merge VMAs and never split. */
	for (unsigned s = 0; err == -ENOMEM && s < p->nseg; s++)
		if (mprotect(p->seg_host[s], p->seg_len[s], PROT_READ) != 0)
			return -errno;
	return err == -ENOMEM ? 0 : err;
}

static int mp_stop(sqb_dirty *d)
{
	return mp_protect_all(d, PROT_READ | PROT_WRITE);
}

static void mp_fini(sqb_dirty *d)
{
	for (int i = 0; i < MP_MAX_TRACKERS; i++) {
		sqb_dirty *expect = d;

		atomic_compare_exchange_strong(&mp_reg[i], &expect, NULL);
	}
	/* A handler that loaded d before it left the table may still run. */
	while (atomic_load(&mp_inflight) != 0)
		sched_yield();
	free(d->priv);
	d->priv = NULL;
}

const struct sqb_dirty_ops sqb_dirty_mprotect_ops = {
    .id = SQB_DIRTY_MPROTECT,
    .name = "mprotect",
    .caps = SQB_DIRTY_SEES_HOST,
    .probe = mp_probe,
    .init = mp_init,
    .start = mp_start,
    .collect = mp_collect,
    .stop = mp_stop,
    .fini = mp_fini,
};
