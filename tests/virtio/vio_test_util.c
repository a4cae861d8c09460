/* Test kit for runtime/virtio: fake guest RAM, interrupt, clock and timer,
 * and a driver that lays out split rings per virtio 1.x section 2.7. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vio_test_util.h"

static uint8_t *fake_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	struct vt_env *e = opaque;
	uint8_t *base, *dirty;
	uint64_t off;

	if (len == 0 || gpa + len < gpa)
		return NULL;
	if (gpa + len <= VT_R0_BASE + VT_R0_SIZE) { /* region 0 starts at 0 */
		base = e->r0;
		dirty = e->dirty0;
		off = gpa - VT_R0_BASE;
	} else if (gpa >= VT_R1_BASE && gpa + len <= VT_R1_BASE + VT_R1_SIZE) {
		base = e->r1;
		dirty = e->dirty1;
		off = gpa - VT_R1_BASE;
	} else {
		return NULL;
	}
	if (write)
		for (uint64_t p = off / 4096; p <= (off + len - 1) / 4096; p++)
			dirty[p] = 1;
	return base + off;
}

static void fake_raise(void *opaque)
{
	__atomic_fetch_add(&((struct vt_env *)opaque)->irqs, 1, __ATOMIC_RELAXED);
}

static uint64_t fake_now(void *opaque)
{
	return ((struct vt_env *)opaque)->now;
}

static void fake_arm(void *opaque, uint64_t at)
{
	struct vt_env *e = opaque;

	e->timer_at = at;
	e->timer_arms++;
}

void vt_env_init(struct vt_env *e)
{
	memset(e, 0, sizeof(*e));
	e->r0 = calloc(1, VT_R0_SIZE);
	e->r1 = calloc(1, VT_R1_SIZE);
	if (!e->r0 || !e->r1)
		abort();
	e->now = 1000000000ull;
	e->host.mem = (struct sqb_vio_mem){e, fake_map};
	e->host.irq = (struct sqb_vio_irq){e, fake_raise};
	e->host.clock = (struct sqb_vio_clock){e, fake_now};
	e->host.timer = (struct sqb_vio_timer){e, fake_arm};
}

void vt_env_fini(struct vt_env *e)
{
	free(e->r0);
	free(e->r1);
}

uint8_t *vt_ptr(struct vt_env *e, uint64_t gpa)
{
	if (gpa < VT_R0_SIZE)
		return e->r0 + gpa;
	if (gpa >= VT_R1_BASE && gpa < VT_R1_BASE + VT_R1_SIZE)
		return e->r1 + gpa - VT_R1_BASE;
	abort();
}

uint16_t vt_get16(struct vt_env *e, uint64_t gpa)
{
	uint8_t *p = vt_ptr(e, gpa);
	return (uint16_t)(p[0] | p[1] << 8);
}

