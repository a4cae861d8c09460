/* virtio-balloon on the VM's bus: the library device (runtime/virtio/
 * virtio_balloon.c) in a virtio-mmio slot through sqb_vdev_add_ext, with the
 * statistics timer as its tick and a discard that drops guest pages as their
 * host backing needs (docs/virtio.md "virtio-balloon", docs/format.md [F-120],
 * [F-121]). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dev_balloon.h"
#include "dev_virtio.h"
#include "log.h"
#include "vmm_priv.h"

#define MAPS_MAX (64u << 20) /* a /proc/self/maps larger than this is refused */
#define PAGE	 4096ull

/* What the balloon's ext callbacks need besides the library device. */
struct barg {
	struct sqb_balloon_cfg cfg;
	uint64_t guest_mib;
	struct sqb_gmem *mem; /* the slot's, from prepare */
	int maps_fd;	      /* /proc/self/maps, opened where the seccomp filter allows it */
	unsigned int huge_said; /* the 2 MiB-page note was logged (event loop only) */
};

/* ---- discarding host memory ---- */

static int read_maps(int fd, char **out, size_t *out_len)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	/* pread from 0 restarts the seq_file; unlike lseek it is on the
	 * event loop's and the vCPU's seccomp lists (a notify may run on
	 * either) */
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= MAPS_MAX || !(nb = realloc(buf, cap * 2))) {
				free(buf);
				return cap >= MAPS_MAX ? -SQB_ELIMIT : -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		n = pread(fd, buf + len, cap - len - 1, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	return 0;
}

/* One piece inside one mapping: the right tool for its kind. */
static int discard_piece(uint8_t *p, uint64_t len, int shared, int file)
{
	if (shared)
		return madvise(p, len, MADV_REMOVE) ? -errno : 0;
	if (file) {
		/* MADV_DONTNEED would bring the file's bytes back: replace the
		 * mapping with fresh anonymous zero pages instead */
		void *r = mmap(p, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
		return r == MAP_FAILED ? -errno : 0;
	}
	return madvise(p, len, MADV_DONTNEED) ? -errno : 0;
}

int sqb_balloon_discard_host(uint8_t *host, uint64_t len, int maps_fd)
{
	uintptr_t a = (uintptr_t)host, b = a + len, covered = 0;
	char *maps = NULL, *line;
	size_t mlen;
	int own = maps_fd < 0, err;

	if (!host || !len || (a & (PAGE - 1)) || (len & (PAGE - 1)) || b < a)
		return -EINVAL;
	/* The common case, guest RAM in the VM's memfd: one call punches the
	 * hole (and a lazy restore's userfaultfd sees UFFD_EVENT_REMOVE). */
	if (!madvise(host, len, MADV_REMOVE))
		return 0;
	if (errno != EINVAL && errno != EACCES && errno != EOPNOTSUPP)
		return -errno;
	/* Private mappings (an mmap-loaded snapshot: anonymous plus file runs)
	 * need to be told apart: ask the kernel which VMAs cover the range. */
	if (own && (maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	err = read_maps(maps_fd, &maps, &mlen);
	if (own)
		close(maps_fd);
	if (err)
		return err;
	for (line = maps; !err && line && *line;) {
		char *nl = strchr(line, '\n');
		unsigned long s, e, off, ino;
		char perms[8];
		unsigned int maj, min;

		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &s, &e, perms, &off, &maj, &min,
			   &ino) == 7 &&
		    e > a && s < b) {
			uintptr_t ps = s > a ? s : a, pe = e < b ? e : b;

			err = discard_piece((uint8_t *)ps, pe - ps, perms[3] == 's', ino != 0);
			covered += pe - ps;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(maps);
	if (!err && covered != len)
		err = -EFAULT; /* part of the range is not mapped at all */
	return err;
}

/* ---- the discard host op ---- */

/* [F-121]: checked against guest RAM, dropped, then reported written so
 * that the next Diff records the pages as zero (KVM's log never sees a
 * page that went away). */
static int host_discard(void *opaque, uint64_t gpa, uint64_t len)
{
	struct barg *a = opaque;
	struct sqb_gmem *m = a->mem;
	const struct sqb_gmem_hooks *h;
	int err;

	for (unsigned int i = 0; m && i < m->nregions; i++) {
		const struct sqb_mem_region *r = &m->regions[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		if (i >= m->nram && m->hp_bits && !sqb_mem_hotplug_ok(m, gpa - r->gpa, len))
			return -EFAULT; /* hotplug memory that is not plugged is no RAM */
		/* huge_pages 2M: a 4 KiB balloon page is part of a 2 MiB hugetlb
		 * page, which cannot be dropped in part; the balloon still holds
		 * the guest's memory down, the host keeps the page (as
		 * Firecracker: docs/hugepages.md "Known Limitations") */
		if (m->page_size != SQB_GMEM_PAGE) {
			if (!a->huge_said++)
				sqb_info("balloon: guest memory is in 2 MiB huge pages: pages the "
					 "guest gives up stay allocated on the host");
			return 0;
		}
		/* a background create still reading guest memory: dropping the
		 * pages would lose their pause-instant bytes from the file; zeros
		 * written through its write protection are copied aside first;
		 * those pages stay resident (zero) on the host, the file comes
		 * first (docs/snapshots.md "Background snapshots") */
		if (__atomic_load_n(&m->cow_armed, __ATOMIC_ACQUIRE)) {
			memset(r->host + (gpa - r->gpa), 0, len);
			err = 0;
		} else {
			err = sqb_balloon_discard_host(r->host + (gpa - r->gpa), len, a->maps_fd);
		}
		if (err)
			sqb_warn("balloon: discarding guest 0x%llx+0x%llx failed: %s",
				 (unsigned long long)gpa, (unsigned long long)len,
				 sqb_strerror(err));
		h = __atomic_load_n(&m->hooks, __ATOMIC_ACQUIRE);
		if (h && h->written)
			h->written(h->opaque, gpa, len);
		return err;
	}
	return -EFAULT;
}

/* ---- the ext device's callbacks ---- */

static int balloon_prepare(void *arg, struct sqb_gmem *mem)
{
	struct barg *a = arg;

	a->mem = mem;
	/* here, on the API thread: the event loop may not open files */
	a->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (a->maps_fd < 0)
		sqb_debug("balloon: /proc/self/maps: %s (private mappings: no discard)",
			  strerror(errno));
	return 0;
}

static int balloon_create(void *arg, sqb_vio_dev **out, const struct sqb_vio_host *host,
			  struct sqb_diag *diag)
{
	struct barg *a = arg;
	struct sqb_vio_balloon_opts o = SQB_VIO_BALLOON_OPTS_INIT;
	struct sqb_diag d = {0};

	(void)diag;
	o.amount_mib = a->cfg.amount_mib;
	o.deflate_on_oom = a->cfg.deflate_on_oom;
	o.stats_polling_interval_s = a->cfg.stats_polling_interval_s;
	o.free_page_hinting = a->cfg.free_page_hinting;
	o.free_page_reporting = a->cfg.free_page_reporting;
	o.guest_mib = a->guest_mib;
	o.discard = (struct sqb_vio_discard){a, host_discard};
	return sqb_vio_balloon_new(out, &o, host, &d);
}

static void balloon_tick(sqb_vio_dev *dev)
{
	(void)sqb_vio_balloon_stats_tick(dev);
}

/* The library's interval (configured, PATCHed or from a snapshot). */
static uint64_t balloon_tick_ns(sqb_vio_dev *dev)
{
	return (uint64_t)sqb_vio_balloon_stats_interval(dev) * 1000000000ull;
}

static void balloon_arg_free(void *arg)
{
	struct barg *a = arg;

	if (a->maps_fd >= 0)
		close(a->maps_fd);
	free(a);
}

int sqb_balloon_add(sqb_vm *vm, const struct sqb_balloon_cfg *cfg, struct sqb_diag *diag)
{
	struct sqb_vdev_ext ext = {0};
	struct barg *a;

	if (!vm || !cfg || cfg->version != SQB_BALLOON_VERSION)
		return -EINVAL;
	if (cfg->amount_mib > vm->mem.size >> 20) {
		if (diag)
			snprintf(diag->reason, sizeof(diag->reason),
				 "Amount of pages requested is too large.");
		return -EINVAL;
	}
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->cfg = *cfg;
	a->guest_mib = vm->mem.size >> 20;
	a->maps_fd = -1;
	ext.prepare = balloon_prepare;
	ext.create = balloon_create;
	ext.tick = balloon_tick;
	ext.tick_ns = balloon_tick_ns;
	ext.free_arg = balloon_arg_free;
	ext.arg = a;
	return sqb_vdev_add_ext(vm, SQB_BALLOON_ID, SQB_VIO_ID_BALLOON, &ext, diag);
}

sqb_vio_dev *sqb_balloon_dev(sqb_vm *vm)
{
	sqb_vio_dev *d = sqb_vdev_lib(vm, SQB_BALLOON_ID);

	/* a drive may be named "balloon" too */
	return d && sqb_vio_device_id(d) == SQB_VIO_ID_BALLOON ? d : NULL;
}

int sqb_balloon_set_stats_interval(sqb_vm *vm, uint16_t interval_s)
{
	sqb_vio_dev *d = sqb_balloon_dev(vm);
	int err;

	if (!d)
		return -ENODEV;
	if ((err = sqb_vio_balloon_set_stats_interval(d, interval_s)) < 0)
		return err;
	return sqb_vdev_retick(vm, SQB_BALLOON_ID);
}

void sqb_balloon_poll(sqb_vm *vm)
{
	if (sqb_balloon_dev(vm))
		sqb_vdev_poll(vm, SQB_BALLOON_ID);
}

uint64_t sqb_balloon_guest_mib(sqb_vm *vm)
{
	return vm ? vm->mem.size >> 20 : 0;
}
