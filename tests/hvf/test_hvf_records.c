/* The HVF backend's snapshot records (runtime/hvf/hvf_snapshot.c) against
 * format.md 8.2 / 8.3 with the hv_* calls stubbed by a register file: a save
 * -> load round trip, and every way a hostile vCPU or INTC list is refused
 * before it reaches the hypervisor ([F-52], [F-53], [F-54], [F-55]). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hvf_priv.h"
#include "squib/snapfmt.h"

/* ---- a fake framework: one vCPU's registers ---- */
static uint64_t xreg[40], sysreg[65536], icc[65536], vtoff;
static uint8_t q[32][16];
static bool vmask;
static int nsets, gic_set_len;

int sqb_hvf_err(hv_return_t r)
{
	return r == HV_SUCCESS ? 0 : -EIO;
}
hv_return_t hv_vcpu_get_reg(hv_vcpu_t v, hv_reg_t r, uint64_t *x)
{
	(void)v;
	*x = xreg[r];
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_set_reg(hv_vcpu_t v, hv_reg_t r, uint64_t x)
{
	(void)v;
	xreg[r] = x;
	nsets++;
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_get_simd_fp_reg(hv_vcpu_t v, hv_simd_fp_reg_t r, hv_simd_fp_uchar16_t *x)
{
	(void)v;
	memcpy(x, q[r], 16);
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_set_simd_fp_reg(hv_vcpu_t v, hv_simd_fp_reg_t r, hv_simd_fp_uchar16_t x)
{
	(void)v;
	memcpy(q[r], &x, 16);
	return HV_SUCCESS;
}
/* no pointer authentication in this fake: the PAC keys are refused */
static int is_pac(hv_sys_reg_t r)
{
	return r >= HV_SYSREG_ENC(3, 0, 2, 1, 0) && r <= HV_SYSREG_ENC(3, 0, 2, 3, 1);
}
hv_return_t hv_vcpu_get_sys_reg(hv_vcpu_t v, hv_sys_reg_t r, uint64_t *x)
{
	(void)v;
	*x = sysreg[r];
	return is_pac(r) ? HV_BAD_ARGUMENT : HV_SUCCESS;
}
hv_return_t hv_vcpu_set_sys_reg(hv_vcpu_t v, hv_sys_reg_t r, uint64_t x)
{
	(void)v;
	sysreg[r] = x;
	nsets++;
	return is_pac(r) ? HV_BAD_ARGUMENT : HV_SUCCESS;
}
hv_return_t hv_gic_get_icc_reg(hv_vcpu_t v, hv_gic_icc_reg_t r, uint64_t *x)
{
	(void)v;
	*x = icc[r];
	return HV_SUCCESS;
}
hv_return_t hv_gic_set_icc_reg(hv_vcpu_t v, hv_gic_icc_reg_t r, uint64_t x)
{
	(void)v;
	icc[r] = x;
	nsets++;
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_get_vtimer_offset(hv_vcpu_t v, uint64_t *x)
{
	(void)v;
	*x = vtoff;
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_set_vtimer_offset(hv_vcpu_t v, uint64_t x)
{
	(void)v;
	vtoff = x;
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_get_vtimer_mask(hv_vcpu_t v, bool *m)
{
	(void)v;
	*m = vmask;
	return HV_SUCCESS;
}
hv_return_t hv_vcpu_set_vtimer_mask(hv_vcpu_t v, bool m)
{
	(void)v;
	vmask = m;
	return HV_SUCCESS;
}
static const uint8_t blob[5] = {9, 8, 7, 6, 5};
hv_gic_state_t hv_gic_state_create(void)
{
	return (hv_gic_state_t)(uintptr_t)1;
}
hv_return_t hv_gic_state_get_size(hv_gic_state_t s, size_t *n)
{
	(void)s;
	*n = sizeof(blob);
	return HV_SUCCESS;
}
hv_return_t hv_gic_state_get_data(hv_gic_state_t s, void *d)
{
	(void)s;
	memcpy(d, blob, sizeof(blob));
	return HV_SUCCESS;
}
hv_return_t hv_gic_set_state(const void *d, size_t n)
{
	gic_set_len = memcmp(d, blob, n) == 0 ? (int)n : -1;
	return HV_SUCCESS;
}
void os_release(void *o)
{
	(void)o;
}

/* ---- fixtures ---- */
static struct sqb_hv_vm vm;
static struct sqb_hv_vcpu vc;

static int setup(void **state)
{
	(void)state;
	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.lock, NULL);
	vm.nvcpus = 2;
	vm.power[0] = SQB_HVF_ON;
	vc.vm = &vm;
	vc.index = 0;
	for (unsigned int i = 0; i < 40; i++)
		xreg[i] = 0x1000 + i;
	for (unsigned int i = 0; i < 65536; i++)
		sysreg[i] = icc[i] = 0xabc00000ull + i;
	for (unsigned int i = 0; i < 32; i++)
		memset(q[i], (int)i, 16);
	vtoff = 0x123456789ull;
	vmask = true;
	nsets = 0;
	return 0;
}

static void save(struct sqb_record *r, unsigned int *n)
{
	assert_int_equal(sqb_hvf_vcpu_save_records(&vc, r, 16, n), 0);
}

static void free_recs(struct sqb_record *r, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		free((void *)r[i].data);
}

static uint8_t *rec(struct sqb_record *r, unsigned int n, uint16_t tag)
{
	const struct sqb_record *x = sqb_record_find(r, n, tag);

	assert_non_null(x);
	return (uint8_t *)x->data;
}

static void test_round_trip(void **state)
{
	struct sqb_record r[16];
	struct sqb_diag d;
	unsigned int n;
	uint64_t pc = xreg[HV_REG_PC], sctlr = sysreg[HV_SYSREG_ENC(3, 0, 1, 0, 0)];

	(void)state;
	save(r, &n);
	assert_int_equal(n, 6); /* CORE FPSIMD SYSREGS ICC VTIMER POWER; no PAUTH here */
	assert_null(sqb_record_find(r, n, SQB_REC_ARM64_PAUTH));
	assert_int_equal(sqb_record_find(r, n, SQB_REC_ARM64_CORE)->len, 296);
	assert_int_equal(sqb_record_find(r, n, SQB_REC_ARM64_FPSIMD)->len, 520);
	assert_int_equal(sqb_record_find(r, n, SQB_REC_ARM64_VTIMER)->len, 32);
	/* CORE: PC is u64 #33, little-endian */
	uint64_t v;
	memcpy(&v, rec(r, n, SQB_REC_ARM64_CORE) + 33 * 8, 8);
	assert_int_equal(v, pc);
	memset(xreg, 0, sizeof(xreg));
	sysreg[HV_SYSREG_ENC(3, 0, 1, 0, 0)] = 0;
	vtoff = 0;
	vmask = false;
	assert_int_equal(sqb_hvf_vcpu_load_records(&vc, r, n, &d), 0);
	assert_int_equal(xreg[HV_REG_PC], pc);
	assert_int_equal(sysreg[HV_SYSREG_ENC(3, 0, 1, 0, 0)], sctlr);
	assert_int_equal(vtoff, 0x123456789ull);
	assert_true(vmask);
	free_recs(r, n);
}

/* drop: 0 change one byte, 1 remove the record, 2 truncate it to off */
static int load_mut(uint16_t tag, size_t off, uint8_t val, int drop)
{
	struct sqb_record r[16];
	struct sqb_diag d;
	unsigned int n;
	int err;

	save(r, &n);
	for (unsigned int i = 0; i < n; i++)
		if (r[i].tag == tag) {
			if (drop == 1)
				r[i].tag = 0x7fff; /* unknown to the loader: as if absent */
			else if (drop == 2 && off < r[i].len)
				r[i].len = (uint32_t)off; /* shorter than the format says */
			else if (off < r[i].len)
				((uint8_t *)r[i].data)[off] = val;
		}
	nsets = 0;
	err = sqb_hvf_vcpu_load_records(&vc, r, n, &d);
	free_recs(r, n);
	return err;
}

static void test_hostile_vcpu(void **state)
{
	(void)state;
	/* [F-53]: each required record */
	assert_int_equal(load_mut(SQB_REC_ARM64_CORE, 0, 0, 1), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_ICC, 0, 0, 1), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_VTIMER, 0, 0, 1), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_POWER, 0, 0, 1), -SQB_ECORRUPT);
	assert_int_equal(nsets, 0); /* refused before any register was written */
	/* [F-52]: sizes */
	assert_int_equal(load_mut(SQB_REC_ARM64_CORE, 288, 0, 2), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_FPSIMD, 516, 0, 2), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_ICC, 4, 0, 2), -SQB_ETRUNCATED);
	assert_int_equal(load_mut(SQB_REC_ARM64_SYSREGS, 0, 200, 0), -SQB_ECORRUPT); /* count */
	assert_int_equal(load_mut(SQB_REC_ARM64_SYSREGS, 3, 0xff, 0), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_SYSREGS, 4, 1, 0), -SQB_ERESERVED);
	/* [F-54]: entry reserved word, encoding above 16 bits, a key twice */
	assert_int_equal(load_mut(SQB_REC_ARM64_SYSREGS, 8 + 4, 1, 0), -SQB_ERESERVED);
	assert_int_equal(load_mut(SQB_REC_ARM64_ICC, 8 + 2, 1, 0), -SQB_ERESERVED);
	assert_int_equal(load_mut(SQB_REC_ARM64_SYSREGS, 8 + 16, 0x05, 0), -SQB_ECORRUPT);
	/* power state, vtimer mask and reserved bytes */
	assert_int_equal(load_mut(SQB_REC_ARM64_POWER, 0, 3, 0), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_POWER, 4, 1, 0), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_VTIMER, 8, 2, 0), -SQB_ECORRUPT);
	assert_int_equal(load_mut(SQB_REC_ARM64_VTIMER, 12, 1, 0), -SQB_ERESERVED);
}

static void test_gic_state(void **state)
{
	struct sqb_record r[2];
	struct sqb_diag d;
	unsigned int n;

	(void)state;
	assert_int_equal(sqb_hvf_vm_save_records(&vm, r, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].tag, SQB_REC_HVF_GIC_STATE);
	gic_set_len = 0;
	assert_int_equal(sqb_hvf_vm_load_records(&vm, r, 1, &d), 0);
	assert_int_equal(gic_set_len, sizeof(blob));
	((uint8_t *)r[0].data)[8] ^= 0x20; /* another OS build */
	gic_set_len = 0;
	assert_int_equal(sqb_hvf_vm_load_records(&vm, r, 1, &d), -SQB_EMISMATCH);
	assert_int_equal(gic_set_len, 0); /* [F-55]: never handed to the framework */
	assert_int_equal(sqb_hvf_vm_load_records(&vm, r, 0, &d), -SQB_ECORRUPT);
	free((void *)r[0].data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_round_trip, setup),
	    cmocka_unit_test_setup(test_hostile_vcpu, setup),
	    cmocka_unit_test_setup(test_gic_state, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
