/* An arm64 snapshot on an x86 squib (format.md [F-16]): a state file captured
 * from the arm64 test host (Debian's arm64 kernel, 2 vCPUs, tests/arm64/data/)
 * is read by the offline format reader as aarch64/KVM, and refused by this
 * host's squib -- the library with SQB_EMISMATCH and a diagnosis naming both
 * architectures, the API with Firecracker's 400 and a fault_message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "squib/errors.h"
#include "squib/runtime.h"
#include "squib/snapfmt.h"
#include "squib_client.h"

static const char *state_path, *squib_bin;

/* The header bytes as format.md's header table gives them, read raw. */
static void test_header_fields_from_the_spec(void **st)
{
	uint8_t h[32];
	FILE *f = fopen(state_path, "rb");

	(void)st;
	assert_non_null(f);
	assert_int_equal(fread(h, 1, sizeof(h), f), sizeof(h));
	fclose(f);
	assert_memory_equal(h, "\x89SQB\r\n\x1a\n", 8); /* magic */
	assert_int_equal(h[8] | h[9] << 8, 256);	/* header_size */
	assert_int_equal(h[14], 2);			/* arch: aarch64 */
	assert_int_equal(h[15], 1);			/* hypervisor: KVM */
	assert_int_equal(h[16], 1);			/* kind: full */
	assert_int_equal(h[17], 1);			/* role: state */
}

/* Offline tools MAY read any kind ([F-16]): the reader verifies it. */
static void test_reader_opens_arm64_state(void **st)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d;
	sqb_snap *s = NULL;
	char buf[300];

	(void)st;
	oo.no_external = 1;
	oo.no_parents = 1;
	int rc = sqb_snap_open(&s, state_path, &oo, &d);
	if (rc)
		fail_msg("open: %d %s", rc, sqb_diag_format(&d, buf, sizeof(buf)));
	assert_int_equal(sqb_snap_get_info(s)->arch, SQB_ARCH_AARCH64);
	assert_int_equal(sqb_snap_get_info(s)->hv, SQB_HV_KVM);
	assert_int_equal(sqb_snap_vcpu_count(s), 2);
	sqb_snap_free(s);
}

/* The VMM MUST refuse it with SQB_EMISMATCH before touching the hypervisor. */
static void test_library_refuses(void **st)
{
	struct sqb_vm_snap_load o = {.version = SQB_VM_SNAP_LOAD_VERSION,
				     .state_path = state_path,
				     .backend = SQB_VM_MEM_FILE,
				     .backend_path = "/nonexistent/arm64.mem",
				     .serial_out_fd = -1};
	struct sqb_diag d;
	sqb_vm *vm = (sqb_vm *)&o;

	(void)st;
	assert_int_equal(sqb_vm_snapshot_load(&vm, &o, NULL, &d), -SQB_EMISMATCH);
	assert_null(vm);
	assert_string_equal(d.section, "header");
	assert_non_null(strstr(d.reason, "aarch64/kvm"));
	assert_non_null(strstr(d.reason, "x86_64/kvm"));
}

/* Firecracker's API: PUT /snapshot/load fails with 400 and an Error body
 * carrying fault_message (firecracker-swagger.yaml); the VMM stays usable. */
static void test_api_refuses(void **st)
{
	struct sqb_tc t;
	char body[4096], json[1024];

	(void)st;
	if (tc_spawn(&t, squib_bin, NULL, 1) < 0)
		fail_msg("cannot start %s", squib_bin);
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_type\": \"File\", "
		 "\"backend_path\": \"/nonexistent/arm64.mem\"}, \"resume_vm\": true}",
		 state_path);
	assert_int_equal(tc_req(&t, "PUT", "/snapshot/load", json, body, sizeof(body)), 400);
	assert_non_null(strstr(body, "fault_message"));
	if (!strstr(body, "aarch64/kvm") || !strstr(body, "x86_64/kvm"))
		fail_msg("the refusal does not name both architectures: %s", body);
	assert_int_equal(tc_req(&t, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "Not started"));
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_fields_from_the_spec),
	    cmocka_unit_test(test_reader_opens_arm64_state),
	    cmocka_unit_test(test_library_refuses),
	    cmocka_unit_test(test_api_refuses),
	};

	if (argc < 3) {
		fprintf(stderr, "usage: %s ARM64_STATE_FILE SQUIB\n", argv[0]);
		return 2;
	}
	state_path = argv[1];
	squib_bin = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
