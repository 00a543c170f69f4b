#!/bin/bash
# The IPVS driver suite in one ipvs-vm boot (what test/vm/ipvs.test.ts runs), by hand:
#   test/vm/ipvs-suite.sh      # from anywhere; builds first
set -euo pipefail
cd "$(dirname "$0")/../.."
VM=${IPVS_VM:-$(cd .. && pwd)/shared/tools/ipvs-vm}
[ -f build/Release/vipdns_netlink.node ] || npm run build:native
npx tsc -p tsconfig.json
exec "$VM" --timeout "${IPVS_VM_TIMEOUT:-600}" -- node dist/test/vm/ipvs-suite.js
