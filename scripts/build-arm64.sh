#!/usr/bin/env bash
# Cross-build squib, squib-snap and squib-pager for arm64 Linux (docs/arm64.md):
# installs Debian's gcc-aarch64-linux-gnu and the :arm64 -dev packages
# (multiarch: dpkg --add-architecture arm64) when missing (libfdt: unpacked
# locally, see below), then configures
# with cmake/aarch64-linux-gnu.cmake.  The x86 build is untouched.
#   scripts/build-arm64.sh [BUILD_DIR (default build-arm64)] [CMAKE_BUILD_TYPE]
# SQB_SANITIZE=ON builds with ASan + UBSan (the cross gcc's libasan/libubsan;
# testhost/run-arm64.sh --bin carries them along).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build-arm64}
type=${2:-RelWithDebInfo}

pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross cmake pkg-config
      libzstd-dev:arm64 liblz4-dev:arm64 libxxhash-dev:arm64 libyajl-dev:arm64
      libseccomp-dev:arm64 liburing-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "build-arm64: installing ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libfdt-dev is not Multi-Arch: same -- installing the :arm64 one would
# remove the host's.  Its .deb is unpacked under build-arm64/.deps (shared by
# every arm64 build directory) and linked statically instead (then the test host needs no libfdt.so either).
fdt=$repo/build-arm64/.deps/libfdt
if [ ! -f "$fdt/usr/lib/aarch64-linux-gnu/libfdt.a" ]; then
	mkdir -p "$fdt/deb"
	chmod 0777 "$fdt/deb"
	(cd "$fdt/deb" && apt-get download -q libfdt-dev:arm64 >/dev/null) ||
		{ echo "build-arm64: apt-get download libfdt-dev:arm64 failed" >&2; exit 1; }
	dpkg-deb -x "$fdt"/deb/libfdt-dev_*_arm64.deb "$fdt"
fi

# Only what runs on the arm64 host: the tests and benches stay x86 (their
# guests are x86 code) and run the arm64 programs through testhost/.
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE="$type" \
	-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/aarch64-linux-gnu.cmake" \
	-DSQB_MODULES="common;snapfmt;dirty;restore;runtime;tools" -DSQB_SANITIZE="${SQB_SANITIZE:-OFF}" \
	-DSQB_HVF="${SQB_HVF:-OFF}" \
	-DFDT_INCLUDE_DIR="$fdt/usr/include" -DFDT_LIBRARY="$fdt/usr/lib/aarch64-linux-gnu/libfdt.a" >/dev/null
cmake --build "$build" -j"${SQB_JOBS:-2}" --target squib squib-snap squib-pager
# SQB_HVF=ON: the Hypervisor.framework backend over its KVM emulation, plus
# the self-test the arm64 test host runs (docs/hvf.md).
if [ "${SQB_HVF:-OFF}" = ON ]; then
	cmake --build "$build" -j"${SQB_JOBS:-2}" --target hvf-selftest sqb_hvf_guest
fi
for t in runtime/squib tools/squib-snap; do
	file "$build/$t" 2>/dev/null | grep -q 'ARM aarch64' || { echo "build-arm64: $build/$t is not arm64" >&2; exit 1; }
done
echo "build-arm64: $build/runtime/squib $build/tools/squib-snap $(find "$build" -name squib-pager -type f | awk 'NR == 1')"
