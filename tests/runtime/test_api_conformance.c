/* API conformance of the real squib binary over its Unix socket, without
 * booting a guest: every built endpoint with valid input, a corpus of bad
 * inputs (JSON, types, unknown fields, enums, state, HTTP framing, size,
 * disconnects) each answered 400 with a specific fault_message, every
 * not-yet-built Firecracker endpoint named, and the server still serving. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fc_metrics_schema.h"
#include "squib_client.h"

static const char *squib_bin;
static const char *guest_elf;
static const char *compat_doc;

struct api_case {
	const char *method, *path, *body;
	int status;
	const char *expect; /* substring of the response body */
};

static void still_serving(struct sqb_tc *t)
{
	char body[1024];

	assert_int_equal(tc_req(t, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "\"state\":\""));
}

static void run_cases(struct sqb_tc *t, const struct api_case *c, size_t n)
{
	char body[8192];

	for (size_t i = 0; i < n; i++) {
		int st = tc_req(t, c[i].method, c[i].path, c[i].body, body, sizeof(body));
		if (st != c[i].status || (c[i].expect && !strstr(body, c[i].expect)))
			fail_msg("%s %s %s: got %d %s, want %d containing '%s'", c[i].method,
				 c[i].path, c[i].body ? c[i].body : "", st, body, c[i].status,
				 c[i].expect ? c[i].expect : "");
		if (c[i].status == 400)
			assert_non_null(strstr(body, "{\"fault_message\":\""));
		still_serving(t);
	}
}

static int setup(void **state)
{
	struct sqb_tc *t = calloc(1, sizeof(*t));

	if (!t || tc_spawn(t, squib_bin, NULL, 1) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct sqb_tc *t = *state;

	tc_stop(t);
	free(t);
	return 0;
}

static void test_get_endpoints_before_start(void **state)
{
	static const struct api_case c[] = {
	    {"GET", "/", NULL, 200, "\"state\":\"Not started\""},
	    {"GET", "/", NULL, 200, "\"id\":\"anonymous-instance\""},
	    {"GET", "/version", NULL, 200, "\"firecracker_version\":\""},
	    {"GET", "/machine-config", NULL, 200, "\"vcpu_count\":1,\"mem_size_mib\":128"},
	    {"GET", "/vm/config", NULL, 200,
	     "\"boot-source\":{\"kernel_image_path\":\"\",\"initrd_path\":null,\"boot_args\":"
	     "null}"},
	};
	run_cases(*state, c, sizeof(c) / sizeof(c[0]));
}

static void test_machine_config_valid_and_invalid(void **state)
{
	static const struct api_case c[] = {
	    {"PUT", "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":64}", 204, NULL},
	    {"GET", "/machine-config", NULL, 200, "\"vcpu_count\":2,\"mem_size_mib\":64"},
	    {"PATCH", "/machine-config", "{\"mem_size_mib\":32}", 204, NULL},
	    {"GET", "/machine-config", NULL, 200, "\"vcpu_count\":2,\"mem_size_mib\":32"},
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":4,\"mem_size_mib\":48,\"smt\":false,\"track_dirty_pages\":true,"
	     "\"cpu_template\":\"None\",\"huge_pages\":\"Transparent\"}",
	     204, NULL},
	    {"GET", "/machine-config", NULL, 200, "\"track_dirty_pages\":true"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":\"2\",\"mem_size_mib\":64}", 400,
	     "invalid type: string \\\"2\\\", expected u8 at line 1 column 17."},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1.5,\"mem_size_mib\":64}", 400,
	     "invalid type: floating point `1.5`, expected u8"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":-1,\"mem_size_mib\":64}", 400,
	     "invalid value: integer `-1`, expected u8"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":256,\"mem_size_mib\":64}", 400,
	     "invalid value: integer `256`, expected u8"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":33,\"mem_size_mib\":64}", 400,
	     "Machine config error: The number of vCPUs must be greater than 0, less than 32 and "
	     "must be 1 or an even number if SMT is enabled."},
	    {"PUT", "/machine-config", "{\"vcpu_count\":0,\"mem_size_mib\":64}", 400,
	     "The number of vCPUs must be greater than 0"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":0}", 400,
	     "The memory size (MiB) is either 0, or not a multiple of the configured page size."},
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":1,\"mem_size_mib\":99999999999999999999999}", 400,
	     "invalid type: floating point `100000000000000000000000.0`, expected usize"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1}", 400,
	     "missing field `mem_size_mib` at line 1 column 16."},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":64,\"bogus\":1}", 400,
	     "unknown field `bogus`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, "
	     "`cpu_template`, `track_dirty_pages`, `huge_pages` at line 1 column 41."},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1,\"vcpu_count\":2,\"mem_size_mib\":64}",
	     400, "duplicate field `vcpu_count`"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":64,\"smt\":\"yes\"}",
	     400, "invalid type: string \\\"yes\\\", expected a boolean"},
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":1,\"mem_size_mib\":64,\"cpu_template\":\"Z9\"}", 400,
	     "unknown variant `Z9`"},
	    /* machine_config.rs is_valid_mem_size: 2M wants an even size */
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":1,\"mem_size_mib\":65,\"huge_pages\":\"2M\"}", 400,
	     "Machine config error: The memory size (MiB) is either 0, or not a multiple of the "
	     "configured page size."},
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":1,\"mem_size_mib\":64,\"huge_pages\":\"4M\"}", 400,
	     "unknown variant `4M`, expected one of `None`, `Transparent`, `2M`"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":3,\"mem_size_mib\":64,\"smt\":true}", 400,
	     "must be 1 or an even number if SMT is enabled"},
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\":1,\"mem_size_mib\":63,\"huge_pages\":\"Transparent\"}", 400,
	     "not a multiple of the configured page size"},
	    {"PATCH", "/machine-config", "{\"vcpu_count\":[1]}", 400,
	     "invalid type: sequence, expected u8"},
	    /* A failed update changes nothing. */
	    {"GET", "/machine-config", NULL, 200, "\"vcpu_count\":4,\"mem_size_mib\":48"},
	};
	run_cases(*state, c, sizeof(c) / sizeof(c[0]));
}

static void test_json_malformed_bodies(void **state)
{
	static const struct api_case c[] = {
	    /* serde_json: a body that ends early says what was open, at its end */
	    {"PUT", "/machine-config", "{", 400, "EOF while parsing an object at line 1 column 1."},
	    {"PUT", "/machine-config", "{\"vcpu_count\": 1", 400,
	     "EOF while parsing an object at line 1 column 16."},
	    {"PUT", "/machine-config", "{\"vcpu_count\": ", 400,
	     "EOF while parsing a value at line 1 column 15."},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1,}", 400, "malformed JSON"},
	    {"PUT", "/machine-config", "{\"vcpu_count\":1} trailing", 400, "malformed JSON"},
	    {"PUT", "/machine-config", "", 400, "Empty PUT request."},
	    {"PUT", "/machine-config", "[1,2]", 400, "expected a JSON object"},
	    {"PUT", "/machine-config", "\"str\"", 400, "expected a JSON object"},
	    {"PUT", "/machine-config", "null", 400, "expected a JSON object"},
	    {"PUT", "/actions", "{\"action_type\":\"\xff\xfe\"}", 400, "fault_message"},
	    {"PUT", "/boot-source", "{\"kernel_image_path\":{\"a\":[[[[[[[]]]]]]]}}", 400,
	     "invalid type: map, expected a string"},
	};
	run_cases(*state, c, sizeof(c) / sizeof(c[0]));
}

static void test_boot_source_logger_metrics_serial(void **state)
{
	struct sqb_tc *t = *state;
	char b1[512], b2[512], b3[512], b4[512], b5[512], body[8192];

	snprintf(b1, sizeof(b1), "{\"kernel_image_path\":\"%s\",\"boot_args\":\"a=1 b=2\"}",
		 guest_elf);
	snprintf(b2, sizeof(b2),
		 "{\"log_path\":\"%s/log\",\"level\":\"debug\",\"show_level\":true,"
		 "\"show_log_origin\":true,\"module\":\"ctl_\"}",
		 t->dir);
	snprintf(b3, sizeof(b3),
		 "{\"metrics_path\":\"%s/metrics\",\"emit_id\":true,"
		 "\"properties\":{\"team\":\"vm\\\"s\",\"zone\":\"a\"}}",
		 t->dir);
	snprintf(b4, sizeof(b4), "{\"serial_out_path\":\"%s/serial2\"}", t->dir);
	snprintf(b5, sizeof(b5), "{\"serial_out_path\":\"%s/serial2\",\"rate_limiter\":{}}",
		 t->dir);
	const struct api_case c[] = {
	    {"PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}", 400,
	     "The requested operation is not supported before starting the microVM."},
	    {"PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 400,
	     "without kernel configuration"},
	    {"PUT", "/boot-source", "{}", 400, "missing field `kernel_image_path`"},
	    {"PUT", "/boot-source", "{\"kernel_image_path\":\"/nonexistent/vmlinux\"}", 400,
	     "kernel file cannot be opened"},
	    {"PUT", "/boot-source",
	     "{\"kernel_image_path\":\"/dev/null\",\"initrd_path\":\"/nonexistent\"}", 400,
	     "initrd file cannot be opened"},
	    {"PUT", "/boot-source", "{\"kernel_image_path\":\"/dev/null\",\"boot_arg\":\"x\"}", 400,
	     "unknown field `boot_arg`"},
	    {"PUT", "/boot-source", b1, 204, NULL},
	    {"GET", "/vm/config", NULL, 200, "\"boot_args\":\"a=1 b=2\""},
	    {"PUT", "/logger", "{\"level\":\"Loud\"}", 400, "Invalid LevelFilter"},
	    {"PUT", "/logger", b2, 204, NULL},
	    /* logging.rs LoggerUpdateError and metrics.rs init_metrics: the
	     * io::Error's text, no path */
	    {"PUT", "/logger", "{\"log_path\":\"/nonexistent/dir/x\"}", 400,
	     "\"Logger error: Failed to open target file: No such file or directory (os error "
	     "2)\""},
	    {"PUT", "/metrics", "{\"metrics_path\":\"/nonexistent/dir/x\"}", 400,
	     "\"Metrics error: Cannot initialize the metrics system due to bad user input: No such "
	     "file or directory (os error 2)\""},
	    {"PUT", "/metrics", "{}", 400, "missing field `metrics_path`"},
	    {"PUT", "/metrics", b3, 204, NULL},
	    {"PUT", "/metrics", b3, 400, "Reinitialization of metrics not allowed."},
	    {"PUT", "/serial", b5, 400, "missing field `size`"},
	    {"PUT", "/serial", b4, 204, NULL},
	    /* rpc_interface.rs ConfigureSerial records the path; it is opened at
	     * InstanceStart (test_fc_post_boot_rules) */
	    {"PUT", "/serial", "{\"serial_out_path\":\"/nonexistent/dir/x\"}", 204, NULL},
	    {"PUT", "/serial", b4, 204, NULL},
	    {"PUT", "/actions", "{\"action_type\":\"Reboot\"}", 400, "unknown variant `Reboot`"},
	    {"PUT", "/actions", "{}", 400, "missing field `action_type`"},
	    {"PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", 400,
	     "not supported before starting the microVM"},
	    {"PATCH", "/vm", "{\"state\":\"Paused\"}", 400,
	     "not supported before starting the microVM"},
	    {"PATCH", "/vm", "{\"state\":\"Stopped\"}", 400, "unknown variant `Stopped`"},
	    {"PATCH", "/vm", "{\"state\":1}", 400, "invalid type: integer `1`, expected a string"},
	};
	run_cases(t, c, sizeof(c) / sizeof(c[0]));

	/* The metrics line itself is checked in test_metrics_line (FlushMetrics
	 * needs a started microVM; squib also writes one at exit). */
	snprintf(body, sizeof(body), "%s/log", t->dir);
	char *m = tc_read_file(body);
	assert_non_null(m);
	assert_non_null(strstr(m, "API PUT /metrics -> 400"));
	/* show_level + show_log_origin, Firecracker's "[ID:THREAD:LEVEL:FILE:LINE]" */
	assert_non_null(strstr(m, " [anonymous-instance:squib:DEBUG:runtime/api/ctl_handlers.c:"));
	free(m);
}

