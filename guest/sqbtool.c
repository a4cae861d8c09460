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
 *   sqbtool writer DIR SLOTS SEED   write checksummed files into DIR forever, each
 *                                   fsynced before it counts; SIGUSR1: verify
 *                                   every completed write on disk; SIGUSR2: stop
 *   sqbtool wcheck DIR SEED         verify DIR against its journal (new process)
 *   sqbtool holdread FILE MIB SEED  pre-touched buffer; SIGUSR1: first an O_DIRECT
 *                                   read of FILE into it, later checks of it
 *   sqbtool randread DEV COUNT [BS] O_DIRECT reads at random aligned offsets: IOPS
 * Network and vsock (docs/network.md, tests/runtime/testhost_netvsock.sh):
 *   sqbtool tcpserve PORT           host side: per connection, "PUT\n" + bytes:
 *                                   answer "SUM <fnv64> <bytes>"; "GET MIB SEED\n":
 *                                   send MIB of pattern and close
 *   sqbtool tcp HOST PORT MIB COUNT PUT then GET of MIB each, COUNT rounds (0:
 *                                   forever): SQUIB-TCP put|get n= ok|bad ms=
 *   sqbtool vsock-agent PORT        guest side: AF_VSOCK listener; each line is
 *                                   answered "SUM <fnv64> <length>"
 *   sqbtool vsock-client UDS PORT COUNT  host side: Firecracker's "CONNECT PORT"
 *                                   on a vsock uds_path, COUNT lines (0: until
 *                                   the connection ends), each answer checked
 * MMDS (docs/mmds.md, tests/runtime/testhost_mmds.sh):
 *   sqbtool http [-s FILE] IP METHOD PATH [HEADER]...  one HTTP/1.1 request
 *                                   to IP:80 (HEADER "Name: value", a value
 *                                   "@FILE" is FILE's content); prints
 *                                   SQUIB-HTTP status=N len=L fnv=X, then the
 *                                   body between SQUIB-BODY< and >SQUIB-BODY;
 *                                   -s: the body also into FILE (a token)
 * Benchmarks (bench/net_vs_qemu.sh): tcpserve and vsock-agent also serve a
 * connection whose first line is "SINK" (read to EOF, answer "GOT <bytes>"),
 * "SRC MIB" (send MIB MiB, close) or "ECHO" (echo every byte):
 *   sqbtool netbench HOST PORT MIB PINGS    guest: TCP guest->host and
 *                                   host->guest MB/s, 1-byte ping-pong p50/p99
 *   sqbtool vsock-bench TARGET PORT MIB PINGS  host: the same over vsock;
 *                                   TARGET a uds_path (CONNECT) or cid:N (AF_VSOCK)
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
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

static volatile sig_atomic_t verify_now, stop_now;

static void on_usr1(int sig)
{
	(void)sig;
	verify_now = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	stop_now = 1;
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

/* ---- disk workloads (root on virtio-blk, docs/testing.md) ---- */

/* FNV-1a 64: the checksum each completed write records in the journal. */
static uint64_t fnv64(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

#define WR_MAX (64 * 1024)

/* Write number N: its slot, size (4..64 KiB) and bytes follow from (seed, n). */
static size_t wr_make(unsigned char *buf, uint64_t seed, uint64_t n)
{
	size_t len = 4096 * (1 + pattern(seed, n) % 16);

	fill((uint64_t *)buf, len / 8, seed ^ n, n << 20);
	return len;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Compare file DIR/f<slot> with write number n; 0 if equal.  With drop
 * caches first the bytes come from the disk, not from the page cache. */
static int wr_check_slot(const char *dir, unsigned long slot, uint64_t seed, uint64_t n,
			 uint64_t sum, unsigned char *want, unsigned char *got)
{
	char path[512];
	size_t len = wr_make(want, seed, n);
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/f%lu", dir, slot);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("SQUIB-WRITER bad slot=%lu write=%llu: open: %s\n", slot,
		       (unsigned long long)n, strerror(errno));
		return 1;
	}
	r = read_full(fd, got, WR_MAX + 1);
	close(fd);
	if (r != (ssize_t)len || memcmp(want, got, len) || (sum && fnv64(got, len) != sum)) {
		printf("SQUIB-WRITER bad slot=%lu write=%llu: %zd bytes on disk, want %zu%s\n",
		       slot, (unsigned long long)n, r, len,
		       r == (ssize_t)len ? " (content differs)" : "");
		return 1;
	}
	return 0;
}

static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd >= 0) {
		if (write(fd, "3\n", 2) != 2)
			printf("SQUIB-WRITER note: drop_caches: %s\n", strerror(errno));
		close(fd);
	}
}

