/* Unit, no /dev/kvm: the triple-fault report of the KVM backend
 * (runtime/kvm/x86_64/kvm_crash.c, SQB_CRASH_CHECK=1) over a hand-built
 * x86-64 guest, laid out from the Intel SDM / AMD APM formats rather than
 * from squib's code: 4-level page tables (CR3 -> PML4 -> PDPT -> PD -> PT,
 * 4 KiB pages, P bit 0, PS bit 7), a 64-bit IDT of 16-byte interrupt gates
 * (offset 15:0 | selector | IST bits 34:32 | type 0xE | P bit 47 |
 * offset 31:16 | offset 63:32), a GDT with a 16-byte TSS descriptor and a
 * 64-bit TSS (RSP0 at byte 4, IST1..7 from byte 36).  After the "load" the
 * test does what a stray device write would: overwrites part of the IDT and
 * unmaps an IST stack; the report must name both. */
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvm_priv.h"
#include "log.h"

#define MEM  (1u << 20)
#define VA   0xffffffff80000000ULL /* PML4[511] PDPT[510] PD[0] PT[i] -> 0x10000 + i pages */
#define PTE  0x3ULL		   /* present, writable */
#define PT_G 0x4000ULL

static uint8_t *mem;

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(mem + gpa, &v, 8);
}

static uint64_t va(unsigned int page)
{
	return VA + 0x1000ULL * page;
}

/* page i of the kernel window: IDT 0, GDT 1, handlers 2, TSS 3, stack 5,
 * IST1 stack 6 */
static void build(struct kvm_sregs *s, struct kvm_regs *r)
{
	uint64_t handler = va(2) + 0x40, tss = va(3);

	memset(mem, 0, MEM);
	put64(0x1000 + 8 * 511, 0x2000 | PTE);
	put64(0x2000 + 8 * 510, 0x3000 | PTE);
	put64(0x3000 + 8 * 0, PT_G | PTE);
	for (unsigned int i = 0; i < 8; i++)
		put64(PT_G + 8 * i, (0x10000 + 0x1000ULL * i) | PTE);
	for (unsigned int v = 0; v < 256; v++) {
		uint64_t lo = (handler & 0xffff) | (0x10ULL << 16) | ((v == 8 ? 1ULL : 0) << 32) |
			      (0xeULL << 40) | (1ULL << 47) | ((handler >> 16) & 0xffff) << 48;

		put64(0x10000 + 16 * v, lo);
		put64(0x10000 + 16 * v + 8, handler >> 32);
	}
	/* GDT: null, code 0x10, data 0x18, TSS at 0x40 (16 bytes, type 0xB busy) */
	put64(0x11000 + 0x10, 0x00af9b000000ffffULL);
	put64(0x11000 + 0x18, 0x00cf93000000ffffULL);
	put64(0x11000 + 0x40,
	      0x67 | ((tss & 0xffffff) << 16) | (0x8bULL << 40) | ((tss >> 24) & 0xff) << 56);
	put64(0x11000 + 0x48, tss >> 32);
	put64(0x13000 + 4, va(5) + 0x1000);  /* RSP0 */
	put64(0x13000 + 36, va(6) + 0x1000); /* IST1: the #DF stack */
	memset(s, 0, sizeof(*s));
	memset(r, 0, sizeof(*r));
	s->cr0 = 0x80050033;
	s->cr3 = 0x1000;
	s->cr4 = 0x20; /* PAE */
	s->efer = 0x500;
	s->idt.base = va(0);
	s->idt.limit = 4095;
	s->gdt.base = va(1);
	s->gdt.limit = 0x4f;
	s->tr.selector = 0x40;
	s->tr.base = tss;
	s->tr.limit = 0x67;
	r->rip = handler;
	r->rsp = va(5) + 0x800;
}

static char *run_report(struct sqb_hv_vcpu *vc)
{
	FILE *f = tmpfile();
	char *out = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(out);
	sqb_log_set_fd(fileno(f));
	sqb_kvm_crash_report(vc);
	sqb_log_set_fd(2);
	rewind(f);
	size_t n = fread(out, 1, 65535, f);
	out[n] = 0;
	fclose(f);
	return out;
}

static void test_exception_path_checked(void **state)
{
	struct sqb_hv_vm vm = {.kvm_fd = -1, .vm_fd = -1, .nvcpus = 1};
	struct sqb_hv_vcpu vc = {.vm = &vm, .fd = -1};
	struct kvm_sregs s;
	struct kvm_regs r;
	char *out;

	(void)state;
	vm.slots[0] = (struct sqb_kvm_slot){0, MEM, mem};
	vm.nslots = 1;
	build(&s, &r);
	sqb_kvm_crash_arm(&vc, &s, &r);
	assert_non_null(vc.crash);

	/* intact: nothing unmapped, nothing changed */
	out = run_report(&vc);
	assert_non_null(strstr(out, "last known state (load"));
	assert_non_null(strstr(out, "0 unmapped address(es)"));
	assert_non_null(strstr(out, "0 of "));
	assert_non_null(strstr(out, "IDT[8] = "));
	assert_non_null(strstr(out, "ist 1 type 0xe P 1"));
	free(out);

	/* a stray 256-byte write over IDT vectors 40..55, and the IST1 stack's
	 * page-table entry cleared */
	memset(mem + 0x10000 + 16 * 40, 0x5a, 256);
	put64(PT_G + 8 * 6, 0);
	out = run_report(&vc);
	assert_non_null(strstr(out, "IDT page 0x10000 changed since the load: 256 bytes, first at "
				    "+0x280: was"));
	assert_non_null(strstr(out, "now 5a5a5a5a5a5a5a5a"));
	assert_non_null(strstr(out, "page table page 0x4000 changed since the load: "));
	assert_non_null(strstr(out, "IST stack va 0xffffffff80006ff8 -> NOT MAPPED"));
	assert_non_null(strstr(out, "1 unmapped address(es)"));
	assert_non_null(strstr(out, "2 of "));
	free(out);
	sqb_kvm_crash_free(&vc);
	assert_null(vc.crash);
}

/* Without the environment switch nothing is remembered (no cost, no reads
 * of guest memory at a load). */
static void test_off_without_env(void **state)
{
	(void)state;
	/* the switch is read once per process: this runs in a child */
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct sqb_hv_vm vm = {.kvm_fd = -1, .vm_fd = -1, .nvcpus = 1};
		struct sqb_hv_vcpu vc = {.vm = &vm, .fd = -1};
		struct kvm_sregs s;
		struct kvm_regs r;

		unsetenv("SQB_CRASH_CHECK");
		vm.slots[0] = (struct sqb_kvm_slot){0, MEM, mem};
		vm.nslots = 1;
		build(&s, &r);
		sqb_kvm_crash_arm(&vc, &s, &r);
		_exit(vc.crash == NULL ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_off_without_env),
	    cmocka_unit_test(test_exception_path_checked),
	};

	mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	sqb_log_set_level(SQB_LOG_ERROR);
	setenv("SQB_CRASH_CHECK", "1", 1); /* the child of test_off_without_env unsets it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
