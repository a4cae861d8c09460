/* Exactness harness (see dirty_harness.h).  Per epoch: writers run while
 * the main thread collects concurrently and copies every reported granule
 * into a shadow; then writers pause, one more collect, and every granule
 * must equal its shadow and every granule written must have been reported. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirty_harness.h"
#include "dirty_tinyvm.h"

#define HX_GPA_BASE (1ull << 30)

struct hx {
	const struct hx_opts *o;
	struct hx_result *r;
	sqb_dirty *d;
	unsigned caps;
	uint8_t *mem, *alias, *shadow;
	size_t len, half, gap, ngran, nwords;
	uint64_t gsz;
	struct sqb_dirty_range ranges[2];
	_Atomic uint64_t *written; /* granules written this epoch (set after the write) */
	uint64_t *uni, *bm;	   /* reported this epoch; scratch collect bitmap */
	pthread_barrier_t go, done;
	atomic_uint running;
	atomic_bool quit;
	atomic_int err;
	bool have_vm;
	struct tinyvm vm;
	_Atomic uint64_t host_writes, kernel_writes, alias_writes, guest_writes;
	struct sigaction old_segv; /* exit backend: the harness is the "vCPU loop" */
};

static struct hx *_Atomic hx_exit_current;

uint64_t hx_rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t off_to_gpa(const struct hx *h, size_t off)
{
	return HX_GPA_BASE + off + (off >= h->half ? h->gap : 0);
}

static size_t gpa_to_off(const struct hx *h, uint64_t gpa)
{
	uint64_t o = gpa - HX_GPA_BASE;

	return (size_t)(o >= h->half ? o - h->gap : o);
}

static void note_written(struct hx *h, size_t off, size_t n)
{
	for (size_t g = off / h->gsz; g <= (off + n - 1) / h->gsz; g++)
		atomic_fetch_or(&h->written[g / 64], 1ull << (g % 64));
}

static void fail(struct hx *h, int err)
{
	int zero = 0;

	atomic_compare_exchange_strong(&h->err, &zero, err);
}

/* One kernel write: read() from a pipe into tracked memory (or into the
 * alias plus a mark when the backend cannot see kernel writes). */
static void kernel_write(struct hx *h, int pfd[2], size_t off, size_t n)
{
	uint8_t buf[64];
	bool direct = (h->caps & SQB_DIRTY_SEES_KERNEL) || !h->alias;
	uint8_t *dst = direct ? h->mem : h->alias;

	for (size_t j = 0; j < n; j++)
		buf[j] = (uint8_t)(h->mem[off + j] + 1);
	if (write(pfd[1], buf, n) != (ssize_t)n || read(pfd[0], dst + off, n) != (ssize_t)n) {
		fail(h, -errno ? -errno : -EIO);
		return;
	}
	if (!direct || !(h->caps & SQB_DIRTY_SEES_KERNEL))
		sqb_dirty_mark(h->d, off_to_gpa(h, off), n);
	atomic_fetch_add(&h->kernel_writes, 1);
}

static void one_write(struct hx *h, uint64_t *seed, int pfd[2])
{
	size_t page = hx_rnd(seed) % h->o->pages, n = 1, off = page * 4096 + hx_rnd(seed) % 4000;
	unsigned kind = (unsigned)(hx_rnd(seed) % 8);

	if (kind == 0 && h->o->kernel && (h->alias || (h->caps & SQB_DIRTY_SEES_KERNEL))) {
		n = 1 + hx_rnd(seed) % 64;
		kernel_write(h, pfd, off, n);
	} else if (kind == 1 && h->alias) {
		/* The VMM's raw-pointer write (virtio DMA): invisible to any
		 * write-protect backend, so it must be marked. */
		h->alias[off]++;
		if (!h->o->unmarked)
			sqb_dirty_mark(h->d, off_to_gpa(h, off), 1);
		atomic_fetch_add(&h->alias_writes, 1);
	} else {
		((volatile uint8_t *)h->mem)[off]++;
		if (!(h->caps & SQB_DIRTY_SEES_HOST))
			sqb_dirty_mark(h->d, off_to_gpa(h, off), 1);
		atomic_fetch_add(&h->host_writes, 1);
	}
	note_written(h, off, n);
}

