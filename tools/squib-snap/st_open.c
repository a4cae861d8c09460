/* Opening snapshots for squib-snap: parents given on the command line are
 * put into chain order (bottom first) by their identity before the library
 * sees them, and failures are printed with the library's located diag. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snaptool.h"

int st_peek(const char *path, struct sqb_snap_info *info)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d;
	sqb_snap *s;
	int err;

	oo.no_parents = 1;
	if ((err = sqb_snap_open(&s, path, &oo, &d))) {
		st_fail_diag(path, err, &d);
		return err;
	}
	*info = *sqb_snap_get_info(s);
	sqb_snap_free(s);
	return 0;
}

static int is_parent_of(const struct sqb_snap_info *child, const struct sqb_snap_info *p)
{
	return child->kind == SQB_SNAP_DIFF && !memcmp(child->parent_uuid.b, p->uuid.b, 16) &&
	       !memcmp(child->parent_digest.b, p->digest.b, 16);
}

/* Order candidate parents bottom-first: the library tries candidates in
 * order and opens each fully (with its own parents) before comparing
 * identity, so a top-first list would make it re-open layers over and over. */
static int order_parents(const char *path, const char *const *in, unsigned int n, const char ***out)
{
	struct sqb_snap_info cur, *infos = calloc(n ? n : 1, sizeof(*infos));
	const char **list = calloc(n ? n : 1, sizeof(*list));
	char *used = calloc(n ? n : 1, 1);
	unsigned int chain = 0, k = 0;
	int err = -ENOMEM;

	if (!infos || !list || !used)
		goto out;
	if ((err = st_peek(path, &cur)))
		goto out;
	for (unsigned int i = 0; i < n; i++)
		if ((err = st_peek(in[i], &infos[i])))
			goto out;
	/* walk down from the file: top-down order of the given parents */
	for (;;) {
		unsigned int i;

		for (i = 0; i < n; i++)
			if (!used[i] && is_parent_of(&cur, &infos[i]))
				break;
		if (i == n)
			break;
		used[i] = (char)(1 + chain++);
		cur = infos[i];
	}
	/* files not reached (below a gap bridged by a stored hint) go first */
	for (unsigned int i = 0; i < n; i++)
		if (!used[i])
			list[k++] = in[i];
	for (unsigned int c = chain; c > 0; c--)
		for (unsigned int i = 0; i < n; i++)
			if (used[i] == (char)c)
				list[k++] = in[i];
	*out = list;
	list = NULL;
out:
	free(list);
	free(infos);
	free(used);
	return err;
}

int st_open_quiet(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
		  int no_parents, struct sqb_diag *d)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	const char **list = NULL;
	int err;

	*out = NULL;
	if (n && !no_parents) {
		if ((err = order_parents(path, parents, n, &list)))
			return err;
		oo.parent_paths = list;
		oo.n_parent_paths = n;
	}
	oo.no_parents = no_parents;
	err = sqb_snap_open(out, path, &oo, d);
	free(list);
	return err;
}

int st_open(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
	    int no_parents)
{
	struct sqb_diag d;
	int err = st_open_quiet(out, path, parents, n, no_parents, &d);

	return err ? st_fail_diag(path, err, &d) : 0;
}

int st_open_lenient(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
		    int no_parents)
{
	struct sqb_diag d;
	char buf[320];
	int err = st_open_quiet(out, path, parents, n, no_parents, &d);

	if (err == -SQB_EPARENT && !no_parents) {
		fprintf(stderr, "squib-snap %s: warning: %s; opening %s without its parents\n",
			st_cmd, sqb_diag_format(&d, buf, sizeof(buf)), path);
		err = st_open_quiet(out, path, NULL, 0, 1, &d);
	}
	return err ? st_fail_diag(path, err, &d) : 0;
}

unsigned int st_instances(const sqb_snap *s, uint32_t type, uint32_t *inst, unsigned int max)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		struct sqb_section_info si;

		if (sqb_snap_section_info(s, i, &si) == 0 && si.type == type && si.known) {
			if (n < max)
				inst[n] = si.instance;
			n++;
		}
	}
	return n;
}
