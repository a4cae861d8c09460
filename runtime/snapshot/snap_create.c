/* Snapshot create (docs/snapshots.md): a paused VM's memory file (role
 * MEMORY, a Diff names the previous memory file as parent, format.md 6.2)
 * and state file (role STATE: VCPU, INTC, DEVS, CONF, META), written as a
 * pair tied by uuid + digest [F-46], then swapped into place together. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "snap_priv.h"

#define MAX_RECS 24

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

static int write_conf(struct sqb_vm *vm, sqb_snap_writer *w, const struct sqb_vm_snap_create *o)
{
	struct utsname u;

	FORWARD_IF_ERROR(kv_u64(w, "vcpu_count", vm->nvcpus));
	FORWARD_IF_ERROR(kv_u64(w, "mem_size_mib", vm->mem.size >> 20));
	FORWARD_IF_ERROR(kv_u64(w, "smt", (uint64_t) !!o->smt));
	FORWARD_IF_ERROR(kv_u64(w, "track_dirty_pages", (uint64_t) !!o->track_dirty));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "kernel_image_path", o->kernel_path));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "initrd_path", o->initrd_path));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "boot_args", o->boot_args));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_CONF, "vm_config_json", o->vm_config_json));
	FORWARD_IF_ERROR(
	    kv(w, SQB_SEC_META, "snapshot_type", o->type == SQB_VM_SNAP_DIFF ? "Diff" : "Full"));
	FORWARD_IF_ERROR(kv(w, SQB_SEC_META, "hypervisor", vm->ops->name));
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

	(void)scratch;
	*data = m->host + first * 4096;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p = first + i;
		if (m->dirty && !((m->dirty[p / 64] >> (p % 64)) & 1))
			kinds[i] = SQB_PAGE_PARENT;
		else if (m->holes && !memsrc_is_data(m, m->fd_off + p * 4096))
			kinds[i] = SQB_PAGE_ZERO;
		else
			kinds[i] = SQB_PAGE_DATA;
	}
	return 0;
}

static int add_region(struct sqb_vm *vm, struct sqb_snapstate *ss, sqb_snap_writer *w,
		      unsigned int r, int diff)
{
	const struct sqb_mem_region *rg = &vm->mem.regions[r];
	struct memsrc m = {rg->host, diff ? sqb_snap_dirty_region(vm, ss, r) : NULL, rg->fd_offset};
	struct sqb_page_source src = {memsrc_get, &m};
	int err = 0;

	if (!ss->no_holes && vm->mem.fd >= 0)
		err = memsrc_scan(&m, vm->mem.fd, rg->size);
	if (!err)
		err = sqb_writer_add_memory_src(w, rg->gpa, rg->size, &src);
	free(m.beg);
	free(m.end);
	return err;
}

static int write_memory(struct sqb_vm *vm, struct sqb_snapstate *ss,
			const struct sqb_vm_snap_create *o, const char *path,
			const struct sqb_uuid *state_uuid, const char *state_hint,
			struct sqb_uuid *uuid, struct sqb_digest *digest)
{
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w = NULL;
	int diff = o->type == SQB_VM_SNAP_DIFF, err;

	wo.arch = vm->ops->snap_arch;
	wo.hv = vm->ops->snap_hv;
	wo.role = SQB_ROLE_MEMORY;
	wo.codec = o->codec;
	wo.level = o->level;
	wo.dedup = o->dedup;
	wo.parent = diff ? ss->parent : NULL;
	wo.companion_uuid = state_uuid;
	wo.companion_path_hint = state_hint;
	FORWARD_IF_ERROR(sqb_writer_open(&w, path, &wo));
	for (unsigned int r = 0; r < vm->mem.nregions; r++)
		if ((err = add_region(vm, ss, w, r, diff)))
			goto out;
	err = sqb_writer_finish(w, uuid, digest);
out:
	sqb_writer_free(w);
	return err;
}

static int write_state(struct sqb_vm *vm, const struct sqb_vm_snap_create *o, const char *path,
		       const struct sqb_uuid *uuid, const struct sqb_uuid *mem_uuid,
		       const struct sqb_digest *mem_digest, const char *mem_hint)
{
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w = NULL;
	int err;

	wo.arch = vm->ops->snap_arch;
	wo.hv = vm->ops->snap_hv;
	wo.role = SQB_ROLE_STATE;
	wo.uuid = uuid;
	wo.companion_uuid = mem_uuid;
	wo.companion_digest = mem_digest;
	wo.companion_path_hint = mem_hint;
	FORWARD_IF_ERROR(sqb_writer_open(&w, path, &wo));
	err = write_vcpus(vm, w);
	if (!err)
		err = sqb_snap_devs_save(vm, w);
	if (!err)
		err = write_conf(vm, w, o);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

/* Move both new files into place.  An existing file is swapped out with
 * RENAME_EXCHANGE so that a failed second step can swap it back. */
