/* Full verification of an opened snapshot: every section checksum and
 * structure, every extent's checksum and codec, no overlaps, zero filler,
 * and optionally the whole parent chain (docs/format.md [F-22], [F-26], [F-80]). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io.h"
#include "snap_internal.h"

struct vctx {
	sqb_snap *s;
	sqb_verify_cb cb;
	void *ctx;
	unsigned int max, count;
	int first;
};

/* Record a problem; returns nonzero when verification must stop. */
static int vproblem(struct vctx *v, int err, const struct sqb_diag *d)
{
	if (!v->first)
		v->first = err;
	v->count++;
	if (v->cb)
		v->cb(v->ctx, err, d);
	return v->count >= v->max;
}

static int v_section(struct vctx *v, unsigned int i)
{
	struct sqb_section_info si;
	struct sqb_diag d;
	char name[48];
	uint8_t *buf = NULL;
	size_t len;
	int err;

	sqb_snap_section_info(v->s, i, &si);
	if (si.type == SQB_SEC_DATA)
		return 0;
	snprintf(name, sizeof(name), "%s[%u]", sqb_section_type_name(si.type, name + 24),
		 si.instance);
	if (!si.known) {
		/* an unknown ancillary section is skipped, but its bytes are still checked */
		if (si.length > SQB_MAX_META_SECTION)
			return 0;
	}
	err = sqb_snap_section_read(v->s, i, (void **)&buf, &len, &d);
	if (err)
		return vproblem(v, err, &d);
	if (si.known) {
		struct sqb_record *recs = NULL;
		struct sqb_kv *kv = NULL;
		unsigned int n;

		err = 0;
		if (si.type == SQB_SEC_VCPU || si.type == SQB_SEC_INTC)
			err = sqb_records_parse(buf, len, &recs, &n, name, si.offset, &d);
		else if (si.type == SQB_SEC_CONF || si.type == SQB_SEC_META)
			err = sqb_kv_parse(buf, len, &kv, &n, name, si.offset, &d);
		else if (si.type == SQB_SEC_LINK && (!len || memchr(buf, 0, len)))
			err = sqb_diag_set(&d, -SQB_ECORRUPT, si.offset, name, "bad path hint");
		else if (si.type == SQB_SEC_DEVS) {
			struct sqb_device dev;
			void *back;

			err = sqb_snap_device(v->s, si.instance, &dev, &back, &d);
			free(back);
		} else if (si.type == SQB_SEC_WSET) {
			struct sqb_wset_range *r;
			size_t nr;

			err = sqb_snap_working_set(v->s, &r, &nr, &d);
			free(r);
		}
		free(recs);
		free(kv);
		if (err && vproblem(v, err, &d)) {
			free(buf);
			return 1;
		}
	}
	free(buf);
	return 0;
}

struct span {
	uint64_t off, len;
	const char *what;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Offset of the first non-zero byte of p[0, n), or n. */
static size_t first_nonzero(const uint8_t *p, size_t n)
{
	size_t k = 0;

	for (; k + 32 <= n; k += 32) {
		uint64_t w[4];

		memcpy(w, p + k, sizeof(w));
		if (w[0] | w[1] | w[2] | w[3])
			break;
	}
	while (k < n && !p[k])
		k++;
	return k;
}

/* Check [pos, end) reads as zero.  Holes read as zero by definition
 * ([F-26]), so only the data parts the file system reports are read. */
static int v_zero_range(struct vctx *v, int fd, uint8_t *buf, size_t cap, uint64_t pos,
			uint64_t end)
{
	struct sqb_diag d;

	while (pos < end) {
		uint64_t stop = end;
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);

		if (data < 0 && errno == ENXIO)
			return 0; /* nothing but a hole up to the end of the file */
		if (data >= 0) { /* else the file system cannot tell: read it all */
			off_t hole;

			if ((uint64_t)data >= end)
				return 0;
			pos = (uint64_t)data;
			hole = lseek(fd, (off_t)pos, SEEK_HOLE);
			if (hole > (off_t)pos && (uint64_t)hole < end)
				stop = (uint64_t)hole;
		}
		while (pos < stop) {
			size_t take = stop - pos < cap ? (size_t)(stop - pos) : cap, z;
			int err = sqb_pread_full(fd, buf, take, pos);

			if (err) {
				sqb_diag_set(&d, err, pos, "file", "cannot read");
				return vproblem(v, err, &d);
			}
			if ((z = first_nonzero(buf, take)) < take) {
				sqb_diag_set(&d, -SQB_ECORRUPT, pos + z, "filler",
					     fd == v->s->fd
						 ? "non-zero byte outside every section and extent"
						 : "non-zero byte in the raw memory file where the "
						   "index says ZERO or PARENT");
				return vproblem(v, -SQB_ECORRUPT, &d);
			}
			pos += take;
		}
	}
	return 0;
}

