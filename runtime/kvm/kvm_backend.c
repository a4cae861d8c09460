/* Linux KVM backend: fills struct sqb_hv_ops (runtime/hv.h) with /dev/kvm
 * ioctls — VM with in-kernel irqchip + PIT, memslots, vCPUs with a run area,
 * exit translation and the state get/set slots snapshots will use. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv.h"
#include "kvm_priv.h"
#include "log.h"
#include "squib/snapfmt.h"

#define KVM_TSS_ADDR   0xfffbd000UL /* 3 pages just below the BIOS area */
#define KVM_IDMAP_ADDR 0xfffbc000UL

static void kvm_diag(struct sqb_diag *diag, const char *what, int err)
{
	if (!diag)
		return;
	diag->offset = UINT64_MAX;
	snprintf(diag->section, sizeof(diag->section), "kvm");
	snprintf(diag->reason, sizeof(diag->reason), "%s: %s", what, strerror(-err));
}

static int kvm_vm_create(struct sqb_hv_vm **out, unsigned int nvcpus, struct sqb_diag *diag)
{
	struct sqb_hv_vm *vm;
	int err;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->vm_fd = -1;
	vm->nvcpus = nvcpus;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = -errno;
		kvm_diag(diag, "open /dev/kvm", err);
		goto err_free;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		err = -SQB_EUNSUPPORTED;
		kvm_diag(diag, "KVM API version is not 12", -EINVAL);
		goto err_kvm;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = -errno;
		kvm_diag(diag, "KVM_CREATE_VM", err);
		goto err_kvm;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		err = -EINVAL;
		kvm_diag(diag, "KVM_GET_VCPU_MMAP_SIZE", err);
		goto err_vm;
	}
	err = sqb_kvm_cpuid_init(vm);
	if (err < 0) {
		kvm_diag(diag, "KVM_GET_SUPPORTED_CPUID", err);
		goto err_vm;
	}
	err = sqb_kvm_msr_init(vm);
	if (err < 0) {
		kvm_diag(diag, "KVM_GET_MSR_INDEX_LIST", err);
		goto err_cpuid;
	}
	*out = vm;
	return 0;

err_cpuid:
	free(vm->cpuid);
err_vm:
	close(vm->vm_fd);
err_kvm:
	close(vm->kvm_fd);
err_free:
	free(vm);
	return err;
}

/* In-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT.  Called after guest
 * memory is mapped: on PVM a memslot added after the irqchip costs several
 * milliseconds more to register. */
static int kvm_vm_init_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t idmap = KVM_IDMAP_ADDR;
	int err;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		err = -errno;
		kvm_diag(diag, "KVM_SET_TSS_ADDR/IDENTITY_MAP", err);
		return err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = -errno;
		kvm_diag(diag, "KVM_CREATE_IRQCHIP", err);
		return err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		err = -errno;
		kvm_diag(diag, "KVM_CREATE_PIT2", err);
		return err;
	}
	return 0;
}

static void kvm_vm_destroy(struct sqb_hv_vm *vm)
{
	if (!vm)
		return;
	free(vm->cpuid);
	free(vm->msr_index);
	close(vm->vm_fd);
	close(vm->kvm_fd);
	free(vm);
}

static int kvm_vm_map_memory(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			     void *host, int track_dirty)
{
	struct kvm_userspace_memory_region r = {
	    .slot = slot,
	    .flags = track_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	return 0;
}

static int kvm_vm_irq_line(struct sqb_hv_vm *vm, unsigned int irq, int level)
{
	struct kvm_irq_level l = {.irq = irq, .level = level ? 1 : 0};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

static size_t kvm_vm_state_size(enum sqb_hv_vm_state_kind kind)
{
	switch (kind) {
	case SQB_HV_VM_PIC_MASTER:
	case SQB_HV_VM_PIC_SLAVE:
	case SQB_HV_VM_IOAPIC:
		return sizeof(struct kvm_irqchip);
	case SQB_HV_VM_PIT:
		return sizeof(struct kvm_pit_state2);
	case SQB_HV_VM_CLOCK:
		return sizeof(struct kvm_clock_data);
	default:
		return 0;
	}
}

static int kvm_vm_state_io(struct sqb_hv_vm *vm, enum sqb_hv_vm_state_kind kind, void *buf, int set)
{
	static const unsigned long chip_get = KVM_GET_IRQCHIP, chip_set = KVM_SET_IRQCHIP;
	int rc;

	switch (kind) {
	case SQB_HV_VM_PIC_MASTER:
	case SQB_HV_VM_PIC_SLAVE:
	case SQB_HV_VM_IOAPIC:
		((struct kvm_irqchip *)buf)->chip_id =
		    kind == SQB_HV_VM_PIC_MASTER  ? KVM_IRQCHIP_PIC_MASTER
		    : kind == SQB_HV_VM_PIC_SLAVE ? KVM_IRQCHIP_PIC_SLAVE
						  : KVM_IRQCHIP_IOAPIC;
		rc = ioctl(vm->vm_fd, set ? chip_set : chip_get, buf);
		break;
	case SQB_HV_VM_PIT:
		rc = ioctl(vm->vm_fd, set ? KVM_SET_PIT2 : KVM_GET_PIT2, buf);
		break;
	case SQB_HV_VM_CLOCK:
		rc = ioctl(vm->vm_fd, set ? KVM_SET_CLOCK : KVM_GET_CLOCK, buf);
		break;
	default:
		return -ENOSYS;
	}
	return rc < 0 ? -errno : 0;
}

static int kvm_vm_get_state(struct sqb_hv_vm *vm, enum sqb_hv_vm_state_kind kind, void *buf)
{
	return kvm_vm_state_io(vm, kind, buf, 0);
}

static int kvm_vm_set_state(struct sqb_hv_vm *vm, enum sqb_hv_vm_state_kind kind, const void *buf)
{
	return kvm_vm_state_io(vm, kind, (void *)buf, 1);
}

static int kvm_vcpu_create(struct sqb_hv_vcpu **out, struct sqb_hv_vm *vm, unsigned int index,
			   struct sqb_diag *diag)
{
	struct sqb_hv_vcpu *vc;
	int err;

	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return -ENOMEM;
	vc->vm = vm;
	vc->index = index;
	vc->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vc->fd < 0) {
		err = -errno;
		kvm_diag(diag, "KVM_CREATE_VCPU", err);
		goto err_free;
	}
	vc->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd, 0);
	if (vc->run == MAP_FAILED) {
		err = -errno;
		kvm_diag(diag, "mmap vCPU run area", err);
		goto err_fd;
	}
	err = sqb_kvm_cpuid_set(vc);
	if (err < 0) {
		kvm_diag(diag, "KVM_SET_CPUID2", err);
		goto err_run;
	}
	err = sqb_kvm_msr_boot(vc);
	if (err < 0) {
		kvm_diag(diag, "KVM_SET_MSRS", err);
		goto err_run;
	}
	*out = vc;
	return 0;

err_run:
	munmap(vc->run, vm->run_size);
err_fd:
	close(vc->fd);
err_free:
	free(vc);
	return err;
}

