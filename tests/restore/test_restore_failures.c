/* Failure behaviour of the restorer: REMOVE events (MADV_DONTNEED/REMOVE make
 * pages zero, consistently), a corrupt chunk is reported and never served
 * (faulting threads stay blocked, then get EFAULT/SIGBUS, never zeros), bad
 * snapshots and foreign working sets are refused before anything is mapped,
 * and the working set is recorded and prefetched. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "rs_test_util.h"

#define S0 (2u << 20)
#define S1 (1u << 20)

static char tmpdir[64];
static int have_uffd;
static struct rt_snap lz4snap;

#define NEED_UFFD()                                                                                \
	do {                                                                                       \
		if (!have_uffd) {                                                                  \
			fprintf(stderr, "skipped: userfaultfd with EVENT_REMOVE unavailable\n");   \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Lines of /proc/self/maps.  Under ASan freed buffers stay mapped in its
 * quarantine, so the count only means something in a plain build. */
/* ThreadSanitizer maps its own shadow memory as the process touches new
 * memory, so the count of mappings moves by itself there: the "no mapping
 * leaked" checks compare counts only in builds without it. */
#ifdef __SANITIZE_THREAD__
#define MAPS_EQUAL(a, b) ((void)(a), (void)(b))
#else
#define MAPS_EQUAL(a, b) assert_int_equal(a, b)
#endif

static int count_lines(const char *path)
{
#ifdef __SANITIZE_ADDRESS__
	(void)path;
	return 0;
#endif
	FILE *f = fopen(path, "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static int is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* ---- REMOVE events ---- */

static void remove_case(int fill)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct rt_snap *t = &lz4snap;
	struct sqb_restore_mem m;
	struct sqb_restore_stats st;
	sqb_restore *rs;
	uint8_t *b, buf[4096];
	const uint8_t *ref = t->ref[0];
	uint64_t removed[] = {160, 321, 322, 400}; /* never-touched pages too */
	int pfd[2];

	o.strategy = SQB_RESTORE_LAZY;
	o.flags = fill ? 0 : SQB_RESTORE_NO_FILL;
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	b = m.host;
	/* find a page with data so "reads zero" means something */
	while (is_zero(ref + removed[0] * 4096, 4096))
		removed[0]++;
	assert_memory_equal(b + removed[0] * 4096, ref + removed[0] * 4096, 4096);
	b[removed[0] * 4096 + 5] ^= 1; /* dirty it */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(madvise(b + removed[i] * 4096, 4096, MADV_DONTNEED), 0);
	for (size_t i = 0; i < 4; i++)
		assert_true(is_zero(b + removed[i] * 4096, 4096));
	/* the kernel sees the same zeros */
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(write(pfd[1], b + removed[0] * 4096, 4096), 4096);
	assert_int_equal(read(pfd[0], buf, 4096), 4096);
	assert_true(is_zero(buf, 4096));
	close(pfd[0]);
	close(pfd[1]);
	/* neighbours in the same blocks keep the snapshot's bytes */
	assert_memory_equal(b + (removed[0] + 1) * 4096, ref + (removed[0] + 1) * 4096, 4096);
	assert_memory_equal(b + 323 * 4096, ref + 323 * 4096, 4096);
	if (fill)
		assert_int_equal(sqb_restore_wait(rs, 20000), 0);
	/* later accesses are consistent: written zeros stay written, rest intact */
	b[removed[1] * 4096] = 7;
	for (uint64_t p = 0; p < S0 / 4096; p++) {
		int rem = 0;

		for (size_t i = 0; i < 4; i++)
			rem |= removed[i] == p;
		if (p == removed[1])
			assert_int_equal(b[p * 4096], 7);
		else if (rem)
			assert_true(is_zero(b + p * 4096, 4096));
		else
			assert_memory_equal(b + p * 4096, ref + p * 4096, 4096);
	}
	sqb_restore_get_stats(rs, &st);
	assert_true(st.removed_pages >= 4);
	sqb_restore_free(rs);
}

static void test_remove_makes_pages_zero(void **state)
{
	(void)state;
	NEED_UFFD();
	remove_case(0);
	remove_case(1);
}

/* Odd pages are never dropped: a reader thread checks them while the main
 * thread drops even pages, so faults meet pending REMOVE events (EAGAIN). */
struct odd_reader {
	const uint8_t *b, *ref;
	uint64_t npg;
	atomic_int stop, bad;
};

static void *odd_reader_main(void *arg)
{
	struct odd_reader *r = arg;
	uint64_t seed = 5;

	while (!atomic_load(&r->stop)) {
		uint64_t p = (sqbt_rand(&seed) % (r->npg / 2)) * 2 + 1;

		if (memcmp(r->b + p * 4096, r->ref + p * 4096, 4096))
			atomic_fetch_add(&r->bad, 1);
	}
	return NULL;
}

/* REMOVE events racing the filler threads and faults: every dropped page
 * reads zero afterwards, every other page keeps the snapshot's bytes, no
 * fault is lost (a lost one hangs the reader, and ctest's timeout fails it). */
static void test_remove_races_filler(void **state)
{
	struct rt_snap *t = &lz4snap;
	uint64_t npg = S0 / 4096, seed = 99;
	uint8_t *dropped = calloc(npg, 1);

	(void)state;
	NEED_UFFD();
	for (int round = 0; round < 6; round++) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m;
		struct odd_reader rd = {0};
		pthread_t th;
		sqb_restore *rs;
		uint8_t *b;

		memset(dropped, 0, npg);
		o.strategy = SQB_RESTORE_LAZY;
		o.threads = 2;
		assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		b = m.host;
		rd.b = b;
		rd.ref = t->ref[0];
		rd.npg = npg;
		assert_int_equal(pthread_create(&th, NULL, odd_reader_main, &rd), 0);
		for (int i = 0; i < 150; i++) {
			uint64_t p = (sqbt_rand(&seed) % (npg / 2)) * 2;

			if (i % 3 == 0) /* touch some first, so some removes hit resident pages */
				(void)*(volatile uint8_t *)(b + p * 4096);
			assert_int_equal(madvise(b + p * 4096, 4096, MADV_DONTNEED), 0);
			dropped[p] = 1;
		}
		assert_int_equal(sqb_restore_wait(rs, 20000), 0);
		atomic_store(&rd.stop, 1);
		pthread_join(th, NULL);
		assert_int_equal(atomic_load(&rd.bad), 0);
		for (uint64_t p = 0; p < npg; p++) {
			if (dropped[p] ? !is_zero(b + p * 4096, 4096)
				       : memcmp(b + p * 4096, t->ref[0] + p * 4096, 4096) != 0)
				fail_msg("round %d page %llu: %s", round, (unsigned long long)p,
					 dropped[p] ? "dropped page is not zero"
						    : "page differs from the snapshot");
		}
		sqb_restore_free(rs);
	}
	free(dropped);
}

