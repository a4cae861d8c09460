/* snapfmt: squib's versioned snapshot container (normative spec: docs/format.md).
 *
 *   file  +--------------------------------------------------------------+
 *         | header (256 B): magic, versions, arch, page sizes, identity,  |
 *         |                 parent identity, directory location, checksum |
 *         +--------------------------------------------------------------+
 *         | sections, each checksummed in the directory:                 |
 *         |   MEMR region table        PIDX[r] extents of region r       |
 *         |   VCPU[i] register records INTC irqchip/clock records        |
 *         |   DEVS[d] device state     CONF/META key=value  WSET  LINK    |
 *         |   DATA  extents' bytes (RAW 64 KiB-congruent, COMPRESSED)    |
 *         +--------------------------------------------------------------+
 *         | directory: (type, instance, version, flags, off, len, xxh3)  |
 *         +--------------------------------------------------------------+
 *
 *   region r, guest pages 0..N-1, covered exactly once by extents in order:
 *     [ZERO 0-15][RAW 16-31 @off][COMPRESSED 32-47 zstd @off][DEDUP 48 -> r:17]
 *     [PARENT 49-99: same page in the parent snapshot, identified by
 *      uuid + digest; never a filesystem hole]
 *
 * Readers are thread-safe once opened: any number of threads may call
 * sqb_snap_read() / sqb_snap_extent_decode() on one sqb_snap concurrently.
 * A writer is used by one thread (it runs its own compression workers).
 */
#ifndef SQUIB_SNAPFMT_H
#define SQUIB_SNAPFMT_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQB_SNAP_FORMAT_VERSION 1 /* version this library reads and writes */

enum sqb_arch { SQB_ARCH_X86_64 = 1, SQB_ARCH_AARCH64 = 2 };
enum sqb_hv { SQB_HV_KVM = 1, SQB_HV_HVF = 2 };
enum sqb_snap_kind { SQB_SNAP_FULL = 1, SQB_SNAP_DIFF = 2 };
/* A snapshot may be one file (COMPLETE) or a pair tied by identity:
 * a STATE file (vCPUs, devices, config) and a MEMORY file (guest RAM). */
enum sqb_snap_role { SQB_ROLE_COMPLETE = 0, SQB_ROLE_STATE = 1, SQB_ROLE_MEMORY = 2 };
enum sqb_codec { SQB_CODEC_NONE = 0, SQB_CODEC_LZ4 = 1, SQB_CODEC_ZSTD = 2 };

enum sqb_extent_kind {
	SQB_EXT_ZERO = 0,	/* pages read as zero */
	SQB_EXT_PARENT = 1,	/* unchanged since the parent snapshot */
	SQB_EXT_RAW = 2,	/* uncompressed bytes in this file (mmap-able) */
	SQB_EXT_COMPRESSED = 3, /* one lz4/zstd chunk in this file */
	SQB_EXT_DEDUP = 4,	/* same bytes as earlier stored pages of this file */
};

/* Section types: four ASCII characters read as a little-endian u32. */
#define SQB_FOURCC(a, b, c, d)                                                                     \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define SQB_SEC_MEMR SQB_FOURCC('M', 'E', 'M', 'R') /* region table */
#define SQB_SEC_PIDX SQB_FOURCC('P', 'I', 'D', 'X') /* page index of one region */
#define SQB_SEC_DATA SQB_FOURCC('D', 'A', 'T', 'A') /* extent bytes */
#define SQB_SEC_VCPU SQB_FOURCC('V', 'C', 'P', 'U') /* one vCPU's register records */
#define SQB_SEC_INTC SQB_FOURCC('I', 'N', 'T', 'C') /* interrupt controller + clocks */
#define SQB_SEC_DEVS SQB_FOURCC('D', 'E', 'V', 'S') /* one device's state */
#define SQB_SEC_CONF SQB_FOURCC('C', 'O', 'N', 'F') /* machine config, key=value */
#define SQB_SEC_META SQB_FOURCC('M', 'E', 'T', 'A') /* free metadata, key=value */
#define SQB_SEC_WSET SQB_FOURCC('W', 'S', 'E', 'T') /* working set page ranges */
#define SQB_SEC_LINK SQB_FOURCC('L', 'I', 'N', 'K') /* path hints: parent, companion, raw */
#define SQB_SEC_XMEM SQB_FOURCC('X', 'M', 'E', 'M') /* memory bytes in an external raw file */

