/* A page-fault handler written from Firecracker's documentation alone
 * (docs/snapshotting/handling-page-faults-on-snapshot-resume.md): it binds a
 * Unix socket, accepts the VMM, receives the userfaultfd (SCM_RIGHTS) and the
 * JSON array of GuestRegionUffdMapping {base_host_virt_addr, size, offset,
 * page_size...}, privately mmaps the guest memory FILE (a raw memory file,
 * guest memory byte for byte) and answers each fault with UFFDIO_COPY of the
 * page at offset + (addr - base).  REMOVE events make the range zero-filled on
 * its next fault, as the document asks.  It closes the socket after the
 * handshake ("no other communication happens on the UDS").
 *   usage: fc_uffd_handler SOCKET MEMFILE        (exits when the VMM is gone) */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAXMAP 8

struct mapping {
	uint64_t base, size, offset;
};

static struct mapping maps[MAXMAP];
static unsigned int nmaps;
static uint64_t removed[64][2]; /* ranges to serve as zero after REMOVE */
static unsigned int nremoved;

/* Pull "key": number out of one JSON object (the handler's own tiny parser:
 * the VMM's body is a flat array of flat objects). */
static int field(const char *obj, const char *end, const char *key, uint64_t *v)
{
	char pat[48];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(obj, pat);
	if (!p || p > end)
		return -1;
	p = strchr(p + strlen(pat), ':');
	if (!p || p > end)
		return -1;
	*v = strtoull(p + 1, NULL, 10);
	return 0;
}

static int parse(const char *body)
{
	const char *o = body;

	while ((o = strchr(o, '{')) && nmaps < MAXMAP) {
		const char *e = strchr(o, '}');
		struct mapping *m = &maps[nmaps];

		if (!e || field(o, e, "base_host_virt_addr", &m->base) ||
		    field(o, e, "size", &m->size) || field(o, e, "offset", &m->offset))
			return -1;
		nmaps++;
		o = e + 1;
	}
	return nmaps ? 0 : -1;
}

static int is_removed(uint64_t a)
{
	for (unsigned int i = 0; i < nremoved; i++)
		if (a >= removed[i][0] && a < removed[i][1])
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char body[4096], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {body, sizeof(body) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct stat st;
	uint8_t *file;
	int ls, cs, uffd = -1, fd;
	ssize_t n;

	if (argc != 3)
		return 2;
	fd = open(argv[2], O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return 3;
	file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (file == MAP_FAILED)
		return 3;
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	unlink(argv[1]);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1))
		return 4;
	printf("listening\n");
	fflush(stdout);
	cs = accept(ls, NULL, NULL);
	n = recvmsg(cs, &mh, 0);
	if (n <= 0)
		return 5;
	body[n] = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&uffd, CMSG_DATA(c), sizeof(int));
	if (uffd < 0 || parse(body)) {
		fprintf(stderr, "fc_uffd_handler: bad handshake: %s\n", body);
		return 6;
	}
	close(cs); /* legal: nothing else is said on the socket */
	close(ls);
	for (unsigned int i = 0; i < nmaps; i++)
		if (maps[i].offset + maps[i].size > (uint64_t)st.st_size) {
			fprintf(stderr, "fc_uffd_handler: mapping %u beyond the file\n", i);
			return 7;
		}
	printf("serving %u mappings\n", nmaps);
	fflush(stdout);
	for (;;) {
		struct pollfd p = {uffd, POLLIN, 0};
		struct uffd_msg msg;

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return 8;
		if (p.revents & (POLLERR | POLLHUP))
			return 0; /* the VMM went away */
		n = read(uffd, &msg, sizeof(msg));
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return 0;
		}
		if (msg.event == UFFD_EVENT_REMOVE) {
			if (nremoved < 64) {
				removed[nremoved][0] = msg.arg.remove.start;
				removed[nremoved++][1] = msg.arg.remove.end;
			}
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t a = msg.arg.pagefault.address & ~4095ull;
		for (unsigned int i = 0; i < nmaps; i++) {
			struct mapping *m = &maps[i];

			if (a < m->base || a >= m->base + m->size)
				continue;
			if (is_removed(a)) {
				struct uffdio_zeropage z = {.range = {a, 4096}};
				ioctl(uffd, UFFDIO_ZEROPAGE, &z);
			} else {
				struct uffdio_copy c = {.dst = a,
							.src = (uint64_t)(uintptr_t)(file + m->offset +
										    (a - m->base)),
							.len = 4096};
				ioctl(uffd, UFFDIO_COPY, &c); /* EEXIST: raced, fine */
			}
			break;
		}
	}
}
