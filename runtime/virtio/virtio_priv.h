/* Private to runtime/virtio: the split virtqueue walker, the token-bucket
 * rate limiter, the symmetric state codec and the device object. */
#ifndef SQB_VIRTIO_PRIV_H
#define SQB_VIRTIO_PRIV_H

#include <pthread.h>
#include <stdbool.h>

#include "virtio.h"

#define SQB_VQ_MAX_SIZE	   256 /* QueueNumMax of every device here */
#define SQB_VIO_MAX_QUEUES 5   /* balloon: inflate, deflate, stats, hinting, reporting */

/* Descriptor flags (virtio 1.x, 2.7.5). */
#define VQ_DESC_F_NEXT		1
#define VQ_DESC_F_WRITE		2
#define VQ_DESC_F_INDIRECT	4
#define VQ_AVAIL_F_NO_INTERRUPT 1

/* ---- split virtqueue (virtio_queue.c) ---------------------------------- */

struct sqb_vq {
	uint16_t num;	  /* QueueNum: power of two, 1..max_num */
	uint16_t max_num; /* QueueNumMax */
	bool ready;
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t next_avail;	    /* next avail ring slot to pop */
	uint16_t next_used;	    /* used idx the device publishes next */
	uint16_t signalled_used;    /* used idx at the last interrupt decision */
	bool signalled_valid;	    /* false: the next decision must notify */
	bool event_idx;		    /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;		    /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
};

/* One descriptor of a popped chain, already mapped and bounds-checked. */
struct sqb_vq_seg {
	uint8_t *host;
	uint64_t gpa; /* the descriptor's address (balloon: the range to discard) */
	uint32_t len;
	bool write; /* device-writable */
};

struct sqb_vq_chain {
	uint16_t head;
	uint16_t nseg;
	uint16_t nread;	    /* readable segments come first: [0, nread) */
	uint64_t read_len;  /* total bytes the device may read */
	uint64_t write_len; /* total bytes the device may write */
	struct sqb_vq_seg seg[SQB_VQ_MAX_SIZE];
};

/* Returns 1 with a chain, 0 when the ring is empty, -SQB_ECORRUPT on a
 * hostile ring (why is filled, a static string). */
int sqb_vq_pop(struct sqb_vq *q, const struct sqb_vio_mem *mem, struct sqb_vq_chain *c,
	       const char **why);
void sqb_vq_unpop(struct sqb_vq *q);
int sqb_vq_push(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t head, uint32_t len,
		const char **why);
/* With EVENT_IDX: publish avail_event = next_avail and report whether new
 * buffers arrived meanwhile (1), so the caller loops again. */
int sqb_vq_enable_notify(struct sqb_vq *q, const struct sqb_vio_mem *mem, const char **why);
/* The next chain (1); or, once the ring is empty, notifications re-enabled
 * so that a buffer the driver adds meanwhile is popped, not missed (0);
 * -SQB_ECORRUPT on a hostile ring.  Every device's queue loop starts here. */
int sqb_vq_pop_or_arm(struct sqb_vq *q, const struct sqb_vio_mem *mem, struct sqb_vq_chain *c,
		      const char **why);
/* The driver's avail idx now (*idx), and a notify asked for as soon as it
 * moves on (EVENT_IDX: avail_event = that idx; without it every add
 * notifies).  0 or -SQB_ECORRUPT with *why. */
int sqb_vq_watch_avail(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t *idx,
		       const char **why);
/* The driver's avail idx now. */
int sqb_vq_avail_idx(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t *idx,
		     const char **why);
/* Whether the driver wants an interrupt for what was pushed since the last
 * decision (EVENT_IDX used_event, or avail flags NO_INTERRUPT). */
bool sqb_vq_should_signal(struct sqb_vq *q, const struct sqb_vio_mem *mem);
/* Check num and the three ring areas when the driver sets QueueReady. */
int sqb_vq_validate(const struct sqb_vq *q, const struct sqb_vio_mem *mem, const char **why);
void sqb_vq_reset(struct sqb_vq *q);

/* Copy helpers over a chain's readable / writable byte streams, so that
 * devices never assume a framing (virtio 1.x, 2.7.4). */
