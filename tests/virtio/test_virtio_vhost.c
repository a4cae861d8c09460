/* vhost-user frontend (runtime/virtio/vhost_user_proto.c, virtio_vhost_user.c):
 * known-answer encodings of the header, memory table and vring address;
 * replies checked against hostile backends (short, oversize, wrong id,
 * wrong version, fds attached, silence, a NACK) on a socketpair with a fake
 * backend thread; the block device's negotiation, its DRIVER_OK hand-over
 * (messages in Firecracker's order, one fd a region, the kick and call
 * fds), the config re-read with its interrupt, and the reset. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost_user.h"
#include "vio_test_util.h"

/* ---- known answers ---- */

static void test_header_known_bytes(void **state)
{
	const uint8_t want[12] = {0x18, 0, 0, 0, 0x09, 0, 0, 0, 0x48, 0, 0, 0};
	struct sqb_vhu_hdr h = {SQB_VHU_GET_CONFIG, SQB_VHU_VERSION | SQB_VHU_FLAG_NEED_REPLY, 72};
	uint8_t b[12];

	(void)state;
	sqb_vhu_hdr_encode(b, &h);
	assert_memory_equal(b, want, 12);
	memset(&h, 0, sizeof(h));
	sqb_vhu_hdr_decode(want, &h);
	assert_int_equal(h.request, 24);
	assert_int_equal(h.flags, 9);
	assert_int_equal(h.size, 72);
}

static void test_mem_table_known_bytes(void **state)
{
	struct sqb_vhu_mem_region r[9] = {
	    {0x1000, 0x2000, 0x7f0000000000ull, 0x40, 3},
	};
	uint8_t b[512], want[40] = {1, 0, 0, 0, 0, 0, 0, 0};

	(void)state;
	want[8 + 1] = 0x10;  /* gpa 0x1000 */
	want[16 + 1] = 0x20; /* size 0x2000 */
	want[24 + 5] = 0x7f; /* uaddr */
	want[32] = 0x40;     /* mmap offset */
	assert_int_equal(sqb_vhu_mem_encode(b, sizeof(b), r, 1), 40);
	assert_memory_equal(b, want, 40);
	assert_int_equal(sqb_vhu_mem_encode(b, sizeof(b), r, 0), 0);
	assert_int_equal(sqb_vhu_mem_encode(b, sizeof(b), r, 9), 0); /* the protocol's 8 */
	assert_int_equal(sqb_vhu_mem_encode(b, 39, r, 1), 0);
}

static void test_vring_addr_known_bytes(void **state)
{
	uint8_t b[40], want[40] = {0};

	(void)state;
	want[0] = 2;	 /* index */
	want[8] = 0x11;	 /* desc */
	want[16] = 0x22; /* used comes before avail */
	want[24] = 0x33; /* avail */
	want[32] = 0x44; /* log */
	sqb_vhu_vring_addr_encode(b, 2, 0, 0x11, 0x22, 0x33, 0x44);
	assert_memory_equal(b, want, 40);
}

