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
 *
 * Low-memory layout written by the loader (guest-physical):
 *
 *   0x00500  GDT (null, 64-bit code 0x08, data 0x10, 32-bit code 0x18)
 *   0x06000  PVH hvm_start_info, modlist, memmap      (PVH only)
 *   0x07000  Linux boot_params "zero page"            (bzImage only)
 *   0x08ff0  initial stack pointer (grows down)
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000-0x0efff PDs  (bzImage: 4 GiB identity, 2 MiB pages)
 *   0x20000  kernel command line (NUL-terminated, < 4 KiB)
 *   0xe0000  ACPI: RSDP, XSDT, FADT, DSDT, MADT       (e820 "reserved")
 *   (a VMGenID device's 16-byte ID and a VMClock device's page: where the
 *    VMM says, in that reserved area above the tables; squib's x86 board
 *    puts them at 0xff000 and 0xfe000)
 *  >=1 MiB   kernel (PVH: PT_LOAD p_paddr; bzImage: pref_address), initrd high below 4 GiB
 *
 * e820 / PVH memmap: every RAM range given, minus [0x9fc00, 0x100000);
 * [0xe0000, 0x100000) is reported reserved.  The first RAM range must start
 * at guest-physical 0 and reach at least 2 MiB.
 */
#ifndef SQB_X86BOOT_H
#define SQB_X86BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

struct sqb_x86boot_mem {
	void *host;    /* host mapping of this RAM range */
	uint64_t gpa;  /* guest-physical base */
	uint64_t size; /* bytes */
};

struct sqb_x86boot_mmio_dev {
	uint64_t base; /* MMIO window, e.g. 0xd0000000 + n * 0x1000 */
	uint32_t size;
	uint32_t gsi; /* IOAPIC pin, edge-triggered, active high */
};

/* One device of the DSDT, as the VMM's bus describes it (runtime/dev.h
 * describe op).  hid is a 7-character EISA id when hid_eisa (PNP0501),
 * else a string _HID (LNRO0005). */
struct sqb_x86boot_dev {
	const char *hid;
	int hid_eisa;
	char name[5]; /* ACPI name segment, 4 characters */
	uint32_t uid;
	uint16_t io_base[2]; /* port ranges (io_len 0: unused) */
	uint8_t io_len[2];
	uint64_t mmio_base; /* Memory32Fixed window, mmio_size 0: none */
	uint32_t mmio_size;
	enum sqb_x86boot_irq {
		SQB_X86BOOT_IRQ_NONE = 0,
		SQB_X86BOOT_IRQ_ISA,
		SQB_X86BOOT_IRQ_GSI
	} irq_kind;
	uint32_t irq; /* ISA: 0..15 (edge, high); GSI: IOAPIC pin (extended, edge, high) */
	int cca;      /* _CCA One: DMA-coherent (virtio-mmio, as Firecracker) */
	/* SQB_X86BOOT_DEV_VMGENID (at most one): a Virtual Machine Generation
	 * ID device.  The loader emits Device(VGEN) (_HID "VMGENCTR", _CID and
	 * _DDN "VM_Gen_Counter", ADDR = Package {low, high} of genid_addr) and
	 * a GED (ACPI0013) whose _EVT does Notify(VGEN, 0x80) for irq (kind
	 * GSI), and stores the 16 bytes at genid inside the reserved ACPI area
	 * at genid_addr (8-byte aligned, above the tables).  name, hid and the
	 * fields above are ignored for it. */
	/* SQB_X86BOOT_DEV_VMCLOCK (at most one): Firecracker's VMClock.  The
	 * loader emits Device(VCLK) (_HID "AMZNC10C", _CID and _DDN "VMCLOCK",
	 * _STA 0x0F, _CRS a read-only cacheable QWord memory range of the 4 KiB
	 * page at page_addr), adds irq (kind GSI) to the GED with
	 * Notify(VCLK, 0x80), and stores page_len bytes of page at page_addr
	 * (4 KiB aligned, inside the reserved ACPI area above the tables; the
	 * rest of the page is zero). */
	enum sqb_x86boot_dev_kind {
		SQB_X86BOOT_DEV_PLAIN = 0,
		SQB_X86BOOT_DEV_VMGENID,
		SQB_X86BOOT_DEV_VMCLOCK,
		/* SQB_X86BOOT_DEV_PCI_ROOT (at most one): a PCI host bridge
		 * (PNP0A08) for bus 0 whose ECAM is mmio_base/mmio_size: the
		 * loader emits Device(PC00) with its windows in _CRS, an MCFG
		 * table, reserves the ECAM in the e820 map and stops telling the
		 * guest MSI is unsupported. */
		SQB_X86BOOT_DEV_PCI_ROOT
	} kind;
	uint64_t win32_base, win32_size, win64_base, win64_size; /* PCI_ROOT */
	uint64_t genid_addr;
	const uint8_t *genid;
	uint64_t page_addr;
	const uint8_t *page;
	uint32_t page_len; /* <= 4096 */
};

