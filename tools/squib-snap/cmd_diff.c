/* squib-snap diff A B: what changed from A to B - header fields, guest
 * memory page ranges (pages B inherits from A through its parent chain are
 * known unchanged without reading them), registers per vCPU, interrupt
 * controller records, devices, config and metadata; --output writes B as a
 * diff snapshot on A (sqb_snap_write_diff). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "snaptool.h"

#define TEXT_RANGES 16
#define RUN_PAGES   65536u /* pages per sqb_snap_compare call */

struct dx {
	sqb_snap *a, *b;
	const struct sqb_snap_info *ai, *bi;
	yajl_gen g;
	int all;
	unsigned int changes; /* differences other than memory */
	/* memory */
	uint64_t changed, compared, nranges, rstart, rlen;
	uint8_t *diff, *same;
};

static const char *arrow = "\xe2\x86\x92"; /* → */

/* ---- memory ---- */

static void range_flush(struct dx *x)
{
	if (!x->rlen)
		return;
	if (x->g) {
		st_jmap(x->g);
		st_jkv_u64(x->g, "gpa", x->rstart);
		st_jkv_u64(x->g, "pages", x->rlen);
		st_jmap_end(x->g);
	} else if (x->all || x->nranges < TEXT_RANGES) {
		uint64_t end = x->rstart + x->rlen * x->bi->guest_page_size - 1;

		printf("  0x%012llx-0x%012llx  %llu page%s\n", (unsigned long long)x->rstart,
		       (unsigned long long)end, (unsigned long long)x->rlen,
		       x->rlen == 1 ? "" : "s");
	}
	x->nranges++;
	x->rlen = 0;
}

static void page_changed(struct dx *x, uint64_t gpa)
{
	if (x->rlen && x->rstart + x->rlen * x->bi->guest_page_size == gpa) {
		x->rlen++;
		return;
	}
	range_flush(x);
	x->rstart = gpa;
	x->rlen = 1;
}

/* same[i] = 1 when page i of [gpa, +n pages) of s resolves, through PARENT
 * extents, to snapshot `a` itself (so it cannot differ from A). */
static int inherited(const sqb_snap *s, const struct sqb_digest *a, uint64_t gpa, uint64_t n,
		     uint8_t *same)
{
	uint32_t gps = sqb_snap_get_info(s)->guest_page_size;
	const struct sqb_extent *e;
	unsigned int r;
	uint64_t page;
	size_t idx;

	if (!memcmp(sqb_snap_get_info(s)->digest.b, a->b, 16)) {
		memset(same, 1, n);
		return 0;
	}
	memset(same, 0, n);
	if (sqb_snap_locate(s, gpa, &r, &page) || sqb_snap_extent_find(s, r, page, &idx))
		return 0;
	e = sqb_snap_extents(s, r);
	while (n && idx < sqb_snap_extent_count(s, r)) {
		uint64_t take = e[idx].first_page + e[idx].page_count - page;

		if (take > n)
			take = n;
		if (e[idx].kind == SQB_EXT_PARENT && sqb_snap_parent(s))
			inherited(sqb_snap_parent(s), a, gpa, take, same);
		gpa += take * gps;
		same += take;
		page += take;
		n -= take;
		idx++;
	}
	return 0;
}

/* Compare [lo, hi), which lies in one region of each snapshot, block by
 * block on every core (sqb_snap_compare: identical stored extents and ZERO
 * against ZERO are equal without decoding, all else is compared bytewise). */
static int compare_span(struct dx *x, uint64_t lo, uint64_t hi)
{
	uint32_t gps = x->bi->guest_page_size;

	for (uint64_t gpa = lo; gpa < hi;) {
		uint32_t n =
		    (hi - gpa) / gps < RUN_PAGES ? (uint32_t)((hi - gpa) / gps) : RUN_PAGES;
		struct sqb_diag d;
		int side, err;

		/* pages B inherits from A through its parent chain: not read */
		inherited(x->b, &x->ai->digest, gpa, n, x->same);
		err = sqb_snap_compare(x->a, x->b, gpa, n, x->same, x->diff, 0, &side, &d);
		if (err)
			return st_fail_diag(sqb_snap_path(side ? x->b : x->a), err, &d);
		for (uint32_t i = 0; i < n; i++)
			if (x->diff[i]) {
				page_changed(x, gpa + (uint64_t)i * gps);
				x->changed++;
			}
		x->compared += n;
		gpa += (uint64_t)n * gps;
	}
	return 0;
}

