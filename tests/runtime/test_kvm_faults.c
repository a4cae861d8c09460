/* Unit, no /dev/kvm: the KVM backend's x86 set-up and state capture against
 * a fake /dev/kvm (ioctl and calloc wrapped at link time, -Wl,--wrap).
 * Regressions: KVM_GET_SUPPORTED_CPUID answered E2BIG for a 256-entry
 * buffer and squib gave up; a failed second KVM_GET_MSR_INDEX_LIST left a
 * half-built msr_index behind (leaked); a failed TSC record allocation was
 * dropped silently and the snapshot lacked the guest's TSC frequency. */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm_priv.h"
#include "squib/runtime.h"
#include "squib/snapfmt.h"

#define FAKE_FD 7777

static unsigned int host_cpuid_leaves = 300; /* more than the first guess */
static int msr_second_call_fails;
static int fail_calloc_8;
/* custom CPU templates: what the vCPU was given */
static struct kvm_cpuid_entry2 set_leaf1, set_leaf2;
static uint64_t set_pat, set_misc;
static unsigned int pat_sets, misc_sets;
/* boot MSRs: the host refuses these two indexes; what was set, in order */
static uint32_t refuse_msr[2];
static uint32_t msrs_set[64];
static unsigned int nmsrs_set, set_msrs_calls;

int __real_ioctl(int fd, unsigned long req, ...);
void *__real_calloc(size_t n, size_t sz);

void *__wrap_calloc(size_t n, size_t sz)
{
	if (fail_calloc_8 && n == 1 && sz == 8) {
		fail_calloc_8 = 0;
		return NULL;
	}
	return __real_calloc(n, sz);
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != FAKE_FD)
		return __real_ioctl(fd, req, arg);
	switch (req) {
	case KVM_GET_SUPPORTED_CPUID: {
		struct kvm_cpuid2 *c = arg;
		if (c->nent < host_cpuid_leaves) {
			errno = E2BIG;
			return -1;
		}
		c->nent = host_cpuid_leaves;
		/* basic leaves, then the ten extended ones normalization needs */
		for (unsigned int i = 0; i < c->nent; i++)
			c->entries[i] = (struct kvm_cpuid_entry2){
			    .function = i + 10 < c->nent ? i : 0x80000000u + (i + 10 - c->nent)};
		return 0;
	}
	case KVM_GET_MSR_INDEX_LIST: {
		struct kvm_msr_list *l = arg;
		if (l->nmsrs < 5) {
			l->nmsrs = 5;
			errno = E2BIG;
			return -1;
		}
		if (msr_second_call_fails) {
			errno = EFAULT;
			return -1;
		}
		for (unsigned int i = 0; i < 5; i++)
			l->indices[i] = 0x10 + i;
		l->nmsrs = 5;
		return 0;
	}
	case KVM_GET_TSC_KHZ:
		return 2500000;
	case KVM_CHECK_EXTENSION:
		return (unsigned long)arg == 4242 ? 0 : 1;
	case KVM_SET_CPUID2: {
		struct kvm_cpuid2 *c = arg;
		for (unsigned int i = 0; i < c->nent; i++) {
			if (c->entries[i].function == 1)
				set_leaf1 = c->entries[i];
			if (c->entries[i].function == 2)
				set_leaf2 = c->entries[i];
		}
		return 0;
	}
	case KVM_GET_MSRS: {
		struct kvm_msrs *m = arg;
		/* one-entry reads of the template's MSRs; others read nothing */
		if (m->nmsrs == 1 && m->entries[0].index == 0x277) {
			m->entries[0].data = 0x0007040600070406ULL;
			return 1;
		}
		if (m->nmsrs == 1 && m->entries[0].index == 0x1a0) {
			m->entries[0].data = 1;
			return 1;
		}
		return 0;
	}
	case KVM_SET_MSRS: {
		struct kvm_msrs *m = arg;
		set_msrs_calls++;
		for (unsigned int i = 0; i < m->nmsrs; i++) {
			/* KVM stops at the first entry it refuses: the count set */
			if (m->entries[i].index == refuse_msr[0] ||
			    m->entries[i].index == refuse_msr[1])
				return (int)i;
			if (nmsrs_set < 64)
				msrs_set[nmsrs_set++] = m->entries[i].index;
			if (m->entries[i].index == 0x277)
				set_pat = m->entries[i].data, pat_sets++;
			if (m->entries[i].index == 0x1a0)
				set_misc = m->entries[i].data, misc_sets++;
		}
		return (int)m->nmsrs;
	}
	default:
		return 0; /* every other state ioctl: zeroed state */
	}
}

