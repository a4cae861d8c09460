/* virtio-vsock (device id 19; virtio 1.x section 5.10) with Firecracker's
 * host side on Unix sockets: host-initiated "CONNECT <port>\n" on uds_path,
 * guest-initiated connections to "<uds_path>_<port>", credit-based flow
 * control (5.10.6.3), and TRANSPORT_RESET after a load ([F-112]) and to a
 * snapshot's source VM ([F-115]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "virtio_priv.h"

#define Q_RX 0
#define Q_TX 1
#define Q_EV 2

#define CONN_BUF      (256u << 10) /* buf_alloc we advertise: guest data we may hold */
#define MAX_CONNS     1023u	   /* Firecracker's limit */
#define RST_RING      64u	   /* RSTs for unknown connections waiting for RX buffers */
#define PORT_BASE     (1u << 30)   /* host ports of host-initiated connections */
#define PORT_LAST_MAX ((1u << 31) - 1) /* ... are PORT_BASE .. this, round robin */
#define VSOCK_CFG_LEN 8u
#define RX_BATCH      32u /* RX chains one recvmsg may fill (a connection streaming) */
#define TX_BATCH      64u /* TX chains of one connection one sendmsg may take */

/* Kill timers (Firecracker's csm defs: CONN_REQUEST_TIMEOUT_MS and
 * CONN_SHUTDOWN_TIMEOUT_MS are both 2000): a REQUEST the guest never
 * answers, a shutdown that never completes, a CONNECT line left half
 * written.  A connection stalled on the guest's credit asks again every
 * CREQ_RETRY_NS; accept() out of descriptors retries every ACCEPT_RETRY_NS. */
#define KILL_NS		(2000ull * 1000000ull)
#define CREQ_RETRY_NS	(1000ull * 1000000ull)
#define ACCEPT_RETRY_NS (100ull * 1000000ull)

enum cstate {
	C_LINE, /* host socket accepted, waiting for "CONNECT <port>\n" */
	C_REQ,	/* REQUEST for the guest pending or sent, waiting for RESPONSE */
	C_EST,	/* established */
	C_DEAD, /* host socket closed; an RST for the guest is pending */
};

/* Control packets a connection owes the guest. */
enum {
	P_REQUEST = 1,
	P_RESPONSE = 2,
	P_CREDIT_UPDATE = 4,
	P_SHUTDOWN = 8, /* host sent EOF: SHUTDOWN with SEND */
	P_RST = 16,
	P_CREDIT_REQUEST = 32,
	P_SHUTDOWN_RCV = 64, /* host client takes no more data: SHUTDOWN with RCV */
};

struct vconn {
	int fd;
	enum cstate st;
	bool gone; /* freed at the next sweep */
	uint32_t gport, hport;
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t rx_cnt;   /* payload bytes sent to the guest */
	uint32_t fwd_cnt;  /* guest payload bytes written to the host socket */
	uint32_t fwd_told; /* fwd_cnt the guest last heard */
	uint32_t pend;
	uint32_t guest_shut; /* SHUTDOWN flags the guest sent */
	bool readable, writable, rd_eof, creq_sent, host_wr_shut;
	bool host_rd_gone; /* the host client closed or shut its read side (EPIPE) */
	bool hup;	   /* the host client hung up (EPOLLRDHUP/EPOLLHUP seen) */
	bool rx_full;	   /* the last recvmsg filled all it asked for: batch the next */
	uint64_t expire;   /* CLOCK_MONOTONIC ns at which the kill timer fires; 0: none */
	const char *expire_why;
	uint64_t creq_at; /* when the last CREDIT_REQUEST went out (stall retry) */
	uint8_t *txb;	  /* guest data the host socket has not taken yet */
	uint32_t txb_len;
};

struct rst {
	uint32_t gport, hport;
};

struct vsock {
	sqb_vio_dev *dev; /* the device this is the priv of (debug dumps) */
	uint64_t cid;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd, ep;
	int tfd;	    /* timerfd in ep: kill timers, credit retries, accept retry */
	uint64_t tfd_at;    /* what tfd is armed for; 0: disarmed */
	bool accept_retry;  /* accept() ran out of descriptors with clients waiting */
	uint64_t accept_at; /* when to try accept() again */
	struct vconn **conns;
	unsigned int nconns, cap, rr;
	struct rst rst[RST_RING];
	unsigned int rst_head, rst_n;
	/* Firecracker's local_port_last: the host port the last host-initiated
	 * connection got (PORT_BASE - 1 before the first); kept by a snapshot
	 * ([F-111]), so a clone numbers on where its parent stopped. */
	uint32_t port_last;
	uint32_t saved_port_last; /* from the last restored state; 0: not recorded */
	/* A save happened ([F-115]): at the resume that ends the create, the
	 * source VM's connections go and its driver hears TRANSPORT_RESET. */
	bool reset_at_resume;
	bool reset_pending;
	/* A TRANSPORT_RESET is in the used ring but the driver has not acted
	 * on it (it re-posts the event buffer after resetting its sockets):
	 * RX waits, or a new connection's REQUEST could be reset by the
	 * event's handling (Firecracker's pending_event_ack, the post-restore
	 * connect storm).  Opens on the driver's next event-queue post, and
	 * only then, as Firecracker's: no timer, since a VM loaded paused
	 * may wait any time before its driver runs. */
	bool ev_ack_wait;
	uint16_t ev_avail;  /* event queue avail idx when the reset went out */
	uint64_t saved_cid; /* from the last restored state (informational) */
	/* RX chains one recvmsg filled after the one rx_fill popped, in ring
	 * order, headers written: rx_fill pushes them right after that one. */
	struct {
		uint16_t head;
		uint32_t len;
	} rxb[RX_BATCH];
	unsigned int rxb_n;
	uint8_t *xhdr[RX_BATCH]; /* where each of those chains' header goes */
	unsigned int rx_batch;	 /* at most this many chains per recvmsg (1: one each) */
	struct sqb_vq_chain xch; /* scratch for the batch's further chains */
	/* TX: consecutive RW packets of one connection, sent to its host
	 * socket by one sendmsg straight from guest memory; their chains go to
	 * the used ring only after it, so the driver cannot reuse a buffer
	 * whose bytes are still to be sent. */
	struct vconn *tq_conn;
	uint16_t tq_head[TX_BATCH];
	unsigned int tq_n, tq_niov;
	uint32_t tq_bytes;
	unsigned int tx_batch; /* at most this many chains per sendmsg (1: one each) */
	bool log_rx;	       /* rx_fill's look at the level: Debug logs each RX header */
	struct iovec tq_iov[SQB_VQ_MAX_SIZE];
};

static char listener_tag, timer_tag;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_expiry(struct vconn *c, const char *why)
{
	c->expire = mono_ns() + KILL_NS;
	c->expire_why = why;
}

static void queue_rst(struct vsock *v, uint32_t gport, uint32_t hport)
{
	/* Bounded: a guest spraying bad packets loses RSTs, never memory. */
	if (v->rst_n == RST_RING)
		return;
	v->rst[(v->rst_head + v->rst_n) % RST_RING] = (struct rst){gport, hport};
	v->rst_n++;
}

