/* Snapshot writer: classifies guest pages (zero, parent, dedup, data),
 * compresses data chunks on all cores, lays out RAW extents congruent to
 * their guest offset, and finalizes header + directory atomically
 * (docs/format.md [F-10]..[F-41], [F-70]). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "snap_internal.h"

int sqb_random_uuid(struct sqb_uuid *u);

struct wsec {
	uint32_t type, instance;
	uint16_t version, min_version;
	uint32_t flags;
	uint8_t *data;
	size_t len;
};

struct wregion {
	uint64_t gpa, size;
	uint64_t xbase; /* XMEM: offset of the region in the raw file */
	struct sqb_extent *ext;
	size_t n, cap;
};

struct wkv {
	uint32_t type;
	char *key;
	uint8_t *val;
	uint32_t len;
};

/* One data extent being encoded in the current batch. */
struct pend {
	uint64_t first; /* page in region */
	uint32_t count;
	const uint8_t *src;
	uint8_t *out;	/* compressed bytes (NULL: stored = src) */
	uint32_t out_len;
	uint8_t kind, codec;
	uint64_t sum;
	uint32_t cap; /* room at out */
	uint64_t off; /* where it goes in the file */
	int packed;   /* part of a run under 64 KiB: stored, not RAW */
	int copied;   /* the stored bytes of an input extent, kept as they are */
	uint64_t glen; /* bytes written from here (a group of packed extents), 0: in a group */
};

struct batch;

struct sqb_snap_writer {
	struct sqb_afile af;
	struct sqb_afile xf; /* XMEM: the raw memory file (xf.fd < 0: none) */
	uint64_t xsize;
	struct sqb_uuid xstamp;
	struct sqb_write_opts o;
	enum sqb_snap_kind kind;
	uint32_t gps, chunk_pages;
	struct sqb_uuid uuid, parent_uuid, comp_uuid;
	struct sqb_digest parent_digest, comp_digest;
	char producer[64];
	char *parent_hint, *comp_hint;
	uint64_t pos;
	uint64_t data_start;
	uint64_t flushed; /* writeback started for [0, flushed) */
	int has_data;
	struct wregion *reg;
	unsigned int nreg;
	struct wsec *secs;
	unsigned int nsecs;
	struct wkv *kvs;
	unsigned int nkvs;
	struct sqb_pool *pool;
	pthread_mutex_t ctx_lock;
	void **ctxs;
	unsigned int nctxs;
	/* dedup: page hash -> region<<48 | page of its first stored copy */
	uint64_t *dk, *dv;
	size_t dcap, dn;
	/* read-back cache for dedup verification */
	uint8_t *rb_buf;
	unsigned int rb_reg;
	size_t rb_idx;
	int rb_valid;
	struct batch *wpend; /* placed, not yet written (phase 6) */
	int failed;
	int finished;
	struct sqb_write_stats st;
};

/* ------------------------------------------------------------------ */

static int w_fail(sqb_snap_writer *w, int err)
{
	if (!w->failed)
		w->failed = err;
	return err;
}

static int w_write(sqb_snap_writer *w, const void *p, size_t len, uint64_t off)
{
	int err = sqb_pwrite_full(w->af.fd, p, len, off);

	return err ? w_fail(w, err) : 0;
}

int sqb_writer_open(sqb_snap_writer **out, const char *path, const struct sqb_write_opts *opts)
{
	sqb_snap_writer *w;
	int err;

	*out = NULL;
	if (!opts || opts->version != SQB_WRITE_OPTS_VERSION)
		return -EINVAL;
	if (opts->guest_page_size < 4096 || opts->guest_page_size > 65536 ||
	    (opts->guest_page_size & (opts->guest_page_size - 1)))
		return -EINVAL;
	if (opts->arch != SQB_ARCH_X86_64 && opts->arch != SQB_ARCH_AARCH64)
		return -EINVAL;
	if (opts->hv != SQB_HV_KVM && opts->hv != SQB_HV_HVF)
		return -EINVAL;
	if ((unsigned)opts->codec > SQB_CODEC_ZSTD || (unsigned)opts->role > SQB_ROLE_MEMORY)
		return -EINVAL;
	if (opts->chunk_size && (opts->chunk_size < SQB_MIN_CHUNK || opts->chunk_size > SQB_MAX_CHUNK ||
				 opts->chunk_size % opts->guest_page_size))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->af.fd = -1;
	w->xf.fd = -1;
	pthread_mutex_init(&w->ctx_lock, NULL);
	w->o = *opts;
	if (opts->external_path) { /* [F-91] raw bytes only, at fixed offsets */
		w->o.codec = SQB_CODEC_NONE;
		w->o.dedup = 0;
		w->o.pack_below = 1;
		if (!opts->chunk_size)
			w->o.chunk_size = SQB_MAX_CHUNK;
	}
	w->gps = opts->guest_page_size;
	if (!w->o.host_page_size)
		w->o.host_page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	w->chunk_pages = (w->o.chunk_size ? w->o.chunk_size : SQB_DEFAULT_CHUNK) / w->gps;
	if (!w->chunk_pages)
		w->chunk_pages = 1;
	snprintf(w->producer, sizeof(w->producer), "%s",
		 opts->producer ? opts->producer : "squib " SQB_VERSION_STRING);
	w->kind = opts->parent ? SQB_SNAP_DIFF : SQB_SNAP_FULL;
	if (opts->parent) {
		const struct sqb_snap_info *pi = sqb_snap_get_info(opts->parent);
		const char *hint = opts->parent_path_hint ? opts->parent_path_hint
							  : sqb_snap_path(opts->parent);

		if (pi->arch != opts->arch || pi->hv != opts->hv ||
		    pi->guest_page_size != opts->guest_page_size) {
			err = -SQB_EMISMATCH;
			goto fail;
		}
		w->parent_uuid = pi->uuid;
		w->parent_digest = pi->digest;
		w->parent_hint = strdup(hint);
	}
	if (opts->companion_uuid)
		w->comp_uuid = *opts->companion_uuid;
	if (opts->companion_digest)
		w->comp_digest = *opts->companion_digest;
	if (opts->companion_path_hint)
		w->comp_hint = strdup(opts->companion_path_hint);
	if (opts->uuid)
		w->uuid = *opts->uuid;
	else if ((err = sqb_random_uuid(&w->uuid)))
		goto fail;
	err = sqb_pool_create(&w->pool, opts->threads);
	if (err)
		goto fail;
	w->nctxs = sqb_pool_threads(w->pool);
	w->ctxs = calloc(w->nctxs, sizeof(void *));
	if (!w->ctxs) {
		err = -ENOMEM;
		goto fail;
	}
	err = sqb_afile_open(&w->af, path);
	if (err)
		goto fail;
	if (opts->external_path) {
		if ((err = sqb_random_uuid(&w->xstamp)) ||
		    (err = sqb_afile_open(&w->xf, opts->external_path)))
			goto fail;
	}
	w->pos = SQB_HEADER_SIZE;
	*out = w;
	return 0;
fail:
	sqb_writer_free(w);
	return err;
}

