/* runtime.pci_guests: the virtiopci test guest (tests/guests/virtiopci.c,
 * written from the PCI, PCIe ECAM and virtio 1.x specs and Firecracker's
 * layout, not from squib's code) through the real squib on /dev/kvm.
 * With --enable-pci and PUT /entropy the guest enumerates bus 0 through
 * 0xcf8/0xcfc and ECAM, finds Firecracker's host bridge and a modern
 * virtio-rng, sizes its BAR, walks its capabilities and drives it through
 * the common config; without --enable-pci it must find no PCI at all.
 * The guest's last line decides: "VIRTIOPCI PASS ..." or
 * "VIRTIOPCI FAIL <step>: <why>" (its per-step lines say more).  The same
 * guest also takes MSI-X interrupts from the rng (masking, PBA), and in its
 * loop mode crosses a snapshot and a load into a squib without
 * --enable-pci, the PCI transport coming back from the snapshot alone. */
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
static char tmpdir[] = "/tmp/squib-pci-XXXXXX";

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

/* The serial output and the tail of squib's log on stderr, then fail. */
static void fail_with(struct sqb_tc *t, const char *what, const char *s)
{
	char *e = tc_read_file(t->errlog);
	size_t el = e ? strlen(e) : 0;

	fprintf(stderr, "serial:\n%s\nsquib log tail:\n%s\n", s ? s : "(none)",
		e ? e + (el > 2500 ? el - 2500 : 0) : "");
	free(e);
	fail_msg("%s", what);
}

/* virtiopci.elf in its loop mode (vpci=loop: rounds of one rng request
 * each, interrupts through MSI-X), on squib --enable-pci with a pipe to
 * the guest's COM1. */
static void boot_loop(struct sqb_tc *t)
{
	const char *const with[] = {"--level", "Info", "--enable-pci", NULL};
	char body[512];

	assert_int_equal(tc_spawn_stdin(t, squib_bin, with, 1), 0);
	vt_req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\":\"%s/virtiopci.elf\",\"boot_args\":\"vpci=loop\"}",
		 guest_dir);
	vt_req(t, "PUT", "/boot-source", body, 204);
	vt_req(t, "PUT", "/entropy", "{}", 204);
	vt_req(t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
}

/* The first (first != 0) or last whole "VPCI round N irqs M" line of s:
 * 1 with *n and *irqs set, 0 if there is none. */
static int round_line(const char *s, int first, unsigned long *n, unsigned long *irqs)
{
	int found = 0;

	for (const char *p = s; p && (p = strstr(p, "VPCI round ")); p++) {
		unsigned long a, b;

		if (!strchr(p, '\n') || sscanf(p, "VPCI round %lu irqs %lu", &a, &b) != 2)
			continue;
		*n = a;
		*irqs = b;
		found = 1;
		if (first)
			break;
	}
	return found;
}

/* Pause, Full snapshot, SIGKILL; a new squib WITHOUT --enable-pci (stdin
 * on a pipe too) loads it and resumes.  *out gets t's serial output. */
static void snapshot_kill_load(struct sqb_tc *t, struct sqb_tc *t2, const char *name, char **out)
{
	const char *const without[] = {"--level", "Info", NULL};
	char body[600];

	vt_req(t, "PATCH", "/vm", "{\"state\":\"Paused\"}", 204);
	snprintf(body, sizeof(body),
		 "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"%s/%s.state\","
		 "\"mem_file_path\":\"%s/%s.mem\"}",
		 tmpdir, name, tmpdir, name);
	vt_req(t, "PUT", "/snapshot/create", body, 204);
	*out = tc_read_file(t->serial);
	if (!*out || strstr(*out, "VIRTIOPCI ") || strstr(*out, " FAIL "))
		fail_with(t, "the guest failed or ended before the snapshot", *out);
	tc_stop(t); /* SIGKILL */
	assert_int_equal(tc_spawn_stdin(t2, squib_bin, without, 1), 0);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\":\"%s/%s.state\",\"mem_backend\":{\"backend_type\":\"File\","
		 "\"backend_path\":\"%s/%s.mem\"},\"resume_vm\":true}",
		 tmpdir, name, tmpdir, name);
	vt_req(t2, "PUT", "/snapshot/load", body, 204);
}

/* Rounds in the loaded VM up to at least n (bounded), then 'q': the guest
 * must end with VIRTIOPCI PASS.  The serial output is returned. */
