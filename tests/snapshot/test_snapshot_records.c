/* KVM state <-> snapfmt record encoders (runtime/kvm/x86_64/kvm_records.c,
 * docs/format.md 8.1/8.3): known answers — each field set to a distinct
 * value must land at the offset docs/format.md's tables give (a symmetric
 * offset error passes a round trip, not these) — then every field survives
 * encode -> decode, and malformed variable records are refused. */
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

/* ---- known answers, written from docs/format.md's tables ---- */
static void put(uint8_t *b, size_t off, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/* 8.1 X86_REGS: 18 x u64: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags */
static void test_kat_regs(void **state)
{
	struct kvm_regs r;
	__u64 *f[18] = {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rsp, &r.rbp, &r.r8,
			&r.r9,	&r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rip, &r.rflags};
	uint8_t got[SQB_X86_REGS_SIZE], want[SQB_X86_REGS_SIZE];

	(void)state;
	for (int i = 0; i < 18; i++) {
		*f[i] = 0x1100000000000000ULL * (uint64_t)(i + 1) + (uint64_t)i;
		put(want, 8 * i, *f[i], 8);
	}
	sqb_kvm_enc_regs(&r, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.1.1 X86_SREGS: 8 segments of 24 bytes (cs ds es fs gs ss tr ldt), then
 * gdt, idt, control registers, efer, apic_base, interrupt_bitmap. */
static void test_kat_sregs(void **state)
{
	struct kvm_sregs s;
	struct kvm_segment *seg[8] = {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt};
	uint8_t got[SQB_X86_SREGS_SIZE], want[SQB_X86_SREGS_SIZE];

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(want, 0, sizeof(want));
	for (int k = 0; k < 8; k++) {
		size_t o = 24 * (size_t)k;
		seg[k]->base = 0xb000000000ULL + (uint64_t)k;
		seg[k]->limit = 0x1000u + (uint32_t)k;
		seg[k]->selector = (uint16_t)(0x10 * (k + 1));
		seg[k]->type = (uint8_t)(k + 1);
		seg[k]->present = 1;
		seg[k]->dpl = (uint8_t)(k & 3);
		seg[k]->db = (uint8_t)(k & 1);
		seg[k]->s = 1;
		seg[k]->l = (uint8_t)(k == 0);
		seg[k]->g = 1;
		seg[k]->avl = (uint8_t)(k == 7);
		seg[k]->unusable = (uint8_t)(k == 6);
		put(want, o + 0, seg[k]->base, 8);
		put(want, o + 8, seg[k]->limit, 4);
		put(want, o + 12, seg[k]->selector, 2);
		want[o + 14] = seg[k]->type;
		want[o + 15] = seg[k]->present;
		want[o + 16] = seg[k]->dpl;
		want[o + 17] = seg[k]->db;
		want[o + 18] = seg[k]->s;
		want[o + 19] = seg[k]->l;
		want[o + 20] = seg[k]->g;
		want[o + 21] = seg[k]->avl;
		want[o + 22] = seg[k]->unusable;
	}
	s.gdt.base = 0x6d7000, s.gdt.limit = 0x27;
	s.idt.base = 0x1d7000, s.idt.limit = 0xfff;
	s.cr0 = 0x80050033, s.cr2 = 0x7f0000001000ULL, s.cr3 = 0x3a0e000, s.cr4 = 0x3706f0;
	s.cr8 = 0xf, s.efer = 0xd01, s.apic_base = 0xfee00900;
	for (int i = 0; i < 4; i++)
		s.interrupt_bitmap[i] = 0x8000000000000001ULL >> i;
	put(want, 192, s.gdt.base, 8);
	put(want, 200, s.gdt.limit, 2);
	put(want, 208, s.idt.base, 8);
	put(want, 216, s.idt.limit, 2);
	put(want, 224, s.cr0, 8);
	put(want, 232, s.cr2, 8);
	put(want, 240, s.cr3, 8);
	put(want, 248, s.cr4, 8);
	put(want, 256, s.cr8, 8);
	put(want, 264, s.efer, 8);
	put(want, 272, s.apic_base, 8);
	for (int i = 0; i < 4; i++)
		put(want, 280 + 8 * (size_t)i, s.interrupt_bitmap[i], 8);
	sqb_kvm_enc_sregs(&s, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.1.2 X86_EVENTS (64 bytes). */
static void test_kat_events(void **state)
{
	struct kvm_vcpu_events e;
	uint8_t got[SQB_X86_EVENTS_SIZE], want[SQB_X86_EVENTS_SIZE];

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(want, 0, sizeof(want));
	e.exception.injected = 1, e.exception.nr = 14, e.exception.has_error_code = 1;
	e.exception.pending = 1, e.exception.error_code = 0xdeadbeef;
	e.interrupt.injected = 1, e.interrupt.nr = 0x31, e.interrupt.soft = 1;
	e.interrupt.shadow = 2;
	e.nmi.injected = 1, e.nmi.pending = 1, e.nmi.masked = 1;
	e.sipi_vector = 0x9a;
	e.flags = 0x1f;
	e.smi.smm = 1, e.smi.pending = 1, e.smi.smm_inside_nmi = 1, e.smi.latched_init = 1;
	e.triple_fault.pending = 1;
	e.exception_has_payload = 1;
	e.exception_payload = 0x123456789abcdefULL;
	uint8_t b[] = {1, 14, 1, 1};
	memcpy(want, b, 4);
	put(want, 4, 0xdeadbeef, 4);
	want[8] = 1, want[9] = 0x31, want[10] = 1, want[11] = 2;
	want[12] = 1, want[13] = 1, want[14] = 1;
	put(want, 16, 0x9a, 4);
	put(want, 20, 0x1f, 4);
	want[24] = want[25] = want[26] = want[27] = 1;
	want[28] = 1;
	want[29] = 1;
	put(want, 32, e.exception_payload, 8);
	sqb_kvm_enc_events(&e, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.1 X86_DEBUGREGS: db0 db1 db2 db3 dr6 dr7 flags, 7 x u64. */
static void test_kat_debugregs(void **state)
{
	struct kvm_debugregs d;
	uint8_t got[SQB_X86_DEBUGREGS_SIZE], want[SQB_X86_DEBUGREGS_SIZE];

	(void)state;
	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 4; i++)
		d.db[i] = 0xd0 + (uint64_t)i;
	d.dr6 = 0xffff0ff0, d.dr7 = 0x400, d.flags = 0;
	for (int i = 0; i < 4; i++)
		put(want, 8 * (size_t)i, d.db[i], 8);
	put(want, 32, d.dr6, 8);
	put(want, 40, d.dr7, 8);
	put(want, 48, d.flags, 8);
	sqb_kvm_enc_debugregs(&d, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.3 KVM_PIC_*: 16 x u8 in the table's order. */
static void test_kat_pic(void **state)
{
	struct kvm_pic_state p;
	uint8_t got[SQB_KVM_PIC_SIZE], want[SQB_KVM_PIC_SIZE];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.last_irr = 1, p.irr = 2, p.imr = 3, p.isr = 4, p.priority_add = 5, p.irq_base = 6;
	p.read_reg_select = 7, p.poll = 8, p.special_mask = 9, p.init_state = 10, p.auto_eoi = 11;
	p.rotate_on_auto_eoi = 12, p.special_fully_nested_mode = 13, p.init4 = 14, p.elcr = 15;
	p.elcr_mask = 16;
	for (int i = 0; i < 16; i++)
		want[i] = (uint8_t)(i + 1);
	sqb_kvm_enc_pic(&p, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.3 KVM_IOAPIC: base_address u64, ioregsel u32, id u32, irr u32,
 * reserved u32, 24 x redirection entry u64. */
static void test_kat_ioapic(void **state)
{
	struct kvm_ioapic_state a;
	uint8_t got[SQB_KVM_IOAPIC_SIZE], want[SQB_KVM_IOAPIC_SIZE];

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(want, 0, sizeof(want));
	a.base_address = 0xfec00000, a.ioregsel = 0x10, a.id = 0x2, a.irr = 0x10;
	for (int i = 0; i < 24; i++)
		a.redirtbl[i].bits = 0x10000ULL | (0x20 + (uint64_t)i) | ((uint64_t)i << 56);
	put(want, 0, a.base_address, 8);
	put(want, 8, a.ioregsel, 4);
	put(want, 12, a.id, 4);
	put(want, 16, a.irr, 4);
	for (int i = 0; i < 24; i++)
		put(want, 24 + 8 * (size_t)i, a.redirtbl[i].bits, 8);
	sqb_kvm_enc_ioapic(&a, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.3 KVM_PIT: 3 channels (table 8.3.1), flags u32, reserved u32. */
static void test_kat_pit(void **state)
{
	struct kvm_pit_state2 p;
	uint8_t got[SQB_KVM_PIT_SIZE], want[SQB_KVM_PIT_SIZE];

	(void)state;
	memset(&p, 0, sizeof(p));
	memset(want, 0, sizeof(want));
	for (int c = 0; c < 3; c++) {
		struct kvm_pit_channel_state *ch = &p.channels[c];
		size_t o = 24 * (size_t)c;
		ch->count = 0x10000u + (uint32_t)c;
		ch->latched_count = (uint16_t)(0x100 + c);
		ch->count_latched = 1, ch->status_latched = 2, ch->status = 3, ch->read_state = 4;
		ch->write_state = 5, ch->write_latch = 6, ch->rw_mode = 7, ch->mode = 8,
		ch->bcd = 9;
		ch->gate = 10;
		ch->count_load_time = -1000 - c;
		put(want, o, ch->count, 4);
		put(want, o + 4, ch->latched_count, 2);
		for (int k = 0; k < 10; k++)
			want[o + 6 + (size_t)k] = (uint8_t)(k + 1);
		put(want, o + 16, (uint64_t)ch->count_load_time, 8);
	}
	p.flags = 0x1;
	put(want, 72, p.flags, 4);
	sqb_kvm_enc_pit(&p, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* 8.3 KVM_CLOCK: clock u64, flags u32, reserved u32, realtime u64, host_tsc u64. */
static void test_kat_clock(void **state)
{
	struct kvm_clock_data c;
	uint8_t got[SQB_KVM_CLOCK_SIZE], want[SQB_KVM_CLOCK_SIZE];

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(want, 0, sizeof(want));
	c.clock = 0x0102030405060708ULL, c.flags = 0x6;
	c.realtime = 0x1111222233334444ULL, c.host_tsc = 0x5555666677778888ULL;
	put(want, 0, c.clock, 8);
	put(want, 8, c.flags, 4);
	put(want, 16, c.realtime, 8);
	put(want, 24, c.host_tsc, 8);
	sqb_kvm_enc_clock(&c, got);
	assert_memory_equal(got, want, sizeof(want));
}

/* [F-52] variable records: count u32, reserved u32, then the entries:
 * MSRS index u32, reserved u32, value u64; XCRS the same shape;
 * CPUID function index flags eax ebx ecx edx u32, reserved u32. */
static void test_kat_variable_records(void **state)
{
	struct kvm_msr_entry m[2] = {{.index = 0xc0000080, .data = 0xd01},
				     {.index = 0x10, .data = 0x123456789ULL}};
	struct kvm_cpuid_entry2 c = {.function = 0xd,
				     .index = 1,
				     .flags = 1,
				     .eax = 0xa,
				     .ebx = 0xb,
				     .ecx = 0xc,
				     .edx = 0xe};
	struct kvm_xcrs x;
	uint8_t got[64], want[64];

	(void)state;
	memset(want, 0, sizeof(want));
	put(want, 0, 2, 4);
	put(want, 8, 0xc0000080, 4);
	put(want, 16, 0xd01, 8);
	put(want, 24, 0x10, 4);
	put(want, 32, 0x123456789ULL, 8);
	assert_int_equal(sqb_kvm_enc_msrs(m, 2, got), 40);
	assert_memory_equal(got, want, 40);

	memset(want, 0, sizeof(want));
	put(want, 0, 1, 4);
	put(want, 8, 0xd, 4);
	put(want, 12, 1, 4);
	put(want, 16, 1, 4);
	put(want, 20, 0xa, 4);
	put(want, 24, 0xb, 4);
	put(want, 28, 0xc, 4);
	put(want, 32, 0xe, 4);
	assert_int_equal(sqb_kvm_enc_cpuid(&c, 1, got), 40);
	assert_memory_equal(got, want, 40);

	memset(&x, 0, sizeof(x));
	x.nr_xcrs = 1;
	x.xcrs[0].xcr = 0;
	x.xcrs[0].value = 0x207;
	memset(want, 0, sizeof(want));
	put(want, 0, 1, 4);
	put(want, 16, 0x207, 8);
	assert_int_equal(sqb_kvm_enc_xcrs(&x, got), 24);
	assert_memory_equal(got, want, 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixed_records_roundtrip),
	    cmocka_unit_test(test_variable_records_roundtrip_and_bounds),
	    cmocka_unit_test(test_kat_regs),
	    cmocka_unit_test(test_kat_sregs),
	    cmocka_unit_test(test_kat_events),
	    cmocka_unit_test(test_kat_debugregs),
	    cmocka_unit_test(test_kat_pic),
	    cmocka_unit_test(test_kat_ioapic),
	    cmocka_unit_test(test_kat_pit),
	    cmocka_unit_test(test_kat_clock),
	    cmocka_unit_test(test_kat_variable_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
