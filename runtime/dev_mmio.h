/* virtio-mmio slot class, private to runtime/ (dev_mmio.c).
 *
 *   sqb_vm_add_mmio_dev() ─> slot n: window base + 0x1000 n, GSI from the
 *                            allocator ─> struct sqb_mmio_dev_ops callbacks
 */
#ifndef SQB_RUNTIME_DEV_MMIO_H
#define SQB_RUNTIME_DEV_MMIO_H

#include "dev.h"

struct sqb_mmio_slot_cfg {
	const struct sqb_mmio_dev_ops *ops;
	void *opaque;
	struct sqb_mmio_slot_info slot;
	uint64_t window_base; /* base of slot 0 (for the ACPI name and _UID) */
};

/* A virtio device's slot: a virtio-mmio slot or a virtio-pci function
 * (dev_pci.c); the two functions below take either. */
int sqb_dev_is_virtio(const struct sqb_dev *d);
/* The state version the library writes (DEVS version field). */
unsigned int sqb_mmio_slot_version(const struct sqb_dev *d);
/* The library's opaque and ops behind a slot (dev_virtio.c finds its own
 * devices by id through it). */
void *sqb_mmio_slot_opaque(const struct sqb_dev *d, const struct sqb_mmio_dev_ops **ops);

#endif
