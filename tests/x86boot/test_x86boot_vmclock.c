/* VMClock in the DSDT, checked against Firecracker's description of it
 * (devices/acpi/vmclock.rs append_aml_bytes: Device VCLK, _HID "AMZNC10C",
 * _CID and _DDN "VMCLOCK", _STA 0x0F, a _CRS with one cacheable, read-only
 * QWord memory range over the 4 KiB page; device_manager/acpi.rs: one GED
 * with the VMGenID's line, then VMClock's, each If (Arg0 == gsi) Notify
 * (..., 0x80)) and the ACPI 6.4 encodings (6.4.3.5.1 QWord Address Space
 * Descriptor, 20.2 AML): the expected bytes below are written by hand; the
 * page must hold what the VMM gave, outside RAM; iasl must read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "xbtest.h"

static const uint8_t genid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static uint8_t page[112];

/* Device (VCLK) { Name (_HID, "AMZNC10C") Name (_CID, "VMCLOCK")
 *   Name (_DDN, "VMCLOCK") Method (_STA, 0, NotSerialized) { Return (0x0F) }
 *   Name (_CRS, ResourceTemplate () { QWordMemory (ResourceProducer, ,
 *     MinFixed, MaxFixed, Cacheable, ReadOnly, 0, 0xFE000, 0xFEFFF, 0,
 *     0x1000) }) }
 * Body 115 bytes: PkgLength 117 = 0x75 in two bytes (0x45, 0x07).  _STA:
 * MethodOp 14, PkgLength 9, flags 00, ReturnOp A4, BytePrefix 0A 0F.
 * _CRS: BufferOp 11, PkgLength 0x34, WordPrefix 0B size 0x30 (46 + 2);
 * QWord descriptor 8A, length 0x2B, type 0 (memory), general flags 0C
 * (MinFixed | MaxFixed; bit 0 clear, so iasl prints ResourceProducer:
 * Firecracker's acpi-tables AddressSpace sets exactly these), type flags 02 (cacheable, bit 0
 * clear: read-only); granularity, min, max, translation, length; EndTag 79 00. */
/* clang-format off */
static const uint8_t want_vclk[] = {
    0x5b, 0x82, 0x45, 0x07, 'V', 'C', 'L', 'K',
    0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'M', 'Z', 'N', 'C', '1', '0', 'C', 0x00,
    0x08, '_', 'C', 'I', 'D', 0x0d, 'V', 'M', 'C', 'L', 'O', 'C', 'K', 0x00,
    0x08, '_', 'D', 'D', 'N', 0x0d, 'V', 'M', 'C', 'L', 'O', 'C', 'K', 0x00,
    0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f,
    0x08, '_', 'C', 'R', 'S', 0x11, 0x34, 0x0b, 0x30, 0x00,
    0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x02,
    0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0xe0, 0x0f, 0, 0, 0, 0, 0,
    0xff, 0xef, 0x0f, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x10, 0, 0, 0, 0, 0, 0,
    0x79, 0x00,
};

/* Device (GED_) { Name (_HID, "ACPI0013") Name (_CRS, ResourceTemplate () {
 *   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {23}
 *   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {22} })
 *   Method (_EVT, 1, Serialized) { If (Arg0 == 23) { Notify (\_SB.VGEN, 0x80) }
 *                                  If (Arg0 == 22) { Notify (\_SB.VCLK, 0x80) } } }
 * Body 94 bytes: PkgLength 96 = 0x60 (0x40, 0x06); _CRS buffer 0x17 + 2
 * bytes; each If: PkgLength 0x12. */
static const uint8_t want_ged[] = {
    0x5b, 0x82, 0x40, 0x06, 'G', 'E', 'D', '_',
    0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00,
    0x08, '_', 'C', 'R', 'S', 0x11, 0x18, 0x0b, 0x14, 0x00,
    0x89, 0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00, 0x00,
    0x89, 0x06, 0x00, 0x03, 0x01, 0x16, 0x00, 0x00, 0x00, 0x79, 0x00,
    0x14, 0x2c, '_', 'E', 'V', 'T', 0x09,
    0xa0, 0x12, 0x93, 0x68, 0x0a, 0x17,
    0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80,
    0xa0, 0x12, 0x93, 0x68, 0x0a, 0x16,
    0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'V', 'C', 'L', 'K', 0x0a, 0x80,
};

