/* virtio-balloon, the memory balloon (device id 5; virtio 1.x section 5.5)
 * with Firecracker's queue layout and features: inflate, deflate, statistics,
 * free page hinting and free page reporting; inflated, hinted and reported
 * ranges go to the integrator's discard() (docs/virtio.md, state [F-120]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "virtio_priv.h"

#define PFN_SHIFT     12
#define PAGES_PER_MIB 256u
#define STAT_LEN      10u /* struct virtio_balloon_stat: le16 tag, le64 val */
#define CFG_LEN	      12u /* num_pages, actual, free_page_hint_cmd_id */
#define LOG_BURST     8u  /* hostile-input lines logged per batch */

enum { Q_INFLATE = 0, Q_DEFLATE = 1 };

/* What the state record carries besides the transport ([F-120]). */
struct bl_vars {
	uint32_t num_pages, actual_pages, cmd_id;
	uint16_t interval_s;
	uint32_t host_cmd, guest_cmd, last_cmd_id;
	bool has_guest_cmd, ack_on_finish;
	struct sqb_vio_balloon_stats stats;
};

struct balloon {
	struct sqb_vio_ops ops;	       /* per instance: the queue count depends on features */
	int q_stats, q_hint, q_report; /* queue index, or -1 */
	uint64_t guest_pages;
	struct sqb_vio_discard discard;
	struct bl_vars v;
	bool stats_held; /* the driver's stats buffer is with the device */
	uint16_t stats_head;
	struct bl_vars staged; /* a restore's values until restored() commits */
	struct sqb_vio_balloon_counters n;
	uint32_t pfn[SQB_VIO_BALLOON_MAX_PFNS];
};

