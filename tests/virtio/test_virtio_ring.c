/* Split virtqueue walker against hostile rings (loops, out-of-range indices
 * and addresses, region crossing, zero and huge lengths, wrapping addresses,
 * avail idx jumps, indirect and misordered descriptors): each must put the
 * device in DEVICE_NEEDS_RESET with a config interrupt and touch nothing.
 * Also: 16-bit index wrap-around and EVENT_IDX suppression (virtio 1.x 2.7.7,
 * 2.7.10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vio_test_util.h"

#define NUM	   8
#define F_NEXT	   1
#define F_WRITE	   2
#define F_INDIRECT 4
#define ALL_OK	   0xf

struct fx {
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev;
	int fd;
};

static struct fx *fx_new(uint64_t want)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;

	vt_env_init(&f->e);
	f->fd = vt_tempfile(1 << 20);
	o.fd = f->fd;
	assert_int_equal(sqb_vio_blk_new(&f->dev, &f->e.host, &o, NULL), 0);
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, NUM, want), ALL_OK);
	return f;
}

static void fx_free(struct fx *f)
{
	sqb_vio_dev_free(f->dev);
	close(f->fd);
	vt_env_fini(&f->e);
	free(f);
}

static void avail(struct fx *f, uint16_t head)
{
	vt_put16(&f->e, VT_AVAIL + 4 + 2ull * (f->d.avail_idx % NUM), head);
	f->d.avail_idx++;
	vt_put16(&f->e, VT_AVAIL + 2, f->d.avail_idx);
}

/* A valid IN header at VT_HDR for the hostile chains to start with. */
static void hdr(struct fx *f)
{
	memset(vt_ptr(&f->e, VT_HDR), 0, 16);
}

static void h_self_loop(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 0);
	avail(f, 0);
}

static void h_two_loop(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 1);
	vt_put_desc(&f->e, 1, VT_DATA, 512, F_NEXT, 0);
	avail(f, 0);
}

static void h_longer_than_queue(struct fx *f)
{
	for (uint16_t i = 0; i < NUM; i++)
		vt_put_desc(&f->e, i, VT_DATA + 512ull * i, 512, F_NEXT, (uint16_t)((i + 1) % NUM));
	avail(f, 3);
}

static void h_next_out_of_range(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, NUM);
	avail(f, 0);
}

static void h_next_huge(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 0xffff);
	avail(f, 0);
}

static void h_head_out_of_range(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, 0, 0);
	avail(f, NUM);
}

static void h_avail_jump(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, 0, 0);
	avail(f, 0);
	vt_put16(&f->e, VT_AVAIL + 2, NUM + 1);
}

static void h_avail_backwards(struct fx *f)
{
	vt_put16(&f->e, VT_AVAIL + 2, 0xffff);
}

static void h_addr_outside(struct fx *f)
{
	vt_put_desc(&f->e, 0, 0x50000000ull, 16, 0, 0);
	avail(f, 0);
}

static void h_addr_between_regions(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_R0_SIZE + 0x1000, 16, 0, 0);
	avail(f, 0);
}

static void h_crosses_regions(struct fx *f)
{
	/* Region 0 ends at 1 MiB; the buffer runs 8 bytes past it. */
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 1);
	vt_put_desc(&f->e, 1, VT_R0_SIZE - 504, 512, F_NEXT | F_WRITE, 2);
	vt_put_desc(&f->e, 2, VT_STAT, 1, F_WRITE, 0);
	avail(f, 0);
}

static void h_huge_len(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 1);
	vt_put_desc(&f->e, 1, VT_DATA, 0xffffffffu, F_NEXT | F_WRITE, 2);
	vt_put_desc(&f->e, 2, VT_STAT, 1, F_WRITE, 0);
	avail(f, 0);
}

static void h_addr_wraps(struct fx *f)
{
	vt_put_desc(&f->e, 0, 0xfffffffffffffff0ull, 0x20, 0, 0);
	avail(f, 0);
}

