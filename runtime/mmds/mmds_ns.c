/* MMDS network stack (docs/mmds.md), written for squib to behave as
 * Firecracker's MmdsNetworkStack and its dumbo TCP endpoint do on the wire:
 * the limits, framing and reset rules were read from Firecracker's
 * mmds/ns.rs and dumbo/ (pdu/, tcp/) and are cited where they apply.  Where
 * squib behaves differently the comment says so and why.
 *
 * Frames are not queued: like dumbo, the stack keeps per-connection state
 * (what is owed: SYN-ACK, ACK, data, FIN, RST) and builds the next frame when
 * the device asks for one.  What is owed is bounded by the connection table,
 * the RST queue and one pending ARP reply, so nothing grows while the guest
 * does not read its RX queue.  One built frame may wait in 'stage' when the
 * device's buffer was too small for it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "mmds.h"
#include "mmds_ns.h"

/* The counters are read by the metrics writer on another thread. */
#define CNT(ns, field, n) __atomic_fetch_add(&(ns)->m->field, (uint64_t)(n), __ATOMIC_RELAXED)

#define ETH_HLEN       14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP  0x0806
#define ARP_LEN	       28
#define IPV4_HLEN      20
#define IPPROTO_TCP_   6
#define IPV4_TTL       1 /* dumbo's DEFAULT_TTL: the peer is one hop away */
#define TCP_HLEN       20
#define TCP_HLEN_MAX   60

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* dumbo/tcp/mod.rs and pdu/tcp.rs */
#define MAX_WINDOW_SIZE 1073725440u
#define MSS_DEFAULT	536
#define MSS_MIN		100
#define MSS_MAX		(65535 - IPV4_HLEN - TCP_HLEN)
/* dumbo has no cap of its own (its frame buffer is 64 KiB); ours keeps every
 * frame within SQB_MMDS_MAX_FRAME. */
#define MSS_CAP	   (SQB_MMDS_MAX_FRAME - ETH_HLEN - IPV4_HLEN - TCP_HLEN)
#define RST_WINDOW 10000 /* handler.rs: "just an arbitrary number" */

/* endpoint.rs counts these in TSC cycles ("roughly 10 seconds" and "~300 ms"
 * on a 4 GHz CPU); here they are milliseconds of the caller's clock. */
#define EVICTION_MS   10000u
#define RTO_MS	      300u
#define RTO_COUNT_MAX 15u

/* connection.rs ConnStatusFlags */
#define ST_SYN_RECEIVED 0x01
#define ST_SYNACK_SENT	0x02
#define ST_ESTABLISHED	0x04
#define ST_FIN_SENT	0x08
#define ST_FIN_ACKED	0x10
#define ST_RESET	0x20

/* connection.rs RecvStatusFlags: any of them is "unusual" */
#define RS_INVALID_ACK	       0x001
#define RS_DUP_ACK	       0x002
#define RS_SEGMENT_BEYOND_RWND 0x004
#define RS_UNEXPECTED_SEQ      0x008
#define RS_REMOTE_RWND_EDGE    0x010
#define RS_DATA_BEYOND_FIN     0x020
#define RS_RESET_RECEIVED      0x040
#define RS_INVALID_RST	       0x080
#define RS_INVALID_SEGMENT     0x100
#define RS_CONN_RESETTING      0x200
#define RS_INVALID_FIN	       0x400

/* A parsed incoming segment (pointers into the guest's frame). */
struct seg {
	uint32_t saddr;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t window;
	const uint8_t *opt;
	size_t opt_len;
	const uint8_t *payload;
	size_t payload_len;
};

/* RstConfig: what an RST carries. */
struct rst {
	uint32_t raddr;
	uint16_t rport;
	uint32_t seq, ack;
	uint8_t flags;
};

struct conn {
	bool used;
	uint32_t raddr;
	uint16_t rport;

	/* Connection (connection.rs) */
	uint32_t ack_to_send, highest_ack, first_not_sent;
	uint32_t local_rwnd_edge, remote_rwnd_edge;
	uint64_t rto_start;
	unsigned int rto_count;
	bool fin_received, send_fin, send_rst, pending_ack;
	uint32_t fin_rcv_seq, fin_seq;
	struct rst rst;
	uint16_t mss;
	uint8_t st;

	/* Endpoint (endpoint.rs) */
	uint8_t rbuf[SQB_MMDS_RCV_BUF];
	size_t rlen;
	uint8_t *resp; /* kept until all of it is acknowledged */
	size_t resp_len;
	uint32_t resp_seq0; /* sequence number of resp[0] */
	uint64_t last_rx_ms;
	bool stop_receiving;
};

