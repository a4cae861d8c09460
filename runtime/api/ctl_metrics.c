/* The metrics line: one JSON object per FlushMetrics, per minute and at
 * exit, with exactly Firecracker's top-level groups and keys (x86_64) in
 * its order, so that tools written against Firecracker's metrics schema
 * take squib's lines unchanged (docs/api-compat.md "Metrics").
 *
 *   utc_timestamp_ms, [id], [properties], api_server, balloon,
 *   block_<drive_id>... block, deprecated_api, get_api_requests, i8042,
 *   uart, latencies_us, logger, mmds, net_<iface_id>... net,
 *   patch_api_requests, put_api_requests, seccomp, vcpu, vmm, signals,
 *   vsock, entropy, pmem, interrupts, memory_hotplug, [squib]
 *
 * Counters are written as the change since the previous line, values
 * (times, startup, latencies' min and max) as they are, as Firecracker's
 * SharedIncMetric and SharedStoreMetric do.  "block" and "net" sum the
 * per-device changes (their min_us / max_us stay 0, as in Firecracker).
 * Keys squib has no measure for are 0; which are real is listed in the
 * docs and visible below: only keys set with mx_set are.
 */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "mmds.h"
#include "dev_balloon.h"
#include "dev_net.h"
#include "dev_virtio.h"
#include "dev_vmem.h"
#include "json_fields.h"

/* ---- API requests by endpoint ---------------------------------------- */

/* Firecracker counts a request in the group of its method under the key
 * prefix of its endpoint (its api_server request parsers); sub: the endpoint
 * takes a resource id ("/drives/{id}"), the bare path counted too. */
static const struct {
	const char *method, *path;
	int sub;
	const char *key;
} api_paths[] = {
    {"GET", "/", 0, "instance_info"},
    {"GET", "/machine-config", 0, "machine_cfg"},
    {"GET", "/mmds", 0, "mmds"},
    {"GET", "/version", 0, "vmm_version"},
    {"GET", "/hotplug/memory", 0, "hotplug_memory"},
    {"PUT", "/actions", 0, "actions"},
    {"PUT", "/boot-source", 0, "boot_source"},
    {"PUT", "/drives", 1, "drive"},
    {"PUT", "/logger", 0, "logger"},
    {"PUT", "/machine-config", 0, "machine_cfg"},
    {"PUT", "/cpu-config", 0, "cpu_cfg"},
    {"PUT", "/metrics", 0, "metrics"},
    {"PUT", "/network-interfaces", 1, "network"},
    {"PUT", "/mmds", 1, "mmds"}, /* and /mmds/config */
    {"PUT", "/vsock", 0, "vsock"},
    {"PUT", "/pmem", 1, "pmem"},
    {"PUT", "/serial", 0, "serial"},
    {"PUT", "/hotplug/memory", 0, "hotplug_memory"},
    {"PATCH", "/drives", 1, "drive"},
    {"PATCH", "/network-interfaces", 1, "network"},
    {"PATCH", "/machine-config", 0, "machine_cfg"},
    {"PATCH", "/mmds", 0, "mmds"},
    {"PATCH", "/hotplug/memory", 0, "hotplug_memory"},
    {"PATCH", "/pmem", 1, "pmem"},
};
#define N_API_PATHS (sizeof(api_paths) / sizeof(api_paths[0]))
_Static_assert(N_API_PATHS <= SQB_CTL_MX_API, "SQB_CTL_MX_API too small");

int sqb_ctl_metrics_api_index(const char *method, const char *path)
{
	for (size_t i = 0; i < N_API_PATHS; i++) {
		size_t n = strlen(api_paths[i].path);

		if (strcmp(method, api_paths[i].method) || strncmp(path, api_paths[i].path, n))
			continue;
		if (path[n] && !(api_paths[i].sub && path[n] == '/'))
			continue;
		return (int)i;
	}
	return -1;
}

/* ---- groups ------------------------------------------------------------ */

/* A group's keys in Firecracker's order: "name" a counter, "=name" a value,
 * "@name" a latency object {min_us, max_us (values), sum_us (counter)}. */
static const char *const K_API_SERVER[] = {"=process_startup_time_us",
					   "=process_startup_time_cpu_us"};
static const char *const K_BALLOON[] = {
    "activate_fails",	      "inflate_count",		"stats_updates_count",
    "stats_update_fails",     "deflate_count",		"event_fails",
    "free_page_report_count", "free_page_report_freed", "free_page_report_fails",
    "free_page_hint_count",   "free_page_hint_freed",	"free_page_hint_fails"};
