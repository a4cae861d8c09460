/* Firecracker's metrics schema for the tests (fc_metrics_schema.h).  The
 * key lists below are copied by hand from the lists in Firecracker's
 * tests/host_tools/fcmetrics.py (validate_fc_metrics), in that file's
 * order; a latency object is "@name" (fcmetrics' latency_agg_metrics_fields:
 * min_us, max_us, sum_us). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

#include "fc_metrics_schema.h"

#define END NULL

static const char *const block_metrics[] = {"activate_fails",
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
					    "rate_limiter_throttled_events",
					    "io_engine_throttled_events",
					    "remaining_reqs_count",
					    "@read_agg",
					    "@write_agg",
					    END};
static const char *const net_metrics[] = {"activate_fails",
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
					  "tx_bytes_count",
					  "tx_malformed_frames",
					  "tx_fails",
					  "tx_count",
					  "tx_packets_count",
					  "tx_queue_event_count",
					  "tx_rate_limiter_event_count",
					  "tx_rate_limiter_throttled",
					  "tx_spoofed_mac_count",
					  "tx_remaining_reqs_count",
					  "@tap_write_agg",
					  END};
static const char *const vhost_user_metrics[] = {"activate_fails",	  "cfg_fails",
						 "init_time_us",	  "activate_time_us",
						 "config_change_time_us", END};

static const char *const g_api_server[] = {"process_startup_time_us", "process_startup_time_cpu_us",
					   END};
static const char *const g_balloon[] = {"activate_fails",
					"inflate_count",
					"stats_updates_count",
					"stats_update_fails",
					"deflate_count",
					"event_fails",
					"free_page_report_count",
					"free_page_report_freed",
					"free_page_report_fails",
					"free_page_hint_count",
					"free_page_hint_freed",
					"free_page_hint_fails",
					END};
static const char *const g_deprecated_api[] = {"deprecated_http_api_calls", END};
static const char *const g_get_api_requests[] = {"instance_info_count",	 "machine_cfg_count",
						 "mmds_count",		 "vmm_version_count",
						 "hotplug_memory_count", END};
static const char *const g_i8042[] = {"error_count",
				      "missed_read_count",
				      "missed_write_count",
				      "read_count",
				      "reset_count",
				      "write_count",
				      END};
static const char *const g_latencies_us[] = {"full_create_snapshot",
					     "diff_create_snapshot",
					     "load_snapshot",
					     "pause_vm",
					     "resume_vm",
					     "vmm_full_create_snapshot",
					     "vmm_diff_create_snapshot",
					     "vmm_load_snapshot",
					     "vmm_pause_vm",
					     "vmm_resume_vm",
					     END};
static const char *const g_logger[] = {"missed_metrics_count", "metrics_fails", "missed_log_count",
				       "rate_limited_log_count", END};
static const char *const g_mmds[] = {"rx_accepted",
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
				     "connections_destroyed",
				     END};
static const char *const g_patch_api_requests[] = {"drive_count",
						   "drive_fails",
						   "network_count",
						   "network_fails",
						   "machine_cfg_count",
						   "machine_cfg_fails",
						   "mmds_count",
						   "mmds_fails",
						   "hotplug_memory_count",
						   "hotplug_memory_fails",
						   "pmem_count",
						   "pmem_fails",
						   END};
static const char *const g_put_api_requests[] = {
    "actions_count",	    "actions_fails",	    "boot_source_count",
    "boot_source_fails",    "drive_count",	    "drive_fails",
    "logger_count",	    "logger_fails",	    "machine_cfg_count",
    "machine_cfg_fails",    "cpu_cfg_count",	    "cpu_cfg_fails",
    "metrics_count",	    "metrics_fails",	    "network_count",
    "network_fails",	    "mmds_count",	    "mmds_fails",
    "vsock_count",	    "vsock_fails",	    "pmem_count",
    "pmem_fails",	    "serial_count",	    "serial_fails",
    "hotplug_memory_count", "hotplug_memory_fails", END};
static const char *const g_seccomp[] = {"num_faults", END};
static const char *const g_vcpu[] = {"exit_io_in",
				     "exit_io_out",
				     "exit_mmio_read",
				     "exit_mmio_write",
				     "failures",
				     "kvmclock_ctrl_fails",
				     "@exit_io_in_agg",
				     "@exit_io_out_agg",
				     "@exit_mmio_read_agg",
				     "@exit_mmio_write_agg",
				     END};
static const char *const g_vmm[] = {"panic_count", END};
static const char *const g_uart[] = {
    "error_count", "flush_count", "missed_read_count",		"missed_write_count",
    "read_count",  "write_count", "rate_limiter_dropped_bytes", END};
static const char *const g_signals[] = {"sigbus",  "sigsegv", "sigxfsz", "sigxcpu",
					"sigpipe", "sighup",  "sigill",	 END};
static const char *const g_vsock[] = {"activate_fails",
				      "cfg_fails",
				      "rx_queue_event_fails",
				      "tx_queue_event_fails",
				      "ev_queue_event_fails",
				      "muxer_event_fails",
				      "conn_event_fails",
				      "rx_queue_event_count",
				      "tx_queue_event_count",
				      "rx_bytes_count",
				      "tx_bytes_count",
				      "rx_packets_count",
				      "tx_packets_count",
				      "conns_added",
				      "conns_killed",
				      "conns_removed",
				      "killq_resync",
				      "tx_flush_fails",
				      "tx_write_fails",
				      "rx_read_fails",
				      END};
static const char *const g_entropy[] = {
    "activate_fails",		"entropy_event_fails",
    "entropy_event_count",	"entropy_bytes",
    "host_rng_fails",		"entropy_rate_limiter_throttled",
    "rate_limiter_event_count", END};
static const char *const g_interrupts[] = {"triggers", "config_updates", END};
static const char *const g_pmem[] = {"activate_fails",
				     "cfg_fails",
				     "event_fails",
				     "queue_event_count",
				     "rate_limiter_throttled_events",
				     "rate_limiter_event_count",
				     END};
static const char *const g_memory_hotplug[] = {"activate_fails",
					       "queue_event_fails",
					       "queue_event_count",
					       "plug_count",
					       "plug_bytes",
					       "plug_fails",
					       "@plug_agg",
					       "unplug_count",
					       "unplug_bytes",
					       "unplug_fails",
					       "unplug_discard_fails",
					       "@unplug_agg",
					       "state_count",
					       "state_fails",
					       "@state_agg",
					       "unplug_all_count",
					       "unplug_all_fails",
					       "@unplug_all_agg",
					       END};

/* fcmetrics' firecracker_metrics dict (x86_64: no "rtc"). */
static const struct {
	const char *name;
	const char *const *keys;
} groups[] = {
    {"api_server", g_api_server},
    {"balloon", g_balloon},
    {"block", block_metrics},
    {"deprecated_api", g_deprecated_api},
    {"get_api_requests", g_get_api_requests},
    {"i8042", g_i8042},
    {"latencies_us", g_latencies_us},
    {"logger", g_logger},
    {"mmds", g_mmds},
    {"net", net_metrics},
    {"patch_api_requests", g_patch_api_requests},
    {"put_api_requests", g_put_api_requests},
    {"seccomp", g_seccomp},
    {"vcpu", g_vcpu},
    {"vmm", g_vmm},
    {"uart", g_uart},
    {"signals", g_signals},
    {"vsock", g_vsock},
    {"entropy", g_entropy},
    {"interrupts", g_interrupts},
    {"pmem", g_pmem},
    {"memory_hotplug", g_memory_hotplug},
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

static int fail(char *why, size_t n, const char *fmt, const char *a, const char *b)
{
	snprintf(why, n, fmt, a, b ? b : "");
	return -1;
}

static int is_number(yajl_val v)
{
	return v && YAJL_IS_NUMBER(v);
}

static int no_duplicates(yajl_val o, const char *where, char *why, size_t n)
{
	for (size_t i = 0; i < o->u.object.len; i++)
		for (size_t j = i + 1; j < o->u.object.len; j++)
			if (!strcmp(o->u.object.keys[i], o->u.object.keys[j]))
				return fail(why, n, "%s: key '%s' appears twice", where,
					    o->u.object.keys[i]);
	return 0;
}

static yajl_val member(yajl_val o, const char *key)
{
	for (size_t i = 0; i < o->u.object.len; i++)
		if (!strcmp(o->u.object.keys[i], key))
			return o->u.object.values[i];
	return NULL;
}

/* An object with exactly these keys (each required, nothing else). */
static int check_object(yajl_val o, const char *where, const char *const *keys, char *why, size_t n)
{
	static const char *const agg[] = {"min_us", "max_us", "sum_us", END};
	size_t nkeys = 0;

	if (!o || !YAJL_IS_OBJECT(o))
		return fail(why, n, "'%s' is not an object%s", where, NULL);
	if (no_duplicates(o, where, why, n))
		return -1;
	for (const char *const *k = keys; *k; k++, nkeys++) {
		const char *name = (*k)[0] == '@' ? *k + 1 : *k;
		yajl_val v = member(o, name);

		if (!v)
			return fail(why, n, "'%s' is a required property of '%s'", name, where);
		if ((*k)[0] == '@') {
			char sub[160];

			snprintf(sub, sizeof(sub), "%s.%s", where, name);
			if (check_object(v, sub, agg, why, n))
				return -1;
		} else if (!is_number(v)) {
			return fail(why, n, "'%s.%s' is not a number", where, name);
		}
	}
	if (o->u.object.len != nkeys) /* additionalProperties: false */
		for (size_t i = 0; i < o->u.object.len; i++) {
			int known = 0;

			for (const char *const *k = keys; *k && !known; k++)
				known = !strcmp((*k)[0] == '@' ? *k + 1 : *k, o->u.object.keys[i]);
			if (!known)
				return fail(why, n, "'%s': additional property '%s' not allowed",
					    where, o->u.object.keys[i]);
		}
	return 0;
}

static yajl_val parse(const char *line, char *why, size_t n)
{
	char err[256];
	yajl_val t = yajl_tree_parse(line, err, sizeof(err));

	if (!t)
		fail(why, n, "not JSON: %s%s", err, NULL);
	else if (!YAJL_IS_OBJECT(t)) {
		yajl_tree_free(t);
		t = NULL;
		fail(why, n, "not a JSON object%s%s", "", NULL);
	}
	return t;
}

int fcm_validate(const char *line, long long max_age_ms, char *why, size_t whylen)
{
	yajl_val t = parse(line, why, whylen), v;
	int rc = -1;

	if (!t)
		return -1;
	if (no_duplicates(t, "(top level)", why, whylen))
		goto out;
	v = member(t, "utc_timestamp_ms");
	if (!is_number(v)) {
		fail(why, whylen, "'%s' is a required number%s", "utc_timestamp_ms", NULL);
		goto out;
	}
	if (max_age_ms > 0) {
		struct timespec ts;
		long long now, at = YAJL_IS_INTEGER(v) ? v->u.number.i : 0;

		clock_gettime(CLOCK_REALTIME, &ts);
		now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		if (llabs(now - at) >= max_age_ms) {
			char a[64];

			snprintf(a, sizeof(a), "%lld ms", now - at);
			fail(why, whylen, "utc_timestamp_ms is %s from now (UTC ms)%s", a, NULL);
			goto out;
		}
	}
	for (size_t i = 0; i < NGROUPS; i++)
		if (check_object(member(t, groups[i].name), groups[i].name, groups[i].keys, why,
				 whylen)) {
			if (!member(t, groups[i].name))
				fail(why, whylen, "'%s' is a required property%s", groups[i].name,
				     NULL);
			goto out;
		}
	for (size_t i = 0; i < t->u.object.len; i++) {
		const char *k = t->u.object.keys[i];
		yajl_val x = t->u.object.values[i];
		const char *const *dev = !strncmp(k, "block_", 6)	  ? block_metrics
					 : !strncmp(k, "net_", 4)	  ? net_metrics
					 : !strncmp(k, "vhost_user_", 11) ? vhost_user_metrics
									  : NULL;
		int known = !strcmp(k, "utc_timestamp_ms");

		for (size_t g = 0; g < NGROUPS && !known; g++)
			known = !strcmp(k, groups[g].name);
		if (known)
			continue;
		if (dev) {
			if (check_object(x, k, dev, why, whylen))
				goto out;
		} else if (!strcmp(k, "id")) {
			if (!YAJL_IS_STRING(x)) {
				fail(why, whylen, "'id' is not a string%s%s", "", NULL);
				goto out;
			}
		} else if (!strcmp(k, "properties")) {
			if (!YAJL_IS_OBJECT(x)) {
				fail(why, whylen, "'properties' is not an object%s%s", "", NULL);
				goto out;
			}
			for (size_t j = 0; j < x->u.object.len; j++)
				if (!YAJL_IS_STRING(x->u.object.values[j])) {
					fail(why, whylen, "properties.%s is not a string%s",
					     x->u.object.keys[j], NULL);
					goto out;
				}
		} else {
			fail(why, whylen, "additional property '%s' not allowed%s", k, NULL);
			goto out;
		}
	}
	rc = 0;
out:
	yajl_tree_free(t);
	return rc;
}

/* FirecrackerMetrics' fields in declaration order; "*" marks where its
 * per-device groups (prefix_<id>, sorted) go, just before the aggregate. */
static const char *const fc_order[] = {"utc_timestamp_ms",
				       "?id",
				       "?properties",
				       "api_server",
				       "balloon",
				       "*block_",
				       "block",
				       "deprecated_api",
				       "get_api_requests",
				       "i8042",
				       "uart",
				       "latencies_us",
				       "logger",
				       "mmds",
				       "*net_",
				       "net",
				       "patch_api_requests",
				       "put_api_requests",
				       "seccomp",
				       "vcpu",
				       "vmm",
				       "signals",
				       "vsock",
				       "entropy",
				       "*pmem_",
				       "pmem",
				       "*vhost_user_",
				       "interrupts",
				       "memory_hotplug",
				       END};

int fcm_check_order(const char *line, char *why, size_t whylen)
{
	yajl_val t = parse(line, why, whylen);
	size_t i = 0;
	int rc = -1;

	if (!t)
		return -1;
	for (const char *const *o = fc_order; *o; o++) {
		const char *prev = NULL;

		if ((*o)[0] == '*') {
			size_t pl = strlen(*o + 1);

			while (i < t->u.object.len && !strncmp(t->u.object.keys[i], *o + 1, pl)) {
				if (prev && strcmp(prev, t->u.object.keys[i]) >= 0) {
					fail(why, whylen, "'%s' after '%s': not sorted",
					     t->u.object.keys[i], prev);
					goto out;
				}
				prev = t->u.object.keys[i++];
			}
			continue;
		}
		if ((*o)[0] == '?') {
			if (i < t->u.object.len && !strcmp(t->u.object.keys[i], *o + 1))
				i++;
			continue;
		}
		if (i >= t->u.object.len || strcmp(t->u.object.keys[i], *o)) {
			fail(why, whylen, "expected '%s' at this place, found '%s'", *o,
			     i < t->u.object.len ? t->u.object.keys[i] : "(end)");
			goto out;
		}
		i++;
	}
	if (i != t->u.object.len) {
		fail(why, whylen, "'%s' after the last group%s", t->u.object.keys[i], NULL);
		goto out;
	}
	rc = 0;
out:
	yajl_tree_free(t);
	return rc;
}

int fcm_u64(const char *line, const char *path, uint64_t *out)
{
	char err[64], p[160], *save = NULL;
	yajl_val t = yajl_tree_parse(line, err, sizeof(err)), v = t;
	int rc = -1;

	snprintf(p, sizeof(p), "%s", path);
	for (char *k = strtok_r(p, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = YAJL_IS_OBJECT(v) ? member(v, k) : NULL;
	if (v && YAJL_IS_INTEGER(v) && v->u.number.i >= 0) {
		*out = (uint64_t)v->u.number.i;
		rc = 0;
	}
	yajl_tree_free(t);
	return rc;
}

int fcm_has(const char *line, const char *key)
{
	char err[64];
	yajl_val t = yajl_tree_parse(line, err, sizeof(err));
	int has = t && YAJL_IS_OBJECT(t) && member(t, key);

	yajl_tree_free(t);
	return has;
}

char *fcm_last_line(const char *text)
{
	const char *end, *start;
	char *s;

	if (!text || !*text)
		return NULL;
	end = text + strlen(text);
	if (end[-1] != '\n')
		return NULL; /* a line is complete with its newline */
	start = end - 1;
	while (start > text && start[-1] != '\n')
		start--;
	s = malloc((size_t)(end - start));
	if (s) {
		memcpy(s, start, (size_t)(end - start - 1));
		s[end - start - 1] = 0;
	}
	return s;
}
