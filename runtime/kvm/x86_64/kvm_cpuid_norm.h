/* Firecracker's per-vCPU CPUID normalization (cpu_config/x86_64/cpuid:
 * normalize.rs, intel/normalize.rs, amd/normalize.rs) as pure functions over
 * a struct kvm_cpuid2, so fixed tables can be checked without a CPU
 * (docs/cpuid.md).
 *
 *   KVM_GET_SUPPORTED_CPUID ──template──> VM table (vm->arch.cpuid)
 *        ──copy + sqb_cpuid_normalize(index, count, threads/core, host)──>
 *        KVM_SET_CPUID2 of vCPU `index`
 *
 *   host facts (struct sqb_cpuid_host): what Firecracker reads with the CPUID
 *   instruction itself, not from KVM: vendor (leaf 0), L1/L2/L3 cache leaves
 *   0x80000005/6, the brand string 0x80000002..4 and, on AMD, the cache and
 *   topology leaves 0x8000001D/0x8000001E it passes through.
 */
#ifndef SQB_KVM_CPUID_NORM_H
#define SQB_KVM_CPUID_NORM_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

/* Firecracker's MAX_SUPPORTED_VCPUS (machine_config.rs): leaf 0xB's core
 * level shifts the x2APIC ID by log2 of its next power of two. */
#define SQB_CPUID_MAX_VCPUS 32u
/* Entries normalization may add to a table: 0xB subleaf 1, the copies of
 * 0xB into 0x1F (Intel), 0x8000001E and the 0x8000001D subleaves (AMD). */
#define SQB_CPUID_NORM_EXTRA	  48u
#define SQB_CPUID_HOST_MAX_CACHES 16u

enum sqb_cpuid_vendor { SQB_CPUID_OTHER = 0, SQB_CPUID_INTEL, SQB_CPUID_AMD };

struct sqb_cpuid_host {
	uint32_t vendor[3];    /* leaf 0 EBX, ECX, EDX */
	uint32_t l80000005[4]; /* EAX..EDX; all zero if the host lacks it */
	uint32_t l80000006[4];
	uint8_t brand[48];     /* 0x80000002..4, EAX..EDX each, bytes in order */
	uint32_t l8000001e[4]; /* AMD: processor topology */
	uint32_t l8000001d[SQB_CPUID_HOST_MAX_CACHES][4]; /* AMD: caches until type 0 */
	unsigned int n8000001d;
};

/* The running CPU's answers (the CPUID instruction). */
void sqb_cpuid_host_read(struct sqb_cpuid_host *h);

/* Normalize c (c->nent entries, room for cap) for vCPU `index` of `count`
 * with threads_per_core 1 or 2, as Firecracker's Cpuid::normalize does:
 * common leaves (0, 1, 0xB, 0x80000005/6), then Intel's (4, 6, 7, 0xA, 0x1F,
 * brand) or AMD's (7, 0x80000001, 0x80000008, 0x8000001D/1E, brand) by the
 * vendor the host gives leaf 0.  Another vendor gets the common part only.
 * Returns 0, or a negative errno with a one-line reason in err (a leaf
 * Firecracker needs is missing, -ENOENT; the table has no room, -E2BIG;
 * a bad argument, -EINVAL). */
int sqb_cpuid_normalize(struct kvm_cpuid2 *c, unsigned int cap, const struct sqb_cpuid_host *host,
			unsigned int index, unsigned int count, unsigned int threads_per_core,
			char *err, size_t errlen);

/* The vendor a leaf-0 register triple names. */
enum sqb_cpuid_vendor sqb_cpuid_vendor_of(const uint32_t vendor[3]);

/* Firecracker's Intel brand string from the host's: "Intel(R) Xeon(R)
 * Processor @ <host frequency>" or, when the host string has no frequency
 * Firecracker can parse, "Intel(R) Xeon(R) Processor". */
void sqb_cpuid_intel_brand(const uint8_t host[48], uint8_t out[48]);

#endif
