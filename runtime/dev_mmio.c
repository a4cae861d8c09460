/* virtio-mmio slots: a bus device class whose work is done by a device
 * library behind struct sqb_mmio_dev_ops callbacks (the virtio transport
 * and its blk/rng devices live in runtime/virtio/).  The slot owns the
 * window, the GSI and the DEVS record (type 0x100 | virtio id, [F-56]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "dev_mmio.h"
#include "dev_pci.h"

struct mmio_slot {
	struct sqb_mmio_slot_cfg cfg;
	struct sqb_diag diag; /* why the last load failed */
};

static int slot_realize(struct sqb_dev *d, const void *cfg)
{
	const struct sqb_mmio_slot_cfg *c = cfg;
	struct mmio_slot *s;
	int err;

	if (!c || !c->ops || !c->ops->access)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *c;
	d->priv = s;
	d->devs_type = 0x100u | (c->ops->virtio_device_id & 0xffu);
	if (c->ops->realize && (err = c->ops->realize(c->opaque, &s->cfg.slot)) < 0) {
		free(s);
		d->priv = NULL;
		return err;
	}
	return 0;
}

static void slot_unrealize(struct sqb_dev *d)
{
	struct mmio_slot *s = d->priv;

	if (s && s->cfg.ops->destroy)
		s->cfg.ops->destroy(s->cfg.opaque);
	free(s);
	d->priv = NULL;
}

static void slot_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			int is_write)
{
	struct mmio_slot *s = d->priv;

	s->cfg.ops->access(s->cfg.opaque, off, data, size, is_write);
}

static int slot_quiesce(struct sqb_dev *d)
{
	struct mmio_slot *s = d->priv;

	return s->cfg.ops->quiesce ? s->cfg.ops->quiesce(s->cfg.opaque) : 0;
}

static void slot_resume(struct sqb_dev *d)
{
	struct mmio_slot *s = d->priv;

	if (s->cfg.ops->resume)
		s->cfg.ops->resume(s->cfg.opaque);
}

static void slot_reset(struct sqb_dev *d)
{
	struct mmio_slot *s = d->priv;

	if (s->cfg.ops->reset)
		s->cfg.ops->reset(s->cfg.opaque);
}

/* The library encodes its own fields; the slot frames them. */
static int slot_state(struct sqb_dev *d, struct sqb_devst *st)
{
	struct mmio_slot *s = d->priv;
	size_t len = 0;
	int err;

	if (!s->cfg.ops->save || !s->cfg.ops->load)
		return -ENOSYS;
	if (st->load) {
		memset(&s->diag, 0, sizeof(s->diag));
		err = s->cfg.ops->load(s->cfg.opaque, st->version, st->buf + st->pos,
				       st->cap - st->pos, &s->diag);
		st->pos = st->cap;
		if (err < 0) {
			st->err = err;
			st->field = s->diag.reason[0] ? s->diag.reason : "device state";
		}
		return 0;
	}
	if (!st->buf) {
		err = s->cfg.ops->save(s->cfg.opaque, NULL, 0, &len);
		if (err < 0)
			return err;
		st->pos += len;
		return 0;
	}
	err = s->cfg.ops->save(s->cfg.opaque, st->buf + st->pos, st->cap - st->pos, &len);
	if (err < 0)
		return err;
	if (len > st->cap - st->pos)
		return -SQB_ECORRUPT;
	st->pos += len;
	return 0;
}

static int slot_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	struct mmio_slot *s = d->priv;
	unsigned int n = (unsigned int)((d->base - s->cfg.window_base) / SQB_MMIO_SLOT_SIZE);

	*o = (struct sqb_dev_describe){.hid = "LNRO0005",
				       .uid = n,
				       .space = SQB_BUS_MMIO,
				       .base = d->base,
				       .len = (uint32_t)d->len,
				       .dma_coherent = 1};
	snprintf(o->name, sizeof(o->name), "V%03u", n % 1000); /* Firecracker's V000.. */
	if (d->irq) {
		o->irq_kind = SQB_DESC_IRQ_GSI;
		o->gsi = d->irq->gsi;
	}
	return 0;
}

const struct sqb_dev_ops sqb_mmio_slot_ops = {
    .realize = slot_realize,
    .unrealize = slot_unrealize,
    .access = slot_access,
    .quiesce = slot_quiesce,
    .resume = slot_resume,
    .state = slot_state,
    .reset = slot_reset,
    .describe = slot_describe,
};

int sqb_dev_is_virtio(const struct sqb_dev *d)
{
	return d->cls == &sqb_dev_classes[SQB_DEVCLS_MMIO_SLOT] ||
	       d->cls == &sqb_dev_classes[SQB_DEVCLS_VIRTIO_PCI];
}

unsigned int sqb_mmio_slot_version(const struct sqb_dev *d)
{
	const struct mmio_slot *s = d->priv;

	if (d->cls == &sqb_dev_classes[SQB_DEVCLS_VIRTIO_PCI])
		return sqb_pci_fn_version(d);
	return s->cfg.ops->state_version;
}

void *sqb_mmio_slot_opaque(const struct sqb_dev *d, const struct sqb_mmio_dev_ops **ops)
{
	const struct mmio_slot *s = d->priv;

	if (d->cls == &sqb_dev_classes[SQB_DEVCLS_VIRTIO_PCI])
		return sqb_pci_fn_opaque(d, ops);
	if (ops)
		*ops = s ? s->cfg.ops : NULL;
	return s ? s->cfg.opaque : NULL;
}
