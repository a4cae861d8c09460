/* The symmetric device-state stream (dev.h struct sqb_devst): one function
 * per device walks its fields once to save and once to restore, little-
 * endian, field by field (format.md 9.1 [F-56]). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

static void st_fail(struct sqb_devst *s, int err, const char *field)
{
	if (!s->err) {
		s->err = err;
		s->field = field;
	}
}

/* The bytes of the next n-byte field, or NULL (measuring, or an error). */
static uint8_t *st_take(struct sqb_devst *s, size_t n, const char *field)
{
	uint8_t *p;

	if (s->err)
		return NULL;
	if (s->pos > s->cap || n > s->cap - s->pos) {
		if (!s->load && !s->buf) { /* measuring */
			s->pos += n;
			return NULL;
		}
		st_fail(s, -SQB_ETRUNCATED, field);
		return NULL;
	}
	p = s->buf ? s->buf + s->pos : NULL;
	s->pos += n;
	return p;
}

static void st_int(struct sqb_devst *s, void *v, unsigned int n, const char *field)
{
	uint8_t *p = st_take(s, n, field);
	uint64_t x = 0;

	if (!p)
		return;
	if (s->load) {
		for (unsigned int i = 0; i < n; i++)
			x |= (uint64_t)p[i] << (8 * i);
		if (n == 1)
			*(uint8_t *)v = (uint8_t)x;
		else if (n == 4)
			*(uint32_t *)v = (uint32_t)x;
		else
			*(uint64_t *)v = x;
		return;
	}
	x = n == 1 ? *(uint8_t *)v : n == 4 ? *(uint32_t *)v : *(uint64_t *)v;
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

void sqb_devst_u8(struct sqb_devst *s, uint8_t *v, const char *field)
{
	st_int(s, v, 1, field);
}

void sqb_devst_u32(struct sqb_devst *s, uint32_t *v, const char *field)
{
	st_int(s, v, 4, field);
}

void sqb_devst_u64(struct sqb_devst *s, uint64_t *v, const char *field)
{
	st_int(s, v, 8, field);
}

void sqb_devst_u8_max(struct sqb_devst *s, uint8_t *v, uint8_t max, const char *field)
{
	uint8_t x = *v;

	st_int(s, &x, 1, field);
	if (s->err)
		return;
	if (s->load && x > max) {
		st_fail(s, -SQB_ECORRUPT, field);
		return;
	}
	*v = x;
}

void sqb_devst_bytes(struct sqb_devst *s, void *p, size_t n, const char *field)
{
	uint8_t *b = st_take(s, n, field);

	if (!b)
		return;
	if (s->load)
		memcpy(p, b, n);
	else
		memcpy(b, p, n);
}

void sqb_devst_reserved(struct sqb_devst *s, size_t n)
{
	uint8_t *b = st_take(s, n, "reserved");

	if (!b)
		return;
	if (!s->load) {
		memset(b, 0, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (b[i]) {
			st_fail(s, -SQB_ERESERVED, "reserved");
			return;
		}
}

void sqb_devst_cmp_u32(struct sqb_devst *s, uint32_t v, const char *field)
{
	uint32_t x = v;

	st_int(s, &x, 4, field);
	if (!s->err && s->load && x != v)
		st_fail(s, -SQB_EMISMATCH, field);
}

void sqb_devst_cmp_u64(struct sqb_devst *s, uint64_t v, const char *field)
{
	uint64_t x = v;

	st_int(s, &x, 8, field);
	if (!s->err && s->load && x != v)
		st_fail(s, -SQB_EMISMATCH, field);
}

int sqb_dev_save(struct sqb_dev *d, uint8_t **out, size_t *len)
{
	struct sqb_devst s = {0};
	int err;

	*out = NULL;
	*len = 0;
	if (!d->cls->ops->state)
		return -ENOSYS;
	/* Measure, then fill: the state function is the only description. */
	err = d->cls->ops->state(d, &s);
	if (err || s.err)
		return err ? err : s.err;
	s = (struct sqb_devst){.buf = malloc(s.pos ? s.pos : 1), .cap = s.pos};
	if (!s.buf)
		return -ENOMEM;
	err = d->cls->ops->state(d, &s);
	if (!err)
		err = s.err;
	if (!err && s.pos != s.cap)
		err = -SQB_ECORRUPT; /* the device's state changed size between passes */
	if (err) {
		free(s.buf);
		return err;
	}
	*out = s.buf;
	*len = s.pos;
	return 0;
}

int sqb_dev_load(struct sqb_dev *d, unsigned int version, const uint8_t *buf, size_t len,
		 const char **field)
{
	struct sqb_devst s = {.load = 1, .buf = (uint8_t *)buf, .cap = len, .version = version};
	int err;

	if (field)
		*field = NULL;
	if (!d->cls->ops->state)
		return -ENOSYS;
	if (version < d->cls->min_version || version > d->cls->version) {
		if (field)
			*field = "version";
		return -SQB_EVERSION;
	}
	err = d->cls->ops->state(d, &s);
	if (!err && !s.err && s.pos != len) {
		s.err = -SQB_ECORRUPT;
		s.field = "length";
	}
	if (field && (err || s.err))
		*field = s.field;
	if (err)
		return err;
	if (s.err)
		return s.err;
	return d->cls->ops->post_load ? d->cls->ops->post_load(d) : 0;
}
