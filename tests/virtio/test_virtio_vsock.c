/* virtio-vsock against real Unix sockets in a temp dir: a fake guest driver
 * on three rings (rx, tx, event) speaks the packet format of virtio 1.x
 * 5.10.6, decoded here from the spec's offsets, not from squib's codec; the
 * host side is Firecracker's docs/vsock.md protocol. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "vio_test_mq.h"
#include "virtio_priv.h"

#define CID	  3u
#define RXSZ	  4096u
#define NRX	  32u
#define TXSLOT(h) (VT_R1_BASE + ((h) % 8) * 0x20000ull)

enum { REQUEST = 1, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST };

struct vs {
	struct vt_env e;
	struct mq_drv d;
	sqb_vio_dev *dev;
	char dir[64], uds[128];
};

/* virtio 1.x 5.10.6: struct virtio_vsock_hdr, little-endian, packed. */
struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
	uint8_t data[RXSZ];
};

static void rx_post(struct vs *t)
{
	uint16_t h = t->d.q[0].next_desc;
	struct vt_seg s = {MQ_BUF(0) + h * RXSZ, RXSZ, true};

	mq_add(&t->d, 0, &s, 1);
}

static void ev_post(struct vs *t)
{
	uint16_t h = t->d.q[2].next_desc;
	struct vt_seg s = {MQ_BUF(2) + h * 16ull, 4, true};

	memset(vt_ptr(&t->e, s.gpa), 0xee, 4);
	mq_add(&t->d, 2, &s, 1);
}

static void setup_dev(struct vs *t, unsigned int nrx)
{
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};

	o.guest_cid = CID;
	o.uds_path = t->uds;
	assert_int_equal(sqb_vio_vsock_new(&t->dev, &t->e.host, &o, &diag), 0);
	assert_int_equal(mq_init(&t->d, &t->e, t->dev, 3, 64, 0) & SQB_VIO_S_DRIVER_OK,
			 SQB_VIO_S_DRIVER_OK);
	for (unsigned int i = 0; i < nrx; i++)
		rx_post(t);
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 0);
	sqb_vio_queue_notify(t->dev, 2);
}

static int setup(void **state)
{
	struct vs *t = calloc(1, sizeof(*t));

	vt_env_init(&t->e);
	snprintf(t->dir, sizeof(t->dir), "/tmp/sqbvs.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->uds, sizeof(t->uds), "%s/v.sock", t->dir);
	setup_dev(t, NRX);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct vs *t = *state;
	char cmd[128];

	sqb_vio_dev_free(t->dev);
	vt_env_fini(&t->e);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	if (system(cmd))
		return -1;
	free(t);
	return 0;
}

static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t g64(const uint8_t *p)
{
	return g32(p) | (uint64_t)g32(p + 4) << 32;
}

/* One packet from the RX ring, decoded per the spec's table; reposts the
 * buffer. */
static bool rx_get(struct vs *t, struct pkt *p)
{
	uint32_t id, used;
	const uint8_t *b;

	if (!mq_used(&t->d, 0, &id, &used))
		return false;
	assert_true(used >= 44);
	b = vt_ptr(&t->e, MQ_BUF(0) + (id % 64) * RXSZ);
	p->src_cid = g64(b);
	p->dst_cid = g64(b + 8);
	p->src_port = g32(b + 16);
	p->dst_port = g32(b + 20);
	p->len = g32(b + 24);
	p->type = g16(b + 28);
	p->op = g16(b + 30);
	p->flags = g32(b + 32);
	p->buf_alloc = g32(b + 36);
	p->fwd_cnt = g32(b + 40);
	assert_int_equal(used, 44 + p->len);
	assert_true(p->len <= RXSZ - 44);
	memcpy(p->data, b + 44, p->len);
	/* Every packet is from the host to this guest. */
	assert_int_equal(p->src_cid, 2);
	assert_int_equal(p->dst_cid, CID);
	assert_int_equal(p->type, 1);
	rx_post(t);
	sqb_vio_queue_notify(t->dev, 0);
	return true;
}

static void put_hdr(uint8_t *b, uint64_t src_cid, uint64_t dst_cid, uint32_t sp, uint32_t dp,
		    uint32_t len, uint16_t type, uint16_t op, uint32_t flags, uint32_t buf_alloc,
		    uint32_t fwd)
{
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(src_cid >> (8 * i));
		b[8 + i] = (uint8_t)(dst_cid >> (8 * i));
	}
	for (int i = 0; i < 4; i++) {
		b[16 + i] = (uint8_t)(sp >> (8 * i));
		b[20 + i] = (uint8_t)(dp >> (8 * i));
		b[24 + i] = (uint8_t)(len >> (8 * i));
		b[32 + i] = (uint8_t)(flags >> (8 * i));
		b[36 + i] = (uint8_t)(buf_alloc >> (8 * i));
		b[40 + i] = (uint8_t)(fwd >> (8 * i));
	}
	b[28] = (uint8_t)type;
	b[29] = (uint8_t)(type >> 8);
	b[30] = (uint8_t)op;
	b[31] = (uint8_t)(op >> 8);
}

/* A raw TX packet: header descriptor, then payload descriptor (framing the
 * spec allows); returns after the device completed it. */
static void tx_raw(struct vs *t, const uint8_t *hdr, uint32_t hdr_len, const void *data,
		   uint32_t dlen)
{
	uint16_t h = t->d.q[1].next_desc;
	uint64_t g = TXSLOT(h);
	struct vt_seg s[2] = {{g, hdr_len, false}, {g + 64, dlen, false}};
	uint32_t id, len;

	memcpy(vt_ptr(&t->e, g), hdr, hdr_len);
	if (dlen)
		memcpy(vt_ptr(&t->e, g + 64), data, dlen);
	mq_add(&t->d, 1, s, dlen ? 2 : 1);
	sqb_vio_queue_notify(t->dev, 1);
	assert_true(mq_used(&t->d, 1, &id, &len));
	assert_false(sqb_vio_status(t->dev) & SQB_VIO_S_NEEDS_RESET);
}

static void tx(struct vs *t, uint16_t op, uint32_t sp, uint32_t dp, uint32_t flags,
	       uint32_t buf_alloc, uint32_t fwd, const void *data, uint32_t dlen)
{
	uint8_t h[44];

	put_hdr(h, CID, 2, sp, dp, dlen, 1, op, flags, buf_alloc, fwd);
	tx_raw(t, h, 44, data, dlen);
}

static void pump(struct vs *t)
{
	struct pollfd p = {sqb_vio_vsock_host_fd(t->dev), POLLIN, 0};

	poll(&p, 1, 10);
	sqb_vio_vsock_host_ready(t->dev);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Read exactly n bytes within a second. */
static void host_read(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;
		assert_int_equal(poll(&p, 1, 1000), 1);
		r = read(fd, (uint8_t *)buf + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

static bool host_eof(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	char c;

	return poll(&p, 1, 1000) == 1 && read(fd, &c, 1) == 0;
}

/* Closed by the device: EOF, or a reset when bytes it never read remain. */
static bool host_closed(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	char c;

	if (poll(&p, 1, 1000) != 1)
		return false;
	return read(fd, &c, 1) == 0 || errno == ECONNRESET;
}

/* Host-initiated: CONNECT <port> -> REQUEST, RESPONSE -> OK <host_port>. */
static uint32_t host_open(struct vs *t, int *hs, uint32_t gport)
{
	struct pkt *p = malloc(sizeof(*p));
	char line[32], want[32];
	int n;
	uint32_t hport;

	*hs = unix_connect(t->uds);
	n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	assert_int_equal(write(*hs, line, (size_t)n), n);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, REQUEST);
	assert_int_equal(p->dst_port, gport);
	assert_true(p->src_port >= 1u << 30);
	assert_int_equal(p->len, 0);
	hport = p->src_port;
	tx(t, RESPONSE, gport, hport, 0, 65536, 0, NULL, 0);
	n = snprintf(want, sizeof(want), "OK %u\n", hport);
	host_read(*hs, line, (size_t)n);
	assert_memory_equal(line, want, (size_t)n);
	free(p);
	return hport;
}

/* Pump the device until cond() holds or 4 s pass (Firecracker's kill
 * timers are 2 s: CONN_REQUEST_TIMEOUT_MS, CONN_SHUTDOWN_TIMEOUT_MS). */
static bool pump_until(struct vs *t, bool (*cond)(struct vs *, void *), void *arg)
{
	for (int i = 0; i < 400; i++) {
		if (cond(t, arg))
			return true;
		pump(t);
	}
	return cond(t, arg);
}

struct want_pkt {
	struct pkt *p;
	uint16_t op;
	uint32_t dst_port;
	int seen;
};

/* Consumes RX packets until one with op to dst_port arrives. */
static bool got_op(struct vs *t, void *a)
{
	struct want_pkt *w = a;

	while (rx_get(t, w->p))
		if (w->p->op == w->op && w->p->dst_port == w->dst_port) {
			w->seen++;
			break; /* w->p holds it */
		}
	return w->seen > 0;
}

static bool no_conns(struct vs *t, void *a)
{
	(void)a;
	return sqb_vio_vsock_num_conns(t->dev) == 0;
}

static void test_host_initiated(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	char buf[8];
	int hs;
	uint32_t hport = host_open(t, &hs, 1234);

	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	assert_int_equal(write(hs, "hello", 5), 5);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RW);
	assert_int_equal(p->src_port, hport);
	assert_int_equal(p->dst_port, 1234);
	assert_int_equal(p->len, 5);
	assert_memory_equal(p->data, "hello", 5);
	tx(t, RW, 1234, hport, 0, 65536, 5, "world", 5);
	host_read(hs, buf, 5);
	assert_memory_equal(buf, "world", 5);
	/* Guest close(): SHUTDOWN with both flags; the device answers RST and
	 * the host sees EOF (5.10.6.5). */
	tx(t, SHUTDOWN, 1234, hport, 3, 65536, 5, NULL, 0);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RST);
	assert_int_equal(p->dst_port, 1234);
	assert_true(host_eof(hs));
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	close(hs);
	free(p);
}