/* memfd destination: MADV_REMOVE punches the page out of the memfd. */
static void test_remove_on_memfd_destination(void **state)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_mem m;
	sqb_restore *rs;
	uint8_t *b;

	(void)state;
	NEED_UFFD();
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_MEMFD | SQB_RESTORE_NO_FILL;
	assert_int_equal(sqb_restore_start(&rs, lz4snap.s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	b = m.host;
	assert_true(m.memfd >= 0);
	assert_memory_equal(b + 40 * 4096, lz4snap.ref[0] + 40 * 4096, 4096);
	assert_int_equal(madvise(b + 40 * 4096, 4096, MADV_REMOVE), 0);
	assert_int_equal(madvise(b + 90 * 4096, 4096, MADV_REMOVE), 0);
	assert_true(is_zero(b + 40 * 4096, 4096));
	assert_true(is_zero(b + 90 * 4096, 4096));
	assert_memory_equal(b + 41 * 4096, lz4snap.ref[0] + 41 * 4096, 4096);
	assert_memory_equal(b + 91 * 4096, lz4snap.ref[0] + 91 * 4096, 4096);
	sqb_restore_free(rs);
}

/* ---- corrupt chunks ---- */

struct errlog {
	atomic_int calls;
	atomic_int err;
	struct sqb_diag d;
};

static void on_err(void *ctx, int err, const struct sqb_diag *d)
{
	struct errlog *l = ctx;

	if (d)
		l->d = *d;
	atomic_store(&l->err, err);
	atomic_fetch_add(&l->calls, 1);
}

static void make_corrupt(struct rt_snap *t, const char *tag, enum sqb_codec codec,
			 uint64_t *bad_gpa)
{
	uint64_t off = 0;

	assert_int_equal(rt_make(t, tmpdir, tag, codec, 0, S0, S1, 3), 0);
	assert_int_equal(
	    rt_find_stored(t->s, codec ? SQB_EXT_COMPRESSED : SQB_EXT_RAW, &off, bad_gpa), 0);
	/* the far end of region 0 must stay good for the tests */
	assert_true(*bad_gpa < S0 / 2);
	sqb_snap_free(t->s);
	assert_int_equal(rt_flip_byte(t->path[0], off + 20), 0);
	assert_int_equal(sqb_snap_open(&t->s, t->path[0], NULL, NULL), 0);
}

struct kread {
	const uint8_t *addr;
	int pipefd;
	atomic_int done;
	int result, err;
};

static void *kernel_reader(void *arg)
{
	struct kread *k = arg;

	k->result = (int)write(k->pipefd, k->addr, 4096);
	k->err = errno;
	atomic_store(&k->done, 1);
	return NULL;
}

static void test_corrupt_chunk_reported_not_served(void **state)
{
	struct rt_snap t;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct errlog log = {0};
	uint64_t bad, good = S0 - 4096;
	uint8_t *mem, buf[4096];
	void *host[2];
	sqb_restore *rs;
	struct kread k = {0};
	pthread_t th;
	int pfd[2];

	(void)state;
	NEED_UFFD();
	make_corrupt(&t, "cc", SQB_CODEC_ZSTD, &bad);
	mem = mmap(NULL, S0 + S1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	host[0] = mem;
	host[1] = mem + S0;
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_NO_FILL;
	o.host = host;
	o.on_error = on_err;
	o.cb_ctx = &log;
	assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), 0);
	assert_memory_equal(mem + good, t.ref[0] + good, 4096);
	/* the kernel faults on the bad page on our behalf (as KVM would) */
	assert_int_equal(pipe2(pfd, O_NONBLOCK), 0);
	k.addr = mem + bad;
	k.pipefd = pfd[1];
	assert_int_equal(pthread_create(&th, NULL, kernel_reader, &k), 0);
	for (int i = 0; i < 500 && !atomic_load(&log.calls); i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&log.calls), 1);
	assert_int_equal(atomic_load(&log.err), -SQB_ECHECKSUM);
	assert_non_null(strstr(log.d.reason, "checksum"));
	assert_int_equal(sqb_restore_wait(rs, 0), -SQB_ECHECKSUM);
	sleep_ms(200);
	assert_int_equal(atomic_load(&k.done), 0); /* still blocked: not given zeros */
	sqb_restore_free(rs);
	pthread_join(th, NULL);
	assert_int_equal(k.result, -1);
	assert_int_equal(k.err, EFAULT);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), -1); /* nothing went through */
	/* the caller's memory: resident pages kept, the rest sealed */
	assert_memory_equal(mem + good, t.ref[0] + good, 4096);
	assert_int_equal(write(pfd[1], mem + bad, 4096), -1);
	assert_int_equal(errno, EFAULT);
	close(pfd[0]);
	close(pfd[1]);
	munmap(mem, S0 + S1);
	rt_free(&t);
}

