/* Tiny arm64 guest for the HVF backend's self-test (hvf_selftest.c), MMU
 * off.  x0 = a config block {mode, base, npages, seed} (u64 each).  Page i
 * of [base, base + npages * 4 KiB) holds, at byte (i * 64) % 4096, the word
 * i ^ seed when i % 3 != 2 and 0 otherwise.  Mode 1 writes that pattern
 * (pages with i % 3 == 2 untouched) and prints "hvf-guest: wrote"; mode 2
 * checks it and prints "hvf-guest: verify ok" or "hvf-guest: verify BAD".
 * Then PSCI SYSTEM_OFF through HVC.  Output on the PL011 at 0x0900_0000. */
	.section .text
	.globl _start
_start:
	mov	x20, x0
	ldr	x1, [x20]		/* mode */
	ldr	x2, [x20, #8]		/* base */
	ldr	x3, [x20, #16]		/* npages */
	ldr	x4, [x20, #24]		/* seed */
	mov	x5, #0			/* i */
	mov	x12, #3
	mov	x21, #0			/* mismatches */
1:	cmp	x5, x3
	b.hs	5f
	lsl	x6, x5, #12		/* page offset */
	lsl	x7, x5, #6
	and	x7, x7, #0xfff
	add	x6, x6, x7
	add	x6, x6, x2		/* word address */
	udiv	x8, x5, x12
	msub	x8, x8, x12, x5		/* i % 3 */
	eor	x9, x5, x4		/* expected */
	cmp	x8, #2
	csel	x9, xzr, x9, eq
	cmp	x1, #1
	b.ne	2f
	cmp	x8, #2
	b.eq	4f
	str	x9, [x6]
	b	4f
2:	ldr	x10, [x6]
	cmp	x10, x9
	b.eq	4f
	add	x21, x21, #1
4:	add	x5, x5, #1
	b	1b
5:	adr	x1, s_wrote
	ldr	x10, [x20]
	cmp	x10, #1
	b.eq	6f
	adr	x1, s_ok
	cbz	x21, 6f
	adr	x1, s_bad
6:	mov	x9, #0x09000000
7:	ldrb	w0, [x1], #1
	cbz	w0, 8f
	strb	w0, [x9]
	b	7b
8:	movz	x0, #0x0008
	movk	x0, #0x8400, lsl #16	/* PSCI SYSTEM_OFF */
	hvc	#0
9:	wfi
	b	9b

s_wrote:	.asciz "hvf-guest: wrote\n"
s_ok:		.asciz "hvf-guest: verify ok\n"
s_bad:		.asciz "hvf-guest: verify BAD\n"
	.balign 8
