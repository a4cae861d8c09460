/* PUT/PATCH /network-interfaces/{iface_id} and PUT /vsock (Firecracker's
 * NetworkInterfaceConfig, NetworkInterfaceUpdateConfig and VsockDeviceConfig
 * with its messages), their GET /vm/config view, --config-file sections and
 * the snapshot load's network_overrides / vsock_override (docs/network.md,
 * docs/api-compat.md; docs/format.md [F-112], [F-113]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "dev_net.h"
#include "json_fields.h"

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_BEFORE_START "The requested operation is not supported before starting the microVM."
#define MSG_NET		 "Network config error: "
#define MSG_VSOCK	 "Vsock config error: "
#define MSG_EMPTY_ID	 "The ID cannot be empty."
#define MSG_BAD_ID	 "API Resource IDs can only contain alphanumeric characters and underscores."
#define MSG_BAD_MAC	 SQB_JSON_ERR_PREFIX "The provided MAC address is invalid."
#define VSOCK_DEPRECATED "PUT /vsock: vsock_id field is deprecated."
/* parsed_request.rs checked_id */
static const char *id_error(const char *id)
{
	if (!id || !*id)
		return MSG_EMPTY_ID;
	for (const char *p = id; *p; p++)
		if (!(*p == '_' || (*p >= '0' && *p <= '9') ||
		      ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
			return MSG_BAD_ID;
	return NULL;
}

/* MacAddr::from_str: six two-digit hex groups separated by ':'. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		unsigned int v = 0;

		for (int k = 0; k < 2; k++) {
			char ch = s[i * 3 + k];
			int d = ch >= '0' && ch <= '9'			   ? ch - '0'
				: (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10
									   : -1;
			if (d < 0)
				return -1;
			v = v << 4 | (unsigned int)d;
		}
		mac[i] = (uint8_t)v;
		if (s[i * 3 + 2] != (i == 5 ? '\0' : ':'))
			return -1;
	}
	return 0;
}

static void mac_str(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

static int rl_on(const struct sqb_vio_rl_config *rl)
{
	return rl->bandwidth.size || rl->ops.size;
}

static void iface_free(struct sqb_ctl_iface *f)
{
	if (f->tap_fd >= 0)
		close(f->tap_fd);
	free(f->host_dev_name);
	memset(f, 0, sizeof(*f));
	f->tap_fd = -1;
}

void sqb_ctl_net_clear(struct sqb_ctl *c)
{
	for (unsigned int i = 0; i < c->nifaces; i++)
		iface_free(&c->ifaces[i]);
	c->nifaces = 0;
	c->vsock_set = 0;
	c->vsock_cid = 0;
	free(c->vsock_uds);
	c->vsock_uds = NULL;
}

static int find_iface(struct sqb_ctl *c, const char *id)
{
	for (unsigned int i = 0; i < c->nifaces; i++)
		if (!strcmp(c->ifaces[i].id, id))
			return (int)i;
	return -1;
}

static int mac_ok(const char *s)
{
	uint8_t mac[6];

	return parse_mac(s, mac);
}

/* The serde stage of NetworkInterfaceConfig (deny_unknown_fields), then
 * what squib does not build.  The tap is not opened here. */
static int parse_iface(yajl_val body, struct sqb_ctl_iface *f, char *err, size_t errlen)
{
	const char *id = NULL, *tap = NULL, *mac = NULL;
	yajl_val rx = NULL, tx = NULL;
	uint64_t mtu = 0;
	int have_rx = 0, have_tx = 0, have_mtu = 0;
	const struct sqb_jfield fl[] = {
	    {"iface_id", SQB_JT_STR, 1, &id},
	    {"host_dev_name", SQB_JT_STR, 1, &tap},
	    /* mac.rs: String, then MacAddr::from_str's custom error */
	    {"guest_mac", SQB_JT_STR, 0, &mac, .check = mac_ok,
	     .bad_msg = "The provided MAC address is invalid."},
	    {"mtu", SQB_JT_UINT, 0, &mtu, &have_mtu, 0, 65535, .expect = "u16"},
	    {"rx_rate_limiter", SQB_JT_OBJECT, 0, &rx, &have_rx},
	    {"tx_rate_limiter", SQB_JT_OBJECT, 0, &tx, &have_tx},
	};

	memset(f, 0, sizeof(*f));
	f->tap_fd = -1;
	if (sqb_json_fields(body, fl, 6, err, errlen) < 0)
		return -1;
	if (mac && parse_mac(mac, f->mac) < 0) { /* checked above */
		snprintf(err, errlen, MSG_BAD_MAC);
		return -1;
	}
	f->has_mac = mac != NULL;
	if (have_rx && sqb_ctl_parse_rl(rx, &f->rx, NULL, err, errlen) < 0)
		return -1;
	if (have_tx && sqb_ctl_parse_rl(tx, &f->tx, NULL, err, errlen) < 0)
		return -1;
	f->has_rx = have_rx && rl_on(&f->rx);
	f->has_tx = have_tx && rl_on(&f->tx);
	/* NetError::InvalidMtu, from Net::new at PUT as in Firecracker */
	if (have_mtu && mtu < 68) {
		snprintf(err, errlen,
			 MSG_NET "Could not create the network device: MTU %llu is out of range "
				 "[68, 65535]",
			 (unsigned long long)mtu);
		return -1;
	}
	f->mtu = have_mtu ? (uint16_t)mtu : 0;
	if (strlen(id) > SQB_VDEV_IFACE_MAX) {
		snprintf(err, errlen,
			 MSG_NET "iface_id `%.40s...` is longer than squib's limit of %d "
				 "bytes.",
			 id, SQB_VDEV_IFACE_MAX);
		return -1;
	}
	snprintf(f->id, sizeof(f->id), "%s", id);
	if (!(f->host_dev_name = strdup(tap))) {
		snprintf(err, errlen, "Out of memory");
		return -1;
	}
	return 0;
}

static void hotplug_net(struct sqb_ctl *c, struct sqb_ctl_iface *f, struct sqb_ctl_resp *r);

/* NetBuilder::build: a MAC another interface has is refused; an existing
 * id is replaced (its tap closed first); then the tap is opened. */
static void put_net(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_iface f;
	struct sqb_diag d = {0};
	const char *bad = id ? id_error(id) : NULL;
	char err[700], ms[18];
	int at, e;

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (parse_iface(body, &f, err, sizeof(err)) < 0) {
		iface_free(&f);
		return sqb_ctl_fault(r, "%s", err);
	}
	if (id && strcmp(f.id, id)) {
		sqb_ctl_fault(r,
			      "The id from the path [%s] does not match the id from the body [%s]!",
			      id, f.id);
		iface_free(&f);
		return;
	}
	if (!id && (bad = id_error(f.id))) {
		iface_free(&f);
		return sqb_ctl_fault(r, "%s", bad);
	}
	if (c->vm) { /* Firecracker's hot-plug (device_manager hotplug_device) */
		if (c->pci)
			return hotplug_net(c, &f, r);
		sqb_ctl_fault(r, MSG_NO_PCI);
		iface_free(&f);
		return;
	}
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	for (unsigned int i = 0; f.has_mac && i < c->nifaces; i++)
		if (c->ifaces[i].has_mac && !memcmp(c->ifaces[i].mac, f.mac, 6) &&
		    strcmp(c->ifaces[i].id, f.id)) {
			mac_str(f.mac, ms);
			iface_free(&f);
			return sqb_ctl_fault(r, MSG_NET "The MAC address is already in use: %s",
					     ms);
		}
	at = find_iface(c, f.id);
	if (at < 0 && c->nifaces >= SQB_CTL_MAX_IFACES) {
		iface_free(&f);
		return sqb_ctl_fault(r, MSG_NET "squib supports at most %d network interfaces.",
				     SQB_CTL_MAX_IFACES);
	}
	if (at >= 0) { /* the previous device is destroyed first, as in Firecracker */
		sqb_ctl_log(SQB_CTL_WARN,
			    "Replacing existing network device '%s'. The previous device "
			    "configuration will be destroyed.",
			    f.id);
		iface_free(&c->ifaces[at]);
		memmove(&c->ifaces[at], &c->ifaces[at + 1],
			(c->nifaces - (unsigned int)at - 1) * sizeof(c->ifaces[0]));
		c->nifaces--;
	}
	e = sqb_vdev_net_tap_open(&f.tap_fd, f.host_dev_name, &d);
	if (e < 0) {
		sqb_ctl_fault(r,
			      MSG_NET
			      "Could not create the network device: Open tap device failed: "
			      "Error while creating ifreq structure: %s (os error %d). Invalid "
			      "TUN/TAP Backend provided by %s. Check our documentation on "
			      "setting up the network devices.",
			      sqb_os_strerror(-e), -e, f.host_dev_name);
		iface_free(&f);
		return;
	}
	c->ifaces[c->nifaces++] = f;
	c->configured = 1;
	r->status = 204;
}

void sqb_ctl_put_net(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	put_net(c, id, body, r);
}

static void bucket_merge(struct sqb_vio_bucket *cur, const struct sqb_vio_bucket *upd, int given)
{
	if (given)
		*cur = *upd; /* BucketUpdate::Update; a zero size disables it */
}

/* PATCH: only the rate limiters, after boot; a bucket not in the body stays. */
void sqb_ctl_patch_net(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *bid = NULL;
	yajl_val rxv = NULL, txv = NULL;
	int have_rx = 0, have_tx = 0, grx[2] = {0, 0}, gtx[2] = {0, 0}, at, rc;
	const struct sqb_jfield fl[] = {
	    {"iface_id", SQB_JT_STR, 1, &bid},
	    {"rx_rate_limiter", SQB_JT_OBJECT, 0, &rxv, &have_rx},
	    {"tx_rate_limiter", SQB_JT_OBJECT, 0, &txv, &have_tx},
	};
	struct sqb_vio_rl_config urx = {0}, utx = {0}, mrx, mtx;
	const char *bad = id_error(id);
	char err[700];

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (sqb_json_fields(body, fl, 3, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (have_rx && sqb_ctl_parse_rl(rxv, &urx, grx, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (have_tx && sqb_ctl_parse_rl(txv, &utx, gtx, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (strcmp(bid, id))
		return sqb_ctl_fault(
		    r, "The id from the path [%s] does not match the id from the body [%s]!", id,
		    bid);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	at = find_iface(c, id);
	if (at < 0)
		return sqb_ctl_fault(r, MSG_NET "Unable to update the net device: Failed perform "
						"action on device: Device not found");
	mrx = c->ifaces[at].has_rx ? c->ifaces[at].rx : (struct sqb_vio_rl_config){0};
	mtx = c->ifaces[at].has_tx ? c->ifaces[at].tx : (struct sqb_vio_rl_config){0};
	bucket_merge(&mrx.bandwidth, &urx.bandwidth, grx[0]);
	bucket_merge(&mrx.ops, &urx.ops, grx[1]);
	bucket_merge(&mtx.bandwidth, &utx.bandwidth, gtx[0]);
	bucket_merge(&mtx.ops, &utx.ops, gtx[1]);
	rc = sqb_vdev_net_set_rate_limiters(c->vm, id, rl_on(&mrx) ? &mrx : NULL,
					    rl_on(&mtx) ? &mtx : NULL);
	if (rc < 0)
		return sqb_ctl_fault(r, MSG_NET "Unable to update the net device: %s",
				     rc == -ENODEV ? "Failed perform action on device: Device "
						     "not found"
						   : sqb_strerror(rc));
	c->ifaces[at].rx = mrx;
	c->ifaces[at].tx = mtx;
	c->ifaces[at].has_rx = rl_on(&mrx);
	c->ifaces[at].has_tx = rl_on(&mtx);
	sqb_ctl_log(SQB_CTL_INFO, "network interface %s: rate limiters updated", id);
	r->status = 204;
}

/* VsockDeviceConfig (the values; the path is tried in sqb_ctl_put_vsock). */
static int parse_vsock(yajl_val body, uint64_t *cid, const char **path, int *depr, char *err,
		       size_t errlen)
{
	const char *vid = NULL;
	const struct sqb_jfield fl[] = {
	    {"vsock_id", SQB_JT_STR, 0, &vid},
	    {"guest_cid", SQB_JT_UINT, 1, cid, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"uds_path", SQB_JT_STR, 1, path},
	};

	if (sqb_json_fields(body, fl, 3, err, errlen) < 0)
		return -1;
	*depr = vid != NULL;
	if (*cid < 3 || *cid > 0xfffffffeull) {
		snprintf(err, errlen,
			 MSG_VSOCK
			 "Cannot create vsock device: guest_cid %llu is reserved: it must "
			 "be 3 .. 4294967294.",
			 (unsigned long long)*cid);
		return -1;
	}
	if (!**path || strlen(*path) > 96) {
		snprintf(err, errlen,
			 MSG_VSOCK
			 "Cannot create backend for vsock device: uds_path must be 1 .. 96 "
			 "bytes (\"<uds_path>_<port>\" must fit a Unix socket address).");
		return -1;
	}
	return 0;
}

/* VsockUnixBackend::new binds uds_path at PUT: squib binds it here too, to
 * give the same error at the same time, and lets it go again (the device
 * binds it for good at InstanceStart).  0 or the bind's errno. */
static int try_bind(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		e = errno;
	close(fd);
	if (!e)
		unlink(path);
	return e;
}

void sqb_ctl_put_vsock(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *path = NULL;
	uint64_t cid = 0;
	int depr = 0, e;
	char err[700], *copy;

	if (parse_vsock(body, &cid, &path, &depr, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (depr)
		sqb_ctl_deprecated(c, r, VSOCK_DEPRECATED);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	if ((e = try_bind(path)))
		return sqb_ctl_fault(r,
				     MSG_VSOCK
				     "Cannot create backend for vsock device: Error binding "
				     "to the host-side Unix socket: %s (os error %d)",
				     sqb_os_strerror(e), e);
	if (!(copy = strdup(path)))
		return sqb_ctl_fault(r, "Out of memory");
	free(c->vsock_uds);
	c->vsock_uds = copy;
	c->vsock_cid = cid;
	c->vsock_set = 1;
	c->configured = 1;
	r->status = 204;
}

/* ---- GET /vm/config (NetworkInterfaceConfig / VsockDeviceConfig) ---- */

void sqb_ctl_net_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	char ms[18];

	sqb_jb_open(b, '[');
	for (unsigned int i = 0; i < c->nifaces; i++) {
		const struct sqb_ctl_iface *f = &c->ifaces[i];

		sqb_jb_open(b, '{');
		sqb_jb_key(b, "iface_id");
		sqb_jb_str(b, f->id);
		sqb_jb_key(b, "host_dev_name");
		sqb_jb_str(b, f->host_dev_name);
		sqb_jb_key(b, "guest_mac");
		if (f->has_mac) {
			mac_str(f->mac, ms);
			sqb_jb_str(b, ms);
		} else {
			sqb_jb_null(b);
		}
		sqb_jb_key(b, "mtu");
		if (f->mtu)
			sqb_jb_u64(b, f->mtu);
		else
			sqb_jb_null(b);
		sqb_jb_key(b, "rx_rate_limiter");
		sqb_ctl_rl_json(b, f->has_rx, &f->rx);
		sqb_jb_key(b, "tx_rate_limiter");
		sqb_ctl_rl_json(b, f->has_tx, &f->tx);
		sqb_jb_close(b, '}');
	}
	sqb_jb_close(b, ']');
}

void sqb_ctl_vsock_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	if (!c->vsock_set) {
		sqb_jb_null(b);
		return;
	}
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "guest_cid");
	sqb_jb_u64(b, c->vsock_cid);
	sqb_jb_key(b, "uds_path");
	sqb_jb_str(b, c->vsock_uds);
	sqb_jb_close(b, '}');
}

/* ---- the VM ---- */

/* One interface's device (an MMDS interface carries the data store). */
static int add_iface(struct sqb_ctl *c, sqb_vm *vm, const struct sqb_ctl_iface *f,
		     struct sqb_diag *diag)
{
	struct sqb_vdev_net_cfg n = {SQB_VDEV_NET_VERSION,	 f->id,
				     f->host_dev_name,		 f->tap_fd,
				     f->has_mac ? f->mac : NULL, f->has_rx ? &f->rx : NULL,
				     f->has_tx ? &f->tx : NULL,	 f->mtu,
				     f->mmds ? c->mmds : NULL,	 c->mmds_ipv4};

	return sqb_vdev_add_net(vm, &n, diag);
}

int sqb_ctl_net_add_devices(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag)
{
	int err;

	for (unsigned int i = 0; i < c->nifaces; i++) {
		struct sqb_ctl_iface *f = &c->ifaces[i];

		if ((err = add_iface(c, vm, f, diag)) < 0)
			return err;
		/* the device holds its own dup: let the tap go with the device */
		if (f->tap_fd >= 0) {
			close(f->tap_fd);
			f->tap_fd = -1;
		}
	}
	if (c->vsock_set) {
		struct sqb_vdev_vsock_cfg v = {SQB_VDEV_VSOCK_VERSION, c->vsock_cid, c->vsock_uds};

		if ((err = sqb_vdev_add_vsock(vm, &v, diag)) < 0) {
			if (diag && !diag->section[0])
				snprintf(diag->section, sizeof(diag->section), "vsock");
			return err;
		}
	}
	return 0;
}

int sqb_ctl_net_from_config(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	const char *pn[] = {"network-interfaces", NULL}, *pv[] = {"vsock", NULL};
	yajl_val nets = yajl_tree_get(root, pn, yajl_t_any);
	yajl_val vs = yajl_tree_get(root, pv, yajl_t_any);
	char why[700];

	sqb_ctl_net_clear(c);
	if (nets && !YAJL_IS_NULL(nets) && !YAJL_IS_ARRAY(nets)) {
		snprintf(err, errlen, "`network-interfaces` must be an array");
		return -1;
	}
	for (size_t i = 0; nets && YAJL_IS_ARRAY(nets) && i < nets->u.array.len; i++) {
		struct sqb_ctl_iface f;
		const char *bad = NULL;

		if (parse_iface(nets->u.array.values[i], &f, why, sizeof(why)) < 0 ||
		    (bad = id_error(f.id)) || find_iface(c, f.id) >= 0 ||
		    c->nifaces >= SQB_CTL_MAX_IFACES) {
			snprintf(err, errlen, "network-interfaces[%zu]: %s", i,
				 bad			      ? bad
				 : f.id[0] && f.host_dev_name ? "duplicate or too many"
							      : why);
			iface_free(&f);
			sqb_ctl_net_clear(c);
			return -1;
		}
		c->ifaces[c->nifaces++] = f;
	}
	if (vs && !YAJL_IS_NULL(vs)) {
		const char *path = NULL;
		uint64_t cid = 0;
		int depr = 0;

		if (!YAJL_IS_OBJECT(vs) ||
		    parse_vsock(vs, &cid, &path, &depr, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "vsock: %s",
				 YAJL_IS_OBJECT(vs) ? why : "not an object");
			sqb_ctl_net_clear(c);
			return -1;
		}
		if (!(c->vsock_uds = strdup(path))) {
			snprintf(err, errlen, "Out of memory");
			return -1;
		}
		c->vsock_cid = cid;
		c->vsock_set = 1;
	}
	return 0;
}

int sqb_ctl_net_apply_config(struct sqb_ctl *c, yajl_val root, struct sqb_ctl_resp *r, char *err,
			     size_t errlen)
{
	const char *path[] = {"network-interfaces", NULL};
	yajl_val v = yajl_tree_get(root, path, yajl_t_any);

	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_ARRAY(v)) {
		snprintf(err, errlen, "config file: section `network-interfaces` must be an array");
		return -1;
	}
	for (size_t i = 0; i < v->u.array.len; i++) {
		r->status = 400;
		if (!YAJL_IS_OBJECT(v->u.array.values[i]))
			sqb_ctl_fault(r, "an interface must be an object");
		else /* the body's iface_id is the id, as Firecracker inserts it */
			put_net(c, NULL, v->u.array.values[i], r);
		if (r->status >= 300) {
			snprintf(err, errlen, "config file: section `network-interfaces`[%zu]: %s",
				 i, r->body);
			return -1;
		}
	}
	return 0;
}

/* snapshot.rs NetworkOverride / VsockOverride at serde time: both fields
 * required strings, unknown keys ignored (neither struct has
 * deny_unknown_fields).  0, or -1 with serde's message in err. */
int sqb_ctl_net_overrides_parse(yajl_val netov, yajl_val vsockov, char *err, size_t errlen)
{
	const char *id, *tap, *path;
	const struct sqb_jfield fn[] = {
	    {"iface_id", SQB_JT_STR, 1, &id},
	    {"host_dev_name", SQB_JT_STR, 1, &tap},
	};
	const struct sqb_jfield fv[] = {{"uds_path", SQB_JT_STR, 1, &path}};

	for (size_t i = 0; netov && i < netov->u.array.len; i++)
		if (sqb_json_fields_ex(netov->u.array.values[i], fn, 2, SQB_JF_IGNORE_UNKNOWN, err,
				       errlen) < 0)
			return -1;
	if (vsockov && sqb_json_fields_ex(vsockov, fv, 1, SQB_JF_IGNORE_UNKNOWN, err, errlen) < 0)
		return -1;
	return 0;
}

/* persist.rs SnapshotStateFromFileError, under RestoreFromSnapshotError::File */
#define MSG_STATE_FILE "Failed to get snapshot state from file: "
#define MSG_NO_NET     MSG_STATE_FILE "Unknown Network Device."
#define MSG_NO_VSOCK   MSG_STATE_FILE "Unknown Vsock Device."

/* persist.rs restore_from_snapshot: each override names an interface of
 * the snapshot (else UnknownNetworkDevice), the vsock one needs a vsock
 * (UnknownVsockDevice); the tap and socket path are replaced before the
 * devices are built.  The bodies passed sqb_ctl_net_overrides_parse().
 * squib's "squib" object may give each clone its own guest_mac and
 * guest_cid ([F-110], [F-111]: a config-change interrupt). */
int sqb_ctl_net_overrides(struct sqb_ctl *c, yajl_val netov, yajl_val vsockov, yajl_val ext_net,
			  yajl_val ext_vsock, char *err, size_t errlen)
{
	char why[600];

	for (size_t i = 0; netov && i < netov->u.array.len; i++) {
		const char *id = NULL, *tap = NULL;
		const struct sqb_jfield fl[] = {
		    {"iface_id", SQB_JT_STR, 1, &id},
		    {"host_dev_name", SQB_JT_STR, 1, &tap},
		};
		char *copy;
		int at;

		if (sqb_json_fields_ex(netov->u.array.values[i], fl, 2, SQB_JF_IGNORE_UNKNOWN, why,
				       sizeof(why)) < 0) {
			snprintf(err, errlen, "network_overrides[%zu]: %s", i, why);
			return -1;
		}
		if ((at = find_iface(c, id)) < 0) {
			snprintf(err, errlen,
				 MSG_NO_NET " network_overrides[%zu]: the snapshot has no "
					    "iface_id '%.64s'.",
				 i, id);
			return -1;
		}
		if (!(copy = strdup(tap))) {
			snprintf(err, errlen, "Out of memory");
			return -1;
		}
		free(c->ifaces[at].host_dev_name);
		c->ifaces[at].host_dev_name = copy;
	}
	if (vsockov) {
		const char *path = NULL;
		const struct sqb_jfield fl[] = {{"uds_path", SQB_JT_STR, 1, &path}};
		char *copy;

		if (sqb_json_fields_ex(vsockov, fl, 1, SQB_JF_IGNORE_UNKNOWN, why, sizeof(why)) <
		    0) {
			snprintf(err, errlen, "vsock_override: %s", why);
			return -1;
		}
		if (!c->vsock_set) {
			snprintf(err, errlen,
				 MSG_NO_VSOCK " vsock_override given, but the snapshot has no "
					      "vsock device.");
			return -1;
		}
		/* PUT /vsock's bound (parse_vsock); Firecracker has none here
		 * and fails at the bind, also with 400 */
		if (!*path || strlen(path) > 96) {
			snprintf(err, errlen,
				 "vsock_override: uds_path must be 1 .. 96 bytes, not %zu "
				 "(\"<uds_path>_<port>\" must fit a Unix socket address).",
				 strlen(path));
			return -1;
		}
		if (!(copy = strdup(path))) {
			snprintf(err, errlen, "Out of memory");
			return -1;
		}
		free(c->vsock_uds);
		c->vsock_uds = copy;
	}
	for (size_t i = 0; ext_net && i < ext_net->u.array.len; i++) {
		const char *id = NULL, *mac = NULL;
		const struct sqb_jfield fl[] = {
		    {"iface_id", SQB_JT_STR, 1, &id},
		    {"guest_mac", SQB_JT_STR, 1, &mac},
		};
		int at;

		if (sqb_json_fields(ext_net->u.array.values[i], fl, 2, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "squib.network[%zu]: %s", i, why);
			return -1;
		}
		if ((at = find_iface(c, id)) < 0) {
			snprintf(err, errlen,
				 MSG_NO_NET " squib.network[%zu]: the snapshot has no "
					    "iface_id '%.64s'.",
				 i, id);
			return -1;
		}
		if (!c->ifaces[at].has_mac || parse_mac(mac, c->ifaces[at].mac) < 0) {
			snprintf(err, errlen, "squib.network[%zu]: %s", i,
				 c->ifaces[at].has_mac
				     ? "The provided MAC address is invalid."
				     : "the interface was saved without a guest_mac "
				       "(VIRTIO_NET_F_MAC is fixed by the snapshot)");
			return -1;
		}
	}
	if (ext_vsock) {
		uint64_t cid = 0;
		const struct sqb_jfield fl[] = {
		    {"guest_cid", SQB_JT_UINT, 1, &cid, NULL, 3, 0xfffffffeull, .expect = "u32"}};

		if (sqb_json_fields(ext_vsock, fl, 1, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "squib.vsock: %s", why);
			return -1;
		}
		if (!c->vsock_set) {
			snprintf(err, errlen,
				 MSG_NO_VSOCK " squib.vsock given, but the snapshot has no "
					      "vsock device.");
			return -1;
		}
		c->vsock_cid = cid;
	}
	return 0;
}

/* ---- PCI hot-plug of an interface (device_manager/mod.rs hotplug_make_net
 * and hot_unplug_device; --enable-pci, after InstanceStart) ---- */

struct hp_net {
	struct sqb_ctl *c;
	struct sqb_ctl_iface *f;
};

static int hp_add_net(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	const struct hp_net *h = arg;

	return add_iface(h->c, vm, h->f, diag); /* not an MMDS interface: mmds is 0 */
}

/* Takes f. */
static void hotplug_net(struct sqb_ctl *c, struct sqb_ctl_iface *f, struct sqb_ctl_resp *r)
{
	struct hp_net h = {c, f};
	struct sqb_diag d = {0};
	char ms[18];
	int e;

	if (find_iface(c, f->id) >= 0) {
		iface_free(f);
		return sqb_ctl_fault(r, "Device ID in use");
	}
	for (unsigned int i = 0; f->has_mac && i < c->nifaces; i++)
		if (c->ifaces[i].has_mac && !memcmp(c->ifaces[i].mac, f->mac, 6)) {
			mac_str(f->mac, ms);
			iface_free(f);
			return sqb_ctl_fault(r, MSG_NET "The MAC address is already in use: %s",
					     ms);
		}
	if (c->nifaces >= SQB_CTL_MAX_IFACES) {
		iface_free(f);
		return sqb_ctl_fault(r, MSG_NET "squib supports at most %d network interfaces.",
				     SQB_CTL_MAX_IFACES);
	}
	e = sqb_vdev_net_tap_open(&f->tap_fd, f->host_dev_name, &d);
	if (e < 0) {
		sqb_ctl_fault(r,
			      MSG_NET
			      "Could not create the network device: Open tap device failed: "
			      "Error while creating ifreq structure: %s (os error %d). Invalid "
			      "TUN/TAP Backend provided by %s. Check our documentation on "
			      "setting up the network devices.",
			      sqb_os_strerror(e), -e, f->host_dev_name);
		iface_free(f);
		return;
	}
	memset(&d, 0, sizeof(d));
	e = sqb_vm_hotplug(c->vm, hp_add_net, &h, &d);
	if (f->tap_fd >= 0) { /* the device holds its own dup */
		close(f->tap_fd);
		f->tap_fd = -1;
	}
	if (e < 0) {
		iface_free(f);
		return sqb_ctl_fault(r, "PCI manager error: %s",
				     d.reason[0] ? d.reason : sqb_strerror(e));
	}
	c->ifaces[c->nifaces++] = *f;
	sqb_ctl_log(SQB_CTL_INFO, "network interface %s: hot-plugged on the PCI bus", f->id);
	r->status = 204;
}

void sqb_ctl_unplug_net(struct sqb_ctl *c, const char *id, struct sqb_ctl_resp *r)
{
	int at = find_iface(c, id), rc;
	char dev[SQB_VDEV_ID_MAX + 1];

	if (at < 0)
		return sqb_ctl_fault(r, "Device not found");
	snprintf(dev, sizeof(dev), SQB_VDEV_NET_PREFIX "%s", id); /* its id on the bus */
	rc = sqb_vm_unplug(c->vm, dev);
	if (rc == -ENOENT)
		return sqb_ctl_fault(r, "Device not found");
	if (rc < 0)
		return sqb_ctl_fault(r, "PCI manager error: %s", sqb_strerror(rc));
	iface_free(&c->ifaces[at]);
	memmove(&c->ifaces[at], &c->ifaces[at + 1],
		(c->nifaces - (unsigned int)at - 1) * sizeof(c->ifaces[0]));
	c->nifaces--;
	sqb_ctl_log(SQB_CTL_INFO, "network interface %s: unplugged from the PCI bus", id);
	r->status = 204;
}