static const char *const K_BLOCK[] = {"activate_fails",
				      "cfg_fails",
				      "no_avail_buffer",
				      "event_fails",
				      "execute_fails",
				      "invalid_reqs_count",
				      "flush_count",
				      "queue_event_count",
				      "rate_limiter_event_count",
				      "update_count",
				      "update_fails",
				      "read_bytes",
				      "write_bytes",
				      "read_count",
				      "write_count",
				      "@read_agg",
				      "@write_agg",
				      "rate_limiter_throttled_events",
				      "io_engine_throttled_events",
				      "remaining_reqs_count"};
static const char *const K_VHOST_USER[] = {"activate_fails", "cfg_fails", "=init_time_us",
					   "=activate_time_us", "=config_change_time_us"};
static const char *const K_DEPRECATED[] = {"deprecated_http_api_calls"};
static const char *const K_GET[] = {"instance_info_count", "machine_cfg_count", "mmds_count",
				    "vmm_version_count", "hotplug_memory_count"};
static const char *const K_I8042[] = {"error_count", "missed_read_count", "missed_write_count",
				      "read_count",  "reset_count",	  "write_count"};
static const char *const K_UART[] = {
    "error_count", "flush_count", "missed_read_count",	       "missed_write_count",
    "read_count",  "write_count", "rate_limiter_dropped_bytes"};
static const char *const K_LATENCIES[] = {"=full_create_snapshot",
					  "=diff_create_snapshot",
					  "=load_snapshot",
					  "=pause_vm",
					  "=resume_vm",
					  "=vmm_full_create_snapshot",
					  "=vmm_diff_create_snapshot",
					  "=vmm_load_snapshot",
					  "=vmm_pause_vm",
					  "=vmm_resume_vm"};
static const char *const K_LOGGER[] = {"missed_metrics_count", "metrics_fails", "missed_log_count",
				       "rate_limited_log_count"};
static const char *const K_MMDS[] = {"rx_accepted",
				     "rx_accepted_err",
				     "rx_accepted_unusual",
				     "rx_bad_eth",
				     "rx_invalid_token",
				     "rx_no_token",
				     "rx_count",
				     "tx_bytes",
				     "tx_count",
				     "tx_errors",
				     "tx_frames",
				     "connections_created",
				     "connections_destroyed"};
static const char *const K_NET[] = {"activate_fails",
				    "cfg_fails",
				    "no_rx_avail_buffer",
				    "no_tx_avail_buffer",
				    "event_fails",
				    "rx_queue_event_count",
				    "rx_event_rate_limiter_count",
				    "rx_rate_limiter_throttled",
				    "rx_tap_event_count",
				    "rx_bytes_count",
				    "rx_packets_count",
				    "rx_fails",
				    "rx_count",
				    "tap_read_fails",
				    "tap_write_fails",
				    "@tap_write_agg",
				    "tx_bytes_count",
				    "tx_malformed_frames",
				    "tx_fails",
				    "tx_count",
				    "tx_packets_count",
				    "tx_queue_event_count",
				    "tx_rate_limiter_event_count",
				    "tx_rate_limiter_throttled",
				    "tx_spoofed_mac_count",
				    "tx_remaining_reqs_count"};
static const char *const K_PATCH[] = {
    "drive_count",	    "drive_fails",	    "network_count", "network_fails",
    "machine_cfg_count",    "machine_cfg_fails",    "mmds_count",    "mmds_fails",
    "hotplug_memory_count", "hotplug_memory_fails", "pmem_count",    "pmem_fails"};
static const char *const K_PUT[] = {
    "actions_count",	    "actions_fails",	   "boot_source_count", "boot_source_fails",
    "drive_count",	    "drive_fails",	   "logger_count",	"logger_fails",
    "machine_cfg_count",    "machine_cfg_fails",   "cpu_cfg_count",	"cpu_cfg_fails",
    "metrics_count",	    "metrics_fails",	   "network_count",	"network_fails",
    "mmds_count",	    "mmds_fails",	   "vsock_count",	"vsock_fails",
    "pmem_count",	    "pmem_fails",	   "serial_count",	"serial_fails",
    "hotplug_memory_count", "hotplug_memory_fails"};
