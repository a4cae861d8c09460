/* virtio-mem as a VM device (private to runtime/ and its API, dev_vmem.c):
 * the glue between runtime/virtio's virtio-mem and the VM.
 *
 *   host: one private anonymous mapping of total bytes, PROT_NONE
 *   guest: [SQB_ARCH_MEMHP_BASE, + total), blocks plugged by the driver
 *   slot i (slot_size bytes) with a plugged block:  mprotect RW, memslot
 *   slot i left without one: memslot removed, MADV_DONTNEED, PROT_NONE
 *   unplugged blocks: MADV_DONTNEED (they read as zero when plugged again)
 *
 * One device per VM, bus and DEVS id SQB_VMEM_ID.  The region is not guest
 * RAM to the VMM: other devices cannot DMA into it, a snapshot refuses to
 * run while any block is plugged (docs/virtio.md "virtio-mem").
 */
#ifndef SQB_RUNTIME_DEV_VMEM_H
#define SQB_RUNTIME_DEV_VMEM_H

#include "squib/runtime.h"
#include "virtio.h"

#define SQB_VMEM_ID	 "virtio-mem" /* '-' is not allowed in a drive id */
#define SQB_VMEM_VERSION 1

struct sqb_vmem_cfg {
	unsigned int version; /* SQB_VMEM_VERSION */
	uint32_t total_size_mib, block_size_mib, slot_size_mib; /* validated by the API */
};

/* From struct sqb_vm_config.add_devices (or a snapshot load's).  -ERANGE
 * (diag): the region does not fit the arch's hotplug window. */
int sqb_vmem_add(sqb_vm *vm, const struct sqb_vmem_cfg *cfg, struct sqb_diag *diag);
/* The library device, for the sqb_vio_vmem_* calls; NULL if none. */
sqb_vio_dev *sqb_vmem_dev(sqb_vm *vm);

#endif
