/* snapshot_bench: squib snapshot create (pause window, Full and Diff at 1 %
 * dirty) and load (request -> vCPUs running, and -> first guest progress)
 * for File-mmap, File-lazy, File-eager and Uffd, beside a bare-KVM floor
 * measured in the same run: create a VM with irqchip + PIT, map the same
 * memory file, create the vCPUs and set the same kinds of state.
 *   usage: snapshot_bench SQUIB GUEST_DIR SQUIB_PAGER [--quick | --pause MIB] */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "squib_client.h"

static const char *squib, *guests, *pager;
static char dir[128];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n ? v[n / 2] : 0;
}

static void die(const char *what, struct sqb_tc *t)
{
	char *e = t ? tc_read_file(t->errlog) : NULL;

	fprintf(stderr, "snapshot_bench: %s\n%s\n", what, e ? e : "");
	if (t)
		tc_stop(t);
	exit(1);
}

static void req(struct sqb_tc *t, const char *m, const char *p, const char *j, int want)
{
	char body[4096];
	int st = tc_req(t, m, p, j, body, sizeof(body));

	if (st != want) {
		fprintf(stderr, "%s %s %s -> %d %s\n", m, p, j ? j : "", st, body);
		die("request failed", t);
	}
}

/* Tight poll of the serial file for the n-th occurrence of needle. */
static int wait_nth(struct sqb_tc *t, const char *needle, int n, int ms)
{
	double end = now_ms() + ms;

	while (now_ms() < end) {
		char *s = tc_read_file(t->serial);
		int c = 0;

		for (char *p = s ? strstr(s, needle) : NULL; p; p = strstr(p + 1, needle))
			c++;
		free(s);
		if (c >= n)
			return 0;
		usleep(200);
	}
	return -1;
}

static void input(struct sqb_tc *t, const char *s)
{
	if (write(t->stdin_fd, s, strlen(s)) < 0)
		die("stdin", t);
}

static int pause_only; /* --pause MIB: the create rows of one size, no loads */

/* --pause runs log at Info, so squib's own breakdown of each background
 * pause can be printed (pause_breakdown) */
static void spawn(struct sqb_tc *t)
{
	if (tc_spawn_stdin(t, squib,
			   (const char *const[]){"--level", pause_only ? "Info" : "Warning", NULL},
			   1))
		die("cannot spawn squib", NULL);
}

/* squib's "snapshot create (background): ..." log lines, one per create,
 * in create order (reps Full ones interleaved with reps Diff ones): each
 * line, then the median of each pause step per kind. */
static void pause_breakdown(struct sqb_tc *t, int reps)
{
	static const char *const step[4] = {"settle+dirty", "holes (cover)", "state file",
					    "write-protect/copy"};
	char *e = tc_read_file(t->errlog), *p = e;
	double v[2][4][16];
	int i = 0, n[2] = {0, 0};

	while (p && (p = strstr(p, "snapshot create (background): "))) {
		char *nl = strchr(p, '\n'), what[16];
		double a, b, c, d;
		int k = i % 2;

		if (nl)
			*nl = 0;
		p += strlen("snapshot create (background): ");
		printf("    %s %d: %s\n", k ? "Diff" : "Full", i / 2, p);
		/* "scan" in builds before the cover, "cover" since */
		if (sscanf(p,
			   "settle+dirty %lf ms, %15s %lf ms, state %lf ms, write-protect %lf ms",
			   &a, what, &b, &c, &d) == 5 &&
		    n[k] < 16) {
			v[k][0][n[k]] = a;
			v[k][1][n[k]] = b;
			v[k][2][n[k]] = c;
			v[k][3][n[k]++] = d;
		}
		p = nl ? nl + 1 : NULL;
		i++;
	}
	for (int s = 0; s < 4; s++)
		printf("  pause step %-19s %8.2f ms (Full)  %8.2f ms (Diff), medians of %d / %d\n",
		       step[s], median(v[0][s], n[0]), median(v[1][s], n[1]), n[0], n[1]);
	free(e);
	/* live creates: squib's split of each pause window */
	e = tc_read_file(t->errlog);
	p = e;
	for (i = 0; p && (p = strstr(p, "live snapshot: ")); i++) {
		char *nl = strchr(p, '\n');

		if (nl)
			*nl = 0;
		printf("    live %s %d: %s\n", i % 2 ? "Diff" : "Full", i / 2, p + 15);
		p = nl ? nl + 1 : NULL;
	}
	(void)reps;
	free(e);
}

