/* The Firecracker Uffd-backend handshake (docs/restore.md "squib-pager"):
 * JSON (yajl tree API) with every field checked and bounded, the page-size
 * fields of every Firecracker release, SCM_RIGHTS fd passing, and the
 * mapping of memory-file offsets onto a snapshot's regions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "pager_proto.h"

static int field_u64(yajl_val obj, const char *key, uint64_t *out, int required, char *why,
		     size_t whylen, unsigned int idx)
{
	const char *path[] = {key, NULL};
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);

	if (!v) {
		if (required)
			snprintf(why, whylen, "mapping %u: missing \"%s\"", idx, key);
		return required ? -EINVAL : 1;
	}
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
		snprintf(why, whylen, "mapping %u: \"%s\" is not a non-negative integer", idx, key);
		return -EINVAL;
	}
	*out = (uint64_t)YAJL_GET_INTEGER(v);
	return 0;
}

/* The page size of one mapping, in bytes.  Firecracker's field
 * "page_size_kib" has always carried BYTES despite its name (its source
 * marks it deprecated for that reason), so the three shapes real VMMs send
 * all mean bytes:
 *   1.12+      "page_size": 4096, "page_size_kib": 4096
 *   1.7-1.11   "page_size_kib": 4096
 *   1.4-1.6    neither field: 4 KiB pages (hugepages came with 1.7)
 * squib VMMs before this fix sent "page_size": 4096, "page_size_kib": 4;
 * page_size is authoritative there and the KiB reading is accepted too. */
static int page_size_of(yajl_val o, unsigned int i, uint64_t *ps, char *why, size_t wl)
{
	uint64_t kib = 0;
	int miss_ps, miss_kib; /* 1: field absent */

	miss_ps = field_u64(o, "page_size", ps, 0, why, wl, i);
	if (miss_ps < 0)
		return -EINVAL;
	miss_kib = field_u64(o, "page_size_kib", &kib, 0, why, wl, i);
	if (miss_kib < 0)
		return -EINVAL;
	if (miss_ps)
		*ps = miss_kib ? 4096 : kib;
	if (*ps == (2u << 20) || (!miss_kib && kib == (2u << 20))) {
		snprintf(why, wl,
			 "mapping %u: huge pages (2 MiB) are not supported; squib-pager serves "
			 "4 KiB pages only",
			 i);
		return -EINVAL;
	}
	if (*ps != 4096) {
		snprintf(why, wl, "mapping %u: page size %llu bytes not supported (4 KiB only)", i,
			 (unsigned long long)*ps);
		return -EINVAL;
	}
	if (!miss_ps && !miss_kib && kib != *ps && kib * 1024 != *ps) {
		snprintf(why, wl,
			 "mapping %u: page_size %llu and page_size_kib %llu disagree (both are "
			 "bytes)",
			 i, (unsigned long long)*ps, (unsigned long long)kib);
		return -EINVAL;
	}
	return 0;
}

/* An optional string field of exactly len characters from set; 1 if absent. */
static int field_str(yajl_val obj, const char *key, char *out, size_t len, const char *set,
		     char *why, size_t wl, unsigned int idx)
{
	const char *path[] = {key, NULL};
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
	const char *str;

	if (!v)
		return 1;
	str = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
	if (!str || strlen(str) != len || strspn(str, set) != len) {
		snprintf(why, wl, "mapping %u: \"%s\" is not %zu characters of [%s]", idx, key, len,
			 set);
		return -EINVAL;
	}
	memcpy(out, str, len + 1);
	return 0;
}

static int parse_ident(yajl_val o, unsigned int i, struct sqb_pager_map *m, char *why, size_t wl)
{
	int u = field_str(o, "squib_memory_uuid", m->mem_uuid, 36, "0123456789abcdef-", why, wl, i);
	int d;

	if (u < 0)
		return -EINVAL;
	d = field_str(o, "squib_memory_digest", m->mem_digest, 32, "0123456789abcdef", why, wl, i);
	if (d < 0)
		return -EINVAL;
	if (u != d) {
		snprintf(why, wl,
			 "mapping %u: squib_memory_uuid and squib_memory_digest come together", i);
		return -EINVAL;
	}
	m->has_ident = !u;
	return 0;
}

static int parse_one(yajl_val o, unsigned int i, struct sqb_pager_map *m, char *why, size_t wl)
{
	if (!YAJL_IS_OBJECT(o)) {
		snprintf(why, wl, "mapping %u is not an object", i);
		return -EINVAL;
	}
	if (field_u64(o, "base_host_virt_addr", &m->base_host_virt_addr, 1, why, wl, i) ||
	    field_u64(o, "size", &m->size, 1, why, wl, i) ||
	    field_u64(o, "offset", &m->offset, 1, why, wl, i) ||
	    page_size_of(o, i, &m->page_size, why, wl) || parse_ident(o, i, m, why, wl))
		return -EINVAL;
	if (!m->size || m->size % 4096 || m->base_host_virt_addr % 4096 || m->offset % 4096 ||
	    m->base_host_virt_addr + m->size < m->base_host_virt_addr ||
	    m->offset + m->size < m->offset) {
		snprintf(why, wl, "mapping %u: address, size or offset not page-aligned", i);
		return -EINVAL;
	}
	return 0;
}

