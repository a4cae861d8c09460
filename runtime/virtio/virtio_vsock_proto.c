/* virtio-vsock wire helpers: the 44-byte packet header (virtio 1.x 5.10.6,
 * little-endian), its field-by-field check for packets the guest sends, and
 * Firecracker's host-side "CONNECT <port>\n" command (docs/vsock.md there).
 * Pure functions of their input, shared by the device and the fuzz target. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "virtio_priv.h"

static uint64_t ld(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void st(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void sqb_vsock_hdr_decode(const uint8_t b[SQB_VSOCK_HDR_LEN], struct sqb_vsock_hdr *h)
{
	h->src_cid = ld(b + 0, 8);
	h->dst_cid = ld(b + 8, 8);
	h->src_port = (uint32_t)ld(b + 16, 4);
	h->dst_port = (uint32_t)ld(b + 20, 4);
	h->len = (uint32_t)ld(b + 24, 4);
	h->type = (uint16_t)ld(b + 28, 2);
	h->op = (uint16_t)ld(b + 30, 2);
	h->flags = (uint32_t)ld(b + 32, 4);
	h->buf_alloc = (uint32_t)ld(b + 36, 4);
	h->fwd_cnt = (uint32_t)ld(b + 40, 4);
}

void sqb_vsock_hdr_encode(uint8_t b[SQB_VSOCK_HDR_LEN], const struct sqb_vsock_hdr *h)
{
	st(b + 0, h->src_cid, 8);
	st(b + 8, h->dst_cid, 8);
	st(b + 16, h->src_port, 4);
	st(b + 20, h->dst_port, 4);
	st(b + 24, h->len, 4);
	st(b + 28, h->type, 2);
	st(b + 30, h->op, 2);
	st(b + 32, h->flags, 4);
	st(b + 36, h->buf_alloc, 4);
	st(b + 40, h->fwd_cnt, 4);
}

/* Only the address decides whether an answer can be sent at all: a packet
 * that claims another source cid, or is not for the host, is dropped
 * (answering it would forge traffic for someone else).  Everything else that
 * is wrong gets an RST for that port pair, as Firecracker does. */
enum sqb_vsock_verdict sqb_vsock_hdr_check(const struct sqb_vsock_hdr *h, uint64_t guest_cid,
					   uint64_t payload, const char **why)
{
	if (h->src_cid != guest_cid) {
		*why = "src_cid is not the guest's cid";
		return SQB_VSOCK_DROP;
	}
	if (h->dst_cid != SQB_VSOCK_HOST_CID) {
		*why = "dst_cid is not the host (2)";
		return SQB_VSOCK_DROP;
	}
	if (h->op == SQB_VSOCK_OP_RST) {
		/* Never answer an RST with an RST, whatever else it says. */
		*why = NULL;
		return SQB_VSOCK_OK;
	}
	if (h->type != SQB_VSOCK_TYPE_STREAM) {
		*why = "type is not STREAM (1)";
		return SQB_VSOCK_RST;
	}
	if (h->op == SQB_VSOCK_OP_INVALID || h->op > SQB_VSOCK_OP_CREDIT_REQUEST) {
		*why = "unknown op";
		return SQB_VSOCK_RST;
	}
	if (h->len > SQB_VSOCK_MAX_PKT) {
		*why = "len larger than 64 KiB";
		return SQB_VSOCK_RST;
	}
	if (h->len > payload) {
		*why = "len larger than the readable buffers after the header";
		return SQB_VSOCK_RST;
	}
	if (h->op != SQB_VSOCK_OP_RW && h->len != 0) {
		*why = "payload on a control packet";
		return SQB_VSOCK_RST;
	}
	if (h->op == SQB_VSOCK_OP_SHUTDOWN &&
	    (h->flags & ~(SQB_VSOCK_SHUTDOWN_RCV | SQB_VSOCK_SHUTDOWN_SEND))) {
		*why = "unknown SHUTDOWN flags";
		return SQB_VSOCK_RST;
	}
	*why = NULL;
	return SQB_VSOCK_OK;
}

/* Firecracker's read_local_stream_port (unix/muxer.rs): it reads the first
 * CONNECT_MIN bytes ("connect 0\n" is the shortest command), then one byte
 * at a time until the last one read is '\n' or its 32-byte buffer is full. */
#define CONNECT_MIN 10
#define CONNECT_MAX 32

/* One UTF-8 sequence at p (n bytes left), as Rust's str::from_utf8 accepts
 * it (no overlong forms, no surrogates, nothing above U+10FFFF): its length
 * with *cp, or 0 when invalid. */
static unsigned int utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
	unsigned int len;
	uint32_t c, min;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f, min = 0x80;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0f, min = 0x800;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (unsigned int i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Rust's char::is_whitespace (Unicode White_Space), which split_whitespace
 * splits at: not U+001C..U+001F, which C's isspace() and Python take. */
static bool uni_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	       c == 0x205f || c == 0x3000;
}

/* Rust's u32::from_str: an optional '+', then decimal digits only, any
 * number of leading zeros, no overflow. */
static bool parse_u32(const char *w, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n && w[0] == '+')
		w++, n--;
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(w[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* The words of the command's bytes b[0..n): from_utf8, then split_whitespace;
 * the first word must be "connect" in any case (no other character
 * lowercases to those ASCII letters), the second the port, the rest is
 * ignored.  final: these are all its bytes; otherwise a prefix, and only
 * what more bytes cannot change is judged (a word followed by white space,
 * a byte that no UTF-8 sequence starts with).  1 with *port, 0 undecided,
 * -EINVAL. */
static int connect_words(const uint8_t *b, size_t n, bool final, uint32_t *port)
{
	size_t at = 0, w[2][2] = {{0, 0}, {0, 0}};
	unsigned int nw = 0, done = 0; /* words begun, words ended */

	while (at < n && done < 2) {
		uint32_t c;
		unsigned int k = utf8_next(b + at, n - at, &c);

		if (!k && !final && n - at < 4)
			break; /* perhaps a sequence whose rest is still to come */
		if (!k)
			return -EINVAL;
		if (uni_space(c) && nw > done)
			w[done++][1] = at;
		else if (!uni_space(c) && nw == done)
			w[nw++][0] = at;
		at += k;
	}
	if (final && nw > done)
		w[done++][1] = n;
	/* from_utf8 looks at every byte, the words after the port too */
	for (uint32_t c; final && at < n;) {
		unsigned int k = utf8_next(b + at, n - at, &c);

		if (!k)
			return -EINVAL;
		at += k;
	}
	if (done >= 1 &&
	    (w[0][1] - w[0][0] != 7 || strncasecmp((const char *)b + w[0][0], "connect", 7) != 0))
		return -EINVAL;
	if (done >= 2 && !parse_u32((const char *)b + w[1][0], w[1][1] - w[1][0], port))
		return -EINVAL;
	if (done == 2)
		return 1;
	return final ? -EINVAL : 0;
}

int sqb_vsock_parse_connect(const char *buf, size_t len, uint32_t *port, size_t *used)
{
	const uint8_t *b = (const uint8_t *)buf;
	size_t n = CONNECT_MIN;
	uint32_t p = 0;
	int rc;

	while (n <= len && b[n - 1] != '\n' && n < CONNECT_MAX)
		n++;
	if (n > len) /* Firecracker would read on: judge what is here so far */
		return connect_words(b, len, false, &p) < 0 ? -EINVAL : 0;
	rc = connect_words(b, n, true, &p);
	if (rc == 1) {
		*port = p;
		*used = n;
	}
	return rc;
}