static void test_reply_checks_name_the_field(void **state)
{
	struct sqb_vhu_hdr ok = {1, SQB_VHU_VERSION | SQB_VHU_FLAG_REPLY, 8}, h;
	char why[160];

	(void)state;
	assert_int_equal(sqb_vhu_check_reply(&ok, 1, 8, why, sizeof(why)), 0);
	h = ok, h.flags = SQB_VHU_VERSION;
	assert_int_equal(sqb_vhu_check_reply(&h, 1, 8, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "REPLY flag"));
	h = ok, h.flags = 2 | SQB_VHU_FLAG_REPLY;
	assert_int_equal(sqb_vhu_check_reply(&h, 1, 8, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version 2"));
	h = ok, h.request = 15;
	assert_int_equal(sqb_vhu_check_reply(&h, 1, 8, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "names request 15, 1 was asked"));
	h = ok, h.size = 0xfffffff0u;
	assert_int_equal(sqb_vhu_check_reply(&h, 1, 8, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "expected 8"));
}

/* ---- a fake backend on a socketpair ---- */

enum fake_mode {
	FK_GOOD = 0,
	FK_SHORT,      /* half a header, then close */
	FK_OVERSIZE,   /* a header claiming 256 MiB */
	FK_WRONG_ID,   /* answers another request */
	FK_FDS,	       /* a valid reply carrying an fd */
	FK_SILENT,     /* reads, never answers */
	FK_NACK,       /* REPLY_ACK answered 1 */
	FK_BAD_CONFIG, /* GET_CONFIG echoes another size */
	FK_BAD_BASE,   /* GET_VRING_BASE for another vring */
};

#define FK_MAX_MSGS 64

struct fake {
	int fd;
	enum fake_mode mode;
	uint64_t features, pf;
	uint8_t config[SQB_VHU_BLK_CONFIG_LEN];
	pthread_t th;
	/* what arrived */
	unsigned int n;
	uint32_t req[FK_MAX_MSGS], flags[FK_MAX_MSGS], nfds[FK_MAX_MSGS];
	uint8_t payload[FK_MAX_MSGS][SQB_VHU_MAX_PAYLOAD];
	uint32_t size[FK_MAX_MSGS];
};

static int read_full(int fd, uint8_t *b, size_t len, unsigned int *nfds)
{
	size_t off = 0;

	while (off < len) {
		char ctl[CMSG_SPACE(sizeof(int) * 8)];
		struct iovec iov = {b + off, len - off};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl,
				   .msg_controllen = sizeof(ctl)};
		ssize_t n = recvmsg(fd, &m, 0);

		if (n <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int f;
				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(f);
				(*nfds)++;
			}
		}
		off += (size_t)n;
	}
	return 0;
}

static void reply(struct fake *f, uint32_t req, const void *p, uint32_t len, int with_fd)
{
	uint8_t b[12 + SQB_VHU_MAX_PAYLOAD];
	struct sqb_vhu_hdr h = {req, SQB_VHU_VERSION | SQB_VHU_FLAG_REPLY, len};
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {b, 12 + len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	int efd = -1;

	sqb_vhu_hdr_encode(b, &h);
	memcpy(b + 12, p, len);
	if (with_fd) {
		struct cmsghdr *c;

		efd = eventfd(0, EFD_CLOEXEC);
		memset(ctl, 0, sizeof(ctl));
		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &efd, sizeof(int));
	}
	(void)!sendmsg(f->fd, &m, MSG_NOSIGNAL);
	if (efd >= 0)
		close(efd);
}

static void reply_u64(struct fake *f, uint32_t req, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	reply(f, req, b, 8, 0);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		uint8_t hb[12], p[SQB_VHU_MAX_PAYLOAD];
		struct sqb_vhu_hdr h;
		unsigned int nfds = 0, i;

		if (read_full(f->fd, hb, 12, &nfds) < 0)
			break;
		sqb_vhu_hdr_decode(hb, &h);
		if (h.size > sizeof(p) || read_full(f->fd, p, h.size, &nfds) < 0)
			break;
		if (f->n < FK_MAX_MSGS) {
			i = f->n++;
			f->req[i] = h.request, f->flags[i] = h.flags, f->nfds[i] = nfds;
			f->size[i] = h.size;
			memcpy(f->payload[i], p, h.size);
		}
		switch (f->mode) {
		case FK_SHORT:
			(void)!write(f->fd, hb, 6);
			shutdown(f->fd, SHUT_WR); /* dies mid-reply */
			goto out;
		case FK_OVERSIZE: {
			struct sqb_vhu_hdr bad = {h.request, SQB_VHU_VERSION | SQB_VHU_FLAG_REPLY,
						  256u << 20};
			sqb_vhu_hdr_encode(hb, &bad);
			(void)!write(f->fd, hb, 12);
			continue;
		}
		case FK_WRONG_ID:
			reply_u64(f, h.request + 1, 0);
			continue;
		case FK_SILENT:
			continue;
		default:
			break;
		}
		switch (h.request) {
		case SQB_VHU_GET_FEATURES:
			if (f->mode == FK_FDS)
				reply(f, h.request, "\0\0\0\0\0\0\0\0", 8, 1);
			else
				reply_u64(f, h.request, f->features);
			continue;
		case SQB_VHU_GET_PROTOCOL_FEATURES:
			reply_u64(f, h.request, f->pf);
			continue;
		case SQB_VHU_GET_CONFIG: {
			uint8_t c[12 + SQB_VHU_MAX_CONFIG];
			uint32_t sz = h.size - 12;

			memcpy(c, p, 12);
			memcpy(c + 12, f->config, sz <= sizeof(f->config) ? sz : sizeof(f->config));
			if (f->mode == FK_BAD_CONFIG)
				c[4] ^= 1;
			reply(f, h.request, c, h.size, 0);
			continue;
		}
		case SQB_VHU_GET_VRING_BASE:
			if (f->mode == FK_BAD_BASE)
				p[0] ^= 1;
			reply(f, h.request, p, 8, 0);
			continue;
		default:
			if (h.flags & SQB_VHU_FLAG_NEED_REPLY)
				reply_u64(f, h.request, f->mode == FK_NACK ? 1 : 0);
		}
	}