static void test_unknown_and_unbuilt_endpoints(void **state)
{
	static const struct api_case c[] = {
	    {"GET", "/nope", NULL, 400, "Invalid request method and/or path: GET nope."},
	    {"DELETE", "/machine-config", NULL, 400, "Invalid request method and/or path"},
	    {"POST", "/actions", "{}", 400, "Invalid request method and/or path"},
	    {"GET", "/machine-config/x", NULL, 400, "Invalid request method and/or path"},
	    /* the balloon is built (ctl_balloon.c): Firecracker's pre-boot answers */
	    {"GET", "/balloon", NULL, 400, "Balloon config error: No balloon device found."},
	    {"PUT", "/balloon", "{}", 400, "missing field `amount_mib`"},
	    {"PATCH", "/balloon", "{}", 400, "missing field `amount_mib`"},
	    {"GET", "/balloon/statistics", NULL, 400, "not supported before starting"},
	    {"PATCH", "/balloon/statistics", "{}", 400, "missing field `stats_polling_interval_s`"},
	    {"PATCH", "/balloon/hinting/start", "{}", 400, "not supported before starting"},
	    {"GET", "/balloon/hinting/status", NULL, 400, "not supported before starting"},
	    {"PATCH", "/balloon/hinting/stop", "{}", 400, "not supported before starting"},
	    /* built (ctl_cpu.c): serde's deny_unknown_fields (test_api.py foo=False) */
	    {"PUT", "/cpu-config", "{\"foo\":false}", 400, "unknown field `foo`"},
	    {"PUT", "/drives/rootfs", "{}", 400, "missing field `drive_id`"},
	    {"PATCH", "/drives/rootfs", "{}", 400, "missing field `drive_id`"},
	    {"PUT", "/pmem/p0", "{}", 400, "missing field `id`"},
	    {"PATCH", "/pmem/p0", "{}", 400, "missing field `id`"},
	    /* MMDS is built (ctl_mmds.c): Firecracker's pre-boot answers */
	    {"GET", "/mmds", NULL, 200, "{}"},
	    {"PATCH", "/mmds", "{}", 400, "MMDS error: The MMDS data store is not initialized."},
	    {"PUT", "/mmds/config", "{}", 400, "missing field `network_interfaces`"},
	    {"PUT", "/mmds", "{}", 204, NULL},
	    {"PUT", "/entropy", "{\"x\":1}", 400, "unknown field `x`"},
	    /* built (ctl_memhp.c): serde first, then the state */
	    {"PUT", "/hotplug/memory", "{}", 400, "missing field `total_size_mib`"},
	    {"PATCH", "/hotplug/memory", "{}", 400, "missing field `requested_size_mib`"},
	    {"GET", "/hotplug/memory", NULL, 400, "not supported before starting"},
	    {"PUT", "/network-interfaces/eth0", "{}", 400, "missing field `iface_id`"},
	    {"PATCH", "/network-interfaces/eth0", "{}", 400, "missing field `iface_id`"},
	    {"PUT", "/snapshot/create", "{}", 400, "missing field `snapshot_path`"},
	    {"PUT", "/snapshot/load", "{}", 400, "missing field `snapshot_path`"},
	    {"PUT", "/vsock", "{}", 400, "missing field `guest_cid`"},
	};
	run_cases(*state, c, sizeof(c) / sizeof(c[0]));
}

static void expect_raw(struct sqb_tc *t, const void *req, size_t len, int shut, int status,
		       const char *expect)
{
	char out[16384];

	tc_raw(t, req, len, shut, out, sizeof(out), 5000);
	if (tc_status_of(out) != status || (expect && !strstr(out, expect)))
		fail_msg("raw request %.40s...: got '%.300s', want %d containing '%s'",
			 (const char *)req, out, status, expect ? expect : "");
	still_serving(t);
}

static void test_garbage_http(void **state)
{
	struct sqb_tc *t = *state;
	char *big;
	size_t n;

	expect_raw(t, "HELLO\r\n\r\n", 9, 0, 400, "Invalid HTTP request line");
	expect_raw(t, "GET / HTTP/2.0\r\n\r\n", 18, 0, 400, "Unsupported HTTP version");
	expect_raw(t, "get / HTTP/1.1\r\n\r\n", 18, 0, 400, "Invalid HTTP method");
	expect_raw(t, "GET nope HTTP/1.1\r\n\r\n", 21, 0, 400, "must start with '/'");
	expect_raw(t, "GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", 31, 0, 400, "Invalid HTTP header");
	expect_raw(t, "PUT /actions HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 46, 0, 400,
		   "Invalid Content-Length");
	expect_raw(t, "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
		   66, 0, 400, "Duplicate Content-Length");
	expect_raw(
	    t, "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	    65, 0, 400, "Transfer-Encoding is not supported");
	expect_raw(t, "GET /\0 HTTP/1.1\r\n\r\n", 19, 0, 400, "NUL byte");
	/* Oversized body: declared and actually sent. */
	expect_raw(t, "PUT /actions HTTP/1.1\r\nContent-Length: 51201\r\n\r\n", 48, 0, 400,
		   "larger than the limit of 51200");
	big = malloc(70000);
	assert_non_null(big);
	n = (size_t)sprintf(big, "PUT /boot-source HTTP/1.1\r\nContent-Length: 60000\r\n\r\n");
	memset(big + n, ' ', 60000);
	expect_raw(t, big, n + 60000, 0, 400, "larger than the limit");
	/* Headers over 8 KiB. */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX-Pad: ");
	memset(big + n, 'a', 9000);
	memcpy(big + n + 9000, "\r\n\r\n", 4);
	expect_raw(t, big, n + 9004, 0, 400, "exceed 8192 bytes");
	free(big);
	/* The logger's module filter ("ctl_") keeps api_server.c's lines out. */
	{
		char path[128], *log;
		snprintf(path, sizeof(path), "%s/log", t->dir);
		log = tc_read_file(path);
		assert_non_null(log);
		assert_null(strstr(log, "bad HTTP request"));
		free(log);
	}
	/* A body right at the limit is parsed (and rejected as JSON, not size). */
	big = malloc(51200 + 200);
	n = (size_t)sprintf(big, "PUT /logger HTTP/1.1\r\nContent-Length: 51200\r\n\r\n");
	memset(big + n, ' ', 51200);
	big[n + 51199] = '1';
	expect_raw(t, big, n + 51200, 0, 400, "expected a JSON object");
	free(big);
}

static void test_disconnects_keepalive_and_many_clients(void **state)
{
	struct sqb_tc *t = *state;
	char out[16384];
	int fd, idle;

	/* Abrupt disconnects mid-headers and mid-body. */
	for (int i = 0; i < 5; i++) {
		fd = tc_connect(t);
		assert_true(fd >= 0);
		assert_true(write(fd, "PUT /machine-config HTTP/1.1\r\nContent-Le", 40) == 40);
		close(fd);
		fd = tc_connect(t);
		assert_true(write(fd,
				  "PUT /machine-config HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
				  55) == 55);
		close(fd);
	}
	still_serving(t);
	/* A stalled client does not block others. */
	idle = tc_connect(t);
	assert_true(write(idle, "GET / HTTP/1.1\r\n", 16) == 16);
	still_serving(t);
	/* Two pipelined keep-alive requests in one write get two answers. */
	tc_raw(t, "GET /version HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n", 63, 0,
	       out, sizeof(out), 3000);
	assert_int_equal(tc_status_of(out), 200);
	/* read_response stops after the first; check with a longer read. */
	fd = tc_connect(t);
	assert_true(
	    write(fd, "GET /version HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
		  63) == 63);
	{
		size_t len = 0;
		ssize_t r;
		while ((r = read(fd, out + len, sizeof(out) - 1 - len)) > 0)
			len += (size_t)r;
		out[len] = 0;
	}
	close(fd);
	assert_non_null(strstr(out, "firecracker_version"));
	assert_non_null(strstr(out, "Not started"));
	/* 100-continue: headers first, the interim answer, then the body. */
	{
		const char *hdr = "PUT /machine-config HTTP/1.1\r\nExpect: 100-continue\r\n"
				  "Content-Length: 34\r\n\r\n";
		const char *json = "{\"vcpu_count\":1,\"mem_size_mib\":64}";
		ssize_t r;

		assert_int_equal(strlen(json), 34);
		fd = tc_connect(t);
		assert_true(write(fd, hdr, strlen(hdr)) == (ssize_t)strlen(hdr));
		r = read(fd, out, sizeof(out) - 1);
		assert_true(r > 0);
		out[r] = 0;
		assert_int_equal(tc_status_of(out), 100);
		assert_true(write(fd, json, 34) == 34);
		r = read(fd, out, sizeof(out) - 1);
		assert_true(r > 0);
		out[r] = 0;
		assert_int_equal(tc_status_of(out), 204);
		close(fd);
	}
	/* Many clients in turn. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(tc_req(t, "GET", "/version", NULL, out, sizeof(out)), 200);
	close(idle);
	still_serving(t);
}

static void test_command_line(void **state)
{
	struct sqb_tc t2;
	char *big, out[4096];
	size_t n;
	int fd;

	(void)state;
	/* A larger payload cap is honoured. */
	assert_int_equal(
	    tc_spawn(&t2, squib_bin,
		     (const char *const[]){"--http-api-max-payload-size", "200000", NULL}, 1),
	    0);
	big = malloc(210000);
	assert_non_null(big);
	n = (size_t)sprintf(big, "PUT /logger HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
	memset(big + n, ' ', 100000);
	big[n + 99999] = '7';
	tc_raw(&t2, big, n + 100000, 0, out, sizeof(out), 5000);
	assert_int_equal(tc_status_of(out), 400);
	assert_non_null(strstr(out, "expected a JSON object"));
	n = (size_t)sprintf(big, "PUT /logger HTTP/1.1\r\nContent-Length: 200001\r\n\r\n");
	tc_raw(&t2, big, n, 0, out, sizeof(out), 5000);
	assert_non_null(strstr(out, "larger than the limit of 200000"));
	free(big);
	assert_int_equal(tc_req(&t2, "GET", "/", NULL, out, sizeof(out)), 200);
	/* A second squib on the same socket path refuses to start. */
	{
		struct sqb_tc t3;
		const char *args[] = {"--api-sock", t2.sock, NULL};
		assert_int_equal(tc_spawn(&t3, squib_bin, args, 0), 0);
		assert_int_equal(tc_wait_exit(&t3, 5000), 1);
		char *e = tc_read_file(t3.errlog);
		/* test_api_server.py test_api_socket_in_use: a fixed text with the path */
		char want[256];
		snprintf(want, sizeof(want),
			 "Failed to open the API socket at: %s. Check that it is not already used.",
			 t2.sock);
		if (!strstr(e, want))
			fail_msg(
			    "[tests/integration_tests/functional/test_api_server.py] no '%s' in %s",
			    want, e);
		free(e);
		tc_stop(&t3);
	}
	/* SIGTERM ends squib cleanly and removes its socket. */
	kill(t2.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t2, 5000), 0);
	fd = tc_connect(&t2);
	assert_true(fd < 0);
	tc_stop(&t2);
	/* --no-api needs --config-file; unknown flags fail, with main.rs's
	 * FcExitCode::ArgParsing (153) */
	assert_int_equal(tc_spawn(&t2, squib_bin, (const char *const[]){"--no-api", NULL}, 0), 0);
	assert_int_equal(tc_wait_exit(&t2, 5000), 153);
	tc_stop(&t2);
	assert_int_equal(tc_spawn(&t2, squib_bin, (const char *const[]){"--bogus", NULL}, 0), 0);
	assert_int_equal(tc_wait_exit(&t2, 5000), 153);
	tc_stop(&t2);
}

/* ---- Firecracker's own tests and sources, row by row ----
 * Each row cites the Firecracker test (tests/integration_tests/...) or
 * source file (src/...) whose status and message it mirrors. */
struct fc_case {
	const char *method, *path, *body;
	int status;
	const char *expect; /* substring of the body; NULL: any */
	const char *cite;
};

static void run_fc_cases(struct sqb_tc *t, const struct fc_case *c, size_t n)
{
	char body[16384];

	for (size_t i = 0; i < n; i++) {
		int st = tc_req(t, c[i].method, c[i].path, c[i].body, body, sizeof(body));
		if (st != c[i].status || (c[i].expect && !strstr(body, c[i].expect)))
			fail_msg("[%s] %s %s %s: got %d %s, want %d containing '%s'", c[i].cite,
				 c[i].method, c[i].path, c[i].body ? c[i].body : "", st, body,
				 c[i].status, c[i].expect ? c[i].expect : "");
		still_serving(t);
	}
}

/* Whole reply (headers and body) to one raw request. */
static void raw_reply(struct sqb_tc *t, const char *method, const char *path, const char *json,
		      char *out, size_t cap)
{
	char req[4096];
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n%s",
			 method, path, json ? strlen(json) : 0, json ? json : "");

	assert_true(n > 0 && (size_t)n < sizeof(req));
	tc_raw(t, req, (size_t)n, 0, out, cap, 5000);
}

