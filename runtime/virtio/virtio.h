/* sqb_virtio: virtio 1.x devices behind the virtio-mmio transport, as a
 * self-contained library the VMM glues onto its bus (docs/virtio.md).
 *
 *   vCPU thread                      event-loop thread
 *   MMIO exit in [base, base+0x1000) QueueNotify ioeventfd (offset 0x50,
 *        |                           datamatch = queue index), rate-limit timer
 *        v                                  |
 *   sqb_vio_mmio_access()     sqb_vio_queue_notify() / sqb_vio_dev_poll()
 *        \________________________________/
 *                       |  (one mutex per device)
 *        +--------------v---------------+
 *        | sqb_vio_dev: transport regs  |     status, features offered/acked,
 *        |  queue[i]: split virtqueue --+---> desc / avail / used rings in
 *        |  device: blk|rng|net|vsock   |     guest RAM, reached only through
 *        |  rate limiter (2 buckets)    |     host->mem.map() (bounds, dirty)
 *        +--------------+---------------+
 *                       | host->irq.raise() (edge: an irqfd)
 *                       v
 *                     guest
 *
 * The library never sees the VM: the integrator passes guest memory, an
 * interrupt, and optionally a clock and a one-shot timer (struct sqb_vio_host).
 * Requests are executed synchronously inside the notify call, so an idle
 * device has nothing in flight: quiesce is a no-op ([F-101]).  The one
 * exception is virtio-blk's Async engine (io_uring), whose quiesce drains.
 */
#ifndef SQB_VIRTIO_H
#define SQB_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqb_vio_dev sqb_vio_dev;

/* Guest memory.  map() returns a host pointer when [gpa, gpa+len) lies inside
 * one guest RAM region, else NULL; with write=1 the platform marks the pages
 * dirty.  Every access the library makes to guest memory goes through it. */
struct sqb_vio_mem {
	void *opaque;
	uint8_t *(*map)(void *opaque, uint64_t gpa, uint64_t len, int write);
};

/* Edge interrupt (the integrator writes an irqfd).  raise_vector: the
 * virtio-pci transport's MSI-X message `vector` (an index into the
 * function's MSI-X table, which the integrator keeps); required once
 * sqb_vio_pci_enable() made the device a PCI one. */
struct sqb_vio_irq {
	void *opaque;
	void (*raise)(void *opaque);
	void (*raise_vector)(void *opaque, uint16_t vector);
};

/* Monotonic clock in nanoseconds; NULL now_ns means CLOCK_MONOTONIC. */
struct sqb_vio_clock {
	void *opaque;
	uint64_t (*now_ns)(void *opaque);
};

/* One-shot timer for the rate limiter: a throttled device calls arm() with
 * the earliest clock time (ns) at which it may make progress; the integrator
 * arms a timerfd and then calls sqb_vio_dev_poll().  Required when a rate
 * limiter is configured (creating one without it is -EINVAL). */
struct sqb_vio_timer {
	void *opaque;
	void (*arm)(void *opaque, uint64_t deadline_ns);
};

/* Callbacks run with the device's mutex held: they must not call back into
 * the same device. */
struct sqb_vio_host {
	struct sqb_vio_mem mem;
	struct sqb_vio_irq irq;
	struct sqb_vio_clock clock;
	struct sqb_vio_timer timer;
};

/* A token bucket, Firecracker's semantics: size tokens, refilled completely
 * in refill_time_ms; one_time_burst extra tokens at start.  size == 0 or
 * refill_time_ms == 0 disables the bucket. */
struct sqb_vio_bucket {
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_time_ms;
};

struct sqb_vio_rl_config {
	struct sqb_vio_bucket bandwidth; /* bytes */
	struct sqb_vio_bucket ops;	 /* requests */
};

/* One token bucket on its own, Firecracker's TokenBucket (the serial
 * console's rate_limiter).  A disabled config (size or refill time 0)
 * gives *out = NULL, which takes everything.  take() is reduce(): true when
 * the tokens were there and are now spent; false when they were not
 * (nothing spent), or when more than size were asked (the bucket is then
 * emptied, as Firecracker's over-consumption).  Not locked. */
typedef struct sqb_vio_tbucket sqb_vio_tbucket;
int sqb_vio_tbucket_new(const struct sqb_vio_bucket *cfg, uint64_t now_ns, sqb_vio_tbucket **out);
bool sqb_vio_tbucket_take(sqb_vio_tbucket *b, uint64_t tokens, uint64_t now_ns);
void sqb_vio_tbucket_free(sqb_vio_tbucket *b);

/* ---- virtio-mmio window ------------------------------------------------ */

