/* PUT/PATCH /drives/{drive_id}, PUT/PATCH /pmem/{id} and PUT /entropy
 * (Firecracker's BlockDeviceConfig, BlockDeviceUpdateConfig, PmemConfig,
 * PmemDeviceUpdateConfig, EntropyDeviceConfig and RateLimiterConfig, with
 * its checks in order and its messages), their
 * GET /vm/config view, the root= command line and the add_devices hook that
 * puts them on the VM (runtime/dev_virtio.c; docs/api-compat.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "dev_virtio.h"
#include "json_fields.h"
#include "arch.h"

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_BEFORE_START "The requested operation is not supported before starting the microVM."
#define MSG_DRIVE	 "Drive config error: "
#define MSG_CREATE	 MSG_DRIVE "Unable to create the virtio block device: "
#define MSG_PATCH	 MSG_DRIVE "Unable to patch the block device: "
#define MSG_VERIFY	 " Please verify the request arguments."
#define MSG_EMPTY_ID	 "The ID cannot be empty."
#define MSG_BAD_ID	 "API Resource IDs can only contain alphanumeric characters and underscores."
#define MSG_ID_MISMATCH	 "The id from the path does not match the id from the body!"
#define MSG_PMEM	 "Pmem config error: "
#define MSG_PMEM_PATCH	 MSG_PMEM "Unable to patch the pmem device: "

static const char *const cache_types[] = {"Unsafe", "Writeback", NULL};
static const char *const io_engines[] = {"Sync", "Async", NULL};

/* parsed_request.rs checked_id: non-empty, alphanumeric or '_'. */
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

/* TokenBucketConfig (unknown keys ignored: no deny_unknown_fields). */
int sqb_ctl_parse_bucket(yajl_val v, struct sqb_vio_bucket *b, char *err, size_t errlen)
{
	uint64_t size = 0, burst = 0, refill = 0;
	const struct sqb_jfield f[] = {
	    {"size", SQB_JT_UINT, 1, &size, NULL, 0, UINT64_MAX, .expect = "u64"},
	    {"one_time_burst", SQB_JT_UINT, 0, &burst, NULL, 0, UINT64_MAX, .expect = "u64"},
	    {"refill_time", SQB_JT_UINT, 1, &refill, NULL, 0, UINT64_MAX, .expect = "u64"},
	};

	if (sqb_json_fields_ex(v, f, 3, SQB_JF_IGNORE_UNKNOWN, err, errlen) < 0)
		return -1;
	/* TokenBucket::new: a zero size or refill time is no bucket */
	if (size == 0 || refill == 0)
		size = burst = refill = 0;
	*b = (struct sqb_vio_bucket){size, burst, refill};
	return 0;
}

/* RateLimiterConfig.  given[0/1]: the bucket was in the body (PATCH keeps
 * the others, as Firecracker's BucketUpdate::None). */
int sqb_ctl_parse_rl(yajl_val v, struct sqb_vio_rl_config *rl, int given[2], char *err,
		     size_t errlen)
{
	yajl_val bw = NULL, ops = NULL;
	int have[2] = {0, 0};
	const struct sqb_jfield f[] = {
	    {"bandwidth", SQB_JT_OBJECT, 0, &bw, &have[0]},
	    {"ops", SQB_JT_OBJECT, 0, &ops, &have[1]},
	};

	memset(rl, 0, sizeof(*rl));
	if (sqb_json_fields(v, f, 2, err, errlen) < 0)
		return -1;
	if (have[0] && sqb_ctl_parse_bucket(bw, &rl->bandwidth, err, errlen) < 0)
		return -1;
	if (have[1] && sqb_ctl_parse_bucket(ops, &rl->ops, err, errlen) < 0)
		return -1;
	if (given)
		given[0] = have[0], given[1] = have[1];
	return 0;
}

static int rl_enabled(const struct sqb_vio_rl_config *rl)
{
	return rl->bandwidth.size || rl->ops.size;
}

static void drive_free(struct sqb_ctl_drive *d)
{
	free(d->path);
	free(d->partuuid);
	free(d->socket);
	sqb_vio_vhost_close(d->vhu); /* the backend sees its client go */
	memset(d, 0, sizeof(*d));
}

void sqb_ctl_devices_clear(struct sqb_ctl *c)
{
	for (unsigned int i = 0; i < c->ndrives; i++)
		drive_free(&c->drives[i]);
	c->ndrives = 0;
	for (unsigned int i = 0; i < c->npmem; i++)
		free(c->pmem[i].path);
	memset(c->pmem, 0, sizeof(c->pmem));
	c->npmem = 0;
	c->entropy_set = c->entropy_has_rl = 0;
	memset(&c->entropy_rl, 0, sizeof(c->entropy_rl));
	memset(&c->balloon, 0, sizeof(c->balloon));
	memset(&c->memhp, 0, sizeof(c->memhp));
	sqb_ctl_net_clear(c);
}

/* The serde stage of BlockDeviceConfig, then squib's own refusals (what
 * it does not build) as their own messages.  The file is not opened. */
