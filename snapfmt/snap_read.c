/* Random access to guest memory in a snapshot: decode one extent (checksum
 * first, then codec), resolve DEDUP and PARENT, read any byte range of a
 * region.  Thread-safe; scratch buffers are per thread (format.md [F-33]..[F-45]). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "io.h"
#include "snap_internal.h"

struct scratch {
	uint8_t *in;  /* stored bytes of one extent */
	uint8_t *out; /* decoded bytes of one extent */
	void *dctx;   /* this thread's zstd decoder */
	/* out holds the first out_len decoded bytes of extent out_ext of
	 * region out_r of the snapshot whose gen is out_gen (out_len 0:
	 * nothing; the whole extent entry is the key, so that two entries
	 * that name the same bytes in a damaged file never share it).  A
	 * partial read of the same extent is then a copy: merge and diff walk
	 * a chain top down, so one chunk of a lower layer is read in several
	 * pieces around the pages a diff replaced. */
	uint64_t out_gen;
	struct sqb_extent out_ext;
	size_t out_len;
	unsigned int out_r;
	int whole; /* sqb_read_whole_extents */
};

uint64_t sqb_snap_new_gen(void)
{
	static _Atomic uint64_t next;

	return atomic_fetch_add(&next, 1) + 1;
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *sc = p;

	if (sc) {
		sqb_codec_dctx_free(sc->dctx);
		free(sc->in);
		free(sc->out);
		free(sc);
	}
}

