/* Snapshot load (docs/snapshots.md "Restore order"): check the pair, the
 * architecture and hypervisor, parse every state section, then build the
 * VM from CONF (or adopt a pre-warmed shell, docs/fleet.md), restore
 * memory (restore library or a Uffd page server), set VM state, vCPU state
 * and devices, and release the vCPUs parked. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev_pci.h"
#include "layout.h"
#include "log.h"
#include "snap_priv.h"

/* A first (lazily verified) load's background filler begins this long after
 * the vCPUs start: the guest's first answer is not shared with streaming the
 * rest of its memory (docs/snapshots.md "First loads"). */
#define SQB_FIRST_LOAD_FILL_DELAY_MS 20u

struct recset {
	struct sqb_record *recs;
	unsigned int n;
	void *backing;
};

struct loadctx {
	const struct sqb_vm_snap_load *o;
	struct sqb_diag *diag;
	sqb_snap *st, *mem;
	struct sqb_vm_snap_conf conf;
	unsigned int nvcpus;
	struct recset vcpu[SQB_VM_MAX_VCPUS], intc;
	int raw_mem; /* the state file indexes a raw memory file (format.md 7.5) */
};

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (*end || errno) ? -1 : 0;
}

static int read_conf(struct loadctx *c)
{
	struct sqb_kv *kvs = NULL;
	void *backing = NULL;
	unsigned int n = 0;
	uint64_t vcpus = 0, mib = 0, v;
	int err;

	err = sqb_snap_kv(c->st, SQB_SEC_CONF, &kvs, &n, &backing, c->diag);
	if (err)
		return err;
	for (unsigned int i = 0; i < n; i++) {
		const char *k = kvs[i].key, *val = kvs[i].value;
		char **dst = !strcmp(k, "kernel_image_path") ? &c->conf.kernel_path
			     : !strcmp(k, "initrd_path")     ? &c->conf.initrd_path
			     : !strcmp(k, "boot_args")	     ? &c->conf.boot_args
			     : !strcmp(k, "vm_config_json")  ? &c->conf.vm_config_json
							     : NULL;
		if (dst && !(*dst = strdup(val)))
			err = -ENOMEM;
		else if (!strcmp(k, "vcpu_count") && parse_u64(val, &vcpus))
			vcpus = 0;
		else if (!strcmp(k, "mem_size_mib") && parse_u64(val, &mib))
			mib = 0;
		else if (!strcmp(k, "smt") && !parse_u64(val, &v))
			c->conf.smt = v != 0;
		else if (!strcmp(k, "pci") && !parse_u64(val, &v))
			c->conf.pci = v != 0;
		else if (!strcmp(k, "track_dirty_pages") && !parse_u64(val, &v))
			c->conf.track_dirty_pages = v != 0;
		else if (!strcmp(k, "huge_pages") && sqb_vm_huge_parse(val, &c->conf.huge_pages)) {
			sqb_snap_diag(c->diag, "CONF", "huge_pages \"%.32s\" is not None, "
				      "Transparent or 2M", val);
			err = -SQB_ECORRUPT;
		}
	}
	free(kvs);
	free(backing);
	if (err)
		return err;
	if (vcpus < 1 || vcpus > SQB_VM_MAX_VCPUS || vcpus != c->nvcpus || mib < 1 ||
	    mib > (1ULL << 20)) {
		sqb_snap_diag(c->diag, "CONF",
			      "vcpu_count %llu / mem_size_mib %llu invalid or disagree with the "
			      "%u VCPU sections",
			      (unsigned long long)vcpus, (unsigned long long)mib, c->nvcpus);
		return -SQB_ECORRUPT;
	}
	c->conf.vcpu_count = (unsigned int)vcpus;
	c->conf.mem_size_mib = mib;
	return 0;
}

static const char *arch_name(unsigned int a)
{
	return a == SQB_ARCH_X86_64 ? "x86_64" : a == SQB_ARCH_AARCH64 ? "aarch64" : "unknown";
}

static const char *hv_name(unsigned int h)
{
	return h == SQB_HV_KVM ? "kvm" : h == SQB_HV_HVF ? "hvf" : "unknown";
}

