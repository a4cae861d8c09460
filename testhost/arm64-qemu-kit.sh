#!/usr/bin/env bash
# QEMU for the arm64 test host (bench/arm64_vs_qemu.sh): Debian's
# qemu-system-arm:arm64 and the arm64 packages of every shared library its
# qemu-system-aarch64 needs, found by closure over the NEEDED entries (a
# soname's package is the one dpkg says owns the host's x86_64 copy),
# fetched with `apt-get download` and unpacked with `dpkg-deb -x` -- never
# installed.  Cached in <arm64 kit>/qemu (root/ the unpacked tree, stamp).
# Prints the qemu directory.
#   testhost/arm64-qemu-kit.sh [--quiet]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
quiet=0
[ "${1:-}" = --quiet ] && quiet=1
say() { [ "$quiet" = 1 ] || echo "arm64-qemu-kit: $*" >&2; }
die() { echo "arm64-qemu-kit: error: $*" >&2; exit 1; }
kit=$("$here/arm64-kit.sh" --quiet) || die "arm64 kit unavailable"
q=$kit/qemu
if [ -f "$q/stamp" ] && [ -x "$q/root/usr/bin/qemu-system-aarch64" ]; then
	echo "$q"
	exit 0
fi
exec 9>"$kit/.qemu.lock"
flock -w 600 9 || die "timed out waiting for $kit/.qemu.lock"
command -v aarch64-linux-gnu-readelf >/dev/null || die "aarch64-linux-gnu-readelf missing (scripts/build-arm64.sh)"
mkdir -p "$q/debs" "$q/root"
chmod 0777 "$q/debs"
fetch() { # PACKAGE: download (arm64) once, unpack into root/
	ls "$q"/debs/"$1"_*_arm64.deb >/dev/null 2>&1 ||
		(cd "$q/debs" && apt-get download -q "$1:arm64" >/dev/null 2>&1) || die "apt-get download $1:arm64 failed"
	dpkg-deb -x "$(ls "$q"/debs/"$1"_*_arm64.deb | awk 'NR == 1')" "$q/root"
}
say "downloading qemu-system-arm:arm64"
fetch qemu-system-arm
libdirs="$q/root/usr/lib/aarch64-linux-gnu $q/root/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib"
have() { local d; for d in $libdirs; do [ -e "$d/$1" ] && return 0; done; return 1; }
for round in 1 2 3 4 5 6 7 8; do
	missing=""
	for f in "$q/root/usr/bin/qemu-system-aarch64" $(find "$q/root" -name '*.so*' -type f); do
		for lib in $(aarch64-linux-gnu-readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			have "$lib" || missing="$missing $lib"
		done
	done
	missing=$(echo "$missing" | tr ' ' '\n' | sort -u | grep . || true)
	[ -n "$missing" ] || break
	for lib in $missing; do
		pkg=$(dpkg -S "*/x86_64-linux-gnu/$lib" 2>/dev/null | awk -F: 'NR == 1 { print $1 }')
		[ -n "$pkg" ] || die "no package owns the host's $lib (install its x86_64 package to name it)"
		say "$lib: $pkg"
		fetch "$pkg"
	done
done
[ -z "$missing" ] || die "libraries still missing: $missing"
ls "$q/debs" >"$q/stamp"
echo "$q"
