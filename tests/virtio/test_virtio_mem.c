/* virtio-mem (runtime/virtio/virtio_mem.c) driven as a guest driver would,
 * with a recording backing: config space and features, PATCH's requested
 * size, PLUG/UNPLUG/UNPLUG_ALL/STATE and their answers, hostile requests
 * (unaligned, out of range, overflowing, wrong state, short chains, unknown
 * types), slot mapping and discards, and the [F-130] state record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vio_test_util.h"

#define MIB	(1ull << 20)
#define ADDR	(1ull << 30) /* the region's guest-physical start */
#define BLOCK	(2 * MIB)
#define SLOT	(8 * MIB)
#define REGION	(32 * MIB) /* 16 blocks, 4 slots */
#define REQ	VT_HDR
#define RESP	VT_STAT
#define NSLOTS	4

struct mt {
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev;
	int slot_on[NSLOTS];
	unsigned int slot_calls, discards, fail_map;
	uint64_t disc_off, disc_len, disc_total;
	uint64_t blk_on; /* blocks 0..63 the backing was told are plugged */
};

static int be_slot(void *opaque, uint64_t i, int present)
{
	struct mt *t = opaque;

	assert_true(i < NSLOTS);
	t->slot_calls++;
	if (present && t->fail_map)
		return -ENOMEM;
	t->slot_on[i] = present;
	return 0;
}

static int be_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct mt *t = opaque;

	assert_true(off + len <= REGION && off + len > off);
	t->discards++;
	t->disc_off = off;
	t->disc_len = len;
	t->disc_total += len;
	return 0;
}

static void be_blocks(void *opaque, uint64_t first, uint64_t n, int on)
{
	struct mt *t = opaque;

	for (uint64_t b = first; b < first + n && b < 64; b++)
		t->blk_on = on ? t->blk_on | 1ull << b : t->blk_on & ~(1ull << b);
}

static struct mt *mk(void)
{
	struct mt *t = calloc(1, sizeof(*t));
	struct sqb_vio_vmem_opts o = {SQB_VIO_OPTS_VERSION,
				      ADDR,
				      REGION,
				      BLOCK,
				      SLOT,
				      {NULL, be_slot, be_discard, be_blocks}};

	assert_non_null(t);
	o.backing.opaque = t;
	vt_env_init(&t->e);
	assert_int_equal(sqb_vio_vmem_new(&t->dev, &t->e.host, &o), 0);
	return t;
}

static void up(struct mt *t)
{
	uint32_t st = vt_drv_init(&t->d, &t->e, t->dev, 16,
				  1ull << SQB_VIO_F_MEM_UNPLUGGED_INACCESSIBLE);

	assert_true(st & SQB_VIO_S_DRIVER_OK);
}

static void done(struct mt *t)
{
	sqb_vio_dev_free(t->dev);
	vt_env_fini(&t->e);
	free(t);
}

static uint64_t cfg64(struct mt *t, uint32_t off)
{
	return vt_r32(t->dev, 0x100 + off) | (uint64_t)vt_r32(t->dev, 0x104 + off) << 32;
}

static void put_req(struct mt *t, uint16_t type, uint64_t addr, uint16_t nb)
{
	uint8_t *p = vt_ptr(&t->e, REQ);

	memset(p, 0, 24);
	p[0] = (uint8_t)type, p[1] = (uint8_t)(type >> 8);
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(addr >> (8 * i));
	p[16] = (uint8_t)nb, p[17] = (uint8_t)(nb >> 8);
	memset(vt_ptr(&t->e, RESP), 0xee, 16);
}

/* Submit segs; the used length in *len; returns the response type (or
 * 0xeeee when nothing was written). */
static uint16_t submit(struct mt *t, const struct vt_seg *s, unsigned int n, uint32_t *len,
		       uint16_t *state)
{
	uint32_t id, l;

	vt_add(&t->d, s, n);
	vt_notify(t->dev);
	assert_true(vt_used(&t->d, &id, &l));
	if (len)
		*len = l;
	if (state)
		*state = vt_get16(&t->e, RESP + 8);
	return vt_get16(&t->e, RESP);
}

