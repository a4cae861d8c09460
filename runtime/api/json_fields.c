/* JSON for the Firecracker-compatible API: bounded-depth parsing with yajl's
 * tree API, a field table that refuses what serde's deny_unknown_fields
 * refuses with serde_json's messages and positions ("unknown field `x`,
 * expected one of ... at line 1 column 9"), and a bounded output builder. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_eof.h"
#include "json_fields.h"

/* ---- where keys and values end (serde_json reports line and column) ---- */

#define JPOS_OBJS 32
#define JPOS_KEYS 32

struct jloc {
	unsigned line;
	size_t col;
};

struct jpos {
	const void *node;
	struct jloc end, key_end[JPOS_KEYS], val_end[JPOS_KEYS];
};

/* The API serves one request at a time on one thread; the table belongs to
 * the last parsed body and is looked up by tree node.  It is made by the
 * parse and freed by sqb_json_positions_free() once the request is answered
 * (33 KiB: static, the pages one request touched stayed with every idle
 * clone).  Without memory for it, errors just carry no position. */
static struct jpos *jpos;
static unsigned jpos_n;

void sqb_json_positions_free(void)
{
	free(jpos);
	jpos = NULL;
	jpos_n = 0;
}

struct jwalk {
	const char *s;
	size_t n, i, line_start;
	unsigned line;
};

static struct jloc here(const struct jwalk *w)
{
	return (struct jloc){w->line, w->i - w->line_start};
}

/* here() for offset off of s, counting its lines from the start. */
static struct jloc loc_at(const char *s, size_t off)
{
	struct jwalk w = {.s = s, .n = off, .i = off, .line = 1};

	for (size_t i = 0; i < off; i++)
		if (s[i] == '\n')
			w.line++, w.line_start = i + 1;
	return here(&w);
}

static void skip_ws(struct jwalk *w)
{
	while (w->i < w->n) {
		char c = w->s[w->i];
		if (c == '\n') {
			w->line++;
			w->line_start = ++w->i;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			w->i++;
		} else if (c == '/' && w->i + 1 < w->n &&
			   w->s[w->i + 1] == '/') { /* yajl allows comments */
			while (w->i < w->n && w->s[w->i] != '\n')
				w->i++;
		} else if (c == '/' && w->i + 1 < w->n && w->s[w->i + 1] == '*') {
			w->i += 2;
			while (w->i + 1 < w->n && !(w->s[w->i] == '*' && w->s[w->i + 1] == '/')) {
				if (w->s[w->i] == '\n')
					w->line++, w->line_start = w->i + 1;
				w->i++;
			}
			w->i += 2;
		} else {
			return;
		}
	}
}

static void skip_string(struct jwalk *w)
{
	for (w->i++; w->i < w->n; w->i++) {
		if (w->s[w->i] == '\\')
			w->i++;
		else if (w->s[w->i] == '"') {
			w->i++;
			return;
		}
	}
}

/* Walk the text and the tree together (yajl keeps key order and duplicates). */
static void walk(struct jwalk *w, yajl_val v)
{
	skip_ws(w);
	if (w->i >= w->n || !v)
		return;
	if (YAJL_IS_OBJECT(v)) {
		struct jpos *p = jpos && jpos_n < JPOS_OBJS ? &jpos[jpos_n++] : NULL;
		if (p)
			memset(p, 0, sizeof(*p)), p->node = v;
		w->i++;
		for (size_t k = 0; k < v->u.object.len; k++) {
			skip_ws(w);
			skip_string(w);
			if (p && k < JPOS_KEYS)
				p->key_end[k] = here(w);
			skip_ws(w);
			w->i++; /* ':' */
			walk(w, v->u.object.values[k]);
			if (p && k < JPOS_KEYS)
				p->val_end[k] = here(w);
			skip_ws(w);
			if (w->i < w->n && w->s[w->i] == ',')
				w->i++;
		}
		skip_ws(w);
		w->i++; /* '}' */
		if (p)
			p->end = here(w);
	} else if (YAJL_IS_ARRAY(v)) {
		w->i++;
		for (size_t k = 0; k < v->u.array.len; k++) {
			walk(w, v->u.array.values[k]);
			skip_ws(w);
			if (w->i < w->n && w->s[w->i] == ',')
				w->i++;
		}
		skip_ws(w);
		w->i++; /* ']' */
	} else if (YAJL_IS_STRING(v)) {
		skip_string(w);
	} else {
		while (w->i < w->n && !strchr(",]} \t\r\n/", w->s[w->i]))
			w->i++;
	}
}

