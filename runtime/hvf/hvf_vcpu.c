/* HVF backend, the vCPU loop: hv_vcpu_run and the exits decoded from
 * ESR_EL2 (hvf_logic.c) — MMIO data aborts out to the VMM and completed on
 * the next run, access faults on RAM to the fault hook (dirty tracking,
 * postcopy), HVC/SMC as PSCI 0.2 in the VMM, WFx, system-register traps
 * (RAZ/WI), the vtimer (HV_EXIT_REASON_VTIMER_ACTIVATED).  No instruction
 * is emulated: an abort without a valid syndrome stops the vCPU. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "hvf_priv.h"
#include "layout.h"
#include "log.h"

#define CPSR_EL1H_DAIF	0x3c5
#define SYSREG_CNTV_CTL HV_SYSREG_ENC(3, 3, 14, 3, 1)

static uint64_t internal(enum sqb_hvf_internal why, uint64_t esr)
{
	return (uint64_t)why << 32 | (esr & 0xffffffffu);
}

const char *sqb_hvf_exit_internal_name(uint64_t detail)
{
	switch (detail >> 32) {
	case SQB_HVF_INT_RUN_FAILED:
		return "hv_vcpu_run failed";
	case SQB_HVF_INT_NO_SYNDROME:
		return "MMIO data abort without a valid syndrome (squib emulates no instruction)";
	case SQB_HVF_INT_RAM_FAULT:
		return "guest access fault on RAM that no tracker or restore handles";
	case SQB_HVF_INT_EXCEPTION:
		return "exception class squib does not serve (ESR_EL2 in the low half)";
	case SQB_HVF_INT_HOOK_FAILED:
		return "fault hook failed (page fetch or re-grant)";
	case SQB_HVF_INT_REGS:
		return "a vCPU register access failed";
	default:
		return "unknown";
	}
}

static int get_x(struct sqb_hv_vcpu *vc, unsigned int n, uint64_t *v)
{
	if (n == 31) { /* XZR in a load/store or MSR/MRS */
		*v = 0;
		return 0;
	}
	return sqb_hvf_err(hv_vcpu_get_reg(vc->id, HV_REG_X0 + n, v));
}

static int set_x(struct sqb_hv_vcpu *vc, unsigned int n, uint64_t v)
{
	return n == 31 ? 0 : sqb_hvf_err(hv_vcpu_set_reg(vc->id, HV_REG_X0 + n, v));
}

static int advance_pc(struct sqb_hv_vcpu *vc, unsigned int il)
{
	uint64_t pc;
	hv_return_t r = hv_vcpu_get_reg(vc->id, HV_REG_PC, &pc);

	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(vc->id, HV_REG_PC, pc + (il ? 4 : 2));
	return sqb_hvf_err(r);
}

/* The VMM answered the MMIO access of the previous exit: load the value
 * into Xt (sign-extended as the syndrome says) and step past it. */
static int complete_mmio(struct sqb_hv_vcpu *vc)
{
	uint64_t v = 0;
	unsigned int bits = vc->mmio.len * 8u;
	int err = 0;

	if (!vc->mmio.active)
		return 0;
	vc->mmio.active = 0;
	if (!vc->mmio.is_write) {
		for (unsigned int i = 0; i < vc->mmio.len; i++)
			v |= (uint64_t)vc->mmio_data[i] << (8 * i);
		if (vc->mmio.sse && bits < 64 && (v >> (bits - 1)) & 1)
			v |= ~0ull << bits;
		if (!vc->mmio.sf)
			v &= 0xffffffffu;
		err = set_x(vc, vc->mmio.srt, v);
	}
	return err ? err : advance_pc(vc, vc->mmio.il);
}

static int data_abort(struct sqb_hv_vcpu *vc, const struct sqb_hvf_esr *e, uint64_t esr,
		      uint64_t gpa, struct sqb_hv_exit *ex)
{
	uint64_t v;

	if (!e->u.abt.isv) {
		ex->kind = SQB_HV_EXIT_INTERNAL;
		ex->detail = internal(SQB_HVF_INT_NO_SYNDROME, esr);
		return 0;
	}
	memset(vc->mmio_data, 0, sizeof(vc->mmio_data));
	if (e->u.abt.wnr) {
		if (get_x(vc, e->u.abt.srt, &v) < 0)
			goto regs;
		for (unsigned int i = 0; i < e->u.abt.len; i++)
			vc->mmio_data[i] = (uint8_t)(v >> (8 * i));
	}
	vc->mmio.active = 1;
	vc->mmio.is_write = e->u.abt.wnr;
	vc->mmio.srt = e->u.abt.srt;
	vc->mmio.sse = e->u.abt.sse;
	vc->mmio.sf = e->u.abt.sf;
	vc->mmio.len = e->u.abt.len;
	vc->mmio.il = (uint8_t)e->il;
	ex->kind = SQB_HV_EXIT_MMIO;
	ex->detail = esr;
	ex->u.mmio.gpa = gpa;
	ex->u.mmio.data = vc->mmio_data;
	ex->u.mmio.len = e->u.abt.len;
	ex->u.mmio.is_write = e->u.abt.wnr;
	return 0;
regs:
	ex->kind = SQB_HV_EXIT_INTERNAL;
	ex->detail = internal(SQB_HVF_INT_REGS, esr);
	return 0;
}

