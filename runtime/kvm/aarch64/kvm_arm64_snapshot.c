/* KVM backend, aarch64: a vCPU's state as snapfmt records (docs/format.md
 * 8.2): ARM64_CORE, ARM64_FPSIMD, ARM64_SYSREGS (every 64-bit system
 * register KVM_GET_REG_LIST names, keyed by its encoding [F-54]),
 * ARM64_ICC (the GICv3 CPU interface through the vGIC device),
 * ARM64_VTIMER and ARM64_POWER; and the VM's in-kernel GICv3 distributor
 * and redistributors as KVM_VGICV3 (8.3.2).  No ARM64_PAUTH: squib does
 * not give its vCPUs pointer authentication. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_priv.h"
#include "layout.h"
#include "log.h"
#include "squib/runtime.h"
#include "squib/snapfmt.h"

#define CORE_ID(size, field)                                                                       \
	(KVM_REG_ARM64 | (size) | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(field))
#define CORE64(field)	 CORE_ID(KVM_REG_SIZE_U64, field)
#define SYSREG_KEY_MASK	 0xffffULL
#define SYSREG_ID_PREFIX 0x6030000000130000ULL /* format.md [F-54] */
#define MAX_SYSREGS	 1024u

/* CNTV_CTL_EL0 / CNTV_CVAL_EL0 / the counter as KVM names them.  KVM's
 * TIMER_CNT and TIMER_CVAL ids carry each other's encodings (a historical
 * swap kept for ABI), so they are spelled by KVM's macros, not encodings. */
#define ENC(op0, op1, crn, crm, op2)                                                               \
	((uint32_t)((op0) << 14 | (op1) << 11 | (crn) << 7 | (crm) << 3 | (op2)))

#define POWER_OFF 0
#define POWER_ON  1

/* ICC registers in apply order: SRE and CTLR before the rest (they decide
 * how the others read), the enables last. */
static const uint32_t icc_regs[] = {
    ENC(3, 0, 12, 12, 5), /* ICC_SRE_EL1 */
    ENC(3, 0, 12, 12, 4), /* ICC_CTLR_EL1 */
    ENC(3, 0, 4, 6, 0),	  /* ICC_PMR_EL1 */
    ENC(3, 0, 12, 8, 3),  /* ICC_BPR0_EL1 */
    ENC(3, 0, 12, 12, 3), /* ICC_BPR1_EL1 */
    ENC(3, 0, 12, 8, 4),  ENC(3, 0, 12, 8, 5), ENC(3, 0, 12, 8, 6), ENC(3, 0, 12, 8, 7), /* AP0R */
    ENC(3, 0, 12, 9, 0),  ENC(3, 0, 12, 9, 1), ENC(3, 0, 12, 9, 2), ENC(3, 0, 12, 9, 3), /* AP1R */
    ENC(3, 0, 12, 12, 6), /* ICC_IGRPEN0_EL1 */
    ENC(3, 0, 12, 12, 7), /* ICC_IGRPEN1_EL1 */
};

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
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void rdiag(struct sqb_diag *d, uint16_t tag, const char *what, uint32_t key)
{
	const char *n = sqb_record_tag_name(tag);

	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->reason, sizeof(d->reason), "%s: %s (key 0x%x)", n ? n : "record", what, key);
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

/* The 37 core registers of ARM64_CORE, in the record's order. */
static uint64_t core_id(unsigned int i)
{
	if (i < 31)
		return CORE64(regs.regs[i]);
	switch (i) {
	case 31:
		return CORE64(regs.sp);
	case 32:
		return CORE64(sp_el1);
	case 33:
		return CORE64(regs.pc);
	case 34:
		return CORE64(regs.pstate);
	case 35:
		return CORE64(elr_el1);
	default:
		return CORE64(spsr[KVM_SPSR_EL1]);
	}
}

