/* Building the seccomp programs of squib's thread kinds from
 * seccomp_lists.c with libseccomp (seccomp_build.c). */
#ifndef SQB_SECCOMP_BUILD_H
#define SQB_SECCOMP_BUILD_H

#include <linux/filter.h>

#include "sqb_confine.h"

/* The program of one thread kind; out->filter is malloc'd. */
int sqb_sc_build_kind(enum sqb_confine_kind kind, struct sock_fprog *out, struct sqb_diag *diag);
/* The name of system call nr on this architecture (malloc'd), or NULL. */
char *sqb_sc_syscall_name(int nr);
void sqb_sc_diag_set(struct sqb_diag *d, const char *where, const char *fmt, const char *a,
		     const char *b);

#endif
