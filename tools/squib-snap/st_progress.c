/* Progress on stderr for long operations: a thread that wakes after one
 * second and then redraws one line from /proc/self/io (bytes read and
 * written by every thread of this process), only when stderr is a tty. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snaptool.h"

static struct {
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int running, stop, drawn;
	const char *label;
	uint64_t expect_r, expect_w, rbase, wbase;
	struct timespec t0;
} pg = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void io_counters(uint64_t *r, uint64_t *w)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	unsigned long long v;

	*r = *w = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "rchar: %llu", &v) == 1)
			*r = v;
		else if (sscanf(line, "wchar: %llu", &v) == 1)
			*w = v;
	}
	fclose(f);
}

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void draw(void)
{
	uint64_t r, w;
	double el = since(&pg.t0);
	char a[32], b[32], pct[16] = "";

	io_counters(&r, &w);
	r -= pg.rbase;
	w -= pg.wbase;
	if (pg.expect_r || pg.expect_w) {
		double p = pg.expect_r ? 100.0 * (double)r / (double)pg.expect_r
				       : 100.0 * (double)w / (double)pg.expect_w;

		snprintf(pct, sizeof(pct), "%3.0f%% ", p > 99 ? 99 : p);
	}
	fprintf(stderr, "\r%s: %s%s read, %s written, %.1f s, %.0f MiB/s   ", pg.label, pct,
		st_human(r, a), st_human(w, b), el, el > 0 ? (double)r / el / 1048576 : 0);
	pg.drawn = 1;
}

static void *run(void *arg)
{
	struct timespec until;
	int first = 1;

	(void)arg;
	pthread_mutex_lock(&pg.lock);
	while (!pg.stop) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += first ? 0 : 250000000L;
		until.tv_sec += first ? 1 : 0;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		first = 0;
		if (pthread_cond_timedwait(&pg.cond, &pg.lock, &until) == ETIMEDOUT && !pg.stop)
			draw();
	}
	if (pg.drawn)
		fprintf(stderr, "\r%*s\r", 78, "");
	pthread_mutex_unlock(&pg.lock);
	return NULL;
}

void st_progress_start(const char *label, uint64_t expect_read, uint64_t expect_write)
{
	if (pg.running || !isatty(STDERR_FILENO))
		return;
	pg.label = label;
	pg.expect_r = expect_read;
	pg.expect_w = expect_write;
	pg.stop = pg.drawn = 0;
	io_counters(&pg.rbase, &pg.wbase);
	clock_gettime(CLOCK_MONOTONIC, &pg.t0);
	pg.running = pthread_create(&pg.thr, NULL, run, NULL) == 0;
}

void st_progress_stop(void)
{
	if (!pg.running)
		return;
	pthread_mutex_lock(&pg.lock);
	pg.stop = 1;
	pthread_cond_signal(&pg.cond);
	pthread_mutex_unlock(&pg.lock);
	pthread_join(pg.thr, NULL);
	pg.running = 0;
}