struct sqb_x86boot_in {
	const char *kernel_path; /* PVH ELF (vmlinux or a test guest) or bzImage */
	const char *initrd_path; /* NULL: none */
	const char *cmdline;	 /* NULL: empty */
	const struct sqb_x86boot_mem *ram;
	unsigned int nram;
	unsigned int ncpus; /* described in ACPI MADT, 1..SQB_X86BOOT_MAX_CPUS */
	/* Optional: virtio-mmio devices to describe in the DSDT (LNRO0005).
	 * Linux's Debian kernels find virtio-mmio only through ACPI. */
	const struct sqb_x86boot_mmio_dev *mmio;
	unsigned int nmmio; /* <= SQB_X86BOOT_MAX_MMIO */
	/* Optional: the whole DSDT device list (the VMM's bus).  When set, it
	 * replaces the built-in list (COM1, PS2K, then mmio[] as LNRO0005). */
	const struct sqb_x86boot_dev *devs;
	unsigned int ndevs; /* <= SQB_X86BOOT_MAX_DEVS */
};

#define SQB_X86BOOT_MAX_CPUS	64
#define SQB_X86BOOT_MAX_MMIO	32
#define SQB_X86BOOT_MAX_DEVS	64
#define SQB_X86BOOT_CMDLINE_MAX 4095 /* bytes, without the NUL */

/* Kernel command line a microVM needs when the user gives none (Firecracker's
 * PUT /boot-source without boot_args).  See docs/linux-boot.md for why each
 * option is there. */
#define SQB_X86BOOT_DEFAULT_CMDLINE                                                                \
	"console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"

const char *sqb_x86boot_default_cmdline(void);

enum sqb_x86boot_mode {
	SQB_X86BOOT_PROT32 = 1, /* PVH: 32-bit flat protected mode, paging off, rbx = start_info */
	SQB_X86BOOT_LONG64 =
	    2, /* bzImage 64-bit entry: long mode, identity map, rsi = boot_params */
};

struct sqb_x86boot_entry {
	enum sqb_x86boot_mode mode;
	uint64_t rip;
	uint64_t rsp;
	uint64_t rsi;
	uint64_t rbx;
	uint64_t cr3; /* LONG64: identity-mapping page tables in guest RAM */
	uint64_t
	    gdt_base; /* a GDT in guest RAM: null, code (0x08), data (0x10); 0x18 = 32-bit code */
	uint16_t gdt_limit;
	/* Informational (filled on success): */
	uint64_t acpi_rsdp;		   /* guest-physical address of the RSDP */
	uint64_t kernel_start, kernel_end; /* guest-physical [start, end) reserved for the kernel */
	uint64_t initrd_start, initrd_size; /* 0, 0 without initrd */
};

/* Segment selectors of the loader's GDT, for the VMM's vCPU set-up:
 * PROT32 uses CS = SQB_X86BOOT_SEL_CODE32, LONG64 uses CS = SQB_X86BOOT_SEL_CODE64;
 * both use DS = ES = SS = SQB_X86BOOT_SEL_DATA (flat 4 GiB, base 0). */
#define SQB_X86BOOT_SEL_CODE64 0x08
#define SQB_X86BOOT_SEL_DATA   0x10
#define SQB_X86BOOT_SEL_CODE32 0x18

/* Detect the image format, load it and everything it needs.  Returns 0,
 * -errno, or -SQB_E* with diag naming the file and the problem. */
int sqb_x86boot_load(const struct sqb_x86boot_in *in, struct sqb_x86boot_entry *out,
		     struct sqb_diag *diag);

#endif
