/* mprotect backend near vm.max_map_count: this process first uses up all
 * but a few hundred of its VMAs (alternating page protections in a private
 * reservation; no sysctl is changed), then scattered writes would need one
 * VMA per dirty page.  The tracker must coarsen its re-grants instead of
 * failing mid-epoch, and still miss nothing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "dirty_harness.h"

#define HEADROOM 1200

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static long map_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Leave about HEADROOM free VMAs; returns the reservation to unmap. */
static void *use_up_vmas(size_t *len)
{
	long limit = read_long("/proc/sys/vm/max_map_count"), have = map_count();
	long pages = limit - have - HEADROOM;
	uint8_t *p;

	assert_true(limit > 0 && have > 0);
	if (pages < 2)
		return NULL;
	*len = (size_t)pages * 4096;
	p = mmap(NULL, *len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p != MAP_FAILED);
	for (long i = 1; i + 1 < pages && map_count() < limit - HEADROOM; i += 2048) {
		for (long j = i; j < i + 2048 && j + 1 < pages; j += 2)
			assert_int_equal(mprotect(p + j * 4096, 4096, PROT_READ), 0);
	}
	fprintf(stderr, "vm.max_map_count=%ld, VMAs in use now %ld\n", limit, map_count());
	return p;
}

static void test_scattered_writes_at_vma_limit(void **state)
{
	struct hx_opts o = {.backend = SQB_DIRTY_MPROTECT,
			    .pages = 16384,
			    .threads = 2,
			    .epochs = 40,
			    .writes = 3000,
			    .kernel = true};
	struct hx_result r;
	size_t len = 0;
	void *hog;

	(void)state;
	hog = use_up_vmas(&len);
	assert_int_equal(hx_run(&r, &o), 0);
	if (hog)
		munmap(hog, len);
	fprintf(stderr,
		"mprotect at VMA limit: epochs=%llu written=%llu missed=%llu over=%llu "
		"faults=%llu coarsened=%llu\n",
		(unsigned long long)r.epochs, (unsigned long long)r.written,
		(unsigned long long)r.misses, (unsigned long long)r.over,
		(unsigned long long)r.stats.faults, (unsigned long long)r.stats.coarsened);
	assert_int_equal(r.epochs, o.epochs);
	assert_true(r.stats.coarsened > 0); /* the limit was really hit */
	assert_int_equal(r.misses, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scattered_writes_at_vma_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
