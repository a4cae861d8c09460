/* virtio-rng test guest: a minimal virtio-mmio driver for the device at
 * 0xd0001000 (device id 4); reads 64 bytes twice and checks that neither
 * read is all zero and that the two differ.  One line per step. */
#include "guest.h"
#include "virtio_guest.h"

#define RNG_BASE 0xd0001000ull

static struct vq_ring ring __attribute__((aligned(4096)));
static uint8_t buf[2][64] __attribute__((aligned(64)));
static unsigned int passed, failed;

static void result(const char *step, int ok, const char *why, uint64_t v)
{
	puts_serial("VRNG ");
	puts_serial(step);
	if (ok) {
		passed++;
		puts_serial(" PASS\n");
		return;
	}
	failed++;
	puts_serial(" FAIL ");
	puts_serial(why);
	puts_serial(" ");
	put_hex(v);
	puts_serial("\n");
}

void guest_main(uint32_t start_info)
{
	int64_t len;
	int nonzero[2] = {0, 0}, differ = 0;

	cmdline_init(start_info);
	if (vm_rd(RNG_BASE, VM_MAGIC) != 0x74726976 || vm_rd(RNG_BASE, VM_VERSION) != 2 ||
	    vm_rd(RNG_BASE, VM_DEVICE_ID) != 4) {
		result("probe", 0, "no virtio-rng at 0xd0001000, device id",
		       vm_rd(RNG_BASE, VM_DEVICE_ID));
		goto done;
	}
	result("probe", 1, "", 0);
	if (vq_setup(&ring, RNG_BASE, 0) >> 63) {
		result("init", 0, "negotiation or queue setup, status", vm_rd(RNG_BASE, VM_STATUS));
		goto done;
	}
	result("init", 1, "", 0);
	for (int k = 0; k < 2; k++) {
		ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)buf[k], 64, 2, 0};
		len = vq_submit(&ring);
		result(k ? "read2" : "read1", len == 64, "used length", (uint64_t)len);
		for (int i = 0; i < 64; i++)
			nonzero[k] |= buf[k][i];
	}
	for (int i = 0; i < 64; i++)
		differ |= buf[0][i] != buf[1][i];
	result("nonzero", nonzero[0] && nonzero[1], "a read was all zero", 0);
	result("differ", differ, "both reads were equal", 0);
done:
	puts_serial("VRNG DONE pass=");
	put_u64(passed);
	puts_serial(" fail=");
	put_u64(failed);
	puts_serial("\n");
	guest_reset();
}
