/* mmds_store.c: the MMDS data store (Firecracker's mmds/data_store.rs) and
 * its session tokens (mmds/token.rs); the guest HTTP semantics live in
 * mmds_http.c and share the store through mmds_priv.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mmds.h"
#include "mmds_json.h"
#include "mmds_priv.h"

int sqb_mmds_new(size_t limit, sqb_mmds **out)
{
	sqb_mmds *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return SQB_MMDS_E_NOMEM;
	m->doc = sqb_json_new(SQB_J_NULL);
	if (!m->doc) {
		free(m);
		return SQB_MMDS_E_NOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->version = SQB_MMDS_V1; /* Firecracker's MmdsVersion::default() */
	m->limit = limit;
	*out = m;
	return SQB_MMDS_OK;
}

void sqb_mmds_free(sqb_mmds *m)
{
	if (!m)
		return;
	sqb_json_free(m->doc);
	explicit_bzero(m->tokens, sizeof(m->tokens));
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The getters take a const handle (the other half reads them), but the
 * mutex inside is not const: the lock is the only thing touched. */
#define LOCK(m)	  pthread_mutex_lock(&((sqb_mmds *)(m))->lock)
#define UNLOCK(m) pthread_mutex_unlock(&((sqb_mmds *)(m))->lock)

void sqb_mmds_set_version(sqb_mmds *m, enum sqb_mmds_version v)
{
	LOCK(m);
	m->version = v;
	UNLOCK(m);
}

enum sqb_mmds_version sqb_mmds_version(const sqb_mmds *m)
{
	enum sqb_mmds_version v;

	LOCK(m);
	v = m->version;
	UNLOCK(m);
	return v;
}

void sqb_mmds_set_imds_compat(sqb_mmds *m, bool on)
{
	LOCK(m);
	m->imds_compat = on;
	UNLOCK(m);
}

bool sqb_mmds_imds_compat(const sqb_mmds *m)
{
	bool on;

	LOCK(m);
	on = m->imds_compat;
	UNLOCK(m);
	return on;
}

void sqb_mmds_set_limit(sqb_mmds *m, size_t limit)
{
	LOCK(m);
	m->limit = limit;
	UNLOCK(m);
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen) {
		strncpy(err, msg, errlen - 1);
		err[errlen - 1] = '\0';
	}
}

/* Firecracker measures serde_json::to_vec(&value).len(): the compact text. */
static int fits(const struct sqb_jv *v, size_t limit, int *r)
{
	char *txt;
	size_t len;

	*r = sqb_json_compact(v, &txt, &len);
	if (*r)
		return 0;
	free(txt);
	return len <= limit;
}

int sqb_mmds_put(sqb_mmds *m, const char *body, size_t len, char *err, size_t errlen)
{
	struct sqb_jv *v;
	int r;

	r = sqb_json_parse(body, len, &v, err, errlen);
	if (r)
		return r;
	LOCK(m);
	if (!fits(v, m->limit, &r)) {
		UNLOCK(m);
		sqb_json_free(v);
		if (r)
			return r;
		set_err(err, errlen, SQB_MMDS_MSG_TOO_LARGE);
		return SQB_MMDS_E_TOO_LARGE;
	}
	sqb_json_free(m->doc);
	m->doc = v;
	m->initialized = true;
	UNLOCK(m);
	return SQB_MMDS_OK;
}

int sqb_mmds_patch(sqb_mmds *m, const char *body, size_t len, char *err, size_t errlen)
{
	struct sqb_jv *patch, *copy;
	int r;

	r = sqb_json_parse(body, len, &patch, err, errlen);
	if (r)
		return r;
	LOCK(m);
	if (!m->initialized) {
		UNLOCK(m);
		sqb_json_free(patch);
		set_err(err, errlen, SQB_MMDS_MSG_NOT_INIT);
		return SQB_MMDS_E_NOT_INIT;
	}
	/* Patch a copy and commit it only if it fits (data_store.rs). */
	copy = sqb_json_clone(m->doc);
	r = copy ? sqb_json_merge_patch(&copy, patch) : SQB_MMDS_E_NOMEM;
	if (!r && !fits(copy, m->limit, &r) && !r) {
		set_err(err, errlen, SQB_MMDS_MSG_TOO_LARGE);
		r = SQB_MMDS_E_TOO_LARGE;
	}
	if (!r) {
		sqb_json_free(m->doc);
		m->doc = copy;
		copy = NULL;
	}
	UNLOCK(m);
	sqb_json_free(copy);
	sqb_json_free(patch);
	return r;
}