static int icc_attr(struct sqb_hv_vcpu *vc, uint32_t enc, uint64_t *val, int set)
{
	struct kvm_device_attr a = {
	    .group = KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
	    .attr = (sqb_arm64_mpidr(vc->index) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT) | enc,
	    .addr = (uint64_t)(uintptr_t)val};

	return ioctl(vc->vm->arch.vgic_fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0
		   ? -errno
		   : 0;
}

/* The timer's own registers are in VTIMER, not SYSREGS. */
static int is_timer_id(uint64_t id)
{
	return id == KVM_REG_ARM_TIMER_CTL || id == KVM_REG_ARM_TIMER_CNT ||
	       id == KVM_REG_ARM_TIMER_CVAL;
}

static int save_sysregs(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			unsigned int *n)
{
	struct kvm_reg_list probe = {.n = 0}, *list;
	uint32_t count = 0;
	uint8_t *p;
	int err = 0;

	/* E2BIG with n set to the count on the first call */
	if (ioctl(vc->fd, KVM_GET_REG_LIST, &probe) == 0 || errno != E2BIG)
		return -EIO;
	if (probe.n > 8 * MAX_SYSREGS)
		return -SQB_ELIMIT;
	list = calloc(1, sizeof(*list) + probe.n * sizeof(uint64_t));
	if (!list)
		return -ENOMEM;
	list->n = probe.n;
	if (ioctl(vc->fd, KVM_GET_REG_LIST, list) < 0) {
		free(list);
		return -errno;
	}
	p = rec_add(recs, cap, n, SQB_REC_ARM64_SYSREGS, 8 + 16 * (size_t)MAX_SYSREGS);
	if (!p) {
		free(list);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < list->n && !err; i++) {
		uint64_t id = list->reg[i], v;
		if ((id & ~SYSREG_KEY_MASK) != SYSREG_ID_PREFIX || is_timer_id(id))
			continue;
		if (count == MAX_SYSREGS) {
			err = -SQB_ELIMIT;
			break;
		}
		err = sqb_kvm_arm64_get_reg(vc, id, &v);
		le32(p + 8 + 16 * count, (uint32_t)(id & SYSREG_KEY_MASK));
		le64(p + 8 + 16 * count + 8, v);
		count++;
	}
	free(list);
	le32(p, count);
	recs[*n - 1].len = 8 + 16 * count;
	return err;
}

/* Capture order: CORE, FPSIMD, SYSREGS, ICC, VTIMER, POWER. */
int sqb_kvm_vcpu_save_records(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			      unsigned int *n)
{
	struct kvm_mp_state mp;
	uint64_t v, ctl, cval, cnt, host;
	uint32_t w, count = 0;
	uint8_t *p;
	int err = 0;

	*n = 0;
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_CORE, 37 * 8)))
		return -ENOMEM;
	for (unsigned int i = 0; i < 37 && !err; i++)
		if (!(err = sqb_kvm_arm64_get_reg(vc, core_id(i), &v)))
			le64(p + 8 * i, v);
	if (err)
		return err;
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_FPSIMD, 520)))
		return -ENOMEM;
	for (unsigned int i = 0; i < 32 && !err; i++) /* 128 bits, little-endian */
		err = sqb_kvm_arm64_get_reg(vc, CORE_ID(KVM_REG_SIZE_U128, fp_regs.vregs[i]),
					    p + 16 * i);
	err = err ?: sqb_kvm_arm64_get_reg(vc, CORE_ID(KVM_REG_SIZE_U32, fp_regs.fpcr), &w);
	if (!err)
		le32(p + 512, w);
	err = err ?: sqb_kvm_arm64_get_reg(vc, CORE_ID(KVM_REG_SIZE_U32, fp_regs.fpsr), &w);
	if (err)
		return err;
	le32(p + 516, w);
	FORWARD_IF_ERROR(save_sysregs(vc, recs, cap, n));

	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_ICC,
			  8 + 16 * sizeof(icc_regs) / sizeof(icc_regs[0]))))
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(icc_regs) / sizeof(icc_regs[0]); i++) {
		/* AP0R1-3 / AP1R1-3 exist only with more priority bits: skip */
		if (icc_attr(vc, icc_regs[i], &v, 0) < 0)
			continue;
		le32(p + 8 + 16 * count, icc_regs[i]);
		le64(p + 8 + 16 * count + 8, v);
		count++;
	}
	if (count < 5) /* SRE, CTLR, PMR, BPR0, BPR1 always exist */
		return -EIO;
	le32(p, count);
	recs[*n - 1].len = 8 + 16 * count;

	/* VTIMER: offset = the host's counter minus the guest's (CNTVOFF), read
	 * back to back; the host's EL0 virtual counter is its physical one. */
	err = sqb_kvm_arm64_get_reg(vc, KVM_REG_ARM_TIMER_CTL, &ctl);
	err = err ?: sqb_kvm_arm64_get_reg(vc, KVM_REG_ARM_TIMER_CVAL, &cval);
	err = err ?: sqb_kvm_arm64_get_reg(vc, KVM_REG_ARM_TIMER_CNT, &cnt);
	if (err)
		return err;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(host));
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_VTIMER, 32)))
		return -ENOMEM;
	le64(p, host - cnt);
	le64(p + 16, ctl);
	le64(p + 24, cval);

	if (ioctl(vc->fd, KVM_GET_MP_STATE, &mp) < 0)
		return -errno;
	if (!(p = rec_add(recs, cap, n, SQB_REC_ARM64_POWER, 8)))
		return -ENOMEM;
	le32(p, mp.mp_state == KVM_MP_STATE_STOPPED ? POWER_OFF : POWER_ON);
	return 0;
}