static struct vconn *find(struct vsock *v, uint32_t gport, uint32_t hport)
{
	for (unsigned int i = 0; i < v->nconns; i++) {
		struct vconn *c = v->conns[i];
		if (!c->gone && c->st != C_LINE && c->gport == gport && c->hport == hport)
			return c;
	}
	return NULL;
}

static void close_fd(struct vsock *v, struct vconn *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(v->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->txb);
	c->txb = NULL;
	c->txb_len = 0;
}

/* A ring's le16 at gpa, or -1 (debug dumps only). */
static int ring16(sqb_vio_dev *dev, uint64_t gpa)
{
	const volatile uint8_t *p = dev->host.mem.map(dev->host.mem.opaque, gpa, 2, 0);

	return p ? (int)(p[0] | p[1] << 8) : -1;
}

/* Where each queue stands, at debug level: enough to tell a notify the
 * device missed (avail idx ahead of next_avail) from an interrupt the driver
 * missed (used idx ahead of used_event with the ISR bit still set). */
static void dump_queues(sqb_vio_dev *dev, const char *when)
{
	static const char *const name[] = {"rx", "tx", "ev"};

	if (!sqb_log_enabled(SQB_LOG_DEBUG))
		return;
	for (unsigned int i = 0; i < 3; i++) {
		const struct sqb_vq *q = &dev->vq[i];

		sqb_debug("vsock %s: %s queue: avail idx %d, next_avail %u, used idx %u, "
			  "used_event %d, avail_event %d, signalled_used %u%s; isr 0x%x, "
			  "interrupts raised %llu",
			  when, name[i], ring16(dev, q->avail + 2), q->next_avail, q->next_used,
			  ring16(dev, q->avail + 4 + 2ull * q->num),
			  ring16(dev, q->used + 4 + 8ull * q->num), q->signalled_used,
			  q->signalled_valid ? "" : " (not valid)", dev->isr,
			  (unsigned long long)dev->irqs);
	}
}

/* End a connection; the guest hears an RST when it knows the connection.
 * Every close of a host socket says why at debug level (SQB_LOG_LEVEL=debug),
 * so a host client's early EOF explains itself in squib's log. */
static void conn_kill(struct vsock *v, struct vconn *c, bool tell_guest, const char *why)
{
	if (c->fd >= 0)
		sqb_debug("vsock %s: closing host connection %u <-> guest port %u: %s "
			  "(rx_cnt %u, fwd_cnt %u, peer buf_alloc %u fwd_cnt %u, held %u)",
			  v->path, c->hport, c->gport, why, c->rx_cnt, c->fwd_cnt,
			  c->peer_buf_alloc, c->peer_fwd_cnt, c->txb_len);
	if (c->fd >= 0 && v->dev)
		dump_queues(v->dev, "close");
	close_fd(v, c);
	c->expire = 0;
	if (tell_guest && c->st != C_LINE && !(c->st == C_REQ && (c->pend & P_REQUEST))) {
		c->st = C_DEAD;
		c->pend = P_RST;
	} else {
		c->gone = true;
	}
}

static struct vconn *conn_add(struct vsock *v, int fd, enum cstate st)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct vconn *c;

	if (v->nconns >= MAX_CONNS)
		return NULL;
	if (v->nconns == v->cap) {
		unsigned int cap = v->cap ? v->cap * 2 : 16;
		struct vconn **n = realloc(v->conns, cap * sizeof(*n));
		if (!n)
			return NULL;
		v->conns = n;
		v->cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->st = st;
	ev.data.ptr = c;
	if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &ev)) {
		free(c);
		return NULL;
	}
	v->conns[v->nconns++] = c;
	if (v->dev)
		v->dev->m.conns_added++;
	return c;
}

static void sweep(struct vsock *v)
{
	for (unsigned int i = 0; i < v->nconns;) {
		struct vconn *c = v->conns[i];
		if (!c->gone) {
			i++;
			continue;
		}
		close_fd(v, c);
		free(c);
		v->conns[i] = v->conns[--v->nconns];
		if (v->dev)
			v->dev->m.conns_removed++;
	}
}

static void drop_all(struct vsock *v)
{
	for (unsigned int i = 0; i < v->nconns; i++)
		v->conns[i]->gone = true;
	sweep(v);
	v->rst_n = 0;
}

/* ---- guest -> host ----------------------------------------------------- */

static void credit_check(struct vconn *c)
{
	/* The guest may stall once it used its credit; tell it about freed
	 * space by half-buffers (every packet we send also carries fwd_cnt). */
	if (c->fwd_cnt - c->fwd_told >= CONN_BUF / 2)
		c->pend |= P_CREDIT_UPDATE;
}

/* A send to the host socket failed.  EPIPE/ECONNRESET only mean the client
 * stopped reading: what it already wrote is still in our socket and must
 * reach the guest (vhost-vsock delivers it too), so tell the guest the host
 * receives no more (SHUTDOWN RCV) and drop its data from now on; any other
 * error ends the connection. */
static void host_send_failed(struct vsock *v, struct vconn *c, const char *why)
{
	if (errno == EPIPE && v->dev)
		v->dev->m.broken_pipes++;
	if (errno != EPIPE && errno != ECONNRESET) {
		conn_kill(v, c, true, why);
		return;
	}
	c->fwd_cnt += c->txb_len; /* discarded: the guest's credit keeps flowing */
	free(c->txb);
	c->txb = NULL;
	c->txb_len = 0;
	if (!c->host_rd_gone) {
		c->host_rd_gone = true;
		c->pend |= P_SHUTDOWN_RCV;
	}
}

static int sock_send(int fd, const uint8_t *p, uint32_t len, uint32_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t r = send(fd, p + *done, len - *done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		*done += (uint32_t)r;
	}
	return 0;
}

/* After the guest's SHUTDOWN: half-close once our buffer is empty; after
 * both directions, close and answer with RST (5.10.6.5). */
static void apply_shutdown(struct vsock *v, struct vconn *c)
{
	const uint32_t both = SQB_VSOCK_SHUTDOWN_RCV | SQB_VSOCK_SHUTDOWN_SEND;

	if (c->fd < 0)
		return;
	if (c->txb_len) {
		/* Firecracker waits CONN_SHUTDOWN_TIMEOUT_MS for its buffer to
		 * drain, then kills: a host client that never reads cannot keep
		 * a closed guest socket's connection for ever. */
		if ((c->guest_shut & both) == both && !c->expire)
			set_expiry(c, "the host client did not take the guest's last data "
				      "within 2 s of the guest's close");
		return;
	}
	if ((c->guest_shut & both) == both)
		conn_kill(v, c, true, "the guest shut down both directions");
	else if ((c->guest_shut & SQB_VSOCK_SHUTDOWN_SEND) && !c->host_wr_shut) {
		sqb_debug("vsock %s: host connection %u <-> guest port %u: the guest "
			  "shut down sending, host socket half-closed",
			  v->path, c->hport, c->gport);
		c->host_wr_shut = true;
		shutdown(c->fd, SHUT_WR);
	}
}

static void flush_txb(struct vsock *v, struct vconn *c)
{
	uint32_t n;

	if (!c->txb_len || c->fd < 0)
		return;
	if (sock_send(c->fd, c->txb, c->txb_len, &n)) {
		host_send_failed(v, c, "send to the host socket failed");
		return;
	}
	memmove(c->txb, c->txb + n, c->txb_len - n);
	c->txb_len -= n;
	c->fwd_cnt += n;
	credit_check(c);
	apply_shutdown(v, c);
}