#define SQB_VIO_MMIO_SIZE	  0x1000u /* the device's window */
#define SQB_VIO_MMIO_QUEUE_NOTIFY 0x50u	  /* ioeventfd: 4 bytes, datamatch = queue index */
#define SQB_VIO_MAGIC		  0x74726976u
#define SQB_VIO_VENDOR_ID	  0x00425153u /* "SQB" */

#define SQB_VIO_ID_NET	   1u
#define SQB_VIO_ID_BLK	   2u
#define SQB_VIO_ID_RNG	   4u
#define SQB_VIO_ID_BALLOON 5u
#define SQB_VIO_ID_VSOCK   19u
#define SQB_VIO_ID_MEM	   24u
#define SQB_VIO_ID_PMEM	   27u

/* Device status bits (virtio 1.x, 2.1). */
#define SQB_VIO_S_ACKNOWLEDGE 1u
#define SQB_VIO_S_DRIVER      2u
#define SQB_VIO_S_DRIVER_OK   4u
#define SQB_VIO_S_FEATURES_OK 8u
#define SQB_VIO_S_NEEDS_RESET 0x40u
#define SQB_VIO_S_FAILED      0x80u

/* InterruptStatus bits. */
#define SQB_VIO_INT_VRING  1u
#define SQB_VIO_INT_CONFIG 2u

/* Feature bits. */
#define SQB_VIO_F_BLK_SEG_MAX	     2
#define SQB_VIO_F_BLK_RO	     5
#define SQB_VIO_F_BLK_FLUSH	     9
#define SQB_VIO_F_RING_INDIRECT_DESC 28
#define SQB_VIO_F_RING_EVENT_IDX     29
#define SQB_VIO_F_VERSION_1	     32

/* A register access from a vCPU: offset inside the window, data in guest
 * (little-endian) byte order, size 1, 2, 4 or 8.  Reads of unknown or
 * write-only registers return zero; bad sizes and offsets are ignored. */
int sqb_vio_mmio_access(sqb_vio_dev *dev, uint64_t offset, void *data, unsigned int size,
			int is_write);
/* The driver notified queue_index (from the QueueNotify ioeventfd). */
int sqb_vio_queue_notify(sqb_vio_dev *dev, uint32_t queue_index);
/* Process every ready queue: after a rate-limit timer fired, and once after
 * a restore (a notify may have been pending in an ioeventfd). */
int sqb_vio_dev_poll(sqb_vio_dev *dev);
unsigned int sqb_vio_num_queues(const sqb_vio_dev *dev);
uint32_t sqb_vio_device_id(const sqb_vio_dev *dev);
/* Current Status register (for tests and `inspect`). */
uint32_t sqb_vio_status(sqb_vio_dev *dev);
/* Why the device set DEVICE_NEEDS_RESET (a static one-line string naming
 * the broken ring field, for the VMM's log), or NULL. */
const char *sqb_vio_reset_reason(sqb_vio_dev *dev);
/* Counters a device keeps under its lock from creation on (never reset: a
 * reader takes differences).  The generic ones are kept for every device;
 * the others only by the device named; a field a device does not keep
 * stays 0.  For the VMM's metrics (docs/api-compat.md "Metrics"). */
#define SQB_VIO_METRICS_QUEUES 5
struct sqb_vio_lat {
	uint64_t min_us, max_us, sum_us; /* min/max: 0 until the first sample */
};
struct sqb_vio_metrics {
	uint64_t notify[SQB_VIO_METRICS_QUEUES];      /* QueueNotify events per queue */
	uint64_t queue_fails[SQB_VIO_METRICS_QUEUES]; /* a bad ring stopped the device */
	uint64_t throttled;    /* requests the device's limiter held back (net: RX's) */
	uint64_t throttled_tx; /* net: requests the TX limiter held back */
	/* virtio-blk (virtio-pmem: flush_count, invalid_reqs, exec_fails) */
	uint64_t read_count, read_bytes, write_count, write_bytes, flush_count;
	uint64_t invalid_reqs; /* unknown request type or a header too short */
	uint64_t exec_fails;   /* requests answered IOERR */
	struct sqb_vio_lat read_lat, write_lat;
	/* virtio-rng */
	uint64_t entropy_bytes, host_rng_fails;
	/* virtio-vsock: packets and payload bytes to (rx) / from (tx) the guest */
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	uint64_t conns_added, conns_killed, conns_removed;
	/* sends to a host socket whose peer had closed (EPIPE; squib sends
	 * with MSG_NOSIGNAL, so they raise no SIGPIPE) */
	uint64_t broken_pipes;
};
void sqb_vio_get_metrics(sqb_vio_dev *dev, struct sqb_vio_metrics *out);
/* Replace the rate limiter (PATCH); NULL disables it. */
int sqb_vio_set_rate_limiter(sqb_vio_dev *dev, const struct sqb_vio_rl_config *rl);
void sqb_vio_dev_free(sqb_vio_dev *dev);

