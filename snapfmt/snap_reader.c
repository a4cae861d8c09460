/* Snapshot reader: opens a file, validates header, directory, region table
 * and page indexes before anything else reads them, and resolves the parent
 * chain by identity (docs/format.md [F-10]..[F-45]). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "snap_internal.h"

#define BAD(err, off, sec, ...) sqb_diag_set(diag, -(err), (off), (sec), __VA_ARGS__)

static int is_pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi && !(v & (v - 1));
}

/* [F-10]..[F-16] */
static int r_header(sqb_snap *s, uint64_t fsize, struct sqb_diag *diag)
{
	uint8_t *h = s->header;
	struct sqb_snap_info *in = &s->info;
	int err;

	if (fsize < 8) {
		if (fsize && sqb_pread_full(s->fd, h, fsize, 0) == 0 &&
		    memcmp(h, SQB_MAGIC, fsize) == 0)
			return BAD(SQB_ETRUNCATED, fsize, "header", "file ends inside the magic");
		return BAD(SQB_EBADMAGIC, 0, "header", "file too short to be a squib snapshot");
	}
	if ((err = sqb_pread_full(s->fd, h, fsize < SQB_HEADER_SIZE ? fsize : SQB_HEADER_SIZE, 0)))
		return sqb_diag_set(diag, err, 0, "header", "cannot read header");
	if (memcmp(h, SQB_MAGIC, 8))
		return BAD(SQB_EBADMAGIC, 0, "header", "bad magic: not a squib snapshot");
	if (fsize < 14)
		return BAD(SQB_ETRUNCATED, fsize, "header", "file ends inside the header");
	in->read_version = get_le16(h + H_READ_VERSION);
	in->write_version = get_le16(h + H_WRITE_VERSION);
	/* [F-12] versions are checked before anything that a newer version may change */
	if (in->read_version > SQB_SNAP_FORMAT_VERSION)
		return BAD(SQB_EVERSION, H_READ_VERSION, "header",
			   "needs a reader of format version %u; this one reads version %u",
			   in->read_version, SQB_SNAP_FORMAT_VERSION);
	if (in->read_version == 0 || in->write_version < in->read_version)
		return BAD(SQB_ECORRUPT, H_READ_VERSION, "header",
			   "invalid versions read=%u write=%u", in->read_version, in->write_version);
	in->read_only = in->write_version > SQB_SNAP_FORMAT_VERSION;
	if (fsize < SQB_HEADER_SIZE)
		return BAD(SQB_ETRUNCATED, fsize, "header", "file ends inside the header (%llu bytes)",
			   (unsigned long long)fsize);
	if (get_le64(h + H_CHECKSUM) != sqb_xxh64(h, H_CHECKSUM))
		return BAD(SQB_ECHECKSUM, H_CHECKSUM, "header", "header checksum mismatch");
	if (get_le16(h + H_HEADER_SIZE) != SQB_HEADER_SIZE)
		return BAD(SQB_ECORRUPT, H_HEADER_SIZE, "header", "header size %u, expected %u",
			   get_le16(h + H_HEADER_SIZE), SQB_HEADER_SIZE);
	in->arch = h[H_ARCH];
	in->hv = h[H_HV];
	in->kind = h[H_KIND];
	in->role = h[H_ROLE];
	if (in->arch != SQB_ARCH_X86_64 && in->arch != SQB_ARCH_AARCH64)
		return BAD(SQB_ECORRUPT, H_ARCH, "header", "unknown architecture %u", in->arch);
	if (in->hv != SQB_HV_KVM && in->hv != SQB_HV_HVF)
		return BAD(SQB_ECORRUPT, H_HV, "header", "unknown hypervisor kind %u", in->hv);
	if (in->kind != SQB_SNAP_FULL && in->kind != SQB_SNAP_DIFF)
		return BAD(SQB_ECORRUPT, H_KIND, "header", "unknown snapshot kind %u", in->kind);
	if ((unsigned)in->role > SQB_ROLE_MEMORY)
		return BAD(SQB_ECORRUPT, H_ROLE, "header", "unknown role %u", in->role);
	if (!all_zero(h + H_RESERVED0, 2) || !all_zero(h + H_FLAGS, 4) ||
	    !all_zero(h + H_RESERVED1, 4) || !all_zero(h + H_RESERVED2, 32))
		return BAD(SQB_ERESERVED, H_FLAGS, "header", "reserved header field is not zero");
	in->guest_page_size = get_le32(h + H_GUEST_PAGE);
	in->host_page_size = get_le32(h + H_HOST_PAGE);
	if (!is_pow2_in(in->guest_page_size, 4096, 65536))
		return BAD(SQB_ECORRUPT, H_GUEST_PAGE, "header", "guest page size %u not allowed",
			   in->guest_page_size);
	if (!is_pow2_in(in->host_page_size, 4096, 65536))
		return BAD(SQB_ECORRUPT, H_HOST_PAGE, "header", "host page size %u not allowed",
			   in->host_page_size);
	memcpy(in->uuid.b, h + H_UUID, 16);
	memcpy(in->parent_uuid.b, h + H_PARENT_UUID, 16);
	memcpy(in->parent_digest.b, h + H_PARENT_DIGEST, 16);
	memcpy(in->companion_uuid.b, h + H_COMPANION_UUID, 16);
	memcpy(in->companion_digest.b, h + H_COMPANION_DIGEST, 16);
	if (sqb_uuid_is_zero(&in->uuid))
		return BAD(SQB_ECORRUPT, H_UUID, "header", "snapshot uuid is zero");
	if ((in->kind == SQB_SNAP_DIFF) == sqb_uuid_is_zero(&in->parent_uuid))
		return BAD(SQB_ECORRUPT, H_PARENT_UUID, "header",
			   in->kind == SQB_SNAP_DIFF ? "diff snapshot without a parent uuid"
						     : "full snapshot names a parent");
	if (in->kind == SQB_SNAP_FULL && !all_zero(in->parent_digest.b, 16))
		return BAD(SQB_ECORRUPT, H_PARENT_DIGEST, "header", "full snapshot has a parent digest");
	in->created_ns = get_le64(h + H_CREATED);
	in->file_size = get_le64(h + H_FILE_SIZE);
	if (in->file_size > fsize)
		return BAD(SQB_ETRUNCATED, fsize, "header",
			   "file is %llu bytes but the header says %llu", (unsigned long long)fsize,
			   (unsigned long long)in->file_size);
	if (in->file_size < fsize)
		return BAD(SQB_ECORRUPT, in->file_size, "header",
			   "%llu unexpected bytes after the end of the snapshot",
			   (unsigned long long)(fsize - in->file_size));
	memcpy(in->producer, h + H_PRODUCER, 64);
	in->producer[64] = 0;
	return 0;
}

