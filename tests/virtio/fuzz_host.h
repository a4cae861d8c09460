/* Host-side pieces the virtio fuzz targets share: guest RAM as one static
 * array, an interrupt line that does nothing, and 32-bit virtio-mmio
 * register accesses. */
#ifndef SQB_VIO_FUZZ_HOST_H
#define SQB_VIO_FUZZ_HOST_H

#include <stdint.h>

#include "virtio.h"

/* gpa..gpa+len inside ram[0..size), or NULL (empty, wrapping or outside). */
static inline uint8_t *vfz_ram_map(uint8_t *ram, uint64_t size, uint64_t gpa, uint64_t len)
{
	if (len == 0 || gpa + len < gpa || gpa + len > size)
		return NULL;
	return ram + gpa;
}

static inline void vfz_raise(void *opaque)
{
	(void)opaque;
}

static inline void vfz_w32(sqb_vio_dev *dev, uint32_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	sqb_vio_mmio_access(dev, off, b, 4, 1);
}

static inline uint32_t vfz_r32(sqb_vio_dev *dev, uint32_t off)
{
	uint8_t b[4];

	sqb_vio_mmio_access(dev, off, b, 4, 0);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#endif
