/* squib-jailer: starts squib confined as Firecracker's jailer starts
 * Firecracker (docs/jailer.md): a chroot at <base>/<exec>/<id>/root with
 * only the device nodes squib needs, a new mount namespace and pivot_root,
 * optional PID and network namespaces, a cgroup v2 group, rlimits, and an
 * unprivileged uid/gid; then exec.  Its command line is Firecracker's. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CG 32
#define MAX_RL 8

struct jopts {
	const char *id, *exec_file, *base, *netns, *parent_cg;
	long uid, gid;
	int daemonize, new_pid_ns, cg_version;
	const char *cg[MAX_CG];
	int ncg;
	const char *rl[MAX_RL];
	int nrl;
	char **extra;
	int nextra;
};

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("squib-jailer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: squib-jailer --id ID --exec-file FILE --uid UID --gid GID\n"
		   "         [--chroot-base-dir DIR] [--netns PATH] [--daemonize] [--new-pid-ns]\n"
		   "         [--cgroup-version 2] [--cgroup FILE=VALUE]... [--parent-cgroup PATH]\n"
		   "         [--resource-limit fsize=N|no-file=N]... [-- SQUIB ARGS...]\n");
}

static int parse_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return -1;
	return 0;
}

static long parse_num(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return (errno || end == s || *end || v < 0 || v > max) ? -1 : v;
}

static int parse(int argc, char **argv, struct jopts *o)
{
	static const struct option lo[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"exec-file", required_argument, NULL, 'e'},
	    {"uid", required_argument, NULL, 'u'},
	    {"gid", required_argument, NULL, 'g'},
	    {"chroot-base-dir", required_argument, NULL, 'b'},
	    {"netns", required_argument, NULL, 'n'},
	    {"daemonize", no_argument, NULL, 'd'},
	    {"new-pid-ns", no_argument, NULL, 'p'},
	    {"cgroup", required_argument, NULL, 'c'},
	    {"cgroup-version", required_argument, NULL, 'v'},
	    {"parent-cgroup", required_argument, NULL, 'P'},
	    {"resource-limit", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int ch;

	*o = (struct jopts){.base = "/srv/jailer", .uid = -1, .gid = -1, .cg_version = 2};
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o->id = optarg;
			break;
		case 'e':
			o->exec_file = optarg;
			break;
		case 'u':
			o->uid = parse_num(optarg, INT_MAX);
			break;
		case 'g':
			o->gid = parse_num(optarg, INT_MAX);
			break;
		case 'b':
			o->base = optarg;
			break;
		case 'n':
			o->netns = optarg;
			break;
		case 'd':
			o->daemonize = 1;
			break;
		case 'p':
			o->new_pid_ns = 1;
			break;
		case 'P':
			o->parent_cg = optarg;
			break;
		case 'v':
			if (strcmp(optarg, "2"))
				return fail("--cgroup-version %s: only cgroup v2 is supported",
					    optarg);
			break;
		case 'c':
			if (o->ncg == MAX_CG || !strchr(optarg, '=') || strchr(optarg, '/'))
				return fail("--cgroup '%s': FILE=VALUE (at most %d)", optarg,
					    MAX_CG);
			o->cg[o->ncg++] = optarg;
			break;
		case 'r':
			if (o->nrl == MAX_RL)
				return fail("too many --resource-limit");
			o->rl[o->nrl++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (!o->id || parse_id(o->id))
		return fail("--id is required: 1-64 characters of [A-Za-z0-9-]");
	if (!o->exec_file)
		return fail("--exec-file is required");
	if (o->uid < 0 || o->gid < 0)
		return fail("--uid and --gid are required (0..%d)", INT_MAX);
	if (o->parent_cg && (o->parent_cg[0] == '/' || strstr(o->parent_cg, "..")))
		return fail("--parent-cgroup '%s': a relative path without '..'", o->parent_cg);
	o->extra = argv + optind;
	o->nextra = argc - optind;
	return 0;
}

/* ---- files ---- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n = 0;

	if (in < 0)
		return fail("cannot open %s: %s", from, strerror(errno));
	unlink(to);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		close(in);
		return fail("cannot create %s: %s", to, strerror(errno));
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			n = -1;
			break;
		}
	close(in);
	if (close(out) < 0 || n < 0)
		return fail("cannot copy %s to %s", from, to);
	return 0;
}

/* squib is linked dynamically on glibc (Firecracker ships static musl
 * binaries): copy its loader and libraries into the chroot at their own
 * paths, as the loader lists them (`ld.so --list`), before pivot_root. */
