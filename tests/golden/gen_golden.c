/* Generates tests/golden/: valid snapshots written by libsnapfmt (fixed
 * uuids and creation time, so reruns give the same bytes for the same zstd
 * and lz4 versions) and invalid ones derived from them by one planted fault
 * each, listed with the expected error in invalid.txt (docs/format.md).
 *
 *   gen_golden <dir>        writes <dir>/valid/, <dir>/invalid/, <dir>/invalid.txt
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "squib/snapfmt.h"
#include "snap_patch.h"

static char dir[512];
static FILE *manifest;

static void die(const char *what, int err)
{
	fprintf(stderr, "gen_golden: %s: %s\n", what, sqb_strerror(err));
	exit(1);
}

static const char *vpath(const char *name)
{
	static char p[2][640];
	static int k;

	k ^= 1;
	snprintf(p[k], sizeof(p[k]), "%s/valid/%s", dir, name);
	return p[k];
}

static struct sqb_write_opts opts(enum sqb_codec codec, uint8_t uuid_byte)
{
	static struct sqb_uuid u[256];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;

	memset(u[uuid_byte].b, uuid_byte, 16);
	u[uuid_byte].b[6] = 0x40 | (uuid_byte & 0xf);
	o.codec = codec;
	o.host_page_size = 4096;
	o.threads = 1;
	o.uuid = &u[uuid_byte];
	o.producer = "squib golden generator";
	return o;
}

static void small(const char *name, struct sqb_write_opts o, const char *parent, const char *hint)
{
	sqb_snap *p = NULL;
	int err;

	if (parent && (err = sqb_snap_open(&p, vpath(parent), NULL, NULL)))
		die(parent, err);
	if ((err = sqbt_write_small(vpath(name), &o, p, hint ? hint : parent, 1)))
		die(name, err);
	sqb_snap_free(p);
	if (sqbt_normalize(vpath(name)))
		die(name, -EIO);
}

/* STATE + MEMORY pair bound by the companion identity. */
static void pair(void)
{
	struct sqb_write_opts o = opts(SQB_CODEC_LZ4, 0x60);
	sqb_snap_writer *w;
	struct sqb_uuid su;
	struct sqb_digest sd;
	sqb_snap *s;
	uint8_t mem[4 * 4096];
	uint64_t seed = 5;
	int err;

	o.role = SQB_ROLE_STATE;
	if ((err = sqb_writer_open(&w, vpath("pair-state.sqb"), &o)) ||
	    (err = sqbt_add_state(w, o.arch)) || (err = sqb_writer_finish(w, NULL, NULL)))
		die("pair-state", err);
	sqb_writer_free(w);
	if (sqbt_normalize(vpath("pair-state.sqb")))
		die("pair-state", -EIO);
	if ((err = sqb_snap_open(&s, vpath("pair-state.sqb"), NULL, NULL)))
		die("pair-state", err);
	su = sqb_snap_get_info(s)->uuid;
	sd = sqb_snap_get_info(s)->digest;
	sqb_snap_free(s);
	o = opts(SQB_CODEC_LZ4, 0x61);
	o.role = SQB_ROLE_MEMORY;
	o.companion_uuid = &su;
	o.companion_digest = &sd;
	o.companion_path_hint = "pair-state.sqb";
	for (int i = 0; i < 4; i++)
		sqbt_fill_page(mem + i * 4096, 4096, i == 2 ? 0 : 2, &seed);
	if ((err = sqb_writer_open(&w, vpath("pair-memory.sqb"), &o)) ||
	    (err = sqb_writer_add_memory(w, 0, sizeof(mem), mem, NULL)) ||
	    (err = sqb_writer_finish(w, NULL, NULL)))
		die("pair-memory", err);
	sqb_writer_free(w);
	if (sqbt_normalize(vpath("pair-memory.sqb")))
		die("pair-memory", -EIO);
}

static void gen_valid(void)
{
	struct sqb_write_opts o;

	small("full-none-x86.sqb", opts(SQB_CODEC_NONE, 0x10), NULL, NULL);
	small("diff-none-x86.sqb", opts(SQB_CODEC_NONE, 0x11), "full-none-x86.sqb", NULL);
	small("full-lz4-x86.sqb", opts(SQB_CODEC_LZ4, 0x20), NULL, NULL);
	small("diff-lz4-x86.sqb", opts(SQB_CODEC_LZ4, 0x21), "full-lz4-x86.sqb", NULL);
	o = opts(SQB_CODEC_ZSTD, 0x30);
	o.arch = SQB_ARCH_AARCH64;
	o.hv = SQB_HV_HVF;
	o.guest_page_size = 16384;
	o.host_page_size = 16384;
	small("full-zstd-arm64-16k.sqb", o, NULL, NULL);
	o = opts(SQB_CODEC_ZSTD, 0x31);
	o.arch = SQB_ARCH_AARCH64;
	o.hv = SQB_HV_HVF;
	o.guest_page_size = 16384;
	small("diff-zstd-arm64-16k.sqb", o, "full-zstd-arm64-16k.sqb", NULL);
	pair();
}

