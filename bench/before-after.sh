#!/usr/bin/env bash
# before-after.sh OLD_REV - the same loads against the binary of OLD_REV
# and of the working tree, alternating, on this machine:
#   - redis-benchmark -t set,get -c 50 -n 100000 against a one-region demo
#     (--latency none; --insecure where the binary knows it);
#   - four `meridian start` processes on loopback, a sync keyspace in
#     r1, r2, r3 (node 4, in r4, holds no replica), redis-benchmark -t set
#     -c 50 -n N at the leader's node (1), at a replica's node (2: one hop
#     to the leader) and at node 4 (its write forwarded to a replica's node).
# With LOAD set (redis-benchmark arguments, -n among them), the demo runs
# that load alone instead, each run followed by the demo's CPU per request
# (its user and system time from /proc/PID/stat over the run, divided by
# -n), and the four processes are skipped. AFTER_ENV (VAR=value ...) is
# the environment of the working tree's processes only: with OLD_REV
# HEAD, the same code without and with it.
# Usage: ROUNDS=3 N=30000 bash bench/before-after.sh adc9167
#        LOAD="-t get -c 50 -P 16 -n 2000000" bash bench/before-after.sh cf8d3c2
#        AFTER_ENV="GOMAXPROCS=3" LOAD="-t set -c 50 -n 200000" bash bench/before-after.sh HEAD
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/proc.sh
OLD=${1:?usage: bench/before-after.sh OLD_REV}
ROUNDS=${ROUNDS:-3}
N=${N:-30000}
LOAD=${LOAD:-}
if [[ -n $LOAD ]]; then
  read -ra load <<<"$LOAD"
  loadn=$(requests_of "${load[@]}")
  [[ $loadn =~ ^[0-9]+$ ]] || { echo "LOAD needs -n N"; exit 2; }
fi
read -ra after_env <<<"${AFTER_ENV:-}"
for e in "${after_env[@]}"; do
  [[ $e == *=* ]] || { echo "AFTER_ENV takes VAR=value words (got $e)"; exit 2; }
done
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; git worktree remove --force "$TMP/old" 2>/dev/null; rm -rf "$TMP"' EXIT
git worktree add -f --detach "$TMP/old" "$OLD" >/dev/null || exit 1
(cd "$TMP/old" && go build -o "$TMP/before" ./cmd/meridian) || exit 1
go build -o "$TMP/after" ./cmd/meridian || exit 1

rates() { tr '\r' '\n' | grep "requests per second" | tr '\n' ' '; }

# run BINARY ARGS... &: the binary in the background, with AFTER_ENV if
# it is the working tree's; it execs, so $! is the binary's own process.
run() {
  local bin=$1; shift
  if [[ $bin == "$TMP/after" ]]; then exec env "${after_env[@]}" "$bin" "$@"; else exec "$bin" "$@"; fi
}

demo() { # binary
  local bin=$1 extra=()
  "$bin" demo --help 2>&1 | grep -q -- --insecure && extra=(--insecure)
  rm -rf "$TMP/demo"
  run "$bin" demo --regions us-east --latency none --base-port 17379 --data-dir "$TMP/demo" "${extra[@]}" >"$TMP/demo.log" 2>&1 & local pid=$!
  for _ in $(seq 150); do redis-cli -p 17379 set warm 1 2>/dev/null | grep -q OK && break; sleep 0.2; done
  if [[ -n $LOAD ]]; then
    local u0 s0 u1 s1
    read -r u0 s0 < <(cpu_ticks "$pid")
    redis-benchmark -p 17379 "${load[@]}" -q 2>/dev/null | rates
    read -r u1 s1 < <(cpu_ticks "$pid")
    awk -v d=$((u1 + s1 - u0 - s0)) -v n="$loadn" -v t="$(getconf CLK_TCK)" 'BEGIN{printf "| node CPU per request %.3f us\n", d * 1e6 / t / n}'
  else
    redis-benchmark -p 17379 -t set,get -c 50 -n 100000 -q 2>/dev/null | rates; echo
  fi
  kill $pid; wait $pid 2>/dev/null
}

four() { # binary
  local bin=$1 d="$TMP/four" pids=() peers="1=r1@127.0.0.1:27401,2=r2@127.0.0.1:27402,3=r3@127.0.0.1:27403,4=r4@127.0.0.1:27404"
  rm -rf "$d"; mkdir -p "$d"
  for i in 1 2 3 4; do
    run "$bin" start --id $i --region r$i --data-dir "$d/n$i" --listen 127.0.0.1:2740$i --resp 127.0.0.1:2638$i \
      --http 127.0.0.1:2808$i --peers $peers --log-level warn >"$d/n$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 150); do curl -sf http://127.0.0.1:28081/v1/cluster >/dev/null 2>&1 && break; sleep 0.2; done
  "$bin" keyspace create default --strategy sync --shards 1 --home r1 --regions r1,r2,r3 --addr 127.0.0.1:28081 >/dev/null || exit 1
  for _ in $(seq 100); do redis-cli -p 26381 set warm 1 2>/dev/null | grep -q OK && break; sleep 0.3; done
  for i in 1 2 4; do
    echo -n "node $i: "; redis-benchmark -p 2638$i -t set -c 50 -n "$N" -q 2>/dev/null | rates; echo
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
}

for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  for b in before after; do echo "$b demo: $(demo "$TMP/$b")"; done
  [[ -n $LOAD ]] && continue
  for b in before after; do echo "$b, four processes:"; four "$TMP/$b"; done
done
