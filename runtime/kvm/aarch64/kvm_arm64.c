/* KVM backend, aarch64 part (kvm_priv.h arch hooks): the vGICv3 created
 * through KVM_CREATE_DEVICE (distributor, redistributors, 96 interrupts)
 * and initialised once every vCPU exists; vCPUs initialised with
 * KVM_ARM_PREFERRED_TARGET and in-kernel PSCI 0.2, secondaries powered
 * off, MPIDR per vCPU; entry registers through KVM_SET_ONE_REG. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch_entry.h"
#include "kvm_priv.h"
#include "layout.h"
#include "squib/runtime.h"

/* Core registers: offsets into struct kvm_regs in 32-bit words. */
#define CORE_REG(field)                                                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(field))
#define SYSREG_MPIDR_EL1 ARM64_SYS_REG(3, 0, 0, 0, 5)

/* EL1h with D, A, I, F masked: the boot protocol's entry state. */
#define PSTATE_BOOT 0x3c5ULL

int sqb_kvm_arm64_get_reg(struct sqb_hv_vcpu *vc, uint64_t id, void *val)
{
	struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)val};

	return ioctl(vc->fd, KVM_GET_ONE_REG, &r) < 0 ? -errno : 0;
}

int sqb_kvm_arm64_set_reg(struct sqb_hv_vcpu *vc, uint64_t id, const void *val)
{
	struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)val};

	return ioctl(vc->fd, KVM_SET_ONE_REG, &r) < 0 ? -errno : 0;
}

void sqb_kvm_arch_host_probe(int kvm_fd)
{
	(void)kvm_fd; /* no per-process host probe on arm64 */
}

int sqb_kvm_arch_vm_init(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	int err;

	vm->arch.vgic_fd = -1;
	pthread_mutex_init(&vm->arch.lock, NULL);
	memset(&vm->arch.init, 0, sizeof(vm->arch.init));
	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &vm->arch.init) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_ARM_PREFERRED_TARGET", err);
		return err;
	}
	/* PSCI in the kernel, not in squib: KVM then owns each vCPU's power
	 * state (CPU_ON/OFF, AFFINITY_INFO race-free across vCPU threads, the
	 * state visible in KVM_GET_MP_STATE for snapshots), CPU_ON costs no
	 * exit to user space, and SYSTEM_OFF / SYSTEM_RESET still reach squib
	 * as KVM_EXIT_SYSTEM_EVENT.  The HVF backend has no such thing and
	 * will implement the same PSCI 0.2 calls in the VMM. */
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PSCI_0_2) <= 0) {
		sqb_kvm_diag(diag, "KVM_CAP_ARM_PSCI_0_2", -ENOTSUP);
		return -SQB_EUNSUPPORTED;
	}
	vm->arch.init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	return 0;
}

void sqb_kvm_arch_vm_fini(struct sqb_hv_vm *vm)
{
	if (vm->arch.vgic_fd >= 0)
		close(vm->arch.vgic_fd);
	vm->arch.vgic_fd = -1;
	pthread_mutex_destroy(&vm->arch.lock);
}

static int vgic_attr(struct sqb_hv_vm *vm, uint32_t group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val};

	return ioctl(vm->arch.vgic_fd, KVM_SET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

/* GICv3 in the kernel: distributor and redistributor frames where the
 * device tree says (layout.h), 96 interrupt IDs.  Created before the
 * vCPUs (KVM wants that for GICv3); initialised after the last one. */
int sqb_kvm_arch_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	struct kvm_create_device cd = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	uint64_t dist = SQB_ARM64_GICD_BASE, redist = SQB_ARM64_GICR_BASE;
	uint32_t nirq = SQB_ARM64_GIC_NR_IRQS;
	int err;

	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &cd) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_CREATE_DEVICE (vGICv3)", err);
		return err;
	}
	vm->arch.vgic_fd = (int)cd.fd;
	err = vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist);
	if (!err)
		err =
		    vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist);
	if (!err)
		err = vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nirq);
	if (err < 0)
		sqb_kvm_diag(diag, "vGICv3 addresses / interrupt count", err);
	return err;
}

