/* Unit: the PCI transport (runtime/dev_pci.c, runtime/virtio/virtio_pci.c)
 * without a hypervisor, every input a hostile guest or snapshot controls:
 * configuration accesses of every size at every alignment through the 0xcf8
 * ports and the ECAM, the MSI-X table and PBA, the virtio PCI configuration
 * access window, BAR sizing and moves, the common configuration's odd
 * accesses, the [F-135] / [F-136] records with hostile bytes, and the lock
 * order between a vCPU, the window and a device raising MSI-X messages
 * (run it under TSan: build-tsan). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pci_rig.h"

#define FN 1 /* the first function's slot */

/* The layout dev_pci.c builds (docs/virtio.md "PCI transport"). */
#define CAP_PCICFG 0x84 /* bar +4, offset +8, length +12, data +16 */
#define CAP_MSIX   0x98
#define NVEC	   2 /* virtio-rng: configuration + 1 queue */

/* [F-135] offsets for NVEC */
#define R_CONFIG  20
#define R_MSIX	  276
#define R_PBA	  (276 + 16 * NVEC)
#define R_VECTORS (284 + 16 * NVEC)

static struct pr_rig R;

static int setup(void **state)
{
	(void)state;
	return pr_init(&R, 2);
}

static int teardown(void **state)
{
	(void)state;
	pr_fini(&R);
	return 0;
}

static uint32_t rd32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void wr32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* The function's 256 bytes, read as aligned DWORDs. */
static void cfg_image(unsigned int devno, uint8_t img[256])
{
	for (unsigned int reg = 0; reg < 256; reg += 4)
		wr32(img + reg, (uint32_t)pr_cfg_rd(&R, devno, reg, 4));
}

static int all_bytes(const uint8_t *b, unsigned int n, uint8_t v)
{
	for (unsigned int i = 0; i < n; i++)
		if (b[i] != v)
			return 0;
	return 1;
}

/* ---- configuration space ---- */

/* Every size 1..8 at every offset of the first 0x110 bytes and the last
 * 0x10 of a 4 KiB function block, for the bridge, a function, an empty
 * slot and function 1: aligned 1/2/4 bytes read the image (zero past 256),
 * anything else all-ones; writes never change a read-only byte. */
static void test_ecam_every_size_and_alignment(void **state)
{
	static const unsigned int devnos[] = {0, FN, 9};
	uint8_t img[3][256];

	(void)state;
	cfg_image(0, img[0]);
	cfg_image(FN, img[1]);
	assert_int_equal(rd32(img[1]), 0x10441af4); /* 1af4:1044, virtio-rng */
	assert_int_equal(rd32(img[0]), 0x0d578086);
	for (unsigned int d = 0; d < 3; d++)
		for (unsigned int fn = 0; fn < 2; fn++)
			for (unsigned int reg = 0; reg < 0x1000; reg++) {
				if (reg == 0x110)
					reg = 0xff0;
				for (unsigned int size = 1; size <= 8; size++) {
					uint8_t b[8], want[8];
					int ok = (size == 1 || size == 2 || size == 4) &&
						 reg % size == 0 && !fn && d < 2;

					memset(b, 0xa5, sizeof(b));
					pr_mmio(&R, pr_ecam(devnos[d], fn, reg), b, size, 0);
					if (!ok)
						memset(want, 0xff, size);
					else if (reg >= 256)
						memset(want, 0, size);
					else
						memcpy(want, img[d] + reg, size);
					if (memcmp(b, want, size))
						fail_msg("dev %u fn %u reg 0x%x size %u", devnos[d],
							 fn, reg, size);
				}
			}
	/* hostile writes of every size everywhere (the BARs and the MSI-X
	 * control aside: they move or enable things the checks below need) */
	for (unsigned int reg = 0; reg < 0x110; reg++)
		for (unsigned int size = 1; size <= 8; size++) {
			uint8_t b[8];

			if (reg + size > 0x10 && reg < 0x18)
				continue;
			if (reg + size > CAP_MSIX + 2 && reg < CAP_MSIX + 4)
				continue;
			memset(b, 0xff, sizeof(b));
			pr_mmio(&R, pr_ecam(FN, 0, reg), b, size, 1);
			pr_mmio(&R, pr_ecam(0, 0, reg), b, size, 1);
		}
	{
		uint8_t now[256], br[256];

		cfg_image(FN, now);
		cfg_image(0, br);
		assert_memory_equal(br, img[0], 256); /* the bridge is read-only */
		/* ids, class, header, capability chain and layout, MSI-X table
		 * size/offset/BIR: unchanged */
		assert_memory_equal(now, img[1], 4);
		assert_memory_equal(now + 8, img[1] + 8, 4);
		assert_int_equal(now[0x0e], img[1][0x0e]);
		assert_int_equal(now[0x34], img[1][0x34]);
		for (unsigned int c = 0x40; c < CAP_PCICFG; c++)
			assert_int_equal(now[c], img[1][c]);
		assert_memory_equal(now + CAP_PCICFG, img[1] + CAP_PCICFG, 4);
		assert_memory_equal(now + CAP_MSIX, img[1] + CAP_MSIX, 2);
		assert_memory_equal(now + CAP_MSIX + 4, img[1] + CAP_MSIX + 4, 8);
		assert_int_equal(now[CAP_MSIX + 2] & 0x7ff, NVEC - 1);
	}
}

