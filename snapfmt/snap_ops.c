/* Whole-snapshot operations built on the reader and writer: merge a chain,
 * write the diff of two snapshots, re-encode, import and export raw memory
 * (Firecracker's memory file: regions concatenated in order). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "snap_internal.h"

/* Where a chain source may copy stored extents instead of decoding them. */
struct copy_ctx {
	const sqb_snap_writer *w;    /* NULL: decode everything */
	uint64_t region_gpa;	     /* of the output region */
	struct sqb_stored_run *runs; /* indexed like kinds */
	/* diff mode: the snapshot compared with, and scratch beside buf */
	sqb_snap *base;
	uint8_t *cmp;
};

/* Diff mode: extent e of s covers pages [gpa, +page_count) whole.  When the
 * base resolves the same pages to one extent with the same pages, kind,
 * codec, length and checksum whose stored bytes are identical, the pages
 * are equal (the same stored bytes decode to the same pages): PARENT,
 * without decoding either side.  The base's bytes are checksum verified;
 * the equal bytes of s are then the same bytes against the same checksum.
 * An equal checksum alone never decides.  1: equal. */
static int chain_same_as_base(sqb_snap *s, const struct sqb_extent *e, uint64_t gpa,
			      const struct copy_ctx *cc, uint8_t *buf, uint8_t *kinds)
{
	uint32_t gps = s->info.guest_page_size;
	const struct sqb_extent *be = NULL;
	sqb_snap *b = cc->base;
	unsigned int r;
	uint64_t page;
	size_t idx;

	if (!b || e->stored_len > (uint64_t)e->page_count * gps)
		return 0;
	while (b) { /* through the base's PARENT extents */
		if (sqb_snap_locate(b, gpa, &r, &page) || sqb_snap_extent_find(b, r, page, &idx))
			return 0;
		be = &b->ext[r][idx];
		if (be->kind != SQB_EXT_PARENT)
			break;
		b = b->parent;
	}
	if (!b || be->first_page != page || be->page_count != e->page_count ||
	    be->kind != e->kind || be->codec != e->codec || be->stored_len != e->stored_len ||
	    be->checksum != e->checksum)
		return 0;
	if (sqb_extent_read_stored(b, r, be, cc->cmp, NULL) ||
	    sqb_pread_full(s->dfd, buf, e->stored_len, e->data) ||
	    memcmp(buf, cc->cmp, e->stored_len))
		return 0; /* decoded and compared as usual (errors reported there) */
	memset(kinds, SQB_PAGE_PARENT, e->page_count);
	return 1;
}

/* Extent e of s (region r) covers exactly pages [gpa, +take) of the range
 * being filled: when the writer takes it as it is, read its stored bytes
 * (checksum verified) into buf instead of decoding it.  1: copied. */
static int chain_copy(sqb_snap *s, unsigned int r, const struct sqb_extent *e, uint64_t gpa,
		      const struct copy_ctx *cc, uint8_t *buf, uint8_t *kinds, int *err)
{
	uint32_t gps = s->info.guest_page_size;
	uint64_t first = (gpa - cc->region_gpa) / gps;

	if (!cc->w || !sqb_writer_can_copy(cc->w, first, e))
		return 0;
	if ((*err = sqb_extent_read_stored(s, r, e, buf, NULL)))
		return 1;
	memset(kinds, SQB_PAGE_STORED, e->page_count);
	cc->runs[0] =
	    (struct sqb_stored_run){e->page_count, e->kind, e->codec, e->stored_len, e->checksum};
	return 1;
}

/* Describe pages [gpa, gpa + n pages) as of snapshot s, stopping at `stop`
 * (reported as PARENT): DATA pages are decoded into buf; an extent that
 * the range covers whole may be copied as stored bytes (cc). */
