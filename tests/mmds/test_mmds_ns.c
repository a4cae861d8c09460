/* MMDS network stack with frames built by hand: Ethernet II, ARP (RFC 826),
 * IPv4 (RFC 791) and TCP (RFC 793) headers and checksums are written here
 * from the RFCs, not with the stack's helpers, and every frame the stack
 * produces has its IPv4 header and TCP checksums verified by this file's own
 * code.  The responder is a fake that records the request and answers with a
 * configurable number of patterned bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mmds.h"
#include "mmds_ns.h"

#define MMDS_IP	 0xa9fea9feu
#define GUEST_IP 0x0a000002u

static const uint8_t mmds_mac[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};
static const uint8_t guest_mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

/* ---- fake responder ---- */

static uint8_t last_req[4096];
static size_t last_req_len;
static int nreq;
static size_t resp_size = 64; /* bytes the responder answers */
static int resp_rc;

static uint8_t resp_byte(size_t i)
{
	return (uint8_t)('a' + i % 26);
}

static int fake_respond(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len)
{
	(void)ctx;
	nreq++;
	last_req_len = len < sizeof(last_req) ? len : sizeof(last_req);
	memcpy(last_req, req, last_req_len);
	if (resp_rc)
		return resp_rc;
	*resp = malloc(resp_size ? resp_size : 1);
	if (!*resp)
		return -1;
	for (size_t i = 0; i < resp_size; i++)
		(*resp)[i] = resp_byte(i);
	*resp_len = resp_size;
	return 0;
}

/* ---- RFC helpers ---- */

static void w16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void w32(uint8_t *p, uint32_t v)
{
	w16(p, (uint16_t)(v >> 16));
	w16(p + 2, (uint16_t)v);
}

static uint16_t r16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t r32(const uint8_t *p)
{
	return (uint32_t)r16(p) << 16 | r16(p + 2);
}

/* RFC 1071: ones' complement of the ones' complement sum of 16-bit words,
 * an odd last byte padded with zero. */
static uint16_t rfc_sum(uint32_t acc, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* RFC 793 3.1: the checksum covers a 96-bit pseudo header (source,
 * destination, zero, protocol 6, TCP length) and the segment. */
static uint16_t tcp_sum(uint32_t src, uint32_t dst, const uint8_t *seg, size_t n)
{
	uint8_t ph[12];

	w32(ph, src);
	w32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = 6;
	w16(ph + 10, (uint16_t)n);
	uint16_t a = (uint16_t)~rfc_sum(0, ph, 12);
	return rfc_sum(a, seg, n);
}

static size_t mk_arp(uint8_t *f, uint16_t oper, uint32_t spa, uint32_t tpa)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	w16(f + 12, 0x0806);
	w16(f + 14, 1);	     /* htype Ethernet */
	w16(f + 16, 0x0800); /* ptype IPv4 */
	f[18] = 6;
	f[19] = 4;
	w16(f + 20, oper);
	memcpy(f + 22, guest_mac, 6);
	w32(f + 28, spa);
	memset(f + 32, 0, 6);
	w32(f + 38, tpa);
	return 42;
}

