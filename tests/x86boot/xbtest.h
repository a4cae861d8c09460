/* Helpers for the x86boot tests: a fake guest RAM, temporary files, and a
 * builder for small ELF64 images with PT_LOAD / PT_NOTE program headers. */
#ifndef SQB_XBTEST_H
#define SQB_XBTEST_H

#include <stddef.h>
#include <stdint.h>

#include "x86boot.h"

struct xbt_guest {
	uint8_t *ram;
	uint64_t size;
	struct sqb_x86boot_mem mem;
	struct sqb_x86boot_in in;
};

/* RAM [0, size) filled with fill; in.ram points at it, ncpus = 1. */
void xbt_guest_init(struct xbt_guest *g, uint64_t size, uint8_t fill);
void xbt_guest_free(struct xbt_guest *g);

/* Write buf to a new temporary file; returns its malloc'd path. */
char *xbt_tmpfile(const void *buf, size_t len);
void xbt_rmfile(char *path);

uint16_t xbt_get16(const uint8_t *p);
uint32_t xbt_get32(const uint8_t *p);
uint64_t xbt_get64(const uint8_t *p);
void xbt_put16(uint8_t *p, uint16_t v);
void xbt_put32(uint8_t *p, uint32_t v);
void xbt_put64(uint8_t *p, uint64_t v);
uint8_t xbt_sum(const uint8_t *p, size_t len);

/* A valid PVH test ELF: text segment at 1 MiB (0x200 bytes of 0x90, memsz
 * 0x3000), data segment at 2 MiB (0x100 bytes of 0x5a), a PT_NOTE with the
 * Xen PHYS32_ENTRY note (entry 0x100010, 8-byte value) and no sections.
 * Offsets of interesting fields are returned so tests can corrupt them. */
struct xbt_elf {
	uint8_t buf[8192];
	size_t len;
	size_t phoff;	 /* program headers: [0]=text, [1]=data, [2]=note */
	size_t note_off; /* Xen note header (namesz, descsz, type, "Xen\0", desc) */
	size_t text_off, data_off;
};
void xbt_elf_build(struct xbt_elf *e);

#define XBT_PHDR(e, i) ((e)->buf + (e)->phoff + 56 * (i))

/* First occurrence of needle (m bytes) in hay (n bytes), or NULL. */
const uint8_t *xbt_find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m);

/* Load the test ELF into a fresh 4 MiB guest (0xcc-filled) with the given
 * ACPI devices.  On success *dsdt (may be NULL) points at the DSDT in
 * guest RAM; xbt_last_start_info is the PVH start-info address; on failure
 * xbt_last_reason holds the loader's diagnosis. */
extern uint64_t xbt_last_start_info;
extern char xbt_last_reason[200];
int xbt_load_devs(struct xbt_guest *g, const struct sqb_x86boot_dev *devs, unsigned int n,
		  const uint8_t **dsdt);

/* Disassemble a DSDT with iasl in a new folder made from dir_template
 * (mkdtemp); dsl_path gets the .dsl file's path.  0, or -1 (no iasl, or it
 * failed: the caller's assertion says so). */
int xbt_iasl_disassemble(const uint8_t *dsdt, char *dir_template, char *dsl_path, size_t cap);
/* Whether the text file at path contains needle. */
int xbt_file_contains(const char *path, const char *needle);

#endif
