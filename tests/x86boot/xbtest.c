/* Shared helpers of the x86boot tests: fake guest RAM, temporary files and
 * the hand-built PVH ELF image (see xbtest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xbtest.h"

void xbt_guest_init(struct xbt_guest *g, uint64_t size, uint8_t fill)
{
	memset(g, 0, sizeof(*g));
	g->ram = malloc(size);
	if (!g->ram)
		abort();
	memset(g->ram, fill, size);
	g->size = size;
	g->mem = (struct sqb_x86boot_mem){.host = g->ram, .gpa = 0, .size = size};
	g->in.ram = &g->mem;
	g->in.nram = 1;
	g->in.ncpus = 1;
}

void xbt_guest_free(struct xbt_guest *g)
{
	free(g->ram);
	g->ram = NULL;
}

char *xbt_tmpfile(const void *buf, size_t len)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path = malloc(strlen(dir) + 32);
	int fd;

	if (!path)
		abort();
	sprintf(path, "%s/xbtest-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
	return path;
}

void xbt_rmfile(char *path)
{
	if (path)
		unlink(path);
	free(path);
}

uint16_t xbt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

uint32_t xbt_get32(const uint8_t *p)
{
	return xbt_get16(p) | (uint32_t)xbt_get16(p + 2) << 16;
}

uint64_t xbt_get64(const uint8_t *p)
{
	return xbt_get32(p) | (uint64_t)xbt_get32(p + 4) << 32;
}

void xbt_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void xbt_put32(uint8_t *p, uint32_t v)
{
	xbt_put16(p, (uint16_t)v);
	xbt_put16(p + 2, (uint16_t)(v >> 16));
}

void xbt_put64(uint8_t *p, uint64_t v)
{
	xbt_put32(p, (uint32_t)v);
	xbt_put32(p + 4, (uint32_t)(v >> 32));
}

uint8_t xbt_sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

static void phdr(uint8_t *p, uint32_t type, uint64_t off, uint64_t paddr, uint64_t filesz,
		 uint64_t memsz)
{
	xbt_put32(p, type);
	xbt_put32(p + 4, 5);
	xbt_put64(p + 8, off);
	xbt_put64(p + 16, paddr | 0xffffffff80000000ULL); /* vaddr differs, like vmlinux */
	xbt_put64(p + 24, paddr);
	xbt_put64(p + 32, filesz);
	xbt_put64(p + 40, memsz);
	xbt_put64(p + 48, 0x1000);
}

void xbt_elf_build(struct xbt_elf *e)
{
	uint8_t *b = e->buf;

	memset(e, 0, sizeof(*e));
	memcpy(b,
	       "\x7f"
	       "ELF",
	       4);
	b[4] = 2; /* ELFCLASS64 */
	b[5] = 1; /* little endian */
	b[6] = 1;
	xbt_put16(b + 16, 2);  /* ET_EXEC */
	xbt_put16(b + 18, 62); /* EM_X86_64 */
	xbt_put32(b + 20, 1);
	xbt_put64(b + 24, 0xffffffff80100010ULL);
	e->phoff = 64;
	xbt_put64(b + 32, e->phoff);
	xbt_put16(b + 52, 64);
	xbt_put16(b + 54, 56);
	xbt_put16(b + 56, 3);
	xbt_put16(b + 58, 64);

	e->note_off = 0x200;
	xbt_put32(b + e->note_off, 4);	    /* namesz */
	xbt_put32(b + e->note_off + 4, 8);  /* descsz */
	xbt_put32(b + e->note_off + 8, 18); /* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(b + e->note_off + 12, "Xen", 4);
	xbt_put64(b + e->note_off + 16, 0x100010);

	e->text_off = 0x1000;
	memset(b + e->text_off, 0x90, 0x200);
	e->data_off = 0x1200;
	memset(b + e->data_off, 0x5a, 0x100);
	e->len = 0x1300;

	phdr(XBT_PHDR(e, 0), 1, e->text_off, 0x100000, 0x200, 0x3000);
	phdr(XBT_PHDR(e, 1), 1, e->data_off, 0x200000, 0x100, 0x100);
	phdr(XBT_PHDR(e, 2), 4, e->note_off, 0, 24, 24);
}

const uint8_t *xbt_find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (!memcmp(hay + i, needle, m))
			return hay + i;
	return NULL;
}

uint64_t xbt_last_start_info;
char xbt_last_reason[200];

int xbt_load_devs(struct xbt_guest *g, const struct sqb_x86boot_dev *devs, unsigned int n,
		  const uint8_t **dsdt)
{
	struct xbt_elf e;
	struct sqb_x86boot_entry out;
	struct sqb_diag d = {0};
	char *path;
	int rc;

	xbt_elf_build(&e);
	path = xbt_tmpfile(e.buf, e.len);
	xbt_guest_init(g, 4u << 20, 0xcc);
	g->in.kernel_path = path;
	g->in.devs = devs;
	g->in.ndevs = n;
	xbt_last_reason[0] = 0;
	rc = sqb_x86boot_load(&g->in, &out, &d);
	xbt_rmfile(path);
	xbt_last_start_info = out.rbx;
	if (rc == 0 && dsdt) {
		const uint8_t *fadt =
		    g->ram + xbt_get64(g->ram + xbt_get64(g->ram + out.acpi_rsdp + 24) + 36);
		*dsdt = g->ram + xbt_get64(fadt + 140);
	} else if (rc) {
		snprintf(xbt_last_reason, sizeof(xbt_last_reason), "%s", d.reason);
	}
	return rc;
}

int xbt_iasl_disassemble(const uint8_t *dsdt, char *dir_template, char *dsl_path, size_t cap)
{
	char path[600], cmd[1400];
	FILE *f;
	size_t len = xbt_get32(dsdt + 4);

	if (system("command -v iasl >/dev/null") != 0 || !mkdtemp(dir_template))
		return -1;
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir_template);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	if (fwrite(dsdt, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat > dsdt.log 2>&1", dir_template);
	if (system(cmd) != 0)
		return -1;
	snprintf(dsl_path, cap, "%s/dsdt.dsl", dir_template);
	return 0;
}

int xbt_file_contains(const char *path, const char *needle)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}