/* ---- virtio-pci (virtio 1.x 4.1, modern only) -------------------------
 *
 * The device's structures in BAR0, Firecracker's layout (its
 * transport/pci/device.rs), 0x80000 bytes:
 *
 *   0x00000  common configuration (56 bytes, 4.1.4.3)
 *   0x02000  ISR status (1 byte, read clears)
 *   0x04000  device-specific configuration (0x1000)
 *   0x06000  notifications: queue q at 0x6000 + 4 q (notify_off_multiplier 4)
 *   0x08000  MSI-X table, 0x48000 its PBA (kept by the integrator's PCI
 *            function, not by this library)
 *
 * Interrupts go to MSI-X vectors the driver picks per queue and for the
 * configuration (config_msix_vector, queue_msix_vector); a vector of
 * 0xffff (NO_VECTOR) means none.  There is no INTx.
 */
#define SQB_VIO_PCI_BAR_SIZE	0x80000u
#define SQB_VIO_PCI_COMMON_OFF	0x0000u
#define SQB_VIO_PCI_COMMON_LEN	56u
#define SQB_VIO_PCI_ISR_OFF	0x2000u
#define SQB_VIO_PCI_DEVCFG_OFF	0x4000u
#define SQB_VIO_PCI_DEVCFG_LEN	0x1000u
#define SQB_VIO_PCI_NOTIFY_OFF	0x6000u
#define SQB_VIO_PCI_NOTIFY_LEN	0x1000u
#define SQB_VIO_PCI_NOTIFY_MULT 4u
#define SQB_VIO_PCI_MSIX_TABLE	0x8000u
#define SQB_VIO_PCI_MSIX_PBA	0x48000u
#define SQB_VIO_MSI_NO_VECTOR	0xffffu
#define SQB_VIO_PCI_VENDOR	0x1af4u
#define SQB_VIO_PCI_DEVICE_BASE 0x1040u /* + the virtio device id */

/* Make dev a virtio-pci device (before the guest runs): interrupts go
 * through host->irq.raise_vector.  -EINVAL without one. */
int sqb_vio_pci_enable(sqb_vio_dev *dev);
/* An access to BAR0 below the MSI-X table (common, ISR, device config,
 * notify); off is the offset in the BAR.  Reads of holes return zero. */
int sqb_vio_pci_access(sqb_vio_dev *dev, uint64_t off, void *data, unsigned int size, int is_write);
/* The MSI-X vectors the driver chose (1 + num_queues: configuration
 * first), read (set 0) or written (set 1, a snapshot load: vectors outside
 * the table become NO_VECTOR).  nvec is the table's size. */
void sqb_vio_pci_vectors(sqb_vio_dev *dev, uint16_t *vec, unsigned int n, unsigned int nvec,
			 int set);

/* ---- virtio-blk ------------------------------------------------------- */

#define SQB_VIO_BLK_ID_BYTES 20
#define SQB_VIO_OPTS_VERSION 1

enum sqb_vio_cache { SQB_VIO_CACHE_UNSAFE = 0, SQB_VIO_CACHE_WRITEBACK = 1 };

/* Firecracker's io_engine.  Sync: each request runs to completion inside
 * the notify call.  Async: IN/OUT/FLUSH go to an io_uring (one per device)
 * and complete later; the integrator watches sqb_vio_blk_io_fd() (an
 * eventfd, EPOLLIN) and calls sqb_vio_blk_io_ready() when it fires. */
enum sqb_vio_engine { SQB_VIO_ENGINE_SYNC = 0, SQB_VIO_ENGINE_ASYNC = 1 };

struct sqb_vio_blk_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	int fd;		      /* backing file; the device dup()s it */
	int read_only;	      /* offer VIRTIO_BLK_F_RO and refuse writes */
	enum sqb_vio_cache cache;
	const char *drive_id;			      /* GET_ID answer, at most 20 bytes used */
	const struct sqb_vio_rl_config *rate_limiter; /* NULL: none */
	enum sqb_vio_engine engine;
	/* Async: requests in flight at most (the ring's depth); 0 means
	 * QueueNumMax (256), the most a queue can hand over at once.  A full
	 * ring leaves requests on the avail ring until completions free it. */
	unsigned int async_depth;
};
#define SQB_VIO_BLK_OPTS_INIT                                                                      \
	{                                                                                          \
		SQB_VIO_OPTS_VERSION, -1, 0, SQB_VIO_CACHE_UNSAFE, NULL, NULL,                     \
		    SQB_VIO_ENGINE_SYNC, 0                                                         \
	}

