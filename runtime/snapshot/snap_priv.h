/* Snapshot layer of the runtime (private): per-VM snapshot state, device
 * state encoders and dirty-set bookkeeping (docs/snapshots.md).
 *
 *   sqb_vm ── snap ──┬── dirty tracker (squib/dirty.h) + pending bitmap:
 *                    │     bits not yet written into a successful snapshot
 *                    ├── parent: the last memory file (a Diff's parent)
 *                    ├── restore / uffd of a loaded VM (live until free)
 *                    └── gmem hooks: the VMM's own writes -> the tracker
 */
#ifndef SQB_SNAP_PRIV_H
#define SQB_SNAP_PRIV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "squib/dirty.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"
#include "vmm_priv.h"

struct sqb_snapstate {
	sqb_dirty *dirty;
	uint64_t *pending; /* OR of collected epochs not yet in a written snapshot */
	size_t nwords;	   /* every region's pages: RAM's, then the hotplug region's */
	size_t nwords_ram; /* the tracker's (RAM memslots) */
	struct sqb_gmem *mem;
	struct sqb_vm *vm;
	int hp_kvm_fd;	  /* >= 0: the hotplug slots are read from KVM's dirty log */
	uint64_t *hp_log; /* one slot's KVM bitmap */
	uint64_t *hp_marks; /* VMM writes to the hotplug region since the last collect */
	sqb_snap *parent; /* last memory file written or loaded (opened alone) */
	sqb_snap *loaded; /* memory snapshot a lazy restore reads (with parents) */
	sqb_restore *rs;
	/* the VM's event loop serves the lease pipe of mmap restores
	 * (sqb_restore_lease_serve): no watcher thread of the library */
	int lease_served;
	int uffd, pager_fd;
	int huge_page; /* guest memory in 2 MiB hugetlb pages (Uffd: never zero-filled by the VMM) */
	struct snap_uffd_watch *watch; /* Uffd: notices a page server that died */
	/* Guest memory is not (only) the memfd, or pages may still arrive
	 * (mmap/lazy/Uffd load): memfd holes must not be read as zero pages. */
	int no_holes;
	/* Installed on the VM's guest memory (gmem.h): VMM writes are marked
	 * in the tracker, a lazy restore fetches pages before the VMM reads. */
	struct sqb_gmem_hooks gmem_hooks;
	/* Background create (snap_create.c): its writer thread and status. */
	struct snap_bg *bg;
	struct sqb_vm_snap_status bg_status;
	/* A live create between its early protection and its pause. */
	struct sqb_snap_cow *prearm;
	/* A first verified load verifying while the guest runs (LAZY): the
	 * claim on its files in the verification cache (-1: none), released
	 * once they are remembered, and when verification began. */
	_Atomic int vc_claim;
	struct timespec vc_began;
	/* The lazy restore is exit-driven (SQB_RESTORE_LAZY_EXIT, hv op
	 * vm_lazy_exit): memory the VMM reads without its accessor (a
	 * snapshot create) must be fetched first. */
	int lazy_exit;
};

/* The VM's snapshot state, created on first use. */
int sqb_snapstate_get(struct sqb_vm *vm, struct sqb_snapstate **out);

/* ---- snap_create.c ---- */
/* Is name "<base>.tmp.XXXXXX", a create's temporary for the file base? */
int sqb_snap_is_temp_of(const char *name, const char *base);

/* Wait for a background create's writer thread (cancel: give up the
 * snapshot, its temporaries are removed) and release it. */
void sqb_snap_bg_join(struct sqb_snapstate *ss, int cancel);

/* ---- snap_selfcheck.c ---- */
/* SQB_SNAP_SELFCHECK=1: after a create, while the VM is paused, read the
 * memory file back (its chain, raw_path for a raw file) and compare every
 * page with guest memory; differences are logged (0 or -SQB_ECORRUPT). */
int sqb_snap_selfcheck_enabled(void);
int sqb_snap_selfcheck(struct sqb_vm *vm, const char *mem_path, const char *raw_path);

