/* An emulation of the Hypervisor.framework calls of runtime/hvf/hv_api.h on
 * arm64 Linux KVM, linked instead of the framework (SQB_HVF=ON off macOS) so
 * the HVF backend's logic runs end to end in the arm64 test host.  What it
 * fakes, exactly, is listed in docs/hvf.md ("The emulation"); in short:
 * hv_vm_protect = KVM memslots rebuilt per permission run (READONLY /
 * absent), KVM's MMIO / NISV exits on them reported as data aborts with a
 * synthesized ESR_EL2; PSCI stays in KVM, its CPU_ON and SYSTEM_OFF/RESET
 * are shown to the backend as synthesized HVC exits; the GIC state blob is
 * the vGICv3 registers read through the device attributes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv_api.h"
#include "hvf_logic.h"

/* ESR_EL2 of a data abort from a lower EL (the same encoding as
 * runtime/hvf/hvf_logic.c's sqb_hvf_esr_dabt; a copy keeps the emulation a
 * stand-alone library in place of the framework). */
static uint64_t emu_esr_dabt(int isv, unsigned int len, int sse, unsigned int srt, int sf, int wnr,
			     enum sqb_hvf_fsc fsc, unsigned int level)
{
	static const uint32_t fscbase[] = {0x10, 0x04, 0x08, 0x0c};
	uint32_t iss = fscbase[fsc] | (fsc == SQB_HVF_FSC_OTHER ? 0 : (level & 3));
	unsigned int sas = len >= 8 ? 3 : len >= 4 ? 2 : len >= 2 ? 1 : 0;

	iss |= (uint32_t)(wnr ? 1 : 0) << 6;
	if (isv)
		iss |= 1u << 24 | sas << 22 | (uint32_t)(sse ? 1 : 0) << 21 | (srt & 0x1f) << 16 |
		       (uint32_t)(sf ? 1 : 0) << 15;
	return (uint64_t)SQB_ESR_EC_DABT_LO << 26 | 1u << 25 | iss;
}

#define EMU_MAX_VCPUS 32
#define EMU_MAX_REG   8
#define EMU_MAX_RUNS  4096
#define EMU_KICK_SIG  SIGUSR2
#define PERM_R	      HV_MEMORY_READ
#define PERM_W	      HV_MEMORY_WRITE

struct evcpu {
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	hv_vcpu_exit_t exit;
	uint64_t mpidr;
	atomic_int cancel;   /* hv_vcpus_exit pending */
	atomic_int await_on; /* created powered off: watch for KVM's CPU_ON */
	atomic_int gone;     /* hv_vcpu_destroy'd: its thread may be gone */
	int cancel_mmio;     /* drop KVM's completion of the last MMIO exit */
	int synth_active;    /* X0..X3 read/write the fake HVC arguments */
	uint64_t synth_x[4];
	pthread_mutex_t qlock; /* synthesized CPU_ON exits waiting for delivery */
	uint64_t q[EMU_MAX_VCPUS][4];
	unsigned int nq;
	int vtimer_masked;
};

struct emu_region {
	uint64_t ipa, size;
	uint8_t *host;
	uint8_t *perm; /* per page */
};

struct emu_run {
	uint64_t ipa, npages;
	uint8_t perm;
	int slot; /* -1: no memslot (no read access) */
};

static struct {
	pthread_mutex_t lock;
	int kvm, vm, vgic, gic_ready;
	uint64_t page, dist_base, redist_base;
	struct kvm_vcpu_init init;
	struct emu_region reg[EMU_MAX_REG];
	unsigned int nreg;
	struct emu_run runs[EMU_MAX_RUNS];
	unsigned int nruns;
	unsigned char slot_used[EMU_MAX_RUNS];
	struct evcpu *vcpus[EMU_MAX_VCPUS];
	unsigned int nvcpus;
	pthread_t observer;
	int observer_on;
	/* The observer's ioctls on a powered-off vCPU vs. the vGIC's register
	 * accesses (KVM refuses those with EBUSY while any vCPU mutex is held)
	 * and vs. that vCPU starting to run. */
	pthread_mutex_t obs_lock;
	atomic_int stop;
} E = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .obs_lock = PTHREAD_MUTEX_INITIALIZER,
       .kvm = -1,
       .vm = -1,
       .vgic = -1};

static void kick_handler(int sig)
{
	(void)sig;
}

/* ---- memory: permissions as memslots ---- */