#define SQB_SECF_CRITICAL 0x1u /* a reader that does not understand it MUST refuse */

/* Register and controller record tags (docs/format.md, "Record lists"). */
enum sqb_record_tag {
	SQB_REC_X86_REGS = 0x0101,
	SQB_REC_X86_SREGS = 0x0102,
	SQB_REC_X86_XSAVE = 0x0103,
	SQB_REC_X86_XCRS = 0x0104,
	SQB_REC_X86_MSRS = 0x0105,
	SQB_REC_X86_LAPIC = 0x0106,
	SQB_REC_X86_EVENTS = 0x0107,
	SQB_REC_X86_DEBUGREGS = 0x0108,
	SQB_REC_X86_MPSTATE = 0x0109,
	SQB_REC_X86_CPUID = 0x010a,
	SQB_REC_X86_TSC_KHZ = 0x010b,
	SQB_REC_ARM64_CORE = 0x0201,
	SQB_REC_ARM64_FPSIMD = 0x0202,
	SQB_REC_ARM64_SYSREGS = 0x0203,
	SQB_REC_ARM64_ICC = 0x0204,
	SQB_REC_ARM64_PAUTH = 0x0205,
	SQB_REC_ARM64_VTIMER = 0x0206,
	SQB_REC_ARM64_POWER = 0x0207,
	SQB_REC_KVM_PIC_MASTER = 0x0301,
	SQB_REC_KVM_PIC_SLAVE = 0x0302,
	SQB_REC_KVM_IOAPIC = 0x0303,
	SQB_REC_KVM_PIT = 0x0304,
	SQB_REC_KVM_CLOCK = 0x0305,
	SQB_REC_KVM_VGICV3 = 0x0306, /* arm64 KVM GICv3 registers, format.md 8.3.2 */
	SQB_REC_HVF_GIC_STATE = 0x0401,
};
#define SQB_RECF_CRITICAL 0x1u

struct sqb_uuid {
	uint8_t b[16];
};
struct sqb_digest {
	uint8_t b[16]; /* XXH3-128 of header and directory, docs/format.md [F-20] */
};

/* -------------------------------------------------------------------------
 * Reading
 */
typedef struct sqb_snap sqb_snap;

struct sqb_snap_info {
	uint16_t read_version;
	uint16_t write_version;
	int read_only; /* written by a newer write-version: may be read, not rewritten */
	enum sqb_arch arch;
	enum sqb_hv hv;
	enum sqb_snap_kind kind;
	enum sqb_snap_role role;
	uint32_t guest_page_size;
	uint32_t host_page_size;
	struct sqb_uuid uuid;
	struct sqb_uuid parent_uuid;	/* zero for a full snapshot */
	struct sqb_digest parent_digest;
	struct sqb_uuid companion_uuid; /* the other file of a STATE/MEMORY pair */
	struct sqb_digest companion_digest;
	struct sqb_digest digest;	/* this file's content identity */
	uint64_t created_ns;		/* CLOCK_REALTIME at creation */
	uint64_t file_size;
	char producer[65];
};

#define SQB_OPEN_OPTS_VERSION 1
struct sqb_open_opts {
	unsigned int version;
	/* Candidate files for parents, tried in order before the hint stored in
	 * the LINK section (relative to the child's folder).  A candidate is
	 * accepted only if its uuid and digest match what the child records. */
	const char *const *parent_paths;
	unsigned int n_parent_paths;
	int no_parents;		/* open alone: PARENT extents then read as -SQB_EPARENT */
	unsigned int max_chain; /* 0 = 64 */
	/* A file with an XMEM section: its raw memory file (NULL: the LINK
	 * hint, relative to the file's folder).  Parents use their hints. */
	const char *external_path;
	/* XMEM: open the index without the raw file (its extents are then
	 * unreadable: reads fail with -EBADF). */
	int no_external;
};
#define SQB_OPEN_OPTS_INIT { SQB_OPEN_OPTS_VERSION, NULL, 0, 0, 0, NULL, 0 }

/* Open and validate header, directory, region table and page indexes (every
 * checksum is verified before the section is parsed; every count and offset
 * is bounded).  Extent data is checked when read or by sqb_snap_verify(). */
