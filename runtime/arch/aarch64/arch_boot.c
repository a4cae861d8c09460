/* arm64 boot adapter (arch.h): loads a Linux arm64 `Image` (booting.rst:
 * the 64-byte header, magic "ARM\x64" at 56, text_offset, image_size) just
 * above system memory (the first 2 MiB of RAM: the VM Generation ID and the
 * VMClock page, written here), the initrd and the device tree (arch_fdt.c)
 * at the top, and sends the boot vCPU its entry (PC = image, x0 = DTB).  Secondary
 * vCPUs start powered off and are brought up by the guest through PSCI
 * CPU_ON.  Guest RAM is written through raw pointers before the guest
 * exists, as on x86 (arch/x86_64/arch_boot.c says why that is safe). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "arch_board.h"
#include "arch_entry.h"
#include "arch_fdt.h"
#include "log.h"
#include "vmm_priv.h"

#define IMAGE_HDR_SIZE	 64
#define IMAGE_MAGIC	 0x644d5241u /* "ARM\x64", little-endian at offset 56 */
#define ARM64_MAX_KERNEL (512ULL << 20)

static void bdiag(struct sqb_diag *d, const char *section, uint64_t off, const char *fmt,
		  const char *arg)
{
	if (!d)
		return;
	d->offset = off;
	snprintf(d->section, sizeof(d->section), "%s", section);
	snprintf(d->reason, sizeof(d->reason), fmt, arg);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Read a whole file into guest RAM at [dst, dst + cap); *len its size. */
static int load_file(const char *path, uint8_t *dst, uint64_t cap, uint64_t *len, const char *what,
		     struct sqb_diag *diag)
{
	struct stat st;
	uint64_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0) {
		err = -errno;
		bdiag(diag, what, UINT64_MAX, "cannot open %s", path);
		return err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		bdiag(diag, what, UINT64_MAX, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > cap) {
		bdiag(diag, what, (uint64_t)st.st_size, "%s does not fit in guest RAM", path);
		close(fd);
		return -SQB_ELIMIT;
	}
	while (done < (uint64_t)st.st_size) {
		ssize_t n =
		    pread(fd, dst + done, (size_t)((uint64_t)st.st_size - done), (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -SQB_ETRUNCATED;
			bdiag(diag, what, done, "short read of %s", path);
			break;
		}
		done += (uint64_t)n;
	}
	close(fd);
	*len = done;
	return err;
}

/* The VMGenID's ID and the VMClock page go into system memory before the
 * guest exists (the x86 loader does the same in its reserved area). */
static int write_sysmem(struct sqb_vm *vm, const struct sqb_mem_region *r, struct sqb_diag *diag)
{
	for (unsigned int i = 0; i < vm->bus.ndevs; i++) {
		struct sqb_dev *d = vm->bus.devs[i];
		struct sqb_dev_describe dd;
		const uint8_t *src;
		uint64_t len;

		if (!d->cls->ops->describe || d->cls->ops->describe(d, &dd) < 0)
			continue;
		if (dd.kind == SQB_DESC_VMGENID)
			src = dd.genid, len = SQB_VMGENID_LEN;
		else if (dd.kind == SQB_DESC_VMCLOCK)
			src = dd.page, len = dd.page_len;
		else
			continue;
		if (!src || dd.base < r->gpa || dd.len < len ||
		    dd.base + dd.len > r->gpa + SQB_ARM64_SYSTEM_MEM_SIZE) {
			bdiag(diag, "memory", dd.base, "%s outside system memory", d->id);
			return -EINVAL;
		}
		memset(r->host + (dd.base - r->gpa), 0, dd.len);
		memcpy(r->host + (dd.base - r->gpa), src, len);
	}
	return 0;
}

const char *sqb_arch_default_cmdline(void)
{
	return SQB_ARM64_DEFAULT_CMDLINE;
}

int sqb_arch_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg, struct sqb_diag *diag)
{
	struct sqb_mem_region *r = &vm->mem.regions[0];
	struct sqb_arch_entry entry = {0};
	struct sqb_arm64_fdt_in fin = {0};
	uint64_t text_offset, image_size, klen = 0, ilen = 0, fdt_gpa, initrd_gpa = 0, top;
	uint8_t *ram;
	int err;

	/* System memory takes the first 2 MiB, the DTB the last 2 MiB; RAM
	 * must hold them and a kernel. */
	if (vm->mem.nram != 1 || r->size < SQB_ARM64_SYSTEM_MEM_SIZE + 2 * SQB_ARM64_FDT_MAX) {
		bdiag(diag, "memory", UINT64_MAX, "%s", "arm64 needs at least 6 MiB of RAM");
		return -SQB_ELIMIT;
	}
	FORWARD_IF_ERROR(write_sysmem(vm, r, diag));
	/* from here on ram, top and every offset count from the kernel's base */
	ram = r->host + SQB_ARM64_SYSTEM_MEM_SIZE;
	fdt_gpa = r->gpa + r->size - SQB_ARM64_FDT_MAX;
	top = r->size - SQB_ARM64_SYSTEM_MEM_SIZE - SQB_ARM64_FDT_MAX;
	FORWARD_IF_ERROR(load_file(cfg->kernel_path, ram,
				   top < ARM64_MAX_KERNEL ? top : ARM64_MAX_KERNEL, &klen, "kernel",
				   diag));
	if (klen < IMAGE_HDR_SIZE || (uint32_t)rd64(ram + 56) != IMAGE_MAGIC) {
		bdiag(diag, "kernel", 56, "%s",
		      "not an arm64 Image (no \"ARM\\x64\" magic at offset 56; a gzip'd vmlinuz "
		      "must be unpacked)");
		return -SQB_EBADMAGIC;
	}
	text_offset = rd64(ram + 8);
	image_size = rd64(ram + 16);
	/* The protocol places the image text_offset bytes above a 2 MiB-aligned
	 * base; the base (RAM + 2 MiB) is, so move it up if text_offset != 0. */
	if (!image_size) /* pre-3.17 kernels leave it 0: the file is the image */
		image_size = klen;
	/* header fields are untrusted: bound each before adding them */
	if (text_offset % 4096 || text_offset >= SQB_ARM64_FDT_MAX || image_size > top ||
	    text_offset + (image_size > klen ? image_size : klen) > top) {
		bdiag(diag, "kernel", 8, "%s", "text_offset/image_size do not fit in guest RAM");
		return -SQB_ELIMIT;
	}
	if (text_offset) {
		memmove(ram + text_offset, ram, klen);
		memset(ram, 0, text_offset);
	}
	entry.pc = r->gpa + SQB_ARM64_SYSTEM_MEM_SIZE + text_offset;

	if (cfg->initrd_path) {
		uint64_t kend = text_offset + (image_size > klen ? image_size : klen);
		struct stat st;
		if (stat(cfg->initrd_path, &st) < 0) {
			err = -errno;
			bdiag(diag, "initrd", UINT64_MAX, "cannot stat %s", cfg->initrd_path);
			return err;
		}
		/* page-aligned, just below the DTB, above the kernel */
		if ((uint64_t)st.st_size > top - kend) {
			bdiag(diag, "initrd", UINT64_MAX, "%s does not fit above the kernel",
			      cfg->initrd_path);
			return -SQB_ELIMIT;
		}
		initrd_gpa = (top - (uint64_t)st.st_size) & ~0xfffULL;
		FORWARD_IF_ERROR(load_file(cfg->initrd_path, ram + initrd_gpa, top - initrd_gpa,
					   &ilen, "initrd", diag));
		initrd_gpa += r->gpa + SQB_ARM64_SYSTEM_MEM_SIZE;
	}

	sqb_arm64_guest_ram(r->gpa, r->size, &fin.ram_base, &fin.ram_size);
	fin.ncpus = vm->nvcpus;
	fin.cmdline = cfg->cmdline ? cfg->cmdline : SQB_ARM64_DEFAULT_CMDLINE;
	fin.initrd_start = initrd_gpa;
	fin.initrd_size = ilen;
	fin.bus = &vm->bus;
	err = sqb_arm64_fdt_build(&fin, r->host + (fdt_gpa - r->gpa), SQB_ARM64_FDT_MAX, diag);
	if (err < 0)
		return err;
	entry.x0 = fdt_gpa;
	return sqb_vcpu_set_entry(&vm->vcpus[0], &entry);
}
