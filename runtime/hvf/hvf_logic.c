/* Hypervisor-free logic of the HVF backend: ESR_EL2 decoding (Arm ARM
 * D17.2.37 and the ISS encodings of ECs 0x01, 0x16-0x18, 0x20, 0x24), PSCI
 * 0.2 served in the VMM (Arm DEN0022), and the HVF_GIC_STATE record of
 * format.md 8.3 ([F-52], [F-55]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvf_logic.h"

/* ---- ESR ---- */

static enum sqb_hvf_fsc fsc_kind(uint32_t fsc, uint8_t *level)
{
	*level = fsc & 3;
	switch (fsc & 0x3c) {
	case 0x04:
		return SQB_HVF_FSC_TRANSLATION;
	case 0x08:
		return SQB_HVF_FSC_ACCESS;
	case 0x0c:
		return SQB_HVF_FSC_PERMISSION;
	default:
		*level = 0;
		return SQB_HVF_FSC_OTHER;
	}
}

static void decode_abort(uint32_t iss, struct sqb_hvf_esr *o, int data)
{
	o->u.abt.fsc = fsc_kind(iss & 0x3f, &o->u.abt.level);
	o->u.abt.s1ptw = (iss >> 7) & 1;
	if (!data)
		return;
	o->u.abt.wnr = (iss >> 6) & 1;
	o->u.abt.isv = (iss >> 24) & 1;
	if (!o->u.abt.isv)
		return; /* SAS, SSE, SRT, SF are RES0 without ISV */
	o->u.abt.len = (uint8_t)(1u << ((iss >> 22) & 3));
	o->u.abt.sse = (iss >> 21) & 1;
	o->u.abt.srt = (iss >> 16) & 0x1f;
	o->u.abt.sf = (iss >> 15) & 1;
}

void sqb_hvf_esr_decode(uint64_t esr, struct sqb_hvf_esr *o)
{
	memset(o, 0, sizeof(*o));
	o->ec = (uint32_t)(esr >> 26) & 0x3f;
	o->il = (uint32_t)(esr >> 25) & 1;
	o->iss = (uint32_t)esr & 0x1ffffff;
	switch (o->ec) {
	case SQB_ESR_EC_DABT_LO:
		o->cls = SQB_HVF_ESR_DABT;
		decode_abort(o->iss, o, 1);
		break;
	case SQB_ESR_EC_IABT_LO:
		o->cls = SQB_HVF_ESR_IABT;
		decode_abort(o->iss, o, 0);
		break;
	case SQB_ESR_EC_WFX:
		o->cls = SQB_HVF_ESR_WFX;
		o->u.wfx.wfe = o->iss & 1; /* TI[0]: 0 WFI, 1 WFE (WFIT/WFET: TI[1]) */
		break;
	case SQB_ESR_EC_HVC64:
	case SQB_ESR_EC_SMC64:
		o->cls = o->ec == SQB_ESR_EC_HVC64 ? SQB_HVF_ESR_HVC : SQB_HVF_ESR_SMC;
		o->u.hvc.imm16 = o->iss & 0xffff;
		break;
	case SQB_ESR_EC_SYSREG:
		o->cls = SQB_HVF_ESR_SYSREG;
		o->u.sys.op0 = (o->iss >> 20) & 3;
		o->u.sys.op2 = (o->iss >> 17) & 7;
		o->u.sys.op1 = (o->iss >> 14) & 7;
		o->u.sys.crn = (o->iss >> 10) & 0xf;
		o->u.sys.rt = (o->iss >> 5) & 0x1f;
		o->u.sys.crm = (o->iss >> 1) & 0xf;
		o->u.sys.read = o->iss & 1;
		o->u.sys.encoding =
		    (uint16_t)(o->u.sys.op0 << 14 | o->u.sys.op1 << 11 | o->u.sys.crn << 7 |
			       o->u.sys.crm << 3 | o->u.sys.op2);
		break;
	default:
		o->cls = SQB_HVF_ESR_OTHER;
	}
}

