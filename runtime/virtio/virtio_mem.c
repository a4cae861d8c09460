/* virtio-mem (device id 24; virtio 1.2 section 5.15): a region of
 * guest-physical memory split into blocks that the driver asks to plug and
 * unplug, up to the size the host requests.  The library keeps the config
 * space, the plugged-block bitmap and the request handling; the integrator
 * owns the memory (struct sqb_vio_vmem_backing: slots appear and disappear,
 * unplugged blocks are discarded).
 *
 * A request is one readable virtio_mem_req (24 bytes: le16 type, 6 padding,
 * le64 addr, le16 nb_blocks, 6 padding) and one writable virtio_mem_resp
 * (10 bytes: le16 type, 6 padding, le16 state), taken as byte streams over
 * the chain.  A chain too short for either is returned with used length 0
 * and nothing written (a driver bug, counted).  Answers (docs/virtio.md):
 * ERROR for a range that is unaligned, empty, outside the usable region or
 * in the wrong state and for unknown types; NACK when a PLUG would take
 * plugged_size above requested_size; BUSY never (requests run to the end
 * inside the notify). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_priv.h"

#define VMEM_REQ_LEN  24u
#define VMEM_RESP_LEN 10u
#define VMEM_CFG_LEN  56u

#define VMEM_REQ_PLUG	    0u
#define VMEM_REQ_UNPLUG	    1u
#define VMEM_REQ_UNPLUG_ALL 2u
#define VMEM_REQ_STATE	    3u

struct vmem {
	uint64_t addr, region_size, block_size, slot_size;
	uint64_t usable, plugged, requested; /* bytes (config space) */
	uint64_t nblocks;
	uint64_t *bits; /* plugged blocks, bit b of word b / 64 */
	struct sqb_vio_vmem_backing be;
	struct sqb_vio_vmem_counters n;
	/* a load's record, committed by vmem_restored() */
	uint64_t st_usable, st_requested, st_plugged, *st_bits;
};

static struct vmem *vm_of(sqb_vio_dev *dev)
{
	return dev->priv;
}

static uint32_t vmem_config_len(sqb_vio_dev *dev)
{
	(void)dev;
	return VMEM_CFG_LEN;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* struct virtio_mem_config: block_size, node_id (0) + padding, addr,
 * region_size, usable_region_size, plugged_size, requested_size. */
static void vmem_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct vmem *m = vm_of(dev);
	uint8_t cs[VMEM_CFG_LEN] = {0};

	put64(cs + 0, m->block_size);
	put64(cs + 16, m->addr);
	put64(cs + 24, m->region_size);
	put64(cs + 32, m->usable);
	put64(cs + 40, m->plugged);
	put64(cs + 48, m->requested);
	memcpy(dst, cs + off, len);
}

static bool bit(const uint64_t *bits, uint64_t b)
{
	return (bits[b / 64] >> (b % 64)) & 1;
}

/* Plugged blocks in [first, first + n). */
static uint64_t count_range(const struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t b = first; b < first + n; b++)
		c += bit(m->bits, b);
	return c;
}

/* The request's range as blocks, or false when it is not a range of this
 * device the driver may name now: block-aligned address inside the usable
 * region, at least one block, the end inside it too (no overflow: every
 * quantity is checked against usable before it is added). */
static bool range_ok(const struct vmem *m, uint64_t addr, uint64_t nb, uint64_t *first)
{
	uint64_t off;

	if (nb == 0 || addr < m->addr || addr % m->block_size)
		return false;
	off = addr - m->addr;
	if (off >= m->usable || nb > (m->usable - off) / m->block_size)
		return false;
	*first = off / m->block_size;
	return true;
}

/* Slots touched by blocks [first, first + n) get present when any of their
 * blocks is plugged, absent when none is. */
static int update_slots(struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t per = m->slot_size / m->block_size;
	int rc = 0;

	for (uint64_t s = first / per; s <= (first + n - 1) / per; s++) {
		bool any = count_range(m, s * per, per) != 0;
		int err = m->be.slot ? m->be.slot(m->be.opaque, s, any) : 0;

		if (err < 0 && !rc)
			rc = err;
	}
	return rc;
}

static void set_range(struct vmem *m, uint64_t first, uint64_t n, bool on)
{
	for (uint64_t b = first; b < first + n; b++) {
		if (on)
			m->bits[b / 64] |= 1ull << (b % 64);
		else
			m->bits[b / 64] &= ~(1ull << (b % 64));
	}
}

