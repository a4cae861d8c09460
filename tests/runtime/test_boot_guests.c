/* Integration: boot each test guest on /dev/kvm through the real squib
 * binary and its API, and check what the guest reports on the serial port —
 * patterns verified (checksum recomputed here), counter continuous across
 * pause/resume, timer ticks, every SMP vCPU, Ctrl+Alt+Del, --config-file
 * with --no-api, and a triple fault reported as a failure. */
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "squib_client.h"

static const char *squib_bin;
static const char *guest_dir;

/* Configure and start a VM in a squib already spawned. */
static void start_guest(struct sqb_tc *t, const char *guest, const char *args, int vcpus, int mib)
{
	char body[1024], resp[2048];

	snprintf(body, sizeof(body), "{\"vcpu_count\":%d,\"mem_size_mib\":%d}", vcpus, mib);
	assert_int_equal(tc_req(t, "PUT", "/machine-config", body, resp, sizeof(resp)), 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/%s\",\"boot_args\":\"%s\"}",
		 guest_dir, guest, args);
	assert_int_equal(tc_req(t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	if (tc_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
		   sizeof(resp)) != 204)
		fail_msg("InstanceStart: %s", resp);
}

static void boot(struct sqb_tc *t, const char *guest, const char *args, int vcpus, int mib)
{
	assert_int_equal(tc_spawn(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1),
			 0);
	start_guest(t, guest, args, vcpus, mib);
}

static void expect_serial(struct sqb_tc *t, const char *needle, int ms)
{
	if (tc_wait_serial(t, needle, ms) < 0) {
		char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);
		fail_msg("serial never showed '%s'; serial: %.1500s\nlog: %.1500s", needle,
			 s ? s : "", e ? e : "");
	}
}

/* The memory-pattern guest's algorithm (tests/guests/mempattern.c). */
static uint64_t pattern_checksum(uint64_t mib, uint64_t wpp, uint64_t seed)
{
	uint64_t sum = 0, s = seed;

	for (uint64_t i = 0; i < (mib << 8) * wpp; i++) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		sum = (sum ^ z) * 0x100000001b3ULL;
	}
	return sum;
}

static void test_mempattern_guest_verifies_and_checksum_matches(void **state)
{
	struct sqb_tc t;
	char want[128];

	(void)state;
	boot(&t, "mempattern.elf", "mib=8 wpp=4 seed=7", 1, 32);
	snprintf(want, sizeof(want), "PATTERN OK mib=8 checksum=0x%016llx",
		 (unsigned long long)pattern_checksum(8, 4, 7));
	expect_serial(&t, want, 30000);
	expect_serial(&t, "PATTERN mmio-hole=0x00000000ffffffff\n", 100);
	assert_int_equal(tc_wait_exit(&t, 10000), 0); /* guest reset ends squib cleanly */
	tc_stop(&t);
}

/* Every "count=N" line is N = previous + 1, starting at 1. */
static uint64_t check_counter_continuity(const char *s)
{
	uint64_t expect = 1;

	for (const char *p = strstr(s, "count="); p; p = strstr(p + 1, "count=")) {
		uint64_t v;

		if (!strchr(p, '\n'))
			break; /* the last line is still being written */
		v = strtoull(p + 6, NULL, 10);
		if (v != expect)
			fail_msg("counter jumped: saw %llu, expected %llu", (unsigned long long)v,
				 (unsigned long long)expect);
		expect++;
	}
	return expect - 1;
}