static int spawn_logged(struct sqb_tc *t, char *logpath, size_t cap)
{
	char dir[] = "/tmp/sqbl-XXXXXX";
	const char *args[] = {"--log-path", logpath, "--level", "Info", "--show-level", NULL};

	if (!mkdtemp(dir))
		return -1;
	snprintf(logpath, cap, "%s/fc.log", dir);
	return tc_spawn(t, squib_bin, args, 1);
}

static void expect_log(const char *logpath, const char *needle, const char *cite)
{
	char *log = tc_read_file(logpath);

	if (!log || !strstr(log, needle))
		fail_msg("[%s] log has no '%s': %.2000s", cite, needle, log ? log : "(none)");
	free(log);
}

#define T_API  "tests/integration_tests/functional/test_api.py"
#define SERDE  "An error occurred when deserializing the json body of a request: "
#define PARSED "src/firecracker/src/api_server/parsed_request.rs"
#define RPC    "src/vmm/src/rpc_interface.rs"
#define UNPLUG	  "src/firecracker/src/api_server/request/hotplug/mod.rs parse_unplug_device"
#define DEVMGR	  "src/vmm/src/device_manager/mod.rs"
#define T_HOTPLUG "tests/integration_tests/functional/test_hotplug.py"

static void test_fc_http_layer_and_preboot_rules(void **state)
{
	static const struct fc_case c[] = {
	    {"GET", "/", "{}", 400, "GET request cannot have a body.", PARSED " method_to_error"},
	    {"GET", "/nope", "{}", 400, "GET request cannot have a body.",
	     PARSED " (Get, _, Some)"},
	    {"PUT", "/actions", "", 400, "Empty PUT request.", PARSED " method_to_error"},
	    {"PUT", "/nope", "", 400, "Empty PUT request.", PARSED " (Put, _, None)"},
	    {"PATCH", "/machine-config", "", 400, "Empty PATCH request.",
	     PARSED " method_to_error"},
	    {"PATCH", "/machine-config", "{}", 400, "Empty PATCH request.",
	     "src/firecracker/src/api_server/request/machine_configuration.rs is_empty"},
	    {"PATCH", "/machine-config", "{\"vcpu_count\":null,\"smt\":null}", 400,
	     "Empty PATCH request.",
	     "src/vmm/src/vmm_config/machine_config.rs MachineConfigUpdate"},
	    {"PUT", "/snapshot", "{}", 400, "Missing snapshot operation type.",
	     "src/firecracker/src/api_server/request/snapshot.rs parse_put_snapshot"},
	    {"PUT", "/snapshot/", "{}", 400, "Missing snapshot operation type.",
	     PARSED " split_terminator"},
	    {"PUT", "/snapshot/foo", "{}", 400,
	     "Invalid request method and/or path: PUT /snapshot/foo.",
	     "src/firecracker/src/api_server/request/snapshot.rs parse_put_snapshot"},
	    {"PATCH", "/boot-source", "{\"kernel_image_path\":\"otherfile\"}", 400,
	     "Invalid request method", T_API " test_api_patch_pre_boot"},
	    {"PATCH", "/logger", "{\"level\":\"Error\"}", 400, "Invalid request method",
	     T_API " test_api_patch_pre_boot"},
	    {"GET", "//machine-config/", NULL, 200, "\"vcpu_count\":1",
	     PARSED " trim_start_matches"},
	    {"GET", "/vm/config/", NULL, 200, "\"machine-config\"", PARSED " split_terminator"},
	    /* test_api_machine_config, in its order (bodies as Python's json.dumps writes them) */
	    {"PUT", "/machine-config", "{\"vcpu_count\": \"-2\"}", 400, "invalid type",
	     T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"smt\": \"random_string\"}", 400, NULL,
	     T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"cpu_template\": \"random_string\"}", 400, NULL,
	     T_API " test_api_machine_config"},
#if defined(__x86_64__)
	    {"PUT", "/machine-config",
	     "{\"vcpu_count\": 4, \"smt\": true, \"mem_size_mib\": 256, \"track_dirty_pages\": "
	     "true, \"cpu_template\": \"C3\"}",
	     204, NULL, T_API " test_api_machine_config (x86_64)"},
	    {"GET", "/machine-config", NULL, 200,
	     "{\"vcpu_count\":4,\"mem_size_mib\":256,\"smt\":true,\"cpu_template\":\"C3\","
	     "\"track_dirty_pages\":true",
	     T_API " test_api_machine_config (x86_64)"},
#endif
	    {"PATCH", "/machine-config", "{\"track_dirty_pages\": true}", 204, NULL,
	     T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"mem_size_mib\": 128}", 400,
	     "missing field `vcpu_count` at line 1 column 21.", T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"vcpu_count\": 2}", 400,
	     "missing field `mem_size_mib` at line 1 column 17.", T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"mem_size_mib\": 128, \"vcpu_count\": 1}", 204, NULL,
	     T_API " test_api_machine_config"},
	    {"GET", "/machine-config", NULL, 200, "\"smt\":false",
	     T_API " test_api_machine_config"},
	    {"PATCH", "/machine-config", "{\"smt\": true}", 204, NULL,
	     T_API " test_api_machine_config (x86_64)"},
	    {"PUT", "/machine-config", "{\"mem_size_mib\": \"-2\"}", 400, NULL,
	     T_API " test_api_machine_config"},
	    {"PUT", "/machine-config", "{\"mem_size_mib\": 18446744073709551616}", 400,
	     "error occurred when deserializing the json body of a request: invalid type",
	     T_API " test_api_machine_config"},
	    {"PATCH", "/machine-config", "{\"mem_size_mib\": 0}", 400,
	     "The memory size (MiB) is either 0, or not a multiple of the configured page size.",
	     T_API " test_api_machine_config"},
	    {"PATCH", "/machine-config", "{\"mem_size_mib\": 256}", 204, NULL,
	     T_API " test_api_machine_config"},
	    {"PATCH", "/machine-config", "{\"cpu_template\": \"None\"}", 204, NULL,
	     T_API " test_api_machine_config"},
	    {"GET", "/vm/config", NULL, 200,
	     "\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":256",
	     T_API " test_api_machine_config"},
	    {"PUT", "/boot-source", "{\"kernel_image_path\": \"foo.bar\"}", 400,
	     "The kernel file cannot be opened: No such file or directory (os error 2)",
	     T_API " test_api_put_update_pre_boot"},
	    {"PUT", "/boot-source", "{\"kernel_image_path\": \"inexistent_path\"}", 400,
	     "Boot source error: The kernel file cannot be opened: No such file or directory (os "
	     "error 2)",
	     "tests/integration_tests/functional/test_logging.py"},
	    {"PUT", "/logger", "{\"level\": \"warn\"}", 204, NULL,
	     "src/vmm/src/logger/logging.rs LevelFilter::deserialize"},
	    {"PUT", "/logger", "{\"level\": \"WARNING\"}", 204, NULL,
	     "src/vmm/src/logger/logging.rs LevelFilter::deserialize"},
	    {"PUT", "/logger", "{\"level\": \"Info\"}", 204, NULL,
	     "src/vmm/src/logger/logging.rs LevelFilter::deserialize"},
	    {"PUT", "/logger", "{\"level\": \"loud\"}", 400, "Invalid LevelFilter",
	     "src/vmm/src/logger/logging.rs LevelFilter::deserialize"},
	    /* custom deserializers: serde_json places their errors where the
	     * value ends, and reads them before later fields or missing ones */
	    {"PUT", "/network-interfaces/x",
	     "{\"iface_id\": \"x\", \"host_dev_name\": \"swa1\", \"guest_mac\": \"zz\"}", 400,
	     SERDE "The provided MAC address is invalid. at line 1 column 60.",
	     "src/vmm/src/utils/net/mac.rs MacAddr::deserialize"},
	    {"PUT", "/network-interfaces/x", "{\"guest_mac\": \"06:00:00:00:00:0\"}", 400,
	     SERDE "The provided MAC address is invalid. at line 1 column 32.",
	     "src/vmm/src/utils/net/mac.rs MacAddr::deserialize"},
	    {"PUT", "/mmds/config", "{\"network_interfaces\": [\"x\"], \"ipv4_address\": \"foo\"}",
	     400, SERDE "invalid IPv4 address syntax at line 1 column 51.",
	     "src/vmm/src/vmm_config/mmds.rs MmdsConfig (serde's Ipv4Addr)"},
	    {"PUT", "/mmds/config", "{\"ipv4_address\": 5, \"network_interfaces\": [\"x\"]}", 400,
	     SERDE "invalid type: integer `5`, expected IPv4 address at line 1 column 18.",
	     "src/vmm/src/vmm_config/mmds.rs MmdsConfig (serde's Ipv4Addr)"},
	    {"PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 400,
	     "The requested operation is not supported before starting the microVM.",
	     RPC " handle_preboot_request"},
	    /* hot-unplug routes: the id checks, then HotUnplugDevice before boot */
	    {"DELETE", "/drives/block0", NULL, 400,
	     "The requested operation is not supported before starting the microVM.",
	     RPC " handle_preboot_request HotUnplugDevice"},
	    {"DELETE", "/pmem/pmem0", NULL, 400,
	     "The requested operation is not supported before starting the microVM.",
	     RPC " handle_preboot_request HotUnplugDevice"},
	    {"DELETE", "/network-interfaces/eth0", NULL, 400,
	     "The requested operation is not supported before starting the microVM.",
	     RPC " handle_preboot_request HotUnplugDevice"},
	    {"DELETE", "/drives", NULL, 400, "The ID cannot be empty.", UNPLUG},
	    {"DELETE", "/pmem/a-b", NULL, 400,
	     "API Resource IDs can only contain alphanumeric characters and underscores.", UNPLUG},
	    {"DELETE", "/drives/block0", "{}", 400, "Empty Delete request.",
	     PARSED " (Delete, _, Some)"},
	    {"DELETE", "/nope", "{\"a\": 1}", 400, "Empty Delete request.",
	     PARSED " (Delete, _, Some)"},
	    {"DELETE", "/vsock", NULL, 400, "Invalid request method and/or path",
	     PARSED " InvalidPathMethod"},
	    {"PATCH", "/vm", "{\"state\": \"Paused\"}", 400,
	     "not supported before starting the microVM",
	     "tests/integration_tests/functional/test_pause_resume.py"},
	    {"PATCH", "/vm", "{\"state\": \"Resumed\"}", 400,
	     "not supported before starting the microVM",
	     "tests/integration_tests/functional/test_pause_resume.py"},
	    {"PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", 400,
	     "The requested operation is not supported before starting the microVM.",
	     RPC " handle_preboot_request CreateSnapshot"},
	    {"PUT", "/snapshot/create",
	     "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"version\": \"1.0.0\"}", 400,
	     "unknown field `version`, expected one of `snapshot_type`, `snapshot_path`, "
	     "`mem_file_path`",
	     "src/vmm/src/vmm_config/snapshot.rs CreateSnapshotParams"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_type\": \"File\", "
	     "\"backend_path\": \"bar\"}}",
	     400,
	     "Load snapshot error: Loading a microVM snapshot not allowed after configuring "
	     "boot-specific resources.",
	     RPC " LoadSnapshotError::LoadSnapshotNotAllowed"},
	};
	struct sqb_tc t;
	char out[16384], log[128], req[512];

	(void)state;
	assert_int_equal(spawn_logged(&t, log, sizeof(log)), 0);
	run_fc_cases(&t, c, sizeof(c) / sizeof(c[0]));
	/* test_api_machine_config: usize::MAX MiB is accepted, the start fails
	 * when the memory is mapped (no KVM needed: squib stops before) */
	snprintf(req, sizeof(req), "{\"kernel_image_path\": \"%s\"}", guest_elf);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, out, sizeof(out)), 204);
	assert_int_equal(tc_req(&t, "PATCH", "/machine-config",
				"{\"mem_size_mib\": 18446744073709551615}", out, sizeof(out)),
			 204);
	assert_int_equal(
	    tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof(out)),
	    400);
	if (!strstr(out, "Invalid Memory Configuration: Cannot create mmap region: Out of memory "
			 "(os error 12)"))
		fail_msg("[" T_API " test_api_machine_config] %s", out);
	assert_int_equal(
	    tc_req(&t, "PATCH", "/machine-config", "{\"mem_size_mib\": 256}", out, sizeof(out)),
	    204);
	/* micro_http answers with "Server: Firecracker API" (SDKs check it). */
	raw_reply(&t, "GET", "/", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "\r\nServer: Firecracker API\r\n"));
	/* absolute-form request target (RFC 9112 3.2.2), as micro_http accepts */
	tc_raw(&t, "GET http://localhost/machine-config HTTP/1.1\r\n\r\n", 49, 0, out, sizeof(out),
	       5000);
	assert_int_equal(tc_status_of(out), 200);
	assert_non_null(strstr(out, "\"mem_size_mib\":256"));
	/* test_negative_machine_config_api: cpu_template is deprecated */
	raw_reply(&t, "PUT", "/machine-config",
		  "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"None\"}", out,
		  sizeof(out));
	assert_int_equal(tc_status_of(out), 204);
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n"));
	expect_log(log, "PUT /machine-config: cpu_template field is deprecated.",
		   T_API " test_negative_machine_config_api");
	raw_reply(&t, "PATCH", "/machine-config", "{\"cpu_template\": \"None\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n"));
	expect_log(log, "PATCH /machine-config: cpu_template field is deprecated.",
		   T_API " test_negative_machine_config_api");
	raw_reply(&t, "PATCH", "/machine-config", "{\"vcpu_count\": 2}", out, sizeof(out));
	assert_int_equal(tc_status_of(out), 204);
	assert_null(strstr(out, "Deprecation"));
	/* request/mmds.rs: a /mmds/config body that parses as V1 (the default)
	 * is deprecated even when the request then fails (test_api_mmds_config's
	 * empty list); V2 is not */
	raw_reply(&t, "PUT", "/mmds/config", "{\"network_interfaces\": []}", out, sizeof(out));
	assert_int_equal(tc_status_of(out), 400);
	assert_non_null(strstr(out, "The list of network interface IDs that allow forwarding MMDS "
				    "requests is empty."));
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n"));
	expect_log(log, "PUT /mmds/config: V1 is deprecated. Use V2 instead.",
		   "src/firecracker/src/api_server/request/mmds.rs");
	raw_reply(&t, "PUT", "/mmds/config", "{\"network_interfaces\": [], \"version\": \"V2\"}",
		  out, sizeof(out));
	assert_int_equal(tc_status_of(out), 400);
	assert_null(strstr(out, "Deprecation"));
	/* test_logging.py: requests and errors are logged as Firecracker logs them */
	expect_log(log, "The API server received a Put request on \"/machine-config\" with body",
		   "tests/integration_tests/functional/test_logging.py");
	expect_log(log, "The API server received a Get request on \"/machine-config\".",
		   "tests/integration_tests/functional/test_logging.py");
	/* test_logging.py check_log_message_format, on every line */
	{
		char *all = tc_read_file(log), *save = NULL;
		regex_t re;
		int lines = 0;

		assert_non_null(all);
		assert_int_equal(
		    regcomp(&re,
			    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
			    "[0-9]{9} \\[anonymous-instance:[^]]*:(ERROR|WARN|INFO|DEBUG)\\]"
			    " ",
			    REG_EXTENDED | REG_NOSUB),
		    0);
		for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (regexec(&re, l, 0, NULL, 0))
				fail_msg("[tests/integration_tests/functional/test_logging.py] bad "
					 "line: %s",
					 l);
			lines++;
		}
		assert_true(lines > 20);
		regfree(&re);
		free(all);
	}
	expect_log(log,
		   "Received Error. Status code: 400 Bad Request. Message: Boot source error: The "
		   "kernel file cannot be opened: No such file or directory (os error 2)",
		   "tests/integration_tests/functional/test_logging.py");
	tc_stop(&t);
}

