/* Devices as objects on a per-VM bus (private to runtime/).
 *
 *   sqb_dev_classes[] (const, readable order: the only place a device kind
 *   │                  is described: name, DEVS type + versions, window, ops)
 *   ▼
 *   struct sqb_dev ── cls, id, space/base/len, irq ── ctx: guest memory,
 *   │  (an instance)                                  event loop, its irq,
 *   │                                                 platform services
 *   ▼
 *   struct sqb_bus ── devs[] in creation order (DEVS order, quiesce, reset)
 *                 └─ ranges[] sorted by (space, base): a vCPU exit finds its
 *                    device by binary search
 *
 * A device never sees the VM: it gets a struct sqb_dev_ctx.  Its state is
 * saved AND restored by one symmetric function (ops.state) over a
 * struct sqb_devst stream that encodes field by field, little-endian, and
 * compares invariants on restore (bhyve's SNAPSHOT_VAR_CMP_OR_LEAVE).
 */
#ifndef SQB_RUNTIME_DEV_H
#define SQB_RUNTIME_DEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

struct sqb_gmem;   /* vm_mem.c: guest-memory accessor */
struct sqb_evloop; /* evloop.h */
struct sqb_dev;

/* Address spaces a device can sit in. */
enum sqb_bus_space { SQB_BUS_PIO = 0, SQB_BUS_MMIO = 1 };

/* One interrupt line of a device.  pulse() gives one edge: through an irqfd
 * where the backend has one (fd >= 0), else the backend's line op. */
struct sqb_irq {
	unsigned int gsi;
	int fd; /* irqfd eventfd, or -1 */
	void (*pulse)(struct sqb_irq *irq);
	void *owner; /* the VM (or a test's fake) */
};

static inline void sqb_irq_pulse(struct sqb_irq *irq)
{
	if (irq)
		irq->pulse(irq);
}

/* Platform services a device may ask for (never the VM itself). */
struct sqb_dev_host {
	void *opaque;
	void (*request_reset)(void *opaque);
	void (*serial_out)(void *opaque, const uint8_t *buf, size_t len);
};

struct sqb_dev_ctx {
	struct sqb_gmem *mem;	 /* sqb_gmem_map() & co; NULL in unit tests */
	struct sqb_evloop *loop; /* register eventfds / timers; may be NULL */
	struct sqb_irq *irq;	 /* the device's own line, or NULL */
	const struct sqb_dev_host *host;
};

/* ---- symmetric state stream (format.md [F-56], [F-59]) ---- */
struct sqb_devst {
	int load;	      /* 0: save (write buf), 1: load (read buf) */
	uint8_t *buf;	      /* save: NULL only measures */
	size_t cap, pos;      /* bytes in buf, cursor */
	unsigned int version; /* load: the record's state version */
	int err;	      /* first error, sticky */
	const char *field;    /* the field that failed */
};

void sqb_devst_u8(struct sqb_devst *s, uint8_t *v, const char *field);
void sqb_devst_u32(struct sqb_devst *s, uint32_t *v, const char *field);
void sqb_devst_u64(struct sqb_devst *s, uint64_t *v, const char *field);
/* A count or index: load refuses a value above max. */
void sqb_devst_u8_max(struct sqb_devst *s, uint8_t *v, uint8_t max, const char *field);
void sqb_devst_bytes(struct sqb_devst *s, void *p, size_t n, const char *field);
/* Reserved bytes: written as zero, refused unless zero on load. */
void sqb_devst_reserved(struct sqb_devst *s, size_t n);
/* An invariant of the running device (window size, capacity, ...): written
 * on save, compared on load (-SQB_EMISMATCH when it differs). */
void sqb_devst_cmp_u32(struct sqb_devst *s, uint32_t v, const char *field);
void sqb_devst_cmp_u64(struct sqb_devst *s, uint64_t v, const char *field);

/* Platform description of one device (the DSDT on x86, a device-tree node
 * on arm64): what the describe op fills. */
