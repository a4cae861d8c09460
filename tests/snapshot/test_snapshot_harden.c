/* Memory sources that fail under a running loaded guest (docs/security.md
 * "Snapshot files", docs/snapshots.md "Failure behaviour"): a mapped memory
 * file truncated or rewritten, a file that cannot be leased, a corrupt chunk
 * met by a lazy restore or by a page server.  Each ends with a clear error or
 * an unaffected guest, never a wedge, a SIGBUS or changed guest memory. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "squib/snapfmt.h"
#include "snap_test_util.h"

#define MARK0_GPA (20ULL << 20) /* snapguest.c: marker set 0 */

static char body[2048];

/* Snapshots of a writer guest with marker set 0 written: one per test, since
 * each test damages its file. */
static int setup(void **state)
{
	static const char *const names[] = {"trunc", "rewrite", "held", "lazy",	 "lazyf",
					    "uffd",  "ida",	"idb",	"first", "firstf", "nowatch"};
	struct sqb_tc t;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=4", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2 OK\n", 30000);
	st_pause(&t);
	st_mark(&t, 'A');
	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		st_create(&t, "Full", names[i], NULL);
	tc_stop(&t);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A child that damages path: truncate (how=0) or open for writing and
 * overwrite the bytes after the first page (how=1). */
static pid_t damage(const char *path, int how)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		static char junk[1 << 16];
		int fd;

		if (how == 0)
			_exit(truncate(path, 0) ? 1 : 0);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			_exit(1);
		memset(junk, 0xa5, sizeof(junk));
		for (off_t off = 4096; off < (off_t)(64 << 20); off += (off_t)sizeof(junk))
			if (pwrite(fd, junk, sizeof(junk), off) != (ssize_t)sizeof(junk))
				break;
		_exit(close(fd) ? 1 : 0);
	}
	return pid;
}

static int wait_child(pid_t pid, int ms)
{
	long long end = now_ms() + ms;
	int st;

	assert_true(pid > 1);
	while (now_ms() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Sanitizer builds: squib's log holds no report (a failure path leaks
 * nothing, races nothing, and joins every thread it started). */
static void expect_no_report(struct sqb_tc *t)
{
	static const char *const reports[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					      "WARNING: ThreadSanitizer", "runtime error:"};
	char *e = tc_read_file(t->errlog);

	for (size_t i = 0; e && i < sizeof(reports) / sizeof(reports[0]); i++)
		if (strstr(e, reports[i]))
			fail_msg("sanitizer report: %.3000s", strstr(e, reports[i]));
	free(e);
}

/* The VM must stop by itself with an error status and say why (needle).
 * Returns squib's exit status. */
static int expect_vm_stopped(struct sqb_tc *t, const char *needle, int ms)
{
	int rc = tc_wait_exit(t, ms);
	char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);

	if (rc <= 0)
		fail_msg("squib did not stop with an error (rc %d); log: %.2000s", rc, e ? e : "");
	if (!e || !strstr(e, needle))
		fail_msg("squib's log does not say '%s': %.2000s", needle, e ? e : "");
	assert_null(strstr(s, "BAD"));
	free(s);
	free(e);
	expect_no_report(t);
	return rc;
}

/* Truncating the memory file of an mmap-loaded guest: the truncate waits
 * while squib stops the VM with a message naming the file (before: SIGBUS in
 * squib, or the guest faulting on a vanished page). */
static void test_mapped_file_truncated(void **state)
{
	struct sqb_tc t;
	const char *mem = st_path("trunc", ".mem");
	char memp[256];
	long long last;
	pid_t child;
	char *s;

	(void)state;
	snprintf(memp, sizeof(memp), "%s", mem);
	st_load(&t, "trunc", "mmap", NULL); /* the first load's default is lazy */
	st_expect_serial(&t, " OK\n", 30000); /* rounds go on */
	s = tc_read_file(t.serial);
	last = st_last_num(s, "ROUND ");
	free(s);
	snprintf(body, sizeof(body), "ROUND %lld OK\n", last + 1);
	st_expect_serial(&t, body, 30000);
	child = damage(memp, 0);
	expect_vm_stopped(&t, "being opened for writing or truncated", 20000);
	assert_int_equal(wait_child(child, 20000), 0); /* the truncate went ahead after */
	tc_stop(&t);
}