/* ---- PSCI glue: the VM's power table ---- */

static int psci_find(void *ctx, uint64_t mpidr)
{
	struct sqb_hv_vm *vm = ctx;

	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (sqb_arm64_mpidr(i) == mpidr)
			return (int)i;
	return -1;
}

static enum sqb_hvf_power psci_state(void *ctx, unsigned int i)
{
	return ((struct sqb_hv_vm *)ctx)->power[i]; /* caller holds vm->lock */
}

static int psci_cpu_on(void *ctx, unsigned int i, uint64_t entry, uint64_t context)
{
	struct sqb_hv_vm *vm = ctx;

	vm->power[i] = SQB_HVF_ON_PENDING;
	vm->on_entry[i] = entry;
	vm->on_ctx[i] = context;
	pthread_cond_broadcast(&vm->cond);
	return SQB_PSCI_RET_SUCCESS;
}

static const struct sqb_hvf_psci_ops psci_ops = {psci_find, psci_state, psci_cpu_on};

static int psci(struct sqb_hv_vcpu *vc, uint64_t esr, struct sqb_hv_exit *ex)
{
	struct sqb_hv_vm *vm = vc->vm;
	enum sqb_hvf_psci_action a;
	uint64_t x[4];

	for (unsigned int i = 0; i < 4; i++)
		if (get_x(vc, i, &x[i]) < 0)
			goto regs;
	pthread_mutex_lock(&vm->lock);
	a = sqb_hvf_psci_call(&psci_ops, vm, x);
	if (a == SQB_HVF_PSCI_CPU_OFF)
		vm->power[vc->index] = SQB_HVF_OFF;
	pthread_mutex_unlock(&vm->lock);
	switch (a) {
	case SQB_HVF_PSCI_CONTINUE:
		return set_x(vc, 0, x[0]) < 0 ? (ex->kind = SQB_HV_EXIT_INTERNAL,
						 ex->detail = internal(SQB_HVF_INT_REGS, esr), 0)
					      : 1;
	case SQB_HVF_PSCI_CPU_OFF:
		return 1; /* the loop parks it until CPU_ON */
	case SQB_HVF_PSCI_SYSTEM_OFF:
	case SQB_HVF_PSCI_SYSTEM_RESET:
		ex->kind = SQB_HV_EXIT_SYSTEM_EVENT;
		ex->detail =
		    a == SQB_HVF_PSCI_SYSTEM_OFF ? SQB_HV_SYSEV_SHUTDOWN : SQB_HV_SYSEV_RESET;
		return 0;
	}
regs:
	ex->kind = SQB_HV_EXIT_INTERNAL;
	ex->detail = internal(SQB_HVF_INT_REGS, esr);
	return 0;
}

/* WFI: wait for an interrupt line, a kick or 1 ms (the guest's timer or a
 * GIC interrupt the framework holds re-checks on the next entry). */
static void wait_wfi(struct sqb_hv_vcpu *vc)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&vc->vm->lock);
	if (!atomic_load(&vc->kicked))
		pthread_cond_timedwait(&vc->vm->cond, &vc->vm->lock, &ts);
	pthread_mutex_unlock(&vc->vm->lock);
}

/* System registers HVF traps and squib does not model (debug, OS lock,
 * implementation-defined): read as zero, writes ignored. */
static int sysreg(struct sqb_hv_vcpu *vc, const struct sqb_hvf_esr *e)
{
	if (vc->sysreg_traps++ < 8)
		sqb_debug("hvf: vCPU %u %s sysreg 0x%04x: RAZ/WI", vc->index,
			  e->u.sys.read ? "reads" : "writes", e->u.sys.encoding);
	if (e->u.sys.read && set_x(vc, e->u.sys.rt, 0) < 0)
		return -EIO;
	return advance_pc(vc, e->il);
}

