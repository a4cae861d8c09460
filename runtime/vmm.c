/* The VMM core: VM creation, vCPU threads (each vCPU created on its own
 * thread, parked until started, per-vCPU work sent to it as requests),
 * exit dispatch over the device bus, interrupts, the event loop, and the
 * pause/resume rendezvous a snapshot captures at.  No global VM state:
 * all lives in struct sqb_vm, so several VMs can share a process. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"
#include "dev_mmio.h"
#include "dev_pci.h"
#include "io.h"
#include "layout.h"
#include "log.h"
#include "pagealloc.h"
#include "virtio.h" /* the serial rate limiter's bucket */
#include "vmm_priv.h"
#include "seccomp/sqb_confine.h"

uint64_t sqb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- interrupts ---- */

static void vm_irq_pulse(struct sqb_irq *irq)
{
	struct sqb_vm *vm = irq->owner;

	if (irq->fd >= 0) {
		uint64_t one = 1;
		if (write(irq->fd, &one, sizeof(one)) < 0)
			sqb_debug("irqfd write failed: %d", errno);
		return;
	}
	/* two devices' threads pulsing one line must give two edges, not one */
	pthread_mutex_lock(&vm->irq_lock);
	vm->ops->vm_irq_line(vm->hv, irq->gsi, 1);
	vm->ops->vm_irq_line(vm->hv, irq->gsi, 0);
	pthread_mutex_unlock(&vm->irq_lock);
}

int sqb_vm_irq_get(struct sqb_vm *vm, unsigned int gsi, struct sqb_irq **out)
{
	struct sqb_irq *irq;
	int fixed = gsi != 0;

	*out = NULL;
	if (!fixed)
		for (gsi = SQB_ARCH_GSI_FIRST; gsi <= SQB_ARCH_GSI_LAST; gsi++)
			if (!(vm->irq_used & (1u << gsi)))
				break;
	if (gsi >= SQB_VM_MAX_GSI || gsi > (fixed ? SQB_ARCH_GSI_MAX : SQB_ARCH_GSI_LAST))
		return -SQB_ELIMIT; /* every pin is taken */
	if (vm->irq_used & (1u << gsi))
		return -EEXIST;
	irq = &vm->irqs[gsi];
	*irq = (struct sqb_irq){gsi, -1, vm_irq_pulse, vm};
	/* Legacy ISA lines keep the line op (their edge timing is the 8259's);
	 * allocated pins get an irqfd so a device thread never enters KVM. */
	if (!fixed && vm->ops->vm_irqfd) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0 && vm->ops->vm_irqfd(vm->hv, fd, gsi, 1) == 0)
			irq->fd = fd;
		else if (fd >= 0)
			close(fd); /* -ENOSYS or refused: the line op it is */
	}
	vm->irq_used |= 1u << gsi;
	*out = irq;
	return 0;
}

static void vm_irqs_free(struct sqb_vm *vm)
{
	for (unsigned int g = 0; g < SQB_VM_MAX_GSI; g++) {
		struct sqb_irq *irq = &vm->irqs[g];

		if (!(vm->irq_used & (1u << g)) || irq->fd < 0)
			continue;
		if (vm->hv)
			vm->ops->vm_irqfd(vm->hv, irq->fd, g, 0);
		close(irq->fd);
		irq->fd = -1;
	}
	vm->irq_used = 0;
}

/* ---- stop / kick ---- */

/* Caller holds vm->lock.  Kicks only vCPUs that exist (a failed creation
 * leaves some never created). */
static void vm_kick_all_locked(struct sqb_vm *vm)
{
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].hv)
			vm->ops->vcpu_kick(vm->vcpus[i].hv);
}

/* Caller holds vm->lock.  Records the first reason only. */
static void vm_request_stop_locked(struct sqb_vm *vm, enum sqb_vm_stop_reason why, int vcpu,
				   uint64_t detail, uint64_t rip, const char *msg)
{
	if (vm->stop_req)
		return;
	vm->stop_req = 1;
	vm->stop.reason = why;
	vm->stop.vcpu = vcpu;
	vm->stop.detail = detail;
	vm->stop.rip = rip;
	snprintf(vm->stop.message, sizeof(vm->stop.message), "%s", msg);
	vm_kick_all_locked(vm);
	pthread_cond_broadcast(&vm->cond);
	if (why != SQB_VM_STOP_REQUESTED) {
		uint64_t one = 1;
		if (write(vm->event_fd, &one, sizeof(one)) < 0)
			sqb_debug("event_fd write failed");
	}
}

/* ---- device host callbacks (platform services, not the VM) ---- */

static void vm_request_reset(void *opaque)
{
	struct sqb_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	vm_request_stop_locked(vm, SQB_VM_STOP_RESET, -1, 0, 0,
			       "guest requested a reset (i8042 reset line)");
	pthread_mutex_unlock(&vm->lock);
}

/* One non-blocking write: how many bytes the sink took (0 if it is full or
 * gone; a broken sink is not the guest's failure). */
