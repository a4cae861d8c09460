/* Drives the built squib-snap binary on real files (made by mkfixture, the
 * public snapfmt writer, or imported from raw files written here): byte
 * identity through import/extract, diff+merge and 5-deep chains, merge
 * refusals leaving no output, JSON fields, located errors, exit codes,
 * merge/repack --state writing a loadable STATE/MEMORY pair. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

static const char *bin, *fix;
static char dir[64];

/* Run "squib-snap ARGS" in the temp dir; stdout -> out.txt, stderr -> err.txt. */
static int snap(const char *fmt, ...)
{
	char args[1024], cmd[1400];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "cd %s && %s %s >out.txt 2>err.txt", dir, bin, args);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void mk(const char *fmt, ...)
{
	char args[512], cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "cd %s && %s %s", dir, fix, args);
	assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static int exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *x = slurp(a, &la), *y = slurp(b, &lb);

	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(la, lb);
	assert_memory_equal(x, y, la);
	free(x);
	free(y);
}

static void assert_contains(const char *file, const char *needle)
{
	char *s = slurp(file, NULL);

	assert_non_null(s);
	if (!strstr(s, needle))
		fail_msg("%s does not contain '%s':\n%s", file, needle, s);
	free(s);
}

/* A located message: "SECTION at 0xOFF: reason". */
static void assert_located(const char *file)
{
	char *s = slurp(file, NULL), *at;

	assert_non_null(s);
	at = strstr(s, " at 0x");
	if (!at || !strchr(at + 6, ':'))
		fail_msg("%s has no located message:\n%s", file, s);
	free(s);
}

static yajl_val json_out(void)
{
	char err[256];
	char *s = slurp("out.txt", NULL);
	yajl_val v;

	assert_non_null(s);
	v = yajl_tree_parse(s, err, sizeof(err));
	if (!v)
		fail_msg("output is not JSON: %s\n%s", err, s);
	free(s);
	return v;
}

static yajl_val jget(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *path[4] = {a, b, c, NULL};
	yajl_val r = yajl_tree_get(v, path, yajl_t_any);

	if (!r)
		fail_msg("JSON has no field %s/%s/%s", a, b ? b : "", c ? c : "");
	return r;
}

static yajl_val jidx(yajl_val arr, size_t i)
{
	assert_true(YAJL_IS_ARRAY(arr));
	assert_true(YAJL_GET_ARRAY(arr)->len > i);
	return YAJL_GET_ARRAY(arr)->values[i];
}

static void write_raw(const char *name, const uint8_t *p, size_t n)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void test_import_inspect_verify_extract_identical(void **state)
{
	(void)state;
	mk("raw mem.raw 5 6144");
	assert_int_equal(snap("import --memory mem.raw --layout 0:2M,0x100000000:4M --codec zstd:3 "
			      "--dedup -o imp.sqb"),
			 0);
	assert_int_equal(snap("verify imp.sqb"), 0);
	assert_contains("out.txt", "OK");
	assert_int_equal(snap("extract imp.sqb --memory back.raw"), 0);
	assert_same_file("mem.raw", "back.raw");
	/* region 1 alone is the tail of the raw file */
	assert_int_equal(snap("extract imp.sqb --memory r1.raw --region 1"), 0);
	{
		size_t la, lb;
		char *a = slurp("mem.raw", &la), *b = slurp("r1.raw", &lb);

		assert_int_equal(lb, 4u << 20);
		assert_memory_equal(a + (2u << 20), b, lb);
		free(a);
		free(b);
	}
	assert_int_equal(snap("inspect --json imp.sqb"), 0);
	{
		yajl_val v = json_out(), r;

		assert_string_equal(YAJL_GET_STRING(jget(v, "kind", NULL, NULL)), "full");
		r = jget(v, "memory", "regions", NULL);
		assert_int_equal(YAJL_GET_ARRAY(r)->len, 2);
		assert_int_equal(YAJL_GET_INTEGER(jget(jidx(r, 1), "gpa", NULL, NULL)), 1ll << 32);
		assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "pages", NULL)), 1536);
		assert_true(YAJL_GET_INTEGER(jget(v, "memory", "dedup", NULL)) > 0);
		assert_true(YAJL_GET_DOUBLE(jget(v, "memory", "compression_ratio", NULL)) > 1.0);
		yajl_tree_free(v);
	}
	/* every codec, and 16 KiB pages, round-trip too */
	assert_int_equal(snap("import --memory mem.raw --codec lz4 -o lz4.sqb"), 0);
	assert_int_equal(snap("import --memory mem.raw --codec none --page-size 16384 "
			      "--arch aarch64 -o none.sqb"),
			 0);
	assert_int_equal(snap("extract lz4.sqb --memory b2.raw"), 0);
	assert_same_file("mem.raw", "b2.raw");
	assert_int_equal(snap("extract none.sqb --memory b3.raw"), 0);
	assert_same_file("mem.raw", "b3.raw");
	/* a layout that does not describe the whole file is refused */
	assert_int_equal(snap("import --memory mem.raw --layout 0:2M -o short.sqb"), 1);
	assert_false(exists("short.sqb"));
}

