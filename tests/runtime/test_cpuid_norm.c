/* Unit, no KVM: Firecracker's CPUID normalization (kvm_cpuid_norm.c,
 * docs/cpuid.md) on fixed tables, an Intel Cascade Lake-like and an AMD
 * Milan-like KVM_GET_SUPPORTED_CPUID with made-up host answers.  The
 * expected registers are literals worked out by hand from Firecracker's
 * normalize.rs, intel/normalize.rs and amd/normalize.rs for 1, 2 (smt off
 * and on), 3 and 32 vCPUs, not recomputed from the same formulas. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm_cpuid_norm.h"

#define CAP 96

struct table {
	struct kvm_cpuid2 h;
	struct kvm_cpuid_entry2 e[CAP];
};

struct row {
	uint32_t leaf, sub, flags, eax, ebx, ecx, edx;
};

static void load(struct table *t, const struct row *r, unsigned int n)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int i = 0; i < n; i++)
		t->e[i] = (struct kvm_cpuid_entry2){.function = r[i].leaf,
						    .index = r[i].sub,
						    .flags = r[i].flags,
						    .eax = r[i].eax,
						    .ebx = r[i].ebx,
						    .ecx = r[i].ecx,
						    .edx = r[i].edx};
	t->h.nent = n;
}

static const struct kvm_cpuid_entry2 *find(const struct table *t, uint32_t leaf, uint32_t sub)
{
	for (unsigned int i = 0; i < t->h.nent; i++)
		if (t->e[i].function == leaf && t->e[i].index == sub)
			return &t->e[i];
	return NULL;
}

static void regs_are(const struct table *t, uint32_t leaf, uint32_t sub, uint32_t a, uint32_t b,
		     uint32_t c, uint32_t d)
{
	const struct kvm_cpuid_entry2 *e = find(t, leaf, sub);

	if (!e)
		fail_msg("no leaf %#x/%u", leaf, sub);
	if (e->eax != a || e->ebx != b || e->ecx != c || e->edx != d)
		fail_msg("leaf %#x/%u: %08x %08x %08x %08x; wanted %08x %08x %08x %08x", leaf, sub,
			 e->eax, e->ebx, e->ecx, e->edx, a, b, c, d);
}

static void brand_is(const struct table *t, const char *want)
{
	char got[49] = {0};

	for (unsigned int i = 0; i < 3; i++) {
		const struct kvm_cpuid_entry2 *e = find(t, 0x80000002 + i, 0);

		assert_non_null(e);
		memcpy(got + 16 * i, &e->eax, 4);
		memcpy(got + 16 * i + 4, &e->ebx, 4);
		memcpy(got + 16 * i + 8, &e->ecx, 4);
		memcpy(got + 16 * i + 12, &e->edx, 4);
	}
	assert_string_equal(got, want);
	for (size_t i = strlen(want); i < 48; i++) /* zero padded */
		assert_int_equal(got[i], 0);
}

static void brand_rows(struct row r[3], const char *s)
{
	char b[48] = {0};

	memcpy(b, s, strlen(s));
	for (unsigned int i = 0; i < 3; i++) {
		r[i] = (struct row){.leaf = 0x80000002 + i};
		memcpy(&r[i].eax, b + 16 * i, 4);
		memcpy(&r[i].ebx, b + 16 * i + 4, 4);
		memcpy(&r[i].ecx, b + 16 * i + 8, 4);
		memcpy(&r[i].edx, b + 16 * i + 12, 4);
	}
}

/* "GenuineIntel" / "AuthenticAMD" as leaf 0 EBX, ECX, EDX */
#define INTEL_B 0x756e6547u
#define INTEL_C 0x6c65746eu
#define INTEL_D 0x49656e69u
#define AMD_B	0x68747541u
#define AMD_C	0x444d4163u
#define AMD_D	0x69746e65u

/* ---- Intel, Cascade Lake-like ---- */

