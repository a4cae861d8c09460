/* JSON output for squib-snap --json: a yajl generator that streams to
 * stdout as it goes (bounded memory for long page-range lists), plus
 * key/value shorthands.  Field names are documented in docs/squib-snap.md. */
#include <stdio.h>
#include <string.h>

#include "snaptool.h"

static void to_stdout(void *ctx, const char *s, size_t len)
{
	(void)ctx;
	fwrite(s, 1, len, stdout);
}

yajl_gen st_json_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (!g)
		return NULL;
	yajl_gen_config(g, yajl_gen_beautify, 1);
	yajl_gen_config(g, yajl_gen_indent_string, "  ");
	yajl_gen_config(g, yajl_gen_print_callback, to_stdout, NULL);
	return g;
}

int st_json_end(yajl_gen g)
{
	yajl_gen_free(g);
	fflush(stdout);
	return ferror(stdout) ? -1 : 0;
}

void st_js(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void st_jkey(yajl_gen g, const char *k)
{
	st_js(g, k);
}

void st_jkv_str(yajl_gen g, const char *k, const char *v)
{
	st_js(g, k);
	if (v)
		st_js(g, v);
	else
		yajl_gen_null(g);
}

void st_ju64(yajl_gen g, uint64_t v)
{
	char buf[24];

	/* yajl integers are signed 64-bit: print the digits ourselves */
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	yajl_gen_number(g, buf, strlen(buf));
}

void st_jkv_u64(yajl_gen g, const char *k, uint64_t v)
{
	st_js(g, k);
	st_ju64(g, v);
}

void st_jkv_int(yajl_gen g, const char *k, long long v)
{
	st_js(g, k);
	yajl_gen_integer(g, v);
}

void st_jkv_bool(yajl_gen g, const char *k, int v)
{
	st_js(g, k);
	yajl_gen_bool(g, v);
}

void st_jkv_dbl(yajl_gen g, const char *k, double v)
{
	char buf[32];

	st_js(g, k);
	snprintf(buf, sizeof(buf), "%.4f", v);
	yajl_gen_number(g, buf, strlen(buf));
}

void st_jkv_hex(yajl_gen g, const char *k, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long)v);
	st_jkv_str(g, k, buf);
}

void st_jkv_null(yajl_gen g, const char *k)
{
	st_js(g, k);
	yajl_gen_null(g);
}

void st_jmap(yajl_gen g)
{
	yajl_gen_map_open(g);
}

void st_jmap_end(yajl_gen g)
{
	yajl_gen_map_close(g);
}

void st_jarr(yajl_gen g)
{
	yajl_gen_array_open(g);
}

void st_jarr_end(yajl_gen g)
{
	yajl_gen_array_close(g);
}

static int printable_utf8(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t')
			return 0;
	return 1;
}

void st_jkv_bytes(yajl_gen g, const char *k, const void *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *b = p;

	st_js(g, k);
	if (printable_utf8(b, n) && yajl_gen_string(g, b, n) == yajl_gen_status_ok)
		return;
	{
		char buf[4 + 2 * 256 + 4];
		size_t m = n > 256 ? 256 : n, o = 0;

		memcpy(buf, "hex:", 4);
		o = 4;
		for (size_t i = 0; i < m; i++) {
			buf[o++] = hx[b[i] >> 4];
			buf[o++] = hx[b[i] & 15];
		}
		if (m < n) {
			memcpy(buf + o, "...", 3);
			o += 3;
		}
		yajl_gen_string(g, (const unsigned char *)buf, o);
	}
}
