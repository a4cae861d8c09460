/* Guest memory: one memfd (so it can be registered with userfaultfd or
 * handed to a page server), mapped once in the VMM and split by the arch
 * layout (arch/<arch>/layout.h), or with huge_pages 2M one private hugetlb
 * mapping; and the accessor every VMM access to guest memory goes through
 * (gmem.h: bounds, dirty marks, lazy fetch). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"
#include "gmem.h"
#include "log.h"
#include "squib/errors.h"
#include "squib/runtime.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26) /* log2(2 MiB) << MAP_HUGE_SHIFT */
#endif

/* The 2 MiB pool's free pages not promised to another mapping, or -1. */
static long hugetlb_2m_available(void)
{
	static const char *const f[2] = {"/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
					 "/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"};
	long v[2] = {-1, -1};

	for (int i = 0; i < 2; i++) {
		FILE *fp = fopen(f[i], "re");

		if (!fp || fscanf(fp, "%ld", &v[i]) != 1)
			v[i] = -1;
		if (fp)
			fclose(fp);
	}
	return v[0] < 0 || v[1] < 0 ? -1 : v[0] - v[1];
}

/* Firecracker's "2M": MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
 * MAP_HUGE_2MB (smaps: /anon_hugepage), but without its MAP_NORESERVE: the
 * kernel reserves every page now, so a small pool fails here with ENOMEM
 * instead of a SIGBUS when the guest or a device first touches a page. */
static int mem_create_hugetlb(struct sqb_gmem *m, uint64_t size, struct sqb_diag *diag)
{
	long avail;
	int err;

	if (size % SQB_GMEM_HUGE_PAGE)
		return -EINVAL; /* the API asks for an even mem_size_mib */
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (m->host != MAP_FAILED) {
		/* a child of squib (a helper before its exec) must not share
		 * private huge pages the VM then has to copy on write */
		(void)madvise(m->host, size, MADV_DONTFORK);
		return 0;
	}
	err = -errno;
	m->host = NULL;
	avail = hugetlb_2m_available();
	if (diag) {
		snprintf(diag->section, sizeof(diag->section), "memory");
		if (avail >= 0)
			snprintf(diag->reason, sizeof(diag->reason),
				 "huge_pages 2M: guest memory needs %llu free 2 MiB huge pages, "
				 "the host's pool has %ld free (raise /proc/sys/vm/nr_hugepages)",
				 (unsigned long long)(size / SQB_GMEM_HUGE_PAGE), avail);
		else
			snprintf(diag->reason, sizeof(diag->reason),
				 "huge_pages 2M: cannot reserve %llu 2 MiB huge pages (this host "
				 "has no 2 MiB hugetlbfs pool)",
				 (unsigned long long)(size / SQB_GMEM_HUGE_PAGE));
	}
	return err;
}

int sqb_mem_create(struct sqb_gmem *m, uint64_t size, int huge, struct sqb_diag *diag)
{
	uint64_t gpa[2], len[2], off[2];
	int err;

	m->hooks = NULL;
	m->fd = -1;
	m->page_size = SQB_GMEM_PAGE;
	if (huge == SQB_VM_HUGE_2M) {
		FORWARD_IF_ERROR(mem_create_hugetlb(m, size, diag));
		m->page_size = SQB_GMEM_HUGE_PAGE;
		goto regions;
	}
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
	if (huge == SQB_VM_HUGE_THP && madvise(m->host, size, MADV_HUGEPAGE) < 0)
		sqb_debug("MADV_HUGEPAGE refused: %d", errno); /* 4 KiB pages then */
regions:
	m->size = size;
	m->nregions = sqb_arch_ram_layout(size, gpa, len, off);
	for (unsigned int i = 0; i < m->nregions; i++)
		m->regions[i] = (struct sqb_mem_region){gpa[i], len[i], m->host + off[i], off[i]};
	return 0;

err_fd:
	close(m->fd);
	m->fd = -1;
	m->host = NULL;
	return err;
}

void sqb_mem_destroy(struct sqb_gmem *m)
{
	if (m->host && m->host != MAP_FAILED)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->host = NULL;
	m->fd = -1;
}

uint8_t *sqb_gmem_map(struct sqb_gmem *m, uint64_t gpa, uint64_t len, int write)
{
	const struct sqb_gmem_hooks *h;

	if (!len)
		return NULL;
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct sqb_mem_region *r = &m->regions[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL; /* runs past the region: never into the next one */
		h = __atomic_load_n(&m->hooks, __ATOMIC_ACQUIRE);
		if (h && h->prefault && h->prefault(h->opaque, gpa, len) < 0)
			return NULL;
		if (write && h && h->written)
			h->written(h->opaque, gpa, len);
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int sqb_gmem_read(struct sqb_gmem *m, void *dst, uint64_t gpa, uint64_t len)
{
	uint8_t *p = sqb_gmem_map(m, gpa, len, 0);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int sqb_gmem_write(struct sqb_gmem *m, uint64_t gpa, const void *src, uint64_t len)
{
	uint8_t *p = sqb_gmem_map(m, gpa, len, 0);
	const struct sqb_gmem_hooks *h;

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	/* marked after the copy: a collect racing it reports it now or next */
	h = __atomic_load_n(&m->hooks, __ATOMIC_ACQUIRE);
	if (h && h->written)
		h->written(h->opaque, gpa, len);
	return 0;
}

int sqb_gmem_write_owned(struct sqb_gmem *m, uint64_t gpa, const void *src, uint64_t len)
{
	const struct sqb_gmem_hooks *h = __atomic_load_n(&m->hooks, __ATOMIC_ACQUIRE);

	for (unsigned int i = 0; h && h->own && i < m->nregions; i++) {
		const struct sqb_mem_region *r = &m->regions[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		if (h->own(h->opaque, gpa, r->host + (gpa - r->gpa), len) < 0)
			return -EFAULT;
	}
	return sqb_gmem_write(m, gpa, src, len);
}

const struct sqb_gmem_hooks *sqb_gmem_set_hooks(struct sqb_gmem *m, const struct sqb_gmem_hooks *h)
{
	return __atomic_exchange_n(&m->hooks, h, __ATOMIC_ACQ_REL);
}
