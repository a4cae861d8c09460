/* Private to restore/: the restore object, destination ranges, block and page
 * state, and the fault-source ops table every postcopy mechanism fills. */
#ifndef SQB_RESTORE_INT_H
#define SQB_RESTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "squib/restore.h"

#define RS_BLOCK       (64u << 10) /* unit decoded once and installed whole */
#define RS_HPAGE       4096u	   /* host page: unit of REMOVE and of protection */
#define RS_MAX_SAMPLES (1u << 20)
#define RS_WS_AHEAD    16u /* working-set pages installed per fault on one */

/* One destination range (a snapshot region, or the part of one a VMM gave). */
struct rs_range {
	uint64_t host;	/* address in the fault owner's address space */
	uint8_t *local; /* the same bytes in this process, or NULL (external uffd) */
	uint8_t *alias; /* signal mode: writable second mapping of the memfd */
	uint64_t gpa;
	uint64_t size;
	uint64_t blk0; /* first global block index */
	uint64_t nblk;
	uint64_t pg0; /* first global host-page index */
	unsigned int region;
};

enum fev_kind { FEV_FAULT = 1, FEV_REMOVE = 2 };
struct fault_ev {
	int kind;
	uint64_t addr; /* fault address, or REMOVE start */
	uint64_t end;  /* REMOVE end */
};

struct fault_src;
/* A postcopy mechanism.  Only the handler thread calls wait/install/zero;
 * kick may be called from any thread. */
struct fault_ops {
	const char *name;
	/* Up to max events; 0 on timeout or kick; -errno on failure. */
	int (*wait)(struct fault_src *fs, struct fault_ev *ev, int max, int timeout_ms);
	/* Block until events may be readable (1), or timeout / kick (0). */
	int (*ready)(struct fault_src *fs, int timeout_ms);
	/* Copy len bytes to host address dst unless already present (EEXIST is
	 * skipped page by page) and wake threads waiting there.  -EAGAIN: retry
	 * after reading events. */
	int (*install)(struct fault_src *fs, struct rs_range *rg, uint64_t off, const void *src,
		       uint64_t len);
	int (*zero)(struct fault_src *fs, struct rs_range *rg, uint64_t off, uint64_t len);
	int (*wake)(struct fault_src *fs, uint64_t addr, uint64_t len);
	void (*kick)(struct fault_src *fs);
	/* Let go of the memory (unregister): every thread waiting in a fault
	 * is woken and retries it as a plain access; kick still works until
	 * destroy.  May be NULL. */
	void (*release)(struct fault_src *fs);
	void (*destroy)(struct fault_src *fs); /* unregister and close */
};

struct fault_src {
	const struct fault_ops *ops;
	sqb_restore *rs;
};

struct sqb_restore {
	sqb_snap *snap;
	struct sqb_restore_opts o;
	uint32_t gps;
	enum sqb_restore_strategy strategy;

	/* destination */
	struct rs_range *rg;
	unsigned int nrg;
	int own_mem; /* library-made mappings, unmapped by free */
	int memfd;   /* SQB_RESTORE_MEMFD or signal mode, else -1 */
	uint8_t *alias_base;
	uint64_t total; /* bytes */

	/* block and page state */
	uint64_t nblk, npg;
	_Atomic uint8_t *blk_state;   /* 0 missing, 1 present */
	_Atomic uint64_t *pg_present; /* bit per host page */
	_Atomic uint64_t *pg_removed;
	_Atomic uint64_t *pg_claim; /* signal mode: page taken by one installer */
	atomic_uint_fast64_t blocks_present;

	/* lazy engine */
	struct fault_src *fs;
	pthread_t handler;
	int handler_started;
	int halted; /* rs_lazy_halt() ran: no thread, memory let go of */
	pthread_t *workers;
	unsigned int nworkers;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* state change, fetch done */
	atomic_uint_fast64_t fill_cursor;
	_Atomic uint64_t fill_at; /* fillers begin then (rs_now_ns); 0: not yet told */
	_Atomic int stop;
	_Atomic int error;	   /* first failure, sticks */
	struct sqb_diag fail_diag; /* where it happened */
	_Atomic int done;	   /* every block present */
	_Atomic uint32_t gen;	   /* futex word bumped after each install (signal mode) */
	_Atomic int waiters;
	int sig_req_fd; /* signal mode: where the SIGSEGV handler posts */
	int record;
	uint64_t *rec; /* recorded guest addresses, first-touch order */
	size_t nrec, caprec;
	uint64_t *fetch_q; /* blocks asked for by sqb_restore_fetch */
	size_t nfetch, capfetch;