static int dirent_cmp_off(const void *a, const void *b)
{
	const struct sqb_dirent *x = *(const struct sqb_dirent *const *)a;
	const struct sqb_dirent *y = *(const struct sqb_dirent *const *)b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int dirent_cmp_key(const void *a, const void *b)
{
	const struct sqb_dirent *x = *(const struct sqb_dirent *const *)a;
	const struct sqb_dirent *y = *(const struct sqb_dirent *const *)b;

	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return x->instance < y->instance ? -1 : x->instance > y->instance;
}

/* [F-20]..[F-25] */
static int r_directory(sqb_snap *s, struct sqb_diag *diag)
{
	uint64_t off = get_le64(s->header + H_DIR_OFFSET);
	uint32_t n = get_le32(s->header + H_DIR_COUNT);
	uint64_t fsize = s->info.file_size;
	struct sqb_dirent **sorted = NULL;
	uint8_t *raw = NULL;
	char name[48];
	int err = 0;

	if (n > SQB_MAX_SECTIONS)
		return BAD(SQB_ELIMIT, H_DIR_COUNT, "header", "%u sections exceed the limit %u", n,
			   SQB_MAX_SECTIONS);
	/* written so that a huge dir_offset cannot wrap around to fsize */
	if (off % 8 || off < SQB_HEADER_SIZE || (uint64_t)n * SQB_DIRENT_SIZE > fsize ||
	    off != fsize - (uint64_t)n * SQB_DIRENT_SIZE)
		return BAD(SQB_ECORRUPT, H_DIR_OFFSET, "header",
			   "directory at 0x%llx with %u entries does not end the file",
			   (unsigned long long)off, n);
	s->dir_offset = off;
	raw = malloc((size_t)n * SQB_DIRENT_SIZE + 1);
	s->dir = calloc(n ? n : 1, sizeof(*s->dir));
	sorted = calloc(n ? n : 1, sizeof(*sorted));
	if (!raw || !s->dir || !sorted) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = sqb_pread_full(s->fd, raw, (size_t)n * SQB_DIRENT_SIZE, off))) {
		sqb_diag_set(diag, err, off, "directory", "cannot read directory");
		goto out;
	}
	if (sqb_xxh64(raw, (size_t)n * SQB_DIRENT_SIZE) != get_le64(s->header + H_DIR_CHECKSUM)) {
		err = BAD(SQB_ECHECKSUM, off, "directory", "directory checksum mismatch");
		goto out;
	}
	sqb_xxh128(s->header, H_CHECKSUM, raw, (size_t)n * SQB_DIRENT_SIZE, &s->info.digest);
	s->ndir = n;
	s->data_sec = -1;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = raw + (size_t)i * SQB_DIRENT_SIZE;
		struct sqb_dirent *d = &s->dir[i];
		const struct sqb_section_kind *k;
		uint64_t epos = off + (uint64_t)i * SQB_DIRENT_SIZE;

		d->type = get_le32(e);
		d->instance = get_le32(e + 4);
		d->version = get_le16(e + 8);
		d->min_version = get_le16(e + 10);
		d->flags = get_le32(e + 12);
		d->offset = get_le64(e + 16);
		d->length = get_le64(e + 24);
		d->checksum = get_le64(e + 32);
		d->file_pos = epos;
		sqb_dirent_name(d, name, sizeof(name));
		if ((d->flags & ~SQB_SECF_KNOWN_FLAGS) || !all_zero(e + 40, 8)) {
			err = BAD(SQB_ERESERVED, epos + 12, name, "reserved directory bits set");
			goto out;
		}
		if (!d->version || d->min_version > d->version || !d->min_version) {
			err = BAD(SQB_ECORRUPT, epos + 8, name, "invalid version %u (minimum %u)",
				  d->version, d->min_version);
			goto out;
		}
		if (d->offset < SQB_HEADER_SIZE || d->offset > off || d->length > off - d->offset) {
			err = BAD(SQB_ECORRUPT, epos + 16, name,
				  "section [0x%llx, +0x%llx) lies outside the section area",
				  (unsigned long long)d->offset, (unsigned long long)d->length);
			goto out;
		}
		k = sqb_section_kind(d->type);
		/* [F-24] unknown or too-new: refuse if critical, else skip */
		d->known = k && d->min_version <= k->version;
		if (!d->known && (d->flags & SQB_SECF_CRITICAL)) {
			err = BAD(SQB_EUNSUPPORTED, epos, name,
				  k ? "critical section needs version %u of its type"
				    : "unknown critical section (type %u.x)",
				  d->min_version);
			goto out;
		}
		if (d->known && d->type != SQB_SEC_DATA && d->length > SQB_MAX_META_SECTION &&
		    d->type != SQB_SEC_PIDX) {
			err = BAD(SQB_ELIMIT, epos + 24, name, "section too large");
			goto out;
		}
		if (d->type == SQB_SEC_DATA && d->known) {
			if (d->instance || d->checksum) {
				err = BAD(SQB_ECORRUPT, epos, name,
					  "DATA must be instance 0 with checksum 0");
				goto out;
			}
			s->data_sec = (int)i;
		}
		sorted[i] = d;
	}
	/* [F-30] memory sections only in memory-bearing files; [F-31] one PIDX
	 * per region is checked in r_index; [F-53] vCPUs and devices are numbered
	 * 0..n-1 */
	{
		uint32_t nvcpu = 0, ndev = 0;

		for (uint32_t i = 0; i < n; i++) {
			nvcpu += s->dir[i].type == SQB_SEC_VCPU;
			ndev += s->dir[i].type == SQB_SEC_DEVS;
		}
		for (uint32_t i = 0; i < n && !err; i++) {
			const struct sqb_dirent *d = &s->dir[i];

			sqb_dirent_name(d, name, sizeof(name));
			if (s->info.role == SQB_ROLE_STATE &&
			    (d->type == SQB_SEC_PIDX || d->type == SQB_SEC_DATA))
				err = BAD(SQB_ECORRUPT, d->file_pos, name,
					  "state-only file carries memory");
			else if ((d->type == SQB_SEC_VCPU && d->instance >= nvcpu) ||
				 (d->type == SQB_SEC_DEVS && d->instance >= ndev))
				err = BAD(SQB_ECORRUPT, d->file_pos + 4, name,
					  "instances are not numbered 0..%u",
					  (d->type == SQB_SEC_VCPU ? nvcpu : ndev) - 1);
			else if ((d->type == SQB_SEC_VCPU && d->instance >= SQB_MAX_VCPUS) ||
				 (d->type == SQB_SEC_DEVS && d->instance >= SQB_MAX_DEVICES))
				err = BAD(SQB_ELIMIT, d->file_pos + 4, name, "too many instances");
		}
		if (err)
			goto out;
	}
	/* [F-21] no (type, instance) twice: sorted, so 65536 entries stay cheap */
	qsort(sorted, n, sizeof(*sorted), dirent_cmp_key);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i - 1]->type == sorted[i]->type &&
		    sorted[i - 1]->instance == sorted[i]->instance) {
			const struct sqb_dirent *d = sorted[i - 1]->file_pos > sorted[i]->file_pos
							     ? sorted[i - 1]
							     : sorted[i];

			err = BAD(SQB_ECORRUPT, d->file_pos, sqb_dirent_name(d, name, sizeof(name)),
				  "section listed twice");
			goto out;
		}
	}
	/* [F-22] sections do not overlap */
	qsort(sorted, n, sizeof(*sorted), dirent_cmp_off);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i - 1]->offset + sorted[i - 1]->length > sorted[i]->offset) {
			err = BAD(SQB_ECORRUPT, sorted[i]->file_pos + 16,
				  sqb_dirent_name(sorted[i], name, sizeof(name)),
				  "section overlaps another one");
			goto out;
		}
	}
