/* virtio-blk (device id 2; virtio 1.x section 5.2) with Firecracker's
 * semantics: IN, OUT, FLUSH (fdatasync with cache Writeback, where FLUSH is
 * offered), GET_ID; read-only enforced with IOERR.  Two engines (Firecracker's
 * io_engine): Sync runs preadv/pwritev inside the notify call, so nothing is
 * ever in flight ([F-101]); Async hands IN/OUT/FLUSH to an io_uring and
 * publishes each request when its completion arrives, and drains before a
 * save, a backing swap, a reset and a free. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef SQB_HAVE_URING
#include <liburing.h>
#include <sys/syscall.h>
#endif

#include "log.h"
#include "virtio_priv.h"

#define BLK_T_IN	   0
#define BLK_T_OUT	   1
#define BLK_T_FLUSH	   4
#define BLK_T_GET_ID	   8
#define BLK_T_DISCARD	   11
#define BLK_T_WRITE_ZEROES 13

#define BLK_S_OK     0
#define BLK_S_IOERR  1
#define BLK_S_UNSUPP 2

#define SECTOR_SHIFT 9
#define HDR_LEN	     16

struct blk_async;

struct blk {
	int fd;
	bool ro;
	enum sqb_vio_cache cache;
	uint64_t capacity; /* 512-byte sectors */
	char id[SQB_VIO_BLK_ID_BYTES];
	struct blk_async *as; /* the Async engine, NULL for Sync */
};

static int file_sectors(int fd, uint64_t *out)
{
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0)
		return -errno;
	*out = (uint64_t)end >> SECTOR_SHIFT;
	return 0;
}

/* Move len bytes between the file at file_off and the chain's readable
 * (to_file) or writable stream starting at stream_off: one preadv/pwritev
 * for the whole request, resumed after a short transfer. */
