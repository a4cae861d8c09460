/* Fleet tests (docs/fleet.md, issue 14).  unit: helpers against documented
 * formats; shell: VM shells in process (never ran, adopted, other shape,
 * refused after a run); prewarm: squib --prewarm; pool: squib-fleet with N
 * clones of the self-checking fleet guest from one snapshot, refill,
 * replacement of a killed pool process, a snapshot replaced on disk and a
 * request larger than the host.
 * Usage: test_fleet GROUP SQUIB FLEET GUEST [COUNTER_GUEST] */
#include <dirent.h>
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet.h"
#include "squib/runtime.h"

static const char *squib, *fleet_bin, *guest, *counter_guest;
static char tmp[64], state[128], mem[128];
static const struct sqb_fleet_shape shape = {1, 32};
#define GUEST_ARGS  "mib=8"
#define GUEST_PAGES "pages=2048" /* mib=8: 8 << 8 pages */

static void golden(const char *st, const char *mf)
{
	char dir[160], why[600];

	snprintf(dir, sizeof(dir), "%s/golden", tmp);
	if (sqb_fleet_golden(squib, dir, guest, GUEST_ARGS, &shape, "FLEET ready", st, mf, why,
			     sizeof(why)))
		fail_msg("%s", why);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static int wait_file_text(const char *path, const char *needle, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (strstr(slurp(path), needle))
			return 0;
		usleep(10000);
	}
	return -1;
}

/* ---- unit: from the documentation, not from squib's code ---- */

/* proc(5): /proc/PID/smaps_rollup has "Pss:", "Pss_Anon:", "Pss_File:",
 * "Pss_Shmem:" and "Private_Dirty:" lines in kB (Linux >= 5.0). */
static void test_smaps_rollup_fields(void **st)
{
	struct sqb_fleet_mem m;
	char *big = malloc(4 << 20);

	(void)st;
	assert_non_null(big);
	memset(big, 1, 4 << 20); /* 4 MiB of private anonymous memory */
	assert_int_equal(sqb_fleet_smaps(getpid(), &m), 0);
	assert_true(m.pss >= 4096);
	assert_true(m.pss_anon >= 4096);
	assert_true(m.private_dirty >= 4096);
	assert_true(m.pss >= m.pss_anon);
	free(big);
	assert_int_equal(sqb_fleet_smaps(0x7ffffff0, &m), -ENOENT);
}

/* Firecracker's swagger, LoadSnapshotConfig: snapshot_path, mem_backend
 * {backend_type "File"|"Uffd", backend_path}, resume_vm. */
static void test_load_body_is_firecrackers(void **st)
{
	char b[4096];

	(void)st;
	assert_int_equal(sqb_fleet_load_body(b, sizeof(b), "/s/a\"b.state", "/s/m"), 0);
	assert_string_equal(b, "{\"snapshot_path\":\"/s/a\\\"b.state\",\"mem_backend\":"
			       "{\"backend_type\":\"File\",\"backend_path\":\"/s/m\"},"
			       "\"resume_vm\":true}");
	assert_int_equal(sqb_fleet_load_body(b, 40, "/s/a", "/s/m"), -ENAMETOOLONG);
}

static void test_host_check_refuses_clearly(void **st)
{
	struct sqb_fleet_shape huge = {1, 1ULL << 20}; /* 1 TiB: no test host has it */
	char why[400];

	(void)st;
	assert_int_equal(sqb_fleet_host_check(1, &huge, 1, 10, why, sizeof(why)), -ENOMEM);
	assert_non_null(strstr(why, "larger than the host"));
	assert_int_equal(sqb_fleet_host_check(1000000, &shape, 1024, 10, why, sizeof(why)),
			 -ENOMEM);
	assert_non_null(strstr(why, "available"));
	assert_int_equal(sqb_fleet_host_check(1, &shape, 1, 10, why, sizeof(why)), 0);
}

static void test_identity_sees_replace_and_rewrite(void **st)
{
	struct sqb_fleet_ident a, b, c;
	char p[160], q[160];
	FILE *f;

	(void)st;
	snprintf(p, sizeof(p), "%s/ident", tmp);
	snprintf(q, sizeof(q), "%s/ident.new", tmp);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("one", f);
	fclose(f);
	assert_int_equal(sqb_fleet_ident(p, &a), 0);
	f = fopen(q, "w");
	fputs("two", f);
	fclose(f);
	assert_int_equal(rename(q, p), 0); /* replaced: another inode */
	assert_int_equal(sqb_fleet_ident(p, &b), 0);
	assert_false(sqb_fleet_ident_equal(&a, &b));
	usleep(20000);
	f = fopen(p, "r+"); /* rewritten in place: same inode, new ctime */
	fputs("TWO", f);
	fclose(f);
	assert_int_equal(sqb_fleet_ident(p, &c), 0);
	assert_int_equal(b.ino, c.ino);
	assert_false(sqb_fleet_ident_equal(&b, &c));
}

/* ---- shell: in process ---- */

static int load_into(sqb_vm **vm, sqb_vm **shell, int out_fd, struct sqb_diag *d)
{
	struct sqb_vm_snap_load o = {.version = SQB_VM_SNAP_LOAD_VERSION};

	o.state_path = state;
	o.backend = SQB_VM_MEM_FILE;
	o.backend_path = mem;
	o.mode = SQB_VM_LOAD_MMAP;
	o.resume = 1;
	o.serial_out_fd = out_fd;
	o.shell = shell;
	return sqb_vm_snapshot_load(vm, &o, NULL, d);
}

static void expect_guest_ok(sqb_vm *vm, int rd)
{
	char text[4096];
	size_t len = 0;

	assert_int_equal(sqb_vm_serial_input(vm, "v", 1), 1);
	if (sqb_fleet_wait_text(rd, text, sizeof(text), &len, "FLEET OK " GUEST_PAGES, 10000))
		fail_msg("the clone did not verify its memory; serial: %s", text);
}

static void test_shell_adopted_by_matching_load(void **st)
{
	struct sqb_vm_shape sh = {shape.vcpus, shape.mem_mib, 0};
	struct sqb_diag d = {0};
	sqb_vm *shell = NULL, *vm = NULL;
	int p[2];

	(void)st;
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(sqb_vm_shell_create(&shell, &sh, &d), 0);
	assert_int_equal(sqb_vm_shell_check(shell), 0); /* created, parked, never ran */
	usleep(20000);
	assert_int_equal(sqb_vm_shell_check(shell), 0); /* and it stays so */
	assert_int_equal(load_into(&vm, &shell, p[1], &d), 0);
	assert_null(shell);				       /* taken */
	assert_int_equal(sqb_vm_shell_check(vm), -SQB_ESTATE); /* no longer a shell */
	expect_guest_ok(vm, p[0]);
	sqb_vm_free(vm);
	close(p[0]);
	close(p[1]);
}

static void test_shell_of_other_shape_left_alone(void **st)
{
	struct sqb_vm_shape sh = {shape.vcpus, shape.mem_mib * 2, 0};
	struct sqb_diag d = {0};
	sqb_vm *shell = NULL, *vm = NULL;
	int p[2];

	(void)st;
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(sqb_vm_shell_create(&shell, &sh, &d), 0);
	assert_int_equal(load_into(&vm, &shell, p[1], &d), 0);
	assert_non_null(shell); /* another shape: the normal path built the VM */
	assert_int_equal(sqb_vm_shell_check(shell), 0);
	expect_guest_ok(vm, p[0]);
	sqb_vm_free(vm);
	sqb_vm_free(shell);
	close(p[0]);
	close(p[1]);
}

