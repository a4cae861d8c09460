/* A tiny real guest: see dirty_tinyvm.h.  The VMM side is the bare minimum
 * KVM needs on x86 (one vCPU, flat segments straight into KVM_SET_SREGS). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "dirty_tinyvm.h"

#define CODE_GPA  0x1000
#define LIST_GPA  0x2000
#define EXIT_PORT 0x10

/* mov edi,[esi]; inc byte [edi]; add esi,4; dec ecx; jnz loop; out 0x10,al; hlt */
static const uint8_t guest_code[] = {0x8B, 0x3E, 0xFE, 0x07, 0x83,	0xC6, 0x04,
				     0x49, 0x75, 0xF6, 0xE6, EXIT_PORT, 0xF4};

static int set_flat_mode(struct tinyvm *t)
{
	struct kvm_sregs s;
	struct kvm_segment cs = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 8,
				 .type = 11,
				 .present = 1,
				 .db = 1,
				 .s = 1,
				 .g = 1};
	struct kvm_segment ds = cs;

	if (ioctl(t->vcpu, KVM_GET_SREGS, &s) != 0)
		return -errno;
	ds.selector = 16;
	ds.type = 3;
	s.cs = cs;
	s.ds = s.es = s.ss = s.fs = s.gs = ds;
	s.cr0 |= 1; /* PE, no paging */
	return ioctl(t->vcpu, KVM_SET_SREGS, &s) ? -errno : 0;
}

int tinyvm_open(struct tinyvm *t, const struct sqb_dirty_range *ranges, unsigned n)
{
	struct kvm_userspace_memory_region m = {0, 0, 0, 1 << 20, 0};
	int sz, err = -ENOTSUP;

	memset(t, 0, sizeof(*t));
	t->vm = t->vcpu = -1;
	t->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (t->kvm < 0)
		return -ENOTSUP;
	t->vm = ioctl(t->kvm, KVM_CREATE_VM, 0);
	if (t->vm < 0)
		goto fail;
	t->low = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->low == MAP_FAILED) {
		t->low = NULL;
		goto fail;
	}
	memcpy(t->low + CODE_GPA, guest_code, sizeof(guest_code));
	m.userspace_addr = (uintptr_t)t->low;
	if (ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &m) != 0)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		m.slot = ranges[i].kvm_slot;
		m.flags = ranges[i].kvm_flags;
		m.guest_phys_addr = ranges[i].gpa;
		m.memory_size = ranges[i].len;
		m.userspace_addr = (uintptr_t)ranges[i].host;
		if (ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &m) != 0)
			goto fail;
	}
	t->vcpu = ioctl(t->vm, KVM_CREATE_VCPU, 0);
	sz = ioctl(t->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (t->vcpu < 0 || sz <= 0)
		goto fail;
	t->run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	if (t->run == MAP_FAILED) {
		t->run = NULL;
		goto fail;
	}
	err = set_flat_mode(t);
	if (err)
		goto fail;
	return 0;
fail:
	if (err == -ENOTSUP)
		err = errno ? -errno : -EIO;
	tinyvm_close(t);
	return err;
}

int tinyvm_touch(struct tinyvm *t, const uint32_t *gpas, unsigned n)
{
	struct kvm_regs r = {0};

	if (n == 0)
		return 0;
	if (n > TINYVM_MAX_LIST)
		return -E2BIG;
	memcpy(t->low + LIST_GPA, gpas, (size_t)n * 4);
	r.rip = CODE_GPA;
	r.rsi = LIST_GPA;
	r.rcx = n;
	r.rflags = 2;
	if (ioctl(t->vcpu, KVM_SET_REGS, &r) != 0)
		return -errno;
	for (;;) {
		if (ioctl(t->vcpu, KVM_RUN, 0) != 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (t->run->exit_reason == KVM_EXIT_IO && t->run->io.port == EXIT_PORT)
			return 0;
		if (t->run->exit_reason != KVM_EXIT_INTR)
			return -EIO;
	}
}

void tinyvm_close(struct tinyvm *t)
{
	if (t->run)
		munmap(t->run, (size_t)ioctl(t->kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	if (t->vcpu >= 0)
		close(t->vcpu);
	if (t->vm >= 0)
		close(t->vm);
	if (t->low)
		munmap(t->low, 1 << 20);
	if (t->kvm >= 0)
		close(t->kvm);
	memset(t, 0, sizeof(*t));
	t->kvm = t->vm = t->vcpu = -1;
}
