/* What the HVF backend offers beyond struct sqb_hv_ops (runtime/hv.h):
 * guest-side memory permissions and the hook that access exceptions on RAM
 * go to (dirty tracking, postcopy), plus the glue for squib/dirty.h and
 * squib/restore.h (hvf_faults.c).
 *
 *   vCPU exit (data/instruction abort on RAM, ESR_EL2 + IPA)
 *     └─> fault hook ──> sqb_hvf_faults: page not resident? restore fetch,
 *                         then re-grant (hv_vm_protect); write while armed?
 *                         sqb_dirty_fault (logs + re-grants)
 *   returns 1: retry the instruction (PC untouched), 0: not ours
 */
#ifndef SQB_HVF_H
#define SQB_HVF_H

#include <stdint.h>

#include "squib/dirty.h"
#include "squib/restore.h"

struct sqb_hv_vm;

#define SQB_HVF_PROT_R 1u
#define SQB_HVF_PROT_W 2u
#define SQB_HVF_PROT_X 4u

/* gpa, write (1 write, 0 read, 2 instruction fetch) -> 1 handled, 0 not
 * handled (the vCPU stops with an internal error), < 0 error. */
typedef int (*sqb_hvf_fault_fn)(void *ctx, uint64_t gpa, int access);

void sqb_hvf_set_fault_handler(struct sqb_hv_vm *vm, sqb_hvf_fault_fn fn, void *ctx);
/* hv_vm_protect of [gpa, gpa+len) with SQB_HVF_PROT_* bits. */
int sqb_hvf_protect(struct sqb_hv_vm *vm, uint64_t gpa, uint64_t len, unsigned int prot);
/* The OS build string recorded with the GIC blob ([F-55]). */
int sqb_hvf_os_build(char *buf, unsigned long len);

/* ---- hvf_faults.c: dirty tracking and postcopy through access faults ---- */
struct sqb_hvf_faults;
/* One guest RAM range [gpa, gpa+len) (page granule = the host page). */
int sqb_hvf_faults_create(struct sqb_hvf_faults **out, struct sqb_hv_vm *vm, uint64_t gpa,
			  uint64_t len);
void sqb_hvf_faults_free(struct sqb_hvf_faults *f);
/* A protect callback for sqb_dirty_opts (SQB_DIRTY_EXIT), ctx = the faults
 * object: never grants a page that is not resident yet. */
int sqb_hvf_faults_dirty_protect(void *ctx, uint64_t gpa, uint64_t len, int writable);
/* Arm or disarm write tracking through d (an SQB_DIRTY_EXIT tracker whose
 * protect callback is the one above); NULL disarms. */
void sqb_hvf_faults_set_dirty(struct sqb_hvf_faults *f, sqb_dirty *d);
/* Postcopy: make [gpa, gpa+len) inaccessible to the guest; each first
 * access fetches the page from rs (sqb_restore_fetch) and grants it. */
int sqb_hvf_faults_lazy(struct sqb_hvf_faults *f, sqb_restore *rs, uint64_t gpa, uint64_t len);
/* Postcopy: fetch [gpa, gpa+len) now and grant it (pages the vCPUs are
 * about to execute: an instruction abort would fetch them too, but the
 * emulation on KVM cannot report one, docs/hvf.md). */
int sqb_hvf_faults_prefetch(struct sqb_hvf_faults *f, uint64_t gpa, uint64_t len);
/* Counters: pages fetched by access faults, write faults passed to dirty. */
void sqb_hvf_faults_stats(const struct sqb_hvf_faults *f, uint64_t *fetched, uint64_t *dirty);

#endif
