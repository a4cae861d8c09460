/* squib-snap pair: a STATE file and its MEMORY file (as a VMM writes them,
 * snapshot_path + mem_file_path) belong together when the STATE file names
 * the MEMORY file's uuid and digest as its companion and the MEMORY file
 * names the STATE file's uuid (docs/format.md [F-46]).  Both are verified. */
#include <getopt.h>
#include <string.h>

#include "snaptool.h"

static int same_id(const struct sqb_uuid *u, const struct sqb_digest *d,
		   const struct sqb_snap_info *in)
{
	return !memcmp(u->b, in->uuid.b, 16) && !memcmp(d->b, in->digest.b, 16);
}

/* Identity and roles only; prints the reason for a mismatch. */
static int pair_identity(const char *state, const char *memf, const struct sqb_snap_info *si,
			 const struct sqb_snap_info *mi)
{
	char a[37], b[37];

	if (si->role != SQB_ROLE_STATE)
		return st_fail(ST_FAIL, "%s has role %s, expected a state file", state,
			       st_role_name(si->role));
	if (mi->role != SQB_ROLE_MEMORY)
		return st_fail(ST_FAIL, "%s has role %s, expected a memory file", memf,
			       st_role_name(mi->role));
	if (!same_id(&si->companion_uuid, &si->companion_digest, mi)) {
		sqb_uuid_format(&si->companion_uuid, a);
		sqb_uuid_format(&mi->uuid, b);
		return st_fail(ST_FAIL,
			       "%s is not the memory file of %s: the state file names %s, "
			       "the memory file is %s%s",
			       memf, state, a, b,
			       memcmp(si->companion_uuid.b, mi->uuid.b, 16)
				   ? ""
				   : " (same uuid, content differs)");
	}
	/* [F-46] the memory file names the state file's uuid (its digest is
	 * unknown when the memory file is written, so it may be zero) */
	if (memcmp(mi->companion_uuid.b, si->uuid.b, 16)) {
		sqb_uuid_format(&mi->companion_uuid, a);
		return st_fail(
		    ST_FAIL, "%s does not name %s as its companion (it names %s; format.md [F-46])",
		    memf, state, sqb_uuid_is_zero(&mi->companion_uuid) ? "none" : a);
	}
	if (!sqb_uuid_is_zero((const struct sqb_uuid *)&mi->companion_digest) &&
	    memcmp(mi->companion_digest.b, si->digest.b, 16))
		return st_fail(ST_FAIL, "%s names another version of %s as its companion", memf,
			       state);
	if (si->arch != mi->arch || si->hv != mi->hv || si->guest_page_size != mi->guest_page_size)
		return st_fail(ST_FAIL, "%s and %s differ in architecture or page size", state,
			       memf);
	return 0;
}

int st_pair_check(const char *state, const char *memf, const char *const *parents, unsigned int np,
		  int verbose, int decode)
{
	sqb_snap *s = NULL, *m = NULL;
	unsigned int problems = 0;
	int rc;

	/* a Diff's memory file opens with its parent chain: --parent paths
	 * first, then the hint the file names */
	if ((rc = st_open(&s, state, NULL, 0, 0)) || (rc = st_open(&m, memf, parents, np, 0)))
		goto out;
	if ((rc = pair_identity(state, memf, sqb_snap_get_info(s), sqb_snap_get_info(m))))
		goto out;
	problems = st_verify_chain(s, 100, "verify state", decode);
	problems += st_verify_chain(m, 100, "verify memory", decode);
	if (problems)
		rc = st_fail(ST_FAIL, "%s + %s: %u problem%s", state, memf, problems,
			     problems == 1 ? "" : "s");
	else if (verbose)
		printf("%s + %s: companion identity matches\n", state, memf);
out:
	sqb_snap_free(s);
	sqb_snap_free(m);
	return rc;
}

int cmd_pair(int argc, char **argv)
{
	static const struct option lo[] = {{"parent", required_argument, NULL, 'p'},
					   {"quiet", no_argument, NULL, 'q'},
					   {"decode", no_argument, NULL, 'D'},
					   {"help", no_argument, NULL, 'h'},
					   {0}};
	const char *parents[ST_MAX_PARENTS];
	unsigned int np = 0;
	int opt, quiet = 0, decode = 0, rc;

	while ((opt = getopt_long(argc, argv, "hqp:", lo, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return st_help();
		case 'q':
			quiet = 1;
			break;
		case 'D':
			decode = 1;
			break;
		case 'p':
			if (st_add_parent(parents, &np, optarg))
				return ST_USAGE;
			break;
		default:
			return st_usage("bad arguments");
		}
	}
	if (argc - optind != 2)
		return st_usage("need STATE and MEM");
	rc = st_pair_check(argv[optind], argv[optind + 1], parents, np, !quiet, decode);
	if (!rc && !quiet)
		printf("pair OK\n");
	return rc;
}
