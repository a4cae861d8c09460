/* Postcopy engine shared by every fault source: the handler thread serves
 * faults (and fetch requests) as they come; filler threads stream the other
 * blocks and a prefetch thread the working set.  While they install, the
 * handler reads events under a write lock they hold for reading, so a REMOVE
 * is always marked before any later install (docs/restore.md, "lazy"). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "restore_int.h"

struct hstate {
	uint64_t *pending; /* faults that met -EAGAIN, retried after the next read */
	size_t npend, cap;
};

/* Append v to a growable array; -ENOMEM leaves it unchanged. */
static int q_push(uint64_t **q, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		uint64_t *g = realloc(*q, c * sizeof(*g));

		if (!g)
			return -ENOMEM;
		*q = g;
		*cap = c;
	}
	(*q)[(*n)++] = v;
	return 0;
}

static void block_check_complete(sqb_restore *rs, struct rs_range *rg, uint64_t off)
{
	uint64_t blk = rg->blk0 + off / RS_BLOCK, boff = blk - rg->blk0;
	uint64_t start = boff * RS_BLOCK,
		 len = rg->size - start < RS_BLOCK ? rg->size - start : RS_BLOCK;
	uint64_t pg = rg->pg0 + start / RS_HPAGE;
	uint8_t expect = 0;

	/* a page dropped by REMOVE is settled: it reads zero when touched */
	for (uint64_t i = 0; i < len / RS_HPAGE; i++)
		if (!rs_bit(rs->pg_present, pg + i) && !rs_bit(rs->pg_removed, pg + i))
			return;
	if (atomic_compare_exchange_strong(&rs->blk_state[blk], &expect, 1) &&
	    atomic_fetch_add(&rs->blocks_present, 1) + 1 == rs->nblk) {
		atomic_store(&rs->done, 1);
		pthread_mutex_lock(&rs->lock);
		pthread_cond_broadcast(&rs->cond); /* a filler reports it (worker_main) */
		pthread_mutex_unlock(&rs->lock);
	}
}

/* A source without EEXIST protection (signal mode: memcpy through the
 * alias) must never fill a page twice, or a guest write made after the first
 * fill would be lost: each page is claimed once.  Returns a mask of the pages
 * of [pg, pg+n) (n <= 64) that this caller may fill. */
static uint64_t claim(sqb_restore *rs, uint64_t pg, uint64_t n)
{
	uint64_t mine = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t bit = 1ull << ((pg + i) % 64);

		if (rs_bit(rs->pg_present, pg + i))
			continue;
		if (!(atomic_fetch_or(&rs->pg_claim[(pg + i) / 64], bit) & bit))
			mine |= 1ull << i;
	}
	return mine;
}

/* 0 skip, 1 install zeros, 2 install data.  Removed pages are filled (with
 * zeros) only when a fault asks for them: the balloon got them back. */
static int page_class(sqb_restore *rs, uint64_t pg, uint64_t i, uint64_t mine, int fault)
{
	if (rs->pg_claim && !(mine >> i & 1))
		return 0;
	if (rs_bit(rs->pg_present, pg + i))
		return 0;
	if (rs_bit(rs->pg_removed, pg + i))
		return fault ? 1 : 0;
	return 2;
}

/* Install [off, off+len) of rg from data (NULL: zeros), page run by page run:
 * present pages are skipped, removed pages become zero when zero_removed
 * (a fault on them) and stay missing otherwise, the rest get data.
 * Returns 0, 1 if some page turned out to exist already, or -errno. */
