/* The arm64 board's fixed devices and the guest's view of RAM: one table
 * that arch_platform.c creates the devices from and tests/arm64/test_fdt.c
 * builds the same board from (on any host).
 *
 *   RAM  0x8000_0000 +------------------------------+
 *                    | system memory (2 MiB)        |  not in the memory node
 *        0x801f_e000 |   VMClock page     SPI 25    |
 *        0x801f_fff0 |   VMGenID ID (16)  SPI 24    |
 *        0x8020_0000 +------------------------------+
 *                    | the guest's RAM: kernel, ... |  the memory node
 *                    | initrd, DTB (last 2 MiB)     |
 *                    +------------------------------+
 */
#ifndef SQB_ARCH_AARCH64_BOARD_H
#define SQB_ARCH_AARCH64_BOARD_H

#include "dev.h"
#include "layout.h"

struct sqb_arm64_board_dev {
	enum sqb_dev_class_id cls;
	const char *id;
	uint64_t base;
	unsigned int spi;
};

/* In the order the DEVS sections and the device tree list them. */
static const struct sqb_arm64_board_dev sqb_arm64_board[] = {
    {SQB_DEVCLS_PL011, "uart0", SQB_ARM64_UART_BASE, SQB_ARM64_UART_SPI},
    {SQB_DEVCLS_VMGENID, "vmgenid", SQB_ARM64_VMGENID_ADDR, SQB_ARM64_VMGENID_SPI},
    {SQB_DEVCLS_VMCLOCK, "vmclock", SQB_ARM64_VMCLOCK_ADDR, SQB_ARM64_VMCLOCK_SPI},
};
#define SQB_ARM64_BOARD_NDEVS (sizeof(sqb_arm64_board) / sizeof(sqb_arm64_board[0]))

/* The RAM the device tree's memory node gives the guest: the one RAM
 * region less its first SQB_ARM64_SYSTEM_MEM_SIZE bytes (the caller has
 * checked the region is larger). */
static inline void sqb_arm64_guest_ram(uint64_t gpa, uint64_t size, uint64_t *base, uint64_t *len)
{
	*base = gpa + SQB_ARM64_SYSTEM_MEM_SIZE;
	*len = size - SQB_ARM64_SYSTEM_MEM_SIZE;
}

#endif
