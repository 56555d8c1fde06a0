#!/usr/bin/env bash
# loop-states.sh - where the node's three busy goroutines spend a second
# under load: the RESP event loop, the raft loop and Pebble's WAL writer.
# It starts the one-region demo of the working tree's binary (`meridian
# demo --regions us-east --latency none --insecure`), drives it with
# redis-benchmark (the arguments given, default a durable SET at -c 50),
# takes a one-second execution trace from /debug/pprof/trace while the
# load runs, and prints, per goroutine, the share of the second in each
# state (running, runnable, waiting and why, in which system call), then
# how long the WAL's fdatasyncs and the event loop's reply writes took.
# Usage: bash bench/loop-states.sh [redis-benchmark args]
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- -t set -c 50 -n 400000
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
go build -o "$TMP/meridian" ./cmd/meridian || exit 1
"$TMP/meridian" demo --regions us-east --latency none --insecure --base-port 18379 --data-dir "$TMP/demo" >"$TMP/demo.log" 2>&1 &
for _ in $(seq 150); do redis-cli -p 18379 ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
redis-benchmark -p 18379 "$@" -q >"$TMP/bench" 2>&1 &
sleep 2 # (the load under way)
curl -sf "http://127.0.0.1:19379/debug/pprof/trace?seconds=1" >"$TMP/trace" || { echo "no trace"; exit 1; }
wait %2 2>/dev/null
tr '\r' '\n' <"$TMP/bench" | grep "per second" | tail -1
go tool trace -d=parsed "$TMP/trace" 2>/dev/null | awk '
function kind(stk, to, reason) {
  if (to == "Syscall") {
    if (stk ~ /EpollWait/) return "syscall: epoll_wait"
    if (stk ~ /Fdatasync/) return "syscall: fdatasync"
    if (stk ~ /loopConn\)\.Write/) return "syscall: reply write"
    if (stk ~ /loopConn\)\.Read/) return "syscall: request read"
    if (stk ~ /eventLoop\)\.signal/) return "syscall: eventfd write"
    return "syscall: other"
  }
  if (to == "Waiting") {
    if (stk ~ /commitPipeline/) return "waiting: Pebble commit"
    if (stk ~ /flushLoop/) return "waiting: for a write"
    return "waiting: " reason
  }
  return tolower(to)
}
function done(   d) {
  if (!have) return
  if (from == "Running") {
    if (stk ~ /eventLoop\)\.run/) name[g] = "event loop"
    else if (stk ~ /Host\)\.loop|Host\)\.processReady|readyRound/) name[g] = "raft loop"
    else if (stk ~ /LogWriter\)\.flushLoop/) name[g] = "WAL writer"
  }
  if (g in at) {
    d = t - at[g]; spent[g, st[g]] += d; sum[g] += d; seen[g, st[g]] = 1
    if (st[g] == "syscall: fdatasync") { nf++; tf += d }
    if (st[g] == "syscall: reply write") { nw++; tw += d }
  }
  at[g] = t; st[g] = kind(stk, to, reason); have = 0
}
/^M=/ {
  done()
  if (match($0, /StateTransition Time=[0-9]+ GoID=[0-9]+ [A-Za-z]+->[A-Za-z]+/)) {
    split(substr($0, RSTART, RLENGTH), f, /[ =]|->/)
    t = f[3]; g = f[5]; from = f[6]; to = f[7]
    reason = ""; if (match($0, /Reason="[^"]*"/)) reason = substr($0, RSTART + 8, RLENGTH - 9)
    stk = ""; have = 1
  }
  next
}
/^\t[^\t]/ { if (have) stk = stk " " $1 }
END {
  done()
  for (g in name) {
    printf "%s (goroutine %s), %.0f ms traced:\n", name[g], g, sum[g] / 1e6
    for (k in seen) { split(k, p, SUBSEP); if (p[1] == g) printf "  %5.1f%%  %s\n", 100 * spent[g, p[2]] / sum[g], p[2] | "sort -rn" }
    close("sort -rn")
  }
  if (nf) printf "fdatasync: %d, mean %.0f us\n", nf, tf / nf / 1e3
  if (nw) printf "reply writes of the event loop: %d, mean %.1f us\n", nw, tw / nw / 1e3
}'
