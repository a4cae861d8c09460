/* soft-dirty backend: offered only to be refused with a reason.  Its probe
 * writes a page and checks pagemap bit 55; on kernels without
 * CONFIG_MEM_SOFT_DIRTY clear_refs succeeds and nothing is ever reported,
 * and where it works, reading pagemap then writing clear_refs (process-wide)
 * loses writes that fall between the two, so it can never be exact. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dirty_int.h"
#include "log.h"

/* 1 if the kernel sets soft-dirty on a fresh write, 0 if not, -errno. */
static int sd_kernel_tracks(void)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile uint8_t *m;
	uint64_t ent = 0;
	int fd, err = 0;

	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		err = -errno;
	close(fd);
	if (err)
		return err;
	m = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	m[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &ent, sizeof(ent), (off_t)((uintptr_t)m / (uintptr_t)page * 8)) !=
			  (ssize_t)sizeof(ent))
		err = -EIO;
	if (fd >= 0)
		close(fd);
	munmap((void *)m, (size_t)page);
	return err ? err : (int)((ent >> 55) & 1);
}

static int sd_probe(void)
{
	int r = sd_kernel_tracks();

	if (r == 0)
		sqb_warn("dirty: soft-dirty is compiled out of this kernel (pagemap bit 55 "
			 "stays clear after a write); refusing to report empty dirty sets");
	else if (r < 0)
		sqb_warn("dirty: soft-dirty probe failed: %d", r);
	else
		sqb_warn("dirty: soft-dirty works here but cannot collect atomically "
			 "(pagemap read and clear_refs are separate, clear_refs is "
			 "process-wide); use uffd-async");
	return -ENOTSUP;
}

static int sd_init(sqb_dirty *d)
{
	(void)d;
	return -ENOTSUP;
}

static int sd_none(sqb_dirty *d)
{
	(void)d;
	return -ENOTSUP;
}

static int sd_collect(sqb_dirty *d, uint64_t *bm)
{
	(void)d;
	(void)bm;
	return -ENOTSUP;
}

static void sd_fini(sqb_dirty *d)
{
	(void)d;
}

const struct sqb_dirty_ops sqb_dirty_softdirty_ops = {
    .id = SQB_DIRTY_SOFTDIRTY,
    .name = "soft-dirty",
    .caps = SQB_DIRTY_SEES_HOST | SQB_DIRTY_SEES_KERNEL,
    .probe = sd_probe,
    .init = sd_init,
    .start = sd_none,
    .collect = sd_collect,
    .stop = sd_none,
    .fini = sd_fini,
};
