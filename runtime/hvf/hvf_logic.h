/* The HVF backend's hypervisor-free logic (runtime/hvf/): decoding an exit's
 * ESR_EL2, PSCI 0.2 in the VMM, the HVF_GIC_STATE record.  No hv_* call in
 * here, so the x86 unit tests (tests/hvf/) compile these files alone.
 *
 *   hv_vcpu_exit_t.exception.syndrome ──sqb_hvf_esr_decode──> struct sqb_hvf_esr
 *        class: DABT (MMIO / dirty / lazy fault), IABT, WFX, HVC, SMC, SYSREG
 *   x0..x3 of an HVC ──sqb_hvf_psci_call──> x0 result + an action for the loop
 *   [os_build_len | rsvd | os build | pad8 | hv_gic_state blob]  (format.md 8.3)
 */
#ifndef SQB_HVF_LOGIC_H
#define SQB_HVF_LOGIC_H

#include <stddef.h>
#include <stdint.h>

#include "squib/errors.h"

/* ---- ESR_EL2 (Arm ARM D17.2.37) ---- */
#define SQB_ESR_EC_UNKNOWN 0x00
#define SQB_ESR_EC_WFX	   0x01
#define SQB_ESR_EC_HVC64   0x16
#define SQB_ESR_EC_SMC64   0x17
#define SQB_ESR_EC_SYSREG  0x18
#define SQB_ESR_EC_IABT_LO 0x20
#define SQB_ESR_EC_DABT_LO 0x24
#define SQB_ESR_EC_BRK64   0x3c

enum sqb_hvf_esr_class {
	SQB_HVF_ESR_OTHER = 0,
	SQB_HVF_ESR_DABT,   /* data abort from EL1/EL0 */
	SQB_HVF_ESR_IABT,   /* instruction abort from EL1/EL0 */
	SQB_HVF_ESR_WFX,    /* WFI / WFE trapped */
	SQB_HVF_ESR_HVC,    /* HVC (PC already past it) */
	SQB_HVF_ESR_SMC,    /* SMC (PC still on it) */
	SQB_HVF_ESR_SYSREG, /* MSR / MRS trapped */
};

/* Fault status (DFSC / IFSC) kinds. */
enum sqb_hvf_fsc {
	SQB_HVF_FSC_OTHER = 0,
	SQB_HVF_FSC_TRANSLATION, /* not mapped at stage 2 (or stage 1) */
	SQB_HVF_FSC_ACCESS,	 /* access flag */
	SQB_HVF_FSC_PERMISSION,	 /* mapped without the permission */
};

struct sqb_hvf_esr {
	enum sqb_hvf_esr_class cls;
	uint32_t ec;
	uint32_t il; /* 1: 32-bit instruction */
	uint32_t iss;
	union {
		struct {
			uint8_t isv;   /* the rest of the syndrome is valid */
			uint8_t len;   /* access size in bytes (1, 2, 4, 8) */
			uint8_t sse;   /* sign-extend a load */
			uint8_t srt;   /* register Xt (31 = XZR) */
			uint8_t sf;    /* Xt is 64-bit */
			uint8_t wnr;   /* write */
			uint8_t s1ptw; /* stage-2 fault on a stage-1 table walk */
			uint8_t level; /* lookup level of the fault, 0-3 */
			enum sqb_hvf_fsc fsc;
		} abt; /* DABT and IABT (IABT: fsc, level, s1ptw only) */
		struct {
			uint8_t wfe; /* 0: WFI, 1: WFE */
		} wfx;
		struct {
			uint16_t imm16;
		} hvc; /* HVC and SMC */
		struct {
			uint8_t op0, op1, crn, crm, op2, rt;
			uint8_t read;	   /* MRS */
			uint16_t encoding; /* op0<<14 | op1<<11 | CRn<<7 | CRm<<3 | op2 */
		} sys;
	} u;
};

