/* The per-thread allow-lists (docs/security.md "Seccomp lists").  Grown from
 * measurement: squib's runtime, snapshot and restore tests ran under
 * `strace -f` and each thread's calls were collected by kind; calls of
 * paths those tests do not reach (virtio-blk/net/vsock I/O, terminals) were
 * added from the code and are marked "not measured". */
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <termios.h>

#include <stdint.h>
#include <stdio.h>

#include "seccomp_build.h"
#include "seccomp_lists.h"

/* The lists read best as dense tables. */
/* clang-format off */
#define ANY(n) {#n, SQB_SC_ANY, NULL}
#define NOEXEC(n) {#n, SQB_SC_NOEXEC, NULL}
#define END {NULL, SQB_SC_ANY, NULL}

/* The logger names the calling thread (ctl_log.c): every thread may read
 * its own name; a vCPU logs the boot timer's line (dev_boot_timer.c). */
static const unsigned long get_name_prctls[] = {PR_GET_NAME, 0};

/* Every thread: exit, memory (never executable), locks, time, signals
 * (the vCPU kick, the SIGSYS report), and stdio/log writes. */
const struct sqb_sc_rule sqb_sc_common[] = {
    {"prctl", SQB_SC_ARG0_EQ, get_name_prctls},
    ANY(exit), ANY(exit_group), ANY(rt_sigreturn), ANY(rt_sigprocmask), ANY(futex),
    ANY(read), ANY(write), ANY(close), ANY(madvise), ANY(munmap), NOEXEC(mmap),
    NOEXEC(mprotect), ANY(brk), ANY(getpid), ANY(gettid), ANY(tgkill),
    ANY(clock_gettime), ANY(clock_nanosleep), ANY(nanosleep), ANY(sched_yield),
    ANY(restart_syscall), ANY(getrandom),
    ANY(sched_getaffinity), /* glibc malloc sizing its arenas in a new thread */
    ANY(sigaltstack), /* sanitizer runtimes on a new thread */
    /* glibc's realloc moves a large (mmapped) block with mremap: a lazy
     * restore's fetch queue grows on whichever thread touches guest memory
     * first (the event loop's devices after a default first load) */
    ANY(mremap),
    END,
};

/* The vCPU: create, run, save and load itself (KVM vCPU ioctls); device
 * register accesses that write to eventfds, stdout or a log. */
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN, KVM_CREATE_VCPU, KVM_GET_VCPU_MMAP_SIZE, KVM_CHECK_EXTENSION,
    KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_IRQ_LINE,
    /* --enable-pci: an MSI-X unmask sends the messages pending (not measured) */
    KVM_SIGNAL_MSI,
#if defined(__aarch64__)
    /* arm64 (docs/arm64.md, not measured): init, ONE_REG registers, the
     * vGIC's CPU-interface registers through its device attributes */
    KVM_ARM_VCPU_INIT, KVM_ARM_PREFERRED_TARGET, KVM_GET_ONE_REG, KVM_SET_ONE_REG,
    KVM_GET_REG_LIST, KVM_GET_DEVICE_ATTR, KVM_SET_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR,
#else
    KVM_GET_SUPPORTED_CPUID, KVM_GET_MSR_INDEX_LIST, KVM_SET_CPUID2, KVM_GET_CPUID2,
    KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_FPU, KVM_SET_FPU,
    KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_XSAVE,
    KVM_SET_XSAVE, KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,
    KVM_GET_TSC_KHZ, KVM_SET_TSC_KHZ,
    KVM_KVMCLOCK_CTRL, /* at a pause and after a load (vmm.c vcpu_clock_stopped) */
#ifdef KVM_GET_XSAVE2
    KVM_GET_XSAVE2,
#endif
#endif
    0,
};
/* glibc's malloc probes /sys/devices/system/cpu/online in a new thread and
 * copes with a refusal: the vCPU gets EACCES, never a file. */