static void test_host_bad_command(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	/* Firecracker's read_local_stream_port refuses each.  A first word
	 * other than "connect" is refused before the line is complete. */
	const char *bad[] = {"CONNEC 5\n",	   "CONNECT  \n",
			     "CONNECT x\n",	   "CONNECT 4294967296\n",
			     "CONNECT -5\n",	   "CONNECT + 5\n",
			     "CONNECT \xff\xfe\n", "0123456789012345678901234567890123456789"};

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int hs = unix_connect(t->uds);
		assert_int_equal(write(hs, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		pump(t);
		if (!host_closed(hs))
			fail_msg("no EOF after bad command %u", i);
		assert_false(rx_get(t, p)); /* the guest never heard of it */
		close(hs);
	}
	/* Case-insensitive keyword, '+', words after the port, and a line
	 * that fills Firecracker's 32 bytes without a newline, whose rest is
	 * the guest's data: all as Firecracker parses them. */
	{
		static const struct {
			const char *line;
			uint32_t port;
		} good[] = {{"connect 77\n", 77},
			    {"CONNECT +52\n", 52},
			    {"CONNECT 5 6\n", 5},
			    {"CONNECT 52 and then some words!!ping", 52}};

		for (unsigned int i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			int hs = unix_connect(t->uds);
			size_t n = strlen(good[i].line);
			uint32_t hport;
			char buf[8];

			assert_int_equal(write(hs, good[i].line, n), (ssize_t)n);
			pump(t);
			assert_true(rx_get(t, p));
			assert_int_equal(p->op, REQUEST);
			assert_int_equal(p->dst_port, good[i].port);
			hport = p->src_port;
			tx(t, RESPONSE, good[i].port, hport, 0, 65536, 0, NULL, 0);
			n = (size_t)snprintf(buf, sizeof(buf), "OK ");
			host_read(hs, buf, n);
			if (i == 3) { /* the 4 bytes after the 32 reach the guest */
				struct want_pkt w = {p, RW, good[i].port, 0};

				assert_true(pump_until(t, got_op, &w));
				assert_int_equal(p->len, 4);
				assert_memory_equal(p->data, "ping", 4);
			}
			close(hs);
			tx(t, RST, good[i].port, hport, 0, 65536, 0, NULL, 0);
			while (rx_get(t, p))
				;
		}
	}
	free(p);
}

static void guest_open(struct vs *t, int ls, int *as, uint32_t gport, uint32_t hport,
		       uint32_t buf_alloc)
{
	struct pkt *p = malloc(sizeof(*p));

	tx(t, REQUEST, gport, hport, 0, buf_alloc, 0, NULL, 0);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RESPONSE);
	assert_int_equal(p->src_port, hport);
	assert_int_equal(p->dst_port, gport);
	*as = accept(ls, NULL, NULL);
	assert_true(*as >= 0);
	free(p);
}

static void test_guest_initiated(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	char path[160], buf[8];
	int ls, as;

	snprintf(path, sizeof(path), "%s_5000", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 777, 5000, 65536);
	tx(t, RW, 777, 5000, 0, 65536, 0, "ping", 4);
	host_read(as, buf, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(as, "pong", 4), 4);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RW);
	assert_memory_equal(p->data, "pong", 4);
	/* Host closes: the guest hears SHUTDOWN(SEND); its RST ends it. */
	close(as);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, SHUTDOWN);
	assert_int_equal(p->flags & 2, 2);
	tx(t, RST, 777, 5000, 0, 65536, 0, NULL, 0);
	assert_false(rx_get(t, p)); /* no answer to an RST */
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	/* Nobody listens on port 5001: RST. */
	tx(t, REQUEST, 778, 5001, 0, 65536, 0, NULL, 0);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RST);
	assert_int_equal(p->src_port, 5001);
	assert_int_equal(p->dst_port, 778);
	/* Guest RST on a live connection: the host sees EOF. */
	guest_open(t, ls, &as, 779, 5000, 65536);
	tx(t, RST, 779, 5000, 0, 65536, 0, NULL, 0);
	assert_true(host_eof(as));
	close(as);
	close(ls);
	free(p);
}

/* Host -> guest: the device sends no more than buf_alloc - (sent - fwd_cnt)
 * (5.10.6.3), asks for credit when stalled, resumes on CREDIT_UPDATE. */
static void test_credit_host_to_guest(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	uint8_t out[300], in[300];
	uint32_t got = 0, fwd = 0;
	char path[160];
	int ls, as;

	snprintf(path, sizeof(path), "%s_6000", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 800, 6000, 100);
	for (unsigned int i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(write(as, out, sizeof(out)), (ssize_t)sizeof(out));
	pump(t);
	for (int round = 0; round < 3; round++) {
		bool creq = false;
		while (rx_get(t, p)) {
			if (p->op == CREDIT_REQUEST) {
				creq = true;
				continue;
			}
			assert_int_equal(p->op, RW);
			assert_true(got + p->len <= fwd + 100);
			memcpy(in + got, p->data, p->len);
			got += p->len;
		}
		assert_int_equal(got, fwd + 100);
		if (round < 2)
			assert_true(creq); /* stalled with data waiting */
		fwd = got;
		tx(t, CREDIT_UPDATE, 800, 6000, 0, 100, fwd, NULL, 0);
	}
	assert_int_equal(got, 300);
	assert_memory_equal(in, out, 300);
	close(as);
	close(ls);
	free(p);
}

/* Guest -> host with credit: 2 MiB through a 256 KiB window while the host
 * reads slowly; then a guest that ignores its credit is reset. */
static void test_credit_guest_to_host(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	static uint8_t chunk[4000], back[1 << 16];
	uint32_t buf_alloc = 0, fwd = 0, sent = 0, recvd = 0, total = 2u << 20;
	bool stalled = false, reset = false;
	char path[160];
	int ls, as;

	snprintf(path, sizeof(path), "%s_7000", t->uds);
	ls = unix_listen(path);
	tx(t, REQUEST, 900, 7000, 0, 65536, 0, NULL, 0);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RESPONSE);
	buf_alloc = p->buf_alloc;
	fwd = p->fwd_cnt;
	assert_true(buf_alloc >= 4000);
	as = accept(ls, NULL, NULL);
	fcntl(as, F_SETFL, O_NONBLOCK);
	for (int iter = 0; iter < 100000 && recvd < total; iter++) {
		uint32_t credit = buf_alloc - (sent - fwd);
		if (sent < total && credit >= sizeof(chunk)) {
			uint32_t n = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk);
			for (uint32_t i = 0; i < n; i++)
				chunk[i] = (uint8_t)((sent + i) * 7);
			tx(t, RW, 900, 7000, 0, 65536, 0, chunk, n);
			sent += n;
			continue;
		}
		if (sent < total)
			stalled = true;
		{ /* a slow reader: 16 KiB at a time */
			ssize_t r = read(as, back, 16384);
			for (ssize_t i = 0; i < r; i++)
				assert_int_equal(back[i], (uint8_t)((recvd + i) * 7));
			if (r > 0)
				recvd += (uint32_t)r;
		}
		pump(t);
		while (rx_get(t, p)) {
			assert_true(p->op == CREDIT_UPDATE || p->op == RW);
			fwd = p->fwd_cnt;
		}
	}
	assert_int_equal(recvd, total);
	assert_true(stalled);
	/* Now ignore credit while the host does not read. */
	for (int i = 0; i < 200 && !reset; i++) {
		static uint8_t big[60000];
		tx(t, RW, 900, 7000, 0, 65536, 0, big, sizeof(big));
		sent += sizeof(big);
		while (rx_get(t, p)) {
			if (p->op == RST) {
				reset = true;
				/* Only once the guest went past the window it was given. */
				assert_true(sent - fwd > buf_alloc);
			} else {
				fwd = p->fwd_cnt;
			}
		}
	}
	assert_true(reset);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	close(as);
	close(ls);
	free(p);
}

/* A guest that never consumes RX: the device stops reading the socket, the
 * host's writes block (bounded memory). */
static void test_guest_never_reads(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	static uint8_t blk[65536];
	char path[160];
	size_t wrote = 0;
	int ls, as;

	snprintf(path, sizeof(path), "%s_7100", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 901, 7100, 1u << 30);
	/* Take every RX buffer away from the device by not reposting. */
	while (mq_used(&t->d, 0, &(uint32_t){0}, &(uint32_t){0}))
		;
	fcntl(as, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 10000; i++) {
		ssize_t r = write(as, blk, sizeof(blk));
		if (r < 0) {
			assert_int_equal(errno, EAGAIN);
			pump(t);
			r = write(as, blk, sizeof(blk));
			if (r < 0)
				break;
		}
		wrote += (size_t)r;
	}
	/* At most the 31 remaining buffers' worth left the socket. */
	assert_true(wrote < (8u << 20));
	close(as);
	close(ls);
	free(p);
}

/* A REQUEST the guest never answers: after Firecracker's 2 s request
 * timeout the host client is closed and the guest gets an RST. */
static void test_request_timeout(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	struct want_pkt w = {p, RST, 4321, 0};
	int hs = unix_connect(t->uds);

	assert_int_equal(write(hs, "CONNECT 4321\n", 13), 13);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, REQUEST);
	assert_int_equal(p->dst_port, 4321);
	/* The guest stays silent. */
	assert_true(pump_until(t, got_op, &w));
	assert_true(host_closed(hs));
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	close(hs);
	free(p);
}

