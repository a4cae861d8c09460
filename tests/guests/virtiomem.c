/* virtio-mem test guest: finds the device (id 24), negotiates
 * VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, says "VMEM ready" and waits until
 * the host PATCHes requested_size, then: PLUGs 4 blocks (ACK), STATE says
 * PLUGGED, writes a pattern into each block (first and last page), reads it
 * back, a 5th block is NACKed (above requested_size), a range outside the
 * usable region is ERROR, UNPLUGs block 1 (STATE MIXED over 0..3), the
 * other blocks keep their pattern, block 1 plugged again reads zero.
 * A STATE request whose request and response buffers lie in plugged blocks
 * (the device reads and writes hotplugged memory).  Then "VMEM hold-wait"
 * and a host byte on COM1 (the host snapshots and loads meanwhile); the
 * patterns again; block 3 unplugged, plugged again (zero), block 2 and 3
 * rewritten; when the host has asked for more than a slot, block 64 (slot
 * 1, a new memslot) plugged and written; "VMEM hold2-wait" and a host byte
 * (a Diff); every pattern;
 * a request whose response buffer is in unplugged block 5 (its slot is
 * present) is refused by the device (DEVICE_NEEDS_RESET or nothing
 * written) and writes nothing; the driver resets the device, UNPLUG_ALL,
 * DONE.  The region is mapped with 2 MiB pages (at 768 GiB). */
#include "guest.h"
#include "virtio_guest.h"

#define MMIO_BASE 0xd0000000ull
#define ID_MEM	  24
#define PAGE_2M	  (2ull << 20)

static struct vq_ring ring __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint8_t req[24] __attribute__((aligned(8)));
static volatile uint8_t resp[16] __attribute__((aligned(8)));

#define result(step, ok, why, v) vg_result("VMEM", step, ok, why, v)

static uint64_t base;

static uint64_t cfg64(uint32_t off)
{
	return vm_rd(base, VM_CONFIG + off) | (uint64_t)vm_rd(base, VM_CONFIG + off + 4) << 32;
}

static int map_region(uint64_t start, uint64_t size)
{
	uint64_t cr3, *pml4;

	if (start % PAGE_2M || !size || (start >> 30) != ((start + size - 1) >> 30))
		return -1;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xfffull);
	pml4[(start >> 39) & 511] = (uint64_t)(uintptr_t)pdpt | 3;
	pdpt[(start >> 30) & 511] = (uint64_t)(uintptr_t)pd | 3;
	for (uint64_t a = start; a < start + size; a += PAGE_2M)
		pd[(a >> 21) & 511] = a | 0x83;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 0;
}

/* One request from buffers q (24 bytes) and a (16); returns the response
 * type (0xeeee: none), *state. */
static uint16_t mem_req_at(volatile uint8_t *q, volatile uint8_t *a, uint16_t type, uint64_t addr,
			   uint16_t nb, uint16_t *state)
{
	for (int i = 0; i < 24; i++)
		q[i] = 0;
	q[0] = (uint8_t)type, q[1] = (uint8_t)(type >> 8);
	for (int i = 0; i < 8; i++)
		q[8 + i] = (uint8_t)(addr >> (8 * i));
	q[16] = (uint8_t)nb, q[17] = (uint8_t)(nb >> 8);
	for (int i = 0; i < 16; i++)
		a[i] = 0xee;
	ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)q, 24, 1, 1};
	ring.desc[1] = (struct vq_desc){(uint64_t)(uintptr_t)a, 10, 2, 0};
	if (vq_submit(&ring) != 10)
		return 0xeeee;
	if (state)
		*state = (uint16_t)(a[8] | a[9] << 8);
	return (uint16_t)(a[0] | a[1] << 8);
}

static uint16_t mem_req(uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
	return mem_req_at(req, resp, type, addr, nb, state);
}

/* First and last page of a block (the emulated guest is slow). */
static void fill(uint64_t blk, uint64_t seed)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)blk;

	for (uint64_t i = 0; i < 4096; i++) {
		p[i] = vg_pattern(seed, i);
		p[PAGE_2M - 4096 + i] = vg_pattern(seed + 1, i);
	}
}

static int check(uint64_t blk, uint64_t seed, int zero)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)blk;

	for (uint64_t i = 0; i < 4096; i++)
		if (p[i] != (zero ? 0 : vg_pattern(seed, i)) ||
		    p[PAGE_2M - 4096 + i] != (zero ? 0 : vg_pattern(seed + 1, i)))
			return 0;
	return 1;
}

static void wait_rx(void)
{
	while (!(inb(0x3fd) & 1))
		cpu_relax();
	(void)inb(0x3f8);
}

