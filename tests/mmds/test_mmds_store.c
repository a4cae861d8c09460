/* mmds.store: the MMDS data store, its JSON, session tokens and guest HTTP
 * answers, against Firecracker's own expectations: the unit tests of
 * src/vmm/src/mmds/{data_store,mod}.rs and dumbo/tcp/endpoint.rs, and the
 * API-level scenarios of tests/integration_tests/functional/test_mmds.py
 * (test_mmds_dummy, test_mmds_limit_scenario, test_guest_mmds_hang, the V2
 * negative cases), plus hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <cmocka.h>

#include "mmds.h"
#include "mmds_json.h"

/* ---- helpers ---- */

struct resp {
	char *raw;
	size_t len;
	int status;
	const char *body; /* into raw */
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

static struct resp req_n(sqb_mmds *m, const char *req, size_t n, uint64_t now_ms)
{
	struct resp r = {0};
	uint8_t *out;
	size_t len;
	const char *sep;

	assert_int_equal(sqb_mmds_http_respond(m, (const uint8_t *)req, n, now_ms, &out, &len), 0);
	r.raw = malloc(len + 1);
	assert_non_null(r.raw);
	memcpy(r.raw, out, len);
	r.raw[len] = '\0';
	free(out);
	r.len = len;
	assert_true(len > 13);
	r.status = atoi(r.raw + 9);
	sep = strstr(r.raw, "\r\n\r\n");
	assert_non_null(sep);
	r.body = sep + 4;
	r.body_len = len - (size_t)(r.body - r.raw);
	return r;
}

static struct resp req(sqb_mmds *m, const char *s, uint64_t now_ms)
{
	return req_n(m, s, strlen(s), now_ms);
}

/* The whole response as micro_http writes it. */
static char *framed(const char *ver, int status, const char *extra, const char *type,
		    const char *body, size_t body_len)
{
	char head[512], *out;
	int hl;

	hl = snprintf(head, sizeof(head),
		      "HTTP/%s %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n%s"
		      "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		      ver, status, extra, type, body_len);
	out = malloc((size_t)hl + body_len + 1);
	assert_non_null(out);
	memcpy(out, head, (size_t)hl);
	memcpy(out + hl, body, body_len);
	out[hl + body_len] = '\0';
	return out;
}

static void expect_exact(sqb_mmds *m, const char *request, uint64_t now, const char *ver,
			 int status, const char *extra, const char *type, const char *body)
{
	struct resp r = req(m, request, now);
	char *want = framed(ver, status, extra, type, body, strlen(body));

	assert_int_equal(r.len, strlen(want));
	assert_memory_equal(r.raw, want, r.len);
	free(want);
	resp_free(&r);
}

#define PLAIN "text/plain"
#define JSON  "application/json"

static void put_ok(sqb_mmds *m, const char *json)
{
	char err[256] = "";

	assert_int_equal(sqb_mmds_put(m, json, strlen(json), err, sizeof(err)), SQB_MMDS_OK);
}

static void patch_ok(sqb_mmds *m, const char *json)
{
	char err[256] = "";

	assert_int_equal(sqb_mmds_patch(m, json, strlen(json), err, sizeof(err)), SQB_MMDS_OK);
}

static void expect_doc(sqb_mmds *m, const char *want)
{
	char *s;
	size_t n;

	assert_int_equal(sqb_mmds_get(m, &s, &n), SQB_MMDS_OK);
	assert_string_equal(s, want);
	assert_int_equal(n, strlen(want));
	free(s);
}

static size_t doc_len(sqb_mmds *m)
{
	char *s;
	size_t n;

	assert_int_equal(sqb_mmds_get(m, &s, &n), SQB_MMDS_OK);
	free(s);
	return n;
}

static char *compact_of(const char *json)
{
	struct sqb_jv *v;
	char err[256] = "", *s;
	size_t n;

	if (sqb_json_parse(json, strlen(json), &v, err, sizeof(err))) {
		print_error("parse of %s failed: %s\n", json, err);
		fail();
	}
	assert_int_equal(sqb_json_compact(v, &s, &n), 0);
	assert_int_equal(strlen(s), n);
	sqb_json_free(v);
	return s;
}

static void expect_compact(const char *json, const char *want)
{
	char *s = compact_of(json);

	assert_string_equal(s, want);
	free(s);
}

static void expect_parse_error(const char *json, size_t len, const char *needle)
{
	struct sqb_jv *v = NULL;
	char err[256] = "";

	assert_int_equal(sqb_json_parse(json, len, &v, err, sizeof(err)), SQB_MMDS_E_PARSE);
	assert_null(v);
	if (!strstr(err, needle)) {
		print_error("error \"%s\" lacks \"%s\"\n", err, needle);
		fail();
	}
	assert_non_null(strstr(err, " at line "));
}

static sqb_mmds *new_store(void)
{
	sqb_mmds *m;

	assert_int_equal(sqb_mmds_new(SQB_MMDS_DEFAULT_LIMIT, &m), SQB_MMDS_OK);
	return m;
}

/* mod.rs populate_mmds(). */
static sqb_mmds *populated(enum sqb_mmds_version v)
{
	sqb_mmds *m = new_store();

	put_ok(m, "{\n \"name\": {\"first\": \"John\", \"second\": \"Doe\"},\n \"age\": 43,\n"
		  " \"phones\": {\"home\": {\"RO\": \"+401234567\", \"UK\": \"+441234567\"},"
		  " \"mobile\": \"+442345678\"}}");
	sqb_mmds_set_version(m, v);
	return m;
}

#define POP_JSON                                                                                   \
	"{\"age\":43,\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"phones\":{\"home\":{"      \
	"\"RO\":\"+401234567\",\"UK\":\"+441234567\"},\"mobile\":\"+442345678\"}}"
#define POP_IMDS "age\nname/\nphones/"

#define MSG_NO_TOKEN                                                                               \
	"No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to "  \
	"specify the session token."
#define MSG_NO_TTL                                                                                 \
	"Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "               \
	"`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime."

/* A token from PUT /latest/api/token (V1 and V2 alike). */
static char *token(sqb_mmds *m, unsigned ttl, uint64_t now)
{
	char rq[256], *t;
	struct resp r;

	snprintf(rq, sizeof(rq),
		 "PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n"
		 "X-metadata-token-ttl-seconds: %u\r\n\r\n",
		 ttl);
	r = req(m, rq, now);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 48);
	t = strndup(r.body, r.body_len);
	resp_free(&r);
	return t;
}

/* ---- JSON ---- */

static void test_json_compact_sorted(void **state)
{
	(void)state;
	/* BTreeMap order (bytes), duplicates: the last wins. */
	expect_compact("{\"b\":1,\"a\":{\"z\":[1,2,{}],\"y\":null},\"B\":true,\"a\":false}",
		       "{\"B\":true,\"a\":false,\"b\":1}");
	expect_compact("{\"ab\":1,\"a\":2,\"\":3,\"\xc3\xa9\":4,\"~\":5}",
		       "{\"\":3,\"a\":2,\"ab\":1,\"~\":5,\"\xc3\xa9\":4}");
	expect_compact(" [ 1 , \"x\" , [ ] , { } , true , null ] ", "[1,\"x\",[],{},true,null]");
	expect_compact("{\"k\":1,\"k\":2,\"k\":3}", "{\"k\":3}");
}

static void test_json_escapes(void **state)
{
	(void)state;
	/* serde_json: short escapes, \u00xx lowercase for other controls,
	 * '/' and DEL and non-ASCII unescaped. */
	expect_compact(
	    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\\u00e9\\ud83d\\ude00\"",
	    "\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\xf0\x9f\x98\x80\"");
	/* An escaped NUL is a string byte like any other. */
	expect_compact("{\"a\\u0000b\":\"\\u0000\"}", "{\"a\\u0000b\":\"\\u0000\"}");
}

static void test_json_numbers(void **state)
{
	(void)state;
	/* Integers that fit i64/u64 print unchanged. */
	expect_compact("[43,-24,0,18446744073709551615,-9223372036854775808]",
		       "[43,-24,0,18446744073709551615,-9223372036854775808]");
	/* Everything else is an f64 in ryu's layout. */
	expect_compact("[12.12,1.0,1e2,1E+2,1.5e-7,0.0001,0.00001,0.000001,1e15,1e16,123456.789e3]",
		       "[12.12,1.0,100.0,100.0,1.5e-7,0.0001,0.00001,1e-6,1000000000000000.0,1e16,"
		       "123456789.0]");
	expect_compact("[1234e-8,1234e-9,1234e20,-5e-324,1.7976931348623157e308]",
		       "[0.00001234,1.234e-6,1.234e23,-5e-324,1.7976931348623157e308]");
	expect_compact("[-0,-0.0,0.0,18446744073709551616,-9223372036854775809,2.5e-300]",
		       "[-0.0,-0.0,0.0,1.8446744073709552e19,-9.223372036854776e18,2.5e-300]");
	expect_compact("[0.1,0.30000000000000004,1e-400,123e-2]",
		       "[0.1,0.30000000000000004,0.0,1.23]");
	expect_parse_error("[1e400]", 7, "number out of range");
	expect_parse_error("-1e309", 6, "number out of range");
}

static void test_json_hostile(void **state)
{
	char *deep;
	size_t i;
	struct sqb_jv *v;
	char err[256];

	(void)state;
	/* 127 nested containers parse; the 128th is serde's recursion limit. */
	deep = malloc(100000);
	assert_non_null(deep);
	for (i = 0; i < 127; i++)
		deep[i] = '[';
	for (i = 0; i < 127; i++)
		deep[127 + i] = ']';
	assert_int_equal(sqb_json_parse(deep, 2 * 127, &v, err, sizeof(err)), SQB_MMDS_OK);
	sqb_json_free(v);
	for (i = 0; i < 128; i++)
		deep[i] = '[';
	for (i = 0; i < 128; i++)
		deep[128 + i] = ']';
	expect_parse_error(deep, 2 * 128, "recursion limit exceeded");
	/* Far deeper, arrays then objects: refused without recursing. */
	memset(deep, '[', 100000);
	expect_parse_error(deep, 100000, "recursion limit exceeded");
	for (i = 0; i + 5 <= 100000; i += 5)
		memcpy(deep + i, "{\"a\":", 5);
	expect_parse_error(deep, 100000, "recursion limit exceeded");
	free(deep);

	/* Invalid UTF-8 in a string, lone continuation, overlong NUL. */
	expect_parse_error("\"\xff\"", 3, "");
	expect_parse_error("{\"a\":\"x\x80y\"}", 11, "");
	expect_parse_error("\"\xc0\x80\"", 4, "invalid unicode code point");
	expect_parse_error("\"\xed\xa0\x80\"", 5, "invalid unicode code point");
	expect_parse_error("\"\xf4\x90\x80\x80\"", 6, "invalid unicode code point");
	expect_parse_error("{\"\xe0\x80\xaf\":1}", 9, "invalid unicode code point");
	/* Lone surrogate escapes (serde refuses them; yajl would pass them
	 * on as '?' or as an encoded surrogate, which the UTF-8 check then
	 * catches). */
	expect_parse_error("\"\\ud800\"", 8, "");
	expect_parse_error("[\"x\\udc00\"]", 11, "");
	expect_parse_error("\"\\ud800\\u0041\"", 14, "");
	expect_parse_error("{\"\\udfff\":1}", 12, "");
	expect_compact("\"\\\\ud800\"", "\"\\\\ud800\"");
	/* Raw control characters, NUL included, are not JSON. */
	expect_parse_error("\"a\x01\"", 4, "");
	expect_parse_error("\"a\0b\"", 5, "");
	expect_parse_error("{\"a\":1}\0", 8, "");
	/* Grammar. */
	expect_parse_error("", 0, "EOF while parsing a value");
	expect_parse_error("   ", 3, "EOF while parsing a value");
	expect_parse_error("{\"a\":1}x", 8, "");
	expect_parse_error("{\"a\":1,}", 8, "");
	expect_parse_error("[01]", 4, "");
	expect_parse_error("{a:1}", 5, "");
	expect_parse_error("{\"a\":\n  tru}", 12, "line 2");
	expect_parse_error("[1,2", 4, "");
	expect_parse_error("/* c */ 1", 9, "");
}

static void test_json_merge_patch(void **state)
{
	struct sqb_jv *doc, *patch;
	char err[256], *s;
	size_t n;
	const char *d = "{\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"age\":\"43\","
			"\"phones\":{\"home\":{\"RO\":\"+40 1234567\",\"UK\":\"+44 1234567\"},"
			"\"mobile\":\"+44 2345678\"}}";
	const char *p = "{\"name\":{\"second\":null,\"last\":\"Kennedy\"},\"age\":\"44\","
			"\"phones\":{\"home\":\"+44 1234567\",\"mobile\":{\"RO\":\"+40 2345678\","
			"\"UK\":\"+44 2345678\"}}}";

	(void)state;
	/* mod.rs test_json_patch. */
	assert_int_equal(sqb_json_parse(d, strlen(d), &doc, err, sizeof(err)), 0);
	assert_int_equal(sqb_json_parse(p, strlen(p), &patch, err, sizeof(err)), 0);
	assert_int_equal(sqb_json_merge_patch(&doc, patch), 0);
	assert_int_equal(sqb_json_compact(doc, &s, &n), 0);
	assert_string_equal(s, "{\"age\":\"44\",\"name\":{\"first\":\"John\",\"last\":\"Kennedy\"},"
			       "\"phones\":{\"home\":\"+44 1234567\",\"mobile\":{\"RO\":\"+40 "
			       "2345678\",\"UK\":\"+44 2345678\"}}}");
	free(s);
	sqb_json_free(patch);

	/* RFC 7396 appendix A corner cases. */
	static const char *const cases[][3] = {
	    {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
	    {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
	    {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
	    {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
	    {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
	    {"{\"a\":\"foo\"}", "null", "null"},
	    {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},
	    {"{\"e\":null}", "{\"a\":1}", "{\"a\":1,\"e\":null}"},
	    {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
	    {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
	};
	sqb_json_free(doc);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    sqb_json_parse(cases[i][0], strlen(cases[i][0]), &doc, err, sizeof(err)), 0);
		assert_int_equal(
		    sqb_json_parse(cases[i][1], strlen(cases[i][1]), &patch, err, sizeof(err)), 0);
		assert_int_equal(sqb_json_merge_patch(&doc, patch), 0);
		assert_int_equal(sqb_json_compact(doc, &s, &n), 0);
		assert_string_equal(s, cases[i][2]);
		free(s);
		sqb_json_free(patch);
		sqb_json_free(doc);
	}
}

static void test_json_pointer(void **state)
{
	const char *d =
	    "{\"a/b\":1,\"m~n\":2,\"arr\":[10,20,{\"x\":\"y\"}],\"\":{\"\":3},\"~1\":4}";
	struct sqb_jv *v;
	const struct sqb_jv *p;
	char err[256];

	(void)state;
	assert_int_equal(sqb_json_parse(d, strlen(d), &v, err, sizeof(err)), 0);
	assert_ptr_equal(sqb_json_pointer(v, "", 0), v);
	assert_null(sqb_json_pointer(v, "a", 1));
	p = sqb_json_pointer(v, "/a~1b", 5);
	assert_non_null(p);
	assert_string_equal(p->s, "1");
	p = sqb_json_pointer(v, "/m~0n", 5);
	assert_non_null(p);
	assert_string_equal(p->s, "2");
	/* "~01" is "~1" (serde replaces ~1 first, then ~0). */
	p = sqb_json_pointer(v, "/~01", 4);
	assert_non_null(p);
	assert_string_equal(p->s, "4");
	p = sqb_json_pointer(v, "/arr/1", 6);
	assert_non_null(p);
	assert_string_equal(p->s, "20");
	p = sqb_json_pointer(v, "/arr/2/x", 8);
	assert_non_null(p);
	assert_string_equal(p->s, "y");
	assert_null(sqb_json_pointer(v, "/arr/01", 7));
	assert_null(sqb_json_pointer(v, "/arr/+1", 7));
	assert_null(sqb_json_pointer(v, "/arr/3", 6));
	assert_null(sqb_json_pointer(v, "/arr/-1", 7));
	assert_null(sqb_json_pointer(v, "/arr/99999999999999999999999", 28));
	assert_null(sqb_json_pointer(v, "/arr/", 5));
	p = sqb_json_pointer(v, "//", 2);
	assert_non_null(p);
	assert_string_equal(p->s, "3");
	sqb_json_free(v);
}

/* ---- data store (data_store.rs) ---- */

static void test_store_mmds(void **state)
{
	sqb_mmds *m = new_store();
	char err[256] = "";
	const char *j = "{\"meta-data\":{\"iam\":\"dummy\"},\"user-data\":\"1522850095\"}";

	(void)state;
	assert_int_equal(sqb_mmds_version(m), SQB_MMDS_V1);
	sqb_mmds_set_version(m, SQB_MMDS_V2);
	assert_int_equal(sqb_mmds_version(m), SQB_MMDS_V2);
	assert_false(sqb_mmds_imds_compat(m));
	assert_int_equal(sqb_mmds_patch(m, "{}", 2, err, sizeof(err)), SQB_MMDS_E_NOT_INIT);
	assert_string_equal(err, "The MMDS data store is not initialized.");
	expect_doc(m, "{}");
	put_ok(m, j);
	expect_doc(m, j);
	patch_ok(m, "{\"user-data\":\"10\"}");
	expect_doc(m, "{\"meta-data\":{\"iam\":\"dummy\"},\"user-data\":\"10\"}");
	/* A bad body says why and where, and changes nothing. */
	assert_int_equal(sqb_mmds_put(m, "{\"a\":", 5, err, sizeof(err)), SQB_MMDS_E_PARSE);
	assert_non_null(strstr(err, "line 1 column"));
	assert_int_equal(sqb_mmds_patch(m, "[1,", 3, err, sizeof(err)), SQB_MMDS_E_PARSE);
	expect_doc(m, "{\"meta-data\":{\"iam\":\"dummy\"},\"user-data\":\"10\"}");
	sqb_mmds_free(m);
}

static void test_store_update(void **state)
{
	sqb_mmds *m = new_store();
	char err[256] = "", *big;
	size_t i;

	(void)state;
	/* data_store.rs test_update_data_store. */
	put_ok(m, "{\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"age\":\"43\"}");
	patch_ok(m, "{\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"age\":\"100\"}");
	put_ok(m, "{\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"age\":43}");
	patch_ok(m, "{\"name\":{\"first\":\"John\",\"second\":null},\"age\":\"43\"}");
	big = malloc(51151 + 32);
	strcpy(big, "{\"new_key\": \"");
	for (i = 0; i < 51151; i++)
		big[13 + i] = 'X';
	strcpy(big + 13 + 51151, "\"}");
	patch_ok(m, big);
	free(big);
	assert_int_equal(sqb_mmds_patch(m, "{\"new_key2\" : \"smth\"}", 21, err, sizeof(err)),
			 SQB_MMDS_E_TOO_LARGE);
	assert_string_equal(err, "The MMDS patch request doesn't fit.");
	assert_int_equal(doc_len(m), 51200);
	patch_ok(m, "{\"new_key\" : \"smth\"}");
	assert_int_equal(doc_len(m), 53);
	patch_ok(m, "{\"new_key2\" : \"smth2\"}");
	expect_doc(m, "{\"age\":\"43\",\"name\":{\"first\":\"John\"},\"new_key\":\"smth\","
		      "\"new_key2\":\"smth2\"}");
	assert_int_equal(doc_len(m), 72);
	sqb_mmds_free(m);
}

static void test_store_put_limit(void **state)
{
	sqb_mmds *m = new_store();
	char err[256] = "", *big;
	size_t i;

	(void)state;
	big = malloc(51300 + 32);
	strcpy(big, "{\"key\": \"");
	for (i = 0; i < 51300; i++)
		big[9 + i] = 'X';
	strcpy(big + 9 + 51300, "\"}");
	assert_int_equal(sqb_mmds_put(m, big, strlen(big), err, sizeof(err)), SQB_MMDS_E_TOO_LARGE);
	assert_string_equal(err, "The MMDS patch request doesn't fit.");
	expect_doc(m, "{}");
	/* Still not initialized: a failed PUT does not count. */
	assert_int_equal(sqb_mmds_patch(m, "{}", 2, err, sizeof(err)), SQB_MMDS_E_NOT_INIT);
	/* The limit is on the compact text: whitespace is free, exactly at
	 * the limit fits. */
	sqb_mmds_set_limit(m, 9);
	put_ok(m, "{ \"a\" :  [ 1 ] }");
	assert_int_equal(doc_len(m), 9);
	sqb_mmds_set_limit(m, 8);
	assert_int_equal(sqb_mmds_put(m, "{\"a\":[1]}", 9, err, sizeof(err)), SQB_MMDS_E_TOO_LARGE);
	free(big);
	sqb_mmds_free(m);
}

/* test_mmds.py test_mmds_dummy (API side). */
static void test_store_dummy(void **state)
{
	sqb_mmds *m = new_store();
	char err[256] = "";
	const char *d = "{\"latest\": {\"meta-data\": {\"ami-id\": \"dummy\"}}}";

	(void)state;
	expect_doc(m, "{}");
	assert_int_equal(sqb_mmds_patch(m, d, strlen(d), err, sizeof(err)), SQB_MMDS_E_NOT_INIT);
	assert_string_equal(err, "The MMDS data store is not initialized.");
	put_ok(m, d);
	expect_doc(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"dummy\"}}}");
	expect_doc(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"dummy\"}}}");
	patch_ok(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"another_dummy\","
		    "\"secret_key\":\"eaasda48141411aeaeae\"}}}");
	expect_doc(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"another_dummy\","
		      "\"secret_key\":\"eaasda48141411aeaeae\"}}}");
	sqb_mmds_free(m);
}

/* test_mmds.py test_mmds_limit_scenario with --mmds-size-limit 51200.  The
 * test's len(str(dict).replace(" ", "")) is the compact JSON length: the
 * same characters with ' for ". */
static void test_store_limit_scenario(void **state)
{
	sqb_mmds *m = new_store();
	char err[256] = "", *big, *s;
	size_t i, n;
	const char *d = "{\"latest\":{\"meta-data\":{\"ami-id\":\"dummy\"}}}";

	(void)state;
	big = malloc(60000);
	put_ok(m, d);
	n = (size_t)sprintf(big,
			    "{\"latest\":{\"meta-data\":{\"ami-id\":\"smth\",\"secret_key\":\"");
	for (i = 0; i < 51200; i++)
		big[n + i] = 'a';
	strcpy(big + n + 51200, "\"}}}");
	assert_int_equal(sqb_mmds_put(m, big, strlen(big), err, sizeof(err)), SQB_MMDS_E_TOO_LARGE);
	expect_doc(m, d);

	/* Fill the store: 51195 bytes of 51200. */
	strcpy(big + n + 51137, "\"}}}");
	patch_ok(m, big);
	assert_int_equal(doc_len(m), 51195);
	{
		const char *p = "{\"latest\":{\"meta-data\":{\"ami-id\":\"smth\","
				"\"secret_key2\":\"bbbbbbbbbb\"}}}";

		assert_int_equal(sqb_mmds_patch(m, p, strlen(p), err, sizeof(err)),
				 SQB_MMDS_E_TOO_LARGE);
	}
	assert_int_equal(sqb_mmds_get(m, &s, &n), 0);
	assert_null(strstr(s, "bbbbbbbbbb"));
	assert_int_equal(n, 51195);
	free(s);

	patch_ok(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"smth\",\"secret_key\":\"a\"}}}");
	assert_int_equal(doc_len(m), 59);
	n = (size_t)sprintf(big,
			    "{\"latest\":{\"meta-data\":{\"ami-id\":\"smth\",\"secret_key\":\"");
	for (i = 0; i < 100; i++)
		big[n + i] = 'a';
	strcpy(big + n + 100, "\"}}}");
	patch_ok(m, big);
	assert_int_equal(doc_len(m), 158);
	free(big);
	sqb_mmds_free(m);
}

/* ---- guest HTTP (mod.rs) ---- */

static void test_http_accept_header(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V1);
	static const char *const plain[] = {
	    "GET http://169.254.169.254/ HTTP/1.0\r\n\r\n",
	    "GET http://169.254.169.254/ HTTP/1.0\r\nAccept:\r\n\r\n",
	    "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: */*\r\n\r\n",
	    "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: text/plain\r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < 4; i++)
		expect_exact(m, plain[i], 0, "1.0", 200, "", PLAIN, POP_IMDS);
	expect_exact(m, "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: application/json\r\n\r\n",
		     0, "1.0", 200, "", JSON, POP_JSON);
	/* Header names in any case, relative URIs, HTTP/1.1. */
	expect_exact(m, "GET / HTTP/1.1\r\naCCEPT:   application/json  \r\n\r\n", 0, "1.1", 200, "",
		     JSON, POP_JSON);
	sqb_mmds_free(m);
}

static void test_http_negative(void **state)
{
	for (int v = SQB_MMDS_V1; v <= SQB_MMDS_V2; v++) {
		sqb_mmds *m = populated((enum sqb_mmds_version)v);

		(void)state;
		expect_exact(m, "GET http:// HTTP/1.0\r\n\r\n", 0, "1.0", 400, "", PLAIN,
			     "Invalid URI.");
		expect_exact(m, "GET home HTTP/1.0\r\n\r\n", 0, "1.0", 400, "", PLAIN,
			     "Invalid URI.");
		expect_exact(m, "GET http://169.254.169.254 HTTP/1.0\r\n\r\n", 0, "1.0", 400, "",
			     PLAIN, "Invalid URI.");
		expect_exact(m, "PATCH http://169.254.169.255/ HTTP/1.0\r\n\r\n", 0, "1.0", 405,
			     "Allow: GET, PUT\r\n", PLAIN, "Not allowed HTTP method.");
		sqb_mmds_free(m);
	}
}

static void test_http_v1(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V1);
	struct sqb_mmds_metrics mt;
	char rq[256], *tok;

	(void)state;
	expect_exact(m, "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: application/json\r\n\r\n",
		     0, "1.0", 200, "", JSON, POP_JSON);
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_no_token, 1);
	assert_int_equal(mt.rx_invalid_token, 0);

	tok = token(m, 60, 0);
	snprintf(rq, sizeof(rq),
		 "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: application/json\r\n"
		 "X-metadata-token: %s\r\n\r\n",
		 tok);
	expect_exact(m, rq, 0, "1.0", 200, "", JSON, POP_JSON);
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_no_token, 1);
	assert_int_equal(mt.rx_invalid_token, 0);

	/* V1 serves an invalid token, and counts it. */
	expect_exact(m,
		     "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: application/json\r\n"
		     "X-metadata-token: INVALID_TOKEN\r\n\r\n",
		     0, "1.0", 200, "", JSON, POP_JSON);
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_no_token, 1);
	assert_int_equal(mt.rx_invalid_token, 1);
	/* ... an expired one too. */
	expect_exact(m, rq, 60000, "1.0", 200, "", JSON, POP_JSON);
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_invalid_token, 2);
	free(tok);
	sqb_mmds_free(m);
}

static void test_http_v2(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V2);
	struct sqb_mmds_metrics mt;
	char rq[512], *tok, *expired;