static int put_range_x(sqb_restore *rs, struct rs_range *rg, uint64_t off, uint64_t len,
		       const uint8_t *data, int zero_removed)
{
	uint64_t pg = rg->pg0 + off / RS_HPAGE, n = len / RS_HPAGE;
	uint64_t mine = rs->pg_claim ? claim(rs, pg, n) : 0;
	int any_exist = 0;

	for (uint64_t i = 0; i < n;) {
		int cls = page_class(rs, pg, i, mine, zero_removed);
		uint64_t j = i + 1;
		int err = 0;

		while (j < n && page_class(rs, pg, j, mine, zero_removed) == cls)
			j++;
		if (cls == 1 || (cls == 2 && !data))
			err = rs->fs->ops->zero(rs->fs, rg, off + i * RS_HPAGE, (j - i) * RS_HPAGE);
		else if (cls == 2)
			err = rs->fs->ops->install(rs->fs, rg, off + i * RS_HPAGE,
						   data + i * RS_HPAGE, (j - i) * RS_HPAGE);
		if (err < 0)
			return err;
		any_exist |= err;
		for (uint64_t k = i; k < j && cls; k++) {
			if (cls == 1)
				rs_bit_clear(rs->pg_removed, pg + k);
			rs_bit_set(rs->pg_present, pg + k);
		}
		i = j;
	}
	block_check_complete(rs, rg, off);
	if (rs->fs->ops->wake && atomic_load(&rs->waiters)) {
		atomic_fetch_add(&rs->gen, 1);
		rs->fs->ops->wake(rs->fs, 0, 0);
	}
	return any_exist;
}

static int put_range(sqb_restore *rs, struct rs_range *rg, uint64_t off, uint64_t len,
		     const uint8_t *data)
{
	return put_range_x(rs, rg, off, len, data, 0);
}

/* Does [off, off+len) hold a page that is neither resident nor dropped? */
static int block_missing(sqb_restore *rs, struct rs_range *rg, uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < len / RS_HPAGE; i++) {
		uint64_t pg = rg->pg0 + off / RS_HPAGE + i;

		if (!rs_bit(rs->pg_present, pg) && !rs_bit(rs->pg_removed, pg))
			return 1;
	}
	return 0;
}

/* Decode and install block blk (the handler's own path). */
static int serve_block(sqb_restore *rs, uint64_t blk)
{
	uint64_t off, len;
	struct rs_range *rg = rs_block_range(rs, blk, &off);
	struct sqb_diag d = {0};
	uint64_t t0;
	int err;

	len = rg->size - off < RS_BLOCK ? rg->size - off : RS_BLOCK;
	if (!block_missing(rs, rg, off, len))
		return 0;
	if (rs_block_is_zero(rs, blk))
		return put_range(rs, rg, off, len, NULL);
	t0 = rs_now_ns();
	rs->hbuf_blk = 0;
	err = rs_decode_block(rs, blk, rs->hbuf, &len, &d);
	rs->dec_ns += rs_now_ns() - t0;
	if (err)
		return rs_fail(rs, err, &d);
	return put_range(rs, rg, off, len, rs->hbuf);
}

static void record(sqb_restore *rs, uint64_t gpa)
{
	pthread_mutex_lock(&rs->lock);
	if (rs->nrec == rs->caprec) {
		size_t cap = rs->caprec ? rs->caprec * 2 : 4096;
		uint64_t *n = realloc(rs->rec, cap * sizeof(*n));

		if (!n) { /* the working set is a hint: losing its tail is harmless */
			pthread_mutex_unlock(&rs->lock);
			return;
		}
		rs->rec = n;
		rs->caprec = cap;
	}
	rs->rec[rs->nrec++] = gpa;
	pthread_mutex_unlock(&rs->lock);
}