/* A lazy restore into caller memory whose handler dies after serving page
 * A (SQB_FAULT=restore_handler_dies), and a kernel access to page B (another
 * block) left blocked on it: the common start of the next two tests. */
#define DEAD_A (3 * 4096ull)
#define DEAD_B (S0 - 8 * 4096ull)
struct dead_handler {
	uint8_t *mem;
	void *host[2];
	sqb_restore *rs;
	struct kread k;
	pthread_t th;
	int pfd[2];
};

static void dead_handler_start(struct dead_handler *h, struct rt_snap *t)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;

	memset(h, 0, sizeof(*h));
	assert_false(is_zero(t->ref[0] + DEAD_B, 4096));
	h->mem = mmap(NULL, S0 + S1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(h->mem != MAP_FAILED);
	h->host[0] = h->mem;
	h->host[1] = h->mem + S0;
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_NO_FILL;
	o.host = h->host;
	setenv("SQB_FAULT", "restore_handler_dies", 1);
	setenv("SQB_FAULT_AFTER", "1", 1);
	assert_int_equal(sqb_restore_start(&h->rs, t->s, &o, NULL), 0);
	/* served, then it dies */
	assert_memory_equal(h->mem + DEAD_A, t->ref[0] + DEAD_A, 4096);
	unsetenv("SQB_FAULT");
	unsetenv("SQB_FAULT_AFTER");
	assert_int_equal(pipe2(h->pfd, O_NONBLOCK), 0);
	h->k.addr = h->mem + DEAD_B;
	h->k.pipefd = h->pfd[1];
	assert_int_equal(pthread_create(&h->th, NULL, kernel_reader, &h->k), 0);
	sleep_ms(300);
	assert_int_equal(atomic_load(&h->k.done), 0);
}

