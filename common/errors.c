/* sqb_strerror() and diagnostics formatting: the names behind the pinned
 * error values of include/squib/errors.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "squib/errors.h"

static const char *const sqb_error_names[] = {
	[SQB_EBADMAGIC - 1000] = "not a squib snapshot (bad magic)",
	[SQB_ECHECKSUM - 1000] = "checksum mismatch",
	[SQB_ETRUNCATED - 1000] = "truncated file",
	[SQB_EVERSION - 1000] = "format version too new",
	[SQB_ECORRUPT - 1000] = "corrupt field",
	[SQB_ERESERVED - 1000] = "reserved field not zero",
	[SQB_EUNSUPPORTED - 1000] = "unsupported critical section or record",
	[SQB_EPARENT - 1000] = "parent snapshot missing or mismatched",
	[SQB_EMISMATCH - 1000] = "architecture, hypervisor or page size mismatch",
	[SQB_ECODEC - 1000] = "decompression failed",
	[SQB_ELIMIT - 1000] = "limit exceeded",
	[SQB_ENOTFOUND - 1000] = "not found",
	[SQB_ESTATE - 1000] = "invalid state for this operation",
	[SQB_EFAULT_INJECTED - 1000] = "injected fault",
};

const char *sqb_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err < 0)
		err = -err;
	if (err >= 1000 && err < SQB_ERROR_MAX_)
		return sqb_error_names[err - 1000];
	if (err < 1000)
		return strerror(err);
	return "unknown error";
}

const char *sqb_os_strerror(int err)
{
	/* musl's src/errno/__strerror.h, where it differs from glibc */
	static const struct {
		int e;
		const char *s;
	} musl[] = {
	    {EBUSY, "Resource busy"},
	    {EIO, "I/O error"},
	    {ENOMEM, "Out of memory"},
	    {ENOTTY, "Not a tty"},
	    {ELOOP, "Symbolic link loop"},
	    {ENAMETOOLONG, "Filename too long"},
	    {ENOTSOCK, "Not a socket"},
	    {EADDRINUSE, "Address in use"},
	    {ETIMEDOUT, "Operation timed out"},
	    {EOPNOTSUPP, "Not supported"},
	    {EXDEV, "Cross-device link"},
	    {ESPIPE, "Invalid seek"},
	    {EMFILE, "No file descriptors available"},
	    {ENFILE, "Too many open files in system"},
	    {EAGAIN, "Resource temporarily unavailable"},
	    {ECONNRESET, "Connection reset by peer"},
	    {EHOSTUNREACH, "Host is unreachable"},
	    {ENETUNREACH, "Network unreachable"},
	};

	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(musl) / sizeof(musl[0]); i++)
		if (musl[i].e == err)
			return musl[i].s;
	return err < 1000 ? strerror(err) : sqb_strerror(err);
}

const char *sqb_diag_format(const struct sqb_diag *d, char *buf, unsigned long len)
{
	if (!d) {
		snprintf(buf, len, "(no diagnostics)");
	} else if (d->offset == UINT64_MAX) {
		snprintf(buf, len, "%s: %s", d->section[0] ? d->section : "file", d->reason);
	} else {
		snprintf(buf, len, "%s at 0x%llx: %s", d->section[0] ? d->section : "file",
			 (unsigned long long)d->offset, d->reason);
	}
	return buf;
}
