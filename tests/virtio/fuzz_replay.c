/* Corpus replay and fixed-seed mutation for the virtio fuzz targets
 * (fuzz_virtio.c, fuzz_netvsock.c); see fuzz_replay.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_replay.h"

static uint64_t rng = 0x5eed;

uint64_t vfz_next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void mutate_and_run(const uint8_t *seed, size_t len, int rounds, size_t (*aim)(size_t))
{
	uint8_t *buf = malloc(len + 64);

	for (int r = 0; buf && r < rounds; r++) {
		size_t n = len;
		memcpy(buf, seed, len);
		for (int k = (int)(vfz_next() % 8) + 1; k > 0 && n; k--) {
			size_t at = vfz_next() % n;
			switch (vfz_next() % 4) {
			case 0:
				buf[at] ^= (uint8_t)(1u << (vfz_next() % 8));
				break;
			case 1:
				buf[at] = (uint8_t)vfz_next();
				break;
			case 2: /* where the target says mutations matter most */
				at = aim(n);
				if (at < n)
					buf[at] = (uint8_t)vfz_next();
				break;
			default:
				if (n > 1 && (vfz_next() & 7) == 0)
					n = at ? at : 1; /* truncate */
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
}

int vfz_replay_main(int argc, char **argv, const char *name, size_t (*aim)(size_t n))
{
	int files = 0, rounds = argc > 2 ? atoi(argv[2]) : 200;
	struct dirent *e;
	DIR *d;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [ROUNDS]\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	while ((e = readdir(d))) {
		char path[1024];
		uint8_t *buf;
		long sz;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc(sz > 0 ? (size_t)sz : 1);
		if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
			LLVMFuzzerTestOneInput(buf, (size_t)sz);
			mutate_and_run(buf, (size_t)sz, rounds, aim);
			files++;
		}
		free(buf);
		fclose(f);
	}
	closedir(d);
	printf("%s: %d corpus files, %d mutations each\n", name, files, rounds);
	return files ? 0 : 1;
}