void guest_main(uint32_t start_info)
{
	uint64_t addr, bs, req_size;
	uint16_t st = 0xffff, r;
	int ok, slot1 = 0;

	cmdline_init(start_info);
	for (unsigned int s = 0; s < 32 && !base; s++) {
		uint64_t b = MMIO_BASE + 0x1000ull * s;

		if (vm_rd(b, VM_MAGIC) == 0x74726976 && vm_rd(b, VM_DEVICE_ID) == ID_MEM)
			base = b;
	}
	if (!base) {
		result("probe", 0, "no virtio-mem in the slots", 0);
		puts_serial("VMEM no-device\n");
		wait_rx(); /* the host asks the API meanwhile */
		goto done;
	}
	if (vq_setup(&ring, base, 1ull << 1) >> 63) {
		result("init", 0, "negotiation or queue setup, status", vm_rd(base, VM_STATUS));
		goto done;
	}
	result("init", 1, "", 0);
	puts_serial("VMEM ready\n");
	while (!(req_size = cfg64(48)))
		for (volatile int i = 0; i < 1000; i++)
			cpu_relax();
	bs = cfg64(0);
	addr = cfg64(16);
	puts_serial("VMEM addr=");
	put_hex(addr);
	puts_serial(" requested=");
	put_hex(req_size);
	puts_serial(" usable=");
	put_hex(cfg64(32));
	puts_serial("\n");
	if (bs != PAGE_2M || req_size != 4 * bs || map_region(addr, 8 * bs) < 0) {
		result("geometry", 0, "block size / requested", bs);
		goto done;
	}
	result("plug", mem_req(0, addr, 4, 0) == 0, "resp", 0);
	r = mem_req(3, addr, 4, &st);
	result("state-plugged", r == 0 && st == 0, "resp/state", (uint64_t)r << 16 | st);
	for (int b = 0; b < 4; b++)
		fill(addr + b * bs, 10 + b);
	ok = 1;
	for (int b = 0; b < 4; b++)
		ok &= check(addr + b * bs, 10 + b, 0);
	result("patterns", ok, "", 0);
	result("plug-too-much-nack", mem_req(0, addr + 4 * bs, 1, 0) == 1, "resp", 0);
	result("out-of-usable-error", mem_req(0, addr + 64 * bs, 1, 0) == 3, "resp", 0);
	result("unaligned-error", mem_req(3, addr + 4096, 1, 0) == 3, "resp", 0);
	result("unplug", mem_req(1, addr + bs, 1, 0) == 0, "resp", 0);
	r = mem_req(3, addr, 4, &st);
	result("state-mixed", r == 0 && st == 2, "resp/state", (uint64_t)r << 16 | st);
	r = mem_req(3, addr + bs, 1, &st);
	result("state-unplugged", r == 0 && st == 1, "resp/state", (uint64_t)r << 16 | st);
	result("others-kept", check(addr, 10, 0) && check(addr + 2 * bs, 12, 0) &&
				  check(addr + 3 * bs, 13, 0), "", 0);
	result("replug", mem_req(0, addr + bs, 1, 0) == 0, "resp", 0);
	result("replug-zero", check(addr + bs, 0, 1), "", 0);
	fill(addr + bs, 11);
	/* the device reads the request from and writes the answer into
	 * hotplugged memory (pages the patterns leave alone) */
	{
		volatile uint8_t *q = (volatile uint8_t *)(uintptr_t)(addr + 3 * bs + 8192);
		volatile uint8_t *a = (volatile uint8_t *)(uintptr_t)(addr + 2 * bs + 8192);

		st = 0xffff;
		r = mem_req_at(q, a, 3, addr, 4, &st);
		result("dma-plugged", r == 0 && st == 0, "resp/state", (uint64_t)r << 16 | st);
	}
	puts_serial("VMEM hold-wait\n");
	wait_rx();
	ok = 1;
	for (int b = 0; b < 4; b++)
		ok &= check(addr + b * bs, 10 + b, 0);
	result("after-hold", ok, "", 0);
	/* after a load: plug and unplug go on, a replugged block is zero */
	result("unplug-after-load", mem_req(1, addr + 3 * bs, 1, 0) == 0, "resp", 0);
	result("replug-after-load", mem_req(0, addr + 3 * bs, 1, 0) == 0, "resp", 0);
	result("replug-after-load-zero", check(addr + 3 * bs, 0, 1), "", 0);
	fill(addr + 2 * bs, 22);
	fill(addr + 3 * bs, 23);
	/* the host asked for more than a slot: block 64 opens slot 1, a
	 * memslot made after the load (dirty-logged for the next Diff) */
	if (cfg64(48) > 64 * bs) {
		slot1 = map_region(addr + 64 * bs, bs) == 0 && mem_req(0, addr + 64 * bs, 1, 0) == 0;
		result("plug-slot1", slot1, "", 0);
		if (slot1)
			fill(addr + 64 * bs, 64);
	}
	puts_serial("VMEM hold2-wait\n");
	wait_rx();
	ok = check(addr, 10, 0) && check(addr + bs, 11, 0) && check(addr + 2 * bs, 22, 0) &&
	     check(addr + 3 * bs, 23, 0);
	result("after-hold2", ok, "", 0);
	if (slot1)
		result("slot1-after-hold2", check(addr + 64 * bs, 64, 0), "", 0);
	/* block 5: inside the usable region and a present slot, not plugged */
	{
		volatile uint8_t *bad = (volatile uint8_t *)(uintptr_t)(addr + 5 * bs);
		int64_t n;

		for (int i = 0; i < 24; i++)
			req[i] = 0;
		req[0] = 3;
		for (int i = 0; i < 8; i++)
			req[8 + i] = (uint8_t)(addr >> (8 * i));
		req[16] = 1;
		ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)req, 24, 1, 1};
		ring.desc[1] = (struct vq_desc){(uint64_t)(uintptr_t)bad, 10, 2, 0};
		n = vq_submit(&ring);
		result("unplugged-buffer-refused", n != 10, "used length", (uint64_t)n);
		result("patterns-after-refusal", check(addr, 10, 0) && check(addr + 3 * bs, 23, 0),
		       "", 0);
	}
	/* a driver starting over (Linux's probe): reset, UNPLUG_ALL */
	if (vq_setup(&ring, base, 1ull << 1) >> 63) {
		result("reinit", 0, "status", vm_rd(base, VM_STATUS));
		goto done;
	}
	result("unplug-all", mem_req(2, 0, 0, 0) == 0, "resp", 0);
	result("usable-zero", cfg64(32) == 0 && cfg64(40) == 0, "usable", cfg64(32));
done:
	puts_serial("VMEM DONE pass=");
	put_u64(vg_passed);
	puts_serial(" fail=");
	put_u64(vg_failed);
	puts_serial("\n");
	guest_reset();
}
