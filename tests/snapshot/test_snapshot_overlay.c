/* Which memory file a create writes (docs/snapshots.md [S-1]..[S-3]): a
 * Diff never overwrites a file its own chain needs, it merges (Firecracker's
 * test_diff_snapshot_overlay); the first Diff and a Diff without tracking are
 * complete; the pair is durable and replaced as one.  Real guests on
 * /dev/kvm, each snapshot loaded by a fresh squib. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <signal.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

static void load_and_count_counter(const char *name)
{
	struct sqb_tc t;

	st_load(&t, name, NULL, NULL);
	st_expect_serial(&t, "count=", 30000);
	tc_stop(&t);
}

static void create_paths(struct sqb_tc *t, const char *type, const char *state_name,
			 const char *mem_name, int want)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 type, st_path(state_name, ".state"), st_path(mem_name, ".mem"));
	st_req(t, "PUT", "/snapshot/create", body, want);
}

/* The issue-12 data loss: Full F <- Diff D1, then a Diff with mem_file_path
 * = F.mem (an ancestor, not the direct parent).  Before the fix the new
 * Diff was written over F.mem naming D1 as parent, so neither it nor D1
 * loaded.  Now F.mem becomes the merged memory (no parent) and loads with
 * every marker; a Diff on top of it is a real Diff again; D1, whose parent
 * was replaced at the user's request, is refused by identity (400), never
 * loaded on the wrong memory. */
static void test_diff_over_ancestor_merges(void **state)
{
	struct sqb_tc t, t2;
	struct sqb_mem_stats ms;
	int has_parent;
	const char *log;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 1);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_pause(&t);
	st_create(&t, "Full", "F", NULL);
	st_mark(&t, 'A');
	st_create(&t, "Diff", "D1", NULL);
	st_mem_stats("D1", &ms, &has_parent);
	assert_true(has_parent);
	st_mark(&t, 'B');
	create_paths(&t, "Diff", "F", "F", 204); /* over the grandparent */
	st_mem_stats("F", &ms, &has_parent);
	assert_false(has_parent);
	assert_int_equal(ms.parent, 0);
	st_mark(&t, 'C');
	st_create(&t, "Diff", "D2", NULL); /* parent: the merged F */
	st_mem_stats("D2", &ms, &has_parent);
	assert_true(has_parent);
	assert_true(ms.parent > ms.pages / 2);
	tc_stop(&t);

	st_load_count_marks("F", NULL, 2);
	st_load_count_marks("D2", NULL, 3);
	st_spawn(&t2);
	{
		char body[600];

		snprintf(body, sizeof(body),
			 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
			 "\"backend_path\":\"%s\"},\"resume_vm\":true}",
			 st_path("D1", ".state"), st_path("D1", ".mem"));
		log = st_req(&t2, "PUT", "/snapshot/load", body, 400);
		assert_non_null(strstr(log, "parent"));
	}
	tc_stop(&t2);
}

/* Firecracker's test_diff_snapshot_overlay: the first snapshot is a Diff
 * (it holds all memory), then Diffs written to the same two paths again and
 * again; each time the pair is complete and loads. */
static void test_diff_overlay_same_paths(void **state)
{
	struct sqb_tc t;
	struct sqb_mem_stats ms;
	int has_parent;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 1);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_create(&t, "Diff", "ov", NULL); /* first snapshot: complete */
	st_mem_stats("ov", &ms, &has_parent);
	assert_false(has_parent);
	assert_true(ms.raw + ms.compressed + ms.dedup > 0);
	st_mark(&t, 'B');
	st_create(&t, "Diff", "ov", NULL); /* over its own parent: merged */
	st_mem_stats("ov", &ms, &has_parent);
	assert_false(has_parent);
	tc_stop(&t);
	st_load_count_marks("ov", NULL, 2);
	assert_int_equal(access(st_path("ov", ".mem.squib-new"), F_OK), -1);
}

/* A Diff of a VM without dirty tracking is the resident memory, complete
 * (Firecracker uses mincore() for the same request). */
static void test_diff_without_tracking_is_complete(void **state)
{
	struct sqb_tc t;
	struct sqb_mem_stats ms;
	int has_parent;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_create(&t, "Full", "nt0", NULL);
	st_mark(&t, 'B');
	st_create(&t, "Diff", "nt1", NULL);
	st_mem_stats("nt1", &ms, &has_parent);
	assert_false(has_parent);
	tc_stop(&t);
	st_load_count_marks("nt1", NULL, 2);
	st_load_count_marks("nt0", NULL, 1);
}

/* issue 11: each file of the pair is renamed once, straight from its
 * temporary to its final name (the old code renamed each twice, through a
 * ".squib-new" name, inside the pause window). */
