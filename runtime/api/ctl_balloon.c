/* The balloon endpoints of Firecracker's API (swagger /balloon,
 * /balloon/statistics, /balloon/hinting/{start,status,stop}): shapes,
 * state preconditions and messages as rpc_interface.rs, vmm_config/balloon.rs
 * and devices/virtio/balloon give them (docs/api-compat.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "dev_balloon.h"
#include "json_fields.h"

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_CONFIG	 "Balloon config error: "
#define MSG_UPDATE	 "Balloon update error: "
#define MSG_INTERNAL	 "Internal VMM error: "
#define MSG_NOT_FOUND	 "Failed perform action on device: Device not found"

/* BalloonStats keys in Firecracker's order: tags 0..15 of virtio 5.5.6.3. */
static const char *const stat_keys[SQB_VIO_BALLOON_NSTATS] = {
    "swap_in",	      "swap_out",	  "major_faults", "minor_faults",	 "free_memory",
    "total_memory",   "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures",
    "oom_kill",	      "alloc_stall",	  "async_scan",	  "direct_scan",	 "async_reclaim",
    "direct_reclaim",
};

static void reply(struct sqb_ctl_resp *r, struct sqb_jb *b, const char *what)
{
	if (sqb_jb_done(b) < 0)
		return sqb_ctl_fault(r, "The %s does not fit in the API response buffer.", what);
	r->status = 200;
}

static sqb_vio_dev *device(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *prefix)
{
	return sqb_ctl_vm_device(c, r, prefix, sqb_balloon_dev);
}

/* BalloonError texts behind "Balloon update error: Balloon: ". */
static void update_fault(struct sqb_ctl_resp *r, int err, uint32_t amount_mib)
{
	switch (err) {
	case -EAGAIN:
		return sqb_ctl_fault(r, MSG_UPDATE "Balloon: Device not activated yet.");
	case -ENOTSUP:
		return sqb_ctl_fault(r, MSG_UPDATE
				     "Balloon: Attempting to use hinting when not enabled");
	case -EPERM:
		return sqb_ctl_fault(r, MSG_UPDATE "Balloon: Statistics cannot be enabled/disabled "
						   "after activation.");
	case -EINVAL:
		return sqb_ctl_fault(
		    r, MSG_UPDATE "Balloon: Requested memory should be less than %uMiB",
		    amount_mib);
	case -ERANGE:
		return sqb_ctl_fault(
		    r, MSG_UPDATE "Balloon: Requested memory should be less than %uMiB",
		    (unsigned int)(UINT32_MAX / 256));
	default:
		return sqb_ctl_fault(r, MSG_UPDATE "%s", sqb_strerror(err));
	}
}

/* serde's BalloonDeviceConfig (deny_unknown_fields; u32, bool, u16). */
static int parse_config(yajl_val body, struct sqb_ctl_balloon *out, char *err, size_t errlen)
{
	uint64_t amount = 0, interval = 0;
	int deflate = 0, hint = 0, report = 0;
	const struct sqb_jfield f[] = {
	    {"amount_mib", SQB_JT_UINT, 1, &amount, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"deflate_on_oom", SQB_JT_BOOL, 1, &deflate},
	    {"stats_polling_interval_s", SQB_JT_UINT, 0, &interval, NULL, 0, UINT16_MAX,
	     .expect = "u16"},
	    {"free_page_hinting", SQB_JT_BOOL, 0, &hint},
	    {"free_page_reporting", SQB_JT_BOOL, 0, &report},
	};

	if (sqb_json_fields(body, f, 5, err, errlen) < 0)
		return -1;
	*out = (struct sqb_ctl_balloon){1,     (uint32_t)amount, (uint16_t)interval, deflate, hint,
					report};
	return 0;
}