static const char *path(const char *name, const char *sfx)
{
	static char b[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(b[k], sizeof(b[k]), "%s/%s%s", dir, name, sfx);
	return b[k];
}

/* One timed pause -> create -> resume; returns the pause window (ms) and
 * the create request alone in *create. */
static double snap_once(struct sqb_tc *t, const char *type, const char *name, const char *codec,
			double *create)
{
	char body[1024];
	double t0, t1, t2, t3;

	/* codec "raw": a raw memory file in Firecracker's layout (format.md 7.5) */
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\","
		 "\"squib\":{\"%s\":\"%s\"}}",
		 type, path(name, ".state"), path(name, ".mem"),
		 strcmp(codec, "raw") ? "codec" : "mem_format", codec);
	t0 = now_ms();
	req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	t1 = now_ms();
	req(t, "PUT", "/snapshot/create", body, 204);
	t2 = now_ms();
	req(t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	t3 = now_ms();
	*create = t2 - t1;
	return t3 - t0;
}

/* Background create (docs/snapshots.md): pause -> create -> resume, then
 * GET /snapshot/status until durable (*done: resume to durable, ms). */
static double bg_req[2][16], bg_pz[2][16], bg_rs[2][16]; /* create, pause, resume requests */
static int bg_n[2];

/* GET /snapshot/status until the background create is no longer writing;
 * st gets the last answer, which must say complete. */
static void bg_wait(struct sqb_tc *t, char *st, size_t cap)
{
	for (;;) {
		if (tc_req(t, "GET", "/snapshot/status", NULL, st, cap) != 200)
			die("GET /snapshot/status failed", t);
		if (!strstr(st, "\"writing\""))
			break;
		usleep(1000);
	}
	if (!strstr(st, "\"complete\""))
		die(st, t);
}

static double bg_once(struct sqb_tc *t, const char *type, const char *name, double *done)
{
	char body[1024], st[1024];
	double t0, t1, t2, t3;
	int k = strcmp(type, "Full") != 0;

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\","
		 "\"squib\":{\"background\":true}}",
		 type, path(name, ".state"), path(name, ".mem"));
	t0 = now_ms();
	req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	t1 = now_ms();
	req(t, "PUT", "/snapshot/create", body, 204);
	t2 = now_ms();
	req(t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	t3 = now_ms();
	if (bg_n[k] < 16) {
		bg_pz[k][bg_n[k]] = t1 - t0;
		bg_rs[k][bg_n[k]] = t3 - t2;
		bg_req[k][bg_n[k]++] = t2 - t1;
	}
	bg_wait(t, st, sizeof(st));
	*done = now_ms() - t3;
	return t3 - t0;
}

/* Live create (docs/snapshots.md "Live creates"): the background create of
 * a RUNNING VM, no PATCH /vm; squib pauses the guest itself and reports the
 * window in GET /snapshot/status's pause_us (returned, ms).  *reqms: the
 * whole create request (early protection included), *done: to durable. */
static double live_once(struct sqb_tc *t, const char *type, const char *name, double *reqms,
			double *done)
{
	char body[1024], st[1024];
	const char *pu;
	double t0, t1;

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\","
		 "\"squib\":{\"background\":true}}",
		 type, path(name, ".state"), path(name, ".mem"));
	t0 = now_ms();
	req(t, "PUT", "/snapshot/create", body, 204);
	t1 = now_ms();
	*reqms = t1 - t0;
	bg_wait(t, st, sizeof(st));
	if (!(pu = strstr(st, "\"pause_us\":")))
		die(st, t);
	*done = now_ms() - t1;
	return atof(pu + 11) / 1000.0;
}

