/* Linux userfaultfd fault source: MISSING-mode registration of the
 * destination (or a VMM's uffd handed over a socket), events read in batches,
 * installs by UFFDIO_COPY / UFFDIO_ZEROPAGE that step over present pages. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

struct uffd_src {
	struct fault_src base;
	int fd;
	int evfd;
	int own;	 /* we created and registered it */
	int no_zeropage; /* range does not support UFFDIO_ZEROPAGE */
};

static const uint8_t zeros[RS_BLOCK];

static int uffd_wait(struct fault_src *fs, struct fault_ev *ev, int max, int timeout_ms)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	struct uffd_msg msg[64];
	ssize_t got;
	int n = 0;

	if (max > 64)
		max = 64;
	got = read(u->fd, msg, sizeof(msg[0]) * (size_t)max);
	if (got < 0 && errno == EAGAIN && timeout_ms) {
		struct pollfd p[2] = {{u->fd, POLLIN, 0}, {u->evfd, POLLIN, 0}};
		uint64_t v;

		if (poll(p, 2, timeout_ms) < 0)
			return errno == EINTR ? 0 : -errno;
		if (p[1].revents & POLLIN)
			(void)!read(u->evfd, &v, sizeof(v));
		if (!(p[0].revents & POLLIN))
			return 0;
		got = read(u->fd, msg, sizeof(msg[0]) * (size_t)max);
	}
	if (got < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < (size_t)got / sizeof(msg[0]); i++) {
		if (msg[i].event == UFFD_EVENT_PAGEFAULT) {
			ev[n].kind = FEV_FAULT;
			ev[n++].addr = msg[i].arg.pagefault.address;
		} else if (msg[i].event == UFFD_EVENT_REMOVE) {
			ev[n].kind = FEV_REMOVE;
			ev[n].addr = msg[i].arg.remove.start;
			ev[n++].end = msg[i].arg.remove.end;
		}
	}
	return n;
}

static int uffd_ready(struct fault_src *fs, int timeout_ms)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	struct pollfd p[2] = {{u->fd, POLLIN, 0}, {u->evfd, POLLIN, 0}};
	uint64_t v;

	if (poll(p, 2, timeout_ms) <= 0)
		return 0;
	if (p[1].revents & POLLIN)
		(void)!read(u->evfd, &v, sizeof(v));
	return !!(p[0].revents & POLLIN);
}

/* Copy [dst, dst+len) unless present; 1 if a page already existed. */
static int uffd_install(struct fault_src *fs, struct rs_range *rg, uint64_t off, const void *src,
			uint64_t len)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	uint64_t dst = rg->host + off;
	const uint8_t *s = src;
	int exist = 0;

	while (len) {
		struct uffdio_copy c = {.dst = dst, .src = (uintptr_t)s, .len = len};
		int e;

		if (!ioctl(u->fd, UFFDIO_COPY, &c))
			return exist;
		e = errno;
		if (c.copy > 0) { /* partial copy: continue after it */
			dst += (uint64_t)c.copy;
			s += c.copy;
			len -= (uint64_t)c.copy;
			continue;
		}
		if (e == EEXIST) { /* the next page is there already */
			exist = 1;
			dst += RS_HPAGE;
			s += RS_HPAGE;
			len -= RS_HPAGE;
			continue;
		}
		return -e;
	}
	return exist;
}

static int uffd_zero(struct fault_src *fs, struct rs_range *rg, uint64_t off, uint64_t len)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	uint64_t dst = rg->host + off;
	int exist = 0;

	while (len && !u->no_zeropage) {
		struct uffdio_zeropage z = {.range = {.start = dst, .len = len}};
		int e;

		if (!ioctl(u->fd, UFFDIO_ZEROPAGE, &z))
			return exist;
		e = errno;
		if (z.zeropage > 0) {
			dst += (uint64_t)z.zeropage;
			len -= (uint64_t)z.zeropage;
			continue;
		}
		if (e == EEXIST) {
			exist = 1;
			dst += RS_HPAGE;
			len -= RS_HPAGE;
			continue;
		}
		if (e != EINVAL && e != ENOTSUP)
			return -e;
		u->no_zeropage = 1;
	}
	while (len) { /* ranges without ZEROPAGE: copy from zeros */
		uint64_t n = len < RS_BLOCK ? len : RS_BLOCK;
		int err = uffd_install(fs, rg, dst - rg->host, zeros, n);

		if (err < 0)
			return err;
		exist |= err;
		dst += n;
		len -= n;
	}
	return exist;
}