static const struct jpos *pos_of(const void *node)
{
	for (unsigned i = 0; node && i < jpos_n; i++)
		if (jpos[i].node == node)
			return &jpos[i];
	return NULL;
}

static void fmt_loc(char *buf, size_t len, const struct jloc *l)
{
	if (l && l->line)
		snprintf(buf, len, " at line %u column %zu", l->line, l->col);
	else if (len)
		buf[0] = 0;
}

void sqb_json_where_end(yajl_val obj, char *buf, size_t len)
{
	const struct jpos *p = pos_of(obj);
	fmt_loc(buf, len, p ? &p->end : NULL);
}

/* ---- messages ---- */

enum { AT_KEY, AT_VAL, AT_END };

/* SQB_JSON_ERR_PREFIX + message + position + "." (Firecracker's shape). */
static int jerr(char *err, size_t errlen, yajl_val obj, int at, size_t k, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int jerr(char *err, size_t errlen, yajl_val obj, int at, size_t k, const char *fmt, ...)
{
	const struct jpos *p = pos_of(obj);
	const struct jloc *l = NULL;
	char msg[640], loc[48];
	va_list ap;

	if (p)
		l = at == AT_END     ? &p->end
		    : k >= JPOS_KEYS ? NULL
		    : at == AT_KEY   ? &p->key_end[k]
				     : &p->val_end[k];
	fmt_loc(loc, sizeof(loc), l);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, SQB_JSON_ERR_PREFIX "%s%s.", msg, loc);
	return -1;
}

int sqb_json_value_err(yajl_val obj, size_t k, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return jerr(err, errlen, obj, AT_VAL, k, "%s", msg);
}

/* serde's list: "`a`", "`a` or `b`", "one of `a`, `b`, `c`". */
static void one_of(char *list, size_t len, const char *const *names, size_t n, size_t stride)
{
	size_t pos = 0;
#define NAME(i) (*(const char *const *)((const char *)names + (i)*stride))
	list[0] = 0;
	if (n == 2) {
		snprintf(list, len, "`%s` or `%s`", NAME(0), NAME(1));
		return;
	}
	if (n > 2)
		pos = (size_t)snprintf(list, len, "one of ");
	for (size_t i = 0; i < n && pos < len; i++)
		pos += (size_t)snprintf(list + pos, len - pos, "%s`%s`", i ? ", " : "", NAME(i));
#undef NAME
}

/* How serde_json reads a number's text (de.rs parse_number): an unsigned
 * integer that fits u64 is U64, a negative one down to i64::MIN is I64, and
 * everything else is F64 — a fraction, an exponent, an integer too large
 * for either, and `-0`.  *d is the text as a double (strtod rounds
 * correctly, as serde_json's float parser). */
enum jnum { JNUM_U64, JNUM_I64, JNUM_F64 };

static enum jnum classify_number(const char *r, uint64_t *u, double *d)
{
	const char *p = r[0] == '-' ? r + 1 : r;
	uint64_t x = 0;
	int overflow = 0;

	*d = strtod(r, NULL);
	if (strpbrk(r, ".eE") || !*p)
		return JNUM_F64;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			overflow = 1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*u = x;
	if (overflow)
		return JNUM_F64;
	if (r[0] != '-')
		return JNUM_U64;
	return x && x <= (1ull << 63) ? JNUM_I64 : JNUM_F64;
}

/* Rust's `{}` for an f64 (the shortest digits that read back as the same
 * double, the nearest such, a tie rounded up; written out without an
 * exponent) with serde's WithDecimalPoint: ".0" appended when that has no
 * '.': 1e3 is `1000.0`, -0 is `-0.0`. */
