/* virtio-mem on the VM (dev_vmem.h): the hotpluggable region's host memory
 * and its memslots behind runtime/virtio's device, which decides what is
 * plugged (Firecracker's devices/virtio/mem and its KVM slot handling). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dev_virtio.h"
#include "dev_vmem.h"
#include "layout.h"
#include "vmm_priv.h"

struct varg {
	struct sqb_vmem_cfg cfg;
	struct sqb_vm *vm;
	uint8_t *host; /* total bytes, PROT_NONE where no slot is mapped */
	uint64_t total, slot_size, nslots;
	uint8_t *slot_on; /* nslots flags, under the device lock */
};

/* Slot i present: readable and writable here, a memslot for the guest.
 * Absent: the memslot first (the guest stops reaching it), then the pages. */
static int vmem_slot(void *opaque, uint64_t i, int present)
{
	struct varg *a = opaque;
	uint8_t *p = a->host + i * a->slot_size;
	uint64_t gpa = SQB_ARCH_MEMHP_BASE + i * a->slot_size;
	int err;

	if (i >= a->nslots)
		return -EINVAL;
	if (!!a->slot_on[i] == !!present)
		return 0;
	if (present) {
		if (mprotect(p, a->slot_size, PROT_READ | PROT_WRITE) < 0)
			return -errno;
		err = sqb_vm_map_hotplug_slot(a->vm, (unsigned int)i, gpa, a->slot_size, p);
		if (err < 0) {
			mprotect(p, a->slot_size, PROT_NONE);
			return err;
		}
	} else {
		err = sqb_vm_map_hotplug_slot(a->vm, (unsigned int)i, gpa, 0, p);
		if (err < 0)
			return err;
		madvise(p, a->slot_size, MADV_DONTNEED);
		mprotect(p, a->slot_size, PROT_NONE);
	}
	a->slot_on[i] = present ? 1 : 0;
	return 0;
}

static int vmem_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct varg *a = opaque;

	if (off > a->total || len > a->total - off)
		return -EINVAL;
	/* a slot already gone is PROT_NONE and empty: madvise works on it too */
	return madvise(a->host + off, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

static int vmem_create(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
		       struct sqb_diag *diag)
{
	struct varg *a = arg;
	struct sqb_vio_vmem_opts o = {SQB_VIO_OPTS_VERSION,
				      SQB_ARCH_MEMHP_BASE,
				      a->total,
				      (uint64_t)a->cfg.block_size_mib << 20,
				      a->slot_size,
				      {a, vmem_slot, vmem_discard}};
	int err = sqb_vio_vmem_new(out, host, &o);

	if (err < 0 && diag)
		snprintf(diag->reason, sizeof(diag->reason),
			 "Failed to create memory hotplug device: %s", sqb_strerror(err));
	return err;
}

static void vmem_arg_free(void *arg)
{
	struct varg *a = arg;

	if (!a)
		return;
	/* the VM's memslots go with the VM, which outlives its devices' use */
	if (a->host)
		munmap(a->host, a->total);
	free(a->slot_on);
	free(a);
}

int sqb_vmem_add(sqb_vm *vm, const struct sqb_vmem_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_vdev_ext ext = {0};
	const struct sqb_mem_region *last;
	struct varg *a;
	void *p;

	if (!vm || !cfg || cfg->version != SQB_VMEM_VERSION || !cfg->slot_size_mib ||
	    !cfg->block_size_mib || cfg->total_size_mib % cfg->slot_size_mib)
		return -EINVAL;
	last = &vm->mem.regions[vm->mem.nregions - 1];
	if ((uint64_t)cfg->total_size_mib << 20 > SQB_ARCH_MEMHP_SIZE ||
	    last->gpa + last->size > SQB_ARCH_MEMHP_BASE) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "The hotpluggable memory (%u MiB) does not fit in the address "
				 "space reserved for it (%llu MiB at 0x%llx)",
				 cfg->total_size_mib,
				 (unsigned long long)(SQB_ARCH_MEMHP_SIZE >> 20),
				 (unsigned long long)SQB_ARCH_MEMHP_BASE);
		return -ERANGE;
	}
	if (!vm->ops->vm_map_device_memory) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "the %s backend cannot map device memory: virtio-mem is not "
				 "supported on it",
				 vm->ops->name);
		return -ENOTSUP;
	}
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->cfg = *cfg;
	a->vm = vm;
	a->total = (uint64_t)cfg->total_size_mib << 20;
	a->slot_size = (uint64_t)cfg->slot_size_mib << 20;
	a->nslots = a->total / a->slot_size;
	a->slot_on = calloc(a->nslots, 1);
	p = mmap(NULL, a->total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!a->slot_on || p == MAP_FAILED) {
		int err = p == MAP_FAILED ? -errno : -ENOMEM;

		if (p != MAP_FAILED)
			munmap(p, a->total);
		free(a->slot_on);
		free(a);
		return err;
	}
	a->host = p;
	ext.create = vmem_create;
	ext.free_arg = vmem_arg_free;
	ext.arg = a;
	return sqb_vdev_add_ext(vm, SQB_VMEM_ID, SQB_VIO_ID_MEM, &ext, diag);
}

sqb_vio_dev *sqb_vmem_dev(sqb_vm *vm)
{
	sqb_vio_dev *d = sqb_vdev_lib(vm, SQB_VMEM_ID);

	return d && sqb_vio_device_id(d) == SQB_VIO_ID_MEM ? d : NULL;
}