static void test_create_renames_each_file_once(void **state)
{
	struct sqb_tc t;
	char buf[8192] __attribute__((aligned(8)));
	int fd, moved = 0, bad = 0;
	ssize_t n;

	(void)state;
	st_boot(&t, "counter.elf", "delay=3000", 1, 16, 0);
	st_expect_serial(&t, "count=2\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "rn", NULL); /* the second create replaces both */
	fd = inotify_init1(IN_NONBLOCK);
	assert_true(fd >= 0);
	assert_true(inotify_add_watch(fd, st_dir, IN_MOVED_TO) >= 0);
	st_create(&t, "Full", "rn", NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			/* RENAME_EXCHANGE also moves the old memory file to the
			 * temporary's name (then unlinked) */
			if (ev->len && (!strcmp(ev->name, "rn.mem") || !strcmp(ev->name, "rn.state")))
				moved++;
			else if (!ev->len || strncmp(ev->name, "rn.mem.tmp.", 11))
				bad++, print_message("moved: %s\n", ev->len ? ev->name : "?");
			p += sizeof(*ev) + ev->len;
		}
	close(fd);
	tc_stop(&t);
	assert_int_equal(bad, 0);
	assert_int_equal(moved, 2);
	load_and_count_counter("rn");
}

static int count_temps(void)
{
	DIR *d = opendir(st_dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strstr(e->d_name, ".tmp.") != NULL;
	if (d)
		closedir(d);
	return n;
}

/* issue 17: squib killed between the two renames of a create.  The old
 * state then sits beside the new memory; its own memory is under the
 * create's temporary name.  A load of the pair at the paths still loads the
 * old snapshot (found by identity, never the wrong memory), and the next
 * create to the same paths removes the leftovers. */
static void test_kill_between_renames_recovers(void **state)
{
	struct sqb_tc t;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_pause(&t);
	st_create(&t, "Full", "k", NULL); /* the old pair: no marker */
	tc_stop(&t);
	setenv("SQB_FAULT", "kill_between_renames", 1);
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	unsetenv("SQB_FAULT");
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	{
		char body[600];

		snprintf(body, sizeof(body),
			 "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
			 st_path("k", ".state"), st_path("k", ".mem"));
		assert_true(tc_req(&t, "PUT", "/snapshot/create", body, NULL, 0) <= 0 ||
			    kill(t.pid, 0) != 0); /* no answer: the process was killed */
	}
	tc_stop(&t);
	assert_true(count_temps() >= 2); /* old memory + new state, under temporary names */
	st_load_count_marks("k", NULL, 0);		 /* the old snapshot, recovered */
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_mark(&t, 'B');
	st_create(&t, "Full", "k", NULL);
	tc_stop(&t);
	assert_int_equal(count_temps(), 0); /* swept */
	st_load_count_marks("k", NULL, 2);
}

struct racer {
	struct sqb_tc *t, *other;
	int fails;
};

static void *race_creates(void *arg)
{
	struct racer *r = arg;
	char body[600];

	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 st_path("race", ".state"), st_path("race", ".mem"));
	for (int i = 0; i < 8; i++) {
		char out[512] = "";

		if (tc_req(r->t, "PUT", "/snapshot/create", body, out, sizeof(out)) != 204) {
			char *log = tc_read_file(r->t->errlog);

			char *olog = tc_read_file(r->other->errlog);

			print_message("create failed: %s\nlog: %s\nother: %s\n", out,
				      log ? log : "", olog ? olog : "");
			free(log);
			free(olog);
			r->fails++;
		}
	}
	return NULL;
}

/* issue 17: two squib processes creating to the same paths at once always
 * leave one complete pair (state and memory of the same VM), never a mix. */
static void test_concurrent_creates_leave_one_pair(void **state)
{
	struct sqb_tc a, b;
	struct racer ra, rb;
	pthread_t th;
	sqb_snap *st, *mem;

	(void)state;
	st_boot(&a, "counter.elf", "delay=3000", 1, 16, 0);
	st_boot(&b, "counter.elf", "delay=5000", 1, 16, 0);
	st_pause(&a);
	st_pause(&b);
	for (int round = 0; round < 3; round++) {
		ra = (struct racer){&a, &b, 0};
		rb = (struct racer){&b, &a, 0};
		pthread_create(&th, NULL, race_creates, &ra);
		race_creates(&rb);
		pthread_join(th, NULL);
		assert_int_equal(ra.fails + rb.fails, 0);
		assert_int_equal(sqb_snap_open(&st, st_path("race", ".state"), NULL, NULL), 0);
		assert_int_equal(sqb_snap_open(&mem, st_path("race", ".mem"), NULL, NULL), 0);
		assert_int_equal(sqb_snap_check_pair(st, mem, NULL), 0);
		sqb_snap_free(st);
		sqb_snap_free(mem);
	}
	tc_stop(&a);
	tc_stop(&b);
	assert_int_equal(count_temps(), 0);
}

/* The test-host blk test's shape on a test guest: Full, SIGKILL, mmap load
 * with tracking, three Diffs of the loaded VM, SIGKILL, mmap load of the
 * 4-layer chain (every layer's RAW extents mapped). */
static void test_diff_chain_of_a_loaded_vm_loads_by_mmap(void **state)
{
	struct sqb_tc t;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, 32, 1);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_create(&t, "Full", "lf", NULL);
	tc_stop(&t);
	st_load_ex(&t, "lf", NULL, NULL, "\"track_dirty_pages\":true");
	st_pause(&t);
	for (int d = 1; d <= 3; d++) {
		char name[8];

		snprintf(name, sizeof(name), "ld%d", d);
		st_mark(&t, (char)('A' + d));
		st_create(&t, "Diff", name, NULL);
	}
	tc_stop(&t);
	st_load_count_marks("ld3", NULL, 4);
	st_load_count_marks("ld3", "lazy", 4);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_diff_over_ancestor_merges),
	    cmocka_unit_test(test_diff_overlay_same_paths),
	    cmocka_unit_test(test_diff_without_tracking_is_complete),
	    cmocka_unit_test(test_create_renames_each_file_once),
	    cmocka_unit_test(test_kill_between_renames_recovers),
	    cmocka_unit_test(test_concurrent_creates_leave_one_pair),
	    cmocka_unit_test(test_diff_chain_of_a_loaded_vm_loads_by_mmap),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