/* Half a CONNECT line and then the client closes: the connection is freed
 * at once (no further edge would ever come for it).  Half a line and then
 * silence: closed after 2 s.  The guest hears of neither. */
static void test_half_connect_line(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	int hs = unix_connect(t->uds);

	assert_int_equal(write(hs, "CONNECT 12", 10), 10);
	pump(t);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	close(hs);
	assert_true(pump_until(t, no_conns, NULL));
	hs = unix_connect(t->uds);
	assert_int_equal(write(hs, "CONN", 4), 4);
	pump(t);
	assert_true(pump_until(t, no_conns, NULL));
	assert_true(host_closed(hs));
	assert_false(rx_get(t, p));
	close(hs);
	/* A client that connects and says nothing yet is kept, as Firecracker
	 * keeps it; it may still send its line. */
	hs = unix_connect(t->uds);
	pump(t);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	assert_int_equal(write(hs, "CONNECT 13\n", 11), 11);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, REQUEST);
	assert_int_equal(p->dst_port, 13);
	close(hs);
	free(p);
}

/* The guest answers a CREDIT_REQUEST with still no credit (its application
 * has not read yet): the device asks again later rather than wait for ever
 * for an update the guest may never volunteer (Linux before 6.8 sends one
 * only after 64 KiB were read since the last). */
static void test_credit_request_repeats(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	struct want_pkt w = {p, CREDIT_REQUEST, 810, 0};
	uint8_t out[200];
	char path[160];
	int ls, as;

	snprintf(path, sizeof(path), "%s_6100", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 810, 6100, 100);
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(write(as, out, sizeof(out)), (ssize_t)sizeof(out));
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RW);
	assert_int_equal(p->len, 100);
	assert_true(pump_until(t, got_op, &w));
	/* Still no credit. */
	tx(t, CREDIT_UPDATE, 810, 6100, 0, 100, 0, NULL, 0);
	w.seen = 0;
	assert_true(pump_until(t, got_op, &w));
	/* Now the application read it all: the rest flows. */
	tx(t, CREDIT_UPDATE, 810, 6100, 0, 100, 100, NULL, 0);
	w = (struct want_pkt){p, RW, 810, 0};
	assert_true(pump_until(t, got_op, &w));
	assert_int_equal(p->len, 100);
	close(as);
	close(ls);
	free(p);
}

/* The guest closes (SHUTDOWN both) while the host client has not taken its
 * data: the device waits for the data to drain, but at most 2 s
 * (Firecracker's CONN_SHUTDOWN_TIMEOUT_MS), then resets both sides. */
static void test_shutdown_timeout(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	struct want_pkt w = {p, RST, 820, 0};
	static uint8_t blk[60000];
	char path[160];
	int ls, as, sz = 4096;

	snprintf(path, sizeof(path), "%s_6200", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 820, 6200, 65536);
	assert_int_equal(setsockopt(as, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	for (int i = 0; i < 4; i++)
		tx(t, RW, 820, 6200, 0, 65536, 0, blk, sizeof(blk));
	/* 240000 bytes cannot all sit in the host socket. */
	tx(t, SHUTDOWN, 820, 6200, 3, 65536, 0, NULL, 0);
	pump(t);
	assert_false(got_op(t, &w)); /* still draining */
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	assert_true(pump_until(t, got_op, &w));
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	close(as);
	close(ls);
	free(p);
}

static bool got_requests(struct vs *t, void *a)
{
	struct pkt *p = malloc(sizeof(*p));
	int *n = a;

	while (rx_get(t, p))
		if (p->op == REQUEST)
			(*n)++;
	free(p);
	return *n == 3;
}

/* accept() fails for want of descriptors with clients queued: the listener
 * is edge-triggered, so the device must look again by itself once
 * descriptors are free, not wait for yet another client. */
static void test_accept_out_of_fds(void **state)
{
	struct vs *t = *state;
	struct rlimit old, low;
	int hs[3], freefd = 0, n = 0;

	for (int i = 0; i < 3; i++) {
		char line[16];
		int len = snprintf(line, sizeof(line), "CONNECT %d\n", 30 + i);

		hs[i] = unix_connect(t->uds);
		assert_int_equal(write(hs[i], line, (size_t)len), len);
	}
	while (fcntl(freefd, F_GETFD) >= 0)
		freefd++;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)freefd; /* the lowest free number is over the limit */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	pump(t);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	/* No new client connects; the queued three still get through. */
	assert_true(pump_until(t, got_requests, &n));
	for (int i = 0; i < 3; i++)
		close(hs[i]);
}

/* The driver resets the device (Status 0, e.g. an unbind and rebind of
 * vmw_vsock_virtio_transport, Firecracker's test_device_reset): every
 * connection ends, its host client sees EOF, nothing of it reaches the new
 * rings, and a new host connection works through the same uds_path. */
static void test_device_reset_drops_connections(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	int hs, hs2;

	host_open(t, &hs, 1500);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	assert_int_equal(mq_init(&t->d, &t->e, t->dev, 3, 64, 0) & SQB_VIO_S_DRIVER_OK,
			 SQB_VIO_S_DRIVER_OK);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	assert_true(host_closed(hs));
	for (unsigned int i = 0; i < NRX; i++)
		rx_post(t);
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 0);
	sqb_vio_queue_notify(t->dev, 2);
	pump(t);
	assert_false(rx_get(t, p)); /* no RST, no SHUTDOWN of the old connection */
	assert_false(mq_used(&t->d, 2, &(uint32_t){0}, &(uint32_t){0})); /* no TRANSPORT_RESET */
	host_open(t, &hs2, 1501);
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 1);
	close(hs);
	close(hs2);
	free(p);
}

static void test_hostile_headers(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	uint8_t h[64];
	struct {
		uint64_t src, dst;
		uint16_t type, op;
		uint32_t len, payload, flags;
		int expect; /* 0 nothing, RST */
	} c[] = {
	    {4, 2, 1, REQUEST, 0, 0, 0, 0},	   /* claims another cid: dropped */
	    {CID, 5, 1, REQUEST, 0, 0, 0, 0},	   /* not for the host: dropped */
	    {CID, 2, 2, REQUEST, 0, 0, 0, RST},	   /* SEQPACKET: not offered */
	    {CID, 2, 1, 0, 0, 0, 0, RST},	   /* op INVALID */
	    {CID, 2, 1, 9, 0, 0, 0, RST},	   /* unknown op */
	    {CID, 2, 1, RW, 100, 10, 0, RST},	   /* len beyond the buffers */
	    {CID, 2, 1, RW, 70000, 70000, 0, RST}, /* len beyond 64 KiB */
	    {CID, 2, 1, RW, 4, 4, 0, RST},	   /* RW for no connection */
	    {CID, 2, 1, CREDIT_UPDATE, 0, 0, 0, RST},
	    {CID, 2, 1, RESPONSE, 0, 0, 0, RST},
	    {CID, 2, 1, REQUEST, 4, 4, 0, RST}, /* payload on a control packet */
	    {CID, 2, 1, SHUTDOWN, 0, 0, 8, RST},
	    {CID, 2, 1, RST, 0, 0, 0, 0}, /* RST for no connection: silence */
	};
	static uint8_t payload[70000];

	for (unsigned int i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		put_hdr(h, c[i].src, c[i].dst, 1000 + i, 3000 + i, c[i].len, c[i].type, c[i].op,
			c[i].flags, 4096, 0);
		tx_raw(t, h, 44, payload, c[i].payload);
		if (c[i].expect) {
			assert_true(rx_get(t, p));
			assert_int_equal(p->op, RST);
			assert_int_equal(p->src_port, 3000 + i);
			assert_int_equal(p->dst_port, 1000 + i);
		}
		assert_false(rx_get(t, p));
	}
	/* A chain shorter than a header: dropped, completed. */
	tx_raw(t, h, 20, NULL, 0);
	assert_false(rx_get(t, p));
	/* The header split across descriptors is still a header (2.7.4). */
	{
		uint16_t hd = t->d.q[1].next_desc;
		uint64_t g = TXSLOT(hd);
		struct vt_seg s[2] = {{g, 10, false}, {g + 100, 34, false}};
		uint32_t id, len;
		put_hdr(h, CID, 2, 55, 66, 0, 1, RW, 0, 0, 0);
		memcpy(vt_ptr(&t->e, g), h, 10);
		memcpy(vt_ptr(&t->e, g + 100), h + 10, 34);
		mq_add(&t->d, 1, s, 2);
		sqb_vio_queue_notify(t->dev, 1);
		assert_true(mq_used(&t->d, 1, &id, &len));
		assert_true(rx_get(t, p));
		assert_int_equal(p->op, RST);
		assert_int_equal(p->dst_port, 55);
	}
	/* A flood of bad packets while RX has no buffers: RSTs are bounded. */
	while (mq_used(&t->d, 0, &(uint32_t){0}, &(uint32_t){0}))
		;
	for (int i = 0; i < 1000; i++) {
		put_hdr(h, CID, 2, (uint32_t)i, 1, 0, 1, RW, 0, 0, 0);
		tx_raw(t, h, 44, NULL, 0);
	}
	assert_false(sqb_vio_status(t->dev) & SQB_VIO_S_NEEDS_RESET);
	free(p);
}

/* Snapshot, load into a new device on another path: TRANSPORT_RESET on the
 * event queue, old connections gone, new ones work ([F-112]). */
