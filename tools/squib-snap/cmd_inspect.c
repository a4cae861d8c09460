/* squib-snap inspect: everything a snapshot says about itself - header
 * fields, identity and chain, sections, memory regions and page statistics,
 * vCPU registers, devices, config, metadata and working set - as text or
 * as the stable JSON documented in docs/squib-snap.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snaptool.h"

#define SHOW_VCPUS   1
#define SHOW_DEVICES 2
#define SHOW_MEMORY  4

struct ins {
	sqb_snap *s;
	const struct sqb_snap_info *in;
	unsigned int show; /* parts selected; 0 = all, in summary form */
	int detail;	   /* a part was selected: show it in full */
	yajl_gen g;	   /* JSON when non-NULL */
};

static void fmt_time(uint64_t ns, char *buf, size_t n)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "?");
}

/* Per-region page statistics from the extent list. */
static void region_stats(const sqb_snap *s, unsigned int r, struct sqb_mem_stats *st)
{
	const struct sqb_extent *e = sqb_snap_extents(s, r);
	size_t n = sqb_snap_extent_count(s, r);

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		uint64_t *k[] = {&st->zero, &st->parent, &st->raw, &st->compressed, &st->dedup};

		st->pages += e[i].page_count;
		st->extents++;
		if (e[i].kind <= SQB_EXT_DEDUP)
			*k[e[i].kind] += e[i].page_count;
		if (e[i].kind == SQB_EXT_RAW || e[i].kind == SQB_EXT_COMPRESSED)
			st->stored_bytes += e[i].stored_len;
	}
}

static double ratio(const struct sqb_mem_stats *m, uint32_t gps)
{
	uint64_t logical = (m->raw + m->compressed) * (uint64_t)gps;

	return m->stored_bytes ? (double)logical / (double)m->stored_bytes : 1.0;
}

static void text_header(struct ins *x)
{
	const struct sqb_snap_info *in = x->in;
	char t[40], u[37], d[33], h[32];
	char *hint = st_link_hint(x->s, 0), *chint = st_link_hint(x->s, 1);

	fmt_time(in->created_ns, t, sizeof(t));
	printf("file         %s\n", sqb_snap_path(x->s));
	printf("format       version %u (reader needs %u)%s\n", in->write_version, in->read_version,
	       in->read_only ? ", read-only here" : "");
	printf("producer     %s\ncreated      %s\n", in->producer, t);
	printf("kind         %s, role %s\n", st_kind_name(in->kind), st_role_name(in->role));
	printf("machine      %s/%s, guest page %u, host page %u\n", st_arch_name(in->arch),
	       st_hv_name(in->hv), in->guest_page_size, in->host_page_size);
	sqb_uuid_format(&in->uuid, u);
	sqb_digest_format(&in->digest, d);
	printf("uuid         %s\ndigest       %s\n", u, d);
	printf("size         %s (%llu bytes)\n", st_human(in->file_size, h),
	       (unsigned long long)in->file_size);
	if (in->kind == SQB_SNAP_DIFF) {
		sqb_uuid_format(&in->parent_uuid, u);
		sqb_digest_format(&in->parent_digest, d);
		printf("parent       %s digest %s\n", u, d);
		printf("parent hint  %s\n", hint ? hint : "(none)");
		printf("chain        ");
		if (!sqb_snap_parent(x->s))
			printf("parent not opened\n");
		for (sqb_snap *p = x->s; p && sqb_snap_parent(x->s); p = sqb_snap_parent(p))
			printf("%s%s", sqb_snap_path(p), sqb_snap_parent(p) ? " -> " : "\n");
	} else {
		printf("parent       none\n");
	}
	if (sqb_snap_external_path(x->s))
		printf("raw memory   %s (Firecracker layout; index and checksums here)\n",
		       sqb_snap_external_path(x->s));
	if (!sqb_uuid_is_zero(&in->companion_uuid)) {
		sqb_uuid_format(&in->companion_uuid, u);
		sqb_digest_format(&in->companion_digest, d);
		printf("companion    %s digest %s%s%s\n", u, d, chint ? " hint " : "",
		       chint ? chint : "");
	}
	free(hint);
	free(chint);
}