static void h_indirect(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_DATA, 32, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_readable_after_writable(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_STAT, 1, F_NEXT | F_WRITE, 1);
	vt_put_desc(&f->e, 1, VT_HDR, 16, 0, 0);
	avail(f, 0);
}

/* A good request queued first must complete; the bad one after it must not. */
static void h_good_then_loop(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_HDR, 16, F_NEXT, 1);
	vt_put_desc(&f->e, 1, VT_STAT, 1, F_WRITE, 0);
	avail(f, 0);
	vt_put_desc(&f->e, 2, VT_HDR, 16, F_NEXT, 2);
	avail(f, 2);
}

/* ---- indirect tables (negotiated): table at VT_IND ---------------------- */
#define VT_IND 0x6000ull

static void put_ind(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next)
{
	uint8_t *d = vt_ptr(&f->e, VT_IND + 16ull * i);

	for (int k = 0; k < 8; k++)
		d[k] = (uint8_t)(addr >> (8 * k));
	for (int k = 0; k < 4; k++)
		d[8 + k] = (uint8_t)(len >> (8 * k));
	d[12] = (uint8_t)flags;
	d[13] = (uint8_t)(flags >> 8);
	d[14] = (uint8_t)next;
	d[15] = (uint8_t)(next >> 8);
}

static void h_ind_nested(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, F_NEXT, 1);
	put_ind(f, 1, VT_IND + 0x100, 32, F_INDIRECT, 0);
	vt_put_desc(&f->e, 0, VT_IND, 32, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_with_next(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, 0, 0);
	vt_put_desc(&f->e, 0, VT_IND, 16, F_INDIRECT | F_NEXT, 1);
	vt_put_desc(&f->e, 1, VT_STAT, 1, F_WRITE, 0);
	avail(f, 0);
}

