/* Fuzz target for the device records a snapshot load restores into the
 * virtio devices no other target covers: virtio-balloon (with and without
 * its statistics and hinting queues), virtio-mem (two geometries) and
 * virtio-pmem.  Input: byte 0 picks the device (low 3 bits), the rest is
 * the device's state blob (docs/format.md 9.1.1) as sqb_vio_dev_restore gets
 * it from the DEVS section.  A blob must restore or be refused with a
 * reason; one that restores must save back to the same bytes (no field is
 * trusted and then changed) and leave a device that runs: queues notified,
 * config space read, host-side controls called.  Built as a libFuzzer
 * target with -DSQB_LIBFUZZER; otherwise main() replays a corpus folder and
 * runs a fixed-seed mutation pass (tests/virtio/fuzz_replay.c), and
 * `fuzz_devstate_replay --seeds DIR` writes each device's own state there. */
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
#define NDEV	 6u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE];
static int pmem_fd = -1;

static uint8_t *fz_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	(void)opaque;
	(void)write;
	return vfz_ram_map(ram, RAM_SIZE, gpa, len);
}

static int fz_discard(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque, (void)gpa, (void)len;
	return 0;
}

static int fz_slot(void *opaque, uint64_t index, int present)
{
	(void)opaque, (void)index, (void)present;
	return 0;
}

static int fz_vdiscard(void *opaque, uint64_t off, uint64_t len)
{
	(void)opaque, (void)off, (void)len;
	return 0;
}

static void fz_blocks(void *opaque, uint64_t first, uint64_t n, int on)
{
	(void)opaque, (void)first, (void)n, (void)on;
}

static sqb_vio_dev *make(const struct sqb_vio_host *h, unsigned int kind)
{
	sqb_vio_dev *dev = NULL;

	switch (kind) {
	case 0:
	case 1:
	case 2: {
		struct sqb_vio_balloon_opts o = {.version = SQB_VIO_OPTS_VERSION,
						 .amount_mib = 16,
						 .deflate_on_oom = kind == 1,
						 .stats_polling_interval_s = kind ? 1 : 0,
						 .free_page_hinting = kind == 2,
						 .free_page_reporting = kind == 2,
						 .guest_mib = 128,
						 .discard = {NULL, fz_discard}};
		sqb_vio_balloon_new(&dev, &o, h, NULL);
		break;
	}
	case 3:
	case 4: {
		struct sqb_vio_vmem_opts o = {.version = SQB_VIO_OPTS_VERSION,
					      .addr = kind == 3 ? 1ull << 30 : 1ull << 32,
					      .region_size = kind == 3 ? 64ull << 20 : 1ull << 20,
					      .block_size = kind == 3 ? 2ull << 20 : 4096,
					      .slot_size = kind == 3 ? 8ull << 20 : 16384,
					      .backing = {NULL, fz_slot, fz_vdiscard, fz_blocks}};
		sqb_vio_vmem_new(&dev, h, &o);
		break;
	}
	default: {
		struct sqb_vio_pmem_opts o = {.version = SQB_VIO_OPTS_VERSION,
					      .fd = pmem_fd,
					      .read_only = 1,
					      .file_len = 4096,
					      .start = 1ull << 33,
					      .size = 2ull << 20};
		sqb_vio_pmem_new(&dev, h, &o);
	}
	}
	if (!dev)
		abort();
	return dev;
}

/* Like a driver: every offered feature, queues of 8 at 0x1000 + 0x400 * i. */
static void bring_up(sqb_vio_dev *dev)
{
	vfz_w32(dev, 0x70, 1);
	vfz_w32(dev, 0x70, 3);
	for (uint32_t sel = 0; sel < 2; sel++) {
		vfz_w32(dev, 0x14, sel);
		uint32_t f = vfz_r32(dev, 0x10);
		vfz_w32(dev, 0x24, sel);
		vfz_w32(dev, 0x20, f);
	}
	vfz_w32(dev, 0x70, 0xb);
	for (uint32_t q = 0; q < 5; q++) {
		uint32_t base = 0x1000 + 0x400 * q;
		vfz_w32(dev, 0x30, q);
		if (!vfz_r32(dev, 0x34))
			break;
		vfz_w32(dev, 0x38, 8);
		vfz_w32(dev, 0x80, base);
		vfz_w32(dev, 0x90, base + 0x100);
		vfz_w32(dev, 0xa0, base + 0x200);
		vfz_w32(dev, 0x44, 1);
	}
	vfz_w32(dev, 0x70, 0xf);
}

