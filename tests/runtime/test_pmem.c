/* virtio-pmem in squib.  `api`: PUT/PATCH /pmem/{id} in process
 * (Firecracker's PmemConfig serde, PmemBuilder's root rules and texts from
 * vmm_config/pmem.rs, drive.rs and test_api.py test_pmem_api /
 * test_pmem_rate_limiter_api), GET /vm/config's "pmem" list, root= on the
 * command line (builder.rs attach_pmem_devices).  `guests`: the real squib
 * on /dev/kvm with the virtiopmem guest: the file read and written through
 * the region and FLUSHed (checked on disk here), read-only, a config file,
 * a snapshot/kill/load that maps the file again, a load whose file changed
 * size. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm_test_util.h"

static const char *squib_bin, *guest_dir, *snap_tool;
static char tmpdir[64];

#define FILE_LEN 12288 /* three pages: the region is one 2 MiB page, the rest its tail */

static uint8_t pattern(uint64_t seed, uint64_t pos)
{
	uint64_t z = (pos + 1) * 0x9e3779b97f4a7c15ULL + seed;
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return (uint8_t)(z ^ (z >> 32));
}

static const char *pattern_file(const char *name, uint64_t seed, size_t len)
{
	static char paths[8][128];
	static unsigned int n;
	char *p = paths[n++ % 8];
	uint8_t *b = malloc(len);
	int fd;

	snprintf(p, 128, "%s/%s", tmpdir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (size_t i = 0; i < len; i++)
		b[i] = pattern(seed, i);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);
	return p;
}

static void check_file(const char *path, uint64_t seed, size_t len)
{
	uint8_t *b = malloc(len);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)len); /* the 2 MiB tail never reaches the file */
	assert_int_equal(pread(fd, b, len, 0), (ssize_t)len);
	close(fd);
	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern(seed, i))
			fail_msg("%s: byte %zu is %02x, pattern %llu wants %02x", path, i, b[i],
				 (unsigned long long)seed, pattern(seed, i));
	free(b);
}

/* --------------------------------------------------------------- api unit */

static void test_put_pmem_firecracker_rules_and_texts(void **state)
{
	struct sqb_ctl c;
	char body[600];

	(void)state;
	sqb_ctl_init(&c);
	/* test_api.py: path_on_host is required */
	vt_api_fault(&c, "PUT", "/pmem/pmem", "{\"id\":\"pmem\"}", "missing field `path_on_host`");
	vt_api_fault(&c, "PUT", "/pmem/pmem", "{\"id\":\"pmem\",\"path_on_host\":\"/x\",\"foo\":1}",
		     "unknown field `foo`");
	vt_api_fault(&c, "PUT", "/pmem/a-b", "{\"id\":\"a-b\",\"path_on_host\":\"/x\"}",
		     "API Resource IDs can only contain alphanumeric characters and underscores.");
	vt_api_fault(&c, "PUT", "/pmem/p1", "{\"id\":\"p2\",\"path_on_host\":\"/x\"}",
		     "The id from the path does not match the id from the body!");
	/* test_api.py: a pmem root next to a block root, and the reverse */
	vt_api_ok(
	    &c, "PUT", "/drives/drive",
	    "{\"drive_id\":\"drive\",\"path_on_host\":\"/dev/null\",\"is_root_device\":true}");
	vt_api_fault(&c, "PUT", "/pmem/pmem",
		     "{\"id\":\"pmem\",\"path_on_host\":\"/x\",\"root_device\":true}",
		     "Pmem config error: Attempt to add pmem as a root device while the root "
		     "device defined as a block device");
	vt_api_ok(
	    &c, "PUT", "/drives/drive",
	    "{\"drive_id\":\"drive\",\"path_on_host\":\"/dev/null\",\"is_root_device\":false}");
	/* test_api.py: a second pmem root; the same id may be replaced */
	vt_api_ok(&c, "PUT", "/pmem/pmem",
		  "{\"id\":\"pmem\",\"path_on_host\":\"/x\",\"root_device\":true}");
	vt_api_fault(&c, "PUT", "/pmem/pmem2",
		     "{\"id\":\"pmem2\",\"path_on_host\":\"/x\",\"root_device\":true}",
		     "Pmem config error: A root pmem device already exist");
	vt_api_ok(&c, "PUT", "/pmem/pmem",
		  "{\"id\":\"pmem\",\"path_on_host\":\"/y\",\"root_device\":true,"
		  "\"read_only\":true}");
	vt_api_fault(
	    &c, "PUT", "/drives/drive",
	    "{\"drive_id\":\"drive\",\"path_on_host\":\"/dev/null\",\"is_root_device\":true}",
	    "Drive config error: Attempt to add block as a root device while the root "
	    "device defined as a pmem device");
	/* test_pmem_rate_limiter_api: PATCH before boot */
	vt_api_fault(&c, "PATCH", "/pmem/pmem",
		     "{\"id\":\"pmem\",\"rate_limiter\":{\"bandwidth\":{\"size\":5000,"
		     "\"refill_time\":100}}}",
		     "The requested operation is not supported before starting the microVM.");
	vt_api_fault(&c, "PATCH", "/pmem/pmem", "{\"id\":\"pmem\",\"path_on_host\":\"/z\"}",
		     "unknown field `path_on_host`");
	for (int i = 0; i < 7; i++) {
		snprintf(body, sizeof(body), "{\"id\":\"q%d\",\"path_on_host\":\"/q\"}", i);
		char url[32];
		snprintf(url, sizeof(url), "/pmem/q%d", i);
		vt_api_ok(&c, "PUT", url, body);
	}
	vt_api_fault(&c, "PUT", "/pmem/q7", "{\"id\":\"q7\",\"path_on_host\":\"/q\"}",
		     "squib supports at most 8 pmem devices");
	sqb_ctl_destroy(&c);
}

