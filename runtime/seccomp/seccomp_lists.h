/* The allow-lists of squib's thread kinds (seccomp_lists.c), read by
 * seccomp_confine.c.  A list is an array ended by {NULL}. */
#ifndef SQB_SECCOMP_LISTS_H
#define SQB_SECCOMP_LISTS_H

#include "sqb_confine.h"

enum sqb_sc_arg {
	SQB_SC_ANY,	/* any arguments */
	SQB_SC_NOEXEC,	/* mmap/mprotect without PROT_EXEC */
	SQB_SC_AF_UNIX, /* socket(AF_UNIX, ...) only */
	SQB_SC_IOCTLS,	/* ioctl with a request from .vals (0-terminated) */
	SQB_SC_ARG0_EQ, /* first argument one of .vals (0-terminated; 0 cannot be listed) */
	SQB_SC_EACCES,	/* refused with EACCES instead of killing */
};

struct sqb_sc_rule {
	const char *name;
	enum sqb_sc_arg arg;
	const unsigned long *ioctls; /* values for SQB_SC_IOCTLS / SQB_SC_ARG0_EQ */
};

extern const struct sqb_sc_rule *const sqb_sc_lists[SQB_CONFINE_NKINDS];
extern const struct sqb_sc_rule sqb_sc_common[];

#endif
