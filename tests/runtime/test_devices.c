/* Unit: the device platform without a hypervisor — UART and i8042 register
 * models on the per-VM bus, the bus's sorted ranges (binary search, overlap
 * refusal), the symmetric state function checked against the byte layouts
 * docs/snapshots.md documents (known answers, not only round trips), the
 * virtio-mmio slot glue, the guest-memory accessor and the event loop. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "dev.h"
#include "evloop.h"
#include "gmem.h"

struct fake_host {
	unsigned int irqs[32];
	int resets;
	char out[4096];
	size_t out_len;
	pthread_mutex_t lock;
};

static struct fake_host H;
static struct sqb_irq irq4, irq1;

static void fake_pulse(struct sqb_irq *irq)
{
	struct fake_host *h = irq->owner;
	__atomic_add_fetch(&h->irqs[irq->gsi & 31], 1, __ATOMIC_RELAXED);
}

static void fake_reset(void *o)
{
	((struct fake_host *)o)->resets++;
}

static void fake_out(void *o, const uint8_t *b, size_t n)
{
	struct fake_host *h = o;

	pthread_mutex_lock(&h->lock);
	if (h->out_len + n > sizeof(h->out))
		h->out_len = 0;
	memcpy(h->out + h->out_len, b, n);
	h->out_len += n;
	pthread_mutex_unlock(&h->lock);
}

static const struct sqb_dev_host fake_dev_host = {&H, fake_reset, fake_out};

struct rig {
	struct sqb_bus bus;
	struct sqb_dev *uart, *kbd;
};

static struct sqb_dev *mkdev(enum sqb_dev_class_id c, const char *id, uint64_t base,
			     struct sqb_irq *irq)
{
	struct sqb_dev_ctx ctx = {NULL, NULL, irq, &fake_dev_host};
	struct sqb_dev *d = NULL;

	assert_int_equal(sqb_dev_create(&d, &sqb_dev_classes[c], id, base, &ctx, NULL), 0);
	return d;
}

static void rig_init(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	memset(H.irqs, 0, sizeof(H.irqs));
	H.resets = 0;
	H.out_len = 0;
	irq4 = (struct sqb_irq){4, -1, fake_pulse, &H};
	irq1 = (struct sqb_irq){1, -1, fake_pulse, &H};
	r->uart = mkdev(SQB_DEVCLS_UART, "uart0", 0x3f8, &irq4);
	r->kbd = mkdev(SQB_DEVCLS_I8042, "i8042", 0x60, &irq1);
	assert_int_equal(sqb_bus_add(&r->bus, r->uart), 0);
	assert_int_equal(sqb_bus_add(&r->bus, r->kbd), 0);
	assert_int_equal(sqb_bus_add(&r->bus, mkdev(SQB_DEVCLS_POSTCODE, "postcode", 0x80, NULL)),
			 0);
}

static uint8_t rd(struct rig *r, uint16_t port)
{
	uint8_t v = 0;
	sqb_bus_access(&r->bus, SQB_BUS_PIO, port, &v, 1, 0);
	return v;
}

static void wr(struct rig *r, uint16_t port, uint8_t v)
{
	sqb_bus_access(&r->bus, SQB_BUS_PIO, port, &v, 1, 1);
}

static void test_uart_registers_and_interrupts(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r);
	assert_int_equal(rd(&r, 0x3fd) & 0x60, 0x60); /* THR empty, transmitter idle */
	wr(&r, 0x3f8, 'h');
	wr(&r, 0x3f8, 'i');
	assert_int_equal(H.out_len, 2);
	assert_memory_equal(H.out, "hi", 2);
	assert_int_equal(H.irqs[4], 0); /* IER = 0: no interrupts */
	wr(&r, 0x3fb, 0x80);		/* DLAB: divisor latch instead of THR/IER */
	wr(&r, 0x3f8, 0x01);
	wr(&r, 0x3f9, 0x00);
	assert_int_equal(rd(&r, 0x3f8), 0x01);
	assert_int_equal(H.out_len, 2);
	wr(&r, 0x3fb, 0x03);
	wr(&r, 0x3f9, 0x02); /* enabling THRE fires once; reading IIR acknowledges */
	assert_int_equal(H.irqs[4], 1);
	assert_int_equal(rd(&r, 0x3fa) & 0x0f, 0x02);
	assert_int_equal(rd(&r, 0x3fa) & 0x0f, 0x01);
	wr(&r, 0x3f9, 0x03);
	assert_int_equal(sqb_uart_input(r.uart, (const uint8_t *)"ab", 2), 2);
	assert_true(H.irqs[4] >= 2);
	assert_int_equal(rd(&r, 0x3fd) & 1, 1);
	assert_int_equal(rd(&r, 0x3fa) & 0x0f, 0x04);
	assert_int_equal(rd(&r, 0x3f8), 'a');
	assert_int_equal(rd(&r, 0x3f8), 'b');
	assert_int_equal(rd(&r, 0x3fd) & 1, 0);
	uint8_t many[100];
	memset(many, 'x', sizeof(many));
	assert_int_equal(sqb_uart_input(r.uart, many, sizeof(many)), SQB_UART_FIFO);
	wr(&r, 0x3fc, 0x10); /* loopback keeps output off the console */
	wr(&r, 0x3f8, 'z');
	assert_int_equal(H.out_len, 2);
	uint32_t w = 0;
	sqb_bus_access(&r.bus, SQB_BUS_PIO, 0x3f8, (uint8_t *)&w, 4, 0);
	assert_int_equal(w, 0xffffffffu);
	sqb_bus_destroy(&r.bus);
}