/* The invariant: a shell whose vCPUs ran is never given a snapshot. */
static void test_shell_that_ran_is_refused(void **st)
{
	struct sqb_vm_shape sh = {shape.vcpus, shape.mem_mib, 0};
	struct sqb_diag d = {0};
	sqb_vm *shell = NULL, *vm = NULL;

	(void)st;
	assert_int_equal(sqb_vm_shell_create(&shell, &sh, &d), 0);
	assert_int_equal(sqb_vm_start(shell), 0); /* runs whatever zeroed memory holds */
	usleep(20000);
	assert_int_equal(sqb_vm_shell_check(shell), -SQB_ESTATE);
	memset(&d, 0, sizeof(d));
	assert_int_equal(load_into(&vm, &shell, -1, &d), -SQB_ESTATE);
	assert_null(vm);
	assert_null(shell); /* freed by the load, never reused */
	assert_string_equal(d.section, "shell");
	assert_non_null(strstr(d.reason, "already run"));
}

static void test_shell_bad_shape(void **st)
{
	struct sqb_vm_shape sh = {0, 32, 0};
	sqb_vm *shell = (sqb_vm *)1;

	(void)st;
	assert_int_equal(sqb_vm_shell_create(&shell, &sh, NULL), -EINVAL);
	assert_null(shell);
	sh = (struct sqb_vm_shape){SQB_VM_MAX_VCPUS + 1, 32, 0};
	assert_int_equal(sqb_vm_shell_create(&shell, &sh, NULL), -EINVAL);
	assert_int_equal(sqb_vm_shell_check(NULL), -SQB_ESTATE);
}

/* ---- prewarm: the squib binary ---- */

static void prewarm_load(const struct sqb_fleet_shape *sh, const char *want_log)
{
	struct sqb_fleet_proc p;
	char dir[160], body[2600], resp[1024], text[4096], logp[256];
	size_t len = 0;

	snprintf(dir, sizeof(dir), "%s/pw-%llu", tmp, (unsigned long long)sh->mem_mib);
	assert_int_equal(sqb_fleet_spawn(&p, squib, dir, "pw", sh, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 10000), 0);
	assert_int_equal(sqb_fleet_load_body(body, sizeof(body), state, mem), 0);
	assert_int_equal(
	    sqb_fleet_http(p.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp), 20000), 204);
	assert_int_equal(write(p.stdin_fd, "v", 1), 1);
	if (sqb_fleet_wait_text(p.out_fd, text, sizeof(text), &len, "FLEET OK " GUEST_PAGES, 10000))
		fail_msg("clone did not verify: %s", text);
	snprintf(logp, sizeof(logp), "%s/vmm.log", dir);
	if (wait_file_text(logp, want_log, 2000))
		fail_msg("squib.log lacks '%s': %s", want_log, slurp(logp));
	sqb_fleet_kill(&p);
}

static void member_says(struct sqb_fleet_proc *p, const char *in, const char *want)
{
	char text[4096];
	size_t len = 0;

	assert_int_equal(write(p->stdin_fd, in, strlen(in)), (ssize_t)strlen(in));
	if (sqb_fleet_wait_text(p->out_fd, text, sizeof(text), &len, want, 10000))
		fail_msg("%s: no '%s' after '%s': %s", p->id, want, in, text);
}

/* What a finished mmap load frees (the restore's block and page bitmaps,
 * docs/fleet.md "Load leftovers") is not needed later: a clone loaded
 * from the remembered image with dirty tracking, left idle (the heap
 * trim after the reply), then written to, pauses, writes a Diff over the
 * loaded file and runs on; a second member loads that Diff (its parent
 * is the golden memory file) and both verify their memory. */
static void test_mmap_load_idle_then_diff(void **st)
{
	struct sqb_fleet_proc a, b;
	char dir[160], body[2600], resp[1024], dst[200], dmem[200], vc[128];
	DIR *d;
	struct dirent *e;
	int n = 0;

	(void)st;
	/* the image is remembered (a first load verified it): later loads map */
	snprintf(vc, sizeof(vc), "%s/vcache", tmp);
	prewarm_load(&shape, "");
	for (int i = 0; !n && i < 500; i++) {
		if ((d = opendir(vc))) {
			while ((e = readdir(d)))
				n += e->d_name[0] != '.' && !strstr(e->d_name, ".lock");
			closedir(d);
		}
		if (!n)
			usleep(20000);
	}
	assert_true(n > 0);
	snprintf(dir, sizeof(dir), "%s/diff-a", tmp);
	assert_int_equal(sqb_fleet_spawn(&a, squib, dir, "da", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&a, 10000), 0);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s\"},\"track_dirty_pages\":true,\"resume_vm\":true}",
		 state, mem);
	assert_int_equal(
	    sqb_fleet_http(a.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp), 20000), 204);
	member_says(&a, "v", "FLEET OK " GUEST_PAGES);
	usleep(300000); /* idle */
	member_says(&a, "w", "WROTE");
	assert_int_equal(sqb_fleet_http(a.sock, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp,
					sizeof(resp), 10000),
			 204);
	snprintf(dst, sizeof(dst), "%s/d.state", dir);
	snprintf(dmem, sizeof(dmem), "%s/d.mem", dir);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Diff\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}",
		 dst, dmem);
	if (sqb_fleet_http(a.sock, "PUT", "/snapshot/create", body, resp, sizeof(resp), 20000) !=
	    204)
		fail_msg("Diff after an idle mmap load: %s", resp);
	assert_int_equal(sqb_fleet_http(a.sock, "PATCH", "/vm", "{\"state\":\"Resumed\"}", resp,
					sizeof(resp), 10000),
			 204);
	member_says(&a, "v", "FLEET OK " GUEST_PAGES);
	snprintf(dir, sizeof(dir), "%s/diff-b", tmp);
	assert_int_equal(sqb_fleet_spawn(&b, squib, dir, "db", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&b, 10000), 0);
	assert_int_equal(sqb_fleet_load_body(body, sizeof(body), dst, dmem), 0);
	if (sqb_fleet_http(b.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp), 20000) != 204)
		fail_msg("loading the Diff: %s", resp);
	member_says(&b, "v", "FLEET OK " GUEST_PAGES);
	member_says(&b, "p", "PONG");
	sqb_fleet_kill(&a);
	sqb_fleet_kill(&b);
}

static void test_prewarm_shell_used(void **st)
{
	(void)st;
	prewarm_load(&shape, "pre-warmed shell used");
}

static void test_prewarm_other_shape_falls_back(void **st)
{
	struct sqb_fleet_shape other = {shape.vcpus, shape.mem_mib * 2};

	(void)st;
	prewarm_load(&other, "pre-warmed shell not used (another shape)");
}

/* A snapshot with a virtio-rng device: the shell takes the device at
 * adopt time (its DEVS state restores into it; a missing device would
 * fail the load) and the clone still verifies. */
static void test_prewarm_shell_takes_devices(void **st)
{
	char dir[160], why[600], logp[256], sst[160], smem[160], body[2600], resp[1024];
	char text[4096];
	struct sqb_fleet_proc p;
	size_t len = 0;

	(void)st;
	snprintf(dir, sizeof(dir), "%s/golden-rng", tmp);
	snprintf(sst, sizeof(sst), "%s/rng.state", tmp);
	snprintf(smem, sizeof(smem), "%s/rng.mem", tmp);
	if (sqb_fleet_golden_cfg(squib, dir, guest, GUEST_ARGS, &shape, "/entropy", "{}",
				 "FLEET ready", sst, smem, why, sizeof(why)))
		fail_msg("%s", why);
	snprintf(dir, sizeof(dir), "%s/pw-rng", tmp);
	assert_int_equal(sqb_fleet_spawn(&p, squib, dir, "pwrng", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 10000), 0);
	assert_int_equal(sqb_fleet_load_body(body, sizeof(body), sst, smem), 0);
	if (sqb_fleet_http(p.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp), 20000) != 204)
		fail_msg("load with an entropy device: %s", resp);
	assert_int_equal(
	    sqb_fleet_http(p.sock, "GET", "/vm/config", NULL, resp, sizeof(resp), 5000), 200);
	assert_non_null(strstr(resp, "\"entropy\":{"));
	assert_int_equal(write(p.stdin_fd, "v", 1), 1);
	if (sqb_fleet_wait_text(p.out_fd, text, sizeof(text), &len, "FLEET OK " GUEST_PAGES, 10000))
		fail_msg("clone did not verify: %s", text);
	snprintf(logp, sizeof(logp), "%s/vmm.log", dir);
	if (wait_file_text(logp, "pre-warmed shell used", 2000))
		fail_msg("vmm.log: %s", slurp(logp));
	sqb_fleet_kill(&p);
}

