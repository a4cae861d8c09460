/* The vhost-user frontend's side of the wire (QEMU docs/interop/vhost-user.rst):
 * message encoding, fds over SCM_RIGHTS, and replies read with a deadline
 * and checked field by field before use (vhost_user.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"

/* ---- encoding ---------------------------------------------------------- */

static void put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get64(const uint8_t *b)
{
	return (uint64_t)get32(b) | (uint64_t)get32(b + 4) << 32;
}

void sqb_vhu_hdr_encode(uint8_t b[SQB_VHU_HDR_LEN], const struct sqb_vhu_hdr *h)
{
	put32(b, h->request);
	put32(b + 4, h->flags);
	put32(b + 8, h->size);
}

void sqb_vhu_hdr_decode(const uint8_t b[SQB_VHU_HDR_LEN], struct sqb_vhu_hdr *h)
{
	h->request = get32(b);
	h->flags = get32(b + 4);
	h->size = get32(b + 8);
}

size_t sqb_vhu_mem_encode(uint8_t *b, size_t cap, const struct sqb_vhu_mem_region *r,
			  unsigned int n)
{
	size_t len = 8 + (size_t)n * SQB_VHU_REGION_LEN;

	if (n == 0 || n > SQB_VHU_MAX_REGIONS || cap < len)
		return 0;
	put32(b, n);
	put32(b + 4, 0); /* padding */
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *p = b + 8 + (size_t)i * SQB_VHU_REGION_LEN;

		put64(p, r[i].gpa);
		put64(p + 8, r[i].size);
		put64(p + 16, r[i].uaddr);
		put64(p + 24, r[i].mmap_offset);
	}
	return len;
}

void sqb_vhu_vring_addr_encode(uint8_t b[SQB_VHU_VRING_ADDR_LEN], uint32_t index, uint32_t flags,
			       uint64_t desc, uint64_t used, uint64_t avail, uint64_t log)
{
	put32(b, index);
	put32(b + 4, flags);
	put64(b + 8, desc);
	put64(b + 16, used);
	put64(b + 24, avail);
	put64(b + 32, log);
}

int sqb_vhu_check_reply(const struct sqb_vhu_hdr *h, uint32_t request, uint32_t want_size,
			char *why, size_t len)
{
	if ((h->flags & SQB_VHU_VERSION_MASK) != SQB_VHU_VERSION) {
		snprintf(why, len, "reply to request %u has version %u, not 1", request,
			 h->flags & SQB_VHU_VERSION_MASK);
		return -EPROTO;
	}
	if (!(h->flags & SQB_VHU_FLAG_REPLY)) {
		snprintf(why, len, "reply to request %u lacks the REPLY flag (flags 0x%x)", request,
			 h->flags);
		return -EPROTO;
	}
	if (h->request != request) {
		snprintf(why, len, "reply names request %u, %u was asked", h->request, request);
		return -EPROTO;
	}
	if (h->size != want_size) {
		snprintf(why, len, "reply to request %u has %u payload bytes, expected %u", request,
			 h->size, want_size);
		return -EPROTO;
	}
	return 0;
}

/* ---- the connection ---------------------------------------------------- */

static int fail(sqb_vhu *c, int err, char *why, size_t wlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(sqb_vhu *c, int err, char *why, size_t wlen, const char *fmt, ...)
{
	va_list ap;

	if (!c->broken) {
		c->broken = err;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
	}
	if (why && wlen)
		snprintf(why, wlen, "%s", c->why);
	return c->broken;
}

int sqb_vhu_from_fd(sqb_vhu **out, int fd, int timeout_ms)
{
	sqb_vhu *c;
	int fl;

	*out = NULL;
	if (fd < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = -errno;

		free(c);
		return e;
	}
	c->fd = fd;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : SQB_VHU_DEFAULT_TIMEOUT_MS;
	*out = c;
	return 0;
}

int sqb_vhu_connect(sqb_vhu **out, const char *path, int timeout_ms, char *why, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, err;

	*out = NULL;
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, len,
			 "Failed to connect to UDS Unix stream: the socket path is "
			 "longer than %zu bytes",
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = errno;
		snprintf(why, len, "Failed to connect to UDS Unix stream: %s (os error %d)",
			 strerror(err), err);
		return -err;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		/* a Unix socket connects at once or not at all (EAGAIN: the
		 * backend's backlog is full, it accepts nobody) */
		snprintf(why, len, "Failed to connect to UDS Unix stream: %s (os error %d)",
			 strerror(err), err);
		close(fd);
		return -err;
	}
	err = sqb_vhu_from_fd(out, fd, timeout_ms);
	if (err < 0) {
		snprintf(why, len, "Failed to connect to UDS Unix stream: %s", strerror(-err));
		close(fd);
	}
	return err;
}

