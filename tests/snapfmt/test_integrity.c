/* Integrity of the container: every single-bit flip of a small snapshot
 * holding every section and extent kind is caught by open or verify, every
 * truncation is reported, and the version and criticality rules hold
 * (docs/format.md [F-1], [F-12], [F-13], [F-15], [F-23], [F-24], [F-26], [F-80]). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "squib/snapfmt.h"
#include "snap_patch.h"

static char tmpdir[64];

static const char *tpath(const char *name)
{
	static char p[4][128];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sqb-int-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static void keep_first(void *ctx, int err, const struct sqb_diag *d)
{
	struct sqb_diag *out = ctx;

	(void)err;
	if (!out->reason[0])
		*out = *d;
}

static int is_format_error(int err)
{
	return err <= -SQB_EBADMAGIC && err > -SQB_ERROR_MAX_;
}

/* open (with `parent` as the only candidate) + verify with `flags`; 0 if sound. */
static int open_verify_flags(const char *path, const char *parent, struct sqb_diag *d,
			     unsigned int flags)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	const char *pp[1] = {parent};
	sqb_snap *s;
	int err;

	oo.parent_paths = pp;
	oo.n_parent_paths = parent ? 1 : 0;
	memset(d, 0, sizeof(*d));
	err = sqb_snap_open(&s, path, &oo, d);
	if (err)
		return err;
	memset(d, 0, sizeof(*d));
	err = sqb_snap_verify(s, flags, 1, keep_first, d);
	sqb_snap_free(s);
	return err;
}

/* open + full verify (every extent decoded). */
static int open_verify(const char *path, const char *parent, struct sqb_diag *d)
{
	return open_verify_flags(path, parent, d, 0);
}

/* A full parent and a small diff over it with every section and extent kind. */
static void make_pair(enum sqb_codec codec, const char *base, const char *diff)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_mem_stats ms;
	sqb_snap *p, *s;
	static const uint32_t types[] = {SQB_SEC_MEMR, SQB_SEC_PIDX, SQB_SEC_DATA, SQB_SEC_VCPU,
					 SQB_SEC_INTC, SQB_SEC_DEVS, SQB_SEC_CONF, SQB_SEC_META,
					 SQB_SEC_WSET, SQB_SEC_LINK};
	struct sqb_section_info si;
	int unknown = 0;

	o.codec = codec;
	o.threads = 1;
	o.pack_below = 1; /* keep the diff's short runs RAW: every extent kind present */
	assert_int_equal(sqbt_write_small(base, &o, NULL, NULL, 1), 0);
	assert_int_equal(sqb_snap_open(&p, base, NULL, NULL), 0);
	assert_int_equal(sqbt_write_small(diff, &o, p, base, 1), 0);
	sqb_snap_free(p);
	assert_int_equal(sqb_snap_open(&s, diff, NULL, NULL), 0);
	sqb_snap_mem_stats(s, &ms);
	assert_true(ms.zero && ms.parent && ms.dedup);
	assert_true(codec == SQB_CODEC_NONE ? ms.raw > 0 : ms.compressed > 0);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		assert_true(sqb_snap_section_find(s, types[i], 0) >= 0);
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		assert_int_equal(sqb_snap_section_info(s, i, &si), 0);
		unknown += !si.known;
	}
	assert_int_equal(unknown, 1); /* the ancillary extension */
	sqb_snap_free(s);
}

/* Flip every bit of the diff in place; each flip must be refused with a
 * format error and a diagnostic, then the byte is restored. */
