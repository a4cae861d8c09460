/* Exactness of one dirty backend (argv[1]) over many epochs: several writer
 * threads, collects racing the writes, kernel writes, marked alias writes,
 * a tiny KVM guest, coarse granules and fork.  Zero misses is asserted;
 * over-reports are printed.  Exits 77 if the backend cannot run here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dirty_harness.h"

static enum sqb_dirty_backend backend;
static unsigned epochs = 300;

static void run(const char *what, struct hx_opts *o)
{
	struct hx_result r;
	int err;

	o->backend = backend;
	o->epochs = o->epochs ? o->epochs : epochs;
	err = hx_run(&r, o);
	if (err == -ENOTSUP) {
		fprintf(stderr, "skip %s: %s\n", what, r.skip);
		skip();
	}
	fprintf(stderr,
		"%s %s granule=%llu epochs=%llu collects=%llu (racing %llu) writes: host=%llu "
		"kernel=%llu alias+mark=%llu guest=%llu child=%llu | written=%llu missed=%llu "
		"over=%llu faults=%llu coarsened=%llu\n",
		sqb_dirty_backend_name(backend), what,
		(unsigned long long)(o->granule ? o->granule : 4096), (unsigned long long)r.epochs,
		(unsigned long long)r.collects, (unsigned long long)r.racing_collects,
		(unsigned long long)r.host_writes, (unsigned long long)r.kernel_writes,
		(unsigned long long)r.alias_writes, (unsigned long long)r.guest_writes,
		(unsigned long long)r.child_writes, (unsigned long long)r.written,
		(unsigned long long)r.misses, (unsigned long long)r.over,
		(unsigned long long)r.stats.faults, (unsigned long long)r.stats.coarsened);
	assert_int_equal(err, 0);
	assert_int_equal(r.epochs, o->epochs);
	assert_true(r.written > 0); /* the harness really wrote */
	assert_int_equal(r.misses, 0);
}

static void test_threads_kernel_alias_guest_4k(void **state)
{
	struct hx_opts o = {
	    .pages = 1024, .threads = 3, .writes = 48, .kernel = true, .guest = true};
	(void)state;
	run("threads+kernel+alias+guest", &o);
}

static void test_granule_16k(void **state)
{
	struct hx_opts o = {.granule = 16384,
			    .pages = 1024,
			    .threads = 2,
			    .writes = 48,
			    .kernel = true,
			    .guest = true};
	(void)state;
	o.epochs = epochs / 4 + 1;
	run("16k", &o);
}

static void test_granule_2m(void **state)
{
	struct hx_opts o = {.granule = 2u << 20,
			    .pages = 2048,
			    .threads = 2,
			    .writes = 48,
			    .kernel = true,
			    .guest = true};
	(void)state;
	o.epochs = epochs / 4 + 1;
	run("2m", &o);
}

static void test_anon_with_fork(void **state)
{
	struct hx_opts o = {.anon = true,
			    .pages = 1024,
			    .threads = 2,
			    .writes = 48,
			    .kernel = true,
			    .fork_every = 8};
	(void)state;
	if (backend == SQB_DIRTY_KVM) {
		/* kvm tracks a memslot, not anonymous memory of a forking process */
		fprintf(stderr, "skip anon+fork: the kvm backend tracks guest memslots only\n");
		skip();
	}
	o.epochs = epochs / 4 + 1;
	run("anon+fork", &o);
}

/* The harness must be able to fail: writes through the alias mapping that
 * are not marked are invisible to every backend and must count as misses. */
static void test_harness_detects_unmarked_writes(void **state)
{
	struct hx_opts o = {.pages = 256,
			    .threads = 2,
			    .writes = 48,
			    .unmarked = true,
			    .epochs = 20,
			    .backend = backend};
	struct hx_result r;

	(void)state;
	assert_int_equal(hx_run(&r, &o), 0);
	fprintf(stderr, "%s negative control: missed=%llu (expected > 0)\n",
		sqb_dirty_backend_name(backend), (unsigned long long)r.misses);
	assert_true(r.misses > 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_threads_kernel_alias_guest_4k),
	    cmocka_unit_test(test_granule_16k),
	    cmocka_unit_test(test_granule_2m),
	    cmocka_unit_test(test_anon_with_fork),
	    cmocka_unit_test(test_harness_detects_unmarked_writes),
	};
	unsigned caps;

	if (argc < 2) {
		fprintf(stderr, "usage: %s kvm|uffd-wp|uffd-async|mprotect|exit [epochs]\n",
			argv[0]);
		return 2;
	}
	for (int b = 1; b < SQB_DIRTY_BACKEND_MAX_; b++)
		if (strcmp(argv[1], sqb_dirty_backend_name(b)) == 0)
			backend = b;
	if (backend == SQB_DIRTY_AUTO)
		return 2;
	if (argc > 2)
		epochs = (unsigned)atoi(argv[2]);
	if (sqb_dirty_caps(&caps, backend) != 0) {
		fprintf(stderr, "skip: backend %s cannot run on this host\n", argv[1]);
		return 77;
	}
	return cmocka_run_group_tests_name(argv[1], tests, NULL, NULL);
}
