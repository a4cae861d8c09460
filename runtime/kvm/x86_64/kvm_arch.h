/* KVM backend, x86_64 part: per-VM state only x86 has (included by
 * kvm_priv.h; CMake puts runtime/kvm/<arch>/ on the include path). */
#ifndef SQB_KVM_ARCH_H
#define SQB_KVM_ARCH_H

#include <linux/kvm.h>
#include <stdint.h>

#define SQB_KVM_SNAP_ARCH SQB_ARCH_X86_64 /* snapfmt enum sqb_arch of its records */

/* First guess for KVM_GET_SUPPORTED_CPUID; grown on E2BIG up to the max. */
#define SQB_KVM_CPUID_FIRST 256
#define SQB_KVM_CPUID_MAX   4096

struct sqb_kvm_arch_vm {
	struct kvm_cpuid2 *cpuid; /* filtered template (APIC ID patched per vCPU) */
	uint32_t *msr_index;	  /* MSRs this host lets us read (snapshot list) */
	unsigned int nmsr_index;
};

#endif
