/* squib through squib-jailer (docs/jailer.md): as uid/gid 65534 in new
 * mount, PID and network namespaces, boot the counter guest, snapshot it,
 * load the snapshot in a second jail, and show that the VMM's root holds
 * only its chroot.  "cgroup" mode adds a cgroup v2 memory.max (skips with 77
 * where the v2 memory controller is not available). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
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

static const char *jailer, *squib_bin, *guest_dir, *mode;
static char base[64];
static pid_t netns_holder;

static int cp(const char *from, const char *to)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	return system(cmd);
}

/* Start a jail with id; its stdout (the guest serial) goes to root/serial. */
static pid_t jail(const char *id, struct sqb_tc *t, const char *cg)
{
	char root[256], netns[64], serial[300];
	pid_t pid;

	snprintf(root, sizeof(root), "%s/squib/%s/root", base, id);
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", (int)netns_holder);
	memset(t, 0, sizeof(*t));
	if (snprintf(t->sock, sizeof(t->sock), "%s/api.sock", root) >= (int)sizeof(t->sock) ||
	    snprintf(t->serial, sizeof(t->serial), "%s/serial", root) >= (int)sizeof(t->serial))
		fail_msg("jail path too long");
	snprintf(serial, sizeof(serial), "%s/serial", root);
	pid = fork();
	if (pid == 0) {
		int fd = open(serial, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		const char *argv[32] = {
		    jailer,  "--id",	     id,	"--exec-file", squib_bin,
		    "--uid", "65534",	     "--gid",	"65534",       "--chroot-base-dir",
		    base,    "--new-pid-ns", "--netns", netns};
		int n = 14;

		if (cg) {
			argv[n++] = "--cgroup-version";
			argv[n++] = "2";
			argv[n++] = "--cgroup";
			argv[n++] = cg;
		}
		argv[n++] = "--";
		argv[n++] = "--api-sock";
		argv[n++] = "/api.sock";
		dup2(fd, 1);
		execv(jailer, (char **)argv);
		_exit(127);
	}
	t->pid = pid;
	/* the socket file exists from bind(), a moment before listen(): wait
	 * until squib answers (a bare access() lost that race under ASan) */
	for (int i = 0; i < 200; i++) {
		char resp[512];

		if (!access(t->sock, F_OK) &&
		    tc_req(t, "GET", "/", NULL, resp, sizeof(resp)) == 200)
			break;
		usleep(25000);
	}
	return pid;
}

/* The VMM is the jailer's child (pid 1 in its PID namespace). */
static pid_t vmm_pid(pid_t jailer_pid)
{
	char path[64], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)jailer_pid, (int)jailer_pid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return (pid_t)atoi(buf);
}

static void check_confined(pid_t vmm)
{
	char path[128], buf[4096], self[64], other[64];
	struct dirent *de;
	DIR *d;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)vmm);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	assert_non_null(strstr(buf, "Uid:\t65534\t65534\t65534\t65534"));
	assert_non_null(strstr(buf, "Gid:\t65534\t65534\t65534\t65534"));
	assert_non_null(strstr(buf, "\t1\n")); /* NSpid: <host> 1 */
	assert_non_null(strstr(buf, "Seccomp:\t2"));
	for (const char *const *ns = (const char *const[]){"mnt", "pid", "net", NULL}; *ns; ns++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", *ns);
		n = readlink(path, self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = 0;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)vmm, *ns);
		if (!strcmp(*ns, "pid"))
			snprintf(path, sizeof(path), "/proc/%d/ns/pid_for_children", (int)getpid()),
			    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)vmm);
		n = readlink(path, other, sizeof(other) - 1);
		other[n > 0 ? n : 0] = 0;
		print_message("namespace %s: host %s, squib %s\n", *ns, self, other);
		assert_string_not_equal(self, other);
	}
	/* what the VMM sees as "/" is its chroot: no host /etc, /home, /work */
	snprintf(path, sizeof(path), "/proc/%d/root/", (int)vmm);
	d = opendir(path);
	assert_non_null(d);
	buf[0] = 0;
	while ((de = readdir(d))) {
		strncat(buf, de->d_name, sizeof(buf) - strlen(buf) - 2);
		strcat(buf, " ");
	}
	closedir(d);
	print_message("squib's / holds: %s\n", buf);
	assert_null(strstr(buf, "etc "));
	assert_null(strstr(buf, "work "));
	assert_null(strstr(buf, "proc "));
	snprintf(path, sizeof(path), "/proc/%d/root/etc/passwd", (int)vmm);
	assert_int_equal(access(path, F_OK), -1);
}

