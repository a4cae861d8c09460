/* The per-VM event loop (evloop.h): one epoll set, one thread, a stop
 * eventfd, timers as timerfds, and handles with generations so a removed
 * entry never sees a late event (docs/architecture.md "Threads"). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "evloop.h"
#include "seccomp/sqb_confine.h"
#include "log.h"
#include "pagealloc.h"
#include "stack_trim.h"
#include "squib/errors.h"

#define EVL_MAX_ENTRIES 256
/* After a callback ran, the loop waits at most this long before it gives
 * back its stack pages below its idle frame (one wake-up when it goes idle;
 * docs/fleet.md "Threads, stacks and .bss") */
#define EVL_TRIM_IDLE_MS 1000

struct evl_entry {
	int fd;
	uint32_t gen; /* bumped on every reuse */
	int used, owned_timer;
	sqb_evloop_cb cb;
	void *arg;
};

struct sqb_evloop {
	int epfd, stopfd;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int running; /* slot whose callback runs now, or -1 */
	struct evl_entry e[EVL_MAX_ENTRIES];
};

static uint64_t handle_of(unsigned int slot, uint32_t gen)
{
	return ((uint64_t)gen << 16) | (slot + 1);
}

static struct evl_entry *entry_of(struct sqb_evloop *l, uint64_t h, unsigned int *slot)
{
	unsigned int s = (unsigned int)(h & 0xffff);

	if (s == 0 || s > EVL_MAX_ENTRIES)
		return NULL;
	s--;
	if (!l->e[s].used || l->e[s].gen != (uint32_t)(h >> 16))
		return NULL;
	*slot = s;
	return &l->e[s];
}

static void *evl_thread(void *arg)
{
	struct sqb_evloop *l = arg;
	struct epoll_event ev[16];
	struct sqb_stack_span span = sqb_stack_of_thread(); /* before the filter */
	int worked = 0; /* a callback ran since the stack was last trimmed */

	if (sqb_confine_thread(SQB_CONFINE_EVLOOP) < 0) /* keeps its creator's filter */
		sqb_err("event loop: cannot install its seccomp filter");
	sqb_stack_trim(&span); /* the set-up above ran deeper than the loop */
	for (;;) {
		/* device restores, virtqueue work and logging run deep; an idle
		 * clone of a fleet kept those dead pages.  Once idle for
		 * EVL_TRIM_IDLE_MS after some work, they are given back from this
		 * frame, the shallowest the loop has; then it sleeps for good. */
		int n = epoll_wait(l->epfd, ev, 16, worked && span.lo ? EVL_TRIM_IDLE_MS : -1);

		if (n == 0) {
			sqb_stack_trim(&span);
			worked = 0;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sqb_err("event loop: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct evl_entry *en, copy;
			unsigned int slot;

			if (ev[i].data.u64 == 0)
				return NULL; /* the stop eventfd */
			pthread_mutex_lock(&l->lock);
			en = entry_of(l, ev[i].data.u64, &slot);
			if (!en) { /* removed after epoll_wait fetched it */
				pthread_mutex_unlock(&l->lock);
				continue;
			}
			copy = *en;
			l->running = (int)slot;
			pthread_mutex_unlock(&l->lock);
			if (copy.owned_timer) {
				uint64_t ticks;
				if (read(copy.fd, &ticks, sizeof(ticks)) < 0)
					ticks = 0; /* spurious wakeup: EAGAIN */
			}
			copy.cb(copy.fd, ev[i].events, copy.arg);
			worked = 1;
			pthread_mutex_lock(&l->lock);
			l->running = -1;
			pthread_cond_broadcast(&l->cond);
			pthread_mutex_unlock(&l->lock);
		}
	}
}

int sqb_evloop_create(struct sqb_evloop **out, const char *name)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	struct sqb_evloop *l;
	int err;

	*out = NULL;
	l = sqb_page_zalloc(sizeof(*l)); /* 8 KiB of slots, a few used */
	if (!l)
		return -ENOMEM;
	l->running = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->stopfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) < 0) {
		err = -errno;
		goto err;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	err = -pthread_create(&l->thread, NULL, evl_thread, l);
	if (err < 0) {
		pthread_cond_destroy(&l->cond);
		pthread_mutex_destroy(&l->lock);
		goto err;
	}
	l->started = 1;
	if (name)
		pthread_setname_np(l->thread, name); /* best effort, <= 15 chars */
	*out = l;
	return 0;
err:
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->stopfd >= 0)
		close(l->stopfd);
	sqb_page_free(l, sizeof(*l));
	return err;
}

