/* The entropy seed of PUT /snapshot/load (docs/fleet.md "Entropy seed",
 * squib.entropy_seed): the virtio-rng buffer a guest left available at the
 * snapshot -- held there by a rate limiter of one 64-byte bucket with a
 * 100 s refill -- is filled at the load with fresh host bytes, different in
 * every clone, bounded by the seed, before the vCPUs run; without a seed
 * the limiter still holds it.  Test guest: guests/rngseed.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap_test_util.h"

#define RL_ENTROPY "{\"rate_limiter\":{\"bandwidth\":{\"size\":64,\"refill_time\":100000}}}"

static int have_snap, have_norng;

/* Boot rngseed with a held second request of len bytes, snapshot it. */
static void make_snapshot(const char *name, int len)
{
	struct sqb_tc t;
	char body[1024], args[64];

	st_spawn(&t);
	st_req(&t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":64}", 204);
	snprintf(args, sizeof(args), "slot=0 len=%d", len);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/rngseed.elf\",\"boot_args\":\"%s\"}", st_guests,
		 args);
	st_req(&t, "PUT", "/boot-source", body, 204);
	st_req(&t, "PUT", "/entropy", RL_ENTROPY, 204);
	st_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	st_expect_serial(&t, "RSEED read1 len=64\n", 30000);
	st_expect_serial(&t, "RSEED waiting\n", 30000);
	usleep(200 * 1000);
	st_pause(&t);
	st_create(&t, "Full", name, NULL);
	tc_stop(&t);
}

static void ensure_snapshot(void)
{
	if (!have_snap) {
		make_snapshot("seed", 64);
		have_snap = 1;
	}
}

/* "RSEED got len=N HEX nonzero=Z" of a clone, or fail. */
static void clone_got(struct sqb_tc *t, long long *len, char hex[33], int *nonzero)
{
	char *s;
	const char *p;

	st_expect_serial(t, "nonzero=", 10000);
	/* the console writes a byte at a time: "nonzero=" can be there before
	 * its number (seen under ThreadSanitizer); wait for the line's end */
	for (int i = 0;; i++) {
		s = tc_read_file(t->serial);
		assert_non_null(s);
		p = strstr(s, "RSEED got len=");
		assert_non_null(p);
		if (strchr(strstr(p, "nonzero="), '\n') || i == 1000)
			break;
		free(s);
		usleep(10 * 1000);
	}
	assert_int_equal(sscanf(p, "RSEED got len=%lld %32s nonzero=%d", len, hex, nonzero), 3);
	free(s);
}

static void test_each_clone_gets_its_own_seed(void **state)
{
	char hex[2][33];
	long long len;
	int nonzero;

	(void)state;
	ensure_snapshot();
	for (int i = 0; i < 2; i++) {
		struct sqb_tc t;

		st_load_ex(&t, "seed", NULL, NULL, "\"squib\":{\"entropy_seed\":64}");
		clone_got(&t, &len, hex[i], &nonzero);
		assert_int_equal(len, 64);
		assert_int_equal(nonzero, 1);
		tc_stop(&t);
	}
	if (!strcmp(hex[0], hex[1]))
		fail_msg("both clones got the same seed bytes %s", hex[0]);
}

/* The control: the same snapshot without a seed -- the limiter's bucket is
 * empty for ~100 s, so the guest still waits after 2 s. */
static void test_without_a_seed_the_limiter_still_holds_the_buffer(void **state)
{
	struct sqb_tc t;
	char *s;

	(void)state;
	ensure_snapshot();
	st_load(&t, "seed", NULL, NULL);
	usleep(2000 * 1000);
	s = tc_read_file(t.serial);
	if (s && strstr(s, "RSEED got"))
		fail_msg("without a seed the held buffer was filled: %s", s);
	free(s);
	tc_stop(&t);
}

/* entropy_seed bounds the bytes: a 64-byte buffer gets 16. */
static void test_the_seed_is_bounded_by_its_size(void **state)
{
	struct sqb_tc t;
	char hex[33];
	long long len;
	int nonzero;

	(void)state;
	ensure_snapshot();
	st_load_ex(&t, "seed", NULL, NULL, "\"squib\":{\"entropy_seed\":16}");
	clone_got(&t, &len, hex, &nonzero);
	assert_int_equal(len, 16);
	assert_int_equal(nonzero, 1);
	tc_stop(&t);
}

/* resume_vm false: the seed is served while no vCPU runs (the guest
 * prints nothing), and the resumed guest finds its buffer full at once. */
static void test_the_seed_is_served_before_the_vcpus_run(void **state)
{
	struct sqb_tc t;
	char body[1024], *s;

	(void)state;
	ensure_snapshot();
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":false,\"squib\":{\"entropy_seed\":64}}",
		 st_path("seed", ".state"), st_path("seed", ".mem"));
	st_req(&t, "PUT", "/snapshot/load", body, 204);
	usleep(500 * 1000);
	s = tc_read_file(t.serial);
	if (s && strstr(s, "RSEED got"))
		fail_msg("a paused clone ran: %s", s);
	free(s);
	st_resume(&t);
	st_expect_serial(&t, "RSEED got len=64 ", 5000);
	tc_stop(&t);
}

static void test_seed_refusals(void **state)
{
	struct sqb_tc t;
	char body[1024];
	const char *r;

	(void)state;
	ensure_snapshot();
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"squib\":{\"entropy_seed\":65537}}",
		 st_path("seed", ".state"), st_path("seed", ".mem"));
	r = st_req(&t, "PUT", "/snapshot/load", body, 400);
	if (!strstr(r, "0..=65536"))
		fail_msg("65537 bytes: %s", r);
	tc_stop(&t);

	/* a snapshot without an entropy device */
	if (!have_norng) {
		st_boot(&t, "counter.elf", "", 1, 32, 0);
		usleep(300 * 1000);
		st_pause(&t);
		st_create(&t, "Full", "norng", NULL);
		tc_stop(&t);
		have_norng = 1;
	}
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"squib\":{\"entropy_seed\":32}}",
		 st_path("norng", ".state"), st_path("norng", ".mem"));
	r = st_req(&t, "PUT", "/snapshot/load", body, 400);
	if (!strstr(r, "no entropy device"))
		fail_msg("a seed without an entropy device: %s", r);
	/* the failed load leaves squib usable: the same snapshot without a seed */
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"}}",
		 st_path("norng", ".state"), st_path("norng", ".mem"));
	st_req(&t, "PUT", "/snapshot/load", body, 204);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_clone_gets_its_own_seed),
	    cmocka_unit_test(test_without_a_seed_the_limiter_still_holds_the_buffer),
	    cmocka_unit_test(test_the_seed_is_bounded_by_its_size),
	    cmocka_unit_test(test_the_seed_is_served_before_the_vcpus_run),
	    cmocka_unit_test(test_seed_refusals),
	};
	int rc;

	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
