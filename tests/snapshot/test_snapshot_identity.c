/* Clone identity across snapshot loads (issue 14): the VM Generation ID a
 * guest finds through its DSDT (guests/vmgenid.c, reading it as Microsoft's
 * spec says) is new and non-zero in every clone, the guest gets the
 * notification, the new ID is in the next Diff, and the DEVS record matches
 * format.md [F-125]; clock_realtime moves kvmclock by the dormant gap. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

#define NCLONES 4

/* The last "GENID 0x<hi> 0x<lo> irqs=<n>" line with irqs=want_irqs, as
 * 16 bytes in memory order (lo first, little-endian). */
static int last_genid(const char *serial, int want_irqs, uint8_t id[16])
{
	const char *p = serial, *hit = NULL;
	char tail[32];
	unsigned long long hi, lo;

	snprintf(tail, sizeof(tail), " irqs=%d\n", want_irqs);
	while ((p = strstr(p, "GENID "))) {
		const char *eol = strchr(p, '\n');

		if (eol && eol - p > 10 && !strncmp(eol - strlen(tail) + 1, tail, strlen(tail)))
			hit = p;
		p += 6;
	}
	if (!hit || sscanf(hit, "GENID 0x%llx 0x%llx", &hi, &lo) != 2)
		return -1;
	for (int i = 0; i < 8; i++) {
		id[i] = (uint8_t)(lo >> (8 * i));
		id[8 + i] = (uint8_t)(hi >> (8 * i));
	}
	return 0;
}

static int is_zero(const uint8_t id[16])
{
	for (int i = 0; i < 16; i++)
		if (id[i])
			return 0;
	return 1;
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

/* [F-125] known answer: DEVS type 4, id "vmgenid", at the ID's address with
 * the notification's GSI; state = u32 16, u32 0, the 16 ID bytes. */
static void check_devs_record(const char *name, const uint8_t id[16])
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *s = NULL;
	int found = 0;

	oo.no_external = 1;
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, st_path(name, ".state"), &oo, NULL), 0);
	for (unsigned int k = 0; k < sqb_snap_device_count(s); k++) {
		struct sqb_device rec;
		void *backing = NULL;

		assert_int_equal(sqb_snap_device(s, k, &rec, &backing, NULL), 0);
		if (!strcmp(rec.id, "vmgenid")) {
			static const uint8_t head[8] = {16, 0, 0, 0, 0, 0, 0, 0};

			found++;
			assert_int_equal(rec.type, 4);
			assert_int_equal(rec.version, 1);
			assert_int_equal(rec.bus_addr, 0xff000);
			assert_int_equal(rec.irq, 23);
			assert_int_equal(rec.state_len, 24);
			assert_memory_equal(rec.state, head, 8);
			assert_memory_equal(rec.state + 8, id, 16);
		}
		free(backing);
	}
	sqb_snap_free(s);
	assert_int_equal(found, 1);
}

