/* mmap strategy: the files guest memory is mapped from must not change under
 * it (docs/restore.md "Mapped files are leased", docs/security.md).  Each
 * layer file gets a read lease; a writer's open or a truncate breaks it, the
 * kernel holds the writer back and signals us, and the restore fails at once
 * (-ETXTBSY, the file named) while the lease still holds the writer off. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

/* Lease breaks arrive as this signal (F_SETSIG, so si_fd names the file),
 * process-directed: whichever thread takes it only writes the fd into a
 * pipe.  Someone reads the pipe and turns each fd into a restore failure:
 * the caller's event loop where one serves it (sqb_restore_lease_serve(),
 * so an idle VMM has no thread of ours), else one watcher thread per
 * process.  Nothing waits for a thread to start before a lease is taken (a
 * new thread took 5-8 ms to run on a loaded host, more than the whole
 * mapping); the watcher lives while some restore holds leases and no loop
 * serves the pipe, so a process without one has no thread of ours (a fork
 * stays single-threaded).  Both ends of the pipe are non-blocking: the
 * handler never blocks, a loop reads until it is empty. */
#define RS_LEASE_SIG (SIGRTMIN + 5)
#define RS_LEASE_THREAD "sqb-lease" /* the watcher's name (tests count it) */

struct rs_lease_file {
	const sqb_snap *layer;
	int fd;
	int held; /* 1: leased; 0: refused, the layer's RAW bytes are copied */
};

struct rs_lease {
	int watched; /* counted in lease_users: someone serves its breaks */
	unsigned int n;
	struct rs_lease_file f[];
};

/* Process-wide: the pipe, who serves it, and which restore leased which fd.
 * The watcher runs while lease_users > 0 and servers == 0 (life_lock). */
static pthread_once_t lease_once = PTHREAD_ONCE_INIT;
static int lease_pipe[2] = {-1, -1};
static int lease_ready; /* handler and pipe are in place */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int lease_users; /* restores holding leases */
static unsigned int servers;	 /* callers' loops serving the pipe */
static pthread_t watcher;
static int watcher_on;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lease_reg {
	int fd;
	sqb_restore *rs;
} * reg;
static size_t nreg, capreg;

static void lease_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno, fd = si->si_fd;

	(void)sig;
	(void)uc;
	if (write(lease_pipe[1], &fd, sizeof(fd)) < 0) {
		/* the pipe is full of earlier breaks: the restore already fails */
	}
	errno = saved;
}

static void broken(sqb_restore *rs, int fd)
{
	struct rs_lease *l = rs->lease;
	struct sqb_diag d = {0};
	const char *path = "?";

	for (unsigned int i = 0; l && i < l->n; i++)
		if (l->f[i].fd == fd)
			path = sqb_snap_path(l->f[i].layer);
	snprintf(d.section, sizeof(d.section), "DATA");
	snprintf(d.reason, sizeof(d.reason),
		 "%s is being opened for writing or truncated while guest memory is mapped "
		 "from it; the restore stops rather than let the guest see changed bytes",
		 path);
	rs_fail(rs, -ETXTBSY, &d);
}

/* Reads the pipe until it is empty (0), or until the watcher's stop
 * token (-1); every fd read fails the restores that leased it. */
static int drain(void)
{
	for (;;) {
		int fd;
		ssize_t got = read(lease_pipe[0], &fd, sizeof(fd));

		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t)sizeof(fd))
			return 0; /* EAGAIN: empty (records are whole: 4-byte writes) */
		if (fd < 0)
			return -1;
		pthread_mutex_lock(&reg_lock);
		for (size_t i = 0; i < nreg; i++)
			/* a lease under a break reads as its target (F_UNLCK): a
			 * record left from an earlier lease on a reused fd number
			 * finds this one intact and is dropped */
			if (reg[i].fd == fd && fcntl(fd, F_GETLEASE) != F_RDLCK)
				broken(reg[i].rs, fd);
		pthread_mutex_unlock(&reg_lock);
	}
}

/* The watcher: serves every restore of the process; -1 in the pipe ends it. */
static void *lease_thread(void *arg)
{
	struct pollfd p = {.fd = lease_pipe[0], .events = POLLIN};

	(void)arg;
	pthread_setname_np(pthread_self(), RS_LEASE_THREAD); /* best effort */
	for (;;) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return NULL;
		if (drain() < 0)
			return NULL;
	}
}

static void lease_init(void)
{
	struct sigaction sa = {0};

	if (pipe2(lease_pipe, O_CLOEXEC | O_NONBLOCK))
		return;
	sa.sa_sigaction = lease_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (!sigaction(RS_LEASE_SIG, &sa, NULL))
		lease_ready = 1;
}