out:
	free(raw);
	free(sorted);
	return err;
}

int sqb_snap_section_find(const sqb_snap *s, uint32_t type, uint32_t instance)
{
	for (unsigned int i = 0; i < s->ndir; i++)
		/* an extension type is found for the caller that asks for it; a
		 * standard type only when this library understands its version */
		if (s->dir[i].type == type && s->dir[i].instance == instance &&
		    (s->dir[i].known || !sqb_section_kind(type)))
			return (int)i;
	return -SQB_ENOTFOUND;
}

int sqb_snap_section_read(const sqb_snap *s, unsigned int idx, void **data, size_t *len,
			  struct sqb_diag *diag)
{
	const struct sqb_dirent *d;
	char name[48];
	uint8_t *buf;
	int err;

	*data = NULL;
	*len = 0;
	if (idx >= s->ndir)
		return -EINVAL;
	d = &s->dir[idx];
	sqb_dirent_name(d, name, sizeof(name));
	if (d->type == SQB_SEC_DATA || d->length > (d->type == SQB_SEC_PIDX ? (1ull << 36)
									   : SQB_MAX_META_SECTION))
		return BAD(SQB_ELIMIT, d->file_pos, name, "section too large to load");
	buf = malloc(d->length + 1);
	if (!buf)
		return -ENOMEM;
	if ((err = sqb_pread_full(s->fd, buf, d->length, d->offset))) {
		free(buf);
		return sqb_diag_set(diag, err, d->offset, name, "cannot read section");
	}
	/* [F-23] checksum before parsing */
	if (sqb_xxh64(buf, d->length) != d->checksum) {
		free(buf);
		return BAD(SQB_ECHECKSUM, d->offset, name, "section checksum mismatch");
	}
	buf[d->length] = 0;
	*data = buf;
	*len = d->length;
	return 0;
}

