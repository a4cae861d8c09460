/* Firecracker Uffd-backend handshake (private to squib-pager and its tests):
 * one message on a Unix stream socket carrying a JSON array of
 *   {"base_host_virt_addr": u64, "size": u64, "offset": u64,
 *    "page_size": bytes, "page_size_kib": bytes (sic)}
 * (offset = position in the guest memory file, regions concatenated in
 * order) and the VMM's userfaultfd as SCM_RIGHTS ancillary data.  Older
 * Firecracker releases send only page_size_kib (1.7-1.11) or neither page
 * field (1.4-1.6); the parser accepts all three shapes. */
#ifndef SQB_PAGER_PROTO_H
#define SQB_PAGER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "squib/restore.h"
#include "squib/snapfmt.h"

#define SQB_PAGER_MAX_MAPPINGS 1024u
#define SQB_PAGER_MAX_MSG      (64u << 10)

/* squib's optional extension ([F-46] identity of the memory file the VMM's
 * state file names; Firecracker's handlers ignore unknown fields):
 *   "squib_memory_uuid": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
 *   "squib_memory_digest": 32 lowercase hex digits */
struct sqb_pager_map {
	uint64_t base_host_virt_addr;
	uint64_t size;
	uint64_t offset;
	uint64_t page_size;
	int has_ident; /* both identity fields present */
	char mem_uuid[37];
	char mem_digest[33];
};

/* 0 when no mapping carries an identity or every one names snap (its uuid
 * and digest); else -SQB_EMISMATCH with why naming both identities. */
int sqb_pager_check_ident(const sqb_snap *snap, const struct sqb_pager_map *m, unsigned int n,
			  char *why, size_t whylen);

/* Parse the JSON body; on failure returns -EINVAL and a one-line reason. */
int sqb_pager_parse(const char *json, size_t len, struct sqb_pager_map **maps, unsigned int *n,
		    char *why, size_t whylen);

/* Map the memory-file offsets onto the snapshot's regions (guest addresses).
 * Every mapping must lie inside one region; -SQB_EMISMATCH otherwise. */
int sqb_pager_ranges(sqb_snap *s, const struct sqb_pager_map *m, unsigned int n,
		     struct sqb_restore_range *out, char *why, size_t whylen);

/* Receive one handshake message: JSON into buf (NUL-terminated), *fd the
 * passed descriptor or -1. Returns bytes received or -errno. */
long sqb_pager_recv(int sock, char *buf, size_t cap, int *fd);

/* Client side (tests, and any squib VMM that uses an external pager): sends
 * what Firecracker >= 1.12 sends, page_size and page_size_kib both in bytes,
 * plus the identity fields of mappings that have has_ident set. */
int sqb_pager_send(int sock, const struct sqb_pager_map *m, unsigned int n, int uffd);

#endif
