/* libFuzzer target for snapfmt's reader: the input is a whole snapshot
 * file, opened from a memfd and pushed through open, verify, every section
 * parser (records, key/values, devices, working set) and page reads.  Each
 * input runs twice: as given, and with every checksum recomputed so that
 * mutations reach the structural checks behind them (docs/format.md [F-23]). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "squib/snapfmt.h"
#include "snap_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_state(sqb_snap *s)
{
	struct sqb_record *recs;
	struct sqb_kv *kv;
	struct sqb_wset_range *ws;
	unsigned int n;
	size_t nw;
	void *back;

	for (unsigned int i = 0; i < sqb_snap_vcpu_count(s) && i < 8; i++) {
		if (sqb_snap_records(s, SQB_SEC_VCPU, i, &recs, &n, &back, NULL) == 0) {
			(void)sqb_record_find(recs, n, SQB_REC_X86_REGS);
			for (unsigned int k = 0; k < n; k++)
				(void)sqb_record_tag_name(recs[k].tag);
		}
		free(recs);
		free(back);
	}
	if (sqb_snap_records(s, SQB_SEC_INTC, 0, &recs, &n, &back, NULL) == 0)
		(void)sqb_record_find(recs, n, SQB_REC_KVM_CLOCK);
	free(recs);
	free(back);
	for (int t = 0; t < 2; t++) {
		if (sqb_snap_kv(s, t ? SQB_SEC_META : SQB_SEC_CONF, &kv, &n, &back, NULL) == 0)
			for (unsigned int k = 0; k < n; k++)
				if (strlen(kv[k].key) == 0 || kv[k].value[kv[k].value_len] != 0)
					abort(); /* the API promises NUL-terminated copies */
		free(kv);
		free(back);
	}
	for (unsigned int i = 0; i < sqb_snap_device_count(s) && i < 8; i++) {
		struct sqb_device dev;

		if (sqb_snap_device(s, i, &dev, &back, NULL) == 0 && strnlen(dev.id, 64) == 64)
			abort();
		free(back);
	}
	if (sqb_snap_working_set(s, &ws, &nw, NULL) == 0 && nw && !ws)
		abort();
	free(ws);
}

/* Read the first and last page of every extent (bounded), and decode every
 * data extent whole. */
static void read_memory(sqb_snap *s, uint8_t *buf)
{
	uint32_t gps = sqb_snap_get_info(s)->guest_page_size;
	struct sqb_mem_stats ms;

	sqb_snap_mem_stats(s, &ms);
	for (unsigned int r = 0; r < sqb_snap_region_count(s); r++) {
		const struct sqb_extent *e = sqb_snap_extents(s, r);
		size_t n = sqb_snap_extent_count(s, r);
		struct sqb_region reg;

		if (sqb_snap_region(s, r, &reg))
			abort();
		for (size_t i = 0; i < n && i < 256; i++) {
			uint64_t gpa = reg.gpa + e[i].first_page * gps;
			uint64_t last = gpa + (uint64_t)(e[i].page_count - 1) * gps;
			unsigned int rr;
			uint64_t pg;
			size_t idx;

			if ((uint64_t)e[i].page_count * gps <= (1u << 20))
				(void)sqb_snap_extent_decode(s, r, &e[i], buf, NULL);
			(void)sqb_snap_read(s, gpa, buf, gps, NULL);
			(void)sqb_snap_read(s, last + gps / 2, buf, gps / 2, NULL);
			if (sqb_snap_locate(s, gpa, &rr, &pg) == 0 &&
			    sqb_snap_extent_find(s, rr, pg, &idx) == 0 && (rr != r || idx != i))
				abort(); /* the index must find the extent it came from */
		}
	}
}

static void run_one(int fd, const char *path, const uint8_t *data, size_t size, uint8_t *buf)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_section_info si;
	char name[16];
	sqb_snap *s;

	if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	oo.no_parents = 1; /* never follow path hints out of the sandbox */
	if (sqb_snap_open(&s, path, &oo, NULL))
		return;
	for (unsigned int i = 0; i < sqb_snap_section_count(s); i++)
		if (sqb_snap_section_info(s, i, &si) == 0)
			(void)sqb_section_type_name(si.type, name);
	(void)sqb_snap_verify(s, SQB_VERIFY_CHAIN, 0, NULL, NULL);
	parse_state(s);
	read_memory(s, buf);
	sqb_snap_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static uint8_t *buf, *fixed;
	static size_t fixed_cap;

	if (fd < 0) {
		fd = memfd_create("sqb-fuzz", MFD_CLOEXEC);
		buf = malloc(1u << 20);
		if (fd < 0 || !buf)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (size > (64u << 20))
		return 0;
	run_one(fd, path, data, size, buf);
	if (size > fixed_cap) {
		free(fixed);
		fixed_cap = size;
		fixed = malloc(size);
		if (!fixed)
			abort();
	}
	if (size) {
		memcpy(fixed, data, size);
		sqbt_fix_checksums(fixed, size);
		run_one(fd, path, fixed, size, buf);
	}
	return 0;
}
