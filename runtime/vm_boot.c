/* Boot image loading for the VMM: hands the guest RAM ranges to the loader
 * and turns its entry description into the boot vCPU's state.  TEMPORARY:
 * until runtime/x86boot lands, a minimal private PVH ELF loader lives here
 * (ELF64 PT_LOAD + XEN_ELFNOTE_PHYS32_ENTRY, hvm_start_info, a GDT). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "vmm_priv.h"

#define PVH_NOTE_TYPE 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
#define TMP_GDT 0x500
#define TMP_START_INFO 0x6000
#define TMP_MEMMAP 0x6100
#define TMP_CMDLINE 0x7000
#define TMP_CMDLINE_MAX 2048

static int boot_fail(struct sqb_diag *diag, const char *path, int err, const char *why)
{
	if (diag) {
		diag->offset = UINT64_MAX;
		snprintf(diag->section, sizeof(diag->section), "kernel");
		snprintf(diag->reason, sizeof(diag->reason), "%s: %s", path, why);
	}
	return err;
}

static uint8_t *gpa_ptr(struct sqb_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		struct sqb_mem_region *r = &vm->mem.regions[i];
		if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len)
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

static int find_pvh_entry(const uint8_t *img, size_t sz, const Elf64_Phdr *ph, unsigned int n,
			  uint64_t *entry)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t off = ph[i].p_offset, end;
		if (ph[i].p_type != PT_NOTE)
			continue;
		if (off > sz || ph[i].p_filesz > sz - off)
			return -SQB_ETRUNCATED;
		end = off + ph[i].p_filesz;
		while (off + sizeof(Elf64_Nhdr) <= end) {
			const Elf64_Nhdr *nh = (const void *)(img + off);
			uint64_t name = off + sizeof(*nh), desc = name + ((nh->n_namesz + 3) & ~3u);
			uint64_t next = desc + ((nh->n_descsz + 3) & ~3u);
			if (next > end)
				break;
			if (nh->n_type == PVH_NOTE_TYPE && nh->n_namesz == 4 &&
			    !memcmp(img + name, "Xen", 4) && nh->n_descsz >= 4) {
				uint32_t e32;
				memcpy(&e32, img + desc, 4);
				*entry = e32;
				return 0;
			}
			off = next;
		}
	}
	return -SQB_ENOTFOUND;
}

static int tmp_pvh_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg,
			struct sqb_hv_entry *e, struct sqb_diag *diag)
{
	static const uint64_t gdt[] = { 0, 0x00af9a000000ffffULL, 0x00cf92000000ffffULL,
					0x00cf9a000000ffffULL };
	const char *path = cfg->kernel_path;
	uint8_t *img = NULL, *p;
	struct stat st;
	int fd, err;
	uint64_t entry = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return boot_fail(diag, path, -errno, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr) ||
	    st.st_size > (64 << 20)) {
		close(fd);
		return boot_fail(diag, path, -SQB_ECORRUPT, "not a loadable ELF image (size)");
	}
	img = malloc(st.st_size);
	err = img ? sqb_pread_full(fd, img, st.st_size, 0) : -ENOMEM;
	close(fd);
	if (err < 0)
		goto out;
	const Elf64_Ehdr *eh = (const void *)img;
	err = boot_fail(diag, path, -SQB_EBADMAGIC, "not an ELF64 x86-64 image");
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_machine != EM_X86_64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > (uint64_t)st.st_size ||
	    eh->e_phnum > ((uint64_t)st.st_size - eh->e_phoff) / sizeof(Elf64_Phdr))
		goto out;
	const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff);
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		err = boot_fail(diag, path, -SQB_ECORRUPT, "PT_LOAD outside the file or guest RAM");
		if (ph[i].p_offset > (uint64_t)st.st_size ||
		    ph[i].p_filesz > (uint64_t)st.st_size - ph[i].p_offset ||
		    ph[i].p_filesz > ph[i].p_memsz)
			goto out;
		p = gpa_ptr(vm, ph[i].p_paddr, ph[i].p_memsz);
		if (!p)
			goto out;
		memcpy(p, img + ph[i].p_offset, ph[i].p_filesz);
		memset(p + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
	}
	if (find_pvh_entry(img, st.st_size, ph, eh->e_phnum, &entry) < 0) {
		err = boot_fail(diag, path, -SQB_EUNSUPPORTED, "no PVH entry note (Xen type 18)");
		goto out;
	}
	/* Low-memory boot data: GDT, hvm_start_info, memmap, command line. */
	uint8_t *g = gpa_ptr(vm, TMP_GDT, sizeof(gdt));
	uint32_t *si = (uint32_t *)gpa_ptr(vm, TMP_START_INFO, 56);
	char *cl = (char *)gpa_ptr(vm, TMP_CMDLINE, TMP_CMDLINE_MAX);
	if (!g || !si || !cl) {
		err = boot_fail(diag, path, -EINVAL, "guest RAM too small for boot data");
		goto out;
	}
	memcpy(g, gdt, sizeof(gdt));
	memset(si, 0, 56);
	si[0] = 0x336ec578; /* magic */
	si[1] = 1;	    /* version */
	si[4] = TMP_CMDLINE; /* cmdline_paddr (u64 at offset 16) */
	snprintf(cl, TMP_CMDLINE_MAX, "%s", cfg->cmdline ? cfg->cmdline : "");
	memset(e, 0, sizeof(*e));
	e->mode = SQB_HV_ENTRY_PROT32;
	e->rip = entry;
	e->rbx = TMP_START_INFO;
	e->gdt_base = TMP_GDT;
	e->gdt_limit = sizeof(gdt) - 1;
	e->cs_sel = 0x18;
	e->ds_sel = 0x10;
	err = 0;
out:
	free(img);
	return err;
}

int sqb_vm_boot_load(struct sqb_vm *vm, const struct sqb_vm_config *cfg,
		     struct sqb_hv_entry *entry, struct sqb_diag *diag)
{
	if (!cfg->kernel_path)
		return boot_fail(diag, "(none)", -EINVAL, "no kernel image configured");
	return tmp_pvh_load(vm, cfg, entry, diag);
}
