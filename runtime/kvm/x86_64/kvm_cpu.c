/* KVM vCPU set-up: CPUID from KVM_GET_SUPPORTED_CPUID, a CPU template's
 * modifiers, then Firecracker's per-vCPU normalization (kvm_cpuid_norm.c,
 * docs/cpuid.md); boot MSRs filtered by what the host accepts, entry
 * register state (PVH 32-bit or 64-bit) and the vCPU state slots. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch_entry.h"
#include "kvm_cpuid_norm.h"
#include "kvm_priv.h"
#include "log.h"
#include "pagealloc.h"
#include "squib/runtime.h"

/* Host probes are per process (docs/fleet.md "Shells"): what KVM supports
 * does not change while squib runs, so the first VM asks and later VMs (a
 * pre-warmed shell, a test process with many VMs) copy the answer. */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kvm_cpuid2 *supported_cpuid; /* KVM's answer, unfiltered */
static struct kvm_msr_list *msr_list;
static struct sqb_cpuid_host host_cpuid; /* the CPUID instruction's answers */
static int host_cpuid_read;

static int probe_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	/* KVM answers E2BIG while the buffer is too small: grow and ask again
	 * (a host with many leaves, e.g. AMX or many cache levels).  The
	 * asking buffer is a mapping of its own and the answer is kept at its
	 * size (75 of 256 entries here): calloc of the 10 KiB buffer wrote
	 * every heap page of it in each VM process (docs/fleet.md). */
	for (unsigned int nent = SQB_KVM_CPUID_FIRST;; nent *= 2) {
		size_t len = sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
		struct kvm_cpuid2 *c = sqb_page_zalloc(len);
		int err = 0;

		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			size_t used = sizeof(*c) + c->nent * sizeof(struct kvm_cpuid_entry2);

			*out = c->nent <= nent ? malloc(used) : NULL;
			if (*out)
				memcpy(*out, c, used);
			else
				err = -ENOMEM;
			sqb_page_free(c, len);
			return err;
		}
		err = -errno;
		sqb_page_free(c, len);
		if (err != -E2BIG || nent >= SQB_KVM_CPUID_MAX)
			return err;
	}
}

static int probe_msrs(int kvm_fd, struct kvm_msr_list **out);

/* A fleet zygote probes once before it forks (docs/fleet.md "Zygote"):
 * its members find the answers cached and never ask KVM or allocate them.
 * A failed probe is left for a VM's creation to retry and report. */
void sqb_kvm_arch_host_probe(int kvm_fd)
{
	pthread_mutex_lock(&probe_lock);
	if (!supported_cpuid && probe_cpuid(kvm_fd, &supported_cpuid))
		supported_cpuid = NULL;
	if (!msr_list && probe_msrs(kvm_fd, &msr_list))
		msr_list = NULL;
	if (!host_cpuid_read) {
		sqb_cpuid_host_read(&host_cpuid);
		host_cpuid_read = 1;
	}
	pthread_mutex_unlock(&probe_lock);
}

void sqb_kvm_probe_cache_reset(void)
{
	pthread_mutex_lock(&probe_lock);
	free(supported_cpuid);
	free(msr_list);
	supported_cpuid = NULL;
	msr_list = NULL;
	host_cpuid_read = 0;
	pthread_mutex_unlock(&probe_lock);
}

static int probe_msrs(int kvm_fd, struct kvm_msr_list **out);

