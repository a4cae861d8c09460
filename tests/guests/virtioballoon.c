/* virtio-balloon test guest: a minimal balloon driver for the device at
 * 0xd0000000 (device id 5, virtio 1.x 5.5) that follows the target in config
 * space page by page from a pool (inflate / deflate, `actual` written
 * back), keeps one statistics buffer with the device and refills it each
 * time it comes back, and on host input over COM1:
 *   r  report a 2 MiB free range (free page reporting queue)
 *   c  check: the keep region holds its pattern, every pool page that was
 *      ever ballooned and the reported range read zero, the rest of the
 *      pool holds its fill byte
 *   q  print DONE and reset
 * Lines start with "VBAL ".  Memory: keep 8..12 MiB, pool 16..40 MiB,
 * reported range 44..46 MiB (mem_size_mib >= 64).  Only the first and last
 * word of each page is written and checked: every first touch of a guest
 * page costs a host fault, and two words tell data from zero. */
#include "guest.h"
#include "virtio_guest.h"

#define BAL_BASE    0xd0000000ull
#define KEEP_BASE   (8ull << 20)
#define KEEP_PAGES  (4u * 256)
#define POOL_BASE   (16ull << 20)
#define POOL_PAGES  (24u * 256)
#define POOL_FILL   0xb5ull
#define REP_BASE    (44ull << 20)
#define REP_LEN	    (2ull << 20)
#define REP_FILL    0xc3ull
#define NQ_MAX	    4
#define BQ_NUM	    8
#define PFNS_PER_RQ 256
#define F_STATS	    (1ull << 1)
#define F_REPORT    (1ull << 5)
#define STAT_MINFLT 3
#define STAT_FREE   4
#define STAT_TOTAL  5
#define STAT_FREE_V 0x1234000ull

struct bq {
	struct vq_desc desc[BQ_NUM];
	volatile uint16_t avail[2 + BQ_NUM + 1] __attribute__((aligned(16)));
	volatile uint32_t used[1 + 2 * BQ_NUM + 1] __attribute__((aligned(16)));
	uint16_t avail_idx, used_idx;
};

