#!/bin/sh
# ctest entry of the runtime test-host tests: boots the nested test host with
# squib and curl (and iproute2's ip with --ip) and runs SCRIPT inside with the
# guest kit's root image and the test-host helpers (testhost_lib.sh).
#   testhost_ctest.sh SCRIPT TIMEOUT_S SQUIB [--ip]
# Skips (77) where the test host cannot run here (no QEMU, no iproute2).
here=$(cd "$(dirname "$0")" && pwd)
repo=$here/../..
script=$1 timeout=$2 squib=${3:-} want_ip=${4:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
[ -f "$repo/testhost/run.sh" ] || { echo "skip: no testhost/run.sh" >&2; exit 77; }
if ! command -v qemu-system-x86_64 >/dev/null && ! [ -c /dev/kvm ]; then
	echo "skip: no qemu-system-x86_64 for the test host" >&2
	exit 77
fi
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
set -- --bin "$squib" --bin "$curl" --file "$here/../snapshot/testhost_lib.sh:/test/testhost_lib.sh"
if [ "$want_ip" = --ip ]; then
	ip=$(PATH=$PATH:/sbin:/usr/sbin command -v ip) || { echo "skip: iproute2's ip not found" >&2; exit 77; }
	"$ip" -V 2>&1 | grep -q iproute2 || { echo "skip: $ip is not iproute2's (no tuntap)" >&2; exit 77; }
	set -- "$@" --bin "$ip"
fi
exec bash "$repo/testhost/run.sh" --auto --rootfs --no-vmlinux --timeout "$timeout" "$@" \
	"$here/$script"