/* Send what the TX batch gathered with one sendmsg from guest memory, keep
 * what the host socket did not take, and give the chains back (used length
 * 0).  0, or a ring error from the push (*why set). */
static int tx_flush(sqb_vio_dev *dev, const char **why)
{
	struct vsock *v = dev->priv;
	struct vconn *c = v->tq_conn;
	struct msghdr mh = {.msg_iov = v->tq_iov, .msg_iovlen = v->tq_niov};
	uint32_t sent = 0, left;
	int rc = 0;

	if (!v->tq_n)
		return 0;
	for (;;) {
		ssize_t r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r >= 0) {
			sent = (uint32_t)r;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			c->fwd_cnt += v->tq_bytes;
			host_send_failed(v, c, "send to the host socket failed");
			goto give_back;
		}
		break;
	}
	c->fwd_cnt += sent;
	left = v->tq_bytes - sent;
	if (left) {
		/* The socket is full: hold the rest (within the credit we gave,
		 * so at most CONN_BUF) until EPOLLOUT. */
		if (!c->txb && !(c->txb = malloc(CONN_BUF))) {
			conn_kill(v, c, true, "out of memory for the guest's data");
			goto give_back;
		}
		for (unsigned int i = 0, skip = sent; i < v->tq_niov && left; i++) {
			size_t n = v->tq_iov[i].iov_len;

			if (skip >= n) {
				skip -= (uint32_t)n;
				continue;
			}
			memcpy(c->txb + c->txb_len, (uint8_t *)v->tq_iov[i].iov_base + skip,
			       n - skip);
			c->txb_len += (uint32_t)(n - skip);
			left -= (uint32_t)(n - skip);
			skip = 0;
		}
	}
	credit_check(c);
give_back:
	for (unsigned int i = 0; i < v->tq_n && rc >= 0; i++)
		rc = sqb_vq_push(&dev->vq[Q_TX], &dev->host.mem, v->tq_head[i], 0, why);
	v->tq_n = v->tq_niov = 0;
	v->tq_bytes = 0;
	v->tq_conn = NULL;
	return rc < 0 ? rc : 0;
}

/* A guest RW packet.  1: its bytes joined the TX batch (the chain is pushed
 * by tx_flush); 0: handled, the caller pushes the chain; <0: a ring error
 * from sending the batch first. */
static int guest_rw(sqb_vio_dev *dev, struct vconn *c, const struct sqb_vq_chain *ch, uint32_t len,
		    const char **why_ring)
{
	struct vsock *v = dev->priv;
	uint64_t short_by;
	int n;

	if (c->st != C_EST || (c->guest_shut & SQB_VSOCK_SHUTDOWN_SEND) ||
	    c->txb_len + (uint64_t)v->tq_bytes + len > CONN_BUF) {
		/* Data out of state, or beyond the credit we gave: a broken peer.
		 * What it sent before within its credit (batched: this
		 * connection's) still reaches the host first, as it did when
		 * each packet was sent on its own. */
		n = tx_flush(dev, why_ring);
		if (n < 0)
			return n;
		conn_kill(v, c, true,
			  c->st != C_EST ? "guest data before the connection was established"
			  : (c->guest_shut & SQB_VSOCK_SHUTDOWN_SEND)
			      ? "guest data after its SHUTDOWN(SEND)"
			      : "guest data beyond the credit squib gave");
		return 0;
	}
	if (!len)
		return 0;
	if (c->host_rd_gone) { /* nobody reads it: count it as forwarded */
		c->fwd_cnt += len;
		credit_check(c);
		return 0;
	}
	if (c->txb_len) { /* behind bytes the socket has not taken: queue */
		sqb_vq_read_bytes(ch, SQB_VSOCK_HDR_LEN, c->txb + c->txb_len, len);
		c->txb_len += len;
		return 0;
	}
	/* Join the batch: tx_packet sent any batch of another connection,
	 * or one too full for this chain's readable segments, first. */
	n = sqb_vq_iov(ch, false, SQB_VSOCK_HDR_LEN, len, v->tq_iov + v->tq_niov, &short_by);
	v->tq_conn = c;
	v->tq_head[v->tq_n++] = ch->head;
	v->tq_niov += (unsigned int)n;
	v->tq_bytes += len;
	return 1;
}

static void guest_connect(struct vsock *v, const struct sqb_vsock_hdr *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vconn *c;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->path, h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	/* A Unix stream connect completes at once or fails (EAGAIN: backlog
	 * full): nothing waits here. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		sqb_debug("vsock: guest connect to %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		goto refuse;
	}
	c = conn_add(v, fd, C_EST);
	if (!c) {
		close(fd);
		goto refuse;
	}
	c->gport = h->src_port;
	c->hport = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pend = P_RESPONSE;
	return;
refuse:
	queue_rst(v, h->src_port, h->dst_port);
}

static void guest_response(struct vsock *v, struct vconn *c)
{
	char line[24];
	uint32_t n;
	int len;

	if (c->st != C_REQ || (c->pend & P_REQUEST)) {
		conn_kill(v, c, true, "RESPONSE from the guest out of state");
		return;
	}
	c->st = C_EST;
	c->expire = 0;
	len = snprintf(line, sizeof(line), "OK %u\n", c->hport);
	/* A fresh socket's buffer always takes a dozen bytes. */
	if (sock_send(c->fd, (const uint8_t *)line, (uint32_t)len, &n))
		host_send_failed(v, c, "cannot send OK to the host client");
	else if (n != (uint32_t)len)
		conn_kill(v, c, true, "cannot send OK to the host client");
}

/* One TX chain.  1: it joined the TX batch (tx_flush pushes it); 0: the
 * caller pushes it; <0: a ring error from flushing the batch before it. */
