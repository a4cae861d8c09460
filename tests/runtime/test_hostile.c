/* Hostile guests and clients against the real squib binary (issue 17 part 2,
 * docs/security.md): a guest flooding its serial port into a pipe nobody
 * reads, FIFOs given as paths, and slow clients filling every connection. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "squib_client.h"

static const char *squib_bin;
static const char *guest_dir;
static int have_kvm;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void show_log_and_fail(struct sqb_tc *t, const char *what)
{
	static char log[4096]; /* fail_msg does not return: nothing to free */
	char *e = tc_read_file(t->errlog);

	snprintf(log, sizeof(log), "%s", e ? e : "(none)");
	free(e);
	tc_stop(t); /* no squib left behind by a failed test */
	fail_msg("%s; squib's log: %.2000s", what, log);
}

/* Sum of every "missed_write_count":N in the metrics file. */
static unsigned long long missed_writes(const char *path)
{
	char *m = tc_read_file(path), *p;
	unsigned long long sum = 0;

	for (p = m; p && (p = strstr(p, "\"missed_write_count\":")); p++)
		sum += strtoull(p + 21, NULL, 10);
	free(m);
	return sum;
}

/* The counter guest with delay=0 writes "count=N" lines as fast as it can;
 * squib's stdout is a pipe that is never read.  Pause, snapshot, resume and
 * SIGTERM must all still answer promptly, and the metrics count the drops
 * (Firecracker's uart.missed_write_count). */
static void test_serial_flood_into_undrained_pipe(void **state)
{
	struct sqb_tc t;
	char body[1024], resp[2048], mpath[256];
	int p[2];
	long long t0;

	(void)state;
	if (!have_kvm)
		skip();
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(
	    tc_spawn_out(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, p[1]), 0);
	/* the smallest pipe: the guest (slow under emulation) fills it at once */
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	close(p[1]); /* p[0] stays open and is never read */
	snprintf(mpath, sizeof(mpath), "%s/metrics", t.dir);
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", mpath);
	assert_int_equal(tc_req(&t, "PUT", "/metrics", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\":1,\"mem_size_mib\":32}", resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/counter.elf\",\"boot_args\":\"delay=0\"}", guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	/* wait until the pipe and squib's buffer are full: drops are counted
	 * (the guest is slow under emulation and on a loaded machine) */
	for (t0 = now_ms(); missed_writes(mpath) == 0 && now_ms() - t0 < 30000;) {
		usleep(250 * 1000);
		if (tc_req(&t, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}", resp,
			   sizeof(resp)) != 204)
			show_log_and_fail(&t, "FlushMetrics did not answer during the flood");
	}
	if (missed_writes(mpath) == 0)
		show_log_and_fail(&t, "no dropped serial bytes were counted within 30 s");
	t0 = now_ms();
	if (tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)) != 204)
		show_log_and_fail(&t, "pause did not answer while the serial sink was full");
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/st\",\"mem_file_path\":\"%s/"
		 "mem\"}",
		 t.dir, t.dir);
	if (tc_req(&t, "PUT", "/snapshot/create", body, resp, sizeof(resp)) != 204)
		show_log_and_fail(&t, "snapshot create failed while the serial sink was full");
	if (tc_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp, sizeof(resp)) != 204)
		show_log_and_fail(&t, "resume did not answer while the serial sink was full");
	assert_true(now_ms() - t0 < 8000);
	t0 = now_ms();
	kill(t.pid, SIGTERM);
	if (tc_wait_exit(&t, 3000) < 0)
		show_log_and_fail(&t, "SIGTERM did not end squib within 3 s");
	assert_true(now_ms() - t0 < 3000);
	close(p[0]);
	tc_stop(&t);
}

/* One request that must answer within 3 s with the given status; returns
 * the body in resp. */
static void req_quick(struct sqb_tc *t, const char *method, const char *path, const char *json,
		      int want, char *resp, size_t cap)
{
	long long t0 = now_ms();
	int st = tc_req(t, method, path, json, resp, cap);
	char what[512];

	if (st != want || now_ms() - t0 > 3000) {
		snprintf(what, sizeof(what), "%s %s %s: status %d after %lld ms (want %d): %.200s",
			 method, path, json ? json : "", st, now_ms() - t0, want, resp);
		show_log_and_fail(t, what);
	}
}

/* Firecracker's logger and metrics docs create the path with mkfifo and
 * read it later: the PUT must answer at once, and so must the next client.
 * A FIFO where a file is read (kernel, initrd, snapshot state and memory)
 * is refused with a 400 that says so, never waited on. */
