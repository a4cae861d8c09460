/* Snapshot create (docs/snapshots.md): a paused VM's memory file (role
 * MEMORY, a Diff names the previous memory file as parent, format.md 6.2)
 * and state file (role STATE: VCPU, INTC, DEVS, CONF, META), written as a
 * pair tied by uuid + digest [F-46], then swapped into place together. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "snap_priv.h"

#define MAX_RECS 24

/* How the memory file of this create is written (docs/snapshots.md,
 * "Which memory file a create writes"). */
enum mem_plan {
	PLAN_FULL = 0,	   /* every page, no parent */
	PLAN_DIFF,	   /* dirty pages, PARENT for the rest */
	PLAN_DIFF_ALONE,   /* Diff with nothing to diff against: every page */
	PLAN_DIFF_OVERLAY, /* Diff over a file of its own chain: merged, every page */
};

/* An absolute path for a LINK hint: realpath of the folder + the name. */
static char *abs_path(const char *path)
{
	char *d = strdup(path), *b = strdup(path), *rd = NULL, *out = NULL;

	if (d && b && (rd = realpath(dirname(d), NULL)))
		if (asprintf(&out, "%s/%s", rd, basename(b)) < 0)
			out = NULL;
	free(d);
	free(b);
	free(rd);
	return out;
}

/* Finish what a vCPU's last exit started (KVM completes port and MMIO
 * accesses on the next run), on each vCPU's own thread, so the saved RIP
 * is after the instruction; then drain the devices: quiesce completes all
 * in-flight work and pushes its used entries [F-59] (resumed by the
 * caller once the files are written, or failed). */
static int settle_vcpus(struct sqb_vm *vm, struct sqb_diag *diag)
{
	int err;

	for (unsigned int i = 0; i < vm->nvcpus; i++)
		FORWARD_IF_ERROR(sqb_vcpu_settle(&vm->vcpus[i], diag));
	err = sqb_bus_quiesce(&vm->bus);
	if (err < 0)
		sqb_snap_diag(diag, "DEVS", "a device could not complete its requests: %s",
			      sqb_strerror(err));
	return err;
}

static int write_vcpus(struct sqb_vm *vm, sqb_snap_writer *w)
{
	struct sqb_record recs[MAX_RECS];
	unsigned int n = 0;
	int err = 0;

	for (unsigned int i = 0; i < vm->nvcpus && !err; i++) {
		err = sqb_vcpu_save_records(&vm->vcpus[i], recs, MAX_RECS, &n);
		if (!err)
			err = sqb_writer_add_vcpu(w, i, recs, n);
		for (unsigned int k = 0; k < n; k++)
			free((void *)recs[k].data);
		n = 0;
	}
	if (err)
		return err;
	err = vm->ops->vm_save_records(vm->hv, recs, MAX_RECS, &n);
	if (!err)
		err = sqb_writer_add_records(w, SQB_SEC_INTC, 0, recs, n);
	for (unsigned int k = 0; k < n; k++)
		free((void *)recs[k].data);
	return err;
}

static int kv(sqb_snap_writer *w, uint32_t sec, const char *key, const char *val)
{
	if (!val)
		return 0;
	return sqb_writer_set_kv(w, sec, key, val, (uint32_t)strlen(val));
}

static int kv_u64(sqb_snap_writer *w, const char *key, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	return kv(w, SQB_SEC_CONF, key, b);
}

static int write_conf(struct sqb_vm *vm, sqb_snap_writer *w, const struct sqb_vm_snap_create *o,
		      enum mem_plan plan)
{
	struct utsname u;

	FORWARD_IF_ERROR(kv_u64(w, "vcpu_count", vm->nvcpus));
	FORWARD_IF_ERROR(kv_u64(w, "mem_size_mib", vm->mem.size >> 20));
	FORWARD_IF_ERROR(kv_u64(w, "smt", (uint64_t) !!o->smt));
	FORWARD_IF_ERROR(kv_u64(w, "track_dirty_pages", (uint64_t) !!o->track_dirty));
	if (vm->pci) /* only then: older readers ignore the key anyway ([F-57]) */
		FORWARD_IF_ERROR(kv_u64(w, "pci", 1));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "huge_pages", sqb_vm_huge_name(vm->huge_pages)));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "kernel_image_path", o->kernel_path));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "initrd_path", o->initrd_path));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "boot_args", o->boot_args));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "vm_config_json", o->vm_config_json));
	/* what is on disk: a Diff written without a parent is complete */
	FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "snapshot_type", plan == PLAN_DIFF ? "Diff" : "Full"));
	if (plan == PLAN_DIFF_ALONE || plan == PLAN_DIFF_OVERLAY)
		FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "requested_type",
				    plan == PLAN_DIFF_ALONE ? "Diff (nothing to diff against)"
							    : "Diff (merged over its own chain)"));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "hypervisor", vm->ops->name));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "mem_format", o->raw_mem ? "raw" : "squib"));
	if (uname(&u) == 0)
		FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "host_kernel", u.release));
	return 0;
}

/* Page source over guest memory that reports memfd holes (never-touched
 * RAM) as ZERO without reading them: reading a shmem hole would allocate
 * it.  Data ranges come from SEEK_DATA / SEEK_HOLE, taken while paused. */
struct memsrc {
	const uint8_t *host;
	const uint64_t *dirty; /* Diff: clean pages are PARENT */
	uint64_t fd_off;
	uint64_t *beg, *end; /* data ranges, fd offsets, sorted */
	size_t n;
	int holes;
	/* background create: pause-instant bytes through copy-before-write */
	struct sqb_snap_cow *cow;
	unsigned int r;
	const int *cancel;
	/* pages that may hold data at the pause (write-protected then); the
	 * exact holes are scanned after the resume (rescan) */
	uint64_t *cover;
	int rescan;
};

