/* PVH ELF loader tests: a hand-built valid image loads where its headers say
 * and gets a correct hvm_start_info; each malformed header is rejected with
 * its expected error code, before guest RAM above 1 MiB is touched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xbtest.h"

#define MiB (1024ULL * 1024)

static int load_elf(struct xbt_guest *g, const struct xbt_elf *e, size_t len,
		    struct sqb_x86boot_entry *out, struct sqb_diag *diag)
{
	char *path = xbt_tmpfile(e->buf, len);
	int err;

	g->in.kernel_path = path;
	err = sqb_x86boot_load(&g->in, out, diag);
	xbt_rmfile(path);
	g->in.kernel_path = NULL;
	return err;
}

static void test_valid_elf_loads_segments_and_start_info(void **state)
{
	struct xbt_guest g;
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	uint8_t initrd[5000];
	char *rd;
	const uint8_t *si, *mm, *mod;

	(void)state;
	xbt_guest_init(&g, 8 * MiB, 0xaa);
	xbt_elf_build(&e);
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 7);
	rd = xbt_tmpfile(initrd, sizeof(initrd));
	g.in.initrd_path = rd;
	g.in.cmdline = "console=ttyS0 hello";
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), 0);

	assert_int_equal(out.mode, SQB_X86BOOT_PROT32);
	assert_int_equal(out.rip, 0x100010);
	assert_int_equal(out.rbx, 0x6000);
	assert_int_equal(out.kernel_start, 0x100000);
	assert_int_equal(out.kernel_end, 0x200100);
	/* text copied, its bss zeroed, data copied, nothing beyond touched */
	assert_int_equal(g.ram[0x100000], 0x90);
	assert_int_equal(g.ram[0x1001ff], 0x90);
	assert_int_equal(g.ram[0x100200], 0);
	assert_int_equal(g.ram[0x102fff], 0);
	assert_int_equal(g.ram[0x103000], 0xaa);
	assert_int_equal(g.ram[0x2000ff], 0x5a);
	assert_int_equal(g.ram[0x200100], 0xaa);

	si = g.ram + out.rbx;
	assert_int_equal(xbt_get32(si), 0x336ec578);
	assert_int_equal(xbt_get32(si + 4), 1);
	assert_int_equal(xbt_get32(si + 12), 1); /* nr_modules */
	assert_string_equal((const char *)g.ram + xbt_get64(si + 24), "console=ttyS0 hello");
	assert_int_equal(xbt_get64(si + 32), out.acpi_rsdp);
	assert_memory_equal(g.ram + out.acpi_rsdp, "RSD PTR ", 8);

	mod = g.ram + xbt_get64(si + 16);
	assert_int_equal(xbt_get64(mod), out.initrd_start);
	assert_int_equal(xbt_get64(mod + 8), sizeof(initrd));
	assert_int_equal(out.initrd_start % 4096, 0);
	assert_true(out.initrd_start + sizeof(initrd) <= 8 * MiB);
	assert_true(out.initrd_start >= 8 * MiB - 3 * 4096); /* placed high */
	assert_memory_equal(g.ram + out.initrd_start, initrd, sizeof(initrd));

	/* memmap: low RAM, reserved ACPI area, RAM above 1 MiB */
	assert_int_equal(xbt_get32(si + 48), 3);
	mm = g.ram + xbt_get64(si + 40);
	assert_int_equal(xbt_get64(mm), 0);
	assert_int_equal(xbt_get64(mm + 8), 0x9fc00);
	assert_int_equal(xbt_get32(mm + 16), 1);
	assert_int_equal(xbt_get64(mm + 24), 0xe0000);
	assert_int_equal(xbt_get64(mm + 32), 0x20000);
	assert_int_equal(xbt_get32(mm + 40), 2);
	assert_int_equal(xbt_get64(mm + 48), 0x100000);
	assert_int_equal(xbt_get64(mm + 56), 7 * MiB);
	assert_int_equal(xbt_get32(mm + 64), 1);

	/* GDT: 0x18 is a present 32-bit flat code segment, 0x10 flat data */
	assert_int_equal(out.gdt_limit, 31);
	assert_int_equal(xbt_get64(g.ram + out.gdt_base + 0x18), 0x00cf9b000000ffffULL);
	assert_int_equal(xbt_get64(g.ram + out.gdt_base + 0x10), 0x00cf93000000ffffULL);
	xbt_rmfile(rd);
	xbt_guest_free(&g);
}