static void template_diag(struct sqb_diag *diag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void template_diag(struct sqb_diag *diag, const char *fmt, ...)
{
	va_list ap;

	if (!diag)
		return;
	diag->offset = UINT64_MAX;
	snprintf(diag->section, sizeof(diag->section), "cpu-config");
	va_start(ap, fmt);
	vsnprintf(diag->reason, sizeof(diag->reason), fmt, ap);
	va_end(ap);
}

static void cpuid_diag(struct sqb_diag *diag, const char *why)
{
	template_diag(diag, "%s", why);
	if (diag)
		snprintf(diag->section, sizeof(diag->section), "cpuid");
}

int sqb_kvm_cpuid_apply(struct kvm_cpuid2 *c, const struct sqb_cpu_template *t, uint32_t bad[2])
{
	for (unsigned int m = 0; m < t->ncpuid; m++) {
		const struct sqb_cpuid_mod *cm = &t->cpuid[m];
		struct kvm_cpuid_entry2 *e = NULL;

		for (unsigned int i = 0; i < c->nent && !e; i++)
			if (c->entries[i].function == cm->leaf &&
			    c->entries[i].index == cm->subleaf)
				e = &c->entries[i];
		if (!e) {
			bad[0] = cm->leaf;
			bad[1] = cm->subleaf;
			return -ENOENT;
		}
		/* Firecracker takes the template's KVM flags for the entry. */
		e->flags = cm->flags;
		for (unsigned int r = cm->first; r < cm->first + cm->count && r < t->nregs; r++) {
			const struct sqb_cpu_reg_mod *rm = &t->regs[r];
			uint32_t *reg = rm->reg == 0   ? &e->eax
					: rm->reg == 1 ? &e->ebx
					: rm->reg == 2 ? &e->ecx
						       : &e->edx;

			*reg = (uint32_t)sqb_cpu_bits_apply(*reg, rm->filter, rm->value);
		}
	}
	return 0;
}

/* A copy of the VM table with room for what normalization adds. */
static struct kvm_cpuid2 *cpuid_copy(const struct kvm_cpuid2 *t, unsigned int *cap)
{
	struct kvm_cpuid2 *c;

	*cap = t->nent + SQB_CPUID_NORM_EXTRA;
	c = calloc(1, sizeof(*c) + *cap * sizeof(struct kvm_cpuid_entry2));
	if (c)
		memcpy(c, t, sizeof(*t) + t->nent * sizeof(struct kvm_cpuid_entry2));
	return c;
}

/* The VM's CPUID table: KVM's supported set, then the template's modifiers
 * (Firecracker's configure_vcpus_for_boot applies them first, then
 * normalizes a copy per vCPU).  A trial normalization for vCPU 0 refuses
 * now what Firecracker would refuse at InstanceStart and fixes the entry
 * count every vCPU gets (only values differ per vCPU). */
static int cpuid_build(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
		       struct sqb_diag *diag)
{
	struct kvm_cpuid2 *c = NULL, *trial;
	char why[sizeof(diag->reason)];
	unsigned int cap;
	size_t sz;
	int err = 0;

	pthread_mutex_lock(&probe_lock);
	if (!supported_cpuid)
		err = probe_cpuid(vm->kvm_fd, &supported_cpuid);
	if (!host_cpuid_read) {
		sqb_cpuid_host_read(&host_cpuid);
		host_cpuid_read = 1;
	}
	if (!err) {
		sz = sizeof(*c) + supported_cpuid->nent * sizeof(struct kvm_cpuid_entry2);
		c = malloc(sz);
		if (c)
			memcpy(c, supported_cpuid, sz);
		else
			err = -ENOMEM;
	}
	pthread_mutex_unlock(&probe_lock);
	if (err) {
		template_diag(diag, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-err));
		if (diag)
			snprintf(diag->section, sizeof(diag->section), "kvm");
		return err;
	}
	if (t) {
		uint32_t bad[2];

		err = sqb_kvm_cpuid_apply(c, t, bad);
		if (err) {
			/* CpuConfigurationError::CpuidFeatureNotSupported ({0:0x}: hex, no prefix)
			 */
			template_diag(diag,
				      "Template changes a CPUID entry not supported by KVM: "
				      "Leaf: %x, Subleaf: %x",
				      bad[0], bad[1]);
			free(c);
			return err;
		}
	}
	trial = cpuid_copy(c, &cap);
	err = trial
		  ? sqb_cpuid_normalize(trial, cap, &host_cpuid, 0, vm->nvcpus, 1, why, sizeof(why))
		  : -ENOMEM;
	if (err) {
		if (trial)
			cpuid_diag(diag, why);
		free(trial);
		free(c);
		return err;
	}
	free(vm->arch.cpuid);
	vm->arch.cpuid = c;
	vm->arch.cpuid_nent = trial->nent;
	free(trial);
	return 0;
}

