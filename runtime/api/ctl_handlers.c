/* The Firecracker-compatible API endpoints (swagger v1.x shapes): routing
 * tables for built and not-yet-built endpoints, one handler per endpoint,
 * state preconditions and messages as Firecracker's parsed_request.rs and
 * rpc_interface.rs give them, and the --config-file path through the same
 * code (docs/api-compat.md). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "json_fields.h"

typedef void (*sqb_handler_fn)(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r);

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_BEFORE_START "The requested operation is not supported before starting the microVM."
#define SQB_MEM_MAX_MIB	 (1ULL << 20)
#define SQB_CMDLINE_MAX	 2048
/* builder.rs StartMicrovmError::GuestMemory with the mmap error */
#define MSG_NOMEM                                                                                  \
	"Invalid Memory Configuration: Cannot create mmap region: Out of memory (os error 12)"

static char last_fault[1024]; /* for the log line; one request at a time */

void sqb_ctl_fault(struct sqb_ctl_resp *r, const char *fmt, ...)
{
	char *msg = last_fault;
	struct sqb_jb b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(last_fault), fmt, ap);
	va_end(ap);
	r->status = 400;
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "fault_message");
	sqb_jb_str(&b, msg);
	sqb_jb_close(&b, '}');
	sqb_jb_done(&b); /* msg < 1 KiB, escaped < 6 KiB: always fits */
}

void sqb_ctl_deprecated(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *msg)
{
	c->n.deprecated_http_api_calls++;
	r->deprecation = 1;
	sqb_ctl_log(SQB_CTL_WARN, "%s", msg);
}

uint64_t sqb_ctl_elapsed_us(const struct timespec *a, const struct timespec *b)
{
	int64_t us = ((int64_t)b->tv_sec - (int64_t)a->tv_sec) * 1000000 +
		     ((int64_t)b->tv_nsec - (int64_t)a->tv_nsec) / 1000;

	return us < 0 ? 0 : (uint64_t)us;
}

uint64_t sqb_ctl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
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

/* A built body that did not fit is refused rather than cut (fail closed). */
static void reply_json(struct sqb_ctl_resp *r, struct sqb_jb *b, const char *what)
{
	if (sqb_jb_done(b) < 0)
		return sqb_ctl_fault(r, "The %s does not fit in the %d-byte API response buffer.",
				     what, SQB_CTL_RESP_MAX);
	r->status = 200;
}

/* ---- JSON output (Firecracker's MachineConfig / VmmConfig field order) ---- */

static void machine_config_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "vcpu_count");
	sqb_jb_u64(b, c->vcpu_count);
	sqb_jb_key(b, "mem_size_mib");
	sqb_jb_u64(b, c->mem_size_mib);
	sqb_jb_key(b, "smt");
	sqb_jb_bool(b, c->smt);
	if (strcmp(c->cpu_template, "None")) { /* skipped when None, as Firecracker */
		sqb_jb_key(b, "cpu_template");
		sqb_jb_str(b, c->cpu_template);
	}
	sqb_jb_key(b, "track_dirty_pages");
	sqb_jb_bool(b, c->track_dirty_pages);
	sqb_jb_key(b, "huge_pages");
	sqb_jb_str(b, c->huge_pages);
	sqb_jb_close(b, '}');
}

/* ---- GET endpoints ---- */

static void get_root(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_jb b;

	(void)body;
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "id");
	sqb_jb_str(&b, c->id);
	sqb_jb_key(&b, "state");
	sqb_jb_str(&b, vm_state_name(c));
	sqb_jb_key(&b, "vmm_version");
	sqb_jb_str(&b, SQB_VERSION_STRING);
	sqb_jb_key(&b, "app_name");
	sqb_jb_str(&b, "squib");
	sqb_jb_close(&b, '}');
	reply_json(r, &b, "instance information");
}

static void get_version(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_jb b;

	(void)c;
	(void)body;
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "firecracker_version");
	sqb_jb_str(&b, SQB_VERSION_STRING);
	sqb_jb_close(&b, '}');
	reply_json(r, &b, "version");
}

static void get_machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_jb b;

	(void)body;
	sqb_jb_init(&b, r->body, sizeof(r->body));
	machine_config_json(c, &b);
	reply_json(r, &b, "machine configuration");
}

/* Firecracker's 13 VmmConfig keys in its order.  logger and metrics are
 * null as in Firecracker (it never reports them); devices squib does not
 * have are null or []. */