struct sqb_dev_describe {
	const char *hid; /* "PNP0501", "LNRO0005" */
	int hid_eisa;	 /* an EISA id (else a string _HID) */
	char name[5];	 /* 4-character ACPI name */
	uint32_t uid;
	enum sqb_bus_space space;
	uint64_t base; /* first range */
	uint32_t len;
	uint64_t base2; /* a second port range (i8042 0x64), len2 0 if none */
	uint32_t len2;
	enum { SQB_DESC_IRQ_NONE = 0, SQB_DESC_IRQ_LEGACY, SQB_DESC_IRQ_GSI } irq_kind;
	uint32_t gsi;
	int dma_coherent; /* the device DMAs into guest RAM coherently (virtio) */
	/* SQB_DESC_VMGENID (dev_vmgenid.c): a Virtual Machine Generation ID
	 * counter; base is the 16-byte ID's guest-physical address (reserved
	 * memory, not a window), genid its current bytes for the boot loader to
	 * store there, gsi the line whose edge means "the ID changed". */
	enum { SQB_DESC_DEVICE = 0, SQB_DESC_VMGENID, SQB_DESC_VMCLOCK, SQB_DESC_PCI_ROOT } kind;
	const uint8_t *genid;
	/* SQB_DESC_VMCLOCK (dev_vmclock.c): base is the VMClock page (len
	 * bytes of reserved memory), page its first page_len bytes for the boot
	 * loader to store there (the rest zero), gsi its notification line. */
	const uint8_t *page;
	uint32_t page_len;
	/* SQB_DESC_PCI_ROOT (dev_pci.c): base/len the ECAM window (bus 0),
	 * and the two windows its BARs live in. */
	uint64_t win32_base, win32_len, win64_base, win64_len;
};

struct sqb_dev_ops {
	/* Build the device's private state (cfg: class-specific, may be NULL). */
	int (*realize)(struct sqb_dev *d, const void *cfg);
	void (*unrealize)(struct sqb_dev *d);
	/* Register access from a vCPU thread; data is size bytes, reads fill it. */
	void (*access)(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
		       int is_write);
	/* Snapshot: complete all in-flight work (its used entries pushed) and
	 * accept no new work until resume; returns 0 or -errno. */
	int (*quiesce)(struct sqb_dev *d);
	void (*resume)(struct sqb_dev *d);
	/* ONE function that saves and restores; see struct sqb_devst. */
	int (*state)(struct sqb_dev *d, struct sqb_devst *s);
	int (*post_load)(struct sqb_dev *d);
	void (*reset)(struct sqb_dev *d);
	int (*describe)(struct sqb_dev *d, struct sqb_dev_describe *out);
};

struct sqb_dev_class {
	const char *name;
	uint32_t devs_type; /* DEVS type (docs/snapshots.md), 0: stateless */
	uint32_t version, min_version;
	enum sqb_bus_space space;
	uint64_t window; /* bytes (or ports) of the device's range */
	const struct sqb_dev_ops *ops;
	/* SQB_DEVCLS_SNAP_OPTIONAL: a snapshot written before the class existed
	 * lacks its DEVS record; such a load leaves the device as created. */
	unsigned int flags;
};
#define SQB_DEVCLS_SNAP_OPTIONAL 1u

struct sqb_dev {
	const struct sqb_dev_class *cls;
	char id[32];
	enum sqb_bus_space space;
	uint64_t base, len;
	struct sqb_irq *irq; /* == ctx.irq */
	struct sqb_dev_ctx ctx;
	uint32_t devs_type; /* cls->devs_type unless the class derives it */
	void *priv;	    /* the class's own state: realize allocates, unrealize frees */
};

/* The class table, in readable order. */
enum sqb_dev_class_id {
	SQB_DEVCLS_UART = 0,
	SQB_DEVCLS_I8042,
	SQB_DEVCLS_POSTCODE,
	SQB_DEVCLS_MMIO_SLOT,  /* dev_mmio.c: a virtio-mmio window driven by callbacks */
	SQB_DEVCLS_PL011,      /* dev_pl011.c: the arm64 board's UART */
	SQB_DEVCLS_VMGENID,    /* dev_vmgenid.c: the VM Generation ID (both boards) */
	SQB_DEVCLS_BOOT_TIMER, /* dev_boot_timer.c: Firecracker's --boot-timer */
	SQB_DEVCLS_VMCLOCK,    /* dev_vmclock.c: the VMClock page (both boards) */
	SQB_DEVCLS_PCI_CFGIO,  /* dev_pci.c: PCI config ports 0xcf8..0xcff */
	SQB_DEVCLS_PCI_ECAM,   /* dev_pci.c: PCI config ECAM window (the root) */
	SQB_DEVCLS_VIRTIO_PCI, /* dev_pci.c: a virtio-pci function's BAR0 */
	SQB_DEVCLS_COUNT_
};
extern const struct sqb_dev_class sqb_dev_classes[SQB_DEVCLS_COUNT_];