/* One fault at host address addr.  Returns -EAGAIN to be retried. */
static int serve_fault(sqb_restore *rs, uint64_t addr, int retry)
{
	uint64_t off;
	struct rs_range *rg = rs_addr_range(rs, addr, &off);
	uint64_t pg;
	int err;

	if (!rg)
		return 0;
	pg = rg->pg0 + off / RS_HPAGE;
	if (rs_bit(rs->pg_present, pg))
		err = 1;
	else if (rs_bit(rs->pg_removed, pg))
		err = put_range_x(rs, rg, off & ~(uint64_t)(RS_HPAGE - 1), RS_HPAGE, NULL, 1);
	else if (rs->record) {
		uint64_t poff = off - off % rs->gps, blk = rg->blk0 + off / RS_BLOCK, len;
		struct sqb_diag d = {0};
		uint64_t t0 = rs_now_ns();

		/* page-granular faults: keep the last decoded block, the next
		 * fault is often in it */
		if (rs->hbuf_blk != blk + 1) {
			rs->hbuf_blk = 0;
			err = rs_decode_block(rs, blk, rs->hbuf, &len, &d);
			rs->dec_ns += rs_now_ns() - t0;
			if (err)
				return rs_fail(rs, err, &d);
			rs->hbuf_blk = blk + 1;
		}
		/* record before the install wakes the thread: whoever saves
		 * the working set after the access must find it */
		if (!retry)
			record(rs, rg->gpa + poff);
		err = put_range(rs, rg, poff, rs->gps, rs->hbuf + poff % RS_BLOCK);
	} else if (rs->ws_idx && rs->ws_idx[pg]) {
		/* a working-set page the prefetch has not reached: its bytes
		 * are in memory; install it (waking the thread), then the next
		 * pages of the recorded order, where the guest is heading */
		uint64_t poff = off - off % rs->gps, k = rs->ws_idx[pg] - 1;

		err = put_range(rs, rg, poff, rs->gps, rs->ws_data + k * rs->gps);
		for (uint64_t j = k + 1; err >= 0 && j < k + RS_WS_AHEAD && j < rs->nwspg; j++) {
			uint64_t o2;
			struct rs_range *r2 = rs_gpa_range(rs, rs->ws_gpa[j], &o2);

			if (r2 && put_range(rs, r2, o2, rs->gps, rs->ws_data + j * rs->gps) < 0)
				break; /* a hint: the prefetch thread or a fault will do it */
		}
	} else {
		err = serve_block(rs, rg->blk0 + off / RS_BLOCK);
	}
	if (err == 1 && rs->fs->ops->wake)
		rs->fs->ops->wake(rs->fs, addr & ~(uint64_t)(RS_HPAGE - 1), RS_HPAGE);
	return err < 0 ? err : 0;
}

static void mark_removed(sqb_restore *rs, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < rs->nrg; i++) {
		struct rs_range *rg = &rs->rg[i];
		uint64_t lo = start > rg->host ? start : rg->host;
		uint64_t hi = end < rg->host + rg->size ? end : rg->host + rg->size;

		for (uint64_t a = lo; a < hi; a += RS_HPAGE) {
			uint64_t pg = rg->pg0 + (a - rg->host) / RS_HPAGE;

			/* the block stays settled: this page now reads zero */
			if (!rs_bit(rs->pg_present, pg))
				atomic_fetch_add(&rs->removed_unread, 1); /* never read */
			rs_bit_clear(rs->pg_present, pg);
			rs_bit_set(rs->pg_removed, pg);
			atomic_fetch_add(&rs->removed, 1);
		}
	}
}

static void sample(sqb_restore *rs, uint64_t ns, uint64_t src_ns)
{
	size_t i;

	if (!rs->samples) {
		rs->samples = malloc(RS_MAX_SAMPLES * sizeof(*rs->samples));
		rs->samples_inst = malloc(RS_MAX_SAMPLES * sizeof(*rs->samples_inst));
		if (!rs->samples || !rs->samples_inst)
			return;
	}
	src_ns = src_ns < ns ? src_ns : ns;
	pthread_mutex_lock(&rs->lock);
	i = rs->nsamples % RS_MAX_SAMPLES; /* after the first 1M, overwrite the oldest */
	rs->samples[i] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	rs->samples_inst[i] = ns - src_ns > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns - src_ns);
	if (rs->nsamples < RS_MAX_SAMPLES)
		rs->nsamples++;
	pthread_mutex_unlock(&rs->lock);
}

/* Install up to one block's worth of the working set.  1 if work remains.
 * buf: decode scratch; locked: called by the prefetch thread. */