static void json_header(struct ins *x)
{
	const struct sqb_snap_info *in = x->in;
	yajl_gen g = x->g;
	char t[40], u[37], d[33];
	char *hint = st_link_hint(x->s, 0), *chint = st_link_hint(x->s, 1);

	fmt_time(in->created_ns, t, sizeof(t));
	st_jkv_str(g, "file", sqb_snap_path(x->s));
	st_jkv_int(g, "format_version", in->write_version);
	st_jkv_int(g, "read_version", in->read_version);
	st_jkv_bool(g, "read_only", in->read_only);
	st_jkv_str(g, "producer", in->producer);
	st_jkv_u64(g, "created_ns", in->created_ns);
	st_jkv_str(g, "created", t);
	st_jkv_str(g, "kind", st_kind_name(in->kind));
	st_jkv_str(g, "role", st_role_name(in->role));
	st_jkv_str(g, "arch", st_arch_name(in->arch));
	st_jkv_str(g, "hypervisor", st_hv_name(in->hv));
	st_jkv_u64(g, "guest_page_size", in->guest_page_size);
	st_jkv_u64(g, "host_page_size", in->host_page_size);
	st_jkv_u64(g, "file_size", in->file_size);
	sqb_uuid_format(&in->uuid, u);
	sqb_digest_format(&in->digest, d);
	st_jkv_str(g, "uuid", u);
	st_jkv_str(g, "digest", d);
	if (in->kind == SQB_SNAP_DIFF) {
		st_jkey(g, "parent");
		st_jmap(g);
		sqb_uuid_format(&in->parent_uuid, u);
		sqb_digest_format(&in->parent_digest, d);
		st_jkv_str(g, "uuid", u);
		st_jkv_str(g, "digest", d);
		st_jkv_str(g, "path_hint", hint);
		st_jkv_bool(g, "opened", sqb_snap_parent(x->s) != NULL);
		st_jmap_end(g);
	} else {
		st_jkv_null(g, "parent");
	}
	if (sqb_snap_external_path(x->s))
		st_jkv_str(g, "raw_memory_file", sqb_snap_external_path(x->s));
	else
		st_jkv_null(g, "raw_memory_file");
	st_jkey(g, "chain");
	st_jarr(g);
	for (sqb_snap *p = x->s; p; p = sqb_snap_parent(p)) {
		st_jmap(g);
		st_jkv_str(g, "path", sqb_snap_path(p));
		sqb_uuid_format(&sqb_snap_get_info(p)->uuid, u);
		st_jkv_str(g, "uuid", u);
		st_jkv_str(g, "kind", st_kind_name(sqb_snap_get_info(p)->kind));
		st_jmap_end(g);
	}
	st_jarr_end(g);
	if (!sqb_uuid_is_zero(&in->companion_uuid)) {
		st_jkey(g, "companion");
		st_jmap(g);
		sqb_uuid_format(&in->companion_uuid, u);
		sqb_digest_format(&in->companion_digest, d);
		st_jkv_str(g, "uuid", u);
		st_jkv_str(g, "digest", d);
		st_jkv_str(g, "path_hint", chint);
		st_jmap_end(g);
	} else {
		st_jkv_null(g, "companion");
	}
	free(hint);
	free(chint);
}

static void do_sections(struct ins *x)
{
	unsigned int n = sqb_snap_section_count(x->s);
	char tn[16];

	if (x->g) {
		st_jkey(x->g, "sections");
		st_jarr(x->g);
	} else {
		printf("\nsections (%u):\n  %-3s %-10s %5s %-7s %-9s %-12s %-12s %s\n", n, "#",
		       "type", "inst", "ver/min", "flags", "offset", "length", "checksum");
	}
	for (unsigned int i = 0; i < n; i++) {
		struct sqb_section_info si;

		sqb_snap_section_info(x->s, i, &si);
		sqb_section_type_name(si.type, tn);
		if (!x->g) {
			printf("  %-3u %-10s %5u %3u/%-3u %-9s 0x%-10llx %-12llu 0x%016llx%s\n", i,
			       tn, si.instance, si.version, si.min_version,
			       si.flags & SQB_SECF_CRITICAL ? "critical" : "-",
			       (unsigned long long)si.offset, (unsigned long long)si.length,
			       (unsigned long long)si.checksum,
			       si.known ? "" : "  (unknown, skipped)");
			continue;
		}
		st_jmap(x->g);
		st_jkv_str(x->g, "type", tn);
		st_jkv_u64(x->g, "instance", si.instance);
		st_jkv_int(x->g, "version", si.version);
		st_jkv_int(x->g, "min_version", si.min_version);
		st_jkv_bool(x->g, "critical", si.flags & SQB_SECF_CRITICAL);
		st_jkv_u64(x->g, "offset", si.offset);
		st_jkv_u64(x->g, "length", si.length);
		st_jkv_hex(x->g, "checksum", si.checksum);
		st_jkv_bool(x->g, "known", si.known);
		st_jmap_end(x->g);
	}
	if (x->g)
		st_jarr_end(x->g);
}