static int copy_libs(const char *exec, const char *root)
{
	static const char *const loaders[] = {"/lib64/ld-linux-x86-64.so.2",
					      "/lib/ld-linux-aarch64.so.1", NULL};
	const char *ld = NULL;
	char cmd[PATH_MAX + 64], line[PATH_MAX], dst[PATH_MAX * 3];
	FILE *p;
	int rc = 0;

	for (int i = 0; loaders[i] && !ld; i++) /* the host's own comes first */
		if (!access(loaders[i], X_OK))
			ld = loaders[i];
	if (!ld || strchr(exec, '\'') || strlen(exec) > PATH_MAX)
		return 0; /* static binary assumed */
	snprintf(cmd, sizeof(cmd), "%s --list '%s' 2>/dev/null", ld, exec);
	p = popen(cmd, "r");
	if (!p)
		return fail("cannot list the libraries of %s", exec);
	while (!rc && fgets(line, sizeof(line), p)) {
		char *path = strstr(line, "=> /"), *end;

		path = path ? path + 3 : strchr(line, '/');
		if (!path)
			continue; /* linux-vdso */
		end = strpbrk(path, " \n");
		if (end)
			*end = 0;
		snprintf(dst, sizeof(dst), "%s%s", root, path);
		*strrchr(dst, '/') = 0;
		if (mkdir_p(dst, 0755) < 0)
			rc = fail("cannot create %s", dst);
		snprintf(dst, sizeof(dst), "%s%s", root, path);
		if (!rc)
			rc = copy_file(path, dst, 0755);
	}
	if (pclose(p) != 0 && !rc)
		rc = fail("%s --list %s failed", ld, exec);
	return rc;
}

/* Only what squib opens: /dev/kvm, /dev/net/tun, /dev/userfaultfd, each
 * where the host has it, with the host's numbers, owned by the VMM's uid. */
static int make_devs(const char *root, uid_t uid, gid_t gid)
{
	static const char *const devs[] = {"/dev/kvm", "/dev/net/tun", "/dev/userfaultfd", NULL};
	char path[PATH_MAX + 32];
	struct stat st;

	for (int i = 0; devs[i]; i++) {
		if (stat(devs[i], &st) < 0 || !S_ISCHR(st.st_mode))
			continue;
		snprintf(path, sizeof(path), "%s%s", root, devs[i]);
		*strrchr(path, '/') = 0;
		if (mkdir_p(path, 0755) < 0)
			return fail("cannot create %s", path);
		snprintf(path, sizeof(path), "%s%s", root, devs[i]);
		unlink(path);
		if (mknod(path, S_IFCHR | 0600, st.st_rdev) < 0 || chown(path, uid, gid) < 0)
			return fail("cannot create device node %s: %s", path, strerror(errno));
	}
	return 0;
}

/* ---- cgroup v2 ---- */

