/* MMDS: Firecracker's microVM metadata service (docs/mmds.md).
 *
 * Two halves, neither knows a VMM:
 *  - the data store (mmds_store.c, mmds_json.c): the JSON document the API
 *    puts, patches (RFC 7396) and gets, the size limit, V1/V2 session tokens,
 *    and the guest-facing HTTP semantics: one complete HTTP request in, one
 *    HTTP response out (sqb_mmds_http_respond), with Firecracker's statuses
 *    and texts;
 *  - the network stack (mmds_ns.c, mmds_ns.h): ARP, IPv4 and a small TCP
 *    endpoint on the MMDS address that frames HTTP requests out of the guest's
 *    TCP streams and hands each to a responder.
 *
 * Thread safety: a sqb_mmds is locked inside; the API thread (put, patch,
 * get, config) and the event loop (guest requests) may call at once. */
#ifndef SQB_MMDS_H
#define SQB_MMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sqb_mmds sqb_mmds;

enum sqb_mmds_version { SQB_MMDS_V1 = 1, SQB_MMDS_V2 = 2 };

/* Firecracker's default data store limit (--mmds-size-limit), bytes of the
 * compact JSON text. */
#define SQB_MMDS_DEFAULT_LIMIT 51200u
/* Token lifetime bounds (X-metadata-token-ttl-seconds). */
#define SQB_MMDS_TTL_MIN 1u
#define SQB_MMDS_TTL_MAX 21600u

/* Results of the API operations.  The API maps them to statuses: TOO_LARGE
 * 413, every other error 400 with the message in err.  err holds the text of
 * Firecracker's MmdsDatastoreError; its API shows VmmActionError, which adds
 * "MMDS limit exceeded error: " (413) or "MMDS error: " (400) in front. */
enum {
	SQB_MMDS_OK = 0,
	SQB_MMDS_E_PARSE = -1,	   /* body is not JSON: "<why> at line L column C" */
	SQB_MMDS_E_TOO_LARGE = -2, /* "The MMDS patch request doesn't fit." (PUT too) */
	SQB_MMDS_E_NOT_INIT = -3,  /* "The MMDS data store is not initialized." */
	SQB_MMDS_E_NOMEM = -4,
};

/* Counters for Firecracker's "mmds" metrics group (cumulative; the metrics
 * writer takes deltas).  The store counts rx_invalid_token / rx_no_token;
 * the network stack counts the rest into the same struct. */
struct sqb_mmds_metrics {
	uint64_t rx_accepted, rx_accepted_err, rx_accepted_unusual, rx_bad_eth;
	uint64_t rx_invalid_token, rx_no_token, rx_count;
	uint64_t tx_bytes, tx_count, tx_errors, tx_frames;
	uint64_t connections_created, connections_destroyed;
};

int sqb_mmds_new(size_t limit, sqb_mmds **out);
void sqb_mmds_free(sqb_mmds *m);

void sqb_mmds_set_version(sqb_mmds *m, enum sqb_mmds_version v);
enum sqb_mmds_version sqb_mmds_version(const sqb_mmds *m);
void sqb_mmds_set_imds_compat(sqb_mmds *m, bool on);
bool sqb_mmds_imds_compat(const sqb_mmds *m);
void sqb_mmds_set_limit(sqb_mmds *m, size_t limit);

/* PUT /mmds: replace the document with the JSON text body[0..len).
 * PATCH /mmds: RFC 7396 merge patch; fails with E_NOT_INIT before a PUT and
 * leaves the store unchanged on any error (E_TOO_LARGE included). */
int sqb_mmds_put(sqb_mmds *m, const char *body, size_t len, char *err, size_t errlen);
int sqb_mmds_patch(sqb_mmds *m, const char *body, size_t len, char *err, size_t errlen);

/* GET /mmds: the document as compact JSON text (malloc'd, NUL-terminated);
 * "{}" whenever the document is null: nothing put yet, after a reset, or
 * after PUT "null" (Firecracker's success_response_with_mmds_value).  The
 * guest, asking with Accept: application/json, reads "null" then. */
int sqb_mmds_get(sqb_mmds *m, char **out, size_t *out_len);

/* Drop the document (back to "not initialized") and every session token:
 * what a snapshot load does (the data store is not part of a snapshot, and
 * tokens issued before it are invalid after it). */
void sqb_mmds_reset(sqb_mmds *m);

/* Guest side: req[0..len) is one HTTP/1.x request as the guest sent it
 * (request line, headers, CRLF CRLF, then exactly Content-Length body bytes;
 * Firecracker's TCP endpoint hands over only up to the first blank line, so
 * a request announcing a body gets "Invalid request." there);
 * *resp (malloc'd) gets one complete response: in the request's HTTP
 * version, or HTTP/1.1 for a request micro_http refuses.  now_ms is a
 * monotonic clock in milliseconds (a token is valid while now_ms < its
 * issue time + TTL).  Returns 0, or SQB_MMDS_E_NOMEM. */
int sqb_mmds_http_respond(sqb_mmds *m, const uint8_t *req, size_t len, uint64_t now_ms,
			  uint8_t **resp, size_t *resp_len);

/* Snapshot of the counters (locked copy). */
void sqb_mmds_metrics(sqb_mmds *m, struct sqb_mmds_metrics *out);
/* The network stack adds its counters here (not locked: one event loop
 * thread writes them; sqb_mmds_http_respond writes the two token counters
 * under the lock from that same thread). */
struct sqb_mmds_metrics *sqb_mmds_metrics_ref(sqb_mmds *m);

#endif
