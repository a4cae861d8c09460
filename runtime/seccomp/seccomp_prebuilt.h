/* squib's seccomp programs as built at build time (seccomp_gen writes the
 * definitions into seccomp_prebuilt.c in the build folder). */
#ifndef SQB_SECCOMP_PREBUILT_H
#define SQB_SECCOMP_PREBUILT_H

#include <linux/filter.h>

#include "sqb_confine.h"

#define SQB_SC_PB_NAMES 512 /* system call numbers with a name, 0..511 */

/* every kind's program, one after the other */
extern const struct sock_filter sqb_sc_pb_insns[];
extern const unsigned int sqb_sc_pb_off[SQB_CONFINE_NKINDS];
extern const unsigned short sqb_sc_pb_len[SQB_CONFINE_NKINDS];
/* names: 1 + the offset of nr's name in sqb_sc_pb_names, 0 for none */
extern const char sqb_sc_pb_names[];
extern const unsigned short sqb_sc_pb_name_off[SQB_SC_PB_NAMES];

#endif
