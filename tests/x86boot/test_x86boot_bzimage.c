/* bzImage loader tests: a hand-built image with a protocol 2.15 setup
 * header loads at pref_address with boot_params, e820, initrd and identity
 * page tables as the Linux boot protocol requires; malformed headers are
 * rejected with the expected error code.  If SQB_TEST_BZIMAGE names a real
 * kernel (the guest kit's vmlinuz), it must load too. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xbtest.h"

#define MiB	    (1024ULL * 1024)
#define SETUP_SECTS 3
#define KOFF	    ((SETUP_SECTS + 1) * 512)
#define KSIZE	    0x3000

struct bz {
	uint8_t buf[KOFF + KSIZE];
};

static void bz_build(struct bz *b)
{
	uint8_t *d = b->buf;

	memset(d, 0, sizeof(b->buf));
	d[0x1f1] = SETUP_SECTS;
	xbt_put16(d + 0x1fa, 0xffff); /* vid_mode: normal */
	xbt_put16(d + 0x1fe, 0xaa55);
	d[0x200] = 0xeb;
	d[0x201] = 0x6a; /* jump: header ends at 0x26c */
	memcpy(d + 0x202, "HdrS", 4);
	xbt_put16(d + 0x206, 0x020f);
	d[0x211] = 0x01;		  /* LOADED_HIGH */
	xbt_put32(d + 0x22c, 0x7fffffff); /* initrd_addr_max */
	xbt_put32(d + 0x230, 0x200000);	  /* kernel_alignment */
	d[0x234] = 1;			  /* relocatable */
	xbt_put16(d + 0x236, 0x7f);	  /* xloadflags incl. XLF_KERNEL_64 */
	xbt_put32(d + 0x238, 2047);	  /* cmdline_size */
	xbt_put64(d + 0x258, 0x1000000);  /* pref_address */
	xbt_put32(d + 0x260, 0x400000);	  /* init_size */
	for (unsigned int i = 0; i < KSIZE; i++)
		d[KOFF + i] = (uint8_t)(i * 13 + 1);
}

static int load_bz(struct xbt_guest *g, const struct bz *b, size_t len,
		   struct sqb_x86boot_entry *out, struct sqb_diag *diag)
{
	char *path = xbt_tmpfile(b->buf, len);
	int err;

	g->in.kernel_path = path;
	err = sqb_x86boot_load(&g->in, out, diag);
	xbt_rmfile(path);
	return err;
}

/* Walk the loader's 4-level tables like the MMU would (2 MiB pages). */
static uint64_t translate(const struct xbt_guest *g, uint64_t cr3, uint64_t va)
{
	uint64_t e = xbt_get64(g->ram + cr3 + 8 * ((va >> 39) & 511));

	assert_true(e & 1);
	e = xbt_get64(g->ram + (e & ~0xfffULL) + 8 * ((va >> 30) & 511));
	assert_true(e & 1);
	e = xbt_get64(g->ram + (e & ~0xfffULL) + 8 * ((va >> 21) & 511));
	assert_true((e & 0x83) == 0x83);
	return (e & ~0x1fffffULL & 0xffffffffffULL) | (va & 0x1fffff);
}

