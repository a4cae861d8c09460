/* Guest memory: one memfd (so it can later be registered with userfaultfd
 * or handed to a page server), mapped once in the VMM and split into the x86
 * layout: RAM below the 32-bit MMIO gap and the rest above 4 GiB. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "vmm_priv.h"

int sqb_mem_create(struct sqb_guest_mem *m, uint64_t size, int thp)
{
	uint64_t low = size < SQB_MMIO_GAP_START ? size : SQB_MMIO_GAP_START;
	int err;

	m->fd = memfd_create("squib-guest-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	if (ftruncate(m->fd, (off_t)size) < 0) {
		err = -errno;
		goto err_fd;
	}
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (m->host == MAP_FAILED) {
		err = -errno;
		goto err_fd;
	}
	if (thp && madvise(m->host, size, MADV_HUGEPAGE) < 0)
		sqb_debug("MADV_HUGEPAGE refused: %d", errno); /* 4 KiB pages then */
	m->size = size;
	m->nregions = 0;
	m->regions[m->nregions++] = (struct sqb_mem_region){0, low, m->host, 0};
	if (size > low)
		m->regions[m->nregions++] =
		    (struct sqb_mem_region){SQB_HIGH_RAM_START, size - low, m->host + low, low};
	return 0;

err_fd:
	close(m->fd);
	m->fd = -1;
	return err;
}

void sqb_mem_destroy(struct sqb_guest_mem *m)
{
	if (m->host && m->host != MAP_FAILED)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->host = NULL;
	m->fd = -1;
}
