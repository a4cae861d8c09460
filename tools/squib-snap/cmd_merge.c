/* squib-snap merge BASE DIFF... -o OUT [--diff] [--state S --state-out NS]:
 * check that the layers form one chain in the given order (each DIFF's
 * parent identity is the layer before it; same architecture and page size),
 * then flatten it with sqb_snap_merge (or squash the DIFFs into one diff on
 * BASE); with --state, also write a state file paired with OUT ([F-46]).
 * Refusals happen before any output file exists; writes are atomic. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snaptool.h"

static int is_child(const struct sqb_snap_info *c, const struct sqb_snap_info *p)
{
	return c->kind == SQB_SNAP_DIFF && !memcmp(c->parent_uuid.b, p->uuid.b, 16) &&
	       !memcmp(c->parent_digest.b, p->digest.b, 16);
}

/* Every layer i >= 1 must be a diff whose parent is layer i-1. */
static int check_chain(char **paths, const struct sqb_snap_info *in, unsigned int n)
{
	char u[37], v[37];

	for (unsigned int i = 1; i < n; i++) {
		const struct sqb_snap_info *c = &in[i], *p = &in[i - 1];

		if (!memcmp(c->digest.b, p->digest.b, 16))
			return st_fail(ST_FAIL, "%s is given twice (as %s and %s)", paths[i],
				       paths[i - 1], paths[i]);
		if (c->kind != SQB_SNAP_DIFF)
			return st_fail(ST_FAIL,
				       "%s is a full snapshot: only the first layer (BASE) may be "
				       "full; the others must be diffs",
				       paths[i]);
		if (c->arch != p->arch || c->hv != p->hv)
			return st_fail(ST_FAIL, "%s (%s/%s) and %s (%s/%s) differ in architecture",
				       paths[i - 1], st_arch_name(p->arch), st_hv_name(p->hv),
				       paths[i], st_arch_name(c->arch), st_hv_name(c->hv));
		if (c->guest_page_size != p->guest_page_size)
			return st_fail(ST_FAIL, "%s (page %u) and %s (page %u) differ in page size",
				       paths[i - 1], p->guest_page_size, paths[i],
				       c->guest_page_size);
		if (is_child(c, p))
			continue;
		for (unsigned int k = 0; k < n; k++)
			if (k != i - 1 && k != i && is_child(c, &in[k]))
				return st_fail(ST_FAIL,
					       "layers are in the wrong order: the parent of %s is "
					       "%s (layer %u), not %s (layer %u); give layers "
					       "bottom to top",
					       paths[i], paths[k], k + 1, paths[i - 1], i);
		sqb_uuid_format(&c->parent_uuid, u);
		sqb_uuid_format(&p->uuid, v);
		return st_fail(ST_FAIL, "%s is not a diff on %s: its parent is %s, %s is %s%s",
			       paths[i], paths[i - 1], u, paths[i - 1], v,
			       memcmp(c->parent_uuid.b, p->uuid.b, 16)
				   ? ""
				   : " (same uuid but different content: the base was modified)");
	}
	return 0;
}