static int uffd_wake(struct fault_src *fs, uint64_t addr, uint64_t len)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	struct uffdio_range r = {.start = addr, .len = len};

	if (!len)
		return 0;
	return ioctl(u->fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static void uffd_kick(struct fault_src *fs)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	uint64_t one = 1;

	(void)!write(u->evfd, &one, sizeof(one));
}

/* Unregistering wakes every thread waiting in a fault on the range (the
 * kernel's userfaultfd_unregister); only our own memory is ours to let go. */
static void uffd_release(struct fault_src *fs)
{
	struct uffd_src *u = (struct uffd_src *)fs;
	sqb_restore *rs = fs->rs;

	if (u->own && u->fd >= 0)
		for (unsigned int i = 0; i < rs->nrg; i++) {
			struct uffdio_range r = {.start = rs->rg[i].host, .len = rs->rg[i].size};

			(void)ioctl(u->fd, UFFDIO_UNREGISTER, &r);
		}
}

static void uffd_destroy(struct fault_src *fs)
{
	struct uffd_src *u = (struct uffd_src *)fs;

	uffd_release(fs);
	if (u->fd >= 0)
		close(u->fd);
	if (u->evfd >= 0)
		close(u->evfd);
	free(u);
}

static const struct fault_ops uffd_ops = {
    .name = "userfaultfd",
    .wait = uffd_wait,
    .ready = uffd_ready,
    .install = uffd_install,
    .zero = uffd_zero,
    .wake = uffd_wake,
    .kick = uffd_kick,
    .release = uffd_release,
    .destroy = uffd_destroy,
};

static int uffd_open_own(struct uffd_src *u, sqb_restore *rs)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};

	u->fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u->fd < 0)
		return -errno;
	if (ioctl(u->fd, UFFDIO_API, &api))
		return errno == EINVAL ? -ENOTSUP : -errno; /* no EVENT_REMOVE: refuse */
	for (unsigned int i = 0; i < rs->nrg; i++) {
		struct uffdio_register reg = {
		    .range = {.start = rs->rg[i].host, .len = rs->rg[i].size},
		    .mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(u->fd, UFFDIO_REGISTER, &reg))
			return -errno;
		if (!(reg.ioctls & (1ull << _UFFDIO_COPY)))
			return -ENOTSUP;
		if (!(reg.ioctls & (1ull << _UFFDIO_ZEROPAGE)))
			u->no_zeropage = 1;
	}
	return 0;
}

/* ext_fd >= 0: a uffd the VMM created and registered; we work on a dup of
 * it, so the caller keeps (and closes) its own descriptor. */
int rs_uffd_create(struct fault_src **out, sqb_restore *rs, int ext_fd)
{
	struct uffd_src *u = calloc(1, sizeof(*u));
	int err = 0;

	if (!u)
		return -ENOMEM;
	u->base.ops = &uffd_ops;
	u->base.rs = rs;
	u->fd = -1;
	u->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->evfd < 0) {
		err = -errno;
	} else if (ext_fd >= 0) {
		u->fd = fcntl(ext_fd, F_DUPFD_CLOEXEC, 0);
		if (u->fd < 0 || fcntl(u->fd, F_SETFL, fcntl(u->fd, F_GETFL) | O_NONBLOCK) < 0)
			err = -errno;
	} else {
		u->own = 1;
		err = uffd_open_own(u, rs);
	}
	if (err) {
		u->own = 0;
		uffd_destroy(&u->base);
		return err;
	}
	*out = &u->base;
	return 0;
}

int sqb_restore_lazy_usable(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), err = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api))
		err = errno == EINVAL ? -ENOTSUP : -errno;
	close(fd);
	return err;
}