int sqb_snap_open(sqb_snap **out, const char *path, const struct sqb_open_opts *opts,
		  struct sqb_diag *diag);
void sqb_snap_free(sqb_snap *s); /* also frees the parents it opened; NULL ok */
/* Free the page indexes of s and of its parents, for a caller that keeps
 * the handle open only for its files (descriptors, paths, info): a
 * finished mmap restore holding its lease (docs/fleet.md "Load
 * leftovers").  Whatever needs an index answers -SQB_ESTATE from then on
 * (read, extent lookup, verify, compare, merge, diff, repack, export);
 * sqb_snap_extents() gives NULL, sqb_snap_extent_count() and
 * sqb_snap_mem_stats() nothing. */
void sqb_snap_drop_index(sqb_snap *s);

const struct sqb_snap_info *sqb_snap_get_info(const sqb_snap *s);
sqb_snap *sqb_snap_parent(const sqb_snap *s); /* NULL for a full snapshot */
const char *sqb_snap_path(const sqb_snap *s);
int sqb_snap_fd(const sqb_snap *s); /* for mmap of RAW extents; owned by s */
/* The squib file itself (differs from sqb_snap_fd() with XMEM). */
int sqb_snap_container_fd(const sqb_snap *s);
/* The external raw memory file's path (XMEM), else NULL. */
const char *sqb_snap_external_path(const sqb_snap *s);

struct sqb_section_info {
	uint32_t type;
	uint32_t instance;
	uint16_t version;
	uint16_t min_version;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;
	int known; /* this library understands the type */
};
unsigned int sqb_snap_section_count(const sqb_snap *s);
int sqb_snap_section_info(const sqb_snap *s, unsigned int idx, struct sqb_section_info *out);
/* Index of section (type, instance), or -SQB_ENOTFOUND.  Extension types
 * (unknown to this library) are found too; a standard type is found only
 * when this library understands its min_version. */
int sqb_snap_section_find(const sqb_snap *s, uint32_t type, uint32_t instance);
/* Read a whole section into a malloc'd buffer after verifying its checksum. */
int sqb_snap_section_read(const sqb_snap *s, unsigned int idx, void **data, size_t *len,
			  struct sqb_diag *diag);
/* "MEMR", or "?0x12345678" for an unprintable type. buf >= 16 bytes. */
const char *sqb_section_type_name(uint32_t type, char *buf);

struct sqb_region {
	uint64_t gpa;
	uint64_t size; /* multiple of guest_page_size */
	uint32_t flags;
};
unsigned int sqb_snap_region_count(const sqb_snap *s);
int sqb_snap_region(const sqb_snap *s, unsigned int r, struct sqb_region *out);

struct sqb_extent {
	uint64_t first_page; /* index within the region */
	uint32_t page_count;
	uint8_t kind;	/* enum sqb_extent_kind */
	uint8_t codec;	/* COMPRESSED: enum sqb_codec */
	uint64_t data;	/* RAW/COMPRESSED: file offset; DEDUP: source region<<48 | page */
	uint32_t stored_len;
	uint64_t checksum; /* XXH3-64 of the stored bytes (RAW/COMPRESSED) */
};
size_t sqb_snap_extent_count(const sqb_snap *s, unsigned int r);
const struct sqb_extent *sqb_snap_extents(const sqb_snap *s, unsigned int r);
/* Index of the extent that holds page `page` of region r (binary search). */
int sqb_snap_extent_find(const sqb_snap *s, unsigned int r, uint64_t page, size_t *idx);
/* Region index and page number of a guest-physical address. */
int sqb_snap_locate(const sqb_snap *s, uint64_t gpa, unsigned int *r, uint64_t *page);

/* Produce the page_count * guest_page_size bytes of extent e of region r in
 * dst: verifies the checksum before decoding, resolves DEDUP and PARENT. */
int sqb_snap_extent_decode(sqb_snap *s, unsigned int r, const struct sqb_extent *e, void *dst,
			   struct sqb_diag *diag);
/* Read guest memory [gpa, gpa+len) as of this snapshot (resolving chains).
 * The range must lie inside one region. */
int sqb_snap_read(sqb_snap *s, uint64_t gpa, void *buf, size_t len, struct sqb_diag *diag);