/* A restored device runs: config read, queues notified, host controls. */
static void exercise(sqb_vio_dev *dev, unsigned int kind)
{
	uint8_t cfg[64];

	for (uint32_t off = 0; off < sizeof(cfg); off += 4)
		sqb_vio_mmio_access(dev, 0x100 + off, cfg + off, 4, 0);
	(void)vfz_r32(dev, 0x70);
	(void)vfz_r32(dev, 0x60);
	for (uint32_t q = 0; q < 5; q++)
		sqb_vio_queue_notify(dev, q);
	sqb_vio_dev_poll(dev);
	if (kind <= 2) {
		struct sqb_vio_balloon_stats st;
		uint32_t hc, gc;
		int hg;

		sqb_vio_balloon_set_target(dev, 32);
		sqb_vio_balloon_get_stats(dev, &st);
		sqb_vio_balloon_stats_tick(dev);
		sqb_vio_balloon_hint_status(dev, &hc, &gc, &hg);
		sqb_vio_balloon_hint_start(dev, 1);
		sqb_vio_balloon_hint_stop(dev);
	} else if (kind <= 4) {
		struct sqb_vio_vmem_status st;

		sqb_vio_vmem_status(dev, &st);
		if (st.plugged > st.region_size || st.usable > st.region_size ||
		    st.requested > st.region_size)
			abort();
		sqb_vio_vmem_set_requested(dev, 0);
		sqb_vio_vmem_set_requested(dev, st.block_size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqb_vio_host h = {{NULL, fz_map}, {NULL, vfz_raise}, {NULL, NULL}, {NULL, NULL}};
	struct sqb_diag dg;
	sqb_vio_dev *dev;
	unsigned int kind;
	int rc;

	if (size < 1)
		return 0;
	if (pmem_fd < 0) {
		pmem_fd = memfd_create("fuzz-pmem", 0);
		if (pmem_fd < 0 || ftruncate(pmem_fd, 4096))
			abort();
	}
	kind = (data[0] & 7) % NDEV;
	memset(ram, 0, sizeof(ram));
	dev = make(&h, kind);
	memset(&dg, 0, sizeof(dg));
	rc = sqb_vio_dev_restore(dev, SQB_VIO_STATE_VERSION, data + 1, size - 1, &dg);
	if (rc == 0) {
		uint8_t *st = NULL;
		size_t n = 0;

		if (sqb_vio_dev_save(dev, &st, &n) || n != size - 1 || memcmp(st, data + 1, n)) {
			fprintf(stderr,
				"fuzz_devstate: kind %u: a restored state saves differently\n",
				kind);
			abort();
		}
		free(st);
		exercise(dev, kind);
	} else if (!dg.reason[0]) {
		fprintf(stderr, "fuzz_devstate: kind %u: refused (%d) without a reason\n", kind,
			rc);
		abort();
	}
	sqb_vio_dev_free(dev);
	return 0;
}

#ifndef SQB_LIBFUZZER
static size_t aim(size_t n)
{
	/* the transport record and the first queues: where the counts are */
	return n > 1 ? 1 + (size_t)(vfz_next() % (n - 1 < 160 ? n - 1 : 160)) : 0;
}

/* Each device's own state, brought up like a driver would. */
static int write_seeds(const char *dir)
{
	struct sqb_vio_host h = {{NULL, fz_map}, {NULL, vfz_raise}, {NULL, NULL}, {NULL, NULL}};

	pmem_fd = memfd_create("fuzz-pmem", 0);
	if (pmem_fd < 0 || ftruncate(pmem_fd, 4096))
		return 1;
	for (unsigned int kind = 0; kind < NDEV; kind++)
		for (int up = 0; up < 2; up++) {
			sqb_vio_dev *dev = make(&h, kind);
			uint8_t *st = NULL, k = (uint8_t)kind;
			char path[1024];
			size_t n = 0;
			FILE *f;

			if (up)
				bring_up(dev);
			if (up && kind >= 3)
				sqb_vio_vmem_set_requested(dev, kind == 3 ? 8ull << 20 : 8192);
			if (sqb_vio_dev_save(dev, &st, &n))
				return 1;
			snprintf(path, sizeof(path), "%s/own_%u_%s", dir, kind,
				 up ? "up" : "fresh");
			f = fopen(path, "wb");
			if (!f || fwrite(&k, 1, 1, f) != 1 || fwrite(st, 1, n, f) != n || fclose(f))
				return 1;
			free(st);
			sqb_vio_dev_free(dev);
		}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--seeds"))
		return write_seeds(argv[2]);
	return vfz_replay_main(argc, argv, "fuzz_devstate", aim);
}
#endif
