/* The OS build recorded with the GIC blob ([F-55]) where the backend runs on
 * the KVM emulation (Linux): the kernel's release and version, which change
 * with every kernel build as a macOS build string does. */
#include <errno.h>
#include <stdio.h>
#include <sys/utsname.h>

#include "hvf.h"

int sqb_hvf_os_build(char *buf, unsigned long len)
{
	struct utsname u;

	if (uname(&u) < 0)
		return -errno;
	snprintf(buf, len, "Linux %s %s", u.release, u.version);
	return 0;
}