/* Writes files DIR/f<n % slots> of 4..64 KiB for n = 1, 2, ...: each is
 * written, fsynced and closed before it counts as complete; then its
 * checksum goes to DIR/journal (fsynced too).  The in-memory table is what
 * this process saw complete: a verify (SIGUSR1) reads every slot back from
 * disk and compares it with the last completed write to that slot. */
static int writer(const char *dir, unsigned long slots, uint64_t seed)
{
	static _Alignas(4096) unsigned char buf[WR_MAX], chk[WR_MAX + 1];
	uint64_t *last, *sums, n = 0, checks = 0;
	char path[512];
	int jfd, rc = 1;

	if (!slots || slots > 100000) {
		printf("SQUIB-WRITER bad slots=%lu (1..100000)\n", slots);
		return 2;
	}
	last = calloc(slots, sizeof(*last));
	sums = calloc(slots, sizeof(*sums));
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/journal", dir);
	jfd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (!last || !sums || jfd < 0) {
		printf("SQUIB-WRITER bad setup %s: %s\n", path, strerror(errno));
		goto out;
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	printf("SQUIB-WRITER ready pid=%d slots=%lu\n", (int)getpid(), slots);
	while (!stop_now) {
		uint64_t m = n + 1, sum;
		unsigned long slot = (unsigned long)(m % slots);
		size_t len = wr_make(buf, seed, m);
		char line[96];
		int fd, k;

		snprintf(path, sizeof(path), "%s/f%lu", dir, slot);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write_all(fd, buf, len) || fsync(fd) || close(fd)) {
			printf("SQUIB-WRITER bad write=%llu %s: %s\n", (unsigned long long)m, path,
			       strerror(errno));
			goto out;
		}
		sum = fnv64(buf, len);
		last[slot] = m;
		sums[slot] = sum;
		n = m; /* complete: written and fsynced */
		k = snprintf(line, sizeof(line), "%llu %lu %zu %016llx\n", (unsigned long long)m,
			     slot, len, (unsigned long long)sum);
		if (write_all(jfd, line, (size_t)k) || fsync(jfd)) {
			printf("SQUIB-WRITER bad journal: %s\n", strerror(errno));
			goto out;
		}
		if (n % 25 == 0)
			printf("SQUIB-WRITER n=%llu\n", (unsigned long long)n);
		if (!verify_now)
			continue;
		verify_now = 0;
		drop_caches();
		for (unsigned long s = 0; s < slots; s++)
			if (last[s] && wr_check_slot(dir, s, seed, last[s], sums[s], buf, chk))
				goto out;
		printf("SQUIB-WRITER verify ok n=%llu check=%llu\n", (unsigned long long)n,
		       (unsigned long long)++checks);
	}
	sync();
	printf("SQUIB-WRITER stopped n=%llu\n", (unsigned long long)n);
	rc = 0;
out:
	if (jfd >= 0)
		close(jfd);
	free(last);
	free(sums);
	return rc;
}

/* A new process (after a reboot or a restore) checks DIR against the journal:
 * the last journal record of each slot must match the slot's file. */
static int wcheck(const char *dir, uint64_t seed)
{
	static _Alignas(4096) unsigned char want[WR_MAX], got[WR_MAX + 1];
	unsigned long long m, slots = 0, max = 0;
	char path[512], line[128];
	unsigned long slot;
	size_t len;
	unsigned long long sum;
	uint64_t *last = NULL, *sums = NULL;
	FILE *j;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/journal", dir);
	j = fopen(path, "r");
	if (!j) {
		printf("SQUIB-WCHECK bad %s: %s\n", path, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), j)) {
		if (sscanf(line, "%llu %lu %zu %llx", &m, &slot, &len, &sum) != 4 ||
		    slot >= 100000) {
			printf("SQUIB-WCHECK bad journal line: %s", line);
			rc = 1;
			break;
		}
		if (slot >= slots) {
			unsigned long long ns = slot + 1;
			uint64_t *a = realloc(last, ns * sizeof(*a)), *b;

			if (a)
				last = a;
			b = a ? realloc(sums, ns * sizeof(*b)) : NULL;
			if (!a || !b) {
				printf("SQUIB-WCHECK bad: out of memory\n");
				rc = 1;
				break;
			}
			sums = b;
			memset(last + slots, 0, (ns - slots) * sizeof(*last));
			slots = ns;
		}
		last[slot] = m;
		sums[slot] = sum;
		max = m > max ? m : max;
	}
	fclose(j);
	drop_caches();
	for (unsigned long s = 0; !rc && s < slots; s++)
		if (last[s] && wr_check_slot(dir, s, seed, last[s], sums[s], want, got))
			rc = 1;
	if (!rc)
		printf("SQUIB-WCHECK ok writes=%llu\n", max);
	free(last);
	free(sums);
	return rc;
}

