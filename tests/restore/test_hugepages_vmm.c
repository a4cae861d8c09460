/* huge_pages "2M" end to end (Firecracker's test_huge_pages.py as squib's
 * contract): a self-checking guest boots in hugetlb memory (smaps shows
 * /anon_hugepage with KernelPageSize 2048 kB, what Firecracker's
 * check_hugetlbfs_in_use greps); Full and Diff snapshots of it load through
 * the File backend (eager into 2M memory, or into 4 KiB memory with
 * huge_pages None); each row of test_snapshot_huge_pages_override (None->2M
 * via Uffd with a Firecracker-style handler copying 2 MiB pages, 2M->None
 * via File, None->Transparent via Uffd) with GET /machine-config showing the
 * resolved value and the guest checking its own memory; too small a pool
 * fails InstanceStart with a 400 that names the pool, and squib lives on.
 *
 * Needs /dev/kvm and root (it fills /proc/sys/vm/nr_hugepages and puts the
 * old value back): skips with 77 and the reason otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap_test_util.h"

#define POOL_PAGES 48 /* 96 MiB: one 32 MiB guest at a time, with room */
#define GUEST_MIB  32

static const char *handler_bin, *snap_tool;
static long old_nr = -1;
static char body[1024];

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok = f && fprintf(f, "%ld\n", v) > 0;

	if (f && fclose(f))
		ok = 0;
	return ok ? 0 : -1;
}

#define NR_PATH	  "/proc/sys/vm/nr_hugepages"
#define FREE_PATH "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

static void pool_restore(void)
{
	if (old_nr >= 0 && write_long(NR_PATH, old_nr))
		fprintf(stderr, "could not put %s back to %ld\n", NR_PATH, old_nr);
	old_nr = -1;
}

/* 77 with the reason when the pool cannot be had. */
static void pool_fill(void)
{
	long free_now;

	if (geteuid() != 0) {
		fprintf(stderr, "skip: reserving 2 MiB huge pages (%s) needs root\n", NR_PATH);
		exit(77);
	}
	old_nr = read_long(NR_PATH);
	free_now = read_long(FREE_PATH);
	if (old_nr < 0 || free_now < 0) {
		fprintf(stderr, "skip: this host has no 2 MiB hugetlbfs pool (%s)\n", FREE_PATH);
		exit(77);
	}
	atexit(pool_restore);
	if (free_now < POOL_PAGES && write_long(NR_PATH, old_nr + POOL_PAGES - free_now))
		fprintf(stderr, "writing %s failed: %s\n", NR_PATH, strerror(errno));
	if ((free_now = read_long(FREE_PATH)) < POOL_PAGES) {
		fprintf(stderr, "skip: only %ld free 2 MiB huge pages after asking for %d (memory "
				"too fragmented?)\n", free_now, POOL_PAGES);
		pool_restore();
		exit(77);
	}
}

/* Firecracker's check_hugetlbfs_in_use: the smaps entry named
 * "/anon_hugepage" has a KernelPageSize above 4 kB. */
static int hugetlb_in_use(pid_t pid)
{
	char path[64], line[256];
	int after = -1, found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		long kib;

		if (strstr(line, "/anon_hugepage"))
			after = 0;
		else if (after >= 0 && ++after <= 23 &&
			 sscanf(line, "KernelPageSize: %ld kB", &kib) == 1)
			found = kib > 4;
	}
	fclose(f);
	return found;
}

static void boot(struct sqb_tc *t, const char *huge, int dirty)
{
	st_spawn(t);
	snprintf(body, sizeof(body),
		 "{\"vcpu_count\":1,\"mem_size_mib\":%d,\"huge_pages\":\"%s\","
		 "\"track_dirty_pages\":%s}",
		 GUEST_MIB, huge, dirty ? "true" : "false");
	st_req(t, "PUT", "/machine-config", body, 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/snapguest.elf\",\"boot_args\":\"mode=1 mib=4\"}",
		 st_guests);
	st_req(t, "PUT", "/boot-source", body, 204);
	st_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	st_expect_serial(t, "ROUND 2 OK\n", 30000);
}

static void expect_huge(struct sqb_tc *t, const char *want)
{
	char needle[64];
	const char *mc = st_req(t, "GET", "/machine-config", NULL, 200);

	snprintf(needle, sizeof(needle), "\"huge_pages\":\"%s\"", want);
	if (!strstr(mc, needle))
		fail_msg("GET /machine-config: %s, want %s", mc, needle);
	if (!strcmp(want, "2M") && !hugetlb_in_use(t->pid))
		fail_msg("huge_pages 2M but no /anon_hugepage mapping with 2048 kB pages in "
			 "/proc/%d/smaps", (int)t->pid);
	if (strcmp(want, "2M") && hugetlb_in_use(t->pid))
		fail_msg("huge_pages %s but guest memory is in hugetlb pages", want);
}

