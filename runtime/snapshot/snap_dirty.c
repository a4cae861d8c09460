/* Dirty-page bookkeeping for Diff snapshots (docs/snapshots.md "Diff"):
 * the dirty library's tracker over the VM's memslots, and a pending bitmap
 * that holds every collected bit until a snapshot that contains it has been
 * written, so a failed write loses nothing and a Full resets the set. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "snap_priv.h"

void sqb_snap_diag(struct sqb_diag *d, const char *section, const char *fmt, ...)
{
	va_list ap;

	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->section, sizeof(d->section), "%s", section);
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

/* A VMM write (or a discard) in the hotplug region: its pages' bits in
 * hp_marks, the tracker's role for RAM (which knows RAM only); a collect
 * moves them into pending, so a write after a pause is never lost to the
 * reset after that snapshot is written. */
static void hp_mark(struct sqb_snapstate *ss, uint64_t gpa, uint64_t len)
{
	const struct sqb_gmem *m = ss->mem;
	const struct sqb_mem_region *r = &m->regions[m->nram];
	uint64_t *marks = __atomic_load_n(&ss->hp_marks, __ATOMIC_ACQUIRE);

	if (!marks || gpa - r->gpa >= r->size || !len)
		return;
	if (len > r->size - (gpa - r->gpa))
		len = r->size - (gpa - r->gpa);
	for (uint64_t p = (gpa - r->gpa) / 4096; p <= (gpa - r->gpa + len - 1) / 4096; p++)
		__atomic_fetch_or(&marks[p / 64], 1ull << (p % 64), __ATOMIC_RELEASE);
}

/* gmem hook: a VMM write (device DMA) the KVM log does not see (snapshots.md). */
static void ss_written(void *opaque, uint64_t gpa, uint64_t len)
{
	struct sqb_snapstate *ss = opaque;
	sqb_dirty *d = __atomic_load_n(&ss->dirty, __ATOMIC_ACQUIRE);

	if (!d)
		return;
	if (ss->mem->nregions > ss->mem->nram && gpa >= ss->mem->regions[ss->mem->nram].gpa)
		hp_mark(ss, gpa, len);
	else
		sqb_dirty_mark(d, gpa, len);
}

/* gmem hook: a lazily restored page must be resident before the VMM reads
 * or writes it (no-op for eager and mmap restores). */
static int ss_prefault(void *opaque, uint64_t gpa, uint64_t len)
{
	struct sqb_snapstate *ss = opaque;
	sqb_restore *rs = __atomic_load_n(&ss->rs, __ATOMIC_ACQUIRE);

	return rs ? sqb_restore_fetch(rs, gpa, len) : 0;
}

/* gmem hook: VMM-defined pages (the VM Generation ID's).  A lazy restore
 * fetches them as any page; under the Uffd backend a page the server has
 * not served yet is filled with zeros here (EEXIST: it was served), since
 * a server that never serves must not wedge the load ([F-125]). */