out:
	return NULL;
}

/* A frontend connection (timeout 300 ms) to a fake in mode. */
static sqb_vhu *fake_start(struct fake *f, enum fake_mode mode)
{
	int sv[2];
	sqb_vhu *c = NULL;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[1];
	assert_int_equal(sqb_vhu_from_fd(&c, sv[0], 300), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	return c;
}

/* A fake listening on path: it accepts one client, then answers as
 * fake_main (for sqb_vio_vhost_blk_open, which connects by path). */
struct listener {
	struct fake *f;
	int lfd;
};

static void *accept_main(void *arg)
{
	struct listener *l = arg;

	l->f->fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);
	close(l->lfd);
	if (l->f->fd >= 0)
		fake_main(l->f);
	free(l);
	return NULL;
}

static void fake_listen(struct fake *f, const char *path, uint64_t features, uint64_t pf)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct listener *l = calloc(1, sizeof(*l));

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->features = features;
	f->pf = pf;
	f->config[1] = 0x08; /* capacity 2048 sectors */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	l->f = f;
	l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(l->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l->lfd, 1), 0);
	assert_int_equal(pthread_create(&f->th, NULL, accept_main, l), 0);
}

static void fake_stop(struct fake *f, sqb_vhu *c)
{
	sqb_vhu_close(c); /* the fake reads EOF and ends */
	pthread_join(f->th, NULL);
	close(f->fd);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* One GET_FEATURES against a hostile fake: the error, the reason, and the
 * connection broken for good (the next request fails the same way). */
static void hostile(enum fake_mode mode, int want_err, const char *want_why)
{
	struct fake f;
	sqb_vhu *c;
	uint64_t v = 0;
	char why[200] = "";
	int before = count_fds();

	c = fake_start(&f, mode);
	assert_int_equal(sqb_vhu_get_u64(c, SQB_VHU_GET_FEATURES, &v, why, sizeof(why)), want_err);
	if (!strstr(why, want_why))
		fail_msg("reason '%s' lacks '%s'", why, want_why);
	assert_non_null(sqb_vhu_broken(c));
	why[0] = 0;
	assert_int_equal(sqb_vhu_get_u64(c, SQB_VHU_GET_FEATURES, &v, why, sizeof(why)), want_err);
	assert_non_null(strstr(why, want_why));
	fake_stop(&f, c);
	assert_int_equal(count_fds(), before); /* nothing leaked, fds sent to us included */
}

static void test_hostile_short_reply(void **state)
{
	(void)state;
	hostile(FK_SHORT, -ECONNRESET, "closed the connection");
}

static void test_hostile_oversize_reply(void **state)
{
	(void)state;
	hostile(FK_OVERSIZE, -EPROTO, "268435456 payload bytes, expected 8");
}

static void test_hostile_wrong_request_id(void **state)
{
	(void)state;
	hostile(FK_WRONG_ID, -EPROTO, "names request 2, 1 was asked");
}

static void test_hostile_reply_with_fds(void **state)
{
	(void)state;
	hostile(FK_FDS, -EPROTO, "carries 1 fds, expected none");
}

static void test_hostile_silence_times_out(void **state)
{
	(void)state;
	hostile(FK_SILENT, -ETIMEDOUT, "no answer in time");
}

static void test_hostile_config_and_vring_base_echo(void **state)
{
	struct fake f;
	sqb_vhu *c;
	uint8_t cfg[SQB_VHU_BLK_CONFIG_LEN];
	uint32_t base;
	char why[200] = "";

	(void)state;
	c = fake_start(&f, FK_BAD_CONFIG);
	assert_int_equal(sqb_vhu_get_config(c, sizeof(cfg), cfg, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "asked offset 0 size 60"));
	fake_stop(&f, c);
	c = fake_start(&f, FK_BAD_BASE);
	assert_int_equal(sqb_vhu_get_vring_base(c, 0, &base, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "vring 1, not 0"));
	fake_stop(&f, c);
	/* a caller's bad size never reaches the wire */
	c = fake_start(&f, FK_GOOD);
	assert_int_equal(sqb_vhu_get_config(c, SQB_VHU_MAX_CONFIG + 1, cfg, why, sizeof(why)),
			 -EINVAL);
	assert_null(sqb_vhu_broken(c));
	fake_stop(&f, c);
	assert_int_equal(f.n, 0);
}

/* A refused request (ack 1) is an answer: -EIO, the stream still in step. */
static void test_nack_keeps_the_connection(void **state)
{
	struct fake f;
	sqb_vhu *c;
	char why[200] = "";

	(void)state;
	c = fake_start(&f, FK_NACK);
	sqb_vhu_set_reply_ack(c, 1);
	assert_int_equal(sqb_vhu_set_u64(c, SQB_VHU_SET_FEATURES, 1, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "refused request 2"));
	assert_null(sqb_vhu_broken(c));
	assert_int_equal(sqb_vhu_set_u64(c, SQB_VHU_SET_FEATURES, 1, why, sizeof(why)), -EIO);
	fake_stop(&f, c);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.flags[0], SQB_VHU_VERSION | SQB_VHU_FLAG_NEED_REPLY);
}