int sqb_kvm_cpuid_init(struct sqb_hv_vm *vm, struct sqb_diag *diag)
{
	return cpuid_build(vm, NULL, diag);
}

/* Firecracker's arch/x86_64/kvm.rs DEFAULT_CAPABILITIES: what a template's
 * "!N" can drop from the check and "N" adds to it. */
static const uint32_t default_caps[] = {
    KVM_CAP_IRQCHIP,	  KVM_CAP_IOEVENTFD, KVM_CAP_IRQFD,	  KVM_CAP_USER_MEMORY,
    KVM_CAP_SET_TSS_ADDR, KVM_CAP_PIT2,	     KVM_CAP_PIT_STATE2,  KVM_CAP_ADJUST_CLOCK,
    KVM_CAP_DEBUGREGS,	  KVM_CAP_MP_STATE,  KVM_CAP_VCPU_EVENTS, KVM_CAP_XCRS,
    KVM_CAP_XSAVE,	  KVM_CAP_EXT_CPUID,
};

static int caps_check(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t, struct sqb_diag *diag)
{
	uint32_t caps[sizeof(default_caps) / sizeof(default_caps[0]) + 64];
	unsigned int n = sizeof(default_caps) / sizeof(default_caps[0]);

	memcpy(caps, default_caps, sizeof(default_caps));
	/* vstate/kvm.rs combine_capabilities: in order, add if absent, remove if present */
	for (unsigned int i = 0; i < t->ncaps; i++) {
		unsigned int j;

		for (j = 0; j < n && caps[j] != t->caps[i].cap; j++)
			;
		if (t->caps[i].remove && j < n)
			caps[j] = caps[--n];
		else if (!t->caps[i].remove && j == n && n < sizeof(caps) / sizeof(caps[0]))
			caps[n++] = t->caps[i].cap;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, (unsigned long)caps[i]) > 0)
			continue;
		template_diag(diag, "Missing KVM capabilities: %#x",
			      caps[i]); /* KvmError::Capabilities */
		return -SQB_EUNSUPPORTED;
	}
	return 0;
}

/* A template's MSRs join the snapshot list (Firecracker's msrs_to_save
 * takes them too), so a save keeps what the template set. */
