/* virtio-balloon (runtime/virtio/virtio_balloon.c) driven as a guest driver
 * would, with a recording discard(): feature bits and queue layout as
 * Firecracker offers them, inflate/deflate/statistics/hinting/reporting,
 * hostile PFN lists and buffers, and the [F-120] state record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vio_test_mq.h"

#define BUF   0x50000ull  /* driver buffers (PFN lists, stats, cmd ids) */
#define RANGE 0x200000ull /* region 1: ranges hinted / reported */
#define NDISC 64

struct rec {
	uint64_t gpa[NDISC], len[NDISC];
	unsigned int n, refused;
};

struct bt {
	struct vt_env e;
	struct mq_drv d;
	struct rec rec;
	sqb_vio_dev *dev;
};

/* Guest RAM of the test kit is [0, 1 MiB) and [2 MiB, 3 MiB). */
static int rec_discard(void *opaque, uint64_t gpa, uint64_t len)
{
	struct rec *r = opaque;
	int in0 = gpa + len <= VT_R0_SIZE && gpa + len > gpa;
	int in1 = gpa >= VT_R1_BASE && gpa + len <= VT_R1_BASE + VT_R1_SIZE && gpa + len > gpa;

	if (!in0 && !in1) {
		r->refused++;
		return -EFAULT;
	}
	if (r->n < NDISC) {
		r->gpa[r->n] = gpa;
		r->len[r->n] = len;
	}
	r->n++;
	return 0;
}

static struct bt *mk(uint32_t amount, uint16_t interval, int hint, int report, int deflate)
{
	struct bt *t = calloc(1, sizeof(*t));
	struct sqb_vio_balloon_opts o = SQB_VIO_BALLOON_OPTS_INIT;

	assert_non_null(t);
	vt_env_init(&t->e);
	o.amount_mib = amount;
	o.stats_polling_interval_s = interval;
	o.free_page_hinting = hint;
	o.free_page_reporting = report;
	o.deflate_on_oom = deflate;
	o.guest_mib = 2; /* the kit's two 1 MiB regions */
	o.discard = (struct sqb_vio_discard){&t->rec, rec_discard};
	assert_int_equal(sqb_vio_balloon_new(&t->dev, &o, &t->e.host, NULL), 0);
	return t;
}

static uint32_t up(struct bt *t)
{
	return mq_init(&t->d, &t->e, t->dev, sqb_vio_num_queues(t->dev), 16, ~0ull);
}

static void done(struct bt *t)
{
	sqb_vio_dev_free(t->dev);
	vt_env_fini(&t->e);
	free(t);
}

static uint64_t features(sqb_vio_dev *dev)
{
	uint64_t lo, hi;

	vt_w32(dev, 0x14, 0);
	lo = vt_r32(dev, 0x10);
	vt_w32(dev, 0x14, 1);
	hi = vt_r32(dev, 0x10);
	return lo | hi << 32;
}

static uint32_t cfg32(sqb_vio_dev *dev, uint32_t off)
{
	return vt_r32(dev, 0x100 + off);
}

/* A PFN list on queue qi; returns whether the device used it. */
static int pfns(struct bt *t, unsigned int qi, const uint32_t *pfn, unsigned int n)
{
	struct vt_seg s = {BUF, 4 * n, false};
	uint32_t id, len;

	for (unsigned int i = 0; i < n; i++)
		mq_put32(&t->e, BUF + 4 * i, pfn[i]);
	mq_add(&t->d, qi, &s, 1);
	sqb_vio_queue_notify(t->dev, qi);
	return mq_used(&t->d, qi, &id, &len);
}

