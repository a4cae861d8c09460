/* virtio-blk test guest: a minimal virtio-mmio driver for the device at
 * 0xd0000000 (magic "virt", device id 2).  mode=rw writes a pattern, flushes
 * (if FLUSH is offered), reads it back and checks it, asks GET_ID; mode=ro
 * expects VIRTIO_BLK_F_RO and an IOERR for a write; mode=verify only checks
 * what an earlier rw run wrote; mode=loop rounds=N repeats write, flush,
 * read and check (snapshots mid-stream); mode=hold reads into a buffer the
 * guest never writes, between two host bytes on COM1, and checks it after
 * the second (a Diff taken in between must hold the device's writes);
 * mode=resize waits for a host byte on COM1, then reads the capacity again
 * and the interrupt status (a host that changed the disk and told the
 * device: a config-change interrupt).  One line per step. */
#include "guest.h"
#include "virtio_guest.h"

#define BLK_BASE 0xd0000000ull
#define F_RO	 (1ull << 5)
#define F_FLUSH	 (1ull << 9)

static struct vq_ring ring __attribute__((aligned(4096)));
static uint8_t hdr[16] __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static uint8_t wbuf[64 * 512] __attribute__((aligned(4096)));
static uint8_t rbuf[64 * 512] __attribute__((aligned(4096)));
static uint8_t hold[64 * 512] __attribute__((aligned(4096))); /* written by the device only */

#define pattern vg_pattern

#define result(step, ok, why, v) vg_result("VBLK", step, ok, why, v)

/* One request: header, optional data, status.  Returns the status byte, or
 * 0x100 when no used element came back. */
static int blk_req(uint32_t type, uint64_t sector, uint8_t *data, uint32_t len, int dev_writes)
{
	int n = 0;

	for (int i = 0; i < 16; i++)
		hdr[i] = 0;
	hdr[0] = (uint8_t)type;
	for (int i = 0; i < 8; i++)
		hdr[8 + i] = (uint8_t)(sector >> (8 * i));
	status_byte = 0xee;
	ring.desc[n] = (struct vq_desc){(uint64_t)(uintptr_t)hdr, 16, 1, (uint16_t)(n + 1)};
	n++;
	if (len) {
		ring.desc[n] =
		    (struct vq_desc){(uint64_t)(uintptr_t)data, len,
				     (uint16_t)(1 | (dev_writes ? 2 : 0)), (uint16_t)(n + 1)};
		n++;
	}
	ring.desc[n] = (struct vq_desc){(uint64_t)(uintptr_t)&status_byte, 1, 2, 0};
	if (vq_submit(&ring) < 0)
		return 0x100;
	return status_byte;
}

/* Wait for one byte of host input on COM1 (LSR.DR). */
static void wait_rx(void)
{
	while (!(inb(0x3fd) & 1))
		cpu_relax();
	(void)inb(0x3f8);
}

static void check_pattern(const char *step, uint64_t seed, uint32_t bytes)
{
	int st;

	for (uint32_t i = 0; i < bytes; i++)
		rbuf[i] = 0;
	st = blk_req(0, 0, rbuf, bytes, 1);
	if (st != 0) {
		result(step, 0, "read status", (uint64_t)st);
		return;
	}
	for (uint32_t i = 0; i < bytes; i++)
		if (rbuf[i] != pattern(seed, i)) {
			result(step, 0, "mismatch at byte", i);
			return;
		}
	result(step, 1, "", 0);
}