/* Compare guest pages [gpa, gpa + npages pages) of a and b (inside one region
 * of each): differs[i] = 1 where page i's bytes differ, else 0.  Pages with
 * skip[i] != 0 (skip may be NULL) are taken as equal without reading.  ZERO
 * against ZERO, and RAW/COMPRESSED extents with the same pages, kind, codec,
 * length and checksum whose stored bytes are identical, are equal without
 * decoding (the stored bytes are read and checksum-verified); all else is
 * decoded as by sqb_snap_read and compared byte by byte.  threads: 0 = one per
 * core.  On error *side says which snapshot (0 = a, 1 = b) the diag is about. */
int sqb_snap_compare(sqb_snap *a, sqb_snap *b, uint64_t gpa, uint64_t npages,
		     const uint8_t *skip, uint8_t *differs, unsigned int threads, int *side,
		     struct sqb_diag *diag);

/* [F-46] Check that state and mem are the two files of one snapshot (each
 * names the other's uuid; the state file names the memory file's digest). */
int sqb_snap_check_pair(const sqb_snap *state, const sqb_snap *mem, struct sqb_diag *diag);

/* Full verification: header, directory, every section and extent checksum,
 * index invariants, zero filler, and (with SQB_VERIFY_CHAIN) every parent.
 * cb is called once per problem (may be NULL); returns 0 if sound, else the
 * first error.  Stops after max_problems (0 = 100). */
#define SQB_VERIFY_CHAIN 0x1u
/* Check every RAW/COMPRESSED extent's checksum over its stored bytes, but
 * do not decode it: everything else is as above ([F-23] makes the checksum
 * the integrity check; decoding additionally proves that each chunk decodes
 * to exactly its pages, which only a faulty writer can break). */
#define SQB_VERIFY_NO_DECODE 0x2u
typedef void (*sqb_verify_cb)(void *ctx, int err, const struct sqb_diag *diag);
int sqb_snap_verify(sqb_snap *s, unsigned int flags, unsigned int max_problems, sqb_verify_cb cb,
		    void *ctx);

/* Page statistics of one snapshot (not its parents). */
struct sqb_mem_stats {
	uint64_t pages, zero, parent, raw, compressed, dedup;
	uint64_t stored_bytes;	  /* bytes of RAW + COMPRESSED data */
	uint64_t extents;
};
void sqb_snap_mem_stats(const sqb_snap *s, struct sqb_mem_stats *out);

/* Record lists (VCPU, INTC sections). */
struct sqb_record {
	uint16_t tag;
	uint16_t flags;
	uint32_t len;
	const void *data;
};
/* Parse a record-list section.  *recs points into *backing (free both with
 * free()).  Unknown critical records yield -SQB_EUNSUPPORTED. */
int sqb_snap_records(const sqb_snap *s, uint32_t type, uint32_t instance, struct sqb_record **recs,
		     unsigned int *n, void **backing, struct sqb_diag *diag);
unsigned int sqb_snap_vcpu_count(const sqb_snap *s);
/* Find a record by tag in a parsed list; NULL if absent. */
const struct sqb_record *sqb_record_find(const struct sqb_record *recs, unsigned int n, uint16_t tag);
const char *sqb_record_tag_name(uint16_t tag); /* "X86_REGS", or NULL */

/* Key/value lists (CONF, META). */
struct sqb_kv {
	const char *key; /* NUL-terminated */
	const char *value; /* NUL-terminated copy; value_len excludes the NUL */
	uint32_t value_len;
};
int sqb_snap_kv(const sqb_snap *s, uint32_t type, struct sqb_kv **kvs, unsigned int *n,
		void **backing, struct sqb_diag *diag);

struct sqb_device {
	uint32_t type;
	uint32_t version;
	uint64_t bus_addr;
	uint32_t irq;
	char id[64];
	const void *state;
	size_t state_len;
};
unsigned int sqb_snap_device_count(const sqb_snap *s);
/* The n-th DEVS section; dev->state points into *backing (free()). */
int sqb_snap_device(const sqb_snap *s, unsigned int n, struct sqb_device *dev, void **backing,
		    struct sqb_diag *diag);

struct sqb_wset_range {
	uint64_t gpa;
	uint32_t pages;
};
int sqb_snap_working_set(const sqb_snap *s, struct sqb_wset_range **ranges, size_t *n,
			 struct sqb_diag *diag);

