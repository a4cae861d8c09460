/* PSCI 0.2 as the HVF backend serves it in the VMM (runtime/hvf/hvf_logic.c),
 * checked against Arm DEN0022 (function IDs, return codes, CPU_ON /
 * AFFINITY_INFO states, SMC32 argument width), with a fake power table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hvf_logic.h"

struct fake {
	enum sqb_hvf_power p[4];
	uint64_t entry, ctx;
	int ncalls;
};

static int f_find(void *c, uint64_t mpidr)
{
	(void)c;
	return mpidr < 4 ? (int)mpidr : -1; /* Aff0 = index */
}

static enum sqb_hvf_power f_state(void *c, unsigned int i)
{
	return ((struct fake *)c)->p[i];
}

static int f_on(void *c, unsigned int i, uint64_t entry, uint64_t ctx)
{
	struct fake *f = c;

	f->p[i] = SQB_HVF_ON_PENDING;
	f->entry = entry, f->ctx = ctx;
	f->ncalls++;
	return 0;
}

static const struct sqb_hvf_psci_ops ops = {f_find, f_state, f_on};

static int64_t call(struct fake *f, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		    enum sqb_hvf_psci_action *act)
{
	uint64_t x[4] = {a0, a1, a2, a3};

	*act = sqb_hvf_psci_call(&ops, f, x);
	return (int64_t)x[0];
}

static void test_version_and_info(void **state)
{
	struct fake f = {{SQB_HVF_ON}};
	enum sqb_hvf_psci_action a;

	(void)state;
	assert_int_equal(call(&f, 0x84000000, 0, 0, 0, &a), 0x00000002); /* v0.2 */
	assert_int_equal(a, SQB_HVF_PSCI_CONTINUE);
	assert_int_equal(call(&f, 0x84000006, 0, 0, 0, &a), 2);	 /* MIGRATE_INFO_TYPE */
	assert_int_equal(call(&f, 0x84000050, 0, 0, 0, &a), -1); /* NOT_SUPPORTED */
	assert_int_equal(call(&f, 0x80000000, 0, 0, 0, &a), -1); /* SMCCC_VERSION: 0.2 has none */
	assert_int_equal(call(&f, 0x1ull << 32 | 0x84000000, 0, 0, 0, &a), -1);
}

static void test_cpu_on(void **state)
{
	struct fake f = {{SQB_HVF_ON, SQB_HVF_OFF, SQB_HVF_OFF}};
	enum sqb_hvf_psci_action a;

	(void)state;
	assert_int_equal(call(&f, 0xc4000003, 1, 0x80001000, 0x1234, &a), 0);
	assert_int_equal(f.entry, 0x80001000);
	assert_int_equal(f.ctx, 0x1234);
	assert_int_equal(call(&f, 0xc4000003, 1, 0x80001000, 0, &a), -5); /* ON_PENDING */
	assert_int_equal(call(&f, 0xc4000003, 0, 0x80001000, 0, &a), -4); /* ALREADY_ON */
	assert_int_equal(call(&f, 0xc4000003, 9, 0x80001000, 0, &a), -2); /* no such CPU */
	assert_int_equal(call(&f, 0xc4000003, 1ull << 24 | 2, 0, 0, &a),
			 -2); /* non-affinity bits */
	/* SMC32 CPU_ON: the upper halves of the arguments are ignored */
	assert_int_equal(call(&f, 0x84000003, 0xffffffff00000002ull, 0xdead00080002000ull, 7, &a),
			 0);
	assert_int_equal(f.entry, 0x80002000);
	assert_int_equal(f.ncalls, 2);
}

static void test_affinity_info(void **state)
{
	struct fake f = {{SQB_HVF_ON, SQB_HVF_OFF, SQB_HVF_ON_PENDING}};
	enum sqb_hvf_psci_action a;

	(void)state;
	assert_int_equal(call(&f, 0xc4000004, 0, 0, 0, &a), 0); /* ON */
	assert_int_equal(call(&f, 0xc4000004, 1, 0, 0, &a), 1); /* OFF */
	assert_int_equal(call(&f, 0x84000004, 2, 0, 0, &a), 2); /* ON_PENDING */
	assert_int_equal(call(&f, 0xc4000004, 7, 0, 0, &a), -2);
	assert_int_equal(call(&f, 0xc4000004, 0, 1, 0, &a), -2); /* level 1: not modelled */
}

static void test_power_actions(void **state)
{
	struct fake f = {{SQB_HVF_ON}};
	enum sqb_hvf_psci_action a;

	(void)state;
	call(&f, 0x84000002, 0, 0, 0, &a);
	assert_int_equal(a, SQB_HVF_PSCI_CPU_OFF);
	call(&f, 0x84000008, 0, 0, 0, &a);
	assert_int_equal(a, SQB_HVF_PSCI_SYSTEM_OFF);
	call(&f, 0x84000009, 0, 0, 0, &a);
	assert_int_equal(a, SQB_HVF_PSCI_SYSTEM_RESET);
	assert_int_equal(call(&f, 0xc4000001, 0, 0, 0, &a), 0); /* CPU_SUSPEND: standby returns */
	assert_int_equal(a, SQB_HVF_PSCI_CONTINUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version_and_info),
	    cmocka_unit_test(test_cpu_on),
	    cmocka_unit_test(test_affinity_info),
	    cmocka_unit_test(test_power_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