static size_t serial_write(struct sqb_vm *vm, const uint8_t *buf, size_t len)
{
	ssize_t n;

	do
		n = write(vm->serial_fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n > 0 ? (size_t)n : 0;
}

static void serial_flush_locked(struct sqb_vm *vm)
{
	size_t n;

	if (!vm->serial_len)
		return;
	n = serial_write(vm, vm->serial_buf, vm->serial_len);
	memmove(vm->serial_buf, vm->serial_buf + n, vm->serial_len - n);
	vm->serial_len -= n;
}

static void vm_serial_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct sqb_vm *vm = opaque;

	if (!__atomic_load_n(&vm->first_tx_ns, __ATOMIC_RELAXED))
		__atomic_store_n(&vm->first_tx_ns, sqb_now_ns(), __ATOMIC_RELAXED);
	__atomic_add_fetch(&vm->uart_tx_bytes, len, __ATOMIC_RELAXED);
	if (vm->serial_fd < 0)
		return;
	pthread_mutex_lock(&vm->serial_lock);
	/* Firecracker's SerialOut: bytes over the bucket are dropped, counted */
	if (vm->serial_rl && !sqb_vio_tbucket_take(vm->serial_rl, len, sqb_now_ns())) {
		__atomic_add_fetch(&vm->uart_rl_dropped_bytes, len, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&vm->serial_lock);
		return;
	}
	serial_flush_locked(vm);
	if (!vm->serial_len) { /* nothing queued: keep the byte order, try directly */
		size_t n = serial_write(vm, buf, len);
		buf += n;
		len -= n;
	}
	if (len) {
		size_t room = sizeof(vm->serial_buf) - vm->serial_len;
		size_t keep = len < room ? len : room;
		memcpy(vm->serial_buf + vm->serial_len, buf, keep);
		vm->serial_len += keep;
		if (len > keep)
			__atomic_add_fetch(&vm->uart_dropped_bytes, len - keep, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&vm->serial_lock);
}

int sqb_vm_serial_rate_limit(sqb_vm *vm, uint64_t size, uint64_t one_time_burst,
			     uint64_t refill_time_ms)
{
	struct sqb_vio_bucket b = {size, one_time_burst, refill_time_ms};
	sqb_vio_tbucket *nb = NULL, *old;
	int err;

	if (!vm)
		return -EINVAL;
	err = sqb_vio_tbucket_new(&b, sqb_now_ns(), &nb);
	if (err < 0)
		return err;
	pthread_mutex_lock(&vm->serial_lock);
	old = vm->serial_rl;
	vm->serial_rl = nb;
	pthread_mutex_unlock(&vm->serial_lock);
	sqb_vio_tbucket_free(old);
	return 0;
}

void sqb_vm_serial_flush(struct sqb_vm *vm)
{
	if (!vm || vm->serial_fd < 0)
		return;
	pthread_mutex_lock(&vm->serial_lock);
	serial_flush_locked(vm);
	pthread_mutex_unlock(&vm->serial_lock);
}

/* ---- vCPU thread ---- */

/* Handle one exit; returns 0 to keep running or a stop reason. */
static enum sqb_vm_stop_reason vcpu_dispatch(struct sqb_vcpu *vc, struct sqb_hv_exit *ex, char *msg,
					     size_t msglen)
{
	/* read by the API thread for metrics while this vCPU runs */
	__atomic_add_fetch(&vc->exits, 1, __ATOMIC_RELAXED);
	switch (ex->kind) {
	case SQB_HV_EXIT_IO:
		__atomic_add_fetch(&vc->io_exits, 1, __ATOMIC_RELAXED);
		if (ex->u.io.is_write)
			__atomic_add_fetch(&vc->io_out_exits, 1, __ATOMIC_RELAXED);
		for (uint32_t i = 0; i < ex->u.io.count; i++)
			sqb_bus_access(&vc->vm->bus, SQB_BUS_PIO, ex->u.io.port,
				       ex->u.io.data + i * ex->u.io.size, ex->u.io.size,
				       ex->u.io.is_write);
		return SQB_VM_STOP_NONE;
	case SQB_HV_EXIT_MMIO:
		__atomic_add_fetch(&vc->mmio_exits, 1, __ATOMIC_RELAXED);
		if (ex->u.mmio.is_write)
			__atomic_add_fetch(&vc->mmio_write_exits, 1, __ATOMIC_RELAXED);
		if (ex->u.mmio.len > 8)
			ex->u.mmio.len = 8;
		sqb_bus_access(&vc->vm->bus, SQB_BUS_MMIO, ex->u.mmio.gpa, ex->u.mmio.data,
			       ex->u.mmio.len, ex->u.mmio.is_write);
		return SQB_VM_STOP_NONE;
	case SQB_HV_EXIT_HLT:
		snprintf(msg, msglen, "vCPU %u halted with interrupts off", vc->index);
		return SQB_VM_STOP_SHUTDOWN;
	case SQB_HV_EXIT_SHUTDOWN:
		snprintf(msg, msglen, "vCPU %u: guest shutdown (triple fault)", vc->index);
		return SQB_VM_STOP_SHUTDOWN;
	case SQB_HV_EXIT_INTERNAL:
		snprintf(msg, msglen, "vCPU %u: hypervisor internal error %llu (%s)", vc->index,
			 (unsigned long long)ex->detail,
			 vc->vm->ops->exit_internal_name
			     ? vc->vm->ops->exit_internal_name(ex->detail)
			     : "unknown");
		return SQB_VM_STOP_INTERNAL_ERROR;
	case SQB_HV_EXIT_FAIL_ENTRY:
		snprintf(msg, msglen, "vCPU %u: entry failed, hardware reason 0x%llx", vc->index,
			 (unsigned long long)ex->detail);
		return SQB_VM_STOP_FAIL_ENTRY;
	case SQB_HV_EXIT_SYSTEM_EVENT:
		if (ex->detail == SQB_HV_SYSEV_SHUTDOWN || ex->detail == SQB_HV_SYSEV_RESET) {
			snprintf(msg, msglen, "vCPU %u: guest requested %s", vc->index,
				 ex->detail == SQB_HV_SYSEV_RESET ? "a reset" : "power-off");
			return SQB_VM_STOP_RESET; /* orderly, like the i8042 reset line */
		}
		snprintf(msg, msglen, "vCPU %u: hypervisor system event (guest crash?)", vc->index);
		return SQB_VM_STOP_SYSTEM_EVENT;
	default:
		snprintf(msg, msglen, "vCPU %u: unhandled exit reason %llu", vc->index,
			 (unsigned long long)ex->detail);
		return SQB_VM_STOP_UNHANDLED_EXIT;
	}
}

/* arch/x86_64/vcpu.rs kvmclock_ctrl: when a vCPU pauses and after its
 * state is loaded, on its thread; a failure is counted
 * (vcpu.kvmclock_ctrl_fails) and logged, never fatal (a guest without
 * kvmclock gets EINVAL). */
static void vcpu_clock_stopped(struct sqb_vcpu *vc)
{
	int rc;

	if (!vc->vm->ops->vcpu_clock_stopped)
		return;
	rc = vc->vm->ops->vcpu_clock_stopped(vc->hv);
	if (rc < 0) {
		__atomic_add_fetch(&vc->vm->kvmclock_ctrl_fails, 1, __ATOMIC_RELAXED);
		sqb_warn("KVM_KVMCLOCK_CTRL call failed %s (os error %d)", strerror(-rc), -rc);
	}
}

/* Park while the VM is not started or a pause is requested, serving
 * requests meanwhile; returns nonzero when the thread must exit.  Clears
 * the kick under the lock before running (a later pause kicks again). */
static int vcpu_checkpoint(struct sqb_vcpu *vc)
{
	struct sqb_vm *vm = vc->vm;
	int stop = 0, told = 0; /* one KVMCLOCK_CTRL per pause, whatever came between */

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		if (vm->stop_req) {
			stop = 1;
			break;
		}
		if (vc->req_fn) {
			sqb_vcpu_fn fn = vc->req_fn;
			int rc;

			pthread_mutex_unlock(&vm->lock);
			rc = fn(vc, vc->req_arg);
			pthread_mutex_lock(&vm->lock);
			vc->req_fn = NULL;
			vc->req_rc = rc;
			vc->req_done = 1;
			pthread_cond_broadcast(&vm->cond);
			continue;
		}
		if (vm->started && !vm->pause_req)
			break;
		if (!vc->parked) {
			/* vcpu.rs: Running --Pause--> Paused tells the guest */
			if (vm->started && vm->pause_req && !told) {
				told = 1;
				pthread_mutex_unlock(&vm->lock);
				vcpu_clock_stopped(vc);
				pthread_mutex_lock(&vm->lock);
				if (!vm->pause_req || vm->stop_req || vc->req_fn)
					continue; /* look again: things moved meanwhile */
			}
			vc->parked = 1;
			vm->nparked++;
			pthread_cond_broadcast(&vm->cond);
		}
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	if (vc->parked) {
		vc->parked = 0;
		vm->nparked--;
	}
	if (!stop)
		vm->ops->vcpu_clear_kick(vc->hv);
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

static void vcpu_run_loop(struct sqb_vcpu *vc)
{
	struct sqb_vm *vm = vc->vm;
	struct sqb_hv_exit ex;
	char msg[160];

	while (!vcpu_checkpoint(vc)) {
		enum sqb_vm_stop_reason why;
		int rc;

		memset(&ex, 0, sizeof(ex));
		__atomic_store_n(&vc->ran, 1, __ATOMIC_RELEASE);
		rc = vm->ops->vcpu_run(vc->hv, &ex);
		if (rc == -EINTR)
			continue;
		if (rc == -ENOSYS) { /* vcpu.rs: KVM could not emulate an access (arm64) */
			static const char enosys[] = "Received ENOSYS error because KVM failed "
						     "to emulate an instruction.";

			snprintf(msg, sizeof(msg), "vCPU %u: %s", vc->index, enosys);
			sqb_err("%s", enosys);
			why = SQB_VM_STOP_HOST_ERROR;
		} else if (rc < 0) {
			snprintf(msg, sizeof(msg), "vCPU %u: run failed: %s", vc->index,
				 strerror(-rc));
			sqb_err("Failure during vcpu run: %s", strerror(-rc));
			why = SQB_VM_STOP_HOST_ERROR;
		} else {
			why = vcpu_dispatch(vc, &ex, msg, sizeof(msg));
		}
		if (why != SQB_VM_STOP_NONE) {
			uint64_t rip = vm->ops->vcpu_rip(vc->hv);
			pthread_mutex_lock(&vm->lock);
			vm_request_stop_locked(vm, why, (int)vc->index, ex.detail, rip, msg);
			pthread_mutex_unlock(&vm->lock);
		}
	}
}

struct vcpu_start {
	struct sqb_vcpu *vc;
	struct sqb_diag *diag;
};

/* The vCPU is created here, on the thread that runs it, and destroyed
 * here when the VM stops. */
static void *vcpu_thread(void *arg)
{
	struct vcpu_start *st = arg;
	struct sqb_vcpu *vc = st->vc;
	struct sqb_vm *vm = vc->vm;
	struct sqb_hv_vcpu *hv = NULL;
	int rc;

	/* Firecracker's thread name, which tools that pin vCPUs look for
	 * (its test framework's pin_vcpu); then seccomp before the vCPU exists
	 * (docs/security.md); SQB_FAULT=vcpu_create: the last vCPU fails
	 * (partial creation) */
	char name[16];

	snprintf(name, sizeof(name), "fc_vcpu %u", vc->index);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	if ((rc = sqb_confine_thread(SQB_CONFINE_VCPU)) < 0)
		;
	else if (vc->index > 0 && vc->index + 1 == vm->nvcpus && sqb_fault_enabled("vcpu_create"))
		rc = -EIO;
	else
		rc = vm->ops->vcpu_create(&hv, vm->hv, vc->index, st->diag);
	pthread_mutex_lock(&vm->lock);
	vc->hv = rc < 0 ? NULL : hv;
	vc->create_rc = rc;
	vc->created = 1;
	vc->alive = rc == 0;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (rc < 0)
		return NULL; /* st belongs to the creator: not touched again */
	vcpu_run_loop(vc);
	pthread_mutex_lock(&vm->lock);
	vc->alive = 0;
	vc->hv = NULL; /* no kick reaches it from here on */
	vm->nexited++;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm->ops->vcpu_destroy(hv);
	return NULL;
}

/* ---- per-vCPU requests ---- */

int sqb_vcpu_call(struct sqb_vcpu *vc, sqb_vcpu_fn fn, void *arg)
{
	struct sqb_vm *vm = vc->vm;
	int rc;

	pthread_mutex_lock(&vm->lock);
	if (!vc->alive || vm->stop_req || (vm->started && !vm->pause_req)) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	while (vc->alive && (!vc->parked || vc->req_fn))
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (!vc->alive) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	vc->req_fn = fn;
	vc->req_arg = arg;
	vc->req_done = 0;
	pthread_cond_broadcast(&vm->cond);
	/* a stop may end the thread before it takes the request */
	while (!vc->req_done && vc->alive)
		pthread_cond_wait(&vm->cond, &vm->lock);
	rc = vc->req_done ? vc->req_rc : -SQB_ESTATE;
	vc->req_fn = NULL;
	vc->req_done = 0;
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

static int req_set_entry(struct sqb_vcpu *vc, void *arg)
{
	return vc->vm->ops->vcpu_set_entry(vc->hv, arg);
}

int sqb_vcpu_set_entry(struct sqb_vcpu *vc, const struct sqb_arch_entry *entry)
{
	return sqb_vcpu_call(vc, req_set_entry, (void *)entry);
}

static int req_settle(struct sqb_vcpu *vc, void *arg)
{
	struct sqb_diag *diag = arg;
	struct sqb_vm *vm = vc->vm;
	char msg[160];

	vm->ops->vcpu_kick(vc->hv); /* own thread: the flag only */
	for (int tries = 0;; tries++) {
		struct sqb_hv_exit ex;
		int rc;

		memset(&ex, 0, sizeof(ex));
		__atomic_store_n(&vc->ran, 1, __ATOMIC_RELEASE);
		rc = vm->ops->vcpu_run(vc->hv, &ex);
		if (rc == -EINTR)
			return 0;
		if (rc == 0 && tries < 64 &&
		    (ex.kind == SQB_HV_EXIT_IO || ex.kind == SQB_HV_EXIT_MMIO)) {
			vcpu_dispatch(vc, &ex, msg, sizeof(msg));
			continue;
		}
		if (diag) {
			diag->offset = UINT64_MAX;
			snprintf(diag->section, sizeof(diag->section), "vcpu");
			snprintf(diag->reason, sizeof(diag->reason), "vCPU %u did not settle (%s)",
				 vc->index, rc ? strerror(-rc) : "unexpected exit");
		}
		return rc ? rc : -SQB_ESTATE;
	}
}

int sqb_vcpu_settle(struct sqb_vcpu *vc, struct sqb_diag *diag)
{
	return sqb_vcpu_call(vc, req_settle, diag);
}

struct rec_req {
	struct sqb_record *recs;
	const struct sqb_record *crecs;
	unsigned int cap, *n, count;
	struct sqb_diag *diag;
};

static int req_save(struct sqb_vcpu *vc, void *arg)
{
	struct rec_req *r = arg;

	return vc->vm->ops->vcpu_save_records(vc->hv, r->recs, r->cap, r->n);
}

static int req_load(struct sqb_vcpu *vc, void *arg)
{
	struct rec_req *r = arg;

	int rc = vc->vm->ops->vcpu_load_records(vc->hv, r->crecs, r->count, r->diag);

	if (!rc)
		vcpu_clock_stopped(vc); /* arch/x86_64/vcpu.rs restore_state */
	return rc;
}

int sqb_vcpu_save_records(struct sqb_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			  unsigned int *n)
{
	struct rec_req r = {.recs = recs, .cap = cap, .n = n};

	return sqb_vcpu_call(vc, req_save, &r);
}

int sqb_vcpu_load_records(struct sqb_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			  struct sqb_diag *diag)
{
	struct rec_req r = {.crecs = recs, .count = n, .diag = diag};

	return sqb_vcpu_call(vc, req_load, &r);
}

/* ---- creation ---- */

/* One thread per vCPU, each creating its vCPU; in index order, so a
 * failure leaves vCPUs [0, i) alive and parked. */
static int vm_create_vcpus(struct sqb_vm *vm, struct sqb_diag *diag)
{
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		struct sqb_vcpu *vc = &vm->vcpus[i];
		struct vcpu_start st = {vc, diag};
		int err;

		vc->vm = vm;
		vc->index = i;
		err = -pthread_create(&vc->thread, NULL, vcpu_thread, &st);
		if (err < 0)
			return err;
		vc->thread_started = 1;
		pthread_mutex_lock(&vm->lock);
		while (!vc->created)
			pthread_cond_wait(&vm->cond, &vm->lock);
		err = vc->create_rc;
		pthread_mutex_unlock(&vm->lock);
		if (err < 0)
			return err;
	}
	return 0;
}

static int slot_ioeventfd(const struct sqb_mmio_slot_info *slot, uint64_t off, unsigned int len,
			  uint64_t datamatch, int has_match, int fd, int assign)
{
	struct sqb_vm *vm = slot->vm;

	if (!vm->ops->vm_ioeventfd)
		return -ENOSYS;
	if (off >= slot->size || len > slot->size - off)
		return -EINVAL;
	return vm->ops->vm_ioeventfd(vm->hv, slot->base + off, len, 0, datamatch, has_match, fd,
				     assign);
}

static int vm_signal_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct sqb_vm *vm = opaque;

	return vm->ops->vm_signal_msi ? vm->ops->vm_signal_msi(vm->hv, addr, data) : -ENOSYS;
}

int sqb_vm_pci_supported(void)
{
	return SQB_ARCH_HAS_PCI && sqb_hv_backend.vm_signal_msi != NULL;
}

/* --enable-pci: the root before any device, so every virtio device
 * becomes a PCI function (sqb_vm_add_mmio_dev). */
static int vm_add_pci(struct sqb_vm *vm, struct sqb_diag *diag)
{
	struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
	struct sqb_pci_host host = {vm, vm_signal_msi};
	int err;

	if (!vm->ops->vm_signal_msi || !SQB_ARCH_HAS_PCI) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "the PCI transport needs MSI delivery and a PCI layout, which "
				 "this build (%s on this architecture) lacks",
				 vm->ops->name);
		return -SQB_EUNSUPPORTED;
	}
	err = sqb_pci_create(&vm->pci, &vm->bus, &ctx, &host);
	if (err < 0 && diag && !diag->reason[0])
		snprintf(diag->reason, sizeof(diag->reason), "PCI root: %s", sqb_strerror(err));
	return err;
}

