/* KVM x86 state <-> snapfmt record bytes, field by field, little-endian
 * (docs/format.md tables 8.1, 8.1.1, 8.1.2, 8.3, 8.3.1). */
#include <errno.h>
#include <string.h>

#include "kvm_records.h"

static void p16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void p32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void p64(uint8_t *p, uint64_t v)
{
	p32(p, (uint32_t)v);
	p32(p + 4, (uint32_t)(v >> 32));
}
static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static uint64_t g64(const uint8_t *p)
{
	return (uint64_t)g32(p) | ((uint64_t)g32(p + 4) << 32);
}

void sqb_kvm_enc_regs(const struct kvm_regs *r, uint8_t *o)
{
	const uint64_t v[18] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				r->rsp, r->rbp, r->r8,	r->r9,	r->r10, r->r11,
				r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};

	for (int i = 0; i < 18; i++)
		p64(o + 8 * i, v[i]);
}

void sqb_kvm_dec_regs(const uint8_t *in, struct kvm_regs *r)
{
	__u64 *const v[18] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
			      &r->rsp, &r->rbp, &r->r8,	 &r->r9,  &r->r10, &r->r11,
			      &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags};

	for (int i = 0; i < 18; i++)
		*v[i] = g64(in + 8 * i);
}

static void enc_seg(const struct kvm_segment *s, uint8_t *o)
{
	memset(o, 0, 24);
	p64(o, s->base);
	p32(o + 8, s->limit);
	p16(o + 12, s->selector);
	o[14] = s->type;
	o[15] = s->present;
	o[16] = s->dpl;
	o[17] = s->db;
	o[18] = s->s;
	o[19] = s->l;
	o[20] = s->g;
	o[21] = s->avl;
	o[22] = s->unusable;
}

static void dec_seg(const uint8_t *in, struct kvm_segment *s)
{
	memset(s, 0, sizeof(*s));
	s->base = g64(in);
	s->limit = g32(in + 8);
	s->selector = g16(in + 12);
	s->type = in[14];
	s->present = in[15];
	s->dpl = in[16];
	s->db = in[17];
	s->s = in[18];
	s->l = in[19];
	s->g = in[20];
	s->avl = in[21];
	s->unusable = in[22];
}

void sqb_kvm_enc_sregs(const struct kvm_sregs *s, uint8_t *o)
{
	const struct kvm_segment *seg[8] = {&s->cs, &s->ds, &s->es, &s->fs,
					    &s->gs, &s->ss, &s->tr, &s->ldt};

	memset(o, 0, SQB_X86_SREGS_SIZE);
	for (int i = 0; i < 8; i++)
		enc_seg(seg[i], o + 24 * i);
	p64(o + 192, s->gdt.base);
	p16(o + 200, s->gdt.limit);
	p64(o + 208, s->idt.base);
	p16(o + 216, s->idt.limit);
	p64(o + 224, s->cr0);
	p64(o + 232, s->cr2);
	p64(o + 240, s->cr3);
	p64(o + 248, s->cr4);
	p64(o + 256, s->cr8);
	p64(o + 264, s->efer);
	p64(o + 272, s->apic_base);
	for (int i = 0; i < 4; i++)
		p64(o + 280 + 8 * i, s->interrupt_bitmap[i]);
}

void sqb_kvm_dec_sregs(const uint8_t *in, struct kvm_sregs *s)
{
	struct kvm_segment *seg[8] = {&s->cs, &s->ds, &s->es, &s->fs,
				      &s->gs, &s->ss, &s->tr, &s->ldt};

	memset(s, 0, sizeof(*s));
	for (int i = 0; i < 8; i++)
		dec_seg(in + 24 * i, seg[i]);
	s->gdt.base = g64(in + 192);
	s->gdt.limit = g16(in + 200);
	s->idt.base = g64(in + 208);
	s->idt.limit = g16(in + 216);
	s->cr0 = g64(in + 224);
	s->cr2 = g64(in + 232);
	s->cr3 = g64(in + 240);
	s->cr4 = g64(in + 248);
	s->cr8 = g64(in + 256);
	s->efer = g64(in + 264);
	s->apic_base = g64(in + 272);
	for (int i = 0; i < 4; i++)
		s->interrupt_bitmap[i] = g64(in + 280 + 8 * i);
}

void sqb_kvm_enc_events(const struct kvm_vcpu_events *e, uint8_t *o)
{
	memset(o, 0, SQB_X86_EVENTS_SIZE);
	o[0] = e->exception.injected;
	o[1] = e->exception.nr;
	o[2] = e->exception.has_error_code;
	o[3] = e->exception.pending;
	p32(o + 4, e->exception.error_code);
	o[8] = e->interrupt.injected;
	o[9] = e->interrupt.nr;
	o[10] = e->interrupt.soft;
	o[11] = e->interrupt.shadow;
	o[12] = e->nmi.injected;
	o[13] = e->nmi.pending;
	o[14] = e->nmi.masked;
	p32(o + 16, e->sipi_vector);
	p32(o + 20, e->flags);
	o[24] = e->smi.smm;
	o[25] = e->smi.pending;
	o[26] = e->smi.smm_inside_nmi;
	o[27] = e->smi.latched_init;
	o[28] = e->triple_fault.pending;
	o[29] = e->exception_has_payload;
	p64(o + 32, e->exception_payload);
}