/* The boot timer's realize cfg: fire(arg) runs on the vCPU thread that
 * wrote the magic byte. */
struct sqb_boot_timer_cfg {
	void (*fire)(void *arg);
	void *arg;
};
#define SQB_BOOT_TIMER_WINDOW 0x1000

int sqb_dev_create(struct sqb_dev **out, const struct sqb_dev_class *cls, const char *id,
		   uint64_t base, const struct sqb_dev_ctx *ctx, const void *cfg);
void sqb_dev_free(struct sqb_dev *d);
/* Encode the device's state (*out malloc'd, the caller frees). */
int sqb_dev_save(struct sqb_dev *d, uint8_t **out, size_t *len);
/* Decode and apply; nothing changes unless every field is valid.  field
 * (may be NULL) names the failing field. */
int sqb_dev_load(struct sqb_dev *d, unsigned int version, const uint8_t *buf, size_t len,
		 const char **field);

/* ---- the bus ---- */
#define SQB_BUS_MAX_DEVS 64

struct sqb_bus_range {
	enum sqb_bus_space space;
	uint64_t base, len;
	struct sqb_dev *dev;
};

struct sqb_bus {
	struct sqb_dev *devs[SQB_BUS_MAX_DEVS]; /* creation order; the bus owns them */
	unsigned int ndevs;
	struct sqb_bus_range ranges[SQB_BUS_MAX_DEVS];
	unsigned int nranges; /* sorted by (space, base), never overlapping */
};

/* Add (and own) a device; -EEXIST on an overlapping window or a duplicate
 * id, -SQB_ELIMIT when full.  Not while vCPUs run. */
int sqb_bus_add(struct sqb_bus *b, struct sqb_dev *d);
/* Take d off the bus (its range and its place in devs[]); the caller frees
 * it.  Not while vCPUs run.  -ENOENT when it is not there. */
int sqb_bus_remove(struct sqb_bus *b, struct sqb_dev *d);
struct sqb_dev *sqb_bus_find(const struct sqb_bus *b, enum sqb_bus_space space, uint64_t addr);
struct sqb_dev *sqb_bus_by_id(const struct sqb_bus *b, const char *id);
/* Dispatch one access; unclaimed reads return all-ones, unclaimed writes
 * are dropped.  Returns 1 if a device claimed it, else 0. */
int sqb_bus_access(const struct sqb_bus *b, enum sqb_bus_space space, uint64_t addr, uint8_t *data,
		   unsigned int size, int is_write);
/* Every device's quiesce (stops at the first failure and resumes those
 * already quiesced), resume, reset. */
int sqb_bus_quiesce(struct sqb_bus *b);
void sqb_bus_resume(struct sqb_bus *b);
void sqb_bus_reset(struct sqb_bus *b);
void sqb_bus_destroy(struct sqb_bus *b);

/* ---- the legacy devices' own entry points ---- */
#define SQB_UART_FIFO 64
#define SQB_I8042_BUF 16
size_t sqb_uart_input(struct sqb_dev *uart, const uint8_t *buf, size_t len);
#define SQB_PL011_WINDOW 0x1000
size_t sqb_pl011_input(struct sqb_dev *pl011, const uint8_t *buf, size_t len);
int sqb_i8042_ctrl_alt_del(struct sqb_dev *i8042);
/* VM Generation ID (dev_vmgenid.c, format.md [F-125]).  After a snapshot
 * load, before any vCPU runs and once dirty tracking is armed: a new ID
 * from getrandom() into guest memory through the accessor, then the
 * notification edge.  0 without doing anything when the snapshot held no
 * record of the device (its guest never saw one). */