/* [F-30], [F-31] */
static int r_regions(sqb_snap *s, struct sqb_diag *diag)
{
	int idx = sqb_snap_section_find(s, SQB_SEC_MEMR, 0);
	const struct sqb_dirent *d;
	uint8_t *buf;
	size_t len;
	int err;

	if (idx < 0) {
		if (s->info.role == SQB_ROLE_STATE)
			return 0;
		return BAD(SQB_ECORRUPT, s->dir_offset, "directory",
			   "memory snapshot without a region table (MEMR)");
	}
	d = &s->dir[idx];
	if (s->info.role == SQB_ROLE_STATE)
		return BAD(SQB_ECORRUPT, d->file_pos, "MEMR[0]", "state-only file carries memory");
	if ((err = sqb_snap_section_read(s, (unsigned)idx, (void **)&buf, &len, diag)))
		return err;
	if (len % SQB_REGION_SIZE || len / SQB_REGION_SIZE > SQB_MAX_REGIONS) {
		free(buf);
		return BAD(SQB_ECORRUPT, d->offset, "MEMR[0]", "bad region table length %zu", len);
	}
	s->nregions = (unsigned int)(len / SQB_REGION_SIZE);
	s->regions = calloc(s->nregions ? s->nregions : 1, sizeof(*s->regions));
	s->ext = calloc(s->nregions ? s->nregions : 1, sizeof(*s->ext));
	s->next = calloc(s->nregions ? s->nregions : 1, sizeof(*s->next));
	if (!s->regions || !s->ext || !s->next) {
		free(buf);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < s->nregions; i++) {
		const uint8_t *e = buf + i * SQB_REGION_SIZE;
		struct sqb_region *r = &s->regions[i];
		uint64_t at = d->offset + i * SQB_REGION_SIZE;

		r->gpa = get_le64(e);
		r->size = get_le64(e + 8);
		r->flags = get_le32(e + 16);
		if (r->flags || !all_zero(e + 20, 12))
			err = BAD(SQB_ERESERVED, at + 16, "MEMR[0]", "region %u: reserved bits set", i);
		else if (!r->size || r->size % s->info.guest_page_size ||
			 r->gpa % s->info.guest_page_size || r->size > SQB_MAX_REGION_SIZE ||
			 r->gpa + r->size < r->gpa)
			err = BAD(SQB_ECORRUPT, at, "MEMR[0]",
				  "region %u [0x%llx, +0x%llx) is not page aligned or too large", i,
				  (unsigned long long)r->gpa, (unsigned long long)r->size);
		else if (i && s->regions[i - 1].gpa + s->regions[i - 1].size > r->gpa)
			err = BAD(SQB_ECORRUPT, at, "MEMR[0]",
				  "region %u overlaps or is out of order", i);
		if (err)
			break;
	}
	free(buf);
	return err;
}

/* Check one extent in isolation ([F-32]..[F-37]); order and DEDUP sources
 * are checked by the caller. */
static int r_check_extent(const sqb_snap *s, unsigned int ri, const struct sqb_extent *x,
			  const uint8_t *raw, uint64_t at, struct sqb_diag *diag)
{
	char name[32];
	uint32_t gps = s->info.guest_page_size;
	uint64_t bytes = (uint64_t)x->page_count * gps;
	const struct sqb_dirent *data = s->data_sec >= 0 ? &s->dir[s->data_sec] : NULL;

	snprintf(name, sizeof(name), "PIDX[%u]", ri);
	if (!all_zero(raw + 14, 2) || !all_zero(raw + 28, 4))
		return BAD(SQB_ERESERVED, at + 14, name, "reserved extent bits set");
	if (!x->page_count)
		return BAD(SQB_ECORRUPT, at + 8, name, "extent with zero pages");
	switch (x->kind) {
	case SQB_EXT_ZERO:
	case SQB_EXT_PARENT:
		if (x->codec || x->data || x->stored_len || x->checksum)
			return BAD(SQB_ECORRUPT, at, name, "%s extent carries data fields",
				   sqb_extent_kind_name(x->kind));
		if (x->kind == SQB_EXT_PARENT && s->info.kind != SQB_SNAP_DIFF)
			return BAD(SQB_ECORRUPT, at + 12, name, "PARENT extent in a full snapshot");
		return 0;
	case SQB_EXT_RAW:
		if (x->codec || x->stored_len != bytes)
			return BAD(SQB_ECORRUPT, at + 24, name, "RAW extent length %u != %llu",
				   x->stored_len, (unsigned long long)bytes);
		if (s->xbase) { /* [F-91] at the page's own offset in the raw file */
			if (x->data != s->xbase[ri] + x->first_page * gps)
				return BAD(SQB_ECORRUPT, at + 16, name,
					   "RAW extent of page %llu at 0x%llx in the raw memory "
					   "file, not at its offset 0x%llx",
					   (unsigned long long)x->first_page,
					   (unsigned long long)x->data,
					   (unsigned long long)(s->xbase[ri] + x->first_page * gps));
			return bytes > SQB_MAX_CHUNK
				   ? BAD(SQB_ELIMIT, at + 8, name,
					 "data extent of %llu bytes exceeds 1 MiB",
					 (unsigned long long)bytes)
				   : 0;
		}
		if (x->data % SQB_RAW_ALIGN != (x->first_page * gps) % SQB_RAW_ALIGN)
			return BAD(SQB_ECORRUPT, at + 16, name,
				   "RAW data at 0x%llx not congruent to its guest offset mod 64 KiB",
				   (unsigned long long)x->data);
		break;
	case SQB_EXT_COMPRESSED:
		if (s->xbase)
			return BAD(SQB_ECORRUPT, at + 12, name,
				   "COMPRESSED extent in a snapshot with external raw memory");
		if (x->codec > SQB_CODEC_ZSTD)
			return BAD(SQB_ECORRUPT, at + 13, name, "unknown codec %u", x->codec);
		if (!x->stored_len || x->stored_len > SQB_MAX_STORED ||
		    (x->codec == SQB_CODEC_NONE && x->stored_len != bytes))
			return BAD(SQB_ECORRUPT, at + 24, name, "bad stored length %u",
				   x->stored_len);
		break;
	case SQB_EXT_DEDUP:
		if (s->xbase)
			return BAD(SQB_ECORRUPT, at + 12, name,
				   "DEDUP extent in a snapshot with external raw memory");
		if (x->codec || x->stored_len || x->checksum)
			return BAD(SQB_ECORRUPT, at, name, "DEDUP extent carries data fields");
		return 0;
	default:
		return BAD(SQB_ECORRUPT, at + 12, name, "unknown extent kind %u", x->kind);
	}
	if (bytes > SQB_MAX_CHUNK)
		return BAD(SQB_ELIMIT, at + 8, name, "data extent of %llu bytes exceeds 1 MiB",
			   (unsigned long long)bytes);
	if (!data || x->data < data->offset || x->stored_len > data->offset + data->length ||
	    x->data > data->offset + data->length - x->stored_len)
		return BAD(SQB_ECORRUPT, at + 16, name, "extent data outside the DATA section");
	return 0;
}