static const char *const K_SECCOMP[] = {"=num_faults"};
static const char *const K_VCPU[] = {
    "exit_io_in",	   "exit_io_out",      "exit_mmio_read",
    "exit_mmio_write",	   "failures",	       "kvmclock_ctrl_fails",
    "@exit_io_in_agg",	   "@exit_io_out_agg", "@exit_mmio_read_agg",
    "@exit_mmio_write_agg"};
static const char *const K_VMM[] = {"=panic_count"};
/* all but sigpipe are values in Firecracker (set from a dying signal handler) */
static const char *const K_SIGNALS[] = {"=sigbus", "=sigsegv", "=sigxfsz", "=sigxcpu",
					"sigpipe", "=sighup",  "=sigill"};

/* Set from signal handlers (main.c, signal_handler.rs's metrics): the
 * fatal ones store 1, SIGPIPE counts; seccomp.num_faults stores 1. */
static uint64_t sig_metric[8]; /* K_SIGNALS order, then num_faults */

void sqb_ctl_signal_metric(int sig)
{
	static const int order[7] = {SIGBUS, SIGSEGV, SIGXFSZ, SIGXCPU, SIGPIPE, SIGHUP, SIGILL};

	if (sig == SIGSYS) {
		__atomic_store_n(&sig_metric[7], 1, __ATOMIC_RELAXED);
		return;
	}
	for (int i = 0; i < 7; i++)
		if (order[i] == sig) {
			if (sig == SIGPIPE)
				__atomic_add_fetch(&sig_metric[i], 1, __ATOMIC_RELAXED);
			else
				__atomic_store_n(&sig_metric[i], 1, __ATOMIC_RELAXED);
		}
}
static const char *const K_VSOCK[] = {
    "activate_fails",	    "cfg_fails",	 "rx_queue_event_fails", "tx_queue_event_fails",
    "ev_queue_event_fails", "muxer_event_fails", "conn_event_fails",	 "rx_queue_event_count",
    "tx_queue_event_count", "rx_bytes_count",	 "tx_bytes_count",	 "rx_packets_count",
    "tx_packets_count",	    "conns_added",	 "conns_killed",	 "conns_removed",
    "killq_resync",	    "tx_flush_fails",	 "tx_write_fails",	 "rx_read_fails"};
static const char *const K_ENTROPY[] = {"activate_fails",	   "entropy_event_fails",
					"entropy_event_count",	   "entropy_bytes",
					"host_rng_fails",	   "entropy_rate_limiter_throttled",
					"rate_limiter_event_count"};
static const char *const K_PMEM[] = {"activate_fails",
				     "cfg_fails",
				     "event_fails",
				     "queue_event_count",
				     "rate_limiter_throttled_events",
				     "rate_limiter_event_count"};
static const char *const K_INTERRUPTS[] = {"triggers", "config_updates"};
static const char *const K_MEM_HOTPLUG[] = {
    "activate_fails",  "queue_event_fails", "queue_event_count", "@plug_agg",
    "plug_count",      "plug_bytes",	    "plug_fails",	 "@unplug_agg",
    "unplug_count",    "unplug_bytes",	    "unplug_fails",	 "unplug_discard_fails",
    "@unplug_all_agg", "unplug_all_count",  "unplug_all_fails",	 "@state_agg",
    "state_count",     "state_fails"};
/* squib's own totals (cumulative), only with PUT /metrics "squib": {"group": true} */
static const char *const K_SQUIB[] = {"=api_requests",	"=api_errors",	   "=get_vm_config_count",
				      "=vcpu_exits",	"=vcpu_exit_io",   "=vcpu_exit_mmio",
				      "=uart_tx_bytes", "=guest_mem_bytes"};

#define KEYS(k) k, sizeof(k) / sizeof(k[0])
#define MX_VALS 32 /* values of the largest group (a latency object is 3) */

struct mx_group {
	const char *const *keys;
	unsigned int n;
	uint64_t v[MX_VALS]; /* in key order, a latency object as min, max, sum */
};

static void mx_init(struct mx_group *g, const char *const *keys, unsigned int n)
{
	memset(g, 0, sizeof(*g));
	g->keys = keys;
	g->n = n;
}

static int is_value(char kind, unsigned int part) /* part of a latency object */
{
	return kind == '=' || (kind == '@' && part < 2);
}

