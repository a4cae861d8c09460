/* The virtioblk and virtiorng test guests on /dev/kvm against sqb_virtio,
 * through a deliberately tiny harness (one vCPU, COM1 output, the i8042
 * reset, MMIO exits to the two device windows): proves the guests' drivers
 * and the library agree before the VMM wires the devices in.  Skips (77)
 * without /dev/kvm. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio.h"
#include "x86boot.h"

#define RAM_SIZE (64ull << 20)
#define BLK_BASE 0xd0000000ull
#define RNG_BASE 0xd0001000ull

static int kvm_fd;
static const char *guest_dir;
static int failures;

struct vm {
	int fd, cpu_fd;
	long snap_every; /* >0: stop after this many blk MMIO exits */
	long blk_exits;
	struct kvm_run *run;
	uint8_t *ram;
	sqb_vio_dev *blk, *rng;
	char out[8192];
	size_t out_len;
};

static uint8_t *ram_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	struct vm *vm = opaque;

	(void)write;
	if (len == 0 || gpa + len < gpa || gpa + len > RAM_SIZE)
		return NULL;
	return vm->ram + gpa;
}

static void irq_raise(void *opaque)
{
	(void)opaque; /* the guests poll */
}

static int setup_cpu(struct vm *vm, const struct sqb_x86boot_entry *e)
{
	struct kvm_sregs sr;
	struct kvm_regs r = {0};
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	struct kvm_segment code = {.limit = 0xffffffff,
				   .selector = SQB_X86BOOT_SEL_CODE32,
				   .type = 0xb,
				   .present = 1,
				   .s = 1,
				   .g = 1,
				   .db = 1};
	struct kvm_segment data = code;
	int rc = -1;

	c->nent = 256;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0 ||
	    ioctl(vm->cpu_fd, KVM_SET_CPUID2, c) < 0 || ioctl(vm->cpu_fd, KVM_GET_SREGS, &sr) < 0)
		goto out;
	data.selector = SQB_X86BOOT_SEL_DATA;
	data.type = 0x3;
	sr.gdt.base = e->gdt_base;
	sr.gdt.limit = e->gdt_limit;
	sr.cs = code;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = data;
	sr.cr0 = 0x11;
	sr.cr4 = 0;
	sr.efer = 0;
	r.rflags = 2;
	r.rip = e->rip;
	r.rsp = e->rsp;
	r.rbx = e->rbx;
	r.rsi = e->rsi;
	if (ioctl(vm->cpu_fd, KVM_SET_SREGS, &sr) < 0 || ioctl(vm->cpu_fd, KVM_SET_REGS, &r) < 0)
		goto out;
	rc = 0;
out:
	free(c);
	return rc;
}

static void mmio(struct vm *vm)
{
	uint64_t a = vm->run->mmio.phys_addr;
	uint8_t *d = vm->run->mmio.data;
	unsigned int len = vm->run->mmio.len;

	if (a >= BLK_BASE && a < BLK_BASE + SQB_VIO_MMIO_SIZE && vm->blk) {
		sqb_vio_mmio_access(vm->blk, a - BLK_BASE, d, len, vm->run->mmio.is_write);
		vm->blk_exits++;
	} else if (a >= RNG_BASE && a < RNG_BASE + SQB_VIO_MMIO_SIZE && vm->rng)
		sqb_vio_mmio_access(vm->rng, a - RNG_BASE, d, len, vm->run->mmio.is_write);
	else if (!vm->run->mmio.is_write)
		memset(d, 0xff, len);
}

