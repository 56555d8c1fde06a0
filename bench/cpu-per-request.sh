#!/usr/bin/env bash
# cpu-per-request.sh - the server CPU one request costs, Redis and
# Meridian side by side, each driven by redis-benchmark on this machine:
# Redis 7 (`--save ''`, plus `--appendonly yes --appendfsync always` when
# the workload is SET) and the one-region demo of the working tree's
# binary (`meridian demo --regions us-east --latency none --insecure`).
# The server's user and system CPU (/proc/PID/stat) from just before
# redis-benchmark starts to just after it ends, divided by the requests
# it made (-n); the rate is what redis-benchmark printed; then the share
# of a core redis-benchmark used and the machine's idle share (idle and
# iowait in /proc/stat) over the run.
# Usage: ROUNDS=3 bash bench/cpu-per-request.sh -t get -c 50 -P 16 -n 3000000
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/proc.sh
ROUNDS=${ROUNDS:-1}
[ $# -gt 0 ] || { echo "usage: bench/cpu-per-request.sh redis-benchmark-args (with -t and -n)"; exit 2; }
args=("$@")
n=$(requests_of "$@")
[[ $n =~ ^[0-9]+$ ]] || { echo "give -n N"; exit 2; }
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; redis-cli -p 17380 shutdown nosave >/dev/null 2>&1; rm -rf "$TMP"' EXIT
go build -o "$TMP/meridian" ./cmd/meridian || exit 1
tck=$(getconf CLK_TCK)

measure() { # name pid port
  local name=$1 pid=$2 port=$3
  redis-cli -p "$port" set key:__rand_int__ xxx >/dev/null
  read -r u0 s0 < <(cpu_ticks "$pid")
  local i0; i0=$(awk '/^cpu /{print $5 + $6; exit}' /proc/stat) # idle and iowait
  local TIMEFORMAT='%R %U %S'
  { time redis-benchmark -p "$port" "${args[@]}" -q >"$TMP/out" 2>/dev/null; } 2>"$TMP/time"
  read -r u1 s1 < <(cpu_ticks "$pid")
  local i1; i1=$(awk '/^cpu /{print $5 + $6; exit}' /proc/stat)
  local out; out=$(tr '\r' '\n' <"$TMP/out" | grep "per second" | tail -1)
  read -r real cu cs <"$TMP/time"
  awk -v name="$name" -v out="$out" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v n="$n" -v t="$tck" \
    -v real="$real" -v cu="$cu" -v cs="$cs" -v idle=$((i1 - i0)) -v cpus="$(nproc)" 'BEGIN {
    printf "%-9s %s | server CPU per request: %.2f us (user %.2f, system %.2f); redis-benchmark %.2f of a core; machine idle %.0f%%\n",
      name, out, (du + ds) * 1e6 / t / n, du * 1e6 / t / n, ds * 1e6 / t / n, (cu + cs) / real, 100 * idle / t / real / cpus }'
}

extra=()
printf '%s\n' "$@" | grep -qix 'set' && extra=(--appendonly yes --appendfsync always)
for r in $(seq "$ROUNDS"); do
  rm -rf "$TMP/redis"; mkdir -p "$TMP/redis"
  redis-server --port 17380 --save '' --dir "$TMP/redis" "${extra[@]}" --daemonize yes --pidfile "$TMP/redis.pid" >/dev/null
  for _ in $(seq 50); do redis-cli -p 17380 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  measure redis "$(cat "$TMP/redis.pid")" 17380
  redis-cli -p 17380 shutdown nosave >/dev/null 2>&1
  rm -rf "$TMP/demo"
  "$TMP/meridian" demo --regions us-east --latency none --insecure --base-port 17379 --data-dir "$TMP/demo" >"$TMP/demo.log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do redis-cli -p 17379 ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
  measure meridian "$pid" 17379
  kill "$pid"; wait "$pid" 2>/dev/null
done
