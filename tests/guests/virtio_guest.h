/* Minimal virtio-mmio driver pieces shared by the virtioblk and virtiorng
 * test guests: register access, feature negotiation, one split queue in the
 * guest's own RAM (identity mapped), polling of the used ring. */
#ifndef SQB_VIRTIO_GUEST_H
#define SQB_VIRTIO_GUEST_H

#include "guest.h"

#define VM_MAGIC	0x000
#define VM_VERSION	0x004
#define VM_DEVICE_ID	0x008
#define VM_DEV_FEAT	0x010
#define VM_DEV_FEAT_SEL 0x014
#define VM_DRV_FEAT	0x020
#define VM_DRV_FEAT_SEL 0x024
#define VM_QUEUE_SEL	0x030
#define VM_QUEUE_MAX	0x034
#define VM_QUEUE_NUM	0x038
#define VM_QUEUE_READY	0x044
#define VM_QUEUE_NOTIFY 0x050
#define VM_INT_STATUS	0x060
#define VM_INT_ACK	0x064
#define VM_STATUS	0x070
#define VM_DESC_LO	0x080
#define VM_DESC_HI	0x084
#define VM_DRIVER_LO	0x090
#define VM_DRIVER_HI	0x094
#define VM_DEVICE_LO	0x0a0
#define VM_DEVICE_HI	0x0a4
#define VM_CONFIG	0x100

#define VQ_NUM 8

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_ring {
	struct vq_desc desc[VQ_NUM];
	volatile uint16_t avail[2 + VQ_NUM + 1] __attribute__((aligned(16)));
	volatile uint32_t used[1 + 2 * VQ_NUM + 1] __attribute__((aligned(16)));
	uint16_t avail_idx, used_idx;
	uint64_t base;
};

/* Every virtio test guest reports its steps the same way: "<TAG> <step>
 * PASS", or "<TAG> <step> FAIL <why> <hex value>", counted for its DONE line. */
static unsigned int vg_passed __attribute__((unused)), vg_failed __attribute__((unused));

static inline void vg_result(const char *tag, const char *step, int ok, const char *why,
			     uint64_t v)
{
	puts_serial(tag);
	puts_serial(" ");
	puts_serial(step);
	if (ok) {
		vg_passed++;
		puts_serial(" PASS\n");
		return;
	}
	vg_failed++;
	puts_serial(" FAIL ");
	puts_serial(why);
	puts_serial(" ");
	put_hex(v);
	puts_serial("\n");
}

/* The byte at pos of a seeded pattern (splitmix64), the one the host side
 * of the tests writes and checks too. */
static inline uint8_t vg_pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;

	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static inline uint32_t vm_rd(uint64_t base, uint32_t off)
{
	return *(volatile uint32_t *)(uintptr_t)(base + off);
}

static inline void vm_wr(uint64_t base, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(base + off) = v;
}

static inline void vq_barrier(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

/* Reset, negotiate VERSION_1 plus (offered & want); set up queue 0.
 * Returns the acked feature bits (bit 63 set on failure). */
static inline uint64_t vq_setup(struct vq_ring *r, uint64_t base, uint64_t want)
{
	uint64_t offered, acked;

	r->base = base;
	vm_wr(base, VM_STATUS, 0);
	vm_wr(base, VM_STATUS, 1);
	vm_wr(base, VM_STATUS, 3);
	vm_wr(base, VM_DEV_FEAT_SEL, 0);
	offered = vm_rd(base, VM_DEV_FEAT);
	vm_wr(base, VM_DEV_FEAT_SEL, 1);
	offered |= (uint64_t)vm_rd(base, VM_DEV_FEAT) << 32;
	if (!(offered & (1ull << 32)))
		return 1ull << 63;
	acked = offered & (want | 1ull << 32);
	vm_wr(base, VM_DRV_FEAT_SEL, 0);
	vm_wr(base, VM_DRV_FEAT, (uint32_t)acked);
	vm_wr(base, VM_DRV_FEAT_SEL, 1);
	vm_wr(base, VM_DRV_FEAT, (uint32_t)(acked >> 32));
	vm_wr(base, VM_STATUS, 3 | 8);
	if (!(vm_rd(base, VM_STATUS) & 8))
		return 1ull << 63;
	vm_wr(base, VM_QUEUE_SEL, 0);
	if (vm_rd(base, VM_QUEUE_MAX) < VQ_NUM)
		return 1ull << 63;
	memset(r->desc, 0, sizeof(r->desc));
	for (int i = 0; i < 2 + VQ_NUM + 1; i++)
		r->avail[i] = 0;
	for (int i = 0; i < 1 + 2 * VQ_NUM + 1; i++)
		r->used[i] = 0;
	r->avail_idx = r->used_idx = 0;
	vm_wr(base, VM_QUEUE_NUM, VQ_NUM);
	vm_wr(base, VM_DESC_LO, (uint32_t)(uintptr_t)r->desc);
	vm_wr(base, VM_DESC_HI, 0);
	vm_wr(base, VM_DRIVER_LO, (uint32_t)(uintptr_t)r->avail);
	vm_wr(base, VM_DRIVER_HI, 0);
	vm_wr(base, VM_DEVICE_LO, (uint32_t)(uintptr_t)r->used);
	vm_wr(base, VM_DEVICE_HI, 0);
	vm_wr(base, VM_QUEUE_READY, 1);
	if (vm_rd(base, VM_QUEUE_READY) != 1)
		return 1ull << 63;
	vm_wr(base, VM_STATUS, 3 | 8 | 4);
	return acked;
}

/* Publish the chain that starts at descriptor 0, notify, poll the used ring.
 * Returns the used length, or -1 on timeout or when the device needs reset. */
static inline int64_t vq_submit(struct vq_ring *r)
{
	uint16_t used;

	r->avail[2 + (r->avail_idx % VQ_NUM)] = 0;
	vq_barrier();
	r->avail_idx++;
	r->avail[1] = r->avail_idx;
	vq_barrier();
	vm_wr(r->base, VM_QUEUE_NOTIFY, 0);
	for (uint64_t spin = 0; spin < 200000000ull; spin++) {
		used = (uint16_t)(r->used[0] >> 16);
		if (used != r->used_idx) {
			uint32_t len;
			vq_barrier();
			len = r->used[1 + 2 * (r->used_idx % VQ_NUM) + 1];
			r->used_idx++;
			vm_wr(r->base, VM_INT_ACK, vm_rd(r->base, VM_INT_STATUS));
			return len;
		}
		if (vm_rd(r->base, VM_STATUS) & 0x40)
			return -1;
		cpu_relax();
	}
	return -1;
}

/* Copy a "name=value" word from the PVH command line into out. */
static inline int cmdline_word(uint32_t start_info, const char *name, char *out, int max)
{
	const uint32_t *si = (const uint32_t *)(uintptr_t)start_info;
	const char *p;

	if (!start_info || si[0] != 0x336ec578 || !si[6])
		return 0;
	for (p = (const char *)(uintptr_t)si[6]; *p; p++) {
		const char *n = name, *q = p;
		if (p != (const char *)(uintptr_t)si[6] && p[-1] != ' ')
			continue;
		while (*n && *q == *n) {
			n++;
			q++;
		}
		if (*n || *q != '=')
			continue;
		q++;
		int i = 0;
		while (*q && *q != ' ' && i < max - 1)
			out[i++] = *q++;
		out[i] = 0;
		return 1;
	}
	return 0;
}

static inline int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

#endif