static void test_features_and_queues(void **state)
{
	struct bt *t = mk(0, 0, 0, 0, 0);
	uint64_t f = features(t->dev);

	(void)state;
	assert_int_equal(sqb_vio_device_id(t->dev), SQB_VIO_ID_BALLOON);
	assert_int_equal(sqb_vio_num_queues(t->dev), 2);
	assert_int_equal(f & 0xff, 0);
	assert_true(f >> SQB_VIO_F_VERSION_1 & 1);
	done(t);

	t = mk(1, 5, 1, 1, 1);
	f = features(t->dev);
	/* virtio 1.x 5.5.3: STATS_VQ 1, DEFLATE_ON_OOM 2, FREE_PAGE_HINT 3,
	 * PAGE_REPORTING 5 */
	assert_int_equal(f & 0xff, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 5));
	assert_int_equal(sqb_vio_num_queues(t->dev), 5);
	done(t);

	/* reporting without stats or hinting is queue 2 */
	t = mk(0, 0, 0, 1, 0);
	assert_int_equal(sqb_vio_num_queues(t->dev), 3);
	done(t);
}

static void test_create_refuses_too_large(void **state)
{
	struct sqb_vio_balloon_opts o = SQB_VIO_BALLOON_OPTS_INIT;
	struct vt_env e;
	sqb_vio_dev *dev = NULL;

	(void)state;
	vt_env_init(&e);
	o.guest_mib = 2;
	o.amount_mib = 3;
	assert_int_equal(sqb_vio_balloon_new(&dev, &o, &e.host, NULL), -EINVAL);
	assert_null(dev);
	o.version = 99;
	o.amount_mib = 0;
	assert_int_equal(sqb_vio_balloon_new(&dev, &o, &e.host, NULL), -EINVAL);
	vt_env_fini(&e);
}

static void test_config_space(void **state)
{
	struct bt *t = mk(1, 0, 0, 0, 0);

	(void)state;
	assert_int_equal(up(t) & SQB_VIO_S_DRIVER_OK, SQB_VIO_S_DRIVER_OK);
	assert_int_equal(cfg32(t->dev, 0), 256); /* num_pages: 1 MiB of 4 KiB pages */
	assert_int_equal(cfg32(t->dev, 4), 0);
	/* the driver owns `actual` only */
	vt_w32(t->dev, 0x104, 77);
	vt_w32(t->dev, 0x100, 5);
	vt_w32(t->dev, 0x108, 9);
	assert_int_equal(cfg32(t->dev, 4), 77);
	assert_int_equal(cfg32(t->dev, 0), 256);
	assert_int_equal(cfg32(t->dev, 8), SQB_VIO_BALLOON_HINT_STOP);
	/* past the 12 bytes: reads zero, writes vanish */
	vt_w32(t->dev, 0x10c, 0xffffffff);
	assert_int_equal(cfg32(t->dev, 12), 0);
	/* a reset forgets `actual` (Firecracker's _reset) but keeps the target */
	vt_w32(t->dev, 0x70, 0);
	assert_int_equal(cfg32(t->dev, 4), 0);
	assert_int_equal(cfg32(t->dev, 0), 256);
	done(t);
}

static void test_set_target(void **state)
{
	struct bt *t = mk(0, 0, 0, 0, 0);
	unsigned int irqs;

	(void)state;
	/* DeviceNotActive before the driver is up */
	assert_int_equal(sqb_vio_balloon_set_target(t->dev, 1), -EAGAIN);
	up(t);
	irqs = t->e.irqs;
	assert_int_equal(sqb_vio_balloon_set_target(t->dev, 1), 0);
	assert_int_equal(cfg32(t->dev, 0), 256);
	assert_true(t->e.irqs > irqs);
	assert_true(vt_r32(t->dev, 0x60) & SQB_VIO_INT_CONFIG);
	assert_int_equal(sqb_vio_balloon_target_mib(t->dev), 1);
	assert_int_equal(sqb_vio_balloon_set_target(t->dev, 3), -EINVAL);
	/* test_api.py's u32::MAX / 128: above guest memory first */
	assert_int_equal(sqb_vio_balloon_set_target(t->dev, 33554432), -EINVAL);
	assert_int_equal(cfg32(t->dev, 0), 256);
	done(t);
}