int sqb_writer_set_companion(sqb_snap_writer *w, const struct sqb_uuid *uuid,
			     const struct sqb_digest *digest)
{
	if (!w || w->finished || !digest)
		return -EINVAL;
	if (uuid)
		w->comp_uuid = *uuid;
	w->comp_digest = *digest;
	return 0;
}

struct sqb_pool *sqb_writer_pool(sqb_snap_writer *w)
{
	return w->pool;
}

const char *sqb_writer_temp_path(const sqb_snap_writer *w)
{
	return w && w->finished && w->o.defer_commit ? w->af.tmp : NULL;
}

const char *sqb_writer_external_temp_path(const sqb_snap_writer *w)
{
	return w && w->finished && w->o.defer_commit ? w->xf.tmp : NULL;
}

void sqb_writer_disown_external_temp(sqb_snap_writer *w)
{
	if (!w || !w->finished || !w->o.defer_commit)
		return;
	free(w->xf.tmp);
	w->xf.tmp = NULL;
}

void sqb_writer_disown_temp(sqb_snap_writer *w)
{
	if (!w || !w->finished || !w->o.defer_commit)
		return;
	free(w->af.tmp);
	w->af.tmp = NULL;
}

void sqb_writer_free(sqb_snap_writer *w)
{
	if (!w)
		return;
	sqb_afile_abort(&w->af);
	sqb_afile_abort(&w->xf);
	sqb_pool_free(w->pool);
	for (unsigned int i = 0; i < w->nctxs && w->ctxs; i++)
		sqb_codec_ctx_free(w->o.codec, w->ctxs[i]);
	free(w->ctxs);
	for (unsigned int i = 0; i < w->nreg; i++)
		free(w->reg[i].ext);
	free(w->reg);
	for (unsigned int i = 0; i < w->nsecs; i++)
		free(w->secs[i].data);
	free(w->secs);
	for (unsigned int i = 0; i < w->nkvs; i++) {
		free(w->kvs[i].key);
		free(w->kvs[i].val);
	}
	free(w->kvs);
	free(w->dk);
	free(w->dv);
	free(w->rb_buf);
	free(w->parent_hint);
	free(w->comp_hint);
	pthread_mutex_destroy(&w->ctx_lock);
	free(w);
}

void sqb_writer_stats(const sqb_snap_writer *w, struct sqb_write_stats *out)
{
	*out = w->st;
}

/* ---- region extent list ---- */

static int w_push_extent(struct wregion *r, const struct sqb_extent *e)
{
	struct sqb_extent *last = r->n ? &r->ext[r->n - 1] : NULL;

	if (last && last->kind == e->kind && last->first_page + last->page_count == e->first_page &&
	    (uint64_t)last->page_count + e->page_count < (1u << 31)) {
		if (e->kind == SQB_EXT_ZERO || e->kind == SQB_EXT_PARENT) {
			last->page_count += e->page_count;
			return 0;
		}
		if (e->kind == SQB_EXT_DEDUP && last->data + last->page_count == e->data &&
		    ((last->data & SQB_DEDUP_PAGE_MASK) + last->page_count) <= SQB_DEDUP_PAGE_MASK) {
			last->page_count += e->page_count;
			return 0;
		}
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct sqb_extent *n = realloc(r->ext, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->ext = n;
		r->cap = cap;
	}
	r->ext[r->n++] = *e;
	return 0;
}

/* ---- dedup ---- */

static int w_dedup_grow(sqb_snap_writer *w)
{
	size_t cap = w->dcap ? w->dcap * 2 : 1u << 16;
	uint64_t *k = calloc(cap, sizeof(*k)), *v = calloc(cap, sizeof(*v));

	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < w->dcap; i++) {
		size_t j;

		if (!w->dk[i])
			continue;
		for (j = w->dk[i] & (cap - 1); k[j]; j = (j + 1) & (cap - 1))
			;
		k[j] = w->dk[i];
		v[j] = w->dv[i];
	}
	free(w->dk);
	free(w->dv);
	w->dk = k;
	w->dv = v;
	w->dcap = cap;
	return 0;
}

/* Slot of hash h: either holding h or the empty slot where it belongs. */
static size_t w_dedup_slot(const sqb_snap_writer *w, uint64_t h)
{
	size_t j;

	for (j = h & (w->dcap - 1); w->dk[j] && w->dk[j] != h; j = (j + 1) & (w->dcap - 1))
		;
	return j;
}