static void test_diff_then_merge_reproduces_b(void **state)
{
	const size_t size = 4u << 20;
	uint8_t *a = malloc(size), *b;
	uint64_t s = 99;

	(void)state;
	for (size_t i = 0; i < size; i += 8) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(a + i, &s, 8);
		if ((i / 4096) % 3 == 0)
			memset(a + i, 0, 8);
	}
	b = malloc(size);
	memcpy(b, a, size);
	for (size_t p = 7; p < size / 4096; p += 37)
		b[p * 4096 + 100] ^= 0x5a;
	memset(b + 10 * 4096, 0, 4096);
	write_raw("a.raw", a, size);
	write_raw("b.raw", b, size);
	assert_int_equal(snap("import --memory a.raw -o A.sqb --codec lz4"), 0);
	assert_int_equal(snap("import --memory b.raw -o B.sqb"), 0);
	assert_int_equal(snap("diff A.sqb B.sqb --json"), 0);
	{
		yajl_val v = json_out();
		long long changed = YAJL_GET_INTEGER(jget(v, "memory", "changed_pages", NULL));

		assert_int_equal(changed, (long long)((size / 4096 - 7 + 36) / 37 + 1));
		assert_false(YAJL_IS_TRUE(jget(v, "identical", NULL, NULL)));
		assert_true(YAJL_IS_ARRAY(jget(v, "memory", "ranges", NULL)));
		yajl_tree_free(v);
	}
	assert_int_equal(snap("diff A.sqb B.sqb --output D.sqb"), 0);
	assert_int_equal(snap("inspect --json D.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "kind", NULL, NULL)), "diff");
		assert_true(YAJL_GET_INTEGER(jget(v, "memory", "parent", NULL)) > 900);
		yajl_tree_free(v);
	}
	/* the parent hint is relative to the diff's folder */
	assert_int_equal(snap("diff A.sqb B.sqb --output sub/D.sqb"), 1); /* no such folder */
	{
		char sub[256];

		snprintf(sub, sizeof(sub), "%s/sub", dir);
		assert_int_equal(mkdir(sub, 0755), 0);
	}
	assert_int_equal(snap("diff A.sqb B.sqb --output sub/D.sqb --codec lz4"), 0);
	assert_int_equal(snap("inspect --json sub/D.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "parent", "path_hint", NULL)),
				    "../A.sqb");
		yajl_tree_free(v);
	}
	assert_int_equal(snap("verify sub/D.sqb"), 0);
	assert_int_equal(snap("merge A.sqb D.sqb -o M.sqb"), 0);
	assert_int_equal(snap("extract M.sqb --memory m.raw"), 0);
	assert_same_file("b.raw", "m.raw");
	/* the same with full state: vCPUs, devices, config come from B */
	mk("full FA.sqb 1 2048");
	mk("full FB.sqb 2 2048");
	assert_int_equal(snap("diff FA.sqb FB.sqb --output FD.sqb --codec lz4"), 0);
	assert_int_equal(snap("merge FA.sqb FD.sqb -o FM.sqb"), 0);
	assert_int_equal(snap("extract FM.sqb --memory fm.raw"), 0);
	assert_int_equal(snap("extract FB.sqb --memory fb.raw"), 0);
	assert_same_file("fb.raw", "fm.raw");
	assert_int_equal(snap("extract FM.sqb --vcpu 1 --json"), 0);
	{
		char *m = slurp("out.txt", NULL);

		assert_int_equal(snap("extract FB.sqb --vcpu 1 --json"), 0);
		{
			char *bb = slurp("out.txt", NULL);

			assert_string_equal(m, bb);
			free(bb);
		}
		free(m);
	}
	assert_int_equal(snap("diff FB.sqb FM.sqb --json"), 0);
	{
		yajl_val v = json_out();

		assert_true(YAJL_IS_TRUE(jget(v, "identical", NULL, NULL)));
		yajl_tree_free(v);
	}
	free(a);
	free(b);
}

