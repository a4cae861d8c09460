/* VM shells (docs/fleet.md "Shells", issue 14): a VM built before a
 * snapshot is chosen (memory registered, irqchip, vCPUs created and parked)
 * and adopted by a snapshot load of the same shape.  The invariant: no vCPU
 * of a shell has ever run (KVM refuses CPUID changes after KVM_RUN). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "log.h"
#include "vmm_priv.h"

int sqb_vm_shell_create(sqb_vm **out, const struct sqb_vm_shape *shape, struct sqb_diag *diag)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	int err;

	*out = NULL;
	if (!shape || shape->vcpu_count < 1 || shape->vcpu_count > SQB_VM_MAX_VCPUS ||
	    shape->mem_size_mib < 1 || shape->mem_size_mib > (1ULL << 20))
		return -EINVAL;
	cfg.vcpu_count = shape->vcpu_count;
	cfg.mem_size_mib = shape->mem_size_mib;
	cfg.track_dirty_pages = shape->track_dirty_pages;
	cfg.kernel_path = NULL; /* nothing loaded: the vCPUs keep their reset state */
	cfg.serial_out_fd = -1; /* the load sets the sink */
	err = sqb_vm_create(out, &cfg, diag);
	if (err)
		return err;
	(*out)->shell = 1;
	return 0;
}

int sqb_vm_shell_check(sqb_vm *vm)
{
	if (!vm || !vm->shell)
		return -SQB_ESTATE;
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (__atomic_load_n(&vm->vcpus[i].ran, __ATOMIC_ACQUIRE))
			return -SQB_ESTATE;
	pthread_mutex_lock(&vm->lock);
	int started = vm->started || vm->state != SQB_VM_CREATED;
	pthread_mutex_unlock(&vm->lock);
	return started ? -SQB_ESTATE : 0;
}

static int same_shape(const struct sqb_vm *vm, const struct sqb_vm_config *cfg)
{
	return vm->nvcpus == cfg->vcpu_count && vm->mem.size == cfg->mem_size_mib << 20 &&
	       vm->track_dirty == (cfg->track_dirty_pages != 0) && cfg->huge_pages == 0 &&
	       !cfg->pci && !cfg->kernel_path;
}

int sqb_vm_shell_adopt(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_diag *diag)
{
	int err;

	/* Always checked, also in release builds: a shell that ran would take
	 * snapshot state KVM may refuse or apply wrongly.  A programmer error,
	 * but reported, never abort()ed (libraries never abort). */
	if (sqb_vm_shell_check(vm)) {
		if (diag) {
			snprintf(diag->section, sizeof(diag->section), "shell");
			snprintf(diag->reason, sizeof(diag->reason),
				 "the pre-warmed VM shell has already run a vCPU or taken a "
				 "snapshot; a shell is used once, before any KVM_RUN");
		}
		sqb_err("BUG: a VM shell that has run was offered to a snapshot load");
		return -SQB_ESTATE;
	}
	if (!same_shape(vm, cfg))
		return 1;
	vm->serial_fd = cfg->serial_out_fd;
	if (vm->serial_fd >= 0) { /* as sqb_vm_create: a sink never blocks a vCPU */
		int fl = fcntl(vm->serial_fd, F_GETFL);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(vm->serial_fd, F_SETFL, fl | O_NONBLOCK);
	}
	/* The snapshot's devices join the bus now.  The vCPUs exist but never
	 * ran, so nothing reads the bus; ACPI tables are in the snapshot's
	 * memory, so unsealing changes no description the guest holds. */
	if (cfg->add_devices) {
		vm->sealed = 0;
		err = cfg->add_devices(cfg->add_devices_arg, vm, diag);
		vm->sealed = 1;
		if (err)
			return err < 0 ? err : -EINVAL;
	}
	vm->shell = 0;
	return 0;
}