static void kvm_vcpu_destroy(struct sqb_hv_vcpu *vc)
{
	if (!vc)
		return;
	munmap(vc->run, vc->vm->run_size);
	close(vc->fd);
	free(vc);
}

static int kvm_vcpu_run(struct sqb_hv_vcpu *vc, struct sqb_hv_exit *ex)
{
	struct kvm_run *run = vc->run;

	if (ioctl(vc->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return -EINTR;
		return -errno;
	}
	memset(ex, 0, sizeof(*ex));
	ex->detail = run->exit_reason;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		ex->kind = SQB_HV_EXIT_IO;
		ex->u.io.port = run->io.port;
		ex->u.io.size = run->io.size;
		ex->u.io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
		ex->u.io.count = run->io.count;
		ex->u.io.data = (uint8_t *)run + run->io.data_offset;
		break;
	case KVM_EXIT_MMIO:
		ex->kind = SQB_HV_EXIT_MMIO;
		ex->u.mmio.gpa = run->mmio.phys_addr;
		ex->u.mmio.data = run->mmio.data;
		ex->u.mmio.len = run->mmio.len;
		ex->u.mmio.is_write = run->mmio.is_write;
		break;
	case KVM_EXIT_HLT:
		ex->kind = SQB_HV_EXIT_HLT;
		break;
	case KVM_EXIT_SHUTDOWN:
		ex->kind = SQB_HV_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		ex->kind = SQB_HV_EXIT_INTERNAL;
		ex->detail = run->internal.suberror;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		ex->kind = SQB_HV_EXIT_FAIL_ENTRY;
		ex->detail = run->fail_entry.hardware_entry_failure_reason;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		ex->kind = SQB_HV_EXIT_SYSTEM_EVENT;
		ex->detail =
		    run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? SQB_HV_SYSEV_SHUTDOWN
		    : run->system_event.type == KVM_SYSTEM_EVENT_RESET	? SQB_HV_SYSEV_RESET
									: SQB_HV_SYSEV_OTHER;
		break;
	case KVM_EXIT_INTR:
		return -EINTR;
	default:
		ex->kind = SQB_HV_EXIT_UNKNOWN;
		break;
	}
	return 0;
}

static void kvm_vcpu_set_kick(struct sqb_hv_vcpu *vc, int on)
{
	__atomic_store_n(&vc->run->immediate_exit, on ? 1 : 0, __ATOMIC_SEQ_CST);
}

static uint64_t kvm_vcpu_rip(struct sqb_hv_vcpu *vc)
{
	struct kvm_regs r;

	if (ioctl(vc->fd, KVM_GET_REGS, &r) < 0)
		return UINT64_MAX;
	return r.rip;
}

const struct sqb_hv_ops sqb_hv_backend = {
    .name = "kvm",
    .snap_arch = SQB_ARCH_X86_64,
    .snap_hv = SQB_HV_KVM,
    .vm_create = kvm_vm_create,
    .vm_destroy = kvm_vm_destroy,
    .vm_init_platform = kvm_vm_init_platform,
    .vm_map_memory = kvm_vm_map_memory,
    .vm_irq_line = kvm_vm_irq_line,
    .vm_state_size = kvm_vm_state_size,
    .vm_get_state = kvm_vm_get_state,
    .vm_set_state = kvm_vm_set_state,
    .vcpu_create = kvm_vcpu_create,
    .vcpu_destroy = kvm_vcpu_destroy,
    .vcpu_set_entry = sqb_kvm_vcpu_set_entry,
    .vcpu_run = kvm_vcpu_run,
    .vcpu_set_kick = kvm_vcpu_set_kick,
    .vcpu_rip = kvm_vcpu_rip,
    .vcpu_state_size = sqb_kvm_vcpu_state_size,
    .vcpu_get_state = sqb_kvm_vcpu_get_state,
    .vcpu_set_state = sqb_kvm_vcpu_set_state,
    .vcpu_save_records = sqb_kvm_vcpu_save_records,
    .vcpu_load_records = sqb_kvm_vcpu_load_records,
    .vm_save_records = sqb_kvm_vm_save_records,
    .vm_load_records = sqb_kvm_vm_load_records,
    .vm_dirty_fd = sqb_kvm_vm_dirty_fd,
};