struct writer {
	struct hx *h;
	unsigned idx;
	pthread_t thr;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct hx *h = w->h;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (w->idx + 1);
	int pfd[2] = {-1, -1};

	if (pipe(pfd) != 0)
		fail(h, -errno);
	for (;;) {
		pthread_barrier_wait(&h->go);
		if (atomic_load(&h->quit))
			break;
		for (unsigned k = 0; k < h->o->writes && pfd[0] >= 0; k++)
			one_write(h, &seed, pfd);
		atomic_fetch_sub(&h->running, 1);
		pthread_barrier_wait(&h->done);
	}
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void *vcpu_main(void *arg)
{
	struct writer *w = arg;
	struct hx *h = w->h;
	uint64_t seed = 0x51ed27ull;
	unsigned n = h->o->writes * 4;
	uint32_t *list = calloc(n, sizeof(*list));

	for (;;) {
		pthread_barrier_wait(&h->go);
		if (atomic_load(&h->quit))
			break;
		for (unsigned k = 0; k < n && list; k++) {
			size_t off = (hx_rnd(&seed) % h->o->pages) * 4096 + hx_rnd(&seed) % 4096;
			list[k] = (uint32_t)off_to_gpa(h, off);
		}
		if (!list || tinyvm_touch(&h->vm, list, n) != 0)
			fail(h, -EIO);
		for (unsigned k = 0; k < n && list; k++)
			note_written(h, gpa_to_off(h, list[k]), 1);
		atomic_fetch_add(&h->guest_writes, n);
		atomic_fetch_sub(&h->running, 1);
		pthread_barrier_wait(&h->done);
	}
	free(list);
	return NULL;
}

/* Collect one epoch and copy its granules into the shadow, as a diff
 * snapshot writer would. */
static int collect_copy(struct hx *h)
{
	int err = sqb_dirty_collect(h->d, h->bm, h->nwords, NULL);

	if (err)
		return err;
	h->r->collects++;
	for (size_t w = 0; w < h->nwords; w++) {
		h->uni[w] |= h->bm[w];
		for (uint64_t v = h->bm[w]; v; v &= v - 1) {
			size_t g = w * 64 + (size_t)__builtin_ctzll(v);

			memcpy(h->shadow + g * h->gsz, h->mem + g * h->gsz, h->gsz);
		}
	}
	return 0;
}

static void check_epoch(struct hx *h, unsigned epoch)
{
	for (size_t g = 0; g < h->ngran; g++) {
		uint64_t bit = 1ull << (g % 64);
		bool w = atomic_load_explicit(&h->written[g / 64], memory_order_relaxed) & bit;
		bool u = h->uni[g / 64] & bit;
		bool changed = memcmp(h->mem + g * h->gsz, h->shadow + g * h->gsz, h->gsz) != 0;

		if (changed || (w && !u)) {
			if (h->r->misses++ < 8 && !h->o->unmarked)
				fprintf(stderr,
					"MISS epoch %u granule %zu: changed=%d written=%d\n", epoch,
					g, changed, w);
			memcpy(h->shadow + g * h->gsz, h->mem + g * h->gsz, h->gsz);
		} else if (u && !w) {
			h->r->over++;
		}
		h->r->written += w;
	}
	for (size_t w = 0; w < h->nwords; w++) {
		atomic_store(&h->written[w], 0);
		h->uni[w] = 0;
	}
}

static void child_writes(struct hx *h, unsigned epoch)
{
	uint64_t seed = 0xabcdefull + epoch;

	/* The child's copy diverges from ours; none of this may show up. */
	for (int k = 0; k < 64; k++)
		((volatile uint8_t *)
		     h->mem)[(hx_rnd(&seed) % h->o->pages) * 4096 + hx_rnd(&seed) % 4096] ^= 0x5a;
	_exit(0);
}

static int run_epochs(struct hx *h, unsigned nwriters)
{
	int err = 0;

	for (unsigned e = 0; e < h->o->epochs && !err; e++) {
		pid_t child = -1;

		atomic_store(&h->running, nwriters);
		pthread_barrier_wait(&h->go);
		if (h->o->fork_every && h->o->anon && e % h->o->fork_every == 0) {
			child = fork();
			if (child == 0)
				child_writes(h, e);
		}
		while (!err && atomic_load(&h->running) > 0) {
			err = collect_copy(h);
			h->r->racing_collects++;
			sched_yield(); /* let writers (and a uffd handler) run on 2 cores */
		}
		pthread_barrier_wait(&h->done);
		if (child > 0) {
			waitpid(child, NULL, 0);
			h->r->child_writes += 64;
		}
		if (!err)
			err = collect_copy(h);
		if (!err)
			err = atomic_load(&h->err);
		check_epoch(h, e);
		h->r->epochs++;
	}
	return err;
}

static int setup_memory(struct hx *h)
{
	const struct hx_opts *o = h->o;
	int fd = -1;

	h->gsz = o->granule ? o->granule : 4096;
	h->len = ((size_t)o->pages * 4096 + 2 * h->gsz - 1) / (2 * h->gsz) * (2 * h->gsz);
	h->half = h->len / 2;
	h->gap = h->gsz > (2u << 20) ? h->gsz : (2u << 20);
	if (!o->anon) {
		fd = memfd_create("sqb-dirty-test", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)h->len) != 0)
			return -errno;
	}
	h->mem = mmap(NULL, h->len, PROT_READ | PROT_WRITE,
		      o->anon ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
	if (!o->anon)
		h->alias = mmap(NULL, h->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd);
	if (h->mem == MAP_FAILED || h->alias == MAP_FAILED)
		return -ENOMEM;
	h->shadow = malloc(h->len);
	h->ngran = h->len / h->gsz;
	h->nwords = SQB_DIRTY_BITMAP_WORDS(h->ngran);
	h->written = calloc(h->nwords, sizeof(uint64_t));
	h->uni = calloc(h->nwords, sizeof(uint64_t));
	h->bm = calloc(h->nwords, sizeof(uint64_t));
	if (!h->shadow || !h->written || !h->uni || !h->bm)
		return -ENOMEM;
	/* Populate the first half only: populated and never-touched pages
	 * must both be tracked. */
	for (size_t i = 0; i < h->half; i += 4096)
		memset(h->mem + i, (int)(i / 4096), 4096);
	for (unsigned i = 0; i < 2; i++) {
		h->ranges[i] = (struct sqb_dirty_range){
		    .host = h->mem + i * h->half,
		    .gpa = off_to_gpa(h, i * h->half),
		    .len = h->half,
		    .kvm_slot = i + 1,
		};
	}
	return 0;
}