static int slot_set(int slot, uint64_t ipa, uint64_t size, void *host, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {(uint32_t)slot, flags, ipa, size,
						(uint64_t)(uintptr_t)host};

	return ioctl(E.vm, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static struct emu_region *region_of(uint64_t ipa)
{
	for (unsigned int i = 0; i < E.nreg; i++)
		if (ipa >= E.reg[i].ipa && ipa - E.reg[i].ipa < E.reg[i].size)
			return &E.reg[i];
	return NULL;
}

static int run_add(struct emu_region *rg, uint64_t ipa, uint64_t npages, uint8_t perm)
{
	struct emu_run *r;
	int slot = -1;

	if (E.nruns >= EMU_MAX_RUNS)
		return -ENOSPC;
	if (perm & PERM_R) {
		for (slot = 0; slot < EMU_MAX_RUNS && E.slot_used[slot]; slot++)
			;
		if (slot == EMU_MAX_RUNS)
			return -ENOSPC;
		int err = slot_set(slot, ipa, npages * E.page, rg->host + (ipa - rg->ipa),
				   (perm & PERM_W) ? 0 : KVM_MEM_READONLY);
		if (err)
			return err;
		E.slot_used[slot] = 1;
	}
	r = &E.runs[E.nruns++];
	*r = (struct emu_run){ipa, npages, perm, slot};
	return 0;
}

static void run_del(unsigned int i)
{
	if (E.runs[i].slot >= 0) {
		slot_set(E.runs[i].slot, E.runs[i].ipa, 0, NULL, 0);
		E.slot_used[E.runs[i].slot] = 0;
	}
	E.runs[i] = E.runs[--E.nruns];
}

/* Rebuild the runs covering [ipa, ipa+len) of rg from its permission array. */
static int runs_rebuild(struct emu_region *rg, uint64_t ipa, uint64_t len)
{
	uint64_t lo = ipa, hi = ipa + len;
	int err = 0;

	for (unsigned int i = 0; i < E.nruns;) {
		struct emu_run *r = &E.runs[i];
		uint64_t e = r->ipa + r->npages * E.page;

		if (r->ipa < hi && e > lo && r->ipa >= rg->ipa && r->ipa < rg->ipa + rg->size) {
			if (r->ipa < lo)
				lo = r->ipa;
			if (e > hi)
				hi = e;
			run_del(i);
			i = 0; /* the window grew: look again */
			continue;
		}
		i++;
	}
	for (uint64_t p = lo; p < hi && !err;) {
		uint8_t perm = rg->perm[(p - rg->ipa) / E.page];
		uint64_t q = p;

		while (q < hi && rg->perm[(q - rg->ipa) / E.page] == perm)
			q += E.page;
		err = run_add(rg, p, (q - p) / E.page, perm);
		p = q;
	}
	return err;
}

/* ---- VM ---- */

static void *observer_main(void *arg);

hv_return_t hv_vm_create(hv_vm_config_t config)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_ARM_NISV_TO_USER};
	struct sigaction sa;

	(void)config;
	if (E.vm >= 0)
		return HV_BUSY;
	E.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (E.kvm < 0)
		return HV_NO_DEVICE;
	E.vm = ioctl(E.kvm, KVM_CREATE_VM, 0);
	if (E.vm < 0 || ioctl(E.vm, KVM_ARM_PREFERRED_TARGET, &E.init) < 0) {
		if (E.vm >= 0)
			close(E.vm);
		close(E.kvm);
		E.vm = E.kvm = -1;
		return HV_ERROR;
	}
	/* aborts without a syndrome come to user space (else KVM_RUN: ENOSYS) */
	ioctl(E.vm, KVM_ENABLE_CAP, &cap);
	E.init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	E.page = (uint64_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(EMU_KICK_SIG, &sa, NULL);
	atomic_store(&E.stop, 0);
	return HV_SUCCESS;
}

hv_return_t hv_vm_destroy(void)
{
	if (E.vm < 0)
		return HV_BAD_ARGUMENT;
	if (E.observer_on) {
		atomic_store(&E.stop, 1);
		pthread_join(E.observer, NULL);
		E.observer_on = 0;
	}
	for (unsigned int i = 0; i < E.nvcpus; i++) {
		munmap(E.vcpus[i]->run, E.vcpus[i]->run_size);
		close(E.vcpus[i]->fd);
		pthread_mutex_destroy(&E.vcpus[i]->qlock);
		free(E.vcpus[i]);
		E.vcpus[i] = NULL;
	}
	E.nvcpus = 0;
	while (E.nruns)
		run_del(0);
	for (unsigned int i = 0; i < E.nreg; i++)
		free(E.reg[i].perm);
	E.nreg = 0;
	if (E.vgic >= 0)
		close(E.vgic);
	close(E.vm);
	close(E.kvm);
	E.vm = E.kvm = E.vgic = -1;
	E.gic_ready = 0;
	return HV_SUCCESS;
}

hv_return_t hv_vm_map(void *addr, hv_ipa_t ipa, size_t size, hv_memory_flags_t flags)
{
	struct emu_region *rg;
	int err;

	if (E.vm < 0 || !size || ipa % E.page || size % E.page || (uintptr_t)addr % E.page)
		return HV_BAD_ARGUMENT;
	pthread_mutex_lock(&E.lock);
	if (E.nreg >= EMU_MAX_REG || region_of(ipa) || region_of(ipa + size - 1)) {
		pthread_mutex_unlock(&E.lock);
		return HV_BAD_ARGUMENT;
	}
	rg = &E.reg[E.nreg];
	rg->perm = malloc(size / E.page);
	if (!rg->perm) {
		pthread_mutex_unlock(&E.lock);
		return HV_NO_RESOURCES;
	}
	memset(rg->perm, (int)(flags & 7), size / E.page);
	rg->ipa = ipa, rg->size = size, rg->host = addr;
	E.nreg++;
	err = runs_rebuild(rg, ipa, size);
	pthread_mutex_unlock(&E.lock);
	return err ? HV_ERROR : HV_SUCCESS;
}

hv_return_t hv_vm_unmap(hv_ipa_t ipa, size_t size)
{
	struct emu_region *rg;

	pthread_mutex_lock(&E.lock);
	rg = region_of(ipa);
	if (!rg || rg->ipa != ipa || rg->size != size) {
		pthread_mutex_unlock(&E.lock);
		return HV_BAD_ARGUMENT; /* only whole mappings (all squib does) */
	}
	for (unsigned int i = 0; i < E.nruns;)
		if (E.runs[i].ipa >= rg->ipa && E.runs[i].ipa < rg->ipa + rg->size)
			run_del(i);
		else
			i++;
	free(rg->perm);
	*rg = E.reg[--E.nreg];
	pthread_mutex_unlock(&E.lock);
	return HV_SUCCESS;
}

hv_return_t hv_vm_protect(hv_ipa_t ipa, size_t size, hv_memory_flags_t flags)
{
	struct emu_region *rg;
	int err;

	if (!size || ipa % E.page || size % E.page)
		return HV_BAD_ARGUMENT;
	pthread_mutex_lock(&E.lock);
	rg = region_of(ipa);
	if (!rg || size > rg->size - (ipa - rg->ipa)) {
		pthread_mutex_unlock(&E.lock);
		return HV_BAD_ARGUMENT;
	}
	memset(rg->perm + (ipa - rg->ipa) / E.page, (int)(flags & 7), size / E.page);
	err = runs_rebuild(rg, ipa, size);
	pthread_mutex_unlock(&E.lock);
	return err ? HV_ERROR : HV_SUCCESS;
}

/* ---- vCPUs ---- */

#define CORE_ID(field)                                                                             \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                                     \
	 (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))
