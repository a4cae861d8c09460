/* virtio-blk and virtio-rng as VM devices (private to runtime/ and its API,
 * dev_virtio.c): the glue between the virtio library and the VM.
 *
 *   cfg.add_devices ─> sqb_vdev_add_blk / _rng ─> sqb_vm_add_mmio_dev (slot n)
 *        slot.loop:  one eventfd per queue (KVM ioeventfd on QueueNotify,
 *                    datamatch = queue index) ─> sqb_vio_queue_notify()
 *                    one timerfd (rate limiter) ─> sqb_vio_dev_poll()
 *                    an ext's periodic tick (the balloon's statistics)
 *        slot.irq:   sqb_vio_host.irq.raise ─> the slot's irqfd
 *        slot.mem:   sqb_vio_host.mem.map ─> sqb_gmem_map (marks dirty)
 *
 * Devices are named by id: a drive by its drive_id, the entropy device by
 * SQB_VDEV_RNG_ID.  The VM owns them; they go away with it.
 */
#ifndef SQB_RUNTIME_DEV_VIRTIO_H
#define SQB_RUNTIME_DEV_VIRTIO_H

#include "squib/runtime.h"
#include "virtio.h"

struct sqb_gmem;

/* The entropy device's bus and DEVS id ('-' is not allowed in a drive id). */
#define SQB_VDEV_RNG_ID "virtio-rng"
/* Longest drive id (the bus and DEVS id of the drive). */
#define SQB_VDEV_ID_MAX 31

#define SQB_VDEV_BLK_VERSION 1
struct sqb_vdev_blk_cfg {
	unsigned int version; /* SQB_VDEV_BLK_VERSION */
	const char *drive_id; /* [A-Za-z0-9_], 1..SQB_VDEV_ID_MAX bytes */
	const char *path;     /* opened O_RDWR, or O_RDONLY when read_only */
	int read_only;
	enum sqb_vio_cache cache;
	const struct sqb_vio_rl_config *rate_limiter; /* NULL: none */
	enum sqb_vio_engine engine; /* Async: its completion eventfd joins the loop */
};

/* Call from struct sqb_vm_config.add_devices (or the snapshot load's): the
 * next virtio-mmio slot.  diag names the drive and the file on failure. */
int sqb_vdev_add_blk(sqb_vm *vm, const struct sqb_vdev_blk_cfg *cfg, struct sqb_diag *diag);
int sqb_vdev_add_rng(sqb_vm *vm, const struct sqb_vio_rl_config *rate_limiter,
		     struct sqb_diag *diag);

/* virtio-pmem (Firecracker's PmemConfig): the file mapped MAP_SHARED
 * (read-only: PROT_READ and a read-only memslot) at the next 2 MiB aligned
 * address from SQB_ARCH_PMEM_BASE, its length rounded up to 2 MiB with
 * private anonymous memory (never written back: Firecracker's tail). */
#define SQB_VDEV_PMEM_VERSION 1
struct sqb_vdev_pmem_cfg {
	unsigned int version; /* SQB_VDEV_PMEM_VERSION */
	const char *id;	      /* [A-Za-z0-9_], 1..SQB_VDEV_ID_MAX bytes */
	const char *path;     /* opened O_RDWR, or O_RDONLY when read_only */
	int read_only;
	const struct sqb_vio_rl_config *rate_limiter; /* NULL: none */
};
int sqb_vdev_add_pmem(sqb_vm *vm, const struct sqb_vdev_pmem_cfg *cfg, struct sqb_diag *diag);
/* Where a pmem device's region lies (tests); -ENODEV if none. */
int sqb_vdev_pmem_region(sqb_vm *vm, const char *id, uint64_t *gpa, uint64_t *size);

/* PATCH after boot.  -ENODEV: no such device; -errno of open() with diag. */
int sqb_vdev_blk_set_path(sqb_vm *vm, const char *drive_id, const char *path,
			  struct sqb_diag *diag);
