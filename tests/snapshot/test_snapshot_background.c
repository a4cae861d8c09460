/* Background snapshots (docs/snapshots.md "Background snapshots"): a guest
 * that rewrites every page continuously is snapshotted with
 * "squib": {"background": true}, runs while the memory file is written, and
 * the loaded snapshot is exactly the memory of the pause instant (the guest
 * checks its generation pattern after the load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

#define BG "{\"background\":true}"

static void wait_round(struct sqb_tc *t, long long n)
{
	char want[64];

	snprintf(want, sizeof(want), "ROUND %lld OK\n", n);
	st_expect_serial(t, want, 60000);
}

static long long cur_round(struct sqb_tc *t)
{
	char *s = tc_read_file(t->serial);
	long long r = s ? st_last_num(s, "ROUND ") : -1;

	free(s);
	return r;
}

/* Poll GET /snapshot/status until the background create is no longer
 * "writing"; returns pages_copied and fails unless "complete". */
static long long wait_complete(struct sqb_tc *t)
{
	for (int i = 0; i < 6000; i++) {
		const char *b = st_req(t, "GET", "/snapshot/status", NULL, 200);

		if (!strstr(b, "\"writing\"")) {
			const char *c = strstr(b, "\"pages_copied\":");

			if (!strstr(b, "\"complete\""))
				fail_msg("background snapshot did not complete: %s", b);
			assert_non_null(c);
			return atoll(c + 15);
		}
		usleep(10000);
	}
	fail_msg("background snapshot still writing after 60 s");
	return -1;
}

static void create_bg(struct sqb_tc *t, const char *type, const char *name)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\","
		 "\"squib\":" BG "}",
		 type, st_path(name, ".state"), st_path(name, ".mem"));
	st_req(t, "PUT", "/snapshot/create", body, 204);
}

/* The loaded guest continues from the round it was in at the pause and
 * every page checks (a page from after the pause, or a torn one, shows as
 * "WRITER BAD"). */
static void load_and_verify(const char *name, const char *mode, long long last)
{
	struct sqb_tc t2;
	char *s;

	st_load(&t2, name, mode, NULL);
	wait_round(&t2, last + 3);
	s = tc_read_file(t2.serial);
	assert_null(strstr(s, "BAD"));
	assert_null(strstr(s, "STALE"));
	free(s);
	tc_stop(&t2);
}

static void test_background_full_and_diff_are_the_pause_instant(void **state)
{
	struct sqb_tc t;
	long long full_round, diff_round, copied;
	const char *b;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=16 down=1 stamp=1", 1, 64, 1);
	wait_round(&t, 2);
	b = st_req(&t, "GET", "/snapshot/status", NULL, 200);
	assert_non_null(strstr(b, "\"none\""));

	st_pause(&t);
	full_round = cur_round(&t);
	create_bg(&t, "Full", "bgf");
	/* the files appear only when complete and durable */
	b = st_req(&t, "GET", "/snapshot/status", NULL, 200);
	if (strstr(b, "\"writing\"")) {
		assert_int_equal(access(st_path("bgf", ".state"), F_OK), -1);
		/* a second create waits for the first: refused meanwhile */
		char body[512];
		snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
			 st_path("bg2", ".state"), st_path("bg2", ".mem"));
		b = st_req(&t, "PUT", "/snapshot/create", body, 400);
		assert_non_null(strstr(b, "still being written"));
	}
	st_resume(&t);
	copied = wait_complete(&t);
	/* the guest wrote while the file was written: copy-before-write ran */
	assert_true(copied > 0);
	assert_int_equal(access(st_path("bgf", ".state"), F_OK), 0);
	wait_round(&t, cur_round(&t) + 2);

	st_pause(&t);
	diff_round = cur_round(&t);
	create_bg(&t, "Diff", "bgd");
	st_resume(&t);
	wait_complete(&t);
	wait_round(&t, cur_round(&t) + 1);
	tc_stop(&t);

	load_and_verify("bgf", "mmap", full_round);
	load_and_verify("bgd", "mmap", diff_round);
	load_and_verify("bgd", "eager", diff_round);
}

/* What a background create cannot do is refused before anything runs. */
static void test_background_refusals(void **state)
{
	struct sqb_tc t, t2;
	char body[512];
	const char *b;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	wait_round(&t, 1);
	st_pause(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\",\"squib\":{\"background\":"
		 "true,\"mem_format\":\"raw\"}}",
		 st_path("bgr", ".state"), st_path("bgr", ".mem"));
	b = st_req(&t, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(b, "background"));
	assert_int_equal(access(st_path("bgr", ".mem"), F_OK), -1);
	st_create(&t, "Full", "bgm", NULL);
	tc_stop(&t);
	/* memory mapped from the snapshot file cannot be write-protected */
	st_load(&t2, "bgm", "mmap", NULL);
	st_pause(&t2);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\",\"squib\":" BG "}",
		 st_path("bgx", ".state"), st_path("bgx", ".mem"));
	b = st_req(&t2, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(b, "eager"));
	tc_stop(&t2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_background_full_and_diff_are_the_pause_instant),
	    cmocka_unit_test(test_background_refusals),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