/* Pages of s that lie in no region of o. */
static uint64_t pages_outside(const sqb_snap *s, const sqb_snap *o)
{
	uint64_t out = 0;

	for (unsigned int r = 0; r < sqb_snap_region_count(s); r++) {
		struct sqb_region rg, og;
		uint64_t covered = 0;

		sqb_snap_region(s, r, &rg);
		for (unsigned int k = 0; k < sqb_snap_region_count(o); k++) {
			uint64_t lo, hi;

			sqb_snap_region(o, k, &og);
			lo = rg.gpa > og.gpa ? rg.gpa : og.gpa;
			hi = rg.gpa + rg.size < og.gpa + og.size ? rg.gpa + rg.size
								 : og.gpa + og.size;
			if (lo < hi)
				covered += hi - lo;
		}
		out += (rg.size - covered) / sqb_snap_get_info(s)->guest_page_size;
	}
	return out;
}

/* Regions of s without an identical region (same gpa and size) in o. */
static void regions_only(struct dx *x, const sqb_snap *s, const sqb_snap *o, const char *key)
{
	if (x->g) {
		st_jkey(x->g, key);
		st_jarr(x->g);
	}
	for (unsigned int r = 0; r < sqb_snap_region_count(s); r++) {
		struct sqb_region rg, og;
		int found = 0;

		sqb_snap_region(s, r, &rg);
		for (unsigned int k = 0; k < sqb_snap_region_count(o) && !found; k++)
			found =
			    !sqb_snap_region(o, k, &og) && og.gpa == rg.gpa && og.size == rg.size;
		if (found)
			continue;
		x->changes++;
		if (x->g) {
			st_jmap(x->g);
			st_jkv_u64(x->g, "gpa", rg.gpa);
			st_jkv_u64(x->g, "size", rg.size);
			st_jmap_end(x->g);
		} else {
			printf("  region [0x%llx, +0x%llx) only in %s\n",
			       (unsigned long long)rg.gpa, (unsigned long long)rg.size,
			       key[strlen(key) - 1] == 'a' ? "A" : "B");
		}
	}
	if (x->g)
		st_jarr_end(x->g);
}

static int diff_memory(struct dx *x)
{
	uint32_t gps = x->bi->guest_page_size;
	uint64_t total = 0;
	int rc = 0;

	if (x->g) {
		st_jkey(x->g, "memory");
		st_jmap(x->g);
		st_jkey(x->g, "ranges");
		st_jarr(x->g);
	} else {
		printf("memory:\n");
	}
	x->diff = malloc(RUN_PAGES);
	x->same = malloc(RUN_PAGES);
	if (!x->diff || !x->same)
		return st_fail(ST_FAIL, "out of memory");
	for (unsigned int r = 0; r < sqb_snap_region_count(x->b); r++) {
		struct sqb_region rb;

		sqb_snap_region(x->b, r, &rb);
		total += rb.size;
	}
	st_progress_start("diff", 0, 0);
	for (unsigned int r = 0; r < sqb_snap_region_count(x->b) && !rc; r++) {
		for (unsigned int k = 0; k < sqb_snap_region_count(x->a) && !rc; k++) {
			struct sqb_region rb, ra;
			uint64_t lo, hi;

			sqb_snap_region(x->b, r, &rb);
			sqb_snap_region(x->a, k, &ra);
			lo = rb.gpa > ra.gpa ? rb.gpa : ra.gpa;
			hi = rb.gpa + rb.size < ra.gpa + ra.size ? rb.gpa + rb.size
								 : ra.gpa + ra.size;
			if (lo < hi)
				rc = compare_span(x, lo, hi);
		}
	}
	st_progress_stop();
	if (rc)
		return rc;
	range_flush(x);
	if (x->g) {
		st_jarr_end(x->g);
		st_jkv_u64(x->g, "changed_pages", x->changed);
		st_jkv_u64(x->g, "changed_bytes", x->changed * gps);
		st_jkv_u64(x->g, "compared_pages", x->compared);
		st_jkv_u64(x->g, "range_count", x->nranges);
	} else {
		if (!x->all && x->nranges > TEXT_RANGES)
			printf("  ... %llu more ranges (--all or --json lists every range)\n",
			       (unsigned long long)(x->nranges - TEXT_RANGES));
		printf("  %llu of %llu pages changed in %llu range%s\n",
		       (unsigned long long)x->changed, (unsigned long long)x->compared,
		       (unsigned long long)x->nranges, x->nranges == 1 ? "" : "s");
	}
	regions_only(x, x->a, x->b, "regions_only_in_a");
	regions_only(x, x->b, x->a, "regions_only_in_b");
	{
		uint64_t added = pages_outside(x->b, x->a), removed = pages_outside(x->a, x->b);

		if (x->g) {
			st_jkv_u64(x->g, "added_pages", added);
			st_jkv_u64(x->g, "removed_pages", removed);
			st_jmap_end(x->g);
		} else if (added || removed) {
			printf("  %llu page%s only in B (added), %llu only in A (removed)\n",
			       (unsigned long long)added, added == 1 ? "" : "s",
			       (unsigned long long)removed);
		}
	}
	return 0;
}