static void flip_every_bit(enum sqb_codec codec, size_t max_size)
{
	const char *base = tpath("flip-base.sqb"), *diff = tpath("flip-diff.sqb");
	struct sqb_diag d;
	size_t n;
	uint8_t *img;
	int fd;

	make_pair(codec, base, diff);
	img = sqbt_load(diff, &n);
	assert_non_null(img);
	assert_true(n <= max_size); /* keep the sweep cheap */
	assert_int_equal(open_verify(diff, base, &d), 0);
	fd = open(diff, O_WRONLY);
	assert_true(fd >= 0);
	for (size_t byte = 0; byte < n; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t b = (uint8_t)(img[byte] ^ (1u << bit));
			int err;

			assert_int_equal(pwrite(fd, &b, 1, (off_t)byte), 1);
			err = open_verify(diff, base, &d);
			if (!is_format_error(err) || !d.reason[0])
				fail_msg("%s: flip of bit %d at 0x%zx gave %d (%s)",
					 sqb_codec_name(codec), bit, byte, err, sqb_strerror(err));
			/* the checksum-only verification finds every flip too, with
			 * the same first diagnostic */
			{
				struct sqb_diag d2;
				int err2 = open_verify_flags(diff, base, &d2, SQB_VERIFY_NO_DECODE);

				if (err2 != err || d2.offset != d.offset ||
				    strcmp(d2.reason, d.reason) || strcmp(d2.section, d.section))
					fail_msg("%s: flip of bit %d at 0x%zx: no-decode gave %d "
						 "%s at 0x%llx: %s, decode %d %s at 0x%llx: %s",
						 sqb_codec_name(codec), bit, byte, err2, d2.section,
						 (unsigned long long)d2.offset, d2.reason, err,
						 d.section, (unsigned long long)d.offset, d.reason);
			}
		}
		assert_int_equal(pwrite(fd, &img[byte], 1, (off_t)byte), 1);
	}
	close(fd);
	assert_int_equal(open_verify(diff, base, &d), 0);
	free(img);
}

static void test_every_bit_flip_is_detected_raw(void **state)
{
	(void)state;
	flip_every_bit(SQB_CODEC_NONE, 12 << 10);
}

static void test_every_bit_flip_is_detected_compressed(void **state)
{
	(void)state;
	flip_every_bit(SQB_CODEC_LZ4, 6 << 10);
}

/* [F-1], [F-15]: every proper prefix of a snapshot is refused as truncated. */
static void test_truncation_at_every_offset(void **state)
{
	const char *base = tpath("trunc-base.sqb"), *diff = tpath("trunc-diff.sqb");
	struct sqb_diag d;
	size_t n;
	uint8_t *img;
	int fd;

	(void)state;
	make_pair(SQB_CODEC_LZ4, base, diff);
	img = sqbt_load(diff, &n);
	assert_non_null(img);
	fd = open(diff, O_WRONLY);
	assert_true(fd >= 0);
	for (size_t len = n; len-- > 0;) {
		int err;

		assert_int_equal(ftruncate(fd, (off_t)len), 0);
		err = open_verify(diff, base, &d);
		if (len == 0 && err == -SQB_EBADMAGIC)
			continue; /* an empty file is no snapshot at all */
		if (err != -SQB_ETRUNCATED || !d.reason[0] || !d.section[0])
			fail_msg("truncation to %zu bytes gave %s", len, sqb_strerror(err));
	}
	close(fd);
	free(img);
}

/* A file cut short after it was opened: reads fail cleanly. */
static void test_truncation_under_an_open_snapshot(void **state)
{
	const char *base = tpath("cut-base.sqb"), *diff = tpath("cut-diff.sqb");
	uint8_t buf[8 * 4096];
	struct sqb_diag d;
	sqb_snap *s;
	int fd;

	(void)state;
	make_pair(SQB_CODEC_NONE, base, diff);
	assert_int_equal(sqb_snap_open(&s, base, NULL, NULL), 0);
	fd = open(base, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 300), 0);
	close(fd);
	assert_int_equal(sqb_snap_read(s, 0, buf, sizeof(buf), &d), -SQB_ETRUNCATED);
	assert_true(d.reason[0] != 0);
	assert_true(is_format_error(sqb_snap_verify(s, 0, 0, NULL, NULL)));
	sqb_snap_free(s);
}

static void write_with_extension(const char *path, uint32_t type, uint16_t version,
				 uint16_t min_version, uint32_t flags)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	uint8_t mem[2 * 4096];
	uint64_t seed = 3;

	sqbt_fill_page(mem, 4096, 2, &seed);
	sqbt_fill_page(mem + 4096, 4096, 0, &seed);
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, sizeof(mem), mem, NULL), 0);
	assert_int_equal(
	    sqb_writer_add_section(w, type, 0, version, min_version, flags, "extension-bytes", 15),
	    0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
}