static int r_index(sqb_snap *s, unsigned int ri, struct sqb_diag *diag)
{
	int idx = sqb_snap_section_find(s, SQB_SEC_PIDX, ri);
	uint64_t npages = s->regions[ri].size / s->info.guest_page_size, next = 0;
	const struct sqb_dirent *d;
	char name[32];
	uint8_t *buf;
	size_t len, n;
	int err;

	snprintf(name, sizeof(name), "PIDX[%u]", ri);
	if (idx < 0)
		return BAD(SQB_ECORRUPT, s->dir_offset, "directory", "region %u has no page index", ri);
	d = &s->dir[idx];
	if ((err = sqb_snap_section_read(s, (unsigned)idx, (void **)&buf, &len, diag)))
		return err;
	n = len / SQB_EXTENT_SIZE;
	if (len % SQB_EXTENT_SIZE || n > npages) {
		free(buf);
		return BAD(SQB_ECORRUPT, d->offset, name, "bad page index length %zu", len);
	}
	s->ext[ri] = calloc(n ? n : 1, sizeof(struct sqb_extent));
	if (!s->ext[ri]) {
		free(buf);
		return -ENOMEM;
	}
	s->next[ri] = n;
	for (size_t i = 0; i < n && !err; i++) {
		const uint8_t *e = buf + i * SQB_EXTENT_SIZE;
		struct sqb_extent *x = &s->ext[ri][i];
		uint64_t at = d->offset + i * SQB_EXTENT_SIZE;

		x->first_page = get_le64(e);
		x->page_count = get_le32(e + 8);
		x->kind = e[12];
		x->codec = e[13];
		x->data = get_le64(e + 16);
		x->stored_len = get_le32(e + 24);
		x->checksum = get_le64(e + 32);
		/* [F-32] extents cover the region exactly once, in order */
		if (x->first_page != next)
			err = BAD(SQB_ECORRUPT, at, name,
				  "extent %zu starts at page %llu, expected %llu", i,
				  (unsigned long long)x->first_page, (unsigned long long)next);
		else if (x->page_count > npages - next)
			err = BAD(SQB_ECORRUPT, at + 8, name, "extent %zu runs past the region", i);
		else
			err = r_check_extent(s, ri, x, e, at, diag);
		next = x->first_page + x->page_count;
	}
	if (!err && next != npages)
		err = BAD(SQB_ECORRUPT, d->offset + len, name,
			  "page index covers %llu of %llu pages", (unsigned long long)next,
			  (unsigned long long)npages);
	free(buf);
	return err;
}

/* [F-37] a DEDUP source lies in stored extents that come before it. */
static int r_dedup_sources(sqb_snap *s, struct sqb_diag *diag)
{
	for (unsigned int ri = 0; ri < s->nregions; ri++) {
		/* found once per region: r_index proved PIDX[ri] exists */
		int d = sqb_snap_section_find(s, SQB_SEC_PIDX, ri);

		for (size_t i = 0; i < s->next[ri]; i++) {
			const struct sqb_extent *x = &s->ext[ri][i];
			unsigned int sr = (unsigned int)(x->data >> SQB_DEDUP_SHIFT);
			uint64_t sp = x->data & SQB_DEDUP_PAGE_MASK, end;
			uint64_t at = s->dir[d].offset + i * SQB_EXTENT_SIZE + 16;
			char name[32];

			if (x->kind != SQB_EXT_DEDUP)
				continue;
			snprintf(name, sizeof(name), "PIDX[%u]", ri);
			if (sr >= s->nregions || sp + x->page_count < sp ||
			    sp + x->page_count > s->regions[sr].size / s->info.guest_page_size)
				return BAD(SQB_ECORRUPT, at, name, "DEDUP source outside any region");
			if (sr > ri || (sr == ri && sp + x->page_count > x->first_page))
				return BAD(SQB_ECORRUPT, at, name,
					   "DEDUP source does not precede the extent");
			end = sp + x->page_count;
			while (sp < end) {
				size_t k;
				const struct sqb_extent *y;

				sqb_snap_extent_find(s, sr, sp, &k);
				y = &s->ext[sr][k];
				if (y->kind != SQB_EXT_RAW && y->kind != SQB_EXT_COMPRESSED)
					return BAD(SQB_ECORRUPT, at, name,
						   "DEDUP source page %llu is not stored data",
						   (unsigned long long)sp);
				sp = y->first_page + y->page_count;
			}
		}
	}
	return 0;
}

