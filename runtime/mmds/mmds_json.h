/* mmds_json.h: the JSON value tree behind the MMDS data store (internal to
 * runtime/mmds and its tests).
 *
 * It behaves like the serde_json::Value Firecracker keeps: objects are
 * BTreeMaps (keys unique, in byte order, the last duplicate wins), numbers
 * are re-emitted as serde_json prints them, and the compact text is what
 * serde_json::to_vec writes (the size the data store limit is measured on). */
#ifndef SQB_MMDS_JSON_H
#define SQB_MMDS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "json_eof.h"

/* serde_json's recursion limit (127 nested containers parse, the 128th is
 * "recursion limit exceeded"): deeper input is a parse error, and every
 * recursive walk over a tree is bounded by it (a merge patch cannot build a
 * tree deeper than the deeper of its two inputs). */
#define SQB_JSON_MAX_DEPTH 128

enum sqb_jtype { SQB_J_NULL, SQB_J_BOOL, SQB_J_NUM, SQB_J_STR, SQB_J_ARR, SQB_J_OBJ };

struct sqb_jv;

struct sqb_jmember {
	char *key; /* NUL-terminated copy; klen bytes (may hold NULs) */
	size_t klen;
	struct sqb_jv *val;
};

struct sqb_jv {
	enum sqb_jtype type;
	bool b;
	char *s;    /* NUM: canonical text; STR: the bytes (NUL-terminated) */
	size_t len; /* of s */
	size_t n, cap;
	struct sqb_jv **items;	  /* ARR */
	struct sqb_jmember *mems; /* OBJ: sorted by key bytes, unique */
};

/* Parse txt[0..len) (one JSON value, whitespace around it allowed).
 * Returns 0, SQB_MMDS_E_PARSE (err: why, and "at line L column C") or
 * SQB_MMDS_E_NOMEM. */
int sqb_json_parse(const char *txt, size_t len, struct sqb_jv **out, char *err, size_t errlen);

struct sqb_jv *sqb_json_new(enum sqb_jtype type);
void sqb_json_free(struct sqb_jv *v);
/* Make v a null in place, freeing what it held. */
void sqb_json_clear(struct sqb_jv *v);
struct sqb_jv *sqb_json_clone(const struct sqb_jv *v);

/* RFC 7396 merge patch of *target with patch, as Firecracker's json_patch.
 * 0 or SQB_MMDS_E_NOMEM (then *target is half patched: patch a copy). */
int sqb_json_merge_patch(struct sqb_jv **target, const struct sqb_jv *patch);

/* Compact text (malloc'd, NUL-terminated).  0 or SQB_MMDS_E_NOMEM. */
int sqb_json_compact(const struct sqb_jv *v, char **out, size_t *out_len);

/* RFC 6901 pointer as serde_json's Value::pointer: "" is the whole value,
 * anything else must start with '/'; ~1 and ~0 unescaped; array indexes are
 * decimal without sign or leading zero.  NULL when absent. */
const struct sqb_jv *sqb_json_pointer(const struct sqb_jv *v, const char *ptr, size_t len);

/* Object member lookup; NULL when absent or v is not an object. */
const struct sqb_jv *sqb_json_get(const struct sqb_jv *v, const char *key, size_t klen);

/* Strict UTF-8 as Rust's str::from_utf8 takes it (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool sqb_json_utf8_ok(const void *p, size_t n);

#endif
