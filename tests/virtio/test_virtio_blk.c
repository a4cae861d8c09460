/* virtio-mmio transport and virtio-blk against a fake guest: registers per
 * virtio 1.x 4.2.2, feature negotiation, queue checks, IN/OUT/FLUSH/GET_ID,
 * read-only, out-of-range sectors, framing, backing swap, dirty marking.
 * The blk cases run once per io_engine (Sync, then Async); the Async group
 * adds requests in flight across quiesce, backing swap and reset, FLUSH
 * ordering, a full ring, and a host without io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vio_test_util.h"

#define T_IN	4u
#define BLK_IN	0u
#define BLK_OUT 1u
#define BLK_FL	4u
#define BLK_ID	8u

struct fx {
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev;
	int fd;
};

/* The engine every fx_new() device uses: main() runs the group per engine. */
static enum sqb_vio_engine engine;
static unsigned int async_depth; /* 0: the default */

static struct fx *fx_new_fd(int fd, int ro, enum sqb_vio_cache cache)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
	struct sqb_diag dg = {0};

	vt_env_init(&f->e);
	f->fd = fd;
	o.fd = f->fd;
	o.read_only = ro;
	o.cache = cache;
	o.drive_id = "rootfs";
	o.engine = engine;
	o.async_depth = async_depth;
	if (sqb_vio_blk_new(&f->dev, &f->e.host, &o, &dg))
		fail_msg("sqb_vio_blk_new: %s", dg.reason);
	assert_int_equal(sqb_vio_blk_io_fd(f->dev) >= 0, engine == SQB_VIO_ENGINE_ASYNC);
	return f;
}

static struct fx *fx_new(uint64_t size, int ro, enum sqb_vio_cache cache)
{
	return fx_new_fd(vt_tempfile(size), ro, cache);
}

static void fx_free(struct fx *f)
{
	sqb_vio_dev_free(f->dev);
	close(f->fd);
	vt_env_fini(&f->e);
	free(f);
}

static const uint32_t DRIVER_OK_ALL =
    SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_FEATURES_OK | SQB_VIO_S_DRIVER_OK;

/* Values straight from the virtio 1.x spec, 4.2.2 (MMIO device register layout). */
static void test_mmio_registers_from_spec(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	uint8_t b[8];
	(void)state;

	assert_int_equal(vt_r32(f->dev, 0x000), 0x74726976); /* "virt" */
	assert_int_equal(vt_r32(f->dev, 0x004), 2);	     /* modern */
	assert_int_equal(vt_r32(f->dev, 0x008), 2);	     /* block device */
	assert_int_equal(vt_r32(f->dev, 0x034), 256);	     /* QueueNumMax */
	vt_w32(f->dev, 0x014, 1);
	assert_true(vt_r32(f->dev, 0x010) & 1); /* VERSION_1 is bit 32 */
	vt_w32(f->dev, 0x014, 0);
	assert_true(vt_r32(f->dev, 0x010) & (1u << 29)); /* EVENT_IDX */
	assert_false(vt_r32(f->dev, 0x010) & (1u << 5)); /* not read-only */
	assert_false(vt_r32(f->dev, 0x010) & (1u << 9)); /* no FLUSH when Unsafe */
	vt_w32(f->dev, 0x014, 2);
	assert_int_equal(vt_r32(f->dev, 0x010), 0);
	/* No shared memory regions: length and base read as -1. */
	vt_w32(f->dev, 0x0ac, 0);
	assert_int_equal(vt_r32(f->dev, 0x0b0), 0xffffffffu);
	assert_int_equal(vt_r32(f->dev, 0x0b4), 0xffffffffu);
	/* Write-only registers read as zero; writes to read-only ones are ignored. */
	assert_int_equal(vt_r32(f->dev, 0x050), 0);
	vt_w32(f->dev, 0x000, 0);
	assert_int_equal(vt_r32(f->dev, 0x000), 0x74726976);
	/* Sub-word register access is not allowed: reads zero. */
	memset(b, 0xaa, sizeof(b));
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x000, b, 2, 0), 0);
	assert_int_equal(b[0] | b[1], 0);
	/* Outside the window and bad sizes. */
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x1000, b, 4, 0), -22);
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0xffe, b, 4, 0), -22);
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x100, b, 3, 0), -22);
	/* Config space: capacity (u64) at 0x100, byte access allowed; past it zero. */
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x100, b, 8, 0), 0);
	assert_int_equal(b[0] | b[1] << 8, 2048);
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x101, b, 1, 0), 0);
	assert_int_equal(b[0], 2048 >> 8);
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x108, b, 4, 0), 0);
	assert_int_equal(b[0] | b[1] | b[2] | b[3], 0); /* size_max: not offered */
	assert_int_equal(vt_r32(f->dev, 0x10c), 254);	/* seg_max */
	assert_int_equal(sqb_vio_mmio_access(f->dev, 0x110, b, 4, 0), 0);
	assert_int_equal(b[0] | b[1] | b[2] | b[3], 0); /* past the config */
	vt_w32(f->dev, 0x014, 0);
	assert_true(vt_r32(f->dev, 0x010) & (1u << 2)); /* SEG_MAX */
	assert_int_equal(SQB_VIO_MMIO_QUEUE_NOTIFY, 0x50);
	fx_free(f);
}