static void test_i8042_reset_and_ctrl_alt_del(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r);
	assert_int_equal(rd(&r, 0x64) & 1, 0);
	assert_int_equal(sqb_i8042_ctrl_alt_del(r.kbd), 0);
	assert_int_equal(H.irqs[1], 1);
	assert_int_equal(rd(&r, 0x64) & 1, 1);
	assert_int_equal(rd(&r, 0x60), 0x1d);
	for (int i = 0; i < 7; i++)
		rd(&r, 0x60);
	assert_int_equal(rd(&r, 0x64) & 1, 0);
	wr(&r, 0x64, 0x60);
	wr(&r, 0x60, 0x45);
	wr(&r, 0x64, 0x20);
	assert_int_equal(rd(&r, 0x60), 0x45);
	assert_int_equal(H.resets, 0);
	wr(&r, 0x64, 0xfe);
	assert_int_equal(H.resets, 1);
	sqb_bus_destroy(&r.bus);
}

/* Many devices in shuffled order: every address finds its device by binary
 * search; overlaps and duplicate ids are refused; gaps are unclaimed. */
static void test_bus_sorted_ranges(void **state)
{
	struct sqb_bus b;
	uint8_t buf[8];
	char id[16];

	(void)state;
	memset(&b, 0, sizeof(b));
	for (unsigned int k = 0; k < 20; k++) {
		unsigned int i = (k * 7) % 20; /* not in address order */
		snprintf(id, sizeof(id), "p%u", i);
		assert_int_equal(
		    sqb_bus_add(&b, mkdev(SQB_DEVCLS_POSTCODE, id, 0x100 + 4 * i, NULL)), 0);
	}
	for (unsigned int i = 1; i < b.nranges; i++)
		assert_true(b.ranges[i - 1].base < b.ranges[i].base);
	for (unsigned int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "p%u", i);
		assert_ptr_equal(sqb_bus_find(&b, SQB_BUS_PIO, 0x100 + 4 * i),
				 sqb_bus_by_id(&b, id));
		assert_null(sqb_bus_find(&b, SQB_BUS_PIO, 0x101 + 4 * i));  /* 1-port windows */
		assert_null(sqb_bus_find(&b, SQB_BUS_MMIO, 0x100 + 4 * i)); /* other space */
	}
	struct sqb_dev *dup = mkdev(SQB_DEVCLS_POSTCODE, "p3", 0x400, NULL);
	assert_int_equal(sqb_bus_add(&b, dup), -EEXIST); /* same id */
	sqb_dev_free(dup);
	struct sqb_dev *ov = mkdev(SQB_DEVCLS_UART, "u", 0x104 - 4, NULL); /* 8 ports over p0,p1 */
	assert_int_equal(sqb_bus_add(&b, ov), -EEXIST);
	sqb_dev_free(ov);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_PIO, 0x1234, buf, 2, 0), 0);
	assert_int_equal(buf[0] & buf[1], 0xff);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, 0xd0000000ULL, buf, 8, 0), 0);
	assert_int_equal(buf[7], 0xff);
	sqb_bus_destroy(&b);
}

/* docs/snapshots.md, DEVS type 1 v1: 80 bytes — ier iir lcr mcr lsr msr scr
 * dll dlm thr_irq_pending rx_len, 5 reserved (0), rx[64]. */