static void test_four_byte_entry_note_and_section_notes(void **state)
{
	struct xbt_guest g;
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	uint8_t *sh;

	(void)state;
	xbt_guest_init(&g, 4 * MiB, 0);
	xbt_elf_build(&e);
	xbt_put32(e.buf + e.note_off + 4, 4);
	xbt_put32(e.buf + e.note_off + 16, 0x100100);
	xbt_put64(XBT_PHDR(&e, 2) + 32, 20);
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), 0);
	assert_int_equal(out.rip, 0x100100);

	/* No PT_NOTE (turned into PT_NULL), but an SHT_NOTE section. */
	xbt_put32(XBT_PHDR(&e, 2), 0);
	sh = e.buf + 0x1300;
	memset(sh, 0, 128);
	xbt_put32(sh + 64 + 4, 7); /* section 1: SHT_NOTE */
	xbt_put64(sh + 64 + 24, e.note_off);
	xbt_put64(sh + 64 + 32, 20);
	xbt_put64(e.buf + 40, 0x1300);
	xbt_put16(e.buf + 60, 2);
	assert_int_equal(load_elf(&g, &e, 0x1380, &out, NULL), 0);
	assert_int_equal(out.rip, 0x100100);
	xbt_guest_free(&g);
}

struct bad_case {
	const char *name;
	void (*mutate)(struct xbt_elf *e);
	int err;
};

static void m_magic(struct xbt_elf *e)
{
	e->buf[1] = 'X';
}
static void m_class32(struct xbt_elf *e)
{
	e->buf[4] = 1;
}
static void m_bigendian(struct xbt_elf *e)
{
	e->buf[5] = 2;
}
static void m_machine(struct xbt_elf *e)
{
	xbt_put16(e->buf + 18, 3);
}
static void m_type_rel(struct xbt_elf *e)
{
	xbt_put16(e->buf + 16, 1);
}
static void m_phentsize(struct xbt_elf *e)
{
	xbt_put16(e->buf + 54, 32);
}
static void m_phnum0(struct xbt_elf *e)
{
	xbt_put16(e->buf + 56, 0);
}
static void m_phnum_big(struct xbt_elf *e)
{
	xbt_put16(e->buf + 56, 65535);
}
static void m_phoff_past(struct xbt_elf *e)
{
	xbt_put64(e->buf + 32, 0x12f0);
}
static void m_phoff_wrap(struct xbt_elf *e)
{
	xbt_put64(e->buf + 32, UINT64_MAX - 8);
}
static void m_seg_past(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 1) + 32, 0x200);
}
static void m_seg_off_wrap(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 0) + 8, UINT64_MAX - 4);
}
static void m_filesz_gt_memsz(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 1) + 40, 0x10);
}
static void m_low_paddr(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 0) + 24, 0x7000);
}
static void m_paddr_past_ram(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 1) + 24, 64 * MiB);
}
static void m_memsz_wrap(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 1) + 40, UINT64_MAX);
}
static void m_no_load(struct xbt_elf *e)
{
	xbt_put32(XBT_PHDR(e, 0), 6);
	xbt_put32(XBT_PHDR(e, 1), 6);
}
static void m_no_note(struct xbt_elf *e)
{
	xbt_put32(e->buf + e->note_off + 8, 17);
}
static void m_note_name(struct xbt_elf *e)
{
	memcpy(e->buf + e->note_off + 12, "Xem", 4);
}
static void m_note_namesz(struct xbt_elf *e)
{
	xbt_put32(e->buf + e->note_off, 0xfffffffd);
}
static void m_note_descsz(struct xbt_elf *e)
{
	xbt_put32(e->buf + e->note_off + 4, 0x100);
}
static void m_note_desc2(struct xbt_elf *e)
{
	xbt_put32(e->buf + e->note_off + 4, 2);
}
static void m_note_seg_past(struct xbt_elf *e)
{
	xbt_put64(XBT_PHDR(e, 2) + 32, 0x10000);
}
static void m_entry_outside(struct xbt_elf *e)
{
	xbt_put64(e->buf + e->note_off + 16, 0x104000);
}
static void m_entry_high(struct xbt_elf *e)
{
	xbt_put64(e->buf + e->note_off + 16, 1ULL << 32);
}
static void m_shdr_bad(struct xbt_elf *e)
{
	m_no_note(e);
	xbt_put64(e->buf + 40, 0x1280);
	xbt_put16(e->buf + 60, 100);
}

