/* The device platform: the const class table (the only place a device kind
 * is described), device instances, and the per-VM bus of sorted PIO/MMIO
 * ranges a vCPU exit is dispatched through by binary search.  Unclaimed
 * addresses read as all-ones and swallow writes, like an empty ISA bus. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

extern const struct sqb_dev_ops sqb_uart_ops, sqb_i8042_ops, sqb_mmio_slot_ops, sqb_pl011_ops,
    sqb_vmgenid_ops, sqb_boot_timer_ops, sqb_vmclock_ops, sqb_pci_cfgio_ops, sqb_pci_ecam_ops,
    sqb_virtio_pci_ops;

/* POST code port: guests (and the exit benchmark) write here freely. */
static void postcode_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			    int is_write)
{
	(void)d;
	(void)off;
	if (!is_write)
		memset(data, 0, size);
}

static const struct sqb_dev_ops postcode_ops = {.access = postcode_access};

/* Readable order; DEVS types are pinned in docs/snapshots.md. */
const struct sqb_dev_class sqb_dev_classes[SQB_DEVCLS_COUNT_] = {
    [SQB_DEVCLS_UART] = {"uart", 1, 1, 1, SQB_BUS_PIO, 8, &sqb_uart_ops},
    [SQB_DEVCLS_I8042] = {"i8042", 2, 1, 1, SQB_BUS_PIO, 5, &sqb_i8042_ops},
    [SQB_DEVCLS_POSTCODE] = {"postcode", 0, 0, 0, SQB_BUS_PIO, 1, &postcode_ops},
    /* DEVS type 0x100 | virtio device id, version from the device library */
    [SQB_DEVCLS_MMIO_SLOT] = {"virtio-mmio", 0x100, UINT32_MAX, 0, SQB_BUS_MMIO, SQB_MMIO_SLOT_SIZE,
			      &sqb_mmio_slot_ops},
    [SQB_DEVCLS_PL011] = {"pl011", 3, 1, 1, SQB_BUS_MMIO, SQB_PL011_WINDOW, &sqb_pl011_ops},
    /* its "window" is the 16-byte ID in reserved guest RAM: the guest reads
     * it as memory, so no exit is ever dispatched to it */
    [SQB_DEVCLS_VMGENID] = {"vmgenid", 4, 1, 1, SQB_BUS_MMIO, SQB_VMGENID_LEN, &sqb_vmgenid_ops,
			    SQB_DEVCLS_SNAP_OPTIONAL},
    /* stateless, boot path only (dev_boot_timer.c) */
    [SQB_DEVCLS_BOOT_TIMER] = {"boot-timer", 0, 0, 0, SQB_BUS_MMIO, SQB_BOOT_TIMER_WINDOW,
			       &sqb_boot_timer_ops},
    /* a page of reserved guest RAM the guest maps: like the VMGenID's ID,
     * never an exit (format.md [F-131]) */
    [SQB_DEVCLS_VMCLOCK] = {"vmclock", 5, 1, 1, SQB_BUS_MMIO, SQB_VMCLOCK_SIZE, &sqb_vmclock_ops,
			    SQB_DEVCLS_SNAP_OPTIONAL},
    /* the PCI root's config windows (dev_pci.c): the ports keep the
     * CONFIG_ADDRESS latch ([F-136]), the ECAM is stateless */
    [SQB_DEVCLS_PCI_CFGIO] = {"pci-cfg-io", 6, 1, 1, SQB_BUS_PIO, 8, &sqb_pci_cfgio_ops},
    [SQB_DEVCLS_PCI_ECAM] = {"pci-ecam", 0, 0, 0, SQB_BUS_MMIO, 0x100000, &sqb_pci_ecam_ops},
    /* DEVS type 0x200 | virtio device id, version from the device library
     * ([F-135]) */
    [SQB_DEVCLS_VIRTIO_PCI] = {"virtio-pci", 0x200, UINT32_MAX, 0, SQB_BUS_MMIO, 0x80000,
			       &sqb_virtio_pci_ops},
};

int sqb_dev_create(struct sqb_dev **out, const struct sqb_dev_class *cls, const char *id,
		   uint64_t base, const struct sqb_dev_ctx *ctx, const void *cfg)
{
	struct sqb_dev *d;
	int err;

	*out = NULL;
	if (!id || !*id || strlen(id) >= sizeof(d->id))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cls = cls;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->space = cls->space;
	d->base = base;
	d->len = cls->window;
	d->ctx = *ctx;
	d->irq = ctx->irq;
	d->devs_type = cls->devs_type;
	if (cls->ops->realize && (err = cls->ops->realize(d, cfg)) < 0) {
		free(d);
		return err;
	}
	*out = d;
	return 0;
}