int sqb_vio_blk_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_blk_opts *opts, struct sqb_diag *diag);
/* Swap the backing file after boot (PATCH path_on_host): dup()s fd, takes
 * the new capacity, raises a config-change interrupt. */
int sqb_vio_blk_set_backing(sqb_vio_dev *dev, int fd);
/* Capacity in 512-byte sectors. */
uint64_t sqb_vio_blk_capacity(sqb_vio_dev *dev);
/* Async: the completion eventfd (-1 for a Sync device). */
int sqb_vio_blk_io_fd(sqb_vio_dev *dev);
/* Async: the eventfd fired.  Publishes every finished request (status byte,
 * used entry, one interrupt for the batch) and, when a full ring stopped
 * the queue, takes requests off the avail ring again.  A no-op for Sync. */
int sqb_vio_blk_io_ready(sqb_vio_dev *dev);
/* Async: requests submitted and not yet published (0 for Sync). */
unsigned int sqb_vio_blk_inflight(sqb_vio_dev *dev);
/* Whether this host can run the Async engine: 0, or the -errno of
 * io_uring_setup (-ENOSYS: kernel without io_uring, -EPERM: forbidden,
 * -ENOTSUP: squib built without liburing).  *why: Firecracker's wording. */
int sqb_vio_blk_async_probe(char *why, size_t len);

/* ---- virtio-rng ------------------------------------------------------- */

struct sqb_vio_rng_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	const struct sqb_vio_rl_config *rate_limiter;
};
#define SQB_VIO_RNG_OPTS_INIT                                                                      \
	{                                                                                          \
		SQB_VIO_OPTS_VERSION, NULL                                                         \
	}

int sqb_vio_rng_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_rng_opts *opts);
/* Entropy seed (docs/fleet.md): fill the buffers the driver has made
 * available on the queue with up to `bytes` of fresh getrandom() output,
 * not charged to the rate limiter, and interrupt.  *served: bytes written
 * (0 when the driver has no buffer waiting or the queue is not live).
 * -EINVAL: dev is not a virtio-rng. */
int sqb_vio_rng_seed(sqb_vio_dev *dev, uint64_t bytes, uint64_t *served);

/* ---- virtio-pmem (device id 27) ------------------------------------------
 *
 * The integrator maps the backing file (MAP_SHARED) at guest-physical
 * [start, start + size) itself; the device answers config space {start,
 * size} and FLUSH requests (fsync of its dup of fd).  Read-only: no fd is
 * kept, FLUSH answers OK (nothing can be dirty). */
struct sqb_vio_pmem_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	int fd;		      /* backing file; the device dup()s it unless read_only */
	int read_only;
	uint64_t file_len;    /* bytes of the file (> 0) */
	uint64_t start, size; /* the guest region: size >= file_len, 2 MiB multiple */
	const struct sqb_vio_rl_config *rate_limiter; /* NULL: none */
};

int sqb_vio_pmem_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		     const struct sqb_vio_pmem_opts *opts);

/* ---- virtio-mem (device id 24; virtio 1.2 5.15) ----------------------------
 *
 *   [addr, addr + region_size): blocks of block_size, grouped in slots of
 *   slot_size (the host's unit: a memslot).  Config space: block_size,
 *   addr, region_size, usable_region_size, plugged_size, requested_size.
 *   queue 0: PLUG / UNPLUG / UNPLUG_ALL / STATE ──> plugged bitmap
 *        a slot with any plugged block ──> backing.slot(i, 1)
 *        a slot left without one ──────> backing.slot(i, 0)
 *        unplugged blocks ─────────────> backing.discard(off, len)
 *   host: set_requested() ──> config-change interrupt, usable grows to the
 *         next slot multiple (Firecracker's update_requested_size).
 */
#define SQB_VIO_F_MEM_UNPLUGGED_INACCESSIBLE 1
#define SQB_VIO_VMEM_RESP_ACK		     0u
#define SQB_VIO_VMEM_RESP_NACK		     1u
#define SQB_VIO_VMEM_RESP_BUSY		     2u
#define SQB_VIO_VMEM_RESP_ERROR		     3u
#define SQB_VIO_VMEM_STATE_PLUGGED	     0u
#define SQB_VIO_VMEM_STATE_UNPLUGGED	     1u
#define SQB_VIO_VMEM_STATE_MIXED	     2u
/* Most blocks a device manages (the bitmap and the state stay small). */
#define SQB_VIO_VMEM_MAX_BLOCKS (1u << 20)

/* The integrator's memory: offsets are from the region's start.  slot():
 * slot i must be mapped for the guest (present) or no longer (its pages
 * dropped); idempotent; 0 or -errno (a failed map answers the PLUG with
 * ERROR).  discard(): the pages behind [off, off + len) read as zero from
 * now on.  Called under the device lock. */
