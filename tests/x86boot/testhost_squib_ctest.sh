#!/bin/sh
# ctest entry of x86boot.testhost_squib_linux: boots the nested test host
# with squib and curl and runs testhost_squib.sh inside.  $1 is the squib
# binary (empty while runtime/ builds none: then the test is skipped).
here=$(cd "$(dirname "$0")" && pwd)
squib=${1:-}
if [ -z "$squib" ] || [ ! -x "$squib" ]; then
	echo "skip: no squib binary is built yet (runtime/ defines no 'squib' target)" >&2
	exit 77
fi
curl=$(command -v curl) || { echo "curl not found (scripts/deps.sh installs it)" >&2; exit 1; }
exec bash "$here/../../testhost/run.sh" --auto --timeout 330 --bin "$squib" --bin "$curl" \
	"$here/testhost_squib.sh"