void sqb_dev_free(struct sqb_dev *d)
{
	if (!d)
		return;
	if (d->cls->ops->unrealize)
		d->cls->ops->unrealize(d);
	free(d);
}

static int range_cmp(enum sqb_bus_space s1, uint64_t a1, enum sqb_bus_space s2, uint64_t a2)
{
	if (s1 != s2)
		return s1 < s2 ? -1 : 1;
	return a1 < a2 ? -1 : a1 > a2;
}

int sqb_bus_add(struct sqb_bus *b, struct sqb_dev *d)
{
	unsigned int at = 0;

	if (b->ndevs >= SQB_BUS_MAX_DEVS || b->nranges >= SQB_BUS_MAX_DEVS)
		return -SQB_ELIMIT;
	if (!d->len || d->base + d->len < d->base || sqb_bus_by_id(b, d->id))
		return -EEXIST;
	while (at < b->nranges &&
	       range_cmp(b->ranges[at].space, b->ranges[at].base, d->space, d->base) < 0)
		at++;
	/* neighbours must not overlap the new window */
	if (at > 0 && b->ranges[at - 1].space == d->space &&
	    b->ranges[at - 1].base + b->ranges[at - 1].len > d->base)
		return -EEXIST;
	if (at < b->nranges && b->ranges[at].space == d->space &&
	    d->base + d->len > b->ranges[at].base)
		return -EEXIST;
	memmove(&b->ranges[at + 1], &b->ranges[at], (b->nranges - at) * sizeof(b->ranges[0]));
	b->ranges[at] = (struct sqb_bus_range){d->space, d->base, d->len, d};
	b->nranges++;
	b->devs[b->ndevs++] = d;
	return 0;
}

int sqb_bus_remove(struct sqb_bus *b, struct sqb_dev *d)
{
	unsigned int i, r;

	for (i = 0; i < b->ndevs && b->devs[i] != d; i++)
		;
	for (r = 0; r < b->nranges && b->ranges[r].dev != d; r++)
		;
	if (i == b->ndevs || r == b->nranges)
		return -ENOENT;
	memmove(&b->devs[i], &b->devs[i + 1], (b->ndevs - i - 1) * sizeof(b->devs[0]));
	b->ndevs--;
	memmove(&b->ranges[r], &b->ranges[r + 1], (b->nranges - r - 1) * sizeof(b->ranges[0]));
	b->nranges--;
	return 0;
}

struct sqb_dev *sqb_bus_find(const struct sqb_bus *b, enum sqb_bus_space space, uint64_t addr)
{
	unsigned int lo = 0, hi = b->nranges;

	/* last range starting at or below addr */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (range_cmp(b->ranges[mid].space, b->ranges[mid].base, space, addr) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct sqb_bus_range *r = &b->ranges[lo - 1];
	if (r->space != space || addr - r->base >= r->len)
		return NULL;
	return r->dev;
}

struct sqb_dev *sqb_bus_by_id(const struct sqb_bus *b, const char *id)
{
	for (unsigned int i = 0; i < b->ndevs; i++)
		if (!strcmp(b->devs[i]->id, id))
			return b->devs[i];
	return NULL;
}

int sqb_bus_access(const struct sqb_bus *b, enum sqb_bus_space space, uint64_t addr, uint8_t *data,
		   unsigned int size, int is_write)
{
	struct sqb_dev *d = sqb_bus_find(b, space, addr);

	if (d && d->cls->ops->access) {
		d->cls->ops->access(d, addr - d->base, data, size, is_write);
		return 1;
	}
	if (!is_write)
		memset(data, 0xff, size);
	return 0;
}

int sqb_bus_quiesce(struct sqb_bus *b)
{
	for (unsigned int i = 0; i < b->ndevs; i++) {
		struct sqb_dev *d = b->devs[i];
		int err;

		if (!d->cls->ops->quiesce)
			continue;
		err = d->cls->ops->quiesce(d);
		if (err < 0) {
			while (i-- > 0)
				if (b->devs[i]->cls->ops->resume)
					b->devs[i]->cls->ops->resume(b->devs[i]);
			return err;
		}
	}
	return 0;
}

void sqb_bus_resume(struct sqb_bus *b)
{
	for (unsigned int i = 0; i < b->ndevs; i++)
		if (b->devs[i]->cls->ops->resume)
			b->devs[i]->cls->ops->resume(b->devs[i]);
}

void sqb_bus_reset(struct sqb_bus *b)
{
	for (unsigned int i = 0; i < b->ndevs; i++)
		if (b->devs[i]->cls->ops->reset)
			b->devs[i]->cls->ops->reset(b->devs[i]);
}

void sqb_bus_destroy(struct sqb_bus *b)
{
	for (unsigned int i = b->ndevs; i-- > 0;)
		sqb_dev_free(b->devs[i]);
	memset(b, 0, sizeof(*b));
}