struct sqb_vio_vmem_backing {
	void *opaque;
	int (*slot)(void *opaque, uint64_t index, int present);
	int (*discard)(void *opaque, uint64_t off, uint64_t len);
	/* Optional: blocks [first, first + n) are plugged (on) or not: told
	 * after their slots are present, before an unplug discards them, and
	 * for every plugged block when a load is committed. */
	void (*blocks)(void *opaque, uint64_t first, uint64_t n, int on);
};

struct sqb_vio_vmem_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	uint64_t addr;	      /* guest-physical start, block aligned */
	uint64_t region_size; /* a multiple of slot_size */
	uint64_t block_size;  /* a power of two, >= 4096 */
	uint64_t slot_size;   /* a multiple of block_size */
	struct sqb_vio_vmem_backing backing;
};

struct sqb_vio_vmem_status {
	uint64_t addr, region_size, block_size, slot_size;
	uint64_t usable, plugged, requested; /* bytes */
};

/* Firecracker's memory_hotplug metrics (counts; never reset). */
struct sqb_vio_vmem_counters {
	uint64_t plug_count, plug_bytes, plug_fails;
	uint64_t unplug_count, unplug_bytes, unplug_fails, unplug_discard_fails;
	uint64_t unplug_all_count, unplug_all_fails;
	uint64_t state_count, state_fails;
};

int sqb_vio_vmem_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		     const struct sqb_vio_vmem_opts *opts);
/* PATCH /hotplug/memory: -EAGAIN before DRIVER_OK (Firecracker: "Device is
 * not active"), -ERANGE when bytes is not a block multiple or above the
 * region, -EINVAL: not a virtio-mem device. */
int sqb_vio_vmem_set_requested(sqb_vio_dev *dev, uint64_t bytes);
int sqb_vio_vmem_status(sqb_vio_dev *dev, struct sqb_vio_vmem_status *st);
int sqb_vio_vmem_counters(sqb_vio_dev *dev, struct sqb_vio_vmem_counters *n);

/* ---- virtio-net (device id 1) ------------------------------------------
 *
 *   guest TX queue (1) --notify--> writev(tap)      vnet header v1 (12 bytes)
 *   guest RX queue (0) <--------- read(tap)         + frame, both directions
 *        tap fd: the integrator watches it EPOLLIN|EPOLLOUT|EPOLLET and calls
 *        sqb_vio_net_tap_ready(); the device reads until EAGAIN or until the
 *        guest has no RX buffer (one frame then waits inside the device).
 */

/* Feature bits (virtio 1.x 5.1.3), the set Firecracker offers. */
#define SQB_VIO_F_NET_CSUM	 0
#define SQB_VIO_F_NET_GUEST_CSUM 1
#define SQB_VIO_F_NET_MTU	 3
#define SQB_VIO_F_NET_MAC	 5
#define SQB_VIO_F_NET_GUEST_TSO4 7
#define SQB_VIO_F_NET_GUEST_TSO6 8
#define SQB_VIO_F_NET_GUEST_UFO	 10
#define SQB_VIO_F_NET_HOST_TSO4	 11
#define SQB_VIO_F_NET_HOST_TSO6	 12
#define SQB_VIO_F_NET_HOST_UFO	 14
#define SQB_VIO_F_NET_MRG_RXBUF	 15

#define SQB_VIO_NET_HDR_LEN 12u	   /* struct virtio_net_hdr_v1 */
#define SQB_VIO_NET_MAX_BUF 65562u /* header + largest frame (Firecracker's) */

struct sqb_vio_net_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	int tap_fd;	      /* from sqb_vio_net_tap_open(); the device dup()s it */
	const uint8_t *mac;   /* 6 bytes (offers VIRTIO_NET_F_MAC), or NULL */
	const struct sqb_vio_rl_config *rx_rate_limiter; /* NULL: none */
	const struct sqb_vio_rl_config *tx_rate_limiter;
	uint16_t mtu; /* 68..65535 offers VIRTIO_NET_F_MTU with it; 0: not offered */
	const struct sqb_vio_net_detour *detour; /* NULL: every frame goes to the tap */
};
#define SQB_VIO_NET_OPTS_INIT                                                                      \
	{                                                                                          \
		SQB_VIO_OPTS_VERSION, -1, NULL, NULL, NULL, 0, NULL                                \
	}

/* A frame detour in front of the tap (the MMDS network stack, docs/mmds.md):
 * every frame the guest transmits is offered to tx() first (Ethernet header
 * first, no vnet header); one it claims (returns true) never reaches the
 * tap.  Frames the detour has for the guest (pending() true) go to the RX
 * queue ahead of the tap's, each with a zeroed vnet header (no offloads:
 * the detour computes its checksums).  Called under the device lock on the
 * thread that processes the device; reset() on a driver reset and after a
 * snapshot load. */
