/* Device state of virtio devices and the rate limiter: known-answer byte
 * vectors checked against docs/format.md 9.1.1 ([F-100] to [F-108]), save ->
 * restore mid-stream then continue, invariant and reserved-field checks, and
 * the token-bucket timing rules with an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vio_test_util.h"
#include "virtio_priv.h"

#define ALL_OK 0xf
#define MS     1000000ull
#define T0     1000000000ull /* vt_env_init's clock */

static sqb_vio_dev *blk_new(struct vt_env *e, int fd, int ro, enum sqb_vio_cache cache,
			    const struct sqb_vio_rl_config *rl)
{
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
	sqb_vio_dev *dev;

	o.fd = fd;
	o.read_only = ro;
	o.cache = cache;
	o.rate_limiter = rl;
	assert_int_equal(sqb_vio_blk_new(&dev, &e->host, &o, NULL), 0);
	return dev;
}

/* [F-100], [F-102], [F-103], [F-104], [F-106]: a writeback blk of 2048
 * sectors, queue of 16 at 0x1000/0x3000/0x4000, EVENT_IDX and FLUSH acked,
 * three requests done, VRING interrupt pending, no rate limiter. */
/* clang-format off */
static const uint8_t kat_blk[240] = {
	/* transport: device_id 2, num_queues 1 */
	0x02, 0, 0, 0, 0x01, 0, 0, 0,
	/* device_features: VERSION_1 (32) | EVENT_IDX (29) | INDIRECT_DESC (28) |
	 * FLUSH (9) | SEG_MAX (2) */
	0x04, 0x02, 0x00, 0x30, 0x01, 0, 0, 0,
	/* driver_features: VERSION_1 | EVENT_IDX | FLUSH */
	0x00, 0x02, 0x00, 0x20, 0x01, 0, 0, 0,
	/* status 0x0f, device_features_sel 1, driver_features_sel 1, queue_sel 0 */
	0x0f, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0,
	/* interrupt_status 1, config_generation 0, reserved 8 */
	0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* queue 0: num 16, num_max 256, flags ready|signalled_valid */
	0x10, 0x00, 0x00, 0x01, 0x03, 0, 0, 0,
	/* desc 0x1000, driver 0x3000, device 0x4000 */
	0x00, 0x10, 0, 0, 0, 0, 0, 0, 0x00, 0x30, 0, 0, 0, 0, 0, 0,
	0x00, 0x40, 0, 0, 0, 0, 0, 0,
	/* next_avail 3, next_used 3, signalled_used 3, reserved */
	0x03, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00,
	/* blk: capacity 2048, flags writeback (bit 1), reserved */
	0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
	/* rate limiter: not blocked, two disabled buckets: 128 zero bytes */
};
/* clang-format on */

static void test_kat_blk_state(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	int fd = vt_tempfile(1 << 20);
	sqb_vio_dev *dev;
	uint8_t *buf;
	size_t len;
	(void)state;

	vt_env_init(&e);
	dev = blk_new(&e, fd, 0, SQB_VIO_CACHE_WRITEBACK, NULL);
	assert_int_equal(vt_drv_init(&d, &e, dev, 16, 1ull << 9 | 1ull << 29), ALL_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vt_blk(&d, 4, 0, 0, false, NULL), 0);
	assert_int_equal(sqb_vio_quiesce(dev), 0);
	assert_int_equal(sqb_vio_dev_save(dev, &buf, &len), 0);
	assert_int_equal(len, sizeof(kat_blk));
	assert_memory_equal(buf, kat_blk, sizeof(kat_blk));
	free(buf);
	sqb_vio_dev_free(dev);
	close(fd);
	vt_env_fini(&e);
}

/* [F-105], [F-106]: an rng with both buckets, two 64-byte requests at T0,
 * saved 1.5 ms later. */
/* clang-format off */
static const uint8_t kat_rng_tail[128] = {
	/* limiter: flags 0, reserved, blocked_ns 0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* bandwidth: enabled, size 4096, burst 0, refill 100 ms */
	0x01, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0x64, 0, 0, 0, 0, 0, 0, 0,
	/* burst_left 0, budget 4096 - 128 = 3968 (0xf80), elapsed 1.5 ms (0x16e360) */
	0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x0f, 0, 0, 0, 0, 0, 0,
	0x60, 0xe3, 0x16, 0, 0, 0, 0, 0,
	/* ops: enabled, size 10, burst 5, refill 1000 ms (0x3e8) */
	0x01, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0,
	0x05, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0, 0, 0, 0, 0,
	/* burst_left 3, budget 10, elapsed 1.5 ms */
	0x03, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0,
	0x60, 0xe3, 0x16, 0, 0, 0, 0, 0,
};
/* clang-format on */

