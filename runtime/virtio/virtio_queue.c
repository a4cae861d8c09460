/* Split virtqueues, device side (virtio 1.x section 2.7): popping and
 * bounds-checking descriptor chains, publishing used buffers, and
 * VIRTIO_F_RING_EVENT_IDX notification suppression (2.7.7, 2.7.10), and
 * indirect descriptor tables (VIRTIO_F_RING_INDIRECT_DESC, 2.7.5.3).
 * Every ring access goes through sqb_vio_mem.map(); a hostile ring yields
 * -SQB_ECORRUPT with a reason, never a crash, a hang or a stray write. */
#include <string.h>
#include <sys/uio.h>

#include "virtio_priv.h"

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t *vq_map(const struct sqb_vio_mem *mem, uint64_t gpa, uint64_t len, int write)
{
	if (len == 0 || gpa + len < gpa)
		return NULL;
	return mem->map(mem->opaque, gpa, len, write);
}

/* Ring fields are shared with a running driver: read each one once. */
static int rd16(const struct sqb_vio_mem *mem, uint64_t gpa, uint16_t *v)
{
	const volatile uint8_t *p = vq_map(mem, gpa, 2, 0);
	uint8_t b[2];

	if (!p)
		return -1;
	b[0] = p[0];
	b[1] = p[1];
	*v = get_le16(b);
	return 0;
}

static int wr16(const struct sqb_vio_mem *mem, uint64_t gpa, uint16_t v)
{
	uint8_t *p = vq_map(mem, gpa, 2, 1);

	if (!p)
		return -1;
	if (((uintptr_t)p & 1) == 0) {
		uint8_t b[2];
		uint16_t w;
		put_le16(b, v);
		memcpy(&w, b, 2);
		__atomic_store_n((uint16_t *)(void *)p, w, __ATOMIC_RELEASE);
	} else {
		put_le16(p, v);
	}
	return 0;
}

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return -SQB_ECORRUPT;
}

void sqb_vq_reset(struct sqb_vq *q)
{
	uint16_t max = q->max_num;

	memset(q, 0, sizeof(*q));
	q->max_num = max;
	q->num = max;
}

int sqb_vq_validate(const struct sqb_vq *q, const struct sqb_vio_mem *mem, const char **why)
{
	if (q->num == 0 || q->num > q->max_num || (q->num & (q->num - 1)))
		return bad(why, "QueueNum is not a power of two within QueueNumMax");
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return bad(why, "misaligned ring address");
	if (!vq_map(mem, q->desc, 16ull * q->num, 0))
		return bad(why, "descriptor table outside guest RAM");
	if (!vq_map(mem, q->avail, 6ull + 2ull * q->num, 0))
		return bad(why, "driver area (avail ring) outside guest RAM");
	if (!vq_map(mem, q->used, 6ull + 8ull * q->num, 1))
		return bad(why, "device area (used ring) outside guest RAM");
	return 0;
}

/* Walk the chain starting at head into c, mapping each buffer.  The chain
 * may end in one indirect descriptor (2.7.5.3) whose table continues it. */
static int vq_walk(const struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t head,
		   struct sqb_vq_chain *c, const char **why)
{
	uint64_t table = q->desc; /* the descriptor table being walked */
	uint32_t table_n = q->num;
	bool in_indirect = false;
	uint16_t idx = head;

	c->head = head;
	c->nseg = c->nread = 0;
	c->read_len = c->write_len = 0;
	for (;;) {
		const volatile uint8_t *d;
		uint8_t raw[16];
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		struct sqb_vq_seg *s;

		/* A chain, indirect part included, holds at most num descriptors
		 * (2.7.5.3.1); more means a loop. */
		if (c->nseg >= q->num)
			return bad(why, "descriptor chain longer than the queue (loop)");
		d = vq_map(mem, table + 16ull * idx, 16, 0);
		if (!d)
			return bad(why, "descriptor table outside guest RAM");
		/* One snapshot of the descriptor: the driver may rewrite it while we
		 * look, and a second read must never bypass the checks below. */
		for (int i = 0; i < 16; i++)
			raw[i] = d[i];
		addr = get_le64(raw);
		len = get_le32(raw + 8);
		flags = get_le16(raw + 12);
		next = get_le16(raw + 14);
		if (flags & VQ_DESC_F_INDIRECT) {
			if (!q->indirect)
				return bad(why, "indirect descriptor, "
						"VIRTIO_F_RING_INDIRECT_DESC not negotiated");
			if (in_indirect)
				return bad(why, "indirect descriptor inside an indirect table");
			if (flags & VQ_DESC_F_NEXT)
				return bad(why, "indirect descriptor with NEXT set");
			if (len == 0 || len % 16)
				return bad(why, "indirect table length not a multiple of 16");
			if (!vq_map(mem, addr, len, 0))
				return bad(why, "indirect table outside guest RAM");
			table = addr;
			table_n = len / 16;
			in_indirect = true;
			idx = 0;
			continue;
		}
		s = &c->seg[c->nseg];
		s->write = (flags & VQ_DESC_F_WRITE) != 0;
		s->len = len;
		s->gpa = addr;
		s->host = NULL;
		if (!s->write && c->nseg != c->nread)
			return bad(why, "device-readable descriptor after a device-writable one");
		if (len) {
			if (addr + len < addr)
				return bad(why, "descriptor address + length wraps");
			s->host = vq_map(mem, addr, len, s->write);
			if (!s->host)
				return bad(why, "descriptor buffer outside guest RAM");
		}
		if (s->write) {
			c->write_len += len;
		} else {
			c->read_len += len;
			c->nread++;
		}
		c->nseg++;
		if (!(flags & VQ_DESC_F_NEXT))
			return 0;
		if (next >= table_n)
			return bad(why, "descriptor next index out of range");
		idx = next;
	}
}

