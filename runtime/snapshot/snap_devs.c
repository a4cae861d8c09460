/* Device state <-> DEVS sections (docs/format.md 9.1 [F-56], [F-59]): the
 * bus's device instances drive it; each device's symmetric state function
 * (dev.h) encodes and checks its fields.  Types: docs/snapshots.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_mmio.h"
#include "dev_pci.h"
#include "log.h"
#include "snap_priv.h"

static int stateful(const struct sqb_dev *d)
{
	return d->cls->ops->state && d->devs_type;
}

/* A device class newer than some snapshots ([F-125]): those lack its record. */
static int optional(const struct sqb_dev *d)
{
	return (d->cls->flags & SQB_DEVCLS_SNAP_OPTIONAL) != 0;
}

static uint32_t dev_version(const struct sqb_dev *d)
{
	return sqb_dev_is_virtio(d) ? sqb_mmio_slot_version(d) : d->cls->version;
}

int sqb_snap_devs_save(struct sqb_vm *vm, sqb_snap_writer *w)
{
	for (unsigned int i = 0; i < vm->bus.ndevs; i++) {
		struct sqb_dev *d = vm->bus.devs[i];
		struct sqb_device rec;
		uint8_t *st = NULL;
		size_t len = 0;
		int err;

		if (!stateful(d))
			continue; /* e.g. the POST-code port */
		FORWARD_IF_ERROR(sqb_dev_save(d, &st, &len));
		memset(&rec, 0, sizeof(rec));
		rec.type = d->devs_type;
		rec.version = dev_version(d);
		rec.bus_addr = d->base;
		rec.irq = d->irq ? d->irq->gsi : UINT32_MAX;
		snprintf(rec.id, sizeof(rec.id), "%s", d->id);
		rec.state = st;
		rec.state_len = (uint32_t)len;
		err = sqb_writer_add_device(w, &rec);
		free(st);
		FORWARD_IF_ERROR(err);
	}
	return 0;
}

int sqb_snap_devs_pci_places(const sqb_snap *s, struct sqb_pci_place *out, unsigned int max,
			     unsigned int *n, struct sqb_diag *diag)
{
	unsigned int count = sqb_snap_device_count(s);

	*n = 0;
	for (unsigned int k = 0; k < count; k++) {
		struct sqb_device rec;
		void *backing = NULL;
		uint32_t devno;

		FORWARD_IF_ERROR(sqb_snap_device(s, k, &rec, &backing, diag));
		if ((rec.type & ~0xffu) != 0x200) {
			free(backing);
			continue;
		}
		if (rec.state_len >= 8) {
			const uint8_t *st = rec.state;

			devno = (uint32_t)st[4] | (uint32_t)st[5] << 8 | (uint32_t)st[6] << 16 |
				(uint32_t)st[7] << 24;
		} else {
			devno = 0;
		}
		if (*n >= max || !devno || devno >= 32) {
			sqb_snap_diag(diag, "DEVS", "virtio-pci device '%s': slot %u is not 1..31",
				      rec.id, devno);
			free(backing);
			return -SQB_ECORRUPT;
		}
		snprintf(out[*n].id, sizeof(out[*n].id), "%.31s", rec.id);
		out[*n].devno = devno;
		(*n)++;
		free(backing);
	}
	return 0;
}

/* Every stateful device on this VM's bus must be in the snapshot once (but
 * an optional one may be absent), and every device in the snapshot must be
 * one on the bus, at the same place. */
int sqb_snap_devs_load(struct sqb_vm *vm, const sqb_snap *s, struct sqb_diag *diag)
{
	unsigned int n = sqb_snap_device_count(s), found = 0, want = 0;
	uint64_t seen = 0;

	for (unsigned int i = 0; i < vm->bus.ndevs; i++)
		want += stateful(vm->bus.devs[i]) && !optional(vm->bus.devs[i]);
	for (unsigned int k = 0; k < n; k++) {
		struct sqb_device rec;
		struct sqb_dev *d = NULL;
		const char *field = NULL;
		void *backing = NULL;
		unsigned int at = 0;
		int err;

		FORWARD_IF_ERROR(sqb_snap_device(s, k, &rec, &backing, diag));
		for (at = 0; at < vm->bus.ndevs; at++)
			if (!strcmp(vm->bus.devs[at]->id, rec.id)) {
				d = vm->bus.devs[at];
				break;
			}
		if (!d || !stateful(d) || (seen & (1ULL << at)) || d->devs_type != rec.type ||
		    rec.bus_addr != d->base || rec.irq != (d->irq ? d->irq->gsi : UINT32_MAX)) {
			sqb_snap_diag(diag, "DEVS",
				      "device '%s' (type %u at 0x%llx) is not one this VM has%s",
				      rec.id, rec.type, (unsigned long long)rec.bus_addr,
				      d && (seen & (1ULL << at)) ? " (it appears twice)" : "");
			free(backing);
			return -SQB_EMISMATCH;
		}
		seen |= 1ULL << at;
		err = sqb_dev_load(d, rec.version, rec.state, rec.state_len, &field);
		free(backing);
		if (err) {
			sqb_snap_diag(diag, "DEVS", "device '%s' state v%u: %s: %s", d->id,
				      rec.version, field ? field : "invalid", sqb_strerror(err));
			return err < 0 && err > -1000 ? -SQB_ECORRUPT : err;
		}
		found += !optional(d);
	}
	if (found != want) {
		sqb_snap_diag(diag, "DEVS", "snapshot holds %u of this VM's %u stateful devices",
			      found, want);
		return -SQB_EMISMATCH;
	}
	return 0;
}
