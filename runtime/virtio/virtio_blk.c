/* virtio-blk (device id 2; virtio 1.x section 5.2) with Firecracker's
 * semantics: IN, OUT, FLUSH (fdatasync with cache Writeback, where FLUSH is
 * offered), GET_ID; read-only enforced with IOERR; synchronous preadv/pwritev
 * inside the notify call, so nothing is ever in flight ([F-101]). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

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

struct blk {
	int fd;
	bool ro;
	enum sqb_vio_cache cache;
	uint64_t capacity; /* 512-byte sectors */
	char id[SQB_VIO_BLK_ID_BYTES];
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
static void count_req(sqb_vio_dev *dev, const struct sqb_vq_chain *c, uint32_t type, uint8_t st,
		      uint64_t t0)
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
		m->read_bytes += c->write_len - 1;
		sqb_vio_lat_add(&m->read_lat, mono_us() - t0);
	} else if (type == BLK_T_OUT) {
		m->write_count++;
		m->write_bytes += c->read_len - HDR_LEN;
		sqb_vio_lat_add(&m->write_lat, mono_us() - t0);
	} else if (type == BLK_T_FLUSH) {
		m->flush_count++;
	}
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

		rc = sqb_vq_pop(q, &dev->host.mem, c, why);
		if (rc < 0)
			break;
		if (rc == 0) {
			rc = sqb_vq_enable_notify(q, &dev->host.mem, why);
			if (rc > 0)
				continue;
			break;
		}
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

			st = type == UINT32_MAX ? BLK_S_IOERR
						: blk_exec(b, c, type, sector, &to_mem);
			sqb_vq_write_bytes(c, c->write_len - 1, &st, 1);
			used = to_mem + 1;
			count_req(dev, c, type, st, t0);
		} else {
			dev->m.invalid_reqs++;
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, (uint32_t)used, why);
		if (rc < 0)
			break;
		pushed = true;
	}
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
		close(b->fd);
		free(b);
	}
}

static const struct sqb_vio_ops blk_ops = {
    .device_id = SQB_VIO_ID_BLK,
    .num_queues = 1,
    .config_read = blk_config_read,
    .config_len = blk_config_len,
    .process = blk_process,
    .state = blk_state,
    .free = blk_free,
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
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || opts->fd < 0) {
		diag_set(diag, "bad options (version or fd)");
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
