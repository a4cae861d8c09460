/* virtio-net + virtio-vsock test guest: minimal polling drivers for both
 * devices (found by probing the virtio-mmio slots), from the virtio 1.x
 * spec (5.1 network device, 5.10 socket device), not from squib's code.
 *   net:   echoes every "ping" frame (ethertype 0x88b5, FNV-1a checked) as a
 *          "pong" with the payload XOR 0xa5 and a fresh checksum; a "stop"
 *          frame ends the run with the DONE line.
 *   vsock: listens on port 1234; each 64-byte record (seq, 56 data bytes,
 *          FNV-1a) is checked and echoed XOR 0x5a; a record with seq
 *          0xffffffff asks the guest to dial host port data[0..3], send one
 *          record there and check the answer; seq 0xfffffffe makes the guest
 *          reset the vsock device (Status 0) with its connections open and
 *          leave vsock alone from then on; TRANSPORT_RESET drops every
 *          connection and keeps the listener.
 * One line per event on COM1 ("NVS ..."); bad input counts as a failure. */
#include "guest.h"
#include "virtio_guest.h"

#define SLOT0	    0xd0000000ull
#define QN	    16
#define NET_BUF	    2048
#define VS_BUF	    4096
#define HDR_NET	    12
#define HDR_VS	    44
#define ETYPE	    0x88b5
#define MAGIC	    0x4e425153u /* "SQBN" little-endian */
#define LISTEN_PORT 1234
#define REC	    64
#define DIAL_SEQ    0xffffffffu
#define RESET_SEQ   0xfffffffeu /* a record asking for a driver reset of vsock */
#define DIAL_REC    0xd1a1u

struct ring {
	struct vq_desc desc[QN];
	volatile uint16_t avail[2 + QN + 1] __attribute__((aligned(16)));
	volatile uint32_t used[1 + 2 * QN + 1] __attribute__((aligned(16)));
	uint16_t avail_idx, used_idx;
	uint64_t base;
	uint32_t qi;
	int event_idx; /* VIRTIO_F_RING_EVENT_IDX: notify only as avail_event asks */
} __attribute__((aligned(4096)));

static uint64_t dev_acked; /* the features dev_begin() acked last */

static struct ring nrx, ntx, vrx, vtx, vev;
static uint8_t nrx_buf[QN][NET_BUF] __attribute__((aligned(4096)));
static uint8_t ntx_buf[QN][NET_BUF] __attribute__((aligned(4096)));
static uint8_t vrx_buf[QN][VS_BUF] __attribute__((aligned(4096)));
static uint8_t vtx_buf[QN][HDR_VS + REC] __attribute__((aligned(64)));
static uint8_t vev_buf[QN][8] __attribute__((aligned(64)));
static uint8_t mac[6];
static uint64_t cid;
static uint64_t old_cid; /* the cid before the last TRANSPORT_RESET, or 0 */
static unsigned int passed, failed;
static int vs_reset_req; /* a RESET_SEQ record came: reset vsock after this poll */
static uint64_t pings, records;

struct conn {
	int used, open, dialed;
	uint32_t lport, pport;
	uint32_t fwd_cnt;
	uint8_t acc[REC];
	unsigned int acc_len;
};
static struct conn conns[4];
static uint32_t next_dial = 50000;

static void say(const char *what, uint64_t v)
{
	puts_serial("NVS ");
	puts_serial(what);
	puts_serial(" ");
	put_u64(v);
	puts_serial("\n");
}

static void result(const char *step, int ok, uint64_t v)
{
	puts_serial("NVS ");
	puts_serial(step);
	if (ok) {
		passed++;
		puts_serial(" PASS\n");
		return;
	}
	failed++;
	puts_serial(" FAIL ");
	put_hex(v);
	puts_serial("\n");
}