struct tseg {
	uint32_t src, dst;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	int mss; /* <0: no option */
	const void *data;
	size_t len;
};

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static size_t mk_tcp(uint8_t *f, const struct tseg *s)
{
	uint8_t *ip = f + 14, *t = ip + 20;
	size_t hl = s->mss >= 0 ? 24 : 20, tl = hl + s->len;

	memcpy(f, mmds_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	w16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	w16(ip + 2, (uint16_t)(20 + tl));
	w16(ip + 6, 0x4000); /* DF, as Linux sends TCP */
	ip[8] = 64;
	ip[9] = 6;
	w32(ip + 12, s->src);
	w32(ip + 16, s->dst);
	w16(ip + 10, rfc_sum(0, ip, 20));
	memset(t, 0, hl);
	w16(t, s->sport);
	w16(t + 2, s->dport);
	w32(t + 4, s->seq);
	w32(t + 8, s->ack);
	t[12] = (uint8_t)((hl / 4) << 4);
	t[13] = s->flags;
	w16(t + 14, s->win);
	if (s->mss >= 0) {
		t[20] = 2;
		t[21] = 4;
		w16(t + 22, (uint16_t)s->mss);
	}
	if (s->len)
		memcpy(t + hl, s->data, s->len);
	w16(t + 16, tcp_sum(s->src, s->dst, t, tl));
	return 14 + 20 + tl;
}

/* An output TCP frame, checked: Ethernet to the guest from the MMDS MAC,
 * IPv4 header sum, TCP sum with the pseudo header, sizes. */
struct oseg {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win, dport;
	int mss;
	uint8_t ttl;
	uint16_t frag;
	uint8_t payload[1600];
	size_t len;
};

static void parse_out(const uint8_t *f, size_t n, struct oseg *o)
{
	const uint8_t *ip = f + 14, *t;
	size_t ihl, tot, hl;

	assert_true(n >= 54);
	assert_true(n <= 1514);
	assert_memory_equal(f, guest_mac, 6);
	assert_memory_equal(f + 6, mmds_mac, 6);
	assert_int_equal(r16(f + 12), 0x0800);
	assert_int_equal(ip[0] >> 4, 4);
	ihl = (size_t)(ip[0] & 15) * 4;
	assert_int_equal(ihl, 20);
	tot = r16(ip + 2);
	assert_int_equal(tot, n - 14);
	assert_int_equal(rfc_sum(0, ip, ihl), 0);
	assert_int_equal(ip[9], 6);
	assert_int_equal(r32(ip + 12), MMDS_IP);
	assert_int_equal(r32(ip + 16), GUEST_IP);
	t = ip + ihl;
	assert_int_equal(tcp_sum(MMDS_IP, GUEST_IP, t, tot - ihl), 0);
	assert_int_equal(r16(t), 80);
	hl = (size_t)(t[12] >> 4) * 4;
	assert_true(hl >= 20 && hl <= tot - ihl);
	o->dport = r16(t + 2);
	o->seq = r32(t + 4);
	o->ack = r32(t + 8);
	o->flags = t[13];
	o->win = r16(t + 14);
	o->ttl = ip[8];
	o->frag = r16(ip + 6);
	o->mss = -1;
	if (hl == 24 && t[20] == 2 && t[21] == 4)
		o->mss = r16(t + 22);
	o->len = tot - ihl - hl;
	assert_true(o->len <= sizeof(o->payload));
	memcpy(o->payload, t + hl, o->len);
}

/* ---- fixture ---- */

struct fx {
	sqb_mmds_ns *ns;
	struct sqb_mmds_metrics m;
	uint64_t now;
};

static struct fx *fx_new(bool verify)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct sqb_mmds_ns_config c = {
	    .ipv4 = MMDS_IP,
	    .mac = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01},
	    .respond = fake_respond,
	    .metrics = &x->m,
	    .verify_csum = verify,
	};

	assert_int_equal(sqb_mmds_ns_new(&c, &x->ns), 0);
	x->now = 1000;
	nreq = 0;
	last_req_len = 0;
	resp_size = 64;
	resp_rc = 0;
	return x;
}

static int setup(void **state)
{
	*state = fx_new(false);
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	sqb_mmds_ns_free(x->ns);
	free(x);
	return 0;
}

static bool send_seg(struct fx *x, const struct tseg *s)
{
	uint8_t f[4096];
	size_t n = mk_tcp(f, s);
	return sqb_mmds_ns_detour(x->ns, f, n, x->now);
}

/* Next output TCP frame, parsed; false when none. */
static bool next_out(struct fx *x, struct oseg *o)
{
	uint8_t f[2048];
	size_t n = sqb_mmds_ns_next_frame(x->ns, f, sizeof(f), x->now);

	if (!n)
		return false;
	parse_out(f, n, o);
	return true;
}

/* A guest socket: its side of one connection. */
struct peer {
	uint16_t port;
	uint32_t snd_nxt; /* guest's next sequence number */
	uint32_t rcv_nxt; /* next byte expected from MMDS */
	uint16_t mss;
};

static struct tseg seg_of(const struct peer *p, uint8_t flags, uint16_t win)
{
	struct tseg s = {.src = GUEST_IP,
			 .dst = MMDS_IP,
			 .sport = p->port,
			 .dport = 80,
			 .seq = p->snd_nxt,
			 .ack = p->rcv_nxt,
			 .flags = flags,
			 .win = win,
			 .mss = -1};
	return s;
}

