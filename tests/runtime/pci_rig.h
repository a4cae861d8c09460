/* Test rig for the PCI transport without a hypervisor: a bus with the PCI
 * root (runtime/dev_pci.c) and virtio-rng functions whose library device
 * (runtime/virtio/virtio_pci.c) sits on the fake guest RAM of
 * tests/virtio/vio_test_util.h; KVM_SIGNAL_MSI is a log.
 *
 *   port 0xcf8/0xcfc, ECAM ──> sqb_pci ──> 00:01.0 ... 00:0N.0 (pr_fn)
 *   BAR0 of slot n at SQB_ARCH_PCI_WIN64_BASE + 0x80000 (n - 1)
 *
 * Used by test_pci_unit.c (cmocka) and fuzz_pci.c (libFuzzer/replay). */
#ifndef SQB_TEST_PCI_RIG_H
#define SQB_TEST_PCI_RIG_H

#include <pthread.h>
#include <stdint.h>

#include "dev.h"
#include "dev_mmio.h"
#include "dev_pci.h"
#include "layout.h"
#include "vio_test_util.h"
#include "virtio.h"

#define PR_FNS	  2
#define PR_MSILOG 256

struct pr_rig;

struct pr_fn {
	struct pr_rig *r;
	sqb_vio_dev *dev;
	struct sqb_mmio_dev_ops ops;
	struct sqb_mmio_slot_info slot;
	char id[16];
	struct sqb_dev *bus_dev; /* the function on the bus */
	unsigned int devno;
};

struct pr_msi {
	uint64_t addr;
	uint32_t data;
};

struct pr_rig {
	struct vt_env env;
	struct sqb_bus bus;
	struct sqb_pci *pci;
	struct pr_fn fn[PR_FNS];
	unsigned int nfn;
	pthread_mutex_t msi_lock;
	unsigned int nmsi; /* all messages sent; the log keeps the first PR_MSILOG */
	struct pr_msi msi[PR_MSILOG];
};

/* The root and nfn virtio-rng functions (slots 1..nfn); 0 or -errno
 * (-SQB_EUNSUPPORTED without a PCI layout). */
int pr_init(struct pr_rig *r, unsigned int nfn);
void pr_fini(struct pr_rig *r);

/* Raw accesses, exactly as a vCPU's exit would make them. */
void pr_pio(struct pr_rig *r, uint16_t port, void *data, unsigned int size, int is_write);
void pr_mmio(struct pr_rig *r, uint64_t gpa, void *data, unsigned int size, int is_write);

uint64_t pr_ecam(unsigned int devno, unsigned int fn, unsigned int reg);
uint64_t pr_bar(unsigned int devno);

/* Little-endian values of 1, 2, 4 or 8 bytes. */
uint64_t pr_cfg_rd(struct pr_rig *r, unsigned int devno, unsigned int reg, unsigned int size);
void pr_cfg_wr(struct pr_rig *r, unsigned int devno, unsigned int reg, unsigned int size,
	       uint64_t v);
uint64_t pr_bar_rd(struct pr_rig *r, unsigned int devno, uint64_t off, unsigned int size);
void pr_bar_wr(struct pr_rig *r, unsigned int devno, uint64_t off, unsigned int size, uint64_t v);

/* Offset of the first capability with this id (and, for 0x09, this virtio
 * cfg_type), 0 when none. */
unsigned int pr_find_cap(struct pr_rig *r, unsigned int devno, uint8_t id, uint8_t cfg_type);

/* Memory decoding on, MSI-X enabled with every entry unmasked and entry v
 * sending address 0xfee00000 | v << 12, data 0x40 + v. */
void pr_enable_msix(struct pr_rig *r, unsigned int devno);

/* The driver's side of virtio initialisation through the common
 * configuration: VERSION_1, queue 0 of num entries at VT_DESC / VT_AVAIL /
 * VT_USED with MSI-X vector qvec and config vector cvec, DRIVER_OK.
 * Returns device_status. */
uint8_t pr_virtio_init(struct pr_rig *r, unsigned int devno, uint16_t num, uint16_t cvec,
		       uint16_t qvec);

unsigned int pr_nmsi(struct pr_rig *r);

#endif