static void test_five_deep_chain_merges_like_step_by_step(void **state)
{
	char layers[256] = "base.sqb";

	(void)state;
	mk("full base.sqb 3 4096");
	for (int i = 1; i <= 5; i++) {
		char prev[16], cur[16], out[16];

		snprintf(prev, sizeof(prev), i == 1 ? "base.sqb" : "d%d.sqb", i - 1);
		snprintf(cur, sizeof(cur), "d%d.sqb", i);
		mk("diff %s %s %d %s", prev, cur, i, i % 2 ? "lz4" : "zstd");
		strcat(layers, " ");
		strcat(layers, cur);
		/* step i: flatten the first i layers == reading layer i live */
		snprintf(out, sizeof(out), "s%d.sqb", i);
		assert_int_equal(snap("merge %s -o %s", layers, out), 0);
		assert_int_equal(snap("extract %s --memory s.raw --force", out), 0);
		assert_int_equal(snap("extract %s --memory live.raw --force", cur), 0);
		assert_same_file("s.raw", "live.raw");
	}
	assert_int_equal(snap("verify d5.sqb"), 0);
	assert_contains("out.txt", "6 layers");
	/* the 5 diffs squashed into one diff on base, then flattened */
	assert_int_equal(snap("merge %s --diff -o q.sqb", layers), 0);
	assert_int_equal(snap("inspect --json q.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "kind", NULL, NULL)), "diff");
		assert_int_equal(YAJL_GET_ARRAY(jget(v, "chain", NULL, NULL))->len, 2);
		yajl_tree_free(v);
	}
	assert_int_equal(snap("merge base.sqb q.sqb -o qm.sqb"), 0);
	assert_int_equal(snap("extract qm.sqb --memory qm.raw"), 0);
	assert_int_equal(snap("extract s5.sqb --memory s5.raw"), 0);
	assert_same_file("qm.raw", "s5.raw");
	assert_int_equal(snap("diff s5.sqb qm.sqb --json"), 0);
	{
		yajl_val v = json_out();

		assert_true(YAJL_IS_TRUE(jget(v, "identical", NULL, NULL)));
		yajl_tree_free(v);
	}
}

static long data_offset(const char *file);
static void corrupt_at(const char *src, const char *dst, long off, int truncate);

static void test_merge_refusals_leave_no_output(void **state)
{
	(void)state;
	mk("full rb.sqb 4 1024");
	mk("diff rb.sqb r1.sqb 1");
	mk("diff r1.sqb r2.sqb 2");
	mk("full other.sqb 5 1024");
	/* wrong base */
	assert_int_equal(snap("merge other.sqb r1.sqb -o x.sqb"), 1);
	assert_contains("err.txt", "is not a diff on other.sqb");
	assert_false(exists("x.sqb"));
	/* wrong order */
	assert_int_equal(snap("merge rb.sqb r2.sqb r1.sqb -o x.sqb"), 1);
	assert_contains("err.txt", "wrong order");
	assert_false(exists("x.sqb"));
	/* a full snapshot above the base */
	assert_int_equal(snap("merge rb.sqb other.sqb -o x.sqb"), 1);
	assert_contains("err.txt", "full snapshot");
	assert_false(exists("x.sqb"));
	/* mismatched page size and architecture */
	mk("raw p16.raw 7 1024");
	assert_int_equal(snap("import --memory p16.raw --page-size 16K -o p16.sqb"), 0);
	mk("diff p16.sqb p16d.sqb 1");
	assert_int_equal(snap("merge rb.sqb p16d.sqb -o x.sqb"), 1);
	assert_contains("err.txt", "page size");
	assert_false(exists("x.sqb"));
	mk("full arm.sqb 4 1024 aarch64");
	mk("diff arm.sqb armd.sqb 1");
	assert_int_equal(snap("merge rb.sqb armd.sqb -o x.sqb"), 1);
	assert_contains("err.txt", "architecture");
	assert_false(exists("x.sqb"));
	/* never over an input, never over an existing file without --force */
	{
		char *before = slurp("r1.sqb", NULL);

		assert_int_equal(snap("merge rb.sqb r1.sqb -o r1.sqb --force"), 1);
		assert_contains("err.txt", "input");
		assert_int_equal(snap("verify r1.sqb"), 0);
		free(before);
	}
	assert_int_equal(snap("merge rb.sqb r1.sqb -o other.sqb"), 1);
	assert_contains("err.txt", "--force");
	assert_int_equal(snap("merge rb.sqb r1.sqb r2.sqb -o other.sqb --force"), 0);
	assert_int_equal(snap("verify other.sqb"), 0);
	/* merge reads the files it is given, not a same-identity file at the
	 * stored hint: damage rb.sqb's data and merge from a good copy */
	{
		size_t n;
		char *good = slurp("rb.sqb", &n);

		write_raw("rbcopy.sqb", (const uint8_t *)good, n);
		free(good);
	}
	corrupt_at("rbcopy.sqb", "rb.sqb", data_offset("rbcopy.sqb"), 0);
	assert_int_equal(snap("verify r1.sqb"), 1);
	assert_int_equal(snap("merge rbcopy.sqb r1.sqb -o fromcopy.sqb"), 0);
	assert_int_equal(snap("verify fromcopy.sqb"), 0);
}

/* Every error on corrupt input names the file, the section and the offset,
 * for extract, repack and merge as for verify (issue 17). */
static void test_write_side_errors_are_located(void **state)
{
	(void)state;
	mk("full lc.sqb 8 1024");
	mk("diff lc.sqb lcd.sqb 1");
	corrupt_at("lc.sqb", "lcbad.sqb", data_offset("lc.sqb"), 0);
	assert_int_equal(snap("verify lcbad.sqb"), 1);
	assert_int_equal(snap("extract lcbad.sqb --memory lc.raw"), 1);
	assert_located("err.txt");
	assert_contains("err.txt", "lcbad.sqb");
	assert_int_equal(snap("repack lcbad.sqb -o lcr.sqb"), 1);
	assert_located("err.txt");
	assert_contains("err.txt", "lcbad.sqb");
	assert_int_equal(snap("merge lcbad.sqb lcd.sqb -o lcm.sqb"), 1);
	assert_located("err.txt");
	assert_contains("err.txt", "lcbad.sqb");
}

static void test_json_fields(void **state)
{
	(void)state;
	mk("full j.sqb 6 1024");
	mk("diff j.sqb jd.sqb 1");
	assert_int_equal(snap("inspect --json jd.sqb"), 0);
	{
		yajl_val v = json_out(), vc;
		static const char *const top[] = {
		    "file",	"format_version", "producer",	"created",	   "kind",
		    "role",	"arch",		  "hypervisor", "guest_page_size", "uuid",
		    "digest",	"parent",	  "chain",	"companion",	   "sections",
		    "memory",	"vcpu_count",	  "vcpus",	"devices",	   "config",
		    "metadata", "working_set",
		};

		for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
			jget(v, top[i], NULL, NULL);
		assert_string_equal(YAJL_GET_STRING(jget(v, "arch", NULL, NULL)), "x86_64");
		jget(v, "parent", "uuid", NULL);
		assert_true(YAJL_IS_TRUE(jget(v, "parent", "opened", NULL)));
		assert_int_equal(YAJL_GET_INTEGER(jget(v, "vcpu_count", NULL, NULL)), 2);
		vc = jidx(jget(v, "vcpus", NULL, NULL), 1);
		assert_string_equal(YAJL_GET_STRING(jget(vc, "registers", "rip", NULL)),
				    "0xffffffff81000011");
		assert_string_equal(YAJL_GET_STRING(jget(vc, "registers", "cr3", NULL)),
				    "0x0000000001001000");
		jget(vc, "registers", "efer", NULL);
		assert_string_equal(YAJL_GET_STRING(jget(jidx(jget(v, "devices", NULL, NULL), 0),
							 "id", NULL, NULL)),
				    "serial0");
		assert_string_equal(YAJL_GET_STRING(jget(v, "config", "mem_size_mib", NULL)),
				    "129");
		assert_int_equal(YAJL_GET_INTEGER(jget(v, "working_set", "pages", NULL)), 7);
		assert_string_equal(YAJL_GET_STRING(jget(jidx(jget(v, "irqchip", NULL, NULL), 1),
							 "tag", NULL, NULL)),
				    "KVM_CLOCK");
		for (const char *k = "pages"; k; k = strcmp(k, "pages") ? NULL : "present")
			jget(v, "memory", k, NULL);
		jget(v, "memory", "zero", NULL);
		jget(v, "memory", "parent", NULL);
		jget(v, "memory", "compressed", NULL);
		jget(v, "memory", "stored_bytes", NULL);
		jget(jidx(jget(v, "sections", NULL, NULL), 0), "checksum", NULL, NULL);
		yajl_tree_free(v);
	}
	/* aarch64: PC, PSTATE, TTBRs */
	mk("full a.sqb 6 1024 aarch64");
	assert_int_equal(snap("extract a.sqb --vcpu 0 --json"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "registers", "pc", NULL)),
				    "0xffff800010000000");
		assert_string_equal(YAJL_GET_STRING(jget(v, "registers", "ttbr0_el1", NULL)),
				    "0x0000000040000000");
		assert_string_equal(YAJL_GET_STRING(jget(v, "registers", "ttbr1_el1", NULL)),
				    "0x0000000041000000");
		jget(v, "registers", "pstate", NULL);
		yajl_tree_free(v);
	}
	/* regions that differ in size: the extra pages are counted as added */
	mk("full jbig.sqb 6 2048");
	assert_int_equal(snap("diff j.sqb jbig.sqb --json"), 0);
	{
		yajl_val v = json_out();

		assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "added_pages", NULL)), 256);
		assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "removed_pages", NULL)), 0);
		assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "compared_pages", NULL)), 256);
		assert_int_equal(YAJL_GET_ARRAY(jget(v, "memory", "regions_only_in_b", NULL))->len,
				 2);
		assert_false(YAJL_IS_TRUE(jget(v, "identical", NULL, NULL)));
		yajl_tree_free(v);
	}
	assert_int_equal(snap("diff j.sqb jd.sqb --json"), 0);
	{
		yajl_val v = json_out(), vc;

		jget(v, "a", "uuid", NULL);
		jget(v, "memory", "changed_pages", NULL);
		jget(v, "memory", "range_count", NULL);
		vc = jidx(jget(v, "vcpus", NULL, NULL), 0);
		assert_string_equal(YAJL_GET_STRING(jget(jidx(jget(vc, "registers", NULL, NULL), 0),
							 "name", NULL, NULL)),
				    "rip");
		assert_string_equal(YAJL_GET_STRING(jget(jidx(jget(v, "config", NULL, NULL), 0),
							 "key", NULL, NULL)),
				    "mem_size_mib");
		assert_string_equal(YAJL_GET_STRING(jget(jidx(jget(v, "devices", NULL, NULL), 0),
							 "change", NULL, NULL)),
				    "changed");
		yajl_tree_free(v);
	}
	/* text output shows old -> new */
	assert_int_equal(snap("diff j.sqb jd.sqb"), 0);
	assert_contains("out.txt", "rip: 0xffffffff81000000 \xe2\x86\x92 0xffffffff81000010");
	assert_contains("out.txt", "mem_size_mib: 128 \xe2\x86\x92 129");
	assert_contains("out.txt", "KVM_CLOCK: 3 bytes differ");
	/* device state bytes */
	assert_int_equal(snap("extract j.sqb --device serial0 -o serial.bin"), 0);
	assert_contains("serial.bin", "uart-lsr=96");
}