static int commit_pair(const char *mem_tmp, const char *mem, const char *st_tmp, const char *st)
{
	int mem_old = access(mem, F_OK) == 0, err;

	if (mem_old ? renameat2(AT_FDCWD, mem_tmp, AT_FDCWD, mem, RENAME_EXCHANGE)
		    : rename(mem_tmp, mem))
		return -errno;
	if (rename(st_tmp, st) == 0) {
		if (mem_old)
			unlink(mem_tmp); /* the previous memory file, swapped out */
		return 0;
	}
	err = -errno;
	if (mem_old)
		renameat2(AT_FDCWD, mem_tmp, AT_FDCWD, mem, RENAME_EXCHANGE);
	else
		rename(mem, mem_tmp);
	return err;
}

static int check_request(struct sqb_vm *vm, struct sqb_snapstate *ss,
			 const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
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
	if (o->type != SQB_VM_SNAP_DIFF)
		return 0;
	if (!ss->dirty) {
		sqb_snap_diag(diag, "dirty",
			      "a Diff snapshot needs dirty page tracking "
			      "(track_dirty_pages) and a previous snapshot");
		return -SQB_ESTATE;
	}
	if (!ss->parent) {
		sqb_snap_diag(diag, "parent",
			      "a Diff snapshot needs a previous snapshot of this "
			      "microVM (create a Full one first)");
		return -SQB_ESTATE;
	}
	{
		char *a = abs_path(o->mem_path);
		int same = a && !strcmp(a, sqb_snap_path(ss->parent));
		free(a);
		if (same) {
			sqb_snap_diag(diag, "paths",
				      "mem_file_path is the parent of this Diff; it cannot be "
				      "overwritten by its own child");
			return -EINVAL;
		}
	}
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
static void after_success(struct sqb_snapstate *ss, const char *mem_abs)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	sqb_snap *p = NULL;

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

int sqb_vm_snapshot_create(sqb_vm *vm, const struct sqb_vm_snap_create *o, struct sqb_diag *diag)
{
	struct sqb_snapstate *ss;
	struct sqb_uuid st_uuid, mem_uuid;
	struct sqb_digest mem_digest;
	char *mem_tmp = NULL, *st_tmp = NULL, *mem_abs = NULL, *st_abs = NULL;
	int err, quiesced = 0;

	FORWARD_IF_ERROR(sqb_snapstate_get(vm, &ss));
	FORWARD_IF_ERROR(check_request(vm, ss, o, diag));
	if (asprintf(&mem_tmp, "%s.squib-new", o->mem_path) < 0)
		mem_tmp = NULL;
	if (asprintf(&st_tmp, "%s.squib-new", o->state_path) < 0)
		st_tmp = NULL;
	mem_abs = abs_path(o->mem_path);
	st_abs = abs_path(o->state_path);
	err = (!mem_tmp || !st_tmp) ? -ENOMEM : 0;
	if (!err && (!mem_abs || !st_abs)) {
		err = -errno ? -errno : -ENOENT;
		sqb_snap_diag(diag, "paths", "the folder of %s does not exist",
			      !mem_abs ? o->mem_path : o->state_path);
	}
	uint64_t t0 = sqb_now_ns(), t1 = 0, t2 = 0, t3 = 0;
	if (!err)
		err = settle_vcpus(vm, diag);
	quiesced = !err;
	if (!err && o->track_dirty && !ss->dirty)
		err = sqb_snap_dirty_start(vm, ss); /* a Full captures everything before */
	else if (!err && ss->dirty)
		err = sqb_snap_dirty_collect(ss); /* OR-ed into pending until written */
	if (err)
		goto out;
	new_uuid(&st_uuid);
	t1 = sqb_now_ns();
	err = write_memory(vm, ss, o, mem_tmp, &st_uuid, st_abs, &mem_uuid, &mem_digest);
	if (err) {
		sqb_snap_diag(diag, "memory", "writing %s failed: %s", o->mem_path,
			      sqb_strerror(err));
		goto out;
	}
	t2 = sqb_now_ns();
	err = write_state(vm, o, st_tmp, &st_uuid, &mem_uuid, &mem_digest, mem_abs);
	t3 = sqb_now_ns();
	if (!err)
		err = commit_pair(mem_tmp, o->mem_path, st_tmp, o->state_path);
	if (err) {
		sqb_snap_diag(diag, "state", "writing %s failed: %s", o->state_path,
			      sqb_strerror(err));
		unlink(mem_tmp);
		unlink(st_tmp);
		goto out;
	}
	after_success(ss, mem_abs);
	sqb_debug("snapshot create: settle+dirty %.2f ms, memory %.2f ms, state %.2f ms, "
		  "commit %.2f ms",
		  (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (sqb_now_ns() - t3) / 1e6);
out:
	if (quiesced)
		sqb_bus_resume(&vm->bus);
	free(mem_tmp);
	free(st_tmp);
	free(mem_abs);
	free(st_abs);
	return err;
}
