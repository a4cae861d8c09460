/* Apple Hypervisor.framework backend: fills struct sqb_hv_ops (runtime/hv.h)
 * with hv_* calls (hv_api.h) — the VM, RAM through hv_vm_map / hv_vm_protect,
 * the framework's GICv3 (hv_gic_*), vCPUs on their own threads with
 * hv_vcpus_exit as the kick.  Exits: hvf_vcpu.c; records (format.md 8.2,
 * 8.3 HVF_GIC_STATE): hvf_snapshot.c; fault hooks: hvf_faults.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch_entry.h"
#include "hvf_priv.h"
#include "layout.h"
#include "log.h"
#include "squib/snapfmt.h"

/* Hypervisor.framework allows one VM per process. */
static atomic_int hvf_vm_exists;

int sqb_hvf_err(hv_return_t r)
{
	switch (r) {
	case HV_SUCCESS:
		return 0;
	case HV_BUSY:
		return -EBUSY;
	case HV_BAD_ARGUMENT:
		return -EINVAL;
	case HV_NO_RESOURCES:
		return -ENOMEM;
	case HV_NO_DEVICE:
		return -ENODEV;
	case HV_DENIED:
		return -EPERM;
	case HV_UNSUPPORTED:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

static void hdiag(struct sqb_diag *d, const char *what, hv_return_t r)
{
	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->section, sizeof(d->section), "hvf");
	snprintf(d->reason, sizeof(d->reason), "%s: hv_return_t 0x%08x (%s)", what, (unsigned)r,
		 strerror(-sqb_hvf_err(r)));
}

static int hvf_vm_create(struct sqb_hv_vm **out, unsigned int nvcpus, struct sqb_diag *diag)
{
	struct sqb_hv_vm *vm;
	hv_return_t r;
	int expect = 0;

	if (nvcpus == 0 || nvcpus > SQB_HVF_MAX_VCPUS) {
		hdiag(diag, "vCPU count out of range (1..32)", HV_BAD_ARGUMENT);
		return -EINVAL;
	}
	if (!atomic_compare_exchange_strong(&hvf_vm_exists, &expect, 1)) {
		hdiag(diag, "Hypervisor.framework: one VM per process", HV_BUSY);
		return -EBUSY;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		atomic_store(&hvf_vm_exists, 0);
		return -ENOMEM;
	}
	vm->nvcpus = nvcpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	/* vCPU 0 boots; the others wait for PSCI CPU_ON (docs/hvf.md) */
	vm->power[0] = SQB_HVF_ON;
	r = hv_vm_create(NULL);
	if (r != HV_SUCCESS) {
		hdiag(diag, "hv_vm_create", r);
		pthread_cond_destroy(&vm->cond);
		pthread_mutex_destroy(&vm->lock);
		free(vm);
		atomic_store(&hvf_vm_exists, 0);
		return sqb_hvf_err(r);
	}
	*out = vm;
	return 0;
}

static void hvf_vm_destroy(struct sqb_hv_vm *vm)
{
	if (!vm)
		return;
	if (vm->faults) {
		uint64_t fetched = 0, dirtied = 0;

		sqb_hvf_faults_stats(vm->faults, &fetched, &dirtied);
		sqb_info("hvf: %llu pages fetched by access faults, %llu write faults tracked",
			 (unsigned long long)fetched, (unsigned long long)dirtied);
	}
	sqb_hvf_faults_free(vm->faults);
	for (unsigned int i = 0; i < vm->nmem; i++)
		hv_vm_unmap(vm->mem[i].gpa, vm->mem[i].size);
	hv_vm_destroy();
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
	atomic_store(&hvf_vm_exists, 0);
}

static int hvf_vm_init_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	hv_gic_config_t cfg;
	size_t dsz = 0, rsz = 0;
	uint32_t spi_base = 0, spi_count = 0;
	hv_return_t r;

	/* the device tree (arch_fdt.c) promises these frames: check they fit */
	r = hv_gic_get_distributor_size(&dsz);
	if (r == HV_SUCCESS)
		r = hv_gic_get_redistributor_size(&rsz);
	if (r != HV_SUCCESS) {
		hdiag(diag, "hv_gic_get_*_size", r);
		return sqb_hvf_err(r);
	}
	if (dsz > SQB_ARM64_GICD_SIZE || rsz > SQB_ARM64_GICR_STRIDE) {
		hdiag(diag, "GIC frames larger than squib's layout", HV_UNSUPPORTED);
		return -ENOTSUP;
	}
	cfg = hv_gic_config_create();
	if (!cfg) {
		hdiag(diag, "hv_gic_config_create", HV_NO_RESOURCES);
		return -ENOMEM;
	}
	r = hv_gic_config_set_distributor_base(cfg, SQB_ARM64_GICD_BASE);
	if (r == HV_SUCCESS)
		r = hv_gic_config_set_redistributor_base(cfg, SQB_ARM64_GICR_BASE);
	if (r == HV_SUCCESS)
		r = hv_gic_create(cfg);
	os_release(cfg);
	if (r != HV_SUCCESS) {
		hdiag(diag, "hv_gic_create", r);
		return sqb_hvf_err(r);
	}
	r = hv_gic_get_spi_interrupt_range(&spi_base, &spi_count);
	if (r != HV_SUCCESS || spi_base > SQB_ARM64_SPI_BASE ||
	    spi_base + spi_count < SQB_ARM64_GIC_NR_IRQS) {
		hdiag(diag, "GIC SPI range does not cover INTIDs 32..95",
		      r != HV_SUCCESS ? r : HV_UNSUPPORTED);
		return r != HV_SUCCESS ? sqb_hvf_err(r) : -ENOTSUP;
	}
	(void)vm;
	return 0;
}

