/* Restore core: validation before anything is mapped, destination set-up
 * (caller mappings, anonymous or memfd), the block page source, the eager
 * strategy on all cores, and the object's life cycle (docs/restore.md). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

uint64_t rs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void diag_set(struct sqb_diag *d, const char *sec, const char *reason)
{
	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->section, sizeof(d->section), "%s", sec);
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

const char *sqb_restore_strategy_name(enum sqb_restore_strategy st)
{
	switch (st) {
	case SQB_RESTORE_EAGER:
		return "eager";
	case SQB_RESTORE_MMAP:
		return "mmap";
	case SQB_RESTORE_LAZY:
		return "lazy";
	case SQB_RESTORE_LAZY_SIGNAL:
		return "lazy-signal";
	case SQB_RESTORE_LAZY_EXIT:
		return "lazy-exit";
	}
	return "?";
}

/* First failure wins; the VMM hears about it once, then waiters wake. */
int rs_fail(sqb_restore *rs, int err, const struct sqb_diag *d)
{
	int expect = 0;

	if (atomic_compare_exchange_strong(&rs->error, &expect, err)) {
		if (d)
			rs->fail_diag = *d;
		else
			diag_set(&rs->fail_diag, "restore", sqb_strerror(err));
		sqb_debug("restore failed: %s", sqb_strerror(err));
		if (rs->o.on_error)
			rs->o.on_error(rs->o.cb_ctx, err, d);
	}
	pthread_mutex_lock(&rs->lock);
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
	return err;
}

struct rs_range *rs_block_range(sqb_restore *rs, uint64_t blk, uint64_t *off)
{
	for (unsigned int i = 0; i < rs->nrg; i++)
		if (blk - rs->rg[i].blk0 < rs->rg[i].nblk) {
			*off = (blk - rs->rg[i].blk0) * RS_BLOCK;
			return &rs->rg[i];
		}
	return NULL;
}

struct rs_range *rs_addr_range(sqb_restore *rs, uint64_t host, uint64_t *off)
{
	for (unsigned int i = 0; i < rs->nrg; i++)
		if (host - rs->rg[i].host < rs->rg[i].size) {
			*off = host - rs->rg[i].host;
			return &rs->rg[i];
		}
	return NULL;
}

struct rs_range *rs_gpa_range(sqb_restore *rs, uint64_t gpa, uint64_t *off)
{
	for (unsigned int i = 0; i < rs->nrg; i++)
		if (gpa - rs->rg[i].gpa < rs->rg[i].size) {
			*off = gpa - rs->rg[i].gpa;
			return &rs->rg[i];
		}
	return NULL;
}

/* Is [gpa, gpa+len) zero in s, following PARENT extents down the chain? */
static int src_zero(sqb_snap *s, uint64_t gpa, uint64_t len)
{
	uint32_t gps = sqb_snap_get_info(s)->guest_page_size;

	while (len) {
		unsigned int r;
		uint64_t page, end, take;
		size_t idx;
		struct sqb_region reg;
		const struct sqb_extent *e;

		if (sqb_snap_locate(s, gpa, &r, &page) || sqb_snap_extent_find(s, r, page, &idx) ||
		    sqb_snap_region(s, r, &reg))
			return 0;
		e = sqb_snap_extents(s, r) + idx;
		end = reg.gpa + (e->first_page + e->page_count) * gps;
		take = end - gpa < len ? end - gpa : len;
		if (e->kind == SQB_EXT_PARENT) {
			if (!sqb_snap_parent(s) || !src_zero(sqb_snap_parent(s), gpa, take))
				return 0;
		} else if (e->kind != SQB_EXT_ZERO) {
			return 0;
		}
		gpa += take;
		len -= take;
	}
	return 1;
}

int rs_block_is_zero(sqb_restore *rs, uint64_t blk)
{
	uint64_t off;
	struct rs_range *rg = rs_block_range(rs, blk, &off);
	uint64_t len = rg->size - off < RS_BLOCK ? rg->size - off : RS_BLOCK;

	return src_zero(rs->snap, rg->gpa + off, len);
}

/* The snapshot's bytes of block blk; every checksum is verified by snapfmt
 * before a codec sees the data ([F-23]), so buf is right or we fail. */
