/* PUT /snapshot/create and PUT /snapshot/load (Firecracker's
 * CreateSnapshotParams / LoadSnapshotConfig, incl. deprecated aliases, with
 * Firecracker's validation order and messages) and the optional "squib"
 * extension object (docs/snapshots.md "API", docs/api-compat.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "dev_balloon.h"
#include "dev_virtio.h"
#include "json_fields.h"
#include "squib/snapfmt.h"

static const char *diag_text(int err, const struct sqb_diag *d, char *buf, size_t len)
{
	char where[300];

	if (d->reason[0])
		snprintf(buf, len, "%s (%s)", sqb_diag_format(d, where, sizeof(where)),
			 sqb_strerror(err));
	else
		snprintf(buf, len, "%s", sqb_strerror(err));
	return buf;
}

static const char *const snap_types[] = {"Full", "Diff", NULL};
static const char *const codecs[] = {"none", "lz4", "zstd", NULL};
static const char *const mem_formats[] = {"squib", "raw", NULL};

/* "squib": {"codec": "none"|"lz4"|"zstd", "level": 0..22, "dedup": bool,
 *           "mem_format": "squib"|"raw", "background": bool} */
static int create_ext(yajl_val ext, struct sqb_vm_snap_create *o, char *err, size_t errlen)
{
	const char *codec = "none", *fmt = o->raw_mem ? "raw" : "squib";
	uint64_t level = 0;
	int dedup = 0, background = 0;
	const struct sqb_jfield f[] = {
	    {"codec", SQB_JT_ENUM, 0, &codec, NULL, 0, 0, codecs},
	    {"level", SQB_JT_UINT, 0, &level, NULL, 0, 22},
	    {"dedup", SQB_JT_BOOL, 0, &dedup},
	    {"mem_format", SQB_JT_ENUM, 0, &fmt, NULL, 0, 0, mem_formats},
	    {"background", SQB_JT_BOOL, 0, &background},
	};

	if (sqb_json_fields(ext, f, 5, err, errlen) < 0)
		return -1;
	o->raw_mem = !strcmp(fmt, "raw");
	if (o->raw_mem && (strcmp(codec, "none") || dedup)) {
		snprintf(err, errlen, "squib.mem_format \"raw\" stores pages uncompressed and "
				      "without dedup (a raw memory file is the guest memory as is).");
		return -1;
	}
	o->codec = !strcmp(codec, "lz4")    ? SQB_CODEC_LZ4
		   : !strcmp(codec, "zstd") ? SQB_CODEC_ZSTD
					    : SQB_CODEC_NONE;
	o->level = (int)level;
	o->dedup = dedup;
	o->background = background;
	return 0;
}

/* GET /snapshot/status (squib): the last background create, see
 * docs/snapshots.md "Background snapshots". */
void sqb_ctl_snapshot_status(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	static const char *const names[] = {"none", "writing", "complete", "failed"};
	struct sqb_vm_snap_status st;
	struct sqb_jb b;

	(void)body;
	sqb_vm_snapshot_status(c->vm, &st);
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "state");
	sqb_jb_str(&b, names[st.state]);
	if (st.state != SQB_VM_SNAP_BG_NONE) {
		sqb_jb_key(&b, "snapshot_path");
		sqb_jb_str(&b, st.state_path);
		sqb_jb_key(&b, "mem_file_path");
		sqb_jb_str(&b, st.mem_path);
		sqb_jb_key(&b, "pause_us");
		sqb_jb_u64(&b, st.pause_us);
		if (st.state != SQB_VM_SNAP_BG_WRITING) {
			sqb_jb_key(&b, "write_ms");
			sqb_jb_u64(&b, st.write_ms);
			sqb_jb_key(&b, "pages_copied");
			sqb_jb_u64(&b, st.pages_copied);
		}
		if (st.state == SQB_VM_SNAP_BG_FAILED) {
			sqb_jb_key(&b, "error");
			sqb_jb_str(&b, st.reason);
		}
	}
	sqb_jb_close(&b, '}');
	if (sqb_jb_done(&b) < 0)
		return sqb_ctl_fault(
		    r, "The snapshot status does not fit in the API response buffer.");
	r->status = 200;
}