/* GET /vm/config: PmemConfig serialized, in the order configured (a
 * replaced id keeps its place); root= names /dev/pmem<i> of the root. */
static void test_vm_config_pmem_list_and_root_cmdline(void **state)
{
	struct sqb_ctl c;
	struct sqb_ctl_resp r;
	char *cmd = NULL;

	(void)state;
	sqb_ctl_init(&c);
	vt_api_ok(&c, "PUT", "/pmem/scratch", "{\"id\":\"scratch\",\"path_on_host\":\"/a\"}");
	vt_api_ok(&c, "PUT", "/pmem/rootfs",
		  "{\"id\":\"rootfs\",\"path_on_host\":\"/b\",\"root_device\":true,"
		  "\"read_only\":true,\"rate_limiter\":{\"bandwidth\":{\"size\":1000000,"
		  "\"refill_time\":100},\"ops\":{\"size\":10,\"refill_time\":1000}}}");
	vt_api_ok(&c, "PUT", "/pmem/scratch", "{\"id\":\"scratch\",\"path_on_host\":\"/c\"}");
	assert_int_equal(vt_api(&c, "GET", "/vm/config", NULL, &r), 200);
	if (!strstr(r.body, "\"pmem\":[{\"id\":\"scratch\",\"path_on_host\":\"/c\","
			    "\"root_device\":false,\"read_only\":false,\"rate_limiter\":null},"
			    "{\"id\":\"rootfs\",\"path_on_host\":\"/b\",\"root_device\":true,"
			    "\"read_only\":true,\"rate_limiter\":{\"bandwidth\":{\"size\":1000000,"
			    "\"one_time_burst\":null,\"refill_time\":100},\"ops\":{\"size\":10,"
			    "\"one_time_burst\":null,\"refill_time\":1000}}}]"))
		fail_msg("GET /vm/config pmem: %s", r.body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "console=ttyS0", &cmd), 0);
	assert_non_null(cmd);
	assert_string_equal(cmd, "console=ttyS0 pci=off root=/dev/pmem1 ro");
	free(cmd);
	/* PUT without rate_limiter overwrites it (test_pmem_rate_limiter_api) */
	vt_api_ok(&c, "PUT", "/pmem/rootfs",
		  "{\"id\":\"rootfs\",\"path_on_host\":\"/b\",\"root_device\":true}");
	assert_int_equal(vt_api(&c, "GET", "/vm/config", NULL, &r), 200);
	if (!strstr(r.body, "{\"id\":\"rootfs\",\"path_on_host\":\"/b\",\"root_device\":true,"
			    "\"read_only\":false,\"rate_limiter\":null}"))
		fail_msg("GET /vm/config pmem after the overwrite: %s", r.body);
	assert_int_equal(sqb_ctl_root_cmdline(&c, "", &cmd), 0);
	assert_string_equal(cmd, "pci=off root=/dev/pmem1 rw");
	free(cmd);
	sqb_ctl_destroy(&c);
}