static void test_valid_bzimage_boot_params(void **state)
{
	struct xbt_guest g;
	struct bz b;
	struct sqb_x86boot_entry out;
	uint8_t rd[10000];
	char *rdpath;
	const uint8_t *bp;

	(void)state;
	xbt_guest_init(&g, 64 * MiB, 0xaa);
	bz_build(&b);
	memset(rd, 0x3c, sizeof(rd));
	rdpath = xbt_tmpfile(rd, sizeof(rd));
	g.in.initrd_path = rdpath;
	g.in.cmdline = "console=ttyS0 panic=1";
	assert_int_equal(load_bz(&g, &b, sizeof(b.buf), &out, NULL), 0);

	assert_int_equal(out.mode, SQB_X86BOOT_LONG64);
	assert_int_equal(out.rip, 0x1000200);
	assert_int_equal(out.rsi, 0x7000);
	assert_int_equal(out.kernel_start, 0x1000000);
	assert_int_equal(out.kernel_end, 0x1400000);
	assert_memory_equal(g.ram + 0x1000000, b.buf + KOFF, KSIZE);

	bp = g.ram + out.rsi;
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(xbt_get16(bp + 0x206), 0x020f);
	assert_int_equal(bp[0x210], 0xff); /* type_of_loader */
	assert_int_equal(bp[0x1ef], 0);	   /* sentinel */
	assert_string_equal((const char *)g.ram + xbt_get32(bp + 0x228), "console=ttyS0 panic=1");
	assert_int_equal(xbt_get32(bp + 0x218), out.initrd_start);
	assert_int_equal(xbt_get32(bp + 0x21c), sizeof(rd));
	assert_true(out.initrd_start >= out.kernel_end); /* high, above the kernel */
	assert_true(out.initrd_start + sizeof(rd) <= 64 * MiB);
	assert_true(out.initrd_start + sizeof(rd) > 64 * MiB - 4096 * 2);
	assert_memory_equal(g.ram + out.initrd_start, rd, sizeof(rd));
	assert_int_equal(xbt_get64(bp + 0x70), 0xe0000); /* acpi_rsdp_addr */
	assert_int_equal(bp[0x1e8], 3);			 /* e820 entries */
	assert_int_equal(xbt_get64(bp + 0x2d0 + 40), 0x100000);
	assert_int_equal(xbt_get64(bp + 0x2d0 + 48), 63 * MiB);
	assert_int_equal(xbt_get32(bp + 0x2d0 + 56), 1);

	/* identity map of the first 4 GiB; GDT with a 64-bit code segment */
	assert_int_equal(out.cr3 & 0xfff, 0);
	assert_true(out.cr3 < 0x9fc00);
	assert_int_equal(translate(&g, out.cr3, 0), 0);
	assert_int_equal(translate(&g, out.cr3, 0x1000200), 0x1000200);
	assert_int_equal(translate(&g, out.cr3, 0xfee00000), 0xfee00000);
	assert_int_equal(translate(&g, out.cr3, 0xffffffffULL), 0xffffffffULL);
	assert_int_equal(xbt_get64(g.ram + out.gdt_base + 8), 0x00af9b000000ffffULL);
	xbt_rmfile(rdpath);
	xbt_guest_free(&g);
}

static void test_relocation_and_initrd_limit(void **state)
{
	struct xbt_guest g;
	struct bz b;
	struct sqb_x86boot_entry out;
	uint8_t rd[100];
	char *rdpath;

	(void)state;
	xbt_guest_init(&g, 16 * MiB, 0);
	bz_build(&b);
	rdpath = xbt_tmpfile(rd, sizeof(rd));
	g.in.initrd_path = rdpath;
	xbt_put32(b.buf + 0x22c, 0xbfffff); /* initrd below 12 MiB */
	/* pref_address 16 MiB is past RAM: relocatable, so 2 MiB-aligned at 2 MiB */
	assert_int_equal(load_bz(&g, &b, sizeof(b.buf), &out, NULL), 0);
	assert_int_equal(out.kernel_start, 2 * MiB);
	assert_int_equal(out.rip, 2 * MiB + 0x200);
	assert_true(out.initrd_start + sizeof(rd) <= 0xc00000);
	assert_true(out.initrd_start >= 0xc00000 - 4096);

	b.buf[0x234] = 0; /* not relocatable: must go to pref_address */
	assert_int_equal(load_bz(&g, &b, sizeof(b.buf), &out, NULL), -ENOSPC);
	xbt_rmfile(rdpath);
	xbt_guest_free(&g);
}

struct bad_bz {
	const char *name;
	size_t off;
	unsigned int width;
	uint64_t value;
	int err;
};