static void corrupt_at(const char *src, const char *dst, long off, int truncate)
{
	size_t n;
	char *b = slurp(src, &n);
	char path[256];
	FILE *f;

	assert_non_null(b);
	if (off < 0)
		off += (long)n;
	snprintf(path, sizeof(path), "%s/%s", dir, dst);
	f = fopen(path, "wb");
	assert_non_null(f);
	if (!truncate)
		b[off] ^= 0x41;
	assert_int_equal(fwrite(b, 1, truncate ? (size_t)off : n, f), truncate ? (size_t)off : n);
	fclose(f);
	free(b);
}

/* File offset of the middle of the second stored extent of region 0. */
static long data_offset(const char *file)
{
	yajl_val v, r, e;
	long off = -1;
	int seen = 0;

	assert_int_equal(snap("inspect --json --memory %s", file), 0);
	v = json_out();
	r = jidx(jget(v, "memory", "regions", NULL), 0);
	e = jget(r, "extent_list", NULL, NULL);
	for (size_t i = 0; i < YAJL_GET_ARRAY(e)->len && off < 0; i++) {
		const char *path[] = {"offset", NULL};
		yajl_val o = yajl_tree_get(YAJL_GET_ARRAY(e)->values[i], path, yajl_t_number);

		if (o && seen++)
			off = (long)YAJL_GET_INTEGER(o) + 100;
	}
	yajl_tree_free(v);
	assert_true(off > 0);
	return off;
}