static void test_fifo_paths_never_block_the_api(void **state)
{
	struct sqb_tc t;
	char fifo[256], body[1024], resp[2048];

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	snprintf(fifo, sizeof(fifo), "%s/fifo", t.dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(body, sizeof(body), "{\"log_path\":\"%s\",\"level\":\"Info\"}", fifo);
	req_quick(&t, "PUT", "/logger", body, 204, resp, sizeof(resp));
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", fifo);
	req_quick(&t, "PUT", "/metrics", body, 204, resp, sizeof(resp));
	snprintf(body, sizeof(body), "{\"serial_out_path\":\"%s\"}", fifo);
	req_quick(&t, "PUT", "/serial", body, 204, resp, sizeof(resp));
	req_quick(&t, "GET", "/", NULL, 200, resp, sizeof(resp));
	/* before the boot-source requests: a refused one still configures
	 * boot (Firecracker's boot_path), which then refuses any load */
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_"
		 "path\":\"%s\"}}",
		 fifo, fifo);
	req_quick(&t, "PUT", "/snapshot/load", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "regular file"));
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s\"}", fifo);
	req_quick(&t, "PUT", "/boot-source", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "FIFO"));
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/counter.elf\",\"initrd_path\":\"%s\"}", guest_dir,
		 fifo);
	req_quick(&t, "PUT", "/boot-source", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "FIFO"));
	req_quick(&t, "GET", "/", NULL, 200, resp, sizeof(resp));
	kill(t.pid, SIGTERM);
	assert_true(tc_wait_exit(&t, 3000) >= 0);
	tc_stop(&t);
}

/* A snapshot's memory file swapped for a FIFO: the load is refused, clearly
 * and at once; and a FIFO at the create path is refused too. */
static void test_fifo_snapshot_files_refused(void **state)
{
	struct sqb_tc t, u;
	char fifo[256], body[1024], resp[2048];

	(void)state;
	if (!have_kvm)
		skip();
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	snprintf(fifo, sizeof(fifo), "%s/fifo", t.dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	req_quick(&t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204, resp,
		  sizeof(resp));
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/counter.elf\"}", guest_dir);
	req_quick(&t, "PUT", "/boot-source", body, 204, resp, sizeof(resp));
	req_quick(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204, resp,
		  sizeof(resp));
	req_quick(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204, resp, sizeof(resp));
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s/mem\"}",
		 fifo, t.dir);
	req_quick(&t, "PUT", "/snapshot/create", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "regular file"));
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s/st\",\"mem_file_path\":\"%s\"}",
		 t.dir, fifo);
	req_quick(&t, "PUT", "/snapshot/create", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "regular file"));
	snprintf(body, sizeof(body), "{\"snapshot_path\":\"%s/st\",\"mem_file_path\":\"%s/mem\"}",
		 t.dir, t.dir);
	req_quick(&t, "PUT", "/snapshot/create", body, 204, resp, sizeof(resp));

	assert_int_equal(tc_spawn(&u, squib_bin, NULL, 1), 0);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/"
		 "st\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"%s\"}}",
		 t.dir, fifo);
	req_quick(&u, "PUT", "/snapshot/load", body, 400, resp, sizeof(resp));
	assert_non_null(strstr(resp, "regular file"));
	req_quick(&u, "GET", "/", NULL, 200, resp, sizeof(resp));
	tc_stop(&u);
	tc_stop(&t);
}

/* Has the server closed fd?  (Reads and discards anything it sent.) */
static int peer_closed(int fd)
{
	char buf[512];
	struct pollfd p = {fd, POLLIN, 0};

	while (poll(&p, 1, 0) == 1) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (n < 0)
			return 0;
	}
	return 0;
}

/* More slow clients than squib has connection slots, each trickling one
 * header byte at a time and never finishing: a new client must still get
 * GET / answered within a second, every time. */
