/* Exit-driven dirty tracking and postcopy for the HVF backend (issue 16):
 * guest-side permissions through hv_vm_protect, access exceptions on RAM
 * routed here by the vCPU loop.  Dirty: squib/dirty.h's SQB_DIRTY_EXIT
 * backend (write-protect, log + re-grant on the write fault).  Postcopy:
 * pages start inaccessible, the first access fetches the page through
 * squib/restore.h (sqb_restore_fetch) and grants it.  A page is never
 * granted before it is resident, nor writable while tracking is armed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "hvf_priv.h"

struct sqb_hvf_faults {
	struct sqb_hv_vm *vm;
	uint64_t gpa, len, page;
	size_t npages;
	atomic_uchar *lazy; /* 1: not resident yet (postcopy) */
	sqb_restore *rs;
	sqb_dirty *_Atomic dirty;
	atomic_ullong fetched, dirtied;
	pthread_mutex_t lock; /* grant decisions vs. arming */
};

#define PROT_RX	 (SQB_HVF_PROT_R | SQB_HVF_PROT_X)
#define PROT_RWX (SQB_HVF_PROT_R | SQB_HVF_PROT_W | SQB_HVF_PROT_X)

static int faults_handler(void *ctx, uint64_t gpa, int access)
{
	struct sqb_hvf_faults *f = ctx;
	uint64_t pg, base;
	sqb_dirty *d;
	int err = 0;

	if (gpa < f->gpa || gpa - f->gpa >= f->len)
		return 0;
	pg = (gpa - f->gpa) / f->page;
	base = f->gpa + pg * f->page;
	if (atomic_load(&f->lazy[pg])) {
		pthread_mutex_lock(&f->lock);
		if (atomic_load(&f->lazy[pg])) {
			err = sqb_restore_fetch(f->rs, base, f->page);
			if (!err)
				err = sqb_hvf_protect(f->vm, base, f->page,
						      atomic_load(&f->dirty) ? PROT_RX : PROT_RWX);
			if (!err) {
				atomic_store(&f->lazy[pg], 0);
				atomic_fetch_add(&f->fetched, 1);
			}
		}
		pthread_mutex_unlock(&f->lock);
		return err < 0 ? err : 1;
	}
	d = atomic_load(&f->dirty);
	if (d && access == 1) {
		atomic_fetch_add(&f->dirtied, 1);
		return sqb_dirty_fault(d, gpa);
	}
	/* a stale fault (another vCPU granted it meanwhile): grant what the
	 * current state allows and retry */
	pthread_mutex_lock(&f->lock);
	err = sqb_hvf_protect(f->vm, base, f->page, atomic_load(&f->dirty) ? PROT_RX : PROT_RWX);
	pthread_mutex_unlock(&f->lock);
	return err < 0 ? err : 1;
}

int sqb_hvf_faults_create(struct sqb_hvf_faults **out, struct sqb_hv_vm *vm, uint64_t gpa,
			  uint64_t len)
{
	struct sqb_hvf_faults *f;
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0 || gpa % (uint64_t)ps || len % (uint64_t)ps || len == 0)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->vm = vm;
	f->gpa = gpa;
	f->len = len;
	f->page = (uint64_t)ps;
	f->npages = len / (uint64_t)ps;
	f->lazy = calloc(f->npages, sizeof(*f->lazy));
	if (!f->lazy) {
		free(f);
		return -ENOMEM;
	}
	pthread_mutex_init(&f->lock, NULL);
	sqb_hvf_set_fault_handler(vm, faults_handler, f);
	*out = f;
	return 0;
}

void sqb_hvf_faults_free(struct sqb_hvf_faults *f)
{
	if (!f)
		return;
	sqb_hvf_set_fault_handler(f->vm, NULL, NULL);
	pthread_mutex_destroy(&f->lock);
	free(f->lazy);
	free(f);
}

int sqb_hvf_faults_dirty_protect(void *ctx, uint64_t gpa, uint64_t len, int writable)
{
	struct sqb_hvf_faults *f = ctx;
	uint64_t end, run = 0, p;
	int err = 0, have = 0;

	if (gpa < f->gpa || len > f->len || gpa - f->gpa > f->len - len)
		return -EINVAL;
	end = gpa + len;
	pthread_mutex_lock(&f->lock);
	/* runs of resident pages; a lazy page keeps no access until fetched */
	for (p = gpa; p < end && !err; p += f->page) {
		if (atomic_load(&f->lazy[(p - f->gpa) / f->page])) {
			if (have)
				err = sqb_hvf_protect(f->vm, run, p - run,
						      writable ? PROT_RWX : PROT_RX);
			have = 0;
		} else if (!have) {
			run = p;
			have = 1;
		}
	}
	if (!err && have)
		err = sqb_hvf_protect(f->vm, run, end - run, writable ? PROT_RWX : PROT_RX);
	pthread_mutex_unlock(&f->lock);
	return err;
}

void sqb_hvf_faults_set_dirty(struct sqb_hvf_faults *f, sqb_dirty *d)
{
	pthread_mutex_lock(&f->lock);
	atomic_store(&f->dirty, d);
	pthread_mutex_unlock(&f->lock);
}

int sqb_hvf_faults_lazy(struct sqb_hvf_faults *f, sqb_restore *rs, uint64_t gpa, uint64_t len)
{
	int err;

	if (!rs || gpa < f->gpa || len > f->len || gpa - f->gpa > f->len - len ||
	    (gpa - f->gpa) % f->page || len % f->page)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	f->rs = rs;
	for (uint64_t p = gpa; p < gpa + len; p += f->page)
		atomic_store(&f->lazy[(p - f->gpa) / f->page], 1);
	err = sqb_hvf_protect(f->vm, gpa, len, 0);
	pthread_mutex_unlock(&f->lock);
	return err;
}

int sqb_hvf_faults_prefetch(struct sqb_hvf_faults *f, uint64_t gpa, uint64_t len)
{
	uint64_t lo, hi;
	int err = 0;

	if (!f->rs)
		return -EINVAL;
	lo = gpa < f->gpa ? f->gpa : gpa - (gpa - f->gpa) % f->page;
	hi = gpa + len > f->gpa + f->len ? f->gpa + f->len : gpa + len;
	for (uint64_t p = lo; p < hi && err >= 0; p += f->page)
		if (atomic_load(&f->lazy[(p - f->gpa) / f->page]))
			err = faults_handler(f, p, 2); /* as the instruction abort would */
	return err < 0 ? err : 0;
}

void sqb_hvf_faults_stats(const struct sqb_hvf_faults *f, uint64_t *fetched, uint64_t *dirty)
{
	*fetched = atomic_load(&((struct sqb_hvf_faults *)f)->fetched);
	*dirty = atomic_load(&((struct sqb_hvf_faults *)f)->dirtied);
}
