/* fleet_bench (docs/fleet.md "Numbers", issue 14): clone latency p50/p99
 * from the load request to the guest answering on its serial line, with a
 * pool of pre-warmed squib processes and without; wall time for N clones
 * of one snapshot; host memory (PSS) per idle clone.  The floor is measured
 * in the same run: bare KVM VM creation plus a MAP_PRIVATE mapping of the
 * memory file, per clone.  Not a pass/fail test: the ctest runs --tiny.
 * Usage: fleet_bench SQUIB GUEST [--tiny] [--iters K] [--clones N,...]
 *                    [--mem-mib M] [--fill-mib F] [--smaps FILE] [--zygote]
 *                    [--hold S] [--no-cold]
 * --smaps FILE saves /proc/PID/smaps of one idle pooled clone (FILE.zygote:
 * one forked by the zygote); --zygote adds a pool whose members a squib
 * zygote forks (docs/fleet.md "Zygote"), measured in the same run; --hold S
 * prints the pid of one idle pooled (and zygote) clone and keeps the clones
 * S seconds, for a heap walk (docs/fleet.md "Load leftovers"); --no-cold
 * leaves out the N clones without a pool (a 1000-clone run, a profile).
 * Every run also measures a pool loaded ahead: members that loaded the
 * snapshot with resume_vm false, resumed by the request (PATCH /vm), as
 * squib-fleet daemon --loaded keeps them; with --zygote, forked by it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"

static const char *squib, *guest;
static char tmp[64], state[128], mem[128], body[2600];
static struct sqb_fleet_shape shape = {1, 32};
static unsigned int fill_mib = 8;
static const char *smaps_out; /* --smaps FILE: one idle pooled clone's smaps */
static unsigned int hold_s;   /* --hold S: keep the idle clones S seconds (heap walks) */
static int no_cold;	      /* --no-cold: N clones only from pools (profiles, 1000-clone runs) */
static struct sqb_fleet_zygote zyg = {0, -1}; /* --zygote */
enum { COLD = 0, POOLED = 1, ZYGOTE = 2, LOADED = 3 };
static char body_paused[2600]; /* the load with resume_vm false (LOADED) */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(double *v, unsigned int n, double p)
{
	unsigned int i;

	qsort(v, n, sizeof(*v), cmp_d);
	i = (unsigned int)(p * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void die(const char *what)
{
	fprintf(stderr, "fleet_bench: %s\n", what);
	exit(1);
}

/* ---- the floor: KVM_CREATE_VM + MAP_PRIVATE of the memory file + memslot ---- */

struct floor_vm {
	int vm;
	void *map;
};

static int floor_create(int kvm, struct floor_vm *f)
{
	struct kvm_userspace_memory_region r = {0};
	int fd = open(mem, O_RDONLY | O_CLOEXEC);
	size_t len = shape.mem_mib << 20;

	f->vm = -1;
	f->map = MAP_FAILED;
	if (fd < 0)
		return -errno;
	f->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	close(fd);
	f->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (f->vm < 0 || f->map == MAP_FAILED)
		return -errno;
	r.memory_size = len < (3ULL << 30) ? len : (3ULL << 30);
	r.userspace_addr = (uint64_t)(uintptr_t)f->map;
	return ioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static void floor_free(struct floor_vm *f)
{
	if (f->map != MAP_FAILED)
		munmap(f->map, shape.mem_mib << 20);
	if (f->vm >= 0)
		close(f->vm);
}

/* --floor-child: one idle floor VM in its own process, for its PSS. */
static int floor_child(void)
{
	struct floor_vm f;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	char c;

	if (kvm < 0 || floor_create(kvm, &f))
		return 1;
	if (write(1, "R", 1) != 1)
		return 1;
	while (read(0, &c, 1) > 0) /* until the bench closes the pipe */
		;
	return 0;
}

struct fchild {
	pid_t pid;
	int in, out;
};

static int floor_spawn(struct fchild *c, const char *self)
{
	int in[2], out[2];
	char r;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -1;
	c->pid = fork();
	if (c->pid == 0) {
		char m[32];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		snprintf(m, sizeof(m), "%llu", (unsigned long long)shape.mem_mib);
		execl(self, self, "--floor-child", mem, m, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	return c->pid > 0 && read(c->out, &r, 1) == 1 ? 0 : -1;
}

static void floor_reap(struct fchild *c)
{
	close(c->in);
	close(c->out);
	if (c->pid > 1)
		waitpid(c->pid, NULL, 0);
}

/* ---- clones ---- */

static void spawn(struct sqb_fleet_proc *p, unsigned int k, int mode)
{
	char dir[160], id[32];

	snprintf(dir, sizeof(dir), "%s/c%u", tmp, k);
	snprintf(id, sizeof(id), "c%u", k);
	if (sqb_fleet_spawn_via(p, mode == ZYGOTE ? &zyg : NULL, squib, dir, id, &shape,
				mode != COLD, 1))
		die("spawn failed");
}

static void finish(struct sqb_fleet_proc *p)
{
	sqb_fleet_kill(p);
	sqb_fleet_remove_dir(p);
}

/* The verification cache folder holds an entry (not only a claim's
 * ".lock"): a first load has verified every chunk and remembered the file. */
static int remembered(const char *vc)
{
	DIR *d = opendir(vc);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.' && !strstr(e->d_name, ".lock");
	if (d)
		closedir(d);
	return n > 0;
}

/* Request -> "PONG": the guest runs and answers.  remember_in: a first
 * load's cache folder; the clone lives on until its lazy, verifying load
 * has remembered the image (as a fleet's first clone would), so that the
 * clones after it map the image. */
/* pooled clones' split of the latency (ms): the load request, then 'p' ->
 * PONG right after it, then again on the running clone (the guest's own
 * serial round trip, which the floor does not have) */
static double *split_load, *split_first, *split_again, *split_resume;
static unsigned int nsplit, nresume;

static double one_clone(int mode, unsigned int k, const char *remember_in)
{
	int pooled = mode != COLD;
	struct sqb_fleet_proc p;
	char resp[1024], text[1024];
	size_t len = 0;
	uint64_t t0, t1;
	double ms;

	if (pooled) {
		spawn(&p, k, mode == LOADED ? (zyg.pid ? ZYGOTE : POOLED) : mode);
		if (sqb_fleet_wait_ready(&p, 10000))
			die("a pre-warmed squib did not come up");
		if (mode == LOADED && sqb_fleet_http(p.sock, "PUT", "/snapshot/load", body_paused,
						     resp, sizeof(resp), 20000) != 204)
			die(resp);
	}
	t0 = sqb_fleet_now_ns();
	if (!pooled) {
		spawn(&p, k, 0);
		if (sqb_fleet_wait_ready(&p, 10000))
			die("squib did not come up");
	}
	if (mode == LOADED) {
		if (sqb_fleet_http(p.sock, "PATCH", "/vm", SQB_FLEET_RESUME_BODY, resp,
				   sizeof(resp), 20000) != 204)
			die(resp);
	} else if (sqb_fleet_http(p.sock, "PUT", "/snapshot/load", body, resp, sizeof(resp),
				  20000) != 204) {
		die(resp);
	}
	t1 = sqb_fleet_now_ns();
	if (write(p.stdin_fd, "p", 1) != 1 ||
	    sqb_fleet_wait_text(p.out_fd, text, sizeof(text), &len, "PONG", 10000))
		die("no PONG from a clone");
	ms = (double)(sqb_fleet_now_ns() - t0) / 1e6;
	if (mode == LOADED && split_resume)
		split_resume[nresume++] = (double)(t1 - t0) / 1e6;
	if (mode == POOLED && split_load && !remember_in) {
		uint64_t t2 = sqb_fleet_now_ns();

		split_load[nsplit] = (double)(t1 - t0) / 1e6;
		split_first[nsplit] = (double)(t2 - t1) / 1e6;
		len = 0;
		memset(text, 0, sizeof(text));
		if (write(p.stdin_fd, "p", 1) != 1 ||
		    sqb_fleet_wait_text(p.out_fd, text, sizeof(text), &len, "PONG", 10000))
			die("no second PONG from a clone");
		split_again[nsplit++] = (double)(sqb_fleet_now_ns() - t2) / 1e6;
	}
	for (int i = 0; remember_in && !remembered(remember_in); i++) {
		if (i == 3000)
			die("the first load never remembered the image (30 s)");
		usleep(10000);
	}
	finish(&p);
	return ms;
}

static long mem_available_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "MemAvailable:", 13))
			v = strtol(line + 13, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

struct many {
	double wall_ms, host_kib; /* host_kib: MemAvailable drop per clone (kernel included) */
	double sent_ms, loaded_ms; /* every load sent; every load answered */
	double squib_cpu_ms, bench_cpu_ms; /* CPU per clone: its squib's threads, ours */
	double squib_thr_ms[4];		   /* squib's by thread: API, vCPU, event loop, rest */
	double pss_kib, anon_kib, file_kib, shmem_kib, dirty_kib;
};

/* which mappings an idle clone pays for: copied as the kernel writes it */
static void save_smaps(pid_t pid, const char *suffix)
{
	char path[64], buf[8192], outp[300];
	int in, out;
	ssize_t r;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	in = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(outp, sizeof(outp), "%s%s", smaps_out, suffix);
	out = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	while (in >= 0 && out >= 0 && (r = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)r) != r)
			break;
	if (in < 0 || out < 0)
		fprintf(stderr, "fleet_bench: cannot save %s to %s\n", path, outp);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

/* CPU time a process's threads have run (ns, schedstat), by kind: the API
 * (main) thread, vCPU threads, the event loop, the rest (watchdog ...) */
enum { T_API, T_VCPU, T_EVLOOP, T_OTHER, T_N };

static void proc_cpu_ns(pid_t pid, uint64_t by[T_N])
{
	char path[64], f[400], comm[32];
	DIR *d;
	struct dirent *e;

	memset(by, 0, T_N * sizeof(*by));
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		FILE *fp;
		unsigned long long ns;
		int kind = T_OTHER;

		if (e->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s/comm", path, e->d_name);
		comm[0] = 0;
		if ((fp = fopen(f, "r"))) {
			if (!fgets(comm, sizeof(comm), fp))
				comm[0] = 0;
			fclose(fp);
		}
		if (!strncmp(comm, "squib-vcpu", 10))
			kind = T_VCPU;
		else if (!strncmp(comm, "squib-evloop", 12))
			kind = T_EVLOOP;
		else if (!strcmp(comm, "squib\n"))
			kind = T_API;
		snprintf(f, sizeof(f), "%s/%s/schedstat", path, e->d_name);
		fp = fopen(f, "r");
		if (fp && fscanf(fp, "%llu", &ns) == 1)
			by[kind] += ns;
		if (fp)
			fclose(fp);
	}
	if (d)
		closedir(d);
}

static uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One clone's progress in many_clones: the load's answer, then PONG. */
struct pend {
	int fd; /* the load's connection, then -1 */
	size_t len;
	char text[64];
};

static void many_clones(unsigned int n, int mode, struct many *out)
{
	int pooled = mode != COLD;
	struct sqb_fleet_proc *p = calloc(n, sizeof(*p));
	struct pend *q = calloc(n, sizeof(*q));
	uint64_t(*cpu0)[T_N] = calloc(n, sizeof(*cpu0));
	struct epoll_event *ev = calloc(n, sizeof(*ev));
	uint64_t t0, me0, squib_ns[T_N] = {0};
	unsigned int loaded = 0, answered = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (!p || !q || !cpu0 || !ev || ep < 0)
		die("out of memory");
	memset(out, 0, sizeof(*out));
	long avail0 = mem_available_kib();
	if (pooled) { /* the pool: ready before the request */
		for (unsigned int i = 0; i < n; i++)
			spawn(&p[i], i, mode == LOADED ? (zyg.pid ? ZYGOTE : POOLED) : mode);
		for (unsigned int i = 0; i < n; i++)
			if (sqb_fleet_wait_ready(&p[i], 60000))
				die("a pre-warmed squib did not come up");
		for (unsigned int i = 0; i < n && mode == LOADED; i++) { /* loaded ahead */
			char resp[1024];

			if (sqb_fleet_http(p[i].sock, "PUT", "/snapshot/load", body_paused, resp,
					   sizeof(resp), 20000) != 204)
				die(resp);
		}
		for (unsigned int i = 0; i < n; i++)
			proc_cpu_ns(p[i].pid, cpu0[i]);
	}
	me0 = self_cpu_ns();
	t0 = sqb_fleet_now_ns();
	if (!pooled) {
		for (unsigned int i = 0; i < n; i++)
			spawn(&p[i], i, COLD);
		for (unsigned int i = 0; i < n; i++)
			if (sqb_fleet_wait_ready(&p[i], 60000))
				die("squib did not come up");
	}
	/* every load in flight at once; each clone is then handled as its
	 * answer comes (its 'p' goes out at once, not after the clones sent
	 * before it), and its PONG is read as it comes */
	for (unsigned int i = 0; i < n; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.u64 = i};

		q[i].fd =
		    mode == LOADED
			? sqb_fleet_http_send(p[i].sock, "PATCH", "/vm", SQB_FLEET_RESUME_BODY)
			: sqb_fleet_http_send(p[i].sock, "PUT", "/snapshot/load", body);
		if (q[i].fd < 0)
			die("cannot send a load");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, q[i].fd, &e))
			die("epoll_ctl");
	}
	out->sent_ms = (double)(sqb_fleet_now_ns() - t0) / 1e6;
	while (answered < n) {
		int k = epoll_wait(ep, ev, (int)n, 60000);

		if (k <= 0)
			die("no answer from a clone in 60 s");
		for (int j = 0; j < k; j++) {
			unsigned int i = (unsigned int)ev[j].data.u64;
			char resp[1024];

			if (q[i].fd >= 0) { /* the load's answer */
				struct epoll_event e = {.events = EPOLLIN, .data.u64 = i};

				epoll_ctl(ep, EPOLL_CTL_DEL, q[i].fd, NULL);
				if (sqb_fleet_http_recv(q[i].fd, resp, sizeof(resp), 60000) != 204)
					die(resp);
				q[i].fd = -1;
				if (++loaded == n)
					out->loaded_ms = (double)(sqb_fleet_now_ns() - t0) / 1e6;
				if (write(p[i].stdin_fd, "p", 1) != 1 ||
				    epoll_ctl(ep, EPOLL_CTL_ADD, p[i].out_fd, &e))
					die("serial input");
			} else { /* serial output (non-blocking) */
				ssize_t r = read(p[i].out_fd, q[i].text + q[i].len,
						 sizeof(q[i].text) - 1 - q[i].len);

				if (r == 0)
					die("a clone closed its serial output");
				if (r > 0)
					q[i].len += (size_t)r;
				q[i].text[q[i].len] = 0;
				if (strstr(q[i].text, "PONG")) {
					epoll_ctl(ep, EPOLL_CTL_DEL, p[i].out_fd, NULL);
					answered++;
				} else if (q[i].len + 1 >= sizeof(q[i].text)) { /* keep the tail */
					memmove(q[i].text, q[i].text + q[i].len - 4, 4);
					q[i].len = 4;
				}
			}
		}
	}
	out->wall_ms = (double)(sqb_fleet_now_ns() - t0) / 1e6;
	out->bench_cpu_ms = (double)(self_cpu_ns() - me0) / 1e6 / n;
	for (unsigned int i = 0; pooled && i < n; i++) {
		uint64_t now[T_N];

		proc_cpu_ns(p[i].pid, now);
		for (int k = 0; k < T_N; k++)
			squib_ns[k] += now[k] - cpu0[i][k];
	}
	for (int k = 0; k < T_N; k++) {
		out->squib_thr_ms[k] = (double)squib_ns[k] / 1e6 / n;
		out->squib_cpu_ms += out->squib_thr_ms[k];
	}
	usleep(200000); /* idle: let the loads' transient memory go */
	out->host_kib = (double)(avail0 - mem_available_kib()) / n;
	if (pooled && smaps_out && mode != LOADED)
		save_smaps(p[0].pid, mode == ZYGOTE ? ".zygote" : "");
	if (pooled && hold_s && mode != LOADED) {
		fprintf(stderr, "fleet_bench: idle %s clone pid %d, held %u s\n",
			mode == ZYGOTE ? "zygote" : "pooled", (int)p[0].pid, hold_s);
		sleep(hold_s);
	}
	for (unsigned int i = 0; i < n; i++) {
		struct sqb_fleet_mem m;
		if (sqb_fleet_smaps(p[i].pid, &m))
			die("smaps_rollup");
		out->pss_kib += (double)m.pss / n;
		out->anon_kib += (double)m.pss_anon / n;
		out->file_kib += (double)m.pss_file / n;
		out->shmem_kib += (double)m.pss_shmem / n;
		out->dirty_kib += (double)m.private_dirty / n;
	}
	for (unsigned int i = 0; i < n; i++)
		finish(&p[i]);
	close(ep);
	free(p);
	free(q);
	free(cpu0);
	free(ev);
}

static double floor_pss(unsigned int n, const char *self)
{
	struct fchild *c = calloc(n, sizeof(*c));
	double pss = 0;

	if (!c)
		die("out of memory");
	for (unsigned int i = 0; i < n; i++)
		if (floor_spawn(&c[i], self))
			die("floor child failed");
	for (unsigned int i = 0; i < n; i++) {
		struct sqb_fleet_mem m;
		if (sqb_fleet_smaps(c[i].pid, &m))
			die("smaps_rollup");
		pss += (double)m.pss / n;
	}
	for (unsigned int i = 0; i < n; i++)
		floor_reap(&c[i]);
	free(c);
	return pss;
}

int main(int argc, char **argv)
{
	unsigned int iters = 50, counts[4] = {100, 0, 0, 0}, ncounts = 1;
	double *pool_ms, *cold_ms, *floor_ms, *zyg_ms, *loaded_ms;
	char why[600], dir[160], vc[128];
	int kvm;

	if (argc == 4 && !strcmp(argv[1], "--floor-child")) {
		snprintf(mem, sizeof(mem), "%s", argv[2]);
		shape.mem_mib = strtoull(argv[3], NULL, 10);
		return floor_child();
	}
	if (argc < 3) {
		fprintf(stderr,
			"usage: %s SQUIB GUEST [--tiny] [--iters K] [--clones N[,N...]] "
			"[--mem-mib M] [--fill-mib F] [--smaps FILE] [--zygote] [--hold S] [--no-cold]\n",
			argv[0]);
		return 2;
	}
	squib = argv[1];
	guest = argv[2];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--tiny")) {
			iters = 5;
			counts[0] = 4;
		} else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			iters = (unsigned int)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--clones") && i + 1 < argc) {
			char *s = argv[++i], *save = NULL;
			ncounts = 0;
			for (char *t = strtok_r(s, ",", &save); t && ncounts < 4;
			     t = strtok_r(NULL, ",", &save))
				counts[ncounts++] = (unsigned int)strtoul(t, NULL, 10);
		} else if (!strcmp(argv[i], "--mem-mib") && i + 1 < argc) {
			shape.mem_mib = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--smaps") && i + 1 < argc) {
			smaps_out = argv[++i];
		} else if (!strcmp(argv[i], "--hold") && i + 1 < argc) {
			hold_s = (unsigned int)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--no-cold")) {
			no_cold = 1;
		} else if (!strcmp(argv[i], "--zygote")) {
			zyg.pid = 1; /* started once the environment is set */
		} else if (!strcmp(argv[i], "--fill-mib") && i + 1 < argc) {
			fill_mib = (unsigned int)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "fleet_bench: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	if (iters < 2 || !ncounts || fill_mib + 4 > shape.mem_mib)
		die("--iters >= 2, --clones N >= 1 and --fill-mib + 4 <= --mem-mib");
	signal(SIGPIPE, SIG_IGN); /* a clone that died: its write fails, reported */
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n", strerror(errno));
		return 77;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/sqb-fleetbench-XXXXXX");
	if (!mkdtemp(tmp))
		die("mkdtemp");
	snprintf(vc, sizeof(vc), "%s/vcache", tmp);
	setenv("SQB_VERIFY_CACHE", vc, 1);
	if (zyg.pid && sqb_fleet_zygote_start(&zyg, squib))
		die("cannot start the zygote");
	snprintf(state, sizeof(state), "%s/golden.state", tmp);
	snprintf(mem, sizeof(mem), "%s/golden.mem", tmp);
	snprintf(dir, sizeof(dir), "%s/golden", tmp);
	{
		char args[64];
		snprintf(args, sizeof(args), "mib=%u", fill_mib);
		if (sqb_fleet_golden(squib, dir, guest, args, &shape, "FLEET ready", state, mem, why,
				     sizeof(why)))
			die(why);
	}
	if (sqb_fleet_load_body(body, sizeof(body), state, mem) ||
	    sqb_fleet_load_body_resume(body_paused, sizeof(body_paused), state, mem, 0))
		die("paths too long");
	printf("fleet_bench: guest %u vCPU / %llu MiB, %u MiB written before the snapshot; "
	       "%u latency samples each\n",
	       shape.vcpus, (unsigned long long)shape.mem_mib, fill_mib, iters);
	printf("  first load (verifies each chunk as installed, then remembers the image): "
	       "%.2f ms request -> PONG\n",
	       one_clone(POOLED, 9999, vc));

	pool_ms = calloc(iters, sizeof(double));
	cold_ms = calloc(iters, sizeof(double));
	floor_ms = calloc(iters, sizeof(double));
	zyg_ms = calloc(iters, sizeof(double));
	loaded_ms = calloc(iters, sizeof(double));
	split_resume = calloc(iters, sizeof(double));
	split_load = calloc(iters, sizeof(double));
	split_first = calloc(iters, sizeof(double));
	split_again = calloc(iters, sizeof(double));
	if (!pool_ms || !cold_ms || !floor_ms || !zyg_ms || !loaded_ms || !split_resume ||
	    !split_load || !split_first || !split_again)
		die("out of memory");
	for (unsigned int i = 0; i < iters; i++) {
		struct floor_vm f;
		uint64_t t0 = sqb_fleet_now_ns();

		if (floor_create(kvm, &f))
			die("floor VM");
		floor_ms[i] = (double)(sqb_fleet_now_ns() - t0) / 1e6;
		floor_free(&f);
		pool_ms[i] = one_clone(POOLED, i, NULL);
		cold_ms[i] = one_clone(COLD, i, NULL);
		if (zyg.pid)
			zyg_ms[i] = one_clone(ZYGOTE, i, NULL);
		loaded_ms[i] = one_clone(LOADED, i, NULL);
	}
	{
		double f50 = pct(floor_ms, iters, 0.5), f99 = pct(floor_ms, iters, 0.99);
		double p50 = pct(pool_ms, iters, 0.5), p99 = pct(pool_ms, iters, 0.99);
		double c50 = pct(cold_ms, iters, 0.5), c99 = pct(cold_ms, iters, 0.99);

		printf("\nclone latency, request -> guest answers (ms)      p50      p99   "
		       "p50/floor\n");
		printf("  floor: KVM_CREATE_VM + MAP_PRIVATE + memslot %8.3f %8.3f\n", f50, f99);
		printf("  squib, pre-warmed pool (--prewarm)            %8.3f %8.3f %8.1fx\n", p50,
		       p99, p50 / f50);
		printf("  squib, no pool (spawn + load)                 %8.3f %8.3f %8.1fx\n", c50,
		       c99, c50 / f50);
		if (zyg.pid) {
			double z50 = pct(zyg_ms, iters, 0.5), z99 = pct(zyg_ms, iters, 0.99);
			printf(
			    "  squib, pool forked by a zygote                %8.3f %8.3f %8.1fx\n",
			    z50, z99, z50 / f50);
		}
		{
			double l50 = pct(loaded_ms, iters, 0.5), l99 = pct(loaded_ms, iters, 0.99);
			printf("  squib, pool loaded ahead (PATCH /vm Resumed)  %8.3f %8.3f "
			       "%8.1fx%s\n",
			       l50, l99, l50 / f50,
			       zyg.pid ? "  (members forked by the zygote)" : "");
			printf("  loaded ahead, split: PATCH /vm Resumed answered %.3f (p50)\n",
			       pct(split_resume, nresume, 0.5));
		}
		printf("  anchor zeroboot                                  0.790    1.740\n");
		printf("  pooled, split: load request %.3f, then 'p' -> PONG %.3f; the same on the "
		       "running clone %.3f (the guest's serial round trip; p50s)\n",
		       pct(split_load, nsplit, 0.5), pct(split_first, nsplit, 0.5),
		       pct(split_again, nsplit, 0.5));
	}
	for (unsigned int k = 0; k < ncounts; k++) {
		unsigned int n = counts[k];
		struct many pooled, cold, zy = {0}, la;
		uint64_t t0 = sqb_fleet_now_ns();
		double floor_wall, fpss;
		struct floor_vm *fv = calloc(n, sizeof(*fv));

		if (!fv)
			die("out of memory");
		for (unsigned int i = 0; i < n; i++)
			if (floor_create(kvm, &fv[i]))
				die("floor VM (too many for this host?)");
		floor_wall = (double)(sqb_fleet_now_ns() - t0) / 1e6;
		for (unsigned int i = 0; i < n; i++)
			floor_free(&fv[i]);
		free(fv);
		fpss = floor_pss(n, argv[0]);
		many_clones(n, POOLED, &pooled);
		many_clones(n, LOADED, &la);
		if (zyg.pid)
			many_clones(n, ZYGOTE, &zy);
		if (!no_cold)
			many_clones(n, COLD, &cold);
		printf("\n%u clones from one snapshot, all answering (ms)   wall   /floor\n", n);
		printf("  floor: %u x (KVM VM + MAP_PRIVATE), one process %8.1f\n", n, floor_wall);
		printf("  squib, pre-warmed pool                       %8.1f %7.1fx\n", pooled.wall_ms,
		       pooled.wall_ms / floor_wall);
		if (!no_cold)
			printf("  squib, no pool                               %8.1f %7.1fx\n",
			       cold.wall_ms, cold.wall_ms / floor_wall);
		if (zyg.pid)
			printf("  squib, pool forked by a zygote               %8.1f %7.1fx\n",
			       zy.wall_ms, zy.wall_ms / floor_wall);
		printf("  squib, pool loaded ahead (PATCH /vm Resumed) %8.1f %7.1fx\n", la.wall_ms,
		       la.wall_ms / floor_wall);
		printf("  anchors: forkd 100 in 101 ms; zeroboot 1000 in 815 ms\n");
		printf("  where the wall goes: all loads sent / all answered 204 (ms); CPU per "
		       "clone (ms): its squib's threads, this bench\n");
		printf("    pooled %.1f / %.1f; squib %.3f (API %.3f, vCPU %.3f, event loop %.3f, "
		       "rest %.3f), bench %.3f\n",
		       pooled.sent_ms, pooled.loaded_ms, pooled.squib_cpu_ms, pooled.squib_thr_ms[0],
		       pooled.squib_thr_ms[1], pooled.squib_thr_ms[2], pooled.squib_thr_ms[3],
		       pooled.bench_cpu_ms);
		if (zyg.pid)
			printf("    zygote %.1f / %.1f; squib %.3f (API %.3f, vCPU %.3f, event loop "
			       "%.3f, rest %.3f), bench %.3f\n",
			       zy.sent_ms, zy.loaded_ms, zy.squib_cpu_ms, zy.squib_thr_ms[0],
			       zy.squib_thr_ms[1], zy.squib_thr_ms[2], zy.squib_thr_ms[3],
			       zy.bench_cpu_ms);
		if (!no_cold)
			printf("    no pool %.1f / %.1f (spawns included); bench %.3f\n",
			       cold.sent_ms, cold.loaded_ms, cold.bench_cpu_ms);
		printf("host memory per idle clone (KiB, PSS from smaps_rollup)\n");
		printf("  floor process (KVM VM + MAP_PRIVATE)          %8.0f\n", fpss);
		printf("  squib clone, pooled: PSS %.0f (anon %.0f, file %.0f, shmem %.0f; private "
		       "dirty %.0f)  %.1fx floor\n",
		       pooled.pss_kib, pooled.anon_kib, pooled.file_kib, pooled.shmem_kib,
		       pooled.dirty_kib, pooled.pss_kib / fpss);
		printf(
		    "  squib clone, pool loaded ahead: PSS %.0f (anon %.0f, file %.0f, shmem %.0f; "
		    "private dirty %.0f)  %.1fx floor\n",
		    la.pss_kib, la.anon_kib, la.file_kib, la.shmem_kib, la.dirty_kib,
		    la.pss_kib / fpss);
		if (zyg.pid)
			printf("  squib clone, pool forked by a zygote: PSS %.0f (anon %.0f, file "
			       "%.0f, shmem %.0f; private dirty %.0f)  %.1fx floor\n",
			       zy.pss_kib, zy.anon_kib, zy.file_kib, zy.shmem_kib, zy.dirty_kib,
			       zy.pss_kib / fpss);
		if (!no_cold)
			printf("  squib clone, no pool: PSS %.0f (anon %.0f, file %.0f, shmem "
			       "%.0f)\n",
			       cold.pss_kib, cold.anon_kib, cold.file_kib, cold.shmem_kib);
		printf("  MemAvailable drop per clone (kernel: KVM, page tables, stacks): pooled %.0f, "
		       "no pool %.0f (noisy on a shared host)\n",
		       pooled.host_kib, cold.host_kib);
		printf("  anchors: forkd 0.12 MiB (123 KiB) per idle child; zeroboot ~265 KB\n");
	}
	close(kvm);
	if (zyg.pid)
		sqb_fleet_zygote_stop(&zyg);
	if (!getenv("SQB_FLEETBENCH_KEEP")) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
	}
	free(pool_ms);
	free(cold_ms);
	free(floor_ms);
	free(zyg_ms);
	free(loaded_ms);
	return 0;
}
