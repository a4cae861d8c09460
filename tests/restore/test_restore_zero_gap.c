/* mmap restore of chains in which an upper layer zeroes pages that lie
 * between pages it left to its parent (docs/format.md [F-43]: a page that
 * became zero is a ZERO extent of the diff; [F-26]: only a file's own gaps are
 * filler).  Written from the format, not from restore_mmap.c: every page must
 * read as the chain says, with and without checksum verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "rs_test_util.h"

#define NPAGES 512u /* 2 MiB: RAW runs of the Full span many 64 KiB blocks */
#define SIZE   ((uint64_t)NPAGES * 4096)

static char tmpdir[64];

static void set_bit(uint64_t *d, unsigned int p)
{
	d[p / 64] |= 1ull << (p % 64);
}

static void write_layer(const char *path, const sqb_snap *parent, const uint8_t *mem,
			const uint64_t *dirty)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;

	o.codec = SQB_CODEC_NONE; /* RAW extents: what mmap maps */
	o.parent = parent;
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, SIZE, mem, dirty), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
}

static sqb_snap *open_layer(const char *path)
{
	sqb_snap *s = NULL;

	assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
	return s;
}

/* Every page of the restored memory equals want, for each way to map it. */
static void check_restores(sqb_snap *top, const uint8_t *want)
{
	static const unsigned int flags[] = {0, SQB_RESTORE_TRUST_RAW};

	for (int i = 0; i < 2; i++) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m;
		struct sqb_diag d = {0};
		sqb_restore *rs = NULL;
		int err;

		o.strategy = SQB_RESTORE_MMAP;
		o.flags = flags[i];
		err = sqb_restore_start(&rs, top, &o, &d);
		if (err)
			fail_msg("mmap restore (flags 0x%x): %s: %s at 0x%llx: %s", flags[i],
				 sqb_strerror(err), d.section, (unsigned long long)d.offset,
				 d.reason);
		assert_int_equal(sqb_restore_mem(rs, 0, &m), 0);
		for (unsigned int p = 0; p < NPAGES; p++)
			if (memcmp((uint8_t *)m.host + (uint64_t)p * 4096,
				   want + (uint64_t)p * 4096, 4096))
				fail_msg("flags 0x%x: page %u differs from the chain's bytes",
					 flags[i], p);
		sqb_restore_free(rs);
	}
}

static uint8_t *data_mem(uint64_t seed)
{
	uint8_t *m = malloc(SIZE);
	uint64_t s = seed;

	assert_non_null(m);
	for (uint64_t i = 0; i < SIZE; i += 8) {
		uint64_t v = sqbt_rand(&s) | 1; /* never a zero page */
		memcpy(m + i, &v, 8);
	}
	return m;
}

/* D1 zeroes single pages and a run inside the Full's RAW data; the pages
 * around them stay the Full's. */
static void test_diff_zero_between_parent_pages(void **state)
{
	uint8_t *mem = data_mem(11);
	uint64_t dirty[NPAGES / 64] = {0};
	char full[128], d1[128];
	sqb_snap *base, *top;

	(void)state;
	snprintf(full, sizeof(full), "%s/zg-full.sqb", tmpdir);
	snprintf(d1, sizeof(d1), "%s/zg-d1.sqb", tmpdir);
	write_layer(full, NULL, mem, NULL);
	base = open_layer(full);
	for (unsigned int p = 5; p < NPAGES; p += 37) { /* scattered single pages */
		memset(mem + (uint64_t)p * 4096, 0, 4096);
		set_bit(dirty, p);
	}
	for (unsigned int p = 300; p < 320; p++) { /* a run crossing a 64 KiB block */
		memset(mem + (uint64_t)p * 4096, 0, 4096);
		set_bit(dirty, p);
	}
	write_layer(d1, base, mem, dirty);
	sqb_snap_free(base);
	top = open_layer(d1);
	/* the writer's side is sound: full verification of the chain passes */
	assert_int_equal(sqb_snap_verify(top, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	check_restores(top, mem);
	sqb_snap_free(top);
	free(mem);
}

/* The shape of the test-host failure: D1 D2 D3 over a Full, each taking a
 * few data pages and zeroing others, so the top layer's ZERO extents sit
 * between PARENT pages that resolve two or three layers down. */
static void test_three_deep_chain_zeroes(void **state)
{
	uint8_t *mem = data_mem(23);
	char path[4][128];
	sqb_snap *layer = NULL;

	(void)state;
	for (int i = 0; i < 4; i++) {
		uint64_t dirty[NPAGES / 64] = {0};

		snprintf(path[i], sizeof(path[i]), "%s/zg3-%d.sqb", tmpdir, i);
		if (i) {
			uint64_t s = 100 + (uint64_t)i;

			for (unsigned int p = (unsigned int)i * 3; p < NPAGES; p += 29) {
				if (sqbt_rand(&s) & 1) {
					memset(mem + (uint64_t)p * 4096, 0, 4096);
				} else {
					uint64_t v = sqbt_rand(&s) | 1;
					memcpy(mem + (uint64_t)p * 4096, &v, 8);
				}
				set_bit(dirty, p);
			}
			/* a page zeroed below comes back with data above */
			if (i == 3)
				for (unsigned int p = 3; p < NPAGES; p += 29)
					if (!(dirty[p / 64] >> (p % 64) & 1)) {
						memset(mem + (uint64_t)p * 4096, 0x5a, 4096);
						set_bit(dirty, p);
					}
		}
		write_layer(path[i], layer, mem, i ? dirty : NULL);
		sqb_snap_free(layer);
		layer = open_layer(path[i]);
	}
	assert_int_equal(sqb_snap_verify(layer, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	check_restores(layer, mem);
	sqb_snap_free(layer);
	free(mem);
}

/* A Full's own ZERO gap between two RAW runs is filler: it is still mapped
 * in one run, and the restore still reads as zero there. */
static void test_full_own_zero_gap(void **state)
{
	uint8_t *mem = data_mem(31);
	char full[128];
	sqb_snap *s;

	(void)state;
	snprintf(full, sizeof(full), "%s/zg-own.sqb", tmpdir);
	memset(mem + 40 * 4096, 0, 3 * 4096);
	write_layer(full, NULL, mem, NULL);
	s = open_layer(full);
	check_restores(s, mem);
	sqb_snap_free(s);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_diff_zero_between_parent_pages),
	    cmocka_unit_test(test_three_deep_chain_zeroes),
	    cmocka_unit_test(test_full_own_zero_gap),
	};
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sqb-zgap-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd)) {
	}
	return rc;
}
