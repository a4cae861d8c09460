/* squib-snap verify: every checksum, bound and index invariant of a file
 * and of each layer of its parent chain (sqb_snap_verify), one line per
 * problem "SECTION at 0xOFF: reason"; optionally its companion memory file.
 * By default extents are checked by the checksum of their stored bytes
 * (SQB_VERIFY_NO_DECODE); --decode also decodes every one. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "snaptool.h"

struct vstate {
	const char *prefix; /* "" for the named file, "parent PATH: " for layers */
	unsigned int problems;
};

static void on_problem(void *ctx, int err, const struct sqb_diag *d)
{
	struct vstate *v = ctx;
	char buf[320];

	v->problems++;
	if (d && d->reason[0])
		printf("%s%s\n", v->prefix, sqb_diag_format(d, buf, sizeof(buf)));
	else
		printf("%sfile: %s\n", v->prefix, sqb_strerror(err));
}

/* Verify s and every parent layer on its own, so each line names its file. */
unsigned int st_verify_chain(sqb_snap *s, unsigned int max, const char *label, int decode)
{
	struct vstate v = {"", 0};
	uint64_t total = 0;
	char *prefix = NULL;

	for (sqb_snap *p = s; p; p = sqb_snap_parent(p))
		total += sqb_snap_get_info(p)->file_size;
	st_progress_start(label, total, 0);
	for (sqb_snap *p = s; p && v.problems < max; p = sqb_snap_parent(p)) {
		int err;

		if (p != s) {
			free(prefix);
			if (asprintf(&prefix, "parent %s: ", sqb_snap_path(p)) < 0)
				prefix = NULL;
			v.prefix = prefix ? prefix : "parent: ";
		}
		err = sqb_snap_verify(p, decode ? 0 : SQB_VERIFY_NO_DECODE, max - v.problems,
				      on_problem, &v);
		if (err && !v.problems)
			on_problem(&v, err, NULL);
	}
	st_progress_stop();
	free(prefix);
	return v.problems;
}

/* The open failed: that is the (first and only) problem we can report. */
static void open_problem(int err, const struct sqb_diag *d)
{
	struct vstate v = {"", 0};

	on_problem(&v, err, d->reason[0] ? d : NULL);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option lo[] = {{"parent", required_argument, NULL, 'p'},
					   {"memory-file", required_argument, NULL, 'm'},
					   {"quiet", no_argument, NULL, 'q'},
					   {"max-problems", required_argument, NULL, 'M'},
					   {"decode", no_argument, NULL, 'D'},
					   {"help", no_argument, NULL, 'h'},
					   {0}};
	const char *parents[ST_MAX_PARENTS], *memf = NULL;
	unsigned int np = 0, problems, layers = 0;
	uint64_t max = 100;
	int quiet = 0, decode = 0, opt, err, rc = ST_OK;
	struct sqb_diag d;
	sqb_snap *s;

	while ((opt = getopt_long(argc, argv, "hqp:", lo, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (st_add_parent(parents, &np, optarg))
				return ST_USAGE;
			break;
		case 'm':
			memf = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'D':
			decode = 1;
			break;
		case 'M':
			if (st_parse_u64(optarg, &max) || !max || max > 1000000)
				return st_usage("bad --max-problems '%s'", optarg);
			break;
		case 'h':
			return st_help();
		default:
			return st_usage("bad arguments");
		}
	}
	if (optind != argc - 1)
		return st_usage(optind == argc ? "missing FILE" : "too many arguments");
	if ((err = st_open_quiet(&s, argv[optind], parents, np, 0, &d))) {
		open_problem(err, &d);
		return st_fail(ST_FAIL, "%s is not sound", argv[optind]);
	}
	for (sqb_snap *p = s; p; p = sqb_snap_parent(p))
		layers++;
	problems = st_verify_chain(s, (unsigned int)max, "verify", decode);
	sqb_snap_free(s);
	if (problems)
		return st_fail(ST_FAIL, "%s: %u problem%s", argv[optind], problems,
			       problems == 1 ? "" : "s");
	if (memf && (rc = st_pair_check(argv[optind], memf, parents, np, !quiet, decode)))
		return rc;
	if (!quiet)
		printf("%s: OK (%u layer%s verified%s)\n", argv[optind], layers,
		       layers == 1 ? "" : "s", decode ? ", every extent decoded" : "");
	return ST_OK;
}