/* ---- header ---- */

static void field(struct dx *x, const char *name, const char *a, const char *b)
{
	if (!strcmp(a, b))
		return;
	x->changes++;
	if (x->g) {
		st_jmap(x->g);
		st_jkv_str(x->g, "field", name);
		st_jkv_str(x->g, "a", a);
		st_jkv_str(x->g, "b", b);
		st_jmap_end(x->g);
	} else {
		printf("  %s: %s %s %s\n", name, a, arrow, b);
	}
}

static void fieldu(struct dx *x, const char *name, uint64_t a, uint64_t b)
{
	char sa[24], sb[24];

	snprintf(sa, sizeof(sa), "%llu", (unsigned long long)a);
	snprintf(sb, sizeof(sb), "%llu", (unsigned long long)b);
	field(x, name, sa, sb);
}

static void diff_header(struct dx *x)
{
	const struct sqb_snap_info *a = x->ai, *b = x->bi;

	if (x->g) {
		st_jkey(x->g, "header");
		st_jarr(x->g);
	} else {
		printf("header:\n");
	}
	field(x, "arch", st_arch_name(a->arch), st_arch_name(b->arch));
	field(x, "hypervisor", st_hv_name(a->hv), st_hv_name(b->hv));
	field(x, "kind", st_kind_name(a->kind), st_kind_name(b->kind));
	field(x, "role", st_role_name(a->role), st_role_name(b->role));
	fieldu(x, "guest_page_size", a->guest_page_size, b->guest_page_size);
	fieldu(x, "host_page_size", a->host_page_size, b->host_page_size);
	fieldu(x, "regions", sqb_snap_region_count(x->a), sqb_snap_region_count(x->b));
	if (x->g)
		st_jarr_end(x->g);
}

/* ---- vCPUs and records ---- */

static unsigned int bytes_differ(const void *p, const void *q, size_t n)
{
	const uint8_t *a = p, *b = q;
	unsigned int d = 0;

	for (size_t i = 0; i < n; i++)
		d += a[i] != b[i];
	return d;
}

/* Records whose every field st_decode_regs shows (X86_SREGS: only the
 * control registers at 224..279 are decoded, so other bytes must match). */
static int decoded_fully(const struct sqb_record *a, const struct sqb_record *b)
{
	const uint8_t *p = a->data, *q = b->data;

	switch (a->tag) {
	case SQB_REC_X86_REGS:
	case SQB_REC_ARM64_CORE:
		return 1;
	case SQB_REC_ARM64_SYSREGS:
		return a->len >= 8 && !memcmp(p, q, 8); /* same count: decoded by name */
	case SQB_REC_X86_SREGS:
		return a->len == 312 && !memcmp(p, q, 224) && !memcmp(p + 280, q + 280, 32);
	}
	return 0;
}

