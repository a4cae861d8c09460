/* VMClock across snapshot loads, as Firecracker's test_vmclock.py checks it
 * with Linux's ptp_vmclock (here a test guest, guests/vmclock.c, that finds
 * the page through its DSDT and reads it under the seq_count protocol): the
 * booted page holds the ABI's fixed fields and zero counters; after every
 * load disruption_marker and vm_generation_counter are one higher and the
 * guest took exactly one notification; the DEVS record matches format.md
 * [F-131]; a snapshot without the record (an older squib) loads and its
 * page is left alone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

#define BOOT_LINE                                                                                  \
	"VMCLOCK addr=0x00000000000fe000 gsi=22 magic=0x000000004b4c4356 size=4096 version=1 "     \
	"counter_id=255 status=0 flags=0x0000000000000300\n"

static uint64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Guest memory of snapshot name (its parents followed) at gpa. */
static void snap_bytes(const char *name, uint64_t gpa, uint8_t *buf, size_t len)
{
	sqb_snap *s = NULL;
	struct sqb_diag d = {0};

	if (sqb_snap_open(&s, st_path(name, ".mem"), NULL, &d))
		fail_msg("cannot open %s: %s", st_path(name, ".mem"), d.reason);
	assert_int_equal(sqb_snap_read(s, gpa, buf, len, &d), 0);
	sqb_snap_free(s);
}

/* [F-131] known answer: DEVS type 5, id "vmclock", at the page with the
 * notification's GSI; state = u32 4096, u32 0, the page's 112 bytes, which
 * equal what guest memory holds. */
static void check_devs_record(const char *name, uint64_t counters)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *s = NULL;
	uint8_t mem[112];
	int found = 0;

	snap_bytes(name, 0xfe000, mem, sizeof(mem));
	oo.no_external = 1;
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, st_path(name, ".state"), &oo, NULL), 0);
	for (unsigned int k = 0; k < sqb_snap_device_count(s); k++) {
		struct sqb_device rec;
		void *backing = NULL;

		assert_int_equal(sqb_snap_device(s, k, &rec, &backing, NULL), 0);
		if (!strcmp(rec.id, "vmclock")) {
			const uint8_t *st = rec.state;

			found++;
			assert_int_equal(rec.type, 5);
			assert_int_equal(rec.version, 1);
			assert_int_equal(rec.bus_addr, 0xfe000);
			assert_int_equal(rec.irq, 22);
			assert_int_equal(rec.state_len, 120);
			assert_int_equal(le(st, 4), 4096);
			assert_int_equal(le(st + 4, 4), 0);
			assert_memory_equal(st + 8, mem, 112);
			assert_int_equal(le(st + 8, 4), 0x4b4c4356);
			assert_int_equal(le(st + 8 + 16, 8), counters);
			assert_int_equal(le(st + 8 + 104, 8), counters);
			assert_int_equal(le(st + 8 + 12, 4), 2 * counters);
		}
		free(backing);
	}
	sqb_snap_free(s);
	assert_int_equal(found, 1);
}

/* Firecracker's test_vmclock.py: initial values, then +1 on both counters
 * and one notification per load; across a chain of loads the counters
 * keep going up.  Loaded by mmap and by Uffd (squib-pager: the page is the
 * VMM's own and may be zero-filled before the server sends it). */
static void test_each_load_bumps_the_counters_and_notifies(void **state)
{
	static const char *const how[] = {"mmap", "eager", "uffd"};
	struct sqb_tc t;
	char *s;

	(void)state;
	st_boot(&t, "vmclock.elf", "", 1, 16, 0);
	st_expect_serial(&t, BOOT_LINE, 30000);
	st_expect_serial(&t, "VCLK disruption=0 generation=0 seq=0 irqs=0\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "vc", NULL);
	tc_stop(&t);
	check_devs_record("vc", 0);

	for (size_t i = 0; i < sizeof(how) / sizeof(how[0]); i++) {
		struct sqb_tc c;
		char sock[200];
		pid_t pager = -1;

		if (!strcmp(how[i], "uffd"))
			pager = st_pager_start("vc", NULL, sock, sizeof(sock));
		st_load(&c, "vc", pager > 0 ? NULL : how[i], pager > 0 ? sock : NULL);
		st_expect_serial(&c, "VCLK disruption=1 generation=1 seq=2 irqs=1\n", 30000);
		s = tc_read_file(c.serial);
		assert_null(strstr(s, "irqs=2")); /* one notification per load */
		assert_null(strstr(s, "VMCLOCK none"));
		free(s);
		if (i == 0) { /* a clone of the clone: +1 again */
			st_pause(&c);
			st_create(&c, "Full", "vc2", NULL);
		}
		tc_stop(&c);
		if (pager > 0)
			st_pager_stop(pager);
		fprintf(stderr, "load %zu (%s): counters 1, one notification\n", i, how[i]);
	}
	check_devs_record("vc2", 1);
	st_load(&t, "vc2", NULL, NULL);
	st_expect_serial(&t, "VCLK disruption=2 generation=2 seq=4 irqs=2\n", 30000);
	s = tc_read_file(t.serial);
	assert_null(strstr(s, "irqs=3"));
	free(s);
	tc_stop(&t);
}

/* An older squib's state file: every section of `from` but the vmclock
 * DEVS record (the memory file is shared by a hard link). */
static int keep_all_but_vmclock(const struct sqb_device *rec, void *arg)
{
	int *dropped = arg;

	if (strcmp(rec->id, "vmclock"))
		return 1;
	++*dropped;
	return 0;
}

static void write_state_without_vmclock(const char *from, const char *to)
{
	int dropped = 0;
	const struct st_rewrite rw = {NULL, keep_all_but_vmclock, &dropped};

	st_rewrite_state(from, to, &rw);
	assert_int_equal(dropped, 1);
}

/* A snapshot from before the device (no record) loads; its guest never
 * knew the page, so squib neither writes it nor raises the line: a
 * snapshot of the clone shows the page as the parent left it. */
static void test_snapshot_without_the_record_loads_untouched(void **state)
{
	uint8_t before[112], after[112];
	struct sqb_tc t;
	char *s;

	(void)state;
	write_state_without_vmclock("vc", "vcold");
	snap_bytes("vc", 0xfe000, before, sizeof(before));
	st_load(&t, "vcold", NULL, NULL);
	st_pause(&t);
	st_create(&t, "Full", "vcold2", NULL);
	s = tc_read_file(t.serial);
	tc_stop(&t);
	assert_null(strstr(s, "irqs=1"));
	free(s);
	snap_bytes("vcold2", 0xfe000, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(le(after + 16, 8), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_load_bumps_the_counters_and_notifies),
	    cmocka_unit_test(test_snapshot_without_the_record_loads_untouched),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