/* ---- invalid files: one planted fault each ---- */

struct img {
	uint8_t *f;
	size_t n;
};

static struct img load(const char *valid_name)
{
	struct img m;

	m.f = sqbt_load(vpath(valid_name), &m.n);
	if (!m.f)
		die(valid_name, -EIO);
	m.f = realloc(m.f, m.n + 64);
	if (!m.f)
		die(valid_name, -ENOMEM);
	return m;
}

static void emit(struct img *m, const char *name, int code, const char *how)
{
	char p[640];

	snprintf(p, sizeof(p), "%s/invalid/%s", dir, name);
	if (sqbt_save(p, m->f, m->n))
		die(name, -EIO);
	fprintf(manifest, "%-28s %-17s %s\n", name, sqbt_err_name(code), how);
	free(m->f);
	m->f = NULL;
}

static uint8_t *sec(struct img *m, uint32_t type, uint32_t inst, size_t *len)
{
	size_t l;
	uint8_t *p = sqbt_section(m->f, m->n, type, inst, len ? len : &l);

	if (!p)
		die("section missing in source image", -SQB_ENOTFOUND);
	return p;
}

/* First extent of kind k in PIDX[r] of an image. */
static uint8_t *extent(struct img *m, uint32_t r, uint8_t k)
{
	size_t len;
	uint8_t *p = sec(m, SQB_SEC_PIDX, r, &len);

	for (size_t i = 0; i + SQB_EXTENT_SIZE <= len; i += SQB_EXTENT_SIZE)
		if (p[i + 12] == k)
			return p + i;
	die("extent kind missing in source image", -SQB_ENOTFOUND);
	return NULL;
}

static void gen_header_faults(void)
{
	struct img m;

	m = load("full-lz4-x86.sqb");
	m.f[1] ^= 0x20;
	emit(&m, "bad-magic.sqb", -SQB_EBADMAGIC, "magic byte 1 'S' -> 's'");
	m = load("full-lz4-x86.sqb");
	m.n = 5;
	emit(&m, "truncated-in-magic.sqb", -SQB_ETRUNCATED, "first 5 bytes only");
	m = load("full-lz4-x86.sqb");
	m.n = 200;
	emit(&m, "truncated-in-header.sqb", -SQB_ETRUNCATED, "first 200 bytes only");
	m = load("full-lz4-x86.sqb");
	m.n -= 8;
	emit(&m, "truncated-tail.sqb", -SQB_ETRUNCATED, "last 8 bytes (directory) cut");
	m = load("full-lz4-x86.sqb");
	memset(m.f + m.n, 0, 8);
	m.n += 8;
	emit(&m, "trailing-bytes.sqb", -SQB_ECORRUPT, "8 zero bytes appended");
	m = load("full-lz4-x86.sqb");
	m.f[H_PRODUCER] ^= 1;
	emit(&m, "header-checksum.sqb", -SQB_ECHECKSUM, "one producer bit flipped");
	m = load("full-lz4-x86.sqb");
	put_le16(m.f + H_READ_VERSION, 2);
	put_le16(m.f + H_WRITE_VERSION, 2);
	sqbt_fix_header(m.f, m.n);
	emit(&m, "newer-read-version.sqb", -SQB_EVERSION, "read/write version 2, checksum fixed");
	m = load("full-lz4-x86.sqb");
	m.f[H_FLAGS] = 1;
	sqbt_fix_header(m.f, m.n);
	emit(&m, "reserved-header-flags.sqb", -SQB_ERESERVED, "header flags = 1, checksum fixed");
	m = load("full-lz4-x86.sqb");
	put_le32(m.f + H_DIR_COUNT, SQB_MAX_SECTIONS + 1);
	sqbt_fix_header(m.f, m.n);
	emit(&m, "too-many-sections.sqb", -SQB_ELIMIT, "directory count 65537, checksum fixed");
	m = load("full-lz4-x86.sqb");
	memset(m.f + H_UUID, 0, 16);
	sqbt_fix_header(m.f, m.n);
	emit(&m, "zero-uuid.sqb", -SQB_ECORRUPT, "snapshot uuid zero, checksum fixed");
	m = load("full-lz4-x86.sqb");
	put_le32(m.f + H_GUEST_PAGE, 8192 + 4096);
	sqbt_fix_header(m.f, m.n);
	emit(&m, "bad-page-size.sqb", -SQB_ECORRUPT, "guest page size 12288, checksum fixed");
}