/* Voluntary context switches of every thread of a process: a thread that
 * sleeps in poll/sigwaitinfo/KVM_RUN and is never woken adds none. */
static long proc_switches(pid_t pid)
{
	char path[320], line[160];
	long sum = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "voluntary_ctxt_switches:", 24))
				sum += strtol(line + 24, NULL, 10);
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* An idle pre-warmed squib has nothing periodic to do: no watchdog tick,
 * no API poll tick (docs/fleet.md "Idle clone memory"); a fleet of a
 * thousand idle members must cost the host no wake-ups.  Before this,
 * the watchdog woke every 200 ms and the API loop every second. */
static void test_prewarm_idle_never_wakes(void **st)
{
	struct sqb_fleet_proc p;
	char dir[160];
	long a, b;

	(void)st;
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer's runtime adds a background thread that wakes on its
	 * own schedule: nothing to learn about squib's threads here */
	print_message("skip: idle wake-ups are not measurable in a ThreadSanitizer build\n");
	skip();
#endif
	snprintf(dir, sizeof(dir), "%s/pw-idle", tmp);
	assert_int_equal(sqb_fleet_spawn(&p, squib, dir, "pwidle", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 10000), 0);
	usleep(300 * 1000); /* the ready probe's connection is closed by now */
	a = proc_switches(p.pid);
	usleep(2500 * 1000);
	b = proc_switches(p.pid);
	assert_true(a >= 0 && b >= 0);
	if (b - a > 1)
		fail_msg("an idle pre-warmed squib woke %ld times in 2.5 s", b - a);
	sqb_fleet_kill(&p);
}

static void test_prewarm_bad_option(void **st)
{
	struct sqb_fleet_shape bad = {0, 32};
	struct sqb_fleet_proc p;
	char dir[160], logp[200];

	(void)st;
	snprintf(dir, sizeof(dir), "%s/pw-bad", tmp);
	assert_int_equal(sqb_fleet_spawn(&p, squib, dir, "pwbad", &bad, 1, 0), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 5000), -ECHILD);
	assert_true(WIFEXITED(p.exit_status) && WEXITSTATUS(p.exit_status) == 1);
	snprintf(logp, sizeof(logp), "%s/squib.log", dir);
	assert_non_null(strstr(slurp(logp), "--prewarm wants vcpus="));
	sqb_fleet_kill(&p);
}

/* ---- pool: squib-fleet ---- */

static pid_t daemon_pid;
static char fdir[160];
static const char *daemon_extra; /* one more daemon argument, e.g. --zygote */

/* squib-fleet daemon --dir dir --squib squib opt val [opt2 val2] [daemon_extra],
 * its stderr in dir.log; opt2 NULL ends the list there. */
static void start_daemon_with(const char *dir, const char *opt, const char *val, const char *opt2,
			      const char *val2)
{
	char logp[200];
	pid_t pid;

	snprintf(logp, sizeof(logp), "%s.log", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 2);
		execl(fleet_bin, fleet_bin, "daemon", "--dir", dir, "--squib", squib, opt, val,
		      opt2, val2, daemon_extra, (char *)NULL);
		_exit(127);
	}
	daemon_pid = pid;
}

static void start_daemon(const char *dir, const char *pool, const char *reserve)
{
	start_daemon_with(dir, "--pool", pool, "--reserve-mib", reserve);
}

