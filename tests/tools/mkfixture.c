/* Test fixtures for the squib-snap tests and bench, written with the public
 * snapfmt writer: full snapshots with vCPUs, devices, config and working
 * set; diffs on them (a new state derived from the parent's memory); a
 * STATE/MEMORY pair; raw memory files.  Usage: see usage() below. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "squib/snapfmt.h"
#include "snap_test_util.h"

static void usage(void)
{
	fprintf(stderr, "usage: mkfixture full OUT SEED KIB [x86_64|aarch64] [CODEC]\n"
			"       mkfixture diff PARENT OUT ROUND [CODEC]\n"
			"       mkfixture pair STATE MEM SEED KIB [PARENT_MEM ROUND]\n"
			"       mkfixture raw OUT SEED KIB\n"
			"       mkfixture big OUT SEED MIB [PARENT ROUND]  (streamed, bench)\n");
	exit(2);
}

static int die(const char *what, int err)
{
	fprintf(stderr, "mkfixture: %s: %s\n", what, sqb_strerror(err));
	exit(1);
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* vCPU records whose values depend on (vcpu, round). */
static void add_vcpus(sqb_snap_writer *w, enum sqb_arch arch, unsigned int round)
{
	static uint8_t a[312], b[296 + 8], sys[8 + 16 * 3];
	int err;

	for (uint32_t v = 0; v < 2; v++) {
		struct sqb_record r[2];

		memset(a, 0, sizeof(a));
		memset(b, 0, sizeof(b));
		if (arch == SQB_ARCH_X86_64) {
			static uint8_t regs[144];

			for (int i = 0; i < 18; i++)
				le64(regs + 8 * i, 0x1000ull * (i + 1) + v);
			le64(regs + 8 * 16, 0xffffffff81000000ull + round * 0x10 + v); /* rip */
			le64(regs + 8 * 17, 0x202);
			le64(a + 224, 0x80050033);		   /* cr0 */
			le64(a + 240, 0x1000000 + round * 0x1000); /* cr3 */
			le64(a + 248, 0x3406f0);		   /* cr4 */
			le64(a + 264, 0xd01);			   /* efer */
			r[0] = (struct sqb_record){SQB_REC_X86_REGS, SQB_RECF_CRITICAL, 144, regs};
			r[1] = (struct sqb_record){SQB_REC_X86_SREGS, SQB_RECF_CRITICAL, 312, a};
		} else {
			for (int i = 0; i < 37; i++)
				le64(b + 8 * i, 0x100ull * i + v);
			le64(b + 8 * 33, 0xffff800010000000ull + round * 4); /* pc */
			le64(b + 8 * 34, 0x3c5);			     /* pstate */
			memset(sys, 0, sizeof(sys));
			sys[0] = 3;
			le64(sys + 8, 0xc100);
			le64(sys + 16, 0x40000000 + round * 0x1000);
			le64(sys + 24, 0xc101);
			le64(sys + 32, 0x41000000);
			le64(sys + 40, 0xc080);
			le64(sys + 48, 0x30d0199d);
			r[0] = (struct sqb_record){SQB_REC_ARM64_CORE, SQB_RECF_CRITICAL, 296, b};
			r[1] = (struct sqb_record){SQB_REC_ARM64_SYSREGS, SQB_RECF_CRITICAL,
						   sizeof(sys), sys};
		}
		if ((err = sqb_writer_add_vcpu(w, v, r, 2)))
			die("add_vcpu", err);
	}
}

static void add_state(sqb_snap_writer *w, enum sqb_arch arch, unsigned int round)
{
	struct sqb_device dev = {.type = 3, .version = 1, .bus_addr = 0x3f8, .irq = 4};
	struct sqb_wset_range ws[2] = {{0x10000, 4}, {0x40000, 2 + round}};
	char st[32], val[16];
	int err;

	add_vcpus(w, arch, round);
	{
		static uint8_t pic[16], clk[32];
		struct sqb_record ir[2] = {
		    {SQB_REC_KVM_PIC_MASTER, SQB_RECF_CRITICAL, 16, pic},
		    {SQB_REC_KVM_CLOCK, SQB_RECF_CRITICAL, 32, clk},
		};

		pic[2] = (uint8_t)(0xf8 + round); /* imr */
		le64(clk, 1000000000ull * (round + 1));
		if (arch == SQB_ARCH_X86_64 &&
		    (err = sqb_writer_add_records(w, SQB_SEC_INTC, 0, ir, 2)))
			die("add_records", err);
	}
	snprintf(dev.id, sizeof(dev.id), "serial0");
	snprintf(st, sizeof(st), "uart-lsr=%u", 0x60 + round);
	dev.state = st;
	dev.state_len = strlen(st);
	if ((err = sqb_writer_add_device(w, &dev)))
		die("add_device", err);
	dev = (struct sqb_device){.type = 9, .version = 2, .bus_addr = 0xd0000000, .irq = 5};
	snprintf(dev.id, sizeof(dev.id), "virtio-blk0");
	dev.state = "queue:0,avail=17";
	dev.state_len = 16;
	if ((err = sqb_writer_add_device(w, &dev)))
		die("add_device", err);
	snprintf(val, sizeof(val), "%u", 128 + round);
	if ((err = sqb_writer_set_kv(w, SQB_SEC_CONF, "vcpu_count", "2", 1)) ||
	    (err =
		 sqb_writer_set_kv(w, SQB_SEC_CONF, "mem_size_mib", val, (uint32_t)strlen(val))) ||
	    (err = sqb_writer_set_kv(w, SQB_SEC_META, "label", "fixture", 7)) ||
	    (err = sqb_writer_set_working_set(w, ws, 2)))
		die("state", err);
}

