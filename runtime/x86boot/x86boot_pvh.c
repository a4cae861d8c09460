/* PVH boot of an ELF64 image (Linux vmlinux with CONFIG_PVH, squib's test
 * guests): validate the ELF headers, load PT_LOAD segments at p_paddr, find
 * XEN_ELFNOTE_PHYS32_ENTRY and build hvm_start_info (Xen's PVH ABI,
 * xen/include/public/arch-x86/hvm/start_info.h, version 1).  The image is
 * untrusted: every offset and size is bounded before use. */
#include <errno.h>

#include "x86boot_priv.h"

#define EHDR_SIZE		 64
#define PHDR_SIZE		 56
#define SHDR_SIZE		 64
#define PHNUM_MAX		 64
#define SHNUM_MAX		 4096
#define PT_LOAD			 1
#define PT_NOTE			 4
#define SHT_NOTE		 7
#define ET_EXEC			 2
#define ET_DYN			 3
#define EM_X86_64		 62
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define HVM_START_MAGIC 0x336ec578u
#define SI_SIZE		56
#define SI_MODLIST	(XB_START_INFO + 0x40)
#define SI_MEMMAP	(XB_START_INFO + 0x80)
#define MODLIST_SIZE	32
#define MEMMAP_SIZE	24

struct pvh_seg {
	uint64_t off, paddr, filesz, memsz;
};

/* Walk the notes in [off, off+len) of the image; on the PHYS32 entry note
 * set *entry and return 1; 0 if absent; negative on a malformed note. */
static int scan_notes(const struct xb_image *img, uint64_t off, uint64_t len, uint64_t *entry,
		      struct sqb_diag *diag)
{
	uint64_t pos = off, end = off + len;

	while (end - pos >= 12) {
		const uint8_t *n = img->data + pos;
		uint32_t namesz = xb_get32(n), descsz = xb_get32(n + 4), type = xb_get32(n + 8);
		uint64_t name_pad = ((uint64_t)namesz + 3) & ~3ULL;
		uint64_t desc_pad = ((uint64_t)descsz + 3) & ~3ULL;
		const uint8_t *desc = n + 12 + name_pad;

		if (name_pad > end - pos - 12 || desc_pad > end - pos - 12 - name_pad)
			return xb_fail(diag, -SQB_ETRUNCATED, pos, "ELF note",
				       "note (name %u, desc %u bytes) runs past its segment",
				       namesz, descsz);
		if (namesz == 4 && !memcmp(n + 12, "Xen", 4) && type == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (descsz == 4)
				*entry = xb_get32(desc);
			else if (descsz == 8)
				*entry = xb_get64(desc);
			else
				return xb_fail(diag, -SQB_ECORRUPT, pos, "ELF note",
					       "PHYS32_ENTRY note has a %u-byte value", descsz);
			return 1;
		}
		pos += 12 + name_pad + desc_pad;
	}
	return 0;
}

static int check_ehdr(const struct xb_image *img, struct sqb_diag *diag)
{
	const uint8_t *e = img->data;
	uint64_t phoff, phnum;

	if (img->size < EHDR_SIZE)
		return xb_fail(diag, -SQB_ETRUNCATED, 0, "ELF header",
			       "file shorter than 64 bytes");
	phoff = xb_get64(e + 32);
	phnum = xb_get16(e + 56);
	if (e[4] != 2 || e[5] != 1 || e[6] != 1)
		return xb_fail(diag, -SQB_EUNSUPPORTED, 4, "ELF header",
			       "not a little-endian ELF64 version 1 file");
	if ((xb_get16(e + 16) != ET_EXEC && xb_get16(e + 16) != ET_DYN) ||
	    xb_get16(e + 18) != EM_X86_64 || xb_get32(e + 20) != 1)
		return xb_fail(diag, -SQB_EUNSUPPORTED, 16, "ELF header",
			       "not an x86-64 executable (type %u, machine %u)", xb_get16(e + 16),
			       xb_get16(e + 18));
	if (xb_get16(e + 52) != EHDR_SIZE || xb_get16(e + 54) != PHDR_SIZE)
		return xb_fail(diag, -SQB_ECORRUPT, 52, "ELF header",
			       "header size %u / phdr size %u, expected 64 / 56", xb_get16(e + 52),
			       xb_get16(e + 54));
	if (phnum == 0 || phnum > PHNUM_MAX)
		return xb_fail(diag, -SQB_ELIMIT, 56, "ELF header",
			       "%llu program headers, expected 1..%d", (unsigned long long)phnum,
			       PHNUM_MAX);
	if (!xb_fits(phoff, phnum * PHDR_SIZE, img->size))
		return xb_fail(diag, -SQB_ETRUNCATED, 32, "ELF header",
			       "program headers at 0x%llx run past the end of the file",
			       (unsigned long long)phoff);
	return 0;
}

