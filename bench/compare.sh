#!/usr/bin/env bash
# compare.sh - Meridian against its peers on this machine, in one pass, each
# peer driven by its own tool, and the table of issue 16 with the ratios
# Meridian / peer. Meant for the 2-core development machine the README's
# figures come from (on small, noisy machines only ratios measured in the
# same run mean anything: BENCHMARKS.md); it runs everything on 127.0.0.1,
# with all data in a temporary directory removed at exit.
#
# What it runs, ROUNDS times (medians reported when ROUNDS > 1):
#   1. GET -c 50 and GET -P 16 (redis-benchmark): a one-region demo
#      (`meridian demo --regions us-east --latency none --insecure`)
#      against `redis-server --save ''`;
#   2. durable SET -c 50 and -P 16 (redis-benchmark): the same demo (a sync
#      keyspace: an fsync per write) against redis-server with
#      appendfsync always;
#   3. 3 replicas, durable SET -c 50: three `meridian start` processes
#      (regions r1 r2 r3, a sync keyspace of one shard, home r1) under
#      redis-benchmark, against a 3-member etcd under etcd's own
#      `benchmark put --clients 50 --conns 10` (built from the etcd module,
#      go.etcd.io/etcd/v3@v3.6.8 tools/benchmark, cached in
#      ~/.cache/meridian/etcd-benchmark);
#   4. Meridian only: `meridian bench --workload W --pipeline D` (writes
#      only, 50 clients, D in WAN_PIPELINES) on the emulated world matrix
#      (inproc:world) against the same on loopback (inproc:none): the
#      ratio of the write throughputs.
# Then once:
#   5. idle cost: three `meridian start` processes (r1 r2 r3) hosting G
#      groups (sync keyspaces, at most 250 shards each; the first is
#      "default") for G in 1, 100 and IDLE_BIG: the time to create them,
#      every node's CPU (% of one core, /proc/PID/stat utime+stime over
#      IDLE_SECONDS after SETTLE seconds) and RSS, the CPU and KiB per idle
#      group (the increase over G = 1, divided by G - 1), and
#      redis-benchmark SET -c 50 throughput at node 1 with the G groups
#      present (its writes go to the keyspace "default" only);
#   6. KEYS keys (1M) of 100 bytes (base64 of random bytes), loaded with
#      `redis-cli --pipe` from the same generated stream of SET key:I VALUE
#      into the one-region demo and into redis-server (--save ''): DBSIZE,
#      Meridian's data directory size (du, once it has stopped growing) per
#      key and its RSS, next to Redis's used_memory (INFO memory) and RSS.
# Every system's raw figures are printed as they come, then the markdown
# table: figure, Meridian, peer, ratio, target, met.
#
# Usage: bash bench/compare.sh             (from anywhere in the repository)
#        QUICK=1 bash bench/compare.sh     (a fast smoke run, small counts)
# Knobs (environment variables, defaults in brackets; QUICK=1 lowers them):
#   ROUNDS [1]         rounds of 1-4
#   N [100000]         requests of the -c 50 runs (GET, durable SET one node)
#   NP [2000000]       requests of the -P 16 runs (Redis answers 200,000
#                      pipelined GETs in a seventh of a second: too short
#                      a run to give a steady figure)
#   N3 [30000]         requests of the 3-replica runs (redis-benchmark, etcd)
#   WAN_DURATION [10s] length of each `meridian bench` run of 4
#   WAN_PIPELINES ["16 64 256"] the pipeline depths of 4 (at 16 and 64 the
#                      quorum round trip bounds the world run below 0.8 x
#                      of loopback; 256 covers it)
#   QUIESCE_AFTER [2s]  --quiesce-after of the meridian start processes
#                      (0: groups never quiesce; 2s is the default)
#   IDLE_BIG [10000]   the large G of 5 (40 keyspaces x 250 shards; creating
#                      them takes minutes); 0 skips it
#   IDLE_SECONDS [20]  CPU measured over this long   SETTLE [15] seconds first
#   KEYS [1000000]     keys of 6; 0 skips 6
#   PORT_BASE [21000]  every port is PORT_BASE + something (see below); all
#                      of them must lie below the kernel's ephemeral range
#   KEEP_TMP []        non-empty: keep the temporary directory (logs)
# Needs (installed with apt-get when missing): redis-server, redis-tools,
# etcd-server, etcd-client, jq, curl; go to build meridian (and etcd's
# benchmark tool once).
set -uo pipefail