static void rust_f64(double d, char *buf, size_t len)
{
	char exact[800], try[40], digits[24];
	const char *ex;
	double a = d < 0 ? -d : d;
	int nd = 1, exp10 = 0, p;
	size_t pos = 0;

	if (d != d || d - d != 0) { /* NaN, infinite: JSON has neither */
		snprintf(buf, len, "%s", d != d ? "NaN" : d < 0 ? "-inf" : "inf");
		return;
	}
	digits[0] = '0';
	/* glibc prints a double's exact decimal expansion: round it by hand,
	 * half up (printf would round a tie to even) */
	snprintf(exact, sizeof(exact), "%.780e", a);
	ex = strchr(exact, 'e');
	for (p = 1; a != 0 && p <= 17; p++) {
		int up = exact[p + 1] >= '5', e10 = atoi(ex + 1);

		digits[0] = exact[0];
		memcpy(digits + 1, exact + 2, (size_t)p - 1);
		for (int i = p - 1; up && i >= 0; i--) {
			up = digits[i] == '9';
			digits[i] = up ? '0' : (char)(digits[i] + 1);
		}
		if (up) { /* 9.99 became 10.0 */
			memmove(digits + 1, digits, (size_t)p - 1);
			digits[0] = '1';
			e10++;
		}
		snprintf(try, sizeof(try), "%c.%.*se%d", digits[0], p - 1, digits + 1, e10);
		if (p == 1)
			snprintf(try, sizeof(try), "%ce%d", digits[0], e10);
		if (strtod(try, NULL) == a) {
			nd = p, exp10 = e10;
			break;
		}
	}
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
#define PUT(c)                                                                                     \
	do {                                                                                       \
		if (pos + 1 < len)                                                                 \
			buf[pos++] = (c);                                                          \
	} while (0)
	if (signbit(d))
		PUT('-');
	if (exp10 < 0) {
		PUT('0');
		PUT('.');
		for (int i = -1; i > exp10; i--)
			PUT('0');
		for (int i = 0; i < nd; i++)
			PUT(digits[i]);
	} else {
		for (int i = 0; i < nd || i <= exp10; i++) {
			if (i == exp10 + 1)
				PUT('.');
			PUT(i < nd ? digits[i] : '0');
		}
		if (nd <= exp10 + 1) {
			PUT('.');
			PUT('0');
		}
	}
#undef PUT
	if (len)
		buf[pos] = 0;
}

