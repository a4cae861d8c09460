/* Multi-queue driver side for the virtio-net and virtio-vsock tests: ring
 * layout per virtio 1.x section 2.7 in the fake guest RAM of vio_test_util. */
#include <string.h>

#include "vio_test_mq.h"

uint32_t mq_get32(struct vt_env *e, uint64_t gpa)
{
	uint8_t *p = vt_ptr(e, gpa);
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t mq_get64(struct vt_env *e, uint64_t gpa)
{
	return mq_get32(e, gpa) | (uint64_t)mq_get32(e, gpa + 4) << 32;
}

void mq_put32(struct vt_env *e, uint64_t gpa, uint32_t v)
{
	uint8_t *p = vt_ptr(e, gpa);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void mq_put64(struct vt_env *e, uint64_t gpa, uint64_t v)
{
	mq_put32(e, gpa, (uint32_t)v);
	mq_put32(e, gpa + 4, (uint32_t)(v >> 32));
}

uint32_t mq_init(struct mq_drv *d, struct vt_env *e, sqb_vio_dev *dev, unsigned int nq,
		 uint16_t num, uint64_t want)
{
	uint64_t offered;
	uint32_t ok = SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_FEATURES_OK;

	memset(d, 0, sizeof(*d));
	d->e = e;
	d->dev = dev;
	d->nq = nq;
	vt_w32(dev, 0x70, 0);
	vt_w32(dev, 0x70, SQB_VIO_S_ACKNOWLEDGE);
	vt_w32(dev, 0x70, SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER);
	vt_w32(dev, 0x14, 0);
	offered = vt_r32(dev, 0x10);
	vt_w32(dev, 0x14, 1);
	offered |= (uint64_t)vt_r32(dev, 0x10) << 32;
	d->acked = offered & (want | 1ull << SQB_VIO_F_VERSION_1);
	vt_w32(dev, 0x24, 0);
	vt_w32(dev, 0x20, (uint32_t)d->acked);
	vt_w32(dev, 0x24, 1);
	vt_w32(dev, 0x20, (uint32_t)(d->acked >> 32));
	vt_w32(dev, 0x70, ok);
	if (!(vt_r32(dev, 0x70) & SQB_VIO_S_FEATURES_OK))
		return vt_r32(dev, 0x70);
	for (unsigned int i = 0; i < nq; i++) {
		struct mq_q *q = &d->q[i];
		q->desc = MQ_Q_BASE + i * 0x4000ull;
		q->avail = q->desc + 0x1000;
		q->used = q->desc + 0x2000;
		q->num = num;
		memset(vt_ptr(e, q->desc), 0, 0x4000);
		vt_w32(dev, 0x30, i);
		vt_w32(dev, 0x38, num);
		vt_w32(dev, 0x80, (uint32_t)q->desc);
		vt_w32(dev, 0x84, 0);
		vt_w32(dev, 0x90, (uint32_t)q->avail);
		vt_w32(dev, 0x94, 0);
		vt_w32(dev, 0xa0, (uint32_t)q->used);
		vt_w32(dev, 0xa4, 0);
		vt_w32(dev, 0x44, 1);
	}
	vt_w32(dev, 0x70, ok | SQB_VIO_S_DRIVER_OK);
	return vt_r32(dev, 0x70);
}

void mq_put_desc(struct mq_drv *d, unsigned int qi, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	uint64_t g = d->q[qi].desc + 16ull * i;

	mq_put64(d->e, g, addr);
	mq_put32(d->e, g + 8, len);
	vt_put16(d->e, g + 12, flags);
	vt_put16(d->e, g + 14, next);
}

void mq_publish(struct mq_drv *d, unsigned int qi, uint16_t head)
{
	struct mq_q *q = &d->q[qi];

	vt_put16(d->e, q->avail + 4 + 2ull * (q->avail_idx % q->num), head);
	q->avail_idx++;
	vt_put16(d->e, q->avail + 2, q->avail_idx);
}

uint16_t mq_add(struct mq_drv *d, unsigned int qi, const struct vt_seg *segs, unsigned int n)
{
	struct mq_q *q = &d->q[qi];
	uint16_t head = q->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % q->num);
		uint16_t nx = (uint16_t)((head + i + 1) % q->num);
		uint16_t fl = (uint16_t)((i + 1 < n ? 1 : 0) | (segs[i].write ? 2 : 0));
		mq_put_desc(d, qi, idx, segs[i].gpa, segs[i].len, fl, nx);
	}
	q->next_desc = (uint16_t)((head + n) % q->num);
	mq_publish(d, qi, head);
	return head;
}

bool mq_used(struct mq_drv *d, unsigned int qi, uint32_t *id, uint32_t *len)
{
	struct mq_q *q = &d->q[qi];
	uint64_t e;

	if (vt_get16(d->e, q->used + 2) == q->last_used)
		return false;
	e = q->used + 4 + 8ull * (q->last_used % q->num);
	*id = mq_get32(d->e, e);
	*len = mq_get32(d->e, e + 4);
	q->last_used++;
	return true;
}