static void handshake(struct fx *x, struct peer *p, int mss, uint16_t win)
{
	struct tseg s = seg_of(p, F_SYN, win);
	struct oseg o;

	s.ack = 0;
	s.mss = mss;
	assert_true(send_seg(x, &s));
	assert_true(sqb_mmds_ns_pending(x->ns));
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_SYN | F_ACK);
	assert_int_equal(o.ack, p->snd_nxt + 1);
	assert_int_equal(o.dport, p->port);
	p->mss = (uint16_t)o.mss;
	p->snd_nxt++;
	p->rcv_nxt = o.seq + 1;
	assert_false(next_out(x, &o));
	s = seg_of(p, F_ACK, win);
	assert_true(send_seg(x, &s));
	assert_false(sqb_mmds_ns_pending(x->ns));
}

static void send_data(struct fx *x, struct peer *p, const char *d, size_t n, uint16_t win)
{
	struct tseg s = seg_of(p, F_ACK | F_PSH, win);

	s.data = d;
	s.len = n;
	assert_true(send_seg(x, &s));
	p->snd_nxt += (uint32_t)n;
}

static void send_ack(struct fx *x, struct peer *p, uint16_t win)
{
	struct tseg s = seg_of(p, F_ACK, win);
	assert_true(send_seg(x, &s));
}

/* Reads every frame now available, checking it continues the stream;
 * appends payload to buf.  Returns bytes appended. */
static size_t drain(struct fx *x, struct peer *p, uint8_t *buf, size_t *at, uint8_t *fl)
{
	struct oseg o;
	size_t got = 0;

	*fl = 0;
	while (next_out(x, &o)) {
		assert_int_equal(o.seq, p->rcv_nxt);
		assert_int_equal(o.ack, p->snd_nxt);
		assert_true(o.flags & F_ACK);
		assert_true(o.len <= p->mss);
		memcpy(buf + *at, o.payload, o.len);
		*at += o.len;
		got += o.len;
		p->rcv_nxt += (uint32_t)o.len + ((o.flags & F_FIN) ? 1 : 0);
		*fl |= o.flags;
	}
	return got;
}

/* ---- tests ---- */

static void test_arp_request(void **state)
{
	struct fx *x = *state;
	uint8_t f[64], out[64];
	size_t n = mk_arp(f, 1, GUEST_IP, MMDS_IP);

	assert_true(sqb_mmds_ns_detour(x->ns, f, n, x->now));
	assert_int_equal(x->m.rx_accepted, 1);
	assert_true(sqb_mmds_ns_pending(x->ns));
	n = sqb_mmds_ns_next_frame(x->ns, out, sizeof(out), x->now);
	assert_int_equal(n, 42);
	assert_memory_equal(out, guest_mac, 6);
	assert_memory_equal(out + 6, mmds_mac, 6);
	assert_int_equal(r16(out + 12), 0x0806);
	assert_int_equal(r16(out + 14), 1);
	assert_int_equal(r16(out + 16), 0x0800);
	assert_int_equal(out[18], 6);
	assert_int_equal(out[19], 4);
	assert_int_equal(r16(out + 20), 2); /* reply */
	assert_memory_equal(out + 22, mmds_mac, 6);
	assert_int_equal(r32(out + 28), MMDS_IP);
	assert_memory_equal(out + 32, guest_mac, 6);
	assert_int_equal(r32(out + 38), GUEST_IP);
	assert_int_equal(x->m.tx_frames, 1);
	assert_int_equal(x->m.tx_bytes, 42);
	assert_int_equal(x->m.tx_count, 1);
	assert_false(sqb_mmds_ns_pending(x->ns));
	assert_int_equal(sqb_mmds_ns_next_frame(x->ns, out, sizeof(out), x->now), 0);

	/* An ARP reply for the address is consumed but not answered. */
	n = mk_arp(f, 2, GUEST_IP, MMDS_IP);
	assert_true(sqb_mmds_ns_detour(x->ns, f, n, x->now));
	assert_false(sqb_mmds_ns_pending(x->ns));
}

