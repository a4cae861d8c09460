/* virtio-balloon in squib (issue 14).  `api`: the /balloon endpoints in
 * process, written from Firecracker's docs/ballooning.md, its swagger and
 * test_api.py's balloon sequence (not from ctl_balloon.c).  `discard`: guest
 * pages dropped per host backing (shared memfd, MAP_PRIVATE file, private
 * anonymous, a mix) read zero and give their memory back.  `guests`: the
 * real squib on /dev/kvm with the virtioballoon guest: inflate (host RSS
 * drops), statistics, free page reporting, deflate, then snapshot and load
 * by mmap and eagerly with the guest's own memory checks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "dev_balloon.h"
#include "squib_client.h"

#define PG 4096ul

static const char *squib_bin, *guest_dir;
static char tmpdir[64];

/* ------------------------------------------------------------ api (docs) */

static int api(struct sqb_ctl *c, const char *method, const char *path, const char *json,
	       struct sqb_ctl_resp *r)
{
	sqb_ctl_handle(c, method, path, json, json ? strlen(json) : 0, r);
	return r->status;
}

static void api_fault(struct sqb_ctl *c, const char *method, const char *path, const char *json,
		      const char *needle)
{
	struct sqb_ctl_resp r;

	if (api(c, method, path, json, &r) != 400 || !strstr(r.body, needle))
		fail_msg("%s %s %s: want 400 with '%s', got %d %s", method, path, json ? json : "",
			 needle, r.status, r.body);
}

static const char *api_ok(struct sqb_ctl *c, const char *method, const char *path, const char *json,
			  int want)
{
	static struct sqb_ctl_resp r;

	if (api(c, method, path, json, &r) != want)
		fail_msg("%s %s %s: want %d, got %d %s", method, path, json ? json : "", want,
			 r.status, r.body);
	return r.body;
}

/* test_api.py test_api_balloon, the part before InstanceStart, on a
 * 256 MiB machine as there. */
static void test_put_get_patch_before_boot(void **state)
{
	struct sqb_ctl c;
	const char *b;

	(void)state;
	sqb_ctl_init(&c);
	api_ok(&c, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":256}", 204);
	/* updating an inexistent balloon device is an error */
	api_fault(&c, "PATCH", "/balloon", "{\"amount_mib\":0}", "");
	/* GET without one: swagger 400 "Balloon device not configured." */
	api_fault(&c, "GET", "/balloon", NULL, "No balloon device found");
	api_ok(&c, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true}", 204);
	/* overwriting one is fine */
	api_ok(&c, "PUT", "/balloon",
	       "{\"amount_mib\":0,\"deflate_on_oom\":false,\"stats_polling_interval_s\":5}", 204);
	b = api_ok(&c, "GET", "/balloon", NULL, 200);
	/* "the same structure as the one used to configure the device" */
	assert_string_equal(b, "{\"amount_mib\":0,\"deflate_on_oom\":false,"
			       "\"stats_polling_interval_s\":5,\"free_page_hinting\":false,"
			       "\"free_page_reporting\":false}");
	/* updating is forbidden before boot */
	api_fault(&c, "PATCH", "/balloon", "{\"amount_mib\":2}", "before starting");
	/* not larger than guest memory */
	api_fault(&c, "PUT", "/balloon",
		  "{\"amount_mib\":1024,\"deflate_on_oom\":false,\"stats_polling_interval_s\":5}",
		  "Amount of pages requested is too large");
	b = api_ok(&c, "GET", "/balloon", NULL, 200);
	assert_non_null(strstr(b, "\"stats_polling_interval_s\":5"));
	sqb_ctl_destroy(&c);
}

/* Swagger definitions: Balloon requires amount_mib and deflate_on_oom;
 * BalloonStatsUpdate requires stats_polling_interval_s; unknown fields and
 * out-of-range integers are refused. */