int rs_decode_block(sqb_restore *rs, uint64_t blk, uint8_t *buf, uint64_t *len, struct sqb_diag *d)
{
	uint64_t off;
	struct rs_range *rg = rs_block_range(rs, blk, &off);
	int err;

	if (!rg)
		return -EINVAL;
	*len = rg->size - off < RS_BLOCK ? rg->size - off : RS_BLOCK;
	err = sqb_snap_read(rs->snap, rg->gpa + off, buf, *len, d);
	if (!err)
		atomic_fetch_add(&rs->decoded, *len);
	return err;
}

/* ---- validation: everything here runs before anything is mapped ---- */

struct vfirst {
	int err;
	struct sqb_diag d;
};

static void verify_cb(void *ctx, int err, const struct sqb_diag *d)
{
	struct vfirst *v = ctx;

	if (!v->err) {
		v->err = err;
		if (d)
			v->d = *d;
	}
}

static int validate(sqb_snap *s, const struct sqb_restore_opts *o, struct sqb_diag *d)
{
	const struct sqb_snap_info *in = sqb_snap_get_info(s);
	long hp = sysconf(_SC_PAGESIZE);

	if (!o || o->version != SQB_RESTORE_OPTS_VERSION || o->strategy < SQB_RESTORE_EAGER ||
	    o->strategy > SQB_RESTORE_LAZY_EXIT) {
		diag_set(d, "options", "unknown options version or strategy");
		return -EINVAL;
	}
	if (o->flags & ~(SQB_RESTORE_MEMFD | SQB_RESTORE_VERIFY | SQB_RESTORE_NO_FILL |
			 SQB_RESTORE_RECORD | SQB_RESTORE_TRUST_RAW | SQB_RESTORE_WSET_SYNC |
			 SQB_RESTORE_DEST_ZERO | SQB_RESTORE_FILL_LATER)) {
		diag_set(d, "options", "unknown flag");
		return -EINVAL;
	}
	if (o->strategy == SQB_RESTORE_MMAP && (o->flags & SQB_RESTORE_MEMFD)) {
		diag_set(d, "options", "a memfd destination cannot be a file mapping (MMAP)");
		return -EINVAL;
	}
	if (o->strategy == SQB_RESTORE_LAZY_SIGNAL && o->host) {
		diag_set(d, "options",
			 "the SIGSEGV strategy needs the library's memfd destination");
		return -EINVAL;
	}
	if (in->role == SQB_ROLE_STATE) {
		diag_set(d, "header", "a STATE file holds no guest memory");
		return -SQB_EMISMATCH;
	}
	if (hp != RS_HPAGE || in->guest_page_size % RS_HPAGE || RS_BLOCK % in->guest_page_size) {
		diag_set(d, "header", "guest page size does not fit this host's pages");
		return -SQB_EMISMATCH;
	}
	if (!sqb_snap_region_count(s)) {
		diag_set(d, "MEMR", "snapshot has no memory regions");
		return -SQB_ENOTFOUND;
	}
	for (sqb_snap *l = s; l; l = sqb_snap_parent(l)) {
		/* a diff opened without its parent cannot be restored (cheap
		 * check: walking every extent would cost the mmap strategy its
		 * millisecond) */
		if (sqb_snap_get_info(l)->kind == SQB_SNAP_DIFF && !sqb_snap_parent(l)) {
			diag_set(d, "PIDX", "snapshot has pages in a parent that was not opened");
			return -SQB_EPARENT;
		}
	}
	if (o->flags & SQB_RESTORE_VERIFY) {
		struct vfirst v = {0};
		int err = sqb_snap_verify(s, SQB_VERIFY_CHAIN, 1, verify_cb, &v);

		if (err) {
			if (d)
				*d = v.d;
			return v.err ? v.err : err;
		}
	}
	if (o->host)
		for (unsigned int r = 0; r < sqb_snap_region_count(s); r++)
			if (!o->host[r] || (uintptr_t)o->host[r] % RS_HPAGE) {
				diag_set(d, "options", "host address missing or not page-aligned");
				return -EINVAL;
			}
	return 0;
}

/* ---- object and destination ---- */

