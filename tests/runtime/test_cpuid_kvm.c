/* Integration, in process on /dev/kvm (ioctl wrapped at link time): what
 * squib hands KVM_SET_CPUID2 for every vCPU is Firecracker's normalized
 * CPUID (docs/cpuid.md) for 2 and 4 vCPUs with smt off and on, a custom
 * template is applied before normalization (its bits in fields
 * normalization owns are overwritten, its other bits hold), and a snapshot
 * load gives each vCPU exactly the CPUID that was saved, not a fresh one.
 * Asserted on the ioctl payload: under kvm_pvm on AMD a guest's CPUID
 * instruction does not exit, so the guest cannot see it (docs/cpuid.md). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cpuid.h>
#include <linux/kvm.h>

#include <cmocka.h>

#include "ctl.h"

static const char *guest_dir;

#define MAXE  512
#define MAXVC 8

struct cpuid_buf {
	struct kvm_cpuid2 h;
	struct kvm_cpuid_entry2 e[MAXE];
};

/* The last KVM_SET_CPUID2 payload KVM took, per initial APIC ID (leaf 1
 * EBX[31:24]), and a count of them. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct cpuid_buf seen[MAXVC];
static unsigned int nseen;

int __real_ioctl(int fd, unsigned long req, ...);
/* also record what a vCPU is read back to hold (KVM_GET_CPUID2): a load
 * whose vCPU holds the saved entries already does not set them again */
static int record_get;
static unsigned int sets_recorded; /* KVM_SET_CPUID2 calls while record_get */
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int rc, e;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	rc = __real_ioctl(fd, req, arg);
	e = errno;
	if ((req == KVM_SET_CPUID2 || (record_get && req == KVM_GET_CPUID2)) && rc == 0) {
		const struct kvm_cpuid2 *in = arg;

		if (req == KVM_SET_CPUID2 && record_get)
			__atomic_add_fetch(&sets_recorded, 1, __ATOMIC_RELAXED);

		for (unsigned int i = 0; i < in->nent && in->nent <= MAXE; i++)
			if (in->entries[i].function == 1 && in->entries[i].index == 0) {
				unsigned int apic = in->entries[i].ebx >> 24;

				if (apic >= MAXVC)
					break;
				pthread_mutex_lock(&lock);
				memset(&seen[apic], 0, sizeof(seen[apic]));
				memcpy(&seen[apic], in,
				       sizeof(*in) + in->nent * sizeof(in->entries[0]));
				nseen++;
				pthread_mutex_unlock(&lock);
			}
	}
	errno = e;
	return rc;
}

static void want(struct sqb_ctl *c, const char *method, const char *path, const char *json,
		 int status)
{
	static struct sqb_ctl_resp r;

	memset(&r, 0, sizeof(r));
	sqb_ctl_handle(c, method, path, json, json ? strlen(json) : 0, &r);
	if (r.status != status)
		fail_msg("%s %s %s -> %d %s; wanted %d", method, path, json ? json : "", r.status,
			 r.body, status);
}

static const struct kvm_cpuid_entry2 *get(const struct cpuid_buf *b, uint32_t leaf, uint32_t sub)
{
	for (unsigned int i = 0; i < b->h.nent && i < MAXE; i++)
		if (b->e[i].function == leaf && b->e[i].index == sub)
			return &b->e[i];
	return NULL;
}

static const struct kvm_cpuid_entry2 *must(const struct cpuid_buf *b, uint32_t leaf, uint32_t sub)
{
	const struct kvm_cpuid_entry2 *e = get(b, leaf, sub);

	if (!e)
		fail_msg("KVM_SET_CPUID2 had no leaf %#x/%u", leaf, sub);
	return e;
}

static int host_amd(void)
{
	unsigned int a, b, c, d;

	__cpuid(0, a, b, c, d);
	return b == 0x68747541u; /* "Auth" */
}

/* Boot the counter guest with n vCPUs; wait until every vCPU's CPUID
 * was set (bounded; never a timing verdict). */
static void boot(struct sqb_ctl *c, unsigned int n, int smt, const char *tmpl)
{
	char body[256];
	unsigned int since;

	sqb_ctl_init(c);
	c->serial_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	snprintf(body, sizeof(body), "{\"vcpu_count\": %u, \"mem_size_mib\": 32, \"smt\": %s}", n,
		 smt ? "true" : "false");
	want(c, "PUT", "/machine-config", body, 204);
	if (tmpl)
		want(c, "PUT", "/cpu-config", tmpl, 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s/counter.elf\"}", guest_dir);
	want(c, "PUT", "/boot-source", body, 204);
	pthread_mutex_lock(&lock);
	memset(seen, 0, sizeof(seen));
	since = nseen;
	pthread_mutex_unlock(&lock);
	want(c, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204);
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&lock);
		unsigned int got = nseen - since;
		pthread_mutex_unlock(&lock);
		if (got >= n)
			return;
		usleep(5000);
	}
	fail_msg("only some vCPUs had KVM_SET_CPUID2");
}