#define T_LOG "tests/integration_tests/functional/test_logging.py"
#define T_CLS "tests/integration_tests/functional/test_cmd_line_start.py"

/* Lines of a log that hold needle. */
static int log_lines_with(const char *log, const char *needle)
{
	int n = 0;

	for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* main.rs and logging.rs: the logger starts with level and origin off
 * (--show-level / --show-log-origin turn them on), "Running Firecracker
 * v<version>" is its first line (test_logging.py test_log_config checks
 * lines[0]), the API thread logs "API server started." (microvm.py spawn
 * waits for it at Info and Debug), and a PUT /logger without `level` sets
 * Info (Logger::update's DEFAULT_LEVEL). */
static void test_fc_log_start_lines_and_defaults(void **state)
{
	struct sqb_tc t;
	char dir[] = "/tmp/sqbl-XXXXXX", log[96], out[1024];
	char *all, *nl;
	size_t before;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/fc.log", dir);
	assert_int_equal(
	    tc_spawn(&t, squib_bin,
		     (const char *const[]){"--log-path", log, "--level", "Debug", NULL}, 1),
	    0);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
	all = tc_read_file(log);
	assert_non_null(all);
	nl = strchr(all, '\n');
	assert_non_null(nl);
	*nl = 0;
	if (!strstr(all, "Running Firecracker"))
		fail_msg("[" T_LOG " test_log_config] first line: %s", all);
	*nl = '\n';
	if (!strstr(all, "] API server started.\n"))
		fail_msg("[tests/framework/microvm.py spawn] no 'API server started.': %s", all);
	/* no level, no origin: "[anonymous-instance:<thread>] " */
	if (log_lines_with(all, ":DEBUG]") || log_lines_with(all, ":INFO]") ||
	    log_lines_with(all, ".c:"))
		fail_msg("[src/vmm/src/logger/logging.rs LOGGER] level or origin shown: %s", all);
	assert_true(log_lines_with(all, "API GET / -> 200") == 1); /* at Debug */
	free(all);
	/* microvm.py _validate_api_response_times (run at every kill() when the
	 * log is at Debug): each "The API server received a ..." line has its
	 * "Total previous API call duration: N us." (api_server/mod.rs) before
	 * the next request's line */
	assert_int_equal(
	    tc_req(&t, "PUT", "/machine-config", "{\"vcpu_count\": 2}", out, sizeof(out)), 400);
	assert_int_equal(
	    tc_req(&t, "PATCH", "/machine-config", "{\"vcpu_count\": 2}", out, sizeof(out)), 204);
	assert_int_equal(tc_req(&t, "GET", "/nope", NULL, out, sizeof(out)), 400);
	assert_int_equal(tc_req(&t, "GET", "/machine-config", NULL, out, sizeof(out)), 200);
	all = tc_read_file(log);
	assert_non_null(all);
	{
		int open = 0, calls = 0;
		char *save = NULL;

		for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (strstr(l, "] The API server received a ")) {
				if (open)
					fail_msg(
					    "[tests/framework/microvm.py _validate_api_response_"
					    "times] API call duration log entry missing before: %s",
					    l);
				open = 1;
				calls++;
			} else if (strstr(l, "] Total previous API call duration: ") &&
				   strstr(l, " us.")) {
				if (!open)
					fail_msg("[tests/framework/microvm.py] a duration line "
						 "before any request line: %s",
						 l);
				open = 0;
			}
		}
		assert_int_equal(calls, 5);
	}
	free(all);
	all = tc_read_file(log);
	assert_non_null(all);
	before = strlen(all);
	free(all);
	assert_int_equal(tc_req(&t, "PUT", "/logger", "{\"show_level\": true}", out, sizeof(out)),
			 204);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
	/* parsed_request.rs describe(): the body as Rust's {:?} writes it, and
	 * a CPU template only at Debug */
	assert_int_equal(
	    tc_req(&t, "PATCH", "/machine-config", "{\"vcpu_count\":\n\t2}", out, sizeof(out)),
	    204);
	assert_int_equal(tc_req(&t, "PUT", "/cpu-config", "{}", out, sizeof(out)), 204);
	expect_log(log,
		   "The API server received a Patch request on \"/machine-config\" with body "
		   "\"{\\\"vcpu_count\\\":\\n\\t2}\".",
		   "src/firecracker/src/api_server/parsed_request.rs describe");
	expect_log(log,
		   "The API server received a Put request on \"/cpu-config\". To view the CPU "
		   "template received by the API, configure log-level to DEBUG\n",
		   "src/firecracker/src/api_server/parsed_request.rs describe");
	all = tc_read_file(log);
	assert_non_null(all);
	if (!log_lines_with(all + before,
			    ":INFO] The API server received a Get request on \"/\".") ||
	    log_lines_with(all + before, ":DEBUG]"))
		fail_msg("[src/vmm/src/logger/logging.rs Logger::update] after PUT /logger "
			 "{show_level}: want level shown and Info: %s",
			 all + before);
	free(all);
	tc_stop(&t);
	/* a FIFO log whose reader goes away: the next line meets EPIPE, and
	 * squib must neither die nor spin on SIGPIPE (its handler logs, which
	 * raised the next SIGPIPE, for ever: 100 % CPU, deaf to SIGTERM) */
	{
		char fifo[128];
		pid_t rd;

		snprintf(fifo, sizeof(fifo), "%s/fc.fifo", dir);
		assert_int_equal(mkfifo(fifo, 0600), 0);
		rd = fork();
		assert_true(rd >= 0);
		if (rd == 0) {
			char buf[4096];
			int fd = open(fifo, O_RDONLY);

			while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
				;
			_exit(0);
		}
		assert_int_equal(
		    tc_spawn(&t, squib_bin,
			     (const char *const[]){"--log-path", fifo, "--level", "Info", NULL}, 1),
		    0);
		assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
		kill(rd, SIGKILL);
		assert_int_equal(waitpid(rd, NULL, 0), rd);
		assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
		assert_int_equal(tc_req(&t, "GET", "/machine-config", NULL, out, sizeof(out)), 200);
		kill(t.pid, SIGTERM);
		assert_int_equal(tc_wait_exit(&t, 5000), 0);
		tc_stop(&t);
		unlink(fifo);
	}
	/* the last line, which microvm.py get_exit_code() parses with
	 * "Firecracker exiting (with error|successfully). exit_code=(\d+)" */
	assert_int_equal(tc_spawn(&t, squib_bin, (const char *const[]){"--log-path", log, NULL}, 1),
			 0);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
	kill(t.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t, 5000), 0);
	expect_log(log, "] Firecracker exiting successfully. exit_code=0\n",
		   "tests/framework/microvm.py get_exit_code");
	tc_stop(&t);
	/* --show-level and --show-log-origin turn them on */
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--log-path", log, "--level", "Info",
							"--show-level", "--show-log-origin", NULL},
				  1),
			 0);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, out, sizeof(out)), 200);
	expect_log(log, ":INFO:runtime/main.c:", T_LOG " test_log_config");
	tc_stop(&t);
	unlink(log);
	rmdir(dir);
}