void guest_main(uint32_t start_info)
{
	char mode[16] = "rw";
	uint64_t seed, sectors, acked, cap;
	uint32_t bytes;
	int st;

	cmdline_init(start_info);
	cmdline_word(start_info, "mode", mode, sizeof(mode));
	seed = cmdline_u64("seed", 1);
	sectors = cmdline_u64("sectors", 8);
	if (sectors < 1 || sectors > 64)
		sectors = 8;
	bytes = (uint32_t)sectors * 512;
	puts_serial("VBLK start mode=");
	puts_serial(mode);
	puts_serial("\n");
	if (vm_rd(BLK_BASE, VM_MAGIC) != 0x74726976 || vm_rd(BLK_BASE, VM_VERSION) != 2 ||
	    vm_rd(BLK_BASE, VM_DEVICE_ID) != 2) {
		result("probe", 0, "no virtio-blk at 0xd0000000, magic", vm_rd(BLK_BASE, VM_MAGIC));
		goto done;
	}
	result("probe", 1, "", 0);
	acked = vq_setup(&ring, BLK_BASE, F_RO | F_FLUSH);
	if (acked >> 63) {
		result("init", 0, "negotiation or queue setup, status", vm_rd(BLK_BASE, VM_STATUS));
		goto done;
	}
	result("init", 1, "", 0);
	cap = vm_rd(BLK_BASE, VM_CONFIG) | (uint64_t)vm_rd(BLK_BASE, VM_CONFIG + 4) << 32;
	puts_serial("VBLK capacity=");
	put_u64(cap);
	puts_serial(acked & F_RO ? " ro=1" : " ro=0");
	puts_serial(acked & F_FLUSH ? " flush=1\n" : " flush=0\n");
	if (cap < sectors) {
		result("capacity", 0, "disk smaller than the pattern, sectors", cap);
		goto done;
	}

	if (str_eq(mode, "verify")) {
		check_pattern("verify", seed, bytes);
	} else if (str_eq(mode, "loop")) {
		/* Many requests back to back, for snapshots taken mid-stream. */
		uint64_t rounds = cmdline_u64("rounds", 20), r;
		for (r = 0; r < rounds; r++) {
			for (uint32_t i = 0; i < bytes; i++)
				wbuf[i] = pattern(seed + r, i);
			st = blk_req(1, 0, wbuf, bytes, 0);
			if (st == 0 && (acked & F_FLUSH))
				st = blk_req(4, 0, 0, 0, 0);
			if (st != 0)
				break;
			for (uint32_t i = 0; i < bytes; i++)
				rbuf[i] = 0;
			st = blk_req(0, 0, rbuf, bytes, 1);
			for (uint32_t i = 0; st == 0 && i < bytes; i++)
				if (rbuf[i] != wbuf[i])
					st = 0x200;
			if (st != 0)
				break;
		}
		result("loop", r == rounds, "round failed, round", r);
	} else if (str_eq(mode, "hold")) {
		puts_serial("VBLK hold-wait\n");
		wait_rx();
		st = blk_req(0, 0, hold, bytes, 1);
		result("hold-read", st == 0, "read status", (uint64_t)st);
		wait_rx();
		st = 0;
		for (uint32_t i = 0; i < bytes && !st; i++)
			if (hold[i] != pattern(seed, i)) {
				result("hold-verify", 0, "mismatch at byte", i);
				st = 1;
			}
		if (!st)
			result("hold-verify", 1, "", 0);
	} else if (str_eq(mode, "resize")) {
		uint32_t isr;

		puts_serial("VBLK resize-wait\n");
		wait_rx();
		isr = vm_rd(BLK_BASE, VM_INT_STATUS);
		vm_wr(BLK_BASE, VM_INT_ACK, isr);
		cap = vm_rd(BLK_BASE, VM_CONFIG) | (uint64_t)vm_rd(BLK_BASE, VM_CONFIG + 4) << 32;
		puts_serial("VBLK resized capacity=");
		put_u64(cap);
		puts_serial(" isr=");
		put_u64(isr);
		puts_serial("\n");
		result("resize-config-irq", (isr & 2) != 0, "no config-change bit, isr", isr);
	} else if (str_eq(mode, "ro")) {
		result("ro-feature", (acked & F_RO) != 0, "VIRTIO_BLK_F_RO not offered", acked);
		for (uint32_t i = 0; i < bytes; i++)
			wbuf[i] = 0x55;
		st = blk_req(1, 0, wbuf, bytes, 0);
		result("ro-write-refused", st == 1, "expected IOERR (1), status", (uint64_t)st);
		st = blk_req(0, 0, rbuf, 512, 1);
		result("ro-read", st == 0, "read status", (uint64_t)st);
	} else {
		for (uint32_t i = 0; i < bytes; i++)
			wbuf[i] = pattern(seed, i);
		st = blk_req(1, 0, wbuf, bytes, 0);
		result("write", st == 0, "status", (uint64_t)st);
		if (acked & F_FLUSH) {
			st = blk_req(4, 0, 0, 0, 0);
			result("flush", st == 0, "status", (uint64_t)st);
		}
		check_pattern("readback", seed, bytes);
		st = blk_req(0, cap, rbuf, 512, 1);
		result("out-of-range", st == 1, "expected IOERR (1), status", (uint64_t)st);
		for (int i = 0; i < 20; i++)
			rbuf[i] = 0;
		st = blk_req(8, 0, rbuf, 20, 1);
		result("get-id", st == 0, "status", (uint64_t)st);
		if (st == 0) {
			puts_serial("VBLK id=");
			for (int i = 0; i < 20 && rbuf[i]; i++)
				putc_serial((char)rbuf[i]);
			puts_serial("\n");
		}
	}
done:
	puts_serial("VBLK DONE pass=");
	put_u64(vg_passed);
	puts_serial(" fail=");
	put_u64(vg_failed);
	puts_serial("\n");
	guest_reset();
}
