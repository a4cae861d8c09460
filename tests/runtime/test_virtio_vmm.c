/* virtio-blk and virtio-rng wired into squib (issue 11).  `api`: the drive
 * and entropy endpoints in process (Firecracker's swagger shapes, its
 * test_api.py / test_drives.py messages, builder.rs's root= rule).
 * `guests`: the real squib binary on /dev/kvm with the virtioblk and
 * virtiorng test guests: rw on a real file checked byte by byte here, ro,
 * rng, PATCH after boot, snapshot/kill/load mid-stream, a Diff after device
 * writes, a load whose drive file shrank. */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fc_metrics_schema.h"
#include "vmm_test_util.h"

static const char *squib_bin, *guest_dir, *snap_tool;
static char tmpdir[64];

/* ---------------------------------------------------------------- helpers */

static const char *tmp_file(const char *name, size_t size, int fill)
{
	static char paths[8][128];
	static unsigned int n;
	char *p = paths[n++ % 8];
	int fd;

	snprintf(p, 128, "%s/%s", tmpdir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	if (fill) {
		uint8_t *b = malloc(size);
		memset(b, fill, size);
		assert_int_equal(write(fd, b, size), (ssize_t)size);
		free(b);
	} else {
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
	}
	close(fd);
	return p;
}

/* --------------------------------------------------------------- api unit */

/* Messages from Firecracker's parsed_request.rs, drive.rs and test_api.py. */
static void test_put_drive_refusals_with_firecracker_messages(void **state)
{
	struct sqb_ctl c;
	char body[512];
	const char *f = tmp_file("neg.img", 4096, 0);

	(void)state;
	sqb_ctl_init(&c);
	vt_api_fault(&c, "PUT", "/drives", "{\"drive_id\":\"a\"}", "The ID cannot be empty.");
	vt_api_fault(&c, "PUT", "/drives/a-b", "{\"drive_id\":\"a-b\"}",
		     "API Resource IDs can only contain alphanumeric characters and underscores.");
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"other\",\"path_on_host\":\"%s\",\"is_root_device\":false}", f);
	vt_api_fault(&c, "PUT", "/drives/scratch", body,
		     "The id from the path does not match the id from the body!");
	vt_api_fault(&c, "PUT", "/drives/scratch",
		     "{\"drive_id\":\"scratch\",\"path_on_host\":\"x\"}",
		     "missing field `is_root_device`");
	vt_api_fault(&c, "PUT", "/drives/scratch",
		     "{\"drive_id\":\"scratch\",\"is_root_device\":false,\"bogus\":1}",
		     "unknown field `bogus`");
	vt_api_fault(&c, "PUT", "/drives/scratch",
		     "{\"drive_id\":\"scratch\",\"is_root_device\":false,\"cache_type\":\"Fast\"}",
		     "unknown variant `Fast`");
	/* test_api.py: "No such file or directory" for a bad path_on_host */
	vt_api_fault(
	    &c, "PUT", "/drives/rootfs",
	    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"foo.bar\",\"is_root_device\":true,"
	    "\"is_read_only\":true}",
	    "Error manipulating the backing file: No such file or directory (os error 2) "
	    "foo.bar");
	vt_api_fault(&c, "PUT", "/drives/scratch",
		     "{\"drive_id\":\"scratch\",\"is_root_device\":false}", "Invalid block config");
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
		 "\"io_engine\":\"Async\"}",
		 f);
	vt_api_ok(&c, "PUT", "/drives/scratch", body); /* Async (io_uring) is accepted */
	vt_api_fault(&c, "PUT", "/drives/scratch",
		     "{\"drive_id\":\"scratch\",\"is_root_device\":false,\"socket\":\"/x\"}",
		     "Vhost user backend error: Vhost-user error: Failed to connect to UDS Unix "
		     "stream: No such file or directory (os error 2)");
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
		 "\"rate_limiter\":{\"ops\":{\"refill_time\":100}}}",
		 f);
	vt_api_fault(&c, "PUT", "/drives/scratch", body, "missing field `size`");
	/* test_api.py: "A root block device already exists" */
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"rootfs\",\"path_on_host\":\"%s\",\"is_root_device\":true}", f);
	vt_api_ok(&c, "PUT", "/drives/rootfs", body);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":true}", f);
	vt_api_fault(&c, "PUT", "/drives/scratch", body,
		     "Drive config error: A root block device already exists!");
	/* test_api.py: patching a drive before boot is not allowed */
	vt_api_fault(&c, "PATCH", "/drives/rootfs",
		     "{\"drive_id\":\"rootfs\",\"path_on_host\":\"foo.bar\"}",
		     "The requested operation is not supported before starting the microVM.");
	vt_api_fault(&c, "PUT", "/entropy", "{\"rate_limiter\":{\"bogus\":{}}}",
		     "unknown field `bogus`");
	/* test_api.py: the snapshot load refused after boot-specific resources */
	vt_api_fault(&c, "PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/nonexistent\",\"mem_file_path\":\"/nonexistent\"}",
		     "Loading a microVM snapshot not allowed after configuring boot-specific");
	sqb_ctl_destroy(&c);
}