static size_t w_find_extent(const struct wregion *r, uint64_t page)
{
	size_t lo = 0, hi = r->n;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (r->ext[mid].first_page <= page)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Bytes of an already written page (region ri, page p), read back from the
 * temporary file, so dedup never trusts a hash alone. */
static const uint8_t *w_read_back(sqb_snap_writer *w, unsigned int ri, uint64_t p)
{
	const struct wregion *r = &w->reg[ri];
	size_t idx = w_find_extent(r, p);
	const struct sqb_extent *e = &r->ext[idx];
	size_t ext_bytes = (size_t)e->page_count * w->gps;

	if (!w->rb_buf && !(w->rb_buf = malloc(SQB_MAX_CHUNK + SQB_MAX_STORED)))
		return NULL;
	if (!(w->rb_valid && w->rb_reg == ri && w->rb_idx == idx)) {
		uint8_t *tmp = w->rb_buf + SQB_MAX_CHUNK;

		w->rb_valid = 0;
		if (e->kind == SQB_EXT_RAW) {
			if (sqb_pread_full(w->af.fd, w->rb_buf, ext_bytes, e->data))
				return NULL;
		} else if (e->kind == SQB_EXT_COMPRESSED) {
			if (sqb_pread_full(w->af.fd, tmp, e->stored_len, e->data) ||
			    sqb_codec_decompress(e->codec, tmp, e->stored_len, w->rb_buf, ext_bytes))
				return NULL;
		} else {
			return NULL;
		}
		w->rb_valid = 1;
		w->rb_reg = ri;
		w->rb_idx = idx;
	}
	return w->rb_buf + (p - e->first_page) * w->gps;
}

/* ---- the batch pipeline ---- */

struct batch {
	sqb_snap_writer *w;
	unsigned int ri;
	uint64_t first;
	uint32_t n;
	const uint8_t *data;
	uint8_t *kinds;
	uint64_t *hash;
	uint64_t *dsrc;
	struct pend *pend;
	size_t npend;
	const struct sqb_stored_run *runs; /* SQB_PAGE_STORED runs (copy sources) */
	uint8_t *outbuf; /* pend k compresses into out..out+cap, packed in order */
	size_t out_cap;
	uint8_t *scratch; /* the page source may copy the batch's pages here */
	uint64_t end_pos; /* w->pos once the batch is placed */
	int werr;	  /* of its writes */
};

/* Phase 1, per chunk: zero detection and page hashes. */
static void b_classify(void *ctx, size_t chunk)
{
	struct batch *b = ctx;
	uint32_t cp = b->w->chunk_pages, gps = b->w->gps;
	size_t lo = chunk * cp, hi = lo + cp < b->n ? lo + cp : b->n;

	for (size_t i = lo; i < hi; i++) {
		const uint8_t *pg = b->data + i * gps;

		if (b->kinds[i] != SQB_PAGE_DATA)
			continue;
		if (sqb_page_is_zero(pg, gps))
			b->kinds[i] = SQB_PAGE_ZERO;
		else if (b->w->o.dedup)
			b->hash[i] = sqb_xxh64(pg, gps) | 1; /* 0 marks an empty slot */
	}
}

#define KIND_DEDUP 3 /* batch-local page kind beside enum sqb_page_kind */

static int w_flush_pending(sqb_snap_writer *w);
static void b_write_all(struct batch *b);

/* Phase 2, serial: resolve duplicates against every page stored so far. */
static int b_dedup(struct batch *b)
{
	sqb_snap_writer *w = b->w;

	for (uint32_t i = 0; i < b->n; i++) {
		uint64_t h = b->hash[i], ref;
		unsigned int cr;
		uint64_t cp;
		const uint8_t *cand;
		size_t slot;

		if (b->kinds[i] != SQB_PAGE_DATA)
			continue;
		if (w->dn * 2 >= w->dcap && w_dedup_grow(w))
			return -ENOMEM;
		slot = w_dedup_slot(w, h);
		if (!w->dk[slot]) {
			w->dk[slot] = h;
			w->dv[slot] = ((uint64_t)b->ri << SQB_DEDUP_SHIFT) | (b->first + i);
			w->dn++;
			continue;
		}
		ref = w->dv[slot];
		cr = (unsigned int)(ref >> SQB_DEDUP_SHIFT);
		cp = ref & SQB_DEDUP_PAGE_MASK;
		if (cr == b->ri && cp >= b->first)
			cand = b->data + (cp - b->first) * w->gps;
		else if (w->wpend && cr == w->wpend->ri && cp >= w->wpend->first &&
			 cp < w->wpend->first + w->wpend->n && w_flush_pending(w))
			return w->failed; /* the copy is in the batch not yet written */
		else
			cand = w_read_back(w, cr, cp);
		if (!cand)
			return -EIO;
		if (!memcmp(cand, b->data + (size_t)i * w->gps, w->gps)) {
			b->kinds[i] = KIND_DEDUP;
			b->dsrc[i] = ref;
		}
	}
	return 0;
}

/* Phase 4, per pending extent: compress (or checksum RAW bytes). */
static void b_encode(void *ctx, size_t idx)
{
	struct batch *b = ctx;
	sqb_snap_writer *w = b->w;
	struct pend *p = &b->pend[idx];
	size_t len = (size_t)p->count * w->gps;

	if (p->copied) { /* kind, codec, length and checksum are the input's */
		if (w->o.codec == SQB_CODEC_NONE) {
			p->kind = p->packed ? SQB_EXT_COMPRESSED : SQB_EXT_RAW;
			p->codec = SQB_CODEC_NONE;
		}
		if (p->packed)
			memcpy(p->out, p->src, p->out_len);
		else
			p->out = NULL;
		return;
	}
	if (w->o.codec == SQB_CODEC_NONE) {
		/* [F-33a] short runs gain nothing from mmap: pack them as stored
		 * chunks instead of padding each to its 64 KiB congruence */
		p->kind = p->packed ? SQB_EXT_COMPRESSED : SQB_EXT_RAW;
		p->codec = SQB_CODEC_NONE;
		if (p->packed) /* staged so that neighbours leave in one write */
			memcpy(p->out, p->src, len);
		else
			p->out = NULL;
		p->out_len = (uint32_t)len;
		p->sum = sqb_xxh64(p->src, len);
		return;
	}
	p->kind = SQB_EXT_COMPRESSED;
	{
		void *cctx = NULL;
		unsigned int slot = w->nctxs;
		size_t k;

		/* each thread borrows one codec context for the call */
		pthread_mutex_lock(&w->ctx_lock);
		for (unsigned int i = 0; i < w->nctxs && slot == w->nctxs; i++)
			if (w->ctxs[i] != (void *)1) {
				cctx = w->ctxs[i];
				w->ctxs[i] = (void *)1;
				slot = i;
			}
		pthread_mutex_unlock(&w->ctx_lock);
		k = sqb_codec_compress(w->o.codec, w->o.level, p->src, len, p->out, p->cap,
				       &cctx);
		if (slot < w->nctxs) {
			pthread_mutex_lock(&w->ctx_lock);
			w->ctxs[slot] = cctx;
			pthread_mutex_unlock(&w->ctx_lock);
		} else {
			sqb_codec_ctx_free(w->o.codec, cctx);
		}
		if (k) {
			p->codec = (uint8_t)w->o.codec;
			p->out_len = (uint32_t)k;
		} else { /* incompressible: stored verbatim, [F-34] codec 0 */
			p->codec = SQB_CODEC_NONE;
			p->out = NULL;
			p->out_len = (uint32_t)len;
		}
	}
	p->sum = sqb_xxh64(p->out ? p->out : p->src, p->out_len);
}

/* Phase 4 with the previous batch's phase 6 as task 0: one pool thread
 * copies that batch into the file while the others compress this one. */
static void b_encode_or_write(void *ctx, size_t idx)
{
	struct batch *b = ctx, *prev = b->w->wpend;

	if (prev && idx == 0)
		b_write_all(prev);
	else
		b_encode(b, prev ? idx - 1 : idx);
}

/* Phase 3: cut DATA runs at chunk boundaries into pending extents. */
static void b_plan(struct batch *b)
{
	uint32_t cp = b->w->chunk_pages;
	size_t o = 0;

	uint32_t run_end = 0;
	int packed = 0;

	b->npend = 0;
	for (uint32_t i = 0; i < b->n;) {
		uint32_t j = i;

		if (b->kinds[i] != SQB_PAGE_DATA && b->kinds[i] != SQB_PAGE_STORED) {
			i++;
			continue;
		}
		if (i >= run_end) { /* a new run of data pages: how long is it? */
			for (run_end = i; run_end < b->n && (b->kinds[run_end] == SQB_PAGE_DATA ||
							     b->kinds[run_end] == SQB_PAGE_STORED);
			     run_end++)
				;
			packed = b->w->o.codec == SQB_CODEC_NONE && b->w->kind == SQB_SNAP_DIFF &&
				 (uint64_t)(run_end - i) * b->w->gps <
					 (b->w->o.pack_below ? b->w->o.pack_below : SQB_RAW_ALIGN);
		}
		if (b->kinds[i] == SQB_PAGE_STORED) {
			const struct sqb_stored_run *sr = &b->runs[i];

			j = i + sr->count;
			b->pend[b->npend] = (struct pend){
			    .first = b->first + i,
			    .count = sr->count,
			    .src = b->data + (size_t)i * b->w->gps,
			    .packed = packed,
			    .copied = 1,
			    .kind = sr->kind,
			    .codec = sr->codec,
			    .out_len = sr->stored_len,
			    .sum = sr->checksum,
			};
		} else {
			while (j < b->n && b->kinds[j] == SQB_PAGE_DATA &&
			       (j == i || (b->first + j) % cp != 0))
				j++;
			b->pend[b->npend] = (struct pend){
			    .first = b->first + i,
			    .count = j - i,
			    .src = b->data + (size_t)i * b->w->gps,
			    .packed = packed,
			};
		}
		if (b->outbuf && (b->w->o.codec != SQB_CODEC_NONE || packed)) {
			/* output slots packed in page order: cache friendly */
			size_t cap = sqb_codec_bound(b->w->o.codec, (size_t)(j - i) * b->w->gps);

			b->pend[b->npend].out = b->outbuf + o;
			b->pend[b->npend].cap = (uint32_t)cap;
			o += (cap + 63) & ~(size_t)63;
		}
		b->npend++;
		i = j;
	}
}

/* Phase 6: copy the placed batch into the file, from one thread (a buffered
 * write holds the inode's lock, so parallel writers would only spin on it)
 * while the pool encodes the next batch (docs/architecture.md).  Runs as
 * the first task of the next batch's encode run, or alone for the last. */
static void b_write_all(struct batch *b)
{
	sqb_snap_writer *w = b->w;
	int fd = w->xf.fd >= 0 ? w->xf.fd : w->af.fd;

	for (size_t k = 0; k < b->npend && !b->werr; k++) {
		struct pend *p = &b->pend[k];

		if (p->glen)
			b->werr = sqb_pwrite_full(fd, p->out ? p->out : p->src, p->glen, p->off);
	}
	/* start writeback now so that the fsync in finish has little left and
	 * the disk works while the next batch is compressed */
	if (!b->werr && w->xf.fd < 0 && b->end_pos - w->flushed >= SQB_WRITEBACK_STEP) {
		sqb_start_writeback(w->af.fd, w->flushed, b->end_pos - w->flushed);
		w->flushed = b->end_pos;
	}
}

/* The batch whose writes are still to do (w->wpend), written now: before
 * anything reads the file back, and at the end of a region. */
static int w_flush_pending(sqb_snap_writer *w)
{
	struct batch *b = w->wpend;

	if (!b)
		return 0;
	w->wpend = NULL;
	b_write_all(b);
	return b->werr ? w_fail(w, b->werr) : 0;
}

/* Phase 5, serial: place extents and record them in the index; the batch
 * becomes w->wpend, written by phase 6. */
static int b_commit(struct batch *b)
{
	sqb_snap_writer *w = b->w;
	struct wregion *r = &w->reg[b->ri];
	size_t pi = 0;
	int err;

	if (!w->has_data && w->xf.fd < 0) {
		w->has_data = 1;
		w->data_start = w->pos;
	}
	for (uint32_t i = 0; i < b->n;) {
		struct sqb_extent e = { .first_page = b->first + i, .page_count = 1 };
		uint8_t k = b->kinds[i];

		if (k == SQB_PAGE_DATA || k == SQB_PAGE_STORED) {
			struct pend *p = &b->pend[pi++];

			e.page_count = p->count;
			e.kind = p->kind;
			e.codec = p->codec;
			e.stored_len = p->out_len;
			e.checksum = p->sum;
			if (w->xf.fd >= 0) {
				/* [F-91] the page's own offset in the raw file */
				e.data = p->off = r->xbase + p->first * w->gps;
				w->st.raw += p->count;
				w->st.data_in += (uint64_t)p->count * w->gps;
				w->st.data_out += p->out_len;
				i += p->count;
				goto push;
			}
			if (p->kind == SQB_EXT_RAW) {
				/* [F-33] file offset congruent to the guest offset mod 64 KiB */
				uint64_t want = (p->first * w->gps) % SQB_RAW_ALIGN;
				uint64_t pad = (want - (w->pos % SQB_RAW_ALIGN) + SQB_RAW_ALIGN) %
					       SQB_RAW_ALIGN;
				w->pos += pad; /* the gap stays zero: ftruncate/sparse is fine */
				w->st.raw += p->count;
			} else {
				w->st.compressed += p->count;
			}
			e.data = p->off = w->pos;
			w->pos += p->out_len;
			w->st.data_in += (uint64_t)p->count * w->gps;
			w->st.data_out += p->out_len;
			i += p->count;
		} else {
			if (k == SQB_PAGE_ZERO) {
				e.kind = SQB_EXT_ZERO;
				w->st.zero++;
			} else if (k == SQB_PAGE_PARENT) {
				e.kind = SQB_EXT_PARENT;
				w->st.parent++;
			} else {
				e.kind = SQB_EXT_DEDUP;
				e.data = b->dsrc[i];
				w->st.dedup++;
			}
			i++;
		}
push:
		if ((err = w_push_extent(r, &e)))
			return w_fail(w, err);
	}
	/* neighbouring packed extents are adjacent in the file and in staging:
	 * one write for the group */
	for (size_t k = 0, lead = 0; k < b->npend; k++) {
		struct pend *p = &b->pend[k], *q = k ? &b->pend[k - 1] : NULL;

		if (q && p->packed && q->packed && p->off == q->off + q->out_len &&
		    p->out == q->out + q->out_len) {
			b->pend[lead].glen += p->out_len;
			p->glen = 0;
		} else {
			lead = k;
			p->glen = p->out_len;
		}
	}
	w->st.pages += b->n;
	b->end_pos = w->pos;
	b->werr = 0;
	w->wpend = b; /* written during the next batch's encode, or flushed */
	return 0;
}

int sqb_writer_can_copy(const sqb_snap_writer *w, uint64_t first, const struct sqb_extent *e)
{
	uint64_t bytes = (uint64_t)e->page_count * w->gps;

	if (e->kind != SQB_EXT_RAW && e->kind != SQB_EXT_COMPRESSED)
		return 0;
	if (w->o.dedup || w->xf.fd >= 0) /* pages must be hashed; XMEM: 1 MiB extents */
		return 0;
	if (!e->page_count || e->stored_len > bytes ||
	    first / w->chunk_pages != (first + e->page_count - 1) / w->chunk_pages)
		return 0;
	if (w->o.codec == SQB_CODEC_NONE) /* RAW, or stored: the bytes are the pages */
		return (e->kind == SQB_EXT_RAW || e->codec == SQB_CODEC_NONE) &&
		       e->stored_len == bytes;
	return e->kind == SQB_EXT_COMPRESSED && e->codec == w->o.codec;
}

uint32_t sqb_writer_chunk_pages(const sqb_snap_writer *w)
{
	return w->chunk_pages;
}

/* The runs a copy source described are what the writer may copy. */
static int b_check_runs(struct batch *b)
{
	for (uint32_t i = 0; i < b->n;) {
		const struct sqb_stored_run *sr;
		struct sqb_extent e;

		if (b->kinds[i] != SQB_PAGE_STORED) {
			i++;
			continue;
		}
		if (!b->runs)
			return -EINVAL;
		sr = &b->runs[i];
		e = (struct sqb_extent){.page_count = sr->count,
					.kind = sr->kind,
					.codec = sr->codec,
					.stored_len = sr->stored_len};
		if (!sr->count || sr->count > b->n - i ||
		    !sqb_writer_can_copy(b->w, b->first + i, &e))
			return -EINVAL;
		for (uint32_t k = 1; k < sr->count; k++)
			if (b->kinds[i + k] != SQB_PAGE_STORED)
				return -EINVAL;
		i += sr->count;
	}
	return 0;
}

int sqb_writer_add_memory_src(sqb_snap_writer *w, uint64_t gpa, uint64_t size,
			      const struct sqb_page_source *src)
{
	return sqb_writer_add_memory_copy(w, gpa, size, src, NULL);
}

int sqb_writer_add_memory_copy(sqb_snap_writer *w, uint64_t gpa, uint64_t size,
			       const struct sqb_page_source *src,
			       struct sqb_stored_run *const *runs)
{
	uint64_t npages;
	uint32_t batch_pages;
	/* two batches (one if the region fits in one): one is encoded while
	 * the other is written (phase 6) */
	struct batch bs[2] = { { .w = w }, { .w = w } };
	unsigned int ri, cur = 0;
	int err = 0;

	if (w->failed || w->finished)
		return w->failed ? w->failed : -SQB_ESTATE;
	if (w->o.role == SQB_ROLE_STATE)
		return -SQB_ESTATE;
	if (!size || size % w->gps || gpa % w->gps || size > SQB_MAX_REGION_SIZE ||
	    gpa + size < gpa)
		return -EINVAL;
	if (w->nreg >= SQB_MAX_REGIONS)
		return -SQB_ELIMIT;
	if (w->nreg && w->reg[w->nreg - 1].gpa + w->reg[w->nreg - 1].size > gpa)
		return -EINVAL; /* [F-31] ascending, non-overlapping */
	{
		struct wregion *n = realloc(w->reg, (w->nreg + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->reg = n;
		w->reg[w->nreg] = (struct wregion){ .gpa = gpa, .size = size, .xbase = w->xsize };
		w->xsize += size;
		ri = w->nreg++;
	}
	npages = size / w->gps;
	/* 8 MiB of guest memory per batch (at least two chunks per thread):
	 * fewer pool barriers, while the buffers stay cache-sized */
	batch_pages = (8u << 20) / w->gps;
	batch_pages -= batch_pages % w->chunk_pages; /* runs are cut at chunks only */
	if (batch_pages < w->chunk_pages * 2 * sqb_pool_threads(w->pool))
		batch_pages = w->chunk_pages * 2 * sqb_pool_threads(w->pool);
	if (batch_pages > npages)
		batch_pages = (uint32_t)npages;
	for (unsigned int k = 0; k < (npages > batch_pages ? 2u : 1u); k++) {
		struct batch *b = &bs[k];

		b->ri = ri;
		/* >= the sum of the bounds of the batch's extents, each 64-aligned */
		b->out_cap = (size_t)batch_pages * w->gps + (size_t)batch_pages * w->gps / 64 +
			     (size_t)batch_pages * 128;
		b->scratch = malloc((size_t)batch_pages * w->gps);
		b->kinds = malloc(batch_pages);
		b->hash = calloc(batch_pages, sizeof(uint64_t));
		b->dsrc = calloc(batch_pages, sizeof(uint64_t));
		b->pend = calloc(batch_pages, sizeof(struct pend));
		if (w->o.codec != SQB_CODEC_NONE || w->kind == SQB_SNAP_DIFF)
			b->outbuf = malloc(b->out_cap);
		if (!b->scratch || !b->kinds || !b->hash || !b->dsrc || !b->pend ||
		    ((w->o.codec != SQB_CODEC_NONE || w->kind == SQB_SNAP_DIFF) && !b->outbuf)) {
			err = w_fail(w, -ENOMEM);
			goto out;
		}
	}
	for (uint64_t first = 0; first < npages; first += bs[cur].n) {
		struct batch *b;
		const void *data = NULL;

		if (first) /* the other batch: this one may still be the one to write */
			cur ^= 1;
		b = &bs[cur];
		b->first = first;
		b->n = (uint32_t)(npages - first < batch_pages ? npages - first : batch_pages);
		err = src->get(src->ctx, first, b->n, &data, b->scratch, b->kinds);
		if (err) {
			w_fail(w, err);
			goto out;
		}
		b->data = data;
		b->runs = runs ? *runs : NULL;
		for (uint32_t i = 0; i < b->n; i++) {
			if ((b->kinds[i] > SQB_PAGE_PARENT && b->kinds[i] != SQB_PAGE_STORED) ||
			    (b->kinds[i] == SQB_PAGE_PARENT && w->kind != SQB_SNAP_DIFF)) {
				err = w_fail(w, -EINVAL);
				goto out;
			}
		}
		if ((err = b_check_runs(b))) {
			w_fail(w, err);
			goto out;
		}
		sqb_pool_run(w->pool, (b->n + w->chunk_pages - 1) / w->chunk_pages, b_classify, b);
		if (w->o.dedup && (err = b_dedup(b))) {
			w_fail(w, err);
			goto out;
		}
		b_plan(b);
		/* the previous batch is written while this one is encoded */
		sqb_pool_run(w->pool, b->npend + (w->wpend ? 1 : 0), b_encode_or_write, b);
		if (w->wpend && w->wpend->werr) {
			err = w_fail(w, w->wpend->werr);
			goto out;
		}
		w->wpend = NULL;
		if ((err = b_commit(b)))
			goto out;
	}
	err = w_flush_pending(w);
out:
	w->wpend = NULL; /* a failed writer writes nothing more */
	for (unsigned int k = 0; k < 2; k++) {
		free(bs[k].scratch);
		free(bs[k].kinds);
		free(bs[k].hash);
		free(bs[k].dsrc);
		free(bs[k].pend);
		free(bs[k].outbuf);
	}
	return err;
}

struct buf_src {
	const uint8_t *mem;
	const uint64_t *dirty;
	uint32_t gps;
};

static int buf_src_get(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		       uint8_t *kinds)
{
	struct buf_src *s = ctx;

	(void)scratch;
	*data = s->mem + first * s->gps;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p = first + i;
		kinds[i] = (!s->dirty || (s->dirty[p / 64] >> (p % 64)) & 1) ? SQB_PAGE_DATA
									     : SQB_PAGE_PARENT;
	}
	return 0;
}

int sqb_writer_add_memory(sqb_snap_writer *w, uint64_t gpa, uint64_t size, const void *mem,
			  const uint64_t *dirty)
{
	struct buf_src s = { mem, dirty, w->gps };
	struct sqb_page_source src = { buf_src_get, &s };

	if (dirty && w->kind != SQB_SNAP_DIFF)
		return -EINVAL;
	return sqb_writer_add_memory_src(w, gpa, size, &src);
}

/* ---- non-memory sections ---- */

int sqb_writer_add_section(sqb_snap_writer *w, uint32_t type, uint32_t instance, uint16_t version,
			   uint16_t min_version, uint32_t flags, const void *data, size_t len)
{
	struct wsec *n;

	if (w->failed || w->finished)
		return w->failed ? w->failed : -SQB_ESTATE;
	if (len > SQB_MAX_META_SECTION || (flags & ~SQB_SECF_KNOWN_FLAGS) || !version ||
	    min_version > version)
		return -EINVAL;
	if (type == SQB_SEC_MEMR || type == SQB_SEC_PIDX || type == SQB_SEC_DATA)
		return -EINVAL; /* built by the writer itself */
	for (unsigned int i = 0; i < w->nsecs; i++)
		if (w->secs[i].type == type && w->secs[i].instance == instance)
			return -EEXIST;
	if (w->nsecs + w->nreg * 1 + 8 >= SQB_MAX_SECTIONS)
		return -SQB_ELIMIT;
	n = realloc(w->secs, (w->nsecs + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	w->secs = n;
	n = &w->secs[w->nsecs];
	*n = (struct wsec){ type, instance, version, min_version, flags, NULL, len };
	if (len && !(n->data = malloc(len)))
		return -ENOMEM;
	if (len)
		memcpy(n->data, data, len);
	w->nsecs++;
	return 0;
}

static int w_add_known(sqb_snap_writer *w, uint32_t type, uint32_t instance, const void *data,
		       size_t len)
{
	const struct sqb_section_kind *k = sqb_section_kind(type);

	return sqb_writer_add_section(w, type, instance, k->version, 1,
				      k->critical ? SQB_SECF_CRITICAL : 0, data, len);
}

int sqb_writer_add_records(sqb_snap_writer *w, uint32_t type, uint32_t instance,
			   const struct sqb_record *recs, unsigned int n)
{
	size_t len = 0, off = 0;
	uint8_t *buf;
	int err;

	for (unsigned int i = 0; i < n; i++) {
		if (recs[i].len > SQB_MAX_META_SECTION)
			return -EINVAL;
		len += 8 + ((recs[i].len + 7u) & ~7u);
	}
	if (len > SQB_MAX_META_SECTION)
		return -SQB_ELIMIT;
	buf = calloc(1, len ? len : 1);
	if (!buf)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		put_le16(buf + off, recs[i].tag);
		put_le16(buf + off + 2, recs[i].flags);
		put_le32(buf + off + 4, recs[i].len);
		if (recs[i].len)
			memcpy(buf + off + 8, recs[i].data, recs[i].len);
		off += 8 + ((recs[i].len + 7u) & ~7u);
	}
	err = w_add_known(w, type, instance, buf, len);
	free(buf);
	return err;
}

int sqb_writer_add_vcpu(sqb_snap_writer *w, uint32_t index, const struct sqb_record *recs,
			unsigned int n)
{
	if (index >= SQB_MAX_VCPUS)
		return -SQB_ELIMIT;
	return sqb_writer_add_records(w, SQB_SEC_VCPU, index, recs, n);
}

int sqb_writer_set_kv(sqb_snap_writer *w, uint32_t type, const char *key, const void *value,
		      uint32_t len)
{
	size_t klen = strlen(key);
	struct wkv *n;

	if (type != SQB_SEC_CONF && type != SQB_SEC_META)
		return -EINVAL;
	if (!klen || klen > SQB_MAX_KEY || len > SQB_MAX_META_SECTION)
		return -EINVAL;
	for (size_t i = 0; i < klen; i++) /* [F-51] key alphabet */
		if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
		      key[i] == '_' || key[i] == '.' || key[i] == '-'))
			return -EINVAL;
	for (unsigned int i = 0; i < w->nkvs; i++) {
		if (w->kvs[i].type == type && !strcmp(w->kvs[i].key, key)) {
			uint8_t *v = malloc(len ? len : 1);
			if (!v)
				return -ENOMEM;
			memcpy(v, value, len);
			free(w->kvs[i].val);
			w->kvs[i].val = v;
			w->kvs[i].len = len;
			return 0;
		}
	}
	n = realloc(w->kvs, (w->nkvs + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	w->kvs = n;
	n = &w->kvs[w->nkvs];
	n->type = type;
	n->key = strdup(key);
	n->val = malloc(len ? len : 1);
	n->len = len;
	if (!n->key || !n->val) {
		free(n->key);
		free(n->val);
		return -ENOMEM;
	}
	memcpy(n->val, value, len);
	w->nkvs++;
	return 0;
}

int sqb_writer_add_device(sqb_snap_writer *w, const struct sqb_device *dev)
{
	size_t idlen = strnlen(dev->id, sizeof(dev->id));
	size_t len = SQB_DEVICE_HDR_SIZE + ((idlen + 7) & ~(size_t)7) + dev->state_len;
	unsigned int n = 0;
	uint8_t *buf;
	int err;

	if (!idlen || idlen == sizeof(dev->id) || len > SQB_MAX_META_SECTION)
		return -EINVAL;
	for (unsigned int i = 0; i < w->nsecs; i++)
		n += w->secs[i].type == SQB_SEC_DEVS;
	if (n >= SQB_MAX_DEVICES)
		return -SQB_ELIMIT;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, dev->type);
	put_le32(buf + 4, dev->version);
	put_le64(buf + 8, dev->bus_addr);
	put_le32(buf + 16, dev->irq);
	put_le16(buf + 20, (uint16_t)idlen);
	memcpy(buf + SQB_DEVICE_HDR_SIZE, dev->id, idlen);
	if (dev->state_len)
		memcpy(buf + SQB_DEVICE_HDR_SIZE + ((idlen + 7) & ~(size_t)7), dev->state,
		       dev->state_len);
	err = w_add_known(w, SQB_SEC_DEVS, n, buf, len);
	free(buf);
	return err;
}

int sqb_writer_set_working_set(sqb_snap_writer *w, const struct sqb_wset_range *r, size_t n)
{
	size_t len = 8 + n * SQB_WSET_ENTRY_SIZE;
	uint8_t *buf;
	int err;

	if (len > SQB_MAX_META_SECTION)
		return -SQB_ELIMIT;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		if (!r[i].pages || r[i].gpa % w->gps) {
			free(buf);
			return -EINVAL;
		}
		put_le64(buf + 8 + i * SQB_WSET_ENTRY_SIZE, r[i].gpa);
		put_le32(buf + 16 + i * SQB_WSET_ENTRY_SIZE, r[i].pages);
	}
	err = w_add_known(w, SQB_SEC_WSET, 0, buf, len);
	free(buf);
	return err;
}

int sqb_writer_copy_state(sqb_snap_writer *w, const sqb_snap *s)
{
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		struct sqb_section_info si;
		void *data = NULL;
		size_t len = 0;
		int err;

		sqb_snap_section_info(s, i, &si);
		if (si.type == SQB_SEC_MEMR || si.type == SQB_SEC_PIDX || si.type == SQB_SEC_DATA ||
		    si.type == SQB_SEC_LINK)
			continue;
		if (si.type == SQB_SEC_CONF || si.type == SQB_SEC_META) {
			struct sqb_kv *kv;
			unsigned int n;
			void *back;

			if ((err = sqb_snap_kv(s, si.type, &kv, &n, &back, NULL)))
				return err;
			for (unsigned int k = 0; k < n && !err; k++)
				err = sqb_writer_set_kv(w, si.type, kv[k].key, kv[k].value,
							kv[k].value_len);
			free(kv);
			free(back);
			if (err)
				return err;
			continue;
		}
		if ((err = sqb_snap_section_read(s, i, &data, &len, NULL)))
			return err;
		err = sqb_writer_add_section(w, si.type, si.instance, si.version, si.min_version,
					     si.flags, data, len);
		free(data);
		if (err)
			return err;
	}
	return 0;
}

