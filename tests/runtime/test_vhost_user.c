/* vhost-user block drives (PUT /drives with `socket`).  `api`: Firecracker's
 * texts for bad field combinations and an unreachable backend, and, with
 * qemu-storage-daemon as the backend, GET /vm/config's drive object as
 * test_api.py expects it and the backend's read-only flag on the root
 * command line.  `guests`: the real squib on /dev/kvm with the virtioblk
 * test guest against qemu-storage-daemon's vhost-user-blk export: rw checked
 * byte by byte in the image, a read-only export, test_api.py _drive_patch's
 * cases, the snapshot refusal, and a backend killed under a running VM. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fc_metrics_schema.h"
#include "vmm_test_util.h"

static const char *squib_bin, *guest_dir, *snap_tool;
static char tmpdir[64];
static char qsd_path[256];

#define MSG_INVALID                                                                                \
	"Drive config error: Unable to create the virtio block device: Invalid block config."

/* ---- qemu-storage-daemon ---- */

static const char *find_qsd(void)
{
	const char *path = getenv("PATH");
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(qsd_path, sizeof(qsd_path), "%s/qemu-storage-daemon", d);
		if (access(qsd_path, X_OK) == 0)
			return NULL;
	}
	qsd_path[0] = 0;
	return "qemu-storage-daemon is not installed (Debian 12: apt-get install "
	       "qemu-system-common; scripts/deps.sh installs it)";
}

struct qsd {
	pid_t pid;
	char sock[128];
	char img[128];
};

static void make_image(const char *path, size_t size, int fill)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint8_t *b = calloc(1, size);

	assert_true(fd >= 0);
	memset(b, fill, size);
	assert_int_equal(write(fd, b, size), (ssize_t)size);
	close(fd);
	free(b);
}

/* Start the daemon exporting name.img (size bytes of fill) on name.sock. */
static void qsd_start(struct qsd *q, const char *name, size_t size, int fill, int writable)
{
	char blk[300], exp[400], log[160];

	snprintf(q->sock, sizeof(q->sock), "%s/%s.sock", tmpdir, name);
	snprintf(q->img, sizeof(q->img), "%s/%s.img", tmpdir, name);
	snprintf(log, sizeof(log), "%s/%s.qsd.log", tmpdir, name);
	unlink(q->sock);
	make_image(q->img, size, fill);
	snprintf(blk, sizeof(blk), "driver=file,node-name=f,filename=%s", q->img);
	snprintf(exp, sizeof(exp),
		 "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=%s,writable=%s",
		 q->sock, writable ? "on" : "off");
	q->pid = fork();
	assert_true(q->pid >= 0);
	if (q->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(qsd_path, qsd_path, "--blockdev", blk, "--export", exp, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) { /* the socket appears once it listens */
		struct stat st;
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (stat(q->sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return;
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
			q->pid = 0;
			fail_msg("qemu-storage-daemon exited at start (see %s)", log);
		}
		nanosleep(&ts, NULL);
	}
	fail_msg("qemu-storage-daemon did not listen on %s", q->sock);
}

static void qsd_stop(struct qsd *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
	}
	q->pid = 0;
}

static uint8_t blk_pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;

	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static void vhost_body(char *body, size_t cap, const char *id, const char *sock, const char *extra)
{
	snprintf(body, cap, "{\"drive_id\":\"%s\",\"socket\":\"%s\",\"is_root_device\":false%s%s}",
		 id, sock, extra ? "," : "", extra ? extra : "");
}

/* ---- api (in process) ---- */

/* Block::new: socket excludes path_on_host, is_read_only, rate_limiter and
 * io_engine (VhostUserBlockConfig::try_from); no backend is ever asked. */
static void test_put_vhost_drive_bad_combinations(void **state)
{
	static const char *const extra[] = {
	    "\"path_on_host\":\"/dev/null\"",
	    "\"is_read_only\":false",
	    "\"is_read_only\":true",
	    "\"io_engine\":\"Sync\"",
	    "\"rate_limiter\":{\"ops\":{\"size\":1,\"refill_time\":100}}",
	};
	struct sqb_ctl c;
	char body[512];

	(void)state;
	sqb_ctl_init(&c);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		vhost_body(body, sizeof(body), "vub", "/nonexistent.sock", extra[i]);
		vt_api_fault(&c, "PUT", "/drives/vub", body, MSG_INVALID);
	}
	/* neither path_on_host nor socket */
	vt_api_fault(&c, "PUT", "/drives/vub", "{\"drive_id\":\"vub\",\"is_root_device\":false}",
		     MSG_INVALID);
	/* serde still first: a socket that is not a string */
	vt_api_fault(&c, "PUT", "/drives/vub",
		     "{\"drive_id\":\"vub\",\"socket\":7,\"is_root_device\":false}",
		     "invalid type: integer `7`, expected a string");
	assert_int_equal(c.ndrives, 0);
	sqb_ctl_destroy(&c);
}