static int alloc_state(sqb_restore *rs)
{
	rs->npg = 0;
	rs->nblk = 0;
	for (unsigned int i = 0; i < rs->nrg; i++) {
		rs->rg[i].blk0 = rs->nblk;
		rs->rg[i].nblk = (rs->rg[i].size + RS_BLOCK - 1) / RS_BLOCK;
		rs->rg[i].pg0 = rs->npg;
		rs->nblk += rs->rg[i].nblk;
		rs->npg += rs->rg[i].size / RS_HPAGE;
		rs->total += rs->rg[i].size;
	}
	rs->blk_state = calloc(rs->nblk ? rs->nblk : 1, 1);
	rs->pg_present = calloc(rs->npg / 64 + 1, 8);
	rs->pg_removed = calloc(rs->npg / 64 + 1, 8);
	/* sources that copy without the kernel's EEXIST guard claim each page */
	if (rs->strategy == SQB_RESTORE_LAZY_SIGNAL || rs->strategy == SQB_RESTORE_LAZY_EXIT)
		rs->pg_claim = calloc(rs->npg / 64 + 1, 8);
	if (!rs->blk_state || !rs->pg_present || !rs->pg_removed ||
	    ((rs->strategy == SQB_RESTORE_LAZY_SIGNAL || rs->strategy == SQB_RESTORE_LAZY_EXIT) &&
	     !rs->pg_claim))
		return -ENOMEM;
	return 0;
}

static int rs_new(sqb_restore **out, sqb_snap *s, const struct sqb_restore_opts *o,
		  unsigned int nrg)
{
	sqb_restore *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->snap = s;
	rs->o = *o;
	rs->strategy = o->strategy;
	rs->gps = sqb_snap_get_info(s)->guest_page_size;
	rs->memfd = -1;
	pthread_rwlockattr_t ra;

	pthread_mutex_init(&rs->lock, NULL);
	pthread_cond_init(&rs->cond, NULL);
	/* writer preference: the handler must not wait behind a stream of
	 * prefetch installs to read a fault */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&rs->ev_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	rs->rg = calloc(nrg, sizeof(*rs->rg));
	rs->nrg = nrg;
	if (!rs->rg) {
		free(rs);
		return -ENOMEM;
	}
	*out = rs;
	return 0;
}

/* Library-made memory: anonymous, or one memfd MAP_SHARED (what a VMM
 * registers as KVM memslots); signal mode maps it PROT_NONE plus an alias. */