static void test_features_need_version_1(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	(void)state;

	/* A legacy driver that acks nothing: FEATURES_OK does not stick. */
	vt_w32(f->dev, 0x70, 3);
	vt_w32(f->dev, 0x24, 0);
	vt_w32(f->dev, 0x20, 0);
	vt_w32(f->dev, 0x24, 1);
	vt_w32(f->dev, 0x20, 0);
	vt_w32(f->dev, 0x70, 3 | SQB_VIO_S_FEATURES_OK);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_FEATURES_OK);
	/* DRIVER_OK without FEATURES_OK is refused too. */
	vt_w32(f->dev, 0x70, 3 | SQB_VIO_S_DRIVER_OK);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_DRIVER_OK);
	/* A feature that was not offered (bit 5, RO) fails as well. */
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x70, 3);
	vt_w32(f->dev, 0x24, 1);
	vt_w32(f->dev, 0x20, 1);
	vt_w32(f->dev, 0x24, 0);
	vt_w32(f->dev, 0x20, 1u << 5);
	vt_w32(f->dev, 0x70, 3 | SQB_VIO_S_FEATURES_OK);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_FEATURES_OK);
	/* The proper dance works, and reset-on-0 clears everything. */
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	assert_int_equal(vt_r32(f->dev, 0x44), 1);
	vt_w32(f->dev, 0x70, 0);
	assert_int_equal(vt_r32(f->dev, 0x70), 0);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	assert_int_equal(vt_r32(f->dev, 0x60), 0);
	fx_free(f);
}

static void test_queue_setup_checks(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	(void)state;

	/* Size not a power of two. */
	vt_drv_init(&f->d, &f->e, f->dev, 8, 0);
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x70, 3);
	vt_w32(f->dev, 0x38, 6);
	vt_w32(f->dev, 0x80, (uint32_t)VT_DESC);
	vt_w32(f->dev, 0x90, (uint32_t)VT_AVAIL);
	vt_w32(f->dev, 0xa0, (uint32_t)VT_USED);
	vt_w32(f->dev, 0x44, 1);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	assert_true(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	/* 2.1.2: the configuration change notification is for a driver past
	 * DRIVER_OK only. */
	assert_int_equal(vt_r32(f->dev, 0x60), 0);
	/* Used ring outside guest RAM. */
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x38, 8);
	vt_w32(f->dev, 0x80, (uint32_t)VT_DESC);
	vt_w32(f->dev, 0x90, (uint32_t)VT_AVAIL);
	vt_w32(f->dev, 0xa0, 0x1000000);
	vt_w32(f->dev, 0x44, 1);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	assert_true(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	/* Too big, and misaligned. */
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x38, 512);
	vt_w32(f->dev, 0xa0, (uint32_t)VT_USED);
	vt_w32(f->dev, 0x44, 1);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x38, 8);
	vt_w32(f->dev, 0x80, (uint32_t)VT_DESC + 8);
	vt_w32(f->dev, 0x44, 1);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	/* Selecting a queue that does not exist: NumMax 0, writes ignored. */
	vt_w32(f->dev, 0x70, 0);
	vt_w32(f->dev, 0x30, 5);
	assert_int_equal(vt_r32(f->dev, 0x34), 0);
	vt_w32(f->dev, 0x44, 1);
	assert_int_equal(vt_r32(f->dev, 0x44), 0);
	sqb_vio_queue_notify(f->dev, 5);
	sqb_vio_queue_notify(f->dev, 0xffffffffu);
	fx_free(f);
}

static void test_blk_write_read_back(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	uint8_t *data = vt_ptr(&f->e, VT_DATA), buf[4096];
	uint32_t used = 0;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 16, 0), DRIVER_OK_ALL);
	for (int i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(vt_blk(&f->d, BLK_OUT, 10, 4096, false, &used), 0);
	assert_int_equal(used, 1);
	assert_int_equal(pread(f->fd, buf, 4096, 10 * 512), 4096);
	assert_memory_equal(buf, data, 4096);
	assert_true(f->e.irqs >= 1);
	assert_true(vt_r32(f->dev, 0x60) & SQB_VIO_INT_VRING);
	vt_w32(f->dev, 0x64, SQB_VIO_INT_VRING);
	assert_int_equal(vt_r32(f->dev, 0x60), 0);

	memset(data, 0, 8192);
	memset(f->e.dirty0, 0, sizeof(f->e.dirty0));
	assert_int_equal(vt_blk(&f->d, BLK_IN, 10, 4096, true, &used), 0);
	assert_int_equal(used, 4097);
	assert_memory_equal(buf, data, 4096);
	/* The device's writes went through map(write=1): pages are dirty. */
	assert_true(f->e.dirty0[VT_DATA / 4096]);
	assert_true(f->e.dirty0[VT_USED / 4096]);
	assert_true(f->e.dirty0[VT_STAT / 4096]);
	/* Untouched sectors hold the temp-file pattern. */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 0, 512, true, &used), 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(data[i], (uint8_t)(i * 7 + 3));
	fx_free(f);
}