static void test_body_shapes(void **state)
{
	struct sqb_ctl c;

	(void)state;
	sqb_ctl_init(&c);
	api_fault(&c, "PUT", "/balloon", "{\"amount_mib\":1}", "missing field `deflate_on_oom`");
	api_fault(&c, "PUT", "/balloon", "{\"deflate_on_oom\":true}", "missing field `amount_mib`");
	api_fault(&c, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true,\"x\":1}",
		  "unknown field `x`");
	api_fault(&c, "PUT", "/balloon",
		  "{\"amount_mib\":1,\"deflate_on_oom\":true,\"stats_polling_interval_s\":65536}",
		  "");
	api_fault(&c, "PUT", "/balloon", "{\"amount_mib\":-1,\"deflate_on_oom\":true}", "");
	api_fault(&c, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":1}", "");
	api_fault(&c, "PATCH", "/balloon/statistics", "{}",
		  "missing field `stats_polling_interval_s`");
	/* statistics and hinting exist only after boot */
	api_fault(&c, "GET", "/balloon/statistics", NULL, "before starting the microVM");
	api_fault(&c, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":1}",
		  "before starting the microVM");
	/* hinting/start and /stop take no body (required: false) */
	api_fault(&c, "PATCH", "/balloon/hinting/start", NULL, "before starting the microVM");
	api_fault(&c, "PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\":false}",
		  "before starting the microVM");
	api_fault(&c, "PATCH", "/balloon/hinting/stop", NULL, "before starting the microVM");
	api_fault(&c, "GET", "/balloon/hinting/status", NULL, "before starting the microVM");
	sqb_ctl_destroy(&c);
}

/* request/balloon.rs: a sub-path it does not know is named, whatever the
 * state and body (parse_get_balloon, parse_get_hinting, parse_patch_hinting). */
static void test_unknown_sub_paths(void **state)
{
	struct sqb_ctl c;

	(void)state;
	sqb_ctl_init(&c);
	api_fault(&c, "GET", "/balloon/foo", NULL, "Unrecognized GET request path `foo`.");
	api_fault(&c, "GET", "/balloon/hinting", NULL,
		  "Unrecognized GET request path `/hinting/`.");
	api_fault(&c, "GET", "/balloon/hinting/start", NULL,
		  "Unrecognized GET request path `/hinting/start`.");
	api_fault(&c, "PATCH", "/balloon/hinting", NULL,
		  "Unrecognized PATCH request path `/hinting/`.");
	api_fault(&c, "PATCH", "/balloon/hinting", "{}",
		  "Unrecognized PATCH request path `/hinting/`.");
	api_fault(&c, "PATCH", "/balloon/hinting/status", "{}",
		  "Unrecognized PATCH request path `/hinting/status`.");
	/* the known ones still reach their handlers */
	api_fault(&c, "GET", "/balloon/statistics", NULL, "before starting the microVM");
	api_fault(&c, "PATCH", "/balloon/statistics", NULL, "Empty PATCH request.");
	api_fault(&c, "PATCH", "/balloon/hinting/stop", NULL, "before starting the microVM");
	sqb_ctl_destroy(&c);
}

/* test_api.py's full-config check: the balloon as GET /vm/config shows it. */
static void test_vm_config_shows_the_balloon(void **state)
{
	struct sqb_ctl c;
	const char *b;

	(void)state;
	sqb_ctl_init(&c);
	b = api_ok(&c, "GET", "/vm/config", NULL, 200);
	assert_non_null(strstr(b, "{\"balloon\":null,"));
	api_ok(&c, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true}", 204);
	b = api_ok(&c, "GET", "/vm/config", NULL, 200);
	assert_non_null(strstr(b, "{\"balloon\":{\"amount_mib\":1,\"deflate_on_oom\":true,"
				  "\"stats_polling_interval_s\":0,\"free_page_hinting\":false,"
				  "\"free_page_reporting\":false},\"drives\":"));
	/* a balloon is boot-specific configuration: no snapshot load after it */
	api_fault(&c, "PUT", "/snapshot/load",
		  "{\"snapshot_path\":\"/nonexistent\",\"mem_backend\":{\"backend_type\":\"File\","
		  "\"backend_path\":\"/nonexistent\"}}",
		  "not allowed after configuring boot-specific resources");
	sqb_ctl_destroy(&c);
}

