/* Table-driven validation of a JSON object body (private to the API).
 *
 *   yajl tree object ──> sqb_json_fields(spec[]) ──> typed out-pointers
 *                        unknown key / duplicate / wrong type / bad enum /
 *                        missing required  ──> Firecracker-style message
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
	int *present; /* optional: set to 1 when the key was given */
	uint64_t min, max;
	const char *const *enums; /* NULL-terminated */
	int nocase;
};

#define SQB_JSON_ERR_PREFIX "An error occurred when deserializing the json body of a request: "

/* Returns 0, or -1 with a complete fault message in err. */
int sqb_json_fields(yajl_val obj, const struct sqb_jfield *f, unsigned int n, char *err,
		    size_t errlen);

/* Parse body (len bytes, need not be NUL-terminated) into an object tree. */
int sqb_json_parse_object(yajl_val *out, const char *body, size_t len, char *err, size_t errlen);

/* Append s to a JSON string buffer with escaping; returns 0 or -1 if full. */
int sqb_json_escape(char *dst, size_t cap, size_t *pos, const char *s);

#endif