#define SYSREG_ID(enc) (0x6030000000130000ull | (uint64_t)(enc))

static struct evcpu *vcpu_of(hv_vcpu_t id)
{
	struct evcpu *ev = id < EMU_MAX_VCPUS ? E.vcpus[id] : NULL;

	/* Hypervisor.framework: only the creating thread may use a vCPU */
	if (ev && !pthread_equal(ev->thread, pthread_self())) {
		fprintf(stderr, "hvf-emu: vCPU %llu used from a thread that did not create it\n",
			(unsigned long long)id);
		return NULL;
	}
	return ev;
}

static int one_reg(int fd, uint64_t id, void *val, int set)
{
	struct kvm_one_reg r = {id, (uint64_t)(uintptr_t)val};

	return ioctl(fd, set ? KVM_SET_ONE_REG : KVM_GET_ONE_REG, &r) < 0 ? -errno : 0;
}

static void *observer_main(void *arg);

hv_return_t hv_vcpu_create(hv_vcpu_t *vcpu, hv_vcpu_exit_t **exit, hv_vcpu_config_t config)
{
	struct kvm_vcpu_init init;
	struct evcpu *ev;
	unsigned int id;
	int mmap_size;

	(void)config;
	if (E.vm < 0)
		return HV_BAD_ARGUMENT;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return HV_NO_RESOURCES;
	pthread_mutex_lock(&E.lock);
	id = E.nvcpus;
	if (id >= EMU_MAX_VCPUS || E.gic_ready)
		goto fail; /* KVM: no vCPU after the vGIC is initialised */
	ev->fd = ioctl(E.vm, KVM_CREATE_VCPU, (unsigned long)id);
	mmap_size = ioctl(E.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ev->fd < 0 || mmap_size <= 0)
		goto fail_fd;
	ev->run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, ev->fd, 0);
	if (ev->run == MAP_FAILED)
		goto fail_fd;
	ev->run_size = (size_t)mmap_size;
	init = E.init;
	if (id > 0) /* secondaries wait for PSCI CPU_ON, as the backend's do */
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if (ioctl(ev->fd, KVM_ARM_VCPU_INIT, &init) < 0)
		goto fail_fd;
	ev->thread = pthread_self();
	pthread_mutex_init(&ev->qlock, NULL);
	atomic_store(&ev->await_on, id > 0);
	E.vcpus[id] = ev;
	E.nvcpus++;
	if (id > 0 && !E.observer_on && pthread_create(&E.observer, NULL, observer_main, NULL) == 0)
		E.observer_on = 1;
	pthread_mutex_unlock(&E.lock);
	*vcpu = id;
	*exit = &ev->exit;
	return HV_SUCCESS;
fail_fd:
	if (ev->fd >= 0)
		close(ev->fd);
fail:
	pthread_mutex_unlock(&E.lock);
	free(ev);
	return HV_ERROR;
}

hv_return_t hv_vcpu_destroy(hv_vcpu_t vcpu)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev)
		return HV_BAD_ARGUMENT;
	/* KVM frees vCPUs with the VM: keep the fd, forget the thread tie */
	pthread_mutex_lock(&E.obs_lock);
	atomic_store(&ev->await_on, 0);
	atomic_store(&ev->gone, 1);
	pthread_mutex_unlock(&E.obs_lock);
	return HV_SUCCESS;
}

hv_return_t hv_vcpus_exit(hv_vcpu_t *vcpus, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct evcpu *ev = vcpus[i] < EMU_MAX_VCPUS ? E.vcpus[vcpus[i]] : NULL;

		if (!ev)
			return HV_BAD_ARGUMENT;
		atomic_store(&ev->cancel, 1);
		__atomic_store_n(&ev->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(ev->thread, EMU_KICK_SIG);
	}
	return HV_SUCCESS;
}

static hv_return_t reg_access(struct evcpu *ev, hv_reg_t reg, uint64_t *v, int set)
{
	uint64_t id;

	if (ev->synth_active && reg <= HV_REG_X0 + 3) {
		if (set)
			ev->synth_x[reg] = *v;
		else
			*v = ev->synth_x[reg];
		return HV_SUCCESS;
	}
	if (reg <= HV_REG_X30)
		id = CORE_ID(regs.regs[reg]);
	else if (reg == HV_REG_PC)
		id = CORE_ID(regs.pc);
	else if (reg == HV_REG_CPSR)
		id = CORE_ID(regs.pstate);
	else if (reg == HV_REG_FPCR || reg == HV_REG_FPSR) {
		uint32_t w = (uint32_t)*v;
		uint64_t rid = KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE |
			       (reg == HV_REG_FPCR ? offsetof(struct kvm_regs, fp_regs.fpcr)
						   : offsetof(struct kvm_regs, fp_regs.fpsr)) /
				   sizeof(uint32_t);
		int err = one_reg(ev->fd, rid, &w, set);

		if (!set)
			*v = w;
		return err ? HV_ERROR : HV_SUCCESS;
	} else
		return HV_BAD_ARGUMENT;
	return one_reg(ev->fd, id, v, set) ? HV_ERROR : HV_SUCCESS;
}

