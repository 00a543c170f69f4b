#!/bin/bash
# Captures real ipvsadm <-> kernel netlink exchanges as strace hex dumps, to be
# replayed by the host unit tests (test/netlink/*.test.ts). Run from the repo root:
#   test/vm/vm.sh -- test/vm/capture-fixtures.sh
# Each step writes test/netlink/fixtures/NN-name.strace; the header line of each
# file records the exact command. Order matters: later steps see earlier state.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=test/netlink/fixtures
mkdir -p "$OUT"
n=0
cap() { # cap NAME ipvsadm-args...
  local name=$1; shift
  n=$((n + 1))
  local f; f=$(printf '%s/%02d-%s.strace' "$OUT" "$n" "$name")
  {
    echo "# command: ipvsadm $*"
    echo "# kernel: $(uname -r); $(ipvsadm --version 2>&1 | head -1); strace $(strace -V | head -1 | awk '{print $4}')"
  } >"$f"
  local rc=0
  strace -qq -o "$f.tmp" -e trace=sendmsg,recvmsg -e write=all -e read=all -xx ipvsadm "$@" >"$f.out" 2>&1 || rc=$?
  echo "# exit: $rc" >>"$f"
  sed 's/^/# out: /' "$f.out" >>"$f"; rm -f "$f.out"
  cat "$f.tmp" >>"$f"; rm -f "$f.tmp"
  echo "captured $f (exit $rc)"
}
cap add-svc-tcp-rr         -A -t 10.0.0.1:80 -s rr
cap add-svc-udp-wrr-persist -A -u 10.0.0.1:53 -s wrr -p 300 -M 255.255.255.0
cap add-svc-fwmark-sh      -A -f 256 -s sh
cap add-svc-tcp6-rr        -A -t '[2001:db8::1]:443' -s rr
cap add-dest-masq-w3       -a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3
cap add-dest-fwmark-dr     -a -f 256 -r 10.0.1.3:80 -g -w 1
cap add-dest6-masq         -a -t '[2001:db8::1]:443' -r '[2001:db8::2]:443' -m -w 2
cap edit-dest-w5           -e -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 5
cap edit-svc-wrr           -E -t 10.0.0.1:80 -s wrr
cap list                   -Ln
cap add-svc-dup-eexist     -A -t 10.0.0.1:80 -s rr
cap del-svc-missing-esrch  -D -t 10.9.9.9:80
cap del-dest-missing       -d -t 10.0.0.1:80 -r 10.0.1.9:8080
cap del-dest               -d -t 10.0.0.1:80 -r 10.0.1.2:8080
cap del-svc                -D -t 10.0.0.1:80
cap get-timeouts           -L --timeout
cap flush                  -C
cap list-empty             -Ln