static int tx_packet(sqb_vio_dev *dev, const struct sqb_vq_chain *ch, const char **why_ring)
{
	struct vsock *v = dev->priv;
	uint8_t raw[SQB_VSOCK_HDR_LEN];
	struct sqb_vsock_hdr h;
	enum sqb_vsock_verdict vd;
	struct vconn *c;
	const char *why = NULL;
	int rc;

	if (ch->read_len < SQB_VSOCK_HDR_LEN) {
		sqb_debug("vsock: tx chain of %llu bytes, no header: dropped",
			  (unsigned long long)ch->read_len);
		return 0;
	}
	sqb_vq_read_bytes(ch, 0, raw, sizeof(raw));
	sqb_vsock_hdr_decode(raw, &h);
	vd = sqb_vsock_hdr_check(&h, v->cid, ch->read_len - SQB_VSOCK_HDR_LEN, &why);
	c = vd == SQB_VSOCK_DROP ? NULL : find(v, h.src_port, h.dst_port);
	/* Only more data for the batch's connection may join it; anything
	 * else sees the batch sent first, so the host socket gets bytes and
	 * shutdowns in the guest's order. */
	if (v->tq_n && (vd != SQB_VSOCK_OK || h.op != SQB_VSOCK_OP_RW || c != v->tq_conn ||
			v->tq_n == v->tx_batch || v->tq_niov + ch->nread > SQB_VQ_MAX_SIZE)) {
		rc = tx_flush(dev, why_ring);
		if (rc < 0)
			return rc;
		c = vd == SQB_VSOCK_DROP ? NULL : find(v, h.src_port, h.dst_port);
	}
	if (vd != SQB_VSOCK_OK) {
		sqb_debug("vsock: tx packet %u->%u: %s", h.src_port, h.dst_port, why);
		if (vd == SQB_VSOCK_RST) {
			if (c)
				conn_kill(v, c, true, why);
			else
				queue_rst(v, h.src_port, h.dst_port);
		}
		return 0;
	}
	if (h.op == SQB_VSOCK_OP_REQUEST) {
		if (c) /* a second REQUEST on a live pair */
			conn_kill(v, c, true, "REQUEST from the guest on a live connection");
		else
			guest_connect(v, &h);
		return 0;
	}
	if (!c) {
		if (h.op != SQB_VSOCK_OP_RST)
			queue_rst(v, h.src_port, h.dst_port);
		return 0;
	}
	if (c->st == C_DEAD)
		return 0; /* our RST is on its way */
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	if (c->rx_cnt - c->peer_fwd_cnt < c->peer_buf_alloc)
		c->creq_sent = false;
	rc = 0;
	switch (h.op) {
	case SQB_VSOCK_OP_RST:
		conn_kill(v, c, false, "RST from the guest");
		break;
	case SQB_VSOCK_OP_RESPONSE:
		guest_response(v, c);
		break;
	case SQB_VSOCK_OP_RW:
		rc = guest_rw(dev, c, ch, h.len, why_ring);
		break;
	case SQB_VSOCK_OP_SHUTDOWN:
		c->guest_shut |= h.flags;
		apply_shutdown(v, c);
		break;
	case SQB_VSOCK_OP_CREDIT_REQUEST:
		c->pend |= P_CREDIT_UPDATE;
		break;
	default: /* CREDIT_UPDATE: the credit fields above are all it says */
		break;
	}
	if (c->st == C_REQ && h.op != SQB_VSOCK_OP_RESPONSE && h.op != SQB_VSOCK_OP_RST)
		conn_kill(v, c, true, "guest packet other than RESPONSE to squib's REQUEST");
	return rc;
}

/* ---- host -> guest ------------------------------------------------------ */