/* Position of key's first value; a key that is not in the group is a bug. */
static unsigned int mx_pos(const struct mx_group *g, const char *key)
{
	unsigned int at = 0;

	for (unsigned int i = 0; i < g->n; i++) {
		const char *k = g->keys[i];
		int lat = k[0] == '@';

		if (!strcmp(k + (k[0] == '=' || lat), key))
			return at;
		at += lat ? 3 : 1;
	}
	assert(!"metrics key not in its group");
	return MX_VALS - 1;
}

static void mx_set(struct mx_group *g, const char *key, uint64_t v)
{
	g->v[mx_pos(g, key)] = v;
}

static void mx_set_lat(struct mx_group *g, const char *key, const struct sqb_vio_lat *l)
{
	unsigned int at = mx_pos(g, key);

	g->v[at] = l->min_us;
	g->v[at + 1] = l->max_us;
	g->v[at + 2] = l->sum_us;
}

/* The previous line's totals of each group, for the changes. */
#define MX_GROUPS 96
/* the plain groups, a block_ / vhost_user_block_ group per drive and a
 * net_ group per interface, with room for ids that changed before boot */
_Static_assert(MX_GROUPS >= 32 + SQB_CTL_MAX_DRIVES + SQB_CTL_MAX_IFACES,
	       "a metrics group without a previous line emits totals");
static struct mx_prev {
	char name[48];
	uint64_t v[MX_VALS];
} prevs[MX_GROUPS];
static unsigned int nprevs;

static uint64_t *prev_of(const char *name)
{
	for (unsigned int i = 0; i < nprevs; i++)
		if (!strcmp(prevs[i].name, name))
			return prevs[i].v;
	if (nprevs == MX_GROUPS)
		return NULL;
	snprintf(prevs[nprevs].name, sizeof(prevs[nprevs].name), "%s", name);
	return prevs[nprevs++].v;
}

/* Counters become the change since the previous line (a total that went
 * down belongs to a device made anew: all of it is new). */
static void mx_delta(struct mx_group *g, const char *name)
{
	uint64_t *prev = prev_of(name);
	unsigned int at = 0;

	for (unsigned int i = 0; i < g->n; i++) {
		char kind = g->keys[i][0];
		unsigned int parts = kind == '@' ? 3 : 1;

		for (unsigned int p = 0; p < parts; p++, at++) {
			uint64_t cur = g->v[at];

			if (!is_value(kind, p) && prev)
				g->v[at] = cur >= prev[at] ? cur - prev[at] : cur;
			if (prev)
				prev[at] = cur;
		}
	}
}

/* Add a device's changes into the aggregate (counters only). */
static void mx_sum(struct mx_group *agg, const struct mx_group *g)
{
	unsigned int at = 0;

	for (unsigned int i = 0; i < g->n; i++) {
		char kind = g->keys[i][0];
		unsigned int parts = kind == '@' ? 3 : 1;

		for (unsigned int p = 0; p < parts; p++, at++)
			if (!is_value(kind, p))
				agg->v[at] += g->v[at];
	}
}

static void mx_emit(struct sqb_jb *b, const char *name, const struct mx_group *g)
{
	static const char *const lat_keys[] = {"min_us", "max_us", "sum_us"};
	unsigned int at = 0;

	sqb_jb_key(b, name);
	sqb_jb_open(b, '{');
	for (unsigned int i = 0; i < g->n; i++) {
		const char *k = g->keys[i];

		if (k[0] == '@') {
			sqb_jb_key(b, k + 1);
			sqb_jb_open(b, '{');
			for (unsigned int p = 0; p < 3; p++) {
				sqb_jb_key(b, lat_keys[p]);
				sqb_jb_u64(b, g->v[at++]);
			}
			sqb_jb_close(b, '}');
			continue;
		}
		sqb_jb_key(b, k + (k[0] == '='));
		sqb_jb_u64(b, g->v[at++]);
	}
	sqb_jb_close(b, '}');
}

static void mx_plain(struct sqb_jb *b, const char *name, struct mx_group *g)
{
	mx_delta(g, name);
	mx_emit(b, name, g);
}

/* The API counters of one method's group. */
static void mx_api(struct sqb_ctl *c, struct mx_group *g, const char *method, int fails)
{
	char key[64];

	for (size_t i = 0; i < N_API_PATHS; i++) {
		if (strcmp(api_paths[i].method, method))
			continue;
		snprintf(key, sizeof(key), "%s_count", api_paths[i].key);
		mx_set(g, key, c->api_count[i]);
		if (fails) {
			snprintf(key, sizeof(key), "%s_fails", api_paths[i].key);
			mx_set(g, key, c->api_fails[i]);
		}
	}
}