static void test_idle_socket_checks(void **state)
{
	struct fake f;
	sqb_vhu *c;
	char why[200] = "";

	(void)state;
	c = fake_start(&f, FK_GOOD);
	assert_int_equal(sqb_vhu_check_idle(c, why, sizeof(why)), 0);
	shutdown(f.fd, SHUT_RDWR); /* the backend goes (its thread reads EOF) */
	pthread_join(f.th, NULL);
	assert_int_equal(sqb_vhu_check_idle(c, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "closed the connection"));
	sqb_vhu_close(c);
	close(f.fd);
	/* a backend talking out of turn */
	c = fake_start(&f, FK_GOOD);
	reply_u64(&f, SQB_VHU_GET_FEATURES, 0);
	assert_int_equal(sqb_vhu_check_idle(c, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "nobody asked for"));
	fake_stop(&f, c);
}

/* ---- the block device against a well-behaved fake ---- */

#define VHB_F_ALL                                                                                  \
	(1ull << 32 | 1ull << 29 | 1ull << 28 | 1ull << 30 | 1ull << 5 | 1ull << 9 | 1ull << 2 |   \
	 1ull << 6)

struct io_fx {
	int memfd, kick, call;
};

static int fx_regions(void *opaque, struct sqb_vio_vhost_region *out, unsigned int max)
{
	struct io_fx *x = opaque;

	assert_true(max >= 1);
	out[0] = (struct sqb_vio_vhost_region){0, VT_R0_SIZE, 0, (uint8_t *)0x10000, x->memfd};
	return 1;
}

