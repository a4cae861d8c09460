/* Shared helpers of the restore tests: build full snapshots and 3-deep diff
 * chains from snapfmt's synthetic memory, read the reference bytes with
 * sqb_snap_read(), and find out whether userfaultfd is usable here. */
#ifndef SQB_RS_TEST_UTIL_H
#define SQB_RS_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"

#define RT_R0_GPA 0x0ull
#define RT_R1_GPA 0x100000000ull

struct rt_snap {
	char path[4][160]; /* base, diff1, diff2, diff3 */
	int depth;	   /* 0: full */
	sqb_snap *s;	   /* newest layer, parents opened */
	uint64_t size[2];
	uint8_t *ref[2]; /* sqb_snap_read() of each region */
};

static inline int rt_write(const char *path, enum sqb_codec codec, const sqb_snap *parent,
			   const uint8_t *mem, const uint64_t *size, const uint64_t *const *dirty)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	o.codec = codec;
	o.dedup = 1;
	o.parent = parent;
	if ((err = sqb_writer_open(&w, path, &o)))
		return err;
	err = sqb_writer_add_memory(w, RT_R0_GPA, size[0], mem, dirty ? dirty[0] : NULL);
	if (!err)
		err = sqb_writer_add_memory(w, RT_R1_GPA, size[1], mem + size[0],
					    dirty ? dirty[1] : NULL);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

/* A full snapshot (depth 0) or a base plus `depth` diffs, of two regions. */
static inline int rt_make(struct rt_snap *t, const char *dir, const char *tag, enum sqb_codec codec,
			  int depth, uint64_t s0, uint64_t s1, uint64_t seed)
{
	uint64_t size[2] = {s0, s1};
	uint8_t *mem = sqbt_pattern_mem(s0 + s1, 4096, seed);
	uint64_t *dirty[2] = {calloc(s0 / 4096 / 64 + 1, 8), calloc(s1 / 4096 / 64 + 1, 8)};
	sqb_snap *layer = NULL;
	int err;

	memset(t, 0, sizeof(*t));
	t->depth = depth;
	t->size[0] = s0;
	t->size[1] = s1;
	for (int i = 0; i <= depth; i++) {
		snprintf(t->path[i], sizeof(t->path[i]), "%s/%s-%d.sqb", dir, tag, i);
		if (i) {
			/* every diff changes pages in both regions, some to zero */
			memset(dirty[0], 0, (s0 / 4096 / 64 + 1) * 8);
			memset(dirty[1], 0, (s1 / 4096 / 64 + 1) * 8);
			sqbt_mutate(mem, s0, 4096, (unsigned)i, dirty[0]);
			sqbt_mutate(mem + s0, s1, 4096, (unsigned)i + 50, dirty[1]);
		}
		err = rt_write(t->path[i], codec, layer, mem, size,
			       i ? (const uint64_t *const *)dirty : NULL);
		sqb_snap_free(layer);
		layer = NULL;
		if (err || (err = sqb_snap_open(&layer, t->path[i], NULL, NULL)))
			goto out;
	}
	t->s = layer;
	for (int r = 0; r < 2; r++) {
		t->ref[r] = malloc(size[r]);
		if ((err =
			 sqb_snap_read(t->s, r ? RT_R1_GPA : RT_R0_GPA, t->ref[r], size[r], NULL)))
			goto out;
	}
	/* the snapshot must hold what the generator made */
	if (memcmp(t->ref[0], mem, s0) || memcmp(t->ref[1], mem + s0, s1))
		err = -EIO;
out:
	free(mem);
	free(dirty[0]);
	free(dirty[1]);
	return err;
}

static inline void rt_free(struct rt_snap *t)
{
	sqb_snap_free(t->s);
	free(t->ref[0]);
	free(t->ref[1]);
	t->s = NULL;
}

/* 1 if this kernel lets us use userfaultfd with REMOVE events. */
static inline int rt_uffd_usable(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int ok;

	if (fd < 0)
		return 0;
	ok = !ioctl(fd, UFFDIO_API, &api);
	close(fd);
	return ok;
}

/* Offset in the file of the first COMPRESSED (or RAW) extent's stored bytes
 * of region 0 of s, and the guest address of its first page. */
static inline int rt_find_stored(sqb_snap *s, int kind, uint64_t *file_off, uint64_t *gpa)
{
	const struct sqb_extent *e = sqb_snap_extents(s, 0);

	for (size_t i = 0; i < sqb_snap_extent_count(s, 0); i++)
		if (e[i].kind == kind && e[i].stored_len > 64) {
			*file_off = e[i].data;
			*gpa = RT_R0_GPA + e[i].first_page * 4096;
			return 0;
		}
	return -1;
}

static inline int rt_flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1)
		return -1;
	b ^= 0x5a;
	if (pwrite(fd, &b, 1, (off_t)off) != 1)
		return -1;
	close(fd);
	return 0;
}

#endif