/* [F-24] PNG's rule: an unknown critical section refuses the file, an
 * unknown ancillary one is skipped but still checksummed by verify. */
static void test_unknown_critical_refused_ancillary_skipped(void **state)
{
	const char *path = tpath("ext.sqb");
	const uint32_t xcrt = SQB_FOURCC('x', 'c', 'r', 't'), xanc = SQB_FOURCC('x', 'a', 'n', 'c');
	struct sqb_section_info si;
	struct sqb_diag d;
	sqb_snap *s;
	size_t n, blen;
	uint8_t *img, *body;
	int idx = -1;

	(void)state;
	write_with_extension(path, xcrt, 1, 1, SQB_SECF_CRITICAL);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), -SQB_EUNSUPPORTED);
	assert_string_equal(d.section, "xcrt[0]");
	/* a known critical type whose min_version this reader lacks */
	write_with_extension(path, SQB_SEC_INTC, 3, 2, SQB_SECF_CRITICAL);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), -SQB_EUNSUPPORTED);
	/* a standard type this reader cannot parse is skipped, never found */
	write_with_extension(path, SQB_SEC_META, 2, 2, 0);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	assert_int_equal(sqb_snap_section_find(s, SQB_SEC_META, 0), -SQB_ENOTFOUND);
	sqb_snap_free(s);
	/* newer version, but readable by version-1 readers: understood */
	write_with_extension(path, SQB_SEC_META, 2, 1, 0);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	sqb_snap_free(s);

	write_with_extension(path, xanc, 1, 1, 0);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		assert_int_equal(sqb_snap_section_info(s, i, &si), 0);
		if (si.type == xanc)
			idx = (int)i;
	}
	assert_true(idx >= 0);
	assert_int_equal(sqb_snap_section_info(s, (unsigned)idx, &si), 0);
	assert_int_equal(si.known, 0);
	/* a caller that knows the extension can still find it by type */
	assert_int_equal(sqb_snap_section_find(s, xanc, 0), idx);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	sqb_snap_free(s);
	/* its bytes are still covered by a full verification */
	img = sqbt_load(path, &n);
	assert_non_null(img);
	body = sqbt_section(img, n, xanc, 0, &blen);
	assert_non_null(body);
	body[3] ^= 0x40;
	assert_int_equal(sqbt_save(path, img, n), 0);
	free(img);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	memset(&d, 0, sizeof(d));
	assert_int_equal(sqb_snap_verify(s, 0, 0, keep_first, &d), -SQB_ECHECKSUM);
	assert_string_equal(d.section, "xanc[0]");
	sqb_snap_free(s);
}

static void rewrite_versions(const char *src, const char *dst, uint16_t rv, uint16_t wv, int fix)
{
	size_t n;
	uint8_t *img = sqbt_load(src, &n);

	assert_non_null(img);
	put_le16(img + H_READ_VERSION, rv);
	put_le16(img + H_WRITE_VERSION, wv);
	if (fix)
		sqbt_fix_header(img, n);
	assert_int_equal(sqbt_save(dst, img, n), 0);
	free(img);
}

/* [F-12] a newer read_version is refused (before the checksum is even
 * looked at), a newer write_version opens read-only. */