static void json_stats(yajl_gen g, const struct sqb_mem_stats *m, uint32_t gps)
{
	st_jkv_u64(g, "pages", m->pages);
	st_jkv_u64(g, "present", m->pages - m->parent);
	st_jkv_u64(g, "zero", m->zero);
	st_jkv_u64(g, "parent", m->parent);
	st_jkv_u64(g, "raw", m->raw);
	st_jkv_u64(g, "compressed", m->compressed);
	st_jkv_u64(g, "dedup", m->dedup);
	st_jkv_u64(g, "extents", m->extents);
	st_jkv_u64(g, "stored_bytes", m->stored_bytes);
	st_jkv_dbl(g, "compression_ratio", ratio(m, gps));
}

/* Consecutive extents of one kind (and codec) shown as one run; the first
 * TEXT_RUNS runs of a region (JSON lists every extent). */
#define TEXT_RUNS 32
static void text_runs(const sqb_snap *s, unsigned int r)
{
	const struct sqb_extent *e = sqb_snap_extents(s, r);
	size_t n = sqb_snap_extent_count(s, r), runs = 0;

	for (size_t i = 0; i < n; runs++) {
		size_t j = i;
		uint64_t stored = 0;

		while (j < n && e[j].kind == e[i].kind && e[j].codec == e[i].codec) {
			stored += e[j].stored_len;
			j++;
		}
		if (runs < TEXT_RUNS) {
			printf("      pages %9llu-%-9llu %-10s %-4s %5zu %s",
			       (unsigned long long)e[i].first_page,
			       (unsigned long long)(e[j - 1].first_page + e[j - 1].page_count - 1),
			       sqb_extent_kind_name(e[i].kind),
			       e[i].kind == SQB_EXT_COMPRESSED ? sqb_codec_name(e[i].codec) : "",
			       j - i, j - i > 1 ? "extents" : "extent");
			if (stored)
				printf(", %llu bytes stored", (unsigned long long)stored);
			printf("\n");
		}
		i = j;
	}
	if (runs > TEXT_RUNS)
		printf("      ... %zu more runs (inspect --json --memory lists every extent)\n",
		       runs - TEXT_RUNS);
}

static void json_extents(yajl_gen g, const sqb_snap *s, unsigned int r)
{
	const struct sqb_extent *e = sqb_snap_extents(s, r);
	size_t n = sqb_snap_extent_count(s, r);

	st_jkey(g, "extent_list");
	st_jarr(g);
	for (size_t i = 0; i < n; i++) {
		st_jmap(g);
		st_jkv_u64(g, "first_page", e[i].first_page);
		st_jkv_u64(g, "pages", e[i].page_count);
		st_jkv_str(g, "kind", sqb_extent_kind_name(e[i].kind));
		if (e[i].kind == SQB_EXT_COMPRESSED)
			st_jkv_str(g, "codec", sqb_codec_name(e[i].codec));
		if (e[i].kind == SQB_EXT_RAW || e[i].kind == SQB_EXT_COMPRESSED) {
			st_jkv_u64(g, "offset", e[i].data);
			st_jkv_u64(g, "stored_len", e[i].stored_len);
			st_jkv_hex(g, "checksum", e[i].checksum);
		}
		if (e[i].kind == SQB_EXT_DEDUP) {
			st_jkv_u64(g, "source_region", e[i].data >> 48);
			st_jkv_u64(g, "source_page", e[i].data & ((1ull << 48) - 1));
		}
		st_jmap_end(g);
	}
	st_jarr_end(g);
}

