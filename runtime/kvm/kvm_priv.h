/* Private structures of the KVM backend (runtime/kvm/).
 *
 *   kvm_backend.c (neutral: VM, memslots, irqfd, ioeventfd, vCPU run/kick)
 *        └── sqb_kvm_arch_* hooks ──> kvm/<arch>/ (x86_64: kvm_x86.c
 *            irqchip + PIT, kvm_cpu.c CPUID/MSRs/entry, kvm_snapshot.c and
 *            kvm_records.c state records)
 */
#ifndef SQB_RUNTIME_KVM_PRIV_H
#define SQB_RUNTIME_KVM_PRIV_H

#include <linux/kvm.h>
#include <stdint.h>

#include "hv.h"
#include "kvm_arch.h"

#include <pthread.h>

/* A memslot as squib set it (reports read guest memory through it). */
struct sqb_kvm_slot {
	uint64_t gpa, size;
	uint8_t *host;
};
#define SQB_KVM_MAX_SLOTS 8

struct sqb_hv_vm {
	int kvm_fd;
	int vm_fd;
	int run_size;
	unsigned int nvcpus;
	int smt; /* machine-config smt: two threads per core in CPUID (x86) */
	struct sqb_kvm_arch_vm arch;
	struct sqb_kvm_slot slots[SQB_KVM_MAX_SLOTS];
	unsigned int nslots;
};

struct sqb_kvm_crash;

struct sqb_hv_vcpu {
	struct sqb_hv_vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;	     /* the thread that created (and runs) it: kick target */
	struct sqb_kvm_crash *crash; /* SQB_CRASH_CHECK state, or NULL */
};

/* kvm_backend.c */
void sqb_kvm_diag(struct sqb_diag *diag, const char *what, int err);

/* Arch hooks (kvm/<arch>/): per-VM set-up after KVM_CREATE_VM and its
 * undo; the in-kernel interrupt controller and timers; per-vCPU set-up
 * after KVM_CREATE_VCPU.  Each fills diag on failure. */
int sqb_kvm_arch_vm_init(struct sqb_hv_vm *vm, struct sqb_diag *diag);
void sqb_kvm_arch_vm_fini(struct sqb_hv_vm *vm);
int sqb_kvm_arch_platform(struct sqb_hv_vm *vm, struct sqb_diag *diag);
int sqb_kvm_arch_vcpu_init(struct sqb_hv_vcpu *vc, struct sqb_diag *diag);
/* A custom CPU template before the vCPUs exist (hv.h vm_cpu_template). */
struct sqb_cpu_template;
int sqb_kvm_arch_cpu_template(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			      struct sqb_diag *diag);
/* x86: host probes (supported CPUID, MSR list) are cached per process;
 * forget them (tests that fake a host between calls). */
void sqb_kvm_probe_cache_reset(void);
/* Fill those caches now, from kvm_fd (/dev/kvm): a fleet zygote before it
 * forks (hv.h host_probe).  arm64: nothing to probe. */
void sqb_kvm_arch_host_probe(int kvm_fd);

/* The program counter of a vCPU (reports; UINT64_MAX when unknown) and
 * the KVM_IRQ_LINE argument for line irq (x86: the GSI; arm64: an SPI
 * encoded with its type). */
uint64_t sqb_kvm_arch_vcpu_pc(struct sqb_hv_vcpu *vc);
uint32_t sqb_kvm_arch_irq_line(unsigned int irq);
int sqb_kvm_vcpu_set_entry(struct sqb_hv_vcpu *vc, const struct sqb_arch_entry *e);

/* kvm/<arch>/: a guest triple fault (KVM_EXIT_SHUTDOWN) reported in the
 * log: KVM's registers, and with SQB_CRASH_CHECK=1 the last known state and
 * a check of the guest's exception path against its bytes at the load
 * (x86_64: kvm_crash.c).  arm: after a snapshot load sets the state;
 * note_exit: after every exit (SQB_CRASH_CHECK only). */
struct kvm_sregs;
struct kvm_regs;
void sqb_kvm_crash_arm(struct sqb_hv_vcpu *vc, const struct kvm_sregs *s, const struct kvm_regs *r);
void sqb_kvm_crash_note_exit(struct sqb_hv_vcpu *vc);
void sqb_kvm_crash_report(struct sqb_hv_vcpu *vc);
void sqb_kvm_crash_free(struct sqb_hv_vcpu *vc);

/* kvm/<arch>/: state as snapfmt records (hv.h snapshot ops). */
int sqb_kvm_vcpu_save_records(struct sqb_hv_vcpu *vc, struct sqb_record *recs, unsigned int cap,
			      unsigned int *n);
int sqb_kvm_vcpu_load_records(struct sqb_hv_vcpu *vc, const struct sqb_record *recs, unsigned int n,
			      struct sqb_diag *d);
int sqb_kvm_vm_save_records(struct sqb_hv_vm *vm, struct sqb_record *recs, unsigned int cap,
			    unsigned int *n);
int sqb_kvm_vm_load_records(struct sqb_hv_vm *vm, const struct sqb_record *recs, unsigned int n,
			    struct sqb_diag *d);
int sqb_kvm_vm_dirty_fd(struct sqb_hv_vm *vm);
int sqb_kvm_vm_load_options(struct sqb_hv_vm *vm, unsigned int flags, struct sqb_diag *d);

#endif
