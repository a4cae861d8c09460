/* Every strategy x codec x chain depth x destination kind: while threads read
 * and write random pages (and, for userfaultfd, the kernel reads them through
 * write() on a pipe, as KVM would; for the exit-driven strategy each access
 * first calls sqb_restore_fetch(), as an exit would), every page must equal sqb_snap_read()'s
 * bytes, and after the restore converges the whole memory must too. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>
#include <cmocka.h>

#include "rs_test_util.h"

#define S0   (3u << 20)
#define S1   ((5u << 20) + 12288) /* not a whole number of 64 KiB blocks */
#define OPS  2500
#define MARK 64 /* byte a writer flips in each page it owns */

enum dest { OWN_ANON, OWN_MEMFD, CALLER_ANON, CALLER_MEMFD };
static const char *dest_name[] = {"own-anon", "own-memfd", "caller-anon", "caller-memfd"};

static char tmpdir[64];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
static int have_uffd;

struct shared {
	uint8_t *base[2];
	const uint8_t *ref[2];
	uint64_t npages[2];
	uint8_t *written[2]; /* page -> written by its owner */
	atomic_int bad;
	atomic_int kernel_bad;
	sqb_restore *exit_rs; /* LAZY_EXIT: fetch before every access, as a VMM does on an exit */
	uint64_t gpa[2];
};

/* LAZY_EXIT has no host fault source: a hypervisor exit (or the VMM's
 * accessor) calls sqb_restore_fetch() before the access. */
static void touch(struct shared *sh, int r, uint64_t p, atomic_int *bad)
{
	if (sh->exit_rs && sqb_restore_fetch(sh->exit_rs, sh->gpa[r] + p * 4096, 4096))
		atomic_fetch_add(bad, 1);
}

struct worker {
	struct shared *sh;
	int tid; /* 0..2 user threads, 3 kernel-side reader */
	uint64_t seed;
};

static void pick(struct worker *w, int *r, uint64_t *p)
{
	uint64_t x = sqbt_rand(&w->seed);

	*r = (int)(x & 1);
	*p = (x >> 1) % w->sh->npages[*r];
}

/* Pages p % 8 == tid belong to thread tid (it may write them); pages with
 * p % 8 >= 3 are read-only for everyone and must always match ref. */
static void *user_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;

	for (int i = 0; i < OPS; i++) {
		int r;
		uint64_t p;
		uint8_t *pg;
		const uint8_t *ref;

		pick(w, &r, &p);
		if (p % 8 < 3 && (int)(p % 8) != w->tid)
			p = p - p % 8 + (uint64_t)w->tid;
		if (p >= sh->npages[r])
			continue;
		pg = sh->base[r] + p * 4096;
		ref = sh->ref[r] + p * 4096;
		touch(sh, r, p, &sh->bad);
		if ((int)(p % 8) == w->tid) {
			if (!sh->written[r][p]) {
				if (memcmp(pg, ref, 4096))
					atomic_fetch_add(&sh->bad, 1);
				pg[MARK] = (uint8_t)~ref[MARK];
				sh->written[r][p] = 1;
			} else if ((pg[MARK] ^ ref[MARK]) != 0xff) {
				atomic_fetch_add(&sh->bad, 1);
			}
		} else if (memcmp(pg, ref, 4096)) {
			atomic_fetch_add(&sh->bad, 1);
		}
	}
	return NULL;
}

/* The kernel touches the memory on our behalf (copy_from_user in write()),
 * the way KVM faults guest memory: those faults must be served too. */