static void get_vm_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_jb b;

	(void)body;
	c->n.get_vm_config++;
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "balloon");
	sqb_ctl_balloon_json(c, &b);
	sqb_jb_key(&b, "drives");
	sqb_ctl_drives_json(c, &b);
	sqb_jb_key(&b, "boot-source");
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "kernel_image_path");
	sqb_jb_str(&b, c->kernel_path ? c->kernel_path : "");
	sqb_jb_key(&b, "initrd_path");
	sqb_jb_str(&b, c->initrd_path);
	sqb_jb_key(&b, "boot_args");
	sqb_jb_str(&b, c->boot_args);
	sqb_jb_close(&b, '}');
	sqb_jb_key(&b, "cpu-config");
	sqb_jb_null(&b);
	sqb_jb_key(&b, "logger");
	sqb_jb_null(&b);
	sqb_jb_key(&b, "machine-config");
	machine_config_json(c, &b);
	sqb_jb_key(&b, "metrics");
	sqb_jb_null(&b);
	sqb_jb_key(&b, "mmds-config");
	sqb_ctl_mmds_json(c, &b);
	sqb_jb_key(&b, "network-interfaces");
	sqb_ctl_net_json(c, &b);
	sqb_jb_key(&b, "vsock");
	sqb_ctl_vsock_json(c, &b);
	sqb_jb_key(&b, "entropy");
	sqb_ctl_entropy_json(c, &b);
	sqb_jb_key(&b, "pmem");
	sqb_ctl_pmem_json(c, &b);
	sqb_jb_key(&b, "memory-hotplug");
	sqb_ctl_memhp_json(c, &b);
	sqb_jb_close(&b, '}');
	reply_json(r, &b, "microVM configuration");
}

/* ---- machine-config ---- */

static const char *const huge_pages_enum[] = {"None", "Transparent", "2M", NULL};

#define MSG_MACHINE "Machine config error: "

/* Firecracker's order: serde (types, unknown and missing fields), "Empty
 * PATCH request.", the deprecation, the state, then MachineConfig::update's
 * checks (vmm_config/machine_config.rs). */