	(void)state;
	tok = token(m, 60, 1000);
	snprintf(rq, sizeof(rq),
		 "GET http://169.254.169.254/ HTTP/1.0\r\nAccept: application/json\r\n"
		 "X-metadata-token: %s\r\n\r\n",
		 tok);
	expect_exact(m, rq, 1000, "1.0", 200, "", JSON, POP_JSON);
	/* Valid until the last millisecond of its TTL. */
	expect_exact(m, rq, 60999, "1.0", 200, "", JSON, POP_JSON);
	expect_exact(m, rq, 61000, "1.0", 401, "", PLAIN, "MMDS token not valid.");
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_no_token, 0);
	assert_int_equal(mt.rx_invalid_token, 1);

	expect_exact(m, "GET http://169.254.169.254/ HTTP/1.0\r\n\r\n", 1000, "1.0", 401, "", PLAIN,
		     MSG_NO_TOKEN);
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_no_token, 1);

	/* Expired (TTL 1 s) and made-up tokens. */
	expired = token(m, 1, 5000);
	snprintf(rq, sizeof(rq),
		 "GET http://169.254.169.254/ HTTP/1.0\r\nX-metadata-token: %s\r\n\r\n", expired);
	expect_exact(m, rq, 5999, "1.0", 200, "", PLAIN, POP_IMDS);
	expect_exact(m, rq, 6000, "1.0", 401, "", PLAIN, "MMDS token not valid.");
	expect_exact(
	    m, "GET http://169.254.169.254/ HTTP/1.0\r\nX-metadata-token: INVALID_TOKEN\r\n\r\n",
	    5000, "1.0", 401, "", PLAIN, "MMDS token not valid.");
	/* A token one character off, and one of the right length. */
	snprintf(rq, sizeof(rq), "GET / HTTP/1.0\r\nX-aws-ec2-metadata-token: %.47sA\r\n\r\n", tok);
	if (tok[47] != 'A')
		expect_exact(m, rq, 1000, "1.0", 401, "", PLAIN, "MMDS token not valid.");
	snprintf(rq, sizeof(rq), "GET / HTTP/1.0\r\nX-aws-ec2-metadata-token: %s\r\n\r\n", tok);
	expect_exact(m, rq, 1000, "1.0", 200, "", PLAIN, POP_IMDS);
	/* The AWS header names, any case. */
	snprintf(rq, sizeof(rq),
		 "GET /name/first HTTP/1.1\r\nx-AWS-ec2-METADATA-token:   %s \r\n\r\n", tok);
	expect_exact(m, rq, 1000, "1.1", 200, "", PLAIN, "John");
	sqb_mmds_metrics(m, &mt);
	assert_int_equal(mt.rx_invalid_token, 3 + (tok[47] != 'A'));

	/* A reset (snapshot load) invalidates every token. */
	sqb_mmds_reset(m);
	expect_exact(m, rq, 1000, "1.1", 401, "", PLAIN, "MMDS token not valid.");
	free(tok);
	free(expired);
	sqb_mmds_free(m);
}

