/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry:
 * validate the bzImage setup header, load the protected-mode kernel, fill
 * boot_params (command line, initrd, e820, ACPI RSDP) and build identity
 * page tables so the vCPU can start at load address + 0x200 in long mode. */
#include <errno.h>

#include "x86boot_priv.h"

/* setup header offsets, in the file and in boot_params alike */
#define HDR_START	0x1f1
#define HDR_END_MAX	0x290 /* boot_params.edd_mbr_sig_buffer starts here */
#define OFF_SETUP_SECTS 0x1f1
#define OFF_BOOT_FLAG	0x1fe
#define OFF_JUMP	0x200
#define OFF_VERSION	0x206
#define OFF_LOADER	0x210
#define OFF_LOADFLAGS	0x211
#define OFF_CODE32	0x214
#define OFF_RD_IMAGE	0x218
#define OFF_RD_SIZE	0x21c
#define OFF_CMDLINE	0x228
#define OFF_RD_MAX	0x22c
#define OFF_KALIGN	0x230
#define OFF_RELOC	0x234
#define OFF_XLF		0x236
#define OFF_CMD_SIZE	0x238
#define OFF_PREF_ADDR	0x258
#define OFF_INIT_SIZE	0x260
#define HDR_NEEDED	0x268 /* through init_size/handover_offset (2.12) */

/* boot_params fields outside the setup header */
#define BP_ACPI_RSDP	0x070
#define BP_EXT_RD_IMAGE 0x0c0
#define BP_EXT_RD_SIZE	0x0c4
#define BP_EXT_CMDLINE	0x0c8
#define BP_E820_COUNT	0x1e8
#define BP_E820_TABLE	0x2d0

#define LOADED_HIGH   0x01
#define XLF_KERNEL_64 0x01
#define PROTO_MIN     0x020c

struct bz_hdr {
	uint64_t koff, ksize, need, pref, align;
	uint32_t cmdline_size, initrd_max;
	unsigned int hdr_end;
	int relocatable;
};

static int parse_hdr(const struct xb_image *img, struct bz_hdr *h, struct sqb_diag *diag)
{
	const uint8_t *d = img->data;
	unsigned int sects;
	uint16_t ver;

	if (img->size < HDR_NEEDED + 4)
		return xb_fail(diag, -SQB_ETRUNCATED, 0, "setup header", "file too short");
	if (xb_get16(d + OFF_BOOT_FLAG) != 0xaa55)
		return xb_fail(diag, -SQB_EBADMAGIC, OFF_BOOT_FLAG, "setup header",
			       "boot_flag is not 0xaa55");
	ver = xb_get16(d + OFF_VERSION);
	if (ver < PROTO_MIN)
		return xb_fail(diag, -SQB_EVERSION, OFF_VERSION, "setup header",
			       "boot protocol %u.%02u, need 2.12 for the 64-bit entry", ver >> 8,
			       ver & 0xff);
	if (!(xb_get16(d + OFF_XLF) & XLF_KERNEL_64) || !(d[OFF_LOADFLAGS] & LOADED_HIGH))
		return xb_fail(diag, -SQB_EUNSUPPORTED, OFF_XLF, "setup header",
			       "kernel has no 64-bit entry point (xloadflags 0x%x)",
			       xb_get16(d + OFF_XLF));
	h->hdr_end = 0x202u + d[0x201];
	if (h->hdr_end < HDR_NEEDED || h->hdr_end > HDR_END_MAX)
		return xb_fail(diag, -SQB_ECORRUPT, 0x201, "setup header",
			       "header end 0x%x outside 0x%x..0x%x", h->hdr_end, HDR_NEEDED,
			       HDR_END_MAX);
	sects = d[OFF_SETUP_SECTS] ? d[OFF_SETUP_SECTS] : 4;
	h->koff = (uint64_t)(sects + 1) * 512;
	if (h->koff < h->hdr_end || h->koff >= img->size)
		return xb_fail(diag, -SQB_ETRUNCATED, OFF_SETUP_SECTS, "setup header",
			       "%u setup sectors leave no protected-mode kernel", sects);
	h->ksize = img->size - h->koff;
	h->need = xb_get32(d + OFF_INIT_SIZE);
	if (h->need < h->ksize)
		h->need = h->ksize;
	h->pref = xb_get64(d + OFF_PREF_ADDR);
	h->align = xb_get32(d + OFF_KALIGN);
	h->relocatable = d[OFF_RELOC] != 0;
	h->cmdline_size = xb_get32(d + OFF_CMD_SIZE);
	h->initrd_max = xb_get32(d + OFF_RD_MAX);
	if (h->relocatable && (h->align < 0x1000 || (h->align & (h->align - 1))))
		return xb_fail(diag, -SQB_ECORRUPT, OFF_KALIGN, "setup header",
			       "kernel_alignment 0x%llx is not a power of two >= 4 KiB",
			       (unsigned long long)h->align);
	return 0;
}