/* ---- devices ----------------------------------------------------------- */

static void lib_metrics(struct sqb_ctl *c, const char *id, struct sqb_vio_metrics *m)
{
	sqb_vio_dev *d = c->vm ? sqb_vdev_lib(c->vm, id) : NULL;

	memset(m, 0, sizeof(*m));
	if (d)
		sqb_vio_get_metrics(d, m);
}

static void fill_block(struct sqb_ctl *c, const char *drive_id, struct mx_group *g)
{
	struct sqb_vio_metrics m;

	lib_metrics(c, drive_id, &m);
	mx_set(g, "event_fails", m.queue_fails[0]);
	mx_set(g, "execute_fails", m.exec_fails);
	mx_set(g, "invalid_reqs_count", m.invalid_reqs);
	mx_set(g, "flush_count", m.flush_count);
	mx_set(g, "queue_event_count", m.notify[0]);
	mx_set(g, "read_bytes", m.read_bytes);
	mx_set(g, "write_bytes", m.write_bytes);
	mx_set(g, "read_count", m.read_count);
	mx_set(g, "write_count", m.write_count);
	mx_set_lat(g, "read_agg", &m.read_lat);
	mx_set_lat(g, "write_agg", &m.write_lat);
	mx_set(g, "rate_limiter_throttled_events", m.throttled);
}

static void fill_net(struct sqb_ctl *c, const char *iface_id, struct mx_group *g)
{
	struct sqb_vio_net_stats st = {0};
	struct sqb_vio_metrics m;
	char id[64];

	snprintf(id, sizeof(id), "%s%s", SQB_VDEV_NET_PREFIX, iface_id);
	lib_metrics(c, id, &m);
	if (!c->vm || sqb_vdev_net_stats(c->vm, iface_id, &st) < 0)
		memset(&st, 0, sizeof(st));
	mx_set(g, "event_fails", m.queue_fails[0] + m.queue_fails[1]);
	mx_set(g, "rx_queue_event_count", m.notify[0]);
	mx_set(g, "rx_rate_limiter_throttled", m.throttled);
	mx_set(g, "rx_bytes_count", st.rx_bytes);
	mx_set(g, "rx_packets_count", st.rx_frames);
	mx_set(g, "rx_fails", st.rx_dropped);
	mx_set(g, "rx_count", st.rx_frames);
	mx_set(g, "tx_bytes_count", st.tx_bytes);
	mx_set(g, "tx_fails", st.tx_dropped);
	mx_set(g, "tx_count", st.tx_frames);
	mx_set(g, "tx_packets_count", st.tx_frames);
	mx_set(g, "tx_queue_event_count", m.notify[1]);
	mx_set(g, "tx_rate_limiter_throttled", m.throttled_tx);
}

/* Device ids in Firecracker's order for per-device groups: sorted by id
 * (strcmp: byte order; a BTreeMap's), in place. */
static void sort_ids(const char **ids, unsigned int n)
{
	for (unsigned int i = 1; i < n; i++) {
		const char *id = ids[i];
		unsigned int j = i;

		for (; j > 0 && strcmp(ids[j - 1], id) > 0; j--)
			ids[j] = ids[j - 1];
		ids[j] = id;
	}
}

/* Firecracker's per-device groups ("block_<drive_id>", sorted by id) and
 * then their sum under the bare name. */
static void mx_devices(struct sqb_ctl *c, struct sqb_jb *b, const char *kind,
		       const char *const *keys, unsigned int nkeys, const char **ids,
		       unsigned int n,
		       void (*fill)(struct sqb_ctl *, const char *, struct mx_group *))
{
	struct mx_group agg, g;
	char name[64];

	mx_init(&agg, keys, nkeys);
	sort_ids(ids, n);
	for (unsigned int i = 0; i < n; i++) {
		const char *id = ids[i];

		mx_init(&g, keys, nkeys);
		fill(c, id, &g);
		snprintf(name, sizeof(name), "%s_%s", kind, id);
		mx_delta(&g, name);
		mx_sum(&agg, &g);
		mx_emit(b, name, &g);
	}
	mx_emit(b, kind, &agg);
}

/* ---- the line ---------------------------------------------------------- */

static uint64_t metrics_fails; /* lines that could not be written */