static void test_version_rules(void **state)
{
	const char *base = tpath("ver-base.sqb"), *diff = tpath("ver-diff.sqb");
	const char *newer = tpath("ver-newer.sqb");
	uint8_t a[10 * 4096], b[10 * 4096];
	struct sqb_diag d;
	sqb_snap *s, *orig;

	(void)state;
	make_pair(SQB_CODEC_ZSTD, base, diff);
	rewrite_versions(base, newer, 2, 2, 1);
	assert_int_equal(sqb_snap_open(&s, newer, NULL, &d), -SQB_EVERSION);
	assert_string_equal(d.section, "header");
	assert_non_null(strstr(d.reason, "version 2"));
	assert_non_null(strstr(d.reason, "version 1"));
	rewrite_versions(base, newer, 2, 3, 0); /* stale checksum: version wins */
	assert_int_equal(sqb_snap_open(&s, newer, NULL, &d), -SQB_EVERSION);
	rewrite_versions(base, newer, 1, 0, 1);
	assert_int_equal(sqb_snap_open(&s, newer, NULL, &d), -SQB_ECORRUPT);

	rewrite_versions(base, newer, 1, 2, 1);
	assert_int_equal(sqb_snap_open(&s, newer, NULL, &d), 0);
	assert_int_equal(sqb_snap_get_info(s)->read_only, 1);
	assert_int_equal(sqb_snap_get_info(s)->write_version, 2);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	assert_int_equal(sqb_snap_open(&orig, base, NULL, &d), 0);
	assert_int_equal(sqb_snap_get_info(orig)->read_only, 0);
	assert_int_equal(sqb_snap_read(s, 0, a, 8 * 4096, &d), 0);
	assert_int_equal(sqb_snap_read(orig, 0, b, 8 * 4096, &d), 0);
	assert_memory_equal(a, b, 8 * 4096);
	sqb_snap_free(orig);
	sqb_snap_free(s);
}

/* [F-50] an unknown ancillary record is kept and returned; records of a
 * known tag are sized exactly. */
static void test_unknown_ancillary_record_is_returned(void **state)
{
	const char *base = tpath("rec-base.sqb"), *diff = tpath("rec-diff.sqb");
	struct sqb_record *recs;
	unsigned int n;
	void *back;
	sqb_snap *s;

	(void)state;
	make_pair(SQB_CODEC_LZ4, base, diff);
	assert_int_equal(sqb_snap_open(&s, diff, NULL, NULL), 0);
	assert_int_equal(sqb_snap_records(s, SQB_SEC_VCPU, 0, &recs, &n, &back, NULL), 0);
	assert_int_equal(n, 3);
	assert_non_null(sqb_record_find(recs, n, 0x7f01));
	assert_null(sqb_record_tag_name(0x7f01));
	free(recs);
	free(back);
	sqb_snap_free(s);
}

/* Random access decodes only what a read needs (LZ4 stops early): every
 * single page and every page-straddling range reads back exactly. */
static void test_single_page_reads_match(void **state)
{
	static const enum sqb_codec codecs[] = {SQB_CODEC_NONE, SQB_CODEC_LZ4, SQB_CODEC_ZSTD};
	const uint64_t size = 1u << 20;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 21), buf[3 * 4096];
	const char *path = tpath("pages.sqb");

	(void)state;
	for (int c = 0; c < 3; c++) {
		struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
		sqb_snap_writer *w;
		sqb_snap *s;

		o.codec = codecs[c];
		o.chunk_size = 256u << 10;
		assert_int_equal(sqb_writer_open(&w, path, &o), 0);
		assert_int_equal(sqb_writer_add_memory(w, 0x200000, size, mem, NULL), 0);
		assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
		sqb_writer_free(w);
		assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
		for (uint64_t off = 0; off < size; off += 4096) {
			assert_int_equal(sqb_snap_read(s, 0x200000 + off, buf, 4096, NULL), 0);
			assert_memory_equal(buf, mem + off, 4096);
			if (off + 3 * 4096 <= size) {
				assert_int_equal(
				    sqb_snap_read(s, 0x200000 + off + 100, buf, 8192, NULL), 0);
				assert_memory_equal(buf, mem + off + 100, 8192);
			}
		}
		sqb_snap_free(s);
	}
	free(mem);
}

/* [F-72] the bytes of a snapshot do not depend on how many threads wrote
 * it, even with a chunk size that does not divide the writer's batches. */