static int parse_drive(yajl_val body, struct sqb_ctl_drive *d, char *err, size_t errlen)
{
	const char *id = NULL, *partuuid = NULL, *cache = "Unsafe", *path = NULL, *engine = "Sync";
	const char *socket = NULL;
	int root = 0, ro = 0, have_rl = 0, have_ro = 0, have_engine = 0;
	yajl_val rl = NULL;
	const struct sqb_jfield f[] = {
	    {"drive_id", SQB_JT_STR, 1, &id},
	    {"partuuid", SQB_JT_STR, 0, &partuuid},
	    {"is_root_device", SQB_JT_BOOL, 1, &root},
	    {"cache_type", SQB_JT_ENUM, 0, &cache, NULL, 0, 0, cache_types},
	    {"is_read_only", SQB_JT_BOOL, 0, &ro, &have_ro},
	    {"path_on_host", SQB_JT_STR, 0, &path},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rl, &have_rl},
	    {"io_engine", SQB_JT_ENUM, 0, &engine, &have_engine, 0, 0, io_engines},
	    {"socket", SQB_JT_STR, 0, &socket},
	};

	memset(d, 0, sizeof(*d));
	if (sqb_json_fields(body, f, 9, err, errlen) < 0)
		return -1;
	if (have_rl && sqb_ctl_parse_rl(rl, &d->rl, NULL, err, errlen) < 0)
		return -1;
	d->has_rl = have_rl && rl_enabled(&d->rl);
	/* Block::new: virtio-blk is path_on_host without socket; vhost-user is
	 * socket without path_on_host, is_read_only, rate_limiter, io_engine
	 * (the backend decides those); anything else is no block device */
	if ((!path && !socket) || (socket && (path || have_ro || have_rl || have_engine))) {
		snprintf(err, errlen, MSG_CREATE "Invalid block config.");
		return -1;
	}
	if (strlen(id) > SQB_VDEV_ID_MAX) {
		snprintf(err, errlen,
			 MSG_DRIVE "drive_id `%.40s...` is longer than squib's limit of %d bytes.",
			 id, SQB_VDEV_ID_MAX);
		return -1;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->root = root;
	d->read_only = ro;
	d->writeback = !strcmp(cache, "Writeback");
	d->async = !strcmp(engine, "Async");
	if ((path && !(d->path = strdup(path))) || (socket && !(d->socket = strdup(socket))) ||
	    (partuuid && !(d->partuuid = strdup(partuuid)))) {
		drive_free(d);
		snprintf(err, errlen, "Out of memory");
		return -1;
	}
	return 0;
}

/* Connect to a vhost-user drive's backend and negotiate; read_only is the
 * backend's VIRTIO_BLK_F_RO.  err: the message after MSG_CREATE. */
static int drive_open_vhost(struct sqb_ctl_drive *d, char *err, size_t errlen)
{
	char why[400];
	int rc = sqb_vio_vhost_blk_open(&d->vhu, d->socket, d->writeback, 0, why, sizeof(why));

	if (rc < 0) {
		snprintf(err, errlen, "Vhost user backend error: Vhost-user error: %s", why);
		return rc;
	}
	d->read_only = sqb_vio_vhost_read_only(d->vhu);
	return 0;
}

static int find_drive(struct sqb_ctl *c, const char *id)
{
	for (unsigned int i = 0; i < c->ndrives; i++)
		if (!strcmp(c->drives[i].id, id))
			return (int)i;
	return -1;
}

/* BlockBuilder::insert: a second root is refused, an existing id is
 * replaced, a root goes first. */
static int insert_drive(struct sqb_ctl *c, struct sqb_ctl_drive *d, char *err, size_t errlen)
{
	int at = find_drive(c, d->id), has_root = c->ndrives && c->drives[0].root;

	for (unsigned int i = 0; d->root && i < c->npmem; i++)
		if (c->pmem[i].root) {
			snprintf(err, errlen,
				 MSG_DRIVE "Attempt to add block as a root device while the root "
					   "device defined as a pmem device");
			return -1;
		}
	if (d->root && has_root && at != 0) {
		snprintf(err, errlen, MSG_DRIVE "A root block device already exists!");
		return -1;
	}
	if (at < 0 && c->ndrives >= SQB_CTL_MAX_DRIVES) {
		snprintf(err, errlen, MSG_DRIVE "squib supports at most %d drives.",
			 SQB_CTL_MAX_DRIVES);
		return -1;
	}
	if (at < 0) {
		at = (int)c->ndrives++;
	} else {
		drive_free(&c->drives[at]);
	}
	c->drives[at] = *d;
	if (d->root && at != 0) {
		struct sqb_ctl_drive t = c->drives[at];

		memmove(&c->drives[1], &c->drives[0], (size_t)at * sizeof(t));
		c->drives[0] = t;
	}
	memset(d, 0, sizeof(*d));
	return 0;
}

/* A PUT of pmem after boot is Firecracker's hot-plug (device_manager
 * hotplug_device): without --enable-pci its PciNotEnabled; on PCI an id
 * in use is DeviceIdInUse, then a root device AddingSecondRootDevice, both
 * before anything else about the device.  squib does not hot-plug pmem
 * yet (its device memory would have to be mapped and unmapped live). */
static void hotplug_refused(struct sqb_ctl *c, int in_use, int root, struct sqb_ctl_resp *r)
{
	if (!c->pci)
		return sqb_ctl_fault(r, MSG_NO_PCI);
	if (in_use)
		return sqb_ctl_fault(r, "Device ID in use");
	if (root)
		return sqb_ctl_fault(r, MSG_PMEM "Attempt to add pmem as a root device while the "
						 "root device defined as a block device");
	sqb_ctl_fault(r, MSG_NO_HOTPLUG);
}

