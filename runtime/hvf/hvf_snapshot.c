/* HVF backend, state as snapfmt records (format.md 8.2 and 8.3): ARM64_CORE,
 * FPSIMD, SYSREGS, ICC (hv_gic_get_icc_reg), PAUTH where the framework has
 * the keys, VTIMER (hv_vcpu_get_vtimer_offset / mask), POWER (the VMM's PSCI
 * table); the VM's HVF_GIC_STATE (hv_gic_state_*, tagged with the OS build,
 * [F-55]).  A load refuses a vCPU list without the [F-53] records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvf_priv.h"
#include "log.h"
#include "squib/snapfmt.h"

#define ENC HV_SYSREG_ENC

/* EL1 system state the framework lets a VMM read and write, apply order:
 * MPIDR and the translation regime before SCTLR turns the MMU on. */
static const hv_sys_reg_t sysregs[] = {
    ENC(3, 0, 0, 0, 5),	 /* MPIDR_EL1 */
    ENC(3, 0, 1, 0, 2),	 /* CPACR_EL1 */
    ENC(3, 0, 2, 0, 0),	 /* TTBR0_EL1 */
    ENC(3, 0, 2, 0, 1),	 /* TTBR1_EL1 */
    ENC(3, 0, 2, 0, 2),	 /* TCR_EL1 */
    ENC(3, 0, 5, 1, 0),	 /* AFSR0_EL1 */
    ENC(3, 0, 5, 1, 1),	 /* AFSR1_EL1 */
    ENC(3, 0, 5, 2, 0),	 /* ESR_EL1 */
    ENC(3, 0, 6, 0, 0),	 /* FAR_EL1 */
    ENC(3, 0, 7, 4, 0),	 /* PAR_EL1 */
    ENC(3, 0, 10, 2, 0), /* MAIR_EL1 */
    ENC(3, 0, 10, 3, 0), /* AMAIR_EL1 */
    ENC(3, 0, 12, 0, 0), /* VBAR_EL1 */
    ENC(3, 0, 13, 0, 1), /* CONTEXTIDR_EL1 */
    ENC(3, 0, 13, 0, 4), /* TPIDR_EL1 */
    ENC(3, 0, 14, 1, 0), /* CNTKCTL_EL1 */
    ENC(3, 2, 0, 0, 0),	 /* CSSELR_EL1 */
    ENC(3, 3, 13, 0, 2), /* TPIDR_EL0 */
    ENC(3, 3, 13, 0, 3), /* TPIDRRO_EL0 */
    ENC(2, 0, 0, 2, 2),	 /* MDSCR_EL1 */
    ENC(3, 0, 1, 0, 0),	 /* SCTLR_EL1 */
};

/* ICC registers, apply order as the KVM backend: SRE, CTLR first, enables last. */
static const hv_gic_icc_reg_t icc_regs[] = {
    ENC(3, 0, 12, 12, 5), ENC(3, 0, 12, 12, 4), ENC(3, 0, 4, 6, 0),
    ENC(3, 0, 12, 8, 3),  ENC(3, 0, 12, 12, 3), ENC(3, 0, 12, 8, 4),
    ENC(3, 0, 12, 9, 0),  ENC(3, 0, 12, 12, 6), ENC(3, 0, 12, 12, 7),
};

/* PAC keys APIA, APIB, APDA, APDB, APGA: lo then hi (CRn 2, CRm 1..3). */
static const hv_sys_reg_t pauth_regs[10] = {
    ENC(3, 0, 2, 1, 0), ENC(3, 0, 2, 1, 1), ENC(3, 0, 2, 1, 2), ENC(3, 0, 2, 1, 3),
    ENC(3, 0, 2, 2, 0), ENC(3, 0, 2, 2, 1), ENC(3, 0, 2, 2, 2), ENC(3, 0, 2, 2, 3),
    ENC(3, 0, 2, 3, 0), ENC(3, 0, 2, 3, 1),
};

#define SYS_SP_EL0    ENC(3, 0, 4, 1, 0)
#define SYS_SP_EL1    ENC(3, 4, 4, 1, 0)
#define SYS_ELR_EL1   ENC(3, 0, 4, 0, 1)
#define SYS_SPSR_EL1  ENC(3, 0, 4, 0, 0)
#define SYS_CNTV_CTL  ENC(3, 3, 14, 3, 1)
#define SYS_CNTV_CVAL ENC(3, 3, 14, 3, 2)
#define NSYS	      (sizeof(sysregs) / sizeof(sysregs[0]))
#define NICC	      (sizeof(icc_regs) / sizeof(icc_regs[0]))

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t *rec_add(struct sqb_record *recs, unsigned int cap, unsigned int *n, uint16_t tag,
			size_t len)
{
	uint8_t *p;

	if (*n >= cap || !(p = calloc(1, len ? len : 1)))
		return NULL;
	recs[*n] = (struct sqb_record){tag, SQB_RECF_CRITICAL, (uint32_t)len, p};
	(*n)++;
	return p;
}