static uint32_t peer_credit(const struct vconn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool can_read(const struct vconn *c)
{
	return c->st == C_EST && c->fd >= 0 && c->readable && !c->rd_eof &&
	       !(c->guest_shut & SQB_VSOCK_SHUTDOWN_RCV);
}

static bool conn_has_work(const struct vconn *c)
{
	return !c->gone && c->st != C_LINE &&
	       (c->pend || (can_read(c) && peer_credit(c)) || (can_read(c) && !c->creq_sent));
}

static bool have_work(struct vsock *v)
{
	if (v->rst_n)
		return true;
	for (unsigned int i = 0; i < v->nconns; i++)
		if (conn_has_work(v->conns[i]))
			return true;
	return false;
}

/* Firecracker's muxer logs every packet it hands the guest at Debug, the
 * header as Rust's {:?} writes its VsockPacketHeader (test_snapshot_basic.py
 * reads the host ports of host-initiated REQUESTs from these lines). */
static void log_rx(const struct sqb_vsock_hdr *h)
{
	sqb_debug("vsock muxer: RX pkt: VsockPacketHeader { src_cid: %llu, dst_cid: %llu, "
		  "src_port: %u, dst_port: %u, len: %u, type_: %u, op: %u, flags: %u, "
		  "buf_alloc: %u, fwd_cnt: %u }",
		  (unsigned long long)h->src_cid, (unsigned long long)h->dst_cid, h->src_port,
		  h->dst_port, h->len, h->type, h->op, h->flags, h->buf_alloc, h->fwd_cnt);
}

/* The header of a packet of connection c to the guest, encoded at dst. */
static void conn_hdr(struct vsock *v, struct vconn *c, uint16_t op, uint32_t flags, uint32_t len,
		     uint8_t *dst)
{
	struct sqb_vsock_hdr h = {
	    .src_cid = SQB_VSOCK_HOST_CID,
	    .dst_cid = v->cid,
	    .src_port = c->hport,
	    .dst_port = c->gport,
	    .len = len,
	    .type = SQB_VSOCK_TYPE_STREAM,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = CONN_BUF,
	    .fwd_cnt = c->fwd_cnt,
	};

	sqb_vsock_hdr_encode(dst, &h);
	if (v->log_rx)
		log_rx(&h);
}

static uint32_t put_pkt(struct vsock *v, const struct sqb_vq_chain *ch, struct vconn *c,
			uint16_t op, uint32_t flags, uint32_t len)
{
	uint8_t raw[SQB_VSOCK_HDR_LEN];

	conn_hdr(v, c, op, flags, len, raw);
	sqb_vq_write_bytes(ch, 0, raw, sizeof(raw)); /* an RW payload is already in place */
	c->fwd_told = c->fwd_cnt;
	c->pend &= ~(uint32_t)P_CREDIT_UPDATE;
	return SQB_VSOCK_HDR_LEN + len;
}

/* A streaming connection's read goes on past the chain rx_fill popped:
 * further RX chains, popped here, each taking up to one packet's payload of
 * the credit left, their payload areas appended to iov (*niov entries) and
 * their rooms to want[1..] (*total grows), so that one recvmsg fills them
 * all.  A chain that cannot take a header in its first writable descriptor
 * plus payload (a short or odd framing), or whose descriptors would
 * overflow iov, goes back to the ring and ends the batch: rx_fill's own pop
 * handles it as any chain.  A ring error ends the batch with nothing popped;
 * rx_fill's next pop meets it.  Returns the number of further chains. */
static uint32_t rx_gather(struct vsock *v, uint32_t credit, struct iovec *iov, size_t *niov,
			  uint32_t *want, uint32_t *total)
{
	struct sqb_vq *q = &v->dev->vq[Q_RX];
	struct sqb_vq_chain *x = &v->xch;
	uint32_t nx = 0;
	const char *why;

	while (credit && nx + 1 < v->rx_batch && nx + 1 < RX_BATCH) {
		uint64_t room, short_by;
		uint32_t k;

		if (sqb_vq_pop(q, &v->dev->host.mem, x, &why) != 1)
			break;
		room = x->write_len > SQB_VSOCK_HDR_LEN ? x->write_len - SQB_VSOCK_HDR_LEN : 0;
		if (!room || x->seg[x->nread].len < SQB_VSOCK_HDR_LEN ||
		    *niov + (size_t)(x->nseg - x->nread) > SQB_VQ_MAX_SIZE) {
			sqb_vq_unpop(q);
			break;
		}
		k = (uint32_t)(room < SQB_VSOCK_MAX_PKT ? room : SQB_VSOCK_MAX_PKT);
		if (k > credit)
			k = credit;
		*niov += (size_t)sqb_vq_iov(x, true, SQB_VSOCK_HDR_LEN, k, iov + *niov, &short_by);
		v->rxb[nx].head = x->head;
		v->xhdr[nx] = x->seg[x->nread].host;
		want[++nx] = k;
		*total += k;
		credit -= k;
	}
	return nx;
}

/* The header of a batch's further RW packet, in its chain's first writable
 * descriptor (rx_gather checked it holds 44 bytes). */
static void rx_hdr(struct vsock *v, struct vconn *c, uint8_t *dst, uint32_t len)
{
	conn_hdr(v, c, SQB_VSOCK_OP_RW, 0, len, dst);
}

/* Fill ch with the next packet c owes the guest; 0 when it has none. */
static uint32_t conn_produce(struct vsock *v, struct vconn *c, const struct sqb_vq_chain *ch)
{
	uint64_t room = ch->write_len - SQB_VSOCK_HDR_LEN;
	uint32_t credit, n;
	ssize_t r;

	if (c->pend & P_RST) {
		c->gone = true;
		return put_pkt(v, ch, c, SQB_VSOCK_OP_RST, 0, 0);
	}
	if (c->pend & P_RESPONSE) {
		c->pend &= ~(uint32_t)P_RESPONSE;
		return put_pkt(v, ch, c, SQB_VSOCK_OP_RESPONSE, 0, 0);
	}
	if (c->pend & P_REQUEST) {
		c->pend &= ~(uint32_t)P_REQUEST;
		set_expiry(c, "the guest did not answer squib's REQUEST within 2 s");
		return put_pkt(v, ch, c, SQB_VSOCK_OP_REQUEST, 0, 0);
	}
	credit = can_read(c) ? peer_credit(c) : 0;
	if (credit && room) {
		struct iovec iov[SQB_VQ_MAX_SIZE];
		struct msghdr mh = {.msg_iov = iov};
		uint32_t want[RX_BATCH], nx, total, left;
		uint64_t short_by; /* none: n <= room */

		n = (uint32_t)(room < SQB_VSOCK_MAX_PKT ? room : SQB_VSOCK_MAX_PKT);
		if (n > credit)
			n = credit;
		mh.msg_iovlen = (size_t)sqb_vq_iov(ch, true, SQB_VSOCK_HDR_LEN, n, iov, &short_by);
		want[0] = total = n;
		nx = c->rx_full ? rx_gather(v, credit - n, iov, &mh.msg_iovlen, want, &total) : 0;
		do
			r = recvmsg(c->fd, &mh, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		c->rx_full = r == (ssize_t)total;
		/* The chains the bytes did not reach go back to the ring, newest
		 * first (all of them on EOF, EAGAIN or an error). */
		left = r > 0 ? (uint32_t)r - (r < (ssize_t)n ? (uint32_t)r : n) : 0;
		for (uint32_t i = 0; i < nx; i++) {
			if (!left) {
				for (uint32_t j = i; j < nx; j++)
					sqb_vq_unpop(&v->dev->vq[Q_RX]);
				nx = i;
				break;
			}
			left -= left < want[i + 1] ? left : want[i + 1];
		}
		left = r > 0 ? (uint32_t)r : 0;
		if (r > 0) {
			uint32_t first = left < n ? left : n, used;

			left -= first;
			c->rx_cnt += (uint32_t)r;
			/* headers in ring order (the Debug log's order) */
			used = put_pkt(v, ch, c, SQB_VSOCK_OP_RW, 0, first);
			for (uint32_t i = 0; i < nx; i++) {
				uint32_t k = left < want[i + 1] ? left : want[i + 1];

				left -= k;
				rx_hdr(v, c, v->xhdr[i], k);
				v->rxb[i].len = SQB_VSOCK_HDR_LEN + k;
			}
			v->rxb_n = nx;
			return used;
		}
		if (r == 0) {
			sqb_debug("vsock %s: host connection %u <-> guest port %u: EOF from "
				  "the host client after %u bytes (guest fwd_cnt %u, buf_alloc "
				  "%u; squib fwd_cnt %u), SHUTDOWN(SEND) to the guest",
				  v->path, c->hport, c->gport, c->rx_cnt, c->peer_fwd_cnt,
				  c->peer_buf_alloc, c->fwd_cnt);
			if (v->dev)
				dump_queues(v->dev, "host EOF");
			c->rd_eof = true;
			c->pend |= P_SHUTDOWN;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->readable = false;
		} else {
			conn_kill(v, c, true, "recv from the host socket failed");
			return c->gone ? 0 : conn_produce(v, c, ch);
		}
	} else if (can_read(c) && !credit && !c->creq_sent) {
		/* Stalled on the guest's credit: ask (5.10.6.3); the timer asks
		 * again while the stall lasts. */
		c->creq_sent = true;
		c->pend |= P_CREDIT_REQUEST;
	}
	/* Every packet carries fwd_cnt: a bare CREDIT_UPDATE only when no data
	 * went out above. */
	if (c->pend & P_CREDIT_UPDATE)
		return put_pkt(v, ch, c, SQB_VSOCK_OP_CREDIT_UPDATE, 0, 0);
	if (c->pend & (P_SHUTDOWN | P_SHUTDOWN_RCV)) {
		/* Flags accumulate (5.10.6.5): say everything that holds. */
		uint32_t fl = (c->rd_eof ? SQB_VSOCK_SHUTDOWN_SEND : 0) |
			      (c->host_rd_gone ? SQB_VSOCK_SHUTDOWN_RCV : 0);

		c->pend &= ~(uint32_t)(P_SHUTDOWN | P_SHUTDOWN_RCV);
		/* Both ways closed on the host: the guest should answer with
		 * RST; Firecracker kills after CONN_SHUTDOWN_TIMEOUT_MS. */
		if (c->rd_eof && c->host_rd_gone && !c->expire)
			set_expiry(c,
				   "the guest did not close within 2 s of the host client's close");
		return put_pkt(v, ch, c, SQB_VSOCK_OP_SHUTDOWN, fl, 0);
	}
	if (c->pend & P_CREDIT_REQUEST) {
		c->pend &= ~(uint32_t)P_CREDIT_REQUEST;
		c->creq_at = mono_ns();
		return put_pkt(v, ch, c, SQB_VSOCK_OP_CREDIT_REQUEST, 0, 0);
	}
	return 0;
}

static uint32_t produce(struct vsock *v, const struct sqb_vq_chain *ch)
{
	if (v->rst_n) {
		struct vconn tmp = {.gport = v->rst[v->rst_head].gport,
				    .hport = v->rst[v->rst_head].hport};
		v->rst_head = (v->rst_head + 1) % RST_RING;
		v->rst_n--;
		return put_pkt(v, ch, &tmp, SQB_VSOCK_OP_RST, 0, 0);
	}
	/* Round robin, so that one busy connection cannot starve the others. */
	for (unsigned int k = 0; k < v->nconns; k++) {
		struct vconn *c = v->conns[(v->rr + k) % v->nconns];
		uint32_t used;

		if (c->gone || c->st == C_LINE)
			continue;
		used = conn_produce(v, c, ch);
		if (used) {
			v->rr = (v->rr + k + 1) % v->nconns;
			return used;
		}
	}
	return 0;
}

static bool credit_stalled(const struct vconn *c)
{
	return c->creq_sent && !(c->pend & P_CREDIT_REQUEST) && can_read(c) && !peer_credit(c);
}

/* Arm the timerfd for the earliest deadline, or disarm it. */
static void rearm(struct vsock *v)
{
	struct itimerspec it = {{0, 0}, {0, 0}};
	uint64_t at = v->accept_retry ? v->accept_at : 0;

	for (unsigned int i = 0; i < v->nconns; i++) {
		const struct vconn *c = v->conns[i];
		uint64_t t = 0;

		if (c->gone || c->st == C_DEAD)
			continue;
		if (c->expire)
			t = c->expire;
		if (credit_stalled(c) && (!t || c->creq_at + CREQ_RETRY_NS < t))
			t = c->creq_at + CREQ_RETRY_NS;
		if (t && (!at || t < at))
			at = t;
	}
	if (at == v->tfd_at || v->tfd < 0)
		return;
	v->tfd_at = at;
	it.it_value.tv_sec = (time_t)(at / 1000000000ull);
	it.it_value.tv_nsec = (long)(at % 1000000000ull);
	timerfd_settime(v->tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

static void accept_all(struct vsock *v);

/* Deadlines that passed: kill timers, a credit stall's next CREDIT_REQUEST,
 * accept() after a lack of descriptors. */
static void timers(struct vsock *v)
{
	uint64_t now = mono_ns();

	if (v->accept_retry && now >= v->accept_at) {
		v->accept_retry = false;
		accept_all(v);
	}

	for (unsigned int i = 0; i < v->nconns; i++) {
		struct vconn *c = v->conns[i];

		if (c->gone || c->st == C_DEAD)
			continue;
		if (c->expire && now >= c->expire) {
			if (v->dev) /* Firecracker's kill timer */
				v->dev->m.conns_killed++;
			conn_kill(v, c, true, c->expire_why);
		} else if (credit_stalled(c) && now >= c->creq_at + CREQ_RETRY_NS)
			c->creq_sent = false; /* ask again */
	}
}

static int rx_fill(sqb_vio_dev *dev, const char **why)
{
	struct vsock *v = dev->priv;
	struct sqb_vq *q = &dev->vq[Q_RX];
	struct sqb_vq_chain *ch = &dev->chain;
	bool pushed = false;
	int rc = 0;

	if (v->ev_ack_wait) /* the driver has not handled the reset yet */
		return 0;
	/* one look at the level per fill: below Debug a packet costs a test */
	v->log_rx = sqb_log_enabled(SQB_LOG_DEBUG);
	while (have_work(v)) {
		uint32_t used;

		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, ch, why);
		if (rc <= 0)
			break;
		/* A buffer too small for a header cannot carry anything. */
		used = ch->write_len < SQB_VSOCK_HDR_LEN ? 0 : produce(v, ch);
		if (!used && ch->write_len >= SQB_VSOCK_HDR_LEN) {
			sqb_vq_unpop(q);
			rc = 0;
			break;
		}
		rc = sqb_vq_push(q, &dev->host.mem, ch->head, used, why);
		if (rc < 0)
			break;
		pushed = true;
		if (used >= SQB_VSOCK_HDR_LEN) {
			dev->m.rx_packets++;
			dev->m.rx_bytes += used - SQB_VSOCK_HDR_LEN;
		}
		/* The rest of a batched read, in the order its bytes came. */
		for (unsigned int i = 0; i < v->rxb_n && rc >= 0; i++) {
			rc = sqb_vq_push(q, &dev->host.mem, v->rxb[i].head, v->rxb[i].len, why);
			dev->m.rx_packets++;
			dev->m.rx_bytes += v->rxb[i].len - SQB_VSOCK_HDR_LEN;
		}
		v->rxb_n = 0;
		if (rc < 0)
			break;
	}
	v->rxb_n = 0;
	sweep(v);
	rearm(v);
	if (pushed)
		sqb_vio_signal_used(dev, Q_RX);
	return rc < 0 ? rc : 0;
}

static int tx_drain(sqb_vio_dev *dev, const char **why)
{
	struct vsock *v = dev->priv;
	struct sqb_vq *q = &dev->vq[Q_TX];
	struct sqb_vq_chain *ch = &dev->chain;
	bool popped = false;
	int rc, frc;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, ch, why);
		if (rc <= 0)
			break;
		popped = true; /* pushed here or by tx_flush */
		if (ch->read_len >= SQB_VSOCK_HDR_LEN) {
			dev->m.tx_packets++;
			dev->m.tx_bytes += ch->read_len - SQB_VSOCK_HDR_LEN;
		}
		rc = tx_packet(dev, ch, why);
		if (rc == 0)
			rc = sqb_vq_push(q, &dev->host.mem, ch->head, 0, why);
		if (rc < 0)
			break;
	}
	/* The batch goes out even after a ring error: its bytes are the
	 * guest's, already taken off the ring. */
	frc = tx_flush(dev, why);
	if (rc >= 0 && frc < 0)
		rc = frc;
	if (popped)
		sqb_vio_signal_used(dev, Q_TX);
	if (rc < 0)
		return rc;
	/* Answers (RESPONSE, RST, credit) go out on RX now. */
	sqb_vio_process_locked(dev, Q_RX);
	sweep(v);
	rearm(v);
	return 0;
}

static int ev_fill(sqb_vio_dev *dev, const char **why)
{
	struct vsock *v = dev->priv;
	struct sqb_vq *q = &dev->vq[Q_EV];
	struct sqb_vq_chain *ch = &dev->chain;
	uint8_t id[4] = {SQB_VSOCK_EVENT_TRANSPORT_RESET, 0, 0, 0};
	int rc;

	if (v->ev_ack_wait) {
		uint16_t idx;

		rc = sqb_vq_avail_idx(q, &dev->host.mem, &idx, why);
		if (rc < 0)
			return rc;
		if (idx != v->ev_avail) { /* re-posted: the reset was handled */
			v->ev_ack_wait = false;
			sqb_vio_process_locked(dev, Q_RX);
		}
	}
	if (!v->reset_pending)
		return 0;
	/* No event buffer: ask for the driver's next one (avail_event, 2.7.10)
	 * and look again, or a driver that posts it then never notifies. */
	while ((rc = sqb_vq_pop(q, &dev->host.mem, ch, why)) == 0) {
		rc = sqb_vq_enable_notify(q, &dev->host.mem, why);
		if (rc <= 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	/* struct virtio_vsock_event: le32 id. */
	if (sqb_vq_write_bytes(ch, 0, id, sizeof(id)) != sizeof(id)) {
		sqb_vq_unpop(q);
		*why = "vsock event buffer shorter than 4 bytes";
		return -SQB_ECORRUPT;
	}
	rc = sqb_vq_push(q, &dev->host.mem, ch->head, sizeof(id), why);
	if (rc < 0)
		return rc;
	v->reset_pending = false;
	rc = sqb_vq_watch_avail(q, &dev->host.mem, &v->ev_avail, why);
	if (rc < 0)
		return rc;
	v->ev_ack_wait = true;
	sqb_vio_signal_used(dev, Q_EV);
	return 0;
}

static int vsock_process(sqb_vio_dev *dev, unsigned int q, const char **why)
{
	if (q == Q_RX)
		return rx_fill(dev, why);
	if (q == Q_TX)
		return tx_drain(dev, why);
	return ev_fill(dev, why);
}

/* ---- host sockets ------------------------------------------------------ */

static void accept_all(struct vsock *v)
{
	for (;;) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vconn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The listener is edge-triggered: clients already
				 * queued would wait for the next connect.  Look
				 * again shortly. */
				if (!v->accept_retry)
					sqb_warn("vsock %s: cannot accept a host connection: %s; "
						 "retrying every 100 ms",
						 v->path, strerror(errno));
				v->accept_retry = true;
				v->accept_at = mono_ns() + ACCEPT_RETRY_NS;
			}
			return;
		}
		c = conn_add(v, fd, C_LINE);
		if (!c) {
			close(fd);
			continue;
		}
		c->readable = true;
	}
}