/* Type-1 access: the latch is a DWORD at 0xcf8 only; data at 0xcfc..0xcff
 * by byte lane; bus != 0, function != 0, the enable bit clear or a lane
 * access that would cross 0xcff read all-ones. */
static void test_cf8_cfc_byte_lanes(void **state)
{
	uint8_t img[256];
	uint32_t latch, v;

	(void)state;
	cfg_image(FN, img);
	for (unsigned int reg = 0; reg < 256; reg += 4)
		for (unsigned int lane = 0; lane < 4; lane++)
			for (unsigned int size = 1; size <= 4; size <<= 1) {
				uint8_t b[4], want[4];

				latch = 0x80000000u | FN << 11 | reg;
				pr_pio(&R, 0xcf8, &latch, 4, 1);
				memset(b, 0xa5, sizeof(b));
				pr_pio(&R, (uint16_t)(0xcfc + lane), b, size, 0);
				if (lane + size > 4 || lane % size)
					memset(want, 0xff, size);
				else
					memcpy(want, img + reg + lane, size);
				if (memcmp(b, want, size))
					fail_msg("reg 0x%x lane %u size %u", reg, lane, size);
			}
	/* the latch: only a DWORD at 0xcf8, reserved bits dropped */
	latch = 0xffffffffu;
	pr_pio(&R, 0xcf8, &latch, 4, 1);
	pr_pio(&R, 0xcf8, &v, 4, 0);
	assert_int_equal(v, 0x80fffffcu);
	for (unsigned int port = 0xcf8; port < 0xcfc; port++)
		for (unsigned int size = 1; size <= 4; size <<= 1) {
			uint32_t junk = 0;

			if (port == 0xcf8 && size == 4)
				continue;
			pr_pio(&R, (uint16_t)port, &junk, size, 1);
			v = 0;
			pr_pio(&R, (uint16_t)port, &v, size, 0);
			assert_int_equal(v, size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1);
		}
	pr_pio(&R, 0xcf8, &v, 4, 0);
	assert_int_equal(v, 0x80fffffcu);
	/* bus 1, function 1, enable clear */
	for (unsigned int i = 0; i < 3; i++) {
		static const uint32_t bad[] = {0x80010000u | FN << 11, 0x80000100u | FN << 11,
					       FN << 11};

		pr_pio(&R, 0xcf8, (void *)&bad[i], 4, 1);
		v = 0;
		pr_pio(&R, 0xcfc, &v, 4, 0);
		assert_int_equal(v, 0xffffffffu);
	}
}

/* ---- BAR0 ---- */

static void test_bar_sizing_and_moves(void **state)
{
	uint64_t bar = pr_bar(FN);

	(void)state;
	/* decoding off: an empty bus */
	assert_int_equal(pr_bar_rd(&R, FN, 0x12, 2), 0xffff);
	pr_cfg_wr(&R, FN, 0x04, 2, 0x2);
	assert_int_equal(pr_bar_rd(&R, FN, 0x12, 2), 1); /* num_queues */
	/* sizing: all-ones, 64-bit memory BAR of 0x80000 bytes */
	pr_cfg_wr(&R, FN, 0x10, 4, 0xffffffff);
	pr_cfg_wr(&R, FN, 0x14, 4, 0xffffffff);
	assert_int_equal(pr_cfg_rd(&R, FN, 0x10, 4), 0xfff80004u);
	assert_int_equal(pr_cfg_rd(&R, FN, 0x14, 4), 0xffffffffu);
	assert_int_equal(pr_bar_rd(&R, FN, 0x12, 2), 0xffff); /* moved: gone */
	pr_bar_wr(&R, FN, 0x14, 1, 1);			      /* dropped */
	pr_cfg_wr(&R, FN, 0x10, 4, (uint32_t)bar);
	pr_cfg_wr(&R, FN, 0x14, 4, (uint32_t)(bar >> 32));
	assert_int_equal(pr_cfg_rd(&R, FN, 0x10, 4), (uint32_t)bar | 4);
	assert_int_equal(pr_bar_rd(&R, FN, 0x12, 2), 1);
	assert_int_equal(pr_bar_rd(&R, FN, 0x14, 1), 0); /* the write above was dropped */
	/* every size at the BAR's last bytes and across region ends */
	for (unsigned int size = 1; size <= 8; size++) {
		static const uint64_t offs[] = {0x37,	 0x1fff,  0x2000,  0x4fff,
						0x5fff,	 0x6ffe,  0x7ffc,  0x47ffc,
						0x48000, 0x7fff8, 0x7fffc, 0x7ffff};

		for (unsigned int i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			pr_bar_rd(&R, FN, offs[i], size);
			pr_bar_wr(&R, FN, offs[i], size, ~0ull);
		}
	}
}