struct sqb_mmds_ns {
	struct sqb_mmds_ns_config cfg;
	struct sqb_mmds_metrics dummy; /* counted into when cfg.metrics is NULL */
	struct sqb_mmds_metrics *m;
	uint8_t remote_mac[6];
	bool arp_pending;
	uint32_t arp_dest;
	struct rst rstq[SQB_MMDS_MAX_PENDING_RESETS];
	unsigned int nrst;
	struct conn conns[SQB_MMDS_MAX_CONNECTIONS];
	unsigned int next_conn; /* round robin among connections that owe a segment */
	uint32_t rng;
	uint8_t stage[SQB_MMDS_MAX_FRAME];
	size_t stage_len;
};

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void st32(uint8_t *p, uint32_t v)
{
	st16(p, (uint16_t)(v >> 16));
	st16(p + 2, (uint16_t)v);
}

/* RFC 1071 sum, not yet folded or inverted. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += ld16(p + i);
	if (len & 1)
		sum += (uint64_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* TCP checksum with the RFC 793 pseudo-header; 0 over a correct segment. */
static uint16_t tcp_csum(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	uint64_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);

	sum += IPPROTO_TCP_ + len;
	return csum_fold(csum_add(sum, seg, len));
}

/* Sequence space comparisons of dumbo (tcp/mod.rs): a window of 2^30. */
static bool seq_after(uint32_t a, uint32_t b)
{
	return a != b && a - b < MAX_WINDOW_SIZE;
}

static bool seq_at_or_after(uint32_t a, uint32_t b)
{
	return a - b < MAX_WINDOW_SIZE;
}

/* Time since 'since' on the caller's clock; 0 if it went backwards. */
static uint64_t elapsed(uint64_t now, uint64_t since)
{
	return now > since ? now - since : 0;
}

static uint32_t next_isn(sqb_mmds_ns *ns)
{
	uint32_t x = ns->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	ns->rng = x;
	return x;
}

/* ---- TCP options ---- */

/* pdu/tcp.rs parse_mss_option_unchecked: 0 when absent (caller takes
 * MSS_DEFAULT), -1 when malformed or out of [MSS_MIN, MSS_MAX]. */
static int parse_mss(const struct seg *s)
{
	const uint8_t *b = s->opt;
	size_t i = 0;

	while (i + 3 < s->opt_len) {
		if (b[i] == 0)
			break;
		if (b[i] == 1) {
			i++;
			continue;
		}
		if (b[i] == 2) {
			uint16_t mss = ld16(b + i + 2);
			if (mss < MSS_MIN || mss > MSS_MAX)
				return -1;
			return mss;
		}
		if (b[i + 1] < 2)
			return -1;
		i += b[i + 1];
	}
	return 0;
}

/* The MSS a connection uses: the guest's, capped so frames fit. */
static int conn_mss(const struct seg *s)
{
	int mss = parse_mss(s);

	if (mss < 0)
		return -1;
	if (mss == 0)
		mss = MSS_DEFAULT;
	return mss > MSS_CAP ? MSS_CAP : mss;
}

static bool is_valid_syn(const struct seg *s)
{
	return s->flags == TCP_SYN && s->payload_len == 0;
}

/* RstConfig::new.  dumbo counts only payload bytes in the ACK of a RST to a
 * segment without ACK (a SYN's own sequence number is not added), kept. */
static void rst_for_segment(const struct seg *s, struct rst *r)
{
	r->raddr = s->saddr;
	r->rport = s->sport;
	if (s->flags & TCP_ACK) {
		r->seq = s->ack;
		r->ack = 0;
		r->flags = TCP_RST;
	} else {
		r->seq = 0;
		r->ack = s->seq + (uint32_t)s->payload_len;
		r->flags = TCP_RST | TCP_ACK;
	}
}

/* ---- Connection (connection.rs) ---- */

static bool conn_established(const struct conn *c)
{
	return c->st & ST_ESTABLISHED;
}

static bool conn_synack_pending(const struct conn *c)
{
	return (c->st & ST_SYN_RECEIVED) && !(c->st & ST_SYNACK_SENT);
}

static bool conn_is_done(const struct conn *c)
{
	return (c->st & ST_RESET) || (c->fin_received && (c->st & ST_FIN_SENT));
}

static bool conn_can_send_first_fin(const struct conn *c)
{
	return !(c->st & ST_FIN_SENT) && c->send_fin && c->fin_seq == c->highest_ack;
}

static bool conn_is_same_syn(const struct conn *c, const struct seg *s)
{
	return is_valid_syn(s) && c->ack_to_send == s->seq + 1 && conn_mss(s) == c->mss;
}

static void conn_make_rst(const struct conn *c, struct rst *r)
{
	r->raddr = c->raddr;
	r->rport = c->rport;
	if (conn_established(c)) {
		r->seq = c->first_not_sent;
		r->ack = 0;
		r->flags = TCP_RST;
	} else {
		r->seq = 0;
		r->ack = c->ack_to_send;
		r->flags = TCP_RST | TCP_ACK;
	}
}

static void conn_reset(struct conn *c)
{
	if (!c->send_rst) {
		conn_make_rst(c, &c->rst);
		c->send_rst = true;
	}
}

static unsigned int conn_reset_for(struct conn *c, const struct seg *s, unsigned int flags)
{
	if (!c->send_rst) {
		rst_for_segment(s, &c->rst);
		c->send_rst = true;
	}
	return RS_CONN_RESETTING | flags;
}