/* VhostUserHandleImpl::new: the connect error in Firecracker's words. */
static void test_put_vhost_drive_unreachable_backend(void **state)
{
	struct sqb_ctl c;
	char body[512], sock[128];
	int fd;

	(void)state;
	sqb_ctl_init(&c);
	vhost_body(body, sizeof(body), "vub", "/nonexistent/vhu.sock", NULL);
	vt_api_fault(&c, "PUT", "/drives/vub", body,
		     "Drive config error: Unable to create the virtio block device: Vhost user "
		     "backend error: Vhost-user error: Failed to connect to UDS Unix stream: No "
		     "such file or directory (os error 2)");
	/* a file that is no socket */
	snprintf(sock, sizeof(sock), "%s/notasocket", tmpdir);
	fd = open(sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	close(fd);
	vhost_body(body, sizeof(body), "vub", sock, NULL);
	vt_api_fault(&c, "PUT", "/drives/vub", body, "Connection refused (os error 111)");
	assert_int_equal(c.ndrives, 0);
	sqb_ctl_destroy(&c);
}

/* test_api.py test_drive_patch's GET /vm/config drive objects: the
 * vhost-user drive with "socket" and the virtio-blk fields null, next to a
 * file drive; the root vhost-user drive's ro/rw is the backend's RO. */
static void test_vm_config_shows_vhost_drive(void **state)
{
	struct qsd q = {0}, qro = {0};
	struct sqb_ctl c;
	struct sqb_ctl_resp r;
	char body[768], want[1024], *cl = NULL;

	(void)state;
	if (!qsd_path[0]) {
		print_message("skipped: %s\n", find_qsd());
		skip();
	}
	qsd_start(&q, "cfg", 1 << 20, 0, 1);
	sqb_ctl_init(&c);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false}",
		 q.img);
	vt_api_ok(&c, "PUT", "/drives/scratch", body);
	/* null is None for serde: accepted next to socket */
	vhost_body(body, sizeof(body), "scratch_vub", q.sock,
		   "\"is_read_only\":null,\"path_on_host\":null,\"io_engine\":null");
	vt_api_ok(&c, "PUT", "/drives/scratch_vub", body);
	/* the same id again: a new connection, the old one closed */
	vhost_body(body, sizeof(body), "scratch_vub", q.sock, NULL);
	vt_api_ok(&c, "PUT", "/drives/scratch_vub", body);
	assert_int_equal(c.ndrives, 2);
	assert_int_equal(vt_api(&c, "GET", "/vm/config", NULL, &r), 200);
	snprintf(want, sizeof(want),
		 "{\"drive_id\":\"scratch_vub\",\"partuuid\":null,\"is_root_device\":false,"
		 "\"cache_type\":\"Unsafe\",\"is_read_only\":null,\"path_on_host\":null,"
		 "\"rate_limiter\":null,\"io_engine\":null,\"socket\":\"%s\"}",
		 q.sock);
	if (!strstr(r.body, want))
		fail_msg("vm/config: %s\nwant: %s", r.body, want);
	assert_non_null(strstr(r.body, "\"io_engine\":\"Sync\",\"socket\":null}"));

	/* a root drive on a read-only export: "ro" */
	qsd_start(&qro, "cfgro", 1 << 20, 0, 0);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"rootfs\",\"socket\":\"%s\",\"is_root_device\":true}", qro.sock);
	vt_api_ok(&c, "PUT", "/drives/rootfs", body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "console=ttyS0", &cl), 0);
	assert_non_null(cl);
	assert_string_equal(cl, "console=ttyS0 pci=off root=/dev/vda ro");
	free(cl);
	sqb_ctl_destroy(&c);
	qsd_stop(&q);
	qsd_stop(&qro);
}

/* --config-file: a `drives` entry with socket connects as PUT does (the
 * backend's read-only flag taken); a bad combination names the entry. */
