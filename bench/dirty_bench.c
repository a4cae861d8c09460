/* dirty_bench: cost of each dirty-tracking backend next to its bare
 * mechanism (an mprotect fault round trip, a bare UFFDIO_WRITEPROTECT fault,
 * a bare async-WP fault, a guest write without logging) measured in the
 * same run: arm, collect at 0.1/1/10 % dirty, per-fault cost, write-loop
 * slowdown, then a built-in exactness pass.  `--quick` shrinks everything
 * to a smoke run.  Result lines come last. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "dirty_harness.h"
#include "dirty_tinyvm.h"
#include "linux_compat.h" /* dirty/: UAPI newer than Debian 12 headers */
#include "squib/dirty.h"

#define PG  4096ul
#define GPA (1ull << 30)

static size_t mem_len = 1ul << 30;   /* tracked memory per backend */
static unsigned fault_pages = 20000; /* distinct first writes for per-fault cost */
static unsigned loop_writes = 200000, loop_epochs = 10;
static unsigned exact_epochs = 200;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Distinct pages in random order: no two neighbours, so no VMA merging
 * flatters the mprotect numbers. */
static uint32_t *fault_order(unsigned n, size_t npages)
{
	uint32_t *o = malloc(n * sizeof(*o));
	uint64_t s = 88172645463325252ull;

	for (unsigned i = 0; i < n; i++)
		o[i] = (uint32_t)((i * 2 * (npages / 2 / n)) % npages);
	for (unsigned i = n - 1; i > 0; i--) {
		unsigned j = (unsigned)(hx_rnd(&s) % (i + 1));
		uint32_t t = o[i];

		o[i] = o[j];
		o[j] = t;
	}
	return o;
}

static uint8_t *map_populated(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	madvise(p, len, MADV_NOHUGEPAGE); /* 4 KiB ptes, as the trackers see them */
	for (size_t i = 0; i < len; i += PG)
		p[i] = 1;
	return p;
}

/* ---- floors: the bare mechanisms ---------------------------------------- */

static void bare_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	mprotect((void *)((uintptr_t)si->si_addr & ~(PG - 1)), PG, PROT_READ | PROT_WRITE);
}

static double floor_mprotect(uint8_t *m, const uint32_t *ord, unsigned n)
{
	struct sigaction sa = {.sa_sigaction = bare_segv, .sa_flags = SA_SIGINFO}, old;
	double t;

	mprotect(m, mem_len, PROT_READ);
	sigaction(SIGSEGV, &sa, &old);
	t = now_s();
	for (unsigned i = 0; i < n; i++)
		((volatile uint8_t *)m)[(size_t)ord[i] * PG]++;
	t = now_s() - t;
	sigaction(SIGSEGV, &old, NULL);
	mprotect(m, mem_len, PROT_READ | PROT_WRITE);
	return t / n * 1e9;
}

struct bare_uffd {
	int fd;
	volatile int stop;
};

static void *bare_uffd_thread(void *arg)
{
	struct bare_uffd *b = arg;
	struct uffd_msg msg[16];

	while (!b->stop) {
		struct pollfd p = {b->fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(b->fd, msg, sizeof(msg));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			struct uffdio_writeprotect wp = {
			    .range = {msg[i].arg.pagefault.address & ~(PG - 1), PG}, .mode = 0};
			ioctl(b->fd, UFFDIO_WRITEPROTECT, &wp);
		}
	}
	return NULL;
}

/* A bare userfaultfd write-protect fault: sync (handler thread un-protects)
 * or async (the kernel resolves it).  Returns ns per fault, < 0 if absent. */
static double floor_uffd(uint8_t *m, const uint32_t *ord, unsigned n, bool async)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
					     UFFD_FEATURE_WP_UNPOPULATED |
					     (async ? UFFD_FEATURE_WP_ASYNC : 0)};
	struct uffdio_register reg = {.range = {(uintptr_t)m, mem_len},
				      .mode = UFFDIO_REGISTER_MODE_WP};
	struct uffdio_writeprotect wp = {.range = {(uintptr_t)m, mem_len},
					 .mode = UFFDIO_WRITEPROTECT_MODE_WP};
	struct bare_uffd b = {.fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)};
	pthread_t thr;
	double t = -1;

	if (b.fd < 0 || ioctl(b.fd, UFFDIO_API, &api) || ioctl(b.fd, UFFDIO_REGISTER, &reg) ||
	    ioctl(b.fd, UFFDIO_WRITEPROTECT, &wp))
		goto out;
	if (!async)
		pthread_create(&thr, NULL, bare_uffd_thread, &b);
	t = now_s();
	for (unsigned i = 0; i < n; i++)
		((volatile uint8_t *)m)[(size_t)ord[i] * PG]++;
	t = (now_s() - t) / n * 1e9;
	if (!async) {
		b.stop = 1;
		pthread_join(thr, NULL);
	}
