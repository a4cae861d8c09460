/* squib runtime: a KVM-style microVM monitor behind an opaque VM handle.
 *
 *   sqb_vm ──┬── guest memory: memfd ──mmap──> host VA ──memslots──> GPA
 *            │        [0, min(size, 3 GiB))         low RAM  (slot 0)
 *            │        [4 GiB, 4 GiB + rest)         high RAM (slot 1)
 *            │        3 GiB..4 GiB is the MMIO gap (LAPIC, IOAPIC, ...)
 *            ├── sqb_vcpu[0..n)  one thread each, paused/resumed together
 *            ├── devices (port bus): 16550 UART 0x3f8/IRQ4, i8042 0x60/0x64
 *            └── hypervisor backend ops (KVM now; nothing here names it)
 *
 * Lifecycle:  create ──start──> RUNNING <──pause/resume──> PAUSED
 *                                  └──(guest reset, fault, stop)──> STOPPED
 * Every call takes the handle; two VMs may live in one process.
 */
#ifndef SQUIB_RUNTIME_H
#define SQUIB_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqb_vm sqb_vm;
typedef struct sqb_vcpu sqb_vcpu;

#define SQB_VM_MAX_VCPUS 32

/* A custom CPU template (Firecracker's PUT /cpu-config, docs/cpu-templates.md):
 * KVM capabilities to require (or, "!N", not to require), and bit-by-bit
 * modifiers of the guest's CPUID leaves and MSRs.  A modifier replaces the
 * bits set in filter with value's bits and keeps the others ("x"). */
struct sqb_cpu_kvm_cap {
	uint32_t cap;
	int remove; /* "!N": drop N from the capabilities checked by default */
};
struct sqb_cpu_reg_mod {
	unsigned int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t filter, value;
};
struct sqb_cpuid_mod {
	uint32_t leaf, subleaf, flags; /* flags: KVM_CPUID_FLAG_* of the entry */
	unsigned int first, count;     /* its register modifiers in regs[] */
};
struct sqb_msr_mod {
	uint32_t addr;
	uint64_t filter, value;
};
struct sqb_cpu_template {
	unsigned int ncaps, ncpuid, nregs, nmsrs;
	struct sqb_cpu_kvm_cap *caps;
	struct sqb_cpuid_mod *cpuid;
	struct sqb_cpu_reg_mod *regs;
	struct sqb_msr_mod *msrs;
};

static inline uint64_t sqb_cpu_bits_apply(uint64_t x, uint64_t filter, uint64_t value)
{
	return (x & ~filter) | (value & filter);
}

struct sqb_pci_place; /* runtime/dev_pci.h */

struct sqb_vm_config {
	unsigned int version;	 /* SQB_VM_CONFIG_VERSION */
	unsigned int vcpu_count; /* 1..SQB_VM_MAX_VCPUS */
	uint64_t mem_size_mib;	 /* >= 1 */
	int track_dirty_pages;	 /* recorded for snapshots (issue 7) */
	const char *kernel_path; /* PVH ELF or bzImage; NULL: nothing is loaded
				  * and vCPUs keep their reset state (a
				  * snapshot restore sets them) */
	const char *initrd_path; /* NULL: none */
	const char *cmdline;	 /* NULL: the loader's microVM default */
	int serial_out_fd;	 /* guest serial output; -1 discards */
	enum sqb_vm_huge_pages {
		SQB_VM_HUGE_NONE = 0, /* 4 KiB pages */
		SQB_VM_HUGE_THP = 1,  /* madvise(MADV_HUGEPAGE) on guest memory */
		/* Firecracker's "2M": private anonymous hugetlb memory
		 * (MAP_HUGETLB | MAP_HUGE_2MB), its pages reserved from the
		 * host's pool when the VM is created (-ENOMEM and a diag
		 * naming the pool when it is too small); mem_size_mib even. */
		SQB_VM_HUGE_2M = 2,
	} huge_pages;
	/* Optional: called once the VM's platform exists and before the guest
	 * is loaded (its ACPI tables describe the bus): adds devices, e.g.
	 * virtio-mmio slots (runtime-internal sqb_vm_add_mmio_dev). */
	int (*add_devices)(void *arg, sqb_vm *vm, struct sqb_diag *diag);
	void *add_devices_arg;
	/* Optional: a custom CPU template, applied while the VM is created
	 * (read only during sqb_vm_create; the caller keeps it).  A backend
	 * without templates refuses a non-empty one (-SQB_EUNSUPPORTED). */
	const struct sqb_cpu_template *cpu_template;
	/* Firecracker's machine-config smt: with more than one vCPU, CPUID
	 * shows two threads per core (docs/cpuid.md).  vcpu_count even. */
	int smt;
	/* Firecracker's --enable-pci: virtio devices are PCI functions behind
	 * a PCI root (x86_64 KVM only; -SQB_EUNSUPPORTED elsewhere). */
	int pci;
	/* A snapshot load of a PCI VM: the slot each virtio device had
	 * (runtime-internal struct sqb_pci_place, from the DEVS records) */
	const struct sqb_pci_place *pci_place;
	unsigned int npci_place;
};