/* ---- the common configuration ---- */

static void test_common_cfg_hostile_accesses(void **state)
{
	(void)state;
	pr_cfg_wr(&R, FN, 0x04, 2, 0x2);
	pr_bar_wr(&R, FN, 0x14, 1, 0);
	pr_bar_wr(&R, FN, 0x14, 1, 3);
	pr_bar_wr(&R, FN, 0x16, 2, 0);
	pr_bar_wr(&R, FN, 0x18, 2, 16);
	pr_bar_wr(&R, FN, 0x20, 4, 0x11112222);
	pr_bar_wr(&R, FN, 0x24, 4, 0x3);
	assert_int_equal(pr_bar_rd(&R, FN, 0x20, 8), 0x311112222ull);
	pr_bar_wr(&R, FN, 0x24, 8, 0x5555555555555555ull); /* 8 bytes at the high half */
	pr_bar_wr(&R, FN, 0x20, 2, 0x7777);		   /* 2 bytes of a 64-bit field */
	assert_int_equal(pr_bar_rd(&R, FN, 0x20, 8), 0x311112222ull);
	assert_int_equal(pr_bar_rd(&R, FN, 0x24, 4), 0x3);
	/* queue_msix_vector at or above the table: NO_VECTOR */
	pr_bar_wr(&R, FN, 0x1a, 2, NVEC);
	assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 0xffff);
	pr_bar_wr(&R, FN, 0x10, 2, 0x1234);
	assert_int_equal(pr_bar_rd(&R, FN, 0x10, 2), 0xffff);
	pr_bar_wr(&R, FN, 0x1a, 2, 1);
	assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 1);
	/* a queue that does not exist: size 0, NO_VECTOR (virtio 4.1.4.3:
	 * the device returns NO_VECTOR for an unmapped event; Firecracker's
	 * common_config.rs), and its fields take no write */
	for (uint32_t sel = 1; sel <= 0xffff; sel = sel * 3 + 1) {
		pr_bar_wr(&R, FN, 0x16, 2, sel);
		assert_int_equal(pr_bar_rd(&R, FN, 0x16, 2), sel & 0xffff);
		assert_int_equal(pr_bar_rd(&R, FN, 0x18, 2), 0);
		assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 0xffff);
		for (unsigned int off = 0x18; off < 0x38; off += 2)
			pr_bar_wr(&R, FN, off, 2, 0x0101);
		for (unsigned int off = 0x18; off < 0x38; off += 4)
			pr_bar_wr(&R, FN, off, 4, 0x01010101);
		assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 0xffff);
		assert_int_equal(pr_bar_rd(&R, FN, 0x1c, 2), 0);
		assert_int_equal(pr_bar_rd(&R, FN, 0x20, 8), 0);
	}
	pr_bar_wr(&R, FN, 0x16, 2, 0);
	assert_int_equal(pr_bar_rd(&R, FN, 0x18, 2), 16);
	assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 1);
	assert_int_equal(pr_bar_rd(&R, FN, 0x20, 8), 0x311112222ull);
	/* feature words past the two that exist */
	for (uint32_t sel = 2; sel < 0x80000000u; sel = sel * 5 + 3) {
		pr_bar_wr(&R, FN, 0x00, 4, sel);
		pr_bar_wr(&R, FN, 0x08, 4, sel);
		pr_bar_wr(&R, FN, 0x0c, 4, 0xffffffff);
		assert_int_equal(pr_bar_rd(&R, FN, 0x04, 4), 0);
		assert_int_equal(pr_bar_rd(&R, FN, 0x0c, 4), 0);
	}
	/* reads of sizes a page-crossing access splits into (3, 5, 6, 7
	 * bytes) and of holes return zero, never the caller's old bytes */
	for (unsigned int size = 1; size <= 8; size++) {
		static const uint64_t offs[] = {0x0,	0x35,	0x38,	0x1000, 0x2001,
						0x3ffd, 0x5000, 0x6000, 0x7000};

		for (unsigned int i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			uint8_t b[8];

			if (offs[i] == 0 && (size == 1 || size == 2 || size == 4 || size == 8))
				continue;
			memset(b, 0xa5, sizeof(b));
			pr_mmio(&R, pr_bar(FN) + offs[i], b, size, 0);
			if (!all_bytes(b, size, 0))
				fail_msg("BAR0 + 0x%llx, %u bytes: not zero",
					 (unsigned long long)offs[i], size);
		}
	}
	/* notifies beyond the queues, any width, before DRIVER_OK and after */
	for (unsigned int off = 0x6000; off < 0x7000; off += 0xfe)
		for (unsigned int size = 1; size <= 8; size <<= 1)
			pr_bar_wr(&R, FN, off, size, 0xffff);
	/* the ISR: read clears; a write does nothing */
	pr_bar_wr(&R, FN, 0x2000, 1, 0xff);
	assert_int_equal(pr_bar_rd(&R, FN, 0x2000, 1), 0);
}