static void h_ind_len_40(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, 0, 0);
	vt_put_desc(&f->e, 0, VT_IND, 40, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_len_0(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_IND, 0, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_outside(struct fx *f)
{
	vt_put_desc(&f->e, 0, VT_R0_SIZE - 16, 32, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_loop(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, F_NEXT, 1);
	put_ind(f, 1, VT_HDR, 16, F_NEXT, 0);
	vt_put_desc(&f->e, 0, VT_IND, 32, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_next_past_table(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, F_NEXT, 2); /* the table has 2 entries */
	put_ind(f, 1, VT_STAT, 1, F_WRITE, 0);
	put_ind(f, 2, VT_STAT, 1, F_WRITE, 0);
	vt_put_desc(&f->e, 0, VT_IND, 32, F_INDIRECT, 0);
	avail(f, 0);
}

/* A 16-entry table: a chain longer than the queue (8) without a loop. */
static void h_ind_longer_than_queue(struct fx *f)
{
	for (uint16_t i = 0; i < 16; i++)
		put_ind(f, i, VT_HDR, 16, i < 15 ? F_NEXT : 0, (uint16_t)(i + 1));
	vt_put_desc(&f->e, 0, VT_IND, 256, F_INDIRECT, 0);
	avail(f, 0);
}

static void h_ind_buffer_outside(struct fx *f)
{
	put_ind(f, 0, VT_HDR, 16, F_NEXT, 1);
	put_ind(f, 1, 0x7fff0000ull, 512, F_WRITE, 0);
	vt_put_desc(&f->e, 0, VT_IND, 32, F_INDIRECT, 0);
	avail(f, 0);
}

static const struct {
	const char *name;
	void (*craft)(struct fx *f);
	uint16_t good;	 /* used entries expected before the bad chain */
	const char *why; /* in sqb_vio_reset_reason() */
	bool ind;	 /* negotiate VIRTIO_F_RING_INDIRECT_DESC */
} hostile[] = {
    {"self loop", h_self_loop, 0, "loop"},
    {"two-descriptor loop", h_two_loop, 0, "loop"},
    {"chain longer than the queue", h_longer_than_queue, 0, "loop"},
    {"next == num", h_next_out_of_range, 0, "next index"},
    {"next == 0xffff", h_next_huge, 0, "next index"},
    {"head >= num", h_head_out_of_range, 0, "head index"},
    {"avail idx jumps by num+1", h_avail_jump, 0, "avail idx"},
    {"avail idx moves backwards", h_avail_backwards, 0, "avail idx"},
    {"address outside RAM", h_addr_outside, 0, "outside guest RAM"},
    {"address in the hole between regions", h_addr_between_regions, 0, "outside guest RAM"},
    {"buffer crosses a region end", h_crosses_regions, 0, "outside guest RAM"},
    {"length 0xffffffff", h_huge_len, 0, "outside guest RAM"},
    {"address + length wraps", h_addr_wraps, 0, "wraps"},
    {"indirect descriptor (not offered)", h_indirect, 0, "indirect"},
    {"readable after writable", h_readable_after_writable, 0, "after a device-writable"},
    {"good request, then a loop", h_good_then_loop, 1, "loop"},
    {"indirect inside an indirect table", h_ind_nested, 0, "inside an indirect", true},
    {"indirect with NEXT", h_ind_with_next, 0, "with NEXT", true},
    {"indirect table of 40 bytes", h_ind_len_40, 0, "multiple of 16", true},
    {"indirect table of 0 bytes", h_ind_len_0, 0, "multiple of 16", true},
    {"indirect table crosses the end of RAM", h_ind_outside, 0, "indirect table outside", true},
    {"loop inside an indirect table", h_ind_loop, 0, "loop", true},
    {"next past the indirect table", h_ind_next_past_table, 0, "next index", true},
    {"indirect chain longer than the queue", h_ind_longer_than_queue, 0, "loop", true},
    {"indirect buffer outside RAM", h_ind_buffer_outside, 0, "outside guest RAM", true},
};

static void test_hostile_rings_need_reset(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		uint64_t want = hostile[i].ind ? 1ull << 28 : 0;
		struct fx *f = fx_new(want);
		uint8_t guard[VT_R0_SIZE / 16];
		uint32_t id, len;
		unsigned int irqs;

		print_message("hostile: %s\n", hostile[i].name);
		hdr(f);
		*vt_ptr(&f->e, VT_STAT) = 0xee;
		hostile[i].craft(f);
		memcpy(guard, vt_ptr(&f->e, VT_DATA), sizeof(guard));
		irqs = f->e.irqs;
		sqb_vio_queue_notify(f->dev, 0);
		assert_true(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
		assert_true(vt_r32(f->dev, 0x60) & SQB_VIO_INT_CONFIG);
		assert_true(f->e.irqs > irqs);
		assert_int_equal(vt_get16(&f->e, VT_USED + 2), hostile[i].good);
		assert_non_null(sqb_vio_reset_reason(f->dev));
		print_message("  -> %s\n", sqb_vio_reset_reason(f->dev));
		assert_non_null(strstr(sqb_vio_reset_reason(f->dev), hostile[i].why));
		for (uint16_t g = 0; g < hostile[i].good; g++)
			assert_true(vt_used(&f->d, &id, &len));
		/* No device write landed in the data area. */
		assert_memory_equal(guard, vt_ptr(&f->e, VT_DATA), sizeof(guard));
		/* Stopped until reset: another notify does nothing. */
		irqs = f->e.irqs;
		sqb_vio_queue_notify(f->dev, 0);
		sqb_vio_dev_poll(f->dev);
		assert_int_equal(f->e.irqs, irqs);
		/* Reset and a fresh driver: works again. */
		assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, NUM, want), ALL_OK);
		assert_null(sqb_vio_reset_reason(f->dev));
		assert_int_equal(vt_blk(&f->d, 0, 0, 512, true, NULL), 0);
		fx_free(f);
	}
}

/* 2.7.5.3: a chain may continue in an indirect table, alone or after
 * direct descriptors; the WRITE flag of the indirect descriptor is ignored. */
static void test_indirect_chains(void **state)
{
	struct fx *f = fx_new(1ull << 28);
	uint8_t *data = vt_ptr(&f->e, VT_DATA), buf[1024];
	uint32_t id, len;
	(void)state;

	vt_w32(f->dev, 0x14, 0);
	assert_true(vt_r32(f->dev, 0x10) & (1u << 28));
	/* OUT of 1024 bytes in two pieces, all in the table. */
	hdr(f);
	vt_ptr(&f->e, VT_HDR)[0] = 1;
	vt_ptr(&f->e, VT_HDR)[8] = 2;
	for (int i = 0; i < 1024; i++)
		data[i] = (uint8_t)(i * 5 + 1);
	put_ind(f, 0, VT_HDR, 16, F_NEXT, 1);
	put_ind(f, 1, VT_DATA, 300, F_NEXT, 2);
	put_ind(f, 2, VT_DATA + 300, 724, F_NEXT, 3);
	put_ind(f, 3, VT_STAT, 1, F_WRITE, 0);
	vt_put_desc(&f->e, 0, VT_IND, 64, F_INDIRECT | F_WRITE, 0);
	avail(f, 0);
	sqb_vio_queue_notify(f->dev, 0);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0);
	assert_int_equal(pread(f->fd, buf, 1024, 2 * 512), 1024);
	assert_memory_equal(buf, data, 1024);
	/* IN: header direct, data + status in a table reached from desc 1. */
	vt_ptr(&f->e, VT_HDR)[0] = 0;
	memset(vt_ptr(&f->e, 0x30000), 0, 1024);
	put_ind(f, 0, 0x30000, 1024, F_WRITE | F_NEXT, 1);
	put_ind(f, 1, VT_STAT, 1, F_WRITE, 0);
	vt_put_desc(&f->e, 2, VT_HDR, 16, F_NEXT, 3);
	vt_put_desc(&f->e, 3, VT_IND, 32, F_INDIRECT, 0);
	*vt_ptr(&f->e, VT_STAT) = 0xee;
	avail(f, 2);
	sqb_vio_queue_notify(f->dev, 0);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(id, 2);
	assert_int_equal(len, 1025);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0);
	assert_memory_equal(vt_ptr(&f->e, 0x30000), data, 1024);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
}