static void test_not_for_mmds(void **state)
{
	struct fx *x = *state;
	uint8_t f[128];
	size_t n = mk_arp(f, 1, GUEST_IP, 0x0a000001u);
	struct peer p = {.port = 5000, .snd_nxt = 100};
	struct tseg s = seg_of(&p, F_SYN, 1000);

	assert_false(sqb_mmds_ns_detour(x->ns, f, n, x->now));
	s.dst = 0x01020304u;
	assert_false(send_seg(x, &s));
	/* IPv6 and other ethertypes */
	n = mk_tcp(f, &s);
	w16(f + 12, 0x86dd);
	assert_false(sqb_mmds_ns_detour(x->ns, f, n, x->now));
	/* shorter than an Ethernet header */
	assert_false(sqb_mmds_ns_detour(x->ns, f, 13, x->now));
	assert_int_equal(x->m.rx_bad_eth, 1);
	assert_int_equal(x->m.rx_accepted, 0);
	assert_false(sqb_mmds_ns_pending(x->ns));
}

static void test_handshake(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40000, .snd_nxt = 0xfffffff0u};
	struct tseg s = seg_of(&p, F_SYN, 64240);
	struct oseg o;
	uint32_t isn1;

	s.ack = 0;
	s.mss = 1460;
	assert_true(send_seg(x, &s));
	assert_int_equal(x->m.connections_created, 1);
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_SYN | F_ACK);
	assert_int_equal(o.ack, 0xfffffff1u);
	assert_int_equal(o.mss, 1460);
	assert_int_equal(o.win, 2500); /* Firecracker's receive buffer */
	assert_int_equal(o.len, 0);
	assert_int_equal(o.ttl, 1);
	assert_int_equal(o.frag, 0);
	isn1 = o.seq;

	/* No MSS option: RFC 879's 536.  A huge one: capped to fit 1514. */
	struct peer q = {.port = 40001, .snd_nxt = 7};
	s = seg_of(&q, F_SYN, 1000);
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.mss, 536);
	struct peer r = {.port = 40002, .snd_nxt = 9};
	s = seg_of(&r, F_SYN, 1000);
	s.mss = 9000;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.mss, 1460);
	/* An MSS below dumbo's minimum (100): no connection. */
	struct peer u = {.port = 40003, .snd_nxt = 9};
	s = seg_of(&u, F_SYN, 1000);
	s.mss = 50;
	assert_true(send_seg(x, &s));
	assert_false(next_out(x, &o));
	assert_int_equal(x->m.connections_created, 3);
	(void)isn1;

	/* Retransmitted SYN before the ACK: the same SYN-ACK again. */
	struct peer v = {.port = 40004, .snd_nxt = 1000};
	s = seg_of(&v, F_SYN, 1000);
	s.mss = 1400;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	uint32_t isn = o.seq;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_SYN | F_ACK);
	assert_int_equal(o.seq, isn);
	assert_int_equal(o.ack, 1001);
}

static void test_isn_random(void **state)
{
	struct fx *x = *state;
	uint32_t seen[8];
	struct oseg o;

	for (int i = 0; i < 8; i++) {
		struct peer p = {.port = (uint16_t)(2000 + i), .snd_nxt = 5};
		struct tseg s = seg_of(&p, F_SYN, 1000);
		assert_true(send_seg(x, &s));
		assert_true(next_out(x, &o));
		seen[i] = o.seq;
		for (int j = 0; j < i; j++)
			assert_int_not_equal(seen[j], seen[i]);
	}
}

static const char get_req[] = "GET /latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n"
			      "Accept: */*\r\n\r\n";

static void test_get_one_segment(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41000, .snd_nxt = 5000};
	uint8_t buf[4096], fl;
	size_t at = 0;

	handshake(x, &p, 1460, 64240);
	resp_size = 300;
	send_data(x, &p, get_req, sizeof(get_req) - 1, 64240);
	assert_int_equal(nreq, 1);
	assert_int_equal(last_req_len, sizeof(get_req) - 1);
	assert_memory_equal(last_req, get_req, last_req_len);
	assert_int_equal(drain(x, &p, buf, &at, &fl), 300);
	for (size_t i = 0; i < 300; i++)
		assert_int_equal(buf[i], resp_byte(i));
	assert_false(fl & F_FIN);
	send_ack(x, &p, 64240);
	assert_false(sqb_mmds_ns_pending(x->ns));
	assert_int_equal(sqb_mmds_ns_next_timeout(x->ns), UINT64_MAX);

	/* A second request on the same connection (keep-alive). */
	send_data(x, &p, get_req, sizeof(get_req) - 1, 64240);
	assert_int_equal(nreq, 2);
	at = 0;
	assert_int_equal(drain(x, &p, buf, &at, &fl), 300);
	assert_true(x->m.rx_count >= 4);
}

