/* Leveled logging to stderr, configured once from SQB_LOG_LEVEL. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int sqb_log_threshold = -1;
static int sqb_log_fd = 2;
static sqb_log_sink_fn sqb_log_sink;

static int sqb_log_parse_level(void)
{
	const char *v = getenv("SQB_LOG_LEVEL");

	if (!v)
		return SQB_LOG_WARN;
	if (!strcmp(v, "error"))
		return SQB_LOG_ERROR;
	if (!strcmp(v, "info"))
		return SQB_LOG_INFO;
	if (!strcmp(v, "debug"))
		return SQB_LOG_DEBUG;
	return SQB_LOG_WARN;
}

/* The threshold, fd and sink are set by one thread (the API's) while any
 * thread logs: plain atomic loads and stores, no lock. */
int sqb_log_enabled(enum sqb_log_level lvl)
{
	int t = __atomic_load_n(&sqb_log_threshold, __ATOMIC_RELAXED);

	if (t < 0) {
		t = sqb_log_parse_level();
		__atomic_store_n(&sqb_log_threshold, t, __ATOMIC_RELAXED);
	}
	return (int)lvl <= t;
}

void sqb_log_set_level(enum sqb_log_level lvl)
{
	__atomic_store_n(&sqb_log_threshold, (int)lvl, __ATOMIC_RELAXED);
}

void sqb_log_set_sink(sqb_log_sink_fn sink)
{
	__atomic_store_n(&sqb_log_sink, sink, __ATOMIC_RELEASE);
}

void sqb_log_set_fd(int fd)
{
	__atomic_store_n(&sqb_log_fd, fd >= 0 ? fd : 2, __ATOMIC_RELAXED);
}

void sqb_log(enum sqb_log_level lvl, const char *file, int line, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	va_list ap;
	sqb_log_sink_fn sink;
	char buf[1024];
	int n;

	if (!sqb_log_enabled(lvl))
		return;
	sink = __atomic_load_n(&sqb_log_sink, __ATOMIC_ACQUIRE);
	if (sink) {
		va_start(ap, fmt);
		n = vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		if (n >= 0)
			sink(lvl, file, line, buf);
		return;
	}
	if (lvl == SQB_LOG_DEBUG)
		n = snprintf(buf, sizeof(buf), "squib %s %s:%d: ", names[lvl], file, line);
	else
		n = snprintf(buf, sizeof(buf), "squib %s: ", names[lvl]);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(__atomic_load_n(&sqb_log_fd, __ATOMIC_RELAXED), buf,
		     (size_t)n); /* one write: lines never interleave */
}
