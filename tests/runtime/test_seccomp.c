/* squib's per-thread seccomp filters (runtime/seccomp/, docs/security.md):
 * a confined thread that makes a forbidden call dies with SIGSYS and a line
 * naming the call; the vCPU list refuses files and non-Unix sockets and
 * executable memory; a compiled --seccomp-filter file is obeyed; and every
 * thread of a running squib shows "Seccomp: 2" (SECCOMP_MODE_FILTER, proc(5))
 * while --no-seccomp shows 0. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp_build.h"
#include "seccomp/seccomp_prebuilt.h"
#include "seccomp/sqb_confine.h"
#include "squib_client.h"

static const char *squib_bin;
static const char *guest_dir;

typedef void (*child_fn)(void);

/* Run fn in a child confined as kind; return its wait status and stderr. */
static int run_confined(enum sqb_confine_kind kind, const char *filter_file, child_fn fn, char *err,
			size_t cap)
{
	int pfd[2], st = 0;
	pid_t pid;
	ssize_t n, got = 0;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sqb_confine_opts o = SQB_CONFINE_OPTS_INIT;
		struct sqb_diag d = {0};

		dup2(pfd[1], 2);
		o.filter_file = filter_file;
		if (sqb_confine_setup(&o, &d) < 0 || sqb_confine_thread(kind) < 0)
			_exit(90);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	while (got < (ssize_t)cap - 1 && (n = read(pfd[0], err + got, cap - 1 - got)) > 0)
		got += n;
	err[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* mount(NULL, NULL, NULL, 0, NULL) would only fail with EFAULT if it ran */
static void call_mount(void)
{
	syscall(SYS_mount, 0, 0, 0, 0, 0);
}

static void test_api_thread_forbidden_call_dies_with_sigsys_naming_it(void **state)
{
	char err[512];
	int st;

	(void)state;
	st = run_confined(SQB_CONFINE_API, NULL, call_mount, err, sizeof(err));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("child status 0x%x, stderr: %s", st, err);
	assert_non_null(strstr(err, "thread 'api'"));
	assert_non_null(strstr(err, "forbidden system call 165 (mount)"));
}

static void vcpu_open_then_inet_socket(void)
{
	int fd = open("/etc/hostname", O_RDONLY);

	if (fd >= 0 || errno != EACCES)
		_exit(91); /* files are refused, not opened */
	socket(AF_INET, SOCK_STREAM, 0);
	_exit(92); /* not reached */
}

static void vcpu_exec_mapping(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	_exit(93);
}

static void vcpu_rw_mapping(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	_exit(p == MAP_FAILED ? 94 : 0);
}

static void test_vcpu_list_refuses_files_sockets_and_exec_memory(void **state)
{
	char err[512];
	int st;

	(void)state;
	st = run_confined(SQB_CONFINE_VCPU, NULL, vcpu_open_then_inet_socket, err, sizeof(err));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("child status 0x%x, stderr: %s", st, err);
	assert_non_null(strstr(err, "thread 'vcpu'"));
	assert_non_null(strstr(err, "(socket)"));
	st = run_confined(SQB_CONFINE_VCPU, NULL, vcpu_exec_mapping, err, sizeof(err));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	assert_non_null(strstr(err, "(mmap)"));
	st = run_confined(SQB_CONFINE_VCPU, NULL, vcpu_rw_mapping, err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void call_getppid(void)
{
	getppid();
	_exit(95);
}

/* --seccomp-filter: the raw BPF that libseccomp's seccomp_export_bpf writes. */
static void test_compiled_filter_file_is_obeyed_and_bad_files_refused(void **state)
{
	char path[] = "/tmp/squib-bpf-XXXXXX", err[512];
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	struct sqb_confine_opts o = SQB_CONFINE_OPTS_INIT;
	struct sqb_diag d = {0};
	int fd = mkstemp(path), st;

	(void)state;
	assert_true(fd >= 0 && ctx);
	assert_int_equal(seccomp_rule_add(ctx, SCMP_ACT_TRAP, SCMP_SYS(getppid), 0), 0);
	assert_int_equal(seccomp_export_bpf(ctx, fd), 0);
	seccomp_release(ctx);
	st = run_confined(SQB_CONFINE_EVLOOP, path, call_getppid, err, sizeof(err));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("child status 0x%x, stderr: %s", st, err);
	assert_non_null(strstr(err, "(getppid)"));
	/* 12 bytes is not a whole number of 8-byte instructions */
	assert_int_equal(ftruncate(fd, 12), 0);
	o.filter_file = path;
	assert_int_equal(sqb_confine_setup(&o, &d), -EINVAL);
	assert_non_null(strstr(d.reason, "8 bytes"));
	assert_int_equal(sqb_confine_enabled(), 0);
	close(fd);
	unlink(path);
}

/* proc(5): "Seccomp: 2" is SECCOMP_MODE_FILTER. */
static int count_filtered(pid_t pid, int *total, int *vcpus, int *evloops)
{
	char dir[64], path[512], buf[4096];
	struct dirent *de;
	DIR *d;
	int filtered = 0;

	*total = *vcpus = *evloops = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
		(*total)++;
		filtered += strstr(buf, "\nSeccomp:\t2\n") != NULL;
		*vcpus += strstr(buf, "Name:\tfc_vcpu ") != NULL; /* Firecracker's name */
		*evloops += strstr(buf, "Name:\tsquib-evloop\n") != NULL;
	}
	closedir(d);
	return filtered;
}

static void boot_counter(struct sqb_tc *t, const char *const *extra)
{
	char body[512], resp[1024];

	assert_int_equal(tc_spawn(t, squib_bin, extra, 1), 0);
	assert_int_equal(tc_req(t, "PUT", "/machine-config",
				"{\"vcpu_count\":2,\"mem_size_mib\":16}", resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/smp.elf\"}", guest_dir);
	assert_int_equal(tc_req(t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	if (tc_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
		   sizeof(resp)) != 204)
		fail_msg("InstanceStart: %s", resp);
}

/* The programs squib carries (built by seccomp_gen when squib was built)
 * are exactly what libseccomp builds from the lists now, instruction for
 * instruction, and the names the SIGSYS reporter prints are libseccomp's:
 * a list edited without a rebuild, or a generator that drops or reorders
 * a rule, fails here. */
static void test_prebuilt_programs_equal_a_fresh_build(void **state)
{
	(void)state;
#ifdef SQB_SECCOMP_PREBUILT
	for (int k = 0; k < SQB_CONFINE_NKINDS; k++) {
		struct sock_fprog p = {0};
		struct sqb_diag d = {0};

		assert_int_equal(sqb_sc_build_kind((enum sqb_confine_kind)k, &p, &d), 0);
		assert_int_equal(p.len, sqb_sc_pb_len[k]);
		assert_memory_equal(p.filter, sqb_sc_pb_insns + sqb_sc_pb_off[k],
				    p.len * sizeof(struct sock_filter));
		free(p.filter);
	}
	for (int nr = 0; nr < SQB_SC_PB_NAMES; nr++) {
		char *n = sqb_sc_syscall_name(nr);

		if (n) {
			assert_int_not_equal(sqb_sc_pb_name_off[nr], 0);
			assert_string_equal(sqb_sc_pb_names + sqb_sc_pb_name_off[nr] - 1, n);
		} else {
			assert_int_equal(sqb_sc_pb_name_off[nr], 0);
		}
		free(n);
	}
#else
	print_message("skipped: a cross build carries no prebuilt programs (squib builds them "
		      "at start-up there)\n");
	skip();
#endif
}

static void test_every_thread_of_running_squib_is_filtered(void **state)
{
	struct sqb_tc t;
	char resp[1024];
	int total, vcpus, evloops, filtered;

	(void)state;
	if (access("/dev/kvm", R_OK | W_OK)) {
		print_message("skipped: /dev/kvm unavailable\n");
		skip();
	}
#if defined(__SANITIZE_THREAD__)
	print_message("skipped: a ThreadSanitizer squib runs unfiltered (runtime/main.c)\n");
	skip();
#endif
	boot_counter(&t, NULL);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	filtered = count_filtered(t.pid, &total, &vcpus, &evloops);
	print_message("squib pid %d: %d threads, %d with Seccomp: 2 (%d vCPU, %d event loop)\n",
		      (int)t.pid, total, filtered, vcpus, evloops);
	assert_int_equal(vcpus, 2);
	assert_int_equal(evloops, 1);
	assert_int_equal(filtered, total);
	tc_stop(&t);

	boot_counter(&t, (const char *const[]){"--no-seccomp", NULL});
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	assert_int_equal(count_filtered(t.pid, &total, &vcpus, &evloops), 0);
	assert_int_equal(vcpus, 2);
	tc_stop(&t);
}

/* Firecracker's test_custom_seccomp.py, in squib's --seccomp-filter
 * format (one program for every thread, docs/confinement.md):
 * test_failing_filter: a program that traps KVM_RUN lets squib start and
 * configure the VM; the vCPU's first KVM_RUN ends it, the log says
 * "Shutting down VM after intercepting a bad syscall (16)" and the metrics
 * file's last line has seccomp.num_faults = 1.  test_invalid_bpf: a file
 * that is no program fails the start with exit code 1 and "Seccomp error:
 * Filter deserialization failed" in the log.  test_working_filter: killing
 * clone and execve leaves squib running. */
static void test_custom_filter_failing_and_invalid(void **state)
{
	char dir[] = "/tmp/squib-fcsec-XXXXXX", bpf[96], log[96], mx[96], body[512], resp[1024];
	scmp_filter_ctx ctx;
	struct sqb_tc t;
	char *text;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(bpf, sizeof(bpf), "%s/bpf.out", dir);
	snprintf(log, sizeof(log), "%s/fc.log", dir);
	snprintf(mx, sizeof(mx), "%s/fc.ndjson", dir);

	/* test_invalid_bpf */
	fd = open(bpf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "Invalid BPF!", 12), 12);
	close(fd);
	close(open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644));
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--seccomp-filter", bpf, "--log-path", log,
							"--level", "Debug", NULL},
				  0), /* it exits before any API socket */
			 0);
	assert_int_equal(tc_wait_exit(&t, 10000), 1);
	text = tc_read_file(log);
	assert_non_null(text);
	if (!strstr(text, "Seccomp error: Filter deserialization failed"))
		fail_msg("log: %s", text);
	free(text);
	tc_stop(&t);

	if (access("/dev/kvm", R_OK | W_OK)) {
		print_message("skipped (failing filter): /dev/kvm unavailable\n");
		goto out;
	}
#if defined(__SANITIZE_THREAD__)
	/* a ThreadSanitizer squib runs unfiltered (runtime/main.c) */
	print_message("skipped (failing filter): ThreadSanitizer build\n");
	goto out;
#endif
	/* test_failing_filter */
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	assert_non_null(ctx);
	assert_int_equal(
	    seccomp_rule_add(ctx, SCMP_ACT_TRAP, SCMP_SYS(ioctl), 1,
			     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, 0xAE80u /* KVM_RUN */)),
	    0);
	fd = open(bpf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(seccomp_export_bpf(ctx, fd), 0);
	close(fd);
	seccomp_release(ctx);
	close(open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644));
	close(open(mx, O_WRONLY | O_CREAT | O_TRUNC, 0644));
	assert_int_equal(
	    tc_spawn(&t, squib_bin,
		     (const char *const[]){"--seccomp-filter", bpf, "--log-path", log, "--level",
					   "Debug", "--metrics-path", mx, NULL},
		     1),
	    0);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\":1,\"mem_size_mib\":16}", resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/smp.elf\"}", guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	/* it may die before it answers */
	(void)tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
		     sizeof(resp));
	assert_int_equal(tc_wait_exit(&t, 10000), -1);
	assert_true(WIFSIGNALED(t.status) && WTERMSIG(t.status) == SIGSYS);
	text = tc_read_file(log);
	assert_non_null(text);
	if (!strstr(text, "Shutting down VM after intercepting a bad syscall (16)"))
		fail_msg("log: %s", text);
	free(text);
	text = tc_read_file(mx);
	assert_non_null(text);
	{
		char *last = text, *nl;

		while ((nl = strchr(last, '\n')) && nl[1])
			last = nl + 1;
		if (!strstr(last, "\"seccomp\":{\"num_faults\":1}"))
			fail_msg("last metrics line: %.1500s", last);
	}
	free(text);
	tc_stop(&t);

	/* test_working_filter: a program that kills the process on clone and
	 * execve; glibc makes threads with clone3, so the VM runs, filtered.
	 * The sanitizer runtimes call clone themselves (CLONE_UNTRACED, their
	 * own helper): there the check would test them, not squib. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	print_message("skipped (working filter): a sanitizer runtime calls clone itself\n");
	goto out;
#endif
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	assert_non_null(ctx);
	assert_int_equal(seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 0), 0);
	assert_int_equal(seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(execve), 0), 0);
	fd = open(bpf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(seccomp_export_bpf(ctx, fd), 0);
	close(fd);
	seccomp_release(ctx);
	assert_int_equal(
	    tc_spawn(&t, squib_bin, (const char *const[]){"--seccomp-filter", bpf, NULL}, 1), 0);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\":2,\"mem_size_mib\":16}", resp, sizeof(resp)),
			 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/counter.elf\"}", guest_dir);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, resp, sizeof(resp)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	if (tc_wait_serial(&t, "count=2\n", 20000) < 0)
		fail_msg("the guest did not run under a clone/execve-killing filter");
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	{
		int total, vcpus, evloops,
		    filtered = count_filtered(t.pid, &total, &vcpus, &evloops);

		assert_int_equal(vcpus, 2);
		assert_int_equal(filtered, total);
	}
	tc_stop(&t);
out:
	snprintf(body, sizeof(body), "rm -rf %s", dir);
	assert_int_equal(system(body), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_api_thread_forbidden_call_dies_with_sigsys_naming_it),
	    cmocka_unit_test(test_vcpu_list_refuses_files_sockets_and_exec_memory),
	    cmocka_unit_test(test_compiled_filter_file_is_obeyed_and_bad_files_refused),
	    cmocka_unit_test(test_every_thread_of_running_squib_is_filtered),
	    cmocka_unit_test(test_prebuilt_programs_equal_a_fresh_build),
	    cmocka_unit_test(test_custom_filter_failing_and_invalid),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR\n", argv[0]);
		return 2;
	}
	squib_bin = argv[1];
	guest_dir = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