static void test_kat_rng_limiter_state(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	struct sqb_vio_rl_config rl = {{4096, 0, 100}, {10, 5, 1000}};
	struct sqb_vio_rng_opts o = SQB_VIO_RNG_OPTS_INIT;
	sqb_vio_dev *dev;
	uint32_t id, len32;
	uint8_t *buf;
	size_t len;
	(void)state;

	vt_env_init(&e);
	o.rate_limiter = &rl;
	assert_int_equal(sqb_vio_rng_new(&dev, &e.host, &o), 0);
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 0), ALL_OK);
	for (int i = 0; i < 2; i++) {
		vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
		sqb_vio_queue_notify(dev, 0);
		assert_true(vt_used(&d, &id, &len32));
	}
	e.now = T0 + 1500000;
	assert_int_equal(sqb_vio_dev_save(dev, &buf, &len), 0);
	assert_int_equal(len, 56 + 40 + 128);
	assert_int_equal(buf[0], 4); /* device_id */
	assert_memory_equal(buf + 96, kat_rng_tail, sizeof(kat_rng_tail));
	/* Restored 10 s later on another clock, saved again at once: the same
	 * relative times come back out. */
	{
		struct vt_env e2;
		sqb_vio_dev *dev2;
		uint8_t *buf2;
		size_t len2;
		vt_env_init(&e2);
		e2.now = 10 * T0;
		memcpy(e2.r0, e.r0, VT_R0_SIZE);
		assert_int_equal(sqb_vio_rng_new(&dev2, &e2.host, NULL), 0);
		assert_int_equal(sqb_vio_dev_restore(dev2, 1, buf, len, NULL), 0);
		assert_int_equal(sqb_vio_dev_save(dev2, &buf2, &len2), 0);
		assert_int_equal(len2, len);
		assert_memory_equal(buf2, buf, len);
		free(buf2);
		sqb_vio_dev_free(dev2);
		vt_env_fini(&e2);
	}
	free(buf);
	sqb_vio_dev_free(dev);
	vt_env_fini(&e);
}

/* Save with requests queued but not yet notified, restore into a new device
 * over the same guest RAM, poll: they complete and the stream goes on. */