uint64_t sqb_hvf_esr_dabt(int isv, unsigned int len, int sse, unsigned int srt, int sf, int wnr,
			  enum sqb_hvf_fsc fsc, unsigned int level)
{
	static const uint32_t fscbase[] = {0x10, 0x04, 0x08, 0x0c}; /* OTHER: synchronous ext */
	uint32_t iss = fscbase[fsc] | (fsc == SQB_HVF_FSC_OTHER ? 0 : (level & 3));
	unsigned int sas = len >= 8 ? 3 : len >= 4 ? 2 : len >= 2 ? 1 : 0;

	iss |= (uint32_t)(wnr ? 1 : 0) << 6;
	if (isv)
		iss |= 1u << 24 | sas << 22 | (uint32_t)(sse ? 1 : 0) << 21 | (srt & 0x1f) << 16 |
		       (uint32_t)(sf ? 1 : 0) << 15;
	return (uint64_t)SQB_ESR_EC_DABT_LO << 26 | 1u << 25 | iss;
}

/* ---- PSCI 0.2 ---- */

/* MPIDR affinity fields: Aff3 [39:32], Aff2..Aff0 [23:0]; other bits of a
 * caller's target_cpu must be zero (DEN0022 5.1.4: INVALID_PARAMETERS). */
#define MPIDR_AFF_MASK 0xff00ffffffull

static uint64_t psci_ret(int r)
{
	return (uint64_t)(int64_t)r;
}

enum sqb_hvf_psci_action sqb_hvf_psci_call(const struct sqb_hvf_psci_ops *ops, void *ctx,
					   uint64_t x[4])
{
	uint32_t fn = (uint32_t)x[0];
	int is32 = (fn & 0x40000000u) == 0;
	uint64_t a1 = is32 ? (uint32_t)x[1] : x[1];
	uint64_t a2 = is32 ? (uint32_t)x[2] : x[2];
	uint64_t a3 = is32 ? (uint32_t)x[3] : x[3];
	int idx;

	if (x[0] >> 32) { /* SMC32/HVC32 ids are 32 bits; upper half must be 0 */
		x[0] = psci_ret(SQB_PSCI_RET_NOT_SUPPORTED);
		return SQB_HVF_PSCI_CONTINUE;
	}
	switch (fn) {
	case SQB_PSCI_VERSION:
		x[0] = 2; /* major 0, minor 2 */
		break;
	case SQB_PSCI_CPU_SUSPEND_32:
	case SQB_PSCI_CPU_SUSPEND_64:
		/* a standby power state may return at once (DEN0022 5.4.2) */
		x[0] = psci_ret(SQB_PSCI_RET_SUCCESS);
		break;
	case SQB_PSCI_CPU_OFF:
		return SQB_HVF_PSCI_CPU_OFF;
	case SQB_PSCI_CPU_ON_32:
	case SQB_PSCI_CPU_ON_64:
		idx = (a1 & ~MPIDR_AFF_MASK) ? -1 : ops->find(ctx, a1);
		if (idx < 0) {
			x[0] = psci_ret(SQB_PSCI_RET_INVALID_PARAMS);
			break;
		}
		switch (ops->state(ctx, (unsigned int)idx)) {
		case SQB_HVF_ON:
			x[0] = psci_ret(SQB_PSCI_RET_ALREADY_ON);
			break;
		case SQB_HVF_ON_PENDING:
			x[0] = psci_ret(SQB_PSCI_RET_ON_PENDING);
			break;
		default:
			x[0] = psci_ret(ops->cpu_on(ctx, (unsigned int)idx, a2, a3));
		}
		break;
	case SQB_PSCI_AFFINITY_INFO_32:
	case SQB_PSCI_AFFINITY_INFO_64:
		/* only level 0 is meaningful for squib's flat topology */
		idx = (a1 & ~MPIDR_AFF_MASK) || a2 != 0 ? -1 : ops->find(ctx, a1);
		if (idx < 0) {
			x[0] = psci_ret(SQB_PSCI_RET_INVALID_PARAMS);
			break;
		}
		x[0] = (uint64_t)ops->state(ctx, (unsigned int)idx); /* 0 ON, 1 OFF, 2 ON_PENDING */
		x[0] = x[0] == SQB_HVF_ON ? 0 : x[0] == SQB_HVF_OFF ? 1 : 2;
		break;
	case SQB_PSCI_MIGRATE_INFO_TYPE:
		x[0] = 2; /* no Trusted OS: migration not required */
		break;
	case SQB_PSCI_SYSTEM_OFF:
		return SQB_HVF_PSCI_SYSTEM_OFF;
	case SQB_PSCI_SYSTEM_RESET:
		return SQB_HVF_PSCI_SYSTEM_RESET;
	default:
		x[0] = psci_ret(SQB_PSCI_RET_NOT_SUPPORTED);
	}
	return SQB_HVF_PSCI_CONTINUE;
}

