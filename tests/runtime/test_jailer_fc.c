/* squib-jailer against what Firecracker's tests/integration_tests/security/
 * test_jail.py checks of Firecracker's jailer (docs/jailer.md): the error
 * texts for bad ids, paths, ids and limits; the files it leaves in the
 * chroot with their owners and modes; the pid file; --daemonize and
 * --new-pid-ns; the resource limits of the VMM; an exec destination that is
 * a symlink or a hard link; a jail that already exists; the arguments after
 * "--"; and, where a cgroup v2 hierarchy is mounted, --parent-cgroup
 * without --cgroup and a --cgroup group.  No guest is booted: squib waits on
 * its API socket.  Needs root (skips with 77). */
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

#include "squib_client.h"

static const char *jailer, *squib_bin, *guest_dir;
static char base[64];

#define UID 1234
#define GID 1235

static void read_all(int fd, char *out, size_t len)
{
	size_t got = 0;
	ssize_t r;

	while (got + 1 < len && (r = read(fd, out + got, len - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = 0;
}

/* Run the jailer with the common arguments, then ARGS (NULL-terminated);
 * collect stdout+stderr until they close (the daemonized VMM's are
 * /dev/null) and the exit status. */
/* Run argv (the jailer) with stdout and stderr into out; its exit code, or
 * 128 + the signal that ended it. */
static int run_argv(const char *const *argv, char *out, size_t outlen)
{
	int p[2], st;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* sanitizer builds: a jailer that fails after pivot_root has no
		 * /proc, where LeakSanitizer must read its threads at exit */
		char asan[512];

		snprintf(asan, sizeof(asan), "%s%sdetect_leaks=0",
			 getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
			 getenv("ASAN_OPTIONS") ? ":" : "");
		setenv("ASAN_OPTIONS", asan, 1);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	read_all(p[0], out, outlen);
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	print_message("jailer %s: status %d: %s", argv[2], st, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_jailer(const char *id, char *out, size_t outlen, const char *const *args)
{
	const char *argv[64] = {jailer, "--id",	 id,	 "--exec-file",	      squib_bin, "--uid",
				"1234", "--gid", "1235", "--chroot-base-dir", base};
	int n = 11;

	for (int i = 0; args && args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return run_argv(argv, out, outlen);
}

static void expect_error(const char *id, const char *const *args, const char *msg)
{
	char out[4096];

	assert_int_equal(run_jailer(id, out, sizeof(out), args), 1);
	if (!strstr(out, msg))
		fail_msg("expected '%s' in: %s", msg, out);
}

static void root_path(char *buf, size_t len, const char *id, const char *rel)
{
	snprintf(buf, len, "%s/squib/%s/root%s%s", base, id, *rel ? "/" : "", rel);
}

/* /proc/PID/FILE into buf; "" (and -1) once the process is gone */
static int proc_read(pid_t pid, const char *file, char *buf, size_t len)
{
	char path[64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n >= 0 ? 0 : -1;
}

/* the pid the jailer wrote to <chroot>/squib.pid, waiting up to 2 s */
static pid_t vmm_pid(const char *id)
{
	char path[256], buf[32] = {0};

	root_path(path, sizeof(path), id, "squib.pid");
	for (int i = 0; i < 200; i++) {
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			char comm[64];

			buf[n] = 0;
			assert_null(strchr(buf, '\n')); /* "%d", as Firecracker's */
			/* the pid is written before its process execs squib */
			proc_read((pid_t)atoi(buf), "comm", comm, sizeof(comm));
			if (!strcmp(comm, "squib\n"))
				return (pid_t)atoi(buf);
		}
		usleep(10000);
	}
	fail_msg("no pid file %s", path);
	return -1;
}

/* the VMM is squib (comm), then kill it and wait until it is gone */
static void kill_vmm(pid_t pid)
{
	char comm[64];

	assert_int_equal(proc_read(pid, "comm", comm, sizeof(comm)), 0);
	assert_string_equal(comm, "squib\n");
	kill(pid, SIGKILL);
	for (int i = 0; i < 300 && !kill(pid, 0); i++) {
		char st[4096], *s;

		/* a zombie until its parent reaps it (init, or the jailer) */
		if (proc_read(pid, "status", st, sizeof(st)) < 0)
			break;
		s = strstr(st, "State:");
		if (s && strstr(s, "Z (zombie)") == s + 7)
			break;
		usleep(10000);
	}
}

static void check_stat(const char *id, const char *rel, mode_t mode)
{
	char path[256];
	struct stat st;

	root_path(path, sizeof(path), id, rel);
	assert_int_equal(lstat(path, &st), 0);
	print_message("%s: mode %o uid %u gid %u\n", rel, st.st_mode, st.st_uid, st.st_gid);
	assert_int_equal(st.st_mode, mode);
	assert_int_equal(st.st_uid, UID);
	assert_int_equal(st.st_gid, GID);
}

static void limits(pid_t pid, const char *name, const char *want)
{
	char buf[8192], *l;

	proc_read(pid, "limits", buf, sizeof(buf));
	l = strstr(buf, name);
	assert_non_null(l);
	if (strncmp(l + 26, want, strlen(want)))
		fail_msg("%s: want '%s', have '%.60s'", name, want, l + 26);
}

/* test_empty_jailer_id, test_exec_file_not_exist and Env::new's other
 * checks: each error is Firecracker's text, exit code 1 */
static void test_bad_arguments(void **state)
{
	char dir[128];

	(void)state;
	expect_error("", NULL,
		     "Invalid instance ID: Invalid len (0);  the length must be between 1 and 64");
	expect_error("a_b", NULL, "Invalid instance ID: Invalid char (_) at position 1");
	{
		const char *argv[] = {jailer,  "--id", "x",	"--exec-file", "/nonexistent/fc",
				      "--uid", "1",    "--gid", "1",	       NULL};
		char out[1024];

		assert_int_equal(run_argv(argv, out, sizeof(out)), 1);
		assert_non_null(strstr(out, "Failed to canonicalize path /nonexistent/fc: No such "
					    "file or directory (os error 2)"));
		/* a folder */
		snprintf(dir, sizeof(dir), "%s/fc_dir", base);
		assert_int_equal(mkdir(dir, 0755), 0);
		argv[4] = dir;
		assert_int_equal(run_argv(argv, out, sizeof(out)), 1);
		snprintf(dir, sizeof(dir), "%s/fc_dir is not a file", base);
		assert_non_null(strstr(out, dir));
	}
	expect_error("x", (const char *const[]){"--uid", "abc", NULL}, "Invalid uid: abc");
	expect_error("x", (const char *const[]){"--gid", "-1", NULL}, "Invalid gid: -1");
	expect_error("x", (const char *const[]){"--chroot-base-dir", "/nonexistent/base", NULL},
		     "Failed to canonicalize path /nonexistent/base: No such file or directory "
		     "(os error 2)");
	expect_error("x", (const char *const[]){"--resource-limit", "nofile=3", NULL},
		     "Invalid resource argument: nofile");
	expect_error("x", (const char *const[]){"--resource-limit", "fsize", NULL},
		     "Invalid format for resources limits: fsize");
	expect_error("x", (const char *const[]){"--resource-limit", "fsize=1k", NULL},
		     "Invalid limit value for resource: 1k: invalid digit found in string");
	expect_error("x", (const char *const[]){"--parent-cgroup", "a/../b", NULL},
		     "Parent cgroup path is invalid. Path should not be absolute or contain '..' "
		     "or '.'");
	expect_error("x", (const char *const[]){"--cgroup", "cpu.weight", NULL},
		     "Invalid format for cgroups: cpu.weight");
	expect_error("x", (const char *const[]){"--bogus", NULL},
		     "Found argument '--bogus' which wasn't expected");
	/* nothing was created for any of them */
	snprintf(dir, sizeof(dir), "%s/squib", base);
	assert_int_equal(access(dir, F_OK), -1);
}

/* test_exec_destination_path_is_symlink / _is_hardlink: the jailer never
 * writes through either, and the file behind them is untouched */
static void test_exec_destination_link(void **state)
{
	char dummy[128], dst[256], out[4096];
	struct stat st;
	int fd;

	(void)state;
	snprintf(dummy, sizeof(dummy), "%s/dummy", base);
	fd = open(dummy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);

	root_path(dst, sizeof(dst), "sym", "");
	assert_int_equal(system((snprintf(out, sizeof(out), "mkdir -p %s", dst), out)), 0);
	root_path(dst, sizeof(dst), "sym", "squib");
	assert_int_equal(symlink(dummy, dst), 0);
	snprintf(out, sizeof(out), "Failed to open %s: Symbolic link loop (os error 40)", dst);
	expect_error("sym", (const char *const[]){"--daemonize", NULL}, out);

	root_path(dst, sizeof(dst), "hard", "");
	assert_int_equal(system((snprintf(out, sizeof(out), "mkdir -p %s", dst), out)), 0);
	root_path(dst, sizeof(dst), "hard", "squib");
	assert_int_equal(link(dummy, dst), 0);
	snprintf(out, sizeof(out), "Detected hard link at: %s", dst);
	expect_error("hard", (const char *const[]){"--daemonize", NULL}, out);

	assert_int_equal(stat(dummy, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(st.st_uid, 0);

	/* a FIFO planted where the binary goes: refused at once, no open
	 * that waits for a reader (the jail's root belongs to the VMM's uid) */
	root_path(dst, sizeof(dst), "fifo", "");
	assert_int_equal(system((snprintf(out, sizeof(out), "mkdir -p %s", dst), out)), 0);
	root_path(dst, sizeof(dst), "fifo", "squib");
	assert_int_equal(mkfifo(dst, 0644), 0);
	{
		char want[600];

		snprintf(want, sizeof(want), "Failed to open %s: No such device or address", dst);
		expect_error("fifo", (const char *const[]){"--daemonize", NULL}, want);
	}
}

/* test_default_chroot_hierarchy, test_arbitrary_usocket_location,
 * test_args_default_resource_limits, and a second start of the same jail */
static void test_default_chroot_hierarchy(void **state)
{
	char out[4096], buf[8192];
	pid_t pid;

	(void)state;
	assert_int_equal(run_jailer("hier", out, sizeof(out),
				    (const char *const[]){"--daemonize", "--", "--api-sock",
							  "api.socket", NULL}),
			 0);
	pid = vmm_pid("hier");
	check_stat("hier", "", S_IFDIR | 0700);
	check_stat("hier", "dev", S_IFDIR | 0700);
	check_stat("hier", "dev/net", S_IFDIR | 0700);
	check_stat("hier", "run", S_IFDIR | 0700);
	check_stat("hier", "dev/net/tun", S_IFCHR | 0600);
	check_stat("hier", "dev/kvm", S_IFCHR | 0600);
	check_stat("hier", "squib", S_IFREG | 0755);
	for (int i = 0; i < 200; i++) {
		root_path(out, sizeof(out), "hier", "api.socket");
		if (!access(out, F_OK))
			break;
		usleep(10000);
	}
	check_stat("hier", "api.socket", S_IFSOCK | 0755);
	proc_read(pid, "status", buf, sizeof(buf));
	assert_non_null(strstr(buf, "Uid:\t1234\t1234\t1234\t1234"));
	assert_non_null(strstr(buf, "Gid:\t1235\t1235\t1235\t1235"));
	{ /* no supplementary group */
		const char *g = strstr(buf, "Groups:\t");

		assert_non_null(g);
		g += 8;
		g += strspn(g, " ");
		assert_int_equal(*g, '\n');
	}
	assert_non_null(strstr(buf, "Seccomp:\t2"));
	/* Firecracker's defaults: 2048 descriptors, no file size limit */
	limits(pid, "Max open files", "2048                 2048");
	limits(pid, "Max file size", "unlimited            unlimited");
	/* no inherited environment (main.rs sanitize_process) */
	proc_read(pid, "environ", buf, sizeof(buf));
	assert_string_equal(buf, "");
	/* the jail exists: a second start fails as Firecracker's (mknod) */
	root_path(buf, sizeof(buf), "hier", "squib");
	expect_error("hier", (const char *const[]){"--daemonize", NULL},
		     "Text file busy (os error 26)");
	kill_vmm(pid);
	usleep(100000);
	expect_error("hier", (const char *const[]){"--daemonize", NULL},
		     "Failed to create /dev/net/tun via mknod inside the jail: File exists (os "
		     "error 17)");
}

/* test_args_resource_limits, test_new_pid_ns_resource_limits,
 * test_new_pid_namespace, and the arguments after "--" */
static void test_limits_and_pid_ns(void **state)
{
	static const char *const rl[] = {"--resource-limit",
					 "no-file=1024",
					 "--resource-limit",
					 "fsize=2097151",
					 "--daemonize",
					 NULL,
					 NULL};
	const char *args[16];
	char out[4096], buf[4096];
	pid_t pid;
	int n = 0;

	(void)state;
	assert_int_equal(run_jailer("lim", out, sizeof(out), rl), 0);
	pid = vmm_pid("lim");
	limits(pid, "Max open files", "1024                 1024");
	limits(pid, "Max file size", "2097151              2097151");
	kill_vmm(pid);

	for (int i = 0; rl[i]; i++)
		args[n++] = rl[i];
	args[n++] = "--new-pid-ns";
	args[n++] = "--";
	args[n++] = "--level";
	args[n++] = "Debug";
	args[n] = NULL;
	assert_int_equal(run_jailer("pidns", out, sizeof(out), args), 0);
	pid = vmm_pid("pidns");
	limits(pid, "Max open files", "1024                 1024");
	limits(pid, "Max file size", "2097151              2097151");
	proc_read(pid, "status", buf, sizeof(buf));
	snprintf(out, sizeof(out), "NStgid:\t%d\t1\n", (int)pid);
	assert_non_null(strstr(buf, out));
	/* squib's command line: Firecracker's four, then what followed "--" */
	n = 0;
	{
		int fd;
		ssize_t r;

		snprintf(out, sizeof(out), "/proc/%d/cmdline", (int)pid);
		fd = open(out, O_RDONLY);
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		assert_true(r > 0);
		for (ssize_t i = 0; i < r - 1; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[r] = 0;
	}
	print_message("cmdline: %s\n", buf);
	assert_true(!strncmp(buf, "/squib --id pidns --start-time-us ", 34));
	assert_non_null(strstr(buf, " --parent-cpu-time-us "));
	assert_non_null(strstr(buf, " --level Debug"));
	kill_vmm(pid);
}

/* test_jailer_bind_mount_propagation: a file bind-mounted into the chroot
 * before the jailer starts is what squib sees there (MS_BIND | MS_REC) */
static void test_bind_mount_propagation(void **state)
{
	char src[128], dst[256], out[4096], buf[64];
	pid_t pid;
	int fd;

	(void)state;
	snprintf(src, sizeof(src), "%s/kernel-src", base);
	fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "bound", 5), 5);
	close(fd);
	root_path(dst, sizeof(dst), "bind", "");
	assert_int_equal(system((snprintf(out, sizeof(out), "mkdir -p %s", dst), out)), 0);
	root_path(dst, sizeof(dst), "bind", "vmlinux.bin");
	close(open(dst, O_WRONLY | O_CREAT, 0644));
	snprintf(out, sizeof(out), "mount --bind %s %s", src, dst);
	if (system(out)) {
		print_message("skip: mount --bind failed\n");
		skip();
	}
	assert_int_equal(
	    run_jailer("bind", out, sizeof(out), (const char *const[]){"--daemonize", NULL}), 0);
	pid = vmm_pid("bind");
	snprintf(out, sizeof(out), "/proc/%d/root/vmlinux.bin", (int)pid);
	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	close(fd);
	assert_memory_equal(buf, "bound", 5);
	kill_vmm(pid);
	snprintf(out, sizeof(out), "umount %s", dst);
	assert_int_equal(system(out), 0);
}

/* Start a jail ID with fsize=LIMIT, the counter guest and a log in it, and
 * configure a 16 MiB VM; *t gets its API socket; returns squib's pid */
static pid_t fsize_jail(const char *id, const char *limit, struct sqb_tc *t)
{
	char root[96], out[4096], resp[1024];

	root_path(root, sizeof(root), id, "");
	snprintf(out, sizeof(out),
		 "mkdir -p %s && cp %s/counter.elf %s/ && touch %s/fc.log && chown 1234:1235 "
		 "%s/counter.elf %s/fc.log",
		 root, guest_dir, root, root, root, root);
	assert_int_equal(system(out), 0);
	assert_int_equal(
	    run_jailer(id, out, sizeof(out),
		       (const char *const[]){"--daemonize", "--resource-limit", limit, "--",
					     "--api-sock", "/api.sock", "--log-path", "/fc.log",
					     "--level", "Debug", NULL}),
	    0);
	memset(t, 0, sizeof(*t));
	if (snprintf(t->sock, sizeof(t->sock), "%s/api.sock", root) >= (int)sizeof(t->sock))
		fail_msg("socket path too long");
	/* bound before it listens: wait until it answers */
	for (int i = 0; i < 200 && tc_req(t, "GET", "/", NULL, resp, sizeof(resp)) != 200; i++)
		usleep(10000);
	assert_int_equal(tc_req(t, "PUT", "/machine-config",
				"{\"vcpu_count\":1,\"mem_size_mib\":16}", resp, sizeof(resp)),
			 204);
	assert_int_equal(tc_req(t, "PUT", "/boot-source",
				"{\"kernel_image_path\":\"/counter.elf\"}", resp, sizeof(resp)),
			 204);
	return vmm_pid(id);
}

/* test_positive_file_size_limit: with fsize = guest memory + 1 MiB the VM
 * starts.  test_negative_file_size_limit: under 1 MiB it starts too (guest
 * memory larger than the limit is no memfd then), and the snapshot create
 * ends squib with SIGXFSZ and Firecracker's log line. */
static void test_file_size_limit(void **state)
{
	char path[512], resp[1024];
	struct sqb_tc t;
	pid_t pid;
	char *log;
	int rc;

	(void)state;
	if (access("/dev/kvm", R_OK | W_OK)) {
		print_message("skip: /dev/kvm unavailable\n");
		skip();
	}
	pid = fsize_jail("fszok", "fsize=17825792", &t);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	usleep(100000);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, resp, sizeof(resp)), 200);
	assert_non_null(strstr(resp, "\"state\":\"Running\""));
	kill_vmm(pid);

	pid = fsize_jail("fszbad", "fsize=1048576", &t);
	rc = tc_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
		    sizeof(resp));
	if (rc != 204)
		fail_msg("InstanceStart under fsize=1MiB: %d %s", rc, rc > 0 ? resp : "");
	assert_int_equal(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	/* raw: a file of the guest's size, as Firecracker's (squib's own format
	 * leaves out the pages this guest never wrote and may stay under 1 MiB) */
	rc = tc_req(&t, "PUT", "/snapshot/create",
		    "{\"mem_file_path\":\"/vm.mem\",\"snapshot_path\":\"/vm.vmstate\","
		    "\"squib\":{\"mem_format\":\"raw\"}}",
		    resp, sizeof(resp));
	assert_int_not_equal(rc, 204); /* the connection drops: squib is gone */
	for (int i = 0; i < 300 && !kill(pid, 0); i++)
		usleep(10000);
	root_path(path, sizeof(path), "fszbad", "fc.log");
	log = tc_read_file(path);
	assert_non_null(log);
	if (!strstr(log, "Shutting down VM after intercepting signal 25, code 0"))
		fail_msg("log: %.3000s", log);
	free(log);
}

/* test_negative_no_file_limit */
static void test_negative_no_file_limit(void **state)
{
	(void)state;
	expect_error("nofile",
		     (const char *const[]){"--resource-limit", "no-file=3", "--daemonize", NULL},
		     "No file descriptors available (os error 24)");
}

/* test_firecracker_kill_by_pid: each of --daemonize and --new-pid-ns, with
 * and without the other; the pid file names squib, which dies of SIGKILL */
static void test_kill_by_pid(void **state)
{
	(void)state;
	for (int c = 0; c < 4; c++) {
		int daemon = c & 1, pidns = c & 2;
		const char *args[4] = {NULL};
		char id[16], out[4096];
		int n = 0;
		pid_t pid, jp = 0;

		snprintf(id, sizeof(id), "kill%d", c);
		if (daemon)
			args[n++] = "--daemonize";
		if (pidns)
			args[n++] = "--new-pid-ns";
		if (daemon) {
			assert_int_equal(run_jailer(id, out, sizeof(out), args), 0);
		} else {
			jp = fork();
			if (jp == 0) {
				int fd = open("/dev/null", O_RDWR);

				dup2(fd, 0);
				dup2(fd, 1);
				execv(jailer,
				      (char *const[]){(char *)jailer, "--id", id, "--exec-file",
						      (char *)squib_bin, "--uid", "1234", "--gid",
						      "1235", "--chroot-base-dir", base,
						      pidns ? "--new-pid-ns" : NULL, NULL});
				_exit(127);
			}
		}
		pid = vmm_pid(id);
		print_message("%s: squib is %d (jailer %d)\n", id, (int)pid, (int)jp);
		if (!daemon && !pidns)
			assert_int_equal(pid, jp); /* the jailer exec'd squib */
		kill_vmm(pid);
		if (jp) {
			int st;

			assert_int_equal(waitpid(jp, &st, 0), jp);
			/* squib itself, or the jailer waiting for it in --new-pid-ns */
			assert_true((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
				    (WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL));
		}
	}
}

/* ---- cgroup v2 ---- */

static char cg_root[256];
/* a controller the tests found off in the root's subtree_control (the
 * jailer turns it on there, as Firecracker's): turned off again at the end */
static char cg_root_restore[32];

static int file_has(const char *path, const char *word);

static void note_root_controller(const char *ctl)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cg_root);
	if (!cg_root_restore[0] && !file_has(path, ctl))
		snprintf(cg_root_restore, sizeof(cg_root_restore), "%s", ctl);
}

static int find_cg_root(void)
{
	FILE *m = fopen("/proc/mounts", "r");
	char dev[256], dir[256], type[64];

	cg_root[0] = 0;
	while (m && fscanf(m, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(cg_root, sizeof(cg_root), "%s", dir);
			break;
		}
	if (m)
		fclose(m);
	return cg_root[0] ? 0 : -1;
}

static int file_has(const char *path, const char *word)
{
	char buf[4096], *t;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
		if (!strcmp(t, word))
			return 1;
	return 0;
}

static void rm_cg(const char *rel)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "find %s/%s -depth -type d -exec rmdir {} \\; 2>/dev/null",
		 cg_root, rel);
	(void)!system(cmd);
}

/* a domain controller the hierarchy offers, with a file to set and the
 * value it reads back */
static const char *domain_controller(void)
{
	static const char *const ctls[] = {"memory", "pids", "hugetlb", NULL};
	char path[300];

	snprintf(path, sizeof(path), "%s/cgroup.controllers", cg_root);
	for (int i = 0; ctls[i]; i++)
		if (file_has(path, ctls[i]) &&
		    (strcmp(ctls[i], "hugetlb") ||
		     !access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK)))
			return ctls[i];
	return NULL;
}

static const char *controller_setting(const char *ctl)
{
	return !strcmp(ctl, "memory") ? "memory.max=268435456"
	       : !strcmp(ctl, "pids") ? "pids.max=100"
				      : "hugetlb.2MB.max=2097152";
}

/* +CTL in the subtree_control of the root and of each folder of REL */
static void enable(const char *rel, const char *ctl)
{
	char path[600], plus[64];
	size_t n = strlen(rel);

	snprintf(plus, sizeof(plus), "+%s", ctl);
	note_root_controller(ctl);
	for (size_t i = 0; i <= n; i++) {
		FILE *f;

		if (i && rel[i] != '/' && rel[i])
			continue;
		snprintf(path, sizeof(path), "%s/%.*s%scgroup.subtree_control", cg_root, (int)i,
			 rel, i ? "/" : "");
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(plus, f);
		assert_int_equal(fclose(f), 0);
	}
}

/* test_cgroups / test_cgroups_custom_parent / check_cgroups_v2: the group
 * <parent>/<id> holds squib, the value reads back, the controller is in
 * cgroup.controllers of the root, the parent and the group, and in
 * cgroup.subtree_control of the root and the parent */
static void test_cgroups_custom_parent(void **state)
{
	char parent[128], path[700], out[4096], want[64], file[64], val[64];
	const char *ctl, *set;
	pid_t pid;
	FILE *f;

	(void)state;
	if (find_cg_root() < 0 || !(ctl = domain_controller())) {
		print_message("skip: no cgroup v2 hierarchy with a domain controller\n");
		skip();
	}
	set = controller_setting(ctl);
	note_root_controller(ctl);
	snprintf(file, sizeof(file), "%.*s", (int)strcspn(set, "="), set);
	snprintf(val, sizeof(val), "%s", strchr(set, '=') + 1);
	snprintf(parent, sizeof(parent), "squib_jail_test/group%d", (int)getpid());
	assert_int_equal(
	    run_jailer("cg1", out, sizeof(out),
		       (const char *const[]){"--daemonize", "--cgroup-version", "2",
					     "--parent-cgroup", parent, "--cgroup", set, NULL}),
	    0);
	pid = vmm_pid("cg1");
	snprintf(want, sizeof(want), "%d", (int)pid);
	snprintf(path, sizeof(path), "%s/%s/cg1/cgroup.procs", cg_root, parent);
	assert_true(file_has(path, want));
	snprintf(path, sizeof(path), "%s/%s/cg1/%s", cg_root, parent, file);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(out, sizeof(out), f));
	fclose(f);
	out[strcspn(out, "\n")] = 0;
	assert_string_equal(out, val);
	for (int i = 0; i < 3; i++) {
		const char *rel = i == 0 ? "" : i == 1 ? parent : "";

		if (i == 2)
			snprintf(path, sizeof(path), "%s/%s/cg1/cgroup.controllers", cg_root,
				 parent);
		else
			snprintf(path, sizeof(path), "%s/%s%scgroup.controllers", cg_root, rel,
				 *rel ? "/" : "");
		assert_true(file_has(path, ctl));
		if (i < 2) {
			snprintf(path, sizeof(path), "%s/%s%scgroup.subtree_control", cg_root, rel,
				 *rel ? "/" : "");
			assert_true(file_has(path, ctl));
		}
	}
	kill_vmm(pid);
	/* a controller the hierarchy does not offer */
	expect_error(
	    "cg2",
	    (const char *const[]){"--cgroup-version", "2", "--cgroup", "nosuchctl.max=1", NULL},
	    "Controller nosuchctl is unavailable");
	rm_cg("squib_jail_test");
}

/* test_cgroups_parent_cgroup_but_no_cgroup: an existing parent is joined
 * (nothing created under it); a missing one is not created; a parent with
 * a controller in its subtree_control cannot take a process: Firecracker's
 * "Failed to move process to cgroup (...): Resource busy (os error 16)" */
static void test_parent_cgroup_but_no_cgroup(void **state)
{
	char parent[128], path[512], out[4096], want[600];
	pid_t pid;

	(void)state;
	if (find_cg_root() < 0) {
		print_message("skip: no cgroup v2 hierarchy is mounted\n");
		skip();
	}
	snprintf(parent, sizeof(parent), "squib_jail_test/%d", (int)getpid());
	snprintf(path, sizeof(path), "%s/%s", cg_root, parent);
	assert_int_equal(system((snprintf(out, sizeof(out), "mkdir -p %s", path), out)), 0);
	assert_int_equal(run_jailer("pcg1", out, sizeof(out),
				    (const char *const[]){"--daemonize", "--cgroup-version", "2",
							  "--parent-cgroup", parent, NULL}),
			 0);
	pid = vmm_pid("pcg1");
	snprintf(want, sizeof(want), "%d", (int)pid);
	snprintf(out, sizeof(out), "%s/cgroup.procs", path);
	assert_true(file_has(out, want));
	kill_vmm(pid);

	assert_int_equal(
	    run_jailer("pcg2", out, sizeof(out),
		       (const char *const[]){"--daemonize", "--cgroup-version", "2",
					     "--parent-cgroup", "squib_jail_test/missing", NULL}),
	    0);
	kill_vmm(vmm_pid("pcg2"));
	snprintf(out, sizeof(out), "%s/squib_jail_test/missing", cg_root);
	assert_int_equal(access(out, F_OK), -1);
	/* without --cgroup-version 2 (Firecracker's default is 1) nothing is joined */
	assert_int_equal(
	    run_jailer("pcg4", out, sizeof(out),
		       (const char *const[]){"--daemonize", "--parent-cgroup", parent, NULL}),
	    0);
	pid = vmm_pid("pcg4");
	snprintf(want, sizeof(want), "%d", (int)pid);
	snprintf(out, sizeof(out), "%s/cgroup.procs", path);
	assert_false(file_has(out, want));
	kill_vmm(pid);

	/* a domain controller enabled in the parent's subtree_control */
	{
		const char *ctl = domain_controller();

		if (!ctl) {
			print_message("skip (busy case): no domain controller in %s\n", cg_root);
		} else {
			snprintf(parent, sizeof(parent), "squib_jail_test/busy%d", (int)getpid());
			snprintf(path, sizeof(path), "%s/%s", cg_root, parent);
			assert_int_equal(mkdir(path, 0755), 0);
			enable(parent, ctl);
			snprintf(
			    want, sizeof(want),
			    "Failed to move process to cgroup (%s): Resource busy (os error 16)",
			    path);
			expect_error("pcg3",
				     (const char *const[]){"--daemonize", "--cgroup-version", "2",
							   "--parent-cgroup", parent, NULL},
				     want);
		}
	}
	rm_cg("squib_jail_test");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_exec_destination_link),
	    cmocka_unit_test(test_default_chroot_hierarchy),
	    cmocka_unit_test(test_limits_and_pid_ns),
	    cmocka_unit_test(test_negative_no_file_limit),
	    cmocka_unit_test(test_file_size_limit),
	    cmocka_unit_test(test_bind_mount_propagation),
	    cmocka_unit_test(test_kill_by_pid),
	    cmocka_unit_test(test_parent_cgroup_but_no_cgroup),
	    cmocka_unit_test(test_cgroups_custom_parent),
	};
	char cmd[640];
	int rc;

	if (argc != 4) {
		fprintf(stderr, "usage: %s JAILER SQUIB GUEST_DIR\n", argv[0]);
		return 2;
	}
	jailer = argv[1], squib_bin = argv[2], guest_dir = argv[3];
	if (geteuid() != 0) {
		printf("skip: squib-jailer needs root\n");
		return 77;
	}
	snprintf(base, sizeof(base), "/tmp/squib-jailfc-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	chmod(base, 0755);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	/* a failed test may leave its squib running: end every one the
	 * jails' pid files name, then their cgroups */
	for (int pass = 0; pass < 2; pass++) {
		char pids[4096];
		FILE *f;

		snprintf(cmd, sizeof(cmd),
			 "cat %s/squib/*/root/squib.pid 2>/dev/null | tr -c 0-9 ' '", base);
		f = popen(cmd, "r");
		pids[0] = 0;
		if (f) {
			read_all(fileno(f), pids, sizeof(pids));
			pclose(f);
		}
		for (char *t = strtok(pids, " "); t; t = strtok(NULL, " ")) {
			char comm[64];

			if (!proc_read(atoi(t), "comm", comm, sizeof(comm)) &&
			    !strcmp(comm, "squib\n"))
				kill(atoi(t), SIGKILL);
		}
		usleep(100000);
	}
	if (!find_cg_root()) {
		rm_cg("squib_jail_test");
		if (cg_root_restore[0]) {
			snprintf(cmd, sizeof(cmd), "echo -%s > %s/cgroup.subtree_control",
				 cg_root_restore, cg_root);
			(void)!system(cmd);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd))
		rc = rc ? rc : 1;
	return rc;
}
