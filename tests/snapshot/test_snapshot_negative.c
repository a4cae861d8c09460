/* Snapshot refusals (docs/snapshots.md "Failure behaviour"): clear 400s,
 * a VM left paused and intact, no file under either path after a failed
 * create, and nothing running from a corrupt, truncated, mismatched or
 * hostile snapshot or without its page server. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap_test_util.h"

static char body[2048];

static void expect_fault(struct sqb_tc *t, const char *method, const char *path, const char *json,
			 const char *needle)
{
	const char *r = st_req(t, method, path, json, 400);

	if (!strstr(r, needle))
		fail_msg("%s %s: fault '%s' does not mention '%s'", method, path, r, needle);
}

/* One good snapshot ("base") of a running counter guest, shared by the
 * load tests below. */
static int setup(void **state)
{
	struct sqb_tc t;

	(void)state;
	st_boot(&t, "counter.elf", "delay=3000", 1, 16, 0);
	st_expect_serial(&t, "count=3\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "base", NULL);
	st_resume(&t);
	st_expect_serial(&t, "count=6\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "other", NULL);
	tc_stop(&t);
	return 0;
}

static void test_create_refused_unless_paused(void **state)
{
	struct sqb_tc t;

	(void)state;
	st_spawn(&t);
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 st_path("x", ".state"), st_path("x", ".mem"));
	expect_fault(&t, "PUT", "/snapshot/create", body, "not supported before starting");
	tc_stop(&t);
	st_boot(&t, "counter.elf", "delay=3000", 1, 16, 0);
	st_expect_serial(&t, "count=2\n", 30000);
	expect_fault(&t, "PUT", "/snapshot/create", body, "unavailable while running");
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Running"));
	assert_int_equal(access(st_path("x", ".state"), F_OK), -1);
	/* a bad squib extension (a Diff without tracking is accepted:
	 * test_snapshot_overlay.c) */
	st_pause(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\",\"squib\":{\"codec\":\"xz\"}}",
		 st_path("x", ".state"), st_path("x", ".mem"));
	expect_fault(&t, "PUT", "/snapshot/create", body, "`xz`");
	assert_int_equal(access(st_path("x", ".mem"), F_OK), -1);
	/* a folder that does not exist: its own errno, each path named (the
	 * error of the other path's look-up used to overwrite it: EINVAL) */
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s/nodir/m\"}",
		 st_path("x", ".state"), st_dir);
	expect_fault(&t, "PUT", "/snapshot/create", body, "/nodir/m (No such file or directory)");
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s/nodir/s\",\"mem_file_path\":\"%s\"}",
		 st_dir, st_path("x", ".mem"));
	expect_fault(&t, "PUT", "/snapshot/create", body, "/nodir/s (No such file or directory)");
	assert_int_equal(access(st_path("x", ".mem"), F_OK), -1);
	tc_stop(&t);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(*n + 1);
	assert_int_equal(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

/* The state write fails after the memory file was written: no new file
 * under either path, the previous pair untouched, the VM still paused and
 * able to run on. */
static void test_failed_create_leaves_nothing_and_vm_intact(void **state)
{
	struct sqb_tc t;
	char memp[256], *before, *after;
	size_t n1, n2;
	long long last;

	(void)state;
	st_boot(&t, "counter.elf", "delay=3000", 1, 16, 0);
	st_expect_serial(&t, "count=2\n", 30000);
	st_pause(&t);
	snprintf(memp, sizeof(memp), "%s", st_path("base", ".mem"));
	before = slurp(memp, &n1);
	/* snapshot_path is a folder: the memory file is written first, then the
	 * state file cannot be moved into place */
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}", st_dir,
		 memp);
	expect_fault(&t, "PUT", "/snapshot/create", body, "Cannot create the Full snapshot");
	after = slurp(memp, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(before, after, n1); /* previous memory file kept */
	free(before);
	free(after);
	snprintf(body, sizeof(body), "%s.squib-new", memp);
	assert_int_equal(access(body, F_OK), -1);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Paused"));
	before = tc_read_file(t.serial);
	last = st_last_num(before, "count=");
	free(before);
	st_resume(&t);
	snprintf(body, sizeof(body), "count=%lld\n", last + 3);
	st_expect_serial(&t, body, 30000);
	tc_stop(&t);
}

static void load_fault(const char *state_path, const char *mem_backend, const char *needle)
{
	struct sqb_tc t;

	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":%s,\"resume_vm\":true}", state_path,
		 mem_backend);
	expect_fault(&t, "PUT", "/snapshot/load", body, needle);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Not started"));
	usleep(100000);
	{
		char *s = tc_read_file(t.serial);
		assert_true(!s || !strstr(s, "count=")); /* no guest code ran */
		free(s);
	}
	tc_stop(&t);
}

static const char *file_backend(const char *mem)
{
	static char b[512];

	snprintf(b, sizeof(b), "{\"backend_type\":\"File\",\"backend_path\":\"%s\"}", mem);
	return b;
}

static void copy_damaged(const char *from, const char *to, long off, int truncate_to)
{
	size_t n;
	char *b = slurp(from, &n);
	FILE *f = fopen(to, "wb");

	assert_non_null(f);
	if (off >= 0 && (size_t)off < n)
		b[off] ^= 0x5a;
	fwrite(b, 1, truncate_to >= 0 ? (size_t)truncate_to : n, f);
	fclose(f);
	free(b);
}

