/* squib-jailer: starts squib confined as Firecracker's jailer starts
 * Firecracker (docs/jailer.md): a chroot at <base>/<exec>/<id>/root with
 * only the device nodes squib needs, a new mount namespace and pivot_root,
 * optional PID and network namespaces, a cgroup v2 group, rlimits, and an
 * unprivileged uid/gid; then exec.  Its command line, the order of its
 * steps, the files it leaves in the chroot and its error texts are
 * Firecracker's (src/jailer/src/{main,env,cgroup,chroot,resource_limits}.rs). */
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

#include "squib/errors.h"

#define MAX_CG 32
#define MAX_RL 8

struct jopts {
	const char *id, *exec_arg, *base_arg, *netns, *parent_cg;
	uint32_t uid, gid;
	int daemonize, new_pid_ns, cg_version_given;
	const char *cg[MAX_CG];
	int ncg;
	char **extra;
	int nextra;
	/* derived */
	char exec_path[PATH_MAX], base[PATH_MAX], root[PATH_MAX];
	const char *exec_name;
	int have_fsize;
	rlim_t fsize, nofile;
};

static int fail(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "squib-jailer: ");

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(2, buf, (size_t)n); /* one write: one line */
	return -1;
}

/* Firecracker's jailer is a static musl binary and prints Rust's io::Error,
 * "<musl's strerror> (os error N)": sqb_os_strerror() words errnos the same
 * way, so that a message Firecracker's tests match (`Resource busy (os
 * error 16)`, `No file descriptors available (os error 24)`) reads the same
 * from squib-jailer. */
/* "<text> (os error N)"; two rotating buffers, for two in one message */
static const char *oserr(int e)
{
	static char buf[2][160];
	static int k;

	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s (os error %d)", sqb_os_strerror(e), e);
	return buf[k];
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: squib-jailer --id ID --exec-file FILE --uid UID --gid GID\n"
		"         [--chroot-base-dir DIR] [--netns PATH] [--daemonize] [--new-pid-ns]\n"
		"         [--cgroup-version 2] [--cgroup FILE=VALUE]... [--parent-cgroup PATH]\n"
		"         [--resource-limit fsize=N|no-file=N]... [--version] [-- SQUIB ARGS...]\n"
		"Any arguments after the -- separator are supplied to the jailed binary.\n");
}

/* utils/src/validators.rs validate_instance_id */
static int check_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return fail("Invalid instance ID: Invalid len (%zu);  the length must be between 1 "
			    "and 64",
			    n);
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return fail("Invalid instance ID: Invalid char (%c) at position %zu", s[i],
				    i);
	return 0;
}

