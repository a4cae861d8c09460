/* The architecture interface of the VMM core (private to runtime/): what
 * vmm.c asks of runtime/arch/<arch>/ (CMake picks the folder and puts it on
 * the include path, so "layout.h" and "arch_entry.h" are that arch's).
 *
 *   vmm.c ──sqb_arch_add_platform_devices──> the board's fixed devices
 *         ──sqb_arch_boot_load────────────> loader + platform description
 *                                            (ACPI on x86, a DTB on arm64)
 *                                            + the boot vCPU's entry request
 */
#ifndef SQB_RUNTIME_ARCH_H
#define SQB_RUNTIME_ARCH_H

#include "layout.h"
#include "squib/runtime.h"

struct sqb_vm;

/* Put the board's own devices on the bus (x86: COM1, i8042, POST port). */
int sqb_arch_add_platform_devices(struct sqb_vm *vm);
/* Load the boot image, describe the bus to the guest, and send the boot
 * vCPU its entry state (a vCPU request).  After the bus is sealed. */
int sqb_arch_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_diag *diag);
/* The kernel command line a boot source without boot_args gets (the API's
 * root= builder appends to it). */
const char *sqb_arch_default_cmdline(void);

#endif