/* ---- MSI-X ---- */

static void raise(unsigned int devno, uint16_t v)
{
	struct pr_fn *f = &R.fn[devno - 1];

	f->slot.msi(f->slot.msi_arg, v);
}

static void test_msix_table_and_pba(void **state)
{
	uint64_t t = SQB_VIO_PCI_MSIX_TABLE, pba = SQB_VIO_PCI_MSIX_PBA;

	(void)state;
	pr_cfg_wr(&R, FN, 0x04, 2, 0x2);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_MSIX, 1), 0x11);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_MSIX + 2, 2), NVEC - 1);
	assert_int_equal(pr_bar_rd(&R, FN, t + 12, 4), 1); /* masked at reset */
	/* entry writes: DWORD or aligned QWORD only, never past nvec */
	pr_bar_wr(&R, FN, t, 8, 0x00000000fee01000ull);
	pr_bar_wr(&R, FN, t + 8, 4, 0x41);
	pr_bar_wr(&R, FN, t + 1, 1, 0xff);
	pr_bar_wr(&R, FN, t + 2, 2, 0xffff);
	pr_bar_wr(&R, FN, t + 2, 4, 0xffffffff);
	pr_bar_wr(&R, FN, t + 4, 8, ~0ull);
	pr_bar_wr(&R, FN, t + 16 * NVEC, 4, 0xdead);
	pr_bar_wr(&R, FN, t + 16 * 8, 8, ~0ull);
	pr_bar_wr(&R, FN, pba - 8, 8, ~0ull);
	assert_int_equal(pr_bar_rd(&R, FN, t, 8), 0xfee01000ull);
	assert_int_equal(pr_bar_rd(&R, FN, t + 8, 4), 0x41);
	assert_int_equal(pr_bar_rd(&R, FN, t + 16 * NVEC, 4), 0);
	assert_int_equal(pr_bar_rd(&R, FN, t + 1, 1), 0);
	assert_int_equal(pr_bar_rd(&R, FN, t + 2, 4), 0);
	/* vector control: only the mask bit */
	pr_bar_wr(&R, FN, t + 12, 4, 0xfffffffe);
	assert_int_equal(pr_bar_rd(&R, FN, t + 12, 4), 0);
	pr_bar_wr(&R, FN, t + 12, 4, 1);
	/* MSI-X disabled: a message is dropped, nothing pending */
	raise(FN, 0);
	assert_int_equal(pr_nmsi(&R), 0);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 8), 0);
	/* enabled, entry masked: pending; unmasking sends it */
	pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, 0x8000);
	raise(FN, 0);
	raise(FN, 0);
	assert_int_equal(pr_nmsi(&R), 0);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 8), 1);
	pr_bar_wr(&R, FN, pba, 8, 0); /* the PBA is read-only */
	pr_bar_wr(&R, FN, pba, 4, 0);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 1), 1);
	assert_int_equal(pr_bar_rd(&R, FN, pba + 8, 8), 0);
	assert_int_equal(pr_bar_rd(&R, FN, 0x7fff8, 8), 0);
	pr_bar_wr(&R, FN, t + 12, 4, 0);
	assert_int_equal(pr_nmsi(&R), 1);
	assert_int_equal(R.msi[0].addr, 0xfee01000ull);
	assert_int_equal(R.msi[0].data, 0x41);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 8), 0);
	/* the function mask holds every vector */
	pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, 0xc000);
	raise(FN, 0);
	assert_int_equal(pr_nmsi(&R), 1);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 8), 1);
	pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, 0x8000);
	assert_int_equal(pr_nmsi(&R), 2);
	/* vectors the table does not have */
	raise(FN, NVEC);
	raise(FN, 7);
	raise(FN, 63);
	raise(FN, 64);
	raise(FN, 0xffff);
	assert_int_equal(pr_nmsi(&R), 2);
	assert_int_equal(pr_bar_rd(&R, FN, pba, 8), 0);
	/* any address and data go to KVM_SIGNAL_MSI as they are (KVM decodes
	 * them as a local APIC message: docs/security.md "Guest") */
	pr_bar_wr(&R, FN, t + 16, 8, 0xdeadbeef00001234ull);
	pr_bar_wr(&R, FN, t + 16 + 8, 4, 0xffffc5ffu);
	pr_bar_wr(&R, FN, t + 16 + 12, 4, 0);
	raise(FN, 1);
	assert_int_equal(pr_nmsi(&R), 3);
	assert_int_equal(R.msi[2].addr, 0xdeadbeef00001234ull);
	assert_int_equal(R.msi[2].data, 0xffffc5ffu);
	/* the table-size field is read-only */
	pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, 0x87ff);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_MSIX + 2, 2), 0x8000 | (NVEC - 1));
}

