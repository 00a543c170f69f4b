#!/bin/bash
# IPVS netlink client against a real IPVS kernel, in one VM boot (test/vm/vm.sh).
#   test/vm/ipvs-netlink.sh            # from the repo root, on the host
# Builds the addon and TypeScript if needed, then runs dist/test/vm/ipvs-netlink.js
# inside the VM. Prints PASS/FAIL per check; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = --inside ]; then
  exec node dist/test/vm/ipvs-netlink.js
fi
VM=${IPVS_VM:-$PWD/test/vm/vm.sh}

[ -f build/Release/vipdns_netlink.node ] || npm run build:native
npx tsc -p tsconfig.json
start=$(date +%s.%N)
rc=0
"$VM" --timeout "${IPVS_VM_TIMEOUT:-600}" -- test/vm/ipvs-netlink.sh --inside || rc=$?
echo "ipvs-netlink VM run: $(echo "$(date +%s.%N) - $start" | bc) s wall, exit $rc"
exit $rc
