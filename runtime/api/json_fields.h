/* JSON in and out for the API (private to the API).
 *
 *   body ──> sqb_json_parse_object() ── nesting depth bounded first, then the
 *            yajl tree, then a walk that records where each key and value ends
 *   tree ──> sqb_json_fields(spec[]) ──> typed out-pointers, or a serde-style
 *            message ("missing field `x` at line 1 column 21.")
 *   out  <── struct sqb_jb: a bounded builder that fails closed (never writes
 *            past its buffer; a response that does not fit is an error)
 */
#ifndef SQB_API_JSON_FIELDS_H
#define SQB_API_JSON_FIELDS_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

enum sqb_jtype {
	SQB_JT_STR = 1, /* out: const char ** (points into the tree) */
	SQB_JT_UINT,	/* out: uint64_t * ; bounds [min, max] */
	SQB_JT_BOOL,	/* out: int * */
	SQB_JT_ENUM,	/* out: const char ** ; one of enums[] (nocase optional) */
	SQB_JT_OBJECT,	/* out: yajl_val * (any object) */
	SQB_JT_ARRAY,	/* out: yajl_val * */
};

struct sqb_jfield {
	const char *name;
	enum sqb_jtype type;
	int required;
	void *out;
	int *present; /* optional: set to 1 when the key was given (not null) */
	uint64_t min, max;
	const char *const *enums; /* NULL-terminated */
	int nocase;
	const char *expect;  /* optional: serde's "expected ..." text (UINT: "u8", "usize") */
	const char *bad_msg; /* optional: ENUM: message instead of "unknown variant" */
	/* optional, STR: a custom deserializer (MacAddr, Ipv4Addr): < 0 refuses
	 * the string with bad_msg at its place, in the order serde reads it */
	int (*check)(const char *s);
};

/* Firecracker's RequestError::SerdeJson prefix; its messages end in ".". */
#define SQB_JSON_ERR_PREFIX "An error occurred when deserializing the json body of a request: "
/* serde_json's recursion limit; deeper bodies are refused before any tree is built. */
#define SQB_JSON_MAX_DEPTH 128

#define SQB_JF_IGNORE_UNKNOWN 0x1 /* unknown keys are skipped (serde without deny_unknown_fields)  \
				   */

/* Returns 0, or -1 with a complete fault message in err. */
int sqb_json_fields(yajl_val obj, const struct sqb_jfield *f, unsigned int n, char *err,
		    size_t errlen);
int sqb_json_fields_ex(yajl_val obj, const struct sqb_jfield *f, unsigned int n, unsigned flags,
		       char *err, size_t errlen);

/* A custom deserializer's message at the value of obj's k-th key: the
 * prefix, msg, " at line L column C" where that value ends, and ".". */
int sqb_json_value_err(yajl_val obj, size_t k, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Parse body (len bytes, need not be NUL-terminated) into an object tree.
 * The key and value positions its errors cite live until the next parse or
 * sqb_json_positions_free(), which the API server calls after each request. */
void sqb_json_positions_free(void);
int sqb_json_parse_object(yajl_val *out, const char *body, size_t len, char *err, size_t errlen);

/* Append " at line L column C" for where obj ends (missing-field position);
 * nothing when obj's position is unknown. */
void sqb_json_where_end(yajl_val obj, char *buf, size_t len);

/* Append s to a JSON string buffer with escaping; returns 0 or -1 if full
 * (then nothing of the piece that did not fit is written). */
int sqb_json_escape(char *dst, size_t cap, size_t *pos, const char *s);

/* ---- bounded JSON builder ---- */
struct sqb_jb {
	char *buf;
	size_t cap, len;
	int full;  /* something did not fit: the result is unusable */
	int comma; /* a value was written at this level: the next one needs ',' */
};

void sqb_jb_init(struct sqb_jb *b, char *buf, size_t cap);
void sqb_jb_open(struct sqb_jb *b, char c); /* '{' or '[' */
void sqb_jb_close(struct sqb_jb *b, char c);
void sqb_jb_key(struct sqb_jb *b, const char *key);
void sqb_jb_str(struct sqb_jb *b, const char *s); /* NULL: null */
void sqb_jb_u64(struct sqb_jb *b, uint64_t v);
void sqb_jb_bool(struct sqb_jb *b, int v);
void sqb_jb_null(struct sqb_jb *b);
void sqb_jb_rawval(struct sqb_jb *b, const char *json); /* pre-encoded JSON value */
/* 0 when everything fit, -1 otherwise (buf then holds "" ). */
int sqb_jb_done(struct sqb_jb *b);

#endif
