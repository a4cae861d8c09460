/* The HVF backend's ESR_EL2 decoder (runtime/hvf/hvf_logic.c) against
 * syndromes hand-encoded from the Arm ARM's ESR_ELx field tables (EC 0x01
 * WFx, 0x16 HVC, 0x17 SMC, 0x18 MSR/MRS, 0x20 / 0x24 aborts), not from
 * squib's encoder; and the encoder the emulation uses against the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hvf_logic.h"

/* ldr x1, [x2] on an unmapped IPA: ISV, SAS=3, SRT=1, SF, translation L2 */
static void test_dabt_load64(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x93c18006, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_DABT);
	assert_int_equal(e.ec, 0x24);
	assert_int_equal(e.il, 1);
	assert_int_equal(e.u.abt.isv, 1);
	assert_int_equal(e.u.abt.len, 8);
	assert_int_equal(e.u.abt.srt, 1);
	assert_int_equal(e.u.abt.sf, 1);
	assert_int_equal(e.u.abt.sse, 0);
	assert_int_equal(e.u.abt.wnr, 0);
	assert_int_equal(e.u.abt.fsc, SQB_HVF_FSC_TRANSLATION);
	assert_int_equal(e.u.abt.level, 2);
}

/* strb w0, [x9] on a write-protected page: permission fault L3, WnR */
static void test_dabt_store8_permission(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x9300004f, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_DABT);
	assert_int_equal(e.u.abt.len, 1);
	assert_int_equal(e.u.abt.srt, 0);
	assert_int_equal(e.u.abt.wnr, 1);
	assert_int_equal(e.u.abt.fsc, SQB_HVF_FSC_PERMISSION);
	assert_int_equal(e.u.abt.level, 3);
}

/* ldrsh w3, [x4]: SAS=1, SSE, SRT=3, SF=0 */
static void test_dabt_signed_half(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x93630007, &e);
	assert_int_equal(e.u.abt.len, 2);
	assert_int_equal(e.u.abt.sse, 1);
	assert_int_equal(e.u.abt.srt, 3);
	assert_int_equal(e.u.abt.sf, 0);
}

/* stp (no valid syndrome): ISV=0, only WnR and DFSC mean something */
static void test_dabt_no_syndrome(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x92ff8046, &e); /* junk in the RES0-without-ISV bits */
	assert_int_equal(e.cls, SQB_HVF_ESR_DABT);
	assert_int_equal(e.u.abt.isv, 0);
	assert_int_equal(e.u.abt.len, 0);
	assert_int_equal(e.u.abt.srt, 0);
	assert_int_equal(e.u.abt.wnr, 1);
}

static void test_iabt_and_others(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x82000007, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_IABT);
	assert_int_equal(e.u.abt.fsc, SQB_HVF_FSC_TRANSLATION);
	sqb_hvf_esr_decode(0x5a001234, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_HVC);
	assert_int_equal(e.u.hvc.imm16, 0x1234);
	sqb_hvf_esr_decode(0x5e000000, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_SMC);
	sqb_hvf_esr_decode(0x06000000, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_WFX);
	assert_int_equal(e.u.wfx.wfe, 0);
	sqb_hvf_esr_decode(0x06000001, &e);
	assert_int_equal(e.u.wfx.wfe, 1);
	sqb_hvf_esr_decode(0xf2000000, &e); /* BRK */
	assert_int_equal(e.cls, SQB_HVF_ESR_OTHER);
	sqb_hvf_esr_decode(~0ull, &e); /* all ones: EC 0x3f, unknown */
	assert_int_equal(e.cls, SQB_HVF_ESR_OTHER);
}

/* mrs x5, mpidr_el1 -> encoding 0xc005 (Apple's HV_SYS_REG_MPIDR_EL1);
 * msr oslar_el1, x0 (op0 2, CRn 1, op2 4) -> 0x8084 */
static void test_sysreg(void **state)
{
	struct sqb_hvf_esr e;

	(void)state;
	sqb_hvf_esr_decode(0x623a00a1, &e);
	assert_int_equal(e.cls, SQB_HVF_ESR_SYSREG);
	assert_int_equal(e.u.sys.read, 1);
	assert_int_equal(e.u.sys.rt, 5);
	assert_int_equal(e.u.sys.encoding, 0xc005);
	sqb_hvf_esr_decode(0x62280400, &e);
	assert_int_equal(e.u.sys.read, 0);
	assert_int_equal(e.u.sys.rt, 0);
	assert_int_equal(e.u.sys.op0, 2);
	assert_int_equal(e.u.sys.crn, 1);
	assert_int_equal(e.u.sys.op2, 4);
	assert_int_equal(e.u.sys.encoding, 0x8084);
}

static void test_encoder_known_answers(void **state)
{
	(void)state;
	assert_int_equal(sqb_hvf_esr_dabt(1, 8, 0, 1, 1, 0, SQB_HVF_FSC_TRANSLATION, 2),
			 0x93c18006);
	assert_int_equal(sqb_hvf_esr_dabt(1, 1, 0, 0, 0, 1, SQB_HVF_FSC_PERMISSION, 3), 0x9300004f);
	assert_int_equal(sqb_hvf_esr_dabt(1, 2, 1, 3, 0, 0, SQB_HVF_FSC_TRANSLATION, 3),
			 0x93630007);
	assert_int_equal(sqb_hvf_esr_dabt(0, 8, 1, 7, 1, 1, SQB_HVF_FSC_TRANSLATION, 2),
			 0x92000046);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dabt_load64),
	    cmocka_unit_test(test_dabt_store8_permission),
	    cmocka_unit_test(test_dabt_signed_half),
	    cmocka_unit_test(test_dabt_no_syndrome),
	    cmocka_unit_test(test_iabt_and_others),
	    cmocka_unit_test(test_sysreg),
	    cmocka_unit_test(test_encoder_known_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
