/* Linux KVM backend, the architecture-neutral part: fills struct sqb_hv_ops
 * (runtime/hv.h) with /dev/kvm ioctls — VM, memslots, irqfd / ioeventfd,
 * vCPUs with a run area, the kick (immediate_exit + a signal) and exit
 * translation.  The arch part (kvm/x86_64/: irqchip + PIT, CPUID, MSRs,
 * entry registers, state records; kvm/aarch64/: vGICv3, PSCI, ONE_REG
 * registers) answers the sqb_kvm_arch_* hooks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

/* The kick signal: its handler does nothing, it only makes KVM_RUN return
 * EINTR.  Installed once per process by the backend (no SA_RESTART). */
#define KVM_KICK_SIGNAL SIGUSR2

static void kick_handler(int sig)
{
	(void)sig;
}

static void install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

void sqb_kvm_diag(struct sqb_diag *diag, const char *what, int err)
{
	if (!diag)
		return;
	diag->offset = UINT64_MAX;
	snprintf(diag->section, sizeof(diag->section), "kvm");
	snprintf(diag->reason, sizeof(diag->reason), "%s: %s", what, strerror(-err));
}

static void kvm_host_probe(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0)
		return;
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION)
		sqb_kvm_arch_host_probe(kvm);
	close(kvm);
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
	pthread_once(&kick_once, install_kick_handler);
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "open /dev/kvm", err);
		goto err_free;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		err = -SQB_EUNSUPPORTED;
		sqb_kvm_diag(diag, "KVM API version is not 12", -EINVAL);
		goto err_kvm;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_CREATE_VM", err);
		goto err_kvm;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		err = -EINVAL;
		sqb_kvm_diag(diag, "KVM_GET_VCPU_MMAP_SIZE", err);
		goto err_vm;
	}
	err = sqb_kvm_arch_vm_init(vm, diag);
	if (err < 0)
		goto err_vm;
	*out = vm;
	return 0;

err_vm:
	close(vm->vm_fd);
err_kvm:
	close(vm->kvm_fd);
err_free:
	free(vm);
	return err;
}

static int kvm_vm_init_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	return sqb_kvm_arch_platform(vm, diag);
}

static void kvm_vm_set_smt(struct sqb_hv_vm *vm, int smt)
{
	vm->smt = smt != 0;
}

static void kvm_vm_destroy(struct sqb_hv_vm *vm)
{
	if (!vm)
		return;
	sqb_kvm_arch_vm_fini(vm);
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
	if (slot < SQB_KVM_MAX_SLOTS) {
		vm->slots[slot] = (struct sqb_kvm_slot){gpa, size, host};
		if (slot >= vm->nslots)
			vm->nslots = slot + 1;
	}
	return 0;
}

/* Not recorded in vm->slots: those are guest RAM (crash dumps read them). */
static int kvm_vm_map_device_memory(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa,
				    uint64_t size, void *host, int read_only)
{
	struct kvm_userspace_memory_region r = {
	    .slot = slot,
	    .flags = read_only ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (read_only && ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return -SQB_EUNSUPPORTED;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	return 0;
}

static int kvm_vm_irq_line(struct sqb_hv_vm *vm, unsigned int irq, int level)
{
	struct kvm_irq_level l = {.irq = sqb_kvm_arch_irq_line(irq), .level = level ? 1 : 0};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

static int kvm_vm_irqfd(struct sqb_hv_vm *vm, int fd, unsigned int gsi, int assign)
{
	struct kvm_irqfd f = {
	    .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0)
		return errno == EINVAL && assign ? -ENOSYS : -errno;
	return 0;
}

/* KVM_SIGNAL_MSI: > 0 delivered, 0 the guest blocked it (as hardware
 * would drop it), < 0 an error. */
static int kvm_vm_signal_msi(struct sqb_hv_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
	    .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};

	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &m) < 0)
		return -errno;
	return 0;
}

