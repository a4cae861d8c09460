/* Fuzz target for the API's input parsers: HTTP framing (sqb_http_parse)
 * and, for complete requests, JSON parsing (nesting bound, position walk)
 * plus the machine-config and boot-source field tables, the custom CPU
 * template parser of PUT /cpu-config (ctl_cpu.c) and the bounded JSON
 * builder.  Built as a libFuzzer target with
 * -DSQB_LIBFUZZER; otherwise main() replays the corpus files and then runs
 * a fixed-seed mutation pass over them (byte flips, truncations, splices),
 * so ctest fuzzes a little on every run, under ASan in the sanitizer build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "json_fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* ctl.h's, without the VMM headers it brings */
struct sqb_cpu_template;
int sqb_cpu_template_parse(yajl_val body, struct sqb_cpu_template **out, char *err, size_t errlen);
void sqb_cpu_template_free(struct sqb_cpu_template *t);
const char *__asan_default_options(void);

/* Check whole strings handed to C-string functions, not only up to a match:
 * that is how a strstr on received bytes shows up. */
const char *__asan_default_options(void)
{
	return "strict_string_checks=1";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const huge[] = {"None", "Transparent", "2M", NULL};
	struct sqb_http_req req;
	char err[512];
	yajl_val v = NULL;
	uint64_t vcpus = 0, mem = 0;
	int smt = 0;
	const char *hp = NULL, *kernel = NULL;
	const struct sqb_jfield f[] = {
	    {"vcpu_count", SQB_JT_UINT, 1, &vcpus, NULL, 1, 32},
	    {"mem_size_mib", SQB_JT_UINT, 1, &mem, NULL, 1, 1 << 20},
	    {"smt", SQB_JT_BOOL, 0, &smt},
	    {"huge_pages", SQB_JT_ENUM, 0, &hp, NULL, 0, 0, huge},
	    {"kernel_image_path", SQB_JT_STR, 0, &kernel},
	};
	size_t off = 0;

	/* Pipelined requests: parse until the buffer is used up or bad.  Each
	 * pass gets an exact-size heap copy with no NUL after it, like the
	 * server's receive buffer, so ASan sees any read past the end (the
	 * replay driver's buffers have slack; libFuzzer's may be reused). */
	while (off < size) {
		char *copy = malloc(size - off);
		int rc;

		if (!copy)
			break;
		memcpy(copy, data + off, size - off);
		rc = sqb_http_parse(copy, size - off, SQB_HTTP_MAX_PAYLOAD, &req, err, sizeof(err));
		if (rc != SQB_HTTP_DONE) {
			free(copy);
			break;
		}
		if (req.total_len == 0 || req.total_len > size - off)
			abort(); /* the parser must consume what it describes */
		if (sqb_json_parse_object(&v, req.body, req.body_len, err, sizeof(err)) == 0) {
			char out[96];
			struct sqb_jb b;
			struct sqb_cpu_template *t = NULL;

			sqb_json_fields(v, f, sizeof(f) / sizeof(f[0]), err, sizeof(err));
			sqb_json_fields_ex(v, f, sizeof(f) / sizeof(f[0]), SQB_JF_IGNORE_UNKNOWN,
					   err, sizeof(err));
			/* PUT /cpu-config: a template, or an error with no template */
			if (sqb_cpu_template_parse(v, &t, err, sizeof(err)) == 0 ? !t : t != NULL)
				abort();
			sqb_cpu_template_free(t);
			/* the bounded builder on whatever keys and strings arrived */
			sqb_jb_init(&b, out, sizeof(out));
			sqb_jb_open(&b, '{');
			for (size_t k = 0; k < v->u.object.len; k++) {
				yajl_val x = v->u.object.values[k];
				sqb_jb_key(&b, v->u.object.keys[k]);
				sqb_jb_str(&b, YAJL_IS_STRING(x) ? x->u.string : NULL);
			}
			sqb_jb_close(&b, '}');
			if (sqb_jb_done(&b) == 0 && strlen(out) >= sizeof(out))
				abort();
			yajl_tree_free(v);
		}
		free(copy);
		off += req.total_len;
	}
	return 0;
}

#ifndef SQB_LIBFUZZER
static uint64_t rng = 0x5eed;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void mutate_and_run(const uint8_t *seed, size_t len, int rounds)
{
	uint8_t *buf = malloc(len + 64);

	for (int r = 0; buf && r < rounds; r++) {
		size_t n = len;
		memcpy(buf, seed, len);
		for (int k = (int)(next() % 4) + 1; k > 0 && n; k--) {
			size_t at = next() % n;
			switch (next() % 4) {
			case 0:
				buf[at] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1:
				buf[at] = (uint8_t)next();
				break;
			case 2:
				n = at;
				break; /* truncate */
			default:       /* duplicate a slice */
				if (n + 16 <= len + 64) {
					memmove(buf + at + 16, buf + at, n - at);
					n += 16;
				}
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
}

int main(int argc, char **argv)
{
	int files = 0, rounds = argc > 2 ? atoi(argv[2]) : 2000;
	DIR *d;
	struct dirent *e;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [ROUNDS]\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	while ((e = readdir(d))) {
		char path[1024];
		uint8_t *buf;
		long sz;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc((size_t)sz + 1);
		if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
			LLVMFuzzerTestOneInput(buf, (size_t)sz);
			mutate_and_run(buf, (size_t)sz, rounds);
			files++;
		}
		free(buf);
		fclose(f);
	}
	closedir(d);
	printf("replayed %d corpus files, %d mutations each\n", files, rounds);
	return files > 0 ? 0 : 1;
}
#endif