static void test_config_file_vhost_drive(void **state)
{
	struct qsd q = {0};
	struct sqb_ctl c;
	char path[160], json[600], err[600];
	FILE *f;

	(void)state;
	if (!qsd_path[0]) {
		print_message("skipped: %s\n", find_qsd());
		skip();
	}
	qsd_start(&q, "cfgfile", 1 << 20, 0, 0);
	snprintf(path, sizeof(path), "%s/vm.json", tmpdir);
	sqb_ctl_init(&c);
	snprintf(json, sizeof(json),
		 "{\"boot-source\":{\"kernel_image_path\":\"%s\"},\"drives\":[{\"drive_id\":"
		 "\"vub\",\"socket\":\"%s\",\"is_root_device\":true,\"io_engine\":\"Sync\"}]}",
		 q.img, q.sock);
	f = fopen(path, "w");
	fputs(json, f);
	fclose(f);
	assert_true(sqb_ctl_apply_config_file(&c, path, err, sizeof(err)) < 0);
	if (!strstr(err, "section `drives`[0]: ") || !strstr(err, MSG_INVALID))
		fail_msg("config file error: %s", err);
	snprintf(json, sizeof(json),
		 "{\"boot-source\":{\"kernel_image_path\":\"%s\"},\"drives\":[{\"drive_id\":"
		 "\"vub\",\"socket\":\"%s\",\"is_root_device\":true}]}",
		 q.img, q.sock);
	f = fopen(path, "w");
	fputs(json, f);
	fclose(f);
	err[0] = 0;
	/* the drive is accepted (connected, the backend's RO taken); the start
	 * then fails on the kernel, which is no kernel */
	assert_true(sqb_ctl_apply_config_file(&c, path, err, sizeof(err)) < 0);
	if (strstr(err, "drives"))
		fail_msg("config file: %s", err);
	assert_int_equal(c.ndrives, 1);
	assert_true(c.drives[0].read_only);
	sqb_ctl_destroy(&c);
	qsd_stop(&q);
}

/* ---- guests: the real squib with the virtioblk guest ---- */

static void start(struct sqb_tc *t, const char *args)
{
	char body[512];

	vt_req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/virtioblk.elf\",\"boot_args\":\"%s\"}", guest_dir,
		 args);
	vt_req(t, "PUT", "/boot-source", body, 204);
	vt_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

/* Reads, writes and a flush through qemu-storage-daemon; the host finds
 * the guest's bytes in the image (squib never touched the file). */
static void test_vhost_rw_guest_writes_the_image(void **state)
{
	struct qsd q = {0};
	struct sqb_tc t;
	char body[512];
	uint8_t *b = malloc(16 * 512);
	int fd;

	(void)state;
	qsd_start(&q, "rw", 1 << 20, 0, 1);
	vt_spawn(&t, squib_bin);
	vhost_body(body, sizeof(body), "scratch", q.sock, "\"cache_type\":\"Writeback\"");
	vt_req(&t, "PUT", "/drives/scratch", body, 204);
	start(&t, "mode=rw seed=5 sectors=16");
	vt_expect_done_ok(&t, "VBLK", 30000);
	vt_expect_serial(&t, "VBLK capacity=2048 ro=0 flush=1\n", 100);
	vt_expect_serial(&t, "VBLK flush PASS\n", 100);
	vt_expect_serial(&t, "VBLK out-of-range PASS\n", 100);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
	qsd_stop(&q);
	fd = open(q.img, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 16 * 512, 0), 16 * 512);
	close(fd);
	for (size_t i = 0; i < 16 * 512; i++)
		if (b[i] != blk_pattern(5, i))
			fail_msg("image byte %zu is 0x%02x, the guest wrote 0x%02x", i, b[i],
				 blk_pattern(5, i));
	free(b);
}

/* writable=off: the backend offers VIRTIO_BLK_F_RO (squib passes it on),
 * answers the write IOERR, the image keeps its bytes; Unsafe: no FLUSH. */
static void test_vhost_read_only_export_refuses_writes(void **state)
{
	struct qsd q = {0};
	struct sqb_tc t;
	char body[512];
	uint8_t b[4096];
	int fd;

	(void)state;
	qsd_start(&q, "ro", 64 * 1024, 0x11, 0);
	vt_spawn(&t, squib_bin);
	vhost_body(body, sizeof(body), "ro", q.sock, NULL);
	vt_req(&t, "PUT", "/drives/ro", body, 204);
	start(&t, "mode=ro");
	vt_expect_done_ok(&t, "VBLK", 30000);
	vt_expect_serial(&t, "VBLK ro-write-refused PASS\n", 100);
	vt_expect_serial(&t, "ro=1 flush=0\n", 100);
	tc_stop(&t);
	qsd_stop(&q);
	fd = open(q.img, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	close(fd);
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0x11);
}

