/* merge and repack copy a stored extent as it is (bytes and checksum) when
 * the output takes it unchanged: same codec, inside one output chunk, no
 * explicit chunk size, level or dedup.  These tests hold the copy path to
 * the encoding path: the same guest memory byte for byte, the same extent
 * layout, files that a decoding verification accepts, and no copy where the
 * codecs differ or the stored bytes are damaged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "snap_patch.h"

#define GPS	 4096u
#define R0_PAGES 512u /* 2 MiB: 32 chunks of 64 KiB */
#define R1_PAGES 48u
#define R1_GPA	 (64ull << 20)

static char tmpdir[64];
static char chain_path[3][160]; /* base.sqb, d1.sqb, d2.sqb: stable pointers */

static const char *tpath(const char *name)
{
	static char buf[4][160];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sqb-copy-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(chain_path[0], sizeof(chain_path[0]), "%s/base.sqb", tmpdir);
	snprintf(chain_path[1], sizeof(chain_path[1]), "%s/d1.sqb", tmpdir);
	snprintf(chain_path[2], sizeof(chain_path[2]), "%s/d2.sqb", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

/* The guest memory of every layer, kept to check the merged files. */
static uint8_t *mem0, *mem1, *mem2;

static void set_dirty(uint64_t *d, uint64_t p)
{
	d[p / 64] |= 1ull << (p % 64);
}

/* One layer: region 0 (R0_PAGES) and region 1 (R1_PAGES). */
static void write_layer(const char *path, const uint8_t *mem, enum sqb_codec codec, int dedup,
			const char *parent, const uint64_t *d0, const uint64_t *d1)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	sqb_snap *p = NULL;

	o.codec = codec;
	/* lz4 acceleration 17: other bytes than the default encoder makes, so
	 * that a copied extent is told apart from one encoded again */
	o.level = codec == SQB_CODEC_LZ4 ? 17 : 0;
	o.dedup = dedup;
	o.threads = 2;
	if (parent) {
		assert_int_equal(sqb_snap_open(&p, parent, NULL, NULL), 0);
		o.parent = p;
	}
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, (uint64_t)R0_PAGES * GPS, mem, d0), 0);
	assert_int_equal(sqb_writer_add_memory(w, R1_GPA, (uint64_t)R1_PAGES * GPS,
					       mem + (size_t)R0_PAGES * GPS, d1),
			 0);
	assert_int_equal(sqbt_add_state(w, SQB_ARCH_X86_64), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	sqb_snap_free(p);
}

/* base (lz4, dedup: ZERO, COMPRESSED, DEDUP extents), d1 (lz4 diff) and d2
 * (codec none diff: RAW runs and packed stored chunks). d1 overrides the
 * first page of one base extent, the last page of another, a whole 64 KiB
 * chunk exactly, turns a page zero and a zero page into data (at the edge
 * of an extent that then touches it); d2 overrides a long run and a page. */
