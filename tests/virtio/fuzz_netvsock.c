/* Fuzz target for the virtio-net and virtio-vsock parsers: the input is a
 * guest RAM image holding the rings and buffers plus a flags byte; the
 * device is driven like a driver would, fed host traffic (net: datagrams on
 * a socketpair posing as the tap; vsock: a host client's command line), the
 * vsock header checker and CONNECT parser get the raw bytes, and the state
 * is saved, restored into a twin and replaced by the input as a blob.  With
 * -DSQB_LIBFUZZER a libFuzzer target; otherwise main() replays a corpus and
 * runs a fixed-seed mutation pass, as fuzz_virtio does.
 *
 * Input: byte 0 flags (bit 0 vsock instead of net, bit 1 EVENT_IDX, bit 2
 * MRG_RXBUF, bit 3 INDIRECT_DESC, bits 4-6 log2 of the queue size, at most
 * 64); bytes 1.. are copied to guest-physical 0x1000.  Queue q: desc at
 * 0x1000 + q*0x1000, avail +0x800, used +0xc00; RAM is [0, 0x10000). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_host.h"
#include "fuzz_replay.h"
#include "virtio.h"
#include "virtio_priv.h"

#define RAM_SIZE 0x10000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE];
static char dir[64];

static uint8_t *fz_map(void *opaque, uint64_t gpa, uint64_t len, int write)
{
	(void)opaque;
	(void)write;
	return vfz_ram_map(ram, RAM_SIZE, gpa, len);
}

/* A fixed clock: saved limiter times are then the same in a twin. */
static uint64_t fz_now(void *opaque)
{
	(void)opaque;
	return 5000000000ull;
}

static void fz_arm(void *opaque, uint64_t at)
{
	(void)opaque;
	(void)at;
}

static const struct sqb_vio_rl_config rl = {{100000, 1000, 100}, {50, 0, 100}};

static sqb_vio_dev *make(const struct sqb_vio_host *h, uint8_t flags, const char *name, int *peer)
{
	sqb_vio_dev *dev = NULL;

	if (flags & 1) {
		struct sqb_vio_vsock_opts o = SQB_VIO_VSOCK_OPTS_INIT;
		char path[128];
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		unlink(path);
		o.guest_cid = 3;
		o.uds_path = path;
		sqb_vio_vsock_new(&dev, h, &o, NULL);
	} else {
		struct sqb_vio_net_opts o = SQB_VIO_NET_OPTS_INIT;
		static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv))
			abort();
		o.tap_fd = sv[0];
		o.mac = mac;
		o.tx_rate_limiter = (flags & 0x80) ? &rl : NULL;
		sqb_vio_net_new(&dev, h, &o, NULL);
		close(sv[0]);
		*peer = sv[1];
	}
	if (!dev)
		abort();
	return dev;
}

static void drive(sqb_vio_dev *dev, uint8_t flags)
{
	uint16_t num = (uint16_t)(1u << ((flags >> 4) & 7));
	uint64_t feat = 1ull << 32;

	if (num > 64)
		num = 64;
	feat |= (flags & 2) ? 1ull << SQB_VIO_F_RING_EVENT_IDX : 0;
	feat |= (flags & 8) ? 1ull << SQB_VIO_F_RING_INDIRECT_DESC : 0;
	if (!(flags & 1))
		feat |= ((flags & 4) ? 1ull << SQB_VIO_F_NET_MRG_RXBUF : 0) |
			1ull << SQB_VIO_F_NET_GUEST_CSUM | 1ull << SQB_VIO_F_NET_CSUM;
	vfz_w32(dev, 0x70, 1);
	vfz_w32(dev, 0x70, 3);
	vfz_w32(dev, 0x24, 0);
	vfz_w32(dev, 0x20, (uint32_t)feat);
	vfz_w32(dev, 0x24, 1);
	vfz_w32(dev, 0x20, (uint32_t)(feat >> 32));
	vfz_w32(dev, 0x70, 0xb);
	for (unsigned int q = 0; q < sqb_vio_num_queues(dev); q++) {
		vfz_w32(dev, 0x30, q);
		vfz_w32(dev, 0x38, num);
		vfz_w32(dev, 0x80, 0x1000 + q * 0x1000);
		vfz_w32(dev, 0x90, 0x1800 + q * 0x1000);
		vfz_w32(dev, 0xa0, 0x1c00 + q * 0x1000);
		vfz_w32(dev, 0x44, 1);
	}
	vfz_w32(dev, 0x70, 0xf);
}