static void test_restore_transport_reset(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	char uds2[128];
	sqb_vio_dev *dev2;
	uint8_t *st;
	size_t len;
	uint32_t id, used;
	int hs, hs2;
	uint32_t hport = host_open(t, &hs, 4242);

	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &len), 0);
	snprintf(uds2, sizeof(uds2), "%s/clone.sock", t->dir);
	o.guest_cid = CID;
	o.uds_path = uds2;
	assert_int_equal(sqb_vio_vsock_new(&dev2, &t->e.host, &o, &diag), 0);
	assert_false(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, len, &diag), 0);
	/* The old VMM goes away with its sockets. */
	sqb_vio_dev_free(t->dev);
	t->dev = t->d.dev = dev2;
	assert_true(host_eof(hs));
	close(hs);
	assert_true(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(used, 4);
	assert_int_equal(mq_get32(&t->e, MQ_BUF(2) + id * 16ull), 0); /* TRANSPORT_RESET */
	assert_int_equal(sqb_vio_vsock_num_conns(dev2), 0);
	/* The guest's old connection is unknown now: RST, but only once the
	 * driver has acted on the reset (it re-posts the event buffer, as
	 * Linux's virtio_vsock_event_work does after resetting its sockets):
	 * before that, nothing goes out on RX (Firecracker's
	 * pending_event_ack; a new connection's REQUEST would otherwise race
	 * the event's handling). */
	tx(t, RW, 4242, hport, 0, 65536, 0, "x", 1);
	pump(t);
	assert_false(rx_get(t, p));
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 2);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RST);
	/* A new host connection on the new path reaches the guest. */
	snprintf(t->uds, sizeof(t->uds), "%s", uds2);
	host_open(t, &hs2, 4242);
	close(hs2);
	free(st);
	free(p);
}

/* ---- VIRTIO_F_RING_EVENT_IDX (virtio 1.x 2.7.10), from the spec ----
 * With EVENT_IDX the driver notifies only when its new avail idx passes the
 * device's avail_event (the le16 after the used ring): vring_need_event
 * (avail_event, new, old) = (u16)(new - avail_event - 1) < (u16)(new - old).
 * A device that wants to hear of the next buffer must write avail_event and
 * then look at avail idx again. */

static int setup_ev(void **state)
{
	struct vs *t = calloc(1, sizeof(*t));
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};

	vt_env_init(&t->e);
	snprintf(t->dir, sizeof(t->dir), "/tmp/sqbvs.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->uds, sizeof(t->uds), "%s/v.sock", t->dir);
	o.guest_cid = CID;
	o.uds_path = t->uds;
	assert_int_equal(sqb_vio_vsock_new(&t->dev, &t->e.host, &o, &diag), 0);
	assert_int_equal(mq_init(&t->d, &t->e, t->dev, 3, 64, 1ull << SQB_VIO_F_RING_EVENT_IDX) &
			     SQB_VIO_S_DRIVER_OK,
			 SQB_VIO_S_DRIVER_OK);
	assert_true(t->d.acked & 1ull << SQB_VIO_F_RING_EVENT_IDX);
	*state = t;
	return 0;
}

static uint16_t avail_event(struct vs *t, unsigned int qi)
{
	return g16(vt_ptr(&t->e, t->d.q[qi].used + 4 + 8ull * t->d.q[qi].num));
}

/* A Linux-like driver: notify only when the spec says it must. */
static void kick_if_needed(struct vs *t, unsigned int qi, uint16_t old)
{
	uint16_t ev = avail_event(t, qi), now = t->d.q[qi].avail_idx;

	if ((uint16_t)(now - ev - 1) < (uint16_t)(now - old))
		sqb_vio_queue_notify(t->dev, qi);
}

/* Save t->dev and restore the state into a new device on path name (the
 * old device goes away, as a killed VMM's). */
static void reload(struct vs *t, const char *name, bool quiesce)
{
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	sqb_vio_dev *dev2;
	uint8_t *st;
	size_t len;

	if (quiesce)
		assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &len), 0);
	snprintf(t->uds, sizeof(t->uds), "%s/%s", t->dir, name);
	o.guest_cid = CID;
	o.uds_path = t->uds;
	assert_int_equal(sqb_vio_vsock_new(&dev2, &t->e.host, &o, &diag), 0);
	sqb_vio_dev_free(t->dev);
	t->dev = t->d.dev = dev2;
	assert_int_equal(sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, len, &diag), 0);
	free(st);
}

/* A TRANSPORT_RESET pending while the event queue is empty: the device
 * asks for the next event buffer through avail_event, so a driver that
 * notifies only when the spec requires it still gets the event. */
static void test_event_idx_reset_without_buffer(void **state)
{
	struct vs *t = *state;
	uint32_t id, used;
	uint16_t old;

	/* One event buffer, used up by the first load's reset. */
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 2);
	reload(t, "a.sock", true);
	assert_true(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(used, 4);
	/* Second load, no event buffer posted: the reset waits for one. */
	reload(t, "b.sock", true);
	assert_false(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(avail_event(t, 2), t->d.q[2].avail_idx);
	old = t->d.q[2].avail_idx;
	ev_post(t);
	kick_if_needed(t, 2, old);
	assert_true(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(used, 4);
	assert_int_equal(mq_get32(&t->e, MQ_BUF(2) + id * 16ull), 0); /* TRANSPORT_RESET */
}

/* A TX packet the driver queued (and notified) just before the save whose
 * notify the old process never handled: the loaded device completes it at
 * once and asks for the next one, so later packets are not stuck behind it. */
static void test_event_idx_tx_queued_at_save(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	uint8_t h[44];
	uint32_t id, used;
	uint16_t old;
	char path[160];
	int l2;

	for (unsigned int i = 0; i < 8; i++)
		rx_post(t);
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 0);
	sqb_vio_queue_notify(t->dev, 2);
	/* The device has seen TX empty: avail_event names the next buffer. */
	sqb_vio_queue_notify(t->dev, 1);
	assert_int_equal(avail_event(t, 1), t->d.q[1].avail_idx);
	/* The guest queues a packet; its notify is lost with the old process. */
	put_hdr(h, CID, 2, 7000, 99, 0, 1, RST, 0, 65536, 0);
	memcpy(vt_ptr(&t->e, TXSLOT(t->d.q[1].next_desc)), h, 44);
	mq_add(&t->d, 1, &(struct vt_seg){TXSLOT(t->d.q[1].next_desc), 44, false}, 1);
	reload(t, "c.sock", false);
	assert_true(mq_used(&t->d, 1, &id, &used));
	assert_int_equal(avail_event(t, 1), t->d.q[1].avail_idx);
	/* The driver handles the TRANSPORT_RESET and re-posts its event
	 * buffer; the device asked to hear of it (avail_event = the event
	 * queue's avail idx), so a driver that kicks only as the spec requires
	 * still tells it, and RX opens. */
	assert_true(mq_used(&t->d, 2, &id, &used));
	old = t->d.q[2].avail_idx;
	assert_int_equal(avail_event(t, 2), old);
	ev_post(t);
	kick_if_needed(t, 2, old);
	/* The next packet: a connection request to <uds_path>_5000, notified
	 * only as the spec requires, is answered. */
	snprintf(path, sizeof(path), "%s_5000", t->uds);
	l2 = unix_listen(path);
	while (rx_get(t, p))
		; /* nothing for the guest but what the reset left */
	old = t->d.q[1].avail_idx;
	put_hdr(h, CID, 2, 7001, 5000, 0, 1, REQUEST, 0, 65536, 0);
	memcpy(vt_ptr(&t->e, TXSLOT(t->d.q[1].next_desc)), h, 44);
	mq_add(&t->d, 1, &(struct vt_seg){TXSLOT(t->d.q[1].next_desc), 44, false}, 1);
	kick_if_needed(t, 1, old);
	assert_true(mq_used(&t->d, 1, &id, &used));
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RESPONSE);
	assert_int_equal(p->dst_port, 7001);
	close(l2);
	free(p);
}

/* A VM loaded paused: its driver acts on the TRANSPORT_RESET only when it
 * runs, however late.  Host clients that connect meanwhile get nothing sent
 * to the guest (no timer opens RX behind the driver's back); the driver's
 * re-post lets their REQUESTs out. */
static void test_reset_gate_waits_for_the_driver(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	struct want_pkt w = {p, REQUEST, 4444, 0};
	uint32_t id, used;
	int hs, hs2;

	host_open(t, &hs, 4343);
	reload(t, "d.sock", true);
	close(hs);
	assert_true(mq_used(&t->d, 2, &id, &used));
	hs2 = unix_connect(t->uds);
	assert_int_equal(write(hs2, "CONNECT 4444\n", 13), 13);
	for (int i = 0; i < 250; i++) /* 2.5 s: longer than any kill timer */
		pump(t);
	assert_false(rx_get(t, p));
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 2);
	assert_true(pump_until(t, got_op, &w));
	close(hs2);
	free(p);
}

/* [F-115], Firecracker's prepare_save: a snapshot's source VM hears
 * TRANSPORT_RESET too (test_vsock.py test_vsock_transport_reset_g2h/h2g), at
 * the resume that ends the create (the first host_ready after the save),
 * and its connections' host ends close.  The snapshot itself (state and
 * guest memory as captured) holds neither: its load sends its own reset,
 * once. */