struct stat_e {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

static struct bq q[NQ_MAX] __attribute__((aligned(4096)));
static uint32_t pfns[PFNS_PER_RQ] __attribute__((aligned(64)));
static struct stat_e stats[3] __attribute__((aligned(64)));
static unsigned int nq, q_stats = 99, q_report = 99;
static uint32_t inflated, ever; /* pool pages [0, inflated) are in the balloon */
static uint64_t refills;
static int reported;

#define result(step, ok, why, v) vg_result("VBAL", step, ok, why, v)

static void say(const char *what, uint64_t n)
{
	puts_serial("VBAL ");
	puts_serial(what);
	puts_serial(" ");
	put_u64(n);
	puts_serial("\n");
}

static int setup_queue(unsigned int i)
{
	struct bq *r = &q[i];

	vm_wr(BAL_BASE, VM_QUEUE_SEL, i);
	if (vm_rd(BAL_BASE, VM_QUEUE_MAX) < BQ_NUM)
		return -1;
	memset(r, 0, sizeof(*r));
	vm_wr(BAL_BASE, VM_QUEUE_NUM, BQ_NUM);
	vm_wr(BAL_BASE, VM_DESC_LO, (uint32_t)(uintptr_t)r->desc);
	vm_wr(BAL_BASE, VM_DESC_HI, 0);
	vm_wr(BAL_BASE, VM_DRIVER_LO, (uint32_t)(uintptr_t)r->avail);
	vm_wr(BAL_BASE, VM_DRIVER_HI, 0);
	vm_wr(BAL_BASE, VM_DEVICE_LO, (uint32_t)(uintptr_t)r->used);
	vm_wr(BAL_BASE, VM_DEVICE_HI, 0);
	vm_wr(BAL_BASE, VM_QUEUE_READY, 1);
	return vm_rd(BAL_BASE, VM_QUEUE_READY) == 1 ? 0 : -1;
}

static uint64_t init(void)
{
	uint64_t offered, acked;

	vm_wr(BAL_BASE, VM_STATUS, 0);
	vm_wr(BAL_BASE, VM_STATUS, 1);
	vm_wr(BAL_BASE, VM_STATUS, 3);
	vm_wr(BAL_BASE, VM_DEV_FEAT_SEL, 0);
	offered = vm_rd(BAL_BASE, VM_DEV_FEAT);
	vm_wr(BAL_BASE, VM_DEV_FEAT_SEL, 1);
	offered |= (uint64_t)vm_rd(BAL_BASE, VM_DEV_FEAT) << 32;
	if (!(offered & (1ull << 32)))
		return 1ull << 63;
	acked = offered & (F_STATS | F_REPORT | 1ull << 32);
	vm_wr(BAL_BASE, VM_DRV_FEAT_SEL, 0);
	vm_wr(BAL_BASE, VM_DRV_FEAT, (uint32_t)acked);
	vm_wr(BAL_BASE, VM_DRV_FEAT_SEL, 1);
	vm_wr(BAL_BASE, VM_DRV_FEAT, (uint32_t)(acked >> 32));
	vm_wr(BAL_BASE, VM_STATUS, 3 | 8);
	if (!(vm_rd(BAL_BASE, VM_STATUS) & 8))
		return 1ull << 63;
	/* virtio 5.5.2: inflateq, deflateq, statsq if STATS_VQ, (hinting,)
	 * reportingq if PAGE_REPORTING */
	nq = 2;
	if (acked & F_STATS)
		q_stats = nq++;
	if (acked & F_REPORT)
		q_report = nq++;
	for (unsigned int i = 0; i < nq; i++)
		if (setup_queue(i))
			return 1ull << 63;
	vm_wr(BAL_BASE, VM_STATUS, 3 | 8 | 4);
	return acked;
}

/* Put one buffer on queue i and notify (one descriptor per chain). */
static void post(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct bq *r = &q[i];
	uint16_t d = r->avail_idx % BQ_NUM;

	r->desc[d] = (struct vq_desc){addr, len, flags, 0};
	r->avail[2 + d] = d;
	vq_barrier();
	r->avail_idx++;
	r->avail[1] = r->avail_idx;
	vq_barrier();
	vm_wr(BAL_BASE, VM_QUEUE_NOTIFY, i);
}

/* A used element on queue i: 1, or 0 when none yet. */
static int reap(unsigned int i)
{
	struct bq *r = &q[i];

	if ((uint16_t)(r->used[0] >> 16) == r->used_idx)
		return 0;
	vq_barrier();
	r->used_idx++;
	vm_wr(BAL_BASE, VM_INT_ACK, vm_rd(BAL_BASE, VM_INT_STATUS));
	return 1;
}

static int wait_used(unsigned int i)
{
	for (uint64_t spin = 0; spin < 200000000ull; spin++) {
		if (reap(i))
			return 0;
		if (vm_rd(BAL_BASE, VM_STATUS) & 0x40)
			return -1;
		cpu_relax();
	}
	return -1;
}

/* Send pool pages [from, to) on queue i (0 inflate, 1 deflate). */
static int send_pages(unsigned int i, uint32_t from, uint32_t to)
{
	while (from < to) {
		uint32_t n = to - from < PFNS_PER_RQ ? to - from : PFNS_PER_RQ;

		for (uint32_t k = 0; k < n; k++)
			pfns[k] = (uint32_t)((POOL_BASE >> 12) + from + k);
		post(i, (uint64_t)(uintptr_t)pfns, 4 * n, 0);
		if (wait_used(i))
			return -1;
		from += n;
	}
	return 0;
}

static void stats_fill(void)
{
	stats[0] = (struct stat_e){STAT_FREE, STAT_FREE_V};
	stats[1] = (struct stat_e){STAT_TOTAL, cmdline_u64("mem", 64) << 20};
	stats[2] = (struct stat_e){STAT_MINFLT, refills};
	post(q_stats, (uint64_t)(uintptr_t)stats, sizeof(stats), 0);
}

static uint64_t keep_word(uint64_t i)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 31);
}

/* First and last word of a page: enough to tell data from zero, and cheap
 * where every guest page touch is a host fault (PVM). */
static void fill(uint64_t addr, uint64_t w)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)addr;

	p[0] = w;
	p[511] = ~w;
}