static void test_load_refuses_bad_files(void **state)
{
	size_t n;
	char *b;

	(void)state;
	/* corrupt: a byte in the middle of the state file's sections */
	b = slurp(st_path("base", ".state"), &n);
	free(b);
	copy_damaged(st_path("base", ".state"), st_path("bad", ".state"), (long)n / 2, -1);
	load_fault(st_path("bad", ".state"), file_backend(st_path("base", ".mem")), "checksum");
	/* truncated memory file */
	b = slurp(st_path("base", ".mem"), &n);
	free(b);
	copy_damaged(st_path("base", ".mem"), st_path("trunc", ".mem"), -1, (int)(n - 4096));
	load_fault(st_path("base", ".state"), file_backend(st_path("trunc", ".mem")),
		   "Failed to restore from snapshot");
	/* wrong pair: base's state with other's memory */
	load_fault(st_path("base", ".state"), file_backend(st_path("other", ".mem")), "pair");
	/* roles swapped, and not a snapshot at all */
	load_fault(st_path("base", ".mem"), file_backend(st_path("base", ".state")),
		   "not a snapshot state file");
	load_fault("/etc/hostname", file_backend(st_path("base", ".mem")), "Load snapshot error");
	/* missing page server */
	{
		char uffd[300];
		snprintf(uffd, sizeof(uffd),
			 "{\"backend_type\":\"Uffd\",\"backend_path\":\"%s/nobody.sock\"}", st_dir);
		load_fault(st_path("base", ".state"), uffd, "page server");
	}
}

static void test_load_refused_after_configuration_or_start(void **state)
{
	struct sqb_tc t;

	(void)state;
	st_spawn(&t);
	st_req(&t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":16}", 204);
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_backend\":%s}",
		 st_path("base", ".state"), file_backend(st_path("base", ".mem")));
	expect_fault(&t, "PUT", "/snapshot/load", body, "not allowed after configuring");
	tc_stop(&t);
	/* rpc_interface.rs sets boot_path before it tries the request: a
	 * refused boot-path request also rules the load out; one refused by
	 * serde never reached it, nor does a CPU template (not a boot path) */
	{
		static const char *const refused[][2] = {
		    {"/machine-config", "{\"vcpu_count\":0,\"mem_size_mib\":16}"},
		    {"/boot-source", "{\"kernel_image_path\":\"/nonexistent/k\"}"},
		    {"/drives/d", "{\"drive_id\":\"d\",\"path_on_host\":\"/nonexistent/d\","
				  "\"is_root_device\":false}"},
		    {"/mmds/config", "{\"network_interfaces\":[\"eth9\"]}"},
		};

		for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			st_spawn(&t);
			st_req(&t, "PUT", refused[i][0], refused[i][1], 400);
			expect_fault(&t, "PUT", "/snapshot/load", body,
				     "not allowed after configuring");
			tc_stop(&t);
		}
	}
	st_spawn(&t);
	st_req(&t, "PUT", "/machine-config", "{\"vcpu_count\":\"x\",\"mem_size_mib\":16}", 400);
	st_req(&t, "PUT", "/cpu-config", "{}", 204);
	st_req(&t, "PUT", "/snapshot/load", body, 204);
	tc_stop(&t);
	/* load twice: the second is refused, the first VM keeps running */
	st_spawn(&t);
	st_req(&t, "PUT", "/snapshot/load", body, 204);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Paused"));
	expect_fault(&t, "PUT", "/snapshot/load", body, "not supported after starting");
	st_resume(&t);
	st_expect_serial(&t, "count=5\n", 30000);
	/* mem_backend and mem_file_path together, and neither */
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"x\",\"mem_file_path\":\"y\",\"mem_backend\":%s}",
		 file_backend("y"));
	expect_fault(&t, "PUT", "/snapshot/load", body, "exclusively is required");
	tc_stop(&t);
}

/* The page server dies while the guest runs: pages it served keep working,
 * the first access to one it never served stops the VM with a clear error
 * (squib exits non-zero) instead of running on a zero page. */
static void test_page_server_dies(void **state)
{
	struct sqb_tc t, t2;
	char sock[200], *s, *e;
	long long last;
	pid_t pager;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=4", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2 OK\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "pd", NULL);
	s = tc_read_file(t.serial);
	last = st_last_num(s, "ROUND ");
	free(s);
	tc_stop(&t);
	pager = st_pager_start("pd", "--no-fill", sock, sizeof(sock));
	st_load(&t2, "pd", NULL, sock);
	snprintf(body, sizeof(body), "ROUND %lld OK\n", last + 2);
	st_expect_serial(&t2, body, 30000);
	st_pager_stop(pager); /* SIGKILL */
	usleep(200000);
	assert_non_null(strstr(st_req(&t2, "GET", "/", NULL, 200), "Running"));
	st_input(&t2, "A"); /* marker pages: never touched, never served */
	{
		int rc = tc_wait_exit(&t2, 20000);
		assert_true(rc > 0); /* an orderly exit with an error status */
	}
	s = tc_read_file(t2.serial);
	e = tc_read_file(t2.errlog);
	assert_null(strstr(s, "MARK 0 written"));
	assert_null(strstr(s, "BAD"));
	if (!strstr(e, "page server hung up"))
		fail_msg("squib did not say why it stopped: %.1500s", e);
	free(s);
	free(e);
	tc_stop(&t2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_refused_unless_paused),
	    cmocka_unit_test(test_failed_create_leaves_nothing_and_vm_intact),
	    cmocka_unit_test(test_load_refuses_bad_files),
	    cmocka_unit_test(test_load_refused_after_configuration_or_start),
	    cmocka_unit_test(test_page_server_dies),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, setup, NULL);
	st_cleanup();
	return rc;
}
