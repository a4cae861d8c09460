/* squib-fleet: squib processes (spawn pre-warmed, readiness, kill), a small
 * HTTP/1.1 client for their API sockets, snapshot shape and identity, host
 * capacity and per-process memory (docs/fleet.md "Pool lifecycle"). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "squib/snapfmt.h"

uint64_t sqb_fleet_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* squib's command line for p: argv[0..n) (argv[n] NULL); store holds the
 * formatted words. */
struct spawn_args {
	char prewarm[96], logp[260];
	const char *argv[16];
};

static void build_argv(struct spawn_args *a, const char *squib, const struct sqb_fleet_proc *p)
{
	int n = 0;

	a->argv[n++] = squib;
	a->argv[n++] = "--api-sock";
	a->argv[n++] = p->sock;
	a->argv[n++] = "--id";
	a->argv[n++] = p->id;
	snprintf(a->logp, sizeof(a->logp), "%s/vmm.log", p->dir); /* squib's own log, Info */
	a->argv[n++] = "--log-path";
	a->argv[n++] = a->logp;
	a->argv[n++] = "--level";
	a->argv[n++] = "Info";
	if (p->prewarmed) {
		snprintf(a->prewarm, sizeof(a->prewarm), "vcpus=%u,mem_mib=%llu", p->shape.vcpus,
			 (unsigned long long)p->shape.mem_mib);
		a->argv[n++] = "--prewarm";
		a->argv[n++] = a->prewarm;
	}
	a->argv[n] = NULL;
}

/* serial.log (when no pipe) and squib.log in p's folder */
static int open_log(const struct sqb_fleet_proc *p, const char *name)
{
	char path[260];

	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

extern char **environ;

/* A pool member's environment: ours, with glibc's per-thread cache of
 * freed blocks (tcache) turned off.  An idle VM keeps the blocks a load
 * freed into it, and malloc_trim cannot give those pages back: about 12
 * KiB per idle clone (docs/fleet.md "Load leftovers").  An existing
 * GLIBC_TUNABLES is kept, the setting appended.  Built before fork (the
 * daemon has threads); NULL: out of memory, the child gets ours. */
#define SQB_FLEET_TUNABLE "glibc.malloc.tcache_count=0"

char **sqb_fleet_member_env(void)
{
	size_t n = 0, k = 0;
	const char *old = getenv("GLIBC_TUNABLES");
	char **env, *t;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	if (old && *old ? asprintf(&t, "GLIBC_TUNABLES=%s:%s", old, SQB_FLEET_TUNABLE) < 0
			: !(t = strdup("GLIBC_TUNABLES=" SQB_FLEET_TUNABLE))) {
		free(env);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "GLIBC_TUNABLES=", 15))
			env[k++] = environ[i];
	env[k++] = t;
	env[k] = NULL;
	return env;
}

void sqb_fleet_member_env_free(char **env)
{
	size_t k = 0;

	if (!env)
		return;
	while (env[k + 1])
		k++;
	free(env[k]); /* the one string of ours: last */
	free(env);
}

static void child_exec(const char *squib, const struct sqb_fleet_proc *p, int in_rd, int out_wr,
		       char **env)
{
	struct spawn_args a;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(in_rd, 0);
	if (out_wr >= 0) {
		dup2(out_wr, 1);
	} else if ((fd = open_log(p, "serial.log")) >= 0) {
		dup2(fd, 1);
	}
	if ((fd = open_log(p, "squib.log")) >= 0)
		dup2(fd, 2);
	build_argv(&a, squib, p);
	execve(squib, (char *const *)a.argv, env ? env : environ);
	_exit(127);
}

/* ---- the zygote (docs/fleet.md "Zygote", runtime/zygote.h) ---- */