/* [F-26] bytes outside every section and extent are zero. */
static int v_filler(struct vctx *v, struct span *sp, size_t n)
{
	uint8_t *buf = malloc(65536);
	struct sqb_diag d;
	uint64_t pos = 0, end = v->s->info.file_size;
	int stop = 0;

	if (!buf)
		return vproblem(v, -ENOMEM, &(struct sqb_diag){ UINT64_MAX, "file", "out of memory" });
	qsort(sp, n, sizeof(*sp), span_cmp);
	for (size_t i = 0; i <= n && !stop; i++) {
		uint64_t next = i < n ? sp[i].off : end;

		if (i < n && sp[i].off < pos) {
			sqb_diag_set(&d, -SQB_ECORRUPT, sp[i].off, sp[i].what,
				     "overlaps the preceding %s", i ? sp[i - 1].what : "header");
			if (vproblem(v, -SQB_ECORRUPT, &d))
				stop = 1;
		}
		if (!stop && pos < next)
			stop = v_zero_range(v, v->s->fd, buf, 65536, pos, next);
		if (i < n && sp[i].off + sp[i].len > pos)
			pos = sp[i].off + sp[i].len;
	}
	free(buf);
	return stop;
}

/* [F-92] the raw memory file holds zero bytes (holes) outside its RAW
 * extents: a Firecracker handler copies those pages as they are. */
static int v_xmem_zero(struct vctx *v)
{
	sqb_snap *s = v->s;
	uint8_t *buf = malloc(65536);
	int stop = 0;

	if (!buf)
		return vproblem(v, -ENOMEM, &(struct sqb_diag){ UINT64_MAX, "file", "out of memory" });
	for (unsigned int r = 0; r < s->nregions && !stop; r++)
		for (size_t i = 0; i < s->next[r] && !stop; i++) {
			const struct sqb_extent *e = &s->ext[r][i];
			uint64_t at = s->xbase[r] + e->first_page * s->info.guest_page_size;

			if (e->kind != SQB_EXT_RAW)
				stop = v_zero_range(v, s->dfd, buf, 65536, at,
						    at + (uint64_t)e->page_count *
							     s->info.guest_page_size);
		}
	free(buf);
	return stop;
}

/* The data extents of all regions, checked on every core ([F-80]): each
 * worker verifies and decodes into its own scratch; problems are reported
 * afterwards in file order, so the result does not depend on scheduling. */
struct xref {
	unsigned int r;
	size_t i;
	int err;
};

/* Checksum-only mode: runs of extents that lie one after another in the
 * file are read with one large pread each and hashed in memory. */
#define XGROUP_SPAN (1024u << 10) /* bytes of file per read */
#define XGROUP_GAP  65536u	  /* filler a read may span between two extents */

struct xgroup {
	size_t first, count; /* xref indexes */
	uint64_t off, len;   /* the file span read at once */
	int gaps_zero;	     /* the filler between its extents was read: all zero */
};

struct xjob {
	sqb_snap *s;
	struct xref *x;
	struct xgroup *g;
	/* read buffers, one per running task */
	pthread_mutex_t lock;
	uint8_t **bufs;
	unsigned int nbufs, nfree;
};

static void v_extent_task(void *ctx, size_t k)
{
	struct xjob *j = ctx;
	struct xref *x = &j->x[k];

	x->err = sqb_extent_check(j->s, x->r, &j->s->ext[x->r][x->i], NULL);
}

static uint8_t *xbuf_get(struct xjob *j)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&j->lock);
	if (j->nfree)
		b = j->bufs[--j->nfree];
	pthread_mutex_unlock(&j->lock);
	return b ? b : malloc(XGROUP_SPAN + SQB_MAX_STORED);
}

