/* The PCI transport: a root with bus 0 reached through ports 0xcf8..0xcff
 * (type-1 configuration access) and an ECAM window, the host bridge at
 * 00:00.0 (Firecracker's 8086:0d57), and virtio-pci functions (virtio 1.x
 * 4.1) with MSI-X (PCI Local Bus 3.0, 6.8.2), added at boot or hot-plugged
 * into the first free slot.  Layout in dev_pci.h; the snapshot records are
 * docs/format.md [F-135] (a function) and [F-136] (the CF8 latch). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_mmio.h"
#include "dev_pci.h"
#include "layout.h"
#include "log.h"
#include "virtio.h"

#define PCI_SLOTS    32
#define CFG_SIZE     256
#define MSIX_MAX_VEC 8 /* 1 + the most queues a device has (the balloon's 5), rounded */
#define PCI_FN_STATE 1 /* the PCI part's own version inside [F-135] */

/* Configuration header offsets (type 0). */
enum {
	C_VENDOR = 0x00,
	C_COMMAND = 0x04,
	C_STATUS = 0x06,
	C_REVISION = 0x08,
	C_CLASS = 0x09, /* prog-if, subclass, class */
	C_HEADER = 0x0e,
	C_BAR0 = 0x10,
	C_BAR1 = 0x14,
	C_SUBSYS = 0x2c,
	C_CAP_PTR = 0x34,
	C_INT_LINE = 0x3c,
};
#define CMD_MEM		   0x2
#define STATUS_CAP_LIST	   0x10
#define BAR_MEM_64	   0x4
#define CAP_VENDOR	   0x09
#define CAP_MSIX	   0x11
#define MSIX_CTRL_ENABLE   0x8000
#define MSIX_CTRL_FMASK	   0x4000
#define MSIX_ENTRY_MASKED  0x1
#define VIRTIO_CAP_COMMON  1
#define VIRTIO_CAP_NOTIFY  2
#define VIRTIO_CAP_ISR	   3
#define VIRTIO_CAP_DEVICE  4
#define VIRTIO_CAP_PCI_CFG 5

struct pci_fn {
	struct sqb_mmio_slot_cfg cfg; /* the device library behind BAR0, as a slot's */
	struct sqb_pci *root;
	struct sqb_dev *dev;
	unsigned int devno;
	pthread_mutex_t lock; /* cfg, wmask, MSI-X table and PBA */
	uint8_t c[CFG_SIZE];
	uint8_t wmask[CFG_SIZE];
	uint64_t bar_size, bar_home; /* where squib placed BAR0: the bus range */
	uint8_t msix_cap, pcicfg_cap;
	unsigned int nvec;
	uint32_t msix[MSIX_MAX_VEC][4]; /* addr lo, addr hi, data, vector control */
	uint64_t pba;
	int warned_moved;     /* under lock */
	struct sqb_diag diag; /* why the last load failed */
};

