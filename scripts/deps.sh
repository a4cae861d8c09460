#!/usr/bin/env bash
# Install squib's build and test dependencies from Debian packages when they
# are missing.  Sourced by scripts/main.sh and scripts/test.sh; safe to rerun.
# Extra package names may be passed as arguments.
set -euo pipefail

SQB_PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
          libzstd-dev liblz4-dev libxxhash-dev libfdt-dev libyajl-dev libcmocka-dev
          curl xz-utils cpio "$@")
# Each module may list extra Debian packages, one per line, in deps.d/*.txt.
for f in "$(dirname "${BASH_SOURCE[0]}")"/deps.d/*.txt; do
  [ -e "$f" ] || continue
  while read -r p _; do
    case "$p" in ''|'#'*) ;; *) SQB_PKGS+=("$p") ;; esac
  done < "$f"
done

missing=()
for p in "${SQB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