static void test_corrupt_and_truncated_inputs(void **state)
{
	long doff;

	(void)state;
	mk("full c.sqb 8 2048 x86_64 none");
	mk("diff c.sqb cd.sqb 1");
	doff = data_offset("c.sqb");
	/* a byte of extent data */
	corrupt_at("c.sqb", "bad_data.sqb", doff, 0);
	assert_int_equal(snap("verify bad_data.sqb"), 1);
	assert_located("out.txt");
	assert_contains("out.txt", "checksum mismatch");
	assert_int_equal(snap("extract bad_data.sqb --memory x.raw"), 1);
	assert_false(exists("x.raw"));
	/* the header */
	corrupt_at("c.sqb", "bad_hdr.sqb", 40, 0);
	assert_int_equal(snap("verify bad_hdr.sqb"), 1);
	assert_contains("out.txt", "header at 0x");
	assert_int_equal(snap("inspect bad_hdr.sqb"), 1);
	assert_located("err.txt");
	/* the directory (last 48-byte entries) */
	corrupt_at("c.sqb", "bad_dir.sqb", -20, 0);
	assert_int_equal(snap("inspect bad_dir.sqb"), 1);
	assert_located("err.txt");
	/* truncated in the middle and inside the header */
	corrupt_at("c.sqb", "trunc.sqb", 100000, 1);
	assert_int_equal(snap("verify trunc.sqb"), 1);
	assert_located("out.txt");
	corrupt_at("c.sqb", "trunc2.sqb", 100, 1);
	assert_int_equal(snap("inspect trunc2.sqb"), 1);
	assert_located("err.txt");
	assert_int_equal(snap("merge trunc.sqb cd.sqb -o m.sqb"), 1);
	assert_false(exists("m.sqb"));
	/* not a snapshot at all */
	write_raw("junk.sqb", (const uint8_t *)"hello, this is not a snapshot", 29);
	assert_int_equal(snap("verify junk.sqb"), 1);
	assert_contains("out.txt", "magic");
	/* a corrupt parent (same identity: only extent bytes differ) is a
	 * problem of the chain, named by its file */
	corrupt_at("c.sqb", "c_bad.sqb", doff, 0);
	assert_int_equal(snap("verify cd.sqb --parent c_bad.sqb"), 1);
	assert_contains("out.txt", "parent c_bad.sqb: ");
	assert_located("out.txt");
	assert_int_equal(snap("verify cd.sqb"), 0);
	/* the parent missing altogether */
	{
		char a[256];

		snprintf(a, sizeof(a), "%s/c.sqb", dir);
		assert_int_equal(unlink(a), 0);
	}
	assert_int_equal(snap("verify cd.sqb"), 1);
	assert_contains("out.txt", "not found");
	assert_int_equal(snap("inspect cd.sqb"), 0); /* inspect still works, warns */
	assert_contains("err.txt", "warning");
}

/* diff's shortcuts (sqb_snap_compare): identical stored extents and ZERO
 * pages are equal without decoding; the same pages in other codecs compare
 * equal byte by byte; one changed byte in an extent whose layout, codec and
 * length match is still found; a damaged stored extent in an otherwise
 * identical file is a checksum error, never "identical". */
static void test_diff_shortcuts_stay_exact(void **state)
{
	const size_t size = 8u << 20;
	uint8_t *a = malloc(size);
	uint64_t s = 7;

	(void)state;
	for (size_t i = 0; i < size; i += 8) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(a + i, &s, 8);
		if ((i / 4096) % 5 == 0)
			memset(a + i, 0, 8); /* ZERO pages */
		else if ((i / 4096) % 5 == 1)
			memset(a + i, (int)(i >> 12) & 0xff, 4); /* compressible */
	}
	write_raw("sa.raw", a, size);
	a[3 * 4096 + 77] ^= 1; /* one byte of one page */
	write_raw("sb.raw", a, size);
	free(a);
	assert_int_equal(snap("import --memory sa.raw -o SL.sqb --codec lz4"), 0);
	assert_int_equal(snap("import --memory sa.raw -o SL2.sqb --codec lz4"), 0);
	assert_int_equal(snap("import --memory sa.raw -o SZ.sqb --codec zstd"), 0);
	assert_int_equal(snap("import --memory sa.raw -o SN.sqb --codec none"), 0);
	assert_int_equal(snap("import --memory sb.raw -o TL.sqb --codec lz4"), 0);
	assert_int_equal(snap("import --memory sb.raw -o TN.sqb --codec none"), 0);
	/* same content: identical stored bytes, or other codecs */
	{
		static const char *const same[][2] = {
		    {"SL.sqb", "SL2.sqb"}, {"SL.sqb", "SZ.sqb"}, {"SN.sqb", "SL.sqb"}, {"SZ.sqb", "SN.sqb"}};

		for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
			yajl_val v;

			assert_int_equal(snap("diff %s %s --json", same[i][0], same[i][1]), 0);
			v = json_out();
			assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "changed_pages", NULL)), 0);
			assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "compared_pages", NULL)),
					 (long long)(size / 4096));
			yajl_tree_free(v);
		}
	}
	/* one byte: found whatever the codecs (same layout and length for none) */
	{
		static const char *const one[][2] = {
		    {"SN.sqb", "TN.sqb"}, {"SL.sqb", "TL.sqb"}, {"SZ.sqb", "TL.sqb"}, {"TN.sqb", "SL.sqb"}};

		for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
			yajl_val v, r;

			assert_int_equal(snap("diff %s %s --json", one[i][0], one[i][1]), 0);
			v = json_out();
			assert_int_equal(YAJL_GET_INTEGER(jget(v, "memory", "changed_pages", NULL)), 1);
			r = jget(v, "memory", "ranges", NULL);
			assert_int_equal(YAJL_GET_ARRAY(r)->len, 1);
			assert_int_equal(YAJL_GET_INTEGER(jget(jidx(r, 0), "gpa", NULL, NULL)), 3 * 4096);
			yajl_tree_free(v);
		}
	}
	/* damaged stored bytes, index untouched: a checksum error on either side */
	corrupt_at("SL2.sqb", "SLbad.sqb", data_offset("SL2.sqb"), 0);
	assert_int_equal(snap("diff SL.sqb SLbad.sqb"), 1);
	assert_contains("err.txt", "checksum mismatch");
	assert_contains("err.txt", "SLbad.sqb");
	assert_int_equal(snap("diff SLbad.sqb SL.sqb"), 1);
	assert_contains("err.txt", "checksum mismatch");
	/* (a copy with the same identity would be the same file: diff takes
	 * equal digests as equal memory) */
	assert_int_equal(snap("import --memory sa.raw -o SN2.sqb --codec none"), 0);
	corrupt_at("SN2.sqb", "SNbad.sqb", data_offset("SN2.sqb"), 0);
	assert_int_equal(snap("diff SN.sqb SNbad.sqb"), 1);
	assert_contains("err.txt", "checksum mismatch");
}