static int vgic_init_locked(struct sqb_hv_vm *vm)
{
	int err;

	if (vm->arch.vgic_ready)
		return 0;
	err = vgic_attr(vm, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
	if (!err)
		vm->arch.vgic_ready = 1;
	return err;
}

int sqb_kvm_arch_vcpu_init(struct sqb_hv_vcpu *vc, struct sqb_diag *diag)
{
	struct sqb_hv_vm *vm = vc->vm;
	struct kvm_vcpu_init init = vm->arch.init;
	uint64_t mpidr = sqb_arm64_mpidr(vc->index) | (1ULL << 31); /* RES1 bit */
	int err;

	/* Secondaries wait, powered off, for the guest's PSCI CPU_ON. */
	if (vc->index > 0)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if (ioctl(vc->fd, KVM_ARM_VCPU_INIT, &init) < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_ARM_VCPU_INIT", err);
		return err;
	}
	/* The affinity the device tree names (layout.h), set explicitly so a
	 * restored vCPU keeps it whatever the kernel's default becomes. */
	err = sqb_kvm_arm64_set_reg(vc, SYSREG_MPIDR_EL1, &mpidr);
	if (err < 0) {
		sqb_kvm_diag(diag, "KVM_SET_ONE_REG MPIDR_EL1", err);
		return err;
	}
	pthread_mutex_lock(&vm->arch.lock);
	if (++vm->arch.ncreated == vm->nvcpus)
		err = vgic_init_locked(vm);
	pthread_mutex_unlock(&vm->arch.lock);
	if (err < 0)
		sqb_kvm_diag(diag, "vGICv3 KVM_DEV_ARM_VGIC_CTRL_INIT", err);
	return err;
}

int sqb_kvm_vcpu_set_entry(struct sqb_hv_vcpu *vc, const struct sqb_arch_entry *e)
{
	uint64_t zero = 0, pstate = PSTATE_BOOT;
	int err;

	err = sqb_kvm_arm64_set_reg(vc, CORE_REG(regs.pstate), &pstate);
	for (int i = 1; i < 4 && !err; i++)
		err = sqb_kvm_arm64_set_reg(vc, CORE_REG(regs.regs[i]), &zero);
	if (!err)
		err = sqb_kvm_arm64_set_reg(vc, CORE_REG(regs.regs[0]), &e->x0);
	if (!err)
		err = sqb_kvm_arm64_set_reg(vc, CORE_REG(regs.pc), &e->pc);
	return err;
}

uint64_t sqb_kvm_arch_vcpu_pc(struct sqb_hv_vcpu *vc)
{
	uint64_t pc;

	return sqb_kvm_arm64_get_reg(vc, CORE_REG(regs.pc), &pc) < 0 ? UINT64_MAX : pc;
}

uint32_t sqb_kvm_arch_irq_line(unsigned int irq)
{
	/* KVM_IRQ_LINE on arm64: type in bits 24-27, the INTID below (api.rst) */
	return (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) |
	       ((SQB_ARM64_SPI_BASE + irq) & KVM_ARM_IRQ_NUM_MASK);
}

int sqb_kvm_vm_dirty_fd(struct sqb_hv_vm *vm)
{
	return vm->vm_fd;
}

/* A guest shutdown exit has no x86 triple-fault check here (kvm_priv.h). */
void sqb_kvm_crash_arm(struct sqb_hv_vcpu *vc, const struct kvm_sregs *s, const struct kvm_regs *r)
{
	(void)vc;
	(void)s;
	(void)r;
}

void sqb_kvm_crash_note_exit(struct sqb_hv_vcpu *vc)
{
	(void)vc;
}

void sqb_kvm_crash_report(struct sqb_hv_vcpu *vc)
{
	(void)vc;
}

void sqb_kvm_crash_free(struct sqb_hv_vcpu *vc)
{
	(void)vc;
}

/* A custom CPU template on arm64: only kvm_capabilities reach here (the API
 * refuses vcpu_features and reg_modifiers, docs/cpu-templates.md); each
 * "N" must be present.  Firecracker's arm64 default list is not checked,
 * so "!N" has nothing to drop. */
int sqb_kvm_arch_cpu_template(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			      struct sqb_diag *diag)
{
	if (t->ncpuid || t->nmsrs) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "CPUID and MSR modifiers are x86_64 only");
		return -SQB_EUNSUPPORTED;
	}
	for (unsigned int i = 0; i < t->ncaps; i++) {
		if (t->caps[i].remove ||
		    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, (unsigned long)t->caps[i].cap) > 0)
			continue;
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Missing KVM capabilities: %#x", t->caps[i].cap);
		return -SQB_EUNSUPPORTED;
	}
	return 0;
}