static void test_inflate_discards_runs(void **state)
{
	struct bt *t = mk(1, 0, 0, 0, 0);
	const uint32_t list[] = {0x12, 0x10, 0x211, 0x11, 0x11, 0x210};
	struct sqb_vio_balloon_counters n;

	(void)state;
	up(t);
	assert_true(pfns(t, 0, list, 6));
	/* sorted and merged: [0x10,0x12] and [0x210,0x211] */
	assert_int_equal(t->rec.n, 2);
	assert_int_equal(t->rec.gpa[0], 0x10000);
	assert_int_equal(t->rec.len[0], 0x3000);
	assert_int_equal(t->rec.gpa[1], 0x210000);
	assert_int_equal(t->rec.len[1], 0x2000);
	sqb_vio_balloon_counters(t->dev, &n);
	assert_int_equal(n.inflated_pages, 6);
	/* deflate only acknowledges */
	assert_true(pfns(t, 1, list, 2));
	assert_int_equal(t->rec.n, 2);
	sqb_vio_balloon_counters(t->dev, &n);
	assert_int_equal(n.deflated_pages, 2);
	done(t);
}

static void test_inflate_hostile(void **state)
{
	struct bt *t = mk(1, 0, 0, 0, 0);
	const uint32_t outside[] = {0x100, 0xffffffffu, 0x1ff, 0x300};
	uint32_t many[SQB_VIO_BALLOON_MAX_PFNS + 1];
	struct sqb_vio_balloon_counters n;
	struct vt_seg odd = {BUF, 6, false};
	uint32_t id, len;

	(void)state;
	up(t);
	/* PFNs beyond guest RAM: refused one run at a time, RAM ones still go */
	assert_true(pfns(t, 0, outside, 4));
	assert_int_equal(t->rec.n, 0);
	assert_int_equal(t->rec.refused, 4); /* 1 MiB, the gap, 3 MiB, 16 TiB */
	sqb_vio_balloon_counters(t->dev, &n);
	assert_true(n.bad_pfns >= 3);
	assert_int_equal(vt_r32(t->dev, 0x70) & SQB_VIO_S_NEEDS_RESET, 0);
	/* more than 256 PFNs in one buffer: skipped, still used */
	for (unsigned int i = 0; i < SQB_VIO_BALLOON_MAX_PFNS + 1; i++)
		many[i] = 0x20 + i;
	t->rec.refused = 0;
	assert_true(pfns(t, 0, many, SQB_VIO_BALLOON_MAX_PFNS + 1));
	assert_int_equal(t->rec.n, 0);
	/* a length that is no list of u32 */
	mq_add(&t->d, 0, &odd, 1);
	sqb_vio_queue_notify(t->dev, 0);
	assert_true(mq_used(&t->d, 0, &id, &len));
	assert_int_equal(t->rec.n, 0);
	assert_int_equal(vt_r32(t->dev, 0x70) & SQB_VIO_S_NEEDS_RESET, 0);
	/* a buffer outside guest RAM is a hostile ring: NEEDS_RESET, no crash */
	{
		struct vt_seg bad = {0x180000, 8, false};
		mq_add(&t->d, 0, &bad, 1);
		sqb_vio_queue_notify(t->dev, 0);
		assert_true(vt_r32(t->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
		assert_non_null(sqb_vio_reset_reason(t->dev));
	}
	done(t);
}

static void put_stat(struct vt_env *e, uint64_t gpa, uint16_t tag, uint64_t val)
{
	uint8_t *p = vt_ptr(e, gpa);

	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	for (int i = 0; i < 8; i++)
		p[2 + i] = (uint8_t)(val >> (8 * i));
}

static void test_stats(void **state)
{
	struct bt *t = mk(1, 5, 0, 0, 0);
	struct sqb_vio_balloon_stats st;
	struct vt_seg s = {BUF, 30, false};
	uint32_t id, len;

	(void)state;
	up(t);
	vt_w32(t->dev, 0x104, 16); /* actual: 16 pages */
	/* virtio 5.5.6.3: tag le16, val le64, packed */
	put_stat(&t->e, BUF, 4, 1000);	     /* MEMFREE */
	put_stat(&t->e, BUF + 10, 5, 5000);  /* MEMTOT */
	put_stat(&t->e, BUF + 20, 999, 123); /* unknown tag: ignored */
	mq_add(&t->d, 2, &s, 1);
	sqb_vio_queue_notify(t->dev, 2);
	assert_false(mq_used(&t->d, 2, &id, &len)); /* held until the next poll */
	assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), 0);
	assert_int_equal(st.have, (1u << 4) | (1u << 5));
	assert_int_equal(st.val[4], 1000);
	assert_int_equal(st.val[5], 5000);
	assert_int_equal(st.target_pages, 256);
	assert_int_equal(st.actual_pages, 16);
	/* the timer: the buffer goes back for a refill */
	assert_int_equal(sqb_vio_balloon_stats_tick(t->dev), 0);
	assert_true(mq_used(&t->d, 2, &id, &len));
	assert_int_equal(len, 0);
	assert_int_equal(sqb_vio_balloon_stats_tick(t->dev), -ENOENT);
	/* too large a buffer is held but not read */
	{
		struct vt_seg big = {BUF, SQB_VIO_BALLOON_MAX_STAT_LEN + 10, false};
		put_stat(&t->e, BUF, 4, 7);
		mq_add(&t->d, 2, &big, 1);
		sqb_vio_queue_notify(t->dev, 2);
		assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), 0);
		assert_int_equal(st.val[4], 1000);
	}
	/* a second buffer while one is held: the first comes back */
	s.len = 10;
	mq_add(&t->d, 2, &s, 1);
	sqb_vio_queue_notify(t->dev, 2);
	assert_true(mq_used(&t->d, 2, &id, &len));
	assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), 0);
	assert_int_equal(st.val[4], 7);
	/* interval: changing it is fine, turning it off is not */
	assert_int_equal(sqb_vio_balloon_set_stats_interval(t->dev, 0), -EPERM);
	assert_int_equal(sqb_vio_balloon_set_stats_interval(t->dev, 7), 0);
	assert_int_equal(sqb_vio_balloon_stats_interval(t->dev), 7);
	assert_true(mq_used(&t->d, 2, &id, &len)); /* handed back at once */
	done(t);

	t = mk(0, 0, 0, 0, 0);
	assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), -ENODATA);
	assert_int_equal(sqb_vio_balloon_set_stats_interval(t->dev, 3), -EPERM);
	done(t);
}