/* ------------------------------------------------------ discard (backings) */

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int all_byte(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static unsigned int resident(uint8_t *p, size_t pages)
{
	unsigned char vec[256];
	unsigned int n = 0;

	assert_true(pages <= sizeof(vec));
	assert_int_equal(mincore(p, pages * PG, vec), 0);
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	return n;
}

/* The VM's own guest RAM: a memfd mapped shared.  The hole is punched in
 * the file (another view of it reads zero) and its blocks are freed. */
static void test_discard_shared_memfd(void **state)
{
	int fd = memfd_create("balloon-test", MFD_CLOEXEC);
	uint8_t *p, *q;
	struct stat a, b;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * PG), 0);
	p = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0xaa, 64 * PG);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(sqb_balloon_discard_host(p + 8 * PG, 16 * PG, -1), 0);
	assert_int_equal(resident(p + 8 * PG, 16), 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_true(b.st_blocks <= a.st_blocks - (blkcnt_t)(16 * PG / 512));
	q = mmap(NULL, 64 * PG, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(q != MAP_FAILED);
	assert_true(all_zero(q + 8 * PG, 16 * PG));
	assert_true(all_zero(p + 8 * PG, 16 * PG));
	assert_true(all_byte(p, 8 * PG, 0xaa));
	assert_true(all_byte(p + 24 * PG, 40 * PG, 0xaa));
	munmap(q, 64 * PG);
	munmap(p, 64 * PG);
	close(fd);
}

/* An mmap-loaded snapshot: MAP_PRIVATE of the memory file.  MADV_DONTNEED
 * would show the file's bytes again; the range must read zero, clean and
 * copied-on-write pages alike, and the file stays as it was. */
static void test_discard_private_file(void **state)
{
	char path[128];
	uint8_t *p, buf[PG];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/mem", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, buf, PG), (ssize_t)PG);
	p = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	assert_true(p != MAP_FAILED);
	memset(p + 4 * PG, 0x77, 4 * PG); /* copied on write */
	assert_true(all_byte(p + 8 * PG, 8 * PG, 0x5a));
	assert_int_equal(sqb_balloon_discard_host(p + 4 * PG, 16 * PG, -1), 0);
	assert_true(all_zero(p + 4 * PG, 16 * PG));
	assert_true(all_byte(p, 4 * PG, 0x5a));
	assert_true(all_byte(p + 20 * PG, 44 * PG, 0x5a));
	assert_int_equal(pread(fd, buf, PG, 10 * PG), (ssize_t)PG);
	assert_true(all_byte(buf, PG, 0x5a));
	/* the replacement is writable guest memory */
	p[5 * PG] = 1;
	assert_int_equal(p[5 * PG], 1);
	munmap(p, 64 * PG);
	close(fd);
}

static void test_discard_private_anonymous(void **state)
{
	uint8_t *p =
	    mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(p != MAP_FAILED);
	memset(p, 0x33, 64 * PG);
	assert_int_equal(resident(p, 64), 64);
	assert_int_equal(sqb_balloon_discard_host(p + 16 * PG, 32 * PG, -1), 0);
	assert_int_equal(resident(p + 16 * PG, 32), 0);
	assert_true(all_zero(p + 16 * PG, 32 * PG));
	assert_true(all_byte(p, 16 * PG, 0x33));
	assert_true(all_byte(p + 48 * PG, 16 * PG, 0x33));
	munmap(p, 64 * PG);
}

/* An mmap restore leaves anonymous memory with file runs mapped over it:
 * one range across both kinds, read through a maps fd held open (as the
 * VM's event loop, which may not open files, does). */
static void test_discard_mixed_range(void **state)
{
	char path[128];
	uint8_t *p, *f, buf[PG];
	int fd, maps;

	(void)state;
	snprintf(path, sizeof(path), "%s/mem2", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	memset(buf, 0x6b, sizeof(buf));
	for (int i = 0; i < 8; i++)
		assert_int_equal(write(fd, buf, PG), (ssize_t)PG);
	p = mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0x11, 32 * PG);
	f = mmap(p + 8 * PG, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
	assert_true(f == p + 8 * PG);
	maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	assert_true(maps >= 0);
	assert_int_equal(sqb_balloon_discard_host(p + 4 * PG, 16 * PG, maps), 0);
	assert_true(all_zero(p + 4 * PG, 16 * PG));
	assert_true(all_byte(p, 4 * PG, 0x11));
	assert_true(all_byte(p + 20 * PG, 12 * PG, 0x11));
	/* twice through the same fd: it is read again from the start */
	memset(p + 4 * PG, 0x22, 16 * PG);
	assert_int_equal(sqb_balloon_discard_host(p + 4 * PG, 16 * PG, maps), 0);
	assert_true(all_zero(p + 4 * PG, 16 * PG));
	close(maps);
	munmap(p, 32 * PG);
	close(fd);
}

static void test_discard_refuses_bad_ranges(void **state)
{
	uint8_t *p = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(p != MAP_FAILED);
	assert_int_equal(sqb_balloon_discard_host(p + 1, PG, -1), -EINVAL);
	assert_int_equal(sqb_balloon_discard_host(p, 100, -1), -EINVAL);
	assert_int_equal(sqb_balloon_discard_host(p, 0, -1), -EINVAL);
	assert_int_equal(sqb_balloon_discard_host(NULL, PG, -1), -EINVAL);
	munmap(p + 4 * PG, 4 * PG);
	/* half of it no longer mapped: an error, not a crash */
	assert_true(sqb_balloon_discard_host(p, 8 * PG, -1) < 0);
	munmap(p, 4 * PG);
}

/* ----------------------------------------------------------------- main */

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* ---------------------------------------------------------------- guests */

static const char *req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		       int want)
{
	static char resp[8192];
	int st = tc_req(t, method, path, json, resp, sizeof(resp));

	if (st != want) {
		char *e = tc_read_file(t->errlog), *s = tc_read_file(t->serial);
		fail_msg("%s %s %s: expected %d, got %d: %s\nserial: %.1500s\nlog: %.1500s", method,
			 path, json ? json : "", want, st, resp, s ? s : "", e ? e : "");
	}
	return resp;
}

static void expect_serial(struct sqb_tc *t, const char *needle, int ms)
{
	if (tc_wait_serial(t, needle, ms) < 0) {
		char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);
		fail_msg("serial never showed '%s'; serial: %.2000s\nlog: %.1500s", needle,
			 s ? s : "", e ? e : "");
	}
}