static unsigned int intel_table(struct table *t, int with_1f)
{
	struct row r[40] = {
	    /* leaf 0 with another vendor: the host's wins */
	    {0x0, 0, 0, 0x16, 0x11111111, 0x22222222, 0x33333333},
	    /* initial APIC ID 2, 16 IDs: both replaced */
	    {0x1, 0, 0, 0x00050657, 0x02100800, 0x7ffefbff, 0x0f8bfbff},
	    {0x4, 0, 1, 0x1c004121, 0x01c0003f, 0x0000003f, 0},
	    {0x4, 1, 1, 0x1c004122, 0x01c0003f, 0x0000003f, 0},
	    {0x4, 2, 1, 0x1c004143, 0x03c0003f, 0x000003ff, 0},
	    {0x4, 3, 1, 0x1c03c163, 0x0280003f, 0x00009fff, 4},
	    {0x4, 4, 1, 0, 0, 0, 0},
	    {0x6, 0, 0, 0x00000077, 0x00000002, 0x00000009, 0},
	    {0x7, 0, 1, 0, 0xd19f4f3b, 0x00000828, 0xbc000400},
	    {0xa, 0, 0, 0x07300402, 0, 0, 0x00000603},
	    {0xb, 0, 1, 0x00000001, 0x00000002, 0x00000100, 0x7},
	    {0xd, 0, 1, 0x000002e7, 0x00000a88, 0x00000a88, 0},
	    {0x80000000, 0, 0, 0x80000008, 0, 0, 0},
	    {0x80000001, 0, 0, 0, 0, 0x00000121, 0x2c100800},
	    {0x80000005, 0, 0, 0, 0, 0, 0},
	    {0x80000006, 0, 0, 0, 0, 0x01006040, 0},
	    {0x80000008, 0, 0, 0x0000302e, 0, 0, 0},
	    {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d},
	};
	unsigned int n = 18;

	brand_rows(&r[n], "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
	n += 3;
	if (with_1f) { /* a host with a die level: 0x1F has three subleaves */
		r[0].eax = 0x1f;
		r[n++] = (struct row){0x1f, 0, 1, 0x1, 0x2, 0x100, 0x7};
		r[n++] = (struct row){0x1f, 1, 1, 0x6, 0x30, 0x201, 0x7};
		r[n++] = (struct row){0x1f, 2, 1, 0x7, 0x60, 0x502, 0x7};
	}
	load(t, r, n);
	return n;
}

static const struct sqb_cpuid_host intel_host = {
    .vendor = {INTEL_B, INTEL_C, INTEL_D},
    .l80000005 = {0, 0, 0, 0},
    .l80000006 = {0, 0, 0x01006040, 0x00030000}, /* 17:16 reserved: cleared */
    .brand = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
};

struct intel_case {
	unsigned int count, tpc, index;
	uint32_t l1_ebx, l1_edx;
	uint32_t l4_eax[4];
	uint32_t b0_eax, b0_ebx;
};

static const struct intel_case intel_cases[] = {
    {1, 1, 0, 0x00010800, 0x0f8bfbff, {0x00000121, 0x00000122, 0x00000143, 0x00000163}, 0, 1},
    {2, 1, 1, 0x01020800, 0x1f8bfbff, {0x04000121, 0x04000122, 0x04000143, 0x04004163}, 0, 1},
    {2, 2, 1, 0x01020800, 0x1f8bfbff, {0x00004121, 0x00004122, 0x00004143, 0x00004163}, 1, 2},
    {3, 1, 2, 0x02040800, 0x1f8bfbff, {0x08000121, 0x08000122, 0x08000143, 0x08008163}, 0, 1},
    {32, 1, 31, 0x1f200800, 0x1f8bfbff, {0x7c000121, 0x7c000122, 0x7c000143, 0x7c07c163}, 0, 1},
    {32, 2, 17, 0x11200800, 0x1f8bfbff, {0x3c004121, 0x3c004122, 0x3c004143, 0x3c07c163}, 1, 2},
};

static void test_intel_known_answers(void **state)
{
	(void)state;
	for (unsigned int k = 0; k < sizeof(intel_cases) / sizeof(intel_cases[0]); k++) {
		const struct intel_case *x = &intel_cases[k];
		struct table t;
		char err[256];
		unsigned int n0 = intel_table(&t, 0);

		assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &intel_host, x->index, x->count,
						     x->tpc, err, sizeof(err)),
				 0);
		assert_string_equal(err, "");
		assert_int_equal(t.h.nent, n0 + 1); /* 0xB subleaf 1 */
		regs_are(&t, 0x0, 0, 0x16, INTEL_B, INTEL_C, INTEL_D);
		/* PDCM off, TSC-deadline and hypervisor on */
		regs_are(&t, 0x1, 0, 0x00050657, x->l1_ebx, 0xfffe7bff, x->l1_edx);
		regs_are(&t, 0x4, 0, x->l4_eax[0], 0x01c0003f, 0x3f, 0);
		regs_are(&t, 0x4, 1, x->l4_eax[1], 0x01c0003f, 0x3f, 0);
		regs_are(&t, 0x4, 2, x->l4_eax[2], 0x03c0003f, 0x3ff, 0);
		regs_are(&t, 0x4, 3, x->l4_eax[3], 0x0280003f, 0x9fff, 4);
		regs_are(&t, 0x4, 4, 0, 0, 0, 0);
		regs_are(&t, 0x6, 0, 0x75, 2, 0x1, 0);
		regs_are(&t, 0x7, 0, 0, 0xd19f6f7b, 0x00000808, 0xbc000400);
		regs_are(&t, 0xa, 0, 0, 0, 0, 0);
		regs_are(&t, 0xb, 0, x->b0_eax, x->b0_ebx, 0x100, x->index);
		regs_are(&t, 0xb, 1, 5, x->count, 0x201, x->index);
		assert_int_equal(find(&t, 0xb, 0)->flags, 1);
		assert_int_equal(find(&t, 0xb, 1)->flags, 1);
		regs_are(&t, 0xd, 0, 0x2e7, 0xa88, 0xa88, 0); /* untouched */
		regs_are(&t, 0x80000001, 0, 0, 0, 0x121, 0x2c100800);
		regs_are(&t, 0x80000006, 0, 0, 0, 0x01006040, 0);
		regs_are(&t, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
		brand_is(&t, "Intel(R) Xeon(R) Processor @ 2.50GHz");
		assert_null(find(&t, 0x1f, 0));
		assert_null(find(&t, 0x8000001e, 0));
	}
}