/* Run the CLI; its stdout in a static buffer, the exit code in *rc. */
static const char *cli(int *rc, const char *dir, const char *a, const char *b, const char *c,
		       const char *d)
{
	static char out[65536];
	int p[2], st;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[10] = {fleet_bin, a, "--dir", dir, b, c, d, NULL};
		dup2(p[1], 1);
		execv(fleet_bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 && (r = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (rc)
		*rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

static void wait_list(const char *needle, int ms)
{
	const char *s = "";

	for (int i = 0; i < ms / 50; i++) {
		s = cli(NULL, fdir, "list", NULL, NULL, NULL);
		if (strstr(s, needle))
			return;
		usleep(50000);
	}
	fail_msg("squib-fleet list never showed %s: %s", needle, s);
}

/* Every clone id in a clone answer; n of them. */
static int clone_ids(const char *json, char ids[][16], int max)
{
	int n = 0;

	for (const char *p = json; n < max && (p = strstr(p, "{\"id\":\"vm-")); p += 8)
		if (strstr(p, "\"pid\":") &&
		    (!strstr(p, "\"error\"") || strstr(p, "\"pid\":") < strstr(p, "\"error\"")))
			sscanf(p + 7, "%15[^\"]", ids[n++]);
	return n;
}

static void expect_clones_verify(char ids[][16], int n)
{
	for (int i = 0; i < n; i++) {
		char logp[200];
		int rc;

		cli(&rc, fdir, "input", ids[i], "v", NULL);
		assert_int_equal(rc, 0);
		snprintf(logp, sizeof(logp), "%s/vms/%s/serial.log", fdir, ids[i]);
		if (wait_file_text(logp, "FLEET OK " GUEST_PAGES, 15000))
			fail_msg("clone %s did not verify its memory: %s", ids[i], slurp(logp));
	}
}

static const char *clone_n(int *rc, const char *st, const char *mf, const char *n)
{
	static char out[65536];
	int p[2], stt;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[] = {fleet_bin, "clone", "--dir", fdir, "--snapshot", st,
				      "--mem",	 mf,	  "-n",	   n,	 NULL};
		dup2(p[1], 1);
		execv(fleet_bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 && (r = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(p[0]);
	waitpid(pid, &stt, 0);
	*rc = WIFEXITED(stt) ? WEXITSTATUS(stt) : -1;
	return out;
}

static void test_pool_clones_and_refill(void **st)
{
	char ids[8][16];
	const char *s;
	int rc;

	(void)st;
	wait_list("\"warm\":2", 20000);
	s = clone_n(&rc, state, mem, "4");
	if (rc || !strstr(s, "\"ok\":4") || !strstr(s, "\"from_pool\":2"))
		fail_msg("clone -n 4: %s", s);
	assert_int_equal(clone_ids(s, ids, 8), 4);
	expect_clones_verify(ids, 4); /* four at once from one snapshot */
	/* the pool refills in the background after the hand-out */
	wait_list("\"warm\":2,\"warming\":0,\"handed_out\":2", 20000);
	s = cli(&rc, fdir, "list", NULL, NULL, NULL);
	for (int i = 0; i < 4; i++)
		assert_non_null(strstr(s, ids[i]));
}

/* tests/guests/counter.c: each clone continues the count it was
 * snapshotted at (a reboot would print "COUNTER start" and count=1). */
static void test_pool_counter_clones_continue(void **st)
{
	char cst[160], cmem[160], dir[160], why[600], ids[4][16];
	const char *s;
	int rc;

	(void)st;
	if (!counter_guest)
		skip();
	snprintf(cst, sizeof(cst), "%s/counter.state", tmp);
	snprintf(cmem, sizeof(cmem), "%s/counter.mem", tmp);
	snprintf(dir, sizeof(dir), "%s/golden-counter", tmp);
	if (sqb_fleet_golden(squib, dir, counter_guest, "delay=30000", &shape, "count=3\n", cst,
			     cmem, why, sizeof(why)))
		fail_msg("%s", why);
	s = clone_n(&rc, cst, cmem, "3");
	if (rc || clone_ids(s, ids, 4) != 3)
		fail_msg("3 counter clones: %s", s);
	for (int i = 0; i < 3; i++) {
		char logp[256];
		const char *text;

		snprintf(logp, sizeof(logp), "%s/vms/%s/serial.log", fdir, ids[i]);
		if (wait_file_text(logp, "count=", 10000))
			fail_msg("counter clone %s is silent", ids[i]);
		text = slurp(logp);
		if (strstr(text, "COUNTER start") || strstr(text, "count=1\n") ||
		    strstr(text, "count=2\n"))
			fail_msg("clone %s started over instead of continuing: %s", ids[i], text);
	}
	s = cli(&rc, fdir, "stop", "all", NULL, NULL); /* they spin: stop them now */
	assert_int_equal(rc, 0);
}

static const char *clone_extra(int *rc, const char *n, const char *extra)
{
	static char out[65536];
	int p[2], stt;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[] = {fleet_bin,      "clone", "--dir", fdir, "--snapshot",
				      state,	      "--mem", mem,	"-n", n,
				      "--load-extra", extra,   NULL};
		dup2(p[1], 1);
		execv(fleet_bin, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 && (r = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(p[0]);
	waitpid(pid, &stt, 0);
	*rc = WIFEXITED(stt) ? WEXITSTATUS(stt) : -1;
	return out;
}

/* Per-clone load members: "{id}" becomes each clone's id; a member squib
 * refuses fails that clone with squib's own message, and no clone stays. */
static void test_clone_load_extra_per_clone(void **st)
{
	char ids[4][16];
	const char *s;
	int rc;

	(void)st;
	s = clone_extra(&rc, "2", "\"track_dirty_pages\":true");
	if (rc || clone_ids(s, ids, 4) != 2)
		fail_msg("clone with track_dirty_pages: %s", s);
	expect_clones_verify(ids, 2);
	s = clone_extra(&rc, "2", "\"no_such_field_{id}\":1");
	assert_int_not_equal(rc, 0);
	if (!strstr(s, "\"ok\":0") || !strstr(s, "no_such_field_vm-"))
		fail_msg("refused member: %s", s);
	s = cli(&rc, fdir, "stop", "all", NULL, NULL);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(s, "\"stopped\":2")); /* the two good ones only */
}

static void test_pool_process_killed_is_replaced(void **st)
{
	const char *s;
	int pid = 0;

	(void)st;
	wait_list("\"warm\":2", 20000);
	s = cli(NULL, fdir, "pool-pids", NULL, NULL, NULL);
	assert_int_equal(sscanf(s, "{\"pids\":[%d", &pid), 1);
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	wait_list("\"replaced\":1", 10000);
	wait_list("\"warm\":2", 20000);
}

static void test_snapshot_replaced_on_disk(void **st)
{
	char st2[160], mem2[160], ids[2][16];
	const char *s;
	int rc;

	(void)st;
	s = clone_n(&rc, state, mem, "1");
	if (rc)
		fail_msg("first clone: %s", s);
	/* a new golden image renamed over the old paths while clones run */
	snprintf(st2, sizeof(st2), "%s.new", state);
	snprintf(mem2, sizeof(mem2), "%s.new", mem);
	golden(st2, mem2);
	assert_int_equal(rename(mem2, mem), 0);
	assert_int_equal(rename(st2, state), 0);
	s = clone_n(&rc, state, mem, "1");
	if (rc || !strstr(s, "\"generation\":1") || clone_ids(s, ids, 2) != 1)
		fail_msg("clone after the replace: %s", s);
	expect_clones_verify(ids, 1); /* the new file, verified afresh */
	s = cli(&rc, fdir, "list", NULL, NULL, NULL);
	if (!strstr(s, "\"snapshot_stale\":true,\"snapshot_change\":\"replaced\""))
		fail_msg("old clones not marked stale: %s", s);
	/* gone: a clear error, no clone */
	s = clone_n(&rc, "/nonexistent/x.state", mem, "1");
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(s, "\"error\""));
}

static void test_request_larger_than_host(void **st)
{
	char dir2[160];
	const char *s;
	int rc;

	(void)st;
	s = clone_n(&rc, state, mem, "4096");
	assert_int_not_equal(rc, 0);
	if (!strstr(s, "available") && !strstr(s, "exceed") && !strstr(s, "descriptors"))
		fail_msg("4096 clones: %s", s);
	/* a fleet told each clone may write 1 TiB: one clone does not fit */
	snprintf(dir2, sizeof(dir2), "%s/fleet2", tmp);
	char save[160];
	snprintf(save, sizeof(save), "%s", fdir);
	snprintf(fdir, sizeof(fdir), "%s", dir2);
	pid_t first = daemon_pid;
	start_daemon(dir2, "vcpus=1,mem_mib=32,count=0", "1048576");
	for (int i = 0; i < 100; i++) {
		char sockp[200];
		snprintf(sockp, sizeof(sockp), "%s/fleet.sock", dir2);
		if (!access(sockp, F_OK))
			break;
		usleep(20000);
	}
	s = clone_n(&rc, state, mem, "1");
	assert_int_not_equal(rc, 0);
	if (!strstr(s, "available"))
		fail_msg("1 TiB reserve: %s", s);
	cli(NULL, fdir, "shutdown", NULL, NULL, NULL);
	if (daemon_pid > 1)
		waitpid(daemon_pid, NULL, 0);
	daemon_pid = first;
	snprintf(fdir, sizeof(fdir), "%s", save);
}

/* Clone requests from several clients at once (the daemon serves every
 * waiting request before it refills its pools): each clone is its own
 * process, none is handed out twice, and each verifies its memory. */
#define CONCURRENT 4
static void test_concurrent_clone_requests(void **st)
{
	char ids[CONCURRENT][16], outs[CONCURRENT][8192], pids[CONCURRENT][16];
	int pipes[CONCURRENT], from_pool = 0;
	pid_t cpid[CONCURRENT];

	(void)st;
	wait_list("\"warm\":2,\"warming\":0", 20000);
	for (int i = 0; i < CONCURRENT; i++) { /* all started before any is read */
		int p[2];

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		cpid[i] = fork();
		assert_true(cpid[i] >= 0);
		if (cpid[i] == 0) {
			const char *argv[] = {fleet_bin, "clone", "--dir", fdir, "--snapshot",
					      state,	 "--mem", mem,	 "-n",	 "1",
					      NULL};
			dup2(p[1], 1);
			execv(fleet_bin, (char *const *)argv);
			_exit(127);
		}
		close(p[1]);
		pipes[i] = p[0];
	}
	for (int i = 0; i < CONCURRENT; i++) {
		size_t len = 0;
		ssize_t r;
		int stt;
		const char *pp;

		while (len < sizeof(outs[i]) - 1 &&
		       (r = read(pipes[i], outs[i] + len, sizeof(outs[i]) - 1 - len)) > 0)
			len += (size_t)r;
		outs[i][len] = 0;
		close(pipes[i]);
		assert_int_equal(waitpid(cpid[i], &stt, 0), cpid[i]);
		if (!WIFEXITED(stt) || WEXITSTATUS(stt) || !strstr(outs[i], "\"ok\":1"))
			fail_msg("concurrent clone %d: %s", i, outs[i]);
		assert_int_equal(clone_ids(outs[i], &ids[i], 1), 1);
		pp = strstr(outs[i], "\"pid\":");
		assert_non_null(pp);
		snprintf(pids[i], sizeof(pids[i]), "%ld", atol(pp + 6));
		from_pool += strstr(outs[i], "\"from_pool\":1") != NULL;
	}
	for (int i = 0; i < CONCURRENT; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(ids[i], ids[j]) || !strcmp(pids[i], pids[j]))
				fail_msg("clones %d and %d share %s / pid %s", j, i, ids[i],
					 pids[i]);
	/* the two warm members went to the first requests served; the others
	 * were spawned cold or taken from the refill once warm */
	assert_true(from_pool >= 2);
	expect_clones_verify(ids, CONCURRENT);
	wait_list("\"warm\":2,\"warming\":0", 20000);
}

/* A client that sends a byte every 1.9 s never finishes its line;
 * the daemon (one client at a time) gives it 2 s in all and serves the next
 * one while the first is still sending.  It used to wait 2 s per byte. */
static void test_trickling_client_cut_off(void **st)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	const char *s;
	pid_t pid;
	int rc, fd, status;

	(void)st;
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/fleet.sock", fdir) >=
	    sizeof(a.sun_path))
		fail_msg("%s/fleet.sock: path too long", fdir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			_exit(2);
		/* a byte every 1.9 s, no newline: under the old 2 s per read
		 * it held the daemon for all 19 s; now it is cut at 2 s, and its
		 * next send, at 3.8 s, meets the closed socket */
		for (int i = 0; i < 10; i++) {
			if (send(fd, &"listlistli"[i], 1, MSG_NOSIGNAL) != 1)
				_exit(0); /* the daemon hung up on us: fine */
			usleep(1900000);
		}
		_exit(1); /* every byte was taken */
	}
	usleep(300000); /* the trickler is being served */
	s = cli(&rc, fdir, "list", NULL, NULL, NULL);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(s, "\"clones\""));
	/* the answer came while the trickler still had bytes to send */
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_stop_and_reap(void **st)
{
	const char *s;
	int rc;

	(void)st;
	s = cli(&rc, fdir, "stop", "all", NULL, NULL);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(s, "\"stopped\":"));
	s = cli(&rc, fdir, "list", NULL, NULL, NULL);
	assert_non_null(strstr(s, "\"clones\":[]"));
	s = cli(&rc, fdir, "reap", NULL, NULL, NULL);
	assert_non_null(strstr(s, "\"reaped\":0"));
}

/* ---- main ---- */

/* ---- zygote: pool members forked from one squib (docs/fleet.md "Zygote") ---- */

/* How many of pid's descriptors are KVM VMs; -1 if /proc cannot say. */
static int kvm_vm_fds(pid_t pid)
{
	char path[64], link[128];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		char fp[320];
		ssize_t k;

		snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
		k = readlink(fp, link, sizeof(link) - 1);
		if (k > 0) {
			link[k] = 0;
			n += !strcmp(link, "anon_inode:kvm-vm");
		}
	}
	closedir(d);
	return n;
}

static long proc_field(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void member_verifies(struct sqb_fleet_proc *p)
{
	char text[4096];
	size_t len = 0;

	assert_int_equal(write(p->stdin_fd, "v", 1), 1);
	if (sqb_fleet_wait_text(p->out_fd, text, sizeof(text), &len, "FLEET OK " GUEST_PAGES,
				10000))
		fail_msg("member %s did not verify its memory: %s", p->id, text);
}

/* Two members of one zygote: each is our child, holds its own KVM VM
 * (the zygote none, and it stays one thread), loads the snapshot and
 * verifies its memory; one member's death leaves the other running; a
 * malformed request is refused and the zygote serves on; closing its
 * socket ends it with status 0. */
static void test_zygote_members_own_their_vms(void **st)
{
	struct sqb_fleet_zygote z;
	struct sqb_fleet_proc m[2];
	char dir[160], id[16], body[2600], resp[1024];
	int32_t v = 0;
	int zst;

	(void)st;
	assert_int_equal(sqb_fleet_zygote_start(&z, squib), 0);
	assert_int_equal(sqb_fleet_load_body(body, sizeof(body), state, mem), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/zy-%d", tmp, i);
		snprintf(id, sizeof(id), "zy%d", i);
		assert_int_equal(sqb_fleet_spawn_via(&m[i], &z, squib, dir, id, &shape, 1, 1), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sqb_fleet_wait_ready(&m[i], 10000), 0);
		assert_int_equal(proc_field(m[i].pid, "status", "PPid:"), (long)getpid());
		assert_int_equal(kvm_vm_fds(m[i].pid), 1); /* its shell, its own */
	}
	assert_int_not_equal(m[0].pid, m[1].pid);
	assert_int_equal(kvm_vm_fds(z.pid), 0);
	assert_int_equal(proc_field(z.pid, "status", "Threads:"), 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sqb_fleet_http(m[i].sock, "PUT", "/snapshot/load", body, resp,
						sizeof(resp), 20000),
				 204);
		member_verifies(&m[i]);
	}
	sqb_fleet_kill(&m[0]);
	member_verifies(&m[1]); /* still its own VM, still running */
	/* a request without its three descriptors: refused, the zygote lives */
	assert_int_equal(send(z.fd, "squib\0", 6, 0), 6);
	assert_int_equal(recv(z.fd, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	assert_int_equal(v, -EINVAL);
	snprintf(dir, sizeof(dir), "%s/zy-2", tmp);
	assert_int_equal(sqb_fleet_spawn_via(&m[0], &z, squib, dir, "zy2", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&m[0], 10000), 0);
	sqb_fleet_kill(&m[0]);
	sqb_fleet_kill(&m[1]);
	close(z.fd);
	assert_int_equal(waitpid(z.pid, &zst, 0), z.pid);
	assert_true(WIFEXITED(zst) && WEXITSTATUS(zst) == 0);
}

/* pid's GLIBC_TUNABLES (from /proc/PID/environ) into out, "" if none */
static void tunables_of(pid_t pid, char *out, size_t cap)
{
	char path[64], buf[16384];
	ssize_t n;
	int fd;

	out[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	for (char *e = buf; e < buf + n; e += strlen(e) + 1)
		if (!strncmp(e, "GLIBC_TUNABLES=", 15))
			snprintf(out, cap, "%s", e + 15);
}

extern char **environ;

static const char *env_tunables(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], "GLIBC_TUNABLES=", 15))
			return env[i] + 15;
	return NULL;
}

/* Pool members, exec'd or forked by a zygote, run with glibc's tcache off
 * (docs/fleet.md "Load leftovers"), after a tunable the caller had set;
 * the spawner's own environment is left as it was.  glibc 2.36 cuts the
 * variable in a process's own copy of its environment at the first ':'
 * while it parses it, so /proc/PID/environ shows the first tunable only:
 * the appended one is checked in the environment that is exec'd. */
static void test_members_run_without_tcache(void **st)
{
	struct sqb_fleet_zygote z;
	struct sqb_fleet_proc p;
	char dir[160], t[256], **env;
	size_t n = 0, m = 0;

	(void)st;
	setenv("GLIBC_TUNABLES", "glibc.malloc.perturb=0", 1);
	env = sqb_fleet_member_env();
	assert_non_null(env);
	assert_string_equal(env_tunables(env),
			    "glibc.malloc.perturb=0:glibc.malloc.tcache_count=0");
	while (env[n])
		n++;
	while (environ[m])
		m++;
	assert_int_equal(n, m); /* replaced, not added twice */
	sqb_fleet_member_env_free(env);
	assert_string_equal(getenv("GLIBC_TUNABLES"), "glibc.malloc.perturb=0");
	snprintf(dir, sizeof(dir), "%s/tc-exec", tmp);
	assert_int_equal(sqb_fleet_spawn(&p, squib, dir, "tc0", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 10000), 0);
	tunables_of(p.pid, t, sizeof(t));
	assert_string_equal(t, "glibc.malloc.perturb=0");
	sqb_fleet_kill(&p);
	unsetenv("GLIBC_TUNABLES");
	env = sqb_fleet_member_env();
	assert_non_null(env);
	assert_string_equal(env_tunables(env), "glibc.malloc.tcache_count=0");
	sqb_fleet_member_env_free(env);
	assert_int_equal(sqb_fleet_zygote_start(&z, squib), 0);
	snprintf(dir, sizeof(dir), "%s/tc-zy", tmp);
	assert_int_equal(sqb_fleet_spawn_via(&p, &z, squib, dir, "tc1", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&p, 10000), 0);
	tunables_of(z.pid, t, sizeof(t));
	assert_string_equal(t, "glibc.malloc.tcache_count=0");
	tunables_of(p.pid, t, sizeof(t)); /* inherited from the zygote */
	assert_string_equal(t, "glibc.malloc.tcache_count=0");
	assert_null(getenv("GLIBC_TUNABLES"));
	sqb_fleet_kill(&p);
	sqb_fleet_zygote_stop(&z);
}

/* pid's descriptors as "0,1,2,3" (ascending, as /proc lists them); count of
 * those >= 3 that are /dev/null or link to `avoid` (NULL: none) in *odd. */
static void fd_table(pid_t pid, char *out, size_t cap, const char *avoid, int *odd)
{
	char path[64], link[128];
	struct dirent *e;
	size_t len = 0;
	int fds[256], n = 0;
	DIR *d;

	*odd = 0;
	out[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d)) && n < 256) {
		char fp[320];
		ssize_t k;

		if (e->d_name[0] == '.')
			continue;
		fds[n++] = atoi(e->d_name);
		snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
		k = readlink(fp, link, sizeof(link) - 1);
		if (k > 0 && fds[n - 1] >= 3) {
			link[k] = 0;
			*odd += !strcmp(link, "/dev/null") || (avoid && !strcmp(link, avoid));
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++) /* insertion sort: readdir order is the kernel's */
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	for (int i = 0; i < n && len + 12 < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%d", i ? "," : "", fds[i]);
}

/* One raw request on the zygote's socket: data[0..len) with nfds copies of
 * /dev/null; the zygote's answer (-EPIPE when it closed instead). */
static int32_t zygote_raw(int zfd, const void *data, size_t len, int nfds)
{
	union {
		char b[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[8];
	int32_t v = -EPIPE;

	memset(&cbuf, 0, sizeof(cbuf));
	for (int i = 0; i < nfds; i++)
		assert_true((fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
	if (nfds) {
		struct cmsghdr *c;

		m.msg_control = cbuf.b;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(zfd, &m, MSG_NOSIGNAL), (ssize_t)len);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (recv(zfd, &v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = -EPIPE;
	return v;
}

/* The zygote holds its three standard descriptors and its socket, nothing
 * else, before and after malformed requests (each answered -EINVAL, the
 * zygote serving on: an empty message, 2 or 4 descriptors, no final NUL,
 * 65 arguments, more than 4 KiB); a member holds neither /dev/null beyond
 * 0-2 nor either end of the zygote's socket; a member's
 * process_startup_time_us counts from its fork, not the zygote's start. */
static void test_zygote_requests_and_descriptors(void **st)
{
	struct sqb_fleet_zygote z;
	struct sqb_fleet_proc m;
	char dir[160], fds[256], zsock[64], body[2600], resp[1024], path[200], big[5000];
	char args[65 * 2];
	struct stat sb;
	int odd, zst;
	long long startup;
	const char *s;

	(void)st;
	assert_int_equal(sqb_fleet_zygote_start(&z, squib), 0);
	/* a malformed request proves it serves (it has exec'd squib) */
	assert_int_equal(zygote_raw(z.fd, "squib", 5, 3), -EINVAL); /* no final NUL */
	fd_table(z.pid, fds, sizeof(fds), NULL, &odd);
	assert_string_equal(fds, "0,1,2,3");
	assert_int_equal(zygote_raw(z.fd, "", 0, 0), -EINVAL);			/* empty */
	assert_int_equal(zygote_raw(z.fd, "squib\0--version", 16, 2), -EINVAL); /* 2 fds */
	assert_int_equal(zygote_raw(z.fd, "squib\0--version", 16, 4), -EINVAL); /* 4 fds */
	assert_int_equal(zygote_raw(z.fd, "squib\0--version", 16, 8), -EINVAL); /* 8 fds */
	for (int i = 0; i < 65; i++)
		memcpy(args + 2 * i, "a", 2);
	assert_int_equal(zygote_raw(z.fd, args, sizeof(args), 3), -EINVAL);
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = 0;
	assert_int_equal(zygote_raw(z.fd, big, sizeof(big), 3), -EINVAL);
	fd_table(z.pid, fds, sizeof(fds), NULL, &odd);
	assert_string_equal(fds, "0,1,2,3"); /* nothing received stayed */

	sleep(3); /* the zygote is older than the member will be */
	snprintf(dir, sizeof(dir), "%s/zy-fd", tmp);
	assert_int_equal(sqb_fleet_spawn_via(&m, &z, squib, dir, "zyfd", &shape, 1, 1), 0);
	assert_int_equal(sqb_fleet_wait_ready(&m, 10000), 0);
	assert_int_equal(fstat(z.fd, &sb), 0);
	snprintf(zsock, sizeof(zsock), "socket:[%llu]", (unsigned long long)sb.st_ino);
	fd_table(m.pid, fds, sizeof(fds), zsock, &odd);
	assert_int_equal(odd, 0);
	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)z.pid);
	ssize_t k = readlink(path, zsock, sizeof(zsock) - 1);
	assert_true(k > 0);
	zsock[k] = 0;
	fd_table(m.pid, fds, sizeof(fds), zsock, &odd);
	assert_int_equal(odd, 0);
	/* process_startup_time_us: from the member's fork, so never more than
	 * the member's age (the zygote's age is 3 s more) */
	snprintf(path, sizeof(path), "%s/metrics.json", dir);
	close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)); /* Firecracker's: it exists */
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", path);
	if (sqb_fleet_http(m.sock, "PUT", "/metrics", body, resp, sizeof(resp), 5000) != 204)
		fail_msg("PUT /metrics: %s", resp);
	assert_int_equal(sqb_fleet_load_body(body, sizeof(body), state, mem), 0);
	assert_int_equal(
	    sqb_fleet_http(m.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp), 20000), 204);
	assert_int_equal(sqb_fleet_http(m.sock, "PUT", "/actions",
					"{\"action_type\":\"FlushMetrics\"}", resp, sizeof(resp),
					5000),
			 204);
	uint64_t age_us = (sqb_fleet_now_ns() - m.spawned_ns) / 1000;
	s = strstr(slurp(path), "\"process_startup_time_us\":");
	assert_non_null(s);
	startup = atoll(s + strlen("\"process_startup_time_us\":"));
	if (startup < 0 || (uint64_t)startup > age_us)
		fail_msg("member's process_startup_time_us %lld > its age %llu us", startup,
			 (unsigned long long)age_us);
	sqb_fleet_kill(&m);
	close(z.fd);
	assert_int_equal(waitpid(z.pid, &zst, 0), z.pid);
	assert_true(WIFEXITED(zst) && WEXITSTATUS(zst) == 0);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A stand-in zygote (a child of ours on a socketpair): answers request i
 * with pid base+i after delay_ms[i] (closing what it was sent), then
 * stays until its socket closes. */
static pid_t fake_zygote(int fd, int spawner_end, const unsigned int *delay_ms, int n, int32_t base)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves it behind */
	close(spawner_end);
	for (int i = 0; i < n; i++) {
		char buf[4096];
		union {
			char b[CMSG_SPACE(8 * sizeof(int))];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = cbuf.b,
				   .msg_controllen = sizeof(cbuf.b)};
		int32_t v = base + i;

		if (recvmsg(fd, &m, MSG_CMSG_CLOEXEC) <= 0)
			_exit(0);
		usleep(delay_ms[i] * 1000u);
		if (send(fd, &v, sizeof(v), MSG_NOSIGNAL) < 0)
			_exit(0);
	}
	while (read(fd, &n, 1) > 0)
		;
	_exit(0);
}

/* The spawner never takes one request's answer for the next: a signal
 * during the wait, and a zygote slower than the wait (10 s), leave no
 * answer behind on the socket; after the slow one the members are exec'd. */
static void test_zygote_answers_never_shift(void **st)
{
	static const unsigned int delay[3] = {300, 10500, 0};
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	struct itimerval it = {.it_value = {0, 100000}};
	struct sqb_fleet_zygote z;
	struct sqb_fleet_proc p[3];
	char dir[160];
	int sv[2], rc[3];

	(void)st;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	z.pid = fake_zygote(sv[1], sv[0], delay, 3, 400000);
	assert_true(z.pid > 0);
	close(sv[1]);
	z.fd = sv[0];
	sigemptyset(&sa.sa_mask); /* no SA_RESTART: poll() is interrupted */
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/zy-fake-%d", tmp, i);
		rc[i] = sqb_fleet_spawn_via(&p[i], &z, squib, dir, "zyfake", &shape, 0, 0);
	}
	sigaction(SIGALRM, &old, NULL);
	/* 0: the interrupted wait went on and got its own answer */
	assert_int_equal(rc[0], 0);
	assert_int_equal(p[0].pid, 400000);
	/* 1: no answer in 10 s: refused, the zygote is not asked again */
	assert_int_equal(rc[1], -ETIMEDOUT);
	assert_int_equal(z.fd, -1);
	/* 2: exec'd (its own process, not the late answer 400001) */
	assert_int_equal(rc[2], 0);
	assert_int_not_equal(p[2].pid, 400001);
	assert_int_equal(p[2].from_zygote, 0);
	assert_int_equal(proc_field(p[2].pid, "status", "PPid:"), (long)getpid());
	sqb_fleet_kill(&p[2]);
	close(p[0].stdin_fd);
	sqb_fleet_zygote_stop(&z);
}

/* A member whose answer its spawner never reads (it closed the socket
 * right after asking) is killed, not left running unknown to anyone: the
 * only children left are the zygote (exit 0) and that member (SIGKILL). */
static void test_zygote_unanswered_member_killed(void **st)
{
	struct sqb_fleet_zygote z;
	char req[300];
	int len, zygote_done = 0, killed = 0;
	uint64_t end;

	(void)st;
	assert_int_equal(sqb_fleet_zygote_start(&z, squib), 0);
	assert_int_equal(zygote_raw(z.fd, "squib", 5, 3), -EINVAL); /* it serves */
	len = snprintf(req, sizeof(req), "squib%c--api-sock%c%s/zy-orphan.sock", 0, 0, tmp) + 1;
	{
		union {
			char b[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = {.iov_base = req, .iov_len = (size_t)len};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = cbuf.b,
				   .msg_controllen = sizeof(cbuf.b)};
		struct cmsghdr *c;
		int fds[3];

		memset(&cbuf, 0, sizeof(cbuf));
		for (int i = 0; i < 3; i++)
			assert_true((fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(c), fds, sizeof(fds));
		assert_int_equal(sendmsg(z.fd, &m, MSG_NOSIGNAL), len);
		for (int i = 0; i < 3; i++)
			close(fds[i]);
	}
	close(z.fd); /* gives up on the answer */
	end = sqb_fleet_now_ns() + 10000000000ULL;
	for (;;) {
		int wst;
		pid_t p = waitpid(-1, &wst, WNOHANG);

		if (p < 0 && errno == ECHILD)
			break;
		if (p == z.pid) {
			assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
			zygote_done = 1;
		} else if (p > 0) {
			if (!WIFSIGNALED(wst) || WTERMSIG(wst) != SIGKILL)
				fail_msg("child %d ended with status 0x%x, not SIGKILL", (int)p,
					 wst);
			killed++;
		} else if (sqb_fleet_now_ns() > end) {
			fail_msg("a child still runs 10 s after its spawner gave up (zygote %s)",
				 zygote_done ? "gone" : "still there");
		} else {
			usleep(10000);
		}
	}
	assert_true(zygote_done);
	assert_int_equal(killed, 1);
}

/* --zygote alone, FD a socket: anything else exits 1 with the rule. */
static void test_zygote_bad_argument(void **st)
{
	static const char *const bad[][4] = {
	    {"--zygote", NULL}, {"--zygote", "abc"}, {"--zygote", "1"}, {"--zygote", "3", "--id"}};

	(void)st;
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int p[2], stt;
		char out[512] = "";
		ssize_t k;
		pid_t pid;

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		pid = fork();
		if (pid == 0) {
			const char *argv[6] = {squib, bad[i][0], bad[i][1], bad[i][2], bad[i][3]};
			dup2(p[1], 2);
			execv(squib, (char *const *)argv);
			_exit(127);
		}
		close(p[1]);
		k = read(p[0], out, sizeof(out) - 1);
		out[k > 0 ? k : 0] = 0;
		close(p[0]);
		assert_int_equal(waitpid(pid, &stt, 0), pid);
		assert_true(WIFEXITED(stt) && WEXITSTATUS(stt) == 1);
		if (!strstr(out, "--zygote FD"))
			fail_msg("case %u: %s", i, out);
	}
}

/* squib-fleet daemon --zygote: pooled clones come from the zygote (their
 * parent is the daemon, by adoption), a cold one is exec'd; all verify. */
static void test_daemon_zygote_pool(void **st)
{
	char ids[4][16];
	const char *s;
	int rc;

	(void)st;
	wait_list("\"warm\":2", 20000);
	s = clone_n(&rc, state, mem, "3");
	if (rc || !strstr(s, "\"ok\":3") || !strstr(s, "\"from_pool\":2"))
		fail_msg("clone -n 3: %s", s);
	assert_int_equal(clone_ids(s, ids, 4), 3);
	expect_clones_verify(ids, 3);
	for (const char *p = s; (p = strstr(p, "\"pid\":")); p += 6)
		assert_int_equal(proc_field((pid_t)atol(p + 6), "status", "PPid:"),
				 (long)daemon_pid);
	wait_list("\"warm\":2,\"warming\":0,\"handed_out\":2", 20000);
}

/* --loaded: a pool whose members hold the snapshot loaded ahead (not
 * resumed); a clone request only resumes them, each verifies its memory;
 * the pool refills with loads; a snapshot replaced on disk drops the
 * members of the old generation and the pool loads the new one. */
static void test_loaded_pool_resumes(void **st)
{
	char dir3[160], st3[160], m3[160], st4[200], m4[200], arg[400], save[160], ids[4][16];
	const char *s, *p;
	pid_t first = daemon_pid, pid;
	int rc, ahead = 0;

	(void)st;
	snprintf(dir3, sizeof(dir3), "%s/fleet3", tmp);
	snprintf(st3, sizeof(st3), "%s/loaded.state", tmp);
	snprintf(m3, sizeof(m3), "%s/loaded.mem", tmp);
	golden(st3, m3);
	/* refused before anything starts: no snapshot in the spec */
	{
		const char *argv[] = {fleet_bin, "daemon",   "--dir",	dir3, "--squib",
				      squib,	 "--loaded", "count=2", NULL};
		int stt;

		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
			dup2(fd, 2);
			execv(fleet_bin, (char *const *)argv);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, &stt, 0), pid);
		assert_true(WIFEXITED(stt) && WEXITSTATUS(stt) == 2);
	}
	snprintf(arg, sizeof(arg), "count=2,state=%s,mem=%s", st3, m3);
	start_daemon_with(dir3, "--loaded", arg, NULL, NULL);
	snprintf(save, sizeof(save), "%s", fdir);
	snprintf(fdir, sizeof(fdir), "%s", dir3);
	wait_list("\"generation\":0,\"loaded\":2", 30000);
	s = clone_n(&rc, st3, m3, "3");
	if (rc || !strstr(s, "\"ok\":3") || !strstr(s, "\"from_loaded\":2"))
		fail_msg("clone -n 3 from a loaded pool: %s", s);
	for (p = s; (p = strstr(p, "\"loaded_ahead\":true")); p++)
		ahead++;
	assert_int_equal(ahead, 2);
	assert_int_equal(clone_ids(s, ids, 4), 3);
	expect_clones_verify(ids, 3);
	wait_list("\"loaded\":2", 30000); /* refilled by loads */
	/* a new golden image renamed over the old one */
	snprintf(st4, sizeof(st4), "%s.new", st3);
	snprintf(m4, sizeof(m4), "%s.new", m3);
	golden(st4, m4);
	assert_int_equal(rename(m4, m3), 0);
	assert_int_equal(rename(st4, st3), 0);
	wait_list("\"generation\":1,\"loaded\":2", 30000);
	s = clone_n(&rc, st3, m3, "1");
	if (rc || !strstr(s, "\"generation\":1") || !strstr(s, "\"from_loaded\":1") ||
	    clone_ids(s, ids, 4) != 1)
		fail_msg("clone after the replace: %s", s);
	expect_clones_verify(ids, 1);
	cli(NULL, fdir, "shutdown", NULL, NULL, NULL);
	waitpid(daemon_pid, NULL, 0);
	/* --loaded-extra with {id}: a member squib refuses is replaced, the
	 * pool stops after 5 in a row and says why; requests still get
	 * clones (cold ones) */
	start_daemon_with(dir3, "--loaded", arg, "--loaded-extra", "\"no_such_{id}\":1");
	wait_list("no_such_vm-", 60000);
	for (int i = 0, fails = 0, spawned = -1, before = -2; fails < 5 || spawned != before; i++) {
		const char *f;

		if (i == 200)
			fail_msg("the failing loaded pool never stopped: %s", s);
		usleep(100000);
		s = cli(NULL, fdir, "list", NULL, NULL, NULL);
		before = spawned;
		f = strstr(s, "\"failures_in_a_row\":");
		fails = f ? atoi(f + 20) : 0;
		f = strstr(s, "\"spawned\":");
		spawned = f ? atoi(f + 10) : -1;
	}
	if (!strstr(s, "\"loaded\":0") || !strstr(s, "no_such_vm-"))
		fail_msg("a refused load ahead: %s", s);
	s = clone_n(&rc, st3, m3, "1");
	if (rc || !strstr(s, "\"ok\":1") || !strstr(s, "\"from_loaded\":0"))
		fail_msg("clone beside a failed loaded pool: %s", s);
	cli(NULL, fdir, "shutdown", NULL, NULL, NULL);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = first;
	snprintf(fdir, sizeof(fdir), "%s", save);
}