int sqb_pager_parse(const char *json, size_t len, struct sqb_pager_map **maps, unsigned int *n,
		    char *why, size_t whylen)
{
	char err[256] = "";
	char *copy = malloc(len + 1);
	yajl_val root;
	size_t cnt;
	int rc = -EINVAL;

	*maps = NULL;
	*n = 0;
	if (!copy)
		return -ENOMEM;
	memcpy(copy, json, len);
	copy[len] = 0;
	if (strlen(copy) != len) {
		snprintf(why, whylen, "handshake contains a NUL byte");
		free(copy);
		return -EINVAL;
	}
	root = yajl_tree_parse(copy, err, sizeof(err));
	free(copy);
	if (!root) {
		char *nl = strchr(err, '\n');

		if (nl)
			*nl = 0;
		snprintf(why, whylen, "not JSON: %s", err[0] ? err : "parse error");
		return -EINVAL;
	}
	if (!YAJL_IS_ARRAY(root) || !(cnt = YAJL_GET_ARRAY(root)->len) ||
	    cnt > SQB_PAGER_MAX_MAPPINGS) {
		snprintf(why, whylen, "expected a JSON array of 1..%u mappings",
			 SQB_PAGER_MAX_MAPPINGS);
		goto out;
	}
	*maps = calloc(cnt, sizeof(**maps));
	if (!*maps) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cnt; i++)
		if (parse_one(YAJL_GET_ARRAY(root)->values[i], (unsigned int)i, &(*maps)[i], why,
			      whylen))
			goto out;
	*n = (unsigned int)cnt;
	rc = 0;
out:
	if (rc) {
		free(*maps);
		*maps = NULL;
	}
	yajl_tree_free(root);
	return rc;
}

int sqb_pager_check_ident(const sqb_snap *snap, const struct sqb_pager_map *m, unsigned int n,
			  char *why, size_t whylen)
{
	const struct sqb_snap_info *si = sqb_snap_get_info(snap);
	char u[37], d[33];

	sqb_uuid_format(&si->uuid, u);
	sqb_digest_format(&si->digest, d);
	for (unsigned int i = 0; i < n; i++)
		if (m[i].has_ident && (strcmp(m[i].mem_uuid, u) || strcmp(m[i].mem_digest, d))) {
			snprintf(why, whylen,
				 "the VMM loads a state whose memory file is %s (digest %s), but "
				 "this memory file is %s (digest %s)",
				 m[i].mem_uuid, m[i].mem_digest, u, d);
			return -SQB_EMISMATCH;
		}
	return 0;
}

int sqb_pager_ranges(sqb_snap *s, const struct sqb_pager_map *m, unsigned int n,
		     struct sqb_restore_range *out, char *why, size_t whylen)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t cum = 0;
		int found = 0;

		for (unsigned int r = 0; r < sqb_snap_region_count(s) && !found; r++) {
			struct sqb_region reg;

			if (sqb_snap_region(s, r, &reg))
				break;
			if (m[i].offset >= cum && m[i].offset - cum < reg.size) {
				if (m[i].size > reg.size - (m[i].offset - cum)) {
					snprintf(why, whylen,
						 "mapping %u crosses the end of region %u", i, r);
					return -SQB_EMISMATCH;
				}
				out[i].host = m[i].base_host_virt_addr;
				out[i].gpa = reg.gpa + (m[i].offset - cum);
				out[i].size = m[i].size;
				found = 1;
			}
			cum += reg.size;
		}
		if (!found) {
			snprintf(why, whylen,
				 "mapping %u: offset 0x%llx is beyond the snapshot's memory", i,
				 (unsigned long long)m[i].offset);
			return -SQB_EMISMATCH;
		}
	}
	return 0;
}

long sqb_pager_recv(int sock, char *buf, size_t cap, int *fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} c;
	struct iovec iov = {buf, cap - 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	ssize_t got;

	*fd = -1;
	do
		got = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			int nfd = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (int k = 0; k < nfd; k++) {
				int f;

				memcpy(&f, CMSG_DATA(h) + k * sizeof(int), sizeof(int));
				if (*fd < 0)
					*fd = f;
				else
					close(f); /* one uffd per handshake */
			}
		}
	buf[got] = 0;
	return (long)got;
}

int sqb_pager_send(int sock, const struct sqb_pager_map *m, unsigned int n, int uffd)
{
	size_t cap = 64 + (size_t)n * 260, len = 0;
	char *json = malloc(cap);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov;
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	ssize_t sent;

	if (!json)
		return -ENOMEM;
	len += (size_t)snprintf(json + len, cap - len, "[");
	for (unsigned int i = 0; i < n; i++) {
		len += (size_t)snprintf(
		    json + len, cap - len,
		    "%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,"
		    "\"page_size\":%llu,\"page_size_kib\":%llu",
		    i ? "," : "", (unsigned long long)m[i].base_host_virt_addr,
		    (unsigned long long)m[i].size, (unsigned long long)m[i].offset,
		    (unsigned long long)m[i].page_size, (unsigned long long)m[i].page_size);
		if (m[i].has_ident)
			len += (size_t)snprintf(
			    json + len, cap - len,
			    ",\"squib_memory_uuid\":\"%.36s\",\"squib_memory_digest\":\"%.32s\"",
			    m[i].mem_uuid, m[i].mem_digest);
		len += (size_t)snprintf(json + len, cap - len, "}");
	}
	len += (size_t)snprintf(json + len, cap - len, "]");
	iov.iov_base = json;
	iov.iov_len = len;
	memset(c.b, 0, sizeof(c.b));
	c.h.cmsg_level = SOL_SOCKET;
	c.h.cmsg_type = SCM_RIGHTS;
	c.h.cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(&c.h), &uffd, sizeof(int));
	sent = sendmsg(sock, &mh, MSG_NOSIGNAL);
	free(json);
	if (sent < 0)
		return -errno;
	return sent == (ssize_t)len ? 0 : -EIO;
}