/* ----------------------------------------------------------------- guests */

static void put_pmem(struct sqb_tc *t, const char *id, const char *path, int ro)
{
	char body[600], url[64];

	snprintf(url, sizeof(url), "/pmem/%s", id);
	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"path_on_host\":\"%s\",\"read_only\":%s}", id,
		 path, ro ? "true" : "false");
	vt_req(t, "PUT", url, body, 204);
}

static void start(struct sqb_tc *t, const char *args)
{
	char body[512];

	vt_req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/virtiopmem.elf\",\"boot_args\":\"%s\"}", guest_dir,
		 args);
	vt_req(t, "PUT", "/boot-source", body, 204);
	vt_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

/* The guest reads the file's bytes through the region, writes new ones and
 * FLUSHes: the file on disk has them (and only them: same length). */
static void test_pmem_rw_guest_writes_the_file(void **state)
{
	struct sqb_tc t;
	const char *f = pattern_file("rw.pmem", 1, FILE_LEN);

	(void)state;
	vt_spawn(&t, squib_bin);
	put_pmem(&t, "scratch", f, 0);
	start(&t, "mode=rw seed=1 len=12288");
	vt_expect_done_ok(&t, "VPMEM", 30000);
	vt_expect_serial(&t, "VPMEM start=0x0000008000000000 size=0x0000000000200000\n", 100);
	vt_expect_serial(&t, "VPMEM bad-type PASS\n", 100);
	vt_expect_serial(&t, "VPMEM bad-chain PASS\n", 100);
	assert_int_equal(tc_wait_exit(&t, 10000), 0);
	tc_stop(&t);
	check_file(f, 2, FILE_LEN);
}

/* read_only: the guest's stores never reach the file (PROT_READ and a
 * read-only memslot); FLUSH still answers OK. */
static void test_pmem_read_only_keeps_the_file(void **state)
{
	struct sqb_tc t;
	const char *f = pattern_file("ro.pmem", 1, FILE_LEN);

	(void)state;
	vt_spawn(&t, squib_bin);
	put_pmem(&t, "ro", f, 1);
	start(&t, "mode=ro seed=1 len=12288");
	vt_expect_done_ok(&t, "VPMEM", 30000);
	vt_expect_serial(&t, "VPMEM ro-unchanged PASS\n", 100);
	tc_stop(&t);
	check_file(f, 1, FILE_LEN);
}

/* --config-file with a "pmem" section boots the same guest. */
static void test_pmem_from_a_config_file(void **state)
{
	struct sqb_tc t;
	const char *f = pattern_file("cfg.pmem", 4, FILE_LEN);
	char cfg[128], json[1024];
	FILE *fp;

	(void)state;
	snprintf(cfg, sizeof(cfg), "%s/pmem-config.json", tmpdir);
	snprintf(json, sizeof(json),
		 "{\"boot-source\":{\"kernel_image_path\":\"%s/virtiopmem.elf\","
		 "\"boot_args\":\"mode=rw seed=4 len=12288\"},"
		 "\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":32},"
		 "\"pmem\":[{\"id\":\"p0\",\"path_on_host\":\"%s\",\"root_device\":false,"
		 "\"read_only\":false}]}",
		 guest_dir, f);
	fp = fopen(cfg, "w");
	assert_non_null(fp);
	fputs(json, fp);
	fclose(fp);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", cfg, NULL}, 0),
			 0);
	assert_int_equal(tc_wait_exit(&t, 30000), 0);
	vt_expect_done_ok(&t, "VPMEM", 1000);
	tc_stop(&t);
	check_file(f, 5, FILE_LEN);
}