/* Run op with the vCPUs parked (they look devices up on the bus without a
 * lock) and the bus open; a VM the user paused stays paused. */
static int vm_with_bus_open(struct sqb_vm *vm, int (*op)(struct sqb_vm *vm, void *arg), void *arg)
{
	int paused_here = 0, err;

	pthread_mutex_lock(&vm->lock);
	err = vm->state == SQB_VM_RUNNING || vm->state == SQB_VM_PAUSED ? 0 : -SQB_ESTATE;
	paused_here = vm->state == SQB_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	/* PATCH /vm's bound: a vCPU stuck in the kernel (an unserved page)
	 * fails the request rather than the API */
	if (!err && paused_here)
		err = sqb_vm_pause_timeout(vm, 30000, NULL, NULL);
	if (err)
		return err;
	vm->sealed = 0;
	err = op(vm, arg);
	vm->sealed = 1;
	if (paused_here)
		sqb_vm_resume(vm);
	return err;
}

struct hotplug_req {
	int (*add)(void *arg, sqb_vm *vm, struct sqb_diag *diag);
	void *arg;
	const char *id;
	struct sqb_diag *diag;
};

static int hotplug_op(struct sqb_vm *vm, void *arg)
{
	struct hotplug_req *r = arg;

	return r->add(r->arg, vm, r->diag);
}