static int chain_fill(sqb_snap *s, const sqb_snap *stop, uint64_t gpa, uint64_t n, uint8_t *buf,
		      uint8_t *kinds, struct copy_ctx cc)
{
	uint32_t gps = s->info.guest_page_size;
	unsigned int r;
	uint64_t page;
	size_t idx;
	int err;

	if (s == stop) {
		memset(kinds, SQB_PAGE_PARENT, n);
		return 0;
	}
	if (sqb_snap_locate(s, gpa, &r, &page) || sqb_snap_extent_find(s, r, page, &idx))
		return -SQB_ENOTFOUND;
	while (n) {
		const struct sqb_extent *e = &s->ext[r][idx++];
		uint64_t take = e->first_page + e->page_count - page;

		if (take > n)
			take = n;
		if (e->kind == SQB_EXT_ZERO) {
			memset(kinds, SQB_PAGE_ZERO, take);
		} else if (e->kind == SQB_EXT_PARENT) {
			if (!s->parent)
				return -SQB_EPARENT;
			if ((err = chain_fill(s->parent, stop, gpa, take, buf, kinds, cc)))
				return err;
		} else if (page == e->first_page && take == e->page_count &&
			   chain_same_as_base(s, e, gpa, &cc, buf, kinds)) {
			/* equal to the base's: PARENT */
		} else if (!(page == e->first_page && take == e->page_count &&
			     chain_copy(s, r, e, gpa, &cc, buf, kinds, &err))) {
			if ((err = sqb_snap_read(s, gpa, buf, take * gps, NULL)))
				return err;
			memset(kinds, SQB_PAGE_DATA, take);
		} else if (err) {
			return err;
		}
		gpa += take * gps;
		buf += take * gps;
		kinds += take;
		if (cc.runs)
			cc.runs += take;
		if (cc.cmp)
			cc.cmp += take * gps;
		page += take;
		n -= take;
	}
	return 0;
}

struct chain_src {
	sqb_snap *top;
	const sqb_snap *stop;
	uint64_t gpa;
	/* diff mode: compare against this snapshot, PARENT where equal */
	sqb_snap *base;
	uint8_t *cmp;
	size_t cmp_cap;
	/* merge/repack: the writer that may take stored extents as they are */
	const sqb_snap_writer *copy_w;
	struct sqb_stored_run *runs;
	size_t runs_cap;
	/* one batch, cut into sub-ranges decoded on the writer's pool */
	struct sqb_pool *pool;
	uint64_t bgpa;
	uint32_t bn, sub;
	uint8_t *buf, *kinds;
	int *errs;
	size_t errs_cap;
};

/* Compare decoded pages [gpa, +n) with the base: equal pages become PARENT.
 * Pages already PARENT (inherited, or stored exactly as the base stores
 * them) are not read from the base. */
static int chain_cmp(struct chain_src *c, uint64_t gpa, uint32_t n, uint8_t *buf, uint8_t *kinds,
		     uint8_t *cmp)
{
	uint32_t gps = c->top->info.guest_page_size;
	int err;

	for (uint32_t lo = 0, hi; lo < n; lo = hi) {
		if (kinds[lo] == SQB_PAGE_PARENT) {
			hi = lo + 1;
			continue;
		}
		for (hi = lo; hi < n && kinds[hi] != SQB_PAGE_PARENT; hi++)
			;
		/* one batched read of the base when the run lies in one of its regions */
		if (sqb_snap_read(c->base, gpa + (uint64_t)lo * gps, cmp + (size_t)lo * gps,
				  (size_t)(hi - lo) * gps, NULL) == 0) {
			for (uint32_t i = lo; i < hi; i++) {
				uint8_t *mine = buf + (size_t)i * gps;

				if (kinds[i] == SQB_PAGE_ZERO)
					memset(mine, 0, gps);
				if (!memcmp(mine, cmp + (size_t)i * gps, gps))
					kinds[i] = SQB_PAGE_PARENT;
			}
			continue;
		}
		for (uint32_t i = lo; i < hi; i++) {
			uint8_t *mine = buf + (size_t)i * gps;

			err = sqb_snap_read(c->base, gpa + (uint64_t)i * gps, cmp, gps, NULL);
			if (err == -SQB_ENOTFOUND)
				continue; /* memory the base does not have: keep it */
			if (err)
				return err;
			if (kinds[i] == SQB_PAGE_ZERO)
				memset(mine, 0, gps);
			if (!memcmp(mine, cmp, gps))
				kinds[i] = SQB_PAGE_PARENT;
		}
	}
	return 0;
}

/* A copied extent stays whole only where the encoding path would cut the
 * same extent: at chunk boundaries and next to pages it does not encode
 * (ZERO, PARENT).  A copy that touches a decoded page or another copy is
 * decoded instead, so that the chunk's pages become one extent as the
 * encoding path makes them (no fragmentation; a repeat until no copy
 * touches one, since a decoded copy is a decoded page for its neighbours). */
