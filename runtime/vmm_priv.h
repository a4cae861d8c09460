/* Private VMM structures (runtime/): the VM, its vCPU threads, memory,
 * interrupts, event loop and device bus.
 *
 *   sqb_vm ─ lock/cond ─ started / pause_req / stop_req, parked count
 *     ├─ hv (backend VM)             ├─ mem (gmem.h: memfd + regions + hooks)
 *     ├─ vcpus[i] ─ thread that created hv and runs it; request mailbox
 *     │             (fn, arg, rc): per-vCPU work runs on that thread
 *     ├─ irqs: GSI allocator (arch pins), irqfd or line fallback
 *     ├─ loop (evloop.h): one thread for every device fd and timer
 *     └─ bus (dev.h): device instances, sorted ranges; event_fd (stopped)
 */
#ifndef SQB_RUNTIME_VMM_PRIV_H
#define SQB_RUNTIME_VMM_PRIV_H

#include <pthread.h>
#include <stdint.h>

#include "dev.h"
#include "evloop.h"
#include "gmem.h"
#include "hv.h"
#include "layout.h"
#include "squib/runtime.h"

/* Lines 0..SQB_ARCH_GSI_MAX (x86: the IOAPIC's 24 pins; arm64: SPIs up to
 * the VMClock's), one bit each in irq_used. */
#define SQB_VM_MAX_GSI (SQB_ARCH_GSI_MAX + 1)
_Static_assert(SQB_VM_MAX_GSI <= 32, "irq_used has 32 bits");
/* Serial output held while the sink is full; beyond it bytes are dropped. */
#define SQB_VM_SERIAL_BUF 4096

struct sqb_vcpu;
typedef int (*sqb_vcpu_fn)(struct sqb_vcpu *vc, void *arg);

struct sqb_vcpu {
	struct sqb_vm *vm;
	unsigned int index;
	struct sqb_hv_vcpu *hv; /* set and cleared by its own thread, under vm->lock */
	pthread_t thread;
	int thread_started;
	int alive;   /* the thread serves requests */
	int created; /* creation finished (create_rc says how) */
	int create_rc;
	int parked;
	/* atomic: set before this vCPU's first KVM_RUN (or any run); a VM
	 * shell (vm_shell.c) must never have it set when a snapshot is applied */
	int ran;
	/* request mailbox (vm->lock): the parked thread runs fn(vc, arg) */
	sqb_vcpu_fn req_fn;
	void *req_arg;
	int req_rc, req_done;
	uint64_t exits, io_exits, mmio_exits;
	uint64_t io_out_exits, mmio_write_exits; /* of io_exits, mmio_exits */
};