/* Count of needle in the serial output so far. */
static int serial_count(struct sqb_tc *t, const char *needle)
{
	char *s = tc_read_file(t->serial), *p = s;
	int n = 0;

	while (p && (p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	free(s);
	return n;
}

/* Wait for the n-th occurrence of needle. */
static void expect_nth(struct sqb_tc *t, const char *needle, int n, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (serial_count(t, needle) >= n)
			return;
		usleep(10000);
	}
	expect_serial(t, "(timed out)", 1);
	(void)needle;
}

static void spawn(struct sqb_tc *t)
{
	assert_int_equal(
	    tc_spawn_stdin(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
}

static void input(struct sqb_tc *t, const char *s)
{
	assert_int_equal(write(t->stdin_fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Resident memory of the squib process (guest pages it maps included). */
static long rss_kib(struct sqb_tc *t)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	assert_true(t->pid > 1);
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)t->pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (v < 0 && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Rss:", 4))
			v = strtol(line + 4, NULL, 10);
	fclose(f);
	assert_true(v > 0);
	return v;
}

static void start_vm(struct sqb_tc *t, int dirty)
{
	char body[512];

	req(t, "PUT", "/machine-config",
	    dirty ? "{\"vcpu_count\":1,\"mem_size_mib\":64,\"track_dirty_pages\":true}"
		  : "{\"vcpu_count\":1,\"mem_size_mib\":64}",
	    204);
	/* docs/ballooning.md's installation example, plus free page reporting */
	req(t, "PUT", "/balloon",
	    "{\"amount_mib\":0,\"deflate_on_oom\":false,\"stats_polling_interval_s\":1,"
	    "\"free_page_reporting\":true}",
	    204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/virtioballoon.elf\",\"boot_args\":\"mem=64\"}",
		 guest_dir);
	req(t, "PUT", "/boot-source", body, 204);
	req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	expect_serial(t, "VBAL READY 4\n", 60000);
}

static void start(struct sqb_tc *t)
{
	start_vm(t, 0);
}

static void check_guest(struct sqb_tc *t, int nth)
{
	char *s;

	input(t, "c");
	expect_nth(t, "VBAL CHECKED", nth, 60000);
	s = tc_read_file(t->serial);
	if (!s || strstr(s, " FAIL "))
		fail_msg("the guest found a failure: %s", s ? s : "");
	free(s);
}

static void snap_create_type(struct sqb_tc *t, const char *type, const char *name)
{
	char body[600];

	req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s/%s.state\","
		 "\"mem_file_path\":\"%s/%s.mem\"}",
		 type, tmpdir, name, tmpdir, name);
	req(t, "PUT", "/snapshot/create", body, 204);
}

static void snap_create(struct sqb_tc *t, const char *name)
{
	snap_create_type(t, "Full", name);
}

static void snap_load(struct sqb_tc *t, const char *name, const char *mode)
{
	char body[700];

	spawn(t);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/%s.state\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s/%s.mem\"},\"resume_vm\":true,"
		 "\"squib\":{\"restore\":\"%s\"}}",
		 tmpdir, name, tmpdir, name, mode);
	req(t, "PUT", "/snapshot/load", body, 204);
}

/* Inflate: the host RSS drops by the ballooned memory; statistics come
 * from the guest and are refreshed each polling interval; free page
 * reporting drops its range; deflate; the guest's memory checks pass. */
static void test_inflate_stats_report_deflate(void **state)
{
	struct sqb_tc t;
	long before, after;
	const char *r;
	char *p;

	(void)state;
	spawn(&t);
	start(&t);
	before = rss_kib(&t);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":16}", 204);
	expect_serial(&t, "VBAL INFLATED 4096\n", 60000);
	after = rss_kib(&t);
	if (before - after < 14 * 1024)
		fail_msg("RSS %ld KiB -> %ld KiB after inflating 16 MiB", before, after);
	r = req(&t, "GET", "/balloon", NULL, 200);
	assert_non_null(strstr(r, "\"amount_mib\":16,"));
	r = req(&t, "GET", "/balloon/statistics", NULL, 200);
	if (!strstr(r, "\"target_pages\":4096,\"actual_pages\":4096,\"target_mib\":16,"
		       "\"actual_mib\":16") ||
	    !strstr(r, "\"free_memory\":19087360") || !strstr(r, "\"total_memory\":67108864"))
		fail_msg("statistics: %s", r);
	/* each interval the buffer goes back and the guest refills it */
	for (int i = 0; i < 300; i++) {
		r = req(&t, "GET", "/balloon/statistics", NULL, 200);
		p = strstr(r, "\"minor_faults\":");
		if (p && strtol(p + 15, NULL, 10) >= 1)
			break;
		usleep(10000);
	}
	if (!p || strtol(p + 15, NULL, 10) < 1)
		fail_msg("statistics never refreshed: %s", r);
	/* Firecracker's refusals after boot */
	r = req(&t, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":0}", 400);
	assert_non_null(strstr(r, "Statistics cannot be enabled/disabled after activation."));
	req(&t, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":2}", 204);
	r = req(&t, "PATCH", "/balloon", "{\"amount_mib\":300}", 400);
	assert_non_null(strstr(r, "Requested memory should be less than 300MiB"));
	/* test_api.py: u32::MAX / 128 MiB */
	r = req(&t, "PATCH", "/balloon", "{\"amount_mib\":33554432}", 400);
	assert_non_null(
	    strstr(r, "Balloon update error: Balloon: Requested memory should be less than"));
	req(&t, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":false}", 400);
	r = req(&t, "PATCH", "/balloon/hinting/start", NULL, 400);
	assert_non_null(strstr(r, "Attempting to use hinting when not enabled"));
	r = req(&t, "GET", "/vm/config", NULL, 200);
	assert_non_null(strstr(r, "\"balloon\":{\"amount_mib\":16,\"deflate_on_oom\":false,"
				  "\"stats_polling_interval_s\":2,"));
	/* free page reporting */
	before = rss_kib(&t);
	input(&t, "r");
	expect_serial(&t, "VBAL report PASS\n", 30000);
	after = rss_kib(&t);
	if (before - after < 1536)
		fail_msg("RSS %ld KiB -> %ld KiB after reporting 2 MiB", before, after);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":8}", 204);
	expect_serial(&t, "VBAL DEFLATED 2048\n", 60000);
	check_guest(&t, 1);
	input(&t, "q");
	expect_serial(&t, "VBAL DONE pass=", 30000);
	tc_stop(&t);
}

/* Snapshot with pages in the balloon, load (mmap: the memory file mapped
 * MAP_PRIVATE; eager: copied into the memfd), the guest checks its memory,
 * then inflates pages that the snapshot holds as data: they must read zero
 * (MADV_DONTNEED on a private file mapping would bring the file back). */
static void snapshot_then_load(const char *mode)
{
	struct sqb_tc t, t2;
	char name[32];
	const char *r;

	snprintf(name, sizeof(name), "b-%s", mode);
	spawn(&t);
	start(&t);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":16}", 204);
	expect_serial(&t, "VBAL INFLATED 4096\n", 60000);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":8}", 204);
	expect_serial(&t, "VBAL DEFLATED 2048\n", 60000);
	snap_create(&t, name);
	tc_stop(&t);

	snap_load(&t2, name, mode);
	r = req(&t2, "GET", "/balloon", NULL, 200);
	if (!strstr(r, "\"amount_mib\":8,") || !strstr(r, "\"free_page_reporting\":true"))
		fail_msg("GET /balloon after load: %s", r);
	check_guest(&t2, 1);
	req(&t2, "PATCH", "/balloon", "{\"amount_mib\":20}", 204);
	expect_serial(&t2, "VBAL INFLATED 5120\n", 60000);
	check_guest(&t2, 2);
	r = req(&t2, "GET", "/balloon/statistics", NULL, 200);
	assert_non_null(strstr(r, "\"free_memory\":19087360"));
	input(&t2, "q");
	expect_serial(&t2, "VBAL DONE pass=", 30000);
	tc_stop(&t2);
}