/* PCI hot-plug (a VM made with cfg.pci, running or paused;
 * -SQB_EUNSUPPORTED without PCI, -SQB_ESTATE in another state): add(arg,
 * vm, diag) adds devices as an add_devices hook does, with the vCPUs
 * parked meanwhile; unplug takes the virtio-pci function with that id off
 * the bus and frees it (-ENOENT: no such function). */
int sqb_vm_hotplug(sqb_vm *vm, int (*add)(void *arg, sqb_vm *vm, struct sqb_diag *diag), void *arg,
		   struct sqb_diag *diag);
int sqb_vm_unplug(sqb_vm *vm, const char *id);

/* Whether this build can give a VM the PCI transport (struct
 * sqb_vm_config.pci): x86_64 with KVM. */
int sqb_vm_pci_supported(void);

/* Firecracker's boot timer (--boot-timer): from an add_devices hook, puts
 * the boot-device page on the bus (x86_64 0xc000_0000, aarch64
 * 0x4000_0000); a guest's one-byte write of 123 at its start calls
 * fire(arg) on that vCPU's thread. */
int sqb_vm_add_boot_timer(sqb_vm *vm, void (*fire)(void *arg), void *arg, struct sqb_diag *diag);

#define SQB_VM_CONFIG_VERSION 1
#define SQB_VM_CONFIG_INIT                                                                         \
	{                                                                                          \
		.version = SQB_VM_CONFIG_VERSION, .vcpu_count = 1, .mem_size_mib = 128,            \
		.serial_out_fd = -1                                                                \
	}

enum sqb_vm_state {
	SQB_VM_CREATED = 0,
	SQB_VM_RUNNING = 1,
	SQB_VM_PAUSED = 2,
	SQB_VM_STOPPED = 3,
};

/* Why a VM stopped.  RESET (i8042 reset line) and REQUESTED are orderly. */
enum sqb_vm_stop_reason {
	SQB_VM_STOP_NONE = 0,
	SQB_VM_STOP_RESET = 1,		/* guest reset or powered off (i8042 line, system event) */
	SQB_VM_STOP_REQUESTED = 2,	/* sqb_vm_stop() */
	SQB_VM_STOP_SHUTDOWN = 3,	/* triple fault / shutdown exit */
	SQB_VM_STOP_INTERNAL_ERROR = 4, /* hypervisor could not emulate */
	SQB_VM_STOP_FAIL_ENTRY = 5,	/* vCPU state rejected on entry */
	SQB_VM_STOP_UNHANDLED_EXIT = 6, /* an exit the VMM does not know */
	SQB_VM_STOP_SYSTEM_EVENT = 7,	/* hypervisor-reported reset/shutdown */
	SQB_VM_STOP_HOST_ERROR = 8,	/* the run ioctl itself failed */
};

struct sqb_vm_stop_info {
	enum sqb_vm_stop_reason reason;
	int vcpu;	   /* vCPU that stopped the VM, -1 if none */
	uint64_t detail;   /* backend sub-code (suberror, hw reason, exit reason) */
	uint64_t rip;	   /* guest RIP at the time, when known */
	char message[192]; /* one line for the user */
};

