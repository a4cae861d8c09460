/* KVM backend: a vCPU's and the VM's complete state as snapfmt records
 * (docs/format.md section 8), captured and applied in the order KVM needs:
 * CPUID, TSC kHz, sregs, regs, XCRs, XSAVE, LAPIC, MSRs, events, MP state,
 * debug registers; VM: PIT, kvmclock, PIC master/slave, IOAPIC. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm_priv.h"
#include "kvm_records.h"
#include "log.h"
#include "squib/snapfmt.h"

#define REC_MAX_ENTRIES 4096u /* format.md [F-60] */

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static void rdiag(struct sqb_diag *d, uint16_t tag, const char *what, int err)
{
	const char *n = sqb_record_tag_name(tag);

	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->reason, sizeof(d->reason), "%s %s: %s", n ? n : "record", what,
		 sqb_strerror(err));
}

/* Append one record whose payload is a fresh malloc'd buffer of len bytes. */
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

/* The XSAVE area size, probed once per process (a host fact, as the CPUID
 * and MSR lists of kvm_cpu.c; docs/fleet.md "Shells"). */
static size_t xsave_size(struct sqb_hv_vm *vm)
{
	static size_t cached; /* atomic: 0 until probed */
	size_t sz = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	int n;

	if (sz)
		return sz;
	n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	sz = n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
	__atomic_store_n(&cached, sz, __ATOMIC_RELAXED);
	return sz;
}