/* Firecracker's allocate_local_port: the next port after the last one
 * handed out, wrapping within PORT_BASE .. PORT_LAST_MAX, skipping ports
 * still in use. */
static uint32_t alloc_port(struct vsock *v)
{
	for (;;) {
		uint32_t p = ((v->port_last + 1) & ~(1u << 31)) | PORT_BASE;
		bool used = false;

		v->port_last = p;
		for (unsigned int i = 0; i < v->nconns && !used; i++)
			used = !v->conns[i]->gone && v->conns[i]->st != C_LINE &&
			       v->conns[i]->hport == p;
		if (!used)
			return p;
	}
}

static void read_line(struct vsock *v, struct vconn *c)
{
	char buf[32];
	uint32_t port = 0;
	size_t used = 0;
	ssize_t r;
	int rc;

	/* Peek, so that bytes the client pipelines after the line stay in the
	 * socket for the guest. */
	do
		r = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		return;
	}
	if (r <= 0) {
		conn_kill(v, c, false,
			  r ? "recv of the CONNECT line failed"
			    : "host client closed before CONNECT");
		return;
	}
	rc = sqb_vsock_parse_connect(buf, (size_t)r, &port, &used);
	if (rc == 0) {
		/* Wait for the rest of the line, but not for ever, and not
		 * after the client hung up (no further edge would come). */
		if (c->hup) {
			conn_kill(v, c, false,
				  "host client closed in the middle of the CONNECT line");
			return;
		}
		c->readable = false;
		if (!c->expire)
			set_expiry(c, "CONNECT line not completed within 2 s");
		return;
	}
	if (rc < 0 || recv(c->fd, buf, used, MSG_DONTWAIT) != (ssize_t)used) {
		sqb_debug("vsock: bad host command on %s", v->path);
		/* Consume what we looked at, so the client sees EOF, not a reset. */
		if (rc < 0 && recv(c->fd, buf, (size_t)r, MSG_DONTWAIT) < 0)
			sqb_debug("vsock: recv: %s", strerror(errno));
		conn_kill(v, c, false, "bad CONNECT line");
		return;
	}
	c->st = C_REQ;
	c->expire = 0;
	c->gport = port;
	c->hport = alloc_port(v);
	c->pend = P_REQUEST;
	c->peer_buf_alloc = 0; /* no credit until the guest's RESPONSE */
}