static void test_counter_continuous_across_pause_resume_then_ctrl_alt_del(void **state)
{
	struct sqb_tc t;
	char resp[2048], *s1, *s2;
	uint64_t before, after;

	(void)state;
	boot(&t, "counter.elf", "delay=3000", 1, 16);
	expect_serial(&t, "count=5\n", 20000);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	assert_non_null(strstr(resp, "\"state\":\"Paused\""));
	s1 = tc_read_file(t.serial);
	usleep(300000);
	s2 = tc_read_file(t.serial);
	assert_string_equal(s1, s2); /* no guest progress while paused */
	before = check_counter_continuity(s2);
	free(s1);
	free(s2);
	/* Pausing twice is harmless; pre-boot-only calls are refused now. */
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", "{\"kernel_image_path\":\"/dev/null\"}",
				resp, sizeof(resp)),
			 400);
	assert_non_null(strstr(resp, "not supported after starting the microVM"));
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 400);
	assert_int_equal(
	    tc_req(&t, "PATCH", "/machine-config", "{\"vcpu_count\":2}", resp, sizeof(resp)), 400);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)),
			 204);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	assert_non_null(strstr(resp, "\"state\":\"Running\""));
	for (int i = 0; i < 1000; i++) { /* up to 20 s on a loaded host */
		s1 = tc_read_file(t.serial);
		after = check_counter_continuity(s1);
		free(s1);
		if (after >= before + 5)
			break;
		usleep(20000);
	}
	assert_true(after >= before + 5);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", resp,
				sizeof(resp)),
			 204);
	expect_serial(&t, "(ctrl-alt-del), resetting", 20000);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	s1 = tc_read_file(t.serial);
	check_counter_continuity(s1);
	free(s1);
	tc_stop(&t);
}

struct hammer_arg {
	struct sqb_tc *t;
	int id, errors;
};

static void *hammer(void *p)
{
	struct hammer_arg *a = p;
	char resp[2048];

	for (int i = 0; i < 40; i++) {
		const char *st =
		    (i + a->id) & 1 ? "{\"state\":\"Paused\"}" : "{\"state\":\"Resumed\"}";
		if (tc_req(a->t, "PATCH", "/vm", st, resp, sizeof(resp)) != 204)
			a->errors++;
		if (tc_req(a->t, "GET", "/", NULL, resp, sizeof(resp)) != 200)
			a->errors++;
		if (tc_req(a->t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":8}",
			   resp, sizeof(resp)) != 400)
			a->errors++;
	}
	return NULL;
}

/* Four clients at once pause, resume, query and send refused updates to a
 * running 2-vCPU guest; every answer is right, the guest's counter stays
 * continuous, and SIGTERM then ends squib cleanly. */
static void test_concurrent_clients_pause_resume_then_sigterm(void **state)
{
	struct sqb_tc t;
	struct hammer_arg a[4];
	pthread_t th[4];
	char resp[2048], *s;

	(void)state;
	boot(&t, "counter.elf", "delay=3000", 2, 16);
	expect_serial(&t, "count=3\n", 20000);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct hammer_arg){&t, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].errors, 0);
	}
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)),
			 204);
	s = tc_read_file(t.serial);
	uint64_t before = check_counter_continuity(s);
	free(s);
	for (int i = 0; i < 1000; i++) {
		s = tc_read_file(t.serial);
		uint64_t now = check_counter_continuity(s);
		free(s);
		if (now >= before + 3)
			break;
		usleep(20000);
	}
	kill(t.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	s = tc_read_file(t.serial);
	assert_true(check_counter_continuity(s) >= before + 3);
	free(s);
	tc_stop(&t);
}

static void test_timer_guest_counts_lapic_ticks(void **state)
{
	struct sqb_tc t;

	(void)state;
	boot(&t, "timer.elf", "ticks=30 period=2000000", 1, 16);
	expect_serial(&t, "tick 10\n", 20000);
	expect_serial(&t, "TIMER OK ticks=30\n", 20000);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
}

static void test_smp_guest_every_vcpu_reports(void **state)
{
	struct sqb_tc t;
	char want[64];

	(void)state;
	boot(&t, "smp.elf", "cpus=4", 4, 32);
	expect_serial(&t, "SMP OK cpus=4\n", 30000);
	for (int i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "cpu %d ok sum=", i);
		expect_serial(&t, want, 1000);
	}
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
}

/* The maximum vCPU count, paused and resumed several times while the
 * secondaries are being brought up: the rendezvous must park all 32. */
static void test_smp_32_vcpus_survive_pause_resume_during_bringup(void **state)
{
	struct sqb_tc t;
	char resp[2048];

	(void)state;
	boot(&t, "smp.elf", "cpus=32", 32, 32);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)), 204);
		assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
		assert_non_null(strstr(resp, "\"state\":\"Paused\""));
		assert_int_equal(
		    tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)), 204);
		usleep(100000);
	}
	expect_serial(&t, "SMP OK cpus=32\n", 60000);
	expect_serial(&t, "cpu 31 ok sum=", 100);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
}

