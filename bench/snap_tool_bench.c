/* squib-snap benchmark: merge of a base plus 10 diffs, diff of two full
 * snapshots, verify of one - each timed against a floor measured in the
 * same run: plain sequential read (+ write, + fsync) of the same file bytes,
 * and a second floor over raw guest memory files of the same size (what the
 * operation costs on Firecracker-style memory files).  Prints throughput,
 * ratio = floor time / tool time, PASS (>= 0.7) or MISS for each floor.
 *   snap_tool_bench SQUIB_SNAP MKFIXTURE [--quick] [--mib N] [--dir D] [--replace]
 * The previous output of a timed run, and the floor's output, are deleted
 * outside the timing (--replace: inside, as before session 11).
 * Temporary files (GiBs) are deleted at the end, also on failure. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TARGET	   0.7
#define NDIFF_FULL 10

static char dir[200];
static const char *snap_bin, *fix_bin;
static int misses, raw_misses;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void cleanup(void)
{
	char cmd[300];

	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "bench: could not remove %s\n", dir);
	}
}

static double last_cpu;	 /* user + system seconds of the last run() */
static double floor_cpu; /* the same for the floor of the last floor_best() */

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
static int reps = 3; /* best of */

/* Run argv with stdout to /dev/null; returns seconds, exits on failure.
 * sync() first so earlier writeback does not land in this measurement. */
static double run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	double t0;
	pid_t pid;
	int st;

	sync();
	t0 = now();
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) || wait4(pid, &st, 0, &ru) < 0 ||
	    !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "bench: %s %s failed\n", argv[0], argv[1]);
		cleanup();
		exit(1);
	}
	posix_spawn_file_actions_destroy(&fa);
	last_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return now() - t0;
}

/* --replace: each run writes over the previous run's output (--force), and
 * the floor deletes its output inside its timing, as before session 11. */
static int replace_outputs;

/* Best of `reps` runs.  The previous run's output `out` (NULL: none) is
 * deleted before each run, untimed: deleting a file of 0.5-1 GiB is not
 * part of the operation, and where the file system discards freed blocks
 * (ext4 -o discard) it takes seconds (--replace: --force writes over it). */
static double best(char *const argv[], double *cpu, const char *out)
{
	double b = 1e30;

	for (int i = 0; i < reps; i++) {
		double t;

		if (out && !replace_outputs)
			unlink(out);
		t = run(argv);

		if (t < b) {
			b = t;
			*cpu = last_cpu;
		}
	}
	return b;
}

static char *path(const char *name)
{
	static char buf[8][300];
	static int k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static uint64_t fsize(const char *p)
{
	struct stat st;

	return stat(p, &st) ? 0 : (uint64_t)st.st_size;
}

/* The floor: read every input sequentially in 1 MiB blocks, write
 * write_bytes of it to a new file and fsync (what an atomic writer does). */
static double floor_io(const char *const *in, unsigned int n, uint64_t write_bytes)
{
	const size_t blk = 1u << 20;
	char *buf = malloc(blk), *out = path("floor.tmp");
	uint64_t left = write_bytes;
	double t0;
	int wfd;

	sync();
	t0 = now();
	wfd = write_bytes ? open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644) : -1;

	for (unsigned int i = 0; i < n; i++) {
		int fd = open(in[i], O_RDONLY);
		ssize_t r;

		while (fd >= 0 && (r = read(fd, buf, blk)) > 0) {
			size_t w = left < (uint64_t)r ? (size_t)left : (size_t)r;

			if (wfd >= 0 && w && write(wfd, buf, w) != (ssize_t)w)
				break;
			left -= w;
		}
		if (fd >= 0)
			close(fd);
	}
	while (wfd >= 0 && left) { /* output larger than the inputs (decompressed) */
		size_t w = left < blk ? (size_t)left : blk;

		memset(buf, 0x5a, w);
		if (write(wfd, buf, w) != (ssize_t)w)
			break;
		left -= w;
	}
	if (wfd >= 0) {
		fsync(wfd);
		close(wfd);
		if (replace_outputs)
			unlink(out);
	}
	t0 = now() - t0;
	if (wfd >= 0 && !replace_outputs) {
		unlink(out); /* untimed, as the tool's previous output (best) */
		sync();
	}
	free(buf);
	return t0;
}

