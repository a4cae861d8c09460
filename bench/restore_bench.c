/* restore_bench: one run on a 1 GiB snapshot (--quick: 64 MiB): time to first
 * access, per-fault service latency against a bare UFFDIO_COPY measured in
 * the same run, lazy vs eager convergence, a recorded working set touched
 * with and without prefetch, and mmap restore setup.  Prints PASS/MISS per
 * target; it is a measurement, never a pass/fail test. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t size; /* guest bytes */
static void cleanup(void);
static char dir[256];
static char raw_path[300], lz4_path[300], ws_path[300];
static int have_uffd;

struct row {
	const char *name;
	char value[64];
	char target[32];
	int verdict; /* -1 none, 0 MISS, 1 PASS */
};
static struct row rows[24];
static int nrows;

static void add(const char *name, const char *target, int verdict, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(const char *name, const char *target, int verdict, const char *fmt, ...)
{
	va_list ap;
	struct row *r = &rows[nrows++];

	r->name = name;
	snprintf(r->target, sizeof(r->target), "%s", target);
	r->verdict = verdict;
	va_start(ap, fmt);
	vsnprintf(r->value, sizeof(r->value), fmt, ap);
	va_end(ap);
}

static int write_snap(const char *path, const uint8_t *mem, enum sqb_codec codec)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	o.codec = codec;
	if ((err = sqb_writer_open(&w, path, &o)))
		return err;
	err = sqb_writer_add_memory(w, 0, size, mem, NULL);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

/* Median and p99 of a UFFDIO_COPY of `len` bytes already in memory into a
 * missing page (nobody waits on it): the floor any handler pays. */
static void bare_copy(uint64_t len, uint64_t *p50, uint64_t *p99)
{
	const int n = 2000;
	uint64_t area = (uint64_t)n * len, *t = calloc((size_t)n, sizeof(*t));
	uint8_t *src = malloc(len), *dst;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};

	*p50 = *p99 = 0;
	memset(src, 0x5a, len);
	dst = mmap(NULL, area, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) || dst == MAP_FAILED)
		goto out;
	reg.range.start = (uintptr_t)dst;
	reg.range.len = area;
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		goto out;
	for (int i = 0; i < n; i++) {
		struct uffdio_copy c = {
		    .dst = (uintptr_t)dst + (uint64_t)i * len, .src = (uintptr_t)src, .len = len};
		uint64_t t0 = now_ns();

		if (ioctl(fd, UFFDIO_COPY, &c))
			goto out;
		t[i] = now_ns() - t0;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_u64);
	*p50 = t[n / 2];
	*p99 = t[n * 99 / 100];
out:
	if (dst != MAP_FAILED)
		munmap(dst, area);
	if (fd >= 0)
		close(fd);
	free(src);
	free(t);
}

static uint64_t touch(const uint8_t *b, const uint64_t *pages, size_t n);

/* The floor of a real handler: a minimal one that reads a fault and serves
 * it with one UFFDIO_COPY of `len` bytes already in memory (waking the
 * faulting thread), timed the way the restorer times itself. */
struct bare {
	int fd;
	uint8_t *base;
	uint64_t len, n, *t;
};

static void *bare_main(void *arg)
{
	struct bare *b = arg;
	static uint8_t src[65536];

	for (uint64_t i = 0; i < b->n;) {
		struct pollfd p = {b->fd, POLLIN, 0};
		struct uffd_msg msg;
		uint64_t t0;

		if (poll(&p, 1, 1000) <= 0 || read(b->fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		t0 = now_ns();
		{
			struct uffdio_copy c = {
			    .dst = msg.arg.pagefault.address & ~(b->len - 1),
			    .src = (uintptr_t)src,
			    .len = b->len,
			};

			(void)ioctl(b->fd, UFFDIO_COPY, &c);
		}
		b->t[i++] = now_ns() - t0;
	}
	return NULL;
}

static void bare_handler(uint64_t len, const uint64_t *pages, uint64_t n, uint64_t *p50,
			 uint64_t *p99)
{
	struct bare b = {.len = len, .n = n};
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};
	pthread_t th;

	*p50 = *p99 = 0;
	b.t = calloc(n, sizeof(*b.t));
	b.fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	b.base = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b.fd < 0 || ioctl(b.fd, UFFDIO_API, &api) || b.base == MAP_FAILED)
		goto out;
	reg.range.start = (uintptr_t)b.base;
	reg.range.len = size;
	if (ioctl(b.fd, UFFDIO_REGISTER, &reg) || pthread_create(&th, NULL, bare_main, &b))
		goto out;
	touch(b.base, pages, n);
	pthread_join(th, NULL);
	qsort(b.t, n, sizeof(*b.t), cmp_u64);
	*p50 = b.t[n / 2];
	*p99 = b.t[n * 99 / 100];
out:
	if (b.base != MAP_FAILED)
		munmap(b.base, size);
	if (b.fd >= 0)
		close(b.fd);
	free(b.t);
}