/* A live create: protect guest memory while the guest runs, pause, create
 * in the background (protecting again only what was written meanwhile),
 * resume.  The VM runs again whatever happened, unless it stopped. */
static int live_create(struct sqb_ctl *c, struct sqb_vm_snap_create *o, struct sqb_diag *d)
{
	uint64_t tp = sqb_ctl_now_us(), t0, t1, t2;
	int rc = sqb_vm_snapshot_prearm(c->vm, o, d), rr;

	if (rc < 0)
		return rc;
	t0 = sqb_ctl_now_us();
	rc = sqb_ctl_pause_vm(c);
	t1 = sqb_ctl_now_us();
	if (rc < 0) {
		sqb_vm_snapshot_prearm_drop(c->vm);
		snprintf(d->section, sizeof(d->section), "state");
		if (rc == -SQB_ESTATE)
			snprintf(d->reason, sizeof(d->reason), "the microVM has stopped");
		else
			snprintf(d->reason, sizeof(d->reason),
				 "the microVM could not be paused (%s); it keeps running",
				 sqb_strerror(rc));
		return rc;
	}
	rc = sqb_vm_snapshot_create(c->vm, o, d);
	t2 = sqb_ctl_now_us();
	rr = sqb_vm_resume(c->vm);
	if (!rc) {
		uint64_t us = sqb_ctl_now_us() - t0;

		sqb_vm_snapshot_set_pause_us(c->vm, us);
		sqb_ctl_log(SQB_CTL_INFO,
			    "live snapshot: the microVM was paused for %llu us (pause %llu, "
			    "create %llu, resume %llu; early protection %llu us before)",
			    (unsigned long long)us, (unsigned long long)(t1 - t0),
			    (unsigned long long)(t2 - t1),
			    (unsigned long long)(sqb_ctl_now_us() - t2),
			    (unsigned long long)(t0 - tp));
	}
	if (rr < 0)
		sqb_ctl_log(SQB_CTL_WARN, "live snapshot: the microVM could not be resumed: %s",
			    sqb_strerror(rr));
	return rc;
}

/* Firecracker's order: serde (CreateSnapshotParams has no `version` any
 * more: it is an unknown field), then the state (rpc_interface.rs: refused
 * before boot; vcpu.rs: refused while running). */
/* lib.rs check_unsnapshottable_devices, first thing save_state does (so
 * before the paused check): every vhost-user drive named, nothing written. */
static int vhost_user_refusal(struct sqb_ctl *c, struct sqb_ctl_resp *r)
{
	char list[SQB_CTL_MAX_DRIVES * 56] = "";
	size_t used = 0;

	for (unsigned int i = 0; i < c->ndrives; i++) {
		int n;

		if (!c->drives[i].socket)
			continue;
		n = snprintf(list + used, sizeof(list) - used, "%svhost-user-block(id: %s)",
			     used ? "," : "", c->drives[i].id);
		if (n > 0)
			used +=
			    (size_t)n < sizeof(list) - used ? (size_t)n : sizeof(list) - used - 1;
	}
	if (!used)
		return 0;
	sqb_ctl_fault(r,
		      "Create snapshot error: Cannot save the microVM state: Operation not "
		      "allowed: Devices without snapshot support are present: %s",
		      list);
	return 1;
}

