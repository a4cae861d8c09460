/* squib error convention, shared by every module.
 *
 *   return value   meaning
 *   ------------   -------------------------------------------------------
 *        0         success
 *     -errno       an OS call failed (-ENOMEM, -EIO, -ENOSPC ...)
 *   -SQB_E*        a format or semantic failure; values are pinned (>= 1000)
 *                  and never renumbered, so scripts may depend on them.
 *
 * Parsers also fill an optional struct sqb_diag saying *where*: the byte
 * offset and section a problem was found in, plus a one-line reason.
 */
#ifndef SQUIB_ERRORS_H
#define SQUIB_ERRORS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sqb_error {
	SQB_EBADMAGIC = 1000,  /* not a squib file (magic mismatch) */
	SQB_ECHECKSUM = 1001,  /* a checksum did not match */
	SQB_ETRUNCATED = 1002, /* a record extends past the end of the file */
	SQB_EVERSION = 1003,   /* written by a newer, incompatible format version */
	SQB_ECORRUPT = 1004,   /* a field holds an impossible value */
	SQB_ERESERVED = 1005,  /* a reserved field or bit is not zero */
	SQB_EUNSUPPORTED = 1006, /* an unknown critical section or record */
	SQB_EPARENT = 1007,    /* parent missing, or its identity does not match */
	SQB_EMISMATCH = 1008,  /* architecture / hypervisor / page size mismatch */
	SQB_ECODEC = 1009,     /* decompression failed or produced the wrong size */
	SQB_ELIMIT = 1010,     /* a count or size exceeds a documented limit */
	SQB_ENOTFOUND = 1011,  /* requested section, region or page is absent */
	SQB_ESTATE = 1012,     /* operation not valid in the object's current state */
	SQB_EFAULT_INJECTED = 1013, /* reserved: never returned, see SQB_FAULT */
	SQB_ERROR_MAX_
};

/* Human-readable name of any return value (0, -errno or -SQB_E*).
 * Never returns NULL; the string is static. */
const char *sqb_strerror(int err);

/* An errno (either sign) as Firecracker's messages show it: Rust's io::Error
 * text with musl's strerror, which Firecracker's static binaries use ("Resource
 * busy", "I/O error", "Out of memory", ...; glibc words some differently).
 * For API answers and log lines that quote an OS error. */
const char *sqb_os_strerror(int err);

/* Where a parser found a problem.  All fields are filled on failure when the
 * caller passes a non-NULL pointer; offset is UINT64_MAX when unknown. */
struct sqb_diag {
	uint64_t offset;   /* absolute byte offset in the file */
	char section[32];  /* e.g. "header", "directory", "PIDX[0]", "VCPU[1]" */
	char reason[200];  /* one line, no trailing newline */
};

/* Format a diagnostic as "SECTION at 0xOFF: REASON" into buf. */
const char *sqb_diag_format(const struct sqb_diag *d, char *buf, unsigned long len);

#ifdef __cplusplus
}
#endif
#endif
