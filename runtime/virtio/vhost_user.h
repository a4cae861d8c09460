/* vhost-user frontend protocol, private to runtime/virtio and its tests
 * (QEMU docs/interop/vhost-user.rst; docs/virtio.md "vhost-user block").
 *
 *   squib (frontend) ── Unix stream socket ── backend (qemu-storage-daemon, ...)
 *
 *   message  = header | payload
 *   header   = request u32 | flags u32 | size u32      (little-endian, 12 bytes)
 *              flags: bits 0-1 version (1), bit 2 REPLY, bit 3 NEED_REPLY
 *   payload  = size bytes: u64 | vring state {index u32, num u32}
 *              | vring address {index, flags u32; desc, used, avail, log u64}
 *              | memory {nregions u32, padding u32, region[n] {gpa, size,
 *                        userspace addr, mmap offset u64}}
 *              | config {offset, size, flags u32, bytes[size]}
 *   fds      = SCM_RIGHTS on the header's sendmsg (mem table: one a region;
 *              vring kick/call: one, u64 bits 0-7 the index, bit 8 "no fd")
 *
 * Every reply is awaited with a deadline and checked (REPLY flag, version,
 * request id, exact size, no fds) before a byte of it is used; the first
 * error breaks the connection for good: a byte stream cannot resync.
 */
#ifndef SQB_VHOST_USER_H
#define SQB_VHOST_USER_H

#include <stddef.h>
#include <stdint.h>

#define SQB_VHU_HDR_LEN		12
#define SQB_VHU_VERSION		0x1u
#define SQB_VHU_VERSION_MASK	0x3u
#define SQB_VHU_FLAG_REPLY	0x4u
#define SQB_VHU_FLAG_NEED_REPLY 0x8u
/* The largest payload this frontend sends or accepts: the memory table with
 * the protocol's 8 regions (8 + 8 * 32) and a config of 256 bytes + 12. */
#define SQB_VHU_MAX_PAYLOAD	   512u
#define SQB_VHU_MAX_REGIONS	   8u
#define SQB_VHU_REGION_LEN	   32u
#define SQB_VHU_MAX_CONFIG	   256u
#define SQB_VHU_VRING_NOFD	   (1ull << 8)
#define SQB_VHU_DEFAULT_TIMEOUT_MS 5000

enum sqb_vhu_request {
	SQB_VHU_GET_FEATURES = 1,
	SQB_VHU_SET_FEATURES = 2,
	SQB_VHU_SET_OWNER = 3,
	SQB_VHU_SET_MEM_TABLE = 5,
	SQB_VHU_SET_VRING_NUM = 8,
	SQB_VHU_SET_VRING_ADDR = 9,
	SQB_VHU_SET_VRING_BASE = 10,
	SQB_VHU_GET_VRING_BASE = 11,
	SQB_VHU_SET_VRING_KICK = 12,
	SQB_VHU_SET_VRING_CALL = 13,
	SQB_VHU_SET_VRING_ERR = 14,
	SQB_VHU_GET_PROTOCOL_FEATURES = 15,
	SQB_VHU_SET_PROTOCOL_FEATURES = 16,
	SQB_VHU_SET_VRING_ENABLE = 18,
	SQB_VHU_GET_CONFIG = 24,
	SQB_VHU_SET_CONFIG = 25,
};

/* VHOST_USER_F_PROTOCOL_FEATURES: a virtio feature bit only vhost-user uses. */
#define SQB_VHU_F_PROTOCOL_FEATURES 30
/* Protocol feature bits. */
#define SQB_VHU_PF_MQ	     0
#define SQB_VHU_PF_REPLY_ACK 3
#define SQB_VHU_PF_CONFIG    9

struct sqb_vhu_hdr {
	uint32_t request, flags, size;
};

struct sqb_vhu_mem_region {
	uint64_t gpa, size, uaddr, mmap_offset;
	int fd;
};

void sqb_vhu_hdr_encode(uint8_t b[SQB_VHU_HDR_LEN], const struct sqb_vhu_hdr *h);
void sqb_vhu_hdr_decode(const uint8_t b[SQB_VHU_HDR_LEN], struct sqb_vhu_hdr *h);
/* The memory table payload (8 + 32 n bytes) into b; its length, or 0 when
 * n is 0 or above SQB_VHU_MAX_REGIONS or cap is too small. */