/* The access was released: it failed with EFAULT and wrote nothing. */
static void dead_handler_released(struct dead_handler *h)
{
	uint8_t buf[4096];

	pthread_join(h->th, NULL);
	assert_int_equal(h->k.result, -1);
	assert_int_equal(h->k.err, EFAULT);
	assert_int_equal(read(h->pfd[0], buf, sizeof(buf)), -1);
}

static void dead_handler_end(struct dead_handler *h)
{
	close(h->pfd[0]);
	close(h->pfd[1]);
	munmap(h->mem, S0 + S1);
}

/* The handler dies mid-restore: a kernel access to a page it never served
 * stays blocked, and once the restore is freed it fails with EFAULT; it
 * never reads zeros.  Without the sealing in sqb_restore_free() the access
 * would complete with a zero page. */
static void test_killed_handler_gives_no_zero_pages(void **state)
{
	struct rt_snap *t = &lz4snap;
	struct dead_handler h;

	(void)state;
	NEED_UFFD();
	dead_handler_start(&h, t);
	assert_int_equal(sqb_restore_wait(h.rs, 50), -ETIMEDOUT);
	sqb_restore_free(h.rs);
	dead_handler_released(&h);
	assert_memory_equal(h.mem + DEAD_A, t->ref[0] + DEAD_A, 4096);
	dead_handler_end(&h);
}

/* sqb_restore_stop() (what squib does when it stops the VM, before it joins
 * the vCPUs): a kernel access waiting for a page nobody serves (here the
 * handler died; in squib the restore failed) is woken and fails with
 * EFAULT, never with zeros; a fetch of a missing page fails at once instead
 * of waiting for ever; resident pages stay; free after it is fine. */
static void test_stop_releases_a_blocked_access(void **state)
{
	struct rt_snap *t = &lz4snap;
	struct dead_handler h;

	(void)state;
	NEED_UFFD();
	dead_handler_start(&h, t);
	sqb_restore_stop(h.rs); /* not free: the access is released by the stop */
	dead_handler_released(&h);
	assert_int_equal(sqb_restore_fetch(h.rs, DEAD_B, 4096), -ECANCELED);
	assert_int_equal(sqb_restore_fetch(h.rs, DEAD_A, 4096), 0); /* resident */
	assert_memory_equal(h.mem + DEAD_A, t->ref[0] + DEAD_A, 4096);
	sqb_restore_stop(h.rs); /* idempotent */
	sqb_restore_free(h.rs);
	dead_handler_end(&h);
}

static void test_corrupt_chunk_found_by_filler(void **state)
{
	struct rt_snap t;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct errlog log = {0};
	uint64_t bad;
	sqb_restore *rs;

	(void)state;
	NEED_UFFD();
	make_corrupt(&t, "cf", SQB_CODEC_LZ4, &bad);
	o.strategy = SQB_RESTORE_LAZY;
	o.on_error = on_err;
	o.cb_ctx = &log;
	assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), 0);
	assert_int_equal(sqb_restore_wait(rs, 20000), -SQB_ECHECKSUM);
	assert_int_equal(atomic_load(&log.calls), 1);
	sqb_restore_free(rs);
	rt_free(&t);
}

/* SQB_RESTORE_FILL_LATER (squib's first verified load): faults are served
 * from the start, the filler waits for sqb_restore_fill_after() and its
 * delay, then converges; a corrupt chunk nobody touched is met only then;
 * a restore freed before (or during) the delay joins its waiting filler. */