out:
	if (b.fd >= 0)
		close(b.fd); /* unregisters, drops write protection */
	return t;
}

/* ---- per backend ---------------------------------------------------------- */

struct bres {
	enum sqb_dirty_backend b;
	bool ran;
	char why[120];
	double floor_ns, fault_ns, arm_us, empty_us, coll_us[3], loop_slow;
	uint64_t coarsened, missed, over, epochs, written;
};

static const double fractions[3] = {0.001, 0.01, 0.1};

struct target {
	enum sqb_dirty_backend b;
	uint8_t *m;
	size_t npages;
	struct tinyvm vm;
	bool guest;
	uint32_t *list;
};

/* Dirty n pages at random among the first `span` pages: host stores, or
 * the guest for kvm. */
static void dirty_pages(struct target *t, unsigned n, size_t span, uint64_t *seed)
{
	for (unsigned i = 0; i < n; i++) {
		size_t p = hx_rnd(seed) % span;

		if (t->guest)
			t->list[i] = (uint32_t)(GPA + p * PG);
		else
			((volatile uint8_t *)t->m)[p * PG]++;
	}
	if (t->guest && tinyvm_touch(&t->vm, t->list, n) != 0) {
		fprintf(stderr, "guest run failed\n");
		exit(1);
	}
}

static void touch_order(struct target *t, const uint32_t *ord, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (t->guest)
			t->list[i] = (uint32_t)(GPA + (uint64_t)ord[i] * PG);
		else
			((volatile uint8_t *)t->m)[(size_t)ord[i] * PG]++;
	}
	if (t->guest)
		tinyvm_touch(&t->vm, t->list, n);
}

static double timed_collect(sqb_dirty *d, uint64_t *bm, size_t nw)
{
	double t = now_s();

	if (sqb_dirty_collect(d, bm, nw, NULL) != 0) {
		fprintf(stderr, "collect failed\n");
		exit(1);
	}
	return (now_s() - t) * 1e6;
}

/* Write-heavy loop: epochs of random stores (or guest page touches) into a
 * hot set of a quarter of memory (at most 64 MiB), so each page is written
 * several times per epoch, with a collect after each epoch when tracking.
 * Returns seconds. */
static double write_loop(struct target *t, sqb_dirty *d, uint64_t *bm, size_t nw)
{
	uint64_t seed = 12345;
	unsigned per = t->guest ? loop_writes / 10 : loop_writes;
	size_t hot = t->npages / 4 < 16384 ? t->npages / 4 : 16384;
	double s = now_s();

	for (unsigned e = 0; e < loop_epochs; e++) {
		dirty_pages(t, per, hot, &seed);
		if (d)
			sqb_dirty_collect(d, bm, nw, NULL);
	}
	return now_s() - s;
}

/* The bare mechanism on a separate populated region of the same size (the
 * tracker keeps its own registered), or for kvm the same guest stores with
 * dirty logging off. */
static double floor_for(struct target *t, sqb_dirty *d, uint8_t *fm, const uint32_t *ord,
			unsigned n)
{
	uint64_t *bm;
	double s;

	switch (t->b) {
	case SQB_DIRTY_MPROTECT:
	case SQB_DIRTY_EXIT:
		return floor_mprotect(fm, ord, n);
	case SQB_DIRTY_UFFD_WP:
		return floor_uffd(fm, ord, n, false);
	case SQB_DIRTY_UFFD_ASYNC:
		return floor_uffd(fm, ord, n, true);
	default:
		sqb_dirty_stop(d);
		touch_order(t, ord, n); /* map the pages writable */
		s = now_s();
		touch_order(t, ord, n);
		s = (now_s() - s) / n * 1e9;
		sqb_dirty_start(d);
		bm = calloc(SQB_DIRTY_BITMAP_WORDS(t->npages), sizeof(*bm));
		sqb_dirty_collect(d, bm, SQB_DIRTY_BITMAP_WORDS(t->npages), NULL);
		free(bm);
		return s;
	}
}