static sqb_restore *start(sqb_snap *s, enum sqb_restore_strategy st, unsigned int flags,
			  const char *wset, uint64_t *ns)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_diag d = {0};
	sqb_restore *rs;
	uint64_t t0 = now_ns();
	int err;

	o.strategy = st;
	o.flags = flags;
	o.wset_path = wset;
	err = sqb_restore_start(&rs, s, &o, &d);
	*ns = now_ns() - t0;
	if (err) {
		char b[300];

		fprintf(stderr, "restore_bench: %s: %s (%s)\n", sqb_restore_strategy_name(st),
			sqb_strerror(err), sqb_diag_format(&d, b, sizeof(b)));
		exit(1);
	}
	return rs;
}

static volatile uint8_t sink;

static uint8_t *host0(sqb_restore *rs)
{
	struct sqb_restore_mem m;

	sqb_restore_mem(rs, 0, &m);
	return m.host;
}

/* Touch pages[] in order (one read each); ns from restore start included. */
static uint64_t touch(const uint8_t *b, const uint64_t *pages, size_t n)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < n; i++)
		sink += b[pages[i] * 4096];
	return now_ns() - t0;
}

static void bench_first_access_and_mmap(sqb_snap *raw, sqb_snap *lz4)
{
	uint64_t t_start, t_touch, t_v;
	sqb_restore *rs;

	if (have_uffd) {
		rs = start(lz4, SQB_RESTORE_LAZY, 0, NULL, &t_start);
		t_touch = touch(host0(rs), (uint64_t[]){size / 4096 / 2}, 1);
		add("time to first access, lazy", "", -1, "%.3f ms (start %.3f)",
		    (t_start + t_touch) / 1e6, t_start / 1e6);
		sqb_restore_free(rs);
	}
	rs = start(raw, SQB_RESTORE_MMAP, SQB_RESTORE_TRUST_RAW, NULL, &t_start);
	t_touch = touch(host0(rs), (uint64_t[]){size / 4096 / 2}, 1);
	sqb_restore_free(rs);
	add("time to first access, mmap", "", -1, "%.3f ms", (t_start + t_touch) / 1e6);
	add("mmap setup (RAW trusted)", "<= 1 ms/GiB", t_start * (1ull << 30) / size <= 1000000,
	    "%.3f ms", t_start / 1e6);
	rs = start(raw, SQB_RESTORE_MMAP, 0, NULL, &t_v);
	sqb_restore_free(rs);
	add("mmap setup (checksums read)", "", -1, "%.1f ms", t_v / 1e6);
}