static void snap_create(struct sqb_tc *t, const char *name)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/%s.state\","
		 "\"mem_file_path\":\"%s/%s.mem\"}",
		 tmpdir, name, tmpdir, name);
	vt_req(t, "PUT", "/snapshot/create", body, 204);
}

static const char *snap_load(struct sqb_tc *t, const char *name, int want)
{
	char body[600];

	assert_int_equal(
	    tc_spawn_stdin(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/%s.state\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s/%s.mem\"},\"resume_vm\":true}",
		 tmpdir, name, tmpdir, name);
	return vt_req(t, "PUT", "/snapshot/load", body, want);
}

/* Snapshot after the guest wrote and FLUSHed, SIGKILL, load in a new squib:
 * the region is the file mapped again at the same address (not in the
 * memory file), so the guest sees its own bytes and goes on writing it. */
static void test_pmem_snapshot_kill_load(void **state)
{
	struct sqb_tc t, t2;
	const char *f = pattern_file("snap.pmem", 1, FILE_LEN);
	const char *r;
	struct stat st;
	char mem[128];

	(void)state;
	vt_spawn(&t, squib_bin);
	put_pmem(&t, "scratch", f, 0);
	start(&t, "mode=hold seed=1 len=12288");
	vt_expect_serial(&t, "VPMEM hold-wait\n", 30000);
	/* after boot: PATCH sets the limiter (test_pmem_rate_limiter_api), PUT is refused */
	vt_req(&t, "PATCH", "/pmem/scratch",
	       "{\"id\":\"scratch\",\"rate_limiter\":{\"ops\":{\"size\":500,"
	       "\"refill_time\":100}}}",
	       204);
	r = vt_req(&t, "PATCH", "/pmem/nope",
		   "{\"id\":\"nope\",\"rate_limiter\":{\"ops\":{\"size\":5,\"refill_time\":1}}}",
		   400);
	assert_non_null(strstr(r, "Pmem config error: Unable to patch the pmem device: Failed "
				  "perform action on device: Device not found"));
	r = vt_req(&t, "PUT", "/pmem/late", "{\"id\":\"late\",\"path_on_host\":\"/x\"}", 400);
	assert_non_null(strstr(r, "PCI is not enabled"));
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "pm");
	tc_stop(&t); /* SIGKILL */
	check_file(f, 2, FILE_LEN);
	snprintf(mem, sizeof(mem), "%s/pm.mem", tmpdir);
	assert_int_equal(stat(mem, &st), 0);
	/* guest RAM only: at most its 32 MiB (raw), never the region past it */
	assert_true(st.st_size <= (32 << 20));
	snap_load(&t2, "pm", 204);
	r = vt_req(&t2, "GET", "/vm/config", NULL, 200);
	if (!strstr(r, "\"pmem\":[{\"id\":\"scratch\"") ||
	    !strstr(r, "\"ops\":{\"size\":500,\"one_time_burst\":null,\"refill_time\":100}"))
		fail_msg("vm/config after the load: %s", r);
	assert_int_equal(write(t2.stdin_fd, "g", 1), 1);
	vt_expect_done_ok(&t2, "VPMEM", 30000);
	vt_expect_serial(&t2, "VPMEM after-load PASS\n", 100);
	tc_stop(&t2);
	check_file(f, 3, FILE_LEN);
}

