/* mmds_priv.h: the store's insides, shared by mmds_store.c and mmds_http.c
 * (not by the network stack, which only uses mmds.h). */
#ifndef SQB_MMDS_PRIV_H
#define SQB_MMDS_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mmds.h"
#include "mmds_json.h"

/* MmdsDatastoreError's texts (data_store.rs).  The API prefixes them as
 * VmmActionError does: "MMDS limit exceeded error: " (413) and
 * "MMDS error: " (400). */
#define SQB_MMDS_MSG_TOO_LARGE	 "The MMDS patch request doesn't fit."
#define SQB_MMDS_MSG_NOT_INIT	 "The MMDS data store is not initialized."
#define SQB_MMDS_MSG_UNSUPPORTED "Cannot retrieve value. The value has an unsupported type."

#define SQB_MMDS_MAX_TOKENS 1024
#define SQB_MMDS_TOKEN_RAW  36 /* Firecracker: IV 12 + expiry 8 + tag 16 */
#define SQB_MMDS_TOKEN_LEN  48 /* base64 of 36 bytes */

struct sqb_mmds_token {
	char text[SQB_MMDS_TOKEN_LEN + 1];
	uint64_t expiry_ms;
};

struct sqb_mmds {
	pthread_mutex_t lock;
	enum sqb_mmds_version version;
	bool imds_compat;
	bool initialized; /* a PUT happened since start or reset */
	size_t limit;
	struct sqb_jv *doc; /* never NULL: a null node when empty */
	struct sqb_mmds_token tokens[SQB_MMDS_MAX_TOKENS];
	size_t ntokens;
	struct sqb_mmds_metrics metrics;
};

/* With m->lock held.  out gets SQB_MMDS_TOKEN_LEN + 1 bytes.  -1 when no
 * randomness could be had. */
int sqb_mmds_token_new_locked(sqb_mmds *m, uint32_t ttl_s, uint64_t now_ms, char *out);
bool sqb_mmds_token_valid_locked(const sqb_mmds *m, const char *tok, size_t len, uint64_t now_ms);

#endif
