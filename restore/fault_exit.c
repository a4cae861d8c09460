/* Exit-driven fault source (SQB_RESTORE_LAZY_EXIT): nothing in the host
 * traps an access.  The VMM guarantees that every access to a page goes
 * through sqb_restore_fetch() first: the guest's, because its hypervisor
 * reports them as exits (HVF: pages withheld with hv_vm_protect, the
 * access exception fetches and re-grants; runtime/hvf/hvf_faults.c), and
 * the VMM's own, through its guest-memory accessor.  So installing is a
 * plain copy into the destination, done once per page (pg_claim: a page
 * the guest already got and wrote is never filled again), and the handler
 * thread only serves the fetch queue. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "restore_int.h"

struct exit_src {
	struct fault_src base;
	int evfd; /* kicks: a fetch was queued, or stop */
};

/* Sleep until a kick or the timeout, consuming the kick.  Never an event:
 * fetches come through the queue the handler serves when idle. */
static int exit_ready(struct fault_src *fs, int timeout_ms)
{
	struct exit_src *x = (struct exit_src *)fs;
	struct pollfd p = {x->evfd, POLLIN, 0};
	uint64_t v;

	if (poll(&p, 1, timeout_ms) == 1)
		(void)!read(x->evfd, &v, sizeof(v)); /* EAGAIN: another read took it */
	return 0;
}

static int exit_wait(struct fault_src *fs, struct fault_ev *ev, int max, int timeout_ms)
{
	(void)ev;
	(void)max;
	return exit_ready(fs, timeout_ms);
}

static int exit_install(struct fault_src *fs, struct rs_range *rg, uint64_t off, const void *src,
			uint64_t len)
{
	(void)fs;
	if (!rg->local)
		return -EINVAL;
	memcpy(rg->local + off, src, len);
	return 0;
}

static int exit_zero(struct fault_src *fs, struct rs_range *rg, uint64_t off, uint64_t len)
{
	(void)fs;
	if (!rg->local)
		return -EINVAL;
	memset(rg->local + off, 0, len);
	return 0;
}

static void exit_kick(struct fault_src *fs)
{
	struct exit_src *x = (struct exit_src *)fs;
	uint64_t one = 1;

	if (write(x->evfd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a kick is pending anyway */
	}
}

static void exit_destroy(struct fault_src *fs)
{
	struct exit_src *x = (struct exit_src *)fs;

	close(x->evfd);
	free(x);
}

static const struct fault_ops exit_ops = {
    .name = "exit",
    .wait = exit_wait,
    .ready = exit_ready,
    .install = exit_install,
    .zero = exit_zero,
    .wake = NULL,
    .kick = exit_kick,
    .destroy = exit_destroy,
};

int rs_exit_create(struct fault_src **out, sqb_restore *rs)
{
	struct exit_src *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->evfd < 0) {
		int err = -errno;

		free(x);
		return err;
	}
	x->base.ops = &exit_ops;
	x->base.rs = rs;
	*out = &x->base;
	return 0;
}