static void test_http_get_versions(void **state)
{
	(void)state;
	for (int v = SQB_MMDS_V1; v <= SQB_MMDS_V2; v++) {
		sqb_mmds *m = populated((enum sqb_mmds_version)v);
		char rq[512], *tok = token(m, 60, 0);

		snprintf(
		    rq, sizeof(rq),
		    "GET http://169.254.169.254/invalid HTTP/1.0\r\nX-metadata-token: %s\r\n\r\n",
		    tok);
		expect_exact(m, rq, 0, "1.0", 404, "", PLAIN, "Resource not found: /invalid.");
		snprintf(rq, sizeof(rq), "GET /age HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", tok);
		expect_exact(m, rq, 0, "1.1", 501, "", PLAIN,
			     "Cannot retrieve value. The value has an unsupported type.");
		snprintf(rq, sizeof(rq),
			 "GET http://169.254.169.254/ HTTP/1.0\r\nX-metadata-token: %s\r\n"
			 "X-metadata-token-ttl-seconds: application/json\r\n\r\n",
			 tok);
		expect_exact(m, rq, 0, "1.0", 200, "", PLAIN, POP_IMDS);
		/* Slashes collapse; the 404 quotes the path as sent; no query
		 * splitting (Firecracker has none). */
		snprintf(rq, sizeof(rq),
			 "GET //phones///home// HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", tok);
		expect_exact(m, rq, 0, "1.1", 200, "", PLAIN, "RO\nUK");
		snprintf(rq, sizeof(rq),
			 "GET /phones//nope/ HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", tok);
		expect_exact(m, rq, 0, "1.1", 404, "", PLAIN,
			     "Resource not found: /phones//nope/.");
		snprintf(rq, sizeof(rq), "GET /name?x=1 HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n",
			 tok);
		expect_exact(m, rq, 0, "1.1", 404, "", PLAIN, "Resource not found: /name?x=1.");
		free(tok);
		sqb_mmds_free(m);
	}
}

