/* Unit: the VMClock device (runtime/dev_vmclock.c) without a hypervisor.
 * The page is checked against Linux's include/uapi/linux/vmclock-abi.h as
 * Firecracker fills it (vmclock.rs VmClock::new: magic, size, version 1,
 * counter_id 255, clock_status 0, flags VM_GEN_COUNTER_PRESENT |
 * NOTIFICATION_PRESENT), offsets written here by hand from that header; the
 * DEVS record against format.md [F-131] byte for byte; a load's update
 * against the ABI's seq_count protocol, observed write by write. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev.h"
#include "gmem.h"

#define PAGE 0xfe000ULL

static unsigned int pulses;

static void count_pulse(struct sqb_irq *irq)
{
	(void)irq;
	pulses++;
}

static uint64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* struct vmclock_abi offsets (vmclock-abi.h): magic 0, size 4, version 8,
 * counter_id 10, time_type 11, seq_count 12, disruption_marker 16, flags
 * 24, pad 32, clock_status 34, ... vm_generation_counter 104; 112 bytes. */
static void check_initial_page(const uint8_t *p)
{
	assert_int_equal(le(p + 0, 4), 0x4b4c4356); /* VMCLOCK_MAGIC */
	assert_int_equal(le(p + 4, 4), 0x1000);
	assert_int_equal(le(p + 8, 2), 1);
	assert_int_equal(p[10], 255); /* VMCLOCK_COUNTER_INVALID */
	assert_int_equal(p[11], 0);
	assert_int_equal(le(p + 12, 4), 0);
	assert_int_equal(le(p + 16, 8), 0);
	assert_int_equal(le(p + 24, 8), (1u << 8) | (1u << 9));
	assert_int_equal(p[34], 0); /* VMCLOCK_STATUS_UNKNOWN */
	assert_int_equal(le(p + 104, 8), 0);
}

static struct sqb_dev *make(struct sqb_gmem *mem, struct sqb_irq *irq)
{
	struct sqb_dev_ctx ctx = {mem, NULL, irq, NULL};
	struct sqb_dev *d = NULL;

	assert_int_equal(
	    sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_VMCLOCK], "vmclock", PAGE, &ctx, NULL),
	    0);
	return d;
}

static void test_page_and_acpi_description(void **state)
{
	struct sqb_irq irq = {.gsi = 22, .fd = -1, .pulse = count_pulse};
	struct sqb_dev_describe dd;
	struct sqb_dev_ctx ctx = {0};
	struct sqb_dev *d = make(NULL, &irq), *bad = NULL;
	uint8_t abi[SQB_VMCLOCK_ABI_LEN];

	(void)state;
	assert_int_equal(SQB_VMCLOCK_ABI_LEN, 112);
	assert_int_equal(sqb_dev_classes[SQB_DEVCLS_VMCLOCK].devs_type, 5);
	assert_true(sqb_dev_classes[SQB_DEVCLS_VMCLOCK].flags & SQB_DEVCLS_SNAP_OPTIONAL);
	sqb_vmclock_get(d, abi);
	check_initial_page(abi);
	for (unsigned int i = 35; i < 104; i++)
		assert_int_equal(abi[i], 0); /* no clock data, as Firecracker */
	assert_int_equal(d->cls->ops->describe(d, &dd), 0);
	assert_string_equal(dd.hid, "AMZNC10C");
	assert_memory_equal(dd.name, "VCLK", 4);
	assert_int_equal(dd.kind, SQB_DESC_VMCLOCK);
	assert_int_equal(dd.base, PAGE);
	assert_int_equal(dd.len, 0x1000);
	assert_int_equal(dd.irq_kind, SQB_DESC_IRQ_GSI);
	assert_int_equal(dd.gsi, 22);
	assert_int_equal(dd.page_len, 112);
	check_initial_page(dd.page);
	sqb_dev_free(d);
	/* a page of its own: not at an unaligned address */
	assert_int_equal(sqb_dev_create(&bad, &sqb_dev_classes[SQB_DEVCLS_VMCLOCK], "vmclock",
					PAGE + 8, &ctx, NULL),
			 -EINVAL);
	/* without its line the device cannot be described */
	d = make(NULL, NULL);
	assert_int_equal(d->cls->ops->describe(d, &dd), -EINVAL);
	sqb_dev_free(d);
}