/* Floor: best of reps as well. */
static double floor_best(const char *const *in, unsigned int n, uint64_t write_bytes)
{
	double b = 1e30;

	for (int i = 0; i < reps; i++) {
		double c0 = self_cpu(), t = floor_io(in, n, write_bytes);

		if (t < b) {
			b = t;
			floor_cpu = self_cpu() - c0;
		}
	}
	return b;
}

static double raw_floor; /* floor over raw guest bytes for the next report() */

static void report(const char *what, uint64_t logical, uint64_t file_bytes, double t_tool,
		   double cpu, double t_floor)
{
	double ratio = t_floor / t_tool, rr = raw_floor / t_tool;
	int pass = ratio >= TARGET;

	misses += !pass;
	raw_misses += rr < TARGET;
	printf("| %-34s | %6.2f s | %5.2f s | %6.0f MiB/s | %6.0f MiB/s | %6.2f s | %5.2f s | "
	       "%4.2f %s | %6.2f s | %4.2f %s |\n",
	       what, t_tool, cpu, (double)logical / t_tool / 1048576,
	       (double)file_bytes / t_tool / 1048576, t_floor, floor_cpu, ratio,
	       pass ? "PASS" : "MISS", raw_floor, rr, rr >= TARGET ? "PASS" : "MISS");
	fflush(stdout);
}

static void make_chain(uint64_t mib, unsigned int ndiff)
{
	char sz[32], rnd[16];

	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)mib);
	{
		char *const a[] = {(char *)fix_bin, "big", path("base.sqb"), "1", sz, NULL};
		run(a);
	}
	for (unsigned int i = 1; i <= ndiff; i++) {
		char cur[32], prev[32];

		snprintf(cur, sizeof(cur), "d%u.sqb", i);
		snprintf(prev, sizeof(prev), i == 1 ? "base.sqb" : "d%u.sqb", i - 1);
		snprintf(rnd, sizeof(rnd), "%u", i);
		{
			char *pp = strdup(path(prev));
			char *const a[] = {
			    (char *)fix_bin, "big", path(cur), "1", sz, pp, rnd, NULL};

			run(a);
			free(pp);
		}
	}
}

/* Raw guest memory of base.sqb and of the merged snapshot, for the raw floor
 * (what the same operation costs on plain memory files); the extract of
 * base.sqb is timed as well. */
static void make_raw(uint64_t mib, const char *snap, const char *raw)
{
	char *sp = strdup(path(snap)), *rp = strdup(path(raw));
	char *const a[] = {(char *)snap_bin, "extract", sp, "--memory", rp, "--force", NULL};
	const char *in[1] = {sp};
	double t, cpu = 0;

	t = best(a, &cpu, rp);
	if (!strcmp(snap, "base.sqb")) {
		const char *rin[1] = {rp};
		double f;

		raw_floor = floor_best(rin, 1, mib << 20);
		f = floor_best(in, 1, mib << 20);
		report("extract --memory (lz4 -> raw)", mib << 20, fsize(sp) + (mib << 20), t, cpu,
		       f);
	}
	free(sp);
	free(rp);
}

static void bench_merge(uint64_t mib, unsigned int ndiff, const char *codec)
{
	const char *in[NDIFF_FULL + 1];
	char *argv[NDIFF_FULL + 10], name[64], out[64];
	uint64_t total = 0;
	unsigned int k = 0;
	double t, f, cpu = 0;

	snprintf(out, sizeof(out), "merged-%s.sqb", codec);
	argv[k++] = (char *)snap_bin;
	argv[k++] = "merge";
	for (unsigned int i = 0; i <= ndiff; i++) {
		snprintf(name, sizeof(name), i ? "d%u.sqb" : "base.sqb", i);
		in[i] = strdup(path(name));
		argv[k++] = (char *)in[i];
		total += fsize(in[i]);
	}
	argv[k++] = "-o";
	argv[k++] = strdup(path(out));
	argv[k++] = "--codec";
	argv[k++] = (char *)codec;
	argv[k++] = "--force";
	argv[k] = NULL;
	t = best(argv, &cpu, argv[k - 4]);
	{
		const char *rin[1] = {path("a.raw")};

		raw_floor = floor_best(rin, 1, mib << 20);
	}
	f = floor_best(in, ndiff + 1, fsize(path(out)));
	snprintf(name, sizeof(name), "merge base+%u diffs (--codec %s)", ndiff, codec);
	report(name, mib << 20, total + fsize(path(out)), t, cpu, f);
	for (unsigned int i = 0; i <= ndiff; i++)
		free((char *)in[i]);
	free(argv[k - 4]);
}

