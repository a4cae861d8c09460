/* Hypervisor backend interface (private to runtime/).
 *
 *   vmm.c / devices ──> struct sqb_hv_ops ──> kvm/kvm_backend.c (Linux KVM)
 *                                        └──> hvf/ (later, same table)
 *
 * Nothing above this table names the hypervisor.  State slots (vCPU and VM
 * state get/set) move opaque, backend-defined blobs identified by kind; the
 * snapshot layer encodes them explicitly.  Unimplemented slots are NULL or
 * return -ENOSYS.
 */
#ifndef SQB_RUNTIME_HV_H
#define SQB_RUNTIME_HV_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

struct sqb_hv_vm;
struct sqb_hv_vcpu;
struct sqb_record; /* squib/snapfmt.h */

enum sqb_hv_exit_kind {
	SQB_HV_EXIT_IO = 1,
	SQB_HV_EXIT_MMIO,
	SQB_HV_EXIT_HLT,
	SQB_HV_EXIT_SHUTDOWN, /* triple fault */
	SQB_HV_EXIT_INTERNAL, /* emulation failure */
	SQB_HV_EXIT_FAIL_ENTRY,
	SQB_HV_EXIT_SYSTEM_EVENT, /* detail: SQB_HV_SYSEV_* */
	SQB_HV_EXIT_UNKNOWN,
};

/* System events, backend-neutral (the backend maps its own codes). */
#define SQB_HV_SYSEV_SHUTDOWN 1 /* the guest powered off */
#define SQB_HV_SYSEV_RESET    2 /* the guest asked for a reset */
#define SQB_HV_SYSEV_OTHER    3 /* anything else (crash, ...) */

struct sqb_hv_exit {
	enum sqb_hv_exit_kind kind;
	uint64_t detail; /* backend code: suberror, hardware reason or raw reason */
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2 or 4 */
			uint8_t is_write;
			uint32_t count; /* > 1 for rep ins/outs */
			uint8_t *data;	/* count * size bytes, in the run area */
		} io;
		struct {
			uint64_t gpa;
			uint8_t *data;
			uint32_t len;
			uint8_t is_write;
		} mmio;
	} u;
};

/* How a vCPU enters the guest.  PROT32 = PVH (flat 32-bit, paging off, rbx =
 * start_info); LONG64 = 64-bit entry with identity page tables at cr3. */
enum sqb_hv_entry_mode { SQB_HV_ENTRY_PROT32 = 1, SQB_HV_ENTRY_LONG64 = 2 };

struct sqb_hv_entry {
	enum sqb_hv_entry_mode mode;
	uint64_t rip, rsp, rsi, rbx, cr3;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint16_t cs_sel, ds_sel;
};

/* vCPU state kinds a snapshot captures, in the order KVM wants them set. */
enum sqb_hv_vcpu_state_kind {
	SQB_HV_VCPU_CPUID = 0,
	SQB_HV_VCPU_TSC_KHZ,
	SQB_HV_VCPU_REGS,
	SQB_HV_VCPU_SREGS,
	SQB_HV_VCPU_XCRS,
	SQB_HV_VCPU_FPU,
	SQB_HV_VCPU_XSAVE,
	SQB_HV_VCPU_LAPIC,
	SQB_HV_VCPU_MSRS,
	SQB_HV_VCPU_EVENTS,
	SQB_HV_VCPU_MP_STATE,
	SQB_HV_VCPU_DEBUGREGS,
	SQB_HV_VCPU_STATE_KINDS_
};

enum sqb_hv_vm_state_kind {
	SQB_HV_VM_PIC_MASTER = 0,
	SQB_HV_VM_PIC_SLAVE,
	SQB_HV_VM_IOAPIC,
	SQB_HV_VM_PIT,
	SQB_HV_VM_CLOCK,
	SQB_HV_VM_STATE_KINDS_
};

struct sqb_hv_ops {
	const char *name;
	unsigned int snap_arch, snap_hv; /* snapfmt enum sqb_arch / sqb_hv of its records */
	int (*vm_create)(struct sqb_hv_vm **out, unsigned int nvcpus, struct sqb_diag *diag);
	void (*vm_destroy)(struct sqb_hv_vm *vm);
	/* Interrupt controllers and timers; after vm_map_memory, before vCPUs. */
	int (*vm_init_platform)(struct sqb_hv_vm *vm, struct sqb_diag *diag);
	/* Map host memory [host, host+size) at guest-physical gpa in a slot. */
	int (*vm_map_memory)(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			     void *host, int track_dirty);
	/* Drive an interrupt line of the in-kernel irqchip. */
	int (*vm_irq_line)(struct sqb_hv_vm *vm, unsigned int irq, int level);
	/* Size the caller must provide for a state blob of this kind. */
	size_t (*vm_state_size)(enum sqb_hv_vm_state_kind kind);
	int (*vm_get_state)(struct sqb_hv_vm *vm, enum sqb_hv_vm_state_kind kind, void *buf);
	int (*vm_set_state)(struct sqb_hv_vm *vm, enum sqb_hv_vm_state_kind kind, const void *buf);

	/* Create vCPU index (APIC ID = index) with filtered CPUID and base MSRs. */
	int (*vcpu_create)(struct sqb_hv_vcpu **out, struct sqb_hv_vm *vm, unsigned int index,
			   struct sqb_diag *diag);
	void (*vcpu_destroy)(struct sqb_hv_vcpu *vcpu);
	int (*vcpu_set_entry)(struct sqb_hv_vcpu *vcpu, const struct sqb_hv_entry *entry);
	/* Run until an exit the VMM must handle.  Returns 0 with *exit filled,
	 * -EINTR when kicked, other -errno on failure. */
	int (*vcpu_run)(struct sqb_hv_vcpu *vcpu, struct sqb_hv_exit *exit);
	/* Make the next (or current) run return -EINTR promptly; called with
	 * the VMM's lock held, followed by a signal to the vCPU thread. */
	void (*vcpu_set_kick)(struct sqb_hv_vcpu *vcpu, int on);
	uint64_t (*vcpu_rip)(struct sqb_hv_vcpu *vcpu); /* best effort, for reports */
	size_t (*vcpu_state_size)(struct sqb_hv_vcpu *vcpu, enum sqb_hv_vcpu_state_kind kind);
	int (*vcpu_get_state)(struct sqb_hv_vcpu *vcpu, enum sqb_hv_vcpu_state_kind kind,
			      void *buf);
	int (*vcpu_set_state)(struct sqb_hv_vcpu *vcpu, enum sqb_hv_vcpu_state_kind kind,
			      const void *buf);

	/* Snapshots: the complete vCPU / VM state as snapfmt records (format.md
	 * section 8) in the backend's capture and apply order.  Save fills up to
	 * cap records whose data the caller free()s (also on failure); load
	 * applies them and names the failing record in diag.  VM paused. */
	int (*vcpu_save_records)(struct sqb_hv_vcpu *vcpu, struct sqb_record *recs,
				 unsigned int cap, unsigned int *n);
	int (*vcpu_load_records)(struct sqb_hv_vcpu *vcpu, const struct sqb_record *recs,
				 unsigned int n, struct sqb_diag *diag);
	int (*vm_save_records)(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			       unsigned int *n);
	int (*vm_load_records)(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			       struct sqb_diag *diag);
	/* The descriptor a dirty tracker (squib/dirty.h) drives for this VM. */
	int (*vm_dirty_fd)(struct sqb_hv_vm *vm);
};

/* The backend this build was configured with (CMake picks the file). */
extern const struct sqb_hv_ops sqb_hv_backend;

#endif
