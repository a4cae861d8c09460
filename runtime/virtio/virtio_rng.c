/* virtio-rng, the entropy device (device id 4; virtio 1.x section 5.4):
 * fills each chain's device-writable buffers from getrandom(), at most
 * 64 KiB per request, optionally behind the rate limiter (bytes and ops);
 * a load's entropy seed (docs/fleet.md "Entropy seed") serves the buffers
 * the guest left available, past the limiter, before its vCPUs run. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

#include "virtio_priv.h"

#define RNG_MAX_REQ (64u << 10)

struct rng {
	uint64_t seed_left; /* a seed in progress: bytes still to serve unthrottled */
	uint64_t seeded;    /* ... and those served so far */
};

static uint64_t fill_random(const struct sqb_vq_chain *c, uint64_t want)
{
	uint64_t done = 0;

	for (unsigned int i = c->nread; i < c->nseg && done < want; i++) {
		const struct sqb_vq_seg *s = &c->seg[i];
		uint64_t n = s->len < want - done ? s->len : want - done, got = 0;

		while (got < n) {
			ssize_t r = getrandom(s->host + got, n - got, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return done + got;
			got += (uint64_t)r;
		}
		done += got;
	}
	return done;
}

static int rng_process(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	struct rng *r = dev->priv;
	bool pushed = false;
	int rc;

	for (;;) {
		uint64_t want, got;
		bool seed = r->seed_left != 0;

		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		want = c->write_len < RNG_MAX_REQ ? c->write_len : RNG_MAX_REQ;
		if (seed && want > r->seed_left)
			want = r->seed_left;
		/* the seed is the host's gift: the guest's limiter does not pay for it */
		if (!seed && !sqb_vio_throttle_ok(dev, want, want != 0)) {
			sqb_vq_unpop(q);
			rc = 0;
			break;
		}
		got = fill_random(c, want);
		dev->m.entropy_bytes += got;
		dev->m.host_rng_fails += got < want;
		rc = sqb_vq_push(q, &dev->host.mem, c->head, (uint32_t)got, why);
		if (rc < 0)
			break;
		pushed = true;
		if (seed) {
			r->seeded += got;
			r->seed_left -= got < r->seed_left ? got : r->seed_left;
		}
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

static void rng_free(sqb_vio_dev *dev)
{
	free(dev->priv);
	dev->priv = NULL;
}

static const struct sqb_vio_ops rng_ops = {
    .device_id = SQB_VIO_ID_RNG,
    .num_queues = 1,
    .process = rng_process,
    .free = rng_free,
};

int sqb_vio_rng_seed(sqb_vio_dev *dev, uint64_t bytes, uint64_t *served)
{
	struct rng *r;

	*served = 0;
	if (!dev || dev->ops != &rng_ops)
		return -EINVAL;
	if (!bytes)
		return 0;
	pthread_mutex_lock(&dev->lock);
	r = dev->priv;
	r->seed_left = bytes;
	r->seeded = 0;
	sqb_vio_process_locked(dev, 0); /* nothing when the queue is not live */
	*served = r->seeded;
	r->seed_left = 0;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int sqb_vio_rng_new(sqb_vio_dev **out, const struct sqb_vio_host *host,
		    const struct sqb_vio_rng_opts *opts)
{
	sqb_vio_dev *dev;
	int rc;

	*out = NULL;
	if (opts && opts->version != SQB_VIO_OPTS_VERSION)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	rc = sqb_vio_dev_init(dev, &rng_ops, host, 0, opts ? opts->rate_limiter : NULL);
	if (rc) {
		free(dev);
		return rc;
	}
	dev->priv = calloc(1, sizeof(struct rng));
	if (!dev->priv) {
		sqb_vio_dev_free(dev);
		return -ENOMEM;
	}
	*out = dev;
	return 0;
}