/* data_store.rs test_get_value, through the guest's Accept header. */
static void test_http_get_value(void **state)
{
	static const char *const data =
	    "{\"name\":{\"first\":\"John\",\"second\":\"Doe\"},\"age\":43,"
	    "\"phones\":[\"+401234567\",\"+441234567\"],\"member\":false,"
	    "\"shares_percentage\":12.12,\"balance\":-24,"
	    "\"json_string\":\"{\\n  \\\"hello\\\": \\\"world\\\"\\n}\","
	    "\"empty\":\"\",\"empty_key\":{\"\":\"x\"}}";
	static const struct {
		const char *path, *json, *imds; /* imds NULL: 501 */
	} cases[] = {
	    {"/name", "{\"first\":\"John\",\"second\":\"Doe\"}", "first\nsecond"},
	    {"/age", "43", NULL},
	    {"/phones/", "[\"+401234567\",\"+441234567\"]", NULL},
	    {"/phones", "[\"+401234567\",\"+441234567\"]", NULL},
	    {"/phones/0/", "\"+401234567\"", "+401234567"},
	    {"/member", "false", NULL},
	    {"/shares_percentage", "12.12", NULL},
	    {"/balance", "-24", NULL},
	    {"/json_string", "\"{\\n  \\\"hello\\\": \\\"world\\\"\\n}\"",
	     "{\n  \"hello\": \"world\"\n}"},
	    /* an empty string, and an empty key first: nothing to copy into a
	     * body not yet allocated (the fuzz target's first MMDS find) */
	    {"/empty", "\"\"", ""},
	    {"/empty_key", "{\"\":\"x\"}", ""},
	};
	char rq[256];

	(void)state;
	for (int compat = 0; compat < 2; compat++) {
		sqb_mmds *m = new_store();

		sqb_mmds_set_imds_compat(m, compat);
		assert_int_equal(sqb_mmds_imds_compat(m), compat);
		put_ok(m, data);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			for (int json = 0; json < 2; json++) {
				const char *want = json && !compat ? cases[i].json : cases[i].imds;

				snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nAccept: %s\r\n\r\n",
					 cases[i].path, json ? JSON : PLAIN);
				if (want)
					/* Content-Type follows Accept even when
					 * imds_compat formats the body. */
					expect_exact(m, rq, 0, "1.1", 200, "", json ? JSON : PLAIN,
						     want);
				else
					expect_exact(m, rq, 0, "1.1", 501, "", PLAIN,
						     "Cannot retrieve value. The value has an "
						     "unsupported type.");
				snprintf(rq, sizeof(rq),
					 "GET /invalid_path HTTP/1.1\r\nAccept: %s\r\n\r\n",
					 json ? JSON : PLAIN);
				expect_exact(m, rq, 0, "1.1", 404, "", PLAIN,
					     "Resource not found: /invalid_path.");
			}
		sqb_mmds_free(m);
	}
}

