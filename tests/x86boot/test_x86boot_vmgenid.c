/* VMGenID in the DSDT, checked against Microsoft's "Virtual Machine
 * Generation ID" spec and the ACPI 6.4 AML grammar (20.2), not against
 * squib's encoder: the expected bytes below are written by hand from those
 * documents; ADDR is decoded by a small AML reader of our own and the 16
 * bytes it points at must be the ID; iasl must disassemble it cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "xbtest.h"

static const uint8_t genid[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				  0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01};

/* Device (VGEN) { Name (_HID, "VMGENCTR") Name (_CID, "VM_Gen_Counter")
 *   Name (_DDN, "VM_Gen_Counter") Name (ADDR, Package (2) {0xFF000, 0}) }
 * DeviceOp 5B 82, PkgLength of 81 in two bytes (20.2.4: 0x40 | low nibble,
 * then the rest), NameOp 08, StringPrefix 0D, PackageOp 12, DWordPrefix 0C. */
/* clang-format off */
static const uint8_t want_vgen[] = {
    0x5b, 0x82, 0x41, 0x05, 'V', 'G', 'E', 'N',
    0x08, '_', 'H', 'I', 'D', 0x0d, 'V', 'M', 'G', 'E', 'N', 'C', 'T', 'R', 0x00,
    0x08, '_', 'C', 'I', 'D', 0x0d, 'V', 'M', '_', 'G', 'e', 'n', '_', 'C', 'o', 'u', 'n', 't',
    'e', 'r', 0x00,
    0x08, '_', 'D', 'D', 'N', 0x0d, 'V', 'M', '_', 'G', 'e', 'n', '_', 'C', 'o', 'u', 'n', 't',
    'e', 'r', 0x00,
    0x08, 'A', 'D', 'D', 'R', 0x12, 0x0c, 0x02, 0x0c, 0x00, 0xf0, 0x0f, 0x00, 0x0c, 0x00, 0x00,
    0x00, 0x00,
};

/* Device (GED_) { Name (_HID, "ACPI0013") Name (_CRS, ResourceTemplate () {
 *   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {23} })
 *   Method (_EVT, 1, Serialized) { If (Arg0 == 23) { Notify (\_SB.VGEN, 0x80) } } }
 * Extended Interrupt descriptor 89 (6.4.3.6): length 6, flags 03 (consumer,
 * edge), one interrupt.  MethodOp 14, flags 09 (1 arg, serialized), IfOp A0,
 * LEqualOp 93, Arg0Op 68, BytePrefix 0A, NotifyOp 86, RootChar 5C +
 * DualNamePrefix 2E. */
static const uint8_t want_ged[] = {
    0x5b, 0x82, 0x44, 0x04, 'G', 'E', 'D', '_',
    0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00,
    0x08, '_', 'C', 'R', 'S', 0x11, 0x0f, 0x0b, 0x0b, 0x00,
    0x89, 0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00, 0x00, 0x79, 0x00,
    0x14, 0x19, '_', 'E', 'V', 'T', 0x09,
    0xa0, 0x12, 0x93, 0x68, 0x0a, 0x17,
    0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80,
};
/* clang-format on */

/* PkgLength (20.2.4): returns the encoded length, *used the bytes it took. */
static size_t pkg_length(const uint8_t *p, size_t *used)
{
	size_t n = (p[0] >> 6) + 1, v = n == 1 ? p[0] & 0x3f : p[0] & 0x0f;

	for (size_t i = 1; i < n; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	*used = n;
	return v;
}

/* ComputationalData (20.2.3) integers: Zero, One, Byte, Word, DWord, QWord. */
static uint64_t aml_integer(const uint8_t **pp)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	size_t n = 0;

	switch (*p++) {
	case 0x00:
		break;
	case 0x01:
		v = 1;
		break;
	case 0x0a:
		n = 1;
		break;
	case 0x0b:
		n = 2;
		break;
	case 0x0c:
		n = 4;
		break;
	case 0x0e:
		n = 8;
		break;
	default:
		fail_msg("ADDR element is not an integer (0x%02x)", p[-1]);
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*pp = p + n;
	return v;
}

/* The spec's ADDR: a package of two integers, low then high 32 bits. */
static uint64_t decode_addr(const uint8_t *dsdt)
{
	static const uint8_t name[] = {0x08, 'A', 'D', 'D', 'R', 0x12};
	const uint8_t *p = xbt_find(dsdt, xbt_get32(dsdt + 4), name, sizeof(name));
	size_t used, len;
	uint64_t lo, hi;

	assert_non_null(p);
	p += sizeof(name);
	len = pkg_length(p, &used);
	assert_true(len > used);
	p += used;
	assert_int_equal(*p++, 2); /* NumElements */
	lo = aml_integer(&p);
	hi = aml_integer(&p);
	assert_true(lo <= 0xffffffffu && hi <= 0xffffffffu);
	return lo | hi << 32;
}

static struct sqb_x86boot_dev vgen_dev(uint64_t addr)
{
	return (struct sqb_x86boot_dev){.kind = SQB_X86BOOT_DEV_VMGENID,
					.irq_kind = SQB_X86BOOT_IRQ_GSI,
					.irq = 23,
					.genid_addr = addr,
					.genid = genid};
}

static void test_vgen_and_ged_bytes_follow_the_spec(void **state)
{
	struct sqb_x86boot_dev devs[1] = {vgen_dev(0xff000)};
	struct xbt_guest g;
	const uint8_t *dsdt, *v;
	uint32_t len;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 1, &dsdt), 0);
	len = xbt_get32(dsdt + 4);
	assert_int_equal(xbt_sum(dsdt, len), 0);
	v = xbt_find(dsdt, len, want_vgen, sizeof(want_vgen));
	assert_non_null(v);
	/* the GED follows the counter it notifies */
	assert_memory_equal(v + sizeof(want_vgen), want_ged, sizeof(want_ged));
	/* and both sit inside Scope (\_SB_) */
	assert_memory_equal(dsdt + 36, "\x10", 1);
	assert_non_null(xbt_find(dsdt + 36, 8, (const uint8_t *)"\\_SB_", 5));
	xbt_guest_free(&g);
}