static int chain_uncopy(struct chain_src *c, uint64_t gpa, uint32_t n, uint8_t *buf, uint8_t *kinds,
			const struct sqb_stored_run *runs)
{
	uint32_t gps = c->top->info.guest_page_size, cp = sqb_writer_chunk_pages(c->copy_w);
	uint64_t first = (gpa - c->gpa) / gps;

	for (uint32_t lo = 0; lo < n;) {
		uint32_t hi = lo + cp - (uint32_t)((first + lo) % cp);
		int changed = 1;

		if (hi > n)
			hi = n;
		while (changed) {
			changed = 0;
			for (uint32_t i = lo; i < hi;) {
				uint32_t k, end;
				int err;

				if (kinds[i] != SQB_PAGE_STORED) {
					i++;
					continue;
				}
				k = runs[i].count;
				end = i + k;
				if (!(i > lo && (kinds[i - 1] == SQB_PAGE_DATA ||
						 kinds[i - 1] == SQB_PAGE_STORED)) &&
				    !(end < hi && (kinds[end] == SQB_PAGE_DATA ||
						   kinds[end] == SQB_PAGE_STORED))) {
					i = end;
					continue;
				}
				if ((err = sqb_snap_read(c->top, gpa + (uint64_t)i * gps,
							 buf + (size_t)i * gps, (size_t)k * gps,
							 NULL)))
					return err;
				memset(kinds + i, SQB_PAGE_DATA, k);
				changed = 1;
				i = end;
			}
		}
		lo = hi;
	}
	return 0;
}

/* Pool task: sub-range k of the batch (readers are thread-safe). */
static void chain_task(void *ctx, size_t k)
{
	struct chain_src *c = ctx;
	uint32_t gps = c->top->info.guest_page_size;
	uint32_t lo = (uint32_t)k * c->sub, n = c->bn - lo < c->sub ? c->bn - lo : c->sub;
	uint64_t gpa = c->bgpa + (uint64_t)lo * gps;
	uint8_t *buf = c->buf + (size_t)lo * gps, *kinds = c->kinds + lo;
	struct copy_ctx cc = {c->copy_w, c->gpa, c->runs ? c->runs + lo : NULL, c->base,
			      c->base ? c->cmp + (size_t)lo * gps : NULL};
	int whole = sqb_read_whole_extents(1); /* pieces of one chunk come in page order */
	int err = chain_fill(c->top, c->stop, gpa, n, buf, kinds, cc);

	if (!err && c->copy_w)
		err = chain_uncopy(c, gpa, n, buf, kinds, c->runs + lo);

	if (!err && c->base)
		err = chain_cmp(c, gpa, n, buf, kinds, c->cmp + (size_t)lo * gps);
	sqb_read_whole_extents(whole);
	c->errs[k] = err;
}

static int chain_get(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		     uint8_t *kinds)
{
	struct chain_src *c = ctx;
	uint32_t gps = c->top->info.guest_page_size;
	size_t ntask;

	*data = scratch;
	if (c->copy_w && n > c->runs_cap) {
		free(c->runs);
		c->runs_cap = n;
		if (!(c->runs = malloc(n * sizeof(*c->runs))))
			return -ENOMEM;
	}
	if (c->base && (size_t)n * gps > c->cmp_cap) {
		free(c->cmp);
		c->cmp_cap = (size_t)n * gps;
		if (!(c->cmp = malloc(c->cmp_cap)))
			return -ENOMEM;
	}
	/* sub-ranges of 1 MiB of guest memory, the largest chunk a writer may
	 * cut ([F-36]), aligned to the region: no chunk is decoded twice */
	c->sub = SQB_MAX_CHUNK / gps;
	c->bgpa = c->gpa + first * gps;
	c->bn = n;
	c->buf = scratch;
	c->kinds = kinds;
	ntask = (n + c->sub - 1) / c->sub;
	if (ntask > c->errs_cap) {
		free(c->errs);
		c->errs_cap = ntask;
		if (!(c->errs = malloc(ntask * sizeof(int))))
			return -ENOMEM;
	}
	if (c->pool && ntask > 1) {
		sqb_pool_run(c->pool, ntask, chain_task, c);
	} else {
		for (size_t k = 0; k < ntask; k++)
			chain_task(c, k);
	}
	for (size_t k = 0; k < ntask; k++)
		if (c->errs[k])
			return c->errs[k]; /* the first in guest order */
	return 0;
}