/* Rewriting the memory file in place (cp other.mem snap.mem): the same, and
 * the guest never ran on the new bytes. */
static void test_mapped_file_rewritten(void **state)
{
	struct sqb_tc t;
	char memp[256];
	pid_t child;

	(void)state;
	snprintf(memp, sizeof(memp), "%s", st_path("rewrite", ".mem"));
	st_load(&t, "rewrite", "mmap", NULL);
	st_expect_marks(&t, 1);
	child = damage(memp, 1);
	expect_vm_stopped(&t, "being opened for writing or truncated", 20000);
	assert_int_equal(wait_child(child, 20000), 0);
	tc_stop(&t);
}

/* Threads of pid named name (/proc/PID/task/TID/comm). */
static int threads_named(pid_t pid, const char *name)
{
	char dir[64], path[384], comm[32];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread ended */
		if (fgets(comm, sizeof(comm), f)) {
			comm[strcspn(comm, "\n")] = 0;
			n += !strcmp(comm, name);
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* squib's event loop serves the lease pipe (docs/restore.md "Mapped files
 * are leased"): an mmap-loaded VM has no lease watcher thread, and opening
 * its memory file for writing still stops it at once, naming the file. */
static void test_mapped_vm_has_no_lease_thread(void **state)
{
	struct sqb_tc t;
	char memp[256];
	pid_t child;

	(void)state;
	snprintf(memp, sizeof(memp), "%s", st_path("nowatch", ".mem"));
	st_load(&t, "nowatch", "mmap", NULL);
	st_expect_marks(&t, 1);
	assert_int_equal(threads_named(t.pid, "squib-evloop"), 1); /* names are readable */
	assert_int_equal(threads_named(t.pid, "sqb-lease"), 0);
	child = damage(memp, 1);
	expect_vm_stopped(&t, "being opened for writing or truncated", 20000);
	{
		char *e = tc_read_file(t.errlog);

		if (!e || !strstr(e, "nowatch.mem"))
			fail_msg("squib's log does not name the file: %.2000s", e ? e : "");
		free(e);
	}
	assert_int_equal(wait_child(child, 20000), 0);
	tc_stop(&t);
}

/* A file squib cannot lease (here: someone holds it open for writing) is
 * copied, not mapped: writes to it after the load never reach the guest. */
static void test_unleasable_file_is_copied(void **state)
{
	static char junk[1 << 16];
	struct sqb_tc t;
	struct stat sb;
	int fd;

	(void)state;
	fd = open(st_path("held", ".mem"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	st_load(&t, "held", "mmap", NULL);
	memset(junk, 0xa5, sizeof(junk));
	for (off_t off = 4096; off < sb.st_size; off += (off_t)sizeof(junk))
		assert_true(pwrite(fd, junk, sizeof(junk), off) > 0);
	st_expect_marks(&t, 1); /* the marker pages were never touched since the load */
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Running"));
	close(fd);
	{
		char *e = tc_read_file(t.errlog);

		if (!e || !strstr(e, "cannot lease"))
			fail_msg("squib did not say it copies the file: %.2000s", e ? e : "");
		free(e);
	}
	tc_stop(&t);
}

/* Flip the byte at guest address gpa in name's memory file (opened alone):
 * that chunk fails its checksum, the rest of the file is good. */
static void corrupt_gpa(const char *name, uint64_t gpa)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *s = NULL;
	const struct sqb_extent *e;
	struct sqb_region reg;
	unsigned int r;
	uint64_t page;
	size_t idx;
	uint8_t b;
	int fd;
	off_t at;

	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, st_path(name, ".mem"), &oo, NULL), 0);
	assert_int_equal(sqb_snap_locate(s, gpa, &r, &page), 0);
	assert_int_equal(sqb_snap_extent_find(s, r, page, &idx), 0);
	assert_int_equal(sqb_snap_region(s, r, &reg), 0);
	e = &sqb_snap_extents(s, r)[idx];
	assert_int_equal(e->kind, SQB_EXT_RAW);
	at = (off_t)(e->data + (page - e->first_page) * 4096 + gpa % 4096);
	sqb_snap_free(s);
	fd = open(st_path(name, ".mem"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void corrupt_marker_chunk(const char *name)
{
	corrupt_gpa(name, MARK0_GPA + 100);
}

/* A lazy load meets a corrupt chunk (the filler or a fault, whichever comes
 * first): the VM stops at once with the checksum error, squib exits with an
 * error status, the guest never sees the bad bytes (before: the vCPU
 * waited for ever and squib kept answering "Running"). */
static void test_lazy_corrupt_chunk_stops_vm(void **state)
{
	struct sqb_tc t;
	char reply[512];
	int st;

	(void)state;
	corrupt_marker_chunk("lazy");
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true,\"squib\":{\"restore\":\"lazy\"}}",
		 st_path("lazy", ".state"), st_path("lazy", ".mem"));
	st = tc_req(&t, "PUT", "/snapshot/load", body, reply, sizeof(reply));
	if (st == 400) {
		/* the filler met the chunk before the load answered: the load
		 * fails with the reason, and no guest instruction ran */
		char *s = tc_read_file(t.serial);

		if (!strstr(reply, "checksum mismatch"))
			fail_msg("load refused without the reason: %s", reply);
		assert_null(strstr(s, "MARK"));
		free(s);
		tc_stop(&t);
		return;
	}
	assert_int_equal(st, 204);
	st_input(&t, "v"); /* touch the marker pages */
	expect_vm_stopped(&t, "checksum mismatch", 15000);
	tc_stop(&t);
}

/* The wedge exactly: no filler (SQB_LAZY_NO_FILL), so the guest's
 * own access is what meets the corrupt chunk; the vCPU waits in the kernel
 * for a page that will never come, and the stop must release it (before: it
 * waited for ever, squib said "Running", and a pause never answered). */
static void test_lazy_corrupt_page_met_by_the_guest(void **state)
{
	struct sqb_tc t;

	(void)state;
	corrupt_marker_chunk("lazyf");
	setenv("SQB_LAZY_NO_FILL", "1", 1);
	st_load(&t, "lazyf", "lazy", NULL);
	unsetenv("SQB_LAZY_NO_FILL");
	st_expect_serial(&t, " OK\n", 30000); /* the writer runs on served pages */
	st_input(&t, "v");		      /* touch the marker pages */
	expect_vm_stopped(&t, "checksum mismatch", 15000);
	{
		char *s = tc_read_file(t.serial);

		assert_null(strstr(s, "MARKS OK"));
		free(s);
	}
	tc_stop(&t);
}

/* squib's default load of a file never verified before (issue 15, docs/
 * snapshots.md "First loads"): the guest runs at once and each chunk is
 * checked as it is installed, so a flipped byte in a chunk nothing touched
 * at load time is refused at the guest's first touch, and the guest never
 * sees it (before: the whole file was read first and the load got 400; a
 * load that still did that fails here, where SQB_LAZY_NO_FILL leaves the
 * chunk to the guest and the load must answer 204). */
static void test_first_load_verifies_on_first_touch(void **state)
{
	struct sqb_tc t;
	char *s;

	(void)state;
	setenv("SQB_VERIFY_CACHE", st_path("first-vcache", ""), 1); /* nothing remembered */
	corrupt_marker_chunk("first");
	setenv("SQB_LAZY_NO_FILL", "1", 1);
	st_load(&t, "first", NULL, NULL); /* no "squib" object: the default, 204 */
	unsetenv("SQB_LAZY_NO_FILL");
	st_expect_serial(&t, " OK\n", 30000); /* the writer runs on verified pages */
	st_input(&t, "v");		      /* touch the marker pages */
	expect_vm_stopped(&t, "checksum mismatch", 15000);
	s = tc_read_file(t.serial);
	assert_null(strstr(s, "MARKS OK"));
	free(s);
	tc_stop(&t);
	unsetenv("SQB_VERIFY_CACHE");
}

/* The same default first load with the filler on: the filler meets the
 * corrupt chunk, in the writer's pages (4 MiB on) ahead of where the guest
 * resumed, while the guest writes on and soon waits for a page of the
 * failed restore that will never be installed.  The VM must stop with the
 * checksum error and squib exit 2 promptly, the filler joined.  Before the
 * fix the vCPU was joined before the restore let go of guest memory, and the
 * stop's kick did not always release it (a vCPU spun in KVM_RUN with the
 * kick pending): squib ended by the termination watchdog, exit 1 after 5 s
 * (ThreadSanitizer: "thread leak", the filler never joined), or, when the
 * failure came while the load was being answered, the load never answered.
 * Which load hangs turns on where the guest is when the filler fails, so
 * each load corrupts another chunk of a fresh copy of the memory file (the
 * old code failed this test in each of 4 runs, hanging on 2 or 3 of the 9
 * loads where counted).  A load whose filler met the chunk
 * before it answered says why (400) and leaves squib running. */
static void test_first_load_filler_meets_corrupt_chunk(void **state)
{
	char reply[512], cmd[700];
	int answered = 0;

	(void)state;
	setenv("SQB_VERIFY_CACHE", st_path("firstf-vcache", ""), 1); /* nothing remembered */
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true}",
		 st_path("firstf", ".state"), st_path("firstf-copy", ".mem"));
	for (int k = 0; k < 9; k++) {
		struct sqb_tc t;
		int st;

		/* a new file (inode) each time, one chunk corrupt: 4 MiB + k * 256 KiB */
		unlink(st_path("firstf-copy", ".mem"));
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", st_path("firstf", ".mem"),
			 st_path("firstf-copy", ".mem"));
		assert_int_equal(system(cmd), 0);
		corrupt_gpa("firstf-copy", (4ULL << 20) + (uint64_t)k * (256 << 10) + 8 * 40);
		st_spawn(&t);
		st = tc_req(&t, "PUT", "/snapshot/load", body, reply, sizeof(reply));
		if (st == 400) {
			if (!strstr(reply, "checksum mismatch"))
				fail_msg("load refused without the reason: %s", reply);
			st_req(&t, "GET", "/", NULL, 200); /* squib still answers */
			kill(t.pid, SIGTERM);
			assert_int_equal(tc_wait_exit(&t, 15000), 0);
			expect_no_report(&t);
		} else {
			if (st != 204) { /* -1: no answer within 10 s */
				char *e = tc_read_file(t.errlog);

				fail_msg("load %d: got %d %s; log: %.2000s", k, st, reply,
					 e ? e : "");
			}
			answered++;
			/* 1: the termination watchdog ended a teardown that hung */
			assert_int_equal(expect_vm_stopped(&t, "checksum mismatch", 15000), 2);
		}
		tc_stop(&t);
	}
	assert_true(answered > 0); /* the exit after the stop was exercised */
	unsetenv("SQB_VERIFY_CACHE");
}

