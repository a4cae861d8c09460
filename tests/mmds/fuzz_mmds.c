/* Fuzz target for MMDS: an input starting with 'H' goes to the store and
 * its guest HTTP answers (fuzz_http below); any other to the network stack
 * (mmds_ns.c), as a
 * sequence of guest frames, each a 2-byte big-endian length (bit 15 of the
 * first: verify input checksums) and that many bytes.  ISNs come from a
 * fixed seed so seeds can carry whole conversations
 * (tests/mmds/gen_mmds_corpus.py writes them).  Every frame goes
 * through sqb_mmds_ns_detour, the stack is drained with
 * sqb_mmds_ns_next_frame after each (the clock advancing so timers fire), and
 * every frame it produces is checked for size and checksums.  Built as a
 * libFuzzer target with -DSQB_LIBFUZZER; otherwise main() replays a corpus
 * folder and runs a fixed-seed mutation pass over each file with the virtio
 * targets' replay driver (tests/virtio/fuzz_replay.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_replay.h"
#include "mmds.h"
#include "mmds_ns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int respond(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len)
{
	/* A response whose size depends on the request, up to a few MSS. */
	size_t n = 40 + (len * 7) % 4000;

	(void)ctx;
	if (len && req[0] == '!')
		return -1;
	*resp = malloc(n);
	if (!*resp)
		return -1;
	memset(*resp, 'r', n);
	*resp_len = n;
	return 0;
}

static uint16_t r16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t sum(uint32_t acc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += r16(p + i);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* Frames out must be well formed whatever came in. */
static void check_out(const uint8_t *f, size_t n)
{
	if (n > SQB_MMDS_MAX_FRAME || n < 14)
		abort();
	if (r16(f + 12) == 0x0806) {
		if (n != 42)
			abort();
		return;
	}
	if (r16(f + 12) != 0x0800 || n < 54 || r16(f + 16) != n - 14 || sum(0, f + 14, 20))
		abort();
	{
		const uint8_t *ip = f + 14;
		uint32_t acc = r16(ip + 12) + r16(ip + 14) + r16(ip + 16) + r16(ip + 18) + 6 +
			       (uint32_t)(n - 34);
		if (sum(acc, f + 34, n - 34))
			abort();
	}
}

static void drain(sqb_mmds_ns *ns, uint64_t now)
{
	uint8_t out[SQB_MMDS_MAX_FRAME];
	size_t n;
	int guard = 0;

	while ((n = sqb_mmds_ns_next_frame(ns, out, sizeof(out), now)) != 0) {
		if (n > sizeof(out))
			abort();
		check_out(out, n);
		if (++guard > 100000)
			abort(); /* a stack that never stops producing */
	}
	if (sqb_mmds_ns_pending(ns))
		abort();
}

/* An answer must be one complete HTTP/1.x response whose Content-Length is
 * the length of what follows its head. */
static void check_http(const uint8_t *r, size_t n)
{
	const char *end, *cl;
	char *s = malloc(n + 1);

	if (!s)
		return;
	memcpy(s, r, n);
	s[n] = 0;
	end = strstr(s, "\r\n\r\n");
	cl = strstr(s, "Content-Length: ");
	if (n < 12 || memcmp(s, "HTTP/1.", 7) || !end || (cl && cl > end) ||
	    (cl && strtoul(cl + 16, NULL, 10) != n - (size_t)(end + 4 - s)))
		abort();
	free(s);
}

/* HTTP mode (first byte 'H'): byte 1 picks V2 (bit 0) and imds_compat
 * (bit 1); the rest is "document \0 patch \0 request": the real store takes
 * the document and the patch as the API would, then answers the request as
 * the guest's, twice (the second with the clock past every token's TTL). */
static void fuzz_http(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 2, *end = data + size, *doc, *patch, *req;
	size_t ldoc, lpatch, lreq;
	char err[256];
	uint8_t *resp;
	size_t rlen;
	sqb_mmds *m;

	if (size < 2 || sqb_mmds_new(4096, &m))
		return;
	sqb_mmds_set_version(m, (data[1] & 1) ? SQB_MMDS_V2 : SQB_MMDS_V1);
	sqb_mmds_set_imds_compat(m, data[1] & 2);
	doc = p;
	while (p < end && *p)
		p++;
	ldoc = (size_t)(p - doc);
	patch = p < end ? ++p : p;
	while (p < end && *p)
		p++;
	lpatch = (size_t)(p - patch);
	req = p < end ? ++p : p;
	lreq = (size_t)(end - req);
	sqb_mmds_put(m, (const char *)doc, ldoc, err, sizeof(err));
	sqb_mmds_patch(m, (const char *)patch, lpatch, err, sizeof(err));
	for (int i = 0; i < 2; i++) {
		uint8_t *copy = malloc(lreq ? lreq : 1);

		if (!copy)
			break;
		memcpy(copy, req, lreq);
		if (!sqb_mmds_http_respond(m, copy, lreq, i ? 30000000 : 1000, &resp, &rlen)) {
			check_http(resp, rlen);
			free(resp);
		}
		free(copy);
	}
	free(sqb_mmds_get(m, (char **)&resp, &rlen) ? NULL : resp);
	sqb_mmds_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqb_mmds_metrics m = {0};
	struct sqb_mmds_ns_config cfg = {
	    .ipv4 = SQB_MMDS_DEFAULT_IPV4,
	    .respond = respond,
	    .metrics = &m,
	};
	sqb_mmds_ns *ns;
	uint64_t now = 1000;
	size_t at = 0;

	if (size && data[0] == 'H') {
		fuzz_http(data, size);
		return 0;
	}
	if (size && (data[0] & 0x80))
		cfg.verify_csum = true;
	cfg.isn_seed = 0x5eed;
	if (sqb_mmds_ns_new(&cfg, &ns))
		return 0;
	while (at + 2 <= size) {
		size_t n = r16(data + at) & 0x7fff;
		uint8_t *copy;

		at += 2;
		if (n > size - at)
			n = size - at;
		/* an exact-size heap copy, so ASan sees any overread */
		copy = malloc(n ? n : 1);
		if (!copy)
			break;
		memcpy(copy, data + at, n);
		sqb_mmds_ns_detour(ns, copy, n, now);
		free(copy);
		at += n;
		now += 1 + (n % 4) * 2500; /* sometimes past RTOs and evictions */
		drain(ns, now);
	}
	sqb_mmds_ns_free(ns);
	return 0;
}

#ifndef SQB_LIBFUZZER
/* Mutations aimed at the first frames' header bytes (length fields, IHL,
 * data offset, flags, options) as often as anywhere else. */
static size_t aim(size_t n)
{
	(void)n;
	return 2 + vfz_next() % 80;
}

int main(int argc, char **argv)
{
	return vfz_replay_main(argc, argv, "fuzz_mmds", aim);
}
#endif