/* The length of the valid UTF-8 sequence at s (1 for ASCII), 0 when the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates). */
static size_t utf8_seq(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (u[0] < 0x80)
		return 1;
	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		n = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef)
		n = 3, lo = u[0] == 0xe0 ? 0xa0 : 0x80, hi = u[0] == 0xed ? 0x9f : 0xbf;
	else if (u[0] >= 0xf0 && u[0] <= 0xf4)
		n = 4, lo = u[0] == 0xf0 ? 0x90 : 0x80, hi = u[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (u[1] < lo || u[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return 0;
	return n;
}

/* How many bytes of s, at most max, end on a character boundary: a text
 * shortened for a message never ends in half a character. */
static int utf8_cut(const char *s, size_t max)
{
	size_t n = 0, l;

	while (s[n] && (l = utf8_seq(s + n)) && n + l <= max)
		n += l;
	return (int)n;
}

/* Rust's `{:?}` for a str, as serde's Unexpected::Str writes it: in
 * quotes, with \" \\ \n \r \t and \u{..} for the other ASCII controls
 * (other characters as they are), within len (cut on a boundary). */
static void rust_debug_str(const char *s, char *buf, size_t len)
{
	size_t pos = 0, n;
	char tmp[16];

	if (len < 3) {
		if (len)
			buf[0] = 0;
		return;
	}
	buf[pos++] = '"';
	for (; *s; s += n) {
		unsigned char c = (unsigned char)*s;

		n = utf8_seq(s);
		if (!n) { /* not UTF-8 (yajl checks strings): as U+FFFD */
			memcpy(tmp, "\xef\xbf\xbd", 4);
			n = 1;
		} else if (c == '"' || c == '\\') {
			snprintf(tmp, sizeof(tmp), "\\%c", c);
		} else if (c == '\n' || c == '\r' || c == '\t') {
			snprintf(tmp, sizeof(tmp), "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\u{%x}", c);
		} else {
			memcpy(tmp, s, n);
			tmp[n] = 0;
		}
		if (pos + strlen(tmp) + 2 > len)
			break;
		memcpy(buf + pos, tmp, strlen(tmp));
		pos += strlen(tmp);
	}
	buf[pos++] = '"';
	buf[pos] = 0;
}

/* serde's Unexpected: string "x", integer `1`, floating point `1.5`, ... */
static void unexpected(yajl_val v, char *buf, size_t len)
{
	if (!v || YAJL_IS_NULL(v)) {
		snprintf(buf, len, "null");
	} else if (YAJL_IS_STRING(v)) {
		char q[300];

		rust_debug_str(v->u.string, q, sizeof(q));
		snprintf(buf, len, "string %s", q);
	} else if (YAJL_IS_NUMBER(v) && v->u.number.r) {
		uint64_t u = 0;
		double d;
		char f[400];

		if (classify_number(v->u.number.r, &u, &d) != JNUM_F64) {
			snprintf(buf, len, "integer `%.40s`", v->u.number.r);
		} else {
			rust_f64(d, f, sizeof(f));
			snprintf(buf, len, "floating point `%s`", f);
		}
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
		snprintf(buf, len, "boolean `%s`", YAJL_IS_TRUE(v) ? "true" : "false");
	else if (YAJL_IS_OBJECT(v))
		snprintf(buf, len, "map");
	else
		snprintf(buf, len, "sequence");
}

static const char *expected(const struct sqb_jfield *f, char *buf, size_t len)
{
	if (f->expect)
		return f->expect;
	switch (f->type) {
	case SQB_JT_STR:
	case SQB_JT_ENUM:
		return "a string";
	case SQB_JT_BOOL:
		return "a boolean";
	case SQB_JT_OBJECT:
		return "a map";
	case SQB_JT_ARRAY:
		return "a sequence";
	case SQB_JT_UINT:
		break;
	}
	if (f->min == 0 && f->max == UINT8_MAX)
		return "u8";
	if (f->min == 0 && f->max == UINT16_MAX)
		return "u16";
	if (f->min == 0 && f->max == UINT32_MAX)
		return "u32";
	if (f->min == 0 && f->max == UINT64_MAX)
		return "u64";
	snprintf(buf, len, "an integer in %llu..=%llu", (unsigned long long)f->min,
		 (unsigned long long)f->max);
	return buf;
}

static int set_field(const struct sqb_jfield *f, yajl_val obj, size_t k, char *err, size_t errlen)
{
	yajl_val v = obj->u.object.values[k];
	char ub[440], eb[64];

	switch (f->type) {
	case SQB_JT_STR:
	case SQB_JT_ENUM:
		if (!YAJL_IS_STRING(v))
			break;
		if (f->type == SQB_JT_ENUM) {
			const char *const *e = f->enums;
			size_t ne = 0;
			while (*e &&
			       (f->nocase ? strcasecmp(*e, v->u.string) : strcmp(*e, v->u.string)))
				e++;
			if (!*e) {
				char list[256];
				if (f->bad_msg)
					return jerr(err, errlen, obj, AT_VAL, k, "%s", f->bad_msg);
				while (f->enums[ne])
					ne++;
				one_of(list, sizeof(list), f->enums, ne, sizeof(f->enums[0]));
				return jerr(err, errlen, obj, AT_VAL, k,
					    "unknown variant `%.*s`, expected %s",
					    utf8_cut(v->u.string, 200), v->u.string, list);
			}
			*(const char **)f->out = *e; /* canonical spelling */
		} else {
			if (f->check && f->check(v->u.string) < 0)
				return jerr(err, errlen, obj, AT_VAL, k, "%s", f->bad_msg);
			*(const char **)f->out = v->u.string;
		}
		return 0;
	case SQB_JT_UINT: {
		uint64_t x = 0;
		double d;

		if (!YAJL_IS_NUMBER(v) || !v->u.number.r)
			break;
		/* serde_json: an integer of the wrong range (negative, or above
		 * the field's) is a wrong value; a float (a fraction, an exponent,
		 * -0, past u64 or i64::MIN) is the wrong type */
		switch (classify_number(v->u.number.r, &x, &d)) {
		case JNUM_I64:
			goto bad_value;
		case JNUM_F64:
			goto wrong_type;
		case JNUM_U64:
			break;
		}
		if (x < f->min || x > f->max)
			goto bad_value;
		*(uint64_t *)f->out = x;
		return 0;
	}
	case SQB_JT_BOOL:
		if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
			break;
		*(int *)f->out = YAJL_IS_TRUE(v);
		return 0;
	case SQB_JT_OBJECT:
		if (!YAJL_IS_OBJECT(v))
			break;
		*(yajl_val *)f->out = v;
		return 0;
	case SQB_JT_ARRAY:
		if (!YAJL_IS_ARRAY(v))
			break;
		*(yajl_val *)f->out = v;
		return 0;
	}
wrong_type:
	/* serde_json refuses a float past f64 before any type is looked at */
	if (YAJL_IS_NUMBER(v) && v->u.number.r) {
		uint64_t x;
		double d;

		if (classify_number(v->u.number.r, &x, &d) == JNUM_F64 && d - d != 0)
			return jerr(err, errlen, obj, AT_VAL, k, "number out of range");
	}
	unexpected(v, ub, sizeof(ub));
	return jerr(err, errlen, obj, AT_VAL, k, "invalid type: %s, expected %s", ub,
		    expected(f, eb, sizeof(eb)));
bad_value:
	unexpected(v, ub, sizeof(ub));
	return jerr(err, errlen, obj, AT_VAL, k, "invalid value: %s, expected %s", ub,
		    expected(f, eb, sizeof(eb)));
}

int sqb_json_fields_ex(yajl_val obj, const struct sqb_jfield *f, unsigned int n, unsigned flags,
		       char *err, size_t errlen)
{
	unsigned char seen[32] = {0};
	char ub[440];

	if (n > sizeof(seen))
		return jerr(err, errlen, NULL, AT_END, 0, "internal: field table too large");
	if (!YAJL_IS_OBJECT(obj)) {
		unexpected(obj, ub, sizeof(ub));
		return jerr(err, errlen, NULL, AT_END, 0, "invalid type: %s, expected a map", ub);
	}
	for (size_t k = 0; k < obj->u.object.len; k++) {
		const char *key = obj->u.object.keys[k];
		unsigned int i;

		for (i = 0; i < n && strcmp(f[i].name, key); i++)
			;
		if (i == n) {
			char list[400];
			if (flags & SQB_JF_IGNORE_UNKNOWN)
				continue;
			one_of(list, sizeof(list), &f[0].name, n, sizeof(f[0]));
			return jerr(err, errlen, obj, AT_KEY, k,
				    "unknown field `%.*s`, expected %s", utf8_cut(key, 200), key,
				    list);
		}
		if (seen[i])
			return jerr(err, errlen, obj, AT_KEY, k, "duplicate field `%s`", f[i].name);
		seen[i] = 1;
		/* An explicit null means "not given" (serde's Option). */
		if (YAJL_IS_NULL(obj->u.object.values[k]) && !f[i].required)
			continue;
		if (set_field(&f[i], obj, k, err, errlen) < 0)
			return -1;
		if (f[i].present)
			*f[i].present = 1;
	}
	for (unsigned int i = 0; i < n; i++)
		if (f[i].required && !seen[i])
			return jerr(err, errlen, obj, AT_END, 0, "missing field `%s`", f[i].name);
	return 0;
}

int sqb_json_fields(yajl_val obj, const struct sqb_jfield *f, unsigned int n, char *err,
		    size_t errlen)
{
	return sqb_json_fields_ex(obj, f, n, 0, err, errlen);
}

/* ---- parsing ---- */

/* Refuse nesting deeper than SQB_JSON_MAX_DEPTH before yajl builds (and later
 * recursively frees) a tree: a 50 KiB body of '[' must not exhaust the stack. */
static int depth_ok(const char *s, size_t len, struct jloc *at)
{
	struct jwalk w = {.s = s, .n = len, .line = 1};
	unsigned depth = 0;

	while (w.i < len) {
		char c = s[w.i];
		if (c == '"') {
			skip_string(&w);
			continue;
		}
		if (c == '\n')
			w.line++, w.line_start = w.i + 1;
		if (c == '{' || c == '[') {
			if (++depth > SQB_JSON_MAX_DEPTH) {
				w.i++;
				*at = here(&w);
				return 0;
			}
		} else if ((c == '}' || c == ']') && depth) {
			depth--;
		}
		w.i++;
	}
	return 1;
}

static const char *jval_kind(yajl_val v)
{
	if (YAJL_IS_STRING(v))
		return "string";
	if (YAJL_IS_NUMBER(v))
		return "number";
	if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
		return "boolean";
	if (YAJL_IS_ARRAY(v))
		return "array";
	return "null";
}

/* What yajl takes and serde_json does not, or what a C string cannot hold:
 * a comment outside a string (yajl allows them; serde_json's grammar has
 * none) and a \u0000 escape inside one (yajl decodes it into a C string,
 * so "a\u0000b" would silently become "a": a path or a key cut short).
 * Returns 0, or 1 for a comment / 2 for a NUL with *at on its first byte. */
static int text_check(const char *s, size_t n, struct jloc *at)
{
	size_t line_start = 0;
	unsigned line = 1;
	int in_str = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\n') {
			line++;
			line_start = i + 1;
		} else if (in_str && c == '\\') {
			if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) {
				*at = (struct jloc){line, i - line_start + 1};
				return 2;
			}
			i++; /* the escaped character */
		} else if (c == '"') {
			in_str = !in_str;
		} else if (!in_str && c == '/') {
			*at = (struct jloc){line, i - line_start + 1};
			return 1;
		}
	}
	return 0;
}

