/* squib --zygote FD: forks a fleet's pool members from one initialised,
 * single-threaded squib that holds no VM (docs/fleet.md "Zygote"; the
 * protocol is drawn in zygote.h).  Opt-in: every member shares the zygote's
 * address-space layout and stack canary (docs/security.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hv.h"
#include "zygote.h"

#define ZY_MAX_REQ  4096 /* one request's argv, NULs included */
#define ZY_MAX_ARGS 64

struct zy_req {
	int argc;
	int fds[3];
	int nfds;
	char *argv[ZY_MAX_ARGS + 1];
	char buf[ZY_MAX_REQ]; /* argv strings, the member keeps them */
};

static void close_req_fds(struct zy_req *r)
{
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	r->nfds = 0;
}

/* 1 with a request, 0 at EOF, -errno; a malformed request: -EINVAL (its
 * descriptors closed). */
static int recv_req(int fd, struct zy_req *r)
{
	union {
		char b[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = r->buf, .iov_len = ZY_MAX_REQ};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = cbuf.b,
			   .msg_controllen = sizeof(cbuf.b)};
	size_t got = 0; /* descriptors received, kept or not */
	ssize_t n;

	r->nfds = 0;
	r->argc = 0;
	n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0 && !m.msg_controllen) {
		/* the end, or an empty message from a spawner still there */
		struct pollfd pf = {.fd = fd, .events = POLLRDHUP};

		if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLRDHUP)))
			return 0;
		return -EINVAL;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++, got++) {
				int f;

				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
				if (r->nfds < 3)
					r->fds[r->nfds++] = f;
				else
					close(f);
			}
		}
	/* exactly 3 descriptors (the buffer has room for a 4th: CMSG_SPACE
	 * rounds up); argv: 1..ZY_MAX_ARGS NUL-terminated strings, nothing
	 * after the last */
	if (got != 3 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n < 2 || r->buf[n - 1] != 0)
		goto bad;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(r->buf + i) + 1) {
		if (r->argc == ZY_MAX_ARGS)
			goto bad;
		r->argv[r->argc++] = r->buf + i;
	}
	r->argv[r->argc] = NULL;
	return 1;
bad:
	close_req_fds(r);
	return -EINVAL;
}

/* 0, or -1 when the spawner went away or gave up on this answer (closed
 * its end: the next recv sees EOF). */
static int reply(int fd, int32_t v)
{
	return send(fd, &v, sizeof(v), MSG_NOSIGNAL) == (ssize_t)sizeof(v) ? 0 : -1;
}

/* In the member: wait until the helper is gone and the member belongs to
 * the spawner (a child subreaper), then die with the spawner as an exec'd
 * member would (PR_SET_PDEATHSIG is not inherited across fork). */
