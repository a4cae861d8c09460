/* Firecracker's Uffd memory backend, VMM side (docs/snapshots.md "Uffd
 * backend"): guest memory registered with a userfaultfd (MISSING mode,
 * UFFD_FEATURE_EVENT_REMOVE as Firecracker asks), then one message to the page
 * server's Unix socket: a JSON array of GuestRegionUffdMapping and the uffd as
 * SCM_RIGHTS.  After it nothing more is said on the socket, and the server may
 * close it.  The server's death is seen through a pidfd of the socket's peer;
 * the uffd's fault queue is the server's alone until then. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snap_priv.h"
#include "seccomp/sqb_confine.h"

struct snap_uffd_watch {
	pthread_t thread;
	int pidfd; /* the page server's process */
	pid_t pid;
	int quit_fd; /* eventfd: the VM is going away */
	void *zero;  /* huge_pages 2M: a zero page to copy in (no ZEROPAGE on hugetlb) */
	uint64_t zero_len;
};

static int uffd_open(struct sqb_vm *vm, struct sqb_diag *diag)
{
	/* Firecracker requires EVENT_REMOVE so a handler sees the VMM's
	 * MADV_DONTNEED (balloon); handlers may rely on getting it */
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), err;

	if (fd < 0) {
		err = -errno;
		sqb_snap_diag(diag, "uffd", "userfaultfd: %s", strerror(errno));
		return err;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		sqb_snap_diag(diag, "uffd",
			      "userfaultfd API with UFFD_FEATURE_EVENT_REMOVE (which Firecracker's "
			      "protocol requests): %s",
			      strerror(errno));
		close(fd);
		return err;
	}
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct uffdio_register reg = {
		    .range = {(uint64_t)(uintptr_t)vm->mem.regions[i].host,
			      vm->mem.regions[i].size},
		    .mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
			err = -errno;
			sqb_snap_diag(diag, "uffd", "userfaultfd register: %s", strerror(errno));
			close(fd);
			return err;
		}
	}
	return fd;
}

/* What Firecracker >= 1.12 sends: page_size and the deprecated page_size_kib,
 * both in BYTES (the older field's name is wrong; 1.7-1.11 handlers read it
 * as bytes): 4096, or 2097152 with huge_pages 2M (the server's UFFDIO_COPY
 * must then fill whole 2 MiB pages).  offset: the region's place in the
 * guest memory file. */
static int send_handshake(int sock, struct sqb_vm *vm, int uffd, const char *ident)
{
	char js[2048], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr mh = {0};
	struct cmsghdr *cm;
	size_t pos = 0;
	ssize_t n;

	pos += (size_t)snprintf(js + pos, sizeof(js) - pos, "[");
	for (unsigned int i = 0; i < vm->mem.nregions; i++)
		pos += (size_t)snprintf(
		    js + pos, sizeof(js) - pos,
		    "%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,"
		    "\"page_size\":%llu,\"page_size_kib\":%llu%s}",
		    i ? "," : "", (unsigned long long)(uintptr_t)vm->mem.regions[i].host,
		    (unsigned long long)vm->mem.regions[i].size,
		    (unsigned long long)vm->mem.regions[i].fd_offset,
		    (unsigned long long)vm->mem.page_size, (unsigned long long)vm->mem.page_size,
		    ident);
	pos += (size_t)snprintf(js + pos, sizeof(js) - pos, "]");
	iov = (struct iovec){js, pos};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &uffd, sizeof(int));
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == pos ? 0 : -EIO;
}