struct sqb_vio_net_detour {
	void *ctx;
	bool (*tx)(void *ctx, const uint8_t *frame, size_t len);
	bool (*pending)(void *ctx);
	/* Copy the next frame into buf; its length (0: none; > cap: it does
	 * not fit and stays queued). */
	size_t (*rx)(void *ctx, uint8_t *buf, size_t cap);
	void (*reset)(void *ctx);
};

struct sqb_vio_net_stats {
	uint64_t rx_frames, rx_bytes, rx_dropped; /* dropped: no buffer could ever hold it */
	uint64_t tx_frames, tx_bytes, tx_dropped; /* dropped: bad chain or tap error */
	uint64_t tx_detoured, rx_detoured;	  /* frames to and from the detour (MMDS) */
};

/* Open an existing tap (or create one, given the privilege) by name on
 * /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, non-blocking,
 * vnet header size 12.  *fd is the caller's. */
int sqb_vio_net_tap_open(int *fd, const char *ifname, struct sqb_diag *diag);
int sqb_vio_net_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_net_opts *opts, struct sqb_diag *diag);
/* The tap fd (the device's dup) became readable or writable. */
int sqb_vio_net_tap_ready(sqb_vio_dev *dev);
int sqb_vio_net_tap_fd(sqb_vio_dev *dev);
/* PATCH /network-interfaces: replace either limiter (NULL disables it). */
int sqb_vio_net_set_rate_limiters(sqb_vio_dev *dev, const struct sqb_vio_rl_config *rx,
				  const struct sqb_vio_rl_config *tx);
int sqb_vio_net_stats(sqb_vio_dev *dev, struct sqb_vio_net_stats *st);

/* ---- virtio-vsock (device id 19) ----------------------------------------
 *
 *   host client --connect(uds_path)--> "CONNECT <port>\n" --> REQUEST to guest
 *               <-- "OK <host_port>\n" <-- RESPONSE from guest
 *   guest REQUEST to (cid 2, port P) --> connect("<uds_path>_P")
 *   connection table: (guest port, host port) -> Unix socket + credit state
 *   host side: one epoll fd (sqb_vio_vsock_host_fd) holding the listener and
 *   every connection, edge-triggered; the integrator watches it for EPOLLIN
 *   and calls sqb_vio_vsock_host_ready().
 */

struct sqb_vio_vsock_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	uint64_t guest_cid;   /* 3 .. 0xfffffffe */
	const char *uds_path; /* bound by the device; must not exist */
};
#define SQB_VIO_VSOCK_OPTS_INIT                                                                    \
	{                                                                                          \
		SQB_VIO_OPTS_VERSION, 0, NULL                                                      \
	}

int sqb_vio_vsock_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		      const struct sqb_vio_vsock_opts *opts, struct sqb_diag *diag);
int sqb_vio_vsock_host_fd(sqb_vio_dev *dev);
int sqb_vio_vsock_host_ready(sqb_vio_dev *dev);
/* Live connections (for tests and `inspect`). */
unsigned int sqb_vio_vsock_num_conns(sqb_vio_dev *dev);
/* Tests and benchmarks: at most n RX buffers (1 .. 32, clamped; default 32)
 * filled by one read of a host socket; 1 is one recvmsg per buffer. */
void sqb_vio_vsock_set_rx_batch(sqb_vio_dev *dev, unsigned int n);
/* At most n guest TX packets of one connection per sendmsg to its host
 * socket (default 64; 1: one send per packet), for tests and benchmarks. */
void sqb_vio_vsock_set_tx_batch(sqb_vio_dev *dev, unsigned int n);

/* ---- virtio-balloon (device id 5; virtio 1.x 5.5) -----------------------
 *
 *   queue 0 inflate  : PFN lists (u32, 4 KiB pages) --> discard()  [F-120]
 *   queue 1 deflate  : PFN lists, acknowledged only (pages fault back in)
 *   [stats]          : one buffer held by the device; each poll tick hands
 *                      it back and the driver refills it (tag u16, val u64)
 *   [hinting]        : cmd id (4 bytes) then page ranges --> discard()
 *   [reporting]      : free page ranges --> discard()
 *   config space     : num_pages (target) | actual (driver writes) | cmd id
 *
 * Queues exist as Firecracker lays them out: stats only when a polling
 * interval is set, then hinting, then reporting, each only when enabled.
 * The device never touches host memory mappings itself: discard() is the
 * integrator's (which knows how guest RAM is backed).
 */
#define SQB_VIO_F_BALLOON_STATS_VQ	 1
#define SQB_VIO_F_BALLOON_DEFLATE_ON_OOM 2
#define SQB_VIO_F_BALLOON_FREE_PAGE_HINT 3
#define SQB_VIO_F_BALLOON_PAGE_REPORTING 5

