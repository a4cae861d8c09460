/* Custom CPU templates (PUT /cpu-config, docs/cpu-templates.md).
 *
 * `unit`: Firecracker's number and bitmap parsing (templates_serde.rs,
 * templates.rs) and their error texts, the endpoint in process (strict
 * body, replace, machine-config "None" clears it, GET /vm/config), and
 * the CPUID application on a fake KVM answer.
 * `guests SQUIB GUEST_DIR TEMPLATE_DIR`: the real squib on /dev/kvm boots
 * the cpuid guest without and with a template and checks the guest sees
 * exactly the template's bits (others kept), an MSR modifier read back with
 * RDMSR, Firecracker's start errors (missing leaf, MSR, capability), the
 * post-boot refusal, --config-file with a template path, and Firecracker's
 * own T2A/T2S templates (tests/runtime/data/cpu_templates, copied from
 * Firecracker's tests/data/custom_cpu_templates) for this host's vendor. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "squib_client.h"

/* kvm/x86_64/kvm_arch.h (in sqb_runtime) */
#if defined(__x86_64__)
int sqb_kvm_cpuid_apply(struct kvm_cpuid2 *c, const struct sqb_cpu_template *t, uint32_t bad[2]);
#endif

static const char *squib_bin, *guest_dir, *tmpl_dir;

#define PFX "An error occurred when deserializing the json body of a request: "

/* ---- unit ---- */

