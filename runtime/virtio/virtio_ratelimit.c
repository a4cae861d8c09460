/* Token-bucket rate limiter with Firecracker's semantics (its
 * src/vmm/src/rate_limiter/): a bandwidth and an ops bucket, each with size,
 * one-time burst and complete refill time; a failed consume blocks the
 * limiter for 100 ms, an over-sized one succeeds and blocks it for
 * ratio x refill_time.  Time comes from the device's (injectable) clock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_priv.h"

#define NS_PER_MS 1000000ull

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static void tb_init(struct sqb_vio_tb *tb, const struct sqb_vio_bucket *b, uint64_t now)
{
	uint64_t refill_ns, g;

	memset(tb, 0, sizeof(*tb));
	/* Zero size or refill time disables the bucket; so does a refill time
	 * whose nanoseconds overflow (Firecracker refuses it the same way). */
	if (!b || !b->size || !b->refill_time_ms || b->refill_time_ms > UINT64_MAX / NS_PER_MS)
		return;
	refill_ns = b->refill_time_ms * NS_PER_MS;
	g = gcd(b->size, refill_ns);
	tb->enabled = true;
	tb->size = b->size;
	tb->initial_burst = tb->burst = b->one_time_burst;
	tb->refill_ms = b->refill_time_ms;
	tb->budget = b->size;
	tb->last_update = now;
	tb->proc_cap = b->size / g;
	tb->proc_refill = refill_ns / g;
}

void sqb_vio_rl_init(struct sqb_vio_rl *rl, const struct sqb_vio_rl_config *cfg, uint64_t now)
{
	memset(rl, 0, sizeof(*rl));
	tb_init(&rl->bw, cfg ? &cfg->bandwidth : NULL, now);
	tb_init(&rl->ops, cfg ? &cfg->ops : NULL, now);
}

static void tb_replenish(struct sqb_vio_tb *tb, uint64_t now)
{
	uint64_t delta = now > tb->last_update ? now - tb->last_update : 0;
	unsigned __int128 tokens, adj;

	if (delta >= tb->refill_ms * NS_PER_MS) {
		tb->budget = tb->size;
		tb->last_update = now;
		return;
	}
	tokens = (unsigned __int128)delta * tb->proc_cap / tb->proc_refill;
	/* Advance by the time those whole tokens took (rounded up), carrying
	 * the fraction of a token over to the next refill. */
	adj = tokens * tb->proc_refill / tb->proc_cap;
	if ((tokens * tb->proc_refill) % tb->proc_cap)
		adj++;
	tb->last_update += (uint64_t)adj;
	tb->budget =
	    tb->budget + (uint64_t)tokens > tb->size ? tb->size : tb->budget + (uint64_t)tokens;
}

enum tb_result { TB_OK, TB_FAIL, TB_OVER };

/* Firecracker's TokenBucket::reduce(); *over_ms is the block time of an
 * over-consumption: (tokens - budget) / size x refill_time. */
static enum tb_result tb_reduce(struct sqb_vio_tb *tb, uint64_t tokens, uint64_t now,
				uint64_t *over_ns)
{
	if (tb->burst > 0) {
		if (tb->burst >= tokens) {
			tb->burst -= tokens;
			tb->last_update = now;
			return TB_OK;
		}
		tokens -= tb->burst;
		tb->burst = 0;
	}
	if (tokens > tb->budget) {
		tb_replenish(tb, now);
		if (tokens > tb->size) {
			tokens -= tb->budget;
			tb->budget = 0;
			*over_ns =
			    (uint64_t)((unsigned __int128)tokens * tb->refill_ms / tb->size) *
			    NS_PER_MS;
			return TB_OVER;
		}
		if (tokens > tb->budget)
			return TB_FAIL;
	}
	tb->budget -= tokens;
	return TB_OK;
}

bool sqb_vio_rl_consume(struct sqb_vio_rl *rl, uint64_t tokens, enum sqb_vio_tok t, uint64_t now,
			uint64_t *retry_at)
{
	struct sqb_vio_tb *tb = t == SQB_VIO_TOK_BYTES ? &rl->bw : &rl->ops;
	uint64_t over = 0;

	if (rl->blocked) {
		*retry_at = rl->blocked_until;
		return false;
	}
	if (!tb->enabled)
		return true;
	switch (tb_reduce(tb, tokens, now, &over)) {
	case TB_OK:
		return true;
	case TB_OVER:
		rl->blocked = true;
		rl->blocked_until = now + over;
		*retry_at = rl->blocked_until;
		return true;
	default:
		rl->blocked = true;
		rl->blocked_until = now + SQB_VIO_RL_REFILL_TIMER_NS;
		*retry_at = rl->blocked_until;
		return false;
	}
}

/* A lone bucket (virtio.h): what reduce() takes is taken; a failure or an
 * over-consumption is "no" (the serial console drops those bytes, as
 * Firecracker's SerialOut does for both). */
struct sqb_vio_tbucket {
	struct sqb_vio_tb tb;
};

int sqb_vio_tbucket_new(const struct sqb_vio_bucket *cfg, uint64_t now_ns, sqb_vio_tbucket **out)
{
	sqb_vio_tbucket *b;

	*out = NULL;
	if (!cfg || !cfg->size || !cfg->refill_time_ms)
		return 0; /* disabled: no bucket, nothing limited */
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	tb_init(&b->tb, cfg, now_ns);
	*out = b;
	return 0;
}

bool sqb_vio_tbucket_take(sqb_vio_tbucket *b, uint64_t tokens, uint64_t now_ns)
{
	uint64_t over = 0;

	return !b || !b->tb.enabled || tb_reduce(&b->tb, tokens, now_ns, &over) == TB_OK;
}

void sqb_vio_tbucket_free(sqb_vio_tbucket *b)
{
	free(b);
}

void sqb_vio_rl_replenish(struct sqb_vio_rl *rl, uint64_t tokens, enum sqb_vio_tok t)
{
	struct sqb_vio_tb *tb = t == SQB_VIO_TOK_BYTES ? &rl->bw : &rl->ops;

	if (!tb->enabled)
		return;
	if (tb->burst > 0) {
		tb->burst =
		    tb->burst + tokens > tb->initial_burst ? tb->initial_burst : tb->burst + tokens;
		return;
	}
	tb->budget = tb->budget + tokens > tb->size ? tb->size : tb->budget + tokens;
}

bool sqb_vio_rl_expire(struct sqb_vio_rl *rl, uint64_t now)
{
	if (rl->blocked && now >= rl->blocked_until)
		rl->blocked = false;
	return !rl->blocked;
}
