/* squib's log and metrics sinks (Firecracker style): timestamped lines
 * "[id:level] message" to stderr or --log-path / PUT /logger, and the file
 * or FIFO the metrics lines (built in ctl_metrics.c) go to. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "json_fields.h"

static int log_fd = 2;
static enum sqb_ctl_level log_level = SQB_CTL_WARN;
static int log_show_level; /* logging.rs LOGGER: level and origin off */
static int log_show_origin;
static char log_module[64];
static char log_id[65] = "anonymous-instance"; /* --id: at most 64 bytes */
static int metrics_fd = -1;
static uint64_t missed_log; /* lines the log sink did not take (metrics) */
static int log_broken;	    /* the sink said EPIPE: nothing more is written */

static const char *const level_names[] = {"Off", "Error", "Warning", "Info", "Debug", "Trace"};

int sqb_ctl_level_parse(const char *s, enum sqb_ctl_level *out)
{
	for (unsigned int i = 0; i < 6; i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum sqb_ctl_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warn")) {
		*out = SQB_CTL_WARN;
		return 0;
	}
	return -1;
}

void sqb_ctl_log_set_id(const char *id)
{
	snprintf(log_id, sizeof(log_id), "%s", id);
}

int sqb_ctl_log_enabled(enum sqb_ctl_level lvl)
{
	return lvl != SQB_CTL_OFF && lvl <= log_level;
}

/* Where a line comes from, as a path ("runtime/api/ctl_handlers.c"):
 * Firecracker prints "src/vmm/src/rpc_interface.rs:52" and its tests expect
 * a '/' in the origin. */
static const char *origin_path(const char *file)
{
	const char *p = strstr(file, "runtime/");

	return p ? p : file;
}

/* Firecracker's line: "<time> [<id>:<thread>:<LEVEL>:<file>:<line>] msg"
 * (LEVEL and origin optional; test_logging.py parses it). */
void sqb_ctl_log_at(enum sqb_ctl_level lvl, const char *file, int lineno, const char *fmt, ...)
{
	static const char *const tags[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	char origin[160] = "", thread[17] = "";
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl == SQB_CTL_OFF || lvl > log_level)
		return;
	if (log_module[0] && !strstr(base, log_module))
		return;
	if (log_show_origin)
		snprintf(origin, sizeof(origin), ":%s:%d", origin_path(file), lineno);
	if (prctl(PR_GET_NAME, thread, 0, 0, 0) < 0 || !thread[0])
		snprintf(thread, sizeof(thread), "squib");
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%09ld [%s:%s%s%s%s] ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec, log_id, thread, log_show_level ? ":" : "",
		     log_show_level ? tags[lvl] : "", origin);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* any thread logs; once the sink's reader is gone (a FIFO whose
	 * reader exited: EPIPE) nothing more is written, else every line would
	 * raise SIGPIPE, whose handler logs, and so on for ever */
	if (__atomic_load_n(&log_broken, __ATOMIC_ACQUIRE) ||
	    write(log_fd, line, (size_t)n) != (ssize_t)n) {
		if (errno == EPIPE)
			__atomic_store_n(&log_broken, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&missed_log, 1, __ATOMIC_RELAXED);
	}
}

int sqb_ctl_log_broken(void)
{
	return __atomic_load_n(&log_broken, __ATOMIC_ACQUIRE);
}

/* The libraries' lines (common/log.h) in the same shape as squib's own,
 * so every line of the log parses as Firecracker's (test_logging.py
 * check_log_message_format). */
static void lib_line(enum sqb_log_level lvl, const char *file, int line, const char *msg)
{
	static const enum sqb_ctl_level map[] = {SQB_CTL_ERROR, SQB_CTL_WARN, SQB_CTL_INFO,
						 SQB_CTL_DEBUG};

	sqb_ctl_log_at(map[lvl <= SQB_LOG_DEBUG ? lvl : SQB_LOG_DEBUG], file, line, "%s", msg);
}

int sqb_ctl_log_configure(const char *path, const char *level, int show_level, int show_origin,
			  const char *module, char *err, size_t errlen)
{
	/* Logger::update: a configuration without `level` sets Info
	 * (DEFAULT_LEVEL); the other fields not given keep their value */
	enum sqb_ctl_level lvl = SQB_CTL_INFO;

	if (level && sqb_ctl_level_parse(level, &lvl) < 0) {
		snprintf(err, errlen, "Invalid log level: %s", level);
		return -1;
	}
	if (path) {
		int fd = sqb_ctl_open_sink(path);
		if (fd < 0) {
			int e = errno;

			/* logging.rs LoggerUpdateError, an io::Error */
			snprintf(err, errlen, "Failed to open target file: %s (os error %d)",
				 sqb_os_strerror(e), e);
			return -1;
		}
		if (log_fd != 2)
			close(log_fd);
		log_fd = fd;
		__atomic_store_n(&log_broken, 0, __ATOMIC_RELEASE);
	}
	/* Firecracker's LoggerConfig: a field that is not given keeps its value */
	log_level = lvl;
	if (show_level >= 0)
		log_show_level = show_level;
	if (show_origin >= 0)
		log_show_origin = show_origin;
	/* the libraries' own lines follow the same file and level */
	sqb_log_set_fd(log_fd);
	sqb_log_set_sink(lib_line);
	sqb_log_set_level(lvl <= SQB_CTL_ERROR	? SQB_LOG_ERROR
			  : lvl == SQB_CTL_WARN ? SQB_LOG_WARN
			  : lvl == SQB_CTL_INFO ? SQB_LOG_INFO
						: SQB_LOG_DEBUG);
	if (module)
		snprintf(log_module, sizeof(log_module), "%s", module);
	return 0;
}

/* Never block the API thread on a FIFO nobody reads yet: open without
 * waiting and, for a FIFO with no reader, hold a read end ourselves (as
 * Firecracker's open_file_nonblock does).  Writes are non-blocking: a full
 * FIFO loses lines rather than stopping squib. */
int sqb_ctl_open_sink(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);

	if (fd < 0 && errno == ENXIO)
		fd = open(path, O_RDWR | O_APPEND | O_NONBLOCK | O_CLOEXEC);
	return fd;
}

int sqb_ctl_metrics_open(const char *path, char *err, size_t errlen)
{
	int fd = sqb_ctl_open_sink(path);

	if (fd < 0) {
		int e = errno;

		/* metrics.rs init_metrics: the io::Error's text */
		snprintf(err, errlen, "%s (os error %d)", sqb_os_strerror(e), e);
		return -1;
	}
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = fd;
	return 0;
}

int sqb_ctl_metrics_write(const char *line, size_t len)
{
	if (metrics_fd < 0)
		return -1;
	return write(metrics_fd, line, len) == (ssize_t)len ? 0 : -1;
}

uint64_t sqb_ctl_missed_log_count(void)
{
	return __atomic_load_n(&missed_log, __ATOMIC_RELAXED);
}
