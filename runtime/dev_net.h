/* virtio-net on a tap and virtio-vsock on Unix sockets as VM devices
 * (private to runtime/ and its API; dev_net.c, dev_vsock.c, docs/network.md).
 *
 *   cfg.add_devices ─> sqb_vdev_add_net / _vsock ─> sqb_vdev_add_ext (slot n)
 *        slot.loop:  ioeventfd per queue, rate-limit timerfd (dev_virtio.c)
 *                    + the tap fd        (EPOLLIN|EPOLLOUT|EPOLLET) ─> tap_ready
 *                    + the vsock epoll fd (EPOLLIN)                 ─> host_ready
 *
 * Bus and DEVS ids: "net-<iface_id>" per interface ('-' is never in a drive
 * id, so the two cannot collide) and "virtio-vsock" for the one vsock.
 * The tap name and uds_path are host hints kept outside DEVS ([F-113],
 * [F-112]): a snapshot load takes them from the configuration, overrides
 * included.
 */
#ifndef SQB_RUNTIME_DEV_NET_H
#define SQB_RUNTIME_DEV_NET_H

#include "dev_virtio.h"

#define SQB_VDEV_NET_PREFIX "net-"
#define SQB_VDEV_VSOCK_ID   "virtio-vsock"
/* Longest iface_id squib takes (the bus id is "net-" + iface_id). */
#define SQB_VDEV_IFACE_MAX (SQB_VDEV_ID_MAX - 4)

#define SQB_VDEV_NET_VERSION 1
struct sqb_vdev_net_cfg {
	unsigned int version;	   /* SQB_VDEV_NET_VERSION */
	const char *iface_id;	   /* [A-Za-z0-9_], 1..SQB_VDEV_IFACE_MAX bytes */
	const char *host_dev_name; /* the tap, opened unless tap_fd >= 0 */
	int tap_fd;		   /* an already open tap (the device dup()s it), or -1 */
	const uint8_t *mac;	   /* 6 bytes, or NULL: VIRTIO_NET_F_MAC not offered */
	const struct sqb_vio_rl_config *rx_rate_limiter; /* NULL: none */
	const struct sqb_vio_rl_config *tx_rate_limiter;
	uint16_t mtu; /* advertised with VIRTIO_NET_F_MTU; 0: not offered */
	/* PUT /mmds/config named this interface: frames for mmds_ipv4 are
	 * served by an MMDS network stack on this device (docs/mmds.md).  The
	 * store is shared and must outlive the VM; NULL: no MMDS here. */
	struct sqb_mmds *mmds;
	uint32_t mmds_ipv4; /* host byte order */
};

#define SQB_VDEV_VSOCK_VERSION 1
struct sqb_vdev_vsock_cfg {
	unsigned int version; /* SQB_VDEV_VSOCK_VERSION */
	uint64_t guest_cid;   /* 3 .. 0xfffffffe */
	const char *uds_path; /* bound by the device; must not exist */
};

/* Call from struct sqb_vm_config.add_devices (or the snapshot load's).
 * diag names the interface / socket and why on failure. */
int sqb_vdev_add_net(sqb_vm *vm, const struct sqb_vdev_net_cfg *cfg, struct sqb_diag *diag);
int sqb_vdev_add_vsock(sqb_vm *vm, const struct sqb_vdev_vsock_cfg *cfg, struct sqb_diag *diag);
/* PATCH /network-interfaces after boot: both limiters as they are to be
 * (NULL disables one).  -ENODEV: no such interface. */
int sqb_vdev_net_set_rate_limiters(sqb_vm *vm, const char *iface_id,
				   const struct sqb_vio_rl_config *rx,
				   const struct sqb_vio_rl_config *tx);
/* Frame counters of an interface (tests, metrics); -ENODEV if none. */
int sqb_vdev_net_stats(sqb_vm *vm, const char *iface_id, struct sqb_vio_net_stats *st);
/* Open the tap the way the device does (the API checks it at PUT time, as
 * Firecracker does); *fd is the caller's. */
int sqb_vdev_net_tap_open(int *fd, const char *host_dev_name, struct sqb_diag *diag);

#endif