static void test_slow_clients_do_not_lock_out_a_new_one(void **state)
{
	enum { NSLOW = 40 };
	static const char req[] = "GET / HTTP/1.1\r\nHost: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaa";
	struct sqb_tc t;
	int fds[NSLOW];
	char resp[2048];

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	for (int i = 0; i < NSLOW; i++) {
		fds[i] = tc_connect(&t);
		assert_true(fds[i] >= 0);
		(void)!send(fds[i], req, 1, MSG_NOSIGNAL);
	}
	for (int round = 1; round <= 6; round++) {
		usleep(400 * 1000);
		for (int i = 0; i < NSLOW; i++)
			(void)!send(fds[i], req + round, 1, MSG_NOSIGNAL);
		if (round % 2 == 0) {
			long long t0 = now_ms();
			int st = tc_req(&t, "GET", "/", NULL, resp, sizeof(resp));
			if (st != 200 || now_ms() - t0 > 1000) {
				char what[128];
				snprintf(
				    what, sizeof(what),
				    "round %d: GET / gave %d after %lld ms with %d slow clients",
				    round, st, now_ms() - t0, NSLOW);
				show_log_and_fail(&t, what);
			}
		}
	}
	for (int i = 0; i < NSLOW; i++)
		close(fds[i]);
	tc_stop(&t);
}

/* A request that never completes is dropped a bounded time after its first
 * byte, even though bytes keep arriving more often than the idle timeout
 * (docs/security.md: 10 s). */
static void test_trickled_request_is_bounded(void **state)
{
	static const char req[] = "PUT /machine-config HTTP/1.1\r\nHost: trickle\r\nX-Pad: "
				  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	struct sqb_tc t;
	long long t0;
	int fd, closed = 0;

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	fd = tc_connect(&t);
	assert_true(fd >= 0);
	t0 = now_ms();
	for (size_t i = 0; i < sizeof(req) - 1 && now_ms() - t0 < 16000; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1 || peer_closed(fd)) {
			closed = 1;
			break;
		}
		usleep(500 * 1000);
	}
	if (!closed)
		show_log_and_fail(&t, "a request trickled in for 16 s was never dropped");
	if (now_ms() - t0 < 9000)
		fail_msg("dropped after %lld ms, before the 10 s bound", now_ms() - t0);
	close(fd);
	tc_stop(&t);
}

/* squib run with args (no API server is reached: every case ends in
 * argument handling), stdout and stderr into out/err (NUL-terminated);
 * returns the wait status, or fails the test when it runs past 20 s. */
static int run_cli(const char *const *args, char *out, size_t outlen, char *err, size_t errlen)
{
	char dir[] = "/tmp/sqb-cli-XXXXXX", po[64], pe[64];
	const char *argv[32];
	long long t0 = now_ms();
	int st = 0, n = 0;
	pid_t pid, w;

	assert_non_null(mkdtemp(dir));
	snprintf(po, sizeof(po), "%s/out", dir);
	snprintf(pe, sizeof(pe), "%s/err", dir);
	argv[n++] = squib_bin;
	while (args[n - 1] && n < 31)
		argv[n] = args[n - 1], n++;
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int in = open("/dev/null", O_RDONLY);

		if (o < 0 || e < 0 || in < 0)
			_exit(126);
		dup2(in, 0), dup2(o, 1), dup2(e, 2);
		execv(squib_bin, (char *const *)argv);
		_exit(127);
	}
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() - t0 < 20000)
		usleep(10000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("squib %s %s did not exit within 20 s", args[0], args[1] ? args[1] : "");
	}
	for (int i = 0; i < 2; i++) {
		char *txt = tc_read_file(i ? pe : po), *dst = i ? err : out;
		size_t cap = i ? errlen : outlen;

		snprintf(dst, cap, "%s", txt ? txt : "");
		free(txt);
	}
	unlink(po);
	unlink(pe);
	rmdir(dir);
	return st;
}

/* Exit code 1, stderr saying `want`, nothing on stdout, and no sanitizer
 * report (an ASan build: a leak or UB on the way out; reports read
 * "...Sanitizer: ...", unlike squib's own "seccomp: off in a
 * ThreadSanitizer build" warning). */
static void cli_refused_code(const char *const *args, const char *want, int code)
{
	static char out[4096], err[8192];
	int st = run_cli(args, out, sizeof(out), err, sizeof(err));

	if (!WIFEXITED(st) || WEXITSTATUS(st) != code || !strstr(err, want) || out[0] ||
	    strstr(err, "Sanitizer:") || strstr(err, "runtime error"))
		fail_msg("squib %s %s %s: status 0x%x, want exit %d and '%s'; stdout '%.200s' "
			 "stderr '%.1500s'",
			 args[0], args[1] ? args[1] : "", args[1] && args[2] ? args[2] : "", st,
			 code, want, out, err);
}

static void cli_refused(const char *const *args, const char *want)
{
	cli_refused_code(args, want, 1);
}

/* main.rs: a command line arg_parser.rs refuses exits with FcExitCode
 * ArgParsing (153), in UtilsArgParserError's words */
static void cli_unparsed(const char *const *args, const char *want)
{
	cli_refused_code(args, want, 153);
}