static int page_is(uint64_t addr, uint64_t w)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)addr;

	return w ? p[0] == w && p[511] == ~w : p[0] == 0 && p[511] == 0;
}

static void check(void)
{
	uint64_t bad = 0;
	int ok = 1;

	for (uint64_t p = 0; p < KEEP_PAGES && ok; p++)
		if (!page_is(KEEP_BASE + 4096 * p, keep_word(p)))
			ok = 0, bad = KEEP_BASE + 4096 * p;
	result("keep", ok, "pattern lost at", bad);
	ok = 1;
	for (uint32_t p = 0; p < POOL_PAGES && ok; p++)
		if (!page_is(POOL_BASE + 4096ull * p,
			     p < ever ? 0 : POOL_FILL * 0x0101010101010101ull))
			ok = 0, bad = POOL_BASE + 4096ull * p;
	result("pool", ok, "page not as expected (ballooned: zero, else fill)", bad);
	ok = 1;
	for (uint64_t a = 0; a < REP_LEN && ok; a += 4096)
		if (!page_is(REP_BASE + a, reported ? 0 : REP_FILL * 0x0101010101010101ull))
			ok = 0, bad = REP_BASE + a;
	result("reported", ok, "reported range not as expected", bad);
	say("CHECKED", ever);
}

static void follow_target(void)
{
	uint32_t target = vm_rd(BAL_BASE, VM_CONFIG);

	if (target > POOL_PAGES)
		target = POOL_PAGES;
	if (target == inflated)
		return;
	if (target > inflated) {
		if (send_pages(0, inflated, target))
			return result("inflate", 0, "no used buffer, status",
				      vm_rd(BAL_BASE, VM_STATUS));
		inflated = target;
		if (inflated > ever)
			ever = inflated;
		vm_wr(BAL_BASE, VM_CONFIG + 4, inflated);
		say("INFLATED", inflated);
	} else {
		if (send_pages(1, target, inflated))
			return result("deflate", 0, "no used buffer, status",
				      vm_rd(BAL_BASE, VM_STATUS));
		inflated = target;
		vm_wr(BAL_BASE, VM_CONFIG + 4, inflated);
		say("DEFLATED", inflated);
	}
}

void guest_main(uint32_t start_info)
{
	uint64_t acked;

	cmdline_init(start_info);
	if (vm_rd(BAL_BASE, VM_MAGIC) != 0x74726976 || vm_rd(BAL_BASE, VM_DEVICE_ID) != 5) {
		result("probe", 0, "no virtio-balloon at 0xd0000000, device id",
		       vm_rd(BAL_BASE, VM_DEVICE_ID));
		goto done;
	}
	acked = init();
	if (acked >> 63) {
		result("init", 0, "negotiation or queue setup, status", vm_rd(BAL_BASE, VM_STATUS));
		goto done;
	}
	result("init", 1, "", 0);
	for (uint64_t p = 0; p < KEEP_PAGES; p++)
		fill(KEEP_BASE + 4096 * p, keep_word(p));
	for (uint64_t p = 0; p < POOL_PAGES; p++)
		fill(POOL_BASE + 4096 * p, POOL_FILL * 0x0101010101010101ull);
	for (uint64_t a = 0; a < REP_LEN; a += 4096)
		fill(REP_BASE + a, REP_FILL * 0x0101010101010101ull);
	if (q_stats != 99)
		stats_fill();
	say("READY", nq);
	for (;;) {
		follow_target();
		if (q_stats != 99 && reap(q_stats)) {
			refills++;
			stats_fill();
		}
		if (inb(0x3fd) & 1) {
			uint8_t c = inb(0x3f8);

			if (c == 'q')
				break;
			if (c == 'c')
				check();
			if (c == 'r' && q_report != 99) {
				post(q_report, REP_BASE, (uint32_t)REP_LEN, 2);
				result("report", wait_used(q_report) == 0, "no used buffer", 0);
				reported = 1;
			}
		}
		delay_loop(20000);
	}
done:
	puts_serial("VBAL DONE pass=");
	put_u64(vg_passed);
	puts_serial(" fail=");
	put_u64(vg_failed);
	puts_serial("\n");
	guest_reset();
}
