/* Minimal HTTP/1.1 request framing for the API socket (private).
 *
 *   bytes ──> sqb_http_parse() ──> request line + headers (<= 8 KiB)
 *                                  + body (Content-Length <= payload cap)
 *
 * Pure function over a buffer, so the API server and the unit tests share it.
 */
#ifndef SQB_API_HTTP_H
#define SQB_API_HTTP_H

#include <stddef.h>

#define SQB_HTTP_MAX_HEADER  8192
#define SQB_HTTP_MAX_PAYLOAD 51200 /* Firecracker's default http_api_max_payload_size */

enum sqb_http_parse_result {
	SQB_HTTP_INCOMPLETE = 0, /* need more bytes */
	SQB_HTTP_DONE = 1,	 /* *req is filled */
	SQB_HTTP_BAD = -1,	 /* malformed: answer 400 with err, then close */
};

struct sqb_http_req {
	char method[8];
	char path[256];
	const char *body; /* points into the caller's buffer */
	size_t body_len;
	int has_body;	     /* a Content-Length header was present */
	int close;	     /* Connection: close, or HTTP/1.0 */
	int expect_continue; /* Expect: 100-continue and the body is not here yet */
	size_t total_len;    /* bytes this request occupies in the buffer */
};

int sqb_http_parse(const char *buf, size_t len, size_t max_payload, struct sqb_http_req *req,
		   char *err, size_t errlen);

/* Format a response into out (returns its length, or 0 if it does not fit).
 * body may be NULL; a non-NULL body is sent as application/json. */
size_t sqb_http_format(char *out, size_t cap, int status, const char *body, int close);
/* Same, with extra header lines (each ending in CRLF) such as
 * "Deprecation: true\r\n"; extra may be NULL. */
/* Only the head of that response, for a body of body_len bytes sent apart
 * (has_body 0: a 204, no Content-Type/Length). */
size_t sqb_http_format_head(char *out, size_t cap, int status, int has_body, size_t body_len,
			    int close, const char *extra);
size_t sqb_http_format_ex(char *out, size_t cap, int status, const char *body, int close,
			  const char *extra);

#endif