/* Linux 6.1 queues its first statistics buffer and notifies before
 * DRIVER_OK, so the notify is lost (virtio 3.1.1 lets a device ignore it):
 * the timer's tick finds the buffer on the queue, reads it, hands it back. */
static void test_stats_buffer_without_a_notify(void **state)
{
	struct bt *t = mk(0, 1, 0, 0, 0);
	struct sqb_vio_balloon_stats st;
	struct vt_seg s = {BUF, 10, false};
	uint32_t id, len;

	(void)state;
	up(t);
	put_stat(&t->e, BUF, 4, 4242); /* MEMFREE */
	mq_add(&t->d, 2, &s, 1);       /* no notify */
	assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), 0);
	assert_int_equal(st.have, 0);
	assert_int_equal(sqb_vio_balloon_stats_tick(t->dev), 0);
	assert_int_equal(sqb_vio_balloon_get_stats(t->dev, &st), 0);
	assert_int_equal(st.have, 1u << 4);
	assert_int_equal(st.val[4], 4242);
	assert_true(mq_used(&t->d, 2, &id, &len));
	assert_int_equal(len, 0);
	done(t);
}

static void send_cmd(struct bt *t, unsigned int qi, uint32_t cmd)
{
	struct vt_seg s = {BUF + 0x100, 4, false};
	uint32_t id, len;

	mq_put32(&t->e, BUF + 0x100, cmd);
	mq_add(&t->d, qi, &s, 1);
	sqb_vio_queue_notify(t->dev, qi);
	assert_true(mq_used(&t->d, qi, &id, &len));
}

