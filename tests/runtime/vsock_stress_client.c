/* Host-side vsock stream client for the by-hand stall hunt
 * (tests/runtime/testhost_vsock_stress.sh, issue 13).  Speaks Firecracker's
 * host-initiated protocol on a uds_path ("CONNECT <port>\n" -> "OK ...") to
 * `sqbtool vsock-agent` in the guest, and never gives up at the first quiet
 * moment: when no byte moves for STALL_MS it prints one "VSTRESS stall" line
 * (the script takes its diagnostics then) and keeps waiting, up to GIVEUP_S,
 * so a stream that resumes by itself says so ("VSTRESS resumed").
 *
 *   vsock_stress_client UDS PORT MODE COUNT STALL_MS GIVEUP_S
 *     MODE lines: COUNT lines, each answered "SUM <fnv64> <len>" (checked)
 *     MODE echo:  COUNT one-byte pings after the agent's "ECHO" line
 *     MODE sink:  COUNT KiB to the agent ("SINK"), then its "GOT <n>"
 *     MODE src:   COUNT MiB from the agent ("SRC <n>"), to its EOF
 *   vsock_stress_client serve PATH
 *     the host end of guest-initiated connections (`sqbtool vsock-bench
 *     cid:2 PORT ...` in the guest; PATH is "<uds_path>_<PORT>"): the
 *     agent's SINK, SRC and ECHO, one connection at a time, for ever
 * Exit 0: done; 1: error, early EOF or a stall that never resumed.
 * Built as `vstress` (tests/runtime/CMakeLists.txt). */

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fd = -1, stall_ms, giveup_s;
static unsigned long stalls;
static const char *where = "connect";
static unsigned long at; /* line / ping / byte count at the last progress */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for ev on fd; prints a stall once per quiet spell.  0: ready,
 * -1: gave up. */
static int wait_fd(short ev)
{
	double t0 = now();
	int stalled = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = ev};
		int r = poll(&p, 1, stall_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			if (stalled) {
				printf("VSTRESS resumed in %s at %lu after %.1f s\n", where, at,
				       now() - t0);
				fflush(stdout);
			}
			return 0;
		}
		if (r < 0)
			return -1;
		if (!stalled) {
			stalled = 1;
			stalls++;
			printf("VSTRESS stall in %s at %lu (no %s for %d ms)\n", where, at,
			       ev == POLLIN ? "byte from the guest" : "room to send", stall_ms);
			fflush(stdout);
		}
		if (now() - t0 > giveup_s) {
			printf("VSTRESS gave up in %s at %lu after %d s\n", where, at, giveup_s);
			return -1;
		}
	}
}