static char *r_link_hint(const sqb_snap *s, uint32_t inst)
{
	int idx = sqb_snap_section_find(s, SQB_SEC_LINK, inst);
	void *data;
	size_t len;

	if (idx < 0 || sqb_snap_section_read(s, (unsigned)idx, &data, &len, NULL))
		return NULL;
	if (!len || memchr(data, 0, len)) {
		free(data);
		return NULL;
	}
	return data;
}

/* Does candidate path hold this snapshot's parent?  0 and *out if so. */
static int r_parent(sqb_snap *s, const struct sqb_open_opts *opts, struct sqb_diag *diag);
static int r_parent_cover(sqb_snap *s, struct sqb_diag *diag);

static int r_try_parent(sqb_snap *s, const char *path, const struct sqb_open_opts *opts,
			sqb_snap **out, struct sqb_diag *diag)
{
	struct sqb_open_opts po = *opts;
	sqb_snap *p = NULL;
	int err;

	po.max_chain = (opts->max_chain ? opts->max_chain : 64) - 1;
	po.external_path = NULL; /* a parent finds its own raw file by its hint */
	po.no_external = 0;
	if (!po.max_chain)
		return BAD(SQB_ELIMIT, H_PARENT_UUID, "header", "parent chain deeper than allowed");
	/* identity first, the candidate's own chain only once it matches:
	 * opening every candidate's chain would cost O(2^depth) */
	po.no_parents = 1;
	err = sqb_snap_open(&p, path, &po, diag);
	if (err)
		return err;
	po.no_parents = opts->no_parents;
	if (memcmp(p->info.uuid.b, s->info.parent_uuid.b, 16) ||
	    memcmp(p->info.digest.b, s->info.parent_digest.b, 16)) {
		sqb_snap_free(p);
		return BAD(SQB_EPARENT, H_PARENT_UUID, "header",
			   "%s is not this snapshot's parent (identity differs)", path);
	}
	if (p->info.arch != s->info.arch || p->info.hv != s->info.hv ||
	    p->info.guest_page_size != s->info.guest_page_size) {
		sqb_snap_free(p);
		return BAD(SQB_EMISMATCH, H_ARCH, "header",
			   "parent %s differs in architecture, hypervisor or page size", path);
	}
	if (p->info.kind == SQB_SNAP_DIFF && !po.no_parents && p->info.role != SQB_ROLE_STATE &&
	    ((err = r_parent(p, &po, diag)) || (err = r_parent_cover(p, diag)))) {
		sqb_snap_free(p);
		return err;
	}
	*out = p;
	return 0;
}

static int r_parent(sqb_snap *s, const struct sqb_open_opts *opts, struct sqb_diag *diag)
{
	char uuid[37], *hint = r_link_hint(s, 0);
	struct sqb_diag tmp, first_diag;
	int err, first_err = 0;

	/* candidates in order; the first refusal with a reason is reported */
	for (unsigned int i = 0; i <= opts->n_parent_paths && !s->parent; i++) {
		char *dup = NULL, *path = NULL;
		const char *cand;

		if (i < opts->n_parent_paths) {
			cand = opts->parent_paths[i];
		} else {
			if (!hint)
				break;
			dup = strdup(s->path);
			if (dup && hint[0] != '/' && asprintf(&path, "%s/%s", dirname(dup), hint) < 0)
				path = NULL;
			cand = path ? path : hint;
		}
		err = r_try_parent(s, cand, opts, &s->parent, &tmp);
		if (err && err != -ENOENT && !first_err) {
			first_err = err;
			first_diag = tmp;
		}
		free(path);
		free(dup);
	}
	free(hint);
	if (s->parent)
		return 0;
	if (first_err) {
		if (diag)
			*diag = first_diag;
		return first_err;
	}
	sqb_uuid_format(&s->info.parent_uuid, uuid);
	return BAD(SQB_EPARENT, H_PARENT_UUID, "header",
		   "parent snapshot %s not found (give it with --parent / parent_paths)", uuid);
}

/* [F-45] every PARENT extent lies inside a region of the parent. */
static int r_parent_cover(sqb_snap *s, struct sqb_diag *diag)
{
	uint32_t gps = s->info.guest_page_size;

	for (unsigned int ri = 0; ri < s->nregions; ri++) {
		for (size_t i = 0; i < s->next[ri]; i++) {
			const struct sqb_extent *x = &s->ext[ri][i];
			uint64_t gpa = s->regions[ri].gpa + x->first_page * gps;
			uint64_t len = (uint64_t)x->page_count * gps;
			unsigned int pr;
			uint64_t pp;

			if (x->kind != SQB_EXT_PARENT)
				continue;
			if (sqb_snap_locate(s->parent, gpa, &pr, &pp) ||
			    s->parent->regions[pr].gpa + s->parent->regions[pr].size < gpa + len)
				return BAD(SQB_EPARENT, UINT64_MAX, "PIDX",
					   "region %u pages at 0x%llx are not in the parent", ri,
					   (unsigned long long)gpa);
		}
	}
	return 0;
}

/* [F-90]..[F-93]: a file whose memory bytes live in an external raw file.
 * Find the file (caller's path, else the LINK hint), check its size and,
 * where both sides have it, its stamp; extent checksums do the rest. */