/* test_api.py test_drive_patch / _drive_patch with a vhost-user drive next
 * to a file drive, the snapshot refusal (test_drive_vhost_user.py), and
 * test_vhost_user_block_disconnect: a killed backend leaves squib
 * answering, and a PATCH says why it failed instead of hanging. */
static void test_vhost_patch_snapshot_and_disconnect(void **state)
{
	static const char *const want_msg = "Running method expected different backend.";
	struct qsd q = {0};
	struct sqb_tc t;
	char body[768], path[256];
	const char *r;
	struct stat st;

	(void)state;
	qsd_start(&q, "patch", 1 << 20, 0, 1);
	snprintf(path, sizeof(path), "%s/patch-file.img", tmpdir);
	make_image(path, 1 << 20, 0);
	vt_spawn(&t, squib_bin);
	vhost_body(body, sizeof(body), "scratch_vub", q.sock, NULL);
	vt_req(&t, "PUT", "/drives/scratch_vub", body, 204); /* slot 0: the guest's device */
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch\",\"path_on_host\":\"%s\",\"is_root_device\":false}",
		 path);
	vt_req(&t, "PUT", "/drives/scratch", body, 204);
	/* before boot: "not supported before starting" (test_drive_patch) */
	r = vt_req(&t, "PATCH", "/drives/scratch_vub", "{\"drive_id\":\"scratch_vub\"}", 400);
	assert_non_null(strstr(r, "not supported before starting the microVM"));
	start(&t, "mode=hold seed=3 sectors=8");
	vt_expect_serial(&t, "VBLK hold-wait\n", 30000);

	/* _drive_patch */
	r = vt_req(&t, "PATCH", "/drives/scratch", "{\"drive_id\":\"scratch\"}", 400);
	assert_non_null(strstr(r, want_msg));
	r = vt_req(&t, "PATCH", "/drives/scratch_vub",
		   "{\"drive_id\":\"scratch_vub\",\"path_on_host\":\"some_path\"}", 400);
	assert_non_null(strstr(r, want_msg));
	r = vt_req(&t, "PATCH", "/drives/scratch_vub",
		   "{\"drive_id\":\"scratch_vub\",\"rate_limiter\":{\"bandwidth\":{\"size\":"
		   "1000000,\"refill_time\":100},\"ops\":{\"size\":1,\"refill_time\":100}}}",
		   400);
	assert_non_null(strstr(r, want_msg));
	/* the vhost-user update: the backend's config again, 204 */
	vt_req(&t, "PATCH", "/drives/scratch_vub", "{\"drive_id\":\"scratch_vub\"}", 204);
	r = vt_req(&t, "GET", "/vm/config", NULL, 200);
	snprintf(body, sizeof(body),
		 "{\"drive_id\":\"scratch_vub\",\"partuuid\":null,\"is_root_device\":false,"
		 "\"cache_type\":\"Unsafe\",\"is_read_only\":null,\"path_on_host\":null,"
		 "\"rate_limiter\":null,\"io_engine\":null,\"socket\":\"%s\"}",
		 q.sock);
	if (!strstr(r, body))
		fail_msg("vm/config: %s\nwant: %s", r, body);

	/* lib.rs check_unsnapshottable_devices: 400, nothing written */
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/vub.state\","
		 "\"mem_file_path\":\"%s/vub.mem\"}",
		 tmpdir, tmpdir);
	r = vt_req(&t, "PUT", "/snapshot/create", body, 400);
	assert_non_null(strstr(r, "Create snapshot error: Cannot save the microVM state: Operation "
				  "not allowed: Devices without snapshot support are present: "
				  "vhost-user-block(id: scratch_vub)"));
	snprintf(path, sizeof(path), "%s/vub.state", tmpdir);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/vub.mem", tmpdir);
	assert_int_equal(stat(path, &st), -1);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);

	/* the backend dies: squib answers, the PATCH names the reason */
	qsd_stop(&q);
	vt_req(&t, "GET", "/vm/config", NULL, 200);
	r = vt_req(&t, "PATCH", "/drives/scratch_vub", "{\"drive_id\":\"scratch_vub\"}", 400);
	assert_non_null(strstr(r, "Unable to patch the block device: Block: Vhost user backend "
				  "error: Get config failed: "));
	vt_req(&t, "GET", "/machine-config", NULL, 200);
	tc_stop(&t);
}

