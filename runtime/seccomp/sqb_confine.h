/* Seccomp confinement of squib's threads (docs/security.md "Seccomp").
 *
 *   sqb_confine_setup()  once, in main, before any thread exists:
 *        kinds ──libseccomp──> one BPF program per kind (or FILE for all)
 *        SIGSYS handler: "thread <kind>: forbidden system call <nr> (<name>)"
 *   sqb_confine_thread(kind)  at the entry of each thread:
 *        no_new_privs + seccomp(SET_MODE_FILTER, program[kind])
 *
 *   API (main) ──creates──> vCPU i, event loop, Uffd watcher (own lists)
 *             └─creates──> restore/snapshot pool threads (inherit API's)
 *
 * Filters stack: a thread created by a filtered thread keeps its creator's
 * filter and adds its own, so each kind's list is a subset of the API list.
 * Disabled (the library default, and `squib --no-seccomp`) the hook only
 * names the thread. */
#ifndef SQB_CONFINE_H
#define SQB_CONFINE_H

#include "squib/errors.h"

enum sqb_confine_kind {
	SQB_CONFINE_API = 0, /* main thread: API server, VM set-up, snapshots */
	SQB_CONFINE_VCPU,    /* one per vCPU, after its hypervisor vCPU exists */
	SQB_CONFINE_EVLOOP,  /* the per-VM device event loop */
	SQB_CONFINE_WATCH,   /* the Uffd page-server watcher */
	SQB_CONFINE_NKINDS
};

#define SQB_CONFINE_OPTS_VERSION 1
struct sqb_confine_opts {
	unsigned int version;
	int enabled;		 /* 0: no filters (the hook still names threads) */
	const char *filter_file; /* raw BPF (struct sock_filter[]) for every thread */
};
#define SQB_CONFINE_OPTS_INIT                                                                      \
	{                                                                                          \
		SQB_CONFINE_OPTS_VERSION, 1, NULL                                                  \
	}

/* Build (or read) the programs and install the SIGSYS reporter.  Call once,
 * single-threaded.  0, -errno, or -SQB_EINVAL with diag saying why. */
int sqb_confine_setup(const struct sqb_confine_opts *opts, struct sqb_diag *diag);
/* Confine the calling thread as `kind`; 0 when confinement is off. */
int sqb_confine_thread(enum sqb_confine_kind kind);
/* Is confinement on (after a successful setup)? */
int sqb_confine_enabled(void);
/* "api", "vcpu", "evloop", "uffd-watch". */
const char *sqb_confine_kind_name(enum sqb_confine_kind kind);
/* Free the programs (tests; threads already confined stay confined). */
void sqb_confine_reset(void);

#endif