int sqb_json_parse_object(yajl_val *out, const char *body, size_t len, char *err, size_t errlen)
{
	char ebuf[256];
	struct jloc at;
	struct jwalk w;
	char *s;
	yajl_val v;

	*out = NULL;
	jpos_n = 0;
	if (len == 0) {
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "EOF while parsing a value at line 1 column 0.");
		return -1;
	}
	if (memchr(body, 0, len)) {
		snprintf(err, errlen, SQB_JSON_ERR_PREFIX "NUL byte in the request body.");
		return -1;
	}
	switch (text_check(body, len, &at)) {
	case 1:
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "malformed JSON: a comment is not JSON at line %u "
					     "column %zu.",
			 at.line, at.col);
		return -1;
	case 2:
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "a string holds a NUL character (\\u0000), which "
					     "squib does not accept, at line %u column %zu.",
			 at.line, at.col);
		return -1;
	}
	if (!depth_ok(body, len, &at)) {
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "recursion limit exceeded at line %u column %zu.",
			 at.line, at.col);
		return -1;
	}
	s = malloc(len + 1);
	if (!s) {
		snprintf(err, errlen, "Out of memory");
		return -1;
	}
	memcpy(s, body, len);
	s[len] = 0;
	ebuf[0] = 0;
	v = yajl_tree_parse(s, ebuf, sizeof(ebuf));
	if (!v && strstr(ebuf, "premature EOF")) {
		/* serde_json's words and place: the end of the body */
		struct jloc end = loc_at(body, len);

		free(s);
		snprintf(err, errlen, SQB_JSON_ERR_PREFIX "%s at line %u column %zu.",
			 sqb_json_eof_what(body, len), end.line, end.col);
		return -1;
	}
	if (!v) {
		free(s);
		for (char *p = ebuf; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		snprintf(err, errlen, SQB_JSON_ERR_PREFIX "malformed JSON: %.200s.", ebuf);
		return -1;
	}
	if (!YAJL_IS_OBJECT(v)) {
		free(s);
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "invalid type: %s, expected a JSON object.",
			 jval_kind(v));
		yajl_tree_free(v);
		return -1;
	}
	w = (struct jwalk){.s = s, .n = len, .line = 1};
	if (!jpos)
		jpos = malloc(JPOS_OBJS * sizeof(*jpos));
	walk(&w, v);
	free(s);
	*out = v;
	return 0;
}

