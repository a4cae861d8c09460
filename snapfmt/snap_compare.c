/* Compare the guest memory of two snapshots page by page, on every core.
 * Two shortcuts that read no decoded byte: ZERO against ZERO, and two
 * RAW/COMPRESSED extents of the same pages, kind, codec, length and
 * checksum whose stored bytes are identical (checksum verified once: the
 * other side's bytes are the same bytes against the same checksum, and the
 * same stored bytes decode to the same pages).  Everything else is decoded
 * through sqb_snap_read (checksum first, [F-23]) and compared with memcmp:
 * an equal checksum alone never makes two extents equal. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "io.h"
#include "snap_internal.h"

struct cmp_job {
	sqb_snap *s[2];
	unsigned int r[2];
	uint64_t gpa, n; /* gpa of page 0 of the job; pages */
	uint64_t page0[2];
	uint32_t sub;	 /* pages per task */
	const uint8_t *skip;
	uint8_t *differs;
	int *errs;
	int *side;
	struct sqb_diag *diags;
	/* per-thread scratch, claimed per task */
	pthread_mutex_t lock;
	uint8_t **bufs;
	unsigned int nbufs, *freeb, nfree;
};

static const struct sqb_extent *ext_at(sqb_snap *s, unsigned int r, uint64_t page)
{
	size_t idx;

	if (sqb_snap_extent_find(s, r, page, &idx))
		return NULL;
	return &s->ext[r][idx];
}

/* Identical stored bytes: the extents' pages are equal without decoding.
 * buf holds 2 x SQB_MAX_STORED bytes. */
static int same_stored(struct cmp_job *j, const struct sqb_extent *ea,
		       const struct sqb_extent *eb, uint8_t *buf)
{
	if ((ea->kind != SQB_EXT_RAW && ea->kind != SQB_EXT_COMPRESSED) || ea->kind != eb->kind ||
	    ea->codec != eb->codec || ea->stored_len != eb->stored_len ||
	    ea->checksum != eb->checksum || ea->page_count != eb->page_count ||
	    ea->stored_len > SQB_MAX_STORED)
		return 0;
	if (sqb_pread_full(j->s[0]->dfd, buf, ea->stored_len, ea->data) ||
	    sqb_pread_full(j->s[1]->dfd, buf + SQB_MAX_STORED, eb->stored_len, eb->data))
		return 0; /* the decoding path reports the error */
	return !memcmp(buf, buf + SQB_MAX_STORED, ea->stored_len) &&
	       sqb_xxh64(buf, ea->stored_len) == ea->checksum;
}

static int any_unknown(const uint8_t *known, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (!known[i])
			return 1;
	return 0;
}

static void cmp_task(void *ctx, size_t k)
{
	struct cmp_job *j = ctx;
	uint32_t gps = j->s[0]->info.guest_page_size;
	uint64_t lo = (uint64_t)k * j->sub, hi = lo + j->sub < j->n ? lo + j->sub : j->n;
	uint8_t *known = j->differs + lo; /* 0 = to compare, 2 = known equal */
	uint8_t *buf;
	unsigned int slot;
	int err = 0;

	pthread_mutex_lock(&j->lock);
	slot = j->freeb[--j->nfree];
	pthread_mutex_unlock(&j->lock);
	buf = j->bufs[slot];
	for (uint64_t i = lo; i < hi; i++)
		known[i - lo] = j->skip && j->skip[i] ? 2 : 0;
	/* walk both indexes in step: whole extents that match are known equal */
	for (uint64_t i = lo; i < hi;) {
		const struct sqb_extent *ea = ext_at(j->s[0], j->r[0], j->page0[0] + i);
		const struct sqb_extent *eb = ext_at(j->s[1], j->r[1], j->page0[1] + i);
		uint64_t ea_end, eb_end, end;

		if (!ea || !eb)
			break; /* sqb_snap_read reports it */
		ea_end = ea->first_page + ea->page_count - j->page0[0];
		eb_end = eb->first_page + eb->page_count - j->page0[1];
		end = ea_end < eb_end ? ea_end : eb_end;
		if (end > hi)
			end = hi;
		if (ea->kind == SQB_EXT_ZERO && eb->kind == SQB_EXT_ZERO) {
			memset(known + (i - lo), 2, end - i);
		} else if (ea->first_page - j->page0[0] == i && eb->first_page - j->page0[1] == i &&
			   ea_end == eb_end && ea_end <= hi && any_unknown(known + (i - lo), end - i) &&
			   same_stored(j, ea, eb, buf)) {
			memset(known + (i - lo), 2, end - i);
		}
		i = end;
	}
	/* decode and compare the runs of pages still unknown */
	for (uint64_t i = lo; i < hi && !err;) {
		uint64_t e = i, gpa;
		uint8_t *pa = buf, *pb = buf + SQB_MAX_STORED;

		if (known[i - lo]) {
			i++;
			continue;
		}
		while (e < hi && !known[e - lo] && (e - i + 1) * gps <= SQB_MAX_CHUNK)
			e++;
		gpa = j->gpa + i * gps;
		if ((err = sqb_snap_read(j->s[0], gpa, pa, (e - i) * gps, &j->diags[k]))) {
			j->side[k] = 0;
			break;
		}
		if ((err = sqb_snap_read(j->s[1], gpa, pb, (e - i) * gps, &j->diags[k]))) {
			j->side[k] = 1;
			break;
		}
		for (uint64_t p = i; p < e; p++)
			known[p - lo] = memcmp(pa + (p - i) * gps, pb + (p - i) * gps, gps) ? 1 : 2;
		i = e;
	}
	for (uint64_t i = lo; i < hi; i++)
		known[i - lo] = known[i - lo] == 1;
	j->errs[k] = err;
	pthread_mutex_lock(&j->lock);
	j->freeb[j->nfree++] = slot;
	pthread_mutex_unlock(&j->lock);
}