static void test_blk_flush_and_get_id(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_WRITEBACK);
	uint32_t used;
	uint8_t *data = vt_ptr(&f->e, VT_DATA);
	(void)state;

	vt_w32(f->dev, 0x14, 0);
	assert_true(vt_r32(f->dev, 0x10) & (1u << 9)); /* FLUSH offered with Writeback */
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 1ull << 9), DRIVER_OK_ALL);
	assert_int_equal(vt_blk(&f->d, BLK_FL, 0, 0, false, &used), 0);
	assert_int_equal(used, 1);
	memset(data, 0xcc, 64);
	assert_int_equal(vt_blk(&f->d, BLK_ID, 0, 20, true, &used), 0);
	assert_int_equal(used, 21);
	assert_memory_equal(data, "rootfs\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(data[20], 0xcc);
	/* An id buffer shorter than 20 bytes: IOERR. */
	assert_int_equal(vt_blk(&f->d, BLK_ID, 0, 8, true, &used), 1);
	/* Unknown request type: UNSUPP; DISCARD not offered: UNSUPP. */
	assert_int_equal(vt_blk(&f->d, 99, 0, 0, false, &used), 2);
	assert_int_equal(vt_blk(&f->d, 11, 0, 16, false, &used), 2);
	fx_free(f);
}

static void test_blk_read_only(void **state)
{
	struct fx *f = fx_new(1 << 20, 1, SQB_VIO_CACHE_UNSAFE);
	uint8_t *data = vt_ptr(&f->e, VT_DATA), buf[512];
	(void)state;

	vt_w32(f->dev, 0x14, 0);
	assert_true(vt_r32(f->dev, 0x10) & (1u << 5));
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 1ull << 5), DRIVER_OK_ALL);
	memset(data, 0x11, 512);
	assert_int_equal(vt_blk(&f->d, BLK_OUT, 0, 512, false, NULL), 1);
	assert_int_equal(pread(f->fd, buf, 512, 0), 512);
	assert_int_equal(buf[1], (uint8_t)(1 * 7 + 3));
	assert_int_equal(vt_blk(&f->d, 11, 0, 16, false, NULL), 1); /* DISCARD */
	assert_int_equal(vt_blk(&f->d, 13, 0, 16, false, NULL), 1); /* WRITE_ZEROES */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 0, 512, true, NULL), 0);
	assert_int_equal(data[1], (uint8_t)(1 * 7 + 3));
	assert_int_equal(vt_blk(&f->d, BLK_FL, 0, 0, false, NULL), 0);
	fx_free(f);
}

static void test_blk_out_of_range(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE); /* 2048 sectors */
	uint32_t used;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	assert_int_equal(vt_blk(&f->d, BLK_IN, 2047, 512, true, &used), 0);
	assert_int_equal(vt_blk(&f->d, BLK_IN, 2048, 512, true, &used), 1);
	assert_int_equal(used, 1);
	assert_int_equal(vt_blk(&f->d, BLK_IN, 2047, 1024, true, &used), 1);
	assert_int_equal(vt_blk(&f->d, BLK_OUT, 2047, 1024, false, &used), 1);
	assert_int_equal(vt_blk(&f->d, BLK_IN, UINT64_MAX, 512, true, &used), 1);
	assert_int_equal(vt_blk(&f->d, BLK_IN, UINT64_MAX / 512, 512, true, &used), 1);
	/* Not a whole number of sectors. */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 0, 100, true, &used), 1);
	assert_int_equal(vt_blk(&f->d, BLK_OUT, 0, 513, false, &used), 1);
	/* Zero-length read at the end is fine. */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 2048, 0, true, &used), 0);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
}

/* virtio 1.x 2.7.4: the device must not assume a framing.  Header and data
 * in one descriptor, data split over three, status shared with data. */
