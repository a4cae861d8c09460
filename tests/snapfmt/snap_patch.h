/* Test helpers shared by the integrity tests, the golden-file generator and
 * the fuzz target: load/save a snapshot image, recompute every checksum
 * (extents, sections, directory, header) after planting a structural error,
 * and build a small snapshot that holds every section and extent kind. */
#ifndef SQB_SNAP_PATCH_H
#define SQB_SNAP_PATCH_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "snap_internal.h"
#include "snap_test_util.h"

static inline uint8_t *sqbt_load(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL &&
	    pread(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
		*len = (size_t)st.st_size;
	} else {
		free(buf);
		buf = NULL;
	}
	close(fd);
	return buf;
}

static inline int sqbt_save(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, buf, len) == (ssize_t)len;
	return close(fd) == 0 && ok ? 0 : -1;
}

static inline void sqbt_fix_header(uint8_t *f, size_t n)
{
	if (n >= SQB_HEADER_SIZE)
		put_le64(f + H_CHECKSUM, XXH3_64bits(f, H_CHECKSUM));
}

/* Recompute every checksum so that only the planted fault remains.  Works on
 * any bytes (the fuzz target feeds it garbage): never reads out of bounds. */
static inline void sqbt_fix_checksums(uint8_t *f, size_t n)
{
	uint64_t doff;
	uint32_t dn;

	if (n < SQB_HEADER_SIZE)
		return;
	doff = get_le64(f + H_DIR_OFFSET);
	dn = get_le32(f + H_DIR_COUNT);
	if (doff <= n && dn <= (n - doff) / SQB_DIRENT_SIZE) {
		for (int pass = 0; pass < 2; pass++) {
			for (uint32_t i = 0; i < dn; i++) {
				uint8_t *e = f + doff + (size_t)i * SQB_DIRENT_SIZE;
				uint32_t type = get_le32(e);
				uint64_t off = get_le64(e + 16), len = get_le64(e + 24);

				if (off > n || len > n - off || type == SQB_SEC_DATA)
					continue;
				if (pass == 1) {
					put_le64(e + 32, XXH3_64bits(f + off, len));
					continue;
				}
				if (type != SQB_SEC_PIDX)
					continue;
				for (uint64_t k = 0; k + SQB_EXTENT_SIZE <= len;
				     k += SQB_EXTENT_SIZE) {
					uint8_t *x = f + off + k;
					uint64_t data = get_le64(x + 16);
					uint32_t sl = get_le32(x + 24);

					if ((x[12] == SQB_EXT_RAW || x[12] == SQB_EXT_COMPRESSED) &&
					    data <= n && sl <= n - data)
						put_le64(x + 32, XXH3_64bits(f + data, sl));
				}
			}
		}
		put_le64(f + H_DIR_CHECKSUM, XXH3_64bits(f + doff, (size_t)dn * SQB_DIRENT_SIZE));
	}
	sqbt_fix_header(f, n);
}

/* Pin the creation time so that files are byte-for-byte reproducible. */
static inline int sqbt_normalize(const char *path)
{
	size_t n;
	uint8_t *f = sqbt_load(path, &n);
	int err;

	if (!f || n < SQB_HEADER_SIZE) {
		free(f);
		return -1;
	}
	put_le64(f + H_CREATED, 1767225600ull * 1000000000ull); /* 2026-01-01 */
	sqbt_fix_header(f, n);
	err = sqbt_save(path, f, n);
	free(f);
	return err;
}