/* [F-93] */
static int r_xmem(sqb_snap *s, const struct sqb_open_opts *opts, struct sqb_diag *diag)
{
	int idx = sqb_snap_section_find(s, SQB_SEC_XMEM, 0);
	uint8_t *x = NULL, stamp[16];
	uint64_t want = 0, at;
	char *hint = NULL, *dup = NULL, *path = NULL;
	struct stat st;
	size_t len;
	int err;

	if (idx < 0)
		return 0;
	at = s->dir[idx].offset;
	if (s->info.role == SQB_ROLE_STATE)
		return BAD(SQB_ECORRUPT, at, "XMEM[0]", "state-only file describes memory");
	if (s->data_sec >= 0)
		return BAD(SQB_ECORRUPT, s->dir[s->data_sec].file_pos, "XMEM[0]",
			   "a file with external raw memory has a DATA section");
	if ((err = sqb_snap_section_read(s, (unsigned)idx, (void **)&x, &len, diag)))
		return err;
	if (len != SQB_XMEM_SIZE || (x[24] & ~1u) || !all_zero(x + 25, 7)) {
		free(x);
		return BAD(len != SQB_XMEM_SIZE ? SQB_ECORRUPT : SQB_ERESERVED, at, "XMEM[0]",
			   "bad external memory record (length %zu or reserved bits)", len);
	}
	s->xbase = calloc(s->nregions ? s->nregions : 1, sizeof(uint64_t));
	if (!s->xbase) {
		free(x);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < s->nregions; i++) {
		s->xbase[i] = want;
		want += s->regions[i].size;
	}
	if (get_le64(x) != want) {
		err = BAD(SQB_ECORRUPT, at, "XMEM[0]",
			  "raw memory size %llu is not the sum of the regions (%llu)",
			  (unsigned long long)get_le64(x), (unsigned long long)want);
		goto out;
	}
	if (opts->no_external) {
		s->dfd = -1;
		err = 0;
		goto out;
	}
	if (opts->external_path) {
		path = strdup(opts->external_path);
	} else if ((hint = r_link_hint(s, 2))) {
		if (hint[0] != '/' && (dup = strdup(s->path)) &&
		    asprintf(&path, "%s/%s", dirname(dup), hint) < 0)
			path = NULL;
		else if (hint[0] == '/')
			path = strdup(hint);
	}
	if (!path) {
		err = BAD(SQB_EPARENT, at, "XMEM[0]", "no path for the raw memory file");
		goto out;
	}
	s->xpath = path;
	s->dfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block */
	if (s->dfd < 0 || fstat(s->dfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = s->dfd < 0 ? -errno : -EINVAL;
		if (s->dfd >= 0)
			close(s->dfd);
		s->dfd = s->fd;
		sqb_diag_set(diag, err, at, "XMEM[0]", "raw memory file %s: %s", path,
			     err == -EINVAL ? "not a regular file" : sqb_strerror(err));
		goto out;
	}
	if ((uint64_t)st.st_size != want) {
		err = BAD(SQB_EMISMATCH, at, "XMEM[0]",
			  "raw memory file %s is %llu bytes; this snapshot's memory is %llu", path,
			  (unsigned long long)st.st_size, (unsigned long long)want);
		goto out;
	}
	/* a stamp on both sides that differs: another snapshot's memory */
	if (x[24] && fgetxattr(s->dfd, SQB_XMEM_XATTR, stamp, sizeof(stamp)) == 16 &&
	    memcmp(stamp, x + 8, 16)) {
		err = BAD(SQB_EMISMATCH, at + 8, "XMEM[0]",
			  "raw memory file %s belongs to another snapshot (stamp differs)", path);
		goto out;
	}
	err = 0;
out:
	free(x);
	free(hint);
	free(dup);
	return err;
}

int sqb_snap_open(sqb_snap **out, const char *path, const struct sqb_open_opts *opts,
		  struct sqb_diag *diag)
{
	struct sqb_open_opts def = SQB_OPEN_OPTS_INIT;
	struct stat st;
	sqb_snap *s;
	int err;

	*out = NULL;
	if (!opts)
		opts = &def;
	if (opts->version != SQB_OPEN_OPTS_VERSION)
		return -EINVAL;
	if (diag)
		sqb_diag_set(diag, 0, UINT64_MAX, "file", "no problem");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->data_sec = -1;
	s->gen = sqb_snap_new_gen();
	s->path = strdup(path);
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then
	 * refuses anything but a regular file (no effect on regular files). */
	s->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	s->dfd = s->fd;
	if (!s->path || s->fd < 0) {
		err = s->path ? -errno : -ENOMEM;
		sqb_diag_set(diag, err, UINT64_MAX, path, "cannot open: %s", sqb_strerror(err));
		goto fail;
	}
	if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		sqb_diag_set(diag, err, UINT64_MAX, path,
			     "not a regular file (a FIFO, device or folder holds no snapshot)");
		goto fail;
	}
	if ((err = r_header(s, (uint64_t)st.st_size, diag)) || (err = r_directory(s, diag)) ||
	    (err = r_regions(s, diag)) || (err = r_xmem(s, opts, diag)))
		goto fail;
	for (unsigned int i = 0; i < s->nregions; i++)
		if ((err = r_index(s, i, diag)))
			goto fail;
	for (unsigned int i = 0; i < s->ndir; i++) {
		if (s->dir[i].type == SQB_SEC_PIDX && s->dir[i].instance >= s->nregions) {
			err = BAD(SQB_ECORRUPT, s->dir[i].file_pos + 4, "directory",
				  "page index %u has no region", s->dir[i].instance);
			goto fail;
		}
	}
	if ((err = r_dedup_sources(s, diag)))
		goto fail;
	if (s->info.kind == SQB_SNAP_DIFF && !opts->no_parents && s->info.role != SQB_ROLE_STATE) {
		if ((err = r_parent(s, opts, diag)) || (err = r_parent_cover(s, diag)))
			goto fail;
	}
	*out = s;
	return 0;
fail:
	sqb_snap_free(s);
	return err;
}

