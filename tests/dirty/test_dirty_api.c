/* API contract of include/squib/dirty.h: option checking, bitmap bit order
 * across ranges, mark merging, the state machine, an empty first epoch for
 * every backend (no "first diff holds every page"), capability reporting
 * and the soft-dirty refusal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "dirty_tinyvm.h"
#include "squib/dirty.h"
#include "squib/errors.h"

#define PG 4096u

static uint8_t *map(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static int open1(sqb_dirty **d, enum sqb_dirty_backend b, uint64_t granule,
		 const struct sqb_dirty_range *r, unsigned n, int vmfd)
{
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;

	o.backend = b;
	o.granule = granule;
	o.ranges = r;
	o.nranges = n;
	o.kvm_vm_fd = vmfd;
	return sqb_dirty_open(d, &o);
}

static void test_open_rejects_bad_options(void **state)
{
	uint8_t *m = map(16 * PG);
	struct sqb_dirty_range r[2] = {{m, 0, 8 * PG}, {m + 8 * PG, 4 * PG, 8 * PG}};
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	sqb_dirty *d = (sqb_dirty *)1;

	(void)state;
	assert_int_equal(sqb_dirty_open(&d, NULL), -EINVAL);
	o.ranges = r;
	o.nranges = 0;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	assert_null(d); /* *out cleared on failure */
	o.nranges = 1;
	o.version = 99;
	assert_int_equal(sqb_dirty_open(&d, &o), -SQB_EVERSION);
	o.version = SQB_DIRTY_OPTS_VERSION;
	o.granule = 3 * PG;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	o.granule = 4u << 20;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	o.granule = 0;
	o.nranges = 2; /* gpa ranges overlap */
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	r[1].gpa = 64 * PG;
	r[1].host = m + 4 * PG; /* host ranges overlap */
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	r[1].host = m + 8 * PG + 1;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	r[1].host = m + 8 * PG;
	r[1].len = PG + 1;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL);
	o.backend = SQB_DIRTY_KVM; /* kvm needs a vm fd */
	r[1].len = 8 * PG;
	assert_int_not_equal(sqb_dirty_open(&d, &o), 0);
	o.backend = SQB_DIRTY_MPROTECT;
	assert_int_equal(sqb_dirty_open(&d, &o), 0);
	sqb_dirty_free(d);
	sqb_dirty_free(NULL);
	munmap(m, 16 * PG);
}

/* Two ranges of 3 and 70 granules: bit i is word i/64, bit i%64, ranges
 * concatenated without padding, whatever their gpa. */