static void test_snapshot_load_mmap(void **state)
{
	(void)state;
	snapshot_then_load("mmap");
}

static void test_snapshot_load_eager(void **state)
{
	(void)state;
	snapshot_then_load("eager");
}

/* Pages the VMM discarded after a Full are zero in the next Diff: KVM's
 * dirty log never sees them, so without the balloon's dirty marks the chain
 * would give back the Full's bytes ([F-121]). */
static void test_diff_after_inflate(void **state)
{
	struct sqb_tc t, t2;

	(void)state;
	spawn(&t);
	start_vm(&t, 1);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":8}", 204);
	expect_serial(&t, "VBAL INFLATED 2048\n", 60000);
	snap_create_type(&t, "Full", "dbase");
	req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":12}", 204);
	expect_serial(&t, "VBAL INFLATED 3072\n", 60000);
	snap_create_type(&t, "Diff", "dtop");
	tc_stop(&t);
	snap_load(&t2, "dtop", "mmap");
	check_guest(&t2, 1);
	input(&t2, "q");
	expect_serial(&t2, "VBAL DONE pass=", 30000);
	tc_stop(&t2);
}

/* Lazy: pages come from a userfaultfd handler; the balloon's discard of a
 * page not yet fetched sends UFFD_EVENT_REMOVE and the page reads zero. */