/* The one record with tag, of exactly size bytes (0: variable, checked by
 * the caller); -SQB_EUNSUPPORTED when a required one is missing ([F-53]). */
static const struct sqb_record *need(const struct sqb_record *recs, unsigned int n, uint16_t tag,
				     uint32_t size, struct sqb_diag *d, int *err)
{
	for (unsigned int i = 0; i < n; i++) {
		if (recs[i].tag != tag)
			continue;
		if ((size && recs[i].len != size) || (!size && recs[i].len < 8)) {
			rdiag(d, tag, "has the wrong size", recs[i].len);
			*err = -SQB_ECORRUPT;
			return NULL;
		}
		return &recs[i];
	}
	if (!*err) {
		rdiag(d, tag, "is missing from the vCPU (format.md [F-53])", tag);
		*err = -SQB_EUNSUPPORTED;
	}
	return NULL;
}

/* A SYSREGS / ICC list: count, reserved zero, entries with reserved zero
 * and unique keys ([F-52], [F-54]); apply each through set(). */
static int load_list(struct sqb_hv_vcpu *vc, const struct sqb_record *r, int icc,
		     struct sqb_diag *d)
{
	const uint8_t *p = r->data;
	uint32_t count = rd32(p);

	if (rd32(p + 4) || (uint64_t)r->len != 8 + 16 * (uint64_t)count ||
	    count > (icc ? 64 : MAX_SYSREGS)) {
		rdiag(d, r->tag, "has a bad count or reserved word", count);
		return -SQB_ECORRUPT;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = p + 8 + 16 * (size_t)i;
		uint32_t key = rd32(e);
		uint64_t v = rd64(e + 8);
		int err;

		if (rd32(e + 4) || key > 0xffff) {
			rdiag(d, r->tag, "entry has a reserved bit set", key);
			return -SQB_ECORRUPT;
		}
		for (uint32_t j = 0; j < i; j++)
			if (rd32(p + 8 + 16 * (size_t)j) == key) {
				rdiag(d, r->tag, "names a register twice", key);
				return -SQB_ECORRUPT;
			}
		err = icc ? icc_attr(vc, key, &v, 1)
			  : sqb_kvm_arm64_set_reg(vc, SYSREG_ID_PREFIX | key, &v);
		if (err < 0) {
			rdiag(d, r->tag, "register refused by the hypervisor", key);
			return -SQB_EMISMATCH;
		}
	}
	return 0;
}

/* Apply order: SYSREGS (MPIDR, system control), CORE, FPSIMD, VTIMER, ICC,
 * POWER. */
