/* Lease breaks of MMAP restores (docs/restore.md "Mapped files are leased"):
 * served by the library's watcher thread by default, or by the caller's
 * loop through sqb_restore_lease_serve()/_service()/_unserve().  Either way
 * a writer opening a mapped file fails the restore with -ETXTBSY naming the
 * file, and is held off until the restore lets the lease go. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "rs_test_util.h"

#define S0 (1u << 20)
#define S1 (1u << 20)

static char tmpdir[64];

struct seen {
	atomic_int err;
	char reason[sizeof(((struct sqb_diag *)0)->reason)];
};

static void on_error(void *ctx, int err, const struct sqb_diag *d)
{
	struct seen *s = ctx;

	if (d)
		snprintf(s->reason, sizeof(s->reason), "%s", d->reason);
	atomic_store(&s->err, err);
}

/* Threads of this process named "sqb-lease" (the watcher). */
static int watchers(void)
{
	char path[300], comm[32];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir("/proc/self/task");

	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "sqb-lease\n", 10))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The watcher names itself once it runs: wait up to 5 s for want. */
static int watchers_become(int want)
{
	for (int i = 0; i < 500; i++) {
		if (watchers() == want)
			return want;
		usleep(10000);
	}
	return watchers();
}

/* A child that opens path for writing (the kernel holds it back while the
 * lease is being broken) and exits 0 once it got it. */
static pid_t writer(const char *path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY);

		_exit(fd < 0 ? 1 : 0);
	}
	return pid;
}

static int wait_err(struct seen *s, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(&s->err); i++)
		usleep(10000);
	return atomic_load(&s->err);
}

static sqb_restore *start(struct rt_snap *t, struct seen *s)
{
	struct sqb_restore_opts o = SQB_RESTORE_OPTS_INIT;
	struct sqb_restore_stats st;
	sqb_restore *rs;

	o.strategy = SQB_RESTORE_MMAP;
	o.on_error = on_error;
	o.cb_ctx = s;
	assert_int_equal(sqb_restore_start(&rs, t->s, &o, NULL), 0);
	sqb_restore_get_stats(rs, &st);
	if (!st.mapped_bytes) {
		sqb_restore_free(rs);
		/* no lease here: the filesystem refused it and the file was copied */
		fprintf(stderr,
			"skip: %s: the restore copied the file instead of mapping it (no "
			"read lease on this filesystem), so there is no lease to break\n",
			t->path[0]);
		return NULL;
	}
	return rs;
}

/* Default: a watcher thread lives while the restore holds leases and fails
 * the restore when a writer comes. */
static void test_watcher_thread_by_default(void **state)
{
	struct seen s = {0};
	struct rt_snap t;
	sqb_restore *rs;
	int st;
	pid_t w;

	(void)state;
	assert_int_equal(rt_make(&t, tmpdir, "th", SQB_CODEC_NONE, 0, S0, S1, 1), 0);
	rs = start(&t, &s);
	if (!rs) {
		rt_free(&t);
		skip();
	}
	assert_int_equal(watchers_become(1), 1);
	w = writer(t.path[0]);
	assert_int_equal(wait_err(&s, 10000), -ETXTBSY);
	assert_non_null(strstr(s.reason, t.path[0]));
	usleep(50000);
	assert_int_equal(waitpid(w, &st, WNOHANG), 0); /* still held off */
	sqb_restore_free(rs);
	assert_int_equal(waitpid(w, &st, 0), w);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(watchers(), 0); /* joined with the last lease */
	rt_free(&t);
}

/* A loop serves the pipe: the running watcher hands over and ends, the
 * break waits in the pipe until the loop's service call fails the restore,
 * and when the loop stops serving while leases are held the watcher is back. */
static void test_loop_serves_the_pipe(void **state)
{
	struct seen s = {0}, s2 = {0};
	struct pollfd p = {.events = POLLIN};
	struct rt_snap t, t2;
	sqb_restore *rs, *rs2;
	int st;
	pid_t w;

	(void)state;
	assert_int_equal(rt_make(&t, tmpdir, "lp", SQB_CODEC_NONE, 0, S0, S1, 2), 0);
	assert_int_equal(rt_make(&t2, tmpdir, "lq", SQB_CODEC_NONE, 0, S0, S1, 3), 0);
	rs = start(&t, &s);
	if (!rs) {
		rt_free(&t);
		rt_free(&t2);
		skip();
	}
	assert_int_equal(watchers_become(1), 1);
	p.fd = sqb_restore_lease_serve();
	assert_true(p.fd >= 0);
	assert_int_equal(watchers(), 0); /* joined before serve returned */
	rs2 = start(&t2, &s2);		 /* leased while served: no thread */
	assert_non_null(rs2);
	usleep(50000);
	assert_int_equal(watchers(), 0);
	w = writer(t.path[0]);
	/* the break's signal may interrupt this very poll (EINTR) */
	for (int i = 0; i < 1000 && poll(&p, 1, 10) != 1; i++)
		;
	assert_true(p.revents & POLLIN);
	usleep(20000);
	assert_int_equal(atomic_load(&s.err), 0); /* nobody but the loop reads it */
	sqb_restore_lease_service();
	assert_int_equal(atomic_load(&s.err), -ETXTBSY);
	assert_non_null(strstr(s.reason, t.path[0]));
	assert_int_equal(atomic_load(&s2.err), 0); /* the other restore is untouched */
	sqb_restore_lease_service();		   /* an empty pipe: returns at once */
	assert_int_equal(waitpid(w, &st, WNOHANG), 0);
	sqb_restore_free(rs);
	assert_int_equal(waitpid(w, &st, 0), w);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* the loop goes while rs2 holds its lease: the watcher takes over */
	sqb_restore_lease_unserve();
	assert_int_equal(watchers_become(1), 1);
	w = writer(t2.path[0]);
	assert_int_equal(wait_err(&s2, 10000), -ETXTBSY);
	sqb_restore_free(rs2);
	assert_int_equal(waitpid(w, &st, 0), w);
	assert_int_equal(watchers(), 0);
	rt_free(&t);
	rt_free(&t2);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/sqb-rl-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watcher_thread_by_default),
	    cmocka_unit_test(test_loop_serves_the_pipe),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
