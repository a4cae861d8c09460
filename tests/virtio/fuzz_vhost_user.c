/* Fuzz target for the vhost-user frontend's reply handling
 * (runtime/virtio/vhost_user_proto.c): the input is everything a backend
 * sends back, written into the backend's end of a socketpair before the
 * frontend runs the block device's negotiation (SET_OWNER, GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, GET_CONFIG), a vring set-up (SET_VRING_NUM,
 * SET_VRING_KICK with an fd), a stop (GET_VRING_BASE) and the idle check.
 * Whatever the backend sends, each call ends in an answer checked field by
 * field or in a broken connection that says why, and a broken one stays
 * broken.  Input byte 0: bit 0 REPLY_ACK on, bit 1 an fd rides along with
 * the backend's bytes.  Built as a libFuzzer target with -DSQB_LIBFUZZER;
 * otherwise main() replays a corpus folder and runs a fixed-seed mutation
 * pass (tests/virtio/fuzz_replay.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_replay.h"
#include "vhost_user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* After each call: an error leaves the connection broken with a reason (a
 * backend's refusal, -EIO with the stream in step, excepted); a broken one
 * refuses everything after. */
static void check(sqb_vhu *c, int rc, const char *why, int *was_broken)
{
	const char *b = sqb_vhu_broken(c);

	if (rc > 0)
		abort();
	if (*was_broken && (!b || rc >= 0))
		abort();
	if (rc < 0 && rc != -EIO && (!b || !b[0] || !why[0]))
		abort();
	if (b && strchr(b, '\n'))
		abort();
	*was_broken = b != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t cfg[SQB_VHU_BLK_CONFIG_LEN];
	char why[256];
	uint64_t v = 0;
	uint32_t num = 0;
	int sv[2], ev, broken = 0, rc;
	sqb_vhu *c = NULL;

	if (size < 1 || size > 60000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	if (size > 1) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} cm;
		struct iovec iov = {(void *)(data + 1), size - 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		int pass = sv[1];

		if (data[0] & 2) {
			memset(cm.b, 0, sizeof(cm.b));
			cm.h.cmsg_level = SOL_SOCKET;
			cm.h.cmsg_type = SCM_RIGHTS;
			cm.h.cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(&cm.h), &pass, sizeof(int));
			mh.msg_control = cm.b;
			mh.msg_controllen = sizeof(cm.b);
		}
		if (sendmsg(sv[1], &mh, MSG_NOSIGNAL) != (ssize_t)(size - 1))
			abort();
	}
	shutdown(sv[1], SHUT_WR); /* then EOF: no call waits for its deadline */
	if (sqb_vhu_from_fd(&c, sv[0], 200))
		abort();
	sqb_vhu_set_reply_ack(c, data[0] & 1);

	why[0] = 0;
	rc = sqb_vhu_request(c, SQB_VHU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_get_u64(c, SQB_VHU_GET_FEATURES, &v, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_get_u64(c, SQB_VHU_GET_PROTOCOL_FEATURES, &v, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_set_u64(c, SQB_VHU_SET_PROTOCOL_FEATURES, v & 0x208, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_get_config(c, sizeof(cfg), cfg, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_set_state(c, SQB_VHU_SET_VRING_NUM, 0, 256, why, sizeof(why));
	check(c, rc, why, &broken);
	ev = eventfd(0, EFD_CLOEXEC);
	why[0] = 0;
	rc = sqb_vhu_set_vring_fd(c, SQB_VHU_SET_VRING_KICK, 0, ev, why, sizeof(why));
	check(c, rc, why, &broken);
	if (ev >= 0)
		close(ev);
	why[0] = 0;
	rc = sqb_vhu_get_vring_base(c, 0, &num, why, sizeof(why));
	check(c, rc, why, &broken);
	why[0] = 0;
	rc = sqb_vhu_check_idle(c, why, sizeof(why));
	if (rc != 0 && rc != 1)
		abort();
	if (getenv("SQB_FUZZ_TRACE"))
		fprintf(stderr, "features 0x%llx vring base %u idle %d: %s\n",
			(unsigned long long)v, num, rc,
			sqb_vhu_broken(c) ? sqb_vhu_broken(c) : "healthy");
	sqb_vhu_close(c); /* closes sv[0] */
	close(sv[1]);
	return 0;
}

#ifndef SQB_LIBFUZZER
static size_t aim(size_t n)
{
	/* the reply headers' flags and sizes */
	return n > 1 ? 1 + (size_t)(vfz_next() % (n - 1)) : 0;
}

int main(int argc, char **argv)
{
	return vfz_replay_main(argc, argv, "fuzz_vhost_user", aim);
}
#endif