static void conn_close(struct conn *c)
{
	if (!c->send_fin) {
		c->send_fin = true;
		c->fin_seq = c->first_not_sent;
	}
}

static void conn_advance_rwnd(struct conn *c, uint32_t v)
{
	uint32_t cur = c->local_rwnd_edge - c->ack_to_send;

	/* Tell the guest its window reopened. */
	if (cur == 0)
		c->pending_ack = true;
	if ((uint64_t)v + cur > MAX_WINDOW_SIZE)
		c->local_rwnd_edge = c->ack_to_send + MAX_WINDOW_SIZE;
	else
		c->local_rwnd_edge += v;
}

static uint16_t conn_local_rwnd(const struct conn *c)
{
	uint32_t w = c->local_rwnd_edge - c->ack_to_send;

	return w > 0xffff ? 0xffff : (uint16_t)w;
}

/* Connection::receive_segment.  Returns -1 for dumbo's RecvError (reset
 * connection, payload larger than the free buffer), else 0 with the
 * RecvStatusFlags in *status and the payload bytes stored in *stored. */
static int conn_receive(struct conn *c, const struct seg *s, uint8_t *buf, size_t room,
			uint64_t now, size_t *stored, unsigned int *status)
{
	unsigned int rs = 0;
	bool enqueue_ack = false;

	*stored = 0;
	*status = 0;
	if (c->send_rst || (c->st & ST_RESET))
		return -1;

	if (s->flags & TCP_RST) {
		/* Only an in-window RST is believed (RFC 5961 in spirit). */
		if (seq_at_or_after(s->seq, c->ack_to_send) &&
		    seq_after(c->local_rwnd_edge, s->seq)) {
			c->st |= ST_RESET;
			*status = RS_RESET_RECEIVED;
		} else {
			*status = RS_INVALID_RST;
		}
		return 0;
	}

	if (!(c->st & ST_SYNACK_SENT)) {
		if (!conn_is_same_syn(c, s))
			*status = conn_reset_for(c, s, RS_INVALID_SEGMENT);
		return 0;
	} else if (!conn_established(c)) {
		if (conn_is_same_syn(c, s)) {
			/* Our SYN-ACK may have been lost: send it again. */
			c->st &= (uint8_t)~ST_SYNACK_SENT;
			return 0;
		}
		if (s->flags & TCP_SYN) {
			*status = conn_reset_for(c, s, RS_INVALID_SEGMENT);
			return 0;
		}
	} else if (s->flags & TCP_SYN) {
		*status = conn_reset_for(c, s, RS_INVALID_SEGMENT);
		return 0;
	}

	if (s->flags & TCP_ACK) {
		uint32_t ack = s->ack;

		if (seq_at_or_after(ack, c->highest_ack) &&
		    seq_at_or_after(c->first_not_sent, ack)) {
			c->rto_count = 0;
			if (ack == c->highest_ack && ack != c->first_not_sent) {
				if (!conn_established(c)) {
					*status = conn_reset_for(c, s, RS_INVALID_ACK);
					return 0;
				}
				/* dumbo retransmits on the first duplicate ACK;
				 * the virtual link loses nothing, and a
				 * window update carries the same ACK, so a
				 * duplicate is only counted. */
				rs |= RS_DUP_ACK;
			} else {
				c->highest_ack = ack;
				c->rto_start = now;
				if (!conn_established(c) && (c->st & ST_SYNACK_SENT))
					c->st |= ST_ESTABLISHED;
				if ((c->st & ST_FIN_SENT) && ack == c->first_not_sent)
					c->st |= ST_FIN_ACKED;
			}
			if (conn_established(c)) {
				uint32_t edge = ack + s->window; /* no window scaling */

				if (seq_after(edge, c->remote_rwnd_edge))
					c->remote_rwnd_edge = edge;
				else if (edge != c->remote_rwnd_edge)
					rs |= RS_REMOTE_RWND_EDGE;
			}
		} else {
			rs |= RS_INVALID_ACK;
			if (!conn_established(c)) {
				*status = conn_reset_for(c, s, rs);
				return 0;
			}
		}
	}

	if (!conn_established(c)) {
		*status = rs;
		return 0;
	}

	if (s->payload_len > room)
		return -1;

	if (s->payload_len > 0) {
		uint32_t end = s->seq + (uint32_t)s->payload_len;

		if (c->fin_received && !seq_at_or_after(c->fin_rcv_seq, end)) {
			*status = rs | RS_DATA_BEYOND_FIN;
			return 0;
		}
		if (!seq_at_or_after(c->local_rwnd_edge, end)) {
			*status = rs | RS_SEGMENT_BEYOND_RWND;
			return 0;
		}
		/* In order only: anything else is answered with what we have. */
		if (s->seq != c->ack_to_send) {
			c->pending_ack = true;
			*status = rs | RS_UNEXPECTED_SEQ;
			return 0;
		}
		c->ack_to_send = end;
		enqueue_ack = true;
	}

	if ((s->flags & TCP_FIN) && !c->fin_received) {
		uint32_t fin = s->seq + (uint32_t)s->payload_len;

		/* As for data, only a FIN right at the next expected byte. */
		if (fin == c->ack_to_send) {
			c->fin_received = true;
			c->fin_rcv_seq = fin;
			c->ack_to_send++;
			enqueue_ack = true;
		} else {
			rs |= RS_INVALID_FIN;
		}
	}

	if (enqueue_ack) {
		c->pending_ack = true;
		if (s->payload_len) {
			memcpy(buf, s->payload, s->payload_len);
			*stored = s->payload_len;
		}
	}
	*status = rs;
	return 0;
}