static enum sqb_codec codec_of(const char *s)
{
	return !s		    ? SQB_CODEC_ZSTD
	       : !strcmp(s, "none") ? SQB_CODEC_NONE
	       : !strcmp(s, "lz4")  ? SQB_CODEC_LZ4
				    : SQB_CODEC_ZSTD;
}

/* Two regions: [0, size/2) and [4 GiB, +size/2). */
static int cmd_full(const char *out, uint64_t seed, uint64_t kib, const char *arch,
		    const char *codec)
{
	uint64_t size = kib << 10;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, seed);
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	o.codec = codec_of(codec);
	o.dedup = 1;
	if (arch && !strcmp(arch, "aarch64")) {
		o.arch = SQB_ARCH_AARCH64;
		o.hv = SQB_HV_HVF;
	}
	if ((err = sqb_writer_open(&w, out, &o)) ||
	    (err = sqb_writer_add_memory(w, 0, size / 2, mem, NULL)) ||
	    (err = sqb_writer_add_memory(w, 1ull << 32, size / 2, mem + size / 2, NULL)))
		die(out, err);
	add_state(w, o.arch, 0);
	if ((err = sqb_writer_finish(w, NULL, NULL)))
		die(out, err);
	sqb_writer_free(w);
	free(mem);
	return 0;
}

static int cmd_diff(const char *parent, const char *out, unsigned int round, const char *codec)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap *p;
	sqb_snap_writer *w;
	int err;

	if ((err = sqb_snap_open(&p, parent, NULL, NULL)))
		die(parent, err);
	o.arch = sqb_snap_get_info(p)->arch;
	o.hv = sqb_snap_get_info(p)->hv;
	o.guest_page_size = sqb_snap_get_info(p)->guest_page_size;
	o.codec = codec_of(codec);
	o.parent = p;
	if ((err = sqb_writer_open(&w, out, &o)))
		die(out, err);
	for (unsigned int r = 0; r < sqb_snap_region_count(p); r++) {
		struct sqb_region rg;
		uint8_t *mem;
		uint64_t *dirty;

		sqb_snap_region(p, r, &rg);
		mem = malloc(rg.size);
		dirty = calloc(rg.size / o.guest_page_size / 64 + 1, 8);
		if ((err = sqb_snap_read(p, rg.gpa, mem, rg.size, NULL)))
			die(parent, err);
		sqbt_mutate(mem, rg.size, o.guest_page_size, round * 16 + r, dirty);
		if ((err = sqb_writer_add_memory(w, rg.gpa, rg.size, mem, dirty)))
			die(out, err);
		free(mem);
		free(dirty);
	}
	add_state(w, o.arch, round);
	if ((err = sqb_writer_finish(w, NULL, NULL)))
		die(out, err);
	sqb_writer_free(w);
	sqb_snap_free(p);
	return 0;
}

/* A STATE/MEMORY pair as the VMM writes it; with parent, the memory file is
 * a diff on parent (a memory file of an earlier pair) with round's changes
 * and the state is that of round. */
