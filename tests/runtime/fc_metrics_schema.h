/* Firecracker's metrics schema, written for the tests from Firecracker's
 * own validator (tests/host_tools/fcmetrics.py, validate_fc_metrics) and
 * not from squib's code: every group and key it requires, its
 * additionalProperties false at each level, the per-device groups
 * (block_*, net_*, vhost_user_*), the optional `id` and `properties`, and
 * its x86_64 shape (no `rtc`).  One metrics line (a JSON object) at a time. */
#ifndef SQB_TEST_FC_METRICS_SCHEMA_H
#define SQB_TEST_FC_METRICS_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

/* 0 when the line passes; -1 with why.  max_age_ms: how far
 * utc_timestamp_ms may be from the current UTC time (Firecracker's test
 * allows 1000 ms; 0 skips the check). */
int fcm_validate(const char *line, long long max_age_ms, char *why, size_t whylen);
/* The top-level keys must come in the order Firecracker's FirecrackerMetrics
 * serializes them (src/vmm/src/logger/metrics.rs), per-device groups
 * sorted by id before their aggregate.  0 or -1 with why. */
int fcm_check_order(const char *line, char *why, size_t whylen);
/* A number in the line: group.key or group.key.sub (latency objects).  0,
 * or -1 when absent or not a non-negative integer. */
int fcm_u64(const char *line, const char *path, uint64_t *out);
/* Whether the line has a top-level key. */
int fcm_has(const char *line, const char *key);
/* The last complete line of a metrics file's text (malloc'd), or NULL. */
char *fcm_last_line(const char *text);

#endif