static const struct bad_bz bad_bz_cases[] = {
    {"boot_flag", 0x1fe, 2, 0x1234, -SQB_EBADMAGIC},
    {"protocol 2.11", 0x206, 2, 0x020b, -SQB_EVERSION},
    {"no 64-bit entry", 0x236, 2, 0x7e, -SQB_EUNSUPPORTED},
    {"zImage (not loaded high)", 0x211, 1, 0, -SQB_EUNSUPPORTED},
    {"header end too short", 0x201, 1, 0x20, -SQB_ECORRUPT},
    {"header end too long", 0x201, 1, 0xa0, -SQB_ECORRUPT},
    {"setup sectors past file", 0x1f1, 1, 200, -SQB_ETRUNCATED},
    {"alignment not a power of two", 0x230, 4, 0x300000, -SQB_ECORRUPT},
    {"cmdline_size too small", 0x238, 4, 5, -SQB_ELIMIT},
    {"initrd_addr_max tiny", 0x22c, 4, 0xfffff, -ENOSPC},
};

static void test_malformed_bzimage_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_bz_cases) / sizeof(bad_bz_cases[0]); i++) {
		const struct bad_bz *c = &bad_bz_cases[i];
		struct xbt_guest g;
		struct bz b;
		struct sqb_x86boot_entry out;
		struct sqb_diag diag = {0};
		uint8_t rd[16] = {0};
		char *rdpath = xbt_tmpfile(rd, sizeof(rd));
		int err;

		xbt_guest_init(&g, 32 * MiB, 0xaa);
		bz_build(&b);
		if (c->width == 1)
			b.buf[c->off] = (uint8_t)c->value;
		else if (c->width == 2)
			xbt_put16(b.buf + c->off, (uint16_t)c->value);
		else
			xbt_put32(b.buf + c->off, (uint32_t)c->value);
		g.in.cmdline = "console=ttyS0";
		g.in.initrd_path = rdpath;
		err = load_bz(&g, &b, sizeof(b.buf), &out, &diag);
		if (err != c->err)
			fail_msg("%s: got %d (%s), want %d", c->name, err, diag.reason, c->err);
		assert_true(c->err == -SQB_EBADMAGIC || diag.reason[0]);
		xbt_rmfile(rdpath);
		xbt_guest_free(&g);
	}
}

/* Random corruption of the setup header never crashes (run under ASan). */
static void test_mutated_headers_never_crash(void **state)
{
	struct xbt_guest g;
	static struct bz base, b;
	struct sqb_x86boot_entry out;
	unsigned int seed = 777, ok = 0;

	(void)state;
	xbt_guest_init(&g, 32 * MiB, 0);
	bz_build(&base);
	for (int iter = 0; iter < 300; iter++) {
		b = base;
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245 + 12345;
			b.buf[0x1f1 + (seed >> 8) % (0x270 - 0x1f1)] = (uint8_t)(seed >> 20);
		}
		ok += load_bz(&g, &b, sizeof(b.buf), &out, NULL) == 0;
	}
	assert_true(ok < 300);
	xbt_guest_free(&g);
}

static void test_real_kernel_if_given(void **state)
{
	const char *path = getenv("SQB_TEST_BZIMAGE");
	struct xbt_guest g;
	struct sqb_x86boot_entry out;
	struct sqb_diag diag = {0};
	int err;

	(void)state;
	if (!path || !*path) {
		fprintf(stderr, "SQB_TEST_BZIMAGE not set: real-kernel check not run\n");
		return;
	}
	xbt_guest_init(&g, 256 * MiB, 0);
	g.in.kernel_path = path;
	g.in.cmdline = sqb_x86boot_default_cmdline();
	err = sqb_x86boot_load(&g.in, &out, &diag);
	if (err)
		fail_msg("%s: %d %s", path, err, diag.reason);
	assert_true(out.mode == SQB_X86BOOT_LONG64 || out.mode == SQB_X86BOOT_PROT32);
	xbt_guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_bzimage_boot_params),
	    cmocka_unit_test(test_relocation_and_initrd_limit),
	    cmocka_unit_test(test_malformed_bzimage_rejected),
	    cmocka_unit_test(test_mutated_headers_never_crash),
	    cmocka_unit_test(test_real_kernel_if_given),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