static void test_http_put(void **state)
{
	(void)state;
	for (int v = SQB_MMDS_V1; v <= SQB_MMDS_V2; v++) {
		sqb_mmds *m = populated((enum sqb_mmds_version)v);
		static const char *const xff[] = {"X-Forwarded-For", "x-forwarded-for",
						  "X-fOrWaRdEd-FoR"};
		char rq[512], want[256];
		struct resp r;
		unsigned bad[] = {0, 21601};

		r = req(m,
			"PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n"
			"X-metadata-token-ttl-seconds: 60\r\n\r\n",
			0);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(r.raw, "\r\nX-metadata-token-ttl-seconds: 60\r\n"));
		assert_non_null(strstr(r.raw, "\r\nContent-Type: text/plain\r\n"));
		assert_int_equal(r.body_len, 48);
		for (size_t i = 0; i < r.body_len; i++)
			assert_non_null(
			    strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789+/",
				   r.body[i]));
		{
			/* The whole frame, byte for byte. */
			char *f = framed("1.0", 200, "X-metadata-token-ttl-seconds: 60\r\n", PLAIN,
					 r.body, 48);

			assert_memory_equal(r.raw, f, r.len);
			assert_int_equal(strlen(f), r.len);
			free(f);
		}
		resp_free(&r);
		/* The AWS name, echoed as sent; "+60" is a u32 as Rust reads it. */
		r = req(m,
			"PUT /latest/api/token HTTP/1.1\r\n"
			"x-aws-EC2-metadata-token-ttl-seconds: +60\r\n\r\n",
			0);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(r.raw, "\r\nx-aws-EC2-metadata-token-ttl-seconds: 60\r\n"));
		resp_free(&r);

		for (size_t i = 0; i < 3; i++) {
			snprintf(rq, sizeof(rq),
				 "PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n"
				 "%s: 203.0.113.195\r\n\r\n",
				 xff[i]);
			snprintf(want, sizeof(want),
				 "Invalid header. Reason: Unsupported header name. Key: %s",
				 xff[i]);
			expect_exact(m, rq, 0, "1.0", 400, "", PLAIN, want);
		}
		expect_exact(m,
			     "PUT http://169.254.169.254/token HTTP/1.0\r\n"
			     "X-metadata-token-ttl-seconds: 60\r\n\r\n",
			     0, "1.0", 404, "", PLAIN, "Resource not found: /token.");
		expect_exact(m,
			     "PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n"
			     "X-metadata-token-ttl-seconds: application/json\r\n\r\n",
			     0, "1.0", 400, "", PLAIN,
			     "Invalid header. Reason: Invalid value. "
			     "Key:X-metadata-token-ttl-seconds; Value:application/json");
		expect_exact(m,
			     "PUT /latest/api/token HTTP/1.0\r\n"
			     "X-metadata-token-ttl-seconds: -1\r\n\r\n",
			     0, "1.0", 400, "", PLAIN,
			     "Invalid header. Reason: Invalid value. "
			     "Key:X-metadata-token-ttl-seconds; Value:-1");
		for (size_t i = 0; i < 2; i++) {
			snprintf(rq, sizeof(rq),
				 "PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n"
				 "X-metadata-token-ttl-seconds: %u\r\n\r\n",
				 bad[i]);
			snprintf(want, sizeof(want),
				 "Invalid time to live value provided for token: %u. Please "
				 "provide a value between 1 and 21600.",
				 bad[i]);
			expect_exact(m, rq, 0, "1.0", 400, "", PLAIN, want);
		}
		expect_exact(m, "PUT http://169.254.169.254/latest/api/token HTTP/1.0\r\n\r\n", 0,
			     "1.0", 400, "", PLAIN, MSG_NO_TTL);
		/* The path is sanitized before the comparison. */
		r = req(m,
			"PUT //latest//api///token HTTP/1.1\r\n"
			"X-metadata-token-ttl-seconds: 21600\r\n\r\n",
			0);
		assert_int_equal(r.status, 200);
		resp_free(&r);
		sqb_mmds_free(m);
	}
}

