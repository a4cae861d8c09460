/* squib-snap repack: re-encode a snapshot's memory with another codec,
 * dedup setting or chunk size; kind, parent, vCPUs, devices and config are
 * kept (sqb_snap_repack; the output is atomic and never an input).  With
 * --state, also write a state file paired with OUT (st_state.c, [F-46]). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "snaptool.h"

int cmd_repack(int argc, char **argv)
{
	static const struct option lo[] = {{"parent", required_argument, NULL, 'p'},
					   {"help", no_argument, NULL, 'h'},
					   ST_WOPT_LONGOPTS,
					   ST_STATE_LONGOPTS,
					   {0}};
	struct st_restate rs = {0};
	struct sqb_uuid mu;
	struct sqb_digest md;
	struct st_wopts wo = {.codec = SQB_CODEC_ZSTD};
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	const char *parents[ST_MAX_PARENTS], *in[3];
	unsigned int np = 0;
	char *hint = NULL;
	sqb_snap *s;
	int opt, rc, err;

	while ((opt = getopt_long(argc, argv, "ho:p:", lo, NULL)) != -1) {
		if ((rc = st_wopt(&wo, opt, optarg)) < 0)
			return ST_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'p':
			if (st_add_parent(parents, &np, optarg))
				return ST_USAGE;
			break;
		case 0x100:
			rs.in = optarg;
			break;
		case 0x101:
			rs.out = optarg;
			break;
		case 'h':
			return st_help();
		default:
			return st_usage("bad arguments");
		}
	}
	if (optind != argc - 1)
		return st_usage(optind == argc ? "missing FILE" : "too many arguments");
	if (!wo.out)
		return st_usage("missing -o OUT");
	if (!rs.in != !rs.out)
		return st_usage("--state and --state-out go together");
	in[0] = argv[optind];
	in[1] = rs.in;
	in[2] = wo.out;
	if (st_check_output(wo.out, wo.force, in, 2) ||
	    (rs.out && st_check_output(rs.out, wo.force, in, 3)))
		return ST_FAIL;
	if (st_open(&s, in[0], parents, np, 0))
		return ST_FAIL;
	st_wopts_apply(&wo, &o);
	if (rs.in && st_restate_prepare(&rs, s, in[0], wo.out, &o)) {
		st_restate_free(&rs);
		sqb_snap_free(s);
		return ST_FAIL;
	}
	if (sqb_snap_parent(s)) {
		hint = st_hint_for(wo.out, sqb_snap_path(sqb_snap_parent(s)));
		o.parent_path_hint = hint;
	}
	st_progress_start("repack", 0, 0);
	err = sqb_snap_repack_ident(&mu, &md, wo.out, s, &o);
	st_progress_stop();
	free(hint);
	if (err == -EEXIST) {
		rc = st_fail(ST_FAIL, "refusing to write %s: it is an input", wo.out);
	} else if (err) {
		char what[512];

		snprintf(what, sizeof(what), "cannot repack %s into %s", in[0], wo.out);
		rc = st_fail_located(what, err, s);
	}
	sqb_snap_free(s);
	if (!err)
		rc = rs.in ? st_restate_write(&rs, wo.out, &mu, &md) : 0;
	if (!rc)
		printf("wrote %s (%s%s)\n", wo.out, sqb_codec_name(wo.codec),
		       wo.dedup ? ", dedup" : "");
	if (!rc && rs.in)
		printf("wrote %s: state of %s, paired with %s\n", rs.out, rs.in, wo.out);
	st_restate_free(&rs);
	return rc;
}
