/* ACPI table tests: RSDP -> XSDT -> FADT/DSDT/MADT written by the loader
 * have valid signatures, lengths and checksums, describe every vCPU and the
 * IOAPIC, stay inside 0xe0000..0xfffff, and disassemble cleanly with iasl;
 * a DSDT built from the VMM's device list equals the built-in one for the
 * same devices, and a virtio-mmio device has Firecracker's AML shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "xbtest.h"

#define MiB (1024ULL * 1024)

struct tables {
	const uint8_t *rsdp, *xsdt, *fadt, *dsdt, *madt;
};

static void boot(struct xbt_guest *g, unsigned int ncpus, const struct sqb_x86boot_mmio_dev *mmio,
		 unsigned int nmmio, struct tables *t)
{
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	char *path;

	xbt_elf_build(&e);
	path = xbt_tmpfile(e.buf, e.len);
	xbt_guest_init(g, 4 * MiB, 0xcc);
	g->in.kernel_path = path;
	g->in.ncpus = ncpus;
	g->in.mmio = mmio;
	g->in.nmmio = nmmio;
	assert_int_equal(sqb_x86boot_load(&g->in, &out, NULL), 0);
	xbt_rmfile(path);
	assert_int_equal(out.acpi_rsdp, 0xe0000);
	t->rsdp = g->ram + out.acpi_rsdp;
	t->xsdt = g->ram + xbt_get64(t->rsdp + 24);
	t->fadt = g->ram + xbt_get64(t->xsdt + 36);
	t->madt = g->ram + xbt_get64(t->xsdt + 44);
	t->dsdt = g->ram + xbt_get64(t->fadt + 140);
}

/* Signature, length within the ACPI area, zero checksum. */
static void check_sdt(const struct xbt_guest *g, const uint8_t *t, const char *sig)
{
	uint32_t len = xbt_get32(t + 4);
	uint64_t at = (uint64_t)(t - g->ram);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= 36);
	assert_true(at >= 0xe0000 && at + len <= 0x100000);
	assert_int_equal(xbt_sum(t, len), 0);
}

static void test_root_tables_and_checksums(void **state)
{
	struct xbt_guest g;
	struct tables t;

	(void)state;
	boot(&g, 1, NULL, 0, &t);
	assert_memory_equal(t.rsdp, "RSD PTR ", 8);
	assert_int_equal(t.rsdp[15], 2); /* ACPI 2.0+ RSDP */
	assert_int_equal(xbt_get32(t.rsdp + 20), 36);
	assert_int_equal(xbt_sum(t.rsdp, 20), 0);
	assert_int_equal(xbt_sum(t.rsdp, 36), 0);
	check_sdt(&g, t.xsdt, "XSDT");
	assert_int_equal(xbt_get32(t.xsdt + 4), 36 + 2 * 8);
	check_sdt(&g, t.fadt, "FACP");
	assert_int_equal(xbt_get32(t.fadt + 4), 276);
	assert_int_equal(t.fadt[8], 6);
	assert_true(xbt_get32(t.fadt + 112) & (1u << 20)); /* hardware-reduced */
	assert_true(xbt_get16(t.fadt + 109) & (1u << 1));  /* i8042 present */
	assert_int_equal(xbt_get32(t.fadt + 40), xbt_get64(t.fadt + 140));
	check_sdt(&g, t.dsdt, "DSDT");
	check_sdt(&g, t.madt, "APIC");
	/* the tables do not overlap */
	assert_true(t.xsdt >= t.rsdp + 36);
	assert_true(t.fadt >= t.xsdt + xbt_get32(t.xsdt + 4));
	assert_true(t.dsdt >= t.fadt + 276);
	assert_true(t.madt >= t.dsdt + xbt_get32(t.dsdt + 4));
	xbt_guest_free(&g);
}

