/* Entropy seed test guest (docs/fleet.md "Entropy seed"): a virtio-rng
 * driver at virtio-mmio slot `slot=` reads 64 bytes, then makes a second
 * buffer of `len=` bytes available and notifies -- with a rate limiter of
 * one 64-byte bucket the device holds it -- and waits for it without a
 * timeout.  A snapshot taken while it waits holds the available buffer;
 * each clone prints what filled it:
 *   RSEED read1 len=64 | RSEED waiting | RSEED got len=N HEX16 nonzero=0|1 */
#include "guest.h"
#include "virtio_guest.h"

static struct vq_ring ring __attribute__((aligned(4096)));
static uint8_t buf[2][256] __attribute__((aligned(64)));

static void hex_bytes(const uint8_t *b, int n)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < n; i++) {
		putc_serial(digits[b[i] >> 4]);
		putc_serial(digits[b[i] & 15]);
	}
}

void guest_main(uint32_t start_info)
{
	uint64_t base, len;
	int64_t got;
	uint16_t used;
	int nonzero = 0;

	cmdline_init(start_info);
	base = 0xd0000000ull + 0x1000ull * cmdline_u64("slot", 0);
	len = cmdline_u64("len", 64);
	if (len < 16 || len > sizeof(buf[1]))
		len = 64;
	if (vm_rd(base, VM_MAGIC) != 0x74726976 || vm_rd(base, VM_DEVICE_ID) != 4 ||
	    (vq_setup(&ring, base, 0) >> 63)) {
		puts_serial("RSEED FAIL no virtio-rng\n");
		guest_reset();
	}
	ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)buf[0], 64, 2, 0};
	got = vq_submit(&ring);
	puts_serial("RSEED read1 len=");
	put_u64((uint64_t)got);
	puts_serial("\n");

	/* the second request: available and notified, held by the limiter */
	ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)buf[1], (uint32_t)len, 2, 0};
	ring.avail[2 + (ring.avail_idx % VQ_NUM)] = 0;
	vq_barrier();
	ring.avail_idx++;
	ring.avail[1] = ring.avail_idx;
	vq_barrier();
	vm_wr(base, VM_QUEUE_NOTIFY, 0);
	puts_serial("RSEED waiting\n");
	do {
		cpu_relax();
		used = (uint16_t)(ring.used[0] >> 16);
	} while (used == ring.used_idx);
	vq_barrier();
	got = ring.used[1 + 2 * (ring.used_idx % VQ_NUM) + 1];
	ring.used_idx++;
	for (uint64_t i = 0; i < (uint64_t)got && i < len; i++)
		nonzero |= buf[1][i] != 0;
	puts_serial("RSEED got len=");
	put_u64((uint64_t)got);
	puts_serial(" ");
	hex_bytes(buf[1], 16);
	puts_serial(nonzero ? " nonzero=1\n" : " nonzero=0\n");
	for (;;)
		cpu_relax();
}
