#!/bin/sh
# ctest entry of snapshot.testhost_identity: boots the nested test host with
# squib and curl and runs testhost_identity.sh inside.  $1: the squib binary.
here=$(cd "$(dirname "$0")" && pwd)
squib=${1:-}
[ -x "$squib" ] || { echo "skip: no squib binary" >&2; exit 77; }
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
exec bash "$here/../../testhost/run.sh" --auto --timeout 400 --no-vmlinux --bin "$squib" \
	--bin "$curl" --file "$here/testhost_lib.sh:/test/testhost_lib.sh" "$here/testhost_identity.sh"