static void test_fill_later_waits_for_the_caller(void **state)
{
	struct rt_snap *t = &lz4snap, c;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_mem m;
	struct sqb_restore_stats st;
	struct errlog log = {0};
	uint64_t bad;
	sqb_restore *rs;
	const uint8_t *b;

	(void)state;
	NEED_UFFD();
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_FILL_LATER;
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	b = m.host;
	assert_memory_equal(b + 323 * 4096, t->ref[0] + 323 * 4096, 4096); /* a fault */
	assert_int_equal(sqb_restore_wait(rs, 100), -ETIMEDOUT);	   /* no filler yet */
	sqb_restore_get_stats(rs, &st);
	assert_true(st.blocks_present < st.blocks);
	sqb_restore_fill_after(rs, 30);
	sqb_restore_fill_after(rs, 100000); /* the first call counts */
	assert_int_equal(sqb_restore_wait(rs, 20000), 0);
	for (uint64_t p = 0; p < S0 / 4096; p++)
		assert_memory_equal(b + p * 4096, t->ref[0] + p * 4096, 4096);
	sqb_restore_free(rs);

	/* never told: free joins the filler waiting to begin */
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	sqb_restore_free(rs);
	/* told with a long delay: free does not wait for it */
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	sqb_restore_fill_after(rs, 600000);
	sqb_restore_free(rs);

	/* a corrupt chunk: found by the filler once it begins, not before */
	make_corrupt(&c, "fl", SQB_CODEC_LZ4, &bad);
	o.on_error = on_err;
	o.cb_ctx = &log;
	assert_int_equal(sqb_restore_start(&rs, c.s, &o, NULL), 0);
	assert_int_equal(sqb_restore_wait(rs, 100), -ETIMEDOUT);
	assert_int_equal(atomic_load(&log.calls), 0);
	sqb_restore_fill_after(rs, 0);
	assert_int_equal(sqb_restore_wait(rs, 20000), -SQB_ECHECKSUM);
	assert_int_equal(atomic_load(&log.calls), 1);
	sqb_restore_free(rs);
	rt_free(&c);
}

static void test_corrupt_chunk_eager_and_mmap_fail(void **state)
{
	static const enum sqb_codec codecs[] = {SQB_CODEC_NONE, SQB_CODEC_ZSTD};
	static const enum sqb_restore_strategy sts[] = {SQB_RESTORE_EAGER, SQB_RESTORE_MMAP};

	(void)state;
	for (int c = 0; c < 2; c++) {
		struct rt_snap t;
		uint64_t bad;
		char tag[8];

		snprintf(tag, sizeof(tag), "ce%d", c);
		make_corrupt(&t, tag, codecs[c], &bad);
		for (int s = 0; s < 2; s++) {
			struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
			struct sqb_diag d = {0};
			sqb_restore *rs = (sqb_restore *)1;
			int maps = count_lines("/proc/self/maps");

			o.strategy = sts[s];
			o.threads = 1; /* no thread stacks: glibc caches them as mappings */
			assert_int_equal(sqb_restore_start(&rs, t.s, &o, &d), -SQB_ECHECKSUM);
			assert_null(rs);
			assert_non_null(strstr(d.reason, "checksum"));
			MAPS_EQUAL(count_lines("/proc/self/maps"), maps);
		}
		rt_free(&t);
	}
}

static int cb_pipe = -1;

static void on_err_pipe(void *ctx, int err, const struct sqb_diag *d)
{
	(void)ctx;
	(void)d;
	(void)!write(cb_pipe, &err, sizeof(err));
}

/* SIGSEGV mode: a thread that touches a bad page dies by SIGBUS after the
 * VMM's callback ran; it never continues on a zero page. */