static void do_memory(struct ins *x)
{
	unsigned int nr = sqb_snap_region_count(x->s);
	uint32_t gps = x->in->guest_page_size;
	struct sqb_mem_stats m;
	char a[32], b[32];

	sqb_snap_mem_stats(x->s, &m);
	if (x->g) {
		st_jkey(x->g, "memory");
		st_jmap(x->g);
		st_jkv_u64(x->g, "bytes", m.pages * gps);
		json_stats(x->g, &m, gps);
		st_jkey(x->g, "regions");
		st_jarr(x->g);
	} else {
		printf("\nmemory: %u region%s, %llu pages (%s)\n", nr, nr == 1 ? "" : "s",
		       (unsigned long long)m.pages, st_human(m.pages * gps, a));
		printf("  pages: %llu present (%llu zero, %llu raw, %llu compressed, %llu dedup), "
		       "%llu in parent\n",
		       (unsigned long long)(m.pages - m.parent), (unsigned long long)m.zero,
		       (unsigned long long)m.raw, (unsigned long long)m.compressed,
		       (unsigned long long)m.dedup, (unsigned long long)m.parent);
		printf("  stored: %s for %s of data pages, compression ratio %.2fx; %llu extents\n",
		       st_human(m.stored_bytes, a), st_human((m.raw + m.compressed) * gps, b),
		       ratio(&m, gps), (unsigned long long)m.extents);
		if (nr)
			printf("  %-6s %-18s %-10s %-9s %-8s %-6s %s\n", "region", "gpa", "size",
			       "pages", "extents", "ratio", "zero/parent/raw/compr/dedup");
	}
	for (unsigned int r = 0; r < nr; r++) {
		struct sqb_region rg;
		struct sqb_mem_stats rs;

		sqb_snap_region(x->s, r, &rg);
		region_stats(x->s, r, &rs);
		if (!x->g) {
			printf("  %-6u 0x%016llx %-10s %-9llu %-8llu %-6.2f "
			       "%llu/%llu/%llu/%llu/%llu\n",
			       r, (unsigned long long)rg.gpa, st_human(rg.size, a),
			       (unsigned long long)rs.pages, (unsigned long long)rs.extents,
			       ratio(&rs, gps), (unsigned long long)rs.zero,
			       (unsigned long long)rs.parent, (unsigned long long)rs.raw,
			       (unsigned long long)rs.compressed, (unsigned long long)rs.dedup);
			if (x->show & SHOW_MEMORY)
				text_runs(x->s, r);
			continue;
		}
		st_jmap(x->g);
		st_jkv_u64(x->g, "index", r);
		st_jkv_u64(x->g, "gpa", rg.gpa);
		st_jkv_u64(x->g, "size", rg.size);
		json_stats(x->g, &rs, gps);
		if (x->show & SHOW_MEMORY)
			json_extents(x->g, x->s, r);
		st_jmap_end(x->g);
	}
	if (x->g) {
		st_jarr_end(x->g);
		st_jmap_end(x->g);
	}
}

static int one_vcpu(struct ins *x, uint32_t idx)
{
	struct sqb_record *recs;
	unsigned int n, nreg;
	void *back;
	struct sqb_diag d;
	struct st_reg regs[ST_MAX_REGS];
	int err = sqb_snap_records(x->s, SQB_SEC_VCPU, idx, &recs, &n, &back, &d);

	if (err)
		return st_fail_diag(sqb_snap_path(x->s), err, &d);
	nreg = st_decode_regs(x->in->arch, recs, n, regs, ST_MAX_REGS);
	if (x->g) {
		st_jmap(x->g);
		st_jkv_u64(x->g, "index", idx);
		st_jkey(x->g, "records");
		st_jarr(x->g);
		for (unsigned int i = 0; i < n; i++) {
			const char *nm = sqb_record_tag_name(recs[i].tag);
			char tmp[16];

			snprintf(tmp, sizeof(tmp), "0x%04x", recs[i].tag);
			st_jmap(x->g);
			st_jkv_str(x->g, "tag", nm ? nm : tmp);
			st_jkv_u64(x->g, "length", recs[i].len);
			st_jkv_bool(x->g, "critical", recs[i].flags & SQB_RECF_CRITICAL);
			st_jmap_end(x->g);
		}
		st_jarr_end(x->g);
		st_jkey(x->g, "registers");
		st_jmap(x->g);
		for (unsigned int i = 0; i < nreg; i++)
			st_jkv_hex(x->g, regs[i].name, regs[i].value);
		st_jmap_end(x->g);
		st_jmap_end(x->g);
	} else {
		unsigned int col = 0;

		printf("  vcpu %u:", idx);
		for (unsigned int i = 0; i < nreg; i++) {
			if (!regs[i].key && !x->detail)
				continue;
			if (x->detail && col % 4 == 0)
				printf("\n   ");
			printf(" %s=0x%llx", regs[i].name, (unsigned long long)regs[i].value);
			col++;
		}
		printf("\n    records:");
		for (unsigned int i = 0; i < n; i++) {
			const char *nm = sqb_record_tag_name(recs[i].tag);

			if (nm)
				printf(" %s(%u)", nm, recs[i].len);
			else
				printf(" 0x%04x(%u)", recs[i].tag, recs[i].len);
		}
		printf("\n");
	}
	free(recs);
	free(back);
	return 0;
}

