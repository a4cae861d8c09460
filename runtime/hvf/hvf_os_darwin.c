/* The OS build recorded with the GIC blob ([F-55]) on macOS: the
 * kern.osversion sysctl (e.g. "24A335"), the build Apple's state blob is
 * valid for.  Written for macOS, never compiled here (docs/hvf.md). */
#include <errno.h>
#include <stddef.h>
#include <sys/sysctl.h>
#include <sys/types.h>

#include "hvf.h"

int sqb_hvf_os_build(char *buf, unsigned long len)
{
	size_t n = len;

	if (sysctlbyname("kern.osversion", buf, &n, NULL, 0) < 0)
		return -errno;
	if (n == 0 || n >= len)
		return -ERANGE;
	buf[n] = 0;
	return 0;
}