static int open_state(struct loadctx *c, unsigned int arch, unsigned int hv)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	const struct sqb_snap_info *si;
	int err;

	oo.no_external = 1; /* the state alone; memory is opened next */
	oo.no_parents = 1;
	err = sqb_snap_open(&c->st, c->o->state_path, &oo, c->diag);
	if (err)
		return err;
	si = sqb_snap_get_info(c->st);
	c->raw_mem = si->role == SQB_ROLE_COMPLETE &&
		     sqb_snap_section_find(c->st, SQB_SEC_XMEM, 0) >= 0;
	if (si->role != SQB_ROLE_STATE && !c->raw_mem) {
		sqb_snap_diag(c->diag, "header", "%s is not a snapshot state file (role %d)",
			      c->o->state_path, (int)si->role);
		return -SQB_EMISMATCH;
	}
	if (si->arch != arch || si->hv != hv) { /* [F-16] */
		sqb_snap_diag(c->diag, "header",
			      "snapshot is for %s/%s (arch %d, hypervisor %d); this squib runs "
			      "%s/%s (arch %u, hypervisor %u)",
			      arch_name(si->arch), hv_name(si->hv), (int)si->arch, (int)si->hv,
			      arch_name(arch), hv_name(hv), arch, hv);
		return -SQB_EMISMATCH;
	}
	c->nvcpus = sqb_snap_vcpu_count(c->st);
	if (c->nvcpus < 1 || c->nvcpus > SQB_VM_MAX_VCPUS) {
		sqb_snap_diag(c->diag, "VCPU", "%u vCPU sections (1..%d supported)", c->nvcpus,
			      SQB_VM_MAX_VCPUS);
		return -SQB_ELIMIT;
	}
	return read_conf(c);
}

/* Regions must be exactly the layout squib builds for mem_size_mib, then
 * at most virtio-mem's region (matched against the VM once it is built:
 * vm_layout). */
static int check_layout(struct loadctx *c, const sqb_snap *m)
{
	uint64_t gpa[SQB_ARCH_MAX_RAM_REGIONS], len[SQB_ARCH_MAX_RAM_REGIONS],
	    off[SQB_ARCH_MAX_RAM_REGIONS];
	unsigned int nwant = sqb_arch_ram_layout(c->conf.mem_size_mib << 20, gpa, len, off);
	struct sqb_region r;

	unsigned int n = sqb_snap_region_count(m);

	if (n != nwant && n != nwant + 1)
		goto bad;
	for (unsigned int i = 0; i < nwant; i++)
		if (sqb_snap_region(m, i, &r) || r.gpa != gpa[i] || r.size != len[i])
			goto bad;
	if (n > nwant && (sqb_snap_region(m, nwant, &r) || r.gpa != SQB_ARCH_MEMHP_BASE ||
			  r.size > SQB_ARCH_MEMHP_SIZE))
		goto bad;
	if (sqb_snap_get_info(m)->guest_page_size != 4096)
		goto bad;
	return 0;
bad:
	sqb_snap_diag(c->diag, "MEMR", "memory regions do not match mem_size_mib %llu",
		      (unsigned long long)c->conf.mem_size_mib);
	return -SQB_EMISMATCH;
}

/* Open the memory of this snapshot from path: the pair's memory file, or
 * with raw_mem the state file's index over the raw file at path. */
static int open_memory_at(struct loadctx *c, const char *path, sqb_snap **out,
			  struct sqb_diag *diag)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	int err;

	*out = NULL;
	if (c->raw_mem) { /* index in the state file, bytes in path */
		oo.external_path = path;
		return sqb_snap_open(out, c->o->state_path, &oo, diag);
	}
	FORWARD_IF_ERROR(sqb_snap_open(out, path, NULL, diag));
	if (sqb_snap_get_info(*out)->role != SQB_ROLE_MEMORY) {
		sqb_snap_diag(diag, "header", "%s is not a snapshot memory file", path);
		err = -SQB_EMISMATCH;
	} else {
		err = sqb_snap_check_pair(c->st, *out, diag);
	}
	if (err) {
		sqb_snap_free(*out);
		*out = NULL;
	}
	return err;
}

/* A create killed between its two renames leaves this state beside the
 * next snapshot's memory, and this state's own memory under the create's
 * temporary name "<mem>.tmp.XXXXXX" (snap_create.c): find it by identity. */
static int recover_memory(struct loadctx *c)
{
	char *d = strdup(c->o->backend_path), *b = strdup(c->o->backend_path);
	const char *folder = d ? dirname(d) : NULL, *base = b ? basename(b) : NULL;
	DIR *dir = folder ? opendir(folder) : NULL;
	struct dirent *e;
	int err = -SQB_ENOTFOUND;

	while (dir && base && err && (e = readdir(dir))) {
		char *cand = NULL;
		struct sqb_diag ignore;

		if (!sqb_snap_is_temp_of(e->d_name, base) ||
		    asprintf(&cand, "%s/%s", folder, e->d_name) < 0)
			continue;
		err = open_memory_at(c, cand, &c->mem, &ignore);
		if (!err)
			sqb_warn("%s does not belong to %s; using %s, its memory file left by an "
				 "interrupted snapshot create",
				 c->o->backend_path, c->o->state_path, cand);
		free(cand);
	}
	if (dir)
		closedir(dir);
	free(d);
	free(b);
	return err;
}