static uint16_t req(struct mt *t, uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
	struct vt_seg s[2] = {{REQ, 24, false}, {RESP, 10, true}};
	uint32_t len;
	uint16_t r;

	put_req(t, type, addr, nb);
	r = submit(t, s, 2, &len, state);
	assert_int_equal(len, 10);
	return r;
}

static struct sqb_vio_vmem_status status(struct mt *t)
{
	struct sqb_vio_vmem_status st;

	assert_int_equal(sqb_vio_vmem_status(t->dev, &st), 0);
	return st;
}

static void config_space_and_features(void **state)
{
	struct mt *t = mk();
	uint64_t offered;

	(void)state;
	assert_int_equal(vt_r32(t->dev, 0x08), 24); /* DeviceID */
	vt_w32(t->dev, 0x14, 0);
	offered = vt_r32(t->dev, 0x10);
	assert_true(offered & (1u << SQB_VIO_F_MEM_UNPLUGGED_INACCESSIBLE));
	assert_false(offered & 1u); /* no ACPI_PXM */
	assert_int_equal(cfg64(t, 0), BLOCK);
	assert_int_equal(vt_r32(t->dev, 0x108), 0); /* node_id + padding */
	assert_int_equal(cfg64(t, 16), ADDR);
	assert_int_equal(cfg64(t, 24), REGION);
	assert_int_equal(cfg64(t, 32), 0);
	assert_int_equal(cfg64(t, 40), 0);
	assert_int_equal(cfg64(t, 48), 0);
	/* config space is read-only for the driver */
	vt_w32(t->dev, 0x100 + 48, 0x1234);
	assert_int_equal(cfg64(t, 48), 0);
	done(t);
}

static void unplugged_inaccessible_is_required(void **state)
{
	struct mt *t = mk();
	uint32_t st = vt_drv_init(&t->d, &t->e, t->dev, 16, 0);

	(void)state;
	assert_false(st & SQB_VIO_S_FEATURES_OK);
	assert_false(st & SQB_VIO_S_DRIVER_OK);
	done(t);
}

static void requested_size(void **state)
{
	struct mt *t = mk();
	uint32_t gen;

	(void)state;
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 4 * MIB), -EAGAIN);
	/* activation is checked before the size, as Firecracker does */
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 1 * MIB), -EAGAIN);
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 1 * MIB), -ERANGE);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, REGION + BLOCK), -ERANGE);
	gen = vt_r32(t->dev, 0xfc);
	t->e.irqs = 0;
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 10 * MIB), 0);
	assert_int_equal(cfg64(t, 48), 10 * MIB);
	assert_int_equal(cfg64(t, 32), 16 * MIB); /* the next slot multiple */
	assert_int_not_equal(vt_r32(t->dev, 0xfc), gen);
	assert_true(vt_r32(t->dev, 0x60) & SQB_VIO_INT_CONFIG);
	assert_true(t->e.irqs >= 1);
	/* lowering keeps usable where it is */
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 2 * MIB), 0);
	assert_int_equal(status(t).usable, 16 * MIB);
	assert_int_equal(status(t).requested, 2 * MIB);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, REGION), 0);
	assert_int_equal(status(t).usable, REGION);
	done(t);
}