/* arch/x86_64/mod.rs load_kernel: a bzImage logs "Kernel loaded using
 * Linux 64-bit boot protocol (bzImage)" (test_bzimage_boot.py looks for
 * "(bzImage)"); an ELF with a PVH note "... PVH boot protocol"
 * (test_api.py test_api_happy_start).  The bzImage here is a minimal one
 * (boot protocol 2.15, XLF_KERNEL_64) whose 64-bit entry halts. */
static void test_fc_boot_protocol_log_lines(void **state)
{
#if defined(__x86_64__)
	enum { SETUP = 3, KOFF = (SETUP + 1) * 512, KSIZE = 0x3000 };
	static uint8_t bz[KOFF + KSIZE];
	char dir[] = "/tmp/sqbz-XXXXXX", log[96], kern[96], body[256], out[1024];
	const char *args[] = {"--log-path", log, "--level", "Debug", NULL};
	struct sqb_tc t;
	FILE *f;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	if (fd < 0) {
		fprintf(stderr, "SKIP test_fc_boot_protocol_log_lines: no /dev/kvm\n");
		skip();
	}
	close(fd);
	assert_non_null(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/fc.log", dir);
	snprintf(kern, sizeof(kern), "%s/bzImage", dir);
	memset(bz, 0, sizeof(bz));
	bz[0x1f1] = SETUP;
	bz[0x1fa] = bz[0x1fb] = 0xff; /* vid_mode: normal */
	bz[0x1fe] = 0x55;
	bz[0x1ff] = 0xaa;
	bz[0x200] = 0xeb;
	bz[0x201] = 0x6a;
	memcpy(bz + 0x202, "HdrS", 4);
	bz[0x206] = 0x0f; /* version 2.15 */
	bz[0x207] = 0x02;
	bz[0x211] = 0x01;				   /* LOADED_HIGH */
	memcpy(bz + 0x22c, "\xff\xff\xff\x7f", 4);	   /* initrd_addr_max */
	memcpy(bz + 0x230, "\x00\x00\x20\x00", 4);	   /* kernel_alignment 2 MiB */
	bz[0x234] = 1;					   /* relocatable */
	bz[0x236] = 0x7f;				   /* xloadflags, XLF_KERNEL_64 */
	memcpy(bz + 0x238, "\xff\x07\x00\x00", 4);	   /* cmdline_size 2047 */
	memcpy(bz + 0x258, "\x00\x00\x00\x01\0\0\0\0", 8); /* pref_address 16 MiB */
	memcpy(bz + 0x260, "\x00\x00\x40\x00", 4);	   /* init_size 4 MiB */
	memset(bz + KOFF, 0xf4, KSIZE);			   /* hlt (interrupts are off) */
	f = fopen(kern, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(bz, 1, sizeof(bz), f), sizeof(bz));
	fclose(f);
	for (int elf = 0; elf <= 1; elf++) {
		assert_int_equal(tc_spawn(&t, squib_bin, args, 1), 0);
		snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\"}",
			 elf ? guest_elf : kern);
		assert_int_equal(tc_req(&t, "PUT", "/boot-source", body, out, sizeof(out)), 204);
		if (tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out,
			   sizeof(out)) != 204)
			fail_msg("InstanceStart of %s: %s", elf ? "the ELF" : "the bzImage", out);
		expect_log(log,
			   elf ? "] Kernel loaded using PVH boot protocol\n"
			       : "] Kernel loaded using Linux 64-bit boot protocol (bzImage)\n",
			   elf ? T_API " test_api_happy_start"
			       : "tests/integration_tests/functional/test_bzimage_boot.py");
		tc_stop(&t);
		unlink(log);
	}
	unlink(kern);
	rmdir(dir);
#else
	(void)state;
	print_message("skipped: the bzImage boot protocol is x86_64's\n");
	skip();
#endif
}

/* test_cmd_line_start.py test_start_with_metadata*: what --metadata logs
 * (rpc_interface.rs build_microvm_from_requests, main.rs) once the API
 * server runs; a failure ends the process */
static void test_fc_metadata_file_log_lines(void **state)
{
	static const struct {
		const char *content; /* NULL: no such file */
		const char *extra;   /* one more flag and its value, or NULL */
		const char *value;
		int exit_code;
		const char *want1, *want2, *cite;
	} c[] = {
	    {"{\"latest\": {\"meta-data\": {\"ami-id\": \"x\"}}}", NULL, NULL, -1,
	     "Successfully added metadata to mmds from file", NULL, "test_start_with_metadata"},
	    {"{\"latest\": {\"meta-data\": {\"ami-id\": \"a somewhat long value\"}}}",
	     "--mmds-size-limit", "30", 1,
	     "Populating MMDS from file failed: The MMDS patch request doesn't fit.", NULL,
	     "test_start_with_metadata_limit"},
	    {"{\"latest\": {\"meta-data\": {\"ami-id\": \"a somewhat long value\"}}}",
	     "--http-api-max-payload-size", "30", 1,
	     "Populating MMDS from file failed: The MMDS patch request doesn't fit.", NULL,
	     "test_start_with_metadata_default_limit"},
	    {NULL, NULL, NULL, 1, "Unable to open or read from the mmds content file",
	     "No such file or directory", "test_start_with_missing_metadata"},
	    /* tests/data/metadata_invalid.json: an object left open */
	    {"{\n    \"latest\": {\n        \"meta-data\": \"Lorem\",\n        \"user-data\": "
	     "\"userdata 1 2 3 4\"\n",
	     NULL, NULL, 1, "MMDS error: metadata provided not valid json",
	     "EOF while parsing an object", "test_start_with_invalid_metadata"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char dir[] = "/tmp/sqbm-XXXXXX", log[96], md[96], out[1024];
		const char *args[10] = {"--log-path", log, "--level", "Info", "--metadata", md};
		struct sqb_tc t;
		char *all;
		int n = 6;

		assert_non_null(mkdtemp(dir));
		snprintf(log, sizeof(log), "%s/fc.log", dir);
		snprintf(md, sizeof(md), "%s/metadata.json", dir);
		if (c[i].content) {
			FILE *f = fopen(md, "w");
			assert_non_null(f);
			fputs(c[i].content, f);
			fclose(f);
		}
		if (c[i].extra) {
			args[n++] = c[i].extra;
			args[n++] = c[i].value;
		}
		args[n] = NULL;
		if (c[i].exit_code < 0) {
			assert_int_equal(tc_spawn(&t, squib_bin, args, 1), 0);
			assert_int_equal(tc_req(&t, "GET", "/mmds", NULL, out, sizeof(out)), 200);
			assert_non_null(strstr(out, "\"ami-id\":\"x\""));
		} else {
			(void)tc_spawn(&t, squib_bin, args, 1); /* it may be gone already */
			if (tc_wait_exit(&t, 5000) != c[i].exit_code)
				fail_msg("[" T_CLS " %s] want exit code %d", c[i].cite,
					 c[i].exit_code);
		}
		all = tc_read_file(log);
		assert_non_null(all);
		if (!strstr(all, c[i].want1) || (c[i].want2 && !strstr(all, c[i].want2)))
			fail_msg("[" T_CLS " %s] log lacks '%s' / '%s': %s", c[i].cite, c[i].want1,
				 c[i].want2 ? c[i].want2 : "", all);
		/* microvm.py spawn waits for this line before anything else */
		if (!strstr(all, "] API server started.\n"))
			fail_msg("[" T_CLS " %s] no 'API server started.' line: %s", c[i].cite,
				 all);
		free(all);
		tc_stop(&t);
		unlink(md);
		unlink(log);
		rmdir(dir);
	}
}

/* test_cmd_line_start.py test_config_start_with_limit and
 * test_config_with_default_limit compare the whole reply, byte for byte. */
static void test_fc_payload_limit_reply_bytes(void **state)
{
	static const char req_fmt[] =
	    "PUT /mmds/config HTTP/1.1\r\nHost: localhost\r\n"
	    "User-Agent: curl/7.88.1\r\nAccept: application/json\r\n"
	    "Content-Length: %s\r\n"
	    "Content-Type: application/x-www-form-urlencoded\r\n\r\nsome body";
	static const char want_fmt[] =
	    "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
	    "{ \"error\": \"Request payload with size %s is larger than the limit of %s allowed by "
	    "server.\nAll previous unanswered requests will be dropped.\" }";
	static const struct {
		const char *limit, *size;
		int clen;
	} c[] = {{"250", "260", 145}, {NULL, "51201", 149}};
	char req[512], want[512], out[2048];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		const char *a[] = {"--http-api-max-payload-size", c[i].limit, NULL};
		struct sqb_tc t;
		int n;

		assert_int_equal(tc_spawn(&t, squib_bin, c[i].limit ? a : NULL, 1), 0);
		n = snprintf(req, sizeof(req), req_fmt, c[i].size);
		snprintf(want, sizeof(want), want_fmt, c[i].clen, c[i].size,
			 c[i].limit ? c[i].limit : "51200");
		tc_raw(&t, req, (size_t)n, 0, out, sizeof(out), 5000);
		if (strcmp(out, want))
			fail_msg("[tests/integration_tests/functional/test_cmd_line_start.py] "
				 "got\n%s\nwant\n%s",
				 out, want);
		still_serving(&t);
		tc_stop(&t);
	}
}

/* One request of any size; the reply's body (up to its Content-Length)
 * into body.  Returns the status, or -1. */