/* A host where io_uring_setup fails (a seccomp filter answers ENOSYS in a
 * child): PUT /drives with Async fails as Firecracker's VirtioBlock::new
 * does, after the backing file was opened; Sync still works. */
static void test_put_drive_async_without_io_uring(void **state)
{
	const char *f = tmp_file("nouring.img", 4096, 0);
	int st = -1;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
		struct sqb_ctl c;
		struct sqb_ctl_resp r;
		char body[512];

		if (!ctx ||
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0) ||
		    seccomp_load(ctx))
			_exit(10);
		sqb_ctl_init(&c);
		snprintf(body, sizeof(body),
			 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":"
			 "false,\"io_engine\":\"Async\"}",
			 f);
		if (vt_api(&c, "PUT", "/drives/scratch", body, &r) != 400)
			_exit(11);
		if (!strstr(r.body, "Drive config error: Unable to create the virtio block device: "
				    "Virtio backend error: Error coming from the IO engine: Async "
				    "error: IoUring: Error calling io_uring_setup: Function not "
				    "implemented (os error 38)")) {
			fprintf(stderr, "answer: %s\n", r.body);
			_exit(12);
		}
		if (c.ndrives != 0)
			_exit(13);
		snprintf(body, sizeof(body),
			 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":"
			 "false,\"io_engine\":\"Sync\"}",
			 f);
		if (vt_api(&c, "PUT", "/drives/scratch", body, &r) != 204)
			_exit(14);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* swagger's Drive / EntropyDevice / RateLimiter / TokenBucket, as
 * Firecracker serializes them in GET /vm/config (Option -> null), the
 * root drive first (BlockBuilder), a PUT with the same id replacing. */
static void test_vm_config_shows_drives_root_first_and_entropy(void **state)
{
	struct sqb_ctl c;
	struct sqb_ctl_resp r;
	char body[512], want[1024];
	const char *f = tmp_file("cfg.img", 4096, 0), *g = tmp_file("cfg2.img", 8192, 0);

	(void)state;
	sqb_ctl_init(&c);
	assert_int_equal(vt_api(&c, "GET", "/vm/config", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"drives\":[]"));
	assert_non_null(strstr(r.body, "\"entropy\":null"));
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
		 "\"is_read_only\":true,\"cache_type\":\"Writeback\",\"io_engine\":\"Async\","
		 "\"rate_limiter\":{\"bandwidth\":{\"size\":1000000,\"refill_time\":100},"
		 "\"ops\":{\"size\":10,\"one_time_burst\":5,\"refill_time\":1000}}}",
		 f);
	vt_api_ok(&c, "PUT", "/drives/scratch", body);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"rootfs\",\"path_on_host\":\"%s\",\"is_root_device\":true,"
		 "\"partuuid\":\"0eaa91a0-01\",\"io_engine\":\"Sync\",\"rate_limiter\":null}",
		 g);
	vt_api_ok(&c, "PUT", "/drives/rootfs", body);
	vt_api_ok(&c, "PUT", "/entropy",
		  "{\"rate_limiter\":{\"ops\":{\"size\":0,\"refill_time\":1}}}");
	assert_int_equal(vt_api(&c, "GET", "/vm/config", NULL, &r), 200);
	snprintf(want, sizeof(want),
		 "\"drives\":[{\"drive_id\":\"rootfs\",\"partuuid\":\"0eaa91a0-01\","
		 "\"is_root_device\":true,\"cache_type\":\"Unsafe\",\"is_read_only\":false,"
		 "\"path_on_host\":\"%s\",\"rate_limiter\":null,\"io_engine\":\"Sync\","
		 "\"socket\":null},{\"drive_id\":\"scratch\",\"partuuid\":null,"
		 "\"is_root_device\":false,\"cache_type\":\"Writeback\",\"is_read_only\":true,"
		 "\"path_on_host\":\"%s\",\"rate_limiter\":{\"bandwidth\":{\"size\":1000000,"
		 "\"one_time_burst\":null,\"refill_time\":100},\"ops\":{\"size\":10,"
		 "\"one_time_burst\":5,\"refill_time\":1000}},\"io_engine\":\"Async\","
		 "\"socket\":null}]",
		 g, f);
	if (!strstr(r.body, want))
		fail_msg("vm/config: %s\nwant: %s", r.body, want);
	/* a zero-size bucket is no bucket (TokenBucket::new): rate_limiter null */
	assert_non_null(strstr(r.body, "\"entropy\":{\"rate_limiter\":null}"));
	/* the same id again replaces the drive, and a non-root keeps its place */
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false}", g);
	vt_api_ok(&c, "PUT", "/drives/scratch", body);
	assert_int_equal(c.ndrives, 2);
	assert_string_equal(c.drives[0].id, "rootfs");
	assert_false(c.drives[1].read_only);
	assert_false(c.drives[1].has_rl);
	sqb_ctl_destroy(&c);
}

