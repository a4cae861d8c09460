/* Firecracker's static CPU templates (machine-config "cpu_template": C3, T2,
 * T2S, T2CL, T2A on x86_64) as data: each is a custom template (the same
 * struct sqb_cpu_template PUT /cpu-config builds) applied by the same code
 * at InstanceStart, after Firecracker's host vendor and model check
 * (docs/cpu-templates.md, "Static templates").
 *
 *   "T2A" ──> static_tmpls[] ──(host vendor + CPUID.1:EAX model check)──>
 *             rows {leaf, subleaf, flags, reg, filter, value} + msrs
 *         ──> struct sqb_cpu_template (heap) ──> sqb_vm_create
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "ctl.h"
#include "json_fields.h"

#define MSG_GET_TEMPLATE "Start microvm error: Failed to get CPU template: "

#if defined(__x86_64__)

/* Firecracker's StaticCpuTemplate variants in declaration order: serde's
 * "unknown variant" message lists them so. */
const char *const sqb_cpu_static_names[] = {"C3", "T2", "T2S", "None", "T2CL", "T2A", NULL};

enum { EAX = 0, EBX = 1, ECX = 2, EDX = 3 }; /* struct sqb_cpu_reg_mod.reg */

/* One register modifier of one CPUID leaf: the bits set in filter take
 * value's bits, the others are kept.  Rows of one (leaf, subleaf) are
 * consecutive; flags is the entry's KVM_CPUID_FLAG_* (1: the subleaf is
 * significant). */
struct static_row {
	uint32_t leaf, subleaf, flags;
	unsigned int reg;
	uint32_t filter, value;
};

struct static_msr {
	uint32_t addr;
	uint64_t filter, value;
};

/* CPUID.1:EAX of the CPUs a template may run on, compared on Firecracker's
 * CpuModel fields (stepping, model, family, extended model and family):
 * the processor type and the reserved bits are not compared. */
#define FMS_MASK	 0x0fff0fffu
#define FMS_SKYLAKE	 0x00050654u
#define FMS_CASCADE_LAKE 0x00050657u
#define FMS_ICE_LAKE	 0x000606a6u
#define FMS_MILAN	 0x00a00f11u
#define VENDOR_INTEL	 "GenuineIntel"
#define VENDOR_AMD	 "AuthenticAMD"
#define N(a)		 (unsigned int)(sizeof(a) / sizeof((a)[0]))

/* Every template hides the CPU's identity (leaf 1 EAX: family 6, an Ivy
 * Bridge for C3, a Haswell for the T2 family), the host-only leaf 1
 * features (DTES64, MONITOR, DS-CPL, VMX, ..., PBE), and the leaf 7 / 0xd
 * features the instance type it mimics lacks (AVX-512, MPX, SGX, PKU, ...). */
static const struct static_row c3_cpuid[] = {
    {0x1, 0x0, 0, EAX, 0x0fff3fff, 0x000306e4}, /* family/model/stepping */
    {0x1, 0x0, 0, ECX, 0x0040dd3c, 0x00000000}, /* DTES64 .. PDCM, FMA, MOVBE off */
    {0x1, 0x0, 0, EDX, 0xa8641080, 0x00001080}, /* MCE, MTRR on; PSN, DS, ACPI, SS, TM, PBE off */
    {0x7, 0x0, 1, EBX, 0xffafdd3c, 0x00000000}, /* SGX, BMI1/2, AVX2, AVX-512, SHA, ... off */
    {0x7, 0x0, 1, ECX, 0x4041481e, 0x00000000}, /* VBMI, UMIP, PKU, VNNI, LA57, RDPID, ... */
    {0x7, 0x0, 1, EDX, 0x0000000c, 0x00000000}, /* AVX512_4VNNIW, AVX512_4FMAPS */
    {0xd, 0x0, 1, EAX, 0x000002f8, 0x00000000}, /* MPX, AVX-512 and PKRU state */
    {0xd, 0x1, 1, EAX, 0x0000000e, 0x00000000}, /* XSAVEC, XGETBV, XSAVES */
    {0x80000001, 0x0, 0, ECX, 0x00000120, 0x00000000}, /* LZCNT, PREFETCHW */
    {0x80000001, 0x0, 0, EDX, 0x04000000, 0x00000000}, /* 1-GByte pages */
};

