/* Guest memory and its accessor (private to runtime/, vm_mem.c).
 *
 *   memfd ── one host mapping ── regions[] (arch layout: low RAM, high RAM)
 *   (huge_pages 2M: no memfd, one private MAP_HUGETLB mapping instead)
 *     └── after RAM: virtio-mem's hotplug region (sqb_mem_add_hotplug), the
 *         last region; the accessor resolves only its plugged blocks
 *                 ▲
 *   sqb_gmem_map(gpa, len, write) ── bounds check, no region crossing
 *                 │   write: pages marked for the next Diff (hooks.written)
 *                 │   lazy restore: pages fetched first (hooks.prefault)
 *   devices, boot loaders (before tracking), the snapshot layer
 *
 * Every write the VMM makes into guest memory after boot goes through
 * sqb_gmem_map(..., 1) or sqb_gmem_write(): KVM's dirty log only sees the
 * guest's own writes, so a Diff would otherwise miss device DMA.
 */
#ifndef SQB_RUNTIME_GMEM_H
#define SQB_RUNTIME_GMEM_H

#include <stddef.h>
#include <stdint.h>

#define SQB_GMEM_PAGE	     4096ULL
#define SQB_GMEM_HUGE_PAGE   (2ULL << 20) /* huge_pages 2M */
#define SQB_GMEM_MAX_REGIONS 3		  /* RAM (the arch layout's) + hotplug */

struct sqb_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	uint64_t fd_offset; /* offset of this region in the memfd */
};

/* Set by the snapshot layer while it tracks writes or a lazy restore runs.
 * Called from any thread; both must be thread-safe. */
struct sqb_gmem_hooks {
	void *opaque;
	/* The VMM wrote (or is about to write) [gpa, gpa+len). */
	void (*written)(void *opaque, uint64_t gpa, uint64_t len);
	/* Make [gpa, gpa+len) resident before the VMM touches it (0 or -errno). */
	int (*prefault)(void *opaque, uint64_t gpa, uint64_t len);
	/* The same for memory the VMM itself defines (reserved, page-aligned
	 * pages such as the VM Generation ID's): may be NULL.  Never waits for
	 * an external page server: a page it has not served yet becomes a zero
	 * page the VMM then writes (the server's later copy finds it there). */
	int (*own)(void *opaque, uint64_t gpa, uint8_t *host, uint64_t len);
};

struct sqb_gmem {
	int fd;	       /* -1 with huge_pages 2M (anonymous hugetlb) */
	uint64_t page_size; /* of the host backing: SQB_GMEM_PAGE or SQB_GMEM_HUGE_PAGE */
	uint8_t *host;
	uint64_t size;
	struct sqb_mem_region regions[SQB_GMEM_MAX_REGIONS];
	unsigned int nregions; /* RAM regions, then the hotplug region if any */
	unsigned int nram;     /* RAM regions: regions[0 .. nram) */
	/* virtio-mem (regions[nram] when nregions > nram): its own mapping
	 * (the memfd at fd_offset = size, or private anonymous memory), and
	 * one bit per block, set while the block is plugged (atomic words). */
	uint64_t hp_block, hp_slot; /* bytes; a slot is one KVM memslot */
	uint64_t *hp_bits;
	const struct sqb_gmem_hooks *hooks; /* atomic pointer; NULL: none */
	/* A background create's copy-before-write protects guest memory
	 * (atomic): a discard must write zeros through it instead of dropping
	 * pages whose pause-instant bytes the writer has yet to read. */
	int cow_armed;
};

/* huge: enum sqb_vm_huge_pages.  THP asks for transparent huge pages (best
 * effort; shmem_enabled decides); 2M reserves hugetlb pages now (-ENOMEM,
 * diag section "memory", when the host's pool is too small). */
struct sqb_diag;
int sqb_mem_create(struct sqb_gmem *m, uint64_t size, int huge, struct sqb_diag *diag);
void sqb_mem_destroy(struct sqb_gmem *m);

/* Add virtio-mem's region [gpa, gpa+size) after RAM (blocks of block
 * bytes in slots of slot bytes, all unplugged): the memfd grows by size and maps it shared at
 * offset m->size, or (no memfd) private anonymous memory.  Read-write in
 * the VMM for its whole life; what the guest reaches is the memslots'
 * business (dev_vmem.c), what the VMM reaches the plugged bits'. */
int sqb_mem_add_hotplug(struct sqb_gmem *m, uint64_t gpa, uint64_t size, uint64_t block,
			uint64_t slot);
/* Mark blocks [first, first+n) of the hotplug region plugged or not. */
void sqb_mem_hotplug_set(struct sqb_gmem *m, uint64_t first, uint64_t n, int plugged);
/* Every block of [off, off+len) of the hotplug region is plugged (len > 0). */
int sqb_mem_hotplug_ok(const struct sqb_gmem *m, uint64_t off, uint64_t len);

/* Host pointer to [gpa, gpa+len) inside ONE region, or NULL (out of range,
 * crosses a region boundary, touches an unplugged block of the hotplug
 * region, len 0, or the lazy fetch failed).  write: the
 * range is reported dirty; the caller's write must complete before the
 * device's quiesce returns (a snapshot collects after quiesce). */
uint8_t *sqb_gmem_map(struct sqb_gmem *m, uint64_t gpa, uint64_t len, int write);
/* Copy helpers over sqb_gmem_map: 0 or -EFAULT. */
int sqb_gmem_read(struct sqb_gmem *m, void *dst, uint64_t gpa, uint64_t len);
int sqb_gmem_write(struct sqb_gmem *m, uint64_t gpa, const void *src, uint64_t len);
/* sqb_gmem_write into VMM-defined memory (hooks.own first): for pages no
 * guest data lives in, so that a write never waits on a page server. */
int sqb_gmem_write_owned(struct sqb_gmem *m, uint64_t gpa, const void *src, uint64_t len);
/* Install or clear (NULL) the hooks; returns the previous ones. */
const struct sqb_gmem_hooks *sqb_gmem_set_hooks(struct sqb_gmem *m, const struct sqb_gmem_hooks *h);

#endif