/* pref_address if it fits, else (relocatable kernels) the lowest aligned
 * address above 1 MiB with room for init_size bytes. */
static int place_kernel(const struct sqb_x86boot_in *in, const struct bz_hdr *h, uint64_t *load,
			struct sqb_diag *diag)
{
	if (h->pref >= XB_HIMEM && xb_gpa(in, h->pref, h->need)) {
		*load = h->pref;
		return 0;
	}
	for (unsigned int i = 0; h->relocatable && i < in->nram; i++) {
		uint64_t lo = in->ram[i].gpa < XB_HIMEM ? XB_HIMEM : in->ram[i].gpa;
		uint64_t a = (lo + h->align - 1) & ~(h->align - 1);

		if (a + h->need < XB_4G && xb_gpa(in, a, h->need)) {
			*load = a;
			return 0;
		}
	}
	return xb_fail(diag, -ENOSPC, OFF_PREF_ADDR, "setup header",
		       "no room for the kernel's 0x%llx bytes (pref_address 0x%llx)",
		       (unsigned long long)h->need, (unsigned long long)h->pref);
}

static void write_page_tables(const struct sqb_x86boot_in *in)
{
	uint8_t *pml4 = xb_gpa(in, XB_PML4, 0x1000), *pdpt = xb_gpa(in, XB_PDPT, 0x1000);
	uint8_t *pd = xb_gpa(in, XB_PD, 0x4000);

	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	xb_put64(pml4, XB_PDPT | 0x3); /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		xb_put64(pdpt + 8 * i, (XB_PD + 0x1000 * i) | 0x3);
	for (uint64_t j = 0; j < 4 * 512; j++)
		xb_put64(pd + 8 * j, (j << 21) | 0x83); /* 2 MiB page, present, writable */
}

static void write_boot_params(const struct sqb_x86boot_in *in, const struct xb_image *img,
			      const struct bz_hdr *h, const struct sqb_x86boot_entry *out)
{
	struct xb_e820 map[XB_E820_MAX];
	unsigned int n = xb_build_e820(in, map, XB_E820_MAX);
	uint8_t *bp = xb_gpa(in, XB_ZERO_PAGE, 0x1000);

	memset(bp, 0, 0x1000);
	memcpy(bp + HDR_START, img->data + HDR_START, h->hdr_end - HDR_START);
	bp[OFF_LOADER] = 0xff; /* undefined boot loader */
	xb_put32(bp + OFF_CODE32, (uint32_t)out->kernel_start);
	xb_put32(bp + OFF_CMDLINE, (uint32_t)XB_CMDLINE);
	xb_put32(bp + OFF_RD_IMAGE, (uint32_t)out->initrd_start);
	xb_put32(bp + OFF_RD_SIZE, (uint32_t)out->initrd_size);
	xb_put32(bp + BP_EXT_RD_IMAGE, (uint32_t)(out->initrd_start >> 32));
	xb_put32(bp + BP_EXT_RD_SIZE, (uint32_t)(out->initrd_size >> 32));
	xb_put32(bp + BP_EXT_CMDLINE, 0);
	xb_put64(bp + BP_ACPI_RSDP, out->acpi_rsdp);
	bp[BP_E820_COUNT] = (uint8_t)n;
	for (unsigned int i = 0; i < n; i++) {
		xb_put64(bp + BP_E820_TABLE + 20 * i, map[i].addr);
		xb_put64(bp + BP_E820_TABLE + 20 * i + 8, map[i].size);
		xb_put32(bp + BP_E820_TABLE + 20 * i + 16, map[i].type);
	}
}

int xb_load_bzimage(const struct sqb_x86boot_in *in, const struct xb_image *img,
		    struct sqb_x86boot_entry *out, struct sqb_diag *diag)
{
	struct bz_hdr h = {0};
	uint64_t load = 0, limit;
	size_t cmdlen = in->cmdline ? strlen(in->cmdline) : 0;

	FORWARD_IF_ERROR(parse_hdr(img, &h, diag));
	if (cmdlen > h.cmdline_size)
		return xb_fail(diag, -SQB_ELIMIT, OFF_CMD_SIZE, "cmdline",
			       "command line of %zu bytes exceeds the kernel's cmdline_size %u",
			       cmdlen, h.cmdline_size);
	FORWARD_IF_ERROR(place_kernel(in, &h, &load, diag));
	memcpy(xb_gpa(in, load, h.ksize), img->data + h.koff, h.ksize);
	out->kernel_start = load;
	out->kernel_end = load + h.need;
	limit = (uint64_t)h.initrd_max + 1;
	if (limit > XB_4G)
		limit = XB_4G;
	FORWARD_IF_ERROR(xb_load_initrd(in, limit, load, load + h.need, out, diag));
	write_boot_params(in, img, &h, out);
	write_page_tables(in);
	out->mode = SQB_X86BOOT_LONG64;
	out->rip = load + 0x200;
	out->rsi = XB_ZERO_PAGE;
	out->rbx = 0;
	out->cr3 = XB_PML4;
	return 0;
}