void sqb_kvm_dec_events(const uint8_t *in, struct kvm_vcpu_events *e)
{
	memset(e, 0, sizeof(*e));
	e->exception.injected = in[0];
	e->exception.nr = in[1];
	e->exception.has_error_code = in[2];
	e->exception.pending = in[3];
	e->exception.error_code = g32(in + 4);
	e->interrupt.injected = in[8];
	e->interrupt.nr = in[9];
	e->interrupt.soft = in[10];
	e->interrupt.shadow = in[11];
	e->nmi.injected = in[12];
	e->nmi.pending = in[13];
	e->nmi.masked = in[14];
	e->sipi_vector = g32(in + 16);
	e->flags = g32(in + 20);
	e->smi.smm = in[24];
	e->smi.pending = in[25];
	e->smi.smm_inside_nmi = in[26];
	e->smi.latched_init = in[27];
	e->triple_fault.pending = in[28];
	e->exception_has_payload = in[29];
	e->exception_payload = g64(in + 32);
}

void sqb_kvm_enc_debugregs(const struct kvm_debugregs *d, uint8_t *o)
{
	for (int i = 0; i < 4; i++)
		p64(o + 8 * i, d->db[i]);
	p64(o + 32, d->dr6);
	p64(o + 40, d->dr7);
	p64(o + 48, d->flags);
}

void sqb_kvm_dec_debugregs(const uint8_t *in, struct kvm_debugregs *d)
{
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < 4; i++)
		d->db[i] = g64(in + 8 * i);
	d->dr6 = g64(in + 32);
	d->dr7 = g64(in + 40);
	d->flags = g64(in + 48);
}

/* (u32 key, u32 reserved, u64 value) lists share one layout */
static size_t enc_kv16(const void *keys, const void *vals, size_t stride_k, size_t stride_v,
		       uint32_t n, uint8_t *o)
{
	p32(o, n);
	p32(o + 4, 0);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *kb = (const uint8_t *)keys + i * stride_k;
		const uint8_t *vb = (const uint8_t *)vals + i * stride_v;

		uint32_t k;
		uint64_t v;

		memcpy(&k, kb, sizeof(k));
		memcpy(&v, vb, sizeof(v));
		p32(o + 8 + 16 * i, k);
		p32(o + 12 + 16 * i, 0);
		p64(o + 16 + 16 * i, v);
	}
	return 8 + 16 * (size_t)n;
}

static int dec_count(const uint8_t *in, size_t len, size_t unit, uint32_t cap, uint32_t *n)
{
	if (len < 8)
		return -EINVAL;
	*n = g32(in);
	if (g32(in + 4) || 8 + (uint64_t)*n * unit != len)
		return -EINVAL;
	return *n > cap ? -ENOSPC : 0;
}

size_t sqb_kvm_enc_msrs(const struct kvm_msr_entry *e, uint32_t n, uint8_t *o)
{
	return enc_kv16(&e[0].index, &e[0].data, sizeof(*e), sizeof(*e), n, o);
}

int sqb_kvm_dec_msrs(const uint8_t *in, size_t len, struct kvm_msr_entry *e, uint32_t cap,
		     uint32_t *n)
{
	int err = dec_count(in, len, 16, cap, n);

	if (err)
		return err;
	for (uint32_t i = 0; i < *n; i++) {
		e[i].index = g32(in + 8 + 16 * i);
		e[i].reserved = 0;
		e[i].data = g64(in + 16 + 16 * i);
	}
	return 0;
}

size_t sqb_kvm_enc_xcrs(const struct kvm_xcrs *x, uint8_t *o)
{
	uint32_t n = x->nr_xcrs < KVM_MAX_XCRS ? x->nr_xcrs : KVM_MAX_XCRS;

	return enc_kv16(&x->xcrs[0].xcr, &x->xcrs[0].value, sizeof(x->xcrs[0]), sizeof(x->xcrs[0]),
			n, o);
}

int sqb_kvm_dec_xcrs(const uint8_t *in, size_t len, struct kvm_xcrs *x)
{
	uint32_t n;
	int err = dec_count(in, len, 16, KVM_MAX_XCRS, &n);

	if (err)
		return err;
	memset(x, 0, sizeof(*x));
	x->nr_xcrs = n;
	for (uint32_t i = 0; i < n; i++) {
		x->xcrs[i].xcr = g32(in + 8 + 16 * i);
		x->xcrs[i].value = g64(in + 16 + 16 * i);
	}
	return 0;
}

size_t sqb_kvm_enc_cpuid(const struct kvm_cpuid_entry2 *e, uint32_t n, uint8_t *o)
{
	p32(o, n);
	p32(o + 4, 0);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *q = o + 8 + 32 * i;

		p32(q, e[i].function);
		p32(q + 4, e[i].index);
		p32(q + 8, e[i].flags);
		p32(q + 12, e[i].eax);
		p32(q + 16, e[i].ebx);
		p32(q + 20, e[i].ecx);
		p32(q + 24, e[i].edx);
		p32(q + 28, 0);
	}
	return 8 + 32 * (size_t)n;
}

