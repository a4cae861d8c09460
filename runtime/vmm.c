/* The VMM core: VM creation, vCPU threads, exit dispatch, and the
 * pause/resume rendezvous (every vCPU parked at a clean exit boundary, the
 * same point a snapshot will capture).  No global VM state: all lives in
 * struct sqb_vm, so several VMs can share a process. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vmm_priv.h"

#define SQB_KICK_SIGNAL SIGUSR2

uint64_t sqb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

static void install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SQB_KICK_SIGNAL, &sa, NULL); /* idempotent, no SA_RESTART */
}

/* ---- device host callbacks ---- */

static void vm_irq_pulse(void *opaque, unsigned int irq)
{
	struct sqb_vm *vm = opaque;

	/* two devices' threads pulsing one line must give two edges, not one */
	pthread_mutex_lock(&vm->irq_lock);
	vm->ops->vm_irq_line(vm->hv, irq, 1);
	vm->ops->vm_irq_line(vm->hv, irq, 0);
	pthread_mutex_unlock(&vm->irq_lock);
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
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		vm->ops->vcpu_set_kick(vm->vcpus[i].hv, 1);
		if (vm->vcpus[i].thread_started &&
		    !pthread_equal(vm->vcpus[i].thread, pthread_self()))
			pthread_kill(vm->vcpus[i].thread, SQB_KICK_SIGNAL);
	}
	pthread_cond_broadcast(&vm->cond);
	if (why != SQB_VM_STOP_REQUESTED) {
		uint64_t one = 1;
		if (write(vm->event_fd, &one, sizeof(one)) < 0)
			sqb_debug("event_fd write failed");
	}
}

static void vm_request_reset(void *opaque)
{
	struct sqb_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	vm_request_stop_locked(vm, SQB_VM_STOP_RESET, -1, 0, 0,
			       "guest requested a reset (i8042 reset line)");
	pthread_mutex_unlock(&vm->lock);
}

static void vm_serial_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct sqb_vm *vm = opaque;

	if (!vm->first_tx_ns)
		__atomic_store_n(&vm->first_tx_ns, sqb_now_ns(), __ATOMIC_RELAXED);
	__atomic_add_fetch(&vm->uart_tx_bytes, len, __ATOMIC_RELAXED);
	if (vm->serial_fd >= 0) {
		ssize_t n;
		do
			n = write(vm->serial_fd, buf, len);
		while (n < 0 && errno == EINTR);
	}
}

/* ---- vCPU thread ---- */

/* KVM's internal-error sub-codes (the hypervisor could not go on). */
static const char *internal_error_name(uint64_t sub)
{
	switch (sub) {
	case 1:
		return "instruction emulation failed";
	case 2:
		return "exception while delivering an exception (triple-fault class)";
	case 3:
		return "event delivery failed";
	default:
		return "unknown";
	}
}

