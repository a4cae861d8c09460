/* restore: put a snapshot's guest memory back (docs/restore.md).
 *
 *   page source                 strategy                         destination
 *   +-------------------+       +-----------------------------+  +----------------------+
 *   | sqb_snap (a full  |       | EAGER  decode every block on |  | one mapping per      |
 *   | file or a diff    |------>|        all cores, then run   |->| snapshot region:     |
 *   | chain, any codec) |       | MMAP   MAP_PRIVATE RAW runs  |  |  given by the caller |
 *   |  block = 64 KiB   |       |        of every layer, decode|  |  (host[r]), or made  |
 *   |  of one region    |       |        the rest per extent   |  |  by the library:     |
 *   +-------------------+       | LAZY   fault source + filler |  |  anonymous or memfd  |
 *   | working-set       |------>|        (faults jump ahead)   |  |  (SQB_RESTORE_MEMFD) |
 *   | sidecar (pages in |       +--------------+--------------+  +----------------------+
 *   | first-touch order)|                      |
 *   +-------------------+       fault source (ops table, one file per OS mechanism)
 *                               +--------------+----------------+-------------------+
 *                               | userfaultfd  | PROT_NONE +    | (Mach exception   |
 *                               | MISSING      | SIGSEGV, fill  |  port on macOS:   |
 *                               | (own or a    | via a second   |  same interface)  |
 *                               | VMM's uffd)  | memfd mapping  |                   |
 *                               +--------------+----------------+-------------------+
 *                               wait() -> fault / remove events; install(block) wakes
 *
 * A block is never installed from bytes that failed their checksum or codec:
 * such a failure puts the restore in a failed state, calls on_error, and the
 * faulting thread is never woken onto a zero or stale page.
 */
#ifndef SQUIB_RESTORE_H
#define SQUIB_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"
#include "squib/snapfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqb_restore sqb_restore;

enum sqb_restore_strategy {
	SQB_RESTORE_EAGER = 1,	     /* everything resident when start returns */
	SQB_RESTORE_MMAP = 2,	     /* zero-copy map of RAW data, decode the rest */
	SQB_RESTORE_LAZY = 3,	     /* userfaultfd postcopy + background filler */
	SQB_RESTORE_LAZY_SIGNAL = 4, /* PROT_NONE + SIGSEGV postcopy (portable design) */
	/* Postcopy without a host fault source: the caller routes every access
	 * through sqb_restore_fetch() first (a hypervisor that reports guest
	 * accesses as exits, e.g. HVF with hv_vm_protect, plus the VMM's own
	 * accessor); pages are copied in once each; filler as LAZY. */
	SQB_RESTORE_LAZY_EXIT = 5,
};

/* Flags of struct sqb_restore_opts. */
#define SQB_RESTORE_MEMFD     0x01u /* library-made destination is one memfd, MAP_SHARED */
#define SQB_RESTORE_VERIFY    0x02u /* check every checksum of the chain before mapping */
#define SQB_RESTORE_NO_FILL   0x04u /* lazy: serve faults only, no background filler */
#define SQB_RESTORE_RECORD    0x08u /* lazy: record first-touch order (page faults, no filler) */
#define SQB_RESTORE_TRUST_RAW 0x10u /* mmap: map RAW bytes without reading their checksums */
#define SQB_RESTORE_WSET_SYNC 0x20u /* lazy: working set installed before start returns */
#define SQB_RESTORE_DEST_ZERO 0x40u /* eager: the caller's destination is fresh (all zero):
				      zero blocks are skipped, not written */
/* lazy: the fillers wait for sqb_restore_fill_after() (faults and fetches are
 * served from the start) */
#define SQB_RESTORE_FILL_LATER 0x80u

