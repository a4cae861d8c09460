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

/* musl's src/errno/__strerror.h words (Firecracker's binaries are static
 * musl builds; glibc words many of these differently). */
const char *sqb_os_strerror(int err)
{
	int e = err < 0 ? -err : err;

	switch (e) {
	case EPERM:
		return "Operation not permitted";
	case ENOENT:
		return "No such file or directory";
	case ESRCH:
		return "No such process";
	case EINTR:
		return "Interrupted system call";
	case EIO:
		return "I/O error";
	case ENXIO:
		return "No such device or address";
	case E2BIG:
		return "Argument list too long";
	case ENOEXEC:
		return "Exec format error";
	case EBADF:
		return "Bad file descriptor";
	case ECHILD:
		return "No child process";
	case EAGAIN:
		return "Resource temporarily unavailable";
	case ENOMEM:
		return "Out of memory";
	case EACCES:
		return "Permission denied";
	case EFAULT:
		return "Bad address";
	case EBUSY:
		return "Resource busy";
	case EEXIST:
		return "File exists";
	case EXDEV:
		return "Cross-device link";
	case ENODEV:
		return "No such device";
	case ENOTDIR:
		return "Not a directory";
	case EISDIR:
		return "Is a directory";
	case EINVAL:
		return "Invalid argument";
	case ENFILE:
		return "Too many open files in system";
	case EMFILE:
		return "No file descriptors available";
	case ENOTTY:
		return "Not a tty";
	case ETXTBSY:
		return "Text file busy";
	case EFBIG:
		return "File too large";
	case ENOSPC:
		return "No space left on device";
	case ESPIPE:
		return "Invalid seek";
	case EROFS:
		return "Read-only file system";
	case EMLINK:
		return "Too many links";
	case EPIPE:
		return "Broken pipe";
	case ERANGE:
		return "Result not representable";
	case ENAMETOOLONG:
		return "Filename too long";
	case ENOSYS:
		return "Function not implemented";
	case ELOOP:
		return "Symbolic link loop";
	case ENOTEMPTY:
		return "Directory not empty";
	case EOPNOTSUPP:
		return "Not supported";
	case EOVERFLOW:
		return "Value too large for data type";
	case EDQUOT:
		return "Quota exceeded";
	case ENOTSOCK:
		return "Not a socket";
	case EADDRINUSE:
		return "Address in use";
	case EADDRNOTAVAIL:
		return "Address not available";
	case ECONNREFUSED:
		return "Connection refused";
	case ECONNRESET:
		return "Connection reset by peer";
	case ETIMEDOUT:
		return "Operation timed out";
	case EHOSTUNREACH:
		return "Host is unreachable";
	case ENETUNREACH:
		return "Network unreachable";
	default:
		return e < 1000 ? strerror(e) : sqb_strerror(e);
	}
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
