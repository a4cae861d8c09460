/* squib's log and metrics sinks (Firecracker style): timestamped lines
 * "[id:level] message" to stderr or --log-path / PUT /logger, and one JSON
 * metrics object per line (Firecracker's group and key names where squib
 * has the value) to PUT /metrics' file on FlushMetrics, periodically and
 * at exit. */
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
		int fd = sqb_ctl_open_sink(path);
		if (fd < 0) {
			snprintf(err, errlen, "Cannot open the log file %s: %s", path,
				 strerror(errno));
			return -1;
		}
		if (log_fd != 2)
			close(log_fd);
		log_fd = fd;
	}
	/* Firecracker's LoggerConfig: a field that is not given keeps its value */
	log_level = lvl;
	if (show_level >= 0)
		log_show_level = show_level;
	if (show_origin >= 0)
		log_show_origin = show_origin;
	/* the libraries' own lines follow the same file and level */
	sqb_log_set_fd(log_fd);
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
		snprintf(err, errlen, "Cannot open the metrics file %s: %s", path, strerror(errno));
		return -1;
	}
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = fd;
	return 0;
}

/* Firecracker's counters (SharedIncMetric) are written as the change since
 * the previous line; its latencies (SharedStoreMetric) as the last value. */
static struct sqb_ctl_counters metrics_prev;
static uint64_t uart_prev;
static uint64_t uart_drop_prev;

#define DELTA(field) (c->n.field - metrics_prev.field)

static void group(struct sqb_jb *b, const char *name, const char *const *keys, const uint64_t *vals,
		  unsigned n)
{
	sqb_jb_key(b, name);
	sqb_jb_open(b, '{');
	for (unsigned i = 0; i < n; i++) {
		sqb_jb_key(b, keys[i]);
		sqb_jb_u64(b, vals[i]);
	}
	sqb_jb_close(b, '}');
}

int sqb_ctl_metrics_flush(struct sqb_ctl *c)
{
	static const char *const k_api[] = {"process_startup_time_us",
					    "process_startup_time_cpu_us"};
	static const char *const k_dep[] = {"deprecated_http_api_calls"};
	static const char *const k_get[] = {"instance_info_count", "machine_cfg_count",
					    "vmm_version_count"};
	static const char *const k_lat[] = {"full_create_snapshot", "diff_create_snapshot",
					    "load_snapshot", "pause_vm", "resume_vm"};
	static const char *const k_patch[] = {"machine_cfg_count", "machine_cfg_fails"};
	static const char *const k_put[] = {
	    "actions_count", "actions_fails", "boot_source_count", "boot_source_fails",
	    "logger_count",  "logger_fails",  "machine_cfg_count", "machine_cfg_fails",
	    "metrics_count", "metrics_fails", "serial_count",	   "serial_fails"};
	static const char *const k_uart[] = {"missed_write_count", "write_count"};
	static const char *const k_sqb[] = {
	    "api_requests", "api_errors",     "get_vm_config_count", "vcpu_exits",
	    "vcpu_exit_io", "vcpu_exit_mmio", "uart_tx_bytes",	     "guest_mem_bytes"};
	struct sqb_vm_stats st = {0};
	struct timespec ts;
	struct sqb_jb b;
	char line[4096];

	if (metrics_fd < 0)
		return -1;
	if (c->vm)
		sqb_vm_get_stats(c->vm, &st);
	clock_gettime(CLOCK_REALTIME, &ts);
	sqb_jb_init(&b, line, sizeof(line) - 1);
	sqb_jb_open(&b, '{');
	if (c->metrics_emit_id) {
		sqb_jb_key(&b, "id");
		sqb_jb_str(&b, c->id);
	}
	sqb_jb_key(&b, "utc_timestamp_ms");
	sqb_jb_u64(&b, (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000);
	if (c->metrics_props) {
		sqb_jb_key(&b, "properties");
		sqb_jb_rawval(&b, c->metrics_props);
	}
	group(&b, "api_server", k_api, (const uint64_t[]){c->startup_us, 0}, 2);
	group(&b, "deprecated_api", k_dep, (const uint64_t[]){DELTA(deprecated_http_api_calls)}, 1);
	group(&b, "get_api_requests", k_get,
	      (const uint64_t[]){DELTA(get_instance_info), DELTA(get_machine_cfg),
				 DELTA(get_vmm_version)},
	      3);
	group(&b, "latencies_us", k_lat,
	      (const uint64_t[]){c->n.full_create_snapshot_us, c->n.diff_create_snapshot_us,
				 c->n.load_snapshot_us, c->n.pause_vm_us, c->n.resume_vm_us},
	      5);
	group(&b, "patch_api_requests", k_patch,
	      (const uint64_t[]){DELTA(patch_machine_cfg), DELTA(patch_machine_cfg_fails)}, 2);
	group(&b, "put_api_requests", k_put,
	      (const uint64_t[]){
		  DELTA(put_actions), DELTA(put_actions_fails), DELTA(put_boot_source),
		  DELTA(put_boot_source_fails), DELTA(put_logger), DELTA(put_logger_fails),
		  DELTA(put_machine_cfg), DELTA(put_machine_cfg_fails), DELTA(put_metrics),
		  DELTA(put_metrics_fails), DELTA(put_serial), DELTA(put_serial_fails)},
	      12);
	/* missed_write_count: serial bytes dropped because the sink was full */
	group(&b, "uart", k_uart,
	      (const uint64_t[]){st.uart_dropped_bytes - uart_drop_prev,
				 st.uart_tx_bytes - uart_prev},
	      2);
	/* squib's own totals (cumulative) */
	group(&b, "squib", k_sqb,
	      (const uint64_t[]){c->api_requests, c->api_errors, c->n.get_vm_config, st.exits,
				 st.io_exits, st.mmio_exits, st.uart_tx_bytes, st.guest_mem_bytes},
	      8);
	sqb_jb_close(&b, '}');
	if (sqb_jb_done(&b) < 0)
		return -1;
	b.buf[b.len++] = '\n';
	if (write(metrics_fd, line, b.len) != (ssize_t)b.len)
		return -1;
	metrics_prev = c->n;
	uart_prev = st.uart_tx_bytes;
	uart_drop_prev = st.uart_dropped_bytes;
	return 0;
}
