/* mmds_http.c: one guest HTTP request in, one HTTP response out, as
 * Firecracker answers on the MMDS address: micro_http's Request::try_from
 * (what it refuses and with which text), dumbo's parse_request_bytes (which
 * status each refusal gets) and mmds/mod.rs's convert_to_response (the V1 /
 * V2 logic, token PUTs, IMDS or JSON bodies).
 *
 * Responses are framed as micro_http's Response::write_all writes them:
 *
 *   HTTP/1.1 200 \r\n                     (code, one space, no reason)
 *   Server: Firecracker API\r\n
 *   Connection: keep-alive\r\n
 *   Allow: GET, PUT\r\n                   (405 only)
 *   X-metadata-token-ttl-seconds: 60\r\n  (token PUT only, the name as sent)
 *   Content-Type: text/plain\r\n
 *   Content-Length: 5\r\n
 *   \r\n
 *   body
 *
 * The version is the request's; requests micro_http refuses are answered
 * HTTP/1.1 with micro_http's default Content-Type, application/json.  The
 * token TTL header is one of micro_http's custom headers, which
 * Headers::write_all puts after Allow and before Content-Type (checked in
 * micro-http's src/response.rs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mmds.h"
#include "mmds_json.h"
#include "mmds_priv.h"

#define PATH_TO_TOKEN "/latest/api/token"

#define MSG_INVALID_REQUEST "Invalid request."
#define MSG_INVALID_URI	    "Invalid URI."
#define MSG_NOT_ALLOWED	    "Not allowed HTTP method."
#define MSG_INVALID_TOKEN   "MMDS token not valid."
#define MSG_NO_TOKEN                                                                               \
	"No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to "  \
	"specify the session token."
#define MSG_NO_TTL                                                                                 \
	"Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "               \
	"`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime."

enum method { M_GET, M_PUT, M_PATCH };
enum media { MT_JSON, MT_PLAIN };

struct span {
	const char *p;
	size_t n;
};

struct hdr {
	struct span key, val;
};

struct request {
	enum method method;
	int minor; /* HTTP/1.minor */
	struct span uri;
	enum media accept;
	uint32_t cl;	    /* Content-Length (the last one counts) */
	struct hdr *custom; /* headers micro_http does not know, in order */
	size_t ncustom;
};

/* ---- output ---- */

struct out {
	char *p;
	size_t n, cap;
	bool nomem;
};

