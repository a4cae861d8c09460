/* Fault injection (common/io.h SQB_FAULT) through the writer, merge, repack
 * and raw export: on ENOSPC at any point, a failed fsync or rename, the
 * target keeps its previous bytes and no temporary file is left; short
 * writes and EINTR still produce a correct file (docs/format.md [F-70], [F-71]).
 *
 * SQB_FAULT_AFTER counts bytes written by the whole process, so every
 * library call that writes runs in a forked child; the parent only compares. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "squib/snapfmt.h"
#include "snap_patch.h"

#define MEM_SIZE (1u << 20)
#define R0_SIZE	 (512u << 10) /* a multiple of 64 pages: one dirty bitmap */

static char tmpdir[64];
static uint8_t *mem0, *mem1; /* base and newest guest memory */
#define BIG_SIZE (20u << 20) /* several of the writer's 8 MiB batches */
static uint8_t *big;

static const char *tpath(const char *name)
{
	static char p[4][128];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

enum op { OP_WRITE, OP_MERGE, OP_REPACK, OP_EXPORT, OP_SETUP, OP_WRITE_BIG };

/* One region of several batches: the writer's I/O thread writes one batch
 * while the next is compressed, and must hand its errors back. */
static int write_big(const char *path)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	o.codec = SQB_CODEC_LZ4;
	o.dedup = 1;
	if ((err = sqb_writer_open(&w, path, &o)))
		return err;
	err = sqb_writer_add_memory(w, 0, BIG_SIZE, big, NULL);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

static int write_mem(const char *path, const uint8_t *m, const sqb_snap *parent,
		     enum sqb_codec codec)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	uint64_t *dirty = NULL;
	sqb_snap_writer *w;
	int err;

	o.codec = codec;
	o.dedup = 1;
	o.parent = parent;
	if (parent) { /* every page whose content changed since mem0 */
		dirty = calloc(MEM_SIZE / 4096 / 64, 8);
		if (!dirty)
			return -ENOMEM;
		for (uint32_t p = 0; p < MEM_SIZE / 4096; p++)
			if (memcmp(mem0 + (size_t)p * 4096, m + (size_t)p * 4096, 4096))
				dirty[p / 64] |= 1ull << (p % 64);
	}
	if ((err = sqb_writer_open(&w, path, &o)))
		goto out;
	err = sqb_writer_add_memory(w, 0, R0_SIZE, m, dirty);
	if (!err)
		err = sqb_writer_add_memory(w, 1ull << 32, MEM_SIZE - R0_SIZE, m + R0_SIZE,
					    dirty ? dirty + R0_SIZE / 4096 / 64 : NULL);
	if (!err)
		err = sqbt_add_state(w, SQB_ARCH_X86_64);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
out:
	free(dirty);
	return err;
}

static int do_op(enum op op, const char *target)
{
	sqb_snap *s = NULL;
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	int err;

	switch (op) {
	case OP_SETUP: /* base (mem0) and a diff (mem1) over it, both zstd */
		err = write_mem(tpath("base.sqb"), mem0, NULL, SQB_CODEC_ZSTD);
		if (!err)
			err = sqb_snap_open(&s, tpath("base.sqb"), NULL, NULL);
		if (!err)
			err = write_mem(tpath("diff.sqb"), mem1, s, SQB_CODEC_ZSTD);
		if (!err) /* the "previous content" every target starts with */
			err = write_mem(tpath("previous.sqb"), mem0, NULL, SQB_CODEC_LZ4);
		break;
	case OP_WRITE:
		return write_mem(target, mem1, NULL, SQB_CODEC_LZ4);
	case OP_WRITE_BIG:
		return write_big(target);
	case OP_MERGE:
	case OP_REPACK:
	case OP_EXPORT:
		if ((err = sqb_snap_open(&s, tpath("diff.sqb"), NULL, NULL)))
			return err;
		o.codec = SQB_CODEC_NONE;
		if (op == OP_MERGE)
			err = sqb_snap_merge(target, s, &o, 0);
		else if (op == OP_REPACK)
			err = sqb_snap_repack(target, s, &o);
		else
			err = sqb_snap_export_raw(s, target, -1);
		break;
	}
	sqb_snap_free(s);
	return err;
}

/* Run op in a child with SQB_FAULT=fault (and SQB_FAULT_AFTER=after). */
static int run_child(enum op op, const char *target, const char *fault, long long after)
{
	int pfd[2], err = -EPROTO, status;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char a[32];

		close(pfd[0]);
		if (fault)
			setenv("SQB_FAULT", fault, 1);
		snprintf(a, sizeof(a), "%lld", after);
		setenv("SQB_FAULT_AFTER", a, 1);
		err = do_op(op, target);
		_exit(write(pfd[1], &err, sizeof(err)) == sizeof(err) ? 0 : 1);
	}
	close(pfd[1]);
	if (read(pfd[0], &err, sizeof(err)) != sizeof(err))
		err = -EPROTO;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return err;
}