/* Sections are a fallback for images whose notes lack a PT_NOTE segment. */
static int scan_section_notes(const struct xb_image *img, uint64_t *entry, struct sqb_diag *diag)
{
	const uint8_t *e = img->data;
	uint64_t shoff = xb_get64(e + 40), shnum = xb_get16(e + 60);

	if (shoff == 0 || shnum == 0)
		return 0;
	if (xb_get16(e + 58) != SHDR_SIZE || shnum > SHNUM_MAX ||
	    !xb_fits(shoff, shnum * SHDR_SIZE, img->size))
		return xb_fail(diag, -SQB_ECORRUPT, 40, "ELF header",
			       "section header table out of bounds or malformed");
	for (uint64_t i = 0; i < shnum; i++) {
		const uint8_t *s = e + shoff + i * SHDR_SIZE;
		uint64_t off = xb_get64(s + 24), size = xb_get64(s + 32);
		int r;

		if (xb_get32(s + 4) != SHT_NOTE)
			continue;
		if (!xb_fits(off, size, img->size))
			return xb_fail(diag, -SQB_ETRUNCATED, shoff + i * SHDR_SIZE, "ELF section",
				       "note section %llu runs past the file",
				       (unsigned long long)i);
		r = scan_notes(img, off, size, entry, diag);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Validate every program header; collect PT_LOADs and the entry note. */
static int scan_phdrs(const struct sqb_x86boot_in *in, const struct xb_image *img,
		      struct pvh_seg *segs, unsigned int *nsegs, uint64_t *entry,
		      struct sqb_diag *diag)
{
	const uint8_t *e = img->data;
	uint64_t phoff = xb_get64(e + 32), phnum = xb_get16(e + 56);
	int found = 0;

	*nsegs = 0;
	for (uint64_t i = 0; i < phnum; i++) {
		const uint8_t *p = e + phoff + i * PHDR_SIZE;
		uint64_t where = phoff + i * PHDR_SIZE;
		struct pvh_seg s = {.off = xb_get64(p + 8),
				    .paddr = xb_get64(p + 24),
				    .filesz = xb_get64(p + 32),
				    .memsz = xb_get64(p + 40)};
		uint32_t type = xb_get32(p);

		if ((type == PT_LOAD || type == PT_NOTE) && !xb_fits(s.off, s.filesz, img->size))
			return xb_fail(diag, -SQB_ETRUNCATED, where, "ELF phdr",
				       "segment %llu: file range 0x%llx+0x%llx past end of file",
				       (unsigned long long)i, (unsigned long long)s.off,
				       (unsigned long long)s.filesz);
		if (type == PT_NOTE && !found) {
			int r = scan_notes(img, s.off, s.filesz, entry, diag);

			if (r < 0)
				return r;
			found = r;
		}
		if (type != PT_LOAD || s.memsz == 0)
			continue;
		if (s.filesz > s.memsz)
			return xb_fail(diag, -SQB_ECORRUPT, where, "ELF phdr",
				       "segment %llu: file size above memory size",
				       (unsigned long long)i);
		if (s.paddr < XB_HIMEM || !xb_gpa(in, s.paddr, s.memsz))
			return xb_fail(
			    diag, -SQB_ELIMIT, where, "ELF phdr",
			    "segment %llu: [0x%llx, +0x%llx) not in guest RAM above 1 MiB",
			    (unsigned long long)i, (unsigned long long)s.paddr,
			    (unsigned long long)s.memsz);
		segs[(*nsegs)++] = s;
	}
	if (*nsegs == 0)
		return xb_fail(diag, -SQB_ECORRUPT, phoff, "ELF phdr", "no loadable segment");
	if (!found)
		found = scan_section_notes(img, entry, diag);
	if (found < 0)
		return found;
	if (!found)
		return xb_fail(diag, -SQB_EUNSUPPORTED, UINT64_MAX, "ELF note",
			       "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel");
	return 0;
}

static void write_start_info(const struct sqb_x86boot_in *in, const struct sqb_x86boot_entry *out)
{
	struct xb_e820 map[XB_E820_MAX];
	unsigned int n = xb_build_e820(in, map, XB_E820_MAX);
	uint8_t *si = xb_gpa(in, XB_START_INFO, 0x1000);

	memset(si, 0, 0x1000);
	xb_put32(si + 0, HVM_START_MAGIC);
	xb_put32(si + 4, 1); /* version: memmap fields present */
	xb_put32(si + 8, 0);
	xb_put32(si + 12, out->initrd_size ? 1 : 0);
	xb_put64(si + 16, out->initrd_size ? SI_MODLIST : 0);
	xb_put64(si + 24, XB_CMDLINE);
	xb_put64(si + 32, out->acpi_rsdp);
	xb_put64(si + 40, SI_MEMMAP);
	xb_put32(si + 48, n);
	if (out->initrd_size) {
		uint8_t *m = si + (SI_MODLIST - XB_START_INFO);

		xb_put64(m + 0, out->initrd_start);
		xb_put64(m + 8, out->initrd_size);
	}
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *m = si + (SI_MEMMAP - XB_START_INFO) + i * MEMMAP_SIZE;

		xb_put64(m + 0, map[i].addr);
		xb_put64(m + 8, map[i].size);
		xb_put32(m + 16, map[i].type);
	}
}

int xb_load_pvh(const struct sqb_x86boot_in *in, const struct xb_image *img,
		struct sqb_x86boot_entry *out, struct sqb_diag *diag)
{
	struct pvh_seg segs[PHNUM_MAX];
	unsigned int nsegs, i;
	uint64_t entry = 0, lo = UINT64_MAX, hi = 0;
	int inside = 0;

	FORWARD_IF_ERROR(check_ehdr(img, diag));
	FORWARD_IF_ERROR(scan_phdrs(in, img, segs, &nsegs, &entry, diag));
	for (i = 0; i < nsegs; i++) {
		uint64_t end = segs[i].paddr + segs[i].memsz;

		lo = segs[i].paddr < lo ? segs[i].paddr : lo;
		hi = end > hi ? end : hi;
		inside |= entry >= segs[i].paddr && entry < end;
	}
	if (entry >= XB_4G || !inside)
		return xb_fail(diag, -SQB_ECORRUPT, UINT64_MAX, "ELF note",
			       "PVH entry 0x%llx is not inside a loaded segment below 4 GiB",
			       (unsigned long long)entry);
	for (i = 0; i < nsegs; i++) {
		uint8_t *dst = xb_gpa(in, segs[i].paddr, segs[i].memsz);

		memcpy(dst, img->data + segs[i].off, segs[i].filesz);
		memset(dst + segs[i].filesz, 0, segs[i].memsz - segs[i].filesz);
	}
	out->kernel_start = lo;
	out->kernel_end = hi;
	FORWARD_IF_ERROR(xb_load_initrd(in, XB_4G, lo, hi, out, diag));
	write_start_info(in, out);
	out->mode = SQB_X86BOOT_PROT32;
	out->rip = entry;
	out->rbx = XB_START_INFO;
	out->rsi = 0;
	out->cr3 = 0;
	return 0;
}