static void xbuf_put(struct xjob *j, uint8_t *b)
{
	pthread_mutex_lock(&j->lock);
	if (j->nfree < j->nbufs) {
		j->bufs[j->nfree++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&j->lock);
	free(b);
}

/* Group k: one read of its span, then each extent's checksum. */
static void v_group_task(void *ctx, size_t k)
{
	struct xjob *j = ctx;
	const struct xgroup *g = &j->g[k];
	uint8_t *buf = xbuf_get(j);
	int rerr;

	if (!buf) {
		for (size_t i = 0; i < g->count; i++)
			j->x[g->first + i].err = -ENOMEM;
		return;
	}
	rerr = sqb_pread_full(j->s->dfd, buf, g->len, g->off);
	j->g[k].gaps_zero = !rerr;
	for (size_t i = 0; i < g->count; i++) {
		struct xref *x = &j->x[g->first + i];
		const struct sqb_extent *e = &j->s->ext[x->r][x->i];

		if (rerr) { /* find out which extent cannot be read */
			x->err = sqb_extent_read_stored(j->s, x->r, e, buf, NULL);
			continue;
		}
		x->err = sqb_extent_sum_check(x->r, e, buf + (e->data - g->off), NULL);
		if (i) { /* [F-26] the filler before it, already in the buffer */
			const struct sqb_extent *p = &j->s->ext[x[-1].r][x[-1].i];
			uint64_t from = p->data + p->stored_len - g->off;
			size_t gap = (size_t)(e->data - g->off - from);

			if (gap && first_nonzero(buf + from, gap) < gap)
				j->g[k].gaps_zero = 0;
		}
	}
	xbuf_put(j, buf);
}

/* Cut the extents (index order) into groups of neighbours in the file. */
static size_t v_groups(struct xjob *j, size_t n)
{
	size_t ng = 0;

	for (size_t k = 0; k < n;) {
		const struct sqb_extent *e = &j->s->ext[j->x[k].r][j->x[k].i];
		struct xgroup *g = &j->g[ng++];
		uint64_t end = e->data + e->stored_len;

		*g = (struct xgroup){k, 1, e->data, e->stored_len};
		for (k++; k < n; k++) {
			const struct sqb_extent *f = &j->s->ext[j->x[k].r][j->x[k].i];

			if (f->data < end || f->data - end > XGROUP_GAP ||
			    f->data + f->stored_len - g->off > XGROUP_SPAN)
				break;
			end = f->data + f->stored_len;
			g->count++;
		}
		g->len = end - g->off;
	}
	return ng;
}

static int v_extents(struct vctx *v, struct span *sp, size_t *nsp, int decode)
{
	sqb_snap *s = v->s;
	struct xjob j = {.s = s};
	struct sqb_pool *pool = NULL;
	uint64_t bytes = 0;
	size_t n = 0, ng = 0;
	uint8_t *one = NULL;
	int ordered = 1;

	for (unsigned int r = 0; r < s->nregions; r++)
		for (size_t i = 0; i < s->next[r]; i++)
			n += s->ext[r][i].kind == SQB_EXT_RAW || s->ext[r][i].kind == SQB_EXT_COMPRESSED;
	j.x = calloc(n ? n : 1, sizeof(*j.x));
	if (!j.x)
		return vproblem(v, -ENOMEM, &(struct sqb_diag){ UINT64_MAX, "file", "out of memory" });
	n = 0;
	for (unsigned int r = 0; r < s->nregions; r++) {
		for (size_t i = 0; i < s->next[r]; i++) {
			const struct sqb_extent *e = &s->ext[r][i];

			if (e->kind != SQB_EXT_RAW && e->kind != SQB_EXT_COMPRESSED)
				continue;
			j.x[n++] = (struct xref){ r, i, 0 };
			bytes += e->stored_len;
		}
	}
	if (!decode) {
		j.g = calloc(n ? n : 1, sizeof(*j.g));
		if (!j.g) {
			free(j.x);
			return vproblem(v, -ENOMEM,
					&(struct sqb_diag){UINT64_MAX, "file", "out of memory"});
		}
		ng = v_groups(&j, n);
	}
	/* threads pay off only for more than a few MiB */
	if (bytes >= (8u << 20) && sqb_pool_create(&pool, 0) == 0) {
		if (decode) {
			sqb_pool_run(pool, n, v_extent_task, &j);
		} else {
			j.nbufs = sqb_pool_threads(pool) + 1;
			j.bufs = calloc(j.nbufs, sizeof(*j.bufs));
			if (!j.bufs)
				j.nbufs = 0;
			pthread_mutex_init(&j.lock, NULL);
			sqb_pool_run(pool, ng, v_group_task, &j);
			pthread_mutex_destroy(&j.lock);
		}
		sqb_pool_free(pool);
	} else if (decode) {
		for (size_t k = 0; k < n; k++)
			v_extent_task(&j, k);
	} else {
		pthread_mutex_init(&j.lock, NULL);
		for (size_t k = 0; k < ng; k++)
			v_group_task(&j, k);
		pthread_mutex_destroy(&j.lock);
	}
	for (unsigned int i = 0; i < j.nfree; i++)
		free(j.bufs[i]);
	free(j.bufs);
	/* the extents' spans for the filler check; a group whose filler was
	 * read and found zero is one span (XMEM: the bytes are in the raw file),
	 * when the extents lie in the file in index order (as squib writes
	 * them), so that no other extent can lie in a group's filler */
	for (size_t k = 1; k < n && ordered; k++) {
		const struct sqb_extent *p = &s->ext[j.x[k - 1].r][j.x[k - 1].i];

		ordered = s->ext[j.x[k].r][j.x[k].i].data >= p->data + p->stored_len;
	}
	for (size_t k = 0, gi = 0; k < n && !s->xbase; k++) {
		const struct sqb_extent *e = &s->ext[j.x[k].r][j.x[k].i];

		if (ordered && j.g && gi < ng && j.g[gi].first == k && j.g[gi].gaps_zero) {
			sp[(*nsp)++] = (struct span){j.g[gi].off, j.g[gi].len, "extent"};
			k += j.g[gi].count - 1;
			gi++;
			continue;
		}
		if (j.g && gi < ng && k + 1 >= j.g[gi].first + j.g[gi].count)
			gi++;
		sp[(*nsp)++] = (struct span){e->data, e->stored_len, "extent"};
	}
	free(j.g);
	for (size_t k = 0; k < n; k++) {
		const struct sqb_extent *e = &s->ext[j.x[k].r][j.x[k].i];
		struct sqb_diag d;

		if (!j.x[k].err)
			continue;
		/* again, single-threaded, for the diagnostic */
		if (decode)
			sqb_extent_check(s, j.x[k].r, e, &d);
		else if (one || (one = malloc(SQB_MAX_STORED)))
			sqb_extent_read_stored(s, j.x[k].r, e, one, &d);
		else
			sqb_diag_set(&d, -ENOMEM, UINT64_MAX, "file", "out of memory");
		if (vproblem(v, j.x[k].err, &d)) {
			free(one);
			free(j.x);
			return 1;
		}
	}
	free(one);
	free(j.x);
	return 0;
}

int sqb_snap_verify(sqb_snap *s, unsigned int flags, unsigned int max_problems, sqb_verify_cb cb,
		    void *ctx)
{
	struct vctx v = { s, cb, ctx, max_problems ? max_problems : 100, 0, 0 };
	struct span *sp = NULL;
	size_t nsp = 0, cap = 16 + s->ndir;

	if (sqb_snap_indexless(s))
		return -SQB_ESTATE;
	for (unsigned int r = 0; r < s->nregions; r++)
		cap += s->next[r];
	sp = calloc(cap, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp[nsp++] = (struct span){ 0, SQB_HEADER_SIZE, "header" };
	sp[nsp++] = (struct span){ s->dir_offset, (uint64_t)s->ndir * SQB_DIRENT_SIZE, "directory" };
	for (unsigned int i = 0; i < s->ndir; i++) {
		if (s->dir[i].type != SQB_SEC_DATA)
			sp[nsp++] = (struct span){ s->dir[i].offset, s->dir[i].length, "section" };
		if (v_section(&v, i))
			goto out;
	}
	if (v_extents(&v, sp, &nsp, !(flags & SQB_VERIFY_NO_DECODE)))
		goto out;
	if (v_filler(&v, sp, nsp))
		goto out;
	if (s->xbase && v_xmem_zero(&v))
		goto out;
	if ((flags & SQB_VERIFY_CHAIN) && s->parent) {
		int err = sqb_snap_verify(s->parent, flags, v.max - v.count, cb, ctx);

		if (err && !v.first)
			v.first = err;
	}
out:
	free(sp);
	return v.first;
}