/* -------------------------------------------------------------------------
 * Writing
 */
typedef struct sqb_snap_writer sqb_snap_writer;

#define SQB_WRITE_OPTS_VERSION 1
struct sqb_write_opts {
	unsigned int version;
	enum sqb_arch arch;
	enum sqb_hv hv;
	enum sqb_snap_role role;
	uint32_t guest_page_size; /* 4096 or 16384 */
	uint32_t host_page_size;  /* 0: this host's */
	enum sqb_codec codec;
	int level;		  /* zstd level (0: 3); lz4 acceleration (0: 1) */
	uint32_t chunk_size;	  /* bytes per data extent, 0: 64 KiB; 4 KiB..1 MiB */
	int dedup;		  /* store repeated pages once */
	unsigned int threads;	  /* compression threads, 0: online CPUs */
	/* Diff: the parent's identity is taken from this open snapshot. */
	const sqb_snap *parent;
	const char *parent_path_hint; /* NULL: sqb_snap_path(parent) */
	const struct sqb_uuid *uuid;  /* NULL: random */
	const struct sqb_uuid *companion_uuid;
	const struct sqb_digest *companion_digest;
	const char *companion_path_hint;
	const char *producer;	      /* NULL: "squib <version>" */
	/* Diff with codec none: data runs shorter than this many bytes are
	 * packed as stored chunks rather than 64 KiB-congruent RAW extents
	 * ([F-33a]); 0: 64 KiB; 1: never pack. */
	uint32_t pack_below;
	/* finish fsyncs the file but leaves it under a temporary name
	 * (sqb_writer_temp_path) for a caller that moves several files into
	 * place itself with one folder fsync; see sqb_writer_disown_temp. */
	int defer_commit;
	/* External raw memory (format.md 6.4): the memory bytes go to this raw
	 * file, region after region at their Firecracker offsets (zero pages
	 * are holes), and this file keeps the index and checksums (XMEM).
	 * Forces codec none, no dedup, 1 MiB extents by default. */
	const char *external_path;
};
#define SQB_WRITE_OPTS_INIT                                                                        \
	{ SQB_WRITE_OPTS_VERSION, SQB_ARCH_X86_64, SQB_HV_KVM, SQB_ROLE_COMPLETE, 4096 }

/* Writes go to a temporary file beside path; sqb_writer_finish() fsyncs and
 * renames it over path.  On any failure, or sqb_writer_free() without
 * finish, the temporary is removed and path keeps its previous content. */
int sqb_writer_open(sqb_snap_writer **out, const char *path, const struct sqb_write_opts *opts);
void sqb_writer_free(sqb_snap_writer *w);
/* defer_commit: the finished, fsynced temporary file (NULL before finish). */
const char *sqb_writer_temp_path(const sqb_snap_writer *w);
/* defer_commit: the caller renamed the temporary; free no longer removes it. */
void sqb_writer_disown_temp(sqb_snap_writer *w);
/* The same two for the external raw memory file (external_path). */
const char *sqb_writer_external_temp_path(const sqb_snap_writer *w);
void sqb_writer_disown_external_temp(sqb_snap_writer *w);

/* Guest memory from a host buffer.  dirty: NULL, or one bit per guest page
 * (bit i%64 of word i/64 = page i of this region); in a diff, clear bits
 * become PARENT extents.  A full snapshot takes dirty = NULL. */
int sqb_writer_add_memory(sqb_snap_writer *w, uint64_t gpa, uint64_t size, const void *mem,
			  const uint64_t *dirty);

/* Guest memory from any source (another snapshot, a raw file, a chain). */
enum sqb_page_kind { SQB_PAGE_DATA = 0, SQB_PAGE_ZERO = 1, SQB_PAGE_PARENT = 2 };
struct sqb_page_source {
	/* Describe pages [first, first+n) of the region: kinds[i] for each, and
	 * for DATA pages their bytes at (*data + i * guest_page_size).  *data may
	 * point into the source's own memory or to scratch (n pages, provided). */
	int (*get)(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		   uint8_t *kinds);
	void *ctx;
};
int sqb_writer_add_memory_src(sqb_snap_writer *w, uint64_t gpa, uint64_t size,
			      const struct sqb_page_source *src);

int sqb_writer_add_records(sqb_snap_writer *w, uint32_t type, uint32_t instance,
			   const struct sqb_record *recs, unsigned int n);
