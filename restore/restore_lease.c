/* mmap strategy: the files guest memory is mapped from must not change under
 * it (docs/restore.md "Mapped files", docs/security.md).  Each layer file gets
 * a read lease; a writer's open or a truncate breaks it, the kernel holds the
 * writer back and tells a watcher thread, and the restore fails at once
 * (-ETXTBSY, the file named) while the lease still holds the writer off. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

/* Lease breaks arrive as this signal, directed at the watcher thread only
 * (F_OWNER_TID), which keeps it blocked and reads it from a signalfd. */
#define RS_LEASE_SIG (SIGRTMIN + 5)

struct rs_lease_file {
	const sqb_snap *layer;
	int fd;
	int held; /* 1: leased; 0: refused, the layer's RAW bytes are copied */
};

struct rs_lease {
	pthread_t thr;
	int started;
	int quit_fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pid_t tid; /* the watcher's, once it can take signals; -1: it failed */
	unsigned int n;
	struct rs_lease_file f[];
};

static void broken(sqb_restore *rs, int fd)
{
	struct rs_lease *l = rs->lease;
	struct sqb_diag d = {0};
	const char *path = "?";

	for (unsigned int i = 0; i < l->n; i++)
		if (l->f[i].fd == fd)
			path = sqb_snap_path(l->f[i].layer);
	snprintf(d.section, sizeof(d.section), "DATA");
	snprintf(d.reason, sizeof(d.reason),
		 "%s is being opened for writing or truncated while guest memory is mapped "
		 "from it; the restore stops rather than let the guest see changed bytes",
		 path);
	rs_fail(rs, -ETXTBSY, &d);
}

static void *lease_thread(void *arg)
{
	sqb_restore *rs = arg;
	struct rs_lease *l = rs->lease;
	sigset_t set;
	int sfd;

	sigemptyset(&set);
	sigaddset(&set, RS_LEASE_SIG);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	pthread_mutex_lock(&l->lock);
	l->tid = sfd < 0 ? -1 : gettid();
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (sfd < 0)
		return NULL;
	for (;;) {
		struct pollfd p[2] = {{sfd, POLLIN, 0}, {l->quit_fd, POLLIN, 0}};
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			broken(rs, si.ssi_fd);
	}
	close(sfd);
	return NULL;
}

static int lease_one(struct rs_lease *l, struct rs_lease_file *f)
{
	struct f_owner_ex own = {.type = F_OWNER_TID, .pid = l->tid};

	if (fcntl(f->fd, F_SETSIG, RS_LEASE_SIG) < 0 || fcntl(f->fd, F_SETOWN_EX, &own) < 0 ||
	    fcntl(f->fd, F_SETLEASE, F_RDLCK) < 0)
		return -errno;
	return 0;
}

int rs_lease_take(sqb_restore *rs)
{
	struct rs_lease *l;
	unsigned int n = 0;

	for (const sqb_snap *s = rs->snap; s; s = sqb_snap_parent(s))
		n++;
	l = calloc(1, sizeof(*l) + n * sizeof(l->f[0]));
	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->tid = 0;
	l->n = n;
	n = 0;
	for (const sqb_snap *s = rs->snap; s; s = sqb_snap_parent(s))
		l->f[n++] = (struct rs_lease_file){.layer = s, .fd = sqb_snap_fd(s)};
	rs->lease = l;
	l->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->quit_fd >= 0 && !pthread_create(&l->thr, NULL, lease_thread, rs))
		l->started = 1;
	pthread_mutex_lock(&l->lock);
	while (l->started && !l->tid)
		pthread_cond_wait(&l->cond, &l->lock);
	pthread_mutex_unlock(&l->lock);
	for (unsigned int i = 0; i < l->n; i++) {
		int err = l->started && l->tid > 0 ? lease_one(l, &l->f[i]) : -ESRCH;

		l->f[i].held = !err;
		if (err)
			sqb_info(
			    "restore: cannot lease %s (%s): its RAW bytes are copied, not mapped, "
			    "so changes to the file cannot reach the guest",
			    sqb_snap_path(l->f[i].layer), strerror(-err));
	}
	return 0;
}

int rs_lease_held(const sqb_restore *rs, const sqb_snap *layer)
{
	const struct rs_lease *l = rs->lease;

	for (unsigned int i = 0; l && i < l->n; i++)
		if (l->f[i].layer == layer)
			return l->f[i].held;
	return 0;
}

void rs_lease_release(sqb_restore *rs)
{
	struct rs_lease *l = rs->lease;
	uint64_t one = 1;

	if (!l)
		return;
	if (l->started) {
		if (write(l->quit_fd, &one, sizeof(one)) < 0)
			sqb_debug("restore: lease watcher eventfd: %s", strerror(errno));
		pthread_join(l->thr, NULL);
	}
	for (unsigned int i = 0; i < l->n; i++)
		if (l->f[i].held && fcntl(l->f[i].fd, F_SETLEASE, F_UNLCK) < 0)
			sqb_debug("restore: releasing the lease on %s: %s",
				  sqb_snap_path(l->f[i].layer), strerror(errno));
	if (l->quit_fd >= 0)
		close(l->quit_fd);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
	rs->lease = NULL;
}
