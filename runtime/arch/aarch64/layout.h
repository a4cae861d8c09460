/* aarch64 guest-physical memory map and board facts: the only source of
 * these numbers in runtime/ on arm64 (the KVM backend's vGIC, the device
 * tree, the PL011 and the snapshot layout check include this).  Same names
 * as arch/x86_64/layout.h: SQB_ARCH_* and sqb_arch_ram_layout().
 *
 *   0x0800_0000  GICv3 distributor (64 KiB)
 *   0x080a_0000  GICv3 redistributors, 128 KiB per vCPU (32 vCPUs: 4 MiB)
 *   0x0900_0000  PL011 UART (4 KiB), SPI 1
 *   0x0a00_0000  virtio-mmio slots, 4 KiB each, SPI 2 + n
 *   0x4000_0000  boot timer page (--boot-timer), Firecracker's address
 *   0x8000_0000  RAM (2 GiB, as Firecracker's arm64 layout; QEMU's virt
 *                board puts RAM at 1 GiB), the DTB in its last 2 MiB; its
 *                first 2 MiB are system memory, left out of the device
 *                tree's memory node (Firecracker's SYSTEM_MEM):
 *   0x801f_e000    VMClock page, SPI 25
 *   0x801f_fff0    VM Generation ID (16 bytes), SPI 24
 *   0x8020_0000  the kernel image (+ text_offset), the guest's RAM from here
 */
#ifndef SQB_ARCH_AARCH64_LAYOUT_H
#define SQB_ARCH_AARCH64_LAYOUT_H

#include <stdint.h>

#define SQB_ARM64_RAM_START	 0x80000000ULL
#define SQB_ARCH_MAX_RAM_REGIONS 1

#define SQB_ARM64_GICD_BASE   0x08000000ULL
#define SQB_ARM64_GICD_SIZE   0x10000ULL
#define SQB_ARM64_GICR_BASE   0x080a0000ULL
#define SQB_ARM64_GICR_STRIDE 0x20000ULL /* RD_base + SGI_base frames */
#define SQB_ARM64_GIC_NR_IRQS 96	 /* 32 private + 64 SPIs */
#define SQB_ARM64_SPI_BASE    32	 /* INTID of SPI 0 */

#define SQB_ARM64_UART_BASE 0x09000000ULL
#define SQB_ARM64_UART_SIZE 0x1000ULL
#define SQB_ARM64_UART_SPI  1

/* Firecracker's boot-device page (--boot-timer): its arm64 MMIO32 start,
 * where Firecracker's guest init writes. */
#define SQB_ARCH_BOOT_TIMER_ADDR 0x40000000ULL

/* virtio-pmem regions (dev_virtio.c), 2 MiB aligned, one after another
 * from here: Firecracker's first address past the 64-bit MMIO window
 * (512 GiB), far above any RAM this layout gives a guest. */
#define SQB_ARCH_PMEM_BASE (512ULL << 30)

/* virtio-mem's hotpluggable region (dev_vmem.c): [768 GiB, 1 TiB). */
#define SQB_ARCH_MEMHP_BASE (768ULL << 30)
#define SQB_ARCH_MEMHP_SIZE (256ULL << 30)

/* virtio-mmio windows; a slot's GSI is its SPI number (INTID 32 + gsi),
 * which is also how KVM's default irqfd routing reads a GSI on arm64. */
/* No PCI transport on this board yet (dev_pci.c refuses --enable-pci). */
#define SQB_ARCH_HAS_PCI	0
#define SQB_ARCH_PCI_ECAM_BASE	0ULL
#define SQB_ARCH_PCI_ECAM_SIZE	0ULL
#define SQB_ARCH_PCI_WIN32_BASE 0ULL
#define SQB_ARCH_PCI_WIN32_SIZE 0ULL
#define SQB_ARCH_PCI_WIN64_BASE 0ULL
#define SQB_ARCH_PCI_WIN64_SIZE 0ULL
#define SQB_X86_PCI_CFG_PORT	0

#define SQB_ARCH_VIRTIO_MMIO_BASE  0x0a000000ULL
#define SQB_ARCH_VIRTIO_MMIO_SLOTS 22
#define SQB_ARCH_GSI_FIRST	   2
#define SQB_ARCH_GSI_LAST	   23

/* System memory (Firecracker's arch/aarch64/layout.rs SYSTEM_MEM_START and
 * SYSTEM_MEM_SIZE): the first 2 MiB of RAM, backed and snapshotted like the
 * rest but not in the device tree's memory node, so the guest's allocator
 * never hands it out and a driver may memremap() it.  The kernel goes above
 * it (a 2 MiB-aligned base, as the boot protocol wants). */
#define SQB_ARM64_SYSTEM_MEM_SIZE 0x200000ULL

/* VM Generation ID (dev_vmgenid.c) and VMClock (dev_vmclock.c) in system
 * memory where Firecracker's allocator puts them (AllocPolicy::LastMatch,
 * VMGenID first): the 16-byte ID 8-byte aligned at the very top, the page
 * 4 KiB aligned under it.  Their notifications: Firecracker hands legacy
 * GSIs out in creation order (virtio devices, serial, RTC, then VMGenID and
 * VMClock), so its numbers follow the device count; squib's slots have
 * fixed SPIs (2..23), and these two take the next ones, after every other
 * device as in Firecracker, out of the slots' range. */
#define SQB_ARM64_VMGENID_ADDR (SQB_ARM64_RAM_START + SQB_ARM64_SYSTEM_MEM_SIZE - 16)
#define SQB_ARM64_VMGENID_SPI  24
#define SQB_ARM64_VMCLOCK_ADDR (SQB_ARM64_RAM_START + SQB_ARM64_SYSTEM_MEM_SIZE - 0x2000)
#define SQB_ARM64_VMCLOCK_SPI  25

/* The highest line a board device may be given by number (the UART, the
 * two above); the virtio-mmio allocator stays in FIRST..LAST. */
#define SQB_ARCH_GSI_MAX 25

/* Architected timer PPIs (INTIDs 16 + n): secure / non-secure physical,
 * virtual, hypervisor — the order the arm,armv8-timer binding lists. */
#define SQB_ARM64_PPI_TIMER_SEC	 13
#define SQB_ARM64_PPI_TIMER_PHYS 14
#define SQB_ARM64_PPI_TIMER_VIRT 11
#define SQB_ARM64_PPI_TIMER_HYP	 10

/* The DTB goes in the last 2 MiB of RAM (the boot protocol's limit on its
 * size; a 2 MiB block of its own), the initrd just below it. */
#define SQB_ARM64_FDT_MAX 0x200000ULL

/* MPIDR_EL1 of vCPU index: the affinity KVM assigns by default (Aff0 the
 * low 4 bits, Aff1 the next 8), which the device tree's cpu@ reg repeats. */
static inline uint64_t sqb_arm64_mpidr(unsigned int index)
{
	return (uint64_t)(index & 0xf) | ((uint64_t)((index >> 4) & 0xff) << 8);
}

static inline unsigned int sqb_arch_ram_layout(uint64_t size, uint64_t gpa[1], uint64_t len[1],
					       uint64_t off[1])
{
	gpa[0] = SQB_ARM64_RAM_START, len[0] = size, off[0] = 0;
	return 1;
}

#endif