/* [F-115], Firecracker's prepare_save: a snapshot's source VM hears
 * TRANSPORT_RESET, so its sockets reset as a clone's do.  Run from the
 * first host_ready after the save, which is the resume that ends the
 * create (dev_virtio.c calls it at every resume and never while quiesced):
 * the saved state and memory are written by then and never hold the
 * event, and the driver handles it once the vCPUs run again.  The host
 * ends of the connections close now, after one last try at the guest's
 * data squib still holds (host clients see EOF).  Firecracker keeps them
 * until the reset guest answers their next packet with RST, so an idle
 * one would stay open for ever. */
static void reset_after_save(sqb_vio_dev *dev)
{
	struct vsock *v = dev->priv;

	v->reset_at_resume = false;
	for (unsigned int i = 0; i < v->nconns; i++) {
		struct vconn *c = v->conns[i];

		if (c->fd < 0 || c->gone)
			continue;
		flush_txb(v, c);
		conn_kill(v, c, false, "snapshot created: TRANSPORT_RESET for the guest");
	}
	drop_all(v);
	v->reset_pending = true;
	sqb_vio_process_locked(dev, Q_EV);
}

int sqb_vio_vsock_host_ready(sqb_vio_dev *dev)
{
	struct vsock *v;
	struct epoll_event ev[64];
	int n;

	if (!dev || dev->ops->device_id != SQB_VIO_ID_VSOCK)
		return -EINVAL;
	v = dev->priv;
	pthread_mutex_lock(&dev->lock);
	if (v->reset_at_resume)
		reset_after_save(dev);
	do {
		n = epoll_wait(v->ep, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			struct vconn *c = ev[i].data.ptr;
			if (ev[i].data.ptr == &listener_tag) {
				accept_all(v);
				continue;
			}
			if (ev[i].data.ptr == &timer_tag) {
				uint64_t ticks;

				if (read(v->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					sqb_debug("vsock: timerfd read: %s", strerror(errno));
				v->tfd_at = 0;
				continue;
			}
			if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
				c->readable = true;
			if (ev[i].events & (EPOLLHUP | EPOLLRDHUP))
				c->hup = true;
			if (ev[i].events & (EPOLLOUT | EPOLLERR))
				c->writable = true;
		}
	} while (n == 64);
	timers(v);
	for (unsigned int i = 0; i < v->nconns; i++) {
		struct vconn *c = v->conns[i];
		if (c->gone)
			continue;
		if (c->st == C_LINE && c->readable)
			read_line(v, c);
		if (c->writable) {
			c->writable = false;
			flush_txb(v, c);
		}
	}
	sqb_vio_process_locked(dev, Q_RX);
	sweep(v);
	rearm(v);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* ---- device object ----------------------------------------------------- */

static uint32_t vsock_config_len(sqb_vio_dev *dev)
{
	(void)dev;
	return VSOCK_CFG_LEN;
}

static void vsock_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct vsock *v = dev->priv;
	uint8_t cfg[VSOCK_CFG_LEN];

	for (int i = 0; i < 8; i++)
		cfg[i] = (uint8_t)(v->cid >> (8 * i));
	memcpy(dst, cfg + off, len);
}

/* Device record, 16 bytes ([F-111]): the cid is informational, the
 * configured one wins (a clone may get another); local_port_last goes on
 * in the loaded VM (0: a snapshot from before it was recorded).  A save
 * owes the source VM's driver a TRANSPORT_RESET at its resume ([F-115]). */
static void vsock_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *b)
{
	struct vsock *v = dev->priv;
	uint64_t cid = v->cid;
	uint32_t last = v->port_last;
	size_t at = b->off;

	sqb_vio_sv_u64(b, &cid, "vsock guest_cid");
	sqb_vio_sv_u32(b, &last, "vsock local_port_last");
	if (b->load && !b->err && last && (last < PORT_BASE - 1 || last > PORT_LAST_MAX))
		sqb_vio_sv_fail(b, -SQB_ECORRUPT, at + 8,
				"vsock local_port_last %u is outside %u .. %u", last, PORT_BASE - 1,
				PORT_LAST_MAX);
	sqb_vio_sv_reserved(b, 4, "vsock reserved");
	if (b->load && !b->err) {
		v->saved_cid = cid;
		v->saved_port_last = last;
	}
	if (!b->load && !b->err && (dev->status & SQB_VIO_S_DRIVER_OK))
		v->reset_at_resume = true;
}

/* [F-101]: every packet the guest queued on TX goes to the host sockets
 * (or gets its RST) before a save, so no TX buffer waits in the snapshot
 * for a notify the driver already sent to the old process. */
static void vsock_quiesce(sqb_vio_dev *dev)
{
	sqb_vio_process_locked(dev, Q_TX);
}

/* [F-112]: connections do not survive a load; the driver hears it.  Then
 * every queue is run once: a buffer the driver queued before the save,
 * whose notify went to the old process, would otherwise wait for ever (with
 * EVENT_IDX the driver notifies only when avail idx passes avail_event). */
static void vsock_restored(sqb_vio_dev *dev)
{
	struct vsock *v = dev->priv;

	drop_all(v);
	v->reset_pending = true;
	v->reset_at_resume = false; /* this reset is the load's */
	v->port_last = v->saved_port_last ? v->saved_port_last : PORT_BASE - 1;
	if (v->saved_cid != v->cid)
		sqb_vio_config_changed(dev);
	sqb_vio_process_locked(dev, Q_EV);
	sqb_vio_process_locked(dev, Q_TX); /* runs RX after it */
}

/* The driver reset the device (Status 0: unbind, reboot): every connection
 * ends (host clients see EOF), nothing queued for the old rings survives
 * and host ports number from PORT_BASE again, as Firecracker's muxer
 * reset; the listener stays, so a host client may connect again once a
 * driver is back. */
static void vsock_reset(sqb_vio_dev *dev)
{
	struct vsock *v = dev->priv;

	for (unsigned int i = 0; i < v->nconns; i++)
		if (v->conns[i]->fd >= 0)
			sqb_debug("vsock %s: device reset by the driver: closing host connection "
				  "%u <-> guest port %u",
				  v->path, v->conns[i]->hport, v->conns[i]->gport);
	drop_all(v);
	v->reset_pending = false;
	v->ev_ack_wait = false;
	v->accept_retry = false;
	v->port_last = PORT_BASE - 1;
	rearm(v);
}

static void vsock_free(sqb_vio_dev *dev)
{
	struct vsock *v = dev->priv;

	if (!v)
		return;
	drop_all(v);
	free(v->conns);
	if (v->listen_fd >= 0) {
		close(v->listen_fd);
		unlink(v->path);
	}
	if (v->tfd >= 0)
		close(v->tfd);
	if (v->ep >= 0)
		close(v->ep);
	free(v);
}

static const struct sqb_vio_ops vsock_ops = {
    .device_id = SQB_VIO_ID_VSOCK,
    .num_queues = 3,
    .config_read = vsock_config_read,
    .config_len = vsock_config_len,
    .process = vsock_process,
    .state = vsock_state,
    .free = vsock_free,
    .quiesce = vsock_quiesce,
    .restored = vsock_restored,
    .reset = vsock_reset,
};

static int fail(struct sqb_diag *d, int rc, const char *reason)
{
	if (d) {
		d->offset = UINT64_MAX;
		snprintf(d->section, sizeof(d->section), "virtio-vsock");
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
	}
	return rc;
}

static int vsock_listen(struct vsock *v, struct sqb_diag *diag)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
	int rc;

	memcpy(sa.sun_path, v->path, sizeof(sa.sun_path));
	v->ep = epoll_create1(EPOLL_CLOEXEC);
	if (v->ep < 0)
		return fail(diag, -errno, "epoll_create1 failed");
	v->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->listen_fd < 0)
		return fail(diag, -errno, "cannot create the Unix socket");
	if (bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		close(v->listen_fd);
		v->listen_fd = -1;
		return fail(diag, rc,
			    rc == -EADDRINUSE ? "uds_path already exists" : "cannot bind uds_path");
	}
	if (listen(v->listen_fd, 128) || epoll_ctl(v->ep, EPOLL_CTL_ADD, v->listen_fd, &ev))
		return fail(diag, -errno, "cannot listen on uds_path");
	v->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &timer_tag};
	if (v->tfd < 0 || epoll_ctl(v->ep, EPOLL_CTL_ADD, v->tfd, &ev))
		return fail(diag, -errno, "cannot create the connection timer");
	return 0;
}