static void test_uart_state_known_answer(void **state)
{
	struct rig r;
	uint8_t *st;
	size_t len;
	uint8_t want[80];

	(void)state;
	rig_init(&r);
	wr(&r, 0x3fb, 0x83); /* DLAB + 8N1 */
	wr(&r, 0x3f8, 0x01); /* dll */
	wr(&r, 0x3f9, 0x02); /* dlm */
	wr(&r, 0x3fb, 0x03);
	wr(&r, 0x3f9, 0x01); /* ier: RDI */
	wr(&r, 0x3fc, 0x0b); /* mcr */
	wr(&r, 0x3ff, 0x5a); /* scr */
	sqb_uart_input(r.uart, (const uint8_t *)"xyz", 3);
	assert_int_equal(sqb_dev_save(r.uart, &st, &len), 0);
	memset(want, 0, sizeof(want));
	want[0] = 0x01;		     /* ier */
	want[1] = 0xc4;		     /* iir: FIFO bits + RDI pending */
	want[2] = 0x03;		     /* lcr */
	want[3] = 0x0b;		     /* mcr */
	want[4] = 0x60;		     /* lsr as stored */
	want[5] = 0x00;		     /* msr */
	want[6] = 0x5a;		     /* scr */
	want[7] = 0x01;		     /* dll */
	want[8] = 0x02;		     /* dlm */
	want[9] = 0x00;		     /* thr_irq_pending */
	want[10] = 3;		     /* rx_len */
	memcpy(want + 16, "xyz", 3); /* rx at offset 16 */
	assert_int_equal(len, 80);
	assert_memory_equal(st, want, 80);

	/* Load into a fresh UART: the guest reads the same bytes. */
	struct sqb_dev *u2 = mkdev(SQB_DEVCLS_UART, "uart0", 0x3f8, &irq4);
	const char *field;
	assert_int_equal(sqb_dev_load(u2, 1, want, 80, &field), 0);
	uint8_t *st2;
	size_t len2;
	assert_int_equal(sqb_dev_save(u2, &st2, &len2), 0);
	assert_memory_equal(st2, want, 80);
	free(st2);
	/* Invariants: rx_len > 64, a flag > 1, reserved bytes, length, version;
	 * a refused load leaves the device as it was. */
	want[10] = 65;
	assert_int_equal(sqb_dev_load(u2, 1, want, 80, &field), -SQB_ECORRUPT);
	assert_string_equal(field, "rx_len");
	want[10] = 3;
	want[9] = 2;
	assert_int_equal(sqb_dev_load(u2, 1, want, 80, &field), -SQB_ECORRUPT);
	want[9] = 0;
	want[13] = 1;
	assert_int_equal(sqb_dev_load(u2, 1, want, 80, &field), -SQB_ERESERVED);
	want[13] = 0;
	assert_int_equal(sqb_dev_load(u2, 1, want, 79, &field), -SQB_ETRUNCATED);
	uint8_t longer[81] = {0};
	memcpy(longer, want, 80);
	assert_int_equal(sqb_dev_load(u2, 1, longer, 81, &field), -SQB_ECORRUPT);
	assert_int_equal(sqb_dev_load(u2, 2, want, 80, &field), -SQB_EVERSION);
	assert_int_equal(sqb_dev_save(u2, &st2, &len2), 0);
	assert_memory_equal(st2, st, 80);
	free(st2);
	free(st);
	sqb_dev_free(u2);
	sqb_bus_destroy(&r.bus);
}

/* docs/snapshots.md, DEVS type 2 v1: 24 bytes — status cmd ctr outp buf_len,
 * 3 reserved (0), buf[16]. */
static void test_i8042_state_known_answer(void **state)
{
	struct rig r;
	uint8_t *st;
	size_t len;
	const char *field;
	static const uint8_t want[24] = {
	    0x09, 0x20, 0x47, 0x01, 8,	  0,	0,    0, /* status: OBF|CMD, last cmd 0x20 */
	    0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d, 0, 0, 0, 0, 0, 0, 0, 0,
	};

	(void)state;
	rig_init(&r);
	wr(&r, 0x64, 0x20); /* read CTR: pushes 0x47 */
	assert_int_equal(rd(&r, 0x60), 0x47);
	assert_int_equal(sqb_i8042_ctrl_alt_del(r.kbd), 0);
	assert_int_equal(sqb_dev_save(r.kbd, &st, &len), 0);
	assert_int_equal(len, 24);
	assert_memory_equal(st, want, 24);
	free(st);
	uint8_t bad[24];
	memcpy(bad, want, 24);
	bad[4] = 17;
	assert_int_equal(sqb_dev_load(r.kbd, 1, bad, 24, &field), -SQB_ECORRUPT);
	assert_string_equal(field, "buf_len");
	bad[4] = 8;
	bad[6] = 1;
	assert_int_equal(sqb_dev_load(r.kbd, 1, bad, 24, &field), -SQB_ERESERVED);
	sqb_bus_destroy(&r.bus);
}

/* ---- the virtio-mmio slot glue ---- */
struct fake_virtio {
	uint64_t last_off;
	uint32_t reg;
	int quiesced, resumed, destroyed, realized;
	struct sqb_mmio_slot_info slot;
};

static int fv_realize(void *o, const struct sqb_mmio_slot_info *s)
{
	struct fake_virtio *f = o;
	f->realized = 1;
	f->slot = *s;
	return 0;
}

static void fv_access(void *o, uint64_t off, uint8_t *data, unsigned int size, int is_write)
{
	struct fake_virtio *f = o;
	f->last_off = off;
	if (is_write && size == 4)
		memcpy(&f->reg, data, 4);
	else if (!is_write)
		memset(data, 0x76, size);
}

static int fv_quiesce(void *o)
{
	((struct fake_virtio *)o)->quiesced++;
	return 0;
}

static void fv_resume(void *o)
{
	((struct fake_virtio *)o)->resumed++;
}

static int fv_save(void *o, uint8_t *buf, size_t cap, size_t *len)
{
	struct fake_virtio *f = o;
	*len = 4;
	if (buf && cap >= 4)
		memcpy(buf, &f->reg, 4);
	return 0;
}

