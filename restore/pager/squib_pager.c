/* squib-pager: serve a snapshot's memory to a VMM that sends its userfaultfd
 * over a Unix socket with Firecracker's Uffd-backend handshake; faults are
 * served first, the rest is streamed in (docs/restore.md, "squib-pager"). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pager_proto.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: squib-pager [--parent PATH]... [--verify] [--no-fill] [--wset PATH]\n"
		"                   [--threads N] SOCKET SNAPSHOT\n"
		"Listens on the Unix socket SOCKET, takes one Firecracker Uffd handshake\n"
		"(JSON mappings + userfaultfd), serves SNAPSHOT until the VMM hangs up.\n");
}

static void on_error(void *ctx, int err, const struct sqb_diag *d)
{
	char buf[300];

	(void)ctx;
	if (err == -ESRCH) { /* UFFDIO_COPY into an address space that has exited */
		fprintf(stderr, "squib-pager: the VMM exited; stopping\n");
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

/* Handshake -> restore; returns the process exit status. */
static int serve(int conn, sqb_snap *snap, struct sqb_restore_opts *o)
{
	static char buf[SQB_PAGER_MAX_MSG];
	struct sqb_pager_map *maps = NULL;
	struct sqb_restore_range *rr = NULL;
	unsigned int n = 0;
	char why[256] = "";
	struct sqb_diag d = {0};
	sqb_restore *rs = NULL;
	int fd = -1, err, status = 2;
	long got = sqb_pager_recv(conn, buf, sizeof(buf), &fd);

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
	fprintf(stderr, "squib-pager: serving %u mapping(s)\n", n);
	/* serve until the VMM hangs up, or hang up on it when the restore
	 * fails: the Uffd protocol has no other way to tell the VMM */
	for (;;) {
		struct pollfd p = {conn, POLLIN | POLLRDHUP, 0};
		char c;
		int rc = poll(&p, 1, 100);

		if (rc < 0 && errno != EINTR)
			break;
		if (!rc && sqb_restore_wait(rs, 0) <= -SQB_EBADMAGIC)
			break;
		if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
			break;
		if ((p.revents & POLLIN) && recv(conn, &c, 1, MSG_DONTWAIT) == 0)
			break;
	}
	/* 1 only when the snapshot let the VMM down (checksum, codec, chain);
	 * the VMM going away mid-restore is a normal end */
	err = sqb_restore_wait(rs, 0);
	status = err <= -SQB_EBADMAGIC ? 1 : 0;
out:
	sqb_restore_free(rs);
	if (fd >= 0)
		close(fd);
	free(maps);
	free(rr);
	return status;
}

int main(int argc, char **argv)
{
	const char *parents[16], *sock_path, *snap_path;
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
	oo.parent_paths = parents;
	oo.n_parent_paths = np;
	if ((err = sqb_snap_open(&snap, snap_path, &oo, &d))) {
		char b[300];

		fprintf(stderr, "squib-pager: %s: %s: %s\n", snap_path, sqb_strerror(err),
			sqb_diag_format(&d, b, sizeof(b)));
		return 1;
	}
	if ((ls = listen_on(sock_path)) < 0) {
		sqb_snap_free(snap);
		return 1;
	}
	conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0) {
		fprintf(stderr, "squib-pager: accept: %s\n", strerror(errno));
		status = 1;
	} else {
		status = serve(conn, snap, &o);
		close(conn);
	}
	close(ls);
	unlink(sock_path);
	sqb_snap_free(snap);
	return status;
}