size_t sqb_vhu_mem_encode(uint8_t *b, size_t cap, const struct sqb_vhu_mem_region *r,
			  unsigned int n);
/* The vring address payload (40 bytes). */
#define SQB_VHU_VRING_ADDR_LEN 40
void sqb_vhu_vring_addr_encode(uint8_t b[SQB_VHU_VRING_ADDR_LEN], uint32_t index, uint32_t flags,
			       uint64_t desc, uint64_t used, uint64_t avail, uint64_t log);
/* A reply header checked against the request it answers: 0, or -EPROTO
 * with why (REPLY flag, version, id, size: exactly want_size). */
int sqb_vhu_check_reply(const struct sqb_vhu_hdr *h, uint32_t request, uint32_t want_size,
			char *why, size_t len);

/* ---- a connection ------------------------------------------------------ */

typedef struct sqb_vhu sqb_vhu;

#define SQB_VHU_BLK_CONFIG_LEN 60 /* Firecracker's BLOCK_CONFIG_SPACE_SIZE */

struct sqb_vhu {
	int fd;
	int timeout_ms;
	int reply_ack;
	int broken; /* -errno of the first failure, 0 while healthy */
	char why[192];
	/* what the block frontend negotiated (virtio_vhost_user.c) */
	uint64_t features;	    /* ours & the backend's, PROTOCOL_FEATURES included */
	uint64_t protocol_features; /* ours & the backend's */
	uint8_t config[SQB_VHU_BLK_CONFIG_LEN];
	uint32_t config_len; /* 0 without PROTOCOL_F_CONFIG */
	uint64_t init_us;    /* connect + negotiation (Firecracker's init_time_us) */
};

/* Connect to a backend's socket (non-blocking: a backend that accepts
 * nothing fails now).  why: Firecracker's wording for the connect error. */
int sqb_vhu_connect(sqb_vhu **out, const char *path, int timeout_ms, char *why, size_t len);
/* Wrap a connected stream socket (taken over; tests use a socketpair). */
int sqb_vhu_from_fd(sqb_vhu **out, int fd, int timeout_ms);
void sqb_vhu_close(sqb_vhu *c);
int sqb_vhu_fd(const sqb_vhu *c);
/* Why the connection broke (a static-lifetime copy inside c), or NULL. */
const char *sqb_vhu_broken(const sqb_vhu *c);
/* REPLY_ACK negotiated: requests without a reply of their own ask for one. */
void sqb_vhu_set_reply_ack(sqb_vhu *c, int on);

/* One request: payload (len bytes) and fds out; then, when reply is not
 * NULL, a reply of exactly reply_len bytes; else, with REPLY_ACK, the ack
 * (a non-zero ack is -EIO).  0 or -errno with why (-ETIMEDOUT: no reply in
 * time; -EPROTO: a malformed reply; -EPIPE / -ECONNRESET: gone).  The first
 * failure breaks the connection: every later request fails with it. */
int sqb_vhu_request(sqb_vhu *c, uint32_t req, const void *payload, uint32_t len, const int *fds,
		    unsigned int nfds, void *reply, uint32_t reply_len, char *why, size_t wlen);
int sqb_vhu_get_u64(sqb_vhu *c, uint32_t req, uint64_t *v, char *why, size_t wlen);
int sqb_vhu_set_u64(sqb_vhu *c, uint32_t req, uint64_t v, char *why, size_t wlen);
int sqb_vhu_set_state(sqb_vhu *c, uint32_t req, uint32_t index, uint32_t num, char *why,
		      size_t wlen);
/* GET_VRING_BASE: the reply's index must be the queue's. */
int sqb_vhu_get_vring_base(sqb_vhu *c, uint32_t index, uint32_t *num, char *why, size_t wlen);
/* SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR with fd (or no fd: -1). */
int sqb_vhu_set_vring_fd(sqb_vhu *c, uint32_t req, uint32_t index, int fd, char *why, size_t wlen);
/* GET_CONFIG of [0, size): the reply must echo offset 0 and size. */
int sqb_vhu_get_config(sqb_vhu *c, uint32_t size, uint8_t *out, char *why, size_t wlen);
/* Whether the socket shows the backend gone or talking out of turn (called
 * when it turned readable with no request in flight): 1 broken, 0 not. */
int sqb_vhu_check_idle(sqb_vhu *c, char *why, size_t wlen);

#endif