/* A Diff's first default load reads, of its parent, only the chunks the
 * Diff does not cover; remembering the chain must not vouch for the
 * parent's other chunks.  With a corrupt parent chunk under pages the Diff
 * rewrote, the Diff loads and runs, the parent (verified whole once the
 * load is complete) is not remembered, and a default load of the parent
 * alone still refuses the chunk (before the fix it was mapped unverified
 * and the guest's writer saw the byte: "WRITER BAD"). */
static void test_chain_first_load_remembers_no_unread_parent(void **state)
{
	/* snapguest's writer: pages at 4 MiB; page 256's pattern word */
	const uint64_t bad = (4ULL << 20) + 256 * 4096 + (1 + 256 % 509) * 8;
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	char reply[512];
	struct sqb_tc t;
	sqb_snap *d = NULL;
	int st, said = 0;

	(void)state;
	setenv("SQB_VERIFY_CACHE", st_path("chain-vcache", ""), 1);
	st_boot(&t, "snapguest.elf", "mode=1 mib=4", 1, 32, 1);
	st_expect_serial(&t, "ROUND 2 OK\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "cpf", NULL);
	st_resume(&t);
	st_wait_round(&t, st_cur_round(&t) + 2);
	st_pause(&t);
	st_create(&t, "Diff", "cpd", NULL);
	tc_stop(&t);
	/* the Diff holds the page itself: its load never reads the Full's chunk */
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&d, st_path("cpd", ".mem"), &oo, NULL), 0);
	{
		unsigned int r;
		uint64_t page;
		size_t idx;

		assert_int_equal(sqb_snap_locate(d, bad, &r, &page), 0);
		assert_int_equal(sqb_snap_extent_find(d, r, page, &idx), 0);
		assert_int_equal(sqb_snap_extents(d, r)[idx].kind, SQB_EXT_RAW);
	}
	sqb_snap_free(d);
	corrupt_gpa("cpf", bad);

	st_load(&t, "cpd", NULL, NULL); /* default: lazy, the chain */
	st_expect_serial(&t, " OK\n", 30000);
	/* the filler ends, the parent is checked: squib says it remembers
	 * nothing (or, wrongly, an entry appears) */
	for (int i = 0; i < 300 && !said; i++) {
		char *e = tc_read_file(t.errlog), cmd[400];
		FILE *f;

		said = e && strstr(e, "failed its verification: nothing is remembered");
		free(e);
		snprintf(cmd, sizeof(cmd), "ls '%s' 2>/dev/null | grep -vc lock",
			 st_path("chain-vcache", ""));
		f = popen(cmd, "r");
		if (f && fscanf(f, "%d", &st) == 1 && st > 0)
			said = 2;
		if (f)
			pclose(f);
		if (!said)
			usleep(50000);
	}
	tc_stop(&t);

	/* the parent alone by mmap: remembered, it would be mapped unread and
	 * the writer would meet the byte; not remembered, it is verified whole
	 * and refused with 400 before the guest runs */
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true,\"squib\":{\"restore\":\"mmap\"}}",
		 st_path("cpf", ".state"), st_path("cpf", ".mem"));
	st = tc_req(&t, "PUT", "/snapshot/load", body, reply, sizeof(reply));
	if (st != 400 || !strstr(reply, "checksum mismatch"))
		fail_msg("the parent alone was not refused: %d %s", st, reply);
	tc_stop(&t);
	assert_int_equal(said, 1);
	unsetenv("SQB_VERIFY_CACHE");
}

