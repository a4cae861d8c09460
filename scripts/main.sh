#!/usr/bin/env bash
# squib's main job, the README's first command: install what is missing,
# build, then run every stage whose parts exist in this checkout:
#   1. the snapshot toolkit on a synthetic guest image (import, inspect,
#      verify, extract, byte-compare)
#   2. boot the default Linux guest (directly on hardware KVM, or inside the
#      nested test host) with its root on virtio-blk and virtio-rng when squib
#      answers PUT /drives and /entropy (else from its initramfs, said so),
#      show mount, df and /dev/hwrng, snapshot it and restore it
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
echo "== build =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null
echo "built: $(ls build/runtime/squib build/tools/squib-snap build/restore/pager/squib-pager 2>/dev/null | tr '\n' ' ')"

work=$(mktemp -d /tmp/squib-main.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ -x build/tools/squib-snap ]; then
  echo "== stage 1: snapshot toolkit on a 64 MiB synthetic guest image =="
  snap=build/tools/squib-snap
  # a guest-like image: zeros, text, repeated and random pages
  python3 - "$work/guest.raw" <<'PY'
import os, random, sys
random.seed(42)
page = 4096
words = b"the quick brown fox jumps over the lazy dog squib snapshot "
rep = bytes((i * 7 + 1) & 0xff for i in range(page))
with open(sys.argv[1], "wb") as f:
    for i in range(64 * 256):
        r = random.random()
        if r < 0.35: f.write(bytes(page))
        elif r < 0.45: f.write(rep)
        elif r < 0.75: f.write((words * (page // len(words) + 1))[:page])
        else: f.write(os.urandom(page))
PY
  set -x
  "$snap" import --memory "$work/guest.raw" --layout 0:32M,0x100000000:32M --codec zstd --dedup -o "$work/guest.sqb"
  "$snap" inspect "$work/guest.sqb" --memory
  "$snap" verify "$work/guest.sqb"
  "$snap" extract "$work/guest.sqb" --memory "$work/back.raw"
  cmp "$work/guest.raw" "$work/back.raw"
  { set +x; } 2>/dev/null
  echo "stage 1: OK (extracted memory is byte-identical to the imported image)"
fi

if [ -x testhost/main-stage.sh ]; then
  echo "== stage 2: boot (root on virtio-blk when squib has drives), snapshot and restore a Linux guest =="
  bash testhost/main-stage.sh
fi
echo "== main job done =="