static void test_split_request(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41001, .snd_nxt = 1};
	uint8_t buf[4096], fl;
	size_t at = 0, half = 20;
	struct oseg o;

	handshake(x, &p, 1460, 64240);
	send_data(x, &p, get_req, half, 64240);
	assert_int_equal(nreq, 0);
	/* the partial request is acknowledged, nothing else */
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_ACK);
	assert_int_equal(o.ack, p.snd_nxt);
	assert_int_equal(o.len, 0);
	assert_int_equal(o.win, 2500 - half);
	assert_false(next_out(x, &o));
	send_data(x, &p, get_req + half, sizeof(get_req) - 1 - half, 64240);
	assert_int_equal(nreq, 1);
	assert_int_equal(last_req_len, sizeof(get_req) - 1);
	assert_memory_equal(last_req, get_req, last_req_len);
	assert_int_equal(drain(x, &p, buf, &at, &fl), 64);

	/* Out of order: a segment past the expected sequence is answered with
	 * an ACK of what the stack has, and not used. */
	send_ack(x, &p, 64240);
	struct tseg s = seg_of(&p, F_ACK | F_PSH, 64240);
	s.seq += 10;
	s.data = get_req;
	s.len = sizeof(get_req) - 1;
	assert_true(send_seg(x, &s));
	assert_int_equal(nreq, 1);
	assert_true(next_out(x, &o));
	assert_int_equal(o.ack, p.snd_nxt);
	assert_int_equal(o.len, 0);
	assert_true(x->m.rx_accepted_unusual >= 1);
}

/* Content-Length larger than the body: the head alone is passed on (the
 * responder answers "Invalid request."), nothing waits for the body. */
static void test_content_length_not_awaited(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41002, .snd_nxt = 1};
	static const char req[] =
	    "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 100\r\n\r\nsome body";
	size_t head = sizeof(req) - 1 - strlen("some body");
	uint8_t buf[4096], fl;
	size_t at = 0;

	handshake(x, &p, 1460, 64240);
	send_data(x, &p, req, sizeof(req) - 1, 64240);
	assert_int_equal(nreq, 1);
	assert_int_equal(last_req_len, head);
	assert_memory_equal(last_req, req, head);
	assert_int_equal(drain(x, &p, buf, &at, &fl), 64);

	/* A bare "\n\n" also ends a request. */
	send_ack(x, &p, 64240);
	static const char req2[] = "\nGET / HTTP/1.0\n\n";
	send_data(x, &p, req2, sizeof(req2) - 1, 64240);
	assert_int_equal(nreq, 2);
}

static void test_large_response_small_window(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41003, .snd_nxt = 77};
	static uint8_t buf[8192];
	size_t at = 0, total = 3000, got;
	uint8_t fl;
	int rounds = 0;

	handshake(x, &p, 536, 1000);
	resp_size = total; /* > 2 x 536 */
	send_data(x, &p, get_req, sizeof(get_req) - 1, 1000);
	while (at < total) {
		uint32_t before = p.rcv_nxt;
		got = drain(x, &p, buf, &at, &fl);
		/* never past the window the guest announced */
		assert_true(got <= 1000);
		assert_true(got > 0);
		assert_false(sqb_mmds_ns_pending(x->ns));
		/* unacknowledged data: a retransmission timer runs */
		assert_true(sqb_mmds_ns_next_timeout(x->ns) != UINT64_MAX);
		(void)before;
		send_ack(x, &p, 1000);
		rounds++;
	}
	assert_int_equal(at, total);
	assert_true(rounds >= 3);
	for (size_t i = 0; i < total; i++)
		assert_int_equal(buf[i], resp_byte(i));
	assert_false(sqb_mmds_ns_pending(x->ns));

	/* A full-size MSS: 1460-byte segments, frames of 1514. */
	struct peer q = {.port = 41004, .snd_nxt = 1};
	uint8_t f[2048];
	handshake(x, &q, 1460, 65535);
	send_data(x, &q, get_req, sizeof(get_req) - 1, 65535);
	assert_int_equal(sqb_mmds_ns_next_frame(x->ns, f, sizeof(f), x->now), 1514);
	/* too small a buffer: the frame stays, its length is returned */
	assert_int_equal(sqb_mmds_ns_next_frame(x->ns, f, 100, x->now), 1514);
	assert_int_equal(sqb_mmds_ns_next_frame(x->ns, f, sizeof(f), x->now), 1514);
	assert_int_equal(sqb_mmds_ns_next_frame(x->ns, f, sizeof(f), x->now), 3000 - 2 * 1460 + 54);
}