int sqb_vm_hotplug(sqb_vm *vm, int (*add)(void *arg, sqb_vm *vm, struct sqb_diag *diag), void *arg,
		   struct sqb_diag *diag)
{
	struct hotplug_req r = {add, arg, NULL, diag};

	if (!vm->pci)
		return -SQB_EUNSUPPORTED;
	return vm_with_bus_open(vm, hotplug_op, &r);
}

static int unplug_op(struct sqb_vm *vm, void *arg)
{
	struct hotplug_req *r = arg;
	struct sqb_dev *d = sqb_bus_by_id(&vm->bus, r->id);

	if (!d || d->cls != &sqb_dev_classes[SQB_DEVCLS_VIRTIO_PCI])
		return -ENOENT;
	if (sqb_bus_remove(&vm->bus, d) < 0)
		return -ENOENT;
	sqb_dev_free(d); /* its queues' ioeventfds and loop entries go with it */
	return 0;
}

int sqb_vm_unplug(sqb_vm *vm, const char *id)
{
	struct hotplug_req r = {NULL, NULL, id, NULL};

	if (!vm->pci)
		return -SQB_EUNSUPPORTED;
	return vm_with_bus_open(vm, unplug_op, &r);
}

/* Device memory takes memslots from 16 on: RAM has the first ones. */
#define VM_DEVMEM_SLOT0 16u
#define VM_DEVMEM_MAX	8u
#define VM_DEVMEM_ALIGN (2ULL << 20)

