/* squib's log and metrics sinks (Firecracker style): timestamped lines
 * "[id:level] message" to stderr or --log-path / PUT /logger, and one JSON
 * metrics object per line to PUT /metrics' file on FlushMetrics and exit. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "json_fields.h"

static int log_fd = 2;
static enum sqb_ctl_level log_level = SQB_CTL_WARN;
static int log_show_level = 1;
static int log_show_origin;
static char log_module[64];
static char log_id[64] = "anonymous-instance";
static int metrics_fd = -1;

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

void sqb_ctl_log_at(enum sqb_ctl_level lvl, const char *file, int lineno, const char *fmt, ...)
{
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	char origin[96] = "";
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
		snprintf(origin, sizeof(origin), ":%s:%d", base, lineno);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%09ld [%s%s%s%s] ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec, log_id, log_show_level ? ":" : "",
		     log_show_level ? level_names[lvl] : "", origin);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}

int sqb_ctl_log_configure(const char *path, const char *level, int show_level, int show_origin,
			  const char *module, char *err, size_t errlen)
{
	enum sqb_ctl_level lvl = log_level;

	if (level && sqb_ctl_level_parse(level, &lvl) < 0) {
		snprintf(err, errlen, "Invalid log level: %s", level);
		return -1;
	}
	if (path) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			snprintf(err, errlen, "Cannot open the log file %s: %s", path,
				 strerror(errno));
			return -1;
		}
		if (log_fd != 2)
			close(log_fd);
		log_fd = fd;
	}
	log_level = lvl;
	log_show_level = show_level;
	log_show_origin = show_origin;
	/* the libraries' own lines follow the same file and level */
	sqb_log_set_fd(log_fd);
	sqb_log_set_level(lvl <= SQB_CTL_ERROR	  ? SQB_LOG_ERROR
			  : lvl == SQB_CTL_WARN ? SQB_LOG_WARN
			  : lvl == SQB_CTL_INFO ? SQB_LOG_INFO
						: SQB_LOG_DEBUG);
	snprintf(log_module, sizeof(log_module), "%s", module ? module : "");
	return 0;
}

int sqb_ctl_metrics_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		snprintf(err, errlen, "Cannot open the metrics file %s: %s", path, strerror(errno));
		return -1;
	}
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = fd;
	return 0;
}

int sqb_ctl_metrics_flush(struct sqb_ctl *c)
{
	struct sqb_vm_stats st = {0};
	struct timespec ts;
	char line[4096], id[160] = "", props[2100] = "";
	size_t pos;
	int n;

	if (metrics_fd < 0)
		return -1;
	if (c->vm)
		sqb_vm_get_stats(c->vm, &st);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (c->metrics_emit_id) {
		strcpy(id, "\"id\":\"");
		pos = strlen(id);
		sqb_json_escape(id, sizeof(id) - 3, &pos, c->id);
		strcpy(id + pos, "\",");
	}
	if (c->metrics_props)
		snprintf(props, sizeof(props), ",\"properties\":%s", c->metrics_props);
	n = snprintf(
	    line, sizeof(line),
	    "{%s\"utc_timestamp_ms\":%llu,\"api_server\":{\"process_startup_time_us\":%llu},"
	    "\"api\":{\"requests\":%llu,\"errors\":%llu},"
	    "\"vcpu\":{\"exits\":%llu,\"exit_io\":%llu,\"exit_mmio\":%llu},"
	    "\"uart\":{\"write_count\":%llu},\"vmm\":{\"guest_mem_bytes\":%llu}%s}\n",
	    id, (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000,
	    (unsigned long long)c->startup_us, (unsigned long long)c->api_requests,
	    (unsigned long long)c->api_errors, (unsigned long long)st.exits,
	    (unsigned long long)st.io_exits, (unsigned long long)st.mmio_exits,
	    (unsigned long long)st.uart_tx_bytes, (unsigned long long)st.guest_mem_bytes, props);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return -1;
	return write(metrics_fd, line, (size_t)n) == n ? 0 : -1;
}
