/* Register decoding for inspect/diff/extract: X86_REGS and X86_SREGS
 * control registers, ARM64_CORE and ARM64_SYSREGS (docs/format.md, "vCPU
 * records", 8.1 and 8.2, [F-54] encodings); every field is read
 * little-endian at its documented offset. */
#include <stdio.h>
#include <string.h>

#include "snaptool.h"

static uint64_t le64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint32_t le32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static unsigned int put(struct st_reg *out, unsigned int n, unsigned int max, const char *name,
			uint64_t v, int key)
{
	if (n < max) {
		snprintf(out[n].name, sizeof(out[n].name), "%s", name);
		out[n].value = v;
		out[n].key = key;
	}
	return n + 1;
}

/* X86_REGS: 18 u64 in this order. */
static const char *const x86_gpr[18] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
					"rsp", "rbp", "r8",  "r9",  "r10", "r11",
					"r12", "r13", "r14", "r15", "rip", "rflags"};
/* X86_SREGS: 8 segments x 24, gdt 16, idt 16, then these u64 from 224. */
static const char *const x86_cr[7] = {"cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"};

static unsigned int dec_x86(const struct sqb_record *recs, unsigned int nr, struct st_reg *out,
			    unsigned int max)
{
	const struct sqb_record *r;
	unsigned int n = 0;

	if ((r = sqb_record_find(recs, nr, SQB_REC_X86_REGS)) && r->len >= 144)
		for (int i = 0; i < 18; i++)
			n = put(out, n, max, x86_gpr[i], le64((const uint8_t *)r->data + 8 * i),
				i == 6 || i == 16 || i == 17);
	if ((r = sqb_record_find(recs, nr, SQB_REC_X86_SREGS)) && r->len >= 312)
		for (int i = 0; i < 7; i++)
			n = put(out, n, max, x86_cr[i],
				le64((const uint8_t *)r->data + 224 + 8 * i),
				i == 0 || i == 2 || i == 3 || i == 5);
	if ((r = sqb_record_find(recs, nr, SQB_REC_X86_TSC_KHZ)) && r->len >= 8)
		n = put(out, n, max, "tsc_khz", le32(r->data), 0); /* u32 + reserved u32 */
	return n;
}

static const struct {
	uint32_t enc;
	const char *name;
	int key;
} arm_sys[] = {
    {0xc080, "sctlr_el1", 0}, {0xc100, "ttbr0_el1", 1},	  {0xc101, "ttbr1_el1", 1},
    {0xc102, "tcr_el1", 0},   {0xc290, "esr_el1", 0},	  {0xc300, "far_el1", 0},
    {0xc510, "mair_el1", 0},  {0xc600, "vbar_el1", 0},	  {0xc684, "tpidr_el1", 0},
    {0xde82, "tpidr_el0", 0}, {0xc708, "cntkctl_el1", 0},
};

static unsigned int dec_arm(const struct sqb_record *recs, unsigned int nr, struct st_reg *out,
			    unsigned int max)
{
	static const char *const tail[6] = {"sp_el0", "sp_el1",	 "pc",
					    "pstate", "elr_el1", "spsr_el1"};
	const struct sqb_record *r;
	unsigned int n = 0;
	char name[24];

	if ((r = sqb_record_find(recs, nr, SQB_REC_ARM64_CORE)) && r->len >= 296) {
		const uint8_t *p = r->data;

		for (int i = 0; i < 31; i++) {
			snprintf(name, sizeof(name), "x%d", i);
			n = put(out, n, max, name, le64(p + 8 * i), 0);
		}
		for (int i = 0; i < 6; i++)
			n = put(out, n, max, tail[i], le64(p + 8 * (31 + i)), i < 4);
	}
	if ((r = sqb_record_find(recs, nr, SQB_REC_ARM64_SYSREGS)) && r->len >= 8) {
		const uint8_t *p = r->data;
		uint32_t cnt = le32(p);

		for (uint32_t i = 0; i < cnt && 8 + 16 * (uint64_t)(i + 1) <= r->len; i++) {
			uint32_t enc = le32(p + 8 + 16 * i);
			const char *nm = NULL;
			int key = 0;

			for (size_t k = 0; k < sizeof(arm_sys) / sizeof(arm_sys[0]); k++)
				if (arm_sys[k].enc == enc) {
					nm = arm_sys[k].name;
					key = arm_sys[k].key;
				}
			if (!nm) {
				/* generic name S<op0>_<op1>_C<n>_C<m>_<op2> as assemblers write it
				 */
				snprintf(name, sizeof(name), "s%u_%u_c%u_c%u_%u", enc >> 14 & 3,
					 enc >> 11 & 7, enc >> 7 & 15, enc >> 3 & 15, enc & 7);
				nm = name;
			}
			n = put(out, n, max, nm, le64(p + 8 + 16 * i + 8), key);
		}
	}
	return n;
}

unsigned int st_decode_regs(enum sqb_arch arch, const struct sqb_record *recs, unsigned int n,
			    struct st_reg *out, unsigned int max)
{
	unsigned int got =
	    arch == SQB_ARCH_AARCH64 ? dec_arm(recs, n, out, max) : dec_x86(recs, n, out, max);

	return got < max ? got : max;
}
