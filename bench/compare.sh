#!/usr/bin/env bash
# compare.sh - run one YCSB-like workload against Redis, a 3-member etcd
# cluster and Meridian on this machine, side by side, and print Meridian's
# ratios to each peer. Every system goes through `meridian bench`, etcd
# through its JSON gateway: the workload is the same, but etcd is not
# driven by its own client; bench/own-tools.sh is the comparison to
# quote (BENCHMARKS.md: on small, noisy machines only ratios measured in
# the same run mean anything).
#
# Usage: bench/compare.sh            (from anywhere inside the repository)
#
# What it does:
#   1. installs what is missing from Debian packages: redis-server,
#      redis-tools, etcd-server, etcd-client, jq, curl (apt-get install -y);
#   2. starts, on 127.0.0.1 with all data in a temporary directory removed
#      at exit: redis-server (in memory, as redis-benchmark is usually run;
#      REDIS_FSYNC=always makes it append-only with an fsync per write), a
#      3-member etcd cluster (an fsync per write, like Meridian), and a
#      3-node Meridian cluster (`meridian start`, no emulated latency) with a
#      keyspace "default";
#   3. builds meridian (go build -o $TMP/meridian ./cmd/meridian) and runs
#      `meridian bench` with the same workload against each, then prints
#      throughput and latency of each system and the ratios
#      Meridian/Redis and Meridian/etcd, read from the JSON reports.
#
# The CLI of `meridian bench` (cmd/meridian/bench.go, package bench; this
# script passes --workload, --distribution, --records, --value-size,
# --clients, --duration, --target and --json):
#   meridian bench
#     --workload A|B|C|D|F|lag|converge|staleness
#                                 YCSB mix: A 50/50 read/update, B 95/5,
#                                 C read only, D read latest + 5% insert,
#                                 F 50% read, 50% read-modify-write;
#                                 in-process targets only: lag (replication
#                                 lag between regions), converge (active
#                                 convergence; --ops counts rounds),
#                                 staleness (bounded reads)
#     --distribution zipfian|uniform|latest
#                                 key distribution (default: the workload's)
#     --records N                 records loaded first and read/updated
#     --value-size BYTES          size of every value written (1 to 16 MiB)
#     --clients N                 concurrent clients, one connection each
#     --duration D | --ops N      length of the run phase (exactly one;
#                                 default --duration 10s)
#     --target resp://HOST:PORT              Meridian or Redis over RESP
#            | etcd://HOST:PORT[,HOST:PORT...] etcd v3 JSON gateway
#            | inproc:world | inproc:none    Meridian cluster in the process
#                                            (default inproc:world)
#     --json                      print the report as JSON on stdout
#                                 (progress goes to stderr)
#     --keyspace NAME             Meridian keyspace (MERIDIAN.KEYSPACE)
#     --consistency LEVEL         Meridian read level (MERIDIAN.CONSISTENCY);
#                                 etcd: serializable
#     --region R, --regions A,B,C, --base-port P, --fsync-samples N
#                                 in-process clusters
#     --seed N, --no-load, --lag-timeout D
#     --staleness D               the staleness workload's bound (default 1s)
#   The JSON report has "total" and "ops" entries, each with "count",
#   "errors", "throughput_ops", "p50_ms", "p95_ms", "p99_ms", "p999_ms"
#   (and "floor_ms", "p50_over_floor", "p99_over_floor" where a floor is
#   known: in-process targets, which also get "floors"; the lag workload
#   adds "lag", one entry per region; converge adds "converge", staleness
#   "staleness", one entry per region).
#
# Knobs (environment variables, defaults in brackets):
#   WORKLOAD [A]  DISTRIBUTION [zipfian]  RECORDS [10000]  VALUE_SIZE [256]
#   CLIENTS [50]  DURATION [10s]
#   REDIS_PORT [16379]  ETCD_BASE_PORT [23790] (uses 6 ports from there)
#   MERIDIAN_BASE_PORT [24000] (uses 3 ports each at +0, +10, +20)
#   MERIDIAN_SHARDS [3]
#   MERIDIAN_TARGET []  bench this target (e.g. inproc:none) instead of
#                       starting a 3-process Meridian cluster
#   REDIS_FSYNC []      "always": Redis appendonly with appendfsync always
#   KEEP_TMP []         non-empty: keep the temporary directory (logs, JSON)
set -euo pipefail