static uint16_t vmem_plug(struct vmem *m, uint64_t addr, uint64_t nb)
{
	uint64_t first;

	m->n.plug_count++;
	if (!range_ok(m, addr, nb, &first) || count_range(m, first, nb) != 0) {
		m->n.plug_fails++;
		return SQB_VIO_VMEM_RESP_ERROR;
	}
	if (nb * m->block_size > m->requested - (m->plugged < m->requested ? m->plugged
									   : m->requested)) {
		m->n.plug_fails++;
		return SQB_VIO_VMEM_RESP_NACK;
	}
	set_range(m, first, nb, true);
	if (update_slots(m, first, nb) < 0) { /* no memory behind it: take it back */
		set_range(m, first, nb, false);
		update_slots(m, first, nb);
		m->n.plug_fails++;
		return SQB_VIO_VMEM_RESP_ERROR;
	}
	if (m->be.blocks)
		m->be.blocks(m->be.opaque, first, nb, 1);
	m->plugged += nb * m->block_size;
	m->n.plug_bytes += nb * m->block_size;
	return SQB_VIO_VMEM_RESP_ACK;
}

/* Clear blocks [first, first + n) that are plugged, discard them, drop
 * slots left without any.  Only the runs that were plugged are discarded:
 * the others hold nothing of the guest's, and discarding them costs the
 * host in proportion to the range, which UNPLUG_ALL makes the whole region
 * (the integrator may have to zero-fill what it discards, and reports it
 * written: a guest looping on UNPLUG_ALL must not touch 256 GiB). */
static void unplug_blocks(struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t had = count_range(m, first, n), end = first + n;
	bool discard_failed = false;

	if (m->be.blocks) /* the VMM stops resolving them before they go */
		m->be.blocks(m->be.opaque, first, n, 0);
	for (uint64_t b = first; b < end;) {
		uint64_t run;

		if (!bit(m->bits, b)) {
			b++;
			continue;
		}
		for (run = 1; b + run < end && bit(m->bits, b + run); run++)
			;
		set_range(m, b, run, false);
		if (m->be.discard &&
		    m->be.discard(m->be.opaque, b * m->block_size, run * m->block_size) < 0)
			discard_failed = true;
		b += run;
	}
	if (discard_failed) /* one per request, as Firecracker counts */
		m->n.unplug_discard_fails++;
	m->plugged -= had * m->block_size;
	update_slots(m, first, n);
}

static uint16_t vmem_unplug(struct vmem *m, uint64_t addr, uint64_t nb)
{
	uint64_t first;

	m->n.unplug_count++;
	if (!range_ok(m, addr, nb, &first) || count_range(m, first, nb) != nb) {
		m->n.unplug_fails++;
		return SQB_VIO_VMEM_RESP_ERROR;
	}
	unplug_blocks(m, first, nb);
	m->n.unplug_bytes += nb * m->block_size;
	return SQB_VIO_VMEM_RESP_ACK;
}

static uint16_t vmem_unplug_all(struct vmem *m)
{
	m->n.unplug_all_count++;
	if (m->nblocks)
		unplug_blocks(m, 0, m->nblocks);
	m->usable = 0; /* Firecracker's: the next PATCH grows it again */
	return SQB_VIO_VMEM_RESP_ACK;
}

static uint16_t vmem_state_req(struct vmem *m, uint64_t addr, uint64_t nb, uint16_t *state)
{
	uint64_t first, c;

	m->n.state_count++;
	if (!range_ok(m, addr, nb, &first)) {
		m->n.state_fails++;
		return SQB_VIO_VMEM_RESP_ERROR;
	}
	c = count_range(m, first, nb);
	*state = c == nb  ? SQB_VIO_VMEM_STATE_PLUGGED
		 : c == 0 ? SQB_VIO_VMEM_STATE_UNPLUGGED
			  : SQB_VIO_VMEM_STATE_MIXED;
	return SQB_VIO_VMEM_RESP_ACK;
}

/* One chain: -1 when it cannot hold a request and its answer, else 0 with
 * the response written. */
