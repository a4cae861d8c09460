/* Snapshot test helpers (see snap_test_util.h): everything goes through the
 * real squib binary and its HTTP API, as a user would drive it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap_test_util.h"
#include "squib/snapfmt.h"

const char *st_squib, *st_guests, *st_pager;
char st_dir[128];

void st_init(int argc, char **argv)
{
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR SQUIB_PAGER\n", argv[0]);
		exit(2);
	}
	st_squib = argv[1];
	st_guests = argv[2];
	st_pager = argv[3];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n", strerror(errno));
		exit(77);
	}
	close(fd);
	snprintf(st_dir, sizeof(st_dir), "/tmp/squib-snaptest-XXXXXX");
	if (!mkdtemp(st_dir)) {
		perror("mkdtemp");
		exit(1);
	}
}

void st_cleanup(void)
{
	char cmd[200];

	if (getenv("SQB_SNAPTEST_KEEP")) { /* for debugging: keep the snapshots */
		fprintf(stderr, "kept %s\n", st_dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", st_dir);
}

const char *st_path(const char *name, const char *suffix)
{
	/* per thread: tests call this from racing threads (ThreadSanitizer) */
	static _Thread_local char buf[4][256];
	static _Thread_local int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s%s", st_dir, name, suffix);
	return buf[k];
}

void st_spawn(struct sqb_tc *t)
{
	if (tc_spawn_stdin(t, st_squib, (const char *const[]){"--level", "Info", NULL}, 1) != 0)
		fail_msg("cannot spawn %s", st_squib);
}

const char *st_req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		   int want)
{
	static char body[8192];
	int st = tc_req(t, method, path, json, body, sizeof(body));

	if (st != want) {
		char *e = tc_read_file(t->errlog);
		fail_msg("%s %s %s: got %d %s, want %d\nsquib log: %.2000s", method, path,
			 json ? json : "", st, body, want, e ? e : "");
	}
	return body;
}

void st_boot(struct sqb_tc *t, const char *guest, const char *args, int vcpus, int mib, int dirty)
{
	char body[1024];

	st_spawn(t);
	snprintf(body, sizeof(body), "{\"vcpu_count\":%d,\"mem_size_mib\":%d%s}", vcpus, mib,
		 dirty ? ",\"track_dirty_pages\":true" : "");
	st_req(t, "PUT", "/machine-config", body, 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/%s\",\"boot_args\":\"%s\"}",
		 st_guests, guest, args);
	st_req(t, "PUT", "/boot-source", body, 204);
	st_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

void st_pause(struct sqb_tc *t)
{
	st_req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
}

void st_resume(struct sqb_tc *t)
{
	st_req(t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
}

void st_create(struct sqb_tc *t, const char *type, const char *name, const char *ext)
{
	char body[1024];

	snprintf(
	    body, sizeof(body),
	    "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"%s%s%s}",
	    type, st_path(name, ".state"), st_path(name, ".mem"), ext ? ",\"squib\":" : "",
	    ext ? ext : "", "");
	st_req(t, "PUT", "/snapshot/create", body, 204);
}

void st_load_ex(struct sqb_tc *t, const char *name, const char *mode, const char *uffd_sock,
		const char *extra)
{
	char body[1024], ext[64] = "";

	st_spawn(t);
	if (mode)
		snprintf(ext, sizeof(ext), ",\"squib\":{\"restore\":\"%s\"}", mode);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"%s\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true%s%s%s}",
		 st_path(name, ".state"), uffd_sock ? "Uffd" : "File",
		 uffd_sock ? uffd_sock : st_path(name, ".mem"), ext, extra ? "," : "",
		 extra ? extra : "");
	st_req(t, "PUT", "/snapshot/load", body, 204);
}

void st_load(struct sqb_tc *t, const char *name, const char *mode, const char *uffd_sock)
{
	st_load_ex(t, name, mode, uffd_sock, NULL);
}

void st_expect_serial(struct sqb_tc *t, const char *needle, int ms)
{
	if (tc_wait_serial(t, needle, ms) < 0) {
		char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);
		size_t n = s ? strlen(s) : 0;
		fail_msg("serial never showed '%s'; serial tail: %s\nlog: %.1500s", needle,
			 s ? s + (n > 1500 ? n - 1500 : 0) : "", e ? e : "");
	}
}