/* A buffer every page of which this process wrote before the base snapshot;
 * the first SIGUSR1 fills it with an O_DIRECT read, so from then on its bytes
 * were written only by the virtio-blk device (the VMM), never by a guest
 * CPU: a Diff that misses VMM writes restores the 0xa5 filler instead. */
static int holdread(const char *file, unsigned long mib, uint64_t seed)
{
	size_t words = mib * MiB / 8, bad;
	uint64_t *p;
	unsigned long gen = 0;
	int loaded = 0;

	if (!mib || mib > 4096) {
		printf("SQUIB-HOLD bad mib=%lu\n", mib);
		return 2;
	}
	p = mmap(NULL, mib * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("SQUIB-HOLD bad mmap: %s\n", strerror(errno));
		return 1;
	}
	memset(p, 0xa5, mib * MiB);
	mlock(p, mib * MiB);
	signal(SIGUSR1, on_usr1);
	printf("SQUIB-HOLD ready pid=%d mib=%lu\n", (int)getpid(), mib);
	for (;;) {
		while (!verify_now)
			pause();
		verify_now = 0;
		if (!loaded) {
			int fd = open(file, O_RDONLY | O_DIRECT);
			ssize_t r = fd < 0 ? -1 : read_full(fd, p, mib * MiB);

			if (r != (ssize_t)(mib * MiB)) {
				printf("SQUIB-HOLD bad read %s: %zd bytes: %s\n", file, r,
				       strerror(errno));
				return 1;
			}
			close(fd);
			loaded = 1;
		}
		bad = check(p, words, seed, 0);
		if (bad != (size_t)-1) {
			printf("SQUIB-HOLD bad offset=%llu%s\n", (unsigned long long)bad * 8,
			       ((unsigned char *)p)[bad * 8] == 0xa5 ? " (filler: a lost VMM write)"
								     : "");
			return 1;
		}
		printf("SQUIB-HOLD ok gen=%lu mib=%lu\n", ++gen, mib);
	}
}

