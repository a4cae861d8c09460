/* mmds_http.c: see mmds.h (to be written) */
#include "mmds.h"
