/* squib-pager end to end, with this test as the VMM: it maps guest memory,
 * registers a userfaultfd, sends Firecracker's Uffd handshake, then reads
 * pages from threads and from the kernel.  Also: malformed handshakes are
 * refused with a clear message, and a killed pager never yields zero pages. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "pager_proto.h"
#include "rs_test_util.h"

#define S0 (2u << 20)
#define S1 ((1u << 20) + 8192)

static const char *pager_bin;
static char tmpdir[64];
static struct rt_snap full, chain;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

struct pager {
	pid_t pid;
	int err_fd; /* its stderr */
	int sock;
	char path[128];
	char early[2048]; /* stderr read by pager_serving() */
	size_t nearly;
};

/* Start squib-pager; returns once its socket exists (nobody connected). */
static void pager_spawn(struct pager *p, const char *snap, const char *extra)
{
	int e[2];
	struct stat sb;

	p->nearly = 0;
	p->early[0] = 0;

	snprintf(p->path, sizeof(p->path), "%s/pager.sock", tmpdir);
	unlink(p->path);
	assert_int_equal(pipe(e), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (!p->pid) {
		dup2(e[1], 2);
		close(e[0]);
		if (extra)
			execl(pager_bin, pager_bin, extra, p->path, snap, (char *)NULL);
		else
			execl(pager_bin, pager_bin, p->path, snap, (char *)NULL);
		_exit(127);
	}
	close(e[1]);
	p->err_fd = e[0];
	p->sock = -1;
	for (int i = 0; i < 500 && stat(p->path, &sb); i++)
		sleep_ms(10);
	if (stat(p->path, &sb))
		fail_msg("squib-pager did not listen on %s", p->path);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, path);
	for (int i = 0; s >= 0 && i < 500; i++) {
		if (!connect(s, (struct sockaddr *)&sa, sizeof(sa)))
			return s;
		sleep_ms(10);
	}
	if (s >= 0)
		close(s);
	return -1;
}

/* After the handshake: the pager says it serves, or the test fails with
 * what it said instead (no reader is left blocked on a pager that quit). */
static void pager_serving(struct pager *p)
{
	for (int i = 0; i < 500 && !strstr(p->early, "serving"); i++) {
		struct pollfd pf = {p->err_fd, POLLIN, 0};
		ssize_t n;

		if (poll(&pf, 1, 10) <= 0)
			continue;
		n = read(p->err_fd, p->early + p->nearly, sizeof(p->early) - 1 - p->nearly);
		if (n <= 0)
			break;
		p->nearly += (size_t)n;
		p->early[p->nearly] = 0;
	}
	if (!strstr(p->early, "serving"))
		fail_msg("squib-pager does not serve: %s", p->early);
}

static void pager_start(struct pager *p, const char *snap, const char *extra)
{
	pager_spawn(p, snap, extra);
	p->sock = connect_to(p->path);
	if (p->sock < 0)
		fail_msg("cannot connect to squib-pager on %s", p->path);
}

/* Hang up and send SIGTERM (the pager serves until the VMM process exits,
 * and this test process is the VMM), or let it exit by itself; its status,
 * its stderr in buf. */
