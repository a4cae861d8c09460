/* MMDS behind a real virtio-net device (the frame detour of virtio.h),
 * through fake guest rings: the device, the network stack and the store are
 * the ones squib runs, wired as runtime/dev_net.c wires them.  Frames are
 * built here from RFC 826 (ARP), RFC 791 (IPv4) and RFC 793 (TCP) with this
 * file's own checksum code; the answers are checked the same way.  What a
 * guest must see (docs/mmds/mmds-user-guide.md): an ARP reply for the MMDS
 * address, the document over HTTP, and none of it on the tap; every other
 * frame still reaches the tap. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mmds.h"
#include "mmds_ns.h"
#include "vio_test_mq.h"

#define HDR  12u
#define RXSZ 2048u

static const uint8_t GMAC[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
static const uint8_t MMDS_MAC[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};
static const uint8_t GIP[4] = {169, 254, 0, 2}; /* any guest address will do */
static const uint8_t MIP[4] = {169, 254, 169, 254};

struct mt {
	struct vt_env e;
	struct mq_drv d;
	sqb_vio_dev *dev;
	sqb_mmds *m;
	sqb_mmds_ns *ns;
	struct sqb_vio_net_detour det;
	int sv[2];
};

static uint64_t clock_ms = 1000;

static bool d_tx(void *ctx, const uint8_t *f, size_t len)
{
	return sqb_mmds_ns_detour(ctx, f, len, clock_ms);
}
static bool d_pending(void *ctx)
{
	return sqb_mmds_ns_pending(ctx);
}
static size_t d_rx(void *ctx, uint8_t *buf, size_t cap)
{
	return sqb_mmds_ns_next_frame(ctx, buf, cap, clock_ms);
}
static void d_reset(void *ctx)
{
	sqb_mmds_ns_reset(ctx);
}
static int respond(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *rlen)
{
	return sqb_mmds_http_respond(ctx, req, len, clock_ms, resp, rlen);
}

static int setup(void **state)
{
	struct mt *t = calloc(1, sizeof(*t));
	struct sqb_vio_net_opts o = SQB_VIO_NET_OPTS_INIT;
	struct sqb_mmds_ns_config nc = {0};
	struct sqb_diag diag = {0};
	static const char doc[] = "{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\"}}}";
	char err[256];

	vt_env_init(&t->e);
	assert_int_equal(sqb_mmds_new(SQB_MMDS_DEFAULT_LIMIT, &t->m), 0);
	assert_int_equal(sqb_mmds_put(t->m, doc, sizeof(doc) - 1, err, sizeof(err)), 0);
	nc.ipv4 = SQB_MMDS_DEFAULT_IPV4;
	memcpy(nc.mac, MMDS_MAC, 6);
	nc.respond = respond;
	nc.ctx = t->m;
	nc.metrics = sqb_mmds_metrics_ref(t->m);
	assert_int_equal(sqb_mmds_ns_new(&nc, &t->ns), 0);
	t->det = (struct sqb_vio_net_detour){t->ns, d_tx, d_pending, d_rx, d_reset};
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, t->sv), 0);
	o.tap_fd = t->sv[0];
	o.mac = GMAC;
	o.detour = &t->det;
	assert_int_equal(sqb_vio_net_new(&t->dev, &t->e.host, &o, &diag), 0);
	close(t->sv[0]);
	assert_int_equal(mq_init(&t->d, &t->e, t->dev, 2, 64, 0) & SQB_VIO_S_DRIVER_OK,
			 SQB_VIO_S_DRIVER_OK);
	for (unsigned int i = 0; i < 32; i++) {
		struct vt_seg s = {MQ_BUF(0) + i * 4096ull, RXSZ, true};
		mq_add(&t->d, 0, &s, 1);
	}
	sqb_vio_queue_notify(t->dev, 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct mt *t = *state;

	sqb_vio_dev_free(t->dev);
	sqb_mmds_ns_free(t->ns);
	sqb_mmds_free(t->m);
	close(t->sv[1]);
	vt_env_fini(&t->e);
	free(t);
	return 0;
}