int sqb_vm_map_device_mem(struct sqb_vm *vm, uint64_t size, void *host, int read_only,
			  uint64_t *gpa, struct sqb_diag *diag)
{
	uint64_t at = vm->devmem_next ? vm->devmem_next : SQB_ARCH_PMEM_BASE;
	const struct sqb_mem_region *last = &vm->mem.regions[vm->mem.nram - 1];
	int err;

	if (vm->sealed || !size || size % VM_DEVMEM_ALIGN || (uintptr_t)host % 4096)
		return -EINVAL;
	if (!vm->ops->vm_map_device_memory) {
		snprintf(diag->reason, sizeof(diag->reason),
			 "the %s backend cannot map device memory: virtio-pmem is not supported "
			 "on it",
			 vm->ops->name);
		return -ENOTSUP;
	}
	if (vm->ndevmem >= VM_DEVMEM_MAX) {
		snprintf(diag->reason, sizeof(diag->reason),
			 "squib maps at most %u virtio-pmem devices", VM_DEVMEM_MAX);
		return -SQB_ELIMIT;
	}
	/* never over RAM (a guest of more than ~508 GiB), never into virtio-mem's window */
	if (last->gpa + last->size > at || at + size < at || at + size > SQB_ARCH_MEMHP_BASE) {
		snprintf(diag->reason, sizeof(diag->reason),
			 "guest RAM reaches the virtio-pmem area at 0x%llx",
			 (unsigned long long)SQB_ARCH_PMEM_BASE);
		return -ERANGE;
	}
	err = vm->ops->vm_map_device_memory(vm->hv, VM_DEVMEM_SLOT0 + vm->ndevmem, at, size, host,
					    read_only);
	if (err < 0) {
		snprintf(diag->reason, sizeof(diag->reason), "Cannot set the memory regions: %s%s",
			 sqb_strerror(err),
			 err == -SQB_EUNSUPPORTED ? " (no read-only memory slots on this host)"
						  : "");
		return err;
	}
	vm->ndevmem++;
	vm->devmem_next = at + size;
	*gpa = at;
	return 0;
}

/* virtio-mem's slots take memslots from 32 on, one per slot index; while
 * Diff tracking runs they are dirty-logged as RAM's (KVM: vm_map_memory,
 * which records only RAM's first slots). */
#define VM_MEMHP_SLOT0 SQB_VM_MEMHP_SLOT0

