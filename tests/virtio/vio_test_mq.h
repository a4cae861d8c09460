/* Test kit for the multi-queue devices (virtio-net, virtio-vsock): a driver
 * that sets up several split virtqueues in the fake guest RAM of
 * vio_test_util.h, as a virtio 1.x driver would (section 2.7 and 4.2.3). */
#ifndef SQB_VIO_TEST_MQ_H
#define SQB_VIO_TEST_MQ_H

#include "vio_test_util.h"

#define MQ_MAX_Q  5 /* balloon: inflate, deflate, stats, hinting, reporting */
#define MQ_Q_BASE 0x20000ull /* queue i: desc at base + i*0x4000, avail +0x1000, used +0x2000 */
#define MQ_BUF(i) (0x40000ull + (uint64_t)(i)*0x40000ull) /* 256 KiB of buffers per queue */

struct mq_q {
	uint64_t desc, avail, used;
	uint16_t num, avail_idx, last_used, next_desc;
};

struct mq_drv {
	struct vt_env *e;
	sqb_vio_dev *dev;
	unsigned int nq;
	uint64_t acked;
	struct mq_q q[MQ_MAX_Q];
};

/* Negotiate VERSION_1 plus want & offered, set up nq queues of num entries,
 * DRIVER_OK.  Returns the Status register. */
uint32_t mq_init(struct mq_drv *d, struct vt_env *e, sqb_vio_dev *dev, unsigned int nq,
		 uint16_t num, uint64_t want);
/* Chain segs onto queue qi's avail ring (no notify); returns the head. */
uint16_t mq_add(struct mq_drv *d, unsigned int qi, const struct vt_seg *segs, unsigned int n);
bool mq_used(struct mq_drv *d, unsigned int qi, uint32_t *id, uint32_t *len);
void mq_put_desc(struct mq_drv *d, unsigned int qi, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);
void mq_publish(struct mq_drv *d, unsigned int qi, uint16_t head);
uint64_t mq_get64(struct vt_env *e, uint64_t gpa);
uint32_t mq_get32(struct vt_env *e, uint64_t gpa);
void mq_put32(struct vt_env *e, uint64_t gpa, uint32_t v);
void mq_put64(struct vt_env *e, uint64_t gpa, uint64_t v);

#endif