/* INTC: interrupt controller and clock records, listed by tag and size. */
static int do_irqchip(struct ins *x)
{
	struct sqb_record *recs = NULL;
	unsigned int n = 0;
	void *back = NULL;
	struct sqb_diag d;
	int err = 0;

	if (sqb_snap_section_find(x->s, SQB_SEC_INTC, 0) >= 0)
		err = sqb_snap_records(x->s, SQB_SEC_INTC, 0, &recs, &n, &back, &d);
	if (err)
		return st_fail_diag(sqb_snap_path(x->s), err, &d);
	if (x->g) {
		st_jkey(x->g, "irqchip");
		st_jarr(x->g);
	} else if (n) {
		printf("  irqchip:");
	}
	for (unsigned int i = 0; i < n; i++) {
		const char *nm = sqb_record_tag_name(recs[i].tag);
		char tmp[16];

		snprintf(tmp, sizeof(tmp), "0x%04x", recs[i].tag);
		if (x->g) {
			st_jmap(x->g);
			st_jkv_str(x->g, "tag", nm ? nm : tmp);
			st_jkv_u64(x->g, "length", recs[i].len);
			st_jmap_end(x->g);
		} else {
			printf(" %s(%u)", nm ? nm : tmp, recs[i].len);
		}
	}
	if (x->g)
		st_jarr_end(x->g);
	else if (n)
		printf("\n");
	free(recs);
	free(back);
	return 0;
}

static int do_vcpus(struct ins *x)
{
	uint32_t inst[4096];
	unsigned int n = st_instances(x->s, SQB_SEC_VCPU, inst, 4096);
	int rc = 0;

	if (x->g) {
		st_jkv_u64(x->g, "vcpu_count", n);
		st_jkey(x->g, "vcpus");
		st_jarr(x->g);
	} else {
		printf("\nvcpus: %u\n", n);
	}
	for (unsigned int i = 0; i < n && i < 4096 && !rc; i++)
		rc = one_vcpu(x, inst[i]);
	if (x->g)
		st_jarr_end(x->g);
	return rc ? rc : do_irqchip(x);
}

static void hexdump(const uint8_t *p, size_t n)
{
	for (size_t off = 0; off < n; off += 16) {
		printf("      %06zx ", off);
		for (size_t i = off; i < off + 16 && i < n; i++)
			printf(" %02x", p[i]);
		printf("\n");
	}
}

static uint64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static const char *vio_name(uint32_t vid)
{
	return vid == 1 ? "net" : vid == 2 ? "blk" : vid == 4 ? "rng" : vid == 19 ? "vsock" : NULL;
}

static size_t vio_record_len(uint32_t vid)
{
	return vid == 2 ? 16 : vid == 1 ? 272 : vid == 19 ? 16 : 0; /* [F-104], [F-110], [F-111] */
}

static void rl_buckets(struct ins *x, const uint8_t *rl, const char *dir);

/* virtio-net [F-110] and virtio-vsock [F-111] device records. */
static void netvsock_record(struct ins *x, uint32_t vid, const uint8_t *p)
{
	char mac[18];

	if (vid == 19) {
		if (x->g)
			st_jkv_u64(x->g, "guest_cid", le(p, 8));
		else
			printf("    guest_cid %llu\n", (unsigned long long)le(p, 8));
		return;
	}
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3], p[4],
		 p[5]);
	if (x->g) {
		if (le(p + 8, 4) & 1)
			st_jkv_str(x->g, "mac", mac);
	} else {
		printf("    mac %s\n", le(p + 8, 4) & 1 ? mac : "(none)");
	}
	rl_buckets(x, p + 16, "rx ");
	rl_buckets(x, p + 144, "tx ");
}

