/* The HVF backend end to end over its KVM emulation (arm64 test host only;
 * docs/hvf.md): a tiny guest (hvf_guest.S) run through struct sqb_hv_ops of
 * runtime/hvf/ —
 *   1. Diff by hv_vm_protect write faults: a Full snapshot of RAM, the guest
 *      writes a known page pattern under SQB_DIRTY_EXIT tracking, the
 *      collected bitmap must cover every page that changed (exactness: no
 *      missed page) and every page the guest wrote, then a Diff from it;
 *   2. the VM's and vCPU's records (HVF_GIC_STATE through hv_gic_state_*,
 *      tagged with the OS build; refused for another build, [F-55]);
 *   3. postcopy by access exceptions: a new VM, RAM restored lazily from the
 *      Full+Diff chain (sqb_restore, no background filler), the pattern
 *      area inaccessible: every first touch is a stage-2 fault that fetches
 *      the page and re-grants it; the guest verifies the pattern.
 *   hvf-selftest GUEST_IMAGE WORKDIR      exit 0 pass, 1 fail, 77 skip
 * HVF_SELFTEST_DROP_BIT=1 drops one written page from the collected bitmap:
 * the exactness check and the postcopy guest's verification must then fail. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch_entry.h"
#include "hv.h"
#include "hvf.h"
#include "squib/dirty.h"
#include "squib/restore.h"
#include "squib/snapfmt.h"

#define RAM_GPA	 0x80000000ull
#define RAM_SIZE (16ull << 20)
#define CFG_W	 0x1000ull /* config blocks, RAM offsets */
#define CFG_V	 0x1040ull
#define PAT_OFF	 (4ull << 20) /* the pattern: 1024 pages from RAM + 4 MiB */
#define PAT_NPG	 1024ull
#define SEED	 0x5eed5eed00000000ull
#define UART	 0x09000000ull

static int fails;
#define CHECK(c, ...)                                                                              \
	do {                                                                                       \
		if (c) {                                                                           \
			printf("PASS: " __VA_ARGS__);                                              \
		} else {                                                                           \
			printf("FAIL: " __VA_ARGS__);                                              \
			fails++;                                                                   \
		}                                                                                  \
		printf("\n");                                                                      \
	} while (0)

struct run {
	struct sqb_hv_vm *vm;
	uint64_t cfg;
	char out[256];
	size_t nout;
	int rc, sysev;
	struct sqb_record recs[16];
	unsigned int nrecs;
	int save_rc, load_rc;
};

/* The vCPU thread: create, enter, serve MMIO (the UART) until power-off,
 * then save and re-load its records, all on this thread (HVF's rule). */
static void *vcpu_main(void *arg)
{
	struct run *r = arg;
	const struct sqb_hv_ops *ops = &sqb_hv_backend;
	struct sqb_arch_entry e = {RAM_GPA, RAM_GPA + r->cfg};
	struct sqb_hv_vcpu *vc = NULL;
	struct sqb_hv_exit ex;
	struct sqb_diag d;

	r->rc = ops->vcpu_create(&vc, r->vm, 0, &d);
	if (r->rc || (r->rc = ops->vcpu_set_entry(vc, &e)))
		return NULL;
	for (;;) {
		r->rc = ops->vcpu_run(vc, &ex);
		if (r->rc == -EINTR) {
			ops->vcpu_clear_kick(vc);
			continue;
		}
		if (r->rc)
			break;
		if (ex.kind == SQB_HV_EXIT_MMIO) {
			if (ex.u.mmio.gpa == UART && ex.u.mmio.is_write &&
			    r->nout < sizeof(r->out) - 1)
				r->out[r->nout++] = (char)ex.u.mmio.data[0];
			else if (!ex.u.mmio.is_write)
				memset(ex.u.mmio.data, 0, ex.u.mmio.len);
			continue;
		}
		if (ex.kind == SQB_HV_EXIT_SYSTEM_EVENT) {
			r->sysev = (int)ex.detail;
			break;
		}
		fprintf(stderr, "hvf-selftest: exit kind %d detail 0x%llx (%s)\n", ex.kind,
			(unsigned long long)ex.detail,
			ex.kind == SQB_HV_EXIT_INTERNAL ? ops->exit_internal_name(ex.detail) : "");
		r->rc = -EIO;
		break;
	}
	r->save_rc = ops->vcpu_save_records(vc, r->recs, 16, &r->nrecs);
	if (!r->save_rc)
		r->load_rc = ops->vcpu_load_records(vc, r->recs, r->nrecs, &d);
	ops->vcpu_destroy(vc);
	return NULL;
}

