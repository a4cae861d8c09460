/* Raw memory files (docs/snapshots.md "Raw memory files", format.md 7.5):
 * with "mem_format": "raw" the memory file is the guest memory byte for byte
 * in Firecracker's layout, so a Firecracker page-fault handler serves it
 * unchanged, while squib still verifies, chains and merges it.  Real guests
 * on /dev/kvm; each snapshot is loaded by a fresh squib. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

#define GUEST_MIB 32
static char handler[512];

/* Load name through the Firecracker-style handler serving name.mem. */
static void load_via_fc_handler(const char *name, int n)
{
	char sock[256];
	struct sqb_tc t;
	struct stat sb;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/%s.fc.sock", st_dir, name);
	unlink(sock);
	pid = fork();
	if (pid == 0) {
		execl(handler, handler, "serve", sock, st_path(name, ".mem"), (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &sb) != 0; i++)
		usleep(10000);
	assert_int_equal(stat(sock, &sb), 0);
	st_load(&t, name, NULL, sock);
	st_expect_marks(&t, n);
	tc_stop(&t);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The raw file is exactly the guest's size, is a squib-indexed snapshot,
 * and holds the guest's bytes: loads by mmap, eager and lazy, and through a
 * Firecracker handler that knows nothing of squib. */
static void test_raw_full_loads_every_way(void **state)
{
	struct sqb_tc t;
	struct stat sb;
	sqb_snap *s;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, GUEST_MIB, 1);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_create(&t, "Full", "r0", "{\"mem_format\":\"raw\"}");
	tc_stop(&t);
	assert_int_equal(stat(st_path("r0", ".mem"), &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, (uint64_t)GUEST_MIB << 20);
	assert_true((uint64_t)sb.st_blocks * 512 < (uint64_t)GUEST_MIB << 20); /* holes */
	assert_int_equal(sqb_snap_open(&s, st_path("r0", ".state"), NULL, NULL), 0);
	assert_non_null(sqb_snap_external_path(s));
	assert_int_equal(sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	sqb_snap_free(s);
	st_load_count_marks("r0", NULL, 1);
	st_load_count_marks("r0", "eager", 1);
	st_load_count_marks("r0", "lazy", 1);
	load_via_fc_handler("r0", 1);
}

/* Diff into new paths: a sparse raw file of the dirty pages that loads as
 * a chain; then a Diff over its own files (Firecracker's overlay) is the
 * merged memory, which the Firecracker handler serves directly. */
static void test_raw_diff_chain_and_overlay(void **state)
{
	struct sqb_tc t;
	struct stat s0, s1;
	sqb_snap *s;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, GUEST_MIB, 1);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_mark(&t, 'A');
	st_create(&t, "Full", "c0", "{\"mem_format\":\"raw\"}");
	st_mark(&t, 'B');
	st_create(&t, "Diff", "c1", "{\"mem_format\":\"raw\"}");
	assert_int_equal(stat(st_path("c0", ".mem"), &s0), 0);
	assert_int_equal(stat(st_path("c1", ".mem"), &s1), 0);
	assert_int_equal(s1.st_size, s0.st_size);
	assert_true(s1.st_blocks < s0.st_blocks); /* only dirty pages */
	assert_int_equal(sqb_snap_open(&s, st_path("c1", ".state"), NULL, NULL), 0);
	assert_non_null(sqb_snap_parent(s));
	sqb_snap_free(s);
	st_mark(&t, 'C');
	st_create(&t, "Diff", "c1", "{\"mem_format\":\"raw\"}"); /* overlay: merged */
	tc_stop(&t);
	assert_int_equal(sqb_snap_open(&s, st_path("c1", ".state"), NULL, NULL), 0);
	assert_null(sqb_snap_parent(s));
	sqb_snap_free(s);
	st_load_count_marks("c1", NULL, 3);
	load_via_fc_handler("c1", 3);
	st_load_count_marks("c0", NULL, 1);
}

/* Never run a guest on wrong memory: a flipped byte in a data page fails
 * the default (verifying) load; another snapshot's raw file of the same size
 * is refused by its stamp; a truncated one by its size. */
static void test_raw_wrong_memory_refused(void **state)
{
	struct sqb_tc t;
	char body[800], cmd[1200];
	const char *r;
	int fd;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, GUEST_MIB, 0);
	st_expect_serial(&t, "ROUND 2", 60000);
	st_pause(&t);
	st_create(&t, "Full", "w0", "{\"mem_format\":\"raw\"}");
	st_resume(&t);
	st_pause(&t);
	st_create(&t, "Full", "w1", "{\"mem_format\":\"raw\"}");
	tc_stop(&t);
	/* w1's state with w0's raw file */
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true}",
		 st_path("w1", ".state"), st_path("w0", ".mem"));
	r = st_req(&t, "PUT", "/snapshot/load", body, 400);
	assert_non_null(strstr(r, "another snapshot"));
	tc_stop(&t);
	/* a flipped byte inside the guest's pattern area (4 MiB +) */
	snprintf(cmd, sizeof(cmd), "cp %s %s", st_path("w0", ".mem"), st_path("wx", ".mem"));
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "cp %s %s", st_path("w0", ".state"), st_path("wx", ".state"));
	assert_int_equal(system(cmd), 0);
	fd = open(st_path("wx", ".mem"), O_RDWR);
	assert_true(fd >= 0);
	{
		unsigned char b;
		assert_int_equal(pread(fd, &b, 1, (5 << 20) + 8), 1);
		b ^= 0xff;
		assert_int_equal(pwrite(fd, &b, 1, (5 << 20) + 8), 1);
	}
	close(fd);
	st_spawn(&t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true,\"squib\":{\"restore\":\"mmap\"}}",
		 st_path("wx", ".state"), st_path("wx", ".mem"));
	r = st_req(&t, "PUT", "/snapshot/load", body, 400); /* mmap: verified whole first */
	assert_non_null(strstr(r, "checksum"));
	tc_stop(&t);
	/* the default first load verifies chunk by chunk as the guest runs:
	 * the guest's pattern check touches the bad chunk, the VM stops, and
	 * the guest never reports a bad pattern byte (docs/snapshots.md) */
	{
		char dflt[800], reply[512];
		int st;

		snprintf(dflt, sizeof(dflt),
			 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
			 "\"backend_path\":\"%s\"},\"resume_vm\":true}",
			 st_path("wx", ".state"), st_path("wx", ".mem"));
		st_spawn(&t);
		st = tc_req(&t, "PUT", "/snapshot/load", dflt, reply, sizeof(reply));
		if (st == 400) { /* the filler met it before the load answered */
			assert_non_null(strstr(reply, "checksum"));
		} else {
			char *e, *s;

			assert_int_equal(st, 204);
			assert_true(tc_wait_exit(&t, 20000) > 0);
			e = tc_read_file(t.errlog);
			s = tc_read_file(t.serial);
			assert_non_null(e);
			assert_non_null(strstr(e, "checksum mismatch"));
			assert_true(!s || !strstr(s, "BAD"));
			free(e);
			free(s);
		}
		tc_stop(&t);
	}
	assert_int_equal(truncate(st_path("wx", ".mem"), 1 << 20), 0);
	st_spawn(&t);
	r = st_req(&t, "PUT", "/snapshot/load", body, 400);
	assert_non_null(strstr(r, "bytes"));
	tc_stop(&t);
}

