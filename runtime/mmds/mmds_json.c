/* mmds_json.c: see mmds.h (to be written) */
#include "mmds.h"
