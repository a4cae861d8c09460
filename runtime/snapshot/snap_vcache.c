/* Verification remembered across loads (docs/snapshots.md "Verification
 * cache"): after a File mmap load has verified every RAW extent of a
 * snapshot chain, an entry per layer records the data file's identity
 * (device, inode, size, mtime, ctime) and the layer's content digest.  A
 * later load of the same, unchanged files maps them without reading them
 * again.  "Unchanged": any write to a file moves its ctime, which no user
 * can set back; an entry is only made when the file's ctime lies before the
 * verification began (a write racing with it is never remembered). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "snap_priv.h"

#define VC_LINE_MAX 200

/* The cache folder: $SQB_VERIFY_CACHE ("off" disables), else
 * /run/squib/verified for root, else $XDG_RUNTIME_DIR/squib-verified.  It
 * must be ours and writable by nobody else; it is created 0700. */
static int vc_dir(char *out, size_t n)
{
	const char *env = getenv("SQB_VERIFY_CACHE"), *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (env && !strcmp(env, "off"))
		return -1;
	if (env && *env)
		snprintf(out, n, "%s", env);
	else if (geteuid() == 0)
		snprintf(out, n, "/run/squib/verified");
	else if (xdg && *xdg)
		snprintf(out, n, "%s/squib-verified", xdg);
	else
		return -1;
	if (stat(out, &st) < 0) {
		char parent[512];
		char *slash;

		snprintf(parent, sizeof(parent), "%s", out);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			(void)mkdir(parent, 0700);
		}
		if (mkdir(out, 0700) < 0 && errno != EEXIST)
			return -1;
		if (stat(out, &st) < 0)
			return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return -1; /* somebody else could write entries: do not trust it */
	return 0;
}

static void vc_line(const struct stat *st, const sqb_snap *s, char *out, size_t n)
{
	char dg[33];

	sqb_digest_format(&sqb_snap_get_info(s)->digest, dg);
	snprintf(out, n, "v1 %" PRIu64 " %lld.%09ld %lld.%09ld %s\n", (uint64_t)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
		 st->st_ctim.tv_nsec, dg);
}

static int vc_path(const char *dir, const struct stat *st, char *out, size_t n)
{
	return snprintf(out, n, "%s/%llx-%llx", dir, (unsigned long long)st->st_dev,
			(unsigned long long)st->st_ino) < (int)n
		   ? 0
		   : -1;
}

static int layer_hit(const char *dir, const sqb_snap *s)
{
	char path[600], want[VC_LINE_MAX], have[VC_LINE_MAX] = "";
	struct stat st;
	FILE *f;

	if (fstat(sqb_snap_fd(s), &st) < 0 || vc_path(dir, &st, path, sizeof(path)))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(have, sizeof(have), f))
		have[0] = 0;
	fclose(f);
	vc_line(&st, s, want, sizeof(want));
	return !strcmp(have, want);
}

int sqb_snap_vcache_hit(const sqb_snap *s)
{
	char dir[512];

	if (vc_dir(dir, sizeof(dir)))
		return 0;
	for (const sqb_snap *p = s; p; p = sqb_snap_parent(p))
		if (!layer_hit(dir, p))
			return 0;
	return 1;
}

void sqb_snap_vcache_record(const sqb_snap *s, const struct timespec *began)
{
	char dir[512];

	if (vc_dir(dir, sizeof(dir)))
		return;
	for (const sqb_snap *p = s; p; p = sqb_snap_parent(p)) {
		char path[600], tmp[620], line[VC_LINE_MAX];
		struct stat st;
		int fd;

		if (fstat(sqb_snap_fd(p), &st) < 0 || vc_path(dir, &st, path, sizeof(path)))
			continue;
		/* changed while (or after) it was verified: never remember it */
		if (st.st_ctim.tv_sec > began->tv_sec ||
		    (st.st_ctim.tv_sec == began->tv_sec && st.st_ctim.tv_nsec >= began->tv_nsec))
			continue;
		vc_line(&st, p, line, sizeof(line));
		/* a cache: no fsync (a lost or torn entry only costs a verify) */
		snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			continue;
		if (sqb_pwrite_full(fd, line, strlen(line), 0) || rename(tmp, path))
			unlink(tmp);
		close(fd);
	}
}

int sqb_snap_vcache_claim(const sqb_snap *s, int wait_ms)
{
	char dir[512], path[620];
	struct timespec nap = {0, 2 * 1000 * 1000}, now, end;
	struct stat st;
	int fd;

	if (vc_dir(dir, sizeof(dir)))
		return -ENOENT;
	if (fstat(sqb_snap_fd(s), &st) < 0)
		return -errno;
	if (vc_path(dir, &st, path, sizeof(path) - 5))
		return -ENAMETOOLONG;
	/* "<dev>-<ino>.lock" beside the entry, never removed (an unlink would
	 * race with a waiter's open); empty, and gone with /run at boot */
	strcat(path, ".lock");
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += wait_ms / 1000;
	end.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int err = -errno;

			close(fd);
			return err;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) {
			close(fd);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	return fd;
}