static int is_file(const sqb_snap *s, const char *path)
{
	struct stat a, b;

	return fstat(sqb_snap_fd(s), &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Open the top layer so that its chain is exactly the given files: first
 * by the stored hints (one open per layer), kept only if every layer is the
 * very file the user named; else with the layers as candidates. */
static int open_top(sqb_snap **top, char **paths, unsigned int n)
{
	struct sqb_diag d;
	unsigned int k;
	sqb_snap *p;
	int err;

	err = st_open_quiet(top, paths[n - 1], NULL, 0, 0, &d);
	if (!err) {
		for (p = *top, k = n; p && k; p = sqb_snap_parent(p), k--)
			if (!is_file(p, paths[k - 1]))
				break;
		if (!k)
			return 0;
		sqb_snap_free(*top);
	}
	/* bottom-first candidates: see st_open.c */
	err = st_open_quiet(top, paths[n - 1], (const char *const *)paths, n - 1, 0, &d);
	return err ? st_fail_diag(paths[n - 1], err, &d) : 0;
}

static int do_merge(sqb_snap *top, char **paths, unsigned int n, const struct st_wopts *wo,
		    int as_diff, struct st_restate *rs)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_uuid mu;
	struct sqb_digest md;
	char *hint = NULL;
	sqb_snap *base = top;
	int err;

	st_wopts_apply(wo, &o);
	if (rs->in && st_restate_prepare(rs, top, paths[n - 1], wo->out, &o))
		return ST_FAIL;
	for (unsigned int i = 1; i < n; i++)
		base = sqb_snap_parent(base) ? sqb_snap_parent(base) : base;
	st_progress_start("merge", 0, 0);
	if (!as_diff) {
		err = sqb_snap_merge_ident(&mu, &md, wo->out, top, &o, 0);
	} else {
		hint = st_hint_for(wo->out, paths[0]);
		o.parent_path_hint = hint;
		/* BASE at the bottom of the chain: squash; else diff against BASE */
		if (!sqb_snap_parent(base))
			err = sqb_snap_merge(wo->out, top, &o, SQB_MERGE_KEEP_BASE);
		else
			err = sqb_snap_write_diff(wo->out, base, top, &o);
	}
	st_progress_stop();
	free(hint);
	if (err == -EEXIST)
		return st_fail(ST_FAIL, "refusing to write %s: it is an input", wo->out);
	if (err) {
		char what[512];

		snprintf(what, sizeof(what), "cannot write %s", wo->out);
		return st_fail_located(what, err, top);
	}
	return rs->in ? st_restate_write(rs, wo->out, &mu, &md) : 0;
}

/* --state-out is neither an input (layers, --state) nor OUT. */
static int check_state_out(const struct st_restate *rs, const char *out, char **paths,
			   unsigned int n, int force)
{
	const char *in[66];

	for (unsigned int i = 0; i < n; i++)
		in[i] = paths[i];
	in[n] = rs->in;
	in[n + 1] = out;
	if (st_check_output(out, force, &rs->in, 1)) /* OUT over STATE */
		return ST_FAIL;
	return st_check_output(rs->out, force, in, n + 2);
}

int cmd_merge(int argc, char **argv)
{
	static const struct option lo[] = {{"diff", no_argument, NULL, 'd'},
					   {"quiet", no_argument, NULL, 'q'},
					   {"help", no_argument, NULL, 'h'},
					   ST_WOPT_LONGOPTS,
					   ST_STATE_LONGOPTS,
					   {0}};
	struct st_wopts wo = {.codec = SQB_CODEC_ZSTD};
	struct st_restate rs = {0};
	struct sqb_snap_info *in = NULL;
	sqb_snap *top = NULL;
	int as_diff = 0, quiet = 0, opt, rc;
	unsigned int n;
	char **paths;

	while ((opt = getopt_long(argc, argv, "hqo:", lo, NULL)) != -1) {
		if ((rc = st_wopt(&wo, opt, optarg)) < 0)
			return ST_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'd':
			as_diff = 1;
			break;
		case 'q':
			quiet = 1;
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
	n = (unsigned int)(argc - optind);
	paths = argv + optind;
	if (!wo.out)
		return st_usage("missing -o OUT");
	if (n < 1)
		return st_usage("need BASE and at least one DIFF");
	if (n > 64)
		return st_usage("at most 64 layers");
	if (as_diff && n < 2)
		return st_usage("--diff needs at least one DIFF above BASE");
	if (!rs.in != !rs.out)
		return st_usage("--state and --state-out go together");
	if (rs.in && as_diff)
		return st_usage("--state needs a full merge (not --diff)");
	if (st_check_output(wo.out, wo.force, (const char *const *)paths, n))
		return ST_FAIL;
	if (rs.in && check_state_out(&rs, wo.out, paths, n, wo.force))
		return ST_FAIL;
	if (!(in = calloc(n, sizeof(*in))))
		return st_fail(ST_FAIL, "out of memory");
	rc = ST_FAIL;
	for (unsigned int i = 0; i < n; i++)
		if (st_peek(paths[i], &in[i]))
			goto out;
	if (check_chain(paths, in, n) || open_top(&top, paths, n))
		goto out;
	if ((rc = do_merge(top, paths, n, &wo, as_diff, &rs)))
		goto out;
	if (!quiet)
		printf("wrote %s: %s of %u layer%s\n", wo.out,
		       as_diff ? "one diff on BASE" : "full snapshot", n, n == 1 ? "" : "s");
	if (!quiet && rs.in)
		printf("wrote %s: state of %s, paired with %s\n", rs.out, rs.in, wo.out);
out:
	st_restate_free(&rs);
	sqb_snap_free(top);
	free(in);
	return rc;
}
