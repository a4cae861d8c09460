/* Boot image loading for the VMM: hands the guest RAM ranges to the x86boot
 * loader (runtime/x86boot: PVH ELF, bzImage, ACPI) and turns the entry it
 * describes into the boot vCPU's state for the hypervisor backend. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "vmm_priv.h"
#include "x86boot.h"

int sqb_vm_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_hv_entry *entry,
		     struct sqb_diag *diag)
{
	struct sqb_x86boot_mem ram[2];
	struct sqb_x86boot_in in = {0};
	struct sqb_x86boot_entry out;

	for (unsigned int i = 0; i < vm->mem.nregions; i++)
		ram[i] = (struct sqb_x86boot_mem){vm->mem.regions[i].host, vm->mem.regions[i].gpa,
						  vm->mem.regions[i].size};
	in.kernel_path = cfg->kernel_path;
	in.initrd_path = cfg->initrd_path;
	/* No boot_args: the microVM default command line, as Firecracker does. */
	in.cmdline = cfg->cmdline ? cfg->cmdline : sqb_x86boot_default_cmdline();
	in.ram = ram;
	in.nram = vm->mem.nregions;
	in.ncpus = vm->nvcpus;
	memset(&out, 0, sizeof(out));
	FORWARD_IF_ERROR(sqb_x86boot_load(&in, &out, diag));

	memset(entry, 0, sizeof(*entry));
	switch (out.mode) {
	case SQB_X86BOOT_PROT32:
		entry->mode = SQB_HV_ENTRY_PROT32;
		entry->cs_sel = SQB_X86BOOT_SEL_CODE32;
		break;
	case SQB_X86BOOT_LONG64:
		entry->mode = SQB_HV_ENTRY_LONG64;
		entry->cs_sel = SQB_X86BOOT_SEL_CODE64;
		break;
	default:
		return -SQB_EUNSUPPORTED;
	}
	entry->ds_sel = SQB_X86BOOT_SEL_DATA;
	entry->rip = out.rip;
	entry->rsp = out.rsp;
	entry->rsi = out.rsi;
	entry->rbx = out.rbx;
	entry->cr3 = out.cr3;
	entry->gdt_base = out.gdt_base;
	entry->gdt_limit = out.gdt_limit;
	return 0;
}
