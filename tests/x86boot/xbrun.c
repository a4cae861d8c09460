/* xbrun: a deliberately tiny KVM runner that proves the x86boot loaders
 * boot real Linux (bzImage and PVH vmlinux) on real KVM -- inside the nested
 * test host -- independently of squib's VMM.  In-kernel irqchip and PIT, a
 * 16450-style UART on COM1 (IRQ 4), the i8042 reset line; console to stdout.
 * Not a VMM: runtime/ is.  Exit 0 once --until MARKER is printed (or, with
 * no marker, when the guest resets), 1 on a guest failure, 3 on timeout. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "x86boot.h"

#define MAX_VCPUS 8

static int vm_fd, kvm_fd;
static const char *until;
static struct timespec t0;
static pthread_mutex_t uart_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	int thre_pending;
	char line[512];
	size_t len;
} uart;

static double elapsed(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void finish(int code, const char *why)
{
	fflush(stdout);
	fprintf(stderr, "\nXBRUN %s after %.3f s\n", why, elapsed());
	_exit(code);
}

static void on_alarm(int sig)
{
	(void)sig;
	finish(3, "timeout");
}

static void uart_irq(void)
{
	struct kvm_irq_level l = {.irq = 4, .level = 1};

	ioctl(vm_fd, KVM_IRQ_LINE, &l);
	l.level = 0;
	ioctl(vm_fd, KVM_IRQ_LINE, &l);
}

static void uart_putc(uint8_t c)
{
	putchar(c);
	if (c == '\n') {
		uart.line[uart.len] = 0;
		fflush(stdout);
		if (until && strstr(uart.line, until))
			finish(0, "marker");
		uart.len = 0;
	} else if (uart.len + 1 < sizeof(uart.line)) {
		uart.line[uart.len++] = (char)c;
	}
}

static void uart_io(uint16_t port, int out, uint8_t *v)
{
	int dlab = uart.lcr & 0x80, irq = 0;

	pthread_mutex_lock(&uart_lock);
	switch ((port - 0x3f8) * 2 + !out) {
	case 0: /* THR / DLL */
		if (dlab) {
			uart.dll = *v;
		} else {
			uart_putc(*v);
			uart.thre_pending = 1;
			irq = uart.ier & 2;
		}
		break;
	case 1:
		*v = dlab ? uart.dll : 0;
		break;
	case 2:
		if (dlab) {
			uart.dlm = *v;
		} else {
			uart.ier = *v & 0x0f;
			uart.thre_pending = 1;
			irq = uart.ier & 2;
		}
		break;
	case 3:
		*v = dlab ? uart.dlm : uart.ier;
		break;
	case 5: /* IIR: THR empty is the only interrupt source */
		*v = (uart.thre_pending && (uart.ier & 2)) ? 0x02 : 0x01;
		uart.thre_pending = 0;
		break;
	case 6:
		uart.lcr = *v;
		break;
	case 7:
		*v = uart.lcr;
		break;
	case 8:
		uart.mcr = *v;
		break;
	case 9:
		*v = uart.mcr;
		break;
	case 11:
		*v = 0x60;
		break; /* LSR: transmitter empty */
	case 13:
		*v = 0xb0;
		break; /* MSR: DCD, DSR, CTS */
	case 14:
		uart.scr = *v;
		break;
	case 15:
		*v = uart.scr;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&uart_lock);
	if (irq)
		uart_irq();
}

static void handle_io(struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	int out = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		uint16_t port = run->io.port;

		if (port >= 0x3f8 && port <= 0x3ff && run->io.size == 1)
			uart_io(port, out, data);
		else if (port == 0x64 && out && *data == 0xfe)
			finish(until ? 1 : 0, "guest reset (i8042)");
		else if (!out)
			memset(data, port == 0x64 || port == 0x60 ? 0 : 0xff, run->io.size);
	}
}

struct vcpu {
	int fd, id;
	struct kvm_run *run;
	pthread_t thread;
};

static void *vcpu_loop(void *arg)
{
	struct vcpu *v = arg;

	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			perror("KVM_RUN");
			finish(1, "KVM_RUN failed");
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(v->run);
			break;
		case KVM_EXIT_MMIO:
			if (!v->run->mmio.is_write)
				memset(v->run->mmio.data, 0xff, sizeof(v->run->mmio.data));
			break;
		case KVM_EXIT_HLT:
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			finish(until ? 1 : 0, "system event");
			break;
		default:
			fprintf(stderr, "vCPU %d: exit reason %u\n", v->id, v->run->exit_reason);
			finish(1, "unhandled exit (triple fault or internal error)");
		}
	}
	return NULL;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int l)
{
	*s = (struct kvm_segment){.base = 0,
				  .limit = 0xffffffff,
				  .selector = sel,
				  .type = type,
				  .present = 1,
				  .s = 1,
				  .g = 1,
				  .db = !l,
				  .l = l};
}

