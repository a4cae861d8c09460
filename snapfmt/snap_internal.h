/* Private to snapfmt: on-disk constants and field offsets (docs/format.md),
 * little-endian accessors, and the reader/writer object layouts. */
#ifndef SQB_SNAP_INTERNAL_H
#define SQB_SNAP_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "squib/snapfmt.h"

/* [F-1] magic: 0x89 'S' 'Q' 'B' CR LF SUB LF */
#define SQB_MAGIC "\x89SQB\r\n\x1a\n"
#define SQB_HEADER_SIZE 256u
#define SQB_DIRENT_SIZE 48u
#define SQB_EXTENT_SIZE 40u
#define SQB_REGION_SIZE 32u
#define SQB_WSET_ENTRY_SIZE 16u
#define SQB_DEVICE_HDR_SIZE 24u

/* Header field offsets ([F-10] table). */
enum {
	H_MAGIC = 0,
	H_HEADER_SIZE = 8,
	H_READ_VERSION = 10,
	H_WRITE_VERSION = 12,
	H_ARCH = 14,
	H_HV = 15,
	H_KIND = 16,
	H_ROLE = 17,
	H_RESERVED0 = 18, /* 2 bytes */
	H_GUEST_PAGE = 20,
	H_HOST_PAGE = 24,
	H_FLAGS = 28,
	H_UUID = 32,
	H_PARENT_UUID = 48,
	H_PARENT_DIGEST = 64,
	H_COMPANION_UUID = 80,
	H_COMPANION_DIGEST = 96,
	H_CREATED = 112,
	H_DIR_OFFSET = 120,
	H_DIR_COUNT = 128,
	H_RESERVED1 = 132, /* 4 bytes */
	H_DIR_CHECKSUM = 136,
	H_FILE_SIZE = 144,
	H_PRODUCER = 152, /* 64 bytes */
	H_RESERVED2 = 216, /* 32 bytes */
	H_CHECKSUM = 248,
};

/* Limits ([F-60]). */
#define SQB_MAX_SECTIONS 65536u
#define SQB_MAX_REGIONS 1024u
#define SQB_MAX_REGION_SIZE (1ull << 46) /* 64 TiB */
#define SQB_MAX_CHUNK (1u << 20)	 /* bytes of pages in one data extent */
#define SQB_MIN_CHUNK 4096u
#define SQB_MAX_STORED (SQB_MAX_CHUNK + (SQB_MAX_CHUNK >> 7) + 65536u)
#define SQB_MAX_META_SECTION (64u << 20) /* any non-memory section */
#define SQB_MAX_VCPUS 4096u
#define SQB_MAX_DEVICES 4096u
#define SQB_MAX_KEY 255u
#define SQB_RAW_ALIGN 65536u /* [F-33] RAW data congruent to the guest offset */
#define SQB_DEFAULT_CHUNK 65536u
#define SQB_DEDUP_SHIFT 48
#define SQB_DEDUP_PAGE_MASK ((1ull << SQB_DEDUP_SHIFT) - 1)

#define SQB_SECF_KNOWN_FLAGS SQB_SECF_CRITICAL
#define SQB_XMEM_SIZE 32u
#define SQB_XMEM_XATTR "user.squib.xmem" /* [F-82] the raw file's stamp */

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}
static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* Ask the kernel to start writing [off, off+len) of fd back to disk, without
 * waiting (a hint; a no-op where unsupported). */
#define SQB_WRITEBACK_STEP (8u << 20)
void sqb_start_writeback(int fd, uint64_t off, uint64_t len);

/* Fast test of a whole page (len multiple of 64) for zero bytes. */
int sqb_page_is_zero(const void *p, size_t len);

/* One parsed directory entry. */
struct sqb_dirent {
	uint32_t type;
	uint32_t instance;
	uint16_t version;
	uint16_t min_version;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;
	uint64_t file_pos; /* where the entry itself is, for diagnostics */
	int known;
};

struct sqb_snap {
	int fd;
	int dfd;	 /* extent bytes: fd, or the external raw file (XMEM) */
	char *xpath;	 /* XMEM: the raw file's path */
	uint64_t *xbase; /* XMEM: offset of each region in the raw file */
	char *path;
	struct sqb_snap_info info;
	uint8_t header[SQB_HEADER_SIZE];
	struct sqb_dirent *dir;
	unsigned int ndir;
	uint64_t dir_offset;
	struct sqb_region *regions;
	unsigned int nregions;
	struct sqb_extent **ext; /* per region */
	size_t *next;
	int data_sec;		 /* index of DATA in dir, -1 if none */
	struct sqb_snap *parent;
	uint64_t gen; /* unique per open snapshot: keys each thread's decoded-extent cache */
	int no_index; /* sqb_snap_drop_index(): ext/next freed */
};

/* s or a parent has no page index any more (sqb_snap_drop_index) */
static inline int sqb_snap_indexless(const struct sqb_snap *s)
{
	for (; s; s = s->parent)
		if (s->no_index)
			return 1;
	return 0;
}

/* Section knowledge: which types/versions this library parses. */
struct sqb_section_kind {
	uint32_t type;
	uint16_t version; /* highest version understood */
	int critical;	  /* what writers set */
};
const struct sqb_section_kind *sqb_section_kind(uint32_t type);

