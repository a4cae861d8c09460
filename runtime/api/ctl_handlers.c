/* The Firecracker-compatible API endpoints (swagger v1.x shapes): routing
 * tables for built and not-yet-built endpoints, one handler per endpoint,
 * state preconditions, and the --config-file path through the same code. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "json_fields.h"

typedef void (*sqb_handler_fn)(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r);

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_BEFORE_START "The requested operation is not supported before starting the microVM."
#define SQB_MEM_MAX_MIB	 (1ULL << 20)
#define SQB_CMDLINE_MAX	 2048

void sqb_ctl_fault(struct sqb_ctl_resp *r, const char *fmt, ...)
{
	char msg[1024];
	size_t pos;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->status = 400;
	strcpy(r->body, "{\"fault_message\":\"");
	pos = strlen(r->body);
	sqb_json_escape(r->body, sizeof(r->body) - 3, &pos, msg);
	strcpy(r->body + pos, "\"}");
}

static int set_str(char **dst, const char *src)
{
	char *s = NULL;

	if (src && !(s = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static const char *vm_state_name(struct sqb_ctl *c)
{
	if (!c->vm)
		return "Not started";
	return sqb_vm_get_state(c->vm) == SQB_VM_PAUSED ? "Paused" : "Running";
}

/* ---- JSON output helpers ---- */

static void out_str(char *b, size_t cap, size_t *pos, const char *key, const char *val, int comma)
{
	size_t l = strlen(b);
	*pos = l;
	snprintf(b + l, cap - l, "%s\"%s\":", comma ? "," : "", key);
	*pos = strlen(b);
	if (!val) {
		snprintf(b + *pos, cap - *pos, "null");
	} else {
		snprintf(b + *pos, cap - *pos, "\"");
		(*pos)++;
		sqb_json_escape(b, cap - 2, pos, val);
		snprintf(b + *pos, cap - *pos, "\"");
	}
	*pos = strlen(b);
}

static void machine_config_json(struct sqb_ctl *c, char *b, size_t cap)
{
	size_t pos = strlen(b);

	snprintf(b + pos, cap - pos,
		 "{\"vcpu_count\":%llu,\"mem_size_mib\":%llu,\"smt\":%s,\"track_dirty_pages\":%s,"
		 "\"huge_pages\":\"%s\"",
		 (unsigned long long)c->vcpu_count, (unsigned long long)c->mem_size_mib,
		 c->smt ? "true" : "false", c->track_dirty_pages ? "true" : "false", c->huge_pages);
	pos = strlen(b);
	if (strcmp(c->cpu_template, "None"))
		snprintf(b + pos, cap - pos, ",\"cpu_template\":\"%s\"", c->cpu_template);
	pos = strlen(b);
	snprintf(b + pos, cap - pos, "}");
}

/* ---- GET endpoints ---- */

static void get_root(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	size_t pos = 0;

	(void)body;
	r->status = 200;
	r->body[0] = 0;
	snprintf(r->body, sizeof(r->body), "{");
	out_str(r->body, sizeof(r->body), &pos, "id", c->id, 0);
	out_str(r->body, sizeof(r->body), &pos, "state", vm_state_name(c), 1);
	out_str(r->body, sizeof(r->body), &pos, "vmm_version", SQB_VERSION_STRING, 1);
	out_str(r->body, sizeof(r->body), &pos, "app_name", "squib", 1);
	strcat(r->body, "}");
}

static void get_version(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	(void)c;
	(void)body;
	r->status = 200;
	snprintf(r->body, sizeof(r->body), "{\"firecracker_version\":\"%s\"}", SQB_VERSION_STRING);
}

static void get_machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	(void)body;
	r->status = 200;
	r->body[0] = 0;
	machine_config_json(c, r->body, sizeof(r->body));
}