static int open_memory(struct loadctx *c)
{
	int err = open_memory_at(c, c->o->backend_path, &c->mem, c->diag);

	if (err == -SQB_EBADMAGIC && !c->raw_mem) {
		sqb_snap_diag(c->diag, "header",
			      "%s is not a squib memory file, and %s does not describe a raw "
			      "memory file",
			      c->o->backend_path, c->o->state_path);
		return err;
	}
	if ((err == -SQB_EPARENT || err == -SQB_EMISMATCH) && recover_memory(c) == 0)
		err = 0;
	if (err)
		return err;
	return check_layout(c, c->mem);
}

static int read_records(struct loadctx *c)
{
	for (unsigned int i = 0; i < c->nvcpus; i++)
		FORWARD_IF_ERROR(sqb_snap_records(c->st, SQB_SEC_VCPU, i, &c->vcpu[i].recs,
						  &c->vcpu[i].n, &c->vcpu[i].backing, c->diag));
	return sqb_snap_records(c->st, SQB_SEC_INTC, 0, &c->intc.recs, &c->intc.n, &c->intc.backing,
				c->diag);
}

/* From a restore thread: a lazy restore met a bad chunk (the guest can never
 * get that memory), or a mapped file is being changed under the guest.  The
 * VM stops at once with the reason (squib then exits as for any VM failure);
 * the kick takes a vCPU out of a fault that will never be served, and where
 * it does not, sqb_snap_restore_release() does before the vCPU is joined. */
static void on_restore_error(void *ctx, int err, const struct sqb_diag *d)
{
	char buf[300], msg[400];

	snprintf(msg, sizeof(msg), "snapshot memory restore failed: %s: %s", sqb_strerror(err),
		 d ? sqb_diag_format(d, buf, sizeof(buf)) : "");
	sqb_err("%s; stopping the VM", msg);
	if (ctx)
		sqb_vm_fail(ctx, SQB_VM_STOP_HOST_ERROR, msg);
}

/* During sqb_vm_stop(), after the stop request and before the vCPU threads
 * are joined.  A lazy restore that failed serves no more faults (a failed
 * restore never wakes a thread onto a page it cannot fill), so a vCPU that
 * touched a page it had not installed waits in the kernel for ever: the
 * stop's kick does not always take it out (one was seen re-faulting inside
 * KVM_RUN with the kick pending), and what releases it, the restore letting
 * go of the memory, came only in sqb_snapstate_free(), after the join.  A
 * failed restore is therefore stopped here at once; a working one serves
 * the vCPUs while they get a moment to leave, and is stopped after it too,
 * so that no join can wait for one of its pages; a complete one has no
 * page left to wait for. */
void sqb_snap_restore_release(struct sqb_vm *vm)
{
	struct sqb_snapstate *ss = vm->snap;
	uint64_t end = sqb_now_ns() + 200000000ULL;
	int st;

	if (!ss || !ss->rs)
		return;
	/* still filling: give the vCPUs up to 200 ms to leave on their own */
	while ((st = sqb_restore_wait(ss->rs, 0)) == -ETIMEDOUT) {
		struct timespec ts;
		unsigned int alive = 0;
		int late;

		pthread_mutex_lock(&vm->lock);
		for (unsigned int i = 0; i < vm->nvcpus; i++)
			alive += vm->vcpus[i].alive ? 1 : 0;
		late = sqb_now_ns() >= end;
		if (alive && !late) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20000000L; /* looks at the restore again */
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
		}
		pthread_mutex_unlock(&vm->lock);
		if (!alive)
			return; /* every vCPU left: the restore goes with the snapshot state */
		if (late)
			break;
	}
	if (!st)
		return; /* complete: no vCPU can be waiting on it */
	if (st != -ETIMEDOUT)
		sqb_debug("VM stop: the failed lazy restore lets go of guest memory before the "
			  "vCPUs are joined");
	else
		sqb_warn("VM stop: a vCPU is still running 200 ms after the stop; the lazy restore "
			 "stops serving guest memory");
	sqb_restore_stop(ss->rs);
}

/* A first verified load (AUTO) is complete (from a filler thread, no
 * restore lock held): remember the files if every chunk of every layer was
 * checked, and let waiting loads of them go on either way.  The lazy
 * restore read only the chunks of a parent layer that the layers above do
 * not cover, so each parent is verified whole here first. */
