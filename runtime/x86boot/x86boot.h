/* x86boot: load a guest kernel image into guest RAM and describe the boot
 * vCPU's entry state.  Contract between the VMM (runtime/) and the loaders
 * (runtime/x86boot/: PVH ELF, Linux bzImage, ACPI tables, e820).
 *
 *   VMM ------ sqb_x86boot_in (RAM ranges, kernel, initrd, cmdline, ncpus) ----> loader
 *   VMM <----- sqb_x86boot_entry (mode, rip, rsi/rbx, cr3, gdt) --------------- loader
 *
 * The loader writes only into the RAM ranges it is given (boot_params or
 * hvm_start_info, command line, e820/memmap, ACPI tables, GDT and page tables
 * in low memory below 1 MiB, kernel and initrd where their formats say) and
 * never touches KVM: the VMM turns the entry description into vCPU state.
 */
#ifndef SQB_X86BOOT_H
#define SQB_X86BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

struct sqb_x86boot_mem {
	void *host;	/* host mapping of this RAM range */
	uint64_t gpa;	/* guest-physical base */
	uint64_t size;	/* bytes */
};

struct sqb_x86boot_in {
	const char *kernel_path;	/* PVH ELF (vmlinux or a test guest) or bzImage */
	const char *initrd_path;	/* NULL: none */
	const char *cmdline;		/* NULL: empty */
	const struct sqb_x86boot_mem *ram;
	unsigned int nram;
	unsigned int ncpus;		/* described in ACPI MADT */
};

enum sqb_x86boot_mode {
	SQB_X86BOOT_PROT32 = 1,	/* PVH: 32-bit flat protected mode, paging off, rbx = start_info */
	SQB_X86BOOT_LONG64 = 2,	/* bzImage 64-bit entry: long mode, identity map, rsi = boot_params */
};

struct sqb_x86boot_entry {
	enum sqb_x86boot_mode mode;
	uint64_t rip;
	uint64_t rsp;
	uint64_t rsi;
	uint64_t rbx;
	uint64_t cr3;		/* LONG64: identity-mapping page tables in guest RAM */
	uint64_t gdt_base;	/* a GDT in guest RAM: null, code (0x08), data (0x10); 0x18 = 32-bit code */
	uint16_t gdt_limit;
};

/* Detect the image format, load it and everything it needs.  Returns 0,
 * -errno, or -SQB_E* with diag naming the file and the problem. */
int sqb_x86boot_load(const struct sqb_x86boot_in *in, struct sqb_x86boot_entry *out,
		     struct sqb_diag *diag);

#endif
