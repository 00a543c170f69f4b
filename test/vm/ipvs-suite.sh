#!/bin/bash
# The IPVS driver suite in one VM boot (test/vm/vm.sh) (what test/vm/ipvs.test.ts runs), by hand:
#   test/vm/ipvs-suite.sh      # from anywhere; builds first
set -euo pipefail
cd "$(dirname "$0")/../.."
VM=${IPVS_VM:-$PWD/test/vm/vm.sh}
[ -f build/Release/vipdns_netlink.node ] || npm run build:native
npx tsc -p tsconfig.json
exec "$VM" --timeout "${IPVS_VM_TIMEOUT:-600}" -- node dist/test/vm/ipvs-suite.js
