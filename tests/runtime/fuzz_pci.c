/* Fuzz target for the PCI transport (runtime/dev_pci.c and
 * runtime/virtio/virtio_pci.c) through the rig of pci_rig.h: a guest's
 * configuration accesses (0xcf8/0xcfc by byte lane, the ECAM at any offset
 * and size), BAR0 accesses of 1..8 bytes anywhere (common configuration,
 * ISR, notify, MSI-X table and PBA), ring buffers the device then fills,
 * MSI-X messages the device raises, and the two snapshot records a load
 * takes: a virtio-pci function's ([F-135]) and the CONFIG_ADDRESS latch
 * ([F-136]) with hostile bytes.  Whatever loads must save and load again
 * to the same bytes (no field trusted and then changed).
 *
 * Input: byte 0 flags (1: a [F-135] record follows as u16 length + bytes;
 * 2: an [F-136] record of 8 bytes follows; 4: bring MSI-X and the device
 * up first), then operations to the end (see run_op).  Built as a
 * libFuzzer target with -DSQB_LIBFUZZER; otherwise main() replays a corpus
 * folder with a fixed-seed mutation pass (tests/virtio/fuzz_replay.c), and
 * `fuzz_pci_replay --seeds DIR` writes the seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_replay.h"
#include "pci_rig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

/* Offsets in BAR0 worth aiming at: region starts, ends and the table. */
static const uint32_t bar_spots[] = {0x0,    0x10,    0x14,    0x16,	0x1a,	 0x1c,	  0x20,
				     0x30,   0x36,    0x38,    0x2000,	0x4000,	 0x4ffc,  0x6000,
				     0x6004, 0x6ffe,  0x7ffc,  0x8000,	0x800c,	 0x8010,  0x801c,
				     0x8020, 0x47ff8, 0x48000, 0x48004, 0x7fff8, 0x7fffc, 0x7ffff};

/* The record a save writes must load, and save again to the same bytes. */
static void round_trip(struct pr_rig *r, struct sqb_dev *d, unsigned int version)
{
	uint8_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	const char *field = NULL;
	int err;

	if (sqb_dev_save(d, &a, &na))
		abort();
	err = sqb_dev_load(d, version, a, na, &field);
	if (err) {
		fprintf(stderr, "fuzz_pci: %s: own record refused: %d at %s\n", d->id, err,
			field ? field : "?");
		abort();
	}
	if (sqb_dev_save(d, &b, &nb) || na != nb || memcmp(a, b, na)) {
		fprintf(stderr, "fuzz_pci: %s: record changed by a load\n", d->id);
		abort();
	}
	free(a);
	free(b);
	(void)r;
}

