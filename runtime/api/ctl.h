/* The squib controller: pending configuration, the VM once started, the
 * logger and metrics sinks, and the API endpoint table (private).
 *
 *   HTTP request ──> sqb_ctl_handle(method, path, body) ──> routes[] ──>
 *   handler(ctl, json) ──> 204 | 200 + body | 400 {"fault_message"}
 *   --config-file sections go through the same handlers.
 */
#ifndef SQB_API_CTL_H
#define SQB_API_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "squib/runtime.h"
#include "virtio.h" /* struct sqb_vio_rl_config */

#define SQB_VERSION_STRING "0.1.0"
/* Largest response body.  Every body is built with the bounded builder
 * (json_fields.h); one that does not fit is answered with a 400, never
 * written past the buffer. */
#define SQB_CTL_RESP_MAX 32768
/* Endpoints counted for {get,put,patch}_api_requests (ctl_metrics.c). */
#define SQB_CTL_MX_API 48

enum sqb_ctl_level {
	SQB_CTL_OFF = 0,
	SQB_CTL_ERROR,
	SQB_CTL_WARN,
	SQB_CTL_INFO,
	SQB_CTL_DEBUG,
	SQB_CTL_TRACE
};

/* PUT /drives/{drive_id} (Firecracker's BlockDeviceConfig, virtio-blk). */
#define SQB_CTL_MAX_DRIVES 16
struct sqb_ctl_drive {
	char id[32];	/* drive_id: [A-Za-z0-9_], at most 31 bytes in squib */
	char *path;	/* path_on_host (a host hint in snapshots) */
	char *partuuid; /* NULL: none */
	int root, read_only, writeback;
	int async; /* io_engine Async (io_uring) */
	int has_rl;
	struct sqb_vio_rl_config rl;
	/* vhost-user (Firecracker's `socket`): path is NULL, read_only is
	 * what the backend offered; vhu is the connection PUT opened, handed
	 * to the device at InstanceStart (NULL then: it connects again) */
	char *socket;
	struct sqb_vhu *vhu;
};

/* PUT /pmem/{id} (Firecracker's PmemConfig, virtio-pmem), in the order
 * configured (/dev/pmem<i> is the i-th). */
#define SQB_CTL_MAX_PMEM 8
struct sqb_ctl_pmem {
	char id[32]; /* [A-Za-z0-9_], at most 31 bytes in squib */
	char *path;  /* path_on_host (a host hint in snapshots) */
	int root, read_only;
	int has_rl;
	struct sqb_vio_rl_config rl;
};

/* PUT /balloon (Firecracker's BalloonDeviceConfig; ctl_balloon.c). */
struct sqb_ctl_balloon {
	int set;
	uint32_t amount_mib;
	uint16_t stats_polling_interval_s;
	int deflate_on_oom, free_page_hinting, free_page_reporting;
};

/* PUT /hotplug/memory (Firecracker's MemoryHotplugConfig; ctl_memhp.c). */
struct sqb_ctl_memhp {
	int set;
	uint32_t total_size_mib, block_size_mib, slot_size_mib;
};

/* PUT /network-interfaces/{iface_id} (Firecracker's NetworkInterfaceConfig). */
#define SQB_CTL_MAX_IFACES 32
struct sqb_ctl_iface {
	char id[32];	     /* iface_id: [A-Za-z0-9_], at most 27 bytes in squib */
	char *host_dev_name; /* the tap (a host hint in snapshots, [F-113]) */
	int tap_fd;	     /* held open from PUT to boot as Firecracker does, or -1 */
	int has_mac;
	uint8_t mac[6];
	int has_rx, has_tx;
	struct sqb_vio_rl_config rx, tx;
	uint16_t mtu; /* 0: not given (VIRTIO_NET_F_MTU not offered) */
	int mmds;     /* PUT /mmds/config named it: the MMDS stack runs on it */
};

