/* Per-vCPU CPUID normalization with Firecracker's rules (its
 * cpu_config/x86_64/cpuid normalize.rs, intel/normalize.rs and
 * amd/normalize.rs): topology, caches, brand string and the few feature
 * bits it fixes.  Pure over a struct kvm_cpuid2 and the host's own answers;
 * docs/cpuid.md lists every field. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "kvm_cpuid_norm.h"

#define SIGNIFICANT_INDEX 1u /* KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic) */

static const char vendor_intel[12] = "GenuineIntel";
static const char vendor_amd[12] = "AuthenticAMD";

static const char intel_default_brand[] = "Intel(R) Xeon(R) Processor";
static const char intel_brand_base[] = "Intel(R) Xeon(R) Processor @";
static const char amd_brand[] = "AMD EPYC";

enum sqb_cpuid_vendor sqb_cpuid_vendor_of(const uint32_t v[3])
{
	char s[12];

	/* the vendor string is EBX, EDX, ECX in that order */
	memcpy(s, &v[0], 4);
	memcpy(s + 4, &v[2], 4);
	memcpy(s + 8, &v[1], 4);
	if (!memcmp(s, vendor_intel, 12))
		return SQB_CPUID_INTEL;
	if (!memcmp(s, vendor_amd, 12))
		return SQB_CPUID_AMD;
	return SQB_CPUID_OTHER;
}

void sqb_cpuid_host_read(struct sqb_cpuid_host *h)
{
	memset(h, 0, sizeof(*h));
#if defined(__x86_64__)
	unsigned int a, b, c, d, max_ext;

	__cpuid(0, a, b, c, d);
	h->vendor[0] = b;
	h->vendor[1] = c;
	h->vendor[2] = d;
	__cpuid(0x80000000, max_ext, b, c, d);
	if (max_ext >= 0x80000004)
		for (unsigned int i = 0; i < 3; i++) {
			uint32_t r[4];

			__cpuid(0x80000002 + i, r[0], r[1], r[2], r[3]);
			memcpy(h->brand + 16 * i, r, 16);
		}
	if (max_ext >= 0x80000005)
		__cpuid(0x80000005, h->l80000005[0], h->l80000005[1], h->l80000005[2],
			h->l80000005[3]);
	if (max_ext >= 0x80000006)
		__cpuid(0x80000006, h->l80000006[0], h->l80000006[1], h->l80000006[2],
			h->l80000006[3]);
	if (sqb_cpuid_vendor_of(h->vendor) != SQB_CPUID_AMD)
		return;
	if (max_ext >= 0x8000001e)
		__cpuid(0x8000001e, h->l8000001e[0], h->l8000001e[1], h->l8000001e[2],
			h->l8000001e[3]);
	/* AMD APM vol. 3: subleaves until CacheType (EAX[4:0]) is 0; bounded
	 * here so a host that never says 0 cannot loop us. */
	for (unsigned int s = 0; max_ext >= 0x8000001d && s < SQB_CPUID_HOST_MAX_CACHES; s++) {
		uint32_t *r = h->l8000001d[s];

		__cpuid_count(0x8000001d, s, r[0], r[1], r[2], r[3]);
		if (!(r[0] & 0x1f))
			break;
		h->n8000001d = s + 1;
	}
#endif
}

/* ---- helpers over the table ---- */

struct norm {
	struct kvm_cpuid2 *c;
	unsigned int cap;
	char *err;
	size_t errlen;
};

static int fail(struct norm *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct norm *n, int code, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (n->err && n->errlen) {
		/* KvmVcpuConfigureError::NormalizeCpuidError's text, then the cause */
		k = snprintf(n->err, n->errlen, "Failed to apply modifications to CPUID: ");
		if (k >= 0 && (size_t)k < n->errlen) {
			va_start(ap, fmt);
			vsnprintf(n->err + k, n->errlen - (size_t)k, fmt, ap);
			va_end(ap);
		}
	}
	return code;
}