static int ws_step(sqb_restore *rs, uint8_t *buf, int locked)
{
	while (rs->ws_i < rs->nws) {
		const struct sqb_wset_range *w = &rs->ws[rs->ws_i];
		uint64_t gpa = w->gpa + rs->ws_page * rs->gps;
		uint64_t n = w->pages - rs->ws_page, len, off = 0;
		struct rs_range *rg = NULL;
		const uint8_t *data;
		int err;

		for (unsigned int i = 0; i < rs->nrg && !rg; i++)
			if (gpa - rs->rg[i].gpa < rs->rg[i].size)
				rg = &rs->rg[i];
		if (n * rs->gps > RS_BLOCK)
			n = RS_BLOCK / rs->gps;
		len = n * rs->gps;
		if (!rg || len > rg->size - (gpa - rg->gpa)) { /* not served here: skip it */
			rs->ws_off += len;
		} else {
			off = gpa - rg->gpa;
			data = rs->ws_data ? rs->ws_data + rs->ws_off : NULL;
			if (!data) {
				struct sqb_diag d = {0};

				if (buf == rs->hbuf)
					rs->hbuf_blk = 0;
				if ((err = sqb_snap_read(rs->snap, gpa, buf, len, &d)))
					return rs_fail(rs, err, &d), 0;
				data = buf;
			}
			if (locked)
				pthread_rwlock_rdlock(&rs->ev_lock);
			err = put_range(rs, rg, off, len, data);
			if (locked)
				pthread_rwlock_unlock(&rs->ev_lock);
			if (err < 0) {
				if (err ==
				    -EAGAIN) { /* an event is pending: the handler reads it */
					if (locked)
						usleep(50);
					return 1;
				}
				return rs_fail(rs, err, NULL), 0;
			}
			rs->ws_off += len;
		}
		rs->ws_page += n;
		if (rs->ws_page == w->pages) {
			rs->ws_i++;
			rs->ws_page = 0;
		}
		return 1;
	}
	return 0; /* ws_data stays: faults on set pages are served from it */
}

/* Index the working-set bytes by destination page, for faults that arrive
 * before the prefetch got there. */
static int ws_index(sqb_restore *rs)
{
	uint64_t k = 0;

	if (!rs->ws_data || !rs->nws)
		return 0;
	for (size_t i = 0; i < rs->nws; i++)
		rs->nwspg += rs->ws[i].pages;
	rs->ws_idx = calloc(rs->npg ? rs->npg : 1, sizeof(*rs->ws_idx));
	rs->ws_gpa = malloc((rs->nwspg ? rs->nwspg : 1) * sizeof(*rs->ws_gpa));
	if (!rs->ws_idx || !rs->ws_gpa)
		return -ENOMEM;
	for (size_t i = 0; i < rs->nws; i++)
		for (uint32_t p = 0; p < rs->ws[i].pages; p++, k++) {
			uint64_t gpa = rs->ws[i].gpa + (uint64_t)p * rs->gps;

			rs->ws_gpa[k] = gpa;

			for (unsigned int j = 0; j < rs->nrg; j++)
				if (gpa - rs->rg[j].gpa < rs->rg[j].size && k < UINT32_MAX) {
					uint64_t pg =
					    rs->rg[j].pg0 + (gpa - rs->rg[j].gpa) / RS_HPAGE;

					for (uint32_t h = 0; h < rs->gps / RS_HPAGE; h++)
						if (!rs->ws_idx[pg + h])
							rs->ws_idx[pg + h] = (uint32_t)k + 1;
				}
		}
	return 0;
}

/* Fetch requests, then (without a prefetch thread) the working set. */
static int idle_step(sqb_restore *rs)
{
	uint64_t blk = UINT64_MAX;
	int err;

	pthread_mutex_lock(&rs->lock);
	if (rs->nfetch)
		blk = rs->fetch_q[--rs->nfetch];
	pthread_mutex_unlock(&rs->lock);
	if (blk != UINT64_MAX) {
		err = serve_block(rs, blk);
		if (err == -EAGAIN) {
			pthread_mutex_lock(&rs->lock);
			err = q_push(&rs->fetch_q, &rs->nfetch, &rs->capfetch, blk);
			pthread_mutex_unlock(&rs->lock);
			if (err)
				rs_fail(rs, err, NULL);
		} else if (err < 0) {
			rs_fail(rs, err, NULL);
		}
		pthread_mutex_lock(&rs->lock);
		pthread_cond_broadcast(&rs->cond);
		pthread_mutex_unlock(&rs->lock);
		return 1;
	}
	if (!rs->prefetch_started && ws_step(rs, rs->hbuf, 0))
		return 1;
	return 0;
}