void sqb_ctl_put_balloon(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_balloon b;
	char err[600];

	if (parse_config(body, &b, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	/* resources.rs set_balloon_device: never above guest memory */
	if (b.amount_mib > c->mem_size_mib)
		return sqb_ctl_fault(r, MSG_CONFIG "Amount of pages requested is too large.");
	c->balloon = b;
	c->configured = 1;
	r->status = 204;
}

void sqb_ctl_patch_balloon(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	uint64_t amount = 0;
	const struct sqb_jfield f[] = {
	    {"amount_mib", SQB_JT_UINT, 1, &amount, NULL, 0, UINT32_MAX, .expect = "u32"},
	};
	sqb_vio_dev *d;
	char err[600];
	int rc;

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!(d = device(c, r, MSG_UPDATE)))
		return;
	if ((rc = sqb_vio_balloon_set_target(d, (uint32_t)amount)) < 0)
		return update_fault(r, rc, (uint32_t)amount);
	r->status = 204;
}

static void config_json(struct sqb_jb *b, const struct sqb_ctl_balloon *k)
{
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "amount_mib");
	sqb_jb_u64(b, k->amount_mib);
	sqb_jb_key(b, "deflate_on_oom");
	sqb_jb_bool(b, k->deflate_on_oom);
	sqb_jb_key(b, "stats_polling_interval_s");
	sqb_jb_u64(b, k->stats_polling_interval_s);
	sqb_jb_key(b, "free_page_hinting");
	sqb_jb_bool(b, k->free_page_hinting);
	sqb_jb_key(b, "free_page_reporting");
	sqb_jb_bool(b, k->free_page_reporting);
	sqb_jb_close(b, '}');
}

/* After boot the device's current target and interval (Balloon::config). */
static int current(struct sqb_ctl *c, struct sqb_ctl_balloon *k)
{
	sqb_vio_dev *d = c->vm ? sqb_balloon_dev(c->vm) : NULL;

	if (!c->vm) {
		*k = c->balloon;
		return k->set;
	}
	if (!d)
		return 0;
	*k = c->balloon;
	k->set = 1;
	k->amount_mib = sqb_vio_balloon_target_mib(d);
	k->stats_polling_interval_s = sqb_vio_balloon_stats_interval(d);
	return 1;
}

void sqb_ctl_get_balloon(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_balloon k;
	struct sqb_jb b;

	(void)body;
	if (!current(c, &k))
		return sqb_ctl_fault(r, c->vm ? MSG_INTERNAL MSG_NOT_FOUND
					      : MSG_CONFIG "No balloon device found.");
	sqb_jb_init(&b, r->body, sizeof(r->body));
	config_json(&b, &k);
	reply(r, &b, "balloon configuration");
}

void sqb_ctl_balloon_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	struct sqb_ctl_balloon k;

	if (!current(c, &k))
		sqb_jb_null(b);
	else
		config_json(b, &k);
}

void sqb_ctl_get_balloon_stats(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_vio_balloon_stats st;
	sqb_vio_dev *d;
	struct sqb_jb b;

	(void)body;
	if (!(d = device(c, r, MSG_INTERNAL)))
		return;
	if (sqb_vio_balloon_get_stats(d, &st) < 0)
		return sqb_ctl_fault(r, MSG_INTERNAL
				     "Balloon: Received stats query when stats are disabled.");
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "target_pages");
	sqb_jb_u64(&b, st.target_pages);
	sqb_jb_key(&b, "actual_pages");
	sqb_jb_u64(&b, st.actual_pages);
	sqb_jb_key(&b, "target_mib");
	sqb_jb_u64(&b, st.target_pages / 256);
	sqb_jb_key(&b, "actual_mib");
	sqb_jb_u64(&b, st.actual_pages / 256);
	/* Option fields: only those the driver has reported */
	for (unsigned int t = 0; t < SQB_VIO_BALLOON_NSTATS; t++) {
		if (!(st.have >> t & 1))
			continue;
		sqb_jb_key(&b, stat_keys[t]);
		sqb_jb_u64(&b, st.val[t]);
	}
	sqb_jb_close(&b, '}');
	reply(r, &b, "balloon statistics");
}

void sqb_ctl_patch_balloon_stats(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	uint64_t interval = 0;
	const struct sqb_jfield f[] = {
	    {"stats_polling_interval_s", SQB_JT_UINT, 1, &interval, NULL, 0, UINT16_MAX,
	     .expect = "u16"},
	};
	char err[600];
	int rc;

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!device(c, r, MSG_UPDATE))
		return;
	if ((rc = sqb_balloon_set_stats_interval(c->vm, (uint16_t)interval)) < 0)
		return update_fault(r, rc, 0);
	r->status = 204;
}

