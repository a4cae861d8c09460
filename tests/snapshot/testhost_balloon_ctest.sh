#!/bin/sh
# ctest entry of snapshot.testhost_balloon: boots the nested test host with
# squib, squib-pager and curl and runs testhost_balloon.sh inside.
# $1: squib, $2: squib-pager.
here=$(cd "$(dirname "$0")" && pwd)
squib=${1:-} pager=${2:-}
[ -x "$squib" ] && [ -x "$pager" ] || { echo "skip: no squib or squib-pager binary" >&2; exit 77; }
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
exec bash "$here/../../testhost/run.sh" --auto --timeout 560 --no-vmlinux --bin "$squib" \
	--bin "$pager" --bin "$curl" --file "$here/testhost_lib.sh:/test/testhost_lib.sh" "$here/testhost_balloon.sh"