void sqb_evloop_free(struct sqb_evloop *l)
{
	uint64_t one = 1;

	if (!l)
		return;
	if (l->started) {
		if (write(l->stopfd, &one, sizeof(one)) < 0)
			sqb_err("event loop: stop: %s", strerror(errno));
		pthread_join(l->thread, NULL);
	}
	for (unsigned int i = 0; i < EVL_MAX_ENTRIES; i++)
		if (l->e[i].used && l->e[i].owned_timer)
			close(l->e[i].fd);
	close(l->epfd);
	close(l->stopfd);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	sqb_page_free(l, sizeof(*l));
}

static int64_t evl_add(struct sqb_evloop *l, int fd, uint32_t events, sqb_evloop_cb cb, void *arg,
		       int owned_timer)
{
	struct epoll_event ev = {.events = events};
	unsigned int s;
	int64_t h;

	if (fd < 0 || !cb)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	for (s = 0; s < EVL_MAX_ENTRIES && l->e[s].used; s++)
		;
	if (s == EVL_MAX_ENTRIES) {
		pthread_mutex_unlock(&l->lock);
		return -SQB_ELIMIT;
	}
	l->e[s].gen = (l->e[s].gen + 1) & 0xffffffffu;
	if (!l->e[s].gen)
		l->e[s].gen = 1;
	h = (int64_t)handle_of(s, l->e[s].gen);
	ev.data.u64 = (uint64_t)h;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;
		pthread_mutex_unlock(&l->lock);
		return err;
	}
	l->e[s] = (struct evl_entry){fd, l->e[s].gen, 1, owned_timer, cb, arg};
	pthread_mutex_unlock(&l->lock);
	return h;
}

int64_t sqb_evloop_add(struct sqb_evloop *l, int fd, uint32_t events, sqb_evloop_cb cb, void *arg)
{
	return evl_add(l, fd, events, cb, arg, 0);
}

int sqb_evloop_mod(struct sqb_evloop *l, int64_t h, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)h};
	struct evl_entry *en;
	unsigned int s;
	int err = 0;

	pthread_mutex_lock(&l->lock);
	en = entry_of(l, (uint64_t)h, &s);
	if (!en)
		err = -ENOENT;
	else if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, en->fd, &ev) < 0)
		err = -errno;
	pthread_mutex_unlock(&l->lock);
	return err;
}

int sqb_evloop_del(struct sqb_evloop *l, int64_t h)
{
	struct evl_entry *en;
	unsigned int s;

	pthread_mutex_lock(&l->lock);
	en = entry_of(l, (uint64_t)h, &s);
	if (!en) {
		pthread_mutex_unlock(&l->lock);
		return -ENOENT;
	}
	int fd = en->fd, timer = en->owned_timer;

	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	en->used = 0;
	/* the owner may free arg once we return: wait out a running callback
	 * (which may still read its timerfd: close that only afterwards) */
	if (!pthread_equal(pthread_self(), l->thread))
		while (l->running == (int)s)
			pthread_cond_wait(&l->cond, &l->lock);
	if (timer)
		close(fd);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

int64_t sqb_evloop_timer(struct sqb_evloop *l, uint64_t ns, int periodic, sqb_evloop_cb cb,
			 void *arg)
{
	struct itimerspec its = {0};
	int64_t h;
	int fd;

	if (!ns)
		return -EINVAL;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	its.it_value.tv_sec = (time_t)(ns / 1000000000ULL);
	its.it_value.tv_nsec = (long)(ns % 1000000000ULL);
	if (periodic)
		its.it_interval = its.it_value;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	h = evl_add(l, fd, EPOLLIN, cb, arg, 1);
	if (h < 0)
		close(fd);
	return h;
}

int sqb_evloop_on_thread(const struct sqb_evloop *l)
{
	return l->started && pthread_equal(pthread_self(), l->thread);
}