static int make_memory(sqb_restore *rs)
{
	int sig = rs->strategy == SQB_RESTORE_LAZY_SIGNAL;
	int use_memfd = sig || (rs->o.flags & SQB_RESTORE_MEMFD);
	uint64_t off = 0;

	if (use_memfd) {
		rs->memfd = memfd_create("squib-guest", MFD_CLOEXEC);
		if (rs->memfd < 0 || ftruncate(rs->memfd, (off_t)rs->total))
			return -errno;
	}
	if (sig) {
		void *a = mmap(NULL, rs->total, PROT_READ | PROT_WRITE, MAP_SHARED, rs->memfd, 0);

		if (a == MAP_FAILED)
			return -errno;
		rs->alias_base = a;
	}
	rs->own_mem = 1;
	for (unsigned int i = 0; i < rs->nrg; i++) {
		struct rs_range *rg = &rs->rg[i];
		void *p;

		if (use_memfd)
			p = mmap(NULL, rg->size, sig ? PROT_NONE : PROT_READ | PROT_WRITE,
				 MAP_SHARED, rs->memfd, (off_t)off);
		else
			p = mmap(NULL, rg->size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		rg->local = p;
		rg->host = (uint64_t)(uintptr_t)p;
		if (sig)
			rg->alias = rs->alias_base + off;
		off += rg->size;
	}
	return 0;
}

static int setup_ranges(sqb_restore *rs)
{
	sqb_snap *s = rs->snap;
	int err;

	for (unsigned int r = 0; r < rs->nrg; r++) {
		struct sqb_region reg;

		if ((err = sqb_snap_region(s, r, &reg)))
			return err;
		rs->rg[r].gpa = reg.gpa;
		rs->rg[r].size = reg.size;
		rs->rg[r].region = r;
		if (rs->o.host) {
			rs->rg[r].local = rs->o.host[r];
			rs->rg[r].host = (uint64_t)(uintptr_t)rs->o.host[r];
		}
	}
	if ((err = alloc_state(rs)))
		return err;
	if (!rs->o.host)
		return make_memory(rs);
	if (rs->strategy == SQB_RESTORE_LAZY_SIGNAL)
		return -EINVAL; /* needs the library's memfd for its alias */
	return 0;
}

/* ---- eager ---- */

/* One block of an eager restore.  With a fault source (library memory, no
 * guest running yet) the block is decoded into buf and installed with one
 * batched copy, and zero blocks are left untouched; otherwise it is decoded
 * straight into the destination. */
static int eager_block(sqb_restore *rs, uint64_t blk, uint8_t *buf)
{
	uint64_t off, len;
	struct rs_range *rg = rs_block_range(rs, blk, &off);
	struct sqb_diag d = {0};
	int zero = rs_block_is_zero(rs, blk), err = 0;

	len = rg->size - off < RS_BLOCK ? rg->size - off : RS_BLOCK;
	/* fresh memory is already zero: writing zeros would only allocate it */
	if (zero && !rs->own_mem && !(rs->o.flags & SQB_RESTORE_DEST_ZERO))
		memset(rg->local + off, 0, len);
	else if (!zero && rs->fs) {
		err = rs_decode_block(rs, blk, buf, &len, &d);
		if (!err)
			err = rs->fs->ops->install(rs->fs, rg, off, buf, len);
	} else if (!zero) {
		/* one batched fault-in beats a first-touch fault per page */
		if (rs->own_mem || (rs->o.flags & SQB_RESTORE_DEST_ZERO))
			(void)madvise(rg->local + off, len, MADV_POPULATE_WRITE);
		err = sqb_snap_read(rs->snap, rg->gpa + off, rg->local + off, len, &d);
		if (!err)
			atomic_fetch_add(&rs->decoded, len);
	}
	if (err < 0)
		return rs_fail(rs, err, d.reason[0] ? &d : NULL);
	atomic_store(&rs->blk_state[blk], 1);
	atomic_fetch_add(&rs->blocks_present, 1);
	return 0;
}

static void *eager_worker(void *arg)
{
	sqb_restore *rs = arg;
	uint8_t *buf = rs->fs ? malloc(RS_BLOCK) : NULL;

	if (rs->fs && !buf) {
		rs_fail(rs, -ENOMEM, NULL);
		return NULL;
	}
	for (;;) {
		uint64_t blk = atomic_fetch_add(&rs->fill_cursor, 1);

		if (blk >= rs->nblk || atomic_load(&rs->error) || eager_block(rs, blk, buf))
			break;
	}
	free(buf);
	return NULL;
}

static int run_eager(sqb_restore *rs)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n = rs->o.threads ? rs->o.threads : (unsigned int)(ncpu > 0 ? ncpu : 1);
	pthread_t *t = calloc(n, sizeof(*t));
	unsigned int started = 0;

	if (!t)
		return -ENOMEM;
	/* library memory: install with UFFDIO_COPY when we can (one call per
	 * block allocates and fills its pages); unregistered before return */
	if (rs->own_mem && rs_uffd_create(&rs->fs, rs, -1))
		rs->fs = NULL;
	for (unsigned int i = 1; i < n; i++)
		if (!pthread_create(&t[i], NULL, eager_worker, rs))
			started = i;
	eager_worker(rs);
	for (unsigned int i = 1; i <= started; i++)
		pthread_join(t[i], NULL);
	free(t);
	if (rs->fs) {
		rs->fs->ops->destroy(rs->fs);
		rs->fs = NULL;
	}
	if (atomic_load(&rs->error))
		return atomic_load(&rs->error);
	memset((void *)rs->pg_present, 0xff, (rs->npg / 64 + 1) * 8);
	atomic_store(&rs->done, 1);
	return 0;
}

/* ---- public entry points ---- */

int sqb_restore_start(sqb_restore **out, sqb_snap *s, const struct sqb_restore_opts *opts,
		      struct sqb_diag *diag)
{
	sqb_restore *rs = NULL;
	int err;