static void run_op(struct pr_rig *r, struct vt_drv *drv, struct in *in)
{
	unsigned int op = (unsigned int)take(in, 1), b;
	uint8_t buf[8];
	uint64_t off, v;

	switch (op % 9) {
	case 0: /* CONFIG_ADDRESS, any width at any of its ports */
		b = (unsigned int)take(in, 1);
		v = take(in, 4);
		memcpy(buf, &v, 4);
		pr_pio(r, (uint16_t)(0xcf8 + (b & 3)), buf, 1u << ((b >> 2) & 3) % 3, (b >> 4) & 1);
		break;
	case 1: /* CONFIG_DATA by byte lane */
		b = (unsigned int)take(in, 1);
		v = take(in, 4);
		memcpy(buf, &v, 4);
		pr_pio(r, (uint16_t)(0xcfc + (b & 3)), buf, 1u << ((b >> 2) & 3) % 3, (b >> 4) & 1);
		break;
	case 2: /* ECAM: any offset of the 1 MiB, 1..8 bytes */
		off = take(in, 4) & 0xfffff;
		b = (unsigned int)take(in, 1);
		v = take(in, 8);
		memcpy(buf, &v, 8);
		pr_mmio(r, SQB_ARCH_PCI_ECAM_BASE + off, buf, 1 + (b & 7), (b >> 3) & 1);
		break;
	case 3: /* the function's own configuration: where the caps are */
		off = take(in, 1);
		b = (unsigned int)take(in, 1);
		v = take(in, 4);
		memcpy(buf, &v, 4);
		pr_mmio(r, pr_ecam(1, 0, (unsigned int)off), buf, 1u << (b & 3) % 3, (b >> 2) & 1);
		break;
	case 4: /* BAR0: a spot or anywhere, 1..8 bytes */
		b = (unsigned int)take(in, 1);
		off = b & 0x80
			  ? bar_spots[(b & 0x7f) % (sizeof(bar_spots) / sizeof(bar_spots[0]))] +
				(take(in, 1) & 0xf)
			  : take(in, 4) % SQB_VIO_PCI_BAR_SIZE;
		b = (unsigned int)take(in, 1);
		v = take(in, 8);
		memcpy(buf, &v, 8);
		pr_mmio(r, pr_bar(1) + off, buf, 1 + (b & 7), (b >> 3) & 1);
		break;
	case 5: { /* the driver posts a buffer (chains of 1..3, any length) */
		struct vt_seg s[3];
		unsigned int n = 1 + (unsigned int)take(in, 1) % 3;

		for (unsigned int i = 0; i < n; i++)
			s[i] = (struct vt_seg){VT_DATA + 0x100 * i, (uint32_t)take(in, 2), true};
		vt_add(drv, s, n);
		break;
	}
	case 6: /* the guest scribbles on its rings */
		off = take(in, 2) % 0x4000;
		v = take(in, 1);
		*vt_ptr(&r->env, VT_DESC + off) = (uint8_t)v;
		break;
	case 7: /* the device raises a vector (its event loop) */
		r->fn[0].slot.msi(r->fn[0].slot.msi_arg, (uint16_t)take(in, 2));
		break;
	default: /* a snapshot of both records, loaded back */
		round_trip(r, r->fn[0].bus_dev, SQB_VIO_STATE_VERSION);
		round_trip(r, sqb_bus_by_id(&r->bus, "pci-cfg-io"), 1);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pr_rig r;
	struct vt_drv drv;
	struct in in = {data, size};
	unsigned int flags;
	const char *field;

	if (pr_init(&r, 1) < 0)
		abort();
	drv = (struct vt_drv){.e = &r.env, .dev = r.fn[0].dev, .num = 16};
	flags = (unsigned int)take(&in, 1);
	if (flags & 4) {
		pr_enable_msix(&r, 1);
		pr_virtio_init(&r, 1, 16, 0, 1);
	}
	if (flags & 1) {
		size_t n = (size_t)take(&in, 2);

		n = n < in.n ? n : in.n;
		if (!sqb_dev_load(r.fn[0].bus_dev, SQB_VIO_STATE_VERSION, in.p, n, &field))
			round_trip(&r, r.fn[0].bus_dev, SQB_VIO_STATE_VERSION);
		in.p += n;
		in.n -= n;
	}
	if (flags & 2) {
		size_t n = in.n < 8 ? in.n : 8;
		struct sqb_dev *io = sqb_bus_by_id(&r.bus, "pci-cfg-io");

		if (!sqb_dev_load(io, 1, in.p, n, &field))
			round_trip(&r, io, 1);
		in.p += n;
		in.n -= n;
	}
	while (in.n)
		run_op(&r, &drv, &in);
	round_trip(&r, r.fn[0].bus_dev, SQB_VIO_STATE_VERSION);
	pr_fini(&r);
	return 0;
}

#ifndef SQB_LIBFUZZER
static size_t aim(size_t n)
{
	/* the flags and, in a record seed, the PCI part's header and vectors */
	return n > 1 ? (size_t)(vfz_next() % (n < 400 ? n : 400)) : 0;
}

struct seed {
	uint8_t b[4096];
	size_t n;
};

static void put(struct seed *s, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes && s->n < sizeof(s->b); i++)
		s->b[s->n++] = (uint8_t)(v >> (8 * i));
}

static int write_seed(const char *dir, const char *name, const struct seed *s)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f))
		return 1;
	return 0;
}

/* One BAR0 access at offset off (through the spot-free form). */
static void bar_op(struct seed *s, uint32_t off, unsigned int size, int wr, uint64_t v)
{
	put(s, 4, 1);
	put(s, 0, 1); /* b < 0x80: a 4-byte offset follows */
	put(s, off, 4);
	put(s, (size - 1) | (unsigned int)wr << 3, 1);
	put(s, v, 8);
}

static void cfg_op(struct seed *s, unsigned int reg, unsigned int size, int wr, uint32_t v)
{
	put(s, 3, 1);
	put(s, reg, 1);
	put(s, (size == 4 ? 2 : size == 2 ? 1 : 0) | (unsigned int)wr << 2, 1);
	put(s, v, 4);
}

