/* Cross-check against the offline tool: for every strategy, on a full and a
 * 3-deep diff chain, the restored memory equals `squib-snap extract --memory`
 * (regions concatenated in order), byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "rs_test_util.h"

#define S0 (2u << 20)
#define S1 ((1u << 20) + 4096)

static const char *snap_tool;
static char tmpdir[64];

static uint8_t *extract(const char *snap)
{
	char out[200];
	uint8_t *buf = malloc(S0 + S1);
	pid_t pid;
	int status, fd;

	snprintf(out, sizeof(out), "%s/extract.raw", tmpdir);
	unlink(out);
	pid = fork();
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execl(snap_tool, snap_tool, "extract", "--memory", out, snap, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return NULL;
	fd = open(out, O_RDONLY);
	if (fd < 0 || read(fd, buf, S0 + S1) != (ssize_t)(S0 + S1))
		return NULL;
	close(fd);
	return buf;
}

static void check(enum sqb_codec codec, int depth)
{
	static const enum sqb_restore_strategy sts[] = {SQB_RESTORE_EAGER, SQB_RESTORE_MMAP,
							SQB_RESTORE_LAZY, SQB_RESTORE_LAZY_SIGNAL};
	struct rt_snap t;
	uint8_t *raw;
	int uffd = rt_uffd_usable();

	assert_int_equal(rt_make(&t, tmpdir, "x", codec, depth, S0, S1, 41), 0);
	raw = extract(t.path[depth]);
	assert_non_null(raw);
	for (int i = 0; i < 4; i++) {
		struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
		struct sqb_restore_mem m0, m1;
		sqb_restore *rs;

		if (sts[i] == SQB_RESTORE_LAZY && !uffd)
			continue;
		o.strategy = sts[i];
		assert_int_equal(sqb_restore_start(&rs, t.s, &o, NULL), 0);
		assert_int_equal(sqb_restore_wait(rs, 20000), 0);
		assert_int_equal(sqb_restore_mem(rs, 0, &m0), 0);
		assert_int_equal(sqb_restore_mem(rs, 1, &m1), 0);
		assert_memory_equal(m0.host, raw, S0);
		assert_memory_equal(m1.host, raw + S0, S1);
		sqb_restore_free(rs);
	}
	free(raw);
	rt_free(&t);
}

static void test_full_none_matches_extract(void **s)
{
	(void)s;
	check(SQB_CODEC_NONE, 0);
}

static void test_chain_zstd_matches_extract(void **s)
{
	(void)s;
	check(SQB_CODEC_ZSTD, 3);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/sqb-rx-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_none_matches_extract),
	    cmocka_unit_test(test_chain_zstd_matches_extract),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test_restore_extract PATH-TO-squib-snap\n");
		return 2;
	}
	snap_tool = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
