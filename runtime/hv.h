/* Hypervisor backend interface (private to runtime/).
 *
 *   vmm.c / devices ──> struct sqb_hv_ops ──> kvm/kvm_backend.c (Linux KVM)
 *                                        └──> hvf/ (later, same table)
 *
 * Nothing above this table names the hypervisor.  vCPU and VM state leave
 * the backend only as snapfmt records (format.md section 8).  Every vcpu_*
 * op except vcpu_kick runs on that vCPU's own thread (Apple's hypervisor
 * demands it; vmm.c sends requests to a parked vCPU).  Optional ops return
 * -ENOSYS where the hypervisor has no such thing: irqfd falls back to
 * vm_irq_line, ioeventfd to MMIO exits.
 */
#ifndef SQB_RUNTIME_HV_H
#define SQB_RUNTIME_HV_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

struct sqb_cpu_template; /* squib/runtime.h */

struct sqb_hv_vm;
struct sqb_hv_vcpu;
struct sqb_record;     /* squib/snapfmt.h */
struct sqb_arch_entry; /* arch/<arch>/arch_entry.h: how the boot vCPU enters */
struct sqb_dirty_opts; /* squib/dirty.h */
struct sqb_dirty;
struct sqb_restore; /* squib/restore.h */

enum sqb_hv_exit_kind {
	SQB_HV_EXIT_IO = 1,
	SQB_HV_EXIT_MMIO,
	SQB_HV_EXIT_HLT,
	SQB_HV_EXIT_SHUTDOWN, /* triple fault */
	SQB_HV_EXIT_INTERNAL, /* emulation failure */
	SQB_HV_EXIT_FAIL_ENTRY,
	SQB_HV_EXIT_SYSTEM_EVENT, /* detail: SQB_HV_SYSEV_* */
	SQB_HV_EXIT_UNKNOWN,
};

/* System events, backend-neutral (the backend maps its own codes). */
#define SQB_HV_SYSEV_SHUTDOWN 1 /* the guest powered off */
#define SQB_HV_SYSEV_RESET    2 /* the guest asked for a reset */
#define SQB_HV_SYSEV_OTHER    3 /* anything else (crash, ...) */

struct sqb_hv_exit {
	enum sqb_hv_exit_kind kind;
	uint64_t detail; /* backend code: suberror, hardware reason or raw reason */
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2 or 4 */
			uint8_t is_write;
			uint32_t count; /* > 1 for rep ins/outs */
			uint8_t *data;	/* count * size bytes, in the run area */
		} io;
		struct {
			uint64_t gpa;
			uint8_t *data;
			uint32_t len;
			uint8_t is_write;
		} mmio;
	} u;
};

/* vm_load_options: advance the guest's clock by the host wall-clock time
 * that passed since the save (Firecracker's clock_realtime; format.md [F-126]). */
#define SQB_HV_LOAD_CLOCK_REALTIME 1u

struct sqb_hv_ops {
	const char *name;
	unsigned int snap_arch, snap_hv; /* snapfmt enum sqb_arch / sqb_hv of its records */
	int (*vm_create)(struct sqb_hv_vm **out, unsigned int nvcpus, struct sqb_diag *diag);
	/* Ask the host now what every VM of this process will ask it (KVM's
	 * supported CPUID, the host's CPUID, the MSR list; kept per process):
	 * a plain squib once its API socket listens, so the first load or
	 * InstanceStart does not wait for it (sqb_vm_host_warm), and a fleet
	 * zygote before it forks, so its members inherit the answers
	 * (docs/fleet.md "Zygote").  Best effort: a failure is left for
	 * vm_create to meet and report; NULL: nothing to ask. */
	void (*host_probe)(void);
	/* A custom CPU template (squib/runtime.h) for the vCPUs not yet
	 * created: checked and folded into the per-VM CPUID / MSR set-up.
	 * NULL: the backend has none (a non-empty template is refused). */
	int (*vm_cpu_template)(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			       struct sqb_diag *diag);
	/* machine-config smt for the vCPUs not yet created: their CPUID shows
	 * two threads per core (x86 KVM).  NULL: the backend ignores it. */
	void (*vm_set_smt)(struct sqb_hv_vm *vm, int smt);
	void (*vm_destroy)(struct sqb_hv_vm *vm);
	/* Interrupt controllers and timers; after vm_map_memory, before vCPUs. */
	int (*vm_init_platform)(struct sqb_hv_vm *vm, struct sqb_diag *diag);
	/* Map host memory [host, host+size) at guest-physical gpa in a slot. */
	int (*vm_map_memory)(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			     void *host, int track_dirty);
	/* Drive an interrupt line of the in-kernel irqchip. */
	int (*vm_irq_line)(struct sqb_hv_vm *vm, unsigned int irq, int level);
	/* An eventfd whose write pulses gsi (edge) in the in-kernel irqchip;
	 * assign 0 removes it.  -ENOSYS: use vm_irq_line. */
	int (*vm_irqfd)(struct sqb_hv_vm *vm, int fd, unsigned int gsi, int assign);
	/* An eventfd signalled (and the guest resumed at once) when the guest
	 * writes len bytes at addr (MMIO, or a port if is_pio), equal to
	 * datamatch if has_match.  -ENOSYS: the write exits as usual. */
	int (*vm_ioeventfd)(struct sqb_hv_vm *vm, uint64_t addr, unsigned int len, int is_pio,
			    uint64_t datamatch, int has_match, int fd, int assign);
	/* Deliver one message-signalled interrupt (address, data) now, from
	 * any thread (KVM_SIGNAL_MSI).  NULL: no MSI (no PCI transport). */
	int (*vm_signal_msi)(struct sqb_hv_vm *vm, uint64_t addr, uint32_t data);