static void test_config_file_no_api_boots_and_exits(void **state)
{
	struct sqb_tc t;
	char cfg[256], json[1024];
	FILE *f;

	(void)state;
	snprintf(cfg, sizeof(cfg), "/tmp/sqb-cfg-%d.json", (int)getpid());
	snprintf(
	    json, sizeof(json),
	    "{\"boot-source\":{\"kernel_image_path\":\"%s/exits.elf\",\"boot_args\":\"n=500\"},"
	    "\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":16},\"drives\":[],"
	    "\"network-interfaces\":[]}",
	    guest_dir);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", cfg, NULL}, 0),
			 0);
	assert_int_equal(tc_wait_exit(&t, 20000), 0);
	expect_serial(&t, "EXITS done n=500\n", 100);
	tc_stop(&t);
	/* A bad pmem entry is refused with PUT /pmem's message. */
	f = fopen(cfg, "w");
	fputs("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
	      "\"pmem\":[{\"id\":\"p0\"}]}",
	      f);
	fclose(f);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", cfg, NULL}, 0),
			 0);
	assert_int_equal(tc_wait_exit(&t, 10000), 1);
	char *e = tc_read_file(t.errlog);
	assert_non_null(strstr(e, "section `pmem`[0]"));
	assert_non_null(strstr(e, "missing field `path_on_host`"));
	free(e);
	tc_stop(&t);
	/* drives go through PUT /drives: a bad one is refused with its message */
	f = fopen(cfg, "w");
	fputs("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
	      "\"drives\":[{\"drive_id\":\"rootfs\"}]}",
	      f);
	fclose(f);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", cfg, NULL}, 0),
			 0);
	assert_int_equal(tc_wait_exit(&t, 10000), 1);
	e = tc_read_file(t.errlog);
	assert_non_null(strstr(e, "section `drives`[0]"));
	assert_non_null(strstr(e, "missing field `is_root_device`"));
	free(e);
	tc_stop(&t);
	unlink(cfg);
}

/* Firecracker's SerialDevice.rate_limiter (swagger; test_serial_io.py
 * test_serial_rate_limiting): a TokenBucket on the output bytes, the excess
 * dropped and counted in uart.rate_limiter_dropped_bytes.  40,000 bytes
 * against a 4 KiB burst and 1 KiB/s: what reaches the file is at most the
 * burst plus the refill over the guest's run, and the rest is counted. */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_serial_rate_limiter(void **state)
{
	struct sqb_tc t;
	char cfg[256], out[256], mx[256], json[1400], *m;
	const char *p;
	long long t0, ms;
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(cfg, sizeof(cfg), "/tmp/sqb-cfg-rl-%d.json", (int)getpid());
	snprintf(out, sizeof(out), "/tmp/sqb-serial-rl-%d.out", (int)getpid());
	snprintf(mx, sizeof(mx), "/tmp/sqb-metrics-rl-%d.json", (int)getpid());
	unlink(out);
	unlink(mx);
	snprintf(json, sizeof(json),
		 "{\"boot-source\":{\"kernel_image_path\":\"%s/exits.elf\",\"boot_args\":"
		 "\"n=10 spam=40000\"},\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":16},"
		 "\"serial\":{\"serial_out_path\":\"%s\",\"rate_limiter\":{\"size\":1024,"
		 "\"one_time_burst\":4096,\"refill_time\":1000}},"
		 "\"metrics\":{\"metrics_path\":\"%s\"}}",
		 guest_dir, out, mx);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	t0 = now_ms();
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", cfg, NULL}, 0),
			 0);
	assert_int_equal(tc_wait_exit(&t, 60000), 0);
	ms = now_ms() - t0;
	assert_int_equal(stat(out, &st), 0);
	/* the burst, the initial budget (a full bucket), then 1 byte/ms */
	if (st.st_size < 4096 || st.st_size > 4096 + 1024 + ms * 1024 / 1000 + 64)
		fail_msg("serial file has %lld bytes after %lld ms", (long long)st.st_size, ms);
	m = tc_read_file(mx);
	assert_non_null(m);
	/* a counter: each line has the change since the line before (the
	 * first is written when the VM starts), so sum them */
	{
		unsigned long long dropped = 0;

		assert_non_null(strstr(m, "\"rate_limiter_dropped_bytes\":"));
		for (p = m; (p = strstr(p, "\"rate_limiter_dropped_bytes\":")); p += 29)
			dropped += strtoull(p + 29, NULL, 10);
		if (dropped + (unsigned long long)st.st_size < 40000)
			fail_msg("written %lld + dropped %llu < the 40000 bytes sent",
				 (long long)st.st_size, dropped);
	}
	free(m);
	tc_stop(&t);
	unlink(cfg);
	unlink(out);
	unlink(mx);
}