static int msr_index_add(struct sqb_hv_vm *vm, uint32_t addr)
{
	uint32_t *l;

	for (unsigned int i = 0; i < vm->arch.nmsr_index; i++)
		if (vm->arch.msr_index[i] == addr)
			return 0;
	l = realloc(vm->arch.msr_index, (vm->arch.nmsr_index + 1) * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l[vm->arch.nmsr_index++] = addr;
	vm->arch.msr_index = l;
	return 0;
}

int sqb_kvm_cpu_template(struct sqb_hv_vm *vm, const struct sqb_cpu_template *t,
			 struct sqb_diag *diag)
{
	int err;

	if ((err = caps_check(vm, t, diag)) < 0)
		return err;
	if (t->ncpuid && (err = cpuid_build(vm, t, diag)) < 0)
		return err;
	free(vm->arch.msr_mods);
	vm->arch.msr_mods = NULL;
	vm->arch.nmsr_mods = 0;
	if (!t->nmsrs)
		return 0;
	vm->arch.msr_mods = calloc(t->nmsrs, sizeof(*t->msrs));
	if (!vm->arch.msr_mods)
		return -ENOMEM;
	memcpy(vm->arch.msr_mods, t->msrs, t->nmsrs * sizeof(*t->msrs));
	vm->arch.nmsr_mods = t->nmsrs;
	for (unsigned int i = 0; i < t->nmsrs; i++)
		if ((err = msr_index_add(vm, t->msrs[i].addr)) < 0)
			return err;
	return 0;
}

/* This vCPU's CPUID: the VM table normalized for its index (APIC ID),
 * the vCPU count and threads per core (two with smt and more than one
 * vCPU, as Firecracker's cpu_bits).  A snapshot load replaces it with the
 * saved table as it is (kvm_snapshot.c load_cpuid). */
int sqb_kvm_cpuid_set(struct sqb_hv_vcpu *vc, struct sqb_diag *diag)
{
	unsigned int cap, tpc = (vc->vm->smt && vc->vm->nvcpus > 1) ? 2 : 1;
	char why[sizeof(diag->reason)];
	struct kvm_cpuid2 *c;
	int err;

	c = cpuid_copy(vc->vm->arch.cpuid, &cap);
	if (!c)
		return -ENOMEM;
	err = sqb_cpuid_normalize(c, cap, &host_cpuid, vc->index, vc->vm->nvcpus, tpc, why,
				  sizeof(why));
	if (err)
		cpuid_diag(diag, why);
	else if (ioctl(vc->fd, KVM_SET_CPUID2, c) < 0)
		err = -errno;
	free(c);
	return err;
}

/* Probe which MSRs from the host's index list can actually be read, so a
 * snapshot never asks for one PVM (or any host) refuses. */
static int probe_msrs(int kvm_fd, struct kvm_msr_list **out)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int err = -errno;
		free(l);
		return err;
	}
	if (l->nmsrs > probe.nmsrs) { /* the list grew in between: never overrun */
		free(l);
		return -EAGAIN;
	}
	*out = l;
	return 0;
}

/* The host's MSR index list (probed once per process).  Per-vCPU
 * acceptance is checked where MSRs are set (msr_boot) and, for snapshots,
 * by the count KVM_GET_MSRS returns. */
