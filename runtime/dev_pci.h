/* The PCI transport (dev_pci.c), private to runtime/: Firecracker's
 * --enable-pci platform on x86_64.
 *
 *   port 0xcf8..0xcff ─┐ (type-1 config access)   ┌─ 00:00.0 host bridge 8086:0d57
 *   ECAM 1 MiB ────────┴─> struct sqb_pci (root) ─┼─ 00:01.0 virtio-pci function
 *   (bus 0 only)            CF8 latch, lock       └─ 00:02.0 ...     (one per device)
 *
 *   a virtio-pci function: config space (256 bytes, caps: virtio common /
 *   ISR / device / notify / PCI cfg access, MSI-X), BAR0 of 0x80000 bytes in
 *   the 64-bit window (a bus range of its own), the MSI-X table and PBA;
 *   the rest of BAR0 goes to the virtio library (sqb_vio_pci_access)
 *   through the slot's struct sqb_mmio_dev_ops.
 *
 * Interrupts are MSI-X messages only (KVM_SIGNAL_MSI); there is no INTx.
 */
#ifndef SQB_RUNTIME_DEV_PCI_H
#define SQB_RUNTIME_DEV_PCI_H

#include "dev.h"

struct sqb_pci;

/* What the root needs from the VM. */
struct sqb_pci_host {
	void *vm;
	/* Deliver one MSI (address, data); -errno when the backend has none. */
	int (*signal_msi)(void *vm, uint64_t addr, uint32_t data);
};

/* The root and its two config-access windows on the bus (0xcf8 ports and
 * the ECAM at SQB_ARCH_PCI_ECAM_BASE); the host bridge is 00:00.0. */
int sqb_pci_create(struct sqb_pci **out, struct sqb_bus *bus, const struct sqb_dev_ctx *ctx,
		   const struct sqb_pci_host *host);
/* After the bus (its devices point at the root) is destroyed. */
void sqb_pci_free(struct sqb_pci *p);

/* A virtio device as a function 00:NN.0 (the first free slot, or its
 * placement): slot n's BAR0 is the n-th 0x80000 bytes of the 64-bit window;
 * slot (in/out) gets base/size of BAR0 and pci = 1; ops->realize runs with
 * it.  -SQB_ELIMIT when the bus is full (31). */
int sqb_pci_add_virtio(struct sqb_pci *p, struct sqb_bus *bus, const struct sqb_dev_ctx *ctx,
		       const struct sqb_mmio_dev_ops *ops, void *opaque,
		       struct sqb_mmio_slot_info *slot, struct sqb_diag *diag);

/* A snapshot load's placement (before the devices are added): the device
 * with this id goes to slot devno (1..31) and so to that slot's BAR0. */
struct sqb_pci_place {
	char id[32];
	unsigned int devno;
};
int sqb_pci_place(struct sqb_pci *p, const struct sqb_pci_place *place, unsigned int n);
unsigned int sqb_pci_fn_devno(const struct sqb_dev *d);

/* The slot behind a virtio-pci function (as sqb_mmio_slot_opaque). */
void *sqb_pci_fn_opaque(const struct sqb_dev *d, const struct sqb_mmio_dev_ops **ops);
unsigned int sqb_pci_fn_version(const struct sqb_dev *d);

#endif