static int memsrc_scan(struct memsrc *m, int fd, uint64_t size)
{
	off_t pos = (off_t)m->fd_off, lim = (off_t)(m->fd_off + size);
	size_t cap = 0;

	while (pos < lim) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0 || d >= lim)
			break; /* ENXIO: no more data */
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		if (m->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			uint64_t *b = realloc(m->beg, nc * 8), *e;
			if (!b)
				return -ENOMEM;
			m->beg = b;
			if (!(e = realloc(m->end, nc * 8)))
				return -ENOMEM;
			m->end = e;
			cap = nc;
		}
		m->beg[m->n] = (uint64_t)d;
		m->end[m->n++] = (uint64_t)(h < lim ? h : lim);
		pos = h;
	}
	m->holes = 1;
	return 0;
}

static int memsrc_is_data(const struct memsrc *m, uint64_t off)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->end[mid] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->n && m->beg[lo] <= off;
}

static int memsrc_get(void *ctx, uint64_t first, uint32_t n, const void **data, void *scratch,
		      uint8_t *kinds)
{
	const struct memsrc *m = ctx;

	*data = m->host + first * 4096;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p = first + i;
		if (m->dirty && !((m->dirty[p / 64] >> (p % 64)) & 1))
			kinds[i] = SQB_PAGE_PARENT;
		else if (m->cover && !((m->cover[p / 64] >> (p % 64)) & 1))
			kinds[i] = SQB_PAGE_ZERO; /* a hole at the pause, whatever since */
		else if (m->holes && !memsrc_is_data(m, m->fd_off + p * 4096))
			kinds[i] = SQB_PAGE_ZERO;
		else
			kinds[i] = SQB_PAGE_DATA;
	}
	if (!m->cow)
		return 0;
	if (__atomic_load_n(m->cancel, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	*data = scratch;
	return sqb_snap_cow_read(m->cow, m->r, first, n, kinds, scratch);
}

/* Which pages a background create reads (DATA kinds): the bits of want.
 * Walks the data ranges and ANDs the dirty words, not page by page. */
static uint64_t *memsrc_want(const struct memsrc *m, uint64_t npages)
{
	size_t nw = (npages + 63) / 64;
	uint64_t *w = calloc(nw, 8);

	if (!w)
		return NULL;
	if (m->cover) {
		memcpy(w, m->cover, nw * 8);
		return w; /* already ANDed with the dirty set */
	}
	if (!m->holes) {
		memset(w, 0xff, nw * 8);
	} else {
		for (size_t k = 0; k < m->n; k++) {
			uint64_t a = (m->beg[k] - m->fd_off) / 4096,
				 b = (m->end[k] - m->fd_off + 4095) / 4096;

			for (uint64_t p = a; p < b && p < npages;) {
				if (p % 64 == 0 && p + 64 <= b && p + 64 <= npages) {
					w[p / 64] = ~0ull;
					p += 64;
				} else {
					w[p / 64] |= 1ull << (p % 64);
					p++;
				}
			}
		}
	}
	if (npages % 64)
		w[nw - 1] &= (1ull << (npages % 64)) - 1;
	for (size_t k = 0; m->dirty && k < nw; k++)
		w[k] &= m->dirty[k];
	return w;
}

/* A Diff of a few dirty pages skips the hole scan (SEEK_DATA over the whole
 * memfd, milliseconds of the pause for a large guest): the guest wrote its
 * dirty pages, so they are data; one removed since (a balloon) reads as
 * zeros.  Not when most pages count as dirty (a failed collect): reading
 * every hole would allocate it. */
static int sparse_diff(const struct memsrc *m, uint64_t npages)
{
	uint64_t n = 0;

	if (!m->dirty)
		return 0;
	for (uint64_t k = 0; k < npages / 64; k++)
		n += (uint64_t)__builtin_popcountll(m->dirty[k]);
	return n * 4 <= npages;
}

static int memsrc_init(struct sqb_vm *vm, struct sqb_snapstate *ss, unsigned int r, int diff,
		       struct memsrc *m)
{
	const struct sqb_mem_region *rg = &vm->mem.regions[r];
	int err = 0;

	*m = (struct memsrc){rg->host, diff ? sqb_snap_dirty_region(vm, ss, r) : NULL,
			     rg->fd_offset};
	m->r = r;
	if (!ss->no_holes && vm->mem.fd >= 0 && !sparse_diff(m, rg->size / 4096))
		err = memsrc_scan(m, vm->mem.fd, rg->size);
	return err;
}

/* Background create, while paused: which pages may hold data, in chunks of
 * COVER_CHUNK pages.  One SEEK_DATA per chunk that holds data hops over the
 * holes; no SEEK_HOLE walk over every data page (3 ms for 200 MiB here),
 * which the writer does after the resume.  A page outside every chunk was
 * a hole at the pause: it is written as ZERO whatever the guest does next.
 * Holes inside a chunk are write-protected too (a marker, ~10 ns a page). */
#define COVER_CHUNK 512u /* pages: 2 MiB */

static int memsrc_cover(struct memsrc *m, int fd, uint64_t npages)
{
	size_t nw = (npages + 63) / 64;
	off_t pos = (off_t)m->fd_off, lim = (off_t)(m->fd_off + npages * 4096);

	m->cover = calloc(nw ? nw : 1, 8);
	if (!m->cover)
		return -ENOMEM;
	while (pos < lim) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		uint64_t a, b;

		if (d < 0 && errno != ENXIO)
			return -errno;
		if (d < 0 || d >= lim)
			break; /* ENXIO: no more data */
		a = ((uint64_t)d - m->fd_off) / 4096;
		b = a + COVER_CHUNK < npages ? a + COVER_CHUNK : npages;
		for (uint64_t p = a; p < b;) {
			if (p % 64 == 0 && p + 64 <= b) {
				m->cover[p / 64] = ~0ull;
				p += 64;
			} else {
				m->cover[p / 64] |= 1ull << (p % 64);
				p++;
			}
		}
		pos = (off_t)(m->fd_off + b * 4096);
	}
	for (size_t k = 0; m->dirty && k < nw; k++)
		m->cover[k] &= m->dirty[k];
	m->rescan = 1;
	return 0;
}

