/* Declarations of the public Apple Hypervisor.framework C API (arm64,
 * macOS 15+) that squib's HVF backend uses.
 *
 *   hv_vm_create ── hv_vm_map / unmap / protect (IPA <-> host, R/W/X)
 *        │          hv_gic_create(config) ── hv_gic_set_spi, ICC regs,
 *        │                                   hv_gic_state_* (opaque blob)
 *        └── hv_vcpu_create (on its thread) ── hv_vcpu_run -> hv_vcpu_exit_t
 *                                              (reason, ESR_EL2, VA, IPA)
 *            hv_vcpus_exit (any thread) = the kick
 *
 * WRITTEN FROM APPLE'S DOCUMENTATION (developer.apple.com/documentation/
 * hypervisor: the function pages, hv_exit_reason_t, hv_reg_t, hv_sys_reg_t,
 * hv_memory_flags_t, GIC functions), not copied from Apple's headers.  On
 * macOS the SDK's <Hypervisor/Hypervisor.h> is used instead
 * (SQB_HVF_SYSTEM_HEADERS, runtime/CMakeLists.txt): this file is what the
 * backend compiles against elsewhere and what the KVM emulation
 * (tests/hvf/hvf_emu_kvm.c) implements.
 *
 * Apple's documentation gives names and meanings but not every numeric
 * value.  Values below that are NOT CONFIRMED from the documentation and
 * only matter if this file were used against the real framework (it is not
 * on macOS):
 *   - the hv_return_t error codes (HV_ERROR .. HV_UNSUPPORTED): taken as the
 *     0xfae94001.. mach-error sequence;
 *   - the hv_reg_t numbering (X0..X30 = 0..30, PC 31, FPCR 32, FPSR 33,
 *     CPSR 34) and hv_simd_fp_reg_t (Q0..Q31 = 0..31);
 *   - hv_exit_reason_t values (CANCELED 0, EXCEPTION 1, VTIMER_ACTIVATED 2,
 *     UNKNOWN 3) and HV_INTERRUPT_TYPE_IRQ/FIQ = 0/1;
 *   - hv_memory_flags_t bits (READ 1, WRITE 2, EXEC 4).
 * Confirmed by the documentation: hv_sys_reg_t and hv_gic_icc_reg_t values
 * are the architectural encodings op0<<14|op1<<11|CRn<<7|CRm<<3|op2 (the key
 * squib's format uses, format.md [F-54]); GIC distributor/redistributor
 * register enumerations equal the GICv3 register offsets; the vtimer offset
 * is CNTVOFF_EL2; the exit's syndrome is ESR_EL2.
 */
#ifndef SQB_HVF_HV_API_H
#define SQB_HVF_HV_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A system register's encoding (hv_sys_reg_t's documented value). */
#define HV_SYSREG_ENC(op0, op1, crn, crm, op2)                                                     \
	((uint16_t)((op0) << 14 | (op1) << 11 | (crn) << 7 | (crm) << 3 | (op2)))

#if defined(SQB_HVF_SYSTEM_HEADERS)
/* macOS: the SDK's declarations (runtime/CMakeLists.txt defines this). */
#include <Hypervisor/Hypervisor.h>
#else

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t hv_return_t; /* a mach_error_t */
#define HV_SUCCESS			       ((hv_return_t)0)
#define HV_ERROR			       ((hv_return_t)0xfae94001) /* unconfirmed value */
#define HV_BUSY				       ((hv_return_t)0xfae94002) /* unconfirmed value */
#define HV_BAD_ARGUMENT			       ((hv_return_t)0xfae94003) /* unconfirmed value */
#define HV_ILLEGAL_GUEST_STATE		       ((hv_return_t)0xfae94004) /* unconfirmed value */
#define HV_NO_RESOURCES			       ((hv_return_t)0xfae94005) /* unconfirmed value */
#define HV_NO_DEVICE			       ((hv_return_t)0xfae94006) /* unconfirmed value */
#define HV_DENIED			       ((hv_return_t)0xfae94007) /* unconfirmed value */
#define HV_UNSUPPORTED			       ((hv_return_t)0xfae9400f) /* unconfirmed value */