/* A virtio-mmio device state (docs/format.md 9.1.1, version 1): transport,
 * queues, the device record, the rate limiter.  Anything that does not
 * parse is left to the hexdump. */
static void virtio_state(struct ins *x, const struct sqb_device *dev)
{
	const uint8_t *p = dev->state;
	size_t len = dev->state_len, q, want;
	uint32_t vid, nq;

	if (dev->version != 1 || len < 56)
		return;
	vid = (uint32_t)le(p, 4);
	nq = (uint32_t)le(p + 4, 4);
	want = 56 + (size_t)nq * 40 + vio_record_len(vid) + 128;
	if (nq > 64 || len != want || !vio_name(vid))
		return;
	if (x->g) {
		st_jkey(x->g, "virtio");
		st_jmap(x->g);
		st_jkv_str(x->g, "device", vio_name(vid));
		st_jkv_hex(x->g, "status", le(p + 24, 4));
		st_jkv_hex(x->g, "device_features", le(p + 8, 8));
		st_jkv_hex(x->g, "driver_features", le(p + 16, 8));
		st_jkv_u64(x->g, "interrupt_status", le(p + 40, 4));
		st_jkey(x->g, "queues");
		st_jarr(x->g);
	} else {
		printf("    virtio-%s status 0x%02llx features acked 0x%llx of 0x%llx isr %llu\n",
		       vio_name(vid), (unsigned long long)le(p + 24, 4),
		       (unsigned long long)le(p + 16, 8), (unsigned long long)le(p + 8, 8),
		       (unsigned long long)le(p + 40, 4));
	}
	for (q = 0; q < nq; q++) {
		const uint8_t *r = p + 56 + q * 40;

		if (x->g) {
			st_jmap(x->g);
			st_jkv_u64(x->g, "num", le(r, 2));
			st_jkv_bool(x->g, "ready", (int)(le(r + 4, 4) & 1));
			st_jkv_u64(x->g, "next_avail", le(r + 32, 2));
			st_jkv_u64(x->g, "next_used", le(r + 34, 2));
			st_jmap_end(x->g);
		} else {
			printf("    queue %zu: num %llu%s avail %llu used %llu\n", q,
			       (unsigned long long)le(r, 2), le(r + 4, 4) & 1 ? " ready" : "",
			       (unsigned long long)le(r + 32, 2),
			       (unsigned long long)le(r + 34, 2));
		}
	}
	if (x->g)
		st_jarr_end(x->g);
	p += 56 + (size_t)nq * 40;
	if (vid == 2) {
		if (x->g) {
			st_jkv_u64(x->g, "capacity_sectors", le(p, 8));
			st_jkv_bool(x->g, "read_only", (int)(le(p + 8, 4) & 1));
			st_jkv_bool(x->g, "writeback", (int)(le(p + 8, 4) >> 1 & 1));
		} else {
			printf("    capacity %llu sectors%s%s\n", (unsigned long long)le(p, 8),
			       le(p + 8, 4) & 1 ? " read-only" : "",
			       le(p + 8, 4) & 2 ? " writeback" : "");
		}
		p += 16;
	} else if (vid == 1 || vid == 19) {
		netvsock_record(x, vid, p);
		p += vio_record_len(vid);
	}
	rl_buckets(x, p, "");
	if (x->g)
		st_jmap_end(x->g);
}

/* One rate-limiter record ([F-106]): its enabled buckets. */
static void rl_buckets(struct ins *x, const uint8_t *p, const char *dir)
{
	for (int b = 0; b < 2; b++) {
		const uint8_t *k = p + 16 + 56 * b;
		const char *nm = b ? "ops" : "bandwidth";

		if (!(le(k, 4) & 1))
			continue;
		if (x->g) {
			char key[48];

			const char *pre = *dir == 'r' ? "rx_" : *dir == 't' ? "tx_" : "";

			snprintf(key, sizeof(key), "%srate_limiter_%s_size", pre, nm);
			st_jkv_u64(x->g, key, le(k + 8, 8));
			snprintf(key, sizeof(key), "%srate_limiter_%s_refill_ms", pre, nm);
			st_jkv_u64(x->g, key, le(k + 24, 8));
		} else {
			printf("    %srate limiter %s: size %llu refill %llu ms budget %llu%s\n",
			       dir, nm, (unsigned long long)le(k + 8, 8),
			       (unsigned long long)le(k + 24, 8), (unsigned long long)le(k + 40, 8),
			       le(p, 4) & 1 ? " (blocked)" : "");
		}
	}
}