static void handle_removes(sqb_restore *rs, struct fault_ev *ev, int n)
{
	for (int i = 0; i < n; i++)
		if (ev[i].kind == FEV_REMOVE)
			mark_removed(rs, ev[i].addr, ev[i].end);
}

/* Faults of one batch, after its removes were marked: a fault read in the
 * same batch may be for a removed page. */
static void handle_faults(sqb_restore *rs, struct hstate *h, struct fault_ev *ev, int n,
			  uint64_t t0)
{
	for (int i = 0; i < n; i++) {
		int err;

		if (ev[i].kind != FEV_FAULT)
			continue;
		atomic_fetch_add(&rs->faults, 1);
		if (atomic_load(&rs->error))
			continue; /* failed: never wake a thread onto a page we cannot fill */
		rs->dec_ns = 0;
		err = serve_fault(rs, ev[i].addr, 0);
		if (err == -EAGAIN && q_push(&h->pending, &h->npend, &h->cap, ev[i].addr))
			rs_fail(rs, -ENOMEM, NULL); /* never drop a fault silently */
		else if (err < 0 && err != -EAGAIN)
			rs_fail(rs, err, NULL);
		else if (!err)
			sample(rs, rs_now_ns() - t0, rs->dec_ns);
		t0 = rs_now_ns(); /* the next one starts when we get to it */
	}
}

/* While filler or prefetch threads install, reading events and marking removes is
 * one step under the write lock, so no install can slip between a REMOVE
 * being read and the page being marked. */
static int read_events(sqb_restore *rs, struct fault_ev *ev, int timeout)
{
	int n;

	if (!atomic_load(&rs->installers)) {
		n = rs->fs->ops->wait(rs->fs, ev, 64, timeout);
		if (n > 0)
			handle_removes(rs, ev, n);
		return n;
	}
	if (timeout && !rs->fs->ops->ready(rs->fs, timeout < 20 ? timeout : 20))
		return 0;
	pthread_rwlock_wrlock(&rs->ev_lock);
	n = rs->fs->ops->wait(rs->fs, ev, 64, 0);
	if (n > 0)
		handle_removes(rs, ev, n);
	pthread_rwlock_unlock(&rs->ev_lock);
	return n;
}

static void *handler_main(void *arg)
{
	sqb_restore *rs = arg;
	struct hstate *h = calloc(1, sizeof(*h));
	struct fault_ev ev[64];
	int busy = 0;
	/* SQB_FAULT=restore_handler_dies: the handler vanishes without a word
	 * after SQB_FAULT_AFTER faults, as a crashed or killed one would */
	int die = sqb_fault_enabled("restore_handler_dies");
	const char *after = getenv("SQB_FAULT_AFTER");
	uint64_t die_after = after ? strtoull(after, NULL, 0) : 0;

	if (!h) {
		rs_fail(rs, -ENOMEM, NULL);
		return NULL;
	}

	while (!atomic_load(&rs->stop)) {
		uint64_t t0;
		size_t np;
		int n;

		if (die && atomic_load(&rs->faults) >= die_after)
			break;
		n = read_events(rs, ev, busy || h->npend ? 0 : 100);
		t0 = rs_now_ns();
		np = h->npend;

		if (n < 0) {
			rs_fail(rs, n, NULL);
			n = 0;
		}
		handle_faults(rs, h, ev, n, t0);
		if (atomic_load(&rs->error)) {
			busy = 0;
			continue;
		}
		/* retry the faults that were pending before this read; keep the
		 * ones this batch added for the next round */
		{
			size_t total = h->npend;

			h->npend = 0;
			for (size_t i = 0; i < total; i++) {
				int err = i < np ? serve_fault(rs, h->pending[i], 1) : -EAGAIN;

				if (err == -EAGAIN)
					h->pending[h->npend++] = h->pending[i];
				else if (err < 0)
					rs_fail(rs, err, NULL);
			}
		}
		busy = n == 0 ? idle_step(rs) : 1;
	}
	free(h->pending);
	free(h);
	return NULL;
}