static int big_req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		   char *body, size_t cap)
{
	size_t blen = json ? strlen(json) : 0, got = 0, off = 0, need = SIZE_MAX;
	char head[256], *p;
	int fd = tc_connect(t), n;

	if (fd < 0)
		return -1;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     method, path, blen);
	if (write(fd, head, (size_t)n) != n)
		goto fail;
	while (off < blen) {
		ssize_t w = write(fd, json + off, blen - off);
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	while (got < need && got < cap - 1) {
		ssize_t r = read(fd, body + got, cap - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		body[got] = 0;
		if (need == SIZE_MAX && (p = strstr(body, "\r\n\r\n"))) {
			char *cl = strstr(body, "Content-Length: ");
			need = (size_t)(p + 4 - body) + (cl && cl < p ? strtoul(cl + 16, NULL, 10) : 0);
		}
	}
	close(fd);
	if (got < need)
		return -1;
	n = tc_status_of(body);
	p = strstr(body, "\r\n\r\n");
	memmove(body, p + 4, strlen(p + 4) + 1);
	return n;
fail:
	close(fd);
	return -1;
}

/* test_api.py test_map_private_seccomp_regression: with a 2 MiB payload
 * limit a 1 MiB document goes in and comes back whole (its reply is larger
 * than the fixed buffers: heap memory under the API thread's seccomp
 * filter), and the size limit follows the payload limit (main.rs). */
static void test_fc_mmds_large_document(void **state)
{
	const char *a[] = {"--http-api-max-payload-size", "2097152", NULL};
	const size_t n = 1024 * 1024;
	char *doc = malloc(n + 64), *out = malloc(n + 4096);
	struct sqb_tc t;
	size_t k;

	(void)state;
	assert_non_null(doc);
	assert_non_null(out);
	assert_int_equal(tc_spawn(&t, squib_bin, a, 1), 0);
	assert_int_equal(big_req(&t, "GET", "/mmds", NULL, out, n + 4096), 200);
	assert_string_equal(out, "{}");
	k = (size_t)sprintf(doc, "{\"latest\":{\"meta-data\":{\"ami-id\":\"");
	memset(doc + k, 'b', n);
	strcpy(doc + k + n, "\"}}}");
	assert_int_equal(big_req(&t, "PUT", "/mmds", doc, out, n + 4096), 204);
	assert_int_equal(big_req(&t, "GET", "/mmds", NULL, out, n + 4096), 200);
	if (strcmp(out, doc))
		fail_msg("GET /mmds gave %zu bytes, want the %zu put", strlen(out), strlen(doc));
	still_serving(&t);
	tc_stop(&t);
	free(doc);
	free(out);
}

/* test_negative_snapshot_load_api on a fresh process (squib stays usable
 * after a failed load; Firecracker exits). */
static void test_fc_snapshot_load_validation(void **state)
{
	static const struct fc_case c[] = {
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_type\": \"File\", "
	     "\"backend_path\": \"bar\"}, \"mem_file_path\": \"bar\"}",
	     400,
	     "too many fields: either `mem_backend` or `mem_file_path` exclusively is required.",
	     T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_path\": \"bar\"}}", 400,
	     "missing field `backend_type`", T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_type\": \"File\"}}", 400,
	     "missing field `backend_path`", T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_type\": \"foo\", "
	     "\"backend_path\": \"bar\"}}",
	     400, "unknown variant `foo`, expected `File` or `Uffd`",
	     T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load",
	     "{\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"bar\"}}", 400,
	     "missing field `snapshot_path`", T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load", "{\"snapshot_path\": \"foo\"}", 400,
	     "missing field: either `mem_backend` or `mem_file_path` is required",
	     T_API " test_negative_snapshot_load_api"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/nonexistent/s\", \"mem_backend\": {\"backend_type\": "
	     "\"File\", "
	     "\"backend_path\": \"/nonexistent/m\"}}",
	     400,
	     "Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state "
	     "from file: Failed to open snapshot file: No such file or directory (os error 2)",
	     "tests/integration_tests/functional/test_snapshot_basic.py"},
	};
	struct sqb_tc t;
	char out[16384], log[128];

	(void)state;
	assert_int_equal(spawn_logged(&t, log, sizeof(log)), 0);
	run_fc_cases(&t, c, sizeof(c) / sizeof(c[0]));
	/* test_load_snapshot_failure_handling: empty state and memory files */
	{
		char dir[] = "/tmp/sqb-emptysnap-XXXXXX", st[64], mem[64], body[256];

		assert_non_null(mkdtemp(dir));
		snprintf(st, sizeof(st), "%s/snapshot_vmstate", dir);
		snprintf(mem, sizeof(mem), "%s/snapshot_mem", dir);
		close(open(st, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
		close(open(mem, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
		snprintf(body, sizeof(body),
			 "{\"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}", st, mem);
		raw_reply(&t, "PUT", "/snapshot/load", body, out, sizeof(out));
		assert_int_equal(tc_status_of(out), 400);
		if (!strstr(out,
			    "Load snapshot error: Failed to restore from snapshot: Failed to get "
			    "snapshot state from file: Failed to load snapshot state from file: IO "
			    "Error: File too short to contain CRC"))
			fail_msg("empty state file: %s", out);
		unlink(st);
		unlink(mem);
		rmdir(dir);
	}
	/* the deprecated mem_file_path: header even though the load fails */
	raw_reply(&t, "PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"foo\", \"mem_file_path\": \"bar\"}", out, sizeof(out));
	assert_int_equal(tc_status_of(out), 400);
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n"));
	expect_log(
	    log,
	    "PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.",
	    "src/firecracker/src/api_server/request/snapshot.rs LOAD_DEPRECATION_MESSAGE");
	raw_reply(&t, "PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"foo\", \"enable_diff_snapshots\": true, \"mem_backend\": "
		  "{\"backend_type\": \"File\", \"backend_path\": \"bar\"}}",
		  out, sizeof(out));
	assert_non_null(strstr(out, "\r\nDeprecation: true\r\n"));
	tc_stop(&t);
}

/* GET /vm/config: Firecracker's 13 keys (resources.rs VmmConfig) with
 * test_get_full_config's values for what squib has. */
static void test_fc_vm_config_keys(void **state)
{
	static const char *const keys[] = {
	    "{\"balloon\":null,",	  "\"drives\":[],",
	    "\"cpu-config\":null,",	  "\"logger\":null,",
	    "\"metrics\":null,",	  "\"mmds-config\":null,",
	    "\"network-interfaces\":[],", "\"vsock\":null,",
	    "\"entropy\":null,",	  "\"pmem\":[],",
	    "\"memory-hotplug\":null}",
	};
	struct sqb_tc t;
	char body[16384], req[1024];

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	assert_int_equal(tc_req(&t, "GET", "/vm/config", NULL, body, sizeof(body)), 200);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(body, keys[i]))
			fail_msg("[" T_API " test_get_full_config] no %s in %s", keys[i], body);
	assert_non_null(strstr(body,
			       "\"boot-source\":{\"kernel_image_path\":\"\",\"initrd_path\":null,"
			       "\"boot_args\":null}"));
	snprintf(req, sizeof(req), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"\"}",
		 guest_elf);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, body, sizeof(body)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\": 2, \"mem_size_mib\": 256}", body, sizeof(body)),
			 204);
	assert_int_equal(tc_req(&t, "GET", "/vm/config", NULL, body, sizeof(body)), 200);
	snprintf(req, sizeof(req),
		 "\"boot-source\":{\"kernel_image_path\":\"%s\",\"initrd_path\":null,\"boot_args\":"
		 "\"\"}",
		 guest_elf);
	assert_non_null(strstr(body, req));
	assert_non_null(
	    strstr(body, "\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":256,"
			 "\"smt\":false,\"track_dirty_pages\":false,\"huge_pages\":\"None\"}"));
	tc_stop(&t);
}

/* Regression (issue 11): PUT /boot-source with long valid paths and boot
 * args, then GET /vm/config, wrote past a global buffer.  The answer must
 * now be complete and exact; a 50 KiB body of '[' (stack exhaustion in the
 * tree parse) must be a 400, the server still serving. */
static void test_regression_long_config_and_deep_json(void **state)
{
	struct sqb_tc t;
	char *dir = malloc(8192), *args = malloc(4096), *req = malloc(20000), *body = malloc(16384);
	char *esc = malloc(8192), *big;
	size_t n, e;

	(void)state;
	assert_true(dir && args && req && body && esc);
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	/* a 3.6 KiB path: 18 directories of 200 bytes, then the file */
	n = (size_t)snprintf(dir, 8192, "%s", t.dir);
	for (int i = 0; i < 18; i++) {
		dir[n++] = '/';
		memset(dir + n, 'd' + (i % 3), 200);
		n += 200;
		dir[n] = 0;
		assert_int_equal(mkdir(dir, 0755) == 0 || errno == EEXIST, 1);
	}
	snprintf(dir + n, 8192 - n, "/k\"q");
	{
		FILE *f = fopen(dir, "w");
		assert_non_null(f);
		fclose(f);
	}
	/* boot args of 2047 bytes (squib's limit), with characters JSON escapes */
	for (n = 0; n < 2047; n++)
		args[n] = "a=b\\\" "[n % 6];
	args[n] = 0;
	/* JSON-escape path and args for the request */
	e = 0;
	for (const char *p = dir; *p; p++) {
		if (*p == '"' || *p == '\\')
			esc[e++] = '\\';
		esc[e++] = *p;
	}
	esc[e] = 0;
	n = (size_t)snprintf(
	    req, 20000, "{\"kernel_image_path\":\"%s\",\"initrd_path\":\"%s\",\"boot_args\":\"",
	    esc, esc);
	for (const char *p = args; *p; p++) {
		if (*p == '"' || *p == '\\')
			req[n++] = '\\';
		req[n++] = *p;
	}
	strcpy(req + n, "\"}");
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, body, 16384), 204);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(tc_req(&t, "GET", "/vm/config", NULL, body, 16384), 200);
		/* the whole request object reappears, byte for byte */
		req[n + 1] = 0; /* keep the closing quote, drop '}' */
		if (!strstr(body, req + 1))
			fail_msg("GET /vm/config lost or cut the boot source (%zu bytes): %.300s",
				 strlen(body), body);
		req[n + 1] = '}';
		assert_non_null(strstr(body, "\"memory-hotplug\":null}"));
	}
	/* deep nesting */
	big = malloc(51200);
	assert_non_null(big);
	memset(big, '[', 51200);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config", NULL, body, 16384), 400);
	big[51199] = 0;
	assert_int_equal(tc_req(&t, "PUT", "/machine-config", big, body, 16384), 400);
	assert_non_null(strstr(body, "recursion limit exceeded at line 1 column 129."));
	memset(big, '{', 51198);
	for (size_t i = 0; i + 5 < 51198; i += 5)
		memcpy(big + i, "{\"a\":", 5);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", big, body, 16384), 400);
	assert_non_null(strstr(body, "recursion limit exceeded"));
	still_serving(&t);
	tc_stop(&t);
	free(big);
	/* with the largest payload cap, 2M levels used to crash squib (stack
	 * exhaustion freeing the tree) */
	{
		const char *a[] = {"--http-api-max-payload-size", "16777216", NULL};
		size_t d = 2000000, hl;
		char hdr[128], out[2048];

		assert_int_equal(tc_spawn(&t, squib_bin, a, 1), 0);
		hl = (size_t)snprintf(hdr, sizeof(hdr),
				      "PUT /machine-config HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
				      2 * d);
		big = malloc(hl + 2 * d);
		assert_non_null(big);
		memcpy(big, hdr, hl);
		memset(big + hl, '[', d);
		memset(big + hl + d, ']', d);
		tc_raw(&t, big, hl + 2 * d, 0, out, sizeof(out), 10000);
		free(big);
		assert_int_equal(tc_status_of(out), 400);
		assert_non_null(strstr(out, "recursion limit exceeded at line 1 column 129."));
		still_serving(&t);
		tc_stop(&t);
	}
	free(dir);
	free(args);
	free(req);
	free(body);
	free(esc);
}

/* The metrics line has exactly Firecracker's groups and keys (checked
 * against the schema of Firecracker's fcmetrics.py, fc_metrics_schema.c) in
 * the order logger/metrics.rs writes them, with a block_<drive_id> group
 * for a drive configured before boot, and is written at exit too; unknown
 * PUT /metrics fields are ignored (vmm_config/metrics.rs has no
 * deny_unknown_fields).  Firecracker refuses FlushMetrics before boot, so
 * the line before boot is the one written at exit. */