/* Count lines of text that contain needle. */
static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Run squib with args (NULL-terminated) and capture its stdout. */
static char *run_capture(const char *const *args, int *status)
{
	char cmd[2048] = "", *out = malloc(4096);
	size_t n = 0, r;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s'", squib_bin);
	for (int i = 0; args[i]; i++)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " '%s'", args[i]);
	strncat(cmd, " 2>/dev/null", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(out);
	while ((r = fread(out + n, 1, 4095 - n, p)) > 0 && n < 4095)
		n += r;
	out[n] = 0;
	*status = pclose(p);
	return out;
}

/* Firecracker's --boot-timer (devices/pseudo/boot_timer.rs): the guest's
 * byte 123 at offset 0 of the boot-device page logs one Guest-boot-time
 * line at Info; a wrong value, a 16-bit write and the magic at offset 1
 * do not.  The jailer's --start-time-us / --start-time-cpu-us /
 * --parent-cpu-time-us (jailer env.rs exec_command) set the api_server
 * startup metrics (logger/metrics.rs ProcessTimeReporter): backdated by
 * 5 s and given 7 s of parent CPU, the values can only be at least that. */
static void test_boot_timer_and_jailer_start_times(void **state)
{
	struct sqb_tc t;
	char mx[256], start[32], *log, *m, *p;
	struct timespec now;

	(void)state;
	snprintf(mx, sizeof(mx), "/tmp/sqb-metrics-bt-%d.json", (int)getpid());
	unlink(mx);
	clock_gettime(CLOCK_MONOTONIC, &now);
	snprintf(start, sizeof(start), "%llu",
		 (unsigned long long)now.tv_sec * 1000000ULL +
		     (unsigned long long)now.tv_nsec / 1000 - 5000000ULL);
	assert_int_equal(
	    tc_spawn(&t, squib_bin,
		     (const char *const[]){"--level", "Info", "--show-level", "--boot-timer",
					   "--start-time-us", start, "--start-time-cpu-us", "0",
					   "--parent-cpu-time-us", "7000000", "--metrics-path", mx,
					   NULL},
		     1),
	    0);
	start_guest(&t, "exits.elf", "n=10 boottimer=1", 1, 16);
	expect_serial(&t, "EXITS done n=10", 30000);
	assert_int_equal(tc_wait_exit(&t, 30000), 0); /* the guest resets: squib ends */
	log = tc_read_file(t.errlog);
	assert_non_null(log);
	if (count_lines_with(log, "Guest-boot-time = ") != 1)
		fail_msg("want one Guest-boot-time line; log: %.3000s", log);
	/* the guest's reset ends the VM with lib.rs Vmm::stop's line */
	if (!strstr(log, "] Vmm is stopping.\n"))
		fail_msg("no 'Vmm is stopping.' line: %.3000s", log);
	p = strstr(log, "Guest-boot-time = ");
	{
		unsigned long long us, ms, cus, cms;
		/* boot_timer.rs: "{:>6} us {} ms, {:>6} CPU us {} CPU ms" */
		if (sscanf(p, "Guest-boot-time = %llu us %llu ms, %llu CPU us %llu CPU ms", &us,
			   &ms, &cus, &cms) != 4 ||
		    ms != us / 1000 || cms != cus / 1000)
			fail_msg("bad Guest-boot-time line: %.200s", p);
		assert_non_null(strstr(p - 8, ":INFO] Guest-boot-time")); /* at Info */
	}
	free(log);
	m = tc_read_file(mx);
	assert_non_null(m);
	p = strstr(m, "\"process_startup_time_us\":");
	assert_non_null(p);
	if (strtoull(p + 26, NULL, 10) < 5000000ULL)
		fail_msg("process_startup_time_us %.40s, want >= 5000000 (--start-time-us)",
			 p + 26);
	p = strstr(m, "\"process_startup_time_cpu_us\":");
	assert_non_null(p);
	if (strtoull(p + 30, NULL, 10) < 7000000ULL)
		fail_msg("process_startup_time_cpu_us %.40s, want >= 7000000", p + 30);
	free(m);
	tc_stop(&t);
	unlink(mx);

	/* without --boot-timer the page is unclaimed: writes are dropped,
	 * the guest goes on, and nothing is logged */
	boot(&t, "exits.elf", "n=10 boottimer=1", 1, 16);
	expect_serial(&t, "EXITS done n=10", 30000);
	assert_int_equal(tc_wait_exit(&t, 30000), 0);
	log = tc_read_file(t.errlog);
	assert_non_null(log);
	assert_null(strstr(log, "Guest-boot-time"));
	free(log);
	tc_stop(&t);

	/* a value that is not a u64 stops squib with main.rs's words */
	{
		int st;
		char *out = run_capture((const char *const[]){"--start-time-us", "-5", NULL}, &st);

		assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		free(out);
	}
}