static void make_chain(void)
{
	size_t total = (size_t)(R0_PAGES + R1_PAGES) * GPS;
	uint64_t s = 7, d0[R0_PAGES / 64] = {0}, d1[1] = {0};

	mem0 = calloc(1, total);
	assert_non_null(mem0);
	for (unsigned int i = 0; i < R0_PAGES + R1_PAGES; i++) {
		int cls = (i % 16 == 5 || i % 37 == 0) ? 0 : 2 + (int)(sqbt_rand(&s) % 3);

		sqbt_fill_page(mem0 + (size_t)i * GPS, GPS, cls, &s);
	}
	memcpy(mem0 + 100 * GPS, mem0 + 40 * GPS, 3 * GPS); /* dedup sources */
	memcpy(mem0 + (size_t)(R0_PAGES + 3) * GPS, mem0 + 41 * GPS, GPS);
	write_layer(tpath("base.sqb"), mem0, SQB_CODEC_LZ4, 1, NULL, NULL, NULL);

	mem1 = malloc(total);
	memcpy(mem1, mem0, total);
	{
		static const unsigned int pages[] = {16, 47, 5, 6, 130, 200};

		for (unsigned int k = 0; k < sizeof(pages) / sizeof(pages[0]); k++) {
			sqbt_fill_page(mem1 + (size_t)pages[k] * GPS, GPS, 4, &s);
			set_dirty(d0, pages[k]);
		}
		for (unsigned int p = 64; p < 80; p++) { /* a whole chunk */
			sqbt_fill_page(mem1 + (size_t)p * GPS, GPS, 3, &s);
			set_dirty(d0, p);
		}
		memset(mem1 + 33 * GPS, 0, GPS); /* data -> zero */
		set_dirty(d0, 33);
		sqbt_fill_page(mem1 + (size_t)(R0_PAGES + 1) * GPS, GPS, 4, &s);
		set_dirty(d1, 1);
	}
	write_layer(tpath("d1.sqb"), mem1, SQB_CODEC_LZ4, 0, tpath("base.sqb"), d0, d1);

	mem2 = malloc(total);
	memcpy(mem2, mem1, total);
	memset(d0, 0, sizeof(d0));
	d1[0] = 0;
	for (unsigned int p = 256; p < 320; p++) { /* a long run: RAW in a codec none diff */
		sqbt_fill_page(mem2 + (size_t)p * GPS, GPS, 4, &s);
		set_dirty(d0, p);
	}
	sqbt_fill_page(mem2 + 410 * GPS, GPS, 2, &s); /* short: a packed stored chunk */
	set_dirty(d0, 410);
	write_layer(tpath("d2.sqb"), mem2, SQB_CODEC_NONE, 0, tpath("d1.sqb"), d0, d1);
}

static void free_chain(void)
{
	free(mem0);
	free(mem1);
	free(mem2);
}

/* Every page of f (with its chain) equals mem; a decoding verification of
 * every layer passes. */
static void check_file(const char *f, const uint8_t *mem)
{
	size_t total = (size_t)(R0_PAGES + R1_PAGES) * GPS;
	uint8_t *got = malloc(total);
	sqb_snap *s;

	assert_int_equal(sqb_snap_open(&s, f, NULL, NULL), 0);
	assert_int_equal(sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	assert_int_equal(sqb_snap_read(s, 0, got, (size_t)R0_PAGES * GPS, NULL), 0);
	assert_int_equal(
	    sqb_snap_read(s, R1_GPA, got + (size_t)R0_PAGES * GPS, (size_t)R1_PAGES * GPS, NULL),
	    0);
	assert_memory_equal(got, mem, total);
	sqb_snap_free(s);
	free(got);
}

struct layout {
	size_t extents;
	size_t same_as_in; /* extents with the (pages, stored_len, checksum) of an input's */
	size_t by_codec[3];
};

/* Extents of f (alone), and how many match an extent of one of `ins`. */
static struct layout layout_of(const char *f, const char *const *ins, unsigned int nin)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct layout l = {0};
	sqb_snap *s, *in[4];

	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, f, &oo, NULL), 0);
	for (unsigned int k = 0; k < nin; k++)
		assert_int_equal(sqb_snap_open(&in[k], ins[k], &oo, NULL), 0);
	for (unsigned int r = 0; r < sqb_snap_region_count(s); r++) {
		const struct sqb_extent *e = sqb_snap_extents(s, r);

		for (size_t i = 0; i < sqb_snap_extent_count(s, r); i++) {
			int same = 0;

			l.extents++;
			if (e[i].kind != SQB_EXT_RAW && e[i].kind != SQB_EXT_COMPRESSED)
				continue;
			l.by_codec[e[i].codec]++;
			for (unsigned int k = 0; k < nin && !same; k++) {
				const struct sqb_extent *x = sqb_snap_extents(in[k], r);

				for (size_t j = 0; j < sqb_snap_extent_count(in[k], r) && !same;
				     j++)
					same = x[j].first_page == e[i].first_page &&
					       x[j].page_count == e[i].page_count &&
					       x[j].stored_len == e[i].stored_len &&
					       x[j].checksum == e[i].checksum;
			}
			l.same_as_in += same;
		}
	}
	for (unsigned int k = 0; k < nin; k++)
		sqb_snap_free(in[k]);
	sqb_snap_free(s);
	return l;
}

/* level or chunk != 0: the caller asked for them, so nothing is copied */
static void merge_to(const char *out, const char *top, enum sqb_codec codec, int level,
		     uint32_t chunk, unsigned int flags)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap *s;

	o.codec = codec;
	o.level = level;
	o.chunk_size = chunk;
	assert_int_equal(sqb_snap_open(&s, top, NULL, NULL), 0);
	assert_int_equal(sqb_snap_merge(out, s, &o, flags), 0);
	sqb_snap_free(s);
}