static void test_addr_points_at_the_id_in_reserved_memory(void **state)
{
	struct sqb_x86boot_dev devs[1] = {vgen_dev(0xff000)};
	struct xbt_guest g;
	const uint8_t *dsdt;
	uint64_t addr;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 1, &dsdt), 0);
	addr = decode_addr(dsdt);
	assert_int_equal(addr, 0xff000);
	assert_int_equal(addr % 8, 0); /* the spec: 8-byte aligned */
	/* inside the e820-reserved ACPI area, so not usable RAM for the guest */
	assert_true(addr >= 0xe0000 && addr + 16 <= 0x100000);
	assert_memory_equal(g.ram + addr, genid, 16);
	/* PVH memory map (hvm_start_info memmap_paddr at 40, entries at 48;
	 * 24-byte entries addr, size, type): no RAM (type 1) entry covers it */
	{
		const uint8_t *si = g.ram + xbt_last_start_info;
		const uint8_t *map = g.ram + xbt_get64(si + 40);
		uint32_t n = xbt_get32(si + 48);

		assert_true(n > 0);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t a = xbt_get64(map + 24 * i), sz = xbt_get64(map + 24 * i + 8);

			if (xbt_get32(map + 24 * i + 16) == 1)
				assert_false(addr + 16 > a && addr < a + sz);
		}
	}
	xbt_guest_free(&g);
}

static void test_bad_vmgenid_devices_refused(void **state)
{
	struct sqb_x86boot_dev two[2] = {vgen_dev(0xff000), vgen_dev(0xff010)};
	struct sqb_x86boot_dev low[1] = {vgen_dev(0xe0100)}; /* inside the tables */
	struct sqb_x86boot_dev odd[1] = {vgen_dev(0xff004)};
	struct sqb_x86boot_dev high[1] = {vgen_dev(0xffff8)};
	struct sqb_x86boot_dev noirq[1] = {vgen_dev(0xff000)};
	struct xbt_guest g;

	(void)state;
	noirq[0].irq_kind = SQB_X86BOOT_IRQ_NONE;
	assert_int_not_equal(xbt_load_devs(&g, two, 2, NULL), 0);
	assert_non_null(strstr(xbt_last_reason, "two VMGenID"));
	xbt_guest_free(&g);
	assert_int_not_equal(xbt_load_devs(&g, low, 1, NULL), 0);
	assert_non_null(strstr(xbt_last_reason, "above the tables"));
	xbt_guest_free(&g);
	assert_int_not_equal(xbt_load_devs(&g, odd, 1, NULL), 0);
	assert_non_null(strstr(xbt_last_reason, "alignment"));
	xbt_guest_free(&g);
	assert_int_not_equal(xbt_load_devs(&g, high, 1, NULL), 0);
	assert_non_null(strstr(xbt_last_reason, "above the tables"));
	xbt_guest_free(&g);
	assert_int_not_equal(xbt_load_devs(&g, noirq, 1, NULL), 0);
	assert_non_null(strstr(xbt_last_reason, "GSI"));
	xbt_guest_free(&g);
}

static void test_iasl_reads_vgen_and_ged(void **state)
{
	struct sqb_x86boot_dev devs[1] = {vgen_dev(0xff000)};
	char dir[] = "/tmp/xbvgen-XXXXXX", path[600], cmd[700];
	struct xbt_guest g;
	const uint8_t *dsdt;

	(void)state;
	assert_int_equal(xbt_load_devs(&g, devs, 1, &dsdt), 0);
	if (xbt_iasl_disassemble(dsdt, dir, path, sizeof(path)) < 0)
		fail_msg(
		    "iasl -d failed or is missing: install acpica-tools (scripts/deps.sh does)");
	assert_true(xbt_file_contains(path, "Device (VGEN)"));
	assert_true(xbt_file_contains(path, "Name (_HID, \"VMGENCTR\")"));
	assert_true(xbt_file_contains(path, "Name (_CID, \"VM_Gen_Counter\")"));
	assert_true(xbt_file_contains(path, "0x000FF000"));
	assert_true(xbt_file_contains(path, "Device (GED)") ||
		    xbt_file_contains(path, "Device (GED_)"));
	assert_true(xbt_file_contains(path, "\"ACPI0013\""));
	assert_true(xbt_file_contains(path, "Method (_EVT, 1, Serialized)"));
	assert_true(xbt_file_contains(path, "Notify (\\_SB.VGEN, 0x80)"));
	assert_true(xbt_file_contains(path, "0x00000017,"));
	assert_false(xbt_file_contains(path, "Error"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)system(cmd);
	xbt_guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vgen_and_ged_bytes_follow_the_spec),
	    cmocka_unit_test(test_addr_points_at_the_id_in_reserved_memory),
	    cmocka_unit_test(test_bad_vmgenid_devices_refused),
	    cmocka_unit_test(test_iasl_reads_vgen_and_ged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
