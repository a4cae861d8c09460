/* Deterministic synthetic guest memory for snapfmt tests: a realistic mix of
 * zero pages, repeated pages, text-like, binary-like and random pages. */
#ifndef SQB_SNAP_TEST_UTIL_H
#define SQB_SNAP_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t sqbt_rand(uint64_t *s)
{
	uint64_t x = *s += 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Fill one page by class: 0 zero, 1 repeated, 2 text, 3 binary, 4 random. */
static inline void sqbt_fill_page(uint8_t *p, uint32_t gps, int cls, uint64_t *seed)
{
	static const char words[] = "the quick brown fox jumps over lazy dog squib snapshot ";

	switch (cls) {
	case 0:
		memset(p, 0, gps);
		break;
	case 1:
		for (uint32_t i = 0; i < gps; i++)
			p[i] = (uint8_t)(i * 7 + 1);
		break;
	case 2:
		for (uint32_t i = 0; i < gps; i++)
			p[i] = (uint8_t)words[(i + (sqbt_rand(seed) % 4 == 0 ? sqbt_rand(seed) : 0)) %
					      (sizeof(words) - 1)];
		break;
	case 3:
		memset(p, 0, gps);
		for (uint32_t i = 0; i < gps; i += 8)
			if (sqbt_rand(seed) % 3 == 0) {
				uint64_t v = sqbt_rand(seed) & 0xffffffffull;
				memcpy(p + i, &v, 8);
			}
		break;
	default:
		for (uint32_t i = 0; i < gps; i += 8) {
			uint64_t v = sqbt_rand(seed);
			memcpy(p + i, &v, 8);
		}
	}
}

/* Mix by page: 30% zero, 10% repeated, 25% text, 20% binary, 15% random. */
static inline int sqbt_page_class(uint64_t r)
{
	unsigned v = (unsigned)(r % 100);

	return v < 30 ? 0 : v < 40 ? 1 : v < 65 ? 2 : v < 85 ? 3 : 4;
}

static inline uint8_t *sqbt_pattern_mem(uint64_t size, uint32_t gps, uint64_t seed)
{
	uint8_t *m = malloc(size);
	uint64_t s = seed;

	for (uint64_t off = 0; off < size; off += gps)
		sqbt_fill_page(m + off, gps, sqbt_page_class(sqbt_rand(&s)), &s);
	return m;
}

/* Change ~5% of pages (some to zero); mark them in dirty (if given). */
static inline void sqbt_mutate(uint8_t *m, uint64_t size, uint32_t gps, unsigned round,
			       uint64_t *dirty)
{
	uint64_t s = 1000 + round, pages = size / gps;

	for (uint64_t i = 0; i < pages / 20 + 1; i++) {
		uint64_t p = sqbt_rand(&s) % pages;

		sqbt_fill_page(m + p * gps, gps, (int)(sqbt_rand(&s) % 5), &s);
		m[p * gps + 17] ^= (uint8_t)round; /* never equal to before */
		if (dirty)
			dirty[p / 64] |= 1ull << (p % 64);
	}
}

#endif