static void ops_opts(struct sqb_write_opts *o, const struct sqb_write_opts *in, const sqb_snap *s,
		     const sqb_snap *parent)
{
	if (in)
		*o = *in;
	else
		*o = (struct sqb_write_opts)SQB_WRITE_OPTS_INIT;
	o->arch = s->info.arch;
	o->hv = s->info.hv;
	o->role = s->info.role;
	o->guest_page_size = s->info.guest_page_size;
	if (!o->host_page_size)
		o->host_page_size = s->info.host_page_size;
	o->parent = parent;
	o->uuid = NULL;
}

/* Write every region of `top` through chain_src into a new snapshot. */
static int ops_write(const char *out, sqb_snap *top, const sqb_snap *stop, sqb_snap *base,
		     const struct sqb_write_opts *opts, struct sqb_uuid *uuid,
		     struct sqb_digest *digest)
{
	sqb_snap_writer *w;
	struct chain_src c = { .top = top, .stop = stop, .base = base };
	struct sqb_page_source src = { chain_get, &c };
	int err;

	if ((err = sqb_writer_open(&w, out, opts)))
		return err;
	c.pool = sqb_writer_pool(w);
	/* stored extents whose codec is the output's are copied, not decoded and
	 * encoded again, unless the caller asked for a particular chunk size or
	 * codec level (re-encoding is then the point); a diff against `base`
	 * needs every page decoded */
	if (!base && !opts->chunk_size && !opts->level)
		c.copy_w = w;
	for (unsigned int r = 0; r < top->nregions && !err; r++) {
		c.gpa = top->regions[r].gpa;
		err = sqb_writer_add_memory_copy(w, c.gpa, top->regions[r].size, &src, &c.runs);
	}
	if (!err)
		err = sqb_writer_copy_state(w, top);
	if (!err)
		err = sqb_writer_finish(w, uuid, digest);
	sqb_writer_free(w);
	free(c.cmp);
	free(c.errs);
	free(c.runs);
	return err;
}