#define SQB_VIO_BALLOON_NSTATS	     16	   /* tags 0..15 (virtio 1.x + Linux 6.12) */
#define SQB_VIO_BALLOON_MAX_STAT_LEN 2560u /* 256 tags x 10 bytes (Firecracker's bound) */
#define SQB_VIO_BALLOON_MAX_PFNS     256u  /* per inflate/deflate buffer */
#define SQB_VIO_BALLOON_HINT_STOP    0u
#define SQB_VIO_BALLOON_HINT_DONE    1u

/* Drop the host memory behind guest range [gpa, gpa+len) (page aligned) so
 * that it reads as zero afterwards.  -EFAULT: not (entirely) guest RAM. */
struct sqb_vio_discard {
	void *opaque;
	int (*discard)(void *opaque, uint64_t gpa, uint64_t len);
};

struct sqb_vio_balloon_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	uint32_t amount_mib;  /* target; at most guest_mib */
	int deflate_on_oom;
	uint16_t stats_polling_interval_s; /* 0: no statistics queue */
	int free_page_hinting;
	int free_page_reporting;
	uint64_t guest_mib; /* guest RAM, bounds amount_mib */
	struct sqb_vio_discard discard;
};
#define SQB_VIO_BALLOON_OPTS_INIT                                                                  \
	{                                                                                          \
		SQB_VIO_OPTS_VERSION, 0, 0, 0, 0, 0, 0,                                            \
		{                                                                                  \
			NULL, NULL                                                                 \
		}                                                                                  \
	}

/* The latest statistics (GET /balloon/statistics): have bit t set when the
 * driver reported tag t. */
struct sqb_vio_balloon_stats {
	uint32_t target_pages, actual_pages;
	uint32_t have;
	uint64_t val[SQB_VIO_BALLOON_NSTATS];
};

/* Counters for tests, metrics and `inspect`. */
struct sqb_vio_balloon_counters {
	uint64_t inflated_pages, deflated_pages, reported_bytes, hinted_bytes;
	uint64_t bad_pfns, discard_fails, stats_updates, bad_stats;
};

int sqb_vio_balloon_new(sqb_vio_dev **out, const struct sqb_vio_balloon_opts *opts,
			const struct sqb_vio_host *host, struct sqb_diag *diag);
/* PATCH /balloon after boot: new target, config-change interrupt.  -EINVAL
 * above guest memory, -ERANGE when amount_mib * 256 overflows u32 (with
 * guest memory above 16 TiB only), -EAGAIN
 * before the driver is up (Firecracker: "Device not activated yet."). */
int sqb_vio_balloon_set_target(sqb_vio_dev *dev, uint32_t amount_mib);
uint32_t sqb_vio_balloon_target_mib(sqb_vio_dev *dev);
/* -ENODATA: statistics not enabled. */
int sqb_vio_balloon_get_stats(sqb_vio_dev *dev, struct sqb_vio_balloon_stats *st);
/* The polling timer fired: give the held statistics buffer back so the
 * driver refills it.  0, or -ENOENT when the driver gave none yet. */
int sqb_vio_balloon_stats_tick(sqb_vio_dev *dev);
uint16_t sqb_vio_balloon_stats_interval(sqb_vio_dev *dev);
/* PATCH /balloon/statistics: -EPERM when it would turn statistics on or
 * off (Firecracker's StatisticsStateChange).  Hands the buffer back now. */
int sqb_vio_balloon_set_stats_interval(sqb_vio_dev *dev, uint16_t interval_s);
/* Free page hinting runs (-ENOTSUP: not enabled; -EAGAIN: driver not up). */
int sqb_vio_balloon_hint_start(sqb_vio_dev *dev, int acknowledge_on_stop);
int sqb_vio_balloon_hint_stop(sqb_vio_dev *dev);
int sqb_vio_balloon_hint_status(sqb_vio_dev *dev, uint32_t *host_cmd, uint32_t *guest_cmd,
				int *has_guest_cmd);
void sqb_vio_balloon_counters(sqb_vio_dev *dev, struct sqb_vio_balloon_counters *c);

/* ---- vhost-user block (device id 2; docs/virtio.md "vhost-user block") ----
 *
 *   PUT /drives {socket}: sqb_vio_vhost_blk_open()  connect, SET_OWNER,
 *        GET/SET features (+ protocol features CONFIG, REPLY_ACK), GET_CONFIG
 *   DRIVER_OK: SET_FEATURES, SET_MEM_TABLE (guest RAM's memfd), SET_VRING_*:
 *        the queue's ioeventfd is the backend's kick, the slot's irqfd its
 *        call; from then on the data path never enters squib
 *   Status 0: SET_VRING_ENABLE 0, GET_VRING_BASE (the backend stops)
 *   PATCH /drives {drive_id}: GET_CONFIG again, config-change interrupt
 */