static void test_snapshot_load_lazy(void **state)
{
	(void)state;
	snapshot_then_load("lazy");
}

/* A background Full (squib's `background` create: the guest runs while the
 * memory is written) and an inflate right after the resume: the pages the
 * guest gives up must still be in the file with their pause-instant bytes.
 * The writer is held 500 ms and every page write-protected
 * (SQB_FAULT=bg_slow_writer,bg_protect), so the discards come first; a
 * discard that dropped the pages would leave zeros where the loaded guest,
 * which never ballooned them, checks its fill byte. */
static void test_inflate_during_a_background_create(void **state)
{
	struct sqb_tc t, t2;
	char body[600];
	const char *r;

	(void)state;
	setenv("SQB_FAULT", "bg_slow_writer,bg_protect", 1);
	spawn(&t);
	unsetenv("SQB_FAULT");
	start(&t);
	req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/bg.state\","
		 "\"mem_file_path\":\"%s/bg.mem\",\"squib\":{\"background\":true}}",
		 tmpdir, tmpdir);
	req(&t, "PUT", "/snapshot/create", body, 204);
	req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	req(&t, "PATCH", "/balloon", "{\"amount_mib\":16}", 204);
	expect_serial(&t, "VBAL INFLATED 4096\n", 60000);
	r = req(&t, "GET", "/snapshot/status", NULL, 200);
	for (int k = 0; k < 1000 && !strstr(r, "\"state\":\"complete\""); k++) {
		usleep(10000);
		r = req(&t, "GET", "/snapshot/status", NULL, 200);
	}
	assert_non_null(strstr(r, "\"state\":\"complete\""));
	check_guest(&t, 1); /* the running guest: its ballooned pages read zero */
	tc_stop(&t);

	snap_load(&t2, "bg", "eager");
	check_guest(&t2, 1); /* the pause instant: no page ballooned, all filled */
	input(&t2, "q");
	expect_serial(&t2, "VBAL DONE pass=", 30000);
	tc_stop(&t2);
}