static void test_metrics_line(void **state)
{
	static const char *const want[] = {
	    "{\"utc_timestamp_ms\":",
	    ",\"id\":\"vm-7\",\"properties\":{\"team\":\"vm\\\"s\",\"zone\":\"a\"},\"api_server\":",
	    "\"api_server\":{\"process_startup_time_us\":",
	    "\"deprecated_api\":{\"deprecated_http_api_calls\":1}",
	    "\"get_api_requests\":{\"instance_info_count\":",
	    "\"vmm_version_count\":2,",
	    "\"latencies_us\":{\"full_create_snapshot\":0,",
	    "\"put_api_requests\":{\"actions_count\":1,\"actions_fails\":1,",
	    "\"metrics_count\":1,\"metrics_fails\":0,",
	    "\"uart\":{\"error_count\":0,\"flush_count\":0,\"missed_read_count\":0,"
	    "\"missed_write_count\":0,\"read_count\":0,\"write_count\":0,"
	    "\"rate_limiter_dropped_bytes\":0}",
	};
	static const struct {
		const char *path;
		uint64_t v;
	} counts[] = {
	    {"patch_api_requests.machine_cfg_count", 1},
	    {"patch_api_requests.machine_cfg_fails", 0},
	    {"put_api_requests.drive_count", 2},
	    {"put_api_requests.drive_fails", 1},
	    {"put_api_requests.vsock_count", 1},
	    {"put_api_requests.vsock_fails", 0},
	    {"put_api_requests.cpu_cfg_count", 1}, /* a body it cannot parse: counted and failed */
	    {"put_api_requests.cpu_cfg_fails", 1},
	    {"get_api_requests.mmds_count", 1},
	    {"block_rootfs.read_count", 0},
	    {"block.read_agg.sum_us", 0},
	};
	const char *args[] = {"--id", "vm-7", NULL};
	struct sqb_tc t;
	char body[1024], req[1024], path[256], why[512], *m, *line;
	uint64_t us;

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, args, 1), 0);
	snprintf(path, sizeof(path), "%s/metrics", t.dir);
	snprintf(req, sizeof(req),
		 "{\"metrics_path\": \"%s\", \"emit_id\": true, \"not_a_field\": 5, "
		 "\"properties\": {\"team\": \"vm\\\"s\", \"zone\": \"a\"}}",
		 path);
	if (tc_req(&t, "PUT", "/metrics", req, body, sizeof(body)) != 204)
		fail_msg("[src/vmm/src/vmm_config/metrics.rs] PUT /metrics: %s", body);
	assert_int_equal(tc_req(&t, "GET", "/version", NULL, body, sizeof(body)), 200);
	assert_int_equal(tc_req(&t, "GET", "/version", NULL, body, sizeof(body)), 200);
	assert_int_equal(tc_req(&t, "PATCH", "/machine-config", "{\"cpu_template\":\"None\"}", body,
				sizeof(body)),
			 204);
	/* a drive and a vsock before boot: Firecracker has their device
	 * (and the drive's block_<drive_id> group) from the PUT on */
	snprintf(req, sizeof(req),
		 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		 "\"is_read_only\": true}",
		 compat_doc);
	assert_int_equal(tc_req(&t, "PUT", "/drives/rootfs", req, body, sizeof(body)), 204);
	assert_int_equal(
	    tc_req(&t, "PUT", "/drives/rootfs", "{\"drive_id\": \"other\"}", body, sizeof(body)),
	    400);
	snprintf(req, sizeof(req), "{\"guest_cid\": 3, \"uds_path\": \"%s/v.sock\"}", t.dir);
	assert_int_equal(tc_req(&t, "PUT", "/vsock", req, body, sizeof(body)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/cpu-config", "{\"foo\":1}", body, sizeof(body)), 400);
	assert_int_equal(tc_req(&t, "GET", "/mmds", NULL, body, sizeof(body)), 200);
	assert_int_equal(
	    tc_req(&t, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}", body, sizeof(body)),
	    400);
	kill(t.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t, 5000), 0);
	m = tc_read_file(path);
	assert_non_null(m);
	line = fcm_last_line(m);
	assert_non_null(line);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(line, want[i]))
			fail_msg("[src/vmm/src/logger/metrics.rs] metrics line has no %s: %s",
				 want[i], line);
	/* Firecracker's test allows 1 s; a sanitizer build may be slower to
	 * exit, and a wrong unit or clock would be off by far more */
	if (fcm_validate(line, 5000, why, sizeof(why)))
		fail_msg("[tests/host_tools/fcmetrics.py validate_fc_metrics] %s: %s", why, line);
	if (fcm_check_order(line, why, sizeof(why)))
		fail_msg("[src/vmm/src/logger/metrics.rs FirecrackerMetrics] %s: %s", why, line);
	assert_true(fcm_has(line, "block_rootfs"));
	assert_false(fcm_has(line, "block_other"));
	assert_false(fcm_has(line, "squib")); /* only on request */
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		uint64_t v = ~0ull;

		if (fcm_u64(line, counts[i].path, &v) || v != counts[i].v)
			fail_msg("%s is %llu, want %llu: %s", counts[i].path, (unsigned long long)v,
				 (unsigned long long)counts[i].v, line);
	}
	/* regression (issue 11): startup_us is small, never an underflow */
	assert_int_equal(fcm_u64(line, "api_server.process_startup_time_us", &us), 0);
	assert_true(us < 60ULL * 1000000);
	free(line);
	free(m);
	tc_stop(&t);
}

/* squib's own group only when PUT /metrics asks with "squib": {"group":
 * true} (a key Firecracker ignores); Firecracker's schema then refuses the line,
 * as it refuses any key it does not know or any key missing (the
 * validator itself, as fcmetrics' validate_missing_metrics checks it). */
static void test_metrics_squib_group_and_schema(void **state)
{
	struct sqb_tc t;
	char body[1024], req[512], path[256], why[512], *m, *line, *k, *e;

	(void)state;
	assert_int_equal(tc_spawn(&t, squib_bin, NULL, 1), 0);
	snprintf(path, sizeof(path), "%s/metrics", t.dir);
	snprintf(req, sizeof(req), "{\"metrics_path\": \"%s\", \"squib\": {\"group\": 1}}", path);
	assert_int_equal(tc_req(&t, "PUT", "/metrics", req, body, sizeof(body)), 400);
	assert_non_null(strstr(body, "expected a boolean"));
	snprintf(req, sizeof(req), "{\"metrics_path\": \"%s\", \"squib\": {\"group\": true}}",
		 path);
	assert_int_equal(tc_req(&t, "PUT", "/metrics", req, body, sizeof(body)), 204);
	kill(t.pid, SIGTERM);
	assert_int_equal(tc_wait_exit(&t, 5000), 0);
	m = tc_read_file(path);
	line = fcm_last_line(m);
	assert_non_null(line);
	assert_true(fcm_has(line, "squib"));
	assert_non_null(strstr(line, "\"squib\":{\"api_requests\":2,"));
	if (!fcm_validate(line, 0, why, sizeof(why)) || !strstr(why, "'squib'"))
		fail_msg("the schema took a line with a squib group: %s", why);
	/* without the group the line passes; without one key it does not */
	k = strstr(line, ",\"squib\":");
	assert_non_null(k);
	strcpy(k, "}");
	if (fcm_validate(line, 0, why, sizeof(why)))
		fail_msg("%s: %s", why, line);
	k = strstr(line, "\"process_startup_time_us\":");
	e = strchr(k, ',');
	memmove(k, e + 1, strlen(e + 1) + 1);
	if (!fcm_validate(line, 0, why, sizeof(why)) ||
	    !strstr(why, "'process_startup_time_us' is a required property"))
		fail_msg("a line without process_startup_time_us: %s", why);
	k = strstr(line, "\"read_count\":0,\"reset_count\"");
	assert_non_null(k);
	memcpy(k, "\"reed_count\"", 12);
	if (!fcm_validate(line, 0, why, sizeof(why)))
		fail_msg("a line with an unknown i8042 key passed");
	free(line);
	free(m);
	tc_stop(&t);
}

/* Post-boot rules on a started guest (needs /dev/kvm; skipped otherwise). */
static void test_fc_post_boot_rules(void **state)
{
	static const struct fc_case c[] = {
	    {"PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 204, NULL,
	     RPC " flush_metrics (no metrics configured: a no-op)"},
	    {"PUT", "/metrics", "{\"metrics_path\": \"/tmp/never-used-metrics\"}", 400,
	     "The requested operation is not supported after starting the microVM.",
	     RPC " handle_request ConfigureMetrics"},
	    {"PUT", "/snapshot/create",
	     "{\"mem_file_path\": \"memfile\", \"snapshot_path\": \"statefile\", "
	     "\"snapshot_type\": \"Full\"}",
	     400, "save/restore unavailable while running",
	     "tests/integration_tests/functional/test_snapshot_basic.py"},
	    {"PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400,
	     "The requested operation is not supported after starting the microVM",
	     "tests/integration_tests/functional/test_snapshot_basic.py"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", "
	     "\"backend_path\": \"m\"}}",
	     400, "The requested operation is not supported after starting the microVM",
	     RPC " handle_request LoadSnapshot"},
	    {"PATCH", "/machine-config", "{\"vcpu_count\": 4}", 400,
	     "The requested operation is not supported after starting the microVM",
	     T_API " test_api_put_update_post_boot"},
	    {"PUT", "/machine-config", "{\"vcpu_count\": 4, \"mem_size_mib\": 128}", 400,
	     "The requested operation is not supported after starting the microVM",
	     T_API " test_api_put_update_post_boot"},
	    {"PATCH", "/machine-config", "{}", 400, "Empty PATCH request.",
	     "src/firecracker/src/api_server/request/machine_configuration.rs"},
	    {"PUT", "/logger", "{\"level\": \"Info\"}", 400,
	     "The requested operation is not supported after starting the microVM",
	     RPC " handle_request ConfigureLogger"},
	    {"PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL,
	     "tests/integration_tests/functional/test_pause_resume.py"},
	    {"PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", "
	     "\"backend_path\": \"m\"}}",
	     400, "The requested operation is not supported after starting the microVM",
	     RPC " handle_request LoadSnapshot"},
	    {"PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL,
	     "tests/integration_tests/functional/test_pause_resume.py"},
	    {"GET", "/version", NULL, 200, "\"firecracker_version\":", T_API " test_api_version"},
	    /* test_hotplug_no_pci: hot-plug and unplug without --enable-pci */
	    {"PUT", "/drives/block0",
	     "{\"drive_id\": \"block0\", \"path_on_host\": \"/nonexistent/disk\", "
	     "\"is_root_device\": false, \"is_read_only\": false}",
	     400, "\"fault_message\":\"PCI is not enabled\"", T_HOTPLUG " test_hotplug_no_pci"},
	    {"PUT", "/pmem/pmem0",
	     "{\"id\": \"pmem0\", \"path_on_host\": \"/nonexistent/disk\", "
	     "\"root_device\": false, \"read_only\": false}",
	     400, "\"fault_message\":\"PCI is not enabled\"", T_HOTPLUG " test_hotplug_no_pci"},
	    {"PUT", "/network-interfaces/eth1",
	     "{\"iface_id\": \"eth1\", \"host_dev_name\": \"nonexistent_tap\", "
	     "\"guest_mac\": \"06:00:AC:10:00:02\"}",
	     400, "\"fault_message\":\"PCI is not enabled\"", T_HOTPLUG " test_hotplug_no_pci"},
	    {"DELETE", "/drives/block0", NULL, 400, "\"fault_message\":\"PCI is not enabled\"",
	     T_HOTPLUG " test_hotplug_no_pci"},
	    {"DELETE", "/pmem/pmem0", NULL, 400, "\"fault_message\":\"PCI is not enabled\"",
	     T_HOTPLUG " test_hotplug_no_pci"},
	    {"DELETE", "/network-interfaces/eth0", NULL, 400,
	     "\"fault_message\":\"PCI is not enabled\"", T_HOTPLUG " test_hotplug_no_pci"},
	    /* the id checks come first (parsed_request.rs), as for PUT */
	    {"PUT", "/drives/block0",
	     "{\"drive_id\": \"other\", \"path_on_host\": \"/x\", \"is_root_device\": false}", 400,
	     "The id from the path does not match the id from the body!", PARSED " checked_id"},
	};
	struct sqb_tc t;
	char body[2048], req[1024], log[128];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	if (fd < 0) {
		fprintf(stderr, "SKIP test_fc_post_boot_rules: /dev/kvm is not usable here\n");
		skip();
	}
	close(fd);
	assert_int_equal(spawn_logged(&t, log, sizeof(log)), 0);
	/* a file that is no kernel: Firecracker's kernel load error, and the
	 * process can still be configured and started */
	snprintf(req, sizeof(req), "{\"kernel_image_path\": \"%s\"}", compat_doc);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, body, sizeof(body)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", body,
				sizeof(body)),
			 400);
	if (!strstr(body, "Start microvm error: System configuration error: Cannot load kernel due "
			  "to invalid memory configuration or invalid kernel image: "))
		fail_msg("[src/vmm/src/arch/x86_64/mod.rs ConfigurationError::LoadKernel] %s",
			 body);
	snprintf(req, sizeof(req), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"delay=3000\"}",
		 guest_elf);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, body, sizeof(body)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\": 1, \"mem_size_mib\": 16}", body, sizeof(body)),
			 204);
	/* a serial output file that cannot be opened is accepted and fails the
	 * start, as DeviceManager::new's open_file_nonblock (its io::Error
	 * converted to DeviceManagerCreateError::EventFd) */
	assert_int_equal(tc_req(&t, "PUT", "/serial", "{\"serial_out_path\": \"/nonexistent/d/x\"}",
				body, sizeof(body)),
			 204);
	assert_int_equal(tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", body,
				sizeof(body)),
			 400);
	if (!strstr(body, "\"Start microvm error: Failed to create device manager: Error with "
			  "EventFd: No such file or directory (os error 2)\""))
		fail_msg("[src/vmm/src/device_manager/mod.rs setup_serial_device] %s", body);
	snprintf(req, sizeof(req), "{\"serial_out_path\": \"%s/serial\"}", t.dir);
	assert_int_equal(tc_req(&t, "PUT", "/serial", req, body, sizeof(body)), 204);
	if (tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", body,
		   sizeof(body)) != 204)
		fail_msg("InstanceStart: %s", body);
	run_fc_cases(&t, c, sizeof(c) / sizeof(c[0]));
	expect_log(log, "Kernel loaded using PVH boot protocol", T_API " test_api_happy_start");
	tc_stop(&t);
}