static void test_cpuid_grows_on_e2big(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD, .nvcpus = 1};

	(void)state;
	assert_int_equal(sqb_kvm_cpuid_init(&vm, NULL), 0);
	assert_non_null(vm.arch.cpuid);
	assert_int_equal(vm.arch.cpuid->nent, 300);
	assert_int_equal(vm.arch.cpuid->entries[289].function, 289);
	assert_int_equal(vm.arch.cpuid->entries[299].function, 0x80000009u);
	free(vm.arch.cpuid);
	host_cpuid_leaves = 100000; /* absurd: refused, not an endless loop */
	vm.arch.cpuid = NULL;
	sqb_kvm_probe_cache_reset(); /* probes are cached per process (docs/fleet.md) */
	assert_int_equal(sqb_kvm_cpuid_init(&vm, NULL), -E2BIG);
	assert_null(vm.arch.cpuid);
	host_cpuid_leaves = 300;
}

static void test_msr_index_not_left_behind(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD};

	(void)state;
	msr_second_call_fails = 1;
	sqb_kvm_probe_cache_reset();
	assert_int_equal(sqb_kvm_msr_init(&vm), -EFAULT);
	assert_null(vm.arch.msr_index); /* freed, not leaked (LeakSanitizer agrees) */
	assert_int_equal(vm.arch.nmsr_index, 0);
	msr_second_call_fails = 0;
	assert_int_equal(sqb_kvm_msr_init(&vm), 0);
	assert_int_equal(vm.arch.nmsr_index, 5);
	assert_int_equal(vm.arch.msr_index[4], 0x14);
	free(vm.arch.msr_index);
}

static void test_tsc_record_never_dropped(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD, .nvcpus = 1};
	struct sqb_hv_vcpu vc = {.vm = &vm, .fd = FAKE_FD};
	struct sqb_record recs[32];
	unsigned int n = 0;
	int rc, has_tsc = 0;

	(void)state;
	assert_int_equal(sqb_kvm_cpuid_init(&vm, NULL), 0);
	assert_int_equal(sqb_kvm_msr_init(&vm), 0);
	fail_calloc_8 = 1; /* the 8-byte X86_TSC_KHZ payload */
	rc = sqb_kvm_vcpu_save_records(&vc, recs, 32, &n);
	for (unsigned int i = 0; i < n; i++) {
		has_tsc |= recs[i].tag == SQB_REC_X86_TSC_KHZ;
		free((void *)recs[i].data);
	}
	/* either the capture fails, or it carries the TSC: never a silent gap */
	assert_true(rc == -ENOMEM || (rc == 0 && has_tsc));
	assert_int_equal(rc, -ENOMEM);
	fail_calloc_8 = 0;
	n = 0;
	assert_int_equal(sqb_kvm_vcpu_save_records(&vc, recs, 32, &n), 0);
	has_tsc = 0;
	for (unsigned int i = 0; i < n; i++) {
		has_tsc |= recs[i].tag == SQB_REC_X86_TSC_KHZ;
		free((void *)recs[i].data);
	}
	assert_true(has_tsc);
	free(vm.arch.cpuid);
	free(vm.arch.msr_index);
}

/* A custom CPU template (PUT /cpu-config) on the fake host: the capability
 * check, CPUID modifiers before squib's filter in what KVM_SET_CPUID2 gets,
 * a missing leaf refused with Firecracker's text, MSR modifiers read,
 * modified and written on the vCPU, a boot MSR kept, a missing MSR refused. */