/* docs/ballooning.md: "insert the balloon into the JSON configuration
 * file given as a command line argument". */
static void test_config_file(void **state)
{
	char path[128], json[700];
	struct sqb_tc t;
	const char *r;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/vm.json", tmpdir);
	snprintf(json, sizeof(json),
		 "{\"boot-source\":{\"kernel_image_path\":\"%s/virtioballoon.elf\","
		 "\"boot_args\":\"mem=64\"},\"machine-config\":{\"vcpu_count\":1,"
		 "\"mem_size_mib\":64},\"balloon\":{\"amount_mib\":4,\"deflate_on_oom\":true,"
		 "\"stats_polling_interval_s\":1}}",
		 guest_dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	assert_int_equal(
	    tc_spawn_stdin(&t, squib_bin,
			   (const char *const[]){"--level", "Info", "--config-file", path, NULL},
			   1),
	    0);
	/* no reporting queue here: inflate, deflate, statistics */
	expect_serial(&t, "VBAL READY 3\n", 60000);
	expect_serial(&t, "VBAL INFLATED 1024\n", 60000);
	r = req(&t, "GET", "/balloon", NULL, 200);
	assert_string_equal(r, "{\"amount_mib\":4,\"deflate_on_oom\":true,"
			       "\"stats_polling_interval_s\":1,\"free_page_hinting\":false,"
			       "\"free_page_reporting\":false}");
	input(&t, "q");
	expect_serial(&t, "VBAL DONE pass=", 30000);
	tc_stop(&t);
}

static int run_guest_tests(const char *filter)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inflate_stats_report_deflate),
	    cmocka_unit_test(test_snapshot_load_mmap),
	    cmocka_unit_test(test_snapshot_load_eager),
	    cmocka_unit_test(test_snapshot_load_lazy),
	    cmocka_unit_test(test_diff_after_inflate),
	    cmocka_unit_test(test_inflate_during_a_background_create),
	    cmocka_unit_test(test_config_file),
	};
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n", strerror(errno));
		return 77;
	}
	close(fd);
	if (filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests_name("balloon_guests", tests, NULL, NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api_tests[] = {
	    cmocka_unit_test(test_put_get_patch_before_boot),
	    cmocka_unit_test(test_body_shapes),
	    cmocka_unit_test(test_unknown_sub_paths),
	    cmocka_unit_test(test_vm_config_shows_the_balloon),
	};
	const struct CMUnitTest discard_tests[] = {
	    cmocka_unit_test(test_discard_shared_memfd),
	    cmocka_unit_test(test_discard_private_file),
	    cmocka_unit_test(test_discard_private_anonymous),
	    cmocka_unit_test(test_discard_mixed_range),
	    cmocka_unit_test(test_discard_refuses_bad_ranges),
	};
	int rc;

	if (argc < 2 || (!strcmp(argv[1], "guests") && argc < 4)) {
		fprintf(stderr, "usage: %s api | discard | guests SQUIB GUEST_DIR [FILTER]\n",
			argv[0]);
		return 2;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/squib-balloon-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	if (!strcmp(argv[1], "api")) {
		rc = cmocka_run_group_tests_name("balloon_api", api_tests, NULL, NULL);
	} else if (!strcmp(argv[1], "discard")) {
		rc = cmocka_run_group_tests_name("balloon_discard", discard_tests, NULL, NULL);
	} else {
		squib_bin = argv[2];
		guest_dir = argv[3];
		rc = run_guest_tests(argc > 4 ? argv[4] : NULL);
	}
	rm_tmp();
	return rc;
}