static void test_retransmit_timeout(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41005, .snd_nxt = 1};
	struct oseg o, o2;

	handshake(x, &p, 1460, 65535);
	resp_size = 100;
	send_data(x, &p, get_req, sizeof(get_req) - 1, 65535);
	assert_true(next_out(x, &o));
	assert_int_equal(o.len, 100);
	assert_false(next_out(x, &o2));
	uint64_t t = sqb_mmds_ns_next_timeout(x->ns);
	assert_true(t > x->now && t != UINT64_MAX);
	x->now = t;
	assert_true(next_out(x, &o2));
	assert_int_equal(o2.seq, o.seq);
	assert_int_equal(o2.len, 100);
	assert_memory_equal(o2.payload, o.payload, 100);
	/* without ACKs it gives up with an RST (dumbo's 15 RTOs) */
	for (int i = 0; i < 20; i++) {
		x->now += 1000;
		if (!next_out(x, &o2))
			continue;
		if (o2.flags & F_RST)
			break;
	}
	assert_true(o2.flags & F_RST);
	assert_int_equal(x->m.connections_destroyed, 1);
}

static void test_fin_close(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41006, .snd_nxt = 1};
	uint8_t buf[4096], fl;
	size_t at = 0;
	struct oseg o;

	handshake(x, &p, 1460, 65535);
	send_data(x, &p, get_req, sizeof(get_req) - 1, 65535);
	assert_int_equal(drain(x, &p, buf, &at, &fl), 64);
	send_ack(x, &p, 65535);
	/* the guest closes; the stack acknowledges and closes too */
	struct tseg s = seg_of(&p, F_FIN | F_ACK, 65535);
	assert_true(send_seg(x, &s));
	p.snd_nxt++;
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_FIN | F_ACK);
	assert_int_equal(o.ack, p.snd_nxt);
	assert_int_equal(o.seq, p.rcv_nxt);
	assert_false(next_out(x, &o));
	assert_int_equal(x->m.connections_created, 1);
	assert_int_equal(x->m.connections_destroyed, 1);

	/* Request and FIN in one segment: answered, then FIN after the ACK. */
	struct peer q = {.port = 41007, .snd_nxt = 1};
	handshake(x, &q, 1460, 65535);
	s = seg_of(&q, F_FIN | F_ACK | F_PSH, 65535);
	s.data = get_req;
	s.len = sizeof(get_req) - 1;
	assert_true(send_seg(x, &s));
	q.snd_nxt += (uint32_t)s.len + 1;
	at = 0;
	assert_int_equal(drain(x, &q, buf, &at, &fl), 64);
	assert_false(fl & F_FIN);
	send_ack(x, &q, 65535);
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_FIN | F_ACK);
	assert_int_equal(x->m.connections_destroyed, 2);
}

static void test_rst(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41008, .snd_nxt = 1};
	struct oseg o;

	handshake(x, &p, 1460, 65535);
	/* out-of-window RST: ignored */
	struct tseg s = seg_of(&p, F_RST, 0);
	s.seq += 100000;
	assert_true(send_seg(x, &s));
	assert_int_equal(x->m.connections_destroyed, 0);
	assert_int_equal(x->m.rx_accepted_unusual, 1);
	/* in-window RST: the connection is gone, nothing is sent */
	s = seg_of(&p, F_RST, 0);
	assert_true(send_seg(x, &s));
	assert_int_equal(x->m.connections_destroyed, 1);
	assert_false(next_out(x, &o));

	/* A segment for no connection gets an RST (seq = its ACK). */
	s = seg_of(&p, F_ACK, 100);
	s.ack = 0x12345678u;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_RST);
	assert_int_equal(o.seq, 0x12345678u);
	/* ... without ACK: RST|ACK acknowledging its payload */
	s = seg_of(&p, F_PSH, 100);
	s.seq = 500;
	s.data = "abc";
	s.len = 3;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_RST | F_ACK);
	assert_int_equal(o.seq, 0);
	assert_int_equal(o.ack, 503);
	/* an RST for no connection is not answered */
	s = seg_of(&p, F_RST, 0);
	assert_true(send_seg(x, &s));
	assert_false(next_out(x, &o));

	/* The responder failing resets the connection. */
	struct peer q = {.port = 41009, .snd_nxt = 1};
	handshake(x, &q, 1460, 65535);
	resp_rc = -1;
	send_data(x, &q, get_req, sizeof(get_req) - 1, 65535);
	assert_true(next_out(x, &o));
	assert_true(o.flags & F_RST);
	assert_int_equal(o.seq, q.rcv_nxt);
	assert_int_equal(x->m.connections_destroyed, 2);
}

