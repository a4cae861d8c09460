/* Test kit for runtime/virtio: a fake guest RAM (two malloc'd regions behind
 * sqb_vio_mem, with dirty tracking), a counting interrupt, an injected clock
 * and timer, and a driver side that builds split rings as a guest would. */
#ifndef SQB_VIO_TEST_UTIL_H
#define SQB_VIO_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"

/* Region 0: [0, 1 MiB); region 1: [2 MiB, 3 MiB).  Nothing else is RAM. */
#define VT_R0_BASE 0x0ull
#define VT_R0_SIZE 0x100000ull
#define VT_R1_BASE 0x200000ull
#define VT_R1_SIZE 0x100000ull

/* Driver ring layout inside region 0. */
#define VT_DESC	 0x1000ull
#define VT_AVAIL 0x3000ull
#define VT_USED	 0x4000ull
#define VT_HDR	 0x8000ull  /* request headers, 16 bytes each */
#define VT_STAT	 0x9000ull  /* status bytes */
#define VT_DATA	 0x10000ull /* data buffers */

struct vt_env {
	uint8_t *r0, *r1;
	uint8_t dirty0[VT_R0_SIZE / 4096], dirty1[VT_R1_SIZE / 4096];
	unsigned int irqs;
	uint64_t now;	   /* injected clock, ns */
	uint64_t timer_at; /* last deadline armed, 0 if none */
	unsigned int timer_arms;
	struct sqb_vio_host host;
};

void vt_env_init(struct vt_env *e);
void vt_env_fini(struct vt_env *e);
uint8_t *vt_ptr(struct vt_env *e, uint64_t gpa);

/* A driver talking to one device's queue 0. */
struct vt_drv {
	struct vt_env *e;
	sqb_vio_dev *dev;
	uint16_t num;
	uint16_t avail_idx; /* driver's shadow */
	uint16_t last_used;
	uint16_t next_desc;
	bool event_idx;
};

uint32_t vt_r32(sqb_vio_dev *dev, uint32_t off);
void vt_w32(sqb_vio_dev *dev, uint32_t off, uint32_t v);
/* Reset, negotiate VERSION_1 plus want & offered, set up queue 0 with num
 * entries at VT_DESC/VT_AVAIL/VT_USED, DRIVER_OK.  Returns the status. */
uint32_t vt_drv_init(struct vt_drv *d, struct vt_env *e, sqb_vio_dev *dev, uint16_t num,
		     uint64_t want);

struct vt_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};
/* Put a chain on the avail ring (does not notify); returns the head. */
uint16_t vt_add(struct vt_drv *d, const struct vt_seg *segs, unsigned int n);
/* Pop the next used element; false when none. */
bool vt_used(struct vt_drv *d, uint32_t *id, uint32_t *len);

/* One virtio-blk request with a single data buffer at VT_DATA; notifies,
 * returns the status byte (or 0xff when no used element arrived) and the
 * used length in *used_len. */
int vt_blk(struct vt_drv *d, uint32_t type, uint64_t sector, uint32_t data_len, bool dev_writes,
	   uint32_t *used_len);

/* Async virtio-blk: wait on the completion eventfd and call
 * sqb_vio_blk_io_ready() until nothing is in flight, as the VMM's loop
 * would (a no-op for other devices and Sync).  vt_notify: notify queue 0,
 * then settle. */
void vt_blk_settle(sqb_vio_dev *dev);
void vt_notify(sqb_vio_dev *dev);

uint16_t vt_get16(struct vt_env *e, uint64_t gpa);
void vt_put16(struct vt_env *e, uint64_t gpa, uint16_t v);
void vt_put_desc(struct vt_env *e, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next);
/* A temp file of size bytes filled with byte f(i) = i*7+3; returns its fd. */
int vt_tempfile(uint64_t size);

#endif