static void test_snapshot_resets_source(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	uint8_t *r0 = malloc(VT_R0_SIZE), *r1 = malloc(VT_R1_SIZE), *st;
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	struct mq_drv d0;
	sqb_vio_dev *dev2;
	uint32_t id, used, hport, hport2;
	char path[160];
	size_t len;
	int hs, hs2, ls, as;

	hport = host_open(t, &hs, 4242);
	snprintf(path, sizeof(path), "%s_5000", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 777, 5000, 65536);
	/* The create: quiesce, state, memory; the VM stays paused until the
	 * resume, and nothing changes before it. */
	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &len), 0);
	memcpy(r0, t->e.r0, VT_R0_SIZE);
	memcpy(r1, t->e.r1, VT_R1_SIZE);
	d0 = t->d;
	assert_false(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 2);
	/* The resume: TRANSPORT_RESET for the source's driver, host ends closed. */
	sqb_vio_vsock_host_ready(t->dev);
	assert_true(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(used, 4);
	assert_int_equal(mq_get32(&t->e, MQ_BUF(2) + id * 16ull), 0); /* TRANSPORT_RESET */
	assert_int_equal(sqb_vio_vsock_num_conns(t->dev), 0);
	assert_true(host_eof(hs));
	assert_true(host_eof(as));
	close(hs);
	close(as);
	/* Nothing goes to the guest until its driver acted on the event; then
	 * a packet of an old connection gets RST, and no second reset comes
	 * at later resumes. */
	tx(t, RW, 4242, hport, 0, 65536, 0, "x", 1);
	pump(t);
	assert_false(rx_get(t, p));
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 2);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, RST);
	assert_int_equal(p->dst_port, 4242);
	pump(t);
	assert_false(mq_used(&t->d, 2, &id, &used));
	/* The source goes on: new connections work, host ports continue. */
	hport2 = host_open(t, &hs2, 4343);
	assert_int_equal(hport2, hport + 1);
	close(hs2);
	guest_open(t, ls, &as, 778, 5000, 65536);
	close(as);
	/* The snapshot, loaded in a new process: one reset, the load's own. */
	sqb_vio_dev_free(t->dev);
	memcpy(t->e.r0, r0, VT_R0_SIZE);
	memcpy(t->e.r1, r1, VT_R1_SIZE);
	t->d = d0;
	snprintf(t->uds, sizeof(t->uds), "%s/clone.sock", t->dir);
	o.guest_cid = CID;
	o.uds_path = t->uds;
	assert_int_equal(sqb_vio_vsock_new(&dev2, &t->e.host, &o, &diag), 0);
	t->dev = t->d.dev = dev2;
	assert_int_equal(sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, len, &diag), 0);
	assert_true(mq_used(&t->d, 2, &id, &used));
	assert_int_equal(mq_get32(&t->e, MQ_BUF(2) + id * 16ull), 0);
	pump(t);
	assert_false(mq_used(&t->d, 2, &id, &used));
	close(ls);
	free(st);
	free(r0);
	free(r1);
	free(p);
}

static char rx_line[512];
static unsigned int rx_lines;

static void rx_sink(enum sqb_log_level lvl, const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	if (lvl == SQB_LOG_DEBUG && strstr(msg, "vsock muxer: RX pkt: ") && strstr(msg, "op: 1,")) {
		snprintf(rx_line, sizeof(rx_line), "%s", msg);
		rx_lines++;
	}
}

/* Firecracker's local_port_last ([F-111]): host-initiated connections of a
 * loaded VM number on from the saved VM's last host port (2^31 - 1 wraps to
 * 2^30); a state from before the field (0) starts at 2^30.  Each RX packet
 * is logged at Debug as Firecracker's muxer does, word for word
 * (test_snapshot_basic.py test_cycled_snapshot_restore greps these lines),
 * and nothing is formatted below Debug. */
/* A host client goes away; what the device then tells the guest about it
 * is read off the RX ring. */
static void close_host(struct vs *t, int hs, struct pkt *p)
{
	close(hs);
	pump(t);
	while (rx_get(t, p))
		;
}

/* reload(), with the saved local_port_last (which must be was) replaced by
 * last; the driver then acts on the load's reset, so RX is open. */
static void reload_port(struct vs *t, const char *name, uint32_t was, uint32_t last)
{
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	sqb_vio_dev *dev2;
	uint32_t id, used;
	uint8_t *st;
	size_t len;

	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &len), 0);
	assert_int_equal(g32(st + 184), was); /* [F-111]: offset 8 of the vsock record */
	for (int i = 0; i < 4; i++)
		st[184 + i] = (uint8_t)(last >> (8 * i));
	snprintf(t->uds, sizeof(t->uds), "%s/%s", t->dir, name);
	o.guest_cid = CID;
	o.uds_path = t->uds;
	assert_int_equal(sqb_vio_vsock_new(&dev2, &t->e.host, &o, &diag), 0);
	sqb_vio_dev_free(t->dev);
	t->dev = t->d.dev = dev2;
	assert_int_equal(sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, len, &diag), 0);
	free(st);
	while (mq_used(&t->d, 2, &id, &used))
		;
	ev_post(t);
	sqb_vio_queue_notify(t->dev, 2);
}

static void test_port_last_across_load(void **state)
{
	struct vs *t = *state;
	char want[512];
	uint32_t hport;
	struct pkt *p = malloc(sizeof(*p));
	int hs;

	assert_int_equal(host_open(t, &hs, 4242), 1u << 30);
	close_host(t, hs, p);
	assert_int_equal(host_open(t, &hs, 4242), (1u << 30) + 1);
	close_host(t, hs, p);
	reload(t, "e.sock", true);
	ev_post(t); /* the driver acts on the load's reset */
	sqb_vio_queue_notify(t->dev, 2);
	sqb_log_set_sink(rx_sink);
	sqb_log_set_level(SQB_LOG_DEBUG);
	hport = host_open(t, &hs, 4343);
	sqb_log_set_level(SQB_LOG_WARN);
	assert_int_equal(hport, (1u << 30) + 2);
	snprintf(want, sizeof(want),
		 "vsock muxer: RX pkt: VsockPacketHeader { src_cid: 2, dst_cid: %u, src_port: %u, "
		 "dst_port: 4343, len: 0, type_: 1, op: 1, flags: 0, buf_alloc: 262144, "
		 "fwd_cnt: 0 }",
		 CID, hport);
	assert_int_equal(rx_lines, 1);
	assert_string_equal(rx_line, want);
	close_host(t, hs, p);
	/* Below Debug: no line. */
	hport = host_open(t, &hs, 4343);
	assert_int_equal(rx_lines, 1);
	close_host(t, hs, p);
	sqb_log_set_sink(NULL);
	/* The last port of the range: the next load wraps to 2^30. */
	reload_port(t, "f.sock", hport, 0x7fffffffu);
	assert_int_equal(host_open(t, &hs, 4343), 1u << 30);
	close_host(t, hs, p);
	/* A state without the field (0): from 2^30 as before it existed. */
	assert_int_equal(host_open(t, &hs, 4343), (1u << 30) + 1);
	close_host(t, hs, p);
	reload_port(t, "g.sock", (1u << 30) + 1, 0);
	assert_int_equal(host_open(t, &hs, 4343), 1u << 30);
	close_host(t, hs, p);
	free(p);
}

/* [F-101]: a quiesce completes every TX buffer the driver queued. */
static void test_quiesce_drains_tx(void **state)
{
	struct vs *t = *state;
	uint8_t h[44];
	uint32_t id, used;

	put_hdr(h, CID, 2, 7000, 99, 0, 1, RST, 0, 65536, 0);
	memcpy(vt_ptr(&t->e, TXSLOT(t->d.q[1].next_desc)), h, 44);
	mq_add(&t->d, 1, &(struct vt_seg){TXSLOT(t->d.q[1].next_desc), 44, false}, 1);
	assert_false(mq_used(&t->d, 1, &id, &used));
	assert_int_equal(sqb_vio_quiesce(t->dev), 0);
	assert_true(mq_used(&t->d, 1, &id, &used));
}

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* docs/format.md 9.1.1, [F-111] and [F-114]: transport 56 + 3 queues x 40 + vsock record 16 +
 * limiter 128 = 320 bytes. */
static void test_kat_state(void **state)
{
	struct vs *t = *state;
	uint8_t *st;
	size_t len;
	static const uint8_t head[16] = {19, 0, 0, 0, 3, 0, 0, 0};
	/* guest_cid 3; local_port_last 2^30 - 1 (no host-initiated connection yet) */
	static const uint8_t rec[16] = {3, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x3f, 0, 0, 0, 0};
	uint8_t zero[128] = {0};
	uint8_t bad[320];
	struct sqb_diag diag = {0};

	assert_int_equal(sqb_vio_dev_save(t->dev, &st, &len), 0);
	assert_int_equal(len, 320);
	{
		/* The whole vector, field by field from the tables of 9.1.1. */
		uint8_t exp[320] = {0};
		le(exp + 0, 19, 4);		/* device_id */
		le(exp + 4, 3, 4);		/* num_queues */
		le(exp + 8, 0x130000000ull, 8); /* VERSION_1, EVENT_IDX, INDIRECT */
		le(exp + 16, 1ull << 32, 8);	/* driver_features */
		le(exp + 24, 0xf, 4);		/* status up to DRIVER_OK */
		le(exp + 28, 1, 4);		/* device_features_sel */
		le(exp + 32, 1, 4);		/* driver_features_sel */
		le(exp + 36, 2, 4);		/* queue_sel: the event queue, last set up */
		for (int q = 0; q < 3; q++) {	/* queue records; next_* 0: nothing popped yet */
			uint8_t *r = exp + 56 + 40 * q;
			le(r, 64, 2);
			le(r + 2, 256, 2);
			le(r + 4, 1, 4); /* ready */
			le(r + 8, MQ_Q_BASE + 0x4000ull * q, 8);
			le(r + 16, MQ_Q_BASE + 0x4000ull * q + 0x1000, 8);
			le(r + 24, MQ_Q_BASE + 0x4000ull * q + 0x2000, 8);
		}
		le(exp + 176, CID, 8);		  /* vsock record: guest_cid, */
		le(exp + 184, (1u << 30) - 1, 4); /* local_port_last; then the limiter, off */
		assert_memory_equal(st, exp, sizeof(exp));
	}
	assert_memory_equal(st, head, 8);
	/* device_features: VERSION_1 (32), EVENT_IDX (29), INDIRECT (28) */
	assert_int_equal(g64(st + 8), 1ull << 32 | 1ull << 29 | 1ull << 28);
	for (int q = 0; q < 3; q++) {
		assert_int_equal(g16(st + 56 + 40 * q), 64);	  /* num */
		assert_int_equal(g16(st + 56 + 40 * q + 2), 256); /* num_max */
		assert_int_equal(g32(st + 56 + 40 * q + 4) & 1, 1);
		assert_int_equal(g64(st + 56 + 40 * q + 8), MQ_Q_BASE + 0x4000ull * q);
	}
	assert_memory_equal(st + 176, rec, 16);
	assert_memory_equal(st + 192, zero, 128);
	/* Reserved bytes of the vsock record are refused, device unchanged. */
	memcpy(bad, st, 320);
	bad[188] = 1;
	assert_int_equal(sqb_vio_dev_restore(t->dev, 1, bad, 320, &diag), -SQB_ERESERVED);
	assert_int_equal(diag.offset, 188);
	/* local_port_last: 0 (a snapshot from before the field) loads; a
	 * value outside 2^30 - 1 .. 2^31 - 1 does not. */
	memcpy(bad, st, 320);
	le(bad + 184, 0x80000000u, 4);
	assert_int_equal(sqb_vio_dev_restore(t->dev, 1, bad, 320, &diag), -SQB_ECORRUPT);
	assert_int_equal(diag.offset, 184);
	le(bad + 184, (1u << 30) - 2, 4);
	assert_int_equal(sqb_vio_dev_restore(t->dev, 1, bad, 320, &diag), -SQB_ECORRUPT);
	le(bad + 184, 0, 4);
	assert_int_equal(sqb_vio_dev_restore(t->dev, 1, bad, 320, &diag), 0);
	assert_int_equal(sqb_vio_dev_restore(t->dev, 1, st, 319, &diag), -SQB_ETRUNCATED);
	free(st);
}