/* CORE order: X0..X30, SP_EL0, SP_EL1, PC, PSTATE, ELR_EL1, SPSR_EL1. */
static hv_return_t core_reg(hv_vcpu_t id, unsigned int i, uint64_t *v, int set)
{
	static const hv_sys_reg_t sys[] = {SYS_SP_EL0, SYS_SP_EL1, 0, 0, SYS_ELR_EL1, SYS_SPSR_EL1};

	if (i <= 30 || i == 33 || i == 34) {
		hv_reg_t r = i <= 30 ? HV_REG_X0 + i : i == 33 ? HV_REG_PC : HV_REG_CPSR;

		return set ? hv_vcpu_set_reg(id, r, *v) : hv_vcpu_get_reg(id, r, v);
	}
	return set ? hv_vcpu_set_sys_reg(id, sys[i - 31], *v)
		   : hv_vcpu_get_sys_reg(id, sys[i - 31], v);
}

static hv_return_t save_fpsimd(hv_vcpu_t id, uint8_t *p)
{
	hv_simd_fp_uchar16_t q;
	uint64_t fpcr = 0, fpsr = 0;
	hv_return_t r = HV_SUCCESS;

	for (unsigned int i = 0; i < 32 && r == HV_SUCCESS; i++) {
		r = hv_vcpu_get_simd_fp_reg(id, HV_SIMD_FP_REG_Q0 + i, &q);
		memcpy(p + 16 * i, &q, 16); /* little-endian: low 64 bits first */
	}
	if (r == HV_SUCCESS)
		r = hv_vcpu_get_reg(id, HV_REG_FPCR, &fpcr);
	if (r == HV_SUCCESS)
		r = hv_vcpu_get_reg(id, HV_REG_FPSR, &fpsr);
	le32(p + 512, (uint32_t)fpcr);
	le32(p + 516, (uint32_t)fpsr);
	return r;
}

int sqb_hvf_vcpu_save_records(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			      unsigned int *n)
{
	hv_vcpu_t id = vc->id;
	hv_return_t r = HV_SUCCESS;
	uint64_t v, key[10];
	bool masked = false;
	uint8_t *p;

	*n = 0;
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_CORE, 296)))
		return -ENOMEM;
	for (unsigned int i = 0; i < 37 && r == HV_SUCCESS; i++)
		if ((r = core_reg(id, i, &v, 0)) == HV_SUCCESS)
			le64(p + 8 * i, v);
	if (r != HV_SUCCESS)
		return sqb_hvf_err(r);
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_FPSIMD, 520)))
		return -ENOMEM;
	if ((r = save_fpsimd(id, p)) != HV_SUCCESS)
		return sqb_hvf_err(r);
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_SYSREGS, 8 + 16 * NSYS)))
		return -ENOMEM;
	le32(p, (uint32_t)NSYS);
	for (unsigned int i = 0; i < NSYS && r == HV_SUCCESS; i++) {
		r = hv_vcpu_get_sys_reg(id, sysregs[i], &v);
		le32(p + 8 + 16 * i, sysregs[i]);
		le64(p + 16 + 16 * i, v);
	}
	if (r != HV_SUCCESS)
		return sqb_hvf_err(r);
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_ICC, 8 + 16 * NICC)))
		return -ENOMEM;
	le32(p, (uint32_t)NICC);
	for (unsigned int i = 0; i < NICC && r == HV_SUCCESS; i++) {
		r = hv_gic_get_icc_reg(id, icc_regs[i], &v);
		le32(p + 8 + 16 * i, icc_regs[i]);
		le64(p + 16 + 16 * i, v);
	}
	if (r != HV_SUCCESS)
		return sqb_hvf_err(r);
	/* PAC keys: present when the framework exposes them to this guest */
	unsigned int k = 0;
	while (k < 10 && hv_vcpu_get_sys_reg(id, pauth_regs[k], &key[k]) == HV_SUCCESS)
		k++;
	if (k == 10) {
		if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_PAUTH, 80)))
			return -ENOMEM;
		for (unsigned int i = 0; i < 10; i++)
			le64(p + 8 * i, key[i]);
	}
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_VTIMER, 32)))
		return -ENOMEM;
	r = hv_vcpu_get_vtimer_offset(id, &v);
	le64(p, v);
	if (r == HV_SUCCESS)
		r = hv_vcpu_get_vtimer_mask(id, &masked);
	p[8] = masked;
	if (r == HV_SUCCESS && (r = hv_vcpu_get_sys_reg(id, SYS_CNTV_CTL, &v)) == HV_SUCCESS)
		le64(p + 16, v);
	if (r == HV_SUCCESS && (r = hv_vcpu_get_sys_reg(id, SYS_CNTV_CVAL, &v)) == HV_SUCCESS)
		le64(p + 24, v);
	if (r != HV_SUCCESS)
		return sqb_hvf_err(r);
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_POWER, 8)))
		return -ENOMEM;
	pthread_mutex_lock(&vc->vm->lock);
	le32(p, (uint32_t)vc->vm->power[vc->index]);
	pthread_mutex_unlock(&vc->vm->lock);
	return 0;
}