static int cmd_pair(const char *state, const char *memf, uint64_t seed, uint64_t kib,
		    const char *parent, unsigned int round)
{
	uint64_t size = kib << 10;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, seed);
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	uint64_t *dirty = NULL;
	struct sqb_uuid mu, su;
	struct sqb_digest md;
	sqb_snap_writer *w;
	sqb_snap *p = NULL;
	int err;

	if (parent) {
		if ((err = sqb_snap_open(&p, parent, NULL, NULL)))
			die(parent, err);
		dirty = calloc(size / 4096 / 64 + 1, 8);
		if ((err = sqb_snap_read(p, 0, mem, size, NULL)))
			die(parent, err);
		sqbt_mutate(mem, size, 4096, round * 16, dirty);
		o.parent = p;
	}
	/* [F-46]: each names the other; the state file's uuid is chosen first */
	for (int i = 0; i < 16; i++)
		su.b[i] = (uint8_t)(seed * 31 + round * 13 + i * 7 + 1);
	o.role = SQB_ROLE_MEMORY;
	o.companion_uuid = &su;
	if ((err = sqb_writer_open(&w, memf, &o)) ||
	    (err = sqb_writer_add_memory(w, 0, size, mem, dirty)) ||
	    (err = sqb_writer_finish(w, &mu, &md)))
		die(memf, err);
	sqb_writer_free(w);
	o.parent = NULL;
	o.role = SQB_ROLE_STATE;
	o.uuid = &su;
	o.companion_uuid = &mu;
	o.companion_digest = &md;
	o.companion_path_hint = strrchr(memf, '/') ? strrchr(memf, '/') + 1 : memf;
	if ((err = sqb_writer_open(&w, state, &o)))
		die(state, err);
	add_state(w, o.arch, round);
	if ((err = sqb_writer_finish(w, NULL, NULL)))
		die(state, err);
	sqb_writer_free(w);
	sqb_snap_free(p);
	free(dirty);
	free(mem);
	return 0;
}

static int cmd_raw(const char *out, uint64_t seed, uint64_t kib)
{
	uint64_t size = kib << 10;
	uint8_t *mem = sqbt_pattern_mem(size, 4096, seed);
	FILE *f = fopen(out, "wb");

	if (!f || fwrite(mem, 1, size, f) != size || fclose(f))
		die(out, -EIO);
	free(mem);
	return 0;
}

/* Streamed big snapshot for the bench: one region of MIB MiB, generated
 * 4 MiB at a time; with a parent, ~1/64 of the pages change per round. */
struct big_src {
	uint64_t seed;
	unsigned int round;
};

static int big_get(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		   uint8_t *kinds)
{
	struct big_src *b = ctx;
	uint8_t *p = scratch;

	*data = scratch;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t pg = first + i, s = b->seed * 0x9e3779b97f4a7c15ull + pg;
		uint64_t h = sqbt_rand(&s);

		kinds[i] = SQB_PAGE_DATA;
		if (b->round && (h >> 20) % 64 != b->round % 64) {
			kinds[i] = SQB_PAGE_PARENT;
			continue;
		}
		s += b->round * 7919;
		sqbt_fill_page(p + (size_t)i * 4096, 4096, sqbt_page_class(sqbt_rand(&s)), &s);
		if (b->round)
			p[(size_t)i * 4096 + 9] ^= (uint8_t)(b->round | 1);
	}
	return 0;
}

static int cmd_big(const char *out, uint64_t seed, uint64_t mib, const char *parent,
		   unsigned int round)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct big_src bs = {seed, round};
	struct sqb_page_source src = {big_get, &bs};
	sqb_snap *p = NULL;
	sqb_snap_writer *w;
	int err;

	o.codec = SQB_CODEC_LZ4;
	if (parent) {
		if ((err = sqb_snap_open(&p, parent, NULL, NULL)))
			die(parent, err);
		o.parent = p;
	}
	if ((err = sqb_writer_open(&w, out, &o)) ||
	    (err = sqb_writer_add_memory_src(w, 0, mib << 20, &src)))
		die(out, err);
	add_state(w, o.arch, round);
	if ((err = sqb_writer_finish(w, NULL, NULL)))
		die(out, err);
	sqb_writer_free(w);
	sqb_snap_free(p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "full") && argc >= 5)
		return cmd_full(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
				argc > 5 ? argv[5] : NULL, argc > 6 ? argv[6] : NULL);
	if (!strcmp(argv[1], "diff") && argc >= 5)
		return cmd_diff(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 0),
				argc > 5 ? argv[5] : NULL);
	if (!strcmp(argv[1], "pair") && (argc == 6 || argc == 8))
		return cmd_pair(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				strtoull(argv[5], NULL, 0), argc == 8 ? argv[6] : NULL,
				argc == 8 ? (unsigned)strtoul(argv[7], NULL, 0) : 0);
	if (!strcmp(argv[1], "raw") && argc == 5)
		return cmd_raw(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (!strcmp(argv[1], "big") && (argc == 5 || argc == 7))
		return cmd_big(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
			       argc == 7 ? argv[5] : NULL,
			       argc == 7 ? (unsigned)strtoul(argv[6], NULL, 0) : 0);
	usage();
	return 2;
}
