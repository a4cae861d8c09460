/* VMClock (Firecracker's devices/acpi/vmclock.rs; the page layout is Linux's
 * include/uapi/linux/vmclock-abi.h, read by drivers/ptp/ptp_vmclock.c): one
 * page of reserved guest memory holding struct vmclock_abi, whose
 * disruption_marker and vm_generation_counter go up by one on every snapshot
 * load, followed by an interrupt the DSDT's GED turns into Notify(VCLK, 0x80).
 * DEVS record: format.md [F-131]. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "gmem.h"
#include "log.h"

/* struct vmclock_abi, version 1: offsets of the fields squib writes (every
 * field is little-endian; the rest of the 112 bytes stays zero: no clock
 * data, as Firecracker). */
#define ABI_MAGIC	  0   /* u32 */
#define ABI_SIZE	  4   /* u32: the page size */
#define ABI_VERSION	  8   /* u16 */
#define ABI_COUNTER_ID	  10  /* u8 */
#define ABI_SEQ_COUNT	  12  /* u32: odd while the VMM writes */
#define ABI_DISRUPTION	  16  /* u64 */
#define ABI_FLAGS	  24  /* u64 */
#define ABI_CLOCK_STATUS  34  /* u8 */
#define ABI_VM_GENERATION 104 /* u64 */

#define VMCLOCK_MAGIC			    0x4b4c4356u /* "VCLK" */
#define VMCLOCK_COUNTER_INVALID		    255
#define VMCLOCK_STATUS_UNKNOWN		    0
#define VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT (1ull << 8)
#define VMCLOCK_FLAG_NOTIFICATION_PRESENT   (1ull << 9)

struct vmclock {
	pthread_mutex_t lock;
	uint8_t abi[SQB_VMCLOCK_ABI_LEN];     /* what the page holds (or will, at boot) */
	uint8_t pending[SQB_VMCLOCK_ABI_LEN]; /* a loaded record, until post_load */
	int from_snapshot;		      /* a DEVS record was loaded: the guest knows us */
};

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The page a booted VM starts with: Firecracker's VmClock::new(). */
static void initial_abi(uint8_t abi[SQB_VMCLOCK_ABI_LEN])
{
	memset(abi, 0, SQB_VMCLOCK_ABI_LEN);
	put_le(abi + ABI_MAGIC, VMCLOCK_MAGIC, 4);
	put_le(abi + ABI_SIZE, SQB_VMCLOCK_SIZE, 4);
	put_le(abi + ABI_VERSION, 1, 2);
	abi[ABI_COUNTER_ID] = VMCLOCK_COUNTER_INVALID;
	abi[ABI_CLOCK_STATUS] = VMCLOCK_STATUS_UNKNOWN;
	put_le(abi + ABI_FLAGS,
	       VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT | VMCLOCK_FLAG_NOTIFICATION_PRESENT, 8);
}

static int vmclock_realize(struct sqb_dev *d, const void *cfg)
{
	struct vmclock *c;

	(void)cfg;
	if (d->base & (SQB_VMCLOCK_SIZE - 1))
		return -EINVAL; /* a page of its own */
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	initial_abi(c->abi);
	pthread_mutex_init(&c->lock, NULL);
	d->priv = c;
	return 0;
}

static void vmclock_unrealize(struct sqb_dev *d)
{
	struct vmclock *c = d->priv;

	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
	d->priv = NULL;
}

static void refuse(struct sqb_devst *s, int err, const char *field)
{
	if (!s->err) {
		s->err = err;
		s->field = field;
	}
}

/* [F-131]: page length (4096) as an invariant, 4 reserved bytes, the 112
 * bytes of struct vmclock_abi at the save.  A load checks the fields squib
 * fixes and keeps the image in `pending`: post_load adopts it only once the
 * whole record was accepted. */
