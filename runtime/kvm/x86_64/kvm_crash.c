/* KVM backend, x86_64: what a guest triple fault (KVM_EXIT_SHUTDOWN) left,
 * written to the log: KVM's registers at the exit (on AMD SVM the VMCB is
 * reset by then: rip 0xfff0) and, with SQB_CRASH_CHECK=1 in the
 * environment, the last state squib knew (a snapshot load, then every exit)
 * and a check of what the CPU needs to deliver an exception: page walks of
 * the IDT, GDT, TSS, IST stacks, stack and handlers, each table and page
 * compared with its bytes at the load (docs/testing.md "Known failures").
 * It reads guest memory at the load and at the fault: meant for File (mmap,
 * eager) loads; with lazy or Uffd memory a read waits for the page server
 * (for ever if the server refuses to serve). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_priv.h"
#include "log.h"

#define CR_PAGES_MAX 96
#define PG	     4096ULL
#define ADDR_MASK    0x000ffffffffff000ULL

struct crash_page {
	uint64_t gpa;
	const char *what; /* static */
	uint8_t *pre;	  /* bytes at the load */
};

struct sqb_kvm_crash {
	int have;
	struct kvm_sregs s;
	struct kvm_regs r;
	const char *from; /* "load" or "exit" */
	uint64_t exits;	  /* userspace exits since the load */
	struct crash_page pg[CR_PAGES_MAX];
	unsigned int npg;
};

static int crash_enabled(void)
{
	static int v = -1;
	int c = __atomic_load_n(&v, __ATOMIC_RELAXED);

	if (c < 0) {
		const char *e = getenv("SQB_CRASH_CHECK");

		c = e && *e && strcmp(e, "0") != 0;
		__atomic_store_n(&v, c, __ATOMIC_RELAXED);
	}
	return c;
}

static uint8_t *gpa_host(struct sqb_hv_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < vm->nslots; i++) {
		const struct sqb_kvm_slot *s = &vm->slots[i];

		if (s->size && gpa >= s->gpa && gpa - s->gpa < s->size &&
		    len <= s->size - (gpa - s->gpa))
			return s->host + (gpa - s->gpa);
	}
	return NULL;
}

static int gread64(struct sqb_hv_vm *vm, uint64_t gpa, uint64_t *v)
{
	uint8_t *p = gpa_host(vm, gpa, 8);

	if (!p)
		return -1;
	memcpy(v, p, 8);
	return 0;
}

/* A 4- or 5-level long-mode walk of va; each table's gpa goes to tables[]
 * (up to 5).  Returns the levels walked; *gpa is set when present. */
static int walk(struct sqb_hv_vm *vm, const struct kvm_sregs *s, uint64_t va, uint64_t *gpa,
		uint64_t tables[5], uint64_t ents[5], int *present)
{
	int levels = (s->cr4 & (1ULL << 12)) ? 5 : 4, n = 0;
	uint64_t table = s->cr3 & ADDR_MASK;

	*present = 0;
	for (int l = levels; l >= 1; l--) {
		unsigned int shift = 12 + 9 * (unsigned int)(l - 1);
		uint64_t e;

		tables[n] = table;
		if (gread64(vm, table + 8 * ((va >> shift) & 511), &e)) {
			ents[n++] = ~0ULL;
			return n;
		}
		ents[n++] = e;
		if (!(e & 1))
			return n;
		if ((l == 2 || l == 3) && (e & (1ULL << 7))) {
			uint64_t mask = (1ULL << shift) - 1;

			*gpa = (e & ADDR_MASK & ~mask) | (va & mask);
			*present = 1;
			return n;
		}
		table = e & ADDR_MASK;
	}
	*gpa = table | (va & 0xfff);
	*present = 1;
	return n;
}

