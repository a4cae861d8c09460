/* PUT/PATCH/GET /mmds and PUT /mmds/config (Firecracker's MMDS API with its
 * statuses and messages), --metadata, the "mmds-config" of GET /vm/config,
 * config files and snapshots (docs/mmds.md, docs/api-compat.md).
 *
 * Firecracker's lifetime of the store, kept here: before boot any of the
 * three /mmds requests creates it (locked_mmds_or_default); after boot (or a
 * load) it exists only when an interface carries the MMDS stack, else every
 * /mmds request answers "not initialized".  The document itself is never
 * part of a snapshot; version, address, interfaces and imds_compat are. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "json_fields.h"
#include "mmds.h"
#include "mmds_ns.h"

#define MSG_AFTER_START "The requested operation is not supported after starting the microVM."
#define MSG_MMDS	"MMDS error: "
/* sic: Firecracker's VmmActionError::MmdsConfig text has three Ms */
#define MSG_MMDS_CFG	"MMMDS config error: "
#define MSG_NOT_INIT	MSG_MMDS "The MMDS data store is not initialized."
#define MSG_TOO_LARGE	"MMDS limit exceeded error: The MMDS patch request doesn't fit."
#define MSG_EMPTY_LIST	"The list of network interface IDs that allow forwarding MMDS requests is empty."
#define MSG_BAD_IFACE                                                                              \
	"The list of network interface IDs provided contains at least one ID that does not "       \
	"correspond to any existing network interface."
#define MSG_NOT_LL "The MMDS IPv4 address is not link local."
#define MSG_V1_DEPRECATED "PUT /mmds/config: V1 is deprecated. Use V2 instead."

static int any_iface(const struct sqb_ctl *c)
{
	for (unsigned int i = 0; i < c->nifaces; i++)
		if (c->ifaces[i].mmds)
			return 1;
	return 0;
}

/* The store for a request: before boot created on first use, after boot
 * only what the interfaces carry. */
static sqb_mmds *store(struct sqb_ctl *c)
{
	if (c->vm)
		return any_iface(c) ? c->mmds : NULL;
	if (!c->mmds &&
	    sqb_mmds_new(c->mmds_limit_set || c->mmds_limit ? c->mmds_limit : SQB_MMDS_DEFAULT_LIMIT,
			 &c->mmds) < 0)
		return NULL;
	return c->mmds;
}

void sqb_ctl_mmds_destroy(struct sqb_ctl *c)
{
	sqb_mmds_free(c->mmds);
	c->mmds = NULL;
}

static void put_or_patch(struct sqb_ctl *c, int patch, const char *body, size_t len,
			 struct sqb_ctl_resp *r)
{
	sqb_mmds *m = store(c);
	char why[400];
	int rc;

	if (!m)
		return sqb_ctl_fault(r, MSG_NOT_INIT);
	rc = patch ? sqb_mmds_patch(m, body, len, why, sizeof(why))
		   : sqb_mmds_put(m, body, len, why, sizeof(why));
	switch (rc) {
	case SQB_MMDS_OK:
		r->status = 204;
		return;
	case SQB_MMDS_E_TOO_LARGE:
		sqb_ctl_fault(r, MSG_TOO_LARGE);
		r->status = 413;
		return;
	case SQB_MMDS_E_NOT_INIT:
		return sqb_ctl_fault(r, MSG_NOT_INIT);
	case SQB_MMDS_E_PARSE:
		return sqb_ctl_fault(r, SQB_JSON_ERR_PREFIX "%s", why);
	default:
		return sqb_ctl_fault(r, MSG_MMDS "out of memory");
	}
}

/* GET /mmds: the document (sqb_mmds_get answers "{}" for none, as
 * success_response_with_mmds_value).  A body larger than the fixed buffer
 * goes out from the heap. */
static void get(struct sqb_ctl *c, struct sqb_ctl_resp *r)
{
	sqb_mmds *m = store(c);
	char *doc = NULL;
	size_t n = 0;

	if (!m)
		return sqb_ctl_fault(r, MSG_NOT_INIT);
	if (sqb_mmds_get(m, &doc, &n) < 0) /* "{}" for a null document, as Firecracker */
		return sqb_ctl_fault(r, MSG_MMDS "out of memory");
	if (n < sizeof(r->body)) {
		memcpy(r->body, doc, n + 1);
		free(doc);
	} else {
		r->heap = doc;
	}
	r->status = 200;
}

