/* Structured sections: record lists (VCPU, INTC), key/value lists (CONF,
 * META), device state (DEVS) and the working set (WSET), each validated
 * field by field after its checksum (docs/format.md [F-50]..[F-58]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "snap_internal.h"

/* Known record tags and their exact payload size (0 = variable; the
 * variable ones carry a count and are checked by sqb_record_size_ok). */
static const struct {
	uint16_t tag;
	const char *name;
	uint32_t size;	  /* exact size, or 0 */
	uint32_t unit;	  /* variable: header 8 + count * unit */
} sqb_tags[] = {
	{ SQB_REC_X86_REGS, "X86_REGS", 144, 0 },
	{ SQB_REC_X86_SREGS, "X86_SREGS", 312, 0 },
	{ SQB_REC_X86_XSAVE, "X86_XSAVE", 0, 0 },
	{ SQB_REC_X86_XCRS, "X86_XCRS", 0, 16 },
	{ SQB_REC_X86_MSRS, "X86_MSRS", 0, 16 },
	{ SQB_REC_X86_LAPIC, "X86_LAPIC", 1024, 0 },
	{ SQB_REC_X86_EVENTS, "X86_EVENTS", 64, 0 },
	{ SQB_REC_X86_DEBUGREGS, "X86_DEBUGREGS", 56, 0 },
	{ SQB_REC_X86_MPSTATE, "X86_MPSTATE", 8, 0 },
	{ SQB_REC_X86_CPUID, "X86_CPUID", 0, 32 },
	{ SQB_REC_X86_TSC_KHZ, "X86_TSC_KHZ", 8, 0 },
	{ SQB_REC_ARM64_CORE, "ARM64_CORE", 296, 0 },
	{ SQB_REC_ARM64_FPSIMD, "ARM64_FPSIMD", 520, 0 },
	{ SQB_REC_ARM64_SYSREGS, "ARM64_SYSREGS", 0, 16 },
	{ SQB_REC_ARM64_ICC, "ARM64_ICC", 0, 16 },
	{ SQB_REC_ARM64_PAUTH, "ARM64_PAUTH", 80, 0 },
	{ SQB_REC_ARM64_VTIMER, "ARM64_VTIMER", 32, 0 },
	{ SQB_REC_ARM64_POWER, "ARM64_POWER", 8, 0 },
	{ SQB_REC_KVM_PIC_MASTER, "KVM_PIC_MASTER", 16, 0 },
	{ SQB_REC_KVM_PIC_SLAVE, "KVM_PIC_SLAVE", 16, 0 },
	{ SQB_REC_KVM_IOAPIC, "KVM_IOAPIC", 216, 0 },
	{ SQB_REC_KVM_PIT, "KVM_PIT", 80, 0 },
	{ SQB_REC_KVM_CLOCK, "KVM_CLOCK", 32, 0 },
	{ SQB_REC_KVM_VGICV3, "KVM_VGICV3", 0, 16 },
	{ SQB_REC_HVF_GIC_STATE, "HVF_GIC_STATE", 0, 0 },
};

static int tag_index(uint16_t tag)
{
	for (size_t i = 0; i < sizeof(sqb_tags) / sizeof(sqb_tags[0]); i++)
		if (sqb_tags[i].tag == tag)
			return (int)i;
	return -1;
}

const char *sqb_record_tag_name(uint16_t tag)
{
	int i = tag_index(tag);

	return i < 0 ? NULL : sqb_tags[i].name;
}