	/* working set prefetch */
	struct sqb_wset_range *ws;
	size_t nws, ws_i; /* next range to install */
	uint64_t ws_page; /* next page inside ws[ws_i] */
	uint8_t *ws_data; /* pages in order, or NULL: decode from snap */
	uint64_t ws_off;
	pthread_t prefetcher; /* installs the working set beside the handler */
	int prefetch_started;
	_Atomic int installers;	  /* filler + prefetch threads still installing */
	pthread_rwlock_t ev_lock; /* read events (W) vs prefetch installs (R) */
	uint8_t *pbuf;
	uint32_t *ws_idx; /* host page -> 1 + its page in ws_data, or 0 */
	uint64_t *ws_gpa; /* guest address of each working-set page, in order */
	uint64_t nwspg;

	/* stats */
	atomic_uint_fast64_t faults, removed, mapped, decoded;
	atomic_uint_fast64_t removed_unread; /* REMOVEs of pages not yet installed */
	_Atomic int done_reported;	     /* on_done was called */
	uint32_t *samples;	/* fault service, event read -> installed */
	uint32_t *samples_inst; /* the same minus reading/decoding the source */
	size_t nsamples;
	uint64_t dec_ns;   /* handler: source time of the fault being served */
	uint8_t *hbuf;	   /* handler's decode buffer */

	/* MMAP: leases on the mapped files (restore_lease.c) */
	struct rs_lease *lease;
	uint64_t hbuf_blk; /* 1 + the block hbuf holds, or 0 */
};

/* restore_core.c */
int rs_fail(sqb_restore *rs, int err, const struct sqb_diag *d);
int rs_decode_block(sqb_restore *rs, uint64_t blk, uint8_t *buf, uint64_t *len, struct sqb_diag *d);
int rs_block_is_zero(sqb_restore *rs, uint64_t blk);
struct rs_range *rs_block_range(sqb_restore *rs, uint64_t blk, uint64_t *off);
struct rs_range *rs_addr_range(sqb_restore *rs, uint64_t host, uint64_t *off);
struct rs_range *rs_gpa_range(sqb_restore *rs, uint64_t gpa, uint64_t *off);
uint64_t rs_now_ns(void);
static inline int rs_bit(_Atomic uint64_t *bm, uint64_t i)
{
	return (int)((atomic_load_explicit(&bm[i / 64], memory_order_acquire) >> (i % 64)) & 1);
}
/* seq_cst: the signal source pairs "set present, then read waiters" with
 * "count a waiter, then read present" (a store-load handshake). */
static inline void rs_bit_set(_Atomic uint64_t *bm, uint64_t i)
{
	atomic_fetch_or_explicit(&bm[i / 64], 1ull << (i % 64), memory_order_seq_cst);
}
static inline void rs_bit_clear(_Atomic uint64_t *bm, uint64_t i)
{
	atomic_fetch_and_explicit(&bm[i / 64], ~(1ull << (i % 64)), memory_order_release);
}

/* restore_mmap.c */
int rs_mmap_restore(sqb_restore *rs, struct sqb_diag *d);

/* restore_lease.c: read leases on every layer file of an MMAP restore; a
 * break fails the restore with -ETXTBSY.  held: 0 means copy, never map. */
int rs_lease_take(sqb_restore *rs);
int rs_lease_held(const sqb_restore *rs, const sqb_snap *layer);
void rs_lease_release(sqb_restore *rs);

/* restore_lazy.c */
int rs_lazy_start(sqb_restore *rs, struct sqb_diag *d);
void rs_lazy_halt(sqb_restore *rs);
void rs_lazy_stop(sqb_restore *rs);
int rs_lazy_fetch(sqb_restore *rs, uint64_t gpa, uint64_t len);

/* restore_wset.c */
int rs_wset_load(sqb_restore *rs, const char *path, struct sqb_diag *d);

/* fault_uffd.c, fault_signal.c */
int rs_uffd_create(struct fault_src **out, sqb_restore *rs, int ext_fd);
int rs_signal_create(struct fault_src **out, sqb_restore *rs);
int rs_exit_create(struct fault_src **out, sqb_restore *rs);

#endif