	*out = NULL;
	if (diag)
		memset(diag, 0, sizeof(*diag));
	if (!s)
		return -EINVAL;
	if ((err = validate(s, opts, diag)))
		return err;
	if ((err = rs_new(&rs, s, opts, sqb_snap_region_count(s))))
		return err;
	/* checked for every strategy: a foreign working set is a caller bug */
	if (opts->wset_path && (err = rs_wset_load(rs, opts->wset_path, diag)))
		goto fail;
	if ((err = setup_ranges(rs))) {
		diag_set(diag, "destination", "cannot set up destination memory");
		goto fail;
	}
	switch (rs->strategy) {
	case SQB_RESTORE_EAGER:
		err = run_eager(rs);
		break;
	case SQB_RESTORE_MMAP:
		err = rs_mmap_restore(rs, diag);
		break;
	default:
		err = rs_lazy_start(rs, diag);
	}
	if (err)
		goto fail;
	*out = rs;
	return 0;
fail:
	if (diag && atomic_load(&rs->error) == err)
		*diag = rs->fail_diag;
	else if (diag && !diag->reason[0])
		diag_set(diag, "restore", sqb_strerror(err));
	sqb_restore_free(rs);
	return err;
}

int sqb_restore_serve_uffd(sqb_restore **out, sqb_snap *s, int uffd,
			   const struct sqb_restore_range *ranges, unsigned int n,
			   const struct sqb_restore_opts *opts, struct sqb_diag *diag)
{
	struct sqb_restore_opts o;
	sqb_restore *rs = NULL;
	int err;

	*out = NULL;
	if (!s || uffd < 0 || !n || !ranges || !opts)
		return -EINVAL;
	o = *opts;
	o.strategy = SQB_RESTORE_LAZY;
	o.host = NULL;
	if ((err = validate(s, &o, diag)))
		return err;
	for (unsigned int i = 0; i < n; i++) {
		unsigned int r;
		uint64_t page;
		struct sqb_region reg;

		if (ranges[i].host % RS_HPAGE || ranges[i].size % RS_HPAGE || !ranges[i].size ||
		    sqb_snap_locate(s, ranges[i].gpa, &r, &page) || sqb_snap_region(s, r, &reg) ||
		    ranges[i].size > reg.gpa + reg.size - ranges[i].gpa) {
			diag_set(diag, "handshake", "range is unaligned or not inside one region");
			return -SQB_EMISMATCH;
		}
	}
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int j = 0; j < i; j++)
			if (ranges[i].host < ranges[j].host + ranges[j].size &&
			    ranges[j].host < ranges[i].host + ranges[i].size) {
				diag_set(diag, "handshake", "mappings overlap");
				return -SQB_EMISMATCH;
			}
	if ((err = rs_new(&rs, s, &o, n)))
		return err;
	for (unsigned int i = 0; i < n; i++) {
		rs->rg[i].host = ranges[i].host;
		rs->rg[i].gpa = ranges[i].gpa;
		rs->rg[i].size = ranges[i].size;
	}
	if ((err = alloc_state(rs)))
		goto fail;
	if (o.wset_path && (err = rs_wset_load(rs, o.wset_path, diag)))
		goto fail;
	if ((err = rs_uffd_create(&rs->fs, rs, uffd)))
		goto fail;
	if ((err = rs_lazy_start(rs, diag)))
		goto fail;
	*out = rs;
	return 0;
fail:
	sqb_restore_free(rs);
	return err;
}

unsigned int sqb_restore_mem_count(const sqb_restore *rs)
{
	return rs ? rs->nrg : 0;
}

int sqb_restore_mem(const sqb_restore *rs, unsigned int idx, struct sqb_restore_mem *out)
{
	uint64_t off = 0;

	if (!rs || idx >= rs->nrg)
		return -SQB_ENOTFOUND;
	for (unsigned int i = 0; i < idx; i++)
		off += rs->rg[i].size;
	out->host = rs->rg[idx].local;
	out->gpa = rs->rg[idx].gpa;
	out->size = rs->rg[idx].size;
	out->memfd = rs->memfd;
	out->memfd_offset = rs->memfd >= 0 ? off : 0;
	return 0;
}