static void bench_faults(sqb_snap *s)
{
	uint64_t b50, b99, c50, c99, t, n = size / 4096 / 16, seed = 9;
	uint64_t *pages = malloc(n * sizeof(*pages));
	struct sqb_restore_stats st;
	sqb_restore *rs;

	uint64_t h50, h99, k50, k99;

	bare_copy(4096, &b50, &b99);
	bare_copy(65536, &c50, &c99);
	uint8_t *used = calloc(size / 65536, 1);

	for (uint64_t i = 0; i < n; i++) { /* one page in each of n distinct random blocks */
		uint64_t blk;

		do
			blk = sqbt_rand(&seed) % (size / 65536);
		while (used[blk]);
		used[blk] = 1;
		pages[i] = blk * 16 + sqbt_rand(&seed) % 16;
	}
	free(used);
	bare_handler(4096, pages, n, &h50, &h99);
	bare_handler(65536, pages, n, &k50, &k99);
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_NO_FILL, NULL, &t);
	t = touch(host0(rs), pages, n);
	sqb_restore_get_stats(rs, &st);
	sqb_restore_free(rs);
	add("UFFDIO_COPY 4K, nobody waiting", "", -1, "%.1f / %.1f us", b50 / 1e3, b99 / 1e3);
	add("UFFDIO_COPY 64K, nobody waiting", "", -1, "%.1f / %.1f us", c50 / 1e3, c99 / 1e3);
	add("bare handler 4K (read+copy+wake)", "", -1, "%.1f / %.1f us", h50 / 1e3, h99 / 1e3);
	add("bare handler 64K (read+copy+wake)", "", -1, "%.1f / %.1f us", k50 / 1e3, k99 / 1e3);
	c50 = k50;
	add("fault service 64K, with decode", "", -1, "%.1f / %.1f us (%.2fx)",
	    st.fault_p50_ns / 1e3, st.fault_p99_ns / 1e3, (double)st.fault_p50_ns / (double)c50);
	add("fault service 64K, source in mem", "<= 1.3x bare hdlr",
	    st.install_p50_ns <= c50 * 13 / 10, "%.1f / %.1f us (%.2fx)", st.install_p50_ns / 1e3,
	    st.install_p99_ns / 1e3, (double)st.install_p50_ns / (double)c50);
	add("fault round trip seen by thread", "", -1, "%.1f us", (double)t / (double)n / 1e3);
	/* page-granular faults (recording mode) against the bare 4 KiB copy */
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_RECORD, NULL, &t);
	t = touch(host0(rs), pages, n);
	sqb_restore_get_stats(rs, &st);
	sqb_restore_free(rs);
	b50 = h50;
	add("fault service 4K, with decode", "", -1, "%.1f / %.1f us (%.2fx)",
	    st.fault_p50_ns / 1e3, st.fault_p99_ns / 1e3, (double)st.fault_p50_ns / (double)b50);
	add("fault service 4K, source in mem", "<= 1.3x bare hdlr",
	    st.install_p50_ns <= b50 * 13 / 10, "%.1f / %.1f us (%.2fx)", st.install_p50_ns / 1e3,
	    st.install_p99_ns / 1e3, (double)st.install_p50_ns / (double)b50);
	free(pages);
}

static void bench_convergence(sqb_snap *s)
{
	uint64_t te, tl, tw;
	sqb_restore *rs;

	rs = start(s, SQB_RESTORE_EAGER, 0, NULL, &te);
	sqb_restore_free(rs);
	rs = start(s, SQB_RESTORE_LAZY, 0, NULL, &tl);
	tw = now_ns();
	if (sqb_restore_wait(rs, -1)) {
		fprintf(stderr, "restore_bench: lazy restore did not converge\n");
		exit(1);
	}
	tl += now_ns() - tw;
	sqb_restore_free(rs);
	add("fully resident, eager", "", -1, "%.0f ms (%.2f GiB/s)", te / 1e6,
	    (double)size / (1 << 30) / (te / 1e9));
	add("fully resident, lazy", "<= 1.2x eager", tl * 10 <= te * 12, "%.0f ms (%.2fx)",
	    tl / 1e6, (double)tl / (double)te);
}

/* Eager into a VM's fresh memfd (what PUT /snapshot/load "eager" does),
 * 20 % of the guest data, the rest zero: with SQB_RESTORE_DEST_ZERO the
 * zero extents are skipped; the floor is one memcpy of the data bytes into
 * a fresh memfd mapping. */
static uint64_t eager_vm_once(sqb_snap *s, unsigned int flags)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	int fd = memfd_create("rbench", MFD_CLOEXEC);
	void *host[1];
	sqb_restore *rs = NULL;
	uint64_t t0, t = 0;

	if (fd < 0 || ftruncate(fd, (off_t)size))
		exit(1);
	host[0] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (host[0] == MAP_FAILED)
		exit(1);
	o.strategy = SQB_RESTORE_EAGER;
	o.flags = flags;
	o.host = host;
	t0 = now_ns();
	if (sqb_restore_start(&rs, s, &o, NULL) == 0)
		t = now_ns() - t0;
	sqb_restore_free(rs);
	munmap(host[0], size);
	close(fd);
	return t;
}