static int setup_vcpu(struct vcpu *v, const struct sqb_x86boot_entry *e, struct kvm_cpuid2 *cpuid)
{
	struct kvm_sregs sr;
	struct kvm_regs r = {0};
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	struct kvm_lapic_state lapic;

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *c = &cpuid->entries[i];

		if (c->function == 1) {
			c->ebx = (c->ebx & 0x00ffffff) | ((uint32_t)v->id << 24);
			c->ecx |= 1u << 31; /* hypervisor present */
			if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
				c->ecx |= 1u << 24; /* the in-kernel LAPIC has TSC-deadline */
		}
		if (c->function == 0xb || c->function == 0x1f)
			c->edx = (uint32_t)v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	/* LINT0 ExtINT, LINT1 NMI, as a BIOS leaves them */
	*(uint32_t *)(lapic.regs + 0x350) = (*(uint32_t *)(lapic.regs + 0x350) & ~0x700u) | 0x700;
	*(uint32_t *)(lapic.regs + 0x360) = (*(uint32_t *)(lapic.regs + 0x360) & ~0x700u) | 0x400;
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0 || ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	if (v->id != 0)
		return 0; /* APs wait for INIT/SIPI in the in-kernel LAPIC */
	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	sr.gdt.base = e->gdt_base;
	sr.gdt.limit = e->gdt_limit;
	if (e->mode == SQB_X86BOOT_LONG64) {
		seg(&sr.cs, SQB_X86BOOT_SEL_CODE64, 0xb, 1);
		sr.cr0 = 0x80000011; /* PG | ET | PE */
		sr.cr3 = e->cr3;
		sr.cr4 = 0x20;	 /* PAE */
		sr.efer = 0x500; /* LME | LMA */
	} else {
		seg(&sr.cs, SQB_X86BOOT_SEL_CODE32, 0xb, 0);
		sr.cr0 = 0x11;
		sr.cr4 = 0;
		sr.efer = 0;
	}
	seg(&sr.ds, SQB_X86BOOT_SEL_DATA, 0x3, 0);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	r.rflags = 2;
	r.rip = e->rip;
	r.rsp = e->rsp;
	r.rsi = e->rsi;
	r.rbx = e->rbx;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0 || ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

static struct kvm_cpuid2 *get_cpuid(void)
{
	for (int n = 64; n <= 1024; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		c->nent = (uint32_t)n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			break;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sqb_x86boot_in in = {.ncpus = 1};
	struct sqb_x86boot_mem ram;
	struct sqb_x86boot_entry e;
	struct sqb_diag diag;
	struct vcpu vcpus[MAX_VCPUS];
	struct kvm_pit_config pit = {0};
	struct kvm_userspace_memory_region region;
	struct kvm_cpuid2 *cpuid;
	unsigned long mib = 256, timeout = 120;
	int opt, err, run_size;
	char buf[300];

	while ((opt = getopt(argc, argv, "m:c:i:a:u:t:")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			in.ncpus = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'i':
			in.initrd_path = optarg;
			break;
		case 'a':
			in.cmdline = optarg;
			break;
		case 'u':
			until = optarg;
			break;
		case 't':
			timeout = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: xbrun [-m MiB] [-c CPUS] [-i INITRD] [-a CMDLINE] "
					"[-u MARKER] [-t SECONDS] KERNEL\n");
			return 2;
		}
	}
	if (optind != argc - 1 || in.ncpus < 1 || in.ncpus > MAX_VCPUS || mib < 16 || mib > 3072)
		return fprintf(stderr, "xbrun: bad arguments\n"), 2;
	in.kernel_path = argv[optind];
	if (!in.cmdline)
		in.cmdline = sqb_x86boot_default_cmdline();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	signal(SIGALRM, on_alarm);
	alarm((unsigned int)timeout);

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		return perror("/dev/kvm"), 77;
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0 || ioctl(vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0 ||
	    ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 || ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return perror("KVM VM setup"), 1;
	ram.size = mib << 20;
	ram.gpa = 0;
	ram.host = mmap(NULL, ram.size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram.host == MAP_FAILED)
		return perror("mmap"), 1;
	region =
	    (struct kvm_userspace_memory_region){.slot = 0,
						 .guest_phys_addr = 0,
						 .memory_size = ram.size,
						 .userspace_addr = (uint64_t)(uintptr_t)ram.host};
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return perror("KVM_SET_USER_MEMORY_REGION"), 1;
	in.ram = &ram;
	in.nram = 1;
	err = sqb_x86boot_load(&in, &e, &diag);
	if (err) {
		fprintf(stderr, "xbrun: %s: %s (%s)\n", in.kernel_path, sqb_strerror(err),
			sqb_diag_format(&diag, buf, sizeof(buf)));
		return 1;
	}
	fprintf(stderr, "XBRUN loaded %s: %s entry 0x%llx, %u vCPUs, %lu MiB, %.3f s\n",
		in.kernel_path, e.mode == SQB_X86BOOT_LONG64 ? "bzImage/long64" : "PVH/prot32",
		(unsigned long long)e.rip, in.ncpus, mib, elapsed());
	cpuid = get_cpuid();
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (!cpuid || run_size <= 0)
		return perror("KVM_GET_SUPPORTED_CPUID"), 1;
	for (unsigned int i = 0; i < in.ncpus; i++) {
		struct vcpu *v = &vcpus[i];

		v->id = (int)i;
		v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			return perror("KVM_CREATE_VCPU"), 1;
		v->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED || setup_vcpu(v, &e, cpuid) < 0)
			return perror("vCPU setup"), 1;
	}
	for (unsigned int i = 0; i < in.ncpus; i++)
		pthread_create(&vcpus[i].thread, NULL, vcpu_loop, &vcpus[i]);
	pthread_join(vcpus[0].thread, NULL);
	return 1;
}