static int same_file(const char *out, const sqb_snap *s)
{
	struct stat a, b;

	for (; s; s = s->parent)
		if (stat(out, &a) == 0 && fstat(s->fd, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return 1;
	return 0;
}

int sqb_snap_merge(const char *out, sqb_snap *s, const struct sqb_write_opts *opts,
		   unsigned int flags)
{
	return sqb_snap_merge_ident(NULL, NULL, out, s, opts, flags);
}

int sqb_snap_merge_ident(struct sqb_uuid *uuid, struct sqb_digest *digest, const char *out,
			 sqb_snap *s, const struct sqb_write_opts *opts, unsigned int flags)
{
	struct sqb_write_opts o;
	const sqb_snap *base = NULL;

	if (sqb_snap_indexless(s))
		return -SQB_ESTATE;
	if (same_file(out, s))
		return -EEXIST; /* never write over an input */
	if (s->info.kind == SQB_SNAP_DIFF && !s->parent && s->info.role != SQB_ROLE_STATE)
		return -SQB_EPARENT;
	if (flags & SQB_MERGE_KEEP_BASE) {
		for (base = s; base->parent; base = base->parent)
			;
		if (base == s)
			return -EINVAL; /* nothing above the base to squash */
	}
	ops_opts(&o, opts, s, base);
	return ops_write(out, s, base, NULL, &o, uuid, digest);
}

int sqb_snap_write_diff(const char *out, sqb_snap *a, sqb_snap *b,
			const struct sqb_write_opts *opts)
{
	struct sqb_write_opts o;
	const sqb_snap *stop = NULL;

	if (sqb_snap_indexless(a) || sqb_snap_indexless(b))
		return -SQB_ESTATE;
	if (same_file(out, a) || same_file(out, b))
		return -EEXIST;
	if (a->info.arch != b->info.arch || a->info.hv != b->info.hv ||
	    a->info.guest_page_size != b->info.guest_page_size)
		return -SQB_EMISMATCH;
	/* pages b inherits from a (b's chain reaches a) need no comparison */
	for (const sqb_snap *p = b->parent; p; p = p->parent)
		if (!memcmp(p->info.digest.b, a->info.digest.b, 16))
			stop = p;
	ops_opts(&o, opts, b, a);
	return ops_write(out, b, stop, a, &o, NULL, NULL);
}

int sqb_snap_repack(const char *out, sqb_snap *s, const struct sqb_write_opts *opts)
{
	return sqb_snap_repack_ident(NULL, NULL, out, s, opts);
}

int sqb_snap_repack_ident(struct sqb_uuid *uuid, struct sqb_digest *digest, const char *out,
			  sqb_snap *s, const struct sqb_write_opts *opts)
{
	struct sqb_write_opts o;

	if (sqb_snap_indexless(s))
		return -SQB_ESTATE;
	if (same_file(out, s))
		return -EEXIST;
	if (s->info.kind == SQB_SNAP_DIFF && !s->parent)
		return -SQB_EPARENT;
	ops_opts(&o, opts, s, s->parent);
	return ops_write(out, s, s->parent, NULL, &o, uuid, digest);
}

struct raw_src {
	int fd;
	uint64_t off; /* file offset of the region */
	uint32_t gps;
};

static int raw_get(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		   uint8_t *kinds)
{
	struct raw_src *r = ctx;
	int err = sqb_pread_full(r->fd, scratch, (size_t)n * r->gps, r->off + first * r->gps);

	*data = scratch;
	memset(kinds, SQB_PAGE_DATA, n);
	return err;
}

int sqb_snap_import_raw(const char *out, const char *raw_path, const struct sqb_region *layout,
			unsigned int n, const struct sqb_write_opts *opts)
{
	struct sqb_write_opts o = opts ? *opts : (struct sqb_write_opts)SQB_WRITE_OPTS_INIT;
	struct sqb_region whole;
	sqb_snap_writer *w = NULL;
	struct raw_src rs;
	struct stat st;
	uint64_t total = 0;
	int err;

	o.parent = NULL;
	rs.gps = o.guest_page_size;
	rs.fd = open(raw_path, O_RDONLY | O_CLOEXEC);
	if (rs.fd < 0)
		return -errno;
	if (fstat(rs.fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!n) { /* one region at guest address 0 */
		whole = (struct sqb_region){ 0, (uint64_t)st.st_size, 0 };
		layout = &whole;
		n = 1;
	}
	for (unsigned int i = 0; i < n; i++)
		total += layout[i].size;
	if (total != (uint64_t)st.st_size) {
		err = -SQB_EMISMATCH; /* the layout must describe the whole file */
		goto out;
	}
	if ((err = sqb_writer_open(&w, out, &o)))
		goto out;
	rs.off = 0;
	for (unsigned int i = 0; i < n && !err; i++) {
		struct sqb_page_source src = { raw_get, &rs };

		err = sqb_writer_add_memory_src(w, layout[i].gpa, layout[i].size, &src);
		rs.off += layout[i].size;
	}
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
out:
	sqb_writer_free(w);
	close(rs.fd);
	return err;
}

int sqb_snap_export_raw(sqb_snap *s, const char *out, int r)
{
	const size_t step = 4u << 20;
	struct sqb_afile af;
	uint64_t pos = 0;
	uint8_t *buf;
	int err;

	if (sqb_snap_indexless(s))
		return -SQB_ESTATE;
	if (r >= (int)s->nregions)
		return -SQB_ENOTFOUND;
	if (same_file(out, s))
		return -EEXIST;
	buf = malloc(step);
	if (!buf)
		return -ENOMEM;
	if ((err = sqb_afile_open(&af, out))) {
		free(buf);
		return err;
	}
	for (unsigned int i = 0; i < s->nregions && !err; i++) {
		if (r >= 0 && (unsigned)r != i)
			continue;
		for (uint64_t off = 0; off < s->regions[i].size && !err; off += step) {
			size_t take = s->regions[i].size - off < step ? s->regions[i].size - off : step;

			err = sqb_snap_read(s, s->regions[i].gpa + off, buf, take, NULL);
			if (!err)
				err = sqb_pwrite_full(af.fd, buf, take, pos);
			pos += take;
		}
	}
	free(buf);
	if (err) {
		sqb_afile_abort(&af);
		return err;
	}
	return sqb_afile_commit(&af);
}