	/* Create vCPU index (APIC ID = index) with filtered CPUID and base MSRs,
	 * on the thread that will run it. */
	int (*vcpu_create)(struct sqb_hv_vcpu **out, struct sqb_hv_vm *vm, unsigned int index,
			   struct sqb_diag *diag);
	void (*vcpu_destroy)(struct sqb_hv_vcpu *vcpu);
	int (*vcpu_set_entry)(struct sqb_hv_vcpu *vcpu, const struct sqb_arch_entry *entry);
	/* Run until an exit the VMM must handle.  Returns 0 with *exit filled,
	 * -EINTR when kicked, other -errno on failure. */
	int (*vcpu_run)(struct sqb_hv_vcpu *vcpu, struct sqb_hv_exit *exit);
	/* From any thread: make the current (or next) run of this vCPU return
	 * -EINTR promptly (KVM: immediate_exit + a signal to the thread that
	 * created the vCPU; the backend installs its handler once). */
	void (*vcpu_kick)(struct sqb_hv_vcpu *vcpu);
	/* On the vCPU thread, before running again: forget a past kick. */
	void (*vcpu_clear_kick)(struct sqb_hv_vcpu *vcpu);
	/* On the vCPU thread; NULL where the hypervisor has no such call: tell
	 * the guest its vCPU was stopped (x86 KVM: KVM_KVMCLOCK_CTRL, so the
	 * guest's soft-lockup and RCU-stall watchdogs do not count the pause).
	 * 0 or -errno (-EINVAL: the guest has not enabled kvmclock). */
	int (*vcpu_clock_stopped)(struct sqb_hv_vcpu *vcpu);
	uint64_t (*vcpu_rip)(struct sqb_hv_vcpu *vcpu); /* best effort, for reports */
	/* A text for a backend code of SQB_HV_EXIT_INTERNAL (reports). */
	const char *(*exit_internal_name)(uint64_t detail);

	/* Snapshots: the complete vCPU / VM state as snapfmt records (format.md
	 * section 8) in the backend's capture and apply order.  Save fills up to
	 * cap records whose data the caller free()s (also on failure); load
	 * applies them and names the failing record in diag.  VM paused. */
	int (*vcpu_save_records)(struct sqb_hv_vcpu *vcpu, struct sqb_record *recs,
				 unsigned int cap, unsigned int *n);
	int (*vcpu_load_records)(struct sqb_hv_vcpu *vcpu, const struct sqb_record *recs,
				 unsigned int n, struct sqb_diag *diag);
	int (*vm_save_records)(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			       unsigned int *n);
	int (*vm_load_records)(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			       struct sqb_diag *diag);
	/* Before vm_load_records: how the next load applies them
	 * (SQB_HV_LOAD_*).  -SQB_EUNSUPPORTED with diag for an option this
	 * backend cannot honour; NULL: none is supported. */
	int (*vm_load_options)(struct sqb_hv_vm *vm, unsigned int flags, struct sqb_diag *diag);
	/* The descriptor a dirty tracker (squib/dirty.h) drives for this VM. */
	int (*vm_dirty_fd)(struct sqb_hv_vm *vm);
	/* Exit-driven tracking (hvf; NULL elsewhere): fill o's backend and
	 * protect callback for this VM's memory, then route write faults to d
	 * once it is open (NULL: stop routing, before d is freed). */
	int (*vm_dirty_exit)(struct sqb_hv_vm *vm, struct sqb_dirty_opts *o);
	void (*vm_dirty_route)(struct sqb_hv_vm *vm, struct sqb_dirty *d);
	/* Exit-driven postcopy (hvf; NULL elsewhere: userfaultfd serves the
	 * kernel's faults): withhold guest RAM from the guest; its first
	 * access to a page is an exit that fetches the page through rs (an
	 * SQB_RESTORE_LAZY_EXIT restore) and grants it.  After the vCPUs'
	 * state is loaded, before they run; rs outlives the VM's vCPUs. */
	int (*vm_lazy_exit)(struct sqb_hv_vm *vm, struct sqb_restore *rs);
	/* Map host memory that is not guest RAM (a virtio-pmem file) at gpa
	 * in slot: no dirty logging, never in a snapshot's memory; read_only:
	 * the guest's writes exit as MMIO instead.  -SQB_EUNSUPPORTED where
	 * the hypervisor cannot read_only; NULL: no such mappings (virtio-pmem
	 * is refused). */
	int (*vm_map_device_memory)(struct sqb_hv_vm *vm, unsigned int slot, uint64_t gpa,
				    uint64_t size, void *host, int read_only);
};

/* The backend this build was configured with (CMake picks the file). */
extern const struct sqb_hv_ops sqb_hv_backend;

#endif