static int adopt(pid_t helper, pid_t spawner)
{
	struct timespec nap = {0, 50000};

	for (int i = 0; getppid() == helper; i++) {
		if (i == 40000) /* 2 s */
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return -errno;
	return getppid() == spawner ? 0 : -ECHILD;
}

static int copy_argv(const struct zy_req *r, int *argc, char ***argv)
{
	size_t n = 0;
	char **v, *p;

	for (int i = 0; i < r->argc; i++)
		n += strlen(r->argv[i]) + 1;
	v = malloc((size_t)(r->argc + 1) * sizeof(*v) + n);
	if (!v)
		return -ENOMEM;
	p = (char *)(v + r->argc + 1);
	for (int i = 0; i < r->argc; i++) {
		size_t k = strlen(r->argv[i]) + 1;

		v[i] = memcpy(p, r->argv[i], k);
		p += k;
	}
	v[r->argc] = NULL;
	*argc = r->argc;
	*argv = v;
	return 0;
}

/* The helper: fork the member, tell the zygote its pid, exit. */
static void helper(int zfd, int res, struct zy_req *r, pid_t spawner, int *argc, char ***argv)
{
	pid_t self = getpid(), m = fork();
	int32_t v = m < 0 ? -errno : (int32_t)m;

	if (m == 0) {
		int e;

		close(res);
		close(zfd);
		e = adopt(self, spawner);
		for (int i = 0; i < 3; i++)
			if (dup2(r->fds[i], i) < 0)
				_exit(1);
		for (int i = 0; i < 3; i++)
			if (r->fds[i] > 2)
				close(r->fds[i]);
		if (e < 0) {
			fprintf(stderr,
				"squib: --zygote: the member was not adopted by the zygote's "
				"parent (%s): the spawner must be a child subreaper "
				"(PR_SET_CHILD_SUBREAPER)\n",
				strerror(-e));
			_exit(1);
		}
		/* the member's own copy of its command line: the request page
		 * is the zygote's, which writes the next request over it, and
		 * every member would keep a private copy of that page
		 * (docs/fleet.md "Heap") */
		if (copy_argv(r, argc, argv) < 0) {
			fprintf(stderr, "squib: --zygote: out of memory\n");
			_exit(1);
		}
		munmap(r, sizeof(*r));
		return;
	}
	if (write(res, &v, sizeof(v)) != sizeof(v)) {
		if (m > 0) /* nobody would know its pid */
			kill(m, SIGKILL);
		_exit(1);
	}
	_exit(0);
}

/* Close every descriptor but 0-2 and fd: what the spawner left open
 * without close-on-exec would otherwise reach every member. */
static int close_others(int fd)
{
	DIR *d;
	struct dirent *e;

#ifdef SYS_close_range /* the libc wrapper is glibc 2.34's */
	if ((fd == 3 || !syscall(SYS_close_range, 3u, (unsigned int)fd - 1, 0u)) &&
	    !syscall(SYS_close_range, (unsigned int)fd + 1, ~0u, 0u))
		return 0;
#endif
	if (!(d = opendir("/proc/self/fd"))) /* a kernel before 5.9 */
		return -1;
	while ((e = readdir(d))) {
		int f = atoi(e->d_name);

		if (e->d_name[0] != '.' && f > 2 && f != fd && f != dirfd(d))
			close(f);
	}
	closedir(d);
	return 0;
}

int sqb_zygote_serve(int fd, int *argc, char ***argv)
{
	pid_t spawner = getppid();
	int type = 0, rc;
	socklen_t tl = sizeof(type);
	struct zy_req *r;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != spawner)
		return -1; /* the spawner is already gone */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET) {
		fprintf(stderr, "squib: --zygote %d: not a SOCK_SEQPACKET socket\n", fd);
		return -1;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || close_others(fd) < 0)
		return -1;
	/* a mapping of its own, not the heap: the request lives on after
	 * this frame in the member until it has copied its argv out and
	 * unmapped it (helper), and the zygote's heap pages stay shared
	 * until a member writes them */
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return -1;
	/* the host probes every member's VM would make (KVM's CPUID and MSR
	 * lists): asked once here, the members share the answers' pages */
	if (sqb_hv_backend.host_probe)
		sqb_hv_backend.host_probe();
	for (;;) {
		int res[2];
		pid_t h;
		int32_t v = -ECHILD;
		int st;

		rc = recv_req(fd, r);
		if (rc == -EINTR)
			continue;
		if (rc == -EINVAL) {
			reply(fd, -EINVAL);
			continue;
		}
		if (rc <= 0) {
			munmap(r, sizeof(*r));
			return rc == 0 ? 1 : -1;
		}
		if (pipe2(res, O_CLOEXEC) < 0) {
			reply(fd, -errno);
			close_req_fds(r);
			continue;
		}
		h = fork();
		if (h == 0) {
			close(res[0]);
			helper(fd, res[1], r, spawner, argc, argv);
			return 0; /* the member */
		}
		close(res[1]);
		close_req_fds(r);
		if (h < 0) {
			v = -errno;
		} else {
			while (waitpid(h, &st, 0) < 0 && errno == EINTR)
				;
			if (read(res[0], &v, sizeof(v)) != sizeof(v))
				v = -ECHILD;
		}
		close(res[0]);
		/* a member whose pid its spawner will not hear: it would run
		 * unknown to anyone (the spawner timed out and closed) */
		if (reply(fd, v) < 0 && v > 0)
			kill(v, SIGKILL);
	}
}
