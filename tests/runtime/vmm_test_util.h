/* Helpers shared by the device tests that drive squib's API (in process
 * through the controller, or the real binary through squib_client):
 * requests that fail the cmocka test with the body and squib's log. */
#ifndef SQB_TEST_VMM_TEST_UTIL_H
#define SQB_TEST_VMM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ctl.h"
#include "squib_client.h"

/* In process: one request through the controller's router; the status. */
int vt_api(struct sqb_ctl *c, const char *method, const char *path, const char *json,
	   struct sqb_ctl_resp *r);
/* The request must answer 400 with want in its body / answer 204. */
void vt_api_fault(struct sqb_ctl *c, const char *method, const char *path, const char *json,
		  const char *want);
void vt_api_ok(struct sqb_ctl *c, const char *method, const char *path, const char *json);

/* The real squib: the request must answer want; its body (a static
 * buffer, valid until the next call). */
const char *vt_req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		   int want);
/* The serial output must show needle within ms (else the serial and the
 * tail of squib's log go to stderr and the test fails). */
void vt_expect_serial(struct sqb_tc *t, const char *needle, int ms);
/* A test guest's "<tag> DONE pass=N fail=M" line: it must come within ms,
 * whole, with fail=0 (else the test fails with the serial output). */
void vt_expect_done_ok(struct sqb_tc *t, const char *tag, int ms);
/* squib with --level Info on a private API socket. */
void vt_spawn(struct sqb_tc *t, const char *squib_bin);
/* `snap_tool inspect --devices dir/name.state` must print every string of
 * the NULL-terminated list. */
void vt_expect_inspect(const char *snap_tool, const char *dir, const char *name,
		       const char *const *needles);
/* rm -rf dir (a mkdtemp folder of the test's own). */
void vt_rm_tmp(const char *dir);

/* A device test's main: `api` runs api_tests; `guests SQUIB GUEST_DIR
 * [SQUIB_SNAP [FILTER]]` sets the three paths and runs guest_tests, or
 * exits 77 (saying why) without /dev/kvm or when setup says why not. */
struct vt_main {
	const char *tmp_template; /* "/tmp/squib-xx-XXXXXX", made into tmpdir */
	char *tmpdir;
	size_t tmpdir_cap;
	const char **squib_bin, **guest_dir, **snap_tool;
	const char *api_group, *guest_group;
	const struct CMUnitTest *api_tests, *guest_tests;
	size_t n_api, n_guests;
	/* NULL, or run once tmpdir exists: NULL, or why the guests cannot run */
	const char *(*setup)(void);
};
int vt_main(const struct vt_main *m, int argc, char **argv);

#endif
