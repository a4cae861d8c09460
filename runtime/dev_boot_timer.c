/* Firecracker's boot timer (`--boot-timer`): a one-page MMIO window at the
 * board's boot-device address (x86_64 0xc000_0000, aarch64 0x4000_0000, the
 * addresses Firecracker's guest init writes to).  A one-byte write of 123 at
 * offset 0 means "the guest reached userspace"; the device calls the owner's
 * callback, which logs the time since InstanceStart.  Every other access is
 * ignored; reads return zeros.  Stateless (no DEVS record) and only on the
 * boot path, as Firecracker attaches it only when it boots a kernel. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

#define BOOT_TIMER_MAGIC 123

static int boot_timer_realize(struct sqb_dev *d, const void *cfg)
{
	const struct sqb_boot_timer_cfg *c = cfg;
	struct sqb_boot_timer_cfg *p;

	if (!c || !c->fire)
		return -EINVAL;
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = *c;
	d->priv = p;
	return 0;
}

static void boot_timer_unrealize(struct sqb_dev *d)
{
	free(d->priv);
	d->priv = NULL;
}

static void boot_timer_access(struct sqb_dev *d, uint64_t off, uint8_t *data, unsigned int size,
			      int is_write)
{
	const struct sqb_boot_timer_cfg *c = d->priv;

	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	/* boot_timer.rs: only a byte-wide write at offset 0 counts */
	if (size == 1 && off == 0 && data[0] == BOOT_TIMER_MAGIC)
		c->fire(c->arg);
}

const struct sqb_dev_ops sqb_boot_timer_ops = {
    .realize = boot_timer_realize,
    .unrealize = boot_timer_unrealize,
    .access = boot_timer_access,
};
