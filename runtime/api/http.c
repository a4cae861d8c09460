/* HTTP/1.1 framing for the API socket: request line (origin- and
 * absolute-form targets, normalised as Firecracker's router sees them),
 * headers, Content-Length bodies (no chunked encoding), 100-continue,
 * keep-alive — and strict rejection of anything else, since a malformed
 * request must never wedge or crash the VMM. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

static int bad(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return SQB_HTTP_BAD;
}

static const char *find_crlfcrlf(const char *buf, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' &&
		    buf[i + 3] == '\n')
			return buf + i;
	return NULL;
}

/* Firecracker's router ignores leading and trailing slashes ("//vm/config/"
 * is /vm/config); squib also folds doubled slashes inside the path. */
static void normalize_path(char *dst, const char *src, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++)
		if (src[i] != '/' || j == 0 || dst[j - 1] != '/')
			dst[j++] = src[i];
	if (j > 1 && dst[j - 1] == '/')
		j--;
	dst[j] = 0;
}

static int parse_request_line(const char *l, size_t n, struct sqb_http_req *req, char *err,
			      size_t errlen)
{
	const char *sp1 = memchr(l, ' ', n), *sp2, *target;
	size_t mlen, plen;

	if (!sp1)
		return bad(err, errlen, "Invalid HTTP request line: missing request target");
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l));
	if (!sp2)
		return bad(err, errlen, "Invalid HTTP request line: missing HTTP version");
	mlen = (size_t)(sp1 - l);
	plen = (size_t)(sp2 - sp1 - 1);
	if (mlen == 0 || mlen >= sizeof(req->method))
		return bad(err, errlen, "Invalid HTTP method");
	for (size_t i = 0; i < mlen; i++)
		if (!isupper((unsigned char)l[i]))
			return bad(err, errlen, "Invalid HTTP method");
	for (size_t i = 0; i < plen; i++)
		if ((unsigned char)sp1[1 + i] <= 0x20 || (unsigned char)sp1[1 + i] >= 0x7f)
			return bad(err, errlen, "Invalid character in HTTP request target");
	target = sp1 + 1;
	if (plen > 7 && !strncasecmp(target, "http://", 7)) {
		/* absolute-form (RFC 9112 3.2.2): drop scheme and authority, as
		 * Firecracker's micro_http does; no path left means "/". */
		const char *slash = memchr(target + 7, '/', plen - 7);
		plen = slash ? plen - (size_t)(slash - target) : 0;
		target = slash ? slash : "/";
		if (!plen)
			plen = 1;
	}
	if (plen == 0 || target[0] != '/')
		return bad(err, errlen, "Invalid HTTP request target (must start with '/')");
	if (plen >= sizeof(req->path))
		return bad(err, errlen, "HTTP request target is longer than 255 bytes");
	n -= (size_t)(sp2 + 1 - l);
	if (n == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8))
		req->close = 0;
	else if (n == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8))
		req->close = 1;
	else
		return bad(err, errlen, "Unsupported HTTP version (expected HTTP/1.1)");
	memcpy(req->method, l, mlen);
	req->method[mlen] = 0;
	normalize_path(req->path, target, plen);
	return 0;
}

static int parse_header(const char *l, size_t n, struct sqb_http_req *req, long long *clen,
			int *expect, size_t max_payload, char *err, size_t errlen)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t nlen, vlen;
	char val[64];

	if (!colon || colon == l)
		return bad(err, errlen, "Invalid HTTP header line");
	nlen = (size_t)(colon - l);
	for (size_t i = 0; i < nlen; i++)
		if (!isgraph((unsigned char)l[i]))
			return bad(err, errlen, "Invalid HTTP header name");
	v = colon + 1;
	vlen = n - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (nlen == 14 && !strncasecmp(l, "Content-Length", 14)) {
		if (*clen >= 0)
			return bad(err, errlen, "Duplicate Content-Length header");
		if (vlen == 0 || vlen > 18)
			return bad(err, errlen, "Invalid Content-Length header");
		*clen = 0;
		for (size_t i = 0; i < vlen; i++) {
			if (!isdigit((unsigned char)v[i]))
				return bad(err, errlen, "Invalid Content-Length header");
			*clen = *clen * 10 + (v[i] - '0');
		}
		if ((unsigned long long)*clen > max_payload) {
			snprintf(err, errlen,
				 "Request payload with size %lld is larger than the limit of %zu "
				 "allowed by server.",
				 *clen, max_payload);
			return SQB_HTTP_BAD;
		}
	} else if (nlen == 17 && !strncasecmp(l, "Transfer-Encoding", 17)) {
		return bad(err, errlen, "Transfer-Encoding is not supported; send Content-Length");
	} else if (nlen == 10 && !strncasecmp(l, "Connection", 10)) {
		snprintf(val, sizeof(val), "%.*s", (int)(vlen < 63 ? vlen : 63), v);
		if (!strcasecmp(val, "close"))
			req->close = 1;
		else if (!strcasecmp(val, "keep-alive"))
			req->close = 0;
	} else if (nlen == 6 && !strncasecmp(l, "Expect", 6)) {
		if (vlen == 12 && !strncasecmp(v, "100-continue", 12))
			*expect = 1;
	}
	return 0;
}