static int fv_load(void *o, unsigned int version, const uint8_t *buf, size_t len,
		   struct sqb_diag *d)
{
	struct fake_virtio *f = o;
	if (version != 3 || len != 4) {
		snprintf(d->reason, sizeof(d->reason), "queue 0: bad size");
		return -SQB_ECORRUPT;
	}
	memcpy(&f->reg, buf, 4);
	return 0;
}

static void fv_destroy(void *o)
{
	((struct fake_virtio *)o)->destroyed = 1;
}

static const struct sqb_mmio_dev_ops fv_ops = {
    .id = "virtio-blk0",
    .virtio_device_id = 2,
    .state_version = 3,
    .realize = fv_realize,
    .access = fv_access,
    .quiesce = fv_quiesce,
    .resume = fv_resume,
    .save = fv_save,
    .load = fv_load,
    .destroy = fv_destroy,
};

#include "dev_mmio.h"

static void test_mmio_slot_forwards_to_the_library(void **state)
{
	struct fake_virtio f = {0};
	struct sqb_irq irq = {5, -1, fake_pulse, &H};
	struct sqb_mmio_slot_cfg cfg = {
	    &fv_ops, &f, {.base = 0xd0001000, .size = 0x1000, .gsi = 5}, 0xd0000000};
	struct sqb_dev_ctx ctx = {NULL, NULL, &irq, &fake_dev_host};
	struct sqb_dev *d;
	struct sqb_bus b;
	struct sqb_dev_describe dd;
	uint32_t v = 0x12345678, rdv = 0;
	const char *field;
	uint8_t *st;
	size_t len;

	(void)state;
	memset(&b, 0, sizeof(b));
	assert_int_equal(sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_MMIO_SLOT], fv_ops.id,
					0xd0001000, &ctx, &cfg),
			 0);
	assert_true(f.realized);
	assert_int_equal(d->devs_type, 0x102);
	assert_int_equal(sqb_bus_add(&b, d), 0);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, 0xd0001050, (uint8_t *)&v, 4, 1), 1);
	assert_int_equal(f.last_off, 0x50);
	assert_int_equal(f.reg, 0x12345678);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, 0xd0001ffc, (uint8_t *)&rdv, 4, 0), 1);
	assert_int_equal(rdv, 0x76767676);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, 0xd0002000, (uint8_t *)&rdv, 4, 0), 0);
	assert_int_equal(sqb_bus_quiesce(&b), 0);
	sqb_bus_resume(&b);
	assert_int_equal(f.quiesced, 1);
	assert_int_equal(f.resumed, 1);
	assert_int_equal(sqb_dev_save(d, &st, &len), 0);
	assert_int_equal(len, 4);
	assert_int_equal(sqb_mmio_slot_version(d), 3);
	f.reg = 0;
	assert_int_equal(sqb_dev_load(d, 3, st, len, &field), 0);
	assert_int_equal(f.reg, 0x12345678);
	assert_int_equal(sqb_dev_load(d, 2, st, len, &field), -SQB_ECORRUPT);
	assert_string_equal(field, "queue 0: bad size");
	free(st);
	assert_int_equal(d->cls->ops->describe(d, &dd), 0);
	assert_string_equal(dd.hid, "LNRO0005");
	assert_int_equal(dd.base, 0xd0001000);
	assert_int_equal(dd.len, 0x1000);
	assert_int_equal(dd.gsi, 5);
	assert_int_equal(dd.uid, 1);
	sqb_bus_destroy(&b);
	assert_true(f.destroyed);
}

/* ---- guest memory accessor ---- */
struct hook_log {
	uint64_t wr_gpa, wr_len, pf_gpa;
	int writes, prefaults, fail_prefault;
};

static void hk_written(void *o, uint64_t gpa, uint64_t len)
{
	struct hook_log *l = o;
	l->writes++;
	l->wr_gpa = gpa;
	l->wr_len = len;
}

static int hk_prefault(void *o, uint64_t gpa, uint64_t len)
{
	struct hook_log *l = o;
	(void)len;
	l->prefaults++;
	l->pf_gpa = gpa;
	return l->fail_prefault ? -EIO : 0;
}

/* virtio-mem's region: resolved block by block while plugged, never across
 * into an unplugged block (even inside the same memslot), VMM writes
 * marked like RAM's; the memfd carries it after RAM. */