pid_t st_pager_start(const char *name, const char *opt, char *sock, size_t socklen)
{
	pid_t pid;
	struct stat sb;

	snprintf(sock, socklen, "%s/%s.pager.sock", st_dir, name);
	unlink(sock);
	pid = fork();
	if (pid == 0) {
		if (opt)
			execl(st_pager, st_pager, opt, sock, st_path(name, ".mem"), (char *)NULL);
		else
			execl(st_pager, st_pager, sock, st_path(name, ".mem"), (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &sb) != 0; i++)
		usleep(10000);
	if (stat(sock, &sb) != 0)
		fail_msg("squib-pager never listened on %s", sock);
	return pid;
}

void st_pager_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

void st_input(struct sqb_tc *t, const char *s)
{
	if (write(t->stdin_fd, s, strlen(s)) != (ssize_t)strlen(s))
		fail_msg("cannot write to squib's stdin");
}

long long st_last_num(const char *s, const char *prefix)
{
	const char *p, *last = NULL;

	/* complete lines only: the serial file may end in a half-written one */
	for (p = strstr(s, prefix); p; p = strstr(p + 1, prefix))
		if (strchr(p, '\n'))
			last = p;
	if (!last)
		return -1;
	return strtoll(last + strlen(prefix), NULL, 10);
}

long long st_first_num(struct sqb_tc *t, const char *prefix, int timeout_ms)
{
	for (int waited = 0;; waited += 10) {
		char *s = tc_read_file(t->serial);
		const char *p = s ? strstr(s, prefix) : NULL;
		long long v = -1;
		int done = p && strchr(p, '\n');

		if (done)
			v = strtoll(p + strlen(prefix), NULL, 10);
		free(s);
		if (done || waited >= timeout_ms)
			return v;
		usleep(10000);
	}
}

void st_mark(struct sqb_tc *t, char k)
{
	char in[2] = {k, 0}, want[32];

	st_resume(t);
	st_input(t, in);
	snprintf(want, sizeof(want), "MARK %d written\n", k - 'A');
	st_expect_serial(t, want, 30000);
	st_pause(t);
}

void st_expect_marks(struct sqb_tc *t, int n)
{
	char want[32];

	st_input(t, "v");
	snprintf(want, sizeof(want), "MARKS OK n=%d\n", n);
	st_expect_serial(t, want, 30000);
}

void st_load_count_marks(const char *name, const char *mode, int n)
{
	struct sqb_tc t;

	st_load(&t, name, mode, NULL);
	st_expect_marks(&t, n);
	tc_stop(&t);
}

void st_mem_stats(const char *name, struct sqb_mem_stats *ms, int *has_parent)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *s = NULL;

	oo.no_parents = 1;
	if (sqb_snap_open(&s, st_path(name, ".mem"), &oo, NULL))
		fail_msg("cannot open %s", st_path(name, ".mem"));
	sqb_snap_mem_stats(s, ms);
	if (has_parent)
		*has_parent = !sqb_uuid_is_zero(&sqb_snap_get_info(s)->parent_uuid);
	sqb_snap_free(s);
}

void st_wait_round(struct sqb_tc *t, long long n)
{
	char want[64];

	snprintf(want, sizeof(want), "ROUND %lld OK\n", n);
	st_expect_serial(t, want, 60000);
}

long long st_cur_round(struct sqb_tc *t)
{
	char *s = tc_read_file(t->serial);
	long long r = s ? st_last_num(s, "ROUND ") : -1;

	free(s);
	return r;
}

long long st_bg_wait_complete(struct sqb_tc *t)
{
	for (int i = 0; i < 6000; i++) {
		const char *b = st_req(t, "GET", "/snapshot/status", NULL, 200);

		if (!strstr(b, "\"writing\"")) {
			const char *c = strstr(b, "\"pages_copied\":");

			if (!strstr(b, "\"complete\""))
				fail_msg("background snapshot did not complete: %s", b);
			assert_non_null(c);
			return atoll(c + 15);
		}
		usleep(10000);
	}
	fail_msg("background snapshot still writing after 60 s");
	return -1;
}

void st_bg_load_and_verify(const char *name, const char *mode, long long last)
{
	struct sqb_tc t2;
	char *s;

	st_load(&t2, name, mode, NULL);
	st_wait_round(&t2, last + 3);
	s = tc_read_file(t2.serial);
	assert_non_null(s);
	assert_null(strstr(s, "BAD"));
	assert_null(strstr(s, "STALE"));
	free(s);
	tc_stop(&t2);
}

void st_rewrite_state(const char *from, const char *to, const struct st_rewrite *rw)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	const struct sqb_snap_info *si;
	sqb_snap_writer *w = NULL;
	sqb_snap *s = NULL;
	char mem[300];

	oo.no_external = 1;
	oo.no_parents = 1;
	assert_int_equal(sqb_snap_open(&s, st_path(from, ".state"), &oo, NULL), 0);
	si = sqb_snap_get_info(s);
	wo.arch = si->arch;
	wo.hv = si->hv;
	wo.role = si->role;
	wo.guest_page_size = si->guest_page_size;
	wo.uuid = &si->uuid;
	wo.companion_uuid = &si->companion_uuid;
	wo.companion_digest = &si->companion_digest;
	assert_int_equal(sqb_writer_open(&w, st_path(to, ".state"), &wo), 0);
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++) {
		struct sqb_section_info sec;
		void *data = NULL;
		size_t len = 0;

		assert_int_equal(sqb_snap_section_info(s, i, &sec), 0);
		if (sec.type == SQB_SEC_LINK || (sec.type == SQB_SEC_DEVS && rw->keep_device))
			continue;
		if (rw->section && rw->section(s, i, &sec, w, rw->arg))
			continue;
		assert_int_equal(sqb_snap_section_read(s, i, &data, &len, NULL), 0);
		assert_int_equal(sqb_writer_add_section(w, sec.type, sec.instance, sec.version,
							sec.min_version, sec.flags, data, len),
				 0);
		free(data);
	}
	for (unsigned int k = 0; rw->keep_device && k < sqb_snap_device_count(s); k++) {
		struct sqb_device rec;
		void *backing = NULL;

		assert_int_equal(sqb_snap_device(s, k, &rec, &backing, NULL), 0);
		if (rw->keep_device(&rec, rw->arg))
			assert_int_equal(sqb_writer_add_device(w, &rec), 0);
		free(backing);
	}
	assert_int_equal(sqb_writer_finish(w, NULL, NULL), 0);
	sqb_writer_free(w);
	sqb_snap_free(s);
	snprintf(mem, sizeof(mem), "%s", st_path(to, ".mem"));
	unlink(mem);
	assert_int_equal(link(st_path(from, ".mem"), mem), 0);
}