static int vmclock_state(struct sqb_dev *d, struct sqb_devst *s)
{
	struct vmclock *c = d->priv;
	uint8_t abi[SQB_VMCLOCK_ABI_LEN], want[SQB_VMCLOCK_ABI_LEN];

	pthread_mutex_lock(&c->lock);
	memcpy(abi, c->abi, sizeof(abi));
	sqb_devst_cmp_u32(s, (uint32_t)d->len, "page_len");
	sqb_devst_reserved(s, 4);
	sqb_devst_bytes(s, abi, sizeof(abi), "vmclock_abi");
	if (s->load && !s->err) {
		initial_abi(want);
		if (get_le(abi + ABI_MAGIC, 4) != VMCLOCK_MAGIC)
			refuse(s, -SQB_EBADMAGIC, "vmclock_abi.magic");
		else if (get_le(abi + ABI_SIZE, 4) != SQB_VMCLOCK_SIZE ||
			 get_le(abi + ABI_VERSION, 2) != 1)
			refuse(s, -SQB_EMISMATCH, "vmclock_abi.size/version");
		else if (abi[ABI_COUNTER_ID] != want[ABI_COUNTER_ID] ||
			 get_le(abi + ABI_FLAGS, 8) != get_le(want + ABI_FLAGS, 8))
			refuse(s, -SQB_EMISMATCH, "vmclock_abi.counter_id/flags");
		else if (get_le(abi + ABI_SEQ_COUNT, 4) & 1)
			refuse(s, -SQB_ECORRUPT, "vmclock_abi.seq_count (odd: saved mid-update)");
		else
			memcpy(c->pending, abi, sizeof(abi));
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int vmclock_post_load(struct sqb_dev *d)
{
	struct vmclock *c = d->priv;

	pthread_mutex_lock(&c->lock);
	memcpy(c->abi, c->pending, sizeof(c->abi));
	c->from_snapshot = 1;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int vmclock_describe(struct sqb_dev *d, struct sqb_dev_describe *o)
{
	struct vmclock *c = d->priv;

	/* Firecracker's names: VCLK, _HID "AMZNC10C" (the x86 loader adds
	 * _CID/_DDN "VMCLOCK", _STA, _CRS and the GED). */
	*o = (struct sqb_dev_describe){.hid = "AMZNC10C",
				       .name = "VCLK",
				       .space = SQB_BUS_MMIO,
				       .base = d->base,
				       .len = SQB_VMCLOCK_SIZE,
				       .kind = SQB_DESC_VMCLOCK,
				       .page = c->abi,
				       .page_len = SQB_VMCLOCK_ABI_LEN};
	if (!d->irq)
		return -EINVAL; /* the notification is part of the device */
	o->irq_kind = SQB_DESC_IRQ_GSI;
	o->gsi = d->irq->gsi;
	return 0;
}

/* One write of the page image through the accessor. */
static int put_page(struct sqb_dev *d, const uint8_t *abi, unsigned int off, unsigned int len)
{
	return sqb_gmem_write_owned(d->ctx.mem, d->base + off, abi + off, len);
}

int sqb_vmclock_post_restore(struct sqb_dev *d)
{
	struct vmclock *c = d ? d->priv : NULL;
	uint8_t abi[SQB_VMCLOCK_ABI_LEN];
	uint32_t seq;
	int err;

	if (!c || !d->ctx.mem)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (!c->from_snapshot) {
		pthread_mutex_unlock(&c->lock);
		return 0; /* an older snapshot: its guest has no VCLK device */
	}
	/* The ABI's seqlock, as Firecracker's do_post_restore(): seq_count odd,
	 * the new counters, seq_count even again.  The whole image is written
	 * (not only the counters): under Uffd an unserved page of ours becomes
	 * a zero page first, and must not lose the magic. */
	memcpy(abi, c->abi, sizeof(abi));
	seq = (uint32_t)get_le(abi + ABI_SEQ_COUNT, 4) | 1u;
	put_le(abi + ABI_SEQ_COUNT, seq, 4);
	err = put_page(d, abi, ABI_SEQ_COUNT, 4);
	atomic_thread_fence(memory_order_release);
	put_le(abi + ABI_DISRUPTION, get_le(abi + ABI_DISRUPTION, 8) + 1, 8);
	put_le(abi + ABI_VM_GENERATION, get_le(abi + ABI_VM_GENERATION, 8) + 1, 8);
	if (!err)
		err = put_page(d, abi, 0, sizeof(abi));
	atomic_thread_fence(memory_order_release);
	put_le(abi + ABI_SEQ_COUNT, seq + 1, 4);
	if (!err)
		err = put_page(d, abi, ABI_SEQ_COUNT, 4);
	if (!err)
		memcpy(c->abi, abi, sizeof(abi));
	pthread_mutex_unlock(&c->lock);
	if (err) {
		sqb_err("vmclock: cannot update the VMClock page at 0x%llx: %s",
			(unsigned long long)d->base, sqb_strerror(err));
		return err;
	}
	/* The ABI's notification; the guest takes it once its vCPUs run. */
	sqb_irq_pulse(d->irq);
	return 0;
}

int sqb_bus_vmclock_post_restore(struct sqb_bus *b)
{
	for (unsigned int i = 0; i < b->ndevs; i++)
		if (b->devs[i]->cls == &sqb_dev_classes[SQB_DEVCLS_VMCLOCK])
			FORWARD_IF_ERROR(sqb_vmclock_post_restore(b->devs[i]));
	return 0;
}

void sqb_vmclock_get(struct sqb_dev *d, uint8_t abi[SQB_VMCLOCK_ABI_LEN])
{
	struct vmclock *c = d->priv;

	pthread_mutex_lock(&c->lock);
	memcpy(abi, c->abi, SQB_VMCLOCK_ABI_LEN);
	pthread_mutex_unlock(&c->lock);
}

const struct sqb_dev_ops sqb_vmclock_ops = {
    .realize = vmclock_realize,
    .unrealize = vmclock_unrealize,
    .state = vmclock_state,
    .post_load = vmclock_post_load,
    .describe = vmclock_describe,
};
