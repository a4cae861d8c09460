/* Integration, library level (include/squib/runtime.h): two VMs in one
 * process at once (no global state), pause/resume rendezvous with no guest
 * progress while paused, orderly stop, state errors and boot diagnostics,
 * vCPU requests on the vCPU threads, partial creation, mmio slots. */
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
#include <pthread.h>
#include <sys/eventfd.h>

#include "log.h"
#include "squib/snapfmt.h"
#include "vmm_priv.h" /* white-box: vCPU requests, the bus, mmio slots */

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

/* Per-vCPU work runs on the vCPU's own thread as a request: refused while
 * the VM runs; while paused every vCPU saves its records and loads them
 * back, and the guest carries on unharmed afterwards. */
static int whoami(struct sqb_vcpu *vc, void *arg)
{
	*(pthread_t *)arg = pthread_self();
	return (int)vc->index + 100;
}

static void test_vcpu_requests_run_on_the_vcpu_thread(void **state)
{
	struct pipe_vm p;
	size_t at;

	(void)state;
	pv_create(&p, "counter.elf", "delay=2000", 2);
	pthread_t t = pthread_self();
	/* created, not started: the vCPUs are parked and serve requests */
	assert_int_equal(sqb_vcpu_call(&p.vm->vcpus[1], whoami, &t), 101);
	assert_false(pthread_equal(t, pthread_self()));
	assert_true(pthread_equal(t, p.vm->vcpus[1].thread));
	assert_int_equal(sqb_vm_start(p.vm), 0);
	assert_int_equal(sqb_vcpu_call(&p.vm->vcpus[0], whoami, &t), -SQB_ESTATE);
	for (int i = 0; i < 4000 && !strstr(p.out, "count=3\n"); i++) {
		usleep(10000);
		pv_drain(&p);
	}
	assert_int_equal(sqb_vm_pause(p.vm), 0);
	for (unsigned int v = 0; v < p.vm->nvcpus; v++) {
		struct sqb_record recs[32];
		unsigned int n = 0;
		struct sqb_diag d = {0};

		assert_int_equal(sqb_vcpu_settle(&p.vm->vcpus[v], &d), 0);
		assert_int_equal(sqb_vcpu_save_records(&p.vm->vcpus[v], recs, 32, &n), 0);
		assert_true(n >= 10);
		if (sqb_vcpu_load_records(&p.vm->vcpus[v], recs, n, &d) != 0)
			fail_msg("vCPU %u load: %s", v, d.reason);
		for (unsigned int k = 0; k < n; k++)
			free((void *)recs[k].data);
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

/* Regression: a creation that fails before (or while) the vCPUs exist must
 * not kick vCPUs that were never created (it crashed in sqb_vm_free). */
static void test_partial_creation_frees_cleanly(void **state)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_diag d = {0};
	sqb_vm *vm = (sqb_vm *)1;
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/counter.elf", guest_dir);
	cfg.kernel_path = path;
	cfg.vcpu_count = 3;
	cfg.mem_size_mib = 16;
	setenv("SQB_FAULT", "vm_memory", 1);
	assert_int_equal(sqb_vm_create(&vm, &cfg, &d), -EIO);
	assert_null(vm);
	setenv("SQB_FAULT", "vcpu_create", 1); /* vCPUs 0 and 1 exist, 2 fails */
	assert_int_equal(sqb_vm_create(&vm, &cfg, &d), -EIO);
	assert_null(vm);
	unsetenv("SQB_FAULT");
}

/* Devices added through the config hook get the next IOAPIC pins, windows
 * 0x1000 apart from 0xd0000000, and answer the guest's accesses. */
struct hook_dev {
	struct sqb_mmio_slot_info slot;
	int realized;
};

static int hd_realize(void *o, const struct sqb_mmio_slot_info *s)
{
	struct hook_dev *h = o;
	h->slot = *s;
	h->realized = 1;
	return 0;
}

static void hd_access(void *o, uint64_t off, uint8_t *data, unsigned int size, int is_write)
{
	(void)o;
	(void)off;
	if (!is_write)
		memset(data, 0, size);
}

static struct sqb_mmio_dev_ops hd_ops[2] = {
    {.id = "virtio-rng0", .virtio_device_id = 4, .realize = hd_realize, .access = hd_access},
    {.id = "virtio-blk0", .virtio_device_id = 2, .realize = hd_realize, .access = hd_access},
};

static int add_two(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	struct hook_dev *h = arg;

	for (int i = 0; i < 2; i++)
		FORWARD_IF_ERROR(sqb_vm_add_mmio_dev(vm, &hd_ops[i], &h[i], NULL, diag));
	return 0;
}

static void test_mmio_slots_from_the_config_hook(void **state)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct hook_dev h[2];
	struct sqb_diag d = {0};
	char path[512];
	sqb_vm *vm;
	int efd;

	(void)state;
	memset(h, 0, sizeof(h));
	snprintf(path, sizeof(path), "%s/counter.elf", guest_dir);
	cfg.kernel_path = path;
	cfg.mem_size_mib = 16;
	cfg.add_devices = add_two;
	cfg.add_devices_arg = h;
	if (sqb_vm_create(&vm, &cfg, &d) < 0)
		fail_msg("create: %s", d.reason);
	assert_true(h[0].realized && h[1].realized);
	assert_int_equal(h[0].slot.base, 0xd0000000ULL);
	assert_int_equal(h[1].slot.base, 0xd0001000ULL);
	assert_int_equal(h[0].slot.gsi, 5);
	assert_int_equal(h[1].slot.gsi, 6);
	assert_ptr_equal(sqb_bus_find(&vm->bus, SQB_BUS_MMIO, 0xd0001ffc),
			 sqb_bus_by_id(&vm->bus, "virtio-blk0"));
	assert_int_equal(sqb_bus_by_id(&vm->bus, "virtio-rng0")->devs_type, 0x104);
	/* an ioeventfd on QueueNotify with a datamatch (KVM has them) */
	efd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(h[1].slot.ioeventfd(&h[1].slot, 0x50, 4, 0, 1, efd, 1), 0);
	assert_int_equal(h[1].slot.ioeventfd(&h[1].slot, 0x50, 4, 0, 1, efd, 0), 0);
	assert_int_equal(h[1].slot.ioeventfd(&h[1].slot, 0xffe, 4, 0, 1, efd, 1), -EINVAL);
	/* the irqfd line pulses without a vCPU in sight */
	sqb_irq_pulse(h[0].slot.irq);
	assert_int_equal(sqb_vm_add_mmio_dev(vm, &hd_ops[0], &h[0], NULL, &d), -SQB_ESTATE);
	close(efd);
	sqb_vm_free(vm);
}