/* ---- the PCI configuration access capability's window ---- */

static void window(unsigned int devno, uint8_t bar, uint32_t off, uint32_t len)
{
	pr_cfg_wr(&R, devno, CAP_PCICFG + 4, 1, bar);
	pr_cfg_wr(&R, devno, CAP_PCICFG + 8, 4, off);
	pr_cfg_wr(&R, devno, CAP_PCICFG + 12, 4, len);
}

static void test_pcicfg_window_hostile(void **state)
{
	static const struct {
		uint8_t bar;
		uint32_t off, len;
	} bad[] = {
	    {0, 0x14, 0},	   {0, 0x14, 3},	  {0, 0x14, 8},	      {1, 0x14, 1},
	    {5, 0x14, 1},	   {0xff, 0x14, 1},	  {0, 0x13, 2},	      {0, 0x7fffe, 4},
	    {0, 0x80000, 1},	   {0, 0xfffffffc, 4},	  {0, 0xfffffffe, 2}, {0, 0xffffffff, 1},
	    {0, 0x14, 0xffffffff}, {0, 0x14, 0x80000001}, {0, 0x80000000, 4},
	};
	uint64_t t = SQB_VIO_PCI_MSIX_TABLE;

	(void)state;
	assert_int_equal(pr_find_cap(&R, FN, 0x09, 5), CAP_PCICFG);
	/* the window works with memory decoding off (4.1.4.9) */
	window(FN, 0, 0x12, 2);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 4), 1); /* num_queues */
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 1), 0); /* narrower than length */
	window(FN, 0, 0x14, 1);
	pr_cfg_wr(&R, FN, CAP_PCICFG + 16, 1, 1);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 4), 1);
	/* hostile windows read zero and take no write */
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		window(FN, bad[i].bar, bad[i].off, bad[i].len);
		for (unsigned int size = 1; size <= 4; size <<= 1)
			for (unsigned int lane = 0; lane < 4; lane += size) {
				assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16 + lane, size),
						 0);
				pr_cfg_wr(&R, FN, CAP_PCICFG + 16 + lane, size, 0);
			}
	}
	pr_cfg_wr(&R, FN, 0x04, 2, 0x2);
	assert_int_equal(pr_bar_rd(&R, FN, 0x14, 1), 1);
	/* into the MSI-X table and PBA: the entry, then the PBA, read back */
	window(FN, 0, (uint32_t)t + 16 + 8, 4);
	pr_cfg_wr(&R, FN, CAP_PCICFG + 16, 4, 0x4242);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 4), 0x4242);
	assert_int_equal(pr_bar_rd(&R, FN, t + 16 + 8, 4), 0x4242);
	window(FN, 0, SQB_VIO_PCI_MSIX_PBA + 4, 4);
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 4), 0);
	window(FN, 0, 0x7fffc, 4); /* the BAR's last DWORD */
	assert_int_equal(pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 4), 0);
}

/* A notify through the window makes the device raise an MSI-X message
 * from inside a configuration write: the function's lock must not be held
 * there (a self-deadlock: this test would hang). */
static void test_pcicfg_notify_raises_msi(void **state)
{
	struct vt_drv d = {.e = &R.env, .dev = R.fn[0].dev, .num = 16};
	struct vt_seg seg = {VT_DATA, 64, true};
	uint32_t id, len;

	(void)state;
	pr_enable_msix(&R, FN);
	assert_int_equal(pr_virtio_init(&R, FN, 16, 0, 1), 15);
	vt_add(&d, &seg, 1);
	window(FN, 0, SQB_VIO_PCI_NOTIFY_OFF, 2);
	pr_cfg_wr(&R, FN, CAP_PCICFG + 16, 2, 0);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(len, 64);
	assert_int_equal(pr_nmsi(&R), 1);
	assert_int_equal(R.msi[0].addr, 0xfee01000ull);
	assert_int_equal(R.msi[0].data, 0x41);
	/* queue fields are frozen after DRIVER_OK */
	pr_bar_wr(&R, FN, 0x18, 2, 32);
	pr_bar_wr(&R, FN, 0x1a, 2, 0);
	pr_bar_wr(&R, FN, 0x20, 8, 0x5000);
	assert_int_equal(pr_bar_rd(&R, FN, 0x18, 2), 16);
	assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 1);
	assert_int_equal(pr_bar_rd(&R, FN, 0x20, 8), VT_DESC);
	/* the same notify through BAR0, with the entry masked: pending */
	pr_bar_wr(&R, FN, SQB_VIO_PCI_MSIX_TABLE + 16 + 12, 4, 1);
	vt_add(&d, &seg, 1);
	pr_bar_wr(&R, FN, SQB_VIO_PCI_NOTIFY_OFF, 4, 0);
	assert_true(vt_used(&d, &id, &len));
	assert_int_equal(pr_nmsi(&R), 1);
	assert_int_equal(pr_bar_rd(&R, FN, SQB_VIO_PCI_MSIX_PBA, 8), 2);
	assert_int_equal(pr_bar_rd(&R, FN, 0x2000, 1), 1); /* ISR: queue interrupt */
	assert_int_equal(pr_bar_rd(&R, FN, 0x2000, 1), 0); /* cleared by the read */
}