hv_return_t hv_vcpu_get_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t *value)
{
	struct evcpu *ev = vcpu_of(vcpu);

	return ev ? reg_access(ev, reg, value, 0) : HV_BAD_ARGUMENT;
}

hv_return_t hv_vcpu_set_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t value)
{
	struct evcpu *ev = vcpu_of(vcpu);

	return ev ? reg_access(ev, reg, &value, 1) : HV_BAD_ARGUMENT;
}

static hv_return_t simd(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg, hv_simd_fp_uchar16_t *v, int set)
{
	struct evcpu *ev = vcpu_of(vcpu);
	uint64_t id;

	if (!ev || reg > 31)
		return HV_BAD_ARGUMENT;
	id = KVM_REG_ARM64 | KVM_REG_SIZE_U128 | KVM_REG_ARM_CORE |
	     (offsetof(struct kvm_regs, fp_regs.vregs[0]) / sizeof(uint32_t) + reg * 4);
	return one_reg(ev->fd, id, v->b, set) ? HV_ERROR : HV_SUCCESS;
}

hv_return_t hv_vcpu_get_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
				    hv_simd_fp_uchar16_t *value)
{
	return simd(vcpu, reg, value, 0);
}

hv_return_t hv_vcpu_set_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
				    hv_simd_fp_uchar16_t value)
{
	return simd(vcpu, reg, &value, 1);
}

/* Sysregs KVM keeps among its core or timer registers. */
static uint64_t sys_id(hv_sys_reg_t r)
{
	switch (r) {
	case HV_SYSREG_ENC(3, 0, 4, 1, 0):
		return CORE_ID(regs.sp);
	case HV_SYSREG_ENC(3, 4, 4, 1, 0):
		return CORE_ID(sp_el1);
	case HV_SYSREG_ENC(3, 0, 4, 0, 1):
		return CORE_ID(elr_el1);
	case HV_SYSREG_ENC(3, 0, 4, 0, 0):
		return CORE_ID(spsr[0]);
	case HV_SYSREG_ENC(3, 3, 14, 3, 1):
		return KVM_REG_ARM_TIMER_CTL;
	case HV_SYSREG_ENC(3, 3, 14, 3, 2):
		return KVM_REG_ARM_TIMER_CVAL;
	default:
		return SYSREG_ID(r);
	}
}

hv_return_t hv_vcpu_get_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg, uint64_t *value)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev)
		return HV_BAD_ARGUMENT;
	return one_reg(ev->fd, sys_id(reg), value, 0) ? HV_BAD_ARGUMENT : HV_SUCCESS;
}

hv_return_t hv_vcpu_set_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg, uint64_t value)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev)
		return HV_BAD_ARGUMENT;
	if (one_reg(ev->fd, sys_id(reg), &value, 1))
		return HV_BAD_ARGUMENT;
	if (reg == HV_SYSREG_ENC(3, 0, 0, 0, 5))
		ev->mpidr = value;
	return HV_SUCCESS;
}

hv_return_t hv_vcpu_set_pending_interrupt(hv_vcpu_t vcpu, hv_interrupt_type_t type, bool pending)
{
	(void)vcpu, (void)type, (void)pending;
	return HV_UNSUPPORTED; /* squib uses the framework's GIC */
}

hv_return_t hv_vcpu_get_vtimer_mask(hv_vcpu_t vcpu, bool *masked)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev)
		return HV_BAD_ARGUMENT;
	*masked = ev->vtimer_masked;
	return HV_SUCCESS;
}

hv_return_t hv_vcpu_set_vtimer_mask(hv_vcpu_t vcpu, bool masked)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev)
		return HV_BAD_ARGUMENT;
	ev->vtimer_masked = masked; /* KVM's timer needs no help: never raised */
	return HV_SUCCESS;
}

static uint64_t host_counter(void)
{
	uint64_t v;

	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
}

/* offset = host counter - guest counter (CNTVOFF_EL2's meaning) */
hv_return_t hv_vcpu_get_vtimer_offset(hv_vcpu_t vcpu, uint64_t *off)
{
	struct evcpu *ev = vcpu_of(vcpu);
	uint64_t g;

	if (!ev || one_reg(ev->fd, KVM_REG_ARM_TIMER_CNT, &g, 0))
		return HV_BAD_ARGUMENT;
	*off = host_counter() - g;
	return HV_SUCCESS;
}

hv_return_t hv_vcpu_set_vtimer_offset(hv_vcpu_t vcpu, uint64_t off)
{
	struct evcpu *ev = vcpu_of(vcpu);
	uint64_t g;

	if (!ev)
		return HV_BAD_ARGUMENT;
	g = host_counter() - off;
	return one_reg(ev->fd, KVM_REG_ARM_TIMER_CNT, &g, 1) ? HV_BAD_ARGUMENT : HV_SUCCESS;
}

/* ---- the vGICv3 ---- */

static int gic_attr(uint32_t group, uint64_t attr, void *val, int set)
{
	struct kvm_device_attr a = {0, group, attr, (uint64_t)(uintptr_t)val};
	const struct timespec ms = {0, 1000000};
	int err = 0;

	/* KVM takes every vCPU's mutex for these: EBUSY while a vCPU is inside
	 * KVM_RUN or another ioctl; the callers (snapshots) have them parked */
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&E.obs_lock);
		err = ioctl(E.vgic, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0
			  ? -errno
			  : 0;
		pthread_mutex_unlock(&E.obs_lock);
		if (err != -EBUSY)
			break;
		nanosleep(&ms, NULL);
	}
	return err;
}

/* KVM wants every vCPU before CTRL_INIT: done at the first call that needs
 * a working GIC (squib creates all vCPUs before any of those). */