static void on_verified(void *ctx, int all_checked)
{
	struct sqb_snapstate *ss = ctx;
	int fd;

	for (sqb_snap *p = sqb_snap_parent(ss->loaded); p && all_checked; p = sqb_snap_parent(p))
		if (sqb_snap_verify(p, 0, 1, NULL, NULL)) {
			sqb_info("snapshot load: a parent layer of %s failed its verification: "
				 "nothing is remembered",
				 sqb_snap_path(ss->loaded));
			all_checked = 0;
		}
	if (all_checked)
		sqb_snap_vcache_record(ss->loaded, &ss->vc_began);
	fd = atomic_exchange(&ss->vc_claim, -1);
	if (fd >= 0)
		close(fd);
	sqb_debug("snapshot load: every chunk is in; %s",
		  all_checked ? "the files are remembered"
			      : "a REMOVE settled pages never read: nothing is remembered");
}

/* How an AUTO load goes (docs/snapshots.md "First loads"): mapped when the
 * files are trusted or known verified, else lazily verified.  Concurrent
 * first loads of the same files wait for one verifier (up to 10 s, then
 * they verify everything themselves before mapping). */
static enum sqb_restore_strategy auto_strategy(struct loadctx *c, struct sqb_snapstate *ss,
					       int exit_lazy, int *remembered)
{
	int claim;

	if (c->o->trust_raw || sqb_snap_vcache_hit(c->mem)) {
		*remembered = !c->o->trust_raw;
		return SQB_RESTORE_MMAP;
	}
	/* a lazy restore's filler makes every page resident, zeros included:
	 * virtio-mem's region (up to 256 GiB, mostly unplugged) would all be
	 * allocated; a mapped load leaves its ZERO runs untouched */
	if (ss->vm->mem.nregions > ss->vm->mem.nram) {
		sqb_info("snapshot load: %s has hotpluggable memory: verified whole and mapped, "
			 "not restored lazily",
			 c->o->backend_path);
		return SQB_RESTORE_MMAP;
	}
	if (!exit_lazy && sqb_restore_lazy_usable()) {
		sqb_info("snapshot load: userfaultfd is not usable here: %s is verified whole "
			 "before the guest runs",
			 c->o->backend_path);
		return SQB_RESTORE_MMAP;
	}
	claim = sqb_snap_vcache_claim(c->mem, 10000);
	if (claim >= 0 && sqb_snap_vcache_hit(c->mem)) { /* another load verified it */
		close(claim);
		*remembered = 1;
		return SQB_RESTORE_MMAP;
	}
	if (claim == -ETIMEDOUT) {
		sqb_info("snapshot load: another load of %s is still verifying it after 10 s: "
			 "verifying it whole here",
			 c->o->backend_path);
		return SQB_RESTORE_MMAP;
	}
	atomic_store(&ss->vc_claim, claim); /* -ENOENT (no cache): none */
	if (claim < 0)
		atomic_store(&ss->vc_claim, -1);
	sqb_debug("snapshot load: first load of %s: each chunk is verified as it is installed",
		  c->o->backend_path);
	return SQB_RESTORE_LAZY;
}

/* huge_pages 2M memory cannot take a file mapping (MMAP) nor 4 KiB
 * userfaultfd copies (LAZY): a File load into it decodes everything first
 * (EAGER), which Firecracker refuses instead (docs/snapshots.md). */
static int huge_strategy(struct loadctx *c, struct sqb_vm *vm, enum sqb_restore_strategy *st)
{
	if (vm->mem.page_size == SQB_GMEM_PAGE)
		return 0;
	if (c->o->mode != SQB_VM_LOAD_AUTO && c->o->mode != SQB_VM_LOAD_EAGER) {
		sqb_snap_diag(c->diag, "squib.restore",
			      "huge_pages 2M guest memory is loaded eagerly from a File backend: "
			      "restore \"%s\" would map or fault it in 4 KiB pages",
			      c->o->mode == SQB_VM_LOAD_MMAP ? "mmap" : "lazy");
		return -EINVAL;
	}
	*st = SQB_RESTORE_EAGER;
	return 1;
}

/* The VM built from CONF has the memory file's regions: its RAM (checked
 * by check_layout) and virtio-mem's region exactly when the file has one,
 * of the same size. */
static int vm_layout(struct loadctx *c, struct sqb_vm *vm)
{
	unsigned int n;
	struct sqb_region r = {0};

	if (!c->mem)
		return 0; /* Uffd: the page server has the memory, the handshake its layout */
	n = sqb_snap_region_count(c->mem);
	if (n == vm->mem.nregions && (n == vm->mem.nram || (!sqb_snap_region(c->mem, n - 1, &r) &&
							    r.size == vm->mem.regions[n - 1].size)))
		return 0;
	if (n > vm->mem.nram)
		sqb_snap_region(c->mem, n - 1, &r);
	sqb_snap_diag(c->diag, "MEMR",
		      "the memory file has %llu MiB of hotpluggable memory, the VM's "
		      "memory-hotplug configuration %llu MiB",
		      (unsigned long long)(n > vm->mem.nram ? r.size >> 20 : 0),
		      (unsigned long long)(vm->mem.nregions > vm->mem.nram
					       ? vm->mem.regions[vm->mem.nram].size >> 20
					       : 0));
	return -SQB_EMISMATCH;
}