static uint32_t fnv(const uint8_t *p, uint32_t n)
{
	uint32_t h = 0x811c9dc5u;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---- virtio-mmio, several queues (virtio 1.x 4.2.3) ---- */

static int dev_begin(uint64_t base, uint64_t want)
{
	uint64_t offered, acked;

	vm_wr(base, VM_STATUS, 0);
	vm_wr(base, VM_STATUS, 1);
	vm_wr(base, VM_STATUS, 3);
	vm_wr(base, VM_DEV_FEAT_SEL, 0);
	offered = vm_rd(base, VM_DEV_FEAT);
	vm_wr(base, VM_DEV_FEAT_SEL, 1);
	offered |= (uint64_t)vm_rd(base, VM_DEV_FEAT) << 32;
	if (!(offered & (1ull << 32)))
		return -1;
	acked = offered & (want | 1ull << 32);
	vm_wr(base, VM_DRV_FEAT_SEL, 0);
	vm_wr(base, VM_DRV_FEAT, (uint32_t)acked);
	vm_wr(base, VM_DRV_FEAT_SEL, 1);
	vm_wr(base, VM_DRV_FEAT, (uint32_t)(acked >> 32));
	vm_wr(base, VM_STATUS, 3 | 8);
	dev_acked = acked;
	return (vm_rd(base, VM_STATUS) & 8) ? 0 : -1;
}

static int queue_setup(struct ring *r, uint64_t base, uint32_t qi)
{
	r->base = base;
	r->qi = qi;
	memset(r->desc, 0, sizeof(r->desc));
	for (int i = 0; i < 2 + QN + 1; i++)
		r->avail[i] = 0;
	for (int i = 0; i < 1 + 2 * QN + 1; i++)
		r->used[i] = 0;
	r->avail[0] = 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT: this driver polls */
	r->avail_idx = r->used_idx = 0;
	r->event_idx = (dev_acked >> 29) & 1;
	vm_wr(base, VM_QUEUE_SEL, qi);
	if (vm_rd(base, VM_QUEUE_MAX) < QN)
		return -1;
	vm_wr(base, VM_QUEUE_NUM, QN);
	vm_wr(base, VM_DESC_LO, (uint32_t)(uintptr_t)r->desc);
	vm_wr(base, VM_DESC_HI, 0);
	vm_wr(base, VM_DRIVER_LO, (uint32_t)(uintptr_t)r->avail);
	vm_wr(base, VM_DRIVER_HI, 0);
	vm_wr(base, VM_DEVICE_LO, (uint32_t)(uintptr_t)r->used);
	vm_wr(base, VM_DEVICE_HI, 0);
	vm_wr(base, VM_QUEUE_READY, 1);
	return vm_rd(base, VM_QUEUE_READY) == 1 ? 0 : -1;
}

/* Make descriptor id available (its addr/len/flags already set). */
static void post(struct ring *r, uint16_t id, int notify)
{
	r->avail[2 + (r->avail_idx % QN)] = id;
	vq_barrier();
	r->avail_idx++;
	r->avail[1] = r->avail_idx;
	vq_barrier();
	/* With EVENT_IDX (2.7.10) the driver notifies only when the new avail
	 * idx passes avail_event, the le16 after the used ring: for one buffer,
	 * when avail_event is its index.  A device that forgets to advance it
	 * (or loses a notify across a snapshot) leaves this guest unheard. */
	if (notify && r->event_idx && (uint16_t)r->used[1 + 2 * QN] != (uint16_t)(r->avail_idx - 1))
		return;
	if (notify)
		vm_wr(r->base, VM_QUEUE_NOTIFY, r->qi);
}

/* One used element, or 0 when there is none. */
static int reap(struct ring *r, uint32_t *id, uint32_t *len)
{
	uint16_t used = (uint16_t)(r->used[0] >> 16);

	if (used == r->used_idx)
		return 0;
	vq_barrier();
	*id = r->used[1 + 2 * (r->used_idx % QN)];
	*len = r->used[1 + 2 * (r->used_idx % QN) + 1];
	r->used_idx++;
	return 1;
}

/* A transmit slot: wait (bounded) until fewer than QN are outstanding. */
static int tx_slot(struct ring *r)
{
	uint32_t id, len;

	for (uint64_t spin = 0; (uint16_t)(r->avail_idx - r->used_idx) >= QN; spin++) {
		if (!reap(r, &id, &len)) {
			if (spin > 400000000ull)
				return -1;
			cpu_relax();
		}
	}
	while (reap(r, &id, &len))
		;
	return r->avail_idx % QN;
}

/* ---- virtio-net ---- */

static void net_send(const uint8_t *frame, uint32_t n)
{
	int s = tx_slot(&ntx);

	if (s < 0) {
		result("net-tx-stuck", 0, ntx.avail_idx);
		return;
	}
	memset(ntx_buf[s], 0, HDR_NET);
	memcpy(ntx_buf[s] + HDR_NET, frame, n);
	ntx.desc[s] = (struct vq_desc){(uint64_t)(uintptr_t)ntx_buf[s], HDR_NET + n, 0, 0};
	post(&ntx, (uint16_t)s, 1);
}

static uint8_t reply[NET_BUF];

/* 1: a stop frame */
static int net_frame(const uint8_t *f, uint32_t n)
{
	uint32_t plen, seq, sum;

	if (n < 14 + 11 + 4 || f[12] != ETYPE >> 8 || f[13] != (ETYPE & 0xff))
		return 0; /* somebody else's traffic (IPv6 ND, ...) */
	plen = (uint32_t)f[23] | (uint32_t)f[24] << 8;
	seq = rd32(f + 19);
	if (rd32(f + 14) != MAGIC || 14 + 11 + plen + 4 > n) {
		result("net-frame-shape", 0, n);
		return 0;
	}
	sum = rd32(f + 25 + plen);
	if (sum != fnv(f + 14, 11 + plen)) {
		result("net-checksum", 0, seq);
		return 0;
	}
	if (f[18] == 3)
		return 1;
	if (f[18] != 1)
		return 0;
	memcpy(reply, f + 6, 6); /* back to the sender */
	memcpy(reply + 6, mac, 6);
	reply[12] = ETYPE >> 8;
	reply[13] = ETYPE & 0xff;
	memcpy(reply + 14, f + 14, 11);
	reply[18] = 2;
	for (uint32_t i = 0; i < plen; i++)
		reply[25 + i] = f[25 + i] ^ 0xa5;
	wr32(reply + 25 + plen, fnv(reply + 14, 11 + plen));
	net_send(reply, 25 + plen + 4);
	pings++;
	return 0;
}

static int net_poll(void)
{
	uint32_t id, len;
	int stop = 0;

	while (reap(&nrx, &id, &len)) {
		if (id >= QN || len < HDR_NET || len > NET_BUF) {
			result("net-rx-used", 0, id);
			continue;
		}
		stop |= net_frame(nrx_buf[id] + HDR_NET, len - HDR_NET);
		post(&nrx, (uint16_t)id, 1);
	}
	return stop;
}

/* ---- virtio-vsock ---- */

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQ };

static void vs_send(struct conn *c, uint32_t lport, uint32_t pport, uint16_t op,
		    const uint8_t *data, uint32_t n)
{
	int s = tx_slot(&vtx);
	uint8_t *h;

	if (s < 0) {
		result("vsock-tx-stuck", 0, vtx.avail_idx);
		return;
	}
	h = vtx_buf[s];
	memset(h, 0, HDR_VS);
	wr64(h, cid);			  /* src_cid */
	wr64(h + 8, 2);			  /* dst_cid: the host */
	wr32(h + 16, lport);		  /* src_port */
	wr32(h + 20, pport);		  /* dst_port */
	wr32(h + 24, n);		  /* len */
	h[28] = 1;			  /* type: STREAM */
	h[30] = (uint8_t)op;		  /* op */
	wr32(h + 36, 64 * 1024);	  /* buf_alloc */
	wr32(h + 40, c ? c->fwd_cnt : 0); /* fwd_cnt */
	if (n)
		memcpy(h + HDR_VS, data, n);
	vtx.desc[s] = (struct vq_desc){(uint64_t)(uintptr_t)h, HDR_VS + n, 0, 0};
	post(&vtx, (uint16_t)s, 1);
}

static struct conn *conn_find(uint32_t lport, uint32_t pport)
{
	for (int i = 0; i < 4; i++)
		if (conns[i].used && conns[i].lport == lport && conns[i].pport == pport)
			return &conns[i];
	return 0;
}

static struct conn *conn_new(uint32_t lport, uint32_t pport)
{
	for (int i = 0; i < 4; i++)
		if (!conns[i].used) {
			memset(&conns[i], 0, sizeof(conns[i]));
			conns[i].used = 1;
			conns[i].lport = lport;
			conns[i].pport = pport;
			return &conns[i];
		}
	return 0;
}

static void rec_fill(uint8_t *r, uint32_t seq)
{
	wr32(r, seq);
	for (int i = 0; i < 56; i++)
		r[4 + i] = (uint8_t)(seq * 7 + (uint32_t)i * 13);
	wr32(r + 60, fnv(r, 60));
}

static void dial(uint32_t port)
{
	struct conn *c = conn_new(next_dial, port);

	if (!c) {
		result("vsock-dial-slot", 0, port);
		return;
	}
	c->dialed = 1;
	next_dial++;
	vs_send(c, c->lport, port, OP_REQUEST, 0, 0);
}