/* ---- [F-135] ---- */

static uint8_t *save_fn(unsigned int devno, size_t *len)
{
	uint8_t *st = NULL;

	assert_int_equal(sqb_dev_save(R.fn[devno - 1].bus_dev, &st, len), 0);
	return st;
}

static int load_fn(unsigned int devno, const uint8_t *st, size_t len)
{
	const char *field = NULL;

	return sqb_dev_load(R.fn[devno - 1].bus_dev, SQB_VIO_STATE_VERSION, st, len, &field);
}

static void test_f135_record_layout_and_hostile_bytes(void **state)
{
	uint8_t *st, *mut, *back;
	size_t len, blen;
	uint8_t img[256], now[256];

	(void)state;
	pr_enable_msix(&R, FN);
	assert_int_equal(pr_virtio_init(&R, FN, 16, 0, 1), 15);
	cfg_image(FN, img);
	st = save_fn(FN, &len);
	assert_true(len > R_VECTORS + 4 * NVEC);
	assert_int_equal(rd32(st), 1);
	assert_int_equal(rd32(st + 4), FN);
	assert_int_equal(rd32(st + 8), (uint32_t)pr_bar(FN));
	assert_int_equal(rd32(st + 12), (uint32_t)(pr_bar(FN) >> 32));
	assert_int_equal(rd32(st + 16), NVEC);
	assert_memory_equal(st + R_CONFIG, img, 256);
	assert_int_equal(rd32(st + R_MSIX + 16), 0xfee01000u);
	assert_int_equal(rd32(st + R_MSIX + 16 + 8), 0x41);
	assert_int_equal(rd32(st + R_VECTORS), 0);
	assert_int_equal(rd32(st + R_VECTORS + 4), 1);
	mut = malloc(len + 1);
	assert_non_null(mut);
	/* every truncation is refused and changes nothing */
	for (size_t n = 0; n < len; n++)
		assert_int_not_equal(load_fn(FN, st, n), 0);
	memcpy(mut, st, len);
	mut[len] = 0;
	assert_int_not_equal(load_fn(FN, mut, len + 1), 0);
	/* invariants */
	static const struct {
		size_t at;
		uint32_t v;
		int err;
	} inv[] = {
	    {0, 2, -SQB_EVERSION},
	    {4, FN + 1, -SQB_EMISMATCH},
	    {8, 0x1000, -SQB_EMISMATCH},
	    {16, NVEC + 1, -SQB_EMISMATCH},
	    {16, 0xffffffff, -SQB_EMISMATCH},
	    {R_CONFIG + 0, 0x10411af4, -SQB_EMISMATCH},	       /* device id */
	    {R_CONFIG + 8, 0x02000001, -SQB_EMISMATCH},	       /* class */
	    {R_CONFIG + 0x34, 0x50, -SQB_EMISMATCH},	       /* capability pointer */
	    {R_CONFIG + CAP_MSIX, 0x00010009, -SQB_EMISMATCH}, /* MSI-X capability id */
	    {R_PBA, 1u << NVEC, -SQB_EMISMATCH},
	    {R_PBA + 4, 1, -SQB_EMISMATCH},
	};
	for (unsigned int i = 0; i < sizeof(inv) / sizeof(inv[0]); i++) {
		memcpy(mut, st, len);
		wr32(mut + inv[i].at, inv[i].v);
		assert_int_equal(load_fn(FN, mut, len), inv[i].err);
	}
	back = save_fn(FN, &blen);
	assert_int_equal(blen, len);
	assert_memory_equal(back, st, len); /* refused loads changed nothing */
	free(back);
	/* read-only bytes in the record are not taken: the function keeps its
	 * own (status, MSI-X table size/offset/BIR, the other capabilities) */
	memcpy(mut, st, len);
	wr32(mut + R_CONFIG + 0x04, 0xffff0002);	 /* status */
	wr32(mut + R_CONFIG + CAP_MSIX, 0xffff0011);	 /* table size 0x7ff */
	wr32(mut + R_CONFIG + CAP_MSIX + 4, 0x00000005); /* BIR 5, offset 0 */
	wr32(mut + R_CONFIG + 0x40, 0x01104409);	 /* common cap's next */
	wr32(mut + R_CONFIG + 0x48, 0x1234);		 /* common cap's offset */
	wr32(mut + R_MSIX + 12, 0xfffffffe);		 /* vector control */
	assert_int_equal(load_fn(FN, mut, len), 0);
	cfg_image(FN, now);
	assert_int_equal(now[0x06] | now[0x07] << 8, 0x10);
	assert_memory_equal(now + 0x40, img + 0x40, CAP_PCICFG + 4 - 0x40);
	assert_int_equal(now[CAP_MSIX + 2] | (now[CAP_MSIX + 3] & 0x7) << 8, NVEC - 1);
	assert_memory_equal(now + CAP_MSIX + 4, img + CAP_MSIX + 4, 8);
	assert_int_equal(pr_bar_rd(&R, FN, SQB_VIO_PCI_MSIX_TABLE + 12, 4), 0);
	/* vectors outside the table load as NO_VECTOR, whatever their upper
	 * 16 bits ([F-135]) */
	static const uint32_t vecs[] = {NVEC, 0xfffe, 0x10000, 0x10001, 0xffff0000u};
	for (unsigned int i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		memcpy(mut, st, len);
		wr32(mut + R_VECTORS, vecs[i]);
		wr32(mut + R_VECTORS + 4, vecs[i]);
		assert_int_equal(load_fn(FN, mut, len), 0);
		assert_int_equal(pr_bar_rd(&R, FN, 0x10, 2), 0xffff);
		pr_bar_wr(&R, FN, 0x16, 2, 0);
		assert_int_equal(pr_bar_rd(&R, FN, 0x1a, 2), 0xffff);
	}
	/* every single byte of the PCI part, every value class: no crash,
	 * and whatever loads keeps the identity bytes */
	for (size_t at = 0; at < R_VECTORS + 4 * NVEC; at++)
		for (unsigned int k = 0; k < 4; k++) {
			static const uint8_t vals[] = {0x00, 0xff, 0x80, 0x01};

			memcpy(mut, st, len);
			mut[at] = vals[k];
			if (load_fn(FN, mut, len) == 0) {
				cfg_image(FN, now);
				assert_memory_equal(now, img, 4);
				assert_int_equal(now[CAP_MSIX], 0x11);
			}
		}
	assert_int_equal(load_fn(FN, st, len), 0);
	back = save_fn(FN, &blen);
	assert_memory_equal(back, st, len);
	free(back);
	free(mut);
	free(st);
}

