/* sqb-api: a minimal HTTP/1.1 client over squib's Unix API socket for the
 * arm64 test host, which has no curl (the Firecracker API, RFC 9112).
 *   sqb-api SOCK METHOD PATH [JSON]
 * Prints the status code on stdout and the body on stderr; exit 0 for 2xx,
 * 1 for another status, 2 when the exchange itself failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static char resp[1 << 16];
	char head[512];
	const char *body = argc > 4 ? argv[4] : "", *p;
	size_t got = 0, blen = strlen(body);
	int fd, code, hl;

	if (argc < 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: sqb-api SOCK METHOD PATH [JSON]\n");
		return 2;
	}
	memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("sqb-api: connect");
		return 2;
	}
	hl = snprintf(head, sizeof(head),
		      "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		      argv[2], argv[3], blen);
	if (hl < 0 || (size_t)hl >= sizeof(head) || write_all(fd, head, (size_t)hl) < 0 ||
	    write_all(fd, body, blen) < 0) {
		perror("sqb-api: write");
		return 2;
	}
	/* read the head, then Content-Length bytes of body (keep-alive) */
	for (;;) {
		ssize_t n;
		char *end = memmem(resp, got, "\r\n\r\n", 4);
		if (end) {
			const char *cl = strcasestr(resp, "Content-Length:");
			size_t want = (size_t)(end + 4 - resp) +
				      (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
			if (got >= want || want >= sizeof(resp))
				break;
		}
		if (got + 1 >= sizeof(resp))
			break;
		n = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		resp[got] = 0;
	}
	close(fd);
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
		fprintf(stderr, "sqb-api: no HTTP status in the answer\n");
		return 2;
	}
	p = strstr(resp, "\r\n\r\n");
	printf("%d\n", code);
	if (p)
		fputs(p + 4, stderr);
	return code >= 200 && code < 300 ? 0 : 1;
}