int sqb_fleet_zygote_start(struct sqb_fleet_zygote *z, const char *squib)
{
	int sv[2];
	char fdarg[16], **env;

	z->pid = 0;
	z->fd = -1;
	/* members are forked by the zygote's helper, which exits: they must
	 * come to us, to be waited for as children */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	env = sqb_fleet_member_env(); /* the members inherit the zygote's */
	z->pid = fork();
	if (z->pid < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		sqb_fleet_member_env_free(env);
		z->pid = 0;
		return err;
	}
	if (z->pid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (nul >= 0) { /* nothing of ours stays open in the zygote */
			dup2(nul, 0);
			dup2(nul, 1);
		}
		if (dup2(sv[1], 3) < 0) /* dup2 clears close-on-exec */
			_exit(127);
		snprintf(fdarg, sizeof(fdarg), "3");
		execle(squib, squib, "--zygote", fdarg, (char *)NULL, env ? env : environ);
		_exit(127);
	}
	sqb_fleet_member_env_free(env);
	close(sv[1]);
	z->fd = sv[0];
	return 0;
}

void sqb_fleet_zygote_stop(struct sqb_fleet_zygote *z)
{
	if (z->fd >= 0)
		close(z->fd); /* the zygote's EOF: it exits */
	z->fd = -1;
	if (z->pid > 1)
		while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
			;
	z->pid = 0;
}

/* A zygote that may still owe an answer, or cannot be reached: not asked
 * again (a late answer would be taken for the next request's); it ends at
 * its socket's EOF, and later members are exec'd. */
static void zygote_drop(struct sqb_fleet_zygote *z)
{
	close(z->fd);
	z->fd = -1;
}

/* Ask the zygote for a member with argv and fds {in, out, err}: its pid
 * (our child by adoption) or -errno. */