static void hotplug_drive(struct sqb_ctl *c, struct sqb_ctl_drive *d, struct sqb_ctl_resp *r);

/* id: from the path; NULL for a config file's drive (the body's id). */
static void put_drive(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_drive d;
	const char *bad = id ? id_error(id) : NULL;
	char err[700];
	int fd, e;

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (parse_drive(body, &d, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (id && strcmp(d.id, id)) {
		drive_free(&d);
		return sqb_ctl_fault(r, MSG_ID_MISMATCH);
	}
	if (!id && (bad = id_error(d.id))) {
		drive_free(&d);
		return sqb_ctl_fault(r, "%s", bad);
	}
	if (c->vm) { /* Firecracker's hot-plug (device_manager hotplug_device) */
		if (c->pci)
			return hotplug_drive(c, &d, r);
		sqb_ctl_fault(r, MSG_NO_PCI);
		drive_free(&d);
		return;
	}
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	if (d.socket) {
		int old = find_drive(c, d.id);

		/* VhostUserBlock::new connects and negotiates now.  A drive of
		 * that id lets go of its connection first: backends such as
		 * qemu-storage-daemon serve one client at a time, and would
		 * never answer a second one (Firecracker connects before it
		 * drops the old).  Should the new one fail, the old drive stays
		 * configured and connects again at InstanceStart. */
		if (old >= 0 && c->drives[old].vhu) {
			sqb_vio_vhost_close(c->drives[old].vhu);
			c->drives[old].vhu = NULL;
		}
		if (drive_open_vhost(&d, err, sizeof(err)) < 0) {
			sqb_ctl_fault(r, MSG_CREATE "%s", err);
			drive_free(&d);
			return;
		}
		goto insert;
	}
	/* VirtioBlock::new opens the file now (read-only or read-write) */
	fd = open(d.path, (d.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		sqb_ctl_fault(r,
			      MSG_CREATE
			      "Virtio backend error: Error manipulating the backing file: "
			      "%s (os error %d) %s",
			      sqb_os_strerror(e), e, d.path);
		drive_free(&d);
		return;
	}
	close(fd);
	/* then the engine: Firecracker sets its io_uring up here, in
	 * VirtioBlock::new, so a host without one fails the PUT */
	if (d.async && (e = sqb_vio_blk_async_probe(err, sizeof(err))) < 0) {
		sqb_ctl_fault(r,
			      MSG_CREATE "Virtio backend error: Error coming from the IO engine: "
					 "Async error: IoUring: %s",
			      err);
		drive_free(&d);
		return;
	}
insert:
	if (insert_drive(c, &d, err, sizeof(err)) < 0) {
		drive_free(&d);
		return sqb_ctl_fault(r, "%s", err);
	}
	c->configured = 1;
	r->status = 204;
}

void sqb_ctl_put_drive(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	put_drive(c, id, body, r);
}

static void bucket_merge(struct sqb_vio_bucket *cur, const struct sqb_vio_bucket *upd, int given)
{
	if (given)
		*cur = *upd; /* a zero size or refill time disables it */
}

/* rpc_interface.rs update_block_device on a vhost-user drive: no fields
 * re-reads the backend's config and tells the guest; path_on_host or
 * rate_limiter are virtio-blk's (InvalidBlockBackend). */
static void patch_vhost(struct sqb_ctl *c, const char *id, int virtio_fields,
			struct sqb_ctl_resp *r)
{
	char why[400] = "";
	int rc;

	if (virtio_fields)
		return sqb_ctl_fault(r, MSG_PATCH "Block: Running method expected different "
						  "backend." MSG_VERIFY);
	rc = sqb_vdev_vhost_config_update(c->vm, id, why, sizeof(why));
	if (rc == -ENODEV)
		return sqb_ctl_fault(r, MSG_PATCH "Failed perform action on device: Device not "
						  "found" MSG_VERIFY);
	if (rc < 0)
		return sqb_ctl_fault(r, MSG_PATCH "Block: Vhost user backend error: %s" MSG_VERIFY,
				     why[0] ? why : sqb_strerror(rc));
	sqb_ctl_log(SQB_CTL_INFO, "drive %s: config re-read from its vhost-user backend", id);
	r->status = 204;
}

static void patch_drive(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *did = NULL, *path = NULL;
	yajl_val rlv = NULL;
	int have_rl = 0, given[2] = {0, 0}, at, rc;
	const struct sqb_jfield f[] = {
	    {"drive_id", SQB_JT_STR, 1, &did},
	    {"path_on_host", SQB_JT_STR, 0, &path},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rlv, &have_rl},
	};
	const char *bad = id_error(id);
	struct sqb_vio_rl_config upd, merged;
	struct sqb_diag diag = {0};
	char err[700], *copy = NULL;

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (sqb_json_fields(body, f, 3, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (have_rl && sqb_ctl_parse_rl(rlv, &upd, given, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (strcmp(did, id))
		return sqb_ctl_fault(r, MSG_ID_MISMATCH);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	at = find_drive(c, id);
	if (at < 0)
		return sqb_ctl_fault(r, MSG_PATCH "Failed perform action on device: Device not "
						  "found" MSG_VERIFY);
	if (c->drives[at].socket) /* a vhost-user drive */
		return patch_vhost(c, id, path || have_rl, r);
	if (!path && !have_rl) /* vhost-user's update on a virtio drive */
		return sqb_ctl_fault(r, MSG_PATCH "Block: Running method expected different "
						  "backend." MSG_VERIFY);
	if (path) {
		if (!(copy = strdup(path)))
			return sqb_ctl_fault(r, "Out of memory");
		rc = sqb_vdev_blk_set_path(c->vm, id, path, &diag);
		if (rc < 0) {
			free(copy);
			if (rc == -ENODEV)
				return sqb_ctl_fault(r,
						     MSG_PATCH "Failed perform action on device: "
							       "Device not found" MSG_VERIFY);
			return sqb_ctl_fault(r,
					     MSG_PATCH "Block: Virtio backend error: %s" MSG_VERIFY,
					     diag.reason[0] ? diag.reason : sqb_strerror(rc));
		}
		free(c->drives[at].path);
		c->drives[at].path = copy;
	}
	if (have_rl) {
		merged = c->drives[at].has_rl ? c->drives[at].rl : (struct sqb_vio_rl_config){0};
		bucket_merge(&merged.bandwidth, &upd.bandwidth, given[0]);
		bucket_merge(&merged.ops, &upd.ops, given[1]);
		rc = sqb_vdev_set_rate_limiter(c->vm, id, rl_enabled(&merged) ? &merged : NULL);
		if (rc < 0)
			return sqb_ctl_fault(r, MSG_PATCH "Block: rate limiter: %s" MSG_VERIFY,
					     sqb_strerror(rc));
		c->drives[at].rl = merged;
		c->drives[at].has_rl = rl_enabled(&merged);
	}
	sqb_ctl_log(SQB_CTL_INFO, "drive %s updated%s%s", id, path ? ": backing file " : "",
		    path ? path : "");
	r->status = 204;
}

void sqb_ctl_patch_drive(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	patch_drive(c, id, body, r);
}

void sqb_ctl_put_entropy(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	yajl_val rlv = NULL;
	int have_rl = 0;
	const struct sqb_jfield f[] = {
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rlv, &have_rl},
	};
	struct sqb_vio_rl_config rl;
	char err[700];

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	memset(&rl, 0, sizeof(rl));
	if (have_rl && sqb_ctl_parse_rl(rlv, &rl, NULL, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->entropy_set = 1;
	c->entropy_has_rl = rl_enabled(&rl);
	c->entropy_rl = rl;
	c->configured = 1;
	r->status = 204;
}

/* ---- PUT / PATCH /pmem/{id} (vmm_config/pmem.rs) ---- */

/* The serde stage of PmemConfig (deny_unknown_fields).  The file is not
 * opened: Firecracker maps it at InstanceStart. */
static int parse_pmem(yajl_val body, struct sqb_ctl_pmem *p, char *err, size_t errlen)
{
	const char *id = NULL, *path = NULL;
	int root = 0, ro = 0, have_rl = 0;
	yajl_val rl = NULL;
	const struct sqb_jfield f[] = {
	    {"id", SQB_JT_STR, 1, &id},
	    {"path_on_host", SQB_JT_STR, 1, &path},
	    {"root_device", SQB_JT_BOOL, 0, &root},
	    {"read_only", SQB_JT_BOOL, 0, &ro},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rl, &have_rl},
	};

	memset(p, 0, sizeof(*p));
	if (sqb_json_fields(body, f, 5, err, errlen) < 0)
		return -1;
	if (have_rl && sqb_ctl_parse_rl(rl, &p->rl, NULL, err, errlen) < 0)
		return -1;
	p->has_rl = have_rl && rl_enabled(&p->rl);
	if (strlen(id) > SQB_VDEV_ID_MAX) {
		snprintf(err, errlen, MSG_PMEM "id `%.40s...` is longer than squib's limit of %d bytes.",
			 id, SQB_VDEV_ID_MAX);
		return -1;
	}
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->root = root;
	p->read_only = ro;
	if (!(p->path = strdup(path))) {
		snprintf(err, errlen, "Out of memory");
		return -1;
	}
	return 0;
}

/* PmemBuilder::build: no pmem root next to a block root, one pmem root,
 * an existing id replaced in its place, a new one appended. */
static int insert_pmem(struct sqb_ctl *c, struct sqb_ctl_pmem *p, char *err, size_t errlen)
{
	int at = -1, has_root = 0;

	for (unsigned int i = 0; i < c->npmem; i++) {
		if (!strcmp(c->pmem[i].id, p->id))
			at = (int)i;
		has_root |= c->pmem[i].root;
	}
	if (p->root && c->ndrives && c->drives[0].root) {
		snprintf(err, errlen,
			 MSG_PMEM "Attempt to add pmem as a root device while the root device "
				  "defined as a block device");
		return -1;
	}
	if (p->root && has_root && (at < 0 || !c->pmem[at].root)) {
		snprintf(err, errlen, MSG_PMEM "A root pmem device already exist");
		return -1;
	}
	if (at < 0 && c->npmem >= SQB_CTL_MAX_PMEM) {
		snprintf(err, errlen, MSG_PMEM "squib supports at most %d pmem devices.",
			 SQB_CTL_MAX_PMEM);
		return -1;
	}
	if (at < 0)
		at = (int)c->npmem++;
	else
		free(c->pmem[at].path);
	c->pmem[at] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

/* id: from the path; NULL for a config file's entry (the body's id). */
void sqb_ctl_put_pmem(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_pmem p;
	const char *bad = id ? id_error(id) : NULL;
	char err[700];

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (parse_pmem(body, &p, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if ((id && strcmp(p.id, id)) || (!id && (bad = id_error(p.id)))) {
		free(p.path);
		if (bad)
			return sqb_ctl_fault(r, "%s", bad);
		return sqb_ctl_fault(r, MSG_ID_MISMATCH);
	}
	if (c->vm) {
		int in_use = 0;

		for (unsigned int i = 0; i < c->npmem; i++)
			in_use |= !strcmp(c->pmem[i].id, p.id);
		hotplug_refused(c, in_use, p.root, r);
		free(p.path);
		return;
	}
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	if (insert_pmem(c, &p, err, sizeof(err)) < 0) {
		free(p.path);
		return sqb_ctl_fault(r, "%s", err);
	}
	c->configured = 1;
	r->status = 204;
}

/* PmemDeviceUpdateConfig: only the rate limiter, only after boot. */
void sqb_ctl_patch_pmem(struct sqb_ctl *c, const char *id, yajl_val body, struct sqb_ctl_resp *r)
{
	const char *pid = NULL;
	yajl_val rlv = NULL;
	int have_rl = 0, given[2] = {0, 0}, at = -1, rc;
	const struct sqb_jfield f[] = {
	    {"id", SQB_JT_STR, 1, &pid},
	    {"rate_limiter", SQB_JT_OBJECT, 0, &rlv, &have_rl},
	};
	const char *bad = id_error(id);
	struct sqb_vio_rl_config upd, merged;
	char err[700];

	if (bad)
		return sqb_ctl_fault(r, "%s", bad);
	if (sqb_json_fields(body, f, 2, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (have_rl && sqb_ctl_parse_rl(rlv, &upd, given, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (strcmp(pid, id))
		return sqb_ctl_fault(r, MSG_ID_MISMATCH);
	if (!c->vm)
		return sqb_ctl_fault(r, MSG_BEFORE_START);
	if (!have_rl) { /* update_pmem_device: nothing to do */
		r->status = 204;
		return;
	}
	for (unsigned int i = 0; i < c->npmem; i++)
		if (!strcmp(c->pmem[i].id, id))
			at = (int)i;
	if (at < 0)
		return sqb_ctl_fault(r, MSG_PMEM_PATCH "Failed perform action on device: Device not "
						       "found" MSG_VERIFY);
	merged = c->pmem[at].has_rl ? c->pmem[at].rl : (struct sqb_vio_rl_config){0};
	bucket_merge(&merged.bandwidth, &upd.bandwidth, given[0]);
	bucket_merge(&merged.ops, &upd.ops, given[1]);
	rc = sqb_vdev_set_rate_limiter(c->vm, id, rl_enabled(&merged) ? &merged : NULL);
	if (rc < 0)
		return sqb_ctl_fault(r, MSG_PMEM_PATCH "rate limiter: %s" MSG_VERIFY,
				     sqb_strerror(rc));
	c->pmem[at].rl = merged;
	c->pmem[at].has_rl = rl_enabled(&merged);
	sqb_ctl_log(SQB_CTL_INFO, "pmem %s updated: rate limiter", id);
	r->status = 204;
}

/* ---- GET /vm/config (BlockDeviceConfig / EntropyDeviceConfig serialized) ---- */

static void bucket_json(struct sqb_jb *b, const struct sqb_vio_bucket *k)
{
	if (!k->size) {
		sqb_jb_null(b);
		return;
	}
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "size");
	sqb_jb_u64(b, k->size);
	sqb_jb_key(b, "one_time_burst");
	if (k->one_time_burst)
		sqb_jb_u64(b, k->one_time_burst);
	else
		sqb_jb_null(b);
	sqb_jb_key(b, "refill_time");
	sqb_jb_u64(b, k->refill_time_ms);
	sqb_jb_close(b, '}');
}

void sqb_ctl_rl_json(struct sqb_jb *b, int has, const struct sqb_vio_rl_config *rl)
{
	if (!has || !rl_enabled(rl)) {
		sqb_jb_null(b);
		return;
	}
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "bandwidth");
	bucket_json(b, &rl->bandwidth);
	sqb_jb_key(b, "ops");
	bucket_json(b, &rl->ops);
	sqb_jb_close(b, '}');
}

void sqb_ctl_drives_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	sqb_jb_open(b, '[');
	for (unsigned int i = 0; i < c->ndrives; i++) {
		const struct sqb_ctl_drive *d = &c->drives[i];

		sqb_jb_open(b, '{');
		sqb_jb_key(b, "drive_id");
		sqb_jb_str(b, d->id);
		sqb_jb_key(b, "partuuid");
		sqb_jb_str(b, d->partuuid);
		sqb_jb_key(b, "is_root_device");
		sqb_jb_bool(b, d->root);
		sqb_jb_key(b, "cache_type");
		sqb_jb_str(b, d->writeback ? "Writeback" : "Unsafe");
		/* a vhost-user drive: VhostUserBlockConfig into BlockDeviceConfig,
		 * the virtio-blk fields None */
		sqb_jb_key(b, "is_read_only");
		if (d->socket)
			sqb_jb_null(b);
		else
			sqb_jb_bool(b, d->read_only);
		sqb_jb_key(b, "path_on_host");
		sqb_jb_str(b, d->path);
		sqb_jb_key(b, "rate_limiter");
		sqb_ctl_rl_json(b, d->has_rl, &d->rl);
		sqb_jb_key(b, "io_engine");
		sqb_jb_str(b, d->socket ? NULL : d->async ? "Async" : "Sync");
		sqb_jb_key(b, "socket");
		sqb_jb_str(b, d->socket);
		sqb_jb_close(b, '}');
	}
	sqb_jb_close(b, ']');
}

/* PmemConfig serialized: every field, rate_limiter null when none. */
void sqb_ctl_pmem_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	sqb_jb_open(b, '[');
	for (unsigned int i = 0; i < c->npmem; i++) {
		const struct sqb_ctl_pmem *p = &c->pmem[i];

		sqb_jb_open(b, '{');
		sqb_jb_key(b, "id");
		sqb_jb_str(b, p->id);
		sqb_jb_key(b, "path_on_host");
		sqb_jb_str(b, p->path);
		sqb_jb_key(b, "root_device");
		sqb_jb_bool(b, p->root);
		sqb_jb_key(b, "read_only");
		sqb_jb_bool(b, p->read_only);
		sqb_jb_key(b, "rate_limiter");
		sqb_ctl_rl_json(b, p->has_rl, &p->rl);
		sqb_jb_close(b, '}');
	}
	sqb_jb_close(b, ']');
}

void sqb_ctl_entropy_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	if (!c->entropy_set) {
		sqb_jb_null(b);
		return;
	}
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "rate_limiter");
	sqb_ctl_rl_json(b, c->entropy_has_rl, &c->entropy_rl);
	sqb_jb_close(b, '}');
}

/* ---- the VM ---- */

struct sqb_vio_dev *sqb_ctl_vm_device(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *prefix,
				      struct sqb_vio_dev *(*lookup)(sqb_vm *vm))
{
	struct sqb_vio_dev *d;

	if (!c->vm) {
		sqb_ctl_fault(r, MSG_BEFORE_START);
		return NULL;
	}
	if (!(d = lookup(c->vm)))
		sqb_ctl_fault(r, "%sFailed perform action on device: Device not found", prefix);
	return d;
}

/* One virtio-blk drive's device (boot, load, hot-plug). */
static int add_drive(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	const struct sqb_ctl_drive *d = arg;
	struct sqb_vdev_blk_cfg b = {SQB_VDEV_BLK_VERSION,
				     d->id,
				     d->path,
				     d->read_only,
				     d->writeback ? SQB_VIO_CACHE_WRITEBACK : SQB_VIO_CACHE_UNSAFE,
				     d->has_rl ? &d->rl : NULL,
				     d->async ? SQB_VIO_ENGINE_ASYNC : SQB_VIO_ENGINE_SYNC};

	return sqb_vdev_add_blk(vm, &b, diag);
}

int sqb_ctl_add_devices(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	struct sqb_ctl *c = arg;
	int err;

	for (unsigned int i = 0; i < c->ndrives; i++) {
		struct sqb_ctl_drive *d = &c->drives[i];

		if (d->socket) { /* the PUT's connection, or a new one */
			char why[400];
			sqb_vhu *conn = d->vhu;

			d->vhu = NULL;
			if (!conn && (err = sqb_vio_vhost_blk_open(&conn, d->socket, d->writeback,
								   0, why, sizeof(why))) < 0) {
				if (diag) {
					snprintf(diag->section, sizeof(diag->section),
						 "drive %.24s", d->id);
					snprintf(diag->reason, sizeof(diag->reason),
						 "vhost-user backend %.60s: %.110s", d->socket,
						 why);
				}
				return err;
			}
			if ((err = sqb_vdev_add_vhost_blk(vm, d->id, conn, diag)) < 0)
				return err;
			continue;
		}
		if ((err = add_drive(d, vm, diag)) < 0)
			return err;
	}
	for (unsigned int i = 0; i < c->npmem; i++) {
		const struct sqb_ctl_pmem *p = &c->pmem[i];
		struct sqb_vdev_pmem_cfg pc = {SQB_VDEV_PMEM_VERSION, p->id, p->path,
					       p->read_only, p->has_rl ? &p->rl : NULL};

		if ((err = sqb_vdev_add_pmem(vm, &pc, diag)) < 0)
			return err;
	}
	if (c->entropy_set &&
	    (err = sqb_vdev_add_rng(vm, c->entropy_has_rl ? &c->entropy_rl : NULL, diag)) < 0)
		return err;
	/* slot order: drives, pmem, entropy, network interfaces, vsock
	 * (ctl_net.c), balloon: a VM without pmem keeps its slots */
	if ((err = sqb_ctl_net_add_devices(c, vm, diag)) < 0)
		return err;
	if ((err = sqb_ctl_balloon_add(c, vm, diag)) < 0)
		return err;
	return sqb_ctl_memhp_add(c, vm, diag); /* after the balloon: older VMs keep their slots */
}

/* True if s[0..n) has the word w (space separated). */
static int has_word(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);

	for (size_t i = 0; i + k <= n; i++)
		if ((!i || s[i - 1] == ' ') && !memcmp(s + i, w, k) &&
		    (i + k == n || s[i + k] == ' '))
			return 1;
	return 0;
}

/* Where the init's arguments start, as linux-loader's Cmdline::try_from
 * splits: the first " -- " with an even number of '"' before it.  Returns
 * its offset, or the line's length when there is none. */
static size_t init_args_at(const char *line)
{
	size_t quotes = 0, n = strlen(line);

	for (size_t i = 0; i < n; i++) {
		if (line[i] == '"')
			quotes++;
		else if (!(quotes & 1) && !strncmp(line + i, " -- ", 4))
			return i;
	}
	return n;
}

/* The kernel command line as builder.rs makes it with linux-loader's
 * Cmdline: the boot_args (or the default) split at " -- " into the
 * kernel's part and the init's (each trimmed), "pci=off" added to the
 * kernel's part (squib has no PCI transport; Firecracker adds it whenever
 * --enable-pci is not given; left out when that part already has it), then
 * the root device: "root=/dev/pmem<i>", "root=PARTUUID=<p>" or
 * "root=/dev/vda", each followed by "ro" or "rw"; then " -- " and the
 * init's arguments, untouched (Firecracker's test_kernel_cmdline). */
int sqb_ctl_root_cmdline(struct sqb_ctl *c, const char *args, char **out)
{
	const struct sqb_ctl_drive *d = c->ndrives ? &c->drives[0] : NULL;
	const char *line = args ? args : sqb_arch_default_cmdline();
	size_t split = init_args_at(line), bs = 0, be = split, is, ie;
	const char *pci, *ro = "";
	char *root = NULL;
	int pm = -1, n = 0;

	/* the kernel's part [bs, be) and the init's [is, ie), trimmed */
	while (bs < be && line[bs] == ' ')
		bs++;
	while (be > bs && line[be - 1] == ' ')
		be--;
	is = line[split] ? split + 4 : split;
	ie = strlen(line);
	while (is < ie && line[is] == ' ')
		is++;
	while (ie > is && line[ie - 1] == ' ')
		ie--;
	if (c->pci || has_word(line + bs, be - bs, "pci=off"))
		pci = ""; /* --enable-pci: Firecracker adds nothing */
	else
		pci = be > bs ? " pci=off" : "pci=off";

	/* builder.rs attach_pmem_devices (a block root and a pmem root never
	 * come together) */
	for (unsigned int i = 0; (!d || !d->root) && pm < 0 && i < c->npmem; i++)
		if (c->pmem[i].root)
			pm = (int)i;
	if (pm >= 0) {
		n = asprintf(&root, " root=/dev/pmem%d", pm);
		ro = c->pmem[pm].read_only ? " ro" : " rw";
	} else if (d && d->root) {
		n = d->partuuid ? asprintf(&root, " root=PARTUUID=%s", d->partuuid)
				: asprintf(&root, " root=/dev/vda");
		ro = d->read_only ? " ro" : " rw";
	}
	if (n < 0)
		root = NULL; /* asprintf leaves it undefined */
	else
		n = asprintf(out, "%.*s%s%s%s%s%.*s", (int)(be - bs), line + bs, pci,
			     root ? root : "", ro, ie > is ? " -- " : "", (int)(ie - is),
			     line + is);
	free(root);
	if (n < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* "drives": [BlockDeviceConfig...] and "entropy": {...} | null of a
 * VmmConfig object; everything else in it is ignored here. */
int sqb_ctl_devices_from_config(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	const char *pd[] = {"drives", NULL}, *pe[] = {"entropy", NULL}, *pp[] = {"pmem", NULL};
	yajl_val drives = yajl_tree_get(root, pd, yajl_t_any);
	yajl_val ent = yajl_tree_get(root, pe, yajl_t_any);
	yajl_val pm = yajl_tree_get(root, pp, yajl_t_any);
	char why[600];

	sqb_ctl_devices_clear(c);
	if (drives && !YAJL_IS_NULL(drives) && !YAJL_IS_ARRAY(drives)) {
		snprintf(err, errlen, "`drives` must be an array");
		return -1;
	}
	for (size_t i = 0; drives && YAJL_IS_ARRAY(drives) && i < drives->u.array.len; i++) {
		struct sqb_ctl_drive d;

		if (parse_drive(drives->u.array.values[i], &d, why, sizeof(why)) < 0 ||
		    (id_error(d.id) && (snprintf(why, sizeof(why), "%s", id_error(d.id)), 1))) {
			drive_free(&d);
			snprintf(err, errlen, "drives[%zu]: %s", i, why);
			sqb_ctl_devices_clear(c);
			return -1;
		}
		if ((d.socket && drive_open_vhost(&d, why, sizeof(why)) < 0) ||
		    insert_drive(c, &d, why, sizeof(why)) < 0) {
			drive_free(&d);
			snprintf(err, errlen, "drives[%zu]: %s", i, why);
			sqb_ctl_devices_clear(c);
			return -1;
		}
	}
	if (pm && !YAJL_IS_NULL(pm) && !YAJL_IS_ARRAY(pm)) {
		snprintf(err, errlen, "`pmem` must be an array");
		sqb_ctl_devices_clear(c);
		return -1;
	}
	for (size_t i = 0; pm && YAJL_IS_ARRAY(pm) && i < pm->u.array.len; i++) {
		struct sqb_ctl_pmem p;

		if (parse_pmem(pm->u.array.values[i], &p, why, sizeof(why)) < 0 ||
		    (id_error(p.id) && (snprintf(why, sizeof(why), "%s", id_error(p.id)), 1)) ||
		    insert_pmem(c, &p, why, sizeof(why)) < 0) {
			free(p.path);
			snprintf(err, errlen, "pmem[%zu]: %s", i, why);
			sqb_ctl_devices_clear(c);
			return -1;
		}
	}
	if (sqb_ctl_net_from_config(c, root, err, errlen) < 0 ||
	    sqb_ctl_mmds_from_config(c, root, err, errlen) < 0) {
		sqb_ctl_devices_clear(c);
		return -1;
	}
	if (ent && !YAJL_IS_NULL(ent)) {
		struct sqb_ctl_resp *r = malloc(sizeof(*r));
		int ok;

		if (!r) {
			snprintf(err, errlen, "Out of memory");
			return -1;
		}
		r->status = 400;
		sqb_ctl_put_entropy(c, ent, r);
		ok = r->status == 204;
		if (!ok)
			snprintf(err, errlen, "entropy: %s", r->body);
		free(r);
		if (!ok) {
			sqb_ctl_devices_clear(c);
			return -1;
		}
	}
	if (sqb_ctl_balloon_from_config(c, root, err, errlen) < 0 ||
	    sqb_ctl_memhp_from_config(c, root, err, errlen) < 0) {
		sqb_ctl_devices_clear(c);
		return -1;
	}
	return 0;
}

/* ---- PCI hot-plug: Firecracker's hotplug_device / hot_unplug_device
 * (--enable-pci, after InstanceStart).  A new function appears in the next
 * free slot; the guest finds it when it rescans its bus, and removes one
 * itself before it is unplugged (Firecracker sends no notification
 * either).  The device joins or leaves this controller's list, so GET
 * /vm/config and snapshots see what the guest has. ---- */

/* device_manager/mod.rs hotplug_device + hotplug_make_block; takes d. */
static void hotplug_drive(struct sqb_ctl *c, struct sqb_ctl_drive *d, struct sqb_ctl_resp *r)
{
	struct sqb_diag diag = {0};
	char err[300];
	int fd, e, rc;

	if (find_drive(c, d->id) >= 0) {
		drive_free(d);
		return sqb_ctl_fault(r, "Device ID in use");
	}
	if (d->root) {
		drive_free(d);
		return sqb_ctl_fault(r, MSG_DRIVE "A root block device already exists!");
	}
	if (d->socket) {
		drive_free(d);
		return sqb_ctl_fault(r, MSG_DRIVE "squib does not hot-plug vhost-user drives "
						  "(they need the virtio-mmio transport).");
	}
	fd = open(d->path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		sqb_ctl_fault(r,
			      MSG_CREATE "Virtio backend error: Error manipulating the backing "
					 "file: %s (os error %d) %s",
			      sqb_os_strerror(e), e, d->path);
		drive_free(d);
		return;
	}
	close(fd);
	if (d->async && (e = sqb_vio_blk_async_probe(err, sizeof(err))) < 0) {
		sqb_ctl_fault(r,
			      MSG_CREATE "Virtio backend error: Error coming from the IO engine: "
					 "Async error: IoUring: %s",
			      err);
		drive_free(d);
		return;
	}
	if (c->ndrives >= SQB_CTL_MAX_DRIVES) {
		drive_free(d);
		return sqb_ctl_fault(r, MSG_DRIVE "squib supports at most %d drives.",
				     SQB_CTL_MAX_DRIVES);
	}
	c->drives[c->ndrives] = *d;
	rc = sqb_vm_hotplug(c->vm, add_drive, &c->drives[c->ndrives], &diag);
	if (rc < 0) {
		drive_free(&c->drives[c->ndrives]);
		return sqb_ctl_fault(r, "PCI manager error: %s",
				     diag.reason[0] ? diag.reason : sqb_strerror(rc));
	}
	c->ndrives++;
	sqb_ctl_log(SQB_CTL_INFO, "drive %s: hot-plugged on the PCI bus", d->id);
	r->status = 204;
}

/* hot_unplug_device for a drive (the API layer checked the id, the VM's
 * state, PCI, and that it exists and is not the root): the function
 * leaves the bus. */
void sqb_ctl_unplug_drive(struct sqb_ctl *c, const char *id, struct sqb_ctl_resp *r)
{
	int at = find_drive(c, id), rc;

	if (at < 0)
		return sqb_ctl_fault(r, "Device not found");
	if (c->drives[at].root)
		return sqb_ctl_fault(r, "Cannot unplug root device");
	rc = sqb_vm_unplug(c->vm, id);
	if (rc == -ENOENT)
		return sqb_ctl_fault(r, "Device not found");
	if (rc < 0)
		return sqb_ctl_fault(r, "PCI manager error: %s", sqb_strerror(rc));
	drive_free(&c->drives[at]);
	memmove(&c->drives[at], &c->drives[at + 1],
		(c->ndrives - (unsigned int)at - 1) * sizeof(c->drives[0]));
	c->ndrives--;
	sqb_ctl_log(SQB_CTL_INFO, "drive %s: unplugged from the PCI bus", id);
	r->status = 204;
}