int sqb_http_parse(const char *buf, size_t len, size_t max_payload, struct sqb_http_req *req,
		   char *err, size_t errlen)
{
	const char *end, *line, *eol;
	size_t hlen;
	long long clen = -1;
	int expect = 0, rc;

	memset(req, 0, sizeof(*req));
	end = find_crlfcrlf(buf, len < SQB_HTTP_MAX_HEADER ? len : SQB_HTTP_MAX_HEADER);
	if (!end) {
		if (len >= SQB_HTTP_MAX_HEADER)
			return bad(err, errlen, "HTTP request headers exceed 8192 bytes");
		if (memchr(buf, 0, len))
			return bad(err, errlen, "NUL byte in HTTP request headers");
		return SQB_HTTP_INCOMPLETE;
	}
	hlen = (size_t)(end - buf) + 4;
	if (memchr(buf, 0, hlen))
		return bad(err, errlen, "NUL byte in HTTP request headers");
	/* Lengths only from here on: the receive buffer is not NUL-terminated,
	 * so no C-string function may look at it (issue 17: strstr read past
	 * the end).  The first CRLF is at or before `end`. */
	line = buf;
	eol = line;
	while (!(eol[0] == '\r' && eol[1] == '\n'))
		eol++;
	rc = parse_request_line(line, (size_t)(eol - line), req, err, errlen);
	if (rc < 0)
		return rc;
	for (line = eol + 2; line < end; line = eol + 2) {
		eol = line;
		while (eol < end && !(eol[0] == '\r' && eol[1] == '\n'))
			eol++;
		rc = parse_header(line, (size_t)(eol - line), req, &clen, &expect, max_payload, err,
				  errlen);
		if (rc < 0)
			return rc;
	}
	if (clen < 0)
		clen = 0;
	else
		req->has_body = 1;
	if (len - hlen < (size_t)clen) {
		req->expect_continue = expect;
		return SQB_HTTP_INCOMPLETE;
	}
	req->body = buf + hlen;
	req->body_len = (size_t)clen;
	req->total_len = hlen + (size_t)clen;
	return SQB_HTTP_DONE;
}

size_t sqb_http_format_head(char *out, size_t cap, int status, int has_body, size_t body_len,
			    int close, const char *extra)
{
	int n;

	/* Firecracker's micro_http bytes: "HTTP/1.1 204 \r\n" (no reason phrase),
	 * "Server: Firecracker API" (what SDKs look for), Connection, then any
	 * Deprecation line, then Content-Type/Length unless 204. */
	if (!extra)
		extra = "";
	if (has_body)
		n = snprintf(out, cap,
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: %s\r\n%s"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     status, close ? "close" : "keep-alive", extra, body_len);
	else
		n = snprintf(out, cap,
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: %s\r\n%s\r\n",
			     status, close ? "close" : "keep-alive", extra);
	return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

size_t sqb_http_format_ex(char *out, size_t cap, int status, const char *body, int close,
			  const char *extra)
{
	size_t blen = body ? strlen(body) : 0;
	size_t n = sqb_http_format_head(out, cap, status, body != NULL, blen, close, extra);

	if (!n || blen >= cap - n)
		return 0;
	if (blen)
		memcpy(out + n, body, blen);
	out[n + blen] = 0;
	return n + blen;
}

size_t sqb_http_format(char *out, size_t cap, int status, const char *body, int close)
{
	return sqb_http_format_ex(out, cap, status, body, close, NULL);
}