static unsigned int np2(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Firecracker's rules, vCPU by vCPU, on what KVM was given. */
static void check_topology(unsigned int n, int smt)
{
	unsigned int tpc = (smt && n > 1) ? 2 : 1;
	int amd = host_amd();

	for (unsigned int i = 0; i < n; i++) {
		const struct cpuid_buf *b = &seen[i];
		const struct kvm_cpuid_entry2 *e;
		char brand[49] = {0};

		if (!b->h.nent)
			fail_msg("vCPU %u: no KVM_SET_CPUID2 with APIC ID %u", i, i);
		e = must(b, 1, 0);
		assert_int_equal(e->ebx >> 24, i);
		assert_int_equal((e->ebx >> 16) & 0xff, np2(n));
		assert_int_equal((e->ebx >> 8) & 0xff, 8);
		assert_int_equal((e->edx >> 28) & 1, n > 1);
		assert_int_equal(e->ecx >> 31, 1);
		assert_int_equal((e->ecx >> 15) & 1, 0);
		e = must(b, 0xb, 0);
		assert_int_equal(e->eax, tpc == 2 ? 1 : 0);
		assert_int_equal(e->ebx, tpc);
		assert_int_equal(e->ecx, 0x100);
		assert_int_equal(e->edx, i);
		e = must(b, 0xb, 1);
		assert_int_equal(e->eax, 5);
		assert_int_equal(e->ebx, n);
		assert_int_equal(e->ecx, 0x201);
		assert_int_equal(e->edx, i);
		for (unsigned int k = 0; k < 3; k++) {
			e = must(b, 0x80000002 + k, 0);
			memcpy(brand + 16 * k, &e->eax, 4);
			memcpy(brand + 16 * k + 4, &e->ebx, 4);
			memcpy(brand + 16 * k + 8, &e->ecx, 4);
			memcpy(brand + 16 * k + 12, &e->edx, 4);
		}
		if (!amd) {
			assert_non_null(strstr(brand, "Intel(R) Xeon(R) Processor"));
			for (unsigned int s = 0; (e = get(b, 4, s)) && (e->eax & 0x1f); s++) {
				unsigned int lvl = (e->eax >> 5) & 7;

				assert_int_equal(e->eax >> 26, n / tpc - 1);
				if (lvl == 1 || lvl == 2)
					assert_int_equal((e->eax >> 14) & 0xfff, tpc - 1);
				if (lvl == 3)
					assert_int_equal((e->eax >> 14) & 0xfff, n - 1);
			}
			assert_int_equal(must(b, 0xa, 0)->eax, 0);
			continue;
		}
		assert_string_equal(brand, "AMD EPYC");
		assert_int_equal((must(b, 0x80000001, 0)->ecx >> 22) & 1, 1);
		assert_int_equal((must(b, 7, 0)->edx >> 29) & 1, 0);
		e = must(b, 0x80000008, 0);
		assert_int_equal(e->ecx & 0xff, n - 1);
		assert_int_equal((e->ecx >> 12) & 0xf, 7);
		e = must(b, 0x8000001e, 0);
		assert_int_equal(e->eax, i);
		assert_int_equal(e->ebx & 0xff, i / tpc);
		assert_int_equal((e->ebx >> 8) & 0xff, tpc - 1);
		assert_int_equal(e->ecx & 0x7ff, 0);
		for (unsigned int s = 0; (e = get(b, 0x8000001d, s)) && (e->eax & 0x1f); s++) {
			unsigned int lvl = (e->eax >> 5) & 7;

			if (lvl == 1 || lvl == 2)
				assert_int_equal((e->eax >> 14) & 0xfff, tpc - 1);
			if (lvl == 3)
				assert_int_equal((e->eax >> 14) & 0xfff, n - 1);
		}
	}
}

static void test_topology(void **state)
{
	static const struct {
		unsigned int n;
		int smt;
	} cases[] = {{2, 0}, {2, 1}, {4, 0}, {4, 1}, {1, 1}};

	(void)state;
	for (unsigned int k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		static struct sqb_ctl c;

		boot(&c, cases[k].n, cases[k].smt, NULL);
		check_topology(cases[k].n, cases[k].smt);
		printf("%u vCPUs, smt %s: normalized CPUID on every vCPU\n", cases[k].n,
		       cases[k].smt ? "on" : "off");
		sqb_ctl_destroy(&c);
	}
}

/* leaf 1 EBX (APIC ID byte all ones: normalization's) and ECX bit 0 (SSE3
 * cleared: nobody else's) */
#define TEMPLATE                                                                                   \
	"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "          \
	"\"modifiers\": [{\"register\": \"ebx\", \"bitmap\": "                                     \
	"\"0b11111111xxxxxxxxxxxxxxxxxxxxxxxx\"}, {\"register\": \"ecx\", \"bitmap\": "            \
	"\"0b0\"}]}]}"

static void test_template_then_normalize(void **state)
{
	static struct sqb_ctl c;

	(void)state;
	boot(&c, 2, 1, TEMPLATE);
	check_topology(2, 1); /* the APIC ID is the vCPU's, not the template's 0xff */
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(must(&seen[i], 1, 0)->ecx & 1, 0);
	sqb_ctl_destroy(&c);
}

/* A snapshot of 2 vCPUs with smt; after the load each vCPU holds its saved
 * CPUID (what KVM_GET_CPUID2 gave at the save) as it is: set by the load,
 * or read back identical and left alone (kvm_snapshot.c cpuid_held). */
static void test_snapshot_keeps_saved(void **state)
{
	static struct sqb_ctl c, c2;
	static struct cpuid_buf saved[2], fresh[2];
	char spath[64], mpath[64], body[256];
	unsigned int differ = 0;

	(void)state;
	snprintf(spath, sizeof(spath), "/tmp/squib-cpuidkvm-%d.state", (int)getpid());
	snprintf(mpath, sizeof(mpath), "/tmp/squib-cpuidkvm-%d.mem", (int)getpid());
	boot(&c, 2, 1, NULL);
	want(&c, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204);
	snprintf(body, sizeof(body), "{\"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}",
		 spath, mpath);
	want(&c, "PUT", "/snapshot/create", body, 204);
	sqb_ctl_destroy(&c);

	/* what the snapshot holds: the vCPU's KVM_GET_CPUID2; read it back the
	 * same way from a scratch vCPU given what squib set */
	for (unsigned int i = 0; i < 2; i++) {
		int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, vc;

		assert_true(kvm >= 0);
		vm = __real_ioctl(kvm, KVM_CREATE_VM, 0);
		vc = __real_ioctl(vm, KVM_CREATE_VCPU, i);
		assert_true(vm >= 0 && vc >= 0);
		memcpy(&fresh[i], &seen[i], sizeof(fresh[i])); /* a fresh normalization */
		assert_int_equal(__real_ioctl(vc, KVM_SET_CPUID2, &seen[i]), 0);
		saved[i].h.nent = MAXE;
		assert_int_equal(__real_ioctl(vc, KVM_GET_CPUID2, &saved[i]), 0);
		close(vc);
		close(vm);
		close(kvm);
	}

	sqb_ctl_init(&c2);
	c2.serial_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	pthread_mutex_lock(&lock);
	memset(seen, 0, sizeof(seen));
	record_get = 1;
	pthread_mutex_unlock(&lock);
	snprintf(body, sizeof(body),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_type\": \"File\", "
		 "\"backend_path\": \"%s\"}}",
		 spath, mpath);
	want(&c2, "PUT", "/snapshot/load", body, 204);
	pthread_mutex_lock(&lock);
	record_get = 0;
	pthread_mutex_unlock(&lock);
	for (unsigned int i = 0; i < 2; i++) {
		if (seen[i].h.nent != saved[i].h.nent)
			fail_msg("vCPU %u: after the load it holds %u entries, %u were saved", i,
				 seen[i].h.nent, saved[i].h.nent);
		for (unsigned int k = 0; k < saved[i].h.nent; k++) {
			const struct kvm_cpuid_entry2 *e =
			    get(&seen[i], saved[i].e[k].function, saved[i].e[k].index);

			if (!e || memcmp(e, &saved[i].e[k], sizeof(*e)))
				fail_msg("vCPU %u: after the load leaf %#x/%u is otherwise than saved",
					 i, saved[i].e[k].function, saved[i].e[k].index);
			e = get(&fresh[i], saved[i].e[k].function, saved[i].e[k].index);
			differ += !e || memcmp(e, &saved[i].e[k], sizeof(*e));
		}
	}
	/* Where KVM reads back what it was given, saved and fresh are the same
	 * and this cannot tell a renormalization apart; kvm_pvm answers some
	 * leaves itself, so there it can. */
	printf("%u saved entries differ from a fresh normalization\n", differ);
	/* one per vCPU as it is created (the normalized table); made on this
	 * host with this shape, each then held the saved table already, so the
	 * load's restore set none (~65 us each on PVM; 4 calls before) */
	printf("KVM_SET_CPUID2 calls during the load: %u\n", sets_recorded);
	assert_int_equal(sets_recorded, 2);
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		assert_true(differ > 0);
	sqb_ctl_destroy(&c2);
	unlink(spath);
	unlink(mpath);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_topology),
	    cmocka_unit_test(test_template_then_normalize),
	    cmocka_unit_test(test_snapshot_keeps_saved),
	};
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: %s GUEST_DIR\n", argv[0]);
		return 2;
	}
	guest_dir = argv[1];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("no usable /dev/kvm: skipped\n");
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests_name("cpuid.kvm", tests, NULL, NULL);
}