static const struct sqb_sc_rule vcpu[] = {
    {"ioctl", SQB_SC_IOCTLS, vcpu_ioctls}, {"openat", SQB_SC_EACCES, NULL},
    ANY(writev), ANY(pread64), ANY(pwrite64),
    /* a driver reset (a Status write) of an Async virtio-blk waits for its
     * requests in flight (virtio 1.x 2.4): io_uring_enter, no setup */
    ANY(io_uring_enter),
    /* a vhost-user drive is handed to its backend when the driver writes
     * DRIVER_OK, and taken back at a reset: messages on the backend's
     * socket, each reply awaited with a deadline (runtime.vhost_guests) */
    ANY(sendmsg), ANY(recvmsg), ANY(poll), ANY(ppoll),
    /* a driver reset of virtio-vsock (Status 0, an MMIO write) closes its
     * host connections: each socket leaves the device's epoll set, and its
     * timer is re-armed (runtime.netvsock_guests: without these the guest
     * could end squib with SIGSYS) */
    ANY(epoll_ctl), ANY(timerfd_settime),
    END,
};

/* The event loop: device fds.  Block/net/vsock I/O; virtio-net sets the
 * tap's offloads (TUNSETOFFLOAD) when it first moves a frame after the
 * driver acked its features (measured: runtime.netvsock_guests); virtio-mem
 * adds and removes its slots' memslots when a PLUG or UNPLUG needs it
 * (runtime.memhp_guests). */
static const unsigned long evloop_ioctls[] = {KVM_IRQ_LINE, FIONBIO, FIONREAD, TUNSETOFFLOAD,
					      KVM_SET_USER_MEMORY_REGION, KVM_SIGNAL_MSI, 0};
static const struct sqb_sc_rule evloop[] = {
    ANY(epoll_wait), ANY(epoll_pwait), ANY(epoll_ctl), ANY(timerfd_settime),
    ANY(timerfd_gettime), ANY(readv), ANY(writev), ANY(pread64), ANY(pwrite64),
    ANY(preadv), ANY(pwritev), ANY(preadv2), ANY(pwritev2), ANY(lseek), ANY(fsync),
    ANY(fdatasync), ANY(fallocate), ANY(recvmsg), ANY(sendmsg), ANY(recvfrom), ANY(sendto),
    ANY(accept4), ANY(connect), ANY(shutdown), ANY(fcntl), ANY(fstat), ANY(newfstatat),
    {"socket", SQB_SC_AF_UNIX, NULL}, {"ioctl", SQB_SC_IOCTLS, evloop_ioctls},
    {"openat", SQB_SC_EACCES, NULL},
    /* Async virtio-blk: submit and reap on the device's ring (the ring and
     * its restrictions are set up on the API thread) */
    ANY(io_uring_enter),
    END,
};

/* The Uffd watcher: waits on the page server's pidfd, then serves the
 * missing pages itself (UFFDIO_ZEROPAGE/WAKE) and stops the VM. */
static const unsigned long watch_ioctls[] = {UFFDIO_ZEROPAGE, UFFDIO_WAKE, UFFDIO_COPY,
					     UFFDIO_UNREGISTER, 0};
static const struct sqb_sc_rule watch[] = {
    ANY(poll), ANY(ppoll), ANY(eventfd2), ANY(writev), ANY(pread64),
    {"ioctl", SQB_SC_IOCTLS, watch_ioctls}, {"openat", SQB_SC_EACCES, NULL}, END,
};

/* The API (main) thread does everything else: the API socket, VM set-up
 * (KVM VM ioctls), snapshot files, lazy restore, and it creates the other
 * threads, which keep its filter under their own: its list is the union. */
static const unsigned long api_ioctls[] = {
    KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, KVM_GET_DIRTY_LOG,
    KVM_CLEAR_DIRTY_LOG, KVM_ENABLE_CAP, KVM_IRQFD, KVM_IOEVENTFD,
#if defined(__aarch64__)
    KVM_CREATE_DEVICE, /* the vGICv3 (not measured) */
#else
    KVM_CREATE_IRQCHIP, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP, KVM_CREATE_PIT2, KVM_GET_PIT2,
    KVM_SET_PIT2, KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR,
#endif
    UFFDIO_API, UFFDIO_REGISTER, UFFDIO_UNREGISTER, UFFDIO_COPY, UFFDIO_ZEROPAGE,
    UFFDIO_WAKE, UFFDIO_WRITEPROTECT,
    /* not measured: terminals on stdin, taps (virtio-net) */
    TCGETS, TCSETS, TCSETSW, TIOCGWINSZ, FIONBIO, FIONREAD, TUNSETIFF, TUNGETIFF,
    TUNSETOFFLOAD, TUNSETVNETHDRSZ, TUNGETFEATURES,
    0,
};
/* ASan builds: LeakSanitizer stops the world at exit from the API thread (a
 * clone that ptraces the others); squib's release build allows none of it. */