int sqb_snap_uffd_connect(struct sqb_vm *vm, struct sqb_snapstate *ss, const char *path,
			  const sqb_snap *state, struct sqb_diag *diag)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const struct sqb_snap_info *si = state ? sqb_snap_get_info(state) : NULL;
	char ident[128] = "", u[37], d[33];
	int sock, uffd, err;

	/* squib's extension of the handshake (docs/snapshots.md): the identity
	 * of the memory file the state pairs with ([F-46]), so squib-pager can
	 * refuse to serve another snapshot's memory; other handlers ignore it */
	if (si && !sqb_uuid_is_zero(&si->companion_uuid)) {
		sqb_uuid_format(&si->companion_uuid, u);
		sqb_digest_format(&si->companion_digest, d);
		snprintf(ident, sizeof(ident),
			 ",\"squib_memory_uuid\":\"%s\",\"squib_memory_digest\":\"%s\"", u, d);
	}

	if (strlen(path) >= sizeof(sa.sun_path)) {
		sqb_snap_diag(diag, "mem_backend", "backend_path is too long for a Unix socket");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		sqb_snap_diag(diag, "mem_backend", "cannot reach the page server at %s: %s", path,
			      strerror(errno));
		close(sock);
		return err;
	}
	uffd = uffd_open(vm, diag);
	if (uffd < 0) {
		close(sock);
		return uffd;
	}
	err = send_handshake(sock, vm, uffd, ident);
	if (err) {
		sqb_snap_diag(diag, "mem_backend", "handshake with the page server failed: %s",
			      strerror(-err));
		close(uffd);
		close(sock);
		return err;
	}
	/* the socket stays open, unread, for the VM's life (Firecracker >= 1.12
	 * does the same); the server may close its end at any time */
	ss->uffd = uffd;
	ss->pager_fd = sock;
	ss->huge_page = vm->mem.page_size != 4096;
	return 0;
}

/* Resolve the fault at page (a host page of size ps) with zeros: hugetlb
 * memory has no UFFDIO_ZEROPAGE, so a 2 MiB zero page is copied in. */
static int zero_fill(int uffd, uint64_t page, uint64_t ps, const void *zero)
{
	struct uffdio_zeropage z = {.range = {page, ps}};
	struct uffdio_copy c = {.dst = page, .src = (uint64_t)(uintptr_t)zero, .len = ps};

	if (ps == 4096)
		return ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	return ioctl(uffd, UFFDIO_COPY, &c);
}

/* Reached only once the page server process has exited: nobody else reads
 * the uffd any more.  A fault now means guest memory that will never arrive:
 * stop the VM, then resolve the fault with a zero page so the blocked vCPU
 * can leave the kernel.  Its stop request and kick are already pending, so it
 * exits before the guest runs again. */
static void serve_orphans(struct sqb_vm *vm, struct sqb_snapstate *ss, struct snap_uffd_watch *w)
{
	struct pollfd p[2] = {{ss->uffd, POLLIN, 0}, {w->quit_fd, POLLIN, 0}};
	uint64_t again[64]; /* zero pages refused with EAGAIN (a REMOVE was queued) */
	uint64_t ps = vm->mem.page_size;
	unsigned int nagain = 0;
	int failed = 0;

	/* a fault the server read but never answered (it died, or gave up on a
	 * corrupt chunk) is gone from the queue: wake every waiter so its
	 * access faults again and reaches us */
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct uffdio_range r = {(uint64_t)(uintptr_t)vm->mem.regions[i].host,
					 vm->mem.regions[i].size};

		if (ioctl(ss->uffd, UFFDIO_WAKE, &r) < 0)
			sqb_debug("UFFDIO_WAKE: %s", strerror(errno));
	}
	for (;;) {
		struct uffd_msg msg;
		int rc = poll(p, 2, 100);

		if (rc > 0 && p[1].revents)
			return;
		while (read(ss->uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
			if (msg.event != UFFD_EVENT_PAGEFAULT)
				continue; /* REMOVE: the page reads zero anyway */
			if (!failed) {
				sqb_err(
				    "guest touched 0x%llx after the page server hung up (pid %d "
				    "exited): stopping the VM",
				    (unsigned long long)msg.arg.pagefault.address, (int)w->pid);
				sqb_vm_fail(vm, SQB_VM_STOP_HOST_ERROR,
					    "the Uffd page server exited before serving all guest "
					    "memory");
				failed = 1;
			}
			if (nagain < 64)
				again[nagain++] = msg.arg.pagefault.address & ~(ps - 1);
		}
		for (unsigned int i = 0; i < nagain;) {
			if (zero_fill(ss->uffd, again[i], ps, w->zero) < 0 && errno == EAGAIN) {
				i++; /* retried after the next read drains the queue */
				continue;
			}
			again[i] = again[--nagain];
		}
	}
}