struct sqb_pci {
	struct sqb_pci_host host;
	pthread_mutex_t lock; /* the CF8 latch */
	uint32_t cf8;
	uint8_t bridge[CFG_SIZE];
	struct pci_fn *fn[PCI_SLOTS]; /* [0]: the host bridge's place, unused */
	/* a snapshot load's placement: the function a device id had */
	struct sqb_pci_place place[PCI_SLOTS];
	unsigned int nplace;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- MSI-X (PCI 3.0 6.8.2) ---- */

static void msix_send(struct pci_fn *f, unsigned int v)
{
	uint64_t addr = (uint64_t)f->msix[v][1] << 32 | f->msix[v][0];
	int err = f->root->host.signal_msi(f->root->host.vm, addr, f->msix[v][2]);

	if (err < 0)
		sqb_debug("pci %02x: MSI-X vector %u: %s", f->devno, v, strerror(-err));
}

static int msix_masked(const struct pci_fn *f, unsigned int v)
{
	uint16_t ctrl = get16(f->c + f->msix_cap + 2);

	return (ctrl & MSIX_CTRL_FMASK) || (f->msix[v][3] & MSIX_ENTRY_MASKED);
}

/* Under f->lock: deliver what became unmasked. */
static void msix_flush(struct pci_fn *f)
{
	uint16_t ctrl = get16(f->c + f->msix_cap + 2);

	if (!(ctrl & MSIX_CTRL_ENABLE))
		return;
	for (unsigned int v = 0; v < f->nvec; v++)
		if ((f->pba >> v & 1) && !msix_masked(f, v)) {
			f->pba &= ~(1ULL << v);
			msix_send(f, v);
		}
}

/* From the device (its own lock held): one message for vector v. */
static void fn_msi(void *arg, uint16_t v)
{
	struct pci_fn *f = arg;

	pthread_mutex_lock(&f->lock);
	if (v < f->nvec && (get16(f->c + f->msix_cap + 2) & MSIX_CTRL_ENABLE)) {
		if (msix_masked(f, v))
			f->pba |= 1ULL << v;
		else
			msix_send(f, v);
	}
	pthread_mutex_unlock(&f->lock);
}

static void msix_table_access(struct pci_fn *f, uint64_t off, uint8_t *data, unsigned int size,
			      int is_write)
{
	unsigned int v = (unsigned int)(off / 16), w = (unsigned int)(off % 16) / 4;

	if (!is_write)
		memset(data, 0, size);
	if ((size != 4 && size != 8) || (off & (size - 1)) || v >= f->nvec)
		return; /* 6.8.2: DWORD or QWORD accesses, aligned */
	pthread_mutex_lock(&f->lock);
	for (unsigned int i = 0; i < size / 4; i++, w++) {
		if (is_write) {
			f->msix[v][w] = get32(data + 4 * i);
			if (w == 3)
				f->msix[v][3] &= MSIX_ENTRY_MASKED;
		} else {
			put32(data + 4 * i, f->msix[v][w]);
		}
	}
	if (is_write)
		msix_flush(f);
	pthread_mutex_unlock(&f->lock);
}

static void msix_pba_access(struct pci_fn *f, uint64_t off, uint8_t *data, unsigned int size,
			    int is_write)
{
	if (is_write)
		return; /* read-only */
	memset(data, 0, size);
	pthread_mutex_lock(&f->lock);
	for (unsigned int i = 0; i < size; i++)
		if (off + i < 8)
			data[i] = (uint8_t)(f->pba >> (8 * (off + i)));
	pthread_mutex_unlock(&f->lock);
}

/* ---- BAR0 ---- */

/* Does the function decode BAR0 where squib placed it? */
static int bar_live(struct pci_fn *f)
{
	uint64_t bar;
	int mem, warn;

	pthread_mutex_lock(&f->lock);
	mem = get16(f->c + C_COMMAND) & CMD_MEM;
	bar = ((uint64_t)get32(f->c + C_BAR1) << 32 | get32(f->c + C_BAR0)) & ~0xfULL;
	warn = mem && bar != f->bar_home && !f->warned_moved; /* two vCPUs may both get here */
	if (warn)
		f->warned_moved = 1;
	pthread_mutex_unlock(&f->lock);
	if (warn) {
		sqb_warn("pci %02x: the guest moved BAR0 from 0x%llx to 0x%llx: squib serves a BAR "
			 "only where it placed it; the device is unreachable",
			 f->devno, (unsigned long long)f->bar_home, (unsigned long long)bar);
	}
	return mem && bar == f->bar_home;
}

static void bar_access(struct pci_fn *f, uint64_t off, uint8_t *data, unsigned int size,
		       int is_write)
{
	if (off >= SQB_VIO_PCI_MSIX_PBA)
		msix_pba_access(f, off - SQB_VIO_PCI_MSIX_PBA, data, size, is_write);
	else if (off >= SQB_VIO_PCI_MSIX_TABLE)
		msix_table_access(f, off - SQB_VIO_PCI_MSIX_TABLE, data, size, is_write);
	else
		f->cfg.ops->access(f->cfg.opaque, off, data, size, is_write);
}

static void fn_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
		      int is_write)
{
	struct pci_fn *f = d->priv;

	if (!bar_live(f)) { /* memory decoding off: as an empty bus */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	bar_access(f, off, data, size, is_write);
}

/* ---- configuration space ---- */

/* The virtio PCI configuration access capability (4.1.4.9): cap.bar,
 * cap.offset and cap.length select a window of a BAR that pci_cfg_data
 * (the capability's last 4 bytes) reads and writes. */
static int pcicfg_data(struct pci_fn *f, unsigned int reg, uint8_t *data, unsigned int size,
		       int is_write)
{
	unsigned int at = f->pcicfg_cap;
	uint8_t bar;
	uint32_t off, len;

	if (!at || reg < at + 16u || reg >= at + 20u)
		return 0;
	pthread_mutex_lock(&f->lock);
	bar = f->c[at + 4];
	off = get32(f->c + at + 8);
	len = get32(f->c + at + 12);
	pthread_mutex_unlock(&f->lock);
	if (!is_write)
		memset(data, 0, size);
	/* the driver's access width is cap.length (1, 2 or 4), aligned */
	if (bar != 0 || (len != 1 && len != 2 && len != 4) || off % len ||
	    (uint64_t)off + len > f->bar_size || size < len) /* 32-bit off + len wraps */
		return 1;
	bar_access(f, off, data, len, is_write); /* without f->lock: the device raises */
	return 1;
}

static void fn_cfg_read(struct pci_fn *f, unsigned int reg, uint8_t *data, unsigned int size)
{
	if (reg >= CFG_SIZE) {
		memset(data, 0, size);
		return;
	}
	if (pcicfg_data(f, reg, data, size, 0))
		return;
	pthread_mutex_lock(&f->lock);
	memcpy(data, f->c + reg, size);
	pthread_mutex_unlock(&f->lock);
}

static void fn_cfg_write(struct pci_fn *f, unsigned int reg, const uint8_t *data, unsigned int size)
{
	uint16_t ctrl_before;

	if (reg >= CFG_SIZE || pcicfg_data(f, reg, (uint8_t *)data, size, 1))
		return;
	pthread_mutex_lock(&f->lock);
	ctrl_before = get16(f->c + f->msix_cap + 2);
	for (unsigned int i = 0; i < size; i++)
		f->c[reg + i] =
		    (uint8_t)((f->c[reg + i] & ~f->wmask[reg + i]) | (data[i] & f->wmask[reg + i]));
	if (get16(f->c + f->msix_cap + 2) != ctrl_before)
		msix_flush(f); /* enabled or unmasked with messages pending */
	pthread_mutex_unlock(&f->lock);
}

static unsigned int add_cap(struct pci_fn *f, unsigned int *at, unsigned int *prev, uint8_t id,
			    unsigned int len)
{
	unsigned int here = *at;

	f->c[here] = id;
	f->c[here + 1] = 0;
	f->c[*prev] = (uint8_t)here;
	*prev = here + 1;
	*at = (here + len + 3) & ~3u;
	return here;
}

static void add_virtio_cap(struct pci_fn *f, unsigned int *at, unsigned int *prev, uint8_t type,
			   uint32_t off, uint32_t len)
{
	unsigned int caplen = type == VIRTIO_CAP_NOTIFY || type == VIRTIO_CAP_PCI_CFG ? 20 : 16;
	unsigned int c = add_cap(f, at, prev, CAP_VENDOR, caplen);

	f->c[c + 2] = (uint8_t)caplen;
	f->c[c + 3] = type;
	f->c[c + 4] = 0; /* BAR0 */
	put32(f->c + c + 8, off);
	put32(f->c + c + 12, len);
	if (type == VIRTIO_CAP_NOTIFY)
		put32(f->c + c + 16, SQB_VIO_PCI_NOTIFY_MULT);
	if (type == VIRTIO_CAP_PCI_CFG) {
		f->pcicfg_cap = (uint8_t)c;
		memset(f->c + c + 4, 0, 12); /* bar, offset, length: the driver's */
		f->wmask[c + 4] = 0xff;
		memset(f->wmask + c + 8, 0xff, 8);
	}
}

/* Firecracker's classes: net 02/00, block 01/80, the rest ff/ff. */
static void virtio_header(struct pci_fn *f, uint32_t virtio_id)
{
	uint16_t did = (uint16_t)(SQB_VIO_PCI_DEVICE_BASE + virtio_id);
	uint8_t cls = 0xff, sub = 0xff;
	unsigned int at = 0x40, prev = C_CAP_PTR, c;
	uint64_t mask = ~(f->bar_size - 1);

	if (virtio_id == SQB_VIO_ID_NET)
		cls = 0x02, sub = 0x00;
	else if (virtio_id == SQB_VIO_ID_BLK)
		cls = 0x01, sub = 0x80;
	put16(f->c + C_VENDOR, SQB_VIO_PCI_VENDOR);
	put16(f->c + C_VENDOR + 2, did);
	put16(f->c + C_STATUS, STATUS_CAP_LIST);
	f->c[C_REVISION] = 1; /* modern virtio-pci */
	f->c[C_CLASS + 1] = sub;
	f->c[C_CLASS + 2] = cls;
	put16(f->c + C_SUBSYS, SQB_VIO_PCI_VENDOR);
	put16(f->c + C_SUBSYS + 2, did);
	put32(f->c + C_BAR0, (uint32_t)f->bar_home | BAR_MEM_64);
	put32(f->c + C_BAR1, (uint32_t)(f->bar_home >> 32));
	memset(f->wmask + C_COMMAND, 0xff, 2);
	f->wmask[0x0c] = 0xff; /* cache line size */
	put32(f->wmask + C_BAR0, (uint32_t)mask & ~0xfu);
	put32(f->wmask + C_BAR1, (uint32_t)(mask >> 32));
	f->wmask[C_INT_LINE] = 0xff;

	add_virtio_cap(f, &at, &prev, VIRTIO_CAP_COMMON, SQB_VIO_PCI_COMMON_OFF,
		       SQB_VIO_PCI_COMMON_LEN);
	add_virtio_cap(f, &at, &prev, VIRTIO_CAP_ISR, SQB_VIO_PCI_ISR_OFF, 1);
	add_virtio_cap(f, &at, &prev, VIRTIO_CAP_DEVICE, SQB_VIO_PCI_DEVCFG_OFF,
		       SQB_VIO_PCI_DEVCFG_LEN);
	add_virtio_cap(f, &at, &prev, VIRTIO_CAP_NOTIFY, SQB_VIO_PCI_NOTIFY_OFF,
		       SQB_VIO_PCI_NOTIFY_LEN);
	add_virtio_cap(f, &at, &prev, VIRTIO_CAP_PCI_CFG, 0, 0);
	c = add_cap(f, &at, &prev, CAP_MSIX, 12);
	f->msix_cap = (uint8_t)c;
	put16(f->c + c + 2, (uint16_t)(f->nvec - 1)); /* table size - 1; disabled */
	put32(f->c + c + 4, SQB_VIO_PCI_MSIX_TABLE);  /* BIR 0 */
	put32(f->c + c + 8, SQB_VIO_PCI_MSIX_PBA);
	f->wmask[c + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK) >> 8;
}

static void msix_reset(struct pci_fn *f)
{
	memset(f->msix, 0, sizeof(f->msix));
	for (unsigned int v = 0; v < MSIX_MAX_VEC; v++)
		f->msix[v][3] = MSIX_ENTRY_MASKED;
	f->pba = 0;
}

/* ---- the root: CF8/CFC and ECAM ---- */

static void root_cfg(struct sqb_pci *p, unsigned int devno, unsigned int fn, unsigned int reg,
		     uint8_t *data, unsigned int size, int is_write)
{
	struct pci_fn *f = devno < PCI_SLOTS ? p->fn[devno] : NULL;

	/* configuration accesses are 1, 2 or 4 bytes, naturally aligned; a
	 * page-crossing access KVM splits (3, 5, 6 or 7 bytes) is none */
	if (fn || (devno && !f) || (size != 1 && size != 2 && size != 4) || (reg & (size - 1))) {
		if (!is_write)
			memset(data, 0xff, size); /* nobody there */
		return;
	}
	if (!devno) { /* the host bridge: read-only */
		if (!is_write) {
			if (reg < CFG_SIZE)
				memcpy(data, p->bridge + reg, size);
			else
				memset(data, 0, size);
		}
		return;
	}
	if (is_write)
		fn_cfg_write(f, reg, data, size);
	else
		fn_cfg_read(f, reg, data, size);
}

static void cfgio_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			 int is_write)
{
	struct sqb_pci *p = d->priv;
	uint32_t a;

	if (off < 4) { /* CONFIG_ADDRESS: a DWORD latch */
		if (size != 4 || off) {
			if (!is_write)
				memset(data, 0xff, size);
			return;
		}
		pthread_mutex_lock(&p->lock);
		if (is_write)
			p->cf8 = get32(data) & 0x80fffffcu;
		else
			put32(data, p->cf8);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_lock(&p->lock);
	a = p->cf8;
	pthread_mutex_unlock(&p->lock);
	/* CONFIG_DATA: bus 0 only, the register plus the byte lane */
	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) || off - 4 + size > 4) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	root_cfg(p, (a >> 11) & 0x1f, (a >> 8) & 7, (a & 0xfc) + (unsigned int)(off - 4), data,
		 size, is_write);
}