/* Decode an ESR_EL2 value; never fails (unknown classes are OTHER). */
void sqb_hvf_esr_decode(uint64_t esr, struct sqb_hvf_esr *out);
/* Build the syndrome of a data abort (the emulation uses it; tests too). */
uint64_t sqb_hvf_esr_dabt(int isv, unsigned int len, int sse, unsigned int srt, int sf, int wnr,
			  enum sqb_hvf_fsc fsc, unsigned int level);

/* ---- PSCI 0.2 in the VMM (Arm DEN0022) ---- */
#define SQB_PSCI_VERSION	   0x84000000u
#define SQB_PSCI_CPU_SUSPEND_32	   0x84000001u
#define SQB_PSCI_CPU_SUSPEND_64	   0xc4000001u
#define SQB_PSCI_CPU_OFF	   0x84000002u
#define SQB_PSCI_CPU_ON_32	   0x84000003u
#define SQB_PSCI_CPU_ON_64	   0xc4000003u
#define SQB_PSCI_AFFINITY_INFO_32  0x84000004u
#define SQB_PSCI_AFFINITY_INFO_64  0xc4000004u
#define SQB_PSCI_MIGRATE_INFO_TYPE 0x84000006u
#define SQB_PSCI_SYSTEM_OFF	   0x84000008u
#define SQB_PSCI_SYSTEM_RESET	   0x84000009u

#define SQB_PSCI_RET_SUCCESS	      0
#define SQB_PSCI_RET_NOT_SUPPORTED    (-1)
#define SQB_PSCI_RET_INVALID_PARAMS   (-2)
#define SQB_PSCI_RET_DENIED	      (-3)
#define SQB_PSCI_RET_ALREADY_ON	      (-4)
#define SQB_PSCI_RET_ON_PENDING	      (-5)
#define SQB_PSCI_RET_INTERNAL_FAILURE (-6)

enum sqb_hvf_psci_action {
	SQB_HVF_PSCI_CONTINUE = 0, /* x0 = result, resume */
	SQB_HVF_PSCI_CPU_OFF,	   /* this vCPU powers off (no result) */
	SQB_HVF_PSCI_SYSTEM_OFF,
	SQB_HVF_PSCI_SYSTEM_RESET,
};

/* Power states of the vCPUs, as the PSCI handler sees them. */
enum sqb_hvf_power { SQB_HVF_OFF = 0, SQB_HVF_ON = 1, SQB_HVF_ON_PENDING = 2 };

struct sqb_hvf_psci_ops {
	/* vCPU index of an MPIDR (affinity fields only), or -1 */
	int (*find)(void *ctx, uint64_t mpidr);
	enum sqb_hvf_power (*state)(void *ctx, unsigned int index);
	/* power index on at entry with x0 = context; 0 or a PSCI error */
	int (*cpu_on)(void *ctx, unsigned int index, uint64_t entry, uint64_t context);
};

/* Serve the PSCI call in x[0..3] made by a vCPU; x[0] receives the result
 * when the action is CONTINUE.  Unknown functions get NOT_SUPPORTED. */
enum sqb_hvf_psci_action sqb_hvf_psci_call(const struct sqb_hvf_psci_ops *ops, void *ctx,
					   uint64_t x[4]);

/* ---- HVF_GIC_STATE (format.md 8.3, [F-55]) ---- */
#define SQB_HVF_OS_BUILD_MAX 256u

/* Encode into a malloc'd payload (*out, *len): the OS build, then blob. */
int sqb_hvf_gic_rec_encode(uint8_t **out, size_t *len, const char *os_build, const void *blob,
			   size_t blob_len);
/* Parse a payload: checks lengths, the reserved word and the zero padding,
 * then that the recorded build equals running_build ([F-55]).  *blob points
 * into the payload.  Errors say where in diag. */
int sqb_hvf_gic_rec_parse(const uint8_t *p, size_t len, const char *running_build,
			  const uint8_t **blob, size_t *blob_len, struct sqb_diag *diag);

#endif