/* StartHintingCmd: acknowledge_on_stop defaults to true; the body may be
 * absent or empty. */
void sqb_ctl_balloon_hint_start(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	int ack = 1;
	const struct sqb_jfield f[] = {
	    {"acknowledge_on_stop", SQB_JT_BOOL, 0, &ack},
	};
	sqb_vio_dev *d;
	char err[600];
	int rc;

	if (body && sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!(d = device(c, r, MSG_UPDATE)))
		return;
	if ((rc = sqb_vio_balloon_hint_start(d, ack)) < 0)
		return update_fault(r, rc, 0);
	r->status = 204;
}

void sqb_ctl_balloon_hint_stop(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	sqb_vio_dev *d;
	int rc;

	(void)body;
	if (!(d = device(c, r, MSG_UPDATE)))
		return;
	if ((rc = sqb_vio_balloon_hint_stop(d)) < 0)
		return update_fault(r, rc, 0);
	r->status = 204;
}

void sqb_ctl_balloon_hint_status(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	uint32_t host = 0, guest = 0;
	int has = 0, rc;
	sqb_vio_dev *d;
	struct sqb_jb b;

	(void)body;
	if (!(d = device(c, r, MSG_UPDATE)))
		return;
	if ((rc = sqb_vio_balloon_hint_status(d, &host, &guest, &has)) < 0)
		return update_fault(r, rc, 0);
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "host_cmd");
	sqb_jb_u64(&b, host);
	sqb_jb_key(&b, "guest_cmd");
	if (has)
		sqb_jb_u64(&b, guest);
	else
		sqb_jb_null(&b);
	sqb_jb_close(&b, '}');
	reply(r, &b, "hinting status");
}

/* request/balloon.rs parse_get_balloon / parse_patch_hinting: a sub-path
 * it does not know is named in the answer, before the body is looked at
 * (PATCH /balloon/hinting without a body too).  Deeper paths (one more
 * segment than Firecracker reads) stay squib's "Invalid request method". */
int sqb_ctl_balloon_bad_path(const char *method, const char *path, struct sqb_ctl_resp *r)
{
	int get = !strcmp(method, "GET");
	const char *sub = path + 9, *x;

	if ((!get && strcmp(method, "PATCH")) || strncmp(path, "/balloon/", 9) || !*sub)
		return 0;
	if (!strcmp(sub, "hinting")) {
		sqb_ctl_fault(r, "Unrecognized %s request path `/hinting/`.", method);
		return 1;
	}
	if (!strncmp(sub, "hinting/", 8)) {
		x = sub + 8;
		if (strchr(x, '/') || (get && !strcmp(x, "status")) ||
		    (!get && (!strcmp(x, "start") || !strcmp(x, "stop"))))
			return 0;
		sqb_ctl_fault(r, "Unrecognized %s request path `/hinting/%.100s`.", method, x);
		return 1;
	}
	if (!get || strchr(sub, '/') || !strcmp(sub, "statistics"))
		return 0; /* PATCH /balloon/<x> with a body: Firecracker reads amount_mib */
	sqb_ctl_fault(r, "Unrecognized GET request path `%.100s`.", sub);
	return 1;
}

int sqb_ctl_balloon_add(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag)
{
	struct sqb_balloon_cfg cfg = {
	    SQB_BALLOON_VERSION,	  c->balloon.amount_mib,
	    c->balloon.deflate_on_oom,	  c->balloon.stats_polling_interval_s,
	    c->balloon.free_page_hinting, c->balloon.free_page_reporting};

	if (!c->balloon.set)
		return 0;
	return sqb_balloon_add(vm, &cfg, diag);
}

int sqb_ctl_balloon_from_config(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	const char *path[] = {"balloon", NULL};
	yajl_val v = yajl_tree_get(root, path, yajl_t_any);
	struct sqb_ctl_balloon b;
	char why[600];

	memset(&c->balloon, 0, sizeof(c->balloon));
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_OBJECT(v) || parse_config(v, &b, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "balloon: %s", YAJL_IS_OBJECT(v) ? why : "must be an object");
		return -1;
	}
	c->balloon = b;
	return 0;
}
