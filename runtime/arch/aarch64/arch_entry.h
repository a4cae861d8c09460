/* How the boot vCPU enters an aarch64 guest (the Linux arm64 Image boot
 * protocol, Documentation/arch/arm64/booting.rst): EL1h, MMU and caches
 * off, DAIF masked, x0 = the DTB's guest-physical address, x1..x3 = 0, PC =
 * the image's first byte.  arch_boot.c fills it, kvm/aarch64/ loads it. */
#ifndef SQB_ARCH_AARCH64_ENTRY_H
#define SQB_ARCH_AARCH64_ENTRY_H

#include <stdint.h>

struct sqb_arch_entry {
	uint64_t pc;
	uint64_t x0; /* DTB */
};

#endif