/* Codec of every stored extent of region 0 of `file`: 1 if any is `codec`. */
static int has_codec(const char *file, const char *codec)
{
	yajl_val v, l;
	int found = 0;

	assert_int_equal(snap("inspect --json --memory --no-parents %s", file), 0);
	v = json_out();
	l = jget(jidx(jget(v, "memory", "regions", NULL), 0), "extent_list", NULL, NULL);
	for (size_t i = 0; i < YAJL_GET_ARRAY(l)->len; i++) {
		const char *path[2] = {"codec", NULL};
		yajl_val c = yajl_tree_get(jidx(l, i), path, yajl_t_string);

		const char *cs = c ? YAJL_GET_STRING(c) : NULL;

		found |= cs && !strcmp(cs, codec);
	}
	yajl_tree_free(v);
	return found;
}

/* merge copies kept extents whose codec is the output's (issue 15): its
 * memory equals the encoding path's (an explicit level) byte for byte and
 * verify --decode accepts it; lz4 input never stays lz4 in a zstd output;
 * a damaged kept extent fails the merge, located, and verify reports it
 * the same way with and without --decode. */
static void test_merge_copy_path_and_verify_modes(void **state)
{
	long doff;

	(void)state;
	mk("big cb.sqb 3 8");
	mk("big c1.sqb 3 8 cb.sqb 1");
	mk("big c2.sqb 3 8 c1.sqb 2");
	assert_int_equal(snap("merge cb.sqb c1.sqb c2.sqb -o cf.sqb --codec lz4"), 0);
	assert_int_equal(snap("merge cb.sqb c1.sqb c2.sqb -o cs.sqb --codec lz4:1"), 0);
	assert_int_equal(snap("verify --decode cf.sqb"), 0);
	assert_contains("out.txt", "every extent decoded");
	assert_int_equal(snap("verify cf.sqb"), 0);
	assert_contains("out.txt", "cf.sqb: OK (1 layer verified)\n");
	assert_int_equal(snap("extract cf.sqb --memory cf.raw"), 0);
	assert_int_equal(snap("extract cs.sqb --memory cs.raw"), 0);
	assert_int_equal(snap("extract c2.sqb --memory c2.raw"), 0);
	assert_same_file("cf.raw", "cs.raw");
	assert_same_file("cf.raw", "c2.raw");
	assert_int_equal(snap("merge cb.sqb c1.sqb c2.sqb -o cz.sqb --codec zstd"), 0);
	assert_int_equal(snap("verify --decode cz.sqb"), 0);
	assert_false(has_codec("cz.sqb", "lz4"));
	assert_true(has_codec("cz.sqb", "zstd"));
	assert_int_equal(snap("repack cb.sqb -o cr.sqb --codec lz4"), 0);
	assert_int_equal(snap("verify --decode cr.sqb"), 0);
	assert_int_equal(snap("extract cr.sqb --memory cr.raw"), 0);
	assert_int_equal(snap("extract cb.sqb --memory cbx.raw"), 0);
	assert_same_file("cr.raw", "cbx.raw");
	/* one damaged stored byte of the base: kept by the diffs or not, the
	 * merge reads it through its checksum */
	doff = data_offset("cb.sqb");
	corrupt_at("cb.sqb", "cbad.sqb", doff, 0);
	assert_int_equal(snap("merge cbad.sqb c1.sqb c2.sqb -o cx.sqb --codec lz4"), 1);
	assert_contains("err.txt", "checksum mismatch");
	assert_located("err.txt");
	assert_false(exists("cx.sqb"));
	assert_int_equal(snap("verify cbad.sqb"), 1);
	assert_contains("out.txt", "DATA/PIDX[0] at 0x");
	assert_contains("out.txt", "checksum mismatch");
	{
		char *quick = slurp("out.txt", NULL);

		assert_int_equal(snap("verify --decode cbad.sqb"), 1);
		assert_contains("out.txt", quick);
		free(quick);
	}
	assert_int_equal(snap("pair cbad.sqb cbad.sqb --decode"), 1); /* roles, not a crash */
}

/* Damage anywhere (one byte at 48 spread offsets, 12 truncation points):
 * every command fails cleanly with 1 or succeeds, never crashes. */
static void test_damage_anywhere_fails_cleanly(void **state)
{
	static const char *const cmds[] = {"inspect --json %s", "verify %s",
					   "extract %s --vcpu 0 --json", "diff dm.sqb %s"};
	size_t n;
	char *b;

	(void)state;
	mk("full dm.sqb 12 256");
	b = slurp("dm.sqb", &n);
	assert_non_null(b);
	for (int k = 0; k < 60; k++) {
		long off =
		    k < 48 ? (long)((n - 1) * (size_t)k / 47) : (long)(n * (size_t)(k - 48) / 12);

		corrupt_at("dm.sqb", "dmx.sqb", off, k >= 48);
		for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
			int rc = snap(cmds[c], "dmx.sqb");

			if (rc != 0 && rc != 1)
				fail_msg("'%s' on dmx.sqb (%s at %ld) exited %d", cmds[c],
					 k >= 48 ? "cut" : "flip", off, rc);
			if (rc == 1 && c == 1)
				assert_located("out.txt");
		}
	}
	free(b);
}

