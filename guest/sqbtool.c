/* sqbtool: the guest kit's test workloads, built static for the default
 * guest's initramfs (see docs/testing.md, "Guest kit").  Every result is one
 * serial line starting with "SQUIB-" so tests can grep the console.
 *
 *   sqbtool memfill MIB SEED FILE   write a position-dependent pattern to FILE
 *   sqbtool memcheck MIB SEED FILE  verify it: SQUIB-MEMCHECK ok|bad ...
 *   sqbtool counter [MS]            SQUIB-COUNTER n, every MS ms (default 500)
 *   sqbtool keeper MIB SEED         keep a pattern in anonymous memory; verify
 *                                   it on SIGUSR1 and every 5 s
 *   sqbtool uptime                  SQUIB-UPTIME seconds (CLOCK_BOOTTIME)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024)

/* splitmix64 of (seed, 8-byte word index): any page moved, lost or zeroed
 * by a snapshot/restore changes the words it holds. */
static uint64_t pattern(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + idx;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint64_t *p, size_t words, uint64_t seed, uint64_t base)
{
	for (size_t i = 0; i < words; i++)
		p[i] = pattern(seed, base + i);
}

/* Index of the first wrong word, or (size_t)-1. */
static size_t check(const uint64_t *p, size_t words, uint64_t seed, uint64_t base)
{
	for (size_t i = 0; i < words; i++)
		if (p[i] != pattern(seed, base + i))
			return i;
	return (size_t)-1;
}

static int memfile(int write_it, unsigned long mib, uint64_t seed, const char *path)
{
	static uint64_t buf[MiB / 8];
	int fd = open(path, write_it ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0600);

	if (fd < 0) {
		printf("SQUIB-MEMCHECK bad open %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (unsigned long m = 0; m < mib; m++) {
		uint64_t base = (uint64_t)m * (MiB / 8);
		size_t bad;

		if (write_it) {
			fill(buf, MiB / 8, seed, base);
			if (write(fd, buf, MiB) != (ssize_t)MiB)
				goto io;
			continue;
		}
		if (read(fd, buf, MiB) != (ssize_t)MiB)
			goto io;
		bad = check(buf, MiB / 8, seed, base);
		if (bad != (size_t)-1) {
			printf("SQUIB-MEMCHECK bad offset=%llu\n",
			       (unsigned long long)(base + bad) * 8);
			close(fd);
			return 1;
		}
	}
	close(fd);
	printf(write_it ? "SQUIB-MEMFILL done mib=%lu\n" : "SQUIB-MEMCHECK ok mib=%lu\n", mib);
	return 0;
io:
	printf("SQUIB-MEMCHECK bad io: %s\n", strerror(errno));
	close(fd);
	return 1;
}

static double uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t verify_now;

static void on_usr1(int sig)
{
	(void)sig;
	verify_now = 1;
}

static int keeper(unsigned long mib, uint64_t seed)
{
	size_t words = mib * MiB / 8;
	uint64_t *p =
	    mmap(NULL, mib * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long gen = 0;

	if (p == MAP_FAILED) {
		printf("SQUIB-KEEPER bad mmap: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	fill(p, words, seed, 0);
	printf("SQUIB-KEEPER ready pid=%d mib=%lu\n", (int)getpid(), mib);
	fflush(stdout);
	for (;;) {
		size_t bad;

		for (int i = 0; i < 50 && !verify_now; i++)
			usleep(100000);
		verify_now = 0;
		bad = check(p, words, seed, 0);
		if (bad != (size_t)-1) {
			printf("SQUIB-KEEPER bad offset=%llu\n", (unsigned long long)bad * 8);
			fflush(stdout);
			return 1;
		}
		printf("SQUIB-KEEPER ok gen=%lu\n", ++gen);
		fflush(stdout);
	}
}

static int counter(long ms)
{
	for (unsigned long n = 0;; n++) {
		printf("SQUIB-COUNTER %lu\n", n);
		fflush(stdout);
		usleep((useconds_t)ms * 1000);
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "memfill"))
		return memfile(1, strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0), argv[4]);
	if (argc == 5 && !strcmp(argv[1], "memcheck"))
		return memfile(0, strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0), argv[4]);
	if (argc >= 2 && !strcmp(argv[1], "counter"))
		return counter(argc > 2 ? strtol(argv[2], NULL, 0) : 500);
	if (argc == 4 && !strcmp(argv[1], "keeper"))
		return keeper(strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if (argc == 2 && !strcmp(argv[1], "uptime")) {
		printf("SQUIB-UPTIME %.3f\n", uptime());
		return 0;
	}
	fprintf(stderr, "usage: sqbtool memfill|memcheck MIB SEED FILE | counter [MS] | "
			"keeper MIB SEED | uptime\n");
	return 2;
}