/* 0x1F, when KVM lists it, becomes a copy of 0xB subleaf by subleaf; a
 * subleaf 0xB lacks keeps what it was (Firecracker copies, never removes). */
static void test_intel_leaf_1f(void **state)
{
	struct table t;
	char err[256];

	(void)state;
	intel_table(&t, 1);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &intel_host, 3, 4, 2, err, sizeof(err)), 0);
	regs_are(&t, 0x1f, 0, 1, 2, 0x100, 3);
	regs_are(&t, 0x1f, 1, 5, 4, 0x201, 3);
	regs_are(&t, 0x1f, 2, 0x7, 0x60, 0x502, 0x7);
	regs_are(&t, 0x0, 0, 0x1f, INTEL_B, INTEL_C, INTEL_D);
}

/* A third 0xB subleaf: Firecracker leaves an invalid level (ECX = index). */
static void test_leaf_b_extra_subleaf(void **state)
{
	struct table t;
	unsigned int n = intel_table(&t, 0);
	char err[256];

	(void)state;
	t.e[n] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 1, .eax = 9, .ebx = 9};
	t.e[n + 1] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 2, .eax = 9, .ebx = 9};
	t.h.nent = n + 2;
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &intel_host, 1, 2, 1, err, sizeof(err)), 0);
	assert_int_equal(t.h.nent, n + 2); /* nothing added */
	regs_are(&t, 0xb, 1, 5, 2, 0x201, 1);
	regs_are(&t, 0xb, 2, 0, 0, 2, 1);
}

/* ---- AMD, Milan-like ---- */

static unsigned int amd_table(struct table *t)
{
	struct row r[40] = {
	    {0x0, 0, 0, 0x10, AMD_B, AMD_C, AMD_D},
	    {0x1, 0, 0, 0x00a00f11, 0x05020800, 0xfef83203, 0x178bfbff},
	    {0x6, 0, 0, 0x00000004, 0, 0, 0},
	    {0x7, 0, 1, 0, 0x219c91a9, 0x0040069c, 0x20000010},
	    {0xa, 0, 0, 0, 0, 0, 0},
	    {0xb, 0, 1, 0, 0, 0, 0},
	    {0xd, 0, 1, 0x000002e7, 0x00000980, 0x00000988, 0},
	    {0x80000000, 0, 0, 0x80000023, AMD_B, AMD_C, AMD_D},
	    {0x80000001, 0, 0, 0x00a00f11, 0x40000000, 0x00000393, 0x2fd3fbff},
	    {0x80000005, 0, 0, 0xff40ff40, 0xff40ff40, 0x20080140, 0x20080140},
	    {0x80000006, 0, 0, 0x48002200, 0x68004200, 0x02006140, 0x02009140},
	    {0x80000008, 0, 0, 0x00003030, 0x91bef75f, 0x0001705f, 0},
	    /* KVM's own 0x8000001D: replaced by the host's */
	    {0x8000001d, 0, 1, 0x0000c121, 0, 0, 0},
	    {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d},
	};
	unsigned int n = 14;

	brand_rows(&r[n], "AMD EPYC 7R13 48-Core Processor");
	n += 3;
	load(t, r, n);
	return n;
}

