/* Controller lifecycle and Firecracker's --config-file: the JSON file's
 * sections ("boot-source", "machine-config", "logger", "metrics", ...) go
 * through the same endpoint handlers as the API, then the VM starts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "io.h"
#include "json_fields.h"

#define SQB_CONFIG_MAX (1 << 20)

void sqb_ctl_init(struct sqb_ctl *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "anonymous-instance");
	c->vcpu_count = 1;
	c->mem_size_mib = 128;
	c->cpu_template = "None";
	c->huge_pages = "None";
	c->serial_fd = -1;
}

void sqb_ctl_destroy(struct sqb_ctl *c)
{
	sqb_vm_free(c->vm);
	c->vm = NULL;
	if (c->serial_fd >= 0)
		close(c->serial_fd);
	sqb_ctl_devices_clear(c);
	sqb_ctl_mmds_destroy(c); /* after the VM: its net devices used the store */
	free(c->kernel_path);
	free(c->initrd_path);
	free(c->boot_args);
	free(c->serial_out_path);
	free(c->log_path);
	free(c->metrics_path);
	free(c->metrics_props);
	sqb_cpu_template_free(c->cpu_config);
	c->cpu_config = NULL;
}

void sqb_ctl_vm_stopped(struct sqb_ctl *c)
{
	struct sqb_vm_stop_info si;

	sqb_vm_get_stop_info(c->vm, &si);
	if (si.reason == SQB_VM_STOP_RESET || si.reason == SQB_VM_STOP_REQUESTED) {
		sqb_ctl_log(SQB_CTL_INFO, "microVM stopped: %s", si.message);
		c->exit_code = 0;
	} else {
		sqb_ctl_log(SQB_CTL_ERROR, "microVM failed (%s): %s; rip 0x%llx",
			    sqb_vm_stop_reason_name(si.reason), si.message,
			    (unsigned long long)si.rip);
		c->exit_code = 2;
	}
	/* lib.rs Vmm::stop's line, whatever ended the VM */
	sqb_ctl_log(SQB_CTL_INFO, "Vmm is stopping.");
	c->exit_requested = 1;
}

/* Sections squib builds, in the order they are applied. */
static const struct {
	const char *key, *path;
} config_sections[] = {
    {"logger", "/logger"},
    {"metrics", "/metrics"},
    {"machine-config", "/machine-config"},
    {"cpu-config", "/cpu-config"}, /* resources.rs: after machine-config; a path or a template */
    {"serial", "/serial"},
    {"boot-source", "/boot-source"},
    {"entropy", "/entropy"},
    {"balloon", "/balloon"},
    {"vsock", "/vsock"},
    {"memory-hotplug", "/hotplug/memory"}, /* resources.rs: last */
};

/* Firecracker sections squib does not build: accepted only when empty. */
static const char *const config_unbuilt[] = {NULL}; /* none today */

static int check_keys(yajl_val root, char *err, size_t errlen)
{
	for (size_t k = 0; k < root->u.object.len; k++) {
		const char *key = root->u.object.keys[k];
		yajl_val v = root->u.object.values[k];
		int known = 0;

		for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++)
			known |= !strcmp(config_sections[i].key, key);
		known |= !strcmp(key, "drives");	     /* apply_drives() */
		known |= !strcmp(key, "pmem");		     /* apply_drives() too */
		known |= !strcmp(key, "network-interfaces"); /* sqb_ctl_net_apply_config() */
		known |= !strcmp(key, "mmds-config");	     /* after the interfaces */
		for (size_t i = 0; !known && config_unbuilt[i]; i++) {
			if (strcmp(config_unbuilt[i], key))
				continue;
			if (v && !YAJL_IS_NULL(v) && !(YAJL_IS_ARRAY(v) && v->u.array.len == 0)) {
				snprintf(err, errlen,
					 "config file: section `%s` is not yet supported by squib "
					 "(see docs/api-compat.md)",
					 key);
				return -1;
			}
			known = 1;
		}
		if (!known) {
			snprintf(err, errlen, "config file: unknown section `%.64s`", key);
			return -1;
		}
	}
	return 0;
}

/* "drives", then "pmem" (resources.rs' order): each element through
 * PUT /drives/{drive_id} or PUT /pmem/{id}, in order. */