static void ecam_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			int is_write)
{
	if (size > 4) { /* config accesses are at most a DWORD */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	root_cfg(d->priv, (unsigned int)(off >> 15) & 0x1f, (unsigned int)(off >> 12) & 7,
		 (unsigned int)(off & 0xfff), data, size, is_write);
}

/* [F-136]: the CONFIG_ADDRESS latch, so that a snapshot taken between a
 * guest's write to 0xcf8 and its access to 0xcfc completes that access
 * after a load (4 bytes, then 4 reserved). */
static int cfgio_state(struct sqb_dev *d, struct sqb_devst *st)
{
	struct sqb_pci *p = d->priv;
	uint32_t a;

	pthread_mutex_lock(&p->lock);
	a = p->cf8;
	pthread_mutex_unlock(&p->lock);
	sqb_devst_u32(st, &a, "config_address");
	sqb_devst_reserved(st, 4);
	if (st->load && !st->err && (a & ~0x80fffffcu)) {
		st->err = -SQB_ECORRUPT;
		st->field = "config_address";
	}
	/* a longer record is refused by the caller after this returns: take
	 * nothing from it ([F-56]: a refused load changes nothing) */
	if (st->load && !st->err && st->pos == st->cap) {
		pthread_mutex_lock(&p->lock);
		p->cf8 = a;
		pthread_mutex_unlock(&p->lock);
	}
	return 0;
}

static int root_realize(struct sqb_dev *d, const void *cfg)
{
	d->priv = (void *)cfg;
	return cfg ? 0 : -EINVAL;
}

static int ecam_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	*o = (struct sqb_dev_describe){.kind = SQB_DESC_PCI_ROOT,
				       .space = SQB_BUS_MMIO,
				       .base = d->base,
				       .len = (uint32_t)d->len,
				       .win32_base = SQB_ARCH_PCI_WIN32_BASE,
				       .win32_len = SQB_ARCH_PCI_WIN32_SIZE,
				       .win64_base = SQB_ARCH_PCI_WIN64_BASE,
				       .win64_len = SQB_ARCH_PCI_WIN64_SIZE};
	memcpy(o->name, "PC00", 5);
	return 0;
}