/* ---- finish ---- */

struct dirbuf {
	uint8_t *p;
	unsigned int n, cap;
};

static int dir_add(struct dirbuf *d, uint32_t type, uint32_t inst, uint16_t ver, uint16_t minver,
		   uint32_t flags, uint64_t off, uint64_t len, uint64_t sum)
{
	uint8_t *e;

	if (d->n == d->cap) {
		unsigned int cap = d->cap ? d->cap * 2 : 32;
		uint8_t *n = realloc(d->p, (size_t)cap * SQB_DIRENT_SIZE);
		if (!n)
			return -ENOMEM;
		d->p = n;
		d->cap = cap;
	}
	e = d->p + (size_t)d->n++ * SQB_DIRENT_SIZE;
	memset(e, 0, SQB_DIRENT_SIZE);
	put_le32(e, type);
	put_le32(e + 4, inst);
	put_le16(e + 8, ver);
	put_le16(e + 10, minver);
	put_le32(e + 12, flags);
	put_le64(e + 16, off);
	put_le64(e + 24, len);
	put_le64(e + 32, sum);
	return 0;
}

/* Write one section at the next 8-aligned offset and list it. */
static int w_emit(sqb_snap_writer *w, struct dirbuf *d, uint32_t type, uint32_t inst, uint16_t ver,
		  uint16_t minver, uint32_t flags, const void *p, size_t len)
{
	int err;

	w->pos = (w->pos + 7) & ~7ull;
	if (len && (err = w_write(w, p, len, w->pos)))
		return err;
	err = dir_add(d, type, inst, ver, minver, flags, w->pos, len, sqb_xxh64(p, len));
	w->pos += len;
	return err;
}

