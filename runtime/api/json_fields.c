/* JSON body validation for the Firecracker-compatible API: strict object
 * parsing with yajl's tree API, then a field table that rejects unknown and
 * duplicate keys, wrong types, out-of-range numbers and bad enum values with
 * serde-like messages ("unknown field `x`, expected one of ..."). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_fields.h"

static const char *jtype_name(enum sqb_jtype t)
{
	switch (t) {
	case SQB_JT_STR:
	case SQB_JT_ENUM:
		return "a string";
	case SQB_JT_UINT:
		return "a non-negative integer";
	case SQB_JT_BOOL:
		return "a boolean";
	case SQB_JT_OBJECT:
		return "an object";
	default:
		return "an array";
	}
}

static const char *jval_kind(yajl_val v)
{
	if (!v || YAJL_IS_NULL(v))
		return "null";
	if (YAJL_IS_STRING(v))
		return "string";
	if (YAJL_IS_NUMBER(v))
		return "number";
	if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
		return "boolean";
	if (YAJL_IS_OBJECT(v))
		return "object";
	return "array";
}

static int parse_uint(yajl_val v, uint64_t *out)
{
	const char *r = v->u.number.r;
	uint64_t x = 0;

	if (!r || !*r)
		return -1;
	for (const char *p = r; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*out = x;
	return 0;
}

static int field_error(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	int n = snprintf(err, errlen, "%s", SQB_JSON_ERR_PREFIX);
	if (n > 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, fmt, a, b);
	return -1;
}

static int set_field(const struct sqb_jfield *f, yajl_val v, char *err, size_t errlen)
{
	char buf[64];

	switch (f->type) {
	case SQB_JT_STR:
	case SQB_JT_ENUM:
		if (!YAJL_IS_STRING(v))
			break;
		if (f->type == SQB_JT_ENUM) {
			const char *const *e = f->enums;
			while (*e &&
			       (f->nocase ? strcasecmp(*e, v->u.string) : strcmp(*e, v->u.string)))
				e++;
			if (!*e) {
				char list[256] = "";
				for (e = f->enums; *e; e++)
					snprintf(list + strlen(list), sizeof(list) - strlen(list),
						 "%s`%s`", e == f->enums ? "" : ", ", *e);
				snprintf(buf, sizeof(buf), "%.40s", v->u.string);
				field_error(err, errlen, "unknown variant `%s`, expected one of %s",
					    buf, list);
				return -1;
			}
			*(const char **)f->out = *e; /* canonical spelling */
		} else {
			*(const char **)f->out = v->u.string;
		}
		return 0;
	case SQB_JT_UINT: {
		uint64_t x;
		if (!YAJL_IS_NUMBER(v))
			break;
		if (parse_uint(v, &x) < 0 || x < f->min || x > f->max) {
			snprintf(buf, sizeof(buf), "%llu..=%llu", (unsigned long long)f->min,
				 (unsigned long long)f->max);
			return field_error(
			    err, errlen, "invalid value for field `%s`: expected an integer in %s",
			    f->name, buf);
		}
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
	snprintf(buf, sizeof(buf), "%s, expected %s", jval_kind(v), jtype_name(f->type));
	return field_error(err, errlen, "invalid type for field `%s`: %s", f->name, buf);
}

int sqb_json_fields(yajl_val obj, const struct sqb_jfield *f, unsigned int n, char *err,
		    size_t errlen)
{
	unsigned char seen[32] = {0};

	if (!YAJL_IS_OBJECT(obj))
		return field_error(err, errlen, "invalid type: %s, expected %s", jval_kind(obj),
				   "a JSON object");
	for (size_t k = 0; k < obj->u.object.len; k++) {
		const char *key = obj->u.object.keys[k];
		unsigned int i;

		for (i = 0; i < n && strcmp(f[i].name, key); i++)
			;
		if (i == n) {
			char list[400] = "";
			char kb[64];
			for (unsigned int j = 0; j < n; j++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s`%s`",
					 j ? ", " : "", f[j].name);
			snprintf(kb, sizeof(kb), "%.48s", key);
			return field_error(err, errlen, "unknown field `%s`, expected one of %s",
					   kb, list);
		}
		if (seen[i])
			return field_error(err, errlen, "duplicate field `%s`%s", f[i].name, "");
		seen[i] = 1;
		/* An explicit null means "not given" (serde's Option). */
		if (YAJL_IS_NULL(obj->u.object.values[k]) && !f[i].required)
			continue;
		if (set_field(&f[i], obj->u.object.values[k], err, errlen) < 0)
			return -1;
		if (f[i].present)
			*f[i].present = 1;
	}
	for (unsigned int i = 0; i < n; i++)
		if (f[i].required && !seen[i])
			return field_error(err, errlen, "missing field `%s`%s", f[i].name, "");
	return 0;
}

int sqb_json_parse_object(yajl_val *out, const char *body, size_t len, char *err, size_t errlen)
{
	char ebuf[256];
	char *s;
	yajl_val v;

	*out = NULL;
	if (len == 0) {
		snprintf(err, errlen, "The request body is empty; expected a JSON object.");
		return -1;
	}
	if (memchr(body, 0, len)) {
		snprintf(err, errlen, SQB_JSON_ERR_PREFIX "NUL byte in the request body");
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
	free(s);
	if (!v) {
		for (char *p = ebuf; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		snprintf(err, errlen, SQB_JSON_ERR_PREFIX "malformed JSON: %.200s", ebuf);
		return -1;
	}
	if (!YAJL_IS_OBJECT(v)) {
		snprintf(err, errlen,
			 SQB_JSON_ERR_PREFIX "invalid type: %s, expected a JSON object",
			 jval_kind(v));
		yajl_tree_free(v);
		return -1;
	}
	*out = v;
	return 0;
}

int sqb_json_escape(char *dst, size_t cap, size_t *pos, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		const char *piece = tmp;

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
		size_t l = strlen(piece);
		if (*pos + l >= cap)
			return -1;
		memcpy(dst + *pos, piece, l);
		*pos += l;
		dst[*pos] = 0;
	}
	return 0;
}
