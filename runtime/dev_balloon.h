/* virtio-balloon as a VM device (private to runtime/ and its API,
 * dev_balloon.c): the glue between runtime/virtio's balloon and the VM.
 *
 *   cfg.add_devices ─> sqb_balloon_add ─> sqb_vdev_add_ext (dev_virtio.c, slot n)
 *        slot.loop: one eventfd per queue ─> sqb_vio_queue_notify()
 *                   the ext's tick (every stats_polling_interval_s)
 *                        ─> sqb_vio_balloon_stats_tick()
 *        discard(gpa, len) ─> mark the pages for the next Diff, then drop
 *                   them as their backing needs (sqb_balloon_discard_host):
 *                     shared memfd           MADV_REMOVE (punches the hole)
 *                     MAP_PRIVATE file       fresh anonymous zero (MAP_FIXED)
 *                     private anonymous      MADV_DONTNEED
 *
 * One balloon per VM, bus and DEVS id SQB_BALLOON_ID (Firecracker's).
 */
#ifndef SQB_RUNTIME_DEV_BALLOON_H
#define SQB_RUNTIME_DEV_BALLOON_H

#include "squib/runtime.h"
#include "virtio.h"

#define SQB_BALLOON_ID	    "balloon"
#define SQB_BALLOON_VERSION 1

struct sqb_balloon_cfg {
	unsigned int version; /* SQB_BALLOON_VERSION */
	uint32_t amount_mib;
	int deflate_on_oom;
	uint16_t stats_polling_interval_s;
	int free_page_hinting;
	int free_page_reporting;
};

/* From struct sqb_vm_config.add_devices (or a snapshot load's). */
int sqb_balloon_add(sqb_vm *vm, const struct sqb_balloon_cfg *cfg, struct sqb_diag *diag);
/* The library device, for the sqb_vio_balloon_* calls; NULL if none. */
sqb_vio_dev *sqb_balloon_dev(sqb_vm *vm);
/* PATCH /balloon/statistics: the library's check, then the timer re-armed. */
int sqb_balloon_set_stats_interval(sqb_vm *vm, uint16_t interval_s);
/* Process every ready queue once: after a snapshot load (a notify may
 * have been pending in an ioeventfd, [F-108]). */
void sqb_balloon_poll(sqb_vm *vm);
/* Guest memory in MiB (bounds amount_mib). */
uint64_t sqb_balloon_guest_mib(sqb_vm *vm);

/* Make host range [host, host+len) (page aligned) read as zero and give
 * its memory back, whatever maps it (see the picture).  maps_fd: an open
 * /proc/self/maps (read again from offset 0), or -1 to open it here.
 * 0 or -errno. */
int sqb_balloon_discard_host(uint8_t *host, uint64_t len, int maps_fd);

#endif