static int hvf_vm_map_memory(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			     void *host, int track_dirty)
{
	hv_return_t r;

	(void)slot;
	(void)track_dirty; /* dirty tracking is exit-driven: sqb_hvf_faults */
	if (vm->nmem >= SQB_HVF_MAX_MEM)
		return -ENOSPC;
	r = hv_vm_map(host, gpa, size, HV_MEMORY_READ | HV_MEMORY_WRITE | HV_MEMORY_EXEC);
	if (r != HV_SUCCESS)
		return sqb_hvf_err(r);
	vm->mem[vm->nmem].gpa = gpa;
	vm->mem[vm->nmem].size = size;
	vm->mem[vm->nmem].host = host;
	vm->nmem++;
	return 0;
}

int sqb_hvf_in_ram(struct sqb_hv_vm *vm, uint64_t gpa)
{
	for (unsigned int i = 0; i < vm->nmem; i++)
		if (gpa >= vm->mem[i].gpa && gpa - vm->mem[i].gpa < vm->mem[i].size)
			return 1;
	return 0;
}

static int hvf_vm_irq_line(struct sqb_hv_vm *vm, unsigned int irq, int level)
{
	hv_return_t r;

	if (irq >= SQB_ARM64_GIC_NR_IRQS - SQB_ARM64_SPI_BASE)
		return -EINVAL;
	r = hv_gic_set_spi(SQB_ARM64_SPI_BASE + irq, level != 0);
	if (level) { /* a vCPU waiting in WFI re-checks */
		pthread_mutex_lock(&vm->lock);
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
	}
	return sqb_hvf_err(r);
}

static int hvf_vm_irqfd(struct sqb_hv_vm *vm, int fd, unsigned int gsi, int assign)
{
	(void)vm, (void)fd, (void)gsi, (void)assign;
	return -ENOSYS; /* no irqfd in Hypervisor.framework: vm_irq_line */
}

static int hvf_vm_ioeventfd(struct sqb_hv_vm *vm, uint64_t addr, unsigned int len, int is_pio,
			    uint64_t datamatch, int has_match, int fd, int assign)
{
	(void)vm, (void)addr, (void)len, (void)is_pio, (void)datamatch, (void)has_match, (void)fd;
	(void)assign;
	return -ENOSYS; /* every MMIO write exits */
}

static int hvf_vcpu_create(struct sqb_hv_vcpu **out, struct sqb_hv_vm *vm, unsigned int index,
			   struct sqb_diag *diag)
{
	struct sqb_hv_vcpu *vc;
	hv_return_t r;