static uint64_t memcpy_floor_once(const uint8_t *src, uint64_t len)
{
	int fd = memfd_create("rbench", MFD_CLOEXEC);
	uint8_t *dst;
	uint64_t t0, t;

	if (fd < 0 || ftruncate(fd, (off_t)size))
		exit(1);
	dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (dst == MAP_FAILED)
		exit(1);
	t0 = now_ns();
	memcpy(dst, src, len);
	t = now_ns() - t0;
	munmap(dst, size);
	close(fd);
	return t;
}

static void bench_eager_vm(void)
{
	uint64_t data = size / 5 & ~65535ull, before[5], after[5], fl[5];
	uint8_t *mem = calloc(1, size);
	char path[320];
	sqb_snap *s = NULL;

	snprintf(path, sizeof(path), "%s/zero80.sqb", dir);
	if (!mem)
		exit(1);
	for (uint64_t i = 0; i < data / 8; i++)
		((uint64_t *)mem)[i] = i * 0x9e3779b97f4a7c15ull | 1;
	if (write_snap(path, mem, SQB_CODEC_NONE) || sqb_snap_open(&s, path, NULL, NULL))
		exit(1);
	eager_vm_once(s, SQB_RESTORE_DEST_ZERO); /* page cache warm */
	for (int i = 0; i < 5; i++) {
		fl[i] = memcpy_floor_once(mem, data);
		before[i] = eager_vm_once(s, 0);
		after[i] = eager_vm_once(s, SQB_RESTORE_DEST_ZERO);
	}
	qsort(fl, 5, 8, cmp_u64);
	qsort(before, 5, 8, cmp_u64);
	qsort(after, 5, 8, cmp_u64);
	add("eager VM memfd 20% data: floor", "", -1, "%.1f ms memcpy of %llu MiB", fl[2] / 1e6,
	    (unsigned long long)(data >> 20));
	add("eager VM memfd, zeros written", "", -1, "%.1f ms (%.2fx floor)", before[2] / 1e6,
	    (double)fl[2] / (double)before[2]);
	add("eager VM memfd, zero skip", ">= 0.8x floor", fl[2] * 10 >= after[2] * 8,
	    "%.1f ms (%.2fx floor)", after[2] / 1e6, (double)fl[2] / (double)after[2]);
	sqb_snap_free(s);
	unlink(path);
	free(mem);
}

