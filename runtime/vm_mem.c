/* Guest memory: one memfd (so it can be registered with userfaultfd or
 * handed to a page server), mapped once in the VMM and split by the arch
 * layout (arch/<arch>/layout.h), or with huge_pages 2M one private hugetlb
 * mapping; and the accessor every VMM access to guest memory goes through
 * (gmem.h: bounds, dirty marks, lazy fetch). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

/* True when a file of size bytes would be more than RLIMIT_FSIZE allows. */
static int fsize_exceeds(uint64_t size)
{
	struct rlimit rl;

	return !getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	       size > (uint64_t)rl.rlim_cur;
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
	if (fsize_exceeds(size)) {
		/* A memfd's size counts against RLIMIT_FSIZE (the jailer's
		 * --resource-limit fsize=N): growing it past the limit would end
		 * squib with SIGXFSZ before the guest ever ran.  Firecracker's
		 * guest memory is anonymous unless vhost-user asks for a memfd;
		 * here too, then: private anonymous memory, no fd (vhost-user
		 * drives are refused with a reason; a snapshot still writes
		 * every page, and meets the limit there, as Firecracker does). */
		sqb_info("guest memory: %llu MiB is more than RLIMIT_FSIZE allows a file; "
			 "private anonymous memory instead of a memfd",
			 (unsigned long long)(size >> 20));
		m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m->host == MAP_FAILED) {
			m->host = NULL;
			return -errno;
		}
		if (huge == SQB_VM_HUGE_THP && madvise(m->host, size, MADV_HUGEPAGE) < 0)
			sqb_debug("MADV_HUGEPAGE refused: %d", errno);
		(void)madvise(m->host, size, MADV_DONTFORK); /* as the hugetlb memory */
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
	m->nregions = m->nram = sqb_arch_ram_layout(size, gpa, len, off);
	m->hp_bits = NULL;
	m->hp_block = m->hp_slot = 0;
	for (unsigned int i = 0; i < m->nregions; i++)
		m->regions[i] = (struct sqb_mem_region){gpa[i], len[i], m->host + off[i], off[i]};
	return 0;

err_fd:
	close(m->fd);
	m->fd = -1;
	m->host = NULL;
	return err;
}

int sqb_mem_add_hotplug(struct sqb_gmem *m, uint64_t gpa, uint64_t size, uint64_t block,
			uint64_t slot)
{
	const struct sqb_mem_region *last = &m->regions[m->nram - 1];
	uint64_t nblocks = block ? size / block : 0;
	uint8_t *p;
	int err;

	/* blocks of whole bitmap words of pages (the Diff's bitmaps) */
	if (m->nregions != m->nram || m->nregions >= SQB_GMEM_MAX_REGIONS || !size || !block ||
	    !slot || size % slot || slot % block || block % (64 * SQB_GMEM_PAGE) ||
	    gpa < last->gpa + last->size || gpa + size < gpa)
		return -EINVAL;
	/* growing the memfd past RLIMIT_FSIZE would raise SIGXFSZ; its
	 * regions are scanned through the memfd, so no anonymous tail either */
	if (m->fd >= 0 && fsize_exceeds(m->size + size))
		return -EFBIG;
	if (!(m->hp_bits = calloc((nblocks + 63) / 64, sizeof(uint64_t))))
		return -ENOMEM;
	if (m->fd >= 0) {
		/* in the memfd after RAM: SEEK_DATA scans, page servers and
		 * MADV_REMOVE treat it as RAM (Firecracker's file offset) */
		if (ftruncate(m->fd, (off_t)(m->size + size)) < 0)
			goto fail;
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd,
			 (off_t)m->size);
	} else {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (p == MAP_FAILED)
		goto fail;
	/* fd_offset: after RAM in the memfd, and in a memory file's raw
	 * layout (the Uffd handshake's offset) either way */
	m->regions[m->nregions++] = (struct sqb_mem_region){gpa, size, p, m->size};
	m->hp_block = block;
	m->hp_slot = slot;
	return 0;
fail:
	err = -errno;
	if (m->fd >= 0)
		(void)ftruncate(m->fd, (off_t)m->size);
	free(m->hp_bits);
	m->hp_bits = NULL;
	return err;
}

void sqb_mem_hotplug_set(struct sqb_gmem *m, uint64_t first, uint64_t n, int plugged)
{
	uint64_t nblocks;

	if (m->nregions == m->nram)
		return;
	nblocks = m->regions[m->nram].size / m->hp_block;
	for (uint64_t b = first; b < first + n && b < nblocks; b++) {
		uint64_t bit = 1ull << (b % 64);

		if (plugged)
			__atomic_fetch_or(&m->hp_bits[b / 64], bit, __ATOMIC_RELEASE);
		else
			__atomic_fetch_and(&m->hp_bits[b / 64], ~bit, __ATOMIC_RELEASE);
	}
}

int sqb_mem_hotplug_ok(const struct sqb_gmem *m, uint64_t off, uint64_t len)
{
	if (!len || !m->hp_bits)
		return 0;
	for (uint64_t b = off / m->hp_block; b <= (off + len - 1) / m->hp_block; b++)
		if (!(__atomic_load_n(&m->hp_bits[b / 64], __ATOMIC_ACQUIRE) >> (b % 64) & 1))
			return 0;
	return 1;
}

void sqb_mem_destroy(struct sqb_gmem *m)
{
	for (unsigned int i = m->nram; i < m->nregions; i++)
		munmap(m->regions[i].host, m->regions[i].size);
	m->nregions = m->nram;
	free(m->hp_bits);
	m->hp_bits = NULL;
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
		/* hotplug: an unplugged block is no more RAM than a hole */
		if (i >= m->nram && m->hp_bits && !sqb_mem_hotplug_ok(m, gpa - r->gpa, len))
			return NULL;
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

	for (unsigned int i = 0; h && h->own && i < m->nram; i++) {
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
