/* Private VMM structures (runtime/): the VM, its vCPUs, memory and devices.
 *
 *   sqb_vm ─ lock/cond ─ pause_req / stop_req / parked count (rendezvous)
 *     ├─ hv (backend VM)          ├─ mem (memfd + regions)
 *     ├─ vcpus[i] ─ thread, hv vCPU, kick flag
 *     └─ devs (uart, i8042)       └─ event_fd (stopped on its own)
 */
#ifndef SQB_RUNTIME_VMM_PRIV_H
#define SQB_RUNTIME_VMM_PRIV_H

#include <pthread.h>
#include <stdint.h>

#include "dev.h"
#include "hv.h"
#include "squib/runtime.h"

#define SQB_MMIO_GAP_START (3ULL << 30)
#define SQB_HIGH_RAM_START (4ULL << 30)

struct sqb_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	uint64_t fd_offset; /* offset of this region in the memfd */
};

struct sqb_guest_mem {
	int fd;
	uint8_t *host;
	uint64_t size;
	struct sqb_mem_region regions[2];
	unsigned int nregions;
};

/* thp: ask for transparent huge pages (best effort; shmem_enabled decides). */
int sqb_mem_create(struct sqb_guest_mem *m, uint64_t size, int thp);
void sqb_mem_destroy(struct sqb_guest_mem *m);

struct sqb_vcpu {
	struct sqb_vm *vm;
	unsigned int index;
	struct sqb_hv_vcpu *hv;
	pthread_t thread;
	int thread_started;
	int parked;
	uint64_t exits, io_exits, mmio_exits;
};

struct sqb_vm {
	const struct sqb_hv_ops *ops;
	struct sqb_hv_vm *hv;
	struct sqb_guest_mem mem;
	struct sqb_devices devs;
	struct sqb_dev_host dev_host;
	unsigned int nvcpus;
	struct sqb_vcpu vcpus[SQB_VM_MAX_VCPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_mutex_t irq_lock; /* a raise/lower pair is one edge: never interleaved */
	enum sqb_vm_state state;
	int pause_req;
	int stop_req;
	unsigned int nparked;
	unsigned int nexited;
	struct sqb_vm_stop_info stop;
	int event_fd;

	int serial_fd;
	struct sqb_snapstate *snap; /* runtime/snapshot/: dirty set, parent, restore */
	uint64_t uart_tx_bytes;
	uint64_t start_ns, first_tx_ns;
};

/* Load the boot image and fill the boot vCPU's entry (vm_boot.c). */
int sqb_vm_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_hv_entry *entry,
		     struct sqb_diag *diag);

uint64_t sqb_now_ns(void);
/* Stop the VM from outside its vCPUs (e.g. its memory source is gone):
 * first reason wins, vCPUs are kicked, the event fd fires. */
void sqb_vm_fail(struct sqb_vm *vm, enum sqb_vm_stop_reason why, const char *msg);
/* runtime/snapshot/snap_uffd.c: during a stop, let vCPUs blocked on guest
 * memory that a Uffd page server never served leave the kernel. */
void sqb_snap_uffd_release(struct sqb_vm *vm);
/* runtime/snapshot/snap_dirty.c: release vm->snap (vCPUs already joined). */
void sqb_snapstate_free(struct sqb_vm *vm);

#endif