static int count_entries(const char *dir)
{
	char cmd[400];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -1 '%s' 2>/dev/null | wc -l", dir);
	f = popen(cmd, "r");
	if (f && fscanf(f, "%d", &n) != 1)
		n = -1;
	if (f)
		pclose(f);
	return n;
}

/* issue 15: a verified load is remembered per unchanged file, so the next
 * load of the same files maps them without reading them: the default first
 * load (lazy, each chunk verified as installed) once every chunk is in, and
 * an explicit mmap load when it returns.  A file rewritten in place (same
 * size, a flipped byte) is verified again and refused.  Container and raw
 * memory files alike. */
static void test_verification_remembered_until_the_file_changes(void **state)
{
	static const char *const fmt[2] = {NULL, "{\"mem_format\":\"raw\"}"};
	char cache[200], body[800];
	struct sqb_tc t;
	const char *r;

	(void)state;
	snprintf(cache, sizeof(cache), "%s/vcache", st_dir);
	setenv("SQB_VERIFY_CACHE", cache, 1);
	for (int k = 0; k < 2; k++) {
		const char *name = k ? "vr" : "vc";
		int fd;

		st_boot(&t, "snapguest.elf", "mode=1 mib=8", 1, GUEST_MIB, 0);
		st_expect_serial(&t, "ROUND 2", 60000);
		st_mark(&t, 'A');
		st_create(&t, "Full", name, fmt[k]);
		tc_stop(&t);
		snprintf(body, sizeof(body), "rm -f '%s'/*", cache);
		assert_int_equal(system(body), 0);
		st_load(&t, name, NULL, NULL); /* default: verifies lazily, remembers when done */
		st_expect_marks(&t, 1);
		for (int i = 0; i < 400 && count_entries(cache) < 2; i++)
			usleep(50000); /* "<dev>-<ino>" entry and its ".lock" */
		assert_int_equal(count_entries(cache), 2);
		tc_stop(&t);
		st_load_count_marks(name, NULL, 1); /* remembered */
		snprintf(body, sizeof(body), "rm -f '%s'/*", cache);
		assert_int_equal(system(body), 0);
		st_load_count_marks(name, "mmap", 1); /* verifies whole, remembers */
		assert_int_equal(count_entries(cache), 1);
		st_load_count_marks(name, NULL, 1); /* remembered */
		/* flip a byte of the guest's data in place, same size */
		fd = open(st_path(name, ".mem"), O_RDWR);
		assert_true(fd >= 0);
		{
			off_t at = k ? (5 << 20) + 8 : 0;
			unsigned char b;

			if (!k) { /* container: the first RAW extent's bytes */
				sqb_snap *s;

				assert_int_equal(sqb_snap_open(&s, st_path(name, ".mem"), NULL, NULL), 0);
				for (size_t i = 0; i < sqb_snap_extent_count(s, 0); i++)
					if (sqb_snap_extents(s, 0)[i].kind == SQB_EXT_RAW) {
						at = (off_t)sqb_snap_extents(s, 0)[i].data + 100;
						break;
					}
				sqb_snap_free(s);
				assert_true(at > 0);
			}
			assert_int_equal(pread(fd, &b, 1, at), 1);
			b ^= 0x5a;
			assert_int_equal(pwrite(fd, &b, 1, at), 1);
		}
		close(fd);
		st_spawn(&t);
		snprintf(body, sizeof(body),
			 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
			 "\"backend_path\":\"%s\"},\"resume_vm\":true,"
			 "\"squib\":{\"restore\":\"mmap\"}}",
			 st_path(name, ".state"), st_path(name, ".mem"));
		r = st_req(&t, "PUT", "/snapshot/load", body, 400);
		assert_non_null(strstr(r, "checksum"));
		tc_stop(&t);
	}
	unsetenv("SQB_VERIFY_CACHE");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw_full_loads_every_way),
	    cmocka_unit_test(test_raw_diff_chain_and_overlay),
	    cmocka_unit_test(test_raw_wrong_memory_refused),
	    cmocka_unit_test(test_verification_remembered_until_the_file_changes),
	};
	int rc;

	st_init(argc, argv);
	if (argc < 5 || access(argv[4], X_OK)) {
		fprintf(stderr, "skip: the Firecracker-style handler (tests/restore) is not built\n");
		return 77;
	}
	snprintf(handler, sizeof(handler), "%s", argv[4]);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	st_cleanup();
	return rc;
}