int sqb_restore_fetch(sqb_restore *rs, uint64_t gpa, uint64_t len)
{
	if (!rs)
		return -EINVAL;
	if (atomic_load(&rs->error))
		return atomic_load(&rs->error);
	if (rs->strategy != SQB_RESTORE_LAZY && rs->strategy != SQB_RESTORE_LAZY_SIGNAL &&
	    rs->strategy != SQB_RESTORE_LAZY_EXIT)
		return 0; /* already resident */
	return rs_lazy_fetch(rs, gpa, len);
}

void sqb_restore_fill_after(sqb_restore *rs, unsigned int delay_ms)
{
	uint64_t none = 0;

	if (!rs || !atomic_compare_exchange_strong(&rs->fill_at, &none,
						   rs_now_ns() + (uint64_t)delay_ms * 1000000u))
		return;
	pthread_mutex_lock(&rs->lock);
	pthread_cond_broadcast(&rs->cond); /* fillers waiting to begin */
	pthread_mutex_unlock(&rs->lock);
}

int sqb_restore_wait(sqb_restore *rs, int timeout_ms)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms >= 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&rs->lock);
	while (!atomic_load(&rs->done) && !atomic_load(&rs->error) && !err)
		err = timeout_ms < 0 ? pthread_cond_wait(&rs->cond, &rs->lock)
				     : pthread_cond_timedwait(&rs->cond, &rs->lock, &ts);
	pthread_mutex_unlock(&rs->lock);
	if (atomic_load(&rs->error))
		return atomic_load(&rs->error);
	if (atomic_load(&rs->done))
		return 0;
	return -err;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void sqb_restore_get_stats(sqb_restore *rs, struct sqb_restore_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->blocks = rs->nblk;
	out->blocks_present = atomic_load(&rs->blocks_present);
	out->faults = atomic_load(&rs->faults);
	out->removed_pages = atomic_load(&rs->removed);
	out->mapped_bytes = atomic_load(&rs->mapped);
	out->decoded_bytes = atomic_load(&rs->decoded);
	out->error = atomic_load(&rs->error);
	pthread_mutex_lock(&rs->lock);
	if (rs->nsamples) {
		uint32_t *c = malloc(rs->nsamples * sizeof(*c));

		if (c) {
			memcpy(c, rs->samples, rs->nsamples * sizeof(*c));
			qsort(c, rs->nsamples, sizeof(*c), cmp_u32);
			out->fault_p50_ns = c[rs->nsamples / 2];
			out->fault_p99_ns = c[rs->nsamples * 99 / 100];
			memcpy(c, rs->samples_inst, rs->nsamples * sizeof(*c));
			qsort(c, rs->nsamples, sizeof(*c), cmp_u32);
			out->install_p50_ns = c[rs->nsamples / 2];
			out->install_p99_ns = c[rs->nsamples * 99 / 100];
			free(c);
		}
	}
	pthread_mutex_unlock(&rs->lock);
}

void sqb_restore_stop(sqb_restore *rs)
{
	if (rs)
		rs_lazy_halt(rs);
}

void sqb_restore_free(sqb_restore *rs)
{
	if (!rs)
		return;
	rs_lazy_stop(rs);
	rs_lease_release(rs);
	if (rs->own_mem) {
		for (unsigned int i = 0; i < rs->nrg; i++)
			if (rs->rg[i].local)
				munmap(rs->rg[i].local, rs->rg[i].size);
		if (rs->alias_base)
			munmap(rs->alias_base, rs->total);
	}
	if (rs->memfd >= 0)
		close(rs->memfd);
	free(rs->blk_state);
	free((void *)rs->pg_present);
	free((void *)rs->pg_removed);
	free((void *)rs->pg_claim);
	free(rs->rec);
	free(rs->fetch_q);
	free(rs->ws);
	free(rs->ws_data);
	free(rs->ws_idx);
	free(rs->ws_gpa);
	free(rs->samples);
	free(rs->samples_inst);
	free(rs->hbuf);
	free(rs->pbuf);
	pthread_mutex_destroy(&rs->lock);
	pthread_cond_destroy(&rs->cond);
	pthread_rwlock_destroy(&rs->ev_lock);
	free(rs->rg);
	free(rs);
}
