/* Memory hotplug (virtio-mem) in squib.  `api`: PUT/GET/PATCH
 * /hotplug/memory in process: serde, validate()'s order and texts
 * (vmm_config/memory_hotplug.rs), the states rpc_interface.rs allows each
 * verb in, GET /vm/config's "memory-hotplug".  `guests`: the real squib on
 * /dev/kvm with the virtiomem guest: test_api.py test_api_memory_hotplug's
 * sequence, then the guest plugs, writes, unplugs and checks STATE, has
 * the device read and write plugged memory; a Full snapshot with memory
 * plugged, loaded eager, mmap, lazy and through squib-pager (Uffd), the
 * guest checks its blocks and plugs on; a Diff after more writes; a buffer
 * in an unplugged block is refused by the device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm_test_util.h"

static const char *squib_bin, *guest_dir, *snap_tool;
static char tmpdir[64], pager_bin[512];

#define CFG "Memory hotplug config error: "

static void test_put_memhp_validation_texts(void **state)
{
	struct sqb_ctl c;

	(void)state;
	sqb_ctl_init(&c);
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{}", "missing field `total_size_mib`");
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":\"bar\"}", "invalid type");
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":1024,\"foo\":1}",
		     "unknown field `foo`");
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":4294967296}", "u32");
	/* validate(), in its order */
	vt_api_fault(&c, "PUT", "/hotplug/memory",
		     "{\"total_size_mib\":1024,\"block_size_mib\":1,\"slot_size_mib\":1}",
		     CFG "Block size must not be lower than 2 MiB");
	vt_api_fault(&c, "PUT", "/hotplug/memory",
		     "{\"total_size_mib\":1024,\"block_size_mib\":3,\"slot_size_mib\":1}",
		     CFG "Block size must be a power of 2");
	vt_api_fault(&c, "PUT", "/hotplug/memory",
		     "{\"total_size_mib\":1024,\"block_size_mib\":2,\"slot_size_mib\":1}",
		     CFG "Slot size must not be lower than 128 MiB");
	vt_api_fault(&c, "PUT", "/hotplug/memory",
		     "{\"total_size_mib\":1024,\"block_size_mib\":4,\"slot_size_mib\":130}",
		     CFG "Slot size must be a multiple of block size (4 MiB)");
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":64}",
		     CFG "Total size must not be lower than slot size (128 MiB)");
	vt_api_fault(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":1000}",
		     CFG "Total size must be a multiple of slot size (128 MiB)");
	/* test_api_memory_hotplug: PUT before boot is OK and overwritable */
	vt_api_ok(&c, "PUT", "/hotplug/memory",
		  "{\"total_size_mib\":1024,\"block_size_mib\":128,\"slot_size_mib\":1024}");
	vt_api_ok(&c, "PUT", "/hotplug/memory", "{\"total_size_mib\":1024}");
	{
		struct sqb_ctl_resp *r = malloc(sizeof(*r));

		assert_non_null(r);
		sqb_ctl_handle(&c, "GET", "/vm/config", NULL, 0, r);
		assert_int_equal(r->status, 200);
		assert_non_null(strstr(r->body, "\"memory-hotplug\":{\"total_size_mib\":1024,"
						"\"block_size_mib\":2,\"slot_size_mib\":128}}"));
		free(r);
	}
	/* GET and PATCH are refused before boot */
	vt_api_fault(&c, "GET", "/hotplug/memory", NULL,
		     "The requested operation is not supported before starting the microVM.");
	vt_api_fault(&c, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":512}",
		     "The requested operation is not supported before starting the microVM.");
	vt_api_fault(&c, "PATCH", "/hotplug/memory", "{}", "missing field `requested_size_mib`");
	vt_api_fault(&c, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":1,\"x\":2}",
		     "unknown field `x`");
	sqb_ctl_destroy(&c);
}

static void start(struct sqb_tc *t, int memhp)
{
	char body[512];

	vt_req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/virtiomem.elf\"}", guest_dir);
	vt_req(t, "PUT", "/boot-source", body, 204);
	if (memhp)
		vt_req(t, "PUT", "/hotplug/memory",
		       "{\"total_size_mib\":256,\"block_size_mib\":2,\"slot_size_mib\":128}", 204);
	vt_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