/* COUNT O_DIRECT reads of BS bytes at random BS-aligned offsets of DEV. */
static int randread(const char *dev, unsigned long count, unsigned long bs)
{
	int fd = open(dev, O_RDONLY | O_DIRECT);
	off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
	uint64_t blocks = size > 0 && bs ? (uint64_t)size / bs : 0, x = 0x2545f4914f6cdd1dULL;
	struct timespec t0, t1;
	void *buf = NULL;
	double s;

	if (fd < 0 || !blocks || bs % 512 || posix_memalign(&buf, 4096, bs)) {
		printf("SQUIB-RANDREAD bad %s (bs %lu): %s\n", dev, bs, strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < count; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (pread(fd, buf, bs, (off_t)((x % blocks) * bs)) != (ssize_t)bs) {
			printf("SQUIB-RANDREAD bad read %lu: %s\n", i, strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("SQUIB-RANDREAD reads=%lu bs=%lu seconds=%.3f iops=%.0f\n", count, bs, s,
	       s > 0 ? count / s : 0.0);
	free(buf);
	close(fd);
	return 0;
}

/* ---- network and vsock workloads (docs/network.md) ---- */

#define NET_CHUNK     (64 * 1024)
#define NET_TIMEOUT_S 20

/* FNV-1a over 64-bit little-endian words, not bytes: a byte-wise FNV of
 * 16 MiB costs a nested guest more time than the transfer.  n is a
 * multiple of 8 for whole transfers; a tail is folded in byte by byte. */
static uint64_t fnv64_more(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
	}
	for (; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* No read or write waits longer than NET_TIMEOUT_S: a connection that a
 * snapshot cut ends in an error, never in a hang. */
static void net_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = NET_TIMEOUT_S};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* One line (without '\n') of at most n-1 bytes, read byte by byte so
 * nothing after it is consumed; -1 on error or EOF before '\n'. */
static int read_line(int fd, char *buf, size_t n)
{
	size_t i = 0;

	while (i + 1 < n) {
		ssize_t r = read(fd, buf + i, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[i] == '\n') {
			buf[i] = 0;
			return (int)i;
		}
		i++;
	}
	return -1;
}

static int tcp_listen(unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- benchmark protocol (bench/net_vs_qemu.sh) ----
 * Plain bytes, no pattern or checksum: what is timed is the path through
 * the VMM, not the guest's or the host's arithmetic. */
static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on vsock: fine */
}

/* Serve a benchmark connection whose first line is line; 0 if it is none. */
static int bench_serve(int c, const char *line)
{
	static unsigned char buf[NET_CHUNK];
	unsigned long mib;
	uint64_t total = 0;
	ssize_t r;
	char out[64];
	int n;

	if (!strcmp(line, "SINK")) {
		while ((r = read(c, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
			total += r > 0 ? (uint64_t)r : 0;
		n = snprintf(out, sizeof(out), "GOT %llu\n", (unsigned long long)total);
		write_all(c, out, (size_t)n);
		return 1;
	}
	if (sscanf(line, "SRC %lu", &mib) == 1 && mib <= 4096) {
		for (uint64_t off = 0; off < mib * MiB; off += NET_CHUNK)
			if (write_all(c, buf, NET_CHUNK))
				break;
		return 1;
	}
	if (!strcmp(line, "ECHO")) {
		nodelay(c);
		while ((r = read(c, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
			if (r > 0 && write_all(c, buf, (size_t)r))
				break;
		return 1;
	}
	return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* A connected stream to the bench server, or -1 with errno. */
typedef int (*bench_dial)(const char *target, unsigned port);

/* SINK, SRC and ECHO against one server: MB/s (10^6 bytes) each way, from
 * the client's view (out: client -> server), ping-pong p50/p99 in us. */
static const char *bench_phase = "";

static int bench_client(bench_dial dial, const char *target, unsigned port, unsigned long mib,
			unsigned long pings, double r[4])
{
	static unsigned char buf[NET_CHUNK];
	char line[64];
	double t0, *rtt;
	uint64_t total = 0;
	ssize_t n;
	int fd;

	/* client -> server */
	bench_phase = "SINK";
	errno = 0;
	if ((fd = dial(target, port)) < 0 || write_all(fd, "SINK\n", 5))
		return -1;
	t0 = mono();
	for (uint64_t off = 0; off < mib * MiB; off += NET_CHUNK)
		if (write_all(fd, buf, NET_CHUNK))
			return close(fd), -1;
	shutdown(fd, SHUT_WR);
	if (read_line(fd, line, sizeof(line)) < 0 || strtoull(line + 4, NULL, 10) != mib * MiB)
		return close(fd), -1;
	r[0] = (double)(mib * MiB) / 1e6 / (mono() - t0);
	close(fd);
	/* server -> client */
	bench_phase = "SRC";
	errno = 0;
	n = snprintf(line, sizeof(line), "SRC %lu\n", mib);
	if ((fd = dial(target, port)) < 0 || write_all(fd, line, (size_t)n))
		return -1;
	t0 = mono();
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		total += n > 0 ? (uint64_t)n : 0;
	r[1] = (double)total / 1e6 / (mono() - t0);
	close(fd);
	if (total != mib * MiB)
		return -1;
	/* request/response: 1 byte each way, after 10 unmeasured rounds */
	if (!pings || !(rtt = calloc(pings, sizeof(*rtt))))
		return -1;
	if ((fd = dial(target, port)) < 0 || write_all(fd, "ECHO\n", 5))
		return free(rtt), -1;
	nodelay(fd);
	bench_phase = "ECHO";
	for (unsigned long i = 0; i < pings + 10; i++) {
		char b = 'p';

		t0 = mono();
		errno = 0;
		if (write_all(fd, &b, 1) || read_full(fd, &b, 1) != 1) {
			fprintf(stderr, "ping %lu: %s\n", i, errno ? strerror(errno) : "EOF");
			return close(fd), free(rtt), -1;
		}
		if (i >= 10)
			rtt[i - 10] = (mono() - t0) * 1e6;
	}
	close(fd);
	qsort(rtt, pings, sizeof(*rtt), cmp_dbl);
	r[2] = rtt[pings / 2];
	r[3] = rtt[pings * 99 / 100];
	free(rtt);
	return 0;
}

static int tcp_dial(const char *host, unsigned port);
static int vsock_dial(const char *target, unsigned port);

static int netbench(const char *host, unsigned port, unsigned long mib, unsigned long pings)
{
	double r[4];

	if (bench_client(tcp_dial, host, port, mib, pings, r)) {
		printf("SQUIB-NETBENCH error in %s: %s\n", bench_phase,
		       errno ? strerror(errno) : "EOF or short transfer");
		return 1;
	}
	printf("SQUIB-NETBENCH g2h_mbs=%.1f h2g_mbs=%.1f rr_p50_us=%.0f rr_p99_us=%.0f mib=%lu "
	       "pings=%lu\n",
	       r[0], r[1], r[2], r[3], mib, pings);
	return 0;
}

static int vsock_bench(const char *target, unsigned port, unsigned long mib, unsigned long pings)
{
	double r[4];

	if (bench_client(vsock_dial, target, port, mib, pings, r)) {
		printf("SQUIB-VSOCKBENCH error in %s: %s\n", bench_phase,
		       errno ? strerror(errno) : "EOF or short transfer");
		return 1;
	}
	printf("SQUIB-VSOCKBENCH h2g_mbs=%.1f g2h_mbs=%.1f rr_p50_us=%.0f rr_p99_us=%.0f mib=%lu "
	       "pings=%lu\n",
	       r[0], r[1], r[2], r[3], mib, pings);
	return 0;
}

static void tcpserve_one(int c)
{
	static unsigned char buf[NET_CHUNK];
	char line[128];
	unsigned long mib;
	unsigned long long seed;
	uint64_t h = 0xcbf29ce484222325ULL, total = 0;
	ssize_t r;

	net_timeouts(c);
	if (read_line(c, line, sizeof(line)) < 0)
		return;
	if (bench_serve(c, line))
		return;
	if (sscanf(line, "GET %lu %llu", &mib, &seed) == 2 && mib <= 4096) {
		for (uint64_t off = 0; off < mib * MiB; off += NET_CHUNK) {
			fill((uint64_t *)buf, NET_CHUNK / 8, seed, off / 8);
			if (write_all(c, buf, NET_CHUNK))
				return;
		}
		return;
	}
	if (strcmp(line, "PUT"))
		return;
	/* whole chunks: fnv64_more is word-wise */
	while ((r = read_full(c, buf, sizeof(buf))) > 0) {
		h = fnv64_more(h, buf, (size_t)r);
		total += (uint64_t)r;
	}
	if (r == 0) {
		int n = snprintf(line, sizeof(line), "SUM %016llx %llu\n", (unsigned long long)h,
				 (unsigned long long)total);
		write_all(c, line, (size_t)n);
	}
}

static int tcpserve(unsigned port)
{
	int l = tcp_listen(port);

	if (l < 0) {
		printf("SQUIB-TCPSERVE error port=%u: %s\n", port, strerror(errno));
		return 1;
	}
	signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
	printf("SQUIB-TCPSERVE ready port=%u pid=%d\n", port, (int)getpid());
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			continue;
		if (fork() == 0) {
			close(l);
			tcpserve_one(c);
			_exit(0);
		}
		close(c);
	}
}

static int tcp_connect(const char *host, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd;

	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	net_timeouts(fd); /* SO_SNDTIMEO bounds connect() too */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int tcp_dial(const char *host, unsigned port)
{
	return tcp_connect(host, port);
}

/* "cid:N": AF_VSOCK (a vhost-vsock host); else a Firecracker-style
 * uds_path: "CONNECT PORT\n", answered "OK ...". */
static int vsock_dial(const char *target, unsigned port)
{
	char line[64];
	int fd, n;

	if (!strncmp(target, "cid:", 4)) {
		struct sockaddr_vm a = {.svm_family = AF_VSOCK,
					.svm_cid = (unsigned)strtoul(target + 4, NULL, 0),
					.svm_port = port};

		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		net_timeouts(fd);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return close(fd), -1;
		return fd;
	} else {
		struct sockaddr_un a = {.sun_family = AF_UNIX};

		if (strlen(target) >= sizeof(a.sun_path))
			return errno = ENAMETOOLONG, -1;
		strcpy(a.sun_path, target);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		net_timeouts(fd);
		n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    write_all(fd, line, (size_t)n) || read_line(fd, line, sizeof(line)) < 0 ||
		    strncmp(line, "OK ", 3))
			return close(fd), -1;
		return fd;
	}
}

/* One PUT of MIB of pattern SEED: 0 when the server's SUM matches ours. */
static int tcp_put(const char *host, unsigned port, unsigned long mib, uint64_t seed, char *why,
		   size_t whyn)
{
	static unsigned char buf[NET_CHUNK];
	uint64_t h = 0xcbf29ce484222325ULL;
	char line[128], want[128];
	int rc = -1, fd = tcp_connect(host, port);

	if (fd < 0) {
		snprintf(why, whyn, "connect: %s", strerror(errno));
		return -1;
	}
	if (write_all(fd, "PUT\n", 4)) {
		snprintf(why, whyn, "write: %s", strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < mib * MiB; off += NET_CHUNK) {
		fill((uint64_t *)buf, NET_CHUNK / 8, seed, off / 8);
		h = fnv64_more(h, buf, NET_CHUNK);
		if (write_all(fd, buf, NET_CHUNK)) {
			snprintf(why, whyn, "write at %llu: %s", (unsigned long long)off,
				 strerror(errno));
			goto out;
		}
	}
	shutdown(fd, SHUT_WR);
	if (read_line(fd, line, sizeof(line)) < 0) {
		snprintf(why, whyn, "no SUM: %s", errno ? strerror(errno) : "EOF");
		goto out;
	}
	snprintf(want, sizeof(want), "SUM %016llx %llu", (unsigned long long)h,
		 (unsigned long long)(mib * MiB));
	if (strcmp(line, want)) {
		snprintf(why, whyn, "server says '%.60s', we sent '%.60s'", line, want);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* One GET of MIB of pattern SEED: 0 when every byte is the pattern's. */
static int tcp_get(const char *host, unsigned port, unsigned long mib, uint64_t seed, char *why,
		   size_t whyn)
{
	static uint64_t buf[NET_CHUNK / 8];
	char req[64];
	int rc = -1, fd = tcp_connect(host, port);
	int n = snprintf(req, sizeof(req), "GET %lu %llu\n", mib, (unsigned long long)seed);

	if (fd < 0) {
		snprintf(why, whyn, "connect: %s", strerror(errno));
		return -1;
	}
	if (write_all(fd, req, (size_t)n)) {
		snprintf(why, whyn, "write: %s", strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < mib * MiB; off += NET_CHUNK) {
		ssize_t r = read_full(fd, buf, NET_CHUNK);
		size_t bad;

		if (r != NET_CHUNK) {
			snprintf(why, whyn, "short read at %llu (%zd): %s", (unsigned long long)off,
				 r, r < 0 ? strerror(errno) : "EOF");
			goto out;
		}
		bad = check(buf, NET_CHUNK / 8, seed, off / 8);
		if (bad != (size_t)-1) {
			snprintf(why, whyn, "wrong bytes at %llu",
				 (unsigned long long)(off + bad * 8));
			goto out;
		}
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int tcp_rounds(const char *host, unsigned port, unsigned long mib, unsigned long count)
{
	char why[200];
	int fails = 0;

	printf("SQUIB-TCP ready pid=%d\n", (int)getpid());
	for (unsigned long n = 1; count == 0 || n <= count; n++) {
		for (int get = 0; get < 2; get++) {
			double t0 = uptime(), t1;
			int rc = get ? tcp_get(host, port, mib, n, why, sizeof(why))
				     : tcp_put(host, port, mib, n, why, sizeof(why));

			t1 = uptime();
			if (rc == 0)
				printf("SQUIB-TCP %s n=%lu ok mib=%lu ms=%.0f\n",
				       get ? "get" : "put", n, mib, (t1 - t0) * 1000);
			else
				printf("SQUIB-TCP %s n=%lu error ms=%.0f %s\n", get ? "get" : "put",
				       n, (t1 - t0) * 1000, why);
			fails += rc != 0;
			if (rc)
				sleep(1);
		}
	}
	return fails != 0;
}

/* Guest side of vsock: one child per connection, each line answered with
 * its checksum.  How a connection ends is printed: EOF, or the error a
 * transport reset gives (ECONNRESET). */
static void vagent_one(int c, unsigned id)
{
	char line[512], out[128];
	unsigned long lines = 0;
	int n;

	for (;;) {
		n = read_line(c, line, sizeof(line));
		if (n < 0)
			break;
		if (!lines && bench_serve(c, line))
			return;
		n = snprintf(out, sizeof(out), "SUM %016llx %d\n",
			     (unsigned long long)fnv64(line, (size_t)n), n);
		if (write_all(c, out, (size_t)n)) {
			n = -1;
			break;
		}
		lines++;
	}
	printf("SQUIB-VAGENT conn=%u end lines=%lu %s\n", id, lines,
	       errno ? strerror(errno) : "eof");
}

static int vsock_agent(unsigned port)
{
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int l = socket(AF_VSOCK, SOCK_STREAM, 0);
	unsigned id = 0;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16)) {
		printf("SQUIB-VAGENT error port=%u: %s\n", port, strerror(errno));
		return 1;
	}
	signal(SIGCHLD, SIG_IGN);
	printf("SQUIB-VAGENT ready port=%u pid=%d\n", port, (int)getpid());
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0) {
			printf("SQUIB-VAGENT accept: %s\n", strerror(errno));
			sleep(1);
			continue;
		}
		id++;
		{
			/* the cid this end answers on: a clone's new guest_cid shows here */
			struct sockaddr_vm me = {0};
			socklen_t ml = sizeof(me);

			getsockname(c, (struct sockaddr *)&me, &ml);
			printf("SQUIB-VAGENT conn=%u open cid=%u\n", id, me.svm_cid);
		}
		if (fork() == 0) {
			close(l);
			errno = 0;
			vagent_one(c, id);
			_exit(0);
		}
		close(c);
	}
}

/* Host side of vsock: Firecracker's host-initiated connection
 * (docs/vsock.md: "CONNECT <port>\n" -> "OK <host port>\n"), then lines. */
static int vsock_client(const char *uds, unsigned port, unsigned long count)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char line[512], want[128], got[128];
	unsigned long n;
	double t0 = uptime();
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), len;

	if (strlen(uds) >= sizeof(a.sun_path) || fd < 0) {
		printf("SQUIB-VCLIENT error: bad path or socket\n");
		return 1;
	}
	strcpy(a.sun_path, uds);
	net_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		printf("SQUIB-VCLIENT error connect %s: %s\n", uds, strerror(errno));
		return 1;
	}
	len = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write_all(fd, line, (size_t)len) || read_line(fd, got, sizeof(got)) < 0) {
		printf("SQUIB-VCLIENT error no answer to CONNECT %u: %s\n", port,
		       errno ? strerror(errno) : "EOF");
		return 1;
	}
	if (strncmp(got, "OK ", 3)) {
		printf("SQUIB-VCLIENT error CONNECT %u answered '%.60s'\n", port, got);
		return 1;
	}
	printf("SQUIB-VCLIENT connected %s\n", got);
	for (n = 0; count == 0 || n < count; n++) {
		len = snprintf(line, sizeof(line), "line %lu %016llx", n,
			       (unsigned long long)pattern(port, n));
		snprintf(want, sizeof(want), "SUM %016llx %d",
			 (unsigned long long)fnv64(line, (size_t)len), len);
		line[len++] = '\n';
		errno = 0;
		if (write_all(fd, line, (size_t)len) || read_line(fd, got, sizeof(got)) < 0) {
			printf("SQUIB-VCLIENT end lines=%lu %s\n", n,
			       errno ? strerror(errno) : "eof");
			return count == 0 ? 0 : 1;
		}
		if (strcmp(got, want)) {
			printf("SQUIB-VCLIENT bad line %lu: '%.60s' want '%.60s'\n", n, got, want);
			return 1;
		}
		if (count == 0 && n % 200 == 199)
			usleep(20000); /* busy, not flat out: the test host has 2 TCG vCPUs */
	}
	printf("SQUIB-VCLIENT ok lines=%lu ms=%.0f\n", n, (uptime() - t0) * 1000);
	return 0;
}

/* One HTTP/1.1 request; the answer is read up to its Content-Length (MMDS
 * keeps the connection open), 10 s at most. */
static int http_req(const char *save, const char *ip, const char *method, const char *path,
		    char **hdrs, int nh)
{
	static char buf[1 << 20];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(80)};
	struct timeval tv = {10, 0};
	char req[4096], *body, *cl;
	size_t got = 0, need = 0;
	int fd, n, status = 0;
	uint64_t h = 0xcbf29ce484222325ull;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return 2;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		printf("SQUIB-HTTP error connect %s\n", strerror(errno));
		return 1;
	}
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, ip);
	for (int i = 0; i < nh && n < (int)sizeof(req) - 8; i++) {
		char *at = strstr(hdrs[i], ": @"), val[1024] = "";
		FILE *f;

		if (at && (f = fopen(at + 3, "r"))) {
			size_t k = fread(val, 1, sizeof(val) - 1, f);
			val[k] = 0;
			fclose(f);
			n += snprintf(req + n, sizeof(req) - (size_t)n, "%.*s: %s\r\n",
				      (int)(at - hdrs[i]), hdrs[i], val);
			continue;
		}
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", hdrs[i]);
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (write(fd, req, (size_t)n) != n) {
		printf("SQUIB-HTTP error write %s\n", strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = 0;
		body = strstr(buf, "\r\n\r\n");
		if (!body)
			continue;
		cl = strcasestr(buf, "\ncontent-length:");
		need = (size_t)(body + 4 - buf) + (cl && cl < body ? strtoul(cl + 16, NULL, 10) : 0);
		if (got >= need)
			break;
	}
	close(fd);
	buf[got] = 0;
	body = strstr(buf, "\r\n\r\n");
	if (!body || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		printf("SQUIB-HTTP error answer got=%zu '%.80s'\n", got, buf);
		return 1;
	}
	body += 4;
	for (const char *p = body; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	printf("SQUIB-HTTP status=%d len=%zu fnv=%016llx\n", status, strlen(body),
	       (unsigned long long)h);
	printf("SQUIB-BODY<%.3000s>SQUIB-BODY\n", body);
	if (save) {
		FILE *f = fopen(save, "w");
		if (!f || fputs(body, f) < 0 || fclose(f))
			printf("SQUIB-HTTP error save %s\n", save);
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
	if (argc == 5 && !strcmp(argv[1], "writer"))
		return writer(argv[2], strtoul(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "wcheck"))
		return wcheck(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 5 && !strcmp(argv[1], "holdread"))
		return holdread(argv[2], strtoul(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "randread"))
		return randread(argv[2], strtoul(argv[3], NULL, 0),
				argc == 5 ? strtoul(argv[4], NULL, 0) : 4096);
	if (argc == 3 && !strcmp(argv[1], "tcpserve"))
		return tcpserve((unsigned)strtoul(argv[2], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "tcp"))
		return tcp_rounds(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
				  strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "vsock-agent"))
		return vsock_agent((unsigned)strtoul(argv[2], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "netbench"))
		return netbench(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
				strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "vsock-bench"))
		return vsock_bench(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
				   strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0));
	if (argc >= 7 && !strcmp(argv[1], "http") && !strcmp(argv[2], "-s"))
		return http_req(argv[3], argv[4], argv[5], argv[6], argv + 7, argc - 7);
	if (argc >= 5 && !strcmp(argv[1], "http"))
		return http_req(NULL, argv[2], argv[3], argv[4], argv + 5, argc - 5);
	if (argc == 5 && !strcmp(argv[1], "vsock-client"))
		return vsock_client(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
				    strtoul(argv[4], NULL, 0));
	fprintf(stderr,
		"usage: sqbtool memfill|memcheck MIB SEED FILE | counter [MS] | "
		"keeper MIB SEED | uptime | writer DIR SLOTS SEED | wcheck DIR SEED | "
		"holdread FILE MIB SEED | randread DEV COUNT [BS] | tcpserve PORT | "
		"tcp HOST PORT MIB COUNT | vsock-agent PORT | vsock-client UDS PORT COUNT | "
		"netbench HOST PORT MIB PINGS | vsock-bench UDS|cid:N PORT MIB PINGS | "
		"http [-s FILE] IP METHOD PATH [HEADER]...\n");
	return 2;
}