static void test_usage_errors_exit_2(void **state)
{
	static const char *const bad[] = {
	    "",
	    "frobnicate",
	    "inspect",
	    "inspect a b",
	    "inspect --bogus x",
	    "verify",
	    "verify --max-problems 0 x",
	    "diff onlyone.sqb",
	    "merge a.sqb b.sqb",
	    "merge -o out.sqb",
	    "merge a b -o c --codec brotli",
	    "merge a b -o c --codec zstd:99",
	    "merge a b -o c --chunk-size 3000",
	    "extract x.sqb",
	    "extract x.sqb --memory a --vcpu 0",
	    "extract x.sqb --device d",
	    "extract x.sqb --vcpu -1",
	    "import -o x.sqb",
	    "import --memory m.raw -o x.sqb --layout 0-100",
	    "import --memory m.raw -o x.sqb --page-size 8192",
	    "repack x.sqb",
	    "pair onlyone",
	};
	static const char *const cmds[] = {"inspect", "verify", "diff",	  "merge",
					   "extract", "import", "repack", "pair"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = snap("%s", bad[i]);

		if (rc != 2)
			fail_msg("'squib-snap %s' exited %d, expected 2", bad[i], rc);
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(snap("%s --help", cmds[i]), 0);
		assert_contains("out.txt", "usage: squib-snap");
	}
	assert_int_equal(snap("--help"), 0);
	/* a missing file is a bad snapshot (1), not a usage error */
	assert_int_equal(snap("inspect missing.sqb"), 1);
}

static void test_pair_and_repack(void **state)
{
	(void)state;
	mk("pair st.sqb mem.sqb 9 1024");
	mk("pair st2.sqb mem2.sqb 10 1024");
	assert_int_equal(snap("pair st.sqb mem.sqb"), 0);
	assert_int_equal(snap("verify st.sqb --memory-file mem.sqb"), 0);
	assert_int_equal(snap("pair st.sqb mem2.sqb"), 1);
	assert_contains("err.txt", "is not the memory file of st.sqb");
	assert_int_equal(snap("verify st.sqb --memory-file mem2.sqb"), 1);
	assert_int_equal(snap("pair mem.sqb st.sqb"), 1);
	assert_int_equal(snap("inspect --json st.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "role", NULL, NULL)), "state");
		assert_string_equal(YAJL_GET_STRING(jget(v, "companion", "path_hint", NULL)),
				    "mem.sqb");
		yajl_tree_free(v);
	}
	/* repack: codec changes, bytes do not; a diff stays a diff */
	mk("full rp.sqb 11 2048");
	mk("diff rp.sqb rpd.sqb 1");
	assert_int_equal(snap("repack rp.sqb -o rp_none.sqb --codec none"), 0);
	assert_int_equal(
	    snap("repack rp_none.sqb -o rp_lz4.sqb --codec lz4 --dedup --chunk-size 16K"), 0);
	assert_int_equal(snap("extract rp.sqb --memory rpa.raw"), 0);
	assert_int_equal(snap("extract rp_lz4.sqb --memory rpb.raw"), 0);
	assert_same_file("rpa.raw", "rpb.raw");
	assert_int_equal(snap("repack rpd.sqb -o rpd2.sqb --codec lz4"), 0);
	assert_int_equal(snap("inspect --json rpd2.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "kind", NULL, NULL)), "diff");
		yajl_tree_free(v);
	}
	assert_int_equal(snap("extract rpd2.sqb --memory rpc.raw"), 0);
	assert_int_equal(snap("extract rpd.sqb --memory rpd.raw"), 0);
	assert_same_file("rpc.raw", "rpd.raw");
	assert_int_equal(snap("repack rp.sqb -o rp.sqb --force"), 1);
}

static int diff_identical(const char *a, const char *b)
{
	yajl_val v;
	int same;

	assert_int_equal(snap("diff --json %s %s", a, b), 0);
	v = json_out();
	same = YAJL_IS_TRUE(jget(v, "identical", NULL, NULL));
	yajl_tree_free(v);
	return same;
}

/* [F-46] merge/repack --state: the new memory file and the new state file
 * name each other; memory is the top layer's, state is STATE's; a state file
 * of another layer, or a failed second write, leaves no output at all. */
static void test_merge_with_state_writes_a_pair(void **state)
{
	(void)state;
	mk("pair sp0.sqb mp0.sqb 21 1024");
	mk("pair sp1.sqb mp1.sqb 21 1024 mp0.sqb 1");
	mk("pair sp2.sqb mp2.sqb 21 1024 mp1.sqb 2");
	assert_int_equal(snap("pair sp2.sqb mp2.sqb"), 0);
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o flat.sqb --state sp2.sqb "
			      "--state-out flat-st.sqb"),
			 0);
	assert_int_equal(snap("pair flat-st.sqb flat.sqb"), 0);
	assert_int_equal(snap("pair sp2.sqb flat.sqb"), 1);
	assert_int_equal(snap("extract mp2.sqb --memory top.raw"), 0);
	assert_int_equal(snap("extract flat.sqb --memory flat.raw"), 0);
	assert_same_file("top.raw", "flat.raw");
	assert_true(diff_identical("sp2.sqb", "flat-st.sqb")); /* vCPUs, devices, config */
	assert_false(diff_identical("sp1.sqb", "flat-st.sqb"));
	assert_int_equal(snap("inspect --json flat.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "kind", NULL, NULL)), "full");
		assert_string_equal(YAJL_GET_STRING(jget(v, "companion", "path_hint", NULL)),
				    "flat-st.sqb");
		yajl_tree_free(v);
	}
	assert_int_equal(snap("inspect --json flat-st.sqb"), 0);
	{
		yajl_val v = json_out();

		assert_string_equal(YAJL_GET_STRING(jget(v, "role", NULL, NULL)), "state");
		assert_string_equal(YAJL_GET_STRING(jget(v, "companion", "path_hint", NULL)),
				    "flat.sqb");
		yajl_tree_free(v);
	}
	/* the state file of another layer: refused before anything is written */
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o bad.sqb --state sp1.sqb "
			      "--state-out bad-st.sqb"),
			 1);
	assert_contains("err.txt", "is not the state file of the top layer mp2.sqb");
	assert_false(exists("bad.sqb"));
	assert_false(exists("bad-st.sqb"));
	/* the second write fails: the first output is removed */
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o bad.sqb --state sp2.sqb "
			      "--state-out nodir/bad-st.sqb"),
			 1);
	assert_false(exists("bad.sqb"));
	/* never over an input, not even the state file */
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o bad.sqb --state sp2.sqb "
			      "--state-out sp2.sqb --force"),
			 1);
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o sp2.sqb --state sp2.sqb "
			      "--state-out bad-st.sqb --force"),
			 1);
	assert_false(exists("bad.sqb"));
	assert_false(exists("bad-st.sqb"));
	assert_int_equal(snap("pair sp2.sqb mp2.sqb"), 0);
	assert_int_equal(snap("merge mp0.sqb mp1.sqb mp2.sqb -o bad.sqb --state sp2.sqb"), 2);
	assert_int_equal(
	    snap("merge --diff mp0.sqb mp1.sqb -o bad.sqb --state sp1.sqb --state-out b.sqb"), 2);
	/* repack keeps the parent; the new pair still loads as one */
	assert_int_equal(snap("repack mp2.sqb -o rp2.sqb --codec lz4 --state sp2.sqb "
			      "--state-out rp2-st.sqb"),
			 0);
	assert_int_equal(snap("pair rp2-st.sqb rp2.sqb"), 0);
	assert_true(diff_identical("sp2.sqb", "rp2-st.sqb"));
	assert_int_equal(snap("repack mp2.sqb -o bad.sqb --state sp0.sqb --state-out bad-st.sqb"),
			 1);
	assert_false(exists("bad.sqb"));
	assert_false(exists("bad-st.sqb"));
}