static pid_t zygote_fork(struct sqb_fleet_zygote *z, const char *const *argv, const int fds[3])
{
	char buf[4096];
	size_t len = 0;
	union {
		char b[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = buf};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	struct pollfd pf = {.fd = z->fd, .events = POLLIN};
	uint64_t deadline;
	ssize_t n;
	int32_t v;

	for (int i = 0; argv[i]; i++) {
		size_t k = strlen(argv[i]) + 1;
		if (len + k > sizeof(buf))
			return -E2BIG;
		memcpy(buf + len, argv[i], k);
		len += k;
	}
	iov.iov_len = len;
	memset(&cbuf, 0, sizeof(cbuf));
	m.msg_control = cbuf.b;
	m.msg_controllen = sizeof(cbuf.b);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
	if (z->fd < 0)
		return -EPIPE;
	while ((n = sendmsg(z->fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0) {
		int err = -errno;
		zygote_drop(z);
		return err;
	}
	/* a signal does not end the wait (its answer would stay queued) */
	deadline = sqb_fleet_now_ns() + 10000000000ULL;
	for (;;) {
		uint64_t now = sqb_fleet_now_ns();
		int r = poll(&pf, 1, now < deadline ? (int)((deadline - now) / 1000000u) + 1 : 0);

		if (r == 1)
			break;
		if (r < 0 && errno == EINTR && now < deadline)
			continue;
		zygote_drop(z);
		return -ETIMEDOUT;
	}
	while ((n = recv(z->fd, &v, sizeof(v), 0)) < 0 && errno == EINTR)
		;
	if (n != sizeof(v)) {
		zygote_drop(z);
		return -EPIPE;
	}
	return v;
}

int sqb_fleet_spawn(struct sqb_fleet_proc *p, const char *squib, const char *dir, const char *id,
		    const struct sqb_fleet_shape *shape, int prewarm, int out_pipe)
{
	return sqb_fleet_spawn_via(p, NULL, squib, dir, id, shape, prewarm, out_pipe);
}

int sqb_fleet_spawn_via(struct sqb_fleet_proc *p, struct sqb_fleet_zygote *z, const char *squib,
			const char *dir, const char *id, const struct sqb_fleet_shape *shape,
			int prewarm, int out_pipe)
{
	int in[2], out[2] = {-1, -1};
	pid_t pid;

	memset(p, 0, sizeof(*p));
	p->stdin_fd = p->out_fd = -1;
	if (strlen(dir) >= sizeof(p->dir) || strlen(id) >= sizeof(p->id))
		return -ENAMETOOLONG;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->sock, sizeof(p->sock), "%s/api.sock", dir);
	if (strlen(p->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	unlink(p->sock);
	if (shape)
		p->shape = *shape;
	p->prewarmed = prewarm && shape;
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (out_pipe && pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	p->spawned_ns = sqb_fleet_now_ns();
	if (z && z->fd < 0)
		z = NULL; /* dropped (zygote_drop): exec'd */
	if (z) {
		struct spawn_args a;
		int fds[3] = {in[0], out_pipe ? out[1] : open_log(p, "serial.log"),
			      open_log(p, "squib.log")};

		build_argv(&a, squib, p);
		pid = fds[1] < 0 || fds[2] < 0 ? -EIO : zygote_fork(z, a.argv, fds);
		if (!out_pipe && fds[1] >= 0)
			close(fds[1]);
		if (fds[2] >= 0)
			close(fds[2]);
		if (pid < 0)
			errno = (int)-pid;
		p->from_zygote = 1;
	} else {
		char **env = sqb_fleet_member_env();

		pid = fork();
		if (pid == 0)
			child_exec(squib, p, in[0], out[1], env);
		sqb_fleet_member_env_free(env);
	}
	if (pid < 0) {
		int err = -errno;
		close(in[0]);
		close(in[1]);
		if (out_pipe) {
			close(out[0]);
			close(out[1]);
		}
		return err;
	}
	close(in[0]);
	if (out_pipe) {
		close(out[1]);
		p->out_fd = out[0];
		fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
	}
	p->stdin_fd = in[1];
	p->pid = pid;
	p->state = SQB_FLEET_WARMING;
	return 0;
}

static int connect_sock(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int sqb_fleet_ready(struct sqb_fleet_proc *p)
{
	int fd;

	if (p->state != SQB_FLEET_WARMING)
		return p->state == SQB_FLEET_WARM || p->state == SQB_FLEET_CLONE;
	if (access(p->sock, F_OK) < 0 || (fd = connect_sock(p->sock)) < 0)
		return 0;
	close(fd);
	p->state = SQB_FLEET_WARM;
	p->ready_ns = sqb_fleet_now_ns();
	return 1;
}

int sqb_fleet_wait_ready(struct sqb_fleet_proc *p, int timeout_ms)
{
	uint64_t end = sqb_fleet_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		int st;

		if (sqb_fleet_ready(p))
			return 0;
		if (p->pid > 1 && waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->state = SQB_FLEET_EXITED;
			p->exit_status = st;
			p->pid = 0;
			return -ECHILD;
		}
		if (sqb_fleet_now_ns() > end)
			return -ETIMEDOUT;
		usleep(200);
	}
}

void sqb_fleet_remove_dir(const struct sqb_fleet_proc *p)
{
	static const char *const files[] = {"api.sock", "serial.log", "squib.log", "vmm.log"};
	char path[300];

	if (!p->dir[0])
		return;
	for (unsigned int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", p->dir, files[i]);
		unlink(path);
	}
	rmdir(p->dir); /* stays if something else was put there */
}

void sqb_fleet_kill(struct sqb_fleet_proc *p)
{
	if (p->pid > 1) {
		int st;

		kill(p->pid, SIGKILL);
		if (waitpid(p->pid, &st, 0) == p->pid)
			p->exit_status = st;
	}
	p->pid = 0;
	p->state = SQB_FLEET_EXITED;
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->stdin_fd = p->out_fd = -1;
}

/* ---- HTTP ---- */

int sqb_fleet_http_send(const char *sock, const char *method, const char *path, const char *json)
{
	char head[512];
	size_t blen = json ? strlen(json) : 0;
	int fd = connect_sock(sock), n;

	if (fd < 0)
		return fd;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		     method, path, blen);
	/* head and body in one sendmsg: squib's API thread wakes once and
	 * reads the whole request (two sends could wake it twice) */
	if (n < 0 || (size_t)n >= sizeof(head)) {
		close(fd);
		return -EIO;
	}
	{
		struct iovec iov[2] = {{head, (size_t)n}, {(void *)json, blen}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = blen ? 2 : 1};

		if (sendmsg(fd, &m, MSG_NOSIGNAL) != (ssize_t)((size_t)n + blen)) {
			close(fd);
			return -EIO;
		}
	}
	return fd;
}

int sqb_fleet_http_recv(int fd, char *body, size_t cap, int timeout_ms)
{
	char buf[8192];
	size_t len = 0;
	long clen = -1;
	int status = -EPROTO;
	uint64_t end = sqb_fleet_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	if (body && cap)
		body[0] = 0;
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		char *hdr_end;
		ssize_t r;
		int64_t left = (int64_t)(end - sqb_fleet_now_ns()) / 1000000;

		buf[len] = 0;
		hdr_end = strstr(buf, "\r\n\r\n");
		if (hdr_end) {
			char *cl = strcasestr(buf, "Content-Length:");
			clen = cl && cl < hdr_end ? strtol(cl + 15, NULL, 10) : 0;
			if ((size_t)(hdr_end + 4 - buf) + (size_t)clen <= len ||
			    len == sizeof(buf) - 1)
				break;
		}
		if (len == sizeof(buf) - 1)
			break;
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	close(fd);
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -EPROTO;
	if (body && cap) {
		char *b = strstr(buf, "\r\n\r\n");
		snprintf(body, cap, "%s", b ? b + 4 : "");
	}
	return status;
}

int sqb_fleet_http(const char *sock, const char *method, const char *path, const char *json,
		   char *body, size_t cap, int timeout_ms)
{
	int fd = sqb_fleet_http_send(sock, method, path, json);

	return fd < 0 ? fd : sqb_fleet_http_recv(fd, body, cap, timeout_ms);
}

/* JSON string contents: paths come from the operator, still escaped. */
static size_t json_escape(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			n += (size_t)snprintf(dst + n, cap - n, "\\%c", c);
		else if (c < 0x20)
			n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
		else
			dst[n++] = (char)c;
	}
	dst[n] = 0;
	return *s ? 0 : n; /* 0: did not fit */
}

int sqb_fleet_load_body_resume(char *buf, size_t cap, const char *state, const char *mem,
			       int resume)
{
	char s[1100], m[1100];
	int n;

	if (!json_escape(s, sizeof(s), state) || !json_escape(m, sizeof(m), mem))
		return -ENAMETOOLONG;
	n = snprintf(buf, cap,
		     "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\","
		     "\"backend_path\":\"%s\"},\"resume_vm\":%s}",
		     s, m, resume ? "true" : "false");
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int sqb_fleet_load_body(char *buf, size_t cap, const char *state, const char *mem)
{
	return sqb_fleet_load_body_resume(buf, cap, state, mem, 1);
}

/* ---- snapshot shape and identity ---- */

int sqb_fleet_snapshot_shape(const char *state, struct sqb_fleet_shape *out, char *why,
			     size_t whylen)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d = {0};
	struct sqb_kv *kvs = NULL;
	void *backing = NULL;
	unsigned int n = 0;
	sqb_snap *s = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	oo.no_external = 1;
	oo.no_parents = 1;
	err = sqb_snap_open(&s, state, &oo, &d);
	if (!err)
		err = sqb_snap_kv(s, SQB_SEC_CONF, &kvs, &n, &backing, &d);
	if (err) {
		char where[300];
		snprintf(why, whylen, "snapshot %s: %s (%s)", state,
			 d.reason[0] ? sqb_diag_format(&d, where, sizeof(where)) : "unreadable",
			 sqb_strerror(err));
		sqb_snap_free(s);
		return err;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (!strcmp(kvs[i].key, "vcpu_count"))
			out->vcpus = (unsigned int)strtoul(kvs[i].value, NULL, 10);
		else if (!strcmp(kvs[i].key, "mem_size_mib"))
			out->mem_mib = strtoull(kvs[i].value, NULL, 10);
	}
	free(kvs);
	free(backing);
	sqb_snap_free(s);
	if (out->vcpus < 1 || out->vcpus > 32 || out->mem_mib < 1 || out->mem_mib > (1ULL << 20)) {
		snprintf(why, whylen, "snapshot %s: CONF has no valid vcpu_count / mem_size_mib",
			 state);
		return -SQB_ECORRUPT;
	}
	return 0;
}

int sqb_fleet_ident(const char *path, struct sqb_fleet_ident *out)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*out = (struct sqb_fleet_ident){
	    (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
	    (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
	return 0;
}

int sqb_fleet_ident_equal(const struct sqb_fleet_ident *a, const struct sqb_fleet_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->ctime_ns == b->ctime_ns;
}

/* ---- host ---- */

static long meminfo_kib(const char *key)
{
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtol(line + kl + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int sqb_fleet_host_check(unsigned int n, const struct sqb_fleet_shape *shape, uint64_t reserve_mib,
			 unsigned int open_fds, char *why, size_t whylen)
{
	long avail = meminfo_kib("MemAvailable"), total = meminfo_kib("MemTotal");
	struct rlimit nofile;
	uint64_t need_kib = (uint64_t)n * reserve_mib * 1024;

	if (total > 0 && shape->mem_mib * 1024 > (uint64_t)total) {
		snprintf(why, whylen,
			 "one clone of %llu MiB is larger than the host's memory (%ld MiB)",
			 (unsigned long long)shape->mem_mib, total / 1024);
		return -ENOMEM;
	}
	if (avail >= 0 && need_kib > (uint64_t)avail) {
		snprintf(why, whylen,
			 "%u clones reserve %llu MiB (%llu MiB each beyond the shared snapshot "
			 "pages) but the host has %ld MiB available",
			 n, (unsigned long long)(need_kib / 1024), (unsigned long long)reserve_mib,
			 avail / 1024);
		return -ENOMEM;
	}
	/* one descriptor per clone here (its serial input), a few to spare */
	if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur != RLIM_INFINITY &&
	    (uint64_t)open_fds + n + 16 > nofile.rlim_cur) {
		snprintf(why, whylen,
			 "%u more clones need %u descriptors in squib-fleet; %u are open and the "
			 "limit is %llu (ulimit -n)",
			 n, n, open_fds, (unsigned long long)nofile.rlim_cur);
		return -EMFILE;
	}
	return 0;
}

int sqb_fleet_smaps(pid_t pid, struct sqb_fleet_mem *out)
{
	static const char *const keys[] = {
	    "Pss:", "Pss_Anon:", "Pss_File:", "Pss_Shmem:", "Private_Dirty:", "Rss:"};
	long *dst[] = {&out->pss,	&out->pss_anon,	     &out->pss_file,
		       &out->pss_shmem, &out->private_dirty, &out->rss};
	char path[64], line[256];
	FILE *f;

	*out = (struct sqb_fleet_mem){-1, -1, -1, -1, -1, -1};
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		for (unsigned int i = 0; i < 6; i++)
			if (!strncmp(line, keys[i], strlen(keys[i])))
				*dst[i] = strtol(line + strlen(keys[i]), NULL, 10);
	fclose(f);
	return out->pss < 0 ? -EPROTO : 0;
}

int sqb_fleet_wait_text(int fd, char *buf, size_t cap, size_t *len, const char *needle,
			int timeout_ms)
{
	uint64_t end = sqb_fleet_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		int64_t left;
		ssize_t r;

		buf[*len] = 0;
		if (strstr(buf, needle))
			return 0;
		left = (int64_t)(end - sqb_fleet_now_ns());
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)(left / 1000000 + 1)) <= 0)
			continue;
		if (*len + 1 >= cap) { /* keep the tail: needles are short */
			memmove(buf, buf + cap / 2, *len - cap / 2);
			*len -= cap / 2;
		}
		r = read(fd, buf + *len, cap - 1 - *len);
		if (r == 0)
			return -EPIPE;
		if (r > 0)
			*len += (size_t)r;
	}
}

/* ---- a golden snapshot ---- */

int sqb_fleet_golden(const char *squib, const char *dir, const char *kernel, const char *args,
		     const struct sqb_fleet_shape *shape, const char *ready_text, const char *state,
		     const char *mem, char *why, size_t whylen)
{
	return sqb_fleet_golden_cfg(squib, dir, kernel, args, shape, NULL, NULL, ready_text, state,
				    mem, why, whylen);
}

int sqb_fleet_golden_cfg(const char *squib, const char *dir, const char *kernel, const char *args,
			 const struct sqb_fleet_shape *shape, const char *put_path,
			 const char *put_body, const char *ready_text, const char *state,
			 const char *mem, char *why, size_t whylen)
{
	struct sqb_fleet_proc p;
	char body[2600], resp[1024], text[4096], ka[1100];
	size_t len = 0;
	int st, err;

	err = sqb_fleet_spawn(&p, squib, dir, "golden", NULL, 0, 1);
	if (!err)
		err = sqb_fleet_wait_ready(&p, 10000);
	if (err) {
		snprintf(why, whylen, "squib did not start: %s", strerror(-err));
		sqb_fleet_kill(&p);
		return err;
	}
	snprintf(body, sizeof(body), "{\"vcpu_count\":%u,\"mem_size_mib\":%llu}", shape->vcpus,
		 (unsigned long long)shape->mem_mib);
	st = sqb_fleet_http(p.sock, "PUT", "/machine-config", body, resp, sizeof(resp), 5000);
	if (st == 204) {
		if (!json_escape(ka, sizeof(ka), kernel))
			st = -ENAMETOOLONG;
		else
			snprintf(body, sizeof(body),
				 "{\"kernel_image_path\":\"%s\",\"boot_args\":\"%s\"}", ka, args);
	}
	if (st == 204)
		st = sqb_fleet_http(p.sock, "PUT", "/boot-source", body, resp, sizeof(resp), 5000);
	if (st == 204 && put_path) /* a device, e.g. PUT /entropy */
		st = sqb_fleet_http(p.sock, "PUT", put_path, put_body, resp, sizeof(resp), 5000);
	if (st == 204)
		st =
		    sqb_fleet_http(p.sock, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}",
				   resp, sizeof(resp), 10000);
	if (st == 204 &&
	    sqb_fleet_wait_text(p.out_fd, text, sizeof(text), &len, ready_text, 30000) < 0) {
		snprintf(resp, sizeof(resp), "the guest never printed '%s'", ready_text);
		st = -ETIMEDOUT;
	}
	if (st == 204)
		st = sqb_fleet_http(p.sock, "PATCH", "/vm", "{\"state\":\"Paused\"}", resp,
				    sizeof(resp), 5000);
	if (st == 204) {
		char s[1100], m[1100];
		json_escape(s, sizeof(s), state);
		json_escape(m, sizeof(m), mem);
		snprintf(body, sizeof(body),
			 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s\",\"mem_file_path\":"
			 "\"%s\"}",
			 s, m);
		st = sqb_fleet_http(p.sock, "PUT", "/snapshot/create", body, resp, sizeof(resp),
				    60000);
	}
	sqb_fleet_kill(&p);
	if (st != 204) {
		snprintf(why, whylen, "golden snapshot: %d %s", st, st < 0 ? strerror(-st) : resp);
		return st < 0 ? st : -EIO;
	}
	return 0;
}