/* builder.rs: the boot_args, "pci=off" (squib has no PCI; Firecracker adds
 * it without --enable-pci), then "root=/dev/vda ro" or
 * "root=PARTUUID=0eaa91a0-01 rw" for a root drive. */
static void test_root_drive_on_the_command_line(void **state)
{
	struct sqb_ctl c;
	char body[512], *cl = NULL;
	const char *f = tmp_file("root.img", 4096, 0);

	(void)state;
	sqb_ctl_init(&c);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"data\",\"path_on_host\":\"%s\",\"is_root_device\":false}", f);
	vt_api_ok(&c, "PUT", "/drives/data", body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "console=ttyS0", &cl), 0);
	assert_string_equal(cl, "console=ttyS0 pci=off");
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "pci=off console=ttyS0", &cl), 0);
	assert_string_equal(cl, "pci=off console=ttyS0"); /* not twice */
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "xpci=off", &cl), 0);
	assert_string_equal(cl, "xpci=off pci=off");
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "", &cl), 0);
	assert_string_equal(cl, "pci=off");
	free(cl);
	/* linux-loader's split: the init's arguments after " -- " (outside
	 * double quotes) stay last and untouched (test_kernel_cmdline.py) */
	assert_int_equal(sqb_ctl_root_cmdline(&c, "  a=\"b -- c\" d  --  e -- f ", &cl), 0);
	assert_string_equal(cl, "a=\"b -- c\" d pci=off -- e -- f");
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "x -- ", &cl), 0);
	assert_string_equal(cl, "x pci=off");
	free(cl);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"rootfs\",\"path_on_host\":\"%s\",\"is_root_device\":true,"
		 "\"is_read_only\":true}",
		 f);
	vt_api_ok(&c, "PUT", "/drives/rootfs", body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "console=ttyS0", &cl), 0);
	assert_string_equal(cl, "console=ttyS0 pci=off root=/dev/vda ro");
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c,
					      "console=ttyS0 reboot=k panic=1 init=/bin/cat -- "
					      "/etc/os-release",
					      &cl),
			 0);
	assert_string_equal(cl,
			    "console=ttyS0 reboot=k panic=1 init=/bin/cat pci=off root=/dev/vda "
			    "ro -- /etc/os-release");
	free(cl);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"rootfs\",\"path_on_host\":\"%s\",\"is_root_device\":true,"
		 "\"partuuid\":\"0eaa91a0-01\"}",
		 f);
	vt_api_ok(&c, "PUT", "/drives/rootfs", body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "", &cl), 0);
	assert_string_equal(cl, "pci=off root=PARTUUID=0eaa91a0-01 rw");
	free(cl);
	assert_int_equal(sqb_ctl_root_cmdline(&c, NULL, &cl), 0); /* the default line + root */
	assert_non_null(strstr(cl, "console=ttyS0"));
	assert_non_null(strstr(cl, " root=PARTUUID=0eaa91a0-01 rw"));
	free(cl);
	sqb_ctl_destroy(&c);
}

/* ----------------------------------------------------------- guests (KVM) */

/* tests/guests/virtioblk.c's pattern */
static uint8_t blk_pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static void drive(struct sqb_tc *t, const char *id, const char *path, int ro, const char *extra)
{
	char body[700], url[64];

	snprintf(url, sizeof(url), "/drives/%s", id);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"%s\",\"path_on_host\":\"%s\",\"is_root_device\":false,"
		 "\"is_read_only\":%s%s%s}",
		 id, path, ro ? "true" : "false", extra ? "," : "", extra ? extra : "");
	vt_req(t, "PUT", url, body, 204);
}

