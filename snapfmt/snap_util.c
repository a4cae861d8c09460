/* snapfmt helpers: checksums (XXH3), codecs (lz4, zstd), diagnostics, names,
 * and a small thread pool for parallel compression (format.md [F-30]..[F-36]). */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "snap_internal.h"

uint64_t sqb_xxh64(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

void sqb_xxh128(const void *a, size_t alen, const void *b, size_t blen, struct sqb_digest *out)
{
	XXH3_state_t st;
	XXH128_hash_t h;

	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, a, alen);
	if (blen)
		XXH3_128bits_update(&st, b, blen);
	h = XXH3_128bits_digest(&st);
	put_le64(out->b, h.low64);
	put_le64(out->b + 8, h.high64);
}

void sqb_start_writeback(int fd, uint64_t off, uint64_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE /* Linux; elsewhere the final fsync does it all */
	(void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
#else
	(void)fd;
	(void)off;
	(void)len;
#endif
}

int sqb_page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t n = len / 8;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] |
			       w[i + 6] | w[i + 7];
		if (acc)
			return 0;
	}
	return 1;
}

/* ---- codecs ---- */

size_t sqb_codec_bound(enum sqb_codec c, size_t n)
{
	switch (c) {
	case SQB_CODEC_LZ4:
		return (size_t)LZ4_compressBound((int)n);
	case SQB_CODEC_ZSTD:
		return ZSTD_compressBound(n);
	default:
		return n;
	}
}

size_t sqb_codec_compress(enum sqb_codec c, int level, const void *src, size_t n, void *dst,
			  size_t cap, void **ctx)
{
	size_t r = 0;

	if (c == SQB_CODEC_LZ4) {
		int acc = level > 0 ? level : 1;
		int k = LZ4_compress_fast(src, dst, (int)n, (int)cap, acc);
		r = k > 0 ? (size_t)k : 0;
	} else if (c == SQB_CODEC_ZSTD) {
		if (!*ctx)
			*ctx = ZSTD_createCCtx();
		if (!*ctx)
			return 0;
		r = ZSTD_compressCCtx(*ctx, dst, cap, src, n, level ? level : 3);
		if (ZSTD_isError(r))
			r = 0;
	}
	return r < n ? r : 0;
}

void sqb_codec_ctx_free(enum sqb_codec c, void *ctx)
{
	if (c == SQB_CODEC_ZSTD && ctx)
		ZSTD_freeCCtx(ctx);
}

int sqb_codec_decompress(enum sqb_codec c, const void *src, size_t n, void *dst, size_t out_len)
{
	if (c == SQB_CODEC_NONE) {
		if (n != out_len)
			return -SQB_ECODEC;
		memcpy(dst, src, n);
		return 0;
	}
	if (c == SQB_CODEC_LZ4) {
		int k = LZ4_decompress_safe(src, dst, (int)n, (int)out_len);
		return k == (int)out_len ? 0 : -SQB_ECODEC;
	}
	if (c == SQB_CODEC_ZSTD) {
		unsigned long long sz = ZSTD_getFrameContentSize(src, n);
		size_t k;

		/* [F-35] the frame must declare exactly the extent's size */
		if (sz != out_len)
			return -SQB_ECODEC;
		k = ZSTD_decompress(dst, out_len, src, n);
		return (!ZSTD_isError(k) && k == out_len) ? 0 : -SQB_ECODEC;
	}
	return -SQB_ECODEC;
}

int sqb_codec_decompress_prefix(enum sqb_codec c, const void *src, size_t n, void *dst,
				size_t out_len, size_t want, void **dctx)
{
	/* LZ4 decodes sequentially and can stop early; a 64 KiB zstd chunk is
	 * one block, decoded whole either way */
	if (c == SQB_CODEC_LZ4 && want < out_len) {
		int k = LZ4_decompress_safe_partial(src, dst, (int)n, (int)want, (int)out_len);

		return k >= (int)want ? 0 : -SQB_ECODEC;
	}
	if (c == SQB_CODEC_ZSTD && dctx) { /* a reused context saves ~10 us a chunk */
		size_t k;

		if (!*dctx && !(*dctx = ZSTD_createDCtx()))
			return -ENOMEM;
		if (ZSTD_getFrameContentSize(src, n) != out_len) /* [F-35] */
			return -SQB_ECODEC;
		k = ZSTD_decompressDCtx(*dctx, dst, out_len, src, n);
		return (!ZSTD_isError(k) && k == out_len) ? 0 : -SQB_ECODEC;
	}
	return sqb_codec_decompress(c, src, n, dst, out_len);
}

void sqb_codec_dctx_free(void *dctx)
{
	ZSTD_freeDCtx(dctx);
}

const char *sqb_codec_name(enum sqb_codec c)
{
	switch (c) {
	case SQB_CODEC_NONE:
		return "none";
	case SQB_CODEC_LZ4:
		return "lz4";
	case SQB_CODEC_ZSTD:
		return "zstd";
	}
	return "?";
}