/* The working set goes in beside the handler, so faults never wait for it. */
static void *prefetch_main(void *arg)
{
	sqb_restore *rs = arg;

	while (!atomic_load(&rs->stop) && !atomic_load(&rs->error) && ws_step(rs, rs->pbuf, 1))
		;
	atomic_fetch_sub(&rs->installers, 1);
	return NULL;
}

/* ---- filler: decode and install blocks in order, skipping resident ones ---- */

static int fill_one(sqb_restore *rs, uint64_t blk, uint8_t *buf)
{
	uint64_t off, len;
	struct rs_range *rg = rs_block_range(rs, blk, &off);
	struct sqb_diag d = {0};
	int zero, err;

	len = rg->size - off < RS_BLOCK ? rg->size - off : RS_BLOCK;
	if (!block_missing(rs, rg, off, len))
		return 0;
	zero = rs_block_is_zero(rs, blk);
	if (!zero && (err = rs_decode_block(rs, blk, buf, &len, &d)))
		return rs_fail(rs, err, &d); /* a bad chunk: convergence is impossible */
	for (;;) {
		pthread_rwlock_rdlock(&rs->ev_lock);
		err = put_range(rs, rg, off, len, zero ? NULL : buf);
		pthread_rwlock_unlock(&rs->ev_lock);
		if (rs->pg_claim) {
			/* a fetch that found these pages claimed by this filler
			 * waits for them on the condition */
			pthread_mutex_lock(&rs->lock);
			pthread_cond_broadcast(&rs->cond);
			pthread_mutex_unlock(&rs->lock);
		}
		if (err != -EAGAIN || atomic_load(&rs->stop) || atomic_load(&rs->error))
			break;
		usleep(50); /* an event is pending: the handler reads it first */
	}
	return err < 0 && err != -EAGAIN ? rs_fail(rs, err, NULL) : 0;
}

/* SQB_RESTORE_FILL_LATER: until the caller's sqb_restore_fill_after() time,
 * or a stop or failure (both broadcast the condition). */
