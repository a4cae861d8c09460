/* Zeroed blocks in a mapping of their own, for large records that are
 * mostly zeros for their whole life (the VM, the event loop's table).
 * calloc from the heap writes every byte of such a block (the top chunk
 * is not known to be zero), so each of its pages is resident in every VM
 * process; a fresh anonymous mapping costs only the pages written
 * (docs/fleet.md "Load leftovers"). */
#ifndef SQB_PAGEALLOC_H
#define SQB_PAGEALLOC_H

#include <stddef.h>
#include <sys/mman.h>

static inline void *sqb_page_zalloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* p from sqb_page_zalloc(len) with the same len, or NULL */
static inline void sqb_page_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

#endif