typedef uint64_t hv_ipa_t;
typedef uint64_t hv_vcpu_t;
typedef uint64_t hv_exception_syndrome_t; /* ESR_EL2 */
typedef uint64_t hv_exception_address_t;

/* Config objects are os_object references on macOS; opaque here. */
typedef struct hv_vm_config_s *hv_vm_config_t;
typedef struct hv_vcpu_config_s *hv_vcpu_config_t;
typedef struct hv_gic_config_s *hv_gic_config_t;
typedef struct hv_gic_state_s *hv_gic_state_t;

typedef uint64_t hv_memory_flags_t;
#define HV_MEMORY_READ			       (1ull << 0)		 /* unconfirmed value */
#define HV_MEMORY_WRITE			       (1ull << 1)		 /* unconfirmed value */
#define HV_MEMORY_EXEC			       (1ull << 2)		 /* unconfirmed value */

typedef uint32_t hv_exit_reason_t;
#define HV_EXIT_REASON_CANCELED		       0u /* hv_vcpus_exit asked for it */
#define HV_EXIT_REASON_EXCEPTION	       1u /* a synchronous exception to EL2 */
#define HV_EXIT_REASON_VTIMER_ACTIVATED	       2u /* the vtimer fired; now masked */
#define HV_EXIT_REASON_UNKNOWN		       3u

typedef struct {
	hv_exception_syndrome_t syndrome;	/* ESR_EL2 */
	hv_exception_address_t virtual_address; /* FAR_EL2 */
	hv_ipa_t physical_address;		/* the faulting IPA (HPFAR_EL2 based) */
} hv_vcpu_exit_exception_t;

typedef struct {
	hv_exit_reason_t reason;
	hv_vcpu_exit_exception_t exception;
} hv_vcpu_exit_t;

typedef uint32_t hv_reg_t; /* unconfirmed numbering */
#define HV_REG_X0			       0u
#define HV_REG_X30			       30u
#define HV_REG_FP			       29u
#define HV_REG_LR			       30u
#define HV_REG_PC			       31u
#define HV_REG_FPCR			       32u
#define HV_REG_FPSR			       33u
#define HV_REG_CPSR			       34u

typedef uint32_t hv_simd_fp_reg_t; /* HV_SIMD_FP_REG_Q0 + n, unconfirmed */
#define HV_SIMD_FP_REG_Q0		       0u
typedef struct {
	uint8_t b[16];
} hv_simd_fp_uchar16_t; /* a 128-bit vector (Apple: a clang ext vector) */

/* System registers: the architectural encoding (documented). */
typedef uint16_t hv_sys_reg_t;

typedef uint32_t hv_interrupt_type_t;
#define HV_INTERRUPT_TYPE_IRQ		       0u	/* unconfirmed value */
#define HV_INTERRUPT_TYPE_FIQ		       1u	/* unconfirmed value */

/* ---- VM ---- */
hv_return_t hv_vm_create(hv_vm_config_t config);
hv_return_t hv_vm_destroy(void);
hv_return_t hv_vm_map(void *addr, hv_ipa_t ipa, size_t size, hv_memory_flags_t flags);
hv_return_t hv_vm_unmap(hv_ipa_t ipa, size_t size);
hv_return_t hv_vm_protect(hv_ipa_t ipa, size_t size, hv_memory_flags_t flags);

/* ---- vCPUs: every call but hv_vcpus_exit on the creating thread ---- */
hv_return_t hv_vcpu_create(hv_vcpu_t *vcpu, hv_vcpu_exit_t **exit, hv_vcpu_config_t config);
hv_return_t hv_vcpu_destroy(hv_vcpu_t vcpu);
hv_return_t hv_vcpu_run(hv_vcpu_t vcpu);
hv_return_t hv_vcpus_exit(hv_vcpu_t *vcpus, uint32_t vcpu_count);
hv_return_t hv_vcpu_get_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t *value);
hv_return_t hv_vcpu_set_reg(hv_vcpu_t vcpu, hv_reg_t reg, uint64_t value);
hv_return_t hv_vcpu_get_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
				    hv_simd_fp_uchar16_t *value);
