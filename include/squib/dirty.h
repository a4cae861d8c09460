/* squib dirty-page tracking: which guest pages were written since the last
 * collect, exactly, whatever mechanism runs underneath.
 *
 *   ranges (caller's guest memory, in the order given to sqb_dirty_open)
 *   +--------------------------+   +-----------------------------------+
 *   | range 0: host, gpa, len  |   | range 1: host, gpa, len           |
 *   +--------------------------+   +-----------------------------------+
 *   granules (len / granule each; 4 KiB, 16 KiB ... 2 MiB)
 *   | g0 | g1 | g2 | g3 | g4 |     | g5 | g6 | g7 | g8 | g9 | g10 | g11 |
 *   epoch bitmap (one bit per granule, ranges concatenated, no padding)
 *   word 0 of uint64_t[]: bit 0 = g0, bit 1 = g1, ... bit 63 = g63;
 *   word 1: bit 0 = g64 ...            (bit i is word i/64, bit i%64, LSB first)
 *
 *   start --> epoch 1 --collect--> epoch 2 --collect--> ... --stop
 *
 * An epoch is the time between two collects.  A collect atomically drains
 * everything written since the previous one and re-arms: a write that races
 * a collect is reported by that collect or by the next one, never lost.  Bits
 * set with sqb_dirty_mark() (the VMM's own writes, e.g. device DMA through a
 * raw pointer) are merged into every backend's collect.
 *
 * Over-reporting is allowed (a clean granule may be reported, e.g. after a
 * coarsened re-grant); under-reporting is a bug.  On any collect failure the
 * tracker enters a failed state: the caller must treat all memory as dirty.
 */
#ifndef SQUIB_DIRTY_H
#define SQUIB_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqb_dirty sqb_dirty;

enum sqb_dirty_backend {
	SQB_DIRTY_AUTO = 0,	  /* kvm if a vm fd is given, else uffd-async, uffd-wp, mprotect */
	SQB_DIRTY_KVM = 1,	  /* KVM_MEM_LOG_DIRTY_PAGES + KVM_GET/CLEAR_DIRTY_LOG */
	SQB_DIRTY_UFFD_WP = 2,	  /* userfaultfd write-protect, handler thread */
	SQB_DIRTY_UFFD_ASYNC = 3, /* UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN, no handler */
	SQB_DIRTY_MPROTECT = 4,	  /* PROT_READ + SIGSEGV re-grant */
	SQB_DIRTY_SOFTDIRTY = 5,  /* /proc/self/clear_refs: probed, always refused */
	SQB_DIRTY_EXIT = 6,	  /* exit-driven (hvf): the vCPU loop reports write faults */
	SQB_DIRTY_BACKEND_MAX_
};

/* Which writers a backend sees (sqb_dirty_caps). */
enum sqb_dirty_cap {
	SQB_DIRTY_SEES_GUEST = 1u << 0,	 /* vCPU stores (through KVM's mappings) */
	SQB_DIRTY_SEES_HOST = 1u << 1,	 /* host threads storing through the range */
	SQB_DIRTY_SEES_KERNEL = 1u << 2, /* syscalls writing into the range, e.g. read() */
};

/* One tracked guest memory range.  host must be page aligned; gpa and len
 * must be multiples of the granule.  For the kvm backend, kvm_slot and
 * kvm_flags are exactly what the caller passed to KVM_SET_USER_MEMORY_REGION
 * for this range (slot id incl. address space in bits 16+, flags without
 * KVM_MEM_LOG_DIRTY_PAGES); other backends ignore them. */
struct sqb_dirty_range {
	void *host;
	uint64_t gpa;
	uint64_t len;
	uint32_t kvm_slot;
	uint32_t kvm_flags;
};

/* exit backend: set the guest-side write permission of [gpa, gpa+len)
 * (hvf: hv_vm_protect with or without HV_MEMORY_WRITE).  Called from
 * start/collect/stop and from sqb_dirty_fault(), possibly concurrently, so it
 * must be thread-safe (and async-signal-safe if faults come from a signal
 * handler).  Returns 0 or -errno. */
typedef int (*sqb_dirty_protect_fn)(void *ctx, uint64_t gpa, uint64_t len, int writable);

#define SQB_DIRTY_OPTS_VERSION	  1
#define SQB_DIRTY_GRANULE_DEFAULT 4096u