static void test_request_too_large(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41010, .snd_nxt = 1};
	char chunk[1000];
	struct oseg o;
	int sent = 0;

	memset(chunk, 'A', sizeof(chunk));
	handshake(x, &p, 1460, 65535);
	/* 2500 bytes without an empty line fill the buffer: RST. */
	for (int i = 0; i < 3; i++) {
		size_t n = i < 2 ? 1000 : 500;
		send_data(x, &p, chunk, n, 65535);
		sent += (int)n;
		while (next_out(x, &o))
			if (o.flags & F_RST)
				goto done;
	}
	fail_msg("no RST after %d bytes", sent);
done:
	assert_int_equal(sent, 2500);
	assert_int_equal(nreq, 0);
	assert_int_equal(x->m.connections_destroyed, 1);

	/* Beyond the window: ignored. */
	struct peer q = {.port = 41011, .snd_nxt = 1};
	static char big[2600];
	memset(big, 'B', sizeof(big));
	handshake(x, &q, 1460, 65535);
	struct tseg s = seg_of(&q, F_ACK, 65535);
	s.data = big;
	s.len = sizeof(big);
	assert_true(send_seg(x, &s));
	assert_int_equal(nreq, 0);
}

static void test_table_full(void **state)
{
	struct fx *x = *state;
	struct peer p[SQB_MMDS_MAX_CONNECTIONS + 1];
	struct oseg o;

	for (int i = 0; i <= SQB_MMDS_MAX_CONNECTIONS; i++) {
		p[i] = (struct peer){.port = (uint16_t)(3000 + i), .snd_nxt = 100u * (unsigned)i};
		if (i < SQB_MMDS_MAX_CONNECTIONS)
			handshake(x, &p[i], 1460, 65535);
	}
	assert_int_equal(x->m.connections_created, SQB_MMDS_MAX_CONNECTIONS);
	/* full and nobody idle for 10 s: refused with an RST */
	x->now += 5000;
	struct tseg s = seg_of(&p[30], F_SYN, 1000);
	s.ack = 0;
	assert_true(send_seg(x, &s));
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_RST | F_ACK);
	assert_int_equal(o.dport, 3030);
	assert_int_equal(o.ack, 3000); /* dumbo: the SYN's sequence number */
	assert_false(next_out(x, &o));
	assert_int_equal(x->m.connections_created, SQB_MMDS_MAX_CONNECTIONS);
	/* RSTs for refused SYNs are bounded (100 queued, the rest forgone) */
	for (int i = 0; i < 300; i++) {
		struct peer r = {.port = (uint16_t)(10000 + i), .snd_nxt = 1};
		struct tseg t = seg_of(&r, F_SYN, 1000);
		assert_true(send_seg(x, &t));
	}
	int n = 0;
	while (next_out(x, &o)) {
		assert_int_equal(o.flags, F_RST | F_ACK);
		n++;
	}
	assert_int_equal(n, SQB_MMDS_MAX_PENDING_RESETS);

	/* keep one busy, let the others idle past 10 s: one is replaced */
	x->now += 6000;
	send_ack(x, &p[0], 65535);
	assert_true(send_seg(x, &s));
	assert_int_equal(x->m.connections_created, SQB_MMDS_MAX_CONNECTIONS + 1);
	assert_int_equal(x->m.connections_destroyed, 1);
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_RST); /* to the evicted, established one */
	assert_true(o.dport != 3000 && o.dport != 3030);
	assert_true(next_out(x, &o));
	assert_int_equal(o.flags, F_SYN | F_ACK);
	assert_int_equal(o.dport, 3030);

	sqb_mmds_ns_reset(x->ns);
	assert_false(sqb_mmds_ns_pending(x->ns));
}

