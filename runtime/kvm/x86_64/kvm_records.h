/* Explicit encoders between KVM's x86 state structs and snapfmt records
 * (docs/format.md section 8: X86_* vCPU records and KVM_* INTC records).
 * Never copies struct memory to disk: every field is placed by hand. */
#ifndef SQB_KVM_RECORDS_H
#define SQB_KVM_RECORDS_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define SQB_X86_REGS_SIZE      144
#define SQB_X86_SREGS_SIZE     312
#define SQB_X86_EVENTS_SIZE    64
#define SQB_X86_DEBUGREGS_SIZE 56
#define SQB_KVM_PIC_SIZE       16
#define SQB_KVM_IOAPIC_SIZE    216
#define SQB_KVM_PIT_SIZE       80
#define SQB_KVM_CLOCK_SIZE     32

void sqb_kvm_enc_regs(const struct kvm_regs *r, uint8_t *out);
void sqb_kvm_dec_regs(const uint8_t *in, struct kvm_regs *r);
void sqb_kvm_enc_sregs(const struct kvm_sregs *s, uint8_t *out);
void sqb_kvm_dec_sregs(const uint8_t *in, struct kvm_sregs *s);
void sqb_kvm_enc_events(const struct kvm_vcpu_events *e, uint8_t *out);
void sqb_kvm_dec_events(const uint8_t *in, struct kvm_vcpu_events *e);
void sqb_kvm_enc_debugregs(const struct kvm_debugregs *d, uint8_t *out);
void sqb_kvm_dec_debugregs(const uint8_t *in, struct kvm_debugregs *d);
/* Variable records: out must hold 8 + 16*n (MSRs, XCRs) or 8 + 32*n (CPUID). */
size_t sqb_kvm_enc_msrs(const struct kvm_msr_entry *e, uint32_t n, uint8_t *out);
int sqb_kvm_dec_msrs(const uint8_t *in, size_t len, struct kvm_msr_entry *e, uint32_t cap,
		     uint32_t *n);
size_t sqb_kvm_enc_xcrs(const struct kvm_xcrs *x, uint8_t *out);
int sqb_kvm_dec_xcrs(const uint8_t *in, size_t len, struct kvm_xcrs *x);
size_t sqb_kvm_enc_cpuid(const struct kvm_cpuid_entry2 *e, uint32_t n, uint8_t *out);
int sqb_kvm_dec_cpuid(const uint8_t *in, size_t len, struct kvm_cpuid_entry2 *e, uint32_t cap,
		      uint32_t *n);
void sqb_kvm_enc_pic(const struct kvm_pic_state *p, uint8_t *out);
void sqb_kvm_dec_pic(const uint8_t *in, struct kvm_pic_state *p);
void sqb_kvm_enc_ioapic(const struct kvm_ioapic_state *a, uint8_t *out);
void sqb_kvm_dec_ioapic(const uint8_t *in, struct kvm_ioapic_state *a);
void sqb_kvm_enc_pit(const struct kvm_pit_state2 *p, uint8_t *out);
void sqb_kvm_dec_pit(const uint8_t *in, struct kvm_pit_state2 *p);
void sqb_kvm_enc_clock(const struct kvm_clock_data *c, uint8_t *out);
void sqb_kvm_dec_clock(const uint8_t *in, struct kvm_clock_data *c);

#endif