/* Per-fault cost, tracker and floor interleaved (best of 3 each): fault
 * costs are noisy on 2 vCPUs shared with other work. */
static void measure_faults(struct bres *r, struct target *t, sqb_dirty *d, const uint32_t *ord,
			   uint64_t *bm, size_t nw)
{
	uint8_t *fm = t->guest ? NULL : map_populated(mem_len);

	r->fault_ns = r->floor_ns = 1e30;
	for (int rep = 0; rep < 3; rep++) {
		double ns = floor_for(t, d, fm, ord, fault_pages), s;

		r->floor_ns = ns < r->floor_ns ? ns : r->floor_ns;
		s = now_s();
		touch_order(t, ord, fault_pages);
		ns = (now_s() - s) / fault_pages * 1e9;
		r->fault_ns = ns < r->fault_ns ? ns : r->fault_ns;
		timed_collect(d, bm, nw); /* re-arms the same pages */
	}
	if (fm)
		munmap(fm, mem_len);
}

/* exit backend: an mprotect + SIGSEGV fault source stands in for hvf's
 * write-fault exits, so its floor is the bare mprotect round trip. */
static sqb_dirty *_Atomic exit_tracker;
static uint8_t *exit_base;

static int exit_protect(void *ctx, uint64_t gpa, uint64_t len, int writable)
{
	(void)ctx;
	return mprotect(exit_base + (gpa - GPA), len, writable ? PROT_READ | PROT_WRITE : PROT_READ)
		   ? -errno
		   : 0;
}

static void exit_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (sqb_dirty_fault(exit_tracker, GPA + (uint64_t)((uint8_t *)si->si_addr - exit_base)) !=
	    1)
		signal(SIGSEGV, SIG_DFL);
}

static void measure_collects(struct bres *r, struct target *t, sqb_dirty *d, uint64_t *bm,
			     size_t nw)
{
	uint64_t seed = 7;

	for (int f = 0; f < 3; f++) {
		r->coll_us[f] = 1e30;
		for (int rep = 0; rep < 3; rep++) {
			double us;

			dirty_pages(t, (unsigned)(t->npages * fractions[f]), t->npages, &seed);
			us = timed_collect(d, bm, nw);
			r->coll_us[f] = us < r->coll_us[f] ? us : r->coll_us[f];
		}
	}
}

static int open_tracker(struct bres *r, struct target *t, struct sqb_dirty_range *range,
			sqb_dirty **d)
{
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	int err;

	if (r->b == SQB_DIRTY_KVM) {
		err = tinyvm_open(&t->vm, range, 1);
		if (err) {
			snprintf(r->why, sizeof(r->why), "no usable /dev/kvm: %s", strerror(-err));
			return err;
		}
		t->guest = true;
		o.kvm_vm_fd = t->vm.vm;
	}
	o.backend = r->b;
	o.ranges = range;
	o.nranges = 1;
	if (r->b == SQB_DIRTY_EXIT) {
		struct sigaction sa = {.sa_sigaction = exit_segv, .sa_flags = SA_SIGINFO};

		exit_base = t->m;
		o.protect = exit_protect;
		sigaction(SIGSEGV, &sa, NULL);
	}
	err = sqb_dirty_open(d, &o);
	exit_tracker = *d;
	if (err)
		snprintf(r->why, sizeof(r->why), "unavailable: %s", strerror(-err));
	return err;
}

static void bench_one(struct bres *r, const uint32_t *ord)
{
	struct target t = {.b = r->b, .npages = mem_len / PG};
	struct sqb_dirty_range range = {NULL, GPA, mem_len, 1, 0};
	size_t nw = SQB_DIRTY_BITMAP_WORDS(t.npages);
	uint64_t *bm = calloc(nw, sizeof(*bm));
	struct sqb_dirty_stats st;
	sqb_dirty *d = NULL;
	double t0, plain;

	t.m = range.host = map_populated(mem_len);
	t.list = calloc(t.npages / 5 + fault_pages, sizeof(uint32_t));
	if (open_tracker(r, &t, &range, &d) != 0)
		goto out;
	t0 = now_s();
	sqb_dirty_start(d);
	r->arm_us = (now_s() - t0) * 1e6;
	r->empty_us = timed_collect(d, bm, nw);
	measure_faults(r, &t, d, ord, bm, nw);
	measure_collects(r, &t, d, bm, nw);
	sqb_dirty_stop(d);
	plain = write_loop(&t, NULL, bm, nw);
	sqb_dirty_start(d);
	r->loop_slow = write_loop(&t, d, bm, nw) / plain;
	sqb_dirty_stats(d, &st);
	r->coarsened = st.coarsened;
	r->ran = true;
out:
	sqb_dirty_free(d);
	if (r->b == SQB_DIRTY_EXIT)
		signal(SIGSEGV, SIG_DFL);
	if (t.guest)
		tinyvm_close(&t.vm);
	munmap(t.m, mem_len);
	free(t.list);
	free(bm);
}