/* RFC 1071 one's complement sum. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void tx(struct mt *t, const uint8_t *f, uint32_t len)
{
	static unsigned int slot;
	uint64_t g = MQ_BUF(1) + (slot++ % 8) * 0x8000ull;
	struct vt_seg s[2] = {{g, HDR, false}, {g + 64, len, false}};
	uint32_t id, ulen;

	memset(vt_ptr(&t->e, g), 0, HDR);
	memcpy(vt_ptr(&t->e, g + 64), f, len);
	mq_add(&t->d, 1, s, 2);
	sqb_vio_queue_notify(t->dev, 1);
	assert_true(mq_used(&t->d, 1, &id, &ulen)); /* completed, whoever took it */
}

/* The next frame the device gave the guest (after the vnet header), 0 if none. */
static uint32_t rx(struct mt *t, uint8_t *out)
{
	uint32_t id, len;
	struct vt_seg s;

	if (!mq_used(&t->d, 0, &id, &len))
		return 0;
	assert_true(len > HDR && len <= RXSZ);
	memcpy(out, vt_ptr(&t->e, MQ_BUF(0) + id * 4096ull) + HDR, len - HDR);
	s = (struct vt_seg){MQ_BUF(0) + id * 4096ull, RXSZ, true};
	mq_add(&t->d, 0, &s, 1); /* give the buffer back */
	sqb_vio_queue_notify(t->dev, 0);
	return len - HDR;
}

static void eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, GMAC, 6);
	put16(f + 12, type);
}

static uint32_t arp_req(uint8_t *f, const uint8_t tip[4])
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	memset(f, 0, 60);
	eth(f, bcast, 0x0806);
	put16(f + 14, 1);      /* htype Ethernet */
	put16(f + 16, 0x0800); /* ptype IPv4 */
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1); /* request */
	memcpy(f + 22, GMAC, 6);
	memcpy(f + 28, GIP, 4);
	memcpy(f + 38, tip, 4);
	return 42; /* as Linux sends it on virtio-net: no padding to 60 */
}

/* IPv4 + TCP from the guest's port 40000 to dip:80. */
static uint32_t tcp_seg(uint8_t *f, const uint8_t dip[4], uint32_t seq, uint32_t ack,
			uint8_t flags, const void *data, uint32_t dlen)
{
	uint8_t *ip = f + 14, *tcp = ip + 20;
	uint32_t tl = 20 + dlen, s;

	memset(f, 0, 14 + 20 + tl);
	eth(f, MMDS_MAC, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + tl));
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, GIP, 4);
	memcpy(ip + 16, dip, 4);
	put16(ip + 10, fold(sum16(ip, 20, 0)));
	put16(tcp, 40000);
	put16(tcp + 2, 80);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	if (dlen)
		memcpy(tcp + 20, data, dlen);
	s = sum16(ip + 12, 8, 0) + 6 + tl;
	put16(tcp + 16, fold(sum16(tcp, tl, s)));
	return 14 + 20 + tl;
}

/* Check an IPv4/TCP frame to the guest: addresses, both checksums. */
static void check_tcp(const uint8_t *f, uint32_t len)
{
	const uint8_t *ip = f + 14;
	uint32_t ihl, tl;

	assert_true(len >= 54);
	assert_memory_equal(f, GMAC, 6);
	assert_memory_equal(f + 6, MMDS_MAC, 6);
	assert_int_equal(get16(f + 12), 0x0800);
	ihl = (ip[0] & 15u) * 4;
	tl = get16(ip + 2);
	assert_int_equal(ip[0] >> 4, 4);
	assert_true(ihl >= 20 && tl >= ihl + 20 && 14 + tl <= len);
	assert_int_equal(fold(sum16(ip, ihl, 0)), 0);
	assert_int_equal(ip[9], 6);
	assert_memory_equal(ip + 12, MIP, 4);
	assert_memory_equal(ip + 16, GIP, 4);
	assert_int_equal(fold(sum16(ip + ihl, tl - ihl, sum16(ip + 12, 8, 0) + 6 + tl - ihl)), 0);
}

