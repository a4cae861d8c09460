/* KVM state <-> snapfmt record encoders (runtime/kvm/kvm_records.c,
 * docs/format.md 8.1/8.3): every field survives encode -> decode, the
 * encoding is stable, and malformed variable records are refused. */
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm_records.h"

static void fill(void *p, size_t n, unsigned int seed)
{
	uint8_t *b = p;

	srand(seed);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rand();
}

#define ROUNDTRIP(type, enc, dec, size, seed, check)                                               \
	do {                                                                                       \
		type a, b;                                                                         \
		uint8_t e1[size], e2[size];                                                        \
		fill(&a, sizeof(a), seed);                                                         \
		enc(&a, e1);                                                                       \
		dec(e1, &b);                                                                       \
		enc(&b, e2);                                                                       \
		assert_memory_equal(e1, e2, size);                                                 \
		check;                                                                             \
	} while (0)

static void test_fixed_records_roundtrip(void **state)
{
	(void)state;
	for (unsigned int seed = 1; seed < 20; seed++) {
		ROUNDTRIP(struct kvm_regs, sqb_kvm_enc_regs, sqb_kvm_dec_regs, SQB_X86_REGS_SIZE,
			  seed, assert_memory_equal(&a, &b, sizeof(a)));
		ROUNDTRIP(
		    struct kvm_sregs, sqb_kvm_enc_sregs, sqb_kvm_dec_sregs, SQB_X86_SREGS_SIZE,
		    seed,
		    (assert_true(a.cr3 == b.cr3 && a.efer == b.efer && a.apic_base == b.apic_base &&
				 a.cs.base == b.cs.base && a.tr.selector == b.tr.selector &&
				 a.interrupt_bitmap[3] == b.interrupt_bitmap[3])));
		ROUNDTRIP(struct kvm_vcpu_events, sqb_kvm_enc_events, sqb_kvm_dec_events,
			  SQB_X86_EVENTS_SIZE, seed,
			  (assert_true(a.nmi.pending == b.nmi.pending &&
				       a.exception_payload == b.exception_payload &&
				       a.sipi_vector == b.sipi_vector && a.flags == b.flags)));
		ROUNDTRIP(struct kvm_debugregs, sqb_kvm_enc_debugregs, sqb_kvm_dec_debugregs,
			  SQB_X86_DEBUGREGS_SIZE, seed,
			  (assert_true(a.dr7 == b.dr7 && a.db[2] == b.db[2])));
		ROUNDTRIP(struct kvm_pic_state, sqb_kvm_enc_pic, sqb_kvm_dec_pic, SQB_KVM_PIC_SIZE,
			  seed, assert_memory_equal(&a, &b, sizeof(a)));
		ROUNDTRIP(
		    struct kvm_ioapic_state, sqb_kvm_enc_ioapic, sqb_kvm_dec_ioapic,
		    SQB_KVM_IOAPIC_SIZE, seed,
		    (assert_true(a.redirtbl[23].bits == b.redirtbl[23].bits && a.irr == b.irr)));
		ROUNDTRIP(
		    struct kvm_pit_state2, sqb_kvm_enc_pit, sqb_kvm_dec_pit, SQB_KVM_PIT_SIZE, seed,
		    (assert_true(a.channels[2].count_load_time == b.channels[2].count_load_time &&
				 a.flags == b.flags)));
		ROUNDTRIP(struct kvm_clock_data, sqb_kvm_enc_clock, sqb_kvm_dec_clock,
			  SQB_KVM_CLOCK_SIZE, seed,
			  (assert_true(a.clock == b.clock && a.host_tsc == b.host_tsc)));
	}
}

static void test_variable_records_roundtrip_and_bounds(void **state)
{
	struct kvm_msr_entry m[40], m2[40];
	struct kvm_cpuid_entry2 c[30], c2[30];
	struct kvm_xcrs x, x2;
	uint8_t buf[8 + 40 * 32];
	uint32_t n;
	size_t len;

	(void)state;
	fill(m, sizeof(m), 7);
	len = sqb_kvm_enc_msrs(m, 40, buf);
	assert_int_equal(len, 8 + 16 * 40);
	assert_int_equal(sqb_kvm_dec_msrs(buf, len, m2, 40, &n), 0);
	assert_int_equal(n, 40);
	for (int i = 0; i < 40; i++)
		assert_true(m[i].index == m2[i].index && m[i].data == m2[i].data);
	assert_int_not_equal(sqb_kvm_dec_msrs(buf, len - 1, m2, 40, &n), 0); /* size */
	assert_int_not_equal(sqb_kvm_dec_msrs(buf, len, m2, 39, &n), 0);     /* capacity */
	buf[4] = 1;
	assert_int_not_equal(sqb_kvm_dec_msrs(buf, len, m2, 40, &n), 0); /* reserved */

	fill(c, sizeof(c), 9);
	len = sqb_kvm_enc_cpuid(c, 30, buf);
	assert_int_equal(sqb_kvm_dec_cpuid(buf, len, c2, 30, &n), 0);
	for (int i = 0; i < 30; i++)
		assert_true(c[i].function == c2[i].function && c[i].index == c2[i].index &&
			    c[i].flags == c2[i].flags && c[i].eax == c2[i].eax &&
			    c[i].edx == c2[i].edx);

	memset(&x, 0, sizeof(x));
	x.nr_xcrs = 1;
	x.xcrs[0].xcr = 0;
	x.xcrs[0].value = 0x207;
	len = sqb_kvm_enc_xcrs(&x, buf);
	assert_int_equal(sqb_kvm_dec_xcrs(buf, len, &x2), 0);
	assert_true(x2.nr_xcrs == 1 && x2.xcrs[0].value == 0x207);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixed_records_roundtrip),
	    cmocka_unit_test(test_variable_records_roundtrip_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
