/* sqb_x86boot_load(): validate the VMM's RAM description, read the kernel
 * image, write the shared low-memory pieces (GDT, command line, ACPI tables)
 * and hand over to the PVH-ELF or bzImage loader.  Layout: x86boot.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "x86boot_priv.h"

#define XB_IMAGE_MAX (1ULL << 30) /* no kernel image is anywhere near 1 GiB */
#define XB_LOW_CLEAR (XB_CMDLINE + SQB_X86BOOT_CMDLINE_MAX + 1)

const char *sqb_x86boot_default_cmdline(void)
{
	return SQB_X86BOOT_DEFAULT_CMDLINE;
}

int xb_fail(struct sqb_diag *diag, int err, uint64_t off, const char *section, const char *fmt, ...)
{
	va_list ap;

	if (diag) {
		diag->offset = off;
		snprintf(diag->section, sizeof(diag->section), "%s", section);
		va_start(ap, fmt);
		vsnprintf(diag->reason, sizeof(diag->reason), fmt, ap);
		va_end(ap);
	}
	sqb_debug("x86boot: %s: %d", section, err);
	return err;
}

void *xb_gpa(const struct sqb_x86boot_in *in, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < in->nram; i++) {
		const struct sqb_x86boot_mem *r = &in->ram[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return (uint8_t *)r->host + (gpa - r->gpa);
	}
	return NULL;
}

static int add_e820(struct xb_e820 *out, unsigned int *n, unsigned int max, uint64_t a, uint64_t b,
		    uint32_t type)
{
	if (b <= a)
		return 0;
	if (*n >= max)
		return -1;
	out[*n] = (struct xb_e820){.addr = a, .size = b - a, .type = type};
	(*n)++;
	return 0;
}

