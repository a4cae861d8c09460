/* runtime.pci_guests: the virtiopci test guest (tests/guests/virtiopci.c,
 * written from the PCI, PCIe ECAM and virtio 1.x specs and Firecracker's
 * layout, not from squib's code) through the real squib on /dev/kvm.
 * With --enable-pci and PUT /entropy the guest enumerates bus 0 through
 * 0xcf8/0xcfc and ECAM, finds Firecracker's host bridge and a modern
 * virtio-rng, sizes its BAR, walks its capabilities and drives it through
 * the common config; without --enable-pci it must find no PCI at all.
 * The guest's last line decides: "VIRTIOPCI PASS ..." or
 * "VIRTIOPCI FAIL <step>: <why>" (its per-step lines say more). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm_test_util.h"

static const char *squib_bin, *guest_dir;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The serial output once it holds a whole "VIRTIOPCI " line, squib has
 * exited, or ms passed (malloc'd; NULL if there was none). */
static char *wait_verdict(struct sqb_tc *t, int ms)
{
	for (long long end = now_ms() + ms;; usleep(20000)) {
		char *s, *p;

		/* exit first, then read: the read sees all the output */
		if (!t->exited && waitpid(t->pid, &t->status, WNOHANG) == t->pid)
			t->exited = 1;
		s = tc_read_file(t->serial);
		p = s ? strstr(s, "VIRTIOPCI ") : NULL;
		if ((p && strchr(p, '\n')) || t->exited || now_ms() >= end)
			return s;
		free(s);
	}
}

/* Boot virtiopci.elf with an entropy device, with or without
 * --enable-pci; its verdict line must say PASS. */
static void run_guest(int pci, const char *args)
{
	const char *const with[] = {"--level", "Info", "--enable-pci", NULL};
	const char *const without[] = {"--level", "Info", NULL};
	struct sqb_tc t;
	char body[512], *s, *v;

	assert_int_equal(tc_spawn(&t, squib_bin, pci ? with : without, 1), 0);
	vt_req(&t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/virtiopci.elf\",\"boot_args\":\"%s\"}", guest_dir,
		 args);
	vt_req(&t, "PUT", "/boot-source", body, 204);
	vt_req(&t, "PUT", "/entropy", "{}", 204);
	vt_req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	s = wait_verdict(&t, 60000);
	v = s ? strstr(s, "VIRTIOPCI ") : NULL;
	if (!v || strncmp(v, "VIRTIOPCI PASS", 14)) {
		char *e = tc_read_file(t.errlog);
		size_t el = e ? strlen(e) : 0;

		fprintf(stderr, "serial:\n%s\nsquib log tail:\n%s\n", s ? s : "(none)",
			e ? e + (el > 2500 ? el - 2500 : 0) : "");
		free(e);
		tc_stop(&t);
		fail_msg("%s --enable-pci: %.*s", pci ? "with" : "without",
			 v ? (int)strcspn(v, "\n") : 30,
			 v ? v : "no VIRTIOPCI line from the guest");
	}
	free(s);
	tc_stop(&t);
}

/* Firecracker's PCI: host bridge 8086:0d57, ECAM at 0xeec00000, a modern
 * virtio-rng 1af4:1044 with its capabilities in a 64-bit BAR0, driven per
 * virtio 3.1.1, queue registers frozen after DRIVER_OK. */
static void test_pci_rng_through_pci(void **state)
{
	(void)state;
	run_guest(1, "vpci=full");
}

/* Without --enable-pci (Firecracker's test_pci_disabled): no type-1
 * mechanism, no host bridge at 00:00.0, pci=off on the command line. */
static void test_no_pci_without_enable_pci(void **state)
{
	(void)state;
	run_guest(0, "vpci=absent");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pci_rng_through_pci),
	    cmocka_unit_test(test_no_pci_without_enable_pci),
	};
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SQUIB GUEST_DIR [FILTER]\n", argv[0]);
		return 2;
	}
	squib_bin = argv[1];
	guest_dir = argv[2];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "skip: /dev/kvm is not usable here (%s)\n", strerror(errno));
		return 77;
	}
	close(fd);
	if (argc > 3)
		cmocka_set_test_filter(argv[3]);
	return cmocka_run_group_tests_name("pci_guests", tests, NULL, NULL);
}
