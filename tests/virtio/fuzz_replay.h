/* Standalone replay for the virtio fuzz targets (no libFuzzer): every file of
 * a corpus folder through LLVMFuzzerTestOneInput, then a fixed-seed mutation
 * pass over each; aim() picks the offset the third mutation kind writes to
 * (where the target's rings or buffers sit). */
#ifndef SQB_VIO_FUZZ_REPLAY_H
#define SQB_VIO_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
uint64_t vfz_next(void);
/* argv: CORPUS_DIR [ROUNDS]; returns main's exit status. */
int vfz_replay_main(int argc, char **argv, const char *name, size_t (*aim)(size_t n));

#endif