/* 1: resume the guest, 0: *ex is for the VMM, < 0: error. */
static int exception(struct sqb_hv_vcpu *vc, struct sqb_hv_exit *ex)
{
	const hv_vcpu_exit_exception_t *x = &vc->exit->exception;
	struct sqb_hvf_esr e;
	sqb_hvf_fault_fn fn;
	void *fctx;
	int r;

	sqb_hvf_esr_decode(x->syndrome, &e);
	switch (e.cls) {
	case SQB_HVF_ESR_DABT:
	case SQB_HVF_ESR_IABT:
		if (!sqb_hvf_in_ram(vc->vm, x->physical_address)) {
			if (e.cls == SQB_HVF_ESR_DABT)
				return data_abort(vc, &e, x->syndrome, x->physical_address, ex);
			break;
		}
		pthread_mutex_lock(&vc->vm->lock);
		fn = vc->vm->fault;
		fctx = vc->vm->fault_ctx;
		pthread_mutex_unlock(&vc->vm->lock);
		r = fn ? fn(fctx, x->physical_address, e.cls == SQB_HVF_ESR_IABT ? 2 : e.u.abt.wnr)
		       : 0;
		if (r == 1)
			return 1; /* granted: the instruction runs again */
		ex->kind = SQB_HV_EXIT_INTERNAL;
		ex->detail =
		    internal(r < 0 ? SQB_HVF_INT_HOOK_FAILED : SQB_HVF_INT_RAM_FAULT, x->syndrome);
		return 0;
	case SQB_HVF_ESR_HVC:
		return psci(vc, x->syndrome, ex);
	case SQB_HVF_ESR_SMC: /* trapped SMC: PC still on it */
		if (advance_pc(vc, e.il) < 0)
			break;
		return psci(vc, x->syndrome, ex);
	case SQB_HVF_ESR_WFX:
		if (advance_pc(vc, e.il) < 0)
			break;
		if (!e.u.wfx.wfe)
			wait_wfi(vc);
		return 1;
	case SQB_HVF_ESR_SYSREG:
		if (sysreg(vc, &e) < 0)
			break;
		return 1;
	default:
		break;
	}
	ex->kind = SQB_HV_EXIT_INTERNAL;
	ex->detail = internal(SQB_HVF_INT_EXCEPTION, x->syndrome);
	return 0;
}

/* Powered off: wait for CPU_ON (or a kick); -EINTR when kicked. */
static int wait_power(struct sqb_hv_vcpu *vc)
{
	struct sqb_hv_vm *vm = vc->vm;
	uint64_t entry, ctx;
	hv_return_t r;

	pthread_mutex_lock(&vm->lock);
	while (vm->power[vc->index] == SQB_HVF_OFF && !atomic_load(&vc->kicked))
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (vm->power[vc->index] != SQB_HVF_ON_PENDING) {
		int on = vm->power[vc->index] == SQB_HVF_ON;

		pthread_mutex_unlock(&vm->lock);
		return on ? 0 : -EINTR;
	}
	entry = vm->on_entry[vc->index];
	ctx = vm->on_ctx[vc->index];
	vm->power[vc->index] = SQB_HVF_ON;
	pthread_mutex_unlock(&vm->lock);
	/* DEN0022 6.4: entry at EL1 with the MMU off, x0 = context_id */
	r = hv_vcpu_set_reg(vc->id, HV_REG_PC, entry);
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(vc->id, HV_REG_X0, ctx);
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(vc->id, HV_REG_CPSR, CPSR_EL1H_DAIF);
	return sqb_hvf_err(r);
}

/* After VTIMER_ACTIVATED the framework keeps the vtimer masked: unmask once
 * the guest has dealt with it (disabled, masked or moved the deadline). */
static void vtimer_sync(struct sqb_hv_vcpu *vc)
{
	bool masked = false;
	uint64_t ctl = 0;

	if (hv_vcpu_get_vtimer_mask(vc->id, &masked) != HV_SUCCESS || !masked)
		return;
	if (hv_vcpu_get_sys_reg(vc->id, SYSREG_CNTV_CTL, &ctl) != HV_SUCCESS)
		return;
	if ((ctl & 7) != 5) /* not (ENABLE && !IMASK && ISTATUS) */
		hv_vcpu_set_vtimer_mask(vc->id, false);
}

int sqb_hvf_vcpu_run(struct sqb_hv_vcpu *vc, struct sqb_hv_exit *ex)
{
	hv_return_t r;
	int err, on;

	memset(ex, 0, sizeof(*ex));
	err = complete_mmio(vc);
	if (err < 0)
		return err;
	for (;;) {
		if (atomic_load(&vc->kicked))
			return -EINTR;
		pthread_mutex_lock(&vc->vm->lock);
		on = vc->vm->power[vc->index] == SQB_HVF_ON;
		pthread_mutex_unlock(&vc->vm->lock);
		if (!on) {
			err = wait_power(vc);
			if (err < 0)
				return err;
			continue;
		}
		vtimer_sync(vc);
		r = hv_vcpu_run(vc->id);
		if (r != HV_SUCCESS) {
			ex->kind = SQB_HV_EXIT_INTERNAL;
			ex->detail = internal(SQB_HVF_INT_RUN_FAILED, (uint32_t)r);
			return 0;
		}
		switch (vc->exit->reason) {
		case HV_EXIT_REASON_CANCELED:
			continue; /* the kick flag says whether to return */
		case HV_EXIT_REASON_VTIMER_ACTIVATED:
			/* the virtual timer's PPI pending in this vCPU's redistributor */
			hv_gic_set_redistributor_reg(vc->id, HV_GIC_REDISTRIBUTOR_REG_GICR_ISPENDR0,
						     1u << (16 + SQB_ARM64_PPI_TIMER_VIRT));
			continue;
		case HV_EXIT_REASON_EXCEPTION:
			err = exception(vc, ex);
			if (err == 1)
				continue;
			return err;
		default:
			ex->kind = SQB_HV_EXIT_UNKNOWN;
			ex->detail = vc->exit->reason;
			return 0;
		}
	}
}