static void put(struct out *o, const void *s, size_t n)
{
	/* nothing to add: o->p may still be NULL (an empty string value or
	 * key first), and memcpy must not get it even for 0 bytes */
	if (o->nomem || n == 0)
		return;
	if (o->n + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *np;

		while (cap < o->n + n)
			cap *= 2;
		np = realloc(o->p, cap);
		if (!np) {
			o->nomem = true;
			return;
		}
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

struct response {
	int minor;
	int status;
	enum media type;
	bool allow; /* "Allow: GET, PUT" */
	struct span xkey;
	unsigned xval; /* the TTL header echoed on a token PUT */
	const char *body;
	size_t body_len;
};

static int emit(const struct response *r, uint8_t **resp, size_t *resp_len)
{
	struct out o = {0};
	char line[64];

	snprintf(line, sizeof(line), "HTTP/1.%d %03d \r\n", r->minor, r->status);
	puts_(&o, line);
	puts_(&o, "Server: Firecracker API\r\nConnection: keep-alive\r\n");
	if (r->allow)
		puts_(&o, "Allow: GET, PUT\r\n");
	if (r->xkey.n) {
		put(&o, r->xkey.p, r->xkey.n);
		snprintf(line, sizeof(line), ": %u\r\n", r->xval);
		puts_(&o, line);
	}
	puts_(&o, r->type == MT_JSON ? "Content-Type: application/json\r\n"
				     : "Content-Type: text/plain\r\n");
	snprintf(line, sizeof(line), "Content-Length: %zu\r\n\r\n", r->body_len);
	puts_(&o, line);
	put(&o, r->body, r->body_len);
	if (o.nomem) {
		free(o.p);
		return SQB_MMDS_E_NOMEM;
	}
	*resp = (uint8_t *)o.p;
	*resp_len = o.n;
	return 0;
}

static int reply(int minor, int status, enum media type, const char *body, uint8_t **resp,
		 size_t *resp_len)
{
	struct response r = {.minor = minor, .status = status, .type = type, .body = body};

	r.body_len = strlen(body);
	return emit(&r, resp, resp_len);
}

/* ---- request parsing: micro_http's Request::try_from ---- */

/* What micro_http refuses: status and text (parse_request_bytes). */
struct perr {
	int status; /* 0: out of memory */
	char *msg;
	size_t len;
};

static int fail(struct perr *e, int status, const char *msg)
{
	e->msg = strdup(msg);
	e->len = strlen(msg);
	e->status = e->msg ? status : 0;
	return -1;
}

/* Rust's str::trim for the ASCII whitespace (a header is ASCII; non-ASCII
 * Unicode spaces are not trimmed here, which micro_http would). */
static bool is_ws(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static struct span trim(struct span s)
{
	while (s.n && is_ws(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_ws(s.p[s.n - 1]))
		s.n--;
	return s;
}

static bool span_is(struct span s, const char *lit)
{
	return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static bool span_ieq(struct span s, const char *lit)
{
	return s.n == strlen(lit) && !strncasecmp(s.p, lit, s.n);
}

static const char *find(const char *p, size_t n, const char *seq, size_t sn)
{
	size_t i;

	for (i = 0; i + sn <= n; i++)
		if (!memcmp(p + i, seq, sn))
			return p + i;
	return NULL;
}

/* Rust's u32::from_str: optional '+', at least one digit, no overflow. */
static bool parse_u32(struct span s, uint32_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (s.n && s.p[0] == '+')
		i = 1;
	if (i == s.n)
		return false;
	for (; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* pre + a + mid + b: the texts quote what the guest sent, whole and byte
 * for byte (a header line can be as long as the request, and hold NULs). */
static int perr_cat(struct perr *e, const char *pre, struct span a, const char *mid, struct span b)
{
	size_t pl = strlen(pre), ml = strlen(mid);

	e->len = pl + a.n + ml + b.n;
	e->msg = malloc(e->len + 1);
	e->status = e->msg ? 400 : 0;
	if (!e->msg)
		return -1;
	memcpy(e->msg, pre, pl);
	memcpy(e->msg + pl, a.p, a.n);
	memcpy(e->msg + pl + a.n, mid, ml);
	memcpy(e->msg + pl + a.n + ml, b.p, b.n);
	e->msg[e->len] = '\0';
	return -1;
}

/* Accept-Encoding: micro_http refuses a body encoding that rules out
 * identity. */
static int check_encoding(struct span v, struct perr *e)
{
	static const struct span key = {"Accept-Encoding", 15};
	bool has_identity = find(v.p, v.n, "identity", 8) != NULL;
	size_t start = 0, i;

	if (!v.n)
		return fail(e, 400, MSG_INVALID_REQUEST);
	for (i = 0; i <= v.n; i++) {
		struct span piece, t;

		if (i < v.n && v.p[i] != ',')
			continue;
		piece.p = v.p + start;
		piece.n = i - start;
		t = trim(piece);
		if (span_is(t, "identity;q=0") || (span_is(t, "*;q=0") && !has_identity))
			return perr_cat(e, "Invalid value. Key:", key, "; Value:", piece);
		start = i + 1;
	}
	return 0;
}

static int parse_header(struct request *rq, struct span line, struct perr *e)
{
	const char *colon = memchr(line.p, ':', line.n);
	struct span name, val, tname;

	if (!colon)
		return perr_cat(e, "Header is incorrectly formatted. Key: ", line, "",
				(struct span){"", 0});
	name.p = line.p;
	name.n = (size_t)(colon - line.p);
	val.p = colon + 1;
	val.n = line.n - name.n - 1;
	tname = trim(name);
	if (span_ieq(tname, "content-length")) {
		if (!parse_u32(trim(val), &rq->cl))
			return perr_cat(e, "Invalid value. Key:", name, "; Value:", val);
		return 0;
	}
	if (span_ieq(tname, "accept")) {
		struct span t = trim(val);

		/* Anything else ("*\/\*", empty) is an unsupported value,
		 * which micro_http skips: the default stays text/plain. */
		if (span_is(t, "application/json"))
			rq->accept = MT_JSON;
		else if (span_is(t, "text/plain"))
			rq->accept = MT_PLAIN;
		return 0;
	}
	if (span_ieq(tname, "accept-encoding"))
		return check_encoding(trim(val), e);
	if (span_ieq(tname, "content-type") || span_ieq(tname, "transfer-encoding") ||
	    span_ieq(tname, "expect") || span_ieq(tname, "server") ||
	    span_ieq(tname, "deprecation") || span_ieq(tname, "allow"))
		return 0; /* known to micro_http, no bearing on MMDS */
	rq->custom[rq->ncustom].key = tname;
	rq->custom[rq->ncustom].val = trim(val);
	rq->ncustom++;
	return 0;
}

static int parse_request(const char *b, size_t len, struct request *rq, struct perr *e)
{
	const char *rl_end = find(b, len, "\r\n", 2), *sp1, *sp2, *hend;
	struct span method, version;
	size_t rl_len, rest, hlen, start, i, ls, lines = 1;

	if (!rl_end)
		return fail(e, 400, MSG_INVALID_REQUEST);
	rl_len = (size_t)(rl_end - b);
	/* "GET" + SP + one URI byte + SP + "HTTP/1.0" */
	if (rl_len < 3 + 1 + 8 + 2)
		return fail(e, 400, MSG_INVALID_REQUEST);
	sp1 = memchr(b, ' ', rl_len);
	if (!sp1)
		return fail(e, 400, MSG_INVALID_REQUEST);
	sp2 = memchr(sp1 + 1, ' ', (size_t)(rl_end - sp1 - 1));
	if (!sp2)
		return fail(e, 400, MSG_INVALID_REQUEST);
	method = (struct span){b, (size_t)(sp1 - b)};
	rq->uri = (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	version = (struct span){sp2 + 1, (size_t)(rl_end - sp2 - 1)};

	if (span_is(method, "GET"))
		rq->method = M_GET;
	else if (span_is(method, "PUT"))
		rq->method = M_PUT;
	else if (span_is(method, "PATCH"))
		rq->method = M_PATCH;
	else
		return fail(e, 501, "Unsupported HTTP method.");
	if (!rq->uri.n)
		return fail(e, 400, "Empty URI not allowed.");
	if (!sqb_json_utf8_ok((const unsigned char *)rq->uri.p, rq->uri.n))
		return fail(e, 400, "Cannot parse URI as UTF-8.");
	if (span_is(version, "HTTP/1.0"))
		rq->minor = 0;
	else if (span_is(version, "HTTP/1.1"))
		rq->minor = 1;
	else
		return fail(e, 501, "Unsupported HTTP version.");

	rq->accept = MT_PLAIN; /* micro_http's default Accept */
	rest = len - rl_len;
	hend = find(rl_end, rest, "\r\n\r\n", 4);
	if (!hend)
		return fail(e, 400, MSG_INVALID_REQUEST);
	if (hend == rl_end)
		return 0; /* no headers; micro_http reads no body then */

	/* Header lines sit between the request line's CRLF and CRLFCRLF. */
	start = rl_len + 2;
	hlen = (size_t)(hend - b) - start;
	if (!sqb_json_utf8_ok((const unsigned char *)b + start, hlen))
		return fail(e, 400, MSG_INVALID_REQUEST);
	for (i = 0; i + 1 < hlen; i++)
		if (b[start + i] == '\r' && b[start + i + 1] == '\n')
			lines++;
	rq->custom = calloc(lines, sizeof(*rq->custom));
	if (!rq->custom) {
		e->status = 0;
		return -1;
	}
	for (i = 0, ls = 0; i <= hlen; i++) {
		struct span line;

		if (i < hlen && !(i + 1 < hlen && b[start + i] == '\r' && b[start + i + 1] == '\n'))
			continue;
		line.p = b + start + ls;
		line.n = i - ls;
		if (parse_header(rq, line, e))
			return -1;
		i++; /* past the LF */
		ls = i + 1;
	}

	/* The body: exactly Content-Length bytes after CRLFCRLF, or none. */
	if (rq->cl && len - (size_t)(hend + 4 - b) != rq->cl)
		return fail(e, 400, MSG_INVALID_REQUEST);
	return 0;
}

/* ---- convert_to_response (mmds/mod.rs) ---- */

/* micro_http's Uri::get_abs_path: the path of "http://host/path" or of a
 * "/path"; "" otherwise.  Query strings are not split off (Firecracker does
 * not either: "/a?b" is looked up as the key "a?b"). */
static struct span abs_path(struct span uri)
{
	static const char scheme[] = "http://";
	const size_t sl = sizeof(scheme) - 1;

	if (uri.n >= sl && !memcmp(uri.p, scheme, sl)) {
		const char *slash = memchr(uri.p + sl, '/', uri.n - sl);

		if (!slash)
			return (struct span){"", 0};
		return (struct span){slash, uri.n - (size_t)(slash - uri.p)};
	}
	if (uri.n && uri.p[0] == '/')
		return uri;
	return (struct span){"", 0};
}

/* sanitize_uri: every run of '/' becomes one. */
static char *sanitize(struct span p, size_t *n)
{
	char *s = malloc(p.n + 1);
	size_t i, w = 0;

	if (!s)
		return NULL;
	for (i = 0; i < p.n; i++) {
		if (p.p[i] == '/' && w && s[w - 1] == '/')
			continue;
		s[w++] = p.p[i];
	}
	s[w] = '\0';
	*n = w;
	return s;
}

/* get_header_value_pair: the custom header named one of names, any case.
 * Firecracker looks through a HashMap (one entry per exact name, the last
 * line winning); squib takes the last matching line, which is the same
 * whenever the guest sends one such header. */
static const struct hdr *header(const struct request *rq, const char *const *names)
{
	size_t i, k;

	for (i = rq->ncustom; i-- > 0;)
		for (k = 0; names[k]; k++)
			if (span_ieq(rq->custom[i].key, names[k]))
				return &rq->custom[i];
	return NULL;
}

static const char *const token_names[] = {"x-metadata-token", "x-aws-ec2-metadata-token", NULL};
static const char *const ttl_names[] = {"x-metadata-token-ttl-seconds",
					"x-aws-ec2-metadata-token-ttl-seconds", NULL};
static const char *const xff_names[] = {"x-forwarded-for", NULL};

/* format_imds: an object's keys one a line ("key/" for objects), a string
 * as is; anything else is unsupported (NULL). */
static char *format_imds(const struct sqb_jv *v, size_t *n)
{
	struct out o = {0};
	size_t i;

	if (v->type == SQB_J_STR) {
		put(&o, v->s, v->len);
	} else if (v->type == SQB_J_OBJ) {
		for (i = 0; i < v->n; i++) {
			if (i)
				put(&o, "\n", 1);
			put(&o, v->mems[i].key, v->mems[i].klen);
			if (v->mems[i].val->type == SQB_J_OBJ)
				put(&o, "/", 1);
		}
	} else {
		return NULL;
	}
	put(&o, "", 1); /* a NUL, and a buffer even for "" */
	if (o.nomem) {
		free(o.p);
		return (char *)-1;
	}
	*n = o.n - 1;
	return o.p;
}

/* "Resource not found: <path>." with the path as sent (NULs included). */
static int not_found(const struct request *rq, struct span path, uint8_t **resp, size_t *resp_len)
{
	struct response r = {.minor = rq->minor, .status = 404, .type = MT_PLAIN};
	struct out o = {0};
	int ret;

	puts_(&o, "Resource not found: ");
	put(&o, path.p, path.n);
	put(&o, ".", 1);
	if (o.nomem) {
		free(o.p);
		return SQB_MMDS_E_NOMEM;
	}
	r.body = o.p;
	r.body_len = o.n;
	ret = emit(&r, resp, resp_len);
	free(o.p);
	return ret;
}

static int get_request(sqb_mmds *m, const struct request *rq, struct span path, uint8_t **resp,
		       size_t *resp_len)
{
	const struct sqb_jv *v;
	struct response r = {.minor = rq->minor, .status = 200, .type = rq->accept};
	char *jp, *body;
	size_t jn, bn = 0;
	int ret;

	jp = sanitize(path, &jn);
	if (!jp)
		return SQB_MMDS_E_NOMEM;
	/* get_value: Value::pointer cannot take a trailing '/'. */
	v = sqb_json_pointer(m->doc, jp, jn && jp[jn - 1] == '/' ? jn - 1 : jn);
	free(jp);
	if (!v) {
		return not_found(rq, path, resp, resp_len);
	}
	/* EC2's IMDS ignores Accept; the Content-Type still echoes it. */
	if (m->imds_compat || rq->accept == MT_PLAIN) {
		body = format_imds(v, &bn);
		if (body == (char *)-1)
			return SQB_MMDS_E_NOMEM;
		if (!body)
			return reply(rq->minor, 501, MT_PLAIN, SQB_MMDS_MSG_UNSUPPORTED, resp,
				     resp_len);
	} else if (sqb_json_compact(v, &body, &bn)) {
		return SQB_MMDS_E_NOMEM;
	}
	r.body = body;
	r.body_len = bn;
	ret = emit(&r, resp, resp_len);
	free(body);
	return ret;
}

static int put_request(sqb_mmds *m, const struct request *rq, struct span path, uint64_t now_ms,
		       uint8_t **resp, size_t *resp_len)
{
	const struct hdr *h;
	char msg[256], *jp, tok[SQB_MMDS_TOKEN_LEN + 1];
	size_t jn;
	bool is_token;
	uint32_t ttl;
	struct response r = {.minor = rq->minor, .status = 200, .type = MT_PLAIN};

	h = header(rq, xff_names);
	if (h) {
		snprintf(msg, sizeof(msg),
			 "Invalid header. Reason: Unsupported header name. Key: %.*s",
			 (int)h->key.n, h->key.p);
		return reply(rq->minor, 400, MT_PLAIN, msg, resp, resp_len);
	}
	jp = sanitize(path, &jn);
	if (!jp)
		return SQB_MMDS_E_NOMEM;
	is_token = !strcmp(jp, PATH_TO_TOKEN) && jn == strlen(PATH_TO_TOKEN);
	free(jp);
	if (!is_token) {
		return not_found(rq, path, resp, resp_len);
	}
	h = header(rq, ttl_names);
	if (!h)
		return reply(rq->minor, 400, MT_PLAIN, MSG_NO_TTL, resp, resp_len);
	if (!parse_u32(h->val, &ttl)) {
		size_t n = 64 + h->key.n + h->val.n;
		char *bad = malloc(n);
		int ret;

		if (!bad)
			return SQB_MMDS_E_NOMEM;
		snprintf(bad, n, "Invalid header. Reason: Invalid value. Key:%.*s; Value:%.*s",
			 (int)h->key.n, h->key.p, (int)h->val.n, h->val.p);
		ret = reply(rq->minor, 400, MT_PLAIN, bad, resp, resp_len);
		free(bad);
		return ret;
	}
	if (ttl < SQB_MMDS_TTL_MIN || ttl > SQB_MMDS_TTL_MAX) {
		snprintf(msg, sizeof(msg),
			 "Invalid time to live value provided for token: %u. Please provide a "
			 "value between %u and %u.",
			 ttl, SQB_MMDS_TTL_MIN, SQB_MMDS_TTL_MAX);
		return reply(rq->minor, 400, MT_PLAIN, msg, resp, resp_len);
	}
	if (sqb_mmds_token_new_locked(m, ttl, now_ms, tok))
		return reply(rq->minor, 400, MT_PLAIN, "Failed to generate a key", resp, resp_len);
	r.xkey = h->key;
	r.xval = ttl;
	r.body = tok;
	r.body_len = SQB_MMDS_TOKEN_LEN;
	return emit(&r, resp, resp_len);
}

static int convert(sqb_mmds *m, const struct request *rq, uint64_t now_ms, uint8_t **resp,
		   size_t *resp_len)
{
	struct span path = abs_path(rq->uri);
	const struct hdr *tok;
	struct response r = {.minor = rq->minor, .status = 405, .type = MT_PLAIN, .allow = true};

	if (!path.n)
		return reply(rq->minor, 400, MT_PLAIN, MSG_INVALID_URI, resp, resp_len);
	switch (rq->method) {
	case M_GET:
		tok = header(rq, token_names);
		if (!tok) {
			__atomic_fetch_add(&m->metrics.rx_no_token, 1, __ATOMIC_RELAXED);
			if (m->version == SQB_MMDS_V2)
				return reply(rq->minor, 401, MT_PLAIN, MSG_NO_TOKEN, resp,
					     resp_len);
		} else if (!sqb_mmds_token_valid_locked(m, tok->val.p, tok->val.n, now_ms)) {
			__atomic_fetch_add(&m->metrics.rx_invalid_token, 1, __ATOMIC_RELAXED);
			if (m->version == SQB_MMDS_V2)
				return reply(rq->minor, 401, MT_PLAIN, MSG_INVALID_TOKEN, resp,
					     resp_len);
		}
		return get_request(m, rq, path, resp, resp_len);
	case M_PUT:
		return put_request(m, rq, path, now_ms, resp, resp_len);
	default:
		r.body = MSG_NOT_ALLOWED;
		r.body_len = strlen(MSG_NOT_ALLOWED);
		return emit(&r, resp, resp_len);
	}
}

int sqb_mmds_http_respond(sqb_mmds *m, const uint8_t *req, size_t len, uint64_t now_ms,
			  uint8_t **resp, size_t *resp_len)
{
	struct request rq = {0};
	struct perr e = {0};
	/* Refusals are answered as dumbo's build_response makes them:
	 * Version::default() and micro_http's default Content-Type. */
	struct response r = {.minor = 1, .type = MT_JSON};
	int ret;

	*resp = NULL;
	*resp_len = 0;
	if (parse_request((const char *)req, len, &rq, &e)) {
		free(rq.custom);
		if (!e.status)
			return SQB_MMDS_E_NOMEM;
		r.status = e.status;
		r.body = e.msg;
		r.body_len = e.len;
		ret = emit(&r, resp, resp_len);
		free(e.msg);
		return ret;
	}
	pthread_mutex_lock(&m->lock);
	ret = convert(m, &rq, now_ms, resp, resp_len);
	pthread_mutex_unlock(&m->lock);
	free(rq.custom);
	return ret;
}