static int pager_end(struct pager *p, char *buf, size_t cap, int hangup)
{
	int status;
	ssize_t n, got = 0;

	if (hangup) {
		close(p->sock);
		kill(p->pid, SIGTERM);
	}
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	if (!hangup)
		close(p->sock);
	got = (ssize_t)(p->nearly < cap - 1 ? p->nearly : cap - 1);
	memcpy(buf, p->early, (size_t)got);
	while (got < (ssize_t)cap - 1 &&
	       (n = read(p->err_fd, buf + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = 0;
	close(p->err_fd);
	return status;
}

struct vmm {
	uint8_t *mem[2];
	int uffd;
};

static void vmm_setup(struct vmm *v)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	uint64_t size[2] = {S0, S1};

	v->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	assert_true(v->uffd >= 0);
	assert_int_equal(ioctl(v->uffd, UFFDIO_API, &api), 0);
	for (int r = 0; r < 2; r++) {
		struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};

		v->mem[r] = mmap(NULL, size[r], PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		assert_true(v->mem[r] != MAP_FAILED);
		reg.range.start = (uintptr_t)v->mem[r];
		reg.range.len = size[r];
		assert_int_equal(ioctl(v->uffd, UFFDIO_REGISTER, &reg), 0);
	}
}

static void vmm_handshake(struct vmm *v, struct pager *p)
{
	struct sqb_pager_map m[2] = {
	    {(uintptr_t)v->mem[0], S0, 0, 4096},
	    {(uintptr_t)v->mem[1], S1, S0, 4096},
	};

	assert_int_equal(sqb_pager_send(p->sock, m, 2, v->uffd), 0);
}

static void vmm_free(struct vmm *v)
{
	munmap(v->mem[0], S0);
	munmap(v->mem[1], S1);
	close(v->uffd);
}

struct reader {
	struct vmm *v;
	struct rt_snap *t;
	uint64_t seed;
	atomic_int bad;
	int kernel;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint8_t buf[4096];
	int pfd[2];

	if (pipe(pfd))
		return NULL;
	for (int i = 0; i < 1500; i++) {
		uint64_t x = sqbt_rand(&rd->seed);
		int r = (int)(x & 1);
		uint64_t p = (x >> 1) % ((r ? S1 : S0) / 4096);
		const uint8_t *src = rd->v->mem[r] + p * 4096;

		if (rd->kernel) {
			if (write(pfd[1], src, 4096) != 4096 || read(pfd[0], buf, 4096) != 4096)
				atomic_fetch_add(&rd->bad, 1);
			src = buf;
		}
		if (memcmp(src, rd->t->ref[r] + p * 4096, 4096))
			atomic_fetch_add(&rd->bad, 1);
	}
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void serve_one(struct rt_snap *t)
{
	struct pager p;
	struct vmm v;
	struct reader rd[3];
	pthread_t th[3];
	char err[4096];
	int status;

	vmm_setup(&v);
	pager_start(&p, t->path[t->depth], NULL);
	vmm_handshake(&v, &p);
	pager_serving(&p);
	for (int i = 0; i < 3; i++) {
		rd[i] = (struct reader){&v, t, 100 + (uint64_t)i, 0, i == 2};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(atomic_load(&rd[i].bad), 0);
	}
	assert_memory_equal(v.mem[0], t->ref[0], S0);
	assert_memory_equal(v.mem[1], t->ref[1], S1);
	/* balloon-style REMOVE through the pager: the page then reads zero */
	assert_int_equal(madvise(v.mem[0] + 4096 * 9, 4096, MADV_DONTNEED), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(v.mem[0][4096 * 9 + i], 0);
	assert_memory_equal(v.mem[0] + 4096 * 10, t->ref[0] + 4096 * 10, 4096);
	status = pager_end(&p, err, sizeof(err), 1);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status))
		fail_msg("pager exited %d: %s", WEXITSTATUS(status), err);
	assert_non_null(strstr(err, "serving 2 mapping(s)"));
	vmm_free(&v);
}

static void test_pager_serves_full_snapshot(void **state)
{
	(void)state;
	serve_one(&full);
}

static void test_pager_serves_diff_chain(void **state)
{
	(void)state;
	serve_one(&chain);
}

/* One handshake message as raw bytes, with fd as SCM_RIGHTS unless fd < 0. */
static ssize_t send_raw(int sock, const char *json, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = {(void *)json, strlen(json)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		memset(c.b, 0, sizeof(c.b));
		mh.msg_control = c.b;
		mh.msg_controllen = sizeof(c.b);
		c.h.cmsg_level = SOL_SOCKET;
		c.h.cmsg_type = SCM_RIGHTS;
		c.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&c.h), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Send raw bytes (and maybe the fd); the pager must exit 2 saying why. */
static void malformed(const char *json, int with_fd, const char *want)
{
	struct pager p;
	struct vmm v;
	char err[4096];
	int status;

	vmm_setup(&v);
	pager_start(&p, full.path[0], NULL);
	assert_int_equal(send_raw(p.sock, json, with_fd ? v.uffd : -1), (ssize_t)strlen(json));
	status = pager_end(&p, err, sizeof(err), 1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	if (!strstr(err, want))
		fail_msg("expected \"%s\" in: %s", want, err);
	vmm_free(&v);
}

static void test_pager_refuses_malformed_handshakes(void **state)
{
	char buf[512];

	(void)state;
	malformed("this is not json", 1, "malformed handshake: not JSON");
	malformed("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		  0, "no userfaultfd passed");
	malformed("{\"base_host_virt_addr\":4096}", 1, "expected a JSON array");
	malformed("[{\"base_host_virt_addr\":4096,\"offset\":0,\"page_size\":4096}]", 1,
		  "missing \"size\"");
	malformed("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":8192}]",
		  1, "page size 8192 bytes not supported");
	malformed("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,"
		  "\"page_size\":4096,\"page_size_kib\":8}]",
		  1, "disagree");
	malformed("[{\"base_host_virt_addr\":-4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		  1, "not a non-negative integer");
	snprintf(buf, sizeof(buf),
		 "[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":%u,\"page_size\":4096}]",
		 S0 - 4096);
	malformed(buf, 1, "crosses the end of region 0");
	malformed(
	    "[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0,\"page_size\":4096},"
	    "{\"base_host_virt_addr\":8192,\"size\":4096,\"offset\":65536,\"page_size\":4096}]",
	    1, "mappings overlap");
	malformed("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":1099511627776,"
		  "\"page_size\":4096}]",
		  1, "beyond the snapshot");
}

struct kread {
	const uint8_t *addr;
	uint8_t out[4096];
	atomic_int done;
	int result;
};

static void *kread_main(void *arg)
{
	struct kread *k = arg;
	int pfd[2];

	if (pipe(pfd))
		return NULL;
	k->result = (int)write(pfd[1], k->addr, 4096);
	if (k->result == 4096 && read(pfd[0], k->out, 4096) != 4096)
		k->result = -2;
	atomic_store(&k->done, 1);
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

/* The pager dies mid-restore: faults on pages it never served stay blocked
 * (the VMM holds the uffd, sees the hang-up and can act), never zero. */
static void test_killed_pager_gives_no_zero_pages(void **state)
{
	struct pager p;
	struct vmm v;
	struct kread k = {0};
	pthread_t th;
	struct pollfd pf;
	int status;
	const uint64_t page = 200; /* region 0, with data */
	struct uffdio_copy cp;

	(void)state;
	vmm_setup(&v);
	pager_start(&p, full.path[0], "--no-fill");
	vmm_handshake(&v, &p);
	pager_serving(&p);
	assert_memory_equal(v.mem[0], full.ref[0], 4096); /* served */
	kill(p.pid, SIGKILL);
	assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
	assert_true(WIFSIGNALED(status));
	/* the VMM learns about it from the socket */
	pf = (struct pollfd){p.sock, POLLIN | POLLRDHUP, 0};
	assert_int_equal(poll(&pf, 1, 2000), 1);
	assert_true(pf.revents & (POLLHUP | POLLRDHUP));
	/* a kernel access to an unserved page blocks instead of reading zeros */
	assert_false(memcmp(full.ref[0] + page * 4096, (uint8_t[4096]){0}, 4096) == 0);
	k.addr = v.mem[0] + page * 4096;
	assert_int_equal(pthread_create(&th, NULL, kread_main, &k), 0);
	sleep_ms(300);
	assert_int_equal(atomic_load(&k.done), 0);
	/* the VMM (or a new pager) serves it: the reader gets the right bytes */
	cp = (struct uffdio_copy){
	    .dst = (uintptr_t)k.addr, .src = (uintptr_t)(full.ref[0] + page * 4096), .len = 4096};
	assert_int_equal(ioctl(v.uffd, UFFDIO_COPY, &cp), 0);
	pthread_join(th, NULL);
	assert_int_equal(k.result, 4096);
	assert_memory_equal(k.out, full.ref[0] + page * 4096, 4096);
	close(p.sock);
	close(p.err_fd);
	vmm_free(&v);
}

/* A corrupt chunk: the pager reports it, hangs up on the VMM and exits 1;
 * the access that met it stays blocked rather than reading zeros. */
static void test_corrupt_chunk_pager_hangs_up(void **state)
{
	struct rt_snap bad;
	struct pager p;
	struct vmm v;
	struct kread k = {0};
	pthread_t th;
	uint64_t off = 0, gpa = 0;
	char err[4096];
	int status;
	struct uffdio_zeropage z;

	(void)state;
	assert_int_equal(rt_make(&bad, tmpdir, "bad", SQB_CODEC_ZSTD, 0, S0, S1, 33), 0);
	assert_int_equal(rt_find_stored(bad.s, SQB_EXT_COMPRESSED, &off, &gpa), 0);
	assert_int_equal(rt_flip_byte(bad.path[0], off + 9), 0);
	vmm_setup(&v);
	pager_start(&p, bad.path[0], "--no-fill");
	vmm_handshake(&v, &p);
	pager_serving(&p);
	k.addr = v.mem[0] + gpa;
	assert_int_equal(pthread_create(&th, NULL, kread_main, &k), 0);
	status = pager_end(&p, err, sizeof(err), 0); /* it exits by itself */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	if (!strstr(err, "restore failed") || !strstr(err, "checksum"))
		fail_msg("expected a checksum report, got: %s", err);
	sleep_ms(100);
	assert_int_equal(atomic_load(&k.done), 0); /* still blocked, no zeros */
	/* release the test thread: what a VMM shutting down would do */
	z = (struct uffdio_zeropage){.range = {(uintptr_t)k.addr, 4096}};
	assert_int_equal(ioctl(v.uffd, UFFDIO_ZEROPAGE, &z), 0);
	pthread_join(th, NULL);
	vmm_free(&v);
	rt_free(&bad);
}

/* ---- Firecracker's VMM side of the handshake, emulated ----
 * The bodies are what Firecracker's persist.rs serializes in each release
 * line (serde keeps GuestRegionUffdMapping's field order); "page_size_kib"
 * carries bytes in all of them.  Firecracker 1.4-1.11 drops the socket right
 * after sending; 1.12+ keeps it open. */
enum fc_shape { FC_1_12, FC_1_7, FC_1_4 };

static void fc_json(char *buf, size_t cap, enum fc_shape shape, const struct sqb_pager_map *m,
		    unsigned int n)
{
	size_t len = (size_t)snprintf(buf, cap, "[");

	for (unsigned int i = 0; i < n; i++) {
		len += (size_t)snprintf(
		    buf + len, cap - len,
		    "%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu", i ? "," : "",
		    (unsigned long long)m[i].base_host_virt_addr, (unsigned long long)m[i].size,
		    (unsigned long long)m[i].offset);
		if (shape == FC_1_12)
			len += (size_t)snprintf(buf + len, cap - len,
						",\"page_size\":4096,\"page_size_kib\":4096");
		else if (shape == FC_1_7)
			len += (size_t)snprintf(buf + len, cap - len, ",\"page_size_kib\":4096");
		len += (size_t)snprintf(buf + len, cap - len, "}");
	}
	snprintf(buf + len, cap - len, "]");
}

/* Three mappings: region 0 in two halves (the second at a non-zero offset
 * inside the region) and region 1 after region 0 in the memory file. */
static unsigned int fc_maps(struct vmm *v, struct sqb_pager_map *m)
{
	m[0] = (struct sqb_pager_map){(uintptr_t)v->mem[0], S0 / 2, 0, 4096};
	m[1] = (struct sqb_pager_map){(uintptr_t)v->mem[0] + S0 / 2, S0 / 2, S0 / 2, 4096};
	m[2] = (struct sqb_pager_map){(uintptr_t)v->mem[1], S1, S0, 4096};
	return 3;
}

/* Each shape, several regions, one at a non-zero offset: every page is
 * served on demand (--no-fill), by faults from threads and from the kernel.
 * Before the fix squib-pager refused all three shapes. */
static void test_pager_accepts_every_firecracker_shape(void **state)
{
	static const char *const names[] = {"1.12+", "1.7-1.11", "1.4-1.6"};

	(void)state;
	for (int shape = FC_1_12; shape <= FC_1_4; shape++) {
		struct sqb_pager_map m[3];
		struct pager p;
		struct vmm v;
		struct reader rd[2];
		pthread_t th[2];
		char json[1024], err[4096];
		int status;

		vmm_setup(&v);
		pager_start(&p, full.path[0], "--no-fill");
		fc_json(json, sizeof(json), (enum fc_shape)shape, m, fc_maps(&v, m));
		assert_int_equal(send_raw(p.sock, json, v.uffd), (ssize_t)strlen(json));
		pager_serving(&p);
		if (shape != FC_1_12)
			close(p.sock), p.sock = -1; /* Firecracker < 1.12 drops it */
		for (int i = 0; i < 2; i++) {
			rd[i] = (struct reader){&v, &full, 7 + (uint64_t)i, 0, i};
			assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < 2; i++)
			if (atomic_load(&rd[i].bad))
				fail_msg("shape %s: %d wrong pages", names[shape],
					 atomic_load(&rd[i].bad));
		assert_memory_equal(v.mem[0], full.ref[0], S0);
		assert_memory_equal(v.mem[1], full.ref[1], S1);
		if (p.sock < 0)
			p.sock = socket(AF_UNIX, SOCK_STREAM, 0); /* pager_end closes one */
		status = pager_end(&p, err, sizeof(err), 1);
		if (!WIFEXITED(status) || WEXITSTATUS(status) ||
		    !strstr(err, "serving 3 mapping(s)"))
			fail_msg("shape %s: pager status 0x%x: %s", names[shape], status, err);
		vmm_free(&v);
	}
}

/* A fault must be answered within ms; 0 if it was, with the bytes in out. */
static int kread_within(const uint8_t *addr, uint8_t *out, int ms)
{
	struct kread k = {.addr = addr};
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, kread_main, &k), 0);
	for (int i = 0; i < ms / 10 && !atomic_load(&k.done); i++)
		sleep_ms(10);
	if (!atomic_load(&k.done)) {
		pthread_detach(th); /* still blocked: the test fails, the thread leaks */
		return -1;
	}
	pthread_join(th, NULL);
	memcpy(out, k.out, 4096);
	return k.result == 4096 ? 0 : -1;
}

/* MADV_DONTNEED (what Firecracker's balloon does) sends UFFD_EVENT_REMOVE;
 * the next touch of the range must be answered, with zeros as Firecracker's
 * handling-page-faults-on-snapshot-resume.md prescribes ("zero out the
 * faulted page instead of bringing it from file"): pages served before, and
 * pages never served (--no-fill); pages outside the range keep the
 * snapshot's bytes. */
static void test_pager_remove_then_touch(void **state)
{
	struct sqb_pager_map m[3];
	struct pager p;
	struct vmm v;
	char json[1024], err[4096];
	uint8_t buf[4096], zero[4096] = {0};
	uint64_t a = 40;	/* a, a+1: served first, with data; b: never served */
	const uint64_t b = 200; /* region 1 has 258 pages */
	int status;

	(void)state;
	while (!memcmp(full.ref[0] + a * 4096, zero, 4096) ||
	       !memcmp(full.ref[0] + (a + 1) * 4096, zero, 4096))
		a++;
	vmm_setup(&v);
	pager_start(&p, full.path[0], "--no-fill");
	fc_json(json, sizeof(json), FC_1_12, m, fc_maps(&v, m));
	assert_int_equal(send_raw(p.sock, json, v.uffd), (ssize_t)strlen(json));
	pager_serving(&p);
	for (uint64_t pg = a; pg < a + 4; pg++)
		assert_memory_equal(v.mem[0] + pg * 4096, full.ref[0] + pg * 4096, 4096);
	assert_int_equal(madvise(v.mem[0] + a * 4096, 2 * 4096, MADV_DONTNEED), 0);
	assert_int_equal(madvise(v.mem[1] + b * 4096, 3 * 4096, MADV_DONTNEED), 0);
	if (kread_within(v.mem[0] + a * 4096, buf, 3000))
		fail_msg("a touch after REMOVE of a served page was never answered");
	assert_memory_equal(buf, zero, 4096);
	if (kread_within(v.mem[1] + (b + 2) * 4096, buf, 3000))
		fail_msg("a touch after REMOVE of an unserved page was never answered");
	assert_memory_equal(buf, zero, 4096);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(v.mem[0][(a + 1) * 4096 + (uint64_t)i], 0);
	assert_memory_equal(v.mem[0] + (a + 2) * 4096, full.ref[0] + (a + 2) * 4096, 2 * 4096);
	assert_memory_equal(v.mem[1] + (b + 3) * 4096, full.ref[1] + (b + 3) * 4096, 4096);
	/* written after the REMOVE: stays what was written */
	v.mem[1][b * 4096] = 0x5a;
	assert_int_equal(v.mem[1][b * 4096], 0x5a);
	status = pager_end(&p, err, sizeof(err), 1);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("pager status 0x%x: %s", status, err);
	vmm_free(&v);
}

/* The VMM of this test is a child process that connects itself, sends
 * Firecracker 1.7's handshake, closes the socket at once (as Firecracker
 * before 1.12 does) and only then reads every page.  The pager must keep
 * serving after the close, and exit by itself (status 0) once the VMM
 * process is gone.  Before the fix it stopped at the close and the child's
 * reads hung. */
static int child_vmm(const char *sock_path)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	struct sqb_pager_map m[3];
	struct vmm v;
	char json[1024];
	int s;

	alarm(20);
	v.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (v.uffd < 0 || ioctl(v.uffd, UFFDIO_API, &api))
		return 10;
	for (int r = 0; r < 2; r++) {
		struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};
		uint64_t size = r ? S1 : S0;

		v.mem[r] = mmap(NULL, size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		reg.range.start = (uintptr_t)v.mem[r];
		reg.range.len = size;
		if (v.mem[r] == MAP_FAILED || ioctl(v.uffd, UFFDIO_REGISTER, &reg))
			return 11;
	}
	s = connect_to(sock_path);
	fc_json(json, sizeof(json), FC_1_7, m, fc_maps(&v, m));
	if (s < 0 || send_raw(s, json, v.uffd) != (ssize_t)strlen(json))
		return 12;
	close(s);
	sleep_ms(200); /* the pager has seen the hang-up by now */
	if (memcmp(v.mem[0], full.ref[0], S0) || memcmp(v.mem[1], full.ref[1], S1))
		return 13;
	return 0;
}

static void test_pager_outlives_socket_until_vmm_exits(void **state)
{
	struct pager p;
	char err[4096];
	int status = 0;
	pid_t vmm, got = 0;

	(void)state;
	pager_spawn(&p, full.path[0], "--no-fill");
	vmm = fork();
	assert_true(vmm >= 0);
	if (!vmm)
		_exit(child_vmm(p.path));
	assert_int_equal(waitpid(vmm, &status, 0), vmm);
	if (WIFSIGNALED(status))
		fail_msg("the VMM's reads were never served after it closed the socket (killed "
			 "by signal %d)",
			 WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < 500 && !(got = waitpid(p.pid, &status, WNOHANG)); i++)
		sleep_ms(10);
	if (!got) {
		kill(p.pid, SIGKILL);
		fail_msg("squib-pager did not exit within 5 s of the VMM's exit");
	}
	{
		ssize_t n, len = 0;

		while (len < (ssize_t)sizeof(err) - 1 &&
		       (n = read(p.err_fd, err + len, sizeof(err) - 1 - (size_t)len)) > 0)
			len += n;
		err[len] = 0;
		close(p.err_fd);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("squib-pager status 0x%x: %s", status, err);
	assert_non_null(strstr(err, "serving 3 mapping(s)"));
}

/* Parse one mapping; 0 or -EINVAL with why. */
static int parse1(const char *json, uint64_t *page_size, char *why, size_t wl)
{
	struct sqb_pager_map *m = NULL;
	unsigned int n = 0;
	int rc = sqb_pager_parse(json, strlen(json), &m, &n, why, wl);

	if (!rc)
		*page_size = m[0].page_size;
	free(m);
	return rc;
}

/* The page-size fields, as Firecracker's persist.rs fills them per release:
 * GuestRegionUffdMapping has no page field up to 1.6, "page_size_kib" set to
 * HugePageConfig::page_size_kib() (4096 or 2097152: bytes, despite the name)
 * in 1.7-1.11, and "page_size" plus the deprecated "page_size_kib", both
 * page_size() in bytes, from 1.12 on. */
static void test_handshake_parser(void **state)
{
	static const struct {
		const char *fields; /* after "offset": 0 */
		uint64_t want;	    /* 0: refused */
		const char *why;
	} rows[] = {
	    {",\"page_size\":4096,\"page_size_kib\":4096", 4096, NULL}, /* 1.12+ */
	    {",\"page_size_kib\":4096", 4096, NULL},			/* 1.7-1.11 */
	    {"", 4096, NULL},						/* 1.4-1.6 */
	    {",\"page_size\":4096", 4096, NULL},			/* page_size alone */
	    {",\"page_size\":4096,\"page_size_kib\":4", 4096, NULL},	/* older squib VMM */
	    {",\"page_size\":2097152,\"page_size_kib\":2097152", 0, "huge pages"},
	    {",\"page_size_kib\":2097152", 0, "huge pages"},
	    {",\"page_size\":2097152", 0, "huge pages"},
	    {",\"page_size\":4096,\"page_size_kib\":8", 0, "disagree"},
	    {",\"page_size_kib\":4", 0, "page size 4 bytes not supported"},
	    {",\"page_size\":16384", 0, "page size 16384 bytes not supported"},
	    {",\"page_size\":\"4096\"", 0, "not a non-negative integer"},
	};
	struct sqb_pager_map *m;
	unsigned int n;
	char why[256], json[256];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t ps = 0;
		int rc;

		snprintf(
		    json, sizeof(json),
		    "[{\"base_host_virt_addr\":140000000000000,\"size\":65536,\"offset\":4096%s}]",
		    rows[i].fields);
		why[0] = 0;
		rc = parse1(json, &ps, why, sizeof(why));
		if (rows[i].want && (rc || ps != rows[i].want))
			fail_msg("row %zu %s: rc %d page size %llu (%s)", i, json, rc,
				 (unsigned long long)ps, why);
		if (!rows[i].want && (!rc || !strstr(why, rows[i].why)))
			fail_msg("row %zu %s: rc %d, reason \"%s\", want \"%s\"", i, json, rc, why,
				 rows[i].why);
	}
	assert_int_equal(sqb_pager_parse("[]", 2, &m, &n, why, sizeof(why)), -EINVAL);
	assert_int_equal(sqb_pager_parse("[1]", 3, &m, &n, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not an object"));
	assert_int_equal(sqb_pager_parse("[{\"a\":1}\0]", 10, &m, &n, why, sizeof(why)), -EINVAL);
	assert_int_equal(
	    sqb_pager_parse("[{\"base_host_virt_addr\":1,\"size\":4096,\"offset\":0,"
			    "\"page_size\":4096}]",
			    strlen("[{\"base_host_virt_addr\":1,\"size\":4096,\"offset\":"
				   "0,\"page_size\":4096}]"),
			    &m, &n, why, sizeof(why)),
	    -EINVAL);
	assert_non_null(strstr(why, "not page-aligned"));
}

/* squib's identity extension of the handshake (docs/restore.md): both
 * fields or neither, well-formed, and a mapping naming another memory file
 * is refused by sqb_pager_check_ident with both identities in the reason. */
static void test_handshake_identity_extension(void **state)
{
	const struct sqb_snap_info *si = sqb_snap_get_info(full.s);
	struct sqb_pager_map *m = NULL;
	unsigned int n = 0;
	char u[37], d[33], json[512], why[256];

	(void)state;
	sqb_uuid_format(&si->uuid, u);
	sqb_digest_format(&si->digest, d);
#define MAP0 "{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096"
	/* none: nothing to check (Firecracker's own VMM) */
	snprintf(json, sizeof(json), "[" MAP0 "}]");
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), 0);
	assert_false(m[0].has_ident);
	assert_int_equal(sqb_pager_check_ident(full.s, m, n, why, sizeof(why)), 0);
	free(m);
	/* the served memory: accepted */
	snprintf(json, sizeof(json),
		 "[" MAP0 ",\"squib_memory_uuid\":\"%s\",\"squib_memory_digest\":\"%s\"}]", u, d);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), 0);
	assert_true(m[0].has_ident);
	assert_int_equal(sqb_pager_check_ident(full.s, m, n, why, sizeof(why)), 0);
	free(m);
	/* another memory file (one digit of the digest differs): refused */
	d[0] = d[0] == '0' ? '1' : '0';
	snprintf(json, sizeof(json),
		 "[" MAP0 ",\"squib_memory_uuid\":\"%s\",\"squib_memory_digest\":\"%s\"}]", u, d);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), 0);
	assert_int_equal(sqb_pager_check_ident(full.s, m, n, why, sizeof(why)), -SQB_EMISMATCH);
	assert_non_null(strstr(why, d));
	free(m);
	/* malformed: one field alone, wrong length, upper case, not a string */
	snprintf(json, sizeof(json), "[" MAP0 ",\"squib_memory_uuid\":\"%s\"}]", u);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "come together"));
	snprintf(json, sizeof(json),
		 "[" MAP0 ",\"squib_memory_uuid\":\"%s\",\"squib_memory_digest\":\"%.31s\"}]", u,
		 d);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "squib_memory_digest"));
	snprintf(json, sizeof(json),
		 "[" MAP0 ",\"squib_memory_uuid\":\"%s\",\"squib_memory_digest\":\"ABCDEF%.26s\"}]",
		 u, d);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), -EINVAL);
	snprintf(json, sizeof(json),
		 "[" MAP0 ",\"squib_memory_uuid\":7,\"squib_memory_digest\":\"%s\"}]", d);
	assert_int_equal(sqb_pager_parse(json, strlen(json), &m, &n, why, sizeof(why)), -EINVAL);