/* The GED of a board with VMClock alone: one line, one case. */
static const uint8_t want_ged_vclk_only[] = {
    0x5b, 0x82, 0x44, 0x04, 'G', 'E', 'D', '_',
    0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00,
    0x08, '_', 'C', 'R', 'S', 0x11, 0x0f, 0x0b, 0x0b, 0x00,
    0x89, 0x06, 0x00, 0x03, 0x01, 0x16, 0x00, 0x00, 0x00, 0x79, 0x00,
    0x14, 0x19, '_', 'E', 'V', 'T', 0x09,
    0xa0, 0x12, 0x93, 0x68, 0x0a, 0x16,
    0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'V', 'C', 'L', 'K', 0x0a, 0x80,
};
/* clang-format on */

static struct sqb_x86boot_dev vgen_dev(uint64_t addr)
{
	return (struct sqb_x86boot_dev){.kind = SQB_X86BOOT_DEV_VMGENID,
					.irq_kind = SQB_X86BOOT_IRQ_GSI,
					.irq = 23,
					.genid_addr = addr,
					.genid = genid};
}

static struct sqb_x86boot_dev vclk_dev(uint64_t addr)
{
	return (struct sqb_x86boot_dev){.kind = SQB_X86BOOT_DEV_VMCLOCK,
					.irq_kind = SQB_X86BOOT_IRQ_GSI,
					.irq = 22,
					.page_addr = addr,
					.page = page,
					.page_len = sizeof(page)};
}

static int setup(void **state)
{
	(void)state;
	for (unsigned int i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(0x40 + i);
	return 0;
}

/* squib's board order: VGEN, VCLK, then the GED (Firecracker's order). */
static void test_vclk_and_ged_bytes(void **state)
{
	struct sqb_x86boot_dev devs[2] = {vgen_dev(0xff000), vclk_dev(0xfe000)};
	struct xbt_guest g;
	const uint8_t *dsdt, *v, *vg;
	uint32_t len;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 2, &dsdt), 0);
	len = xbt_get32(dsdt + 4);
	assert_int_equal(xbt_sum(dsdt, len), 0);
	v = xbt_find(dsdt, len, want_vclk, sizeof(want_vclk));
	assert_non_null(v);
	vg = xbt_find(dsdt, len, (const uint8_t *)"VGEN", 4);
	assert_non_null(vg);
	assert_true(vg < v); /* VGEN first */
	assert_memory_equal(v + sizeof(want_vclk), want_ged, sizeof(want_ged));
	/* one GED only */
	assert_null(xbt_find(v + sizeof(want_vclk) + sizeof(want_ged),
			     len - (size_t)(v - dsdt) - sizeof(want_vclk) - sizeof(want_ged),
			     (const uint8_t *)"ACPI0013", 8));
	assert_null(xbt_find(dsdt, (size_t)(v - dsdt), (const uint8_t *)"ACPI0013", 8));
	xbt_guest_free(&g);

	/* VMClock alone: its GED names its line only */
	struct sqb_x86boot_dev one[1] = {vclk_dev(0xfe000)};
	assert_int_equal(xbt_load_devs(&g, one, 1, &dsdt), 0);
	len = xbt_get32(dsdt + 4);
	v = xbt_find(dsdt, len, want_vclk, sizeof(want_vclk));
	assert_non_null(v);
	assert_memory_equal(v + sizeof(want_vclk), want_ged_vclk_only, sizeof(want_ged_vclk_only));
	xbt_guest_free(&g);
}

/* The QWord range decoded from the DSDT points at the page the VMM gave,
 * zero after its 112 bytes, in e820-reserved memory and in no RAM range. */
static void test_crs_points_at_the_page_in_reserved_memory(void **state)
{
	struct sqb_x86boot_dev devs[2] = {vgen_dev(0xff000), vclk_dev(0xfe000)};
	struct xbt_guest g;
	const uint8_t *dsdt, *v, *q;
	uint64_t min, max;
	int reserved = 0;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 2, &dsdt), 0);
	v = xbt_find(dsdt, xbt_get32(dsdt + 4), (const uint8_t *)"VCLK", 4);
	assert_non_null(v);
	q = xbt_find(v, 200, (const uint8_t *)"\x8a\x2b\x00\x00", 4);
	assert_non_null(q);
	min = xbt_get64(q + 14);
	max = xbt_get64(q + 22);
	assert_int_equal(min, 0xfe000);
	assert_int_equal(max - min + 1, 0x1000);
	assert_int_equal(xbt_get64(q + 38), 0x1000);
	assert_memory_equal(g.ram + min, page, sizeof(page));
	for (uint64_t a = min + sizeof(page); a <= max; a++)
		assert_int_equal(g.ram[a], 0);
	assert_memory_equal(g.ram + 0xff000, genid, 16); /* the neighbour intact */
	{
		const uint8_t *si = g.ram + xbt_last_start_info;
		const uint8_t *map = g.ram + xbt_get64(si + 40);
		uint32_t n = xbt_get32(si + 48);

		for (uint32_t i = 0; i < n; i++) {
			uint64_t a = xbt_get64(map + 24 * i), sz = xbt_get64(map + 24 * i + 8);
			uint32_t type = xbt_get32(map + 24 * i + 16);

			if (type == 1)
				assert_false(max >= a && min < a + sz);
			if (type == 2 && a <= min && max < a + sz)
				reserved = 1;
		}
	}
	assert_true(reserved);
	xbt_guest_free(&g);
}