/* ext: squib's extension object, or NULL */
static void snap(struct sqb_tc *t, const char *type, const char *name, const char *ext)
{
	char body[700];

	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"%s\",\"snapshot_path\":\"%s/%s.state\","
		 "\"mem_file_path\":\"%s/%s.mem\"%s%s}",
		 type, tmpdir, name, tmpdir, name, ext ? ",\"squib\":" : "", ext ? ext : "");
	vt_req(t, "PUT", "/snapshot/create", body, 204);
}

/* mode: squib's restore strategy (File), or NULL with the page server's
 * socket (Uffd). */
static void load(struct sqb_tc *t, const char *name, const char *mode, const char *sock, int track)
{
	char body[900], ext[64] = "";

	assert_int_equal(
	    tc_spawn_stdin(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
	if (mode && strcmp(mode, "auto"))
		snprintf(ext, sizeof(ext), ",\"squib\":{\"restore\":\"%s\"}", mode);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/%s.state\",\"mem_backend\":{\"backend_type\":"
		 "\"%s\",\"backend_path\":\"%s%s%s%s\"},\"resume_vm\":true,"
		 "\"track_dirty_pages\":%s%s}",
		 tmpdir, name, sock ? "Uffd" : "File", sock ? sock : tmpdir, sock ? "" : "/",
		 sock ? "" : name, sock ? "" : ".mem", track ? "true" : "false", ext);
	vt_req(t, "PUT", "/snapshot/load", body, 204);
}

/* squib-snap inspect shows each needle for the memory file name, and
 * verify passes (its chain included). */
static void expect_mem_file(const char *name, const char *const *needles)
{
	char cmd[700], out[16384];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s inspect %s/%s 2>&1; %s verify %s/%s 2>&1", snap_tool, tmpdir,
		 name, snap_tool, tmpdir, name);
	f = popen(cmd, "r");
	assert_non_null(f);
	out[0] = 0;
	while (n < sizeof(out) - 1 && fgets(out + n, (int)(sizeof(out) - n), f))
		n += strlen(out + n);
	pclose(f);
	for (; *needles; needles++)
		if (!strstr(out, *needles))
			fail_msg("%s: no '%s' in:\n%s", name, *needles, out);
}

static pid_t pager_start(const char *sock, const char *name)
{
	char mem[300];
	struct stat sb;
	pid_t pid;

	snprintf(mem, sizeof(mem), "%s/%s.mem", tmpdir, name);
	unlink(sock);
	pid = fork();
	if (pid == 0) {
		execl(pager_bin, pager_bin, sock, mem, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &sb) != 0; i++)
		usleep(10000);
	if (stat(sock, &sb) != 0)
		fail_msg("squib-pager never listened on %s", sock);
	return pid;
}

/* test_api_memory_hotplug after boot, then the guest's side: plugged
 * memory through a device, snapshots (Full, then a Diff) and every load
 * mode, the refusal of a buffer in an unplugged block. */