static void add_page(struct sqb_kvm_crash *c, struct sqb_hv_vm *vm, uint64_t gpa, const char *what)
{
	uint8_t *p;

	gpa &= ~(PG - 1);
	for (unsigned int i = 0; i < c->npg; i++)
		if (c->pg[i].gpa == gpa)
			return;
	if (c->npg == CR_PAGES_MAX || !(p = gpa_host(vm, gpa, PG)))
		return;
	c->pg[c->npg].pre = malloc(PG);
	if (!c->pg[c->npg].pre)
		return;
	memcpy(c->pg[c->npg].pre, p, PG);
	c->pg[c->npg].gpa = gpa;
	c->pg[c->npg].what = what;
	c->npg++;
}

/* Visit what exception delivery needs, from state s: fn(what, va, len). */
struct visit {
	struct sqb_hv_vm *vm;
	const struct kvm_sregs *s;
	const struct kvm_regs *r;
	struct sqb_kvm_crash *arm; /* non-NULL: record pre-images */
	int report;
	int bad;
};

static void visit_va(struct visit *v, const char *what, uint64_t va, uint64_t len)
{
	uint64_t t[5], e[5], gpa = 0;
	int present, n;

	for (uint64_t off = 0; off < len; off += PG) {
		uint64_t a = off ? ((va + off) & ~(PG - 1)) : va;

		n = walk(v->vm, v->s, a, &gpa, t, e, &present);
		if (v->arm) {
			for (int i = 0; i < n; i++)
				add_page(v->arm, v->vm, t[i], "page table");
			if (present)
				add_page(v->arm, v->vm, gpa, what);
		}
		if (v->report && (!present || off == 0)) {
			char buf[256];
			int k = 0;

			for (int i = 0; i < n && k < (int)sizeof(buf); i++)
				k += snprintf(buf + k, sizeof(buf) - (size_t)k, " L%d[%llx]=%llx",
					      (v->s->cr4 & (1ULL << 12) ? 5 : 4) - i,
					      (unsigned long long)t[i], (unsigned long long)e[i]);
			if (!present)
				v->bad++;
			sqb_err("crash check: %s va 0x%llx -> %s 0x%llx;%s", what,
				(unsigned long long)a, present ? "gpa" : "NOT MAPPED",
				(unsigned long long)gpa, buf);
		}
	}
}

static void visit_all(struct visit *v)
{
	const struct kvm_sregs *s = v->s;
	uint64_t tss = 0, gate[2];
	uint8_t desc[16];
	int tss_ok = 0;

	if (!(s->cr0 & 0x80000000ULL) || !(s->efer & (1ULL << 10))) {
		if (v->report)
			sqb_err("crash check: not in long mode (cr0 0x%llx efer 0x%llx)",
				(unsigned long long)s->cr0, (unsigned long long)s->efer);
		return;
	}
	visit_va(v, "IDT", s->idt.base, (uint64_t)s->idt.limit + 1);
	visit_va(v, "GDT", s->gdt.base, (uint64_t)s->gdt.limit + 1);
	visit_va(v, "TSS", s->tr.base, s->tr.limit + 1ULL);
	visit_va(v, "stack (rsp)", v->r->rsp, 8);
	visit_va(v, "code (rip)", v->r->rip, 16);
	/* the TSS: rsp0 at 4, ist[1..7] at 36 */
	for (int i = 0; i < 8; i++) {
		uint64_t t[5], e[5], gpa, val;
		int present;
		uint64_t off = i == 0 ? 4 : 36 + 8 * (uint64_t)(i - 1);
		uint8_t *p;

		walk(v->vm, s, s->tr.base + off, &gpa, t, e, &present);
		if (!present || !(p = gpa_host(v->vm, gpa, 8)))
			break;
		tss_ok = 1;
		memcpy(&val, p, 8);
		if (!val)
			continue;
		if (v->report)
			sqb_err("crash check: TSS %s%d = 0x%llx", i ? "ist" : "rsp", i ? i : 0,
				(unsigned long long)val);
		visit_va(v, i ? "IST stack" : "rsp0 stack", val - 8, 8);
	}
	(void)tss;
	(void)tss_ok;
	/* the gates of the exceptions (0-31): handler pages */
	for (unsigned int vec = 0; vec < 32 && 16ULL * vec + 15 <= s->idt.limit; vec++) {
		uint64_t t[5], e[5], gpa, handler;
		int present;
		uint8_t *p;

		walk(v->vm, s, s->idt.base + 16ULL * vec, &gpa, t, e, &present);
		if (!present || !(p = gpa_host(v->vm, gpa, 16)))
			break;
		memcpy(gate, p, 16);
		handler = (gate[0] & 0xffff) | ((gate[0] >> 32) & 0xffff0000ULL) | (gate[1] << 32);
		if (v->report && (vec == 8 || vec == 13 || vec == 14 || !((gate[0] >> 47) & 1)))
			sqb_err(
			    "crash check: IDT[%u] = %016llx %016llx: handler 0x%llx sel 0x%x ist "
			    "%u type 0x%x P %u",
			    vec, (unsigned long long)gate[1], (unsigned long long)gate[0],
			    (unsigned long long)handler, (unsigned)((gate[0] >> 16) & 0xffff),
			    (unsigned)((gate[0] >> 32) & 7), (unsigned)((gate[0] >> 40) & 0xf),
			    (unsigned)((gate[0] >> 47) & 1));
		visit_va(v, "exception handler", handler, 16);
	}
	/* the TSS descriptor in the GDT */
	{
		uint64_t t[5], e[5], gpa;
		int present;
		uint8_t *p;

		walk(v->vm, s, s->gdt.base + (s->tr.selector & ~7u), &gpa, t, e, &present);
		if (present && (p = gpa_host(v->vm, gpa, 16))) {
			memcpy(desc, p, 16);
			if (v->report)
				sqb_err(
				    "crash check: GDT[tr 0x%x] = %02x%02x%02x%02x%02x%02x%02x%02x "
				    "(type 0x%x P %u)",
				    s->tr.selector, desc[7], desc[6], desc[5], desc[4], desc[3],
				    desc[2], desc[1], desc[0], desc[5] & 0xf, desc[5] >> 7);
		}
	}
}