static void test_signal_mode_corrupt_page_is_fatal(void **state)
{
	struct rt_snap t;
	uint64_t bad;
	int pfd[2], status, err = 0;
	pid_t pid;

	(void)state;
	make_corrupt(&t, "cs", SQB_CODEC_ZSTD, &bad);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m;
		sqb_restore *rs;
		volatile uint8_t *p;
		uint8_t sum = 0;

		close(pfd[0]);
		cb_pipe = pfd[1];
		o.strategy = SQB_RESTORE_LAZY_SIGNAL;
		o.flags = SQB_RESTORE_NO_FILL;
		o.on_error = on_err_pipe;
		if (sqb_restore_start(&rs, t.s, &o, NULL) || sqb_restore_mem(rs, 0, &m))
			_exit(3);
		if (memcmp((uint8_t *)m.host + S0 - 4096, t.ref[0] + S0 - 4096, 4096))
			_exit(4);
		p = (volatile uint8_t *)m.host + bad;
		for (int i = 0; i < 4096; i++)
			sum |= p[i];
		_exit(sum ? 5 : 6); /* reached only if a bad page was served */
	}
	close(pfd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fail_msg("child exited with %d instead of dying on SIGBUS", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	/* and the VMM's callback heard why before that */
	assert_int_equal(read(pfd[0], &err, sizeof(err)), (ssize_t)sizeof(err));
	assert_int_equal(err, -SQB_ECHECKSUM);
	close(pfd[0]);
	rt_free(&t);
}

/* ---- refused before anything is mapped ---- */

static void expect_refused(sqb_snap *s, const struct sqb_restore_opts *base, int want)
{
	static const enum sqb_restore_strategy sts[] = {SQB_RESTORE_EAGER, SQB_RESTORE_MMAP,
							SQB_RESTORE_LAZY, SQB_RESTORE_LAZY_SIGNAL};

	for (int i = 0; i < 4; i++) {
		struct sqb_restore_opts o = *base;
		struct sqb_diag d = {0};
		sqb_restore *rs = (sqb_restore *)1;
		int maps = count_lines("/proc/self/maps"), fds = count_fds();

		if (o.version == SQB_RESTORE_OPTS_VERSION)
			o.strategy = sts[i];
		o.threads = 1;
		assert_int_equal(sqb_restore_start(&rs, s, &o, &d), want);
		assert_null(rs);
		assert_true(d.reason[0] != 0); /* says why */
		MAPS_EQUAL(count_lines("/proc/self/maps"), maps);
		assert_int_equal(count_fds(), fds);
	}
}

static void test_bad_snapshot_refused_before_mapping(void **state)
{
	struct rt_snap chain, bad;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *alone, *st;
	uint64_t badgpa;
	char path[128];
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	void *host[2] = {(void *)0x1001, (void *)0x2000};

	(void)state;
	/* a diff whose parent was not opened */
	assert_int_equal(rt_make(&chain, tmpdir, "bp", SQB_CODEC_LZ4, 3, S0, S1, 9), 0);
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&alone, chain.path[3], &oo, NULL), 0);
	expect_refused(alone, &o, -SQB_EPARENT);
	sqb_snap_free(alone);
	/* a corrupt chunk, with full verification asked for */
	make_corrupt(&bad, "bv", SQB_CODEC_LZ4, &badgpa);
	o.flags = SQB_RESTORE_VERIFY;
	expect_refused(bad.s, &o, -SQB_ECHECKSUM);
	o.flags = 0;
	/* a STATE file has no memory */
	snprintf(path, sizeof(path), "%s/state.sqb", tmpdir);
	wo.role = SQB_ROLE_STATE;
	assert_int_equal(sqb_writer_open(&w, path, &wo), 0);
	assert_int_equal(sqb_writer_set_kv(w, SQB_SEC_META, "k", "v", 1), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&st, path, NULL, NULL), 0);
	expect_refused(st, &o, -SQB_EMISMATCH);
	sqb_snap_free(st);
	/* bad options */
	o.host = host;
	expect_refused(chain.s, &o, -EINVAL);
	o.host = NULL;
	o.flags = 0x8000;
	expect_refused(chain.s, &o, -EINVAL);
	o.flags = 0;
	o.version = 99;
	expect_refused(chain.s, &o, -EINVAL);
	rt_free(&chain);
	rt_free(&bad);
}

/* ---- working set ---- */

static void touch(uint8_t *b, const uint8_t *ref, const uint64_t *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(b + pages[i] * 4096, ref + pages[i] * 4096, 4096);
}

