/* The API server loop: HTTP/1.1 over a Unix socket, many clients served in
 * turn from one poll loop (no client can wedge another), plus the VM's stop
 * event, serial input from stdin and termination signals. */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api_server.h"
#include "ctl.h"
#include "http.h"
#include "json_fields.h"
#include "stack_trim.h"

#define SQB_API_MAX_CONNS 32
#define SQB_API_IDLE_MS	  60000
/* A request must arrive whole within this time of its first byte, however
 * often bytes trickle in (issue 17: one header byte every 10 s reset the
 * idle timer and 32 such clients held the API). */
#define SQB_API_REQUEST_MS    10000
#define SQB_METRICS_PERIOD_MS 60000
#define SQB_API_OUT_CAP	      (SQB_CTL_RESP_MAX + 512)

struct sqb_conn {
	int fd;
	char *in; /* in_cap bytes while a request is being received or
		   * answered, freed once none is pending */
	size_t in_len;
	char *out; /* SQB_API_OUT_CAP bytes (more for one large reply, GET
		    * /mmds) while a reply is queued, freed once it is sent: an
		    * idle clone of a fleet whose client keeps the connection
		    * open holds no buffer for it (docs/fleet.md) */
	size_t out_len, out_off, out_cap;
	int closing;	   /* close once out is drained */
	int sent_continue; /* 100 Continue already sent for the pending request */
	uint64_t last_ms;
	uint64_t req_start_ms; /* first byte of the request being received */
};

