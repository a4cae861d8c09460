/* Unit: the API's HTTP framing (sqb_http_parse) and JSON field validation
 * (sqb_json_fields) on their own, including every byte-boundary split of a
 * request so partial reads never parse wrongly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "json_fields.h"

static void test_http_complete_and_incremental(void **state)
{
	const char *r =
	    "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET";
	struct sqb_http_req req;
	char err[256];
	size_t full = strlen(r) - 3;

	(void)state;
	for (size_t cut = 0; cut < full; cut++)
		assert_int_equal(sqb_http_parse(r, cut, 51200, &req, err, sizeof(err)),
				 SQB_HTTP_INCOMPLETE);
	assert_int_equal(sqb_http_parse(r, strlen(r), 51200, &req, err, sizeof(err)),
			 SQB_HTTP_DONE);
	assert_string_equal(req.method, "PUT");
	assert_string_equal(req.path, "/machine-config");
	assert_int_equal(req.body_len, 5);
	assert_memory_equal(req.body, "hello", 5);
	assert_int_equal(req.total_len, full);
	assert_int_equal(req.close, 0);
}

static void test_http_rejections(void **state)
{
	static const char *const bad[] = {
	    "GET\r\n\r\n",
	    "GET / HTTP/1.2\r\n\r\n",
	    "GET x HTTP/1.1\r\n\r\n",
	    "GeT / HTTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
	    "PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	    "PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
	    "PUT / HTTP/1.1\r\nContent-Length: 51201\r\n\r\n",
	    "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	struct sqb_http_req req;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (sqb_http_parse(bad[i], strlen(bad[i]), 51200, &req, err, sizeof(err)) !=
		    SQB_HTTP_BAD)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != 0);
	}
}

static void test_http_connection_close_and_expect(void **state)
{
	const char *a = "GET / HTTP/1.0\r\n\r\n";
	const char *b = "PUT /x HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
			"Content-Length: 2\r\n\r\n";
	struct sqb_http_req req;
	char err[256];
	char out[512];

	(void)state;
	assert_int_equal(sqb_http_parse(a, strlen(a), 51200, &req, err, sizeof(err)),
			 SQB_HTTP_DONE);
	assert_int_equal(req.close, 1);
	assert_int_equal(sqb_http_parse(b, strlen(b), 51200, &req, err, sizeof(err)),
			 SQB_HTTP_INCOMPLETE);
	assert_int_equal(req.expect_continue, 1);
	assert_true(sqb_http_format(out, sizeof(out), 204, NULL, 0) > 0);
	assert_non_null(strstr(out, "HTTP/1.1 204 No Content\r\n"));
	assert_true(sqb_http_format(out, sizeof(out), 400, "{\"fault_message\":\"x\"}", 1) > 0);
	assert_non_null(strstr(out, "Content-Length: 21\r\n"));
	assert_int_equal(sqb_http_format(out, 10, 204, NULL, 0), 0);
}

static void test_json_fields(void **state)
{
	static const char *const colours[] = {"Red", "Blue", NULL};
	uint64_t n = 0;
	int b = 0, have_b = 0;
	const char *s = NULL, *c = NULL;
	const struct sqb_jfield f[] = {
	    {"n", SQB_JT_UINT, 1, &n, NULL, 1, 10},
	    {"b", SQB_JT_BOOL, 0, &b, &have_b},
	    {"s", SQB_JT_STR, 0, &s},
	    {"c", SQB_JT_ENUM, 0, &c, NULL, 0, 0, colours, 1},
	};
	static const struct {
		const char *json, *err;
	} cases[] = {
	    {"{\"n\":3,\"b\":true,\"s\":\"x\",\"c\":\"blue\"}", NULL},
	    {"{\"n\":11}", "expected an integer in 1..=10"},
	    {"{\"n\":1e2}", "field `n`"},
	    {"{}", "missing field `n`"},
	    {"{\"n\":1,\"z\":0}", "unknown field `z`, expected one of `n`, `b`, `s`, `c`"},
	    {"{\"n\":1,\"n\":2}", "duplicate field `n`"},
	    {"{\"n\":1,\"c\":\"Green\"}", "unknown variant `Green`, expected one of `Red`, `Blue`"},
	    {"{\"n\":1,\"b\":null}", NULL},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		yajl_val v = NULL;
		int rc;

		assert_int_equal(sqb_json_parse_object(&v, cases[i].json, strlen(cases[i].json),
						       err, sizeof(err)),
				 0);
		err[0] = 0;
		rc = sqb_json_fields(v, f, 4, err, sizeof(err));
		yajl_tree_free(v);
		if (!cases[i].err) {
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, -1);
		if (!strstr(err, cases[i].err))
			fail_msg("%s: got '%s'", cases[i].json, err);
	}
	assert_int_equal(n, 1); /* the last valid case */
}

static void test_json_escape_and_parse_errors(void **state)
{
	char buf[64] = "";
	size_t pos = 0;
	yajl_val v;
	char err[256];

	(void)state;
	assert_int_equal(sqb_json_escape(buf, sizeof(buf), &pos, "a\"b\\c\n"), 0);
	assert_string_equal(buf, "a\\\"b\\\\c\\u000a");
	pos = 0;
	assert_int_equal(sqb_json_escape(buf, 4, &pos, "abcdef"), -1);
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":", 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed JSON"));
	assert_int_equal(sqb_json_parse_object(&v, "{}\0", 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(sqb_json_parse_object(&v, "", 0, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_complete_and_incremental),
	    cmocka_unit_test(test_http_rejections),
	    cmocka_unit_test(test_http_connection_close_and_expect),
	    cmocka_unit_test(test_json_fields),
	    cmocka_unit_test(test_json_escape_and_parse_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
