/* squib-pager: serve a snapshot's memory to a VMM that sends its userfaultfd
 * over a Unix socket with Firecracker's Uffd-backend handshake; faults are
 * served first, the rest is streamed in, until the VMM process exits
 * (docs/restore.md, "squib-pager"). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "pager_proto.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: squib-pager [--parent PATH]... [--verify] [--no-fill] [--wset PATH]\n"
		"                   [--threads N] [--state STATE] SOCKET SNAPSHOT\n"
		"Listens on the Unix socket SOCKET, takes one Firecracker Uffd handshake\n"
		"(JSON mappings + userfaultfd), serves SNAPSHOT until the VMM exits.\n"
		"--state: refuse to serve unless SNAPSHOT is the memory file paired with\n"
		"the state file STATE that the VMM loads (format.md [F-46]).\n");
}

static void on_error(void *ctx, int err, const struct sqb_diag *d)
{
	char buf[300];

	(void)ctx;
	if (err == -ESRCH) { /* UFFDIO_COPY into an address space that has exited */
		fprintf(stderr, "squib-pager: the VMM exited; stopping\n");
		return;
	}
	if (err == -ENOENT) { /* the range is no longer registered: a VMM shutting down */
		fprintf(stderr, "squib-pager: the VMM unregistered its memory; nothing to serve\n");
		return;
	}
	fprintf(stderr, "squib-pager: restore failed: %s%s%s\n", sqb_strerror(err), d ? ": " : "",
		d ? sqb_diag_format(d, buf, sizeof(buf)) : "");
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "squib-pager: socket path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 1)) {
		fprintf(stderr, "squib-pager: cannot listen on %s: %s\n", path, strerror(errno));
		return -1;
	}
	return s;
}

/* The VMM's lifetime, seen through the connection: Firecracker's protocol
 * allows the VMM to close the socket right after the handshake (releases
 * before 1.12 do), so a hang-up says nothing.  The process that connected
 * (SO_PEERCRED) is the VMM; a pidfd of it becomes readable when it exits. */
struct vmm_peer {
	pid_t pid;  /* 0: not visible from here (another PID namespace) */
	int pidfd;  /* -1: no pidfd_open (then kill(pid, 0) is polled) */
	int hungup; /* the socket reached EOF */
};

static void peer_open(struct vmm_peer *p, int conn)
{
	struct ucred uc = {0};
	socklen_t len = sizeof(uc);

	p->pid = 0;
	p->pidfd = -1;
	p->hungup = 0;
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &uc, &len) || uc.pid <= 0)
		return;
	p->pid = uc.pid;
#ifdef SYS_pidfd_open
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
#endif
}

static volatile sig_atomic_t stop_signal; /* SIGTERM / SIGINT: stop serving, exit 0 */

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* 1 once the VMM is gone: its pidfd fired, kill() says no such process, or
 * (pid unknown) it hung up, the only sign left. */
static int peer_gone(struct vmm_peer *p, int conn, int timeout_ms)
{
	struct pollfd f[2];
	nfds_t n = 0;
	int i_conn = -1, i_pid = -1;

	if (!p->hungup) {
		i_conn = (int)n;
		f[n++] = (struct pollfd){conn, POLLIN | POLLRDHUP, 0};
	}
	if (p->pidfd >= 0) {
		i_pid = (int)n;
		f[n++] = (struct pollfd){p->pidfd, POLLIN, 0};
	}
	if (!n) { /* hung up, no pidfd: ask the kernel about the pid */
		if (!p->pid)
			return 1;
		usleep((useconds_t)timeout_ms * 1000);
		return kill(p->pid, 0) && errno == ESRCH;
	}
	if (poll(f, n, timeout_ms) <= 0)
		return 0;
	if (i_pid >= 0 && f[i_pid].revents)
		return 1;
	if (i_conn >= 0 && f[i_conn].revents) {
		char c;

		/* stray bytes are ignored: the protocol has one message */
		if (!(f[i_conn].revents & POLLIN) || recv(conn, &c, 1, MSG_DONTWAIT) <= 0)
			p->hungup = 1;
	}
	return p->hungup && !p->pid;
}

