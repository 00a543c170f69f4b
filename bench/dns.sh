#!/usr/bin/env bash
# DNS benchmark: the same 10,000-name zone served by dnsmasq, unbound (1 thread, 2 threads) and
# vipdns (1 thread, 2 threads: --dns-workers 2) on loopback, servers pinned to CPU 0 (2-thread
# rows: CPUs 0-1) and dnsperf to CPU 1, in one run; prints QPS, mean latency and RSS with
# vipdns's ratio to each peer on the same cores. On a 2-CPU machine the 2-thread rows share a
# core with dnsperf, so they show how a server shares, not how far it scales.
# Usage: bench/dns.sh [SECONDS_PER_RUN] [ROUNDS]   (as root on Debian; installs what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
N=${N:-10000}

need=()
for p in dnsperf dnsmasq-base unbound dnsutils; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -f dist/bench/dns-zone.js ] || npx tsc -p tsconfig.json

WORK=$(mktemp -d /tmp/vipdns-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
node dist/bench/dns-zone.js "$WORK" "$N" >/dev/null
NCPU=$(nproc)
SERVER_CPU=0
CLIENT_CPU=$(( NCPU > 1 ? 1 : 0 ))
BOTH="0-$(( NCPU > 1 ? 1 : 0 ))"

wait_dns() { # port
  for _ in $(seq 1 100); do
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short s1.vipdns.internal 2>/dev/null | grep -q '^10\.64\.' && return 0
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2; return 1
}

port=15300
start_server() { # kind -> sets PID PORT
  port=$((port + 1)); PORT=$port
  case "$1" in
    dnsmasq)
      taskset -c $SERVER_CPU dnsmasq --no-daemon --conf-file=/dev/null --port=$PORT --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --addn-hosts="$WORK/hosts" --pid-file= --user=root --cache-size=10000 --dns-forward-max=1000 --log-facility=/dev/null 2>/dev/null &
      PID=$! ;;
    unbound1|unbound2)
      local threads=${1#unbound} cpus=$SERVER_CPU
      [ "$threads" = 2 ] && cpus=$BOTH
      cat >"$WORK/unbound-$PORT.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $PORT
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$WORK"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: $threads
  so-reuseport: yes
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "." static
  include: "$WORK/unbound-local.conf"
remote-control:
  control-enable: no
CONF
      taskset -c $cpus unbound -d -c "$WORK/unbound-$PORT.conf" 2>/dev/null &
      PID=$! ;;
    vipdns|vipdns2)
      local workers=1 cpus=$SERVER_CPU
      [ "$1" = vipdns2 ] && workers=2 cpus=$BOTH
      rm -f "$WORK/vipdns-data/vipdns.pid"
      VIPDNS_RESOLV_CONF=/nonexistent taskset -c $cpus node dist/src/cli.js serve --data-dir "$WORK/vipdns-data" --dns-workers $workers \
        --dns-listen 127.0.0.1:$PORT --api-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --dataplane none --log-level warn >"$WORK/vipdns.log" 2>&1 &
      PID=$! ;;
  esac
  PIDS+=("$PID")
  wait_dns "$PORT"
}

rss_kb() { # pid: RSS of the process and its children
  local total=0
  for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do total=$(( total + $(ps -o rss= -p "$p" 2>/dev/null || echo 0) )); done
  echo $total
}

declare -A QPS LAT RSS
KINDS=(dnsmasq unbound1 vipdns unbound2 vipdns2)
[ -n "${KINDS_OVERRIDE:-}" ] && read -r -a KINDS <<<"$KINDS_OVERRIDE"
for round in $(seq 1 "$ROUNDS"); do
  for k in "${KINDS[@]}"; do
    start_server "$k"
    # warm-up (JIT, caches), then the measured run
    taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries" -l 2 -c 4 -q 200 >/dev/null 2>&1 || true
    out=$(taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries" -l "$SECS" -c 4 -q 200 2>&1)
    qps=$(awk '/Queries per second/{print $4}' <<<"$out")
    lat=$(awk '/Average Latency/{print $4}' <<<"$out")
    lost=$(awk '/Queries lost/{print $3}' <<<"$out")
    rss=$(rss_kb "$PID")
    echo "round $round $k: qps=$qps latency=${lat}s lost=$lost rss=${rss}KB" >&2
    QPS[$k]="${QPS[$k]:-} $qps"; LAT[$k]="${LAT[$k]:-} $lat"; RSS[$k]=$rss
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done

mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.1f", s/NF}' <<<"$1"; }
echo
echo "zone: $N names; ${SECS}s x ${ROUNDS} rounds per server; servers on CPU $SERVER_CPU (2-core rows: $BOTH), dnsperf on CPU $CLIENT_CPU"
printf '| %-22s | %10s | %-22s | %14s | %9s | %-28s |\n' server "QPS (mean)" "rounds" "mean latency" "RSS" "vipdns (same cores) ratio"
printf '|%s|%s|%s|%s|%s|%s|\n' ------------------------ ------------ ------------------------ ---------------- ----------- ------------------------------
label() { case $1 in dnsmasq) echo "dnsmasq";; unbound1) echo "unbound, 1 thread";; unbound2) echo "unbound, 2 threads";; vipdns) echo "vipdns, 1 thread";; vipdns2) echo "vipdns, 2 threads";; esac; }
for k in "${KINDS[@]}"; do
  q=$(mean "${QPS[$k]}"); l=$(awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f ms", 1000*s/NF}' <<<"${LAT[$k]}")
  ratio=""
  case $k in
    dnsmasq|unbound1) [ -n "${QPS[vipdns]:-}" ] && ratio=$(awk -v a="$(mean "${QPS[vipdns]}")" -v b="$q" 'BEGIN{printf "%.2fx", a/b}') ;;
    unbound2) [ -n "${QPS[vipdns2]:-}" ] && ratio="$(awk -v a="$(mean "${QPS[vipdns2]}")" -v b="$q" 'BEGIN{printf "%.2fx", a/b}') (vipdns, 2 threads)" ;;
    vipdns2) [ -n "${QPS[vipdns]:-}" ] && ratio="$(awk -v a="$q" -v b="$(mean "${QPS[vipdns]}")" 'BEGIN{printf "%.2fx", a/b}') of vipdns, 1 thread" ;;
  esac
  printf '| %-22s | %10s | %-22s | %14s | %6s MB | %-28s |\n' "$(label "$k")" "$q" "$(echo ${QPS[$k]} | tr ' ' '/')" "$l" "$(( RSS[$k] / 1024 ))" "$ratio"
done
