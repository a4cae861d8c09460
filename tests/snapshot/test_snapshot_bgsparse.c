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
	st_wait_round(&t, 2);
	st_pause(&t);
	full_round = st_cur_round(&t);
	st_create(&t, "Full", "sf", ST_BG);
	st_resume(&t);
	assert_int_equal(st_bg_wait_complete(&t), 0);
	st_wait_round(&t, st_cur_round(&t) + 2);

	st_pause(&t);
	diff_round = st_cur_round(&t);
	st_create(&t, "Diff", "sd", ST_BG);
	st_resume(&t);
	assert_int_equal(st_bg_wait_complete(&t), 0);
	st_wait_round(&t, st_cur_round(&t) + 1);
	tc_stop(&t);

	st_bg_load_and_verify("sf", "mmap", full_round);
	st_bg_load_and_verify("sd", "mmap", diff_round);
	st_bg_load_and_verify("sd", "lazy", diff_round);
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