static void start(struct sqb_tc *t, const char *guest, const char *args, int dirty)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"vcpu_count\":1,\"mem_size_mib\":32%s}",
		 dirty ? ",\"track_dirty_pages\":true" : "");
	vt_req(t, "PUT", "/machine-config", body, 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/%s\",\"boot_args\":\"%s\"}",
		 guest_dir, guest, args);
	vt_req(t, "PUT", "/boot-source", body, 204);
	vt_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

static void check_file_pattern(const char *path, uint64_t seed, size_t bytes)
{
	uint8_t *b = malloc(bytes);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, bytes, 0), (ssize_t)bytes);
	close(fd);
	for (size_t i = 0; i < bytes; i++)
		if (b[i] != blk_pattern(seed, i))
			fail_msg("%s byte %zu is 0x%02x, the guest wrote 0x%02x", path, i, b[i],
				 blk_pattern(seed, i));
	free(b);
}

/* PUT /metrics to name (in tmpdir); the path of the file. */
static const char *metrics_to(struct sqb_tc *t, const char *name)
{
	static char path[160];
	char body[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", path);
	vt_req(t, "PUT", "/metrics", body, 204);
	return path;
}

/* The line squib wrote at exit, which must pass Firecracker's metrics
 * schema (fc_metrics_schema.c, from its fcmetrics.py); malloc'd. */
static char *exit_metrics(const char *path)
{
	char *m = tc_read_file(path), *line = fcm_last_line(m), why[512];

	free(m);
	if (!line)
		fail_msg("no metrics line in %s", path);
	if (fcm_validate(line, 10000, why, sizeof(why)) || fcm_check_order(line, why, sizeof(why)))
		fail_msg("[tests/host_tools/fcmetrics.py] %s: %s", why, line);
	return line;
}

static uint64_t mval(const char *line, const char *path)
{
	uint64_t v;

	if (fcm_u64(line, path, &v))
		fail_msg("metrics line has no number %s: %s", path, line);
	return v;
}

/* rw on a real temp file; the host reads the bytes back; GET_ID = drive_id.
 * The metrics line at exit counts the guest's requests in block_scratch
 * (Firecracker's BlockDeviceMetrics) and in the "block" aggregate. */
static void rw_guest(const char *engine)
{
	struct sqb_tc t;
	const char *img = tmp_file("rw.img", 1 << 20, 0), *mpath;
	char *line, extra[128];

	vt_spawn(&t, squib_bin);
	mpath = metrics_to(&t, "rw-metrics.json");
	snprintf(extra, sizeof(extra), "\"cache_type\":\"Writeback\",\"io_engine\":\"%s\"", engine);
	drive(&t, "scratch", img, 0, extra);
	start(&t, "virtioblk.elf", "mode=rw seed=5 sectors=16", 0);
	vt_expect_done_ok(&t, "VBLK", 30000);
	vt_expect_serial(&t, "VBLK capacity=2048 ro=0 flush=1\n", 100);
	vt_expect_serial(&t, "VBLK flush PASS\n", 100);
	vt_expect_serial(&t, "VBLK id=scratch\n", 100);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	check_file_pattern(img, 5, 16 * 512);
	line = exit_metrics(mpath);
	if (mval(line, "block_scratch.write_count") == 0 ||
	    mval(line, "block_scratch.write_bytes") < 16 * 512 ||
	    mval(line, "block_scratch.read_count") == 0 ||
	    mval(line, "block_scratch.flush_count") == 0 ||
	    mval(line, "block_scratch.queue_event_count") == 0 ||
	    mval(line, "block_scratch.execute_fails") != 1 || /* the guest's out-of-range read */
	    mval(line, "block.write_count") != mval(line, "block_scratch.write_count") ||
	    mval(line, "block.read_bytes") != mval(line, "block_scratch.read_bytes") ||
	    mval(line, "block_scratch.read_agg.max_us") <
		mval(line, "block_scratch.read_agg.min_us"))
		fail_msg("the guest's requests are not counted: %s", line);
	free(line);
	tc_stop(&t);
}

static void test_blk_rw_guest_writes_the_host_file(void **state)
{
	(void)state;
	rw_guest("Sync");
}

/* The same guest on io_engine Async: every request through the io_uring,
 * the same bytes in the file and the same metrics. */
static void test_blk_rw_guest_async(void **state)
{
	(void)state;
	rw_guest("Async");
}

/* A read-only drive: VIRTIO_BLK_F_RO offered, the write answered IOERR, the
 * file untouched. */
static void test_blk_read_only_refuses_writes(void **state)
{
	struct sqb_tc t;
	const char *img = tmp_file("ro.img", 64 * 1024, 0x11);
	uint8_t b[4096];
	int fd;

	(void)state;
	const char *mpath;
	char *line;

	vt_spawn(&t, squib_bin);
	mpath = metrics_to(&t, "ro-metrics.json");
	drive(&t, "ro", img, 1, NULL);
	start(&t, "virtioblk.elf", "mode=ro", 0);
	vt_expect_done_ok(&t, "VBLK", 30000);
	vt_expect_serial(&t, "VBLK ro-write-refused PASS\n", 100);
	vt_expect_serial(&t, "ro=1 flush=0\n", 100); /* Unsafe: no FLUSH (Firecracker) */
	kill(t.pid, SIGTERM);
	tc_wait_exit(&t, 10000);
	line = exit_metrics(mpath); /* the refused write: an IOERR answer */
	if (mval(line, "block_ro.execute_fails") == 0 || mval(line, "block_ro.write_count") != 0)
		fail_msg("the refused write is not counted: %s", line);
	free(line);
	tc_stop(&t);
	fd = open(img, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	close(fd);
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0x11);
}

/* PUT /entropy {}: the rng guest at slot 1 (a drive holds slot 0) gets bytes. */
static void test_rng_gives_bytes_next_to_a_drive(void **state)
{
	struct sqb_tc t;
	const char *img = tmp_file("rng.img", 4096, 0);

	(void)state;
	const char *mpath;
	char *line;

	vt_spawn(&t, squib_bin);
	mpath = metrics_to(&t, "rng-metrics.json");
	drive(&t, "d0", img, 0, NULL);
	vt_req(&t, "PUT", "/entropy", "{}", 204);
	start(&t, "virtiorng.elf", "", 0);
	vt_expect_done_ok(&t, "VRNG", 30000);
	kill(t.pid, SIGTERM);
	tc_wait_exit(&t, 10000);
	line = exit_metrics(mpath); /* Firecracker's EntropyDeviceMetrics */
	if (mval(line, "entropy.entropy_bytes") == 0 ||
	    mval(line, "entropy.entropy_event_count") == 0)
		fail_msg("the guest's entropy requests are not counted: %s", line);
	free(line);
	tc_stop(&t);
}

/* PATCH after boot: Firecracker's test_drive_patch messages; a swapped file
 * is what the guest writes to from then on; rate limiter updates. */
static void patch_after_boot(const char *engine)
{
	struct sqb_tc t;
	const char *a = tmp_file("pa.img", 64 * 1024, 0), *b = tmp_file("pb.img", 128 * 1024, 0);
	char body[512];
	const char *r;
	static uint8_t copy[64 * 1024];
	uint8_t buf[512], old0[512];
	int fd, seen = 0;

	vt_spawn(&t, squib_bin);
	snprintf(body, sizeof(body), "\"io_engine\":\"%s\"", engine);
	drive(&t, "scratch", a, 0, body);
	start(&t, "virtioblk.elf", "mode=loop rounds=100000000 seed=9 sectors=1", 0);
	vt_expect_serial(&t, "VBLK init PASS\n", 30000);
	r = vt_req(&t, "PATCH", "/drives/scratch", "{\"drive_id\":\"scratch\"}", 400);
	assert_non_null(strstr(r, "Running method expected different backend."));
	r = vt_req(&t, "PATCH", "/drives/scratch",
		   "{\"drive_id\":\"scratch\",\"path_on_host\":\"foo.bar\",\"is_read_only\":true}",
		   400);
	assert_non_null(strstr(r, "unknown field `is_read_only`"));
	r = vt_req(&t, "PATCH", "/drives/scratch",
		   "{\"drive_id\":\"scratch\",\"path_on_host\":\"foo.bar\"}", 400);
	assert_non_null(strstr(r, "Error manipulating the backing file: No such file or directory "
				  "(os error 2) foo.bar"));
	r = vt_req(&t, "PATCH", "/drives/nope", "{\"drive_id\":\"nope\",\"path_on_host\":\"x\"}",
		   400);
	assert_non_null(strstr(r, "Device not found"));
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"late\",\"path_on_host\":\"%s\",\"is_root_device\":false}", b);
	r = vt_req(&t, "PUT", "/drives/late", body, 400);
	assert_non_null(strstr(r, "PCI is not enabled")); /* hot-plug needs --enable-pci */
	r = vt_req(&t, "PUT", "/entropy", "{}", 400);
	assert_non_null(strstr(r, "not supported after starting the microVM"));
	/* Swap while paused, onto a copy of the old file once the event loop
	 * has run any notify still pending: the guest's next read finds what it
	 * wrote, and from then on only the new file changes. */
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	usleep(200000);
	fd = open(a, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, copy, sizeof(copy), 0), (ssize_t)sizeof(copy));
	close(fd);
	memcpy(old0, copy, sizeof(old0));
	fd = open(b, O_WRONLY | O_CLOEXEC);
	assert_int_equal(pwrite(fd, copy, sizeof(copy), 0), (ssize_t)sizeof(copy));
	close(fd);
	snprintf(
	    body, sizeof(body),
	    "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"rate_limiter\":{\"bandwidth\":"
	    "{\"size\":100000000,\"refill_time\":100},\"ops\":{\"size\":100000,"
	    "\"refill_time\":100}}}",
	    b);
	vt_req(&t, "PATCH", "/drives/scratch", body, 204);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	vt_req(&t, "PATCH", "/drives/scratch",
	       "{\"drive_id\":\"scratch\",\"rate_limiter\":{\"ops\":{\"size\":50000,"
	       "\"refill_time\":100}}}",
	       204);
	r = vt_req(&t, "GET", "/vm/config", NULL, 200);
	snprintf(body, sizeof(body), "\"path_on_host\":\"%s\"", b);
	assert_non_null(strstr(r, body));
	/* bandwidth kept (BucketUpdate::None), ops replaced */
	assert_non_null(strstr(r, "\"bandwidth\":{\"size\":100000000,\"one_time_burst\":null,"
				  "\"refill_time\":100},\"ops\":{\"size\":50000,"));
	/* the guest's writes now land in the new file, and only there */
	for (int i = 0; i < 3000 && !seen; i++) {
		fd = open(b, O_RDONLY | O_CLOEXEC);
		assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		close(fd);
		seen = memcmp(buf, old0, sizeof(buf)) != 0;
		usleep(20000);
	}
	assert_true(seen);
	fd = open(a, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	close(fd);
	assert_memory_equal(buf, old0, sizeof(buf));
	r = tc_read_file(t.serial);
	assert_null(strstr(r, "FAIL"));
	free((void *)r);
	tc_stop(&t);
}