static const struct sqb_cpuid_host amd_host = {
    .vendor = {AMD_B, AMD_C, AMD_D},
    .l80000005 = {0xff40ff40, 0xff40ff40, 0x20080140, 0x20080140},
    .l80000006 = {0x48002200, 0x68004200, 0x02006140, 0x00039140},
    .brand = "AMD EPYC 7R13 48-Core Processor",
    .l8000001e = {0x0000000c, 0x00000106, 0x00000203, 0},
    .l8000001d = {{0x00004121, 0x01c0003f, 0x3f, 0},
		  {0x00004122, 0x01c0003f, 0x3f, 0},
		  {0x00004143, 0x01c0003f, 0x3ff, 2},
		  {0x0003c163, 0x03c0003f, 0x7fff, 1}},
    .n8000001d = 4,
};

struct amd_case {
	unsigned int count, tpc, index;
	uint32_t l1_ebx, l1_edx, nc_ecx;
	uint32_t d_eax[4]; /* 0x8000001D subleaves 0..3 EAX */
	uint32_t e_ebx;	   /* 0x8000001E EBX */
	uint32_t b0_eax, b0_ebx;
};

static const struct amd_case amd_cases[] = {
    {1, 1, 0, 0x00010800, 0x078bfbff, 0x00017000, {0x121, 0x122, 0x143, 0x163}, 0x0000, 0, 1},
    {2, 1, 1, 0x01020800, 0x178bfbff, 0x00017001, {0x121, 0x122, 0x143, 0x4163}, 0x0001, 0, 1},
    {2, 2, 1, 0x01020800, 0x178bfbff, 0x00017001, {0x4121, 0x4122, 0x4143, 0x4163}, 0x0100, 1, 2},
    {3, 1, 2, 0x02040800, 0x178bfbff, 0x00017002, {0x121, 0x122, 0x143, 0x8163}, 0x0002, 0, 1},
    {32, 1, 31, 0x1f200800, 0x178bfbff, 0x0001701f, {0x121, 0x122, 0x143, 0x7c163}, 0x001f, 0, 1},
    {32,
     2,
     17,
     0x11200800,
     0x178bfbff,
     0x0001701f,
     {0x4121, 0x4122, 0x4143, 0x7c163},
     0x0108,
     1,
     2},
};

static void test_amd_known_answers(void **state)
{
	(void)state;
	for (unsigned int k = 0; k < sizeof(amd_cases) / sizeof(amd_cases[0]); k++) {
		const struct amd_case *x = &amd_cases[k];
		struct table t;
		char err[256];
		unsigned int n0 = amd_table(&t);

		assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &amd_host, x->index, x->count,
						     x->tpc, err, sizeof(err)),
				 0);
		/* + 0xB/1, 0x8000001E, 0x8000001D subleaves 1..3 */
		assert_int_equal(t.h.nent, n0 + 5);
		regs_are(&t, 0x1, 0, 0x00a00f11, x->l1_ebx, 0xfff83203, x->l1_edx);
		regs_are(&t, 0x6, 0, 4, 0, 0, 0);		       /* Intel only */
		regs_are(&t, 0x7, 0, 0, 0x219c91a9, 0x0040069c, 0x10); /* no ARCH_CAPABILITIES */
		regs_are(&t, 0xb, 0, x->b0_eax, x->b0_ebx, 0x100, x->index);
		regs_are(&t, 0xb, 1, 5, x->count, 0x201, x->index);
		regs_are(&t, 0xd, 0, 0x2e7, 0x980, 0x988, 0);
		regs_are(&t, 0x80000001, 0, 0x00a00f11, 0x40000000, 0x00400393, 0x2fd3fbff);
		regs_are(&t, 0x80000006, 0, 0x48002200, 0x68004200, 0x02006140, 0x00009140);
		regs_are(&t, 0x80000008, 0, 0x3030, 0x91bef75f, x->nc_ecx, 0);
		regs_are(&t, 0x8000001d, 0, x->d_eax[0], 0x01c0003f, 0x3f, 0);
		regs_are(&t, 0x8000001d, 1, x->d_eax[1], 0x01c0003f, 0x3f, 0);
		regs_are(&t, 0x8000001d, 2, x->d_eax[2], 0x01c0003f, 0x3ff, 2);
		regs_are(&t, 0x8000001d, 3, x->d_eax[3], 0x03c0003f, 0x7fff, 1);
		for (unsigned int s = 0; s < 4; s++)
			assert_int_equal(find(&t, 0x8000001d, s)->flags, 1);
		regs_are(&t, 0x8000001e, 0, x->index, x->e_ebx, 0, 0);
		assert_int_equal(find(&t, 0x8000001e, 0)->flags, 0);
		regs_are(&t, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
		brand_is(&t, "AMD EPYC");
	}
}

