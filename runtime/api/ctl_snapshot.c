/* PUT /snapshot/create and PUT /snapshot/load (Firecracker's
 * SnapshotCreateParams / SnapshotLoadParams, incl. deprecated aliases) and
 * the optional "squib" extension object (docs/snapshots.md "API"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
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
 *           "mem_format": "squib"|"raw"} */
static int create_ext(yajl_val ext, struct sqb_vm_snap_create *o, char *err, size_t errlen)
{
	const char *codec = "none", *fmt = o->raw_mem ? "raw" : "squib";
	uint64_t level = 0;
	int dedup = 0;
	const struct sqb_jfield f[] = {
	    {"codec", SQB_JT_ENUM, 0, &codec, NULL, 0, 0, codecs},
	    {"level", SQB_JT_UINT, 0, &level, NULL, 0, 22},
	    {"dedup", SQB_JT_BOOL, 0, &dedup},
	    {"mem_format", SQB_JT_ENUM, 0, &fmt, NULL, 0, 0, mem_formats},
	};

	if (sqb_json_fields(ext, f, 4, err, errlen) < 0)
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
	return 0;
}

void sqb_ctl_snapshot_create(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_vm_snap_create o = {.version = SQB_VM_SNAP_CREATE_VERSION};
	const char *type = "Full", *spath = NULL, *mpath = NULL, *version = NULL;
	yajl_val ext = NULL;
	int have_ext = 0, rc;
	const struct sqb_jfield f[] = {
	    {"snapshot_type", SQB_JT_ENUM, 0, &type, NULL, 0, 0, snap_types},
	    {"snapshot_path", SQB_JT_STR, 1, &spath},
	    {"mem_file_path", SQB_JT_STR, 1, &mpath},
	    {"version", SQB_JT_STR, 0, &version}, /* older Firecracker clients; ignored */
	    {"squib", SQB_JT_OBJECT, 0, &ext, &have_ext},
	};
	struct sqb_ctl_resp cfg;
	struct sqb_diag d = {0};
	char err[1024];

	if (sqb_json_fields(body, f, 5, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	o.raw_mem = c->raw_mem_default;
	if (have_ext && create_ext(ext, &o, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!c->vm)
		return sqb_ctl_fault(r, "Cannot create a snapshot: the microVM is not started.");
	if (sqb_vm_get_state(c->vm) != SQB_VM_PAUSED)
		return sqb_ctl_fault(r, "Cannot create a snapshot: the microVM must be paused first "
				 "(PATCH /vm {\"state\":\"Paused\"}).");
	o.type = strcmp(type, "Diff") ? SQB_VM_SNAP_FULL : SQB_VM_SNAP_DIFF;
	o.state_path = spath;
	o.mem_path = mpath;
	o.track_dirty = c->track_dirty_pages;
	o.kernel_path = c->kernel_path;
	o.initrd_path = c->initrd_path;
	o.boot_args = c->boot_args;
	o.smt = c->smt;
	cfg.body[0] = 0;
	if (sqb_ctl_dispatch(c, "GET", "/vm/config", NULL, &cfg) == 0 && cfg.status == 200)
		o.vm_config_json = cfg.body;
	rc = sqb_vm_snapshot_create(c->vm, &o, &d);
	if (rc < 0)
		return sqb_ctl_fault(r, "Cannot create the %s snapshot: %s", type,
			      diag_text(rc, &d, err, sizeof(err)));
	sqb_ctl_log(SQB_CTL_INFO, "%s snapshot created: state %s, memory %s", type, spath, mpath);
	r->status = 204;
}

static const char *const backend_types[] = {"File", "Uffd", NULL};
static const char *const load_modes[] = {"mmap", "eager", "lazy", NULL};
static const char *const huge_load[] = {"Snapshot", "None", "Transparent", "2M", NULL};

struct load_req {
	struct sqb_vm_snap_load o;
	int resume, dirty, diff_alias, clock_rt;
	const char *huge;
};

static int load_ext(yajl_val ext, struct sqb_vm_snap_load *o, char *err, size_t errlen)
{
	const char *mode = "mmap";
	int verify = 1;
	const struct sqb_jfield f[] = {
	    {"restore", SQB_JT_ENUM, 0, &mode, NULL, 0, 0, load_modes},
	    {"verify", SQB_JT_BOOL, 0, &verify},
	};

	if (sqb_json_fields(ext, f, 2, err, errlen) < 0)
		return -1;
	o->mode = !strcmp(mode, "eager")  ? SQB_VM_LOAD_EAGER
		  : !strcmp(mode, "lazy") ? SQB_VM_LOAD_LAZY
					  : SQB_VM_LOAD_MMAP;
	o->trust_raw = !verify;
	return 0;
}

static int parse_load(yajl_val body, struct load_req *q, char *err, size_t errlen)
{
	const char *mfile = NULL, *btype = NULL, *bpath = NULL;
	yajl_val mb = NULL, ext = NULL, netov = NULL, vsock = NULL;
	int have_mb = 0, have_ext = 0, have_netov = 0, have_vsock = 0;
	const struct sqb_jfield f[] = {
	    {"snapshot_path", SQB_JT_STR, 1, &q->o.state_path},
	    {"mem_backend", SQB_JT_OBJECT, 0, &mb, &have_mb},
	    {"mem_file_path", SQB_JT_STR, 0, &mfile},
	    {"track_dirty_pages", SQB_JT_BOOL, 0, &q->dirty},
	    {"enable_diff_snapshots", SQB_JT_BOOL, 0, &q->diff_alias},
	    {"resume_vm", SQB_JT_BOOL, 0, &q->resume},
	    {"network_overrides", SQB_JT_ARRAY, 0, &netov, &have_netov},
	    {"vsock_override", SQB_JT_OBJECT, 0, &vsock, &have_vsock},
	    {"clock_realtime", SQB_JT_BOOL, 0, &q->clock_rt},
	    {"huge_pages", SQB_JT_ENUM, 0, &q->huge, NULL, 0, 0, huge_load},
	    {"squib", SQB_JT_OBJECT, 0, &ext, &have_ext},
	};
	const struct sqb_jfield fb[] = {
	    {"backend_type", SQB_JT_ENUM, 1, &btype, NULL, 0, 0, backend_types},
	    {"backend_path", SQB_JT_STR, 1, &bpath},
	};

	if (sqb_json_fields(body, f, 11, err, errlen) < 0)
		return -1;
	if (have_mb == !!mfile) {
		snprintf(err, errlen,
			 "Exactly one of `mem_backend` and the deprecated "
			 "`mem_file_path` must be given.");
		return -1;
	}
	if (have_mb && sqb_json_fields(mb, fb, 2, err, errlen) < 0)
		return -1;
	if (have_ext && load_ext(ext, &q->o, err, errlen) < 0)
		return -1;
	if ((have_netov && netov->u.array.len) || have_vsock || q->clock_rt ||
	    (q->huge && strcmp(q->huge, "Snapshot") && strcmp(q->huge, "None"))) {
		snprintf(err, errlen,
			 "network_overrides, vsock_override, clock_realtime and "
			 "huge_pages other than Snapshot/None are not supported by "
			 "squib yet (see docs/snapshots.md).");
		return -1;
	}
	q->o.backend = (btype && !strcmp(btype, "Uffd")) ? SQB_VM_MEM_UFFD : SQB_VM_MEM_FILE;
	q->o.backend_path = have_mb ? bpath : mfile;
	if (q->o.backend == SQB_VM_MEM_UFFD && q->o.mode != SQB_VM_LOAD_MMAP) {
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

void sqb_ctl_snapshot_load(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct load_req q;
	struct sqb_vm_snap_conf conf;
	struct sqb_diag d = {0};
	char err[1024];
	int rc;

	memset(&q, 0, sizeof(q));
	q.o.version = SQB_VM_SNAP_LOAD_VERSION;
	if (parse_load(body, &q, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm || c->configured)
		return sqb_ctl_fault(r, "Loading a microVM snapshot not allowed after configuring "
				 "boot-specific resources or starting the microVM.");
	q.o.track_dirty_pages = q.dirty || q.diff_alias;
	q.o.resume = q.resume;
	q.o.serial_out_fd = c->serial_fd >= 0 ? c->serial_fd : STDOUT_FILENO;
	memset(&conf, 0, sizeof(conf));
	rc = sqb_vm_snapshot_load(&c->vm, &q.o, &conf, &d);
	if (rc < 0)
		return sqb_ctl_fault(r, "Cannot load the snapshot: %s",
			      diag_text(rc, &d, err, sizeof(err)));
	c->configured = 1;
	c->vcpu_count = conf.vcpu_count;
	c->mem_size_mib = conf.mem_size_mib;
	c->smt = conf.smt;
	c->track_dirty_pages = q.o.track_dirty_pages;
	dup_str(&c->kernel_path, conf.kernel_path);
	dup_str(&c->initrd_path, conf.initrd_path);
	dup_str(&c->boot_args, conf.boot_args);
	sqb_ctl_log(SQB_CTL_INFO, "snapshot %s loaded (%u vCPU(s), %llu MiB), %s", q.o.state_path,
		    conf.vcpu_count, (unsigned long long)conf.mem_size_mib,
		    q.resume ? "resumed" : "paused");
	r->status = 204;
}