/* Firecracker's test_cmd_line_parameters.py test_describe_snapshot:
 * --snapshot-version prints the data format version, and
 * --describe-snapshot on a Diff's state file prints that same string;
 * a file that is not a snapshot is an error, not a version. */
static void test_snapshot_version_and_describe_snapshot(void **state)
{
	struct sqb_tc t;
	char body[1024], resp[2048], st_path[256], mem_path[256], *ver, *desc;
	int st;

	(void)state;
	ver = run_capture((const char *const[]){"--snapshot-version", NULL}, &st);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(ver[0], 'v');
	assert_non_null(strchr(ver, '.'));
	assert_int_equal(tc_spawn(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1),
			 0);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\":1,\"mem_size_mib\":16,\"track_dirty_pages\":true}",
				resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/counter.elf\",\"boot_args\":\"delay=3000\"}",
		 guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	expect_serial(&t, "count=2\n", 20000);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	snprintf(st_path, sizeof(st_path), "%s/diff.state", t.dir);
	snprintf(mem_path, sizeof(mem_path), "%s/diff.mem", t.dir);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Diff\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 st_path, mem_path);
	if (tc_req(&t, "PUT", "/snapshot/create", body, resp, sizeof(resp)) != 204)
		fail_msg("snapshot/create: %s", resp);
	desc = run_capture((const char *const[]){"--describe-snapshot", st_path, NULL}, &st);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(desc, ver);
	free(desc);
	/* the memory file of the pair is not a state file with a version
	 * line either way: any non-snapshot is refused */
	desc = run_capture((const char *const[]){"--describe-snapshot", "/proc/self/status", NULL},
			   &st);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	assert_string_equal(desc, "");
	free(desc);
	free(ver);
	tc_stop(&t);
}

/* The metrics file's lines that carry "group":{... key:N ...}: the value
 * in the n-th line (0-based), or -1. */
static long long metric_in_line(const char *text, int n, const char *group, const char *key)
{
	char g[64], k[64];
	const char *line = text, *end, *p, *q;

	for (int i = 0; line && i < n; i++)
		line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
	if (!line || !*line)
		return -1;
	end = strchr(line, '\n');
	snprintf(g, sizeof(g), "\"%s\":{", group);
	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(line, g);
	if (!p || (end && p > end))
		return -1;
	q = strstr(p, k);
	if (!q || (end && q > end) || strchr(p, '}') < q)
		return -1;
	return strtoll(q + strlen(k), NULL, 10);
}

static int count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n++;
	return n;
}

/* Firecracker's test_signals.py (vmm/src/signal_handler.rs): after a start
 * the metrics file has one line (PeriodicMetrics writes one when the VM is
 * built); a fatal signal logs "Shutting down VM after intercepting signal
 * N", stores signals.<name> = 1 in a last line and exits with FcExitCode's
 * number; SIGSYS from kill() (not a seccomp trap) exits with 2; SIGPIPE is
 * counted and logged ("Received signal 13") and squib goes on. */