static void bench_wset(sqb_snap *s)
{
	uint64_t n = size / 4096 / 10, seed = 77, t, t_od, t_pf, t_sync, ts;
	uint64_t *pages = malloc(n * sizeof(*pages));
	uint8_t *seen = calloc(size / 4096, 1);
	sqb_restore *rs;

	for (uint64_t i = 0; i < n; i++) { /* 10 % of pages, random order */
		do
			pages[i] = sqbt_rand(&seed) % (size / 4096);
		while (seen[pages[i]]);
		seen[pages[i]] = 1;
	}
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_RECORD, NULL, &t);
	touch(host0(rs), pages, n);
	if (sqb_restore_wset_save(rs, ws_path)) {
		fprintf(stderr, "restore_bench: cannot save the working set\n");
		exit(1);
	}
	sqb_restore_free(rs);
	/* on demand: every page of the set faults */
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_NO_FILL, NULL, &ts);
	t_od = ts + touch(host0(rs), pages, n);
	sqb_restore_free(rs);
	/* prefetched while the "guest" runs */
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_NO_FILL, ws_path, &ts);
	t_pf = ts + touch(host0(rs), pages, n);
	if (getenv("RB_VERBOSE")) {
		struct sqb_restore_stats st;

		sqb_restore_get_stats(rs, &st);
		fprintf(stderr, "async: start %.1f ms, faults %llu\n", ts / 1e6,
			(unsigned long long)st.faults);
	}
	sqb_restore_free(rs);
	/* installed before start returns */
	rs = start(s, SQB_RESTORE_LAZY, SQB_RESTORE_NO_FILL | SQB_RESTORE_WSET_SYNC, ws_path, &ts);
	t_sync = ts + touch(host0(rs), pages, n);
	sqb_restore_free(rs);
	add("working set (10%) on demand", "", -1, "%.0f ms", t_od / 1e6);
	add("working set, prefetch async", ">= 3x faster", t_od >= 3 * t_pf, "%.0f ms (%.1fx)",
	    t_pf / 1e6, (double)t_od / (double)t_pf);
	add("working set, prefetch sync", ">= 3x faster", t_od >= 3 * t_sync, "%.0f ms (%.1fx)",
	    t_sync / 1e6, (double)t_od / (double)t_sync);
	free(pages);
	free(seen);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && !strcmp(argv[1], "--quick");
	int eager_only = argc > 1 && !strcmp(argv[1], "--eager"); /* the eager-VM rows alone */
	const char *base = getenv("SQB_BENCH_DIR") ? getenv("SQB_BENCH_DIR") : "/var/tmp";
	sqb_snap *raw = NULL, *lz4 = NULL;
	uint8_t *mem;
	uint64_t t0;

	size = quick ? 64ull << 20 : 1ull << 30;
	snprintf(dir, sizeof(dir), "%s/sqb-rbench-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("restore_bench: mkdtemp");
		return 1;
	}
	snprintf(raw_path, sizeof(raw_path), "%s/raw.sqb", dir);
	snprintf(lz4_path, sizeof(lz4_path), "%s/lz4.sqb", dir);
	snprintf(ws_path, sizeof(ws_path), "%s/ws.sqb", dir);
	atexit(cleanup); /* GiB files never outlive the run, even on failure */
	if (eager_only) {
		bench_eager_vm();
		for (int i = 0; i < nrows; i++)
			printf("%-34s %-30s %-18s %s\n", rows[i].name, rows[i].value,
			       rows[i].target,
			       rows[i].verdict < 0 ? ""
			       : rows[i].verdict   ? "PASS"
						   : "MISS");
		return 0;
	}
	{
		int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};

		have_uffd = fd >= 0 && !ioctl(fd, UFFDIO_API, &api);
		if (fd >= 0)
			close(fd);
	}
	t0 = now_ns();
	mem = sqbt_pattern_mem(size, 4096, 1);
	if (!mem || write_snap(raw_path, mem, SQB_CODEC_NONE) ||
	    write_snap(lz4_path, mem, SQB_CODEC_LZ4) || sqb_snap_open(&raw, raw_path, NULL, NULL) ||
	    sqb_snap_open(&lz4, lz4_path, NULL, NULL)) {
		fprintf(stderr, "restore_bench: cannot build the snapshots in %s\n", dir);
		return 1;
	}
	free(mem);
	/* warm the page cache: we measure restore, not this disk */
	{
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		sqb_restore *rs;

		o.flags = SQB_RESTORE_VERIFY;
		if (!sqb_restore_start(&rs, lz4, &o, NULL))
			sqb_restore_free(rs);
		o.strategy = SQB_RESTORE_MMAP;
		if (!sqb_restore_start(&rs, raw, &o, NULL))
			sqb_restore_free(rs);
	}
	printf("restore_bench: %llu MiB guest, snapshots built in %.1f s (lz4 for decoding, "
	       "none for mmap)\n",
	       (unsigned long long)(size >> 20), (now_ns() - t0) / 1e9);
	bench_first_access_and_mmap(raw, lz4);
	bench_eager_vm();
	if (have_uffd) {
		bench_faults(raw);
		bench_convergence(lz4);
		bench_wset(lz4);
	} else {
		fprintf(stderr, "restore_bench: userfaultfd unavailable: lazy rows skipped\n");
	}
	printf("\n%-34s %-30s %-18s %s\n", "metric", "value", "target", "result");
	for (int i = 0; i < nrows; i++)
		printf("%-34s %-30s %-18s %s\n", rows[i].name, rows[i].value, rows[i].target,
		       rows[i].verdict < 0 ? ""
		       : rows[i].verdict   ? "PASS"
					   : "MISS");
	sqb_snap_free(raw);
	sqb_snap_free(lz4);
	return 0;
}

static void cleanup(void)
{
	unlink(raw_path);
	unlink(lz4_path);
	unlink(ws_path);
	rmdir(dir);
}