unsigned int xb_build_e820(const struct sqb_x86boot_in *in, struct xb_e820 *out, unsigned int max)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < in->nram; i++) {
		uint64_t a = in->ram[i].gpa, b = a + in->ram[i].size;

		/* RAM minus the legacy hole [EBDA, 1 MiB); the ACPI part of the
		 * hole is reported reserved so the kernel keeps its hands off. */
		if (a < XB_EBDA)
			add_e820(out, &n, max, a, b < XB_EBDA ? b : XB_EBDA, XB_E820_RAM);
		if (a < XB_ACPI_END && b > XB_ACPI_BASE)
			add_e820(out, &n, max, a > XB_ACPI_BASE ? a : XB_ACPI_BASE,
				 b < XB_ACPI_END ? b : XB_ACPI_END, XB_E820_RESERVED);
		if (b > XB_HIMEM)
			add_e820(out, &n, max, a > XB_HIMEM ? a : XB_HIMEM, b, XB_E820_RAM);
	}
	/* a PCI root's ECAM, reserved (Linux uses MMCONFIG only when it is) */
	for (unsigned int i = 0; in->devs && i < in->ndevs; i++)
		if (in->devs[i].kind == SQB_X86BOOT_DEV_PCI_ROOT)
			add_e820(out, &n, max, in->devs[i].mmio_base,
				 in->devs[i].mmio_base + in->devs[i].mmio_size, XB_E820_RESERVED);
	/* in address order */
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && out[j - 1].addr > out[j].addr; j--) {
			struct xb_e820 t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static int check_in(const struct sqb_x86boot_in *in, struct sqb_diag *diag)
{
	if (!in->kernel_path)
		return xb_fail(diag, -EINVAL, UINT64_MAX, "config", "no kernel image path");
	if (!in->ram || in->nram == 0 || in->nram > XB_E820_MAX / 2)
		return xb_fail(diag, -EINVAL, UINT64_MAX, "config", "need 1..%d RAM ranges",
			       XB_E820_MAX / 2);
	for (unsigned int i = 0; i < in->nram; i++) {
		const struct sqb_x86boot_mem *r = &in->ram[i];

		if (!r->host || r->size == 0 || r->gpa + r->size < r->gpa ||
		    (i > 0 && r->gpa < in->ram[i - 1].gpa + in->ram[i - 1].size))
			return xb_fail(diag, -EINVAL, UINT64_MAX, "config",
				       "RAM range %u is empty, wraps or is out of order", i);
	}
	if (in->ram[0].gpa != 0 || in->ram[0].size < XB_LOW_RAM_NEEDED)
		return xb_fail(diag, -EINVAL, UINT64_MAX, "config",
			       "the first RAM range must start at 0 and hold at least 2 MiB");
	if (in->ncpus == 0 || in->ncpus > SQB_X86BOOT_MAX_CPUS)
		return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "config",
			       "vCPU count %u not in 1..%d", in->ncpus, SQB_X86BOOT_MAX_CPUS);
	if (in->nmmio > SQB_X86BOOT_MAX_MMIO || (in->nmmio && !in->mmio))
		return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "config",
			       "virtio-mmio device count %u over %d", in->nmmio,
			       SQB_X86BOOT_MAX_MMIO);
	if (in->ndevs > SQB_X86BOOT_MAX_DEVS || (in->ndevs && !in->devs))
		return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "config",
			       "ACPI device count %u over %d", in->ndevs, SQB_X86BOOT_MAX_DEVS);
	for (unsigned int i = 0; i < in->ndevs; i++) {
		const struct sqb_x86boot_dev *d = &in->devs[i];

		if (d->kind == SQB_X86BOOT_DEV_VMGENID || d->kind == SQB_X86BOOT_DEV_VMCLOCK)
			continue; /* their names are fixed; xb_acpi_build checks the rest */
		if (d->kind == SQB_X86BOOT_DEV_PCI_ROOT) { /* PC00: an ECAM of whole buses */
			if (!d->mmio_size || (d->mmio_size & 0xfffff) ||
			    d->mmio_size > (256u << 20) ||
			    d->mmio_base + d->mmio_size > (1ULL << 32) || !d->win32_size ||
			    !d->win64_size)
				return xb_fail(diag, -EINVAL, UINT64_MAX, "config",
					       "PCI root %u: ECAM or windows cannot be described",
					       i);
			continue;
		}
		if (!d->hid || strlen(d->name) != 4 ||
		    (d->hid_eisa ? strlen(d->hid) != 7 : strlen(d->hid) > 8) ||
		    (d->irq_kind == SQB_X86BOOT_IRQ_ISA && d->irq > 15) ||
		    (d->mmio_size && d->mmio_base + d->mmio_size > (1ULL << 32)))
			return xb_fail(diag, -EINVAL, UINT64_MAX, "config",
				       "ACPI device %u (%s) cannot be described", i,
				       d->hid ? d->hid : "no _HID");
	}
	if (in->cmdline && strlen(in->cmdline) > SQB_X86BOOT_CMDLINE_MAX)
		return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "cmdline",
			       "kernel command line longer than %d bytes", SQB_X86BOOT_CMDLINE_MAX);
	return 0;
}