static int wr(const void *b, size_t n)
{
	const char *p = b;

	while (n) {
		ssize_t r;

		if (wait_fd(POLLOUT))
			return -1;
		r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			printf("VSTRESS send error in %s at %lu: %s\n", where, at, strerror(errno));
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Up to n bytes; 0 at EOF (reported), -1 on error. */
static ssize_t rd(void *b, size_t n)
{
	for (;;) {
		ssize_t r;

		if (wait_fd(POLLIN))
			return -1;
		r = recv(fd, b, n, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			printf("VSTRESS recv error in %s at %lu: %s\n", where, at, strerror(errno));
		return r;
	}
}

static int rd_line(char *b, size_t n)
{
	size_t i = 0;

	while (i + 1 < n) {
		ssize_t r = rd(b + i, 1);

		if (r <= 0) {
			if (r == 0)
				printf("VSTRESS EOF in %s at %lu\n", where, at);
			return -1;
		}
		if (b[i] == '\n') {
			b[i] = 0;
			return (int)i;
		}
		i++;
	}
	return -1;
}

static uint64_t fnv64(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* One guest-initiated benchmark connection (sqbtool's bench_serve). */
static void serve_one(void)
{
	static char buf[65536];
	char line[64];
	unsigned long mib;
	unsigned long long total = 0;
	ssize_t r;
	int n;

	where = "serve";
	at = 0;
	if (rd_line(line, sizeof(line)) < 0)
		return;
	if (!strcmp(line, "SINK")) {
		while ((r = rd(buf, sizeof(buf))) > 0)
			at = (unsigned long)(total += (unsigned long long)r);
		if (r < 0)
			return;
		n = snprintf(line, sizeof(line), "GOT %llu\n", total);
		wr(line, (size_t)n);
	} else if (sscanf(line, "SRC %lu", &mib) == 1 && mib <= 4096) {
		for (at = 0; at < mib * 1048576ul; at += sizeof(buf))
			if (wr(buf, sizeof(buf)))
				return;
	} else if (!strcmp(line, "ECHO")) {
		while ((r = rd(buf, sizeof(buf))) > 0) {
			at += (unsigned long)r;
			if (wr(buf, (size_t)r))
				return;
		}
	}
}

static int serve(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	if (strlen(path) >= sizeof(a.sun_path) || l < 0)
		return 2;
	strcpy(a.sun_path, path);
	unlink(path);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16)) {
		printf("VSTRESS serve %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("VSTRESS serve ready\n");
	fflush(stdout);
	for (unsigned long k = 1;; k++) {
		fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		stalls = 0;
		serve_one();
		printf("VSTRESS served %lu: %s %lu bytes, stalls=%lu\n", k, where, at, stalls);
		fflush(stdout);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	static char buf[65536];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char line[128], want[128];
	unsigned long count;
	const char *mode;
	double t0;
	int n;

	if (argc == 3 && !strcmp(argv[1], "serve")) {
		stall_ms = 3000;
		giveup_s = 90;
		return serve(argv[2]);
	}
	if (argc != 7 || strlen(argv[1]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "usage: %s UDS PORT lines|echo|sink|src COUNT STALL_MS GIVEUP_S\n",
			argv[0]);
		return 2;
	}
	mode = argv[3];
	count = strtoul(argv[4], NULL, 0);
	stall_ms = atoi(argv[5]);
	giveup_s = atoi(argv[6]);
	strcpy(a.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		printf("VSTRESS error connect %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	n = snprintf(line, sizeof(line), "CONNECT %s\n", argv[2]);
	if (wr(line, (size_t)n) || rd_line(line, sizeof(line)) < 0 || strncmp(line, "OK ", 3)) {
		printf("VSTRESS error: no OK to CONNECT %s\n", argv[2]);
		return 1;
	}
	t0 = now();
	if (!strcmp(mode, "lines")) {
		where = "lines";
		for (at = 0; at < count; at++) {
			n = snprintf(line, sizeof(line), "line %lu %016llx", at,
				     (unsigned long long)fnv64(&at, sizeof(at)));
			snprintf(want, sizeof(want), "SUM %016llx %d",
				 (unsigned long long)fnv64(line, (size_t)n), n);
			line[n++] = '\n';
			if (wr(line, (size_t)n) || rd_line(buf, sizeof(buf)) < 0)
				return 1;
			if (strcmp(buf, want)) {
				printf("VSTRESS bad answer to line %lu: '%.60s'\n", at, buf);
				return 1;
			}
		}
	} else if (!strcmp(mode, "echo")) {
		where = "echo";
		if (wr("ECHO\n", 5))
			return 1;
		for (at = 0; at < count; at++) {
			char b = (char)('a' + at % 26), c;

			if (wr(&b, 1))
				return 1;
			if (rd(&c, 1) != 1) {
				printf("VSTRESS EOF in echo at %lu\n", at);
				return 1;
			}
			if (c != b) {
				printf("VSTRESS echo %lu: got %d want %d\n", at, c, b);
				return 1;
			}
		}
	} else if (!strcmp(mode, "sink")) {
		where = "sink";
		if (wr("SINK\n", 5))
			return 1;
		for (at = 0; at < count * 1024; at += sizeof(buf) / 16)
			if (wr(buf, sizeof(buf) / 16))
				return 1;
		shutdown(fd, SHUT_WR);
		if (rd_line(line, sizeof(line)) < 0)
			return 1;
		if (strtoull(line + 4, NULL, 10) != count * 1024) {
			printf("VSTRESS sink: agent says '%.60s', sent %lu\n", line, count * 1024);
			return 1;
		}
	} else if (!strcmp(mode, "src")) {
		ssize_t r;

		where = "src";
		n = snprintf(line, sizeof(line), "SRC %lu\n", count);
		if (wr(line, (size_t)n))
			return 1;
		at = 0;
		while ((r = rd(buf, sizeof(buf))) > 0)
			at += (unsigned long)r;
		if (r < 0 || at != count * 1048576ul) {
			printf("VSTRESS src: %lu of %lu bytes\n", at, count * 1048576ul);
			return 1;
		}
	} else {
		printf("VSTRESS bad mode %s\n", mode);
		return 2;
	}
	printf("VSTRESS ok %s count=%lu ms=%.0f stalls=%lu\n", mode, count, (now() - t0) * 1000,
	       stalls);
	return stalls ? 1 : 0;
}
