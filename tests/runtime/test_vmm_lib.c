/* Integration, library level (include/squib/runtime.h): two VMs in one
 * process at once (no global state), pause/resume rendezvous with no guest
 * progress while paused, orderly stop, state errors and boot diagnostics. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "squib/runtime.h"
#include "vmm_priv.h" /* white-box: the backend state slots issue 7 uses */

static const char *guest_dir;

struct pipe_vm {
	sqb_vm *vm;
	int rd, wr;
	char out[65536];
	size_t len;
};

static void pv_create(struct pipe_vm *p, const char *guest, const char *cmdline, unsigned int ncpu)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_diag d = {0};
	char path[512];
	int fds[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	p->rd = fds[0];
	p->wr = fds[1];
	snprintf(path, sizeof(path), "%s/%s", guest_dir, guest);
	cfg.kernel_path = path;
	cfg.cmdline = cmdline;
	cfg.vcpu_count = ncpu;
	cfg.mem_size_mib = 16;
	cfg.serial_out_fd = p->wr;
	if (sqb_vm_create(&p->vm, &cfg, &d) < 0)
		fail_msg("sqb_vm_create: %s", d.reason);
}

static void pv_drain(struct pipe_vm *p)
{
	ssize_t n;

	while ((n = read(p->rd, p->out + p->len, sizeof(p->out) - 1 - p->len)) > 0)
		p->len += (size_t)n;
	p->out[p->len] = 0;
}

static int pv_wait_stop(struct pipe_vm *p, int ms)
{
	struct pollfd pf = {sqb_vm_event_fd(p->vm), POLLIN, 0};
	int rc = poll(&pf, 1, ms);

	pv_drain(p);
	return rc == 1 ? 0 : -1;
}

static void pv_free(struct pipe_vm *p)
{
	sqb_vm_free(p->vm);
	close(p->rd);
	close(p->wr);
}

static void test_two_vms_run_at_once(void **state)
{
	struct pipe_vm a, b;
	struct sqb_vm_stop_info si;
	struct sqb_vm_stats st;

	(void)state;
	pv_create(&a, "exits.elf", "n=3000", 1);
	pv_create(&b, "smp.elf", "cpus=2", 2);
	assert_int_equal(sqb_vm_start(a.vm), 0);
	assert_int_equal(sqb_vm_start(b.vm), 0);
	assert_int_equal(pv_wait_stop(&a, 20000), 0);
	assert_int_equal(pv_wait_stop(&b, 20000), 0);
	assert_non_null(strstr(a.out, "EXITS done n=3000\n"));
	assert_null(strstr(a.out, "SMP"));
	assert_non_null(strstr(b.out, "SMP OK cpus=2\n"));
	assert_null(strstr(b.out, "EXITS"));
	sqb_vm_get_stop_info(a.vm, &si);
	assert_int_equal(si.reason, SQB_VM_STOP_RESET);
	sqb_vm_get_stats(a.vm, &st);
	assert_true(st.io_exits >= 3000);
	assert_true(st.first_tx_ns >= st.start_ns && st.start_ns > 0);
	sqb_vm_get_stop_info(b.vm, &si);
	assert_int_equal(si.reason, SQB_VM_STOP_RESET);
	pv_free(&a);
	pv_free(&b);
}

static void test_pause_parks_every_vcpu_and_resume_continues(void **state)
{
	struct pipe_vm p;
	struct sqb_vm_stop_info si;
	size_t at_pause;

	(void)state;
	pv_create(&p, "counter.elf", "delay=2000", 2);
	assert_int_equal(sqb_vm_pause(p.vm), -SQB_ESTATE); /* not started yet */
	assert_int_equal(sqb_vm_start(p.vm), 0);
	assert_int_equal(sqb_vm_start(p.vm), -SQB_ESTATE);
	for (int i = 0; i < 4000 && !strstr(p.out, "count=3\n"); i++) {
		usleep(10000);
		pv_drain(&p);
	}
	assert_non_null(strstr(p.out, "count=3\n"));
	for (int round = 0; round < 3; round++) {
		assert_int_equal(sqb_vm_pause(p.vm), 0);
		assert_int_equal(sqb_vm_get_state(p.vm), SQB_VM_PAUSED);
		pv_drain(&p);
		at_pause = p.len;
		usleep(150000);
		pv_drain(&p);
		assert_int_equal(p.len, at_pause);
		assert_int_equal(sqb_vm_resume(p.vm), 0);
		assert_int_equal(sqb_vm_resume(p.vm), -SQB_ESTATE);
		for (int i = 0; i < 4000 && p.len == at_pause; i++) {
			usleep(5000);
			pv_drain(&p);
		}
		assert_true(p.len > at_pause);
	}
	assert_int_equal(sqb_vm_stop(p.vm), 0);
	assert_int_equal(sqb_vm_get_state(p.vm), SQB_VM_STOPPED);
	sqb_vm_get_stop_info(p.vm, &si);
	assert_int_equal(si.reason, SQB_VM_STOP_REQUESTED);
	assert_int_equal(sqb_vm_pause(p.vm), -SQB_ESTATE);
	pv_free(&p);
}

