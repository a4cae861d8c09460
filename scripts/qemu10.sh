#!/usr/bin/env bash
# QEMU 10 from Debian bookworm-backports, fetched with apt-get download into a
# cache and unpacked with dpkg-deb -x (never installed on this host).  Prints
# the path of a qemu-system-x86_64 wrapper that sets the library path and the
# firmware directories; exit 1 with the reason on stderr where it cannot.
#
#   scripts/qemu10.sh [--quiet]
#
# Cache: $SQUIB_QEMU10_CACHE (default ~/.cache/squib/qemu10-bpo12).  The
# Debian mirror is the one this host's apt already uses for bookworm.
# Used by testhost/run.sh (the test host's emulator) and bench/.
set -euo pipefail

quiet=0
[ "${1:-}" = --quiet ] && quiet=1
cache=${SQUIB_QEMU10_CACHE:-$HOME/.cache/squib/qemu10-bpo12}
root=$cache/root
wrapper=$cache/bin/qemu-system-x86_64
say() { [ "$quiet" = 1 ] || echo "qemu10: $*" >&2; }
die() { echo "qemu10: $*" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one fetch at a time (ctest runs tests in parallel)

# The mirror this host's apt uses for bookworm (.list or deb822 .sources).
debian_uri() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' \
			"$f" | head -n 1
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk 'BEGIN { RS = "" }
			/(^|\n)Suites:[^\n]*[[:space:]]bookworm([[:space:]]|$)/ && !/security/ {
				if (match($0, /URIs:[[:space:]]*[^[:space:]\n]+/)) {
					u = substr($0, RSTART, RLENGTH); sub(/URIs:[[:space:]]*/, "", u); print u; exit
				}
			}' "$f"
	done
}

if [ ! -x "$root/usr/bin/qemu-system-x86_64" ]; then
	command -v apt-get >/dev/null || die "no apt-get here to fetch QEMU 10 with"
	uri=$(debian_uri | head -n 1)
	[ -n "$uri" ] || die "no Debian bookworm apt source on this host to fetch QEMU 10 from"
	say "fetching QEMU 10 from $uri bookworm-backports into $cache (once)"
	rm -rf "$cache/debs" "$root.tmp"
	mkdir -p "$cache/lists/partial" "$cache/apt/archives/partial" "$cache/debs"
	printf 'deb %s bookworm main\ndeb %s bookworm-backports main\n' "$uri" "$uri" >"$cache/sources.list"
	apt=(-o "Dir::Etc::sourcelist=$cache/sources.list" -o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache/apt")
	apt-get "${apt[@]}" update >"$cache/apt.log" 2>&1 ||
		die "apt-get update of bookworm-backports failed (see $cache/apt.log)"
	# What installing it would change = the backports packages it needs.
	apt-get "${apt[@]}" -s install --no-install-recommends qemu-system-x86/bookworm-backports \
		>"$cache/sim.log" 2>&1 || die "QEMU 10's dependencies are not satisfiable (see $cache/sim.log)"
	pkgs=$(sed -nE 's/^Inst ([^ ]+) (\[[^]]*\] )?\(([^ ]+).*/\1=\3/p' "$cache/sim.log")
	[ -n "$pkgs" ] || die "apt-get found nothing to fetch for qemu-system-x86/bookworm-backports"
	# shellcheck disable=SC2086 # one word per package
	(cd "$cache/debs" && apt-get "${apt[@]}" download $pkgs >>"$cache/apt.log" 2>&1) ||
		die "apt-get download failed (see $cache/apt.log)"
	for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
	rm -rf "$root" && mv "$root.tmp" "$root"
fi
mkdir -p "$cache/bin"
cat >"$wrapper.tmp" <<EOF
#!/bin/sh
# QEMU 10 from bookworm-backports, unpacked by scripts/qemu10.sh
LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
exec $root/usr/bin/qemu-system-x86_64 -L $root/usr/share/qemu -L $root/usr/share/seabios "\$@"
EOF
chmod +x "$wrapper.tmp" && mv "$wrapper.tmp" "$wrapper"
version=$("$wrapper" --version 2>&1 | head -n 1) || die "QEMU 10 does not start: $version"
case "$version" in
*"version 10."*) ;;
*) die "unexpected QEMU from the cache: $version" ;;
esac
say "$version"
echo "$wrapper"