int sqb_kvm_vcpu_load_records(struct sqb_hv_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			      struct sqb_diag *d)
{
	const struct sqb_record *core, *fp, *sys, *icc, *vt, *pw;
	struct kvm_mp_state mp;
	const uint8_t *p;
	uint64_t host, cnt, ctl, cval;
	uint32_t w, state;
	int err = 0;

	core = need(recs, n, SQB_REC_ARM64_CORE, 37 * 8, d, &err);
	fp = need(recs, n, SQB_REC_ARM64_FPSIMD, 520, d, &err);
	sys = need(recs, n, SQB_REC_ARM64_SYSREGS, 0, d, &err);
	icc = need(recs, n, SQB_REC_ARM64_ICC, 0, d, &err);
	vt = need(recs, n, SQB_REC_ARM64_VTIMER, 32, d, &err);
	pw = need(recs, n, SQB_REC_ARM64_POWER, 8, d, &err);
	if (err)
		return err;
	for (unsigned int i = 0; i < n; i++)
		if (recs[i].tag == SQB_REC_ARM64_PAUTH) {
			rdiag(d, recs[i].tag, "keys for a vCPU without pointer authentication", 0);
			return -SQB_EUNSUPPORTED;
		}
	p = vt->data;
	state = rd32(pw->data);
	/* VTIMER: mask 0 or 1 (KVM has no mask; HVF's), bytes 9..15 reserved */
	if (p[8] > 1 || rd32(p + 8) >> 8 || rd32(p + 12) || rd32((const uint8_t *)pw->data + 4) ||
	    state > POWER_ON) {
		rdiag(d, state > POWER_ON ? pw->tag : vt->tag, "holds an unknown value", state);
		return -SQB_ECORRUPT;
	}
	FORWARD_IF_ERROR(load_list(vc, sys, 0, d));
	p = core->data;
	for (unsigned int i = 0; i < 37 && !err; i++) {
		uint64_t v = rd64(p + 8 * i);
		err = sqb_kvm_arm64_set_reg(vc, core_id(i), &v);
	}
	p = fp->data;
	for (unsigned int i = 0; i < 32 && !err; i++)
		err = sqb_kvm_arm64_set_reg(vc, CORE_ID(KVM_REG_SIZE_U128, fp_regs.vregs[i]),
					    p + 16 * i);
	w = rd32(p + 512);
	err = err ?: sqb_kvm_arm64_set_reg(vc, CORE_ID(KVM_REG_SIZE_U32, fp_regs.fpcr), &w);
	w = rd32(p + 516);
	err = err ?: sqb_kvm_arm64_set_reg(vc, CORE_ID(KVM_REG_SIZE_U32, fp_regs.fpsr), &w);
	if (err) {
		rdiag(d, SQB_REC_ARM64_CORE, "core/FP registers refused by the hypervisor", 0);
		return -SQB_EMISMATCH;
	}
	/* The same CNTVOFF as at capture (HVF's vtimer offset semantics): the
	 * guest's counter moved on by the time the VM was away. */
	p = vt->data;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(host));
	cnt = host - rd64(p);
	ctl = rd64(p + 16);
	cval = rd64(p + 24);
	err = sqb_kvm_arm64_set_reg(vc, KVM_REG_ARM_TIMER_CNT, &cnt);
	err = err ?: sqb_kvm_arm64_set_reg(vc, KVM_REG_ARM_TIMER_CVAL, &cval);
	err = err ?: sqb_kvm_arm64_set_reg(vc, KVM_REG_ARM_TIMER_CTL, &ctl);
	if (err) {
		rdiag(d, vt->tag, "refused by the hypervisor", 0);
		return -SQB_EMISMATCH;
	}
	FORWARD_IF_ERROR(load_list(vc, icc, 1, d));
	mp.mp_state = state == POWER_OFF ? KVM_MP_STATE_STOPPED : KVM_MP_STATE_RUNNABLE;
	if (ioctl(vc->fd, KVM_SET_MP_STATE, &mp) < 0) {
		rdiag(d, pw->tag, "refused by the hypervisor", state);
		return -SQB_EMISMATCH;
	}
	return 0;
}

/* ---- KVM_VGICV3 (format.md 8.3.2, [F-61]): the in-kernel GICv3 ---- */
#define GIC_FRAME_DIST		  1u
#define GIC_FRAME_REDIST	  2u
#define GIC_KEY(frame, vcpu, off) ((frame) << 24 | (uint32_t)(vcpu) << 17 | (uint32_t)(off))
#define GIC_NSPI_REGS		  ((SQB_ARM64_GIC_NR_IRQS - 32) / 32) /* 32-IRQ registers of SPIs */
#define GIC_MAX_KEYS                                                                               \
	(1 + 15 * GIC_NSPI_REGS + 2 * (SQB_ARM64_GIC_NR_IRQS - 32) + 15 * SQB_VM_MAX_VCPUS)

