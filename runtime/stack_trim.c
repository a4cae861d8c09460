/* See stack_trim.h. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stack_trim.h"

struct sqb_stack_span sqb_stack_of_thread(void)
{
	struct sqb_stack_span sp = {0, 0};
	pthread_attr_t a;
	void *addr;
	size_t len;

	if (pthread_getattr_np(pthread_self(), &a))
		return sp;
	if (!pthread_attr_getstack(&a, &addr, &len)) {
		uintptr_t here = (uintptr_t)&sp;

		/* sanity: this frame lies in it */
		if (here >= (uintptr_t)addr && here < (uintptr_t)addr + len) {
			sp.lo = (uintptr_t)addr;
			sp.hi = (uintptr_t)addr + len;
		}
	}
	pthread_attr_destroy(&a);
	return sp;
}

__attribute__((noinline)) void sqb_stack_trim(const struct sqb_stack_span *span)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t sp, top;

	if (pg <= 0 || !span->lo)
		return;
#if defined(__x86_64__)
	/* The system call is made inline: the instruction pushes nothing, so
	 * every page below the one holding this frame's stack pointer can go,
	 * however close to a page boundary the caller idles.  (A libc call
	 * would push its return address there, and a sanitizer's interceptor
	 * more, into a page being released under it.) */
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	top = sp & ~(uintptr_t)(pg - 1);
	if (top > span->lo && top <= span->hi) {
		long ret;

		__asm__ volatile("syscall"
				 : "=a"(ret)
				 : "0"((long)SYS_madvise), "D"(span->lo), "S"(top - span->lo),
				   "d"((long)MADV_DONTNEED)
				 : "rcx", "r11", "memory");
		(void)ret;
	}
#else
	/* elsewhere a libc call, with a page of margin for it (not measured) */
	sp = (uintptr_t)__builtin_frame_address(0);
	top = (sp & ~(uintptr_t)(pg - 1)) - (uintptr_t)pg;
	if (top > span->lo && top <= span->hi)
		madvise((void *)span->lo, top - span->lo, MADV_DONTNEED);
#endif
}