static int gic_ready(void)
{
	int err = 0;

	pthread_mutex_lock(&E.lock);
	if (E.vgic >= 0 && !E.gic_ready) {
		err = gic_attr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, 1);
		E.gic_ready = !err;
	}
	pthread_mutex_unlock(&E.lock);
	return err;
}

struct hv_gic_config_s {
	uint32_t kind; /* 1 */
	uint64_t dist, redist;
};

hv_gic_config_t hv_gic_config_create(void)
{
	hv_gic_config_t c = calloc(1, sizeof(*c));

	if (c)
		c->kind = 1;
	return c;
}

hv_return_t hv_gic_config_set_distributor_base(hv_gic_config_t c, hv_ipa_t base)
{
	if (!c || base % 0x10000)
		return HV_BAD_ARGUMENT;
	c->dist = base;
	return HV_SUCCESS;
}

hv_return_t hv_gic_config_set_redistributor_base(hv_gic_config_t c, hv_ipa_t base)
{
	if (!c || base % 0x10000)
		return HV_BAD_ARGUMENT;
	c->redist = base;
	return HV_SUCCESS;
}

hv_return_t hv_gic_config_set_msi_region_base(hv_gic_config_t c, hv_ipa_t base)
{
	(void)c, (void)base;
	return HV_UNSUPPORTED; /* no ITS in the emulation */
}

hv_return_t hv_gic_config_set_msi_interrupt_range(hv_gic_config_t c, uint32_t base, uint32_t n)
{
	(void)c, (void)base, (void)n;
	return HV_UNSUPPORTED;
}

#define EMU_GIC_NR_IRQS 96 /* 32 private + 64 SPIs: the emulated framework's fixed range */

hv_return_t hv_gic_create(hv_gic_config_t c)
{
	struct kvm_create_device d = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	uint32_t nr = EMU_GIC_NR_IRQS;
	uint64_t dist, redist;

	if (!c || E.vm < 0 || E.vgic >= 0 || E.nvcpus)
		return HV_BAD_ARGUMENT; /* after the VM, before any vCPU */
	if (ioctl(E.vm, KVM_CREATE_DEVICE, &d) < 0)
		return HV_ERROR;
	E.vgic = (int)d.fd;
	dist = c->dist, redist = c->redist;
	if (gic_attr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist, 1) ||
	    gic_attr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist, 1) ||
	    gic_attr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr, 1)) {
		close(E.vgic);
		E.vgic = -1;
		return HV_ERROR;
	}
	return HV_SUCCESS;
}

hv_return_t hv_gic_reset(void)
{
	return HV_UNSUPPORTED;
}

hv_return_t hv_gic_get_distributor_size(size_t *size)
{
	*size = 0x10000;
	return HV_SUCCESS;
}

hv_return_t hv_gic_get_redistributor_size(size_t *size)
{
	*size = 0x20000;
	return HV_SUCCESS;
}

hv_return_t hv_gic_get_spi_interrupt_range(uint32_t *base, uint32_t *count)
{
	*base = 32;
	*count = EMU_GIC_NR_IRQS - 32;
	return HV_SUCCESS;
}

hv_return_t hv_gic_set_spi(uint32_t intid, bool level)
{
	struct kvm_irq_level l = {.irq = KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT | intid,
				  .level = level};

	if (intid < 32 || intid >= EMU_GIC_NR_IRQS || gic_ready())
		return HV_BAD_ARGUMENT;
	return ioctl(E.vm, KVM_IRQ_LINE, &l) < 0 ? HV_ERROR : HV_SUCCESS;
}

static uint64_t mpidr_attr(struct evcpu *ev)
{
	uint64_t m = ev->mpidr;

	/* KVM's attribute packs Aff3..Aff0 in bits 63..32 */
	return ((m & 0xffffff) | ((m >> 32) & 0xff) << 24) << 32;
}

hv_return_t hv_gic_get_redistributor_reg(hv_vcpu_t vcpu, hv_gic_redistributor_reg_t reg,
					 uint64_t *value)
{
	struct evcpu *ev = vcpu_of(vcpu);
	uint32_t v = 0;

	if (!ev || gic_ready() ||
	    gic_attr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, mpidr_attr(ev) | reg, &v, 0))
		return HV_BAD_ARGUMENT;
	*value = v;
	return HV_SUCCESS;
}

hv_return_t hv_gic_set_redistributor_reg(hv_vcpu_t vcpu, hv_gic_redistributor_reg_t reg,
					 uint64_t value)
{
	struct evcpu *ev = vcpu_of(vcpu);
	uint32_t v = (uint32_t)value;

	if (!ev || gic_ready() ||
	    gic_attr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, mpidr_attr(ev) | reg, &v, 1))
		return HV_BAD_ARGUMENT;
	return HV_SUCCESS;
}

static hv_return_t icc(hv_vcpu_t vcpu, uint16_t reg, uint64_t *v, int set)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev || gic_ready() ||
	    gic_attr(KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, mpidr_attr(ev) | reg, v, set))
		return HV_BAD_ARGUMENT;
	return HV_SUCCESS;
}

hv_return_t hv_gic_get_icc_reg(hv_vcpu_t vcpu, hv_gic_icc_reg_t reg, uint64_t *value)
{
	return icc(vcpu, reg, value, 0);
}

hv_return_t hv_gic_set_icc_reg(hv_vcpu_t vcpu, hv_gic_icc_reg_t reg, uint64_t value)
{
	return icc(vcpu, reg, &value, 1);
}

hv_return_t hv_gic_get_ich_reg(hv_vcpu_t vcpu, hv_gic_ich_reg_t reg, uint64_t *value)
{
	(void)vcpu, (void)reg, (void)value;
	return HV_UNSUPPORTED; /* no nested virtualization */
}