static void send_range(struct bt *t, unsigned int qi, uint64_t gpa, uint32_t n)
{
	struct vt_seg s = {gpa, n, true};
	uint32_t id, len;

	mq_add(&t->d, qi, &s, 1);
	sqb_vio_queue_notify(t->dev, qi);
	assert_true(mq_used(&t->d, qi, &id, &len));
}

static void test_hinting(void **state)
{
	struct bt *t = mk(0, 0, 1, 0, 0);
	uint32_t host, guest;
	int has;

	(void)state;
	assert_int_equal(sqb_vio_balloon_hint_start(t->dev, 1), -EAGAIN);
	up(t);
	assert_int_equal(sqb_vio_balloon_hint_status(t->dev, &host, &guest, &has), 0);
	assert_int_equal(host, 0);
	assert_false(has);
	/* a range before any run: ignored */
	send_range(t, 2, RANGE, 0x2000);
	assert_int_equal(t->rec.n, 0);
	assert_int_equal(sqb_vio_balloon_hint_start(t->dev, 1), 0);
	assert_int_equal(cfg32(t->dev, 8), 2); /* ids 0 and 1 are STOP and DONE */
	send_cmd(t, 2, 1234);		       /* a stale id: its ranges are ignored */
	send_range(t, 2, RANGE, 0x2000);
	assert_int_equal(t->rec.n, 0);
	send_cmd(t, 2, 2);
	send_range(t, 2, RANGE + 0x800, 0x2000); /* whole pages only: one page */
	assert_int_equal(t->rec.n, 1);
	assert_int_equal(t->rec.gpa[0], RANGE + 0x1000);
	assert_int_equal(t->rec.len[0], 0x1000);
	/* the guest says STOP: acknowledged with DONE */
	send_cmd(t, 2, SQB_VIO_BALLOON_HINT_STOP);
	assert_int_equal(cfg32(t->dev, 8), SQB_VIO_BALLOON_HINT_DONE);
	assert_int_equal(sqb_vio_balloon_hint_status(t->dev, &host, &guest, &has), 0);
	assert_int_equal(host, SQB_VIO_BALLOON_HINT_DONE);
	assert_int_equal(guest, 0);
	assert_true(has);
	/* the next run gets the next id */
	assert_int_equal(sqb_vio_balloon_hint_start(t->dev, 0), 0);
	assert_int_equal(cfg32(t->dev, 8), 3);
	assert_int_equal(sqb_vio_balloon_hint_stop(t->dev), 0);
	assert_int_equal(cfg32(t->dev, 8), SQB_VIO_BALLOON_HINT_DONE);
	done(t);

	t = mk(0, 0, 0, 0, 0);
	up(t);
	assert_int_equal(sqb_vio_balloon_hint_start(t->dev, 1), -ENOTSUP);
	assert_int_equal(sqb_vio_balloon_hint_stop(t->dev), -ENOTSUP);
	done(t);
}