static void stop(struct sqb_tc *t)
{
	pid_t vmm = vmm_pid(t->pid);

	/* never kill(0, ...): that is this test's whole process group (ctest, CI) */
	kill(t->pid, SIGTERM);
	if (vmm > 1)
		kill(vmm, SIGKILL);
	waitpid(t->pid, NULL, 0);
}

/* Firecracker's jailer passes --start-time-us (its CLOCK_MONOTONIC start,
 * in the past), --start-time-cpu-us and --parent-cpu-time-us after --id
 * (jailer env.rs exec_command); squib's jailer does the same. */
static void check_start_times(pid_t pid)
{
	char path[64], buf[4096];
	const char *want[] = {"--start-time-us", "--start-time-cpu-us", "--parent-cpu-time-us"};
	struct timespec now;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (size_t w = 0; w < 3; w++) {
		const char *p = buf, *v = NULL;

		for (; p < buf + n; p += strlen(p) + 1)
			if (!strcmp(p, want[w]))
				v = p + strlen(p) + 1;
		if (!v || v >= buf + n || !*v || strspn(v, "0123456789") != strlen(v))
			fail_msg("the VMM's command line lacks %s N", want[w]);
		if (w == 0 && strtoull(v, NULL, 10) >
				  (unsigned long long)now.tv_sec * 1000000ULL + now.tv_nsec / 1000)
			fail_msg("--start-time-us %s is in the future", v);
	}
}