static void gen_directory_faults(void)
{
	struct img m;
	uint8_t *e, *e2;

	m = load("full-lz4-x86.sqb");
	m.f[get_le64(m.f + H_DIR_OFFSET) + 5] ^= 0x80;
	emit(&m, "directory-checksum.sqb", -SQB_ECHECKSUM, "one directory bit flipped");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_SEC_META, 0);
	e[12] |= 2;
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "reserved-section-flag.sqb", -SQB_ERESERVED,
	     "META flags bit 1 set, checksums fixed");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_SEC_META, 0);
	e2 = sqbt_dirent(m.f, m.n, SQB_SEC_CONF, 0);
	memcpy(e + 16, e2 + 16, 8);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "section-overlap.sqb", -SQB_ECORRUPT, "META moved onto CONF, checksums fixed");
	m = load("full-lz4-x86.sqb");
	put_le32(m.f + H_DIR_COUNT, 300); /* 300 * 48 > file size */
	put_le64(m.f + H_DIR_OFFSET, (uint64_t)m.n - 300 * SQB_DIRENT_SIZE);
	sqbt_fix_header(m.f, m.n);
	emit(&m, "directory-offset-wraps.sqb", -SQB_ECORRUPT,
	     "dir_offset + 48 * dir_count wraps around to the file size; checksum fixed");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_SEC_META, 0);
	put_le32(e, SQB_SEC_CONF);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "duplicate-section.sqb", -SQB_ECORRUPT, "META[0] renamed CONF[0], fixed");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_SEC_MEMR, 0);
	put_le64(e + 24, get_le64(m.f + H_DIR_OFFSET));
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "section-out-of-bounds.sqb", -SQB_ECORRUPT,
	     "MEMR length runs into the directory, checksums fixed");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_FOURCC('x', 't', 'r', 'a'), 0);
	e[12] |= SQB_SECF_CRITICAL;
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "unknown-critical-section.sqb", -SQB_EUNSUPPORTED,
	     "extension xtra marked critical, checksums fixed");
	m = load("full-lz4-x86.sqb");
	e = sqbt_dirent(m.f, m.n, SQB_SEC_VCPU, 0);
	put_le16(e + 10, 2);
	put_le16(e + 8, 2);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "newer-critical-section.sqb", -SQB_EUNSUPPORTED,
	     "VCPU[0] version/min version 2, checksums fixed");
}

static void gen_memory_faults(void)
{
	struct img m;
	uint8_t *x, *p;
	size_t len;

	m = load("full-lz4-x86.sqb");
	x = extent(&m, 0, SQB_EXT_COMPRESSED);
	m.f[get_le64(x + 16) + 3] ^= 4;
	emit(&m, "extent-checksum.sqb", -SQB_ECHECKSUM, "one bit of a compressed chunk flipped");
	m = load("full-lz4-x86.sqb");
	x = extent(&m, 0, SQB_EXT_COMPRESSED);
	memset(m.f + get_le64(x + 16), 0xff, 16);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "lz4-garbage.sqb", -SQB_ECODEC, "lz4 chunk overwritten, checksums fixed");
	m = load("full-zstd-arm64-16k.sqb");
	x = extent(&m, 0, SQB_EXT_COMPRESSED);
	m.f[get_le64(x + 16) + 5] ^= 0x10; /* frame content size */
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "zstd-wrong-size.sqb", -SQB_ECODEC, "zstd frame header altered, checksums fixed");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_PIDX, 0, &len);
	put_le64(p + SQB_EXTENT_SIZE, get_le64(p + SQB_EXTENT_SIZE) + 1);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "extent-gap.sqb", -SQB_ECORRUPT, "PIDX[0] extent 1 starts a page late, fixed");
	m = load("full-lz4-x86.sqb");
	x = extent(&m, 0, SQB_EXT_ZERO);
	x[14] = 1;
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "reserved-extent-bits.sqb", -SQB_ERESERVED, "extent reserved byte set, fixed");
	m = load("full-lz4-x86.sqb");
	x = extent(&m, 0, SQB_EXT_DEDUP);
	put_le64(x + 16, 6); /* page 6 of region 0 comes after page 4 */
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "dedup-forward.sqb", -SQB_ECORRUPT, "DEDUP points at a later page, fixed");
	m = load("full-none-x86.sqb");
	x = extent(&m, 0, SQB_EXT_RAW);
	put_le64(x + 16, get_le64(x + 16) - 8);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "raw-misaligned.sqb", -SQB_ECORRUPT, "RAW data offset moved by -8, fixed");
	m = load("full-none-x86.sqb");
	m.f[1000] = 0x5a;
	emit(&m, "nonzero-filler.sqb", -SQB_ECORRUPT, "byte 1000 (alignment filler) = 0x5a");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_MEMR, 0, NULL);
	put_le64(p + 32 + 0, 4096); /* region 1 now overlaps region 0 */
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "region-overlap.sqb", -SQB_ECORRUPT, "region 1 moved into region 0, fixed");
}