static int fx_fds(void *opaque, unsigned int q, int *kick, int *call)
{
	struct io_fx *x = opaque;

	assert_int_equal(q, 0);
	*kick = x->kick, *call = x->call;
	return 0;
}

static void test_blk_negotiation_and_activation(void **state)
{
	static const uint32_t want_seq[] = {
	    SQB_VHU_SET_OWNER,
	    SQB_VHU_GET_FEATURES,
	    SQB_VHU_GET_PROTOCOL_FEATURES,
	    SQB_VHU_SET_PROTOCOL_FEATURES,
	    SQB_VHU_GET_CONFIG,
	    SQB_VHU_SET_FEATURES,
	    SQB_VHU_SET_MEM_TABLE,
	    SQB_VHU_SET_VRING_NUM,
	    SQB_VHU_SET_VRING_ADDR,
	    SQB_VHU_SET_VRING_BASE,
	    SQB_VHU_SET_VRING_CALL,
	    SQB_VHU_SET_VRING_KICK,
	    SQB_VHU_SET_VRING_ENABLE,
	};
	struct io_fx x = {memfd_create("vt", MFD_CLOEXEC), eventfd(0, EFD_CLOEXEC),
			  eventfd(0, EFD_CLOEXEC)};
	struct vt_env e;
	struct vt_drv d;
	struct fake f;
	sqb_vio_dev *dev = NULL;
	sqb_vhu *c = NULL;
	char why[200] = "", path[108];
	uint64_t feat;

	(void)state;
	vt_env_init(&e);
	snprintf(path, sizeof(path), "/tmp/sqb-vhu-test-%d.sock", (int)getpid());
	fake_listen(&f, path, VHB_F_ALL,
		    1ull << SQB_VHU_PF_CONFIG | 1ull << SQB_VHU_PF_REPLY_ACK |
			1ull << SQB_VHU_PF_MQ);
	/* cache_type Unsafe: no FLUSH asked for; MQ never acked */
	assert_int_equal(sqb_vio_vhost_blk_open(&c, path, 0, 300, why, sizeof(why)), 0);
	unlink(path);
	assert_int_equal(c->features, 1ull << 32 | 1ull << 29 | 1ull << 30 | 1ull << 5);
	assert_int_equal(c->protocol_features,
			 1ull << SQB_VHU_PF_CONFIG | 1ull << SQB_VHU_PF_REPLY_ACK);
	assert_int_equal(f.payload[3][0], 1u << 3); /* SET_PROTOCOL_FEATURES: REPLY_ACK */
	assert_int_equal(f.payload[3][1], 1u << 1); /* and CONFIG (bit 9) */
	assert_int_equal(f.size[4], 12 + 60);	    /* GET_CONFIG of 60 bytes */
	assert_true(sqb_vio_vhost_read_only(c));
	{
		struct sqb_vio_vhost_blk_opts o = {
		    SQB_VIO_OPTS_VERSION, c, "t", {&x, fx_regions, fx_fds}};

		assert_int_equal(sqb_vio_vhost_blk_new(&dev, &e.host, &o, NULL), 0);
	}
	assert_int_equal(sqb_vio_device_id(dev), 2);
	/* offered: VERSION_1, EVENT_IDX, RO; never PROTOCOL_FEATURES or
	 * INDIRECT_DESC (Firecracker's AVAILABLE_FEATURES) */
	vt_w32(dev, 0x14, 0);
	feat = vt_r32(dev, 0x10);
	vt_w32(dev, 0x14, 1);
	feat |= (uint64_t)vt_r32(dev, 0x10) << 32;
	assert_int_equal(feat, 1ull << 32 | 1ull << 29 | 1ull << 5);
	assert_int_equal(vt_r32(dev, 0x100), 2048); /* capacity from GET_CONFIG */
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 1ull << 5) & 0x4, 0x4);
	assert_int_equal(sqb_vio_status(dev) & SQB_VIO_S_NEEDS_RESET, 0);
	assert_int_equal(f.n, sizeof(want_seq) / sizeof(want_seq[0]));
	for (unsigned int i = 0; i < f.n; i++)
		if (f.req[i] != want_seq[i])
			fail_msg("message %u is request %u, expected %u", i, f.req[i], want_seq[i]);
	/* SET_FEATURES: the driver's acks plus PROTOCOL_FEATURES */
	assert_int_equal(f.payload[5][0], 1u << 5);
	assert_int_equal(f.payload[5][3], 1u << 6); /* bit 30 */
	assert_int_equal(f.payload[5][4], 1);	    /* bit 32 */
	/* one region, one fd; the ring's num; kick and call with an fd each */
	assert_int_equal(f.nfds[6], 1);
	assert_int_equal(f.payload[6][0], 1);
	assert_int_equal(f.payload[7][4], 8);
	assert_int_equal(f.nfds[10], 1);
	assert_int_equal(f.nfds[11], 1);
	assert_int_equal(f.payload[11][1] & 1, 0); /* bit 8 clear: an fd rides along */
	/* with REPLY_ACK, requests without their own reply asked for an ack */
	assert_int_equal(f.flags[6], SQB_VHU_VERSION | SQB_VHU_FLAG_NEED_REPLY);
	/* the backend raises vring interrupts itself: ISR reads VRING */
	assert_int_equal(vt_r32(dev, 0x60), SQB_VIO_INT_VRING);

	/* PATCH: the config again, and a config-change interrupt */
	f.config[1] = 0x10;
	e.irqs = 0;
	assert_int_equal(sqb_vio_vhost_blk_config_update(dev, why, sizeof(why)), 0);
	assert_int_equal(vt_r32(dev, 0x100), 4096);
	assert_int_equal(vt_r32(dev, 0x60), SQB_VIO_INT_CONFIG);
	assert_true(e.irqs >= 1);

	/* reset: the ring taken back */
	f.n = 0;
	vt_w32(dev, 0x70, 0);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.req[0], SQB_VHU_SET_VRING_ENABLE);
	assert_int_equal(f.payload[0][4], 0);
	assert_int_equal(f.req[1], SQB_VHU_GET_VRING_BASE);

	/* a snapshot is refused by the device itself */
	{
		uint8_t *st = NULL;
		size_t len = 0;

		assert_int_equal(sqb_vio_dev_save(dev, &st, &len), -ENOTSUP);
		assert_null(st);
	}
	sqb_vio_dev_free(dev); /* closes the connection: the fake ends */
	pthread_join(f.th, NULL);
	close(f.fd);
	close(x.memfd), close(x.kick), close(x.call);
	vt_env_fini(&e);
}