static void test_every_clone_gets_a_new_generation_id(void **state)
{
	static const char *const how[NCLONES] = {"mmap", "eager", "lazy", "uffd"};
	uint8_t boot_id[16], ids[NCLONES][16], mem[16];
	struct sqb_tc t;
	char *s;

	(void)state;
	st_boot(&t, "vmgenid.elf", "", 1, 16, 0);
	st_expect_serial(&t, "VMGENID addr=0x00000000000ff000 gsi=23\n", 30000);
	st_expect_serial(&t, "irqs=0\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "vg", NULL);
	s = tc_read_file(t.serial);
	assert_int_equal(last_genid(s, 0, boot_id), 0);
	free(s);
	tc_stop(&t);
	assert_false(is_zero(boot_id));
	snap_bytes("vg", 0xff000, mem, 16); /* the guest read what memory holds */
	assert_memory_equal(mem, boot_id, 16);
	check_devs_record("vg", boot_id);

	for (int i = 0; i < NCLONES; i++) {
		struct sqb_tc c;
		char sock[200];
		pid_t pager = -1;

		if (!strcmp(how[i], "uffd"))
			pager = st_pager_start("vg", NULL, sock, sizeof(sock));
		st_load(&c, "vg", pager > 0 ? NULL : how[i], pager > 0 ? sock : NULL);
		st_expect_serial(&c, "irqs=1\n", 30000);
		s = tc_read_file(c.serial);
		assert_int_equal(last_genid(s, 1, ids[i]), 0);
		assert_null(strstr(s, "irqs=2")); /* one notification per load */
		free(s);
		tc_stop(&c);
		if (pager > 0)
			st_pager_stop(pager);
		assert_false(is_zero(ids[i]));
		assert_memory_not_equal(ids[i], boot_id, 16);
		for (int j = 0; j < i; j++)
			assert_memory_not_equal(ids[i], ids[j], 16);
		fprintf(stderr, "clone %d (%s): new generation ID, notified once\n", i, how[i]);
	}
}

/* The VMM's write of the new ID goes through the accessor: a Diff taken
 * after the load holds the clone's ID, not its parent's. */
static void test_new_id_is_in_the_next_diff(void **state)
{
	uint8_t boot_id[16], clone_id[16], mem[16];
	struct sqb_tc t;
	char *s;

	(void)state;
	st_boot(&t, "vmgenid.elf", "", 1, 16, 1);
	st_expect_serial(&t, "irqs=0\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "vgf", NULL);
	s = tc_read_file(t.serial);
	assert_int_equal(last_genid(s, 0, boot_id), 0);
	free(s);
	tc_stop(&t);

	st_load_ex(&t, "vgf", NULL, NULL, "\"track_dirty_pages\":true");
	st_expect_serial(&t, "irqs=1\n", 30000);
	s = tc_read_file(t.serial);
	assert_int_equal(last_genid(s, 1, clone_id), 0);
	free(s);
	st_pause(&t);
	st_create(&t, "Diff", "vgd", NULL);
	tc_stop(&t);
	snap_bytes("vgd", 0xff000, mem, 16);
	assert_memory_equal(mem, clone_id, 16);
	assert_memory_not_equal(mem, boot_id, 16);
	check_devs_record("vgd", clone_id);
}

/* Guest kvmclock from the last print before the snapshot to the first
 * after a load (with or without clock_realtime) of snapshot "rt". */
static long long clock_step_ms(const char *extra, const char *s1)
{
	struct sqb_tc t;
	long long before = st_last_num(s1, "CLOCK ns="), after;
	char *s2;

	st_load_ex(&t, "rt", NULL, NULL, extra);
	st_expect_serial(&t, "CLOCK ns=", 30000);
	after = st_first_num(&t, "CLOCK ns=", 30000);
	s2 = tc_read_file(t.serial);
	tc_stop(&t);
	assert_null(strstr(s2, "BACKWARDS"));
	free(s2);
	assert_true(before > 0 && after >= before);
	return (after - before) / 1000000;
}

/* Firecracker's clock_realtime: a clone loaded after the snapshot slept
 * on disk sees kvmclock moved on by (at least) the dormant gap; without
 * it the clock resumes where it stopped, as after a pause. */
static void test_clock_realtime_moves_kvmclock_by_the_gap(void **state)
{
	struct sqb_tc t;
	struct timespec a, b;
	long long gap_ms, with_rt, without;
	char *s1;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=2 period=20000000", 1, 16, 0);
	st_expect_serial(&t, "CLOCK ns=", 30000);
	usleep(100000);
	st_pause(&t);
	clock_gettime(CLOCK_MONOTONIC, &a);
	st_create(&t, "Full", "rt", NULL);
	s1 = tc_read_file(t.serial);
	tc_stop(&t);
	usleep(2000000); /* the snapshot sits on disk */
	with_rt = clock_step_ms("\"clock_realtime\":true", s1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	gap_ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	without = clock_step_ms("\"clock_realtime\":false", s1);
	fprintf(
	    stderr,
	    "clock_realtime: guest kvmclock +%lld ms across a %lld ms gap (without: +%lld ms)\n",
	    with_rt, gap_ms, without);
	assert_true(with_rt >= 1900);	       /* the 2 s on disk are in it */
	assert_true(with_rt <= gap_ms + 2000); /* and not much more */
	assert_true(without < 1500);	       /* the default still resumes as paused */
	free(s1);
}

/* An older squib's state file: the same pair (uuid, companion), but the
 * KVM_CLOCK record without a realtime (bit 2 of flags clear, realtime 0),
 * as written before [F-126].  The memory file is shared by a hard link. */
static int clear_realtime(struct sqb_snap *s, unsigned int i, const struct sqb_section_info *sec,
			  struct sqb_snap_writer *w, void *arg)
{
	struct sqb_record *recs = NULL;
	unsigned int n = 0;
	void *data = NULL;
	int *patched = arg;

	(void)i;
	if (sec->type != SQB_SEC_INTC)
		return 0;
	assert_int_equal(sqb_snap_records(s, SQB_SEC_INTC, 0, &recs, &n, &data, NULL), 0);
	for (unsigned int k = 0; k < n; k++) {
		uint8_t *c = (uint8_t *)recs[k].data;

		if (recs[k].tag != 0x0305) /* KVM_CLOCK: clock, flags, rsvd, realtime */
			continue;
		assert_true(c[8] & 4); /* this squib records it */
		c[8] &= (uint8_t)~4;
		memset(c + 16, 0, 8);
		++*patched;
	}
	assert_int_equal(sqb_writer_add_records(w, SQB_SEC_INTC, 0, recs, n), 0);
	free(recs);
	free(data);
	return 1;
}

static void write_old_state(const char *from, const char *to)
{
	int patched = 0;
	const struct st_rewrite rw = {clear_realtime, NULL, &patched};

	st_rewrite_state(from, to, &rw);
	assert_int_equal(patched, 1);
}

/* Firecracker's rule for a state without realtime: clock_realtime is a
 * clear 400 (the load without it still works). */
static void test_clock_realtime_refused_for_an_older_snapshot(void **state)
{
	struct sqb_tc t;
	char body[1024];
	const char *r;

	(void)state;
	write_old_state("rt", "rtold");
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true,\"clock_realtime\":true}",
		 st_path("rtold", ".state"), st_path("rtold", ".mem"));
	r = st_req(&t, "PUT", "/snapshot/load", body, 400);
	fprintf(stderr, "older snapshot + clock_realtime: %s\n", r);
	assert_non_null(strstr(r, "KVM_CLOCK"));
	assert_non_null(strstr(r, "clock_realtime"));
	tc_stop(&t);
	st_load(&t, "rtold", NULL, NULL);
	st_expect_serial(&t, "CLOCK ns=", 30000);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_clone_gets_a_new_generation_id),
	    cmocka_unit_test(test_new_id_is_in_the_next_diff),
	    cmocka_unit_test(test_clock_realtime_moves_kvmclock_by_the_gap),
	    cmocka_unit_test(test_clock_realtime_refused_for_an_older_snapshot),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