WORKLOAD=${WORKLOAD:-A}
DISTRIBUTION=${DISTRIBUTION:-zipfian}
RECORDS=${RECORDS:-10000}
VALUE_SIZE=${VALUE_SIZE:-256}
CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-10s}
REDIS_PORT=${REDIS_PORT:-16379}
ETCD_BASE_PORT=${ETCD_BASE_PORT:-23790}
MERIDIAN_BASE_PORT=${MERIDIAN_BASE_PORT:-24000}
MERIDIAN_SHARDS=${MERIDIAN_SHARDS:-3}
MERIDIAN_TARGET=${MERIDIAN_TARGET:-}
REDIS_FSYNC=${REDIS_FSYNC:-}
KEEP_TMP=${KEEP_TMP:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. packages -------------------------------------------------------------

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v go >/dev/null || die "go is not installed (needed to build meridian)"
if ((${#missing[@]} > 0)); then
	SUDO=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
		SUDO=(sudo)
	fi
	log "installing ${missing[*]}"
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# etcd refuses to start on architectures it does not officially support
# unless told otherwise.
case $(uname -m) in
aarch64 | arm64) export ETCD_UNSUPPORTED_ARCH=arm64 ;;
esac

# --- helpers -----------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-compare.XXXXXX")
PIDS=()

cleanup() {
	local status=$?
	# Stop only what this script started, by pid.
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $KEEP_TMP ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			die "timed out after ${secs}s waiting for $what (logs in $TMP; KEEP_TMP=1 keeps them)"
		fi
		sleep 0.2
	done
}

# start NAME COMMAND...: run COMMAND in the background, logging to $TMP/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
}

ports=("$REDIS_PORT")
for i in 0 1 2 3 4 5; do ports+=($((ETCD_BASE_PORT + i))); done
if [[ -z $MERIDIAN_TARGET ]]; then
	for i in 0 1 2; do
		ports+=($((MERIDIAN_BASE_PORT + i)) $((MERIDIAN_BASE_PORT + 10 + i)) $((MERIDIAN_BASE_PORT + 20 + i)))
	done
fi
for p in "${ports[@]}"; do
	port_free "$p" || die "port $p on 127.0.0.1 is in use (change REDIS_PORT, ETCD_BASE_PORT or MERIDIAN_BASE_PORT)"
done

# --- 2. build and start ------------------------------------------------------

log "building meridian"
(cd "$ROOT" && go build -o "$TMP/meridian" ./cmd/meridian)
MERIDIAN=$TMP/meridian

log "starting redis-server on 127.0.0.1:$REDIS_PORT"
mkdir -p "$TMP/redis"
redis_args=(--bind 127.0.0.1 --port "$REDIS_PORT" --dir "$TMP/redis" --save "" --daemonize no --protected-mode yes)
if [[ $REDIS_FSYNC == always ]]; then
	redis_args+=(--appendonly yes --appendfsync always)
else
	redis_args+=(--appendonly no)
fi
start redis redis-server "${redis_args[@]}"
wait_for "redis-server" 20 bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping) == PONG ]]"

log "starting a 3-member etcd cluster on 127.0.0.1:$ETCD_BASE_PORT-$((ETCD_BASE_PORT + 5))"
cluster=""
for i in 0 1 2; do
	cluster+="${cluster:+,}e$i=http://127.0.0.1:$((ETCD_BASE_PORT + 2 * i + 1))"
done
etcd_endpoints=""
for i in 0 1 2; do
	client=http://127.0.0.1:$((ETCD_BASE_PORT + 2 * i))
	peer=http://127.0.0.1:$((ETCD_BASE_PORT + 2 * i + 1))
	etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:$((ETCD_BASE_PORT + 2 * i))"
	start "etcd$i" etcd --name "e$i" --data-dir "$TMP/etcd$i" \
		--listen-client-urls "$client" --advertise-client-urls "$client" \
		--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
		--initial-cluster "$cluster" --initial-cluster-state new \
		--initial-cluster-token "meridian-compare-$$"
done
for i in 0 1 2; do
	wait_for "etcd member e$i" 60 bash -c \
		"curl -fsS http://127.0.0.1:$((ETCD_BASE_PORT + 2 * i))/health | jq -e '.health == \"true\"'"
done

if [[ -z $MERIDIAN_TARGET ]]; then
	log "starting a 3-node Meridian cluster on 127.0.0.1:$MERIDIAN_BASE_PORT-$((MERIDIAN_BASE_PORT + 22))"
	regions=(us-east eu-west ap-southeast)
	peers=""
	for i in 0 1 2; do
		peers+="${peers:+,}$((i + 1))=${regions[$i]}@127.0.0.1:$((MERIDIAN_BASE_PORT + i))"
	done
	for i in 0 1 2; do
		start "meridian$((i + 1))" "$MERIDIAN" start --id $((i + 1)) --region "${regions[$i]}" \
			--data-dir "$TMP/meridian$((i + 1))" \
			--listen "127.0.0.1:$((MERIDIAN_BASE_PORT + i))" \
			--resp "127.0.0.1:$((MERIDIAN_BASE_PORT + 10 + i))" \
			--http "127.0.0.1:$((MERIDIAN_BASE_PORT + 20 + i))" \
			--peers "$peers" --log-level warn
	done
	http0=127.0.0.1:$((MERIDIAN_BASE_PORT + 20))
	log "waiting until every Meridian node is ready"
	"$MERIDIAN" status --wait-ready --timeout 60s --addr "$http0" >/dev/null ||
		die "the Meridian nodes were not ready (logs in $TMP; KEEP_TMP=1 keeps them)"
	"$MERIDIAN" keyspace create default --shards "$MERIDIAN_SHARDS" --home us-east --addr "$http0" >&2 ||
		die "cannot create the keyspace default (logs in $TMP; KEEP_TMP=1 keeps them)"
	resp0=$((MERIDIAN_BASE_PORT + 10))
	wait_for "the first Meridian write" 60 bash -c \
		"[[ \$(redis-cli -h 127.0.0.1 -p $resp0 set compare:probe 1) == OK ]]"
	MERIDIAN_TARGET=resp://127.0.0.1:$resp0
