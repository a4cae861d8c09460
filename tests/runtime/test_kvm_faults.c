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
#include "squib/snapfmt.h"

#define FAKE_FD 7777

static unsigned int host_cpuid_leaves = 300; /* more than the first guess */
static int msr_second_call_fails;
static int fail_calloc_8;

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
		for (unsigned int i = 0; i < c->nent; i++)
			c->entries[i] = (struct kvm_cpuid_entry2){.function = i};
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
	default:
		return 0; /* every other state ioctl: zeroed state */
	}
}

static void test_cpuid_grows_on_e2big(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = FAKE_FD, .vm_fd = FAKE_FD};

	(void)state;
	assert_int_equal(sqb_kvm_cpuid_init(&vm), 0);
	assert_non_null(vm.arch.cpuid);
	assert_int_equal(vm.arch.cpuid->nent, 300);
	assert_int_equal(vm.arch.cpuid->entries[299].function, 299);
	free(vm.arch.cpuid);
	host_cpuid_leaves = 100000; /* absurd: refused, not an endless loop */
	vm.arch.cpuid = NULL;
	sqb_kvm_probe_cache_reset(); /* probes are cached per process (docs/fleet.md) */
	assert_int_equal(sqb_kvm_cpuid_init(&vm), -E2BIG);
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
	assert_int_equal(sqb_kvm_cpuid_init(&vm), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cpuid_grows_on_e2big),
	    cmocka_unit_test(test_msr_index_not_left_behind),
	    cmocka_unit_test(test_tsc_record_never_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