static void bench_diff_verify(uint64_t mib)
{
	const char *ab[2];
	double t, f, cpu = 0;
	uint64_t fb;

	const char *raws[2];

	make_raw(mib, "merged-lz4.sqb", "b.raw");
	raws[0] = strdup(path("a.raw"));
	raws[1] = strdup(path("b.raw"));
	ab[0] = strdup(path("base.sqb"));
	ab[1] = strdup(path("merged-lz4.sqb"));
	fb = fsize(ab[0]) + fsize(ab[1]);
	{
		char *const a[] = {(char *)snap_bin, "diff",   (char *)ab[0],
				   (char *)ab[1],    "--json", NULL};
		t = best(a, &cpu, NULL);
	}
	raw_floor = floor_best(raws, 2, 0);
	f = floor_best(ab, 2, 0);
	report("diff of two full snapshots", 2 * (mib << 20), fb, t, cpu, f);
	{
		char *const a[] = {(char *)snap_bin, "diff",	(char *)ab[0], (char *)ab[1], "-o",
				   path("d.sqb"),    "--codec", "lz4",	       "--force",     NULL};
		t = best(a, &cpu, path("d.sqb"));
	}
	raw_floor = floor_best(raws, 2, fsize(path("d.sqb")));
	f = floor_best(ab, 2, fsize(path("d.sqb")));
	report("diff --output (lz4)", 2 * (mib << 20), fb + fsize(path("d.sqb")), t, cpu, f);
	{
		char *const a[] = {(char *)snap_bin, "verify", (char *)ab[1], NULL};
		t = best(a, &cpu, NULL);
	}
	raw_floor = floor_best(&raws[1], 1, 0);
	f = floor_best(&ab[1], 1, 0);
	report("verify of one full snapshot (lz4)", mib << 20, fsize(ab[1]), t, cpu, f);
	{
		const char *nn[1] = {path("merged-none.sqb")};
		char *const a[] = {(char *)snap_bin, "verify", (char *)nn[0], NULL};

		t = best(a, &cpu, NULL);
		raw_floor = floor_best(&raws[1], 1, 0);
		f = floor_best(nn, 1, 0);
		report("verify of one full snapshot (none)", mib << 20, fsize(nn[0]), t, cpu, f);
	}
	free((char *)ab[0]);
	free((char *)ab[1]);
	free((char *)raws[0]);
	free((char *)raws[1]);
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024;
	unsigned int ndiff = NDIFF_FULL;
	const char *base = "/tmp";

	if (argc < 3) {
		fprintf(stderr, "usage: snap_tool_bench SQUIB_SNAP MKFIXTURE [--quick] [--mib N] "
				"[--dir D] [--replace]\n");
		return 2;
	}
	snap_bin = argv[1];
	fix_bin = argv[2];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			mib = 64;
			ndiff = 3;
			reps = 1;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			mib = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			base = argv[++i];
		} else if (!strcmp(argv[i], "--replace")) {
			replace_outputs = 1;
		}
	}
	snprintf(dir, sizeof(dir), "%s/sqb-snapbench-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("squib-snap bench: %llu MiB guest memory, base + %u diffs (each ~1/64 of pages), "
	       "floor = sequential read+write+fsync of the same file bytes, target ratio >= %.1f\n",
	       (unsigned long long)mib, ndiff, TARGET);
	printf("previous outputs are deleted %s\n",
	       replace_outputs ? "inside the timing (--replace: --force writes over them)"
			       : "outside the timing");
	printf(
	    "| operation | wall (best of %d) | cpu | guest | file | floor wall | floor cpu | ratio "
	    "| raw floor | raw ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
	    reps);
	make_chain(mib, ndiff);
	make_raw(mib, "base.sqb", "a.raw");
	bench_merge(mib, ndiff, "none");
	bench_merge(mib, ndiff, "lz4");
	bench_merge(mib, ndiff, "zstd");
	bench_diff_verify(mib);
	cleanup();
	printf("%s: %d miss%s against the file-bytes floor; %d against the raw-memory floor\n",
	       misses ? "MISS" : "PASS", misses, misses == 1 ? "" : "es", raw_misses);
	return 0;
}
