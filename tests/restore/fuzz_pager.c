/* Fuzz target for squib-pager's side of the Firecracker Uffd handshake
 * (restore/pager/pager_proto.c): the input is the message a VMM sends, put
 * through a socketpair with an fd attached and received by sqb_pager_recv
 * like the pager does, then parsed by sqb_pager_parse.  Whatever the peer
 * sends, the parse ends in a clean refusal or in mappings that obey the
 * documented bounds (checked here).  Built as a libFuzzer target with
 * -DSQB_LIBFUZZER; otherwise main() replays a corpus folder and runs a
 * fixed-seed mutation pass with the virtio targets' replay driver. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_replay.h"
#include "pager_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_maps(const struct sqb_pager_map *m, unsigned int n)
{
	if (n == 0 || n > SQB_PAGER_MAX_MAPPINGS)
		abort();
	for (unsigned int i = 0; i < n; i++) {
		if (!m[i].size || m[i].size % 4096 || m[i].offset % 4096 ||
		    m[i].base_host_virt_addr % 4096 || m[i].page_size != 4096 ||
		    m[i].base_host_virt_addr + m[i].size < m[i].base_host_virt_addr ||
		    m[i].offset + m[i].size < m[i].offset)
			abort();
		if (m[i].has_ident &&
		    (strlen(m[i].mem_uuid) != 36 || strlen(m[i].mem_digest) != 32))
			abort();
	}
}

static void parse(const char *buf, size_t len)
{
	struct sqb_pager_map *maps = (struct sqb_pager_map *)1;
	unsigned int n = 7;
	char why[256] = "";

	if (sqb_pager_parse(buf, len, &maps, &n, why, sizeof(why)) == 0) {
		check_maps(maps, n);
	} else if (maps || n || !why[0] || strchr(why, '\n')) {
		abort(); /* a refusal leaves nothing behind and says why, on one line */
	}
	free(maps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[SQB_PAGER_MAX_MSG];
	char *exact;
	int sv[2], fd = -1;
	long got;

	if (size >= SQB_PAGER_MAX_MSG)
		return 0; /* one recvmsg: longer messages are cut, not parsed whole */
	/* Straight from an exact-size copy (ASan sees reads past the end)... */
	exact = malloc(size ? size : 1);
	if (!exact)
		return 0;
	memcpy(exact, data, size);
	parse(exact, size);
	free(exact);
	/* ...and the way squib-pager gets it: one message with an fd. */
	if (size == 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	{
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} c;
		struct iovec iov = {(void *)data, size};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = c.b,
				    .msg_controllen = sizeof(c.b)};
		int pass = sv[0];

		memset(c.b, 0, sizeof(c.b));
		c.h.cmsg_level = SOL_SOCKET;
		c.h.cmsg_type = SCM_RIGHTS;
		c.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&c.h), &pass, sizeof(int));
		if (sendmsg(sv[0], &mh, MSG_NOSIGNAL) == (ssize_t)size) {
			got = sqb_pager_recv(sv[1], buf, sizeof(buf), &fd);
			if (got < 0 || (size_t)got > size || buf[got] != 0)
				abort();
			if (fd < 0)
				abort(); /* the passed fd arrived */
			close(fd);
			parse(buf, (size_t)got);
		}
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}

#ifndef SQB_LIBFUZZER
static size_t aim(size_t n)
{
	return n ? (size_t)(vfz_next() % n) : 0;
}

int main(int argc, char **argv)
{
	return vfz_replay_main(argc, argv, "fuzz_pager", aim);
}
#endif
