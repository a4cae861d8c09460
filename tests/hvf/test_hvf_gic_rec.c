/* The HVF_GIC_STATE record (format.md 8.3, [F-52], [F-55]) byte for byte
 * from the format table, and every way its parser must refuse one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hvf_logic.h"

/* os_build_len 6, reserved 0, "24A335", 2 zero bytes to 8, blob 01 02 03 */
static const uint8_t golden[] = {6,   0,   0,	0,   0, 0, 0, 0, '2', '4',
				 'A', '3', '3', '5', 0, 0, 1, 2, 3};

static void test_encode_known_answer(void **state)
{
	static const uint8_t blob[] = {1, 2, 3};
	uint8_t *p = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(sqb_hvf_gic_rec_encode(&p, &n, "24A335", blob, sizeof(blob)), 0);
	assert_int_equal(n, sizeof(golden));
	assert_memory_equal(p, golden, n);
	free(p);
}

static void test_parse_ok(void **state)
{
	struct sqb_diag d;
	const uint8_t *blob = NULL;
	size_t bl = 0;

	(void)state;
	assert_int_equal(sqb_hvf_gic_rec_parse(golden, sizeof(golden), "24A335", &blob, &bl, &d),
			 0);
	assert_ptr_equal(blob, golden + 16);
	assert_int_equal(bl, 3);
}

static int parse_mut(size_t at, uint8_t v, size_t len, const char *build)
{
	uint8_t buf[sizeof(golden)];
	struct sqb_diag d;
	const uint8_t *blob;
	size_t bl;

	memcpy(buf, golden, sizeof(buf));
	if (at < sizeof(buf))
		buf[at] = v;
	return sqb_hvf_gic_rec_parse(buf, len, build, &blob, &bl, &d);
}

static void test_parse_refusals(void **state)
{
	(void)state;
	/* [F-55]: another OS build's blob never reaches the hypervisor */
	assert_int_equal(parse_mut(99, 0, sizeof(golden), "24A336"), -SQB_EMISMATCH);
	assert_int_equal(parse_mut(99, 0, sizeof(golden), "24A33"), -SQB_EMISMATCH);
	assert_int_equal(parse_mut(4, 1, sizeof(golden), "24A335"), -SQB_ERESERVED);
	assert_int_equal(parse_mut(15, 9, sizeof(golden), "24A335"), -SQB_ECORRUPT); /* padding */
	assert_int_equal(parse_mut(0, 0, sizeof(golden), "24A335"), -SQB_ELIMIT);    /* len 0 */
	assert_int_equal(parse_mut(1, 1, sizeof(golden), "24A335"), -SQB_ELIMIT);    /* len 262 */
	assert_int_equal(parse_mut(0, 200, sizeof(golden), "24A335"), -SQB_ETRUNCATED);
	assert_int_equal(parse_mut(99, 0, 16, "24A335"), -SQB_ETRUNCATED); /* no blob */
	assert_int_equal(parse_mut(99, 0, 7, "24A335"), -SQB_ETRUNCATED);
	assert_int_equal(parse_mut(99, 0, 0, "24A335"), -SQB_ETRUNCATED);
}

static void test_encode_limits(void **state)
{
	char big[258];
	uint8_t *p;
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(sqb_hvf_gic_rec_encode(&p, &n, big, "a", 1), -22 /* EINVAL */);
	assert_int_equal(sqb_hvf_gic_rec_encode(&p, &n, "", "a", 1), -22);
	big[256] = 0; /* exactly 256: allowed */
	assert_int_equal(sqb_hvf_gic_rec_encode(&p, &n, big, "a", 1), 0);
	assert_int_equal(n, 8 + 256 + 1);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_known_answer),
	    cmocka_unit_test(test_parse_ok),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_encode_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