static int no_temp_files(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	int clean = 1;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".tmp."))
			clean = 0;
	closedir(d);
	return clean;
}

/* The target after a successful op holds exactly the newest state. */
static void check_result(enum op op, const char *target)
{
	uint8_t *buf = malloc(MEM_SIZE);
	size_t n;
	sqb_snap *s;

	assert_non_null(buf);
	if (op == OP_EXPORT) {
		uint8_t *f = sqbt_load(target, &n);

		assert_non_null(f);
		assert_int_equal(n, MEM_SIZE);
		assert_memory_equal(f, mem1, MEM_SIZE);
		free(f);
	} else {
		assert_int_equal(sqb_snap_open(&s, target, NULL, NULL), 0);
		assert_int_equal(sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
		assert_int_equal(sqb_snap_read(s, 0, buf, R0_SIZE, NULL), 0);
		assert_int_equal(
		    sqb_snap_read(s, 1ull << 32, buf + R0_SIZE, MEM_SIZE - R0_SIZE, NULL), 0);
		assert_memory_equal(buf, mem1, MEM_SIZE);
		sqb_snap_free(s);
	}
	free(buf);
}

static int setup(void **state)
{
	uint64_t s = 77;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sqb-fault-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	mem0 = sqbt_pattern_mem(MEM_SIZE, 4096, 11);
	mem1 = malloc(MEM_SIZE);
	big = sqbt_pattern_mem(BIG_SIZE, 4096, 12);
	if (!mem0 || !mem1 || !big)
		return -1;
	memcpy(mem1, mem0, MEM_SIZE);
	sqbt_mutate(mem1, MEM_SIZE, 4096, 1, NULL);
	for (int i = 0; i < 16; i++) /* and some pages in region 1 */
		sqbt_fill_page(mem1 + R0_SIZE + (size_t)(sqbt_rand(&s) % 128) * 4096, 4096, 2, &s);
	return run_child(OP_SETUP, NULL, NULL, 0) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	free(mem0);
	free(mem1);
	free(big);
	if (getenv("SQB_TEST_KEEP"))
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static const char *const op_names[] = {"write", "merge", "repack", "export"};

/* One run with ENOSPC after `after` bytes; checks the invariants and
 * returns 1 if the op succeeded (and wrote the right result). */
static int enospc_once(enum op op, long long after, const uint8_t *prev, size_t prev_n)
{
	const char *target = tpath("target");
	size_t out_n;
	uint8_t *cur;
	int err;

	unlink(target);
	if (prev)
		assert_int_equal(sqbt_save(target, prev, prev_n), 0);
	err = run_child(op, target, "enospc", after);
	assert_true(no_temp_files());
	if (err == 0) {
		check_result(op, target);
		return 1;
	}
	if (err != -ENOSPC)
		fail_msg("%s: ENOSPC after %lld gave %s", op_names[op], after, sqb_strerror(err));
	cur = sqbt_load(target, &out_n);
	if (prev) {
		assert_non_null(cur);
		assert_int_equal(out_n, prev_n);
		assert_memory_equal(cur, prev, prev_n);
	} else {
		assert_null(cur); /* no previous file: none appears */
	}
	free(cur);
	return 0;
}

/* ENOSPC after N bytes: find the least N that lets the op finish, then
 * fail it at ~30 points before that (the first bytes, every 1/24th, the
 * last byte).  Every failure leaves the previous target and no temporary. */
static void enospc_sweep(enum op op, int target_exists)
{
	size_t prev_n, out_n;
	uint8_t *prev = sqbt_load(tpath("previous.sqb"), &prev_n), *cur;
	const uint8_t *p;
	long long lo = 0, hi;

	assert_non_null(prev);
	p = target_exists ? prev : NULL;
	unlink(tpath("target"));
	assert_int_equal(run_child(op, tpath("target"), NULL, 0), 0);
	cur = sqbt_load(tpath("target"), &out_n);
	assert_non_null(cur);
	free(cur);
	hi = (long long)out_n + 4096;
	assert_int_equal(enospc_once(op, hi, p, prev_n), 1);
	while (lo < hi) { /* least N that succeeds; runs below it fail */
		long long mid = lo + (hi - lo) / 2;

		if (enospc_once(op, mid, p, prev_n))
			hi = mid;
		else
			lo = mid + 1;
	}
	assert_true(hi > 4096); /* the op really writes something */
	for (long long after = 0; after < hi; after = after < 600 ? after * 3 + 1 : after + hi / 24)
		assert_int_equal(enospc_once(op, after, p, prev_n), 0);
	assert_int_equal(enospc_once(op, hi - 1, p, prev_n), 0);
	free(prev);
}

static void test_enospc_anywhere_keeps_the_target(void **state)
{
	(void)state;
	for (int op = OP_WRITE; op <= OP_EXPORT; op++)
		enospc_sweep(op, 1);
	enospc_sweep(OP_WRITE, 0); /* no previous file: none appears */
	enospc_sweep(OP_EXPORT, 0);
}

/* fsync and rename failures: the previous content survives, no temporary. */
static void test_fsync_and_rename_failures_keep_the_target(void **state)
{
	static const char *const faults[] = {"fsync", "rename", "short_write,fsync",
					     "eintr,rename"};
	const char *target = tpath("target");
	size_t prev_n, n;
	uint8_t *prev = sqbt_load(tpath("previous.sqb"), &prev_n), *cur;

	(void)state;
	assert_non_null(prev);
	for (int op = OP_WRITE; op <= OP_EXPORT; op++) {
		for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
			assert_int_equal(sqbt_save(target, prev, prev_n), 0);
			assert_int_equal(run_child(op, target, faults[f], 0), -EIO);
			assert_true(no_temp_files());
			cur = sqbt_load(target, &n);
			assert_non_null(cur);
			assert_int_equal(n, prev_n);
			assert_memory_equal(cur, prev, prev_n);
			free(cur);
		}
	}
	free(prev);
}

/* Short writes and EINTR are retried: the result is correct and complete. */
static void test_short_writes_and_eintr_still_write_correct_files(void **state)
{
	static const char *const faults[] = {"short_write", "eintr", "short_write,eintr",
					     "short_read,eintr"};
	const char *target = tpath("target");
	size_t prev_n;
	uint8_t *prev = sqbt_load(tpath("previous.sqb"), &prev_n);

	(void)state;
	assert_non_null(prev);
	for (int op = OP_WRITE; op <= OP_EXPORT; op++) {
		for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
			assert_int_equal(sqbt_save(target, prev, prev_n), 0);
			assert_int_equal(run_child(op, target, faults[f], 0), 0);
			assert_true(no_temp_files());
			check_result(op, target);
		}
	}
	free(prev);
}