static void exactness(struct bres *r)
{
	struct hx_opts o = {.backend = r->b,
			    .pages = 1024,
			    .threads = 3,
			    .epochs = exact_epochs,
			    .writes = 48,
			    .kernel = true,
			    .guest = true};
	struct hx_result x;

	if (hx_run(&x, &o) != 0) {
		r->missed = UINT64_MAX;
		return;
	}
	r->missed = x.misses;
	r->over = x.over;
	r->epochs = x.epochs;
	r->written = x.written;
}

/* Timings on a shared 2-vCPU machine mean little without this. */
static void print_loadavg(void)
{
	char la[64] = "?\n";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (!fgets(la, sizeof(la), f))
			strcpy(la, "?\n");
		fclose(f);
	}
	printf("loadavg at start: %s", la);
}

int main(int argc, char **argv)
{
	static const enum sqb_dirty_backend order[] = {SQB_DIRTY_KVM, SQB_DIRTY_UFFD_ASYNC,
						       SQB_DIRTY_UFFD_WP, SQB_DIRTY_MPROTECT,
						       SQB_DIRTY_EXIT};
	struct bres res[5];
	uint64_t missed = 0;
	uint32_t *ord;

	if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
		mem_len = 16ul << 20;
		fault_pages = 500;
		loop_writes = 2000;
		loop_epochs = 3;
		exact_epochs = 10;
	}
	ord = fault_order(fault_pages, mem_len / PG);
	print_loadavg();
	printf(
	    "dirty_bench: %zu MiB tracked, %u faults, loop %u x %u writes, exactness %u epochs\n",
	    mem_len >> 20, fault_pages, loop_epochs, loop_writes, exact_epochs);
	for (int i = 0; i < 5; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		res[i].b = order[i];
		bench_one(&res[i], ord);
		if (res[i].ran)
			exactness(&res[i]);
		fflush(stdout);
	}
	printf("\n%-10s %9s %9s %9s %9s %9s %9s %9s %6s %8s %9s\n", "backend", "arm_us", "coll0_us",
	       "c0.1%_us", "c1%_us", "c10%_us", "fault_ns", "floor_ns", "ratio", "loop_x",
	       "coarsened");
	for (int i = 0; i < 5; i++) {
		struct bres *r = &res[i];

		if (!r->ran) {
			printf("%-10s skipped: %s\n", sqb_dirty_backend_name(r->b), r->why);
			continue;
		}
		printf("%-10s %9.1f %9.1f %9.1f %9.1f %9.1f %9.0f %9.0f %6.2f %8.2f %9llu\n",
		       sqb_dirty_backend_name(r->b), r->arm_us, r->empty_us, r->coll_us[0],
		       r->coll_us[1], r->coll_us[2], r->fault_ns, r->floor_ns,
		       r->fault_ns / r->floor_ns, r->loop_slow, (unsigned long long)r->coarsened);
	}
	printf("\n");
	for (int i = 0; i < 5; i++) {
		struct bres *r = &res[i];

		if (!r->ran)
			continue;
		missed += r->missed;
		printf("result backend=%s collect_1pct_us=%.1f fault_ratio=%.2f loop_slowdown=%.2f "
		       "epochs=%llu written=%llu over=%llu missed=%llu\n",
		       sqb_dirty_backend_name(r->b), r->coll_us[1], r->fault_ns / r->floor_ns,
		       r->loop_slow, (unsigned long long)r->epochs, (unsigned long long)r->written,
		       (unsigned long long)r->over, (unsigned long long)r->missed);
	}
	printf("result all missed=%llu\n", (unsigned long long)missed);
	free(ord);
	return missed ? 1 : 0;
}