/* The backend dies while it holds the ring: the device needs a reset, the
 * VMM keeps going, and a PATCH answers with the reason. */
static void test_blk_backend_gone(void **state)
{
	struct io_fx x = {memfd_create("vt", MFD_CLOEXEC), eventfd(0, EFD_CLOEXEC),
			  eventfd(0, EFD_CLOEXEC)};
	struct vt_env e;
	struct vt_drv d;
	struct fake f;
	sqb_vio_dev *dev = NULL;
	sqb_vhu *c;
	char why[200] = "";

	(void)state;
	vt_env_init(&e);
	c = fake_start(&f, FK_GOOD);
	c->features = 1ull << 32;
	{
		struct sqb_vio_vhost_blk_opts o = {
		    SQB_VIO_OPTS_VERSION, c, "t", {&x, fx_regions, fx_fds}};
		assert_int_equal(sqb_vio_vhost_blk_new(&dev, &e.host, &o, NULL), 0);
	}
	assert_int_equal(vt_drv_init(&d, &e, dev, 8, 0) & 0x4, 0x4);
	assert_int_equal(vt_r32(dev, 0x100), 0); /* no CONFIG: empty config space */
	shutdown(f.fd, SHUT_RDWR);
	pthread_join(f.th, NULL);
	assert_int_equal(sqb_vio_vhost_sock_ready(dev), 0);
	assert_true(sqb_vio_status(dev) & SQB_VIO_S_NEEDS_RESET);
	assert_non_null(sqb_vio_vhost_broken(dev));
	assert_int_equal(sqb_vio_vhost_blk_config_update(dev, why, sizeof(why)), -ENOTSUP);
	sqb_vio_dev_free(dev);
	close(f.fd);
	close(x.memfd), close(x.kick), close(x.call);
	vt_env_fini(&e);
}