static struct kvm_cpuid_entry2 *get(struct norm *n, uint32_t leaf, uint32_t sub)
{
	for (unsigned int i = 0; i < n->c->nent; i++)
		if (n->c->entries[i].function == leaf && n->c->entries[i].index == sub)
			return &n->c->entries[i];
	return NULL;
}

/* Firecracker's BTreeMap insert: replace the entry for (leaf, sub) or add
 * one.  NULL when the table is full. */
static struct kvm_cpuid_entry2 *put(struct norm *n, uint32_t leaf, uint32_t sub, uint32_t flags,
				    const uint32_t r[4])
{
	struct kvm_cpuid_entry2 *e = get(n, leaf, sub);

	if (!e) {
		if (n->c->nent >= n->cap)
			return NULL;
		e = &n->c->entries[n->c->nent++];
	}
	memset(e, 0, sizeof(*e));
	e->function = leaf;
	e->index = sub;
	e->flags = flags;
	e->eax = r[0];
	e->ebx = r[1];
	e->ecx = r[2];
	e->edx = r[3];
	return e;
}

/* Callers pass values that fit: the arguments are bounded up front. */
static void set_range(uint32_t *x, unsigned int lo, unsigned int hi, uint32_t v)
{
	uint32_t mask = (hi - lo == 31) ? UINT32_MAX : (((1u << (hi - lo + 1)) - 1) << lo);

	*x = (*x & ~mask) | ((v << lo) & mask);
}

static uint32_t get_range(uint32_t x, unsigned int lo, unsigned int hi)
{
	return (x >> lo) & ((hi - lo == 31) ? UINT32_MAX : ((1u << (hi - lo + 1)) - 1));
}

static void set_bit(uint32_t *x, unsigned int bit, int on)
{
	*x = (*x & ~(1u << bit)) | ((uint32_t)(on != 0) << bit);
}