/* [F-131] known answer: u32 4096, u32 0, then the 112-byte page. */
static void test_devs_record_known_answer_and_refusals(void **state)
{
	struct sqb_dev *d = make(NULL, NULL);
	uint8_t *st = NULL, rec[120];
	const char *field = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(sqb_dev_save(d, &st, &len), 0);
	assert_int_equal(len, 120);
	assert_int_equal(le(st, 4), 4096);
	assert_int_equal(le(st + 4, 4), 0);
	check_initial_page(st + 8);
	memcpy(rec, st, sizeof(rec));
	free(st);

	/* a record with counters 7 and 9, seq 4, loads */
	rec[8 + 16] = 7;
	rec[8 + 104] = 9;
	rec[8 + 12] = 4;
	assert_int_equal(sqb_dev_load(d, 1, rec, sizeof(rec), &field), 0);
	{
		uint8_t abi[SQB_VMCLOCK_ABI_LEN];

		sqb_vmclock_get(d, abi);
		assert_memory_equal(abi, rec + 8, sizeof(abi));
	}
	/* refusals name the field; the device keeps what it had */
	struct {
		unsigned int off;
		uint8_t val;
		int err;
		const char *field;
	} bad[] = {
	    {1, 0x20, -SQB_EMISMATCH, "page_len"},
	    {5, 0x01, -SQB_ERESERVED, "reserved"},
	    {8, 0x00, -SQB_EBADMAGIC, "vmclock_abi.magic"},
	    {8 + 4, 0x01, -SQB_EMISMATCH, "vmclock_abi.size/version"},
	    {8 + 8, 0x02, -SQB_EMISMATCH, "vmclock_abi.size/version"},
	    {8 + 10, 0x01, -SQB_EMISMATCH, "vmclock_abi.counter_id/flags"},
	    {8 + 24, 0x01, -SQB_EMISMATCH, "vmclock_abi.counter_id/flags"},
	    {8 + 12, 0x05, -SQB_ECORRUPT, "vmclock_abi.seq_count (odd: saved mid-update)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t b[120], abi[SQB_VMCLOCK_ABI_LEN];
		int err;

		memcpy(b, rec, sizeof(b));
		b[bad[i].off] = bad[i].val;
		b[8 + 16] = 99; /* would change the marker if applied */
		err = sqb_dev_load(d, 1, b, sizeof(b), &field);
		assert_int_equal(err, bad[i].err);
		assert_non_null(field);
		if (strcmp(field, bad[i].field) && strcmp(bad[i].field, "reserved"))
			fail_msg("case %zu: field '%s', want '%s'", i, field, bad[i].field);
		sqb_vmclock_get(d, abi);
		assert_int_equal(abi[16], 7);
	}
	assert_int_equal(sqb_dev_load(d, 1, rec, 119, &field), -SQB_ETRUNCATED);
	{
		uint8_t longer[121] = {0};

		memcpy(longer, rec, sizeof(rec));
		longer[8 + 16] = 99;
		assert_int_equal(sqb_dev_load(d, 1, longer, sizeof(longer), &field),
				 -SQB_ECORRUPT); /* a byte after the record */
		uint8_t abi[SQB_VMCLOCK_ABI_LEN];
		sqb_vmclock_get(d, abi);
		assert_int_equal(abi[16], 7);
	}
	assert_int_equal(sqb_dev_load(d, 2, rec, sizeof(rec), &field), -SQB_EVERSION);
	sqb_dev_free(d);
}

/* Each write the accessor sees: where, and the seq_count the page then
 * holds. */
struct wlog {
	struct sqb_gmem *mem;
	int n, owned;
	uint64_t gpa[8], len[8];
	uint32_t seq[8];
};

static void on_written(void *o, uint64_t gpa, uint64_t len)
{
	struct wlog *w = o;
	uint8_t b[4];

	if (w->n >= 8)
		return;
	assert_int_equal(sqb_gmem_read(w->mem, b, PAGE + 12, 4), 0);
	w->gpa[w->n] = gpa;
	w->len[w->n] = len;
	w->seq[w->n++] = (uint32_t)le(b, 4);
}

static int on_prefault(void *o, uint64_t gpa, uint64_t len)
{
	(void)o, (void)gpa, (void)len;
	return 0;
}

/* An unserved page of ours under Uffd: zero-filled before the write. */
static int on_own(void *o, uint64_t gpa, uint8_t *host, uint64_t len)
{
	struct wlog *w = o;

	if (!w->owned++)
		memset(host - (gpa - PAGE), 0, 0x1000);
	(void)len;
	return 0;
}

static void test_load_bumps_both_counters_under_seq_count(void **state)
{
	struct sqb_gmem m = {.fd = -1};
	struct wlog w = {.mem = &m};
	struct sqb_gmem_hooks hk = {
	    .opaque = &w, .written = on_written, .prefault = on_prefault, .own = on_own};
	struct sqb_irq irq = {.gsi = 22, .fd = -1, .pulse = count_pulse};
	struct sqb_dev *d;
	uint8_t *st = NULL, page[0x1000], abi[SQB_VMCLOCK_ABI_LEN];
	const char *field;
	size_t len;

	(void)state;
	assert_int_equal(sqb_mem_create(&m, 4 << 20, 0, NULL), 0);
	d = make(&m, &irq);
	/* a booted VM (no record loaded): nothing is written, nothing raised */
	pulses = 0;
	assert_int_equal(sqb_vmclock_post_restore(d), 0);
	assert_int_equal(pulses, 0);
	assert_int_equal(sqb_gmem_read(&m, page, PAGE, 16), 0);
	assert_int_equal(le(page, 4), 0);

	/* a snapshot's record (seq 2, marker 5, generation 5): the page, as
	 * a lazy restore that has not fetched it yet, holds garbage */
	assert_int_equal(sqb_dev_save(d, &st, &len), 0);
	st[8 + 12] = 2;
	st[8 + 16] = 5;
	st[8 + 104] = 5;
	assert_int_equal(sqb_dev_load(d, 1, st, len, &field), 0);
	free(st);
	memset(m.host + PAGE, 0xa5, 0x1000);
	sqb_gmem_set_hooks(&m, &hk);
	assert_int_equal(sqb_bus_vmclock_post_restore(&(struct sqb_bus){.devs = {d}, .ndevs = 1}),
			 0);
	sqb_gmem_set_hooks(&m, NULL);
	assert_int_equal(pulses, 1); /* one notification */
	/* seq_count odd while the counters are written, even after */
	assert_int_equal(w.n, 3);
	assert_int_equal(w.gpa[0], PAGE + 12);
	assert_int_equal(w.seq[0], 3);
	assert_int_equal(w.gpa[1], PAGE);
	assert_int_equal(w.len[1], 112);
	assert_int_equal(w.seq[1], 3);
	assert_int_equal(w.gpa[2], PAGE + 12);
	assert_int_equal(w.seq[2], 4);
	assert_true(w.owned >= 1); /* each write went through the VMM-owned path */
	assert_int_equal(sqb_gmem_read(&m, page, PAGE, sizeof(page)), 0);
	assert_int_equal(le(page + 0, 4), 0x4b4c4356);
	assert_int_equal(le(page + 16, 8), 6);
	assert_int_equal(le(page + 104, 8), 6);
	assert_int_equal(le(page + 12, 4), 4);
	assert_int_equal(le(page + 24, 8), 0x300);
	for (unsigned int i = 112; i < sizeof(page); i++)
		assert_int_equal(page[i], 0); /* the zero-filled rest of the page */
	sqb_vmclock_get(d, abi);
	assert_memory_equal(abi, page, sizeof(abi));
	/* saved again and loaded again: +1 from there */
	assert_int_equal(sqb_dev_save(d, &st, &len), 0);
	assert_int_equal(sqb_dev_load(d, 1, st, len, &field), 0);
	free(st);
	assert_int_equal(sqb_vmclock_post_restore(d), 0);
	assert_int_equal(sqb_gmem_read(&m, page, PAGE, 112), 0);
	assert_int_equal(le(page + 16, 8), 7);
	assert_int_equal(le(page + 104, 8), 7);
	assert_int_equal(le(page + 12, 4), 6);
	assert_int_equal(pulses, 2);
	sqb_dev_free(d);
	sqb_mem_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_page_and_acpi_description),
	    cmocka_unit_test(test_devs_record_known_answer_and_refusals),
	    cmocka_unit_test(test_load_bumps_both_counters_under_seq_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