struct sqb_api {
	int listen_fd;
	char *path;
	size_t max_payload;
	size_t in_cap; /* one full request: headers + the largest body allowed */
	struct sqb_conn conns[SQB_API_MAX_CONNS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sqb_api_open(struct sqb_api **out, const char *path, size_t max_payload, char *err,
		 size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sqb_api *s;

	*out = NULL;
	if (!*path) { /* bind() would make it an abstract socket nobody can name */
		snprintf(err, errlen, "API socket path is empty");
		return -1;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "API socket path is too long: %s", path);
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	for (int i = 0; i < SQB_API_MAX_CONNS; i++)
		s->conns[i].fd = -1;
	s->max_payload = max_payload;
	s->in_cap = SQB_HTTP_MAX_HEADER + max_payload + 1024;
	strcpy(sa.sun_path, path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->listen_fd, 64) < 0) {
		/* Firecracker's text (test_api_server.py), then the reason. */
		snprintf(err, errlen,
			 "Failed to open the API socket at: %s. Check that it is not already used. "
			 "(%s)",
			 path, sqb_os_strerror(errno));
		if (s->listen_fd >= 0)
			close(s->listen_fd);
		free(s);
		return -1;
	}
	s->path = strdup(path);
	*out = s;
	return 0;
}

static void conn_close(struct sqb_conn *cn)
{
	if (cn->fd >= 0)
		close(cn->fd);
	free(cn->in);
	free(cn->out);
	cn->in = cn->out = NULL;
	cn->out_cap = 0;
	cn->fd = -1;
	cn->in_len = cn->out_len = cn->out_off = 0;
}

void sqb_api_close(struct sqb_api *s)
{
	if (!s)
		return;
	for (int i = 0; i < SQB_API_MAX_CONNS; i++)
		conn_close(&s->conns[i]);
	close(s->listen_fd);
	if (s->path)
		unlink(s->path);
	free(s->path);
	free(s);
}

static void conn_flush(struct sqb_conn *cn)
{
	while (cn->out_off < cn->out_len) {
		ssize_t n = send(cn->fd, cn->out + cn->out_off, cn->out_len - cn->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(cn);
			return;
		}
		cn->out_off += (size_t)n;
	}
	cn->out_len = cn->out_off = 0;
	free(cn->out);
	cn->out = NULL;
	cn->out_cap = 0;
	if (cn->closing)
		conn_close(cn);
}

static void conn_queue(struct sqb_conn *cn, const char *data, size_t len)
{
	if (len > cn->out_cap - cn->out_len) {
		size_t cap =
		    cn->out_len + len < SQB_API_OUT_CAP ? SQB_API_OUT_CAP : cn->out_len + len;
		char *p = realloc(cn->out, cap);

		if (!p) {
			conn_close(cn);
			return;
		}
		cn->out = p;
		cn->out_cap = cap;
	}
	memcpy(cn->out + cn->out_len, data, len);
	cn->out_len += len;
}

/* The response and its header are built in heap buffers made for the
 * request and freed after it (not static ones: the pages a request touched
 * would stay with every idle clone). */
struct reply_bufs {
	struct sqb_ctl_resp resp;
	char hdr[SQB_API_OUT_CAP];
};

static void conn_process(struct sqb_api *s, struct sqb_ctl *c, struct sqb_conn *cn)
{
	struct reply_bufs *rb = NULL;
	char err[256];

	while (cn->fd >= 0 && !cn->closing && cn->out_len == 0 && cn->in_len) {
		struct sqb_http_req req;
		int rc = sqb_http_parse(cn->in, cn->in_len, s->max_payload, &req, err, sizeof(err));
		size_t n;

		if (rc == SQB_HTTP_INCOMPLETE) {
			if (req.expect_continue && !cn->sent_continue) {
				conn_queue(cn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
				cn->sent_continue = 1;
			}
			break;
		}
		if (!rb && !(rb = malloc(sizeof(*rb)))) {
			conn_close(cn);
			break;
		}
		if (rc == SQB_HTTP_BAD) {
			/* micro_http's answer to a request it cannot frame, byte for
			 * byte (its body is not strict JSON: a raw newline).  squib then
			 * closes: where the next request would start is unknown. */
			char body[600];
			c->api_errors++;
			for (char *p = err; *p; p++)
				if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
					*p = '\'';
			snprintf(body, sizeof(body),
				 "{ \"error\": \"%s\nAll previous unanswered requests will be "
				 "dropped.\" }",
				 err);
			n = sqb_http_format(rb->hdr, sizeof(rb->hdr), 400, body, 0);
			conn_queue(cn, rb->hdr, n);
			cn->closing = 1;
			sqb_ctl_log(SQB_CTL_INFO, "API: bad HTTP request: %s", err);
			break;
		}
		uint64_t t0 = sqb_ctl_now_us();

		sqb_ctl_handle(c, req.method, req.path, req.body, req.body_len, &rb->resp);
		sqb_json_positions_free(); /* the request's parse is done with */
		if (rb->resp.heap) { /* a large body: the header here, the body from the heap */
			size_t blen = strlen(rb->resp.heap);

			n = sqb_http_format_head(
			    rb->hdr, sizeof(rb->hdr), rb->resp.status, 1, blen, req.close,
			    rb->resp.deprecation ? "Deprecation: true\r\n" : NULL);
			conn_queue(cn, rb->hdr, n);
			if (cn->fd >= 0)
				conn_queue(cn, rb->resp.heap, blen);
			free(rb->resp.heap);
			rb->resp.heap = NULL;
		} else {
			n = sqb_http_format_ex(
			    rb->hdr, sizeof(rb->hdr), rb->resp.status,
			    rb->resp.status == 204 ? NULL : rb->resp.body, req.close,
			    rb->resp.deprecation ? "Deprecation: true\r\n" : NULL);
			conn_queue(cn, rb->hdr, n);
		}
		if (req.close)
			cn->closing = 1;
		memmove(cn->in, cn->in + req.total_len, cn->in_len - req.total_len);
		cn->in_len -= req.total_len;
		cn->sent_continue = 0;
		cn->req_start_ms = now_ms(); /* a pipelined request starts now */
		conn_flush(cn);		     /* drained: the loop goes on with pipelined requests */
		/* api_server/mod.rs, after each answer; Firecracker's test
		 * framework (microvm.py _validate_api_response_times) pairs it
		 * with every "The API server received a ..." line */
		sqb_ctl_log(SQB_CTL_DEBUG, "Total previous API call duration: %llu us.",
			    (unsigned long long)(sqb_ctl_now_us() - t0));
	}
	free(rb);
	if (cn->fd >= 0 && cn->out_len)
		conn_flush(cn);
	if (cn->fd >= 0 && !cn->in_len) { /* nothing pending: no buffer kept */
		free(cn->in);
		cn->in = NULL;
	}
}

static void conn_read(struct sqb_api *s, struct sqb_ctl *c, struct sqb_conn *cn)
{
	ssize_t n;

	if (!cn->in) {
		/* the client's close after an answer is a read of 0 bytes: seen
		 * without the buffer, whose allocation would split the heap's
		 * free space after the trim and dirty a page of it in every idle
		 * clone of a fleet (docs/fleet.md "Load leftovers") */
		char b;

		n = recv(cn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (n <= 0 || !(cn->in = malloc(s->in_cap))) {
			conn_close(cn);
			return;
		}
	}
	if (cn->in_len == s->in_cap) { /* cannot happen with the parser's limits */
		conn_close(cn);
		return;
	}
	n = recv(cn->fd, cn->in + cn->in_len, s->in_cap - cn->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) { /* peer went away (possibly mid-request) */
		conn_close(cn);
		return;
	}
	if (!cn->in_len)
		cn->req_start_ms = now_ms();
	cn->in_len += (size_t)n;
	cn->last_ms = now_ms();
	conn_process(s, c, cn);
}

/* With every slot taken, a new client still gets in: the connection that
 * has waited longest without a complete request (idle since its last
 * answer, or trickling a request in) makes room.  A request being answered
 * is complete, so it is never the one dropped. */
static int api_evict(struct sqb_api *s)
{
	int victim = -1;
	uint64_t oldest = UINT64_MAX;

	for (int i = 0; i < SQB_API_MAX_CONNS; i++) {
		const struct sqb_conn *cn = &s->conns[i];
		uint64_t since = cn->in_len ? cn->req_start_ms : cn->last_ms;
		if (cn->fd >= 0 && !cn->out_len && since < oldest) {
			oldest = since;
			victim = i;
		}
	}
	if (victim >= 0) {
		sqb_ctl_log(SQB_CTL_WARN,
			    "API: all %d connections busy; closing the one idle or incomplete "
			    "for longest (%llu ms) to let a new client in",
			    SQB_API_MAX_CONNS, (unsigned long long)(now_ms() - oldest));
		conn_close(&s->conns[victim]);
	}
	return victim;
}

static void api_accept(struct sqb_api *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int slot = -1;

	if (fd < 0)
		return;
	for (int i = 0; i < SQB_API_MAX_CONNS && slot < 0; i++)
		if (s->conns[i].fd < 0)
			slot = i;
	if (slot < 0)
		slot = api_evict(s);
	if (slot < 0) {
		sqb_ctl_log(SQB_CTL_WARN, "API: too many connections (%d); refusing one",
			    SQB_API_MAX_CONNS);
		close(fd);
		return;
	}
	s->conns[slot].fd = fd;
	s->conns[slot].closing = 0;
	s->conns[slot].sent_continue = 0;
	s->conns[slot].last_ms = s->conns[slot].req_start_ms = now_ms();
}

/* Serial input: stdin bytes the guest's UART cannot take yet (its receive
 * FIFO holds 64) wait here, and stdin is not read again until they are in;
 * nothing typed is dropped (a 150-byte console line used to lose its
 * newline). */
struct serial_in {
	char buf[4096];
	size_t off, len;
};

static void serial_push(struct sqb_ctl *c, struct serial_in *in)
{
	while (in->off < in->len) {
		int n = sqb_vm_serial_input(c->vm, in->buf + in->off, in->len - in->off);

		if (n <= 0)
			break;
		in->off += (size_t)n;
	}
	if (in->off == in->len)
		in->off = in->len = 0;
}

static void serial_from_stdin(struct sqb_ctl *c, struct serial_in *in, int *stdin_open)
{
	ssize_t n = read(STDIN_FILENO, in->buf, sizeof(in->buf));

	if (n > 0) {
		in->off = 0;
		in->len = (size_t)n;
		serial_push(c, in);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		*stdin_open = 0;
	}
}

static int replies_pending(const struct sqb_api *s)
{
	for (int i = 0; s && i < SQB_API_MAX_CONNS; i++)
		if (s->conns[i].fd >= 0 && s->conns[i].out_len)
			return 1;
	return 0;
}

/* How long the loop may sleep.  Nothing periodic is left when no client is
 * connected, no serial input waits and no metrics file is set: an idle VM
 * of a fleet then never wakes its API thread. */
static int poll_timeout(const struct sqb_ctl *c, const struct sqb_api *s,
			const struct serial_in *in, uint64_t t)
{
	int ms = -1;

	if (in->len)
		return 5; /* pending serial input: the UART has no "drained" event */
	for (int i = 0; s && i < SQB_API_MAX_CONNS; i++)
		if (s->conns[i].fd >= 0)
			ms = 1000; /* the idle and request deadlines */
	if (c->metrics_set && c->vm) {
		uint64_t due = c->metrics_last_ms + SQB_METRICS_PERIOD_MS;
		int left = due > t ? (int)(due - t) : 0;
		if (ms < 0 || left < ms)
			ms = left;
	}
	return ms;
}

/* The main thread's stack mapping as it was when the loop started, from
 * /proc/self/maps; {0, 0} when that cannot be read (no /proc in a jail). */
static struct sqb_stack_span stack_span(void)
{
	struct sqb_stack_span sp = {0, 0};
	uintptr_t here = (uintptr_t)&sp;
	char line[256];
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && here >= lo && here < hi) {
			sp.lo = lo;
			sp.hi = hi;
			break;
		}
	}
	if (f)
		fclose(f);
	return sp;
}

/* The main thread's stack pages below sqb_api_run's frame are given back
 * (sqb_stack_trim) once a load's reply is out: a load runs deep (parsing,
 * device set-up, the vCPU state requests) and each idle clone of a fleet
 * kept about 20 KiB of dead frames.  Only the part of the stack mapping that
 * existed when the loop started is released (a stack mapping only grows
 * down), so no other mapping is touched. */
int sqb_api_run(struct sqb_ctl *c, struct sqb_api *s, int sig_fd, int use_stdin)
{
	struct pollfd pf[4 + SQB_API_MAX_CONNS];
	struct serial_in sin = {.off = 0, .len = 0};
	struct sqb_stack_span span = stack_span();
	int stdin_open = use_stdin;

	int vm_seen = 0;

	c->metrics_last_ms = now_ms();
	while (!c->exit_requested) {
		int np = 0, idx_sig, idx_ev = -1, idx_in = -1, idx_l = -1, ci[SQB_API_MAX_CONNS];
		uint64_t t = now_ms();

		/* Firecracker's PeriodicMetrics starts once the microVM is built
		 * (booted or loaded): one line at once ("to check the process
		 * startup time"), then one every 60 s; none before */
		if (c->vm && !vm_seen) {
			vm_seen = 1;
			if (c->metrics_set)
				sqb_ctl_metrics_flush(c);
			c->metrics_last_ms = t;
		}

		pf[idx_sig = np++] = (struct pollfd){sig_fd, POLLIN, 0};
		if (c->vm)
			pf[idx_ev = np++] = (struct pollfd){sqb_vm_event_fd(c->vm), POLLIN, 0};
		if (c->vm && sin.len)
			serial_push(c, &sin); /* the guest read some: hand over more */
		if (c->vm && stdin_open && !sin.len)
			pf[idx_in = np++] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
		if (s)
			pf[idx_l = np++] = (struct pollfd){s->listen_fd, POLLIN, 0};
		for (int i = 0; s && i < SQB_API_MAX_CONNS; i++) {
			struct sqb_conn *cn = &s->conns[i];
			ci[i] = -1;
			if (cn->fd < 0)
				continue;
			if (t - cn->last_ms > SQB_API_IDLE_MS) { /* idle or stalled client */
				conn_close(cn);
				continue;
			}
			if (cn->in_len && !cn->out_len &&
			    t - cn->req_start_ms > SQB_API_REQUEST_MS) {
				sqb_ctl_log(SQB_CTL_WARN,
					    "API: closing a client whose request did not arrive "
					    "within %d ms",
					    SQB_API_REQUEST_MS);
				conn_close(cn);
				continue;
			}
			ci[i] = np;
			pf[np++] = (struct pollfd){cn->fd, cn->out_len ? POLLOUT : POLLIN, 0};
		}
		if (c->trim_heap && !replies_pending(s)) {
			/* a load leaves freed parsing and set-up memory scattered
			 * over the heap; every idle clone of a fleet pays for the
			 * pages it sits on (docs/fleet.md): return them once the
			 * reply is out, off the request's latency */
			malloc_trim(0);
			sqb_stack_trim(&span);
			c->trim_heap = 0;
		}
		if (poll(pf, (nfds_t)np, poll_timeout(c, s, &sin, t)) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pf[idx_sig].revents) {
			sqb_ctl_log(SQB_CTL_INFO, "terminating on signal");
			c->exit_requested = 1;
			break;
		}
		if (idx_ev >= 0 && pf[idx_ev].revents) {
			sqb_ctl_vm_stopped(c);
			break;
		}
		if (idx_in >= 0 && pf[idx_in].revents)
			serial_from_stdin(c, &sin, &stdin_open);
		for (int i = 0; s && i < SQB_API_MAX_CONNS; i++) {
			struct sqb_conn *cn = &s->conns[i];
			if (ci[i] < 0 || cn->fd < 0 || !pf[ci[i]].revents)
				continue;
			if (cn->out_len) {
				conn_flush(cn);
				if (cn->fd >= 0 && !cn->out_len)
					conn_process(s, c, cn);
			} else {
				conn_read(s, c, cn);
			}
		}
		if (idx_l >= 0 && (pf[idx_l].revents & POLLIN))
			api_accept(s);
		if (c->metrics_set && c->vm &&
		    now_ms() - c->metrics_last_ms >= SQB_METRICS_PERIOD_MS) {
			sqb_ctl_metrics_flush(c); /* periodic, as Firecracker does */
			c->metrics_last_ms = now_ms();
		}
	}
	return c->exit_code;
}