static void dump_state(const char *tag, const struct kvm_sregs *s, const struct kvm_regs *r)
{
	sqb_err("%s: rip 0x%llx rsp 0x%llx rflags 0x%llx rax 0x%llx rbx 0x%llx rcx 0x%llx "
		"rdx 0x%llx rsi 0x%llx rdi 0x%llx rbp 0x%llx",
		tag, (unsigned long long)r->rip, (unsigned long long)r->rsp,
		(unsigned long long)r->rflags, (unsigned long long)r->rax,
		(unsigned long long)r->rbx, (unsigned long long)r->rcx, (unsigned long long)r->rdx,
		(unsigned long long)r->rsi, (unsigned long long)r->rdi, (unsigned long long)r->rbp);
	sqb_err("%s: cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx cs 0x%x ss 0x%x "
		"idt 0x%llx/%u gdt 0x%llx/%u tr 0x%x@0x%llx",
		tag, (unsigned long long)s->cr0, (unsigned long long)s->cr2,
		(unsigned long long)s->cr3, (unsigned long long)s->cr4, (unsigned long long)s->efer,
		s->cs.selector, s->ss.selector, (unsigned long long)s->idt.base, s->idt.limit,
		(unsigned long long)s->gdt.base, s->gdt.limit, s->tr.selector,
		(unsigned long long)s->tr.base);
}

static void crash_free_pages(struct sqb_kvm_crash *c)
{
	for (unsigned int i = 0; i < c->npg; i++)
		free(c->pg[i].pre);
	c->npg = 0;
}

void sqb_kvm_crash_arm(struct sqb_hv_vcpu *vc, const struct kvm_sregs *s, const struct kvm_regs *r)
{
	struct sqb_kvm_crash *c;
	struct visit v = {0};

	if (!crash_enabled())
		return;
	if (!vc->crash && !(vc->crash = calloc(1, sizeof(*vc->crash))))
		return;
	c = vc->crash;
	crash_free_pages(c);
	c->s = *s;
	c->r = *r;
	c->have = 1;
	c->from = "load";
	c->exits = 0;
	v.vm = vc->vm;
	v.s = s;
	v.r = r;
	v.arm = c;
	visit_all(&v);
	sqb_debug("crash check: vCPU %u armed at the load, %u pages remembered", vc->index, c->npg);
}