/* Run to the guest's reset (0), or to the snapshot point (1). */
static int run(struct vm *vm)
{
	for (;;) {
		struct kvm_run *r = vm->run;
		uint8_t *io;

		if (ioctl(vm->cpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		switch (r->exit_reason) {
		case KVM_EXIT_IO:
			io = (uint8_t *)r + r->io.data_offset;
			if (r->io.direction == KVM_EXIT_IO_OUT && r->io.port == 0x3f8) {
				for (uint32_t i = 0; i < r->io.count; i++)
					if (vm->out_len + 1 < sizeof(vm->out))
						vm->out[vm->out_len++] = (char)io[i * r->io.size];
			} else if (r->io.direction == KVM_EXIT_IO_OUT && r->io.port == 0x64 &&
				   io[0] == 0xfe) {
				return 0;
			} else if (r->io.direction == KVM_EXIT_IO_IN) {
				memset(io, r->io.port == 0x3fd ? 0x60 : 0xff,
				       r->io.size * r->io.count);
			}
			break;
		case KVM_EXIT_MMIO:
			mmio(vm);
			if (vm->snap_every && vm->blk_exits % vm->snap_every == 0)
				return 1;
			break;
		default:
			fprintf(stderr, "unexpected exit %u\n", r->exit_reason);
			return -1;
		}
	}
}

/* Create the VM (memory, irqchip, one vCPU) over vm->ram. */
static int vm_create(struct vm *vm)
{
	struct kvm_userspace_memory_region reg;
	uint64_t idmap = 0xfffbc000;

	vm->fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return -1;
	reg = (struct kvm_userspace_memory_region){0, 0, 0, RAM_SIZE, (uint64_t)(uintptr_t)vm->ram};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0 ||
	    ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0 ||
	    ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 ||
	    ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -1;
	vm->cpu_fd = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vm->cpu_fd < 0)
		return -1;
	vm->run = mmap(NULL, (size_t)ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0),
		       PROT_READ | PROT_WRITE, MAP_SHARED, vm->cpu_fd, 0);
	return vm->run == MAP_FAILED ? -1 : 0;
}

/* Boot guest.elf with cmdline; runs to the reset or the snapshot point. */
static int boot(struct vm *vm, const char *guest, const char *cmdline)
{
	char path[1024];
	struct sqb_x86boot_mem ram;
	struct sqb_x86boot_mmio_dev devs[2] = {{BLK_BASE, 0x1000, 5}, {RNG_BASE, 0x1000, 6}};
	struct sqb_x86boot_in in = {
	    .cmdline = cmdline, .nram = 1, .ncpus = 1, .mmio = devs, .nmmio = 2};
	struct sqb_x86boot_entry e;
	struct sqb_diag diag;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", guest_dir, guest);
	vm->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->ram == MAP_FAILED || vm_create(vm))
		return -1;
	ram = (struct sqb_x86boot_mem){vm->ram, 0, RAM_SIZE};
	in.kernel_path = path;
	in.ram = &ram;
	rc = sqb_x86boot_load(&in, &e, &diag);
	if (rc) {
		fprintf(stderr, "%s: %s\n", path, sqb_strerror(rc));
		return -1;
	}
	if (setup_cpu(vm, &e))
		return -1;
	rc = run(vm);
	vm->out[vm->out_len] = 0;
	return rc;
}

static void vm_free(struct vm *vm)
{
	sqb_vio_dev_free(vm->blk);
	sqb_vio_dev_free(vm->rng);
	close(vm->cpu_fd);
	close(vm->fd);
	munmap(vm->ram, RAM_SIZE);
	free(vm);
}

static void expect(const char *name, struct vm *vm, int rc, const char *want)
{
	int ok = rc == 0 && strstr(vm->out, want) != NULL;

	printf("%s %s\n", ok ? "PASS" : "FAIL", name);
	if (!ok) {
		printf("  wanted \"%s\"; guest printed:\n%s\n", want, vm->out);
		failures++;
	}
}

static struct vm *vm_new(int blk_fd, int ro, int rng)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct sqb_vio_host host = {{vm, ram_map}, {vm, irq_raise}, {0}, {0}};
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;

	if (blk_fd >= 0) {
		o.fd = blk_fd;
		o.read_only = ro;
		o.cache = SQB_VIO_CACHE_WRITEBACK;
		o.drive_id = "guest-disk";
		if (sqb_vio_blk_new(&vm->blk, &host, &o, NULL))
			abort();
	}
	if (rng && sqb_vio_rng_new(&vm->rng, &host, NULL))
		abort();
	return vm;
}

/* Snapshot and load in one process: finish the pending exit, take the
 * registers, a copy of RAM and the device state; destroy the VM; build a new
 * one that goes on from the same instruction with a restored device. */
static struct vm *migrate(struct vm *old, int blk_fd)
{
	struct kvm_regs r;
	struct kvm_sregs sr;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	struct sqb_diag diag;
	uint8_t *st;
	size_t len;
	struct vm *vm;