hv_return_t hv_gic_set_ich_reg(hv_vcpu_t vcpu, hv_gic_ich_reg_t reg, uint64_t value)
{
	(void)vcpu, (void)reg, (void)value;
	return HV_UNSUPPORTED;
}

/* The state blob: "SQBEMUG1", count u32, reserved u32, then (key u32,
 * value u32) with format.md 8.3.2's keys (frame << 24 | vcpu << 17 |
 * offset).  Opaque to the backend, as Apple's is. */
struct hv_gic_state_s {
	uint32_t kind; /* 2 (os_release tells the objects apart) */
	size_t len;
	uint8_t *data;
};

static unsigned int gic_keys(uint32_t *k)
{
	/* distributor registers of SPIs 32..95: base offset, bits per interrupt */
	static const uint32_t spi_regs[][2] = {
	    {0x080, 1}, {0xd00, 1}, {0xc00, 2}, {0x400, 8}, {0x200, 1}, {0x300, 1}, {0x100, 1},
	};
	static const uint32_t sgi[] = {0x080, 0xd00, 0xc00, 0xc04, 0x400, 0x404, 0x408, 0x40c,
				       0x410, 0x414, 0x418, 0x41c, 0x200, 0x300, 0x100};
	unsigned int n = 0;

	k[n++] = 1u << 24;		     /* GICD_CTLR */
	for (unsigned int r = 0; r < 7; r++) /* words bits .. 3*bits-1 hold INTIDs 32..95 */
		for (uint32_t w = spi_regs[r][1]; w < 3 * spi_regs[r][1]; w++)
			k[n++] = 1u << 24 | (spi_regs[r][0] + 4 * w);
	for (unsigned int intid = 32; intid < EMU_GIC_NR_IRQS; intid++) {
		k[n++] = 1u << 24 | (0x6000 + 8 * intid);
		k[n++] = 1u << 24 | (0x6000 + 8 * intid + 4);
	}
	for (unsigned int c = 0; c < E.nvcpus; c++)
		for (unsigned int i = 0; i < sizeof(sgi) / sizeof(sgi[0]); i++)
			k[n++] = 2u << 24 | c << 17 | (0x10000 + sgi[i]);
	return n;
}

static int gic_key_access(uint32_t key, uint32_t *v, int set)
{
	uint32_t off = key & 0x1ffff;
	unsigned int c = (key >> 17) & 0x7f;

	if ((key >> 24) == 1)
		return gic_attr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, off, v, set);
	if (c >= E.nvcpus)
		return -EINVAL;
	return gic_attr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, mpidr_attr(E.vcpus[c]) | off, v, set);
}

hv_gic_state_t hv_gic_state_create(void)
{
	uint32_t *keys = calloc(4096, sizeof(uint32_t));
	struct hv_gic_state_s *st = calloc(1, sizeof(*st));
	unsigned int n;

	if (!keys || !st || gic_ready())
		goto fail;
	st->kind = 2;
	n = gic_keys(keys);
	st->len = 16 + 8ull * n;
	st->data = calloc(1, st->len);
	if (!st->data)
		goto fail;
	memcpy(st->data, "SQBEMUG1", 8);
	memcpy(st->data + 8, &n, 4);
	for (unsigned int i = 0; i < n; i++) {
		uint32_t v = 0;

		if (gic_key_access(keys[i], &v, 0))
			goto fail;
		memcpy(st->data + 16 + 8 * i, &keys[i], 4);
		memcpy(st->data + 20 + 8 * i, &v, 4);
	}
	free(keys);
	return st;
fail:
	if (st)
		free(st->data);
	free(st);
	free(keys);
	return NULL;
}

hv_return_t hv_gic_state_get_size(hv_gic_state_t st, size_t *size)
{
	if (!st)
		return HV_BAD_ARGUMENT;
	*size = st->len;
	return HV_SUCCESS;
}

hv_return_t hv_gic_state_get_data(hv_gic_state_t st, void *data)
{
	if (!st)
		return HV_BAD_ARGUMENT;
	memcpy(data, st->data, st->len);
	return HV_SUCCESS;
}

/* Set-registers (ISENABLER, ISPENDR, ISACTIVER at 0x100/0x200/0x300 of a
 * frame) name the whole state: clear through their Clear twin first. */
static int is_set_reg(uint32_t off)
{
	off &= 0xffff;
	return off >= 0x100 && off < 0x380 && (off & 0x80) == 0;
}

hv_return_t hv_gic_set_state(const void *data, size_t size)
{
	const uint8_t *p = data;
	uint32_t n;

	if (!data || size < 16 || memcmp(p, "SQBEMUG1", 8) || gic_ready())
		return HV_BAD_ARGUMENT;
	memcpy(&n, p + 8, 4);
	if (n > 4096 || size != 16 + 8ull * n)
		return HV_BAD_ARGUMENT;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t key, v, all = ~0u;

		memcpy(&key, p + 16 + 8 * i, 4);
		memcpy(&v, p + 20 + 8 * i, 4);
		if ((key >> 24) != 1 && (key >> 24) != 2)
			return HV_BAD_ARGUMENT;
		if (is_set_reg(key) && gic_key_access(key + 0x80, &all, 1))
			return HV_ERROR;
		if (gic_key_access(key, &v, 1))
			return HV_ERROR;
	}
	return HV_SUCCESS;
}

void os_release(void *object)
{
	/* the two kinds of objects the emulation hands out */
	struct hv_gic_state_s *st = object;

	if (!object)
		return;
	if (st->kind == 2)
		free(st->data);
	free(object);
}

/* ---- running ---- */

static const uint8_t *ram_ptr(uint64_t ipa, uint64_t len)
{
	struct emu_region *rg;

	pthread_mutex_lock(&E.lock);
	rg = region_of(ipa);
	pthread_mutex_unlock(&E.lock);
	if (!rg || rg->size - (ipa - rg->ipa) < len)
		return NULL;
	return rg->host + (ipa - rg->ipa);
}