static void test_memhp_guest_plugs_and_unplugs(void **state)
{
	struct sqb_tc t;
	const char *r;

	(void)state;
	/* the background create write-protects its pages (no copy at the
	 * pause) and its writer waits 500 ms before it reads one */
	setenv("SQB_FAULT", "bg_slow_writer,bg_protect", 1);
	assert_int_equal(
	    tc_spawn_stdin(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
	unsetenv("SQB_FAULT");
	start(&t, 1);
	vt_expect_serial(&t, "VMEM ready\n", 30000);
	r = vt_req(&t, "PUT", "/hotplug/memory", "{\"total_size_mib\":1024}", 400);
	assert_non_null(strstr(r, "The requested operation is not supported after starting the "
				  "microVM."));
	r = vt_req(&t, "GET", "/hotplug/memory", NULL, 200);
	assert_string_equal(r, "{\"block_size_mib\":2,\"total_size_mib\":256,\"slot_size_mib\":128,"
			       "\"plugged_size_mib\":0,\"requested_size_mib\":0}");
	r = vt_req(&t, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":3}", 400);
	assert_non_null(strstr(r, "Memory hotplug update error: Failed to create memory hotplug "
				  "device: Size 3145728 is invalid: it must be a multiple of block "
				  "size and less than the total size"));
	r = vt_req(&t, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":258}", 400);
	assert_non_null(strstr(r, "Size 270532608 is invalid"));
	vt_req(&t, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":8}", 204);
	r = vt_req(&t, "GET", "/hotplug/memory", NULL, 200);
	assert_non_null(strstr(r, "\"requested_size_mib\":8}"));
	vt_expect_serial(&t, "VMEM hold-wait\n", 60000);
	vt_expect_serial(&t,
			 "VMEM addr=0x000000c000000000 requested=0x0000000000800000 "
			 "usable=0x0000000008000000\n",
			 100);
	r = vt_req(&t, "GET", "/hotplug/memory", NULL, 200);
	assert_non_null(strstr(r, "\"plugged_size_mib\":8,\"requested_size_mib\":8}"));
	r = vt_req(&t, "GET", "/vm/config", NULL, 200);
	assert_non_null(strstr(r, "\"memory-hotplug\":{\"total_size_mib\":256,"
				  "\"block_size_mib\":2,\"slot_size_mib\":128}"));
	vt_expect_serial(&t, "VMEM plug-too-much-nack PASS\n", 100);
	vt_expect_serial(&t, "VMEM state-mixed PASS\n", 100);
	vt_expect_serial(&t, "VMEM replug-zero PASS\n", 100);
	vt_expect_serial(&t, "VMEM dma-plugged PASS\n", 100);
	{
		char *sr = tc_read_file(t.serial);

		if (!sr || strstr(sr, " FAIL"))
			fail_msg("the guest failed before the snapshot: %s", sr ? sr : "");
		free(sr);
	}
	/* Full with plugged memory, in the background: the guest goes on at
	 * once and unplugs block 3 while the writer still waits; the file
	 * must hold the pause instant (the block's patterns) */
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snap(&t, "Full", "m", "{\"background\":true}");
	vt_req(&t, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 204);
	assert_int_equal(write(t.stdin_fd, "g", 1), 1);
	vt_expect_serial(&t, "VMEM hold2-wait\n", 60000);
	r = vt_req(&t, "GET", "/snapshot/status", NULL, 200);
	for (int k = 0; k < 1000 && !strstr(r, "\"state\":\"complete\""); k++) {
		usleep(10000);
		r = vt_req(&t, "GET", "/snapshot/status", NULL, 200);
	}
	assert_non_null(strstr(r, "\"state\":\"complete\""));
	/* the unplug met the write protection (block 3 copied aside) */
	if (strstr(r, "\"pages_copied\":0,"))
		print_message(
		    "note: nothing was copied aside, the unplug came after the writer: %s\n", r);
	vt_expect_serial(&t, "VMEM replug-after-load-zero PASS\n", 100);
	tc_stop(&t);
	for (unsigned int i = 0; i < 5; i++) {
		static const char *const modes[] = {"auto", "eager", "mmap", "lazy", NULL};
		char sock[300];
		int diff = modes[i] && !strcmp(modes[i], "eager");
		pid_t pager = -1;
		struct sqb_tc t2;

		if (!modes[i]) {
			if (access(pager_bin, X_OK) != 0) {
				print_message("Uffd: no %s, not run\n", pager_bin);
				break;
			}
			snprintf(sock, sizeof(sock), "%s/m.pager.sock", tmpdir);
			pager = pager_start(sock, "m");
		}
		load(&t2, "m", modes[i], modes[i] ? NULL : sock, diff);
		r = vt_req(&t2, "GET", "/hotplug/memory", NULL, 200);
		assert_non_null(strstr(r, "\"plugged_size_mib\":8,\"requested_size_mib\":8}"));
		if (modes[i] && !strcmp(modes[i], "auto")) {
			/* a first load (nothing verified yet) maps rather than
			 * fills the hotplug region */
			char *log = tc_read_file(t2.errlog);

			if (!log ||
			    !strstr(log, "has hotpluggable memory: verified whole and mapped"))
				fail_msg("auto load: %s", log ? log : "(no log)");
			free(log);
		}
		/* before the Diff: more than a slot, the guest opens slot 1 */
		if (diff)
			vt_req(&t2, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":130}",
			       204);
		assert_int_equal(write(t2.stdin_fd, "g", 1), 1);
		vt_expect_serial(&t2, "VMEM hold2-wait\n", 60000);
		if (diff)
			vt_expect_serial(&t2, "VMEM plug-slot1 PASS\n", 100);
		vt_expect_serial(&t2, "VMEM after-hold PASS\n", 100);
		vt_expect_serial(&t2, "VMEM replug-after-load-zero PASS\n", 100);
		if (diff) {
			/* a Diff after the guest rewrote two blocks, loaded alone */
			struct sqb_tc t3;

			vt_req(&t2, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
			snap(&t2, "Diff", "d", NULL);
			tc_stop(&t2);
			/* the hotplug region is region 1 (768 GiB, 256 MiB); the
			 * Diff names the Full as parent and holds, of region 1,
			 * only block 3 (unplugged since: 512 pages) and the two
			 * pages written in block 2 and in block 64 each (KVM's
			 * log of slot 0, mapped again when tracking began, and
			 * of slot 1, made since); the other 65020 are PARENT */
			expect_mem_file(
			    "m.mem", (const char *const[]){"kind         full", "memory: 2 regions",
							   "1      0x000000c000000000 256.0 MiB",
							   "m.mem: OK (1 layer verified)", NULL});
			expect_mem_file(
			    "d.mem",
			    (const char *const[]){"kind         diff", "parent hint  ",
						  "1      0x000000c000000000 256.0 MiB", "/65020/",
						  "d.mem: OK (2 layers verified)", NULL});
			load(&t3, "d", "mmap", NULL, 0);
			t2 = t3;
		}
		assert_int_equal(write(t2.stdin_fd, "g", 1), 1);
		vt_expect_done_ok(&t2, "VMEM", 60000);
		vt_expect_serial(&t2, "VMEM after-hold2 PASS\n", 100);
		if (diff)
			vt_expect_serial(&t2, "VMEM slot1-after-hold2 PASS\n", 100);
		vt_expect_serial(&t2, "VMEM unplugged-buffer-refused PASS\n", 100);
		vt_expect_serial(&t2, "VMEM usable-zero PASS\n", 100);
		tc_stop(&t2);
		if (pager > 0) {
			kill(pager, SIGKILL);
			waitpid(pager, NULL, 0);
		}
	}
}

/* No device: GET and PATCH after boot name it as Firecracker does. */
static void test_memhp_without_device(void **state)
{
	struct sqb_tc t;
	const char *r;

	(void)state;
	assert_int_equal(
	    tc_spawn_stdin(&t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1), 0);
	start(&t, 0);
	vt_expect_serial(&t, "VMEM no-device\n", 30000);
	r = vt_req(&t, "GET", "/hotplug/memory", NULL, 400);
	assert_non_null(strstr(r, "Internal VMM error: Failed perform action on device: Device "
				  "not found"));
	r = vt_req(&t, "PATCH", "/hotplug/memory", "{\"requested_size_mib\":2}", 400);
	assert_non_null(strstr(r, "Memory hotplug update error: Failed perform action on device: "
				  "Device not found"));
	assert_int_equal(write(t.stdin_fd, "g", 1), 1);
	tc_stop(&t);
}

static const char *memhp_setup(void)
{
	const char *p = getenv("SQB_TEST_PAGER");

	snprintf(pager_bin, sizeof(pager_bin), "%s", p ? p : "squib-pager");
	return NULL;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api_tests[] = {
	    cmocka_unit_test(test_put_memhp_validation_texts),
	};
	const struct CMUnitTest guest_tests[] = {
	    cmocka_unit_test(test_memhp_guest_plugs_and_unplugs),
	    cmocka_unit_test(test_memhp_without_device),
	};
	const struct vt_main m = {
	    .tmp_template = "/tmp/squib-memhp-XXXXXX",
	    .tmpdir = tmpdir,
	    .tmpdir_cap = sizeof(tmpdir),
	    .squib_bin = &squib_bin,
	    .guest_dir = &guest_dir,
	    .snap_tool = &snap_tool,
	    .api_group = "memhp_api",
	    .guest_group = "memhp_guests",
	    .api_tests = api_tests,
	    .guest_tests = guest_tests,
	    .n_api = sizeof(api_tests) / sizeof(api_tests[0]),
	    .n_guests = sizeof(guest_tests) / sizeof(guest_tests[0]),
	    .setup = memhp_setup,
	};

	return vt_main(&m, argc, argv);
}