QUICK=${QUICK:-}
if [[ -n $QUICK ]]; then
	: "${N:=2000}" "${NP:=20000}" "${N3:=2000}" "${WAN_DURATION:=2s}" "${IDLE_BIG:=200}"
	: "${IDLE_SECONDS:=4}" "${SETTLE:=3}" "${KEYS:=20000}"
fi
ROUNDS=${ROUNDS:-1}
N=${N:-100000}
NP=${NP:-2000000}
N3=${N3:-30000}
WAN_DURATION=${WAN_DURATION:-10s}
WAN_PIPELINES=${WAN_PIPELINES:-16 64 256}
QUIESCE_AFTER=${QUIESCE_AFTER:-2s}
IDLE_BIG=${IDLE_BIG:-10000}
IDLE_SECONDS=${IDLE_SECONDS:-20}
SETTLE=${SETTLE:-15}
KEYS=${KEYS:-1000000}
KEEP_TMP=${KEEP_TMP:-}
PORT_BASE=${PORT_BASE:-21000}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }
for v in ROUNDS N NP N3 IDLE_BIG IDLE_SECONDS SETTLE KEYS PORT_BASE; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((IDLE_SECONDS >= 1)) || die "IDLE_SECONDS must be at least 1"

# --- packages and tools --------------------------------------------------------

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v go >/dev/null || die "go is not installed (needed to build meridian)"
if ((${#need[@]} > 0)); then
	SUDO=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || die "need root or sudo to install: ${need[*]}"
		SUDO=(sudo)
	fi
	log "installing ${need[*]}"
	"${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "cannot install ${need[*]}"
fi
case $(uname -m) in
aarch64 | arm64) export ETCD_UNSUPPORTED_ARCH=arm64 ;;
esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meridian-compare.XXXXXX")
FIG=$TMP/fig # one file per figure, one value per round
mkdir -p "$FIG"
PIDS=()
cleanup() {
	local status=$?
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null; done
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null; done
	if [[ -n $KEEP_TMP ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ports, from PORT_BASE [21000]: redis +379, the demo +1379 (its HTTP
# +2379), etcd +3791-3 (clients) and +3801-3 (peers), meridian start
# +4401-3 (nodes), +4501-3 (RESP), +4601-3 (HTTP).
RPORT=$((PORT_BASE + 379)) DPORT=$((PORT_BASE + 1379)) EPORT=$((PORT_BASE + 3790)) EPEER=$((PORT_BASE + 3800))
MPEER=$((PORT_BASE + 4400)) MRESP=$((PORT_BASE + 4500)) MHTTP=$((PORT_BASE + 4600))
# A listening port inside the kernel's ephemeral range can be taken at any
# moment by an outgoing connection (a client's, a node's), and a server
# started later then fails to bind it: refuse such a layout up front.
if read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
	((PORT_BASE + 4603 < EPH_LO || PORT_BASE + 379 > EPH_HI)) ||
		die "ports $((PORT_BASE + 379))-$((PORT_BASE + 4603)) overlap the ephemeral range $EPH_LO-$EPH_HI (net.ipv4.ip_local_port_range), where outgoing connections take theirs: set PORT_BASE to move every port out of it"
fi
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# ports_free PORT...: die unless every port is free (checked before each start).
ports_free() {
	local p
	for p in "$@"; do
		port_free "$p" || die "port $p on 127.0.0.1 is in use (set PORT_BASE to move every port)"
	done
}
ports_free $RPORT $DPORT $((DPORT + 1000)) $((EPORT + 1)) $((EPORT + 2)) $((EPORT + 3)) $((EPEER + 1)) $((EPEER + 2)) $((EPEER + 3)) \
	$((MPEER + 1)) $((MPEER + 2)) $((MPEER + 3)) $((MRESP + 1)) $((MRESP + 2)) $((MRESP + 3)) $((MHTTP + 1)) $((MHTTP + 2)) $((MHTTP + 3))

log "building meridian"
(cd "$ROOT" && go build -o "$TMP/meridian" ./cmd/meridian) || die "go build failed"
M=$TMP/meridian
ETCD_BENCH=${ETCD_BENCH:-$HOME/.cache/meridian/etcd-benchmark}
if [[ ! -x $ETCD_BENCH ]]; then
	log "building etcd's benchmark tool (go.etcd.io/etcd/v3@v3.6.8 tools/benchmark)"
	mkdir -p "$TMP/eb" "$(dirname "$ETCD_BENCH")"
	(cd "$TMP/eb" && printf 'module etcdbench\n\ngo 1.26\n' >go.mod &&
		go get go.etcd.io/etcd/v3@v3.6.8 && go build -o "$ETCD_BENCH" go.etcd.io/etcd/v3/tools/benchmark) ||
		die "cannot build etcd's benchmark tool"
fi

# --- helpers -------------------------------------------------------------------

# start NAME COMMAND...: run COMMAND in the background (log $TMP/NAME.log);
# its pid is in $LAST.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	LAST=$!
	PIDS+=("$LAST")
}
# stop PID...: end processes this script started and wait for them.
stop() {
	kill "$@" 2>/dev/null
	wait "$@" 2>/dev/null
	local keep=() p q
	for p in ${PIDS[@]+"${PIDS[@]}"}; do
		for q in "$@"; do [[ $p == "$q" ]] && continue 2; done
		keep+=("$p")
	done
	PIDS=(${keep[@]+"${keep[@]}"})
}
# wait_for WHAT SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what (KEEP_TMP=1 keeps the logs)"
		sleep 0.2
	done
}
resp_ok() { [[ $(redis-cli -p "$1" set compare:probe 1 2>/dev/null) == OK ]]; }
# rec NAME VALUE: one round's value of a figure.
rec() { echo "$2" >>"$FIG/$1"; }
# med NAME: the median of a figure's values ("" when there are none).
med() {
	[[ -s $FIG/$1 ]] || return 0
	sort -g "$FIG/$1" | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# vals NAME: every round's values, "a / b / c".
vals() { [[ -s $FIG/$1 ]] && paste -sd/ "$FIG/$1" | sed 's|/| / |g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print ""; else printf "%.2f\n", a / b }'; }
# rate R: 93457.9 -> 93.5k, 1400000 -> 1.40M
rate() { awk -v r="$1" 'BEGIN { if (r == "") print "-"; else if (r >= 1e6) printf "%.2fM\n", r / 1e6; else if (r >= 1e3) printf "%.1fk\n", r / 1e3; else printf "%.0f\n", r }'; }

# rb NAME PORT ARGS...: redis-benchmark -q; records NAME (requests/s) and
# NAME.p50 (ms) and prints the raw line.
rb() {
	local name=$1 port=$2
	shift 2
	local line
	line=$(redis-benchmark -p "$port" -q "$@" 2>/dev/null | tr '\r' '\n' | grep "requests per second" | tail -1)
	[[ -n $line ]] || die "redis-benchmark $* on port $port printed no result"
	printf '  %-34s redis-benchmark %s: %s\n' "$name" "$*" "$line"
	rec "$name" "$(awk '{print $2}' <<<"$line")"
	rec "$name.p50" "$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$line")"
}

# redis_start MODE: redis-server on $RPORT, MODE mem (--save '') or always
# (appendonly, appendfsync always); pid in $REDIS.
redis_start() {
	rm -rf "$TMP/redis"
	mkdir -p "$TMP/redis"
	local extra=(--appendonly no)
	[[ $1 == always ]] && extra=(--appendonly yes --appendfsync always)
	ports_free $RPORT
	start redis redis-server --bind 127.0.0.1 --port $RPORT --dir "$TMP/redis" --save '' "${extra[@]}"
	REDIS=$LAST
	wait_for redis-server 20 resp_ok $RPORT
	redis-cli -p $RPORT set key:__rand_int__ xyz >/dev/null # the key redis-benchmark GETs
}

# demo_start: a one-region demo, RESP on $DPORT; pid in $DEMO, data in
# $TMP/demo.
demo_start() {
	rm -rf "$TMP/demo"
	ports_free $DPORT $((DPORT + 1000))
	start demo "$M" demo --regions us-east --latency none --insecure --base-port $DPORT --data-dir "$TMP/demo"
	DEMO=$LAST
	wait_for "the demo" 120 resp_ok $DPORT
	redis-cli -p $DPORT set key:__rand_int__ xyz >/dev/null
}

etcd_put() {
	local d="$TMP/etcd" pids=() i out cluster="e1=http://127.0.0.1:$((EPEER + 1)),e2=http://127.0.0.1:$((EPEER + 2)),e3=http://127.0.0.1:$((EPEER + 3))"
	rm -rf "$d"
	mkdir -p "$d"
	ports_free $((EPORT + 1)) $((EPORT + 2)) $((EPORT + 3)) $((EPEER + 1)) $((EPEER + 2)) $((EPEER + 3))
	for i in 1 2 3; do
		start "etcd$i" etcd --name e$i --data-dir "$d/e$i" --listen-peer-urls http://127.0.0.1:$((EPEER + i)) \
			--initial-advertise-peer-urls http://127.0.0.1:$((EPEER + i)) --listen-client-urls http://127.0.0.1:$((EPORT + i)) \
			--advertise-client-urls http://127.0.0.1:$((EPORT + i)) --initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "compare-$$" --log-level error
		pids+=("$LAST")
	done
	wait_for "etcd" 60 env ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:$((EPORT + 1)) put warm 1
	# Like redis-benchmark's SET: 16-byte keys, 3-byte values.
	out=$("$ETCD_BENCH" put --endpoints 127.0.0.1:$((EPORT + 1)),127.0.0.1:$((EPORT + 2)),127.0.0.1:$((EPORT + 3)) --clients 50 --conns 10 \
		--total "$N3" --key-size 16 --val-size 3 2>/dev/null)
	stop "${pids[@]}"
	local rps p50
	rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '/ 50% in / {print $3 * 1000}' <<<"$out")
	[[ -n $rps ]] || die "etcd's benchmark put printed no Requests/sec"
	printf '  %-34s benchmark put --clients 50 --conns 10 --total %s: %s put/s, p50 %s ms\n' etcd3.set "$N3" "$rps" "$p50"
	rec etcd3.set "$rps"
	rec etcd3.set.p50 "$p50"
}

# cluster_start G: three `meridian start` processes (r1 r2 r3) with G sync
# groups: keyspaces default, ks2, ks3... of at most 250 shards, home r1.
# Sets $CLUSTER (pids), $NGROUPS (groups made) and $CREATE_S (seconds from
# the first keyspace create until every node hosts every group and takes
# a write).
cluster_start() {
	local g=$1 d="$TMP/m3" i peers="1=r1@127.0.0.1:$((MPEER + 1)),2=r2@127.0.0.1:$((MPEER + 2)),3=r3@127.0.0.1:$((MPEER + 3))"
	rm -rf "$d"
	mkdir -p "$d"
	CLUSTER=()
	ports_free $((MPEER + 1)) $((MPEER + 2)) $((MPEER + 3)) $((MRESP + 1)) $((MRESP + 2)) $((MRESP + 3)) $((MHTTP + 1)) $((MHTTP + 2)) $((MHTTP + 3))
	for i in 1 2 3; do
		start "m$i" "$M" start --id $i --region r$i --data-dir "$d/n$i" --listen 127.0.0.1:$((MPEER + i)) \
			--resp 127.0.0.1:$((MRESP + i)) --http 127.0.0.1:$((MHTTP + i)) --peers "$peers" --log-level warn \
			--quiesce-after "$QUIESCE_AFTER"
		CLUSTER+=("$LAST")
	done
	"$M" status --wait-ready --timeout 60s --addr 127.0.0.1:$((MHTTP + 1)) >"$TMP/ready.log" 2>&1 ||
		die "the meridian start nodes were not ready: $(tail -2 "$TMP/ready.log"); $(tail -qn 1 "$TMP"/m[123].log | tr '\n' ' ')"
	local k=$(((g + 249) / 250)) s t0 name
	s=$(((g + k - 1) / k))
	NGROUPS=$((k * s))
	t0=$(date +%s.%N)
	for ((i = 1; i <= k; i++)); do
		name=default
		((i > 1)) && name=ks$i
		"$M" keyspace create "$name" --strategy sync --shards "$s" --home r1 --addr 127.0.0.1:$((MHTTP + 1)) >>"$TMP/keyspaces.log" 2>&1 ||
			die "cannot create keyspace $name ($s shards; $TMP/keyspaces.log)"
	done
	# Created: every node hosts every group (and the metadata group).
	for i in 1 2 3; do
		wait_for "node $i to host $NGROUPS groups" 1800 hosts_at_least $((MHTTP + i)) $((NGROUPS + 1))
	done
	wait_for "the first write" 120 resp_ok $((MRESP + 1))
	CREATE_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }')
}

# groups_hosted HTTPPORT: the node's meridian_raft_groups gauge.
groups_hosted() { curl -fsS "http://127.0.0.1:$1/metrics" | awk '$1 == "meridian_raft_groups" {print $2 + 0}'; }
hosts_at_least() { local n; n=$(groups_hosted "$1") && [[ -n $n ]] && ((n >= $2)); }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- 1-4: rounds ---------------------------------------------------------------

HZ=$(getconf CLK_TCK)
for ((round = 1; round <= ROUNDS; round++)); do
	log "round $round of $ROUNDS"
	echo "== round $round"
	redis_start mem
	rb redis.get $RPORT -t get -c 50 -n "$N"
	rb redis.getp $RPORT -t get -c 50 -n "$NP" -P 16
	stop "$REDIS"
	redis_start always
	rb redis.set $RPORT -t set -c 50 -n "$N"
	rb redis.setp $RPORT -t set -c 50 -n "$NP" -P 16
	stop "$REDIS"
	demo_start
	rb meridian.get $DPORT -t get -c 50 -n "$N"
	rb meridian.getp $DPORT -t get -c 50 -n "$NP" -P 16
	rb meridian.set $DPORT -t set -c 50 -n "$N"
	rb meridian.setp $DPORT -t set -c 50 -n "$NP" -P 16
	stop "$DEMO"
	etcd_put
	cluster_start 1
	rb meridian3.set $((MRESP + 1)) -t set -c 50 -n "$N3"
	stop "${CLUSTER[@]}"
	for depth in $WAN_PIPELINES; do
		for lat in none world; do
			"$M" bench --target inproc:$lat --workload W --pipeline "$depth" --duration "$WAN_DURATION" --json >"$TMP/wan-$lat.json" 2>"$TMP/wan-$lat.log" ||
				die "meridian bench --target inproc:$lat failed: $(tail -3 "$TMP/wan-$lat.log")"
			up=$(jq -r '.ops[] | select(.op == "update") | .throughput_ops' "$TMP/wan-$lat.json")
			printf '  %-34s meridian bench --target inproc:%s --workload W --pipeline %s --duration %s: %s\n' "wan$depth.$lat" "$lat" "$depth" "$WAN_DURATION" \
				"$(jq -r '[.ops[] | "\(.op) \(.throughput_ops)/s p50 \(.p50_ms) ms"] | join(", ")' "$TMP/wan-$lat.json")"
			rec "wan$depth.$lat" "$up"
			if [[ $lat == world ]]; then
				# Closed-loop clients with D requests in flight each write
				# at most clients x D per quorum round trip (the floor).
				rec "wan$depth.bound" "$(jq -r '.clients * .pipeline * 1000 / (.ops[] | select(.op == "update") | .floor_ms) | floor' "$TMP/wan-$lat.json")"
			fi
		done
	done
done

# --- 5: idle cost ----------------------------------------------------------------

echo "== idle cost (3 meridian start processes, sync keyspaces of at most 250 shards, $SETTLE s settle, CPU over $IDLE_SECONDS s)"
IDLE_GS=(1 100)
((IDLE_BIG > 0)) && IDLE_GS+=("$IDLE_BIG")
declare -A IDLE
for g in "${IDLE_GS[@]}"; do
	log "idle cost with $g groups"
	cluster_start "$g"
	sleep "$SETTLE" # settle: elections, and whatever follows keyspace creation, are over
	t0=()
	for i in 0 1 2; do t0+=("$(cpu_ticks "${CLUSTER[$i]}")"); done
	sleep "$IDLE_SECONDS" # the measurement window: nothing else to wait for
	cpus=() rsss=() hosted=()
	for i in 0 1 2; do
		cpus+=("$(awk -v a="${t0[$i]}" -v b="$(cpu_ticks "${CLUSTER[$i]}")" -v hz="$HZ" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.2f\n", 100 * (b - a) / hz / s }')")
		rsss+=("$(rss_kib "${CLUSTER[$i]}")")
		hosted+=("$(groups_hosted $((MHTTP + i + 1)))")
	done
	rb "idle$g.set" $((MRESP + 1)) -t set -c 50 -n "$N3"
	stop "${CLUSTER[@]}"
	cpu_max=$(printf '%s\n' "${cpus[@]}" | sort -g | tail -1)
	rss_max=$(printf '%s\n' "${rsss[@]}" | sort -g | tail -1)
	IDLE[$g.groups]=$NGROUPS IDLE[$g.create]=$CREATE_S IDLE[$g.cpu]=$cpu_max IDLE[$g.rss]=$rss_max
	printf '  %-34s %s groups (%s hosted per node, metadata included) created in %s s; CPU %% of a core per node %s; RSS KiB %s\n' \
		"idle$g" "$NGROUPS" "${hosted[*]}" "$CREATE_S" "${cpus[*]}" "${rsss[*]}"
done

# --- 6: 1M keys ------------------------------------------------------------------

if ((KEYS > 0)); then
	echo "== $KEYS keys of 100 bytes, loaded with redis-cli --pipe"
	log "generating $KEYS SET commands"
	base64 -w 100 /dev/urandom | head -n "$KEYS" |
		awk '{k = "key:" (NR - 1); printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n", length(k), k, $0}' >"$TMP/keys.resp"
	# load PORT: redis-cli --pipe, checking the errors count; prints DBSIZE.
	load() {
		local out
		out=$(redis-cli -p "$1" --pipe <"$TMP/keys.resp" 2>&1)
		grep -q "errors: 0," <<<"$out" || die "redis-cli --pipe to port $1: $(tail -2 <<<"$out")"
		redis-cli -p "$1" dbsize
	}
	redis_start mem
	redis-cli -p $RPORT del key:__rand_int__ compare:probe >/dev/null
	t0=$SECONDS
	rkeys=$(load $RPORT)
	rused=$(redis-cli -p $RPORT info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
	rrss=$(rss_kib "$REDIS")
	printf '  %-34s DBSIZE %s (loaded in %d s), used_memory %s B (%.1f B/key), RSS %s KiB\n' redis.keys "$rkeys" $((SECONDS - t0)) \
		"$rused" "$(awk -v a="$rused" -v k="$rkeys" 'BEGIN { print a / k }')" "$rrss"
	stop "$REDIS"
	demo_start
	redis-cli -p $DPORT del key:__rand_int__ compare:probe >/dev/null
	before=$(du -sb "$TMP/demo" | cut -f1)
	t0=$SECONDS
	mkeys=$(load $DPORT)
	loaded_s=$((SECONDS - t0))
	# Settle: until the data directory stops changing (flushes and
	# compactions done), polled every 2 s, at most 120 s.
	prev=-1 cur=$(du -sb "$TMP/demo" | cut -f1) deadline=$((SECONDS + 120))
	while [[ $cur != "$prev" ]] && ((SECONDS < deadline)); do
		sleep 2
		prev=$cur cur=$(du -sb "$TMP/demo" | cut -f1)
	done
	mdisk=$((cur - before))
	mrss=$(rss_kib "$DEMO")
	stop "$DEMO"
	mdisk_stopped=$(($(du -sb "$TMP/demo" | cut -f1) - before))
	printf '  %-34s DBSIZE %s (loaded in %d s), data dir +%s B running (%.1f B/key), +%s B after it stopped, RSS %s KiB (one node, in-process)\n' \
		meridian.keys "$mkeys" "$loaded_s" "$mdisk" "$(awk -v a="$mdisk" -v k="$mkeys" 'BEGIN { print a / k }')" "$mdisk_stopped" "$mrss"
fi

# --- the table -------------------------------------------------------------------

# row FIGURE MERIDIAN PEER RATIO TARGET-RATIO: a table row; met when
# RATIO >= TARGET-RATIO.
row() {
	local met=-
	[[ -n $4 ]] && met=$(awk -v r="$4" -v t="$5" 'BEGIN { print (r >= t) ? "yes" : "no" }')
	printf '| %s | %s | %s | %s | >= %s x | %s |\n' "$1" "$2" "$3" "${4:+$4 x}" "$5" "$met"
}
# fig NAME: "median/s (p50 x ms)" and every round's values when ROUNDS > 1.
fig() {
	local s
	s="$(rate "$(med "$1")")/s"
	[[ -s $FIG/$1.p50 ]] && s+=" (p50 $(med "$1.p50") ms)"
	((ROUNDS > 1)) && s+="; rounds $(vals "$1")"
	printf '%s' "$s"
}
echo
echo "machine: $(nproc) cores, $(awk '/^model name/ {sub(/^[^:]*: /, ""); print; exit}' /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), $(etcd --version | head -1), meridian $(cd "$ROOT" && git describe --always --dirty 2>/dev/null)"
echo "ROUNDS=$ROUNDS N=$N NP=$NP N3=$N3 WAN_DURATION=$WAN_DURATION${QUICK:+ (QUICK)}; figures are medians of the rounds"
echo
echo "| figure | Meridian | peer | ratio | target | met |"
echo "| --- | --- | --- | --- | --- | --- |"
row "GET, -c 50 (redis-benchmark -n $N)" "$(fig meridian.get)" "Redis $(fig redis.get)" "$(ratio "$(med meridian.get)" "$(med redis.get)")" 1.0
row "GET, -P 16 (-n $NP)" "$(fig meridian.getp)" "Redis $(fig redis.getp)" "$(ratio "$(med meridian.getp)" "$(med redis.getp)")" 0.8
row "durable SET, one node, -c 50 (-n $N)" "$(fig meridian.set)" "Redis appendfsync always $(fig redis.set)" "$(ratio "$(med meridian.set)" "$(med redis.set)")" 0.8
row "durable SET, -P 16 (-n $NP)" "$(fig meridian.setp)" "Redis appendfsync always $(fig redis.setp)" "$(ratio "$(med meridian.setp)" "$(med redis.setp)")" 0.5
row "3 replicas, durable SET, -c 50 (-n $N3; etcd: benchmark put, 50 clients, 10 conns)" "$(fig meridian3.set)" "etcd 3 members $(fig etcd3.set)" "$(ratio "$(med meridian3.set)" "$(med etcd3.set)")" 2
for depth in $WAN_PIPELINES; do
	row "WAN write throughput, pipelined (meridian bench --workload W --pipeline $depth, 50 clients, $WAN_DURATION: writes/s)" "world $(fig wan$depth.world); at most $(rate "$(med wan$depth.bound)")/s (50 x $depth in flight over the quorum round trip)" "loopback $(fig wan$depth.none)" "$(ratio "$(med wan$depth.world)" "$(med wan$depth.none)")" 0.8
done
for g in "${IDLE_GS[@]}"; do
	groups=${IDLE[$g.groups]}
	per=""
	if ((groups > 1)); then
		per=$(awk -v c="${IDLE[$g.cpu]}" -v c1="${IDLE[1.cpu]}" -v r="${IDLE[$g.rss]}" -v r1="${IDLE[1.rss]}" -v g="$groups" \
			'BEGIN { printf "; per idle group %.4f %% of a core, %.1f KiB", (c - c1) / (g - 1), (r - r1) / (g - 1) }')
	fi
	printf '| idle, G = %s groups on each of 3 nodes (created in %s s) | CPU %s %% of a core (busiest node), RSS %s MiB%s; SET -c 50 with them present (keyspace default only) %s | - | - | <= 5 %% of a core at 10000 groups | %s |\n' \
		"$groups" "${IDLE[$g.create]}" "${IDLE[$g.cpu]}" "$(awk -v r="${IDLE[$g.rss]}" 'BEGIN { printf "%.0f", r / 1024 }')" "$per" "$(fig "idle$g.set")" \
		"$(awk -v c="${IDLE[$g.cpu]}" -v g="$groups" 'BEGIN { print (g < 10000) ? "-" : (c <= 5 ? "yes" : "no") }')"
done
if ((KEYS > 0)); then
	printf '| %s keys of 100 B (redis-cli --pipe) | disk %.1f B/key (%s MiB), RSS %s MiB | Redis used_memory %.1f B/key (%s MiB), RSS %s MiB | - | - | - |\n' \
		"$mkeys" "$(awk -v a="$mdisk" -v k="$mkeys" 'BEGIN { print a / k }')" "$(awk -v a="$mdisk" 'BEGIN { printf "%.1f", a / 1048576 }')" \
		"$(awk -v r="$mrss" 'BEGIN { printf "%.0f", r / 1024 }')" "$(awk -v a="$rused" -v k="$rkeys" 'BEGIN { print a / k }')" \
		"$(awk -v a="$rused" 'BEGIN { printf "%.1f", a / 1048576 }')" "$(awk -v r="$rrss" 'BEGIN { printf "%.0f", r / 1024 }')"
fi
