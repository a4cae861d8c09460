/* virtio-vsock wire helpers: the 44-byte packet header (virtio 1.x 5.10.6,
 * little-endian), its field-by-field check for packets the guest sends, and
 * Firecracker's host-side "CONNECT <port>\n" command (docs/vsock.md there).
 * Pure functions of their input, shared by the device and the fuzz target. */
#include <errno.h>
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

#define CONNECT_MAX 32 /* Firecracker reads at most 32 bytes for the command */

int sqb_vsock_parse_connect(const char *buf, size_t len, uint32_t *port, size_t *used)
{
	const char *nl = memchr(buf, '\n', len < CONNECT_MAX ? len : CONNECT_MAX);
	const char *p = buf, *end;
	uint64_t v = 0;
	int digits = 0;

	if (!nl)
		return len >= CONNECT_MAX ? -EINVAL : 0;
	end = nl;
	*used = (size_t)(nl - buf) + 1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	if (end - p < 7 || strncasecmp(p, "connect", 7) != 0)
		return -EINVAL;
	p += 7;
	if (p == end || (*p != ' ' && *p != '\t'))
		return -EINVAL;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	if (!digits || p != end)
		return -EINVAL;
	*port = (uint32_t)v;
	return 1;
}