void sqb_vhu_close(sqb_vhu *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int sqb_vhu_fd(const sqb_vhu *c)
{
	return c ? c->fd : -1;
}

const char *sqb_vhu_broken(const sqb_vhu *c)
{
	return c && c->broken ? c->why : NULL;
}

void sqb_vhu_set_reply_ack(sqb_vhu *c, int on)
{
	c->reply_ack = on;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on the socket until deadline: 0, -ETIMEDOUT, -errno. */
static int wait_io(sqb_vhu *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = events};
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0; /* readable, writable, or HUP/ERR: the I/O says which */
	}
}

static int send_all(sqb_vhu *c, const uint8_t *buf, size_t len, const int *fds, unsigned int nfds,
		    int64_t deadline)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * SQB_VHU_MAX_REGIONS)];
		struct cmsghdr align;
	} ctl;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = {(void *)(buf + off), len - off};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (nfds && off == 0) { /* the fds ride on the message's first byte */
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			m.msg_control = ctl.b;
			m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cm = CMSG_FIRSTHDR(&m);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int err = wait_io(c, POLLOUT, deadline);

			if (err < 0)
				return err;
			continue;
		}
		return n < 0 ? -errno : -EPIPE;
	}
	return 0;
}

/* Read exactly len bytes; fds that arrive are closed and counted. */
static int recv_all(sqb_vhu *c, uint8_t *buf, size_t len, unsigned int *nfds, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		union {
			char b[CMSG_SPACE(sizeof(int) * SQB_VHU_MAX_REGIONS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {buf + off, len - off};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl.b,
				   .msg_controllen = sizeof(ctl.b)};
		ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n >= 0) {
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
				if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
					continue;
				size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < k; i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
					close(fd);
					(*nfds)++;
				}
			}
			if (m.msg_flags & MSG_CTRUNC)
				(*nfds)++; /* more than we had room for: refused all the same */
		}
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int err = wait_io(c, POLLIN, deadline);

			if (err < 0)
				return err;
			continue;
		}
		return -errno;
	}
	return 0;
}

static const char *io_text(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return "no answer in time";
	case -ECONNRESET:
		return "the backend closed the connection";
	case -EPIPE:
		return "the backend is gone (broken pipe)";
	default:
		return strerror(-err);
	}
}

/* Read and check one reply of exactly want bytes into out. */
static int read_reply(sqb_vhu *c, uint32_t req, uint8_t *out, uint32_t want, int64_t deadline,
		      char *why, size_t wlen)
{
	uint8_t hb[SQB_VHU_HDR_LEN];
	struct sqb_vhu_hdr h;
	unsigned int nfds = 0;
	char text[160];
	int err;

	err = recv_all(c, hb, sizeof(hb), &nfds, deadline);
	if (err < 0)
		return fail(c, err, why, wlen, "request %u: reading the reply header: %s", req,
			    io_text(err));
	sqb_vhu_hdr_decode(hb, &h);
	if ((err = sqb_vhu_check_reply(&h, req, want, text, sizeof(text))) < 0)
		return fail(c, err, why, wlen, "%s", text);
	err = recv_all(c, out, want, &nfds, deadline);
	if (err < 0)
		return fail(c, err, why, wlen, "request %u: reading %u reply bytes: %s", req, want,
			    io_text(err));
	if (nfds)
		return fail(c, -EPROTO, why, wlen,
			    "reply to request %u carries %u fds, expected none", req, nfds);
	return 0;
}

int sqb_vhu_request(sqb_vhu *c, uint32_t req, const void *payload, uint32_t len, const int *fds,
		    unsigned int nfds, void *reply, uint32_t reply_len, char *why, size_t wlen)
{
	uint8_t buf[SQB_VHU_HDR_LEN + SQB_VHU_MAX_PAYLOAD];
	struct sqb_vhu_hdr h = {req, SQB_VHU_VERSION, len};
	int64_t deadline;
	int ack, err;

	if (!c)
		return -EINVAL;
	if (c->broken) {
		if (why && wlen)
			snprintf(why, wlen, "%s", c->why);
		return c->broken;
	}
	if (len > SQB_VHU_MAX_PAYLOAD || nfds > SQB_VHU_MAX_REGIONS ||
	    reply_len > SQB_VHU_MAX_PAYLOAD || (len && !payload))
		return -EINVAL; /* a caller's mistake: the connection stays usable */
	ack = !reply && c->reply_ack;
	if (ack)
		h.flags |= SQB_VHU_FLAG_NEED_REPLY;
	sqb_vhu_hdr_encode(buf, &h);
	if (len)
		memcpy(buf + SQB_VHU_HDR_LEN, payload, len);
	deadline = now_ms() + c->timeout_ms;
	err = send_all(c, buf, SQB_VHU_HDR_LEN + len, fds, nfds, deadline);
	if (err < 0)
		return fail(c, err, why, wlen, "request %u: sending: %s", req, io_text(err));
	if (reply)
		return read_reply(c, req, reply, reply_len, deadline, why, wlen);
	if (ack) {
		uint8_t a[8];

		if ((err = read_reply(c, req, a, 8, deadline, why, wlen)) < 0)
			return err;
		if (get64(a)) {
			/* a refusal is an answer: the stream is still in step */
			if (why && wlen)
				snprintf(why, wlen, "the backend refused request %u (ack %llu)",
					 req, (unsigned long long)get64(a));
			return -EIO;
		}
	}
	return 0;
}