	if (index >= vm->nvcpus)
		return -EINVAL;
	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return -ENOMEM;
	vc->vm = vm;
	vc->index = index;
	r = hv_vcpu_create(&vc->id, &vc->exit, NULL);
	if (r != HV_SUCCESS) {
		hdiag(diag, "hv_vcpu_create", r);
		free(vc);
		return sqb_hvf_err(r);
	}
	/* MPIDR as the device tree's cpu@ reg says (arch/aarch64/layout.h) */
	r = hv_vcpu_set_sys_reg(vc->id, HV_SYSREG_ENC(3, 0, 0, 0, 5), sqb_arm64_mpidr(index));
	pthread_mutex_lock(&vm->lock);
	/* one virtual counter for the VM: every vCPU gets the first one's offset */
	if (r == HV_SUCCESS && vm->have_vtoff)
		r = hv_vcpu_set_vtimer_offset(vc->id, vm->vtimer_offset);
	else if (r == HV_SUCCESS && hv_vcpu_get_vtimer_offset(vc->id, &vm->vtimer_offset) == 0)
		vm->have_vtoff = 1;
	if (r == HV_SUCCESS)
		vm->vcpus[index] = vc;
	pthread_mutex_unlock(&vm->lock);
	if (r != HV_SUCCESS) {
		hdiag(diag, "vCPU set-up (MPIDR_EL1, vtimer offset)", r);
		hv_vcpu_destroy(vc->id);
		free(vc);
		return sqb_hvf_err(r);
	}
	*out = vc;
	return 0;
}

static void hvf_vcpu_destroy(struct sqb_hv_vcpu *vc)
{
	if (!vc)
		return;
	pthread_mutex_lock(&vc->vm->lock);
	vc->vm->vcpus[vc->index] = NULL;
	pthread_mutex_unlock(&vc->vm->lock);
	hv_vcpu_destroy(vc->id);
	free(vc);
}

/* The Linux arm64 boot protocol's entry: EL1h with DAIF masked (0x3c5). */
static int hvf_vcpu_set_entry(struct sqb_hv_vcpu *vc, const struct sqb_arch_entry *e)
{
	hv_return_t r = hv_vcpu_set_reg(vc->id, HV_REG_PC, e->pc);

	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(vc->id, HV_REG_X0, e->x0);
	for (unsigned int i = 1; i < 4 && r == HV_SUCCESS; i++)
		r = hv_vcpu_set_reg(vc->id, HV_REG_X0 + i, 0);
	if (r == HV_SUCCESS)
		r = hv_vcpu_set_reg(vc->id, HV_REG_CPSR, 0x3c5);
	return sqb_hvf_err(r);
}

/* Any thread.  The flag makes a run that has not reached hv_vcpu_run yet
 * return at once; hv_vcpus_exit ends one under way; the broadcast wakes a
 * vCPU parked in WFI or waiting for CPU_ON. */
static void hvf_vcpu_kick(struct sqb_hv_vcpu *vc)
{
	atomic_store(&vc->kicked, 1);
	pthread_mutex_lock(&vc->vm->lock);
	pthread_cond_broadcast(&vc->vm->cond);
	pthread_mutex_unlock(&vc->vm->lock);
	hv_vcpus_exit(&vc->id, 1);
}

static void hvf_vcpu_clear_kick(struct sqb_hv_vcpu *vc)
{
	atomic_store(&vc->kicked, 0);
}

static uint64_t hvf_vcpu_pc(struct sqb_hv_vcpu *vc)
{
	uint64_t pc = UINT64_MAX;

	return hv_vcpu_get_reg(vc->id, HV_REG_PC, &pc) == HV_SUCCESS ? pc : UINT64_MAX;
}

static int hvf_vm_dirty_fd(struct sqb_hv_vm *vm)
{
	(void)vm;
	return -1; /* no dirty log: SQB_DIRTY_EXIT through sqb_hvf_faults */
}

/* squib's Diff tracking (runtime/snapshot/snap_dirty.c): SQB_DIRTY_EXIT
 * over RAM, write faults routed through hvf_faults.c. */
static int hvf_vm_dirty_exit(struct sqb_hv_vm *vm, struct sqb_dirty_opts *o)
{
	int err;

	if (vm->nmem != 1)
		return -ENOTSUP; /* one RAM region on arm64 (arch/aarch64/layout.h) */
	if (!vm->faults) {
		err = sqb_hvf_faults_create(&vm->faults, vm, vm->mem[0].gpa, vm->mem[0].size);
		if (err)
			return err;
	}
	o->backend = SQB_DIRTY_EXIT;
	o->kvm_vm_fd = -1;
	o->protect = sqb_hvf_faults_dirty_protect;
	o->protect_ctx = vm->faults;
	return 0;
}

