/* Robust file I/O with named fault-injection points (private).
 *
 * Every write of a snapshot goes through sqb_pwrite_full() so that tests can
 * set SQB_FAULT to prove that no data is lost:
 *
 *   SQB_FAULT=enospc       writes fail with ENOSPC once SQB_FAULT_AFTER bytes
 *                          (default 0) have been written by this process
 *   SQB_FAULT=short_write  every write transfers at most half its length
 *   SQB_FAULT=eintr        every other read/write fails with EINTR first
 *   SQB_FAULT=short_read   every read transfers at most half its length
 *   SQB_FAULT=fsync        fsync fails with EIO
 *   SQB_FAULT=rename       the final rename fails with EIO
 *
 * Several names may be combined with commas.
 */
#ifndef SQB_COMMON_IO_H
#define SQB_COMMON_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int sqb_fault_enabled(const char *name);

/* Write/read exactly len bytes at off, retrying EINTR and short transfers.
 * Returns 0 or -errno; a read that hits end of file returns -SQB_ETRUNCATED. */
int sqb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int sqb_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* An atomically replaced file: data goes to a temporary file in the same
 * directory; commit fsyncs it, renames it over the final path and fsyncs the
 * directory.  Until commit the final path keeps its previous content. */
struct sqb_afile {
	int fd;
	char *path;
	char *tmp;
};

int sqb_afile_open(struct sqb_afile *af, const char *path);
int sqb_afile_commit(struct sqb_afile *af);
/* Make the temporary durable (fsync), but leave it under its temporary
 * name (af->tmp), open and locked, for a caller that renames several files
 * itself and then calls sqb_fsync_dir() once.  abort closes it and unlinks
 * it unless the caller cleared af->tmp.  Temporaries are named
 * "<path>.tmp.XXXXXX" and hold flock(LOCK_EX) while their writer lives. */
int sqb_afile_sync(struct sqb_afile *af);
/* flock(how) the folder holding path; returns its fd (close to unlock),
 * or -1.  Writers that sweep stale temporaries hold it LOCK_EX. */
int sqb_lock_folder(const char *path, int how);
/* fsync the folder holding path (makes renames in it durable). */
int sqb_fsync_dir(const char *path);
void sqb_afile_abort(struct sqb_afile *af); /* safe on an unopened/committed one */

#endif