static void test_bitmap_parse(void **state)
{
	uint64_t f, v;
	char msg[256];

	(void)state;
	assert_int_equal(sqb_cpu_bitmap_parse("0b0101xxxx", 8, &f, &v, msg, sizeof(msg)), 0);
	assert_int_equal(f, 0xf0);
	assert_int_equal(v, 0x50);
	/* '_' separators; no "0b"; short strings leave the high bits alone */
	assert_int_equal(sqb_cpu_bitmap_parse("0_101_xx_xx", 8, &f, &v, msg, sizeof(msg)), 0);
	assert_int_equal(f, 0xf0);
	assert_int_equal(v, 0x50);
	assert_int_equal(sqb_cpu_bitmap_parse("0b1x0", 32, &f, &v, msg, sizeof(msg)), 0);
	assert_int_equal(f, 0x5);
	assert_int_equal(v, 0x4);
	{
		char b[80] = "0b1";

		memset(b + 3, 'x', 62);
		b[65] = '0';
		assert_int_equal(sqb_cpu_bitmap_parse(b, 64, &f, &v, msg, sizeof(msg)), 0);
		assert_true(f == 0x8000000000000001ULL && v == 0x8000000000000000ULL);
		b[66] = 'x'; /* 65 bits */
		assert_int_equal(sqb_cpu_bitmap_parse(b, 64, &f, &v, msg, sizeof(msg)), -1);
	}
	/* too long, even by a '_' past the width */
	assert_int_equal(sqb_cpu_bitmap_parse("0b0000_0000_0", 8, &f, &v, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Failed to parse string [0b0000_0000_0] as a bitmap - string is "
				 "too long");
	assert_int_equal(sqb_cpu_bitmap_parse("_00000000", 8, &f, &v, msg, sizeof(msg)), -1);
	/* unknown character: Rust prints the byte (a u8) as a number */
	assert_int_equal(sqb_cpu_bitmap_parse("0b0_x\xcf\xbd"
					      "1_xx_xx",
					      8, &f, &v, msg, sizeof(msg)),
			 -1);
	assert_string_equal(msg, "Failed to parse string [0b0_x\xcf\xbd"
				 "1_xx_xx] as a bitmap - "
				 "unknown character: 189");
	assert_int_equal(sqb_cpu_bitmap_parse("0b2", 32, &f, &v, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "unknown character: 50"));
}

static void test_number_parse(void **state)
{
	uint64_t x;
	char msg[256];

	(void)state;
	assert_int_equal(sqb_cpu_number_parse("0b1000101", UINT32_MAX, &x, msg, sizeof(msg)), 0);
	assert_int_equal(x, 69);
	assert_int_equal(sqb_cpu_number_parse("0x0045", UINT32_MAX, &x, msg, sizeof(msg)), 0);
	assert_int_equal(x, 69);
	assert_int_equal(sqb_cpu_number_parse("0xFFFFFFFF", UINT32_MAX, &x, msg, sizeof(msg)), 0);
	assert_int_equal(x, 0xffffffffu);
	assert_int_equal(sqb_cpu_number_parse("69", UINT32_MAX, &x, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "No supported number system prefix found in value [69]. Make "
				 "sure to prefix the number with '0x' for hexadecimal numbers or "
				 "'0b' for binary numbers.");
	assert_int_equal(sqb_cpu_number_parse("0x1ffffffff", UINT32_MAX, &x, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Failed to parse string [0x1ffffffff] as a number for CPU "
				 "template - ParseIntError { kind: PosOverflow }");
	assert_int_equal(sqb_cpu_number_parse("0x", UINT32_MAX, &x, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "kind: Empty"));
	assert_int_equal(sqb_cpu_number_parse("0b12", UINT32_MAX, &x, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "kind: InvalidDigit"));
}

static int api(struct sqb_ctl *c, const char *method, const char *path, const char *json,
	       struct sqb_ctl_resp *r)
{
	sqb_ctl_handle(c, method, path, json, json ? strlen(json) : 0, r);
	return r->status;
}

static void fault(struct sqb_ctl *c, const char *body, const char *want)
{
	static struct sqb_ctl_resp r;

	if (api(c, "PUT", "/cpu-config", body, &r) != 400 || !strstr(r.body, want))
		fail_msg("PUT /cpu-config %s -> %d %s; wanted 400 with '%s'", body, r.status,
			 r.body, want);
}

static void test_api_parse(void **state)
{
	static struct sqb_ctl c;
	static struct sqb_ctl_resp r;

	(void)state;
	sqb_ctl_init(&c);
	/* test_api.py test_api_cpu_config: put(foo=False) must fail */
	fault(&c, "{\"foo\": false}",
	      PFX "unknown field `foo`, expected one of `kvm_capabilities`, `cpuid_modifiers`, "
		  "`msr_modifiers` at line 1 column 6.");
	fault(&c, "{\"kvm_capabilities\": [\"1\", \"!a2\"]}",
	      PFX "Failed to parse string [!a2] as a kvm capability - can not convert to numeric: "
		  "invalid digit found in string.");
	fault(&c, "{\"kvm_capabilities\": [\"\"]}", "cannot parse integer from empty string");
	fault(&c,
	      "{\"cpuid_modifiers\": [{\"leaf\": \"1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	      "\"modifiers\": []}]}",
	      PFX "No supported number system prefix found in value [1]. Make sure to prefix the "
		  "number with '0x' for hexadecimal numbers or '0b' for binary numbers. at line 1 "
		  "column 33.");
	fault(&c,
	      "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0}]}",
	      PFX "missing field `modifiers` at line 1 column 66.");
	fault(&c,
	      "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	      "\"modifiers\": [{\"register\": \"rax\", \"bitmap\": \"0b1\"}]}]}",
	      PFX
	      "Invalid CPUID register. Must be one of [eax, ebx, ecx, edx] at line 1 column 99.");
	fault(&c,
	      "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	      "\"modifiers\": [{\"register\": \"eax\", \"bitmap\": "
	      "\"0b100000000000000000000000000000000\"}]}]}",
	      "as a bitmap - string is too long");
	fault(&c, "{\"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0bq\"}]}",
	      "Failed to parse string [0bq] as a bitmap - unknown character: 113");
	fault(&c, "{\"msr_modifiers\": [{\"addr\": \"0x10a\"}]}", "missing field `bitmap`");
	fault(&c, "{\"msr_modifiers\": [\"0x10a\"]}",
	      "invalid type: string, expected struct RegisterModifier");
	fault(&c, "{\"cpuid_modifiers\": {}}", "invalid type: map, expected a sequence");
	fault(&c,
	      "{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": -1, "
	      "\"modifiers\": []}]}",
	      "expected u32");
	/* nested structs do not deny unknown fields (only CustomCpuTemplate does) */
	assert_int_equal(api(&c, "PUT", "/cpu-config",
			     "{\"msr_modifiers\": [{\"addr\": \"0x277\", \"bitmap\": \"0b1\", "
			     "\"note\": 1}]}",
			     &r),
			 204);
	assert_non_null(c.cpu_config);
	assert_int_equal(c.cpu_config->nmsrs, 1);
	assert_int_equal(c.cpu_config->msrs[0].addr, 0x277);
	/* a second PUT replaces the first; a failed one leaves it */
	assert_int_equal(
	    api(&c, "PUT", "/cpu-config",
		"{\"kvm_capabilities\": [\"!5\", \"7\"], \"cpuid_modifiers\": [{\"leaf\": "
		"\"0x80000001\", \"subleaf\": \"0b0\", \"flags\": 1, \"modifiers\": "
		"[{\"register\": \"ecx\", \"bitmap\": \"0b1x0\"}, {\"register\": "
		"\"edx\", \"bitmap\": \"0bxxxxxxxx\"}]}]}",
		&r),
	    204);
	fault(&c, "{\"foo\": 1}", "unknown field");
	assert_int_equal(c.cpu_config->nmsrs, 0);
	assert_int_equal(c.cpu_config->ncaps, 2);
	assert_true(c.cpu_config->caps[0].remove && c.cpu_config->caps[0].cap == 5);
	assert_true(!c.cpu_config->caps[1].remove && c.cpu_config->caps[1].cap == 7);
	assert_int_equal(c.cpu_config->ncpuid, 1);
	assert_int_equal(c.cpu_config->cpuid[0].leaf, 0x80000001u);
	assert_int_equal(c.cpu_config->cpuid[0].flags, 1);
	assert_int_equal(c.cpu_config->cpuid[0].count, 2);
	assert_int_equal(c.cpu_config->regs[0].reg, 2);
	assert_int_equal(c.cpu_config->regs[0].filter, 0x5);
	assert_int_equal(c.cpu_config->regs[0].value, 0x4);
	assert_int_equal(c.cpu_config->regs[1].filter, 0);
	/* GET /vm/config: VmmConfig's cpu_config is always None in Firecracker */
	assert_int_equal(api(&c, "GET", "/vm/config", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"cpu-config\":null"));
	assert_null(strstr(r.body, "cpu_template"));
	/* an absent cpu_template keeps the custom template ... */
	assert_int_equal(
	    api(&c, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":64}", &r), 204);
	assert_non_null(c.cpu_config);
	/* ... an explicit "None" clears it (MachineConfig::update) */
	assert_int_equal(api(&c, "PATCH", "/machine-config", "{\"cpu_template\":\"None\"}", &r),
			 204);
	assert_null(c.cpu_config);
	sqb_ctl_destroy(&c);
}

#if defined(__x86_64__)
static void test_cpuid_apply(void **state)
{
	struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[3];
	} c = {.h.nent = 3};
	struct sqb_cpu_reg_mod regs[] = {
	    {.reg = 2, .filter = 0x0000000f, .value = 0x00000005}, /* ecx: 0b0101 */
	    {.reg = 2, .filter = 0x00000100, .value = 0x00000100}, /* a second on ecx */
	    {.reg = 3, .filter = 0x80000000, .value = 0},	   /* edx: clear bit 31 */
	};
	struct sqb_cpuid_mod mods[] = {
	    {.leaf = 7, .subleaf = 1, .flags = 1, .first = 0, .count = 3}};
	struct sqb_cpu_template t = {.ncpuid = 1, .nregs = 3, .cpuid = mods, .regs = regs};
	uint32_t bad[2] = {0};

	(void)state;
	c.e[0] = (struct kvm_cpuid_entry2){.function = 7, .index = 0, .ecx = 0xaaaaaaaa};
	c.e[1] = (struct kvm_cpuid_entry2){
	    .function = 7, .index = 1, .eax = 0x11, .ecx = 0xfffffff0, .edx = 0xffffffff};
	c.e[2] = (struct kvm_cpuid_entry2){.function = 8, .index = 1, .ecx = 1};
	assert_int_equal(sqb_kvm_cpuid_apply(&c.h, &t, bad), 0);
	assert_int_equal(c.e[1].ecx, 0xfffffff5u); /* x bits kept, 0101 replaced */
	assert_int_equal(c.e[1].edx, 0x7fffffffu);
	assert_int_equal(c.e[1].eax, 0x11u);
	assert_int_equal(c.e[1].flags, 1u);
	assert_int_equal(c.e[0].ecx, 0xaaaaaaaau); /* another subleaf untouched */
	/* a leaf KVM does not have is refused, never added */
	mods[0].leaf = 0x4fffffff;
	assert_int_equal(sqb_kvm_cpuid_apply(&c.h, &t, bad), -ENOENT);
	assert_int_equal(bad[0], 0x4fffffffu);
	assert_int_equal(bad[1], 1u);
}
#endif

/* ---- guests ---- */

static const char *req(struct sqb_tc *t, const char *method, const char *path, const char *json,
		       int want)
{
	static char body[16384];
	int st = tc_req(t, method, path, json, body, sizeof(body));

	if (st != want)
		fail_msg("%s %s -> %d (wanted %d): %s", method, path, st, want, body);
	return body;
}

static void spawn(struct sqb_tc *t)
{
	char body[512];

	assert_int_equal(tc_spawn(t, squib_bin, (const char *const[]){"--level", "Info", NULL}, 1),
			 0);
	req(t, "PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":32}", 204);
	snprintf(body, sizeof(body), "{\"kernel_image_path\":\"%s/cpuid.elf\"}", guest_dir);
	req(t, "PUT", "/boot-source", body, 204);
}

struct seen {
	uint64_t cpuid[5][4]; /* tests/guests/cpuid.c's leaves, in order */
	uint64_t msr[2];      /* 0x277, 0x1a0 */
};

static void wait_done(struct sqb_tc *t)
{
	if (tc_wait_serial(t, "CPUID done", 10000) < 0) {
		char *s = tc_read_file(t->serial), *e = tc_read_file(t->errlog);
		fail_msg("the cpuid guest did not finish; serial: %.1500s\nlog: %.1500s",
			 s ? s : "", e ? e : "");
	}
}

static void parse_seen(struct sqb_tc *t, struct seen *s)
{
	char *out = tc_read_file(t->serial), *p;
	int nc = 0, nm = 0;

	assert_non_null(out);
	for (p = out; (p = strstr(p, "CPUID 0x")) && nc < 5; p++) {
		uint64_t l, sub;
		if (sscanf(p, "CPUID %lx %lx %lx %lx %lx %lx", &l, &sub, &s->cpuid[nc][0],
			   &s->cpuid[nc][1], &s->cpuid[nc][2], &s->cpuid[nc][3]) == 6)
			nc++;
	}
	for (p = out; (p = strstr(p, "MSR 0x")) && nm < 2; p++) {
		uint64_t idx;
		if (sscanf(p, "MSR %lx %lx", &idx, &s->msr[nm]) == 2)
			nm++;
	}
	free(out);
	assert_int_equal(nc, 5);
	assert_int_equal(nm, 2);
}

static void run_guest(const char *tmpl, struct seen *s)
{
	struct sqb_tc t;

	spawn(&t);
	if (tmpl)
		req(&t, "PUT", "/cpu-config", tmpl, 204);
	req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	/* after boot: parsed first, then Firecracker's post-boot refusal */
	if (tmpl)
		assert_non_null(strstr(req(&t, "PUT", "/cpu-config", tmpl, 400),
				       "The requested operation is not supported after starting "
				       "the microVM."));
	wait_done(&t);
	parse_seen(&t, s);
	tc_stop(&t);
}

/* leaf 1 ecx: clear SSE3 (bit 0) and set bit 30 (RDRAND, x elsewhere);
 * leaf 0x80000001 ecx: set bit 0 (LAHF), clear bit 5 (ABM/LZCNT), edx all x;
 * PAT (0x277): its top byte becomes 0x01 (WC); IA32_MISC_ENABLE (0x1a0):
 * clear bit 0, which squib's boot value (fast strings) wins over. */
#define GUEST_TEMPLATE                                                                             \
	"{\"cpuid_modifiers\": ["                                                                  \
	"{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, \"modifiers\": ["                 \
	"{\"register\": \"ecx\", \"bitmap\": \"0bx1xxxxxxxxxxxxxxxxxxxxxxxxxxxxx0\"}]},"           \
	"{\"leaf\": \"0x80000001\", \"subleaf\": \"0x0\", \"flags\": 0, \"modifiers\": ["          \
	"{\"register\": \"ecx\", \"bitmap\": \"0b0xxxx1\"},"                                       \
	"{\"register\": \"edx\", \"bitmap\": \"0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}],"          \
	"\"msr_modifiers\": ["                                                                     \
	"{\"addr\": \"0x277\", \"bitmap\": "                                                       \
	"\"0b00000001xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"                                \
	"xxxxxxxxxxx\"},"                                                                          \
	"{\"addr\": \"0x1a0\", \"bitmap\": \"0b0\"}]}"

static void test_guest_sees_template(void **state)
{
	struct seen base, tm;

	(void)state;
	run_guest(NULL, &base);
	run_guest(GUEST_TEMPLATE, &tm);
	/* PVM (kvm_pvm) on AMD: a guest's CPUID does not exit (no CPUID
	 * faulting), so neither squib's filter nor a template reaches what the
	 * guest executes; there the CPUID path is proven on the host side
	 * (runtime.kvm_faults test_cpu_template: what KVM_SET_CPUID2 gets). */
	if (access("/sys/module/kvm_pvm", F_OK) == 0) {
		printf("kvm_pvm host: guest CPUID is the CPU's own (leaf 1 ecx %08lx with and "
		       "%08lx without the template); only the MSR is checked in the guest\n",
		       (unsigned long)tm.cpuid[0][2], (unsigned long)base.cpuid[0][2]);
	} else {
		/* exactly the template's bits changed, every other bit kept */
		assert_int_equal(tm.cpuid[0][2],
				 (base.cpuid[0][2] & ~0x40000001ULL) | 0x40000000ULL);
		assert_int_equal(tm.cpuid[3][2], (base.cpuid[3][2] & ~0x21ULL) | 0x1ULL);
		for (int l = 0; l < 5; l++)
			for (int r = 0; r < 4; r++)
				if (!((l == 0 || l == 3) && r == 2))
					assert_int_equal(tm.cpuid[l][r], base.cpuid[l][r]);
		/* the test could fail: the template changed what the guest sees */
		assert_true(tm.cpuid[0][2] != base.cpuid[0][2] ||
			    tm.cpuid[3][2] != base.cpuid[3][2]);
	}
	assert_int_equal(tm.msr[0], (base.msr[0] & 0x00ffffffffffffffULL) | 0x0100000000000000ULL);
	assert_int_equal(tm.msr[1], base.msr[1]);
	assert_true(tm.msr[0] != base.msr[0]);
}

static void start_fails(const char *tmpl, const char *want)
{
	struct sqb_tc t;
	const char *b;

	spawn(&t);
	req(&t, "PUT", "/cpu-config", tmpl, 204);
	b = req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 400);
	if (!strstr(b, want))
		fail_msg("InstanceStart: %s; wanted '%s'", b, want);
	tc_stop(&t);
}

static void test_start_errors(void **state)
{
	(void)state;
	start_fails(
	    "{\"cpuid_modifiers\": [{\"leaf\": \"0x4fffffff\", \"subleaf\": \"0x3\", "
	    "\"flags\": 0, \"modifiers\": []}]}",
	    "Template changes a CPUID entry not supported by KVM: Leaf: 4fffffff, Subleaf: 3");
	start_fails("{\"msr_modifiers\": [{\"addr\": \"0x12345\", \"bitmap\": \"0b1\"}]}",
		    "Template changes an MSR entry not supported by KVM: Register Address: 12345");
	start_fails("{\"kvm_capabilities\": [\"999999\"]}", "Missing KVM capabilities: 0xf423f");
	/* "!N" drops a capability from the check: still starts */
	{
		struct sqb_tc t;

		spawn(&t);
		req(&t, "PUT", "/cpu-config", "{\"kvm_capabilities\": [\"!999999\", \"!0x1\"]}",
		    400);
		/* in order: added, then dropped again (combine_capabilities) */
		req(&t, "PUT", "/cpu-config", "{\"kvm_capabilities\": [\"999999\", \"!999999\"]}",
		    204);
		req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
		wait_done(&t);
		tc_stop(&t);
	}
}

/* --config-file: "cpu-config" as a path to a template (and a bad one). */
static void test_config_file(void **state)
{
	char path[256], tpath[256], cfg[1024];
	struct sqb_tc t;
	struct seen s;
	FILE *f;

	(void)state;
	snprintf(tpath, sizeof(tpath), "/tmp/squib-cpucfg-%d.json", (int)getpid());
	f = fopen(tpath, "w");
	assert_non_null(f);
	fputs(GUEST_TEMPLATE, f);
	fclose(f);
	snprintf(path, sizeof(path), "/tmp/squib-cpucfg-vm-%d.json", (int)getpid());
	snprintf(cfg, sizeof(cfg),
		 "{\"boot-source\": {\"kernel_image_path\": \"%s/cpuid.elf\"}, \"machine-config\": "
		 "{\"vcpu_count\": 1, \"mem_size_mib\": 32}, \"cpu-config\": \"%s\"}",
		 guest_dir, tpath);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(cfg, f);
	fclose(f);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", path, NULL},
				  0),
			 0);
	wait_done(&t);
	parse_seen(&t, &s);
	tc_stop(&t);
	assert_int_equal(s.msr[0] >> 56, 1);
	/* an inline template with an unknown field fails the whole file */
	snprintf(cfg, sizeof(cfg),
		 "{\"boot-source\": {\"kernel_image_path\": \"%s/cpuid.elf\"}, \"cpu-config\": "
		 "{\"foo\": false}}",
		 guest_dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(cfg, f);
	fclose(f);
	assert_int_equal(tc_spawn(&t, squib_bin,
				  (const char *const[]){"--no-api", "--config-file", path, NULL},
				  0),
			 0);
	assert_true(tc_wait_exit(&t, 10000) > 0);
	{
		char *e = tc_read_file(t.errlog);
		assert_non_null(e);
		if (!strstr(e, "unknown field `foo`"))
			fail_msg("log: %.2000s", e);
		free(e);
	}
	tc_stop(&t);
	unlink(path);
	unlink(tpath);
}