fi

# --- 3. benchmark ------------------------------------------------------------

bench() { # bench NAME TARGET: run the workload against TARGET into $TMP/NAME.json
	log "benchmarking $1 ($2): workload $WORKLOAD, $DISTRIBUTION keys, $RECORDS records of $VALUE_SIZE B, $CLIENTS clients, $DURATION"
	"$MERIDIAN" bench --workload "$WORKLOAD" --distribution "$DISTRIBUTION" \
		--records "$RECORDS" --value-size "$VALUE_SIZE" --clients "$CLIENTS" \
		--duration "$DURATION" --target "$2" --json >"$TMP/$1.json"
	jq -e '.total.count >= 0' "$TMP/$1.json" >/dev/null || die "$1: the report is not the expected JSON"
}

bench redis "resp://127.0.0.1:$REDIS_PORT"
bench etcd "etcd://$etcd_endpoints"
bench meridian "$MERIDIAN_TARGET"

# --- 4. results ----------------------------------------------------------------

# field NAME JQ-PATH: a number from a report.
field() { jq -r "$2 // 0" "$TMP/$1.json"; }

echo
echo "workload $WORKLOAD, $DISTRIBUTION keys, $RECORDS records of $VALUE_SIZE B, $CLIENTS clients, $DURATION (redis: ${REDIS_FSYNC:-no} fsync)"
printf '%-10s %12s %8s %10s %10s %10s\n' system "ops/s" errors "p50 ms" "p99 ms" "p99.9 ms"
for s in redis etcd meridian; do
	printf '%-10s %12.0f %8d %10.3f %10.3f %10.3f\n' "$s" \
		"$(field "$s" .total.throughput_ops)" "$(field "$s" .total.errors)" \
		"$(field "$s" .total.p50_ms)" "$(field "$s" .total.p99_ms)" "$(field "$s" .total.p999_ms)"
done

# ratio A B: A/B with two decimals, "n/a" when B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

echo
printf '%-16s %14s %14s %14s\n' "" "throughput" "p50" "p99"
for peer in redis etcd; do
	printf '%-16s %14s %14s %14s\n' "meridian/$peer" \
		"$(ratio "$(field meridian .total.throughput_ops)" "$(field "$peer" .total.throughput_ops)")" \
		"$(ratio "$(field meridian .total.p50_ms)" "$(field "$peer" .total.p50_ms)")" \
		"$(ratio "$(field meridian .total.p99_ms)" "$(field "$peer" .total.p99_ms)")"
done
# Per operation kind, when both reports have it.
for op in $(jq -r '.ops[].op' "$TMP/meridian.json"); do
	for peer in redis etcd; do
		m=$(jq -r --arg op "$op" '.ops[] | select(.op == $op) | .throughput_ops' "$TMP/meridian.json")
		p=$(jq -r --arg op "$op" '(.ops[] | select(.op == $op) | .throughput_ops) // 0' "$TMP/$peer.json")
		m50=$(jq -r --arg op "$op" '.ops[] | select(.op == $op) | .p50_ms' "$TMP/meridian.json")
		p50=$(jq -r --arg op "$op" '(.ops[] | select(.op == $op) | .p50_ms) // 0' "$TMP/$peer.json")
		m99=$(jq -r --arg op "$op" '.ops[] | select(.op == $op) | .p99_ms' "$TMP/meridian.json")
		p99=$(jq -r --arg op "$op" '(.ops[] | select(.op == $op) | .p99_ms) // 0' "$TMP/$peer.json")
		printf '%-16s %14s %14s %14s\n' "  $op m/$peer" "$(ratio "$m" "$p")" "$(ratio "$m50" "$p50")" "$(ratio "$m99" "$p99")"
	done
done
echo
echo "(throughput ratio above 1 and latency ratios below 1 favour Meridian; Redis keeps data in memory"
echo " unless REDIS_FSYNC=always, etcd and Meridian fsync every write on 3 members)"
echo "(etcd is driven here through its JSON gateway, which costs it more than its own gRPC"
echo " client: bench/own-tools.sh drives every peer with its own tool, for the ratios to quote)"