/* The floor of a pause window: pause and resume with nothing between. */
static double pause_floor_once(struct sqb_tc *t)
{
	double t0 = now_ms();

	req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	req(t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	return now_ms() - t0;
}

struct load_res {
	double load, progress;
};

static struct load_res load_once(const char *name, const char *how)
{
	struct sqb_tc t;
	struct load_res r;
	char body[1024], sock[200], ext[128] = "";
	pid_t pp = -1;
	double t0;

	if (!strcmp(how, "uffd")) {
		struct stat sb;
		snprintf(sock, sizeof(sock), "%s/pager.sock", dir);
		unlink(sock);
		pp = fork();
		if (pp == 0) {
			execl(pager, pager, sock, path(name, ".mem"), (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 1000 && stat(sock, &sb); i++)
			usleep(5000);
	} else if (!strcmp(how, "mmap-trust")) {
		snprintf(ext, sizeof(ext), ",\"squib\":{\"restore\":\"mmap\",\"verify\":false}");
	} else {
		snprintf(ext, sizeof(ext), ",\"squib\":{\"restore\":\"%s\"}",
			 !strncmp(how, "mmap-verify", 11) ? "mmap" : how);
	}
	/* the verification cache (docs/snapshots.md): off, except for the
	 * "remembered" rows, which use a cache of this run's own */
	if (strstr(how, "remembered")) {
		char vc[200];
		snprintf(vc, sizeof(vc), "%s/vcache", dir);
		setenv("SQB_VERIFY_CACHE", vc, 1);
	} else {
		setenv("SQB_VERIFY_CACHE", "off", 1);
	}
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"%s\","
		 "\"backend_path\":\"%s\"},\"resume_vm\":true%s}",
		 path(name, ".state"), pp > 0 ? "Uffd" : "File", pp > 0 ? sock : path(name, ".mem"),
		 ext);
	spawn(&t);
	t0 = now_ms();
	req(&t, "PUT", "/snapshot/load", body, 204);
	r.load = now_ms() - t0;
	input(&t, "p");
	if (wait_nth(&t, "PONG", 1, 30000))
		die("no PONG after load", &t);
	r.progress = now_ms() - t0;
	tc_stop(&t);
	if (pp > 0) {
		kill(pp, SIGKILL);
		waitpid(pp, NULL, 0);
	}
	return r;
}

/* ---- the floor: bare KVM, same memory file, same kinds of state ---- */

static int vcpu_state_roundtrip(int kvm, int vm, int vc)
{
	static struct kvm_cpuid2 *cpuid;
	static struct kvm_msr_list *ml;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_xcrs x;
	struct kvm_xsave xs;
	struct kvm_lapic_state la;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dr;
	struct kvm_msrs *m;
	int ok = 1;

	if (!cpuid) {
		cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(cpuid->entries[0]));
		cpuid->nent = 256;
		ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid);
		ml = calloc(1, sizeof(*ml) + 4096 * 4);
		ml->nmsrs = 4096;
		ioctl(kvm, KVM_GET_MSR_INDEX_LIST, ml);
	}
	m = calloc(1, sizeof(*m) + ml->nmsrs * sizeof(m->entries[0]));
	m->nmsrs = ml->nmsrs;
	for (uint32_t i = 0; i < ml->nmsrs; i++)
		m->entries[i].index = ml->indices[i];
	ok &= ioctl(vc, KVM_SET_CPUID2, cpuid) == 0;
	ok &= ioctl(vc, KVM_GET_SREGS, &s) == 0 && ioctl(vc, KVM_SET_SREGS, &s) == 0;
	ok &= ioctl(vc, KVM_GET_REGS, &r) == 0 && ioctl(vc, KVM_SET_REGS, &r) == 0;
	ok &= ioctl(vc, KVM_GET_XCRS, &x) == 0 && ioctl(vc, KVM_SET_XCRS, &x) == 0;
	ok &= ioctl(vc, KVM_GET_XSAVE, &xs) == 0 && ioctl(vc, KVM_SET_XSAVE, &xs) == 0;
	ok &= ioctl(vc, KVM_GET_LAPIC, &la) == 0 && ioctl(vc, KVM_SET_LAPIC, &la) == 0;
	m->nmsrs = (uint32_t)ioctl(vc, KVM_GET_MSRS, m);
	ok &= ioctl(vc, KVM_SET_MSRS, m) >= 0;
	ok &= ioctl(vc, KVM_GET_VCPU_EVENTS, &ev) == 0 && ioctl(vc, KVM_SET_VCPU_EVENTS, &ev) == 0;
	ok &= ioctl(vc, KVM_GET_MP_STATE, &mp) == 0 && ioctl(vc, KVM_SET_MP_STATE, &mp) == 0;
	ok &= ioctl(vc, KVM_GET_DEBUGREGS, &dr) == 0 && ioctl(vc, KVM_SET_DEBUGREGS, &dr) == 0;
	free(m);
	(void)vm;
	return ok ? 0 : -1;
}