const char *sqb_extent_kind_name(enum sqb_extent_kind k)
{
	static const char *const n[] = { "zero", "parent", "raw", "compressed", "dedup" };

	return (unsigned)k < 5 ? n[k] : "?";
}

void sqb_uuid_format(const struct sqb_uuid *u, char out[37])
{
	const uint8_t *b = u->b;

	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

void sqb_digest_format(const struct sqb_digest *d, char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d->b[i]);
}

int sqb_uuid_is_zero(const struct sqb_uuid *u)
{
	return all_zero(u->b, 16);
}

/* ---- diagnostics ---- */

int sqb_diag_set(struct sqb_diag *d, int err, uint64_t off, const char *section, const char *fmt,
		 ...)
{
	va_list ap;

	if (!d)
		return err;
	d->offset = off;
	snprintf(d->section, sizeof(d->section), "%s", section ? section : "file");
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	return err;
}

const char *sqb_section_type_name(uint32_t type, char *buf)
{
	char c[4];
	int printable = 1;

	for (int i = 0; i < 4; i++) {
		c[i] = (char)(type >> (8 * i));
		if (c[i] < 0x21 || c[i] > 0x7e)
			printable = 0;
	}
	if (printable)
		snprintf(buf, 16, "%c%c%c%c", c[0], c[1], c[2], c[3]);
	else
		snprintf(buf, 16, "?0x%08x", type);
	return buf;
}

const char *sqb_dirent_name(const struct sqb_dirent *e, char *buf, size_t len)
{
	char t[16];

	snprintf(buf, len, "%s[%u]", sqb_section_type_name(e->type, t), e->instance);
	return buf;
}

static const struct sqb_section_kind sqb_section_kinds[] = {
	/* type          version critical */
	{ SQB_SEC_MEMR, 1, 1 }, { SQB_SEC_PIDX, 1, 1 }, { SQB_SEC_DATA, 1, 1 },
	{ SQB_SEC_VCPU, 1, 1 }, { SQB_SEC_INTC, 1, 1 }, { SQB_SEC_DEVS, 1, 1 },
	{ SQB_SEC_CONF, 1, 1 }, { SQB_SEC_META, 1, 0 }, { SQB_SEC_WSET, 1, 0 },
	{ SQB_SEC_LINK, 1, 0 }, { SQB_SEC_XMEM, 1, 1 },
};

const struct sqb_section_kind *sqb_section_kind(uint32_t type)
{
	for (size_t i = 0; i < sizeof(sqb_section_kinds) / sizeof(sqb_section_kinds[0]); i++)
		if (sqb_section_kinds[i].type == type)
			return &sqb_section_kinds[i];
	return NULL;
}

/* ---- thread pool ---- */

struct sqb_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake, done;
	pthread_t *tid;
	unsigned int nthreads; /* worker threads (caller is one more) */
	unsigned long gen;
	int stop;
	size_t n;
	atomic_size_t next;
	unsigned int busy;
	void (*fn)(void *, size_t);
	void *ctx;
};

static void sqb_pool_drain(struct sqb_pool *p)
{
	size_t i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
		p->fn(p->ctx, i);
}

static void *sqb_pool_main(void *arg)
{
	struct sqb_pool *p = arg;
	unsigned long seen = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->gen == seen)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		sqb_pool_drain(p);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0)
			pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int sqb_pool_create(struct sqb_pool **out, unsigned int threads)
{
	struct sqb_pool *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	if (threads > 64)
		threads = 64;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->tid = calloc(threads, sizeof(*p->tid));
	if (!p->tid) {
		sqb_pool_free(p);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i + 1 < threads; i++) {
		if (pthread_create(&p->tid[i], NULL, sqb_pool_main, p))
			break;
		p->nthreads++;
	}
	*out = p;
	return 0;
}

void sqb_pool_run(struct sqb_pool *p, size_t n, void (*fn)(void *ctx, size_t i), void *ctx)
{
	pthread_mutex_lock(&p->lock);
	while (p->busy) /* a late worker may still be leaving the previous run */
		pthread_cond_wait(&p->done, &p->lock);
	p->fn = fn;
	p->ctx = ctx;
	p->n = n;
	atomic_store(&p->next, 0);
	p->gen++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	sqb_pool_drain(p);
	pthread_mutex_lock(&p->lock);
	/* workers that have not woken yet find nothing left to do */
	while (p->busy)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

unsigned int sqb_pool_threads(const struct sqb_pool *p)
{
	return p->nthreads + 1;
}

void sqb_pool_free(struct sqb_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->tid[i], NULL);
	free(p->tid);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	free(p);
}

int sqb_random_uuid(struct sqb_uuid *u);
int sqb_random_uuid(struct sqb_uuid *u)
{
	size_t got = 0;

	while (got < sizeof(u->b)) {
		ssize_t n = getrandom(u->b + got, sizeof(u->b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* RFC 9562 version 4 */
	u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80);
	return 0;
}
