/* Debug check of a snapshot create (SQB_SNAP_SELFCHECK=1 in the
 * environment; docs/testing.md "Known failures"): while the VM is still
 * paused and its devices quiesced, the memory file just written (with its
 * chain) is read back through snapfmt and compared page by page with guest
 * memory.  A page that differs is a page the file does not hold as the
 * guest had it at the pause; each is logged with both bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snap_priv.h"

#define CHUNK (1u << 20)

int sqb_snap_selfcheck_enabled(void)
{
	const char *e = getenv("SQB_SNAP_SELFCHECK");

	return e && *e && strcmp(e, "0") != 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int sqb_snap_selfcheck(struct sqb_vm *vm, const char *mem_path, const char *raw_path)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d = {0};
	sqb_snap *s = NULL;
	uint8_t *buf = malloc(CHUNK);
	uint64_t bad = 0, pages = 0;
	int err;

	if (!buf)
		return -ENOMEM;
	oo.external_path = raw_path;
	err = sqb_snap_open(&s, mem_path, &oo, &d);
	for (unsigned int r = 0; !err && r < vm->mem.nregions; r++) {
		const struct sqb_mem_region *rg = &vm->mem.regions[r];

		for (uint64_t off = 0; !err && off < rg->size; off += CHUNK) {
			uint64_t n = rg->size - off < CHUNK ? rg->size - off : CHUNK;

			err = sqb_snap_read(s, rg->gpa + off, buf, n, &d);
			for (uint64_t p = 0; !err && p < n; p += 4096) {
				const uint8_t *g = rg->host + off + p, *f = buf + p;
				unsigned int k = 0;

				pages++;
				if (!memcmp(g, f, 4096))
					continue;
				while (g[k] == f[k])
					k++;
				if (bad++ < 32)
					sqb_err("snapshot self-check: %s: page 0x%llx differs from "
						"guest "
						"memory at +0x%x (guest %02x%02x%02x%02x, file "
						"%02x%02x%02x%02x; file page %s, guest page %s)",
						mem_path, (unsigned long long)(rg->gpa + off + p),
						k, g[k & ~3u], g[(k & ~3u) + 1], g[(k & ~3u) + 2],
						g[(k & ~3u) + 3], f[k & ~3u], f[(k & ~3u) + 1],
						f[(k & ~3u) + 2], f[(k & ~3u) + 3],
						all_zero(f, 4096) ? "zero" : "data",
						all_zero(g, 4096) ? "zero" : "data");
			}
		}
	}
	if (err)
		sqb_err("snapshot self-check: cannot read %s back: %s: %s", mem_path,
			sqb_strerror(err), d.reason);
	else if (bad)
		sqb_err("snapshot self-check: %s: %llu of %llu pages differ from guest memory",
			mem_path, (unsigned long long)bad, (unsigned long long)pages);
	else /* asked for: said at the default log level */
		sqb_warn("snapshot self-check: %s: 0 of %llu pages differ from guest memory",
			 mem_path, (unsigned long long)pages);
	sqb_snap_free(s);
	free(buf);
	return err ? err : bad ? -SQB_ECORRUPT : 0;
}