struct sqb_ctl {
	char id[65]; /* --id: at most 64 bytes */
	/* machine-config */
	uint64_t vcpu_count, mem_size_mib;
	int smt, track_dirty_pages;
	int pci; /* --enable-pci: virtio devices are PCI functions (dev_pci.c) */
	const char *cpu_template, *huge_pages; /* canonical static strings */
	struct sqb_cpu_template *cpu_config;   /* PUT /cpu-config (ctl_cpu.c), or NULL */
	/* Firecracker's one template slot: a static cpu_template other than
	 * "None" and cpu_config are never both set.  cpu_host: the CPU the
	 * static template check sees; NULL: the host's (tests pretend another). */
	const struct sqb_cpu_host *cpu_host;
	/* boot-source */
	char *kernel_path, *initrd_path, *boot_args;
	/* drives (root first, as Firecracker orders them) and entropy */
	struct sqb_ctl_drive drives[SQB_CTL_MAX_DRIVES];
	unsigned int ndrives;
	struct sqb_ctl_pmem pmem[SQB_CTL_MAX_PMEM];
	unsigned int npmem;
	int entropy_set, entropy_has_rl;
	struct sqb_vio_rl_config entropy_rl;
	struct sqb_ctl_balloon balloon;
	struct sqb_ctl_memhp memhp;
	/* network interfaces and the vsock (ctl_net.c) */
	struct sqb_ctl_iface ifaces[SQB_CTL_MAX_IFACES];
	unsigned int nifaces;
	int vsock_set;
	uint64_t vsock_cid;
	char *vsock_uds; /* a host hint in snapshots, [F-112] */
	/* MMDS (ctl_mmds.c): the store, created on first use before boot */
	struct sqb_mmds *mmds;
	size_t mmds_limit; /* --mmds-size-limit (default: the API payload limit) */
	int mmds_limit_set; /* else SQB_MMDS_DEFAULT_LIMIT (a controller without main.c) */
	uint32_t mmds_ipv4;
	/* serial */
	char *serial_out_path;
	int serial_fd; /* -1: stdout */
	struct sqb_vio_bucket serial_rl; /* PUT /serial rate_limiter (size 0: none) */
	/* logger / metrics (process-wide sinks live in ctl_log.c) */
	int logger_set;
	char *log_path;
	int metrics_set;
	char *metrics_path;
	int metrics_emit_id;
	char *metrics_props; /* pre-encoded JSON object, or NULL */
	int metrics_squib;   /* PUT /metrics "squib": {"group": true} (not Firecracker's) */
	uint64_t metrics_last_ms;
	int configured; /* a boot-path request (machine-config, boot-source, a device) got past
			 * parsing, even if refused (Firecracker's boot_path): no snapshot load */
	/* the VM */
	sqb_vm *vm;
	sqb_vm *shell; /* --prewarm: a VM shell for the next snapshot load (docs/fleet.md) */
	int exit_requested;
	int trim_heap; /* a load freed memory: give it back once replies are out */
	int exit_code;
	uint64_t api_requests, api_errors;
	uint64_t startup_us, startup_cpu_us;
	/* --boot-timer: InstanceStart's monotonic and process-CPU times (ns) */
	int boot_timer;
	uint64_t boot_req_ns, boot_req_cpu_ns;
	int raw_mem_default; /* --snapshot-mem-format raw: memory files in Firecracker's layout */
	/* Firecracker metric counters (names and meaning in ctl_metrics.c):
	 * API requests by endpoint over HTTP (count and 400 answers),
	 * deprecated API calls, and the last latencies in µs. */
	uint64_t api_count[SQB_CTL_MX_API], api_fails[SQB_CTL_MX_API];
	struct sqb_ctl_counters {
		uint64_t get_vm_config;
		uint64_t deprecated_http_api_calls;
		uint64_t full_create_snapshot_us, diff_create_snapshot_us, load_snapshot_us;
		uint64_t pause_vm_us, resume_vm_us;
	} n;
};