int sqb_kvm_msr_init(struct sqb_hv_vm *vm)
{
	int err = 0;

	pthread_mutex_lock(&probe_lock);
	if (!msr_list)
		err = probe_msrs(vm->kvm_fd, &msr_list);
	if (!err) {
		vm->arch.msr_index = calloc(msr_list->nmsrs + 1, sizeof(uint32_t));
		if (vm->arch.msr_index) {
			memcpy(vm->arch.msr_index, msr_list->indices,
			       msr_list->nmsrs * sizeof(uint32_t));
			vm->arch.nmsr_index = msr_list->nmsrs;
		} else {
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&probe_lock);
	if (err) { /* no half-built list stays behind */
		vm->arch.msr_index = NULL;
		vm->arch.nmsr_index = 0;
	}
	return err;
}

struct boot_msr {
	uint32_t index;
	uint64_t value;
};

static const struct boot_msr boot_msrs[] = {
    {0x174, 0},		     /* IA32_SYSENTER_CS */
    {0x175, 0},		     /* IA32_SYSENTER_ESP */
    {0x176, 0},		     /* IA32_SYSENTER_EIP */
    {0xc0000081, 0},	     /* STAR */
    {0xc0000082, 0},	     /* LSTAR */
    {0xc0000083, 0},	     /* CSTAR */
    {0xc0000084, 0},	     /* SYSCALL_MASK */
    {0xc0000102, 0},	     /* KERNEL_GS_BASE */
    {0x10, 0},		     /* IA32_TSC */
    {0x1a0, 1},		     /* IA32_MISC_ENABLE: fast strings */
    {0x2ff, (1u << 11) | 6}, /* MTRRdefType: enabled, write-back */
};

static int msr_is_boot(uint32_t index)
{
	for (size_t i = 0; i < sizeof(boot_msrs) / sizeof(boot_msrs[0]); i++)
		if (boot_msrs[i].index == index)
			return 1;
	return 0;
}

/* A custom template's MSR modifiers, after the vCPU's CPUID is set (KVM
 * decides from it which MSRs exist) and before its first KVM_RUN: read the
 * value KVM gives the vCPU, replace the template's bits, write it back.
 * As Firecracker (configure_msrs_for_boot inserts the boot MSRs after the
 * template's), a boot MSR keeps its boot value; it is still read, so an
 * MSR KVM does not have is refused whichever it is. */
static int msr_template(struct sqb_hv_vcpu *vc, struct sqb_diag *diag)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m;

	for (unsigned int i = 0; i < vc->vm->arch.nmsr_mods; i++) {
		const struct sqb_msr_mod *mm = &vc->vm->arch.msr_mods[i];
		int rc;

		memset(&m, 0, sizeof(m));
		m.h.nmsrs = 1;
		m.e.index = mm->addr;
		rc = ioctl(vc->fd, KVM_GET_MSRS, &m);
		if (rc != 1) {
			/* CpuConfigurationError::MsrNotSupported ({0:0x}: hex, no prefix) */
			template_diag(diag,
				      "Template changes an MSR entry not supported by KVM: "
				      "Register Address: %x",
				      mm->addr);
			return rc < 0 ? -errno : -EINVAL;
		}
		if (msr_is_boot(mm->addr))
			continue;
		m.e.data = sqb_cpu_bits_apply(m.e.data, mm->filter, mm->value);
		rc = ioctl(vc->fd, KVM_SET_MSRS, &m);
		if (rc != 1) {
			template_diag(diag,
				      "KVM_SET_MSRS refused MSR 0x%x = 0x%llx set by the custom "
				      "CPU template",
				      mm->addr, (unsigned long long)m.e.data);
			return rc < 0 ? -errno : -EINVAL;
		}
	}
	return 0;
}

/* Set the boot MSRs: KVM_SET_MSRS sets entries in order and returns how many
 * it set before the first it refused, and a host may refuse some (PVM
 * refuses e.g. 0x10a); those are skipped with a debug note instead of
 * failing the VM, and the call goes on after them.  One call for all of
 * them where the host takes them all (each ioctl costs ~0.1 ms under PVM:
 * one at a time was a fifth of a snapshot load's VM creation). */
int sqb_kvm_msr_boot(struct sqb_hv_vcpu *vc, struct sqb_diag *diag)
{
	enum { NB = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[NB];
	} m;
	unsigned int set = 0;

	for (size_t i = 0; i < NB;) {
		memset(&m, 0, sizeof(m));
		m.h.nmsrs = (uint32_t)(NB - i);
		for (size_t k = i; k < NB; k++) {
			m.e[k - i].index = boot_msrs[k].index;
			m.e[k - i].data = boot_msrs[k].value;
		}
		int rc = ioctl(vc->fd, KVM_SET_MSRS, &m);
		if (rc < 0)
			return -errno;
		set += (unsigned int)rc;
		i += (size_t)rc;
		if (i < NB) {
			sqb_debug("host refused MSR 0x%x", boot_msrs[i].index);
			i++;
		}
	}
	if (!set)
		return -EINVAL;
	return msr_template(vc, diag);
}

static struct kvm_segment flat_seg(uint16_t sel, int code, int long_mode)
{
	struct kvm_segment s = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = code ? 11 : 3,
	    .present = 1,
	    .dpl = 0,
	    .db = long_mode && code ? 0 : 1,
	    .s = 1,
	    .l = long_mode && code ? 1 : 0,
	    .g = 1,
	};
	return s;
}