static void record(struct conn *c)
{
	uint8_t out[REC];
	uint32_t seq = rd32(c->acc);

	if (rd32(c->acc + 60) != fnv(c->acc, 60)) {
		result("vsock-checksum", 0, seq);
		return;
	}
	if (c->dialed) { /* the host's answer to our record: XOR 0x5a of ours */
		uint8_t mine[REC];
		int ok = seq == DIAL_REC;

		rec_fill(mine, DIAL_REC);
		for (int i = 4; i < 60; i++)
			ok &= c->acc[i] == (mine[i] ^ 0x5a);
		result("vsock-dial", ok, seq);
		return;
	}
	if (seq == DIAL_SEQ) {
		dial(rd32(c->acc + 4));
		return;
	}
	if (seq == RESET_SEQ) {
		vs_reset_req = 1;
		return;
	}
	memcpy(out, c->acc, REC);
	for (int i = 4; i < 60; i++)
		out[i] ^= 0x5a;
	wr32(out + 60, fnv(out, 60));
	vs_send(c, c->lport, c->pport, OP_RW, out, REC);
	records++;
}

static void vs_packet(const uint8_t *h, uint32_t n)
{
	uint32_t sport = rd32(h + 16), dport = rd32(h + 20), len = rd32(h + 24);
	uint16_t op = (uint16_t)(h[30] | h[31] << 8);
	struct conn *c = conn_find(dport, sport);

	/* a packet the device delivered before a reset that changed the cid
	 * (virtio 1.x 5.10.6.6: the connections it belonged to are gone) */
	if (rd64(h) == 2 && old_cid != cid && rd64(h + 8) == old_cid && len <= n - HDR_VS)
		return;
	if (rd64(h) != 2 || rd64(h + 8) != cid || len > n - HDR_VS) {
		result("vsock-rx-header", 0, rd64(h + 8));
		return;
	}
	switch (op) {
	case OP_REQUEST:
		if (dport != LISTEN_PORT || c || !(c = conn_new(dport, sport))) {
			vs_send(0, dport, sport, OP_RST, 0, 0);
			return;
		}
		c->open = 1;
		vs_send(c, dport, sport, OP_RESPONSE, 0, 0);
		say("vsock-accept", sport);
		return;
	case OP_RESPONSE:
		if (c && c->dialed && !c->open) {
			uint8_t r[REC];

			c->open = 1;
			rec_fill(r, DIAL_REC);
			vs_send(c, c->lport, c->pport, OP_RW, r, REC);
		}
		return;
	case OP_RW:
		if (!c || !c->open) {
			vs_send(0, dport, sport, OP_RST, 0, 0);
			return;
		}
		for (uint32_t i = 0; i < len; i++) {
			c->acc[c->acc_len++] = h[HDR_VS + i];
			if (c->acc_len == REC) {
				record(c);
				c->acc_len = 0;
			}
		}
		c->fwd_cnt += len;
		if (len)
			vs_send(c, c->lport, c->pport, OP_CREDIT_UPDATE, 0, 0);
		return;
	case OP_CREDIT_REQ:
		if (c)
			vs_send(c, c->lport, c->pport, OP_CREDIT_UPDATE, 0, 0);
		return;
	case OP_SHUTDOWN:
		if (c) {
			vs_send(c, c->lport, c->pport, OP_RST, 0, 0);
			c->used = 0;
		}
		return;
	case OP_RST:
		if (c) {
			c->used = 0;
			say("vsock-rst", c->pport);
		}
		return;
	default:
		return;
	}
}

static void vsock_poll(void)
{
	uint32_t id, len;

	while (reap(&vrx, &id, &len)) {
		if (id >= QN || len < HDR_VS || len > VS_BUF)
			result("vsock-rx-used", 0, id);
		else
			vs_packet(vrx_buf[id], len);
		post(&vrx, (uint16_t)id, 1);
	}
	while (reap(&vev, &id, &len)) {
		if (id < QN && len >= 4 && rd32(vev_buf[id]) == 0) { /* TRANSPORT_RESET */
			int n = 0;

			for (int i = 0; i < 4; i++) {
				n += conns[i].used;
				conns[i].used = 0;
			}
			old_cid = cid;
			cid = vm_rd(vev.base, VM_CONFIG) | (uint64_t)vm_rd(vev.base, VM_CONFIG + 4)
							       << 32;
			say("vsock-transport-reset dropped", (uint64_t)n);
			say("vsock-cid", cid);
		}
		post(&vev, (uint16_t)id, 1);
	}
}

/* ---- set-up ---- */

static int norx; /* cmdline norx=1: never give the device an RX buffer (hostile) */

