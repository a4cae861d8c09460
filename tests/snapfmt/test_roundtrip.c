/* Round trips through libsnapfmt: every extent kind, codec, page size and
 * arch; chains 1..8 deep; merge == newest state; diff(A,B) applied to A == B;
 * repack, import/export, records, key/values, devices, working set. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "squib/snapfmt.h"
#include "snap_test_util.h"

static char tmpdir[64];

static void path_in(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmpdir, name);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sqb-rt-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

/* Write mem as a snapshot with the given options and check every byte. */
static void roundtrip_one(enum sqb_codec codec, uint32_t gps, enum sqb_arch arch, int dedup,
			  uint32_t chunk)
{
	const uint64_t size = 4u << 20;
	uint8_t *mem = sqbt_pattern_mem(size, gps, 7);
	uint8_t *back = malloc(size);
	char path[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	sqb_snap *s;
	struct sqb_diag d;
	struct sqb_mem_stats ms;

	path_in(path, sizeof(path), "rt.sqb");
	o.codec = codec;
	o.guest_page_size = gps;
	o.arch = arch;
	o.hv = arch == SQB_ARCH_AARCH64 ? SQB_HV_HVF : SQB_HV_KVM;
	o.dedup = dedup;
	o.chunk_size = chunk;
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size / 2, mem, NULL), 0);
	assert_int_equal(sqb_writer_add_memory(w, 1ull << 32, size / 2, mem + size / 2, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);

	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	assert_int_equal(sqb_snap_get_info(s)->guest_page_size, gps);
	assert_int_equal(sqb_snap_get_info(s)->arch, arch);
	assert_int_equal(sqb_snap_region_count(s), 2);
	assert_int_equal(sqb_snap_read(s, 0, back, size / 2, &d), 0);
	assert_int_equal(sqb_snap_read(s, 1ull << 32, back + size / 2, size / 2, &d), 0);
	assert_memory_equal(mem, back, size);
	/* unaligned reads cross page and extent boundaries */
	assert_int_equal(sqb_snap_read(s, 12345, back, 70000, &d), 0);
	assert_memory_equal(mem + 12345, back, 70000);
	sqb_snap_mem_stats(s, &ms);
	assert_int_equal(ms.pages, size / gps);
	assert_true(ms.zero > 0);
	if (dedup)
		assert_true(ms.dedup > 0);
	else
		assert_int_equal(ms.dedup, 0);
	if (codec == SQB_CODEC_NONE)
		assert_int_equal(ms.compressed, 0);
	else
		assert_true(ms.compressed > 0);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	/* RAW extents are mmap-able: offset congruent to guest offset */
	for (unsigned int r = 0; r < 2; r++) {
		const struct sqb_extent *e = sqb_snap_extents(s, r);

		for (size_t i = 0; i < sqb_snap_extent_count(s, r); i++)
			if (e[i].kind == SQB_EXT_RAW)
				assert_int_equal(e[i].data % 65536, (e[i].first_page * gps) % 65536);
	}
	sqb_snap_free(s);
	free(mem);
	free(back);
}

static void test_roundtrip_every_codec_page_size_arch(void **state)
{
	static const enum sqb_codec codecs[] = { SQB_CODEC_NONE, SQB_CODEC_LZ4, SQB_CODEC_ZSTD };
	static const uint32_t pages[] = { 4096, 16384 };

	(void)state;
	for (int c = 0; c < 3; c++)
		for (int p = 0; p < 2; p++)
			for (int a = 1; a <= 2; a++)
				for (int dd = 0; dd < 2; dd++)
					roundtrip_one(codecs[c], pages[p], a, dd, 0);
	roundtrip_one(SQB_CODEC_ZSTD, 4096, SQB_ARCH_X86_64, 1, 1u << 20);
	roundtrip_one(SQB_CODEC_LZ4, 4096, SQB_ARCH_X86_64, 0, 4096);
}