struct sqb_ctl_resp {
	int status;	 /* 200, 204, 400 or 413 (MMDS) */
	int deprecation; /* answer with "Deprecation: true" (Firecracker's deprecated fields) */
	char *heap;	 /* a body too large for body[] (GET /mmds), malloc'd: the
			  * server sends and frees it; NULL: body[] */
	char body[SQB_CTL_RESP_MAX];
};

/* A deprecated field was used: warn once in the log and flag the response,
 * as Firecracker's ParsingInfo does. */
void sqb_ctl_deprecated(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *msg);
/* Microseconds from a to b (b later), never negative across a second boundary. */
uint64_t sqb_ctl_elapsed_us(const struct timespec *a, const struct timespec *b);
uint64_t sqb_ctl_now_us(void);
/* PATCH /vm's pause of a RUNNING VM (its timeout and cancel; ctl_handlers.c) */
int sqb_ctl_pause_vm(struct sqb_ctl *c);

/* Answer 400 {"fault_message": "..."}, the message escaped as JSON. */
void sqb_ctl_fault(struct sqb_ctl_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void sqb_ctl_init(struct sqb_ctl *c);
void sqb_ctl_destroy(struct sqb_ctl *c);
/* Route one API request.  body may be NULL/0 for GETs. */
void sqb_ctl_handle(struct sqb_ctl *c, const char *method, const char *path, const char *body,
		    size_t body_len, struct sqb_ctl_resp *r);
/* Run a built endpoint on a parsed JSON value (yajl_val); -1 if none. */
struct yajl_val_s;
int sqb_ctl_dispatch(struct sqb_ctl *c, const char *method, const char *path,
		     struct yajl_val_s *tree, struct sqb_ctl_resp *r);
/* A whole file (a pipe too) into a NUL-terminated *out of at most max
 * bytes: 0, -EFBIG when longer, or the open/read -errno (ctl_config.c). */
int sqb_ctl_read_file(const char *path, size_t max, char **out, size_t *out_len);
/* Apply a Firecracker JSON config file and start the VM; 0 or -1 with err. */
int sqb_ctl_apply_config_file(struct sqb_ctl *c, const char *path, char *err, size_t errlen);
/* InstanceStart; 0 or -1 with err. */
/* PUT /serial's file, opened as the microVM is built (0, or -1 with err) */
int sqb_ctl_serial_open(struct sqb_ctl *c, const char *prefix, char *err, size_t errlen);
int sqb_ctl_start(struct sqb_ctl *c, char *err, size_t errlen);
/* The VM stopped on its own: log why and set the exit code. */
void sqb_ctl_vm_stopped(struct sqb_ctl *c);

/* ---- PUT /snapshot/create and /snapshot/load (ctl_snapshot.c) ---- */
void sqb_ctl_snapshot_create(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_snapshot_load(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_snapshot_status(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);

/* ---- drives and entropy (ctl_devices.c) ---- */
void sqb_ctl_put_drive(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
		       struct sqb_ctl_resp *r);
void sqb_ctl_patch_drive(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
			 struct sqb_ctl_resp *r);
void sqb_ctl_put_entropy(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_put_pmem(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
		      struct sqb_ctl_resp *r);
void sqb_ctl_patch_pmem(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
			struct sqb_ctl_resp *r);
/* GET /vm/config's "drives" array and "entropy" object (or null). */
struct sqb_jb;
void sqb_ctl_drives_json(struct sqb_ctl *c, struct sqb_jb *b);
void sqb_ctl_entropy_json(struct sqb_ctl *c, struct sqb_jb *b);
void sqb_ctl_pmem_json(struct sqb_ctl *c, struct sqb_jb *b);
/* struct sqb_vm_config.add_devices (arg: the ctl): drives in order, then
 * the entropy device (test guests expect blk in slot 0, rng after). */
int sqb_ctl_add_devices(void *arg, sqb_vm *vm, struct sqb_diag *diag);
/* The kernel command line as Firecracker's builder makes it: args (NULL:
 * the default), "pci=off", root= and ro/rw for the root drive or pmem;
 * *out malloc'd. */
int sqb_ctl_root_cmdline(struct sqb_ctl *c, const char *args, char **out);
/* Replace the drives and entropy device from a VmmConfig object (a
 * --config-file, or a snapshot's vm_config_json); files are not opened. */
int sqb_ctl_devices_from_config(struct sqb_ctl *c, struct yajl_val_s *root, char *err,
				size_t errlen);
void sqb_ctl_devices_clear(struct sqb_ctl *c);

/* ---- MMDS (ctl_mmds.c) ---- */
/* /mmds with a raw body (any JSON value): 1 when answered, 0 to route on. */
int sqb_ctl_mmds_raw(struct sqb_ctl *c, const char *method, const char *path, const char *body,
		     size_t len, struct sqb_ctl_resp *r);
void sqb_ctl_put_mmds_config(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_mmds_json(struct sqb_ctl *c, struct sqb_jb *b);
int sqb_ctl_mmds_from_config(struct sqb_ctl *c, struct yajl_val_s *root, char *err, size_t errlen);
int sqb_ctl_mmds_put_file(struct sqb_ctl *c, const char *path, char *err, size_t errlen);
void sqb_ctl_mmds_destroy(struct sqb_ctl *c);

/* ---- the balloon (ctl_balloon.c) ---- */
void sqb_ctl_put_balloon(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_patch_balloon(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_get_balloon(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_get_balloon_stats(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_patch_balloon_stats(struct sqb_ctl *c, struct yajl_val_s *body,
				 struct sqb_ctl_resp *r);
void sqb_ctl_balloon_hint_start(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_balloon_hint_stop(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_balloon_hint_status(struct sqb_ctl *c, struct yajl_val_s *body,
				 struct sqb_ctl_resp *r);
/* A GET or PATCH under /balloon/ that request/balloon.rs answers "Unrecognized
 * ... request path": 1 when answered, 0 to route on. */
int sqb_ctl_balloon_bad_path(const char *method, const char *path, struct sqb_ctl_resp *r);
/* GET /vm/config's "balloon" (null when none). */
void sqb_ctl_balloon_json(struct sqb_ctl *c, struct sqb_jb *b);
/* From sqb_ctl_add_devices: the balloon, if configured, after the others. */
int sqb_ctl_balloon_add(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag);
/* "balloon" of a VmmConfig (config file, snapshot vm_config_json); 0 or -1. */
int sqb_ctl_balloon_from_config(struct sqb_ctl *c, struct yajl_val_s *root, char *err,
				size_t errlen);
/* TokenBucket (size, one_time_burst, refill_time): a zero size or refill
 * time is no bucket (ctl_devices.c; also PUT /serial's rate_limiter). */
int sqb_ctl_parse_bucket(struct yajl_val_s *v, struct sqb_vio_bucket *b, char *err, size_t errlen);
/* RateLimiterConfig in and out (ctl_devices.c), shared with ctl_net.c. */
int sqb_ctl_parse_rl(struct yajl_val_s *v, struct sqb_vio_rl_config *rl, int given[2], char *err,
		     size_t errlen);
void sqb_ctl_rl_json(struct sqb_jb *b, int has, const struct sqb_vio_rl_config *rl);

/* ---- memory hotplug, virtio-mem (ctl_memhp.c) ---- */
void sqb_ctl_put_memhp(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_patch_memhp(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
void sqb_ctl_get_memhp(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
/* GET /vm/config's "memory-hotplug" (null when none). */
void sqb_ctl_memhp_json(struct sqb_ctl *c, struct sqb_jb *b);
/* From sqb_ctl_add_devices: the virtio-mem device, if configured, last. */
int sqb_ctl_memhp_add(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag);
/* "memory-hotplug" of a VmmConfig (snapshot vm_config_json); 0 or -1. */
int sqb_ctl_memhp_from_config(struct sqb_ctl *c, struct yajl_val_s *root, char *err,
			      size_t errlen);

/* ---- network interfaces and vsock (ctl_net.c) ---- */
void sqb_ctl_put_net(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
		     struct sqb_ctl_resp *r);
void sqb_ctl_patch_net(struct sqb_ctl *c, const char *id, struct yajl_val_s *body,
		       struct sqb_ctl_resp *r);
void sqb_ctl_put_vsock(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
/* GET /vm/config's "network-interfaces" array and "vsock" object (or null). */
void sqb_ctl_net_json(struct sqb_ctl *c, struct sqb_jb *b);
void sqb_ctl_vsock_json(struct sqb_ctl *c, struct sqb_jb *b);
/* The interfaces in order, then the vsock (from sqb_ctl_add_devices). */
int sqb_ctl_net_add_devices(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag);
/* Hot-plug answers (Firecracker's PciNotEnabled; squib's pmem refusal). */
#define MSG_NO_PCI "PCI is not enabled"
#define MSG_NO_HOTPLUG                                                                             \
	"squib does not hot-plug or unplug pmem devices yet (drives and network interfaces it "    \
	"does; docs/api-compat.md)."
/* PCI hot-unplug (DELETE after boot with --enable-pci; the route checked
 * the id and that the device exists and is not the root). */
void sqb_ctl_unplug_drive(struct sqb_ctl *c, const char *id, struct sqb_ctl_resp *r);
void sqb_ctl_unplug_net(struct sqb_ctl *c, const char *id, struct sqb_ctl_resp *r);
/* "network-interfaces" and "vsock" of a VmmConfig object (a snapshot's
 * vm_config_json): replaced, taps not opened. */
int sqb_ctl_net_from_config(struct sqb_ctl *c, struct yajl_val_s *root, char *err, size_t errlen);
/* --config-file: each "network-interfaces" element through PUT. */
int sqb_ctl_net_apply_config(struct sqb_ctl *c, struct yajl_val_s *root, struct sqb_ctl_resp *r,
			     char *err, size_t errlen);
/* PUT /snapshot/load's serde stage for network_overrides' items and
 * vsock_override: 0, or -1 with serde's message in err. */
int sqb_ctl_net_overrides_parse(struct yajl_val_s *netov, struct yajl_val_s *vsockov, char *err,
				size_t errlen);
/* PUT /snapshot/load: Firecracker's network_overrides ([{iface_id,
 * host_dev_name}]) and vsock_override ({uds_path}), then squib's own
 * per-clone guest_mac / guest_cid (NULL: absent).  0, or -1 with the
 * whole text after "Failed to restore from snapshot: " in err. */
int sqb_ctl_net_overrides(struct sqb_ctl *c, struct yajl_val_s *netov, struct yajl_val_s *vsockov,
			  struct yajl_val_s *ext_net, struct yajl_val_s *ext_vsock, char *err,
			  size_t errlen);
void sqb_ctl_net_clear(struct sqb_ctl *c);

/* ---- logging and metrics (ctl_log.c) ---- */
void sqb_ctl_log_at(enum sqb_ctl_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define sqb_ctl_log(lvl, ...) sqb_ctl_log_at(lvl, __FILE__, __LINE__, __VA_ARGS__)
/* 1 once a log write met EPIPE (a FIFO sink whose reader left): no line is
 * written after it (signal-safe to ask). */
int sqb_ctl_log_broken(void);
/* module: only lines whose source file name contains it ("": all).  NULL
 * path, level or module and show_* < 0 keep the current setting. */
/* Whether a line at lvl would be written now. */
int sqb_ctl_log_enabled(enum sqb_ctl_level lvl);
int sqb_ctl_log_configure(const char *path, const char *level, int show_level, int show_origin,
			  const char *module, char *err, size_t errlen);
int sqb_ctl_level_parse(const char *s, enum sqb_ctl_level *out);
void sqb_ctl_log_set_id(const char *id);
int sqb_ctl_metrics_open(const char *path, char *err, size_t errlen);
/* Open a log, metrics or serial output path for appending without ever
 * blocking, FIFOs included (ctl_log.c); -1 with errno on failure. */
int sqb_ctl_open_sink(const char *path);
/* Write one metrics line (ctl_metrics.c): Firecracker's groups and keys,
 * counters as the change since the previous line.  0, or -1 when no file
 * is open or the write failed. */
int sqb_ctl_metrics_flush(struct sqb_ctl *c);
/* The api_count / api_fails slot of an HTTP request, or -1 when
 * Firecracker counts no such request (sqb_ctl_handle counts it before it
 * runs, as Firecracker's parser does, so a FlushMetrics line includes
 * itself; a 400 answer adds a fail). */
int sqb_ctl_metrics_api_index(const char *method, const char *path);
/* Write the line to the metrics file (ctl_log.c); 0 or -1. */
int sqb_ctl_metrics_write(const char *line, size_t len);
/* Log lines that could not be written (ctl_log.c). */
uint64_t sqb_ctl_missed_log_count(void);

/* A signal handler's metric (signal_handler.rs): the fatal signals store
 * 1 in signals.<name>, SIGPIPE counts, SIGSYS stores seccomp.num_faults.
 * Async-signal-safe. */
void sqb_ctl_signal_metric(int sig);

/* A device of the running VM found by lookup, else NULL with the fault
 * already answered: before boot Firecracker's "not supported before
 * starting", without the device prefix + "Failed perform action on device:
 * Device not found" (balloon, memory hotplug). */
struct sqb_vio_dev;
struct sqb_vio_dev *sqb_ctl_vm_device(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *prefix,
				      struct sqb_vio_dev *(*lookup)(sqb_vm *vm));

/* The process took a termination signal: a pause that waits gives up. */
void sqb_ctl_note_termination(void);

/* Custom CPU templates (ctl_cpu.c, docs/cpu-templates.md). */
void sqb_ctl_put_cpu_config(struct sqb_ctl *c, struct yajl_val_s *body, struct sqb_ctl_resp *r);
int sqb_cpu_template_parse(struct yajl_val_s *body, struct sqb_cpu_template **out, char *err,
			   size_t errlen);
void sqb_cpu_template_free(struct sqb_cpu_template *t);
/* Firecracker's number strings ("0x.."/"0b..") and bitmaps ("0b" + 0/1/x/_). */
int sqb_cpu_number_parse(const char *s, uint64_t max, uint64_t *out, char *msg, size_t len);
int sqb_cpu_bitmap_parse(const char *s, unsigned int bits, uint64_t *filter, uint64_t *value,
			 char *msg, size_t len);

/* Firecracker's static CPU templates (ctl_cpu_static.c): machine-config
 * "cpu_template" names, built as custom templates at InstanceStart. */
struct sqb_cpu_host {
	char vendor[12]; /* CPUID.0: EBX, EDX, ECX ("GenuineIntel", "AuthenticAMD") */
	uint32_t fms;	 /* CPUID.1:EAX: family, model, stepping */
};
/* This architecture's StaticCpuTemplate variants, serde's order, NULL-ended. */
extern const char *const sqb_cpu_static_names[];
/* The CPU squib runs on (x86_64; zeroes elsewhere). */
void sqb_cpu_host_probe(struct sqb_cpu_host *h);
/* -1 with a message: a name of the API that squib cannot apply (arm64 V1N1). */
int sqb_cpu_static_refused(const char *name, char *err, size_t errlen);
/* The template's table as a custom template, no host check; -ENOENT, -ENOMEM. */
int sqb_cpu_static_build(const char *name, struct sqb_cpu_template **out);
/* InstanceStart: Firecracker's vendor and model check, then the table;
 * -1 with the whole "Start microvm error: ..." message. */
int sqb_cpu_static_get(const char *name, const struct sqb_cpu_host *host,
		       struct sqb_cpu_template **out, char *err, size_t errlen);
/* A snapshot's vm_config_json: its machine-config template ("None" if absent). */
int sqb_cpu_static_from_vm_config(struct yajl_val_s *root, const char **name, char *err,
				  size_t errlen);

#endif