static void test_patch_drive_after_boot(void **state)
{
	(void)state;
	patch_after_boot("Sync");
}

/* Async: the swap drains the ring first, so no request straddles the files. */
static void test_patch_drive_after_boot_async(void **state)
{
	(void)state;
	patch_after_boot("Async");
}

static void snap_create(struct sqb_tc *t, const char *type, const char *name)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s/%s.state\","
		 "\"mem_file_path\":\"%s/%s.mem\"}",
		 type, tmpdir, name, tmpdir, name);
	vt_req(t, "PUT", "/snapshot/create", body, 204);
}

static const char *snap_load_spawned(struct sqb_tc *t, const char *name, int want)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/%s.state\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s/%s.mem\"},\"resume_vm\":true}",
		 tmpdir, name, tmpdir, name);
	return vt_req(t, "PUT", "/snapshot/load", body, want);
}

/* 20 requests a second at most: a stream of rounds stays mid-way when the
 * snapshot lands however fast the host is, and the throttled requests wait
 * on the avail ring (and the limiter's timer) across the snapshot. */
#define SLOW_RL "\"rate_limiter\":{\"ops\":{\"size\":2,\"refill_time\":100}}"

/* squib-snap inspect --devices decodes both virtio devices (format.md 9.1.1). */
static const char *const inspect_needles[] = {"scratch",
					      "virtio-blk status 0x0f",
					      "capacity 2048 sectors writeback",
					      "virtio-rng",
					      "rate limiter ops: size 2 refill 100 ms",
					      NULL};