static void test_records_kv_devices_wset_roundtrip(void **state)
{
	char path[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	sqb_snap *s;
	uint8_t regs[144], lapic[1024], xsave[4096 + 64];
	struct sqb_record recs[3] = {
		{ SQB_REC_X86_REGS, SQB_RECF_CRITICAL, sizeof(regs), regs },
		{ SQB_REC_X86_LAPIC, SQB_RECF_CRITICAL, sizeof(lapic), lapic },
		{ SQB_REC_X86_XSAVE, SQB_RECF_CRITICAL, 4100, xsave },
	};
	struct sqb_record *got;
	unsigned int n;
	void *back;
	struct sqb_kv *kv;
	struct sqb_device dev = { .type = 7, .version = 2, .bus_addr = 0x3f8, .irq = 4 };
	struct sqb_wset_range ws[2] = { { 0x1000, 3 }, { 0x100000, 1 } }, *wr;
	size_t nw;

	(void)state;
	for (size_t i = 0; i < sizeof(regs); i++)
		regs[i] = (uint8_t)i;
	memset(lapic, 0xab, sizeof(lapic));
	memset(xsave, 0x5a, sizeof(xsave));
	strcpy(dev.id, "serial0");
	dev.state = "uartstate";
	dev.state_len = 9;
	path_in(path, sizeof(path), "state.sqb");
	o.role = SQB_ROLE_STATE;
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_vcpu(w, 0, recs, 3), 0);
	assert_int_equal(sqb_writer_add_vcpu(w, 1, recs, 2), 0);
	assert_int_equal(sqb_writer_add_records(w, SQB_SEC_INTC, 0, recs, 1), 0);
	assert_int_equal(sqb_writer_set_kv(w, SQB_SEC_CONF, "vcpu_count", "2", 1), 0);
	assert_int_equal(sqb_writer_set_kv(w, SQB_SEC_CONF, "mem_size_mib", "128", 3), 0);
	assert_int_equal(sqb_writer_set_kv(w, SQB_SEC_META, "label", "web", 3), 0);
	assert_int_equal(sqb_writer_set_kv(w, SQB_SEC_META, "Bad Key", "x", 1), -EINVAL);
	assert_int_equal(sqb_writer_add_device(w, &dev), 0);
	assert_int_equal(sqb_writer_set_working_set(w, ws, 2), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, 4096, xsave, NULL), -SQB_ESTATE);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);

	assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
	assert_int_equal(sqb_snap_get_info(s)->role, SQB_ROLE_STATE);
	assert_int_equal(sqb_snap_vcpu_count(s), 2);
	assert_int_equal(sqb_snap_records(s, SQB_SEC_VCPU, 0, &got, &n, &back, NULL), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(sqb_record_find(got, n, SQB_REC_X86_REGS)->data, regs, sizeof(regs));
	assert_int_equal(sqb_record_find(got, n, SQB_REC_X86_XSAVE)->len, 4100);
	assert_memory_equal(sqb_record_find(got, n, SQB_REC_X86_XSAVE)->data, xsave, 4100);
	free(got);
	free(back);
	assert_int_equal(sqb_snap_kv(s, SQB_SEC_CONF, &kv, &n, &back, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[1].key, "mem_size_mib");
	assert_string_equal(kv[1].value, "128");
	free(kv);
	free(back);
	assert_int_equal(sqb_snap_device_count(s), 1);
	{
		struct sqb_device d2;

		assert_int_equal(sqb_snap_device(s, 0, &d2, &back, NULL), 0);
		assert_string_equal(d2.id, "serial0");
		assert_int_equal(d2.irq, 4);
		assert_int_equal(d2.state_len, 9);
		assert_memory_equal(d2.state, "uartstate", 9);
		free(back);
	}
	assert_int_equal(sqb_snap_working_set(s, &wr, &nw, NULL), 0);
	assert_int_equal(nw, 2);
	assert_int_equal(wr[1].gpa, 0x100000);
	free(wr);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	sqb_snap_free(s);
}

/* Build a chain of `depth` diffs over a base, each changing some pages,
 * then check every layer reads back its own state and merge == newest. */
static void chain_depth(int depth, enum sqb_codec codec)
{
	const uint64_t size = 2u << 20;
	const uint32_t gps = 4096;
	uint8_t *mem = sqbt_pattern_mem(size, gps, 1);
	uint8_t *back = malloc(size);
	uint64_t *dirty = calloc(size / gps / 64 + 1, 8);
	char paths[10][128], merged[128], squashed[128];
	sqb_snap *layer = NULL;
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	struct sqb_diag d;

	o.codec = codec;
	path_in(paths[0], sizeof(paths[0]), "c0.sqb");
	assert_int_equal(sqb_writer_open(&w, paths[0], &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0x100000, size, mem, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&layer, paths[0], NULL, &d), 0);

	for (int i = 1; i <= depth; i++) {
		memset(dirty, 0, (size / gps / 64 + 1) * 8);
		sqbt_mutate(mem, size, gps, (unsigned)i, dirty);
		snprintf(paths[i], sizeof(paths[i]), "%s/c%d.sqb", tmpdir, i);
		o.parent = layer;
		assert_int_equal(sqb_writer_open(&w, paths[i], &o), 0);
		assert_int_equal(sqb_writer_add_memory(w, 0x100000, size, mem, dirty), 0);
		assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
		sqb_writer_free(w);
		sqb_snap_free(layer);
		/* open by the stored parent hint */
		assert_int_equal(sqb_snap_open(&layer, paths[i], NULL, &d), 0);
		assert_int_equal(sqb_snap_get_info(layer)->kind, SQB_SNAP_DIFF);
		assert_int_equal(sqb_snap_read(layer, 0x100000, back, size, &d), 0);
		assert_memory_equal(mem, back, size);
	}
	assert_int_equal(sqb_snap_verify(layer, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	/* merge flattens the chain into the newest state */
	path_in(merged, sizeof(merged), "merged.sqb");
	assert_int_equal(sqb_snap_merge(merged, layer, &o, 0), 0);
	{
		sqb_snap *m;
		struct sqb_mem_stats ms;

		assert_int_equal(sqb_snap_open(&m, merged, NULL, &d), 0);
		assert_int_equal(sqb_snap_get_info(m)->kind, SQB_SNAP_FULL);
		sqb_snap_mem_stats(m, &ms);
		assert_int_equal(ms.parent, 0);
		assert_int_equal(sqb_snap_read(m, 0x100000, back, size, &d), 0);
		assert_memory_equal(mem, back, size);
		sqb_snap_free(m);
	}
	/* squash everything above the base into one diff on the base */
	if (depth >= 2) {
		sqb_snap *q;

		path_in(squashed, sizeof(squashed), "squashed.sqb");
		assert_int_equal(sqb_snap_merge(squashed, layer, &o, SQB_MERGE_KEEP_BASE), 0);
		assert_int_equal(sqb_snap_open(&q, squashed, NULL, &d), 0);
		assert_int_equal(sqb_snap_get_info(q)->kind, SQB_SNAP_DIFF);
		assert_memory_equal(sqb_snap_get_info(q)->parent_uuid.b,
				    sqb_snap_get_info(sqb_snap_parent(q))->uuid.b, 16);
		assert_null(sqb_snap_parent(sqb_snap_parent(q)));
		assert_int_equal(sqb_snap_read(q, 0x100000, back, size, &d), 0);
		assert_memory_equal(mem, back, size);
		sqb_snap_free(q);
	}
	/* the merge never writes over an input */
	assert_int_equal(sqb_snap_merge(paths[depth], layer, &o, 0), -EEXIST);
	sqb_snap_free(layer);
	free(mem);
	free(back);
	free(dirty);
}

static void test_chains_1_to_8_deep(void **state)
{
	(void)state;
	for (int depth = 1; depth <= 8; depth++)
		chain_depth(depth, depth % 2 ? SQB_CODEC_ZSTD : SQB_CODEC_NONE);
}

static void test_diff_applied_to_a_gives_b(void **state)
{
	const uint64_t size = 2u << 20;
	uint8_t *a = sqbt_pattern_mem(size, 4096, 3), *b = malloc(size), *back = malloc(size);
	char pa[128], pb[128], pd[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	sqb_snap *sa, *sb, *sd;
	struct sqb_mem_stats ms;
	const char *parents[1];
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;

	(void)state;
	memcpy(b, a, size);
	sqbt_mutate(b, size, 4096, 9, NULL);
	memset(b + 8192, 0, 4096); /* a page that becomes zero */
	path_in(pa, sizeof(pa), "A.sqb");
	path_in(pb, sizeof(pb), "B.sqb");
	path_in(pd, sizeof(pd), "D.sqb");
	o.codec = SQB_CODEC_LZ4;
	assert_int_equal(sqb_writer_open(&w, pa, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, a, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_writer_open(&w, pb, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, b, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&sa, pa, NULL, NULL), 0);
	assert_int_equal(sqb_snap_open(&sb, pb, NULL, NULL), 0);
	assert_int_equal(sqb_snap_write_diff(pd, sa, sb, &o), 0);
	parents[0] = pa;
	oo.parent_paths = parents;
	oo.n_parent_paths = 1;
	assert_int_equal(sqb_snap_open(&sd, pd, &oo, NULL), 0);
	sqb_snap_mem_stats(sd, &ms);
	assert_true(ms.parent > ms.pages / 2); /* most pages unchanged */
	assert_int_equal(sqb_snap_read(sd, 0, back, size, NULL), 0);
	assert_memory_equal(back, b, size);
	/* a wrong parent is refused by identity */
	sqb_snap_free(sd);
	parents[0] = pb;
	oo.n_parent_paths = 1;
	{
		struct sqb_diag d;
		/* hide the stored hint's target so only the wrong candidate remains */
		char moved[140];

		snprintf(moved, sizeof(moved), "%s.moved", pa);
		assert_int_equal(rename(pa, moved), 0);
		assert_int_equal(sqb_snap_open(&sd, pd, &oo, &d), -SQB_EPARENT);
		assert_non_null(strstr(d.reason, "not this snapshot's parent"));
		assert_int_equal(rename(moved, pa), 0);
	}
	sqb_snap_free(sa);
	sqb_snap_free(sb);
	free(a);
	free(b);
	free(back);
}

static void test_repack_import_export(void **state)
{
	const uint64_t size = 3u << 20;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 5), *back = malloc(size);
	char raw[128], imp[128], rep[128], exp[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_region layout[2] = { { 0, 1u << 20, 0 }, { 1ull << 32, 2u << 20, 0 } };
	sqb_snap *s, *r;
	int fd;

	(void)state;
	path_in(raw, sizeof(raw), "mem.raw");
	path_in(imp, sizeof(imp), "imp.sqb");
	path_in(rep, sizeof(rep), "rep.sqb");
	path_in(exp, sizeof(exp), "exp.raw");
	fd = open(raw, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, mem, size), (ssize_t)size);
	close(fd);
	o.codec = SQB_CODEC_ZSTD;
	o.dedup = 1;
	assert_int_equal(sqb_snap_import_raw(imp, raw, layout, 2, &o), 0);
	layout[1].size = 1u << 20;
	assert_int_equal(sqb_snap_import_raw(imp, raw, layout, 2, &o), -SQB_EMISMATCH);
	assert_int_equal(sqb_snap_open(&s, imp, NULL, NULL), 0);
	assert_int_equal(sqb_snap_region_count(s), 2);
	o.codec = SQB_CODEC_NONE;
	o.dedup = 0;
	assert_int_equal(sqb_snap_repack(rep, s, &o), 0);
	assert_int_equal(sqb_snap_open(&r, rep, NULL, NULL), 0);
	assert_int_equal(sqb_snap_export_raw(r, exp, -1), 0);
	fd = open(exp, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, size), (ssize_t)size);
	close(fd);
	assert_memory_equal(mem, back, size);
	sqb_snap_free(s);
	sqb_snap_free(r);
	free(mem);
	free(back);
}

/* [F-33a] a diff's short dirty runs are packed as stored chunks, long runs
 * stay mmap-able RAW, and both read back exactly. */
static void test_diff_packs_short_runs(void **state)
{
	const uint64_t size = 4u << 20, pages = size / 4096;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 11), *back = malloc(size);
	uint64_t *dirty = calloc(pages / 64, 8);
	char pa[128], pd[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_mem_stats ms;
	sqb_snap_writer *w;
	sqb_snap *a, *d;

	(void)state;
	path_in(pa, sizeof(pa), "pack-base.sqb");
	path_in(pd, sizeof(pd), "pack-diff.sqb");
	assert_int_equal(sqb_writer_open(&w, pa, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, mem, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	for (uint64_t p = 3; p < pages; p += 37) { /* isolated pages */
		memset(mem + p * 4096, (int)(p & 0xff) | 1, 4096);
		dirty[p / 64] |= 1ull << (p % 64);
	}
	for (uint64_t p = 512; p < 512 + 64; p++) { /* one 256 KiB run */
		memset(mem + p * 4096, 0x5a, 4096);
		dirty[p / 64] |= 1ull << (p % 64);
	}
	assert_int_equal(sqb_snap_open(&a, pa, NULL, NULL), 0);
	o.parent = a;
	assert_int_equal(sqb_writer_open(&w, pd, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, mem, dirty), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&d, pd, NULL, NULL), 0);
	sqb_snap_mem_stats(d, &ms);
	assert_true(ms.compressed > 0); /* the isolated pages, stored */
	assert_true(ms.raw >= 64);	/* the long run */
	for (size_t i = 0; i < sqb_snap_extent_count(d, 0); i++) {
		const struct sqb_extent *e = &sqb_snap_extents(d, 0)[i];

		if (e->kind == SQB_EXT_COMPRESSED)
			assert_int_equal(e->codec, SQB_CODEC_NONE);
	}
	assert_int_equal(sqb_snap_read(d, 0, back, size, NULL), 0);
	assert_memory_equal(back, mem, size);
	assert_int_equal(sqb_snap_verify(d, 0, 0, NULL, NULL), 0);
	sqb_snap_free(d);
	sqb_snap_free(a);
	free(mem);
	free(back);
	free(dirty);
}

/* defer_commit: finish leaves an fsynced temporary and the final path
 * untouched; free removes the temporary unless the caller disowned it after
 * moving it into place itself. */
static void test_deferred_commit_leaves_the_move_to_the_caller(void **state)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	char pa[128], tmp[256];
	uint8_t mem[8192];
	sqb_snap_writer *w;
	sqb_snap *s;

	(void)state;
	memset(mem, 0x3c, sizeof(mem));
	path_in(pa, sizeof(pa), "deferred.sqb");
	o.defer_commit = 1;
	for (int keep = 0; keep < 2; keep++) {
		assert_int_equal(sqb_writer_open(&w, pa, &o), 0);
		assert_null(sqb_writer_temp_path(w));
		assert_int_equal(sqb_writer_add_memory(w, 0, sizeof(mem), mem, NULL), 0);
		assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
		assert_int_equal(access(pa, F_OK), -1);
		assert_non_null(sqb_writer_temp_path(w));
		snprintf(tmp, sizeof(tmp), "%s", sqb_writer_temp_path(w));
		assert_int_equal(access(tmp, F_OK), 0);
		if (keep) {
			assert_int_equal(rename(tmp, pa), 0);
			sqb_writer_disown_temp(w);
		}
		sqb_writer_free(w);
		assert_int_equal(access(tmp, F_OK), -1);
		assert_int_equal(access(pa, F_OK), keep ? 0 : -1);
	}
	assert_int_equal(sqb_snap_open(&s, pa, NULL, NULL), 0);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), 0);
	sqb_snap_free(s);
}

static void write_file_byte(const char *path, uint64_t off, uint8_t v)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &v, 1, (off_t)off), 1);
	close(fd);
}

