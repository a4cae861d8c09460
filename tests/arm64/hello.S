/* Tiny freestanding arm64 test guest, an arm64 Linux `Image` (booting.rst
 * header) so squib's loader takes it as it takes Linux.  It checks the DTB
 * in x0 (magic 0xd00dfeed), fills 1 MiB of RAM with a pattern, starts the
 * second vCPU through PSCI CPU_ON when there is one, prints 40 ticks 50 ms
 * apart on the virtual counter, verifies the pattern and powers off with
 * PSCI SYSTEM_OFF.  Everything on the PL011 data register at 0x0900_0000.
 * MMU off: code is position-independent (adr), RAM accesses are plain. */
	.section .text
	.globl _start
_start:
	b	primary			/* code0 */
	.long	0			/* code1 */
	.quad	0			/* text_offset */
	.quad	_end - _start		/* image_size */
	.quad	0xa			/* flags: LE, 4 KiB pages, anywhere */
	.quad	0, 0, 0			/* res2..res4 */
	.ascii	"ARM\x64"		/* magic */
	.long	0			/* res5 */

#define UART	0x09000000
#define PSCI_CPU_ON	0xc4000003
#define PSCI_SYSTEM_OFF	0x84000008
#define PAT_BASE_OFF	0x200000	/* load address + 2 MiB */
#define PAT_WORDS	(0x100000 / 8)
#define TICKS	40

/* putc(w0), clobbers x9 */
putc:
	mov	x9, #UART
	strb	w0, [x9]
	ret

/* puts(x1 = string), clobbers x0, x1, x9, x10 */
puts:
	mov	x10, x30
1:	ldrb	w0, [x1], #1
	cbz	w0, 2f
	bl	putc
	b	1b
2:	mov	x30, x10
	ret

/* putdec(x2 < 100), clobbers x0, x3, x4, x9, x10 */
putdec:
	mov	x10, x30
	mov	x3, #10
	udiv	x4, x2, x3
	msub	x0, x4, x3, x2
	cbz	x4, 1f
	add	x4, x4, #'0'
	mov	x11, x0
	mov	x0, x4
	bl	putc
	mov	x0, x11
1:	add	x0, x0, #'0'
	bl	putc
	mov	x30, x10
	ret

primary:
	mov	x20, x0			/* DTB address */
	adr	x21, _start		/* the load address (RAM + 2 MiB) */
	add	x1, x21, #0x100000
	mov	sp, x1
	adr	x1, s_hello
	bl	puts
	/* DTB magic, big-endian 0xd00dfeed */
	ldr	w2, [x20]
	rev	w2, w2
	movz	w3, #0xfeed
	movk	w3, #0xd00d, lsl #16
	adr	x1, s_dtb_bad
	cmp	w2, w3
	b.ne	1f
	adr	x1, s_dtb_ok
1:	bl	puts
	/* RAM pattern: word i = i ^ 0x5a5a5a5a00000000 */
	add	x5, x21, #PAT_BASE_OFF
	mov	x6, #0
	movz	x7, #0x5a5a, lsl #48
	movk	x7, #0x5a5a, lsl #32
2:	eor	x8, x6, x7
	str	x8, [x5, x6, lsl #3]
	add	x6, x6, #1
	cmp	x6, #PAT_WORDS
	b.ne	2b
	/* second vCPU: CPU_ON(mpidr 1, secondary, 0) */
	adr	x22, flag
	str	wzr, [x22]
	movz	x0, #(PSCI_CPU_ON & 0xffff)
	movk	x0, #(PSCI_CPU_ON >> 16), lsl #16
	mov	x1, #1
	adr	x2, secondary
	mov	x3, #0
	hvc	#0
	cbnz	x0, 4f			/* no such CPU: 1 vCPU */
3:	ldr	w0, [x22]		/* wait for the secondary's line */
	cbz	w0, 3b
	b	5f
4:	adr	x1, s_cpu1_absent
	bl	puts
5:	/* ticks, 50 ms apart on the virtual counter */
	mrs	x12, cntfrq_el0
	mov	x3, #20
	udiv	x12, x12, x3		/* counts per 50 ms */
	mov	x2, #1
6:	isb
	mrs	x13, cntvct_el0
	add	x13, x13, x12
7:	isb
	mrs	x14, cntvct_el0
	cmp	x14, x13
	b.lo	7b
	adr	x1, s_tick
	mov	x15, x2
	bl	puts
	mov	x2, x15
	bl	putdec
	mov	x0, #'\n'
	bl	putc
	mov	x2, x15
	add	x2, x2, #1
	cmp	x2, #TICKS
	b.ls	6b
	/* verify the pattern */
	mov	x6, #0
8:	eor	x8, x6, x7
	ldr	x9, [x5, x6, lsl #3]
	cmp	x8, x9
	b.ne	9f
	add	x6, x6, #1
	cmp	x6, #PAT_WORDS
	b.ne	8b
	adr	x1, s_mem_ok
	b	10f
9:	adr	x1, s_mem_bad
10:	bl	puts
	adr	x1, s_done
	bl	puts
	movz	x0, #(PSCI_SYSTEM_OFF & 0xffff)
	movk	x0, #(PSCI_SYSTEM_OFF >> 16), lsl #16
	hvc	#0
11:	wfi
	b	11b

secondary:
	adr	x21, _start
	add	x1, x21, #0x80000
	mov	sp, x1
	mrs	x2, mpidr_el1
	and	x2, x2, #0xff
	adr	x1, s_cpu
	bl	puts
	bl	putdec
	adr	x1, s_on
	bl	puts
	adr	x22, flag
	mov	w0, #1
	str	w0, [x22]
12:	wfi
	b	12b

	.balign	8
flag:	.long	0
s_hello:	.asciz	"arm64-guest: hello from EL1\n"
s_dtb_ok:	.asciz	"arm64-guest: dtb ok\n"
s_dtb_bad:	.asciz	"arm64-guest: dtb BAD\n"
s_cpu1_absent:	.asciz	"arm64-guest: cpu1 absent\n"
s_cpu:	.asciz	"arm64-guest: cpu"
s_on:	.asciz	" on\n"
s_tick:	.asciz	"arm64-guest: tick "
s_mem_ok:	.asciz	"arm64-guest: mem ok\n"
s_mem_bad:	.asciz	"arm64-guest: mem BAD\n"
s_done:	.asciz	"arm64-guest: done\n"
	.balign	4096
_end:
