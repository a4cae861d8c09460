/* Snapshot/kill/load cycles on /dev/kvm through the squib API: each test
 * guest is snapshotted mid-run, its squib process is SIGKILLed, a new squib
 * loads the snapshot and the guest proves it carries on (docs/snapshots.md
 * "Test matrix"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

static void check_counter_text(const char *s)
{
	const char *p = s, *nl;
	long long want = 1;

	if (strncmp(p, "COUNTER start\n", 14))
		fail_msg("counter output starts with '%.20s'", p);
	for (p += 14; (nl = strchr(p, '\n')); p = nl + 1) {
		char line[64];

		snprintf(line, sizeof(line), "count=%lld", want++);
		if ((size_t)(nl - p) != strlen(line) || strncmp(p, line, strlen(line)))
			fail_msg("expected '%s', found '%.*s'", line, (int)(nl - p), p);
	}
}

/* counter: Full, raw memory, File backend (mmap).  The joined serial output
 * of both processes is exactly COUNTER start, count=1, 2, ...: no line lost,
 * repeated or torn (an I/O exit in flight is completed before capture). */
static void test_counter_full_raw_mmap(void **state)
{
	struct sqb_tc t, t2;
	char *s1, *s2, *all, want[64];
	long long last;

	(void)state;
	/* delay=0: the vCPU is nearly always in a port exit when the pause lands */
	st_boot(&t, "counter.elf", "delay=0", 1, 16, 0);
	st_expect_serial(&t, "count=1500\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "ctr", NULL);
	s1 = tc_read_file(t.serial);
	tc_stop(&t); /* SIGKILL */
	last = st_last_num(s1, "count=");
	st_load(&t2, "ctr", NULL, NULL);
	snprintf(want, sizeof(want), "count=%lld\n", last + 2000);
	st_expect_serial(&t2, want, 30000);
	s2 = tc_read_file(t2.serial);
	all = malloc(strlen(s1) + strlen(s2) + 1);
	strcpy(all, s1);
	strcat(all, s2);
	check_counter_text(all);
	free(all);
	free(s1);
	free(s2);
	tc_stop(&t2);
}

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

/* After a load of the chain: rounds continue and verify, the markers
 * written once (one of them before a failed Diff) are all intact. */
static void verify_writer(struct sqb_tc *t, long long last)
{
	char *s;

	wait_round(t, last + 3);
	st_input(t, "v");
	st_expect_serial(t, "MARKS OK n=2\n", 30000);
	s = tc_read_file(t->serial);
	assert_null(strstr(s, "BAD"));
	free(s);
}

/* writer: Full (zstd + dedup) <- Diff (taken at once: must hold no page) <-
 * Diff (lz4) <- Diff (raw), with a failed Diff in between whose dirty bits
 * must survive; the guest rewrites its pages continuously, so any lost
 * write shows.  The chain loads directly: File lazy, File mmap, Uffd. */
static void test_writer_diff_chain_every_backend(void **state)
{
	struct sqb_tc t, t2;
	struct sqb_mem_stats ms;
	char body[512], sock[200];
	long long last, w2_last;
	pid_t pager;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 1);
	wait_round(&t, 2);
	st_pause(&t);
	st_create(&t, "Full", "w0", "{\"codec\":\"zstd\",\"level\":3,\"dedup\":true}");
	st_create(&t, "Diff", "w-empty", NULL);
	st_mem_stats("w-empty", &ms, NULL);
	assert_int_equal(ms.raw + ms.compressed + ms.dedup + ms.zero, 0); /* all PARENT */
	st_resume(&t);
	st_input(&t, "A");
	st_expect_serial(&t, "MARK 0 written\n", 30000);
	st_pause(&t);
	/* snapshot_path is a folder: the memory file is written, the state
	 * file cannot be moved into place, so the whole create is undone after
	 * the dirty set was collected */
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Diff\",\"snapshot_path\":\"%s\","
		 "\"mem_file_path\":\"%s\"}",
		 st_dir, st_path("wfail", ".mem"));
	st_req(&t, "PUT", "/snapshot/create", body, 400);
	assert_int_equal(access(st_path("wfail", ".mem"), F_OK), -1);
	st_resume(&t);
	wait_round(&t, cur_round(&t) + 2);
	st_pause(&t);
	st_create(&t, "Diff", "w1", "{\"codec\":\"lz4\"}");
	st_mem_stats("w1", &ms, NULL);
	assert_true(ms.parent > ms.pages / 2); /* the first Diff does not hold every page */
	st_resume(&t);
	st_input(&t, "B");
	st_expect_serial(&t, "MARK 1 written\n", 30000);
	wait_round(&t, cur_round(&t) + 1);
	st_pause(&t);
	st_create(&t, "Diff", "w2", NULL);
	last = cur_round(&t);
	w2_last = last;
	tc_stop(&t);

	st_load(&t2, "w2", "lazy", NULL);
	verify_writer(&t2, last);
	tc_stop(&t2);
	/* mmap load with tracking, then a Diff of the loaded VM (its parent is
	 * the loaded w2): the chain grows to Full + 4 Diffs and loads again */
	st_load_ex(&t2, "w2", "mmap", NULL, "\"enable_diff_snapshots\":true");
	verify_writer(&t2, last);
	st_input(&t2, "C");
	st_expect_serial(&t2, "MARK 2 written\n", 30000);
	st_pause(&t2);
	st_create(&t2, "Diff", "w3", NULL);
	last = cur_round(&t2);
	tc_stop(&t2);
	st_load(&t2, "w3", "lazy", NULL);
	wait_round(&t2, last + 3);
	st_input(&t2, "v");
	st_expect_serial(&t2, "MARKS OK n=3\n", 30000);
	tc_stop(&t2);
	pager = st_pager_start("w2", NULL, sock, sizeof(sock));
	st_load(&t2, "w2", NULL, sock);
	verify_writer(&t2, w2_last);
	tc_stop(&t2);
	st_pager_stop(pager);
}