static const struct static_row t2_cpuid[] = {
    {0x1, 0x0, 0, EAX, 0x0fff3fff, 0x000306f2}, /* family/model/stepping */
    {0x1, 0x0, 0, ECX, 0x0004cdfc, 0x00000000}, /* DTES64 .. TM2, CNXT-ID, SDBG, xTPR, PDCM, DCA */
    {0x1, 0x0, 0, EDX, 0xe8641080, 0x00001080}, /* MCE, MTRR on; PSN .. PBE, IA-64 off */
    {0x7, 0x0, 1, EBX, 0xffefda14, 0x00000200}, /* ERMS on; SGX, HLE, RTM, AVX-512, SHA, ... off */
    {0x7, 0x0, 1, ECX, 0x40415f5e, 0x00000000}, /* VBMI/VBMI2, UMIP, PKU, GFNI, VAES, ... off */
    {0x7, 0x0, 1, EDX, 0x0000011c, 0x00000000}, /* 4VNNIW, 4FMAPS, FSRM, VP2INTERSECT */
    {0xd, 0x0, 1, EAX, 0x000002f8, 0x00000000}, /* MPX, AVX-512 and PKRU state */
    {0xd, 0x1, 1, EAX, 0x0000000e, 0x00000000}, /* XSAVEC, XGETBV, XSAVES */
    {0x80000001, 0x0, 0, ECX, 0x20000100, 0x00000000}, /* PREFETCHW, MONITORX */
    {0x80000001, 0x0, 0, EDX, 0x04000000, 0x00000000}, /* 1-GByte pages */
    {0x80000008, 0x0, 0, EBX, 0x00000200, 0x00000000}, /* WBNOINVD */
};

/* T2S: T2's CPUID (the same rows in Firecracker) and a fixed
 * IA32_ARCH_CAPABILITIES, the same on every host it may run on. */
static const struct static_row t2s_cpuid[] = {
    {0x1, 0x0, 0, EAX, 0x0fff3fff, 0x000306f2},
    {0x1, 0x0, 0, ECX, 0x0004cdfc, 0x00000000},
    {0x1, 0x0, 0, EDX, 0xe8641080, 0x00001080},
    {0x7, 0x0, 1, EBX, 0xffefda14, 0x00000200},
    {0x7, 0x0, 1, ECX, 0x40415f5e, 0x00000000},
    {0x7, 0x0, 1, EDX, 0x0000011c, 0x00000000},
    {0xd, 0x0, 1, EAX, 0x000002f8, 0x00000000},
    {0xd, 0x1, 1, EAX, 0x0000000e, 0x00000000},
    {0x80000001, 0x0, 0, ECX, 0x20000100, 0x00000000},
    {0x80000001, 0x0, 0, EDX, 0x04000000, 0x00000000},
    {0x80000008, 0x0, 0, EBX, 0x00000200, 0x00000000},
};
static const struct static_msr t2s_msrs[] = {
    {0x10a, 0xffffffffffffffffULL, 0x000000000c0a0c4cULL}, /* IA32_ARCH_CAPABILITIES */
};

/* T2CL: T2 plus the AMD-only 0x80000001 bits (SSE4A, MisAlignSse, MmxExt,
 * MMX, FXSR, FFXSR) off, and IA32_ARCH_CAPABILITIES with the mitigation
 * bits KVM passes through kept and every other bit cleared. */
static const struct static_row t2cl_cpuid[] = {
    {0x1, 0x0, 0, EAX, 0x0fff3fff, 0x000306f2},
    {0x1, 0x0, 0, ECX, 0x0004cdfc, 0x00000000},
    {0x1, 0x0, 0, EDX, 0xe8641080, 0x00001080},
    {0x7, 0x0, 1, EBX, 0xffefda14, 0x00000200},
    {0x7, 0x0, 1, ECX, 0x40415f5e, 0x00000000},
    {0x7, 0x0, 1, EDX, 0x0000011c, 0x00000000},
    {0xd, 0x0, 1, EAX, 0x000002f8, 0x00000000},
    {0xd, 0x1, 1, EAX, 0x0000000e, 0x00000000},
    {0x80000001, 0x0, 0, ECX, 0x200001c0, 0x00000000},
    {0x80000001, 0x0, 0, EDX, 0x07c00000, 0x00000000},
    {0x80000008, 0x0, 0, EBX, 0x00000200, 0x00000000},
};
static const struct static_msr t2cl_msrs[] = {
    {0x10a, 0xffffffffe2f51e00ULL, 0x0000000000000000ULL}, /* IA32_ARCH_CAPABILITIES */
};

/* T2A: T2 seen from an AMD Milan (SVM, SSE4A, MisAlignSse, MmxExt, FFXSR
 * off; CLZERO off, RstrFpErrPtrs and the IBRS/LMSLE bits of 0x80000008 set). */