static int apply_drives(struct sqb_ctl *c, yajl_val root, struct sqb_ctl_resp *r, char *err,
			size_t errlen)
{
	static const struct {
		const char *key;
		void (*put)(struct sqb_ctl *c, const char *id, yajl_val body,
			    struct sqb_ctl_resp *r);
	} arrays[] = {{"drives", sqb_ctl_put_drive}, {"pmem", sqb_ctl_put_pmem}};

	for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++) {
		const char *path[] = {arrays[k].key, NULL};
		yajl_val v = yajl_tree_get(root, path, yajl_t_any);

		if (!v || YAJL_IS_NULL(v))
			continue;
		if (!YAJL_IS_ARRAY(v)) {
			snprintf(err, errlen, "config file: section `%s` must be an array",
				 arrays[k].key);
			return -1;
		}
		for (size_t i = 0; i < v->u.array.len; i++) {
			r->status = 400;
			/* no path id: the body's id is the id (Firecracker's
			 * config file inserts the configs as they are) */
			arrays[k].put(c, NULL, v->u.array.values[i], r);
			if (r->status >= 300) {
				snprintf(err, errlen, "config file: section `%s`[%zu]: %s",
					 arrays[k].key, i, r->body);
				return -1;
			}
		}
	}
	return 0;
}

static int apply_tree(struct sqb_ctl *c, yajl_val root, char *err, size_t errlen)
{
	struct sqb_ctl_resp *r;
	int rc = 0;

	if (check_keys(root, err, errlen) < 0)
		return -1;
	r = malloc(sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]) && !rc; i++) {
		const char *path[] = {config_sections[i].key, NULL};
		yajl_val v = yajl_tree_get(root, path, yajl_t_any);

		if (!v || YAJL_IS_NULL(v))
			continue;
		r->status = 400;
		sqb_ctl_dispatch(c, "PUT", config_sections[i].path, v, r);
		if (r->status >= 300) {
			snprintf(err, errlen, "config file: section `%s`: %s",
				 config_sections[i].key, r->body);
			rc = -1;
		}
	}
	if (!rc)
		rc = apply_drives(c, root, r, err, errlen);
	if (!rc)
		rc = sqb_ctl_net_apply_config(c, root, r, err, errlen);
	if (!rc) { /* resources.rs: mmds_config after the network interfaces */
		const char *path[] = {"mmds-config", NULL};
		yajl_val v = yajl_tree_get(root, path, yajl_t_any);

		if (v && !YAJL_IS_NULL(v)) {
			r->status = 400;
			r->heap = NULL;
			sqb_ctl_dispatch(c, "PUT", "/mmds/config", v, r);
			if (r->status >= 300) {
				snprintf(err, errlen, "config file: section `mmds-config`: %s",
					 r->body);
				rc = -1;
			}
		}
	}
	free(r);
	return rc;
}

static int finish(int rc, yajl_val root, char *buf);

int sqb_ctl_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
	size_t len = 0;
	char *buf;
	int fd, err = 0;

	*out = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Read to EOF (pipes and /dev/fd paths have no size), bounded. */
	buf = malloc(max + 1);
	while (buf && len <= max) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	if (!err && len > max)
		err = -EFBIG;
	if (err) {
		free(buf);
		return err;
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	return 0;
}

int sqb_ctl_apply_config_file(struct sqb_ctl *c, const char *path, char *err, size_t errlen)
{
	char *buf = NULL, perr[512];
	yajl_val root = NULL;
	size_t len = 0;
	int rc = -1, e;

	e = sqb_ctl_read_file(path, SQB_CONFIG_MAX, &buf, &len);
	if (e < 0 && e != -EFBIG) {
		snprintf(err, errlen, "cannot open config file %s: %s", path, sqb_os_strerror(-e));
		goto out;
	}
	if (e < 0 || len == 0) {
		snprintf(err, errlen, "config file %s: size must be 1..%d bytes", path,
			 SQB_CONFIG_MAX);
		goto out;
	}
	if (sqb_json_parse_object(&root, buf, len, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "config file %s: %s", path, perr);
		goto out;
	}
	if (apply_tree(c, root, err, errlen) < 0)
		goto out;
	rc = sqb_ctl_start(c, perr, sizeof(perr));
	if (rc == 0)
		sqb_ctl_log(
		    SQB_CTL_INFO,
		    "Successfully started microvm that was configured from one single json");
	else
		snprintf(
		    err, errlen,
		    "Failed to build MicroVM from Json: Could not Start MicroVM from one single "
		    "json: %s",
		    perr);
	return finish(rc, root, buf);
out:
	/* Firecracker's BuildFromJsonError::ParseFromJson text, then squib's reason */
	if (errlen > 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen,
			 "Failed to build MicroVM from Json: Configuration for VMM from one single "
			 "json failed: %s",
			 why);
	}
	return finish(rc, root, buf);
}

static int finish(int rc, yajl_val root, char *buf)
{
	yajl_tree_free(root);
	free(buf);
	return rc;
}