hv_return_t hv_vcpu_set_simd_fp_reg(hv_vcpu_t vcpu, hv_simd_fp_reg_t reg,
				    hv_simd_fp_uchar16_t value);
hv_return_t hv_vcpu_get_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg, uint64_t *value);
hv_return_t hv_vcpu_set_sys_reg(hv_vcpu_t vcpu, hv_sys_reg_t reg, uint64_t value);
hv_return_t hv_vcpu_set_pending_interrupt(hv_vcpu_t vcpu, hv_interrupt_type_t type, bool pending);
hv_return_t hv_vcpu_get_vtimer_mask(hv_vcpu_t vcpu, bool *vtimer_is_masked);
hv_return_t hv_vcpu_set_vtimer_mask(hv_vcpu_t vcpu, bool vtimer_is_masked);
hv_return_t hv_vcpu_get_vtimer_offset(hv_vcpu_t vcpu, uint64_t *vtimer_offset);
hv_return_t hv_vcpu_set_vtimer_offset(hv_vcpu_t vcpu, uint64_t vtimer_offset);

/* ---- GICv3 in the framework (macOS 15): after hv_vm_create, before vCPUs ---- */
hv_gic_config_t hv_gic_config_create(void);
hv_return_t hv_gic_config_set_distributor_base(hv_gic_config_t config, hv_ipa_t base);
hv_return_t hv_gic_config_set_redistributor_base(hv_gic_config_t config, hv_ipa_t base);
hv_return_t hv_gic_config_set_msi_region_base(hv_gic_config_t config, hv_ipa_t base);
hv_return_t hv_gic_config_set_msi_interrupt_range(hv_gic_config_t config, uint32_t base,
						  uint32_t count);
hv_return_t hv_gic_create(hv_gic_config_t config);
hv_return_t hv_gic_reset(void);
hv_return_t hv_gic_get_distributor_size(size_t *size);
hv_return_t hv_gic_get_redistributor_size(size_t *size); /* one vCPU's frames */
hv_return_t hv_gic_get_spi_interrupt_range(uint32_t *base, uint32_t *count);
hv_return_t hv_gic_set_spi(uint32_t intid, bool level);

typedef uint32_t hv_gic_redistributor_reg_t; /* the GICv3 offset (documented) */
hv_return_t hv_gic_get_redistributor_reg(hv_vcpu_t vcpu, hv_gic_redistributor_reg_t reg,
					 uint64_t *value);
hv_return_t hv_gic_set_redistributor_reg(hv_vcpu_t vcpu, hv_gic_redistributor_reg_t reg,
					 uint64_t value);
#define HV_GIC_REDISTRIBUTOR_REG_GICR_ISPENDR0 0x10200u /* SGI frame + 0x200; unconfirmed */

/* The CPU interface registers of a vCPU (ICC_*_EL1: sysreg encodings). */
typedef uint16_t hv_gic_icc_reg_t;
hv_return_t hv_gic_get_icc_reg(hv_vcpu_t vcpu, hv_gic_icc_reg_t reg, uint64_t *value);
hv_return_t hv_gic_set_icc_reg(hv_vcpu_t vcpu, hv_gic_icc_reg_t reg, uint64_t value);
/* The virtual-interface control registers (ICH_*_EL2; guests with EL2 only). */
typedef uint16_t hv_gic_ich_reg_t;
hv_return_t hv_gic_get_ich_reg(hv_vcpu_t vcpu, hv_gic_ich_reg_t reg, uint64_t *value);
hv_return_t hv_gic_set_ich_reg(hv_vcpu_t vcpu, hv_gic_ich_reg_t reg, uint64_t value);

/* The whole GIC but the CPU interfaces as one opaque, versioned blob; the
 * VM must be stopped.  The state object is released with os_release(). */
hv_gic_state_t hv_gic_state_create(void);
hv_return_t hv_gic_state_get_size(hv_gic_state_t state, size_t *size);
hv_return_t hv_gic_state_get_data(hv_gic_state_t state, void *data);
hv_return_t hv_gic_set_state(const void *data, size_t size);
void os_release(void *object);

#ifdef __cplusplus
}
#endif

#endif /* !SQB_HVF_SYSTEM_HEADERS */

#endif