static int rdiag(struct sqb_diag *d, int err, uint16_t tag, const char *what, uint32_t key)
{
	const char *nm = sqb_record_tag_name(tag);

	if (d) {
		d->offset = UINT64_MAX;
		snprintf(d->reason, sizeof(d->reason), "%s: %s (key 0x%x)", nm ? nm : "record",
			 what, key);
	}
	return err;
}

/* A SYSREGS/ICC list: [F-52] length, [F-54] reserved words and no key twice. */
static int load_list(hv_vcpu_t id, const struct sqb_record *r, int icc, struct sqb_diag *d)
{
	const uint8_t *p = r->data;
	uint32_t cnt;

	if (r->len < 8)
		return rdiag(d, -SQB_ETRUNCATED, r->tag, "shorter than its header", 0);
	cnt = rd32(p);
	if (rd32(p + 4) != 0)
		return rdiag(d, -SQB_ERESERVED, r->tag, "reserved word not zero", 0);
	if (cnt > 4096 || r->len != 8 + 16ull * cnt)
		return rdiag(d, -SQB_ECORRUPT, r->tag, "length is not 8 + 16 x count", cnt);
	for (uint32_t i = 0; i < cnt; i++) {
		uint32_t enc = rd32(p + 8 + 16 * i);
		hv_return_t hr;

		if (rd32(p + 12 + 16 * i) != 0 || enc > 0xffff)
			return rdiag(d, -SQB_ERESERVED, r->tag, "reserved bits set", enc);
		for (uint32_t j = 0; j < i; j++)
			if (rd32(p + 8 + 16 * j) == enc)
				return rdiag(d, -SQB_ECORRUPT, r->tag, "key twice [F-54]", enc);
		hr = icc ? hv_gic_set_icc_reg(id, (hv_gic_icc_reg_t)enc, rd64(p + 16 + 16 * i))
			 : hv_vcpu_set_sys_reg(id, (hv_sys_reg_t)enc, rd64(p + 16 + 16 * i));
		if (hr != HV_SUCCESS)
			return rdiag(d, sqb_hvf_err(hr), r->tag, "the framework refused it", enc);
	}
	return 0;
}

static const struct sqb_record *need(const struct sqb_record *recs, unsigned int n, uint16_t tag,
				     uint32_t len, struct sqb_diag *d, int *err)
{
	const struct sqb_record *r = sqb_record_find(recs, n, tag);

	if (!r)
		*err = rdiag(d, -SQB_ECORRUPT, tag, "missing from the vCPU section [F-53]", 0);
	else if (len && r->len != len)
		*err = rdiag(d, -SQB_ECORRUPT, tag, "wrong size [F-52]", r->len);
	return *err ? NULL : r;
}