static void test_blk_any_framing(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	uint8_t *p = vt_ptr(&f->e, VT_DATA), buf[1024];
	uint32_t id, len;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	/* OUT: header + 1024 data bytes in one readable descriptor. */
	memset(p, 0, 16);
	p[0] = BLK_OUT;
	p[8] = 4; /* sector 4 */
	for (int i = 0; i < 1024; i++)
		p[16 + i] = (uint8_t)(i * 13);
	vt_add(&f->d, (struct vt_seg[]){{VT_DATA, 16 + 1024, false}, {VT_STAT, 1, true}}, 2);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0);
	assert_int_equal(pread(f->fd, buf, 1024, 4 * 512), 1024);
	assert_memory_equal(buf, p + 16, 1024);
	/* IN: 3 writable pieces (100, 412, 513 bytes: last byte is the status). */
	p = vt_ptr(&f->e, VT_HDR);
	memset(p, 0, 16);
	p[8] = 4;
	vt_add(&f->d,
	       (struct vt_seg[]){{VT_HDR, 16, false},
				 {0x20000, 100, true},
				 {0x20100, 412, true},
				 {VT_R1_BASE, 513, true}},
	       4);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(len, 1025);
	assert_int_equal(*vt_ptr(&f->e, VT_R1_BASE + 512), 0);
	assert_memory_equal(vt_ptr(&f->e, 0x20000), buf, 100);
	assert_memory_equal(vt_ptr(&f->e, 0x20100), buf + 100, 412);
	assert_memory_equal(vt_ptr(&f->e, VT_R1_BASE), buf + 512, 512);
	/* No writable byte at all: completed with length 0, device stays up. */
	vt_add(&f->d, (struct vt_seg[]){{VT_HDR, 16, false}}, 1);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(len, 0);
	/* Short header (8 bytes): IOERR. */
	vt_add(&f->d, (struct vt_seg[]){{VT_HDR, 8, false}, {VT_STAT, 1, true}}, 2);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 1);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
}

/* SEG_MAX (254) data segments in one request, each its own page. */
static void test_blk_seg_max_segments(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	static struct vt_seg s[256];
	uint8_t *h = vt_ptr(&f->e, VT_HDR), buf[512];
	uint32_t id, len;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 256, 1ull << 2), DRIVER_OK_ALL);
	memset(h, 0, 16);
	h[0] = BLK_OUT;
	h[8] = 100;
	s[0] = (struct vt_seg){VT_HDR, 16, false};
	for (int i = 0; i < 254; i++) {
		uint64_t gpa = 0x20000 + 2048ull * i; /* scattered, not contiguous */
		memset(vt_ptr(&f->e, gpa), i, 512);
		s[1 + i] = (struct vt_seg){gpa, 512, false};
	}
	s[255] = (struct vt_seg){VT_STAT, 1, true};
	vt_add(&f->d, s, 256);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0);
	for (int i = 0; i < 254; i++) {
		assert_int_equal(pread(f->fd, buf, 512, (100 + i) * 512), 512);
		assert_int_equal(buf[0], (uint8_t)i);
		assert_int_equal(buf[511], (uint8_t)i);
	}
	/* And back, into fresh buffers in the other region. */
	h[0] = BLK_IN;
	for (int i = 0; i < 254; i++)
		s[1 + i] = (struct vt_seg){VT_R1_BASE + 1024ull * i, 512, true};
	vt_add(&f->d, s, 256);
	vt_notify(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(len, 254 * 512 + 1);
	for (int i = 0; i < 254; i++)
		assert_int_equal(*vt_ptr(&f->e, VT_R1_BASE + 1024ull * i + 511), (uint8_t)i);
	fx_free(f);
}

static void test_blk_set_backing(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	int fd2 = vt_tempfile(4 << 20);
	uint32_t gen;
	unsigned int irqs;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	gen = vt_r32(f->dev, 0xfc);
	irqs = f->e.irqs;
	assert_int_equal(sqb_vio_blk_set_backing(f->dev, fd2), 0);
	close(fd2);
	assert_int_equal(sqb_vio_blk_capacity(f->dev), 8192);
	assert_int_equal(vt_r32(f->dev, 0x100), 8192);
	assert_int_not_equal(vt_r32(f->dev, 0xfc), gen);
	assert_true(vt_r32(f->dev, 0x60) & SQB_VIO_INT_CONFIG);
	assert_int_equal(f->e.irqs, irqs + 1);
	/* The new file is the one served. */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 8000, 512, true, NULL), 0);
	assert_int_equal(sqb_vio_blk_set_backing(f->dev, -1), -22);
	fx_free(f);
}

static void test_blk_bad_options(void **state)
{
	struct vt_env e;
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
	struct sqb_diag dg;
	sqb_vio_dev *dev = (sqb_vio_dev *)1;
	(void)state;

	vt_env_init(&e);
	assert_int_equal(sqb_vio_blk_new(&dev, &e.host, &o, &dg), -22);
	assert_null(dev);
	assert_non_null(strstr(dg.reason, "fd"));
	o.fd = 12345;
	assert_true(sqb_vio_blk_new(&dev, &e.host, &o, &dg) < 0);
	o.version = 99;
	assert_int_equal(sqb_vio_blk_new(&dev, &e.host, &o, NULL), -22);
	o.version = SQB_VIO_OPTS_VERSION;
	o.fd = 0;
	o.engine = (enum sqb_vio_engine)7;
	assert_int_equal(sqb_vio_blk_new(&dev, &e.host, &o, NULL), -22);
	o.engine = SQB_VIO_ENGINE_ASYNC;
	o.async_depth = 257; /* deeper than a queue can ever be */
	assert_int_equal(sqb_vio_blk_new(&dev, &e.host, &o, NULL), -22);
	sqb_vio_dev_free(NULL);
	vt_env_fini(&e);
}