static const struct static_row t2a_cpuid[] = {
    {0x1, 0x0, 0, EAX, 0x0fff3fff, 0x000306f2},
    {0x1, 0x0, 0, ECX, 0x0004cdfc, 0x00000000},
    {0x1, 0x0, 0, EDX, 0xe8641080, 0x00001080},
    {0x7, 0x0, 1, EBX, 0xffefda14, 0x00000200},
    {0x7, 0x0, 1, ECX, 0x40415f5e, 0x00000000},
    {0x7, 0x0, 1, EDX, 0x0000011c, 0x00000000},
    {0xd, 0x0, 1, EAX, 0x000002f8, 0x00000000},
    {0xd, 0x1, 1, EAX, 0x0000000e, 0x00000000},
    {0x80000001, 0x0, 0, ECX, 0x200001c4, 0x00000000},
    {0x80000001, 0x0, 0, EDX, 0x06400000, 0x00000000},
    {0x80000008, 0x0, 0, EBX, 0x001c0205, 0x001c0004},
};

static const uint32_t models_c3_t2[] = {FMS_SKYLAKE, FMS_CASCADE_LAKE, FMS_ICE_LAKE};
static const uint32_t models_t2s[] = {FMS_SKYLAKE, FMS_CASCADE_LAKE};
static const uint32_t models_t2cl[] = {FMS_CASCADE_LAKE, FMS_ICE_LAKE};
static const uint32_t models_t2a[] = {FMS_MILAN};

/* static_cpu_templates/mod.rs get_supported_vendor / get_supported_cpu_models */
static const struct static_tmpl {
	const char *name, *vendor;
	const uint32_t *models;
	unsigned int nmodels;
	const struct static_row *cpuid;
	unsigned int ncpuid;
	const struct static_msr *msrs;
	unsigned int nmsrs;
} static_tmpls[] = {
    {"C3", VENDOR_INTEL, models_c3_t2, N(models_c3_t2), c3_cpuid, N(c3_cpuid), NULL, 0},
    {"T2", VENDOR_INTEL, models_c3_t2, N(models_c3_t2), t2_cpuid, N(t2_cpuid), NULL, 0},
    {"T2S", VENDOR_INTEL, models_t2s, N(models_t2s), t2s_cpuid, N(t2s_cpuid), t2s_msrs,
     N(t2s_msrs)},
    {"T2CL", VENDOR_INTEL, models_t2cl, N(models_t2cl), t2cl_cpuid, N(t2cl_cpuid), t2cl_msrs,
     N(t2cl_msrs)},
    {"T2A", VENDOR_AMD, models_t2a, N(models_t2a), t2a_cpuid, N(t2a_cpuid), NULL, 0},
};

static const struct static_tmpl *find(const char *name)
{
	for (unsigned int i = 0; i < N(static_tmpls); i++)
		if (!strcmp(static_tmpls[i].name, name))
			return &static_tmpls[i];
	return NULL;
}

void sqb_cpu_host_probe(struct sqb_cpu_host *h)
{
	unsigned int a, b, c, d;

	memset(h, 0, sizeof(*h));
	/* cpuid/common.rs get_vendor_id_from_host: EBX, EDX, ECX of leaf 0 */
	__cpuid(0, a, b, c, d);
	memcpy(h->vendor, &b, 4);
	memcpy(h->vendor + 4, &d, 4);
	memcpy(h->vendor + 8, &c, 4);
	__cpuid(1, a, b, c, d);
	h->fms = a;
}

int sqb_cpu_static_refused(const char *name, char *err, size_t errlen)
{
	(void)name, (void)err, (void)errlen;
	return 0; /* every x86_64 template is applied */
}

int sqb_cpu_static_build(const char *name, struct sqb_cpu_template **out)
{
	const struct static_tmpl *s = find(name);
	struct sqb_cpu_template *t;

	*out = NULL;
	if (!s)
		return -ENOENT;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cpuid = calloc(s->ncpuid ? s->ncpuid : 1, sizeof(*t->cpuid));
	t->regs = calloc(s->ncpuid ? s->ncpuid : 1, sizeof(*t->regs));
	t->msrs = calloc(s->nmsrs ? s->nmsrs : 1, sizeof(*t->msrs));
	if (!t->cpuid || !t->regs || !t->msrs) {
		sqb_cpu_template_free(t);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < s->ncpuid; i++) {
		const struct static_row *r = &s->cpuid[i];
		struct sqb_cpuid_mod *m = t->ncpuid ? &t->cpuid[t->ncpuid - 1] : NULL;

		if (!m || m->leaf != r->leaf || m->subleaf != r->subleaf) {
			m = &t->cpuid[t->ncpuid++];
			*m = (struct sqb_cpuid_mod){
			    .leaf = r->leaf, .subleaf = r->subleaf, .flags = r->flags, .first = i};
		}
		m->count++;
		t->regs[t->nregs++] =
		    (struct sqb_cpu_reg_mod){.reg = r->reg, .filter = r->filter, .value = r->value};
	}
	for (unsigned int i = 0; i < s->nmsrs; i++)
		t->msrs[t->nmsrs++] = (struct sqb_msr_mod){.addr = s->msrs[i].addr,
							   .filter = s->msrs[i].filter,
							   .value = s->msrs[i].value};
	*out = t;
	return 0;
}