static void test_bad_vmclock_devices_refused(void **state)
{
	struct sqb_x86boot_dev two[2] = {vclk_dev(0xfe000), vclk_dev(0xfd000)};
	struct sqb_x86boot_dev low[1] = {vclk_dev(0xe0000)}; /* over the tables */
	struct sqb_x86boot_dev odd[1] = {vclk_dev(0xfe800)};
	struct sqb_x86boot_dev high[1] = {vclk_dev(0x100000)};
	struct sqb_x86boot_dev noirq[1] = {vclk_dev(0xfe000)};
	struct sqb_x86boot_dev big[1] = {vclk_dev(0xfe000)};
	struct sqb_x86boot_dev nopage[1] = {vclk_dev(0xfe000)};
	struct sqb_x86boot_dev clash[2] = {vgen_dev(0xfe010), vclk_dev(0xfe000)};
	struct {
		struct sqb_x86boot_dev *d;
		unsigned int n;
		const char *says;
	} cases[] = {
	    {two, 2, "two VMClock"},
	    {low, 1, "above the tables"},
	    {odd, 1, "alignment"},
	    {high, 1, "above the tables"},
	    {noirq, 1, "GSI"},
	    {big, 1, "4096"},
	    {nopage, 1, "page contents"},
	    {clash, 2, "inside the VMClock page"},
	};
	struct xbt_guest g;

	(void)state;
	noirq[0].irq_kind = SQB_X86BOOT_IRQ_NONE;
	big[0].page_len = 4097;
	nopage[0].page = NULL;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_not_equal(xbt_load_devs(&g, cases[i].d, cases[i].n, NULL), 0);
		if (!strstr(xbt_last_reason, cases[i].says))
			fail_msg("case %zu: '%s' does not say '%s'", i, xbt_last_reason,
				 cases[i].says);
		xbt_guest_free(&g);
	}
}

static void test_iasl_reads_vclk_and_ged(void **state)
{
	struct sqb_x86boot_dev devs[2] = {vgen_dev(0xff000), vclk_dev(0xfe000)};
	char dir[] = "/tmp/xbvclk-XXXXXX", path[600], cmd[700];
	struct xbt_guest g;
	const uint8_t *dsdt;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 2, &dsdt), 0);
	if (xbt_iasl_disassemble(dsdt, dir, path, sizeof(path)) < 0)
		fail_msg(
		    "iasl -d failed or is missing: install acpica-tools (scripts/deps.sh does)");
	assert_true(xbt_file_contains(path, "Device (VCLK)"));
	assert_true(xbt_file_contains(path, "Name (_HID, \"AMZNC10C\")"));
	assert_true(xbt_file_contains(path, "Name (_CID, \"VMCLOCK\")"));
	assert_true(xbt_file_contains(path, "Name (_DDN, \"VMCLOCK\")"));
	assert_true(xbt_file_contains(path, "Method (_STA, 0, NotSerialized)"));
	assert_true(xbt_file_contains(path, "Return (0x0F)"));
	assert_true(xbt_file_contains(path, "QWordMemory (ResourceProducer, PosDecode, MinFixed, "
					    "MaxFixed, Cacheable, ReadOnly,"));
	assert_true(xbt_file_contains(path, "0x00000000000FE000"));
	assert_true(xbt_file_contains(path, "0x00000000000FEFFF"));
	assert_true(xbt_file_contains(path, "Notify (\\_SB.VGEN, 0x80)"));
	assert_true(xbt_file_contains(path, "Notify (\\_SB.VCLK, 0x80)"));
	assert_true(xbt_file_contains(path, "0x00000016,"));
	assert_true(xbt_file_contains(path, "0x00000017,"));
	assert_false(xbt_file_contains(path, "Error"));
	if (getenv("XBT_KEEP"))
		fprintf(stderr, "kept %s\n", dir);
	else {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		(void)system(cmd);
	}
	xbt_guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vclk_and_ged_bytes),
	    cmocka_unit_test(test_crs_points_at_the_page_in_reserved_memory),
	    cmocka_unit_test(test_bad_vmclock_devices_refused),
	    cmocka_unit_test(test_iasl_reads_vclk_and_ged),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