static void check_madt(unsigned int ncpus)
{
	struct xbt_guest g;
	struct tables t;
	uint32_t len, off;
	unsigned int lapics = 0, ioapics = 0;

	boot(&g, ncpus, NULL, 0, &t);
	check_sdt(&g, t.madt, "APIC");
	len = xbt_get32(t.madt + 4);
	assert_int_equal(xbt_get32(t.madt + 36), 0xfee00000);
	for (off = 44; off + 2 <= len; off += t.madt[off + 1]) {
		const uint8_t *s = t.madt + off;

		assert_true(s[1] >= 2 && off + s[1] <= len);
		if (s[0] == 0) {
			assert_int_equal(s[1], 8);
			assert_int_equal(s[3], lapics); /* APIC IDs 0..n-1 in order */
			assert_int_equal(xbt_get32(s + 4) & 1, 1);
			lapics++;
		} else if (s[0] == 1) {
			assert_int_equal(s[1], 12);
			assert_int_equal(xbt_get32(s + 4), 0xfec00000);
			assert_int_equal(xbt_get32(s + 8), 0);
			ioapics++;
		}
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	xbt_guest_free(&g);
}

static void test_madt_one_lapic_per_cpu(void **state)
{
	(void)state;
	check_madt(1);
	check_madt(2);
	check_madt(SQB_X86BOOT_MAX_CPUS);
}

static int contains(const char *file, const char *needle)
{
	static char buf[65536];
	FILE *f = fopen(file, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

/* Dump one table, disassemble it with iasl -d, return the .dsl path. */
static void iasl_disasm(const char *dir, const char *name, const uint8_t *t, char *dsl)
{
	char dat[512], cmd[1200];
	FILE *f;

	snprintf(dat, sizeof(dat), "%s/%s.dat", dir, name);
	f = fopen(dat, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(t, 1, xbt_get32(t + 4), f), xbt_get32(t + 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat > %s.log 2>&1", dir, name, name);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "cat %s/%s.log >&2", dir, name);
		(void)system(cmd);
		fail_msg("iasl -d %s failed", name);
	}
	snprintf(dsl, 512, "%s/%s.dsl", dir, name);
}

static void test_iasl_disassembles_tables(void **state)
{
	static const struct sqb_x86boot_mmio_dev mmio[2] = {
	    {.base = 0xd0000000, .size = 0x1000, .gsi = 5},
	    {.base = 0xd0001000, .size = 0x1000, .gsi = 6},
	};
	struct xbt_guest g;
	struct tables t;
	char dir[] = "/tmp/xbacpi-XXXXXX", dsl[512], cmd[600];

	(void)state;
	if (system("command -v iasl >/dev/null") != 0) {
		fail_msg("iasl not found: install acpica-tools (scripts/deps.sh does)");
	}
	assert_non_null(mkdtemp(dir));
	boot(&g, 2, mmio, 2, &t);

	iasl_disasm(dir, "dsdt", t.dsdt, dsl);
	assert_true(contains(dsl, "Device (COM1)"));
	assert_true(contains(dsl, "EisaId (\"PNP0501\")"));
	assert_true(contains(dsl, "0x03F8"));
	assert_true(contains(dsl, "IRQNoFlags ()\n                    {4}"));
	assert_true(contains(dsl, "Device (PS2K)"));
	assert_true(contains(dsl, "Device (V001)"));
	assert_true(contains(dsl, "Name (_CCA, One)"));
	assert_true(contains(dsl, "\"LNRO0005\""));
	assert_true(contains(dsl, "0xD0001000"));
	assert_true(contains(dsl, "0x00000006,"));
	assert_false(contains(dsl, "Error"));

	iasl_disasm(dir, "apic", t.madt, dsl);
	assert_true(contains(dsl, "Local Apic ID : 01"));
	assert_true(contains(dsl, "Address : FEC00000"));
	assert_false(contains(dsl, "Invalid"));

	iasl_disasm(dir, "facp", t.fadt, dsl);
	assert_true(contains(dsl, "Hardware Reduced (V5) : 1"));
	assert_false(contains(dsl, "Invalid"));

	iasl_disasm(dir, "xsdt", t.xsdt, dsl);
	assert_false(contains(dsl, "Invalid"));
	snprintf(cmd, sizeof(cmd), "%s %s", getenv("XBT_KEEP") ? "echo kept" : "rm -rf", dir);
	assert_int_equal(system(cmd), 0);
	xbt_guest_free(&g);
}

static void test_too_many_mmio_devices_rejected(void **state)
{
	struct xbt_guest g;
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	struct sqb_x86boot_mmio_dev mmio[SQB_X86BOOT_MAX_MMIO + 1] = {{0}};
	char *path;

	(void)state;
	xbt_elf_build(&e);
	path = xbt_tmpfile(e.buf, e.len);
	xbt_guest_init(&g, 4 * MiB, 0);
	g.in.kernel_path = path;
	g.in.mmio = mmio;
	g.in.nmmio = SQB_X86BOOT_MAX_MMIO + 1;
	assert_int_equal(sqb_x86boot_load(&g.in, &out, NULL), -SQB_ELIMIT);
	g.in.nmmio = SQB_X86BOOT_MAX_MMIO;
	assert_int_equal(sqb_x86boot_load(&g.in, &out, NULL), 0);
	assert_int_equal(xbt_sum(g.ram + xbt_get64(g.ram + 0xe0000 + 24), 52), 0);
	xbt_rmfile(path);
	xbt_guest_free(&g);
}

/* The VMM passes its bus as a device list: the same devices give the same
 * DSDT as the built-in list, and a virtio-mmio slot is encoded as the ACPI
 * spec (19.6 / 6.4) and Firecracker's x86 device manager lay it out:
 * Device (V000) { Name (_HID, "LNRO0005") Name (_UID, 0) Name (_CCA, One)
 *   Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xD0000000,
 *   0x1000) Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5} }) } */
static void test_dsdt_from_a_device_list(void **state)
{
	static const struct sqb_x86boot_mmio_dev mmio[1] = {
	    {.base = 0xd0000000, .size = 0x1000, .gsi = 5}};
	static const uint8_t v000[] = {
	    0x5b, 0x82, 0x46, 0x04, 'V',  '0',	'0',  '0', /* Device, PkgLength 70 */
	    0x08, '_',	'H',  'I',  'D',  0x0d, 'L',  'N',  'R',  'O',	0x30, 0x30, 0x30,
	    0x35, 0x00, 0x08, '_',  'U',  'I',	'D',  0x0c, 0x00, 0x00, 0x00, 0x00, /* _UID DWord 0
										     */
	    0x08, '_',	'C',  'C',  'A',  0x01,					    /* _CCA One */
	    0x08, '_',	'C',  'R',  'S',  0x11, 0x1b, 0x0b, 0x17, 0x00,		    /* Buffer(23) */
	    0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00, /* Memory32Fixed
										     */
	    0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, /* Extended IRQ 5 */
	    0x79, 0x00,						  /* EndTag */
	};
	struct sqb_x86boot_dev devs[3] = {
	    {.hid = "PNP0501",
	     .hid_eisa = 1,
	     .name = "COM1",
	     .io_base = {0x3f8},
	     .io_len = {8},
	     .irq_kind = SQB_X86BOOT_IRQ_ISA,
	     .irq = 4},
	    {.hid = "PNP0303",
	     .hid_eisa = 1,
	     .name = "PS2K",
	     .io_base = {0x60, 0x64},
	     .io_len = {1, 1},
	     .irq_kind = SQB_X86BOOT_IRQ_ISA,
	     .irq = 1},
	    {.hid = "LNRO0005",
	     .name = "V000",
	     .mmio_base = 0xd0000000,
	     .mmio_size = 0x1000,
	     .irq_kind = SQB_X86BOOT_IRQ_GSI,
	     .irq = 5,
	     .cca = 1},
	};
	struct xbt_guest g1, g2;
	struct tables t1, t2;
	uint32_t len;

	(void)state;
	boot(&g1, 1, mmio, 1, &t1);
	memset(&g2, 0, sizeof(g2));
	{
		struct xbt_elf e;
		struct sqb_x86boot_entry out;
		char *path;

		xbt_elf_build(&e);
		path = xbt_tmpfile(e.buf, e.len);
		xbt_guest_init(&g2, 4 * MiB, 0xcc);
		g2.in.kernel_path = path;
		g2.in.ncpus = 1;
		g2.in.devs = devs;
		g2.in.ndevs = 3;
		assert_int_equal(sqb_x86boot_load(&g2.in, &out, NULL), 0);
		xbt_rmfile(path);
		t2.fadt = g2.ram + xbt_get64(g2.ram + xbt_get64(g2.ram + out.acpi_rsdp + 24) + 36);
		t2.dsdt = g2.ram + xbt_get64(t2.fadt + 140);
	}
	len = xbt_get32(t1.dsdt + 4);
	assert_int_equal(xbt_get32(t2.dsdt + 4), len);
	assert_memory_equal(t1.dsdt, t2.dsdt, len);
	assert_non_null(memmem(t2.dsdt + 36, len - 36, v000, sizeof(v000)));
	xbt_guest_free(&g1);
	xbt_guest_free(&g2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_tables_and_checksums),
	    cmocka_unit_test(test_madt_one_lapic_per_cpu),
	    cmocka_unit_test(test_iasl_disassembles_tables),
	    cmocka_unit_test(test_too_many_mmio_devices_rejected),
	    cmocka_unit_test(test_dsdt_from_a_device_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