/* Every register a snapshot carries, in apply order: GICD_CTLR, then each
 * redistributor's SGI/PPI state, then the SPIs' group, configuration,
 * priority and routing before their pending, active and enable bits (a
 * line is enabled last, once everything about it is in place). */
static unsigned int gic_keys(unsigned int nvcpus, uint32_t *k)
{
	unsigned int n = 0;

	k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x0000); /* GICD_CTLR */
	for (unsigned int v = 0; v < nvcpus; v++) {
		static const uint32_t sgi[] = {0x10080, 0x10d00, 0x10c00,
					       0x10c04}; /* IGROUPR0 IGRPMODR0 ICFGR0/1 */
		for (unsigned int i = 0; i < 4; i++)
			k[n++] = GIC_KEY(GIC_FRAME_REDIST, v, sgi[i]);
		for (unsigned int i = 0; i < 8; i++)
			k[n++] = GIC_KEY(GIC_FRAME_REDIST, v, 0x10400 + 4 * i); /* IPRIORITYR */
		k[n++] = GIC_KEY(GIC_FRAME_REDIST, v, 0x10200);			/* ISPENDR0 */
		k[n++] = GIC_KEY(GIC_FRAME_REDIST, v, 0x10300);			/* ISACTIVER0 */
		k[n++] = GIC_KEY(GIC_FRAME_REDIST, v, 0x10100);			/* ISENABLER0 */
	}
	for (unsigned int r = 1; r <= GIC_NSPI_REGS; r++) {
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x080 + 4 * r); /* IGROUPR */
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0xd00 + 4 * r); /* IGRPMODR */
	}
	for (unsigned int r = 2; r < 2 + 2 * GIC_NSPI_REGS; r++)
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0xc00 + 4 * r); /* ICFGR: 16 IRQs each */
	for (unsigned int r = 8; r < 8 + 8 * GIC_NSPI_REGS; r++)
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x400 + 4 * r); /* IPRIORITYR: 4 each */
	for (unsigned int irq = 32; irq < SQB_ARM64_GIC_NR_IRQS; irq++) {
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x6000 + 8 * irq); /* IROUTER low */
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x6000 + 8 * irq + 4);
	}
	for (unsigned int r = 1; r <= GIC_NSPI_REGS; r++)
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x200 + 4 * r); /* ISPENDR */
	for (unsigned int r = 1; r <= GIC_NSPI_REGS; r++)
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x300 + 4 * r); /* ISACTIVER */
	for (unsigned int r = 1; r <= GIC_NSPI_REGS; r++)
		k[n++] = GIC_KEY(GIC_FRAME_DIST, 0, 0x100 + 4 * r); /* ISENABLER */
	return n;
}