/* Normalizing twice is normalizing once (squib's trial run relies on the
 * entry count only, but a rerun must not drift either). */
static void test_idempotent(void **state)
{
	struct table a, b;
	char err[256];

	(void)state;
	amd_table(&a);
	assert_int_equal(sqb_cpuid_normalize(&a.h, CAP, &amd_host, 5, 8, 2, err, sizeof(err)), 0);
	memcpy(&b, &a, sizeof(a));
	assert_int_equal(sqb_cpuid_normalize(&b.h, CAP, &amd_host, 5, 8, 2, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	intel_table(&a, 1);
	assert_int_equal(sqb_cpuid_normalize(&a.h, CAP, &intel_host, 5, 8, 2, err, sizeof(err)), 0);
	memcpy(&b, &a, sizeof(a));
	assert_int_equal(sqb_cpuid_normalize(&b.h, CAP, &intel_host, 5, 8, 2, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

/* ---- refusals: Firecracker's texts, never a write past the table ---- */

static void drop(struct table *t, uint32_t leaf, uint32_t sub)
{
	for (unsigned int i = 0; i < t->h.nent; i++)
		if (t->e[i].function == leaf && t->e[i].index == sub) {
			t->e[i] = t->e[--t->h.nent];
			return;
		}
	fail_msg("no leaf %#x to drop", leaf);
}

static void refused(int amd, uint32_t leaf, uint32_t sub, const char *want)
{
	struct table t;
	char err[256];

	if (amd)
		amd_table(&t);
	else
		intel_table(&t, 0);
	drop(&t, leaf, sub);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, amd ? &amd_host : &intel_host, 0, 1, 1, err,
					     sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, want);
}

#define PFX "Failed to apply modifications to CPUID: "

static void test_missing_leaves(void **state)
{
	(void)state;
	refused(0, 0x0, 0,
		PFX "Failed to set vendor ID in leaf 0x0: Leaf 0x0 is missing from CPUID.");
	refused(0, 0x1, 0,
		PFX "Failed to set feature information leaf: Leaf 0x1 is missing from CPUID.");
	refused(1, 0x80000005, 0,
		PFX "Failed to set extended cache features leaf: Leaf 0x80000005 is missing from "
		    "CPUID.");
	refused(0, 0x80000006, 0,
		PFX "Failed to set extended cache features leaf: Leaf 0x80000006 is missing from "
		    "CPUID.");
	refused(0, 0x6, 0,
		PFX "Failed to apply modifications to Intel CPUID: Leaf 0x6 is missing from "
		    "CPUID.");
	refused(0, 0xa, 0,
		PFX "Failed to apply modifications to Intel CPUID: Leaf 0xA is missing from "
		    "CPUID.");
	refused(0, 0x80000003, 0,
		PFX "Failed to apply modifications to Intel CPUID: Failed to set brand string: "
		    "Missing brand string leaves 0x80000002, 0x80000003 and 0x80000004.");
	refused(1, 0x7, 0,
		PFX "Failed to apply modifications to AMD CPUID: Missing leaf 0x7 / subleaf 0.");
	refused(1, 0x80000008, 0,
		PFX "Failed to apply modifications to AMD CPUID: Failed to set feature entry "
		    "leaf: Missing leaf 0x80000008.");
}

static void test_bad_host_args_and_room(void **state)
{
	struct sqb_cpuid_host h;
	struct table t;
	char err[256];
	unsigned int n;

	(void)state;
	/* arguments out of range */
	amd_table(&t);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &amd_host, 0, 0, 1, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &amd_host, 2, 2, 1, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &amd_host, 0, 33, 1, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &amd_host, 0, 2, 3, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(sqb_cpuid_normalize(&t.h, 3, &amd_host, 0, 1, 1, err, sizeof(err)),
			 -EINVAL); /* nent > cap */
	/* no room for what normalization adds: refused, nothing written past */
	n = amd_table(&t);
	t.e[n + 2] = (struct kvm_cpuid_entry2){.function = 0xdead};
	assert_int_equal(sqb_cpuid_normalize(&t.h, n + 2, &amd_host, 0, 1, 1, err, sizeof(err)),
			 -E2BIG);
	assert_int_equal(t.h.nent, n + 2);
	assert_int_equal(t.e[n + 2].function, 0xdead);
	assert_non_null(strstr(err, "no room for CPUID leaf 0x8000001d subleaf 1"));
	/* a vendor Firecracker has no rules for: the common part only */
	intel_table(&t, 0);
	h = intel_host;
	h.vendor[0] = 0x6f677948; /* "HygonGenuine" */
	h.vendor[2] = 0x6e65476e;
	h.vendor[1] = 0x656e6975;
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &h, 0, 2, 2, err, sizeof(err)), 0);
	regs_are(&t, 0xb, 1, 5, 2, 0x201, 0);
	regs_are(&t, 0x6, 0, 0x77, 2, 9, 0); /* Intel's rules not applied */
	/* the rules follow the host's vendor (leaf 0 takes it first) */
	amd_table(&t);
	assert_int_equal(sqb_cpuid_normalize(&t.h, CAP, &intel_host, 0, 1, 1, err, sizeof(err)), 0);
	assert_null(find(&t, 0x8000001e, 0)); /* Intel's path ran: no passthrough */
}

/* ---- Intel brand string (intel/normalize.rs default_brand_string) ---- */

static void brand_case(const char *host, const char *want)
{
	uint8_t in[48] = {0}, out[48];
	char got[49] = {0};

	memcpy(in, host, strlen(host) < 48 ? strlen(host) : 48);
	sqb_cpuid_intel_brand(in, out);
	memcpy(got, out, 48);
	assert_string_equal(got, want);
}

static void test_intel_brand(void **state)
{
	(void)state;
	brand_case("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
		   "Intel(R) Xeon(R) Processor @ 2.50GHz");
	brand_case("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz",
		   "Intel(R) Xeon(R) Processor @ 2.30GHz");
	brand_case("Intel(R) Genuine Processor Model 1234 @ 800MHz",
		   "Intel(R) Xeon(R) Processor @ 800MHz");
	brand_case("Intel(R) Future Processor Model 1234 @ 1.5THz",
		   "Intel(R) Xeon(R) Processor @ 1.5THz");
	/* Firecracker counts everything from the unit on, the host's zero
	 * padding too: a short host string overflows 48 bytes, the default */
	brand_case("Some CPU 800MHz", "Intel(R) Xeon(R) Processor");
	/* no frequency, no space before it, a letter in it, too long: the default */
	brand_case("Intel(R) Xeon(R) Platinum 8375C CPU", "Intel(R) Xeon(R) Processor");
	brand_case("Intel(R) CPU@2.50GHz", "Intel(R) Xeon(R) Processor");
	brand_case("Intel(R) CPU @ 2x50GHz", "Intel(R) Xeon(R) Processor");
	brand_case("2.50GHz", "Intel(R) Xeon(R) Processor");
	brand_case("x 12345678901234567890GHz", "Intel(R) Xeon(R) Processor");
	brand_case("", "Intel(R) Xeon(R) Processor");
	/* "Hz" at the very end (no room for the unit's three bytes) */
	brand_case("0123456789012345678901234567890123456789012 1.0GH",
		   "Intel(R) Xeon(R) Processor");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_intel_known_answers),
	    cmocka_unit_test(test_intel_leaf_1f),
	    cmocka_unit_test(test_leaf_b_extra_subleaf),
	    cmocka_unit_test(test_amd_known_answers),
	    cmocka_unit_test(test_idempotent),
	    cmocka_unit_test(test_missing_leaves),
	    cmocka_unit_test(test_bad_host_args_and_room),
	    cmocka_unit_test(test_intel_brand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
