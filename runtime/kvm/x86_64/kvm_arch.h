/* KVM backend, x86_64 part: per-VM state only x86 has (included by
 * kvm_priv.h; CMake puts runtime/kvm/<arch>/ on the include path). */
#ifndef SQB_KVM_ARCH_H
#define SQB_KVM_ARCH_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define SQB_KVM_SNAP_ARCH SQB_ARCH_X86_64 /* snapfmt enum sqb_arch of its records */

/* First guess for KVM_GET_SUPPORTED_CPUID; grown on E2BIG up to the max. */
#define SQB_KVM_CPUID_FIRST 256
#define SQB_KVM_CPUID_MAX   4096

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

struct sqb_kvm_arch_vm {
	struct kvm_cpuid2 *cpuid; /* supported + template; normalized per vCPU */
	unsigned int cpuid_nent;  /* entries a vCPU's normalized CPUID has */
	uint32_t *msr_index;	  /* MSRs this host lets us read (snapshot list) */
	unsigned int nmsr_index;
	unsigned int load_flags; /* SQB_HV_LOAD_* of the next vm_load_records */
	struct sqb_msr_mod *msr_mods; /* a custom CPU template's MSR modifiers */
	unsigned int nmsr_mods;
	int templated;		 /* a template changed CPUID leaves: named on a refusal */
	char tmpl_leaves[120];	 /* "0x1/0, 0x7/0, ..." (cut when long) */
};

struct sqb_hv_vm;
struct sqb_hv_vcpu;
struct sqb_diag;
struct sqb_cpu_template;

/* x86_64 (kvm/x86_64/kvm_cpu.c) */
int sqb_kvm_cpuid_init(struct sqb_hv_vm *vm, struct sqb_diag *diag);
int sqb_kvm_cpuid_set(struct sqb_hv_vcpu *vc, struct sqb_diag *diag);
int sqb_kvm_msr_init(struct sqb_hv_vm *vm);
int sqb_kvm_msr_boot(struct sqb_hv_vcpu *vc, struct sqb_diag *diag);
/* Custom CPU templates (Firecracker's cpu_config/x86_64): the template's
 * CPUID modifiers on c's entries; -ENOENT with the (leaf, subleaf) KVM
 * does not have in *bad (Firecracker refuses, it never adds a leaf). */
int sqb_kvm_cpuid_apply(struct kvm_cpuid2 *c, const struct sqb_cpu_template *t, uint32_t bad[2]);
int sqb_kvm_cpu_template(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			 struct sqb_diag *diag);
size_t sqb_kvm_vcpu_state_size(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind);
int sqb_kvm_vcpu_get_state(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind, void *buf);
int sqb_kvm_vcpu_set_state(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind,
			   const void *buf);

#endif