/* [F-52] size rules of known records */
static int record_size_ok(int ti, const uint8_t *p, uint32_t len)
{
	if (sqb_tags[ti].size)
		return len == sqb_tags[ti].size;
	if (sqb_tags[ti].unit) {
		uint32_t n;

		if (len < 8)
			return 0;
		n = get_le32(p);
		if (get_le32(p + 4) || n > 4096 || (uint64_t)n * sqb_tags[ti].unit + 8 != len)
			return 0; /* [F-60] at most 4096 entries */
		/* [F-54] and likewise for MSRs, XCRs: a key appears once; entries
		 * carry a zero reserved word after the key */
		for (uint32_t i = 0; i < n && sqb_tags[ti].unit == 16; i++) {
			if (get_le32(p + 8 + 16 * i + 4))
				return 0;
			for (uint32_t j = 0; j < i; j++)
				if (get_le32(p + 8 + 16 * i) == get_le32(p + 8 + 16 * j))
					return 0;
		}
		return 1;
	}
	if (sqb_tags[ti].tag == SQB_REC_HVF_GIC_STATE) {
		/* u32 os build length, u32 reserved, build string, pad to 8, blob */
		uint32_t bl;

		if (len < 8)
			return 0;
		bl = get_le32(p);
		return get_le32(p + 4) == 0 && bl <= 256 && 8 + (((uint64_t)bl + 7) & ~7ull) <= len;
	}
	return len >= 576; /* XSAVE: legacy area + XSAVE header at least [F-53] */
}

int sqb_records_parse(const uint8_t *p, size_t len, struct sqb_record **recs, unsigned int *n,
		      const char *secname, uint64_t base, struct sqb_diag *d)
{
	size_t off = 0, cap = 0;
	unsigned int cnt = 0;
	struct sqb_record *r = NULL;

	*recs = NULL;
	*n = 0;
	while (off < len) {
		uint16_t tag, flags;
		uint32_t rl;
		size_t padded;
		int ti;

		if (len - off < 8) {
			free(r);
			return sqb_diag_set(d, -SQB_ECORRUPT, base + off, secname,
					    "record header runs past the section");
		}
		tag = get_le16(p + off);
		flags = get_le16(p + off + 2);
		rl = get_le32(p + off + 4);
		padded = ((size_t)rl + 7) & ~(size_t)7;
		if (padded > len - off - 8 || !all_zero(p + off + 8 + rl, padded - rl)) {
			free(r);
			return sqb_diag_set(d, -SQB_ECORRUPT, base + off + 4, secname,
					    "record 0x%04x of %u bytes runs past the section or has "
					    "non-zero padding",
					    tag, rl);
		}
		if (flags & ~SQB_RECF_CRITICAL) {
			free(r);
			return sqb_diag_set(d, -SQB_ERESERVED, base + off + 2, secname,
					    "record 0x%04x: reserved flag bits set", tag);
		}
		ti = tag_index(tag);
		if (ti < 0 && (flags & SQB_RECF_CRITICAL)) {
			free(r);
			return sqb_diag_set(d, -SQB_EUNSUPPORTED, base + off, secname,
					    "unknown critical record 0x%04x", tag);
		}
		if (ti >= 0 && !record_size_ok(ti, p + off + 8, rl)) {
			free(r);
			return sqb_diag_set(d, -SQB_ECORRUPT, base + off + 4, secname,
					    "record %s has invalid size %u", sqb_tags[ti].name, rl);
		}
		for (unsigned int i = 0; i < cnt; i++)
			if (r[i].tag == tag) {
				free(r);
				return sqb_diag_set(d, -SQB_ECORRUPT, base + off, secname,
						    "record 0x%04x appears twice", tag);
			}
		if (cnt == cap) {
			struct sqb_record *nr;

			cap = cap ? cap * 2 : 16;
			nr = realloc(r, cap * sizeof(*r));
			if (!nr) {
				free(r);
				return -ENOMEM;
			}
			r = nr;
		}
		r[cnt++] = (struct sqb_record){ tag, flags, rl, p + off + 8 };
		off += 8 + padded;
	}
	*recs = r;
	*n = cnt;
	return 0;
}

const struct sqb_record *sqb_record_find(const struct sqb_record *recs, unsigned int n, uint16_t tag)
{
	for (unsigned int i = 0; i < n; i++)
		if (recs[i].tag == tag)
			return &recs[i];
	return NULL;
}