int sqb_vm_map_hotplug_slot(struct sqb_vm *vm, unsigned int index, uint64_t gpa, uint64_t size,
			    void *host)
{
	if (!vm->ops->vm_map_device_memory)
		return -ENOTSUP;
	if (index > UINT16_MAX || gpa < SQB_ARCH_MEMHP_BASE ||
	    gpa - SQB_ARCH_MEMHP_BASE + size > SQB_ARCH_MEMHP_SIZE)
		return -EINVAL;
	if (__atomic_load_n(&vm->hp_dirty_log, __ATOMIC_ACQUIRE) && vm->ops->vm_map_memory)
		return vm->ops->vm_map_memory(vm->hv, VM_MEMHP_SLOT0 + index, gpa, size, host, 1);
	return vm->ops->vm_map_device_memory(vm->hv, VM_MEMHP_SLOT0 + index, gpa, size, host, 0);
}

int sqb_vm_add_mmio_dev(struct sqb_vm *vm, const struct sqb_mmio_dev_ops *ops, void *opaque,
			struct sqb_mmio_slot_info *out, struct sqb_diag *diag)
{
	struct sqb_mmio_slot_cfg cfg = {ops, opaque, {0}, SQB_ARCH_VIRTIO_MMIO_BASE};
	struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
	struct sqb_dev *d;
	int err;

	if (!ops || !ops->id || !ops->access)
		return -EINVAL;
	if (vm->sealed)
		return -SQB_ESTATE;
	if (vm->pci) { /* --enable-pci: a PCI function instead of a slot */
		cfg.slot = (struct sqb_mmio_slot_info){
		    .mem = &vm->mem, .loop = vm->loop, .ioeventfd = slot_ioeventfd, .vm = vm};
		err = sqb_pci_add_virtio(vm->pci, &vm->bus, &ctx, ops, opaque, &cfg.slot, diag);
		if (err < 0 && diag && !diag->reason[0])
			snprintf(diag->reason, sizeof(diag->reason), "device '%s': %s", ops->id,
				 sqb_strerror(err));
		if (!err && out)
			*out = cfg.slot;
		return err;
	}
	if (vm->nmmio >= SQB_ARCH_VIRTIO_MMIO_SLOTS) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "no free virtio-mmio slot (%d at most)",
				 SQB_ARCH_VIRTIO_MMIO_SLOTS);
		return -SQB_ELIMIT;
	}
	err = sqb_vm_irq_get(vm, 0, &ctx.irq);
	if (err < 0) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Could not allocate GSI: The requested resource is not "
				 "available. (no free interrupt line for device '%s')",
				 ops->id);
		return err;
	}
	cfg.slot = (struct sqb_mmio_slot_info){
	    .base = SQB_ARCH_VIRTIO_MMIO_BASE + (uint64_t)SQB_MMIO_SLOT_SIZE * vm->nmmio,
	    .size = SQB_MMIO_SLOT_SIZE,
	    .gsi = ctx.irq->gsi,
	    .irq = ctx.irq,
	    .mem = &vm->mem,
	    .loop = vm->loop,
	    .ioeventfd = slot_ioeventfd,
	    .vm = vm,
	};
	err = sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_MMIO_SLOT], ops->id, cfg.slot.base,
			     &ctx, &cfg);
	if (!err && (err = sqb_bus_add(&vm->bus, d)) < 0)
		sqb_dev_free(d);
	if (err < 0) {
		if (diag && !diag->reason[0])
			snprintf(diag->reason, sizeof(diag->reason), "device '%s': %s", ops->id,
				 sqb_strerror(err));
		return err; /* the GSI stays taken: harmless, the VM is being torn down */
	}
	vm->nmmio++;
	if (out)
		*out = cfg.slot;
	return 0;
}

int sqb_vm_add_boot_timer(sqb_vm *vm, void (*fire)(void *arg), void *arg, struct sqb_diag *diag)
{
	struct sqb_boot_timer_cfg cfg = {fire, arg};
	struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
	struct sqb_dev *d;
	int err;

	if (!fire)
		return -EINVAL;
	if (vm->sealed)
		return -SQB_ESTATE;
	err = sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_BOOT_TIMER], "boot-timer",
			     SQB_ARCH_BOOT_TIMER_ADDR, &ctx, &cfg);
	if (!err && (err = sqb_bus_add(&vm->bus, d)) < 0)
		sqb_dev_free(d);
	if (err < 0 && diag && !diag->reason[0])
		snprintf(diag->reason, sizeof(diag->reason), "boot timer: %s", sqb_strerror(err));
	return err;
}

static int vm_cpu_template(struct sqb_vm *vm, const struct sqb_cpu_template *t,
			   struct sqb_diag *diag)
{
	if (vm->ops->vm_cpu_template)
		return vm->ops->vm_cpu_template(vm->hv, t, diag);
	if (!t->ncaps && !t->ncpuid && !t->nmsrs)
		return 0;
	if (diag)
		snprintf(diag->reason, sizeof(diag->reason),
			 "custom CPU templates are not supported by the %s backend", vm->ops->name);
	return -SQB_EUNSUPPORTED;
}