static void machine_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r, int patch)
{
	uint64_t vcpus = patch ? c->vcpu_count : 1, mem = patch ? c->mem_size_mib : 128;
	int smt = patch ? c->smt : 0, dirty = patch ? c->track_dirty_pages : 0, have_tmpl = 0;
	int have[6] = {0};
	/* an absent cpu_template keeps the slot, PUT as PATCH (MachineConfigUpdate::from) */
	const char *tmpl = c->cpu_template, *huge = patch ? c->huge_pages : "None";
	const struct sqb_jfield f[] = {
	    {"vcpu_count", SQB_JT_UINT, !patch, &vcpus, &have[0], 0, UINT8_MAX},
	    {"mem_size_mib", SQB_JT_UINT, !patch, &mem, &have[1], 0, UINT64_MAX, .expect = "usize"},
	    {"smt", SQB_JT_BOOL, 0, &smt, &have[2]},
	    {"cpu_template", SQB_JT_ENUM, 0, &tmpl, &have_tmpl, 0, 0, sqb_cpu_static_names},
	    {"track_dirty_pages", SQB_JT_BOOL, 0, &dirty, &have[3]},
	    {"huge_pages", SQB_JT_ENUM, 0, &huge, &have[4], 0, 0, huge_pages_enum},
	};
	char err[512];

	if (sqb_json_fields(body, f, 6, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (patch && !have[0] && !have[1] && !have[2] && !have[3] && !have[4] && !have_tmpl)
		return sqb_ctl_fault(r, "Empty PATCH request.");
	if (have_tmpl)
		sqb_ctl_deprecated(c, r,
				   patch
				       ? "PATCH /machine-config: cpu_template field is deprecated."
				       : "PUT /machine-config: cpu_template field is deprecated.");
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	/* rpc_interface.rs: boot_path is set before the request is tried, so a
	 * refused one also rules out a snapshot load */
	c->configured = 1;
	if (vcpus == 0 || vcpus > SQB_VM_MAX_VCPUS || (smt && vcpus > 1 && (vcpus & 1)))
		return sqb_ctl_fault(r,
				     MSG_MACHINE "The number of vCPUs must be greater than 0, "
						 "less than %d and must be 1 or an even number if "
						 "SMT is enabled.",
				     SQB_VM_MAX_VCPUS);
	if (mem == 0 || (strcmp(huge, "None") && (mem & 1)))
		return sqb_ctl_fault(r, MSG_MACHINE "The memory size (MiB) is either 0, or not a "
						    "multiple of the configured page size.");
	if (have_tmpl && sqb_cpu_static_refused(tmpl, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	c->vcpu_count = vcpus;
	c->mem_size_mib = mem;
	c->smt = smt;
	c->track_dirty_pages = dirty;
	/* machine_config.rs update(): a given cpu_template takes the slot a
	 * custom template shares ("None" empties it); an absent one keeps it. */
	if (have_tmpl) {
		c->cpu_template = tmpl;
		sqb_cpu_template_free(c->cpu_config);
		c->cpu_config = NULL;
	}
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

/* O_NONBLOCK: opening a FIFO for reading would wait for a writer and hold
 * the API thread (issue 17), so a FIFO is refused here; other non-regular
 * files (Firecracker accepts /dev/null here) fail at InstanceStart. */
static int readable_file(const char *path, const char *fmt, struct sqb_ctl_resp *r)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), e = errno;
	struct stat st;

	if (fd < 0) {
		/* Rust's io::Error display: "<strerror> (os error N)" */
		sqb_ctl_fault(r, fmt, sqb_os_strerror(e), e);
		return -1;
	}
	if (fstat(fd, &st) < 0 || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
		sqb_ctl_fault(r, "Boot source error: %s is a FIFO or socket, not a regular file",
			      path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void boot_source(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *kernel = NULL, *initrd = NULL, *args = NULL;
	const struct sqb_jfield f[] = {
	    {"kernel_image_path", SQB_JT_STR, 1, &kernel},
	    {"initrd_path", SQB_JT_STR, 0, &initrd},
	    {"boot_args", SQB_JT_STR, 0, &args},
	};
	char err[512];

	if (sqb_json_fields(body, f, 3, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	if (readable_file(kernel,
			  "Boot source error: The kernel file cannot be opened: %s (os error %d)",
			  r) < 0)
		return;
	if (initrd && readable_file(initrd,
				    "Boot source error: The initrd file cannot be opened due to "
				    "invalid path or invalid permissions. %s (os error %d)",
				    r) < 0)
		return;
	if (args && strlen(args) >= SQB_CMDLINE_MAX)
		return sqb_ctl_fault(r,
				     "Boot source error: The kernel command line is invalid: it is "
				     "longer than %d bytes",
				     SQB_CMDLINE_MAX - 1);
	if (set_str(&c->kernel_path, kernel) || set_str(&c->initrd_path, initrd) ||
	    set_str(&c->boot_args, args))
		return sqb_ctl_fault(r, "Out of memory");
	c->configured = 1;
	r->status = 204;
}

static void put_boot_source(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	boot_source(c, body, r);
}

static void put_serial(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL;
	yajl_val rl = NULL;
	int have_rl = 0;
	const struct sqb_jfield f[] = {
	    {"serial_out_path", SQB_JT_STR, 0, &path},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rl, &have_rl},
	};
	struct sqb_vio_bucket b = {0};
	char err[512];

	r->status = 400;
	if (sqb_json_fields(body, f, 2, err, sizeof(err)) < 0)
		sqb_ctl_fault(r, "%s", err);
	else if (have_rl && sqb_ctl_parse_bucket(rl, &b, err, sizeof(err)) < 0)
		sqb_ctl_fault(r, "%s", err);
	else if (c->vm)
		sqb_ctl_fault(r, MSG_AFTER_START);
	else if (path && set_str(&c->serial_out_path, path))
		sqb_ctl_fault(r, "Out of memory");
	else {
		/* rpc_interface.rs ConfigureSerial only records the path: the
		 * file is opened when the microVM is built (sqb_ctl_serial_open) */
		if (path && c->serial_fd >= 0) {
			close(c->serial_fd);
			c->serial_fd = -1;
		}
		c->serial_rl = b; /* a PUT without one clears it */
		r->status = 204;
	}
}

/* Firecracker accepts any case and both "warn" and "warning". */
static const char *const log_levels[] = {"Error", "Warning", "Warn", "Info",
					 "Debug", "Trace",   "Off",  NULL};

static void logger(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL, *level = NULL, *module = NULL;
	int show_level = -1, show_origin = -1;
	const struct sqb_jfield f[] = {
	    {"log_path", SQB_JT_STR, 0, &path},
	    {"level", SQB_JT_ENUM, 0, &level, NULL, 0, 0, log_levels, 1,
	     .bad_msg = "Invalid LevelFilter"},
	    {"show_level", SQB_JT_BOOL, 0, &show_level},
	    {"show_log_origin", SQB_JT_BOOL, 0, &show_origin},
	    {"module", SQB_JT_STR, 0, &module},
	};
	char err[512];

	if (sqb_json_fields(body, f, 5, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (module && strlen(module) >= 64)
		return sqb_ctl_fault(r, "Logger error: the module filter is longer than 63 bytes");
	if (sqb_ctl_log_configure(path, level, show_level, show_origin, module, err, sizeof(err)) <
	    0)
		return sqb_ctl_fault(r, "Logger error: %s", err);
	c->logger_set = 1;
	if (path && set_str(&c->log_path, path))
		return sqb_ctl_fault(r, "Out of memory");
	r->status = 204;
}

static void put_logger(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	logger(c, body, r);
}

#define MSG_METRICS "Metrics error: Cannot initialize the metrics system due to bad user input: "

/* MetricsConfig has no deny_unknown_fields in Firecracker: unknown keys are
 * ignored.  squib's own options, as in its snapshot bodies, are in a
 * "squib" object: {"group": true} adds squib's "squib" group to each line
 * (off by default: Firecracker's metrics schema has additionalProperties
 * false; Firecracker ignores the key). */
static void metrics(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL;
	int emit_id = 0, squib_group = 0;
	yajl_val props = NULL, ext = NULL;
	const struct sqb_jfield f[] = {
	    {"metrics_path", SQB_JT_STR, 1, &path},
	    {"emit_id", SQB_JT_BOOL, 0, &emit_id},
	    {"properties", SQB_JT_OBJECT, 0, &props},
	    {"squib", SQB_JT_OBJECT, 0, &ext},
	};
	const struct sqb_jfield fx[] = {{"group", SQB_JT_BOOL, 0, &squib_group}};
	char err[512], enc[2048];
	struct sqb_jb b;

	if (sqb_json_fields_ex(body, f, 4, SQB_JF_IGNORE_UNKNOWN, err, sizeof(err)) < 0 ||
	    (ext && sqb_json_fields(ext, fx, 1, err, sizeof(err)) < 0))
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	if (c->metrics_set)
		return sqb_ctl_fault(r, MSG_METRICS "Reinitialization of metrics not allowed.");
	/* properties: string values only (BTreeMap<String, String>). */
	sqb_jb_init(&b, enc, sizeof(enc));
	sqb_jb_open(&b, '{');
	for (size_t i = 0; props && i < props->u.object.len; i++) {
		yajl_val v = props->u.object.values[i];
		if (!YAJL_IS_STRING(v))
			return sqb_ctl_fault(r,
					     SQB_JSON_ERR_PREFIX
					     "invalid type for `properties.%.64s`: "
					     "expected a string.",
					     props->u.object.keys[i]);
		sqb_jb_key(&b, props->u.object.keys[i]);
		sqb_jb_str(&b, v->u.string);
	}
	sqb_jb_close(&b, '}');
	if (sqb_jb_done(&b) < 0)
		return sqb_ctl_fault(r, MSG_METRICS "properties exceed %zu bytes.",
				     sizeof(enc) - 1);
	if (sqb_ctl_metrics_open(path, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, MSG_METRICS "%s", err);
	c->metrics_set = 1;
	c->metrics_emit_id = emit_id;
	c->metrics_squib = squib_group;
	if (set_str(&c->metrics_path, path) || (props && set_str(&c->metrics_props, enc)))
		return sqb_ctl_fault(r, "Out of memory");
	r->status = 204;
}

static void put_metrics(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	metrics(c, body, r);
}

/* ---- actions and VM state ---- */

/* Firecracker's happy-start test looks for this line; squib boots an ELF
 * kernel through its PVH entry and anything else as a bzImage. */
static void log_boot_protocol(const char *kernel)
{
	unsigned char m[4] = {0};
	int fd = open(kernel, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return;
	if (read(fd, m, 4) == 4 && !memcmp(m, "\177ELF", 4))
		sqb_ctl_log(SQB_CTL_INFO, "Kernel loaded using PVH boot protocol");
	else
		/* arch/x86_64/mod.rs load_kernel; test_bzimage_boot.py looks
		 * for "(bzImage)" */
		sqb_ctl_log(SQB_CTL_INFO,
			    "Kernel loaded using Linux 64-bit boot protocol (bzImage)");
	close(fd);
}

/* Firecracker's StartMicrovmError texts (builder.rs, arch/x86_64/mod.rs)
 * for what the boot loader (runtime/x86boot) reports by section. */
static void start_error(char *err, size_t errlen, int rc, const struct sqb_diag *d)
{
	const char *what = "Cannot start microvm";

	if (rc == -ENOMEM && !d->section[0]) {
		snprintf(err, errlen, "Start microvm error: " MSG_NOMEM);
		return;
	}
	if (!strcmp(d->section, "memory")) /* huge_pages 2M: the pool is too small */
		what = "Invalid Memory Configuration";
	else if (!strcmp(d->section, "initrd"))
		what = "Error with initrd initialization";
	else if (!strcmp(d->section, "cmdline"))
		what = "Invalid kernel command line";
	else if (!strcmp(d->section, "cpu-config")) { /* the reason says it all, no errno text */
		snprintf(err, errlen,
			 "Start microvm error: Error configuring the vcpu for boot: %s", d->reason);
		return;
	} else if (!strcmp(d->section, "kernel") || !strncmp(d->section, "ELF", 3) ||
		   !strcmp(d->section, "setup header"))
		what = "System configuration error: Cannot load kernel due to invalid memory "
		       "configuration or invalid kernel image";
	snprintf(err, errlen, "Start microvm error: %s: %s%s%s", what, sqb_strerror(rc),
		 d->reason[0] ? ": " : "", d->reason);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* boot_timer.rs's line, at Info, on the vCPU thread that wrote the magic
 * byte: wall and process-CPU time since InstanceStart. */
static void boot_timer_fire(void *arg)
{
	const struct sqb_ctl *c = arg;
	uint64_t us = (clock_ns(CLOCK_MONOTONIC) - c->boot_req_ns) / 1000;
	uint64_t cpu = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c->boot_req_cpu_ns) / 1000;

	sqb_ctl_log(SQB_CTL_INFO, "Guest-boot-time = %6llu us %llu ms, %6llu CPU us %llu CPU ms",
		    (unsigned long long)us, (unsigned long long)(us / 1000),
		    (unsigned long long)cpu, (unsigned long long)(cpu / 1000));
}

/* The boot path's devices: the configured ones, then the boot timer when
 * squib runs with --boot-timer (a snapshot load never gets one, as in
 * Firecracker, whose builder attaches it only when booting). */
static int boot_add_devices(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	struct sqb_ctl *c = arg;
	int err = sqb_ctl_add_devices(c, vm, diag);

	if (!err && c->boot_timer)
		err = sqb_vm_add_boot_timer(vm, boot_timer_fire, c, diag);
	return err;
}

/* The serial output file of PUT /serial, opened (created if missing) as
 * the microVM is built, as DeviceManager::new opens it with
 * open_file_nonblock; its io::Error reaches the API as the EventFd variant
 * of DeviceManagerCreateError, which `?` converts it to.  prefix: the
 * caller's error chain up to that text. */
int sqb_ctl_serial_open(struct sqb_ctl *c, const char *prefix, char *err, size_t errlen)
{
	int fd;

	if (!c->serial_out_path || c->serial_fd >= 0)
		return 0;
	fd = sqb_ctl_open_sink(c->serial_out_path);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "%sError with EventFd: %s (os error %d)", prefix,
			 sqb_os_strerror(e), e);
		return -1;
	}
	c->serial_fd = fd;
	return 0;
}

int sqb_ctl_start(struct sqb_ctl *c, char *err, size_t errlen)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_cpu_template *static_tmpl = NULL;
	struct sqb_diag diag = {0};
	char *cmdline = NULL;
	int rc;

	if (c->vm) {
		snprintf(err, errlen, MSG_AFTER_START);
		return -1;
	}
	if (!c->kernel_path) {
		snprintf(err, errlen,
			 "Start microvm error: Cannot start microvm without kernel configuration.");
		return -1;
	}
	/* Firecracker takes any usize and fails here, when mapping it */
	if (c->mem_size_mib > SQB_MEM_MAX_MIB) {
		snprintf(err, errlen,
			 "Start microvm error: " MSG_NOMEM " (%llu MiB is more than squib's limit "
			 "of %llu MiB)",
			 (unsigned long long)c->mem_size_mib, SQB_MEM_MAX_MIB);
		return -1;
	}
	cfg.vcpu_count = (unsigned int)c->vcpu_count;
	cfg.mem_size_mib = c->mem_size_mib;
	cfg.track_dirty_pages = c->track_dirty_pages;
	cfg.smt = c->smt;
	cfg.pci = c->pci;
	cfg.kernel_path = c->kernel_path;
	cfg.initrd_path = c->initrd_path;
	if (sqb_ctl_root_cmdline(c, c->boot_args, &cmdline) < 0) {
		snprintf(err, errlen, "Start microvm error: " MSG_NOMEM);
		return -1;
	}
	cfg.cmdline = cmdline ? cmdline : c->boot_args;
	c->boot_req_ns = clock_ns(CLOCK_MONOTONIC);
	c->boot_req_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	cfg.add_devices = boot_add_devices;
	cfg.add_devices_arg = c;
	if (sqb_ctl_serial_open(c, "Start microvm error: Failed to create device manager: ", err,
				errlen) < 0) {
		free(cmdline);
		return -1;
	}
	cfg.serial_out_fd = c->serial_fd >= 0 ? c->serial_fd : STDOUT_FILENO;
	if (sqb_vm_huge_parse(c->huge_pages, &cfg.huge_pages) < 0)
		cfg.huge_pages = SQB_VM_HUGE_NONE; /* c->huge_pages is one of huge_pages_enum */
	cfg.cpu_template = c->cpu_config;
	if (strcmp(c->cpu_template, "None")) { /* builder.rs: after memory, before KVM */
		struct sqb_cpu_host host;

		if (!c->cpu_host)
			sqb_cpu_host_probe(&host);
		if (sqb_cpu_static_get(c->cpu_template, c->cpu_host ? c->cpu_host : &host,
				       &static_tmpl, err, errlen) < 0) {
			free(cmdline);
			return -1;
		}
		cfg.cpu_template = static_tmpl;
	}
	rc = sqb_vm_create(&c->vm, &cfg, &diag);
	sqb_cpu_template_free(static_tmpl); /* read only while the VM is created */
	free(cmdline);
	if (rc < 0) {
		start_error(err, errlen, rc, &diag);
		return -1;
	}
	if (sqb_vm_serial_rate_limit(c->vm, c->serial_rl.size, c->serial_rl.one_time_burst,
				     c->serial_rl.refill_time_ms) < 0) {
		snprintf(err, errlen, "Start microvm error: " MSG_NOMEM);
		sqb_vm_free(c->vm);
		c->vm = NULL;
		return -1;
	}
	log_boot_protocol(c->kernel_path);
	rc = sqb_vm_start(c->vm);
	if (rc < 0) {
		snprintf(err, errlen, "Start microvm error: Cannot start microvm: vCPU threads: %s",
			 sqb_strerror(rc));
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

static void actions(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
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
			return sqb_ctl_fault(
			    r,
			    "SendCtrlAltDel failed: the microVM is %s and its keyboard "
			    "buffer must have room",
			    vm_state_name(c));
	} else {
		/* Firecracker: refused before boot; after boot a no-op when no
		 * metrics file is configured (rpc_interface.rs flush_metrics). */
		if (!c->vm)
			return sqb_ctl_fault(r, MSG_BEFORE_START);
		if (c->metrics_set && sqb_ctl_metrics_flush(c) < 0)
			return sqb_ctl_fault(r, "Internal VMM error: Error writing the metrics.");
	}
	r->status = 204;
}

static void put_actions(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	actions(c, body, r);
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

/* Set by the thread that takes the termination signals (runtime/main.c's
 * watchdog, which sleeps in sigwaitinfo) before it wakes the event loop. */
static int term_noted;

void sqb_ctl_note_termination(void)
{
	__atomic_store_n(&term_noted, 1, __ATOMIC_RELEASE);
}

/* A termination signal arrived: give up the pause so the event loop can
 * act on it. */
static int term_pending(void *arg)
{
	(void)arg;
	return __atomic_load_n(&term_noted, __ATOMIC_ACQUIRE);
}

/* Pause a RUNNING VM as PATCH /vm does (its timeout, given up on a
 * termination signal): 0, -ETIMEDOUT, -EINTR or -SQB_ESTATE. */
int sqb_ctl_pause_vm(struct sqb_ctl *c)
{
	return sqb_vm_pause_timeout(c->vm, pause_timeout_ms(), term_pending, NULL);
}

static void patch_vm(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *state = NULL;
	const struct sqb_jfield f[] = {
	    {"state", SQB_JT_ENUM, 1, &state, NULL, 0, 0, vm_states},
	};
	char err[512];
	enum sqb_vm_state cur;
	uint64_t t0 = sqb_ctl_now_us();
	int rc = 0, pause;

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	pause = !strcmp(state, "Paused");
	cur = sqb_vm_get_state(c->vm);
	if (pause && cur == SQB_VM_RUNNING) {
		unsigned int ms = pause_timeout_ms();

		rc = sqb_ctl_pause_vm(c);
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
	} else if (!pause && cur == SQB_VM_PAUSED)
		rc = sqb_vm_resume(c->vm);
	else if (cur == SQB_VM_STOPPED)
		rc = -SQB_ESTATE;
	if (rc < 0)
		return sqb_ctl_fault(r, "Cannot set the microVM to %s: it has stopped", state);
	*(pause ? &c->n.pause_vm_us : &c->n.resume_vm_us) = sqb_ctl_now_us() - t0;
	sqb_ctl_log(SQB_CTL_INFO, "microVM %s", pause ? "paused" : "resumed");
	/* a VM loaded paused and resumed now (a fleet's member loaded ahead):
	 * the resume's own heap use goes back once the reply is out, as after
	 * a load (docs/fleet.md "Pools loaded ahead") */
	if (!pause && rc == 0 && cur == SQB_VM_PAUSED)
		c->trim_heap = 1;
	r->status = 204;
}

/* ---- routing ---- */

struct sqb_route {
	const char *method, *path;
	sqb_handler_fn fn;
	int body; /* 1: a JSON object body is required; 2: optional (parsed when given) */
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
    {"PUT", "/entropy", sqb_ctl_put_entropy, 1},
    {"GET", "/snapshot/status", sqb_ctl_snapshot_status, 0},
    {"PUT", "/balloon", sqb_ctl_put_balloon, 1},
    {"PATCH", "/balloon", sqb_ctl_patch_balloon, 1},
    {"GET", "/balloon", sqb_ctl_get_balloon, 0},
    {"GET", "/balloon/statistics", sqb_ctl_get_balloon_stats, 0},
    {"PATCH", "/balloon/statistics", sqb_ctl_patch_balloon_stats, 1},
    {"PATCH", "/balloon/hinting/start", sqb_ctl_balloon_hint_start, 2}, /* body optional */
    {"GET", "/balloon/hinting/status", sqb_ctl_balloon_hint_status, 0},
    {"PATCH", "/balloon/hinting/stop", sqb_ctl_balloon_hint_stop, 0},
    {"PUT", "/vsock", sqb_ctl_put_vsock, 1},
    {"PUT", "/mmds/config", sqb_ctl_put_mmds_config, 1},
    {"PUT", "/cpu-config", sqb_ctl_put_cpu_config, 1},
    {"PUT", "/hotplug/memory", sqb_ctl_put_memhp, 1},
    {"PATCH", "/hotplug/memory", sqb_ctl_patch_memhp, 1},
    {"GET", "/hotplug/memory", sqb_ctl_get_memhp, 0},
};

/* ---- DELETE /drives|pmem|network-interfaces/{id}: hot-unplug ---- */

#define MSG_EMPTY_ID "The ID cannot be empty."
#define MSG_BAD_ID   "API Resource IDs can only contain alphanumeric characters and underscores."

enum unplug_kind { UNPLUG_DRIVE, UNPLUG_PMEM, UNPLUG_NET };

/* Firecracker's parse_unplug_device (checked_id), then HotUnplugDevice:
 * before boot OperationNotSupportedPreBoot; after, device_manager's
 * hot_unplug_device: PciNotEnabled on virtio-mmio; on PCI DeviceNotFound
 * for an id of another kind or none, CannotUnplugRootDevice, then the
 * unplug, which squib does not do yet. */
static void unplug(struct sqb_ctl *c, enum unplug_kind k, const char *id, struct sqb_ctl_resp *r)
{
	int found = 0, root = 0;

	if (!*id)
		return sqb_ctl_fault(r, MSG_EMPTY_ID);
	for (const char *p = id; *p; p++)
		if (!(*p == '_' || (*p >= '0' && *p <= '9') ||
		      ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
			return sqb_ctl_fault(r, MSG_BAD_ID);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	if (!c->pci)
		return sqb_ctl_fault(r, MSG_NO_PCI);
	for (unsigned int i = 0; k == UNPLUG_DRIVE && i < c->ndrives; i++)
		if (!strcmp(c->drives[i].id, id))
			found = 1, root = c->drives[i].root;
	for (unsigned int i = 0; k == UNPLUG_PMEM && i < c->npmem; i++)
		if (!strcmp(c->pmem[i].id, id))
			found = 1, root = c->pmem[i].root;
	for (unsigned int i = 0; k == UNPLUG_NET && i < c->nifaces; i++)
		found |= !strcmp(c->ifaces[i].id, id);
	if (!found)
		return sqb_ctl_fault(r, "Device not found");
	if (root)
		return sqb_ctl_fault(r, "Cannot unplug root device");
	if (k == UNPLUG_DRIVE)
		return sqb_ctl_unplug_drive(c, id, r);
	if (k == UNPLUG_NET)
		return sqb_ctl_unplug_net(c, id, r);
	sqb_ctl_fault(r, MSG_NO_HOTPLUG); /* pmem: its device memory is not unmapped yet */
}

static void delete_drive(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	(void)body;
	unplug(c, UNPLUG_DRIVE, id, r);
}

static void delete_pmem(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	(void)body;
	unplug(c, UNPLUG_PMEM, id, r);
}

static void delete_net(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	(void)body;
	unplug(c, UNPLUG_NET, id, r);
}

/* Endpoints with a resource id in the path ("/drives/{drive_id}"); the
 * bare collection path answers Firecracker's EmptyID. */
typedef void (*sqb_id_handler_fn)(struct sqb_ctl *c, const char *id, yajl_val body,
				  struct sqb_ctl_resp *r);
static const struct {
	const char *method, *prefix;
	sqb_id_handler_fn fn;
	int body; /* 1: a JSON object body is required; 0: none (a DELETE) */
} id_routes[] = {
    {"PUT", "/drives", sqb_ctl_put_drive, 1},
    {"PATCH", "/drives", sqb_ctl_patch_drive, 1},
    {"DELETE", "/drives", delete_drive, 0},
    {"PUT", "/network-interfaces", sqb_ctl_put_net, 1},
    {"PATCH", "/network-interfaces", sqb_ctl_patch_net, 1},
    {"DELETE", "/network-interfaces", delete_net, 0},
    {"PUT", "/pmem", sqb_ctl_put_pmem, 1},
    {"PATCH", "/pmem", sqb_ctl_patch_pmem, 1},
    {"DELETE", "/pmem", delete_pmem, 0},
};

/* The id of path under prefix ("" for the bare collection), or NULL. */
static const char *route_id(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	if (strncmp(prefix, path, n))
		return NULL;
	if (!path[n])
		return "";
	if (path[n] != '/' || strchr(path + n + 1, '/'))
		return NULL;
	return path + n + 1;
}

/* Firecracker endpoints squib does not build yet (docs/api-compat.md). */
struct sqb_unbuilt {
	const char *method, *path, *shown, *when;
};

static const struct sqb_unbuilt unbuilt[] = {
    {NULL, NULL, NULL, NULL}, /* none today; the list ends here */
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
	for (size_t i = 0; i < sizeof(id_routes) / sizeof(id_routes[0]); i++) {
		const char *id = route_id(id_routes[i].prefix, path);

		if (strcmp(id_routes[i].method, method) || !id)
			continue;
		id_routes[i].fn(c, id, tree, r);
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
	for (size_t i = 0; i < sizeof(id_routes) / sizeof(id_routes[0]); i++) {
		if (!strcmp(id_routes[i].method, method) && route_id(id_routes[i].prefix, path)) {
			*found = 1;
			return id_routes[i].body;
		}
	}
	*found = 0;
	return 0;
}

/* parsed_request.rs: an unknown route names the path's first segment
 * ("GET nope" for /nope); an unknown snapshot operation is snapshot.rs's
 * "/snapshot/<op>". */
static void invalid_path(const char *method, const char *path, struct sqb_ctl_resp *r)
{
	const char *p = path, *e;

	while (*p == '/')
		p++;
	e = strchr(p, '/');
	if (!strcmp(method, "PUT") && e && (size_t)(e - p) == 8 && !strncmp(p, "snapshot", 8) &&
	    e[1]) {
		const char *op = e + 1, *oe = strchr(op, '/');

		return sqb_ctl_fault(r, "Invalid request method and/or path: PUT /snapshot/%.*s.",
				     (int)(oe ? (size_t)(oe - op) : strlen(op)), op);
	}
	sqb_ctl_fault(r, "Invalid request method and/or path: %s %.*s.", method,
		      (int)(e ? (size_t)(e - p) : strlen(p)), p);
}

/* Firecracker's "The API server received a Put request on "/x" with body
 * "..."." line (parsed_request.rs describe()). */
static void log_request(const char *method, const char *path, const char *body, size_t len)
{
	char m[8], b[600];
	size_t pos = 0, i;

	snprintf(m, sizeof(m), "%c", method[0]);
	for (i = 1; method[i] && i < sizeof(m) - 1; i++)
		m[i] = (char)(method[i] | 0x20);
	m[i] = 0;
	if (!len || !strcmp(path, "/mmds")) {
		sqb_ctl_log(SQB_CTL_INFO, "The API server received a %s request on \"%s\".", m,
			    path);
		return;
	}
	/* describe(): a CPU template is shown at Debug only */
	if (!strcmp(path, "/cpu-config") && !sqb_ctl_log_enabled(SQB_CTL_DEBUG)) {
		sqb_ctl_log(SQB_CTL_INFO,
			    "The API server received a %s request on \"%s\". To view the CPU "
			    "template received by the API, configure log-level to DEBUG",
			    m, path);
		return;
	}
	/* the body as Rust's {:?} writes a str: \" \\ \n \r \t, \u{..} for the
	 * other ASCII controls (so a body cannot start a line of its own) */
	for (i = 0; i < len && pos < sizeof(b) - 12; i++) {
		unsigned char ch = (unsigned char)body[i];

		if (ch == '"' || ch == '\\')
			pos += (size_t)snprintf(b + pos, sizeof(b) - pos, "\\%c", ch);
		else if (ch == '\n' || ch == '\r' || ch == '\t')
			pos += (size_t)snprintf(b + pos, sizeof(b) - pos, "\\%c",
						ch == '\n'   ? 'n'
						: ch == '\r' ? 'r'
							     : 't');
		else if (ch < 0x20 || ch == 0x7f)
			pos += (size_t)snprintf(b + pos, sizeof(b) - pos, "\\u{%x}", ch);
		else
			b[pos++] = (char)ch;
	}
	if (i < len) /* cut on a character boundary */
		while (pos && ((unsigned char)b[pos - 1] & 0xc0) >= 0x80)
			if (((unsigned char)b[--pos] & 0xc0) == 0xc0)
				break;
	b[pos] = 0;
	if (i < len)
		strcpy(b + pos, "...");
	sqb_ctl_log(SQB_CTL_INFO,
		    "The API server received a %s request on \"%s\" with body \"%s\".", m, path, b);
}

void sqb_ctl_handle(struct sqb_ctl *c, const char *method, const char *path, const char *body,
		    size_t body_len, struct sqb_ctl_resp *r)
{
	char err[512];
	yajl_val tree = NULL;
	int found, needs_body, mx = sqb_ctl_metrics_api_index(method, path);

	c->api_requests++;
	if (mx >= 0)
		c->api_count[mx]++;
	r->status = 400;
	r->deprecation = 0;
	r->heap = NULL;
	r->body[0] = 0;
	log_request(method, path, body, body_len);
	/* parsed_request.rs: a GET with a body and a PUT/PATCH without one are
	 * refused whatever the path. */
	if (!strcmp(method, "GET") && body_len) {
		sqb_ctl_fault(r, "GET request cannot have a body.");
		goto out;
	}
	/* ... and a DELETE with one, Firecracker's text for it as it is */
	if (!strcmp(method, "DELETE") && body_len) {
		sqb_ctl_fault(r, "Empty Delete request.");
		goto out;
	}
	if (sqb_ctl_balloon_bad_path(method, path, r))
		goto out;
	/* balloon.rs parse_patch_hinting: start and stop take no body */
	if ((!strcmp(method, "PUT") || !strcmp(method, "PATCH")) && !body_len &&
	    strcmp(path, "/balloon/hinting/start") && strcmp(path, "/balloon/hinting/stop")) {
		sqb_ctl_fault(r, "Empty %s request.", method);
		goto out;
	}
	if (!strcmp(method, "PUT") && !strcmp(path, "/snapshot")) {
		sqb_ctl_fault(r, "Missing snapshot operation type.");
		goto out;
	}
	if (sqb_ctl_mmds_raw(c, method, path, body, body_len, r))
		goto out;
	needs_body = route_needs_body(method, path, &found);
	if (found) {
		if ((needs_body == 1 || (needs_body == 2 && body_len)) &&
		    sqb_json_parse_object(&tree, body, body_len, err, sizeof(err)) < 0)
			sqb_ctl_fault(r, "%s", err);
		else
			sqb_ctl_dispatch(c, method, path, tree, r);
		yajl_tree_free(tree);
		goto out;
	}
	for (size_t i = 0; unbuilt[i].method; i++) {
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
	invalid_path(method, path, r);
out:
	if (mx >= 0 && r->status >= 400)
		c->api_fails[mx]++;
	if (r->status >= 400) {
		c->api_errors++;
		sqb_ctl_log(SQB_CTL_INFO, "API %s %s -> %d %s", method, path, r->status, r->body);
		sqb_ctl_log(SQB_CTL_ERROR, "Received Error. Status code: %s. Message: %s",
			    r->status == 413 ? "413 Payload too large" : "400 Bad Request",
			    last_fault);
	} else {
		sqb_ctl_log(SQB_CTL_DEBUG, "API %s %s -> %d", method, path, r->status);
		sqb_ctl_log(SQB_CTL_INFO, "The request was executed successfully. Status code: %s.",
			    r->status == 200 ? "200 OK" : "204 No Content");
	}
}