/* Writeback asks for FLUSH; a backend without VERSION_1 is refused (the
 * transport is modern only); without PROTOCOL_FEATURES nothing more is
 * asked and config space stays empty. */
static void test_open_negotiation_variants(void **state)
{
	struct fake f;
	sqb_vhu *c = NULL;
	char why[300] = "", path[108];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/sqb-vhu-neg-%d.sock", (int)getpid());
	fake_listen(&f, path, VHB_F_ALL, 1ull << SQB_VHU_PF_CONFIG);
	assert_int_equal(sqb_vio_vhost_blk_open(&c, path, 1, 300, why, sizeof(why)), 0);
	assert_true(c->features >> 9 & 1);
	assert_int_equal(c->config_len, 60);
	fake_stop(&f, c);

	fake_listen(&f, path, VHB_F_ALL & ~(1ull << 32), 0);
	assert_int_equal(sqb_vio_vhost_blk_open(&c, path, 0, 300, why, sizeof(why)), -ENOTSUP);
	assert_null(c);
	assert_non_null(strstr(why, "does not offer VIRTIO_F_VERSION_1"));
	pthread_join(f.th, NULL);
	close(f.fd);

	fake_listen(&f, path, 1ull << 32, 0);
	assert_int_equal(sqb_vio_vhost_blk_open(&c, path, 1, 300, why, sizeof(why)), 0);
	assert_int_equal(c->features, 1ull << 32);
	assert_int_equal(c->protocol_features, 0);
	assert_int_equal(c->config_len, 0);
	assert_false(sqb_vio_vhost_read_only(c));
	fake_stop(&f, c);
	assert_int_equal(f.n, 2); /* SET_OWNER, GET_FEATURES: nothing else */
	unlink(path);
}

static void test_open_refuses_unreachable_socket(void **state)
{
	sqb_vhu *c = (sqb_vhu *)1;
	char why[300] = "";

	(void)state;
	assert_int_equal(
	    sqb_vio_vhost_blk_open(&c, "/nonexistent/vhu.sock", 0, 100, why, sizeof(why)), -ENOENT);
	assert_null(c);
	assert_string_equal(why, "Failed to connect to UDS Unix stream: No such file or directory "
				 "(os error 2)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_known_bytes),
	    cmocka_unit_test(test_mem_table_known_bytes),
	    cmocka_unit_test(test_vring_addr_known_bytes),
	    cmocka_unit_test(test_reply_checks_name_the_field),
	    cmocka_unit_test(test_hostile_short_reply),
	    cmocka_unit_test(test_hostile_oversize_reply),
	    cmocka_unit_test(test_hostile_wrong_request_id),
	    cmocka_unit_test(test_hostile_reply_with_fds),
	    cmocka_unit_test(test_hostile_silence_times_out),
	    cmocka_unit_test(test_hostile_config_and_vring_base_echo),
	    cmocka_unit_test(test_nack_keeps_the_connection),
	    cmocka_unit_test(test_idle_socket_checks),
	    cmocka_unit_test(test_blk_negotiation_and_activation),
	    cmocka_unit_test(test_blk_backend_gone),
	    cmocka_unit_test(test_open_negotiation_variants),
	    cmocka_unit_test(test_open_refuses_unreachable_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