static void get_vm_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	char *b = r->body;
	size_t cap = sizeof(r->body), pos;

	(void)body;
	r->status = 200;
	snprintf(b, cap, "{\"balloon\":null,\"drives\":[],\"boot-source\":");
	if (c->kernel_path) {
		strcat(b, "{");
		out_str(b, cap, &pos, "kernel_image_path", c->kernel_path, 0);
		if (c->initrd_path)
			out_str(b, cap, &pos, "initrd_path", c->initrd_path, 1);
		if (c->boot_args)
			out_str(b, cap, &pos, "boot_args", c->boot_args, 1);
		strcat(b, "}");
	} else {
		strcat(b, "null");
	}
	strcat(b, ",\"cpu-config\":null,\"logger\":");
	if (c->logger_set) {
		strcat(b, "{");
		out_str(b, cap, &pos, "log_path", c->log_path, 0);
		strcat(b, "}");
	} else {
		strcat(b, "null");
	}
	strcat(b, ",\"machine-config\":");
	machine_config_json(c, b, cap);
	strcat(b, ",\"metrics\":");
	if (c->metrics_set) {
		strcat(b, "{");
		out_str(b, cap, &pos, "metrics_path", c->metrics_path, 0);
		strcat(b, "}");
	} else {
		strcat(b, "null");
	}
	strcat(b,
	       ",\"mmds-config\":null,\"network-interfaces\":[],\"vsock\":null,\"entropy\":null}");
}

/* ---- machine-config ---- */

static const char *const cpu_templates[] = {"C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None", NULL};
static const char *const huge_pages_enum[] = {"None", "Transparent", "2M", NULL};

static void machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r, int patch)
{
	uint64_t vcpus = patch ? c->vcpu_count : 1, mem = patch ? c->mem_size_mib : 128;
	int smt = patch ? c->smt : 0, dirty = patch ? c->track_dirty_pages : 0;
	const char *tmpl = patch ? c->cpu_template : "None", *huge = patch ? c->huge_pages : "None";
	const struct sqb_jfield f[] = {
	    {"vcpu_count", SQB_JT_UINT, !patch, &vcpus, NULL, 1, SQB_VM_MAX_VCPUS},
	    {"mem_size_mib", SQB_JT_UINT, !patch, &mem, NULL, 1, SQB_MEM_MAX_MIB},
	    {"smt", SQB_JT_BOOL, 0, &smt},
	    {"track_dirty_pages", SQB_JT_BOOL, 0, &dirty},
	    {"cpu_template", SQB_JT_ENUM, 0, &tmpl, NULL, 0, 0, cpu_templates},
	    {"huge_pages", SQB_JT_ENUM, 0, &huge, NULL, 0, 0, huge_pages_enum},
	};
	char err[512];

	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (sqb_json_fields(body, f, 6, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (smt && vcpus > 1 && (vcpus & 1))
		return sqb_ctl_fault(r, "The vCPU number is invalid! The vCPU number can only be 1 or an "
				"even number when SMT is enabled.");
	if (strcmp(tmpl, "None"))
		return sqb_ctl_fault(r,
			     "cpu_template `%s` is not supported by squib (only `None`); see "
			     "docs/api-compat.md",
			     tmpl);
	if (!strcmp(huge, "2M"))
		return sqb_ctl_fault(r, "huge_pages `2M` (hugetlbfs) is not supported by squib yet; use "
				"`None` or `Transparent`");
	c->vcpu_count = vcpus;
	c->mem_size_mib = mem;
	c->smt = smt;
	c->track_dirty_pages = dirty;
	c->cpu_template = tmpl;
	c->huge_pages = huge;
	c->configured = 1;
	r->status = 204;
}

static void put_machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	machine_config(c, body, r, 0);
}

static void patch_machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	machine_config(c, body, r, 1);
}

/* ---- boot-source, serial, logger, metrics ---- */

static int readable_file(const char *path, const char *what, struct sqb_ctl_resp *r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		sqb_ctl_fault(r, "The %s file cannot be opened: %s (path: %s)", what, strerror(errno),
		      path);
		return -1;
	}
	close(fd);
	return 0;
}