int sqb_hvf_vcpu_load_records(struct sqb_hv_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			      struct sqb_diag *d)
{
	const struct sqb_record *core, *fp, *sys, *icc, *vt, *pw, *pa;
	hv_vcpu_t id = vc->id;
	hv_return_t r = HV_SUCCESS;
	uint64_t v;
	int err = 0;

	core = need(recs, n, SQB_REC_ARM64_CORE, 296, d, &err);
	fp = err ? NULL : need(recs, n, SQB_REC_ARM64_FPSIMD, 520, d, &err);
	sys = err ? NULL : need(recs, n, SQB_REC_ARM64_SYSREGS, 0, d, &err);
	icc = err ? NULL : need(recs, n, SQB_REC_ARM64_ICC, 0, d, &err);
	vt = err ? NULL : need(recs, n, SQB_REC_ARM64_VTIMER, 32, d, &err);
	pw = err ? NULL : need(recs, n, SQB_REC_ARM64_POWER, 8, d, &err);
	if (err)
		return err;
	pa = sqb_record_find(recs, n, SQB_REC_ARM64_PAUTH);
	if (pa && pa->len != 80)
		return rdiag(d, -SQB_ECORRUPT, pa->tag, "wrong size [F-52]", pa->len);
	if (rd32((const uint8_t *)pw->data) > SQB_HVF_ON_PENDING ||
	    rd32((const uint8_t *)pw->data + 4))
		return rdiag(d, -SQB_ECORRUPT, pw->tag, "power state not 0, 1 or 2", 0);
	const uint8_t *t = vt->data;
	for (int i = 9; i < 16; i++)
		if (t[i])
			return rdiag(d, -SQB_ERESERVED, vt->tag, "reserved bytes not zero", 0);
	if (t[8] > 1)
		return rdiag(d, -SQB_ECORRUPT, vt->tag, "mask is not 0 or 1", t[8]);
	/* system registers first (MMU state), then the core */
	if ((err = load_list(id, sys, 0, d)) < 0 || (err = load_list(id, icc, 1, d)) < 0)
		return err;
	for (unsigned int i = 0; i < 37 && r == HV_SUCCESS; i++) {
		v = rd64((const uint8_t *)core->data + 8 * i);
		r = core_reg(id, i, &v, 1);
	}
	for (unsigned int i = 0; i < 32 && r == HV_SUCCESS; i++) {
		hv_simd_fp_uchar16_t q;

		memcpy(&q, (const uint8_t *)fp->data + 16 * i, 16);
		r = hv_vcpu_set_simd_fp_reg(id, HV_SIMD_FP_REG_Q0 + i, q);
	}
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(id, HV_REG_FPCR, rd32((const uint8_t *)fp->data + 512));
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(id, HV_REG_FPSR, rd32((const uint8_t *)fp->data + 516));
	for (unsigned int i = 0; pa && i < 10 && r == HV_SUCCESS; i++)
		r = hv_vcpu_set_sys_reg(id, pauth_regs[i], rd64((const uint8_t *)pa->data + 8 * i));
	/* the offset as recorded: the guest's counter moves on by the time the
	 * host counter moved (same host boot only, as on KVM) */
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_vtimer_offset(id, rd64(t));
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_sys_reg(id, SYS_CNTV_CVAL, rd64(t + 24));
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_sys_reg(id, SYS_CNTV_CTL, rd64(t + 16));
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_vtimer_mask(id, t[8] != 0);
	if (r != HV_SUCCESS)
		return rdiag(d, sqb_hvf_err(r), SQB_REC_ARM64_CORE,
			     "the framework refused a register", 0);
	pthread_mutex_lock(&vc->vm->lock);
	vc->vm->power[vc->index] = (enum sqb_hvf_power)rd32((const uint8_t *)pw->data);
	vc->loaded_pc = rd64((const uint8_t *)core->data + 8 * 33);
	vc->have_loaded_pc = 1;
	pthread_mutex_unlock(&vc->vm->lock);
	return 0;
}

int sqb_hvf_vm_save_records(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			    unsigned int *n)
{
	char build[SQB_HVF_OS_BUILD_MAX + 1];
	hv_gic_state_t st;
	size_t size = 0, len;
	uint8_t *blob = NULL, *rec;
	int err;

	(void)vm;
	*n = 0;
	if (cap < 1)
		return -ENOSPC;
	err = sqb_hvf_os_build(build, sizeof(build));
	if (err < 0)
		return err;
	st = hv_gic_state_create(); /* VM stopped: every vCPU parked */
	if (!st)
		return -EIO;
	err = sqb_hvf_err(hv_gic_state_get_size(st, &size));
	if (!err && (size == 0 || size > (64u << 20)))
		err = -EIO;
	if (!err && !(blob = malloc(size)))
		err = -ENOMEM;
	if (!err)
		err = sqb_hvf_err(hv_gic_state_get_data(st, blob));
	os_release(st);
	if (!err)
		err = sqb_hvf_gic_rec_encode(&rec, &len, build, blob, size);
	free(blob);
	if (err)
		return err;
	recs[0] = (struct sqb_record){SQB_REC_HVF_GIC_STATE, SQB_RECF_CRITICAL, (uint32_t)len, rec};
	*n = 1;
	return 0;
}

int sqb_hvf_vm_load_records(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			    struct sqb_diag *d)
{
	const struct sqb_record *r = sqb_record_find(recs, n, SQB_REC_HVF_GIC_STATE);
	char build[SQB_HVF_OS_BUILD_MAX + 1];
	const uint8_t *blob;
	size_t blen;
	int err;

	(void)vm;
	if (!r)
		return rdiag(d, -SQB_ECORRUPT, SQB_REC_HVF_GIC_STATE, "missing from INTC", 0);
	err = sqb_hvf_os_build(build, sizeof(build));
	if (!err)
		err = sqb_hvf_gic_rec_parse(r->data, r->len, build, &blob, &blen, d);
	if (err)
		return err;
	return sqb_hvf_err(hv_gic_set_state(blob, blen));
}
