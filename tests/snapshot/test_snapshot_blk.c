/* virtio-blk and snapshot chains on /dev/kvm (guests/blkchain.c): a Full
 * taken while device reads wait on the avail ring (a rate limiter holds
 * them), a mmap load, three Diffs over it in which the guest zeroed isolated
 * pages of a RAW run of the Full (docs/format.md [F-43]: ZERO extents of the
 * Diff between PARENT pages), and loads of the chain with and without
 * checksum verification.  Every file must pass full verification ([F-26]:
 * zero filler), and the guest checks every byte itself: its data area and
 * every device read after each load ([F-101], [F-108]). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

#define DISK_SECTORS 2048
/* 20 requests a second at most: a request waits on the avail ring at every
 * pause, and the limiter's state crosses each snapshot */
#define SLOW_RL "\"rate_limiter\":{\"ops\":{\"size\":2,\"refill_time\":100}}"

static char disk[256];

/* tests/guests/virtioblk.c's pattern, which guests/blkchain.c checks */
static uint8_t disk_pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static void make_disk(void)
{
	size_t n = DISK_SECTORS * 512;
	uint8_t *b = malloc(n);
	int fd;

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = disk_pattern(4, i);
	snprintf(disk, sizeof(disk), "%s/disk.img", st_dir);
	fd = open(disk, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
}

static void boot(struct sqb_tc *t)
{
	char body[1024];

	st_spawn(t);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"data\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
		 "\"is_read_only\":false," SLOW_RL "}",
		 disk);
	st_req(t, "PUT", "/drives/data", body, 204);
	st_req(t, "PUT", "/machine-config",
	       "{\"vcpu_count\":1,\"mem_size_mib\":32,\"track_dirty_pages\":true}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/blkchain.elf\",\"boot_args\":\"seed=4 sectors=64 "
		 "disk_sectors=%d\"}",
		 st_guests, DISK_SECTORS);
	st_req(t, "PUT", "/boot-source", body, 204);
	st_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

static void load(struct sqb_tc *t, const char *name, int verify)
{
	char body[1024];

	st_spawn(t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"track_dirty_pages\":true,\"resume_vm\":true,"
		 "\"squib\":{\"restore\":\"mmap\",\"verify\":%s}}",
		 st_path(name, ".state"), st_path(name, ".mem"), verify ? "true" : "false");
	st_req(t, "PUT", "/snapshot/load", body, 204);
}

/* The guest's device-read count must grow: requests complete after a load. */
static void expect_progress(struct sqb_tc *t)
{
	long long before, after = -1;
	char *s;

	st_input(t, "p");
	st_expect_serial(t, "BLKC PONG", 10000);
	s = tc_read_file(t->serial);
	before = st_last_num(s, "BLKC PONG rounds=");
	free(s);
	for (int i = 0; i < 100 && after <= before; i++) {
		usleep(100000);
		st_input(t, "p");
		usleep(100000);
		s = tc_read_file(t->serial);
		after = st_last_num(s, "BLKC PONG rounds=");
		free(s);
	}
	if (after <= before)
		fail_msg("no device read completed after the load (rounds stay %lld)", before);
}

static void expect_verify(struct sqb_tc *t, int sets)
{
	char want[64];

	snprintf(want, sizeof(want), "BLKC VERIFY ok zeroed_sets=%d\n", sets);
	st_input(t, "v");
	st_expect_serial(t, want, 20000);
}

static void bad_cb(void *ctx, int err, const struct sqb_diag *d)
{
	char buf[400];

	(void)ctx;
	fprintf(stderr, "verify: %s: %s\n", sqb_strerror(err),
		sqb_diag_format(d, buf, sizeof(buf)));
}

/* Full verification of a memory file and its parents ([F-80]). */
static void verify_file(const char *name)
{
	sqb_snap *s = NULL;
	struct sqb_diag d = {0};
	int err = sqb_snap_open(&s, st_path(name, ".mem"), NULL, &d);

	if (err)
		fail_msg("open %s.mem: %s: %s", name, sqb_strerror(err), d.reason);
	err = sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, bad_cb, NULL);
	if (err)
		fail_msg("%s.mem and its parents fail full verification: %s", name,
			 sqb_strerror(err));
	sqb_snap_free(s);
}

static void test_diff_chain_over_loaded_full_with_requests_waiting(void **state)
{
	struct sqb_tc t;
	static const char *const diffs[] = {"d1", "d2", "d3"};

	(void)state;
	make_disk();
	boot(&t);
	st_expect_serial(&t, "BLKC FILLED\n", 30000);
	expect_progress(&t);
	st_pause(&t);
	st_create(&t, "Full", "full", NULL);
	tc_stop(&t); /* SIGKILL */
	verify_file("full");

	load(&t, "full", 1);
	expect_progress(&t);
	expect_verify(&t, 0);
	for (int i = 0; i < 3; i++) {
		char want[32];

		st_input(&t, "z");
		snprintf(want, sizeof(want), "BLKC ZEROED %d\n", i + 1);
		st_expect_serial(&t, want, 10000);
		st_pause(&t);
		st_create(&t, "Diff", diffs[i], NULL);
		st_resume(&t);
		expect_progress(&t);
	}
	tc_stop(&t);
	for (int i = 0; i < 3; i++)
		verify_file(diffs[i]);

	/* with checksums read (the chain was refused: "non-zero filler under a
	 * ZERO gap"), then trusted (the parent's bytes were mapped over the
	 * zeroed pages) */
	for (int verify = 1; verify >= 0; verify--) {
		load(&t, "d3", verify);
		expect_verify(&t, 3);
		expect_progress(&t);
		tc_stop(&t);
	}
	/* the middle of the chain too */
	load(&t, "d1", 1);
	expect_verify(&t, 1);
	expect_progress(&t);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_diff_chain_over_loaded_full_with_requests_waiting),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests_name("snapshot_blk", tests, NULL, NULL);
	st_cleanup();
	return rc;
}