static void test_signals_as_firecracker(void **state)
{
	static const struct {
		int sig;
		const char *name;
		int code;
	} cases[] = {
	    {SIGBUS, "sigbus", 149},   {SIGSEGV, "sigsegv", 150}, {SIGXFSZ, "sigxfsz", 151},
	    {SIGXCPU, "sigxcpu", 154}, {SIGHUP, "sighup", 156},	  {SIGILL, "sigill", 157},
	    {SIGSYS, NULL, 2},	       {SIGPIPE, "sigpipe", 0},
	};
	char mx[256], resp[2048], want[96], *m, *log;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sqb_tc t;

		snprintf(mx, sizeof(mx), "/tmp/sqb-metrics-sig-%d-%zu.json", (int)getpid(), i);
		unlink(mx);
		assert_int_equal(
		    tc_spawn(&t, squib_bin,
			     (const char *const[]){"--level", "Info", "--metrics-path", mx, NULL},
			     1),
		    0);
		start_guest(&t, "counter.elf", "delay=3000", 1, 16);
		expect_serial(&t, "count=1\n", 20000);
		m = tc_read_file(mx);
		assert_non_null(m);
		if (count_lines(m) != 1)
			fail_msg("%zu: want one metrics line after the start, have %d", i,
				 count_lines(m));
		free(m);
		kill(t.pid, cases[i].sig);
		if (cases[i].sig == SIGPIPE) {
			usleep(200000);
			assert_int_equal(tc_req(&t, "PUT", "/actions",
						"{\"action_type\":\"FlushMetrics\"}", resp,
						sizeof(resp)),
					 204);
			snprintf(want, sizeof(want), "Received signal %d", SIGPIPE);
		} else {
			assert_int_equal(tc_wait_exit(&t, 10000), cases[i].code);
			snprintf(want, sizeof(want),
				 "Shutting down VM after intercepting signal %d", cases[i].sig);
		}
		log = tc_read_file(t.errlog);
		assert_non_null(log);
		if (!strstr(log, want))
			fail_msg("signal %d: no '%s' in the log: %.2000s", cases[i].sig, want, log);
		free(log);
		m = tc_read_file(mx);
		assert_non_null(m);
		if (cases[i].name && metric_in_line(m, 1, "signals", cases[i].name) != 1)
			fail_msg(
			    "signal %d: the line after the signal lacks signals.%s = 1: %.1500s",
			    cases[i].sig, cases[i].name, m);
		if (!cases[i].name && metric_in_line(m, 1, "seccomp", "num_faults") != 1)
			fail_msg("SIGSYS: the last line lacks seccomp.num_faults = 1: %.1500s", m);
		free(m);
		tc_stop(&t);
		unlink(mx);
	}
}

/* test_jail.py test_positive_file_size_limit / test_negative_file_size_limit:
 * under an RLIMIT_FSIZE (the jailer's fsize=) a guest larger than the limit
 * still starts (its memory is no file then), and the snapshot that would
 * write past the limit ends squib with SIGXFSZ and Firecracker's line.
 * squib used to die of SIGXFSZ at InstanceStart (its memfd's size). */
static void test_file_size_limit(void **state)
{
	struct sqb_tc t;
	struct rlimit old, lim;
	char dir[] = "/tmp/sqb-fsize-XXXXXX", body[512], resp[2048], *log;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < (1u << 20)) {
		print_message("skipped: the hard RLIMIT_FSIZE is under 1 MiB already\n");
		skip();
	}
	lim = old;
	lim.rlim_cur = 1u << 20; /* the soft limit only: the test keeps the rest */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	{
		int rc = tc_spawn(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1);

		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		assert_int_equal(rc, 0);
	}
	start_guest(&t, "counter.elf", "delay=3000", 1, 16);
	expect_serial(&t, "count=1\n", 20000);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/vm.vmstate\","
		 "\"mem_file_path\":\"%s/vm.mem\",\"squib\":{\"mem_format\":\"raw\"}}",
		 dir, dir);
	(void)tc_req(&t, "PUT", "/snapshot/create", body, resp, sizeof(resp));
	assert_int_equal(tc_wait_exit(&t, 20000), 151); /* FcExitCode SIGXFSZ */
	log = tc_read_file(t.errlog);
	assert_non_null(log);
	if (!strstr(log, "Shutting down VM after intercepting signal 25, code 0"))
		fail_msg("no SIGXFSZ line: %.2000s", log);
	free(log);
	tc_stop(&t);
	unlink(strcat(strcpy(body, dir), "/vm.vmstate"));
	unlink(strcat(strcpy(body, dir), "/vm.mem"));
	rmdir(dir);
}