/* Bounded table: the token expiring first makes room; the rest stay. */
static void test_http_token_table(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V2);
	char *first, *second, *last, rq[256];

	(void)state;
	first = token(m, 10, 0);
	second = token(m, 100, 0);
	for (int i = 0; i < 1022; i++)
		free(token(m, 60, 0));
	last = token(m, 60, 0); /* the 1025th: evicts first (expires first) */
	snprintf(rq, sizeof(rq), "GET /name/first HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", first);
	expect_exact(m, rq, 0, "1.1", 401, "", PLAIN, "MMDS token not valid.");
	snprintf(rq, sizeof(rq), "GET /name/first HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n",
		 second);
	expect_exact(m, rq, 0, "1.1", 200, "", PLAIN, "John");
	snprintf(rq, sizeof(rq), "GET /name/first HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", last);
	expect_exact(m, rq, 0, "1.1", 200, "", PLAIN, "John");
	/* Expired ones go before live ones are evicted. */
	free(token(m, 60, 70000));
	expect_exact(m, rq, 70000, "1.1", 401, "", PLAIN, "MMDS token not valid.");
	snprintf(rq, sizeof(rq), "GET /name/first HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n",
		 second);
	expect_exact(m, rq, 70000, "1.1", 200, "", PLAIN, "John");
	free(first);
	free(second);
	free(last);
	sqb_mmds_free(m);
}