/* lz4 chain -> lz4: the kept base extents are copied; memory, layout and
 * extent count equal the encoding path's (an explicit level encodes). */
static void test_merge_copies_kept_extents(void **state)
{
	const char *ins[3] = {chain_path[0], chain_path[1], chain_path[2]};
	struct layout fast, slow;

	(void)state;
	make_chain();
	check_file(tpath("d2.sqb"), mem2);
	merge_to(tpath("fast.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 0, 0, 0);
	merge_to(tpath("slow.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 1, 0, 0);
	check_file(tpath("fast.sqb"), mem2);
	check_file(tpath("slow.sqb"), mem2);
	fast = layout_of(tpath("fast.sqb"), ins, 3);
	slow = layout_of(tpath("slow.sqb"), ins, 3);
	/* no fragmentation: one extent per chunk run as the encoder cuts them */
	assert_int_equal(fast.extents, slow.extents);
	assert_true(fast.same_as_in > 20);
	assert_true(slow.same_as_in < fast.same_as_in / 4);
	/* the diff-as-diff merge (KEEP_BASE) copies d1's extents the same way */
	merge_to(tpath("fastd.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 0, 0, SQB_MERGE_KEEP_BASE);
	check_file(tpath("fastd.sqb"), mem2);
	free_chain();
}

/* lz4 input -> zstd output never copies: every stored extent is zstd (or
 * stored, codec 0, for a chunk that did not shrink). */
static void test_mixed_codecs_are_encoded(void **state)
{
	const char *ins[3] = {chain_path[0], chain_path[1], chain_path[2]};
	struct layout l;

	(void)state;
	make_chain();
	merge_to(tpath("z.sqb"), tpath("d2.sqb"), SQB_CODEC_ZSTD, 0, 0, 0);
	check_file(tpath("z.sqb"), mem2);
	l = layout_of(tpath("z.sqb"), ins, 3);
	assert_int_equal(l.by_codec[SQB_CODEC_LZ4], 0);
	assert_true(l.by_codec[SQB_CODEC_ZSTD] > 0);
	free_chain();
}

/* Codec none output: d2's RAW extents and packed stored chunk are copied
 * (RAW placed 64 KiB-congruent, [F-33]); lz4 extents are decoded. */
static void test_codec_none_copies_raw(void **state)
{
	const char *ins[3] = {chain_path[0], chain_path[1], chain_path[2]};
	struct layout fast, slow;

	(void)state;
	make_chain();
	merge_to(tpath("n.sqb"), tpath("d2.sqb"), SQB_CODEC_NONE, 0, 0, 0);
	merge_to(tpath("ns.sqb"), tpath("d2.sqb"), SQB_CODEC_NONE, 0, 64 << 10, 0);
	check_file(tpath("n.sqb"), mem2);
	check_file(tpath("ns.sqb"), mem2);
	fast = layout_of(tpath("n.sqb"), ins, 3);
	slow = layout_of(tpath("ns.sqb"), ins, 3);
	assert_int_equal(fast.by_codec[SQB_CODEC_LZ4], 0);
	assert_int_equal(fast.extents, slow.extents);
	assert_true(fast.same_as_in >= 4); /* d2's 64-page run: 4 RAW chunks */
	/* squashed into one diff over base: packed chunks stay packed */
	merge_to(tpath("nd.sqb"), tpath("d2.sqb"), SQB_CODEC_NONE, 0, 0, SQB_MERGE_KEEP_BASE);
	merge_to(tpath("nds.sqb"), tpath("d2.sqb"), SQB_CODEC_NONE, 0, 64 << 10,
		 SQB_MERGE_KEEP_BASE);
	check_file(tpath("nd.sqb"), mem2);
	check_file(tpath("nds.sqb"), mem2);
	fast = layout_of(tpath("nd.sqb"), ins, 3);
	slow = layout_of(tpath("nds.sqb"), ins, 3);
	assert_int_equal(fast.by_codec[SQB_CODEC_LZ4], 0);
	assert_int_equal(fast.extents, slow.extents);
	assert_int_equal(fast.by_codec[SQB_CODEC_NONE], slow.by_codec[SQB_CODEC_NONE]);
	free_chain();
}

/* repack with the same codec copies every extent; with an explicit chunk
 * size it encodes again. */
static void test_repack_same_codec_copies(void **state)
{
	const char *ins[1] = {chain_path[0]};
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct layout in, l, slow;
	sqb_snap *s;

	(void)state;
	make_chain();
	o.codec = SQB_CODEC_LZ4;
	assert_int_equal(sqb_snap_open(&s, tpath("base.sqb"), NULL, NULL), 0);
	assert_int_equal(sqb_snap_repack(tpath("rp.sqb"), s, &o), 0);
	o.level = 1;
	assert_int_equal(sqb_snap_repack(tpath("rps.sqb"), s, &o), 0);
	o.level = 0;
	o.chunk_size = 128 << 10;
	assert_int_equal(sqb_snap_repack(tpath("rp128.sqb"), s, &o), 0);
	sqb_snap_free(s);
	check_file(tpath("rp.sqb"), mem0);
	check_file(tpath("rps.sqb"), mem0);
	check_file(tpath("rp128.sqb"), mem0);
	in = layout_of(tpath("base.sqb"), ins, 1);
	l = layout_of(tpath("rp.sqb"), ins, 1);
	slow = layout_of(tpath("rps.sqb"), ins, 1);
	assert_int_equal(l.extents, slow.extents);
	assert_true(slow.same_as_in < l.same_as_in / 4);
	/* base's lz4 extents are copied but where base's DEDUP pages, stored
	 * again by the repack (no dedup), share their chunk */
	assert_true(l.same_as_in * 10 >= in.by_codec[SQB_CODEC_LZ4] * 8);
	l = layout_of(tpath("rp128.sqb"), ins, 1);
	assert_true(l.extents < in.extents);
	free_chain();
}

/* A damaged stored byte in a kept extent: the copy path checks the checksum
 * as the decoding path does, so the merge fails and writes nothing. */
static void test_damaged_extent_is_not_copied(void **state)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	uint8_t *img, *pidx;
	size_t n, plen, k;
	sqb_snap *s;

	(void)state;
	make_chain();
	img = sqbt_load(tpath("base.sqb"), &n);
	pidx = sqbt_section(img, n, SQB_SEC_PIDX, 0, &plen);
	assert_non_null(pidx);
	/* an extent d1 and d2 leave alone: pages 400.. */
	for (k = 0; k + SQB_EXTENT_SIZE <= plen; k += SQB_EXTENT_SIZE)
		if (get_le64(pidx + k) >= 400 && pidx[k + 12] == SQB_EXT_COMPRESSED)
			break;
	assert_true(k < plen);
	img[get_le64(pidx + k + 16) + 3] ^= 0x10;
	assert_int_equal(sqbt_save(tpath("base.sqb"), img, n), 0);
	free(img);
	o.codec = SQB_CODEC_LZ4;
	assert_int_equal(sqb_snap_open(&s, tpath("d2.sqb"), NULL, NULL), 0);
	assert_int_equal(sqb_snap_merge(tpath("bad.sqb"), s, &o, 0), -SQB_ECHECKSUM);
	assert_int_equal(access(tpath("bad.sqb"), F_OK), -1);
	sqb_snap_free(s);
	free_chain();
}

/* Pages [lo, hi) of region 0 of s, one page per read, forward (dir > 0) or
 * backward, each checked against mem. */
static void read_pages_one_by_one(sqb_snap *s, const uint8_t *mem, unsigned int lo, unsigned int hi,
				  int dir)
{
	uint8_t page[GPS];

	for (unsigned int k = 0; k < hi - lo; k++) {
		unsigned int p = dir > 0 ? lo + k : hi - 1 - k;

		assert_int_equal(sqb_snap_read(s, (uint64_t)p * GPS, page, GPS, NULL), 0);
		assert_memory_equal(page, mem + (size_t)p * GPS, GPS);
	}
}

/* A partial read of a stored extent keeps what it decoded for the next read
 * of the same extent on the same thread (merge and diff read a lower
 * layer's chunk in pieces around the pages a diff replaced).  Every piece
 * equals the memory the layer was written from whatever the order, the
 * handle (two handles on one file, one freed and a new one opened), the
 * layer or the mode (prefix or whole decode); a damaged extent fails every
 * read of it, also right after a good read of its neighbour and in whole
 * mode; the merged file equals the one written with every piece decoded
 * on its own. */
static void test_partial_reads_keep_decoded_extent(void **state)
{
	sqb_snap *a, *b, *top;
	uint8_t *img, *pidx, page[GPS];
	size_t n, plen, k;
	uint64_t bad_first;

	(void)state;
	make_chain();
	for (int whole = 0; whole < 2; whole++) {
		int was = sqb_read_whole_extents(whole);

		assert_int_equal(sqb_snap_open(&a, chain_path[0], NULL, NULL), 0);
		assert_int_equal(sqb_snap_open(&b, chain_path[0], NULL, NULL), 0);
		read_pages_one_by_one(a, mem0, 0, R0_PAGES, 1);
		read_pages_one_by_one(a, mem0, 0, R0_PAGES, -1);
		for (unsigned int p = 0; p + 1 < R0_PAGES; p += 2) { /* two handles, interleaved */
			read_pages_one_by_one(a, mem0, p, p + 1, 1);
			read_pages_one_by_one(b, mem0, p + 1, p + 2, 1);
		}
		/* two extents, interleaved */
		for (unsigned int p = 0; p + 20 < R0_PAGES; p += 20) {
			read_pages_one_by_one(a, mem0, p, p + 1, 1);
			read_pages_one_by_one(a, mem0, p + 20, p + 21, 1);
			read_pages_one_by_one(a, mem0, p + 1, p + 2, 1);
		}
		sqb_snap_free(a);
		assert_int_equal(sqb_snap_open(&a, chain_path[1], NULL, NULL), 0);
		read_pages_one_by_one(a, mem1, 0, R0_PAGES, 1);
		read_pages_one_by_one(b, mem0, 0, R0_PAGES, -1);
		sqb_snap_free(a);
		sqb_snap_free(b);
		assert_int_equal(sqb_snap_open(&top, chain_path[2], NULL, NULL), 0);
		read_pages_one_by_one(top, mem2, 0, R0_PAGES, -1);
		read_pages_one_by_one(top, mem2, 0, R0_PAGES, 1);
		sqb_snap_free(top);
		sqb_read_whole_extents(was);
	}
	/* the merge reads base chunks in pieces around d1's and d2's pages:
	 * same memory as the chain, same extents as a merge by a thread that
	 * never keeps a decoded extent (the merge's own pool threads do) */
	merge_to(tpath("cached.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 0, 0, 0);
	check_file(tpath("cached.sqb"), mem2);
	merge_to(tpath("cachedn.sqb"), tpath("d2.sqb"), SQB_CODEC_NONE, 0, 0, 0);
	check_file(tpath("cachedn.sqb"), mem2);

	/* damage a base extent of more than two pages */
	img = sqbt_load(chain_path[0], &n);
	pidx = sqbt_section(img, n, SQB_SEC_PIDX, 0, &plen);
	assert_non_null(pidx);
	for (k = 0; k + SQB_EXTENT_SIZE <= plen; k += SQB_EXTENT_SIZE)
		if (get_le64(pidx + k) >= 400 && pidx[k + 12] == SQB_EXT_COMPRESSED &&
		    get_le32(pidx + k + 8) > 2)
			break;
	assert_true(k < plen);
	bad_first = get_le64(pidx + k);
	img[get_le64(pidx + k + 16) + 3] ^= 0x10;
	assert_int_equal(sqbt_save(chain_path[0], img, n), 0);
	free(img);
	for (int whole = 0; whole < 2; whole++) {
		int was = sqb_read_whole_extents(whole);

		assert_int_equal(sqb_snap_open(&a, chain_path[0], NULL, NULL), 0);
		if (bad_first) /* a good neighbour first */
			read_pages_one_by_one(a, mem0, (unsigned int)bad_first - 1,
					      (unsigned int)bad_first, 1);
		for (int again = 0; again < 3; again++) {
			assert_int_equal(sqb_snap_read(a, bad_first * GPS, page, GPS, NULL),
					 -SQB_ECHECKSUM);
			assert_int_equal(sqb_snap_read(a, (bad_first + 1) * GPS, page, GPS, NULL),
					 -SQB_ECHECKSUM);
		}
		sqb_snap_free(a);
		sqb_read_whole_extents(was);
	}
	free_chain();
}

static void write_diff_to(const char *out, const char *a, const char *b)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap *sa, *sb;

	o.codec = SQB_CODEC_LZ4;
	assert_int_equal(sqb_snap_open(&sa, a, NULL, NULL), 0);
	assert_int_equal(sqb_snap_open(&sb, b, NULL, NULL), 0);
	assert_int_equal(sqb_snap_write_diff(out, sa, sb, &o), 0);
	sqb_snap_free(sa);
	sqb_snap_free(sb);
}

/* diff --output (sqb_snap_write_diff) takes an extent of B that the base
 * stores with identical bytes as PARENT without decoding either: the
 * result equals the one from a B whose extents were all encoded again
 * (nothing identical: every page decoded and compared), page kinds and
 * extents included.  A damaged base extent is still a checksum error. */
static void test_write_diff_skips_identical_extents(void **state)
{
	struct sqb_mem_stats fs, ss;
	sqb_snap *f, *sl;
	uint8_t *img, *pidx;
	size_t n, plen, k;

	(void)state;
	make_chain();
	merge_to(tpath("fast.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 0, 0, 0);
	merge_to(tpath("slow.sqb"), tpath("d2.sqb"), SQB_CODEC_LZ4, 1, 0, 0);
	write_diff_to(tpath("df.sqb"), chain_path[0], tpath("fast.sqb"));
	write_diff_to(tpath("ds.sqb"), chain_path[0], tpath("slow.sqb"));
	check_file(tpath("df.sqb"), mem2);
	check_file(tpath("ds.sqb"), mem2);
	assert_int_equal(sqb_snap_open(&f, tpath("df.sqb"), NULL, NULL), 0);
	assert_int_equal(sqb_snap_open(&sl, tpath("ds.sqb"), NULL, NULL), 0);
	sqb_snap_mem_stats(f, &fs);
	sqb_snap_mem_stats(sl, &ss);
	assert_true(fs.parent > R0_PAGES / 2);
	assert_int_equal(fs.parent, ss.parent);
	assert_int_equal(fs.zero, ss.zero);
	assert_int_equal(fs.compressed + fs.raw, ss.compressed + ss.raw);
	assert_int_equal(fs.extents, ss.extents);
	sqb_snap_free(f);
	sqb_snap_free(sl);
	/* damage a base extent that fast.sqb stores identically */
	img = sqbt_load(chain_path[0], &n);
	pidx = sqbt_section(img, n, SQB_SEC_PIDX, 0, &plen);
	assert_non_null(pidx);
	for (k = 0; k + SQB_EXTENT_SIZE <= plen; k += SQB_EXTENT_SIZE)
		if (get_le64(pidx + k) >= 400 && pidx[k + 12] == SQB_EXT_COMPRESSED)
			break;
	assert_true(k < plen);
	img[get_le64(pidx + k + 16) + 3] ^= 0x10;
	assert_int_equal(sqbt_save(chain_path[0], img, n), 0);
	free(img);
	{
		struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
		sqb_snap *sa, *sb;

		o.codec = SQB_CODEC_LZ4;
		assert_int_equal(sqb_snap_open(&sa, chain_path[0], NULL, NULL), 0);
		assert_int_equal(sqb_snap_open(&sb, tpath("fast.sqb"), NULL, NULL), 0);
		assert_int_equal(sqb_snap_write_diff(tpath("dbad.sqb"), sa, sb, &o),
				 -SQB_ECHECKSUM);
		assert_int_equal(access(tpath("dbad.sqb"), F_OK), -1);
		sqb_snap_free(sa);
		sqb_snap_free(sb);
	}
	free_chain();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_copies_kept_extents),
	    cmocka_unit_test(test_mixed_codecs_are_encoded),
	    cmocka_unit_test(test_codec_none_copies_raw),
	    cmocka_unit_test(test_repack_same_codec_copies),
	    cmocka_unit_test(test_damaged_extent_is_not_copied),
	    cmocka_unit_test(test_write_diff_skips_identical_extents),
	    cmocka_unit_test(test_partial_reads_keep_decoded_extent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