#define SQB_VMGENID_LEN 16
int sqb_vmgenid_regenerate(struct sqb_dev *vmgenid);
/* The same for every VMGenID device on the bus (one on each board). */
int sqb_bus_vmgenid_regenerate(struct sqb_bus *b);
/* The current ID (tests, logs). */
void sqb_vmgenid_get(struct sqb_dev *vmgenid, uint8_t id[SQB_VMGENID_LEN]);
/* VMClock (dev_vmclock.c, format.md [F-131]): a page of reserved memory
 * with struct vmclock_abi (Linux's vmclock-abi.h, 112 bytes used).  After
 * a snapshot load, at the same point as the VMGenID's: disruption_marker
 * and vm_generation_counter + 1 under the ABI's seq_count protocol, written
 * through the accessor, then the notification edge.  0 without doing
 * anything when the snapshot held no record of the device. */
#define SQB_VMCLOCK_SIZE    0x1000
#define SQB_VMCLOCK_ABI_LEN 112
int sqb_vmclock_post_restore(struct sqb_dev *vmclock);
/* The same for every VMClock device on the bus (one on each board). */
int sqb_bus_vmclock_post_restore(struct sqb_bus *b);
/* The page image squib last wrote (tests, logs). */
void sqb_vmclock_get(struct sqb_dev *vmclock, uint8_t abi[SQB_VMCLOCK_ABI_LEN]);

/* ---- virtio-mmio slots (dev_mmio.c): the integrator's hook ----
 *
 * A slot is a 0x1000-byte window at SQB_ARCH_VIRTIO_MMIO_BASE + 0x1000 * n
 * (arch/x86_64/layout.h, Firecracker's x86 base) with a GSI from the
 * allocator.  The device library behind it gets callbacks, nothing else.
 */
#define SQB_MMIO_SLOT_SIZE 0x1000

struct sqb_mmio_slot_info {
	uint64_t base; /* guest-physical window */
	uint32_t size; /* SQB_MMIO_SLOT_SIZE */
	uint32_t gsi;  /* edge-triggered IOAPIC pin */
	struct sqb_irq *irq;
	struct sqb_gmem *mem;
	struct sqb_evloop *loop;
	/* Register / unregister an ioeventfd on window offset off (QueueNotify
	 * is 0x50): fd becomes readable when the guest writes len bytes there
	 * (== datamatch if has_match).  -ENOSYS: no ioeventfd, the write comes
	 * through access() instead. */
	int (*ioeventfd)(const struct sqb_mmio_slot_info *slot, uint64_t off, unsigned int len,
			 uint64_t datamatch, int has_match, int fd, int assign);
	void *vm; /* opaque to the device */
	/* The PCI transport (dev_pci.h): base/size are BAR0's, gsi/irq unused;
	 * interrupts are MSI-X vectors sent by msi(msi_arg, vector). */
	int pci;
	void (*msi)(void *msi_arg, uint16_t vector);
	void *msi_arg;
};

struct sqb_mmio_dev_ops {
	const char *id;		   /* unique, e.g. "virtio-blk0" (DEVS id) */
	uint32_t virtio_device_id; /* 2 blk, 4 rng, ...: DEVS type 0x100 | this */
	uint32_t state_version;
	/* Called once the slot exists (before the guest runs). */
	int (*realize)(void *opaque, const struct sqb_mmio_slot_info *slot);
	void (*access)(void *opaque, uint64_t off, uint8_t *data, unsigned int size, int is_write);
	int (*quiesce)(void *opaque);
	void (*resume)(void *opaque);
	/* Save: fill up to cap bytes, set *len (cap 0 / buf NULL: measure). */
	int (*save)(void *opaque, uint8_t *buf, size_t cap, size_t *len);
	/* Load a state of the given version; diag says where and why. */
	int (*load)(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		    struct sqb_diag *diag);
	void (*reset)(void *opaque);
	void (*destroy)(void *opaque); /* with the VM */
	/* The device's queue count once realized (a PCI function sizes its
	 * MSI-X table by it: one vector per queue and one for the config). */
	unsigned int (*num_queues)(void *opaque);
	/* PCI: the MSI-X vectors the driver chose (configuration first, then
	 * one per queue), read (set 0) or restored (set 1); nvec: table size. */
	void (*vectors)(void *opaque, uint16_t *vec, unsigned int n, unsigned int nvec, int set);
};

#endif
