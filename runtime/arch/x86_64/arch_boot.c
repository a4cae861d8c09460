/* x86_64 boot adapter (arch.h): hands the guest RAM ranges and the bus's
 * device descriptions to the x86boot loader (runtime/x86boot: PVH ELF,
 * bzImage, ACPI) and turns the entry it describes into the boot vCPU's
 * state for the hypervisor backend.  The loader writes guest RAM through
 * raw pointers: this runs before the guest exists and before dirty
 * tracking can be armed, and a Diff always has a Full parent taken later. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "arch_entry.h"
#include "log.h"
#include "vmm_priv.h"
#include "x86boot.h"

const char *sqb_arch_default_cmdline(void)
{
	return sqb_x86boot_default_cmdline();
}

int sqb_arch_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_diag *diag)
{
	struct sqb_arch_entry e, *entry = &e;
	struct sqb_x86boot_mem ram[SQB_GMEM_MAX_REGIONS];
	struct sqb_x86boot_dev devs[SQB_X86BOOT_MAX_DEVS];
	struct sqb_x86boot_in in = {0};
	struct sqb_x86boot_entry out;
	unsigned int ndevs = 0;

	/* The DSDT comes from the bus: each device's describe op, in bus
	 * order (virtio-mmio slots become LNRO0005 devices, as Firecracker's). */
	for (unsigned int i = 0; i < vm->bus.ndevs && ndevs < SQB_X86BOOT_MAX_DEVS; i++) {
		struct sqb_dev *d = vm->bus.devs[i];
		struct sqb_dev_describe dd;
		struct sqb_x86boot_dev *x = &devs[ndevs];

		if (!d->cls->ops->describe || d->cls->ops->describe(d, &dd) < 0)
			continue;
		*x = (struct sqb_x86boot_dev){
		    .hid = dd.hid, .hid_eisa = dd.hid_eisa, .uid = dd.uid, .cca = dd.dma_coherent};
		memcpy(x->name, dd.name, sizeof(x->name));
		if (dd.space == SQB_BUS_PIO) {
			x->io_base[0] = (uint16_t)dd.base;
			x->io_len[0] = (uint8_t)dd.len;
			x->io_base[1] = (uint16_t)dd.base2;
			x->io_len[1] = (uint8_t)dd.len2;
		} else {
			x->mmio_base = dd.base;
			x->mmio_size = dd.len;
		}
		x->irq_kind = dd.irq_kind == SQB_DESC_IRQ_LEGACY ? SQB_X86BOOT_IRQ_ISA
			      : dd.irq_kind == SQB_DESC_IRQ_GSI	 ? SQB_X86BOOT_IRQ_GSI
								 : SQB_X86BOOT_IRQ_NONE;
		x->irq = dd.gsi;
		if (dd.kind == SQB_DESC_VMGENID) { /* an ID in RAM, not a window */
			x->kind = SQB_X86BOOT_DEV_VMGENID;
			x->genid_addr = dd.base;
			x->genid = dd.genid;
			x->mmio_base = x->mmio_size = 0;
		} else if (dd.kind == SQB_DESC_PCI_ROOT) {
			x->kind = SQB_X86BOOT_DEV_PCI_ROOT;
			x->win32_base = dd.win32_base;
			x->win32_size = dd.win32_len;
			x->win64_base = dd.win64_base;
			x->win64_size = dd.win64_len;
		} else if (dd.kind == SQB_DESC_VMCLOCK) { /* a page in RAM */
			x->kind = SQB_X86BOOT_DEV_VMCLOCK;
			x->page_addr = dd.base;
			x->page = dd.page;
			x->page_len = dd.page_len;
			x->mmio_base = x->mmio_size = 0;
		}
		ndevs++;
	}
	in.devs = devs;
	in.ndevs = ndevs;
	for (unsigned int i = 0; i < vm->mem.nram; i++)
		ram[i] = (struct sqb_x86boot_mem){vm->mem.regions[i].host, vm->mem.regions[i].gpa,
						  vm->mem.regions[i].size};
	in.kernel_path = cfg->kernel_path;
	in.initrd_path = cfg->initrd_path;
	/* No boot_args: the microVM default command line, as Firecracker does. */
	in.cmdline = cfg->cmdline ? cfg->cmdline : sqb_x86boot_default_cmdline();
	in.ram = ram;
	in.nram = vm->mem.nram;
	in.ncpus = vm->nvcpus;
	memset(&out, 0, sizeof(out));
	FORWARD_IF_ERROR(sqb_x86boot_load(&in, &out, diag));

	memset(entry, 0, sizeof(*entry));
	switch (out.mode) {
	case SQB_X86BOOT_PROT32:
		entry->mode = SQB_X86_ENTRY_PROT32;
		entry->cs_sel = SQB_X86BOOT_SEL_CODE32;
		break;
	case SQB_X86BOOT_LONG64:
		entry->mode = SQB_X86_ENTRY_LONG64;
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
	/* Secondary vCPUs wait for INIT/SIPI in the in-kernel LAPIC. */
	return sqb_vcpu_set_entry(&vm->vcpus[0], entry);
}