/* Before any PUT and after a reset, the guest reads a null document: JSON
 * "null", IMDS unsupported; the API reads "{}". */
static void test_http_null_document(void **state)
{
	sqb_mmds *m = new_store();
	char err[64];

	(void)state;
	expect_exact(m, "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n", 0, "1.1", 200, "",
		     JSON, "null");
	expect_exact(m, "GET / HTTP/1.1\r\n\r\n", 0, "1.1", 501, "", PLAIN,
		     "Cannot retrieve value. The value has an unsupported type.");
	expect_exact(m, "GET /latest HTTP/1.1\r\n\r\n", 0, "1.1", 404, "", PLAIN,
		     "Resource not found: /latest.");
	put_ok(m, "{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\"}}}");
	expect_exact(m, "GET / HTTP/1.1\r\n\r\n", 0, "1.1", 200, "", PLAIN, "latest/");
	sqb_mmds_reset(m);
	expect_doc(m, "{}");
	assert_int_equal(sqb_mmds_patch(m, "{}", 2, err, sizeof(err)), SQB_MMDS_E_NOT_INIT);
	expect_exact(m, "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n", 0, "1.1", 200, "",
		     JSON, "null");
	/* PUT null: initialized, null document; the API still says {}. */
	put_ok(m, "null");
	expect_doc(m, "{}");
	patch_ok(m, "{\"a\":{}}");
	expect_doc(m, "{\"a\":{}}");
	expect_exact(m, "GET / HTTP/1.1\r\n\r\n", 0, "1.1", 200, "", PLAIN, "a/");
	expect_exact(m, "GET /a HTTP/1.1\r\n\r\n", 0, "1.1", 200, "", PLAIN, "");
	sqb_mmds_free(m);
}

/* ---- requests micro_http refuses (dumbo endpoint.rs) ---- */

static void refused(sqb_mmds *m, const char *rq, size_t n, int status, const char *body)
{
	struct resp r = req_n(m, rq, n, 0);
	char *want = framed("1.1", status, "", JSON, body, strlen(body));

	if (r.len != strlen(want) || memcmp(r.raw, want, r.len)) {
		print_error("got:\n%s\nwant:\n%s\n", r.raw, want);
		fail();
	}
	free(want);
	resp_free(&r);
}

#define REFUSED(m, lit, status, body) refused(m, lit, sizeof(lit) - 1, status, body)

static void test_http_refused(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V1);
	static const char *const methods[] = {"POST",  "HEAD", "CONNECT", "OPTIONS",
					      "TRACE", "get",  "DELETE"};
	char rq[256];

	(void)state;
	REFUSED(m, "GET http://169.254.169.255/ HTTP/2.0\r\n\r\n", 501,
		"Unsupported HTTP version.");
	REFUSED(m, "GET / HTTP/1.1 \r\n\r\n", 501, "Unsupported HTTP version.");
	REFUSED(m, "GET   HTTP/1.0\r\n\r\n", 400, "Empty URI not allowed.");
	for (size_t i = 0; i < 7; i++) {
		snprintf(rq, sizeof(rq), "%s http://169.254.169.255/ HTTP/1.0\r\n\r\n", methods[i]);
		refused(m, rq, strlen(rq), 501, "Unsupported HTTP method.");
	}
	REFUSED(m, "GET / HTTP/1.1\r\n", 400, "Invalid request.");
	/* No CRLF at all, bare LFs, too short a request line. */
	REFUSED(m, "GET / HTTP/1.1", 400, "Invalid request.");
	REFUSED(m, "GET / HTTP/1.1\n\n", 400, "Invalid request.");
	REFUSED(m, "GET / HTTP/1\r\n\r\n", 400, "Invalid request.");
	REFUSED(m, "", 400, "Invalid request.");
	REFUSED(m, "GETnospacesatall\r\n\r\n", 400, "Invalid request.");
	REFUSED(m,
		"PATCH http://localhost/home HTTP/1.1\r\nExpect: 100-continue\r\n"
		"Transfer-Encoding: identity; q=0\r\nContent-Length: alpha\r\n\r\n"
		"this is not\n\r\na json \nbody",
		400, "Invalid value. Key:Content-Length; Value: alpha");
	REFUSED(m,
		"PATCH http://localhost/home HTTP/1.1\r\nExpect: 100-continue\r\n"
		"Transfer-Encoding: identity; q=0\r\nContent-Length: 67\r\n"
		"Accept-Encoding: deflate, compress, *;q=0\r\n\r\nthis is not\n\r\na json \nbody",
		400, "Invalid value. Key:Accept-Encoding; Value: *;q=0");
	REFUSED(m, "GET / HTTP/1.1\r\nAccept-Encoding: gzip, identity;q=0\r\n\r\n", 400,
		"Invalid value. Key:Accept-Encoding; Value: identity;q=0");
	REFUSED(m, "GET / HTTP/1.1\r\nAccept-Encoding:\r\n\r\n", 400, "Invalid request.");
	/* A body shorter or longer than Content-Length (test_guest_mmds_hang:
	 * curl -H "Content-Length: 100" -d "some body"). */
	REFUSED(m,
		"GET http://169.254.169.254/ HTTP/1.1\r\nContent-Length: 100\r\n"
		"Accept: application/json\r\n\r\nsome body",
		400, "Invalid request.");
	REFUSED(m, "PUT / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 400, "Invalid request.");
	REFUSED(m, "GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabc", 400, "Invalid request.");
	/* Huge Content-Length: past u32 it is an invalid value; within, the
	 * body is missing. */
	REFUSED(m, "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
		"Invalid value. Key:Content-Length; Value: 99999999999999999999");
	REFUSED(m, "GET / HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n", 400,
		"Invalid value. Key:Content-Length; Value: 4294967296");
	REFUSED(m, "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400,
		"Invalid value. Key:Content-Length; Value: -1");
	REFUSED(m, "GET / HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\nx", 400,
		"Invalid request.");
	/* Header lines without a colon. */
	REFUSED(m, "GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", 400,
		"Header is incorrectly formatted. Key: NoColonHere");
	REFUSED(m, "GET / HTTP/1.1\r\nAccept: text/plain\r\n \r\n\r\n", 400,
		"Header is incorrectly formatted. Key:  ");
	/* Invalid UTF-8: in the URI its own text; in headers, the request. */
	REFUSED(m, "GET /\xff HTTP/1.1\r\n\r\n", 400, "Cannot parse URI as UTF-8.");
	REFUSED(m, "GET /\xed\xa0\x80 HTTP/1.1\r\n\r\n", 400, "Cannot parse URI as UTF-8.");
	REFUSED(m, "GET / HTTP/1.1\r\nX-a: \xc0\xaf\r\n\r\n", 400, "Invalid request.");
	/* NUL bytes are valid UTF-8: quoted back as sent. */
	{
		static const char nul[] = "GET / HTTP/1.1\r\nNo\0Colon\r\n\r\n";
		static const char body[] = "Header is incorrectly formatted. Key: No\0Colon";
		struct resp r = req_n(m, nul, sizeof(nul) - 1, 0);
		char *want = framed("1.1", 400, "", JSON, body, sizeof(body) - 1);
		size_t head = (size_t)(strstr(want, "\r\n\r\n") + 4 - want);

		assert_int_equal(r.len, head + sizeof(body) - 1);
		assert_memory_equal(r.raw, want, r.len);
		free(want);
		resp_free(&r);
	}
	sqb_mmds_free(m);
}

