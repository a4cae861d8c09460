/* The PCI test rig (pci_rig.h): the real root and functions of
 * runtime/dev_pci.c over virtio-rng library devices, no hypervisor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci_rig.h"

static const struct sqb_dev_host pr_dev_host = {NULL, NULL, NULL};

static int pr_signal_msi(void *vm, uint64_t addr, uint32_t data)
{
	struct pr_rig *r = vm;

	pthread_mutex_lock(&r->msi_lock);
	if (r->nmsi < PR_MSILOG)
		r->msi[r->nmsi] = (struct pr_msi){addr, data};
	r->nmsi++;
	pthread_mutex_unlock(&r->msi_lock);
	return 0;
}

unsigned int pr_nmsi(struct pr_rig *r)
{
	unsigned int n;

	pthread_mutex_lock(&r->msi_lock);
	n = r->nmsi;
	pthread_mutex_unlock(&r->msi_lock);
	return n;
}

/* ---- the device library behind a function (what dev_virtio.c does) ---- */

static void fn_raise(void *opaque)
{
	(void)opaque; /* INTx: never with PCI */
}

static void fn_raise_vector(void *opaque, uint16_t vector)
{
	struct pr_fn *f = opaque;

	if (f->slot.msi)
		f->slot.msi(f->slot.msi_arg, vector);
}

static int fn_realize(void *opaque, const struct sqb_mmio_slot_info *slot)
{
	struct pr_fn *f = opaque;

	f->slot = *slot;
	return sqb_vio_pci_enable(f->dev);
}

static void fn_access(void *opaque, uint64_t off, uint8_t *data, unsigned int size, int is_write)
{
	struct pr_fn *f = opaque;

	sqb_vio_pci_access(f->dev, off, data, size, is_write);
}

static int fn_quiesce(void *opaque)
{
	return sqb_vio_quiesce(((struct pr_fn *)opaque)->dev);
}

static int fn_save(void *opaque, uint8_t *buf, size_t cap, size_t *len)
{
	struct pr_fn *f = opaque;
	uint8_t *st = NULL;
	size_t n = 0;
	int err = sqb_vio_dev_save(f->dev, &st, &n);

	if (err < 0)
		return err;
	*len = n;
	if (buf && cap >= n)
		memcpy(buf, st, n);
	else if (buf)
		err = -ENOSPC;
	free(st);
	return err;
}

static int fn_load(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		   struct sqb_diag *diag)
{
	return sqb_vio_dev_restore(((struct pr_fn *)opaque)->dev, version, buf, len, diag);
}

static unsigned int fn_num_queues(void *opaque)
{
	return sqb_vio_num_queues(((struct pr_fn *)opaque)->dev);
}

static void fn_vectors(void *opaque, uint16_t *vec, unsigned int n, unsigned int nvec, int set)
{
	sqb_vio_pci_vectors(((struct pr_fn *)opaque)->dev, vec, n, nvec, set);
}

static void fn_destroy(void *opaque)
{
	struct pr_fn *f = opaque;

	sqb_vio_dev_free(f->dev);
	f->dev = NULL;
}

int pr_init(struct pr_rig *r, unsigned int nfn)
{
	struct sqb_dev_ctx ctx = {NULL, NULL, NULL, &pr_dev_host};
	struct sqb_pci_host host = {r, pr_signal_msi};
	int err;

	memset(r, 0, sizeof(*r));
	if (nfn > PR_FNS)
		return -EINVAL;
	pthread_mutex_init(&r->msi_lock, NULL);
	vt_env_init(&r->env);
	err = sqb_pci_create(&r->pci, &r->bus, &ctx, &host);
	if (err < 0) {
		vt_env_fini(&r->env);
		return err;
	}
	for (unsigned int i = 0; i < nfn; i++) {
		struct pr_fn *f = &r->fn[i];
		struct sqb_vio_host h = r->env.host;
		struct sqb_vio_rng_opts o = SQB_VIO_RNG_OPTS_INIT;
		struct sqb_diag diag = {0};

		f->r = r;
		snprintf(f->id, sizeof(f->id), "rng%u", i);
		h.irq = (struct sqb_vio_irq){f, fn_raise, fn_raise_vector};
		if ((err = sqb_vio_rng_new(&f->dev, &h, &o)) < 0)
			goto fail;
		f->ops = (struct sqb_mmio_dev_ops){.id = f->id,
						   .virtio_device_id = SQB_VIO_ID_RNG,
						   .state_version = SQB_VIO_STATE_VERSION,
						   .realize = fn_realize,
						   .access = fn_access,
						   .quiesce = fn_quiesce,
						   .save = fn_save,
						   .load = fn_load,
						   .destroy = fn_destroy,
						   .num_queues = fn_num_queues,
						   .vectors = fn_vectors};
		err = sqb_pci_add_virtio(r->pci, &r->bus, &ctx, &f->ops, f, &f->slot, &diag);
		if (err < 0) {
			sqb_vio_dev_free(f->dev);
			f->dev = NULL;
			goto fail;
		}
		f->bus_dev = sqb_bus_by_id(&r->bus, f->id);
		f->devno = sqb_pci_fn_devno(f->bus_dev);
		r->nfn++;
	}
	return 0;
fail:
	pr_fini(r);
	return err;
}

