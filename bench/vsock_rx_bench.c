/* vsock host -> guest through the device's RX path, one recvmsg per RX
 * buffer (sqb_vio_vsock_set_rx_batch 1, the old path) against batched
 * reads (32), alternating in one run on one machine.  A host client writes
 * N MiB into a host-initiated connection; a fake guest driver (the unit
 * tests' kit: fake guest RAM, split rings) keeps 64 RX buffers of 4 KiB
 * posted, takes every used one, checks the bytes, posts them all again with
 * one notify (as Linux's virtio_vsock refills) and returns credit as Linux
 * does (a CREDIT_UPDATE once less than 64 KiB is left).  Not a test: it
 * prints times, never passes or fails on them.
 *
 *   vsock_rx_bench [MiB per run, default 64] [runs per mode, default 3] */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vio_test_mq.h"
#include "virtio_priv.h"

#define CID  3u
#define RXSZ 4096u
#define NQ   64u
#define BA   (256u << 10)

static atomic_uint n_recvmsg;

/* Counts the device's reads of host sockets (stands in for libc's). */
ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	atomic_fetch_add(&n_recvmsg, 1);
	return (ssize_t)syscall(SYS_recvmsg, fd, m, flags);
}

static void die(const char *what)
{
	fprintf(stderr, "vsock_rx_bench: %s\n", what);
	exit(1);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct wr {
	int fd;
	size_t total;
};

static void *writer(void *a)
{
	struct wr *w = a;
	static uint8_t buf[65536];
	size_t off = 0;

	while (off < w->total) {
		size_t n = w->total - off < sizeof(buf) ? w->total - off : sizeof(buf);
		size_t d = 0;

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 31 + 7);
		while (d < n) {
			ssize_t r = write(w->fd, buf + d, n - d);

			if (r <= 0)
				die("host write failed");
			d += (size_t)r;
		}
		off += n;
	}
	close(w->fd);
	return NULL;
}

struct env {
	struct vt_env e;
	struct mq_drv d;
	sqb_vio_dev *dev;
};

static void post(struct env *v, unsigned int qi, uint64_t gpa, uint32_t len)
{
	struct vt_seg s = {gpa, len, true};

	mq_add(&v->d, qi, &s, 1);
}

/* A guest TX packet (header only). */
static void tx(struct env *v, uint16_t op, uint32_t sp, uint32_t dp, uint32_t fwd)
{
	uint64_t g = VT_R1_BASE + (v->d.q[1].next_desc % 8) * 0x1000ull;
	uint8_t *b = vt_ptr(&v->e, g);
	struct vt_seg s = {g, 44, false};
	uint32_t id, len;

	memset(b, 0, 44);
	b[0] = CID; /* src_cid */
	b[8] = 2;   /* dst_cid */
	memcpy(b + 16, &sp, 4);
	memcpy(b + 20, &dp, 4);
	b[28] = 1; /* stream */
	b[30] = (uint8_t)op;
	b[36] = (uint8_t)(BA >> 0);
	b[37] = (uint8_t)(BA >> 8);
	b[38] = (uint8_t)(BA >> 16);
	memcpy(b + 40, &fwd, 4);
	mq_add(&v->d, 1, &s, 1);
	sqb_vio_queue_notify(v->dev, 1);
	if (!mq_used(&v->d, 1, &id, &len))
		die("TX packet not completed");
}

static void pump(struct env *v)
{
	struct pollfd p = {sqb_vio_vsock_host_fd(v->dev), POLLIN, 0};

	poll(&p, 1, 10);
	sqb_vio_vsock_host_ready(v->dev);
}