static void test_layout_does_not_depend_on_threads(void **state)
{
	const uint64_t size = 20u << 20;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 33), *img[3];
	static const struct sqb_uuid u = {{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12}};
	size_t n[3];

	(void)state;
	assert_non_null(mem);
	for (int t = 0; t < 3; t++) {
		struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
		sqb_snap_writer *w;
		const char *path = tpath("threads.sqb");

		o.codec = SQB_CODEC_LZ4;
		o.dedup = 1;
		o.chunk_size = 3 * 4096;
		o.threads = (unsigned int)(1 + 2 * t); /* 1, 3, 5 */
		o.uuid = &u;
		assert_int_equal(sqb_writer_open(&w, path, &o), 0);
		assert_int_equal(sqb_writer_add_memory(w, 0, size, mem, NULL), 0);
		assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
		sqb_writer_free(w);
		assert_int_equal(sqbt_normalize(path), 0); /* creation time */
		img[t] = sqbt_load(path, &n[t]);
		assert_non_null(img[t]);
	}
	for (int t = 1; t < 3; t++) {
		assert_int_equal(n[t], n[0]);
		assert_memory_equal(img[t], img[0], n[0]);
	}
	for (int t = 0; t < 3; t++)
		free(img[t]);
	free(mem);
}

/* Regions larger than one 8 MiB batch go through the writer's pipeline
 * (the I/O thread writes batch k while batch k+1 is encoded): with every
 * codec, dedup against pages of earlier batches, a packed diff and external
 * raw memory, the result reads back exactly, verifies, and its bytes do not
 * depend on the thread count ([F-32], [F-37], [F-72], [F-80], [F-91]). */
static int write_big(const char *path, const uint8_t *mem, uint64_t size, enum sqb_codec codec,
		     unsigned int threads, const sqb_snap *parent, const uint64_t *dirty,
		     const char *xpath, struct sqb_write_stats *st)
{
	static const struct sqb_uuid u = {{9, 8, 7, 6, 5, 4, 0x43, 2, 0x81, 0, 1, 2}};
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	o.codec = codec;
	o.dedup = !xpath;
	o.threads = threads;
	o.uuid = &u;
	o.parent = parent;
	o.external_path = xpath;
	if ((err = sqb_writer_open(&w, path, &o)))
		return err;
	err = sqb_writer_add_memory(w, 0, size, mem, dirty);
	if (!err) /* a second region, also several batches long */
		err = sqb_writer_add_memory(w, 1ull << 32, size / 2, mem + size / 2, NULL);
	sqb_writer_stats(w, st);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

static void check_big(const char *path, const char *parent, const uint8_t *mem, uint64_t size)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	const char *pp[1] = {parent};
	uint8_t *buf = malloc(size);
	struct sqb_diag d;
	sqb_snap *s;

	assert_non_null(buf);
	assert_int_equal(open_verify(path, parent, &d), 0);
	oo.parent_paths = pp;
	oo.n_parent_paths = parent ? 1 : 0;
	assert_int_equal(sqb_snap_open(&s, path, &oo, NULL), 0);
	assert_int_equal(sqb_snap_read(s, 0, buf, size, NULL), 0);
	assert_memory_equal(buf, mem, size);
	assert_int_equal(sqb_snap_read(s, 1ull << 32, buf, size / 2, NULL), 0);
	assert_memory_equal(buf, mem + size / 2, size / 2);
	sqb_snap_free(s);
	free(buf);
}