/* Called (from a restore thread) when the restore fails; diag says where. */
typedef void (*sqb_restore_error_cb)(void *ctx, int err, const struct sqb_diag *diag);
/* LAZY: called once, from a filler thread holding no restore lock, when every
 * page is resident or settled by a REMOVE event (docs/restore.md "lazy");
 * never after a failure, nor without a filler (SQB_RESTORE_NO_FILL).
 * all_checked: every page came from a read of the snapshot whose checksums
 * passed (0 when a REMOVE settled a page before it was installed: its bytes
 * were never read).  Parent layers are read only where the top ones do not
 * cover them: all_checked says nothing of their other chunks. */
typedef void (*sqb_restore_done_cb)(void *ctx, int all_checked);

#define SQB_RESTORE_OPTS_VERSION 1
struct sqb_restore_opts {
	unsigned int version;
	enum sqb_restore_strategy strategy;
	unsigned int flags;
	unsigned int threads; /* decode threads, 0: online CPUs */
	/* NULL: the library creates the destination.  Else one host address per
	 * snapshot region (region order), each mapping at least the region's size,
	 * page-aligned.  EAGER and LAZY keep the caller's mapping (anonymous or
	 * memfd MAP_SHARED); MMAP replaces it with MAP_FIXED mappings. */
	void *const *host;
	const char *wset_path; /* LAZY: working-set sidecar to prefetch, or NULL */
	sqb_restore_error_cb on_error;
	void *cb_ctx;
	sqb_restore_done_cb on_done; /* LAZY, or NULL */
	void *done_ctx;
};
#define SQB_RESTORE_OPTS_INIT                                                                      \
	{                                                                                          \
		SQB_RESTORE_OPTS_VERSION, SQB_RESTORE_EAGER, 0, 0, NULL                            \
	}

/* One destination region. */
struct sqb_restore_mem {
	void *host; /* where the region's bytes are in this process */
	uint64_t gpa;
	uint64_t size;
	int memfd; /* SQB_RESTORE_MEMFD: the backing memfd (owned by the restore), else -1 */
	uint64_t memfd_offset; /* offset of this region in memfd */
};

/* Validate the snapshot and destination, then restore with opts->strategy.
 * s must stay open until sqb_restore_free().  Nothing is mapped or written
 * before validation passes (role, page sizes, parents present, destination
 * sizes; with SQB_RESTORE_VERIFY every checksum of every layer).
 * EAGER/MMAP return when memory is complete; LAZY returns once faults are
 * served (and, with SQB_RESTORE_WSET_SYNC, the working set is installed). */
int sqb_restore_start(sqb_restore **out, sqb_snap *s, const struct sqb_restore_opts *opts,
		      struct sqb_diag *diag);

/* 0 when this process can run a LAZY restore of its own memory (a
 * userfaultfd that also sees the kernel's faults, KVM's included, with
 * REMOVE events), else -errno: EPERM where vm.unprivileged_userfaultfd is 0
 * and the caller lacks CAP_SYS_PTRACE, ENOSYS, ENOTSUP. */
int sqb_restore_lazy_usable(void);

/* A userfaultfd created and registered by another process (a VMM) for the
 * ranges below, host addresses in that process.  Used by squib-pager. */
struct sqb_restore_range {
	uint64_t host; /* start, in the uffd owner's address space */
	uint64_t gpa;  /* guest-physical address of the first byte */
	uint64_t size;
};
int sqb_restore_serve_uffd(sqb_restore **out, sqb_snap *s, int uffd,
			   const struct sqb_restore_range *ranges, unsigned int n,
			   const struct sqb_restore_opts *opts, struct sqb_diag *diag);

unsigned int sqb_restore_mem_count(const sqb_restore *rs);
int sqb_restore_mem(const sqb_restore *rs, unsigned int idx, struct sqb_restore_mem *out);

/* Make [gpa, gpa+len) resident now (a VMM uses it for accesses that cannot
 * fault through the fault source, e.g. KVM on a SIGSEGV-based restore). */
int sqb_restore_fetch(sqb_restore *rs, uint64_t gpa, uint64_t len);