/* Under life_lock: start the watcher when restores hold leases and no loop
 * serves the pipe, stop it (after it served every break queued before the
 * stop token) otherwise.  0 or -errno (it could not start). */
static int watcher_sync_locked(void)
{
	int want = lease_users && !servers, stop = -1;

	if (want && !watcher_on) {
		int err = -pthread_create(&watcher, NULL, lease_thread, NULL);

		if (err)
			return err;
		watcher_on = 1;
	} else if (!want && watcher_on) {
		if (write(lease_pipe[1], &stop, sizeof(stop)) == (ssize_t)sizeof(stop))
			pthread_join(watcher, NULL);
		else
			pthread_detach(watcher); /* a full pipe: it serves it, then waits */
		watcher_on = 0;
	}
	return 0;
}

/* A restore about to lease: someone serves its breaks; 0 or -errno. */
static int users_get(void)
{
	int err;

	pthread_mutex_lock(&life_lock);
	lease_users++;
	err = watcher_sync_locked();
	if (err)
		lease_users--;
	pthread_mutex_unlock(&life_lock);
	return err;
}

static void users_put(void)
{
	pthread_mutex_lock(&life_lock);
	if (lease_users)
		lease_users--;
	watcher_sync_locked();
	pthread_mutex_unlock(&life_lock);
}

int sqb_restore_lease_serve(void)
{
	int fd = -ENOTSUP;

	pthread_once(&lease_once, lease_init);
	pthread_mutex_lock(&life_lock);
	if (lease_ready) {
		servers++;
		watcher_sync_locked(); /* a running watcher serves what it has, then ends */
		fd = lease_pipe[0];
	}
	pthread_mutex_unlock(&life_lock);
	return fd;
}

void sqb_restore_lease_service(void)
{
	if (lease_ready)
		while (drain() < 0) /* a stop token meant for a watcher gone */
			;
}

void sqb_restore_lease_unserve(void)
{
	pthread_mutex_lock(&life_lock);
	if (servers && !--servers && watcher_sync_locked())
		sqb_err("restore: cannot start the lease watcher: lease breaks wait in the pipe");
	pthread_mutex_unlock(&life_lock);
}

static int reg_add(int fd, sqb_restore *rs)
{
	int err = 0;

	pthread_mutex_lock(&reg_lock);
	if (nreg == capreg) {
		size_t cap = capreg ? capreg * 2 : 8;
		struct lease_reg *n = realloc(reg, cap * sizeof(*reg));

		if (n) {
			reg = n;
			capreg = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err)
		reg[nreg++] = (struct lease_reg){fd, rs};
	pthread_mutex_unlock(&reg_lock);
	return err;
}

/* fd < 0: every entry of rs */
static void reg_del(sqb_restore *rs, int fd)
{
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nreg;)
		if (reg[i].rs == rs && (fd < 0 || reg[i].fd == fd))
			reg[i] = reg[--nreg];
		else
			i++;
	pthread_mutex_unlock(&reg_lock);
}

static int lease_one(struct rs_lease_file *f)
{
	if (fcntl(f->fd, F_SETSIG, RS_LEASE_SIG) < 0 || fcntl(f->fd, F_SETOWN, getpid()) < 0 ||
	    fcntl(f->fd, F_SETLEASE, F_RDLCK) < 0)
		return -errno;
	return 0;
}

int rs_lease_take(sqb_restore *rs)
{
	struct rs_lease *l;
	unsigned int n = 0;

	pthread_once(&lease_once, lease_init);
	for (const sqb_snap *s = rs->snap; s; s = sqb_snap_parent(s))
		n++;
	l = calloc(1, sizeof(*l) + n * sizeof(l->f[0]));
	if (!l)
		return -ENOMEM;
	l->n = n;
	n = 0;
	for (const sqb_snap *s = rs->snap; s; s = sqb_snap_parent(s))
		l->f[n++] = (struct rs_lease_file){.layer = s, .fd = sqb_snap_fd(s)};
	rs->lease = l;
	l->watched = lease_ready && !users_get();
	for (unsigned int i = 0; i < l->n; i++) {
		/* registered before the lease: a break at once finds its restore */
		int err = l->watched ? reg_add(l->f[i].fd, rs) : -ESRCH;

		if (!err && (err = lease_one(&l->f[i])))
			reg_del(rs, l->f[i].fd);
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

	if (!l)
		return;
	reg_del(rs, -1);
	for (unsigned int i = 0; i < l->n; i++)
		if (l->f[i].held && fcntl(l->f[i].fd, F_SETLEASE, F_UNLCK) < 0)
			sqb_debug("restore: releasing the lease on %s: %s",
				  sqb_snap_path(l->f[i].layer), strerror(errno));
	if (l->watched)
		users_put();
	free(l);
	rs->lease = NULL;
}