const struct sqb_dev_ops sqb_pci_cfgio_ops = {
    .realize = root_realize, .access = cfgio_access, .state = cfgio_state};
const struct sqb_dev_ops sqb_pci_ecam_ops = {
    .realize = root_realize, .access = ecam_access, .describe = ecam_describe};

int sqb_pci_create(struct sqb_pci **out, struct sqb_bus *bus, const struct sqb_dev_ctx *ctx,
		   const struct sqb_pci_host *host)
{
	struct sqb_dev_ctx c = *ctx;
	struct sqb_pci *p;
	struct sqb_dev *d;
	int err;

	*out = NULL;
	if (!SQB_ARCH_HAS_PCI || !host->signal_msi)
		return -SQB_EUNSUPPORTED;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->host = *host;
	/* Firecracker's PciRoot: Intel's virtual PCIe host, class 06/00 */
	put16(p->bridge + C_VENDOR, 0x8086);
	put16(p->bridge + C_VENDOR + 2, 0x0d57);
	p->bridge[C_CLASS + 2] = 0x06;
	c.irq = NULL;
	err = sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_PCI_CFGIO], "pci-cfg-io",
			     SQB_X86_PCI_CFG_PORT, &c, p);
	if (!err && (err = sqb_bus_add(bus, d)) < 0)
		sqb_dev_free(d);
	if (!err) {
		err = sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_PCI_ECAM], "pci-ecam",
				     SQB_ARCH_PCI_ECAM_BASE, &c, p);
		if (!err && (err = sqb_bus_add(bus, d)) < 0)
			sqb_dev_free(d);
	}
	if (err < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p); /* a cfg-io device already on the bus is never reached again */
		return err;
	}
	*out = p;
	return 0;
}