static const struct bad_case bad_cases[] = {
    {"bad magic", m_magic, -SQB_EBADMAGIC},
    {"ELFCLASS32", m_class32, -SQB_EUNSUPPORTED},
    {"big endian", m_bigendian, -SQB_EUNSUPPORTED},
    {"not x86-64", m_machine, -SQB_EUNSUPPORTED},
    {"relocatable object", m_type_rel, -SQB_EUNSUPPORTED},
    {"phentsize", m_phentsize, -SQB_ECORRUPT},
    {"no program headers", m_phnum0, -SQB_ELIMIT},
    {"65535 program headers", m_phnum_big, -SQB_ELIMIT},
    {"phdrs past end", m_phoff_past, -SQB_ETRUNCATED},
    {"phoff wraps", m_phoff_wrap, -SQB_ETRUNCATED},
    {"segment past end", m_seg_past, -SQB_ETRUNCATED},
    {"segment offset wraps", m_seg_off_wrap, -SQB_ETRUNCATED},
    {"filesz > memsz", m_filesz_gt_memsz, -SQB_ECORRUPT},
    {"segment below 1 MiB", m_low_paddr, -SQB_ELIMIT},
    {"segment past RAM", m_paddr_past_ram, -SQB_ELIMIT},
    {"memsz wraps", m_memsz_wrap, -SQB_ELIMIT},
    {"no PT_LOAD", m_no_load, -SQB_ECORRUPT},
    {"no PVH note", m_no_note, -SQB_EUNSUPPORTED},
    {"note from another vendor", m_note_name, -SQB_EUNSUPPORTED},
    {"note namesz huge", m_note_namesz, -SQB_ETRUNCATED},
    {"note descsz past segment", m_note_descsz, -SQB_ETRUNCATED},
    {"note value 2 bytes", m_note_desc2, -SQB_ECORRUPT},
    {"note segment past end", m_note_seg_past, -SQB_ETRUNCATED},
    {"entry outside segments", m_entry_outside, -SQB_ECORRUPT},
    {"entry above 4 GiB", m_entry_high, -SQB_ECORRUPT},
    {"section headers out of bounds", m_shdr_bad, -SQB_ECORRUPT},
};

static void test_malformed_elf_rejected_with_expected_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct xbt_guest g;
		struct xbt_elf e;
		struct sqb_x86boot_entry out;
		struct sqb_diag diag;
		int err;

		xbt_guest_init(&g, 4 * MiB, 0xaa);
		xbt_elf_build(&e);
		bad_cases[i].mutate(&e);
		memset(&diag, 0, sizeof(diag));
		err = load_elf(&g, &e, e.len, &out, &diag);
		if (err != bad_cases[i].err)
			fail_msg("%s: got %d (%s), want %d", bad_cases[i].name, err, diag.reason,
				 bad_cases[i].err);
		assert_true(bad_cases[i].err == -SQB_EBADMAGIC || diag.reason[0] != 0);
		/* validation happens before any segment is copied */
		assert_int_equal(g.ram[0x100000], 0xaa);
		assert_int_equal(g.ram[0x200000], 0xaa);
		xbt_guest_free(&g);
	}
}