static void *watch_thread(void *arg)
{
	struct sqb_vm *vm = arg;
	struct sqb_snapstate *ss = vm->snap;
	struct snap_uffd_watch *w = ss->watch;
	struct pollfd p[2] = {{w->pidfd, POLLIN, 0}, {w->quit_fd, POLLIN, 0}};

	if (sqb_confine_thread(SQB_CONFINE_WATCH) < 0)
		sqb_err("Uffd watcher: cannot install its seccomp filter; it keeps its creator's");
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		if (p[0].revents)
			break;
	}
	sqb_warn("the Uffd page server (pid %d) exited; pages it never served will stop the VM",
		 (int)w->pid);
	serve_orphans(vm, ss, w);
	return NULL;
}

/* The page server is the process that listens on the socket; SO_PEERCRED
 * names it (as seen at connect time). */
static int peer_pidfd(int sock, pid_t *pid)
{
	struct ucred uc = {0};
	socklen_t len = sizeof(uc);
	int fd = -1;

	*pid = 0;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) || uc.pid <= 0)
		return -ESRCH;
	*pid = uc.pid;
#ifdef SYS_pidfd_open
	fd = (int)syscall(SYS_pidfd_open, uc.pid, 0);
#else
	errno = ENOSYS;
#endif
	return fd < 0 ? -errno : fd;
}

int sqb_snap_uffd_watch(struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	struct snap_uffd_watch *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->pidfd = peer_pidfd(ss->pager_fd, &w->pid);
	if (w->pidfd < 0) {
		/* another PID namespace or no pidfd_open: no way to tell a dead
		 * server without competing for its events; Firecracker's case */
		sqb_warn("cannot watch the Uffd page server (%s): if it dies, vCPUs touching "
			 "memory it never served wait until squib is stopped",
			 w->pid ? strerror(-w->pidfd) : "its pid is not visible here");
		free(w);
		return 0;
	}
	if (vm->mem.page_size != 4096) { /* here: the watcher's filter has no mmap */
		w->zero = mmap(NULL, vm->mem.page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		if (w->zero == MAP_FAILED) {
			err = -errno;
			w->zero = NULL;
			goto fail;
		}
		w->zero_len = vm->mem.page_size;
	}
	w->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->quit_fd < 0) {
		err = -errno;
		goto fail;
	}
	ss->watch = w;
	err = -pthread_create(&w->thread, NULL, watch_thread, vm);
	if (!err)
		return 0;
	ss->watch = NULL;
	close(w->quit_fd);
fail:
	if (w->zero)
		munmap(w->zero, w->zero_len);
	close(w->pidfd);
	free(w);
	return err;
}

void sqb_snap_uffd_unwatch(struct sqb_snapstate *ss)
{
	struct snap_uffd_watch *w = ss->watch;
	uint64_t one = 1;

	if (!w)
		return;
	if (write(w->quit_fd, &one, sizeof(one)) < 0)
		sqb_debug("uffd watcher: eventfd write: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	close(w->quit_fd);
	close(w->pidfd);
	if (w->zero)
		munmap(w->zero, w->zero_len);
	free(w);
	ss->watch = NULL;
}

/* During sqb_vm_stop(): a vCPU that waits in the kernel for a page the server
 * will not send (alive but not serving) would make the join hang, and with it
 * SIGTERM.  Give the vCPUs a moment to leave on their own; then unregister
 * guest memory, which wakes every waiter (the fault is retried as a plain
 * memfd fault), and the pending stop makes the vCPU leave KVM_RUN. */
void sqb_snap_uffd_release(struct sqb_vm *vm)
{
	struct sqb_snapstate *ss = vm->snap;
	unsigned int started = 0;
	struct timespec end;
	int err = 0;

	if (!ss || ss->uffd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_nsec += 200000000L;
	end.tv_sec += end.tv_nsec / 1000000000L;
	end.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&vm->lock);
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		started += vm->vcpus[i].thread_started ? 1 : 0;
	while (vm->nexited < started && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&vm->cond, &vm->lock, &end);
	started = vm->nexited < started;
	pthread_mutex_unlock(&vm->lock);
	if (!started)
		return;
	sqb_warn("a vCPU still waits for guest memory from the Uffd page server; releasing it");
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct uffdio_range r = {(uint64_t)(uintptr_t)vm->mem.regions[i].host,
					 vm->mem.regions[i].size};

		if (ioctl(ss->uffd, UFFDIO_UNREGISTER, &r) < 0)
			sqb_debug("UFFDIO_UNREGISTER: %s", strerror(errno));
	}
}
