/* mmap strategy: MAP_PRIVATE of RAW runs straight from the snapshot file of
 * whichever chain layer holds them (format.md [F-33]: RAW data is congruent
 * to its guest offset mod 64 KiB, filler is zero), anonymous zero for ZERO,
 * and a decode fallback per extent for everything else (and for RAW runs of
 * a file that could not be leased: restore_lease.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

struct mctx {
	sqb_restore *rs;
	struct rs_range *rg;
	int verify;
	/* the file run being built: [start, end_raw) maps fd at start + delta;
	 * end extends over ZERO gaps of the run's own layer that a later
	 * matching RAW run may absorb */
	int active, fd;
	uint64_t start, end, end_raw;
	int64_t delta;
	const struct sqb_extent *verified; /* last RAW extent whose checksum we read */
	/* extents to decode after mapping */
	struct {
		uint64_t off, gpa, len;
	} * dec;
	size_t ndec, capdec;
	struct sqb_diag *diag;
	uint8_t *scratch;
	const sqb_snap *cur_layer; /* layer of the active run */
};

/* One piece of an extent: e of region r of layer (whose file is fd), the
 * extent's first byte at guest address ext_gpa; [gpa, gpa+len) of it lands
 * at destination offset off. */
struct piece {
	sqb_snap *layer;
	int fd;
	unsigned int r;
	const struct sqb_extent *e;
	uint64_t ext_gpa, off, gpa, len;
};
static int on_run(struct mctx *m, const struct piece *p);

/* Walk [gpa, gpa+len) of s, following PARENT extents into lower layers. */
static int resolve(struct mctx *m, sqb_snap *s, uint64_t gpa, uint64_t len, uint64_t off)
{
	uint32_t gps = sqb_snap_get_info(s)->guest_page_size;
	struct piece pc = {.layer = s, .fd = sqb_snap_fd(s)};
	int err;

	while (len) {
		unsigned int r;
		uint64_t page;
		size_t idx, cnt;
		struct sqb_region reg;
		const struct sqb_extent *ext;

		if (sqb_snap_locate(s, gpa, &r, &page) || sqb_snap_extent_find(s, r, page, &idx) ||
		    sqb_snap_region(s, r, &reg))
			return -SQB_ENOTFOUND;
		ext = sqb_snap_extents(s, r);
		cnt = sqb_snap_extent_count(s, r);
		for (; idx < cnt && len; idx++) {
			const struct sqb_extent *e = &ext[idx];
			uint64_t end = reg.gpa + (e->first_page + e->page_count) * gps;
			uint64_t take = end - gpa < len ? end - gpa : len;

			if (e->kind == SQB_EXT_PARENT && sqb_snap_parent(s)) {
				err = resolve(m, sqb_snap_parent(s), gpa, take, off);
			} else {
				pc.r = r;
				pc.e = e;
				pc.ext_gpa = end - (uint64_t)e->page_count * gps;
				pc.off = off;
				pc.gpa = gpa;
				pc.len = take;
				err = on_run(m, &pc);
			}
			if (err)
				return err;
			gpa += take;
			off += take;
			len -= take;
		}
	}
	return 0;
}

static int flush(struct mctx *m)
{
	uint64_t len = m->end_raw - m->start;
	void *p;

	if (!m->active)
		return 0;
	m->active = 0;
	p = mmap(m->rg->local + m->start, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
		 m->fd, (off_t)(m->start + (uint64_t)m->delta));
	if (p == MAP_FAILED)
		return -errno;
	atomic_fetch_add(&m->rs->mapped, len);
	return 0;
}

static int add_decode(struct mctx *m, uint64_t off, uint64_t gpa, uint64_t len)
{
	if (m->ndec && m->dec[m->ndec - 1].off + m->dec[m->ndec - 1].len == off &&
	    m->dec[m->ndec - 1].gpa + m->dec[m->ndec - 1].len == gpa) {
		m->dec[m->ndec - 1].len += len;
		return 0;
	}
	if (m->ndec == m->capdec) {
		size_t cap = m->capdec ? m->capdec * 2 : 64;
		void *n = realloc(m->dec, cap * sizeof(*m->dec));

		if (!n)
			return -ENOMEM;
		m->dec = n;
		m->capdec = cap;
	}
	m->dec[m->ndec].off = off;
	m->dec[m->ndec].gpa = gpa;
	m->dec[m->ndec++].len = len;
	return 0;
}

/* Read the filler under a ZERO gap of a file run (a gap of the run's own
 * layer, see on_run): [F-26] says it is zero; a file that breaks that rule
 * is refused rather than mapped. */