int sqb_writer_add_vcpu(sqb_snap_writer *w, uint32_t index, const struct sqb_record *recs,
			unsigned int n);
int sqb_writer_set_kv(sqb_snap_writer *w, uint32_t type, const char *key, const void *value,
		      uint32_t len);
int sqb_writer_add_device(sqb_snap_writer *w, const struct sqb_device *dev);
int sqb_writer_set_working_set(sqb_snap_writer *w, const struct sqb_wset_range *r, size_t n);
/* Any section, including ones this library does not know (extensions). */
int sqb_writer_add_section(sqb_snap_writer *w, uint32_t type, uint32_t instance, uint16_t version,
			   uint16_t min_version, uint32_t flags, const void *data, size_t len);
/* Copy every non-memory section of s (vCPUs, devices, config ...). */
int sqb_writer_copy_state(sqb_snap_writer *w, const sqb_snap *s);

int sqb_writer_finish(sqb_snap_writer *w, struct sqb_uuid *uuid, struct sqb_digest *digest);
/* Set the companion's digest (and uuid when not NULL) before finish: a
 * state file opened while its memory file is still being written (a
 * background create) learns the memory file's digest last. */
int sqb_writer_set_companion(sqb_snap_writer *w, const struct sqb_uuid *uuid,
			     const struct sqb_digest *digest);

/* Writer statistics so far (pages by kind, bytes written). */
struct sqb_write_stats {
	uint64_t pages, zero, parent, raw, compressed, dedup;
	uint64_t data_in;   /* bytes of DATA pages given to the codec */
	uint64_t data_out;  /* bytes stored for them */
};
void sqb_writer_stats(const sqb_snap_writer *w, struct sqb_write_stats *out);

/* -------------------------------------------------------------------------
 * Whole-snapshot operations (snap_ops.c)
 */
/* Flatten s and its parents into a full snapshot at out.  With
 * SQB_MERGE_KEEP_BASE, squash the chain above its bottom layer into one diff
 * whose parent is that bottom layer.  Memory options come from opts (arch,
 * hv, page sizes and role are taken from s).  The output gets a new uuid;
 * its companion fields and LINK[1] come from opts only (s's are dropped:
 * the old state file does not pair with the new content). */
#define SQB_MERGE_KEEP_BASE 0x1u
int sqb_snap_merge(const char *out, sqb_snap *s, const struct sqb_write_opts *opts,
		   unsigned int flags);
/* As sqb_snap_merge; uuid and digest (each may be NULL) receive the
 * output's identity, e.g. to write a state file paired with it ([F-46]). */
int sqb_snap_merge_ident(struct sqb_uuid *uuid, struct sqb_digest *digest, const char *out,
			 sqb_snap *s, const struct sqb_write_opts *opts, unsigned int flags);
/* Write b as a diff against a (same regions and page size required). */
int sqb_snap_write_diff(const char *out, sqb_snap *a, sqb_snap *b,
			const struct sqb_write_opts *opts);
/* Re-encode s (codec, dedup, chunk size from opts; kind and parent kept). */
int sqb_snap_repack(const char *out, sqb_snap *s, const struct sqb_write_opts *opts);
/* As sqb_snap_repack, returning the output's identity (see _merge_ident). */
int sqb_snap_repack_ident(struct sqb_uuid *uuid, struct sqb_digest *digest, const char *out,
			  sqb_snap *s, const struct sqb_write_opts *opts);
/* Wrap a raw memory file (regions concatenated in order, Firecracker's
 * memory file layout) into a full snapshot. */
int sqb_snap_import_raw(const char *out, const char *raw_path, const struct sqb_region *layout,
			unsigned int n, const struct sqb_write_opts *opts);
/* Write dense raw memory of region r (or all regions in order, r < 0). */
int sqb_snap_export_raw(sqb_snap *s, const char *out, int r);

/* Helpers. */
const char *sqb_codec_name(enum sqb_codec c);
const char *sqb_extent_kind_name(enum sqb_extent_kind k);
void sqb_uuid_format(const struct sqb_uuid *u, char out[37]);
void sqb_digest_format(const struct sqb_digest *d, char out[33]);
int sqb_uuid_is_zero(const struct sqb_uuid *u);

#ifdef __cplusplus
}
#endif
#endif