void pr_fini(struct pr_rig *r)
{
	sqb_bus_destroy(&r->bus);
	sqb_pci_free(r->pci);
	r->pci = NULL;
	vt_env_fini(&r->env);
	pthread_mutex_destroy(&r->msi_lock);
}

/* ---- accesses ---- */

void pr_pio(struct pr_rig *r, uint16_t port, void *data, unsigned int size, int is_write)
{
	sqb_bus_access(&r->bus, SQB_BUS_PIO, port, data, size, is_write);
}

void pr_mmio(struct pr_rig *r, uint64_t gpa, void *data, unsigned int size, int is_write)
{
	sqb_bus_access(&r->bus, SQB_BUS_MMIO, gpa, data, size, is_write);
}

uint64_t pr_ecam(unsigned int devno, unsigned int fn, unsigned int reg)
{
	return SQB_ARCH_PCI_ECAM_BASE + ((uint64_t)devno << 15) + ((uint64_t)fn << 12) + reg;
}

uint64_t pr_bar(unsigned int devno)
{
	return SQB_ARCH_PCI_WIN64_BASE + (uint64_t)(devno - 1) * SQB_VIO_PCI_BAR_SIZE;
}

static uint64_t le(const uint8_t *b, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *b, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

uint64_t pr_cfg_rd(struct pr_rig *r, unsigned int devno, unsigned int reg, unsigned int size)
{
	uint8_t b[8];

	memset(b, 0xa5, sizeof(b));
	pr_mmio(r, pr_ecam(devno, 0, reg), b, size, 0);
	return le(b, size);
}

void pr_cfg_wr(struct pr_rig *r, unsigned int devno, unsigned int reg, unsigned int size,
	       uint64_t v)
{
	uint8_t b[8];

	put_le(b, v, size);
	pr_mmio(r, pr_ecam(devno, 0, reg), b, size, 1);
}

uint64_t pr_bar_rd(struct pr_rig *r, unsigned int devno, uint64_t off, unsigned int size)
{
	uint8_t b[8];

	memset(b, 0xa5, sizeof(b));
	pr_mmio(r, pr_bar(devno) + off, b, size, 0);
	return le(b, size);
}

void pr_bar_wr(struct pr_rig *r, unsigned int devno, uint64_t off, unsigned int size, uint64_t v)
{
	uint8_t b[8];

	put_le(b, v, size);
	pr_mmio(r, pr_bar(devno) + off, b, size, 1);
}

unsigned int pr_find_cap(struct pr_rig *r, unsigned int devno, uint8_t id, uint8_t cfg_type)
{
	unsigned int at = (unsigned int)pr_cfg_rd(r, devno, 0x34, 1);

	for (int guard = 0; at && guard < 48; guard++) {
		if (pr_cfg_rd(r, devno, at, 1) == id &&
		    (id != 0x09 || pr_cfg_rd(r, devno, at + 3, 1) == cfg_type))
			return at;
		at = (unsigned int)pr_cfg_rd(r, devno, at + 1, 1);
	}
	return 0;
}

void pr_enable_msix(struct pr_rig *r, unsigned int devno)
{
	unsigned int msix = pr_find_cap(r, devno, 0x11, 0);
	unsigned int nvec = (unsigned int)(pr_cfg_rd(r, devno, msix + 2, 2) & 0x7ff) + 1;

	pr_cfg_wr(r, devno, 0x04, 2, pr_cfg_rd(r, devno, 0x04, 2) | 0x2);
	for (unsigned int v = 0; v < nvec; v++) {
		uint64_t e = SQB_VIO_PCI_MSIX_TABLE + 16 * v;

		pr_bar_wr(r, devno, e, 8, 0xfee00000ull | v << 12);
		pr_bar_wr(r, devno, e + 8, 4, 0x40 + v);
		pr_bar_wr(r, devno, e + 12, 4, 0);
	}
	pr_cfg_wr(r, devno, msix + 2, 2, 0x8000 | (nvec - 1));
}

uint8_t pr_virtio_init(struct pr_rig *r, unsigned int devno, uint16_t num, uint16_t cvec,
		       uint16_t qvec)
{
	pr_bar_wr(r, devno, 0x14, 1, 0); /* reset */
	pr_bar_wr(r, devno, 0x14, 1, 1 | 2);
	pr_bar_wr(r, devno, 0x08, 4, 1); /* driver_feature_select: bits 32.. */
	pr_bar_wr(r, devno, 0x0c, 4, 1); /* VERSION_1 */
	pr_bar_wr(r, devno, 0x14, 1, 1 | 2 | 8);
	pr_bar_wr(r, devno, 0x10, 2, cvec);
	pr_bar_wr(r, devno, 0x16, 2, 0);
	pr_bar_wr(r, devno, 0x18, 2, num);
	pr_bar_wr(r, devno, 0x1a, 2, qvec);
	pr_bar_wr(r, devno, 0x20, 8, VT_DESC);
	pr_bar_wr(r, devno, 0x28, 8, VT_AVAIL);
	pr_bar_wr(r, devno, 0x30, 8, VT_USED);
	pr_bar_wr(r, devno, 0x1c, 2, 1);
	pr_bar_wr(r, devno, 0x14, 1, 1 | 2 | 8 | 4);
	return (uint8_t)pr_bar_rd(r, devno, 0x14, 1);
}
