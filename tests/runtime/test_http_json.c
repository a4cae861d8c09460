/* Unit: the API's HTTP framing (sqb_http_parse), JSON field validation
 * (sqb_json_fields, serde_json's messages and positions), the nesting bound,
 * the bounded JSON builder and the startup clock arithmetic, including every
 * byte-boundary split of a request so partial reads never parse wrongly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
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

/* Make ASan check the whole string a C-string function is given, not only
 * the bytes up to a match: strstr on the unterminated receive buffer
 * (issue 17) then fails here instead of passing unnoticed. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "strict_string_checks=1";
}

/* RFC 9112 section 2.1: a request is a start line, header lines each ended
 * by CRLF, an empty line, then Content-Length bytes of body; nothing after
 * them belongs to it.  The bytes end exactly at a PROT_NONE page, as they
 * would at the end of a receive buffer: any read past them faults. */
static void test_http_unterminated_buffer(void **state)
{
	static const char *const reqs[] = {
	    "GET / HTTP/1.1\r\n\r\n",
	    "PUT /vm HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
	    "GET /x HTTP/1.1\r\nA: b\r\n\r\n",
	};
	long pg = sysconf(_SC_PAGESIZE);
	char *map =
	    mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		size_t n = strlen(reqs[i]);
		char *at = map + pg - n;
		struct sqb_http_req req;
		char err[256];

		memset(map, 'A', (size_t)pg); /* no NUL anywhere before the guard */
		memcpy(at, reqs[i], n);
		assert_int_equal(sqb_http_parse(at, n, 51200, &req, err, sizeof(err)),
				 SQB_HTTP_DONE);
		assert_int_equal(req.total_len, n);
		/* every strict prefix is incomplete, read without running over */
		for (size_t cut = 1; cut < n; cut++) {
			memmove(map + pg - cut, reqs[i], cut);
			if (sqb_http_parse(map + pg - cut, cut, 51200, &req, err, sizeof(err)) !=
			    SQB_HTTP_INCOMPLETE)
				fail_msg("prefix %zu of request %zu not incomplete", cut, i);
		}
	}
	munmap(map, (size_t)pg * 2);
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

/* sqb_json_fields over the body json (which must parse): its result, err
 * its message. */
