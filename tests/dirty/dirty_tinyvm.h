/* A minimal real KVM guest for the dirty tests and bench: 32-bit flat
 * protected mode, no paging, a 13-byte loop that increments one byte at
 * each guest-physical address of a list and then exits with `out`. */
#ifndef SQB_DIRTY_TINYVM_H
#define SQB_DIRTY_TINYVM_H

#include <stdint.h>

#include "squib/dirty.h"

struct tinyvm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	uint8_t *low; /* slot 0: code and the address list, untracked */
};

#define TINYVM_MAX_LIST ((1u << 20) - 0x2000) / 4

/* Create the VM; ranges[i] becomes memslot ranges[i].kvm_slot (>= 1, flags
 * ranges[i].kvm_flags, gpa below 4 GiB).  -ENOTSUP without /dev/kvm. */
int tinyvm_open(struct tinyvm *t, const struct sqb_dirty_range *ranges, unsigned n);
/* Run the guest until it has incremented the byte at every gpa in list. */
int tinyvm_touch(struct tinyvm *t, const uint32_t *gpas, unsigned n);
void tinyvm_close(struct tinyvm *t);

#endif