static void *kernel_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint8_t buf[4096];
	int pfd[2];

	if (pipe(pfd))
		return (void *)1;
	for (int i = 0; i < OPS / 4; i++) {
		int r;
		uint64_t p;

		pick(w, &r, &p);
		if (p % 8 < 3)
			p |= 3;
		if (p >= sh->npages[r])
			continue;
		touch(sh, r, p, &sh->kernel_bad);
		if (write(pfd[1], sh->base[r] + p * 4096, 4096) != 4096 ||
		    read(pfd[0], buf, 4096) != 4096 || memcmp(buf, sh->ref[r] + p * 4096, 4096))
			atomic_fetch_add(&sh->kernel_bad, 1);
	}
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void *caller_mem(enum dest d, uint64_t size, int *fd)
{
	void *p;

	*fd = -1;
	if (d == CALLER_MEMFD) {
		*fd = memfd_create("rt-caller", MFD_CLOEXEC);
		if (*fd < 0 || ftruncate(*fd, (off_t)size))
			return NULL;
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	} else {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	return p == MAP_FAILED ? NULL : p;
}

static void run_case(struct rt_snap *t, enum sqb_restore_strategy st, enum dest d)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct shared sh = {0};
	struct worker w[4];
	pthread_t th[4];
	void *host[2] = {NULL, NULL};
	int fds[2] = {-1, -1}, nthreads;
	sqb_restore *rs;
	struct sqb_diag diag = {0};
	struct sqb_restore_stats stats;
	int err;

	o.strategy = st;
	if (d == OWN_MEMFD)
		o.flags |= SQB_RESTORE_MEMFD;
	if (d >= CALLER_ANON) {
		for (int r = 0; r < 2; r++)
			assert_non_null(host[r] = caller_mem(d, t->size[r], &fds[r]));
		o.host = host;
	}
	uint64_t t0 = now_ms();
	err = sqb_restore_start(&rs, t->s, &o, &diag);
	if (getenv("RT_VERBOSE"))
		fprintf(stderr, "%s/%s start %llu ms\n", sqb_restore_strategy_name(st),
			dest_name[d], (unsigned long long)(now_ms() - t0));
	if (err) {
		char b[300];

		fprintf(stderr, "%s/%s: %s (%s)\n", sqb_restore_strategy_name(st), dest_name[d],
			sqb_strerror(err), sqb_diag_format(&diag, b, sizeof(b)));
	}
	assert_int_equal(err, 0);
	assert_int_equal(sqb_restore_mem_count(rs), 2);
	for (int r = 0; r < 2; r++) {
		struct sqb_restore_mem m;

		assert_int_equal(sqb_restore_mem(rs, (unsigned int)r, &m), 0);
		assert_int_equal(m.size, t->size[r]);
		assert_int_equal(m.gpa, r ? RT_R1_GPA : RT_R0_GPA);
		if (d == OWN_MEMFD)
			assert_true(m.memfd >= 0);
		sh.base[r] = m.host;
		sh.gpa[r] = m.gpa;
		sh.ref[r] = t->ref[r];
		sh.npages[r] = t->size[r] / 4096;
		sh.written[r] = calloc(sh.npages[r], 1);
	}
	if (st == SQB_RESTORE_LAZY_EXIT)
		sh.exit_rs = rs;
	nthreads = st == SQB_RESTORE_LAZY_SIGNAL ? 3 : 4;
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){&sh, i, 77 + (uint64_t)i * 1000 + (uint64_t)st};
		assert_int_equal(
		    pthread_create(&th[i], NULL, i == 3 ? kernel_thread : user_thread, &w[i]), 0);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	if (getenv("RT_VERBOSE"))
		fprintf(stderr, "  threads %llu ms\n", (unsigned long long)(now_ms() - t0));
	assert_int_equal(sqb_restore_wait(rs, 20000), 0);
	if (getenv("RT_VERBOSE"))
		fprintf(stderr, "  wait %llu ms\n", (unsigned long long)(now_ms() - t0));
	sqb_restore_get_stats(rs, &stats);
	assert_int_equal(stats.blocks_present, stats.blocks);
	assert_int_equal(atomic_load(&sh.bad), 0);
	assert_int_equal(atomic_load(&sh.kernel_bad), 0);
	/* converged: the whole memory is the snapshot plus our own writes */
	for (int r = 0; r < 2; r++) {
		for (uint64_t p = 0; p < sh.npages[r]; p++) {
			uint8_t *pg = sh.base[r] + p * 4096;
			const uint8_t *ref = t->ref[r] + p * 4096;

			if (sh.written[r][p]) {
				assert_int_equal(pg[MARK], (uint8_t)~ref[MARK]);
				assert_memory_equal(pg, ref, MARK);
				assert_memory_equal(pg + MARK + 1, ref + MARK + 1, 4096 - MARK - 1);
			} else if (memcmp(pg, ref, 4096)) {
				fail_msg("%s/%s depth %d: region %d page %llu differs",
					 sqb_restore_strategy_name(st), dest_name[d], t->depth, r,
					 (unsigned long long)p);
			}
		}
		free(sh.written[r]);
	}
	if (st == SQB_RESTORE_MMAP && sqb_snap_get_info(t->s)->kind == SQB_SNAP_FULL) {
		struct sqb_mem_stats ms;

		sqb_snap_mem_stats(t->s, &ms);
		/* zero copy: every RAW page is mapped, not decoded */
		assert_true(stats.mapped_bytes >= ms.raw * 4096);
	}
	t0 = now_ms();
	sqb_restore_free(rs);
	if (getenv("RT_VERBOSE"))
		fprintf(stderr, "  free %llu ms\n", (unsigned long long)(now_ms() - t0));
	for (int r = 0; r < 2; r++)
		if (host[r]) {
			munmap(host[r], t->size[r]);
			if (fds[r] >= 0)
				close(fds[r]);
		}
}