/* External raw memory ([F-90]..[F-93]): the raw file is the guest memory
 * byte for byte, region after region (Firecracker's layout), zero pages as
 * holes; the index and checksums live in the container.  A Diff's raw file
 * holds only its dirty pages.  Corruption, a wrong size and another
 * snapshot's raw file are caught. */
static void test_external_raw_memory(void **state)
{
	const uint64_t r0 = 1 << 20, r1 = 512 << 10, size = r0 + r1, pages = size / 4096;
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	char pc[128], px[128], pd[128], pdx[128];
	uint8_t *mem = calloc(1, size), *back = malloc(size), *file = malloc(size);
	uint64_t *dirty = calloc((pages + 63) / 64, 8);
	struct sqb_diag d;
	struct stat st;
	sqb_snap_writer *w;
	sqb_snap *s, *c;
	int fd;

	(void)state;
	for (uint64_t p = 0; p < pages; p++)
		if (p % 3)
			memset(mem + p * 4096, (int)(p * 7 + 1), 4096);
	path_in(pc, sizeof(pc), "x-full.state");
	path_in(px, sizeof(px), "x-full.raw");
	o.external_path = px;
	assert_int_equal(sqb_writer_open(&w, pc, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, r0, mem, NULL), 0);
	assert_int_equal(sqb_writer_add_memory(w, 4ull << 30, r1, mem + r0, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	/* the raw file is exactly the memory */
	assert_int_equal(stat(px, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	fd = open(px, O_RDONLY);
	assert_int_equal(pread(fd, file, size, 0), (ssize_t)size);
	close(fd);
	assert_memory_equal(file, mem, size);
	/* opens by its hint and by an explicit path; reads and verifies */
	assert_int_equal(sqb_snap_open(&s, pc, NULL, &d), 0);
	assert_string_equal(sqb_snap_external_path(s), px);
	assert_int_equal(sqb_snap_read(s, 0, back, r0, NULL), 0);
	assert_int_equal(sqb_snap_read(s, 4ull << 30, back + r0, r1, NULL), 0);
	assert_memory_equal(back, mem, size);
	assert_int_equal(sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);

	/* a Diff whose raw file has only its dirty pages */
	for (uint64_t p = 5; p < pages; p += 41) {
		memset(mem + p * 4096, 0xa5, 4096);
		dirty[p / 64] |= 1ull << (p % 64);
	}
	path_in(pd, sizeof(pd), "x-diff.state");
	path_in(pdx, sizeof(pdx), "x-diff.raw");
	o.external_path = pdx;
	o.parent = s;
	assert_int_equal(sqb_writer_open(&w, pd, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, r0, mem, dirty), 0);
	assert_int_equal(sqb_writer_add_memory(w, 4ull << 30, r1, mem + r0, dirty + r0 / 4096 / 64), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	sqb_snap_free(s);
	assert_int_equal(sqb_snap_open(&c, pd, NULL, &d), 0);
	assert_int_equal(sqb_snap_read(c, 0, back, r0, NULL), 0);
	assert_int_equal(sqb_snap_read(c, 4ull << 30, back + r0, r1, NULL), 0);
	assert_memory_equal(back, mem, size);
	assert_int_equal(sqb_snap_verify(c, SQB_VERIFY_CHAIN, 0, NULL, NULL), 0);
	sqb_snap_free(c);
	fd = open(pdx, O_RDONLY);
	assert_int_equal(pread(fd, file, size, 0), (ssize_t)size);
	close(fd);
	for (uint64_t p = 0; p < pages; p++) {
		int is_dirty = (dirty[p / 64] >> (p % 64)) & 1;
		uint8_t want[4096];

		memset(want, 0, sizeof(want));
		if (is_dirty)
			memset(want, 0xa5, sizeof(want));
		assert_memory_equal(file + p * 4096, want, 4096);
	}

	/* a flipped byte in a RAW page: verify names a checksum mismatch */
	write_file_byte(px, 4096 + 17, 0x00);
	assert_int_equal(sqb_snap_open(&s, pc, NULL, NULL), 0);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), -SQB_ECHECKSUM);
	sqb_snap_free(s);
	write_file_byte(px, 4096 + 17, (uint8_t)(1 * 7 + 1));
	/* a non-zero byte in a zero page: the raw file no longer is the memory */
	write_file_byte(px, 3 * 4096 + 5, 0x01);
	assert_int_equal(sqb_snap_open(&s, pc, NULL, NULL), 0);
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), -SQB_ECORRUPT);
	sqb_snap_free(s);
	write_file_byte(px, 3 * 4096 + 5, 0x00);
	/* another snapshot's raw file of the same size: refused by stamp when
	 * the file system keeps xattrs (tmpfs and ext4 do) */
	oo.external_path = pdx;
	if (sqb_snap_open(&s, pc, &oo, &d) == 0) {
		print_message("note: no xattr stamp on this file system\n");
		sqb_snap_free(s);
	} else {
		assert_non_null(strstr(d.reason, "another snapshot"));
	}
	/* wrong size */
	assert_int_equal(truncate(px, (off_t)(size - 4096)), 0);
	assert_int_equal(sqb_snap_open(&s, pc, NULL, &d), -SQB_EMISMATCH);
	assert_non_null(strstr(d.reason, "bytes"));
	free(mem);
	free(back);
	free(file);
	free(dirty);
}

/* sqb_snap_drop_index(): the handle keeps its file, path and info; every
 * operation that needs a page index refuses with -SQB_ESTATE instead of
 * reading pages as absent (docs/fleet.md "Load leftovers"). */
static void test_dropped_index_refuses(void **state)
{
	const uint64_t size = 1u << 20;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, 3), *back = malloc(size);
	char path[128], out[128];
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_mem_stats ms;
	sqb_snap_writer *w;
	sqb_snap *s, *t;
	struct sqb_diag d;
	size_t idx;

	(void)state;
	path_in(path, sizeof(path), "drop.sqb");
	path_in(out, sizeof(out), "drop-out.sqb");
	assert_int_equal(sqb_writer_open(&w, path, &o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, mem, NULL), 0);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&s, path, NULL, &d), 0);
	assert_int_equal(sqb_snap_open(&t, path, NULL, &d), 0);
	assert_true(sqb_snap_extent_count(s, 0) > 0);
	assert_int_equal(sqb_snap_extent_find(s, 0, 0, &idx), 0);
	sqb_snap_drop_index(s);
	assert_string_equal(sqb_snap_path(s), path);
	assert_true(sqb_snap_fd(s) >= 0);
	assert_int_equal(sqb_snap_get_info(s)->guest_page_size, 4096);
	assert_int_equal(sqb_snap_region_count(s), 1);
	assert_int_equal(sqb_snap_extent_count(s, 0), 0);
	assert_null(sqb_snap_extents(s, 0));
	assert_int_equal(sqb_snap_extent_find(s, 0, 0, &idx), -SQB_ESTATE);
	memset(&d, 0, sizeof(d));
	assert_int_equal(sqb_snap_read(s, 0, back, 4096, &d), -SQB_ESTATE);
	assert_string_equal(d.section, "PIDX");
	assert_non_null(strstr(d.reason, "page index released"));
	assert_int_equal(sqb_snap_verify(s, 0, 0, NULL, NULL), -SQB_ESTATE);
	assert_int_equal(sqb_snap_repack(out, s, NULL), -SQB_ESTATE);
	assert_int_equal(sqb_snap_export_raw(s, out, 0), -SQB_ESTATE);
	assert_int_equal(sqb_snap_write_diff(out, t, s, NULL), -SQB_ESTATE);
	sqb_snap_mem_stats(s, &ms);
	assert_int_equal(ms.pages, 0);
	/* another handle of the same file is unaffected */
	assert_int_equal(sqb_snap_read(t, 0, back, size, &d), 0);
	assert_memory_equal(mem, back, size);
	sqb_snap_drop_index(s); /* again: nothing left to free */
	sqb_snap_free(s);
	sqb_snap_free(t);
	free(mem);
	free(back);
}

