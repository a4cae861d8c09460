/* Helpers shared by the virtio device tests (test_virtio_vmm.c,
 * test_netvsock_vmm.c): API requests in process and on the real squib, and
 * the checks on its serial output and `squib-snap inspect --devices`, and
 * their common main(). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm_test_util.h"

int vt_api(struct sqb_ctl *c, const char *method, const char *path, const char *json,
	   struct sqb_ctl_resp *r)
{
	sqb_ctl_handle(c, method, path, json, json ? strlen(json) : 0, r);
	return r->status;
}

void vt_api_fault(struct sqb_ctl *c, const char *method, const char *path, const char *json,
		  const char *want)
{
	static struct sqb_ctl_resp r;

	if (vt_api(c, method, path, json, &r) != 400 || !strstr(r.body, want))
		fail_msg("%s %s %s: expected 400 with '%s', got %d %s", method, path,
			 json ? json : "", want, r.status, r.body);
}

void vt_api_ok(struct sqb_ctl *c, const char *method, const char *path, const char *json)
{
	static struct sqb_ctl_resp r;

	if (vt_api(c, method, path, json, &r) != 204)
		fail_msg("%s %s %s: expected 204, got %d %s", method, path, json ? json : "",
			 r.status, r.body);
}

const char *vt_req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		   int want)
{
	static char resp[16384];
	int st = tc_req(t, method, path, json, resp, sizeof(resp));

	if (st != want) {
		char *e = tc_read_file(t->errlog);
		fail_msg("%s %s %s: expected %d, got %d: %s\nlog: %.1500s", method, path,
			 json ? json : "", want, st, resp, e ? e : "");
	}
	return resp;
}

void vt_expect_serial(struct sqb_tc *t, const char *needle, int ms)
{
	if (tc_wait_serial(t, needle, ms) < 0) {
		char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);
		size_t el = e ? strlen(e) : 0;

		fprintf(stderr, "serial: %s\nlog tail: %s (exit %d)\n", s ? s : "",
			e ? e + (el > 2500 ? el - 2500 : 0) : "", tc_wait_exit(t, 1));
		fail_msg("serial never showed '%s'", needle);
	}
}

void vt_expect_done_ok(struct sqb_tc *t, const char *tag, int ms)
{
	char want[64], *s;

	snprintf(want, sizeof(want), "%s DONE pass=", tag);
	vt_expect_serial(t, want, ms);
	for (int i = 0; i < 500; i++) { /* the rest of the line */
		const char *p;

		s = tc_read_file(t->serial);
		p = s ? strstr(s, want) : NULL;
		if (p && strchr(p, '\n'))
			break;
		free(s);
		s = NULL;
		usleep(10000);
	}
	if (!s || !strstr(s, " fail=0\n"))
		fail_msg("guest reported failures: %s", s ? s : "(no complete DONE line)");
	free(s);
}

void vt_spawn(struct sqb_tc *t, const char *squib_bin)
{
	assert_int_equal(tc_spawn(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1),
			 0);
}

void vt_expect_inspect(const char *snap_tool, const char *dir, const char *name,
		       const char *const *needles)
{
	char cmd[512], out[8192];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s inspect --devices %s/%s.state 2>&1", snap_tool, dir, name);
	f = popen(cmd, "r");
	assert_non_null(f);
	out[0] = 0;
	while (n < sizeof(out) - 1 && fgets(out + n, (int)(sizeof(out) - n), f))
		n += strlen(out + n);
	pclose(f);
	for (; *needles; needles++)
		if (!strstr(out, *needles))
			fail_msg("inspect --devices: no '%s' in %s", *needles, out);
}

void vt_rm_tmp(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int vt_main(const struct vt_main *m, int argc, char **argv)
{
	const char *why = NULL;
	int rc, fd;

	if (argc < 2 || (strcmp(argv[1], "api") && argc < 4)) {
		fprintf(stderr, "usage: %s api | guests SQUIB GUEST_DIR [SQUIB_SNAP [FILTER]]\n",
			argv[0]);
		return 2;
	}
	snprintf(m->tmpdir, m->tmpdir_cap, "%s", m->tmp_template);
	if (!mkdtemp(m->tmpdir))
		return 1;
	if (m->setup)
		why = m->setup();
	if (!strcmp(argv[1], "api")) {
		rc = _cmocka_run_group_tests(m->api_group, m->api_tests, m->n_api, NULL, NULL);
		vt_rm_tmp(m->tmpdir);
		return rc;
	}
	*m->squib_bin = argv[2];
	*m->guest_dir = argv[3];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0 || why) {
		if (fd < 0)
			fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n",
				strerror(errno));
		else
			fprintf(stderr, "skip: %s\n", why);
		if (fd >= 0)
			close(fd);
		vt_rm_tmp(m->tmpdir);
		return 77;
	}
	close(fd);
	*m->snap_tool = argc > 4 ? argv[4] : NULL;
	if (argc > 5) /* one test by name pattern, by hand */
		cmocka_set_test_filter(argv[5]);
	rc = _cmocka_run_group_tests(m->guest_group, m->guest_tests, m->n_guests, NULL, NULL);
	vt_rm_tmp(m->tmpdir);
	return rc;
}