static void test_truncated_and_config_errors(void **state)
{
	struct xbt_guest g;
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	struct sqb_x86boot_mem two[2];
	char longcmd[SQB_X86BOOT_CMDLINE_MAX + 2];

	(void)state;
	xbt_guest_init(&g, 4 * MiB, 0);
	xbt_elf_build(&e);
	assert_int_equal(load_elf(&g, &e, 40, &out, NULL), -SQB_ETRUNCATED);
	assert_int_equal(load_elf(&g, &e, 0x1100, &out, NULL), -SQB_ETRUNCATED);

	g.in.ncpus = 0;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -SQB_ELIMIT);
	g.in.ncpus = SQB_X86BOOT_MAX_CPUS + 1;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -SQB_ELIMIT);
	g.in.ncpus = 1;

	memset(longcmd, 'x', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = 0;
	g.in.cmdline = longcmd;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -SQB_ELIMIT);
	g.in.cmdline = NULL;

	g.in.initrd_path = "/nonexistent/initrd";
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -ENOENT);
	g.in.initrd_path = NULL;

	/* first range must start at 0; ranges must be ordered */
	two[0] = (struct sqb_x86boot_mem){.host = g.ram, .gpa = 0x1000, .size = 2 * MiB};
	g.in.ram = two;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -EINVAL);
	two[0] = (struct sqb_x86boot_mem){.host = g.ram, .gpa = 0, .size = 3 * MiB};
	two[1] = (struct sqb_x86boot_mem){.host = g.ram, .gpa = 2 * MiB, .size = 1 * MiB};
	g.in.nram = 2;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -EINVAL);
	g.in.ram = &g.mem;
	g.in.nram = 1;

	g.in.kernel_path = "/nonexistent/vmlinux";
	assert_int_equal(sqb_x86boot_load(&g.in, &out, NULL), -ENOENT);
	xbt_guest_free(&g);
}

static void test_initrd_too_big_and_split_ram(void **state)
{
	struct xbt_guest g;
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	struct sqb_x86boot_mem two[2];
	uint8_t *big = calloc(1, 3 * MiB), *high = malloc(4 * MiB);
	char *rd = xbt_tmpfile(big, 3 * MiB);

	(void)state;
	xbt_guest_init(&g, 4 * MiB, 0);
	xbt_elf_build(&e);
	g.in.initrd_path = rd;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), -ENOSPC);

	/* a second range above the 32-bit gap's start gets the initrd */
	two[0] = g.mem;
	two[1] = (struct sqb_x86boot_mem){.host = high, .gpa = 0xc0000000ULL, .size = 4 * MiB};
	g.in.ram = two;
	g.in.nram = 2;
	assert_int_equal(load_elf(&g, &e, e.len, &out, NULL), 0);
	assert_int_equal(out.initrd_start, 0xc0000000ULL + 1 * MiB);
	xbt_rmfile(rd);
	free(big);
	free(high);
	xbt_guest_free(&g);
}

/* Random corruption of a valid image never crashes (run under ASan). */
static void test_mutated_images_never_crash(void **state)
{
	struct xbt_guest g;
	struct xbt_elf base, e;
	struct sqb_x86boot_entry out;
	unsigned int seed = 12345, ok = 0;

	(void)state;
	xbt_guest_init(&g, 4 * MiB, 0);
	xbt_elf_build(&base);
	for (int iter = 0; iter < 300; iter++) {
		e = base;
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245 + 12345;
			e.buf[(seed >> 8) % 0x240] = (uint8_t)(seed >> 20);
		}
		ok += load_elf(&g, &e, e.len, &out, NULL) == 0;
	}
	assert_true(ok < 300); /* the mutations did reach the validators */
	xbt_guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_elf_loads_segments_and_start_info),
	    cmocka_unit_test(test_four_byte_entry_note_and_section_notes),
	    cmocka_unit_test(test_malformed_elf_rejected_with_expected_code),
	    cmocka_unit_test(test_truncated_and_config_errors),
	    cmocka_unit_test(test_initrd_too_big_and_split_ram),
	    cmocka_unit_test(test_mutated_images_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