/* Fill a diagnostic (no-op when d is NULL); returns err for chaining. */
int sqb_diag_set(struct sqb_diag *d, int err, uint64_t off, const char *section, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));
/* "TYPE[instance]" name of a directory entry. */
const char *sqb_dirent_name(const struct sqb_dirent *e, char *buf, size_t len);

/* Codecs (snap_codec.c). */
size_t sqb_codec_bound(enum sqb_codec c, size_t n);
/* Compress n bytes; returns stored length, or 0 if the output would not be
 * smaller than the input (caller stores verbatim). */
size_t sqb_codec_compress(enum sqb_codec c, int level, const void *src, size_t n, void *dst,
			  size_t cap, void **ctx);
void sqb_codec_ctx_free(enum sqb_codec c, void *ctx);
/* Decompress to exactly out_len bytes, else -SQB_ECODEC. */
int sqb_codec_decompress(enum sqb_codec c, const void *src, size_t n, void *dst, size_t out_len);
/* Like sqb_codec_decompress, but only the first `want` bytes of dst need to
 * be produced (a random page read); the rest of dst is undefined.  dctx
 * (may be NULL) caches a zstd context for the calling thread; free it with
 * sqb_codec_dctx_free(). */
int sqb_codec_decompress_prefix(enum sqb_codec c, const void *src, size_t n, void *dst,
				size_t out_len, size_t want, void **dctx);
void sqb_codec_dctx_free(void *dctx);

uint64_t sqb_xxh64(const void *p, size_t n);
void sqb_xxh128(const void *a, size_t alen, const void *b, size_t blen, struct sqb_digest *out);

/* Verify the checksum of a RAW/COMPRESSED extent and decode it into
 * per-thread scratch (snap_read.c).  Thread-safe. */
/* This thread's partial reads of a stored extent decode it whole (and keep
 * it for the next read of the same extent) instead of the prefix that the
 * read needs: for callers that go on to read the rest of the extent (merge,
 * diff, repack walk a chain in page order).  Returns the previous setting. */
int sqb_read_whole_extents(int on);
/* A new value for sqb_snap.gen. */
uint64_t sqb_snap_new_gen(void);
int sqb_extent_check(sqb_snap *s, unsigned int r, const struct sqb_extent *e,
		     struct sqb_diag *diag);

/* Read the stored bytes of a RAW/COMPRESSED extent into buf (stored_len
 * bytes) and verify their checksum; no decoding.  Thread-safe. */
int sqb_extent_read_stored(sqb_snap *s, unsigned int r, const struct sqb_extent *e, uint8_t *buf,
			   struct sqb_diag *diag);
/* Verify the checksum of stored bytes in memory (same diagnostic as a read:
 * "DATA/PIDX[r] at 0xOFF: ... checksum mismatch"). */
int sqb_extent_sum_check(unsigned int r, const struct sqb_extent *e, const uint8_t *stored,
			 struct sqb_diag *diag);

/* Validate one record list / kv list / device / wset section body. */
int sqb_records_parse(const uint8_t *p, size_t len, struct sqb_record **recs, unsigned int *n,
		      const char *secname, uint64_t base, struct sqb_diag *d);
int sqb_kv_parse(const uint8_t *p, size_t len, struct sqb_kv **kvs, unsigned int *n,
		 const char *secname, uint64_t base, struct sqb_diag *d);

/* Copying stored extents (merge, repack): a page source given to
 * sqb_writer_add_memory_copy may describe a run of pages as the stored
 * bytes of one RAW or COMPRESSED extent of an input, already checksum
 * verified: kinds[i .. i+count) = SQB_PAGE_STORED, the run described by
 * runs[i] (i: the run's first page in the batch), the stored bytes at
 * data + i * guest_page_size.  The writer stores them as they are, with
 * their checksum, instead of classifying and encoding the pages. */
#define SQB_PAGE_STORED 5
struct sqb_stored_run {
	uint32_t count;	     /* pages */
	uint8_t kind, codec; /* of the input extent */
	uint32_t stored_len;
	uint64_t checksum;
};
int sqb_writer_add_memory_copy(sqb_snap_writer *w, uint64_t gpa, uint64_t size,
			       const struct sqb_page_source *src,
			       struct sqb_stored_run *const *runs);
/* Whether an extent (kind, codec, stored_len, page_count) starting at page
 * `first` of the output region may be stored as it is: the output codec is
 * the extent's (RAW and stored chunks for codec none), it stays inside one
 * output chunk and its stored bytes fit its pages. */
int sqb_writer_can_copy(const sqb_snap_writer *w, uint64_t first, const struct sqb_extent *e);
/* Pages per output chunk (extents are cut at multiples of it). */
uint32_t sqb_writer_chunk_pages(const sqb_snap_writer *w);

/* Thread pool: run fn(ctx, i) for i in [0, n) on all workers + caller. */
struct sqb_pool;
int sqb_pool_create(struct sqb_pool **out, unsigned int threads);
void sqb_pool_free(struct sqb_pool *p);
void sqb_pool_run(struct sqb_pool *p, size_t n, void (*fn)(void *ctx, size_t i), void *ctx);
unsigned int sqb_pool_threads(const struct sqb_pool *p);
/* The writer's pool, for a page source that decodes in parallel between the
 * writer's own pool runs (sqb_writer_add_memory_src calls get serially). */
struct sqb_pool *sqb_writer_pool(sqb_snap_writer *w);

#endif
