/* runtime_floor: the bare-KVM floor for runtime_bench — open /dev/kvm,
 * create a VM with MIB MiB of RAM (default 32, as squib's run) and one vCPU
 * in flat 32-bit mode, run code
 * that writes one byte to 0x3f8 (the "first serial byte"), then N writes to
 * port 0x80, then HLT.  No irqchip, no devices, no threads: the minimum. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long rss_kib(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) : 10000;
	size_t msz = (argc > 2 ? strtoul(argv[2], NULL, 0) : 32) << 20;
	uint64_t t0, t_first = 0, t_end;
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_run *run;
	uint8_t *mem, *c;
	int kvm, vm, vcpu, i = 0, nexits = 0;

	t0 = now_ns();
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("runtime_floor: /dev/kvm");
		return 77;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (msz < (2 << 20))
		msz = 2 << 20;
	mem = mmap(NULL, msz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region reg = {0, 0, 0, msz, (uint64_t)(uintptr_t)mem};
	if (vm < 0 || mem == MAP_FAILED || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &reg) < 0) {
		perror("runtime_floor: VM setup");
		return 1;
	}
	c = mem + 0x1000;
	c[i++] = 0x66, c[i++] = 0xba, c[i++] = 0xf8, c[i++] = 0x03; /* mov dx, 0x3f8 */
	c[i++] = 0xb0, c[i++] = 'F', c[i++] = 0xee;		    /* mov al,'F'; out dx,al */
	c[i++] = 0xb9;						    /* mov ecx, n */
	memcpy(c + i, &n, 4);
	i += 4;
	c[i++] = 0xe6, c[i++] = 0x80;	     /* 1: out 0x80, al */
	c[i++] = 0x49;			     /* dec ecx */
	c[i++] = 0x75, c[i++] = (uint8_t)-5; /* jnz 1b */
	c[i++] = 0xf4;			     /* hlt */
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE,
		   MAP_SHARED, vcpu, 0);
	ioctl(vcpu, KVM_GET_SREGS, &s);
	struct kvm_segment cs = {
	    .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1, .db = 1, .s = 1, .g = 1};
	struct kvm_segment ds = cs;
	ds.type = 3;
	ds.selector = 0x10;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr0 |= 1;
	memset(&r, 0, sizeof(r));
	r.rip = 0x1000;
	r.rflags = 2;
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu, KVM_SET_REGS, &r) < 0) {
		perror("runtime_floor: vCPU setup");
		return 1;
	}
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			perror("runtime_floor: KVM_RUN");
			return 1;
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			if (!t_first)
				t_first = now_ns();
			else
				nexits++;
			continue;
		}
		break;
	}
	t_end = now_ns();
	if (run->exit_reason != KVM_EXIT_HLT || (uint32_t)nexits != n) {
		fprintf(stderr, "runtime_floor: unexpected exit %u after %d port writes\n",
			run->exit_reason, nexits);
		return 1;
	}
	printf("floor first_exit_us=%.1f exit_ns=%.0f total_us=%.1f rss_kib=%ld\n",
	       (t_first - t0) / 1e3, n ? (double)(t_end - t_first) / n : 0.0, (t_end - t0) / 1e3,
	       rss_kib("VmRSS:"));
	return 0;
}