void sqb_ctl_snapshot_create(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_vm_snap_create o = {.version = SQB_VM_SNAP_CREATE_VERSION};
	const char *type = "Full", *spath = NULL, *mpath = NULL;
	yajl_val ext = NULL;
	int have_ext = 0, rc, live;
	const struct sqb_jfield f[] = {
	    {"snapshot_type", SQB_JT_ENUM, 0, &type, NULL, 0, 0, snap_types},
	    {"snapshot_path", SQB_JT_STR, 1, &spath},
	    {"mem_file_path", SQB_JT_STR, 1, &mpath},
	    {"squib", SQB_JT_OBJECT, 0, &ext, &have_ext},
	};
	struct sqb_ctl_resp *cfg;
	struct sqb_diag d = {0};
	uint64_t t0 = sqb_ctl_now_us();
	char err[1024];

	if (sqb_json_fields(body, f, 4, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	o.raw_mem = c->raw_mem_default;
	if (have_ext && create_ext(ext, &o, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!c->vm)
		return sqb_ctl_fault(r, "The requested operation is not supported before starting "
					"the microVM.");
	if (vhost_user_refusal(c, r))
		return;
	/* squib.background on a RUNNING VM is a live create: squib pauses it
	 * itself, for as short as it can (docs/snapshots.md "Live creates") */
	live = o.background && sqb_vm_get_state(c->vm) == SQB_VM_RUNNING;
	if (!live && sqb_vm_get_state(c->vm) != SQB_VM_PAUSED)
		return sqb_ctl_fault(r, "Create snapshot error: Cannot save the microVM state: "
					"Operation not allowed: save/restore unavailable while "
					"running (pause it first: PATCH /vm {\"state\":\"Paused\"}).");
	o.type = strcmp(type, "Diff") ? SQB_VM_SNAP_FULL : SQB_VM_SNAP_DIFF;
	o.state_path = spath;
	o.mem_path = mpath;
	o.track_dirty = c->track_dirty_pages;
	o.kernel_path = c->kernel_path;
	o.initrd_path = c->initrd_path;
	o.boot_args = c->boot_args;
	o.smt = c->smt;
	/* The configuration travels in the snapshot; built with the bounded
	 * builder into a heap buffer (it used to overflow a stack one). */
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return sqb_ctl_fault(r, "Create snapshot error: out of memory");
	cfg->body[0] = 0;
	if (sqb_ctl_dispatch(c, "GET", "/vm/config", NULL, cfg) == 0 && cfg->status == 200)
		o.vm_config_json = cfg->body;
	if (live)
		rc = live_create(c, &o, &d);
	else
		rc = sqb_vm_snapshot_create(c->vm, &o, &d);
	free(cfg);
	if (rc < 0)
		return sqb_ctl_fault(r, "Create snapshot error: Cannot create the %s snapshot: %s",
				     type, diag_text(rc, &d, err, sizeof(err)));
	*(o.type == SQB_VM_SNAP_FULL ? &c->n.full_create_snapshot_us
				     : &c->n.diff_create_snapshot_us) = sqb_ctl_now_us() - t0;
	sqb_ctl_log(SQB_CTL_INFO, "%s snapshot created: state %s, memory %s", type, spath, mpath);
	r->status = 204;
}

static const char *const backend_types[] = {"File", "Uffd", NULL};
/* squib.entropy_seed's bound: one virtio-rng request's worth (virtio_rng.c) */
#define SQB_ENTROPY_SEED_MAX 65536
static const char *const load_modes[] = {"auto", "mmap", "eager", "lazy", NULL};
static const char *const huge_load[] = {"Snapshot", "None", "Transparent", "2M", NULL};

struct load_req {
	struct sqb_vm_snap_load o;
	struct sqb_ctl *c;
	yajl_val drives_ov;	     /* squib.drives: [{drive_id, path_on_host}] or NULL */
	yajl_val net_ext, vsock_ext; /* squib.network / squib.vsock (ctl_net.c) or NULL */
	int resume, dirty, diff_alias, clock_rt, deprecated;
	int have_mb, have_ext, have_netov, have_vsock;
	yajl_val ext, netov, vsock;
	const char *huge;
	const char *cpu_template; /* the snapshot's machine-config static template */
	char ov_err[600];	  /* an override refused in load_conf_ready: the whole text */
	uint64_t seed; /* squib.entropy_seed: bytes (docs/fleet.md "Entropy seed"), 0: none */
};

static int load_ext(yajl_val ext, struct load_req *q, char *err, size_t errlen)
{
	struct sqb_vm_snap_load *o = &q->o;
	const char *mode = "auto";
	int verify = 1;
	const struct sqb_jfield f[] = {
	    {"restore", SQB_JT_ENUM, 0, &mode, NULL, 0, 0, load_modes},
	    {"verify", SQB_JT_BOOL, 0, &verify},
	    {"drives", SQB_JT_ARRAY, 0, &q->drives_ov},
	    {"network", SQB_JT_ARRAY, 0, &q->net_ext},
	    {"vsock", SQB_JT_OBJECT, 0, &q->vsock_ext},
	    {"entropy_seed", SQB_JT_UINT, 0, &q->seed, NULL, 0, SQB_ENTROPY_SEED_MAX},
	};

	if (sqb_json_fields(ext, f, 6, err, errlen) < 0)
		return -1;
	o->mode = !strcmp(mode, "eager")  ? SQB_VM_LOAD_EAGER
		  : !strcmp(mode, "lazy") ? SQB_VM_LOAD_LAZY
		  : !strcmp(mode, "mmap") ? SQB_VM_LOAD_MMAP
					  : SQB_VM_LOAD_AUTO;
	o->trust_raw = !verify;
	return 0;
}

/* Firecracker's api_server/request/snapshot.rs texts. */
#define LOAD_TOO_MANY                                                                              \
	SQB_JSON_ERR_PREFIX "too many fields: either `mem_backend` or `mem_file_path` exclusively "  \
			    "is required."
#define LOAD_MISSING                                                                               \
	SQB_JSON_ERR_PREFIX "missing field: either `mem_backend` or `mem_file_path` is required."
#define LOAD_DEPRECATED                                                                            \
	"PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated."

/* serde stage: fields of LoadSnapshotConfig (in its order) and of
 * MemBackendConfig, then the mem_backend / mem_file_path rule. */
static int parse_load(yajl_val body, struct load_req *q, char *err, size_t errlen)
{
	const char *mfile = NULL, *btype = NULL, *bpath = NULL;
	yajl_val mb = NULL;
	const struct sqb_jfield f[] = {
	    {"snapshot_path", SQB_JT_STR, 1, &q->o.state_path},
	    {"mem_file_path", SQB_JT_STR, 0, &mfile},
	    {"mem_backend", SQB_JT_OBJECT, 0, &mb, &q->have_mb},
	    {"enable_diff_snapshots", SQB_JT_BOOL, 0, &q->diff_alias},
	    {"track_dirty_pages", SQB_JT_BOOL, 0, &q->dirty},
	    {"resume_vm", SQB_JT_BOOL, 0, &q->resume},
	    {"network_overrides", SQB_JT_ARRAY, 0, &q->netov, &q->have_netov},
	    {"vsock_override", SQB_JT_OBJECT, 0, &q->vsock, &q->have_vsock},
	    {"clock_realtime", SQB_JT_BOOL, 0, &q->clock_rt},
	    {"huge_pages", SQB_JT_ENUM, 0, &q->huge, NULL, 0, 0, huge_load},
	    {"squib", SQB_JT_OBJECT, 0, &q->ext, &q->have_ext},
	};
	const struct sqb_jfield fb[] = {
	    {"backend_path", SQB_JT_STR, 1, &bpath},
	    {"backend_type", SQB_JT_ENUM, 1, &btype, NULL, 0, 0, backend_types},
	};

	if (sqb_json_fields(body, f, 11, err, errlen) < 0)
		return -1;
	if (q->have_mb && sqb_json_fields(mb, fb, 2, err, errlen) < 0)
		return -1;
	if (sqb_ctl_net_overrides_parse(q->have_netov ? q->netov : NULL,
					q->have_vsock ? q->vsock : NULL, err, errlen) < 0)
		return -1;
	if (q->have_mb && mfile) {
		snprintf(err, errlen, LOAD_TOO_MANY);
		return -1;
	}
	if (!q->have_mb && !mfile) {
		snprintf(err, errlen, LOAD_MISSING);
		return -1;
	}
	q->deprecated = mfile || q->diff_alias;
	q->o.backend = (btype && !strcmp(btype, "Uffd")) ? SQB_VM_MEM_UFFD : SQB_VM_MEM_FILE;
	q->o.backend_path = q->have_mb ? bpath : mfile;
	return 0;
}

/* What squib does not do yet, and its own "squib" object. */
static int check_load(struct load_req *q, char *err, size_t errlen)
{
	if (q->have_ext && load_ext(q->ext, q, err, errlen) < 0)
		return -1;
	/* huge_load's order is enum sqb_vm_load_huge's */
	for (unsigned int i = 0; q->huge && huge_load[i]; i++)
		if (!strcmp(q->huge, huge_load[i]))
			q->o.huge_pages = (enum sqb_vm_load_huge)i;
	q->o.clock_realtime = q->clock_rt;
	if (q->o.backend == SQB_VM_MEM_UFFD && q->o.mode != SQB_VM_LOAD_AUTO &&
	    q->o.mode != SQB_VM_LOAD_MMAP) {
		snprintf(err, errlen, "squib.restore applies to the File backend only.");
		return -1;
	}
	return 0;
}

static int dup_str(char **dst, char *src)
{
	free(*dst);
	*dst = src;
	return 0;
}

/* A regular state file of fewer than 8 bytes (Firecracker's CRC): no
 * snapshot of either VMM is that short. */
static int state_too_short(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && st.st_size < 8;
}

/* Firecracker's texts (persist.rs RestoreFromSnapshotError) where squib
 * failed the same way: the state file or the memory file cannot be opened,
 * the Uffd socket cannot be reached; squib's own diagnosis otherwise. */
static const char *load_error(int rc, const struct sqb_diag *d, const struct load_req *q,
			      char *buf, size_t len)
{
	int e = rc < 0 && rc > -4096 ? -rc : 0;
	int open_failed = e && !strncmp(d->reason, "cannot open", 11);
	char why[700];

	diag_text(rc, d, why, sizeof(why));
	if (q->ov_err[0]) /* Firecracker's own text first (ctl_net.c), no offset */
		snprintf(buf, len, "%s", q->ov_err);
	else if (open_failed && q->o.state_path && !strcmp(d->section, q->o.state_path))
		snprintf(buf, len,
			 "Failed to get snapshot state from file: Failed to open snapshot file: %s "
			 "(os error %d)",
			 sqb_os_strerror(e), e);
	else if (open_failed && q->o.backend == SQB_VM_MEM_FILE && q->o.backend_path &&
		 !strcmp(d->section, q->o.backend_path))
		snprintf(
		    buf, len,
		    "Failed to load guest memory: Error creating guest memory from file: Failed "
		    "to load guest memory: %s (os error %d)",
		    sqb_os_strerror(e), e);
	else if (!strncmp(d->reason, "Error manipulating the backing file:", 36))
		/* a drive's file (VirtioBlockError::BackingFile, as
		 * test_negative_snapshot_permissions matches it), then which one */
		snprintf(buf, len, "Virtio backend error: %s (%s)", d->reason,
			 d->section[0] ? d->section : "drive");
	else if (rc < 0 && q->o.state_path && state_too_short(q->o.state_path))
		/* snapshot/mod.rs reads the whole state file and wants its CRC
		 * (test_load_snapshot_failure_handling); squib's reason after it */
		snprintf(
		    buf, len,
		    "Failed to get snapshot state from file: Failed to load snapshot state from "
		    "file: IO Error: File too short to contain CRC (%s)",
		    why);
	else if (e && q->o.backend == SQB_VM_MEM_UFFD && !strcmp(d->section, "mem_backend") &&
		 !strncmp(d->reason, "cannot reach", 12))
		snprintf(
		    buf, len,
		    "Failed to load guest memory: Error creating guest memory from uffd: Failed "
		    "to connect to UDS Unix stream: %s (os error %d) (%s)",
		    sqb_os_strerror(e), e, d->reason);
	else
		snprintf(buf, len, "%s", why);
	return buf;
}

/* CONF is read: the drives and the entropy device of the snapshot's
 * vm_config_json become this controller's, so that add_devices re-creates
 * them (their files reopened, in the same slots) before DEVS is restored. */
/* squib.drives: a drive's backing file at another path than the snapshot's
 * hint ([F-104]); each names a drive the snapshot has. */
static int drive_overrides(struct sqb_ctl *c, yajl_val ov, char *err, size_t errlen)
{
	for (size_t i = 0; ov && i < ov->u.array.len; i++) {
		const char *id = NULL, *path = NULL;
		const struct sqb_jfield f[] = {
		    {"drive_id", SQB_JT_STR, 1, &id},
		    {"path_on_host", SQB_JT_STR, 1, &path},
		};
		unsigned int k;
		char *copy;

		if (sqb_json_fields(ov->u.array.values[i], f, 2, err, errlen) < 0)
			return -1;
		for (k = 0; k < c->ndrives && strcmp(c->drives[k].id, id); k++)
			;
		if (k == c->ndrives) {
			snprintf(err, errlen, "squib.drives[%zu]: the snapshot has no drive '%.64s'",
				 i, id);
			return -1;
		}
		if (!(copy = strdup(path))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(c->drives[k].path);
		c->drives[k].path = copy;
	}
	return 0;
}

static int load_add_devices(void *arg, sqb_vm *vm, struct sqb_diag *diag)
{
	struct load_req *q = arg;
	int rc = sqb_ctl_add_devices(q->c, vm, diag);

	if (!rc && q->seed && !sqb_vdev_lib(vm, SQB_VDEV_RNG_ID)) {
		snprintf(diag->section, sizeof(diag->section), "squib.entropy_seed");
		snprintf(diag->reason, sizeof(diag->reason),
			 "the snapshot has no entropy device (PUT /entropy before the boot)");
		return -ENODEV;
	}
	return rc;
}

/* squib.entropy_seed: fresh host bytes into the buffers the guest left on
 * the virtio-rng queue, before any vCPU runs (the load was made paused)
 * and before the [F-108] poll, which would serve them through the limiter. */
static void seed_entropy(struct sqb_ctl *c, const struct load_req *q)
{
	uint64_t served = 0;
	int rc = sqb_vio_rng_seed(sqb_vdev_lib(c->vm, SQB_VDEV_RNG_ID), q->seed, &served);

	sqb_ctl_log(rc < 0 ? SQB_CTL_WARN : SQB_CTL_INFO,
		    "snapshot load: entropy seed: %llu of %llu bytes served%s",
		    (unsigned long long)served, (unsigned long long)q->seed,
		    rc < 0 ? " (no entropy device)" : "");
}

static int load_conf_ready(void *arg, const struct sqb_vm_snap_conf *conf, struct sqb_diag *d)
{
	struct load_req *q = arg;
	struct sqb_ctl *c = q->c;
	yajl_val root = NULL;
	char err[600];
	int rc = 0;

	sqb_ctl_devices_clear(c);
	if (conf->vm_config_json) /* else a snapshot of a VM without drives */
		rc = sqb_json_parse_object(&root, conf->vm_config_json,
					   strlen(conf->vm_config_json), err, sizeof(err));
	if (!rc && root)
		rc = sqb_ctl_devices_from_config(c, root, err, sizeof(err));
	if (!rc)
		rc = sqb_cpu_static_from_vm_config(root, &q->cpu_template, err, sizeof(err));
	yajl_tree_free(root);
	if (!rc && q->drives_ov && drive_overrides(c, q->drives_ov, err, sizeof(err)) < 0) {
		d->offset = UINT64_MAX; /* a request's field: no file offset */
		snprintf(d->section, sizeof(d->section), "squib.drives");
		snprintf(d->reason, sizeof(d->reason), "%.190s", err);
		return -EINVAL;
	}
	if (rc < 0) {
		snprintf(d->section, sizeof(d->section), "CONF");
		snprintf(d->reason, sizeof(d->reason), "vm_config_json: %.180s", err);
		return -SQB_ECORRUPT;
	}
	/* Firecracker's network_overrides / vsock_override, squib's per-clone
	 * MAC and cid: before add_devices opens the taps and binds uds_path */
	if (sqb_ctl_net_overrides(c, q->have_netov ? q->netov : NULL,
				  q->have_vsock ? q->vsock : NULL, q->net_ext, q->vsock_ext,
				  q->ov_err, sizeof(q->ov_err)) < 0) {
		d->offset = UINT64_MAX;
		snprintf(d->section, sizeof(d->section), "overrides");
		snprintf(d->reason, sizeof(d->reason), "%.190s", q->ov_err);
		if (!q->ov_err[0])
			snprintf(q->ov_err, sizeof(q->ov_err), "overrides refused");
		return -EINVAL;
	}
	return 0;
}

/* Firecracker's order: serde, the deprecation header, then the state
 * (after boot or after a load: not supported after start; after boot-specific
 * configuration: LoadSnapshotNotAllowed).  A failed load leaves squib usable
 * (Firecracker exits; docs/api-compat.md). */
void sqb_ctl_snapshot_load(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct load_req q;
	struct sqb_vm_snap_conf conf;
	struct sqb_diag d = {0};
	uint64_t t0 = sqb_ctl_now_us();
	char err[1024];
	int rc, had_shell;

	memset(&q, 0, sizeof(q));
	q.o.version = SQB_VM_SNAP_LOAD_VERSION;
	q.o.mode = SQB_VM_LOAD_AUTO;
	if (parse_load(body, &q, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (q.deprecated)
		sqb_ctl_deprecated(c, r, LOAD_DEPRECATED);
	if (c->vm)
		return sqb_ctl_fault(r, "The requested operation is not supported after starting "
					"the microVM.");
	if (c->configured)
		return sqb_ctl_fault(r, "Load snapshot error: Loading a microVM snapshot not allowed "
					"after configuring boot-specific resources.");
	if (check_load(&q, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	q.o.track_dirty_pages = q.dirty || q.diff_alias;
	q.o.resume = q.resume && !q.seed; /* with a seed: resumed once it is served */
	if (sqb_ctl_serial_open(c,
				"Load snapshot error: Failed to restore from snapshot: Failed to "
				"restore devices: Error creating DeviceManager: ",
				err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	q.o.serial_out_fd = c->serial_fd >= 0 ? c->serial_fd : STDOUT_FILENO;
	q.c = c;
	q.o.add_devices = load_add_devices;
	q.o.add_devices_arg = &q;
	q.o.conf_ready = load_conf_ready;
	q.o.shell = c->shell ? &c->shell : NULL; /* taken (NULL) when its shape matches */
	had_shell = c->shell != NULL;
	memset(&conf, 0, sizeof(conf));
	rc = sqb_vm_snapshot_load(&c->vm, &q.o, &conf, &d);
	if (rc < 0) {
		sqb_ctl_devices_clear(c); /* nothing configured: a new load may follow */
		c->configured = 0;
		return sqb_ctl_fault(r, "Load snapshot error: Failed to restore from snapshot: %s",
				     load_error(rc, &d, &q, err, sizeof(err)));
	}
	/* the serial console's limiter (PUT /serial before the load) */
	sqb_vm_serial_rate_limit(c->vm, c->serial_rl.size, c->serial_rl.one_time_burst,
				 c->serial_rl.refill_time_ms);
	if (had_shell)
		sqb_ctl_log(SQB_CTL_INFO, "snapshot load: pre-warmed shell %s",
			    c->shell ? "not used (another shape)" : "used");
	sqb_vm_free(c->shell); /* one load per process: an unused shell is only memory */
	c->shell = NULL;
	if (q.seed)
		seed_entropy(c, &q);
	/* a notify may have been pending in an ioeventfd at the snapshot ([F-108]) */
	sqb_vdev_poll_all(c->vm);
	free(conf.vm_config_json);
	c->n.load_snapshot_us = sqb_ctl_now_us() - t0;
	c->configured = 1;
	c->vcpu_count = conf.vcpu_count;
	c->mem_size_mib = conf.mem_size_mib;
	c->smt = conf.smt;
	c->pci = conf.pci; /* a PCI snapshot hot-plugs whatever this squib's flags */
	/* persist.rs: the load updates machine-config with the snapshot's
	 * static template, which also empties a custom one */
	c->cpu_template = q.cpu_template ? q.cpu_template : "None";
	sqb_cpu_template_free(c->cpu_config);
	c->cpu_config = NULL;
	c->track_dirty_pages = q.o.track_dirty_pages;
	c->huge_pages = sqb_vm_huge_name(conf.huge_pages); /* resolved: GET /machine-config */
	dup_str(&c->kernel_path, conf.kernel_path);
	dup_str(&c->initrd_path, conf.initrd_path);
	dup_str(&c->boot_args, conf.boot_args);
	/* loaded paused for the seed; a failed resume leaves it so (PATCH /vm) */
	if (q.seed && q.resume && (rc = sqb_vm_resume(c->vm)) < 0)
		return sqb_ctl_fault(r, "Load snapshot error: cannot resume after the entropy seed: %s",
				     sqb_strerror(rc));
	sqb_ctl_log(SQB_CTL_INFO, "snapshot %s loaded (%u vCPU(s), %llu MiB), %s", q.o.state_path,
		    conf.vcpu_count, (unsigned long long)conf.mem_size_mib,
		    q.resume ? "resumed" : "paused");
	c->trim_heap = 1;
	r->status = 204;
}