/* timer: LAPIC timer interrupts keep coming after a load through squib-pager
 * (Uffd backend), until the guest has counted all of them. */
static void test_timer_full_uffd(void **state)
{
	struct sqb_tc t, t2;
	char sock[200];
	pid_t pager;

	(void)state;
	st_boot(&t, "timer.elf", "ticks=300 period=2000000", 1, 16, 0);
	st_expect_serial(&t, "tick 50\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "tm", NULL);
	tc_stop(&t);
	pager = st_pager_start("tm", NULL, sock, sizeof(sock));
	st_load(&t2, "tm", NULL, sock);
	st_expect_serial(&t2, "TIMER OK ticks=300\n", 60000);
	tc_stop(&t2);
	st_pager_stop(pager);
}

/* clock: kvmclock and the TSC never go backwards across the cycle; guest
 * time across the (paused + dormant) gap is reported for docs/snapshots.md. */
static void test_clock_monotonic_across_load(void **state)
{
	struct sqb_tc t, t2;
	char *s1, *s2;
	long long before, after;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=2 period=20000000", 1, 16, 0);
	st_expect_serial(&t, "CLOCK ns=", 30000);
	usleep(200000);
	st_pause(&t);
	st_create(&t, "Full", "clk", "{\"codec\":\"lz4\"}");
	s1 = tc_read_file(t.serial);
	tc_stop(&t);
	usleep(500000); /* dormant snapshot: wall time passes, guest time does not */
	st_load(&t2, "clk", NULL, NULL);
	usleep(300000);
	st_expect_serial(&t2, "CLOCK ns=", 30000);
	after = st_first_num(&t2, "CLOCK ns=", 30000);
	s2 = tc_read_file(t2.serial);
	assert_null(strstr(s2, "BACKWARDS"));
	before = st_last_num(s1, "CLOCK ns=");
	assert_true(before > 0 && after >= before);
	fprintf(stderr,
		"clock: last kvmclock before snapshot %lld ns, first after load %lld ns "
		"(+%lld ms guest time across a >= 500 ms dormant gap)\n",
		before, after, (after - before) / 1000000);
	free(s1);
	free(s2);
	tc_stop(&t2);
}

/* SMP: every vCPU resumes and its heartbeat continues from its own count. */
static void test_smp_every_vcpu_resumes(void **state)
{
	struct sqb_tc t, t2;
	char *s1, want[64], pfx[32];

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=3 beat=20000", 4, 16, 0);
	for (int i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "cpu %d hb 2\n", i);
		st_expect_serial(&t, want, 60000);
	}
	st_pause(&t);
	st_create(&t, "Full", "smp", NULL);
	s1 = tc_read_file(t.serial);
	tc_stop(&t);
	st_load(&t2, "smp", NULL, NULL);
	for (int i = 0; i < 4; i++) {
		snprintf(pfx, sizeof(pfx), "cpu %d hb ", i);
		snprintf(want, sizeof(want), "cpu %d hb %lld\n", i, st_last_num(s1, pfx) + 2);
		st_expect_serial(&t2, want, 60000);
	}
	free(s1);
	tc_stop(&t2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counter_full_raw_mmap),
	    cmocka_unit_test(test_writer_diff_chain_every_backend),
	    cmocka_unit_test(test_timer_full_uffd),
	    cmocka_unit_test(test_clock_monotonic_across_load),
	    cmocka_unit_test(test_smp_every_vcpu_resumes),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
