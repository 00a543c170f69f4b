#!/bin/bash
# Runs bench/ipvs.ts inside the IPVS VM of test/vm/vm.sh (real IPVS kernel):   bench/ipvs-vm.sh
# Env: BENCH_SERVICES, BENCH_DESTS, BENCH_REPS; IPVS_VM (path of the VM tool).
set -euo pipefail
cd "$(dirname "$0")/.."
VM=${IPVS_VM:-$PWD/test/vm/vm.sh}
[ -f build/Release/vipdns_netlink.node ] || npm run build:native
npx tsc -p tsconfig.json
exec "$VM" --timeout "${IPVS_VM_TIMEOUT:-1200}" -- node dist/bench/ipvs.js
