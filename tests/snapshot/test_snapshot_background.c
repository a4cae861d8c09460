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

static void test_background_full_and_diff_are_the_pause_instant(void **state)
{
	struct sqb_tc t;
	long long full_round, diff_round, copied;
	const char *b;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=16 down=1 stamp=1", 1, 64, 1);
	st_wait_round(&t, 2);
	b = st_req(&t, "GET", "/snapshot/status", NULL, 200);
	assert_non_null(strstr(b, "\"none\""));

	st_pause(&t);
	full_round = st_cur_round(&t);
	st_create(&t, "Full", "bgf", ST_BG);
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
	copied = st_bg_wait_complete(&t);
	/* the guest wrote while the file was written: copy-before-write ran */
	assert_true(copied > 0);
	assert_int_equal(access(st_path("bgf", ".state"), F_OK), 0);
	st_wait_round(&t, st_cur_round(&t) + 2);

	st_pause(&t);
	diff_round = st_cur_round(&t);
	st_create(&t, "Diff", "bgd", ST_BG);
	st_resume(&t);
	st_bg_wait_complete(&t);
	st_wait_round(&t, st_cur_round(&t) + 1);
	tc_stop(&t);

	st_bg_load_and_verify("bgf", "mmap", full_round);
	st_bg_load_and_verify("bgd", "mmap", diff_round);
	st_bg_load_and_verify("bgd", "eager", diff_round);
}

/* docs/snapshots.md, "Background snapshots": the memory file holds the
 * memory of the pause instant.  A page that was never written before the
 * pause (a hole of the memfd) and that the guest writes right after the
 * resume, before the writer has read anything (SQB_FAULT=bg_slow_writer),
 * must read as zeros in the file; a page written before the pause keeps
 * its bytes. */
static void test_background_hole_written_after_the_pause_is_zero(void **state)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	static uint8_t buf[4 * 4096];
	const uint64_t mark0 = 20ull << 20, mark1 = mark0 + sizeof(buf);
	struct sqb_tc t;
	sqb_snap *s = NULL;
	size_t nz = 0;

	(void)state;
	setenv("SQB_FAULT", "bg_slow_writer", 1);
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 64, 0);
	unsetenv("SQB_FAULT");
	st_wait_round(&t, 1);
	st_pause(&t);
	st_mark(&t, 'A'); /* resumes, writes set 0, pauses again */
	st_create(&t, "Full", "bgh", ST_BG);
	st_mark(&t, 'B'); /* set 1: holes at the pause, written now */
	st_resume(&t);
	st_bg_wait_complete(&t);
	tc_stop(&t);

	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, st_path("bgh", ".mem"), &oo, NULL), 0);
	assert_int_equal(sqb_snap_read(s, mark1, buf, sizeof(buf), NULL), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		nz += buf[i] != 0;
	assert_int_equal(nz, 0);
	assert_int_equal(sqb_snap_read(s, mark0, buf, sizeof(buf), NULL), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		nz += buf[i] != 0;
	assert_true(nz > 0);
	sqb_snap_free(s);
}

/* docs/snapshots.md "Live creates": a background create asked of a RUNNING
 * VM protects guest memory while the guest runs, pauses it, protects again
 * only the pages written meanwhile, and resumes it.  The writer guest
 * rewrites every page continuously, so many pages are written between the
 * early protection and the pause: a page not protected again would be read
 * with a later round's stamp (WRITER STALE after the load).  Full, then a
 * Diff. */
static void test_live_create_is_the_pause_instant(void **state)
{
	struct sqb_tc t;
	long long full_round, diff_round, copied;
	const char *b;

	(void)state;
	/* the guest writes for 300 ms between the early protection and the
	 * pause, and the writer waits 500 ms after it: the guest rewrites every
	 * page many times before one is read; always protect (never the
	 * sparse copy) */
	setenv("SQB_FAULT", "bg_slow_writer,bg_protect,live_slow_pause", 1);
	st_boot(&t, "snapguest.elf", "mode=1 mib=16 down=1 stamp=1", 1, 64, 1);
	unsetenv("SQB_FAULT");
	st_wait_round(&t, 2);
	st_create(&t, "Full", "lvf", ST_BG); /* no PATCH /vm: it runs */
	full_round = st_cur_round(&t);
	b = st_req(&t, "GET", "/", NULL, 200);
	assert_non_null(strstr(b, "\"Running\""));
	copied = st_bg_wait_complete(&t);
	assert_true(copied > 0);
	b = st_req(&t, "GET", "/snapshot/status", NULL, 200);
	assert_null(strstr(b, "\"pause_us\":0,"));
	st_wait_round(&t, st_cur_round(&t) + 2);

	st_create(&t, "Diff", "lvd", ST_BG);
	diff_round = st_cur_round(&t);
	st_bg_wait_complete(&t);
	st_wait_round(&t, st_cur_round(&t) + 1);
	tc_stop(&t);

	st_bg_load_and_verify("lvf", "mmap", full_round);
	st_bg_load_and_verify("lvd", "mmap", diff_round);
	st_bg_load_and_verify("lvd", "eager", diff_round);
}

/* What a background create cannot do is refused before anything runs. */
static void test_background_refusals(void **state)
{
	struct sqb_tc t, t2;
	char body[512];
	const char *b;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	st_wait_round(&t, 1);
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
		 "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\",\"squib\":" ST_BG "}",
		 st_path("bgx", ".state"), st_path("bgx", ".mem"));
	b = st_req(&t2, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(b, "eager"));
	/* the same live (VM running): refused before it pauses, it runs on */
	st_resume(&t2);
	b = st_req(&t2, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(b, "eager"));
	b = st_req(&t2, "GET", "/", NULL, 200);
	assert_non_null(strstr(b, "\"Running\""));
	/* without background, a running VM is refused as Firecracker does */
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 st_path("bgx", ".state"), st_path("bgx", ".mem"));
	b = st_req(&t2, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(b, "save/restore unavailable while running"));
	tc_stop(&t2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_background_full_and_diff_are_the_pause_instant),
	    cmocka_unit_test(test_background_hole_written_after_the_pause_is_zero),
	    cmocka_unit_test(test_live_create_is_the_pause_instant),
	    cmocka_unit_test(test_background_refusals),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