static int fields_of(const char *json, const struct sqb_jfield *f, int nf, char *err, size_t cap)
{
	yajl_val v = NULL;
	int rc;

	assert_int_equal(sqb_json_parse_object(&v, json, strlen(json), err, cap), 0);
	err[0] = 0;
	rc = sqb_json_fields(v, f, nf, err, cap);
	yajl_tree_free(v);
	return rc;
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
	assert_non_null(strstr(out, "HTTP/1.1 204 \r\n"));
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
	    {"{\"n\":1e2}", "invalid type: floating point `100.0`, expected an integer in 1..=10"},
	    {"{}", "missing field `n`"},
	    {"{\"n\":1,\"z\":0}", "unknown field `z`, expected one of `n`, `b`, `s`, `c`"},
	    {"{\"n\":1,\"n\":2}", "duplicate field `n`"},
	    {"{\"n\":1,\"c\":\"Green\"}", "unknown variant `Green`, expected `Red` or `Blue`"},
	    {"{\"n\":1,\"b\":null}", NULL},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = fields_of(cases[i].json, f, 4, err, sizeof(err));

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

/* Numbers as serde_json reads them (de.rs parse_number) and serde prints
 * them (Unexpected, WithDecimalPoint over Rust's f64 Display): an integer
 * that fits u64 or i64 is an integer of the wrong value; a fraction, an
 * exponent, -0 and an integer past u64 or below i64::MIN are floats of the
 * wrong type, written as Rust writes them; a float past f64 is "number out
 * of range".  The texts and columns are what Firecracker answers. */
static void test_json_numbers_as_serde_json(void **state)
{
	uint64_t n = 0;
	const char *str = NULL;
	const struct sqb_jfield f[] = {
	    {"n", SQB_JT_UINT, 0, &n, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"s", SQB_JT_STR, 0, &str},
	};
	static const struct {
		const char *json, *err;
	} cases[] = {
	    {"{\"n\":4294967295}", NULL},
	    {"{\"n\":4294967296}", "invalid value: integer `4294967296`, expected u32 at line 1 "
				   "column 15."},
	    {"{\"n\":9223372036854775808}",
	     "invalid value: integer `9223372036854775808`, expected u32 at line 1 column 24."},
	    {"{\"n\":18446744073709551615}",
	     "invalid value: integer `18446744073709551615`, expected u32"},
	    {"{\"n\":18446744073709551616}",
	     "invalid type: floating point `18446744073709552000.0`, expected u32"},
	    {"{\"n\":-1}", "invalid value: integer `-1`, expected u32 at line 1 column 7."},
	    {"{\"n\":-9223372036854775808}",
	     "invalid value: integer `-9223372036854775808`, expected u32"},
	    {"{\"n\":-9223372036854775809}",
	     "invalid type: floating point `-9223372036854776000.0`, expected u32"},
	    {"{\"n\":-0}", "invalid type: floating point `-0.0`, expected u32 at line 1 column 7."},
	    {"{\"n\":0}", NULL},
	    {"{\"n\":1.5}", "invalid type: floating point `1.5`, expected u32"},
	    {"{\"n\":1024.0}", "invalid type: floating point `1024.0`, expected u32"},
	    {"{\"n\":1E3}",
	     "invalid type: floating point `1000.0`, expected u32 at line 1 column 8."},
	    {"{\"n\":2.50}", "invalid type: floating point `2.5`, expected u32"},
	    {"{\"n\":1e-7}", "invalid type: floating point `0.0000001`, expected u32"},
	    {"{\"n\":0.30000000000000004}",
	     "invalid type: floating point `0.30000000000000004`, expected u32"},
	    {"{\"n\":1e23}",
	     "invalid type: floating point `100000000000000000000000.0`, expected u32"},
	    {"{\"n\":996219154410990.25}",
	     "invalid type: floating point `996219154410990.3`, expected u32"}, /* a tie: up */
	    {"{\"n\":1e400}", "number out of range at line 1 column 10."},
	    {"{\"n\":-1e400}", "number out of range at line 1 column 11."},
	    {"{\"n\":1e-400}", "invalid type: floating point `0.0`, expected u32"},
	    {"{\"s\":1e3}", "invalid type: floating point `1000.0`, expected a string"},
	    {"{\"s\":-0}", "invalid type: floating point `-0.0`, expected a string"},
	    {"{\"s\":12}", "invalid type: integer `12`, expected a string"},
	};
	char err[700];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = fields_of(cases[i].json, f, 2, err, sizeof(err));

		if (!cases[i].err ? rc != 0 : rc != -1 || !strstr(err, cases[i].err))
			fail_msg("%s: got %d '%s', want '%s'", cases[i].json, rc, err,
				 cases[i].err ? cases[i].err : "(accepted)");
	}
}

/* What yajl would take but serde_json or a C string cannot: a comment
 * (serde_json has none) and a \u0000 escape (yajl's C strings would cut
 * "path\u0000x" to "path", or a key to a known field's name) are refused
 * with where; a '/' or an escaped backslash before "u0000" inside a string
 * is just text. */
static void test_json_comments_and_nul_escapes_refused(void **state)
{
	static const struct {
		const char *json, *err;
	} cases[] = {
	    {"{\"total_size_mib\\u0000\":1024}",
	     "a string holds a NUL character (\\u0000), which squib does not accept, at line 1 "
	     "column 17."},
	    {"{\"a\":\"/tmp/x\\u0000y\"}", "NUL character (\\u0000)"},
	    {"{\"a\":1 /* c */}", "malformed JSON: a comment is not JSON at line 1 column 8."},
	    {"{\"a\":1}\n// c", "a comment is not JSON at line 2 column 1."},
	    {"// c\n{\"a\":1}", "a comment is not JSON at line 1 column 1."},
	    {"{\"a\":\"//x/*y*/\"}", NULL},
	    {"{\"a\":\"\\\"/\"}", NULL},
	    {"{\"a\":\"x\\\\u0000\"}", NULL}, /* an escaped backslash, then text */
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		yajl_val v = NULL;
		int rc;

		err[0] = 0;
		rc = sqb_json_parse_object(&v, cases[i].json, strlen(cases[i].json), err,
					   sizeof(err));
		if (!cases[i].err ? rc != 0 : rc != -1 || !strstr(err, cases[i].err))
			fail_msg("%s: got %d '%s', want '%s'", cases[i].json, rc, err,
				 cases[i].err ? cases[i].err : "(parsed)");
		if (!rc) {
			const char *path[] = {"a", NULL};
			yajl_val a = yajl_tree_get(v, path, yajl_t_string);

			assert_non_null(a);
			if (i == sizeof(cases) / sizeof(cases[0]) - 1)
				assert_string_equal(YAJL_GET_STRING(a), "x\\u0000");
		}
		yajl_tree_free(v);
	}
}