static void cli_ok(const char *const *args, const char *want_out)
{
	static char out[4096], err[8192];
	int st = run_cli(args, out, sizeof(out), err, sizeof(err));

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(out, want_out) || err[0])
		fail_msg("squib %s %s: status 0x%x, want exit 0 and '%s'; stdout '%.200s' "
			 "stderr '%.1500s'",
			 args[0], args[1] ? args[1] : "", st, want_out, out, err);
}

/* Hostile command lines: bad --metadata documents, --describe-snapshot on
 * things that are no snapshot (a FIFO nobody writes must not hang it),
 * numbers that are not u64, and argument order as Firecracker's
 * arg_parser.rs has it (--help/--version win over anything; an invalid
 * command line fails before --snapshot-version or --describe-snapshot
 * act).  Each ends at once with exit code 1 and a reason, never a hang,
 * crash or (ASan) leak report. */
static void test_cli_hostile_arguments(void **state)
{
	char dir[] = "/tmp/sqb-cliarg-XXXXXX", f[8][300];
	const char *sock;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 8; i++)
		snprintf(f[i], sizeof(f[i]), "%s/f%d", dir, i);
	sock = f[7];
	/* f0 empty, f1 cut JSON, f2 random bytes, f3 FIFO, f4 folder, f5 valid
	 * JSON, f6 nesting past the parser's limit */
	fclose(fopen(f[0], "w"));
	fp = fopen(f[1], "w");
	fputs("{\"a\":", fp);
	fclose(fp);
	fp = fopen(f[2], "w");
	for (int i = 0; i < 4096; i++)
		fputc((i * 7919 + 13) & 0xff, fp);
	fclose(fp);
	assert_int_equal(mkfifo(f[3], 0600), 0);
	assert_int_equal(mkdir(f[4], 0700), 0);
	fp = fopen(f[5], "w");
	fputs("{\"latest\":{\"k\":\"v\"}}", fp);
	fclose(fp);
	fp = fopen(f[6], "w");
	for (int i = 0; i < 5000; i++)
		fputc('[', fp);
	fclose(fp);

	cli_refused((const char *const[]){"--metadata", f[1], "--api-sock", sock, NULL},
		    "metadata provided not valid json");
	cli_refused((const char *const[]){"--metadata", f[0], "--api-sock", sock, NULL},
		    "metadata provided not valid json");
	cli_refused((const char *const[]){"--metadata", f[2], "--api-sock", sock, NULL},
		    "metadata provided not valid json");
	cli_refused((const char *const[]){"--metadata", f[6], "--api-sock", sock, NULL},
		    "metadata provided not valid json");
	cli_refused((const char *const[]){"--metadata", f[4], "--api-sock", sock, NULL},
		    "Unable to open or read from the mmds content file");
	/* main.rs MainError::InvalidLogLevel: FcExitCode BadConfiguration */
	cli_refused_code(
	    (const char *const[]){"--metadata", f[5], "--level", "Bogus", "--api-sock", sock, NULL},
	    "Invalid value for logger level: Failed to parse string to level filter: Bogus.", 152);
	cli_refused((const char *const[]){"--metadata", f[5], "--metrics-path", f[4], "--api-sock",
					  sock, NULL},
		    "Could not initialize metrics: Cannot initialize the metrics system due to bad "
		    "user input: Is a directory (os error 21)");
	/* main.rs MainError::LoggerInitialization, logging.rs LoggerUpdateError */
	cli_refused(
	    (const char *const[]){"--log-path", "/nonexistent/d/x", "--api-sock", sock, NULL},
	    "Could not initialize logger: Failed to open target file: No such file or "
	    "directory (os error 2)");
	for (int i = 0; i <= 4; i++)
		cli_refused((const char *const[]){"--describe-snapshot", f[i], NULL},
			    "squib: --describe-snapshot ");
	cli_refused((const char *const[]){"--describe-snapshot", "/dev/zero", NULL},
		    "not a regular file");
	cli_refused((const char *const[]){"--describe-snapshot", f[3], NULL}, "not a regular file");
	cli_refused((const char *const[]){"--describe-snapshot", "/nonexistent/x", NULL},
		    "No such file");
	{
		static const char *const names[] = {"--start-time-us", "--start-time-cpu-us",
						    "--parent-cpu-time-us"};
		static const char *const bad[] = {
		    "", "-1", "18446744073709551616", "0x10", " 5", "5x", "1e3", "+"};
		char want[96];

		for (int i = 0; i < 3; i++)
			for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
				snprintf(want, sizeof(want),
					 "'%s' parameter expected to be of 'u64' type.",
					 names[i] + 2);
				cli_refused((const char *const[]){names[i], bad[j], NULL}, want);
			}
	}
	/* u64's whole range (and Rust's leading '+') is accepted */
	cli_ok((const char *const[]){"--start-time-us", "18446744073709551615",
				     "--start-time-cpu-us", "+0", "--snapshot-version", NULL},
	       "v");
	cli_unparsed((const char *const[]){"--snapshot-version", "extra", NULL},
		     "Arguments parsing error: Found argument 'extra' which wasn't expected, or "
		     "isn't valid in this context.");
	cli_unparsed((const char *const[]){"--snapshot-version", "--bogus", NULL},
		     "Found argument 'bogus' which wasn't expected");
	cli_unparsed((const char *const[]){"--describe-snapshot", f[5], "--boot-timer=1", NULL},
		     "Found argument 'boot-timer=1' which wasn't expected");
	/* getopt would take these; arg_parser.rs does not */
	cli_unparsed((const char *const[]){"--snap", "--snapshot-version", NULL},
		     "Found argument 'snap' which wasn't expected");
	cli_unparsed(
	    (const char *const[]){"--level", "Info", "--level", "Info", "--snapshot-version", NULL},
	    "The argument 'level' was provided more than once.");
	cli_unparsed((const char *const[]){"--snapshot-version", "--api-sock", "--id", "x", NULL},
		     "The argument 'api-sock' requires a value, but none was supplied.");
	cli_unparsed((const char *const[]){"--snapshot-version", "--level", NULL},
		     "The argument 'level' requires a value");
	cli_unparsed((const char *const[]){"--snapshot-version", "--no-api", NULL},
		     "Argument 'config-file' required, but not found.");
	cli_unparsed((const char *const[]){"--no-seccomp", "--seccomp-filter", "f",
					   "--snapshot-version", NULL},
		     "Argument 'seccomp-filter' cannot be used together with argument "
		     "'no-seccomp'.");
	/* words after "--" are Firecracker's extra arguments, left alone */
	cli_ok((const char *const[]){"--snapshot-version", "--", "extra", "--bogus", NULL}, "v");
	cli_refused((const char *const[]){"--api-sock", "", NULL}, "API socket path is empty");
	/* --id: validators.rs's rule; a newline would forge log lines */
	cli_refused(
	    (const char *const[]){"--id", "a\nb [ERROR] forged", "--snapshot-version", NULL},
	    "Invalid instance ID: Invalid char (byte 0x0a) at position 1");
	cli_refused((const char *const[]){"--id", "a_b", NULL},
		    "Invalid instance ID: Invalid char (_) at position 1");
	cli_refused((const char *const[]){"--id", "", NULL},
		    "Invalid instance ID: Invalid len (0);  the length must be between 1 and 64");
	cli_refused((const char *const[]){"--id",
					  "a123456789b123456789c123456789d123456789e123456789f12345"
					  "6789g1234",
					  NULL},
		    "Invalid len (65)");
	cli_ok((const char *const[]){"--id",
				     "a123456789b123456789c123456789d123456789e123456789f123456789-"
				     "Z12",
				     "--snapshot-version", NULL},
	       "v");
	cli_ok((const char *const[]){"--bogus", "--help", NULL}, "usage: squib");
	cli_ok((const char *const[]){"--start-time-us", "x", "--version", NULL}, "squib ");
	for (int i = 0; i < 6; i++)
		unlink(f[i]);
	rmdir(f[4]);
	unlink(f[6]);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serial_flood_into_undrained_pipe),
	    cmocka_unit_test(test_fifo_paths_never_block_the_api),
	    cmocka_unit_test(test_fifo_snapshot_files_refused),
	    cmocka_unit_test(test_slow_clients_do_not_lock_out_a_new_one),
	    cmocka_unit_test(test_trickled_request_is_bounded),
	    cmocka_unit_test(test_cli_hostile_arguments),
	};
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR [TEST_FILTER]\n", argv[0]);
		return 2;
	}
	squib_bin = argv[1];
	guest_dir = argv[2];
	signal(SIGPIPE, SIG_IGN);
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		have_kvm = 1;
		close(fd);
	} else {
		fprintf(stderr, "note: /dev/kvm is not usable here; guest tests are skipped\n");
	}
	if (argc > 3) /* one test by name (cmocka's pattern), when debugging */
		cmocka_set_test_filter(argv[3]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