	/* KVM completes an MMIO read on the next entry: enter once, exit at once. */
	old->run->immediate_exit = 1;
	if (ioctl(old->cpu_fd, KVM_RUN, 0) == 0 || errno != EINTR)
		return NULL;
	old->run->immediate_exit = 0;
	if (ioctl(old->cpu_fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(old->cpu_fd, KVM_GET_SREGS, &sr) < 0 || sqb_vio_quiesce(old->blk) ||
	    sqb_vio_dev_save(old->blk, &st, &len))
		return NULL;
	vm = vm_new(blk_fd, 0, 0);
	vm->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->ram == MAP_FAILED)
		return NULL;
	memcpy(vm->ram, old->ram, RAM_SIZE);
	memcpy(vm->out, old->out, old->out_len);
	vm->out_len = old->out_len;
	vm->snap_every = old->snap_every;
	vm->blk_exits = old->blk_exits;
	vm_free(old);
	c->nent = 256;
	if (vm_create(vm) || ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0 ||
	    ioctl(vm->cpu_fd, KVM_SET_CPUID2, c) < 0 || ioctl(vm->cpu_fd, KVM_SET_SREGS, &sr) < 0 ||
	    ioctl(vm->cpu_fd, KVM_SET_REGS, &r) < 0)
		return NULL;
	free(c);
	if (sqb_vio_dev_restore(vm->blk, SQB_VIO_STATE_VERSION, st, len, &diag)) {
		fprintf(stderr, "restore: %s\n", diag.reason);
		return NULL;
	}
	free(st);
	sqb_vio_dev_poll(vm->blk); /* [F-108] */
	return vm;
}

static void on_alarm(int sig)
{
	(void)sig;
	fprintf(stderr, "test_virtio_guests: timeout\n");
	_exit(1);
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/sqb_vio_guest.XXXXXX";
	struct vm *vm;
	int fd, rc;

	if (argc != 2)
		return fprintf(stderr, "usage: %s GUEST_DIR\n", argv[0]), 2;
	guest_dir = argv[1];
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("SKIP: /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	signal(SIGALRM, on_alarm);
	alarm(100);
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 1 << 20))
		return perror("temp disk"), 1;
	unlink(path);

	vm = vm_new(fd, 0, 0);
	rc = boot(vm, "virtioblk.elf", "mode=rw seed=3 sectors=16");
	expect("virtioblk mode=rw", vm, rc, "VBLK DONE pass=7 fail=0");
	expect("virtioblk GET_ID", vm, rc, "VBLK id=guest-disk");
	vm_free(vm);

	/* A new VM over the same disk sees the data (the snapshot tests' mode). */
	vm = vm_new(fd, 0, 0);
	rc = boot(vm, "virtioblk.elf", "mode=verify seed=3 sectors=16");
	expect("virtioblk mode=verify", vm, rc, "VBLK DONE pass=3 fail=0");
	vm_free(vm);
	vm = vm_new(fd, 0, 0);
	rc = boot(vm, "virtioblk.elf", "mode=verify seed=4 sectors=16");
	expect("virtioblk mode=verify, wrong seed fails", vm, rc, "VBLK verify FAIL");
	vm_free(vm);

	vm = vm_new(fd, 1, 0);
	rc = boot(vm, "virtioblk.elf", "mode=ro");
	expect("virtioblk mode=ro", vm, rc, "VBLK DONE pass=5 fail=0");
	vm_free(vm);

	vm = vm_new(-1, 0, 0);
	rc = boot(vm, "virtioblk.elf", "mode=rw");
	expect("virtioblk without a device", vm, rc, "VBLK probe FAIL");
	vm_free(vm);

	/* Snapshot + load every 7 register accesses of a write/flush/read
	 * loop: the guest checks its own data across all the loads. */
	{
		int loads = 0;
		vm = vm_new(fd, 0, 0);
		vm->snap_every = 7;
		rc = boot(vm, "virtioblk.elf", "mode=loop rounds=12 seed=9 sectors=8");
		while (rc == 1 && vm) {
			vm = migrate(vm, fd);
			loads++;
			if (vm) {
				rc = run(vm);
				vm->out[vm->out_len] = 0;
			}
		}
		if (!vm) {
			printf("FAIL virtioblk snapshot/load: migrate failed after %d loads\n",
			       loads);
			failures++;
		} else {
			printf("     %d loads\n", loads);
			expect("virtioblk snapshot/load mid-stream", vm, loads > 5 ? rc : -1,
			       "VBLK DONE pass=3 fail=0");
			vm_free(vm);
		}
	}

	vm = vm_new(-1, 0, 1);
	rc = boot(vm, "virtiorng.elf", "");
	expect("virtiorng", vm, rc, "VRNG DONE pass=6 fail=0");
	vm_free(vm);

	close(fd);
	close(kvm_fd);
	return failures ? 1 : 0;
}