int sqb_vdev_set_rate_limiter(sqb_vm *vm, const char *id, const struct sqb_vio_rl_config *rl);
/* Process every ready queue of every virtio device once: after a snapshot
 * load (a notify may have been pending, [F-108]). */
void sqb_vdev_poll_all(sqb_vm *vm);
/* A device whose library object the caller builds (dev_net.c, dev_vsock.c):
 * same slot, ioeventfds, irqfd, timer and quiesce as blk/rng, plus one host
 * fd (a tap, the vsock sockets' epoll fd) on the loop whose readiness calls
 * host_ready under the device's lock, never while quiesced (made up for at
 * resume).  create runs once the slot exists; free_arg(arg) runs with the
 * device (or at once on failure). */
struct sqb_vdev_ext {
	int (*create)(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
		      struct sqb_diag *diag);
	int (*host_fd)(sqb_vio_dev *dev); /* NULL: none */
	uint32_t host_events;		  /* EPOLLIN | EPOLLET, ... */
	int (*host_ready)(sqb_vio_dev *dev);
	void (*free_arg)(void *arg);
	void *arg;
	/* Optional (the balloon): prepare runs on the API thread before create
	 * with the slot's guest memory (for a discard op; it may open files).
	 * tick runs under the device's lock every tick_ns(dev) nanoseconds
	 * (0: off) and is skipped while quiesced; the period is asked of the
	 * device at realize, after a load and by sqb_vdev_retick(). */
	int (*prepare)(void *arg, struct sqb_gmem *mem);
	void (*tick)(sqb_vio_dev *dev);
	uint64_t (*tick_ns)(sqb_vio_dev *dev);
	/* vhost-user: the queues' eventfds belong to a backend process (its
	 * kick fds), so they never join the loop; the slot needs KVM's
	 * ioeventfd (realize fails without one).  sqb_vdev_direct_fds() gives
	 * them and the irqfd out. */
	int direct_queues;
};
int sqb_vdev_add_ext(sqb_vm *vm, const char *id, uint32_t virtio_id, const struct sqb_vdev_ext *ext,
		     struct sqb_diag *diag);
/* A direct_queues device's queue q eventfd (*kick, the KVM ioeventfd on
 * QueueNotify) and its interrupt's irqfd (*call): 0, -ENODEV (no such
 * device or queue), -ENOTSUP (the VM has no irqfd). */
int sqb_vdev_direct_fds(sqb_vm *vm, const char *id, unsigned int q, int *kick, int *call);
/* vhost-user block (dev_vhost_user.c): a drive served by a backend process
 * over conn (from sqb_vio_vhost_blk_open; taken over, also on failure).
 * Guest RAM must be a memfd (not huge_pages 2M): diag says so otherwise. */
int sqb_vdev_add_vhost_blk(sqb_vm *vm, const char *drive_id, sqb_vhu *conn, struct sqb_diag *diag);
/* PATCH /drives without fields on a vhost-user drive.  -ENODEV: no such
 * vhost-user drive; -errno with why from the backend. */
int sqb_vdev_vhost_config_update(sqb_vm *vm, const char *drive_id, char *why, size_t len);
/* Its vhost_user_block_<id> metrics; -ENODEV: no such vhost-user drive. */
int sqb_vdev_vhost_metrics(sqb_vm *vm, const char *drive_id, struct sqb_vio_vhost_metrics *out);
/* Re-arm an ext device's tick if tick_ns(dev) changed.  -ENODEV: none. */
int sqb_vdev_retick(sqb_vm *vm, const char *id);
/* sqb_vdev_poll_all for one device (no-op if there is none). */
void sqb_vdev_poll(sqb_vm *vm, const char *id);
/* The library device behind a virtio device id on the bus, or NULL. */
sqb_vio_dev *sqb_vdev_lib(sqb_vm *vm, const char *id);
/* Capacity in 512-byte sectors of a drive (tests); 0 if none. */
uint64_t sqb_vdev_blk_capacity(sqb_vm *vm, const char *drive_id);

#endif