static void matrix(enum sqb_codec codec, int depth)
{
	struct rt_snap t;
	char tag[32];

	uint64_t t0 = now_ms();

	snprintf(tag, sizeof(tag), "m%d-%d", codec, depth);
	assert_int_equal(rt_make(&t, tmpdir, tag, codec, depth, S0, S1, 11 + (uint64_t)codec), 0);
	if (getenv("RT_VERBOSE"))
		fprintf(stderr, "make %llu ms\n", (unsigned long long)(now_ms() - t0));
	for (enum dest d = OWN_ANON; d <= CALLER_MEMFD; d++)
		run_case(&t, SQB_RESTORE_EAGER, d);
	run_case(&t, SQB_RESTORE_MMAP, OWN_ANON);
	run_case(&t, SQB_RESTORE_MMAP, CALLER_ANON);
	run_case(&t, SQB_RESTORE_LAZY_SIGNAL, OWN_MEMFD);
	for (enum dest d = OWN_ANON; d <= CALLER_MEMFD; d++)
		run_case(&t, SQB_RESTORE_LAZY_EXIT, d);
	if (have_uffd)
		for (enum dest d = OWN_ANON; d <= CALLER_MEMFD; d++)
			run_case(&t, SQB_RESTORE_LAZY, d);
	rt_free(&t);
}

static void test_full_none(void **s)
{
	(void)s;
	matrix(SQB_CODEC_NONE, 0);
}
static void test_full_lz4(void **s)
{
	(void)s;
	matrix(SQB_CODEC_LZ4, 0);
}
static void test_full_zstd(void **s)
{
	(void)s;
	matrix(SQB_CODEC_ZSTD, 0);
}
static void test_chain3_none(void **s)
{
	(void)s;
	matrix(SQB_CODEC_NONE, 3);
}
static void test_chain3_lz4(void **s)
{
	(void)s;
	matrix(SQB_CODEC_LZ4, 3);
}
static void test_chain3_zstd(void **s)
{
	(void)s;
	matrix(SQB_CODEC_ZSTD, 3);
}

/* A chain whose RAW pages live in three files maps each from its own file. */
static void test_mmap_chain_maps_every_layer(void **state)
{
	struct rt_snap t;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_stats st;
	sqb_restore *rs;

	(void)state;
	assert_int_equal(rt_make(&t, tmpdir, "mc", SQB_CODEC_NONE, 3, S0, S1, 5), 0);
	o.strategy = SQB_RESTORE_MMAP;
	assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), 0);
	sqb_restore_get_stats(rs, &st);
	/* the newest layer holds ~15% of pages: most bytes come from parents */
	assert_true(st.mapped_bytes > (S0 + S1) / 2);
	assert_true(st.decoded_bytes < (S0 + S1) / 4);
	sqb_restore_free(rs);
	/* a memfd destination cannot be a file mapping: refused, nothing leaks */
	o.flags = SQB_RESTORE_MEMFD;
	assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), -EINVAL);
	assert_null(rs);
	rt_free(&t);
}