/* 1 when s is valid UTF-8 (RFC 3629). */
static int utf8_valid(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		size_t n = *u < 0x80		      ? 1
			   : *u >= 0xc2 && *u <= 0xdf ? 2
			   : *u >= 0xe0 && *u <= 0xef ? 3
			   : *u >= 0xf0 && *u <= 0xf4 ? 4
						      : 0;
		if (!n)
			return 0;
		for (size_t i = 1; i < n; i++)
			if ((u[i] & 0xc0) != 0x80)
				return 0;
		u += n;
	}
	return 1;
}

/* A string in an error is written as serde's Unexpected::Str writes it
 * (Rust's {:?}: quotes, backslashes, \n \r \t and \u{..} escaped: a value
 * cannot forge a log line); long texts are cut on a character boundary, and
 * every JSON answer is valid UTF-8 (a broken sequence becomes U+FFFD). */
static void test_json_strings_in_errors(void **state)
{
	uint64_t n = 0;
	const char *c = NULL;
	static const char *const modes[] = {"None", "2M", NULL};
	const struct sqb_jfield f[] = {
	    {"n", SQB_JT_UINT, 0, &n, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"c", SQB_JT_ENUM, 0, &c, NULL, 0, 0, modes},
	};
	static const struct {
		const char *json, *err;
	} cases[] = {
	    {"{\"n\":\"x\\\"y\\\\z\"}", "invalid type: string \"x\\\"y\\\\z\", expected u32"},
	    {"{\"n\":\"l1\\nl2\\r\\t\"}", "invalid type: string \"l1\\nl2\\r\\t\", expected u32"},
	    {"{\"n\":\"\\u0001\\u001f\\u007f'\"}",
	     "invalid type: string \"\\u{1}\\u{1f}\\u{7f}'\", expected u32"},
	    {"{\"n\":\"\xc3\xa9\xf0\x9f\x98\x80\"}",
	     "invalid type: string \"\xc3\xa9\xf0\x9f\x98\x80\""},
	};
	char err[700], big[2048], esc[64];
	size_t pos;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(fields_of(cases[i].json, f, 2, err, sizeof(err)), -1);
		if (!strstr(err, cases[i].err) || strchr(err, '\n'))
			fail_msg("%s: got '%s', want '%s'", cases[i].json, err, cases[i].err);
	}
	/* 1 + 2 * 600 bytes of text: cut, never inside a character */
	for (int k = 0; k < 3; k++) {
		yajl_val v = NULL;
		size_t o = (size_t)snprintf(big, sizeof(big),
					    k == 0   ? "{\"n\":\"a"
					    : k == 1 ? "{\"c\":\"a"
						     : "{\"a");
		for (int i = 0; i < 600; i++)
			o += (size_t)snprintf(big + o, sizeof(big) - o, "\xc3\xa9");
		snprintf(big + o, sizeof(big) - o, k == 2 ? "\":1}" : "\"}");
		assert_int_equal(sqb_json_parse_object(&v, big, strlen(big), err, sizeof(err)), 0);
		assert_int_equal(sqb_json_fields(v, f, 2, err, sizeof(err)), -1);
		yajl_tree_free(v);
		if (!utf8_valid(err) || !strstr(err, " at line 1 column "))
			fail_msg("case %d: not UTF-8 or cut short: '%s'", k, err);
	}
	/* the JSON writer: broken sequences become U+FFFD */
	pos = 0;
	assert_int_equal(sqb_json_escape(esc, sizeof(esc), &pos, "a\xc3"), 0);
	assert_string_equal(esc, "a\\ufffd");
	pos = 0;
	assert_int_equal(sqb_json_escape(esc, sizeof(esc), &pos, "\xed\xa0\x80|\xc3\xa9|\xff"), 0);
	assert_string_equal(esc, "\\ufffd\\ufffd\\ufffd|\xc3\xa9|\\ufffd");
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
	/* serde_json's words for a body that ends too early, at its end */
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":", 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EOF while parsing a value at line 1 column 5."));
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":1", 6, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EOF while parsing an object at line 1 column 6."));
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":[1,\n2", 10, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EOF while parsing a list at line 2 column 1."));
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":\"x", 7, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EOF while parsing a string at line 1 column 7."));
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":1,", 7, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EOF while parsing a value at line 1 column 7."));
	assert_int_equal(sqb_json_parse_object(&v, "{\"a\":1,}", 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed JSON"));
	assert_int_equal(sqb_json_parse_object(&v, "{}\0", 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(sqb_json_parse_object(&v, "", 0, err, sizeof(err)), -1);
}

/* Regression (issue 11): a deeply nested body used to exhaust the stack in
 * the tree parse/free.  It must be refused before a tree is built, with
 * serde_json's message, and a body at the limit must still parse. */
static void test_json_nesting_depth_bounded(void **state)
{
	size_t n = 51200, d;
	char *b = malloc(n + 8), err[256];
	yajl_val v;

	(void)state;
	assert_non_null(b);
	b[0] = '{';
	memcpy(b + 1, "\"a\":", 4);
	memset(b + 5, '[', n - 5);
	assert_int_equal(sqb_json_parse_object(&v, b, n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "recursion limit exceeded at line 1 column 133."));
	/* SQB_JSON_MAX_DEPTH levels in all (the object is one): accepted */
	d = SQB_JSON_MAX_DEPTH - 1;
	memset(b + 5, '[', d);
	memset(b + 5 + d, ']', d);
	b[5 + 2 * d] = '}';
	assert_int_equal(sqb_json_parse_object(&v, b, 6 + 2 * d, err, sizeof(err)), 0);
	yajl_tree_free(v);
	/* a bracket inside a string does not count */
	memset(b, ' ', n);
	memcpy(b, "{\"a\":\"", 6);
	memset(b + 6, '[', 1000);
	memcpy(b + 1006, "\"}", 2);
	assert_int_equal(sqb_json_parse_object(&v, b, 1008, err, sizeof(err)), 0);
	yajl_tree_free(v);
	free(b);
}

/* serde_json reports where it stopped: after the key for unknown and
 * duplicate fields, after the value for type errors, after the object for
 * missing fields; lines count from 1, columns restart after a newline. */
static void test_json_error_positions(void **state)
{
	static const char *const e2[] = {"File", "Uffd", NULL};
	uint64_t n = 0;
	const char *e = NULL;
	yajl_val inner = NULL;
	const struct sqb_jfield f[] = {
	    {"n", SQB_JT_UINT, 1, &n, NULL, 0, UINT8_MAX},
	    {"e", SQB_JT_ENUM, 0, &e, NULL, 0, 0, e2},
	    {"o", SQB_JT_OBJECT, 0, &inner},
	};
	const struct sqb_jfield fi[] = {{"x", SQB_JT_STR, 1, &e}};
	static const struct {
		const char *json, *err;
	} cases[] = {
	    {"{\"e\":\"File\"}", "missing field `n` at line 1 column 12."},
	    {"{\"n\": 1, \"zz\": 2}",
	     "unknown field `zz`, expected one of `n`, `e`, `o` at line 1 column 13."},
	    {"{\"n\": 300}", "invalid value: integer `300`, expected u8 at line 1 column 9."},
	    {"{\n  \"n\": 1,\n  \"e\": \"foo\"\n}",
	     "unknown variant `foo`, expected `File` or `Uffd` at line 3 column 12."},
	    {"{\"n\":1,\"n\":2}", "duplicate field `n` at line 1 column 10."},
	    {"{\"n\": true}", "invalid type: boolean `true`, expected u8 at line 1 column 10."},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(fields_of(cases[i].json, f, 3, err, sizeof(err)), -1);
		if (!strstr(err, cases[i].err) || strncmp(err, SQB_JSON_ERR_PREFIX, 20))
			fail_msg("%s: got '%s', want '%s'", cases[i].json, err, cases[i].err);
	}
	/* a nested object's missing field is placed at the end of that object */
	{
		const char *j = "{\"n\":1,\"o\":{ } }";
		yajl_val v = NULL;
		assert_int_equal(sqb_json_parse_object(&v, j, strlen(j), err, sizeof(err)), 0);
		assert_int_equal(sqb_json_fields(v, f, 3, err, sizeof(err)), 0);
		assert_int_equal(sqb_json_fields(inner, fi, 1, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "missing field `x` at line 1 column 14."));
		yajl_tree_free(v);
	}
}

/* Regression (issue 11): JSON output is bounded and fails closed. */
static void test_json_builder_fails_closed(void **state)
{
	char buf[64], guard[16];
	struct sqb_jb b;

	(void)state;
	memset(guard, 0x5a, sizeof(guard));
	sqb_jb_init(&b, buf, sizeof(buf));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "a");
	sqb_jb_str(&b, "x\"y");
	sqb_jb_key(&b, "n");
	sqb_jb_u64(&b, 18446744073709551615ULL);
	sqb_jb_key(&b, "l");
	sqb_jb_open(&b, '[');
	sqb_jb_bool(&b, 1);
	sqb_jb_null(&b);
	sqb_jb_str(&b, NULL);
	sqb_jb_close(&b, ']');
	sqb_jb_close(&b, '}');
	assert_int_equal(sqb_jb_done(&b), 0);
	assert_string_equal(buf,
			    "{\"a\":\"x\\\"y\",\"n\":18446744073709551615,\"l\":[true,null,null]}");
	/* too long: nothing is written past the buffer and the result is refused */
	for (size_t cap = 0; cap < 40; cap++) {
		char small[48];
		memset(small, 0x77, sizeof(small));
		sqb_jb_init(&b, small, cap);
		sqb_jb_open(&b, '{');
		sqb_jb_key(&b, "kernel_image_path");
		sqb_jb_str(&b, "/a/very/long/path\n");
		sqb_jb_close(&b, '}');
		assert_int_equal(sqb_jb_done(&b), -1);
		for (size_t i = cap; i < sizeof(small); i++)
			assert_int_equal((unsigned char)small[i], 0x77);
	}
	for (size_t i = 0; i < sizeof(guard); i++)
		assert_int_equal((unsigned char)guard[i], 0x5a);
}

/* Regression (issue 11): startup_us was computed with unsigned nanosecond
 * differences and came out near 2^64/1000 when the second rolled over. */
static void test_elapsed_us_across_second_boundary(void **state)
{
	struct timespec a = {.tv_sec = 10, .tv_nsec = 999900000};
	struct timespec b = {.tv_sec = 11, .tv_nsec = 100000};

	(void)state;
	assert_int_equal(sqb_ctl_elapsed_us(&a, &b), 200);
	b = (struct timespec){.tv_sec = 12, .tv_nsec = 999900000};
	assert_int_equal(sqb_ctl_elapsed_us(&a, &b), 2000000);
	assert_int_equal(sqb_ctl_elapsed_us(&b, &a), 0); /* never negative */
}

/* Firecracker's router: "//vm/config/" is /vm/config; absolute-form
 * targets (RFC 9112 3.2.2) are reduced to their path. */
static void test_http_targets(void **state)
{
	static const struct {
		const char *line, *path;
	} c[] = {
	    {"GET /machine-config/ HTTP/1.1\r\n\r\n", "/machine-config"},
	    {"GET //machine-config HTTP/1.1\r\n\r\n", "/machine-config"},
	    {"GET /vm//config// HTTP/1.1\r\n\r\n", "/vm/config"},
	    {"GET / HTTP/1.1\r\n\r\n", "/"},
	    {"GET // HTTP/1.1\r\n\r\n", "/"},
	    {"GET http://localhost/version HTTP/1.1\r\n\r\n", "/version"},
	    {"GET http://localhost:80 HTTP/1.1\r\n\r\n", "/"},
	    {"PUT HTTP://x/snapshot/create/ HTTP/1.1\r\n\r\n", "/snapshot/create"},
	};
	struct sqb_http_req req;
	char err[256], out[512];

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		assert_int_equal(
		    sqb_http_parse(c[i].line, strlen(c[i].line), 51200, &req, err, sizeof(err)),
		    SQB_HTTP_DONE);
		assert_string_equal(req.path, c[i].path);
	}
	assert_int_equal(
	    sqb_http_parse("GET http:// HTTP/1.1\r\n\r\n", 25, 51200, &req, err, sizeof(err)),
	    SQB_HTTP_BAD);
	assert_true(sqb_http_format_ex(out, sizeof(out), 204, NULL, 0, "Deprecation: true\r\n") >
		    0);
	assert_non_null(strstr(out, "\r\nServer: Firecracker API\r\n"));
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_complete_and_incremental),
	    cmocka_unit_test(test_http_rejections),
	    cmocka_unit_test(test_http_connection_close_and_expect),
	    cmocka_unit_test(test_json_fields),
	    cmocka_unit_test(test_json_numbers_as_serde_json),
	    cmocka_unit_test(test_json_comments_and_nul_escapes_refused),
	    cmocka_unit_test(test_json_strings_in_errors),
	    cmocka_unit_test(test_json_escape_and_parse_errors),
	    cmocka_unit_test(test_json_nesting_depth_bounded),
	    cmocka_unit_test(test_json_error_positions),
	    cmocka_unit_test(test_json_builder_fails_closed),
	    cmocka_unit_test(test_elapsed_us_across_second_boundary),
	    cmocka_unit_test(test_http_targets),
	    cmocka_unit_test(test_http_unterminated_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