/* Handshake -> restore; returns the process exit status. */
static int serve(int conn, sqb_snap *snap, struct sqb_restore_opts *o)
{
	static char buf[SQB_PAGER_MAX_MSG];
	struct sqb_pager_map *maps = NULL;
	struct sqb_restore_range *rr = NULL;
	unsigned int n = 0;
	char why[256] = "";
	struct sqb_diag d = {0};
	struct vmm_peer peer = {0, -1, 0};
	sqb_restore *rs = NULL;
	int fd = -1, err, status = 2;
	long got;

	peer_open(&peer, conn);
	got = sqb_pager_recv(conn, buf, sizeof(buf), &fd);
	if (got <= 0) {
		fprintf(stderr, "squib-pager: malformed handshake: %s\n",
			got ? strerror((int)-got) : "connection closed before the handshake");
		goto out;
	}
	if (fd < 0) {
		fprintf(stderr, "squib-pager: malformed handshake: no userfaultfd passed "
				"(SCM_RIGHTS)\n");
		goto out;
	}
	if (sqb_pager_parse(buf, (size_t)got, &maps, &n, why, sizeof(why))) {
		fprintf(stderr, "squib-pager: malformed handshake: %s\n", why);
		goto out;
	}
	/* squib VMMs name the memory their state file pairs with ([F-46]):
	 * serving another snapshot's memory would run the guest on it */
	if (sqb_pager_check_ident(snap, maps, n, why, sizeof(why))) {
		fprintf(stderr, "squib-pager: refusing to serve: %s\n", why);
		status = 1;
		goto out;
	}
	rr = calloc(n, sizeof(*rr));
	if (!rr || sqb_pager_ranges(snap, maps, n, rr, why, sizeof(why))) {
		fprintf(stderr, "squib-pager: handshake does not fit the snapshot: %s\n",
			rr ? why : "out of memory");
		goto out;
	}
	if ((err = sqb_restore_serve_uffd(&rs, snap, fd, rr, n, o, &d))) {
		char b[300];

		fprintf(stderr, "squib-pager: cannot serve: %s: %s\n", sqb_strerror(err),
			sqb_diag_format(&d, b, sizeof(b)));
		goto out;
	}
	close(fd);
	fd = -1;
	fprintf(stderr, "squib-pager: serving %u mapping(s)%s\n", n,
		peer.pid ? "" : " (VMM pid not visible: serving until it hangs up)");
	/* serve until the VMM exits (REMOVE events can ask for pages again at
	 * any time), or hang up on it when the restore fails: the Uffd
	 * protocol has no other way to tell the VMM */
	while (!stop_signal && !peer_gone(&peer, conn, 100))
		if (sqb_restore_wait(rs, 0) <= -SQB_EBADMAGIC)
			break;
	/* 1 only when the snapshot let the VMM down (checksum, codec, chain);
	 * the VMM going away mid-restore is a normal end */
	err = sqb_restore_wait(rs, 0);
	status = err <= -SQB_EBADMAGIC ? 1 : 0;
out:
	sqb_restore_free(rs);
	if (fd >= 0)
		close(fd);
	if (peer.pidfd >= 0)
		close(peer.pidfd);
	free(maps);
	free(rr);
	return status;
}

/* STATE and the memory snapshot name each other ([F-46]); 0 if they do. */
static int check_state(const char *state_path, const sqb_snap *mem, const char *mem_path)
{
	struct sqb_diag d = {0};
	sqb_snap *st = NULL;
	char b[300];
	int err;

	if ((err = sqb_snap_open(&st, state_path, NULL, &d)) ||
	    (err = sqb_snap_check_pair(st, mem, &d))) {
		fprintf(stderr,
			"squib-pager: %s is not the memory of the state file %s; refusing to serve "
			"it: %s: %s\n",
			mem_path, state_path, sqb_strerror(err), sqb_diag_format(&d, b, sizeof(b)));
		sqb_snap_free(st);
		return -1;
	}
	sqb_snap_free(st);
	return 0;
}

int main(int argc, char **argv)
{
	const char *parents[16], *sock_path, *snap_path, *state_path = NULL;
	unsigned int np = 0;
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d = {0};
	sqb_snap *snap;
	int i, ls, conn, err, status;

	o.strategy = SQB_RESTORE_LAZY;
	o.on_error = on_error;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--parent") && i + 1 < argc && np < 16)
			parents[np++] = argv[++i];
		else if (!strcmp(argv[i], "--verify"))
			o.flags |= SQB_RESTORE_VERIFY;
		else if (!strcmp(argv[i], "--no-fill"))
			o.flags |= SQB_RESTORE_NO_FILL;
		else if (!strcmp(argv[i], "--wset") && i + 1 < argc)
			o.wset_path = argv[++i];
		else if (!strcmp(argv[i], "--state") && i + 1 < argc)
			state_path = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			o.threads = (unsigned int)atoi(argv[++i]);
		else {
			usage();
			return 2;
		}
	}
	if (argc - i != 2) {
		usage();
		return 2;
	}
	sock_path = argv[i];
	snap_path = argv[i + 1];
	signal(SIGPIPE, SIG_IGN);
	{
		struct sigaction sa = {.sa_handler = on_stop_signal};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	oo.parent_paths = parents;
	oo.n_parent_paths = np;
	if ((err = sqb_snap_open(&snap, snap_path, &oo, &d))) {
		char b[300];

		fprintf(stderr, "squib-pager: %s: %s: %s\n", snap_path, sqb_strerror(err),
			sqb_diag_format(&d, b, sizeof(b)));
		return 1;
	}
	/* Serving another snapshot's memory would run the guest on wrong memory
	 * (issue 17): with --state, check the pair before anyone connects. */
	if (state_path && check_state(state_path, snap, snap_path)) {
		sqb_snap_free(snap);
		return 1;
	}
	if ((ls = listen_on(sock_path)) < 0) {
		sqb_snap_free(snap);
		return 1;
	}
	conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0) {
		if (errno != EINTR || !stop_signal)
			fprintf(stderr, "squib-pager: accept: %s\n", strerror(errno));
		status = stop_signal ? 0 : 1;
	} else {
		status = serve(conn, snap, &o);
		close(conn);
	}
	close(ls);
	unlink(sock_path);
	sqb_snap_free(snap);
	return status;
}