static int net_init(uint64_t base)
{
	if (dev_begin(base, 1ull << 5 | 1ull << 29) < 0 || queue_setup(&nrx, base, 0) < 0 ||
	    queue_setup(&ntx, base, 1) < 0)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = *(volatile uint8_t *)(uintptr_t)(base + VM_CONFIG + (uint64_t)i);
	vm_wr(base, VM_STATUS, 3 | 8 | 4);
	for (uint16_t i = 0; i < QN && !norx; i++) {
		nrx.desc[i] = (struct vq_desc){(uint64_t)(uintptr_t)nrx_buf[i], NET_BUF, 2, 0};
		post(&nrx, i, i == QN - 1);
	}
	return 0;
}

static int vsock_init(uint64_t base)
{
	if (dev_begin(base, 1ull << 29) < 0 || queue_setup(&vrx, base, 0) < 0 ||
	    queue_setup(&vtx, base, 1) < 0 || queue_setup(&vev, base, 2) < 0)
		return -1;
	cid = vm_rd(base, VM_CONFIG) | (uint64_t)vm_rd(base, VM_CONFIG + 4) << 32;
	vm_wr(base, VM_STATUS, 3 | 8 | 4);
	for (uint16_t i = 0; i < QN; i++) {
		vrx.desc[i] = (struct vq_desc){(uint64_t)(uintptr_t)vrx_buf[i], VS_BUF, 2, 0};
		post(&vrx, i, i == QN - 1);
	}
	for (uint16_t i = 0; i < 4; i++) {
		vev.desc[i] = (struct vq_desc){(uint64_t)(uintptr_t)vev_buf[i], 8, 2, 0};
		post(&vev, i, i == 3);
	}
	return 0;
}

static void print_mac(const char *what)
{
	puts_serial("NVS ");
	puts_serial(what);
	for (int i = 0; i < 6; i++) {
		putc_serial("0123456789abcdef"[mac[i] >> 4]);
		putc_serial("0123456789abcdef"[mac[i] & 15]);
	}
	puts_serial("\n");
}

/* A configuration-change interrupt (InterruptStatus bit 1): a clone may
 * have been given another MAC (5.1.4: the driver re-reads config space). */
static void net_config_check(uint64_t base)
{
	if (!(vm_rd(base, VM_INT_STATUS) & 2))
		return;
	vm_wr(base, VM_INT_ACK, 2);
	for (int i = 0; i < 6; i++)
		mac[i] = *(volatile uint8_t *)(uintptr_t)(base + VM_CONFIG + (uint64_t)i);
	print_mac("net-config-change mac=");
}

void guest_main(uint32_t start_info)
{
	uint64_t net = 0, vs = 0, idle = 0, max_idle;

	cmdline_init(start_info);
	max_idle = cmdline_u64("idle", 2000000000ull); /* polls without traffic before giving up */
	norx = cmdline_u64("norx", 0) != 0;
	for (int n = 0; n < 8; n++) {
		uint64_t b = SLOT0 + 0x1000ull * (uint64_t)n;

		if (vm_rd(b, VM_MAGIC) != 0x74726976)
			continue;
		if (vm_rd(b, VM_DEVICE_ID) == 1 && !net)
			net = b;
		if (vm_rd(b, VM_DEVICE_ID) == 19 && !vs)
			vs = b;
	}
	result("probe", net || vs, 0);
	if (net)
		result("net-init", net_init(net) == 0, vm_rd(net, VM_STATUS));
	if (vs)
		result("vsock-init", vsock_init(vs) == 0, vm_rd(vs, VM_STATUS));
	print_mac("mac=");
	say("ready cid", cid);
	for (;;) {
		uint64_t before = pings + records;
		uint16_t rx_before = (uint16_t)(nrx.used_idx + vrx.used_idx + vev.used_idx);

		if (net && net_poll())
			break;
		if (vs)
			vsock_poll();
		if (vs && vs_reset_req) { /* the driver gives the device up (2.1.2) */
			vm_wr(vs, VM_STATUS, 0);
			say("vsock-driver-reset status", vm_rd(vs, VM_STATUS));
			vs = 0;
		}
		if (before == pings + records &&
		    rx_before == (uint16_t)(nrx.used_idx + vrx.used_idx + vev.used_idx)) {
			if (++idle > max_idle) {
				result("idle-timeout", 0, idle);
				break;
			}
			if (net && !(idle & 0x3ff))
				net_config_check(net);
			cpu_relax();
		} else {
			idle = 0;
		}
	}
	say("pings", pings);
	say("records", records);
	puts_serial("NVS DONE pass=");
	put_u64(passed);
	puts_serial(" fail=");
	put_u64(failed);
	puts_serial("\n");
	guest_reset();
}