/* Zero-length descriptors are not an error by themselves. */
static void test_zero_length_descriptors(void **state)
{
	struct fx *f = fx_new(0);
	uint32_t id, len;
	(void)state;

	hdr(f);
	vt_add(&f->d,
	       (struct vt_seg[]){{VT_HDR, 16, false}, {VT_DATA, 0, true}, {VT_STAT, 1, true}}, 3);
	sqb_vio_queue_notify(f->dev, 0);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(len, 1);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0);
	/* Zero-length status: nothing writable, completed with length 0. */
	vt_add(&f->d, (struct vt_seg[]){{VT_HDR, 16, false}, {0x50000000, 0, true}}, 2);
	sqb_vio_queue_notify(f->dev, 0);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(len, 0);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
}

/* 16-bit ring indices wrap (2.7.6: idx "wraps naturally at 65536"). */
static void test_indices_wrap(void **state)
{
	struct fx *f = fx_new(0);
	(void)state;

	for (unsigned int i = 0; i < 65536 + 2 * NUM + 3; i++) {
		uint32_t used = 0;
		if (vt_blk(&f->d, 4 /* FLUSH */, 0, 0, false, &used) != 0 || used != 1)
			fail_msg("request %u failed", i);
	}
	assert_int_equal(vt_get16(&f->e, VT_USED + 2), (uint16_t)(65536 + 2 * NUM + 3));
	/* Several chains across the wrap point in one notify. */
	for (int k = 0; k < 5; k++)
		vt_add(&f->d, (struct vt_seg[]){{VT_HDR, 16, false}, {VT_STAT, 1, true}}, 2);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(vt_get16(&f->e, VT_USED + 2), (uint16_t)(65536 + 2 * NUM + 8));
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
}

/* 2.7.10: with EVENT_IDX the device interrupts only when used idx passes
 * used_event (vring_need_event), and publishes avail_event. */