/* ---- HVF_GIC_STATE record ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int sqb_hvf_gic_rec_encode(uint8_t **out, size_t *len, const char *os_build, const void *blob,
			   size_t blob_len)
{
	size_t bl = strlen(os_build), n;
	uint8_t *p;

	if (bl == 0 || bl > SQB_HVF_OS_BUILD_MAX)
		return -EINVAL;
	n = 8 + pad8(bl) + blob_len;
	p = calloc(1, n);
	if (!p)
		return -ENOMEM;
	put_le32(p, (uint32_t)bl);
	memcpy(p + 8, os_build, bl);
	if (blob_len)
		memcpy(p + 8 + pad8(bl), blob, blob_len);
	*out = p;
	*len = n;
	return 0;
}

static int gdiag(struct sqb_diag *d, uint64_t off, int err, const char *why)
{
	if (d) {
		d->offset = off;
		snprintf(d->section, sizeof(d->section), "INTC HVF_GIC_STATE");
		snprintf(d->reason, sizeof(d->reason), "%s", why);
	}
	return err;
}

int sqb_hvf_gic_rec_parse(const uint8_t *p, size_t len, const char *running_build,
			  const uint8_t **blob, size_t *blob_len, struct sqb_diag *diag)
{
	uint32_t bl;
	size_t body;

	if (len < 8)
		return gdiag(diag, 0, -SQB_ETRUNCATED, "record shorter than its 8-byte header");
	bl = get_le32(p);
	if (bl == 0 || bl > SQB_HVF_OS_BUILD_MAX)
		return gdiag(diag, 0, -SQB_ELIMIT, "os_build_len is 0 or over 256");
	if (get_le32(p + 4) != 0)
		return gdiag(diag, 4, -SQB_ERESERVED, "reserved word is not zero");
	body = 8 + pad8(bl);
	if (body > len)
		return gdiag(diag, 8, -SQB_ETRUNCATED, "OS build string runs past the record");
	for (size_t i = 8 + bl; i < body; i++)
		if (p[i])
			return gdiag(diag, i, -SQB_ECORRUPT,
				     "padding after the OS build is not zero");
	if (body == len)
		return gdiag(diag, body, -SQB_ETRUNCATED, "no hv_gic_state blob");
	if (!running_build || strlen(running_build) != bl ||
	    memcmp(p + 8, running_build, bl) != 0) {
		char why[200];

		snprintf(why, sizeof(why),
			 "GIC state of OS build '%.*s', this host runs '%s' [F-55]",
			 (int)(bl > 64 ? 64 : bl), (const char *)p + 8,
			 running_build ? running_build : "?");
		return gdiag(diag, 8, -SQB_EMISMATCH, why);
	}
	*blob = p + body;
	*blob_len = len - body;
	return 0;
}