static int w_emit_memory(sqb_snap_writer *w, struct dirbuf *d)
{
	uint8_t *buf;
	int err = 0;

	if (w->has_data)
		FORWARD_IF_ERROR(dir_add(d, SQB_SEC_DATA, 0, 1, 1, SQB_SECF_CRITICAL, w->data_start,
					 w->pos - w->data_start, 0));
	buf = calloc(w->nreg ? w->nreg : 1, SQB_REGION_SIZE);
	if (!buf)
		return -ENOMEM;
	for (unsigned int i = 0; i < w->nreg; i++) {
		put_le64(buf + i * SQB_REGION_SIZE, w->reg[i].gpa);
		put_le64(buf + i * SQB_REGION_SIZE + 8, w->reg[i].size);
	}
	err = w_emit(w, d, SQB_SEC_MEMR, 0, 1, 1, SQB_SECF_CRITICAL, buf,
		     (size_t)w->nreg * SQB_REGION_SIZE);
	free(buf);
	for (unsigned int i = 0; i < w->nreg && !err; i++) {
		const struct wregion *r = &w->reg[i];

		buf = calloc(r->n ? r->n : 1, SQB_EXTENT_SIZE);
		if (!buf)
			return -ENOMEM;
		for (size_t k = 0; k < r->n; k++) {
			uint8_t *e = buf + k * SQB_EXTENT_SIZE;
			const struct sqb_extent *x = &r->ext[k];

			put_le64(e, x->first_page);
			put_le32(e + 8, x->page_count);
			e[12] = x->kind;
			e[13] = x->codec;
			put_le64(e + 16, x->data);
			put_le32(e + 24, x->stored_len);
			put_le64(e + 32, x->checksum);
		}
		err = w_emit(w, d, SQB_SEC_PIDX, i, 1, 1, SQB_SECF_CRITICAL, buf,
			     r->n * SQB_EXTENT_SIZE);
		free(buf);
	}
	return err;
}