int sqb_vm_create(sqb_vm **out, const struct sqb_vm_config *cfg, struct sqb_diag *diag)
{
	struct sqb_vm *vm;
	int err;

	*out = NULL;
	if (!cfg || cfg->version != SQB_VM_CONFIG_VERSION || cfg->vcpu_count < 1 ||
	    cfg->vcpu_count > SQB_VM_MAX_VCPUS || cfg->mem_size_mib < 1 ||
	    cfg->mem_size_mib > (1ULL << 20) || (unsigned int)cfg->huge_pages > SQB_VM_HUGE_2M ||
	    (cfg->huge_pages == SQB_VM_HUGE_2M && (cfg->mem_size_mib & 1)))
		return -EINVAL;
	vm = sqb_page_zalloc(sizeof(*vm)); /* 12 KiB, 32 vCPU slots, serial ring */
	if (!vm)
		return -ENOMEM;
	vm->ops = &sqb_hv_backend;
	vm->nvcpus = cfg->vcpu_count;
	vm->track_dirty = cfg->track_dirty_pages != 0;
	vm->mem.fd = -1;
	vm->serial_fd = cfg->serial_out_fd;
	pthread_mutex_init(&vm->serial_lock, NULL);
	if (vm->serial_fd >= 0) {
		/* A sink nobody drains must not stop a vCPU in write(): as
		 * Firecracker does for stdout, the descriptor becomes non-blocking. */
		int fl = fcntl(vm->serial_fd, F_GETFL);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(vm->serial_fd, F_SETFL, fl | O_NONBLOCK);
	}
	vm->stop.vcpu = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	pthread_mutex_init(&vm->irq_lock, NULL);
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->event_fd < 0) {
		err = -errno;
		goto err;
	}
	vm->dev_host = (struct sqb_dev_host){vm, vm_request_reset, vm_serial_out};
	err = vm->ops->vm_create(&vm->hv, vm->nvcpus, diag);
	if (err < 0)
		goto err;
	if (vm->ops->vm_set_smt)
		vm->ops->vm_set_smt(vm->hv, cfg->smt);
	/* Before any vCPU exists: each gets the templated CPUID and MSRs on
	 * its own thread when it is created. */
	if (cfg->cpu_template && (err = vm_cpu_template(vm, cfg->cpu_template, diag)) < 0)
		goto err;
	err = sqb_mem_create(&vm->mem, cfg->mem_size_mib << 20, cfg->huge_pages, diag);
	vm->huge_pages = cfg->huge_pages;
	if (!err && sqb_fault_enabled("vm_memory"))
		err = -EIO; /* SQB_FAULT=vm_memory: fail before any vCPU exists */
	if (err < 0)
		goto err;
	for (unsigned int i = 0; i < vm->mem.nram; i++) {
		struct sqb_mem_region *r = &vm->mem.regions[i];
		err = vm->ops->vm_map_memory(vm->hv, i, r->gpa, r->size, r->host,
					     cfg->track_dirty_pages);
		if (err < 0)
			goto err;
	}
	err = vm->ops->vm_init_platform(vm->hv, diag);
	if (err < 0)
		goto err;
	err = sqb_evloop_create(&vm->loop, "squib-evloop");
	if (!err)
		err = sqb_arch_add_platform_devices(vm);
	if (!err && cfg->pci)
		err = vm_add_pci(vm, diag);
	if (!err && vm->pci && cfg->npci_place)
		err = sqb_pci_place(vm->pci, cfg->pci_place, cfg->npci_place);
	if (!err && cfg->add_devices)
		err = cfg->add_devices(cfg->add_devices_arg, vm, diag);
	vm->sealed = 1;
	if (!err)
		err = vm_create_vcpus(vm, diag);
	if (err < 0)
		goto err;
	vm->state = SQB_VM_CREATED;
	/* else a snapshot restore sets the vCPUs */
	if (cfg->kernel_path && (err = sqb_arch_boot_load(vm, cfg, diag)) < 0)
		goto err;
	*out = vm;
	return 0;
err:
	sqb_vm_free(vm);
	return err;
}

int sqb_vm_start(sqb_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != SQB_VM_CREATED || vm->stop_req) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	vm->start_ns = sqb_now_ns();
	vm->started = 1;
	vm->state = SQB_VM_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Wait for the rendezvous; 0 when every live vCPU is parked, -SQB_ESTATE on
 * a stop, -ETIMEDOUT / -EINTR when the bound passes or cancel() says so.
 * Caller holds vm->lock. */
static int pause_wait_locked(struct sqb_vm *vm, unsigned int timeout_ms, int (*cancel)(void *),
			     void *arg)
{
	struct timespec end;
	uint64_t deadline = sqb_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		uint64_t now, slice;

		if (vm->nparked >= vm->nvcpus - vm->nexited)
			return 0;
		if (vm->stop_req)
			return -SQB_ESTATE;
		if (!timeout_ms && !cancel) {
			pthread_cond_wait(&vm->cond, &vm->lock);
			continue;
		}
		now = sqb_now_ns();
		if (timeout_ms && now >= deadline)
			return -ETIMEDOUT;
		if (cancel && cancel(arg))
			return -EINTR;
		/* slices of 50 ms at most, so cancel() is asked often enough */
		slice = timeout_ms && deadline - now < 50000000ULL ? deadline - now : 50000000ULL;
		clock_gettime(CLOCK_REALTIME, &end);
		end.tv_nsec += (long)slice;
		end.tv_sec += end.tv_nsec / 1000000000L;
		end.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&vm->cond, &vm->lock, &end);
	}
}

int sqb_vm_pause_timeout(sqb_vm *vm, unsigned int timeout_ms, int (*cancel)(void *), void *arg)
{
	int err;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != SQB_VM_RUNNING || vm->stop_req) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	vm->pause_req = 1;
	vm_kick_all_locked(vm);
	err = pause_wait_locked(vm, timeout_ms, cancel, arg);
	if (err) {
		/* a vCPU that never reached the rendezvous (e.g. waiting in the
		 * kernel for a page nobody serves), or a stop: give up, the
		 * parked ones run on, and the VM stays Running as Firecracker's
		 * does */
		vm->pause_req = 0;
		pthread_cond_broadcast(&vm->cond);
	} else {
		vm->state = SQB_VM_PAUSED;
	}
	pthread_mutex_unlock(&vm->lock);
	return err;
}

int sqb_vm_pause(sqb_vm *vm)
{
	return sqb_vm_pause_timeout(vm, 0, NULL, NULL);
}

