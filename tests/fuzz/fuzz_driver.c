/* Standalone driver for the fuzz targets: replays files and folders of
 * saved inputs through LLVMFuzzerTestOneInput without libFuzzer, so ctest
 * checks every corpus entry (and every crasher ever found) on each run. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snap_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long replayed;

static int replay_file(const char *path)
{
	size_t n;
	uint8_t *d = sqbt_load(path, &n);

	if (!d) {
		fprintf(stderr, "fuzz_driver: cannot read %s\n", path);
		return 1;
	}
	LLVMFuzzerTestOneInput(d, n);
	free(d);
	replayed++;
	return 0;
}

static int replay(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *dir;
	int err = 0;

	if (stat(path, &st)) {
		fprintf(stderr, "fuzz_driver: %s: not found\n", path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	dir = opendir(path);
	if (!dir)
		return 1;
	while ((de = readdir(dir))) {
		char p[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		err |= replay(p);
	}
	closedir(dir);
	return err;
}

int main(int argc, char **argv)
{
	int err = 0;

	for (int i = 1; i < argc; i++)
		err |= replay(argv[i]);
	printf("fuzz_driver: replayed %lu inputs\n", replayed);
	return err || !replayed;
}