static void test_working_set_record_and_prefetch(void **state)
{
	struct rt_snap *t = &lz4snap, other;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_mem m;
	struct sqb_restore_stats st;
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_wset_range *wr;
	size_t nw, total = 0;
	uint64_t pages[200], seed = 5;
	uint8_t *seen = calloc(S0 / 4096, 1);
	char path[128], path2[128];
	sqb_snap *ws;
	sqb_restore *rs;

	(void)state;
	NEED_UFFD();
	for (size_t i = 0; i < 200; i++) {
		do
			pages[i] = sqbt_rand(&seed) % (S0 / 4096);
		while (seen[pages[i]]);
		seen[pages[i]] = 1;
	}
	snprintf(path, sizeof(path), "%s/ws.sqb", tmpdir);
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_RECORD;
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	touch(m.host, t->ref[0], pages, 200);
	sqb_restore_get_stats(rs, &st);
	assert_int_equal(st.faults, 200);
	assert_int_equal(sqb_restore_wset_save(rs, path), 0);
	sqb_restore_free(rs);

	/* the sidecar: STATE role, tied to this snapshot, pages in touch order */
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&ws, path, &oo, NULL), 0);
	assert_int_equal(sqb_snap_get_info(ws)->role, SQB_ROLE_STATE);
	assert_memory_equal(&sqb_snap_get_info(ws)->companion_uuid, &sqb_snap_get_info(t->s)->uuid,
			    16);
	assert_memory_equal(&sqb_snap_get_info(ws)->companion_digest,
			    &sqb_snap_get_info(t->s)->digest, 16);
	assert_int_equal(sqb_snap_working_set(ws, &wr, &nw, NULL), 0);
	assert_int_equal(wr[0].gpa, pages[0] * 4096);
	for (size_t i = 0; i < nw; i++) {
		for (uint32_t p = 0; p < wr[i].pages; p++)
			assert_int_equal(seen[wr[i].gpa / 4096 + p], 1);
		total += wr[i].pages;
	}
	assert_int_equal(total, 200);
	free(wr);
	sqb_snap_free(ws);

	/* prefetched before start returns: touching the set takes no faults */
	for (int sig = 0; sig < 2; sig++) {
		o.strategy = sig ? SQB_RESTORE_LAZY_SIGNAL : SQB_RESTORE_LAZY;
		o.flags = SQB_RESTORE_NO_FILL | SQB_RESTORE_WSET_SYNC;
		o.wset_path = path;
		assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		touch(m.host, t->ref[0], pages, 200);
		sqb_restore_get_stats(rs, &st);
		assert_int_equal(st.faults, 0);
		sqb_restore_free(rs);
	}
	/* prefetched while running, faults jumping ahead: same bytes */
	o.strategy = SQB_RESTORE_LAZY;
	o.flags = SQB_RESTORE_NO_FILL;
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	touch(m.host, t->ref[0], pages, 200);
	sqb_restore_free(rs);

	/* a working set recorded on another snapshot is refused up front */
	assert_int_equal(rt_make(&other, tmpdir, "wo", SQB_CODEC_LZ4, 0, S0, S1, 3), 0);
	o.flags = 0;
	expect_refused(other.s, &o, -SQB_EMISMATCH);
	rt_free(&other);
	/* a damaged sidecar is refused too (its sections are checksummed) */
	snprintf(path2, sizeof(path2), "%s/ws2.sqb", tmpdir);
	{
		char cmd[300];
		struct stat sb;

		snprintf(cmd, sizeof(cmd), "cp %s %s", path, path2);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(stat(path2, &sb), 0);
		assert_int_equal(rt_flip_byte(path2, (uint64_t)sb.st_size / 2), 0); /* page data */
	}
	o.wset_path = path2;
	{
		sqb_restore *r2 = NULL;

		o.strategy = SQB_RESTORE_LAZY;
		assert_true(sqb_restore_start(&r2, t->s, &o, NULL) < 0);
		assert_null(r2);
	}
	free(seen);
}

/* SIGSEGV mode cannot see kernel accesses: sqb_restore_fetch makes a range
 * resident first; unfetched pages give EFAULT, never zeros. */
static void test_signal_mode_fetch_for_kernel_access(void **state)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_mem m;
	sqb_restore *rs;
	uint8_t buf[4096];
	int pfd[2];

	(void)state;
	o.strategy = SQB_RESTORE_LAZY_SIGNAL;
	o.flags = SQB_RESTORE_NO_FILL;
	assert_int_equal(sqb_restore_start(&rs, lz4snap.s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 1, &m), 0);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(write(pfd[1], (uint8_t *)m.host + 8192, 4096), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(sqb_restore_fetch(rs, RT_R1_GPA + 8192, 3 * 4096), 0);
	assert_int_equal(write(pfd[1], (uint8_t *)m.host + 8192, 4096), 4096);
	assert_int_equal(read(pfd[0], buf, 4096), 4096);
	assert_memory_equal(buf, lz4snap.ref[1] + 8192, 4096);
	close(pfd[0]);
	close(pfd[1]);
	sqb_restore_free(rs);
}