static int kvm_vm_ioeventfd(struct sqb_hv_vm *vm, uint64_t addr, unsigned int len, int is_pio,
			    uint64_t datamatch, int has_match, int fd, int assign)
{
	struct kvm_ioeventfd e = {.datamatch = datamatch, .addr = addr, .len = len, .fd = fd};

	if (len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	e.flags = (has_match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
		  (is_pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
		  (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN);
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &e) < 0)
		return -errno;
	return 0;
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
	vc->thread = pthread_self();
	vc->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vc->fd < 0) {
		err = -errno;
		sqb_kvm_diag(diag, "KVM_CREATE_VCPU", err);
		goto err_free;
	}
	vc->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd, 0);
	if (vc->run == MAP_FAILED) {
		err = -errno;
		sqb_kvm_diag(diag, "mmap vCPU run area", err);
		goto err_fd;
	}
	err = sqb_kvm_arch_vcpu_init(vc, diag);
	if (err < 0)
		goto err_run;
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
	sqb_kvm_crash_free(vc);
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
	if (vc->crash)
		sqb_kvm_crash_note_exit(vc);
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
		sqb_kvm_crash_report(vc);
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
	case KVM_EXIT_SYSTEM_EVENT: {
		/* vcpu.rs's line: the raw type and the event data as a list */
		char ev[160] = "";
		size_t at = 0;
		unsigned int nd = run->system_event.ndata < 16 ? run->system_event.ndata : 16;

		for (unsigned int i = 0; i < nd && at < sizeof(ev) - 24; i++)
			at += (size_t)snprintf(ev + at, sizeof(ev) - at, "%s%llu", i ? ", " : "",
					       (unsigned long long)run->system_event.data[i]);
		sqb_info("Received KVM_SYSTEM_EVENT: type: %u, event: [%s]", run->system_event.type,
			 ev);
	}
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

static void kvm_vcpu_kick(struct sqb_hv_vcpu *vc)
{
	/* the flag covers a run about to start, the signal one in progress */
	__atomic_store_n(&vc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (!pthread_equal(vc->thread, pthread_self()))
		pthread_kill(vc->thread, KVM_KICK_SIGNAL);
}

static void kvm_vcpu_clear_kick(struct sqb_hv_vcpu *vc)
{
	__atomic_store_n(&vc->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

#if defined(__x86_64__)
static int kvm_vcpu_clock_stopped(struct sqb_hv_vcpu *vc)
{
	return ioctl(vc->fd, KVM_KVMCLOCK_CTRL, 0) < 0 ? -errno : 0;
}
#endif

/* KVM's internal-error sub-codes (the hypervisor could not go on). */
static const char *kvm_internal_name(uint64_t sub)
{
	switch (sub) {
	case KVM_INTERNAL_ERROR_EMULATION:
		return "instruction emulation failed";
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		return "exception while delivering an exception (triple-fault class)";
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		return "event delivery failed";
	default:
		return "unknown";
	}
}

static uint64_t kvm_vcpu_rip(struct sqb_hv_vcpu *vc)
{
	return sqb_kvm_arch_vcpu_pc(vc);
}

const struct sqb_hv_ops sqb_hv_backend = {
    .name = "kvm",
    .snap_arch = SQB_KVM_SNAP_ARCH,
    .snap_hv = SQB_HV_KVM,
    .vm_create = kvm_vm_create,
    .host_probe = kvm_host_probe,
    .vm_cpu_template = sqb_kvm_arch_cpu_template,
    .vm_set_smt = kvm_vm_set_smt,
    .vm_destroy = kvm_vm_destroy,
    .vm_init_platform = kvm_vm_init_platform,
    .vm_map_memory = kvm_vm_map_memory,
    .vm_map_device_memory = kvm_vm_map_device_memory,
    .vm_irq_line = kvm_vm_irq_line,
    .vm_irqfd = kvm_vm_irqfd,
    .vm_ioeventfd = kvm_vm_ioeventfd,
    .vm_signal_msi = kvm_vm_signal_msi,
    .vcpu_create = kvm_vcpu_create,
    .vcpu_destroy = kvm_vcpu_destroy,
    .vcpu_set_entry = sqb_kvm_vcpu_set_entry,
    .vcpu_run = kvm_vcpu_run,
    .vcpu_kick = kvm_vcpu_kick,
    .vcpu_clear_kick = kvm_vcpu_clear_kick,
#if defined(__x86_64__)
    .vcpu_clock_stopped = kvm_vcpu_clock_stopped,
#endif
    .vcpu_rip = kvm_vcpu_rip,
    .exit_internal_name = kvm_internal_name,
    .vcpu_save_records = sqb_kvm_vcpu_save_records,
    .vcpu_load_records = sqb_kvm_vcpu_load_records,
    .vm_save_records = sqb_kvm_vm_save_records,
    .vm_load_records = sqb_kvm_vm_load_records,
    .vm_load_options = sqb_kvm_vm_load_options,
    .vm_dirty_fd = sqb_kvm_vm_dirty_fd,
};
