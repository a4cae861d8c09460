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
	uint32_t ipv4;		/* host byte order; 169.254.169.254 by default */
	uint8_t mac[6];		/* the MMDS MAC answered to ARP */
	sqb_mmds_respond_fn respond;
	void *ctx;
	struct sqb_mmds_metrics *metrics; /* may be NULL */
};

#define SQB_MMDS_DEFAULT_IPV4 0xa9fea9feu /* 169.254.169.254 */

int sqb_mmds_ns_new(const struct sqb_mmds_ns_config *cfg, sqb_mmds_ns **out);
void sqb_mmds_ns_free(sqb_mmds_ns *ns);

/* A frame the guest transmitted (Ethernet header first, no virtio-net
 * header).  Returns true when the frame is for MMDS (ARP for its address, or
 * IPv4 to its address): the stack consumed it and it must not reach the tap.
 * now_ms: monotonic milliseconds. */
bool sqb_mmds_ns_detour(sqb_mmds_ns *ns, const uint8_t *frame, size_t len, uint64_t now_ms);

/* True while the stack has a frame for the guest. */
bool sqb_mmds_ns_pending(const sqb_mmds_ns *ns);

/* Copy the next frame for the guest (Ethernet header first) into buf.
 * Returns its length; 0 when none is pending; if cap is too small for it the
 * frame stays queued and the needed length is returned (> cap). */
size_t sqb_mmds_ns_next_frame(sqb_mmds_ns *ns, uint8_t *buf, size_t cap, uint64_t now_ms);

/* Drop every connection and queued frame (device reset, snapshot load). */
void sqb_mmds_ns_reset(sqb_mmds_ns *ns);

#endif