int sqb_snap_compare(sqb_snap *a, sqb_snap *b, uint64_t gpa, uint64_t npages,
		     const uint8_t *skip, uint8_t *differs, unsigned int threads, int *side,
		     struct sqb_diag *diag)
{
	struct cmp_job j = { .s = { a, b }, .gpa = gpa, .n = npages, .skip = skip,
			     .differs = differs };
	uint32_t gps = a->info.guest_page_size;
	struct sqb_pool *pool = NULL;
	size_t ntask;

	if (sqb_snap_indexless(a) || sqb_snap_indexless(b))
		return -SQB_ESTATE;
	int err = 0;

	if (side)
		*side = 0;
	if (!npages)
		return 0;
	if (gps != b->info.guest_page_size || gpa % gps)
		return -EINVAL;
	if (sqb_snap_locate(a, gpa, &j.r[0], &j.page0[0]) ||
	    npages > (a->regions[j.r[0]].size - (gpa - a->regions[j.r[0]].gpa)) / gps ||
	    sqb_snap_locate(b, gpa, &j.r[1], &j.page0[1]) ||
	    npages > (b->regions[j.r[1]].size - (gpa - b->regions[j.r[1]].gpa)) / gps) {
		if (side)
			*side = sqb_snap_locate(a, gpa, &j.r[0], &j.page0[0]) ? 0 : 1;
		return sqb_diag_set(diag, -SQB_ENOTFOUND, UINT64_MAX, "MEMR",
				    "[0x%llx, +%llu pages) is not inside one region",
				    (unsigned long long)gpa, (unsigned long long)npages);
	}
	/* 1 MiB of guest memory per task, aligned to a's region: no chunk of
	 * at most 1 MiB ([F-36]) is decoded by two tasks */
	j.sub = SQB_MAX_CHUNK / gps;
	ntask = (npages + j.sub - 1) / j.sub;
	if (threads != 1 && ntask > 1 && sqb_pool_create(&pool, threads) == 0)
		j.nbufs = sqb_pool_threads(pool);
	else
		j.nbufs = 1;
	pthread_mutex_init(&j.lock, NULL);
	j.errs = calloc(ntask, sizeof(int));
	j.side = calloc(ntask, sizeof(int));
	j.diags = calloc(ntask, sizeof(*j.diags));
	j.bufs = calloc(j.nbufs, sizeof(*j.bufs));
	j.freeb = calloc(j.nbufs, sizeof(*j.freeb));
	if (!j.errs || !j.side || !j.diags || !j.bufs || !j.freeb) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < j.nbufs; i++) {
		if (!(j.bufs[i] = malloc(2 * (size_t)SQB_MAX_STORED))) {
			err = -ENOMEM;
			goto out;
		}
		j.freeb[j.nfree++] = i;
	}
	if (pool)
		sqb_pool_run(pool, ntask, cmp_task, &j);
	else
		for (size_t k = 0; k < ntask; k++)
			cmp_task(&j, k);
	for (size_t k = 0; k < ntask; k++)
		if (j.errs[k]) { /* the first problem in guest order */
			err = j.errs[k];
			if (side)
				*side = j.side[k];
			if (diag)
				*diag = j.diags[k];
			break;
		}
out:
	sqb_pool_free(pool);
	for (unsigned int i = 0; j.bufs && i < j.nbufs; i++)
		free(j.bufs[i]);
	free(j.bufs);
	free(j.freeb);
	free(j.errs);
	free(j.side);
	free(j.diags);
	pthread_mutex_destroy(&j.lock);
	return err;
}
