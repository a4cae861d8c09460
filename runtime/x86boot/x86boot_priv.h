/* Private helpers shared by the x86boot loaders: bounded guest-memory access,
 * little-endian stores, the e820 map and the low-memory layout constants.
 *
 *   x86boot.c ---- validates sqb_x86boot_in, reads the image, writes GDT,
 *        |         cmdline and ACPI, then dispatches on the format:
 *        +-- x86boot_pvh.c      ELF64 + XEN_ELFNOTE_PHYS32_ENTRY -> hvm_start_info
 *        +-- x86boot_bzimage.c  setup header -> boot_params, page tables
 *        +-- x86boot_acpi.c     RSDP/XSDT/FADT/DSDT/MADT at 0xe0000
 */
#ifndef SQB_X86BOOT_PRIV_H
#define SQB_X86BOOT_PRIV_H

#include <stdint.h>
#include <string.h>

#include "log.h"
#include "x86boot.h"

#define XB_GDT_ADDR	  0x500ULL
#define XB_START_INFO	  0x6000ULL
#define XB_ZERO_PAGE	  0x7000ULL
#define XB_STACK_TOP	  0x8ff0ULL
#define XB_PML4		  0x9000ULL
#define XB_PDPT		  0xa000ULL
#define XB_PD		  0xb000ULL /* 4 pages: 0xb000..0xefff */
#define XB_CMDLINE	  0x20000ULL
#define XB_EBDA		  0x9fc00ULL
#define XB_ACPI_BASE	  0xe0000ULL
#define XB_ACPI_END	  0x100000ULL
#define XB_HIMEM	  0x100000ULL
#define XB_LOW_RAM_NEEDED 0x200000ULL
#define XB_4G		  0x100000000ULL

#define XB_E820_RAM	 1
#define XB_E820_RESERVED 2
#define XB_E820_MAX	 128

struct xb_e820 {
	uint64_t addr, size;
	uint32_t type;
};

/* The image file, read whole into memory (bounded by the loader). */
struct xb_image {
	const uint8_t *data;
	uint64_t size;
	const char *path;
};

/* Host pointer for guest-physical [gpa, gpa+len) when it lies wholly in one
 * RAM range, else NULL. */
void *xb_gpa(const struct sqb_x86boot_in *in, uint64_t gpa, uint64_t len);

/* Fill diag (if non-NULL) and return err. */
int xb_fail(struct sqb_diag *diag, int err, uint64_t off, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* e820 map of the RAM ranges (see x86boot.h); returns the entry count. */
unsigned int xb_build_e820(const struct sqb_x86boot_in *in, struct xb_e820 *out, unsigned int max);

/* Load the initrd (if any) as high as possible in RAM below limit (exclusive)
 * and outside [avoid_lo, avoid_hi); fills entry->initrd_*. */
int xb_load_initrd(const struct sqb_x86boot_in *in, uint64_t limit, uint64_t avoid_lo,
		   uint64_t avoid_hi, struct sqb_x86boot_entry *entry, struct sqb_diag *diag);

/* Build ACPI tables at XB_ACPI_BASE; *rsdp gets the RSDP's address. */
int xb_acpi_build(const struct sqb_x86boot_in *in, uint64_t *rsdp, struct sqb_diag *diag);

int xb_load_pvh(const struct sqb_x86boot_in *in, const struct xb_image *img,
		struct sqb_x86boot_entry *out, struct sqb_diag *diag);
int xb_load_bzimage(const struct sqb_x86boot_in *in, const struct xb_image *img,
		    struct sqb_x86boot_entry *out, struct sqb_diag *diag);

static inline void xb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void xb_put32(uint8_t *p, uint32_t v)
{
	xb_put16(p, (uint16_t)v);
	xb_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void xb_put64(uint8_t *p, uint64_t v)
{
	xb_put32(p, (uint32_t)v);
	xb_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t xb_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t xb_get32(const uint8_t *p)
{
	return (uint32_t)xb_get16(p) | ((uint32_t)xb_get16(p + 2) << 16);
}

static inline uint64_t xb_get64(const uint8_t *p)
{
	return (uint64_t)xb_get32(p) | ((uint64_t)xb_get32(p + 4) << 32);
}

/* a + b <= limit without overflow */
static inline int xb_fits(uint64_t a, uint64_t b, uint64_t limit)
{
	return a <= limit && b <= limit - a;
}

#endif