/* Background create, while paused: the sources of region r.  A sparse Diff
 * needs no scan (sparse_diff); anything else gets the coarse cover. */
static int memsrc_init_bg(struct sqb_vm *vm, struct sqb_snapstate *ss, unsigned int r, int diff,
			  struct memsrc *m)
{
	const struct sqb_mem_region *rg = &vm->mem.regions[r];

	*m = (struct memsrc){rg->host, diff ? sqb_snap_dirty_region(vm, ss, r) : NULL,
			     rg->fd_offset};
	m->r = r;
	if (sparse_diff(m, rg->size / 4096))
		return 0;
	return memsrc_cover(m, vm->mem.fd, rg->size / 4096);
}

static void memsrc_fini(struct memsrc *m)
{
	free(m->beg);
	free(m->end);
	free(m->cover);
	m->beg = m->end = NULL;
	m->cover = NULL;
}

/* pre: the background create's sources, scanned at the pause instant */
static int add_region(struct sqb_vm *vm, struct sqb_snapstate *ss, sqb_snap_writer *w,
		      unsigned int r, int diff, struct memsrc *pre)
{
	const struct sqb_mem_region *rg = &vm->mem.regions[r];
	struct memsrc m;
	struct sqb_page_source src = {memsrc_get, pre ? pre : &m};
	int err = 0;

	if (!pre)
		err = memsrc_init(vm, ss, r, diff, &m);
	if (!err)
		err = sqb_writer_add_memory_src(w, rg->gpa, rg->size, &src);
	if (!pre)
		memsrc_fini(&m);
	return err;
}

static int write_memory(struct sqb_vm *vm, struct sqb_snapstate *ss,
			const struct sqb_vm_snap_create *o, enum mem_plan plan,
			const struct sqb_uuid *state_uuid, const char *state_hint,
			struct sqb_uuid *uuid, struct sqb_digest *digest, sqb_snap_writer **out,
			struct memsrc *pre)
{
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w = NULL;
	int diff = plan == PLAN_DIFF, err;

	wo.arch = vm->ops->snap_arch;
	wo.hv = vm->ops->snap_hv;
	wo.role = SQB_ROLE_MEMORY;
	wo.codec = o->codec;
	wo.level = o->level;
	wo.dedup = o->dedup;
	wo.parent = diff ? ss->parent : NULL;
	wo.companion_uuid = state_uuid;
	wo.companion_path_hint = state_hint;
	wo.defer_commit = 1;
	if (pre)
		wo.uuid = uuid; /* chosen at the pause: the state file names it */
	FORWARD_IF_ERROR(sqb_writer_open(&w, o->mem_path, &wo));
	for (unsigned int r = 0; r < vm->mem.nregions; r++)
		if ((err = add_region(vm, ss, w, r, diff, pre ? &pre[r] : NULL)))
			goto fail;
	if ((err = sqb_writer_finish(w, uuid, digest)))
		goto fail;
	*out = w;
	return 0;
fail:
	sqb_writer_free(w);
	return err;
}

/* The state file; with raw_mem it also carries the memory index, and its
 * writer writes the raw memory file (role COMPLETE + XMEM, format.md 7.5). */
static int write_state(struct sqb_vm *vm, struct sqb_snapstate *ss,
		       const struct sqb_vm_snap_create *o, enum mem_plan plan,
		       const struct sqb_uuid *uuid, const struct sqb_uuid *mem_uuid,
		       const struct sqb_digest *mem_digest, const char *mem_hint,
		       sqb_snap_writer **out)
{
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w = NULL;
	int err = 0;

	wo.arch = vm->ops->snap_arch;
	wo.hv = vm->ops->snap_hv;
	wo.role = SQB_ROLE_STATE;
	wo.uuid = uuid;
	wo.companion_uuid = mem_uuid;
	wo.companion_digest = mem_digest;
	wo.companion_path_hint = mem_hint;
	wo.defer_commit = 1;
	if (o->raw_mem) {
		wo.role = SQB_ROLE_COMPLETE;
		wo.companion_uuid = NULL;
		wo.companion_digest = NULL;
		wo.companion_path_hint = NULL;
		wo.external_path = mem_hint; /* absolute */
		wo.parent = plan == PLAN_DIFF ? ss->parent : NULL;
	}
	FORWARD_IF_ERROR(sqb_writer_open(&w, o->state_path, &wo));
	for (unsigned int r = 0; o->raw_mem && r < vm->mem.nregions && !err; r++)
		err = add_region(vm, ss, w, r, plan == PLAN_DIFF, NULL);
	if (!err)
		err = write_vcpus(vm, w);
	if (!err)
		err = sqb_snap_devs_save(vm, w);
	if (!err)
		err = write_conf(vm, w, o, plan);
	if (!err && !o->background)
		err = sqb_writer_finish(w, NULL, NULL);
	if (err) {
		sqb_writer_free(w);
		return err;
	}
	*out = w;
	return 0;
}

