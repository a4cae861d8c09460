/* Snapshot test guest for virtio-blk Diff chains (test_snapshot_blk.c): a
 * 1 MiB data area at 8 MiB filled with a per-word pattern (RAW runs of
 * 64 KiB and more in a Full), and a stream of device reads into a DMA
 * buffer at 12 MiB, each checked against the disk's pattern (the pattern of
 * tests/guests/virtioblk.c, seed=).  Serial input: 'z' zeroes the next set of
 * isolated pages inside the data area (a later Diff stores them as ZERO
 * extents between pages it leaves to its parent), 'v' checks the whole area,
 * 'p' answers with the number of device reads so far.  A wrong byte anywhere
 * prints a BAD line and resets. */
#include "guest.h"
#include "virtio_guest.h"

#define BLK_BASE  0xd0000000ull
#define DATA_BASE (8UL << 20)
#define DATA_PGS  256u
#define DMA_BASE  (12UL << 20)
#define ZSETS	  16u

static struct vq_ring ring __attribute__((aligned(4096)));
static uint8_t hdr[16] __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static uint8_t zeroed[DATA_PGS];

static uint8_t disk_pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static uint64_t word_pattern(uint64_t w)
{
	uint64_t z = w * 0x9e3779b97f4a7c15ULL + 0x5eed;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	return (z ^ (z >> 31)) | 1; /* never a zero word */
}

static void bad(const char *what, uint64_t v)
{
	puts_serial("BLKC BAD ");
	puts_serial(what);
	puts_serial(" ");
	put_u64(v);
	puts_serial("\n");
	guest_reset();
}

/* Set k: two adjacent pages and one page four further on, all with
 * untouched pages around them. */
static void zero_set(unsigned int k)
{
	unsigned int first = (k * 13 + 5) % (DATA_PGS - 8), pg[3] = {first, first + 1, first + 5};

	for (int i = 0; i < 3; i++) {
		memset((void *)(DATA_BASE + (uint64_t)pg[i] * 4096), 0, 4096);
		zeroed[pg[i]] = 1;
	}
}

static void check_data(void)
{
	volatile uint64_t *d = (volatile uint64_t *)DATA_BASE;

	for (uint64_t w = 0; w < DATA_PGS * 512ull; w++) {
		uint64_t want = zeroed[w / 512] ? 0 : word_pattern(w);
		if (d[w] != want)
			bad("data page", w / 512);
	}
}

/* Read `sectors` sectors from sector `at` into the DMA buffer and check
 * them; the buffer is wiped first, so a lost device write shows. */
static void dma_round(uint64_t seed, uint64_t at, uint32_t sectors)
{
	uint8_t *b = (uint8_t *)DMA_BASE;
	uint32_t bytes = sectors * 512;
	int n = 0;

	memset(b, 0, bytes);
	for (int i = 0; i < 16; i++)
		hdr[i] = 0;
	for (int i = 0; i < 8; i++)
		hdr[8 + i] = (uint8_t)(at >> (8 * i));
	status_byte = 0xee;
	ring.desc[n] = (struct vq_desc){(uint64_t)(uintptr_t)hdr, 16, 1, 1};
	n++;
	ring.desc[n] = (struct vq_desc){(uint64_t)DMA_BASE, bytes, 1 | 2, 2};
	n++;
	ring.desc[n] = (struct vq_desc){(uint64_t)(uintptr_t)&status_byte, 1, 2, 0};
	if (vq_submit(&ring) < 0)
		bad("request timed out or device needs reset, status", vm_rd(BLK_BASE, VM_STATUS));
	if (status_byte != 0)
		bad("read status", status_byte);
	for (uint32_t i = 0; i < bytes; i++)
		if (b[i] != disk_pattern(seed, at * 512 + i))
			bad("dma byte", at * 512 + i);
}

void guest_main(uint32_t start_info)
{
	volatile uint64_t *d = (volatile uint64_t *)DATA_BASE;
	uint64_t seed, sectors, disk, rounds = 0, nz = 0;

	cmdline_init(start_info);
	seed = cmdline_u64("seed", 1);
	sectors = cmdline_u64("sectors", 64);
	disk = cmdline_u64("disk_sectors", 2048);
	if (sectors < 1 || sectors > 1024 || disk < sectors)
		bad("arguments", sectors);
	if (vq_setup(&ring, BLK_BASE, 0) >> 63)
		bad("virtio-blk setup, status", vm_rd(BLK_BASE, VM_STATUS));
	for (uint64_t w = 0; w < DATA_PGS * 512ull; w++)
		d[w] = word_pattern(w);
	puts_serial("BLKC FILLED\n");
	for (;;) {
		dma_round(seed, (rounds * sectors) % (disk - sectors + 1), (uint32_t)sectors);
		rounds++;
		while (inb(0x3fd) & 1) {
			uint8_t ch = inb(0x3f8);

			if (ch == 'z' && nz < ZSETS) {
				zero_set((unsigned int)nz++);
				puts_serial("BLKC ZEROED ");
				put_u64(nz);
				puts_serial("\n");
			} else if (ch == 'v') {
				check_data();
				puts_serial("BLKC VERIFY ok zeroed_sets=");
				put_u64(nz);
				puts_serial("\n");
			} else if (ch == 'p') {
				puts_serial("BLKC PONG rounds=");
				put_u64(rounds);
				puts_serial("\n");
			}
		}
	}
}