/* Builds a TCP segment at out (room bytes, at least TCP_HLEN + 4).  Returns
 * its length; the checksum is filled in by the caller, who knows the
 * addresses. */
static size_t write_tcp(struct conn *c, uint8_t *out, uint32_t seq, uint32_t ack, uint8_t flags,
			const uint8_t *payload, size_t plen)
{
	size_t hl = TCP_HLEN;

	memset(out, 0, TCP_HLEN);
	st16(out + 0, SQB_MMDS_TCP_PORT);
	st16(out + 2, c->rport);
	st32(out + 4, seq);
	st32(out + 8, ack);
	out[13] = flags;
	st16(out + 14, conn_local_rwnd(c));
	if (flags == (TCP_SYN | TCP_ACK)) {
		/* The MSS option on SYN-ACKs, as dumbo: the (capped) MSS of the
		 * guest's SYN. */
		out[20] = 2;
		out[21] = 4;
		st16(out + 22, c->mss);
		hl += 4;
	}
	out[12] = (uint8_t)((hl / 4) << 4);
	if (plen)
		memcpy(out + hl, payload, plen);
	if (flags & TCP_ACK)
		c->pending_ack = false;
	return hl + plen;
}

/* Connection::write_control_segment: RST, SYN-ACK, or ACK (with FIN when
 * everything up to it is acknowledged). */
static size_t conn_write_control(struct conn *c, uint8_t *out)
{
	uint32_t seq = c->highest_ack, ack = c->ack_to_send;
	uint8_t flags;

	if (c->send_rst) {
		seq = c->rst.seq;
		ack = c->rst.ack;
		flags = c->rst.flags;
	} else if (!conn_established(c)) {
		flags = TCP_SYN | TCP_ACK;
		seq = c->first_not_sent - 1;
	} else {
		flags = TCP_ACK;
		if (c->send_fin && !(c->st & ST_FIN_ACKED) && seq_at_or_after(seq, c->fin_seq)) {
			flags |= TCP_FIN;
			seq = c->fin_seq;
		}
	}
	return write_tcp(c, out, seq, ack, flags, NULL, 0);
}

/* Connection::write_next_segment with the endpoint's payload source (the
 * response buffer).  Returns the segment length, 0 when nothing is owed.
 * Unlike dumbo, a retransmission reads the response at the sequence number
 * it resends (dumbo always reads from the first byte not yet sent and fails
 * with PayloadMissingSeq instead), so an RTO resend works. */
static size_t conn_write_next(struct conn *c, uint8_t *out, uint64_t now)
{
	if (c->st & ST_RESET)
		return 0;
	if (c->send_rst) {
		size_t n = conn_write_control(c, out);
		c->st |= ST_RESET;
		return n;
	}
	if (conn_synack_pending(c)) {
		size_t n = conn_write_control(c, out);
		c->st |= ST_SYNACK_SENT;
		c->rto_start = now;
		return n;
	}
	if (!conn_established(c)) {
		if (elapsed(now, c->rto_start) >= RTO_MS) {
			if (++c->rto_count >= RTO_COUNT_MAX) {
				conn_reset(c);
				return conn_write_next(c, out, now);
			}
			c->rto_start = now;
			return conn_write_control(c, out);
		}
		return 0;
	}

	if (c->resp_len) {
		uint32_t end = c->resp_seq0 + (uint32_t)c->resp_len;
		uint32_t seq, actual_end;
		bool rto = false;

		if (c->highest_ack != c->first_not_sent && elapsed(now, c->rto_start) >= RTO_MS) {
			if (++c->rto_count >= RTO_COUNT_MAX) {
				conn_reset(c);
				return conn_write_next(c, out, now);
			}
			if (c->send_fin && c->highest_ack == c->fin_seq) {
				c->rto_start = now;
				return conn_write_control(c, out);
			}
			rto = true;
			seq = c->highest_ack;
		} else {
			seq = c->first_not_sent;
		}
		actual_end = seq_at_or_after(c->remote_rwnd_edge, end) ? end : c->remote_rwnd_edge;
		if (c->send_fin && seq_after(actual_end, c->fin_seq))
			return 0; /* dumbo: DataAfterFin, cannot happen here */
		if (seq_after(actual_end, seq) && seq_at_or_after(seq, c->resp_seq0)) {
			size_t off = seq - c->resp_seq0;
			size_t plen = actual_end - seq;
			uint32_t after;

			if (plen > c->mss)
				plen = c->mss;
			write_tcp(c, out, seq, c->ack_to_send, TCP_ACK, c->resp + off, plen);
			after = seq + (uint32_t)plen;
			if (c->send_fin && after == c->fin_seq) {
				out[13] |= TCP_FIN;
				after++;
				c->st |= ST_FIN_SENT;
			}
			if (rto || c->first_not_sent == c->highest_ack)
				c->rto_start = now;
			if (seq_after(after, c->first_not_sent))
				c->first_not_sent = after;
			return TCP_HLEN + plen;
		}
	}

	if (c->pending_ack || conn_can_send_first_fin(c)) {
		bool first_fin = conn_can_send_first_fin(c);
		size_t n = conn_write_control(c, out);

		if (first_fin) {
			c->first_not_sent++;
			c->st |= ST_FIN_SENT;
		}
		return n;
	}
	return 0;
}