static char *rounds_then_quit(struct sqb_tc *t2, unsigned long want)
{
	unsigned long n = 0, irqs;
	char *s = NULL, *v;

	for (long long end = now_ms() + 30000; now_ms() < end; usleep(20000)) {
		free(s);
		s = tc_read_file(t2->serial);
		if (s && (strstr(s, "VIRTIOPCI ") || strstr(s, " FAIL "))) {
			free(s);
			usleep(200000); /* the rest of the guest's lines */
			s = tc_read_file(t2->serial);
			fail_with(t2, "a FAIL line, or the guest ended, after the load", s);
		}
		if (s && round_line(s, 0, &n, &irqs) && n >= want)
			break;
	}
	if (!s || n < want)
		fail_with(t2, "the rounds did not go on after the load", s);
	assert_int_equal(write(t2->stdin_fd, "q", 1), 1);
	free(s);
	s = wait_verdict(t2, 30000);
	v = s ? strstr(s, "VIRTIOPCI ") : NULL;
	if (!v || strncmp(v, "VIRTIOPCI PASS", 14) || strstr(s, " FAIL "))
		fail_with(t2, "no VIRTIOPCI PASS after the load", s);
	return s;
}

/* Snapshot mid-rounds: the loaded VM (squib without --enable-pci) goes on
 * with the next round, not a reboot; its rng still answers, its MSI-X
 * interrupts still arrive, 00:00.0 and the rng's BAR0 read as before
 * (the guest checks each round). */
static void test_pci_snapshot_mid_rounds(void **state)
{
	struct sqb_tc t, t2;
	unsigned long n0, i0, n1, i1, n2, i2;
	char *before, *after;

	(void)state;
	boot_loop(&t);
	vt_expect_serial(&t, "VPCI round 3 ", 30000);
	snapshot_kill_load(&t, &t2, "mid", &before);
	if (!round_line(before, 0, &n0, &i0))
		fail_with(&t2, "no whole round line before the snapshot", before);
	after = rounds_then_quit(&t2, n0 + 3);
	if (strstr(after, "VPCI found"))
		fail_with(&t2, "the loaded guest started over", after);
	assert_true(round_line(after, 1, &n1, &i1));
	assert_true(round_line(after, 0, &n2, &i2));
	/* the next round, or the one after when the pause cut a line short */
	if (n1 <= n0 || n1 > n0 + 2 || i1 <= i0 || i2 < i1 + (n2 - n1)) {
		fprintf(stderr, "before the snapshot:\n%s\n", before);
		fail_with(&t2, "rounds or interrupt counts do not go on from the snapshot", after);
	}
	free(before);
	free(after);
	tc_stop(&t2);
}

/* Snapshot while vector 1 is masked with its PBA bit set: the loaded VM
 * keeps the pending bit and no interrupt, unmasking delivers exactly one
 * and clears the bit (the PBA and the mask travel in the snapshot). */
static void test_pci_snapshot_masked_pending(void **state)
{
	static const char *const steps[] = {
	    "VPCI hold-released PASS\n", "VPCI hold-pba-kept PASS\n", "VPCI hold-unmask-irq PASS\n",
	    "VPCI hold-pba-clear PASS\n", NULL};
	struct sqb_tc t, t2;
	unsigned long n0, i0;
	char *before, *after;

	(void)state;
	boot_loop(&t);
	vt_expect_serial(&t, "VPCI round 2 ", 30000);
	assert_int_equal(write(t.stdin_fd, "m", 1), 1);
	vt_expect_serial(&t, "VPCI hold\n", 30000);
	vt_expect_serial(&t, "VPCI hold-pending PASS\n", 100);
	snapshot_kill_load(&t, &t2, "hold", &before);
	if (!round_line(before, 0, &n0, &i0))
		fail_with(&t2, "no whole round line before the snapshot", before);
	assert_int_equal(write(t2.stdin_fd, "u", 1), 1);
	after = rounds_then_quit(&t2, n0 + 3);
	for (int i = 0; steps[i]; i++)
		if (!strstr(after, steps[i]))
			fail_with(&t2, steps[i], after);
	free(before);
	free(after);
	tc_stop(&t2);
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
	    cmocka_unit_test(test_pci_snapshot_mid_rounds),
	    cmocka_unit_test(test_pci_snapshot_masked_pending),
	};
	int fd, rc;

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
	if (!mkdtemp(tmpdir))
		return 1;
	rc = cmocka_run_group_tests_name("pci_guests", tests, NULL, NULL);
	vt_rm_tmp(tmpdir);
	return rc;
}