static unsigned int next_pow2(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static unsigned int log2_pow2(unsigned int v)
{
	unsigned int l = 0;

	while ((1u << l) < v)
		l++;
	return l;
}

static int brand_apply(struct norm *n, const uint8_t b[48], const char *who)
{
	struct kvm_cpuid_entry2 *e[3];

	for (unsigned int i = 0; i < 3; i++)
		if (!(e[i] = get(n, 0x80000002 + i, 0)))
			return fail(
			    n, -ENOENT,
			    "Failed to apply modifications to %s CPUID: Failed to set brand "
			    "string: Missing brand string leaves 0x80000002, 0x80000003 and "
			    "0x80000004.",
			    who);
	for (unsigned int i = 0; i < 3; i++) {
		memcpy(&e[i]->eax, b + 16 * i, 4);
		memcpy(&e[i]->ebx, b + 16 * i + 4, 4);
		memcpy(&e[i]->ecx, b + 16 * i + 8, 4);
		memcpy(&e[i]->edx, b + 16 * i + 12, 4);
	}
	return 0;
}

/* ---- common (normalize.rs) ---- */

static int common(struct norm *n, const struct sqb_cpuid_host *h, unsigned int index,
		  unsigned int count, unsigned int cpu_bits)
{
	unsigned int per_core = 1u << cpu_bits;
	struct kvm_cpuid_entry2 *e;
	static const uint32_t zero[4];

	/* update_vendor_id: the host's vendor, KVM's max leaf */
	if (!(e = get(n, 0, 0)))
		return fail(n, -ENOENT,
			    "Failed to set vendor ID in leaf 0x0: Leaf 0x0 is missing "
			    "from CPUID.");
	e->ebx = h->vendor[0];
	e->ecx = h->vendor[1];
	e->edx = h->vendor[2];

	/* update_feature_info_entry */
	if (!(e = get(n, 1, 0)))
		return fail(n, -ENOENT,
			    "Failed to set feature information leaf: Leaf 0x1 is "
			    "missing from CPUID.");
	set_range(&e->ebx, 8, 15, 8); /* CLFLUSH line size, in 8-byte units */
	set_range(&e->ebx, 16, 23, next_pow2(count));
	set_range(&e->ebx, 24, 31, index); /* initial APIC ID */
	set_bit(&e->ecx, 15, 0);	   /* PDCM */
	set_bit(&e->ecx, 24, 1);	   /* TSC-deadline */
	set_bit(&e->ecx, 31, 1);	   /* hypervisor */
	set_bit(&e->edx, 28, count > 1);   /* HTT */

	/* update_extended_topology_entry: KVM no longer lists 0xB subleaf 1
	 * (Linux 6.2), Firecracker adds it; then every subleaf from 0 up. */
	if (!get(n, 0xb, 1) && !put(n, 0xb, 1, SIGNIFICANT_INDEX, zero))
		return fail(n, -E2BIG, "no room for CPUID leaf 0xb subleaf 1");
	for (uint32_t i = 0; (e = get(n, 0xb, i)) != NULL; i++) {
		e->eax = e->ebx = e->ecx = 0;
		e->edx = index; /* x2APIC ID */
		e->flags = SIGNIFICANT_INDEX;
		if (i == 0) { /* SMT level */
			set_range(&e->eax, 0, 4, cpu_bits);
			set_range(&e->ebx, 0, 15, per_core);
			set_range(&e->ecx, 8, 15, 1);
		} else if (i == 1) { /* core level */
			set_range(&e->eax, 0, 4, log2_pow2(next_pow2(SQB_CPUID_MAX_VCPUS)));
			set_range(&e->ebx, 0, 15, count);
			set_range(&e->ecx, 0, 7, i);
			set_range(&e->ecx, 8, 15, 2);
		} else { /* Firecracker warns and leaves an invalid level */
			e->ecx = i;
		}
	}

	/* update_extended_cache_features: the host's L1/L2/L3 descriptions */
	if (!(e = get(n, 0x80000005, 0)))
		return fail(n, -ENOENT,
			    "Failed to set extended cache features leaf: Leaf "
			    "0x80000005 is missing from CPUID.");
	e->eax = h->l80000005[0];
	e->ebx = h->l80000005[1];
	e->ecx = h->l80000005[2];
	e->edx = h->l80000005[3];
	if (!(e = get(n, 0x80000006, 0)))
		return fail(n, -ENOENT,
			    "Failed to set extended cache features leaf: Leaf "
			    "0x80000006 is missing from CPUID.");
	e->eax = h->l80000006[0];
	e->ebx = h->l80000006[1];
	e->ecx = h->l80000006[2];
	e->edx = h->l80000006[3] & ~0x00030000u; /* bits 17:16 reserved */
	return 0;
}

/* ---- Intel (intel/normalize.rs) ---- */

void sqb_cpuid_intel_brand(const uint8_t host[48], uint8_t out[48])
{
	size_t base = sizeof(intel_brand_base) - 1, i, j, len;

	memset(out, 0, 48);
	/* the frequency's unit: the first "THz", "GHz" or "MHz" */
	for (i = 0; i + 2 < 48; i++)
		if ((host[i] == 'T' || host[i] == 'G' || host[i] == 'M') && host[i + 1] == 'H' &&
		    host[i + 2] == 'z')
			break;
	if (i + 2 >= 48)
		goto dflt;
	/* back over digits and dots to a space, which the frequency keeps */
	for (j = i; j > 0; j--) {
		uint8_t ch = host[j - 1];

		if (ch == ' ')
			break;
		if (!((ch >= '0' && ch <= '9') || ch == '.'))
			goto dflt;
	}
	if (j == 0)
		goto dflt;
	j--; /* at the space */
	/* base, " <number>", then everything from the unit on (its padding too) */
	len = base + (i - j) + (48 - i);
	if (len > 48)
		goto dflt;
	memcpy(out, intel_brand_base, base);
	memcpy(out + base, host + j, i - j);
	memcpy(out + base + (i - j), host + i, 48 - i);
	return;
dflt:
	memset(out, 0, 48);
	memcpy(out, intel_default_brand, sizeof(intel_default_brand) - 1);
}

static int intel(struct norm *n, const struct sqb_cpuid_host *h, unsigned int count,
		 unsigned int per_core)
{
	struct kvm_cpuid_entry2 *e;
	uint8_t brand[48];
	unsigned int nb;

	/* update_deterministic_cache_entry: leaf 4 until an all-zero subleaf */
	for (uint32_t i = 0; (e = get(n, 4, i)) != NULL; i++) {
		if (!e->eax && !e->ebx && !e->ecx && !e->edx)
			break;
		switch (get_range(e->eax, 5, 7)) { /* cache level */
		case 1:
		case 2: /* L1 and L2: the threads of one core */
			set_range(&e->eax, 14, 25, per_core - 1);
			break;
		case 3: /* L3: every vCPU */
			set_range(&e->eax, 14, 25, count - 1);
			break;
		default:
			break;
		}
		set_range(&e->eax, 26, 31, count / per_core - 1); /* one package */
	}

	/* update_power_management_entry */
	if (!(e = get(n, 6, 0)))
		return fail(n, -ENOENT,
			    "Failed to apply modifications to Intel CPUID: Leaf 0x6 "
			    "is missing from CPUID.");
	set_bit(&e->eax, 1, 0); /* Turbo Boost */
	set_bit(&e->ecx, 3, 0); /* energy-performance bias */

	/* update_extended_feature_flags_entry */
	if (!(e = get(n, 7, 0)))
		return fail(n, -ENOENT,
			    "Failed to apply modifications to Intel CPUID: Leaf 0x7 / "
			    "subleaf 0 is missing from CPUID.");
	set_bit(&e->ebx, 6, 1);	 /* FDP_EXCPTN_ONLY */
	set_bit(&e->ebx, 13, 1); /* FPU CS/DS deprecated */
	set_bit(&e->ecx, 5, 0);	 /* WAITPKG */

	/* update_performance_monitoring_entry: no PMU */
	if (!(e = get(n, 0xa, 0)))
		return fail(n, -ENOENT,
			    "Failed to apply modifications to Intel CPUID: Leaf 0xA "
			    "is missing from CPUID.");
	e->eax = e->ebx = e->ecx = e->edx = 0;

	/* update_extended_topology_v2_entry: 0x1F, when KVM has it, is 0xB */
	if (get(n, 0x1f, 0)) {
		for (nb = 0; get(n, 0xb, nb); nb++)
			;
		for (uint32_t i = 0; i < nb; i++) {
			const struct kvm_cpuid_entry2 *b = get(n, 0xb, i);
			uint32_t r[4] = {b->eax, b->ebx, b->ecx, b->edx};

			if (!put(n, 0x1f, i, b->flags, r))
				return fail(n, -E2BIG, "no room for CPUID leaf 0x1f subleaf %u", i);
		}
	}

	sqb_cpuid_intel_brand(h->brand, brand);
	return brand_apply(n, brand, "Intel");
}

/* ---- AMD (amd/normalize.rs) ---- */

static int amd(struct norm *n, const struct sqb_cpuid_host *h, unsigned int index,
	       unsigned int count, unsigned int per_core)
{
	struct kvm_cpuid_entry2 *e;
	uint8_t brand[48] = {0};

#define AMD_FAIL(code, ...)                                                                        \
	fail(n, code, "Failed to apply modifications to AMD CPUID: " __VA_ARGS__)
	/* passthrough_cache_topology: only from an AMD host */
	if (sqb_cpuid_vendor_of(h->vendor) != SQB_CPUID_AMD)
		return AMD_FAIL(-EINVAL, "Failed to passthrough cache topology: The host vendor id "
					 "does not match AMD.");
	if (!put(n, 0x8000001e, 0, 0, h->l8000001e))
		return fail(n, -E2BIG, "no room for CPUID leaf 0x8000001e");
	for (uint32_t s = 0; s < h->n8000001d; s++)
		if (!put(n, 0x8000001d, s, SIGNIFICANT_INDEX, h->l8000001d[s]))
			return fail(n, -E2BIG, "no room for CPUID leaf 0x8000001d subleaf %u", s);

	/* update_structured_extended_entry: no IA32_ARCH_CAPABILITIES on AMD */
	if (!(e = get(n, 7, 0)))
		return AMD_FAIL(-ENOENT, "Missing leaf 0x7 / subleaf 0.");
	set_bit(&e->edx, 29, 0);

	/* update_extended_feature_fn_entry: TopologyExtensions (0x8000001D/E) */
	if (!(e = get(n, 0x80000001, 0)))
		return AMD_FAIL(-ENOENT, "Missing leaf 0x80000001.");
	set_bit(&e->ecx, 22, 1);

	/* update_amd_feature_entry: one package of `count` threads */
	if (!(e = get(n, 0x80000008, 0)))
		return AMD_FAIL(-ENOENT, "Failed to set feature entry leaf: Missing leaf "
					 "0x80000008.");
	set_range(&e->ecx, 12, 15, 7);	     /* ApicIdSize */
	set_range(&e->ecx, 0, 7, count - 1); /* NC */

	/* update_extended_cache_topology_entry */
	for (uint32_t i = 0; (e = get(n, 0x8000001d, i)) != NULL; i++) {
		switch (get_range(e->eax, 5, 7)) {
		case 1:
		case 2:
			set_range(&e->eax, 14, 25, per_core - 1);
			break;
		case 3:
			set_range(&e->eax, 14, 25, count - 1);
			break;
		default:
			break;
		}
	}

	/* update_extended_apic_id_entry */
	if (!(e = get(n, 0x8000001e, 0)))
		return AMD_FAIL(-ENOENT, "Failed to set extended APIC ID leaf: Missing leaf "
					 "0x8000001e.");
	e->eax = index;				    /* extended APIC ID */
	set_range(&e->ebx, 0, 7, index / per_core); /* compute unit (core) ID */
	set_range(&e->ebx, 8, 15, per_core - 1);    /* threads per compute unit */
	set_range(&e->ecx, 8, 10, 0);		    /* one node per processor */
	set_range(&e->ecx, 0, 7, 0);		    /* node ID */
#undef AMD_FAIL

	memcpy(brand, amd_brand, sizeof(amd_brand) - 1);
	return brand_apply(n, brand, "AMD");
}

int sqb_cpuid_normalize(struct kvm_cpuid2 *c, unsigned int cap, const struct sqb_cpuid_host *host,
			unsigned int index, unsigned int count, unsigned int threads_per_core,
			char *err, size_t errlen)
{
	struct norm n = {c, cap, err, errlen};
	unsigned int cpu_bits = threads_per_core == 2 ? 1 : 0;
	struct kvm_cpuid_entry2 *l0;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!c || !host || c->nent > cap || count < 1 || count > SQB_CPUID_MAX_VCPUS ||
	    index >= count || (threads_per_core != 1 && threads_per_core != 2))
		return fail(&n, -EINVAL, "bad arguments (vCPU %u of %u, %u threads per core)",
			    index, count, threads_per_core);
	if ((rc = common(&n, host, index, count, cpu_bits)) < 0)
		return rc;
	l0 = get(&n, 0, 0);
	switch (sqb_cpuid_vendor_of((uint32_t[3]){l0->ebx, l0->ecx, l0->edx})) {
	case SQB_CPUID_INTEL:
		return intel(&n, host, count, threads_per_core);
	case SQB_CPUID_AMD:
		return amd(&n, host, index, count, threads_per_core);
	default:
		return 0;
	}
}