/* Lease breaks of an mmap restore (docs/restore.md "Mapped files are
 * leased") are served by the VM's event loop, not by a watcher thread of
 * the library: one thread fewer in every idle clone (docs/fleet.md
 * "Threads, stacks and .bss").  Registered before the restore takes its
 * leases, so no break can come before the loop watches the pipe; the
 * service reads the pipe, checks the lease and stops the VM (read, fcntl,
 * futex, write, tgkill: the event loop's seccomp list has them all).  If
 * the loop cannot take it, the library's thread serves as before. */
static void on_lease_pipe(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	sqb_restore_lease_service();
}

static void lease_serve(struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	int fd;
	int64_t h;

	if (ss->lease_served || !vm->loop)
		return;
	fd = sqb_restore_lease_serve();
	if (fd < 0)
		return; /* no lease support here: nothing is leased either */
	h = sqb_evloop_add(vm->loop, fd, EPOLLIN, on_lease_pipe, NULL);
	if (h < 0) {
		sqb_debug("snapshot load: the event loop cannot watch the lease pipe (%s): the "
			  "restore library's thread does",
			  sqb_strerror((int)h));
		sqb_restore_lease_unserve();
		return;
	}
	ss->lease_served = 1;
}

static int restore_memory(struct loadctx *c, struct sqb_vm *vm, struct sqb_snapstate *ss)
{
	static const enum sqb_restore_strategy strat[] = {SQB_RESTORE_MMAP, SQB_RESTORE_EAGER,
							  SQB_RESTORE_LAZY};
	struct sqb_restore_opts ro = SQB_RESTORE_OPTS_INIT;
	struct timespec began;
	int remembered = 0, err, is_auto = c->o->mode == SQB_VM_LOAD_AUTO;
	int exit_lazy = vm->ops->vm_lazy_exit != NULL, lazy;
	void *host[SQB_GMEM_MAX_REGIONS];

	if ((err = vm_layout(c, vm)) < 0)
		return err;
	ss->no_holes = c->o->backend == SQB_VM_MEM_UFFD ||
		       (c->o->mode != SQB_VM_LOAD_EAGER && vm->mem.page_size == SQB_GMEM_PAGE);
	if (c->o->backend == SQB_VM_MEM_UFFD)
		return sqb_snap_uffd_connect(vm, ss, c->o->backend_path, c->st, c->diag);
	for (unsigned int i = 0; i < vm->mem.nregions; i++)
		host[i] = vm->mem.regions[i].host;
	/* the kernel stamps ctime from the coarse clock: a write after this
	 * instant never gets an older ctime (snap_vcache.c) */
	clock_gettime(CLOCK_REALTIME_COARSE, &began);
	err = huge_strategy(c, vm, &ro.strategy);
	if (err < 0)
		return err;
	if (err)
		is_auto = 0; /* eager, neither mapped nor lazily verified */
	else
		ro.strategy =
		    is_auto ? auto_strategy(c, ss, exit_lazy, &remembered) : strat[c->o->mode];
	/* a hypervisor that reports guest accesses as exits (HVF) drives the
	 * postcopy itself: no userfaultfd (vm_lazy_exit, after set_state) */
	if (ro.strategy == SQB_RESTORE_LAZY && exit_lazy)
		ro.strategy = SQB_RESTORE_LAZY_EXIT;
	lazy = ro.strategy == SQB_RESTORE_LAZY || ro.strategy == SQB_RESTORE_LAZY_EXIT;
	ss->lazy_exit = ro.strategy == SQB_RESTORE_LAZY_EXIT;
	ro.host = host;
	ro.flags = c->o->trust_raw ? SQB_RESTORE_TRUST_RAW : 0;
	if (ro.strategy == SQB_RESTORE_EAGER)
		ro.flags |= SQB_RESTORE_DEST_ZERO; /* the VM's memfd is new: all holes */
	/* test knob (docs/testing.md): a lazy load that serves faults only, so a
	 * test can make the guest, not the filler, meet a page first */
	if (lazy && getenv("SQB_LAZY_NO_FILL"))
		ro.flags |= SQB_RESTORE_NO_FILL;
	ro.on_error = on_restore_error;
	ro.cb_ctx = vm;
	if (is_auto && lazy) {
		ss->vc_began = began;
		ro.on_done = on_verified;
		ro.done_ctx = ss;
		/* the guest first: one filler (on 2 cores, two made the first
		 * answer 1.8x a trusted mmap load's time, one 1.2x; SCHED_IDLE
		 * gave 1.0x but a filler preempted while holding the event lock
		 * would stall the guest's faults on a busy host) */
		ro.threads = 1;
		/* and it begins once the vCPUs have run a while (build_vm):
		 * until then the VM's state and devices, then the guest's
		 * first steps, have the CPU; their pages come as faults (on 2
		 * busy cores a filler streaming from the start made the load
		 * itself 2-3x a trusted one, and one starting as the vCPUs did
		 * made the guest's first answer ~2x) */
		ro.flags |= SQB_RESTORE_FILL_LATER;
	}
	/* verified by an earlier load and unchanged since: map without reading */
	if (!is_auto)
		remembered = !c->o->trust_raw && ro.strategy == SQB_RESTORE_MMAP &&
			     sqb_snap_vcache_hit(c->mem);
	if (remembered) {
		ro.flags |= SQB_RESTORE_TRUST_RAW;
		sqb_debug("snapshot load: verification of %s remembered", c->o->backend_path);
	}
	ss->loaded = c->mem;
	c->mem = NULL;
	if (ro.strategy == SQB_RESTORE_MMAP)
		lease_serve(vm, ss);
	err = sqb_restore_start(&ss->rs, ss->loaded, &ro, c->diag);
	if (is_auto && lazy &&
	    (err == -ENOTSUP || err == -EPERM || err == -ENOSYS || err == -EINVAL)) {
		/* the fault source could not be set up (nothing ran yet; MMAP
		 * starts from fresh memory): verify whole, then map */
		sqb_info("snapshot load: a lazy restore cannot start here (%s): %s is verified "
			 "whole before the guest runs",
			 sqb_strerror(err), c->o->backend_path);
		ro.strategy = SQB_RESTORE_MMAP;
		ro.flags &= ~(SQB_RESTORE_NO_FILL | SQB_RESTORE_FILL_LATER);
		ro.on_done = NULL;
		lazy = ss->lazy_exit = 0;
		lease_serve(vm, ss);
		err = sqb_restore_start(&ss->rs, ss->loaded, &ro, c->diag);
	}
	if (!err && !c->o->trust_raw && !remembered && ro.strategy == SQB_RESTORE_MMAP)
		sqb_snap_vcache_record(ss->loaded, &began);
	/* a finished mmap restore keeps the files open for their leases only
	 * (restore_lease.c): nothing reads the page indexes again (a Diff's
	 * parent is its own handle, set_parent), so each idle clone of a
	 * fleet stops paying for them (docs/fleet.md "Load leftovers") */
	if (!err && ro.strategy == SQB_RESTORE_MMAP)
		sqb_snap_drop_index(ss->loaded);
	if (atomic_load(&ss->vc_claim) >= 0 && (err || !lazy))
		close(atomic_exchange(&ss->vc_claim, -1));
	return err;
}