static void test_event_idx_suppression(void **state)
{
	struct fx *f = fx_new(1ull << 29);
	uint16_t u;
	unsigned int irqs;
	uint32_t id, len;
	(void)state;

	assert_true(f->d.event_idx);
	irqs = f->e.irqs;
	assert_int_equal(vt_blk(&f->d, 4, 0, 0, false, NULL), 0); /* first: always */
	assert_int_equal(f->e.irqs, irqs + 1);
	/* The device asks to be notified at the next avail entry. */
	assert_int_equal(vt_get16(&f->e, VT_USED + 4 + 8 * NUM), 1);
	/* used_event = current used idx + 1: no interrupt for the next
	 * completion (idx becomes used_event), one for the one after. */
	u = vt_get16(&f->e, VT_USED + 2);
	f->d.event_idx = false; /* keep vt_used() from moving used_event */
	vt_put16(&f->e, VT_AVAIL + 4 + 2 * NUM, (uint16_t)(u + 1));
	irqs = f->e.irqs;
	vt_blk(&f->d, 4, 0, 0, false, NULL);
	assert_int_equal(f->e.irqs, irqs);
	vt_blk(&f->d, 4, 0, 0, false, NULL);
	assert_int_equal(f->e.irqs, irqs + 1);
	/* Far-away used_event: three completions, no interrupt. */
	vt_put16(&f->e, VT_AVAIL + 4 + 2 * NUM, (uint16_t)(u + 1000));
	irqs = f->e.irqs;
	for (int k = 0; k < 3; k++)
		vt_blk(&f->d, 4, 0, 0, false, NULL);
	assert_int_equal(f->e.irqs, irqs);
	/* A batch of three in one notify with used_event inside it: one. */
	u = vt_get16(&f->e, VT_USED + 2);
	vt_put16(&f->e, VT_AVAIL + 4 + 2 * NUM, u);
	for (int k = 0; k < 3; k++)
		vt_add(&f->d, (struct vt_seg[]){{VT_HDR, 16, false}, {VT_STAT, 1, true}}, 2);
	sqb_vio_queue_notify(f->dev, 0);
	while (vt_used(&f->d, &id, &len))
		;
	assert_int_equal(f->e.irqs, irqs + 1);
	assert_int_equal(vt_get16(&f->e, VT_USED + 4 + 8 * NUM), f->d.avail_idx);
	fx_free(f);
}

/* Without EVENT_IDX, avail flags VIRTQ_AVAIL_F_NO_INTERRUPT suppresses. */
static void test_no_interrupt_flag(void **state)
{
	struct fx *f = fx_new(0);
	unsigned int irqs;
	(void)state;

	assert_false(f->d.event_idx);
	vt_put16(&f->e, VT_AVAIL, 1);
	irqs = f->e.irqs;
	vt_blk(&f->d, 4, 0, 0, false, NULL);
	assert_int_equal(f->e.irqs, irqs);
	vt_put16(&f->e, VT_AVAIL, 0);
	vt_blk(&f->d, 4, 0, 0, false, NULL);
	assert_int_equal(f->e.irqs, irqs + 1);
	fx_free(f);
}

/* Queue registers cannot change under a ready queue. */
static void test_ready_queue_is_locked(void **state)
{
	struct fx *f = fx_new(0);
	(void)state;

	vt_w32(f->dev, 0x38, 4);
	vt_w32(f->dev, 0x80, 0x50000000);
	assert_int_equal(vt_blk(&f->d, 0, 0, 512, true, NULL), 0);
	vt_w32(f->dev, 0x20, 0); /* features after FEATURES_OK: ignored */
	assert_int_equal(vt_blk(&f->d, 0, 0, 512, true, NULL), 0);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostile_rings_need_reset),
	    cmocka_unit_test(test_indirect_chains),
	    cmocka_unit_test(test_zero_length_descriptors),
	    cmocka_unit_test(test_indices_wrap),
	    cmocka_unit_test(test_event_idx_suppression),
	    cmocka_unit_test(test_no_interrupt_flag),
	    cmocka_unit_test(test_ready_queue_is_locked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