struct sqb_vm {
	const struct sqb_hv_ops *ops;
	struct sqb_hv_vm *hv;
	struct sqb_gmem mem;
	struct sqb_bus bus;
	struct sqb_dev_host dev_host;
	struct sqb_dev *uart, *i8042; /* on the bus; the API's serial input and Ctrl+Alt+Del */
	struct sqb_evloop *loop;
	struct sqb_irq irqs[SQB_VM_MAX_GSI];
	uint32_t irq_used;  /* bit per GSI handed out */
	unsigned int nmmio; /* virtio-mmio slots so far */
	struct sqb_pci *pci;  /* --enable-pci: the PCI root (dev_pci.h), or NULL */
	unsigned int ndevmem; /* device memory slots so far (virtio-pmem) */
	uint64_t devmem_next; /* guest-physical address of the next one */
	unsigned int nvcpus;
	struct sqb_vcpu vcpus[SQB_VM_MAX_VCPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_mutex_t irq_lock; /* a raise/lower pair is one edge: never interleaved */
	enum sqb_vm_state state;
	int started; /* vCPUs may run (sqb_vm_start) */
	int sealed;  /* the bus is final (the guest's ACPI tables describe it) */
	int shell;   /* created by sqb_vm_shell_create, no snapshot applied yet */
	int track_dirty; /* memslots registered with dirty logging */
	int hp_dirty_log; /* virtio-mem slots get KVM dirty logging (snap_dirty.c; atomic) */
	int huge_pages;	 /* enum sqb_vm_huge_pages the memory was made with */
	int pause_req;
	int stop_req;
	unsigned int nparked;
	unsigned int nexited;
	struct sqb_vm_stop_info stop;
	int event_fd;

	/* Serial output never blocks a vCPU (issue 17): the sink is
	 * non-blocking, bytes it cannot take wait here, and what does not fit is
	 * dropped and counted (Firecracker drops on a full stdout likewise). */
	int serial_fd;
	pthread_mutex_t serial_lock;
	size_t serial_len;
	uint64_t uart_dropped_bytes;
	struct sqb_vio_tbucket *serial_rl; /* PUT /serial rate_limiter, or NULL */
	uint64_t uart_rl_dropped_bytes;
	uint64_t kvmclock_ctrl_fails; /* vcpu_clock_stopped failures (metrics) */
	struct sqb_snapstate *snap; /* runtime/snapshot/: dirty set, parent, restore */
	uint64_t uart_tx_bytes;
	uint64_t start_ns, first_tx_ns;
	/* last: used from its start only while the sink is full, so the VM's
	 * own mapping (vmm.c) keeps the rest of it untouched, not resident */
	uint8_t serial_buf[SQB_VM_SERIAL_BUF];
};

uint64_t sqb_now_ns(void);
/* Push buffered serial output to its sink without blocking (vmm.c). */
void sqb_vm_serial_flush(struct sqb_vm *vm);
/* Stop the VM from outside its vCPUs (e.g. its memory source is gone):
 * first reason wins, vCPUs are kicked, the event fd fires. */
void sqb_vm_fail(struct sqb_vm *vm, enum sqb_vm_stop_reason why, const char *msg);
/* runtime/snapshot/snap_uffd.c: during a stop, let vCPUs blocked on guest
 * memory that a Uffd page server never served leave the kernel. */
void sqb_snap_uffd_release(struct sqb_vm *vm);
/* runtime/snapshot/snap_load.c: during a stop, before the vCPUs are joined,
 * make sure none can wait for a page of a lazy restore (a failed one: at
 * once; a working one: after 200 ms with a vCPU still in). */
void sqb_snap_restore_release(struct sqb_vm *vm);
/* runtime/snapshot/snap_dirty.c: release vm->snap (vCPUs already joined). */
void sqb_snapstate_free(struct sqb_vm *vm);

/* ---- VM shells (vm_shell.c, docs/fleet.md) ----
 * Take a shell for a snapshot load whose VM would be cfg: 0 and the shell
 * adopted (serial sink and cfg->add_devices applied), 1 when its shape
 * differs (the caller builds a VM the normal way), -SQB_ESTATE (with diag)
 * when a vCPU of the shell has ever run: the invariant a shell must keep. */
int sqb_vm_shell_adopt(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_diag *diag);

/* ---- per-vCPU requests (vmm.c) ----
 * Run fn(vc, arg) on vc's own thread and return its result.  The vCPU must
 * be parked: VM created and not started, or paused (-SQB_ESTATE otherwise,
 * or when its thread is gone).  Firecracker's VcpuEvent shape. */
int sqb_vcpu_call(struct sqb_vcpu *vc, sqb_vcpu_fn fn, void *arg);
int sqb_vcpu_set_entry(struct sqb_vcpu *vc, const struct sqb_arch_entry *entry);
/* Complete a port / MMIO access the last exit started (run once with the
 * kick set, dispatching what exits), so the saved RIP is past it. */
int sqb_vcpu_settle(struct sqb_vcpu *vc, struct sqb_diag *diag);
/* The backend's vcpu_save_records / vcpu_load_records, on the thread. */
int sqb_vcpu_save_records(struct sqb_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			  unsigned int *n);
int sqb_vcpu_load_records(struct sqb_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			  struct sqb_diag *diag);

/* ---- interrupts (vmm.c) ----
 * gsi 0: allocate the next free pin of the arch range (x86 IOAPIC 5..23);
 * else that fixed (legacy) line.  irqfd where the backend has it. */
int sqb_vm_irq_get(struct sqb_vm *vm, unsigned int gsi, struct sqb_irq **out);

/* ---- virtio-mmio slots (vmm.c) ----
 * Add slot n (window SQB_ARCH_VIRTIO_MMIO_BASE + 0x1000 n, a GSI from the
 * allocator) driven by ops/opaque.  Only before the guest is loaded: call
 * it from struct sqb_vm_config.add_devices.  out (may be NULL) gets the
 * slot description. */
int sqb_vm_add_mmio_dev(struct sqb_vm *vm, const struct sqb_mmio_dev_ops *ops, void *opaque,
			struct sqb_mmio_slot_info *out, struct sqb_diag *diag);

/* ---- device memory (vmm.c) ----
 * Map host memory that is not guest RAM (a virtio-pmem file) into the
 * guest at the next 2 MiB aligned address from SQB_ARCH_PMEM_BASE (*gpa),
 * in its own memslot; size a 2 MiB multiple.  From add_devices only (the
 * address of the n-th call is the same on every VM: a snapshot load finds
 * its regions where they were).  -ENOTSUP (diag): the backend has none. */
int sqb_vm_map_device_mem(struct sqb_vm *vm, uint64_t size, void *host, int read_only,
			  uint64_t *gpa, struct sqb_diag *diag);
/* virtio-mem (dev_vmem.c): map host at gpa (inside the arch's hotplug
 * window) as memslot index of the hotplug region; size 0 removes it.  Any
 * time, from any thread; mapped again, a slot takes the current logging
 * (hp_dirty_log).  -ENOTSUP: the backend maps no device memory. */
int sqb_vm_map_hotplug_slot(struct sqb_vm *vm, unsigned int index, uint64_t gpa, uint64_t size,
			    void *host);
#define SQB_VM_MEMHP_SLOT0 32u /* KVM memslot of hotplug slot 0 */

#endif
