/* kvm backend: the caller's memslots get KVM_MEM_LOG_DIRTY_PAGES, collect
 * reads KVM_GET_DIRTY_LOG and (with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
 * re-protects exactly the reported pages with KVM_CLEAR_DIRTY_LOG.  Sees
 * guest writes (and KVM's own writes to guest memory) only: the VMM merges
 * its writes with sqb_dirty_mark().  The dirty ring is not offered. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "dirty_int.h"
#include "log.h"
#include "squib/errors.h"

#define KVM_PAGE_SHIFT 12

struct kvm_priv {
	bool manual; /* KVM_CLEAR_DIRTY_LOG in use */
	uint64_t *log;
};

static int kvm_probe(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		sqb_warn("dirty: /dev/kvm: %s", strerror(errno));
		return -ENOTSUP;
	}
	close(fd);
	return 0;
}

static int kvm_init(sqb_dirty *d)
{
	struct kvm_priv *p;
	uint64_t maxpages = 0;

	RETURN_ERROR_IF(d->kvm_vm_fd < 0, -EINVAL, "kvm backend needs a vm fd");
	RETURN_ERROR_IF(d->gshift < KVM_PAGE_SHIFT, -EINVAL, "granule below 4 KiB");
	for (unsigned i = 0; i < d->nranges; i++)
		if (d->ranges[i].len >> KVM_PAGE_SHIFT > maxpages)
			maxpages = d->ranges[i].len >> KVM_PAGE_SHIFT;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->log = calloc(SQB_DIRTY_BITMAP_WORDS(maxpages), sizeof(uint64_t));
	if (!p->log) {
		free(p);
		return -ENOMEM;
	}
	/* Manual protect without INITIALLY_SET: arming write-protects every
	 * page, so the first epoch holds only real writes (a full first diff
	 * is the Firecracker bug this avoids).  VM-wide, hence documented. */
	if (ioctl(d->kvm_vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2};

		cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
		p->manual = ioctl(d->kvm_vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	d->priv = p;
	return 0;
}

static int kvm_set_slots(sqb_dirty *d, uint32_t extra)
{
	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];
		struct kvm_userspace_memory_region m = {
		    .slot = r->kvm_slot,
		    .flags = (r->kvm_flags & ~KVM_MEM_LOG_DIRTY_PAGES) | extra,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->len,
		    .userspace_addr = (uintptr_t)r->host,
		};
		if (ioctl(d->kvm_vm_fd, KVM_SET_USER_MEMORY_REGION, &m) != 0)
			return -errno;
	}
	return 0;
}

static int kvm_start(sqb_dirty *d)
{
	return kvm_set_slots(d, KVM_MEM_LOG_DIRTY_PAGES);
}

static int kvm_stop(sqb_dirty *d)
{
	return kvm_set_slots(d, 0);
}

/* OR one slot's page bitmap into the epoch bitmap at granule resolution. */
static void kvm_fold(sqb_dirty *d, const struct dirty_range *r, const uint64_t *log, size_t words,
		     uint64_t *bm)
{
	unsigned shift = d->gshift - KVM_PAGE_SHIFT;

	if (shift == 0 && r->first % 64 == 0) {
		for (size_t w = 0; w < words; w++)
			bm[r->first / 64 + w] |= log[w];
		return;
	}
	for (size_t w = 0; w < words; w++) {
		for (uint64_t v = log[w]; v; v &= v - 1) {
			size_t g = r->first + ((w * 64 + (size_t)__builtin_ctzll(v)) >> shift);

			bm[g / 64] |= 1ull << (g % 64);
		}
	}
}

static int kvm_collect(sqb_dirty *d, uint64_t *bm)
{
	struct kvm_priv *p = d->priv;

	for (unsigned i = 0; i < d->nranges; i++) {
		const struct dirty_range *r = &d->ranges[i];
		uint64_t npages = r->len >> KVM_PAGE_SHIFT, any = 0;
		size_t words = SQB_DIRTY_BITMAP_WORDS(npages);
		struct kvm_dirty_log log = {.slot = r->kvm_slot, .dirty_bitmap = p->log};

		/* Without manual protect this one call snapshots and clears the
		 * log and write-protects the pages under KVM's mmu lock. */
		if (ioctl(d->kvm_vm_fd, KVM_GET_DIRTY_LOG, &log) != 0)
			return -errno;
		for (size_t w = 0; w < words; w++)
			any |= p->log[w];
		if (!any)
			continue;
		/* Manual protect: a page reported here stays writable until the
		 * clear below re-protects it; writes in between are before our
		 * return and thus part of this epoch's copy. */
		if (p->manual) {
			struct kvm_clear_dirty_log clr = {
			    .slot = r->kvm_slot,
			    .num_pages = (uint32_t)npages,
			    .first_page = 0,
			    .dirty_bitmap = p->log,
			};
			if (ioctl(d->kvm_vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) != 0)
				return -errno;
		}
		kvm_fold(d, r, p->log, words, bm);
	}
	return 0;
}

static void kvm_fini(sqb_dirty *d)
{
	struct kvm_priv *p = d->priv;

	if (p)
		free(p->log);
	free(p);
	d->priv = NULL;
}

const struct sqb_dirty_ops sqb_dirty_kvm_ops = {
    .id = SQB_DIRTY_KVM,
    .name = "kvm",
    .caps = SQB_DIRTY_SEES_GUEST,
    .probe = kvm_probe,
    .init = kvm_init,
    .start = kvm_start,
    .collect = kvm_collect,
    .stop = kvm_stop,
    .fini = kvm_fini,
};