static void rec_change(struct dx *x, const struct sqb_record *ra, const struct sqb_record *rb)
{
	uint16_t tag = ra ? ra->tag : rb->tag;
	const char *nm = sqb_record_tag_name(tag);
	char tmp[16];
	unsigned int nd = 0;
	const char *what = !ra ? "added" : !rb ? "removed" : "changed";

	if (ra && rb) {
		if (ra->len == rb->len && !memcmp(ra->data, rb->data, ra->len))
			return;
		if (ra->len == rb->len && decoded_fully(ra, rb))
			return; /* every changed byte was shown as a register */
		nd = bytes_differ(ra->data, rb->data, ra->len < rb->len ? ra->len : rb->len);
	}
	snprintf(tmp, sizeof(tmp), "0x%04x", tag);
	x->changes++;
	if (x->g) {
		st_jmap(x->g);
		st_jkv_str(x->g, "tag", nm ? nm : tmp);
		st_jkv_str(x->g, "change", what);
		st_jkv_u64(x->g, "length_a", ra ? ra->len : 0);
		st_jkv_u64(x->g, "length_b", rb ? rb->len : 0);
		st_jkv_u64(x->g, "bytes_differ", nd);
		st_jmap_end(x->g);
	} else if (ra && rb) {
		printf("    %s: %u %s%s\n", nm ? nm : tmp, nd,
		       nd == 1 ? "byte differs" : "bytes differ",
		       ra->len != rb->len ? " (length changed)" : "");
	} else {
		printf("    %s: %s\n", nm ? nm : tmp, what);
	}
}

static void diff_records(struct dx *x, const struct sqb_record *ra, unsigned int na,
			 const struct sqb_record *rb, unsigned int nb)
{
	for (unsigned int i = 0; i < na; i++)
		rec_change(x, &ra[i], sqb_record_find(rb, nb, ra[i].tag));
	for (unsigned int i = 0; i < nb; i++)
		if (!sqb_record_find(ra, na, rb[i].tag))
			rec_change(x, NULL, &rb[i]);
}

static void diff_regs(struct dx *x, const struct sqb_record *ra, unsigned int na,
		      const struct sqb_record *rb, unsigned int nb)
{
	static struct st_reg a[ST_MAX_REGS], b[ST_MAX_REGS];
	unsigned int n = st_decode_regs(x->ai->arch, ra, na, a, ST_MAX_REGS);
	unsigned int m = st_decode_regs(x->bi->arch, rb, nb, b, ST_MAX_REGS);

	for (unsigned int i = 0; i < n; i++)
		for (unsigned int k = 0; k < m; k++) {
			if (strcmp(a[i].name, b[k].name) || a[i].value == b[k].value)
				continue;
			x->changes++;
			if (x->g) {
				st_jmap(x->g);
				st_jkv_str(x->g, "name", a[i].name);
				st_jkv_hex(x->g, "a", a[i].value);
				st_jkv_hex(x->g, "b", b[k].value);
				st_jmap_end(x->g);
			} else {
				printf("    %s: 0x%llx %s 0x%llx\n", a[i].name,
				       (unsigned long long)a[i].value, arrow,
				       (unsigned long long)b[k].value);
			}
		}
}

static int load_recs(sqb_snap *s, uint32_t type, uint32_t inst, struct sqb_record **r,
		     unsigned int *n, void **back)
{
	struct sqb_diag d;
	int err;

	*r = NULL;
	*n = 0;
	*back = NULL;
	if (sqb_snap_section_find(s, type, inst) < 0)
		return 0;
	if ((err = sqb_snap_records(s, type, inst, r, n, back, &d)))
		return st_fail_diag(sqb_snap_path(s), err, &d);
	return 0;
}

/* One record-list section (VCPU[i] or INTC[0]) in both snapshots. */
static int diff_reclist(struct dx *x, uint32_t type, uint32_t inst, const char *label)
{
	struct sqb_record *ra, *rb;
	unsigned int na, nb, before = x->changes;
	void *ka, *kb;
	int rc;

	if ((rc = load_recs(x->a, type, inst, &ra, &na, &ka)))
		return rc;
	if ((rc = load_recs(x->b, type, inst, &rb, &nb, &kb))) {
		free(ra);
		free(ka);
		return rc;
	}
	if (x->g) {
		st_jmap(x->g);
		st_jkv_str(x->g, "section", label);
		st_jkv_u64(x->g, "index", inst);
		st_jkv_str(x->g, "status",
			   sqb_snap_section_find(x->a, type, inst) < 0	 ? "added"
			   : sqb_snap_section_find(x->b, type, inst) < 0 ? "removed"
									 : "present");
		st_jkey(x->g, "registers");
		st_jarr(x->g);
	} else {
		printf("  %s %u:\n", label, inst);
	}
	if (type == SQB_SEC_VCPU)
		diff_regs(x, ra, na, rb, nb);
	if (x->g) {
		st_jarr_end(x->g);
		st_jkey(x->g, "records");
		st_jarr(x->g);
	}
	diff_records(x, ra, na, rb, nb);
	if (x->g) {
		st_jarr_end(x->g);
		st_jmap_end(x->g);
	} else if (before == x->changes) {
		printf("    (unchanged)\n");
	}
	free(ra);
	free(rb);
	free(ka);
	free(kb);
	return 0;
}