/* A write failing in the middle of a multi-batch region (ENOSPC on the I/O
 * thread, while the pool encodes the next batch) returns the error, keeps
 * the previous target and leaves no temporary; short writes and EINTR on
 * that thread still give an exact file. */
static void test_multi_batch_write_faults(void **state)
{
	const char *target = tpath("target");
	size_t prev_n, n;
	uint8_t *prev = sqbt_load(tpath("previous.sqb"), &prev_n), *cur, *buf = malloc(BIG_SIZE);
	long long full;
	sqb_snap *s;

	(void)state;
	assert_non_null(prev);
	assert_non_null(buf);
	unlink(target);
	assert_int_equal(run_child(OP_WRITE_BIG, target, NULL, 0), 0);
	cur = sqbt_load(target, &n);
	assert_non_null(cur);
	free(cur);
	full = (long long)n;
	for (int k = 0; k < 8; k++) { /* from the first batch to the directory */
		long long after = full * k / 8 + (k ? 0 : 4096);

		assert_int_equal(sqbt_save(target, prev, prev_n), 0);
		assert_int_equal(run_child(OP_WRITE_BIG, target, "enospc", after), -ENOSPC);
		assert_true(no_temp_files());
		cur = sqbt_load(target, &n);
		assert_non_null(cur);
		assert_int_equal(n, prev_n);
		assert_memory_equal(cur, prev, prev_n);
		free(cur);
	}
	assert_int_equal(run_child(OP_WRITE_BIG, target, "short_write,eintr", 0), 0);
	assert_true(no_temp_files());
	assert_int_equal(sqb_snap_open(&s, target, NULL, NULL), 0);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	assert_int_equal(sqb_snap_read(s, 0, buf, BIG_SIZE, NULL), 0);
	assert_memory_equal(buf, big, BIG_SIZE);
	sqb_snap_free(s);
	free(buf);
	free(prev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_enospc_anywhere_keeps_the_target),
	    cmocka_unit_test(test_fsync_and_rename_failures_keep_the_target),
	    cmocka_unit_test(test_short_writes_and_eintr_still_write_correct_files),
	    cmocka_unit_test(test_multi_batch_write_faults),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