static int w_emit_kv(sqb_snap_writer *w, struct dirbuf *d, uint32_t type)
{
	size_t len = 0, off = 0;
	unsigned int n = 0;
	uint8_t *buf;
	int err;

	for (unsigned int i = 0; i < w->nkvs; i++) {
		if (w->kvs[i].type != type)
			continue;
		len += 8 + strlen(w->kvs[i].key) + w->kvs[i].len;
		n++;
	}
	if (!n)
		return 0;
	len += 8;
	if (len > SQB_MAX_META_SECTION)
		return -SQB_ELIMIT;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, n);
	off = 8;
	for (unsigned int i = 0; i < w->nkvs; i++) {
		size_t kl;

		if (w->kvs[i].type != type)
			continue;
		kl = strlen(w->kvs[i].key);
		put_le32(buf + off, (uint32_t)kl);
		put_le32(buf + off + 4, w->kvs[i].len);
		memcpy(buf + off + 8, w->kvs[i].key, kl);
		memcpy(buf + off + 8 + kl, w->kvs[i].val, w->kvs[i].len);
		off += 8 + kl + w->kvs[i].len;
	}
	err = w_emit(w, d, type, 0, 1, 1, type == SQB_SEC_CONF ? SQB_SECF_CRITICAL : 0, buf, len);
	free(buf);
	return err;
}