/* 16 KiB guest pages (the aarch64/HVF case) on this 4 KiB host: every
 * strategy, plus page-granular recording and a prefetched working set. */
static void test_16k_guest_pages(void **state)
{
	static const enum sqb_restore_strategy sts[] = {SQB_RESTORE_EAGER, SQB_RESTORE_MMAP,
							SQB_RESTORE_LAZY, SQB_RESTORE_LAZY_SIGNAL};
	const uint64_t size = (4u << 20) + 16384;
	uint8_t *mem = sqbt_pattern_mem(size, 16384, 3), *ref = malloc(size);
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	sqb_snap *s;
	char path[128], ws[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/g16.sqb", tmpdir);
	snprintf(ws, sizeof(ws), "%s/g16.ws", tmpdir);
	wo.guest_page_size = 16384;
	wo.codec = SQB_CODEC_NONE;
	assert_int_equal(sqb_writer_open(&w, path, &wo), 0);
	assert_int_equal(sqb_writer_add_memory(w, 1ull << 30, size, mem, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
	assert_int_equal(sqb_snap_read(s, 1ull << 30, ref, size, NULL), 0);
	assert_memory_equal(ref, mem, size);
	for (int i = 0; i < 4; i++) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m;
		sqb_restore *rs;

		if (sts[i] == SQB_RESTORE_LAZY && !have_uffd)
			continue;
		o.strategy = sts[i];
		assert_int_equal(sqb_restore_start(&rs, s, &o, NULL), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		assert_memory_equal(m.host, ref, size);
		assert_int_equal(sqb_restore_wait(rs, 20000), 0);
		sqb_restore_free(rs);
	}
	if (have_uffd) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m;
		struct sqb_restore_stats st;
		sqb_restore *rs;
		const uint64_t pages[] = {7, 200, 3, 150, 151}; /* 16 KiB pages */

		o.strategy = SQB_RESTORE_LAZY;
		o.flags = SQB_RESTORE_RECORD;
		assert_int_equal(sqb_restore_start(&rs, s, &o, NULL), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		for (int i = 0; i < 5; i++) /* touch the last 4 KiB of each guest page */
			assert_memory_equal((uint8_t *)m.host + pages[i] * 16384 + 12288,
					    ref + pages[i] * 16384 + 12288, 4096);
		assert_int_equal(sqb_restore_wset_save(rs, ws), 0);
		sqb_restore_free(rs);
		o.flags = SQB_RESTORE_NO_FILL | SQB_RESTORE_WSET_SYNC;
		o.wset_path = ws;
		assert_int_equal(sqb_restore_start(&rs, s, &o, NULL), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		for (int i = 0; i < 5; i++) /* whole guest pages were recorded */
			assert_memory_equal((uint8_t *)m.host + pages[i] * 16384,
					    ref + pages[i] * 16384, 16384);
		sqb_restore_get_stats(rs, &st);
		assert_int_equal(st.faults, 0);
		sqb_restore_free(rs);
	}
	sqb_snap_free(s);
	free(mem);
	free(ref);
}

static int setup(void **state)
{
	(void)state;
	/* tmpfs when we can: snapshot fsyncs on this VM's disk are slow */
	snprintf(tmpdir, sizeof(tmpdir), "%s/sqb-rm-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	have_uffd = rt_uffd_usable();
	if (!have_uffd)
		fprintf(stderr, "userfaultfd with EVENT_REMOVE unavailable: lazy cases skipped\n");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_none),
	    cmocka_unit_test(test_full_lz4),
	    cmocka_unit_test(test_full_zstd),
	    cmocka_unit_test(test_chain3_none),
	    cmocka_unit_test(test_chain3_lz4),
	    cmocka_unit_test(test_chain3_zstd),
	    cmocka_unit_test(test_mmap_chain_maps_every_layer),
	    cmocka_unit_test(test_16k_guest_pages),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