int sqb_ctl_metrics_flush(struct sqb_ctl *c)
{
	const char
	    *ids[SQB_CTL_MAX_DRIVES > SQB_CTL_MAX_IFACES ? SQB_CTL_MAX_DRIVES : SQB_CTL_MAX_IFACES];
	struct sqb_vm_stats st = {0};
	struct sqb_vio_metrics m;
	struct mx_group g;
	struct timespec ts;
	struct sqb_jb b;
	size_t cap = 96 * 1024;
	char *line = malloc(cap);
	int rc;

	if (!line)
		return -1;
	if (c->vm)
		sqb_vm_get_stats(c->vm, &st);
	clock_gettime(CLOCK_REALTIME, &ts);
	sqb_jb_init(&b, line, cap - 1);
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "utc_timestamp_ms");
	sqb_jb_u64(&b, (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000);
	if (c->metrics_emit_id) {
		sqb_jb_key(&b, "id");
		sqb_jb_str(&b, c->id);
	}
	if (c->metrics_props) {
		sqb_jb_key(&b, "properties");
		sqb_jb_rawval(&b, c->metrics_props);
	}

	mx_init(&g, KEYS(K_API_SERVER));
	mx_set(&g, "process_startup_time_us", c->startup_us);
	mx_set(&g, "process_startup_time_cpu_us", c->startup_cpu_us);
	mx_plain(&b, "api_server", &g);

	mx_init(&g, KEYS(K_BALLOON));
	{
		sqb_vio_dev *d = c->vm ? sqb_balloon_dev(c->vm) : NULL;
		struct sqb_vio_balloon_counters bc = {0};

		memset(&m, 0, sizeof(m));
		if (d) {
			sqb_vio_get_metrics(d, &m);
			sqb_vio_balloon_counters(d, &bc);
		}
		mx_set(&g, "inflate_count", m.notify[0]);
		mx_set(&g, "deflate_count", m.notify[1]);
		mx_set(&g, "stats_updates_count", bc.stats_updates);
		mx_set(&g, "stats_update_fails", bc.bad_stats);
		mx_set(&g, "event_fails",
		       m.queue_fails[0] + m.queue_fails[1] + m.queue_fails[2] + m.queue_fails[3] +
			   m.queue_fails[4]);
		mx_set(&g, "free_page_report_freed", bc.reported_bytes);
		mx_set(&g, "free_page_hint_freed", bc.hinted_bytes);
	}
	mx_plain(&b, "balloon", &g);

	{ /* virtio-blk drives; vhost-user ones have groups of their own (below) */
		unsigned int n = 0;

		for (unsigned int i = 0; i < c->ndrives; i++)
			if (!c->drives[i].socket)
				ids[n++] = c->drives[i].id;
		mx_devices(c, &b, "block", KEYS(K_BLOCK), ids, n, fill_block);
	}

	mx_init(&g, KEYS(K_DEPRECATED));
	mx_set(&g, "deprecated_http_api_calls", c->n.deprecated_http_api_calls);
	mx_plain(&b, "deprecated_api", &g);

	mx_init(&g, KEYS(K_GET));
	mx_api(c, &g, "GET", 0);
	mx_plain(&b, "get_api_requests", &g);

	mx_init(&g, KEYS(K_I8042));
	mx_plain(&b, "i8042", &g);

	/* missed_write_count: serial bytes dropped because the sink was full */
	mx_init(&g, KEYS(K_UART));
	mx_set(&g, "missed_write_count", st.uart_dropped_bytes);
	mx_set(&g, "rate_limiter_dropped_bytes", st.uart_rl_dropped_bytes);
	mx_set(&g, "write_count", st.uart_tx_bytes);
	mx_plain(&b, "uart", &g);

	mx_init(&g, KEYS(K_LATENCIES));
	mx_set(&g, "full_create_snapshot", c->n.full_create_snapshot_us);
	mx_set(&g, "diff_create_snapshot", c->n.diff_create_snapshot_us);
	mx_set(&g, "load_snapshot", c->n.load_snapshot_us);
	mx_set(&g, "pause_vm", c->n.pause_vm_us);
	mx_set(&g, "resume_vm", c->n.resume_vm_us);
	mx_plain(&b, "latencies_us", &g);

	mx_init(&g, KEYS(K_LOGGER));
	mx_set(&g, "metrics_fails", metrics_fails);
	mx_set(&g, "missed_log_count", sqb_ctl_missed_log_count());
	mx_plain(&b, "logger", &g);

	mx_init(&g, KEYS(K_MMDS));
	if (c->mmds) {
		struct sqb_mmds_metrics mm;

		sqb_mmds_metrics(c->mmds, &mm);
		mx_set(&g, "rx_accepted", mm.rx_accepted);
		mx_set(&g, "rx_accepted_err", mm.rx_accepted_err);
		mx_set(&g, "rx_accepted_unusual", mm.rx_accepted_unusual);
		mx_set(&g, "rx_bad_eth", mm.rx_bad_eth);
		mx_set(&g, "rx_invalid_token", mm.rx_invalid_token);
		mx_set(&g, "rx_no_token", mm.rx_no_token);
		mx_set(&g, "rx_count", mm.rx_count);
		mx_set(&g, "tx_bytes", mm.tx_bytes);
		mx_set(&g, "tx_count", mm.tx_count);
		mx_set(&g, "tx_errors", mm.tx_errors);
		mx_set(&g, "tx_frames", mm.tx_frames);
		mx_set(&g, "connections_created", mm.connections_created);
		mx_set(&g, "connections_destroyed", mm.connections_destroyed);
	}
	mx_plain(&b, "mmds", &g);

	for (unsigned int i = 0; i < c->nifaces; i++)
		ids[i] = c->ifaces[i].id;
	mx_devices(c, &b, "net", KEYS(K_NET), ids, c->nifaces, fill_net);

	mx_init(&g, KEYS(K_PATCH));
	mx_api(c, &g, "PATCH", 1);
	mx_plain(&b, "patch_api_requests", &g);

	mx_init(&g, KEYS(K_PUT));
	mx_api(c, &g, "PUT", 1);
	mx_plain(&b, "put_api_requests", &g);

	mx_init(&g, KEYS(K_SECCOMP));
	mx_set(&g, "num_faults", __atomic_load_n(&sig_metric[7], __ATOMIC_RELAXED));
	mx_plain(&b, "seccomp", &g);

	mx_init(&g, KEYS(K_VCPU));
	mx_set(&g, "exit_io_in", st.io_exits - st.io_out_exits);
	mx_set(&g, "exit_io_out", st.io_out_exits);
	mx_set(&g, "exit_mmio_read", st.mmio_exits - st.mmio_write_exits);
	mx_set(&g, "exit_mmio_write", st.mmio_write_exits);
	mx_set(&g, "kvmclock_ctrl_fails", st.kvmclock_ctrl_fails);
	mx_plain(&b, "vcpu", &g);

	mx_init(&g, KEYS(K_VMM));
	mx_plain(&b, "vmm", &g);

	/* Firecracker's vsock writes raise SIGPIPE on a closed host socket
	 * (test_vsock asserts sigpipe > 0 after clients hang up); squib's
	 * sends use MSG_NOSIGNAL, so those broken pipes are added here */
	lib_metrics(c, SQB_VDEV_VSOCK_ID, &m);
	mx_init(&g, KEYS(K_SIGNALS));
	for (unsigned int i = 0; i < 7; i++)
		g.v[i] = __atomic_load_n(&sig_metric[i], __ATOMIC_RELAXED);
	mx_set(&g, "sigpipe", g.v[4] + m.broken_pipes);
	mx_plain(&b, "signals", &g);

	mx_init(&g, KEYS(K_VSOCK));
	mx_set(&g, "rx_queue_event_fails", m.queue_fails[0]);
	mx_set(&g, "tx_queue_event_fails", m.queue_fails[1]);
	mx_set(&g, "ev_queue_event_fails", m.queue_fails[2]);
	mx_set(&g, "rx_queue_event_count", m.notify[0]);
	mx_set(&g, "tx_queue_event_count", m.notify[1]);
	mx_set(&g, "rx_bytes_count", m.rx_bytes);
	mx_set(&g, "tx_bytes_count", m.tx_bytes);
	mx_set(&g, "rx_packets_count", m.rx_packets);
	mx_set(&g, "tx_packets_count", m.tx_packets);
	mx_set(&g, "conns_added", m.conns_added);
	mx_set(&g, "conns_killed", m.conns_killed);
	mx_set(&g, "conns_removed", m.conns_removed);
	mx_plain(&b, "vsock", &g);

	mx_init(&g, KEYS(K_ENTROPY));
	lib_metrics(c, SQB_VDEV_RNG_ID, &m);
	mx_set(&g, "entropy_event_fails", m.queue_fails[0]);
	mx_set(&g, "entropy_event_count", m.notify[0]);
	mx_set(&g, "entropy_bytes", m.entropy_bytes);
	mx_set(&g, "host_rng_fails", m.host_rng_fails);
	mx_set(&g, "entropy_rate_limiter_throttled", m.throttled);
	mx_plain(&b, "entropy", &g);

	/* no pmem devices in squib: the aggregate only, as Firecracker writes
	 * it for a VM without any */
	mx_init(&g, KEYS(K_PMEM));
	mx_plain(&b, "pmem", &g);

	/* vhost-user drives: "vhost_user_block_<id>" each, no aggregate, where
	 * Firecracker's FirecrackerMetrics puts them (before interrupts) */
	{
		unsigned int n = 0;

		for (unsigned int i = 0; i < c->ndrives; i++)
			if (c->drives[i].socket)
				ids[n++] = c->drives[i].id;
		sort_ids(ids, n);
		for (unsigned int i = 0; i < n; i++) {
			struct sqb_vio_vhost_metrics vm = {0};
			char name[64];

			if (c->vm)
				(void)sqb_vdev_vhost_metrics(c->vm, ids[i], &vm);
			mx_init(&g, KEYS(K_VHOST_USER));
			mx_set(&g, "activate_fails", vm.activate_fails);
			mx_set(&g, "cfg_fails", vm.cfg_fails);
			mx_set(&g, "init_time_us", vm.init_time_us);
			mx_set(&g, "activate_time_us", vm.activate_time_us);
			mx_set(&g, "config_change_time_us", vm.config_change_time_us);
			snprintf(name, sizeof(name), "vhost_user_block_%s", ids[i]);
			mx_delta(&g, name);
			mx_emit(&b, name, &g);
		}
	}

	mx_init(&g, KEYS(K_INTERRUPTS));
	mx_plain(&b, "interrupts", &g);

	mx_init(&g, KEYS(K_MEM_HOTPLUG));
	{
		sqb_vio_dev *vd = c->vm ? sqb_vmem_dev(c->vm) : NULL;
		struct sqb_vio_vmem_counters n = {0};

		if (vd && sqb_vio_vmem_counters(vd, &n) == 0) {
			lib_metrics(c, SQB_VMEM_ID, &m);
			mx_set(&g, "queue_event_fails", m.queue_fails[0]);
			mx_set(&g, "queue_event_count", m.notify[0]);
			mx_set(&g, "plug_count", n.plug_count);
			mx_set(&g, "plug_bytes", n.plug_bytes);
			mx_set(&g, "plug_fails", n.plug_fails);
			mx_set(&g, "unplug_count", n.unplug_count);
			mx_set(&g, "unplug_bytes", n.unplug_bytes);
			mx_set(&g, "unplug_fails", n.unplug_fails);
			mx_set(&g, "unplug_discard_fails", n.unplug_discard_fails);
			mx_set(&g, "unplug_all_count", n.unplug_all_count);
			mx_set(&g, "unplug_all_fails", n.unplug_all_fails);
			mx_set(&g, "state_count", n.state_count);
			mx_set(&g, "state_fails", n.state_fails);
		}
	}
	mx_plain(&b, "memory_hotplug", &g);

	if (c->metrics_squib) {
		mx_init(&g, KEYS(K_SQUIB));
		mx_set(&g, "api_requests", c->api_requests);
		mx_set(&g, "api_errors", c->api_errors);
		mx_set(&g, "get_vm_config_count", c->n.get_vm_config);
		mx_set(&g, "vcpu_exits", st.exits);
		mx_set(&g, "vcpu_exit_io", st.io_exits);
		mx_set(&g, "vcpu_exit_mmio", st.mmio_exits);
		mx_set(&g, "uart_tx_bytes", st.uart_tx_bytes);
		mx_set(&g, "guest_mem_bytes", st.guest_mem_bytes);
		mx_plain(&b, "squib", &g);
	}
	sqb_jb_close(&b, '}');
	if (sqb_jb_done(&b) < 0) {
		free(line);
		metrics_fails++;
		return -1;
	}
	b.buf[b.len++] = '\n';
	rc = sqb_ctl_metrics_write(line, b.len);
	metrics_fails += rc < 0;
	free(line);
	return rc;
}