int sqb_mmds_get(sqb_mmds *m, char **out, size_t *out_len)
{
	int r;

	LOCK(m);
	/* Firecracker's API answers "{}" for a null data store (parsed_request.rs,
	 * success_response_with_mmds_value): before any PUT, after a snapshot
	 * load, and after PUT "null" alike.  The guest sees "null" instead. */
	if (m->doc->type == SQB_J_NULL) {
		*out = strdup("{}");
		*out_len = 2;
		r = *out ? SQB_MMDS_OK : SQB_MMDS_E_NOMEM;
	} else {
		r = sqb_json_compact(m->doc, out, out_len);
	}
	UNLOCK(m);
	return r;
}

void sqb_mmds_reset(sqb_mmds *m)
{
	LOCK(m);
	sqb_json_clear(m->doc); /* in place: a reset cannot fail for memory */
	m->initialized = false;
	explicit_bzero(m->tokens, sizeof(m->tokens));
	m->ntokens = 0;
	UNLOCK(m);
}

/* Every counter is a relaxed atomic: the network stack counts on the event
 * loop's thread without the store's lock. */
void sqb_mmds_metrics(sqb_mmds *m, struct sqb_mmds_metrics *out)
{
	const uint64_t *src = (const uint64_t *)&m->metrics;
	uint64_t *dst = (uint64_t *)out;

	_Static_assert(sizeof(*out) % sizeof(uint64_t) == 0, "counters only");
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

struct sqb_mmds_metrics *sqb_mmds_metrics_ref(sqb_mmds *m)
{
	return &m->metrics;
}

/* ---- session tokens ----
 *
 * Firecracker's token is base64 of AES-GCM(expiry) under a key made at
 * start: 12 bytes IV + 8 bytes sealed expiry + 16 bytes tag = 36 bytes, 48
 * base64 characters.  The guest only hands it back, so squib keeps the same
 * shape (48 characters of the standard base64 alphabet from 36 bytes of
 * getrandom(2)) but stores each live token with its expiry instead of
 * sealing the expiry into it.  That needs a bound: SQB_MMDS_MAX_TOKENS live
 * tokens; when a new one would not fit, expired ones go first, then the one
 * that expires first (it has the least life left to lose).  A guest hoarding
 * tokens thus only shortens its own oldest ones.  A reset (snapshot load)
 * forgets them all, as Firecracker's new key invalidates old tokens. */

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	out[o] = '\0'; /* n is a multiple of 3 here: no padding */
}

static int fill_random(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void drop_expired(sqb_mmds *m, uint64_t now_ms)
{
	size_t i, w = 0;

	for (i = 0; i < m->ntokens; i++)
		if (m->tokens[i].expiry_ms > now_ms)
			m->tokens[w++] = m->tokens[i];
	explicit_bzero(&m->tokens[w], (m->ntokens - w) * sizeof(m->tokens[0]));
	m->ntokens = w;
}

int sqb_mmds_token_new_locked(sqb_mmds *m, uint32_t ttl_s, uint64_t now_ms, char *out)
{
	unsigned char raw[SQB_MMDS_TOKEN_RAW];
	struct sqb_mmds_token *t;

	if (fill_random(raw, sizeof(raw)))
		return -1;
	drop_expired(m, now_ms);
	if (m->ntokens == SQB_MMDS_MAX_TOKENS) {
		size_t i, first = 0;

		for (i = 1; i < m->ntokens; i++)
			if (m->tokens[i].expiry_ms < m->tokens[first].expiry_ms)
				first = i;
		t = &m->tokens[first];
	} else {
		t = &m->tokens[m->ntokens++];
	}
	b64(raw, sizeof(raw), t->text);
	t->expiry_ms = now_ms + (uint64_t)ttl_s * 1000;
	explicit_bzero(raw, sizeof(raw));
	memcpy(out, t->text, SQB_MMDS_TOKEN_LEN + 1);
	return 0;
}

/* Constant time in the token's bytes: every live entry is compared in full
 * whatever matches, so timing tells a guest nothing about a prefix. */
bool sqb_mmds_token_valid_locked(const sqb_mmds *m, const char *tok, size_t len, uint64_t now_ms)
{
	unsigned char pad[SQB_MMDS_TOKEN_LEN] = {0};
	bool ok = false;
	size_t i, j;

	if (len != SQB_MMDS_TOKEN_LEN)
		return false;
	memcpy(pad, tok, len);
	for (i = 0; i < m->ntokens; i++) {
		unsigned char diff = 0;

		for (j = 0; j < SQB_MMDS_TOKEN_LEN; j++)
			diff |= (unsigned char)(pad[j] ^ (unsigned char)m->tokens[i].text[j]);
		ok |= (diff == 0) & (m->tokens[i].expiry_ms > now_ms);
	}
	return ok;
}