static void cleanup(void)
{
	char cmd[128];

	if (daemon_pid > 1) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	if (getenv("SQB_FLEETTEST_KEEP")) {
		fprintf(stderr, "kept %s\n", tmp);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest unit[] = {
	    cmocka_unit_test(test_smaps_rollup_fields),
	    cmocka_unit_test(test_load_body_is_firecrackers),
	    cmocka_unit_test(test_host_check_refuses_clearly),
	    cmocka_unit_test(test_identity_sees_replace_and_rewrite),
	};
	const struct CMUnitTest shell[] = {
	    cmocka_unit_test(test_shell_bad_shape),
	    cmocka_unit_test(test_shell_adopted_by_matching_load),
	    cmocka_unit_test(test_shell_of_other_shape_left_alone),
	    cmocka_unit_test(test_shell_that_ran_is_refused),
	};
	const struct CMUnitTest prewarm[] = {
	    cmocka_unit_test(test_prewarm_shell_used),
	    cmocka_unit_test(test_prewarm_other_shape_falls_back),
	    cmocka_unit_test(test_prewarm_shell_takes_devices),
	    cmocka_unit_test(test_prewarm_bad_option),
	    cmocka_unit_test(test_prewarm_idle_never_wakes),
	    cmocka_unit_test(test_mmap_load_idle_then_diff),
	};
	const struct CMUnitTest pool[] = {
	    cmocka_unit_test(test_pool_clones_and_refill),
	    cmocka_unit_test(test_pool_counter_clones_continue),
	    cmocka_unit_test(test_clone_load_extra_per_clone),
	    cmocka_unit_test(test_pool_process_killed_is_replaced),
	    cmocka_unit_test(test_snapshot_replaced_on_disk),
	    cmocka_unit_test(test_request_larger_than_host),
	    cmocka_unit_test(test_concurrent_clone_requests),
	    cmocka_unit_test(test_trickling_client_cut_off),
	    cmocka_unit_test(test_stop_and_reap),
	    cmocka_unit_test(test_loaded_pool_resumes),
	};
	const struct CMUnitTest zygote[] = {
	    cmocka_unit_test(test_zygote_bad_argument),
	    cmocka_unit_test(test_zygote_members_own_their_vms),
	    cmocka_unit_test(test_members_run_without_tcache),
	    cmocka_unit_test(test_zygote_requests_and_descriptors),
	    cmocka_unit_test(test_zygote_answers_never_shift),
	    cmocka_unit_test(test_zygote_unanswered_member_killed),
	};
	const struct CMUnitTest zygote_daemon[] = {
	    cmocka_unit_test(test_daemon_zygote_pool),
	};
	char vc[128];
	int fd, rc;

	if (argc != 5 && argc != 6) {
		fprintf(
		    stderr,
		    "usage: %s unit|shell|prewarm|pool|zygote SQUIB SQUIB_FLEET GUEST [COUNTER]\n",
		    argv[0]);
		return 2;
	}
	squib = argv[2];
	fleet_bin = argv[3];
	guest = argv[4];
	counter_guest = argc > 5 ? argv[5] : NULL;
	snprintf(tmp, sizeof(tmp), "/tmp/sqb-fleet-XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(vc, sizeof(vc), "%s/vcache", tmp);
	setenv("SQB_VERIFY_CACHE", vc, 1); /* squib children inherit it */
	if (!strcmp(argv[1], "unit")) {
		rc = cmocka_run_group_tests_name("fleet.unit", unit, NULL, NULL);
		cleanup();
		return rc;
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n", strerror(errno));
		cleanup();
		return 77;
	}
	close(fd);
	snprintf(state, sizeof(state), "%s/golden.state", tmp);
	snprintf(mem, sizeof(mem), "%s/golden.mem", tmp);
	{
		char dir[160], why[600];
		snprintf(dir, sizeof(dir), "%s/golden", tmp);
		if (sqb_fleet_golden(squib, dir, guest, GUEST_ARGS, &shape, "FLEET ready", state,
				     mem, why, sizeof(why))) {
			fprintf(stderr, "cannot make the golden snapshot: %s\n", why);
			cleanup();
			return 1;
		}
	}
	if (!strcmp(argv[1], "shell"))
		rc = cmocka_run_group_tests_name("fleet.shell", shell, NULL, NULL);
	else if (!strcmp(argv[1], "prewarm"))
		rc = cmocka_run_group_tests_name("fleet.prewarm", prewarm, NULL, NULL);
	else {
		int zy = !strcmp(argv[1], "zygote");

		if (zy)
			rc = cmocka_run_group_tests_name("fleet.zygote", zygote, NULL, NULL);
		snprintf(fdir, sizeof(fdir), "%s/fleet", tmp);
		daemon_extra = zy ? "--zygote" : NULL;
		start_daemon(fdir, "vcpus=1,mem_mib=32,count=2", "8");
		if (zy)
			rc |= cmocka_run_group_tests_name("fleet.zygote_daemon", zygote_daemon,
							  NULL, NULL);
		else
			rc = cmocka_run_group_tests_name("fleet.pool", pool, NULL, NULL);
		int dst = 0;

		cli(NULL, fdir, "shutdown", NULL, NULL, NULL);
		if (daemon_pid > 1 && waitpid(daemon_pid, &dst, 0) == daemon_pid &&
		    !(WIFEXITED(dst) && WEXITSTATUS(dst) == 0)) {
			/* a clean shutdown (LeakSanitizer included in ASan builds) */
			fprintf(stderr, "squib-fleet daemon ended with status 0x%x; see %s.log\n",
				dst, fdir);
			rc = 1;
		}
		daemon_pid = 0;
	}
	cleanup();
	return rc;
}