static void test_save_restore_mid_stream(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	int fd = vt_tempfile(1 << 20);
	sqb_vio_dev *dev;
	uint8_t *buf, *buf2, *h;
	size_t len, len2;
	uint32_t id, ulen;
	unsigned int irqs;
	(void)state;

	vt_env_init(&e);
	dev = blk_new(&e, fd, 0, SQB_VIO_CACHE_UNSAFE, NULL);
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 1ull << 29), ALL_OK);
	memset(vt_ptr(&e, VT_DATA), 0x42, 512);
	assert_int_equal(vt_blk(&d, 1, 7, 512, false, NULL), 0);
	/* Two reads queued, not notified. */
	h = vt_ptr(&e, VT_HDR + 32);
	memset(h, 0, 32);
	h[8] = 7;
	h[16 + 8] = 7;
	vt_add(&d,
	       (struct vt_seg[]){{VT_HDR + 32, 16, false}, {0x20000, 512, true}, {0x9100, 1, true}},
	       3);
	vt_add(&d,
	       (struct vt_seg[]){{VT_HDR + 48, 16, false}, {0x20200, 512, true}, {0x9101, 1, true}},
	       3);
	assert_int_equal(sqb_vio_dev_save(dev, &buf, &len), 0);
	sqb_vio_dev_free(dev);

	dev = blk_new(&e, fd, 0, SQB_VIO_CACHE_UNSAFE, NULL);
	d.dev = dev; /* the same driver goes on with the new device */
	irqs = e.irqs;
	assert_int_equal(sqb_vio_dev_restore(dev, SQB_VIO_STATE_VERSION, buf, len, NULL), 0);
	assert_int_equal(e.irqs, irqs + 1); /* pending VRING interrupt raised again */
	assert_int_equal(sqb_vio_dev_save(dev, &buf2, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	free(buf2);
	assert_int_equal(sqb_vio_status(dev), ALL_OK);
	sqb_vio_dev_poll(dev);
	assert_true(vt_used(&d, &id, &ulen));
	assert_int_equal(ulen, 513);
	assert_true(vt_used(&d, &id, &ulen));
	assert_int_equal(*vt_ptr(&e, 0x9100), 0);
	assert_int_equal(*vt_ptr(&e, 0x9101), 0);
	assert_int_equal(vt_ptr(&e, 0x20000)[100], 0x42);
	assert_int_equal(vt_ptr(&e, 0x20200)[511], 0x42);
	assert_int_equal(vt_blk(&d, 0, 7, 512, true, NULL), 0);
	assert_int_equal(vt_get16(&e, VT_USED + 2), 4);
	free(buf);
	sqb_vio_dev_free(dev);
	close(fd);
	vt_env_fini(&e);
}

static void expect_fail(sqb_vio_dev *dev, const uint8_t *buf, size_t len, int err, uint64_t off,
			const char *word)
{
	struct sqb_diag dg;
	uint8_t *before, *after;
	size_t lb, la;

	assert_int_equal(sqb_vio_dev_save(dev, &before, &lb), 0);
	memset(&dg, 0, sizeof(dg));
	assert_int_equal(sqb_vio_dev_restore(dev, 1, buf, len, &dg), err);
	if (off != UINT64_MAX)
		assert_int_equal(dg.offset, off);
	if (word && !strstr(dg.reason, word))
		fail_msg("reason '%s' lacks '%s'", dg.reason, word);
	/* A failed restore changes nothing. */
	assert_int_equal(sqb_vio_dev_save(dev, &after, &la), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(after, before, la);
	free(before);
	free(after);
}

static void test_restore_refuses_bad_state(void **state)
{
	struct vt_env e;
	int fd = vt_tempfile(1 << 20), fd2 = vt_tempfile(2 << 20);
	sqb_vio_dev *dev, *other;
	uint8_t *buf, *b;
	size_t len;
	struct sqb_diag dg;
	(void)state;

	vt_env_init(&e);
	dev = blk_new(&e, fd, 0, SQB_VIO_CACHE_WRITEBACK, NULL);
	{
		struct vt_drv d;
		assert_int_equal(vt_drv_init(&d, &e, dev, 16, 1ull << 9 | 1ull << 29), ALL_OK);
		vt_blk(&d, 4, 0, 0, false, NULL);
	}
	assert_int_equal(sqb_vio_dev_save(dev, &buf, &len), 0);
	assert_int_equal(len, 240);
	b = malloc(len + 1);

	/* [F-104] size changed: a clear mismatch at the capacity field. */
	other = blk_new(&e, fd2, 0, SQB_VIO_CACHE_WRITEBACK, NULL);
	expect_fail(other, buf, len, -SQB_EMISMATCH, 96, "capacity");
	sqb_vio_dev_free(other);
	other = blk_new(&e, fd, 1, SQB_VIO_CACHE_WRITEBACK, NULL);
	/* Read-only also changes the features offered, checked first. */
	expect_fail(other, buf, len, -SQB_EMISMATCH, 8, "device_features");
	sqb_vio_dev_free(other);
	/* Another device type. */
	assert_int_equal(sqb_vio_rng_new(&other, &e.host, NULL), 0);
	expect_fail(other, buf, len, -SQB_EMISMATCH, 0, "device_id");
	sqb_vio_dev_free(other);

	other = blk_new(&e, fd, 0, SQB_VIO_CACHE_WRITEBACK, NULL);
	/* Every truncation. */
	for (size_t n = 0; n < len; n++)
		expect_fail(other, buf, n, -SQB_ETRUNCATED, UINT64_MAX, NULL);
	/* A trailing byte. */
	memcpy(b, buf, len);
	b[len] = 0;
	expect_fail(other, b, len + 1, -SQB_ECORRUPT, 240, "after the end");
	/* Reserved bytes: transport, queue, blk, limiter, bucket. */
	{
		static const size_t rsv[] = {48, 55, 56 + 38, 96 + 12, 112 + 4, 128 + 4, 184 + 4};
		for (size_t i = 0; i < sizeof(rsv) / sizeof(rsv[0]); i++) {
			memcpy(b, buf, len);
			b[rsv[i]] = 1;
			expect_fail(other, b, len, -SQB_ERESERVED, rsv[i], NULL);
		}
	}
	/* [F-101]: next_avail ahead of next_used means a request in flight. */
	memcpy(b, buf, len);
	b[56 + 32] = 5;
	expect_fail(other, b, len, -SQB_ECORRUPT, 56 + 32, "in flight");
	/* Ready queue of size 12 (not a power of two). */
	memcpy(b, buf, len);
	b[56] = 12;
	expect_fail(other, b, len, -SQB_ECORRUPT, 56, "power of two");
	/* Unknown status bit, interrupt bit, driver feature not offered. */
	memcpy(b, buf, len);
	b[24] |= 0x10;
	expect_fail(other, b, len, -SQB_ECORRUPT, 24, "status");
	memcpy(b, buf, len);
	b[40] = 4;
	expect_fail(other, b, len, -SQB_ECORRUPT, 40, "interrupt");
	memcpy(b, buf, len);
	b[16] |= 1;
	expect_fail(other, b, len, -SQB_ECORRUPT, 16, "subset");
	/* Disabled bucket with a value; blocked_ns without the blocked flag. */
	memcpy(b, buf, len);
	b[128 + 8] = 1;
	expect_fail(other, b, len, -SQB_ECORRUPT, 128, "disabled");
	memcpy(b, buf, len);
	b[112 + 8] = 1;
	expect_fail(other, b, len, -SQB_ECORRUPT, 120, "blocked_ns");
	/* Versions outside 1..1. */
	memset(&dg, 0, sizeof(dg));
	assert_int_equal(sqb_vio_dev_restore(other, 2, buf, len, &dg), -SQB_EVERSION);
	assert_int_equal(sqb_vio_dev_restore(other, 0, buf, len, NULL), -SQB_EVERSION);
	/* And the real thing works on the same device afterwards. */
	assert_int_equal(sqb_vio_dev_restore(other, 1, buf, len, NULL), 0);
	/* Every single-bit flip restores or fails cleanly. */
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(b, buf, len);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		(void)sqb_vio_dev_restore(other, 1, b, len, NULL);
		sqb_vio_dev_poll(other);
	}
	sqb_vio_dev_free(other);
	free(b);
	free(buf);
	sqb_vio_dev_free(dev);
	close(fd);
	close(fd2);
	vt_env_fini(&e);
}

/* ---- rate limiter: Firecracker's token-bucket rules -------------------- */

static void test_rl_ops_bucket_and_timer(void **state)
{
	struct sqb_vio_rl rl;
	struct sqb_vio_rl_config c = {{0, 0, 0}, {2, 0, 1000}};
	uint64_t at = 0, now = T0;
	(void)state;

	sqb_vio_rl_init(&rl, &c, now);
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now, &at));
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now, &at));
	/* Bytes bucket disabled: never throttles. */
	assert_true(sqb_vio_rl_consume(&rl, 1 << 30, SQB_VIO_TOK_BYTES, now, &at));
	assert_false(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now, &at));
	assert_int_equal(at, now + 100 * MS); /* the 100 ms refill timer */
	/* Blocked: everything fails until the timer fires. */
	assert_false(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_BYTES, now + 50 * MS, &at));
	assert_false(sqb_vio_rl_expire(&rl, now + 99 * MS));
	assert_true(sqb_vio_rl_expire(&rl, now + 100 * MS));
	/* 100 ms refill 0.2 token: still nothing. */
	assert_false(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now + 100 * MS, &at));
	assert_int_equal(at, now + 200 * MS);
	assert_true(sqb_vio_rl_expire(&rl, now + 500 * MS));
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now + 500 * MS, &at));
	/* A full refill time restores the whole bucket. */
	assert_true(sqb_vio_rl_consume(&rl, 2, SQB_VIO_TOK_OPS, now + 1600 * MS, &at));
}