/* A virtio-pci function's record (docs/format.md [F-135]): the PCI part,
 * then the same library state as a 0x100 record. */
static void virtio_pci_state(struct ins *x, const struct sqb_device *dev)
{
	struct sqb_device inner = *dev;
	uint64_t nvec, skip;

	if (dev->state_len < 20 || le(dev->state, 4) != 1)
		return;
	nvec = le(dev->state + 16, 4);
	skip = 284 + 20 * nvec;
	if (nvec > 64 || skip > dev->state_len)
		return;
	if (x->g) {
		st_jkey(x->g, "pci");
		st_jmap(x->g);
		st_jkv_u64(x->g, "device_number", le(dev->state + 4, 4));
		st_jkv_hex(x->g, "bar0", le(dev->state + 8, 8));
		st_jkv_u64(x->g, "msix_vectors", nvec);
		st_jkv_hex(x->g, "command", le(dev->state + 20 + 4, 2));
		st_jmap_end(x->g);
	} else {
		printf("    pci 00:%02llx.0 bar0 0x%llx msix %llu vectors, command 0x%04llx\n",
		       (unsigned long long)le(dev->state + 4, 4),
		       (unsigned long long)le(dev->state + 8, 8), (unsigned long long)nvec,
		       (unsigned long long)le(dev->state + 20 + 4, 2));
	}
	inner.state = dev->state + skip;
	inner.state_len = dev->state_len - skip;
	virtio_state(x, &inner);
}

static int do_devices(struct ins *x)
{
	unsigned int n = sqb_snap_device_count(x->s);

	if (x->g) {
		st_jkey(x->g, "devices");
		st_jarr(x->g);
	} else {
		printf("\ndevices: %u\n", n);
	}
	for (unsigned int i = 0; i < n; i++) {
		struct sqb_device dev;
		struct sqb_diag d;
		void *back;
		int err = sqb_snap_device(x->s, i, &dev, &back, &d);

		if (err)
			return st_fail_diag(sqb_snap_path(x->s), err, &d);
		if (x->g) {
			st_jmap(x->g);
			st_jkv_str(x->g, "id", dev.id);
			st_jkv_u64(x->g, "type", dev.type);
			st_jkv_u64(x->g, "version", dev.version);
			st_jkv_u64(x->g, "bus_addr", dev.bus_addr);
			st_jkv_u64(x->g, "irq", dev.irq);
			st_jkv_u64(x->g, "state_length", dev.state_len);
			if ((dev.type & ~0xffu) == 0x100)
				virtio_state(x, &dev);
			else if ((dev.type & ~0xffu) == 0x200)
				virtio_pci_state(x, &dev);
			st_jmap_end(x->g);
		} else {
			printf("  %-16s type %u v%u  bus 0x%llx  irq %u  state %zu bytes\n", dev.id,
			       dev.type, dev.version, (unsigned long long)dev.bus_addr, dev.irq,
			       dev.state_len);
			if ((dev.type & ~0xffu) == 0x100)
				virtio_state(x, &dev);
			else if ((dev.type & ~0xffu) == 0x200)
				virtio_pci_state(x, &dev);
			if (x->detail)
				hexdump(dev.state, dev.state_len > 256 ? 256 : dev.state_len);
		}
		free(back);
	}
	if (x->g)
		st_jarr_end(x->g);
	return 0;
}

