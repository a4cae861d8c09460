/* The memory hotplug endpoint of Firecracker's API (swagger /hotplug/memory,
 * virtio-mem): MemoryHotplugConfig and MemoryHotplugSizeUpdate, their
 * validation order and texts (vmm_config/memory_hotplug.rs), and the states
 * rpc_interface.rs allows each verb in (docs/api-compat.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "dev_vmem.h"
#include "json_fields.h"

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_CONFIG	 "Memory hotplug config error: "
#define MSG_UPDATE	 "Memory hotplug update error: "
#define MSG_INTERNAL	 "Internal VMM error: "
#define MSG_NOT_FOUND	 "Failed perform action on device: Device not found"
#define MSG_DEVICE	 "Failed to create memory hotplug device: "

/* Firecracker's VIRTIO_MEM_DEFAULT_{BLOCK,SLOT}_SIZE_MIB, also the minimums. */
#define MEMHP_BLOCK_MIB 2u
#define MEMHP_SLOT_MIB	128u

/* serde's MemoryHotplugConfig (deny_unknown_fields; u32 each, the sizes
 * defaulted), then validate() in its order. */
static int parse_config(yajl_val body, struct sqb_ctl_memhp *out, char *err, size_t errlen,
			int *invalid)
{
	uint64_t total = 0, block = MEMHP_BLOCK_MIB, slot = MEMHP_SLOT_MIB;
	const struct sqb_jfield f[] = {
	    {"total_size_mib", SQB_JT_UINT, 1, &total, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"block_size_mib", SQB_JT_UINT, 0, &block, NULL, 0, UINT32_MAX, .expect = "u32"},
	    {"slot_size_mib", SQB_JT_UINT, 0, &slot, NULL, 0, UINT32_MAX, .expect = "u32"},
	};

	*invalid = 0;
	if (sqb_json_fields(body, f, 3, err, errlen) < 0)
		return -1;
	*out = (struct sqb_ctl_memhp){1, (uint32_t)total, (uint32_t)block, (uint32_t)slot};
	*invalid = 1;
	if (block < MEMHP_BLOCK_MIB)
		snprintf(err, errlen, MSG_CONFIG "Block size must not be lower than %u MiB",
			 MEMHP_BLOCK_MIB);
	else if (block & (block - 1))
		snprintf(err, errlen, MSG_CONFIG "Block size must be a power of 2");
	else if (slot < MEMHP_SLOT_MIB)
		snprintf(err, errlen, MSG_CONFIG "Slot size must not be lower than %u MiB",
			 MEMHP_SLOT_MIB);
	else if (slot % block)
		snprintf(err, errlen,
			 MSG_CONFIG "Slot size must be a multiple of block size (%u MiB)",
			 (unsigned int)block);
	else if (total < slot)
		snprintf(err, errlen, MSG_CONFIG "Total size must not be lower than slot size (%u MiB)",
			 (unsigned int)slot);
	else if (total % slot)
		snprintf(err, errlen,
			 MSG_CONFIG "Total size must be a multiple of slot size (%u MiB)",
			 (unsigned int)slot);
	else
		*invalid = 0;
	return *invalid ? -1 : 0;
}

void sqb_ctl_put_memhp(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_ctl_memhp m;
	char err[600];
	int invalid;

	if (parse_config(body, &m, err, sizeof(err), &invalid) < 0 && !invalid)
		return sqb_ctl_fault(r, "%s", err);
	/* the serde stage first, then the state, then validate() */
	if (c->vm)
		return sqb_ctl_fault(r, MSG_AFTER_START);
	c->configured = 1; /* boot_path: set even if what follows refuses it */
	if (invalid)
		return sqb_ctl_fault(r, "%s", err);
	c->memhp = m;
	c->configured = 1;
	r->status = 204;
}

static sqb_vio_dev *device(struct sqb_ctl *c, struct sqb_ctl_resp *r, const char *prefix)
{
	return sqb_ctl_vm_device(c, r, prefix, sqb_vmem_dev);
}