static void put_boot_source(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *kernel = NULL, *initrd = NULL, *args = NULL;
	const struct sqb_jfield f[] = {
	    {"kernel_image_path", SQB_JT_STR, 1, &kernel},
	    {"initrd_path", SQB_JT_STR, 0, &initrd},
	    {"boot_args", SQB_JT_STR, 0, &args},
	};
	char err[512];

	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (sqb_json_fields(body, f, 3, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (readable_file(kernel, "kernel", r) < 0)
		return;
	if (initrd && readable_file(initrd, "initrd", r) < 0)
		return;
	if (args && strlen(args) >= SQB_CMDLINE_MAX)
		return sqb_ctl_fault(r,
			     "Invalid boot_args: the kernel command line is longer than %d bytes",
			     SQB_CMDLINE_MAX - 1);
	if (set_str(&c->kernel_path, kernel) || set_str(&c->initrd_path, initrd) ||
	    set_str(&c->boot_args, args))
		return sqb_ctl_fault(r, "Out of memory");
	c->configured = 1;
	r->status = 204;
}

static void put_serial(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL;
	yajl_val rl = NULL;
	int have_rl = 0, fd;
	const struct sqb_jfield f[] = {
	    {"serial_out_path", SQB_JT_STR, 0, &path},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rl, &have_rl},
	};
	char err[512];

	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (sqb_json_fields(body, f, 2, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (have_rl)
		return sqb_ctl_fault(r, "serial rate_limiter is not supported by squib yet; see "
				"docs/api-compat.md");
	if (path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return sqb_ctl_fault(r, "Cannot open the serial output file %s: %s", path,
				     strerror(errno));
		if (c->serial_fd >= 0)
			close(c->serial_fd);
		c->serial_fd = fd;
		if (set_str(&c->serial_out_path, path))
			return sqb_ctl_fault(r, "Out of memory");
	}
	r->status = 204;
}

static const char *const log_levels[] = {"Error", "Warning", "Info", "Debug", "Trace", "Off", NULL};

static void put_logger(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL, *level = NULL, *module = NULL;
	int show_level = 0, show_origin = 0;
	const struct sqb_jfield f[] = {
	    {"log_path", SQB_JT_STR, 0, &path},
	    {"level", SQB_JT_ENUM, 0, &level, NULL, 0, 0, log_levels, 1},
	    {"show_level", SQB_JT_BOOL, 0, &show_level},
	    {"show_log_origin", SQB_JT_BOOL, 0, &show_origin},
	    {"module", SQB_JT_STR, 0, &module},
	};
	char err[512];

	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (sqb_json_fields(body, f, 5, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (module && strlen(module) >= 64)
		return sqb_ctl_fault(r, "logger module filter is longer than 63 bytes");
	if (sqb_ctl_log_configure(path, level, show_level, show_origin, module, err, sizeof(err)) <
	    0)
		return sqb_ctl_fault(r, "%s", err);
	c->logger_set = 1;
	if (path && set_str(&c->log_path, path))
		return sqb_ctl_fault(r, "Out of memory");
	r->status = 204;
}

static int append_raw(char *b, size_t cap, size_t *pos, const char *raw)
{
	size_t l = strlen(raw);

	if (*pos + l >= cap)
		return -1;
	memcpy(b + *pos, raw, l + 1);
	*pos += l;
	return 0;
}

static void put_metrics(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL;
	int emit_id = 0;
	yajl_val props = NULL;
	const struct sqb_jfield f[] = {
	    {"metrics_path", SQB_JT_STR, 1, &path},
	    {"emit_id", SQB_JT_BOOL, 0, &emit_id},
	    {"properties", SQB_JT_OBJECT, 0, &props},
	};
	char err[512];

	char enc[2048] = "{";
	size_t pos = 1;

	if (c->metrics_set)
		return sqb_ctl_fault(r, "Reinitialization of metrics not allowed.");
	if (sqb_json_fields(body, f, 3, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	/* properties: string values only (swagger additionalProperties: string). */
	for (size_t i = 0; props && i < props->u.object.len; i++) {
		yajl_val v = props->u.object.values[i];
		if (!YAJL_IS_STRING(v))
			return sqb_ctl_fault(r,
				     SQB_JSON_ERR_PREFIX "invalid type for `properties.%.64s`: "
							 "expected a string",
				     props->u.object.keys[i]);
		if (append_raw(enc, sizeof(enc) - 8, &pos, i ? ",\"" : "\"") < 0 ||
		    sqb_json_escape(enc, sizeof(enc) - 8, &pos, props->u.object.keys[i]) < 0 ||
		    append_raw(enc, sizeof(enc) - 8, &pos, "\":\"") < 0 ||
		    sqb_json_escape(enc, sizeof(enc) - 8, &pos, v->u.string) < 0 ||
		    append_raw(enc, sizeof(enc) - 8, &pos, "\"") < 0)
			return sqb_ctl_fault(r, "metrics properties exceed %zu bytes", sizeof(enc) - 8);
	}
	strcpy(enc + pos, "}");
	if (sqb_ctl_metrics_open(path, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	c->metrics_set = 1;
	c->metrics_emit_id = emit_id;
	if (set_str(&c->metrics_path, path) || (props && set_str(&c->metrics_props, enc)))
		return sqb_ctl_fault(r, "Out of memory");
	r->status = 204;
}

/* ---- actions and VM state ---- */

int sqb_ctl_start(struct sqb_ctl *c, char *err, size_t errlen)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_diag diag = {0};
	int rc;

	if (c->vm) {
		snprintf(err, errlen, MSG_AFTER_START);
		return -1;
	}
	if (!c->kernel_path) {
		snprintf(err, errlen, "Cannot start microvm without kernel configuration.");
		return -1;
	}
	cfg.vcpu_count = (unsigned int)c->vcpu_count;
	cfg.mem_size_mib = c->mem_size_mib;
	cfg.track_dirty_pages = c->track_dirty_pages;
	cfg.kernel_path = c->kernel_path;
	cfg.initrd_path = c->initrd_path;
	cfg.cmdline = c->boot_args;
	cfg.serial_out_fd = c->serial_fd >= 0 ? c->serial_fd : STDOUT_FILENO;
	cfg.huge_pages = strcmp(c->huge_pages, "Transparent") ? SQB_VM_HUGE_NONE : SQB_VM_HUGE_THP;
	rc = sqb_vm_create(&c->vm, &cfg, &diag);
	if (rc < 0) {
		snprintf(err, errlen, "Cannot start microvm: %s%s%s", sqb_strerror(rc),
			 diag.reason[0] ? ": " : "", diag.reason);
		return -1;
	}
	rc = sqb_vm_start(c->vm);
	if (rc < 0) {
		snprintf(err, errlen, "Cannot start microvm: vCPU threads: %s", sqb_strerror(rc));
		sqb_vm_free(c->vm);
		c->vm = NULL;
		return -1;
	}
	sqb_ctl_log(SQB_CTL_INFO, "microVM started: %llu vCPU(s), %llu MiB, kernel %s",
		    (unsigned long long)c->vcpu_count, (unsigned long long)c->mem_size_mib,
		    c->kernel_path);
	return 0;
}

static const char *const action_types[] = {"FlushMetrics", "InstanceStart", "SendCtrlAltDel", NULL};

static void put_actions(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *action = NULL;
	const struct sqb_jfield f[] = {
	    {"action_type", SQB_JT_ENUM, 1, &action, NULL, 0, 0, action_types},
	};
	char err[512];

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!strcmp(action, "InstanceStart")) {
		if (sqb_ctl_start(c, err, sizeof(err)) < 0)
			return sqb_ctl_fault(r, "%s", err);
	} else if (!strcmp(action, "SendCtrlAltDel")) {
		if (!c->vm)
			return sqb_ctl_fault(r, MSG_BEFORE_START);
		if (sqb_vm_send_ctrl_alt_del(c->vm) < 0)
			return sqb_ctl_fault(r,
				     "SendCtrlAltDel failed: the microVM is %s and its keyboard "
				     "buffer must have room",
				     vm_state_name(c));
	} else {
		if (sqb_ctl_metrics_flush(c) < 0)
			return sqb_ctl_fault(r, "The metrics system is not initialized; configure it with "
					"PUT /metrics first.");
	}
	r->status = 204;
}

static const char *const vm_states[] = {"Paused", "Resumed", NULL};

/* How long PATCH /vm Paused waits for every vCPU to park: Firecracker's
 * RECV_TIMEOUT_SEC (30 s); SQB_PAUSE_TIMEOUT_MS overrides (tests). */
static unsigned int pause_timeout_ms(void)
{
	const char *e = getenv("SQB_PAUSE_TIMEOUT_MS");
	char *end;
	unsigned long v;

	if (!e || !*e)
		return 30000;
	v = strtoul(e, &end, 10);
	return (*end || v < 1 || v > 600000) ? 30000 : (unsigned int)v;
}

/* A termination signal waits in signalfd's queue (blocked in every thread):
 * give up the pause so the event loop can act on it. */
static int term_pending(void *arg)
{
	sigset_t set;

	(void)arg;
	return !sigpending(&set) && (sigismember(&set, SIGTERM) || sigismember(&set, SIGINT));
}

static void patch_vm(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *state = NULL;
	const struct sqb_jfield f[] = {
	    {"state", SQB_JT_ENUM, 1, &state, NULL, 0, 0, vm_states},
	};
	char err[512];
	enum sqb_vm_state cur;
	int rc = 0;

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	cur = sqb_vm_get_state(c->vm);
	if (!strcmp(state, "Paused") && cur == SQB_VM_RUNNING) {
		unsigned int ms = pause_timeout_ms();

		rc = sqb_vm_pause_timeout(c->vm, ms, term_pending, NULL);
		if (rc == -ETIMEDOUT || rc == -EINTR) {
			const char *why = rc == -EINTR
					      ? "interrupted by a termination signal"
					      : "not every vCPU stopped within the pause timeout";

			sqb_ctl_log(SQB_CTL_WARN, "pause given up after at most %u ms: %s", ms,
				    why);
			return sqb_ctl_fault(r,
					     "Cannot pause the microVM: %s; a vCPU is waiting for "
					     "guest memory (a Uffd page server that does not "
					     "serve?). The microVM keeps running.",
					     why);
		}
	}
	else if (!strcmp(state, "Resumed") && cur == SQB_VM_PAUSED)
		rc = sqb_vm_resume(c->vm);
	else if (cur == SQB_VM_STOPPED)
		rc = -SQB_ESTATE;
	if (rc < 0)
		return sqb_ctl_fault(r, "Cannot set the microVM to %s: it has stopped", state);
	sqb_ctl_log(SQB_CTL_INFO, "microVM %s", !strcmp(state, "Paused") ? "paused" : "resumed");
	r->status = 204;
}

/* ---- routing ---- */

struct sqb_route {
	const char *method, *path;
	sqb_handler_fn fn;
	int body; /* 1: a JSON object body is required */
};

static const struct sqb_route routes[] = {
    {"GET", "/", get_root, 0},
    {"GET", "/version", get_version, 0},
    {"GET", "/machine-config", get_machine_config, 0},
    {"PUT", "/machine-config", put_machine_config, 1},
    {"PATCH", "/machine-config", patch_machine_config, 1},
    {"PUT", "/boot-source", put_boot_source, 1},
    {"PUT", "/actions", put_actions, 1},
    {"PATCH", "/vm", patch_vm, 1},
    {"GET", "/vm/config", get_vm_config, 0},
    {"PUT", "/logger", put_logger, 1},
    {"PUT", "/metrics", put_metrics, 1},
    {"PUT", "/serial", put_serial, 1},
    {"PUT", "/snapshot/create", sqb_ctl_snapshot_create, 1},
    {"PUT", "/snapshot/load", sqb_ctl_snapshot_load, 1},
};

/* Firecracker endpoints squib does not build yet (docs/api-compat.md). */
struct sqb_unbuilt {
	const char *method, *path, *shown, *when;
};

static const struct sqb_unbuilt unbuilt[] = {
    {"GET", "/balloon", NULL, NULL},
    {"PUT", "/balloon", NULL, NULL},
    {"PATCH", "/balloon", NULL, NULL},
    {"GET", "/balloon/statistics", NULL, NULL},
    {"PATCH", "/balloon/statistics", NULL, NULL},
    {"PATCH", "/balloon/hinting/start", NULL, NULL},
    {"GET", "/balloon/hinting/status", NULL, NULL},
    {"PATCH", "/balloon/hinting/stop", NULL, NULL},
    {"PUT", "/cpu-config", NULL, NULL},
    {"PUT", "/drives/", "/drives/{drive_id}", NULL},
    {"PATCH", "/drives/", "/drives/{drive_id}", NULL},
    {"PUT", "/pmem/", "/pmem/{id}", NULL},
    {"PATCH", "/pmem/", "/pmem/{id}", NULL},
    {"PUT", "/mmds", NULL, NULL},
    {"PATCH", "/mmds", NULL, NULL},
    {"GET", "/mmds", NULL, NULL},
    {"PUT", "/mmds/config", NULL, NULL},
    {"PUT", "/entropy", NULL, NULL},
    {"PUT", "/hotplug/memory", NULL, NULL},
    {"PATCH", "/hotplug/memory", NULL, NULL},
    {"GET", "/hotplug/memory", NULL, NULL},
    {"PUT", "/network-interfaces/", "/network-interfaces/{iface_id}", NULL},
    {"PATCH", "/network-interfaces/", "/network-interfaces/{iface_id}", NULL},
    {"PUT", "/vsock", NULL, NULL},
};

static int path_matches(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (pattern[n - 1] == '/') /* "/drives/" matches "/drives/<id>" with a non-empty id */
		return !strncmp(pattern, path, n) && path[n] && !strchr(path + n, '/');
	return !strcmp(pattern, path);
}

/* Run the built endpoint for (method, path) on an already-parsed body;
 * returns 0 if one exists.  Also used for --config-file sections. */
int sqb_ctl_dispatch(struct sqb_ctl *c, const char *method, const char *path, yajl_val tree,
		     struct sqb_ctl_resp *r)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].method, method) || strcmp(routes[i].path, path))
			continue;
		routes[i].fn(c, tree, r);
		return 0;
	}
	return -1;
}

static int route_needs_body(const char *method, const char *path, int *found)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!strcmp(routes[i].method, method) && !strcmp(routes[i].path, path)) {
			*found = 1;
			return routes[i].body;
		}
	}
	*found = 0;
	return 0;
}