int sqb_vio_vsock_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		      const struct sqb_vio_vsock_opts *opts, struct sqb_diag *diag)
{
	sqb_vio_dev *dev = NULL;
	struct vsock *v = NULL;
	int rc;

	*out = NULL;
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || !opts->uds_path)
		return fail(diag, -EINVAL, "bad options (version or uds_path)");
	if (opts->guest_cid < 3 || opts->guest_cid > 0xfffffffeull)
		return fail(diag, -EINVAL, "guest_cid must be 3 .. 4294967294");
	/* "<uds_path>_<port>" must fit too: 11 more bytes. */
	if (strlen(opts->uds_path) + 11 >= sizeof(v->path))
		return fail(diag, -ENAMETOOLONG, "uds_path longer than 96 bytes");
	dev = calloc(1, sizeof(*dev));
	v = calloc(1, sizeof(*v));
	if (!dev || !v) {
		rc = -ENOMEM;
		goto err;
	}
	v->cid = v->saved_cid = opts->guest_cid;
	v->listen_fd = v->ep = v->tfd = -1;
	v->port_last = PORT_BASE - 1;
	v->rx_batch = RX_BATCH;
	v->tx_batch = TX_BATCH;
	snprintf(v->path, sizeof(v->path), "%s", opts->uds_path);
	dev->priv = v;
	v->dev = dev;
	rc = vsock_listen(v, diag);
	if (rc)
		goto err;
	rc = sqb_vio_dev_init(dev, &vsock_ops, host, 0, NULL);
	if (rc) {
		fail(diag, rc, "bad host callbacks");
		goto err;
	}
	*out = dev;
	return 0;
err:
	if (v)
		vsock_free(&(sqb_vio_dev){.priv = v});
	free(dev);
	return rc;
}

int sqb_vio_vsock_host_fd(sqb_vio_dev *dev)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_VSOCK)
		return -EINVAL;
	return ((struct vsock *)dev->priv)->ep;
}

void sqb_vio_vsock_set_rx_batch(sqb_vio_dev *dev, unsigned int n)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_VSOCK)
		return;
	pthread_mutex_lock(&dev->lock);
	((struct vsock *)dev->priv)->rx_batch = n < 1 ? 1 : n > RX_BATCH ? RX_BATCH : n;
	pthread_mutex_unlock(&dev->lock);
}

unsigned int sqb_vio_vsock_num_conns(sqb_vio_dev *dev)
{
	struct vsock *v;
	unsigned int n = 0;

	if (!dev || dev->ops->device_id != SQB_VIO_ID_VSOCK)
		return 0;
	v = dev->priv;
	pthread_mutex_lock(&dev->lock);
	for (unsigned int i = 0; i < v->nconns; i++)
		n += !v->conns[i]->gone && v->conns[i]->st != C_DEAD;
	pthread_mutex_unlock(&dev->lock);
	return n;
}

void sqb_vio_vsock_set_tx_batch(sqb_vio_dev *dev, unsigned int n)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_VSOCK)
		return;
	pthread_mutex_lock(&dev->lock);
	((struct vsock *)dev->priv)->tx_batch = n < 1 ? 1 : n > TX_BATCH ? TX_BATCH : n;
	pthread_mutex_unlock(&dev->lock);
}
