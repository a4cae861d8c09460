/* squib-snap helpers: messages with the subcommand's name, located
 * diagnostics, parsing of codecs and sizes, output-path safety (never over
 * an input, no silent clobbering) and the shared writer options. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snaptool.h"

const char *st_cmd = "squib-snap";

int st_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout); /* keep stdout and stderr in order when both go to a file */
	fprintf(stderr, "squib-snap %s: ", st_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int st_usage(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout); /* keep stdout and stderr in order when both go to a file */
	fprintf(stderr, "squib-snap %s: ", st_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'squib-snap %s --help'.\n", st_cmd);
	return ST_USAGE;
}

int st_add_parent(const char **parents, unsigned int *np, const char *arg)
{
	if (*np == ST_MAX_PARENTS)
		return st_usage("too many --parent files (at most %d)", ST_MAX_PARENTS);
	parents[(*np)++] = arg;
	return 0;
}

int st_fail_diag(const char *what, int err, const struct sqb_diag *d)
{
	char buf[320];

	if (d && d->reason[0] && strcmp(d->reason, "no problem"))
		return st_fail(ST_FAIL, "%s: %s", what, sqb_diag_format(d, buf, sizeof(buf)));
	return st_fail(ST_FAIL, "%s: %s", what, sqb_strerror(err));
}

struct first_problem {
	int found;
	struct sqb_diag d;
};

static void keep_first(void *ctx, int err, const struct sqb_diag *d)
{
	struct first_problem *f = ctx;

	(void)err;
	if (!f->found && d && d->reason[0]) {
		f->d = *d;
		f->found = 1;
	}
}

/* A read, repack or merge stopped on a format error (checksum, corrupt
 * field, codec): the library says what, verify's walk says where.  The
 * first located problem of s or of a parent layer names the file, the
 * section and the offset (issue 17: these used to print only the what). */
int st_fail_located(const char *what, int err, sqb_snap *s)
{
	char buf[320];

	if (err > -SQB_EBADMAGIC || !s)
		return st_fail(ST_FAIL, "%s: %s", what, sqb_strerror(err));
	for (sqb_snap *p = s; p; p = sqb_snap_parent(p)) {
		struct first_problem f = {0};

		sqb_snap_verify(p, 0, 1, keep_first, &f);
		if (f.found)
			return st_fail(ST_FAIL, "%s: %s: %s: %s", what, sqb_strerror(err),
				       sqb_snap_path(p), sqb_diag_format(&f.d, buf, sizeof(buf)));
	}
	return st_fail(ST_FAIL, "%s: %s (%s: no section fails verification)", what,
		       sqb_strerror(err), sqb_snap_path(s));
}

int st_help(void)
{
	for (unsigned int i = 0; i < st_ncommands; i++)
		if (!strcmp(st_commands[i].name, st_cmd))
			fputs(st_commands[i].usage, stdout);
	return ST_OK;
}

int st_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

int st_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mul = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1ull << 40;
		end++;
		break;
	}
	if (*end == 'i' && mul > 1)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (v && v * mul / v != mul))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int st_parse_codec(const char *s, enum sqb_codec *codec, int *level)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	uint64_t lv = 0;

	if (n == 4 && !strncmp(s, "none", 4))
		*codec = SQB_CODEC_NONE;
	else if (n == 3 && !strncmp(s, "lz4", 3))
		*codec = SQB_CODEC_LZ4;
	else if (n == 4 && !strncmp(s, "zstd", 4))
		*codec = SQB_CODEC_ZSTD;
	else
		return -EINVAL;
	*level = 0;
	if (colon) {
		if (*codec == SQB_CODEC_NONE || st_parse_u64(colon + 1, &lv) || lv < 1 ||
		    lv > (*codec == SQB_CODEC_ZSTD ? 22 : 65537))
			return -EINVAL;
		*level = (int)lv;
	}
	return 0;
}