uint64_t sqb_vq_read_bytes(const struct sqb_vq_chain *c, uint64_t off, void *dst, uint64_t len);
/* The chain's readable (writable = false) or writable stream bytes [off,
 * off + len) as an iovec of at most SQB_VQ_MAX_SIZE entries (their count);
 * *short_by: the part of len past the stream's end (0 when all of it fits). */
struct iovec;
int sqb_vq_iov(const struct sqb_vq_chain *c, bool writable, uint64_t off, uint64_t len,
	       struct iovec *iov, uint64_t *short_by);
uint64_t sqb_vq_write_bytes(const struct sqb_vq_chain *c, uint64_t off, const void *src,
			    uint64_t len);

/* ---- rate limiter (virtio_ratelimit.c) --------------------------------- */

struct sqb_vio_tb {
	bool enabled;
	uint64_t size, initial_burst, refill_ms;
	uint64_t burst;			/* one-time burst left */
	uint64_t budget;		/* tokens now */
	uint64_t last_update;		/* clock ns */
	uint64_t proc_cap, proc_refill; /* size / gcd, refill_ns / gcd */
};

struct sqb_vio_rl {
	struct sqb_vio_tb bw, ops;
	bool blocked;
	uint64_t blocked_until; /* clock ns */
};

enum sqb_vio_tok { SQB_VIO_TOK_BYTES, SQB_VIO_TOK_OPS };

void sqb_vio_rl_init(struct sqb_vio_rl *rl, const struct sqb_vio_rl_config *cfg, uint64_t now);
/* Firecracker's consume(): false when throttled (then *retry_at says when
 * the integrator's timer should fire). */
bool sqb_vio_rl_consume(struct sqb_vio_rl *rl, uint64_t tokens, enum sqb_vio_tok t, uint64_t now,
			uint64_t *retry_at);
void sqb_vio_rl_replenish(struct sqb_vio_rl *rl, uint64_t tokens, enum sqb_vio_tok t);
/* The timer fired: unblock when its time has come (true). */
bool sqb_vio_rl_expire(struct sqb_vio_rl *rl, uint64_t now);

#define SQB_VIO_RL_REFILL_TIMER_NS 100000000ull /* Firecracker's 100 ms */

/* ---- symmetric state codec (virtio_state.c) ---------------------------- */

/* One function both saves and restores: load=0 appends little-endian
 * fields, load=1 reads them back; cmp fields are invariants checked on load
 * (bhyve's SNAPSHOT_VAR_CMP_OR_LEAVE).  The first error sticks. */
struct sqb_vio_sbuf {
	uint8_t *buf;
	size_t len, cap, off;
	int load;
	int err;
	struct sqb_diag *diag;
};