struct sqb_dirty_opts {
	unsigned version;		      /* SQB_DIRTY_OPTS_VERSION */
	enum sqb_dirty_backend backend;	      /* SQB_DIRTY_AUTO picks, see above */
	uint64_t granule;		      /* power of two, 4 KiB .. 2 MiB; 0 = 4 KiB */
	const struct sqb_dirty_range *ranges; /* copied; at most SQB_DIRTY_MAX_RANGES */
	unsigned nranges;
	int kvm_vm_fd; /* kvm backend: the caller's VM fd, -1 otherwise; not closed */
	sqb_dirty_protect_fn protect; /* exit backend only */
	void *protect_ctx;
};

#define SQB_DIRTY_OPTS_INIT                                                                        \
	{                                                                                          \
		SQB_DIRTY_OPTS_VERSION, SQB_DIRTY_AUTO, 0, NULL, 0, -1, NULL, NULL                 \
	}
#define SQB_DIRTY_MAX_RANGES		  64
#define SQB_DIRTY_BITMAP_WORDS(ngranules) (((ngranules) + 63) / 64)

struct sqb_dirty_stats {
	uint64_t faults;	  /* write faults handled (mprotect, uffd-wp, exit) */
	uint64_t collects;	  /* successful collects */
	uint64_t reported;	  /* granules reported by all collects so far */
	uint64_t marked;	  /* sqb_dirty_mark() calls */
	uint64_t coarsened;	  /* re-grants widened to survive vm.max_map_count */
	uint64_t last_collect_ns; /* duration of the latest collect */
};

/* Create a tracker (not yet armed).  Fails with -ENOTSUP (and a warning
 * saying why) when the backend cannot run here; soft-dirty always fails.
 * The kvm backend requires opts->kvm_vm_fd and a memslot per range. */
int sqb_dirty_open(sqb_dirty **out, const struct sqb_dirty_opts *opts);

/* Arm: everything is clean from here on.  kvm: re-issues
 * KVM_SET_USER_MEMORY_REGION with kvm_flags | KVM_MEM_LOG_DIRTY_PAGES. */
int sqb_dirty_start(sqb_dirty *d);

/* Drain this epoch into bitmap (nwords uint64_t, at least
 * SQB_DIRTY_BITMAP_WORDS(sqb_dirty_ngranules(d))); bits are overwritten, not
 * OR-ed.  *ndirty (optional) receives the number of set bits. */
int sqb_dirty_collect(sqb_dirty *d, uint64_t *bitmap, size_t nwords, uint64_t *ndirty);

/* Record a write the backend may not see.  Call it AFTER the write has
 * completed.  Thread-safe and lock-free; valid in any state.  Returns
 * -SQB_ENOTFOUND if [gpa, gpa+len) is not inside the tracked ranges. */
int sqb_dirty_mark(sqb_dirty *d, uint64_t gpa, uint64_t len);

/* exit backend: the vCPU loop took a write fault at gpa.  Returns 1 if gpa
 * is tracked (logged and made writable: resume the vCPU), 0 if it is not
 * tracked memory (a genuine fault for the caller), or a negative error.
 * Lock-free; -ENOTSUP for backends that are not exit-driven. */
int sqb_dirty_fault(sqb_dirty *d, uint64_t gpa);

/* Disarm: memory becomes plainly writable again; marks still accumulate.
 * kvm: re-issues the region with kvm_flags (logging off). */
int sqb_dirty_stop(sqb_dirty *d);

/* Stop if armed and release everything.  NULL is a no-op. */
void sqb_dirty_free(sqb_dirty *d);

int sqb_dirty_stats(const sqb_dirty *d, struct sqb_dirty_stats *out);

/* Writers the backend sees (enum sqb_dirty_cap bits) into *caps.  Returns 0
 * if the backend can run on this host, else -ENOTSUP (caps still filled). */
int sqb_dirty_caps(unsigned *caps, enum sqb_dirty_backend backend);

size_t sqb_dirty_ngranules(const sqb_dirty *d);
uint64_t sqb_dirty_granule(const sqb_dirty *d);
enum sqb_dirty_backend sqb_dirty_backend_of(const sqb_dirty *d);
const char *sqb_dirty_backend_name(enum sqb_dirty_backend backend);

#ifdef __cplusplus
}
#endif
#endif