static int check_filler(struct mctx *m, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t n = len < RS_BLOCK ? len : RS_BLOCK;
		ssize_t got = pread(m->fd, m->scratch, n, (off_t)(off + (uint64_t)m->delta));

		if (got != (ssize_t)n)
			return got < 0 ? -errno : -SQB_ETRUNCATED;
		for (uint64_t i = 0; i < n; i++)
			if (m->scratch[i]) {
				if (m->diag) {
					m->diag->offset = off + (uint64_t)m->delta + i;
					snprintf(m->diag->section, sizeof(m->diag->section), "DATA");
					snprintf(m->diag->reason, sizeof(m->diag->reason),
						 "non-zero filler under a ZERO gap between two RAW "
						 "runs (guest offset 0x%llx, file %s)",
						 (unsigned long long)(off + i),
						 sqb_snap_path(m->cur_layer));
				}
				return -SQB_ECORRUPT;
			}
		off += n;
		len -= n;
	}
	return 0;
}

static inline int on_run(struct mctx *m, const struct piece *p)
{
	const struct sqb_extent *e = p->e;
	uint64_t off = p->off, len = p->len;
	int err;

	if (e->kind == SQB_EXT_ZERO) {
		/* The destination is fresh anonymous memory: zero already.  A
		 * later RAW run of the same file may absorb the gap only when the
		 * ZERO extent is that file's own: then the file bytes under it are
		 * filler ([F-26]).  A ZERO of another layer (a page a Diff zeroed
		 * between two pages it left to its parent) lies over the parent's
		 * data, which must not be mapped. */
		if (m->active && off == m->end && p->layer == m->cur_layer)
			m->end = off + len;
		return 0;
	}
	if (e->kind == SQB_EXT_RAW && rs_lease_held(m->rs, p->layer)) {
		uint64_t foff = e->data + (p->gpa - p->ext_gpa);
		int fd = p->fd;

		if (m->verify && m->verified != e) {
			if ((err = sqb_snap_extent_decode(p->layer, p->r, e, m->scratch, m->diag)))
				return err;
			m->verified = e;
		}
		if (m->active && fd == m->fd && (int64_t)(foff - off) == m->delta &&
		    off == m->end) {
			if (m->verify && off > m->end_raw &&
			    (err = check_filler(m, m->end_raw, off - m->end_raw)))
				return err;
			m->end = m->end_raw = off + len;
			return 0;
		}
		if ((err = flush(m)))
			return err;
		m->active = 1;
		m->fd = fd;
		m->cur_layer = p->layer;
		m->delta = (int64_t)(foff - off);
		m->start = off;
		m->end = m->end_raw = off + len;
		return 0;
	}
	/* COMPRESSED, DEDUP, and RAW of a file we could not lease: decoded below */
	if (m->active && (err = flush(m)))
		return err;
	return add_decode(m, off, p->gpa, len);
}

static int map_range(sqb_restore *rs, struct rs_range *rg, struct sqb_diag *d)
{
	struct mctx m = {.rs = rs, .rg = rg, .diag = d, .fd = -1};
	int err;

	m.verify = !(rs->o.flags & SQB_RESTORE_TRUST_RAW);
	m.scratch = malloc(1u << 20);
	if (!m.scratch)
		return -ENOMEM;
	/* caller memory: start from fresh zero pages, as the library's are */
	if (!rs->own_mem &&
	    mmap(rg->local, rg->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	if ((err = resolve(&m, rs->snap, rg->gpa, rg->size, 0)))
		goto out;
	if ((err = flush(&m)))
		goto out;
	for (size_t i = 0; i < m.ndec; i++) {
		if ((err = sqb_snap_read(rs->snap, m.dec[i].gpa, rg->local + m.dec[i].off,
					 m.dec[i].len, d)))
			goto out;
		atomic_fetch_add(&rs->decoded, m.dec[i].len);
	}
out:
	free(m.dec);
	free(m.scratch);
	return err;
}

int rs_mmap_restore(sqb_restore *rs, struct sqb_diag *d)
{
	int err;

	if (rs->memfd >= 0)
		return -EINVAL; /* a memfd destination cannot also be a file mapping */
	if ((err = rs_lease_take(rs)))
		return err;
	for (unsigned int i = 0; i < rs->nrg; i++)
		if ((err = map_range(rs, &rs->rg[i], d)))
			return err;
	/* every block and page is present from here on, and only the lazy
	 * engine reads the bitmaps (sqb_restore_fetch answers 0 for MMAP):
	 * they go, so an idle clone of a fleet keeps no copy of them
	 * (docs/fleet.md "Load leftovers") */
	free(rs->blk_state);
	free((void *)rs->pg_present);
	free((void *)rs->pg_removed);
	rs->blk_state = NULL;
	rs->pg_present = rs->pg_removed = NULL;
	atomic_store(&rs->blocks_present, rs->nblk);
	atomic_store(&rs->done, 1);
	return 0;
}