int sqb_vq_pop(struct sqb_vq *q, const struct sqb_vio_mem *mem, struct sqb_vq_chain *c,
	       const char **why)
{
	uint16_t avail_idx, head, pending;
	int rc;

	if (rd16(mem, q->avail + 2, &avail_idx))
		return bad(why, "driver area (avail ring) outside guest RAM");
	pending = (uint16_t)(avail_idx - q->next_avail);
	if (pending == 0)
		return 0;
	if (pending > q->num)
		return bad(why, "avail idx moved ahead by more than the queue size");
	/* Read ring entries only after seeing the index that covers them. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (rd16(mem, q->avail + 4 + 2ull * (q->next_avail & (q->num - 1)), &head))
		return bad(why, "driver area (avail ring) outside guest RAM");
	if (head >= q->num)
		return bad(why, "avail ring head index out of range");
	rc = vq_walk(q, mem, head, c, why);
	if (rc)
		return rc;
	q->next_avail++;
	return 1;
}

void sqb_vq_unpop(struct sqb_vq *q)
{
	q->next_avail--;
}

int sqb_vq_push(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t head, uint32_t len,
		const char **why)
{
	uint8_t *e = vq_map(mem, q->used + 4 + 8ull * (q->next_used & (q->num - 1)), 8, 1);

	if (!e)
		return bad(why, "device area (used ring) outside guest RAM");
	put_le32(e, head);
	put_le32(e + 4, len);
	q->next_used++;
	/* The element must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	if (wr16(mem, q->used + 2, q->next_used))
		return bad(why, "device area (used ring) outside guest RAM");
	return 0;
}

int sqb_vq_enable_notify(struct sqb_vq *q, const struct sqb_vio_mem *mem, const char **why)
{
	uint16_t avail_idx;

	if (!q->event_idx)
		return 0;
	if (wr16(mem, q->used + 4 + 8ull * q->num, q->next_avail))
		return bad(why, "device area (used ring) outside guest RAM");
	/* Store avail_event, then load avail idx: a full barrier (2.7.10). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (rd16(mem, q->avail + 2, &avail_idx))
		return bad(why, "driver area (avail ring) outside guest RAM");
	return avail_idx != q->next_avail;
}

int sqb_vq_pop_or_arm(struct sqb_vq *q, const struct sqb_vio_mem *mem, struct sqb_vq_chain *c,
		      const char **why)
{
	for (;;) {
		int rc = sqb_vq_pop(q, mem, c, why);

		if (rc)
			return rc;
		rc = sqb_vq_enable_notify(q, mem, why);
		if (rc <= 0)
			return rc;
	}
}

int sqb_vq_avail_idx(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t *idx,
		     const char **why)
{
	if (rd16(mem, q->avail + 2, idx))
		return bad(why, "driver area (avail ring) outside guest RAM");
	return 0;
}

int sqb_vq_watch_avail(struct sqb_vq *q, const struct sqb_vio_mem *mem, uint16_t *idx,
		       const char **why)
{
	if (rd16(mem, q->avail + 2, idx))
		return bad(why, "driver area (avail ring) outside guest RAM");
	if (q->event_idx && wr16(mem, q->used + 4 + 8ull * q->num, *idx))
		return bad(why, "device area (used ring) outside guest RAM");
	/* the avail_event store before any later load of avail idx (2.7.10) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return 0;
}

bool sqb_vq_should_signal(struct sqb_vq *q, const struct sqb_vio_mem *mem)
{
	uint16_t old = q->signalled_used, now = q->next_used, ev, flags;
	bool valid = q->signalled_valid;

	/* The used idx store must be visible before the driver's field is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx) {
		if (rd16(mem, q->avail, &flags))
			return true;
		return !(flags & VQ_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = now;
	q->signalled_valid = true;
	if (!valid || rd16(mem, q->avail + 4 + 2ull * q->num, &ev))
		return true;
	/* vring_need_event(): the driver asked to be told once used idx passes ev. */
	return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
}

uint64_t sqb_vq_read_bytes(const struct sqb_vq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *out = dst;
	uint64_t done = 0;

	for (unsigned int i = 0; i < c->nread && done < len; i++) {
		const struct sqb_vq_seg *s = &c->seg[i];
		uint64_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, s->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}

int sqb_vq_iov(const struct sqb_vq_chain *c, bool writable, uint64_t off, uint64_t len,
	       struct iovec *iov, uint64_t *short_by)
{
	unsigned int i = writable ? c->nread : 0, end = writable ? c->nseg : c->nread;
	int n = 0;

	for (; i < end && len; i++) {
		const struct sqb_vq_seg *s = &c->seg[i];
		uint64_t k;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		k = s->len - off < len ? s->len - off : len;
		iov[n].iov_base = s->host + off;
		iov[n++].iov_len = (size_t)k;
		len -= k;
		off = 0;
	}
	*short_by = len;
	return n;
}

uint64_t sqb_vq_write_bytes(const struct sqb_vq_chain *c, uint64_t off, const void *src,
			    uint64_t len)
{
	const uint8_t *in = src;
	uint64_t done = 0;

	for (unsigned int i = c->nread; i < c->nseg && done < len; i++) {
		const struct sqb_vq_seg *s = &c->seg[i];
		uint64_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(s->host + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}