/* One run: seconds for total bytes; *reads: recvmsg calls. */
static double run(unsigned int batch, size_t total, unsigned int *reads)
{
	struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
	struct sqb_diag diag = {0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sqbvsb.XXXXXX", line[32];
	struct env *v = calloc(1, sizeof(*v));
	uint32_t hport = 0, fwd = 0, told = 0, id, used, gport = 5000;
	size_t got = 0;
	bool shut = false, have_hport = false;
	double t0, t;
	unsigned int r0;
	pthread_t th;
	struct wr w;
	int hs, n;

	if (!v || !mkdtemp(dir))
		die("setup");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/v.sock", dir);
	vt_env_init(&v->e);
	o.guest_cid = CID;
	o.uds_path = sa.sun_path;
	if (sqb_vio_vsock_new(&v->dev, &v->e.host, &o, &diag))
		die(diag.reason);
	sqb_vio_vsock_set_rx_batch(v->dev, batch);
	if (!(mq_init(&v->d, &v->e, v->dev, 3, NQ, 0) & SQB_VIO_S_DRIVER_OK))
		die("driver init");
	for (unsigned int i = 0; i < NQ; i++)
		post(v, 0, MQ_BUF(0) + i * RXSZ, RXSZ);
	post(v, 2, MQ_BUF(2), 4);
	sqb_vio_queue_notify(v->dev, 0);
	sqb_vio_queue_notify(v->dev, 2);
	hs = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(hs, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	if (write(hs, line, (size_t)n) != n)
		die("CONNECT");
	while (!have_hport) {
		pump(v);
		while (mq_used(&v->d, 0, &id, &used)) {
			const uint8_t *b = vt_ptr(&v->e, MQ_BUF(0) + (id % NQ) * RXSZ);

			if (g32(b + 28) % 65536 == 1 && (g32(b + 28) >> 16) == 1) { /* REQUEST */
				hport = g32(b + 16);
				have_hport = true;
			}
			post(v, 0, MQ_BUF(0) + (id % NQ) * RXSZ, RXSZ);
		}
	}
	sqb_vio_queue_notify(v->dev, 0);
	tx(v, 2 /* RESPONSE */, gport, hport, 0);
	n = (int)read(hs, line, sizeof(line)); /* "OK <port>\n" */
	if (n <= 0)
		die("no OK");
	w.fd = hs;
	w.total = total;
	r0 = atomic_load(&n_recvmsg);
	t0 = now_s();
	pthread_create(&th, NULL, writer, &w);
	while (!shut) {
		unsigned int k = 0;

		pump(v);
		while (mq_used(&v->d, 0, &id, &used)) {
			const uint8_t *b = vt_ptr(&v->e, MQ_BUF(0) + (id % NQ) * RXSZ);
			uint32_t len = g32(b + 24), op = g32(b + 28) >> 16;

			if (op == 5) {
				for (uint32_t i = 0; i < len; i += 509)
					if (b[44 + i] != (uint8_t)((got + i) * 31 + 7))
						die("bad byte");
				got += len;
				fwd += len; /* the guest's reader takes it at once */
			} else if (op == 4) {
				shut = true;
			}
			post(v, 0, MQ_BUF(0) + (id % NQ) * RXSZ, RXSZ);
			k++;
		}
		if (k)
			sqb_vio_queue_notify(v->dev, 0);
		if (BA - (fwd - told) < 65536 || (k == 0 && fwd != told)) {
			tx(v, 6 /* CREDIT_UPDATE */, gport, hport, fwd);
			told = fwd;
		}
	}
	t = now_s() - t0;
	*reads = atomic_load(&n_recvmsg) - r0;
	pthread_join(th, NULL);
	if (got != total)
		die("short stream");
	sqb_vio_dev_free(v->dev);
	vt_env_fini(&v->e);
	unlink(sa.sun_path);
	rmdir(dir);
	free(v);
	return t;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	unsigned int runs = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 10) : 3;
	double best[2] = {1e9, 1e9};
	unsigned int reads[2] = {0, 0};
	static const unsigned int mode[2] = {1, 32};

	for (unsigned int r = 0; r < runs; r++)
		for (unsigned int m = 0; m < 2; m++) {
			double t = run(mode[m], mib << 20, &reads[m]);

			printf("run %u batch %2u: %zu MiB in %.3f s = %.1f MB/s, %u recvmsg\n", r,
			       mode[m], mib, t, (double)(mib << 20) / t / 1e6, reads[m]);
			if (t < best[m])
				best[m] = t;
		}
	printf("best: one read per buffer %.1f MB/s, batched %.1f MB/s (%.2fx)\n",
	       (double)(mib << 20) / best[0] / 1e6, (double)(mib << 20) / best[1] / 1e6,
	       best[0] / best[1]);
	return 0;
}
