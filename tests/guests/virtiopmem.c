/* virtio-pmem test guest: finds the device (id 27) among the virtio-mmio
 * slots, reads {start, size} from config space, maps the region (it lies at
 * 512 GiB, past the 4 GiB start.S maps) with 2 MiB pages and then:
 *   mode=rw   checks the file's pattern (seed=, len= bytes) through the
 *             region, writes pattern seed+1, FLUSHes (status 0, used 4);
 *             an unknown request type answers status -1, a malformed chain
 *             used length 0, and the device keeps working
 *   mode=ro   checks the pattern, stores into the region (the writes never
 *             reach the file), FLUSH still answers 0
 *   mode=hold checks the pattern, writes seed+1, FLUSHes, says "hold-wait"
 *             and waits for a host byte on COM1 (a snapshot/load happens
 *             meanwhile), then checks seed+1 through the region again,
 *             writes seed+2 and FLUSHes.
 * One line per step. */
#include "guest.h"
#include "virtio_guest.h"

#define MMIO_BASE 0xd0000000ull
#define ID_PMEM	  27
#define PAGE_2M	  (2ull << 20)

static struct vq_ring ring __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint8_t req[8] __attribute__((aligned(8)));
static volatile int32_t status_word;

#define pattern vg_pattern

#define result(step, ok, why, v) vg_result("VPMEM", step, ok, why, v)

static void wait_rx(void)
{
	while (!(inb(0x3fd) & 1))
		cpu_relax();
	(void)inb(0x3f8);
}

/* Map [start, start + size) identity, 2 MiB pages, inside one 1 GiB. */
static int map_region(uint64_t start, uint64_t size)
{
	uint64_t cr3, *pml4;

	if (start % PAGE_2M || !size || (start >> 30) != ((start + size - 1) >> 30))
		return -1;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xfffull);
	if (pml4[(start >> 39) & 511] & 1)
		return -1; /* start.S maps only PML4[0] (0..4 GiB) */
	pml4[(start >> 39) & 511] = (uint64_t)(uintptr_t)pdpt | 3;
	pdpt[(start >> 30) & 511] = (uint64_t)(uintptr_t)pd | 3;
	for (uint64_t a = start; a < start + size; a += PAGE_2M)
		pd[(a >> 21) & 511] = a | 0x83; /* present, writable, 2 MiB */
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 0;
}

/* One request: the 4-byte type (head_len bytes readable), a 4-byte status.
 * Returns the used length (-1: no answer); *st the status word. */
static int64_t pmem_req(uint32_t type, uint32_t head_len, int32_t *st)
{
	for (int i = 0; i < 8; i++)
		req[i] = 0;
	for (int i = 0; i < 4; i++)
		req[i] = (uint8_t)(type >> (8 * i));
	status_word = 0x5a5a5a5a;
	ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)req, head_len, 1, 1};
	ring.desc[1] = (struct vq_desc){(uint64_t)(uintptr_t)&status_word, 4, 2, 0};
	int64_t n = vq_submit(&ring);
	*st = status_word;
	return n;
}

static int check(const char *step, volatile uint8_t *p, uint64_t seed, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != pattern(seed, i)) {
			result(step, 0, "mismatch at byte", i);
			return 0;
		}
	result(step, 1, "", 0);
	return 1;
}

static void write_pattern(volatile uint8_t *p, uint64_t seed, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		p[i] = pattern(seed, i);
}

static void flush(const char *step)
{
	int32_t st;
	int64_t n = pmem_req(0, 4, &st);

	if (n != 4)
		result(step, 0, "used length", (uint64_t)n);
	else
		result(step, st == 0, "status", (uint64_t)(uint32_t)st);
}

void guest_main(uint32_t start_info)
{
	char mode[16] = "rw";
	uint64_t seed, len, base = 0, start, size;
	volatile uint8_t *region;
	int32_t st;
	int64_t n;

	cmdline_init(start_info);
	cmdline_word(start_info, "mode", mode, sizeof(mode));
	seed = cmdline_u64("seed", 1);
	len = cmdline_u64("len", 4096);
	puts_serial("VPMEM start mode=");
	puts_serial(mode);
	puts_serial("\n");
	for (unsigned int s = 0; s < 32 && !base; s++) {
		uint64_t b = MMIO_BASE + 0x1000ull * s;

		if (vm_rd(b, VM_MAGIC) == 0x74726976 && vm_rd(b, VM_DEVICE_ID) == ID_PMEM)
			base = b;
	}
	if (!base) {
		result("probe", 0, "no virtio-pmem in the slots", 0);
		goto done;
	}
	result("probe", 1, "", 0);
	if (vq_setup(&ring, base, 0) >> 63) {
		result("init", 0, "negotiation or queue setup, status", vm_rd(base, VM_STATUS));
		goto done;
	}
	result("init", 1, "", 0);
	start = vm_rd(base, VM_CONFIG) | (uint64_t)vm_rd(base, VM_CONFIG + 4) << 32;
	size = vm_rd(base, VM_CONFIG + 8) | (uint64_t)vm_rd(base, VM_CONFIG + 12) << 32;
	puts_serial("VPMEM start=");
	put_hex(start);
	puts_serial(" size=");
	put_hex(size);
	puts_serial("\n");
	if (size < len || size % PAGE_2M || map_region(start, size) < 0) {
		result("map", 0, "region unusable, size", size);
		goto done;
	}
	result("map", 1, "", 0);
	region = (volatile uint8_t *)(uintptr_t)start;
	if (!check("read-file", region, seed, len))
		goto done;
	if (str_eq(mode, "ro")) {
		/* each store exits (a read-only slot) and is dropped */
		for (uint64_t i = 0; i < 64; i++)
			region[i] = (uint8_t)~pattern(seed, i);
		check("ro-unchanged", region, seed, len);
		flush("ro-flush");
	} else if (str_eq(mode, "hold")) {
		write_pattern(region, seed + 1, len);
		flush("flush");
		puts_serial("VPMEM hold-wait\n");
		wait_rx();
		check("after-load", region, seed + 1, len);
		write_pattern(region, seed + 2, len);
		flush("flush-after-load");
	} else {
		write_pattern(region, seed + 1, len);
		check("readback", region, seed + 1, len);
		flush("flush");
		n = pmem_req(7, 4, &st); /* unknown type: status -1 */
		result("bad-type", n == 4 && st == -1, "used/status",
		       (uint64_t)n << 32 | (uint32_t)st);
		n = pmem_req(0, 8, &st); /* head of 8 bytes: used 0, no status */
		result("bad-chain", n == 0 && st == 0x5a5a5a5a, "used/status",
		       (uint64_t)n << 32 | (uint32_t)st);
		flush("flush-again");
	}
done:
	puts_serial("VPMEM DONE pass=");
	put_u64(vg_passed);
	puts_serial(" fail=");
	put_u64(vg_failed);
	puts_serial("\n");
	guest_reset();
}