static void test_gmem_hotplug_region(void **state)
{
	struct sqb_gmem m = {.fd = -1};
	struct hook_log log = {0};
	struct sqb_gmem_hooks hk = {&log, hk_written, hk_prefault};
	const uint64_t hp = 768ULL << 30, blk = 2ULL << 20;
	uint8_t b[8] = "plugged", back[8];
	struct stat st;

	(void)state;
	assert_int_equal(sqb_mem_create(&m, 16ULL << 20, 0, NULL), 0);
	assert_int_equal(sqb_mem_add_hotplug(&m, 4096, 8 * blk, blk, 4 * blk), -EINVAL); /* RAM */
	assert_int_equal(sqb_mem_add_hotplug(&m, hp, 9 * blk, blk, 4 * blk), -EINVAL);	 /* slots */
	assert_int_equal(sqb_mem_add_hotplug(&m, hp, 8 * blk, blk, 3 * blk), -EINVAL);
	assert_int_equal(sqb_mem_add_hotplug(&m, hp, 8 * blk, blk, 4 * blk), 0);
	assert_int_equal(sqb_mem_add_hotplug(&m, hp, 8 * blk, blk, 4 * blk), -EINVAL); /* one */
	assert_int_equal(m.nram, 1);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[1].fd_offset, 16ULL << 20);
	assert_int_equal(fstat(m.fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, (16ULL << 20) + 8 * blk);
	/* nothing plugged: the region is no RAM */
	assert_null(sqb_gmem_map(&m, hp, 8, 0));
	assert_int_equal(sqb_gmem_write(&m, hp + blk, b, 8), -EFAULT);
	sqb_mem_hotplug_set(&m, 1, 2, 1); /* blocks 1 and 2 */
	assert_null(sqb_gmem_map(&m, hp, 8, 0));
	assert_non_null(sqb_gmem_map(&m, hp + blk, 8, 0));
	assert_non_null(sqb_gmem_map(&m, hp + blk, 2 * blk, 0)); /* both blocks */
	assert_null(sqb_gmem_map(&m, hp + blk - 4, 8, 0));	 /* starts in block 0 */
	assert_null(sqb_gmem_map(&m, hp + 3 * blk - 4, 8, 0));	 /* ends in block 3 */
	assert_null(sqb_gmem_map(&m, hp + 8 * blk - 4, 8, 0));	 /* past the region */
	assert_null(sqb_gmem_map(&m, hp + 5 * blk, 8, 0));
	assert_null(sqb_gmem_set_hooks(&m, &hk));
	assert_int_equal(sqb_gmem_write(&m, hp + 2 * blk + 16, b, 8), 0);
	assert_int_equal(log.writes, 1);
	assert_int_equal(log.wr_gpa, hp + 2 * blk + 16);
	assert_int_equal(sqb_gmem_read(&m, back, hp + 2 * blk + 16, 8), 0);
	assert_memory_equal(back, b, 8);
	assert_memory_equal(m.regions[1].host + 2 * blk + 16, b, 8);
	sqb_mem_hotplug_set(&m, 2, 1, 0); /* unplugged: refused again */
	assert_int_equal(sqb_gmem_read(&m, back, hp + 2 * blk + 16, 8), -EFAULT);
	assert_int_equal(log.writes, 1);
	sqb_mem_hotplug_set(&m, 7, 100, 1); /* clipped at the last block */
	assert_non_null(sqb_gmem_map(&m, hp + 7 * blk, blk, 0));
	assert_ptr_equal(sqb_gmem_set_hooks(&m, NULL), &hk);
	sqb_mem_destroy(&m);
	assert_int_equal(m.nregions, m.nram);
}

static void test_gmem_bounds_regions_and_dirty_marks(void **state)
{
	struct sqb_gmem m = {.fd = -1};
	struct hook_log log = {0};
	struct sqb_gmem_hooks hk = {&log, hk_written, hk_prefault};
	uint64_t size = (3ULL << 30) + (8ULL << 20); /* low RAM to 3 GiB + 8 MiB above 4 GiB */
	uint8_t b[16] = "hello, guest";

	(void)state;
	assert_int_equal(sqb_mem_create(&m, size, 0, NULL), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[1].gpa, 4ULL << 30);
	assert_non_null(sqb_gmem_map(&m, 0x1000, 16, 0));
	assert_null(sqb_gmem_map(&m, 0x1000, 0, 0));			  /* empty */
	assert_null(sqb_gmem_map(&m, (3ULL << 30) - 8, 16, 0));		  /* crosses into the gap */
	assert_null(sqb_gmem_map(&m, (3ULL << 30) + 4096, 8, 0));	  /* in the gap */
	assert_null(sqb_gmem_map(&m, (4ULL << 30) + (8ULL << 20), 1, 0)); /* past the end */
	assert_null(sqb_gmem_map(&m, UINT64_MAX - 4, 8, 0));		  /* wraps */
	assert_non_null(sqb_gmem_map(&m, (4ULL << 30) + (8ULL << 20) - 8, 8, 0));
	assert_null(sqb_gmem_set_hooks(&m, &hk));
	assert_int_equal(sqb_gmem_write(&m, 0x2000, b, sizeof(b)), 0);
	assert_int_equal(log.writes, 1);
	assert_int_equal(log.wr_gpa, 0x2000);
	assert_int_equal(log.wr_len, 16);
	assert_int_equal(log.prefaults, 1); /* fetched before the copy */
	uint8_t back[16];
	assert_int_equal(sqb_gmem_read(&m, back, 0x2000, 16), 0);
	assert_memory_equal(back, b, 16);
	assert_int_equal(log.writes, 1); /* reads are not marked */
	assert_non_null(sqb_gmem_map(&m, (4ULL << 30) + 0x3000, 100, 1));
	assert_int_equal(log.writes, 2);
	assert_int_equal(log.wr_gpa, (4ULL << 30) + 0x3000);
	log.fail_prefault = 1; /* a lazy page that cannot be fetched is never touched */
	assert_int_equal(sqb_gmem_write(&m, 0x2000, b, 16), -EFAULT);
	assert_int_equal(sqb_gmem_write(&m, (3ULL << 30) - 8, b, 16), -EFAULT);
	assert_ptr_equal(sqb_gmem_set_hooks(&m, NULL), &hk);
	sqb_mem_destroy(&m);
}