static void test_bitmap_order_and_marks(void **state)
{
	uint8_t *m = map(73 * PG);
	struct sqb_dirty_range r[2] = {{m + 3 * PG, 0x100000, 70 * PG}, {m, 0x10000, 3 * PG}};
	uint64_t bm[2], n = 0;
	sqb_dirty *d;

	(void)state;
	assert_int_equal(open1(&d, SQB_DIRTY_MPROTECT, 0, r, 2, -1), 0);
	assert_int_equal(sqb_dirty_ngranules(d), 73);
	assert_int_equal(sqb_dirty_collect(d, bm, 2, &n), -SQB_ESTATE);
	assert_int_equal(sqb_dirty_mark(d, 0x100000 + 69 * PG, 1), 0); /* before start: kept */
	assert_int_equal(sqb_dirty_start(d), 0);
	assert_int_equal(sqb_dirty_start(d), -SQB_ESTATE);
	assert_int_equal(sqb_dirty_mark(d, 0x10000 + 2 * PG + 5, 1), 0); /* range 1, g 2 */
	assert_int_equal(sqb_dirty_mark(d, 0x100000 + PG - 1, 2), 0);	 /* g 0 and 1 */
	assert_int_equal(sqb_dirty_mark(d, 0x10000 + 3 * PG, 1), -SQB_ENOTFOUND);
	assert_int_equal(sqb_dirty_mark(d, 0x10000 + 2 * PG, 2 * PG), -SQB_ENOTFOUND);
	assert_int_equal(sqb_dirty_mark(d, 0, 0), 0);
	assert_int_equal(sqb_dirty_fault(d, 0x10000), -ENOTSUP);    /* not exit-driven */
	assert_int_equal(sqb_dirty_collect(d, bm, 1, &n), -EINVAL); /* too small */
	assert_int_equal(sqb_dirty_collect(d, bm, 2, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(bm[0], (1ull << 0) | (1ull << 1));
	assert_int_equal(bm[1], (1ull << (69 - 64)) | (1ull << (72 - 64)));
	/* A host write through the tracked range shows up too. */
	m[3 * PG + 64 * PG] = 1; /* range 0 granule 64 */
	assert_int_equal(sqb_dirty_collect(d, bm, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bm[0], 0);
	assert_int_equal(bm[1], 1);
	assert_int_equal(sqb_dirty_stop(d), 0);
	assert_int_equal(sqb_dirty_stop(d), -SQB_ESTATE);
	m[0] = 1;				 /* writable again after stop */
	assert_int_equal(sqb_dirty_start(d), 0); /* restart: clean */
	assert_int_equal(sqb_dirty_collect(d, bm, 2, &n), 0);
	assert_int_equal(n, 0);
	sqb_dirty_free(d); /* while armed */
	munmap(m, 73 * PG);
}

/* Per backend: an armed tracker with no writes reports nothing, then
 * exactly the written granules, then nothing again. */
static void clean_then_exact(enum sqb_dirty_backend b)
{
	const size_t len = 64 * PG;
	uint8_t *m = map(len);
	struct sqb_dirty_range r = {m, 1ull << 30, len, 1, 0};
	struct tinyvm vm = {.vm = -1};
	uint32_t gpas[3] = {(1u << 30) + 5 * PG, (1u << 30) + 6 * PG + 9, (1u << 30) + 63 * PG};
	struct sqb_dirty_stats st;
	uint64_t bm[1], n = 99;
	unsigned caps;
	sqb_dirty *d;

	if (sqb_dirty_caps(&caps, b) != 0) {
		fprintf(stderr, "skip %s: unavailable here\n", sqb_dirty_backend_name(b));
		munmap(m, len);
		return;
	}
	memset(m, 7, len / 2); /* half populated, half never touched */
	if (b == SQB_DIRTY_KVM && tinyvm_open(&vm, &r, 1) != 0) {
		fprintf(stderr, "skip kvm: no usable /dev/kvm\n");
		munmap(m, len);
		return;
	}
	assert_int_equal(open1(&d, b, 0, &r, 1, vm.vm), 0);
	assert_int_equal(sqb_dirty_backend_of(d), b);
	assert_int_equal(sqb_dirty_start(d), 0);
	assert_int_equal(sqb_dirty_collect(d, bm, 1, &n), 0);
	assert_int_equal(n, 0);
	if (b == SQB_DIRTY_KVM) {
		assert_int_equal(tinyvm_touch(&vm, gpas, 3), 0);
	} else {
		for (int i = 0; i < 3; i++)
			m[gpas[i] - (1u << 30)]++;
	}
	assert_int_equal(sqb_dirty_collect(d, bm, 1, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(bm[0], (1ull << 5) | (1ull << 6) | (1ull << 63));
	assert_int_equal(sqb_dirty_collect(d, bm, 1, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sqb_dirty_stats(d, &st), 0);
	assert_int_equal(st.collects, 3);
	assert_int_equal(st.reported, 3);
	if (b == SQB_DIRTY_MPROTECT || b == SQB_DIRTY_UFFD_WP)
		assert_true(st.faults >= 3);
	assert_int_equal(sqb_dirty_stop(d), 0);
	if (b == SQB_DIRTY_KVM) {
		/* The contract: stop re-issued the slot without dirty logging. */
		struct kvm_dirty_log log = {.slot = 1, .dirty_bitmap = bm};

		assert_int_not_equal(ioctl(vm.vm, KVM_GET_DIRTY_LOG, &log), 0);
		assert_int_equal(errno, ENOENT);
	}
	sqb_dirty_free(d);
	if (b == SQB_DIRTY_KVM)
		tinyvm_close(&vm);
	munmap(m, len);
}

static void test_first_epoch_clean_mprotect(void **state)
{
	(void)state;
	clean_then_exact(SQB_DIRTY_MPROTECT);
}

static void test_first_epoch_clean_uffd_wp(void **state)
{
	(void)state;
	clean_then_exact(SQB_DIRTY_UFFD_WP);
}

static void test_first_epoch_clean_uffd_async(void **state)
{
	(void)state;
	clean_then_exact(SQB_DIRTY_UFFD_ASYNC);
}

static void test_first_epoch_clean_kvm(void **state)
{
	(void)state;
	clean_then_exact(SQB_DIRTY_KVM);
}

static void test_caps_are_honest(void **state)
{
	unsigned c = 0;

	(void)state;
	sqb_dirty_caps(&c, SQB_DIRTY_MPROTECT);
	assert_int_equal(c, SQB_DIRTY_SEES_HOST);
	sqb_dirty_caps(&c, SQB_DIRTY_KVM);
	assert_int_equal(c, SQB_DIRTY_SEES_GUEST);
	sqb_dirty_caps(&c, SQB_DIRTY_UFFD_WP);
	assert_int_equal(c, SQB_DIRTY_SEES_GUEST | SQB_DIRTY_SEES_HOST | SQB_DIRTY_SEES_KERNEL);
	sqb_dirty_caps(&c, SQB_DIRTY_UFFD_ASYNC);
	assert_int_equal(c, SQB_DIRTY_SEES_GUEST | SQB_DIRTY_SEES_HOST | SQB_DIRTY_SEES_KERNEL);
	assert_int_equal(sqb_dirty_caps(&c, SQB_DIRTY_AUTO), -EINVAL);
	assert_int_equal(sqb_dirty_caps(NULL, SQB_DIRTY_KVM), -EINVAL);
	assert_string_equal(sqb_dirty_backend_name(SQB_DIRTY_UFFD_ASYNC), "uffd-async");
}

/* Soft-dirty must never hand out an empty set from a mechanism that is off:
 * it is always refused, whether or not the kernel has it. */
static void test_soft_dirty_refused(void **state)
{
	uint8_t *m = map(4 * PG);
	struct sqb_dirty_range r = {m, 0, 4 * PG};
	sqb_dirty *d = NULL;
	unsigned c;

	(void)state;
	assert_int_equal(sqb_dirty_caps(&c, SQB_DIRTY_SOFTDIRTY), -ENOTSUP);
	assert_int_equal(open1(&d, SQB_DIRTY_SOFTDIRTY, 0, &r, 1, -1), -ENOTSUP);
	assert_null(d);
	munmap(m, 4 * PG);
}

static void test_auto_prefers_async_then_wp_then_mprotect(void **state)
{
	uint8_t *m = map(4 * PG);
	struct sqb_dirty_range r = {m, 0, 4 * PG};
	enum sqb_dirty_backend want = SQB_DIRTY_MPROTECT;
	unsigned c;
	sqb_dirty *d;

	(void)state;
	if (sqb_dirty_caps(&c, SQB_DIRTY_UFFD_ASYNC) == 0)
		want = SQB_DIRTY_UFFD_ASYNC;
	else if (sqb_dirty_caps(&c, SQB_DIRTY_UFFD_WP) == 0)
		want = SQB_DIRTY_UFFD_WP;
	assert_int_equal(open1(&d, SQB_DIRTY_AUTO, 0, &r, 1, -1), 0);
	assert_int_equal(sqb_dirty_backend_of(d), want);
	sqb_dirty_free(d);
	munmap(m, 4 * PG);
}

/* The exit-driven (hvf-shaped) backend, driven by hand: start strips write
 * permission through the callback, a reported fault logs and re-grants one
 * granule, collect re-protects exactly what it reported. */
struct prot_log {
	int calls;
	uint64_t gpa, len;
	int writable;
};

static int log_protect(void *ctx, uint64_t gpa, uint64_t len, int writable)
{
	struct prot_log *l = ctx;

	l->calls++;
	l->gpa = gpa;
	l->len = len;
	l->writable = writable;
	return 0;
}

static void test_exit_backend_protocol(void **state)
{
	uint8_t *m = map(32 * PG);
	struct sqb_dirty_range r = {m, 0x200000, 32 * PG};
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	struct prot_log l = {0};
	uint64_t bm[1], n;
	sqb_dirty *d;

	(void)state;
	o.backend = SQB_DIRTY_EXIT;
	o.granule = 16384;
	o.ranges = &r;
	o.nranges = 1;
	assert_int_equal(sqb_dirty_open(&d, &o), -EINVAL); /* no callback */
	o.protect = log_protect;
	o.protect_ctx = &l;
	assert_int_equal(sqb_dirty_open(&d, &o), 0);
	assert_int_equal(sqb_dirty_start(d), 0);
	assert_true(l.calls == 1 && l.gpa == 0x200000 && l.len == 32 * PG && !l.writable);
	assert_int_equal(sqb_dirty_fault(d, 0x200000 + 5 * PG + 7), 1);
	assert_true(l.calls == 2 && l.gpa == 0x200000 + 4 * PG && l.len == 16384 && l.writable);
	assert_int_equal(sqb_dirty_fault(d, 0x100000), 0); /* not ours: a real fault */
	assert_int_equal(sqb_dirty_collect(d, bm, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bm[0], 1ull << 1);
	assert_true(l.calls == 3 && l.gpa == 0x200000 + 4 * PG && l.len == 16384 && !l.writable);
	assert_int_equal(sqb_dirty_stop(d), 0);
	assert_true(l.calls == 4 && l.len == 32 * PG && l.writable);
	sqb_dirty_free(d);
	munmap(m, 32 * PG);
}

static int failing_protect(void *ctx, uint64_t gpa, uint64_t len, int writable)
{
	int *fail_next = ctx;

	(void)gpa;
	(void)len;
	(void)writable;
	return (*fail_next)-- > 0 ? -EIO : 0;
}

/* A collect that cannot re-arm must not pretend: it fails, the tracker
 * refuses further collects until stop/start, and restarting works. */
static void test_failed_collect_is_sticky(void **state)
{
	uint8_t *m = map(8 * PG);
	struct sqb_dirty_range r = {m, 0, 8 * PG};
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	int fail_next = 0;
	uint64_t bm[1];
	sqb_dirty *d;

	(void)state;
	o.backend = SQB_DIRTY_EXIT;
	o.ranges = &r;
	o.nranges = 1;
	o.protect = failing_protect;
	o.protect_ctx = &fail_next;
	assert_int_equal(sqb_dirty_open(&d, &o), 0);
	assert_int_equal(sqb_dirty_start(d), 0);
	assert_int_equal(sqb_dirty_fault(d, 3 * PG), 1);
	fail_next = 1; /* the re-protect inside the next collect fails */
	assert_int_equal(sqb_dirty_collect(d, bm, 1, NULL), -EIO);
	assert_int_equal(sqb_dirty_collect(d, bm, 1, NULL), -SQB_ESTATE);
	assert_int_equal(sqb_dirty_stop(d), 0);
	assert_int_equal(sqb_dirty_start(d), 0);
	assert_int_equal(sqb_dirty_collect(d, bm, 1, NULL), 0);
	assert_int_equal(bm[0], 0);
	sqb_dirty_free(d);
	munmap(m, 8 * PG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_rejects_bad_options),
	    cmocka_unit_test(test_bitmap_order_and_marks),
	    cmocka_unit_test(test_first_epoch_clean_mprotect),
	    cmocka_unit_test(test_first_epoch_clean_uffd_wp),
	    cmocka_unit_test(test_first_epoch_clean_uffd_async),
	    cmocka_unit_test(test_first_epoch_clean_kvm),
	    cmocka_unit_test(test_caps_are_honest),
	    cmocka_unit_test(test_soft_dirty_refused),
	    cmocka_unit_test(test_auto_prefers_async_then_wp_then_mprotect),
	    cmocka_unit_test(test_exit_backend_protocol),
	    cmocka_unit_test(test_failed_collect_is_sticky),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
