/* The arm64 device tree (arch_fdt.c): what the boot adapter hands it. */
#ifndef SQB_ARCH_AARCH64_FDT_H
#define SQB_ARCH_AARCH64_FDT_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

/* No boot_args: a console on the PL011 and the usual microVM switches. */
#define SQB_ARM64_DEFAULT_CMDLINE "console=ttyAMA0 reboot=k panic=1"

struct sqb_bus;

struct sqb_arm64_fdt_in {
	uint64_t ram_base, ram_size; /* the memory node: RAM above system memory */
	unsigned int ncpus;
	const char *cmdline;
	uint64_t initrd_start, initrd_size; /* size 0: none */
	const struct sqb_bus *bus;	    /* each device's describe op, in bus order */
};

/* Build the DTB into buf[0, cap). */
int sqb_arm64_fdt_build(const struct sqb_arm64_fdt_in *in, void *buf, size_t cap,
			struct sqb_diag *diag);

#endif