void sqb_ctl_patch_memhp(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	uint64_t req = 0;
	const struct sqb_jfield f[] = {
	    {"requested_size_mib", SQB_JT_UINT, 1, &req, NULL, 0, UINT32_MAX, .expect = "u32"},
	};
	sqb_vio_dev *d;
	char err[600];
	int rc;

	if (sqb_json_fields(body, f, 1, err, sizeof(err)) < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (!(d = device(c, r, MSG_UPDATE)))
		return;
	rc = sqb_vio_vmem_set_requested(d, req << 20);
	if (rc == -EAGAIN)
		return sqb_ctl_fault(r, MSG_UPDATE MSG_DEVICE "Device is not active");
	if (rc == -ERANGE)
		return sqb_ctl_fault(r,
				     MSG_UPDATE MSG_DEVICE "Size %llu is invalid: it must be a "
							   "multiple of block size and less than "
							   "the total size",
				     (unsigned long long)(req << 20));
	if (rc < 0)
		return sqb_ctl_fault(r, MSG_UPDATE "%s", sqb_strerror(rc));
	r->status = 204;
}

void sqb_ctl_get_memhp(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_vio_vmem_status st;
	sqb_vio_dev *d;
	struct sqb_jb b;

	(void)body;
	if (!(d = device(c, r, MSG_INTERNAL)))
		return;
	if (sqb_vio_vmem_status(d, &st) < 0)
		return sqb_ctl_fault(r, MSG_INTERNAL MSG_NOT_FOUND);
	/* VirtioMemStatus in Firecracker's field order */
	sqb_jb_init(&b, r->body, sizeof(r->body));
	sqb_jb_open(&b, '{');
	sqb_jb_key(&b, "block_size_mib");
	sqb_jb_u64(&b, st.block_size >> 20);
	sqb_jb_key(&b, "total_size_mib");
	sqb_jb_u64(&b, st.region_size >> 20);
	sqb_jb_key(&b, "slot_size_mib");
	sqb_jb_u64(&b, st.slot_size >> 20);
	sqb_jb_key(&b, "plugged_size_mib");
	sqb_jb_u64(&b, st.plugged >> 20);
	sqb_jb_key(&b, "requested_size_mib");
	sqb_jb_u64(&b, st.requested >> 20);
	sqb_jb_close(&b, '}');
	if (sqb_jb_done(&b) < 0)
		return sqb_ctl_fault(r, "The memory hotplug status does not fit in the API "
					"response buffer.");
	r->status = 200;
}

void sqb_ctl_memhp_json(struct sqb_ctl *c, struct sqb_jb *b)
{
	if (!c->memhp.set)
		return sqb_jb_null(b);
	sqb_jb_open(b, '{');
	sqb_jb_key(b, "total_size_mib");
	sqb_jb_u64(b, c->memhp.total_size_mib);
	sqb_jb_key(b, "block_size_mib");
	sqb_jb_u64(b, c->memhp.block_size_mib);
	sqb_jb_key(b, "slot_size_mib");
	sqb_jb_u64(b, c->memhp.slot_size_mib);
	sqb_jb_close(b, '}');
}

int sqb_ctl_memhp_add(struct sqb_ctl *c, sqb_vm *vm, struct sqb_diag *diag)
{
	struct sqb_vmem_cfg cfg = {SQB_VMEM_VERSION, c->memhp.total_size_mib,
				   c->memhp.block_size_mib, c->memhp.slot_size_mib};

	if (!c->memhp.set)
		return 0;
	return sqb_vmem_add(vm, &cfg, diag);
}

int sqb_ctl_memhp_from_config(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	const char *path[] = {"memory-hotplug", NULL};
	yajl_val v = yajl_tree_get(root, path, yajl_t_any);
	struct sqb_ctl_memhp m;
	char why[600];
	int invalid;

	memset(&c->memhp, 0, sizeof(c->memhp));
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_OBJECT(v) || parse_config(v, &m, why, sizeof(why), &invalid) < 0) {
		snprintf(err, errlen, "memory-hotplug: %s",
			 YAJL_IS_OBJECT(v) ? why : "must be an object");
		return -1;
	}
	c->memhp = m;
	return 0;
}