/* A Diff pair whose parent moved (e.g. files copied off another host, as the
 * arm64 test does): verify --memory-file and pair find the parent through
 * --parent; without it they fail and say where to give it. */
static void test_diff_pair_with_moved_parent(void **state)
{
	char from[128], to[128];

	(void)state;
	mk("pair mvst0.sqb mvbase.sqb 21 1024");
	mk("pair mvst.sqb mvdiff.sqb 21 1024 mvbase.sqb 1");
	assert_int_equal(snap("verify mvst.sqb --memory-file mvdiff.sqb"), 0);
	snprintf(from, sizeof(from), "%s/mvbase.sqb", dir);
	snprintf(to, sizeof(to), "%s/moved-base.sqb", dir);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(snap("verify mvst.sqb --memory-file mvdiff.sqb"), 1);
	assert_contains("err.txt", "give it with --parent");
	assert_int_equal(snap("pair mvst.sqb mvdiff.sqb"), 1);
	assert_int_equal(
	    snap("verify mvst.sqb --memory-file mvdiff.sqb --parent moved-base.sqb"), 0);
	assert_contains("out.txt", "companion identity matches");
	assert_int_equal(snap("pair mvst.sqb mvdiff.sqb --parent moved-base.sqb"), 0);
	assert_contains("out.txt", "pair OK");
	/* a parent that is not this Diff's is refused */
	mk("pair otherst.sqb other.sqb 23 1024");
	assert_int_equal(snap("pair mvst.sqb mvdiff.sqb --parent other.sqb"), 1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sqb-tools-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_import_inspect_verify_extract_identical),
	    cmocka_unit_test(test_diff_then_merge_reproduces_b),
	    cmocka_unit_test(test_five_deep_chain_merges_like_step_by_step),
	    cmocka_unit_test(test_write_side_errors_are_located),
	    cmocka_unit_test(test_merge_refusals_leave_no_output),
	    cmocka_unit_test(test_json_fields),
	    cmocka_unit_test(test_corrupt_and_truncated_inputs),
	    cmocka_unit_test(test_diff_shortcuts_stay_exact),
	    cmocka_unit_test(test_damage_anywhere_fails_cleanly),
	    cmocka_unit_test(test_usage_errors_exit_2),
	    cmocka_unit_test(test_pair_and_repack),
	    cmocka_unit_test(test_merge_with_state_writes_a_pair),
	    cmocka_unit_test(test_diff_pair_with_moved_parent),
	    cmocka_unit_test(test_merge_copy_path_and_verify_modes),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: test_squib_snap SQUIB_SNAP MKFIXTURE\n");
		return 2;
	}
	/* the commands run in the temp dir: make the paths absolute */
	bin = realpath(argv[1], NULL);
	fix = realpath(argv[2], NULL);
	if (!bin || !fix) {
		fprintf(stderr, "test_squib_snap: %s or %s not found\n", argv[1], argv[2]);
		return 2;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