/* The /mmds endpoints take any JSON value, not an object: routed here with
 * the raw body before the object parser (parsed_request.rs: /mmds/<x> other
 * than config is "Unrecognized PUT request path"). */
int sqb_ctl_mmds_raw(struct sqb_ctl *c, const char *method, const char *path, const char *body,
		     size_t len, struct sqb_ctl_resp *r)
{
	if (strncmp(path, "/mmds", 5) || (path[5] && path[5] != '/'))
		return 0;
	if (!path[5]) {
		if (!strcmp(method, "GET"))
			get(c, r);
		else if (!strcmp(method, "PUT"))
			put_or_patch(c, 0, body, len, r);
		else if (!strcmp(method, "PATCH"))
			put_or_patch(c, 1, body, len, r);
		else
			return 0;
		return 1;
	}
	if (!strcmp(path + 6, "config"))
		return 0; /* PUT /mmds/config: an ordinary route */
	if (!strcmp(method, "PUT")) {
		sqb_ctl_fault(r, "Unrecognized PUT request path `%.100s`.", path + 6);
		return 1;
	}
	return 0;
}

/* PUT /mmds/config (MmdsConfig, deny_unknown_fields): before boot only;
 * the address first, then the list, then that each id exists
 * (set_mmds_network_stack_config), then version and imds_compat. */
static int ipv4_ok(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1 ? 0 : -1;
}

void sqb_ctl_put_mmds_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	static const char *const versions[] = {"V1", "V2", NULL};
	const char *version = "V1", *ipv4 = NULL;
	yajl_val ifaces = NULL;
	int imds = 0, have_ip = 0;
	struct in_addr a;
	uint32_t ip = SQB_MMDS_DEFAULT_IPV4;
	unsigned char want[SQB_CTL_MAX_IFACES] = {0};
	char err[600];
	const struct sqb_jfield f[] = {
	    {"version", SQB_JT_ENUM, 0, &version, NULL, 0, 0, versions, 0, "`V1` or `V2`", NULL},
	    {"network_interfaces", SQB_JT_ARRAY, 1, &ifaces},
	    /* serde's Ipv4Addr: a FromStr visitor ("IPv4 address"), whose
	     * AddrParseError is a custom error at the value */
	    {"ipv4_address", SQB_JT_STR, 0, &ipv4, &have_ip, .expect = "IPv4 address",
	     .check = ipv4_ok, .bad_msg = "invalid IPv4 address syntax"},
	    {"imds_compat", SQB_JT_BOOL, 0, &imds},
	};
	sqb_mmds *m;

	if (sqb_json_fields(body, f, 4, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	for (size_t i = 0; i < ifaces->u.array.len; i++)
		if (!YAJL_IS_STRING(ifaces->u.array.values[i]))
			return sqb_ctl_fault(r, SQB_JSON_ERR_PREFIX
					     "invalid type: expected a string in `network_interfaces`.");
	if (have_ip && ipv4) {
		if (inet_pton(AF_INET, ipv4, &a) != 1) /* checked above */
			return sqb_ctl_fault(r, SQB_JSON_ERR_PREFIX "invalid IPv4 address syntax.");
		ip = ntohl(a.s_addr);
	}
	/* request/mmds.rs: a body that parses with V1 (the default) is
	 * deprecated whatever follows (the header and the warning come with
	 * a refusal too) */
	if (strcmp(version, "V2"))
		sqb_ctl_deprecated(c, r, MSG_V1_DEPRECATED);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	/* ipv4addr.rs is_link_local_valid: 169.254/16 less its first and last /24 */
	if ((ip >> 16) != 0xa9fe || ((ip >> 8) & 0xff) == 0 || ((ip >> 8) & 0xff) == 0xff)
		return sqb_ctl_fault(r, MSG_MMDS_CFG MSG_NOT_LL);
	if (!ifaces->u.array.len)
		return sqb_ctl_fault(r, MSG_MMDS_CFG MSG_EMPTY_LIST);
	for (size_t i = 0; i < ifaces->u.array.len; i++) {
		const char *id = YAJL_GET_STRING(ifaces->u.array.values[i]);
		unsigned int k;

		for (k = 0; k < c->nifaces && strcmp(c->ifaces[k].id, id); k++)
			;
		if (k == c->nifaces)
			return sqb_ctl_fault(r, MSG_MMDS_CFG MSG_BAD_IFACE);
		want[k] = 1;
	}
	if (!(m = store(c)))
		return sqb_ctl_fault(r, MSG_MMDS "out of memory");
	for (unsigned int k = 0; k < c->nifaces; k++)
		c->ifaces[k].mmds = want[k];
	c->mmds_ipv4 = ip;
	sqb_mmds_set_version(m, strcmp(version, "V2") ? SQB_MMDS_V1 : SQB_MMDS_V2);
	sqb_mmds_set_imds_compat(m, imds);
	r->status = 204;
}

/* GET /vm/config "mmds-config" (resources.rs mmds_config): null unless an
 * interface carries the stack; MmdsConfig's field order. */
void sqb_ctl_mmds_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	struct in_addr a = {htonl(c->mmds_ipv4)};
	char ip[INET_ADDRSTRLEN];

	if (!c->mmds || !any_iface(c)) {
		sqb_jb_null(b);
		return;
	}
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "version");
	sqb_jb_str(b, sqb_mmds_version(c->mmds) == SQB_MMDS_V2 ? "V2" : "V1");
	sqb_jb_key(b, "network_interfaces");
	sqb_jb_open(b, '[');
	for (unsigned int i = 0; i < c->nifaces; i++)
		if (c->ifaces[i].mmds)
			sqb_jb_str(b, c->ifaces[i].id);
	sqb_jb_close(b, ']');
	sqb_jb_key(b, "ipv4_address");
	sqb_jb_str(b, ip);
	sqb_jb_key(b, "imds_compat");
	sqb_jb_bool(b, sqb_mmds_imds_compat(c->mmds));
	sqb_jb_close(b, '}');
}

