/* Helpers for the snapshot tests: boot a test guest through the real squib
 * API, pause / snapshot / load, a squib-pager child, serial-text checks. */
#ifndef SQB_SNAP_TEST_UTIL_H
#define SQB_SNAP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "squib_client.h"

extern const char *st_squib, *st_guests, *st_pager;
extern char st_dir[128]; /* a temp folder for snapshot files, per test binary */

/* Parse argv (squib guest-dir pager), skip (77) without /dev/kvm, make st_dir. */
void st_init(int argc, char **argv);
void st_cleanup(void);

/* Spawn squib; optionally configure and start guest (NULL: fresh process). */
void st_spawn(struct sqb_tc *t);
void st_boot(struct sqb_tc *t, const char *guest, const char *args, int vcpus, int mib, int dirty);
/* A request that must answer want; returns the body (static buffer). */
const char *st_req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		   int want);
void st_pause(struct sqb_tc *t);
void st_resume(struct sqb_tc *t);
/* PUT /snapshot/create; ext: the "squib" object text or NULL. */
void st_create(struct sqb_tc *t, const char *type, const char *name, const char *ext);
/* Fresh squib + PUT /snapshot/load of snapshot name (File backend unless
 * uffd_sock), resume_vm true. */
void st_load(struct sqb_tc *t, const char *name, const char *mode, const char *uffd_sock);
/* The same with extra top-level JSON members (e.g. "\"track_dirty_pages\":true"). */
void st_load_ex(struct sqb_tc *t, const char *name, const char *mode, const char *uffd_sock,
		const char *extra);
void st_expect_serial(struct sqb_tc *t, const char *needle, int ms);
/* Path of a snapshot file in st_dir: name + ".state" / ".mem". */
const char *st_path(const char *name, const char *suffix);
/* Start squib-pager serving name's memory file on a socket; returns its
 * pid.  opt: an extra option (e.g. "--no-fill") or NULL. */
pid_t st_pager_start(const char *name, const char *opt, char *sock, size_t socklen);
void st_pager_stop(pid_t pid);
/* Bytes for the guest's UART (squib's stdin). */
void st_input(struct sqb_tc *t, const char *s);
/* Last value after the last occurrence of prefix in s (e.g. "ROUND "), or -1. */
long long st_last_num(const char *s, const char *prefix);
/* The number after the first `prefix` on a complete line of t's serial,
 * waiting up to timeout_ms for that line to be whole; -1 if none. */
long long st_first_num(struct sqb_tc *t, const char *prefix, int timeout_ms);

/* The snapshot guest in mode=1 prints "ROUND n OK" per round: wait for
 * round n (60 s) / the last round it printed, or -1. */
void st_wait_round(struct sqb_tc *t, long long n);
long long st_cur_round(struct sqb_tc *t);
/* st_create's ext for a background create (docs/snapshots.md). */
#define ST_BG "{\"background\":true}"
/* Poll GET /snapshot/status until the background create is no longer
 * "writing"; fails unless "complete"; returns pages_copied. */
long long st_bg_wait_complete(struct sqb_tc *t);
/* Load name (mode as st_load): the guest continues past round last + 3 and
 * none of its pages checks "BAD" or "STALE" (a page from after the pause,
 * or a torn one). */
void st_bg_load_and_verify(const char *name, const char *mode, long long last);

/* The snapshot guest's markers (guests/snapguest.c mode=1): resume, write
 * marker set k ('A'..'Z'), wait for it, pause again. */
void st_mark(struct sqb_tc *t, char k);
/* Ask the guest to check its markers ('v'); exactly n sets must be intact. */
void st_expect_marks(struct sqb_tc *t, int n);
/* Load name in a fresh squib (mode as st_load) and expect n marker sets. */
void st_load_count_marks(const char *name, const char *mode, int n);
/* Page statistics of name's memory file opened alone; *has_parent when it
 * is a Diff (may be NULL). */
struct sqb_mem_stats;
void st_mem_stats(const char *name, struct sqb_mem_stats *ms, int *has_parent);

/* An "older squib's" state file: to gets from's identity (uuid, companion)
 * and sections, less LINK, each passed through rw->section first (it returns
 * 1 when it wrote or dropped the section itself, 0 to have it copied); with
 * rw->keep_device the DEVS records are rewritten keeping those it accepts.
 * to's memory file is a hard link of from's. */
struct sqb_snap;
struct sqb_snap_writer;
struct sqb_section_info;
struct sqb_device;
struct st_rewrite {
	int (*section)(struct sqb_snap *s, unsigned int i, const struct sqb_section_info *sec,
		       struct sqb_snap_writer *w, void *arg);
	int (*keep_device)(const struct sqb_device *rec, void *arg);
	void *arg;
};
void st_rewrite_state(const char *from, const char *to, const struct st_rewrite *rw);

#endif
