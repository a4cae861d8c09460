/* libFuzzer target for sqb_x86boot_load(): any byte string as the kernel
 * image (PVH ELF, bzImage or garbage) into 64 MiB of guest RAM.  Built only
 * with -DSQB_FUZZ=ON (clang); the unit tests replay mutated seeds instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "x86boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void *ram;
	struct sqb_x86boot_mem mem = {.gpa = 0, .size = 64 << 20};
	struct sqb_x86boot_in in = {.ram = &mem, .nram = 1, .ncpus = 2, .cmdline = "console=ttyS0"};
	struct sqb_x86boot_entry out;
	char path[64];
	int fd;

	if (!ram && !(ram = calloc(1, mem.size)))
		abort();
	mem.host = ram;
	fd = memfd_create("fuzz-kernel", 0);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	in.kernel_path = path;
	(void)sqb_x86boot_load(&in, &out, NULL);
	close(fd);
	return 0;
}