static void test_garbage(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41020, .snd_nxt = 1};
	struct tseg s = seg_of(&p, F_SYN, 1000);
	uint8_t f[256], g[256];
	size_t n = mk_tcp(f, &s);
	struct oseg o;

	/* truncated anywhere: consumed once the destination is visible,
	 * never a connection, no crash */
	for (size_t k = 0; k < n; k++) {
		memcpy(g, f, n);
		bool r = sqb_mmds_ns_detour(x->ns, g, k, x->now);
		assert_int_equal(r, k >= 34);
	}
	assert_int_equal(x->m.connections_created, 0);
	/* IHL < 5, version 6, total length past the frame */
	memcpy(g, f, n);
	g[14] = 0x44;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	g[14] = 0x65;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	memcpy(g, f, n);
	w16(g + 16, 2000);
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	/* IHL past the total length */
	memcpy(g, f, n);
	g[14] = 0x4f;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	/* TCP data offset < 5 and past the segment */
	memcpy(g, f, n);
	g[14 + 20 + 12] = 0x40;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	g[14 + 20 + 12] = 0xf0;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.rx_accepted_err, 2);
	/* UDP to the address: consumed, unusual */
	memcpy(g, f, n);
	g[14 + 9] = 17;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.rx_accepted_unusual, 1);
	/* another port: dropped, no RST */
	s.dport = 81;
	n = mk_tcp(g, &s);
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.rx_accepted_err, 3);
	assert_false(next_out(x, &o));
	/* an option with length 0 or 1 (malformed): no connection */
	s.dport = 80;
	s.mss = 1460;
	n = mk_tcp(g, &s);
	g[14 + 20 + 20] = 8; /* kind 8, len 0 */
	g[14 + 20 + 21] = 0;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.connections_created, 0);
	assert_false(next_out(x, &o));
	/* a SYN with payload: no connection */
	s.mss = -1;
	s.data = "xx";
	s.len = 2;
	n = mk_tcp(g, &s);
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.connections_created, 0);

	/* random bytes to the address */
	uint32_t r = 12345;
	for (int i = 0; i < 2000; i++) {
		size_t len = 34 + (r % 200);
		for (size_t k = 0; k < len; k++) {
			r = r * 1103515245u + 12345u;
			g[k] = (uint8_t)(r >> 16);
		}
		w16(g + 12, 0x0800);
		w32(g + 30, MMDS_IP);
		sqb_mmds_ns_detour(x->ns, g, len, x->now);
		while (sqb_mmds_ns_next_frame(x->ns, f, sizeof(f), x->now))
			;
	}
}

static void test_bad_checksums(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 41030, .snd_nxt = 1};
	struct tseg s = seg_of(&p, F_SYN, 1000);
	uint8_t g[256];
	size_t n;
	struct oseg o;

	/* default (as Firecracker): input checksums are not verified, since
	 * a guest with checksum offload leaves them partial */
	n = mk_tcp(g, &s);
	g[14 + 20 + 16] ^= 0xff;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.connections_created, 1);
	assert_true(next_out(x, &o));

	sqb_mmds_ns_free(x->ns);
	free(x);
	*state = x = fx_new(true);
	/* verify_csum: bad TCP and bad IPv4 sums are dropped and counted */
	n = mk_tcp(g, &s);
	g[14 + 20 + 16] ^= 0xff;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	n = mk_tcp(g, &s);
	g[14 + 10] ^= 0xff;
	assert_true(sqb_mmds_ns_detour(x->ns, g, n, x->now));
	assert_int_equal(x->m.rx_accepted_err, 2);
	assert_int_equal(x->m.connections_created, 0);
	assert_false(next_out(x, &o));
	/* and good ones still work */
	handshake(x, &p, 1460, 65535);
	send_data(x, &p, get_req, sizeof(get_req) - 1, 65535);
	assert_int_equal(nreq, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_arp_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_for_mmds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_isn_random, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_one_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_content_length_not_awaited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_response_small_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retransmit_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fin_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rst, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_checksums, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