/* A sparse file: a range never written reads as zeros, status OK, the
 * whole data length reported as written to guest memory. */
static void test_blk_read_unwritten_range(void **state)
{
	char path[] = "/tmp/sqb_vio_sparse.XXXXXX";
	int fd = mkstemp(path);
	struct fx *f;
	uint8_t *data;
	uint32_t used = 0;
	struct sqb_vio_metrics m;
	(void)state;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	f = fx_new_fd(fd, 0, SQB_VIO_CACHE_UNSAFE);
	data = vt_ptr(&f->e, VT_DATA);
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	memset(data, 0xa5, 8192);
	assert_int_equal(vt_blk(&f->d, BLK_IN, 100, 8192, true, &used), 0);
	assert_int_equal(used, 8193);
	for (int i = 0; i < 8192; i++)
		assert_int_equal(data[i], 0);
	sqb_vio_get_metrics(f->dev, &m);
	assert_int_equal(m.read_count, 1);
	assert_int_equal(m.read_bytes, 8192);
	assert_int_equal(m.exec_fails, 0);
	fx_free(f);
}

/* The backing file fails underneath: opened read-only while the drive is
 * read-write (the write gets EBADF), then shrunk below the capacity the
 * driver was told (a read past the new end hits EOF).  Both are IOERR with
 * nothing reported written, counted as execute fails; the device stays up. */
static void test_blk_failing_backing_is_ioerr(void **state)
{
	char path[] = "/tmp/sqb_vio_fail.XXXXXX";
	int wfd = mkstemp(path), rofd;
	struct fx *f;
	uint8_t *data, buf[512];
	uint32_t used = 99;
	struct sqb_vio_metrics m;
	(void)state;

	assert_true(wfd >= 0);
	assert_int_equal(ftruncate(wfd, 1 << 20), 0);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(rofd >= 0);
	f = fx_new_fd(rofd, 0, SQB_VIO_CACHE_UNSAFE);
	data = vt_ptr(&f->e, VT_DATA);
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	memset(data, 0x77, 4096);
	assert_int_equal(vt_blk(&f->d, BLK_OUT, 8, 4096, false, &used), 1);
	assert_int_equal(used, 1);
	assert_int_equal(pread(wfd, buf, 512, 8 * 512), 512);
	assert_int_equal(buf[0], 0);
	/* now shrink it: capacity stays 2048 sectors, the file has 1024 */
	assert_int_equal(ftruncate(wfd, 512 * 1024), 0);
	assert_int_equal(vt_blk(&f->d, BLK_IN, 1500, 4096, true, &used), 1);
	assert_int_equal(used, 1);
	/* a read that ends inside the file still works */
	assert_int_equal(vt_blk(&f->d, BLK_IN, 1000, 4096, true, &used), 0);
	assert_int_equal(used, 4097);
	sqb_vio_get_metrics(f->dev, &m);
	assert_int_equal(m.exec_fails, 2);
	assert_int_equal(m.write_count, 0);
	assert_int_equal(m.read_count, 1);
	assert_false(vt_r32(f->dev, 0x70) & SQB_VIO_S_NEEDS_RESET);
	fx_free(f);
	close(wfd);
	unlink(path);
}

/* ---- Async only ---- */

/* n OUT requests of 512 bytes, request i at sector 10 + i with bytes i + 1,
 * each with its own header, data and status byte; not notified. */
static void add_writes(struct fx *f, unsigned int first, unsigned int n)
{
	for (unsigned int i = first; i < first + n; i++) {
		uint8_t *h = vt_ptr(&f->e, VT_HDR + 16ull * i);

		memset(h, 0, 16);
		h[0] = BLK_OUT;
		h[8] = (uint8_t)(10 + i);
		memset(vt_ptr(&f->e, VT_DATA + 512ull * i), (int)(i + 1), 512);
		*vt_ptr(&f->e, VT_STAT + i) = 0xee;
		vt_add(&f->d,
		       (struct vt_seg[]){{VT_HDR + 16ull * i, 16, false},
					 {VT_DATA + 512ull * i, 512, false},
					 {VT_STAT + i, 1, true}},
		       3);
	}
}

static void check_writes(struct fx *f, unsigned int n)
{
	uint8_t buf[512];

	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(*vt_ptr(&f->e, VT_STAT + i), 0);
		assert_int_equal(pread(f->fd, buf, 512, (10 + i) * 512), 512);
		assert_int_equal(buf[0], (uint8_t)(i + 1));
		assert_int_equal(buf[511], (uint8_t)(i + 1));
	}
}

/* 32 writes in flight (nothing reaped yet: no used entry, no status byte);
 * quiesce waits for all of them and publishes each with one interrupt
 * ([F-101]: a save after quiesce finds nothing in flight). */