static void test_reporting(void **state)
{
	struct bt *t = mk(0, 1, 0, 1, 0); /* stats is queue 2, reporting 3 */
	struct vt_seg s[2] = {{RANGE, 0x4000, true}, {RANGE + 0x10000, 0x1000, true}};
	struct sqb_vio_balloon_counters n;
	uint32_t id, len;

	(void)state;
	up(t);
	mq_add(&t->d, 3, s, 2);
	sqb_vio_queue_notify(t->dev, 3);
	assert_true(mq_used(&t->d, 3, &id, &len));
	assert_int_equal(t->rec.n, 2);
	assert_int_equal(t->rec.gpa[0], RANGE);
	assert_int_equal(t->rec.len[0], 0x4000);
	assert_int_equal(t->rec.gpa[1], RANGE + 0x10000);
	sqb_vio_balloon_counters(t->dev, &n);
	assert_int_equal(n.reported_bytes, 0x5000);
	/* less than a page: nothing to drop */
	send_range(t, 3, RANGE + 0x20010, 0x800);
	assert_int_equal(t->rec.n, 2);
	done(t);
}

/* [F-120] known answer: the device record sits after the transport (56)
 * and the queue records (40 each), before the limiter (128). */
static void test_state_record(void **state)
{
	struct bt *t = mk(1, 5, 0, 0, 1), *u;
	struct vt_seg s = {BUF, 10, false};
	uint8_t *st = NULL, *bad;
	size_t n = 0, rec = 56 + 3 * 40;
	struct sqb_vio_balloon_stats v;
	struct sqb_diag d;
	uint32_t id, len;

	(void)state;
	up(t);
	vt_w32(t->dev, 0x104, 0x1234);
	put_stat(&t->e, BUF, 6, 0xabcdef);
	mq_add(&t->d, 2, &s, 1);
	sqb_vio_queue_notify(t->dev, 2);
	/* [F-101]: the held statistics buffer goes back at quiesce */
	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_true(mq_used(&t->d, 2, &id, &len));
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &n), 0);
	assert_int_equal(n, rec + 192 + 128);
	/* little-endian fields at their table offsets */
	assert_int_equal(st[rec + 0] | st[rec + 1] << 8, 256);	  /* num_pages */
	assert_int_equal(st[rec + 4] | st[rec + 5] << 8, 0x1234); /* actual_pages */
	assert_int_equal(st[rec + 12], 5);			  /* stats_polling_interval_s */
	assert_int_equal(st[rec + 32], 1u << 6);		  /* stats_present: tag 6 */
	assert_int_equal(st[rec + 64 + 6 * 8], 0xef);		  /* stats value[6] */
	assert_int_equal(st[rec + 64 + 6 * 8 + 2], 0xab);

	/* into a fresh device of the same configuration */
	u = mk(1, 5, 0, 0, 1);
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, st, n, NULL), 0);
	assert_int_equal(cfg32(u->dev, 4), 0x1234);
	assert_int_equal(sqb_vio_balloon_get_stats(u->dev, &v), 0);
	assert_int_equal(v.val[6], 0xabcdef);

	/* hostile records leave the device as it was */
	bad = malloc(n);
	assert_non_null(bad);
	memcpy(bad, st, n);
	bad[rec + 40] = 1; /* reserved */
	memset(&d, 0, sizeof(d));
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ERESERVED);
	assert_non_null(strstr(d.reason, "reserved"));
	memcpy(bad, st, n);
	bad[rec + 3] = 0x10; /* num_pages far beyond 2 MiB of RAM */
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ECORRUPT);
	memcpy(bad, st, n);
	bad[rec + 12] = 0; /* statistics off in a device that has them */
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_EMISMATCH);
	memcpy(bad, st, n);
	bad[rec + 16] = 4; /* unknown flag */
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ERESERVED);
	memcpy(bad, st, n);
	bad[rec + 35] = 0x80; /* stats_present above tag 15 */
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, bad, n, &d), -SQB_ERESERVED);
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, st, n - 1, &d), -SQB_ETRUNCATED);
	assert_int_equal(cfg32(u->dev, 4), 0x1234);
	done(u);

	/* a device without statistics has another shape: refused */
	u = mk(1, 0, 0, 0, 1);
	assert_int_equal(sqb_vio_dev_restore(u->dev, 1, st, n, NULL), -SQB_EMISMATCH);
	done(u);
	free(bad);
	free(st);
	done(t);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A driver gone mad: random descriptors (addresses near and far, lengths,
 * flags, next), random avail indexes and config writes on every queue,
 * fixed seed.  The device never crashes or hangs, never asks to discard
 * anything but page-aligned guest RAM, and the driver can always reset it. */