static int save_fixed(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
		      unsigned int *n)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t *p;
	int khz;

	khz = ioctl(vc->fd, KVM_GET_TSC_KHZ, 0);
	if (khz > 0) { /* a snapshot without it would run the guest's clock wrong */
		if (!(p = rec_add(recs, cap, n, SQB_REC_X86_TSC_KHZ, 8)))
			return -ENOMEM;
		le32(p, (uint32_t)khz);
	}
	if (ioctl(vc->fd, KVM_GET_SREGS, &s) < 0 || ioctl(vc->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	if (!(p = rec_add(recs, cap, n, SQB_REC_X86_SREGS, SQB_X86_SREGS_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_sregs(&s, p);
	if (!(p = rec_add(recs, cap, n, SQB_REC_X86_REGS, SQB_X86_REGS_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_regs(&r, p);
	return 0;
}

static int save_tail(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
		     unsigned int *n)
{
	struct kvm_vcpu_events e;
	struct kvm_debugregs d;
	struct kvm_mp_state mp;
	uint8_t *p;

	if (ioctl(vc->fd, KVM_GET_VCPU_EVENTS, &e) < 0 ||
	    ioctl(vc->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(vc->fd, KVM_GET_DEBUGREGS, &d) < 0)
		return -errno;
	if (!(p = rec_add(recs, cap, n, SQB_REC_X86_EVENTS, SQB_X86_EVENTS_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_events(&e, p);
	if (!(p = rec_add(recs, cap, n, SQB_REC_X86_MPSTATE, 8)))
		return -ENOMEM;
	le32(p, mp.mp_state);
	if (!(p = rec_add(recs, cap, n, SQB_REC_X86_DEBUGREGS, SQB_X86_DEBUGREGS_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_debugregs(&d, p);
	return 0;
}

static int save_xstate(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
		       unsigned int *n)
{
	size_t xsz = xsave_size(vc->vm);
	struct kvm_xcrs x;
	void *xs;
	uint8_t *p;
	int err = 0;

	if (ioctl(vc->fd, KVM_GET_XCRS, &x) == 0) {
		uint32_t cnt = x.nr_xcrs < KVM_MAX_XCRS ? x.nr_xcrs : KVM_MAX_XCRS;
		if (!(p = rec_add(recs, cap, n, SQB_REC_X86_XCRS, 8 + 16 * (size_t)cnt)))
			return -ENOMEM;
		sqb_kvm_enc_xcrs(&x, p);
	}
	xs = calloc(1, xsz);
	if (!xs)
		return -ENOMEM;
	if (ioctl(vc->fd, xsz > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xs) < 0)
		err = -errno;
	else if (!(p = rec_add(recs, cap, n, SQB_REC_X86_XSAVE, xsz)))
		err = -ENOMEM;
	else
		memcpy(p, xs, xsz); /* the processor's own XSAVE layout, format.md 8.1 */
	free(xs);
	return err;
}

/* Capture order = restore order (format.md 8.1 closing rule). */
int sqb_kvm_vcpu_save_records(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			      unsigned int *n)
{
	size_t csz = sqb_kvm_vcpu_state_size(vc, SQB_HV_VCPU_CPUID);
	size_t msz = sqb_kvm_vcpu_state_size(vc, SQB_HV_VCPU_MSRS);
	struct kvm_cpuid2 *c = calloc(1, csz);
	struct kvm_msrs *m = calloc(1, msz);
	struct kvm_lapic_state lapic;
	uint8_t *p;
	int err;

	*n = 0;
	err = (!c || !m) ? -ENOMEM : 0;
	if (!err)
		err = sqb_kvm_vcpu_get_state(vc, SQB_HV_VCPU_CPUID, c);
	if (!err && !(p = rec_add(recs, cap, n, SQB_REC_X86_CPUID, 8 + 32 * (size_t)c->nent)))
		err = -ENOMEM;
	if (!err)
		sqb_kvm_enc_cpuid(c->entries, c->nent, p);
	if (!err)
		err = save_fixed(vc, recs, cap, n);
	if (!err)
		err = save_xstate(vc, recs, cap, n);
	if (!err && ioctl(vc->fd, KVM_GET_LAPIC, &lapic) < 0)
		err = -errno;
	if (!err && !(p = rec_add(recs, cap, n, SQB_REC_X86_LAPIC, sizeof(lapic.regs))))
		err = -ENOMEM;
	if (!err)
		memcpy(p, lapic.regs, sizeof(lapic.regs)); /* the APIC page, byte for byte */
	if (!err)
		err = sqb_kvm_vcpu_get_state(vc, SQB_HV_VCPU_MSRS, m);
	if (!err && !(p = rec_add(recs, cap, n, SQB_REC_X86_MSRS, 8 + 16 * (size_t)m->nmsrs)))
		err = -ENOMEM;
	if (!err)
		sqb_kvm_enc_msrs(m->entries, m->nmsrs, p);
	if (!err)
		err = save_tail(vc, recs, cap, n);
	free(c);
	free(m);
	return err;
}

static const struct sqb_record *need(const struct sqb_record *recs, unsigned int n, uint16_t tag,
				     size_t len, int optional, struct sqb_diag *d, int *err)
{
	const struct sqb_record *r = sqb_record_find(recs, n, tag);

	if (*err)
		return NULL;
	if (!r) {
		if (!optional) {
			*err = -SQB_ENOTFOUND;
			rdiag(d, tag, "missing", *err);
		}
		return NULL;
	}
	if (len && r->len != len) {
		*err = -SQB_ECORRUPT;
		rdiag(d, tag, "has the wrong size", *err);
		return NULL;
	}
	return r;
}

/* The vCPU holds exactly these entries already: a pre-warmed shell's vCPU
 * was given the host's normalized table, which is what a snapshot of a
 * guest on this host saved (docs/fleet.md "Where the wall goes").  KVM_GET_CPUID2
 * took ~6 us here, KVM_SET_CPUID2 ~65 us, on every clone's load path.  Any
 * difference (another table, another order, bits KVM updated at run time)
 * answers 0 and the table is set as before. */
static int cpuid_held(struct sqb_hv_vcpu *vc, const struct kvm_cpuid2 *want, struct kvm_cpuid2 *have,
		      uint32_t cap)
{
	have->nent = cap;
	if (ioctl(vc->fd, KVM_GET_CPUID2, have) < 0 || have->nent != want->nent)
		return 0;
	for (uint32_t i = 0; i < want->nent; i++) {
		const struct kvm_cpuid_entry2 *a = &want->entries[i], *b = &have->entries[i];

		if (a->function != b->function || a->index != b->index || a->flags != b->flags ||
		    a->eax != b->eax || a->ebx != b->ebx || a->ecx != b->ecx || a->edx != b->edx)
			return 0;
	}
	return 1;
}

static int load_cpuid(struct sqb_hv_vcpu *vc, const struct sqb_record *r, struct sqb_diag *d)
{
	const uint8_t *in = r->data;
	uint32_t cnt = r->len >= 8 ? rd32(in) : 0;
	struct kvm_cpuid2 *c, *have;
	size_t one;
	int err;

	if (cnt > REC_MAX_ENTRIES)
		cnt = REC_MAX_ENTRIES + 1; /* dec rejects it: count and length disagree */
	/* one block for the table wanted and the one the vCPU holds */
	one = sizeof(*c) + (cnt + 1) * sizeof(c->entries[0]);
	c = calloc(2, one);
	if (!c)
		return -ENOMEM;
	have = (struct kvm_cpuid2 *)((char *)c + one);
	err = sqb_kvm_dec_cpuid(in, r->len, c->entries, REC_MAX_ENTRIES, &c->nent);
	if (err)
		err = -SQB_ECORRUPT;
	else if (!cpuid_held(vc, c, have, cnt + 1) && ioctl(vc->fd, KVM_SET_CPUID2, c) < 0)
		err = -errno;
	if (err)
		rdiag(d, r->tag, "refused", err);
	free(c);
	return err;
}

static int load_msrs(struct sqb_hv_vcpu *vc, const struct sqb_record *r, struct sqb_diag *d)
{
	uint32_t cnt = r->len >= 8 ? rd32(r->data) : 0;
	struct kvm_msrs *m;
	int err, got;

	if (cnt > REC_MAX_ENTRIES)
		cnt = REC_MAX_ENTRIES + 1;
	m = calloc(1, sizeof(*m) + (cnt + 1) * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	err = sqb_kvm_dec_msrs(r->data, r->len, m->entries, REC_MAX_ENTRIES, &m->nmsrs);
	if (err) {
		err = -SQB_ECORRUPT;
		rdiag(d, r->tag, "is malformed", err);
	} else if ((got = ioctl(vc->fd, KVM_SET_MSRS, m)) < 0 || (uint32_t)got != m->nmsrs) {
		err = got < 0 ? -errno : -SQB_EMISMATCH;
		if (d) {
			d->offset = UINT64_MAX;
			snprintf(d->reason, sizeof(d->reason),
				 "X86_MSRS: this host refused MSR 0x%x (%d of %u set)",
				 got >= 0 ? m->entries[got].index : 0, got, m->nmsrs);
		}
	}
	free(m);
	return err;
}

static int load_tsc(struct sqb_hv_vcpu *vc, const struct sqb_record *r, struct sqb_diag *d)
{
	uint32_t want = rd32(r->data);
	int cur = ioctl(vc->fd, KVM_GET_TSC_KHZ, 0);

	if (cur > 0 && (uint32_t)cur == want)
		return 0;
	if (!want || ioctl(vc->fd, KVM_SET_TSC_KHZ, (unsigned long)want) < 0) {
		if (d) {
			d->offset = UINT64_MAX;
			snprintf(d->reason, sizeof(d->reason),
				 "X86_TSC_KHZ: the guest TSC runs at %u kHz, this host at %d kHz "
				 "and it cannot scale",
				 want, cur);
		}
		return -SQB_EMISMATCH;
	}
	return 0;
}

static int set_ioctl(struct sqb_hv_vcpu *vc, unsigned long req, void *arg, uint16_t tag,
		     struct sqb_diag *d)
{
	if (ioctl(vc->fd, req, arg) == 0)
		return 0;
	rdiag(d, tag, "refused by the hypervisor", -errno);
	return -SQB_EMISMATCH;
}

static int load_xstate(struct sqb_hv_vcpu *vc, const struct sqb_record *xcrs,
		       const struct sqb_record *xsave, struct sqb_diag *d)
{
	size_t xsz = xsave_size(vc->vm);
	struct kvm_xcrs x;
	void *buf;
	int err = 0;

	if (xcrs) {
		if (sqb_kvm_dec_xcrs(xcrs->data, xcrs->len, &x)) {
			rdiag(d, xcrs->tag, "is malformed", -SQB_ECORRUPT);
			return -SQB_ECORRUPT;
		}
		FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_XCRS, &x, xcrs->tag, d));
	}
	if (xsave->len < 576 || xsave->len > xsz) {
		rdiag(d, xsave->tag, "has a size this host cannot take", -SQB_EMISMATCH);
		return -SQB_EMISMATCH;
	}
	buf = calloc(1, xsz);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, xsave->data, xsave->len);
	err = set_ioctl(vc, KVM_SET_XSAVE, buf, xsave->tag, d);
	free(buf);
	return err;
}

/* Apply order: CPUID, TSC kHz, sregs, regs, XCRs, XSAVE, LAPIC, MSRs,
 * events, MP state, debug registers (format.md 8.1). */
int sqb_kvm_vcpu_load_records(struct sqb_hv_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			      struct sqb_diag *d)
{
	const struct sqb_record *cpuid, *tsc, *sr, *rg, *xcrs, *xs, *la, *msr, *ev, *mp, *dr;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events e;
	struct kvm_mp_state mps;
	struct kvm_debugregs dbg;
	int err = 0;

	cpuid = need(recs, n, SQB_REC_X86_CPUID, 0, 0, d, &err);
	tsc = need(recs, n, SQB_REC_X86_TSC_KHZ, 8, 1, d, &err);
	sr = need(recs, n, SQB_REC_X86_SREGS, SQB_X86_SREGS_SIZE, 0, d, &err);
	rg = need(recs, n, SQB_REC_X86_REGS, SQB_X86_REGS_SIZE, 0, d, &err);
	xcrs = need(recs, n, SQB_REC_X86_XCRS, 0, 1, d, &err);
	xs = need(recs, n, SQB_REC_X86_XSAVE, 0, 0, d, &err);
	la = need(recs, n, SQB_REC_X86_LAPIC, sizeof(lapic.regs), 0, d, &err);
	msr = need(recs, n, SQB_REC_X86_MSRS, 0, 0, d, &err);
	ev = need(recs, n, SQB_REC_X86_EVENTS, SQB_X86_EVENTS_SIZE, 0, d, &err);
	mp = need(recs, n, SQB_REC_X86_MPSTATE, 8, 0, d, &err);
	dr = need(recs, n, SQB_REC_X86_DEBUGREGS, SQB_X86_DEBUGREGS_SIZE, 0, d, &err);
	if (err)
		return err;
	FORWARD_IF_ERROR(load_cpuid(vc, cpuid, d));
	if (tsc)
		FORWARD_IF_ERROR(load_tsc(vc, tsc, d));
	sqb_kvm_dec_sregs(sr->data, &s);
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_SREGS, &s, sr->tag, d));
	sqb_kvm_dec_regs(rg->data, &r);
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_REGS, &r, rg->tag, d));
	FORWARD_IF_ERROR(load_xstate(vc, xcrs, xs, d));
	memcpy(lapic.regs, la->data, sizeof(lapic.regs));
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_LAPIC, &lapic, la->tag, d));
	FORWARD_IF_ERROR(load_msrs(vc, msr, d));
	sqb_kvm_dec_events(ev->data, &e);
	/* GET leaves these validity bits clear; set them so a pending NMI and
	 * the SIPI vector of a waiting AP survive. */
	e.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_VCPU_EVENTS, &e, ev->tag, d));
	mps.mp_state = rd32(mp->data);
	if (rd32((const uint8_t *)mp->data + 4) || mps.mp_state > KVM_MP_STATE_AP_RESET_HOLD) {
		rdiag(d, mp->tag, "holds an unknown state", -SQB_ECORRUPT);
		return -SQB_ECORRUPT;
	}
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_MP_STATE, &mps, mp->tag, d));
	sqb_kvm_dec_debugregs(dr->data, &dbg);
	FORWARD_IF_ERROR(set_ioctl(vc, KVM_SET_DEBUGREGS, &dbg, dr->tag, d));
	sqb_kvm_crash_arm(vc, &s, &r); /* SQB_CRASH_CHECK only: memory is in place */
	return 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* kvmclock and, [F-126], the host's wall clock at that instant: KVM's own
 * pairing where it gives one (KVM_CLOCK_REALTIME in flags: a host on a
 * stable TSC master clock), else the midpoint of two CLOCK_REALTIME reads
 * around the ioctl (this machine's PVM KVM gives none). */
static int get_clock(struct sqb_hv_vm *vm, struct kvm_clock_data *clk)
{
	uint64_t before = realtime_ns(), after;

	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, clk) < 0)
		return -errno;
	after = realtime_ns();
	if (!(clk->flags & KVM_CLOCK_REALTIME) || !clk->realtime) {
		clk->realtime = before + (after - before) / 2;
		clk->flags |= KVM_CLOCK_REALTIME;
	}
	return 0;
}

int sqb_kvm_vm_save_records(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			    unsigned int *n)
{
	static const uint16_t pic_tag[3] = {SQB_REC_KVM_PIC_MASTER, SQB_REC_KVM_PIC_SLAVE,
					    SQB_REC_KVM_IOAPIC};
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	uint8_t *p;
	int err;

	*n = 0;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return -errno;
	if ((err = get_clock(vm, &clk)) < 0)
		return err;
	if (!(p = rec_add(recs, cap, n, SQB_REC_KVM_PIT, SQB_KVM_PIT_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_pit(&pit, p);
	if (!(p = rec_add(recs, cap, n, SQB_REC_KVM_CLOCK, SQB_KVM_CLOCK_SIZE)))
		return -ENOMEM;
	sqb_kvm_enc_clock(&clk, p);
	for (int i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = (uint32_t)i; /* KVM_IRQCHIP_PIC_MASTER, _SLAVE, _IOAPIC */
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return -errno;
		if (!(p = rec_add(recs, cap, n, pic_tag[i],
				  i < 2 ? SQB_KVM_PIC_SIZE : SQB_KVM_IOAPIC_SIZE)))
			return -ENOMEM;
		if (i < 2)
			sqb_kvm_enc_pic(&chip.chip.pic, p);
		else
			sqb_kvm_enc_ioapic(&chip.chip.ioapic, p);
	}
	return 0;
}

int sqb_kvm_vm_load_options(struct sqb_hv_vm *vm, unsigned int flags, struct sqb_diag *d)
{
	(void)d;
	vm->arch.load_flags = flags;
	return 0;
}

/* The KVM_SET_CLOCK argument.  Without clock_realtime, flags 0: kvmclock
 * resumes at the captured value, as after a pause.  With it ([F-126]),
 * kvmclock moves on by the host wall-clock time since the save: KVM does
 * the step itself when it takes KVM_CLOCK_REALTIME (and never steps back),
 * else the same step is computed here.  A snapshot without a realtime
 * (an older squib's) is refused, as Firecracker refuses it. */
static int clock_to_set(struct sqb_hv_vm *vm, struct kvm_clock_data *clk, struct sqb_diag *d)
{
	uint64_t saved = (clk->flags & KVM_CLOCK_REALTIME) ? clk->realtime : 0, now;
	int caps;

	clk->flags = 0;
	clk->realtime = clk->host_tsc = 0;
	if (!(vm->arch.load_flags & SQB_HV_LOAD_CLOCK_REALTIME))
		return 0;
	if (!saved) {
		if (d) {
			d->offset = UINT64_MAX;
			snprintf(d->reason, sizeof(d->reason),
				 "KVM_CLOCK holds no host realtime (an older squib wrote it): "
				 "clock_realtime cannot be honoured; load it without");
		}
		return -SQB_ENOTFOUND;
	}
	caps = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
	now = realtime_ns();
	sqb_debug("snapshot load: clock_realtime: %.3f s of host time since the save",
		  now > saved ? (now - saved) / 1e9 : 0.0);
	if (caps > 0 && (caps & KVM_CLOCK_REALTIME)) {
		clk->flags = KVM_CLOCK_REALTIME;
		clk->realtime = saved;
	} else if (now > saved) {
		clk->clock += now - saved;
	}
	return 0;
}

/* PIT, kvmclock, then the irqchips (Firecracker's order). */
int sqb_kvm_vm_load_records(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			    struct sqb_diag *d)
{
	static const uint16_t pic_tag[3] = {SQB_REC_KVM_PIC_MASTER, SQB_REC_KVM_PIC_SLAVE,
					    SQB_REC_KVM_IOAPIC};
	const struct sqb_record *pit_r, *clk_r, *chip_r[3];
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	int err = 0;

	pit_r = need(recs, n, SQB_REC_KVM_PIT, SQB_KVM_PIT_SIZE, 0, d, &err);
	clk_r = need(recs, n, SQB_REC_KVM_CLOCK, SQB_KVM_CLOCK_SIZE, 0, d, &err);
	for (int i = 0; i < 3; i++)
		chip_r[i] = need(recs, n, pic_tag[i],
				 i < 2 ? SQB_KVM_PIC_SIZE : SQB_KVM_IOAPIC_SIZE, 0, d, &err);
	if (err)
		return err;
	sqb_kvm_dec_pit(pit_r->data, &pit);
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
		rdiag(d, pit_r->tag, "refused by the hypervisor", -errno);
		return -SQB_EMISMATCH;
	}
	sqb_kvm_dec_clock(clk_r->data, &clk);
	if ((err = clock_to_set(vm, &clk, d)) < 0)
		return err;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clk) < 0) {
		rdiag(d, clk_r->tag, "refused by the hypervisor", -errno);
		return -SQB_EMISMATCH;
	}
	for (int i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = (uint32_t)i;
		if (i < 2)
			sqb_kvm_dec_pic(chip_r[i]->data, &chip.chip.pic);
		else
			sqb_kvm_dec_ioapic(chip_r[i]->data, &chip.chip.ioapic);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			rdiag(d, pic_tag[i], "refused by the hypervisor", -errno);
			return -SQB_EMISMATCH;
		}
	}
	return 0;
}

int sqb_kvm_vm_dirty_fd(struct sqb_hv_vm *vm)
{
	return vm->vm_fd;
}