int sqb_vhu_get_u64(sqb_vhu *c, uint32_t req, uint64_t *v, char *why, size_t wlen)
{
	uint8_t b[8];
	int err = sqb_vhu_request(c, req, NULL, 0, NULL, 0, b, 8, why, wlen);

	if (!err)
		*v = get64(b);
	return err;
}

int sqb_vhu_set_u64(sqb_vhu *c, uint32_t req, uint64_t v, char *why, size_t wlen)
{
	uint8_t b[8];

	put64(b, v);
	return sqb_vhu_request(c, req, b, 8, NULL, 0, NULL, 0, why, wlen);
}

int sqb_vhu_set_state(sqb_vhu *c, uint32_t req, uint32_t index, uint32_t num, char *why,
		      size_t wlen)
{
	uint8_t b[8];

	put32(b, index);
	put32(b + 4, num);
	return sqb_vhu_request(c, req, b, 8, NULL, 0, NULL, 0, why, wlen);
}

int sqb_vhu_get_vring_base(sqb_vhu *c, uint32_t index, uint32_t *num, char *why, size_t wlen)
{
	uint8_t b[8], r[8];
	int err;

	put32(b, index);
	put32(b + 4, 0);
	err = sqb_vhu_request(c, SQB_VHU_GET_VRING_BASE, b, 8, NULL, 0, r, 8, why, wlen);
	if (err < 0)
		return err;
	if (get32(r) != index)
		return fail(c, -EPROTO, why, wlen, "GET_VRING_BASE answered for vring %u, not %u",
			    get32(r), index);
	*num = get32(r + 4);
	return 0;
}

int sqb_vhu_set_vring_fd(sqb_vhu *c, uint32_t req, uint32_t index, int fd, char *why, size_t wlen)
{
	uint8_t b[8];

	put64(b, (uint64_t)(index & 0xff) | (fd < 0 ? SQB_VHU_VRING_NOFD : 0));
	return sqb_vhu_request(c, req, b, 8, fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, NULL, 0, why,
			       wlen);
}

int sqb_vhu_get_config(sqb_vhu *c, uint32_t size, uint8_t *out, char *why, size_t wlen)
{
	uint8_t b[12 + SQB_VHU_MAX_CONFIG], r[12 + SQB_VHU_MAX_CONFIG];
	int err;

	if (size == 0 || size > SQB_VHU_MAX_CONFIG)
		return -EINVAL;
	memset(b, 0, sizeof(b));
	put32(b, 0); /* offset */
	put32(b + 4, size);
	put32(b + 8, 0); /* flags: VHOST_SET_CONFIG_TYPE_FRONTEND */
	err =
	    sqb_vhu_request(c, SQB_VHU_GET_CONFIG, b, 12 + size, NULL, 0, r, 12 + size, why, wlen);
	if (err < 0)
		return err;
	if (get32(r) != 0 || get32(r + 4) != size)
		return fail(c, -EPROTO, why, wlen,
			    "GET_CONFIG answered offset %u size %u, asked offset 0 size %u",
			    get32(r), get32(r + 4), size);
	memcpy(out, r + 12, size);
	return 0;
}

int sqb_vhu_check_idle(sqb_vhu *c, char *why, size_t wlen)
{
	uint8_t b;
	ssize_t n;

	if (!c || c->broken)
		return c ? 1 : 0;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0) {
		fail(c, -ECONNRESET, why, wlen, "the backend closed the connection");
		return 1;
	}
	if (n > 0) {
		fail(c, -EPROTO, why, wlen, "the backend sent a message nobody asked for");
		return 1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	fail(c, -errno, why, wlen, "the backend's socket failed: %s", strerror(errno));
	return 1;
}