/* Firecracker's read_local_stream_port (unix/muxer.rs): the first 10 bytes,
 * then up to the first '\n' at or after them, 32 bytes at most; UTF-8 split
 * at Unicode white space; "connect" in any case, then a u32 as Rust's
 * str::parse reads it; later words ignored. */
static void test_connect_parser(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint32_t port;
		size_t used;
	} c[] = {
	    {"CONNECT 52\n", 1, 52, 11},
	    {"Connect 4294967295\nxyz", 1, 4294967295u, 19},
	    {"connect 0\n", 1, 0, 10},
	    {"CONNECT +52\n", 1, 52, 12},		/* Rust's u32 parse takes a '+' */
	    {"CONNECT 52 trailing words\n", 1, 52, 26}, /* ignored after the port */
	    {"  CONNECT\t52 \r\n", 1, 52, 15},
	    {"connect\n52\n", 1, 52, 11},	  /* the first '\n' is inside the 10 */
	    {"CONNECT\302\24052\n", 1, 52, 12},	  /* U+00A0 is white space */
	    {"CONNECT\343\200\2005\n", 1, 5, 12}, /* U+3000 too */
	    /* no '\n' within 32 bytes: those 32 are the command */
	    {"CONNECT 52 and then some words!!more", 1, 52, 32},
	    {"CONNECT 00000000000000000000000001\n", 1, 0, 32},
	    {"CONNECT 00000000000000000000001\n", 1, 1, 32},
	    /* not yet decided */
	    {"CONNECT 5", 0, 0, 0},
	    {"CONNECT 52", 0, 0, 0},
	    {"CONNECT\n", 0, 0, 0}, /* "CONNECT\n5\n" would still be one */
	    {"CONNECT 52 x", 0, 0, 0},
	    {"CONN", 0, 0, 0},
	    {"CONNECT \xe3\x80", 0, 0, 0}, /* a sequence cut short, for now */
	    /* refused */
	    {"CONNECT -5\n", -EINVAL, 0, 0},
	    {"CONNECT5\n\n", -EINVAL, 0, 0},
	    {"CONNECT +\n\n", -EINVAL, 0, 0},
	    {"CONNECT ++5\n", -EINVAL, 0, 0},
	    {"CONNECT 5x\n\n", -EINVAL, 0, 0},
	    {"CONNECT 4294967296\n", -EINVAL, 0, 0},
	    {"CONNECT  \n", -EINVAL, 0, 0},
	    {"\034CONNECT 5\n", -EINVAL, 0, 0},	    /* U+001C is no white space in Rust */
	    {"CONNECT 5 \xff\n", -EINVAL, 0, 0},    /* from_utf8 sees the whole line */
	    {"CONNECT 5\xc0\x80\n", -EINVAL, 0, 0}, /* overlong */
	    {"CONNECTED 5\n", -EINVAL, 0, 0},
	    {"CONNEC 5", -EINVAL, 0, 0}, /* a first word that can never be it */
	    {"LISTEN 5 x", -EINVAL, 0, 0},
	    {"CONNECT x y", -EINVAL, 0, 0}, /* a port word that can never be one */
	    {"0123456789012345678901234567890123456789", -EINVAL, 0, 0},
	};

	(void)state;
	for (unsigned int i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint32_t port = 0xdead;
		size_t used = 0;
		int rc = sqb_vsock_parse_connect(c[i].in, strlen(c[i].in), &port, &used);

		if (rc != c[i].rc || (rc == 1 && (port != c[i].port || used != c[i].used)))
			fail_msg("case %u '%s': rc %d port %u used %zu, want %d %u %zu", i, c[i].in,
				 rc, port, used, c[i].rc, c[i].port, c[i].used);
	}
}

static void test_bad_options(void **state)
{
	struct vs *t = *state;
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	sqb_vio_dev *d;
	char longp[200];

	o.guest_cid = 2;
	o.uds_path = "/tmp/x";
	assert_int_equal(sqb_vio_vsock_new(&d, &t->e.host, &o, &diag), -EINVAL);
	o.guest_cid = 3;
	o.uds_path = t->uds; /* in use */
	assert_int_equal(sqb_vio_vsock_new(&d, &t->e.host, &o, &diag), -EADDRINUSE);
	assert_non_null(strstr(diag.reason, "exists"));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	o.uds_path = longp;
	assert_int_equal(sqb_vio_vsock_new(&d, &t->e.host, &o, &diag), -ENAMETOOLONG);
	assert_null(d);
}

/* A host client thread: writes total bytes of a known sequence to fd, then
 * close()s it (mode 0) or shuts its write side (mode 1). */
struct wr_arg {
	int fd;
	size_t total;
	int mode;
	atomic_int done;
};

static void *writer(void *a)
{
	struct wr_arg *w = a;
	static uint8_t buf[65536];
	size_t off = 0;
	while (off < w->total) {
		size_t n = w->total - off < sizeof(buf) ? w->total - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 31 + 7);
		size_t d = 0;
		while (d < n) {
			ssize_t r = write(w->fd, buf + d, n - d);
			if (r <= 0) {
				perror("writer");
				return NULL;
			}
			d += (size_t)r;
		}
		off += n;
	}
	if (w->mode == 0)
		close(w->fd);
	else
		shutdown(w->fd, SHUT_WR);
	atomic_store(&w->done, 1);
	return NULL;
}

static void stress_once(struct vs *t, size_t total, uint32_t chunk, int mode, uint32_t gport)
{
	struct pkt *p = malloc(sizeof(*p));
	char line[32];
	int hs = unix_connect(t->uds);
	uint32_t hport, ba = 256u << 10, rx_bytes = 0, fwd = 0, last = 0;
	size_t got = 0;
	bool shut = false;
	int idle = 0;
	pthread_t th;
	struct wr_arg w;
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);

	assert_int_equal(write(hs, line, (size_t)n), n);
	pump(t);
	assert_true(rx_get(t, p));
	assert_int_equal(p->op, REQUEST);
	hport = p->src_port;
	tx(t, RESPONSE, gport, hport, 0, ba, 0, NULL, 0);
	n = snprintf(line, sizeof(line), "OK %u\n", hport);
	host_read(hs, line, (size_t)n);
	w.fd = hs;
	w.total = total;
	w.mode = mode;
	atomic_init(&w.done, 0);
	pthread_create(&th, NULL, writer, &w);
	while (!shut) {
		bool prog = false;
		pump(t);
		while (rx_get(t, p)) {
			prog = true;
			if (p->op == RW) {
				for (uint32_t i = 0; i < p->len; i++)
					if (p->data[i] != (uint8_t)((got + i) * 31 + 7))
						fail_msg("bad byte at %zu", got + i);
				got += p->len;
				rx_bytes += p->len;
				if (rx_bytes > ba)
					fail_msg("credit exceeded");
			} else if (p->op == CREDIT_REQUEST) {
				tx(t, CREDIT_UPDATE, gport, hport, 0, ba, fwd, NULL, 0);
				last = fwd;
			} else if (p->op == SHUTDOWN) {
				if (got != total)
					fail_msg("SHUTDOWN after %zu of %zu", got, total);
				shut = true;
			} else {
				fail_msg("op %u after %zu of %zu", p->op, got, total);
			}
		}
		if (rx_bytes) {
			uint32_t c = rx_bytes < chunk ? rx_bytes : chunk;
			rx_bytes -= c;
			fwd += c;
			prog = true;
			if (ba - (fwd - last) < 65536) {
				tx(t, CREDIT_UPDATE, gport, hport, 0, ba, fwd, NULL, 0);
				last = fwd;
			}
		}
		idle = prog ? 0 : idle + 1;
		if (idle > 300)
			fail_msg("stall: got %zu of %zu, rx_bytes %u fwd %u last %u", got, total,
				 rx_bytes, fwd, last);
	}
	pthread_join(th, NULL);
	if (mode)
		close(hs);
	tx(t, SHUTDOWN, gport, hport, 3, ba, fwd, NULL, 0);
	while (rx_get(t, p))
		;
	free(p);
}