int sqb_vm_resume(sqb_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != SQB_VM_PAUSED) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	vm->pause_req = 0;
	vm->state = SQB_VM_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void sqb_vm_fail(struct sqb_vm *vm, enum sqb_vm_stop_reason why, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	vm_request_stop_locked(vm, why, -1, 0, 0, msg);
	pthread_mutex_unlock(&vm->lock);
}

int sqb_vm_stop(sqb_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm_request_stop_locked(vm, SQB_VM_STOP_REQUESTED, -1, 0, 0, "stopped by the VMM");
	pthread_mutex_unlock(&vm->lock);
	sqb_snap_uffd_release(vm);    /* vCPUs waiting on a page server that never serves */
	sqb_snap_restore_release(vm); /* ... or on a lazy restore that failed */
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].thread_started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].thread_started = 0;
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->state = SQB_VM_STOPPED;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Undo in reverse: vCPU threads (they destroy their own vCPUs), devices
 * (they leave the event loop), the loop, snapshot state, the VM. */
void sqb_vm_free(sqb_vm *vm)
{
	if (!vm)
		return;
	sqb_vm_stop(vm);
	sqb_bus_destroy(&vm->bus);
	sqb_pci_free(vm->pci); /* after the devices that point at it */
	vm->pci = NULL;
	sqb_evloop_free(vm->loop);
	vm->loop = NULL;
	sqb_snapstate_free(vm);
	vm_irqs_free(vm);
	if (vm->hv)
		vm->ops->vm_destroy(vm->hv);
	sqb_mem_destroy(&vm->mem);
	sqb_vm_serial_flush(vm); /* last chance, still without blocking */
	pthread_mutex_destroy(&vm->serial_lock);
	sqb_vio_tbucket_free(vm->serial_rl);
	if (vm->event_fd >= 0)
		close(vm->event_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->irq_lock);
	sqb_page_free(vm, sizeof(*vm));
}

enum sqb_vm_state sqb_vm_get_state(sqb_vm *vm)
{
	enum sqb_vm_state st;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return st;
}

int sqb_vm_event_fd(const sqb_vm *vm)
{
	return vm->event_fd;
}

void sqb_vm_get_stop_info(sqb_vm *vm, struct sqb_vm_stop_info *out)
{
	pthread_mutex_lock(&vm->lock);
	*out = vm->stop;
	pthread_mutex_unlock(&vm->lock);
}

void sqb_vm_get_stats(sqb_vm *vm, struct sqb_vm_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&vm->lock);
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		out->exits += __atomic_load_n(&vm->vcpus[i].exits, __ATOMIC_RELAXED);
		out->io_exits += __atomic_load_n(&vm->vcpus[i].io_exits, __ATOMIC_RELAXED);
		out->mmio_exits += __atomic_load_n(&vm->vcpus[i].mmio_exits, __ATOMIC_RELAXED);
		out->io_out_exits += __atomic_load_n(&vm->vcpus[i].io_out_exits, __ATOMIC_RELAXED);
		out->mmio_write_exits +=
		    __atomic_load_n(&vm->vcpus[i].mmio_write_exits, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&vm->lock);
	out->uart_tx_bytes = __atomic_load_n(&vm->uart_tx_bytes, __ATOMIC_RELAXED);
	out->guest_mem_bytes = vm->mem.size;
	out->start_ns = vm->start_ns;
	out->first_tx_ns = __atomic_load_n(&vm->first_tx_ns, __ATOMIC_RELAXED);
	out->uart_dropped_bytes = __atomic_load_n(&vm->uart_dropped_bytes, __ATOMIC_RELAXED);
	out->uart_rl_dropped_bytes = __atomic_load_n(&vm->uart_rl_dropped_bytes, __ATOMIC_RELAXED);
	out->kvmclock_ctrl_fails = __atomic_load_n(&vm->kvmclock_ctrl_fails, __ATOMIC_RELAXED);
}

int sqb_vm_serial_input(sqb_vm *vm, const void *buf, size_t len)
{
	if (!vm->uart) /* arm64: the PL011 is not wired to the API yet */
		return -ENOTSUP;
	return (int)sqb_uart_input(vm->uart, buf, len);
}

int sqb_vm_send_ctrl_alt_del(sqb_vm *vm)
{
	if (sqb_vm_get_state(vm) != SQB_VM_RUNNING)
		return -SQB_ESTATE;
	if (!vm->i8042) /* arm64 has no i8042 */
		return -ENOTSUP;
	return sqb_i8042_ctrl_alt_del(vm->i8042);
}

const char *sqb_vm_state_name(enum sqb_vm_state st)
{
	static const char *const n[] = {"Not started", "Running", "Paused", "Stopped"};
	return (unsigned int)st < 4 ? n[st] : "Unknown";
}

const char *sqb_vm_huge_name(enum sqb_vm_huge_pages h)
{
	static const char *const n[] = {"None", "Transparent", "2M"};
	return (unsigned int)h < 3 ? n[h] : "Unknown";
}

int sqb_vm_huge_parse(const char *s, enum sqb_vm_huge_pages *out)
{
	for (unsigned int i = 0; s && i < 3; i++)
		if (!strcmp(s, sqb_vm_huge_name((enum sqb_vm_huge_pages)i))) {
			*out = (enum sqb_vm_huge_pages)i;
			return 0;
		}
	return -EINVAL;
}

const char *sqb_vm_stop_reason_name(enum sqb_vm_stop_reason r)
{
	static const char *const n[] = {"none",		  "reset",	    "requested",
					"shutdown",	  "internal-error", "fail-entry",
					"unhandled-exit", "system-event",   "host-error"};
	return (unsigned int)r < sizeof(n) / sizeof(n[0]) ? n[r] : "unknown";
}

const char *sqb_runtime_backend_name(void)
{
	return sqb_hv_backend.name;
}

void sqb_vm_host_warm(void)
{
	if (sqb_hv_backend.host_probe)
		sqb_hv_backend.host_probe();
}