/* Rust's str::parse::<u32/u64>: an optional '+', then decimal digits */
static int parse_u64(const char *s, uint64_t max, uint64_t *out, const char **why)
{
	uint64_t v = 0;
	const char *p = s + (*s == '+');

	if (!*p) {
		*why = "cannot parse integer from empty string";
		return -1;
	}
	for (; *p; p++) {
		if (*p < '0' || *p > '9') {
			*why = "invalid digit found in string";
			return -1;
		}
		if (v > (max - (uint64_t)(*p - '0')) / 10) {
			*why = "number too large to fit in target type";
			return -1;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return 0;
}

/* Path::components() holding ".", ".." or the root: Firecracker refuses it
 * for --parent-cgroup and for a --cgroup file */
static int bad_components(const char *s)
{
	const char *p = s;

	if (*s == '/')
		return 1;
	while (*p) {
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.' && p == s) || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* ---- cgroup v2 ---- */

static char cg_root[PATH_MAX]; /* the first cgroup2 mount, "" if none */

static void find_cg_root(void)
{
	FILE *m = fopen("/proc/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64];

	cg_root[0] = 0;
	if (!m)
		return;
	while (fscanf(m, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(cg_root, sizeof(cg_root), "%s", dir);
			break;
		}
	fclose(m);
}

/* writeln_special: VALUE and a newline, "Failed to write to PATH: ..." */
static int write_line(const char *path, const char *val)
{
	char buf[512];
	int fd, n, e = 0;

	n = snprintf(buf, sizeof(buf), "%s\n", val);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		e = errno;
	if (fd >= 0)
		close(fd);
	if (e)
		return fail("Failed to write to %s: %s", path, oserr(e));
	return 0;
}

/* Is CTL among <root>/cgroup.controllers? (cgroup.rs detect_available_controllers) */
static int cg_available(const char *ctl)
{
	char path[PATH_MAX + 32], line[1024];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", cg_root);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f))
		for (char *t = strtok(line, " \n"); t && !found; t = strtok(NULL, " \n"))
			found = !strcmp(t, ctl);
	fclose(f);
	return found;
}

/* Firecracker's parse of the --cgroup arguments (env.rs, cgroup.rs
 * add_cgroup_property), before anything is created */
static int cg_check(const struct jopts *o)
{
	for (int i = 0; i < o->ncg; i++) {
		const char *a = o->cg[i], *eq = strchr(a, '=');
		char file[256], ctl[256];

		if (!eq || strchr(eq + 1, '=') || !eq[1])
			return fail("Invalid format for cgroups: %s", a);
		if ((size_t)(eq - a) >= sizeof(file)) /* checked whole, never a cut copy */
			return fail("Cgroup invalid file: %s", a);
		snprintf(file, sizeof(file), "%.*s", (int)(eq - a), a);
		/* squib also refuses a '/' in the file name: no file of a
		 * subfolder of the group */
		if (bad_components(file) || strchr(file, '/'))
			return fail("Cgroup invalid file: %s", a);
		if (!strchr(file, '.'))
			return fail("Cgroup invalid file: %s", file);
		snprintf(ctl, sizeof(ctl), "%.*s", (int)strcspn(file, "."), file);
		if (!cg_root[0])
			return fail(
			    "Hierarchy not found: No hierarchy found for this cgroup version.");
		if (!cg_available(ctl))
			return fail("Controller %s is unavailable", ctl);
	}
	return 0;
}

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

/* Without --cgroup, given --cgroup-version 2: join --parent-cgroup
 * (default <exec-name>) if it exists, create nothing (env.rs Env::new;
 * there version 2 is never the default, so a command line without it
 * joins nothing, here as there). */
static int cg_join_parent(const struct jopts *o)
{
	char dir[PATH_MAX * 2], procs[PATH_MAX * 2 + 16], pid[32];
	int fd, e = 0;

	if (o->ncg || !o->cg_version_given || !cg_root[0])
		return 0;
	snprintf(dir, sizeof(dir), "%s/%s", cg_root, o->parent_cg ? o->parent_cg : o->exec_name);
	if (access(dir, F_OK))
		return 0;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	fd = open(procs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, pid, strlen(pid)) != (ssize_t)strlen(pid))
		e = errno;
	if (fd >= 0)
		close(fd);
	if (e)
		return fail("Failed to move process to cgroup (%s): %s.\nHint: If you intended to "
			    "create a child cgroup under %s, pass any --cgroup parameters.",
			    dir, oserr(e), dir);
	return 0;
}

/* +CTL in cgroup.subtree_control of every folder from the hierarchy's
 * root down to DIR (cgroup.rs write_all_subtree_control) */
static int cg_enable(const char *dir, const char *ctl)
{
	char path[PATH_MAX * 2 + 32], plus[260];
	size_t rootlen = strlen(cg_root), n;

	snprintf(plus, sizeof(plus), "+%s", ctl);
	for (n = rootlen;; n++) {
		if (dir[n] == '/' || !dir[n]) {
			snprintf(path, sizeof(path), "%.*s/cgroup.subtree_control", (int)n, dir);
			if (write_line(path, plus) < 0)
				return -1;
		}
		if (!dir[n])
			return 0;
	}
}

/* <cgroup2>/<parent>/<id>: create it once, enable each controller once in
 * every ancestor, write the values, then write this pid to cgroup.procs
 * once (test_cgroupsv2_written_only_once); forks and the exec follow. */
static int cg_setup(const struct jopts *o)
{
	char parent[PATH_MAX * 2], dir[PATH_MAX * 3], path[PATH_MAX * 4], pid[32];
	const char *done[MAX_CG];
	int ndone = 0, rc;

	if (!o->ncg)
		return 0;
	snprintf(parent, sizeof(parent), "%s/%s", cg_root,
		 o->parent_cg ? o->parent_cg : o->exec_name);
	snprintf(dir, sizeof(dir), "%s/%s", parent, o->id);
	rc = mkdir_p(dir, 0755);
	if (rc < 0)
		return fail("Failed to create directory %s: %s", dir, oserr(-rc));
	for (int i = 0; i < o->ncg; i++) {
		const char *a = o->cg[i], *eq = strchr(a, '=');
		size_t cl = strcspn(a, ".");
		char ctl[256];
		int seen = 0;

		snprintf(ctl, sizeof(ctl), "%.*s", (int)cl, a);
		for (int k = 0; k < ndone; k++)
			seen |= !strncmp(done[k], a, cl) && done[k][cl] == '.';
		if (!seen) {
			if (cg_enable(parent, ctl) < 0)
				return -1;
			done[ndone++] = a;
		}
		snprintf(path, sizeof(path), "%s/%.*s", dir, (int)(eq - a), a);
		if (write_line(path, eq + 1) < 0)
			return -1;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_line(path, pid);
}

/* ---- the chroot ---- */

/* Everything from in to out: 0, or the errno of the failed read or write. */
static int copy_bytes(int in, int out)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0)
			return errno;
		errno = 0; /* a short write sets none */
		if (write(out, buf, (size_t)n) != n)
			return errno ? errno : EIO;
	}
	return 0;
}

/* env.rs copy_exec_to_chroot: never through a symlink (O_NOFOLLOW), never
 * into a file with another name (a hard link), owned by the VMM's uid */
static int copy_exec(const struct jopts *o)
{
	char dst[PATH_MAX * 2];
	struct stat ss, ds;
	int in, out, e;

	in = open(o->exec_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail("Failed to open %s: %s", o->exec_path, oserr(errno));
	if (fstat(in, &ss) < 0) {
		e = errno;
		close(in);
		return fail("Cannot get metadata for a file: %s: %s", o->exec_path, oserr(e));
	}
	snprintf(dst, sizeof(dst), "%s/%s", o->root, o->exec_name);
	/* O_NONBLOCK: a FIFO planted there must not block the jailer */
	out =
	    open(dst, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, ss.st_mode & 07777);
	if (out < 0) {
		e = errno;
		close(in);
		return fail("Failed to open %s: %s", dst, oserr(e));
	}
	if (fstat(out, &ds) < 0 || ds.st_nlink > 1 || !S_ISREG(ds.st_mode)) {
		e = errno;
		close(in);
		close(out);
		if (!e && !S_ISREG(ds.st_mode))
			return fail("%s is not a file", dst);
		return ds.st_nlink > 1
			   ? fail("Detected hard link at: %s", dst)
			   : fail("Cannot get metadata for a file: %s: %s", dst, oserr(e));
	}
	if (fchown(out, o->uid, o->gid) < 0) {
		e = errno;
		close(in);
		close(out);
		return fail("Failed to change owner for %s: %s", dst, oserr(e));
	}
	e = ftruncate(out, 0) < 0 ? errno : copy_bytes(in, out);
	close(in);
	if (close(out) < 0 && !e)
		e = errno;
	if (e)
		return fail("Failed to copy %s to %s: %s", o->exec_path, dst, oserr(e));
	return 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out, e;

	if (in < 0)
		return fail("Failed to open %s: %s", from, oserr(errno));
	unlink(to);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (out < 0) {
		close(in);
		return fail("Failed to open %s: %s", to, oserr(errno));
	}
	e = copy_bytes(in, out);
	close(in);
	if (close(out) < 0 || e)
		return fail("Failed to copy %s to %s", from, to);
	return 0;
}

/* 0 if no existing component of root + rel (rel starts with '/') is a
 * symbolic link: the jail's root belongs to the VMM's uid, which could have
 * planted one for the next (root) jailer run to follow out of the jail. */
static int no_links_below(const char *root, const char *rel)
{
	char p[PATH_MAX * 3];
	size_t rl = strlen(root);
	struct stat st;

	if (snprintf(p, sizeof(p), "%s%s", root, rel) >= (int)sizeof(p))
		return fail("Failed to create directory %s%s: %s", root, rel, oserr(ENAMETOOLONG));
	for (char *s = p + rl; s;) {
		char *next = strchr(s + 1, '/'), c = 0;

		if (next) {
			c = *next;
			*next = 0;
		}
		if (!lstat(p, &st) && S_ISLNK(st.st_mode))
			return fail("Failed to create directory %s: %s is a symbolic link in the "
				    "jail",
				    root, p);
		if (next)
			*next = c;
		s = next;
	}
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
		if ((rc = no_links_below(root, path)) < 0)
			break;
		snprintf(dst, sizeof(dst), "%s%s", root, path);
		*strrchr(dst, '/') = 0;
		if (mkdir_p(dst, 0755) < 0)
			rc = fail("Failed to create directory %s: %s", dst, oserr(errno));
		snprintf(dst, sizeof(dst), "%s%s", root, path);
		if (!rc)
			rc = copy_file(path, dst, 0755);
	}
	if (pclose(p) != 0 && !rc)
		rc = fail("%s --list %s failed", ld, exec);
	return rc;
}

/* The device nodes, created inside the jail after pivot_root as
 * Firecracker does (env.rs run): /dev/net/tun and /dev/kvm always (the
 * host's numbers where it has the node, else the documented 10:200 and
 * 10:232), /dev/userfaultfd where the host has it.  Mode 0600, owned by the
 * VMM's uid; an existing node is an error (File exists), as there. */
struct jdev {
	const char *path;
	unsigned maj, min;
	int optional;
	dev_t rdev;
	int have;
};

static struct jdev jdevs[] = {
    {"/dev/net/tun", 10, 200, 0, 0, 0},
    {"/dev/kvm", 10, 232, 0, 0, 0},
    {"/dev/userfaultfd", 0, 0, 1, 0, 0},
};

static void host_devs(void)
{
	for (size_t i = 0; i < sizeof(jdevs) / sizeof(jdevs[0]); i++) {
		struct stat st;

		if (!stat(jdevs[i].path, &st) && S_ISCHR(st.st_mode)) {
			jdevs[i].rdev = st.st_rdev;
			jdevs[i].have = 1;
		} else if (!jdevs[i].optional) {
			jdevs[i].rdev = makedev(jdevs[i].maj, jdevs[i].min);
			jdevs[i].have = 1;
		}
	}
}

static int make_devs(uid_t uid, gid_t gid)
{
	for (size_t i = 0; i < sizeof(jdevs) / sizeof(jdevs[0]); i++) {
		if (!jdevs[i].have)
			continue;
		if (mknod(jdevs[i].path, S_IFCHR | S_IRUSR | S_IWUSR, jdevs[i].rdev) < 0)
			return fail("Failed to create %s via mknod inside the jail: %s",
				    jdevs[i].path, oserr(errno));
		if (chown(jdevs[i].path, uid, gid) < 0)
			return fail("Failed to change owner for %s: %s", jdevs[i].path,
				    oserr(errno));
	}
	return 0;
}

/* env.rs FOLDER_HIERARCHY: "/", "/dev", "/dev/net", "/run" exist, mode
 * 0700, owned by the VMM's uid ("/run" for the default API socket path) */
static int jail_folders(uid_t uid, gid_t gid)
{
	static const char *const dirs[] = {"/", "/dev", "/dev/net", "/run", NULL};

	for (int i = 0; dirs[i]; i++) {
		int rc = mkdir_p(dirs[i], 0700);

		if (rc < 0)
			return fail("Failed to create directory %s: %s", dirs[i], oserr(-rc));
		if (chmod(dirs[i], 0700) < 0)
			return fail("Failed to change permissions on %s: %s", dirs[i],
				    oserr(errno));
		if (chown(dirs[i], uid, gid) < 0)
			return fail("Failed to change owner for %s: %s", dirs[i], oserr(errno));
	}
	return 0;
}

static int set_rlimits(const struct jopts *o)
{
	struct rlimit r = {o->fsize, o->fsize};

	if (o->have_fsize && setrlimit(RLIMIT_FSIZE, &r) < 0)
		return fail("Failed to set limit for resource: size of file");
	r.rlim_cur = r.rlim_max = o->nofile;
	if (setrlimit(RLIMIT_NOFILE, &r) < 0)
		return fail("Failed to set limit for resource: number of file descriptors");
	return 0;
}

/* ---- namespaces ---- */

static int pivot(const char *root)
{
	if (unshare(CLONE_NEWNS) < 0)
		return fail("Failed to unshare into new mount namespace: %s", oserr(errno));
	/* nothing we mount propagates back to the host */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return fail("Failed to change the propagation type to slave: %s", oserr(errno));
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail("Failed to bind mount the jail root directory: %s", oserr(errno));
	if (chdir(root) < 0)
		return fail("Failed to change current directory: %s", oserr(errno));
	if (mkdir("old_root", 0600) < 0 && errno != EEXIST)
		return fail("Failed to create the jail root directory before pivoting root: %s",
			    oserr(errno));
	if (syscall(SYS_pivot_root, ".", "old_root") < 0)
		return fail("Failed to pivot root: %s", oserr(errno));
	if (chdir("/") < 0)
		return fail("Failed to chdir into chroot directory: %s", oserr(errno));
	if (umount2("old_root", MNT_DETACH) < 0)
		return fail("Failed to unmount the old jail root: %s", oserr(errno));
	if (rmdir("old_root") < 0)
		return fail("Failed to remove old jail root directory: %s", oserr(errno));
	return 0;
}

static int join_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail("Failed to open file %s: %s", path, oserr(errno));
	if (setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;

		close(fd);
		return fail("Failed to join network namespace: netns: %s", oserr(e));
	}
	close(fd);
	return 0;
}

static int drop_privs(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return fail("cannot drop to uid %u gid %u: %s", uid, gid, oserr(errno));
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

static void exec_vmm(const struct jopts *o)
{
	char path[PATH_MAX], start[24], cpu[24], parent[24];
	char **argv = calloc((size_t)o->nextra + 10, sizeof(*argv));
	int n = 0;

	snprintf(path, sizeof(path), "/%s", o->exec_name);
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
	if (drop_privs(o->uid, o->gid) == 0) {
		execv(path, argv);
		fail("Failed to exec into %s: %s", o->exec_name, oserr(errno));
	}
	_exit(1);
}

/* <chroot>/<exec-name>.pid: the VMM's pid as the host sees it, no newline,
 * a new file (env.rs save_exec_file_pid) */
static int save_pid(const struct jopts *o, pid_t pid)
{
	char path[PATH_MAX], buf[32];
	int fd, n, e = 0;

	snprintf(path, sizeof(path), "/%s.pid", o->exec_name);
	n = snprintf(buf, sizeof(buf), "%d", (int)pid);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("Failed to open file %s: %s", path, oserr(errno));
	if (write(fd, buf, (size_t)n) != n)
		e = errno ? errno : EIO;
	close(fd);
	if (e)
		return fail("Failed to write to %s: %s", path, oserr(e));
	return 0;
}

/* The double fork of env.rs run: the jailer's caller gets its exit (0) at
 * once, the grandchild (no session leader, no terminal) goes on with stdio
 * on /dev/null, opened before pivot_root. */
static int daemonize(int devnull)
{
	pid_t pid = fork();

	if (pid < 0)
		return fail("Failed to daemonize: %s", oserr(errno));
	if (pid)
		_exit(0);
	if (setsid() < 0)
		return fail("Failed to daemonize: setsid: %s", oserr(errno));
	j_parent_cpu_us += clock_us(CLOCK_PROCESS_CPUTIME_ID);
	pid = fork();
	if (pid < 0)
		return fail("Failed to daemonize: %s", oserr(errno));
	if (pid)
		_exit(0);
	for (int i = 0; i < 3; i++)
		if (dup2(devnull, i) < 0)
			return fail("Failed to duplicate fd: %s", oserr(errno));
	close(devnull);
	j_parent_cpu_us += clock_us(CLOCK_PROCESS_CPUTIME_ID);
	return 0;
}

/* With a new PID namespace the VMM is its first process (pid 1 there); the
 * jailer writes its host pid to /<exec>.pid.  Daemonized it leaves at
 * once, as Firecracker's does; otherwise (a squib difference) it waits and
 * exits with the VMM's status, 128+signal when killed. */
static int fork_into_pidns(const struct jopts *o)
{
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWPID) < 0)
		return fail("Failed cloning into a new child process: %s", oserr(errno));
	pid = fork();
	if (pid < 0)
		return fail("Failed cloning into a new child process: %s", oserr(errno));
	if (pid == 0)
		return 0;
	if (save_pid(o, pid) < 0) {
		kill(pid, SIGKILL);
		_exit(1);
	}
	if (o->daemonize)
		_exit(0);
	signal(SIGINT, SIG_IGN);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* ---- command line ---- */

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
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const char *uid = NULL, *gid = NULL, *cgv = NULL, *rl[MAX_RL], *why;
	int ch, nrl = 0;
	uint64_t v;

	*o = (struct jopts){.base_arg = "/srv/jailer", .nofile = 2048};
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:", lo, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o->id = optarg;
			break;
		case 'e':
			o->exec_arg = optarg;
			break;
		case 'u':
			uid = optarg;
			break;
		case 'g':
			gid = optarg;
			break;
		case 'b':
			o->base_arg = optarg;
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
			cgv = optarg;
			break;
		case 'c':
			if (o->ncg == MAX_CG)
				return fail("at most %d --cgroup", MAX_CG);
			o->cg[o->ncg++] = optarg;
			break;
		case 'r':
			if (nrl == MAX_RL)
				return fail("at most %d --resource-limit", MAX_RL);
			rl[nrl++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("squib-jailer v%s\n\n", SQB_JAILER_VERSION);
			exit(0);
		case ':':
			return fail(
			    "Failed to parse arguments: The argument '%s' requires a value, "
			    "but none was supplied.",
			    argv[optind - 1] + 2);
		default:
			fail(
			    "Failed to parse arguments: Found argument '%s' which wasn't expected, "
			    "or isn't valid in this context.",
			    argv[optind - 1]);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		return fail("Failed to parse arguments: Found argument '%s' which wasn't expected, "
			    "or isn't valid in this context.",
			    argv[optind]);
	o->extra = argv + optind;
	o->nextra = argc - optind;
	for (const char *const *req = (const char *const[]){"id", "exec-file", "uid", "gid", NULL};
	     *req; req++) {
		const char *val = !strcmp(*req, "id")	       ? o->id
				  : !strcmp(*req, "exec-file") ? o->exec_arg
				  : !strcmp(*req, "uid")       ? uid
							       : gid;
		if (!val)
			return fail("Failed to parse arguments: Argument '%s' required, but not "
				    "found.",
				    *req);
	}

	/* env.rs Env::new's order */
	if (check_id(o->id) < 0)
		return -1;
	if (!realpath(o->exec_arg, o->exec_path))
		return fail("Failed to canonicalize path %s: %s", o->exec_arg, oserr(errno));
	{
		struct stat st;

		if (stat(o->exec_path, &st) < 0 || !S_ISREG(st.st_mode))
			return fail("%s is not a file", o->exec_path);
	}
	o->exec_name = strrchr(o->exec_path, '/') + 1;
	if (!*o->exec_name)
		return fail("Failed to extract filename from path %s", o->exec_path);
	if (!realpath(o->base_arg, o->base))
		return fail("Failed to canonicalize path %s: %s", o->base_arg, oserr(errno));
	{
		struct stat st;

		if (stat(o->base, &st) < 0 || !S_ISDIR(st.st_mode))
			return fail("%s is not a directory", o->base);
	}
	if (snprintf(o->root, sizeof(o->root), "%s/%s/%s/root", strcmp(o->base, "/") ? o->base : "",
		     o->exec_name, o->id) >= (int)sizeof(o->root))
		return fail("%s/%s/%s/root: path too long", o->base, o->exec_name, o->id);
	if (parse_u64(uid, UINT32_MAX, &v, &why) < 0)
		return fail("Invalid uid: %s", uid);
	o->uid = (uint32_t)v;
	if (parse_u64(gid, UINT32_MAX, &v, &why) < 0)
		return fail("Invalid gid: %s", gid);
	o->gid = (uint32_t)v;
	if (bad_components(o->parent_cg ? o->parent_cg : o->exec_name))
		return fail("Parent cgroup path is invalid. Path should not be absolute or contain "
			    "'..' or '.'");
	if (cgv) {
		if (parse_u64(cgv, 255, &v, &why) < 0)
			return fail("%s is an invalid cgroup version specifier", cgv);
		/* Firecracker's default is 1; squib has no cgroup v1 support
		 * and its default is 2 (docs/jailer.md) */
		if (v != 2)
			return fail("--cgroup-version %s: squib-jailer supports cgroup v2 only",
				    cgv);
		o->cg_version_given = 1;
	}
	find_cg_root();
	if (!o->ncg && o->cg_version_given && !cg_root[0])
		return fail("Hierarchy not found: No hierarchy found for this cgroup version.");
	if (cg_join_parent(o) < 0 || cg_check(o) < 0)
		return -1;
	for (int i = 0; i < nrl; i++) {
		const char *eq = strchr(rl[i], '=');

		if (!eq)
			return fail("Invalid format for resources limits: %s", rl[i]);
		if (parse_u64(eq + 1, UINT64_MAX, &v, &why) < 0)
			return fail("Invalid limit value for resource: %s: %s", eq + 1, why);
		if (eq - rl[i] == 5 && !strncmp(rl[i], "fsize", 5)) {
			o->have_fsize = 1;
			o->fsize = (rlim_t)v;
		} else if (eq - rl[i] == 7 && !strncmp(rl[i], "no-file", 7)) {
			o->nofile = (rlim_t)v;
		} else {
			return fail("Invalid resource argument: %.*s", (int)(eq - rl[i]), rl[i]);
		}
	}
	return 0;
}

/* main.rs sanitize_process: no inherited descriptor but 0-2, no
 * inherited environment variable */
static void sanitize(void)
{
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (int fd = 3; fd < (max > 0 && max < 1048576 ? max : 1048576); fd++)
			close(fd);
	}
	clearenv();
}

int main(int argc, char **argv)
{
	struct jopts o;
	int rc, devnull = -1;

	j_start_us = clock_us(CLOCK_MONOTONIC);
	j_start_cpu_us = clock_us(CLOCK_PROCESS_CPUTIME_ID);
	sanitize();
	if (parse(argc, argv, &o) < 0)
		return 1;
	rc = mkdir_p(o.root, 0755);
	if (rc < 0)
		return fail("Failed to create directory %s: %s", o.root, oserr(-rc)) < 0;
	/* env.rs run's order */
	if (copy_exec(&o) < 0 || copy_libs(o.exec_path, o.root) < 0)
		return 1;
	if (o.netns && join_netns(o.netns) < 0)
		return 1;
	if (set_rlimits(&o) < 0 || cg_setup(&o) < 0)
		return 1;
	if (o.daemonize) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0)
			return fail("Failed to open /dev/null: %s", oserr(errno)) < 0;
	}
	host_devs();
	if (pivot(o.root) < 0 || jail_folders(o.uid, o.gid) < 0 || make_devs(o.uid, o.gid) < 0)
		return 1;
	/* the jailer's own CPU so far (env.rs jailer_cpu_time_us): the VMM
	 * counts from its exec, and adds this */
	j_parent_cpu_us = clock_us(CLOCK_PROCESS_CPUTIME_ID) - j_start_cpu_us;
	if (o.daemonize && daemonize(devnull) < 0)
		return 1;
	if (o.new_pid_ns) {
		if (fork_into_pidns(&o) < 0)
			return 1;
	} else if (save_pid(&o, getpid()) < 0) {
		return 1;
	}
	exec_vmm(&o);
	return 1;
}