/* Host to guest through the Unix socket under credit (virtio 1.x 5.10.6.3):
 * the fake guest follows Linux's policy (a CREDIT_UPDATE once less than
 * 64 KiB of its buffer is left, answers to CREDIT_REQUEST) and reads in
 * chunks of 1 B to 300 kB; every byte arrives in order, squib never sends
 * beyond the credit, and SHUTDOWN comes only after the last byte, whether
 * the client closed or shut its write side. */
static void test_stress_h2g(void **state)
{
	struct vs *t = *state;
	const uint32_t chunks[] = {65536, 4096, 100000, 1, 300000};

	for (unsigned int i = 0; i < 5; i++)
		stress_once(t, i == 3 ? 200000 : (2u << 20) + i * 777, chunks[i], (int)(i & 1),
			    2000 + i);
}

/* The host client writes 320 KiB and close()s; the guest has read its
 * credit's worth (256 KiB) and sends one byte back after the close, as an
 * echo or an ack would.  squib's send gets EPIPE: every byte the client
 * wrote must still reach the guest (a Unix socket keeps them readable after
 * the peer's close, and vhost-vsock delivers them), with a SHUTDOWN saying
 * the host receives no more, then SHUTDOWN SEND after the last byte (before:
 * squib closed the socket and sent RST after 262144 of 327680 bytes). */
static void test_host_close_still_delivers_h2g(void **state)
{
	struct vs *t = *state;
	struct pkt *p = malloc(sizeof(*p));
	char line[32];
	int hs = unix_connect(t->uds), n;
	uint32_t hport, gport = 3000, ba = 256u << 10, fwd = 0;
	size_t got = 0, total = (256u << 10) + (64u << 10);
	bool sent = false, end = false, rcv_shut = false;
	pthread_t th;
	struct wr_arg w;

	n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	assert_int_equal(write(hs, line, (size_t)n), n);
	pump(t);
	assert_true(rx_get(t, p));
	hport = p->src_port;
	tx(t, RESPONSE, gport, hport, 0, ba, 0, NULL, 0);
	n = snprintf(line, sizeof(line), "OK %u\n", hport);
	host_read(hs, line, (size_t)n);
	w.fd = hs;
	w.total = total;
	w.mode = 0;
	atomic_init(&w.done, 0);
	pthread_create(&th, NULL, writer, &w);
	for (int it = 0; it < 2000 && !end; it++) {
		pump(t);
		while (rx_get(t, p)) {
			if (p->op == RW) {
				got += p->len;
				if (sent) {
					fwd = (uint32_t)got;
					tx(t, CREDIT_UPDATE, gport, hport, 0, ba, fwd, NULL, 0);
				}
			} else if (p->op == CREDIT_REQUEST) {
				tx(t, CREDIT_UPDATE, gport, hport, 0, ba, fwd, NULL, 0);
			} else {
				if (p->op != SHUTDOWN)
					fail_msg("op %u after %zu of %zu bytes", p->op, got, total);
				if (p->flags & 1) /* RCV: the host takes no more */
					rcv_shut = true;
				if (!(p->flags & 2)) /* SEND not yet: more data may come */
					continue;
				end = true;
				break;
			}
		}
		if (!sent && atomic_load(&w.done)) {
			pthread_join(th, NULL); /* the host client has closed */
			sent = true;
			fwd = (uint32_t)got;
			tx(t, RW, gport, hport, 0, ba, fwd, "x", 1);
		}
	}
	assert_int_equal(got, total);
	assert_true(end);
	assert_true(rcv_shut);
	{
		/* the guest's "x" met a closed peer: counted, as the sigpipe
		 * metric Firecracker's test_vsock checks */
		struct sqb_vio_metrics m;

		sqb_vio_get_metrics(t->dev, &m);
		assert_true(m.broken_pipes >= 1);
	}
	free(p);
}

/* ---- batched RX reads -------------------------------------------------- */

/* Every recvmsg the device makes, counted: this definition stands in for
 * libc's in this executable. */
static atomic_uint n_recvmsg;

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	atomic_fetch_add(&n_recvmsg, 1);
	return (ssize_t)syscall(SYS_recvmsg, fd, m, flags);
}

/* One used RX entry as the guest sees it. */
struct urec {
	uint32_t id, used, len, fwd, buf_alloc;
	uint16_t op;
};

enum { BC_PLAIN, BC_CREDIT, BC_SHORT, BC_BAD };

#define BC_MAX 16

/* One scenario on a fresh device that fills at most batch RX buffers per
 * read: guest-initiated connection (its buffer allocation ba), 4 bytes
 * guest -> host (so fwd_cnt is 4), then the RX buffers of the case's layout
 * and host bytes; records every used RX entry (RW payloads checked against
 * the stream) and the recvmsg calls the host bytes took. */
static unsigned int batch_case(int kind, unsigned int batch, struct urec *out, unsigned int *nrecv,
			       bool *broken)
{
	static const uint32_t bytes[] = {6 * 4052 + 1000, 20000, 6 * 4052 + 1000, 6 * 4052 + 1000};
	struct vs *t;
	struct pkt *p = malloc(sizeof(*p));
	uint8_t *buf = malloc(32768);
	char path[160], ping[4];
	uint32_t ba = kind == BC_CREDIT ? 10000 : 256u << 10, got = 0, id, used;
	unsigned int n = 0, before;
	int ls, as;

	t = calloc(1, sizeof(*t));
	vt_env_init(&t->e);
	snprintf(t->dir, sizeof(t->dir), "/tmp/sqbvs.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->uds, sizeof(t->uds), "%s/v.sock", t->dir);
	setup_dev(t, 1); /* one RX buffer: the RESPONSE's, posted again */
	sqb_vio_vsock_set_rx_batch(t->dev, batch);
	snprintf(path, sizeof(path), "%s_7000", t->uds);
	ls = unix_listen(path);
	guest_open(t, ls, &as, 900, 7000, ba);
	tx(t, RW, 900, 7000, 0, ba, 0, "ping", 4);
	host_read(as, ping, 4);
	/* That one buffer is A; B .. F after it, the third (C) odd in two cases. */
	for (unsigned int i = 0; i < 5; i++) {
		uint16_t h = t->d.q[0].next_desc;
		struct vt_seg sg = {MQ_BUF(0) + (h % 64) * RXSZ, RXSZ, true};

		if (kind == BC_SHORT && i == 1)
			sg.len = 20; /* no room for a header: used 0, skipped */
		if (kind == BC_BAD && i == 1)
			sg.gpa = VT_R0_SIZE + 0x10000; /* between the RAM regions */
		mq_add(&t->d, 0, &sg, 1);
	}
	for (uint32_t i = 0; i < bytes[kind]; i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(write(as, buf, bytes[kind]), (ssize_t)bytes[kind]);
	before = atomic_load(&n_recvmsg);
	pump(t);
	*nrecv = atomic_load(&n_recvmsg) - before;
	while (mq_used(&t->d, 0, &id, &used)) {
		struct urec *u = &out[n++];
		const uint8_t *b = vt_ptr(&t->e, MQ_BUF(0) + (id % 64) * RXSZ);

		assert_true(n <= BC_MAX);
		*u = (struct urec){.id = id, .used = used};
		if (used < 44)
			continue;
		u->len = g32(b + 24);
		u->op = g16(b + 30);
		u->buf_alloc = g32(b + 36);
		u->fwd = g32(b + 40);
		assert_int_equal(used, 44 + u->len);
		assert_int_equal(g32(b + 16), 7000);
		assert_int_equal(g32(b + 20), 900);
		if (u->op == RW) {
			assert_memory_equal(b + 44, buf + got, u->len);
			got += u->len;
		}
	}
	*broken = sqb_vio_status(t->dev) & SQB_VIO_S_NEEDS_RESET;
	close(as);
	close(ls);
	assert_int_equal(teardown((void **)&t), 0);
	free(buf);
	free(p);
	return n;
}

/* Up to 32 RX buffers filled by one recvmsg of a streaming connection: the
 * guest sees exactly what one read per buffer gives (same packets, lengths,
 * fwd_cnt, buffers used in ring order), in fewer reads; a batch stops at
 * the guest's credit, at a buffer too short for a header (still used with
 * 0 bytes, as before) and at a malformed descriptor (the packets before it
 * delivered, then the device needs a reset, as before). */
static void test_rx_batch(void **state)
{
	(void)state;
	for (int kind = BC_PLAIN; kind <= BC_BAD; kind++) {
		struct urec one[BC_MAX], many[BC_MAX];
		unsigned int r1, rn, n1, nn;
		bool b1, bn;

		n1 = batch_case(kind, 1, one, &r1, &b1);
		nn = batch_case(kind, 32, many, &rn, &bn);
		print_message("case %d: %u used entries; %u recvmsg one per buffer, %u batched\n",
			      kind, nn, r1, rn);
		assert_int_equal(n1, nn);
		assert_memory_equal(one, many, n1 * sizeof(one[0]));
		assert_int_equal(b1, bn);
		for (unsigned int i = 0; i < nn; i++)
			if (many[i].used >= 44) {
				assert_int_equal(many[i].fwd, 4);
				assert_int_equal(many[i].buf_alloc, 256u << 10);
			}
		switch (kind) {
		case BC_PLAIN: /* 6 buffers full; one read, then one for the other 5 */
			assert_int_equal(nn, 6);
			for (unsigned int i = 0; i < 6; i++) {
				assert_int_equal(many[i].op, RW);
				assert_int_equal(many[i].len, 4052);
			}
			assert_int_equal(r1, 6);
			assert_int_equal(rn, 2);
			assert_false(bn);
			break;
		case BC_CREDIT: /* 10000 of credit: 4052 + (4052 + 1896), then ask */
			assert_int_equal(nn, 4);
			assert_int_equal(many[0].len, 4052);
			assert_int_equal(many[1].len, 4052);
			assert_int_equal(many[2].len, 1896);
			assert_int_equal(many[3].op, CREDIT_REQUEST);
			assert_int_equal(r1, 3);
			assert_int_equal(rn, 2);
			break;
		case BC_SHORT: /* A | B, stop at the 20-byte C (used 0) | D E F */
			assert_int_equal(nn, 6);
			assert_int_equal(many[2].used, 0);
			for (unsigned int i = 0; i < 6; i++)
				if (i != 2)
					assert_int_equal(many[i].len, 4052);
			assert_int_equal(r1, 5);
			assert_int_equal(rn, 3);
			break;
		case BC_BAD: /* A | B, the ring error at the third: reset needed */
			assert_int_equal(nn, 2);
			assert_int_equal(many[0].len, 4052);
			assert_int_equal(many[1].len, 4052);
			assert_true(bn);
			assert_int_equal(rn, 2);
			break;
		}
	}
}

/* ---- batched TX sends -------------------------------------------------- */

static atomic_uint n_sendmsg;

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	atomic_fetch_add(&n_sendmsg, 1);
	return (ssize_t)syscall(SYS_sendmsg, fd, m, flags);
}

/* A TX chain queued without a notify: header, then its payload over two
 * descriptors (split at cut) in slot (0 .. 7, 128 KiB each). */
static uint16_t tx_queue(struct vs *t, unsigned int slot, uint16_t op, uint32_t sp, uint32_t dp,
			 uint32_t flags, const uint8_t *data, uint32_t dlen, uint32_t cut)
{
	uint64_t g = VT_R1_BASE + (slot % 8) * 0x20000ull;
	struct vt_seg s[3] = {{g, 44, false}};
	unsigned int n = 1;
	uint8_t hdr[44];

	assert_true(cut <= dlen && 64 + dlen + 128 <= 0x20000);
	put_hdr(hdr, CID, 2, sp, dp, dlen, 1, op, flags, 256u << 10, 0);
	memcpy(vt_ptr(&t->e, g), hdr, 44);
	if (dlen) {
		memcpy(vt_ptr(&t->e, g + 64), data, cut);
		memcpy(vt_ptr(&t->e, g + 64 + cut + 128), data + cut, dlen - cut);
	}
	if (cut)
		s[n++] = (struct vt_seg){g + 64, cut, false};
	if (dlen > cut)
		s[n++] = (struct vt_seg){g + 64 + cut + 128, dlen - cut, false};
	return mq_add(&t->d, 1, s, n);
}

/* Read n bytes from fd into buf (the device pumped between reads, so that
 * what it holds for a full socket follows). */
static void host_read_pumped(struct vs *t, int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 100000 && got < n; i++) {
		ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);

		if (r > 0)
			got += (size_t)r;
		pump(t);
	}
	assert_int_equal(got, n);
}