static void test_http_nul_and_odd(void **state)
{
	sqb_mmds *m = populated(SQB_MMDS_V2);
	static const char rq[] = "GET /a\0b HTTP/1.1\r\nX-metadata-token: x\0y\r\n\r\n";
	static const char want_body[] = "Resource not found: /a\0b.";
	char *tok = token(m, 60, 0), buf[256];
	struct resp r;
	int n;

	(void)state;
	/* A NUL in the token: not valid (compared as bytes, whole). */
	r = req_n(m, rq, sizeof(rq) - 1, 0);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	/* A NUL in the path: quoted in the 404 byte for byte. */
	n = snprintf(buf, sizeof(buf), "GET /a%cb HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", 0,
		     tok);
	r = req_n(m, buf, (size_t)n, 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.body_len, sizeof(want_body) - 1);
	assert_memory_equal(r.body, want_body, r.body_len);
	resp_free(&r);
	/* Trailing bytes after a header-less request are not a body. */
	r = req(m, "PATCH / HTTP/1.1\r\n\r\ntrailing", 0);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	/* A body of exactly Content-Length is fine (and unused). */
	snprintf(
	    buf, sizeof(buf),
	    "GET /name/second HTTP/1.1\r\nX-metadata-token: %s\r\nContent-Length: 3\r\n\r\nabc",
	    tok);
	expect_exact(m, buf, 0, "1.1", 200, "", PLAIN, "Doe");
	/* Long garbage request: refused, no crash. */
	{
		size_t big = 1 << 20;
		char *g = malloc(big);

		memset(g, 'A', big);
		r = req_n(m, g, big, 0);
		assert_int_equal(r.status, 400);
		resp_free(&r);
		memcpy(g, "GET /", 5);
		memcpy(g + big - 15, " HTTP/1.1\r\n\r\n", 14);
		g[big - 1] = 'x';
		r = req_n(m, g, big, 0);
		assert_int_equal(r.status, 401);
		resp_free(&r);
		free(g);
	}
	free(tok);
	sqb_mmds_free(m);
}

/* The API thread (put, patch, get, metrics) and the event loop (guest
 * requests, token PUTs) at once, as squib runs them: every answer is whole
 * and is one of the documents put (never a mix); ThreadSanitizer checks the
 * locking (scripts/test.sh runs mmds.* under TSan). */
struct race {
	sqb_mmds *m;
	int bad;
};

static void *race_guest(void *arg)
{
	static const char get[] = "GET /k HTTP/1.1\r\nAccept: application/json\r\n\r\n";
	static const char tok[] = "PUT /latest/api/token HTTP/1.1\r\n"
				  "X-metadata-token-ttl-seconds: 60\r\n\r\n";
	struct race *r = arg;

	for (int i = 0; i < 2000; i++) {
		uint8_t *resp;
		size_t n;
		const char *q = i % 4 ? get : tok;

		if (sqb_mmds_http_respond(r->m, (const uint8_t *)q, strlen(q), 1000 + (uint64_t)i,
					  &resp, &n)) {
			r->bad = 1;
			continue;
		}
		if (q == get && n > 4 && !memcmp(resp, "HTTP/1.1 200", 12) &&
		    !memmem(resp, n, "\"aaaa\"", 6) && !memmem(resp, n, "\"bbbb\"", 6))
			r->bad = 1;
		free(resp);
	}
	return NULL;
}

static void test_api_and_guest_threads(void **state)
{
	struct race r = {0};
	struct sqb_mmds_metrics mx;
	pthread_t th;
	char err[128], *doc;
	size_t n;

	(void)state;
	assert_int_equal(sqb_mmds_new(SQB_MMDS_DEFAULT_LIMIT, &r.m), 0);
	assert_int_equal(sqb_mmds_put(r.m, "{\"k\":\"aaaa\"}", 12, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(&th, NULL, race_guest, &r), 0);
	for (int i = 0; i < 2000; i++) {
		const char *d = i % 2 ? "{\"k\":\"aaaa\"}" : "{\"k\":\"bbbb\"}";

		assert_int_equal(i % 3 ? sqb_mmds_put(r.m, d, 12, err, sizeof(err))
				       : sqb_mmds_patch(r.m, d, 12, err, sizeof(err)),
				 0);
		assert_int_equal(sqb_mmds_get(r.m, &doc, &n), 0);
		assert_true(!strcmp(doc, "{\"k\":\"aaaa\"}") || !strcmp(doc, "{\"k\":\"bbbb\"}"));
		free(doc);
		sqb_mmds_metrics(r.m, &mx);
	}
	pthread_join(th, NULL);
	assert_false(r.bad);
	sqb_mmds_free(r.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_compact_sorted),
	    cmocka_unit_test(test_json_escapes),
	    cmocka_unit_test(test_json_numbers),
	    cmocka_unit_test(test_json_hostile),
	    cmocka_unit_test(test_json_merge_patch),
	    cmocka_unit_test(test_json_pointer),
	    cmocka_unit_test(test_store_mmds),
	    cmocka_unit_test(test_store_update),
	    cmocka_unit_test(test_store_put_limit),
	    cmocka_unit_test(test_store_dummy),
	    cmocka_unit_test(test_store_limit_scenario),
	    cmocka_unit_test(test_http_accept_header),
	    cmocka_unit_test(test_http_negative),
	    cmocka_unit_test(test_http_v1),
	    cmocka_unit_test(test_http_v2),
	    cmocka_unit_test(test_http_get_versions),
	    cmocka_unit_test(test_http_get_value),
	    cmocka_unit_test(test_http_put),
	    cmocka_unit_test(test_http_token_table),
	    cmocka_unit_test(test_http_null_document),
	    cmocka_unit_test(test_http_refused),
	    cmocka_unit_test(test_http_nul_and_odd),
	    cmocka_unit_test(test_api_and_guest_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
