/* x86_64 guest-physical memory map and legacy platform facts: the only
 * source of these numbers in runtime/ (the KVM backend, guest memory, the
 * snapshot layout check and the device platform all include this).  Every
 * arch's layout.h defines the SQB_ARCH_* names and sqb_arch_ram_layout();
 * CMake puts runtime/arch/<arch>/ on the include path, so core code says
 * #include "layout.h" and names no architecture.
 *
 *   0 ─────────────── RAM (low) ─────────────── 3 GiB
 *   3 GiB ── 32-bit MMIO gap: virtio-mmio slots at 0xd000_0000 + 0x1000 n,
 *            IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000, KVM TSS / identity
 *            map just below the BIOS area (0xfffb_c000 .. 0xfffc_0000)
 *   4 GiB ─────────────── RAM (high, the rest) ───────────────
 */
#ifndef SQB_ARCH_X86_64_LAYOUT_H
#define SQB_ARCH_X86_64_LAYOUT_H

#include <stdint.h>

#define SQB_X86_MMIO_GAP_START	 0xc0000000ULL	/* 3 GiB: low RAM ends here */
#define SQB_X86_HIGH_RAM_START	 0x100000000ULL /* 4 GiB: the rest of RAM */
#define SQB_ARCH_MAX_RAM_REGIONS 2

/* KVM needs three pages for the TSS and one for the identity map (VMX real
 * mode); both inside the gap, below the BIOS area. */
#define SQB_X86_KVM_TSS_ADDR   0xfffbd000UL
#define SQB_X86_KVM_IDMAP_ADDR 0xfffbc000UL

/* Firecracker's boot-device page (--boot-timer), its MMIO32_MEM_START: the
 * first page of the gap, where Firecracker's guest init writes. */
#define SQB_ARCH_BOOT_TIMER_ADDR 0xc0000000ULL

/* virtio-mmio windows: Firecracker's x86 MMIO base, one 4 KiB page each. */
#define SQB_ARCH_VIRTIO_MMIO_BASE  0xd0000000ULL
#define SQB_ARCH_VIRTIO_MMIO_SLOTS 32

/* The PCI transport (dev_pci.c, --enable-pci), Firecracker's x86 layout:
 * the ECAM of bus 0 (1 MiB) at its PCI_MMCONFIG_START (the IOAPIC's
 * address - 256 MiB), BARs of 32 bits in [0xd000_0000, ECAM) (the
 * virtio-mmio slots' place: a PCI VM has none), of 64 bits in
 * [256 GiB, 512 GiB), its MMIO64 window. */
#define SQB_ARCH_HAS_PCI	1
#define SQB_ARCH_PCI_ECAM_BASE	0xeec00000ULL
#define SQB_ARCH_PCI_ECAM_SIZE	0x100000ULL
#define SQB_ARCH_PCI_WIN32_BASE 0xd0000000ULL
#define SQB_ARCH_PCI_WIN32_SIZE (SQB_ARCH_PCI_ECAM_BASE - SQB_ARCH_PCI_WIN32_BASE)
#define SQB_ARCH_PCI_WIN64_BASE (256ULL << 30)
#define SQB_ARCH_PCI_WIN64_SIZE (256ULL << 30)
#define SQB_X86_PCI_CFG_PORT	0xcf8

/* virtio-pmem regions (dev_virtio.c), 2 MiB aligned, one after another
 * from here: Firecracker's first address past the 64-bit MMIO window
 * (512 GiB), far above any RAM this layout gives a guest. */
#define SQB_ARCH_PMEM_BASE (512ULL << 30)

/* virtio-mem's hotpluggable region (dev_vmem.c): its own window above the
 * pmem area, [768 GiB, 1 TiB); virtio-pmem regions stop below it. */
#define SQB_ARCH_MEMHP_BASE (768ULL << 30)
#define SQB_ARCH_MEMHP_SIZE (256ULL << 30)

/* Legacy ISA devices and their lines. */
#define SQB_X86_UART_PORT  0x3f8
#define SQB_X86_UART_IRQ   4
#define SQB_X86_I8042_PORT 0x60
#define SQB_X86_I8042_IRQ  1
#define SQB_X86_POST_PORT  0x80

/* VM Generation ID (dev_vmgenid.c): the 16-byte ID in the last page of the
 * e820-reserved ACPI area [0xe0000, 0x100000), above the tables the loader
 * writes there; its notification is the last IOAPIC pin, taken before the
 * allocator hands pins to virtio-mmio slots (which so keep 5, 6, ...). */
#define SQB_X86_VMGENID_ADDR 0xff000ULL
#define SQB_X86_VMGENID_GSI  23

/* VMClock (dev_vmclock.c): its page is the last free page of the same
 * reserved area, just below the VMGenID's (Firecracker, too, puts it at the
 * top of its system-memory area, right under the VMGenID); its notification
 * is the pin below the VMGenID's, also taken before the slots', which so
 * keep 5, 6, ... and have 17 pins (5..21), Firecracker's count. */
#define SQB_X86_VMCLOCK_ADDR 0xfe000ULL
#define SQB_X86_VMCLOCK_GSI  22

/* IOAPIC pins the interrupt allocator hands out (0..4 are ISA legacy). */
#define SQB_ARCH_GSI_FIRST 5
#define SQB_ARCH_GSI_LAST  23
/* The highest line a board device may be given by number: the last pin. */
#define SQB_ARCH_GSI_MAX 23

/* Split size bytes of RAM into the x86 regions: returns the count and
 * fills gpa/size/offset (offset: where the region starts in the backing). */
static inline unsigned int sqb_arch_ram_layout(uint64_t size, uint64_t gpa[2], uint64_t len[2],
					       uint64_t off[2])
{
	uint64_t low = size < SQB_X86_MMIO_GAP_START ? size : SQB_X86_MMIO_GAP_START;

	gpa[0] = 0, len[0] = low, off[0] = 0;
	if (size <= low)
		return 1;
	gpa[1] = SQB_X86_HIGH_RAM_START, len[1] = size - low, off[1] = low;
	return 2;
}

#endif