static void twin_check(sqb_vio_dev *dev, sqb_vio_dev *dev2, bool identical)
{
	uint8_t *st = NULL, *st2 = NULL;
	size_t n = 0, n2 = 0;
	struct sqb_diag dg;
	int rc;

	if (sqb_vio_quiesce(dev) || sqb_vio_dev_save(dev, &st, &n))
		abort();
	rc = sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, st, n, &dg);
	if (rc) {
		fprintf(stderr, "own state refused: %d %s at %llu\n", rc, dg.reason,
			(unsigned long long)dg.offset);
		abort();
	}
	/* vsock answers a load with TRANSPORT_RESET, which moves its event
	 * queue: only net must save back byte for byte. */
	if (sqb_vio_dev_save(dev2, &st2, &n2) || n != n2 || (identical && memcmp(st, st2, n)))
		abort();
	free(st);
	free(st2);
}

static void host_side(sqb_vio_dev *dev, uint8_t flags, int peer, const uint8_t *d, size_t n)
{
	if (flags & 1) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/a", dir);
		if (c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			if (write(c, d, n < 40 ? n : 40) < 0)
				abort();
			sqb_vio_vsock_host_ready(dev);
		}
		if (c >= 0)
			close(c);
		sqb_vio_vsock_host_ready(dev);
	} else {
		uint8_t sink[2048];
		size_t len[3] = {n < 65562 ? n : 65562, n < 64 ? n : 64, n < 12 ? n : 12};
		/* Frames of three sizes from the input (a tap never reads empty:
		 * no zero-length ones), then drain what the guest sent. */
		for (int k = 0; k < 3; k++)
			if (len[k] && send(peer, d, len[k], 0) < 0)
				abort();
		sqb_vio_net_tap_ready(dev);
		while (recv(peer, sink, sizeof(sink), 0) > 0)
			;
	}
}

static void parsers(const uint8_t *d, size_t n)
{
	struct sqb_vsock_hdr h;
	const char *why;
	uint32_t port;
	size_t used;
	char line[40];
	int rc;

	if (n >= SQB_VSOCK_HDR_LEN) {
		uint8_t back[SQB_VSOCK_HDR_LEN];
		sqb_vsock_hdr_decode(d, &h);
		sqb_vsock_hdr_encode(back, &h);
		if (memcmp(back, d, sizeof(back)))
			abort(); /* the codec is a bijection */
		sqb_vsock_hdr_check(&h, 3, n - SQB_VSOCK_HDR_LEN, &why);
	}
	memcpy(line, d, n < sizeof(line) ? n : sizeof(line));
	/* Firecracker's command: 10 bytes at least, up to the first '\n' from
	 * there, or 32 bytes without one; a prefix of an accepted command is
	 * never refused (the device waits for the rest). */
	rc = sqb_vsock_parse_connect(line, n < sizeof(line) ? n : sizeof(line), &port, &used);
	if (rc == 1 &&
	    (used < 10 || used > 32 || used > n || (line[used - 1] != '\n' && used != 32) ||
	     memchr(line + 9, '\n', used - 10)))
		abort();
	for (size_t k = 0, u; rc == 1 && k < used; k++)
		if (sqb_vsock_parse_connect(line, k, &port, &u) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqb_vio_host h = {{NULL, fz_map}, {NULL, vfz_raise}, {NULL, fz_now}, {NULL, fz_arm}};
	sqb_vio_dev *dev, *dev2;
	int peer = -1, peer2 = -1;
	uint8_t flags;

	if (size < 1)
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/sqbfz.XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	flags = data[0];
	parsers(data + 1, size - 1);
	memset(ram, 0, sizeof(ram));
	memcpy(ram + 0x1000, data + 1, size - 1 < RAM_SIZE - 0x1000 ? size - 1 : RAM_SIZE - 0x1000);

	dev = make(&h, flags, "a", &peer);
	drive(dev, flags);
	for (unsigned int q = 0; q < sqb_vio_num_queues(dev); q++)
		sqb_vio_queue_notify(dev, q);
	host_side(dev, flags, peer, data + 1, size - 1);
	sqb_vio_dev_poll(dev);

	dev2 = make(&h, flags, "b", &peer2);
	twin_check(dev, dev2, !(flags & 1));
	/* The input as a state blob: restores or fails cleanly. */
	sqb_vio_dev_restore(dev2, SQB_VIO_STATE_VERSION, data, size, NULL);
	sqb_vio_dev_poll(dev2);
	sqb_vio_dev_free(dev2);
	if (peer2 >= 0)
		close(peer2);
	sqb_vio_dev_free(dev);
	if (peer >= 0)
		close(peer);
	return 0;
}

#ifndef SQB_LIBFUZZER
/* a ring or the first packet buffers */
static size_t aim_rings(size_t n)
{
	(void)n;
	return 1 + (vfz_next() % 3) * 0x1000 + vfz_next() % 0x100;
}

int main(int argc, char **argv)
{
	int rc = vfz_replay_main(argc, argv, "fuzz_netvsock", aim_rings);
	char cmd[128];

	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return rc;
}
#endif