#undef MAP0
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/sqb-rp-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	if (!mkdtemp(tmpdir))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if (rt_make(&full, tmpdir, "f", SQB_CODEC_ZSTD, 0, S0, S1, 31) ||
	    rt_make(&chain, tmpdir, "c", SQB_CODEC_LZ4, 3, S0, S1, 32))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	rt_free(&full);
	rt_free(&chain);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_parser),
	    cmocka_unit_test(test_handshake_identity_extension),
	    cmocka_unit_test(test_pager_serves_full_snapshot),
	    cmocka_unit_test(test_pager_serves_diff_chain),
	    cmocka_unit_test(test_pager_refuses_malformed_handshakes),
	    cmocka_unit_test(test_killed_pager_gives_no_zero_pages),
	    cmocka_unit_test(test_corrupt_chunk_pager_hangs_up),
	    cmocka_unit_test(test_pager_accepts_every_firecracker_shape),
	    cmocka_unit_test(test_pager_remove_then_touch),
	    cmocka_unit_test(test_pager_outlives_socket_until_vmm_exits),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test_pager PATH-TO-squib-pager\n");
		return 2;
	}
	pager_bin = argv[1];
	if (!rt_uffd_usable()) {
		fprintf(stderr, "skipped: userfaultfd with EVENT_REMOVE unavailable\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