static int cg_root(char *out, size_t len)
{
	FILE *m = fopen("/proc/self/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64];
	int found = 0;

	if (!m)
		return -1;
	while (!found && fscanf(m, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, len, "%s", dir);
			found = 1;
		}
	fclose(m);
	return found ? 0 : -1;
}

static int write_str(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* <cgroup2>/<parent>/<id>: enable each file's controller ("memory" of
 * memory.max) in every ancestor's subtree_control, write the values, then
 * move this process in (its children follow). */
static int cgroup_enter(const struct jopts *o, const char *exec_name)
{
	char root[PATH_MAX], dir[PATH_MAX * 2], pid[32];
	const char *parent = o->parent_cg ? o->parent_cg : exec_name;

	if (!o->ncg && !o->parent_cg)
		return 0;
	if (cg_root(root, sizeof(root)) < 0)
		return fail("no cgroup v2 hierarchy is mounted");
	if (!o->ncg) { /* Firecracker: join an existing parent, create nothing */
		snprintf(dir, sizeof(dir), "%s/%s", root, parent);
		if (access(dir, F_OK))
			return 0;
	} else {
		for (int i = 0; i < o->ncg; i++) {
			char ctl[64], plus[80], *p = dir;
			size_t n = strcspn(o->cg[i], ".");

			snprintf(ctl, sizeof(ctl), "%.*s", (int)n, o->cg[i]);
			snprintf(plus, sizeof(plus), "+%s", ctl);
			snprintf(dir, sizeof(dir), "%s/%s", root, parent);
			if (mkdir_p(dir, 0755) < 0)
				return fail("cannot create cgroup %s", dir);
			/* walk root, root/a, root/a/b ... = parent */
			snprintf(dir, sizeof(dir), "%s/%s/", root, parent);
			p = dir + strlen(root);
			for (;;) {
				char save = *p;
				*p = 0;
				if (write_str(dir, "cgroup.subtree_control", plus) < 0) {
					*p = save;
					return fail(
					    "cgroup v2 controller '%s' is not available under "
					    "%s (cgroup.controllers)",
					    ctl, root);
				}
				*p = save;
				p = strchr(p + 1, '/');
				if (!p)
					break;
			}
		}
		snprintf(dir, sizeof(dir), "%s/%s/%s", root, parent, o->id);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return fail("cannot create cgroup %s: %s", dir, strerror(errno));
		for (int i = 0; i < o->ncg; i++) {
			char file[128];
			const char *eq = strchr(o->cg[i], '=');

			snprintf(file, sizeof(file), "%.*s", (int)(eq - o->cg[i]), o->cg[i]);
			if (write_str(dir, file, eq + 1) < 0)
				return fail("cannot write %s to %s/%s: %s", eq + 1, dir, file,
					    strerror(errno));
		}
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write_str(dir, "cgroup.procs", pid) < 0)
		return fail("cannot join cgroup %s: %s", dir, strerror(errno));
	return 0;
}

static int set_rlimits(const struct jopts *o)
{
	struct rlimit nofile = {2048, 2048}; /* Firecracker's default */

	for (int i = 0; i < o->nrl; i++) {
		const char *eq = strchr(o->rl[i], '=');
		long v = eq ? parse_num(eq + 1, LONG_MAX) : -1;
		struct rlimit r = {(rlim_t)v, (rlim_t)v};

		if (v < 0)
			return fail("--resource-limit '%s': RESOURCE=NUMBER", o->rl[i]);
		if (!strncmp(o->rl[i], "fsize=", 6)) {
			if (setrlimit(RLIMIT_FSIZE, &r) < 0)
				return fail("setrlimit fsize: %s", strerror(errno));
		} else if (!strncmp(o->rl[i], "no-file=", 8)) {
			nofile = r;
		} else {
			return fail("--resource-limit '%s': fsize or no-file", o->rl[i]);
		}
	}
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return fail("setrlimit no-file: %s", strerror(errno));
	return 0;
}

/* ---- namespaces ---- */

static int pivot(const char *root)
{
	if (unshare(CLONE_NEWNS) < 0)
		return fail("unshare(CLONE_NEWNS): %s", strerror(errno));
	/* nothing we mount propagates back to the host */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return fail("mount --make-rslave /: %s", strerror(errno));
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail("bind-mount %s: %s", root, strerror(errno));
	if (chdir(root) < 0 || (mkdir("old_root", 0700) < 0 && errno != EEXIST))
		return fail("prepare %s: %s", root, strerror(errno));
	if (syscall(SYS_pivot_root, ".", "old_root") < 0)
		return fail("pivot_root(%s): %s", root, strerror(errno));
	if (chdir("/") < 0 || umount2("/old_root", MNT_DETACH) < 0 || rmdir("/old_root") < 0)
		return fail("drop the old root: %s", strerror(errno));
	return 0;
}

static int join_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail("--netns %s: %s", path, strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0) {
		close(fd);
		return fail("setns(%s): %s", path, strerror(errno));
	}
	close(fd);
	return 0;
}

static int drop_privs(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return fail("cannot drop to uid %u gid %u: %s", uid, gid, strerror(errno));
	return 0;
}

/* Firecracker's jailer hands the VMM its own start (CLOCK_MONOTONIC), the
 * VMM process's CPU clock at exec, and the CPU the jailer's other processes
 * used (env.rs exec_command): the VMM's startup metrics then count from the
 * jailer's start. */