static void test_jailed_boot_snapshot_load(void **state)
{
	const char *cg = NULL;
	char path[512], resp[2048], body[512], want[32];
	struct sqb_tc a, b;
	long last = 3;

	(void)state;
	if (!strcmp(mode, "cgroup"))
		cg = "memory.max=268435456";
	snprintf(path, sizeof(path),
		 "mkdir -p %s/squib/a/root/snap %s/squib/b/root && "
		 "chown 65534:65534 %s/squib/a/root/snap",
		 base, base, base);
	assert_int_equal(system(path), 0);
	snprintf(path, sizeof(path), "%s/squib/a/root/counter.elf", base);
	assert_int_equal(cp(guest_dir, path), 0);

	jail("a", &a, cg);
	if (access(a.sock, F_OK))
		fail_msg("jail a never made its API socket");
	check_confined(vmm_pid(a.pid));
	check_start_times(vmm_pid(a.pid));
	assert_int_equal(tc_req(&a, "PUT", "/machine-config",
				"{\"vcpu_count\":1,\"mem_size_mib\":16}", resp, sizeof(resp)),
			 204);
	assert_int_equal(
	    tc_req(&a, "PUT", "/boot-source",
		   "{\"kernel_image_path\":\"/counter.elf\",\"boot_args\":\"delay=2000\"}", resp,
		   sizeof(resp)),
	    204);
	/* a host path is not reachable from inside */
	assert_int_equal(tc_req(&a, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", resp,
				sizeof(resp)),
			 204);
	assert_int_equal(tc_wait_serial(&a, "count=3\n", 20000), 0);
	assert_int_equal(tc_req(&a, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp, sizeof(resp)),
			 204);
	if (tc_req(&a, "PUT", "/snapshot/create",
		   "{\"snapshot_path\":\"/snap/s.state\",\"mem_file_path\":\"/snap/s.mem\"}", resp,
		   sizeof(resp)) != 204)
		fail_msg("snapshot/create in the jail: %s", resp);
	{
		/* the count the guest reached before the pause: the loaded guest
		 * must go on past it (on a busy host it may be well past 3) */
		char *s = tc_read_file(a.serial);
		const char *p = s;

		for (const char *q; s && (q = strstr(p, "count=")); p = q + 6)
			last = strtol(q + 6, NULL, 10);
		free(s);
	}
	stop(&a);

	/* hand the files to jail b: links into its chroot (docs/jailer.md) */
	snprintf(path, sizeof(path),
		 "ln %s/squib/a/root/snap/s.state %s/squib/a/root/snap/s.mem "
		 "%s/squib/b/root/",
		 base, base, base);
	assert_int_equal(system(path), 0);
	jail("b", &b, cg);
	if (access(b.sock, F_OK))
		fail_msg("jail b never made its API socket");
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"/s.state\",\"mem_backend\":{"
		 "\"backend_type\":\"File\",\"backend_path\":\"/s.mem\"},\"resume_vm\":true}");
	if (tc_req(&b, "PUT", "/snapshot/load", body, resp, sizeof(resp)) != 204)
		fail_msg("snapshot/load in the jail: %s", resp);
	snprintf(want, sizeof(want), "count=%ld\n", last + 2);
	if (tc_wait_serial(&b, want, 20000) != 0)
		fail_msg("the loaded guest never printed %s", want);
	check_confined(vmm_pid(b.pid));
	if (cg) {
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)vmm_pid(b.pid));
		char *s = tc_read_file(path);
		print_message("cgroup of squib: %s", s ? s : "?");
		assert_non_null(s && strstr(s, "/squib/b"));
		free(s);
	}
	stop(&b);
}

static int cgroup_memory_available(void)
{
	FILE *m = fopen("/proc/self/mounts", "r");
	char dev[256], dir[512], type[64], path[600], *s;
	int ok = 0;

	while (m && fscanf(m, "%255s %511s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
			s = tc_read_file(path);
			ok = s && strstr(s, "memory");
			free(s);
			break;
		}
	if (m)
		fclose(m);
	return ok;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_jailed_boot_snapshot_load)};
	char cmd[512];
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: %s JAILER SQUIB COUNTER_ELF plain|cgroup\n", argv[0]);
		return 2;
	}
	jailer = argv[1], squib_bin = argv[2], guest_dir = argv[3], mode = argv[4];
	if (geteuid() != 0) {
		printf("skip: the jailer test needs root\n");
		return 77;
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("skip: /dev/kvm unavailable\n");
		return 77;
	}
	if (!strcmp(mode, "cgroup") && !cgroup_memory_available()) {
		printf("skip: no cgroup v2 hierarchy with the memory controller "
		       "(cgroup.controllers)\n");
		return 77;
	}
	netns_holder = fork();
	if (netns_holder == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			_exit(77);
		pause();
		_exit(0);
	}
	usleep(100000);
	if (waitpid(netns_holder, &rc, WNOHANG) == netns_holder) {
		printf("skip: cannot create a network namespace\n");
		return 77;
	}
	snprintf(base, sizeof(base), "/tmp/squib-jail-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	chmod(base, 0755);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	/* a failed test leaves its squibs running, holding ctest's stderr:
	 * end each one a jail's pid file names (its jailer then exits) */
	snprintf(cmd, sizeof(cmd),
		 "for f in %s/squib/*/root/squib.pid; do [ -f $f ] || continue; p=$(cat $f); "
		 "[ \"$(cat /proc/$p/comm 2>/dev/null)\" = squib ] && kill -9 $p; done; sleep 0.2",
		 base);
	(void)!system(cmd);
	kill(netns_holder, SIGKILL);
	waitpid(netns_holder, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd))
		rc = rc ? rc : 1;
	return rc;
}