void vt_put16(struct vt_env *e, uint64_t gpa, uint16_t v)
{
	uint8_t *p = vt_ptr(e, gpa);
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void vt_put_desc(struct vt_env *e, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *d = vt_ptr(e, VT_DESC + 16ull * i);

	put32(d, (uint32_t)addr);
	put32(d + 4, (uint32_t)(addr >> 32));
	put32(d + 8, len);
	d[12] = (uint8_t)flags;
	d[13] = (uint8_t)(flags >> 8);
	d[14] = (uint8_t)next;
	d[15] = (uint8_t)(next >> 8);
}

uint32_t vt_r32(sqb_vio_dev *dev, uint32_t off)
{
	uint8_t b[4];

	sqb_vio_mmio_access(dev, off, b, 4, 0);
	return get32(b);
}

void vt_w32(sqb_vio_dev *dev, uint32_t off, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	sqb_vio_mmio_access(dev, off, b, 4, 1);
}

uint32_t vt_drv_init(struct vt_drv *d, struct vt_env *e, sqb_vio_dev *dev, uint16_t num,
		     uint64_t want)
{
	uint64_t offered, acked;

	memset(d, 0, sizeof(*d));
	d->e = e;
	d->dev = dev;
	d->num = num;
	vt_w32(dev, 0x70, 0);
	vt_w32(dev, 0x70, SQB_VIO_S_ACKNOWLEDGE);
	vt_w32(dev, 0x70, SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER);
	vt_w32(dev, 0x14, 0);
	offered = vt_r32(dev, 0x10);
	vt_w32(dev, 0x14, 1);
	offered |= (uint64_t)vt_r32(dev, 0x10) << 32;
	acked = offered & (want | 1ull << SQB_VIO_F_VERSION_1);
	d->event_idx = (acked >> SQB_VIO_F_RING_EVENT_IDX) & 1;
	vt_w32(dev, 0x24, 0);
	vt_w32(dev, 0x20, (uint32_t)acked);
	vt_w32(dev, 0x24, 1);
	vt_w32(dev, 0x20, (uint32_t)(acked >> 32));
	vt_w32(dev, 0x70, SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_FEATURES_OK);
	if (!(vt_r32(dev, 0x70) & SQB_VIO_S_FEATURES_OK))
		return vt_r32(dev, 0x70);
	memset(vt_ptr(e, VT_DESC), 0, 0x4000);
	vt_w32(dev, 0x30, 0);
	vt_w32(dev, 0x38, num);
	vt_w32(dev, 0x80, (uint32_t)VT_DESC);
	vt_w32(dev, 0x84, 0);
	vt_w32(dev, 0x90, (uint32_t)VT_AVAIL);
	vt_w32(dev, 0x94, 0);
	vt_w32(dev, 0xa0, (uint32_t)VT_USED);
	vt_w32(dev, 0xa4, 0);
	vt_w32(dev, 0x44, 1);
	vt_w32(dev, 0x70,
	       SQB_VIO_S_ACKNOWLEDGE | SQB_VIO_S_DRIVER | SQB_VIO_S_FEATURES_OK |
		   SQB_VIO_S_DRIVER_OK);
	return vt_r32(dev, 0x70);
}

uint16_t vt_add(struct vt_drv *d, const struct vt_seg *segs, unsigned int n)
{
	uint16_t head = d->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % d->num);
		uint16_t nx = (uint16_t)((head + i + 1) % d->num);
		uint16_t fl = (uint16_t)((i + 1 < n ? 1 : 0) | (segs[i].write ? 2 : 0));
		vt_put_desc(d->e, idx, segs[i].gpa, segs[i].len, fl, nx);
	}
	d->next_desc = (uint16_t)((head + n) % d->num);
	vt_put16(d->e, VT_AVAIL + 4 + 2ull * (d->avail_idx % d->num), head);
	d->avail_idx++;
	vt_put16(d->e, VT_AVAIL + 2, d->avail_idx);
	return head;
}

bool vt_used(struct vt_drv *d, uint32_t *id, uint32_t *len)
{
	uint8_t *e;

	if (vt_get16(d->e, VT_USED + 2) == d->last_used)
		return false;
	e = vt_ptr(d->e, VT_USED + 4 + 8ull * (d->last_used % d->num));
	*id = get32(e);
	*len = get32(e + 4);
	d->last_used++;
	if (d->event_idx) /* ask for an interrupt at the next completion */
		vt_put16(d->e, VT_AVAIL + 4 + 2ull * d->num, d->last_used);
	return true;
}

int vt_blk(struct vt_drv *d, uint32_t type, uint64_t sector, uint32_t data_len, bool dev_writes,
	   uint32_t *used_len)
{
	uint8_t *h = vt_ptr(d->e, VT_HDR);
	struct vt_seg s[3];
	unsigned int n = 0;
	uint32_t id, len;

	put32(h, type);
	put32(h + 4, 0);
	put32(h + 8, (uint32_t)sector);
	put32(h + 12, (uint32_t)(sector >> 32));
	*vt_ptr(d->e, VT_STAT) = 0xee;
	s[n++] = (struct vt_seg){VT_HDR, 16, false};
	if (data_len)
		s[n++] = (struct vt_seg){VT_DATA, data_len, dev_writes};
	s[n++] = (struct vt_seg){VT_STAT, 1, true};
	vt_add(d, s, n);
	vt_notify(d->dev);
	if (!vt_used(d, &id, &len))
		return 0xff;
	if (used_len)
		*used_len = len;
	return *vt_ptr(d->e, VT_STAT);
}

void vt_blk_settle(sqb_vio_dev *dev)
{
	int fd = sqb_vio_blk_io_fd(dev);

	/* 10 s at most: a lost completion fails the caller's checks */
	for (int i = 0; fd >= 0 && sqb_vio_blk_inflight(dev) && i < 1000; i++) {
		struct pollfd p = {fd, POLLIN, 0};

		poll(&p, 1, 10);
		sqb_vio_blk_io_ready(dev);
	}
}

void vt_notify(sqb_vio_dev *dev)
{
	sqb_vio_queue_notify(dev, 0);
	vt_blk_settle(dev);
}

int vt_tempfile(uint64_t size)
{
	char path[] = "/tmp/sqb_vio_test.XXXXXX";
	int fd = mkstemp(path);
	uint8_t buf[4096];

	if (fd < 0)
		abort();
	unlink(path);
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		uint64_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (uint64_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 7 + 3);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			abort();
	}
	return fd;
}