int sqb_json_escape(char *dst, size_t cap, size_t *pos, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		size_t l, n;

		if (c >= 0x80) {
			/* a whole UTF-8 sequence as is; a broken one (a message cut
			 * short, bytes from a file name) as U+FFFD, so that every
			 * answer stays valid JSON text (RFC 8259 8.1) */
			n = utf8_seq(s);
			if (!n) {
				memcpy(tmp, "\\ufffd", 7);
				n = 1;
			} else {
				memcpy(tmp, s, n);
				tmp[n] = 0;
			}
			l = strlen(tmp);
			if (*pos + l >= cap)
				return -1;
			memcpy(dst + *pos, tmp, l);
			*pos += l;
			dst[*pos] = 0;
			s += n - 1;
			continue;
		}
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tmp[2] = 0;
		} else if (c < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
		} else {
			tmp[0] = (char)c;
			tmp[1] = 0;
		}
		l = strlen(tmp);
		if (*pos + l >= cap)
			return -1;
		memcpy(dst + *pos, tmp, l);
		*pos += l;
		dst[*pos] = 0;
	}
	return 0;
}

/* ---- bounded builder ---- */

void sqb_jb_init(struct sqb_jb *b, char *buf, size_t cap)
{
	*b = (struct sqb_jb){.buf = buf, .cap = cap};
	if (cap)
		buf[0] = 0;
	else
		b->full = 1;
}