static int gic_access(struct sqb_hv_vm *vm, uint32_t key, uint32_t *val, int set)
{
	uint32_t off = key & 0x1ffff, vcpu = (key >> 17) & 0x7f;
	struct kvm_device_attr a = {.addr = (uint64_t)(uintptr_t)val};

	if (key >> 24 == GIC_FRAME_DIST) {
		a.group = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
		a.attr = off;
	} else {
		a.group = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
		a.attr = (sqb_arm64_mpidr(vcpu) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT) | off;
	}
	return ioctl(vm->arch.vgic_fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0
		   ? -errno
		   : 0;
}

/* Set-registers (ISENABLER, ISPENDR, ISACTIVER) only set bits: clear the
 * rest through the matching Clear-register (offset + 0x80) first. */
static int gic_is_set_reg(uint32_t off)
{
	uint32_t o = off & 0xffff;

	return (o >= 0x100 && o < 0x180) || (o >= 0x200 && o < 0x280) || (o >= 0x300 && o < 0x380);
}

int sqb_kvm_vm_save_records(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			    unsigned int *n)
{
	uint32_t keys[GIC_MAX_KEYS];
	unsigned int nk;
	uint8_t *p;

	*n = 0;
	if (vm->nvcpus > SQB_VM_MAX_VCPUS)
		return -SQB_ELIMIT;
	nk = gic_keys(vm->nvcpus, keys);
	if (!(p = rec_add(recs, cap, n, SQB_REC_KVM_VGICV3, 8 + 16 * (size_t)nk)))
		return -ENOMEM;
	le32(p, nk);
	for (unsigned int i = 0; i < nk; i++) {
		uint32_t v = 0;
		int err = gic_access(vm, keys[i], &v, 0);
		if (err < 0)
			return err;
		le32(p + 8 + 16 * i, keys[i]);
		le64(p + 8 + 16 * i + 8, v);
	}
	return 0;
}

/* arm64 has no kvmclock to advance (Firecracker refuses clock_realtime on
 * aarch64 too). */
int sqb_kvm_vm_load_options(struct sqb_hv_vm *vm, unsigned int flags, struct sqb_diag *d)
{
	(void)vm;
	if (!(flags & SQB_HV_LOAD_CLOCK_REALTIME))
		return 0;
	if (d) {
		d->offset = UINT64_MAX;
		snprintf(d->reason, sizeof(d->reason), "clock_realtime is not supported on aarch64");
	}
	return -SQB_EUNSUPPORTED;
}

/* [F-61]: every key this VM's GIC has, none other; applied in gic_keys'
 * order whatever the record's order. */
int sqb_kvm_vm_load_records(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			    struct sqb_diag *d)
{
	uint32_t keys[GIC_MAX_KEYS];
	const struct sqb_record *r = NULL;
	const uint8_t *p;
	unsigned int nk;
	uint32_t count;

	for (unsigned int i = 0; i < n; i++) {
		if (recs[i].tag == SQB_REC_KVM_VGICV3)
			r = &recs[i];
		else if (recs[i].flags & SQB_RECF_CRITICAL) {
			rdiag(d, recs[i].tag, "is not an arm64 KVM record", recs[i].tag);
			return -SQB_EUNSUPPORTED;
		}
	}
	if (!r) {
		rdiag(d, SQB_REC_KVM_VGICV3, "is missing (format.md [F-61])", 0);
		return -SQB_EUNSUPPORTED;
	}
	if (vm->nvcpus > SQB_VM_MAX_VCPUS)
		return -SQB_ELIMIT;
	nk = gic_keys(vm->nvcpus, keys);
	p = r->data;
	count = r->len >= 8 ? rd32(p) : 0;
	if (r->len < 8 || rd32(p + 4) || (uint64_t)r->len != 8 + 16 * (uint64_t)count ||
	    count != nk) {
		rdiag(d, r->tag, "does not hold this VM's GIC registers", count);
		return -SQB_EMISMATCH;
	}
	/* every entry is one of ours (with count == nk and [F-54] uniqueness,
	 * that makes the two sets equal) */
	for (uint32_t i = 0; i < count; i++) {
		uint32_t key = rd32(p + 8 + 16 * (size_t)i), j;
		for (j = 0; j < nk && keys[j] != key; j++)
			;
		if (j == nk || rd32(p + 8 + 16 * (size_t)i + 4) ||
		    rd32(p + 8 + 16 * (size_t)i + 12)) {
			rdiag(d, r->tag, "names a register outside table 8.3.2", key);
			return -SQB_ECORRUPT;
		}
		for (j = 0; j < i; j++)
			if (rd32(p + 8 + 16 * (size_t)j) == key) {
				rdiag(d, r->tag, "names a register twice", key);
				return -SQB_ECORRUPT;
			}
	}
	for (unsigned int k = 0; k < nk; k++) {
		uint32_t v = 0, clr;
		int err;

		for (uint32_t i = 0; i < count; i++)
			if (rd32(p + 8 + 16 * (size_t)i) == keys[k]) {
				v = rd32(p + 8 + 16 * (size_t)i + 8);
				break;
			}
		err = 0;
		if (gic_is_set_reg(keys[k])) {
			clr = ~v;
			err = gic_access(vm, keys[k] + 0x80, &clr, 1);
		}
		err = err ?: gic_access(vm, keys[k], &v, 1);
		if (err < 0) {
			rdiag(d, r->tag, "register refused by the hypervisor", keys[k]);
			return -SQB_EMISMATCH;
		}
	}
	return 0;
}