/* Write mem (a Diff against o->parent when dirty) and read it all back:
 * the open snapshot, the writer's statistics in *st. */
static sqb_snap *mb_write(const char *path, const struct sqb_write_opts *o, const uint8_t *mem,
			  const uint64_t *dirty, uint64_t size, uint8_t *back,
			  struct sqb_write_stats *st)
{
	sqb_snap_writer *w;
	sqb_snap *s;

	assert_int_equal(sqb_writer_open(&w, path, o), 0);
	assert_int_equal(sqb_writer_add_memory(w, 0, size, mem, dirty), 0);
	sqb_writer_stats(w, st);
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
	memset(back, 0xa5, size);
	assert_int_equal(sqb_snap_read(s, 0, back, size, NULL), 0);
	assert_memory_equal(mem, back, size);
	return s;
}

/* Regions of several 8 MiB batches: the writer encodes one batch while it
 * writes the previous one.  Dedup must find copies in the batch not yet
 * written (read back only after it is written), and Full and Diff files
 * read back exactly, whatever the codec. */
static void test_multi_batch_pipeline(void **state)
{
	const uint64_t size = 40u << 20, pages = size / 4096, per = (8u << 20) / 4096;
	uint8_t *mem = malloc(size), *back = malloc(size);
	uint64_t *dirty = calloc(pages / 64, 8), seed = 99, copies = 0;
	struct sqb_write_stats st;
	char pa[128], pd[128];

	(void)state;
	assert_non_null(mem);
	assert_non_null(back);
	assert_non_null(dirty);
	for (int c = 0; c < 2; c++) {
		struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
		sqb_snap *a, *d;

		copies = 0;
		for (uint64_t i = 0; i < size / 8; i++) { /* random: every page distinct */
			uint64_t v = sqbt_rand(&seed);

			memcpy(mem + i * 8, &v, 8);
		}
		/* in every batch after the first, 3 pages repeat a page of the
		 * previous batch (still being written when this one is classified) */
		for (uint64_t p = per; p < pages; p += per, copies += 3)
			for (uint64_t k = 0; k < 3; k++)
				memcpy(mem + (p + 100 + 7 * k) * 4096,
				       mem + (p - per + 5 + 9 * k) * 4096, 4096);

		o.codec = c ? SQB_CODEC_LZ4 : SQB_CODEC_NONE;
		o.dedup = 1;
		o.threads = 2;
		path_in(pa, sizeof(pa), "mb-base.sqb");
		path_in(pd, sizeof(pd), "mb-diff.sqb");
		a = mb_write(pa, &o, mem, NULL, size, back, &st);
		assert_int_equal(st.dedup, copies);
		/* a page source that decodes into the batch's own scratch
		 * (repack: one batch is decoded while the other is written) */
		{
			struct sqb_write_opts ro = SQB_WRITE_OPTS_INIT;
			char pr[128];
			sqb_snap *r;

			path_in(pr, sizeof(pr), "mb-repack.sqb");
			ro.codec = c ? SQB_CODEC_ZSTD : SQB_CODEC_NONE; /* RAW: written from scratch */
			ro.threads = 2;
			assert_int_equal(sqb_snap_repack(pr, a, &ro), 0);
			assert_int_equal(sqb_snap_open(&r, pr, NULL, NULL), 0);
			memset(back, 0x11, size);
			assert_int_equal(sqb_snap_read(r, 0, back, size, NULL), 0);
			assert_memory_equal(mem, back, size);
			sqb_snap_free(r);
		}
		/* a Diff: isolated pages (packed) and runs across batch edges */
		memset(dirty, 0, pages / 8);
		for (uint64_t p = 1 + (uint64_t)c; p < pages; p += 29) {
			uint64_t run = p % 3 ? 1 : 40;

			for (uint64_t q = p; q < p + run && q < pages; q++) {
				memset(mem + q * 4096, (int)(q * 13 + (uint64_t)c), 4096);
				dirty[q / 64] |= 1ull << (q % 64);
			}
		}
		for (uint64_t p = per - 20; p < per + 20; p++) {
			memset(mem + p * 4096, 0x3c + c, 4096);
			dirty[p / 64] |= 1ull << (p % 64);
		}
		o.dedup = 0;
		o.parent = a;
		d = mb_write(pd, &o, mem, dirty, size, back, &st);
		sqb_snap_free(d);
		sqb_snap_free(a);
	}
	free(mem);
	free(back);
	free(dirty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_codec_page_size_arch),
		cmocka_unit_test(test_records_kv_devices_wset_roundtrip),
		cmocka_unit_test(test_chains_1_to_8_deep),
		cmocka_unit_test(test_diff_applied_to_a_gives_b),
		cmocka_unit_test(test_repack_import_export),
		cmocka_unit_test(test_diff_packs_short_runs),
		cmocka_unit_test(test_deferred_commit_leaves_the_move_to_the_caller),
		cmocka_unit_test(test_external_raw_memory),
		cmocka_unit_test(test_dropped_index_refuses),
		cmocka_unit_test(test_multi_batch_pipeline),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