/* A lazy restore that failed before the load answered (a filler met a
 * corrupt chunk): the load fails with the restore's reason, not with the
 * state error of the VM it stopped. */
static int restore_failed(struct sqb_vm *vm, struct sqb_snapstate *ss, struct sqb_diag *diag)
{
	int err = ss->rs ? sqb_restore_wait(ss->rs, 0) : 0;

	if (!err || err == -ETIMEDOUT)
		return 0;
	pthread_mutex_lock(&vm->lock);
	sqb_snap_diag(diag, "DATA", "%s", vm->stop.message);
	pthread_mutex_unlock(&vm->lock);
	return 1;
}

/* The next Diff's parent: the memory file just loaded, opened alone.  Only
 * a load that tracks dirty pages keeps it: without tracking a Diff is
 * written whole (snap_create.c check_request, PLAN_DIFF_ALONE) and a Full
 * names its own file as the parent afterwards, so the open handle and its
 * index copies would only cost every idle clone of a fleet heap pages. */
static void set_parent(struct loadctx *c, struct sqb_snapstate *ss)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	char *abs;

	if (c->o->backend != SQB_VM_MEM_FILE)
		return; /* Uffd: the memory file is the page server's business */
	if (!c->o->track_dirty_pages)
		return;
	abs = realpath(c->o->backend_path, NULL);
	oo.no_parents = 1;
	if (c->raw_mem) { /* the state file is the memory index */
		char *st = realpath(c->o->state_path, NULL);

		oo.external_path = abs;
		if (!abs || !st || sqb_snap_open(&ss->parent, st, &oo, NULL))
			ss->parent = NULL;
		free(st);
	} else if (!abs || sqb_snap_open(&ss->parent, abs, &oo, NULL)) {
		ss->parent = NULL;
	}
	free(abs);
}