/* Firecracker's test_config_change, the squib side: PATCH with only
 * drive_id re-reads the backend's config and the running guest gets a
 * config-change interrupt (InterruptStatus CONFIG) and reads the backend's
 * capacity.  (qemu-storage-daemon 7.2 keeps the capacity it started with
 * after a block_resize, so a changed value is checked in virtio.vhost
 * against a fake backend.) */
static void test_vhost_patch_raises_a_config_change(void **state)
{
	struct qsd q = {0};
	struct sqb_tc t;
	char body[512], mpath[300], why[512], *m, *line;
	uint64_t v;

	(void)state;
	qsd_start(&q, "cfgchg", 1 << 20, 0, 1);
	assert_int_equal(
	    tc_spawn_stdin(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
	snprintf(mpath, sizeof(mpath), "%s/vhu-metrics", tmpdir);
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", mpath);
	vt_req(&t, "PUT", "/metrics", body, 204);
	vhost_body(body, sizeof(body), "scratch", q.sock, NULL);
	vt_req(&t, "PUT", "/drives/scratch", body, 204);
	start(&t, "mode=resize");
	vt_expect_serial(&t, "VBLK capacity=2048 ", 30000);
	vt_expect_serial(&t, "VBLK resize-wait\n", 30000);
	vt_req(&t, "PATCH", "/drives/scratch", "{\"drive_id\":\"scratch\"}", 204);
	/* Firecracker's vhost_user_block_<id> group (vhost_user_metrics.rs,
	 * fcmetrics.py), and no block_<id> group for a vhost-user drive */
	vt_req(&t, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}", 204);
	m = tc_read_file(mpath);
	line = fcm_last_line(m);
	free(m);
	assert_non_null(line);
	if (fcm_validate(line, 5000, why, sizeof(why)) || fcm_check_order(line, why, sizeof(why)))
		fail_msg("metrics line: %s: %s", why, line);
	if (!fcm_has(line, "vhost_user_block_scratch") || fcm_has(line, "block_scratch"))
		fail_msg("no vhost_user_block_scratch group, or a block_scratch: %s", line);
	for (const char *const *k =
		 (const char *const[]){"vhost_user_block_scratch.init_time_us",
				       "vhost_user_block_scratch.activate_time_us",
				       "vhost_user_block_scratch.config_change_time_us", NULL};
	     *k; k++)
		if (fcm_u64(line, *k, &v) || v == 0)
			fail_msg("%s not measured: %s", *k, line);
	if (fcm_u64(line, "vhost_user_block_scratch.activate_fails", &v) || v != 0)
		fail_msg("activate_fails: %s", line);
	free(line);
	assert_int_equal(write(t.stdin_fd, "r", 1), 1);
	vt_expect_done_ok(&t, "VBLK", 30000);
	vt_expect_serial(&t, "VBLK resized capacity=2048 isr=2\n", 100);
	tc_stop(&t);
	qsd_stop(&q);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api_tests[] = {
	    cmocka_unit_test(test_put_vhost_drive_bad_combinations),
	    cmocka_unit_test(test_put_vhost_drive_unreachable_backend),
	    cmocka_unit_test(test_vm_config_shows_vhost_drive),
	    cmocka_unit_test(test_config_file_vhost_drive),
	};
	const struct CMUnitTest guest_tests[] = {
	    cmocka_unit_test(test_vhost_rw_guest_writes_the_image),
	    cmocka_unit_test(test_vhost_read_only_export_refuses_writes),
	    cmocka_unit_test(test_vhost_patch_snapshot_and_disconnect),
	    cmocka_unit_test(test_vhost_patch_raises_a_config_change),
	};
	const struct vt_main m = {
	    .tmp_template = "/tmp/squib-vhu-XXXXXX",
	    .tmpdir = tmpdir,
	    .tmpdir_cap = sizeof(tmpdir),
	    .squib_bin = &squib_bin,
	    .guest_dir = &guest_dir,
	    .snap_tool = &snap_tool,
	    .api_group = "vhost_api",
	    .guest_group = "vhost_guests",
	    .api_tests = api_tests,
	    .guest_tests = guest_tests,
	    .n_api = sizeof(api_tests) / sizeof(api_tests[0]),
	    .n_guests = sizeof(guest_tests) / sizeof(guest_tests[0]),
	    .setup = find_qsd,
	};

	signal(SIGPIPE, SIG_IGN);
	return vt_main(&m, argc, argv);
}