static void test_async_quiesce_publishes_all_in_flight(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	uint32_t id, len;
	unsigned int irqs, seen = 0;
	uint64_t heads = 0;
	struct sqb_vio_metrics m;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 128, 0), DRIVER_OK_ALL);
	add_writes(f, 0, 32);
	irqs = f->e.irqs;
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 32);
	assert_false(vt_used(&f->d, &id, &len));
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0xee);
	assert_int_equal(sqb_vio_quiesce(f->dev), 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 0);
	while (vt_used(&f->d, &id, &len)) {
		assert_int_equal(len, 1);
		heads |= 1ull << (id / 3); /* three descriptors a request */
		seen++;
	}
	assert_int_equal(seen, 32);
	assert_int_equal(heads, 0xffffffffull);
	assert_int_equal(f->e.irqs, irqs + 1);
	check_writes(f, 32);
	sqb_vio_get_metrics(f->dev, &m);
	assert_int_equal(m.write_count, 32);
	assert_int_equal(m.write_bytes, 32 * 512);
	fx_free(f);
}

/* Writeback: FLUSH goes to the ring behind the writes sent with it (IO_DRAIN)
 * and is published after all of them; Unsafe: answered at once, as Sync. */
static void test_async_flush_after_writes(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_WRITEBACK);
	uint8_t *h = vt_ptr(&f->e, VT_HDR + 16ull * 40);
	uint32_t id, len, order[9];
	unsigned int n = 0;
	struct sqb_vio_metrics m;
	uint16_t flush_head;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 1ull << 9), DRIVER_OK_ALL);
	add_writes(f, 0, 8);
	memset(h, 0, 16);
	h[0] = BLK_FL;
	*vt_ptr(&f->e, VT_STAT + 40) = 0xee;
	flush_head = vt_add(
	    &f->d, (struct vt_seg[]){{VT_HDR + 16ull * 40, 16, false}, {VT_STAT + 40, 1, true}}, 2);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 9);
	vt_blk_settle(f->dev);
	while (n < 9 && vt_used(&f->d, &id, &len))
		order[n++] = id;
	assert_int_equal(n, 9);
	assert_int_equal(order[8], flush_head);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT + 40), 0);
	check_writes(f, 8);
	sqb_vio_get_metrics(f->dev, &m);
	assert_int_equal(m.flush_count, 1);
	fx_free(f);

	f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 8, 0), DRIVER_OK_ALL);
	assert_int_equal(vt_blk(&f->d, BLK_FL, 0, 0, false, &len), 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 0);
	fx_free(f);
}

/* A write held up in the kernel: another thread's pwrite() to the backing
 * file faults on a userfaultfd page and holds the inode lock meanwhile, so
 * the device's write (punted to io-wq) waits for that lock.  The FLUSH sent
 * with it must wait too (IO_DRAIN): an fsync alone would finish at once.
 * Once the fault is served both complete, the write first.  Skips without
 * userfaultfd. */
struct slow_writer {
	int fd;
	uint8_t *page;
};

static void *slow_write(void *arg)
{
	struct slow_writer *w = arg;

	if (pwrite(w->fd, w->page, 4096, 1 << 19) != 4096)
		abort();
	return NULL;
}

static void test_async_flush_waits_for_a_held_write(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_WRITEBACK);
	long psz = sysconf(_SC_PAGESIZE);
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {0};
	struct uffdio_zeropage zp = {0};
	struct slow_writer w = {f->fd, NULL};
	struct pollfd pfd;
	struct uffd_msg msg;
	uint8_t *h = vt_ptr(&f->e, VT_HDR + 16ull * 40);
	uint32_t id, len;
	uint16_t flush_head;
	pthread_t t;
	int uffd;
	(void)state;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		print_message("userfaultfd unavailable (%s): skipped\n", strerror(errno));
		if (uffd >= 0)
			close(uffd);
		fx_free(f);
		skip();
	}
	w.page =
	    mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(w.page != MAP_FAILED);
	reg.range.start = (uintptr_t)w.page;
	reg.range.len = (uint64_t)psz;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	assert_int_equal(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	assert_int_equal(pthread_create(&t, NULL, slow_write, &w), 0);
	pfd = (struct pollfd){uffd, POLLIN, 0};
	assert_int_equal(poll(&pfd, 1, 5000), 1); /* the writer sits in the fault */
	assert_int_equal(read(uffd, &msg, sizeof(msg)), (ssize_t)sizeof(msg));

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 1ull << 9), DRIVER_OK_ALL);
	add_writes(f, 0, 1);
	memset(h, 0, 16);
	h[0] = BLK_FL;
	*vt_ptr(&f->e, VT_STAT + 40) = 0xee;
	flush_head = vt_add(
	    &f->d, (struct vt_seg[]){{VT_HDR + 16ull * 40, 16, false}, {VT_STAT + 40, 1, true}}, 2);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 2);
	usleep(300000);
	sqb_vio_blk_io_ready(f->dev);
	if (vt_used(&f->d, &id, &len))
		fail_msg("request %u completed while the write was held (FLUSH not ordered)", id);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 2);

	zp.range = reg.range;
	assert_int_equal(ioctl(uffd, UFFDIO_ZEROPAGE, &zp), 0);
	pthread_join(t, NULL);
	vt_blk_settle(f->dev);
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(id, 0); /* the write */
	assert_true(vt_used(&f->d, &id, &len));
	assert_int_equal(id, flush_head);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT + 40), 0);
	check_writes(f, 1);
	munmap(w.page, (size_t)psz);
	close(uffd);
	fx_free(f);
}