void sqb_snap_free(sqb_snap *s)
{
	if (!s)
		return;
	sqb_snap_free(s->parent);
	if (s->dfd >= 0 && s->dfd != s->fd)
		close(s->dfd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->xpath);
	free(s->xbase);
	for (unsigned int i = 0; i < s->nregions && s->ext; i++)
		free(s->ext[i]);
	free(s->ext);
	free(s->next);
	free(s->regions);
	free(s->dir);
	free(s->path);
	free(s);
}

const struct sqb_snap_info *sqb_snap_get_info(const sqb_snap *s)
{
	return &s->info;
}

sqb_snap *sqb_snap_parent(const sqb_snap *s)
{
	return s->parent;
}

const char *sqb_snap_path(const sqb_snap *s)
{
	return s->path;
}

const char *sqb_snap_external_path(const sqb_snap *s)
{
	return s->xbase ? s->xpath : NULL;
}

int sqb_snap_container_fd(const sqb_snap *s)
{
	return s->fd;
}

int sqb_snap_fd(const sqb_snap *s)
{
	return s->dfd;
}

unsigned int sqb_snap_section_count(const sqb_snap *s)
{
	return s->ndir;
}

int sqb_snap_section_info(const sqb_snap *s, unsigned int idx, struct sqb_section_info *out)
{
	const struct sqb_dirent *d;

	if (idx >= s->ndir)
		return -EINVAL;
	d = &s->dir[idx];
	*out = (struct sqb_section_info){ d->type,   d->instance, d->version,  d->min_version,
					  d->flags,  d->offset,	  d->length,   d->checksum,
					  d->known };
	return 0;
}

unsigned int sqb_snap_region_count(const sqb_snap *s)
{
	return s->nregions;
}

int sqb_snap_region(const sqb_snap *s, unsigned int r, struct sqb_region *out)
{
	if (r >= s->nregions)
		return -SQB_ENOTFOUND;
	*out = s->regions[r];
	return 0;
}

void sqb_snap_drop_index(sqb_snap *s)
{
	for (; s; s = s->parent) {
		for (unsigned int i = 0; i < s->nregions && s->ext; i++) {
			free(s->ext[i]);
			s->ext[i] = NULL;
			s->next[i] = 0;
		}
		s->no_index = 1;
	}
}

size_t sqb_snap_extent_count(const sqb_snap *s, unsigned int r)
{
	return r < s->nregions ? s->next[r] : 0;
}

const struct sqb_extent *sqb_snap_extents(const sqb_snap *s, unsigned int r)
{
	return r < s->nregions ? s->ext[r] : NULL;
}

int sqb_snap_extent_find(const sqb_snap *s, unsigned int r, uint64_t page, size_t *idx)
{
	size_t lo = 0, hi;

	if (s->no_index)
		return -SQB_ESTATE;
	if (r >= s->nregions || !s->next[r])
		return -SQB_ENOTFOUND;
	hi = s->next[r];
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->ext[r][mid].first_page <= page)
			lo = mid;
		else
			hi = mid;
	}
	if (page - s->ext[r][lo].first_page >= s->ext[r][lo].page_count)
		return -SQB_ENOTFOUND;
	*idx = lo;
	return 0;
}

int sqb_snap_locate(const sqb_snap *s, uint64_t gpa, unsigned int *r, uint64_t *page)
{
	for (unsigned int i = 0; i < s->nregions; i++) {
		if (gpa >= s->regions[i].gpa && gpa - s->regions[i].gpa < s->regions[i].size) {
			*r = i;
			*page = (gpa - s->regions[i].gpa) / s->info.guest_page_size;
			return 0;
		}
	}
	return -SQB_ENOTFOUND;
}

/* [F-46] a state/memory pair names each other by identity. */
int sqb_snap_check_pair(const sqb_snap *state, const sqb_snap *mem, struct sqb_diag *diag)
{
	const struct sqb_snap_info *a = &state->info, *b = &mem->info;

	if (a->role != SQB_ROLE_STATE || b->role != SQB_ROLE_MEMORY)
		return BAD(SQB_EMISMATCH, H_ROLE, "header",
			   "expected a state file and a memory file");
	if (memcmp(a->companion_uuid.b, b->uuid.b, 16) ||
	    memcmp(b->companion_uuid.b, a->uuid.b, 16))
		return BAD(SQB_EPARENT, H_COMPANION_UUID, "header",
			   "%s and %s are not a pair (companion uuid differs)", state->path,
			   mem->path);
	if (memcmp(a->companion_digest.b, b->digest.b, 16))
		return BAD(SQB_EPARENT, H_COMPANION_DIGEST, "header",
			   "%s records a different memory file content than %s", state->path,
			   mem->path);
	if (a->arch != b->arch || a->hv != b->hv || a->guest_page_size != b->guest_page_size)
		return BAD(SQB_EMISMATCH, H_ARCH, "header",
			   "pair differs in architecture, hypervisor or page size");
	return 0;
}