int sqb_kvm_vcpu_set_entry(struct sqb_hv_vcpu *vc, const struct sqb_arch_entry *e)
{
	int lm = e->mode == SQB_X86_ENTRY_LONG64;
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vc->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = flat_seg(e->cs_sel, 1, lm);
	s.ds = s.es = s.fs = s.gs = s.ss = flat_seg(e->ds_sel, 0, lm);
	s.gdt.base = e->gdt_base;
	s.gdt.limit = e->gdt_limit;
	s.cr0 = 0x11; /* PE | ET */
	s.cr4 = 0;
	s.efer = 0;
	if (lm) {
		s.cr0 |= 0x80000000u; /* PG */
		s.cr3 = e->cr3;
		s.cr4 = 0x20;	/* PAE */
		s.efer = 0x500; /* LME | LMA */
	}
	if (ioctl(vc->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	memset(&r, 0, sizeof(r));
	r.rip = e->rip;
	r.rsp = e->rsp;
	r.rsi = e->rsi;
	r.rbx = e->rbx;
	r.rflags = 2;
	if (ioctl(vc->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

size_t sqb_kvm_vcpu_state_size(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind)
{
	switch (kind) {
	case SQB_HV_VCPU_CPUID:
		return sizeof(struct kvm_cpuid2) +
		       vc->vm->arch.cpuid_nent * sizeof(struct kvm_cpuid_entry2);
	case SQB_HV_VCPU_TSC_KHZ:
		return sizeof(uint32_t);
	case SQB_HV_VCPU_REGS:
		return sizeof(struct kvm_regs);
	case SQB_HV_VCPU_SREGS:
		return sizeof(struct kvm_sregs);
	case SQB_HV_VCPU_XCRS:
		return sizeof(struct kvm_xcrs);
	case SQB_HV_VCPU_FPU:
		return sizeof(struct kvm_fpu);
	case SQB_HV_VCPU_XSAVE:
		return sizeof(struct kvm_xsave);
	case SQB_HV_VCPU_LAPIC:
		return sizeof(struct kvm_lapic_state);
	case SQB_HV_VCPU_EVENTS:
		return sizeof(struct kvm_vcpu_events);
	case SQB_HV_VCPU_MP_STATE:
		return sizeof(struct kvm_mp_state);
	case SQB_HV_VCPU_DEBUGREGS:
		return sizeof(struct kvm_debugregs);
	case SQB_HV_VCPU_MSRS:
		return sizeof(struct kvm_msrs) +
		       vc->vm->arch.nmsr_index * sizeof(struct kvm_msr_entry);
	default:
		return 0;
	}
}

/* Read every MSR of the host's index list.  KVM_GET_MSRS stops at the
 * first MSR it refuses and returns how many it read; a refused index is
 * dropped from the VM's list for good (so later snapshots never ask for
 * it) and the read resumes after it.  Call with the VM paused, from one
 * thread (the list is shared by the VM's vCPUs). */
static int msrs_get(struct sqb_hv_vcpu *vc, struct kvm_msrs *m)
{
	struct sqb_hv_vm *vm = vc->vm;
	struct kvm_msrs *t;
	uint32_t done = 0;
	int err = 0;

	t = calloc(1, sizeof(*t) + vm->arch.nmsr_index * sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	while (done < vm->arch.nmsr_index) {
		uint32_t want = vm->arch.nmsr_index - done;
		int n;

		t->nmsrs = want;
		for (uint32_t i = 0; i < want; i++)
			t->entries[i] =
			    (struct kvm_msr_entry){.index = vm->arch.msr_index[done + i]};
		n = ioctl(vc->fd, KVM_GET_MSRS, t);
		if (n < 0) {
			err = -errno;
			break;
		}
		memcpy(&m->entries[done], t->entries, (size_t)n * sizeof(t->entries[0]));
		done += (uint32_t)n;
		if ((uint32_t)n < want) {
			sqb_debug("host refused to read MSR 0x%x; dropped",
				  vm->arch.msr_index[done]);
			memmove(&vm->arch.msr_index[done], &vm->arch.msr_index[done + 1],
				(vm->arch.nmsr_index - done - 1) * sizeof(uint32_t));
			vm->arch.nmsr_index--;
		}
	}
	free(t);
	m->nmsrs = done;
	m->pad = 0;
	return err;
}

static int msrs_set(struct sqb_hv_vcpu *vc, const struct kvm_msrs *m)
{
	int n = ioctl(vc->fd, KVM_SET_MSRS, (void *)m);

	if (n < 0)
		return -errno;
	if ((uint32_t)n != m->nmsrs) {
		sqb_debug("KVM_SET_MSRS stopped at MSR 0x%x (%d of %u)", m->entries[n].index, n,
			  m->nmsrs);
		return -EIO;
	}
	return 0;
}

static int state_ioctl(enum sqb_hv_vcpu_state_kind kind, int set, unsigned long *req)
{
	static const unsigned long tab[][2] = {
	    [SQB_HV_VCPU_REGS] = {KVM_GET_REGS, KVM_SET_REGS},
	    [SQB_HV_VCPU_SREGS] = {KVM_GET_SREGS, KVM_SET_SREGS},
	    [SQB_HV_VCPU_XCRS] = {KVM_GET_XCRS, KVM_SET_XCRS},
	    [SQB_HV_VCPU_FPU] = {KVM_GET_FPU, KVM_SET_FPU},
	    [SQB_HV_VCPU_XSAVE] = {KVM_GET_XSAVE, KVM_SET_XSAVE},
	    [SQB_HV_VCPU_LAPIC] = {KVM_GET_LAPIC, KVM_SET_LAPIC},
	    [SQB_HV_VCPU_EVENTS] = {KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS},
	    [SQB_HV_VCPU_MP_STATE] = {KVM_GET_MP_STATE, KVM_SET_MP_STATE},
	    [SQB_HV_VCPU_DEBUGREGS] = {KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS},
	};

	if ((unsigned int)kind >= sizeof(tab) / sizeof(tab[0]) || !tab[kind][0])
		return -ENOSYS;
	*req = tab[kind][set];
	return 0;
}

int sqb_kvm_vcpu_get_state(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind, void *buf)
{
	unsigned long req;

	if (kind == SQB_HV_VCPU_TSC_KHZ) {
		int khz = ioctl(vc->fd, KVM_GET_TSC_KHZ, 0);
		if (khz < 0)
			return -errno;
		*(uint32_t *)buf = (uint32_t)khz;
		return 0;
	}
	if (kind == SQB_HV_VCPU_CPUID) {
		struct kvm_cpuid2 *c = buf;
		c->nent = vc->vm->arch.cpuid_nent;
		return ioctl(vc->fd, KVM_GET_CPUID2, c) < 0 ? -errno : 0;
	}
	if (kind == SQB_HV_VCPU_MSRS)
		return msrs_get(vc, buf);
	FORWARD_IF_ERROR(state_ioctl(kind, 0, &req));
	return ioctl(vc->fd, req, buf) < 0 ? -errno : 0;
}

int sqb_kvm_vcpu_set_state(struct sqb_hv_vcpu *vc, enum sqb_hv_vcpu_state_kind kind,
			   const void *buf)
{
	unsigned long req;

	if (kind == SQB_HV_VCPU_TSC_KHZ)
		return ioctl(vc->fd, KVM_SET_TSC_KHZ, (unsigned long)*(const uint32_t *)buf) < 0
			   ? -errno
			   : 0;
	if (kind == SQB_HV_VCPU_CPUID)
		return ioctl(vc->fd, KVM_SET_CPUID2, buf) < 0 ? -errno : 0;
	if (kind == SQB_HV_VCPU_MSRS)
		return msrs_set(vc, buf);
	FORWARD_IF_ERROR(state_ioctl(kind, 1, &req));
	return ioctl(vc->fd, req, (void *)buf) < 0 ? -errno : 0;
}