/* The exit backend's fault source for these tests: host stores hitting a
 * read-only mapping stand in for hvf's stage-2 write faults, the SIGSEGV
 * handler for the vCPU loop that reports them. */
static int hx_protect(void *ctx, uint64_t gpa, uint64_t len, int writable)
{
	struct hx *h = ctx;

	return mprotect(h->mem + gpa_to_off(h, gpa), len,
			writable ? PROT_READ | PROT_WRITE : PROT_READ)
		   ? -errno
		   : 0;
}

static void hx_segv(int sig, siginfo_t *si, void *uc)
{
	struct hx *h = atomic_load(&hx_exit_current);
	uint8_t *a = si->si_addr;

	(void)sig;
	(void)uc;
	if (h && a >= h->mem && a < h->mem + h->len &&
	    sqb_dirty_fault(h->d, off_to_gpa(h, (size_t)(a - h->mem))) == 1)
		return;
	signal(SIGSEGV, SIG_DFL);
}

static void exit_backend_setup(struct hx *h, struct sqb_dirty_opts *opts)
{
	struct sigaction sa = {.sa_sigaction = hx_segv, .sa_flags = SA_SIGINFO | SA_RESTART};

	opts->protect = hx_protect;
	opts->protect_ctx = h;
	atomic_store(&hx_exit_current, h);
	sigaction(SIGSEGV, &sa, &h->old_segv);
}