static void gen_state_faults(void)
{
	struct img m;
	uint8_t *p;
	size_t len;

	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_META, 0, &len);
	p[len - 1] ^= 1;
	emit(&m, "section-checksum.sqb", -SQB_ECHECKSUM, "one META bit flipped");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_VCPU, 0, &len);
	/* the third record is the unknown ancillary 0x7f01: make it critical */
	p[8 + 144 + 8 + 40 + 2] = SQB_RECF_CRITICAL;
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "unknown-critical-record.sqb", -SQB_EUNSUPPORTED,
	     "VCPU[0] record 0x7f01 marked critical, fixed");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_VCPU, 0, &len);
	put_le32(p + 4, 143);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "record-bad-size.sqb", -SQB_ECORRUPT, "X86_REGS length 143, fixed");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_CONF, 0, &len);
	p[16] = 'V';
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "kv-bad-key.sqb", -SQB_ECORRUPT, "CONF key 'Vcpu_count', fixed");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_WSET, 0, &len);
	put_le32(p, 3);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "wset-bad-count.sqb", -SQB_ECORRUPT, "WSET count 3 for 2 entries, fixed");
	m = load("full-lz4-x86.sqb");
	p = sec(&m, SQB_SEC_DEVS, 0, &len);
	put_le16(p + 20, 64);
	sqbt_fix_checksums(m.f, m.n);
	emit(&m, "device-bad-id.sqb", -SQB_ECORRUPT, "DEVS[0] id length 64, fixed");
}

/* A diff of full-lz4-x86.sqb written into invalid/ (hint ../valid/...). */
static struct img chain_child(const char *name, const char *hint)
{
	struct sqb_write_opts o = opts(SQB_CODEC_LZ4, 0x40);
	char path[640];
	struct img m;
	sqb_snap *p;
	int err;

	if ((err = sqb_snap_open(&p, vpath("full-lz4-x86.sqb"), NULL, NULL)))
		die("full-lz4-x86", err);
	snprintf(path, sizeof(path), "%s/invalid/%s", dir, name);
	if ((err = sqbt_write_small(path, &o, p, hint, 1)))
		die(name, err);
	sqb_snap_free(p);
	if (sqbt_normalize(path))
		die(name, -EIO);
	m.f = sqbt_load(path, &m.n);
	if (!m.f)
		die(name, -EIO);
	return m;
}

static void gen_chain_faults(void)
{
	struct img m;

	m = chain_child("missing-parent.sqb", "no-such-parent.sqb");
	emit(&m, "missing-parent.sqb", -SQB_EPARENT, "diff whose LINK hint names a missing file");
	m = chain_child("wrong-parent-digest.sqb", "../valid/full-lz4-x86.sqb");
	m.f[H_PARENT_DIGEST] ^= 1;
	sqbt_fix_header(m.f, m.n);
	emit(&m, "wrong-parent-digest.sqb", -SQB_EPARENT,
	     "diff's parent digest bit flipped, checksum fixed (hint finds the parent)");
	m = chain_child("parent-arch-mismatch.sqb", "../valid/full-lz4-x86.sqb");
	m.f[H_ARCH] = SQB_ARCH_AARCH64;
	m.f[H_HV] = SQB_HV_HVF;
	sqbt_fix_header(m.f, m.n);
	emit(&m, "parent-arch-mismatch.sqb", -SQB_EMISMATCH,
	     "diff says aarch64/hvf, its parent x86_64/kvm; checksum fixed");
}

int main(int argc, char **argv)
{
	char p[600];

	if (argc != 2) {
		fprintf(stderr, "usage: gen_golden <tests/golden dir>\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(p, sizeof(p), "%s/valid", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/invalid", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/invalid.txt", dir);
	manifest = fopen(p, "w");
	if (!manifest)
		die(p, -errno);
	fprintf(manifest, "# file                       expected          how it was made "
			  "(gen_golden.c; checked by test_golden.c)\n");
	gen_valid();
	gen_header_faults();
	gen_directory_faults();
	gen_memory_faults();
	gen_state_faults();
	gen_chain_faults();
	fclose(manifest);
	return 0;
}