static void wait_fill_at(sqb_restore *rs)
{
	pthread_mutex_lock(&rs->lock);
	while (!atomic_load(&rs->stop) && !atomic_load(&rs->error)) {
		uint64_t at = atomic_load(&rs->fill_at), now = rs_now_ns();
		struct timespec ts;

		if (at && now >= at)
			break;
		if (!at) {
			pthread_cond_wait(&rs->cond, &rs->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((at - now) / 1000000000u);
		ts.tv_nsec += (long)((at - now) % 1000000000u);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rs->cond, &rs->lock, &ts);
	}
	pthread_mutex_unlock(&rs->lock);
}

static void *worker_main(void *arg)
{
	sqb_restore *rs = arg;
	uint8_t *buf = malloc(RS_BLOCK);
	struct sched_param sp = {0};

	/* a full share of the CPU, but the handler and the guest's vCPUs win
	 * when they wake (a lower nice level cost 30% of convergence speed on
	 * a loaded host) */
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	if (!buf)
		rs_fail(rs, -ENOMEM, NULL);
	wait_fill_at(rs);
	while (buf && !atomic_load(&rs->stop) && !atomic_load(&rs->error)) {
		uint64_t blk;

		do
			blk = atomic_fetch_add(&rs->fill_cursor, 1);
		while (blk < rs->nblk && atomic_load(&rs->blk_state[blk]));
		if (blk >= rs->nblk || fill_one(rs, blk, buf))
			break;
	}
	free(buf);
	atomic_fetch_sub(&rs->installers, 1);
	/* the restore's end is reported by one filler, with no lock held (the
	 * callback may write files or read more of the snapshot) */
	if (rs->o.on_done) {
		pthread_mutex_lock(&rs->lock);
		while (!atomic_load(&rs->done) && !atomic_load(&rs->stop) && !atomic_load(&rs->error))
			pthread_cond_wait(&rs->cond, &rs->lock);
		pthread_mutex_unlock(&rs->lock);
		if (atomic_load(&rs->done) && !atomic_load(&rs->error) &&
		    !atomic_exchange(&rs->done_reported, 1))
			rs->o.on_done(rs->o.done_ctx, !atomic_load(&rs->removed_unread));
	}
	return NULL;
}

int rs_lazy_fetch(sqb_restore *rs, uint64_t gpa, uint64_t len)
{
	int err = 0;

	for (unsigned int i = 0; i < rs->nrg; i++) {
		struct rs_range *rg = &rs->rg[i];
		uint64_t lo = gpa > rg->gpa ? gpa : rg->gpa;
		uint64_t hi = gpa + len < rg->gpa + rg->size ? gpa + len : rg->gpa + rg->size;

		if (lo >= hi)
			continue;
		pthread_mutex_lock(&rs->lock);
		for (uint64_t b = (lo - rg->gpa) / RS_BLOCK; b <= (hi - 1 - rg->gpa) / RS_BLOCK;
		     b++) {
			if (rs->nfetch == rs->capfetch) {
				size_t cap = rs->capfetch ? rs->capfetch * 2 : 64;
				uint64_t *q = realloc(rs->fetch_q, cap * sizeof(*q));

				if (!q) {
					err = -ENOMEM;
					break;
				}
				rs->fetch_q = q;
				rs->capfetch = cap;
			}
			rs->fetch_q[rs->nfetch++] = rg->blk0 + b;
		}
		rs->fs->ops->kick(rs->fs);
		while (!err && !atomic_load(&rs->error) &&
		       block_missing(
			   rs, rg, lo - rg->gpa - (lo - rg->gpa) % RS_HPAGE,
			   ((hi - rg->gpa + RS_HPAGE - 1) / RS_HPAGE - (lo - rg->gpa) / RS_HPAGE) *
			       RS_HPAGE)) {
			if (atomic_load(&rs->stop)) { /* halted: nobody installs it */
				err = -ECANCELED;
				break;
			}
			pthread_cond_wait(&rs->cond, &rs->lock);
		}
		pthread_mutex_unlock(&rs->lock);
		if (err || (err = atomic_load(&rs->error)))
			return err;
	}
	return err;
}

int rs_lazy_start(sqb_restore *rs, struct sqb_diag *d)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int nw = rs->o.threads ? rs->o.threads : (unsigned int)(ncpu > 0 ? ncpu : 1);
	struct sched_param sp = {0};
	pthread_attr_t attr;
	int err;

	(void)d;
	if (!rs->fs) {
		err = rs->strategy == SQB_RESTORE_LAZY_SIGNAL ? rs_signal_create(&rs->fs, rs)
		      : rs->strategy == SQB_RESTORE_LAZY_EXIT ? rs_exit_create(&rs->fs, rs)
							      : rs_uffd_create(&rs->fs, rs, -1);
		if (err)
			return err;
	}
	rs->record = !!(rs->o.flags & SQB_RESTORE_RECORD);
	atomic_store(&rs->fill_at, (rs->o.flags & SQB_RESTORE_FILL_LATER) ? 0 : 1);
	rs->hbuf = malloc(RS_BLOCK);
	if (!rs->hbuf || ws_index(rs))
		return -ENOMEM;
	if (rs->o.flags & SQB_RESTORE_WSET_SYNC) {
		while (ws_step(rs, rs->hbuf, 0))
			;
		if (atomic_load(&rs->error))
			return atomic_load(&rs->error);
	}
	if (rs->o.flags & (SQB_RESTORE_NO_FILL | SQB_RESTORE_RECORD))
		nw = 0;
	rs->workers = calloc(nw ? nw : 1, sizeof(*rs->workers));
	if (!rs->workers)
		return -ENOMEM;
	/* background installers are SCHED_BATCH from birth: a full share of
	 * the CPU, but the handler, the guest and the thread returning to the
	 * VMM win every wake-up (see worker_main) */
	pthread_attr_init(&attr);
	if (pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED) ||
	    pthread_attr_setschedpolicy(&attr, SCHED_BATCH) ||
	    pthread_attr_setschedparam(&attr, &sp))
		pthread_attr_setinheritsched(&attr, PTHREAD_INHERIT_SCHED);
	/* counted before any of them runs: the handler locks while > 0 */
	atomic_store(&rs->installers,
		     (int)nw + (rs->nws && !(rs->o.flags & SQB_RESTORE_WSET_SYNC)));
	if (rs->nws && !(rs->o.flags & SQB_RESTORE_WSET_SYNC)) {
		if (!(rs->pbuf = malloc(RS_BLOCK)) ||
		    (pthread_create(&rs->prefetcher, &attr, prefetch_main, rs) &&
		     pthread_create(&rs->prefetcher, NULL, prefetch_main, rs))) {
			atomic_store(&rs->installers, 0);
			pthread_attr_destroy(&attr);
			return -ENOMEM;
		}
		rs->prefetch_started = 1;
	}
	if ((err = pthread_create(&rs->handler, NULL, handler_main, rs))) {
		pthread_attr_destroy(&attr);
		return -err;
	}
	rs->handler_started = 1;
	for (unsigned int i = 0; i < nw; i++) {
		if (pthread_create(&rs->workers[i], &attr, worker_main, rs) &&
		    pthread_create(&rs->workers[i], NULL, worker_main, rs)) {
			atomic_fetch_sub(&rs->installers, (int)(nw - i));
			break;
		}
		rs->nworkers++;
	}
	pthread_attr_destroy(&attr);
	return 0;
}