/* ---- [F-136] ---- */

static void test_f136_latch_record(void **state)
{
	struct sqb_dev *io = sqb_bus_by_id(&R.bus, "pci-cfg-io");
	uint8_t rec[8], *st;
	const char *field;
	size_t len;
	uint32_t v;

	(void)state;
	assert_non_null(io);
	v = 0x80000000u | FN << 11 | 0x2c;
	pr_pio(&R, 0xcf8, &v, 4, 1);
	assert_int_equal(sqb_dev_save(io, &st, &len), 0);
	assert_int_equal(len, 8);
	assert_int_equal(rd32(st), v);
	assert_int_equal(rd32(st + 4), 0);
	free(st);
	/* reserved latch bits and reserved bytes are refused, the latch kept */
	static const uint32_t bad[] = {0x80000001u, 0x80000002u, 0x7f000000u, 0x01000000u};
	for (unsigned int i = 0; i < 4; i++) {
		wr32(rec, bad[i]);
		wr32(rec + 4, 0);
		assert_int_equal(sqb_dev_load(io, 1, rec, 8, &field), -SQB_ECORRUPT);
	}
	wr32(rec, 0x80000000u);
	wr32(rec + 4, 1);
	assert_int_equal(sqb_dev_load(io, 1, rec, 8, &field), -SQB_ERESERVED);
	assert_int_not_equal(sqb_dev_load(io, 1, rec, 7, &field), 0);
	{
		uint8_t longer[9] = {0x00, 0x08, 0x00, 0x80, 0, 0, 0, 0, 0}; /* 00:01.0 reg 0 */

		assert_int_equal(sqb_dev_load(io, 1, longer, 9, &field), -SQB_ECORRUPT);
	}
	assert_int_not_equal(sqb_dev_load(io, 2, rec, 8, &field), 0);
	pr_pio(&R, 0xcf8, &v, 4, 0);
	assert_int_equal(v, 0x80000000u | FN << 11 | 0x2c);
	/* a loaded latch completes the access after the load, any bus/slot */
	wr32(rec, 0x80000000u | FN << 11);
	wr32(rec + 4, 0);
	assert_int_equal(sqb_dev_load(io, 1, rec, 8, &field), 0);
	v = 0;
	pr_pio(&R, 0xcfc, &v, 4, 0);
	assert_int_equal(v, 0x10441af4);
	wr32(rec, 0x80ff0000u | 31 << 11 | 7 << 8 | 0xfc);
	assert_int_equal(sqb_dev_load(io, 1, rec, 8, &field), 0);
	pr_pio(&R, 0xcfc, &v, 4, 0);
	assert_int_equal(v, 0xffffffffu);
}