static void scratch_init(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch_get(void)
{
	struct scratch *sc;

	pthread_once(&scratch_once, scratch_init);
	sc = pthread_getspecific(scratch_key);
	if (sc)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->in = malloc(SQB_MAX_STORED);
	sc->out = malloc(SQB_MAX_CHUNK);
	if (!sc->in || !sc->out || pthread_setspecific(scratch_key, sc)) {
		scratch_free(sc);
		return NULL;
	}
	return sc;
}

static int read_pages(sqb_snap *s, unsigned int r, uint64_t page, uint64_t n, uint8_t *dst,
		      struct sqb_diag *diag);

/* Stored bytes of a RAW or COMPRESSED extent, checksum verified, into dst:
 * at least its first `want` bytes (all of them for RAW, whose checksum
 * covers the whole extent). */
static int decode_stored_prefix(sqb_snap *s, unsigned int r, const struct sqb_extent *e,
				uint8_t *dst, size_t want, struct sqb_diag *diag);

static int decode_stored(sqb_snap *s, unsigned int r, const struct sqb_extent *e, uint8_t *dst,
			 struct sqb_diag *diag)
{
	return decode_stored_prefix(s, r, e, dst, (size_t)e->page_count * s->info.guest_page_size,
				    diag);
}

static int decode_stored_prefix(sqb_snap *s, unsigned int r, const struct sqb_extent *e,
				uint8_t *dst, size_t want, struct sqb_diag *diag)
{
	size_t bytes = (size_t)e->page_count * s->info.guest_page_size;
	char name[32] = "";
	struct scratch *sc;
	int err;

	/* the section name only matters for a diagnostic: no snprintf per extent */
#define NAME() (snprintf(name, sizeof(name), "DATA/PIDX[%u]", r), name)
	if (e->kind == SQB_EXT_RAW) {
		if ((err = sqb_pread_full(s->dfd, dst, bytes, e->data)))
			return sqb_diag_set(diag, err, e->data, NAME(), "cannot read RAW extent");
		if (sqb_xxh64(dst, bytes) != e->checksum)
			return sqb_diag_set(diag, -SQB_ECHECKSUM, e->data, NAME(),
					    "RAW extent for page %llu: checksum mismatch",
					    (unsigned long long)e->first_page);
		return 0;
	}
	sc = scratch_get();
	if (!sc)
		return -ENOMEM;
	if ((err = sqb_pread_full(s->dfd, sc->in, e->stored_len, e->data)))
		return sqb_diag_set(diag, err, e->data, NAME(), "cannot read compressed extent");
	/* [F-23] integrity before the decoder sees a byte */
	if (sqb_xxh64(sc->in, e->stored_len) != e->checksum)
		return sqb_diag_set(diag, -SQB_ECHECKSUM, e->data, NAME(),
				    "compressed extent for page %llu: checksum mismatch",
				    (unsigned long long)e->first_page);
	if (sqb_codec_decompress_prefix(e->codec, sc->in, e->stored_len, dst, bytes, want,
					&sc->dctx))
		return sqb_diag_set(diag, -SQB_ECODEC, e->data, NAME(),
				    "%s chunk for page %llu does not decode to %zu bytes",
				    sqb_codec_name(e->codec), (unsigned long long)e->first_page, bytes);
#undef NAME
	return 0;
}

/* Read the stored bytes of one RAW or COMPRESSED extent into buf (at least
 * stored_len bytes) and verify their checksum, without decoding them. */
int sqb_extent_read_stored(sqb_snap *s, unsigned int r, const struct sqb_extent *e, uint8_t *buf,
			   struct sqb_diag *diag)
{
	char name[32];
	int err;

	if ((err = sqb_pread_full(s->dfd, buf, e->stored_len, e->data))) {
		snprintf(name, sizeof(name), "DATA/PIDX[%u]", r);
		return sqb_diag_set(diag, err, e->data, name, "cannot read %s extent",
				    e->kind == SQB_EXT_RAW ? "RAW" : "compressed");
	}
	return sqb_extent_sum_check(r, e, buf, diag);
}

/* The checksum of stored bytes already in memory, with the same diagnostic
 * as a read ([F-23]). */
int sqb_extent_sum_check(unsigned int r, const struct sqb_extent *e, const uint8_t *stored,
			 struct sqb_diag *diag)
{
	char name[32];

	if (sqb_xxh64(stored, e->stored_len) == e->checksum)
		return 0;
	snprintf(name, sizeof(name), "DATA/PIDX[%u]", r);
	return sqb_diag_set(
	    diag, -SQB_ECHECKSUM, e->data, name, "%s extent for page %llu: checksum mismatch",
	    e->kind == SQB_EXT_RAW ? "RAW" : "compressed", (unsigned long long)e->first_page);
}

/* Verify and decode one RAW or COMPRESSED extent into this thread's
 * scratch: the building block of a (parallel) full verification. */
int sqb_extent_check(sqb_snap *s, unsigned int r, const struct sqb_extent *e,
		     struct sqb_diag *diag)
{
	struct scratch *sc = scratch_get();

	if (!sc)
		return -ENOMEM;
	sc->out_len = 0; /* out is overwritten */
	return decode_stored(s, r, e, sc->out, diag);
}

int sqb_read_whole_extents(int on)
{
	struct scratch *sc = scratch_get();
	int was;

	if (!sc)
		return 0;
	was = sc->whole;
	sc->whole = on;
	return was;
}

/* Bytes [skip, skip + len) of the decoded extent e (region r) into dst
 * through this thread's scratch: from what it holds of e, or decoded (a
 * prefix; the whole extent when it is asked for the second time, or when
 * sqb_read_whole_extents is on). */
static int read_part(sqb_snap *s, unsigned int r, const struct sqb_extent *e, size_t skip,
		     size_t len, uint8_t *dst, struct sqb_diag *diag)
{
	struct scratch *sc = scratch_get();
	size_t want = skip + len, bytes = (size_t)e->page_count * s->info.guest_page_size;
	int same, err;

	if (!sc)
		return -ENOMEM;
	same = sc->out_len && sc->out_gen == s->gen && sc->out_r == r &&
	       sc->out_ext.data == e->data && sc->out_ext.first_page == e->first_page &&
	       sc->out_ext.page_count == e->page_count && sc->out_ext.kind == e->kind &&
	       sc->out_ext.codec == e->codec && sc->out_ext.stored_len == e->stored_len &&
	       sc->out_ext.checksum == e->checksum;
	if (!same || sc->out_len < want) {
		if (same || sc->whole || e->kind == SQB_EXT_RAW)
			want = bytes; /* RAW: its checksum covers it all */
		sc->out_len = 0;
		if ((err = decode_stored_prefix(s, r, e, sc->out, want, diag)))
			return err;
		sc->out_gen = s->gen;
		sc->out_r = r;
		sc->out_ext = *e;
		sc->out_len = want;
	}
	memcpy(dst, sc->out + skip, len);
	return 0;
}

int sqb_snap_extent_decode(sqb_snap *s, unsigned int r, const struct sqb_extent *e, void *dst,
			   struct sqb_diag *diag)
{
	size_t bytes = (size_t)e->page_count * s->info.guest_page_size;

	switch (e->kind) {
	case SQB_EXT_ZERO:
		memset(dst, 0, bytes);
		return 0;
	case SQB_EXT_RAW:
	case SQB_EXT_COMPRESSED:
		return decode_stored(s, r, e, dst, diag);
	case SQB_EXT_DEDUP:
		return read_pages(s, (unsigned int)(e->data >> SQB_DEDUP_SHIFT),
				  e->data & SQB_DEDUP_PAGE_MASK, e->page_count, dst, diag);
	case SQB_EXT_PARENT: {
		uint64_t gpa = s->regions[r].gpa + e->first_page * s->info.guest_page_size;

		if (!s->parent)
			return sqb_diag_set(diag, -SQB_EPARENT, UINT64_MAX, "PIDX",
					    "page 0x%llx is in the parent, which was not opened",
					    (unsigned long long)gpa);
		return sqb_snap_read(s->parent, gpa, dst, bytes, diag);
	}
	}
	return -SQB_ECORRUPT;
}

/* Pages [page, page+n) of region r into dst, extent by extent. */
static int read_pages(sqb_snap *s, unsigned int r, uint64_t page, uint64_t n, uint8_t *dst,
		      struct sqb_diag *diag)
{
	uint32_t gps = s->info.guest_page_size;
	size_t idx;
	int err;

	if (sqb_snap_extent_find(s, r, page, &idx))
		return sqb_diag_set(diag, -SQB_ENOTFOUND, UINT64_MAX, "PIDX",
				    "page %llu of region %u is outside the index",
				    (unsigned long long)page, r);
	while (n) {
		const struct sqb_extent *e = &s->ext[r][idx];
		uint64_t skip = page - e->first_page;
		uint64_t take = e->page_count - skip < n ? e->page_count - skip : n;

		if (e->kind == SQB_EXT_ZERO) {
			memset(dst, 0, take * gps);
		} else if (e->kind == SQB_EXT_PARENT || e->kind == SQB_EXT_DEDUP) {
			struct sqb_extent sub = *e;

			sub.first_page = page;
			sub.page_count = (uint32_t)take;
			if (e->kind == SQB_EXT_DEDUP)
				sub.data = e->data + skip;
			if ((err = sqb_snap_extent_decode(s, r, &sub, dst, diag)))
				return err;
		} else if (!skip && take == e->page_count) {
			if ((err = decode_stored(s, r, e, dst, diag)))
				return err;
		} else if ((err = read_part(s, r, e, skip * gps, take * gps, dst, diag))) {
			return err;
		}
		dst += take * gps;
		page += take;
		n -= take;
		idx++;
	}
	return 0;
}

int sqb_snap_read(sqb_snap *s, uint64_t gpa, void *buf, size_t len, struct sqb_diag *diag)
{
	uint32_t gps = s->info.guest_page_size;
	uint8_t *dst = buf;
	unsigned int r;
	uint64_t page;
	int err;

	if (!len)
		return 0;
	if (sqb_snap_indexless(s))
		return sqb_diag_set(diag, -SQB_ESTATE, UINT64_MAX, "PIDX",
				    "%s: page index released after the load", s->path);
	if (sqb_snap_locate(s, gpa, &r, &page) ||
	    len > s->regions[r].size - (gpa - s->regions[r].gpa))
		return sqb_diag_set(diag, -SQB_ENOTFOUND, UINT64_MAX, "MEMR",
				    "[0x%llx, +0x%zx) is not inside one region",
				    (unsigned long long)gpa, len);
	/* unaligned head or tail goes through a page-sized bounce */
	while (len) {
		uint64_t in_page = (gpa - s->regions[r].gpa) % gps;

		if (in_page || len < gps) {
			struct scratch *sc = scratch_get();
			size_t take = gps - in_page < len ? gps - in_page : len;
			uint8_t page_buf[65536];

			if (!sc)
				return -ENOMEM;
			if ((err = read_pages(s, r, page, 1, page_buf, diag)))
				return err;
			memcpy(dst, page_buf + in_page, take);
			dst += take;
			gpa += take;
			len -= take;
			page++;
			continue;
		}
		{
			uint64_t n = len / gps;

			if ((err = read_pages(s, r, page, n, dst, diag)))
				return err;
			dst += n * gps;
			gpa += n * gps;
			len -= n * gps;
			page += n;
		}
	}
	return 0;
}

void sqb_snap_mem_stats(const sqb_snap *s, struct sqb_mem_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int r = 0; r < s->nregions; r++) {
		for (size_t i = 0; i < s->next[r]; i++) {
			const struct sqb_extent *e = &s->ext[r][i];

			out->pages += e->page_count;
			out->extents++;
			switch (e->kind) {
			case SQB_EXT_ZERO:
				out->zero += e->page_count;
				break;
			case SQB_EXT_PARENT:
				out->parent += e->page_count;
				break;
			case SQB_EXT_RAW:
				out->raw += e->page_count;
				out->stored_bytes += e->stored_len;
				break;
			case SQB_EXT_COMPRESSED:
				out->compressed += e->page_count;
				out->stored_bytes += e->stored_len;
				break;
			case SQB_EXT_DEDUP:
				out->dedup += e->page_count;
				break;
			}
		}
	}
}