/* One scenario with at most batch TX packets per sendmsg: two guest-initiated
 * connections A and B; one notify for A1 A2 B1 A3 SHUTDOWN(SEND)A B2; then
 * four 64 KiB packets for B, more than the host socket takes at once. */
static void tx_batch_case(unsigned int batch, unsigned int *nsend, uint16_t *ids,
			  unsigned int *nids)
{
	static uint8_t a[3][3000], b[2][5000], big[4][65536], back[4 * 65536];
	struct vs *t = calloc(1, sizeof(*t));
	struct pkt *p = malloc(sizeof(*p));
	char path[160];
	int la, lb, sa, sb;
	uint16_t heads[6];
	uint32_t id, len;
	unsigned int before;

	vt_env_init(&t->e);
	snprintf(t->dir, sizeof(t->dir), "/tmp/sqbvs.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->uds, sizeof(t->uds), "%s/v.sock", t->dir);
	setup_dev(t, NRX);
	sqb_vio_vsock_set_tx_batch(t->dev, batch);
	snprintf(path, sizeof(path), "%s_7100", t->uds);
	la = unix_listen(path);
	snprintf(path, sizeof(path), "%s_7101", t->uds);
	lb = unix_listen(path);
	guest_open(t, la, &sa, 910, 7100, 256u << 10);
	guest_open(t, lb, &sb, 911, 7101, 256u << 10);
	for (unsigned int k = 0; k < 3; k++)
		for (unsigned int i = 0; i < sizeof(a[k]); i++)
			a[k][i] = (uint8_t)(i * 7 + k * 101 + 1);
	for (unsigned int k = 0; k < 2; k++)
		for (unsigned int i = 0; i < sizeof(b[k]); i++)
			b[k][i] = (uint8_t)(i * 11 + k * 37 + 3);
	heads[0] = tx_queue(t, 0, RW, 910, 7100, 0, a[0], sizeof(a[0]), 1000);
	heads[1] = tx_queue(t, 1, RW, 910, 7100, 0, a[1], sizeof(a[1]), 0);
	heads[2] = tx_queue(t, 2, RW, 911, 7101, 0, b[0], sizeof(b[0]), 4999);
	heads[3] = tx_queue(t, 3, RW, 910, 7100, 0, a[2], sizeof(a[2]), 1);
	heads[4] = tx_queue(t, 4, SHUTDOWN, 910, 7100, 2, NULL, 0, 0);
	heads[5] = tx_queue(t, 5, RW, 911, 7101, 0, b[1], sizeof(b[1]), 2500);
	before = atomic_load(&n_sendmsg);
	sqb_vio_queue_notify(t->dev, 1);
	*nsend = atomic_load(&n_sendmsg) - before;
	/* Every chain used, in the order the driver queued them. */
	*nids = 0;
	while (mq_used(&t->d, 1, &id, &len)) {
		assert_int_equal(len, 0);
		ids[(*nids)++] = (uint16_t)id;
	}
	assert_int_equal(*nids, 6);
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(ids[i], heads[i]);
	/* A: its three payloads in order, then EOF (the guest's SHUTDOWN). */
	for (unsigned int k = 0; k < 3; k++) {
		host_read(sa, back, sizeof(a[k]));
		assert_memory_equal(back, a[k], sizeof(a[k]));
	}
	assert_true(host_eof(sa));
	for (unsigned int k = 0; k < 2; k++) {
		host_read(sb, back, sizeof(b[k]));
		assert_memory_equal(back, b[k], sizeof(b[k]));
	}
	/* B: 256 KiB in one notify, the whole credit; the socket takes what it
	 * can, the device holds the rest until the host reads. */
	for (unsigned int k = 0; k < 4; k++) {
		for (unsigned int i = 0; i < sizeof(big[k]); i++)
			big[k][i] = (uint8_t)((k * 65536 + i) * 13 + (i >> 9));
	}
	while (rx_get(t, p)) /* credit updates for A and B so far */
		;
	for (unsigned int k = 0; k < 4; k++)
		heads[k] = tx_queue(t, k, RW, 911, 7101, 0, big[k], sizeof(big[k]), 40000 + k);
	sqb_vio_queue_notify(t->dev, 1);
	for (unsigned int k = 0; k < 4; k++) {
		assert_true(mq_used(&t->d, 1, &id, &len));
		assert_int_equal(id, heads[k]);
	}
	{
		int queued = 0;

		ioctl(sb, FIONREAD, &queued);
		print_message("256 KiB sent: %d in the host socket, the rest held by the device\n",
			      queued);
	}
	/* The driver may reuse the buffers now: what the device holds must
	 * already be its own copy. */
	memset(vt_ptr(&t->e, VT_R1_BASE), 0xa5, 4 * 0x20000);
	host_read_pumped(t, sb, back, sizeof(back));
	for (unsigned int k = 0; k < 4; k++)
		assert_memory_equal(back + k * 65536, big[k], 65536);
	close(sa);
	close(sb);
	close(la);
	close(lb);
	assert_int_equal(teardown((void **)&t), 0);
	free(p);
}

/* Up to 64 TX packets of one connection go to its host socket by one
 * sendmsg straight from guest memory: the host sees the same bytes in the
 * same order as with one send per packet, a packet of another connection or
 * a control packet sends the batch first (A's EOF comes after all its
 * data), the chains are used in the driver's order, and what a full socket
 * did not take is held by the device before the chains are given back. */
static void test_tx_batch(void **state)
{
	unsigned int s1, sn, n1, nn;
	uint16_t id1[8], idn[8];

	(void)state;
	tx_batch_case(1, &s1, id1, &n1);
	tx_batch_case(64, &sn, idn, &nn);
	print_message("6 TX packets, 5 RW: %u sendmsg one per packet, %u batched\n", s1, sn);
	assert_int_equal(n1, nn);
	assert_memory_equal(id1, idn, n1 * sizeof(id1[0]));
	assert_int_equal(s1, 5); /* A1 A2 B1 A3 B2 */
	assert_int_equal(sn, 4); /* A1+A2, B1, A3, B2 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_parser),
	    cmocka_unit_test(test_rx_batch),
	    cmocka_unit_test(test_tx_batch),
	    cmocka_unit_test_setup_teardown(test_stress_h2g, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_close_still_delivers_h2g, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_initiated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_bad_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_half_connect_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit_request_repeats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_accept_out_of_fds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_reset_drops_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_initiated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit_host_to_guest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit_guest_to_host, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_never_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_transport_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kat_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx_reset_without_buffer, setup_ev,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx_tx_queued_at_save, setup_ev, teardown),
	    cmocka_unit_test_setup_teardown(test_quiesce_drains_tx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_gate_waits_for_the_driver, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_resets_source, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_port_last_across_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
