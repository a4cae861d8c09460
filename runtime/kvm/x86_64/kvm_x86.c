/* KVM backend, x86_64 part (kvm_priv.h arch hooks): the per-VM CPUID
 * template and MSR list, the in-kernel irqchip (PIC, IOAPIC, LAPICs) and
 * PIT with the TSS / identity-map pages, and per-vCPU CPUID + boot MSRs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_priv.h"
#include "layout.h"
#include "squib/runtime.h"

int sqb_kvm_arch_vm_init(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	int err = sqb_kvm_cpuid_init(vm, diag);

	if (err < 0)
		return err;
	err = sqb_kvm_msr_init(vm);
	if (err < 0) {
		sqb_kvm_diag(diag, "KVM_GET_MSR_INDEX_LIST", err);
		free(vm->arch.cpuid);
		vm->arch.cpuid = NULL;
	}
	return err;
}

void sqb_kvm_arch_vm_fini(struct sqb_hv_vm *vm)
{
	free(vm->arch.cpuid);
	free(vm->arch.msr_index);
	free(vm->arch.msr_mods);
	vm->arch.cpuid = NULL;
	vm->arch.msr_index = NULL;
	vm->arch.msr_mods = NULL;
	vm->arch.nmsr_mods = 0;
}

/* Called after guest memory is mapped: on PVM a memslot added after the
 * irqchip costs several milliseconds more to register. */
int sqb_kvm_arch_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t idmap = SQB_X86_KVM_IDMAP_ADDR;
	int err;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, SQB_X86_KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_SET_TSS_ADDR/IDENTITY_MAP", err);
		return err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_CREATE_IRQCHIP", err);
		return err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_CREATE_PIT2", err);
		return err;
	}
	return 0;
}

int sqb_kvm_arch_vcpu_init(struct sqb_hv_vcpu *vc, struct sqb_diag *diag)
{
	int err = sqb_kvm_cpuid_set(vc, diag);

	if (err < 0 && diag && !strcmp(diag->section, "cpuid"))
		return err; /* normalization refused: its reason is said */
	if (err < 0) {
		sqb_kvm_diag(diag, "KVM_SET_CPUID2", err);
		if (diag && vc->vm->arch.templated) /* KVM does not say which entry */
			snprintf(diag->reason, sizeof(diag->reason),
				 "KVM_SET_CPUID2 refused the CPUID the custom CPU template made "
				 "(leaves %s): %s",
				 vc->vm->arch.tmpl_leaves, strerror(-err));
		return err;
	}
	err = sqb_kvm_msr_boot(vc, diag);
	if (err < 0 && diag && !diag->reason[0])
		sqb_kvm_diag(diag, "KVM_SET_MSRS", err);
	return err;
}

uint64_t sqb_kvm_arch_vcpu_pc(struct sqb_hv_vcpu *vc)
{
	struct kvm_regs r;

	if (ioctl(vc->fd, KVM_GET_REGS, &r) < 0)
		return UINT64_MAX;
	return r.rip;
}

uint32_t sqb_kvm_arch_irq_line(unsigned int irq)
{
	return irq; /* a GSI of the PIC/IOAPIC */
}

int sqb_kvm_arch_cpu_template(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			      struct sqb_diag *diag)
{
	size_t pos = 0;

	vm->arch.templated = t->ncpuid > 0;
	vm->arch.tmpl_leaves[0] = 0;
	for (unsigned int i = 0; i < t->ncpuid && pos < sizeof(vm->arch.tmpl_leaves); i++)
		pos += (size_t)snprintf(vm->arch.tmpl_leaves + pos,
					sizeof(vm->arch.tmpl_leaves) - pos, "%s%#x/%#x",
					i ? ", " : "", t->cpuid[i].leaf, t->cpuid[i].subleaf);
	return sqb_kvm_cpu_template(vm, t, diag);
}