static void test_multi_batch_regions_are_exact(void **state)
{
	const uint64_t size = 26u << 20, pages = size / 4096; /* 3 batches and a part */
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 41), *mem2 = malloc(size);
	uint64_t *dirty = calloc(pages / 64, 8), seed = 5;
	struct sqb_write_stats st;

	(void)state;
	assert_non_null(mem);
	assert_non_null(mem2);
	assert_non_null(dirty);
	/* random pages of batch 0 again in batches 2 and 3: only a read-back
	 * of what the I/O thread wrote can prove them equal */
	for (int i = 0; i < 64; i++) {
		uint64_t from = sqbt_rand(&seed) % 2048,
			 to = 4096 + sqbt_rand(&seed) % (pages - 4096);

		sqbt_fill_page(mem + from * 4096, 4096, 4, &seed);
		memcpy(mem + to * 4096, mem + from * 4096, 4096);
	}
	for (int c = SQB_CODEC_NONE; c <= SQB_CODEC_ZSTD; c++) {
		size_t n1, n3;
		uint8_t *f1, *f3;

		assert_int_equal(
		    write_big(tpath("big.sqb"), mem, size, c, 3, NULL, NULL, NULL, &st), 0);
		assert_int_equal(st.pages, pages + pages / 2);
		assert_int_equal(st.zero + st.dedup + st.raw + st.compressed, st.pages);
		assert_true(st.dedup >= 64);
		check_big(tpath("big.sqb"), NULL, mem, size);
		assert_int_equal(sqbt_normalize(tpath("big.sqb")), 0);
		f3 = sqbt_load(tpath("big.sqb"), &n3);
		assert_int_equal(
		    write_big(tpath("big.sqb"), mem, size, c, 1, NULL, NULL, NULL, &st), 0);
		assert_int_equal(sqbt_normalize(tpath("big.sqb")), 0);
		f1 = sqbt_load(tpath("big.sqb"), &n1);
		assert_non_null(f1);
		assert_non_null(f3);
		assert_int_equal(n1, n3);
		assert_memory_equal(f1, f3, n1);
		free(f1);
		free(f3);
	}
	/* a raw diff over the last one: short dirty runs are packed ([F-33a]) */
	memcpy(mem2, mem, size);
	for (uint64_t i = 0; i < pages / 16; i++) {
		uint64_t p = sqbt_rand(&seed) % pages;

		sqbt_fill_page(mem2 + p * 4096, 4096, (int)(sqbt_rand(&seed) % 5), &seed);
		mem2[p * 4096 + 9] ^= 0x5a;
		dirty[p / 64] |= 1ull << (p % 64);
	}
	{
		sqb_snap *parent;

		assert_int_equal(sqb_snap_open(&parent, tpath("big.sqb"), NULL, NULL), 0);
		assert_int_equal(write_big(tpath("bigdiff.sqb"), mem2, size, SQB_CODEC_NONE, 2,
					   parent, dirty, NULL, &st),
				 0);
		sqb_snap_free(parent);
		assert_true(st.parent > 0 && st.compressed > 0); /* packed runs */
		check_big(tpath("bigdiff.sqb"), tpath("big.sqb"), mem2, size);
	}
	/* external raw memory: every batch's RAW extents at their own offsets */
	assert_int_equal(write_big(tpath("bigx.sqb"), mem, size, SQB_CODEC_NONE, 2, NULL, NULL,
				   tpath("bigx.raw"), &st),
			 0);
	check_big(tpath("bigx.sqb"), NULL, mem, size);
	free(dirty);
	free(mem2);
	free(mem);
}

/* SQB_VERIFY_NO_DECODE checks the stored bytes against their checksums and
 * nothing more: a chunk that a faulty writer encoded wrongly, under a correct
 * checksum, passes it and fails the decoding verification (SQB_ECODEC), at
 * the same located extent.  A damaged stored byte fails both. */
static void test_no_decode_verify_guarantee(void **state)
{
	const char *base = tpath("nd-base.sqb"), *diff = tpath("nd-diff.sqb");
	const char *bad = tpath("nd-bad.sqb");
	struct sqb_diag d, d2;
	uint8_t *img, *pidx;
	size_t n, plen, k;
	uint64_t data = 0;

	(void)state;
	make_pair(SQB_CODEC_LZ4, base, diff);
	assert_int_equal(open_verify_flags(base, NULL, &d, SQB_VERIFY_NO_DECODE), 0);
	img = sqbt_load(base, &n);
	assert_non_null(img);
	pidx = sqbt_section(img, n, SQB_SEC_PIDX, 0, &plen);
	assert_non_null(pidx);
	for (k = 0; k + SQB_EXTENT_SIZE <= plen; k += SQB_EXTENT_SIZE)
		if (pidx[k + 12] == SQB_EXT_COMPRESSED && pidx[k + 13] == SQB_CODEC_LZ4)
			break;
	assert_true(k < plen);
	data = get_le64(pidx + k + 16);
	/* an LZ4 block of 0xff tokens never decodes to the extent's size */
	memset(img + data, 0xff, get_le32(pidx + k + 24));
	sqbt_fix_checksums(img, n);
	assert_int_equal(sqbt_save(bad, img, n), 0);
	assert_int_equal(open_verify_flags(bad, NULL, &d, SQB_VERIFY_NO_DECODE), 0);
	assert_int_equal(open_verify(bad, NULL, &d), -SQB_ECODEC);
	assert_int_equal(d.offset, data);
	assert_string_equal(d.section, "DATA/PIDX[0]");
	/* one damaged stored byte under the old checksum: both modes, same place */
	free(img);
	img = sqbt_load(base, &n);
	img[data + 1] ^= 0x40;
	assert_int_equal(sqbt_save(bad, img, n), 0);
	assert_int_equal(open_verify_flags(bad, NULL, &d2, SQB_VERIFY_NO_DECODE), -SQB_ECHECKSUM);
	assert_int_equal(open_verify(bad, NULL, &d), -SQB_ECHECKSUM);
	assert_int_equal(d2.offset, data);
	assert_string_equal(d2.section, "DATA/PIDX[0]");
	assert_string_equal(d2.reason, d.reason);
	assert_non_null(strstr(d2.reason, "checksum mismatch"));
	free(img);
}