static int do_kv(struct ins *x, uint32_t type, const char *name)
{
	struct sqb_kv *kv = NULL;
	unsigned int n = 0;
	void *back = NULL;
	struct sqb_diag d;
	int err = 0;

	if (sqb_snap_section_find(x->s, type, 0) >= 0)
		err = sqb_snap_kv(x->s, type, &kv, &n, &back, &d);
	if (err)
		return st_fail_diag(sqb_snap_path(x->s), err, &d);
	if (x->g) {
		st_jkey(x->g, name);
		st_jmap(x->g);
	} else {
		printf("\n%s: %u key%s\n", name, n, n == 1 ? "" : "s");
	}
	for (unsigned int i = 0; i < n; i++) {
		if (x->g)
			st_jkv_bytes(x->g, kv[i].key, kv[i].value, kv[i].value_len);
		else
			printf("  %s = %.*s\n", kv[i].key, (int)kv[i].value_len, kv[i].value);
	}
	if (x->g)
		st_jmap_end(x->g);
	free(kv);
	free(back);
	return 0;
}

static int do_wset(struct ins *x)
{
	struct sqb_wset_range *r = NULL;
	size_t n = 0;
	uint64_t pages = 0;
	struct sqb_diag d;
	char h[32];
	int err = 0;

	if (sqb_snap_section_find(x->s, SQB_SEC_WSET, 0) >= 0)
		err = sqb_snap_working_set(x->s, &r, &n, &d);
	if (err)
		return st_fail_diag(sqb_snap_path(x->s), err, &d);
	for (size_t i = 0; i < n; i++)
		pages += r[i].pages;
	if (x->g) {
		st_jkey(x->g, "working_set");
		st_jmap(x->g);
		st_jkv_u64(x->g, "ranges", n);
		st_jkv_u64(x->g, "pages", pages);
		st_jkv_u64(x->g, "bytes", pages * x->in->guest_page_size);
		st_jmap_end(x->g);
	} else {
		printf("\nworking set: %zu range%s, %llu pages (%s)\n", n, n == 1 ? "" : "s",
		       (unsigned long long)pages, st_human(pages * x->in->guest_page_size, h));
	}
	free(r);
	return 0;
}

static int show(struct ins *x)
{
	/* JSON always has every part; the flags only add detail (extents) */
	int summary = !x->show || x->g;
	unsigned int all = summary ? SHOW_VCPUS | SHOW_DEVICES | SHOW_MEMORY : x->show;
	int rc = 0;

	if (x->g)
		st_jmap(x->g), json_header(x), do_sections(x);
	else if (summary)
		text_header(x), do_sections(x);
	if (all & SHOW_MEMORY)
		do_memory(x);
	if (all & SHOW_VCPUS && !rc)
		rc = do_vcpus(x);
	if (all & SHOW_DEVICES && !rc)
		rc = do_devices(x);
	if (summary && !rc)
		rc = do_kv(x, SQB_SEC_CONF, "config");
	if (summary && !rc)
		rc = do_kv(x, SQB_SEC_META, "metadata");
	if (summary && !rc)
		rc = do_wset(x);
	if (x->g) {
		st_jmap_end(x->g);
		if (st_json_end(x->g))
			rc = st_fail(ST_FAIL, "cannot write output");
		else if (!rc)
			printf("\n");
	}
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"json", no_argument, NULL, 'j'},	      {"vcpus", no_argument, NULL, 'v'},
	    {"devices", no_argument, NULL, 'd'},      {"memory", no_argument, NULL, 'm'},
	    {"parent", required_argument, NULL, 'p'}, {"no-parents", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},	      {0}};
	const char *parents[ST_MAX_PARENTS];
	unsigned int np = 0;
	struct ins x = {0};
	int json = 0, nopar = 0, opt, rc;

	while ((opt = getopt_long(argc, argv, "hjp:", lo, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'v':
			x.show |= SHOW_VCPUS;
			break;
		case 'd':
			x.show |= SHOW_DEVICES;
			break;
		case 'm':
			x.show |= SHOW_MEMORY;
			break;
		case 'N':
			nopar = 1;
			break;
		case 'p':
			if (st_add_parent(parents, &np, optarg))
				return ST_USAGE;
			break;
		case 'h':
			return st_help();
		default:
			return st_usage("bad arguments");
		}
	}
	if (optind != argc - 1)
		return st_usage(optind == argc ? "missing FILE" : "too many arguments");
	x.detail = x.show != 0;
	if (st_open_lenient(&x.s, argv[optind], parents, np, nopar))
		return ST_FAIL;
	x.in = sqb_snap_get_info(x.s);
	if (json && !(x.g = st_json_new()))
		rc = st_fail(ST_FAIL, "out of memory");
	else
		rc = show(&x);
	sqb_snap_free(x.s);
	return rc;
}