/* Whether conn_write_next would produce a segment now, leaving timers
 * aside (those are sqb_mmds_ns_next_timeout's). */
static bool conn_owes_segment(const struct conn *c)
{
	if (c->st & ST_RESET)
		return false;
	if (c->send_rst || conn_synack_pending(c))
		return true;
	if (!conn_established(c))
		return false;
	if (c->resp_len) {
		uint32_t end = c->resp_seq0 + (uint32_t)c->resp_len;
		uint32_t actual_end =
		    seq_at_or_after(c->remote_rwnd_edge, end) ? end : c->remote_rwnd_edge;

		if (seq_after(actual_end, c->first_not_sent) &&
		    !(c->send_fin && seq_after(actual_end, c->fin_seq)))
			return true;
	}
	return c->pending_ack || conn_can_send_first_fin(c);
}

static uint64_t conn_timeout(const struct conn *c)
{
	if ((c->st & ST_RESET) || c->send_rst)
		return UINT64_MAX;
	if (!conn_established(c))
		return (c->st & ST_SYNACK_SENT) ? c->rto_start + RTO_MS : UINT64_MAX;
	if (c->resp_len && c->highest_ack != c->first_not_sent)
		return c->rto_start + RTO_MS;
	return UINT64_MAX;
}

/* ---- Endpoint (endpoint.rs) ---- */

static void conn_free(sqb_mmds_ns *ns, struct conn *c, bool count)
{
	free(c->resp);
	memset(c, 0, sizeof(*c));
	if (count)
		CNT(ns, connections_destroyed, 1);
}

/* endpoint.rs: a request ends at the first empty line, "\n\n" or "\n\r\n".
 * Nothing after it (a body announced by Content-Length) is waited for: the
 * responder gets the head only and answers a body it lacks ("Invalid
 * request."), which is what keeps Firecracker's test_guest_mmds_hang from
 * hanging.  Returns the length of the request, 0 while incomplete. */
