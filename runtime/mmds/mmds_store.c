/* mmds_store.c: see mmds.h (to be written) */
#include "mmds.h"
