/* squib's VMM side of Firecracker's Uffd protocol, against a handler written
 * from Firecracker's documentation (fc_uffd_handler.c): a real guest is
 * snapshotted, its memory extracted raw (what Firecracker handlers serve),
 * and a fresh squib loads it through the handler.  Checks: the handshake a
 * 1.7-1.11 handler can use (page_size_kib in bytes) with EVENT_REMOVE on; a
 * handler that closes its socket after the handshake keeps serving and the VM
 * keeps running; a dead handler stops the VM with the documented exit code;
 * a handler that never serves cannot wedge PATCH /vm, GET / or SIGTERM.
 * Needs /dev/kvm (skips with 77). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snap_test_util.h"

static const char *handler_bin, *snap_tool;
static long long last_round; /* of the snapshot "fc" */
static char body[512];

struct handler {
	pid_t pid;
	char sock[200], log[200];
};

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void handler_start(struct handler *h, const char *mode)
{
	struct stat sb;

	snprintf(h->sock, sizeof(h->sock), "%s/fc-%s.sock", st_dir, mode);
	snprintf(h->log, sizeof(h->log), "%s/fc-%s.log", st_dir, mode);
	unlink(h->sock);
	h->pid = fork();
	assert_true(h->pid >= 0);
	if (!h->pid) {
		int fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(handler_bin, handler_bin, mode, h->sock, st_path("fc", ".raw"), (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(h->sock, &sb); i++)
		usleep(10000);
	if (stat(h->sock, &sb))
		fail_msg("the handler never listened on %s", h->sock);
}

/* The handler must still be running (it exits only on errors). */
static void handler_alive(struct handler *h)
{
	int status;

	if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
		char *l = tc_read_file(h->log);
		fail_msg("the Firecracker-style handler exited (status 0x%x): %s", status,
			 l ? l : "");
	}
}

static void handler_stop(struct handler *h)
{
	if (h->pid > 0)
		kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
}

static int setup(void **state)
{
	struct sqb_tc t;
	char *s;
	pid_t pid;
	int status;

	(void)state;
	st_boot(&t, "snapguest.elf", "mode=1 mib=4", 1, 32, 0);
	st_expect_serial(&t, "ROUND 2 OK\n", 30000);
	st_pause(&t);
	st_create(&t, "Full", "fc", NULL);
	st_create(&t, "Full", "fc2", NULL); /* same guest, another snapshot */
	s = tc_read_file(t.serial);
	last_round = st_last_num(s, "ROUND ");
	free(s);
	tc_stop(&t);
	/* Firecracker handlers serve the raw guest memory */
	pid = fork();
	if (!pid) {
		execl(snap_tool, snap_tool, "extract", "--memory", st_path("fc", ".raw"),
		      st_path("fc", ".mem"), (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "squib-snap extract --memory failed\n");
		return -1;
	}
	return 0;
}

/* The load is served by the handler, which hung up right after the
 * handshake: the guest runs on, touches memory never served before (the
 * markers), pauses and resumes, and SIGTERM ends squib with 0. */
static void test_firecracker_handler_serves_squib_load(void **state)
{
	struct handler h;
	struct sqb_tc t;
	char *l;

	(void)state;
	handler_start(&h, "serve");
	st_load(&t, "fc", NULL, h.sock);
	snprintf(body, sizeof(body), "ROUND %lld OK\n", last_round + 2);
	st_expect_serial(&t, body, 30000);
	handler_alive(&h);
	l = tc_read_file(h.log);
	if (!l || !strstr(l, "page size 4096"))
		fail_msg("handler log: %s", l ? l : "");
	free(l);
	usleep(300000); /* squib has had time to misread the closed socket */
	st_input(&t, "A");
	st_expect_serial(&t, "MARK 0 written\n", 30000);
	st_pause(&t);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Paused"));
	st_resume(&t);
	st_input(&t, "Bv");
	st_expect_serial(&t, "MARKS OK n=2\n", 30000);
	handler_alive(&h);
	kill(t.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
	handler_stop(&h);
}

/* The handler dies (SIGKILL) while the guest runs: the first touch of a page
 * it never served stops the VM with a message, and squib exits 2, as
 * docs/snapshots.md says. */
static void test_dead_handler_stops_vm_with_exit_2(void **state)
{
	struct handler h;
	struct sqb_tc t;
	char *s, *e;
	int rc;

	(void)state;
	handler_start(&h, "serve");
	st_load(&t, "fc", NULL, h.sock);
	snprintf(body, sizeof(body), "ROUND %lld OK\n", last_round + 2);
	st_expect_serial(&t, body, 30000);
	handler_stop(&h);
	usleep(200000);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Running"));
	st_input(&t, "A"); /* marker pages: never touched, never served */
	rc = tc_wait_exit(&t, 20000);
	s = tc_read_file(t.serial);
	e = tc_read_file(t.errlog);
	if (rc != 2)
		fail_msg("squib exit %d, want 2; log: %.1500s", rc, e ? e : "");
	assert_null(strstr(s, "MARK 0 written"));
	if (!strstr(e, "page server exited before serving all guest memory"))
		fail_msg("squib did not say why it stopped: %.1500s", e);
	free(s);
	free(e);
	tc_stop(&t);
}

/* The handler takes the handshake and never serves: vCPUs wait in the
 * kernel.  PATCH /vm Paused answers 400 with a reason within the bound
 * (SQB_PAUSE_TIMEOUT_MS), the API keeps answering, and SIGTERM ends squib. */
static void test_never_serving_handler_cannot_wedge_squib(void **state)
{
	struct handler h;
	struct sqb_tc t;
	long long t0;
	int st;

	(void)state;
	setenv("SQB_PAUSE_TIMEOUT_MS", "1500", 1);
	handler_start(&h, "never");
	st_load(&t, "fc", NULL, h.sock);
	unsetenv("SQB_PAUSE_TIMEOUT_MS");
	usleep(300000); /* the vCPU is waiting for its first page by now */
	t0 = ms_now();
	st = tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", body, sizeof(body));
	if (st != 400 || !strstr(body, "Cannot pause"))
		fail_msg("PATCH /vm Paused: %d %s (after %lld ms)", st, body, ms_now() - t0);
	/* it waited for the bound (the vCPU really was stuck), and no longer */
	if (ms_now() - t0 < 1400 || ms_now() - t0 > 5000)
		fail_msg("the pause gave up after %lld ms; the bound is 1500", ms_now() - t0);
	assert_non_null(strstr(st_req(&t, "GET", "/", NULL, 200), "Running"));
	handler_alive(&h);
	t0 = ms_now();
	kill(t.pid, SIGTERM);
	st = tc_wait_exit(&t, 10000);
	if (st != 0)
		fail_msg("SIGTERM: exit %d after %lld ms", st, ms_now() - t0);
	fprintf(stderr, "pause gave up as bounded; SIGTERM ended squib in %lld ms\n",
		ms_now() - t0);
	tc_stop(&t);
	handler_stop(&h);
}

/* SIGTERM while PATCH /vm Paused waits (bound 60 s here): the pause gives up
 * at once and squib exits 0 within seconds. */
static void test_sigterm_during_pause_wait(void **state)
{
	struct handler h;
	struct sqb_tc t;
	long long t0;
	pid_t client;
	int st;

	(void)state;
	setenv("SQB_PAUSE_TIMEOUT_MS", "60000", 1);
	handler_start(&h, "never");
	st_load(&t, "fc", NULL, h.sock);
	unsetenv("SQB_PAUSE_TIMEOUT_MS");
	usleep(300000);
	client = fork();
	assert_true(client >= 0);
	if (!client) {
		char b[512];

		_exit(tc_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", b, sizeof(b)) == 400
			  ? 0
			  : 1);
	}
	usleep(500000); /* the pause is waiting now */
	t0 = ms_now();
	kill(t.pid, SIGTERM);
	st = tc_wait_exit(&t, 10000);
	if (st != 0 || ms_now() - t0 > 5000)
		fail_msg("SIGTERM during a pause: exit %d after %lld ms", st, ms_now() - t0);
	assert_int_equal(waitpid(client, &st, 0), client);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("the waiting PATCH /vm got no 400 answer");
	tc_stop(&t);
	handler_stop(&h);
}

/* Run squib-pager --state STATE SOCK MEM; returns its pid, stderr to log. */
static pid_t pager_with_state(const char *state, const char *mem, const char *sock, const char *log)
{
	pid_t pid = fork();

	if (!pid) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(st_pager, st_pager, "--state", state, sock, mem, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* squib-pager --state refuses another snapshot's memory before any VMM
 * connects (issue 17: the guest ran on wrong memory), and serves the right
 * one: the load through it runs on. */
static void test_pager_checks_the_state_it_serves(void **state)
{
	char sock[256], log[256], *l;
	struct sqb_tc t;
	struct stat sb;
	pid_t pid;
	int st = -1;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/pair.sock", st_dir);
	snprintf(log, sizeof(log), "%s/pair.log", st_dir);
	unlink(sock);
	pid = pager_with_state(st_path("fc", ".state"), st_path("fc2", ".mem"), sock, log);
	assert_true(pid > 0);
	for (long long end = ms_now() + 10000; ms_now() < end; usleep(10000))
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
	l = tc_read_file(log);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 || !l || !strstr(l, "is not the memory"))
		fail_msg("squib-pager served another snapshot's memory (status 0x%x): %s", st,
			 l ? l : "");
	free(l);
	assert_int_not_equal(stat(sock, &sb), 0); /* it never listened */

	pid = pager_with_state(st_path("fc", ".state"), st_path("fc", ".mem"), sock, log);
	for (int i = 0; i < 500 && stat(sock, &sb); i++)
		usleep(10000);
	if (stat(sock, &sb))
		fail_msg("squib-pager --state with the right pair never listened");
	st_load(&t, "fc", NULL, sock);
	snprintf(body, sizeof(body), "ROUND %lld OK\n", last_round + 2);
	st_expect_serial(&t, body, 30000);
	tc_stop(&t);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_firecracker_handler_serves_squib_load),
	    cmocka_unit_test(test_dead_handler_stops_vm_with_exit_2),
	    cmocka_unit_test(test_never_serving_handler_cannot_wedge_squib),
	    cmocka_unit_test(test_sigterm_during_pause_wait),
	    cmocka_unit_test(test_pager_checks_the_state_it_serves),
	};
	int rc;

	if (argc < 6) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR SQUIB_PAGER HANDLER SQUIB_SNAP\n",
			argv[0]);
		return 2;
	}
	handler_bin = argv[4];
	snap_tool = argv[5];
	st_init(argc, argv);
	rc = cmocka_run_group_tests(tests, setup, NULL);
	st_cleanup();
	return rc;
}
