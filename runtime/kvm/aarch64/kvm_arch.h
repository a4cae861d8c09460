/* KVM backend, aarch64 part: per-VM state only arm64 has (included by
 * kvm_priv.h; CMake puts runtime/kvm/<arch>/ on the include path).
 *
 *   vm ── vgic_fd (KVM_DEV_TYPE_ARM_VGIC_V3: distributor + redistributors)
 *      ── init: the preferred target + features every vCPU is created with
 *      ── ncreated: vCPUs made so far; the last one initialises the vGIC
 */
#ifndef SQB_KVM_ARCH_H
#define SQB_KVM_ARCH_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SQB_KVM_SNAP_ARCH SQB_ARCH_AARCH64 /* snapfmt enum sqb_arch of its records */

struct sqb_kvm_arch_vm {
	int vgic_fd;
	struct kvm_vcpu_init init; /* KVM_ARM_PREFERRED_TARGET + PSCI 0.2 */
	pthread_mutex_t lock;
	unsigned int ncreated;
	int vgic_ready;
};

struct sqb_hv_vcpu;
/* kvm_arm64.c: one register through KVM_GET/SET_ONE_REG (0 / -errno). */
int sqb_kvm_arm64_get_reg(struct sqb_hv_vcpu *vc, uint64_t id, void *val);
int sqb_kvm_arm64_set_reg(struct sqb_hv_vcpu *vc, uint64_t id, const void *val);

#endif