/* test_signals.py test_handled_signals: Firecracker's vCPU-kick signal,
 * SIGRTMIN (35 under musl, which the test sends; 34 under glibc), has a
 * handler, so it leaves the microVM running.  squib used to die of it. */
static void test_handled_signals_keep_running(void **state)
{
	static const int sigs[] = {35, 34};
	char resp[2048];
	struct sqb_tc t;

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	start_guest(&t, "counter.elf", "delay=300", 2, 16);
	expect_serial(&t, "count=1\n", 20000);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		char want[32];

		assert_int_equal(kill(t.pid, sigs[i]), 0);
		usleep(200000);
		if (tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)) != 200 ||
		    !strstr(resp, "\"state\":\"Running\""))
			fail_msg("[tests/integration_tests/functional/test_signals.py "
				 "test_handled_signals] signal %d: squib gone or not running: %s",
				 sigs[i], resp);
		/* the guest still runs */
		snprintf(want, sizeof(want), "count=%zu\n", 3 + 2 * i);
		expect_serial(&t, want, 20000);
	}
	tc_stop(&t);
}

/* test_pause_resume.py test_kvmclock_ctrl (x86_64): Firecracker calls
 * KVM_KVMCLOCK_CTRL on each vCPU when it pauses (vcpu.rs) so the guest's
 * watchdogs skip the pause; KVM then sets PVCLOCK_GUEST_STOPPED in the
 * guest's pvclock page, which the kvmclock guest reports.  A guest without
 * kvmclock makes the call fail: counted in vcpu.kvmclock_ctrl_fails and
 * logged, never fatal (arch/x86_64/vcpu.rs kvmclock_ctrl). */
static void test_pause_tells_kvmclock(void **state)
{
#if defined(__x86_64__)
	char body[512], resp[2048], mx[128], lp[128], *m, *log;
	struct sqb_tc t;

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/kvmclock.elf\"}", guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	if (tc_wait_serial(&t, "KCLK none\n", 3000) == 0) {
		tc_stop(&t);
		print_message("skipped: this host's KVM offers no kvmclock\n");
		skip();
	}
	expect_serial(&t, "KCLK start\n", 20000);
	for (int i = 1; i <= 2; i++) {
		char want[32];

		assert_int_equal(
		    tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)), 204);
		assert_int_equal(
		    tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)), 204);
		snprintf(want, sizeof(want), "KCLK stopped %d\n", i);
		expect_serial(&t, want, 20000);
	}
	tc_stop(&t);
	/* no kvmclock in the guest: each vCPU's call fails, the VM goes on */
	snprintf(mx, sizeof(mx), "/tmp/sqb-metrics-kclk-%d.json", (int)getpid());
	snprintf(lp, sizeof(lp), "/tmp/sqb-log-kclk-%d.log", (int)getpid());
	unlink(mx);
	unlink(lp);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--metrics-path", mx, "--log-path", lp,
							"--level", "Info", "--show-level", NULL},
				  1),
			 0);
	start_guest(&t, "counter.elf", "delay=300", 2, 16);
	expect_serial(&t, "count=1\n", 20000);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	assert_int_equal(
	    tc_req(&t, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}", resp, sizeof(resp)),
	    204);
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)),
			 204);
	m = tc_read_file(mx);
	assert_non_null(m);
	if (metric_in_line(m, 1, "vcpu", "kvmclock_ctrl_fails") != 2)
		fail_msg("want vcpu.kvmclock_ctrl_fails = 2 after pausing 2 vCPUs: %.1500s", m);
	free(m);
	log = tc_read_file(lp);
	assert_non_null(log);
	/* a line of the vmm library, in Firecracker's shape like squib's own
	 * (test_logging.py check_log_message_format) */
	{
		const char *p = strstr(log, "KVM_KVMCLOCK_CTRL call failed");
		const char *bol = p;

		assert_non_null(p);
		while (bol > log && bol[-1] != '\n')
			bol--;
		if (strncmp(p - 7, ":WARN] ", 7) || !isdigit((unsigned char)bol[0]) ||
		    bol[10] != 'T' || bol[19] != '.' || !strstr(bol, " [anonymous-instance:"))
			fail_msg("[tests/integration_tests/functional/test_logging.py] not "
				 "Firecracker's line shape: %.300s",
				 bol);
	}
	free(log);
	tc_stop(&t);
	unlink(mx);
	unlink(lp);