static void plug_unplug_state(void **state)
{
	struct mt *t = mk();
	uint16_t st;
	struct sqb_vio_vmem_counters n;

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 12 * MIB), 0);
	/* blocks 3..6 span slots 0 and 1 */
	assert_int_equal(req(t, 0, ADDR + 3 * BLOCK, 4, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(status(t).plugged, 8 * MIB);
	assert_int_equal(cfg64(t, 40), 8 * MIB);
	assert_true(t->slot_on[0] && t->slot_on[1] && !t->slot_on[2]);
	assert_int_equal(req(t, 3, ADDR + 3 * BLOCK, 4, &st), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(st, SQB_VIO_VMEM_STATE_PLUGGED);
	assert_int_equal(req(t, 3, ADDR + 2 * BLOCK, 2, &st), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(st, SQB_VIO_VMEM_STATE_MIXED);
	assert_int_equal(req(t, 3, ADDR, 3, &st), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(st, SQB_VIO_VMEM_STATE_UNPLUGGED);
	/* already plugged, partly plugged: ERROR */
	assert_int_equal(req(t, 0, ADDR + 3 * BLOCK, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(req(t, 0, ADDR + 2 * BLOCK, 2, NULL), SQB_VIO_VMEM_RESP_ERROR);
	/* above requested_size (12 MiB, 8 plugged): NACK */
	assert_int_equal(req(t, 0, ADDR, 3, NULL), SQB_VIO_VMEM_RESP_NACK);
	assert_int_equal(req(t, 0, ADDR, 2, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(status(t).plugged, 12 * MIB);
	/* unplug block 3: slot 0 keeps blocks 0 and 1 */
	t->discards = 0;
	assert_int_equal(req(t, 1, ADDR + 3 * BLOCK, 1, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(t->discards, 1);
	assert_int_equal(t->disc_off, 3 * BLOCK);
	assert_int_equal(t->disc_len, BLOCK);
	assert_true(t->slot_on[0] && t->slot_on[1]);
	/* blocks 0 and 1 too: slot 0 wholly unplugged, removed */
	assert_int_equal(req(t, 1, ADDR, 2, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_false(t->slot_on[0]);
	assert_true(t->slot_on[1]);
	/* unplugging a mixed or unplugged range: ERROR */
	assert_int_equal(req(t, 1, ADDR + 3 * BLOCK, 2, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(req(t, 1, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(status(t).plugged, 6 * MIB);
	assert_int_equal(sqb_vio_vmem_counters(t->dev, &n), 0);
	assert_int_equal(n.plug_count, 5);
	assert_int_equal(n.plug_fails, 3);
	assert_int_equal(n.plug_bytes, 12 * MIB);
	assert_int_equal(n.unplug_count, 4);
	assert_int_equal(n.unplug_bytes, 6 * MIB);
	assert_int_equal(n.unplug_fails, 2);
	assert_int_equal(n.state_count, 3);
	done(t);
}

static void unplug_all(void **state)
{
	struct mt *t = mk();

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, REGION), 0);
	assert_int_equal(req(t, 0, ADDR, 16, NULL), SQB_VIO_VMEM_RESP_ACK);
	for (int i = 0; i < NSLOTS; i++)
		assert_true(t->slot_on[i]);
	assert_int_equal(req(t, 2, 0, 0, NULL), SQB_VIO_VMEM_RESP_ACK);
	for (int i = 0; i < NSLOTS; i++)
		assert_false(t->slot_on[i]);
	assert_int_equal(status(t).plugged, 0);
	assert_int_equal(status(t).usable, 0); /* Firecracker's */
	/* nothing is usable until the host asks again */
	assert_int_equal(req(t, 0, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, BLOCK), 0);
	assert_int_equal(req(t, 0, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ACK);
	done(t);
}

/* UNPLUG_ALL discards the runs that were plugged, not the whole region: a
 * guest repeating it must not make the host discard (during a background
 * create: zero-fill, and report written) every byte of the region. */
static void unplug_all_discards_only_plugged(void **state)
{
	struct mt *t = mk();

	(void)state;
	up(t);
	assert_int_equal(req(t, 2, 0, 0, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(t->discards, 0);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, REGION), 0);
	assert_int_equal(req(t, 0, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(req(t, 0, ADDR + 9 * BLOCK, 2, NULL), SQB_VIO_VMEM_RESP_ACK);
	for (int i = 0; i < 8; i++)
		assert_int_equal(req(t, 2, 0, 0, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(t->discards, 2);
	assert_int_equal(t->disc_total, 3 * BLOCK);
	assert_int_equal(t->disc_off, 9 * BLOCK);
	assert_int_equal(t->disc_len, 2 * BLOCK);
	assert_int_equal(t->blk_on, 0);
	assert_int_equal(status(t).plugged, 0);
	for (int i = 0; i < NSLOTS; i++)
		assert_false(t->slot_on[i]);
	/* a ranged UNPLUG of plugged blocks still discards exactly them */
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, REGION), 0);
	assert_int_equal(req(t, 0, ADDR + 4 * BLOCK, 3, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(req(t, 1, ADDR + 4 * BLOCK, 3, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(t->discards, 3);
	assert_int_equal(t->disc_off, 4 * BLOCK);
	assert_int_equal(t->disc_len, 3 * BLOCK);
	done(t);
}

/* A fixed-seed run of random requests (any type, addresses around and
 * inside the region, block counts up to 0xffff, host PATCHes in between)
 * against a model of the rules (docs/virtio.md): every answer, plugged_size,
 * usable_region_size, the slots and the backing's block view agree with
 * the model after each request, and nothing is discarded while plugged. */
static void random_requests_match_model(void **state)
{
	struct mt *t = mk();
	uint64_t seed = 0x5eed1234abcdull, usable = 0, requested = 0, plugged = 0;
	bool model[REGION / BLOCK] = {false};

	(void)state;
	up(t);
	for (int i = 0; i < 4000; i++) {
		static const uint16_t pick[3] = {0, 1, 3}; /* PLUG, UNPLUG, STATE */
		uint64_t r, k, addr, first = 0;
		uint16_t type, nb, st = 0, want, got, want_st = 0;
		unsigned int ndisc;
		bool ok;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		r = seed >> 16;
		if (r % 9 == 0) { /* the host changes its request */
			uint64_t req_b = (r >> 8) % (REGION / BLOCK + 2) * BLOCK;

			if (req_b <= REGION) {
				assert_int_equal(sqb_vio_vmem_set_requested(t->dev, req_b), 0);
				if (usable < req_b)
					usable = (req_b + SLOT - 1) / SLOT * SLOT;
				requested = req_b;
			} else {
				assert_int_equal(sqb_vio_vmem_set_requested(t->dev, req_b),
						 -ERANGE);
			}
			continue;
		}
		/* UNPLUG_ALL (which makes nothing usable) and unknown types rare */
		k = (r >> 8) % 50;
		type = k == 0 ? 2 : k == 1 ? 4 : pick[k % 3];
		switch ((r >> 12) % 8) {
		case 0: /* a block of the region, maybe unaligned */
			addr = ADDR + (r >> 16) % (REGION / BLOCK + 2) * BLOCK +
			       ((r >> 24) & 1) * 4096;
			break;
		case 1: /* around the start, wrapping */
			addr = ADDR - ((r >> 16) % 4) * BLOCK;
			break;
		case 2:
			addr = UINT64_MAX - ((r >> 16) % 4) * BLOCK + 1;
			break;
		default: /* mostly valid */
			addr = ADDR + (r >> 16) % (REGION / BLOCK) * BLOCK;
		}
		nb = (r >> 32) % 7 == 0 ? (uint16_t)(r >> 40) : (uint16_t)((r >> 40) % 5);
		/* the model */
		ok = nb && addr >= ADDR && addr % BLOCK == 0 && addr - ADDR < usable &&
		     nb <= (usable - (addr - ADDR)) / BLOCK;
		if (ok)
			first = (addr - ADDR) / BLOCK;
		{
			uint64_t c = 0;

			for (uint64_t b = first; ok && b < first + nb; b++)
				c += model[b];
			switch (type) {
			case 0:
				want = !ok || c				  ? SQB_VIO_VMEM_RESP_ERROR
				       : plugged + nb * BLOCK > requested ? SQB_VIO_VMEM_RESP_NACK
									  : SQB_VIO_VMEM_RESP_ACK;
				if (want == SQB_VIO_VMEM_RESP_ACK) {
					for (uint64_t b = first; b < first + nb; b++)
						model[b] = true;
					plugged += nb * BLOCK;
				}
				break;
			case 1:
				want =
				    ok && c == nb ? SQB_VIO_VMEM_RESP_ACK : SQB_VIO_VMEM_RESP_ERROR;
				if (want == SQB_VIO_VMEM_RESP_ACK) {
					for (uint64_t b = first; b < first + nb; b++)
						model[b] = false;
					plugged -= nb * BLOCK;
				}
				break;
			case 2:
				want = SQB_VIO_VMEM_RESP_ACK;
				memset(model, 0, sizeof(model));
				plugged = usable = 0;
				break;
			case 3:
				want = ok ? SQB_VIO_VMEM_RESP_ACK : SQB_VIO_VMEM_RESP_ERROR;
				want_st = !ok	    ? 0
					  : c == nb ? SQB_VIO_VMEM_STATE_PLUGGED
					  : c == 0  ? SQB_VIO_VMEM_STATE_UNPLUGGED
						    : SQB_VIO_VMEM_STATE_MIXED;
				break;
			default:
				want = SQB_VIO_VMEM_RESP_ERROR;
			}
		}
		ndisc = t->discards;
		got = req(t, type, addr, nb, &st);
		if (got != want || (type == 3 && st != want_st))
			fail_msg(
			    "request %d: type %u addr 0x%llx nb %u: answer %u state %u, want %u "
			    "state %u",
			    i, type, (unsigned long long)addr, nb, got, st, want, want_st);
		assert_int_equal(status(t).plugged, plugged);
		assert_int_equal(status(t).usable, usable);
		assert_int_equal(status(t).requested, requested);
		for (unsigned int b = 0; b < REGION / BLOCK; b++) {
			assert_int_equal(!!(t->blk_on >> b & 1), model[b]);
			if (model[b] && t->discards != ndisc && t->disc_off <= b * BLOCK &&
			    b * BLOCK < t->disc_off + t->disc_len)
				fail_msg("request %d discarded plugged block %u", i, b);
		}
		for (unsigned int sl = 0; sl < NSLOTS; sl++) {
			bool any = false;

			for (unsigned int b = sl * (SLOT / BLOCK); b < (sl + 1) * (SLOT / BLOCK);
			     b++)
				any = any || model[b];
			assert_int_equal(t->slot_on[sl], any);
		}
	}
	done(t);
}

static void hostile_ranges(void **state)
{
	struct mt *t = mk();
	struct sqb_vio_vmem_counters n;

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 8 * MIB), 0); /* usable 8 MiB */
	for (uint16_t type = 0; type < 4; type++) {
		if (type == 2)
			continue;
		/* unaligned, empty, below, at the usable end, past it, overflowing */
		assert_int_equal(req(t, type, ADDR + 4096, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, ADDR, 0, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, ADDR - BLOCK, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, ADDR + 8 * MIB, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, ADDR + 6 * MIB, 2, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, ADDR, 0xffff, NULL), SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, UINT64_MAX - BLOCK + 1, 2, NULL),
				 SQB_VIO_VMEM_RESP_ERROR);
		assert_int_equal(req(t, type, 0, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	}
	/* unknown request types */
	assert_int_equal(req(t, 4, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(req(t, 0xffff, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(status(t).plugged, 0);
	assert_int_equal(t->slot_calls, 0);
	assert_int_equal(t->discards, 0);
	assert_int_equal(sqb_vio_vmem_counters(t->dev, &n), 0);
	assert_int_equal(n.plug_fails, 8);
	assert_int_equal(n.state_fails, 8);
	done(t);
}

static void hostile_chains(void **state)
{
	struct mt *t = mk();
	uint32_t len;

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 8 * MIB), 0);
	/* request too short, response too short, no response, response
	 * read-only, only a writable segment: used length 0, nothing written */
	const struct vt_seg bad[][2] = {
	    {{REQ, 23, false}, {RESP, 10, true}}, {{REQ, 24, false}, {RESP, 9, true}},
	    {{REQ, 24, false}, {RESP, 10, false}}, {{RESP, 10, true}, {RESP + 16, 10, true}},
	};
	for (unsigned int i = 0; i < 4; i++) {
		put_req(t, 0, ADDR, 1);
		assert_int_equal(submit(t, bad[i], 2, &len, NULL), 0xeeee);
		assert_int_equal(len, 0);
	}
	{
		struct vt_seg one = {REQ, 24, false};
		put_req(t, 0, ADDR, 1);
		assert_int_equal(submit(t, &one, 1, &len, NULL), 0xeeee);
		assert_int_equal(len, 0);
	}
	assert_int_equal(status(t).plugged, 0);
	/* the request and the response split across descriptors: accepted */
	{
		struct vt_seg split[4] = {{REQ, 10, false}, {REQ + 10, 14, false},
					  {RESP, 4, true}, {RESP + 4, 6, true}};
		put_req(t, 0, ADDR, 1);
		assert_int_equal(submit(t, split, 4, &len, NULL), SQB_VIO_VMEM_RESP_ACK);
		assert_int_equal(len, 10);
	}
	assert_int_equal(status(t).plugged, BLOCK);
	/* the device still works */
	assert_int_equal(req(t, 1, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ACK);
	assert_false(sqb_vio_status(t->dev) & SQB_VIO_S_NEEDS_RESET);
	done(t);
}

static void slot_map_failure(void **state)
{
	struct mt *t = mk();
	uint16_t st;

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 8 * MIB), 0);
	t->fail_map = 1;
	assert_int_equal(req(t, 0, ADDR, 2, NULL), SQB_VIO_VMEM_RESP_ERROR);
	assert_int_equal(status(t).plugged, 0);
	t->fail_map = 0;
	assert_int_equal(req(t, 3, ADDR, 2, &st), SQB_VIO_VMEM_RESP_ACK);
	assert_int_equal(st, SQB_VIO_VMEM_STATE_UNPLUGGED);
	assert_int_equal(req(t, 0, ADDR, 2, NULL), SQB_VIO_VMEM_RESP_ACK);
	done(t);
}

static void bad_options(void **state)
{
	struct vt_env e;
	sqb_vio_dev *dev;
	const struct sqb_vio_vmem_opts o[] = {
	    {SQB_VIO_OPTS_VERSION, ADDR, REGION, 3 * MIB, SLOT, {0}},	       /* not 2^n */
	    {SQB_VIO_OPTS_VERSION, ADDR, REGION, BLOCK, 3 * MIB, {0}},	       /* slot % block */
	    {SQB_VIO_OPTS_VERSION, ADDR, REGION + BLOCK, BLOCK, SLOT, {0}},    /* region % slot */
	    {SQB_VIO_OPTS_VERSION, ADDR + 4096, REGION, BLOCK, SLOT, {0}},     /* addr % block */
	    {SQB_VIO_OPTS_VERSION, UINT64_MAX - BLOCK + 1, REGION, BLOCK, SLOT, {0}}, /* wraps */
	    {SQB_VIO_OPTS_VERSION, ADDR, 0, BLOCK, SLOT, {0}},
	    {SQB_VIO_OPTS_VERSION, 0, 1ull << 42, 4096, 4096, {0}}, /* too many blocks */
	    {0, ADDR, REGION, BLOCK, SLOT, {0}},
	};

	(void)state;
	vt_env_init(&e);
	for (unsigned int i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		assert_int_equal(sqb_vio_vmem_new(&dev, &e.host, &o[i]), -EINVAL);
	assert_int_equal(sqb_vio_vmem_set_requested(NULL, 0), -EINVAL);
	vt_env_fini(&e);
}

static void state_round_trip(void **state)
{
	struct mt *t = mk(), *u = mk();
	struct sqb_diag d = {0};
	uint8_t *st = NULL;
	size_t n = 0;

	(void)state;
	up(t);
	assert_int_equal(sqb_vio_vmem_set_requested(t->dev, 10 * MIB), 0);
	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &n), 0);
	/* [F-100]: 56 + 40 + (48 + 8) + 128 */
	assert_int_equal(n, 56 + 40 + 56 + 128);
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, st, n, &d), 0);
	assert_int_equal(status(u).requested, 10 * MIB);
	assert_int_equal(status(u).usable, 16 * MIB);
	assert_int_equal(cfg64(u, 48), 10 * MIB);
	/* a PLUG works on the restored device */
	u->d = t->d;
	u->d.dev = u->dev;
	u->d.e = &u->e;
	memcpy(vt_ptr(&u->e, 0), vt_ptr(&t->e, 0), VT_R0_SIZE);
	assert_int_equal(req(u, 0, ADDR, 1, NULL), SQB_VIO_VMEM_RESP_ACK);

	/* invariants and bounds */
	{
		uint8_t *bad = malloc(n);
		size_t dev_rec = 56 + 40;

		assert_non_null(bad);
		memcpy(bad, st, n);
		bad[dev_rec + 16] ^= 1; /* block_size */
		assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_EMISMATCH);
		memcpy(bad, st, n);
		bad[dev_rec + 32] = 1; /* usable not a slot multiple */
		assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ECORRUPT);
		memcpy(bad, st, n);
		bad[dev_rec + 47] = 1; /* requested far above the region */
		assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ECORRUPT);
		memcpy(bad, st, n);
		bad[dev_rec + 48 + 2] = 1; /* block 16 of 16: past the last */
		assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ERESERVED);
		assert_int_equal(sqb_vio_dev_restore(u->dev, 1, st, n - 1, &d), -SQB_ETRUNCATED);
		/* the failed loads left u as it was */
		assert_int_equal(status(u).plugged, BLOCK);
		/* plugged blocks load: their slots are mapped, the backing told */
		struct mt *v = mk();

		memcpy(bad, st, n);
		bad[dev_rec + 48] = 0x01;     /* block 0: slot 0 */
		bad[dev_rec + 48 + 1] = 0x80; /* block 15: slot 3 */
		assert_int_equal(sqb_vio_dev_restore(v->dev, 1, bad, n, &d), 0);
		assert_int_equal(status(v).plugged, 2 * BLOCK);
		assert_true(v->slot_on[0] && !v->slot_on[1] && !v->slot_on[2] && v->slot_on[3]);
		assert_int_equal(v->blk_on, 1ull | 1ull << 15);
		/* a slot that cannot be mapped fails the load */
		v->fail_map = 1;
		v->slot_on[3] = 0;
		assert_int_equal(sqb_vio_dev_restore(v->dev, 1, bad, n, &d), -ENOMEM);
		assert_non_null(strstr(d.reason, "cannot map hotplug slot"));
		done(v);
		free(bad);
	}
	free(st);
	done(t);
	done(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_space_and_features),
	    cmocka_unit_test(unplugged_inaccessible_is_required),
	    cmocka_unit_test(requested_size),
	    cmocka_unit_test(plug_unplug_state),
	    cmocka_unit_test(unplug_all),
	    cmocka_unit_test(unplug_all_discards_only_plugged),
	    cmocka_unit_test(hostile_ranges),
	    cmocka_unit_test(random_requests_match_model),
	    cmocka_unit_test(hostile_chains),
	    cmocka_unit_test(slot_map_failure),
	    cmocka_unit_test(bad_options),
	    cmocka_unit_test(state_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