/* Firecracker's own template for this host's vendor: accepted and the guest
 * starts (T2A on AMD, T2S on Intel). */
static void test_firecracker_template(void **state)
{
	char path[512], line[256] = "", *json;
	const char *name = NULL;
	struct sqb_tc t;
	struct seen s;
	FILE *f = fopen("/proc/cpuinfo", "r");

	(void)state;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "vendor_id", 9)) {
			name = strstr(line, "AuthenticAMD")   ? "T2A"
			       : strstr(line, "GenuineIntel") ? "T2S"
							      : NULL;
			break;
		}
	if (f)
		fclose(f);
	if (!name)
		skip();
	snprintf(path, sizeof(path), "%s/%s.json", tmpl_dir, name);
	json = tc_read_file(path);
	assert_non_null(json);
	spawn(&t);
	req(&t, "PUT", "/cpu-config", json, 204);
	free(json);
	req(&t, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", 204);
	wait_done(&t);
	parse_seen(&t, &s);
	tc_stop(&t);
	if (!strcmp(name, "T2A")) { /* leaf 1 edx: T2A sets bits 7, 12, clears 18, 21, 22 */
		assert_int_equal(s.cpuid[0][3] & ((1u << 7) | (1u << 12)), (1u << 7) | (1u << 12));
		assert_int_equal(s.cpuid[0][3] & ((1u << 18) | (1u << 21) | (1u << 22)), 0);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test(test_bitmap_parse),
		cmocka_unit_test(test_number_parse),
		cmocka_unit_test(test_api_parse),
#if defined(__x86_64__)
		cmocka_unit_test(test_cpuid_apply),
#endif
	};
	const struct CMUnitTest guests[] = {
	    cmocka_unit_test(test_guest_sees_template),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_config_file),
	    cmocka_unit_test(test_firecracker_template),
	};

	if (argc >= 2 && !strcmp(argv[1], "unit"))
		return cmocka_run_group_tests_name("cpu_config.unit", unit, NULL, NULL);
	if (argc >= 5 && !strcmp(argv[1], "guests")) {
		squib_bin = argv[2];
		guest_dir = argv[3];
		tmpl_dir = argv[4];
		if (access("/dev/kvm", R_OK | W_OK) != 0) {
			printf("no usable /dev/kvm: skipped\n");
			return 77;
		}
		return cmocka_run_group_tests_name("cpu_config.guests", guests, NULL, NULL);
	}
	fprintf(stderr, "usage: %s unit | guests SQUIB GUEST_DIR TEMPLATE_DIR\n", argv[0]);
	return 2;
}