static size_t find_request_end(const uint8_t *b, size_t len)
{
	if (len <= 2)
		return 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (i + 3 <= len && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void ep_receive(sqb_mmds_ns *ns, struct conn *c, const struct seg *s, uint64_t now)
{
	unsigned int status;
	size_t stored;

	if (c->stop_receiving)
		return;
	c->last_rx_ms = now;
	if (conn_receive(c, s, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, now, &stored,
			 &status) < 0) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	if (status) {
		CNT(ns, rx_accepted_unusual, 1);
		if (status & RS_CONN_RESETTING) {
			c->stop_receiving = true;
			return;
		}
	}
	c->rlen += stored;

	if (c->resp_len && c->highest_ack == c->resp_seq0 + (uint32_t)c->resp_len) {
		/* The whole response is acknowledged. */
		c->resp_seq0 = c->highest_ack;
		free(c->resp);
		c->resp = NULL;
		c->resp_len = 0;
	}

	/* Nothing is answered once our FIN is decided. */
	if (!c->resp_len && !c->send_fin) {
		size_t end = find_request_end(c->rbuf, c->rlen);

		if (end) {
			uint8_t *resp = NULL;
			size_t resp_len = 0;
			int rc = ns->cfg.respond(ns->cfg.ctx, c->rbuf, end, &resp, &resp_len);

			if (rc < 0 || resp_len >= MAX_WINDOW_SIZE) {
				free(resp);
				conn_reset(c);
				c->stop_receiving = true;
				return;
			}
			if (resp_len) {
				c->resp = resp;
				c->resp_len = resp_len;
			} else {
				free(resp);
			}
			memmove(c->rbuf, c->rbuf + end, c->rlen - end);
			c->rlen -= end;
			conn_advance_rwnd(c, (uint32_t)end);
		}
		if (c->rlen == sizeof(c->rbuf)) {
			/* Full and still no end of request: over the limit. */
			conn_reset(c);
			c->stop_receiving = true;
			return;
		}
	}

	/* Close once the guest closed and the last response is through. */
	if (c->fin_received && !c->resp_len)
		conn_close(c);
}

/* ---- Handler (handler.rs) ---- */

static struct conn *find_conn(sqb_mmds_ns *ns, uint32_t raddr, uint16_t rport)
{
	for (unsigned int i = 0; i < SQB_MMDS_MAX_CONNECTIONS; i++) {
		struct conn *c = &ns->conns[i];
		if (c->used && c->raddr == raddr && c->rport == rport)
			return c;
	}
	return NULL;
}

static void enqueue_rst(sqb_mmds_ns *ns, const struct rst *r)
{
	/* Past the bound RSTs are forgone, as in dumbo. */
	if (ns->nrst < SQB_MMDS_MAX_PENDING_RESETS)
		ns->rstq[ns->nrst++] = *r;
}

/* Connection::passive_open + Endpoint::new.  False for an invalid SYN. */
static bool conn_open(sqb_mmds_ns *ns, struct conn *c, const struct seg *s, uint64_t now)
{
	int mss = conn_mss(s);
	uint32_t isn;

	if (!is_valid_syn(s) || mss < 0)
		return false;
	isn = next_isn(ns);
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->raddr = s->saddr;
	c->rport = s->sport;
	c->mss = (uint16_t)mss;
	c->ack_to_send = s->seq + 1;
	c->highest_ack = isn;
	c->first_not_sent = isn + 1;
	c->remote_rwnd_edge = c->first_not_sent + s->window;
	c->local_rwnd_edge = c->ack_to_send + SQB_MMDS_RCV_BUF;
	c->st = ST_SYN_RECEIVED;
	c->resp_seq0 = c->first_not_sent;
	c->last_rx_ms = now;
	return true;
}

static void tcp_receive(sqb_mmds_ns *ns, const uint8_t *ip, size_t iphl, size_t iplen, uint64_t now)
{
	const uint8_t *t = ip + iphl;
	size_t len = iplen - iphl, hl;
	struct seg s;
	struct conn *c;

	/* pdu/tcp.rs TcpSegment::from_bytes */
	if (len < TCP_HLEN) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	hl = (size_t)(t[12] >> 4) * 4;
	if (hl < TCP_HLEN || hl > TCP_HLEN_MAX || hl > len) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	s.saddr = ld32(ip + 12);
	if (ns->cfg.verify_csum && tcp_csum(s.saddr, ld32(ip + 16), t, len) != 0) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	s.sport = ld16(t);
	s.dport = ld16(t + 2);
	/* Another port: dropped without an RST (dumbo's InvalidPort error). */
	if (s.dport != SQB_MMDS_TCP_PORT) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	s.seq = ld32(t + 4);
	s.ack = ld32(t + 8);
	s.flags = t[13];
	s.window = ld16(t + 14);
	s.opt = t + TCP_HLEN;
	s.opt_len = hl - TCP_HLEN;
	s.payload = t + hl;
	s.payload_len = len - hl;

	CNT(ns, rx_count, 1);
	c = find_conn(ns, s.saddr, s.sport);
	if (c) {
		ep_receive(ns, c, &s, now);
		if (conn_is_done(c))
			conn_free(ns, c, true);
		return;
	}
	if (s.flags == TCP_SYN) {
		struct conn *slot = NULL;
		struct rst r;
		unsigned int i;

		/* A SYN that cannot open a connection is ignored
		 * (FailedNewConnection): check before touching the table. */
		if (s.payload_len || conn_mss(&s) < 0)
			return;
		for (i = 0; i < SQB_MMDS_MAX_CONNECTIONS && !slot; i++)
			if (!ns->conns[i].used)
				slot = &ns->conns[i];
		for (i = 0; i < SQB_MMDS_MAX_CONNECTIONS && !slot; i++)
			if (elapsed(now, ns->conns[i].last_rx_ms) > EVICTION_MS)
				slot = &ns->conns[i];
		if (!slot) {
			/* Full and nobody idle: refuse (NewConnectionDropped). */
			rst_for_segment(&s, &r);
			enqueue_rst(ns, &r);
			return;
		}
		if (slot->used) {
			/* Replace the idle connection, telling its peer
			 * (NewConnectionReplacing). */
			conn_make_rst(slot, &r);
			enqueue_rst(ns, &r);
			conn_free(ns, slot, true);
		}
		conn_open(ns, slot, &s, now);
		CNT(ns, connections_created, 1);
		return;
	}
	/* Anything else for no connection gets an RST, unless it is one. */
	if (!(s.flags & TCP_RST)) {
		struct rst r;
		rst_for_segment(&s, &r);
		enqueue_rst(ns, &r);
	}
}

/* ---- Frames ---- */

static size_t eth_header(sqb_mmds_ns *ns, uint8_t *out, uint16_t type)
{
	memcpy(out, ns->remote_mac, 6);
	memcpy(out + 6, ns->cfg.mac, 6);
	st16(out + 12, type);
	return ETH_HLEN;
}

/* IPv4 + Ethernet around a TCP segment already at out + 34. */
static size_t finish_ipv4(sqb_mmds_ns *ns, uint8_t *out, uint32_t dst, size_t tcp_len)
{
	uint8_t *ip = out + ETH_HLEN, *t = ip + IPV4_HLEN;
	size_t total = IPV4_HLEN + tcp_len;

	st16(t + 16, 0);
	st16(t + 16, tcp_csum(ns->cfg.ipv4, dst, t, tcp_len));
	eth_header(ns, out, ETHERTYPE_IPV4);
	/* dumbo's IPv4Packet::write_header: no options, id 0, flags 0 (so no
	 * DF), TTL 1. */
	ip[0] = 0x45;
	ip[1] = 0;
	st16(ip + 2, (uint16_t)total);
	st16(ip + 4, 0);
	st16(ip + 6, 0);
	ip[8] = IPV4_TTL;
	ip[9] = IPPROTO_TCP_;
	st16(ip + 10, 0);
	st32(ip + 12, ns->cfg.ipv4);
	st32(ip + 16, dst);
	st16(ip + 10, csum_fold(csum_add(0, ip, IPV4_HLEN)));
	return ETH_HLEN + total;
}

static size_t write_arp_reply(sqb_mmds_ns *ns, uint8_t *out)
{
	uint8_t *a = out + eth_header(ns, out, ETHERTYPE_ARP);

	st16(a + 0, 1);
	st16(a + 2, ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	st16(a + 6, 2);
	memcpy(a + 8, ns->cfg.mac, 6);
	st32(a + 14, ns->cfg.ipv4);
	memcpy(a + 18, ns->remote_mac, 6);
	st32(a + 24, ns->arp_dest);
	return ETH_HLEN + ARP_LEN;
}

/* MmdsNetworkStack::write_next_frame: ARP reply first, then queued RSTs,
 * then connections in turn. */
static size_t produce(sqb_mmds_ns *ns, uint8_t *out, uint64_t now)
{
	uint8_t *t = out + ETH_HLEN + IPV4_HLEN;

	if (ns->arp_pending) {
		ns->arp_pending = false;
		CNT(ns, tx_count, 1);
		return write_arp_reply(ns, out);
	}
	if (ns->nrst) {
		struct rst *r = &ns->rstq[--ns->nrst];

		memset(t, 0, TCP_HLEN);
		st16(t, SQB_MMDS_TCP_PORT);
		st16(t + 2, r->rport);
		st32(t + 4, r->seq);
		st32(t + 8, r->ack);
		t[12] = (TCP_HLEN / 4) << 4;
		t[13] = r->flags;
		st16(t + 14, RST_WINDOW);
		CNT(ns, tx_count, 1);
		return finish_ipv4(ns, out, r->raddr, TCP_HLEN);
	}
	for (unsigned int k = 0; k < SQB_MMDS_MAX_CONNECTIONS; k++) {
		unsigned int i = (ns->next_conn + k) % SQB_MMDS_MAX_CONNECTIONS;
		struct conn *c = &ns->conns[i];
		uint32_t raddr;
		size_t n;

		if (!c->used || (!conn_owes_segment(c) && conn_timeout(c) > now))
			continue;
		n = conn_write_next(c, t, now);
		if (!n)
			continue;
		raddr = c->raddr;
		ns->next_conn = (i + 1) % SQB_MMDS_MAX_CONNECTIONS;
		if (conn_is_done(c))
			conn_free(ns, c, true);
		CNT(ns, tx_count, 1);
		return finish_ipv4(ns, out, raddr, n);
	}
	return 0;
}

/* ---- Public ---- */

int sqb_mmds_ns_new(const struct sqb_mmds_ns_config *cfg, sqb_mmds_ns **out)
{
	static const uint8_t def_mac[6] = SQB_MMDS_DEFAULT_MAC;
	static const uint8_t zero[6];
	sqb_mmds_ns *ns;

	if (!cfg || !cfg->respond || !out)
		return -EINVAL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->cfg = *cfg;
	if (!ns->cfg.ipv4)
		ns->cfg.ipv4 = SQB_MMDS_DEFAULT_IPV4;
	if (!memcmp(ns->cfg.mac, zero, 6))
		memcpy(ns->cfg.mac, def_mac, 6);
	ns->m = cfg->metrics ? cfg->metrics : &ns->dummy;
	/* ns.rs starts with the remote MAC set to its own, until a frame
	 * tells the guest's. */
	memcpy(ns->remote_mac, ns->cfg.mac, 6);
	/* ISNs need only be unpredictable to the guest (RFC 6528); a xorshift
	 * seeded once is what dumbo uses too (xor_pseudo_rng_u32). */
	if (cfg->isn_seed)
		ns->rng = cfg->isn_seed;
	else if (getrandom(&ns->rng, sizeof(ns->rng), GRND_NONBLOCK) != sizeof(ns->rng)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ns->rng = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ (uint32_t)(uintptr_t)ns;
	}
	if (!ns->rng)
		ns->rng = 0x9e3779b9u;
	*out = ns;
	return 0;
}

void sqb_mmds_ns_reset(sqb_mmds_ns *ns)
{
	if (!ns)
		return;
	for (unsigned int i = 0; i < SQB_MMDS_MAX_CONNECTIONS; i++)
		if (ns->conns[i].used)
			conn_free(ns, &ns->conns[i], false);
	ns->nrst = 0;
	ns->arp_pending = false;
	ns->stage_len = 0;
	ns->next_conn = 0;
}

void sqb_mmds_ns_free(sqb_mmds_ns *ns)
{
	if (!ns)
		return;
	sqb_mmds_ns_reset(ns);
	free(ns);
}

static void detour_arp(sqb_mmds_ns *ns, const uint8_t *a, size_t len)
{
	/* EthIPv4ArpFrame::request_from_bytes: exactly 28 bytes (no
	 * trailer), Ethernet/IPv4 sizes, a request.  Anything else for our
	 * address is consumed and ignored. */
	if (len != ARP_LEN || ld16(a) != 1 || ld16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4 || ld16(a + 6) != 1)
		return;
	memcpy(ns->remote_mac, a + 8, 6);
	ns->arp_dest = ld32(a + 14);
	ns->arp_pending = true; /* one slot: a newer request replaces it */
}

static void detour_ipv4(sqb_mmds_ns *ns, const uint8_t *frame, const uint8_t *ip, size_t len,
			uint64_t now)
{
	size_t hl, total;

	/* pdu/ipv4.rs IPv4Packet::from_bytes */
	if (len < IPV4_HLEN || ip[0] >> 4 != 4)
		return;
	hl = (size_t)(ip[0] & 0x0f) * 4;
	total = ld16(ip + 2);
	if (total < hl || total != len || hl < IPV4_HLEN)
		return;
	/* dumbo verifies no IPv4 checksum on input; optional here. */
	if (ns->cfg.verify_csum && csum_fold(csum_add(0, ip, hl)) != 0) {
		CNT(ns, rx_accepted_err, 1);
		return;
	}
	if (ip[9] != IPPROTO_TCP_) {
		CNT(ns, rx_accepted_unusual, 1);
		return;
	}
	/* dumbo ignores the fragment fields; a fragment cannot be reassembled
	 * here, so it is dropped rather than read as a whole segment. */
	if (ld16(ip + 6) & 0x3fff) {
		CNT(ns, rx_accepted_unusual, 1);
		return;
	}
	memcpy(ns->remote_mac, frame + 6, 6);
	tcp_receive(ns, ip, hl, total, now);
}

bool sqb_mmds_ns_detour(sqb_mmds_ns *ns, const uint8_t *frame, size_t len, uint64_t now_ms)
{
	uint16_t type;

	if (!ns || !frame)
		return false;
	if (len < ETH_HLEN) {
		CNT(ns, rx_bad_eth, 1);
		return false;
	}
	/* MmdsNetworkStack::is_mmds_frame: the target address alone decides;
	 * whatever the stack then makes of the frame, it is consumed. */
	type = ld16(frame + 12);
	if (type == ETHERTYPE_ARP) {
		if (len < ETH_HLEN + ARP_LEN || ld32(frame + ETH_HLEN + 24) != ns->cfg.ipv4)
			return false;
		CNT(ns, rx_accepted, 1);
		detour_arp(ns, frame + ETH_HLEN, len - ETH_HLEN);
		return true;
	}
	if (type == ETHERTYPE_IPV4) {
		if (len < ETH_HLEN + IPV4_HLEN || ld32(frame + ETH_HLEN + 16) != ns->cfg.ipv4)
			return false;
		CNT(ns, rx_accepted, 1);
		detour_ipv4(ns, frame, frame + ETH_HLEN, len - ETH_HLEN, now_ms);
		return true;
	}
	return false;
}

bool sqb_mmds_ns_pending(const sqb_mmds_ns *ns)
{
	if (!ns)
		return false;
	if (ns->stage_len || ns->arp_pending || ns->nrst)
		return true;
	for (unsigned int i = 0; i < SQB_MMDS_MAX_CONNECTIONS; i++)
		if (ns->conns[i].used && conn_owes_segment(&ns->conns[i]))
			return true;
	return false;
}

uint64_t sqb_mmds_ns_next_timeout(const sqb_mmds_ns *ns)
{
	uint64_t t = UINT64_MAX;

	if (!ns)
		return t;
	for (unsigned int i = 0; i < SQB_MMDS_MAX_CONNECTIONS; i++) {
		if (ns->conns[i].used) {
			uint64_t v = conn_timeout(&ns->conns[i]);
			if (v < t)
				t = v;
		}
	}
	return t;
}

size_t sqb_mmds_ns_next_frame(sqb_mmds_ns *ns, uint8_t *buf, size_t cap, uint64_t now_ms)
{
	size_t n;

	if (!ns)
		return 0;
	if (!ns->stage_len)
		ns->stage_len = produce(ns, ns->stage, now_ms);
	n = ns->stage_len;
	if (!n || n > cap || !buf)
		return n;
	memcpy(buf, ns->stage, n);
	ns->stage_len = 0;
	CNT(ns, tx_frames, 1);
	CNT(ns, tx_bytes, n);
	return n;
}
