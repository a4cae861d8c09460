/* VM Generation ID (Microsoft's "Virtual Machine Generation ID" spec, as
 * Linux's drivers/virt/vmgenid.c reads it): a 16-byte random ID in reserved
 * guest memory that changes on every snapshot load, with an interrupt the
 * DSDT's GED turns into Notify(VGEN, 0x80).  DEVS record: format.md [F-125]. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dev.h"
#include "gmem.h"
#include "log.h"

struct vmgenid {
	pthread_mutex_t lock;
	uint8_t id[SQB_VMGENID_LEN]; /* what guest memory holds (or will, at boot) */
	int from_snapshot;	     /* a DEVS record was loaded: the guest knows us */
};

/* A strong random ID, never derived from time; all-zero is drawn again so
 * a reader can tell "no ID yet" from an ID. */
static int new_id(uint8_t id[SQB_VMGENID_LEN], const uint8_t *differ_from)
{
	static const uint8_t zero[SQB_VMGENID_LEN];

	for (int tries = 0; tries < 8; tries++) {
		size_t got = 0;

		while (got < SQB_VMGENID_LEN) {
			ssize_t r = getrandom(id + got, SQB_VMGENID_LEN - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -errno : -EIO;
			got += (size_t)r;
		}
		if (memcmp(id, zero, sizeof(zero)) &&
		    (!differ_from || memcmp(id, differ_from, SQB_VMGENID_LEN)))
			return 0;
	}
	return -EIO; /* eight equal draws of 128 bits: the source is broken */
}

static int vmgenid_realize(struct sqb_dev *d, const void *cfg)
{
	struct vmgenid *g;
	int err;

	(void)cfg;
	if (d->base & 7)
		return -EINVAL; /* the spec wants an 8-byte aligned ID */
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	err = new_id(g->id, NULL);
	if (err) {
		free(g);
		return err;
	}
	pthread_mutex_init(&g->lock, NULL);
	d->priv = g;
	return 0;
}

static void vmgenid_unrealize(struct sqb_dev *d)
{
	struct vmgenid *g = d->priv;

	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
	d->priv = NULL;
}

/* [F-125]: window length (16) as an invariant, 4 reserved bytes, the ID the
 * guest had at the save.  A load keeps the saved ID only to make sure the
 * next one differs; sqb_vmgenid_regenerate() replaces it. */
static int vmgenid_state(struct sqb_dev *d, struct sqb_devst *s)
{
	struct vmgenid *g = d->priv;
	uint8_t id[SQB_VMGENID_LEN];

	pthread_mutex_lock(&g->lock);
	memcpy(id, g->id, sizeof(id));
	sqb_devst_cmp_u32(s, (uint32_t)d->len, "id_len");
	sqb_devst_reserved(s, 4);
	sqb_devst_bytes(s, id, sizeof(id), "generation_id");
	if (s->load && !s->err) {
		memcpy(g->id, id, sizeof(id));
		g->from_snapshot = 1;
	}
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int vmgenid_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	struct vmgenid *g = d->priv;

	/* ACPI names from the spec: VGEN with _HID "VMGENCTR" (the x86 loader
	 * adds _CID/_DDN "VM_Gen_Counter", ADDR and the GED). */
	*o = (struct sqb_dev_describe){.hid = "VMGENCTR",
				       .name = "VGEN",
				       .space = SQB_BUS_MMIO,
				       .base = d->base,
				       .len = SQB_VMGENID_LEN,
				       .kind = SQB_DESC_VMGENID,
				       .genid = g->id};
	if (!d->irq)
		return -EINVAL; /* the notification is part of the device */
	o->irq_kind = SQB_DESC_IRQ_GSI;
	o->gsi = d->irq->gsi;
	return 0;
}

int sqb_vmgenid_regenerate(struct sqb_dev *d)
{
	struct vmgenid *g = d ? d->priv : NULL;
	uint8_t id[SQB_VMGENID_LEN];
	int err;

	if (!g || !d->ctx.mem)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	if (!g->from_snapshot) {
		pthread_mutex_unlock(&g->lock);
		return 0; /* an older snapshot: its guest has no VGEN device */
	}
	err = new_id(id, g->id);
	/* the accessor marks the page for the next Diff; the page is ours
	 * (reserved, nothing else in it), so a page server that has not sent
	 * it yet is not waited for */
	if (!err)
		err = sqb_gmem_write_owned(d->ctx.mem, d->base, id, sizeof(id));
	if (!err)
		memcpy(g->id, id, sizeof(id));
	pthread_mutex_unlock(&g->lock);
	if (err) {
		sqb_err("vmgenid: cannot write a new generation ID at 0x%llx: %s",
			(unsigned long long)d->base, sqb_strerror(err));
		return err;
	}
	/* The spec's notification; the guest takes it once its vCPUs run. */
	sqb_irq_pulse(d->irq);
	return 0;
}

int sqb_bus_vmgenid_regenerate(struct sqb_bus *b)
{
	for (unsigned int i = 0; i < b->ndevs; i++)
		if (b->devs[i]->cls == &sqb_dev_classes[SQB_DEVCLS_VMGENID])
			FORWARD_IF_ERROR(sqb_vmgenid_regenerate(b->devs[i]));
	return 0;
}

void sqb_vmgenid_get(struct sqb_dev *d, uint8_t id[SQB_VMGENID_LEN])
{
	struct vmgenid *g = d->priv;

	pthread_mutex_lock(&g->lock);
	memcpy(id, g->id, SQB_VMGENID_LEN);
	pthread_mutex_unlock(&g->lock);
}

const struct sqb_dev_ops sqb_vmgenid_ops = {
    .realize = vmgenid_realize,
    .unrealize = vmgenid_unrealize,
    .state = vmgenid_state,
    .describe = vmgenid_describe,
};