/* Stage-1 translation of a guest VA, 4 KiB granule only (what Linux and
 * squib's guests use); 0 with *ipa set, -1 where it cannot. */
static int s1_walk(struct evcpu *ev, uint64_t va, uint64_t *ipa)
{
	const uint64_t amask = 0x0000fffffffff000ull;
	uint64_t tcr, ttbr, desc;
	unsigned int hi = (va >> 55) & 1, sz, bits, levels, level;

	if (one_reg(ev->fd, SYSREG_ID(HV_SYSREG_ENC(3, 0, 2, 0, 2)), &tcr, 0) ||
	    one_reg(ev->fd, SYSREG_ID(HV_SYSREG_ENC(3, 0, 2, 0, hi)), &ttbr, 0))
		return -1;
	sz = hi ? (tcr >> 16) & 0x3f : tcr & 0x3f;
	if ((hi ? ((tcr >> 30) & 3) != 2 : ((tcr >> 14) & 3) != 0) || sz < 16 || sz > 39)
		return -1; /* not a 4 KiB granule, or a size this walk does not handle */
	bits = 64 - sz - 12;
	levels = (bits + 8) / 9;
	level = 4 - levels;
	ttbr &= amask;
	for (;; level++) {
		unsigned int shift = 12 + 9 * (3 - level);
		uint64_t idx =
		    (va >> shift) &
		    ((level == 4 - levels) ? ((1ull << (bits - 9 * (levels - 1))) - 1) : 0x1ff);
		const uint8_t *p = ram_ptr(ttbr + 8 * idx, 8);

		if (!p)
			return -1;
		memcpy(&desc, p, 8);
		if (!(desc & 1))
			return -1;
		if (level == 3 || !(desc & 2)) { /* page, or block */
			if (level == 3 && !(desc & 2))
				return -1;
			*ipa =
			    (desc & amask & ~((1ull << shift) - 1)) | (va & ((1ull << shift) - 1));
			return 0;
		}
		ttbr = desc & amask;
	}
}

/* Guest PC -> host pointer to the instruction (MMU off: PC is the IPA;
 * on: a 4 KiB-granule stage-1 walk). */
static const uint8_t *insn_ptr(struct evcpu *ev)
{
	uint64_t pc, sctlr, ipa;

	if (one_reg(ev->fd, CORE_ID(regs.pc), &pc, 0) ||
	    one_reg(ev->fd, SYSREG_ID(HV_SYSREG_ENC(3, 0, 1, 0, 0)), &sctlr, 0) || pc % 4)
		return NULL;
	ipa = pc;
	if ((sctlr & 1) && s1_walk(ev, pc, &ipa))
		return NULL;
	return ram_ptr(ipa, 4);
}

/* The syndrome hardware gives for a single-register load/store: Rt from the
 * instruction (KVM does not pass it out), size and direction from KVM. */
static uint64_t synth_esr(struct evcpu *ev, unsigned int len, int write, enum sqb_hvf_fsc fsc)
{
	const uint8_t *ip = insn_ptr(ev);
	uint32_t insn, opc;

	if (!ip)
		return emu_esr_dabt(0, 0, 0, 0, 0, write, fsc, 3);
	memcpy(&insn, ip, 4);
	/* load/store register (not SIMD, not pair): bits 29..27 = 111, 26 = 0, 25..24 != 10 */
	if (((insn >> 27) & 7) != 7 || ((insn >> 26) & 1))
		return emu_esr_dabt(0, 0, 0, 0, 0, write, fsc, 3);
	opc = (insn >> 22) & 3;
	return emu_esr_dabt(1, len, opc >= 2 && !write, insn & 0x1f,
			    write ? (len == 8) : (opc == 2 || (opc == 1 && len == 8)), write, fsc,
			    3);
}

/* Is an access allowed by the current protection (a race with a re-grant)? */
static int access_ok(uint64_t ipa, int write, int *in_ram)
{
	struct emu_region *rg;
	uint8_t perm = 0;

	pthread_mutex_lock(&E.lock);
	rg = region_of(ipa);
	if (rg)
		perm = rg->perm[(ipa - rg->ipa) / E.page];
	pthread_mutex_unlock(&E.lock);
	*in_ram = rg != NULL;
	return rg && (perm & PERM_R) && (!write || (perm & PERM_W));
}

/* Permission fault where the page is readable, else translation fault. */
static enum sqb_hvf_fsc fault_kind(uint64_t ipa)
{
	int in_ram;

	return access_ok(ipa, 0, &in_ram) ? SQB_HVF_FSC_PERMISSION : SQB_HVF_FSC_TRANSLATION;
}

static void exception_exit(struct evcpu *ev, uint64_t esr, uint64_t ipa)
{
	ev->exit.reason = HV_EXIT_REASON_EXCEPTION;
	ev->exit.exception.syndrome = esr;
	ev->exit.exception.virtual_address = 0; /* not known under KVM */
	ev->exit.exception.physical_address = ipa;
}

/* A synthesized HVC exit whose X0..X3 are the fake arguments. */
static void hvc_exit(struct evcpu *ev, const uint64_t x[4])
{
	memcpy(ev->synth_x, x, sizeof(ev->synth_x));
	ev->synth_active = 1;
	exception_exit(ev, (uint64_t)SQB_ESR_EC_HVC64 << 26 | 1u << 25, 0);
}

static int deliver_queued(struct evcpu *ev)
{
	uint64_t x[4];
	int have = 0;

	pthread_mutex_lock(&ev->qlock);
	if (ev->nq) {
		memcpy(x, ev->q[0], sizeof(x));
		memmove(ev->q[0], ev->q[1], sizeof(ev->q[0]) * --ev->nq);
		have = 1;
	}
	pthread_mutex_unlock(&ev->qlock);
	if (have)
		hvc_exit(ev, x);
	return have;
}