int sqb_kvm_dec_cpuid(const uint8_t *in, size_t len, struct kvm_cpuid_entry2 *e, uint32_t cap,
		      uint32_t *n)
{
	int err = dec_count(in, len, 32, cap, n);

	if (err)
		return err;
	for (uint32_t i = 0; i < *n; i++) {
		const uint8_t *q = in + 8 + 32 * i;

		memset(&e[i], 0, sizeof(e[i]));
		e[i].function = g32(q);
		e[i].index = g32(q + 4);
		e[i].flags = g32(q + 8);
		e[i].eax = g32(q + 12);
		e[i].ebx = g32(q + 16);
		e[i].ecx = g32(q + 20);
		e[i].edx = g32(q + 24);
	}
	return 0;
}

void sqb_kvm_enc_pic(const struct kvm_pic_state *p, uint8_t *o)
{
	const uint8_t v[16] = {p->last_irr,
			       p->irr,
			       p->imr,
			       p->isr,
			       p->priority_add,
			       p->irq_base,
			       p->read_reg_select,
			       p->poll,
			       p->special_mask,
			       p->init_state,
			       p->auto_eoi,
			       p->rotate_on_auto_eoi,
			       p->special_fully_nested_mode,
			       p->init4,
			       p->elcr,
			       p->elcr_mask};

	memcpy(o, v, 16);
}

void sqb_kvm_dec_pic(const uint8_t *in, struct kvm_pic_state *p)
{
	uint8_t *const v[16] = {&p->last_irr,
				&p->irr,
				&p->imr,
				&p->isr,
				&p->priority_add,
				&p->irq_base,
				&p->read_reg_select,
				&p->poll,
				&p->special_mask,
				&p->init_state,
				&p->auto_eoi,
				&p->rotate_on_auto_eoi,
				&p->special_fully_nested_mode,
				&p->init4,
				&p->elcr,
				&p->elcr_mask};

	for (int i = 0; i < 16; i++)
		*v[i] = in[i];
}

void sqb_kvm_enc_ioapic(const struct kvm_ioapic_state *a, uint8_t *o)
{
	memset(o, 0, SQB_KVM_IOAPIC_SIZE);
	p64(o, a->base_address);
	p32(o + 8, a->ioregsel);
	p32(o + 12, a->id);
	p32(o + 16, a->irr);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		p64(o + 24 + 8 * i, a->redirtbl[i].bits);
}

void sqb_kvm_dec_ioapic(const uint8_t *in, struct kvm_ioapic_state *a)
{
	memset(a, 0, sizeof(*a));
	a->base_address = g64(in);
	a->ioregsel = g32(in + 8);
	a->id = g32(in + 12);
	a->irr = g32(in + 16);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		a->redirtbl[i].bits = g64(in + 24 + 8 * i);
}

void sqb_kvm_enc_pit(const struct kvm_pit_state2 *p, uint8_t *o)
{
	memset(o, 0, SQB_KVM_PIT_SIZE);
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &p->channels[i];
		uint8_t *q = o + 24 * i;

		p32(q, c->count);
		p16(q + 4, c->latched_count);
		q[6] = c->count_latched;
		q[7] = c->status_latched;
		q[8] = c->status;
		q[9] = c->read_state;
		q[10] = c->write_state;
		q[11] = c->write_latch;
		q[12] = c->rw_mode;
		q[13] = c->mode;
		q[14] = c->bcd;
		q[15] = c->gate;
		p64(q + 16, (uint64_t)c->count_load_time);
	}
	p32(o + 72, p->flags);
}

void sqb_kvm_dec_pit(const uint8_t *in, struct kvm_pit_state2 *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &p->channels[i];
		const uint8_t *q = in + 24 * i;

		c->count = g32(q);
		c->latched_count = g16(q + 4);
		c->count_latched = q[6];
		c->status_latched = q[7];
		c->status = q[8];
		c->read_state = q[9];
		c->write_state = q[10];
		c->write_latch = q[11];
		c->rw_mode = q[12];
		c->mode = q[13];
		c->bcd = q[14];
		c->gate = q[15];
		c->count_load_time = (int64_t)g64(q + 16);
	}
	p->flags = g32(in + 72);
}

void sqb_kvm_enc_clock(const struct kvm_clock_data *c, uint8_t *o)
{
	memset(o, 0, SQB_KVM_CLOCK_SIZE);
	p64(o, c->clock);
	p32(o + 8, c->flags);
	p64(o + 16, c->realtime);
	p64(o + 24, c->host_tsc);
}

void sqb_kvm_dec_clock(const uint8_t *in, struct kvm_clock_data *c)
{
	memset(c, 0, sizeof(*c));
	c->clock = g64(in);
	c->flags = g32(in + 8);
	c->realtime = g64(in + 16);
	c->host_tsc = g64(in + 24);
}