/* Returns ms from nothing to a vCPU that has entered KVM_RUN once. */
static double floor_once(const char *mem_file, uint64_t size)
{
	struct kvm_pit_config pc = {.flags = KVM_PIT_SPEAKER_DUMMY};
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	double t0 = now_ms(), t;
	int kvm, vm, vc, fd, rs;
	struct kvm_run *run;
	uint8_t *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	fd = open(mem_file, O_RDONLY | O_CLOEXEC);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	struct kvm_userspace_memory_region reg = {0, 0, 0, size, (uint64_t)(uintptr_t)mem};
	if (kvm < 0 || vm < 0 || fd < 0 || mem == MAP_FAILED ||
	    ioctl(vm, KVM_SET_USER_MEMORY_REGION, &reg) < 0 ||
	    ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm, KVM_CREATE_PIT2, &pc) < 0)
		die("floor: VM set-up", NULL);
	ioctl(vm, KVM_GET_PIT2, &pit);
	ioctl(vm, KVM_SET_PIT2, &pit);
	ioctl(vm, KVM_GET_CLOCK, &clk);
	clk.flags = 0;
	ioctl(vm, KVM_SET_CLOCK, &clk);
	for (int i = 0; i < 3; i++) {
		struct kvm_irqchip chip = {.chip_id = (uint32_t)i};
		ioctl(vm, KVM_GET_IRQCHIP, &chip);
		ioctl(vm, KVM_SET_IRQCHIP, &chip);
	}
	vc = ioctl(vm, KVM_CREATE_VCPU, 0);
	rs = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)rs, PROT_READ | PROT_WRITE, MAP_SHARED, vc, 0);
	if (vc < 0 || run == MAP_FAILED || vcpu_state_roundtrip(kvm, vm, vc))
		die("floor: vCPU state", NULL);
	run->immediate_exit = 1;
	ioctl(vc, KVM_RUN, 0); /* returns EINTR at once: the vCPU is "running" */
	t = now_ms() - t0;
	munmap(run, (size_t)rs);
	munmap(mem, size);
	close(vc);
	close(fd);
	close(vm);
	close(kvm);
	return t;
}

/* The floor runs as its own fresh process (cold, like a squib that was just
 * started) and reports its internal time, as squib's load is timed from the
 * request after the process is up. */
static char self_exe[512];

static double floor_child(const char *mem_file, uint64_t size)
{
	char cmd[1200], out[64] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s --floor '%s' %llu", self_exe, mem_file,
		 (unsigned long long)size);
	f = popen(cmd, "r");
	if (!f || !fgets(out, sizeof(out), f))
		die("floor child failed", NULL);
	pclose(f);
	return atof(out);
}

static double disk_mib(const char *name)
{
	struct stat a, b;

	if (stat(path(name, ".mem"), &a) || stat(path(name, ".state"), &b))
		return -1;
	return (double)(a.st_blocks + b.st_blocks) * 512 / (1 << 20);
}

/* Raw memory file (Firecracker's layout, index in the state file) against
 * squib's container, both codec none, same guest, same run. */
static double raw_w[16], raw_c[16];

static void bench_raw_create(struct sqb_tc *t, int reps)
{
	for (int i = 0; i < reps; i++)
		raw_w[i] = snap_once(t, "Full", "rawfull", "raw", &raw_c[i]);
}

static void bench_raw_load(int reps, double floor_ms)
{
	static const char *const hows[] = {"mmap-trust", "mmap-verify", "mmap-verify-remembered",
					   "lazy"};
	double ld[16], pg[16];

	printf("  %-34s %9.2f ms  (create request %.2f ms)\n", "create Full raw: pause window",
	       median(raw_w, reps), median(raw_c, reps));
	printf("  %-34s %9.1f MiB (container pair %.1f MiB)\n", "disk used, raw pair",
	       disk_mib("rawfull"), disk_mib("full"));
	for (size_t h = 0; h < sizeof(hows) / sizeof(hows[0]); h++) {
		char label[64];

		if (strstr(hows[h], "remembered"))
			load_once("rawfull", hows[h]);
		for (int i = 0; i < reps; i++) {
			struct load_res r = load_once("rawfull", hows[h]);
			ld[i] = r.load;
			pg[i] = r.progress;
		}
		snprintf(label, sizeof(label), "raw %s", hows[h]);
		printf("  load %-29s %9.2f ms  (%.2fx floor)  first progress %.2f ms\n", label,
		       median(ld, reps), median(ld, reps) / floor_ms, median(pg, reps));
	}
}