static int load(const sqb_snap *s, uint32_t type, uint32_t instance, uint8_t **buf, size_t *len,
		char *name, uint64_t *base, struct sqb_diag *d)
{
	int idx = sqb_snap_section_find(s, type, instance);
	struct sqb_section_info si;
	char t[16];

	snprintf(name, 48, "%s[%u]", sqb_section_type_name(type, t), instance);
	if (idx < 0)
		return sqb_diag_set(d, -SQB_ENOTFOUND, UINT64_MAX, name, "section not present");
	sqb_snap_section_info(s, (unsigned)idx, &si);
	*base = si.offset;
	return sqb_snap_section_read(s, (unsigned)idx, (void **)buf, len, d);
}

int sqb_snap_records(const sqb_snap *s, uint32_t type, uint32_t instance, struct sqb_record **recs,
		     unsigned int *n, void **backing, struct sqb_diag *diag)
{
	char name[48];
	uint64_t base;
	uint8_t *buf;
	size_t len;
	int err;

	*recs = NULL;
	*n = 0;
	*backing = NULL;
	if ((err = load(s, type, instance, &buf, &len, name, &base, diag)))
		return err;
	err = sqb_records_parse(buf, len, recs, n, name, base, diag);
	if (err)
		free(buf);
	else
		*backing = buf;
	return err;
}

unsigned int sqb_snap_vcpu_count(const sqb_snap *s)
{
	unsigned int n = 0;

	while (sqb_snap_section_find(s, SQB_SEC_VCPU, n) >= 0)
		n++;
	return n;
}

int sqb_kv_parse(const uint8_t *p, size_t len, struct sqb_kv **kvs, unsigned int *n,
		 const char *secname, uint64_t base, struct sqb_diag *d)
{
	uint32_t cnt;
	size_t off = 8;
	struct sqb_kv *kv;
	char *strings;
	size_t so = 0;

	*kvs = NULL;
	*n = 0;
	if (len < 8 || get_le32(p + 4))
		return sqb_diag_set(d, -SQB_ECORRUPT, base, secname, "bad key/value list header");
	cnt = get_le32(p);
	if ((uint64_t)cnt * 8 > len - 8)
		return sqb_diag_set(d, -SQB_ECORRUPT, base, secname, "%u entries cannot fit", cnt);
	/* one allocation: the array, then NUL-terminated copies of keys/values */
	kv = calloc(1, cnt * sizeof(*kv) + len + 2 * (size_t)cnt + 1);
	if (!kv)
		return -ENOMEM;
	strings = (char *)(kv + cnt);
	for (uint32_t i = 0; i < cnt; i++) {
		uint32_t kl, vl;

		if (len - off < 8)
			goto trunc;
		kl = get_le32(p + off);
		vl = get_le32(p + off + 4);
		if (!kl || kl > SQB_MAX_KEY || (uint64_t)kl + vl > len - off - 8)
			goto trunc;
		for (uint32_t k = 0; k < kl; k++) {
			char c = (char)p[off + 8 + k];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			      c == '.' || c == '-')) {
				free(kv);
				return sqb_diag_set(d, -SQB_ECORRUPT, base + off + 8, secname,
						    "entry %u: key has a character outside [a-z0-9_.-]",
						    i);
			}
		}
		memcpy(strings + so, p + off + 8, kl);
		kv[i].key = strings + so;
		so += kl + 1;
		memcpy(strings + so, p + off + 8 + kl, vl);
		kv[i].value = strings + so;
		kv[i].value_len = vl;
		so += vl + 1;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(kv[j].key, kv[i].key)) {
				int err = sqb_diag_set(d, -SQB_ECORRUPT, base + off + 8, secname,
						       "key '%s' appears twice", kv[i].key);
				free(kv);
				return err;
			}
		off += 8 + kl + vl;
	}
	if (off != len) {
		free(kv);
		return sqb_diag_set(d, -SQB_ECORRUPT, base + off, secname,
				    "%zu trailing bytes after the last entry", len - off);
	}
	*kvs = kv;
	*n = cnt;
	return 0;
trunc:
	free(kv);
	return sqb_diag_set(d, -SQB_ECORRUPT, base + off, secname, "entry runs past the section");
}