/* Handle one exit; returns 0 to keep running or a stop reason. */
static enum sqb_vm_stop_reason vcpu_dispatch(struct sqb_vcpu *vc, struct sqb_hv_exit *ex, char *msg,
					     size_t msglen)
{
	vc->exits++;
	switch (ex->kind) {
	case SQB_HV_EXIT_IO:
		vc->io_exits++;
		for (uint32_t i = 0; i < ex->u.io.count; i++)
			sqb_bus_access(&vc->vm->devs, SQB_BUS_PIO, ex->u.io.port,
				       ex->u.io.data + i * ex->u.io.size, ex->u.io.size,
				       ex->u.io.is_write);
		return SQB_VM_STOP_NONE;
	case SQB_HV_EXIT_MMIO:
		vc->mmio_exits++;
		if (ex->u.mmio.len > 8)
			ex->u.mmio.len = 8;
		sqb_bus_access(&vc->vm->devs, SQB_BUS_MMIO, ex->u.mmio.gpa, ex->u.mmio.data,
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
			 (unsigned long long)ex->detail, internal_error_name(ex->detail));
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

/* Park at the rendezvous while a pause is requested; returns nonzero when
 * the thread must exit.  Clears the kick under the lock before running. */
static int vcpu_checkpoint(struct sqb_vcpu *vc)
{
	struct sqb_vm *vm = vc->vm;
	int stop;

	pthread_mutex_lock(&vm->lock);
	while (vm->pause_req && !vm->stop_req) {
		if (!vc->parked) {
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
	stop = vm->stop_req;
	if (!stop)
		vm->ops->vcpu_set_kick(vc->hv, 0);
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

static void *vcpu_thread(void *arg)
{
	struct sqb_vcpu *vc = arg;
	struct sqb_vm *vm = vc->vm;
	struct sqb_hv_exit ex;
	char msg[160];

	while (!vcpu_checkpoint(vc)) {
		enum sqb_vm_stop_reason why;
		int rc;

		memset(&ex, 0, sizeof(ex));
		rc = vm->ops->vcpu_run(vc->hv, &ex);

		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			snprintf(msg, sizeof(msg), "vCPU %u: run failed: %s", vc->index,
				 strerror(-rc));
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
	pthread_mutex_lock(&vm->lock);
	vm->nexited++;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

/* ---- public API ---- */

static int vm_create_vcpus(struct sqb_vm *vm, const struct sqb_vm_config *cfg,
			   struct sqb_diag *diag)
{
	struct sqb_hv_entry entry;

	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		vm->vcpus[i].vm = vm;
		vm->vcpus[i].index = i;
		FORWARD_IF_ERROR(vm->ops->vcpu_create(&vm->vcpus[i].hv, vm->hv, i, diag));
	}
	if (!cfg->kernel_path)
		return 0; /* restore path: state comes from a snapshot */
	FORWARD_IF_ERROR(sqb_vm_boot_load(vm, cfg, &entry, diag));
	/* Secondary vCPUs wait for INIT/SIPI in the in-kernel LAPIC. */
	return vm->ops->vcpu_set_entry(vm->vcpus[0].hv, &entry);
}

int sqb_vm_create(sqb_vm **out, const struct sqb_vm_config *cfg, struct sqb_diag *diag)
{
	struct sqb_vm *vm;
	int err;

	*out = NULL;
	if (!cfg || cfg->version != SQB_VM_CONFIG_VERSION || cfg->vcpu_count < 1 ||
	    cfg->vcpu_count > SQB_VM_MAX_VCPUS || cfg->mem_size_mib < 1 ||
	    cfg->mem_size_mib > (1ULL << 20) || (unsigned int)cfg->huge_pages > SQB_VM_HUGE_THP)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->ops = &sqb_hv_backend;
	vm->nvcpus = cfg->vcpu_count;
	vm->mem.fd = -1;
	vm->serial_fd = cfg->serial_out_fd;
	vm->stop.vcpu = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	pthread_mutex_init(&vm->irq_lock, NULL);
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->event_fd < 0) {
		err = -errno;
		goto err;
	}
	vm->dev_host = (struct sqb_dev_host){vm, vm_irq_pulse, vm_request_reset, vm_serial_out};
	sqb_devices_init(&vm->devs, &vm->dev_host);
	err = vm->ops->vm_create(&vm->hv, vm->nvcpus, diag);
	if (err < 0)
		goto err;
	err = sqb_mem_create(&vm->mem, cfg->mem_size_mib << 20, cfg->huge_pages == SQB_VM_HUGE_THP);
	if (err < 0)
		goto err;
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct sqb_mem_region *r = &vm->mem.regions[i];
		err = vm->ops->vm_map_memory(vm->hv, i, r->gpa, r->size, r->host,
					     cfg->track_dirty_pages);
		if (err < 0)
			goto err;
	}
	err = vm->ops->vm_init_platform(vm->hv, diag);
	if (err < 0)
		goto err;
	err = vm_create_vcpus(vm, cfg, diag);
	if (err < 0)
		goto err;
	install_kick_handler();
	vm->state = SQB_VM_CREATED;
	*out = vm;
	return 0;
err:
	sqb_vm_free(vm);
	return err;
}

int sqb_vm_start(sqb_vm *vm)
{
	int err = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != SQB_VM_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		return -SQB_ESTATE;
	}
	vm->start_ns = sqb_now_ns();
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		err = -pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (err < 0)
			break;
		vm->vcpus[i].thread_started = 1;
	}
	vm->state = SQB_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (err < 0)
		sqb_vm_stop(vm);
	return err;
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
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		vm->ops->vcpu_set_kick(vm->vcpus[i].hv, 1);
		pthread_kill(vm->vcpus[i].thread, SQB_KICK_SIGNAL);
	}
	err = pause_wait_locked(vm, timeout_ms, cancel, arg);
	if (err) {
		/* a vCPU that never reached the rendezvous (e.g. waiting in the
		 * kernel for a page nobody serves): give up, the parked ones
		 * run on, and the VM stays Running as Firecracker's does */
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
	sqb_snap_uffd_release(vm); /* vCPUs waiting on a page server that never serves */
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

void sqb_vm_free(sqb_vm *vm)
{
	if (!vm)
		return;
	if (vm->hv)
		sqb_vm_stop(vm);
	sqb_snapstate_free(vm);
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].hv)
			vm->ops->vcpu_destroy(vm->vcpus[i].hv);
	if (vm->hv)
		vm->ops->vm_destroy(vm->hv);
	sqb_mem_destroy(&vm->mem);
	sqb_devices_destroy(&vm->devs);
	if (vm->event_fd >= 0)
		close(vm->event_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->irq_lock);
	free(vm);
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
		out->exits += vm->vcpus[i].exits;
		out->io_exits += vm->vcpus[i].io_exits;
		out->mmio_exits += vm->vcpus[i].mmio_exits;
	}
	pthread_mutex_unlock(&vm->lock);
	out->uart_tx_bytes = __atomic_load_n(&vm->uart_tx_bytes, __ATOMIC_RELAXED);
	out->guest_mem_bytes = vm->mem.size;
	out->start_ns = vm->start_ns;
	out->first_tx_ns = __atomic_load_n(&vm->first_tx_ns, __ATOMIC_RELAXED);
}

int sqb_vm_serial_input(sqb_vm *vm, const void *buf, size_t len)
{
	return (int)sqb_uart_input(&vm->devs.uart, buf, len);
}

int sqb_vm_send_ctrl_alt_del(sqb_vm *vm)
{
	if (sqb_vm_get_state(vm) != SQB_VM_RUNNING)
		return -SQB_ESTATE;
	return sqb_i8042_ctrl_alt_del(&vm->devs.i8042);
}

const char *sqb_vm_state_name(enum sqb_vm_state st)
{
	static const char *const n[] = {"Not started", "Running", "Paused", "Stopped"};
	return (unsigned int)st < 4 ? n[st] : "Unknown";
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