static int diff_vcpus(struct dx *x)
{
	static uint32_t ia[4096], ib[4096];
	unsigned int na = st_instances(x->a, SQB_SEC_VCPU, ia, 4096);
	unsigned int nb = st_instances(x->b, SQB_SEC_VCPU, ib, 4096);
	int rc = 0;

	if (x->g) {
		st_jkey(x->g, "vcpus");
		st_jarr(x->g);
	} else {
		printf("vcpus: %u %s %u\n", na, arrow, nb);
	}
	for (unsigned int i = 0; i < na && i < 4096 && !rc; i++)
		rc = diff_reclist(x, SQB_SEC_VCPU, ia[i], "vcpu");
	for (unsigned int i = 0; i < nb && i < 4096 && !rc; i++)
		if (sqb_snap_section_find(x->a, SQB_SEC_VCPU, ib[i]) < 0)
			rc = diff_reclist(x, SQB_SEC_VCPU, ib[i], "vcpu");
	if (!rc && (sqb_snap_section_find(x->a, SQB_SEC_INTC, 0) >= 0 ||
		    sqb_snap_section_find(x->b, SQB_SEC_INTC, 0) >= 0))
		rc = diff_reclist(x, SQB_SEC_INTC, 0, "irqchip");
	if (x->g)
		st_jarr_end(x->g);
	return rc;
}

/* ---- devices, config, metadata ---- */

struct devset {
	unsigned int n;
	struct sqb_device *d;
	void **back;
};

static int load_devs(sqb_snap *s, struct devset *ds)
{
	struct sqb_diag d;
	int err;

	ds->n = sqb_snap_device_count(s);
	ds->d = calloc(ds->n + 1, sizeof(*ds->d));
	ds->back = calloc(ds->n + 1, sizeof(void *));
	if (!ds->d || !ds->back)
		return st_fail(ST_FAIL, "out of memory");
	for (unsigned int i = 0; i < ds->n; i++)
		if ((err = sqb_snap_device(s, i, &ds->d[i], &ds->back[i], &d)))
			return st_fail_diag(sqb_snap_path(s), err, &d);
	return 0;
}

static void free_devs(struct devset *ds)
{
	for (unsigned int i = 0; ds->back && i < ds->n; i++)
		free(ds->back[i]);
	free(ds->back);
	free(ds->d);
}

static const struct sqb_device *dev_find(const struct devset *ds, const char *id)
{
	for (unsigned int i = 0; i < ds->n; i++)
		if (!strcmp(ds->d[i].id, id))
			return &ds->d[i];
	return NULL;
}

static void dev_change(struct dx *x, const struct sqb_device *a, const struct sqb_device *b)
{
	const char *what = !a ? "added" : !b ? "removed" : "changed";
	unsigned int nd = 0;

	if (a && b) {
		if (a->type == b->type && a->version == b->version && a->bus_addr == b->bus_addr &&
		    a->irq == b->irq && a->state_len == b->state_len &&
		    !memcmp(a->state, b->state, a->state_len))
			return;
		nd = bytes_differ(a->state, b->state,
				  a->state_len < b->state_len ? a->state_len : b->state_len);
	}
	x->changes++;
	if (!x->g) {
		printf("  %s: %s", a ? a->id : b->id, what);
		if (a && b) {
			if (a->type != b->type || a->version != b->version)
				printf(", type/version %u/%u %s %u/%u", a->type, a->version, arrow,
				       b->type, b->version);
			if (a->bus_addr != b->bus_addr || a->irq != b->irq)
				printf(", bus/irq 0x%llx/%u %s 0x%llx/%u",
				       (unsigned long long)a->bus_addr, a->irq, arrow,
				       (unsigned long long)b->bus_addr, b->irq);
			printf(", state: %u %s", nd, nd == 1 ? "byte differs" : "bytes differ");
			if (a->state_len != b->state_len)
				printf(" (length %zu %s %zu)", a->state_len, arrow, b->state_len);
		}
		printf("\n");
		return;
	}
	st_jmap(x->g);
	st_jkv_str(x->g, "id", a ? a->id : b->id);
	st_jkv_str(x->g, "change", what);
	if (a && b) {
		st_jkv_u64(x->g, "state_bytes_differ", nd);
		st_jkv_u64(x->g, "state_length_a", a->state_len);
		st_jkv_u64(x->g, "state_length_b", b->state_len);
		st_jkv_bool(x->g, "header_changed",
			    a->type != b->type || a->version != b->version ||
				a->bus_addr != b->bus_addr || a->irq != b->irq);
	}
	st_jmap_end(x->g);
}