void sqb_vio_sv_u8(struct sqb_vio_sbuf *b, uint8_t *v, const char *name);
void sqb_vio_sv_u16(struct sqb_vio_sbuf *b, uint16_t *v, const char *name);
void sqb_vio_sv_u32(struct sqb_vio_sbuf *b, uint32_t *v, const char *name);
void sqb_vio_sv_u64(struct sqb_vio_sbuf *b, uint64_t *v, const char *name);
void sqb_vio_sv_cmp_u16(struct sqb_vio_sbuf *b, uint16_t cur, const char *name);
void sqb_vio_sv_cmp_u32(struct sqb_vio_sbuf *b, uint32_t cur, const char *name);
void sqb_vio_sv_cmp_u64(struct sqb_vio_sbuf *b, uint64_t cur, const char *name);
void sqb_vio_sv_reserved(struct sqb_vio_sbuf *b, size_t n, const char *name);
/* Fail the load at the current field with a reason. */
void sqb_vio_sv_fail(struct sqb_vio_sbuf *b, int err, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- the device object (virtio_mmio.c) --------------------------------- */

struct sqb_vio_ops {
	uint32_t device_id;
	uint16_t num_queues;
	/* Read config space bytes [off, off+len) into dst (already bounds-checked
	 * against config_len). */
	void (*config_read)(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len);
	uint32_t (*config_len)(sqb_vio_dev *dev);
	/* Process queue q until empty, throttled or broken.  Returns 0, or
	 * -SQB_ECORRUPT with *why set (the transport then sets NEEDS_RESET). */
	int (*process)(sqb_vio_dev *dev, unsigned int q, const char **why);
	/* Device record of the state: invariants only (rate limiter is generic). */
	void (*state)(sqb_vio_dev *dev, struct sqb_vio_sbuf *b);
	void (*free)(sqb_vio_dev *dev);
	/* Optional, under lock: finish work the guest already handed over
	 * (net: send every queued TX frame) before a save ([F-101]). */
	void (*quiesce)(sqb_vio_dev *dev);
	/* Optional, under lock: a restore succeeded; commit what state() staged
	 * and do what a load implies (vsock: TRANSPORT_RESET, [F-112]). */
	void (*restored)(sqb_vio_dev *dev);
	/* Optional, under lock: the driver writes config space bytes [off,
	 * off+len) (bounds-checked against config_len; balloon: `actual`). */
	void (*config_write)(sqb_vio_dev *dev, uint32_t off, const uint8_t *src, uint32_t len);
	/* Optional, under lock: the driver reset the device (Status 0). */
	void (*reset)(sqb_vio_dev *dev);
	/* Offered features the driver must accept for FEATURES_OK (virtio-mem:
	 * VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, as Firecracker requires). */
	uint64_t required_features;
	/* Optional, under lock: the driver set DRIVER_OK (vhost-user: hand the
	 * rings to the backend).  A failure sets NEEDS_RESET with *why. */
	int (*activate)(sqb_vio_dev *dev, const char **why);
	/* vhost-user: the backend raises queue interrupts itself, so
	 * InterruptStatus reads VRING unless only CONFIG is pending
	 * (Firecracker's is_vhost_user in its MMIO transport). */
	bool isr_vring_default;
};

struct sqb_vio_dev {
	pthread_mutex_t lock;
	const struct sqb_vio_ops *ops;
	struct sqb_vio_host host;
	void *priv;
	const char *reset_why; /* why NEEDS_RESET was set (static string), or NULL */

	uint64_t dev_features;
	uint64_t drv_features;
	uint32_t status;
	uint32_t dev_features_sel, drv_features_sel;
	uint32_t queue_sel;
	uint32_t isr;
	uint64_t irqs; /* interrupts raised since creation (debug dumps only) */
	uint32_t config_gen;
	struct sqb_vq vq[SQB_VIO_MAX_QUEUES];

	struct sqb_vio_rl rl;
	bool has_rl;

	struct sqb_vq_chain chain; /* scratch for process(), under lock */
	struct sqb_vio_metrics m;  /* under lock */
	int quiesce_err;	   /* set by ops->quiesce: what sqb_vio_quiesce returns */

	/* virtio-pci (virtio_pci.c): set once before the guest runs; the
	 * MSI-X vectors are saved by the PCI function, not by [F-102] */
	bool pci;
	uint16_t msix_config;
	uint16_t msix_queue[SQB_VIO_MAX_QUEUES];
};

int sqb_vio_dev_init(sqb_vio_dev *dev, const struct sqb_vio_ops *ops,
		     const struct sqb_vio_host *host, uint64_t features,
		     const struct sqb_vio_rl_config *rl);
uint64_t sqb_vio_now(sqb_vio_dev *dev);
/* Under lock: one latency sample into an aggregate. */
void sqb_vio_lat_add(struct sqb_vio_lat *l, uint64_t us);
/* Under lock: a used buffer was pushed on q; interrupt if the driver wants. */
void sqb_vio_signal_used(sqb_vio_dev *dev, unsigned int q);
/* Under lock: the transport-independent register semantics both transports
 * share (virtio_mmio.c). */
uint32_t sqb_vio_status_write(sqb_vio_dev *dev, uint32_t v);
void sqb_vio_queue_ready_write(sqb_vio_dev *dev, struct sqb_vq *q, uint32_t v);
void sqb_vio_config_access(sqb_vio_dev *dev, uint32_t off, uint8_t *data, unsigned int size,
			   int is_write);
/* Under lock: the interrupt for ISR bit `bit` of queue q (-1: the
 * configuration): the line, or the MSI-X vector the driver chose. */
void sqb_vio_raise(sqb_vio_dev *dev, uint32_t bit, int q);
/* Under lock: config space changed. */
void sqb_vio_config_changed(sqb_vio_dev *dev);
/* Under lock: the device broke (DEVICE_NEEDS_RESET, why a static string). */
void sqb_vio_needs_reset(sqb_vio_dev *dev, const char *why);
/* Under lock: consume rate-limit tokens for a request, arming the timer when
 * throttled.  Returns true when the request may go on. */
bool sqb_vio_throttle_ok(sqb_vio_dev *dev, uint64_t bytes, bool count_bytes);
/* Under lock: run ops->process on queue q if it is live; a hostile ring sets
 * DEVICE_NEEDS_RESET.  For work that starts on the host side (a tap or a
 * socket became readable) rather than with a guest notify. */
void sqb_vio_process_locked(sqb_vio_dev *dev, unsigned int q);
/* The rate-limiter record ([F-106]) of any limiter, for devices that carry
 * their own (net: rx and tx). */
void sqb_vio_sv_limiter(struct sqb_vio_sbuf *b, struct sqb_vio_rl *rl, uint64_t now);
/* Under lock: a limiter's consume with the device's clock and timer, as
 * sqb_vio_throttle_ok() does for the generic one. */
bool sqb_vio_rl_throttle_ok(sqb_vio_dev *dev, struct sqb_vio_rl *rl, uint64_t bytes);

/* ---- virtio-vsock packet header (virtio_vsock_proto.c) ----------------- */

#define SQB_VSOCK_HDR_LEN  44
#define SQB_VSOCK_HOST_CID 2u
#define SQB_VSOCK_MAX_PKT  (64u << 10) /* payload per packet (Firecracker's) */

enum sqb_vsock_op {
	SQB_VSOCK_OP_INVALID = 0,
	SQB_VSOCK_OP_REQUEST = 1,
	SQB_VSOCK_OP_RESPONSE = 2,
	SQB_VSOCK_OP_RST = 3,
	SQB_VSOCK_OP_SHUTDOWN = 4,
	SQB_VSOCK_OP_RW = 5,
	SQB_VSOCK_OP_CREDIT_UPDATE = 6,
	SQB_VSOCK_OP_CREDIT_REQUEST = 7,
};
#define SQB_VSOCK_TYPE_STREAM		1u
#define SQB_VSOCK_SHUTDOWN_RCV		1u
#define SQB_VSOCK_SHUTDOWN_SEND		2u
#define SQB_VSOCK_EVENT_TRANSPORT_RESET 0u

struct sqb_vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

enum sqb_vsock_verdict {
	SQB_VSOCK_OK = 0,
	SQB_VSOCK_DROP = 1, /* not addressed to us: drop silently */
	SQB_VSOCK_RST = 2,  /* well addressed but invalid: answer RST */
};

void sqb_vsock_hdr_decode(const uint8_t b[SQB_VSOCK_HDR_LEN], struct sqb_vsock_hdr *h);
void sqb_vsock_hdr_encode(uint8_t b[SQB_VSOCK_HDR_LEN], const struct sqb_vsock_hdr *h);
/* Validate a guest TX header field by field; payload is the number of
 * readable bytes after the header in the chain. *why names the field. */
enum sqb_vsock_verdict sqb_vsock_hdr_check(const struct sqb_vsock_hdr *h, uint64_t guest_cid,
					   uint64_t payload, const char **why);
/* Firecracker's host command "CONNECT <port>\n" as its read_local_stream_port
 * reads it (docs/network.md "The CONNECT command": the first 10 bytes, then
 * up to a newline or 32 bytes, split at Unicode white space, a u32 as
 * Rust parses one, later words ignored).  Returns 1 with *port, 0 when more
 * bytes are needed, -EINVAL when it can never be valid. */
int sqb_vsock_parse_connect(const char *buf, size_t len, uint32_t *port, size_t *used);

#endif