#else
	(void)state;
	print_message("skipped: kvmclock is x86's\n");
	skip();
#endif
}

static void test_stdin_reaches_the_guest_uart(void **state)
{
	struct sqb_tc t;
	char body[1024], resp[2048];

	(void)state;
	assert_int_equal(tc_spawn_stdin(&t, squib_bin, NULL, 1), 0);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/counter.elf\",\"boot_args\":\"delay=3000\"}",
		 guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	expect_serial(&t, "count=2\n", 20000);
	assert_int_equal(write(t.stdin_fd, "qz", 2), 2);
	expect_serial(&t, "RX q\nRX z\n", 20000);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", resp,
				sizeof(resp)),
			 204);
	assert_int_equal(tc_wait_exit(&t, 20000), 0);
	tc_stop(&t);
}

static void test_uart_interrupts_reach_the_guest(void **state)
{
	struct sqb_tc t;
	char body[1024], resp[2048];

	(void)state;
	assert_int_equal(tc_spawn_stdin(&t, squib_bin, NULL, 1), 0);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/uartirq.elf\",\"boot_args\":\"rx=3\"}", guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	expect_serial(&t, "UARTIRQ ready\n", 20000);
	assert_int_equal(write(t.stdin_fd, "abc", 3), 3);
	/* thr_irqs=1: transmit-empty interrupts arrived for the guest's output. */
	expect_serial(&t, "UARTIRQ rx=abc thr_irqs=1\n", 20000);
	assert_int_equal(tc_wait_exit(&t, 20000), 0);
	tc_stop(&t);
}

static void test_triple_fault_is_reported_not_hung(void **state)
{
	struct sqb_tc t;
	char *e;

	(void)state;
	boot(&t, "fault.elf", "", 1, 16);
	expect_serial(&t, "FAULT about to triple-fault", 20000);
	assert_int_equal(tc_wait_exit(&t, 20000), 2);
	e = tc_read_file(t.errlog);
	/* KVM reports a shutdown exit; PVM's emulator an internal error. */
	if (!strstr(e, "triple fault") && !strstr(e, "internal error"))
		fail_msg("no failure report in the log: %s", e);
	assert_non_null(strstr(e, "microVM failed"));
	free(e);
	e = tc_read_file(t.serial);
	assert_null(strstr(e, "still alive"));
	free(e);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mempattern_guest_verifies_and_checksum_matches),
	    cmocka_unit_test(test_counter_continuous_across_pause_resume_then_ctrl_alt_del),
	    cmocka_unit_test(test_concurrent_clients_pause_resume_then_sigterm),
	    cmocka_unit_test(test_timer_guest_counts_lapic_ticks),
	    cmocka_unit_test(test_smp_guest_every_vcpu_reports),
	    cmocka_unit_test(test_smp_32_vcpus_survive_pause_resume_during_bringup),
	    cmocka_unit_test(test_config_file_no_api_boots_and_exits),
	    cmocka_unit_test(test_serial_rate_limiter),
	    cmocka_unit_test(test_boot_timer_and_jailer_start_times),
	    cmocka_unit_test(test_snapshot_version_and_describe_snapshot),
	    cmocka_unit_test(test_signals_as_firecracker),
	    cmocka_unit_test(test_file_size_limit),
	    cmocka_unit_test(test_handled_signals_keep_running),
	    cmocka_unit_test(test_pause_tells_kvmclock),
	    cmocka_unit_test(test_stdin_reaches_the_guest_uart),
	    cmocka_unit_test(test_uart_interrupts_reach_the_guest),
	    cmocka_unit_test(test_triple_fault_is_reported_not_hung),
	};
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR\n", argv[0]);
		return 2;
	}
	squib_bin = argv[1];
	guest_dir = argv[2];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "SKIP: /dev/kvm is not usable here; guest boot tests need KVM\n");
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