struct sqb_vm_stats {
	uint64_t exits; /* vCPU exits handled by the VMM (all vCPUs) */
	uint64_t io_exits;
	uint64_t mmio_exits;
	uint64_t uart_tx_bytes;
	uint64_t guest_mem_bytes;
	uint64_t start_ns;	     /* CLOCK_MONOTONIC when vCPUs were released */
	uint64_t first_tx_ns;	     /* CLOCK_MONOTONIC of the first serial byte, 0 if none */
	uint64_t uart_dropped_bytes; /* serial bytes dropped: the sink would block */
	uint64_t io_out_exits;	     /* of io_exits: port writes */
	uint64_t mmio_write_exits;   /* of mmio_exits: MMIO writes */
	uint64_t uart_rl_dropped_bytes; /* serial bytes over the rate limiter, dropped */
	uint64_t kvmclock_ctrl_fails;	/* KVM_KVMCLOCK_CTRL calls that failed (x86 KVM) */
};

/* Ask the hypervisor now what creating the first VM would ask it first and
 * that stays the same while the process runs (x86 KVM: supported CPUID,
 * the host's CPUID, the MSR list), so that VM does not wait for it; squib
 * calls it while it waits for its first API request.  Best effort: errors
 * are met and reported by sqb_vm_create(). */
void sqb_vm_host_warm(void);

/* Create the VM: memory, irqchip, devices, boot image, vCPUs (not running).
 * diag (optional) says what went wrong, e.g. which file failed to load. */
int sqb_vm_create(sqb_vm **out, const struct sqb_vm_config *cfg, struct sqb_diag *diag);
/* Release the vCPU threads.  CREATED -> RUNNING. */
int sqb_vm_start(sqb_vm *vm);
/* Bring every vCPU to a clean exit boundary and hold it there; returns
 * when all are parked.  RUNNING -> PAUSED.  -SQB_ESTATE otherwise. */
int sqb_vm_pause(sqb_vm *vm);
/* The same, bounded: -ETIMEDOUT after timeout_ms (0: no bound), -EINTR as
 * soon as cancel(arg) returns nonzero (asked every 50 ms; may be NULL).  On
 * either the pause is withdrawn and the VM stays RUNNING: a vCPU that cannot
 * reach the rendezvous (e.g. waiting for a page a Uffd page server does not
 * serve) must not wedge the caller. */
int sqb_vm_pause_timeout(sqb_vm *vm, unsigned int timeout_ms, int (*cancel)(void *), void *arg);
int sqb_vm_resume(sqb_vm *vm);
/* Stop and join all vCPUs (idempotent).  Any state -> STOPPED. */
int sqb_vm_stop(sqb_vm *vm);
void sqb_vm_free(sqb_vm *vm); /* accepts NULL; stops first */

/* VM shells (docs/fleet.md "Shells"): the part of a snapshot load that does
 * not depend on the snapshot, done before one is chosen.  A shell is a VM
 * of this shape with guest memory reserved and registered, the irqchip and
 * board devices, and every vCPU created on its thread (CPUID and MSRs set)
 * and parked; it never runs a guest instruction.  Pass it to
 * sqb_vm_snapshot_load (struct sqb_vm_snap_load.shell): a snapshot of the
 * same shape is applied to it, another shape loads the normal way. */
struct sqb_vm_shape {
	unsigned int vcpu_count; /* 1..SQB_VM_MAX_VCPUS */
	uint64_t mem_size_mib;	 /* 1..2^20 */
	int track_dirty_pages;	 /* memslots with dirty logging (a load asking
				  * for track_dirty_pages needs it) */
};
int sqb_vm_shell_create(sqb_vm **out, const struct sqb_vm_shape *shape, struct sqb_diag *diag);
/* 0 while vm is a shell no vCPU of which has ever entered the guest;
 * -SQB_ESTATE once one has run or a snapshot was applied. */
int sqb_vm_shell_check(sqb_vm *vm);

enum sqb_vm_state sqb_vm_get_state(sqb_vm *vm);
/* A file descriptor that becomes readable once the VM stopped on its own
 * (guest reset or failure); owned by the VM. */
int sqb_vm_event_fd(const sqb_vm *vm);
void sqb_vm_get_stop_info(sqb_vm *vm, struct sqb_vm_stop_info *out);
void sqb_vm_get_stats(sqb_vm *vm, struct sqb_vm_stats *out);

/* Firecracker's serial rate_limiter: a token bucket on the console's output
 * bytes (size, one-time burst, refill time in ms); what is over it is
 * dropped and counted (uart_rl_dropped_bytes).  size or refill 0: none. */
int sqb_vm_serial_rate_limit(sqb_vm *vm, uint64_t size, uint64_t one_time_burst,
			     uint64_t refill_time_ms);