/* ---- event loop ---- */
struct ev_count {
	int fd;
	int hits;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void ev_cb(int fd, uint32_t events, void *arg)
{
	struct ev_count *c = arg;
	uint64_t v;

	(void)events;
	if (fd == c->fd && read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&c->lock);
	c->hits++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void wait_hits(struct ev_count *c, int n)
{
	pthread_mutex_lock(&c->lock);
	while (c->hits < n)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void test_evloop_fds_and_timers(void **state)
{
	struct sqb_evloop *l;
	struct ev_count c = {.fd = eventfd(0, EFD_NONBLOCK),
			     .lock = PTHREAD_MUTEX_INITIALIZER,
			     .cond = PTHREAD_COND_INITIALIZER};
	struct ev_count t = {
	    .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	uint64_t one = 1;
	int64_t h, th;

	(void)state;
	assert_int_equal(sqb_evloop_create(&l, "test-evloop"), 0);
	assert_false(sqb_evloop_on_thread(l));
	h = sqb_evloop_add(l, c.fd, EPOLLIN, ev_cb, &c);
	assert_true(h > 0);
	assert_int_equal(write(c.fd, &one, 8), 8);
	wait_hits(&c, 1);
	assert_int_equal(write(c.fd, &one, 8), 8);
	wait_hits(&c, 2);
	th = sqb_evloop_timer(l, 2000000, 1, ev_cb, &t); /* 2 ms, periodic */
	assert_true(th > 0);
	wait_hits(&t, 3);
	assert_int_equal(sqb_evloop_del(l, th), 0);
	assert_int_equal(sqb_evloop_del(l, th), -ENOENT); /* stale handle */
	assert_int_equal(sqb_evloop_del(l, h), 0);
	assert_int_equal(sqb_evloop_mod(l, h, EPOLLIN), -ENOENT);
	int before = c.hits;
	assert_int_equal(write(c.fd, &one, 8), 8);
	usleep(20000);
	assert_int_equal(c.hits, before); /* removed: never called again */
	assert_int_equal(sqb_evloop_add(l, -1, EPOLLIN, ev_cb, &c), -EINVAL);
	sqb_evloop_free(l);
	close(c.fd);
}

/* Regression (TSan): the UART decided loopback from MCR after dropping its
 * lock; a thread writing MCR raced every transmit.  Under ThreadSanitizer
 * this reports the race before the fix; the output check holds always. */
static void *mcr_writer(void *arg)
{
	struct rig *r = arg;
	for (int i = 0; i < 2000; i++)
		wr(r, 0x3fc, (i & 1) ? 0x10 : 0x00);
	wr(r, 0x3fc, 0x00);
	return NULL;
}

static void test_uart_loopback_decided_under_lock(void **state)
{
	struct rig r;
	pthread_t t;

	(void)state;
	rig_init(&r);
	assert_int_equal(pthread_create(&t, NULL, mcr_writer, &r), 0);
	for (int i = 0; i < 2000; i++)
		wr(&r, 0x3f8, 'q');
	pthread_join(t, NULL);
	assert_true(H.out_len <= 2000);
	wr(&r, 0x3f8, '!');
	assert_int_equal(H.out[H.out_len - 1], '!');
	sqb_bus_destroy(&r.bus);
}

/* Hostile state and hostile accesses: random DEVS payloads of every length
 * either load (and then describe a device that behaves) or are refused with
 * the device unchanged; random register accesses of sizes 0..8 never crash. */
static void test_hostile_state_and_accesses(void **state)
{
	struct rig r;
	uint8_t buf[100], *before, *after;
	size_t lb, la;
	unsigned int loaded = 0;

	(void)state;
	rig_init(&r);
	srand(1234);
	for (int round = 0; round < 4000; round++) {
		struct sqb_dev *d = (round & 1) ? r.uart : r.kbd;
		size_t len = (size_t)(rand() % 100);
		const char *field;
		int rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand();
		if (round % 3 == 0) { /* often well-formed: right length, bounded counts */
			len = d == r.uart ? 80 : 24;
			memset(buf + (d == r.uart ? 11 : 5), 0, d == r.uart ? 5 : 3);
			buf[d == r.uart ? 10 : 4] %= d == r.uart ? 65 : 17;
			if (d == r.uart)
				buf[9] &= 1;
		}
		assert_int_equal(sqb_dev_save(d, &before, &lb), 0);
		rc = sqb_dev_load(d, 1 + (round % 50 == 0), buf, len, &field);
		assert_int_equal(sqb_dev_save(d, &after, &la), 0);
		if (rc) {
			assert_non_null(field);
			assert_memory_equal(before, after, lb); /* untouched */
		} else {
			loaded++;
			assert_memory_equal(after, buf, len);
		}
		free(before);
		free(after);
		for (int k = 0; k < 8; k++) {
			uint8_t io[8];
			uint16_t port = (uint16_t)(d->base + (unsigned int)(rand() % 9));
			memset(io, (uint8_t)rand(), sizeof(io));
			sqb_bus_access(&r.bus, SQB_BUS_PIO, port, io, (unsigned int)(rand() % 9),
				       rand() & 1);
		}
	}
	assert_true(loaded > 500);
	assert_int_equal(sqb_dev_load(r.uart, 0, buf, 80, NULL), -SQB_EVERSION);
	sqb_bus_destroy(&r.bus);
}

/* Firecracker's boot timer (boot_timer.rs) at the MMIO edges: only a
 * one-byte write of 123 at offset 0 fires, each time it comes; every other
 * width, offset and value is dropped; reads are zeros of exactly the
 * access's width; the page's end is the device's end. */
static int bt_fired;

static void bt_fire(void *arg)
{
	(void)arg;
	bt_fired++;
}

static void test_boot_timer_mmio_edges(void **state)
{
	const uint64_t base = 0xc0000000ull;
	struct sqb_boot_timer_cfg cfg = {bt_fire, NULL}, nofire = {NULL, NULL};
	struct sqb_dev_ctx ctx = {NULL, NULL, NULL, &fake_dev_host};
	struct sqb_bus b = {0};
	struct sqb_dev *d = NULL;
	uint8_t io[16];

	(void)state;
	assert_int_equal(
	    sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_BOOT_TIMER], "bt", base, &ctx, NULL),
	    -EINVAL);
	assert_int_equal(
	    sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_BOOT_TIMER], "bt", base, &ctx, &nofire),
	    -EINVAL);
	assert_int_equal(
	    sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_BOOT_TIMER], "bt", base, &ctx, &cfg), 0);
	assert_int_equal(sqb_bus_add(&b, d), 0);
	bt_fired = 0;
	for (unsigned int size = 1; size <= 8; size *= 2) {
		static const uint64_t offs[] = {0, 1, 7, SQB_BOOT_TIMER_WINDOW - 8,
						SQB_BOOT_TIMER_WINDOW - 1};

		for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			memset(io, 123, sizeof(io));
			if (size > 1 || offs[i])
				assert_int_equal(
				    sqb_bus_access(&b, SQB_BUS_MMIO, base + offs[i], io, size, 1),
				    1);
			memset(io, 0xa5, sizeof(io));
			assert_int_equal(
			    sqb_bus_access(&b, SQB_BUS_MMIO, base + offs[i], io, size, 0), 1);
			for (unsigned int k = 0; k < sizeof(io); k++)
				assert_int_equal(io[k], k < size ? 0 : 0xa5);
		}
	}
	assert_int_equal(bt_fired, 0); /* no width but one byte, no offset but 0 */
	io[0] = 122;
	sqb_bus_access(&b, SQB_BUS_MMIO, base, io, 1, 1);
	assert_int_equal(bt_fired, 0);
	io[0] = 123;
	sqb_bus_access(&b, SQB_BUS_MMIO, base, io, 1, 1);
	sqb_bus_access(&b, SQB_BUS_MMIO, base, io, 1, 1);
	assert_int_equal(bt_fired, 2);
	/* past the page and just below it: not the device's */
	memset(io, 0, sizeof(io));
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, base + SQB_BOOT_TIMER_WINDOW, io, 4, 0),
			 0);
	assert_int_equal(io[0], 0xff);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_MMIO, base - 1, io, 1, 1), 0);
	assert_int_equal(sqb_bus_access(&b, SQB_BUS_PIO, 0, io, 1, 1), 0);
	assert_int_equal(bt_fired, 2);
	sqb_bus_destroy(&b);
}