static int same_inode(const char *a, const char *b)
{
	struct stat x, y;

	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int st_check_output(const char *out, int force, const char *const *inputs, unsigned int n)
{
	struct stat st;

	for (unsigned int i = 0; i < n; i++)
		if (inputs[i] && (!strcmp(out, inputs[i]) || same_inode(out, inputs[i])))
			return st_fail(ST_FAIL, "refusing to write %s: it is an input", out);
	if (stat(out, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return st_fail(ST_FAIL, "%s is a directory", out);
		if (!force)
			return st_fail(ST_FAIL, "%s exists (use --force to replace it)", out);
	}
	return 0;
}

/* Relative path from folder `from` to file `to`, both absolute and real. */
static char *relative(const char *from, const char *to)
{
	size_t common = 0, i, ups = 0, len;
	char *res, *p;

	/* longest common prefix that ends at a folder boundary */
	for (i = 0; from[i] && from[i] == to[i]; i++)
		if (from[i] == '/')
			common = i;
	if (!from[i] && to[i] == '/')
		common = i;
	if (from[1] == 0) /* from is "/" */
		common = 0;
	for (i = common; from[i]; i++)
		if (from[i] == '/' && from[i + 1])
			ups++;
	if (from[common] == 0 && common)
		ups = 0;
	len = ups * 3 + strlen(to + common + 1) + 1;
	res = malloc(len);
	if (!res)
		return NULL;
	p = res;
	for (size_t k = 0; k < ups; k++, p += 3)
		memcpy(p, "../", 3);
	strcpy(p, to + common + 1);
	return res;
}

/* realpath() of a file that may not exist yet (a pair's second output). */
static char *real_file(const char *path)
{
	char *r = realpath(path, NULL), *d, *slash, *rd, *res;
	size_t n;

	if (r || errno != ENOENT || !(d = strdup(path)))
		return r;
	slash = strrchr(d, '/');
	if (slash)
		*(slash == d ? slash + 1 : slash) = 0;
	rd = realpath(slash ? d : ".", NULL);
	res = NULL;
	if (rd) {
		const char *base = slash ? path + (slash - d) + 1 : path;

		n = strlen(rd) + strlen(base) + 2;
		if ((res = malloc(n)))
			snprintf(res, n, "%s%s%s", rd, strcmp(rd, "/") ? "/" : "", base);
	}
	free(rd);
	free(d);
	return res;
}

char *st_hint_for(const char *out, const char *target)
{
	char *od = strdup(out), *real_t = real_file(target), *real_od = NULL, *slash;
	char *res = NULL;

	if (od && real_t) {
		slash = strrchr(od, '/');
		if (slash)
			*(slash == od ? slash + 1 : slash) = 0;
		real_od = realpath(slash ? od : ".", NULL);
	}
	/* relative to OUT's folder ([F-41]), so a chain can be moved as a tree */
	if (real_od && real_t)
		res = relative(real_od, real_t);
	free(od);
	free(real_od);
	if (!res)
		res = real_t ? real_t : strdup(target);
	else
		free(real_t);
	return res;
}

int st_wopt(struct st_wopts *w, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case 'c':
		if (st_parse_codec(arg, &w->codec, &w->level)) {
			st_usage("bad codec '%s' (none, lz4, lz4:ACCEL, zstd, zstd:1..22)", arg);
			return -1;
		}
		return 1;
	case 'D':
		w->dedup = 1;
		return 1;
	case 'C':
		if (st_parse_size(arg, &v) || v < 4096 || v > (1u << 20) || (v & (v - 1))) {
			st_usage("bad chunk size '%s' (a power of two, 4K..1M)", arg);
			return -1;
		}
		w->chunk = v;
		return 1;
	case 'T':
		if (st_parse_u64(arg, &v) || v > 256) {
			st_usage("bad thread count '%s'", arg);
			return -1;
		}
		w->threads = (unsigned int)v;
		return 1;
	case 'f':
		w->force = 1;
		return 1;
	case 'o':
		w->out = arg;
		return 1;
	}
	return 0;
}

void st_wopts_apply(const struct st_wopts *w, struct sqb_write_opts *o)
{
	o->codec = w->codec;
	o->level = w->level;
	o->dedup = w->dedup;
	o->chunk_size = (uint32_t)w->chunk;
	o->threads = w->threads;
}

const char *st_arch_name(enum sqb_arch a)
{
	return a == SQB_ARCH_X86_64 ? "x86_64" : a == SQB_ARCH_AARCH64 ? "aarch64" : "unknown";
}

const char *st_hv_name(enum sqb_hv h)
{
	return h == SQB_HV_KVM ? "kvm" : h == SQB_HV_HVF ? "hvf" : "unknown";
}

const char *st_kind_name(enum sqb_snap_kind k)
{
	return k == SQB_SNAP_FULL ? "full" : k == SQB_SNAP_DIFF ? "diff" : "unknown";
}

const char *st_role_name(enum sqb_snap_role r)
{
	return r == SQB_ROLE_COMPLETE ? "complete"
	       : r == SQB_ROLE_STATE  ? "state"
	       : r == SQB_ROLE_MEMORY ? "memory"
				      : "unknown";
}

const char *st_human(uint64_t b, char buf[32])
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 32, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, 32, "%.1f %s", v, unit[u]);
	return buf;
}

char *st_link_hint(const sqb_snap *s, uint32_t instance)
{
	int idx = sqb_snap_section_find(s, SQB_SEC_LINK, instance);
	void *data = NULL;
	size_t len;

	if (idx < 0 || sqb_snap_section_read(s, (unsigned)idx, &data, &len, NULL))
		return NULL;
	if (!len || memchr(data, 0, len)) {
		free(data);
		return NULL;
	}
	return data; /* the library NUL-terminates section buffers */
}
