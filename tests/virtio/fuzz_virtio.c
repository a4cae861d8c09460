/* Fuzz target for the virtqueue walker and the virtio-blk / virtio-rng
 * request parsers: the input is a guest RAM image holding the rings and
 * buffers, plus a flags byte; the device is driven through MMIO like a
 * driver would, notified, saved and restored, and fed the input as a state
 * blob.  Built as a libFuzzer target with -DSQB_LIBFUZZER; otherwise main()
 * replays a corpus folder and runs a fixed-seed mutation pass, so ctest
 * fuzzes a little on every run (under ASan in the sanitizer build).
 *
 * Input: byte 0 flags (bit 0 EVENT_IDX, bit 1 read-only, bit 2 writeback,
 * bit 3 rng instead of blk, bits 4-6 log2 of the queue size, bit 7 indirect
 * descriptors); bytes 1.. are
 * copied to guest-physical 0x1000.  Rings: desc 0x1000, avail 0x1100, used
 * 0x1200; the seeds put headers at 0x1300, status at 0x1310, data at 0x1400. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_host.h"
#include "fuzz_replay.h"
#include "virtio.h"

#define RAM_SIZE 0x10000u
#define R2_BASE	 0x20000u
#define R2_SIZE	 0x1000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE], ram2[R2_SIZE];
static int backing = -1;

static uint8_t *fz_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	(void)opaque;
	(void)write;
	if (len == 0 || gpa + len < gpa)
		return NULL;
	if (gpa + len <= RAM_SIZE)
		return ram + gpa;
	if (gpa >= R2_BASE && gpa + len <= R2_BASE + R2_SIZE)
		return ram2 + (gpa - R2_BASE);
	return NULL;
}

static sqb_vio_dev *make(const struct sqb_vio_host *h, uint8_t flags)
{
	sqb_vio_dev *dev = NULL;

	if (flags & 8) {
		sqb_vio_rng_new(&dev, h, NULL);
	} else {
		struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
		o.fd = backing;
		o.read_only = flags & 2;
		o.cache = flags & 4 ? SQB_VIO_CACHE_WRITEBACK : SQB_VIO_CACHE_UNSAFE;
		o.drive_id = "fuzz";
		sqb_vio_blk_new(&dev, h, &o, NULL);
	}
	return dev;
}

/* A device's own state restores into a twin and saves identically ([F-100]). */
static void twin_check(sqb_vio_dev *dev, sqb_vio_dev *dev2)
{
	uint8_t *st = NULL, *st2 = NULL;
	size_t n = 0, n2 = 0;
	struct sqb_diag dg;
	int rc;

	if (sqb_vio_dev_save(dev, &st, &n))
		abort();
	rc = sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, n, &dg);
	if (rc) {
		fprintf(stderr, "own state refused: %d %s at %llu\n", rc, dg.reason,
			(unsigned long long)dg.offset);
		abort();
	}
	if (sqb_vio_dev_save(dev2, &st2, &n2) || n != n2 || memcmp(st, st2, n))
		abort();
	free(st);
	free(st2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqb_vio_host h = {{NULL, fz_map}, {NULL, vfz_raise}, {NULL, NULL}, {NULL, NULL}};
	sqb_vio_dev *dev, *dev2;
	uint8_t flags;
	uint16_t num;
	uint64_t feat;

	if (size < 1)
		return 0;
	if (backing < 0) {
		backing = memfd_create("fuzz-blk", 0);
		if (backing < 0 || ftruncate(backing, 64 << 10))
			abort();
	}
	flags = data[0];
	num = (uint16_t)(1u << ((flags >> 4) & 7));
	memset(ram, 0, sizeof(ram));
	memset(ram2, 0, sizeof(ram2));
	memcpy(ram + 0x1000, data + 1, size - 1 < RAM_SIZE - 0x1000 ? size - 1 : RAM_SIZE - 0x1000);

	dev = make(&h, flags);
	if (!dev)
		abort();
	vfz_w32(dev, 0x70, 1);
	vfz_w32(dev, 0x70, 3);
	feat = (1ull << 32) | ((flags & 1) ? 1ull << 29 : 0) | ((flags & 2) ? 1ull << 5 : 0) |
	       ((flags & 4) ? 1ull << 9 : 0) | ((flags & 0x80) ? 1ull << 28 : 0);
	vfz_w32(dev, 0x24, 0);
	vfz_w32(dev, 0x20, (uint32_t)feat);
	vfz_w32(dev, 0x24, 1);
	vfz_w32(dev, 0x20, (uint32_t)(feat >> 32));
	vfz_w32(dev, 0x70, 0xb);
	vfz_w32(dev, 0x38, num);
	vfz_w32(dev, 0x80, 0x1000);
	vfz_w32(dev, 0x90, 0x1100);
	vfz_w32(dev, 0xa0, 0x1200);
	vfz_w32(dev, 0x44, 1);
	vfz_w32(dev, 0x70, 0xf);
	sqb_vio_queue_notify(dev, 0);
	sqb_vio_queue_notify(dev, 1);
	if (getenv("SQB_FUZZ_TRACE"))
		fprintf(stderr, "flags 0x%02x num %u: status 0x%x used idx %u avail idx %u\n",
			flags, num, vfz_r32(dev, 0x70), ram[0x1202] | ram[0x1203] << 8,
			ram[0x1102] | ram[0x1103] << 8);

	dev2 = make(&h, flags);
	if (!dev2)
		abort();
	twin_check(dev, dev2);
	/* The input as a state blob: must restore or fail cleanly. */
	sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, data, size, NULL);
	sqb_vio_dev_poll(dev2);
	sqb_vio_dev_free(dev2);

	/* Raw register writes from the input, then notify again. */
	for (size_t i = 1; i + 6 <= size && i < 1 + 6 * 16; i += 6) {
		uint32_t off = (uint32_t)(data[i] | data[i + 1] << 8) & 0xfff;
		uint8_t b[4] = {data[i + 2], data[i + 3], data[i + 4], data[i + 5]};
		sqb_vio_mmio_access(dev, off & ~3u, b, 4, 1);
	}
	sqb_vio_queue_notify(dev, 0);
	dev2 = make(&h, flags);
	if (!dev2)
		abort();
	twin_check(dev, dev2);
	sqb_vio_dev_free(dev2);
	sqb_vio_dev_free(dev);
	return 0;
}

#ifndef SQB_LIBFUZZER
/* the ring area, where mutations matter most */
static size_t aim_rings(size_t n)
{
	return 1 + vfz_next() % (n < 0x300 ? n : 0x300);
}

int main(int argc, char **argv)
{
	return vfz_replay_main(argc, argv, "fuzz_virtio", aim_rings);
}
#endif