static struct balloon *bl(sqb_vio_dev *dev)
{
	return dev->priv;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Shell sort of at most 256 PFNs: glibc's qsort asks sysinfo() for the
 * machine's memory, which the event loop's seccomp filter forbids. */
static void sort_u32(uint32_t *v, unsigned int n)
{
	static const unsigned int gaps[] = {57, 23, 10, 4, 1};

	for (unsigned int g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
		unsigned int gap = gaps[g];

		for (unsigned int i = gap; i < n; i++) {
			uint32_t x = v[i];
			unsigned int j = i;

			for (; j >= gap && v[j - gap] > x; j -= gap)
				v[j] = v[j - gap];
			v[j] = x;
		}
	}
}

/* One range through the integrator; a refusal is logged, never fatal. */
static void discard(struct balloon *b, uint64_t gpa, uint64_t len, const char *what,
		    unsigned int *logged)
{
	int rc = b->discard.discard ? b->discard.discard(b->discard.opaque, gpa, len) : 0;

	if (!rc)
		return;
	if (rc == -EFAULT)
		b->n.bad_pfns += len >> PFN_SHIFT;
	else
		b->n.discard_fails++;
	if ((*logged)++ < LOG_BURST)
		sqb_warn("virtio-balloon: %s: guest range 0x%llx+0x%llx %s: ignored", what,
			 (unsigned long long)gpa, (unsigned long long)len,
			 rc == -EFAULT ? "is not guest RAM" : "could not be discarded");
}

/* Sort, merge runs of consecutive PFNs, discard each run (Firecracker's
 * compact_page_frame_numbers, so that a 256-page request is one call). */
static void inflate_pfns(struct balloon *b, uint32_t *pfn, unsigned int n, unsigned int *logged)
{
	unsigned int i = 0;

	sort_u32(pfn, n);
	while (i < n) {
		unsigned int j = i + 1;

		while (j < n && (pfn[j] == pfn[j - 1] || pfn[j] == pfn[j - 1] + 1))
			j++;
		/* a duplicate PFN does not widen the run: count distinct pages */
		discard(b, (uint64_t)pfn[i] << PFN_SHIFT,
			((uint64_t)pfn[j - 1] - pfn[i] + 1) << PFN_SHIFT, "inflate", logged);
		i = j;
	}
}

static int pfn_queue(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct balloon *b = bl(dev);
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	unsigned int logged = 0;
	bool pushed = false;
	int rc;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		if (c->read_len % 4 || c->read_len > 4ull * SQB_VIO_BALLOON_MAX_PFNS) {
			if (logged++ < LOG_BURST)
				sqb_warn("virtio-balloon: %s buffer of %llu bytes is not a list of "
					 "at most %u PFNs: skipped",
					 qi == Q_INFLATE ? "inflate" : "deflate",
					 (unsigned long long)c->read_len, SQB_VIO_BALLOON_MAX_PFNS);
		} else if (qi == Q_INFLATE) {
			unsigned int n = (unsigned int)(c->read_len / 4);
			uint8_t raw[4 * SQB_VIO_BALLOON_MAX_PFNS];

			sqb_vq_read_bytes(c, 0, raw, c->read_len);
			for (unsigned int i = 0; i < n; i++)
				b->pfn[i] = le32(raw + 4 * i);
			inflate_pfns(b, b->pfn, n, &logged);
			b->n.inflated_pages += n;
		} else {
			/* deflate: the pages come back on the guest's next touch */
			b->n.deflated_pages += c->read_len / 4;
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, 0, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

static void stats_parse(struct balloon *b, const struct sqb_vq_chain *c)
{
	uint8_t e[STAT_LEN];
	unsigned int unknown = 0;

	for (uint64_t off = 0; off + STAT_LEN <= c->read_len; off += STAT_LEN) {
		uint16_t tag;
		uint64_t val = 0;

		sqb_vq_read_bytes(c, off, e, STAT_LEN);
		tag = (uint16_t)(e[0] | e[1] << 8);
		for (int i = 7; i >= 0; i--)
			val = val << 8 | e[2 + i];
		if (tag >= SQB_VIO_BALLOON_NSTATS) {
			b->n.bad_stats++;
			if (unknown++ == 0)
				sqb_debug("virtio-balloon: unknown statistics tag %u ignored", tag);
			continue;
		}
		b->v.stats.val[tag] = val;
		b->v.stats.have |= 1u << tag;
	}
	b->n.stats_updates++;
}

/* Give the held buffer back (used length 0): the driver refills it. */
static int stats_release(sqb_vio_dev *dev, const char **why)
{
	struct balloon *b = bl(dev);
	int rc;

	if (!b->stats_held)
		return -ENOENT;
	b->stats_held = false;
	rc = sqb_vq_push(&dev->vq[b->q_stats], &dev->host.mem, b->stats_head, 0, why);
	if (rc == 0)
		sqb_vio_signal_used(dev, (unsigned int)b->q_stats);
	return rc;
}

static int stats_queue(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct balloon *b = bl(dev);
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	int rc;

	for (;;) {
		rc = sqb_vq_pop(q, &dev->host.mem, c, why);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			rc = sqb_vq_enable_notify(q, &dev->host.mem, why);
			if (rc > 0)
				continue;
			return rc < 0 ? rc : 0;
		}
		if (b->stats_held) {
			/* virtio 5.5.6.3: one buffer at a time; give the old one back */
			sqb_warn("virtio-balloon: driver queued a second statistics buffer");
			if ((rc = stats_release(dev, why)) < 0)
				return rc;
		}
		if (c->read_len > SQB_VIO_BALLOON_MAX_STAT_LEN) {
			b->n.bad_stats++;
			sqb_warn("virtio-balloon: statistics buffer of %llu bytes > %u: not read",
				 (unsigned long long)c->read_len, SQB_VIO_BALLOON_MAX_STAT_LEN);
		} else {
			stats_parse(b, c);
		}
		b->stats_held = true;
		b->stats_head = c->head;
	}
}

/* Hinting (virtio 5.5.6.4 / Linux's free page hint): a 4-byte buffer is
 * the guest's command id; other buffers are free ranges of the run whose
 * id the host asked for. */
static int hint_queue(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct balloon *b = bl(dev);
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	unsigned int logged = 0;
	bool pushed = false, complete = false;
	int rc;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		for (unsigned int i = 0; i < c->nseg; i++) {
			const struct sqb_vq_seg *s = &c->seg[i];
			uint32_t host = b->v.host_cmd;

			if (s->len == 4 && s->host) {
				b->v.guest_cmd = le32(s->host);
				b->v.has_guest_cmd = true;
				complete = b->v.guest_cmd == SQB_VIO_BALLOON_HINT_STOP ||
					   b->v.guest_cmd == SQB_VIO_BALLOON_HINT_DONE;
				continue;
			}
			if (host == SQB_VIO_BALLOON_HINT_STOP ||
			    host == SQB_VIO_BALLOON_HINT_DONE || !b->v.has_guest_cmd ||
			    b->v.guest_cmd != host || !s->len)
				continue; /* no run, or a range of an older run */
			/* whole pages only: a partial page may hold live data */
			{
				uint64_t start = (s->gpa + 4095) & ~4095ull;
				uint64_t end = (s->gpa + s->len) & ~4095ull;
				if (end > start) {
					discard(b, start, end - start, "hinting", &logged);
					b->n.hinted_bytes += end - start;
				}
			}
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, 0, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	if (complete && b->v.ack_on_finish && b->v.host_cmd != SQB_VIO_BALLOON_HINT_DONE) {
		b->v.host_cmd = b->v.cmd_id = SQB_VIO_BALLOON_HINT_DONE;
		sqb_vio_config_changed(dev);
	}
	return rc < 0 ? rc : 0;
}

/* Reporting (virtio 5.5.6.5): every buffer is a free range to discard. */
static int report_queue(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct balloon *b = bl(dev);
	struct sqb_vq *q = &dev->vq[qi];
	struct sqb_vq_chain *c = &dev->chain;
	unsigned int logged = 0;
	bool pushed = false;
	int rc;

	for (;;) {
		rc = sqb_vq_pop_or_arm(q, &dev->host.mem, c, why);
		if (rc <= 0)
			break;
		for (unsigned int i = 0; i < c->nseg; i++) {
			const struct sqb_vq_seg *s = &c->seg[i];
			uint64_t start = (s->gpa + 4095) & ~4095ull;
			uint64_t end = (s->gpa + s->len) & ~4095ull;

			if (s->len && end > start) {
				discard(b, start, end - start, "free page reporting", &logged);
				b->n.reported_bytes += end - start;
			}
		}
		rc = sqb_vq_push(q, &dev->host.mem, c->head, 0, why);
		if (rc < 0)
			break;
		pushed = true;
	}
	if (pushed)
		sqb_vio_signal_used(dev, qi);
	return rc < 0 ? rc : 0;
}

static int bl_process(sqb_vio_dev *dev, unsigned int qi, const char **why)
{
	struct balloon *b = bl(dev);

	if (qi == Q_INFLATE || qi == Q_DEFLATE)
		return pfn_queue(dev, qi, why);
	if ((int)qi == b->q_stats)
		return stats_queue(dev, qi, why);
	if ((int)qi == b->q_hint)
		return hint_queue(dev, qi, why);
	if ((int)qi == b->q_report)
		return report_queue(dev, qi, why);
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t bl_config_len(sqb_vio_dev *dev)
{
	(void)dev;
	return CFG_LEN;
}

static void bl_config_read(sqb_vio_dev *dev, uint32_t off, uint8_t *dst, uint32_t len)
{
	struct balloon *b = bl(dev);
	uint8_t cfg[CFG_LEN];

	put32(cfg, b->v.num_pages);
	put32(cfg + 4, b->v.actual_pages);
	put32(cfg + 8, b->v.cmd_id);
	memcpy(dst, cfg + off, len);
}

/* Only `actual` belongs to the driver (virtio 5.5.4); num_pages and the
 * hint command id are the device's. */
static void bl_config_write(sqb_vio_dev *dev, uint32_t off, const uint8_t *src, uint32_t len)
{
	struct balloon *b = bl(dev);
	uint8_t cfg[4];

	if (off < 4 || off + len > 8) {
		sqb_debug("virtio-balloon: driver write to read-only config bytes %u+%u ignored",
			  off, len);
		return;
	}
	put32(cfg, b->v.actual_pages);
	memcpy(cfg + (off - 4), src, len);
	b->v.actual_pages = le32(cfg);
}

/* Firecracker's _reset: the guest's view starts over, the target stays. */
static void bl_reset(sqb_vio_dev *dev)
{
	struct balloon *b = bl(dev);

	b->v.actual_pages = 0;
	b->v.cmd_id = SQB_VIO_BALLOON_HINT_STOP;
	b->v.host_cmd = b->v.guest_cmd = b->v.last_cmd_id = 0;
	b->v.has_guest_cmd = b->v.ack_on_finish = false;
	memset(&b->v.stats, 0, sizeof(b->v.stats));
	b->stats_held = false;
}

/* [F-101]: a held statistics buffer is handed back before a save. */
static void bl_quiesce(sqb_vio_dev *dev)
{
	const char *why = NULL;

	if (bl(dev)->stats_held && stats_release(dev, &why) < 0)
		sqb_warn("virtio-balloon: statistics buffer not returned at quiesce: %s",
			 why ? why : "ring unusable");
}

/* Device record, 192 bytes ([F-120]). */
static void bl_state(sqb_vio_dev *dev, struct sqb_vio_sbuf *sb)
{
	struct balloon *b = bl(dev);
	struct bl_vars *v = sb->load ? &b->staged : &b->v;
	size_t at = sb->off;
	uint32_t flags = (v->has_guest_cmd ? 1u : 0) | (v->ack_on_finish ? 2u : 0);
	uint32_t interval = v->interval_s;

	if (sb->load)
		memset(v, 0, sizeof(*v));
	sqb_vio_sv_u32(sb, &v->num_pages, "balloon num_pages");
	sqb_vio_sv_u32(sb, &v->actual_pages, "balloon actual_pages");
	sqb_vio_sv_u32(sb, &v->cmd_id, "balloon free_page_hint_cmd_id");
	sqb_vio_sv_u32(sb, &interval, "balloon stats_polling_interval_s");
	sqb_vio_sv_u32(sb, &flags, "balloon flags");
	sqb_vio_sv_u32(sb, &v->host_cmd, "balloon hint host_cmd");
	sqb_vio_sv_u32(sb, &v->guest_cmd, "balloon hint guest_cmd");
	sqb_vio_sv_u32(sb, &v->last_cmd_id, "balloon hint last_cmd_id");
	sqb_vio_sv_u32(sb, &v->stats.have, "balloon stats_present");
	sqb_vio_sv_reserved(sb, 28, "balloon reserved");
	for (unsigned int i = 0; i < SQB_VIO_BALLOON_NSTATS; i++)
		sqb_vio_sv_u64(sb, &v->stats.val[i], "balloon stats value");
	if (!sb->load || sb->err)
		return;
	v->interval_s = (uint16_t)interval;
	v->has_guest_cmd = flags & 1;
	v->ack_on_finish = (flags >> 1) & 1;
	if (flags & ~3u)
		return sqb_vio_sv_fail(sb, -SQB_ERESERVED, at + 16, "balloon: reserved flag set");
	if (v->num_pages > b->guest_pages)
		return sqb_vio_sv_fail(sb, -SQB_ECORRUPT, at,
				       "balloon num_pages %u exceeds guest memory (%llu pages)",
				       v->num_pages, (unsigned long long)b->guest_pages);
	if (interval > UINT16_MAX || (interval != 0) != (b->q_stats >= 0))
		return sqb_vio_sv_fail(sb, -SQB_EMISMATCH, at + 12,
				       "balloon stats_polling_interval_s %u does not match the "
				       "device's statistics setting",
				       interval);
	if (v->stats.have >> SQB_VIO_BALLOON_NSTATS)
		return sqb_vio_sv_fail(sb, -SQB_ERESERVED, at + 32,
				       "balloon stats_present has bits above tag 15");
}

static void bl_restored(sqb_vio_dev *dev)
{
	struct balloon *b = bl(dev);

	b->v = b->staged;
	b->stats_held = false;
}

static void bl_free(sqb_vio_dev *dev)
{
	free(dev->priv);
}

int sqb_vio_balloon_new(sqb_vio_dev **out, const struct sqb_vio_balloon_opts *o,
			const struct sqb_vio_host *host, struct sqb_diag *diag)
{
	struct balloon *b;
	sqb_vio_dev *dev;
	uint64_t feat = 0;
	int nq = 2, rc;

	*out = NULL;
	if (!o || o->version != SQB_VIO_OPTS_VERSION)
		return -EINVAL;
	if (o->amount_mib > o->guest_mib || (uint64_t)o->amount_mib * PAGES_PER_MIB > UINT32_MAX) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Amount of pages requested is too large.");
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	dev = calloc(1, sizeof(*dev));
	if (!b || !dev) {
		free(b);
		free(dev);
		return -ENOMEM;
	}
	b->q_stats = b->q_hint = b->q_report = -1;
	if (o->deflate_on_oom)
		feat |= 1ull << SQB_VIO_F_BALLOON_DEFLATE_ON_OOM;
	if (o->stats_polling_interval_s) {
		feat |= 1ull << SQB_VIO_F_BALLOON_STATS_VQ;
		b->q_stats = nq++;
	}
	if (o->free_page_hinting) {
		feat |= 1ull << SQB_VIO_F_BALLOON_FREE_PAGE_HINT;
		b->q_hint = nq++;
	}
	if (o->free_page_reporting) {
		feat |= 1ull << SQB_VIO_F_BALLOON_PAGE_REPORTING;
		b->q_report = nq++;
	}
	b->ops = (struct sqb_vio_ops){
	    .device_id = SQB_VIO_ID_BALLOON,
	    .num_queues = (uint16_t)nq,
	    .config_read = bl_config_read,
	    .config_len = bl_config_len,
	    .process = bl_process,
	    .state = bl_state,
	    .free = bl_free,
	    .quiesce = bl_quiesce,
	    .restored = bl_restored,
	    .config_write = bl_config_write,
	    .reset = bl_reset,
	};
	b->guest_pages = o->guest_mib * PAGES_PER_MIB;
	b->discard = o->discard;
	b->v.num_pages = o->amount_mib * PAGES_PER_MIB;
	b->v.interval_s = o->stats_polling_interval_s;
	dev->priv = b;
	rc = sqb_vio_dev_init(dev, &b->ops, host, feat, NULL);
	if (rc) {
		free(b);
		free(dev);
		return rc;
	}
	*out = dev;
	return 0;
}

static struct balloon *lock_bl(sqb_vio_dev *dev)
{
	if (!dev || dev->ops->device_id != SQB_VIO_ID_BALLOON)
		return NULL;
	pthread_mutex_lock(&dev->lock);
	return bl(dev);
}

int sqb_vio_balloon_set_target(sqb_vio_dev *dev, uint32_t amount_mib)
{
	struct balloon *b = lock_bl(dev);
	int rc = 0;

	if (!b)
		return -EINVAL;
	if (!(dev->status & SQB_VIO_S_DRIVER_OK))
		rc = -EAGAIN; /* Firecracker: DeviceNotActive */
	else if ((uint64_t)amount_mib * PAGES_PER_MIB > b->guest_pages)
		rc = -EINVAL; /* checked first, as Firecracker's update_size */
	else if ((uint64_t)amount_mib * PAGES_PER_MIB > UINT32_MAX)
		rc = -ERANGE;
	if (!rc) {
		b->v.num_pages = amount_mib * PAGES_PER_MIB;
		sqb_vio_config_changed(dev);
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

uint32_t sqb_vio_balloon_target_mib(sqb_vio_dev *dev)
{
	struct balloon *b = lock_bl(dev);
	uint32_t v;

	if (!b)
		return 0;
	v = b->v.num_pages / PAGES_PER_MIB;
	pthread_mutex_unlock(&dev->lock);
	return v;
}

int sqb_vio_balloon_get_stats(sqb_vio_dev *dev, struct sqb_vio_balloon_stats *st)
{
	struct balloon *b = lock_bl(dev);
	int rc = 0;

	if (!b)
		return -EINVAL;
	if (b->q_stats < 0) {
		rc = -ENODATA;
	} else {
		*st = b->v.stats;
		st->target_pages = b->v.num_pages;
		st->actual_pages = b->v.actual_pages;
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int sqb_vio_balloon_stats_tick(sqb_vio_dev *dev)
{
	struct balloon *b = lock_bl(dev);
	const char *why = NULL;
	int rc;

	if (!b)
		return -EINVAL;
	/* Linux (6.1 init_vqs) queues its first statistics buffer and notifies
	 * before it sets DRIVER_OK, when the transport drops the notify: look
	 * at the queue again (nothing when it is not live yet). */
	if (b->q_stats >= 0 && !b->stats_held)
		sqb_vio_process_locked(dev, (unsigned int)b->q_stats);
	rc = b->q_stats < 0 ? -ENODATA : stats_release(dev, &why);
	if (rc == -SQB_ECORRUPT)
		sqb_warn("virtio-balloon: statistics buffer not returned: %s", why);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

uint16_t sqb_vio_balloon_stats_interval(sqb_vio_dev *dev)
{
	struct balloon *b = lock_bl(dev);
	uint16_t v;

	if (!b)
		return 0;
	v = b->v.interval_s;
	pthread_mutex_unlock(&dev->lock);
	return v;
}

int sqb_vio_balloon_set_stats_interval(sqb_vio_dev *dev, uint16_t interval_s)
{
	struct balloon *b = lock_bl(dev);
	const char *why = NULL;
	int rc = 0;

	if (!b)
		return -EINVAL;
	if (interval_s != b->v.interval_s) {
		if (!interval_s || !b->v.interval_s) {
			rc = -EPERM;
		} else {
			b->v.interval_s = interval_s;
			(void)stats_release(dev, &why); /* the first update at once */
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

static int hint_set(sqb_vio_dev *dev, struct balloon *b, uint32_t cmd)
{
	if (!(dev->status & SQB_VIO_S_DRIVER_OK))
		return -EAGAIN; /* Firecracker: DeviceNotActive */
	b->v.host_cmd = b->v.cmd_id = cmd;
	sqb_vio_config_changed(dev);
	return 0;
}

int sqb_vio_balloon_hint_start(sqb_vio_dev *dev, int acknowledge_on_stop)
{
	struct balloon *b = lock_bl(dev);
	uint32_t id;
	int rc;

	if (!b)
		return -EINVAL;
	if (b->q_hint < 0) {
		rc = -ENOTSUP;
	} else {
		/* ids 0 and 1 are STOP and DONE */
		id = b->v.last_cmd_id + 1;
		if (id <= SQB_VIO_BALLOON_HINT_DONE)
			id = 2;
		rc = hint_set(dev, b, id);
		if (!rc) {
			b->v.last_cmd_id = id;
			b->v.ack_on_finish = acknowledge_on_stop != 0;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int sqb_vio_balloon_hint_stop(sqb_vio_dev *dev)
{
	struct balloon *b = lock_bl(dev);
	int rc;

	if (!b)
		return -EINVAL;
	rc = b->q_hint < 0 ? -ENOTSUP : hint_set(dev, b, SQB_VIO_BALLOON_HINT_DONE);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int sqb_vio_balloon_hint_status(sqb_vio_dev *dev, uint32_t *host_cmd, uint32_t *guest_cmd,
				int *has_guest_cmd)
{
	struct balloon *b = lock_bl(dev);
	int rc = 0;

	if (!b)
		return -EINVAL;
	if (b->q_hint < 0) {
		rc = -ENOTSUP;
	} else {
		*host_cmd = b->v.host_cmd;
		*guest_cmd = b->v.guest_cmd;
		*has_guest_cmd = b->v.has_guest_cmd;
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

void sqb_vio_balloon_counters(sqb_vio_dev *dev, struct sqb_vio_balloon_counters *c)
{
	struct balloon *b = lock_bl(dev);

	memset(c, 0, sizeof(*c));
	if (!b)
		return;
	*c = b->n;
	pthread_mutex_unlock(&dev->lock);
}