static int read_image(struct xb_image *img, const char *path, struct sqb_diag *diag)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd, err;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block */
	if (fd < 0)
		return xb_fail(diag, -errno, UINT64_MAX, "kernel", "cannot open %s", path);
	if (fstat(fd, &st) < 0) {
		err = xb_fail(diag, -errno, UINT64_MAX, "kernel", "cannot stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 64 || (uint64_t)st.st_size > XB_IMAGE_MAX) {
		err = xb_fail(diag, S_ISREG(st.st_mode) ? -SQB_ETRUNCATED : -EINVAL, UINT64_MAX,
			      "kernel", "%s is not a regular file of 64 B..1 GiB", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	err = sqb_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (err < 0) {
		xb_fail(diag, err, UINT64_MAX, "kernel", "cannot read %s", path);
		free(buf);
		goto out;
	}
	img->data = buf;
	img->size = (uint64_t)st.st_size;
	img->path = path;
out:
	close(fd);
	return err;
}

int xb_load_initrd(const struct sqb_x86boot_in *in, uint64_t limit, uint64_t avoid_lo,
		   uint64_t avoid_hi, struct sqb_x86boot_entry *entry, struct sqb_diag *diag)
{
	struct stat st;
	uint64_t size, best = 0;
	void *dst;
	int fd, err = 0;

	entry->initrd_start = entry->initrd_size = 0;
	if (!in->initrd_path)
		return 0;
	fd = open(in->initrd_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return xb_fail(diag, -errno, UINT64_MAX, "initrd", "cannot open %s",
			       in->initrd_path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		err = xb_fail(diag, -EINVAL, UINT64_MAX, "initrd", "%s is not a non-empty file",
			      in->initrd_path);
		goto out;
	}
	size = (uint64_t)st.st_size;
	/* Highest 4 KiB-aligned spot in any RAM window above 1 MiB, below limit,
	 * outside the kernel's [avoid_lo, avoid_hi). */
	for (unsigned int i = 0; i < in->nram; i++) {
		uint64_t lo = in->ram[i].gpa, hi = lo + in->ram[i].size;
		uint64_t win[2][2] = {{lo, hi < avoid_lo ? hi : avoid_lo},
				      {lo > avoid_hi ? lo : avoid_hi, hi}};

		for (int w = 0; w < 2; w++) {
			uint64_t a = win[w][0] < XB_HIMEM ? XB_HIMEM : win[w][0];
			uint64_t b = win[w][1] < limit ? win[w][1] : limit;
			uint64_t start;

			if (b <= a || b - a < size)
				continue;
			start = (b - size) & ~0xfffULL;
			if (start >= a && start > best)
				best = start;
		}
	}
	if (!best) {
		err = xb_fail(diag, -ENOSPC, UINT64_MAX, "initrd",
			      "no room for a %llu-byte initrd below 0x%llx",
			      (unsigned long long)size, (unsigned long long)limit);
		goto out;
	}
	dst = xb_gpa(in, best, size);
	err = sqb_pread_full(fd, dst, (size_t)size, 0);
	if (err < 0) {
		xb_fail(diag, err, UINT64_MAX, "initrd", "cannot read %s", in->initrd_path);
		goto out;
	}
	entry->initrd_start = best;
	entry->initrd_size = size;
out:
	close(fd);
	return err;
}

static void write_gdt(const struct sqb_x86boot_in *in, struct sqb_x86boot_entry *out)
{
	static const uint64_t gdt[] = {
	    0,			   /* null */
	    0x00af9b000000ffffULL, /* 0x08: 64-bit code, present, DPL 0 */
	    0x00cf93000000ffffULL, /* 0x10: flat 4 GiB data, read/write */
	    0x00cf9b000000ffffULL, /* 0x18: flat 4 GiB 32-bit code */
	};
	uint8_t *p = xb_gpa(in, XB_GDT_ADDR, sizeof(gdt));

	for (unsigned int i = 0; i < sizeof(gdt) / sizeof(gdt[0]); i++)
		xb_put64(p + 8 * i, gdt[i]);
	out->gdt_base = XB_GDT_ADDR;
	out->gdt_limit = sizeof(gdt) - 1;
}

int sqb_x86boot_load(const struct sqb_x86boot_in *in, struct sqb_x86boot_entry *out,
		     struct sqb_diag *diag)
{
	struct xb_image img = {0};
	const char *cmd;
	int err;

	if (!in || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	FORWARD_IF_ERROR(check_in(in, diag));
	FORWARD_IF_ERROR(read_image(&img, in->kernel_path, diag));

	/* Clean slate for the structures the guest reads before it runs. */
	memset(xb_gpa(in, 0, XB_LOW_CLEAR), 0, XB_LOW_CLEAR);
	write_gdt(in, out);
	cmd = in->cmdline ? in->cmdline : "";
	memcpy(xb_gpa(in, XB_CMDLINE, 1), cmd, strlen(cmd) + 1);
	err = xb_acpi_build(in, &out->acpi_rsdp, diag);
	if (err < 0)
		goto out;
	out->rsp = XB_STACK_TOP;
	if (img.data[0] == 0x7f && img.data[1] == 'E' && img.data[2] == 'L' && img.data[3] == 'F')
		err = xb_load_pvh(in, &img, out, diag);
	else if (img.size > 0x206 && !memcmp(img.data + 0x202, "HdrS", 4))
		err = xb_load_bzimage(in, &img, out, diag);
	else
		err = xb_fail(diag, -SQB_EBADMAGIC, 0, "kernel",
			      "%s is neither an ELF (PVH) nor a bzImage", in->kernel_path);
out:
	free((void *)img.data);
	return err;
}
