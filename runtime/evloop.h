/* One epoll event-loop thread per VM (private to runtime/, evloop.c).
 *
 *   devices ──sqb_evloop_add(fd, events, cb)──> epoll set ──> loop thread
 *   timers  ──sqb_evloop_timer(ns, periodic)──> timerfd ──┘   calls cb(fd,
 *   API socket (later: the server registers its listen fd) ┘   events, arg)
 *
 * Entries are named by a handle (slot + generation), so an event that was
 * already fetched for an entry removed in between is dropped, never
 * delivered to a freed owner.  sqb_evloop_del() from another thread waits
 * until that entry's callback is not running; from inside a callback it is
 * immediate.  Callbacks run on the loop thread, one at a time.
 */
#ifndef SQB_RUNTIME_EVLOOP_H
#define SQB_RUNTIME_EVLOOP_H

#include <stdint.h>

struct sqb_evloop;
typedef void (*sqb_evloop_cb)(int fd, uint32_t events, void *arg);

/* A running loop with its own thread (name shows in ps). */
int sqb_evloop_create(struct sqb_evloop **out, const char *name);
/* Stop the thread and close the timers it owns; other fds stay the
 * caller's.  Accepts NULL. */
void sqb_evloop_free(struct sqb_evloop *l);

/* events: EPOLLIN / EPOLLOUT / ...; returns a handle > 0 or -errno. */
int64_t sqb_evloop_add(struct sqb_evloop *l, int fd, uint32_t events, sqb_evloop_cb cb, void *arg);
int sqb_evloop_mod(struct sqb_evloop *l, int64_t h, uint32_t events);
int sqb_evloop_del(struct sqb_evloop *l, int64_t h);
/* A timerfd owned by the loop: cb after ns, then every ns if periodic.
 * The callback's fd is the timerfd (already read).  Delete with del. */
int64_t sqb_evloop_timer(struct sqb_evloop *l, uint64_t ns, int periodic, sqb_evloop_cb cb,
			 void *arg);
/* Nonzero on the loop's own thread. */
int sqb_evloop_on_thread(const struct sqb_evloop *l);

#endif