static int open_tracker(struct hx *h)
{
	struct sqb_dirty_opts opts = SQB_DIRTY_OPTS_INIT;
	bool want_vm =
	    h->o->backend == SQB_DIRTY_KVM || (h->o->guest && (h->caps & SQB_DIRTY_SEES_GUEST));
	int err;

	if (want_vm) {
		err = tinyvm_open(&h->vm, h->ranges, 2);
		if (err && h->o->backend == SQB_DIRTY_KVM) {
			snprintf(h->r->skip, sizeof(h->r->skip), "no usable /dev/kvm (%s)",
				 strerror(-err));
			return -ENOTSUP;
		}
		h->have_vm = err == 0;
	}
	opts.backend = h->o->backend;
	opts.granule = h->gsz;
	opts.ranges = h->ranges;
	opts.nranges = 2;
	opts.kvm_vm_fd = h->have_vm ? h->vm.vm : -1;
	if (h->o->backend == SQB_DIRTY_EXIT)
		exit_backend_setup(h, &opts);
	err = sqb_dirty_open(&h->d, &opts);
	if (err == -ENOTSUP)
		snprintf(h->r->skip, sizeof(h->r->skip), "backend %s unavailable here",
			 sqb_dirty_backend_name(h->o->backend));
	return err;
}

static void teardown(struct hx *h)
{
	sqb_dirty_free(h->d);
	if (atomic_load(&hx_exit_current) == h) {
		sigaction(SIGSEGV, &h->old_segv, NULL);
		atomic_store(&hx_exit_current, NULL);
	}
	if (h->have_vm)
		tinyvm_close(&h->vm);
	if (h->mem && h->mem != MAP_FAILED)
		munmap(h->mem, h->len);
	if (h->alias && h->alias != MAP_FAILED)
		munmap(h->alias, h->len);
	free(h->shadow);
	free((void *)h->written);
	free(h->uni);
	free(h->bm);
}

int hx_run(struct hx_result *r, const struct hx_opts *o)
{
	struct hx h = {.o = o, .r = r};
	struct writer w[17];
	unsigned nw = o->threads > 16 ? 16 : o->threads, nthr = 0;
	int err;

	memset(r, 0, sizeof(*r));
	sqb_dirty_caps(&h.caps, o->backend);
	if (o->backend == SQB_DIRTY_EXIT)
		h.caps = SQB_DIRTY_SEES_HOST; /* what the harness's fault source reports */
	err = setup_memory(&h);
	if (!err)
		err = open_tracker(&h);
	if (!err)
		err = sqb_dirty_start(h.d);
	if (err)
		goto out;
	memcpy(h.shadow, h.mem, h.len);
	pthread_barrier_init(&h.go, NULL, nw + h.have_vm + 1);
	pthread_barrier_init(&h.done, NULL, nw + h.have_vm + 1);
	for (; nthr < nw + h.have_vm; nthr++) {
		w[nthr] = (struct writer){.h = &h, .idx = nthr};
		pthread_create(&w[nthr].thr, NULL, nthr < nw ? writer_main : vcpu_main, &w[nthr]);
	}
	err = run_epochs(&h, nthr);
	atomic_store(&h.quit, true);
	pthread_barrier_wait(&h.go);
	for (unsigned i = 0; i < nthr; i++)
		pthread_join(w[i].thr, NULL);
	pthread_barrier_destroy(&h.go);
	pthread_barrier_destroy(&h.done);
	r->host_writes = h.host_writes;
	r->kernel_writes = h.kernel_writes;
	r->alias_writes = h.alias_writes;
	r->guest_writes = h.guest_writes;
	sqb_dirty_stats(h.d, &r->stats);
out:
	teardown(&h);
	return err;
}
