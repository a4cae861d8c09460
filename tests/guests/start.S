/* Test-guest start-up: PVH 32-bit entry (XEN_ELFNOTE_PHYS32_ENTRY), own GDT,
 * identity page tables for the low 4 GiB (2 MiB pages), switch to long mode,
 * call guest_main(start_info).  Also the real-mode AP trampoline that
 * secondary vCPUs start in after INIT/SIPI (copied to 0x8000 by the guest). */
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define TRAMP_BASE 0x8000

	.section .note.pvh, "a"
	.p2align 2
	.long 4, 4, 18		/* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long _start32

	.section .text.entry, "ax"
	.code32
	.globl _start32
_start32:
	cli
	movl %ebx, boot_start_info
	lgdt gdt_ptr
	ljmp $0x18, $1f
1:	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $bsp_stack_top, %esp
	/* PML4[0] -> PDPT.  With 1 GiB pages (CPUID 0x80000001 EDX.26) the
	 * PDPT maps 0..4 GiB in four entries; otherwise PDPT[0..3] -> PD0..3
	 * of 2 MiB pages.  Fewer entries = less work under emulation. */
	movl $pt_pdpt, %eax
	orl $3, %eax
	movl %eax, pt_pml4
	movl $0x80000001, %eax
	cpuid
	btl $26, %edx
	jnc 5f
	xorl %ecx, %ecx
6:	movl %ecx, %eax
	shll $30, %eax
	orl $0x83, %eax		/* present, writable, 1 GiB */
	movl %eax, pt_pdpt(,%ecx,8)
	incl %ecx
	cmpl $4, %ecx
	jne 6b
	jmp 7f
5:	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $12, %eax
	addl $pt_pd, %eax
	orl $3, %eax
	movl %eax, pt_pdpt(,%ecx,8)
	incl %ecx
	cmpl $4, %ecx
	jne 2b
	xorl %ecx, %ecx
3:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax		/* present, writable, 2 MiB */
	movl %eax, pt_pd(,%ecx,8)
	incl %ecx
	cmpl $2048, %ecx
	jne 3b
7:
	xorl %edi, %edi		/* 0 = bootstrap processor */
	.globl enter_long
enter_long:
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pt_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $0x08, $long64

	.code64
long64:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	testl %edi, %edi
	jnz ap64
	movabsq $bsp_stack_top, %rsp
	movl boot_start_info, %edi
	call guest_main
4:	cli
	hlt
	jmp 4b

ap64:
	movl $1, %eax
	lock xaddl %eax, ap_stack_next
	incl %eax
	shlq $12, %rax
	movabsq $ap_stacks, %rsp
	addq %rax, %rsp
	call ap_main
5:	cli
	hlt
	jmp 5b

/* ---- AP trampoline: runs at TRAMP_BASE in real mode ---- */
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl (tramp_gdtr - tramp_start + TRAMP_BASE)
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $0x18, $(tramp32 - tramp_start + TRAMP_BASE)
	.code32
tramp32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl $1, %edi		/* 1 = application processor */
	movl $enter_long, %eax
	jmp *%eax
	.p2align 2
tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
tramp_end:

	.section .rodata
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
	.quad 0x00cf9a000000ffff	/* 0x18: 32-bit code */
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt

	.data
	.globl boot_start_info
	.p2align 2
boot_start_info:
	.long 0
ap_stack_next:
	.long 0

	.bss
	.p2align 12
pt_pml4:	.skip 4096
pt_pdpt:	.skip 4096
pt_pd:		.skip 4096 * 4
bsp_stack:	.skip 16384
bsp_stack_top:
	.globl ap_stacks
ap_stacks:	.skip 4096 * 33