/* A ring 4 deep and 10 requests: 4 in flight, the rest wait on the avail
 * ring; each completion lets more in, and all 10 are published. */
static void test_async_full_ring_resumes_on_completions(void **state)
{
	struct fx *f;
	uint32_t id, len;
	unsigned int seen = 0;
	(void)state;

	async_depth = 4;
	f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	async_depth = 0;
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 0), DRIVER_OK_ALL);
	add_writes(f, 0, 10);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 4);
	vt_blk_settle(f->dev);
	while (vt_used(&f->d, &id, &len))
		seen++;
	assert_int_equal(seen, 10);
	check_writes(f, 10);
	fx_free(f);
}

/* PATCH path_on_host with writes in flight: they complete on the old file
 * and are published before the swap. */
static void test_async_set_backing_drains(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	int fd2 = vt_tempfile(1 << 20);
	uint32_t id, len;
	unsigned int seen = 0;
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 0), DRIVER_OK_ALL);
	add_writes(f, 0, 8);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 8);
	assert_int_equal(sqb_vio_blk_set_backing(f->dev, fd2), 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 0);
	while (vt_used(&f->d, &id, &len))
		seen++;
	assert_int_equal(seen, 8);
	check_writes(f, 8); /* f->fd: the old file */
	close(fd2);
	fx_free(f);
}

/* A driver reset with writes in flight waits for them and publishes
 * nothing (the rings are gone); freeing with requests in flight waits too. */
static void test_async_reset_and_free_wait(void **state)
{
	struct fx *f = fx_new(1 << 20, 0, SQB_VIO_CACHE_UNSAFE);
	(void)state;

	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 0), DRIVER_OK_ALL);
	add_writes(f, 0, 8);
	sqb_vio_queue_notify(f->dev, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 8);
	vt_w32(f->dev, 0x70, 0);
	assert_int_equal(sqb_vio_blk_inflight(f->dev), 0);
	assert_int_equal(vt_get16(&f->e, VT_USED + 2), 0);
	assert_int_equal(*vt_ptr(&f->e, VT_STAT), 0xee);
	{
		uint8_t buf[512];

		assert_int_equal(pread(f->fd, buf, 512, 10 * 512), 512);
		assert_int_equal(buf[0], 1);
	}
	assert_int_equal(vt_drv_init(&f->d, &f->e, f->dev, 64, 0), DRIVER_OK_ALL);
	add_writes(f, 0, 8);
	sqb_vio_queue_notify(f->dev, 0);
	fx_free(f); /* under ASan: no completion after free */
}

/* A host whose kernel refuses io_uring (seccomp answers ENOSYS here): the
 * Async device is not created, diag names the call; the probe gives
 * Firecracker's wording.  Sync devices are unaffected. */
static void test_async_without_io_uring(void **state)
{
	pid_t pid;
	int st = -1;
	(void)state;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
		struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
		struct sqb_diag dg = {0};
		struct vt_env e;
		sqb_vio_dev *dev = NULL;
		char why[160];
		int fd = vt_tempfile(4096);

		if (!ctx ||
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0) ||
		    seccomp_load(ctx))
			_exit(10);
		vt_env_init(&e);
		o.fd = fd;
		o.engine = SQB_VIO_ENGINE_ASYNC;
		if (sqb_vio_blk_new(&dev, &e.host, &o, &dg) != -ENOSYS || dev)
			_exit(11);
		if (!strstr(dg.reason, "io_uring_setup") ||
		    !strstr(dg.reason, "Function not implemented"))
			_exit(12);
		if (sqb_vio_blk_async_probe(why, sizeof(why)) != -ENOSYS ||
		    strcmp(why, "Error calling io_uring_setup: Function not implemented "
				"(os error 38)"))
			_exit(13);
		o.engine = SQB_VIO_ENGINE_SYNC;
		if (sqb_vio_blk_new(&dev, &e.host, &o, NULL) || !dev)
			_exit(14);
		sqb_vio_dev_free(dev);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(sqb_vio_blk_async_probe(NULL, 0), 0);
}