/* A snapshot through the library with a virtio-mmio slot on the bus: the
 * slot is quiesced before capture and resumed after, its DEVS record goes
 * through the library's save/load, a load without the device (or with one
 * that refuses its state) says which device; and a Diff taken after the VMM
 * wrote guest memory through the accessor carries that page (KVM's dirty
 * log never sees VMM writes: without the accessor's mark it would come
 * from the parent, all zero). */
struct snapdev {
	uint64_t value;
	int quiesced, resumed, refuse;
	struct sqb_mmio_slot_info slot;
};

static int sd_realize(void *o, const struct sqb_mmio_slot_info *s)
{
	((struct snapdev *)o)->slot = *s;
	return 0;
}

static int sd_quiesce(void *o)
{
	((struct snapdev *)o)->quiesced++;
	return 0;
}

static void sd_resume(void *o)
{
	((struct snapdev *)o)->resumed++;
}

static int sd_save(void *o, uint8_t *buf, size_t cap, size_t *len)
{
	struct snapdev *d = o;
	*len = 8;
	if (buf && cap >= 8)
		memcpy(buf, &d->value, 8);
	return 0;
}

static int sd_load(void *o, unsigned int version, const uint8_t *buf, size_t len,
		   struct sqb_diag *diag)
{
	struct snapdev *d = o;
	if (d->refuse || version != 1 || len != 8) {
		snprintf(diag->reason, sizeof(diag->reason), "capacity differs");
		return -SQB_EMISMATCH;
	}
	memcpy(&d->value, buf, 8);
	return 0;
}

static const struct sqb_mmio_dev_ops sd_ops = {.id = "virtio-blk0",
					       .virtio_device_id = 2,
					       .state_version = 1,
					       .realize = sd_realize,
					       .access = hd_access,
					       .quiesce = sd_quiesce,
					       .resume = sd_resume,
					       .save = sd_save,
					       .load = sd_load};

static int add_snapdev(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	return sqb_vm_add_mmio_dev(vm, &sd_ops, arg, NULL, diag);
}