/* 1: exit filled, 0: run again. */
static int kvm_exit(struct evcpu *ev)
{
	struct kvm_run *run = ev->run;
	uint64_t ipa, x[4] = {0};
	int in_ram, write;

	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		ipa = run->mmio.phys_addr;
		write = run->mmio.is_write;
		ev->cancel_mmio = 1; /* the backend completes it (or retries) itself */
		if (access_ok(ipa, write, &in_ram))
			return 0; /* the slot came back meanwhile: retry */
		exception_exit(ev, synth_esr(ev, run->mmio.len, write, fault_kind(ipa)), ipa);
		return 1;
	case KVM_EXIT_ARM_NISV:
		ipa = run->arm_nisv.fault_ipa;
		write = (run->arm_nisv.esr_iss >> 6) & 1;
		if (access_ok(ipa, write, &in_ram))
			return 0;
		exception_exit(ev, emu_esr_dabt(0, 0, 0, 0, 0, write, fault_kind(ipa), 3), ipa);
		return 1;
	case KVM_EXIT_SYSTEM_EVENT:
		/* KVM's PSCI took SYSTEM_OFF / RESET: show the backend the HVC */
		x[0] = run->system_event.type == KVM_SYSTEM_EVENT_RESET ? SQB_PSCI_SYSTEM_RESET
									: SQB_PSCI_SYSTEM_OFF;
		hvc_exit(ev, x);
		return 1;
	default:
		ev->exit.reason = HV_EXIT_REASON_UNKNOWN;
		return 1;
	}
}

hv_return_t hv_vcpu_run(hv_vcpu_t vcpu)
{
	struct evcpu *ev = vcpu_of(vcpu);

	if (!ev || gic_ready())
		return HV_BAD_ARGUMENT;
	ev->synth_active = 0; /* the fake HVC arguments end with the exit */
	pthread_mutex_lock(&E.obs_lock);
	if (atomic_exchange(&ev->await_on, 0)) {
		/* the backend runs a vCPU KVM still holds powered off (a snapshot
		 * restored it as on): on HVF, running it is what powers it */
		struct kvm_mp_state mp = {KVM_MP_STATE_RUNNABLE};

		if (ioctl(ev->fd, KVM_SET_MP_STATE, &mp) < 0) {
			pthread_mutex_unlock(&E.obs_lock);
			return HV_ERROR;
		}
	}
	pthread_mutex_unlock(&E.obs_lock);
	memset(&ev->exit, 0, sizeof(ev->exit));
	if (ev->cancel_mmio) {
		/* KVM completes an MMIO exit on the next KVM_RUN unless the exit
		 * reason is changed: the backend already did (or will retry) */
		ev->run->exit_reason = KVM_EXIT_UNKNOWN;
		ev->cancel_mmio = 0;
	}
	for (;;) {
		__atomic_store_n(&ev->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (deliver_queued(ev))
			return HV_SUCCESS;
		if (atomic_exchange(&ev->cancel, 0)) {
			ev->exit.reason = HV_EXIT_REASON_CANCELED;
			return HV_SUCCESS;
		}
		if (ioctl(ev->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return HV_ERROR;
		}
		if (kvm_exit(ev))
			return HV_SUCCESS;
		if (ev->cancel_mmio) {
			ev->run->exit_reason = KVM_EXIT_UNKNOWN;
			ev->cancel_mmio = 0;
		}
	}
}

/* PSCI CPU_ON happens inside KVM: watch the powered-off vCPUs and, when one
 * becomes runnable, queue a synthesized HVC CPU_ON on vCPU 0 with the entry
 * and context KVM set, and kick it, so the backend's PSCI handler starts its
 * thread as it would on HVF. */
static void *observer_main(void *arg)
{
	const struct timespec ms = {0, 1000000};

	(void)arg;
	while (!atomic_load(&E.stop)) {
		for (unsigned int i = 1; i < EMU_MAX_VCPUS; i++) {
			struct evcpu *ev = E.vcpus[i], *boot = E.vcpus[0];
			struct kvm_mp_state mp;
			uint64_t x[4];

			if (!ev || !boot || !atomic_load(&ev->await_on))
				continue;
			/* under obs_lock: a vCPU still awaiting is not in KVM_RUN */
			pthread_mutex_lock(&E.obs_lock);
			if (!atomic_load(&ev->await_on) ||
			    ioctl(ev->fd, KVM_GET_MP_STATE, &mp) < 0 ||
			    mp.mp_state != KVM_MP_STATE_RUNNABLE) {
				pthread_mutex_unlock(&E.obs_lock);
				continue;
			}
			x[0] = SQB_PSCI_CPU_ON_64;
			x[1] = ev->mpidr;
			if (one_reg(ev->fd, CORE_ID(regs.pc), &x[2], 0) ||
			    one_reg(ev->fd, CORE_ID(regs.regs[0]), &x[3], 0)) {
				pthread_mutex_unlock(&E.obs_lock);
				continue;
			}
			atomic_store(&ev->await_on, 0);
			if (atomic_load(&boot->gone)) {
				pthread_mutex_unlock(&E.obs_lock);
				continue;
			}
			pthread_mutex_lock(&boot->qlock);
			if (boot->nq < EMU_MAX_VCPUS)
				memcpy(boot->q[boot->nq++], x, sizeof(x));
			pthread_mutex_unlock(&boot->qlock);
			__atomic_store_n(&boot->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			pthread_kill(boot->thread, EMU_KICK_SIG);
			pthread_mutex_unlock(&E.obs_lock);
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}