static void w_header(sqb_snap_writer *w, uint8_t *h, uint64_t dir_off, unsigned int ndir,
		     uint64_t dir_sum)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(h, 0, SQB_HEADER_SIZE);
	memcpy(h + H_MAGIC, SQB_MAGIC, 8);
	put_le16(h + H_HEADER_SIZE, SQB_HEADER_SIZE);
	put_le16(h + H_READ_VERSION, SQB_SNAP_FORMAT_VERSION);
	put_le16(h + H_WRITE_VERSION, SQB_SNAP_FORMAT_VERSION);
	h[H_ARCH] = (uint8_t)w->o.arch;
	h[H_HV] = (uint8_t)w->o.hv;
	h[H_KIND] = (uint8_t)w->kind;
	h[H_ROLE] = (uint8_t)w->o.role;
	put_le32(h + H_GUEST_PAGE, w->gps);
	put_le32(h + H_HOST_PAGE, w->o.host_page_size);
	memcpy(h + H_UUID, w->uuid.b, 16);
	memcpy(h + H_PARENT_UUID, w->parent_uuid.b, 16);
	memcpy(h + H_PARENT_DIGEST, w->parent_digest.b, 16);
	memcpy(h + H_COMPANION_UUID, w->comp_uuid.b, 16);
	memcpy(h + H_COMPANION_DIGEST, w->comp_digest.b, 16);
	put_le64(h + H_CREATED, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	put_le64(h + H_DIR_OFFSET, dir_off);
	put_le32(h + H_DIR_COUNT, ndir);
	put_le64(h + H_DIR_CHECKSUM, dir_sum);
	put_le64(h + H_FILE_SIZE, dir_off + (uint64_t)ndir * SQB_DIRENT_SIZE);
	memcpy(h + H_PRODUCER, w->producer, strnlen(w->producer, 63));
	put_le64(h + H_CHECKSUM, sqb_xxh64(h, H_CHECKSUM));
}