static int vmem_request(sqb_vio_dev *dev, const struct sqb_vq_chain *c)
{
	struct vmem *m = vm_of(dev);
	uint8_t req[VMEM_REQ_LEN], resp[VMEM_RESP_LEN] = {0};
	uint16_t type, nb, resp_type, state = 0;
	uint64_t addr;

	if (c->read_len < VMEM_REQ_LEN || c->write_len < VMEM_RESP_LEN ||
	    sqb_vq_read_bytes(c, 0, req, VMEM_REQ_LEN) != VMEM_REQ_LEN) {
		dev->m.invalid_reqs++;
		return -1;
	}
	memcpy(&type, req, 2);
	memcpy(&addr, req + 8, 8);
	memcpy(&nb, req + 16, 2);
	type = le16toh(type);
	addr = le64toh(addr);
	nb = le16toh(nb);
	switch (type) {
	case VMEM_REQ_PLUG:
		resp_type = vmem_plug(m, addr, nb);
		break;
	case VMEM_REQ_UNPLUG:
		resp_type = vmem_unplug(m, addr, nb);
		break;
	case VMEM_REQ_UNPLUG_ALL:
		resp_type = vmem_unplug_all(m);
		break;
	case VMEM_REQ_STATE:
		resp_type = vmem_state_req(m, addr, nb, &state);
		break;
	default:
		dev->m.invalid_reqs++;
		resp_type = SQB_VIO_VMEM_RESP_ERROR;
	}
	resp[0] = (uint8_t)resp_type, resp[1] = (uint8_t)(resp_type >> 8);
	resp[8] = (uint8_t)state, resp[9] = (uint8_t)(state >> 8);
	sqb_vq_write_bytes(c, 0, resp, VMEM_RESP_LEN);
	return 0;
}

static int vmem_process(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	bool pushed = false;
	int rc;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		rc = vmem_request(dev, c);
		rc = sqb_vq_push(q, &dev->host.mem, c->head, rc < 0 ? 0 : VMEM_RESP_LEN, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

/* Device record ([F-130]): the geometry (invariants), usable and requested
 * size, then the plugged bitmap in 64-bit words. */
static void vmem_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *b)
{
	struct vmem *m = vm_of(dev);
	uint64_t words = (m->nblocks + 63) / 64, usable = m->usable, requested = m->requested;
	uint64_t *bits = m->bits, pop = 0;
	size_t at = b->off;

	sqb_vio_sv_cmp_u64(b, m->addr, "virtio-mem addr");
	sqb_vio_sv_cmp_u64(b, m->region_size, "virtio-mem region_size");
	sqb_vio_sv_cmp_u64(b, m->block_size, "virtio-mem block_size");
	sqb_vio_sv_cmp_u64(b, m->slot_size, "virtio-mem slot_size");
	sqb_vio_sv_u64(b, &usable, "virtio-mem usable_region_size");
	sqb_vio_sv_u64(b, &requested, "virtio-mem requested_size");
	if (b->load) {
		free(m->st_bits);
		m->st_bits = bits = calloc(words ? words : 1, sizeof(*bits));
		if (!bits)
			return sqb_vio_sv_fail(b, -ENOMEM, at, "virtio-mem: no memory");
	}
	for (uint64_t i = 0; i < words; i++)
		sqb_vio_sv_u64(b, &bits[i], "virtio-mem plugged bitmap");
	if (!b->load || b->err)
		return;
	if (usable > m->region_size || usable % m->slot_size)
		return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 32,
				       "virtio-mem usable_region_size %llu is not a slot multiple "
				       "inside the region",
				       (unsigned long long)usable);
	if (requested > m->region_size || requested % m->block_size)
		return sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 40,
				       "virtio-mem requested_size %llu is not a block multiple "
				       "inside the region",
				       (unsigned long long)requested);
	if (m->nblocks % 64 && bits[words - 1] >> (m->nblocks % 64))
		return sqb_vio_sv_fail(b, -SQB_ERESERVED, at + 48 + 8 * (words - 1),
				       "virtio-mem bitmap has bits past the last block");
	for (uint64_t i = 0; i < words; i++)
		pop += (uint64_t)__builtin_popcountll(bits[i]);
	/* the memory itself is the memory file's last region: the slots of
	 * the plugged blocks get their memslots back now, where a failure can
	 * fail the load (a fresh device has none, so none is taken away) */
	for (uint64_t per = m->slot_size / m->block_size, s = 0; pop && s < m->nblocks / per; s++) {
		uint64_t any = 0;
		int err;

		for (uint64_t k = s * per; k < (s + 1) * per && !any; k++)
			any = bits[k / 64] >> (k % 64) & 1;
		if (any && m->be.slot && (err = m->be.slot(m->be.opaque, s, 1)) < 0)
			return sqb_vio_sv_fail(
			    b, err, at + 48, "virtio-mem: cannot map hotplug slot %llu (error %d)",
			    (unsigned long long)s, err);
	}
	m->st_plugged = pop * m->block_size;
	m->st_usable = usable;
	m->st_requested = requested;
}