/* Pages the caller keeps that never became resident turn PROT_NONE before
 * the fault source lets go, so no thread can ever read them as zero. */
static void seal_missing(sqb_restore *rs)
{
	for (unsigned int i = 0; i < rs->nrg; i++) {
		struct rs_range *rg = &rs->rg[i];
		uint64_t n = rg->size / RS_HPAGE;

		if (!rg->local)
			continue;
		for (uint64_t p = 0; p < n;) {
			uint64_t q = p;

			while (q < n && !rs_bit(rs->pg_present, rg->pg0 + q) &&
			       !rs_bit(rs->pg_removed, rg->pg0 + q))
				q++;
			if (q > p)
				mprotect(rg->local + p * RS_HPAGE, (q - p) * RS_HPAGE, PROT_NONE);
			p = q + 1;
		}
	}
}

/* Serve no more: join every thread of the restore (a filler in on_done
 * included), seal the pages that never arrived, then let go of the memory,
 * which wakes every thread still waiting in a fault there: it retries and
 * fails (EFAULT in the kernel, SIGSEGV in user space) instead of waiting for
 * a page nobody will install.  The fault source stays (fetch may still kick
 * it) until rs_lazy_stop().  Idempotent; the owner's thread only. */
void rs_lazy_halt(sqb_restore *rs)
{
	if (!rs->fs || rs->halted)
		return;
	rs->halted = 1;
	atomic_store(&rs->stop, 1);
	pthread_mutex_lock(&rs->lock);
	pthread_cond_broadcast(&rs->cond); /* fillers waiting for done, fetches */
	pthread_mutex_unlock(&rs->lock);
	rs->fs->ops->kick(rs->fs);
	if (rs->prefetch_started)
		pthread_join(rs->prefetcher, NULL);
	if (rs->handler_started)
		pthread_join(rs->handler, NULL);
	for (unsigned int i = 0; i < rs->nworkers; i++)
		pthread_join(rs->workers[i], NULL);
	free(rs->workers);
	rs->workers = NULL;
	if (!atomic_load(&rs->done))
		seal_missing(rs);
	if (rs->fs->ops->release)
		rs->fs->ops->release(rs->fs);
}

void rs_lazy_stop(sqb_restore *rs)
{
	if (!rs->fs)
		return;
	rs_lazy_halt(rs);
	rs->fs->ops->destroy(rs->fs);
	rs->fs = NULL;
}
