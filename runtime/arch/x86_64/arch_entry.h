/* How the boot vCPU enters an x86_64 guest: the boot adapter
 * (arch_boot.c) fills it from the loader's answer, the hypervisor backend's
 * x86 part (kvm/x86_64/) loads it into registers.
 *
 *   PROT32: PVH — flat 32-bit protected mode, paging off, rbx = start_info
 *   LONG64: Linux 64-bit boot protocol — long mode, identity page tables at
 *           cr3, rsi = boot_params
 */
#ifndef SQB_ARCH_X86_64_ENTRY_H
#define SQB_ARCH_X86_64_ENTRY_H

#include <stdint.h>

enum sqb_x86_entry_mode { SQB_X86_ENTRY_PROT32 = 1, SQB_X86_ENTRY_LONG64 = 2 };

struct sqb_arch_entry {
	enum sqb_x86_entry_mode mode;
	uint64_t rip, rsp, rsi, rbx, cr3;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint16_t cs_sel, ds_sel;
};

#endif