/* SQB_RESTORE_FILL_LATER: let the background fillers begin delay_ms from
 * now (a VMM calls it once the guest runs, so that streaming the rest does
 * not compete for the CPU with building the VM and the guest's first
 * steps; faults are served meanwhile).  The first call counts; a no-op
 * without that flag or for other strategies; NULL ok. */
void sqb_restore_fill_after(sqb_restore *rs, unsigned int delay_ms);

/* Wait until every page is resident or was dropped by a REMOVE event (0),
 * the restore failed (its error), or timeout_ms passed (-ETIMEDOUT; < 0
 * waits forever). */
int sqb_restore_wait(sqb_restore *rs, int timeout_ms);

struct sqb_restore_stats {
	uint64_t blocks, blocks_present;
	uint64_t faults;       /* fault events served */
	uint64_t fault_p50_ns; /* handler service time: event read -> woken */
	uint64_t fault_p99_ns;
	uint64_t install_p50_ns; /* the same without reading/decoding the source */
	uint64_t install_p99_ns;
	uint64_t removed_pages; /* pages dropped by REMOVE events */
	uint64_t mapped_bytes;	/* MMAP: bytes mapped from snapshot files */
	uint64_t decoded_bytes; /* bytes produced by decoding */
	int error;		/* 0, or the failure */
};
void sqb_restore_get_stats(sqb_restore *rs, struct sqb_restore_stats *out);

/* Save the recorded working set (SQB_RESTORE_RECORD) as a sidecar file:
 * role STATE, WSET section in first-touch order plus the pages' bytes, tied
 * to the snapshot by companion uuid + digest.  Atomic replace of path. */
int sqb_restore_wset_save(sqb_restore *rs, const char *path);

/* LAZY: serve no more, now.  Joins the restore's threads (on_done and
 * on_error have returned and are not called again), makes the caller's pages
 * that never became resident PROT_NONE, and unregisters the memory, which
 * wakes every thread waiting in a fault there: its access fails (EFAULT in
 * the kernel, SIGSEGV in user space), it never reads zeros and never waits
 * for ever.  sqb_restore_fetch() fails from then on for pages not resident
 * (-ECANCELED).  A VMM calls it when it stops the VM, before it joins the
 * vCPU threads.  Not concurrently with sqb_restore_free(); idempotent; a
 * no-op for other strategies; NULL ok. */
void sqb_restore_stop(sqb_restore *rs);

/* Stop threads and unregister (sqb_restore_stop() first if it was not
 * called).  Library-made memory is unmapped; the caller's memory stays
 * mapped, with pages that never became resident made PROT_NONE so nothing
 * can read them as zero.  NULL ok. */
void sqb_restore_free(sqb_restore *rs);

/* Lease breaks of MMAP restores (docs/restore.md "Mapped files are
 * leased").  By default a library thread serves them while some restore of
 * the process holds leases.  A caller with its own event loop can serve
 * them instead, so that no thread of the library lives beside it:
 *
 *   sqb_restore_lease_serve()    returns the read end of the process's
 *                                lease pipe (non-blocking; do not read or
 *                                close it), or -errno.  Call it BEFORE the
 *                                restores it should serve start: from then
 *                                on no watcher thread runs (one already
 *                                running serves what it has and ends), so
 *                                every break waits in the pipe for you.
 *   sqb_restore_lease_service()  call it whenever that fd is readable
 *                                (level-triggered): it fails each restore
 *                                whose lease broke (-ETXTBSY, on_error runs
 *                                on the calling thread).  It makes read(),
 *                                futex() and what on_error makes.
 *   sqb_restore_lease_unserve()  after you stopped watching the fd; if
 *                                restores still hold leases the library's
 *                                thread takes over (breaks queued meanwhile
 *                                are served by it).
 *
 * Counted: several loops may serve at once (each read takes whole records). */
int sqb_restore_lease_serve(void);
void sqb_restore_lease_service(void);
void sqb_restore_lease_unserve(void);

const char *sqb_restore_strategy_name(enum sqb_restore_strategy st);

#ifdef __cplusplus
}
#endif
#endif