static int set_state(struct loadctx *c, struct sqb_vm *vm)
{
	unsigned int opts = c->o->clock_realtime ? SQB_HV_LOAD_CLOCK_REALTIME : 0;
	int err = 0;

	if (opts && !vm->ops->vm_load_options) {
		sqb_snap_diag(c->diag, "INTC", "clock_realtime is not supported by the %s backend",
			      vm->ops->name);
		return -SQB_EUNSUPPORTED;
	}
	if (vm->ops->vm_load_options)
		err = vm->ops->vm_load_options(vm->hv, opts, c->diag);
	if (!err)
		err = vm->ops->vm_load_records(vm->hv, c->intc.recs, c->intc.n, c->diag);
	if (err) {
		snprintf(c->diag->section, sizeof(c->diag->section), "INTC");
		return err;
	}
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		err = sqb_vcpu_load_records(&vm->vcpus[i], c->vcpu[i].recs, c->vcpu[i].n, c->diag);
		if (err) {
			snprintf(c->diag->section, sizeof(c->diag->section), "VCPU[%u]", i);
			return err;
		}
	}
	return sqb_snap_devs_load(vm, c->st, c->diag);
}

/* Every piece of state is in place while the vCPU threads are parked (they
 * set their own state by request).  Without resume they stay parked (pause
 * requested before they may run), so no guest instruction runs before the
 * caller asks for it. */
static int release(struct sqb_vm *vm, int resume)
{
	if (resume)
		return sqb_vm_start(vm); /* all state is set: run at once */
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = 1;
	pthread_mutex_unlock(&vm->lock);
	FORWARD_IF_ERROR(sqb_vm_start(vm));
	FORWARD_IF_ERROR(sqb_vm_pause(vm));
	return resume ? sqb_vm_resume(vm) : 0;
}

/* A pre-warmed shell of the snapshot's shape replaces "create the VM"
 * (docs/fleet.md "Shells"); another shape leaves it to the caller. */
static int take_shell(struct loadctx *c, const struct sqb_vm_config *cfg, struct sqb_vm **vm)
{
	sqb_vm *shell = c->o->shell ? *c->o->shell : NULL;
	int err;

	*vm = NULL;
	if (!shell)
		return 0;
	err = sqb_vm_shell_adopt(shell, cfg, c->diag);
	if (err == 1) {
		sqb_info("snapshot load: the pre-warmed shell has another shape; building the VM");
		return 0;
	}
	*c->o->shell = NULL; /* taken: ours to free on failure */
	if (err) {
		sqb_vm_free(shell);
		return err;
	}
	sqb_debug("snapshot load: pre-warmed VM shell used");
	*vm = shell;
	return 0;
}