static const char *snap_load(struct sqb_tc *t, const char *name, int want)
{
	vt_spawn(t, squib_bin);
	return snap_load_spawned(t, name, want);
}

/* Snapshot in the middle of a write/flush/read stream, SIGKILL, load in a
 * new squib: the drive comes back from CONF on the same file, the device
 * state from DEVS, and the guest's own checks of every later round pass. */
static void snapshot_mid_stream(const char *engine)
{
	struct sqb_tc t, t2;
	const char *img = tmp_file("snap.img", 1 << 20, 0);
	const char *r;
	char extra[256];

	vt_spawn(&t, squib_bin);
	snprintf(extra, sizeof(extra), "\"cache_type\":\"Writeback\",\"io_engine\":\"%s\"," SLOW_RL,
		 engine);
	drive(&t, "scratch", img, 0, extra);
	vt_req(&t, "PUT", "/entropy", "{}", 204);
	start(&t, "virtioblk.elf", "mode=loop rounds=12 seed=3 sectors=2", 0);
	vt_expect_serial(&t, "VBLK init PASS\n", 30000);
	usleep(50000);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "Full", "mid");
	r = tc_read_file(t.serial);
	if (strstr(r, "VBLK loop"))
		fail_msg("the loop ended before the snapshot: %s", r);
	free((void *)r);
	tc_stop(&t); /* SIGKILL */
	if (snap_tool)
		vt_expect_inspect(snap_tool, tmpdir, "mid", inspect_needles);
	snap_load(&t2, "mid", 204);
	r = vt_req(&t2, "GET", "/vm/config", NULL, 200);
	assert_non_null(strstr(r, "\"drive_id\":\"scratch\""));
	assert_non_null(strstr(r, "\"entropy\":{\"rate_limiter\":null}"));
	snprintf(extra, sizeof(extra), "\"io_engine\":\"%s\"", engine);
	if (!strstr(r, extra)) /* the engine comes back with the configuration */
		fail_msg("vm/config after the load has no %s: %s", extra, r);
	vt_expect_serial(&t2, "VBLK loop PASS\n", 200000);
	vt_expect_done_ok(&t2, "VBLK", 5000);
	tc_stop(&t2);
}