static void hvf_vm_dirty_route(struct sqb_hv_vm *vm, struct sqb_dirty *d)
{
	if (vm->faults)
		sqb_hvf_faults_set_dirty(vm->faults, d);
}

/* Exit-driven postcopy of a snapshot load (runtime/snapshot/snap_load.c):
 * RAM withheld from the guest, each first access fetched through rs and
 * granted (hvf_faults.c).  The 64 KiB around each vCPU's PC is fetched up
 * front: those pages are needed at once, and under the emulation on KVM an
 * instruction fetch from a withheld page cannot be reported (docs/hvf.md). */
static int hvf_vm_lazy_exit(struct sqb_hv_vm *vm, struct sqb_restore *rs)
{
	const uint64_t win = 64u << 10;
	int err;

	if (vm->nmem != 1)
		return -ENOTSUP;
	if (!vm->faults) {
		err = sqb_hvf_faults_create(&vm->faults, vm, vm->mem[0].gpa, vm->mem[0].size);
		if (err)
			return err;
	}
	err = sqb_hvf_faults_lazy(vm->faults, rs, vm->mem[0].gpa, vm->mem[0].size);
	for (unsigned int i = 0; !err && i < vm->nvcpus; i++) {
		struct sqb_hv_vcpu *vc = vm->vcpus[i];
		uint64_t pc;

		pthread_mutex_lock(&vm->lock);
		pc = vc && vc->have_loaded_pc ? vc->loaded_pc : UINT64_MAX;
		pthread_mutex_unlock(&vm->lock);
		if (pc == UINT64_MAX || !sqb_hvf_in_ram(vm, pc))
			continue;
		err = sqb_hvf_faults_prefetch(vm->faults, pc - pc % win, win);
	}
	return err;
}

void sqb_hvf_set_fault_handler(struct sqb_hv_vm *vm, sqb_hvf_fault_fn fn, void *ctx)
{
	pthread_mutex_lock(&vm->lock);
	vm->fault_ctx = ctx;
	vm->fault = fn;
	pthread_mutex_unlock(&vm->lock);
}

int sqb_hvf_protect(struct sqb_hv_vm *vm, uint64_t gpa, uint64_t len, unsigned int prot)
{
	hv_memory_flags_t f = 0;

	(void)vm;
	if (prot & SQB_HVF_PROT_R)
		f |= HV_MEMORY_READ;
	if (prot & SQB_HVF_PROT_W)
		f |= HV_MEMORY_WRITE;
	if (prot & SQB_HVF_PROT_X)
		f |= HV_MEMORY_EXEC;
	return sqb_hvf_err(hv_vm_protect(gpa, len, f));
}

const struct sqb_hv_ops sqb_hv_backend = {
    .name = "hvf",
    .snap_arch = SQB_ARCH_AARCH64,
    .snap_hv = SQB_HV_HVF,
    .vm_create = hvf_vm_create,
    .vm_destroy = hvf_vm_destroy,
    .vm_init_platform = hvf_vm_init_platform,
    .vm_map_memory = hvf_vm_map_memory,
    .vm_irq_line = hvf_vm_irq_line,
    .vm_irqfd = hvf_vm_irqfd,
    .vm_ioeventfd = hvf_vm_ioeventfd,
    .vcpu_create = hvf_vcpu_create,
    .vcpu_destroy = hvf_vcpu_destroy,
    .vcpu_set_entry = hvf_vcpu_set_entry,
    .vcpu_run = sqb_hvf_vcpu_run,
    .vcpu_kick = hvf_vcpu_kick,
    .vcpu_clear_kick = hvf_vcpu_clear_kick,
    .vcpu_rip = hvf_vcpu_pc,
    .exit_internal_name = sqb_hvf_exit_internal_name,
    .vcpu_save_records = sqb_hvf_vcpu_save_records,
    .vcpu_load_records = sqb_hvf_vcpu_load_records,
    .vm_save_records = sqb_hvf_vm_save_records,
    .vm_load_records = sqb_hvf_vm_load_records,
    .vm_dirty_fd = hvf_vm_dirty_fd,
    .vm_dirty_exit = hvf_vm_dirty_exit,
    .vm_dirty_route = hvf_vm_dirty_route,
    .vm_lazy_exit = hvf_vm_lazy_exit,
};