static int blk_io(int fd, const struct sqb_vq_chain *c, bool to_file, uint64_t stream_off,
		  uint64_t len, uint64_t file_off)
{
	struct iovec iov[SQB_VQ_MAX_SIZE], *v = iov;
	uint64_t short_by;
	int n = sqb_vq_iov(c, !to_file, stream_off, len, iov, &short_by);

	if (short_by)
		return -EIO;
	while (n > 0) {
		ssize_t r = to_file ? pwritev(fd, v, n, (off_t)file_off)
				    : preadv(fd, v, n, (off_t)file_off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO; /* EOF: the file shrank */
		file_off += (uint64_t)r;
		while (n > 0 && (size_t)r >= v->iov_len) {
			r -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + r;
			v->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static bool in_range(const struct blk *b, uint64_t sector, uint64_t len)
{
	uint64_t n = len >> SECTOR_SHIFT;

	return (len & ((1u << SECTOR_SHIFT) - 1)) == 0 && sector <= b->capacity &&
	       n <= b->capacity - sector;
}

/* Execute one request; returns the status byte, *to_mem the bytes written
 * into guest buffers before the status byte. */
static uint8_t blk_exec(struct blk *b, const struct sqb_vq_chain *c, uint32_t type, uint64_t sector,
			uint64_t *to_mem)
{
	uint64_t data;

	*to_mem = 0;
	switch (type) {
	case BLK_T_IN:
		data = c->write_len - 1;
		if (!in_range(b, sector, data))
			return BLK_S_IOERR;
		if (blk_io(b->fd, c, false, 0, data, sector << SECTOR_SHIFT))
			return BLK_S_IOERR;
		*to_mem = data;
		return BLK_S_OK;
	case BLK_T_OUT:
		data = c->read_len - HDR_LEN;
		if (b->ro || !in_range(b, sector, data))
			return BLK_S_IOERR;
		return blk_io(b->fd, c, true, HDR_LEN, data, sector << SECTOR_SHIFT) ? BLK_S_IOERR
										     : BLK_S_OK;
	case BLK_T_FLUSH:
		if (b->cache == SQB_VIO_CACHE_WRITEBACK && !b->ro && fdatasync(b->fd))
			return BLK_S_IOERR;
		return BLK_S_OK;
	case BLK_T_GET_ID:
		if (c->write_len - 1 < SQB_VIO_BLK_ID_BYTES)
			return BLK_S_IOERR;
		*to_mem = sqb_vq_write_bytes(c, 0, b->id, SQB_VIO_BLK_ID_BYTES);
		return BLK_S_OK;
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		/* Not offered; on a read-only drive every write-like request is IOERR. */
		return b->ro ? BLK_S_IOERR : BLK_S_UNSUPP;
	default:
		return BLK_S_UNSUPP;
	}
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Metrics of one answered request (under lock).  Firecracker's meaning:
 * read/write counts and bytes of the requests that succeeded, their time
 * in the backing file, IOERR answers as execute fails, unknown types and
 * short headers as invalid requests. */
static void count_req(sqb_vio_dev *dev, uint32_t type, uint8_t st, uint64_t bytes, uint64_t t0)
{
	struct sqb_vio_metrics *m = &dev->m;

	if (type == UINT32_MAX || st == BLK_S_UNSUPP) {
		m->invalid_reqs++;
		return;
	}
	if (st != BLK_S_OK) {
		m->exec_fails++;
		return;
	}
	if (type == BLK_T_IN) {
		m->read_count++;
		m->read_bytes += bytes;
		sqb_vio_lat_add(&m->read_lat, mono_us() - t0);
	} else if (type == BLK_T_OUT) {
		m->write_count++;
		m->write_bytes += bytes;
		sqb_vio_lat_add(&m->write_lat, mono_us() - t0);
	} else if (type == BLK_T_FLUSH) {
		m->flush_count++;
	}
}

/* ---- the Async engine (io_uring) ----------------------------------------
 *
 * One ring per device, as deep as a queue can be (or opts.async_depth),
 * with an eventfd registered for completions.  A request keeps a slot from
 * submission to publication: the chain head, the host address of its
 * status byte and the iovec of what is left to move.  Guest buffers stay
 * mapped (and were marked dirty) when the chain was popped.  FLUSH carries
 * IOSQE_IO_DRAIN: the kernel starts it only after every earlier request
 * has completed, so a flush covers the writes the driver saw completed or
 * still had in flight when it sent it (virtio 1.x 5.2.6.2). */

#define BLK_INLINE_IOV 4

static void diag_set(struct sqb_diag *d, const char *reason);

struct blk_req {
	uint16_t head;
	uint8_t type;	   /* BLK_T_IN, BLK_T_OUT or BLK_T_FLUSH */
	bool heap_iov;	   /* iov was malloc'd */
	uint8_t *status;   /* the chain's status byte, in guest RAM */
	uint64_t data;	   /* the request's data bytes (what a success moves) */
	uint64_t left;	   /* bytes still to move */
	uint64_t off;	   /* file offset of the next byte */
	uint64_t t0;	   /* submission time (us), for the latency aggregates */
	struct iovec *iov; /* iov[cur .. n) is what is left */
	int n, cur;
	struct iovec small[BLK_INLINE_IOV];
};

struct blk_async {
#ifdef SQB_HAVE_URING
	struct io_uring ring;
#endif
	int efd;
	unsigned int depth, inflight;
	struct blk_req *req;
	uint16_t *free_idx; /* stack of free slots */
	unsigned int nfree;
	bool stalled; /* a full ring stopped popping: resume on a completion */
	bool discard; /* draining for reset/free: wait, never publish */
};

#ifdef SQB_HAVE_URING

static int ring_register(struct io_uring *ring, unsigned int op, const void *arg, unsigned int nr)
{
	long rc = syscall(__NR_io_uring_register, ring->ring_fd, op, arg, nr);

	return rc < 0 ? -errno : (int)rc;
}

static int async_setup(struct blk_async *a, const char **what)
{
	/* Only readv, writev and fsync (with IO_DRAIN), whatever a bug in the
	 * VMM might queue: the kernel enforces it (Firecracker registers the
	 * same kind of restrictions), as seccomp cannot see inside the ring. */
	struct io_uring_restriction res[4];
	int rc;

	*what = "io_uring_setup";
	rc = io_uring_queue_init(a->depth, &a->ring, IORING_SETUP_R_DISABLED);
	if (rc < 0)
		return rc;
	*what = "io_uring_register (eventfd)";
	rc = io_uring_register_eventfd(&a->ring, a->efd);
	if (rc < 0)
		goto err;
	memset(res, 0, sizeof(res));
	res[0].opcode = IORING_RESTRICTION_SQE_OP;
	res[0].sqe_op = IORING_OP_READV;
	res[1].opcode = IORING_RESTRICTION_SQE_OP;
	res[1].sqe_op = IORING_OP_WRITEV;
	res[2].opcode = IORING_RESTRICTION_SQE_OP;
	res[2].sqe_op = IORING_OP_FSYNC;
	res[3].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[3].sqe_flags = IOSQE_IO_DRAIN;
	/* The raw call: Debian's liburing 2.3 shared library does not export
	 * io_uring_register_restrictions() / io_uring_enable_rings(). */
	*what = "io_uring_register (restrictions)";
	rc = ring_register(&a->ring, IORING_REGISTER_RESTRICTIONS, res, 4);
	if (rc < 0)
		goto err;
	*what = "io_uring_register (enable rings)";
	rc = ring_register(&a->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (rc < 0)
		goto err;
	return 0;
err:
	io_uring_queue_exit(&a->ring);
	return rc;
}

static void async_exit(struct blk_async *a)
{
	io_uring_queue_exit(&a->ring);
}

/* Hand queued SQEs to the kernel.  -EAGAIN/-EBUSY (no room for their
 * completions yet) leave them queued: the next kick, after completions
 * were reaped, submits them. */
static void async_kick(struct blk_async *a)
{
	while (io_uring_sq_ready(&a->ring)) {
		int rc = io_uring_submit(&a->ring);

		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			if (rc != -EAGAIN && rc != -EBUSY)
				sqb_debug("virtio-blk: io_uring submit: %s", strerror(-rc));
			return;
		}
		if (rc == 0)
			return;
	}
}

static bool async_prep(struct blk_async *a, struct blk *b, unsigned int idx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
	struct blk_req *r = &a->req[idx];

	if (!sqe)
		return false;
	if (r->type == BLK_T_IN)
		io_uring_prep_readv(sqe, b->fd, r->iov + r->cur, (unsigned int)(r->n - r->cur),
				    r->off);
	else if (r->type == BLK_T_OUT)
		io_uring_prep_writev(sqe, b->fd, r->iov + r->cur, (unsigned int)(r->n - r->cur),
				     r->off);
	else
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
	if (r->type == BLK_T_FLUSH)
		sqe->flags |= IOSQE_IO_DRAIN;
	sqe->user_data = idx;
	return true;
}

static int async_wait(struct blk_async *a)
{
	return io_uring_submit_and_wait(&a->ring, 1);
}

static int async_peek(struct blk_async *a, uint64_t *idx, int32_t *res)
{
	struct io_uring_cqe *cqe;
	int rc = io_uring_peek_cqe(&a->ring, &cqe);

	if (rc < 0)
		return rc;
	*idx = cqe->user_data;
	*res = cqe->res;
	io_uring_cqe_seen(&a->ring, cqe);
	return 0;
}

int sqb_vio_blk_async_probe(char *why, size_t len)
{
	struct io_uring r;
	int rc = io_uring_queue_init(1, &r, 0);

	if (rc < 0) {
		if (why && len)
			snprintf(why, len, "Error calling io_uring_setup: %s (os error %d)",
				 strerror(-rc), -rc);
		return rc;
	}
	io_uring_queue_exit(&r);
	return 0;
}

#else /* !SQB_HAVE_URING: squib built without liburing */

static int async_setup(struct blk_async *a, const char **what)
{
	(void)a;
	*what = "io_uring (squib was built without liburing)";
	return -ENOTSUP;
}

static void async_exit(struct blk_async *a)
{
	(void)a;
}

static void async_kick(struct blk_async *a)
{
	(void)a;
}

static bool async_prep(struct blk_async *a, struct blk *b, unsigned int idx)
{
	(void)a, (void)b, (void)idx;
	return false;
}

static int async_wait(struct blk_async *a)
{
	(void)a;
	return -ENOTSUP;
}

static int async_peek(struct blk_async *a, uint64_t *idx, int32_t *res)
{
	(void)a, (void)idx, (void)res;
	return -EAGAIN;
}

int sqb_vio_blk_async_probe(char *why, size_t len)
{
	if (why && len)
		snprintf(why, len,
			 "Error calling io_uring_setup: squib was built without liburing");
	return -ENOTSUP;
}

#endif

static void async_put_slot(struct blk_async *a, unsigned int idx)
{
	struct blk_req *r = &a->req[idx];

	if (r->heap_iov)
		free(r->iov);
	r->iov = NULL;
	r->heap_iov = false;
	a->free_idx[a->nfree++] = (uint16_t)idx;
	a->inflight--;
}

/* Submit a popped IN, OUT or FLUSH.  1: in flight, published later; 0:
 * answered now with *st (range, read-only, nothing to move, no memory). */
static int async_submit(struct blk *b, const struct sqb_vq_chain *c, uint32_t type, uint64_t sector,
			uint64_t t0, uint8_t *st)
{
	struct blk_async *a = b->as;
	struct iovec tmp[SQB_VQ_MAX_SIZE], sb;
	uint64_t data = 0, short_by = 0, sb_short;
	struct blk_req *r;
	unsigned int idx;
	int n = 0;

	*st = BLK_S_IOERR;
	if (type == BLK_T_IN) {
		data = c->write_len - 1;
		if (!in_range(b, sector, data))
			return 0;
		n = sqb_vq_iov(c, true, 0, data, tmp, &short_by);
	} else if (type == BLK_T_OUT) {
		data = c->read_len - HDR_LEN;
		if (b->ro || !in_range(b, sector, data))
			return 0;
		n = sqb_vq_iov(c, false, HDR_LEN, data, tmp, &short_by);
	} else if (b->cache != SQB_VIO_CACHE_WRITEBACK || b->ro) {
		*st = BLK_S_OK; /* as Sync: nothing to make durable */
		return 0;
	}
	if (short_by)
		return 0;
	if (type != BLK_T_FLUSH && data == 0) {
		*st = BLK_S_OK; /* a zero-length transfer: nothing to queue */
		return 0;
	}
	if (!a->nfree) /* blk_process checks room before popping */
		return 0;
	idx = a->free_idx[--a->nfree];
	a->inflight++;
	r = &a->req[idx];
	r->head = c->head;
	r->type = (uint8_t)type;
	r->data = r->left = data;
	r->off = sector << SECTOR_SHIFT;
	r->t0 = t0;
	r->n = n;
	r->cur = 0;
	r->heap_iov = n > BLK_INLINE_IOV;
	r->iov = r->heap_iov ? malloc((size_t)n * sizeof(*r->iov)) : r->small;
	sqb_vq_iov(c, true, c->write_len - 1, 1, &sb, &sb_short);
	r->status = sb.iov_base;
	if (!r->iov) {
		r->heap_iov = false;
		async_put_slot(a, idx);
		return 0;
	}
	if (n)
		memcpy(r->iov, tmp, (size_t)n * sizeof(*r->iov));
	if (!async_prep(a, b, idx)) {
		async_put_slot(a, idx);
		return 0;
	}
	return 1;
}

/* One completion.  A short transfer goes on from where it stopped (as the
 * Sync engine's loop does); an error, or EOF before the end (the file
 * shrank), is IOERR.  Returns true when a used entry was pushed. */
static bool async_complete(sqb_vio_dev *dev, unsigned int idx, int32_t res)
{
	struct blk *b = dev->priv;
	struct blk_async *a = b->as;
	struct blk_req *r = &a->req[idx];
	struct sqb_vq *q = &dev->vq[0];
	const char *why = NULL;
	uint16_t head;
	uint32_t len;
	uint8_t st;

	if (r->type != BLK_T_FLUSH && res > 0 && (uint64_t)res < r->left) {
		uint64_t done = (uint64_t)res;

		r->left -= done;
		r->off += done;
		while (r->cur < r->n && done >= r->iov[r->cur].iov_len)
			done -= r->iov[r->cur++].iov_len;
		if (r->cur < r->n) {
			r->iov[r->cur].iov_base = (uint8_t *)r->iov[r->cur].iov_base + done;
			r->iov[r->cur].iov_len -= done;
		}
		if (!a->discard && async_prep(a, b, idx))
			return false; /* submitted by the caller's kick */
		res = -EIO;
	} else if (r->type != BLK_T_FLUSH && res == 0 && r->left) {
		res = -EIO;
	}
	if (a->discard) {
		async_put_slot(a, idx);
		return false;
	}
	st = res < 0 ? BLK_S_IOERR : BLK_S_OK;
	*r->status = st;
	count_req(dev, r->type, st, r->data, r->t0);
	/* used length: the data read into guest buffers, then the status byte */
	len = (uint32_t)((st == BLK_S_OK && r->type == BLK_T_IN ? r->data : 0) + 1);
	head = r->head;
	async_put_slot(a, idx);
	/* The rings were checked at QueueReady and stay mapped; a reset drains
	 * before it clears them. */
	return q->ready && sqb_vq_push(q, &dev->host.mem, head, len, &why) == 0;
}

/* Under lock: publish every completion that has arrived; with wait_all,
 * wait until nothing is in flight. */
static void async_reap(sqb_vio_dev *dev, bool wait_all)
{
	struct blk_async *a = ((struct blk *)dev->priv)->as;
	bool pushed = false;

	for (;;) {
		uint64_t idx;
		int32_t res;
		int rc = async_peek(a, &idx, &res);

		if (rc == -EAGAIN && wait_all && a->inflight) {
			rc = async_wait(a);
			if (rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY)
				continue;
			sqb_debug("virtio-blk: io_uring wait: %s", strerror(-rc));
			break;
		}
		if (rc < 0)
			break;
		if (idx < a->depth && async_complete(dev, (unsigned int)idx, res))
			pushed = true;
	}
	async_kick(a); /* the rest of short transfers */
	if (pushed)
		sqb_vio_signal_used(dev, 0);
}

/* Under lock: wait for every request in flight; publish them unless the
 * queue is going away (reset, free). */
static void async_drain(sqb_vio_dev *dev, bool discard)
{
	struct blk_async *a = ((struct blk *)dev->priv)->as;

	async_kick(a);
	a->discard = discard;
	async_reap(dev, true);
	a->discard = false;
	if (discard)
		a->stalled = false;
}

static void async_free(struct blk_async *a)
{
	if (!a)
		return;
	if (a->efd >= 0)
		close(a->efd);
	free(a->req);
	free(a->free_idx);
	free(a);
}

static int async_new(struct blk *b, unsigned int depth, struct sqb_diag *diag)
{
	struct blk_async *a = calloc(1, sizeof(*a));
	const char *what = "";
	char msg[160];
	int rc;

	if (!a)
		return -ENOMEM;
	a->efd = -1;
	a->depth = depth;
	a->req = calloc(depth, sizeof(*a->req));
	a->free_idx = calloc(depth, sizeof(*a->free_idx));
	if (!a->req || !a->free_idx) {
		async_free(a);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < depth; i++)
		a->free_idx[i] = (uint16_t)(depth - 1 - i);
	a->nfree = depth;
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		rc = -errno;
		diag_set(diag, "Async engine: cannot create the completion eventfd");
		async_free(a);
		return rc;
	}
	rc = async_setup(a, &what);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "Async engine: %s: %s (os error %d)", what,
			 strerror(-rc), -rc);
		diag_set(diag, msg);
		async_free(a);
		return rc;
	}
	b->as = a;
	return 0;
}

static int blk_process(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct blk *b = dev->priv;
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	bool pushed = false;
	int rc = 0;

	for (;;) {
		uint8_t hdr[HDR_LEN], st;
		uint32_t type = UINT32_MAX;
		uint64_t sector = 0, to_mem = 0, used = 0;

		/* Async with a full ring: leave the rest on the avail ring; the
		 * next completion takes them (Firecracker's io-engine throttling). */
		if (b->as && !b->as->nfree) {
			b->as->stalled = true;
			rc = 0;
			break;
		}
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		if (sqb_vq_read_bytes(c, 0, hdr, HDR_LEN) == HDR_LEN) {
			type = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
			       (uint32_t)hdr[3] << 24;
			for (int i = 0; i < 8; i++)
				sector |= (uint64_t)hdr[8 + i] << (8 * i);
		}
		if (!sqb_vio_throttle_ok(
			dev, type == BLK_T_IN ? c->write_len - 1 : c->read_len - HDR_LEN,
			c->write_len && (type == BLK_T_IN || type == BLK_T_OUT))) {
			sqb_vq_unpop(q);
			rc = 0;
			break;
		}
		/* No writable status byte: nothing can be reported, complete with 0. */
		if (c->write_len) {
			uint64_t t0 = type <= BLK_T_OUT ? mono_us() : 0;

			if (type == UINT32_MAX)
				st = BLK_S_IOERR;
			else if (b->as &&
				 (type == BLK_T_IN || type == BLK_T_OUT || type == BLK_T_FLUSH)) {
				if (async_submit(b, c, type, sector, t0, &st))
					continue; /* published by async_complete() */
			} else
				st = blk_exec(b, c, type, sector, &to_mem);
			sqb_vq_write_bytes(c, c->write_len - 1, &st, 1);
			used = to_mem + 1;
			count_req(dev, type, st,
				  type == BLK_T_IN ? c->write_len - 1 : c->read_len - HDR_LEN, t0);
		} else {
			dev->m.invalid_reqs++;
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, (uint32_t)used, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (b->as)
		async_kick(b->as); /* one io_uring_enter for the batch */
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

/* struct virtio_blk_config up to seg_max (5.2.4): capacity, size_max
 * (0: VIRTIO_BLK_F_SIZE_MAX not offered), seg_max. */
#define BLK_CONFIG_LEN 16
#define BLK_SEG_MAX    (SQB_VQ_MAX_SIZE - 2) /* a chain also holds header and status */

static uint32_t blk_config_len(sqb_vio_dev *dev)
{
	(void)dev;
	return BLK_CONFIG_LEN;
}

static void blk_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct blk *b = dev->priv;
	uint8_t cfg[BLK_CONFIG_LEN] = {0};

	for (int i = 0; i < 8; i++)
		cfg[i] = (uint8_t)(b->capacity >> (8 * i));
	cfg[12] = (uint8_t)BLK_SEG_MAX;
	cfg[13] = (uint8_t)(BLK_SEG_MAX >> 8);
	memcpy(dst, cfg + off, len);
}

/* Device record, 16 bytes ([F-104]): capacity and flags are invariants. */
static void blk_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *sb)
{
	struct blk *b = dev->priv;
	uint32_t flags = (b->ro ? 1u : 0) | (b->cache == SQB_VIO_CACHE_WRITEBACK ? 2u : 0);

	sqb_vio_sv_cmp_u64(sb, b->capacity, "blk capacity (sectors)");
	sqb_vio_sv_cmp_u32(sb, flags, "blk flags (read_only, writeback)");
	sqb_vio_sv_reserved(sb, 4, "blk reserved");
}

static void blk_free(sqb_vio_dev *dev)
{
	struct blk *b = dev->priv;

	if (b) {
		/* The kernel may still write guest RAM and read b->fd: wait. */
		if (b->as) {
			async_drain(dev, true);
			async_exit(b->as);
			async_free(b->as);
		}
		close(b->fd);
		free(b);
	}
}

/* Save ([F-101]): every request in flight completes and is published. */
static void blk_quiesce(sqb_vio_dev *dev)
{
	struct blk *b = dev->priv;

	if (b->as)
		async_drain(dev, false);
	/* Firecracker's prepare_save (drain_and_flush: sync_all for either
	 * engine, whatever the cache type): what the guest wrote is on the
	 * disk before the snapshot that counts on it is written, or the
	 * snapshot fails. */
	if (!b->ro && (dev->status & SQB_VIO_S_DRIVER_OK) && fsync(b->fd))
		dev->quiesce_err = -errno;
}

/* A driver reset (virtio 1.x 2.4): the device must not use the buffers
 * afterwards, so wait for the kernel to finish with them; the rings are
 * gone, nothing is published. */
static void blk_reset(sqb_vio_dev *dev)
{
	struct blk *b = dev->priv;

	if (b->as)
		async_drain(dev, true);
}

static const struct sqb_vio_ops blk_ops = {
    .device_id = SQB_VIO_ID_BLK,
    .num_queues = 1,
    .config_read = blk_config_read,
    .config_len = blk_config_len,
    .process = blk_process,
    .state = blk_state,
    .free = blk_free,
    .quiesce = blk_quiesce,
    .reset = blk_reset,
};

static void diag_set(struct sqb_diag *d, const char *reason)
{
	if (!d)
		return;
	d->offset = UINT64_MAX;
	strncpy(d->section, "virtio-blk", sizeof(d->section) - 1);
	d->section[sizeof(d->section) - 1] = 0;
	strncpy(d->reason, reason, sizeof(d->reason) - 1);
	d->reason[sizeof(d->reason) - 1] = 0;
}

int sqb_vio_blk_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_blk_opts *opts, struct sqb_diag *diag)
{
	sqb_vio_dev *dev;
	struct blk *b;
	uint64_t features = 0;
	int rc;

	*out = NULL;
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || opts->fd < 0 ||
	    (opts->engine != SQB_VIO_ENGINE_SYNC && opts->engine != SQB_VIO_ENGINE_ASYNC) ||
	    opts->async_depth > SQB_VQ_MAX_SIZE) {
		diag_set(diag, "bad options (version, fd, engine or async_depth)");
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	b = calloc(1, sizeof(*b));
	if (!dev || !b) {
		free(dev);
		free(b);
		return -ENOMEM;
	}
	b->fd = fcntl(opts->fd, F_DUPFD_CLOEXEC, 0);
	if (b->fd < 0) {
		rc = -errno;
		diag_set(diag, "cannot duplicate the backing file descriptor");
		goto err;
	}
	rc = file_sectors(b->fd, &b->capacity);
	if (rc) {
		diag_set(diag, "cannot size the backing file");
		goto err_fd;
	}
	b->ro = opts->read_only != 0;
	b->cache = opts->cache;
	/* Zero padded; a 20-byte id has no NUL (virtio 1.x 5.2.6.1). */
	for (size_t i = 0; opts->drive_id && i < sizeof(b->id) && opts->drive_id[i]; i++)
		b->id[i] = opts->drive_id[i];
	/* Firecracker offers no SEG_MAX, so Linux sends one segment per request;
	 * with it, a request carries up to BLK_SEG_MAX pages in one preadv. */
	features |= 1ull << SQB_VIO_F_BLK_SEG_MAX;
	if (b->ro)
		features |= 1ull << SQB_VIO_F_BLK_RO;
	if (b->cache == SQB_VIO_CACHE_WRITEBACK)
		features |= 1ull << SQB_VIO_F_BLK_FLUSH;
	dev->priv = b;
	rc = sqb_vio_dev_init(dev, &blk_ops, host, features, opts->rate_limiter);
	if (rc) {
		diag_set(diag, "bad host callbacks (a rate limiter needs host.timer)");
		goto err_fd;
	}
	if (opts->engine == SQB_VIO_ENGINE_ASYNC) {
		rc = async_new(b, opts->async_depth ? opts->async_depth : SQB_VQ_MAX_SIZE, diag);
		if (rc) {
			pthread_mutex_destroy(&dev->lock);
			goto err_fd;
		}
	}
	*out = dev;
	return 0;
err_fd:
	close(b->fd);
err:
	free(b);
	free(dev);
	return rc;
}

int sqb_vio_blk_set_backing(sqb_vio_dev *dev, int fd)
{
	struct blk *b = dev->priv;
	uint64_t cap = 0;
	int nfd, rc;

	if (dev->ops != &blk_ops || fd < 0)
		return -EINVAL;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0)
		return -errno;
	rc = file_sectors(nfd, &cap);
	if (rc) {
		close(nfd);
		return rc;
	}
	pthread_mutex_lock(&dev->lock);
	/* Requests in flight read or write the old file: finish and publish
	 * them first, so none straddles the swap. */
	if (b->as)
		async_drain(dev, false);
	close(b->fd);
	b->fd = nfd;
	b->capacity = cap;
	sqb_vio_config_changed(dev);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

uint64_t sqb_vio_blk_capacity(sqb_vio_dev *dev)
{
	uint64_t cap = 0;

	if (dev->ops != &blk_ops)
		return 0;
	pthread_mutex_lock(&dev->lock);
	cap = ((struct blk *)dev->priv)->capacity;
	pthread_mutex_unlock(&dev->lock);
	return cap;
}

int sqb_vio_blk_io_fd(sqb_vio_dev *dev)
{
	struct blk *b;

	if (dev->ops != &blk_ops)
		return -EINVAL;
	b = dev->priv;
	return b->as ? b->as->efd : -1;
}

int sqb_vio_blk_io_ready(sqb_vio_dev *dev)
{
	struct blk *b;
	uint64_t n;

	if (dev->ops != &blk_ops)
		return -EINVAL;
	b = dev->priv;
	if (!b->as)
		return 0;
	pthread_mutex_lock(&dev->lock);
	/* Clear the count first: a completion after it fires the fd again. */
	if (read(b->as->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		sqb_debug("virtio-blk: completion eventfd: %s", strerror(errno));
	async_reap(dev, false);
	if (b->as->stalled && b->as->nfree) {
		b->as->stalled = false;
		sqb_vio_process_locked(dev, 0);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

unsigned int sqb_vio_blk_inflight(sqb_vio_dev *dev)
{
	struct blk *b;
	unsigned int n;

	if (dev->ops != &blk_ops)
		return 0;
	b = dev->priv;
	if (!b->as)
		return 0;
	pthread_mutex_lock(&dev->lock);
	n = b->as->inflight;
	pthread_mutex_unlock(&dev->lock);
	return n;
}