static void extract_raw(const char *name)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		execl(snap_tool, snap_tool, "extract", "--memory", st_path(name, ".raw"),
		      st_path(name, ".mem"), (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("squib-snap extract --memory %s failed", name);
}

/* The Firecracker-style handler serving name's raw memory; its pid. */
static pid_t handler_start(const char *name, char *sock, size_t socklen, char *log,
			   size_t loglen)
{
	struct stat sb;
	pid_t pid;

	snprintf(sock, socklen, "%s/%s.fc.sock", st_dir, name);
	snprintf(log, loglen, "%s/%s.fc.log", st_dir, name);
	unlink(sock);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(handler_bin, handler_bin, "serve", sock, st_path(name, ".raw"), (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &sb); i++)
		usleep(10000);
	if (stat(sock, &sb))
		fail_msg("the handler never listened on %s", sock);
	return pid;
}

static void handler_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Boot in 2M, smaps as Firecracker checks it; a Full and a Diff (dirty
 * tracking works at 4 KiB on hugetlb memory); each loads through File:
 * Snapshot (2M, eager) and None (2M->None, the override's second row);
 * a mapped load into 2M memory and a background create are refused with
 * the reason. */
static void test_2m_boot_full_diff_file_loads(void **state)
{
	struct sqb_tc t;
	char *l;

	(void)state;
	boot(&t, "2M", 1);
	expect_huge(&t, "2M");
	st_pause(&t);
	st_mark(&t, 'A');
	st_create(&t, "Full", "h2m", NULL);
	st_mark(&t, 'B');
	st_create(&t, "Diff", "h2d", NULL);
	/* uffd-wp on hugetlb works in 2 MiB pages only: refused, with why */
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s\",\"mem_file_path\":"
		 "\"%s\",\"squib\":" ST_BG "}",
		 st_path("h2bg", ".state"), st_path("h2bg", ".mem"));
	l = strdup(st_req(&t, "PUT", "/snapshot/create", body, 400));
	if (!strstr(l, "huge_pages 2M guest memory cannot be write-protected"))
		fail_msg("background create of 2M memory: %s", l);
	free(l);
	tc_stop(&t);

	st_load(&t, "h2m", NULL, NULL); /* huge_pages absent: the snapshot's 2M */
	expect_huge(&t, "2M");
	st_expect_marks(&t, 1);
	tc_stop(&t);

	st_load_ex(&t, "h2d", NULL, NULL, "\"huge_pages\":\"None\"");
	expect_huge(&t, "None");
	st_expect_marks(&t, 2);
	tc_stop(&t);

	st_load_ex(&t, "h2d", NULL, NULL, "\"huge_pages\":\"2M\"");
	expect_huge(&t, "2M");
	st_expect_marks(&t, 2);
	tc_stop(&t);

	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"squib\":{\"restore\":\"mmap\"}}",
		 st_path("h2m", ".state"), st_path("h2m", ".mem"));
	l = strdup(st_req(&t, "PUT", "/snapshot/load", body, 400));
	if (!strstr(l, "huge_pages 2M guest memory is loaded eagerly"))
		fail_msg("mmap load into 2M memory: %s", l);
	free(l);
	/* the refused load left squib usable: the eager one goes */
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true}",
		 st_path("h2m", ".state"), st_path("h2m", ".mem"));
	st_req(&t, "PUT", "/snapshot/load", body, 204);
	st_expect_marks(&t, 1);
	tc_stop(&t);
}

/* Rows 1 and 3 of test_snapshot_huge_pages_override: a None snapshot
 * loaded via Uffd as 2M (the handshake says 2 MiB pages; the handler
 * copies them whole) and as Transparent. */
static void test_none_snapshot_uffd_as_2m_and_thp(void **state)
{
	static const char *const to[] = {"2M", "Transparent"};
	char sock[256], log[256], extra[64], *l;
	struct sqb_tc t;

	(void)state;
	boot(&t, "None", 0);
	st_pause(&t);
	st_mark(&t, 'A');
	st_create(&t, "Full", "n", NULL);
	tc_stop(&t);
	extract_raw("n");
	for (unsigned int i = 0; i < 2; i++) {
		pid_t h = handler_start("n", sock, sizeof(sock), log, sizeof(log));

		snprintf(extra, sizeof(extra), "\"huge_pages\":\"%s\"", to[i]);
		st_load_ex(&t, "n", NULL, sock, extra);
		st_expect_marks(&t, 1);
		expect_huge(&t, to[i]);
		l = tc_read_file(log);
		if (!l || !strstr(l, i ? "page size 4096" : "page size 2097152"))
			fail_msg("handler log (%s): %s", to[i], l ? l : "");
		free(l);
		tc_stop(&t);
		handler_stop(h);
	}
}

/* A pool smaller than the guest: InstanceStart answers 400 naming the pool
 * (the pages are reserved when the memory is made, never a SIGBUS later),
 * and squib keeps answering. */
static void test_small_pool_fails_instance_start(void **state)
{
	struct sqb_tc t;
	char *l;

	(void)state;
	st_spawn(&t);
	st_req(&t, "PUT", "/machine-config",
	       "{\"vcpu_count\":1,\"mem_size_mib\":1024,\"huge_pages\":\"2M\"}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/snapguest.elf\",\"boot_args\":\"mode=1 mib=4\"}",
		 st_guests);
	st_req(&t, "PUT", "/boot-source", body, 204);
	l = strdup(st_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 400));
	if (!strstr(l, "Start microvm error: Invalid Memory Configuration") ||
	    !strstr(l, "needs 512 free 2 MiB huge pages") || !strstr(l, "nr_hugepages"))
		fail_msg("InstanceStart with too small a pool: %s", l);
	free(l);
	st_req(&t, "GET", "/", NULL, 200);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_2m_boot_full_diff_file_loads),
	    cmocka_unit_test(test_none_snapshot_uffd_as_2m_and_thp),
	    cmocka_unit_test(test_small_pool_fails_instance_start),
	};
	int rc;

	if (argc < 6) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR SQUIB_PAGER HANDLER SQUIB_SNAP\n",
			argv[0]);
		return 2;
	}
	handler_bin = argv[4];
	snap_tool = argv[5];
	st_init(argc, argv);
	pool_fill();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	pool_restore();
	st_cleanup();
	return rc;
}