static void vmem_restored(sqb_vio_dev *dev)
{
	struct vmem *m = vm_of(dev);

	free(m->bits);
	m->bits = m->st_bits;
	m->st_bits = NULL;
	m->usable = m->st_usable;
	m->requested = m->st_requested;
	m->plugged = m->st_plugged;
	for (uint64_t b = 0; m->be.blocks && b < m->nblocks; b++)
		if (m->bits[b / 64] >> (b % 64) & 1)
			m->be.blocks(m->be.opaque, b, 1, 1);
}

static void vmem_free(sqb_vio_dev *dev)
{
	struct vmem *m = vm_of(dev);

	if (m) {
		free(m->bits);
		free(m->st_bits);
	}
	free(m);
	dev->priv = NULL;
}

static void vmem_config_write(sqb_vio_dev *dev, uint32_t off, const uint8_t *src, uint32_t len)
{
	/* config space is read-only for the driver (5.15.4): ignored */
	(void)dev, (void)off, (void)src, (void)len;
}

static const struct sqb_vio_ops vmem_ops = {
    .device_id = SQB_VIO_ID_MEM,
    .num_queues = 1,
    .config_read = vmem_config_read,
    .config_len = vmem_config_len,
    .process = vmem_process,
    .state = vmem_state,
    .free = vmem_free,
    .restored = vmem_restored,
    .config_write = vmem_config_write,
    .required_features = 1ull << SQB_VIO_F_MEM_UNPLUGGED_INACCESSIBLE,
};

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int sqb_vio_vmem_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		     const struct sqb_vio_vmem_opts *o)
{
	uint64_t feat = (1ull << SQB_VIO_F_VERSION_1) | (1ull << SQB_VIO_F_MEM_UNPLUGGED_INACCESSIBLE);
	struct vmem *m;
	sqb_vio_dev *dev;
	int rc;

	*out = NULL;
	if (!o || o->version != SQB_VIO_OPTS_VERSION || !pow2(o->block_size) ||
	    o->block_size < 4096 || !o->slot_size || o->slot_size % o->block_size ||
	    !o->region_size || o->region_size % o->slot_size || o->addr % o->block_size ||
	    o->region_size / o->block_size > SQB_VIO_VMEM_MAX_BLOCKS ||
	    o->addr > UINT64_MAX - o->region_size)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	dev = calloc(1, sizeof(*dev));
	if (!m || !dev) {
		free(m);
		free(dev);
		return -ENOMEM;
	}
	m->addr = o->addr;
	m->region_size = o->region_size;
	m->block_size = o->block_size;
	m->slot_size = o->slot_size;
	m->nblocks = o->region_size / o->block_size;
	m->be = o->backing;
	m->bits = calloc((m->nblocks + 63) / 64, sizeof(*m->bits));
	if (!m->bits) {
		free(m);
		free(dev);
		return -ENOMEM;
	}
	rc = sqb_vio_dev_init(dev, &vmem_ops, host, feat, NULL);
	if (rc) {
		free(m->bits);
		free(m);
		free(dev);
		return rc;
	}
	dev->priv = m;
	*out = dev;
	return 0;
}

static struct vmem *locked(sqb_vio_dev *dev)
{
	if (!dev || dev->ops != &vmem_ops)
		return NULL;
	pthread_mutex_lock(&dev->lock);
	return vm_of(dev);
}

int sqb_vio_vmem_set_requested(sqb_vio_dev *dev, uint64_t bytes)
{
	struct vmem *m = locked(dev);
	int rc = 0;

	if (!m)
		return -EINVAL;
	/* Firecracker checks activation first, then the size */
	if (!(dev->status & SQB_VIO_S_DRIVER_OK))
		rc = -EAGAIN;
	else if (bytes % m->block_size || bytes > m->region_size)
		rc = -ERANGE;
	if (!rc) {
		if (m->usable < bytes)
			m->usable = (bytes + m->slot_size - 1) / m->slot_size * m->slot_size;
		m->requested = bytes;
		sqb_vio_config_changed(dev);
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int sqb_vio_vmem_status(sqb_vio_dev *dev, struct sqb_vio_vmem_status *st)
{
	struct vmem *m = locked(dev);

	if (!m)
		return -EINVAL;
	*st = (struct sqb_vio_vmem_status){m->addr,   m->region_size, m->block_size, m->slot_size,
					   m->usable, m->plugged,     m->requested};
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_vmem_counters(sqb_vio_dev *dev, struct sqb_vio_vmem_counters *n)
{
	struct vmem *m = locked(dev);

	if (!m)
		return -EINVAL;
	*n = m->n;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}
