/* A page-fault handler for Firecracker's Uffd memory backend, written from
 * Firecracker's docs/snapshotting/handling-page-faults-on-snapshot-resume.md
 * and the kernel's userfaultfd documentation, not from squib's code: what a
 * Firecracker user would point squib at.  It serves a raw guest memory file.
 *
 *   fc_uffd_handler serve|never SOCKET MEMFILE
 *
 * serve: bind and listen on SOCKET, accept one VMM, receive the JSON array
 *   of GuestRegionUffdMapping and the userfaultfd (SCM_RIGHTS), then close
 *   the socket ("no other communication happens on the UDS") and serve: a
 *   fault gets the page from MEMFILE at the mapping's offset (UFFDIO_COPY);
 *   a range named by UFFD_EVENT_REMOVE (the VMM's MADV_DONTNEED) is zeroed
 *   when touched again, as the document prescribes.  A page is what the
 *   handshake's page size says: 2 MiB pages (huge_pages 2M) are copied
 *   whole, as UFFDIO_COPY on hugetlb memory requires.  Like the handlers
 *   written for Firecracker 1.7-1.11 it takes its page size from
 *   "page_size_kib", which Firecracker fills with bytes; and it insists the
 *   VMM enabled UFFD_FEATURE_EVENT_REMOVE, as Firecracker does.
 * never: take the handshake, keep the socket open and never serve a fault.
 * Exit codes: 2 usage, 3 bad handshake, 4 uffd features, 5 serving failed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
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
#include <yajl/yajl_tree.h>

#define MAX_MAPS    64
#define MAX_REMOVED 4096

struct mapping {
	uint64_t base, size, offset;
};

static struct mapping maps[MAX_MAPS];
static unsigned int nmaps;
static uint64_t page_size;
static struct {
	uint64_t start, end;
} removed[MAX_REMOVED];
static unsigned int nremoved;

static void die(int code, const char *fmt, const char *arg)
{
	fprintf(stderr, "fc_uffd_handler: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(code);
}

static int get_u64(yajl_val o, const char *key, uint64_t *v)
{
	const char *path[] = {key, NULL};
	yajl_val x = yajl_tree_get(o, path, yajl_t_number);

	if (!x || !YAJL_IS_INTEGER(x) || YAJL_GET_INTEGER(x) < 0)
		return -1;
	*v = (uint64_t)YAJL_GET_INTEGER(x);
	return 0;
}

static void parse_mappings(char *json)
{
	char err[200];
	yajl_val root = yajl_tree_parse(json, err, sizeof(err));

	if (!root || !YAJL_IS_ARRAY(root) || !YAJL_GET_ARRAY(root)->len ||
	    YAJL_GET_ARRAY(root)->len > MAX_MAPS)
		die(3, "the mappings are not a JSON array: %s", json);
	for (size_t i = 0; i < YAJL_GET_ARRAY(root)->len; i++) {
		yajl_val o = YAJL_GET_ARRAY(root)->values[i];
		uint64_t ps = 0, kib = 0;
		int has_ps, has_kib;

		if (get_u64(o, "base_host_virt_addr", &maps[i].base) ||
		    get_u64(o, "size", &maps[i].size) || get_u64(o, "offset", &maps[i].offset))
			die(3, "a mapping lacks base_host_virt_addr, size or offset: %s", json);
		has_ps = !get_u64(o, "page_size", &ps);
		has_kib = !get_u64(o, "page_size_kib", &kib);
		/* the field production handlers of 1.7-1.11 read: bytes */
		ps = has_kib ? kib : has_ps ? ps : 4096;
		if (has_kib && has_ps && kib != ps)
			die(3, "page_size and page_size_kib differ: %s", json);
		if (ps < 4096 || (ps & (ps - 1)))
			die(3, "page size is not a power of two of at least 4096 bytes: %s", json);
		if (page_size && ps != page_size)
			die(3, "mappings have different page sizes: %s", json);
		page_size = ps;
		nmaps++;
	}
	yajl_tree_free(root);
}

/* The VMM must have asked for UFFD_FEATURE_EVENT_REMOVE; the kernel shows a
 * userfaultfd's features in fdinfo ("API:\t<api>:<features>:<ioctls>"). */