/* x86_64/custom_cpu_template.rs get_cpu_template for a static template:
 * the host's vendor, then its model, then the template. */
int sqb_cpu_static_get(const char *name, const struct sqb_cpu_host *host,
		       struct sqb_cpu_template **out, char *err, size_t errlen)
{
	const struct static_tmpl *s = find(name);
	unsigned int i;
	int rc;

	*out = NULL;
	if (!s) { /* the API admits none other: a programmer error */
		snprintf(err, errlen, MSG_GET_TEMPLATE "Invalid static CPU template: %s", name);
		return -1;
	}
	if (memcmp(host->vendor, s->vendor, 12)) {
		snprintf(err, errlen,
			 MSG_GET_TEMPLATE
			 "CPU vendor mismatched between actual CPU and CPU template.");
		return -1;
	}
	for (i = 0; i < s->nmodels && (host->fms & FMS_MASK) != s->models[i]; i++)
		;
	if (i == s->nmodels) {
		snprintf(err, errlen,
			 MSG_GET_TEMPLATE
			 "The current CPU model is not permitted to apply the CPU template.");
		return -1;
	}
	if (!strcmp(name, "C3") && (host->fms & FMS_MASK) == FMS_SKYLAKE)
		sqb_ctl_log(
		    SQB_CTL_WARN,
		    "On processors that do not enumerate FBSDP_NO, PSDP_NO and SBDR_SSDP_NO "
		    "on IA32_ARCH_CAPABILITIES MSR, the guest kernel does not apply the "
		    "mitigation against MMIO stale data vulnerability.");
	rc = sqb_cpu_static_build(name, out);
	if (rc < 0) {
		snprintf(err, errlen, "Start microvm error: Cannot allocate memory (os error 12)");
		return -1;
	}
	return 0;
}

#else /* aarch64 */

/* aarch64/static_cpu_templates/mod.rs: V1N1 (Neoverse V1 shown as N1) is
 * register modifiers only, which squib's arm64 path does not apply yet. */
const char *const sqb_cpu_static_names[] = {"V1N1", "None", NULL};

void sqb_cpu_host_probe(struct sqb_cpu_host *h)
{
	memset(h, 0, sizeof(*h));
}

int sqb_cpu_static_refused(const char *name, char *err, size_t errlen)
{
	if (!strcmp(name, "None"))
		return 0;
	snprintf(err, errlen,
		 "cpu_template `%s` is not supported by squib on aarch64 yet (its reg_modifiers "
		 "are not applied); see docs/cpu-templates.md",
		 name);
	return -1;
}

int sqb_cpu_static_build(const char *name, struct sqb_cpu_template **out)
{
	(void)name;
	*out = NULL;
	return -ENOENT;
}

int sqb_cpu_static_get(const char *name, const struct sqb_cpu_host *host,
		       struct sqb_cpu_template **out, char *err, size_t errlen)
{
	(void)host;
	*out = NULL;
	snprintf(err, errlen, MSG_GET_TEMPLATE "Invalid static CPU template: %s", name);
	return -1;
}

#endif

/* A snapshot's vm_config_json (GET /vm/config when it was taken):
 * "machine-config"."cpu_template" is the static template the VM ran with
 * (persist.rs VmInfo.cpu_template), absent when None or custom. */
int sqb_cpu_static_from_vm_config(struct yajl_val_s *root, const char **name, char *err,
				  size_t errlen)
{
	const char *path[] = {"machine-config", "cpu_template", NULL};
	yajl_val v = root ? yajl_tree_get(root, path, yajl_t_any) : NULL;

	*name = "None";
	if (!v || YAJL_IS_NULL(v))
		return 0;
	for (unsigned int i = 0; YAJL_IS_STRING(v) && sqb_cpu_static_names[i]; i++)
		if (!strcmp(sqb_cpu_static_names[i], v->u.string)) {
			*name = sqb_cpu_static_names[i];
			return 0;
		}
	snprintf(err, errlen,
		 "machine-config.cpu_template: %s%.32s%s is not a CPU template of "
		 "this architecture",
		 YAJL_IS_STRING(v) ? "`" : "", YAJL_IS_STRING(v) ? v->u.string : "(not a string)",
		 YAJL_IS_STRING(v) ? "`" : "");
	return -1;
}