static void test_rl_overconsumption_and_burst(void **state)
{
	struct sqb_vio_rl rl;
	struct sqb_vio_rl_config c = {{1000, 0, 100}, {0, 0, 0}};
	struct sqb_vio_rl_config b = {{100, 1000, 1000}, {0, 0, 0}};
	uint64_t at = 0, now = T0;
	(void)state;

	sqb_vio_rl_init(&rl, &c, now);
	/* 4096 bytes from a 1000-byte bucket: allowed, then blocked for
	 * (4096 - 1000) / 1000 x 100 ms = 309 ms (whole milliseconds). */
	assert_true(sqb_vio_rl_consume(&rl, 4096, SQB_VIO_TOK_BYTES, now, &at));
	assert_true(rl.blocked);
	assert_int_equal(rl.blocked_until, now + 309 * MS);
	assert_false(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_BYTES, now + 308 * MS, &at));
	assert_false(sqb_vio_rl_expire(&rl, now + 308 * MS));
	assert_true(sqb_vio_rl_expire(&rl, now + 309 * MS));

	/* One-time burst is spent first and never refills. */
	sqb_vio_rl_init(&rl, &b, now);
	assert_true(sqb_vio_rl_consume(&rl, 900, SQB_VIO_TOK_BYTES, now, &at));
	assert_int_equal(rl.bw.burst, 100);
	assert_true(sqb_vio_rl_consume(&rl, 200, SQB_VIO_TOK_BYTES, now, &at));
	assert_int_equal(rl.bw.burst, 0);
	assert_int_equal(rl.bw.budget, 0);
	assert_false(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_BYTES, now, &at));
	/* manual replenish is capped by the size. */
	sqb_vio_rl_replenish(&rl, 500, SQB_VIO_TOK_BYTES);
	assert_int_equal(rl.bw.budget, 100);
}

