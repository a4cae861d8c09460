/* virtio-pmem (device id 27; virtio 1.3 section 5.19): a host file mapped
 * into guest-physical space by the integrator (the guest reads and writes it
 * with plain loads and stores, no queue involved); the device itself only
 * answers config space {start, size} (le64 each) and FLUSH requests on its
 * one queue, which make the file durable (fsync) and answer a le32 status.
 *
 * A request is Firecracker's shape: a device-readable 4-byte type (0 =
 * FLUSH), then a device-writable 4-byte status.  A chain of another shape
 * is a guest bug: it is returned with used length 0 and no status written
 * (as Firecracker); an unknown type with a proper status slot gets status
 * -1 (EIO for the Linux driver).  Rate limiting is Firecracker's: one op and
 * the file's length in bytes per batch of requests. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio_priv.h"

#define PMEM_REQ_FLUSH	  0u
#define PMEM_RESP_OK	  0
#define PMEM_RESP_FAILURE (-1)

struct pmem {
	int fd; /* the device's dup of the backing file (fsync), -1 read-only */
	uint64_t file_len;
	uint64_t start, size; /* config space */
};

static uint32_t pmem_config_len(sqb_vio_dev *dev)
{
	(void)dev;
	return 16;
}

static void pmem_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct pmem *p = dev->priv;
	uint8_t cs[16];

	for (int i = 0; i < 8; i++) {
		cs[i] = (uint8_t)(p->start >> (8 * i));
		cs[8 + i] = (uint8_t)(p->size >> (8 * i));
	}
	memcpy(dst, cs + off, len);
}

/* One chain: -1 when its shape is wrong (used length 0), else the status
 * written (used length 4). */
static int pmem_request(sqb_vio_dev *dev, const struct sqb_vq_chain *c, int *flush_rc)
{
	struct pmem *p = dev->priv;
	uint8_t st[4];
	uint32_t type;
	int32_t status;

	if (c->nseg < 2 || c->nread != 1 || c->seg[0].len != 4 || !c->seg[1].write ||
	    c->seg[1].len != 4) {
		dev->m.invalid_reqs++;
		return -1;
	}
	memcpy(&type, c->seg[0].host, 4);
	type = le32toh(type);
	if (type != PMEM_REQ_FLUSH) {
		dev->m.invalid_reqs++;
		status = PMEM_RESP_FAILURE;
	} else {
		/* one fsync answers every FLUSH of a batch (Firecracker caches
		 * the result likewise): they all asked for the same thing */
		if (*flush_rc > 0)
			*flush_rc = p->fd >= 0 && fsync(p->fd) ? -errno : 0;
		dev->m.flush_count++;
		dev->m.exec_fails += *flush_rc < 0;
		status = *flush_rc < 0 ? PMEM_RESP_FAILURE : PMEM_RESP_OK;
	}
	for (int i = 0; i < 4; i++)
		st[i] = (uint8_t)((uint32_t)status >> (8 * i));
	memcpy(c->seg[1].host, st, 4);
	return 0;
}

static int pmem_process(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	struct pmem *p = dev->priv;
	bool pushed = false, charged = false;
	int rc, flush_rc = 1;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		if (!charged && !sqb_vio_throttle_ok(dev, p->file_len, true)) {
			sqb_vq_unpop(q);
			rc = 0;
			break;
		}
		charged = true;
		rc = pmem_request(dev, c, &flush_rc);
		rc = sqb_vq_push(q, &dev->host.mem, c->head, rc < 0 ? 0 : 4, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

/* The region is the file itself, not guest RAM: a restore must find it at
 * the same place and of the same size, or the guest's view is wrong. */
static void pmem_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *b)
{
	struct pmem *p = dev->priv;

	sqb_vio_sv_cmp_u64(b, p->start, "pmem start");
	sqb_vio_sv_cmp_u64(b, p->size, "pmem size");
}

static void pmem_quiesce(sqb_vio_dev *dev)
{
	struct pmem *p = dev->priv;

	/* a snapshot does not carry the region: the file must hold it */
	if (p->fd >= 0 && fsync(p->fd))
		dev->quiesce_err = -errno;
}

static void pmem_free(sqb_vio_dev *dev)
{
	struct pmem *p = dev->priv;

	if (p && p->fd >= 0)
		close(p->fd);
	free(p);
	dev->priv = NULL;
}

static const struct sqb_vio_ops pmem_ops = {
    .device_id = SQB_VIO_ID_PMEM,
    .num_queues = 1,
    .config_read = pmem_config_read,
    .config_len = pmem_config_len,
    .process = pmem_process,
    .state = pmem_state,
    .free = pmem_free,
    .quiesce = pmem_quiesce,
};

int sqb_vio_pmem_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		     const struct sqb_vio_pmem_opts *opts)
{
	struct pmem *p;
	sqb_vio_dev *dev;
	int rc;

	*out = NULL;
	if (!opts || opts->version != SQB_VIO_OPTS_VERSION || !opts->file_len ||
	    opts->size < opts->file_len)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	rc = sqb_vio_dev_init(dev, &pmem_ops, host, 0, opts->rate_limiter);
	if (rc) {
		free(dev);
		return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		sqb_vio_dev_free(dev);
		return -ENOMEM;
	}
	p->fd = -1;
	dev->priv = p;
	if (!opts->read_only && (p->fd = fcntl(opts->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		rc = -errno;
		sqb_vio_dev_free(dev);
		return rc;
	}
	p->file_len = opts->file_len;
	p->start = opts->start;
	p->size = opts->size;
	*out = dev;
	return 0;
}