static int build_vm(struct loadctx *c, struct sqb_vm **out)
{
	struct sqb_vm_config cfg = SQB_VM_CONFIG_INIT;
	struct sqb_pci_place places[32];
	struct sqb_snapstate *ss;
	struct sqb_vm *vm = NULL;
	int err;

	cfg.vcpu_count = c->conf.vcpu_count;
	cfg.mem_size_mib = c->conf.mem_size_mib;
	cfg.smt = c->conf.smt; /* the saved CPUID replaces what it makes */
	cfg.pci = c->conf.pci; /* the transport the devices' records were made on */
	if (cfg.pci &&
	    (err = sqb_snap_devs_pci_places(c->st, places, 32, &cfg.npci_place, c->diag)) < 0)
		return err;
	cfg.pci_place = places;
	cfg.track_dirty_pages = c->o->track_dirty_pages;
	/* persist.rs SnapshotLoadHugePageConfig: the snapshot's, or this load's */
	if (c->o->huge_pages != SQB_VM_LOAD_HUGE_SNAPSHOT)
		c->conf.huge_pages = (enum sqb_vm_huge_pages)(c->o->huge_pages - 1);
	cfg.huge_pages = c->conf.huge_pages;
	if (cfg.huge_pages == SQB_VM_HUGE_2M && (cfg.mem_size_mib & 1)) {
		sqb_snap_diag(c->diag, "huge_pages",
			      "mem_size_mib %llu is not a multiple of the 2 MiB huge page size",
			      (unsigned long long)cfg.mem_size_mib);
		return -EINVAL;
	}
	cfg.kernel_path = NULL; /* nothing loaded: state comes from the snapshot */
	cfg.serial_out_fd = c->o->serial_out_fd;
	cfg.add_devices = c->o->add_devices;
	cfg.add_devices_arg = c->o->add_devices_arg;
	uint64_t t0 = sqb_now_ns(), t1 = 0, t2 = 0, t3 = 0;
	if (c->o->conf_ready && (err = c->o->conf_ready(c->o->add_devices_arg, &c->conf, c->diag)))
		return err < 0 ? err : -EINVAL;
	err = take_shell(c, &cfg, &vm);
	if (!err && !vm)
		err = sqb_vm_create(&vm, &cfg, c->diag);
	if (err)
		return err;
	t1 = sqb_now_ns();
	err = sqb_snapstate_get(vm, &ss);
	if (!err)
		err = restore_memory(c, vm, ss);
	t2 = sqb_now_ns();
	if (!err)
		err = set_state(c, vm);
	/* exit-driven postcopy: RAM withheld from the guest from here on
	 * (before Diff tracking arms, which grants only resident pages) */
	if (!err && ss->lazy_exit) {
		err = vm->ops->vm_lazy_exit(vm->hv, ss->rs);
		sqb_info("snapshot load: exit-driven postcopy: guest RAM is fetched on its first "
			 "access (%s)",
			 err ? sqb_strerror(err) : "armed");
	}
	if (!err && c->o->track_dirty_pages)
		err = sqb_snap_dirty_start(vm, ss);
	/* watched before the VM Generation ID is written: with 2 MiB pages
	 * that write waits for the server, and a server that dies meanwhile
	 * must release it (a zero page, the VM stopped) rather than hang */
	if (!err && ss->pager_fd >= 0)
		err = sqb_snap_uffd_watch(vm, ss);
	/* clone identity: a new generation ID, written through the accessor
	 * (so in the next Diff) before any vCPU runs ([F-125]) */
	if (!err)
		err = sqb_bus_vmgenid_regenerate(&vm->bus);
	/* and VMClock's disruption: both counters + 1, notified ([F-131]) */
	if (!err)
		err = sqb_bus_vmclock_post_restore(&vm->bus);
	t3 = sqb_now_ns();
	if (!err) {
		set_parent(c, ss);
		err = release(vm, c->o->resume);
		/* SQB_RESTORE_FILL_LATER: the rest once the guest had its
		 * first steps (SQB_FIRST_LOAD_FILL_DELAY_MS) */
		sqb_restore_fill_after(ss->rs, SQB_FIRST_LOAD_FILL_DELAY_MS);
	}
	if (ss && restore_failed(vm, ss, c->diag))
		err = sqb_restore_wait(ss->rs, 0); /* said while loading: a 400 */
	else if (err && ss && ss->pager_fd >= 0) { /* the page server died while loading */
		pthread_mutex_lock(&vm->lock);
		if (vm->stop.message[0])
			sqb_snap_diag(c->diag, "mem_backend", "%s", vm->stop.message);
		pthread_mutex_unlock(&vm->lock);
	}
	sqb_debug("snapshot load: VM %.2f ms, memory %.2f ms, state %.2f ms, start %.2f ms",
		  (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (sqb_now_ns() - t3) / 1e6);
	if (err) {
		sqb_vm_free(vm);
		return err;
	}
	*out = vm;
	return 0;
}

int sqb_vm_snapshot_load(sqb_vm **out, const struct sqb_vm_snap_load *o,
			 struct sqb_vm_snap_conf *conf, struct sqb_diag *diag)
{
	const struct sqb_hv_ops *ops = &sqb_hv_backend;
	struct sqb_diag dummy;
	struct loadctx c;
	int err;

	*out = NULL;
	if (!diag)
		diag = &dummy;
	memset(diag, 0, sizeof(*diag));
	if (!o || o->version != SQB_VM_SNAP_LOAD_VERSION || !o->state_path || !o->backend_path ||
	    (o->backend != SQB_VM_MEM_FILE && o->backend != SQB_VM_MEM_UFFD) ||
	    (unsigned int)o->mode > SQB_VM_LOAD_AUTO || (unsigned int)o->huge_pages > SQB_VM_LOAD_HUGE_2M)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.o = o;
	c.diag = diag;
	uint64_t t0 = sqb_now_ns();
	err = open_state(&c, ops->snap_arch, ops->snap_hv);
	if (!err && o->backend == SQB_VM_MEM_FILE)
		err = open_memory(&c);
	if (!err)
		err = read_records(&c);
	sqb_debug("snapshot load: opening and checking files %.2f ms", (sqb_now_ns() - t0) / 1e6);
	if (!err)
		err = build_vm(&c, out);
	for (unsigned int i = 0; i < c.nvcpus && i < SQB_VM_MAX_VCPUS; i++) {
		free(c.vcpu[i].recs);
		free(c.vcpu[i].backing);
	}
	free(c.intc.recs);
	free(c.intc.backing);
	sqb_snap_free(c.mem);
	sqb_snap_free(c.st);
	if (!err && conf)
		*conf = c.conf;
	else
		sqb_vm_snap_conf_free(&c.conf);
	return err;
}

void sqb_vm_snap_conf_free(struct sqb_vm_snap_conf *conf)
{
	if (!conf)
		return;
	free(conf->kernel_path);
	free(conf->initrd_path);
	free(conf->boot_args);
	free(conf->vm_config_json);
	conf->kernel_path = conf->initrd_path = conf->boot_args = conf->vm_config_json = NULL;
}