typedef struct sqb_vhu sqb_vhu;

/* One guest RAM region as the backend maps it: fd at fd_offset, size
 * bytes, guest-physical gpa, squib's own mapping at host. */
struct sqb_vio_vhost_region {
	uint64_t gpa, size, fd_offset;
	uint8_t *host;
	int fd;
};

/* What the integrator hands over at activation (called under the device's
 * lock, on the thread that wrote DRIVER_OK). */
struct sqb_vio_vhost_io {
	void *opaque;
	/* The guest RAM regions (at most max): their count, or -errno. */
	int (*regions)(void *opaque, struct sqb_vio_vhost_region *out, unsigned int max);
	/* Queue q's notify eventfd (the ioeventfd) and the interrupt eventfd
	 * (the irqfd): 0, or -errno when there is none. */
	int (*queue_fds)(void *opaque, unsigned int q, int *kick, int *call);
};

/* Connect to socket and negotiate (Firecracker's VhostUserBlock::new).
 * writeback: offer VIRTIO_BLK_F_FLUSH (cache_type Writeback).  timeout_ms:
 * per reply (0: 5 s).  why: what failed, in Firecracker's words where it
 * has some ("Failed to connect to UDS Unix stream: ..."). */
int sqb_vio_vhost_blk_open(sqb_vhu **out, const char *socket, int writeback, int timeout_ms,
			   char *why, size_t len);
/* Whether the backend offered VIRTIO_BLK_F_RO (the drive is read-only). */
int sqb_vio_vhost_read_only(const sqb_vhu *c);
void sqb_vio_vhost_close(sqb_vhu *c);

struct sqb_vio_vhost_blk_opts {
	unsigned int version; /* SQB_VIO_OPTS_VERSION */
	sqb_vhu *conn;	      /* from sqb_vio_vhost_blk_open: taken over on success */
	const char *drive_id; /* for the log lines */
	struct sqb_vio_vhost_io io;
};
int sqb_vio_vhost_blk_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
			  const struct sqb_vio_vhost_blk_opts *opts, struct sqb_diag *diag);
/* PATCH without fields: GET_CONFIG, then a config-change interrupt.
 * -EAGAIN before the driver is up; -errno with why on a backend error. */
int sqb_vio_vhost_blk_config_update(sqb_vio_dev *dev, char *why, size_t len);
/* The backend's socket (the integrator watches it for a hang-up). */
int sqb_vio_vhost_sock_fd(sqb_vio_dev *dev);
/* The socket turned readable or hung up with no request in flight: a
 * backend gone or talking out of turn breaks the device (logged once). */
int sqb_vio_vhost_sock_ready(sqb_vio_dev *dev);
/* Why the backend connection broke, or NULL (a static copy). */
const char *sqb_vio_vhost_broken(sqb_vio_dev *dev);
/* Firecracker's vhost_user_block_<id> metrics (vhost_user_metrics.rs):
 * counters since creation and the last durations (µs). */
struct sqb_vio_vhost_metrics {
	uint64_t activate_fails, cfg_fails;
	uint64_t init_time_us, activate_time_us, config_change_time_us;
};
int sqb_vio_vhost_metrics(sqb_vio_dev *dev, struct sqb_vio_vhost_metrics *out);

/* ---- snapshots (docs/format.md 9.1.1) --------------------------------- */

#define SQB_VIO_STATE_VERSION	  1u
#define SQB_VIO_STATE_MIN_VERSION 1u

/* Quiesce: with synchronous I/O nothing is ever in flight; this takes and
 * drops the device lock so that a notify running now has finished ([F-101]).
 * virtio-net also hands every frame queued on TX to the tap first; an Async
 * virtio-blk waits for every request in flight and publishes it (status
 * byte, used entry, interrupt) before it returns, so a save that follows
 * finds nothing in flight (Firecracker's prepare_save drain). */
int sqb_vio_quiesce(sqb_vio_dev *dev);
/* Encode the device state (transport, queues, device record, rate limiter);
 * *out is malloc'd and the caller's. */
int sqb_vio_dev_save(sqb_vio_dev *dev, uint8_t **out, size_t *out_len);
/* Restore a state of the given version into a device created with the same
 * configuration.  Invariants (device id, queue count, features offered, blk
 * capacity and read-only) must match; on failure the device is unchanged
 * and diag says which field at which offset of the state. */
int sqb_vio_dev_restore(sqb_vio_dev *dev, uint32_t version, const uint8_t *buf, size_t len,
			struct sqb_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
