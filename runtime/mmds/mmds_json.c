/* mmds_json.c: the JSON value tree of the MMDS data store (see mmds_json.h).
 *
 * Parsing uses yajl's callback parser (not its tree API) so that depth is
 * counted as the text is read and numbers arrive as their source text; yajl
 * checks the grammar and the UTF-8 of every string.  The tree then behaves
 * like Firecracker's serde_json::Value (no preserve_order feature): objects
 * are sorted maps where the last duplicate key wins, and numbers print as
 * serde_json prints the i64/u64/f64 it parsed them into. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "mmds.h"
#include "mmds_json.h"

/* ---- nodes ---- */

struct sqb_jv *sqb_json_new(enum sqb_jtype type)
{
	struct sqb_jv *v = calloc(1, sizeof(*v));

	if (v)
		v->type = type;
	return v;
}

/* Recursion is bounded: no tree is deeper than SQB_JSON_MAX_DEPTH + 1. */
static void free_contents(struct sqb_jv *v)
{
	size_t i;

	if (v->type == SQB_J_ARR)
		for (i = 0; i < v->n; i++)
			sqb_json_free(v->items[i]);
	if (v->type == SQB_J_OBJ)
		for (i = 0; i < v->n; i++) {
			free(v->mems[i].key);
			sqb_json_free(v->mems[i].val);
		}
	free(v->items);
	free(v->mems);
	free(v->s);
}

void sqb_json_free(struct sqb_jv *v)
{
	if (!v)
		return;
	free_contents(v);
	free(v);
}

void sqb_json_clear(struct sqb_jv *v)
{
	free_contents(v);
	memset(v, 0, sizeof(*v));
	v->type = SQB_J_NULL;
}

static char *memdup0(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

struct sqb_jv *sqb_json_clone(const struct sqb_jv *v)
{
	struct sqb_jv *c = sqb_json_new(v->type);
	size_t i;

	if (!c)
		return NULL;
	c->b = v->b;
	if (v->s && !(c->s = memdup0(v->s, v->len)))
		goto fail;
	c->len = v->len;
	if (v->type == SQB_J_ARR && v->n) {
		c->items = calloc(v->n, sizeof(*c->items));
		if (!c->items)
			goto fail;
		c->cap = v->n;
		for (i = 0; i < v->n; i++, c->n++)
			if (!(c->items[i] = sqb_json_clone(v->items[i])))
				goto fail;
	}
	if (v->type == SQB_J_OBJ && v->n) {
		c->mems = calloc(v->n, sizeof(*c->mems));
		if (!c->mems)
			goto fail;
		c->cap = v->n;
		for (i = 0; i < v->n; i++, c->n++) {
			c->mems[i].klen = v->mems[i].klen;
			c->mems[i].key = memdup0(v->mems[i].key, v->mems[i].klen);
			c->mems[i].val = c->mems[i].key ? sqb_json_clone(v->mems[i].val) : NULL;
			if (!c->mems[i].val) {
				c->n++; /* so that sqb_json_free sees the key */
				goto fail;
			}
		}
	}
	return c;
fail:
	sqb_json_free(c);
	return NULL;
}

/* Rust's String ordering: bytes, then length. */
static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);

	if (r)
		return r;
	return al < bl ? -1 : al > bl;
}