/* A callback may remove its own entry (and others) from inside the loop. */
struct self_del {
	struct sqb_evloop *l;
	int64_t h;
	int fd, hits;
};

static void self_del_cb(int fd, uint32_t events, void *arg)
{
	struct self_del *s = arg;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	__atomic_add_fetch(&s->hits, 1, __ATOMIC_RELAXED);
	assert_true(sqb_evloop_on_thread(s->l));
	sqb_evloop_del(s->l, s->h);
}

static void test_evloop_callback_removes_itself(void **state)
{
	struct self_del s = {0};
	uint64_t one = 1;

	(void)state;
	assert_int_equal(sqb_evloop_create(&s.l, NULL), 0);
	s.fd = eventfd(0, EFD_NONBLOCK);
	s.h = sqb_evloop_add(s.l, s.fd, EPOLLIN, self_del_cb, &s);
	assert_true(s.h > 0);
	assert_int_equal(write(s.fd, &one, 8), 8);
	for (int i = 0; i < 1000 && !__atomic_load_n(&s.hits, __ATOMIC_RELAXED); i++)
		usleep(1000);
	assert_int_equal(write(s.fd, &one, 8), 8);
	usleep(20000);
	assert_int_equal(__atomic_load_n(&s.hits, __ATOMIC_RELAXED), 1);
	assert_int_equal(sqb_evloop_del(s.l, s.h), -ENOENT);
	sqb_evloop_free(s.l);
	close(s.fd);
}