static void test_cpu_template(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD, .nvcpus = 1};
	struct sqb_hv_vcpu vc = {.vm = &vm, .fd = FAKE_FD};
	struct sqb_cpu_kvm_cap caps[] = {{4242, 0}, {4242, 1}};
	struct sqb_cpu_reg_mod regs[] = {
	    /* leaf 1 ecx: set MONITOR (3) and bit 0, clear hypervisor (31) */
	    {.reg = 2, .filter = 0x80000009u, .value = 0x9},
	    {.reg = 1, .filter = 0xffu, .value = 0xa5}, /* leaf 2 ebx low byte */
	};
	struct sqb_cpuid_mod cpuid[] = {
	    {.leaf = 1, .subleaf = 0, .flags = 0, .first = 0, .count = 1},
	    {.leaf = 2, .subleaf = 0, .flags = 1, .first = 1, .count = 1},
	};
	struct sqb_msr_mod msrs[] = {
	    {0x277, 0xff00000000000000ULL, 0x0100000000000000ULL},
	    {0x1a0, 1, 0}, /* a boot MSR: keeps squib's boot value */
	};
	struct sqb_cpu_template t = {.ncaps = 1, .caps = caps};
	struct sqb_diag diag = {0};

	(void)state;
	sqb_kvm_probe_cache_reset();
	assert_int_equal(sqb_kvm_cpuid_init(&vm, NULL), 0);
	assert_int_equal(sqb_kvm_msr_init(&vm), 0);
	/* "4242" is missing; "4242" then "!4242" drops it again */
	assert_int_equal(sqb_kvm_cpu_template(&vm, &t, &diag), -SQB_EUNSUPPORTED);
	assert_string_equal(diag.reason, "Missing KVM capabilities: 0x1092");
	t.ncaps = 2;
	t.ncpuid = 2, t.cpuid = cpuid, t.nregs = 2, t.regs = regs;
	t.nmsrs = 2, t.msrs = msrs;
	assert_int_equal(sqb_kvm_cpu_template(&vm, &t, &diag), 0);
	assert_int_equal(vm.arch.msr_index[vm.arch.nmsr_index - 1], 0x1a0); /* saved too */
	assert_int_equal(sqb_kvm_cpuid_set(&vc, NULL), 0);
	/* bits 0 and 3 (MONITOR) from the template; normalization then sets
	 * the hypervisor and TSC-deadline bits (Firecracker's
	 * template-then-normalize order; it leaves MONITOR to the template) */
	assert_int_equal(set_leaf1.ecx, 0x81000009u);
	assert_int_equal(set_leaf2.ebx, 0xa5u);
	assert_int_equal(set_leaf2.flags, 1u);
	pat_sets = misc_sets = 0;
	assert_int_equal(sqb_kvm_msr_boot(&vc, &diag), 0);
	assert_int_equal(pat_sets, 1);
	assert_int_equal(set_pat, 0x0107040600070406ULL);
	assert_int_equal(misc_sets, 1); /* the boot write only */
	assert_int_equal(set_misc, 1);
	/* a leaf and an MSR KVM does not have */
	cpuid[1].leaf = 0x4fffffff;
	assert_int_equal(sqb_kvm_cpu_template(&vm, &t, &diag), -ENOENT);
	assert_string_equal(diag.reason, "Template changes a CPUID entry not supported by KVM: "
					 "Leaf: 4fffffff, Subleaf: 0");
	cpuid[1].leaf = 2;
	msrs[1].addr = 0x9999;
	assert_int_equal(sqb_kvm_cpu_template(&vm, &t, &diag), 0);
	assert_int_equal(sqb_kvm_msr_boot(&vc, &diag), -EINVAL);
	assert_string_equal(diag.reason, "Template changes an MSR entry not supported by KVM: "
					 "Register Address: 9999");
	free(vm.arch.cpuid);
	free(vm.arch.msr_index);
	free(vm.arch.msr_mods);
}

/* The boot MSRs go in one KVM_SET_MSRS; one the host refuses (KVM stops
 * there and returns the count set) is skipped and the call goes on with
 * the rest; every other one is set once, in order. */
static void test_boot_msrs_skip_refused(void **state)
{
	static const uint32_t boot[] = {0x174,	    0x175,	0x176,	    0xc0000081,
					0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102,
					0x10,	    0x1a0,	0x2ff};
	static const uint32_t refuse[][2] = {
	    {0, 0}, {0xc0000083, 0}, {0x174, 0x2ff}, {0x175, 0x176}};
	static const unsigned int calls[] = {1, 2, 2, 3};
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD, .nvcpus = 1};
	struct sqb_hv_vcpu vc = {.vm = &vm, .fd = FAKE_FD};

	(void)state;
	for (size_t c = 0; c < sizeof(refuse) / sizeof(refuse[0]); c++) {
		unsigned int k = 0;

		refuse_msr[0] = refuse[c][0];
		refuse_msr[1] = refuse[c][1];
		nmsrs_set = set_msrs_calls = 0;
		assert_int_equal(sqb_kvm_msr_boot(&vc, NULL), 0);
		assert_int_equal(set_msrs_calls, calls[c]);
		for (size_t i = 0; i < sizeof(boot) / sizeof(boot[0]); i++)
			if (boot[i] != refuse[c][0] && boot[i] != refuse[c][1]) {
				assert_true(k < nmsrs_set);
				assert_int_equal(msrs_set[k++], boot[i]);
			}
		assert_int_equal(k, nmsrs_set);
	}
	refuse_msr[0] = refuse_msr[1] = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cpuid_grows_on_e2big),
	    cmocka_unit_test(test_msr_index_not_left_behind),
	    cmocka_unit_test(test_tsc_record_never_dropped),
	    cmocka_unit_test(test_cpu_template),
	    cmocka_unit_test(test_boot_msrs_skip_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