/* Index of key in a sorted object, or where it would go (*found false). */
static size_t obj_find(const struct sqb_jv *o, const char *key, size_t klen, bool *found)
{
	size_t lo = 0, hi = o->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = keycmp(o->mems[mid].key, o->mems[mid].klen, key, klen);

		if (!r) {
			*found = true;
			return mid;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct sqb_jv *sqb_json_get(const struct sqb_jv *v, const char *key, size_t klen)
{
	bool found;
	size_t i;

	if (!v || v->type != SQB_J_OBJ)
		return NULL;
	i = obj_find(v, key, klen, &found);
	return found ? v->mems[i].val : NULL;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

/* ---- numbers as serde_json prints them ---- */

/* serde_json keeps an integer token as u64 or i64 when it fits, so it
 * prints back unchanged (yajl already refused leading zeros and "+").  "-0"
 * and integers beyond 64 bits become f64, as do all tokens with a fraction
 * or exponent. */
static bool int_fits(const char *t, size_t n)
{
	bool neg = t[0] == '-';
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : UINT64_MAX;
	size_t i;

	for (i = neg; i < n; i++) {
		unsigned d;

		if (t[i] < '0' || t[i] > '9')
			return false;
		d = (unsigned)(t[i] - '0');
		if (v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	return !(neg && v == 0);
}

/* f64 as serde_json writes it (ryu's shortest round-trip digits in ryu's
 * layout: "12.12", "100.0", "0.001234", "1e16", "1.5e-7").  The shortest
 * digits come from trying %.Ne precisions until strtod gives the value
 * back; that is ryu's digit string except, at most, in ties ryu would break
 * differently, which no test input here reaches.  One more known gap:
 * serde_json without its float_roundtrip feature may parse a long decimal
 * one ULP away from strtod's correctly rounded result. */
static int fmt_f64(double d, char *out, size_t outlen)
{
	char buf[40], digits[20];
	int prec, exp10 = 0, nd = 0, kk, k, i;
	char *p = out;
	size_t left = outlen;

#define PUT(c)                                                                                     \
	do {                                                                                       \
		if (left < 2)                                                                      \
			return -1;                                                                 \
		*p++ = (c);                                                                        \
		left--;                                                                            \
	} while (0)

	if (signbit(d))
		PUT('-');
	d = fabs(d);
	if (d == 0) {
		PUT('0');
		PUT('.');
		PUT('0');
		*p = '\0';
		return 0;
	}
	for (prec = 0; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	for (i = 0; buf[i] && buf[i] != 'e'; i++)
		if (buf[i] >= '0' && buf[i] <= '9')
			digits[nd++] = buf[i];
	exp10 = atoi(buf + i + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	kk = exp10 + 1; /* position of the decimal point after digits[0..kk) */
	k = kk - nd;
	if (k >= 0 && kk <= 16) {
		for (i = 0; i < nd; i++)
			PUT(digits[i]);
		for (i = 0; i < k; i++)
			PUT('0');
		PUT('.');
		PUT('0');
	} else if (kk > 0 && kk <= 16) {
		for (i = 0; i < nd; i++) {
			if (i == kk)
				PUT('.');
			PUT(digits[i]);
		}
	} else if (kk > -5 && kk <= 0) {
		PUT('0');
		PUT('.');
		for (i = 0; i < -kk; i++)
			PUT('0');
		for (i = 0; i < nd; i++)
			PUT(digits[i]);
	} else {
		PUT(digits[0]);
		if (nd > 1) {
			PUT('.');
			for (i = 1; i < nd; i++)
				PUT(digits[i]);
		}
		snprintf(buf, sizeof(buf), "e%d", kk - 1);
		for (i = 0; buf[i]; i++)
			PUT(buf[i]);
	}
	*p = '\0';
	return 0;
#undef PUT
}

/* 0, or -1 when serde_json would refuse the number ("number out of
 * range": the value overflows f64). */
static int canon_number(const char *t, size_t n, char **out, size_t *out_len)
{
	char tmp[64], fmt[40];
	char *txt;
	double d;

	if (int_fits(t, n)) {
		*out = memdup0(t, n);
		*out_len = n;
		return *out ? 0 : SQB_MMDS_E_NOMEM;
	}
	txt = n < sizeof(tmp) ? tmp : malloc(n + 1);
	if (!txt)
		return SQB_MMDS_E_NOMEM;
	memcpy(txt, t, n);
	txt[n] = '\0';
	errno = 0;
	d = strtod(txt, NULL);
	if (txt != tmp)
		free(txt);
	if (isinf(d))
		return -1;
	if (fmt_f64(d, fmt, sizeof(fmt)))
		return -1;
	*out_len = strlen(fmt);
	*out = memdup0(fmt, *out_len);
	return *out ? 0 : SQB_MMDS_E_NOMEM;
}

/* ---- parsing ---- */

/* Strict UTF-8 (Rust's from_utf8: no overlongs, no surrogates, <= U+10FFFF). */
bool sqb_json_utf8_ok(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k, need;
		unsigned lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3;
		else
			return false;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (n - i - 1 < need)
			return false;
		for (k = 1; k <= need; k++) {
			unsigned char d = s[i + k];

			if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf))
				return false;
		}
		i += need + 1;
	}
	return true;
}

/* yajl's own UTF-8 check lets overlong forms, encoded surrogates and code
 * points past U+10FFFF through, and turns a lone surrogate escape into '?';
 * serde_json refuses all of them.  Strings are checked again here, and the
 * escapes in the source text after a successful parse. */
static bool lone_surrogate(const char *t, size_t n, size_t *at)
{
	bool in_str = false;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned u, u2;

		if (t[i] == '"') {
			in_str = !in_str;
			continue;
		}
		if (!in_str || t[i] != '\\')
			continue;
		i++; /* the escaped character (yajl checked the escape) */
		if (i >= n || t[i] != 'u' || i + 4 >= n)
			continue;
		if (sscanf(t + i + 1, "%4x", &u) != 1)
			continue;
		if (u >= 0xdc00 && u <= 0xdfff) {
			*at = i + 5;
			return true;
		}
		if (u < 0xd800 || u > 0xdbff) {
			i += 4;
			continue;
		}
		if (i + 10 >= n || t[i + 5] != '\\' || t[i + 6] != 'u' ||
		    sscanf(t + i + 7, "%4x", &u2) != 1 || u2 < 0xdc00 || u2 > 0xdfff) {
			*at = i + 5;
			return true;
		}
		i += 10;
	}
	return false;
}

struct pctx {
	struct sqb_jv *root;
	struct sqb_jv *stack[SQB_JSON_MAX_DEPTH + 1];
	int depth;
	bool nomem, too_deep, bad_number, bad_utf8;
};

/* Attach v where the parser is: the root, the next array item, or the
 * value of the object member whose key came last. */
static int attach(struct pctx *c, struct sqb_jv *v)
{
	struct sqb_jv *top;

	if (!v) {
		c->nomem = true;
		return 0;
	}
	if (!c->depth) {
		c->root = v;
		return 1;
	}
	top = c->stack[c->depth - 1];
	if (top->type == SQB_J_ARR) {
		if (grow((void **)&top->items, &top->cap, top->n + 1, sizeof(*top->items))) {
			sqb_json_free(v);
			c->nomem = true;
			return 0;
		}
		top->items[top->n++] = v;
	} else {
		top->mems[top->n - 1].val = v;
	}
	return 1;
}

static int cb_null(void *ctx)
{
	return attach(ctx, sqb_json_new(SQB_J_NULL));
}

static int cb_bool(void *ctx, int b)
{
	struct sqb_jv *v = sqb_json_new(SQB_J_BOOL);

	if (v)
		v->b = b;
	return attach(ctx, v);
}

static int cb_number(void *ctx, const char *t, size_t n)
{
	struct pctx *c = ctx;
	struct sqb_jv *v = sqb_json_new(SQB_J_NUM);
	int r;

	if (!v)
		return attach(c, v);
	r = canon_number(t, n, &v->s, &v->len);
	if (r) {
		sqb_json_free(v);
		if (r == SQB_MMDS_E_NOMEM)
			c->nomem = true;
		else
			c->bad_number = true;
		return 0;
	}
	return attach(c, v);
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
	struct sqb_jv *v;

	if (!sqb_json_utf8_ok(s, n)) {
		((struct pctx *)ctx)->bad_utf8 = true;
		return 0;
	}
	v = sqb_json_new(SQB_J_STR);

	if (v) {
		v->s = memdup0(s, n);
		v->len = n;
		if (!v->s) {
			free(v);
			v = NULL;
		}
	}
	return attach(ctx, v);
}

static int open_container(struct pctx *c, enum sqb_jtype t)
{
	struct sqb_jv *v;

	/* serde_json counts down from 128 and fails when it reaches 0:
	 * the 128th nested container is refused. */
	if (c->depth + 1 >= SQB_JSON_MAX_DEPTH) {
		c->too_deep = true;
		return 0;
	}
	v = sqb_json_new(t);
	if (!attach(c, v))
		return 0;
	c->stack[c->depth++] = v;
	return 1;
}

static int cb_start_map(void *ctx)
{
	return open_container(ctx, SQB_J_OBJ);
}

static int cb_start_array(void *ctx)
{
	return open_container(ctx, SQB_J_ARR);
}

static int cb_key(void *ctx, const unsigned char *k, size_t n)
{
	struct pctx *c = ctx;
	struct sqb_jv *o = c->stack[c->depth - 1];
	char *key;

	if (!sqb_json_utf8_ok(k, n)) {
		c->bad_utf8 = true;
		return 0;
	}
	if (grow((void **)&o->mems, &o->cap, o->n + 1, sizeof(*o->mems)) ||
	    !(key = memdup0(k, n))) {
		c->nomem = true;
		return 0;
	}
	o->mems[o->n].key = key;
	o->mems[o->n].klen = n;
	o->mems[o->n].val = NULL;
	o->n++;
	return 1;
}

/* Stable merge sort of members by key, so that among duplicates the one
 * read last stays last; then keep only that one (serde's BTreeMap insert). */
static int sort_members(struct sqb_jv *o)
{
	struct sqb_jmember *tmp, *src, *dst, *sw;
	size_t w, i, n = o->n, out;

	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -1;
	src = o->mems;
	dst = tmp;
	for (w = 1; w < n; w *= 2) {
		for (i = 0; i < n; i += 2 * w) {
			size_t a = i, am = i + w < n ? i + w : n;
			size_t b = am, bm = i + 2 * w < n ? i + 2 * w : n, k = i;

			while (a < am && b < bm)
				dst[k++] =
				    keycmp(src[b].key, src[b].klen, src[a].key, src[a].klen) < 0
					? src[b++]
					: src[a++];
			while (a < am)
				dst[k++] = src[a++];
			while (b < bm)
				dst[k++] = src[b++];
		}
		sw = src;
		src = dst;
		dst = sw;
	}
	for (i = 0, out = 0; i < n; i++) {
		if (i + 1 < n &&
		    !keycmp(src[i].key, src[i].klen, src[i + 1].key, src[i + 1].klen)) {
			free(src[i].key);
			sqb_json_free(src[i].val);
			continue;
		}
		src[out++] = src[i];
	}
	if (src != o->mems)
		memcpy(o->mems, src, out * sizeof(*src));
	o->n = out;
	free(tmp);
	return 0;
}

static int cb_end_map(void *ctx)
{
	struct pctx *c = ctx;

	if (sort_members(c->stack[--c->depth])) {
		c->nomem = true;
		return 0;
	}
	return 1;
}

static int cb_end_array(void *ctx)
{
	struct pctx *c = ctx;

	c->depth--;
	return 1;
}

static const yajl_callbacks parse_cbs = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

/* serde_json counts lines from 1 and columns as the bytes read on the
 * current line. */
static void where(const char *txt, size_t off, unsigned *line, size_t *col)
{
	size_t i, ls = 0;

	*line = 1;
	for (i = 0; i < off; i++)
		if (txt[i] == '\n') {
			(*line)++;
			ls = i + 1;
		}
	*col = off - ls;
}

/* serde_json's Deserializer at EOF: inside a string -> EofWhileParsingString;
 * where a value must come (the start, after ':' or ',', in the middle of a
 * literal or of a number such as "1." or "-") -> EofWhileParsingValue; right
 * after '{' / '[', after a key or after a whole value -> the innermost open
 * container's EofWhileParsingObject / EofWhileParsingList. */
static int tok_byte(char ch)
{
	return ch && strchr("0123456789+-.eEtruefalsn", ch);
}

const char *sqb_json_eof_what(const char *txt, size_t len)
{
	static const char *const lit[] = {"true", "false", "null"};
	char stack[128]; /* the innermost containers (deeper is refused anyway) */
	size_t depth = 0, tok = 0, i;
	int in_str = 0;
	char last = 0; /* the last byte outside strings and whitespace */

	for (i = 0; i < len; i++) {
		char ch = txt[i];

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '"') {
			in_str = 1;
		} else if (ch == '{' || ch == '[') {
			if (depth < sizeof(stack))
				stack[depth] = ch;
			depth++;
		} else if ((ch == '}' || ch == ']') && depth) {
			depth--;
		}
		if (!tok_byte(last) && tok_byte(ch))
			tok = i; /* a number or literal begins */
		last = ch;
	}
	if (in_str)
		return "EOF while parsing a string";
	if (!depth || last == ':' || last == ',')
		return "EOF while parsing a value";
	if (tok_byte(last)) {
		size_t n = len - tok;
		int whole = 0;

		while (n && strchr(" \n\r\t", txt[tok + n - 1]))
			n--;
		for (unsigned k = 0; k < 3; k++)
			if (n == strlen(lit[k]) && !memcmp(txt + tok, lit[k], n))
				whole = 1;
		if (!whole && !(txt[tok + n - 1] >= '0' && txt[tok + n - 1] <= '9'))
			return "EOF while parsing a value"; /* "tru", "1.", "-", "1e" */
	}
	if (depth > sizeof(stack))
		return "EOF while parsing a value";
	return stack[depth - 1] == '{' ? "EOF while parsing an object" : "EOF while parsing a list";
}

int sqb_json_parse(const char *txt, size_t len, struct sqb_jv **out, char *err, size_t errlen)
{
	struct pctx c = {0};
	yajl_handle h;
	yajl_status st;
	size_t off, col;
	unsigned line;
	const char *why;
	unsigned char *msg = NULL;
	char reason[128];

	*out = NULL;
	h = yajl_alloc(&parse_cbs, NULL, &c);
	if (!h)
		return SQB_MMDS_E_NOMEM;
	st = yajl_parse(h, (const unsigned char *)txt, len);
	off = yajl_get_bytes_consumed(h);
	if (st == yajl_status_ok) {
		st = yajl_complete_parse(h);
		off = len;
	}
	if (st == yajl_status_ok && c.root && lone_surrogate(txt, len, &off)) {
		why = "lone surrogate in hex escape";
		goto refuse;
	}
	if (st == yajl_status_ok && c.root) {
		yajl_free(h);
		*out = c.root;
		return SQB_MMDS_OK;
	}
	if (c.nomem) {
		yajl_free(h);
		sqb_json_free(c.root);
		return SQB_MMDS_E_NOMEM;
	}
	if (c.too_deep) {
		why = "recursion limit exceeded";
	} else if (c.bad_number) {
		why = "number out of range";
	} else if (c.bad_utf8) {
		why = "invalid unicode code point";
	} else if (st == yajl_status_ok) {
		why = sqb_json_eof_what(txt, len);
	} else {
		/* yajl says "parse error: <why>\n..." with a context dump
		 * when verbose; the short form is enough with a position. */
		msg = yajl_get_error(h, 0, (const unsigned char *)txt, len);
		why = msg ? (const char *)msg : "invalid JSON";
		if (!strncmp(why, "parse error: ", 13))
			why += 13;
		snprintf(reason, sizeof(reason), "%s", why);
		reason[strcspn(reason, "\n")] = '\0';
		why = reason;
		/* serde_json's wording for input that stops early. */
		if (strstr(reason, "premature EOF"))
			why = sqb_json_eof_what(txt, len);
	}
refuse:
	if (off > len)
		off = len;
	where(txt, off, &line, &col);
	if (err && errlen)
		snprintf(err, errlen, "%s at line %u column %zu", why, line, col);
	if (msg)
		yajl_free_error(h, msg);
	yajl_free(h);
	sqb_json_free(c.root);
	return SQB_MMDS_E_PARSE;
}

/* ---- merge patch (RFC 7396, Firecracker's json_patch) ---- */

static int obj_remove(struct sqb_jv *o, const char *key, size_t klen)
{
	bool found;
	size_t i = obj_find(o, key, klen, &found);

	if (!found)
		return 0;
	free(o->mems[i].key);
	sqb_json_free(o->mems[i].val);
	memmove(&o->mems[i], &o->mems[i + 1], (o->n - i - 1) * sizeof(*o->mems));
	o->n--;
	return 0;
}

/* The member's value slot, inserting a null one when absent (serde's
 * entry().or_insert(Value::Null)). */
static struct sqb_jv **obj_slot(struct sqb_jv *o, const char *key, size_t klen)
{
	bool found;
	size_t i = obj_find(o, key, klen, &found);
	struct sqb_jmember m;

	if (found)
		return &o->mems[i].val;
	m.klen = klen;
	m.key = memdup0(key, klen);
	m.val = sqb_json_new(SQB_J_NULL);
	if (!m.key || !m.val || grow((void **)&o->mems, &o->cap, o->n + 1, sizeof(*o->mems))) {
		free(m.key);
		sqb_json_free(m.val);
		return NULL;
	}
	memmove(&o->mems[i + 1], &o->mems[i], (o->n - i) * sizeof(*o->mems));
	o->mems[i] = m;
	o->n++;
	return &o->mems[i].val;
}

int sqb_json_merge_patch(struct sqb_jv **target, const struct sqb_jv *patch)
{
	size_t i;

	if (patch->type != SQB_J_OBJ) {
		struct sqb_jv *c = sqb_json_clone(patch);

		if (!c)
			return SQB_MMDS_E_NOMEM;
		sqb_json_free(*target);
		*target = c;
		return 0;
	}
	if ((*target)->type != SQB_J_OBJ) {
		struct sqb_jv *o = sqb_json_new(SQB_J_OBJ);

		if (!o)
			return SQB_MMDS_E_NOMEM;
		sqb_json_free(*target);
		*target = o;
	}
	for (i = 0; i < patch->n; i++) {
		const struct sqb_jmember *m = &patch->mems[i];
		struct sqb_jv **slot;
		int r;

		if (m->val->type == SQB_J_NULL) {
			obj_remove(*target, m->key, m->klen);
			continue;
		}
		slot = obj_slot(*target, m->key, m->klen);
		if (!slot)
			return SQB_MMDS_E_NOMEM;
		r = sqb_json_merge_patch(slot, m->val);
		if (r)
			return r;
	}
	return 0;
}

/* ---- compact serialization (serde_json::to_vec) ---- */

struct obuf {
	char *p;
	size_t n, cap;
	bool nomem;
};

static void put(struct obuf *b, const void *s, size_t n)
{
	if (b->nomem)
		return;
	if (grow((void **)&b->p, &b->cap, b->n + n + 1, 1)) {
		b->nomem = true;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

/* serde_json's escaping: the two-character forms for " \ \b \f \n \r \t,
 * \u00xx (lowercase hex) for the other control characters, every other
 * byte (DEL and non-ASCII UTF-8 included) as is. */
static void put_str(struct obuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	put(b, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[7];
		size_t el = 2;

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		put(b, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (ch) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			el = 6;
		}
		put(b, esc, el);
	}
	put(b, s + run, n - run);
	put(b, "\"", 1);
}

static void put_value(struct obuf *b, const struct sqb_jv *v)
{
	size_t i;

	switch (v->type) {
	case SQB_J_NULL:
		put(b, "null", 4);
		break;
	case SQB_J_BOOL:
		if (v->b)
			put(b, "true", 4);
		else
			put(b, "false", 5);
		break;
	case SQB_J_NUM:
		put(b, v->s, v->len);
		break;
	case SQB_J_STR:
		put_str(b, v->s, v->len);
		break;
	case SQB_J_ARR:
		put(b, "[", 1);
		for (i = 0; i < v->n; i++) {
			if (i)
				put(b, ",", 1);
			put_value(b, v->items[i]);
		}
		put(b, "]", 1);
		break;
	case SQB_J_OBJ:
		put(b, "{", 1);
		for (i = 0; i < v->n; i++) {
			if (i)
				put(b, ",", 1);
			put_str(b, v->mems[i].key, v->mems[i].klen);
			put(b, ":", 1);
			put_value(b, v->mems[i].val);
		}
		put(b, "}", 1);
		break;
	}
}

int sqb_json_compact(const struct sqb_jv *v, char **out, size_t *out_len)
{
	struct obuf b = {0};

	put_value(&b, v);
	put(&b, "", 0); /* a buffer even for nothing, for the NUL */
	if (b.nomem) {
		free(b.p);
		return SQB_MMDS_E_NOMEM;
	}
	b.p[b.n] = '\0';
	*out = b.p;
	*out_len = b.n;
	return 0;
}

/* ---- JSON pointer (serde_json's Value::pointer) ---- */

/* serde's parse_index: usize digits, no '+', no leading zero. */
static bool parse_index(const char *t, size_t n, size_t *idx)
{
	size_t v = 0, i;

	if (!n || (t[0] == '0' && n != 1))
		return false;
	for (i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return false;
		if (v > (SIZE_MAX - (size_t)(t[i] - '0')) / 10)
			return false;
		v = v * 10 + (size_t)(t[i] - '0');
	}
	*idx = v;
	return true;
}

const struct sqb_jv *sqb_json_pointer(const struct sqb_jv *v, const char *ptr, size_t len)
{
	size_t pos = 1;
	char *tok;

	if (!len)
		return v;
	if (ptr[0] != '/')
		return NULL;
	tok = malloc(len);
	if (!tok)
		return NULL;
	for (;;) {
		size_t end = pos, tl = 0, idx;

		while (end < len && ptr[end] != '/')
			end++;
		/* serde replaces "~1" first, then "~0": "~01" is "~1". */
		for (size_t i = pos; i < end; i++) {
			if (ptr[i] == '~' && i + 1 < end && ptr[i + 1] == '1') {
				tok[tl++] = '/';
				i++;
			} else {
				tok[tl++] = ptr[i];
			}
		}
		{
			size_t r = 0, w = 0;

			for (; r < tl; r++, w++) {
				if (tok[r] == '~' && r + 1 < tl && tok[r + 1] == '0') {
					tok[w] = '~';
					r++;
				} else {
					tok[w] = tok[r];
				}
			}
			tl = w;
		}
		if (v->type == SQB_J_OBJ)
			v = sqb_json_get(v, tok, tl);
		else if (v->type == SQB_J_ARR && parse_index(tok, tl, &idx) && idx < v->n)
			v = v->items[idx];
		else
			v = NULL;
		if (!v || end >= len)
			break;
		pos = end + 1;
	}
	free(tok);
	return v;
}