static int diff_devices(struct dx *x)
{
	struct devset da = {0}, db = {0};
	unsigned int before = x->changes;
	int rc;

	if (!(rc = load_devs(x->a, &da)) && !(rc = load_devs(x->b, &db))) {
		if (x->g) {
			st_jkey(x->g, "devices");
			st_jarr(x->g);
		} else {
			printf("devices:\n");
		}
		for (unsigned int i = 0; i < da.n; i++)
			dev_change(x, &da.d[i], dev_find(&db, da.d[i].id));
		for (unsigned int i = 0; i < db.n; i++)
			if (!dev_find(&da, db.d[i].id))
				dev_change(x, NULL, &db.d[i]);
		if (x->g)
			st_jarr_end(x->g);
		else if (before == x->changes)
			printf("  (unchanged)\n");
	}
	free_devs(&da);
	free_devs(&db);
	return rc;
}

static const struct sqb_kv *kv_find(const struct sqb_kv *kv, unsigned int n, const char *k)
{
	for (unsigned int i = 0; i < n; i++)
		if (!strcmp(kv[i].key, k))
			return &kv[i];
	return NULL;
}

static void kv_change(struct dx *x, const char *key, const struct sqb_kv *a, const struct sqb_kv *b)
{
	if (a && b && a->value_len == b->value_len && !memcmp(a->value, b->value, a->value_len))
		return;
	x->changes++;
	if (x->g) {
		st_jmap(x->g);
		st_jkv_str(x->g, "key", key);
		st_jkv_str(x->g, "change", !a ? "added" : !b ? "removed" : "changed");
		if (a)
			st_jkv_bytes(x->g, "a", a->value, a->value_len);
		else
			st_jkv_null(x->g, "a");
		if (b)
			st_jkv_bytes(x->g, "b", b->value, b->value_len);
		else
			st_jkv_null(x->g, "b");
		st_jmap_end(x->g);
	} else {
		printf("  %s: %.*s %s %.*s\n", key, a ? (int)a->value_len : 9,
		       a ? a->value : "(absent)", arrow, b ? (int)b->value_len : 9,
		       b ? b->value : "(absent)");
	}
}

static int diff_kv(struct dx *x, uint32_t type, const char *name)
{
	struct sqb_kv *ka = NULL, *kb = NULL;
	unsigned int na = 0, nb = 0, before = x->changes;
	void *ba = NULL, *bb = NULL;
	struct sqb_diag d;
	int err = 0;

	if (sqb_snap_section_find(x->a, type, 0) >= 0 &&
	    (err = sqb_snap_kv(x->a, type, &ka, &na, &ba, &d)))
		return st_fail_diag(sqb_snap_path(x->a), err, &d);
	if (sqb_snap_section_find(x->b, type, 0) >= 0 &&
	    (err = sqb_snap_kv(x->b, type, &kb, &nb, &bb, &d))) {
		free(ka);
		free(ba);
		return st_fail_diag(sqb_snap_path(x->b), err, &d);
	}
	if (x->g) {
		st_jkey(x->g, name);
		st_jarr(x->g);
	} else {
		printf("%s:\n", name);
	}
	for (unsigned int i = 0; i < na; i++)
		kv_change(x, ka[i].key, &ka[i], kv_find(kb, nb, ka[i].key));
	for (unsigned int i = 0; i < nb; i++)
		if (!kv_find(ka, na, kb[i].key))
			kv_change(x, kb[i].key, NULL, &kb[i]);
	if (x->g)
		st_jarr_end(x->g);
	else if (before == x->changes)
		printf("  (unchanged)\n");
	free(ka);
	free(kb);
	free(ba);
	free(bb);
	return 0;
}