static int ss_own(void *opaque, uint64_t gpa, uint8_t *host, uint64_t len)
{
	static const uint8_t zero[4096] __attribute__((aligned(4096)));
	struct sqb_snapstate *ss = opaque;
	sqb_restore *rs = __atomic_load_n(&ss->rs, __ATOMIC_ACQUIRE);
	uint64_t first = (uint64_t)(uintptr_t)host & ~4095ULL;
	uint64_t end = ((uint64_t)(uintptr_t)host + len + 4095) & ~4095ULL;

	if (rs)
		return sqb_restore_fetch(rs, gpa, len);
	/* huge_pages 2M: the 2 MiB page holds guest data besides the VMM's
	 * bytes, so it is never zero-filled; the write faults and waits for
	 * the server to serve that page, as Firecracker's does */
	if (ss->huge_page)
		return 0;
	for (uint64_t a = first; ss->uffd >= 0 && a < end; a += 4096) {
		struct uffdio_copy c = {.dst = a, .src = (uint64_t)(uintptr_t)zero, .len = 4096};

		if (ioctl(ss->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

int sqb_snapstate_get(struct sqb_vm *vm, struct sqb_snapstate **out)
{
	if (!vm->snap) {
		vm->snap = calloc(1, sizeof(*vm->snap));
		if (!vm->snap)
			return -ENOMEM;
		vm->snap->uffd = vm->snap->pager_fd = -1;
		vm->snap->mem = &vm->mem;
		vm->snap->vm = vm;
		vm->snap->hp_kvm_fd = -1;
		atomic_init(&vm->snap->vc_claim, -1);
		vm->snap->gmem_hooks =
		    (struct sqb_gmem_hooks){vm->snap, ss_written, ss_prefault, ss_own};
		sqb_gmem_set_hooks(&vm->mem, &vm->snap->gmem_hooks);
	}
	*out = vm->snap;
	return 0;
}

static int hp_log_start(struct sqb_vm *vm, struct sqb_snapstate *ss, int kvm_fd);

int sqb_snap_dirty_start(struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	struct sqb_dirty_range rg[SQB_GMEM_MAX_REGIONS];
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	int err;

	if (ss->dirty)
		return 0;
	for (unsigned int i = 0; i < vm->mem.nram; i++)
		rg[i] = (struct sqb_dirty_range){vm->mem.regions[i].host, vm->mem.regions[i].gpa,
						 vm->mem.regions[i].size, i, 0};
	o.ranges = rg;
	o.nranges = vm->mem.nram;
	o.kvm_vm_fd = vm->ops->vm_dirty_fd ? vm->ops->vm_dirty_fd(vm->hv) : -1;
	/* exit-driven backends (hvf) bring their own protect callback */
	if (vm->ops->vm_dirty_exit && (err = vm->ops->vm_dirty_exit(vm->hv, &o)) < 0)
		return err;
	sqb_dirty *d = NULL;
	err = sqb_dirty_open(&d, &o);
	if (err)
		return err;
	if (vm->ops->vm_dirty_route)
		vm->ops->vm_dirty_route(vm->hv, d);
	ss->nwords = ss->nwords_ram = SQB_DIRTY_BITMAP_WORDS(sqb_dirty_ngranules(d));
	for (unsigned int i = vm->mem.nram; i < vm->mem.nregions; i++)
		ss->nwords += vm->mem.regions[i].size / 4096 / 64;
	__atomic_store_n(&ss->pending, calloc(ss->nwords ? ss->nwords : 1, sizeof(uint64_t)),
			 __ATOMIC_RELEASE);
	if (ss->pending && ss->nwords > ss->nwords_ram &&
	    !(ss->hp_marks = calloc(ss->nwords - ss->nwords_ram, sizeof(uint64_t)))) {
		free(ss->pending);
		ss->pending = NULL;
	}
	if (ss->pending)
		__atomic_store_n(&ss->dirty, d, __ATOMIC_RELEASE);
	err = ss->pending ? sqb_dirty_start(ss->dirty) : -ENOMEM;
	if (!err)
		err = hp_log_start(vm, ss, o.kvm_vm_fd);
	/* Memslots created with logging on have logged since then, and a
	 * re-issued slot keeps its log: drain it so tracking starts clean. */
	if (!err)
		err = sqb_snap_dirty_collect(ss);
	if (!err)
		memset(ss->pending, 0, ss->nwords * sizeof(uint64_t));
	if (err) {
		__atomic_store_n(&ss->dirty, NULL, __ATOMIC_RELEASE);
		if (vm->ops->vm_dirty_route)
			vm->ops->vm_dirty_route(vm->hv, NULL);
		sqb_dirty_free(d);
		free(ss->pending);
		ss->pending = NULL;
		__atomic_store_n(&vm->hp_dirty_log, 0, __ATOMIC_RELEASE);
		ss->hp_kvm_fd = -1;
		free(ss->hp_log);
		ss->hp_log = NULL;
		free(ss->hp_marks);
		ss->hp_marks = NULL;
	}
	return err;
}

/* The guest's own writes to hotplugged memory.  With KVM, each present
 * hotplug slot is dirty-logged like RAM (as Firecracker's slots are) and
 * read here: GET, then CLEAR what it reported (which re-protects those
 * pages whether or not manual protect is on); an absent slot has no log
 * (ENOENT): its blocks were marked when they were discarded.  Without a
 * KVM log, every page of a plugged block counts as written. */
/* Every page of the plugged blocks among [first, first + n) is written. */
static void hp_mark_plugged(struct sqb_snapstate *ss, uint64_t first, uint64_t n)
{
	const struct sqb_gmem *m = ss->mem;
	uint64_t per = m->hp_block / 4096, *pend = ss->pending + ss->nwords_ram; /* per % 64 == 0 */

	for (uint64_t b = first; b < first + n; b++)
		if (__atomic_load_n(&m->hp_bits[b / 64], __ATOMIC_ACQUIRE) >> (b % 64) & 1)
			for (uint64_t w = b * per / 64; w < (b + 1) * per / 64; w++)
				__atomic_store_n(&pend[w], ~0ull, __ATOMIC_RELAXED);
}

static int hp_collect(struct sqb_snapstate *ss)
{
	const struct sqb_gmem *m = ss->mem;
	uint64_t spages, *pend = ss->pending + ss->nwords_ram;
	int err = 0;

	if (m->nregions == m->nram || !m->hp_bits)
		return 0;
	for (size_t w = 0; ss->hp_marks && w < ss->nwords - ss->nwords_ram; w++)
		if (__atomic_load_n(&ss->hp_marks[w], __ATOMIC_RELAXED))
			pend[w] |= __atomic_exchange_n(&ss->hp_marks[w], 0, __ATOMIC_ACQ_REL);
	spages = m->hp_slot / 4096;
	for (uint64_t i = 0;
	     ss->hp_kvm_fd >= 0 && !err && i < m->regions[m->nram].size / m->hp_slot; i++) {
		struct kvm_dirty_log log = {.slot = SQB_VM_MEMHP_SLOT0 + (uint32_t)i,
					    .dirty_bitmap = ss->hp_log};
		uint64_t any = 0, *dst = pend + i * spages / 64;

		if (ioctl(ss->hp_kvm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			if (errno != ENOENT)
				err = -errno;
			else /* no log: absent (its blocks are unplugged), or never
			      * logged: then its plugged blocks count as written */
				hp_mark_plugged(ss, i * (m->hp_slot / m->hp_block),
						m->hp_slot / m->hp_block);
			continue;
		}
		for (uint64_t w = 0; w < spages / 64; w++)
			any |= ss->hp_log[w];
		if (!any)
			continue;
		struct kvm_clear_dirty_log clr = {.slot = SQB_VM_MEMHP_SLOT0 + (uint32_t)i,
						  .num_pages = (uint32_t)spages,
						  .first_page = 0,
						  .dirty_bitmap = ss->hp_log};
		if (ioctl(ss->hp_kvm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
			err = -errno;
		for (uint64_t w = 0; w < spages / 64; w++)
			__atomic_fetch_or(&dst[w], ss->hp_log[w], __ATOMIC_RELAXED);
	}
	if (ss->hp_kvm_fd < 0 || err)
		hp_mark_plugged(ss, 0, m->regions[m->nram].size / m->hp_block);
	return err;
}

/* Turn on KVM's dirty log for the hotplug slots: slots mapped from now on
 * log (sqb_vm_map_hotplug_slot), present ones are mapped again with it. */
static int hp_log_start(struct sqb_vm *vm, struct sqb_snapstate *ss, int kvm_fd)
{
	const struct sqb_gmem *m = &vm->mem;
	const struct sqb_mem_region *r;
	uint64_t per;

	if (m->nregions == m->nram || kvm_fd < 0 || !vm->ops->vm_map_memory)
		return 0;
	r = &m->regions[m->nram];
	if (!(ss->hp_log = calloc(m->hp_slot / 4096 / 64, sizeof(uint64_t))))
		return -ENOMEM;
	__atomic_store_n(&vm->hp_dirty_log, 1, __ATOMIC_RELEASE);
	per = m->hp_slot / m->hp_block;
	for (uint64_t i = 0; i < r->size / m->hp_slot; i++) {
		uint64_t any = 0;
		int err;

		for (uint64_t b = i * per; b < (i + 1) * per && !any; b++)
			any =
			    __atomic_load_n(&m->hp_bits[b / 64], __ATOMIC_ACQUIRE) >> (b % 64) & 1;
		if (!any)
			continue;
		err = sqb_vm_map_hotplug_slot(vm, (unsigned int)i, r->gpa + i * m->hp_slot,
					      m->hp_slot, r->host + i * m->hp_slot);
		if (err < 0)
			return err;
	}
	ss->hp_kvm_fd = kvm_fd;
	return 0;
}

int sqb_snap_dirty_collect(struct sqb_snapstate *ss)
{
	uint64_t *b = calloc(ss->nwords_ram ? ss->nwords_ram : 1, sizeof(uint64_t));
	int err, herr;

	if (!b)
		return -ENOMEM;
	err = sqb_dirty_collect(ss->dirty, b, ss->nwords_ram, NULL);
	if (!err)
		for (size_t i = 0; i < ss->nwords_ram; i++)
			ss->pending[i] |= b[i];
	else /* the tracker failed: every page must count as dirty */
		memset(ss->pending, 0xff, ss->nwords * sizeof(uint64_t));
	if ((herr = hp_collect(ss)) < 0 && !err)
		err = herr;
	free(b);
	return err;
}

/* Region r starts at bit (pages of regions before r); regions below 4 GiB
 * are multiples of 1 MiB, so that is always a whole word. */
const uint64_t *sqb_snap_dirty_region(struct sqb_vm *vm, struct sqb_snapstate *ss, unsigned int r)
{
	uint64_t bit = 0;

	for (unsigned int i = 0; i < r; i++)
		bit += vm->mem.regions[i].size / 4096;
	return ss->pending + bit / 64;
}

void sqb_snapstate_free(struct sqb_vm *vm)
{
	struct sqb_snapstate *ss = vm->snap;

	if (!ss)
		return;
	/* no device thread may use the hooks any more (event loop stopped) */
	sqb_gmem_set_hooks(&vm->mem, NULL);
	sqb_snap_bg_join(ss, 1); /* an unfinished background create is given up */
	sqb_snap_uffd_unwatch(ss);
	if (ss->dirty && vm->ops->vm_dirty_route && vm->hv)
		vm->ops->vm_dirty_route(vm->hv, NULL);
	sqb_dirty_free(ss->dirty);
	free(ss->pending);
	free(ss->hp_log);
	free(ss->hp_marks);
	sqb_restore_free(ss->rs); /* joins the thread that may release the claim */
	if (ss->lease_served) /* the loop is gone (sqb_vm_free), and so are the leases */
		sqb_restore_lease_unserve();
	if (atomic_load(&ss->vc_claim) >= 0)
		close(atomic_load(&ss->vc_claim));
	if (ss->uffd >= 0)
		close(ss->uffd);
	if (ss->pager_fd >= 0)
		close(ss->pager_fd);
	sqb_snap_free(ss->loaded);
	sqb_snap_free(ss->parent);
	free(ss);
	vm->snap = NULL;
}