static void test_arp(void **state)
{
	struct mt *t = *state;
	static const uint8_t other[4] = {169, 254, 0, 1};
	uint8_t f[2048], got[2048];
	uint32_t n;

	/* who-has the MMDS address: answered by the device, never on the tap */
	tx(t, f, arp_req(f, MIP));
	n = rx(t, f);
	assert_true(n >= 42);
	assert_memory_equal(f, GMAC, 6);
	assert_memory_equal(f + 6, MMDS_MAC, 6);
	assert_int_equal(get16(f + 12), 0x0806);
	assert_int_equal(get16(f + 20), 2); /* reply */
	assert_memory_equal(f + 22, MMDS_MAC, 6);
	assert_memory_equal(f + 28, MIP, 4);
	assert_memory_equal(f + 32, GMAC, 6);
	assert_memory_equal(f + 38, GIP, 4);
	assert_int_equal(recv(t->sv[1], got, sizeof(got), 0), -1);
	/* who-has another address: the tap's, untouched */
	tx(t, f, arp_req(f, other));
	assert_int_equal(rx(t, got), 0);
	assert_int_equal(recv(t->sv[1], got, sizeof(got), 0), HDR + 42);
	assert_memory_equal(got + HDR, f, 42);
}

/* The three-way handshake, one GET, the whole answer, FIN. */
static void test_http_get(void **state)
{
	struct mt *t = *state;
	static const char req[] = "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: 169.254.169.254\r\n"
				  "Accept: application/json\r\n\r\n";
	uint8_t f[2048], resp[8192];
	uint32_t n, isn, seq = 1000, got = 0, guard = 0;
	const uint8_t *tcp;

	tx(t, f, tcp_seg(f, MIP, seq, 0, 0x02 /* SYN */, NULL, 0));
	n = rx(t, f);
	check_tcp(f, n);
	tcp = f + 34;
	assert_int_equal(tcp[13] & 0x12, 0x12); /* SYN|ACK */
	assert_int_equal(get32(tcp + 8), seq + 1);
	isn = get32(tcp + 4);
	seq++;
	tx(t, f, tcp_seg(f, MIP, seq, isn + 1, 0x10 /* ACK */, NULL, 0));
	tx(t, f, tcp_seg(f, MIP, seq, isn + 1, 0x18 /* PSH|ACK */, req, sizeof(req) - 1));
	seq += sizeof(req) - 1;
	/* collect the answer, acking what arrives */
	while ((n = rx(t, f)) && guard++ < 64) {
		uint32_t ihl, tl, doff, plen;

		check_tcp(f, n);
		ihl = (f[14] & 15u) * 4;
		tl = get16(f + 16);
		tcp = f + 14 + ihl;
		doff = (tcp[12] >> 4) * 4u;
		plen = tl - ihl - doff;
		if (plen) {
			assert_int_equal(get32(tcp + 4), isn + 1 + got);
			assert_true(got + plen < sizeof(resp));
			memcpy(resp + got, tcp + doff, plen);
			got += plen;
			tx(t, f, tcp_seg(f, MIP, seq, isn + 1 + got, 0x10, NULL, 0));
		}
	}
	resp[got] = 0;
	if (!strstr((char *)resp, "HTTP/1.1 200") || !strstr((char *)resp, "\"ami-12345678\""))
		fail_msg("MMDS answer: '%s'", resp);
	/* nothing of it went to the tap */
	assert_int_equal(recv(t->sv[1], f, sizeof(f), 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_arp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_http_get, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