void sqb_ctl_handle(struct sqb_ctl *c, const char *method, const char *path, const char *body,
		    size_t body_len, struct sqb_ctl_resp *r)
{
	char err[512];
	yajl_val tree = NULL;
	int found, needs_body;

	c->api_requests++;
	r->status = 400;
	r->body[0] = 0;
	needs_body = route_needs_body(method, path, &found);
	if (found) {
		if (needs_body &&
		    sqb_json_parse_object(&tree, body, body_len, err, sizeof(err)) < 0)
			sqb_ctl_fault(r, "%s", err);
		else
			sqb_ctl_dispatch(c, method, path, tree, r);
		yajl_tree_free(tree);
		goto out;
	}
	for (size_t i = 0; i < sizeof(unbuilt) / sizeof(unbuilt[0]); i++) {
		const struct sqb_unbuilt *u = &unbuilt[i];
		if (strcmp(u->method, method) || !path_matches(u->path, path))
			continue;
		sqb_ctl_fault(r,
		      "The endpoint %s %s is not yet supported by squib%s%s%s (see "
		      "docs/api-compat.md).",
		      method, u->shown ? u->shown : u->path, u->when ? " (planned: " : "",
		      u->when ? u->when : "", u->when ? ")" : "");
		goto out;
	}
	sqb_ctl_fault(r, "Invalid request method and/or path: %s %s.", method, path);
out:
	if (r->status == 400) {
		c->api_errors++;
		sqb_ctl_log(SQB_CTL_INFO, "API %s %s -> 400 %s", method, path, r->body);
	} else {
		sqb_ctl_log(SQB_CTL_DEBUG, "API %s %s -> %d", method, path, r->status);
	}
}