static void bench_size(int mib, int fill, int reps)
{
	static const char *const hows[] = {"mmap-trust", "mmap-verify", "mmap-verify-remembered",
					   "lazy",	 "eager",	"uffd"};
	double full_w[16], full_c[16], diff_w[16], diff_c[16], dlz_w[16], dlz_c[16], fl[128],
	    ld[16], pg[16], floor_ms = 1, bgf_w[16], bgf_d[16], bgd_w[16], bgd_d[16], pfl[16],
			    lvf_w[16], lvf_r[16], lvf_d[16], lvd_w[16], lvd_r[16], lvd_d[16];
	char args[128], want[40], mc[128];
	struct sqb_tc t;

	snprintf(args, sizeof(args), "mode=4 mib=%d dpages=%d", fill, mib * 256 / 100);
	spawn(&t);
	snprintf(mc, sizeof(mc),
		 "{\"vcpu_count\":1,\"mem_size_mib\":%d,\"track_dirty_pages\":true}", mib);
	req(&t, "PUT", "/machine-config", mc, 204);
	{
		char bs[512];
		snprintf(bs, sizeof(bs),
			 "{\"kernel_image_path\":\"%s/snapguest.elf\",\"boot_args\":\"%s\"}",
			 guests, args);
		req(&t, "PUT", "/boot-source", bs, 204);
	}
	req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	if (wait_nth(&t, "FILLED", 1, 120000))
		die("guest never filled its memory", &t);
	for (int i = 0; i < reps; i++)
		full_w[i] = snap_once(&t, "Full", "full", "none", &full_c[i]);
	for (int i = 0; i < 2 * reps; i++) {
		char name[32];
		input(&t, "d");
		if (wait_nth(&t, "DIRTIED", i + 1, 30000))
			die("guest never dirtied", &t);
		snprintf(name, sizeof(name), "diff%d", i);
		if (i < reps)
			diff_w[i] = snap_once(&t, "Diff", name, "none", &diff_c[i]);
		else
			dlz_w[i - reps] = snap_once(&t, "Diff", name, "lz4", &dlz_c[i - reps]);
	}
	for (int i = 0; i < reps; i++) {
		char name[32];

		pfl[i] = pause_floor_once(&t);
		bgf_w[i] = bg_once(&t, "Full", "bgfull", &bgf_d[i]);
		input(&t, "d");
		if (wait_nth(&t, "DIRTIED", 2 * reps + i + 1, 30000))
			die("guest never dirtied", &t);
		snprintf(name, sizeof(name), "bgdiff%d", i);
		bgd_w[i] = bg_once(&t, "Diff", name, &bgd_d[i]);
	}
	for (int i = 0; i < reps; i++) {
		char name[32];

		lvf_w[i] = live_once(&t, "Full", "lvfull", &lvf_r[i], &lvf_d[i]);
		input(&t, "d");
		if (wait_nth(&t, "DIRTIED", 3 * reps + i + 1, 30000))
			die("guest never dirtied", &t);
		snprintf(name, sizeof(name), "lvdiff%d", i);
		lvd_w[i] = live_once(&t, "Diff", name, &lvd_r[i], &lvd_d[i]);
	}
	if (!pause_only)
		bench_raw_create(&t, reps);
	else
		pause_breakdown(&t, reps);
	tc_stop(&t);
	{
		char la[64] = "?";
		FILE *f = fopen("/proc/loadavg", "r");

		if (f) {
			if (!fgets(la, sizeof(la), f))
				snprintf(la, sizeof(la), "?");
			fclose(f);
		}
		la[strcspn(la, "\n")] = 0;
		printf("\n%d MiB guest (%d MiB written by the guest), 1 vCPU, codec none, %d runs, "
		       "medians; load average %s\n",
		       mib, fill, reps, la);
	}
	printf("  %-34s %9.2f ms  (create request %.2f ms)\n", "create Full: pause window",
	       median(full_w, reps), median(full_c, reps));
	printf("  %-34s %9.2f ms  (create request %.2f ms)\n", "create Diff 1% dirty: pause window",
	       median(diff_w, reps), median(diff_c, reps));
	printf("  %-34s %9.2f ms  (create request %.2f ms)\n", "create Diff 1% lz4: pause window",
	       median(dlz_w, reps), median(dlz_c, reps));
	printf("  %-34s %9.2f ms\n", "floor: pause+resume, no create", median(pfl, reps));
	printf("  %-34s %9.2f ms  (floor %.2f ms; create request %.2f ms; durable %.1f ms after "
	       "resume)\n",
	       "create Full background: pause win.", median(bgf_w, reps), median(pfl, reps),
	       median(bg_req[0], bg_n[0]), median(bgf_d, reps));
	printf("  %-34s %9.2f ms  (floor %.2f ms; create request %.2f ms; durable %.1f ms after "
	       "resume)\n",
	       "create Diff 1% background: pause", median(bgd_w, reps), median(pfl, reps),
	       median(bg_req[1], bg_n[1]), median(bgd_d, reps));
	printf("  %-34s %9.2f ms  (Full) / %.2f ms (Diff); resume %.2f / %.2f ms\n",
	       "background: pause request", median(bg_pz[0], bg_n[0]), median(bg_pz[1], bg_n[1]),
	       median(bg_rs[0], bg_n[0]), median(bg_rs[1], bg_n[1]));
	printf("  %-34s %9.2f ms  (floor %.2f ms; create request %.2f ms; durable %.1f ms after)\n",
	       "create Full live: pause window", median(lvf_w, reps), median(pfl, reps),
	       median(lvf_r, reps), median(lvf_d, reps));
	printf("  %-34s %9.2f ms  (floor %.2f ms; create request %.2f ms; durable %.1f ms after)\n",
	       "create Diff 1% live: pause window", median(lvd_w, reps), median(pfl, reps),
	       median(lvd_r, reps), median(lvd_d, reps));
	bg_n[0] = bg_n[1] = 0;
	if (pause_only) {
		fflush(stdout);
		return;
	}
	/* the floor is measured between squib's runs so both see the same noise */
	for (int i = 0; i < reps; i++)
		fl[i] = floor_child(path("full", ".mem"), (uint64_t)mib << 20);
	for (size_t h = 0; h < sizeof(hows) / sizeof(hows[0]); h++) {
		if (strstr(hows[h], "remembered"))
			load_once("full", hows[h]); /* the first load verifies and remembers */
		for (int i = 0; i < reps; i++) {
			struct load_res r = load_once("full", hows[h]);
			ld[i] = r.load;
			pg[i] = r.progress;
			fl[reps * (1 + (int)h) + i] =
			    floor_child(path("full", ".mem"), (uint64_t)mib << 20);
		}
		if (h == 0) {
			floor_ms = median(fl, reps * 2);
			printf("  %-34s %9.2f ms\n", "floor: bare KVM VM+map+vCPU state", floor_ms);
		}
		snprintf(want, sizeof(want), "%s", hows[h]);
		printf("  load %-29s %9.2f ms  (%.2fx floor)  first progress %.2f ms\n", want,
		       median(ld, reps), median(ld, reps) / floor_ms, median(pg, reps));
	}
	for (int k = 0; k < 2; k++) {
		const char *how = k ? "lazy" : "mmap-trust";
		char label[64];

		for (int i = 0; i < reps; i++) {
			struct load_res r = load_once("diff0", how);
			ld[i] = r.load;
			pg[i] = r.progress;
		}
		snprintf(label, sizeof(label), "Diff (Full+1 layer) %s", how);
		printf("  load %-29s %9.2f ms  (%.2fx floor)  first progress %.2f ms\n", label,
		       median(ld, reps), median(ld, reps) / floor_ms, median(pg, reps));
	}
	bench_raw_load(reps, floor_ms);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int quick = argc > 4 && !strcmp(argv[4], "--quick");
	int fd;

	{
		ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
		self_exe[n > 0 ? n : 0] = 0;
	}
	if (argc == 4 && !strcmp(argv[1], "--floor")) {
		printf("%.3f\n", floor_once(argv[2], strtoull(argv[3], NULL, 10)));
		return 0;
	}
	if (argc < 4) {
		fprintf(
		    stderr,
		    "usage: snapshot_bench SQUIB GUEST_DIR SQUIB_PAGER [--quick | --pause MIB]\n");
		return 2;
	}
	squib = argv[1];
	guests = argv[2];
	pager = argv[3];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "snapshot_bench: skip: /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	close(fd);
	snprintf(dir, sizeof(dir), "/tmp/squib-snapbench-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	printf("snapshot_bench: squib snapshot create/load vs a bare-KVM floor, one run\n");
	if (argc > 5 && !strcmp(argv[4], "--pause")) {
		pause_only = 1;
		bench_size(atoi(argv[5]), 200, 5);
	} else if (quick) {
		bench_size(64, 32, 2);
	} else {
		bench_size(256, 200, 5);
		bench_size(1024, 200, 5);
	}
	{
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return 0;
}