/* ---- threads: vCPUs, the window and a device raising messages ---- */

struct thr {
	pthread_barrier_t *go;
	int which;
	unsigned int rounds;
};

/* A vCPU driving queue 0 (notify through BAR0 or through the window) while
 * another masks and unmasks the entry and the function, reads the PBA, the
 * ISR and the common configuration through the window, and a third raises
 * both vectors as the device's event loop does. */
static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct vt_drv d = {.e = &R.env, .dev = R.fn[0].dev, .num = 16};
	struct vt_seg seg = {VT_DATA, 16, true};
	uint32_t id, len;

	pthread_barrier_wait(t->go);
	for (unsigned int i = 0; i < t->rounds; i++) {
		switch (t->which) {
		case 0:
			vt_add(&d, &seg, 1);
			pr_bar_wr(&R, FN, SQB_VIO_PCI_NOTIFY_OFF, 2, 0);
			while (vt_used(&d, &id, &len))
				;
			break;
		case 1:
			pr_bar_wr(&R, FN, SQB_VIO_PCI_MSIX_TABLE + 16 + 12, 4, i & 1);
			pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, i & 2 ? 0xc000 : 0x8000);
			pr_bar_rd(&R, FN, SQB_VIO_PCI_MSIX_PBA, 8);
			pr_bar_rd(&R, FN, 0x2000, 1);
			pr_cfg_rd(&R, FN, CAP_PCICFG + 16, 2);
			break;
		default:
			raise(FN, 0);
			raise(FN, 1);
			break;
		}
	}
	return NULL;
}

static void test_threads_lock_order(void **state)
{
	pthread_barrier_t go;
	pthread_t th[3];
	struct thr t[3];

	(void)state;
	pr_enable_msix(&R, FN);
	assert_int_equal(pr_virtio_init(&R, FN, 16, 0, 1), 15);
	window(FN, 0, 0x16, 2); /* queue_select: the device's lock */
	pthread_barrier_init(&go, NULL, 3);
	for (int i = 0; i < 3; i++) {
		t[i] = (struct thr){&go, i, 2000};
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	/* whatever was held back is sent once everything is unmasked */
	pr_bar_wr(&R, FN, SQB_VIO_PCI_MSIX_TABLE + 16 + 12, 4, 0);
	pr_cfg_wr(&R, FN, CAP_MSIX + 2, 2, 0x8000);
	assert_int_equal(pr_bar_rd(&R, FN, SQB_VIO_PCI_MSIX_PBA, 8), 0);
	assert_true(pr_nmsi(&R) > 0);
}

/* Two vCPUs touching a BAR the guest moved: both see an empty range, and
 * the one-time warning's flag is taken under the function's lock (TSan
 * sees a race there only if the second vCPU comes in between the first
 * one's unlock and its next lock: this does not fail reliably without the
 * fix). */
static void *moved_main(void *arg)
{
	struct thr *t = arg;

	pthread_barrier_wait(t->go);
	for (unsigned int i = 0; i < t->rounds; i++)
		pr_bar_rd(&R, 2, 0x12, 2);
	return NULL;
}

static void test_threads_moved_bar(void **state)
{
	pthread_barrier_t go;
	pthread_t th[2];
	struct thr t[2];

	(void)state;
	pr_cfg_wr(&R, 2, 0x04, 2, 0x2);
	pr_cfg_wr(&R, 2, 0x14, 4, 0x1);
	pthread_barrier_init(&go, NULL, 2);
	for (int i = 0; i < 2; i++) {
		t[i] = (struct thr){&go, i, 200};
		assert_int_equal(pthread_create(&th[i], NULL, moved_main, &t[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	assert_int_equal(pr_bar_rd(&R, 2, 0x12, 2), 0xffff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ecam_every_size_and_alignment, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cf8_cfc_byte_lanes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing_and_moves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_common_cfg_hostile_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_table_and_pba, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pcicfg_window_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pcicfg_notify_raises_msi, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_f135_record_layout_and_hostile_bytes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_f136_latch_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads_lock_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads_moved_bar, setup, teardown),
	};

	if (!SQB_ARCH_HAS_PCI) {
		printf("skip: no PCI transport on this architecture\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
