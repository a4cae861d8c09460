/* Signal-based fault source: the guest view of a memfd is PROT_NONE; a
 * SIGSEGV handler posts the address to the installer thread and sleeps on a
 * futex; the installer fills the page through a second (writable) mapping and
 * only then opens it, so no thread sees a half-filled page.  macOS's Mach
 * exception pager follows the same protocol (docs/restore.md). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "restore_int.h"

#define SIG_SLOTS 16

struct sig_src {
	struct fault_src base;
	int req[2]; /* signal handler -> installer: fault addresses */
	int evfd;
	int slot;
};

static _Atomic(sqb_restore *) active[SIG_SLOTS];
static struct sigaction old_segv;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed;

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uc);
	} else if (old_segv.sa_handler == SIG_DFL || old_segv.sa_handler == SIG_IGN) {
		signal(sig, SIG_DFL); /* the access repeats and kills us as before */
	} else {
		old_segv.sa_handler(sig);
	}
}

/* Runs on the faulting thread: only async-signal-safe calls below. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr, pg = 0;
	sqb_restore *rs = NULL;
	int sent = 0;

	for (int i = 0; i < SIG_SLOTS && !rs; i++) {
		sqb_restore *c = atomic_load(&active[i]);

		for (unsigned int k = 0; c && k < c->nrg; k++)
			if (addr - c->rg[k].host < c->rg[k].size) {
				rs = c;
				pg = c->rg[k].pg0 + (addr - c->rg[k].host) / RS_HPAGE;
			}
	}
	if (!rs) {
		chain(sig, si, uc);
		return;
	}
	atomic_fetch_add(&rs->waiters, 1);
	for (;;) {
		uint32_t g = atomic_load(&rs->gen);
		struct timespec ts = {0, 20 * 1000 * 1000};

		if (rs_bit(rs->pg_present, pg))
			break;
		if (atomic_load(&rs->error) || atomic_load(&rs->stop)) {
			/* never return onto an unfilled page: die loudly instead */
			sigset_t bus;

			sigemptyset(&bus);
			sigaddset(&bus, SIGBUS);
			signal(SIGBUS, SIG_DFL);
			sigprocmask(SIG_UNBLOCK, &bus, NULL);
			raise(SIGBUS);
		}
		if (!sent)
			sent = write(rs->sig_req_fd, &addr, sizeof(addr)) == (ssize_t)sizeof(addr);
		syscall(SYS_futex, &rs->gen, FUTEX_WAIT_PRIVATE, g, &ts, NULL, 0);
	}
	atomic_fetch_sub(&rs->waiters, 1);
}

static int sig_wait(struct fault_src *fs, struct fault_ev *ev, int max, int timeout_ms)
{
	struct sig_src *s = (struct sig_src *)fs;
	uint64_t a[64], v;
	struct pollfd p[2] = {{s->req[0], POLLIN, 0}, {s->evfd, POLLIN, 0}};
	ssize_t got;
	int n = 0;

	if (max > 64)
		max = 64;
	got = read(s->req[0], a, sizeof(a[0]) * (size_t)max);
	if (got < 0 && errno == EAGAIN && timeout_ms) {
		if (poll(p, 2, timeout_ms) < 0)
			return errno == EINTR ? 0 : -errno;
		if (p[1].revents & POLLIN)
			(void)!read(s->evfd, &v, sizeof(v));
		got = read(s->req[0], a, sizeof(a[0]) * (size_t)max);
	}
	if (got < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < (size_t)got / sizeof(a[0]); i++) {
		ev[n].kind = FEV_FAULT;
		ev[n++].addr = a[i];
	}
	return n;
}

static int sig_ready(struct fault_src *fs, int timeout_ms)
{
	struct sig_src *s = (struct sig_src *)fs;
	struct pollfd p[2] = {{s->req[0], POLLIN, 0}, {s->evfd, POLLIN, 0}};
	uint64_t v;

	if (poll(p, 2, timeout_ms) <= 0)
		return 0;
	if (p[1].revents & POLLIN)
		(void)!read(s->evfd, &v, sizeof(v));
	return !!(p[0].revents & POLLIN);
}

/* put_range() skips present pages, so every page here is still PROT_NONE:
 * fill it through the alias, then open it. */
static int sig_install(struct fault_src *fs, struct rs_range *rg, uint64_t off, const void *src,
		       uint64_t len)
{
	(void)fs;
	memcpy(rg->alias + off, src, len);
	return mprotect(rg->local + off, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

static int sig_zero(struct fault_src *fs, struct rs_range *rg, uint64_t off, uint64_t len)
{
	(void)fs;
	/* never-opened memfd pages were never written: they are holes */
	return mprotect(rg->local + off, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

static int sig_wake(struct fault_src *fs, uint64_t addr, uint64_t len)
{
	(void)addr;
	(void)len;
	syscall(SYS_futex, &fs->rs->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	return 0;
}

static void sig_kick(struct fault_src *fs)
{
	struct sig_src *s = (struct sig_src *)fs;
	uint64_t one = 1;

	(void)!write(s->evfd, &one, sizeof(one));
}

static void sig_destroy(struct fault_src *fs)
{
	struct sig_src *s = (struct sig_src *)fs;

	if (s->slot >= 0) {
		atomic_store(&active[s->slot], NULL);
		/* a handler still looking at rs wakes on stop and dies (SIGBUS) */
		sig_wake(fs, 0, 0);
	}
	if (s->req[0] >= 0)
		close(s->req[0]);
	if (s->req[1] >= 0)
		close(s->req[1]);
	if (s->evfd >= 0)
		close(s->evfd);
	free(s);
}

static const struct fault_ops sig_ops = {
    .name = "sigsegv",
    .wait = sig_wait,
    .ready = sig_ready,
    .install = sig_install,
    .zero = sig_zero,
    .wake = sig_wake,
    .kick = sig_kick,
    .destroy = sig_destroy,
};

static int install_handler(void)
{
	struct sigaction sa;
	int err = 0;

	pthread_mutex_lock(&install_lock);
	/* someone (a test harness, a runtime) may have replaced us since */
	if (installed && (sigaction(SIGSEGV, NULL, &sa) || !(sa.sa_flags & SA_SIGINFO) ||
			  sa.sa_sigaction != on_segv))
		installed = 0;
	if (!installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, &old_segv))
			err = -errno;
		else
			installed = 1;
	}
	pthread_mutex_unlock(&install_lock);
	return err;
}

int rs_signal_create(struct fault_src **out, sqb_restore *rs)
{
	struct sig_src *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->base.ops = &sig_ops;
	s->base.rs = rs;
	s->slot = -1;
	s->req[0] = s->req[1] = -1;
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->evfd < 0 || pipe2(s->req, O_NONBLOCK | O_CLOEXEC)) {
		err = -errno;
		goto fail;
	}
	if ((err = install_handler()))
		goto fail;
	for (int i = 0; i < SIG_SLOTS && s->slot < 0; i++) {
		sqb_restore *expect = NULL;

		rs->sig_req_fd = s->req[1];
		if (atomic_compare_exchange_strong(&active[i], &expect, rs))
			s->slot = i;
	}
	if (s->slot < 0) {
		err = -EBUSY;
		goto fail;
	}
	*out = &s->base;
	return 0;
fail:
	sig_destroy(&s->base);
	return err;
}
