/* Linux UAPI that Debian 12's kernel headers (6.1) predate: userfaultfd
 * async write-protect (6.7) and the PAGEMAP_SCAN ioctl (6.7).  Values are
 * fixed kernel ABI; the backends probe the running kernel before use. */
#ifndef SQB_DIRTY_LINUX_COMPAT_H
#define SQB_DIRTY_LINUX_COMPAT_H

#include <stdint.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ull << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ull << 15)
#endif

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED     (1ull << 0)
#define PAGE_IS_WRITTEN	      (1ull << 1)
#define PM_SCAN_WP_MATCHING   (1ull << 0)
#define PM_SCAN_CHECK_WPASYNC (1ull << 1)

struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#endif