static int run_guest(struct run *r)
{
	pthread_t t;

	if (pthread_create(&t, NULL, vcpu_main, r))
		return -1;
	pthread_join(t, NULL);
	r->out[r->nout] = 0;
	printf("%s", r->out);
	return r->rc;
}

static void free_recs(struct run *r)
{
	for (unsigned int i = 0; i < r->nrecs; i++)
		free((void *)r->recs[i].data);
}

static uint8_t *new_ram(void)
{
	void *p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int vm_up(struct sqb_hv_vm **vm, uint8_t *ram)
{
	const struct sqb_hv_ops *ops = &sqb_hv_backend;
	struct sqb_diag d = {0};
	int err = ops->vm_create(vm, 1, &d);

	if (!err)
		err = ops->vm_map_memory(*vm, 0, RAM_GPA, RAM_SIZE, ram, 0);
	if (!err)
		err = ops->vm_init_platform(*vm, &d);
	if (err)
		fprintf(stderr, "hvf-selftest: VM: %s (%s)\n", strerror(-err), d.reason);
	return err;
}

static int write_snap(const char *path, const uint8_t *ram, const uint64_t *dirty,
		      const sqb_snap *parent)
{
	struct sqb_write_opts wo = SQB_WRITE_OPTS_INIT;
	sqb_snap_writer *w;
	int err;

	wo.arch = SQB_ARCH_AARCH64;
	wo.hv = SQB_HV_HVF;
	wo.parent = parent;
	err = sqb_writer_open(&w, path, &wo);
	if (err)
		return err;
	err = sqb_writer_add_memory(w, RAM_GPA, RAM_SIZE, ram, dirty);
	if (!err)
		err = sqb_writer_finish(w, NULL, NULL);
	sqb_writer_free(w);
	return err;
}

static void put_cfg(uint8_t *ram, uint64_t off, uint64_t mode)
{
	uint64_t c[4] = {mode, RAM_GPA + PAT_OFF, PAT_NPG, SEED};

	memcpy(ram + off, c, sizeof(c));
}

/* Part 1: Full, then a guest run under exit-driven tracking, then a Diff. */
static int dirty_part(const uint8_t *img, size_t imglen, const char *full, const char *diff)
{
	const struct sqb_hv_ops *ops = &sqb_hv_backend;
	uint8_t *ram = new_ram(), *before = malloc(RAM_SIZE);
	uint64_t bm[RAM_SIZE / 4096 / 64], nd = 0, missed = 0, wrote_missed = 0, changed = 0;
	struct sqb_dirty_range rg = {NULL, RAM_GPA, RAM_SIZE, 0, 0};
	struct sqb_dirty_opts o = SQB_DIRTY_OPTS_INIT;
	struct sqb_hvf_faults *f = NULL;
	struct run r = {.cfg = CFG_W};
	sqb_dirty *d = NULL;
	sqb_snap *fs = NULL;
	int err;

	if (!ram || !before)
		return -ENOMEM;
	memcpy(ram, img, imglen);
	put_cfg(ram, CFG_W, 1);
	put_cfg(ram, CFG_V, 2);
	err = write_snap(full, ram, NULL, NULL);
	CHECK(!err, "Full snapshot of the guest's RAM before it runs (%s)", strerror(-err));
	if (err || (err = vm_up(&r.vm, ram)))
		return err;
	rg.host = ram;
	err = sqb_hvf_faults_create(&f, r.vm, RAM_GPA, RAM_SIZE);
	o.backend = SQB_DIRTY_EXIT;
	o.ranges = &rg;
	o.nranges = 1;
	o.protect = sqb_hvf_faults_dirty_protect;
	o.protect_ctx = f;
	if (!err)
		err = sqb_dirty_open(&d, &o);
	if (!err)
		sqb_hvf_faults_set_dirty(f, d);
	if (!err)
		err = sqb_dirty_start(d);
	CHECK(!err, "SQB_DIRTY_EXIT tracker armed through hv_vm_protect (%s)", strerror(-err));
	if (err)
		return err;
	memcpy(before, ram, RAM_SIZE);
	err = run_guest(&r);
	CHECK(!err && strstr(r.out, "hvf-guest: wrote") && r.sysev == SQB_HV_SYSEV_SHUTDOWN,
	      "guest wrote its pattern and powered off through PSCI SYSTEM_OFF (HVC exit)");
	err = sqb_dirty_collect(d, bm, sizeof(bm) / 8, &nd);
	CHECK(!err, "collect (%s)", strerror(-err));
	if (getenv("HVF_SELFTEST_DROP_BIT")) { /* prove the checks can fail: lose one page */
		uint64_t p = PAT_OFF / 4096;

		bm[p / 64] &= ~(1ull << (p % 64));
		nd--;
		printf("INFO: HVF_SELFTEST_DROP_BIT: page %llu dropped from the Diff\n",
		       (unsigned long long)p);
	}
	for (uint64_t p = 0; p < RAM_SIZE / 4096; p++) {
		int bit = (bm[p / 64] >> (p % 64)) & 1;

		if (memcmp(before + p * 4096, ram + p * 4096, 4096)) {
			changed++;
			missed += !bit;
		}
		if (p >= PAT_OFF / 4096 && p < PAT_OFF / 4096 + PAT_NPG &&
		    (p - PAT_OFF / 4096) % 3 != 2)
			wrote_missed += !bit;
	}
	uint64_t fetched, dfaults;
	sqb_hvf_faults_stats(f, &fetched, &dfaults);
	printf("INFO: %llu pages changed, %llu reported dirty, %llu write faults\n",
	       (unsigned long long)changed, (unsigned long long)nd, (unsigned long long)dfaults);
	CHECK(missed == 0 && changed > 0,
	      "exactness: every changed page is in the Diff (%llu missed)",
	      (unsigned long long)missed);
	CHECK(wrote_missed == 0, "every page the guest wrote is dirty (%llu missed)",
	      (unsigned long long)wrote_missed);
	CHECK(nd <= changed + 2, "over-report bounded: %llu dirty for %llu changed",
	      (unsigned long long)nd, (unsigned long long)changed);
	/* records: vCPU saved/loaded on its thread; the GIC blob and [F-55] */
	CHECK(!r.save_rc && !r.load_rc && r.nrecs >= 6,
	      "vCPU records saved and loaded on the vCPU thread (%u records)", r.nrecs);
	struct sqb_record vrec[2];
	unsigned int nv = 0;
	struct sqb_diag dg;
	err = ops->vm_save_records(r.vm, vrec, 2, &nv);
	CHECK(!err && nv == 1 && vrec[0].tag == SQB_REC_HVF_GIC_STATE,
	      "HVF_GIC_STATE from hv_gic_state_create/get_data (%u bytes)", nv ? vrec[0].len : 0);
	if (!err && nv == 1) {
		CHECK(ops->vm_load_records(r.vm, vrec, 1, &dg) == 0,
		      "GIC blob loads on the same OS build");
		((uint8_t *)vrec[0].data)[8] ^= 1; /* another OS build */
		CHECK(ops->vm_load_records(r.vm, vrec, 1, &dg) == -SQB_EMISMATCH,
		      "GIC blob of another OS build refused [F-55]: %s", dg.reason);
		free((void *)vrec[0].data);
	}
	free_recs(&r);
	err = sqb_snap_open(&fs, full, NULL, &dg);
	if (!err)
		err = write_snap(diff, ram, bm, fs);
	CHECK(!err, "Diff snapshot from the hv_vm_protect bitmap (%s)", strerror(-err));
	sqb_snap_free(fs);
	sqb_dirty_stop(d);
	sqb_hvf_faults_set_dirty(f, NULL);
	sqb_dirty_free(d);
	sqb_hvf_faults_free(f);
	ops->vm_destroy(r.vm);
	munmap(ram, RAM_SIZE);
	free(before);
	return 0;
}

/* Part 3: a new VM whose RAM comes lazily from Full+Diff. */
static int postcopy_part(const char *diff)
{
	const struct sqb_hv_ops *ops = &sqb_hv_backend;
	struct sqb_restore_opts ro = SQB_RESTORE_OPTS_INIT;
	struct sqb_hvf_faults *f = NULL;
	struct run r = {.cfg = CFG_V};
	sqb_restore *rs = NULL;
	sqb_snap *s = NULL;
	struct sqb_diag dg = {0};
	uint8_t *ram = new_ram();
	void *host[1] = {ram};
	uint64_t fetched = 0, df = 0;
	int err;

	if (!ram)
		return -ENOMEM;
	err = sqb_snap_open(&s, diff, NULL, &dg);
	ro.strategy = SQB_RESTORE_LAZY;
	ro.flags = SQB_RESTORE_NO_FILL;
	ro.host = host;
	if (!err)
		err = sqb_restore_start(&rs, s, &ro, &dg);
	CHECK(!err, "lazy restore of the Full+Diff chain started (%s %s)", strerror(-err),
	      dg.reason);
	if (err || (err = vm_up(&r.vm, ram)))
		return err;
	err = sqb_hvf_faults_create(&f, r.vm, RAM_GPA, RAM_SIZE);
	/* code and config resident first (KVM cannot report an instruction
	 * fetch from an absent page to the emulation: docs/hvf.md) */
	if (!err)
		err = sqb_restore_fetch(rs, RAM_GPA, 1 << 20);
	if (!err)
		err = sqb_hvf_faults_lazy(f, rs, RAM_GPA + PAT_OFF, PAT_NPG * 4096);
	CHECK(!err, "pattern area made inaccessible to the guest (%s)", strerror(-err));
	if (!err)
		err = run_guest(&r);
	sqb_hvf_faults_stats(f, &fetched, &df);
	printf("INFO: %llu pages fetched by access faults\n", (unsigned long long)fetched);
	CHECK(!err && strstr(r.out, "hvf-guest: verify ok") && r.sysev == SQB_HV_SYSEV_SHUTDOWN,
	      "postcopy: the guest reads its pattern back through access faults");
	CHECK(fetched > 0 && fetched <= PAT_NPG, "faults fetched %llu of %llu lazy pages",
	      (unsigned long long)fetched, (unsigned long long)PAT_NPG);
	free_recs(&r);
	sqb_hvf_faults_free(f);
	ops->vm_destroy(r.vm);
	sqb_restore_free(rs);
	sqb_snap_free(s);
	munmap(ram, RAM_SIZE);
	return 0;
}

int main(int argc, char **argv)
{
	char full[512], diff[512];
	static uint8_t img[1 << 16];
	ssize_t n;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: hvf-selftest GUEST_IMAGE WORKDIR\n");
		return 2;
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: no /dev/kvm (the HVF emulation runs on arm64 KVM)\n");
		return 77;
	}
	fd = open(argv[1], O_RDONLY);
	n = fd >= 0 ? read(fd, img, sizeof(img)) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0 || (size_t)n > CFG_W) {
		fprintf(stderr, "hvf-selftest: cannot read %s (or it overlaps the config)\n",
			argv[1]);
		return 1;
	}
	snprintf(full, sizeof(full), "%s/hvf-full.sqb", argv[2]);
	snprintf(diff, sizeof(diff), "%s/hvf-diff.sqb", argv[2]);
	if (dirty_part(img, (size_t)n, full, diff) || postcopy_part(diff))
		fails++;
	printf("%s: hvf-selftest, %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
	return fails ? 1 : 0;
}