/* Feed bytes to the serial console's receive FIFO (excess is dropped). */
int sqb_vm_serial_input(sqb_vm *vm, const void *buf, size_t len);
/* Press Ctrl+Alt+Del on the i8042 keyboard (Firecracker's SendCtrlAltDel). */
int sqb_vm_send_ctrl_alt_del(sqb_vm *vm);

/* ---- snapshots (runtime/snapshot/, docs/snapshots.md) ----
 *
 *   paused VM --create--> MEMORY file (guest RAM; a Diff names its parent)
 *                         STATE file  (vCPUs, irqchip, clock, devices, CONF)
 *   fresh process --load(STATE + File memory | Uffd page server)--> VM
 */
enum sqb_vm_snap_type { SQB_VM_SNAP_FULL = 1, SQB_VM_SNAP_DIFF = 2 };

#define SQB_VM_SNAP_CREATE_VERSION 1
struct sqb_vm_snap_create {
	unsigned int version;
	enum sqb_vm_snap_type type;
	const char *state_path, *mem_path;
	int codec;	 /* enum sqb_codec (squib/snapfmt.h); 0: none */
	int level;	 /* codec level, 0: default */
	int dedup;	 /* store repeated pages once */
	int track_dirty; /* the VM was configured with track_dirty_pages */
	/* CONF keys (format.md [F-57]) the VM does not know itself; may be NULL */
	const char *kernel_path, *initrd_path, *boot_args, *vm_config_json;
	int smt;
	/* Memory file as raw guest memory in Firecracker's layout (zero pages
	 * are holes; a Diff holds its dirty pages); the state file then also
	 * carries the page index and checksums (format.md 7.5).  Forces codec
	 * none and no dedup. */
	int raw_mem;
	/* Background create (docs/snapshots.md): capture the state and arm
	 * copy-before-write while paused, return, write memory while the VM
	 * runs; sqb_vm_snapshot_status() says when the pair is durable.
	 * Needs the squib memory format and memfd guest memory. */
	int background;
};
/* Write a snapshot of a PAUSED VM: memory file first, then the state file
 * naming it ([F-46]); both appear together or not at all (previous files
 * at the paths are kept on failure).  The VM stays paused either way. */
int sqb_vm_snapshot_create(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag);

/* Live create (docs/snapshots.md "Live creates"): a background create of a
 * RUNNING VM.  Write-protects the pages that hold data while the guest
 * still runs, so that the caller's pause -> sqb_vm_snapshot_create() ->
 * resume only protects again what the guest wrote meanwhile.  The next
 * create takes the protection over; sqb_vm_snapshot_prearm_drop() gives it
 * up (a failed pause).  Refused (diag) where a background create is. */
int sqb_vm_snapshot_prearm(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag);
void sqb_vm_snapshot_prearm_drop(sqb_vm *vm);
/* The pause window a live create's caller measured, for
 * sqb_vm_snapshot_status()'s pause_us. */
void sqb_vm_snapshot_set_pause_us(sqb_vm *vm, uint64_t us);

/* The last background create of this VM. */
enum sqb_vm_snap_bg_state {
	SQB_VM_SNAP_BG_NONE = 0, /* none started */
	SQB_VM_SNAP_BG_WRITING,	 /* memory file still being written */
	SQB_VM_SNAP_BG_DONE,	 /* both files durable at their paths */
	SQB_VM_SNAP_BG_FAILED,	 /* nothing new at the paths; reason says why */
};
struct sqb_vm_snap_status {
	enum sqb_vm_snap_bg_state state;
	char state_path[512], mem_path[512];
	char reason[256];
	uint64_t pause_us;     /* the create's pause work (request to return) */
	uint64_t write_ms;     /* return to durable */
	uint64_t pages_copied; /* pages copied aside before a write */
};
/* Fills *out (state NONE if no background create ran); never fails. */
void sqb_vm_snapshot_status(sqb_vm *vm, struct sqb_vm_snap_status *out);

