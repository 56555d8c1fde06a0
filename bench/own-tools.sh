#!/usr/bin/env bash
# own-tools.sh - Meridian against its peers, each peer driven by its own
# client, side by side on this machine, in alternating rounds:
#   1. durable SET, 3 replicas on loopback: three `meridian start`
#      processes (a sync keyspace) under redis-benchmark, against a
#      3-member etcd under etcd's own `benchmark put` (built from the etcd
#      module, go.etcd.io/etcd/v3 tools/benchmark);
#   2. GET, one node: a one-region demo against redis-server (in memory),
#      both under redis-benchmark;
#   3. pipelined durable SET (-P 16), one node: the demo against
#      redis-server with appendfsync always.
# Prints every round's figures; the ratios are Meridian / peer.
#
# Usage: bash bench/own-tools.sh      ROUNDS [3]  N [30000]
# Needs (installs with apt-get when missing): etcd-server, etcd-client,
# redis-server, redis-tools, curl.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-30000}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== building meridian and etcd's benchmark tool"
go build -o "$TMP/meridian" ./cmd/meridian || exit 1
ETCD_BENCH=${ETCD_BENCH:-$HOME/.cache/meridian/etcd-benchmark}
if [ ! -x "$ETCD_BENCH" ]; then
  mkdir -p "$TMP/eb" "$(dirname "$ETCD_BENCH")"
  (cd "$TMP/eb" && printf 'module etcdbench\n\ngo 1.26\n' > go.mod &&
    go get go.etcd.io/etcd/v3@v3.6.8 && go build -o "$ETCD_BENCH" go.etcd.io/etcd/v3/tools/benchmark) || exit 1
fi
M="$TMP/meridian"

rate() { tr '\r' '\n' | grep "requests per second" | sed 's/^[A-Z]*: //'; }

etcd_put() {
  local d="$TMP/etcd" pids=() cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
  rm -rf "$d"; mkdir -p "$d"
  for i in 1 2 3; do
    etcd --name e$i --data-dir "$d/e$i" --listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
      --listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
      --initial-cluster $cluster --initial-cluster-state new --log-level error >"$d/e$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:23791 put warm 1 >/dev/null 2>&1 && break; sleep 0.2; done
  # redis-benchmark's SET: 16-byte keys (key:__rand_int__), 3-byte values.
  "$ETCD_BENCH" put --endpoints 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 --clients 50 --conns 10 \
    --total "$N" --key-size 16 --val-size 3 2>/dev/null | grep -E "Requests/sec|50% in" | tr -s ' \t\n' ' '; echo
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
}

meridian_set3() {
  local d="$TMP/m3" pids=() peers="1=r1@127.0.0.1:27401,2=r2@127.0.0.1:27402,3=r3@127.0.0.1:27403"
  rm -rf "$d"; mkdir -p "$d"
  for i in 1 2 3; do
    "$M" start --id $i --region r$i --data-dir "$d/n$i" --listen 127.0.0.1:2740$i --resp 127.0.0.1:2638$i \
      --http 127.0.0.1:2808$i --peers $peers --log-level warn >"$d/n$i.log" 2>&1 &
    pids+=($!)
  done
  "$M" status --wait-ready --timeout 60s --addr 127.0.0.1:28081 >/dev/null 2>&1
  "$M" keyspace create default --strategy sync --shards 1 --home r1 --addr 127.0.0.1:28081 >/dev/null || exit 1
  for _ in $(seq 100); do redis-cli -p 26381 set warm 1 2>/dev/null | grep -q OK && break; sleep 0.3; done
  redis-benchmark -p 26381 -t set -c 50 -n "$N" -q 2>/dev/null | rate
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
}

redis_run() { # $1: extra redis-server args; then redis-benchmark args
  local extra=$1; shift
  rm -rf "$TMP/r"; mkdir -p "$TMP/r"
  redis-server --port 16379 --dir "$TMP/r" --save '' $extra >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 50); do redis-cli -p 16379 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis-benchmark -p 16379 "$@" -q 2>/dev/null | rate
  kill $pid; wait $pid 2>/dev/null
}

demo_run() { # redis-benchmark args
  rm -rf "$TMP/demo"
  "$M" demo --regions us-east --latency none --insecure --base-port 17379 --data-dir "$TMP/demo" >"$TMP/demo.log" 2>&1 & local pid=$!
  for _ in $(seq 150); do redis-cli -p 17379 set warm 1 2>/dev/null | grep -q OK && break; sleep 0.2; done
  redis-benchmark -p 17379 "$@" -q 2>/dev/null | rate
  kill $pid; wait $pid 2>/dev/null
}

for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  echo "durable SET, 3 replicas   etcd (benchmark put):      $(etcd_put)"
  echo "durable SET, 3 replicas   meridian (redis-benchmark): $(meridian_set3)"
  echo "GET, one node             redis:                     $(redis_run '' -t get -c 50 -n 100000)"
  echo "GET, one node             meridian:                  $(demo_run -t get -c 50 -n 100000)"
  echo "SET -P 16, durable        redis appendfsync always:  $(redis_run '--appendonly yes --appendfsync always' -t set -c 50 -n 200000 -P 16)"
  echo "SET -P 16, durable        meridian:                  $(demo_run -t set -c 50 -n 200000 -P 16)"
done
