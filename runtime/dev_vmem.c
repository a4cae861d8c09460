/* virtio-mem on the VM (dev_vmem.h): the hotpluggable region's host memory
 * and its memslots behind runtime/virtio's device, which decides what is
 * plugged (Firecracker's devices/virtio/mem and its KVM slot handling). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev_balloon.h"
#include "dev_virtio.h"
#include "dev_vmem.h"
#include "layout.h"
#include "vmm_priv.h"

struct varg {
	struct sqb_vmem_cfg cfg;
	struct sqb_vm *vm;
	uint8_t *host; /* the hotplug region of the VM's sqb_gmem (it owns it) */
	uint64_t total, slot_size, nslots;
	uint8_t *slot_on; /* nslots flags, under the device lock */
	int maps_fd;	  /* /proc/self/maps for discards (opened on the API thread) */
};

/* Slot i present: a memslot for the guest; absent: the memslot goes.  The
 * VMM's mapping stays read-write either way: what the VMM may touch is
 * decided by the plugged bits (vmem_blocks), so a device that resolved a
 * buffer just before the guest unplugged it never faults squib. */
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
	err = sqb_vm_map_hotplug_slot(a->vm, (unsigned int)i, gpa, present ? a->slot_size : 0, p);
	if (err < 0)
		return err;
	a->slot_on[i] = present ? 1 : 0;
	return 0;
}

static void vmem_blocks(void *opaque, uint64_t first, uint64_t n, int on)
{
	struct varg *a = opaque;

	sqb_mem_hotplug_set(&a->vm->mem, first, n, on);
}

/* Unplugged blocks read zero from now on; reported written so that the
 * next Diff records them as zero (KVM's log never sees a page go). */
static int vmem_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct varg *a = opaque;
	const struct sqb_gmem_hooks *h;
	int err;

	if (off > a->total || len > a->total - off)
		return -EINVAL;
	/* a background create still reading: dropping a page would lose its
	 * pause-instant bytes; zeros written through the write protection
	 * are copied aside first (the pages are dropped at the next discard) */
	if (__atomic_load_n(&a->vm->mem.cow_armed, __ATOMIC_ACQUIRE)) {
		memset(a->host + off, 0, len);
		err = 0;
	} else {
		err = sqb_balloon_discard_host(a->host + off, len, a->maps_fd);
	}
	h = __atomic_load_n(&a->vm->mem.hooks, __ATOMIC_ACQUIRE);
	if (h && h->written)
		h->written(h->opaque, SQB_ARCH_MEMHP_BASE + off, len);
	return err;
}

static int vmem_prepare(void *arg, struct sqb_gmem *mem)
{
	struct varg *a = arg;

	(void)mem;
	if (a->maps_fd < 0)
		a->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	return 0;
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
				      {a, vmem_slot, vmem_discard, vmem_blocks}};
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
	/* the VM's memslots and memory go with the VM */
	if (a->maps_fd >= 0)
		close(a->maps_fd);
	free(a->slot_on);
	free(a);
}

int sqb_vmem_add(sqb_vm *vm, const struct sqb_vmem_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_vdev_ext ext = {0};
	const struct sqb_mem_region *last;
	struct varg *a;
	int err;

	if (!vm || !cfg || cfg->version != SQB_VMEM_VERSION || !cfg->slot_size_mib ||
	    !cfg->block_size_mib || cfg->total_size_mib % cfg->slot_size_mib)
		return -EINVAL;
	last = &vm->mem.regions[vm->mem.nram - 1];
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
	a->maps_fd = -1;
	err = a->slot_on ? sqb_mem_add_hotplug(&vm->mem, SQB_ARCH_MEMHP_BASE, a->total,
					       (uint64_t)cfg->block_size_mib << 20, a->slot_size)
			 : -ENOMEM;
	if (err < 0) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Cannot reserve %u MiB of hotpluggable memory: %s",
				 cfg->total_size_mib, sqb_strerror(err));
		free(a->slot_on);
		free(a);
		return err;
	}
	a->host = vm->mem.regions[vm->mem.nram].host;
	ext.create = vmem_create;
	ext.prepare = vmem_prepare;
	ext.free_arg = vmem_arg_free;
	ext.arg = a;
	return sqb_vdev_add_ext(vm, SQB_VMEM_ID, SQB_VIO_ID_MEM, &ext, diag);
}

sqb_vio_dev *sqb_vmem_dev(sqb_vm *vm)
{
	sqb_vio_dev *d = sqb_vdev_lib(vm, SQB_VMEM_ID);

	return d && sqb_vio_device_id(d) == SQB_VIO_ID_MEM ? d : NULL;
}