/* The format does not tie file order to page order: RAW extents stored out
 * of index order, one of them all zero bytes lying between two neighbours
 * of the other, is a sound file for both verification modes (the
 * checksum-only mode merges neighbours' filler checks only for files in
 * index order). */
static void test_extents_out_of_file_order_verify(void **state)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	const char *path = tpath("order.sqb");
	uint8_t *mem = sqbt_pattern_mem(1u << 20, 4096, 5), *img, *pidx;
	sqb_snap_writer *w;
	struct sqb_diag d;
	size_t n, plen;
	uint64_t x, y;
	uint32_t len;

	(void)state;
	for (size_t i = 0; i < (1u << 20); i += 4096) /* no ZERO page: 16 RAW extents */
		mem[i] = 1;
	o.codec = SQB_CODEC_NONE;
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, 1u << 20, mem, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	free(mem);
	img = sqbt_load(path, &n);
	pidx = sqbt_section(img, n, SQB_SEC_PIDX, 0, &plen);
	assert_non_null(pidx);
	assert_true(plen >= 4 * SQB_EXTENT_SIZE);
	assert_int_equal(pidx[SQB_EXTENT_SIZE + 12], SQB_EXT_RAW);
	assert_int_equal(pidx[2 * SQB_EXTENT_SIZE + 12], SQB_EXT_RAW);
	/* extents 1 (P at x) and 2 (Q at y = x + len): P moves to y, zeroed; Q to x */
	x = get_le64(pidx + SQB_EXTENT_SIZE + 16);
	y = get_le64(pidx + 2 * SQB_EXTENT_SIZE + 16);
	len = get_le32(pidx + SQB_EXTENT_SIZE + 24);
	assert_int_equal(y, x + len);
	memset(img + y, 0, len);
	put_le64(pidx + SQB_EXTENT_SIZE + 16, y);
	put_le64(pidx + 2 * SQB_EXTENT_SIZE + 16, x);
	sqbt_fix_checksums(img, n);
	assert_int_equal(sqbt_save(path, img, n), 0);
	free(img);
	assert_int_equal(open_verify(path, NULL, &d), 0);
	assert_int_equal(open_verify_flags(path, NULL, &d, SQB_VERIFY_NO_DECODE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_bit_flip_is_detected_raw),
	    cmocka_unit_test(test_every_bit_flip_is_detected_compressed),
	    cmocka_unit_test(test_truncation_at_every_offset),
	    cmocka_unit_test(test_truncation_under_an_open_snapshot),
	    cmocka_unit_test(test_unknown_critical_refused_ancillary_skipped),
	    cmocka_unit_test(test_version_rules),
	    cmocka_unit_test(test_unknown_ancillary_record_is_returned),
	    cmocka_unit_test(test_single_page_reads_match),
	    cmocka_unit_test(test_layout_does_not_depend_on_threads),
	    cmocka_unit_test(test_multi_batch_regions_are_exact),
	    cmocka_unit_test(test_no_decode_verify_guarantee),
	    cmocka_unit_test(test_extents_out_of_file_order_verify),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