/* Is name "<base>.tmp.XXXXXX", the writer's temporary for base? */
int sqb_snap_is_temp_of(const char *name, const char *base)
{
	size_t n = strlen(base);

	if (strncmp(name, base, n) || strncmp(name + n, ".tmp.", 5) || strlen(name + n + 5) != 6)
		return 0;
	for (const char *p = name + n + 5; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

/* Remove what an earlier create to this path left when it was killed:
 * "<path>.tmp.XXXXXX" files that no live writer holds locked.  Only that
 * exact pattern, only in the target's folder, only unlocked regular files. */
static void sweep_stale(const char *path)
{
	char *d = strdup(path), *b = strdup(path);
	const char *base = b ? basename(b) : NULL;
	DIR *dir = d ? opendir(dirname(d)) : NULL;
	struct dirent *e;

	while (dir && base && (e = readdir(dir))) {
		int fd;

		if (!sqb_snap_is_temp_of(e->d_name, base))
			continue;
		fd = openat(dirfd(dir), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		{
			struct stat st;

			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
			    flock(fd, LOCK_EX | LOCK_NB) == 0) {
				sqb_info("removing %s, left by an interrupted snapshot create",
					 e->d_name);
				unlinkat(dirfd(dir), e->d_name, 0);
			}
		}
		close(fd);
	}
	if (dir)
		closedir(dir);
	free(d);
	free(b);
}

/* Commits to one folder are serialized across processes (flock on the
 * folder): two squibs creating to the same paths end with one complete
 * pair, never one's state beside the other's memory.  Folders are locked
 * in inode order; fds[] are closed to unlock (-1: none). */
static void lock_folders(const char *a, const char *b, int fds[2])
{
	char *da = strdup(a), *db = strdup(b);
	struct stat sa, sb;

	fds[0] = fds[1] = -1;
	if (da && db && !stat(dirname(da), &sa) && !stat(dirname(db), &sb)) {
		int same = sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
		int swap = !same && sb.st_ino < sa.st_ino;

		fds[0] = sqb_lock_folder(swap ? b : a, LOCK_EX);
		if (!same)
			fds[1] = sqb_lock_folder(swap ? a : b, LOCK_EX);
	}
	free(da);
	free(db);
}

/* Move both finished temporaries into place: one rename per file, then one
 * fsync per folder so that the pair is durable when the API answers.  An
 * existing memory file is swapped out with RENAME_EXCHANGE so that a failed
 * second rename can swap it back; the pair appears together or not at all.
 * A kill between the two renames leaves the old state beside the new
 * memory, with the old memory under its temporary name: the load finds it
 * there by identity (snap_load.c), and the next create removes it. */
static int commit_pair(const char *mem_tmp, const char *mem, const char *st_tmp, const char *st)
{
	int mem_old, err, locks[2];

	lock_folders(mem, st, locks);
	sweep_stale(mem);
	sweep_stale(st);
	mem_old = access(mem, F_OK) == 0;
	if (mem_old ? renameat2(AT_FDCWD, mem_tmp, AT_FDCWD, mem, RENAME_EXCHANGE)
		    : rename(mem_tmp, mem)) {
		err = -errno;
		goto out;
	}
	if (sqb_fault_enabled("kill_between_renames"))
		raise(SIGKILL); /* crash-consistency tests */
	if (rename(st_tmp, st) < 0) {
		err = -errno;
		if (mem_old)
			renameat2(AT_FDCWD, mem_tmp, AT_FDCWD, mem, RENAME_EXCHANGE);
		else
			rename(mem, mem_tmp);
		goto out;
	}
	if (mem_old)
		unlink(mem_tmp); /* the previous memory file, swapped out */
	err = sqb_fsync_dir(mem);
	{
		char *a = strdup(mem), *b = strdup(st);
		if (a && b && strcmp(dirname(a), dirname(b)) && !err)
			err = sqb_fsync_dir(st);
		free(a);
		free(b);
	}
out:
	for (int i = 0; i < 2; i++)
		if (locks[i] >= 0)
			close(locks[i]);
	return err;
}

static int same_file(const struct stat *a, int fd)
{
	struct stat b;

	return fd >= 0 && fstat(fd, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

/* Does file st hold bytes of snapshot p: its squib file, or (XMEM) its raw
 * memory file? */
static int holds(const struct stat *st, const sqb_snap *p)
{
	return same_file(st, sqb_snap_fd(p)) || same_file(st, sqb_snap_container_fd(p));
}

/* Is an existing file at either path one that the next Diff would depend
 * on: the parent or any of its ancestors?  Returns 1 / 0; *broken = 1 when
 * the parent's own chain cannot be opened (a Diff on it would not load). */
static int in_own_chain(struct sqb_snapstate *ss, const char *const paths[2], int *broken)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *chain = NULL;
	int hit = 0;

	*broken = !sqb_uuid_is_zero(&sqb_snap_get_info(ss->parent)->parent_uuid) &&
		  sqb_snap_open(&chain, sqb_snap_path(ss->parent), &oo, NULL) != 0;
	for (int i = 0; i < 2 && !hit; i++) {
		struct stat st;

		if (stat(paths[i], &st))
			continue;
		hit = holds(&st, ss->parent);
		for (const sqb_snap *p = chain ? sqb_snap_parent(chain) : NULL; p && !hit;
		     p = sqb_snap_parent(p))
			hit = holds(&st, p);
	}
	sqb_snap_free(chain);
	return hit;
}

/* Validate the request and decide how the memory file is written. */
static int check_request(struct sqb_vm *vm, struct sqb_snapstate *ss,
			 const struct sqb_vm_snap_create *o, enum mem_plan *plan,
			 struct sqb_diag *diag)
{
	int broken = 0;

	if (!o || o->version != SQB_VM_SNAP_CREATE_VERSION || !o->state_path || !o->mem_path ||
	    (o->type != SQB_VM_SNAP_FULL && o->type != SQB_VM_SNAP_DIFF))
		return -EINVAL;
	if (sqb_vm_get_state(vm) != SQB_VM_PAUSED) {
		sqb_snap_diag(diag, "state", "the microVM must be paused to create a snapshot");
		return -SQB_ESTATE;
	}
	if (!strcmp(o->state_path, o->mem_path)) {
		sqb_snap_diag(diag, "paths", "snapshot_path and mem_file_path must differ");
		return -EINVAL;
	}
	/* A FIFO, device or folder at a target path is somebody's plumbing, not
	 * an old snapshot: refuse rather than rename over it (issue 17). */
	for (int i = 0; i < 2; i++) {
		const char *p = i ? o->mem_path : o->state_path;
		struct stat st;

		if (stat(p, &st) == 0 && !S_ISREG(st.st_mode)) {
			sqb_snap_diag(diag, "paths",
				      "%s exists and is not a regular file (a FIFO, device or "
				      "folder cannot hold a snapshot)",
				      p);
			return -EINVAL;
		}
	}
	*plan = PLAN_FULL;
	if (o->type != SQB_VM_SNAP_DIFF)
		return 0;
	/* Firecracker: the first Diff holds all memory written since boot; a
	 * Diff without tracking holds the resident set.  Both are complete
	 * memory files here (never-touched pages are holes, stored as ZERO). */
	if (!ss->dirty || !ss->parent) {
		*plan = PLAN_DIFF_ALONE;
		return 0;
	}
	/* [S-1] never write a Diff over a file its own chain needs: that is
	 * Firecracker's overlay, so write the merged memory (every page). */
	if (in_own_chain(ss, (const char *const[2]){o->mem_path, o->state_path}, &broken)) {
		*plan = PLAN_DIFF_OVERLAY;
		return 0;
	}
	if (broken) {
		sqb_warn("the parent chain of %s does not open: writing a complete memory file",
			 sqb_snap_path(ss->parent));
		*plan = PLAN_DIFF_ALONE;
		return 0;
	}
	*plan = PLAN_DIFF;
	return 0;
}

static void new_uuid(struct sqb_uuid *u)
{
	do {
		if (getrandom(u->b, sizeof(u->b), 0) != (ssize_t)sizeof(u->b))
			for (size_t i = 0; i < sizeof(u->b); i++)
				u->b[i] = (uint8_t)(rand() ^ (int)sqb_now_ns());
	} while (sqb_uuid_is_zero(u));
}

/* After a successful write: the dirty set is empty and the new memory file
 * is the next Diff's parent. */
static void after_success(struct sqb_snapstate *ss, const char *mem_abs, const char *raw_abs)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *p = NULL;

	oo.external_path = raw_abs; /* raw_mem: the state file is the parent */
	if (ss->pending)
		memset(ss->pending, 0, ss->nwords * sizeof(uint64_t));
	oo.no_parents = 1;
	if (sqb_snap_open(&p, mem_abs, &oo, NULL) == 0) {
		sqb_snap_free(ss->parent);
		ss->parent = p;
	} else {
		sqb_warn("cannot reopen %s: the next Diff needs a Full first", mem_abs);
		sqb_snap_free(ss->parent);
		ss->parent = NULL;
	}
}

/* ---- background create (docs/snapshots.md, "Background snapshots") ---- */

struct snap_bg {
	pthread_t thr;
	struct sqb_vm *vm;
	struct sqb_snapstate *ss;
	struct sqb_vm_snap_create o; /* paths point at the copies below */
	char *state_path, *mem_path, *mem_abs, *st_abs;
	enum mem_plan plan;
	struct sqb_uuid st_uuid, mem_uuid;
	sqb_snap_writer *sw; /* state file, complete but for the memory digest */
	struct sqb_snap_cow *cow;
	struct memsrc ms[SQB_GMEM_MAX_REGIONS];
	int cancel;
	uint64_t t_ret; /* when the create returned */
};

static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER; /* ss->bg_status */

static void bg_set(struct sqb_snapstate *ss, enum sqb_vm_snap_bg_state st, const char *reason)
{
	pthread_mutex_lock(&bg_lock);
	ss->bg_status.state = st;
	if (reason)
		snprintf(ss->bg_status.reason, sizeof(ss->bg_status.reason), "%s", reason);
	pthread_mutex_unlock(&bg_lock);
}

static void bg_free(struct snap_bg *bg)
{
	sqb_snap_cow_free(bg->cow);
	if (bg->cow)
		__atomic_store_n(&bg->vm->mem.cow_armed, 0, __ATOMIC_RELEASE);
	sqb_writer_free(bg->sw);
	for (unsigned int r = 0; r < SQB_GMEM_MAX_REGIONS; r++)
		memsrc_fini(&bg->ms[r]);
	free(bg->state_path);
	free(bg->mem_path);
	free(bg->mem_abs);
	free(bg->st_abs);
	free(bg);
}

static void *bg_thread(void *arg)
{
	struct snap_bg *bg = arg;
	struct sqb_digest mem_digest;
	sqb_snap_writer *mw = NULL;
	uint64_t copied;
	char why[256] = "";
	struct sched_param sp = {0};
	int err;

	/* the API thread answering the create and the resume, and the vCPUs,
	 * win every wake-up against the writer (a 2-core host: the resume
	 * request waited ~8 ms behind it) */
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	if (sqb_fault_enabled("bg_slow_writer"))
		usleep(500 * 1000); /* tests: the guest writes before any page is read */
	/* the exact holes, now that the guest runs: a hole now was a hole at
	 * the pause (pages only appear), and a page filled since is read
	 * through copy-before-write, which kept its pause-instant zeros */
	err = 0;
	for (unsigned int r = 0; r < bg->vm->mem.nregions && !err; r++)
		if (bg->ms[r].rescan)
			err = memsrc_scan(&bg->ms[r], bg->vm->mem.fd, bg->vm->mem.regions[r].size);
	if (!err)
		err = write_memory(bg->vm, bg->ss, &bg->o, bg->plan, &bg->st_uuid, bg->st_abs,
				   &bg->mem_uuid, &mem_digest, &mw, bg->ms);
	/* every page is read: nothing is protected any more */
	copied = sqb_snap_cow_copied(bg->cow);
	sqb_snap_cow_free(bg->cow);
	__atomic_store_n(&bg->vm->mem.cow_armed, 0, __ATOMIC_RELEASE);
	bg->cow = NULL;
	if (err) {
		snprintf(why, sizeof(why), "writing %s failed: %s", bg->o.mem_path,
			 sqb_strerror(err));
		goto out;
	}
	err = sqb_writer_set_companion(bg->sw, &bg->mem_uuid, &mem_digest);
	if (!err)
		err = sqb_writer_finish(bg->sw, NULL, NULL);
	if (!err) {
		err = commit_pair(sqb_writer_temp_path(mw), bg->o.mem_path,
				  sqb_writer_temp_path(bg->sw), bg->o.state_path);
		if (!err || access(sqb_writer_temp_path(bg->sw), F_OK) != 0) {
			sqb_writer_disown_temp(mw);
			sqb_writer_disown_temp(bg->sw);
		}
	}
	if (err)
		snprintf(why, sizeof(why), "writing %s failed: %s", bg->o.state_path,
			 sqb_strerror(err));
	else
		after_success(bg->ss, bg->mem_abs, NULL);
out:
	sqb_writer_free(mw);
	sqb_writer_free(bg->sw);
	bg->sw = NULL;
	pthread_mutex_lock(&bg_lock);
	bg->ss->bg_status.write_ms = (sqb_now_ns() - bg->t_ret) / 1000000;
	bg->ss->bg_status.pages_copied = copied;
	pthread_mutex_unlock(&bg_lock);
	if (err)
		sqb_warn("background snapshot %s: %s", bg->o.state_path, why);
	else
		sqb_info("background snapshot %s durable (%llu pages copied before a write)",
			 bg->o.state_path, (unsigned long long)copied);
	bg_set(bg->ss, err ? SQB_VM_SNAP_BG_FAILED : SQB_VM_SNAP_BG_DONE, err ? why : "");
	return NULL;
}

void sqb_snap_bg_join(struct sqb_snapstate *ss, int cancel)
{
	struct snap_bg *bg = ss->bg;

	if (!bg)
		return;
	if (cancel)
		__atomic_store_n(&bg->cancel, 1, __ATOMIC_RELEASE);
	pthread_join(bg->thr, NULL);
	bg_free(bg);
	ss->bg = NULL;
}

void sqb_vm_snapshot_status(sqb_vm *vm, struct sqb_vm_snap_status *out)
{
	memset(out, 0, sizeof(*out));
	if (!vm || !vm->snap)
		return;
	pthread_mutex_lock(&bg_lock);
	*out = vm->snap->bg_status;
	pthread_mutex_unlock(&bg_lock);
}

/* While paused: scan holes, capture the state file, protect the pages the
 * memory file will read, start the writer; the VM may resume on return. */
static int start_background(struct sqb_vm *vm, struct sqb_snapstate *ss,
			    const struct sqb_vm_snap_create *o, enum mem_plan plan,
			    const char *mem_abs, const char *st_abs, uint64_t t0,
			    struct sqb_diag *diag)
{
	struct snap_bg *bg = calloc(1, sizeof(*bg));
	uint64_t *want[SQB_GMEM_MAX_REGIONS] = {0};
	struct sqb_digest none = {0};
	uint64_t ta = sqb_now_ns(), tb = 0, tc = 0, td = 0;
	int err = -ENOMEM;

	if (!bg)
		return -ENOMEM;
	bg->vm = vm;
	bg->ss = ss;
	bg->plan = plan;
	bg->o = *o;
	bg->state_path = strdup(o->state_path);
	bg->mem_path = strdup(o->mem_path);
	bg->mem_abs = strdup(mem_abs);
	bg->st_abs = strdup(st_abs);
	if (!bg->state_path || !bg->mem_path || !bg->mem_abs || !bg->st_abs)
		goto fail;
	bg->o.state_path = bg->state_path;
	bg->o.mem_path = bg->mem_path;
	bg->o.kernel_path = bg->o.initrd_path = bg->o.boot_args = bg->o.vm_config_json = NULL;
	new_uuid(&bg->st_uuid);
	new_uuid(&bg->mem_uuid);
	for (unsigned int r = 0; r < vm->mem.nregions; r++) {
		if ((err = memsrc_init_bg(vm, ss, r, plan == PLAN_DIFF, &bg->ms[r])))
			goto fail;
		bg->ms[r].cancel = &bg->cancel;
		err = -ENOMEM;
		if (!(want[r] = memsrc_want(&bg->ms[r], vm->mem.regions[r].size / 4096)))
			goto fail;
	}
	tb = sqb_now_ns();
	err = write_state(vm, ss, o, plan, &bg->st_uuid, &bg->mem_uuid, &none, mem_abs, &bg->sw);
	tc = sqb_now_ns();
	if (err) {
		sqb_snap_diag(diag, "state", "capturing the state failed: %s", sqb_strerror(err));
		goto fail;
	}
	/* owns want[] (and a live create's early protection) from here */
	err = sqb_snap_cow_arm(&bg->cow, vm, want, ss->prearm);
	ss->prearm = NULL;
	memset(want, 0, sizeof(want));
	/* the balloon's and virtio-mem's discards write zeros now */
	__atomic_store_n(&vm->mem.cow_armed, !err, __ATOMIC_RELEASE);
	if (err) {
		sqb_snap_diag(diag, "memory", "cannot write-protect guest memory (userfaultfd): %s",
			      sqb_strerror(err));
		goto fail;
	}
	td = sqb_now_ns();
	sqb_info("snapshot create (background): settle+dirty %.2f ms, cover %.2f ms, state "
		 "%.2f ms, write-protect %.2f ms",
		 (ta - t0) / 1e6, (tb - ta) / 1e6, (tc - tb) / 1e6, (td - tc) / 1e6);
	for (unsigned int r = 0; r < vm->mem.nregions; r++)
		bg->ms[r].cow = bg->cow;
	pthread_mutex_lock(&bg_lock);
	memset(&ss->bg_status, 0, sizeof(ss->bg_status));
	ss->bg_status.state = SQB_VM_SNAP_BG_WRITING;
	snprintf(ss->bg_status.state_path, sizeof(ss->bg_status.state_path), "%s", o->state_path);
	snprintf(ss->bg_status.mem_path, sizeof(ss->bg_status.mem_path), "%s", o->mem_path);
	bg->t_ret = sqb_now_ns();
	ss->bg_status.pause_us = (bg->t_ret - t0) / 1000;
	pthread_mutex_unlock(&bg_lock);
	err = -pthread_create(&bg->thr, NULL, bg_thread, bg);
	if (err) {
		bg_set(ss, SQB_VM_SNAP_BG_FAILED, "cannot start the writer thread");
		goto fail;
	}
	ss->bg = bg;
	return 0;
fail:
	for (unsigned int r = 0; r < SQB_GMEM_MAX_REGIONS; r++)
		free(want[r]);
	bg_free(bg);
	return err;
}

/* A background create refuses what it cannot do before anything runs. */
static int check_background(struct sqb_vm *vm, struct sqb_snapstate *ss,
			    const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
	if (o->raw_mem) {
		sqb_snap_diag(diag, "squib.background",
			      "a background create needs the squib memory format (mem_format "
			      "\"raw\" is written in the pause)");
		return -EINVAL;
	}
	if (vm->mem.page_size != SQB_GMEM_PAGE) {
		sqb_snap_diag(diag, "squib.background",
			      "huge_pages 2M guest memory cannot be write-protected 4 KiB at a "
			      "time: create in the foreground");
		return -ENOTSUP;
	}
	if (vm->mem.fd < 0 && !ss->no_holes) {
		sqb_snap_diag(diag, "squib.background",
			      "guest memory larger than RLIMIT_FSIZE is private anonymous "
			      "memory, not a memfd, and cannot be write-protected: create in "
			      "the foreground");
		return -ENOTSUP;
	}
	if (vm->mem.fd < 0 || ss->no_holes) {
		sqb_snap_diag(diag, "squib.background",
			      "memory mapped from a snapshot file or a page server (mmap, "
			      "lazy, Uffd load) cannot be write-protected: create in the "
			      "foreground, or load with restore eager");
		return -ENOTSUP;
	}
	return 0;
}

/* A background create still writing refuses another create. */
static int bg_busy(struct sqb_vm *vm, struct sqb_snapstate *ss, struct sqb_diag *diag)
{
	struct sqb_vm_snap_status st;

	if (!ss->bg)
		return 0;
	sqb_vm_snapshot_status(vm, &st);
	if (st.state == SQB_VM_SNAP_BG_WRITING) {
		sqb_snap_diag(diag, "squib.background",
			      "a background snapshot (%s) is still being written; "
			      "GET /snapshot/status says when it is done",
			      st.state_path);
		return -EBUSY;
	}
	sqb_snap_bg_join(ss, 0); /* finished: only the thread is left */
	return 0;
}

int sqb_vm_snapshot_prearm(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
	struct sqb_snapstate *ss;
	uint64_t *cover[SQB_GMEM_MAX_REGIONS] = {0};
	int err = 0;

	FORWARD_IF_ERROR(sqb_snapstate_get(vm, &ss));
	if (!o || o->version != SQB_VM_SNAP_CREATE_VERSION || !o->background || ss->prearm)
		return -EINVAL;
	FORWARD_IF_ERROR(bg_busy(vm, ss, diag));
	FORWARD_IF_ERROR(check_background(vm, ss, o, diag));
	/* the same coarse cover as the pause takes (memsrc_cover), early */
	for (unsigned int r = 0; r < vm->mem.nregions && !err; r++) {
		struct memsrc m = {.fd_off = vm->mem.regions[r].fd_offset};

		err = memsrc_cover(&m, vm->mem.fd, vm->mem.regions[r].size / 4096);
		cover[r] = m.cover;
	}
	if (err) {
		for (unsigned int r = 0; r < SQB_GMEM_MAX_REGIONS; r++)
			free(cover[r]);
	} else {
		err = sqb_snap_cow_prearm(&ss->prearm, vm, cover); /* owns cover[] */
	}
	if (err) {
		sqb_snap_diag(diag, "memory", "cannot write-protect guest memory (userfaultfd): %s",
			      sqb_strerror(err));
		return err;
	}
	__atomic_store_n(&vm->mem.cow_armed, 1, __ATOMIC_RELEASE);
	return 0;
}

void sqb_vm_snapshot_prearm_drop(sqb_vm *vm)
{
	struct sqb_snapstate *ss = vm ? vm->snap : NULL;

	if (!ss || !ss->prearm)
		return;
	sqb_snap_cow_free(ss->prearm);
	ss->prearm = NULL;
	__atomic_store_n(&vm->mem.cow_armed, 0, __ATOMIC_RELEASE);
}

void sqb_vm_snapshot_set_pause_us(sqb_vm *vm, uint64_t us)
{
	if (!vm || !vm->snap)
		return;
	pthread_mutex_lock(&bg_lock);
	vm->snap->bg_status.pause_us = us;
	pthread_mutex_unlock(&bg_lock);
}

static int snapshot_create(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag);

int sqb_vm_snapshot_create(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
	int err = snapshot_create(vm, o, diag);

	/* a live create's early protection not taken by its writer */
	sqb_vm_snapshot_prearm_drop(vm);
	return err;
}

static int snapshot_create(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
	struct sqb_snapstate *ss;
	struct sqb_uuid st_uuid, mem_uuid;
	struct sqb_digest mem_digest;
	sqb_snap_writer *mw = NULL, *sw = NULL;
	char *mem_abs = NULL, *st_abs = NULL;
	enum mem_plan plan = PLAN_FULL;
	uint64_t t0, t1 = 0, t2 = 0, t3 = 0;
	int err, quiesced = 0;

	FORWARD_IF_ERROR(sqb_snapstate_get(vm, &ss));
	FORWARD_IF_ERROR(bg_busy(vm, ss, diag));
	FORWARD_IF_ERROR(check_request(vm, ss, o, &plan, diag));
	if (!o->background)
		sqb_vm_snapshot_prearm_drop(vm);
	if (o->background)
		FORWARD_IF_ERROR(check_background(vm, ss, o, diag));
	/* the state file first, as Firecracker opens it first; each errno
	 * taken at once (the other call would overwrite it) */
	errno = 0;
	st_abs = abs_path(o->state_path);
	err = st_abs ? 0 : errno ? -errno : -ENOENT;
	if (st_abs) {
		mem_abs = abs_path(o->mem_path);
		err = mem_abs ? 0 : errno ? -errno : -ENOENT;
	}
	if (err) {
		sqb_snap_diag(diag, "paths", "cannot open the folder of %s",
			      st_abs ? o->mem_path : o->state_path);
		goto out;
	}
	t0 = sqb_now_ns();
	err = settle_vcpus(vm, diag);
	quiesced = !err;
	/* an exit-driven lazy restore installs pages only when asked: every
	 * page the snapshot reads is fetched (verified) first, never read as
	 * the zeros of a page not yet installed */
	for (unsigned int i = 0; !err && ss->lazy_exit && ss->rs && i < vm->mem.nregions; i++)
		err = sqb_restore_fetch(ss->rs, vm->mem.regions[i].gpa, vm->mem.regions[i].size);
	if (err && quiesced)
		sqb_snap_diag(diag, "memory", "the lazily restored memory cannot be completed: %s",
			      sqb_strerror(err));
	if (!err && o->track_dirty && !ss->dirty)
		err = sqb_snap_dirty_start(vm, ss); /* a Full captures everything before */
	else if (!err && ss->dirty)
		err = sqb_snap_dirty_collect(ss); /* OR-ed into pending until written */
	if (err)
		goto out;
	if (o->background) {
		err = start_background(vm, ss, o, plan, mem_abs, st_abs, t0, diag);
		sqb_debug("snapshot create (background): pause work %.2f ms",
			  (sqb_now_ns() - t0) / 1e6);
		goto out;
	}
	new_uuid(&st_uuid);
	t1 = sqb_now_ns();
	if (!o->raw_mem)
		err = write_memory(vm, ss, o, plan, &st_uuid, st_abs, &mem_uuid, &mem_digest, &mw,
				   NULL);
	if (err) {
		sqb_snap_diag(diag, "memory", "writing %s failed: %s", o->mem_path,
			      sqb_strerror(err));
		goto out;
	}
	t2 = sqb_now_ns();
	err = write_state(vm, ss, o, plan, &st_uuid, &mem_uuid, &mem_digest, mem_abs, &sw);
	t3 = sqb_now_ns();
	if (!err) {
		const char *mt = o->raw_mem ? sqb_writer_external_temp_path(sw)
					    : sqb_writer_temp_path(mw);

		err = commit_pair(mt, o->mem_path, sqb_writer_temp_path(sw), o->state_path);
		if (!err || access(sqb_writer_temp_path(sw), F_OK) != 0) {
			/* renamed (a failed folder fsync leaves them in place) */
			sqb_writer_disown_temp(mw);
			sqb_writer_disown_temp(sw);
			sqb_writer_disown_external_temp(sw);
		}
	}
	if (err) {
		sqb_snap_diag(diag, "state", "writing %s failed: %s", o->state_path,
			      sqb_strerror(err));
		goto out;
	}
	after_success(ss, o->raw_mem ? st_abs : mem_abs, o->raw_mem ? mem_abs : NULL);
	if (sqb_snap_selfcheck_enabled()) /* debug: still paused and quiesced */
		(void)sqb_snap_selfcheck(vm, o->raw_mem ? st_abs : mem_abs,
					 o->raw_mem ? mem_abs : NULL);
	if (plan == PLAN_DIFF_OVERLAY)
		sqb_info("Diff over %s (a file of its own chain) written as merged memory",
			 o->mem_path);
	sqb_debug("snapshot create: settle+dirty %.2f ms, memory %.2f ms, state %.2f ms, "
		  "commit %.2f ms",
		  (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (sqb_now_ns() - t3) / 1e6);
out:
	if (quiesced)
		sqb_bus_resume(&vm->bus);
	sqb_writer_free(mw); /* removes temporaries that were not moved */
	sqb_writer_free(sw);
	free(mem_abs);
	free(st_abs);
	return err;
}