/* The fraction of a token left over at a refill is carried to the next one
 * (Firecracker advances last_update only by the time the whole tokens took). */
static void test_rl_fraction_carry(void **state)
{
	struct sqb_vio_rl rl;
	struct sqb_vio_rl_config c = {{0, 0, 0}, {3, 0, 1000}};
	uint64_t at = 0, now = T0;
	(void)state;

	sqb_vio_rl_init(&rl, &c, now);
	assert_true(sqb_vio_rl_consume(&rl, 3, SQB_VIO_TOK_OPS, now, &at));
	/* 500 ms = 1.5 tokens: one now, half carried. */
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now + 500 * MS, &at));
	assert_int_equal(rl.ops.last_update, now + 333333334);
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now + 1000 * MS, &at));
	/* 2 ns later the carried fractions make a third token. */
	assert_true(sqb_vio_rl_consume(&rl, 1, SQB_VIO_TOK_OPS, now + 1000 * MS + 2, &at));
}

/* A throttled queue stops popping, arms the integrator's timer, and goes
 * on when sqb_vio_dev_poll() runs after the deadline; no busy polling. */
static void test_rl_throttles_queue(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	struct sqb_vio_rl_config rl = {{0, 0, 0}, {1, 0, 1000}};
	int fd = vt_tempfile(1 << 20);
	sqb_vio_dev *dev;
	(void)state;

	vt_env_init(&e);
	dev = blk_new(&e, fd, 0, SQB_VIO_CACHE_UNSAFE, &rl);
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 0), ALL_OK);
	assert_int_equal(vt_blk(&d, 0, 0, 512, true, NULL), 0);
	assert_int_equal(e.timer_arms, 0);
	assert_int_equal(vt_blk(&d, 0, 0, 512, true, NULL), 0xff); /* throttled */
	assert_int_equal(vt_get16(&e, VT_USED + 2), 1);
	assert_int_equal(e.timer_at, T0 + 100 * MS);
	/* An early poll re-arms and does nothing. */
	e.now = T0 + 50 * MS;
	sqb_vio_dev_poll(dev);
	assert_int_equal(vt_get16(&e, VT_USED + 2), 1);
	assert_int_equal(e.timer_at, T0 + 100 * MS);
	/* At the deadline: 0.1 token, still throttled, re-armed 100 ms on. */
	e.now = T0 + 100 * MS;
	sqb_vio_dev_poll(dev);
	assert_int_equal(vt_get16(&e, VT_USED + 2), 1);
	assert_int_equal(e.timer_at, T0 + 200 * MS);
	e.now = T0 + 1000 * MS;
	sqb_vio_dev_poll(dev);
	assert_int_equal(vt_get16(&e, VT_USED + 2), 2);
	/* A limiter needs the integrator's timer. */
	{
		struct vt_env e2;
		struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
		sqb_vio_dev *d2;
		vt_env_init(&e2);
		e2.host.timer.arm = NULL;
		o.fd = fd;
		o.rate_limiter = &rl;
		assert_int_equal(sqb_vio_blk_new(&d2, &e2.host, &o, NULL), -22);
		o.rate_limiter = NULL;
		assert_int_equal(sqb_vio_blk_new(&d2, &e2.host, &o, NULL), 0);
		assert_int_equal(sqb_vio_set_rate_limiter(d2, &rl), -22);
		sqb_vio_dev_free(d2);
		vt_env_fini(&e2);
	}
	/* PATCH: disable the limiter, requests flow. */
	assert_int_equal(sqb_vio_set_rate_limiter(dev, NULL), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(vt_blk(&d, 0, 0, 512, true, NULL), 0);
	sqb_vio_dev_free(dev);
	close(fd);
	vt_env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kat_blk_state),
	    cmocka_unit_test(test_kat_rng_limiter_state),
	    cmocka_unit_test(test_save_restore_mid_stream),
	    cmocka_unit_test(test_restore_refuses_bad_state),
	    cmocka_unit_test(test_rl_ops_bucket_and_timer),
	    cmocka_unit_test(test_rl_overconsumption_and_burst),
	    cmocka_unit_test(test_rl_fraction_carry),
	    cmocka_unit_test(test_rl_throttles_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
