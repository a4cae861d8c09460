/* Firecracker's Uffd memory backend, VMM side: guest memory registered with
 * a userfaultfd (MISSING mode), then one message to the page server's Unix
 * socket: a JSON array of GuestRegionUffdMapping and the uffd as SCM_RIGHTS.
 * The page server (squib-pager or any Firecracker handler) fills faults.
 * A watcher notices the server hanging up; from then on the first access to
 * a page it never served stops the VM (docs/snapshots.md). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "snap_priv.h"

static int uffd_open(struct sqb_vm *vm, struct sqb_diag *diag)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int err = -errno;
		sqb_snap_diag(diag, "uffd", "userfaultfd: %s", strerror(errno));
		return err;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		goto fail;
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct uffdio_register reg = {
		    .range = {(uint64_t)(uintptr_t)vm->mem.regions[i].host,
			      vm->mem.regions[i].size},
		    .mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
			goto fail;
	}
	return fd;
fail:
	sqb_snap_diag(diag, "uffd", "userfaultfd set-up: %s", strerror(errno));
	{
		int err = -errno;
		close(fd);
		return err;
	}
}

static int send_handshake(int sock, struct sqb_vm *vm, int uffd)
{
	char js[1024], cbuf[CMSG_SPACE(sizeof(int))];
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
		    "\"page_size\":4096,\"page_size_kib\":4}",
		    i ? "," : "", (unsigned long long)(uintptr_t)vm->mem.regions[i].host,
		    (unsigned long long)vm->mem.regions[i].size,
		    (unsigned long long)vm->mem.regions[i].fd_offset);
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
			  struct sqb_diag *diag)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int sock, uffd, err;

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
	err = send_handshake(sock, vm, uffd);
	if (err) {
		sqb_snap_diag(diag, "mem_backend", "handshake with the page server failed: %s",
			      strerror(-err));
		close(uffd);
		close(sock);
		return err;
	}
	ss->uffd = uffd;
	ss->pager_fd = sock;
	return 0;
}

/* After the hang-up, nobody else reads the uffd.  A fault now means guest
 * memory that will never arrive: stop the VM, then resolve the fault with a
 * zero page so the blocked vCPU can leave the kernel.  Its stop request and
 * kick are already pending, so it exits before the guest runs again. */
static void serve_orphans(struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	struct pollfd p = {.fd = ss->uffd, .events = POLLIN};
	int failed = 0;

	while (!__atomic_load_n(&ss->watch_quit, __ATOMIC_ACQUIRE)) {
		struct uffd_msg msg;
		struct uffdio_zeropage z;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (read(ss->uffd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (!failed) {
			sqb_err(
			    "guest touched 0x%llx after the page server hung up: stopping the VM",
			    (unsigned long long)msg.arg.pagefault.address);
			sqb_vm_fail(vm, SQB_VM_STOP_HOST_ERROR,
				    "the Uffd page server hung up before serving all guest memory");
			failed = 1;
		}
		z.range.start = msg.arg.pagefault.address & ~4095ULL;
		z.range.len = 4096;
		z.mode = 0;
		if (ioctl(ss->uffd, UFFDIO_ZEROPAGE, &z) < 0 && errno != EEXIST)
			sqb_debug("UFFDIO_ZEROPAGE: %s", strerror(errno));
	}
}

static void *watch_thread(void *arg)
{
	struct sqb_vm *vm = arg;
	struct sqb_snapstate *ss = vm->snap;
	struct pollfd p = {.fd = ss->pager_fd, .events = POLLIN | POLLRDHUP};
	char buf[256];

	for (;;) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		if (__atomic_load_n(&ss->watch_quit, __ATOMIC_ACQUIRE))
			return NULL;
		if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
			break;
		if ((p.revents & POLLIN) && read(ss->pager_fd, buf, sizeof(buf)) <= 0)
			break;
	}
	sqb_warn("the Uffd page server hung up; pages it never served will stop the VM");
	serve_orphans(vm, ss);
	return NULL;
}

int sqb_snap_uffd_watch(struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	int err = -pthread_create(&ss->watcher, NULL, watch_thread, vm);

	if (!err)
		ss->watching = 1;
	return err;
}

void sqb_snap_uffd_unwatch(struct sqb_snapstate *ss)
{
	if (!ss->watching)
		return;
	__atomic_store_n(&ss->watch_quit, 1, __ATOMIC_RELEASE);
	shutdown(ss->pager_fd, SHUT_RDWR); /* wakes the poll */
	pthread_join(ss->watcher, NULL);
	ss->watching = 0;
}