/* Every vCPU and VM state slot reads and writes back on a paused VM, and
 * the guest carries on unharmed afterwards. */
static void test_state_slots_round_trip_while_paused(void **state)
{
	struct pipe_vm p;
	size_t at;

	(void)state;
	pv_create(&p, "counter.elf", "delay=2000", 2);
	assert_int_equal(sqb_vm_start(p.vm), 0);
	for (int i = 0; i < 4000 && !strstr(p.out, "count=3\n"); i++) {
		usleep(10000);
		pv_drain(&p);
	}
	assert_int_equal(sqb_vm_pause(p.vm), 0);
	for (unsigned int v = 0; v < p.vm->nvcpus; v++) {
		struct sqb_hv_vcpu *hv = p.vm->vcpus[v].hv;
		for (int k = 0; k < SQB_HV_VCPU_STATE_KINDS_; k++) {
			size_t sz = p.vm->ops->vcpu_state_size(hv, k);
			void *buf;
			int rc;

			if (!sz)
				fail_msg("vCPU state kind %d has no size", k);
			buf = calloc(1, sz);
			rc = p.vm->ops->vcpu_get_state(hv, k, buf);
			if (rc < 0)
				fail_msg("vCPU %u get kind %d: %s", v, k, strerror(-rc));
			if (k == SQB_HV_VCPU_MSRS)
				assert_true(((uint32_t *)buf)[0] > 8); /* kvm_msrs.nmsrs */
			rc = p.vm->ops->vcpu_set_state(hv, k, buf);
			if (rc < 0)
				fail_msg("vCPU %u set kind %d: %s", v, k, strerror(-rc));
			free(buf);
		}
	}
	for (int k = 0; k < SQB_HV_VM_STATE_KINDS_; k++) {
		size_t sz = p.vm->ops->vm_state_size(k);
		void *buf = calloc(1, sz);
		assert_int_equal(p.vm->ops->vm_get_state(p.vm->hv, k, buf), 0);
		assert_int_equal(p.vm->ops->vm_set_state(p.vm->hv, k, buf), 0);
		free(buf);
	}
	pv_drain(&p);
	at = p.len;
	assert_int_equal(sqb_vm_resume(p.vm), 0);
	for (int i = 0; i < 4000 && !strstr(p.out + at, "count="); i++) {
		usleep(5000);
		pv_drain(&p);
	}
	assert_non_null(strstr(p.out + at, "count="));
	pv_free(&p);
}

static void test_create_errors_say_what(void **state)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_diag d = {0};
	sqb_vm *vm = (sqb_vm *)1;

	(void)state;
	cfg.vcpu_count = 0;
	assert_int_equal(sqb_vm_create(&vm, &cfg, &d), -EINVAL);
	assert_null(vm);
	cfg.vcpu_count = 1;
	cfg.mem_size_mib = 16;
	cfg.kernel_path = "/nonexistent/kernel.elf";
	assert_true(sqb_vm_create(&vm, &cfg, &d) < 0);
	assert_non_null(strstr(d.reason, "/nonexistent/kernel.elf"));
	cfg.kernel_path = "/dev/null";
	memset(&d, 0, sizeof(d));
	assert_true(sqb_vm_create(&vm, &cfg, &d) < 0);
	assert_true(d.reason[0] != 0);
	/* No kernel: a VM for a snapshot restore, with THP-advised memory. */
	cfg.kernel_path = NULL;
	cfg.huge_pages = SQB_VM_HUGE_THP;
	assert_int_equal(sqb_vm_create(&vm, &cfg, &d), 0);
	assert_int_equal(sqb_vm_get_state(vm), SQB_VM_CREATED);
	sqb_vm_free(vm);
	sqb_vm_free(NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_vms_run_at_once),
	    cmocka_unit_test(test_pause_parks_every_vcpu_and_resume_continues),
	    cmocka_unit_test(test_state_slots_round_trip_while_paused),
	    cmocka_unit_test(test_create_errors_say_what),
	};
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: %s GUEST_DIR\n", argv[0]);
		return 2;
	}
	guest_dir = argv[1];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "SKIP: /dev/kvm is not usable here; VMM library tests need KVM\n");
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
