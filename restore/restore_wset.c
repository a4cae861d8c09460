/* Working-set sidecar: a snapfmt file of role STATE holding a WSET section
 * (page runs in first-touch order, [F-58]) and `wspg` extension sections with those
 * pages' bytes in the same order, so the next restore gets its working set in
 * one sequential read.  The header's companion uuid + digest name the
 * snapshot it was recorded on; any other snapshot refuses it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "restore_int.h"

#define SQB_SEC_WSPG SQB_FOURCC('w', 's', 'p', 'g') /* extension: lowercase, [F-25] */
#define WSPG_MAX     (32u << 20)		    /* bytes per WSPG section */

static void wdiag(struct sqb_diag *d, const char *reason)
{
	if (d) {
		d->offset = UINT64_MAX;
		snprintf(d->section, sizeof(d->section), "WSET");
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
	}
}

/* sqb_snap_section_find() lists only the sections snapfmt knows, and WSPG is
 * ours: walk the directory. */
static int find_sec(const sqb_snap *s, uint32_t type, uint32_t inst)
{
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		struct sqb_section_info si;

		if (!sqb_snap_section_info(s, i, &si) && si.type == type && si.instance == inst)
			return (int)i;
	}
	return -SQB_ENOTFOUND;
}

static int load_pages(sqb_snap *ws, uint64_t bytes, uint8_t **out, struct sqb_diag *d)
{
	uint8_t *buf;
	uint64_t got = 0;
	int idx, err;

	if (find_sec(ws, SQB_SEC_WSPG, 0) < 0) {
		*out = NULL; /* ranges only: the pages are decoded from the snapshot */
		return 0;
	}
	buf = malloc(bytes ? bytes : 1);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; (idx = find_sec(ws, SQB_SEC_WSPG, i)) >= 0; i++) {
		void *data;
		size_t len;

		if ((err = sqb_snap_section_read(ws, (unsigned int)idx, &data, &len, d)))
			goto fail;
		if (len > bytes - got) {
			free(data);
			err = -SQB_ECORRUPT;
			wdiag(d, "working-set pages exceed the ranges");
			goto fail;
		}
		memcpy(buf + got, data, len);
		got += len;
		free(data);
	}
	if (got != bytes) {
		err = -SQB_ECORRUPT;
		wdiag(d, "working-set pages do not match the ranges");
		goto fail;
	}
	*out = buf;
	return 0;
fail:
	free(buf);
	return err;
}

int rs_wset_load(sqb_restore *rs, const char *path, struct sqb_diag *d)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	const struct sqb_snap_info *si = sqb_snap_get_info(rs->snap), *wi;
	sqb_snap *ws = NULL;
	uint64_t bytes = 0;
	int err;

	oo.no_parents = 1;
	if ((err = sqb_snap_open(&ws, path, &oo, d)))
		return err;
	wi = sqb_snap_get_info(ws);
	if (wi->role != SQB_ROLE_STATE || memcmp(&wi->companion_uuid, &si->uuid, 16) ||
	    memcmp(&wi->companion_digest, &si->digest, 16) ||
	    wi->guest_page_size != si->guest_page_size) {
		wdiag(d, "working set was recorded on another snapshot");
		err = -SQB_EMISMATCH;
		goto out;
	}
	if ((err = sqb_snap_working_set(ws, &rs->ws, &rs->nws, d)))
		goto out;
	for (size_t i = 0; i < rs->nws; i++) {
		unsigned int r;
		uint64_t page;
		struct sqb_region reg;

		if (sqb_snap_locate(rs->snap, rs->ws[i].gpa, &r, &page) ||
		    sqb_snap_region(rs->snap, r, &reg) ||
		    (uint64_t)rs->ws[i].pages * si->guest_page_size >
			reg.gpa + reg.size - rs->ws[i].gpa ||
		    rs->ws[i].gpa % si->guest_page_size) {
			wdiag(d, "working-set range outside the snapshot's memory");
			err = -SQB_ECORRUPT;
			goto out;
		}
		bytes += (uint64_t)rs->ws[i].pages * si->guest_page_size;
	}
	err = load_pages(ws, bytes, &rs->ws_data, d);
out:
	sqb_snap_free(ws);
	return err;
}

static int flush_pages(sqb_snap_writer *w, uint32_t inst, const uint8_t *buf, size_t len)
{
	if (!len)
		return 0;
	return sqb_writer_add_section(w, SQB_SEC_WSPG, inst, 1, 1, 0, buf, len);
}

/* Runs of consecutive recorded pages inside one region. */
static int build_ranges(sqb_restore *rs, struct sqb_wset_range **out, size_t *n)
{
	struct sqb_wset_range *r = malloc((rs->nrec ? rs->nrec : 1) * sizeof(*r));
	size_t k = 0;
	unsigned int prev_reg = ~0u;

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < rs->nrec; i++) {
		unsigned int reg;
		uint64_t page;

		if (sqb_snap_locate(rs->snap, rs->rec[i], &reg, &page))
			continue;
		if (k && reg == prev_reg && r[k - 1].pages < UINT32_MAX &&
		    r[k - 1].gpa + (uint64_t)r[k - 1].pages * rs->gps == rs->rec[i]) {
			r[k - 1].pages++;
		} else {
			r[k].gpa = rs->rec[i];
			r[k++].pages = 1;
		}
		prev_reg = reg;
	}
	*out = r;
	*n = k;
	return 0;
}

int sqb_restore_wset_save(sqb_restore *rs, const char *path)
{
	const struct sqb_snap_info *si;
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	struct sqb_wset_range *r = NULL;
	sqb_snap_writer *w = NULL;
	uint8_t *buf = NULL;
	size_t n = 0, used = 0;
	uint32_t inst = 0;
	int err;

	if (!rs || !path)
		return -EINVAL;
	if (!rs->record)
		return -SQB_ESTATE;
	si = sqb_snap_get_info(rs->snap);
	pthread_mutex_lock(&rs->lock);
	err = build_ranges(rs, &r, &n);
	pthread_mutex_unlock(&rs->lock);
	if (err)
		return err;
	o.arch = si->arch;
	o.hv = si->hv;
	o.role = SQB_ROLE_STATE;
	o.guest_page_size = si->guest_page_size;
	o.companion_uuid = &si->uuid;
	o.companion_digest = &si->digest;
	buf = malloc(WSPG_MAX);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = sqb_writer_open(&w, path, &o)) || (err = sqb_writer_set_working_set(w, r, n)))
		goto out;
	for (size_t i = 0; i < n; i++)
		for (uint32_t p = 0; p < r[i].pages; p++) {
			if (used + rs->gps > WSPG_MAX) {
				if ((err = flush_pages(w, inst++, buf, used)))
					goto out;
				used = 0;
			}
			/* the snapshot's bytes, not the guest's: the guest may have
			 * written the page since */
			if ((err = sqb_snap_read(rs->snap, r[i].gpa + (uint64_t)p * rs->gps,
						 buf + used, rs->gps, NULL)))
				goto out;
			used += rs->gps;
		}
	if ((err = flush_pages(w, inst, buf, used)))
		goto out;
	err = sqb_writer_finish(w, NULL, NULL);
out:
	sqb_writer_free(w);
	free(buf);
	free(r);
	return err;
}
