/* Harness for driving the real squib binary over its Unix API socket (see
 * squib_client.h); used by the API conformance and guest boot tests. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "squib_client.h"

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int tc_connect(struct sqb_tc *t)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->sock);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int spawn(struct sqb_tc *t, const char *squib, const char *const *extra, int api,
		 int want_stdin, int out_fd)
{
	const char *argv[32];
	int n = 0, in_pipe[2] = {-1, -1};

	memset(t, 0, sizeof(*t));
	t->stdin_fd = -1;
	if (want_stdin && pipe2(in_pipe, O_CLOEXEC) < 0)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/sqbt-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	snprintf(t->sock, sizeof(t->sock), "%s/api.sock", t->dir);
	snprintf(t->serial, sizeof(t->serial), "%s/serial.out", t->dir);
	snprintf(t->errlog, sizeof(t->errlog), "%s/squib.err", t->dir);
	argv[n++] = squib;
	if (api) {
		argv[n++] = "--api-sock";
		argv[n++] = t->sock;
	}
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		int in = want_stdin ? in_pipe[0] : open("/dev/null", O_RDONLY);

		/* a test that fails half-way (cmocka jumps out) must not leave a
		 * squib running for ever */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int out =
		    out_fd >= 0 ? out_fd : open(t->serial, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(t->errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execv(squib, (char *const *)argv);
		_exit(127);
	}
	if (want_stdin) {
		close(in_pipe[0]);
		t->stdin_fd = in_pipe[1];
	}
	if (!api)
		return 0;
	for (long long end = ms_now() + 5000; ms_now() < end; usleep(5000)) {
		int fd = tc_connect(t);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(t->pid, &t->status, WNOHANG) == t->pid) {
			t->exited = 1;
			return -1;
		}
	}
	return -1;
}

int tc_spawn(struct sqb_tc *t, const char *squib, const char *const *extra, int api)
{
	return spawn(t, squib, extra, api, 0, -1);
}

int tc_spawn_out(struct sqb_tc *t, const char *squib, const char *const *extra, int out_fd)
{
	return spawn(t, squib, extra, 1, 0, out_fd);
}

int tc_spawn_stdin(struct sqb_tc *t, const char *squib, const char *const *extra, int api)
{
	return spawn(t, squib, extra, api, 1, -1);
}

int tc_status_of(const char *reply)
{
	int st;

	if (sscanf(reply, "HTTP/1.1 %d", &st) != 1)
		return -1;
	return st;
}

/* Read one HTTP response (headers + Content-Length body) from fd. */
static int read_response(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t len = 0;
	long long end = ms_now() + timeout_ms;

	for (;;) {
		char *hdr_end;
		struct pollfd p = {fd, POLLIN, 0};
		long long left = end - ms_now();
		ssize_t n;

		buf[len] = 0;
		hdr_end = strstr(buf, "\r\n\r\n");
		if (hdr_end && tc_status_of(buf) != 100) {
			const char *cl = strstr(buf, "Content-Length: ");
			size_t body = cl && cl < hdr_end ? strtoul(cl + 16, NULL, 10) : 0;
			if (len >= (size_t)(hdr_end + 4 - buf) + body)
				return (int)len;
		} else if (hdr_end) { /* skip an interim 100 Continue */
			size_t skip = (size_t)(hdr_end + 4 - buf);
			memmove(buf, buf + skip, len - skip);
			len -= skip;
			continue;
		}
		if (left <= 0 || len + 1 >= cap || poll(&p, 1, (int)left) <= 0)
			return (int)len;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return (int)len;
		len += (size_t)n;
	}
}

int tc_req(struct sqb_tc *t, const char *method, const char *path, const char *json, char *body,
	   size_t cap)
{
	char req[70000], resp[16384];
	int fd, n, st;
	size_t blen = json ? strlen(json) : 0;
	const char *b;

	if (body && cap)
		body[0] = 0;
	fd = tc_connect(t);
	if (fd < 0)
		return -1;
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, blen, json ? json : "");
	if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	n = read_response(fd, resp, sizeof(resp), 10000);
	close(fd);
	if (n <= 0)
		return -1;
	st = tc_status_of(resp);
	b = strstr(resp, "\r\n\r\n");
	if (body && cap && b)
		snprintf(body, cap, "%s", b + 4);
	return st;
}

int tc_raw(struct sqb_tc *t, const void *data, size_t len, int shut_wr, char *out, size_t cap,
	   int timeout_ms)
{
	int fd = tc_connect(t), n;
	size_t off = 0;

	out[0] = 0;
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may close early on a bad request */
		off += (size_t)w;
	}
	if (shut_wr)
		shutdown(fd, SHUT_WR);
	n = read_response(fd, out, cap, timeout_ms);
	close(fd);
	return n;
}

char *tc_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long sz;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)sz + 1);
	if (buf && sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz)
		buf[0] = 0;
	fclose(f);
	return buf;
}

int tc_wait_serial(struct sqb_tc *t, const char *needle, int timeout_ms)
{
	for (long long end = ms_now() + timeout_ms; ms_now() < end; usleep(10000)) {
		char *s = tc_read_file(t->serial);
		int found = s && strstr(s, needle);
		free(s);
		if (found)
			return 0;
	}
	return -1;
}

int tc_wait_exit(struct sqb_tc *t, int timeout_ms)
{
	for (long long end = ms_now() + timeout_ms; !t->exited && ms_now() < end; usleep(5000))
		if (waitpid(t->pid, &t->status, WNOHANG) == t->pid)
			t->exited = 1;
	if (!t->exited || !WIFEXITED(t->status))
		return -1;
	return WEXITSTATUS(t->status);
}

void tc_stop(struct sqb_tc *t)
{
	char cmd[256];

	if (t->stdin_fd >= 0)
		close(t->stdin_fd);
	t->stdin_fd = -1;
	if (t->pid > 0 && !t->exited) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, &t->status, 0);
		t->exited = 1;
	}
	if (t->dir[0] && !getenv("SQB_KEEP_TEST_DIR")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t->dir);
	}
}
