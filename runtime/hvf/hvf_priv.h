/* Private structures of the HVF backend (runtime/hvf/).
 *
 *   sqb_hv_vm (one per process: Hypervisor.framework has one VM)
 *     ├── mem[]: RAM ranges mapped with hv_vm_map
 *     ├── power[i] / on_entry / on_ctx: PSCI state of each vCPU (lock + cond)
 *     ├── vcpus[i] ──> sqb_hv_vcpu: hv_vcpu_t, its exit info, kick flag,
 *     │                the MMIO access waiting for the VMM's data
 *     └── fault hook (hvf.h) for access exceptions on RAM
 */
#ifndef SQB_HVF_PRIV_H
#define SQB_HVF_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hv.h"
#include "hv_api.h"
#include "hvf.h"
#include "hvf_logic.h"

#define SQB_HVF_MAX_VCPUS 32
#define SQB_HVF_MAX_MEM	  8

struct sqb_hv_vm {
	unsigned int nvcpus;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* power changes, kicks, interrupt lines (WFI) */
	struct sqb_hv_vcpu *vcpus[SQB_HVF_MAX_VCPUS];
	enum sqb_hvf_power power[SQB_HVF_MAX_VCPUS];
	uint64_t on_entry[SQB_HVF_MAX_VCPUS], on_ctx[SQB_HVF_MAX_VCPUS];
	struct {
		uint64_t gpa, size;
		void *host;
	} mem[SQB_HVF_MAX_MEM];
	unsigned int nmem;
	int have_vtoff;
	uint64_t vtimer_offset; /* every vCPU's, so their counters agree */
	sqb_hvf_fault_fn fault;
	void *fault_ctx;
	struct sqb_hvf_faults *faults; /* made by vm_dirty_exit (squib's Diff tracking) */
};

struct sqb_hv_vcpu {
	struct sqb_hv_vm *vm;
	unsigned int index;
	hv_vcpu_t id;
	hv_vcpu_exit_t *exit;
	atomic_int kicked;
	struct {
		int active, is_write;
		uint8_t srt, sse, sf, len, il;
	} mmio;
	uint8_t mmio_data[8];
	uint64_t sysreg_traps;
	uint64_t loaded_pc; /* PC of the last vcpu_load_records (postcopy prefetch) */
	int have_loaded_pc;
};

/* hvf_vcpu.c */
int sqb_hvf_vcpu_run(struct sqb_hv_vcpu *vc, struct sqb_hv_exit *exit);
const char *sqb_hvf_exit_internal_name(uint64_t detail);
int sqb_hvf_in_ram(struct sqb_hv_vm *vm, uint64_t gpa);
int sqb_hvf_err(hv_return_t r); /* hv_return_t -> -errno */

/* hvf_snapshot.c */
int sqb_hvf_vcpu_save_records(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			      unsigned int *n);
int sqb_hvf_vcpu_load_records(struct sqb_hv_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			      struct sqb_diag *d);
int sqb_hvf_vm_save_records(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			    unsigned int *n);
int sqb_hvf_vm_load_records(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			    struct sqb_diag *d);

/* Internal-error codes in the high half of SQB_HV_EXIT_INTERNAL's detail
 * (the low half is ESR_EL2's low 32 bits). */
enum sqb_hvf_internal {
	SQB_HVF_INT_RUN_FAILED = 1, /* hv_vcpu_run returned an error */
	SQB_HVF_INT_NO_SYNDROME,    /* data abort outside RAM without ISV */
	SQB_HVF_INT_RAM_FAULT,	    /* a fault on RAM that no hook handled */
	SQB_HVF_INT_EXCEPTION,	    /* an exception class squib does not serve */
	SQB_HVF_INT_HOOK_FAILED,    /* the fault hook failed (fetch error) */
	SQB_HVF_INT_REGS,	    /* a register access failed */
};

#endif