/* ---- snap_cow.c ---- */
/* Copy-before-write over guest memory: want[r] (one bit per page of region
 * r, ownership passes) marks the pages a background create will read; they
 * are write-protected (userfaultfd) until read, and copied aside by a
 * handler thread before anyone writes them. */
struct sqb_snap_cow;
/* pre: from sqb_snap_cow_prearm (a live create), consumed (freed on
 * failure); NULL: protect want[] now. */
int sqb_snap_cow_arm(struct sqb_snap_cow **out, struct sqb_vm *vm, uint64_t *const want[],
		     struct sqb_snap_cow *pre);
/* Live create, VM still running: protect the pages of cover[] (owned from
 * the call on) and note every page written from then on. */
int sqb_snap_cow_prearm(struct sqb_snap_cow **out, struct sqb_vm *vm, uint64_t *const cover[]);
/* The pause-instant bytes of the DATA pages of [first, first+n) of region
 * r into dst (n pages); those pages are un-protected. */
int sqb_snap_cow_read(struct sqb_snap_cow *c, unsigned int r, uint64_t first, uint32_t n,
		      const uint8_t *kinds, uint8_t *dst);
uint64_t sqb_snap_cow_copied(struct sqb_snap_cow *c);
void sqb_snap_cow_free(struct sqb_snap_cow *c);

/* ---- snap_vcache.c ---- */
/* Every layer of s was verified by an earlier load and is unchanged. */
int sqb_snap_vcache_hit(const sqb_snap *s);
/* Remember that every layer of s was verified (began: CLOCK_REALTIME when
 * the verification started; layers changed since are not recorded). */
struct timespec;
void sqb_snap_vcache_record(const sqb_snap *s, const struct timespec *began);
/* Claim the verification of s's files (an flock in the cache folder) so
 * that concurrent first loads of them (a fleet's clones) wait for one
 * verifier instead of each reading everything: the held fd (close it to
 * release), waiting up to wait_ms for another process's claim; -ENOENT
 * when there is no usable cache folder, -ETIMEDOUT, or -errno. */
int sqb_snap_vcache_claim(const sqb_snap *s, int wait_ms);

/* ---- snap_dirty.c ---- */
/* Arm tracking over the VM's memslots (idempotent). */
int sqb_snap_dirty_start(struct sqb_vm *vm, struct sqb_snapstate *ss);
/* Drain the tracker into ss->pending (OR). */
int sqb_snap_dirty_collect(struct sqb_snapstate *ss);
/* Bitmap of region r in ss->pending (bit 0 = first page of the region). */
const uint64_t *sqb_snap_dirty_region(struct sqb_vm *vm, struct sqb_snapstate *ss, unsigned int r);

/* ---- snap_devs.c ---- */
int sqb_snap_devs_save(struct sqb_vm *vm, sqb_snap_writer *w);
int sqb_snap_devs_load(struct sqb_vm *vm, const sqb_snap *s, struct sqb_diag *diag);
/* The slot each virtio-pci function had ([F-135] device_number), so that a
 * load puts every device back in its place whatever order it is added in
 * (hot-plugged and unplugged devices leave gaps). */
struct sqb_pci_place;
int sqb_snap_devs_pci_places(const sqb_snap *s, struct sqb_pci_place *out, unsigned int max,
			     unsigned int *n, struct sqb_diag *diag);

/* ---- snap_uffd.c ---- */
/* Firecracker Uffd backend, VMM side: register guest memory with a new
 * userfaultfd and hand it to the page server listening on path.  state (or
 * NULL): the state file being loaded, whose memory identity the handshake
 * carries as squib's extension. */
int sqb_snap_uffd_connect(struct sqb_vm *vm, struct sqb_snapstate *ss, const char *path,
			  const sqb_snap *state, struct sqb_diag *diag);
/* Start / stop the thread that watches the page server's process (a pidfd
 * of the socket's peer); it never reads the uffd while the server lives. */
int sqb_snap_uffd_watch(struct sqb_vm *vm, struct sqb_snapstate *ss);
void sqb_snap_uffd_unwatch(struct sqb_snapstate *ss);

void sqb_snap_diag(struct sqb_diag *d, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