/* The file grew past the region's 2 MiB: the load refuses it by name. */
static void test_pmem_load_refuses_a_resized_file(void **state)
{
	struct sqb_tc t, t2;
	const char *f = pattern_file("grow.pmem", 1, FILE_LEN);
	const char *r;

	(void)state;
	vt_spawn(&t, squib_bin);
	put_pmem(&t, "scratch", f, 0);
	start(&t, "mode=hold seed=1 len=12288");
	vt_expect_serial(&t, "VPMEM hold-wait\n", 30000);
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap_create(&t, "grow");
	tc_stop(&t);
	assert_int_equal(truncate(f, (3 << 20)), 0);
	r = snap_load(&t2, "grow", 400);
	if (!strstr(r, "pmem 'scratch'") || !strstr(r, "pmem size"))
		fail_msg("the load error does not name the pmem size: %s", r);
	tc_stop(&t2);
}

/* n devices on one configured VM: drives d0.. (16 at most), then pmem
 * regions, then the entropy device as the last when with_entropy. */
static void config_devices(struct sqb_tc *t, int n, int with_entropy)
{
	char body[600], url[64], path[512];

	vt_spawn(t, squib_bin);
	vt_req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":16}", 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/virtiopmem.elf\"}", guest_dir);
	vt_req(t, "PUT", "/boot-source", body, 204);
	for (int i = 0; i < n - with_entropy; i++) {
		char name[32];

		snprintf(name, sizeof(name), "many-%d", i);
		snprintf(path, sizeof(path), "%s", pattern_file(name, (uint64_t)i, 1 << 20));
		if (i < 16) {
			snprintf(url, sizeof(url), "/drives/d%d", i);
			snprintf(body, sizeof(body),
				 "{\"drive_id\":\"d%d\",\"path_on_host\":\"%s\",\"is_root_device\":"
				 "false,"
				 "\"is_read_only\":true}",
				 i, path);
			vt_req(t, "PUT", url, body, 204);
		} else {
			char id[16];

			snprintf(id, sizeof(id), "p%d", i);
			put_pmem(t, id, path, 1);
		}
	}
	if (with_entropy)
		vt_req(t, "PUT", "/entropy", "{}", 204);
}

/* Firecracker's test_max_devices.py: x86's device lines are GSIs 5..23
 * less the VM Generation ID's and VMClock's, so 17 devices start (16
 * drives + 1 pmem) and an 18th fails InstanceStart with Firecracker's
 * words (16 drives + 1 pmem take the 17 free lines, the entropy device
 * finds none). */
static void test_too_many_devices_fails_the_start(void **state)
{
	struct sqb_tc t;
	const char *r;

	(void)state;
	config_devices(&t, 17, 0);
	vt_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	tc_stop(&t);
	config_devices(&t, 18, 1);
	r = vt_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 400);
	if (!strstr(r, "Could not allocate GSI: The requested resource is not available."))
		fail_msg("too many devices: %s", r);
	tc_stop(&t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api_tests[] = {
	    cmocka_unit_test(test_put_pmem_firecracker_rules_and_texts),
	    cmocka_unit_test(test_vm_config_pmem_list_and_root_cmdline),
	};
	const struct CMUnitTest guest_tests[] = {
	    cmocka_unit_test(test_pmem_rw_guest_writes_the_file),
	    cmocka_unit_test(test_pmem_read_only_keeps_the_file),
	    cmocka_unit_test(test_pmem_from_a_config_file),
	    cmocka_unit_test(test_pmem_snapshot_kill_load),
	    cmocka_unit_test(test_pmem_load_refuses_a_resized_file),
	    cmocka_unit_test(test_too_many_devices_fails_the_start),
	};
	const struct vt_main m = {
	    .tmp_template = "/tmp/squib-pmem-XXXXXX",
	    .tmpdir = tmpdir,
	    .tmpdir_cap = sizeof(tmpdir),
	    .squib_bin = &squib_bin,
	    .guest_dir = &guest_dir,
	    .snap_tool = &snap_tool,
	    .api_group = "pmem_api",
	    .guest_group = "pmem_guests",
	    .api_tests = api_tests,
	    .guest_tests = guest_tests,
	    .n_api = sizeof(api_tests) / sizeof(api_tests[0]),
	    .n_guests = sizeof(guest_tests) / sizeof(guest_tests[0]),
	    .setup = NULL,
	};

	return vt_main(&m, argc, argv);
}
