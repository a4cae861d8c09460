/* MMDS network stack (docs/mmds.md): the guest's Ethernet frames that are
 * for the MMDS address are detoured here instead of the tap; answers come
 * back as frames the net device writes into the guest's RX queue ahead of
 * tap traffic.  ARP requests for the address are answered with the MMDS MAC
 * (Firecracker's 06:01:23:45:67:01); TCP on port 80 is served by a small
 * endpoint (bounded connections and buffers) that frames HTTP requests and
 * passes each to a responder.  The virtual link never loses a frame the stack
 * produced: a frame stays queued until the device takes it.
 *
 * Not locked: one owner (the event loop thread of the device). */
#ifndef SQB_MMDS_NS_H
#define SQB_MMDS_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqb_mmds_metrics;
typedef struct sqb_mmds_ns sqb_mmds_ns;

/* One complete HTTP request in, one response out (malloc'd into *resp).
 * Returns 0, or a negative value: the connection is reset. */
typedef int (*sqb_mmds_respond_fn)(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
				   size_t *resp_len);

struct sqb_mmds_ns_config {
	uint32_t ipv4;	/* host byte order; 0: SQB_MMDS_DEFAULT_IPV4 */
	uint8_t mac[6]; /* the MMDS MAC answered to ARP; all zero: the default */
	sqb_mmds_respond_fn respond;
	void *ctx;
	struct sqb_mmds_metrics *metrics; /* may be NULL */
	/* Drop IPv4 headers and TCP segments whose checksum is wrong.  Off by
	 * default, as in Firecracker (dumbo, its issue #520): a guest that
	 * negotiated VIRTIO_NET_F_CSUM leaves the TCP checksum partial
	 * (VIRTIO_NET_HDR_F_NEEDS_CSUM), so verifying it would drop good
	 * segments.  Output checksums are always complete. */
	bool verify_csum;
	/* Nonzero: initial sequence numbers follow xorshift32 from this seed
	 * (deterministic, for tests and fuzzing); 0: random. */
	uint32_t isn_seed;
};

#define SQB_MMDS_DEFAULT_IPV4 0xa9fea9feu /* 169.254.169.254 */
#define SQB_MMDS_DEFAULT_MAC                                                                       \
	{                                                                                          \
		0x06, 0x01, 0x23, 0x45, 0x67, 0x01                                                 \
	}
#define SQB_MMDS_TCP_PORT 80
/* Firecracker's bounds (mmds/ns.rs, dumbo/tcp/endpoint.rs). */
#define SQB_MMDS_MAX_CONNECTIONS    30
#define SQB_MMDS_MAX_PENDING_RESETS 100
#define SQB_MMDS_RCV_BUF	    2500 /* one more than the largest request accepted */
/* Largest frame produced: an Ethernet frame of a 1500-byte IPv4 packet. */
#define SQB_MMDS_MAX_FRAME 1514

int sqb_mmds_ns_new(const struct sqb_mmds_ns_config *cfg, sqb_mmds_ns **out);
void sqb_mmds_ns_free(sqb_mmds_ns *ns);

/* A frame the guest transmitted (Ethernet header first, no virtio-net
 * header).  Returns true when the frame is for MMDS (ARP for its address, or
 * IPv4 to its address): the stack consumed it and it must not reach the tap.
 * As Firecracker's is_mmds_frame, only the target address decides: a
 * malformed frame for the address is consumed too (and dropped).
 * now_ms: monotonic milliseconds.
 *
 * Metrics: the stack counts every network counter of sqb_mmds_metrics,
 * including the ones Firecracker's net device counts (rx_accepted for each
 * consumed frame here, tx_frames and tx_bytes in next_frame), so the device
 * counts none of them.  A frame shorter than an Ethernet header counts
 * rx_bad_eth and is not consumed. */
bool sqb_mmds_ns_detour(sqb_mmds_ns *ns, const uint8_t *frame, size_t len, uint64_t now_ms);

/* True while the stack has a frame for the guest. */
bool sqb_mmds_ns_pending(const sqb_mmds_ns *ns);

/* Copy the next frame for the guest (Ethernet header first) into buf.
 * Returns its length; 0 when none is pending; if cap is too small for it the
 * frame stays queued and the needed length is returned (> cap). */
size_t sqb_mmds_ns_next_frame(sqb_mmds_ns *ns, uint8_t *buf, size_t cap, uint64_t now_ms);

/* Earliest now_ms at which a retransmission (SYN-ACK or response data not
 * acknowledged in time) is due, UINT64_MAX when none: a device that only
 * calls next_frame while pending() may arm a timer for it.  Without it a
 * connection that never progresses is still bounded: it is evicted when the
 * table is full and it has been idle (no segment received) for 10 s. */
uint64_t sqb_mmds_ns_next_timeout(const sqb_mmds_ns *ns);

/* Drop every connection and queued frame (device reset, snapshot load). */
void sqb_mmds_ns_reset(sqb_mmds_ns *ns);

#endif