/* test_hotplug.py with --enable-pci (test_hotplug_block / _net / _pmem),
 * the API side: a drive goes on the PCI bus after boot and off again, with
 * device_manager/mod.rs's refusals in its order (an id in use before
 * anything else about the device; a root device; the file); GET /vm/config
 * lists what the guest has.  pmem is not hot-plugged by squib yet. */
static void test_hotplug_with_pci(void **state)
{
	char req[1024], body[4096], path[32];
	struct sqb_tc t;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	if (fd < 0) {
		fprintf(stderr, "SKIP test_hotplug_with_pci: /dev/kvm is not usable here\n");
		skip();
	}
	close(fd);
	assert_int_equal(tc_spawn(&t, squib_bin, (const char *const[]){"--enable-pci", NULL}, 1),
			 0);
	snprintf(req, sizeof(req), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"delay=3000\"}",
		 guest_elf);
	assert_int_equal(tc_req(&t, "PUT", "/boot-source", req, body, sizeof(body)), 204);
	assert_int_equal(tc_req(&t, "PUT", "/machine-config",
				"{\"vcpu_count\": 1, \"mem_size_mib\": 16}", body, sizeof(body)),
			 204);
	for (int i = 0; i < 2; i++) {
		snprintf(req, sizeof(req),
			 "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\", \"is_root_device\": %s, "
			 "\"is_read_only\": true}",
			 i ? "data" : "rootfs", compat_doc, i ? "false" : "true");
		snprintf(path, sizeof(path), "/drives/%s", i ? "data" : "rootfs");
		if (tc_req(&t, "PUT", path, req, body, sizeof(body)) != 204)
			fail_msg("PUT %s: %s", path, body);
	}
	if (tc_req(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", body,
		   sizeof(body)) != 204)
		fail_msg("InstanceStart: %s", body);
	snprintf(req, sizeof(req),
		 "{\"drive_id\": \"block0\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		 "\"is_read_only\": true, \"rate_limiter\": {\"ops\": {\"size\": 100, "
		 "\"refill_time\": 100}}}",
		 compat_doc);
	{
		const struct fc_case c[] = {
		    {"PUT", "/drives/rootfs",
		     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/x\", \"is_root_device\": "
		     "false, \"is_read_only\": true}",
		     400, "\"fault_message\":\"Device ID in use\"", DEVMGR " hotplug_device"},
		    {"PUT", "/drives/block0", req, 204, NULL, T_HOTPLUG " test_hotplug_block"},
		    {"PUT", "/drives/block0", req, 400, "\"fault_message\":\"Device ID in use\"",
		     T_HOTPLUG " test_hotplug_block"},
		    {"PUT", "/drives/block_root",
		     "{\"drive_id\": \"block_root\", \"path_on_host\": \"/x\", "
		     "\"is_root_device\": true, \"is_read_only\": false}",
		     400, "A root block device already exists", T_HOTPLUG " test_hotplug_block"},
		    {"PUT", "/drives/block_bad",
		     "{\"drive_id\": \"block_bad\", \"path_on_host\": \"/nonexistent\", "
		     "\"is_root_device\": false, \"is_read_only\": false}",
		     400, "No such file or directory", T_HOTPLUG " test_hotplug_block"},
		    {"PUT", "/pmem/pmem_root",
		     "{\"id\": \"pmem_root\", \"path_on_host\": \"/x\", \"root_device\": true}",
		     400, "Attempt to add pmem as a root device", T_HOTPLUG " test_hotplug_pmem"},
		    {"PUT", "/pmem/pmem0", "{\"id\": \"pmem0\", \"path_on_host\": \"/x\"}", 400,
		     "squib does not hot-plug or unplug pmem devices yet", "docs/api-compat.md"},
		    {"PUT", "/network-interfaces/eth_bad",
		     "{\"iface_id\": \"eth_bad\", \"host_dev_name\": "
		     "\"a_tap_name_longer_than_ifnamsiz\"}",
		     400, "Open tap device failed", T_HOTPLUG " test_hotplug_net"},
		    {"DELETE", "/drives/nonexistent", NULL, 400,
		     "\"fault_message\":\"Device not found\"", T_HOTPLUG " test_hotplug_block"},
		    {"DELETE", "/pmem/data", NULL, 400, "\"fault_message\":\"Device not found\"",
		     DEVMGR " hot_unplug_device (a drive's id)"},
		    {"DELETE", "/network-interfaces/eth0", NULL, 400,
		     "\"fault_message\":\"Device not found\"", DEVMGR " hot_unplug_device"},
		    {"DELETE", "/drives/rootfs", NULL, 400,
		     "\"fault_message\":\"Cannot unplug root device\"", T_HOTPLUG " test_hotplug_block"},
		};
		run_fc_cases(&t, c, sizeof(c) / sizeof(c[0]));
	}
	assert_int_equal(tc_req(&t, "GET", "/vm/config", NULL, body, sizeof(body)), 200);
	if (!strstr(body, "\"drive_id\":\"block0\""))
		fail_msg("GET /vm/config after the hot-plug lacks block0: %s", body);
	{
		const struct fc_case c[] = {
		    {"DELETE", "/drives/block0", NULL, 204, NULL, T_HOTPLUG " test_hotplug_block"},
		    {"DELETE", "/drives/block0", NULL, 400, "\"fault_message\":\"Device not found\"",
		     T_HOTPLUG " test_hotplug_block"},
		    {"DELETE", "/drives/data", NULL, 204, NULL, DEVMGR " hot_unplug_device"},
		    /* the freed slot takes the next device */
		    {"PUT", "/drives/block0", req, 204, NULL, T_HOTPLUG " test_hotplug_block"},
		};
		run_fc_cases(&t, c, sizeof(c) / sizeof(c[0]));
	}
	assert_int_equal(tc_req(&t, "GET", "/vm/config", NULL, body, sizeof(body)), 200);
	if (strstr(body, "\"drive_id\":\"data\"") || !strstr(body, "\"drive_id\":\"block0\""))
		fail_msg("GET /vm/config after the unplug: %s", body);
	tc_stop(&t);
}

/* docs/api-compat.md is a contract: every row's status must match what the
 * server does ("not yet" rows answer the not-yet-supported 400, others do
 * not), and the table must cover the endpoints the server routes. */
static void test_compat_table_matches_server(void **state)
{
	struct sqb_tc *t = *state;
	char *doc = tc_read_file(compat_doc), *line, *save = NULL, body[8192];
	int rows = 0, notyet = 0;

	assert_non_null(doc);
	for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char method[16], path[128], status[32], real[160];
		size_t j = 0;

		if (sscanf(line, "| %15[A-Z] | `%127[^`]` | %31[a-z ] |", method, path, status) !=
		    3)
			continue;
		/* Substitute path parameters: /drives/{drive_id} -> /drives/x1 */
		for (const char *p = path; *p && j < sizeof(real) - 4; p++) {
			if (*p == '{') {
				while (*p && *p != '}')
					p++;
				real[j++] = 'x';
				real[j++] = '1';
			} else {
				real[j++] = *p;
			}
		}
		real[j] = 0;
		int st = tc_req(t, method, real, strcmp(method, "GET") ? "{}" : NULL, body,
				sizeof(body));
		int is_notyet = st == 400 && strstr(body, "is not yet supported by squib");
		if (!strncmp(status, "not yet", 7) != !!is_notyet)
			fail_msg("compat row %s %s says '%s' but the server answered %d %s", method,
				 path, status, st, body);
		if (strstr(body, "Invalid request method and/or path"))
			fail_msg("compat row %s %s is unknown to the server", method, path);
		rows++;
		notyet += is_notyet ? 1 : 0;
	}
	free(doc);
	/* every path+method of Firecracker's swagger, and the three DELETE
	 * (hot-unplug) routes parsed_request.rs has that the swagger lacks */
	assert_int_equal(rows, 41);
	assert_int_equal(notyet, 0); /* /hotplug/memory was the last one not built */
	still_serving(t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_endpoints_before_start),
	    cmocka_unit_test(test_machine_config_valid_and_invalid),
	    cmocka_unit_test(test_json_malformed_bodies),
	    cmocka_unit_test(test_boot_source_logger_metrics_serial),
	    cmocka_unit_test(test_unknown_and_unbuilt_endpoints),
	    cmocka_unit_test(test_garbage_http),
	    cmocka_unit_test(test_disconnects_keepalive_and_many_clients),
	    cmocka_unit_test(test_compat_table_matches_server),
	    cmocka_unit_test(test_command_line),
	    cmocka_unit_test(test_fc_http_layer_and_preboot_rules),
	    cmocka_unit_test(test_fc_payload_limit_reply_bytes),
	    cmocka_unit_test(test_fc_mmds_large_document),
	    cmocka_unit_test(test_fc_snapshot_load_validation),
	    cmocka_unit_test(test_fc_vm_config_keys),
	    cmocka_unit_test(test_regression_long_config_and_deep_json),
	    cmocka_unit_test(test_metrics_line),
	    cmocka_unit_test(test_metrics_squib_group_and_schema),
	    cmocka_unit_test(test_fc_post_boot_rules),
	    cmocka_unit_test(test_hotplug_with_pci),
	    cmocka_unit_test(test_fc_log_start_lines_and_defaults),
	    cmocka_unit_test(test_fc_metadata_file_log_lines),
	    cmocka_unit_test(test_fc_boot_protocol_log_lines),
	};

	if (argc < 4) {
		fprintf(stderr, "usage: %s SQUIB GUEST_ELF API_COMPAT_MD\n", argv[0]);
		return 2;
	}
	squib_bin = argv[1];
	guest_elf = argv[2];
	compat_doc = argv[3];
	return cmocka_run_group_tests(tests, setup, teardown);
}
