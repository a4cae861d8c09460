/* Full-length pread/pwrite, atomic file replacement and the SQB_FAULT
 * fault-injection points they honour (format.md [F-70]..[F-72]). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include "io.h"
#include "squib/errors.h"

static atomic_ullong sqb_fault_written;
static atomic_uint sqb_fault_tick;

int sqb_fault_enabled(const char *name)
{
	const char *v = getenv("SQB_FAULT");
	size_t n = strlen(name);

	while (v && *v) {
		if (!strncmp(v, name, n) && (v[n] == ',' || v[n] == '\0'))
			return 1;
		v = strchr(v, ',');
		if (v)
			v++;
	}
	return 0;
}

static int sqb_fault_eintr_now(void)
{
	return sqb_fault_enabled("eintr") && (atomic_fetch_add(&sqb_fault_tick, 1) & 1) == 0;
}

int sqb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	/* one look at the environment per call when no fault is asked for
	 * (it is read on every call: tests set it at run time) */
	int faults = getenv("SQB_FAULT") != NULL;

	while (len) {
		size_t chunk = len;
		ssize_t n;

		if (!faults) {
			n = pwrite(fd, p, chunk, (off_t)off);
			goto check;
		}
		if (sqb_fault_eintr_now()) {
			errno = EINTR;
			n = -1;
			goto check;
		}
		if (sqb_fault_enabled("enospc")) {
			const char *after = getenv("SQB_FAULT_AFTER");
			unsigned long long lim = after ? strtoull(after, NULL, 0) : 0;

			if (atomic_load(&sqb_fault_written) + chunk > lim)
				return -ENOSPC;
		}
		if (sqb_fault_enabled("short_write") && chunk > 1)
			chunk /= 2;
		n = pwrite(fd, p, chunk, (off_t)off);
check:
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		atomic_fetch_add(&sqb_fault_written, (unsigned long long)n);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int sqb_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	int faults = getenv("SQB_FAULT") != NULL; /* as in sqb_pwrite_full */

	while (len) {
		size_t chunk = len;
		ssize_t n;

		if (faults && sqb_fault_eintr_now()) {
			continue; /* a real EINTR is retried the same way */
		}
		if (faults && sqb_fault_enabled("short_read") && chunk > 1)
			chunk /= 2;
		n = pread(fd, p, chunk, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -SQB_ETRUNCATED;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int sqb_lock_folder(const char *path, int how)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

	free(copy);
	while (fd >= 0 && flock(fd, how) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

int sqb_afile_open(struct sqb_afile *af, const char *path)
{
	size_t n = strlen(path);
	int dfd;

	af->fd = -1;
	af->path = strdup(path);
	af->tmp = malloc(n + sizeof(".tmp.XXXXXX"));
	if (!af->path || !af->tmp) {
		sqb_afile_abort(af);
		return -ENOMEM;
	}
	memcpy(af->tmp, path, n);
	memcpy(af->tmp + n, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	/* A live temporary is locked, so that a sweep of stale ones (left by a
	 * killed writer; the sweeper holds the folder's lock exclusively) skips
	 * it.  Creating and locking happen under the folder's shared lock: a
	 * sweep never sees the file before its lock. */
	dfd = sqb_lock_folder(path, LOCK_SH);
	af->fd = mkostemp(af->tmp, O_CLOEXEC);
	if (af->fd >= 0)
		(void)flock(af->fd, LOCK_EX | LOCK_NB);
	if (dfd >= 0)
		close(dfd);
	if (af->fd < 0) {
		int err = -errno;

		free(af->tmp);
		af->tmp = NULL; /* nothing to unlink */
		sqb_afile_abort(af);
		return err;
	}
	(void)fchmod(af->fd, 0644);
	return 0;
}

int sqb_fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			err = -errno;
		close(fd);
	}
	free(copy);
	return err;
}

int sqb_afile_commit(struct sqb_afile *af)
{
	int err;

	if (sqb_fault_enabled("fsync") || fsync(af->fd) < 0) {
		err = sqb_fault_enabled("fsync") ? -EIO : -errno;
		goto fail;
	}
	if (sqb_fault_enabled("rename") || rename(af->tmp, af->path) < 0) {
		err = sqb_fault_enabled("rename") ? -EIO : -errno;
		goto fail;
	}
	free(af->tmp);
	af->tmp = NULL;
	err = sqb_fsync_dir(af->path);
	close(af->fd);
	af->fd = -1;
	free(af->path);
	af->path = NULL;
	return err;
fail:
	sqb_afile_abort(af);
	return err;
}

int sqb_afile_sync(struct sqb_afile *af)
{
	/* the descriptor (and its lock) stays open until abort */
	if (sqb_fault_enabled("fsync") || fsync(af->fd) < 0)
		return sqb_fault_enabled("fsync") ? -EIO : -errno;
	return 0;
}

void sqb_afile_abort(struct sqb_afile *af)
{
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	if (af->tmp)
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	af->tmp = NULL;
	af->path = NULL;
}