static void test_rng_fills_buffers(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev;
	uint8_t a[64], b[64], zero[64] = {0};
	uint32_t id, len;
	(void)state;

	vt_env_init(&e);
	assert_int_equal(sqb_vio_rng_new(&dev, &e.host, NULL), 0);
	assert_int_equal(vt_r32(dev, 0x008), 4);
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 0), DRIVER_OK_ALL);
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(len, 64);
	memcpy(a, vt_ptr(&e, VT_DATA), 64);
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_true(vt_used(&d, &id, &len));
	memcpy(b, vt_ptr(&e, VT_DATA), 64);
	assert_memory_not_equal(a, zero, 64);
	assert_memory_not_equal(a, b, 64);
	/* A readable-only chain gets nothing; a huge one is capped at 64 KiB. */
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, false}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(len, 0);
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 0x80000, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(len, 65536);
	sqb_vio_dev_free(dev);
	vt_env_fini(&e);
}

/* The load's entropy seed (docs/fleet.md "Entropy seed"): only buffers the
 * driver made available are filled (virtio 2.7), up to the seed's bytes,
 * past a limiter that holds the request; nothing on a queue not live. */
static void test_rng_seed_fills_waiting_buffers(void **state)
{
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev;
	struct sqb_vio_rl_config rl = {{64, 0, 100000}, {0, 0, 0}};
	struct sqb_vio_rng_opts o = SQB_VIO_RNG_OPTS_INIT;
	uint8_t zero[64] = {0};
	uint64_t served = 99;
	uint32_t id, len;
	(void)state;

	vt_env_init(&e);
	o.rate_limiter = &rl;
	assert_int_equal(sqb_vio_rng_new(&dev, &e.host, &o), 0);
	assert_int_equal(sqb_vio_rng_seed(dev, 64, &served), 0);
	assert_int_equal(served, 0); /* no driver yet */
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 0), DRIVER_OK_ALL);
	assert_int_equal(sqb_vio_rng_seed(dev, 64, &served), 0);
	assert_int_equal(served, 0); /* nothing available */
	/* the bucket's 64 bytes go to the first request; the second is held */
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_true(vt_used(&d, &id, &len));
	memset(vt_ptr(&e, VT_DATA), 0, 64);
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_false(vt_used(&d, &id, &len));
	assert_int_equal(sqb_vio_rng_seed(dev, 16, &served), 0);
	assert_int_equal(served, 16);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(len, 16);
	assert_memory_not_equal(vt_ptr(&e, VT_DATA), zero, 16);
	assert_memory_equal(vt_ptr(&e, VT_DATA) + 16, zero, 48);
	/* the seed is over: the next request waits for the limiter again */
	vt_add(&d, (struct vt_seg[]){{VT_DATA, 64, true}}, 1);
	sqb_vio_queue_notify(dev, 0);
	assert_false(vt_used(&d, &id, &len));
	assert_int_equal(sqb_vio_rng_seed(NULL, 16, &served), -EINVAL);
	sqb_vio_dev_free(dev);
	vt_env_fini(&e);
}

static int use_sync(void **state)
{
	(void)state;
	engine = SQB_VIO_ENGINE_SYNC;
	return 0;
}

static int use_async(void **state)
{
	(void)state;
	engine = SQB_VIO_ENGINE_ASYNC;
	return 0;
}

#define BLK_CASES                                                                                  \
	cmocka_unit_test(test_mmio_registers_from_spec),                                           \
	    cmocka_unit_test(test_features_need_version_1),                                        \
	    cmocka_unit_test(test_queue_setup_checks), cmocka_unit_test(test_blk_write_read_back), \
	    cmocka_unit_test(test_blk_flush_and_get_id), cmocka_unit_test(test_blk_read_only),     \
	    cmocka_unit_test(test_blk_out_of_range), cmocka_unit_test(test_blk_any_framing),       \
	    cmocka_unit_test(test_blk_seg_max_segments), cmocka_unit_test(test_blk_set_backing),   \
	    cmocka_unit_test(test_blk_read_unwritten_range),                                       \
	    cmocka_unit_test(test_blk_failing_backing_is_ioerr)

int main(void)
{
	const struct CMUnitTest sync_tests[] = {
	    BLK_CASES,
	    cmocka_unit_test(test_blk_bad_options),
	    cmocka_unit_test(test_rng_fills_buffers),
	    cmocka_unit_test(test_rng_seed_fills_waiting_buffers),
	};
	const struct CMUnitTest async_tests[] = {
	    BLK_CASES,
	    cmocka_unit_test(test_async_quiesce_publishes_all_in_flight),
	    cmocka_unit_test(test_async_flush_after_writes),
	    cmocka_unit_test(test_async_flush_waits_for_a_held_write),
	    cmocka_unit_test(test_async_full_ring_resumes_on_completions),
	    cmocka_unit_test(test_async_set_backing_drains),
	    cmocka_unit_test(test_async_reset_and_free_wait),
	    cmocka_unit_test(test_async_without_io_uring),
	};
	int fails = cmocka_run_group_tests_name("virtio_blk_sync", sync_tests, use_sync, NULL);

	return fails +
	       cmocka_run_group_tests_name("virtio_blk_async", async_tests, use_async, NULL);
}