/* The event loop gives back the stack pages its deep callbacks touched
 * once it has been idle a while (docs/fleet.md "Threads, stacks and .bss"),
 * and still serves events and deep calls afterwards: a trim that released
 * a live frame would corrupt the recursion's sums or crash. */
static struct {
	uintptr_t lo, hi; /* the deep callback's buffer */
	int hits;
	uint64_t sum;
} deep;

static __attribute__((noinline)) uint64_t deep_sum(unsigned int n)
{
	volatile unsigned char buf[1024];

	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(n + i);
	return n ? buf[n % sizeof(buf)] + deep_sum(n - 1) : buf[0];
}

static __attribute__((noinline)) void deep_cb(int fd, uint32_t events, void *arg)
{
	volatile unsigned char big[32768];
	uint64_t v;

	(void)events;
	(void)arg;
	if (read(fd, &v, sizeof(v)) < 0)
		v = 0;
	memset((void *)big, 0xa5, sizeof(big));
	deep.lo = (uintptr_t)big;
	deep.hi = (uintptr_t)big + sizeof(big);
	__atomic_store_n(&deep.sum, deep_sum(40) + big[100], __ATOMIC_RELEASE);
	__atomic_add_fetch(&deep.hits, 1, __ATOMIC_RELEASE);
}

static int deep_resident_pages(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (deep.lo + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t b = deep.hi & ~(uintptr_t)(pg - 1);
	unsigned char vec[16];
	int n = 0;

	assert_true(b > a && (b - a) / (uintptr_t)pg <= sizeof(vec));
	assert_int_equal(mincore((void *)a, b - a, vec), 0);
	for (size_t i = 0; i < (b - a) / (uintptr_t)pg; i++)
		n += vec[i] & 1;
	return n;
}

static void test_evloop_gives_back_idle_stack(void **state)
{
	struct sqb_evloop *l;
	int fd = eventfd(0, EFD_NONBLOCK), res = -1;
	uint64_t one = 1, want;

	(void)state;
	want = deep_sum(40) + 0xa5;
	assert_true(fd >= 0);
	assert_int_equal(sqb_evloop_create(&l, "test-trim"), 0);
	assert_true(sqb_evloop_add(l, fd, EPOLLIN, deep_cb, NULL) > 0);
	assert_int_equal(write(fd, &one, 8), 8);
	for (int i = 0; i < 10000 && __atomic_load_n(&deep.hits, __ATOMIC_ACQUIRE) < 1; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&deep.hits, __ATOMIC_ACQUIRE), 1);
	assert_true(__atomic_load_n(&deep.sum, __ATOMIC_ACQUIRE) == want);
	/* resident right after the callback; given back after ~1 s idle (up
	 * to 20 s on a loaded host: no timing decides the result) */
	assert_true(deep_resident_pages() > 0);
	for (int i = 0; i < 200 && (res = deep_resident_pages()) > 0; i++)
		usleep(100000);
	assert_int_equal(res, 0);
	/* the loop still serves events, and deep calls compute right */
	__atomic_store_n(&deep.sum, 0, __ATOMIC_RELEASE);
	assert_int_equal(write(fd, &one, 8), 8);
	for (int i = 0; i < 10000 && __atomic_load_n(&deep.hits, __ATOMIC_ACQUIRE) < 2; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&deep.hits, __ATOMIC_ACQUIRE), 2);
	assert_true(__atomic_load_n(&deep.sum, __ATOMIC_ACQUIRE) == want);
	sqb_evloop_free(l); /* stops and joins */
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uart_registers_and_interrupts),
	    cmocka_unit_test(test_i8042_reset_and_ctrl_alt_del),
	    cmocka_unit_test(test_bus_sorted_ranges),
	    cmocka_unit_test(test_uart_state_known_answer),
	    cmocka_unit_test(test_i8042_state_known_answer),
	    cmocka_unit_test(test_mmio_slot_forwards_to_the_library),
	    cmocka_unit_test(test_gmem_bounds_regions_and_dirty_marks),
	    cmocka_unit_test(test_gmem_hotplug_region),
	    cmocka_unit_test(test_evloop_fds_and_timers),
	    cmocka_unit_test(test_uart_loopback_decided_under_lock),
	    cmocka_unit_test(test_hostile_state_and_accesses),
	    cmocka_unit_test(test_boot_timer_mmio_edges),
	    cmocka_unit_test(test_evloop_callback_removes_itself),
	    cmocka_unit_test(test_evloop_gives_back_idle_stack),
	};
	pthread_mutex_init(&H.lock, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