/* "mmds-config" of a snapshot's configuration (after its interfaces were
 * read): the stack comes back on the same interfaces with the same address,
 * version and imds_compat; the document and every token do not (the data
 * store is not persisted: a clone is reseeded by its orchestrator). */
int sqb_ctl_mmds_from_config(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	const char *path[] = {"mmds-config", NULL};
	yajl_val v = yajl_tree_get(root, path, yajl_t_any);
	struct sqb_ctl_resp *r;
	sqb_vm *vm = c->vm;
	uint64_t depr;
	int ok;

	if (c->mmds)
		sqb_mmds_reset(c->mmds);
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_OBJECT(v)) {
		snprintf(err, errlen, "`mmds-config` must be an object");
		return -1;
	}
	r = malloc(sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "Out of memory");
		return -1;
	}
	r->status = 400;
	r->heap = NULL;
	c->vm = NULL; /* a load builds its devices before the VM is the controller's */
	depr = c->n.deprecated_http_api_calls;
	sqb_ctl_put_mmds_config(c, v, r);
	c->n.deprecated_http_api_calls = depr; /* not an API call */
	c->vm = vm;
	ok = r->status == 204;
	if (!ok)
		snprintf(err, errlen, "mmds-config: %.400s", r->body);
	free(r);
	return ok ? 0 : -1;
}

/* --metadata FILE (Firecracker's MMDS_CONTENT_ARG): the document before
 * the API starts; a file that is not JSON or too large is a start error. */
int sqb_ctl_mmds_put_file(struct sqb_ctl *c, const char *path, char *err, size_t errlen)
{
	sqb_mmds *m = store(c);
	char *buf;
	size_t got;
	int rc;

	if (!m) {
		snprintf(err, errlen, "MMDS: out of memory");
		return -1;
	}
	rc = sqb_ctl_read_file(path, 1 << 26, &buf, &got);
	if (rc < 0) {
		snprintf(err, errlen, "Unable to open or read from the mmds content file %s: %s",
			 path, rc == -EFBIG ? "larger than 64 MiB" : sqb_os_strerror(-rc));
		return -1;
	}
	rc = sqb_mmds_put(m, buf, got, err, errlen);
	free(buf);
	if (rc == SQB_MMDS_E_TOO_LARGE)
		/* BuildMicrovmFromRequestsError::PopulateMmds, as main.rs
		 * logs it (test_cmd_line_start.py test_start_with_metadata_limit) */
		snprintf(err, errlen,
			 "Failed to build MicroVM: Populating MMDS from file failed: The MMDS "
			 "patch request doesn't fit. (%s)",
			 path);
	else if (rc == SQB_MMDS_E_PARSE) {
		char why[400];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "MMDS error: metadata provided not valid json: %s: %s", path,
			 why);
	}
	return rc == SQB_MMDS_OK ? 0 : -1;
}