/* [F-90]..[F-93]: the raw file gets its exact size (trailing zero pages
 * are a hole) and its stamp, and is durable before the index names it. */
static int w_finish_external(sqb_snap_writer *w, struct dirbuf *d)
{
	uint8_t x[32] = { 0 };
	int err;

	if (w->o.role == SQB_ROLE_STATE)
		return w_fail(w, -EINVAL);
	if (ftruncate(w->xf.fd, (off_t)w->xsize) < 0)
		return w_fail(w, -errno);
	if (fsetxattr(w->xf.fd, SQB_XMEM_XATTR, w->xstamp.b, 16, 0) == 0)
		x[24] = 1; /* flag: the stamp is on the file */
	err = w->o.defer_commit ? sqb_afile_sync(&w->xf) : sqb_afile_commit(&w->xf);
	if (err)
		return w_fail(w, err);
	put_le64(x, w->xsize);
	memcpy(x + 8, w->xstamp.b, 16);
	if ((err = w_emit(w, d, SQB_SEC_XMEM, 0, 1, 1, SQB_SECF_CRITICAL, x, sizeof(x))))
		return err;
	return w_emit(w, d, SQB_SEC_LINK, 2, 1, 1, 0, w->o.external_path,
		      strlen(w->o.external_path));
}

int sqb_writer_finish(sqb_snap_writer *w, struct sqb_uuid *uuid, struct sqb_digest *digest)
{
	struct dirbuf d = { 0 };
	uint8_t h[SQB_HEADER_SIZE];
	struct sqb_digest dg;
	uint64_t dir_off, dir_sum;
	int err;

	if (w->failed || w->finished)
		return w->failed ? w->failed : -SQB_ESTATE;
	if (w->o.role != SQB_ROLE_STATE || w->nreg)
		if ((err = w_emit_memory(w, &d)))
			goto out;
	for (unsigned int i = 0; i < w->nsecs; i++) {
		const struct wsec *s = &w->secs[i];

		err = w_emit(w, &d, s->type, s->instance, s->version, s->min_version, s->flags,
			     s->data, s->len);
		if (err)
			goto out;
	}
	if ((err = w_emit_kv(w, &d, SQB_SEC_CONF)) || (err = w_emit_kv(w, &d, SQB_SEC_META)))
		goto out;
	if (w->parent_hint &&
	    (err = w_emit(w, &d, SQB_SEC_LINK, 0, 1, 1, 0, w->parent_hint, strlen(w->parent_hint))))
		goto out;
	if (w->comp_hint &&
	    (err = w_emit(w, &d, SQB_SEC_LINK, 1, 1, 1, 0, w->comp_hint, strlen(w->comp_hint))))
		goto out;
	if (w->xf.fd >= 0 && (err = w_finish_external(w, &d)))
		goto out;
	dir_off = (w->pos + 7) & ~7ull;
	dir_sum = sqb_xxh64(d.p, (size_t)d.n * SQB_DIRENT_SIZE);
	if (d.n && (err = w_write(w, d.p, (size_t)d.n * SQB_DIRENT_SIZE, dir_off)))
		goto out;
	w_header(w, h, dir_off, d.n, dir_sum);
	/* [F-20] identity digest over header and directory */
	sqb_xxh128(h, H_CHECKSUM, d.p, (size_t)d.n * SQB_DIRENT_SIZE, &dg);
	if ((err = w_write(w, h, sizeof(h), 0)))
		goto out;
	/* filler between extents may be holes: make the length exact */
	if (ftruncate(w->af.fd, (off_t)(dir_off + (uint64_t)d.n * SQB_DIRENT_SIZE)) < 0) {
		err = w_fail(w, -errno);
		goto out;
	}
	err = w->o.defer_commit ? sqb_afile_sync(&w->af) : sqb_afile_commit(&w->af);
	if (err) {
		w_fail(w, err);
		goto out;
	}
	w->finished = 1;
	if (uuid)
		*uuid = w->uuid;
	if (digest)
		*digest = dg;
out:
	free(d.p);
	return err;
}