void sqb_kvm_crash_note_exit(struct sqb_hv_vcpu *vc)
{
	struct sqb_kvm_crash *c = vc->crash;
	struct kvm_sregs s;
	struct kvm_regs r;

	if (!c || !crash_enabled())
		return;
	if (ioctl(vc->fd, KVM_GET_SREGS, &s) < 0 || ioctl(vc->fd, KVM_GET_REGS, &r) < 0)
		return;
	c->s = s;
	c->r = r;
	c->from = "exit";
	c->exits++;
}

void sqb_kvm_crash_report(struct sqb_hv_vcpu *vc)
{
	struct sqb_kvm_crash *c = vc->crash;
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_vcpu_events e;
	char tag[64];

	snprintf(tag, sizeof(tag), "vCPU %u shutdown, KVM's state", vc->index);
	if (ioctl(vc->fd, KVM_GET_SREGS, &s) == 0 && ioctl(vc->fd, KVM_GET_REGS, &r) == 0)
		dump_state(tag, &s, &r);
	if (ioctl(vc->fd, KVM_GET_VCPU_EVENTS, &e) == 0)
		sqb_err("%s: exception injected %u nr %u error %u 0x%x pending %u; triple fault "
			"pending %u",
			tag, e.exception.injected, e.exception.nr, e.exception.has_error_code,
			e.exception.error_code, e.exception.pending, e.triple_fault.pending);
	if (!c || !c->have) {
		if (!crash_enabled())
			sqb_err("vCPU %u shutdown: set SQB_CRASH_CHECK=1 for the last known state "
				"and a check of the guest's exception path",
				vc->index);
		return;
	}
	snprintf(tag, sizeof(tag), "vCPU %u last known state (%s, %llu exits after the load)",
		 vc->index, c->from, (unsigned long long)c->exits);
	dump_state(tag, &c->s, &c->r);
	{
		struct visit v = {.vm = vc->vm, .s = &c->s, .r = &c->r, .report = 1};

		visit_all(&v);
		sqb_err("crash check: %d unmapped address(es) on the exception path", v.bad);
	}
	{
		unsigned int changed = 0;

		for (unsigned int i = 0; i < c->npg; i++) {
			const uint8_t *now = gpa_host(vc->vm, c->pg[i].gpa, PG);
			unsigned int first = PG, nd = 0;

			if (!now)
				continue;
			for (unsigned int k = 0; k < PG; k++)
				if (now[k] != c->pg[i].pre[k]) {
					if (first == PG)
						first = k;
					nd++;
				}
			if (!nd)
				continue;
			changed++;
			sqb_err("crash check: %s page 0x%llx changed since the load: %u bytes, "
				"first at +0x%x: was %02x%02x%02x%02x%02x%02x%02x%02x now "
				"%02x%02x%02x%02x%02x%02x%02x%02x",
				c->pg[i].what, (unsigned long long)c->pg[i].gpa, nd, first,
				c->pg[i].pre[first & ~7u], c->pg[i].pre[(first & ~7u) + 1],
				c->pg[i].pre[(first & ~7u) + 2], c->pg[i].pre[(first & ~7u) + 3],
				c->pg[i].pre[(first & ~7u) + 4], c->pg[i].pre[(first & ~7u) + 5],
				c->pg[i].pre[(first & ~7u) + 6], c->pg[i].pre[(first & ~7u) + 7],
				now[first & ~7u], now[(first & ~7u) + 1], now[(first & ~7u) + 2],
				now[(first & ~7u) + 3], now[(first & ~7u) + 4],
				now[(first & ~7u) + 5], now[(first & ~7u) + 6],
				now[(first & ~7u) + 7]);
		}
		sqb_err("crash check: %u of %u pages remembered at the load changed", changed,
			c->npg);
	}
}

void sqb_kvm_crash_free(struct sqb_hv_vcpu *vc)
{
	if (!vc->crash)
		return;
	crash_free_pages(vc->crash);
	free(vc->crash);
	vc->crash = NULL;
}