enum sqb_vm_mem_backend { SQB_VM_MEM_FILE = 1, SQB_VM_MEM_UFFD = 2 };
struct sqb_vm_snap_conf;
enum sqb_vm_load_mode {
	SQB_VM_LOAD_MMAP = 0, /* map RAW data from the files, decode the rest in place */
	SQB_VM_LOAD_EAGER = 1,
	SQB_VM_LOAD_LAZY = 2, /* userfaultfd, pages filled on demand and in background */
	/* The API's default (docs/snapshots.md "First loads"): MMAP when the
	 * files are trusted or their verification is remembered, else LAZY
	 * (each chunk checked before the guest can see it) and remembered once
	 * complete; MMAP with a full verification where userfaultfd is not
	 * usable. */
	SQB_VM_LOAD_AUTO = 3,
};

#define SQB_VM_SNAP_LOAD_VERSION 1
struct sqb_vm_snap_load {
	unsigned int version;
	const char *state_path;
	enum sqb_vm_mem_backend backend;
	const char *backend_path;   /* File: memory file; Uffd: page server socket */
	enum sqb_vm_load_mode mode; /* File backend only */
	int trust_raw;		    /* mmap: skip reading RAW checksums before mapping */
	int track_dirty_pages;
	int resume; /* RUNNING when it returns, else PAUSED */
	int serial_out_fd;
	/* As struct sqb_vm_config: the devices the snapshot's DEVS describe
	 * beyond the built-in ones (a load refuses a mismatch). */
	int (*add_devices)(void *arg, sqb_vm *vm, struct sqb_diag *diag);
	void *add_devices_arg;
	/* Optional, called with add_devices_arg once CONF is read and before
	 * the VM exists: the caller learns what devices to add (e.g. the drives
	 * in vm_config_json).  Nonzero fails the load with diag. */
	int (*conf_ready)(void *arg, const struct sqb_vm_snap_conf *conf, struct sqb_diag *diag);
	/* Optional (NULL): a pre-built VM shell (sqb_vm_shell_create).  When
	 * the snapshot's shape matches, the load takes it (*shell becomes
	 * NULL; on failure it is freed with the half-loaded VM); otherwise
	 * *shell is left to the caller and the VM is built the normal way. */
	sqb_vm **shell;
	/* Firecracker's clock_realtime: the guest's clock moves on by the host
	 * wall-clock time since the save (x86 kvmclock; format.md [F-126]). */
	int clock_realtime;
	/* Firecracker's huge_pages on load: the snapshot's own (0) or this
	 * one.  A File load into 2M memory is always eager (docs/snapshots.md
	 * "Huge pages"); the Uffd handshake then says 2 MiB pages. */
	enum sqb_vm_load_huge {
		SQB_VM_LOAD_HUGE_SNAPSHOT = 0,
		SQB_VM_LOAD_HUGE_NONE = 1,
		SQB_VM_LOAD_HUGE_THP = 2,
		SQB_VM_LOAD_HUGE_2M = 3,
	} huge_pages;
};
/* What the snapshot's CONF section says (malloc'd strings, NULL if absent). */
struct sqb_vm_snap_conf {
	unsigned int vcpu_count;
	uint64_t mem_size_mib;
	int smt, track_dirty_pages;
	int pci; /* CONF's pci: the VM had Firecracker's --enable-pci transport */
	/* CONF's huge_pages (None when absent); after a load: the value the
	 * VM was built with (the load's huge_pages resolved against it) */
	enum sqb_vm_huge_pages huge_pages;
	char *kernel_path, *initrd_path, *boot_args;
	char *vm_config_json; /* the Firecracker-style configuration (drives, entropy) */
};
/* Build a VM from a snapshot: every file is checked before the VM exists,
 * and no guest instruction runs before all state is set. */
int sqb_vm_snapshot_load(sqb_vm **out, const struct sqb_vm_snap_load *o,
			 struct sqb_vm_snap_conf *conf, struct sqb_diag *diag);
void sqb_vm_snap_conf_free(struct sqb_vm_snap_conf *conf);

const char *sqb_vm_state_name(enum sqb_vm_state st);
/* Firecracker's names of huge_pages: "None", "Transparent", "2M" (and back:
 * 0, or -EINVAL for any other text). */
const char *sqb_vm_huge_name(enum sqb_vm_huge_pages h);
int sqb_vm_huge_parse(const char *s, enum sqb_vm_huge_pages *out);
const char *sqb_vm_stop_reason_name(enum sqb_vm_stop_reason r);
/* Name of the hypervisor backend this build uses ("kvm"). */
const char *sqb_runtime_backend_name(void);

#ifdef __cplusplus
}
#endif
#endif