static void jb_put(struct sqb_jb *b, const char *s, size_t l)
{
	if (b->full || b->len + l >= b->cap) {
		b->full = 1;
		return;
	}
	memcpy(b->buf + b->len, s, l);
	b->len += l;
	b->buf[b->len] = 0;
}

static void jb_sep(struct sqb_jb *b)
{
	if (b->comma)
		jb_put(b, ",", 1);
	b->comma = 0;
}

void sqb_jb_open(struct sqb_jb *b, char c)
{
	jb_sep(b);
	jb_put(b, &c, 1);
	b->comma = 0;
}

void sqb_jb_close(struct sqb_jb *b, char c)
{
	jb_put(b, &c, 1);
	b->comma = 1;
}

static void jb_quoted(struct sqb_jb *b, const char *s)
{
	size_t pos;

	jb_put(b, "\"", 1);
	pos = b->len;
	if (!b->full && sqb_json_escape(b->buf, b->cap, &pos, s) < 0)
		b->full = 1;
	b->len = b->full ? b->len : pos;
	jb_put(b, "\"", 1);
}

void sqb_jb_key(struct sqb_jb *b, const char *key)
{
	jb_sep(b);
	jb_quoted(b, key);
	jb_put(b, ":", 1);
	b->comma = 0;
}

void sqb_jb_str(struct sqb_jb *b, const char *s)
{
	jb_sep(b);
	if (s)
		jb_quoted(b, s);
	else
		jb_put(b, "null", 4);
	b->comma = 1;
}

void sqb_jb_u64(struct sqb_jb *b, uint64_t v)
{
	char t[24];
	int l = snprintf(t, sizeof(t), "%llu", (unsigned long long)v);

	jb_sep(b);
	jb_put(b, t, (size_t)l);
	b->comma = 1;
}

void sqb_jb_bool(struct sqb_jb *b, int v)
{
	jb_sep(b);
	jb_put(b, v ? "true" : "false", v ? 4 : 5);
	b->comma = 1;
}

void sqb_jb_null(struct sqb_jb *b)
{
	jb_sep(b);
	jb_put(b, "null", 4);
	b->comma = 1;
}

void sqb_jb_rawval(struct sqb_jb *b, const char *json)
{
	jb_sep(b);
	jb_put(b, json, strlen(json));
	b->comma = 1;
}

int sqb_jb_done(struct sqb_jb *b)
{
	if (!b->full)
		return 0;
	if (b->cap)
		b->buf[0] = 0;
	b->len = 0;
	return -1;
}
