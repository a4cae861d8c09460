/* --state / --state-out for merge and repack: a new memory file gets a new
 * identity, so the state file paired with the old top layer no longer pairs
 * with it.  Write a STATE-role copy naming the new memory file ([F-46]). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "snaptool.h"

/* Random RFC 4122 version 4 uuid, the one the new state file will carry. */
static int random_uuid(struct sqb_uuid *u)
{
	size_t got = 0;

	while (got < sizeof(u->b)) {
		ssize_t n = getrandom(u->b + got, sizeof(u->b) - got, 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40);
	u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80);
	return 0;
}

int st_restate_prepare(struct st_restate *r, const sqb_snap *mem, const char *mem_path,
		       const char *mem_out, struct sqb_write_opts *o)
{
	struct sqb_diag d;
	int err;

	if ((err = st_open_quiet(&r->state, r->in, NULL, 0, 0, &d)))
		return st_fail_diag(r->in, err, &d);
	memset(&d, 0, sizeof(d));
	if ((err = sqb_snap_check_pair(r->state, mem, &d))) {
		st_fail(ST_FAIL,
			"--state %s is not the state file of the top layer %s: %s; give the "
			"state file written with %s",
			r->in, mem_path, d.reason[0] ? d.reason : sqb_strerror(err), mem_path);
		return ST_FAIL;
	}
	if ((err = random_uuid(&r->uuid)))
		return st_fail(ST_FAIL, "cannot make a uuid: %s", sqb_strerror(err));
	r->mem_hint = st_hint_for(mem_out, r->out);
	o->companion_uuid = &r->uuid;
	o->companion_digest = NULL; /* [F-46]: only the state file names a digest */
	o->companion_path_hint = r->mem_hint;
	return 0;
}

int st_restate_write(struct st_restate *r, const char *mem_out, const struct sqb_uuid *mu,
		     const struct sqb_digest *md)
{
	const struct sqb_snap_info *si = sqb_snap_get_info(r->state);
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w = NULL;
	char *hint = st_hint_for(r->out, mem_out);
	int err;

	o.arch = si->arch;
	o.hv = si->hv;
	o.role = SQB_ROLE_STATE;
	o.guest_page_size = si->guest_page_size;
	o.host_page_size = si->host_page_size;
	o.uuid = &r->uuid;
	o.companion_uuid = mu;
	o.companion_digest = md;
	o.companion_path_hint = hint;
	err = sqb_writer_open(&w, r->out, &o);
	if (!err)
		err = sqb_writer_copy_state(w, r->state);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	free(hint);
	if (!err)
		return 0;
	/* never leave half a pair: the new memory file pairs with nothing else */
	unlink(mem_out);
	return st_fail(ST_FAIL, "cannot write %s: %s (removed %s)", r->out, sqb_strerror(err),
		       mem_out);
}

void st_restate_free(struct st_restate *r)
{
	sqb_snap_free(r->state);
	free(r->mem_hint);
	r->state = NULL;
	r->mem_hint = NULL;
}
