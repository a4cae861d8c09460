/* Background snapshots of a sparse page set (docs/snapshots.md "Background
 * snapshots"): when the memory file reads few pages of a large guest, the
 * create copies them aside while paused instead of write-protecting them.
 * The loaded snapshot must still be exactly the memory of the pause instant:
 * the writer guest rewrites its pages continuously and checks a per-round
 * stamp after the load ("WRITER STALE" / "WRITER BAD" otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap_test_util.h"

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

/* "complete" expected; returns pages_copied (copies made because the guest
 * wrote a protected page). */
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
		 "\"squib\":{\"background\":true}}",
		 type, st_path(name, ".state"), st_path(name, ".mem"));
	st_req(t, "PUT", "/snapshot/create", body, 204);
}

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

/* A 256 MiB guest whose writer covers 4 MiB (1024 pages, 1.6 %): both the
 * Full and the Diff read a sparse set, which is copied at the pause, so
 * nothing is copied later on a write (pages_copied 0, where write-protect
 * would copy many: the guest rewrites all of them every round). */
static void test_sparse_background_snapshots_are_the_pause_instant(void **state)
{
	struct sqb_tc t;
	long long full_round, diff_round;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=12 down=1 stamp=1", 1, 256, 1);
	wait_round(&t, 2);
	st_pause(&t);
	full_round = cur_round(&t);
	create_bg(&t, "Full", "sf");
	st_resume(&t);
	assert_int_equal(wait_complete(&t), 0);
	wait_round(&t, cur_round(&t) + 2);

	st_pause(&t);
	diff_round = cur_round(&t);
	create_bg(&t, "Diff", "sd");
	st_resume(&t);
	assert_int_equal(wait_complete(&t), 0);
	wait_round(&t, cur_round(&t) + 1);
	tc_stop(&t);

	load_and_verify("sf", "mmap", full_round);
	load_and_verify("sd", "mmap", diff_round);
	load_and_verify("sd", "lazy", diff_round);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sparse_background_snapshots_are_the_pause_instant),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