/* Exit-driven postcopy (SQB_RESTORE_LAZY_EXIT, the HVF shape): nothing in
 * the host traps; what was not fetched is simply not there yet (the
 * hypervisor keeps the guest off it).  A fetch installs exactly the blocks
 * it covers; a fetch of a corrupt chunk fails with the checksum error and
 * the VMM's callback hears it; that page is never filled. */
static void test_exit_mode_fetch_and_corrupt_chunk(void **state)
{
	static const uint8_t zero[4096];
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_mem m;
	struct sqb_restore_stats st;
	struct rt_snap t;
	sqb_restore *rs;
	uint64_t bad;
	int pfd[2], err = 0;

	(void)state;
	make_corrupt(&t, "ce", SQB_CODEC_LZ4, &bad);
	assert_int_equal(pipe(pfd), 0);
	cb_pipe = pfd[1];
	o.strategy = SQB_RESTORE_LAZY_EXIT;
	o.flags = SQB_RESTORE_NO_FILL;
	o.on_error = on_err_pipe;
	assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), 0);
	assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
	/* nothing is installed before a fetch */
	assert_memory_equal((uint8_t *)m.host + S0 - 4096, zero, 4096);
	assert_int_equal(sqb_restore_fetch(rs, RT_R0_GPA + S0 - 4096, 4096), 0);
	assert_memory_equal((uint8_t *)m.host + S0 - 4096, t.ref[0] + S0 - 4096, 4096);
	/* a page the guest wrote after its fetch is never filled again */
	((uint8_t *)m.host)[S0 - 4096] ^= 0xff;
	assert_int_equal(sqb_restore_fetch(rs, RT_R0_GPA + S0 - 8192, 8192), 0);
	assert_int_equal(((uint8_t *)m.host)[S0 - 4096], (uint8_t)~t.ref[0][S0 - 4096]);
	sqb_restore_get_stats(rs, &st);
	assert_true(st.blocks_present < st.blocks);
	/* the corrupt chunk */
	assert_int_equal(sqb_restore_fetch(rs, RT_R0_GPA + bad, 4096), -SQB_ECHECKSUM);
	assert_memory_equal((uint8_t *)m.host + bad, zero, 4096);
	assert_int_equal(read(pfd[0], &err, sizeof(err)), (ssize_t)sizeof(err));
	assert_int_equal(err, -SQB_ECHECKSUM);
	/* and every later fetch says so too */
	assert_int_equal(sqb_restore_fetch(rs, RT_R0_GPA, 4096), -SQB_ECHECKSUM);
	assert_int_equal(sqb_restore_wait(rs, 0), -SQB_ECHECKSUM);
	sqb_restore_free(rs);
	close(pfd[0]);
	close(pfd[1]);
	rt_free(&t);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/sqb-rf-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	have_uffd = rt_uffd_usable();
	if (!mkdtemp(tmpdir))
		return -1;
	return rt_make(&lz4snap, tmpdir, "l", SQB_CODEC_LZ4, 0, S0, S1, 21) ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	rt_free(&lz4snap);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remove_makes_pages_zero),
	    cmocka_unit_test(test_remove_on_memfd_destination),
	    cmocka_unit_test(test_remove_races_filler),
	    cmocka_unit_test(test_corrupt_chunk_reported_not_served),
	    cmocka_unit_test(test_corrupt_chunk_found_by_filler),
	    cmocka_unit_test(test_fill_later_waits_for_the_caller),
	    cmocka_unit_test(test_killed_handler_gives_no_zero_pages),
	    cmocka_unit_test(test_stop_releases_a_blocked_access),
	    cmocka_unit_test(test_corrupt_chunk_eager_and_mmap_fail),
	    cmocka_unit_test(test_signal_mode_corrupt_page_is_fatal),
	    cmocka_unit_test(test_bad_snapshot_refused_before_mapping),
	    cmocka_unit_test(test_working_set_record_and_prefetch),
	    cmocka_unit_test(test_signal_mode_fetch_for_kernel_access),
	    cmocka_unit_test(test_exit_mode_fetch_and_corrupt_chunk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