/* The same through a page server that serves faults only: it gives up on
 * the chunk and exits; the vCPU waiting for that page is released and the
 * VM stops (before: it waited until some API call kicked it). */
static void test_uffd_corrupt_chunk_stops_vm(void **state)
{
	struct sqb_tc t;
	char sock[200];
	pid_t pager;

	(void)state;
	corrupt_marker_chunk("uffd");
	pager = st_pager_start("uffd", "--no-fill", sock, sizeof(sock));
	st_load(&t, "uffd", NULL, sock);
	st_input(&t, "v");
	expect_vm_stopped(&t, "page server", 15000);
	st_pager_stop(pager);
	tc_stop(&t);
}

/* A page server started on another snapshot's memory (here: a second Full
 * of the same paused VM, so equal bytes but another identity).  squib names
 * the memory its state pairs with in the handshake; squib-pager refuses and
 * exits before serving a page, and the VM stops without running (before:
 * the guest ran on the other memory). */
static void test_uffd_pager_refuses_other_memory(void **state)
{
	struct sqb_tc t;
	char sock[200], *s;
	pid_t pager;

	(void)state;
	pager = st_pager_start("idb", "--no-fill", sock, sizeof(sock));
	st_load(&t, "ida", NULL, sock);
	expect_vm_stopped(&t, "page server", 15000);
	s = tc_read_file(t.serial);
	assert_null(strstr(s, "ROUND"));
	free(s);
	st_pager_stop(pager);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mapped_file_truncated),
	    cmocka_unit_test(test_mapped_file_rewritten),
	    cmocka_unit_test(test_mapped_vm_has_no_lease_thread),
	    cmocka_unit_test(test_unleasable_file_is_copied),
	    cmocka_unit_test(test_lazy_corrupt_chunk_stops_vm),
	    cmocka_unit_test(test_lazy_corrupt_page_met_by_the_guest),
	    cmocka_unit_test(test_first_load_verifies_on_first_touch),
	    cmocka_unit_test(test_first_load_filler_meets_corrupt_chunk),
	    cmocka_unit_test(test_chain_first_load_remembers_no_unread_parent),
	    cmocka_unit_test(test_uffd_corrupt_chunk_stops_vm),
	    cmocka_unit_test(test_uffd_pager_refuses_other_memory),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, setup, NULL);
	st_cleanup();
	return rc;
}