#if defined(__SANITIZE_ADDRESS__)
#define SQB_SC_SANITIZER 1
#endif
static const unsigned long api_prctls[] = {
    PR_SET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NAME,
#ifdef SQB_SC_SANITIZER
    PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_PTRACER,
#endif
    0,
};
static const struct sqb_sc_rule api[] = {
    {"ioctl", SQB_SC_IOCTLS, api_ioctls}, {"ioctl", SQB_SC_IOCTLS, vcpu_ioctls},
    {"ioctl", SQB_SC_IOCTLS, evloop_ioctls}, {"ioctl", SQB_SC_IOCTLS, watch_ioctls},
    {"prctl", SQB_SC_ARG0_EQ, api_prctls}, {"socket", SQB_SC_AF_UNIX, NULL},
    ANY(seccomp), /* the other threads add their filters */
    /* threads */
    ANY(clone3), ANY(clone), ANY(set_robust_list), ANY(rseq), ANY(sched_setscheduler),
    ANY(sched_getaffinity), ANY(prlimit64),
    /* API socket and page-server connections */
    ANY(bind), ANY(listen), ANY(accept4), ANY(connect), ANY(getsockopt), ANY(setsockopt),
    ANY(sendmsg), ANY(recvmsg), ANY(sendto), ANY(recvfrom), ANY(shutdown), ANY(socketpair),
    /* waiting */
    ANY(poll), ANY(ppoll), ANY(epoll_create1), ANY(epoll_ctl), ANY(epoll_wait),
    ANY(epoll_pwait), ANY(eventfd2), ANY(signalfd4), ANY(timerfd_create),
    ANY(timerfd_settime), ANY(timerfd_gettime), ANY(pidfd_open), ANY(rt_sigaction),
    ANY(rt_sigpending), ANY(rt_sigtimedwait),
    /* files: kernels, drives, snapshot state and memory, logs, metrics */
    ANY(openat), ANY(open), ANY(fcntl), ANY(dup), ANY(dup3), ANY(pipe2), ANY(lseek),
    ANY(pread64), ANY(pwrite64), ANY(readv), ANY(writev), ANY(preadv), ANY(pwritev),
    ANY(preadv2), ANY(pwritev2), ANY(fsync), ANY(fdatasync), ANY(sync_file_range),
    ANY(ftruncate), ANY(fallocate), ANY(fstat), ANY(newfstatat), ANY(statx), ANY(fstatfs),
    ANY(statfs), ANY(access), ANY(faccessat), ANY(faccessat2), ANY(readlink),
    ANY(readlinkat), ANY(getdents64), ANY(rename), ANY(renameat), ANY(renameat2),
    ANY(unlink), ANY(unlinkat), ANY(mkdir), ANY(mkdirat), ANY(link), ANY(linkat),
    ANY(fchmod), ANY(flock), ANY(fgetxattr), ANY(fsetxattr), ANY(fremovexattr),
    ANY(copy_file_range), ANY(sendfile), ANY(memfd_create), ANY(userfaultfd), ANY(mremap),
    ANY(mincore), ANY(getcwd), ANY(utimensat), ANY(umask),
    /* Async virtio-blk: its ring's set-up (eventfd, opcode restrictions),
     * drain on quiesce, backing swap and free */
    ANY(io_uring_setup), ANY(io_uring_enter), ANY(io_uring_register),
#ifdef SQB_SC_SANITIZER
    ANY(ptrace), ANY(wait4), ANY(process_vm_readv), ANY(getdents),
#endif
    /* a first load's filler verifies parent layers on a thread pool, whose
     * size glibc's sysconf reads through sysinfo (not measured) */
    ANY(sysinfo),
    /* identity */
    ANY(uname), ANY(getuid), ANY(geteuid), ANY(getgid), ANY(getegid), ANY(getppid),
    END,
};

const struct sqb_sc_rule *const sqb_sc_lists[SQB_CONFINE_NKINDS] = {
    [SQB_CONFINE_API] = api,
    [SQB_CONFINE_VCPU] = vcpu,
    [SQB_CONFINE_EVLOOP] = evloop,
    [SQB_CONFINE_WATCH] = watch,
};
/* clang-format on */

void sqb_sc_diag_set(struct sqb_diag *d, const char *where, const char *fmt, const char *a,
		     const char *b)
{
	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->section, sizeof(d->section), "%s", where);
	snprintf(d->reason, sizeof(d->reason), fmt, a, b);
}