static uint64_t j_start_us, j_start_cpu_us, j_parent_cpu_us;

static uint64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void exec_vmm(const struct jopts *o, const char *exec_name)
{
	char path[PATH_MAX], start[24], cpu[24], parent[24];
	char **argv = calloc(o->nextra + 10, sizeof(*argv));
	int n = 0;

	snprintf(path, sizeof(path), "/%s", exec_name);
	if (!argv)
		_exit(1);
	snprintf(start, sizeof(start), "%llu", (unsigned long long)j_start_us);
	snprintf(cpu, sizeof(cpu), "%llu", (unsigned long long)clock_us(CLOCK_PROCESS_CPUTIME_ID));
	snprintf(parent, sizeof(parent), "%llu", (unsigned long long)j_parent_cpu_us);
	argv[n++] = path;
	argv[n++] = "--id";
	argv[n++] = (char *)o->id;
	argv[n++] = "--start-time-us";
	argv[n++] = start;
	argv[n++] = "--start-time-cpu-us";
	argv[n++] = cpu;
	argv[n++] = "--parent-cpu-time-us";
	argv[n++] = parent;
	for (int i = 0; i < o->nextra; i++)
		argv[n++] = o->extra[i];
	execv(path, argv);
	fail("exec %s in the chroot: %s", path, strerror(errno));
	_exit(1);
}

static int daemonize(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0 || setsid() < 0)
		return fail("daemonize: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	close(fd);
	return 0;
}

/* With a new PID namespace the VMM is its first process (pid 1 there); the
 * jailer writes its host pid to <root>/<exec>.pid and waits for it (or
 * leaves at once with --daemonize). */
static int fork_into_pidns(const char *exec_name, int detach)
{
	char pidfile[PATH_MAX], buf[32];
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWPID) < 0)
		return fail("unshare(CLONE_NEWPID): %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0)
		return 0;
	snprintf(pidfile, sizeof(pidfile), "/%s.pid", exec_name);
	snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	(void)!write_str("", pidfile + 1, buf);
	if (detach)
		_exit(0);
	signal(SIGINT, SIG_IGN);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int main(int argc, char **argv)
{
	char root[PATH_MAX], exe_dst[PATH_MAX + 64];
	const char *exec_name;
	struct jopts o;

	j_start_us = clock_us(CLOCK_MONOTONIC);
	j_start_cpu_us = clock_us(CLOCK_PROCESS_CPUTIME_ID);
	if (parse(argc, argv, &o) < 0)
		return 1;
	exec_name = strrchr(o.exec_file, '/') ? strrchr(o.exec_file, '/') + 1 : o.exec_file;
	if (!*exec_name)
		return fail("--exec-file %s names no file", o.exec_file) < 0;
	if (snprintf(root, sizeof(root), "%s/%s/%s/root", o.base, exec_name, o.id) >=
	    (int)sizeof(root))
		return fail("chroot path too long") < 0;
	if (mkdir_p(root, 0755) < 0)
		return fail("cannot create %s: %s", root, strerror(errno)) < 0;
	snprintf(exe_dst, sizeof(exe_dst), "%s/%s", root, exec_name);
	if (copy_file(o.exec_file, exe_dst, 0755) < 0 || copy_libs(o.exec_file, root) < 0 ||
	    make_devs(root, o.uid, o.gid) < 0 || chown(root, o.uid, o.gid) < 0)
		return 1;
	if (cgroup_enter(&o, exec_name) < 0 || set_rlimits(&o) < 0)
		return 1;
	if (o.netns && join_netns(o.netns) < 0)
		return 1;
	if (pivot(root) < 0)
		return 1;
	/* the jailer's own CPU so far (env.rs jailer_cpu_time_us): the VMM
	 * counts from its exec, and adds this */
	j_parent_cpu_us = clock_us(CLOCK_PROCESS_CPUTIME_ID) - j_start_cpu_us;
	if (o.daemonize && daemonize() < 0)
		return 1;
	if (o.new_pid_ns && fork_into_pidns(exec_name, o.daemonize) < 0)
		return 1;
	if (drop_privs(o.uid, o.gid) < 0)
		return 1;
	exec_vmm(&o, exec_name);
	return 1;
}