static void test_random_rings(void **state)
{
	struct bt *t = mk(1, 3, 1, 1, 1);
	uint64_t seed = 14;

	(void)state;
	for (int round = 0; round < 400; round++) {
		if (round % 40 == 0 || (vt_r32(t->dev, 0x70) & SQB_VIO_S_NEEDS_RESET))
			up(t);
		for (unsigned int qi = 0; qi < 5; qi++) {
			struct mq_q *q = &t->d.q[qi];

			for (int i = 0; i < 16; i++) {
				uint64_t r = rnd(&seed), a;
				uint16_t f;

				switch (r % 16) {
				case 0:
					a = r;
					break; /* anywhere */
				case 1:
					a = (r >> 8) % 0x400000;
					break; /* RAM or the gap */
				case 2:
				case 3:
				case 4:
				case 5:
					a = RANGE + ((r >> 8) % 0x100000);
					break;
				default:
					a = BUF + (r >> 8) % 0x1000;
					break;
				}
				/* mostly well-formed single buffers, so that the
				 * device gets past the walker into its own parsing */
				f = rnd(&seed) % 8 ? (uint16_t)(rnd(&seed) & 2)
						   : (uint16_t)(rnd(&seed) & 7);
				mq_put_desc(&t->d, qi, (uint16_t)i, a,
					    (uint32_t)(rnd(&seed) % 0x3000), f,
					    (uint16_t)(rnd(&seed) % 20));
				mq_put32(
				    &t->e, BUF + 4 * (uint64_t)i,
				    (uint32_t)(rnd(&seed) % 4 ? rnd(&seed) % 0x400 : rnd(&seed)));
			}
			for (int i = 0; i < 16; i++)
				vt_put16(&t->e, q->avail + 4 + 2 * (uint64_t)i,
					 (uint16_t)(rnd(&seed) % (rnd(&seed) % 8 ? 16 : 20)));
			q->avail_idx =
			    (uint16_t)(q->avail_idx +
				       (rnd(&seed) % 8 ? rnd(&seed) % 4 : rnd(&seed) % 24));
			vt_put16(&t->e, q->avail + 2, q->avail_idx);
			sqb_vio_queue_notify(t->dev, qi);
		}
		vt_w32(t->dev, 0x100 + (uint32_t)(rnd(&seed) % 16), (uint32_t)rnd(&seed));
		(void)sqb_vio_balloon_stats_tick(t->dev);
	}
	for (unsigned int i = 0; i < t->rec.n && i < NDISC; i++) {
		assert_int_equal(t->rec.gpa[i] & 4095, 0);
		assert_int_equal(t->rec.len[i] & 4095, 0);
	}
	print_message("random rings: %u discards, %u refused\n", t->rec.n, t->rec.refused);
	/* still a working device after a reset */
	up(t);
	{
		const uint32_t one = 0x30;
		unsigned int before = t->rec.n;
		assert_true(pfns(t, 0, &one, 1));
		assert_int_equal(t->rec.n, before + 1);
	}
	done(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_features_and_queues),
	    cmocka_unit_test(test_create_refuses_too_large),
	    cmocka_unit_test(test_config_space),
	    cmocka_unit_test(test_set_target),
	    cmocka_unit_test(test_inflate_discards_runs),
	    cmocka_unit_test(test_inflate_hostile),
	    cmocka_unit_test(test_stats),
	    cmocka_unit_test(test_stats_buffer_without_a_notify),
	    cmocka_unit_test(test_hinting),
	    cmocka_unit_test(test_reporting),
	    cmocka_unit_test(test_state_record),
	    cmocka_unit_test(test_random_rings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