static int write_seeds(const char *dir)
{
	struct seed s = {0};
	struct pr_rig r;
	uint8_t *st = NULL;
	size_t n = 0;

	/* enumeration through both mechanisms, BAR sizing, the caps */
	put(&s, 0, 1);
	for (unsigned int reg = 0; reg < 0x100; reg += 4) {
		put(&s, 0, 1);
		put(&s, 0x18, 1); /* a DWORD write at 0xcf8 */
		put(&s, 0x80000800u | reg, 4);
		put(&s, 1, 1);
		put(&s, 0x08, 1);
		put(&s, 0, 4);
	}
	cfg_op(&s, 0x10, 4, 1, 0xffffffff);
	cfg_op(&s, 0x14, 4, 1, 0xffffffff);
	cfg_op(&s, 0x10, 4, 0, 0);
	cfg_op(&s, 0x10, 4, 1, 0);
	cfg_op(&s, 0x14, 4, 1, 0x40);
	cfg_op(&s, 0x04, 2, 1, 2);
	if (write_seed(dir, "enumerate", &s))
		return 1;
	/* a driver: MSI-X on, the queue up, buffers, notifies, snapshots */
	s.n = 0;
	put(&s, 4, 1);
	for (unsigned int i = 0; i < 4; i++) {
		put(&s, 5, 1);
		put(&s, i % 3, 1);
		for (unsigned int k = 0; k <= i % 3; k++)
			put(&s, 0x40, 2);
		bar_op(&s, SQB_VIO_PCI_NOTIFY_OFF, 2, 1, 0);
		bar_op(&s, 0x2000, 1, 0, 0);
		bar_op(&s, SQB_VIO_PCI_MSIX_TABLE + 16 + 12, 4, 1, i & 1);
		put(&s, 7, 1);
		put(&s, i, 2);
		put(&s, 8, 1);
	}
	bar_op(&s, SQB_VIO_PCI_MSIX_PBA, 8, 0, 0);
	if (write_seed(dir, "driver", &s))
		return 1;
	/* the configuration access window into the table, the notify, the PBA */
	s.n = 0;
	put(&s, 4, 1);
	cfg_op(&s, 0x88, 1, 1, 0);
	cfg_op(&s, 0x8c, 4, 1, SQB_VIO_PCI_MSIX_TABLE + 8);
	cfg_op(&s, 0x90, 4, 1, 4);
	cfg_op(&s, 0x94, 4, 1, 0x77);
	cfg_op(&s, 0x94, 4, 0, 0);
	cfg_op(&s, 0x8c, 4, 1, SQB_VIO_PCI_NOTIFY_OFF);
	cfg_op(&s, 0x90, 4, 1, 2);
	put(&s, 5, 1);
	put(&s, 0, 1);
	put(&s, 0x10, 2);
	cfg_op(&s, 0x94, 2, 1, 0);
	cfg_op(&s, 0x8c, 4, 1, SQB_VIO_PCI_MSIX_PBA);
	cfg_op(&s, 0x90, 4, 1, 4);
	cfg_op(&s, 0x94, 4, 0, 0);
	cfg_op(&s, 0x9a, 2, 1, 0xc000);
	put(&s, 8, 1);
	if (write_seed(dir, "window", &s))
		return 1;
	/* the records of a running function: [F-135], then [F-136] */
	if (pr_init(&r, 1) < 0)
		return 1;
	pr_enable_msix(&r, 1);
	pr_virtio_init(&r, 1, 16, 0, 1);
	if (sqb_dev_save(r.fn[0].bus_dev, &st, &n))
		return 1;
	pr_fini(&r);
	s.n = 0;
	put(&s, 1 | 2, 1);
	put(&s, n, 2);
	memcpy(s.b + s.n, st, n);
	s.n += n;
	free(st);
	put(&s, 0x80000800u | 0x2c, 4);
	put(&s, 0, 4);
	put(&s, 1, 1);
	put(&s, 0x08, 1);
	put(&s, 0, 4);
	bar_op(&s, 0x10, 2, 0, 0);
	bar_op(&s, SQB_VIO_PCI_NOTIFY_OFF, 2, 1, 0);
	put(&s, 8, 1);
	return write_seed(dir, "records", &s);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--seeds"))
		return write_seeds(argv[2]);
	return vfz_replay_main(argc, argv, "fuzz_pci", aim);
}
#endif