static void test_snapshot_devices_and_vmm_writes(void **state)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_vm_snap_create sc = {.version = SQB_VM_SNAP_CREATE_VERSION};
	struct sqb_vm_snap_load sl = {.version = SQB_VM_SNAP_LOAD_VERSION};
	struct snapdev d1 = {.value = 0x1122334455667788ULL}, d2 = {0};
	char dir[] = "/tmp/sqbvmm-XXXXXX", path[512], full_m[600], full_s[600], diff_m[600],
	     diff_s[600];
	static const char msg[] = "written by the VMM, not the guest";
	struct sqb_diag d = {0};
	sqb_vm *vm, *vm2 = NULL;
	const uint64_t gpa = 12ULL << 20; /* untouched by counter.elf */
	uint8_t back[sizeof(msg)];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/counter.elf", guest_dir);
	snprintf(full_m, sizeof(full_m), "%s/full.mem", dir);
	snprintf(full_s, sizeof(full_s), "%s/full.state", dir);
	snprintf(diff_m, sizeof(diff_m), "%s/diff.mem", dir);
	snprintf(diff_s, sizeof(diff_s), "%s/diff.state", dir);
	cfg.kernel_path = path;
	cfg.cmdline = "delay=2000";
	cfg.mem_size_mib = 16;
	cfg.track_dirty_pages = 1;
	cfg.add_devices = add_snapdev;
	cfg.add_devices_arg = &d1;
	if (sqb_vm_create(&vm, &cfg, &d) < 0)
		fail_msg("create: %s", d.reason);
	assert_int_equal(sqb_vm_start(vm), 0);
	usleep(50000);
	assert_int_equal(sqb_vm_pause(vm), 0);
	sc.type = SQB_VM_SNAP_FULL;
	sc.state_path = full_s;
	sc.mem_path = full_m;
	sc.track_dirty = 1;
	if (sqb_vm_snapshot_create(vm, &sc, &d))
		fail_msg("full: %s", d.reason);
	assert_int_equal(d1.quiesced, 1);
	assert_int_equal(d1.resumed, 1);
	/* device DMA after the Full: through the accessor, as a device does */
	assert_int_equal(sqb_gmem_write(d1.slot.mem, gpa, msg, sizeof(msg)), 0);
	sc.type = SQB_VM_SNAP_DIFF;
	sc.state_path = diff_s;
	sc.mem_path = diff_m;
	if (sqb_vm_snapshot_create(vm, &sc, &d))
		fail_msg("diff: %s", d.reason);
	sqb_vm_free(vm);

	sl.state_path = diff_s;
	sl.backend = SQB_VM_MEM_FILE;
	sl.backend_path = diff_m;
	sl.mode = SQB_VM_LOAD_EAGER;
	sl.serial_out_fd = -1;
	/* without the device: refused, naming it */
	memset(&d, 0, sizeof(d));
	assert_int_equal(sqb_vm_snapshot_load(&vm2, &sl, NULL, &d), -SQB_EMISMATCH);
	assert_non_null(strstr(d.reason, "virtio-blk0"));
	/* with a device that refuses its state: the library's reason */
	sl.add_devices = add_snapdev;
	sl.add_devices_arg = &d2;
	d2.refuse = 1;
	memset(&d, 0, sizeof(d));
	assert_int_equal(sqb_vm_snapshot_load(&vm2, &sl, NULL, &d), -SQB_EMISMATCH);
	assert_non_null(strstr(d.reason, "capacity differs"));
	d2.refuse = 0;
	if (sqb_vm_snapshot_load(&vm2, &sl, NULL, &d))
		fail_msg("load: %s", d.reason);
	assert_int_equal(d2.value, 0x1122334455667788ULL);
	assert_int_equal(sqb_gmem_read(&vm2->mem, back, gpa, sizeof(msg)), 0);
	assert_memory_equal(back, msg, sizeof(msg));
	sqb_vm_free(vm2);
	/* lazily restored: the accessor fetches the page before the VMM reads */
	sl.mode = SQB_VM_LOAD_LAZY;
	if (sqb_vm_snapshot_load(&vm2, &sl, NULL, &d))
		fail_msg("lazy load: %s", d.reason);
	memset(back, 0, sizeof(back));
	assert_int_equal(sqb_gmem_read(&vm2->mem, back, gpa, sizeof(msg)), 0);
	assert_memory_equal(back, msg, sizeof(msg));
	sqb_vm_free(vm2);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* A stop while another thread sends vCPU requests: every request returns
 * (done, or -SQB_ESTATE once the vCPU thread is gone), none hangs. */
static int nop_req(struct sqb_vcpu *vc, void *arg)
{
	(void)vc;
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
	return 0;
}

struct req_storm {
	sqb_vm *vm;
	int served, refused;
};

static void *storm(void *arg)
{
	struct req_storm *r = arg;

	for (int i = 0; i < 100000; i++) {
		int rc = sqb_vcpu_call(&r->vm->vcpus[i & 1], nop_req, &r->served);
		if (rc == -SQB_ESTATE && ++r->refused > 50)
			break;
	}
	return NULL;
}

static void test_stop_while_requests_are_sent(void **state)
{
	struct pipe_vm p;
	struct req_storm r = {0};
	pthread_t t;

	(void)state;
	pv_create(&p, "counter.elf", "delay=2000", 2);
	assert_int_equal(sqb_vm_start(p.vm), 0);
	assert_int_equal(sqb_vm_pause(p.vm), 0);
	r.vm = p.vm;
	assert_int_equal(pthread_create(&t, NULL, storm, &r), 0);
	while (__atomic_load_n(&r.served, __ATOMIC_RELAXED) < 100)
		usleep(1000);
	assert_int_equal(sqb_vm_stop(p.vm), 0);
	pthread_join(t, NULL);
	assert_true(r.refused > 0);
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
	    cmocka_unit_test(test_vcpu_requests_run_on_the_vcpu_thread),
	    cmocka_unit_test(test_partial_creation_frees_cleanly),
	    cmocka_unit_test(test_mmio_slots_from_the_config_hook),
	    cmocka_unit_test(test_snapshot_devices_and_vmm_writes),
	    cmocka_unit_test(test_stop_while_requests_are_sent),
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
