/* squib-snap import: wrap a raw memory file (regions concatenated in order,
 * e.g. a Firecracker memory file) into a full squib snapshot with the chosen
 * codec and dedup (sqb_snap_import_raw, streamed). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snaptool.h"

#define MAX_LAYOUT 1024

/* "gpa:size,gpa:size,..." (sizes take K/M/G) */
static int parse_layout(const char *s, struct sqb_region *out, unsigned int *n)
{
	char *dup = strdup(s), *save = NULL, *tok;
	int err = 0;

	*n = 0;
	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');

		if (!colon || *n == MAX_LAYOUT) {
			err = -EINVAL;
			break;
		}
		*colon = 0;
		out[*n].flags = 0;
		if (st_parse_size(tok, &out[*n].gpa) || st_parse_size(colon + 1, &out[*n].size) ||
		    !out[*n].size)
			err = -EINVAL;
		(*n)++;
	}
	free(dup);
	return err || !*n ? -EINVAL : 0;
}

static int parse_arch(const char *s, struct sqb_write_opts *o)
{
	if (!strcmp(s, "x86_64")) {
		o->arch = SQB_ARCH_X86_64;
		o->hv = SQB_HV_KVM;
	} else if (!strcmp(s, "aarch64")) {
		o->arch = SQB_ARCH_AARCH64;
		o->hv = SQB_HV_HVF;
	} else {
		return -1;
	}
	return 0;
}

static int check_layout(const struct sqb_region *l, unsigned int n, uint32_t gps, uint64_t raw_size,
			const char *raw)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (l[i].gpa % gps || l[i].size % gps)
			return st_usage("layout region %u [0x%llx, +0x%llx) is not %u-aligned", i,
					(unsigned long long)l[i].gpa, (unsigned long long)l[i].size,
					gps);
		if (i && l[i - 1].gpa + l[i - 1].size > l[i].gpa)
			return st_usage("layout regions must be in address order and not overlap");
		total += l[i].size;
	}
	if (total != raw_size)
		return st_fail(ST_FAIL, "the layout describes %llu bytes but %s has %llu",
			       (unsigned long long)total, raw, (unsigned long long)raw_size);
	return 0;
}

int cmd_import(int argc, char **argv)
{
	static const struct option lo[] = {{"memory", required_argument, NULL, 'm'},
					   {"layout", required_argument, NULL, 'l'},
					   {"arch", required_argument, NULL, 'A'},
					   {"page-size", required_argument, NULL, 'P'},
					   {"help", no_argument, NULL, 'h'},
					   ST_WOPT_LONGOPTS,
					   {0}};
	static struct sqb_region layout[MAX_LAYOUT];
	struct st_wopts wo = {.codec = SQB_CODEC_ZSTD};
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	const char *raw = NULL, *lay = NULL;
	unsigned int n = 0;
	uint64_t ps = 4096;
	struct stat st;
	int opt, rc, err;

	while ((opt = getopt_long(argc, argv, "ho:", lo, NULL)) != -1) {
		if ((rc = st_wopt(&wo, opt, optarg)) < 0)
			return ST_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'm':
			raw = optarg;
			break;
		case 'l':
			lay = optarg;
			break;
		case 'A':
			if (parse_arch(optarg, &o))
				return st_usage("bad --arch '%s' (x86_64, aarch64)", optarg);
			break;
		case 'P':
			if (st_parse_size(optarg, &ps) || (ps != 4096 && ps != 16384))
				return st_usage("bad --page-size '%s' (4096 or 16384)", optarg);
			break;
		case 'h':
			return st_help();
		default:
			return st_usage("bad arguments");
		}
	}
	if (optind != argc)
		return st_usage("unexpected argument '%s'", argv[optind]);
	if (!raw || !wo.out)
		return st_usage("need --memory RAW and -o OUT");
	if (lay && parse_layout(lay, layout, &n))
		return st_usage("bad --layout '%s' (GPA:SIZE,... e.g. 0:512M,0x100000000:512M)",
				lay);
	if (stat(raw, &st) < 0)
		return st_fail(ST_FAIL, "%s: %s", raw, strerror(errno));
	if (!S_ISREG(st.st_mode) || !st.st_size)
		return st_fail(ST_FAIL, "%s is not a non-empty regular file", raw);
	if (!n) {
		layout[0] = (struct sqb_region){0, (uint64_t)st.st_size, 0};
		n = 1;
	}
	if ((rc = check_layout(layout, n, (uint32_t)ps, (uint64_t)st.st_size, raw)))
		return rc;
	{
		const char *in[1] = {raw};

		if (st_check_output(wo.out, wo.force, in, 1))
			return ST_FAIL;
	}
	st_wopts_apply(&wo, &o);
	o.guest_page_size = (uint32_t)ps;
	o.producer = "squib-snap import";
	st_progress_start("import", (uint64_t)st.st_size, 0);
	err = sqb_snap_import_raw(wo.out, raw, layout, n, &o);
	st_progress_stop();
	if (err)
		return st_fail(ST_FAIL, "cannot import %s into %s: %s", raw, wo.out,
			       sqb_strerror(err));
	printf("wrote %s: %u region%s, %llu bytes of memory\n", wo.out, n, n == 1 ? "" : "s",
	       (unsigned long long)st.st_size);
	return 0;
}