void sqb_pci_free(struct sqb_pci *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- virtio-pci functions (bus devices at their BAR0) ---- */

static int fn_realize(struct sqb_dev *d, const void *cfg)
{
	struct pci_fn *f = (struct pci_fn *)cfg; /* made by sqb_pci_add_virtio */
	int err;

	d->priv = f;
	f->dev = d;
	d->devs_type = 0x200u | (f->cfg.ops->virtio_device_id & 0xffu);
	if (f->cfg.ops->realize && (err = f->cfg.ops->realize(f->cfg.opaque, &f->cfg.slot)) < 0) {
		d->priv = NULL;
		return err;
	}
	return 0;
}

static void fn_unrealize(struct sqb_dev *d)
{
	struct pci_fn *f = d->priv;

	if (!f)
		return;
	if (f->root->fn[f->devno] == f)
		f->root->fn[f->devno] = NULL;
	if (f->cfg.ops->destroy)
		f->cfg.ops->destroy(f->cfg.opaque);
	pthread_mutex_destroy(&f->lock);
	free(f);
	d->priv = NULL;
}

static int fn_quiesce(struct sqb_dev *d)
{
	struct pci_fn *f = d->priv;

	return f->cfg.ops->quiesce ? f->cfg.ops->quiesce(f->cfg.opaque) : 0;
}

static void fn_resume(struct sqb_dev *d)
{
	struct pci_fn *f = d->priv;

	if (f->cfg.ops->resume)
		f->cfg.ops->resume(f->cfg.opaque);
}

static void fn_reset(struct sqb_dev *d)
{
	struct pci_fn *f = d->priv;

	pthread_mutex_lock(&f->lock);
	put16(f->c + C_COMMAND, 0);
	put16(f->c + f->msix_cap + 2, (uint16_t)(f->nvec - 1));
	msix_reset(f);
	pthread_mutex_unlock(&f->lock);
	if (f->cfg.ops->reset)
		f->cfg.ops->reset(f->cfg.opaque);
}

/* [F-135]: the PCI part (its version, the function's place, the whole
 * configuration space, the MSI-X table and PBA, the driver's vectors), then
 * the device library's own state as a virtio-mmio slot frames it. */
static int fn_state(struct sqb_dev *d, struct sqb_devst *st)
{
	struct pci_fn *f = d->priv;
	uint32_t ver = PCI_FN_STATE, nvec = f->nvec;
	uint16_t vec[MSIX_MAX_VEC], old_vec[MSIX_MAX_VEC];
	uint8_t c[CFG_SIZE], old_c[CFG_SIZE];
	uint32_t msix[MSIX_MAX_VEC][4], old_msix[MSIX_MAX_VEC][4];
	uint64_t pba, old_pba;
	size_t len = 0;
	int err;

	if (!f->cfg.ops->save || !f->cfg.ops->load)
		return -ENOSYS;
	pthread_mutex_lock(&f->lock);
	memcpy(c, f->c, sizeof(c));
	memcpy(msix, f->msix, sizeof(msix));
	pba = f->pba;
	pthread_mutex_unlock(&f->lock);
	memset(vec, 0xff, sizeof(vec));
	if (!st->load && f->cfg.ops->vectors)
		f->cfg.ops->vectors(f->cfg.opaque, vec, nvec, nvec, 0);
	sqb_devst_u32(st, &ver, "pci.version");
	if (st->load && !st->err && ver != PCI_FN_STATE) {
		st->err = -SQB_EVERSION;
		st->field = "pci.version";
		return 0;
	}
	sqb_devst_cmp_u32(st, f->devno, "pci.device_number");
	sqb_devst_cmp_u64(st, f->bar_home, "pci.bar0_home");
	sqb_devst_cmp_u32(st, nvec, "pci.msix_vectors");
	sqb_devst_bytes(st, c, sizeof(c), "pci.config_space");
	for (unsigned int v = 0; v < nvec; v++)
		for (unsigned int w = 0; w < 4; w++)
			sqb_devst_u32(st, &msix[v][w], "pci.msix_table");
	sqb_devst_u64(st, &pba, "pci.msix_pba");
	for (unsigned int v = 0; v < nvec; v++) {
		uint32_t x = vec[v];

		sqb_devst_u32(st, &x, "pci.msix_vectors_used");
		/* at or above nvec: none ([F-135]), upper bits included */
		vec[v] = x < nvec ? (uint16_t)x : SQB_VIO_MSI_NO_VECTOR;
	}
	if (st->err)
		return 0;
	if (st->load) {
		/* what identifies the function (ids, class, capability layout)
		 * must be the one this squib built */
		if (memcmp(c, f->c, 4) || memcmp(c + C_REVISION, f->c + C_REVISION, 4) ||
		    c[C_CAP_PTR] != f->c[C_CAP_PTR] || c[f->msix_cap] != CAP_MSIX ||
		    (pba >> nvec)) {
			st->err = -SQB_EMISMATCH;
			st->field = "pci.config_space";
			return 0;
		}
		/* the function first: an interrupt the device raises while it
		 * loads (a pending ISR, vsock's TRANSPORT_RESET) must find the
		 * driver's vectors and table; undone if the device refuses */
		pthread_mutex_lock(&f->lock);
		memcpy(old_c, f->c, sizeof(old_c));
		memcpy(old_msix, f->msix, sizeof(old_msix));
		old_pba = f->pba;
		/* read-only bits stay squib's: only writable ones come back */
		for (unsigned int i = 0; i < CFG_SIZE; i++)
			f->c[i] = (uint8_t)((f->c[i] & ~f->wmask[i]) | (c[i] & f->wmask[i]));
		memcpy(f->msix, msix, sizeof(msix));
		for (unsigned int v = 0; v < nvec; v++)
			f->msix[v][3] &= MSIX_ENTRY_MASKED;
		f->pba = pba;
		pthread_mutex_unlock(&f->lock);
		if (f->cfg.ops->vectors) {
			f->cfg.ops->vectors(f->cfg.opaque, old_vec, nvec, nvec, 0);
			f->cfg.ops->vectors(f->cfg.opaque, vec, nvec, nvec, 1);
		}
		memset(&f->diag, 0, sizeof(f->diag));
		err = f->cfg.ops->load(f->cfg.opaque, st->version, st->buf + st->pos,
				       st->cap - st->pos, &f->diag);
		st->pos = st->cap;
		if (err < 0) {
			st->err = err;
			st->field = f->diag.reason[0] ? f->diag.reason : "device state";
			pthread_mutex_lock(&f->lock);
			memcpy(f->c, old_c, sizeof(old_c));
			memcpy(f->msix, old_msix, sizeof(old_msix));
			f->pba = old_pba;
			pthread_mutex_unlock(&f->lock);
			if (f->cfg.ops->vectors)
				f->cfg.ops->vectors(f->cfg.opaque, old_vec, nvec, nvec, 1);
		}
		return 0;
	}
	err = f->cfg.ops->save(f->cfg.opaque, st->buf ? st->buf + st->pos : NULL,
			       st->buf ? st->cap - st->pos : 0, &len);
	if (err < 0)
		return err;
	if (st->buf && len > st->cap - st->pos)
		return -SQB_ECORRUPT;
	st->pos += len;
	return 0;
}

const struct sqb_dev_ops sqb_virtio_pci_ops = {
    .realize = fn_realize,
    .unrealize = fn_unrealize,
    .access = fn_access,
    .quiesce = fn_quiesce,
    .resume = fn_resume,
    .state = fn_state,
    .reset = fn_reset,
};

int sqb_pci_add_virtio(struct sqb_pci *p, struct sqb_bus *bus, const struct sqb_dev_ctx *ctx,
		       const struct sqb_mmio_dev_ops *ops, void *opaque,
		       struct sqb_mmio_slot_info *slot, struct sqb_diag *diag)
{
	struct pci_fn *f;
	struct sqb_dev *d;
	unsigned int nq, devno = 0;
	int err;

	/* where a snapshot had it, else the first free slot (a hot-unplugged
	 * device's slot is free again) */
	for (unsigned int i = 0; i < p->nplace; i++)
		if (!strcmp(p->place[i].id, ops->id))
			devno = p->place[i].devno;
	for (unsigned int n = 1; !devno && n < PCI_SLOTS; n++) {
		int wanted = 0;

		for (unsigned int i = 0; i < p->nplace; i++)
			wanted |= p->place[i].devno == n;
		if (!p->fn[n] && !wanted)
			devno = n;
	}
	if (!devno || devno >= PCI_SLOTS || p->fn[devno]) {
		if (diag && devno)
			snprintf(diag->reason, sizeof(diag->reason),
				 "PCI slot %u of device '%s' is taken", devno, ops->id);
		else if (diag) /* Firecracker's PciRootError text */
			snprintf(diag->reason, sizeof(diag->reason),
				 "Could not find an available device slot on the PCI bus. "
				 "(device '%s'; %d at most)",
				 ops->id, PCI_SLOTS - 1);
		return -SQB_ELIMIT;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->root = p;
	f->devno = devno;
	f->bar_size = SQB_VIO_PCI_BAR_SIZE;
	/* slot n's BAR0 is always the n-th: a function's place names its BAR */
	f->bar_home = SQB_ARCH_PCI_WIN64_BASE + (uint64_t)(devno - 1) * f->bar_size;
	slot->base = f->bar_home;
	slot->size = (uint32_t)f->bar_size;
	slot->gsi = 0;
	slot->irq = NULL;
	slot->pci = 1;
	slot->msi = fn_msi;
	slot->msi_arg = f;
	f->cfg = (struct sqb_mmio_slot_cfg){ops, opaque, *slot, SQB_ARCH_PCI_WIN64_BASE};
	f->nvec = MSIX_MAX_VEC; /* until the device says how many queues it has */
	msix_reset(f);
	err = sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_VIRTIO_PCI], ops->id, f->bar_home, ctx,
			     f);
	if (err < 0) {
		pthread_mutex_destroy(&f->lock);
		free(f);
		return err;
	}
	nq = ops->num_queues ? ops->num_queues(opaque) : MSIX_MAX_VEC - 1;
	f->nvec = nq + 1 <= MSIX_MAX_VEC ? nq + 1 : MSIX_MAX_VEC;
	virtio_header(f, ops->virtio_device_id);
	p->fn[f->devno] = f;
	if ((err = sqb_bus_add(bus, d)) < 0) {
		sqb_dev_free(d);
		return err;
	}
	*slot = f->cfg.slot;
	return 0;
}

int sqb_pci_place(struct sqb_pci *p, const struct sqb_pci_place *place, unsigned int n)
{
	if (n > PCI_SLOTS)
		return -SQB_ELIMIT;
	for (unsigned int i = 0; i < n; i++)
		if (!place[i].devno || place[i].devno >= PCI_SLOTS)
			return -EINVAL;
	memcpy(p->place, place, n * sizeof(*place));
	p->nplace = n;
	return 0;
}

unsigned int sqb_pci_fn_devno(const struct sqb_dev *d)
{
	const struct pci_fn *f = d->priv;

	return f ? f->devno : 0;
}

void *sqb_pci_fn_opaque(const struct sqb_dev *d, const struct sqb_mmio_dev_ops **ops)
{
	const struct pci_fn *f = d->priv;

	if (ops)
		*ops = f ? f->cfg.ops : NULL;
	return f ? f->cfg.opaque : NULL;
}

unsigned int sqb_pci_fn_version(const struct sqb_dev *d)
{
	const struct pci_fn *f = d->priv;

	return f->cfg.ops->state_version;
}