int sqb_snap_kv(const sqb_snap *s, uint32_t type, struct sqb_kv **kvs, unsigned int *n,
		void **backing, struct sqb_diag *diag)
{
	char name[48];
	uint64_t base;
	uint8_t *buf;
	size_t len;
	int err;

	*kvs = NULL;
	*n = 0;
	*backing = NULL;
	if ((err = load(s, type, 0, &buf, &len, name, &base, diag)))
		return err;
	err = sqb_kv_parse(buf, len, kvs, n, name, base, diag);
	free(buf); /* sqb_kv_parse copied the strings */
	return err;
}

unsigned int sqb_snap_device_count(const sqb_snap *s)
{
	unsigned int n = 0;

	while (sqb_snap_section_find(s, SQB_SEC_DEVS, n) >= 0)
		n++;
	return n;
}

int sqb_snap_device(const sqb_snap *s, unsigned int n, struct sqb_device *dev, void **backing,
		    struct sqb_diag *diag)
{
	char name[48];
	uint64_t base;
	uint8_t *buf;
	size_t len, idlen, state_off;
	int err;

	*backing = NULL;
	memset(dev, 0, sizeof(*dev));
	if ((err = load(s, SQB_SEC_DEVS, n, &buf, &len, name, &base, diag)))
		return err;
	if (len < SQB_DEVICE_HDR_SIZE) {
		free(buf);
		return sqb_diag_set(diag, -SQB_ECORRUPT, base, name, "device header truncated");
	}
	idlen = get_le16(buf + 20);
	state_off = SQB_DEVICE_HDR_SIZE + ((idlen + 7) & ~(size_t)7);
	if (!all_zero(buf + 22, 2)) {
		free(buf);
		return sqb_diag_set(diag, -SQB_ERESERVED, base + 22, name, "reserved bytes set");
	}
	if (!idlen || idlen >= sizeof(dev->id) || state_off > len ||
	    memchr(buf + SQB_DEVICE_HDR_SIZE, 0, idlen) ||
	    !all_zero(buf + SQB_DEVICE_HDR_SIZE + idlen, state_off - SQB_DEVICE_HDR_SIZE - idlen)) {
		free(buf);
		return sqb_diag_set(diag, -SQB_ECORRUPT, base + 20, name, "bad device id");
	}
	dev->type = get_le32(buf);
	dev->version = get_le32(buf + 4);
	dev->bus_addr = get_le64(buf + 8);
	dev->irq = get_le32(buf + 16);
	memcpy(dev->id, buf + SQB_DEVICE_HDR_SIZE, idlen);
	dev->state = buf + state_off;
	dev->state_len = len - state_off;
	*backing = buf;
	return 0;
}

int sqb_snap_working_set(const sqb_snap *s, struct sqb_wset_range **ranges, size_t *n,
			 struct sqb_diag *diag)
{
	char name[48];
	uint64_t base;
	uint8_t *buf;
	size_t len, cnt;
	int err;

	*ranges = NULL;
	*n = 0;
	if ((err = load(s, SQB_SEC_WSET, 0, &buf, &len, name, &base, diag)))
		return err;
	cnt = len >= 8 ? get_le32(buf) : 0;
	if (len < 8 || get_le32(buf + 4) || 8 + cnt * SQB_WSET_ENTRY_SIZE != len) {
		free(buf);
		return sqb_diag_set(diag, -SQB_ECORRUPT, base, name, "bad working-set length");
	}
	*ranges = calloc(cnt ? cnt : 1, sizeof(**ranges));
	if (!*ranges) {
		free(buf);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cnt; i++) {
		const uint8_t *e = buf + 8 + i * SQB_WSET_ENTRY_SIZE;

		(*ranges)[i].gpa = get_le64(e);
		(*ranges)[i].pages = get_le32(e + 8);
		if (!(*ranges)[i].pages || get_le32(e + 12) ||
		    (*ranges)[i].gpa % s->info.guest_page_size) {
			free(buf);
			free(*ranges);
			*ranges = NULL;
			return sqb_diag_set(diag, -SQB_ECORRUPT, base + 8 + i * SQB_WSET_ENTRY_SIZE,
					    name, "bad working-set range %zu", i);
		}
	}
	*n = cnt;
	free(buf);
	return 0;
}