static void test_blk_snapshot_kill_load_mid_stream(void **state)
{
	(void)state;
	snapshot_mid_stream("Sync");
}

/* Async: the save drains the ring first (requests the guest sent before
 * the pause are published into the snapshot), the load re-creates the
 * io_uring from CONF. */
static void test_blk_snapshot_kill_load_mid_stream_async(void **state)
{
	(void)state;
	snapshot_mid_stream("Async");
}

static void spawn_stdin(struct sqb_tc *t)
{
	assert_int_equal(
	    tc_spawn_stdin(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
}

static void input(struct sqb_tc *t, const char *s)
{
	assert_int_equal(write(t->stdin_fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void fill_pattern(const char *path, uint64_t seed, size_t bytes)
{
	uint8_t *b = malloc(bytes);
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	for (size_t i = 0; i < bytes; i++)
		b[i] = blk_pattern(seed, i);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, bytes, 0), (ssize_t)bytes);
	close(fd);
	free(b);
}

/* A Diff taken after the device wrote guest memory that the guest itself
 * never wrote (virtioblk mode=hold): KVM's dirty log does not see those
 * pages, only the guest-memory accessor does.  Full before the read, Diff
 * after it, kill, load the Diff: the guest finds the bytes the device read.
 * (With the accessor's dirty marking switched off this test fails.) */
static void test_blk_diff_after_device_writes(void **state)
{
	struct sqb_tc t, t2;
	const char *img = tmp_file("diff.img", 1 << 20, 0);

	(void)state;
	fill_pattern(img, 8, 32 * 512);
	spawn_stdin(&t);
	drive(&t, "scratch", img, 1, NULL);
	start(&t, "virtioblk.elf", "mode=hold seed=8 sectors=32", 1);
	vt_expect_serial(&t, "VBLK hold-wait\n", 30000);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "Full", "base");
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	input(&t, "r");
	vt_expect_serial(&t, "VBLK hold-read PASS\n", 30000);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "Diff", "top");
	tc_stop(&t);
	spawn_stdin(&t2);
	snap_load_spawned(&t2, "top", 204);
	input(&t2, "v");
	vt_expect_done_ok(&t2, "VBLK", 30000);
	vt_expect_serial(&t2, "VBLK hold-verify PASS\n", 100);
	tc_stop(&t2);
}

/* A drive file that no longer has the saved capacity: 400 naming the drive
 * ([F-104]); squib stays usable, and squib.drives loads the drive from
 * another file (the path is a hint). */
static void test_load_refuses_a_drive_that_shrank(void **state)
{
	struct sqb_tc t, t2;
	const char *img = tmp_file("shrink.img", 1 << 20, 0);
	const char *r;

	(void)state;
	vt_spawn(&t, squib_bin);
	drive(&t, "data", img, 0, NULL);
	start(&t, "virtioblk.elf", "mode=loop rounds=3 seed=6 sectors=1", 0);
	vt_expect_serial(&t, "VBLK init PASS\n", 30000);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "Full", "shrink");
	tc_stop(&t);
	assert_int_equal(truncate(img, 512 * 1024), 0);
	r = snap_load(&t2, "shrink", 400);
	if (!strstr(r, "drive 'data'") || !strstr(r, "capacity"))
		fail_msg("load answer does not name the drive and its capacity: %s", r);
	{
		/* the path is a hint: squib.drives points the drive at another file */
		const char *moved = tmp_file("moved.img", 1 << 20, 0);
		char body[900];

		snprintf(
		    body, sizeof(body),
		    "{\"snapshot_path\":\"%s/shrink.state\",\"mem_backend\":{\"backend_type\":"
		    "\"File\",\"backend_path\":\"%s/shrink.mem\"},\"resume_vm\":true,"
		    "\"squib\":{\"drives\":[{\"drive_id\":\"nope\",\"path_on_host\":\"%s\"}]}}",
		    tmpdir, tmpdir, moved);
		r = vt_req(&t2, "PUT", "/snapshot/load", body, 400);
		assert_non_null(strstr(r, "the snapshot has no drive 'nope'"));
		/* a backing file that cannot be opened: Firecracker's VirtioBlockError
		 * text (test_negative_snapshot_permissions, there EACCES) */
		snprintf(body, sizeof(body),
			 "{\"snapshot_path\":\"%s/shrink.state\",\"mem_backend\":{\"backend_type\":"
			 "\"File\",\"backend_path\":\"%s/shrink.mem\"},\"resume_vm\":true,"
			 "\"squib\":{\"drives\":[{\"drive_id\":\"data\",\"path_on_host\":\"%s/"
			 "gone.img\"}]}}",
			 tmpdir, tmpdir, tmpdir);
		r = vt_req(&t2, "PUT", "/snapshot/load", body, 400);
		if (!strstr(r, "Load snapshot error: Failed to restore from snapshot: ") ||
		    !strstr(
			r,
			"Virtio backend error: Error manipulating the backing file: No such file "
			"or directory (os error 2)"))
			fail_msg("load with a missing drive file: %s", r);
		snprintf(
		    body, sizeof(body),
		    "{\"snapshot_path\":\"%s/shrink.state\",\"mem_backend\":{\"backend_type\":"
		    "\"File\",\"backend_path\":\"%s/shrink.mem\"},\"resume_vm\":false,"
		    "\"squib\":{\"drives\":[{\"drive_id\":\"data\",\"path_on_host\":\"%s\"}]}}",
		    tmpdir, tmpdir, moved);
		vt_req(&t2, "PUT", "/snapshot/load", body, 204);
		/* asked while paused: a guest that had nearly finished its rounds
		 * when the snapshot was taken ends (and squib with it) right
		 * after a resume (seen once in CI under load) */
		r = vt_req(&t2, "GET", "/vm/config", NULL, 200);
		snprintf(body, sizeof(body), "\"path_on_host\":\"%s\"", moved);
		assert_non_null(strstr(r, body));
		vt_req(&t2, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	}
	vt_expect_serial(&t2, "VBLK DONE pass=", 200000);
	tc_stop(&t2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api_tests[] = {
	    cmocka_unit_test(test_put_drive_refusals_with_firecracker_messages),
	    cmocka_unit_test(test_put_drive_async_without_io_uring),
	    cmocka_unit_test(test_vm_config_shows_drives_root_first_and_entropy),
	    cmocka_unit_test(test_root_drive_on_the_command_line),
	};
	const struct CMUnitTest guest_tests[] = {
	    cmocka_unit_test(test_blk_rw_guest_writes_the_host_file),
	    cmocka_unit_test(test_blk_rw_guest_async),
	    cmocka_unit_test(test_blk_read_only_refuses_writes),
	    cmocka_unit_test(test_rng_gives_bytes_next_to_a_drive),
	    cmocka_unit_test(test_patch_drive_after_boot),
	    cmocka_unit_test(test_patch_drive_after_boot_async),
	    cmocka_unit_test(test_blk_snapshot_kill_load_mid_stream),
	    cmocka_unit_test(test_blk_snapshot_kill_load_mid_stream_async),
	    cmocka_unit_test(test_blk_diff_after_device_writes),
	    cmocka_unit_test(test_load_refuses_a_drive_that_shrank),
	};
	const struct vt_main m = {
	    .tmp_template = "/tmp/squib-vdev-XXXXXX",
	    .tmpdir = tmpdir,
	    .tmpdir_cap = sizeof(tmpdir),
	    .squib_bin = &squib_bin,
	    .guest_dir = &guest_dir,
	    .snap_tool = &snap_tool,
	    .api_group = "virtio_api",
	    .guest_group = "virtio_guests",
	    .api_tests = api_tests,
	    .guest_tests = guest_tests,
	    .n_api = sizeof(api_tests) / sizeof(api_tests[0]),
	    .n_guests = sizeof(guest_tests) / sizeof(guest_tests[0]),
	    .setup = NULL,
	};

	return vt_main(&m, argc, argv);
}
