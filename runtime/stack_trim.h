/* Giving back the dead part of a thread's stack (docs/fleet.md "Threads,
 * stacks and .bss"): a load runs deep on the API thread, the vCPU thread
 * (its state requests) and the event loop (device restore, logging), and an
 * idle clone of a fleet kept every page those frames touched. */
#ifndef SQB_STACK_TRIM_H
#define SQB_STACK_TRIM_H

#include <stdint.h>

/* [lo, hi): the addresses a thread's stack may use (its guard excluded) */
struct sqb_stack_span {
	uintptr_t lo, hi;
};

/* The calling thread's stack, for a thread created with pthread_create
 * (pthread_getattr_np: no /proc; it asks sched_getaffinity, which every
 * seccomp list allows).  {0, 0} when unknown: sqb_stack_trim then does
 * nothing. */
struct sqb_stack_span sqb_stack_of_thread(void);

/* Releases (MADV_DONTNEED) the pages of span below the page that holds
 * this call's stack pointer (x86-64; elsewhere one page more is kept for
 * the libc call).  Below the stack pointer
 * nothing is live (x86-64's red zone belongs to a leaf function); a
 * released page is a zero page again when a later call reaches it.  Call it
 * from the shallowest frame the thread idles in. */
void sqb_stack_trim(const struct sqb_stack_span *span);

#endif
