/* Full verification of an opened snapshot: every section checksum and
 * structure, every extent's checksum and codec, no overlaps, zero filler,
 * and optionally the whole parent chain (docs/format.md [F-22], [F-26], [F-80]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

/* [F-26] bytes outside every section and extent are zero. */
static int v_filler(struct vctx *v, struct span *sp, size_t n)
{
	uint8_t buf[65536];
	struct sqb_diag d;
	uint64_t pos = 0, end = v->s->info.file_size;

	qsort(sp, n, sizeof(*sp), span_cmp);
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? sp[i].off : end;

		if (i < n && sp[i].off < pos) {
			sqb_diag_set(&d, -SQB_ECORRUPT, sp[i].off, sp[i].what,
				     "overlaps the preceding %s", i ? sp[i - 1].what : "header");
			if (vproblem(v, -SQB_ECORRUPT, &d))
				return 1;
		}
		while (pos < next) {
			size_t take = next - pos < sizeof(buf) ? (size_t)(next - pos) : sizeof(buf);
			int err = sqb_pread_full(v->s->fd, buf, take, pos);

			if (err) {
				sqb_diag_set(&d, err, pos, "file", "cannot read");
				return vproblem(v, err, &d);
			}
			for (size_t k = 0; k < take; k++) {
				if (buf[k]) {
					sqb_diag_set(&d, -SQB_ECORRUPT, pos + k, "filler",
						     "non-zero byte outside every section and extent");
					if (vproblem(v, -SQB_ECORRUPT, &d))
						return 1;
					break;
				}
			}
			pos += take;
		}
		if (i < n && sp[i].off + sp[i].len > pos)
			pos = sp[i].off + sp[i].len;
	}
	return 0;
}

int sqb_snap_verify(sqb_snap *s, unsigned int flags, unsigned int max_problems, sqb_verify_cb cb,
		    void *ctx)
{
	struct vctx v = { s, cb, ctx, max_problems ? max_problems : 100, 0, 0 };
	struct span *sp = NULL;
	size_t nsp = 0, cap = 16 + s->ndir;
	uint8_t *buf = malloc(SQB_MAX_CHUNK);
	struct sqb_diag d;

	for (unsigned int r = 0; r < s->nregions; r++)
		cap += s->next[r];
	sp = calloc(cap, sizeof(*sp));
	if (!sp || !buf) {
		free(sp);
		free(buf);
		return -ENOMEM;
	}
	sp[nsp++] = (struct span){ 0, SQB_HEADER_SIZE, "header" };
	sp[nsp++] = (struct span){ s->dir_offset, (uint64_t)s->ndir * SQB_DIRENT_SIZE, "directory" };
	for (unsigned int i = 0; i < s->ndir; i++) {
		if (s->dir[i].type != SQB_SEC_DATA)
			sp[nsp++] = (struct span){ s->dir[i].offset, s->dir[i].length, "section" };
		if (v_section(&v, i))
			goto out;
	}
	for (unsigned int r = 0; r < s->nregions; r++) {
		for (size_t i = 0; i < s->next[r]; i++) {
			const struct sqb_extent *e = &s->ext[r][i];
			int err;

			if (e->kind != SQB_EXT_RAW && e->kind != SQB_EXT_COMPRESSED)
				continue;
			sp[nsp++] = (struct span){ e->data, e->stored_len, "extent" };
			err = sqb_snap_extent_decode(s, r, e, buf, &d);
			if (err && vproblem(&v, err, &d))
				goto out;
		}
	}
	if (v_filler(&v, sp, nsp))
		goto out;
	if ((flags & SQB_VERIFY_CHAIN) && s->parent) {
		int err = sqb_snap_verify(s->parent, flags, v.max - v.count, cb, ctx);

		if (err && !v.first)
			v.first = err;
	}
out:
	free(sp);
	free(buf);
	return v.first;
}