static void check_features(int uffd)
{
	char path[64], line[256];
	unsigned long long api = 0, features = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", uffd);
	f = fopen(path, "r");
	if (!f)
		die(4, "cannot read %s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "API:\t%llx:%llx", &api, &features) == 2)
			break;
	fclose(f);
	if (!(features & UFFD_FEATURE_EVENT_REMOVE))
		die(4, "%s", "the VMM did not enable UFFD_FEATURE_EVENT_REMOVE");
}

static int receive(int conn)
{
	static char buf[16384];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, sizeof(buf) - 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	ssize_t n = recvmsg(conn, &mh, 0);
	int fd = -1;

	if (n <= 0)
		die(3, "%s", "no handshake received");
	buf[n] = 0;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (fd < 0)
		die(3, "no userfaultfd came with: %s", buf);
	parse_mappings(buf);
	return fd;
}

static int is_removed(uint64_t a)
{
	for (unsigned int i = 0; i < nremoved; i++)
		if (a >= removed[i].start && a < removed[i].end)
			return 1;
	return 0;
}

/* 0 served, 1 retry later (EAGAIN: an event is queued), exits on errors */
static int serve_fault(int uffd, const uint8_t *mem, uint64_t mem_size, uint64_t addr)
{
	uint64_t page = addr & ~(page_size - 1);
	int rc;

	for (unsigned int i = 0; i < nmaps; i++) {
		const struct mapping *m = &maps[i];

		if (page < m->base || page >= m->base + m->size)
			continue;
		if (is_removed(page) && page_size == 4096) {
			struct uffdio_zeropage z = {.range = {page, page_size}};

			rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
		} else if (is_removed(page)) { /* hugetlb has no ZEROPAGE: copy zeros */
			static uint8_t *zero;
			struct uffdio_copy c = {.dst = page, .len = page_size};

			if (!zero && !(zero = calloc(1, page_size)))
				die(5, "%s", "out of memory");
			c.src = (uint64_t)(uintptr_t)zero;
			rc = ioctl(uffd, UFFDIO_COPY, &c);
		} else {
			uint64_t src = m->offset + (page - m->base);
			struct uffdio_copy c = {.dst = page, .len = page_size};

			if (src + page_size > mem_size)
				die(5, "%s", "a fault beyond the memory file");
			c.src = (uint64_t)(uintptr_t)(mem + src);
			rc = ioctl(uffd, UFFDIO_COPY, &c);
		}
		if (rc < 0 && errno == EAGAIN)
			return 1;
		if (rc < 0 && errno == EEXIST) {
			struct uffdio_range r = {page, page_size};

			ioctl(uffd, UFFDIO_WAKE, &r);
			return 0;
		}
		if (rc < 0)
			die(5, "UFFDIO_COPY/ZEROPAGE failed: %s", strerror(errno));
		return 0;
	}
	die(5, "%s", "a fault outside every mapping");
	return 0;
}

static void serve(int uffd, const uint8_t *mem, uint64_t mem_size)
{
	static uint64_t deferred[1024];
	unsigned int ndef = 0;

	for (;;) {
		struct pollfd p = {uffd, POLLIN, 0};
		struct uffd_msg msg;
		unsigned int keep = 0;

		if (poll(&p, 1, ndef ? 10 : -1) < 0 && errno != EINTR)
			die(5, "poll: %s", strerror(errno));
		/* read everything queued: a pending REMOVE blocks every ioctl */
		while (read(uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
			if (msg.event == UFFD_EVENT_REMOVE) {
				if (nremoved == MAX_REMOVED)
					die(5, "%s", "too many removed ranges");
				removed[nremoved].start = msg.arg.remove.start;
				removed[nremoved++].end = msg.arg.remove.end;
			} else if (msg.event == UFFD_EVENT_PAGEFAULT && ndef < 1024) {
				deferred[ndef++] = msg.arg.pagefault.address;
			}
		}
		for (unsigned int i = 0; i < ndef; i++)
			if (serve_fault(uffd, mem, mem_size, deferred[i]))
				deferred[keep++] = deferred[i];
		ndef = keep;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int ls, conn, uffd, memfd;
	const uint8_t *mem;
	uint64_t total = 0;

	if (argc != 4 || (strcmp(argv[1], "serve") && strcmp(argv[1], "never")) ||
	    strlen(argv[2]) >= sizeof(sa.sun_path))
		die(2, "%s", "usage: fc_uffd_handler serve|never SOCKET MEMFILE");
	signal(SIGPIPE, SIG_IGN);
	memfd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (memfd < 0 || fstat(memfd, &st))
		die(2, "cannot open %s", argv[3]);
	mem = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (mem == MAP_FAILED)
		die(2, "cannot map %s", argv[3]);
	strcpy(sa.sun_path, argv[2]);
	unlink(argv[2]);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1))
		die(2, "cannot listen on %s", argv[2]);
	conn = accept(ls, NULL, NULL);
	if (conn < 0)
		die(2, "%s", "accept failed");
	uffd = receive(conn);
	for (unsigned int i = 0; i < nmaps; i++)
		total += maps[i].size;
	if (total != (uint64_t)st.st_size) /* as Firecracker's example handler */
		die(3, "the mappings do not cover the memory file %s", argv[3]);
	check_features(uffd);
	fprintf(stderr, "fc_uffd_handler: %u mapping(s), page size %llu, %s\n", nmaps,
		(unsigned long long)page_size, argv[1]);
	close(ls);
	if (!strcmp(argv[1], "never")) /* the socket stays open: only the uffd is ignored */
		for (;;)
			pause();
	close(conn);
	serve(uffd, mem, (uint64_t)st.st_size);
	return 0;
}
