/* mmds_ns.c: see mmds.h (to be written) */
#include "mmds.h"