static void json_id(yajl_gen g, const char *key, const sqb_snap *s)
{
	char u[37], d[33];

	st_jkey(g, key);
	st_jmap(g);
	st_jkv_str(g, "file", sqb_snap_path(s));
	sqb_uuid_format(&sqb_snap_get_info(s)->uuid, u);
	sqb_digest_format(&sqb_snap_get_info(s)->digest, d);
	st_jkv_str(g, "uuid", u);
	st_jkv_str(g, "digest", d);
	st_jmap_end(g);
}

static int run_diff(struct dx *x)
{
	int rc;

	if (x->g) {
		st_jmap(x->g);
		json_id(x->g, "a", x->a);
		json_id(x->g, "b", x->b);
	} else {
		printf("--- %s\n+++ %s\n", sqb_snap_path(x->a), sqb_snap_path(x->b));
	}
	diff_header(x);
	if (x->ai->guest_page_size != x->bi->guest_page_size)
		return st_fail(ST_FAIL, "page sizes differ: memory is not compared");
	if ((rc = diff_memory(x)) || (rc = diff_vcpus(x)) || (rc = diff_devices(x)) ||
	    (rc = diff_kv(x, SQB_SEC_CONF, "config")) ||
	    (rc = diff_kv(x, SQB_SEC_META, "metadata")))
		return rc;
	if (x->g) {
		st_jkv_bool(x->g, "identical", !x->changes && !x->changed);
		st_jmap_end(x->g);
	}
	return 0;
}

static int write_diff(struct dx *x, const struct st_wopts *wo)
{
	struct sqb_write_opts o = SQB_WRITE_OPTS_INIT;
	char *hint = st_hint_for(wo->out, sqb_snap_path(x->a));
	int err;

	st_wopts_apply(wo, &o);
	o.parent_path_hint = hint;
	st_progress_start("diff --output", 0, 0);
	err = sqb_snap_write_diff(wo->out, x->a, x->b, &o);
	st_progress_stop();
	free(hint);
	if (err)
		return st_fail(ST_FAIL, "cannot write %s: %s", wo->out, sqb_strerror(err));
	if (!x->g)
		printf("wrote %s: B as a diff on A\n", wo->out);
	return 0;
}

int cmd_diff(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
					   {"all", no_argument, NULL, 'a'},
					   {"parent", required_argument, NULL, 'p'},
					   {"help", no_argument, NULL, 'h'},
					   ST_WOPT_LONGOPTS,
					   {0}};
	struct st_wopts wo = {.codec = SQB_CODEC_ZSTD};
	const char *parents[ST_MAX_PARENTS], *in[2];
	unsigned int np = 0;
	struct dx x = {0};
	int json = 0, opt, rc;

	while ((opt = getopt_long(argc, argv, "hjo:p:", lo, NULL)) != -1) {
		if ((rc = st_wopt(&wo, opt, optarg)) < 0)
			return ST_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'a':
			x.all = 1;
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
	if (argc - optind != 2)
		return st_usage("need two snapshots A and B");
	in[0] = argv[optind];
	in[1] = argv[optind + 1];
	if (wo.out && st_check_output(wo.out, wo.force, in, 2))
		return ST_FAIL;
	if (st_open(&x.a, in[0], parents, np, 0) || st_open(&x.b, in[1], parents, np, 0)) {
		sqb_snap_free(x.a);
		return ST_FAIL;
	}
	x.ai = sqb_snap_get_info(x.a);
	x.bi = sqb_snap_get_info(x.b);
	if (json && !(x.g = st_json_new()))
		rc = st_fail(ST_FAIL, "out of memory");
	else
		rc = run_diff(&x);
	if (x.g && (st_json_end(x.g) || (printf("\n"), 0)) && !rc)
		rc = st_fail(ST_FAIL, "cannot write output");
	if (!rc && wo.out)
		rc = write_diff(&x, &wo);
	free(x.diff);
	free(x.same);
	sqb_snap_free(x.a);
	sqb_snap_free(x.b);
	return rc;
}