static inline void sqbt_fill_bytes(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

/* Every non-memory section kind: VCPU (known + unknown ancillary record),
 * INTC, DEVS, CONF, META, WSET and an unknown ancillary extension section. */
static inline int sqbt_add_state(sqb_snap_writer *w, enum sqb_arch arch)
{
	static uint8_t regs[296], msrs[8 + 2 * 16], pic[16], clk[32], ext[24], sys[8 + 3 * 16];
	struct sqb_record x86[] = {
	    {SQB_REC_X86_REGS, SQB_RECF_CRITICAL, 144, regs},
	    {SQB_REC_X86_MSRS, SQB_RECF_CRITICAL, sizeof(msrs), msrs},
	    {0x7f01, 0, sizeof(ext), ext}, /* unknown ancillary record */
	};
	struct sqb_record arm[] = {
	    {SQB_REC_ARM64_CORE, SQB_RECF_CRITICAL, 296, regs},
	    {SQB_REC_ARM64_SYSREGS, SQB_RECF_CRITICAL, sizeof(sys), sys},
	};
	struct sqb_record intc[] = {
	    {SQB_REC_KVM_PIC_MASTER, SQB_RECF_CRITICAL, sizeof(pic), pic},
	    {SQB_REC_KVM_CLOCK, 0, sizeof(clk), clk},
	};
	struct sqb_device dev = {.type = 3, .version = 1, .bus_addr = 0x3f8, .irq = 4};
	struct sqb_wset_range ws[2] = {{0x4000, 2}, {0xc000, 1}};
	int err;

	sqbt_fill_bytes(regs, sizeof(regs), 1);
	/* keyed lists [F-54]: count, reserved, then (u32 key, u32 0, u64 value) */
	memset(msrs, 0, sizeof(msrs));
	put_le32(msrs, 2);
	memset(sys, 0, sizeof(sys));
	put_le32(sys, 3);
	for (int i = 0; i < 3; i++) {
		if (i < 2) {
			put_le32(msrs + 8 + 16 * i, 0xc0000080u + (uint32_t)i);
			put_le64(msrs + 16 + 16 * i, 0x500u + (uint64_t)i);
		}
		put_le32(sys + 8 + 16 * i, 0xc000u + (uint32_t)i);
		put_le64(sys + 16 + 16 * i, 0x1234567800u + (uint64_t)i);
	}
	sqbt_fill_bytes(pic, sizeof(pic), 3);
	sqbt_fill_bytes(clk, sizeof(clk), 5);
	sqbt_fill_bytes(ext, sizeof(ext), 11);
	snprintf(dev.id, sizeof(dev.id), "serial0");
	dev.state = "uart-state-bytes";
	dev.state_len = 16;
	if (arch == SQB_ARCH_AARCH64)
		err = sqb_writer_add_vcpu(w, 0, arm, 2);
	else
		err = sqb_writer_add_vcpu(w, 0, x86, 3);
	if (!err && arch == SQB_ARCH_X86_64)
		err = sqb_writer_add_records(w, SQB_SEC_INTC, 0, intc, 2);
	if (!err)
		err = sqb_writer_add_device(w, &dev);
	if (!err)
		err = sqb_writer_set_kv(w, SQB_SEC_CONF, "vcpu_count", "1", 1);
	if (!err)
		err = sqb_writer_set_kv(w, SQB_SEC_META, "label", "golden", 6);
	if (!err)
		err = sqb_writer_set_working_set(w, ws, 2);
	if (!err)
		err = sqb_writer_add_section(w, SQB_FOURCC('x', 't', 'r', 'a'), 0, 1, 1, 0,
					     "extension", 9);
	return err;
}

/* Guest memory of the small snapshots: region 0 (8 pages at 0) and region 1
 * (2 pages at 1 MiB).  `gen` 0 is the parent's content, 1 the child's.
 * Parent: r0 = zero, text, binary, repeated, dup of 1, random, zero, zero;
 *         r1 = zero, dup of r0 page 5.
 * Child dirties r0 pages 1 (new text), 2 (-> zero), 3 (dup of 1) and r1
 * page 0 (dup of r0 page 1, across regions). */
#define SQBT_SMALL_R0 8u
#define SQBT_SMALL_R1 2u
static inline void sqbt_small_mem(uint8_t *m, uint32_t gps, int gen)
{
	static const int cls[SQBT_SMALL_R0 + SQBT_SMALL_R1] = {0, 2, 3, 1, -1, 4, 0, 0, 0, -1};
	uint64_t seed = 42;

	for (unsigned int i = 0; i < SQBT_SMALL_R0 + SQBT_SMALL_R1; i++)
		if (cls[i] >= 0)
			sqbt_fill_page(m + (size_t)i * gps, gps, cls[i], &seed);
	memcpy(m + 4 * (size_t)gps, m + 1 * (size_t)gps, gps);
	memcpy(m + 9 * (size_t)gps, m + 5 * (size_t)gps, gps);
	if (gen) {
		seed = 99;
		sqbt_fill_page(m + 1 * (size_t)gps, gps, 2, &seed);
		memset(m + 2 * (size_t)gps, 0, gps);
		memcpy(m + 3 * (size_t)gps, m + 1 * (size_t)gps, gps);
		memcpy(m + 8 * (size_t)gps, m + 1 * (size_t)gps, gps);
	}
}

/* Write a small snapshot.  parent NULL: a full snapshot of generation 0.
 * Otherwise a diff of generation 1 over parent, which yields every extent
 * kind: r0 = PARENT, RAW or COMPRESSED, ZERO, DEDUP, PARENT x4 and
 * r1 = DEDUP (of region 0), PARENT. */
static inline int sqbt_write_small(const char *path, const struct sqb_write_opts *base_opts,
				   const sqb_snap *parent, const char *parent_hint, int with_state)
{
	struct sqb_write_opts o = *base_opts;
	uint32_t gps = o.guest_page_size;
	uint8_t *m = calloc(SQBT_SMALL_R0 + SQBT_SMALL_R1, gps);
	uint64_t d0 = 0x0e, d1 = 0x1;
	sqb_snap_writer *w = NULL;
	int err;

	if (!m)
		return -1;
	o.dedup = 1;
	o.parent = parent;
	o.parent_path_hint = parent_hint;
	sqbt_small_mem(m, gps, parent != NULL);
	err = sqb_writer_open(&w, path, &o);
	if (!err)
		err = sqb_writer_add_memory(w, 0, (uint64_t)SQBT_SMALL_R0 * gps, m,
					    parent ? &d0 : NULL);
	if (!err)
		err = sqb_writer_add_memory(w, 1u << 20, (uint64_t)SQBT_SMALL_R1 * gps,
					    m + (size_t)SQBT_SMALL_R0 * gps, parent ? &d1 : NULL);
	if (!err && with_state)
		err = sqbt_add_state(w, o.arch);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	free(m);
	return err;
}

/* Directory entry (type, instance) of an image, or NULL. */
static inline uint8_t *sqbt_dirent(uint8_t *f, size_t n, uint32_t type, uint32_t inst)
{
	uint64_t doff = get_le64(f + H_DIR_OFFSET);
	uint32_t dn = get_le32(f + H_DIR_COUNT);

	if (n < SQB_HEADER_SIZE || doff > n || dn > (n - doff) / SQB_DIRENT_SIZE)
		return NULL;
	for (uint32_t i = 0; i < dn; i++) {
		uint8_t *e = f + doff + (size_t)i * SQB_DIRENT_SIZE;

		if (get_le32(e) == type && get_le32(e + 4) == inst)
			return e;
	}
	return NULL;
}

/* Body of section (type, instance), or NULL; *len its length. */
static inline uint8_t *sqbt_section(uint8_t *f, size_t n, uint32_t type, uint32_t inst, size_t *len)
{
	uint8_t *e = sqbt_dirent(f, n, type, inst);
	uint64_t off, l;

	if (!e)
		return NULL;
	off = get_le64(e + 16);
	l = get_le64(e + 24);
	if (off > n || l > n - off)
		return NULL;
	*len = (size_t)l;
	return f + off;
}

static const struct {
	int code;
	const char *name;
} sqbt_errnames[] = {
    {0, "OK"},
    {-SQB_EBADMAGIC, "SQB_EBADMAGIC"},
    {-SQB_ECHECKSUM, "SQB_ECHECKSUM"},
    {-SQB_ETRUNCATED, "SQB_ETRUNCATED"},
    {-SQB_EVERSION, "SQB_EVERSION"},
    {-SQB_ECORRUPT, "SQB_ECORRUPT"},
    {-SQB_ERESERVED, "SQB_ERESERVED"},
    {-SQB_EUNSUPPORTED, "SQB_EUNSUPPORTED"},
    {-SQB_EPARENT, "SQB_EPARENT"},
    {-SQB_EMISMATCH, "SQB_EMISMATCH"},
    {-SQB_ECODEC, "SQB_ECODEC"},
    {-SQB_ELIMIT, "SQB_ELIMIT"},
    {-SQB_ENOTFOUND, "SQB_ENOTFOUND"},
};

static inline const char *sqbt_err_name(int code)
{
	for (size_t i = 0; i < sizeof(sqbt_errnames) / sizeof(sqbt_errnames[0]); i++)
		if (sqbt_errnames[i].code == code)
			return sqbt_errnames[i].name;
	return NULL;
}

static inline int sqbt_err_code(const char *name, int *code)
{
	for (size_t i = 0; i < sizeof(sqbt_errnames) / sizeof(sqbt_errnames[0]); i++)
		if (!strcmp(sqbt_errnames[i].name, name)) {
			*code = sqbt_errnames[i].code;
			return 0;
		}
	return -1;
}

#endif
