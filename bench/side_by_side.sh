#!/usr/bin/env bash
# side_by_side.sh — rush end to end against the usual Redis seckill stack, in one run, on one
# machine, under the same midnight load.
#
# What it runs (each server started here, on loopback, in a fresh temporary directory, and
# stopped before the next one starts, so no two measurements share the cores):
#
#   redis, appendfsync always     redis-server from Debian, appendonly yes, save ""
#   redis, appendfsync everysec   the same with everysec
#   redis, no persistence         appendonly no, save ""
#       each driven by build/bin/bench-redis: one EVALSHA of bench/redis/seckill.lua per click
#       (check the buyer set, check the stock, DECRBY, SADD, XADD to the order stream)
#   rush, durable, batched        build/bin/rushd with durability = fsync (a reply means the
#                                 decision is on disk), driven by rush-loadgen with --batch
#   rush, durable, unbatched      the same, one order per message
#   rush, unbatched, nanomsg      the same with rushd --tcp-transport nanomsg: its tcp:// endpoint
#                                 served through a nanomsg raw REP socket instead of its own
#                                 SP-over-TCP (what the transport is worth, in the same run)
#   rush, durable, JSON           one JSON order per message on rushd's JSON endpoint
#   rush, replicated (--replicated) the batched and one-order runs again with durability =
#                                 replicated: rushd as the only node of a [cluster] on three
#                                 nats-servers started here (a reply means the local fdatasync
#                                 AND a JetStream quorum's ack); the three servers run on the same
#                                 cores as rushd and the load, so these rows carry their CPU too
#   echo                          build/bin/bench-echo: answers every message at once, decides
#                                 nothing, over the same tcp:// transport as rushd's; rush-loadgen's
#                                 rate against it, one order per message, beside rushd's shows the
#                                 load generator is not the limit
#
# The load is rush-loadgen's midnight scenario on both sides: distinct buyers, each clicking
# once, on a few hot SKUs. By default the stock covers the crowd, so every click is an order that
# both systems must make durable (a sold-out click writes nothing in Redis, while rush logs every
# decision; --stock N runs the true sold-out-heavy midnight instead).
#
# Concurrency is counted in orders in flight: Redis and unbatched rush both run 50 connections x
# 16 in flight (800), the shape of `redis-benchmark -c 50 -P 16`, and again as one connection
# with 800 in flight (a gateway multiplexing its users on one pipelined connection; rush is much
# faster so, Redis a little). Batched rush carries more orders per message; so that its ratio is
# not bought with concurrency alone, Redis with appendfsync always is run a second time with the
# same number of orders in flight.
#
# Then open-loop sweeps (requests on a fixed schedule, latency from the intended send time, so
# queueing is charged; rush batched and one order per message, Redis) at fractions of each
# system's closed-loop throughput: throughput against
# p99, with the knee marked (the highest offered rate still served at >= 95% with a p99 under 10x
# the light-load p99).
#
# Every measurement is repeated --runs times (default 3), the runs one after another; the tables
# show the median of each figure, a ratio is taken within each run (both sides on the same
# machine minutes apart) and its median shown beside the runs' values, and the issue's targets
# are checked on those medians (MET / NOT MET; reported, not enforced by the exit status):
#   durable one order per message, 50 x 16 >= 1.0x Redis + Lua without persistence, zero busy;
#   durable batched >= 20x Redis appendfsync always;
#   open loop (batched and one order per message): a knee named, zero busy at and below it.
#
# Usage: bench/side_by_side.sh [--quick] [--build DIR] [--seconds S] [--skus N] [--stock N]
#          [--runs N] [--no-sweep] [--redis-only] [--replicated] [--settle S]
#   --quick      one short run and a 3-point sweep (about a minute; the smoke test uses it)
#   --runs N     measurements repeated N times, medians shown (default 3)
#   --build DIR  where bin/rushd, bin/rush-loadgen and bin/bench-redis are (default: build)
#   --seconds S  length of each closed-loop run (default 4)
#   --stock N    units per SKU (default: as many as buyers, so nothing sells out)
#   --no-sweep   closed-loop runs only;  --redis-only  the Redis half only (no ratios)
#   --replicated also rush with durability = replicated (needs nats-server)
#   --settle S   pause after each server stops, before the next measurement (default 3; see
#                stop_server: this VM stalls while the host takes back freed memory)
# Exit status: 0 when every run finished and every books check passed (the target ratios are
# reported, not enforced); 1 otherwise; 2 on a usage error.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
seconds=4
sweep_seconds=2
skus=5
stock=crowd
quick=0
sweep=1
rush=1
replicated=0
runs=3
settle=3       # seconds after a server stops before the next measurement (stop_server)
transport=rush # rushd --tcp-transport: its own SP-over-TCP, or nanomsg for the comparison row
sweep_fractions="0.1 0.25 0.5 0.7 0.85 1.0 1.2"

usage() {
    sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --no-sweep) sweep=0 ;;
    --settle) settle=${2:?}; shift ;;
    --redis-only) rush=0 ;;
    --replicated) replicated=1 ;;
    --build) build=$(cd "${2:?}" && pwd); shift ;;
    --seconds) seconds=${2:?}; shift ;;
    --runs) runs=${2:?}; shift ;;
    --skus) skus=${2:?}; shift ;;
    --stock) stock=${2:?}; shift ;;
    -h | --help) usage ;;
    *) echo "side_by_side: unknown option $1" >&2; usage ;;
    esac
    shift
done
if [ $quick -eq 1 ]; then
    settle=0
    runs=1
    seconds=1
    sweep_seconds=1
    sweep_fractions="0.25 0.7 1.2"
fi

bin=$build/bin
script=$root/bench/redis/seckill.lua
for tool in "$bin/bench-redis" "$bin/rushd" "$bin/bench-echo" redis-server redis-cli jq nanocat; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "side_by_side: $tool not found (build first; scripts/install-deps.sh installs" \
            "redis-server, redis-tools, jq, nanomsg-utils)" >&2
        exit 1
    fi
done

if [ $replicated -eq 1 ] && ! command -v nats-server >/dev/null 2>&1; then
    echo "side_by_side: --replicated needs nats-server (scripts/install-deps.sh installs it)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rush-side-by-side-XXXXXX")
server_pid=
client_pid=
nats_pids=()
# A stopped server's memory goes back to the host about 2 s after it is freed (virtio free page
# reporting on this VM), and while the host takes it the guest's CPUs stall: measured, a rushd
# started right after a large run lost 100-200 ms at +1.6 s of its run (its shards and the load
# both idle, the VM's CPU samples missing), and none with a 3 s pause between the runs. So every
# measurement waits --settle seconds after the previous server stopped.
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
        sleep "$settle"
    fi
}
cleanup() {
    if [ -n "$client_pid" ]; then
        kill -TERM "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
    fi
    stop_server
    for pid in "${nats_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${nats_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_client LOG COMMAND...: a load tool, in the background so that a signal reaches the trap at
# once (bash runs traps only between commands); its output in LOG, shown if it fails.
run_client() {
    local log=$1 rc=0
    shift
    "$@" >"$log" 2>&1 &
    client_pid=$!
    wait "$client_pid" || rc=$?
    client_pid=
    if [ $rc -ne 0 ]; then
        echo "side_by_side: ${1##*/} failed (exit $rc):" >&2
        cat "$log" >&2
    fi
    return $rc
}

# A loopback TCP port nobody listens on now (the server's bind is the final word: start retries).
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

wait_until() { # wait_until SECONDS COMMAND...: polls every 0.1 s while the server lives
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ] || ! kill -0 "$server_pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
}

# ---- Redis -----------------------------------------------------------------------------------

redis_port=
redis_ping() { [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; }

start_redis() { # start_redis NAME redis-server options...
    local name=$1 dir=$work/redis-$1
    shift
    mkdir -p "$dir"
    for _ in 1 2 3; do
        redis_port=$(free_port)
        redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save '' \
            --daemonize no --logfile "$dir/redis.log" "$@" &
        server_pid=$!
        if wait_until 20 redis_ping; then
            return 0
        fi
        stop_server
    done
    echo "side_by_side: redis-server ($name) did not start; its log:" >&2
    cat "$dir/redis.log" >&2
    return 1
}

run_redis() { # run_redis REPORT bench-redis options...
    local report=$1
    shift
    run_client "$report.txt" "$bin/bench-redis" --port "$redis_port" --script "$script" \
        --skus "$skus" --report "$report" --quiet "$@"
}

# ---- rush ------------------------------------------------------------------------------------

rush_orders= rush_admin= rush_json= rush_token=
rush_ready() {
    [ -s "$rush_token" ] &&
        nanocat --req --connect "$rush_json" -A --recv-timeout 1 \
            --data '{"op":"query_sku","sku":1}' 2>/dev/null | grep -q outcome
}

# start_rushd NAME TABLE_SIZE [replicated]: a fresh rushd, durability fsync (or replicated: the
# only node of a cluster on the nats-servers, its own stream), tables of TABLE_SIZE per shard
# (every order, key and user limit of a run fits even if one shard takes all the hot SKUs).
start_rushd() {
    local name=$1 size=$2 durability=${3:-fsync} dir=$work/rush-$1 cluster=
    mkdir -p "$dir"
    rush_token=$dir/data/admin.token
    for _ in 1 2 3; do
        rush_orders=tcp://127.0.0.1:$(free_port)
        rush_json=tcp://127.0.0.1:$(free_port)
        rush_admin=tcp://127.0.0.1:$(free_port)
        if [ "$durability" = replicated ]; then
            cluster="[cluster]
node = solo
nodes = solo=$rush_orders
nats = $nats_urls
stream = sbs${name//[^a-zA-Z0-9]/}$RANDOM"
        fi
        cat >"$dir/campaign.ini" <<EOF
[engine]
shards = 2
ring_slots = 1024
orders_max = $size
groups_max = 1024
keys_max = $size
user_limits_max = $size
durability = $durability
data_dir = $dir/data

[endpoints]
orders = $rush_orders
json = $rush_json
admin = $rush_admin
publisher = ipc://$dir/pub.ipc
replay = ipc://$dir/replay.ipc
http =
$cluster
EOF
        rm -rf "$dir/data"
        "$bin/rushd" --config "$dir/campaign.ini" --log-level warn --tcp-transport "$transport" \
            >>"$dir/rushd.log" 2>&1 &
        server_pid=$!
        if wait_until 60 rush_ready; then
            return 0
        fi
        stop_server
    done
    echo "side_by_side: rushd ($name) did not start; its log:" >&2
    cat "$dir/rushd.log" >&2
    return 1
}

# start_nats: three nats-servers with JetStream in one cluster on loopback, for --replicated.
# shellcheck source=bench/nats_cluster.sh
. "$(dirname "$0")/nats_cluster.sh"
start_nats() {
    nats_cluster_start "$work/nats" sbs
}

run_loadgen() { # run_loadgen REPORT rush-loadgen options... (its text report: REPORT.txt)
    local report=$1
    shift
    run_client "$report.txt" "$bin/rush-loadgen" --url "$rush_orders" --admin-url "$rush_admin" \
        --admin-token-file "$rush_token" --scenario midnight --skus "$skus" --seed 1 \
        --report "$report" --quiet "$@"
}

# Table size for a run of N requests: all of them may land on one shard; a margin; at least 64 Ki.
table_size() {
    awk -v n="$1" 'BEGIN { s = int(n * 1.1) + 65536; if (s > 16777216) s = 16777216; print s }'
}

# ---- reading reports -------------------------------------------------------------------------

field() { jq -r "$2" "$1"; } # field REPORT JQ-PATH

# Orders decided per second: rush-loadgen's accepted_per_s leaves out `busy` answers (nothing
# decided); bench-redis has no busy, its throughput_per_s is the same thing.
decided='(.accepted_per_s // .throughput_per_s)'
# Requests lost (timeouts, protocol or send errors): rush-loadgen's errors.total, bench-redis's errors.
lost='(.errors | if type == "object" then .total else . end) // 0'
# The books: bench-redis checks Redis's itself (check.passed); for rush, the units the SKUs hold
# after the run must be the ok answers (plus at most the lost requests, which may have been
# decided unseen), and available + reserved + confirmed must be the stock put: no oversell.
books='if .check.passed != null then (if .check.passed then "ok" else "WRONG" end)
       elif .catalog.after.reserved != null then
         ((.catalog.after.reserved + .catalog.after.confirmed) as $held
          | if $held >= .outcomes.ok and $held <= .outcomes.ok + '"$lost"' and
               .catalog.after.available + $held == .catalog.stock_put then "ok" else "WRONG" end)
       else "-" end'

fmt_int() { awk -v x="$1" 'BEGIN { printf "%\047.0f", x }'; }

# The median over the runs of a report's JQ figure: median NAME JQ (NAME: the report's file
# name in each run's directory).
median() {
    cat "$work"/run*/"$1" | jq -s "[.[] | $2] | sort | .[(length - 1) / 2 | floor]"
}
most() { # most NAME JQ: the largest over the runs
    cat "$work"/run*/"$1" | jq -s "[.[] | $2] | max"
}

# One table row: LABEL SHAPE NAME. Medians of rate and latencies; busy and lost: the most in any
# run; books: ok only when every run's were.
row() {
    local name=$3
    LC_ALL=C.UTF-8 awk -v label="$1" -v shape="$2" \
        -v tput="$(median "$name" "$decided")" -v lost="$(most "$name" "$lost")" \
        -v p50="$(median "$name" .latency_us.p50)" -v p99="$(median "$name" .latency_us.p99)" \
        -v p999="$(median "$name" .latency_us.p999)" \
        -v ok="$(median "$name" '.outcomes.ok // 0')" \
        -v busy="$(most "$name" '.outcomes.busy // 0')" \
        -v books="$(cat "$work"/run*/"$name" | jq -rs "[.[] | $books] | if all(. != \"WRONG\") then .[0] else \"WRONG\" end")" \
        'BEGIN { printf "%-30s %-26s %12.0f %10.0f %10.0f %10.0f %10d %8d %6d  %s\n",
                 label, shape, tput, p50, p99, p999, ok, busy, lost, books }'
}

header() {
    printf '%-30s %-26s %12s %10s %10s %10s %10s %8s %6s  %s\n' system \
        "load (orders in flight)" orders/s "p50 us" "p99 us" "p99.9 us" ok busy lost books
}

# ratio LABEL NUM_NAME DEN_NAME [TARGET]: the ratio within each run, and their median (also
# written to $work/ratio-last for the target checks).
ratio() {
    local values
    values=$(for dir in "$work"/run*; do
        awk -v a="$(field "$dir/$2" "$decided")" -v b="$(field "$dir/$3" "$decided")" \
            'BEGIN { printf "%.4f\n", (b > 0 ? a / b : 0) }'
    done)
    # shellcheck disable=SC2086 # the values, one word each
    echo "$values" | sort -g | awk -v label="$1" -v target="${4:-}" -v all="$(echo $values)" \
        -v out="$work/ratio-last" '
        { v[NR] = $1 }
        END {
            m = v[int((NR + 1) / 2)]
            n = split(all, each, " ")
            runs = ""
            for (i = 1; i <= n; i++) runs = runs sprintf("%s%.2fx", i > 1 ? " / " : "", each[i])
            printf "ratio  %-52s %8.2fx   runs %s%s\n", label, m, runs,
                   target != "" ? sprintf("  (target >= %sx)", target) : ""
            print m > out }'
}

# ---- open-loop sweep ---------------------------------------------------------------------------

# sweep_rates CLOSED_REPORT: the offered rates, fractions of that closed-loop throughput.
sweep_rates() {
    local peak
    peak=$(field "$1" "$decided")
    for f in $sweep_fractions; do
        awk -v p="$peak" -v f="$f" 'BEGIN { r = int(p * f / 100) * 100; print (r < 100 ? 100 : r) }'
    done
}

# sweep_table KEY TITLE REPORT...: one row per offered rate; the knee is the highest rate at
# which >= 95% of the requests offered were decided, with a p99 under 10x the p99 at the lowest
# rate (rows after the first miss do not count). Appends "KEY KNEE_RATE BUSY_AT_OR_BELOW" to
# $work/knees (knee 0: none).
sweep_table() {
    local key=$1 title=$2
    shift 2
    echo
    echo "open loop, $title (fixed arrivals, latency from the intended send time)"
    printf '  %12s %12s %10s %10s %10s %10s %8s %6s\n' offered/s decided/s "p50 us" "p99 us" \
        "p99.9 us" unsent busy lost
    for report in "$@"; do
        jq -r "[.rate_offered, $decided, .latency_us.p50, .latency_us.p99, .latency_us.p999,
                (.requests_unsent // ((.requests_offered // 0) - (.requests_sent // 0))),
                $lost, (.outcomes.busy // 0), (.requests_accepted // .requests_answered) /
                       (.requests_offered // (.requests_answered + .requests_unsent))] | @tsv" \
            "$report"
    done | awk -F'\t' -v key="$key" -v knees="$work/knees" '
        { offered[NR] = $1; got[NR] = $2; p50[NR] = $3; p99[NR] = $4; p999[NR] = $5
          unsent[NR] = $6; lost[NR] = $7; busy[NR] = $8; served[NR] = $9 }
        END {
            knee = 0
            for (i = 1; i <= NR; i++) {
                if (served[i] < 0.95 || p99[i] > 10 * p99[1]) break
                knee = i
            }
            for (i = 1; i <= NR; i++)
                printf "  %12.0f %12.0f %10.0f %10.0f %10.0f %10d %8d %6d%s\n", offered[i],
                       got[i], p50[i], p99[i], p999[i], unsent[i], busy[i], lost[i],
                       i == knee ? "   <- knee" : ""
            if (knee == 0) print "  (no knee: even the lowest rate was not served at 95 % (see unsent and busy))"
            below = 0
            for (i = 1; i <= knee; i++) below += busy[i]
            printf "%s %.0f %d\n", key, knee ? offered[knee] : 0, below >> knees
        }'
}

# ---- the runs ----------------------------------------------------------------------------------

stock_for() { # stock_for BUYERS
    if [ "$stock" = crowd ]; then echo "$1"; else echo "$stock"; fi
}

cat <<EOF
== rush vs the Redis seckill stack, side by side
machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)
redis: $(redis-server --version | sed 's/ sha=.*//'), seckill.lua by EVALSHA
data on: $(df -T "$work" | awk 'NR == 2 { print $2 " (" $1 ")" }'), every server and its load share the cores
load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews every figure)
load: midnight, $skus hot SKUs, distinct buyers, stock $([ "$stock" = crowd ] && echo "covering the crowd (every click is an order)" || echo "$stock per SKU"); closed runs ${seconds} s
runs: $runs, one after another; figures are medians, ratios are taken within each run
rush-loadgen: default --threads (the online CPUs, at most 4 and at most --connections)
EOF

# Orders in flight: Redis and unbatched rush 50 x 16; batched rush 4 connections x 4 messages x
# 1000 orders; Redis is run once more with that many (50 x 320).
redis_connections=50 redis_pipeline=16
batch_connections=4 batch_inflight=4 batch_size=1000
single_connections=50 single_inflight=16
batched_in_flight=$((batch_connections * batch_inflight * batch_size))
wide_pipeline=$((batched_in_flight / redis_connections))

redis_buyers=$(awk -v s="$seconds" 'BEGIN { print int(s * 400000) + 100000 }')
rush_batched_buyers=$(awk -v s="$seconds" 'BEGIN { b = int(s * 2500000); print (b > 16000000 ? 16000000 : b) }')
rush_single_buyers=$(awk -v s="$seconds" 'BEGIN { print int(s * 400000) + 100000 }')

redis_closed() { # redis_closed REPORT PIPELINE
    run_redis "$1" --mode closed --connections "$redis_connections" --pipeline "$2" \
        --duration "$seconds" --buyers "$redis_buyers" --stock "$(stock_for "$redis_buyers")"
}

run_redis_all() { # run_redis_all DIR
    local dir=$1
    echo "running redis (appendfsync always) ..."
    start_redis always --appendonly yes --appendfsync always
    redis_closed "$dir/redis-always.json" "$redis_pipeline"
    redis_closed "$dir/redis-always-wide.json" "$wide_pipeline"
    if [ $sweep -eq 1 ]; then
        for rate in $(sweep_rates "$dir/redis-always.json"); do
            buyers=$(awk -v r="$rate" -v s="$sweep_seconds" 'BEGIN { print int(r * s * 1.5) + 1000 }')
            run_redis "$dir/redis-sweep-$rate.json" --mode open --rate "$rate" --arrivals fixed \
                --connections "$redis_connections" --pipeline "$redis_pipeline" \
                --duration "$sweep_seconds" --buyers "$buyers" --stock "$(stock_for "$buyers")"
            jq --argjson r "$rate" '. + {rate_offered: $r}' "$dir/redis-sweep-$rate.json" \
                >"$work/tmp.json" && mv "$work/tmp.json" "$dir/redis-sweep-$rate.json"
            echo "$dir/redis-sweep-$rate.json" >>"$dir/redis-sweep.list"
        done
    fi
    stop_server

    echo "running redis (appendfsync everysec) ..."
    start_redis everysec --appendonly yes --appendfsync everysec
    redis_closed "$dir/redis-everysec.json" "$redis_pipeline"
    stop_server

    echo "running redis (no persistence) ..."
    start_redis none --appendonly no
    redis_closed "$dir/redis-none.json" "$redis_pipeline"
    run_redis "$dir/redis-none-one.json" --mode closed --connections 1 \
        --pipeline $((redis_connections * redis_pipeline)) --duration "$seconds" \
        --buyers "$redis_buyers" --stock "$(stock_for "$redis_buyers")"
    stop_server
}

# rush-loadgen against bench-echo, one order per message at 50 x 16, binary and JSON: what the
# load generator offers when the server costs nothing.
run_echo() { # run_echo DIR
    local dir=$1 port json_port protocol
    echo "running rush-loadgen against bench-echo ..."
    port=$(free_port)
    json_port=$(free_port)
    "$bin/bench-echo" --url "tcp://127.0.0.1:$port" --json-url "tcp://127.0.0.1:$json_port" \
        >"$dir/echo.out" 2>&1 &
    server_pid=$!
    for report in echo-binary echo-json; do
        protocol=
        [ $report = echo-json ] && protocol="--json --json-url tcp://127.0.0.1:$json_port"
        # shellcheck disable=SC2086 # protocol is two words or none
        run_client "$dir/$report.json.txt" "$bin/rush-loadgen" --url "tcp://127.0.0.1:$port" \
            --campaign-skus --skus 2 --scenario midnight --seed 1 --report "$dir/$report.json" \
            --quiet --mode closed --connections "$single_connections" \
            --inflight "$single_inflight" --batch 1 --duration "$seconds" \
            --buyers "$rush_single_buyers" $protocol
        # No books to check: the echo keeps no stock (its catalogue figures are made up).
        jq 'del(.catalog)' "$dir/$report.json" >"$work/tmp.json" && mv "$work/tmp.json" "$dir/$report.json"
    done
    stop_server
}

run_rush_all() { # run_rush_all DIR
    local dir=$1
    echo "running rush (fsync, batched) ..."
    start_rushd batched "$(table_size "$rush_batched_buyers")"
    run_loadgen "$dir/rush-batched.json" --mode closed --connections "$batch_connections" \
        --inflight "$batch_inflight" --batch "$batch_size" --duration "$seconds" \
        --buyers "$rush_batched_buyers" --stock "$(stock_for "$rush_batched_buyers")"
    stop_server

    echo "running rush (fsync, unbatched: binary, then JSON) ..."
    start_rushd unbatched "$(table_size $((3 * rush_single_buyers)))" # three runs, fresh SKUs each
    run_loadgen "$dir/rush-unbatched.json" --mode closed --connections "$single_connections" \
        --inflight "$single_inflight" --batch 1 --duration "$seconds" \
        --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
    run_loadgen "$dir/rush-unbatched-one.json" --mode closed --connections 1 \
        --inflight $((single_connections * single_inflight)) --batch 1 --duration "$seconds" \
        --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
    run_loadgen "$dir/rush-json.json" --mode closed --connections "$single_connections" \
        --inflight "$single_inflight" --json --json-url "$rush_json" --duration "$seconds" \
        --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
    stop_server

    echo "running rush (fsync, unbatched, tcp:// through nanomsg) ..."
    transport=nanomsg
    start_rushd nanomsg "$(table_size $((2 * rush_single_buyers)))"
    run_loadgen "$dir/rush-unbatched-nanomsg.json" --mode closed \
        --connections "$single_connections" --inflight "$single_inflight" --batch 1 \
        --duration "$seconds" --buyers "$rush_single_buyers" \
        --stock "$(stock_for "$rush_single_buyers")"
    run_loadgen "$dir/rush-unbatched-one-nanomsg.json" --mode closed --connections 1 \
        --inflight $((single_connections * single_inflight)) --batch 1 --duration "$seconds" \
        --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
    stop_server
    transport=rush
    if [ $replicated -eq 1 ]; then run_rush_replicated "$dir"; fi
    run_echo "$dir"
}

# The batched and one-order closed-loop runs again, durability replicated.
run_rush_replicated() { # run_rush_replicated DIR
    local dir=$1
    echo "running rush (replicated, batched) ..."
    start_rushd repl-batched "$(table_size "$rush_batched_buyers")" replicated
    run_loadgen "$dir/rush-repl-batched.json" --mode closed --connections "$batch_connections" \
        --inflight "$batch_inflight" --batch "$batch_size" --duration "$seconds" \
        --buyers "$rush_batched_buyers" --stock "$(stock_for "$rush_batched_buyers")"
    stop_server
    echo "running rush (replicated, unbatched) ..."
    start_rushd repl-unbatched "$(table_size "$rush_single_buyers")" replicated
    run_loadgen "$dir/rush-repl-unbatched.json" --mode closed --connections "$single_connections" \
        --inflight "$single_inflight" --batch 1 --duration "$seconds" \
        --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
    stop_server
}

# The open-loop batch: what a gateway coalesces in about 1 ms at that rate (1..1000 orders), so
# that waiting to fill a batch does not dominate the latency at low rates.
run_rush_sweeps() { # run_rush_sweeps DIR
    local dir=$1
    for rate in $(sweep_rates "$dir/rush-batched.json"); do
        echo "running rush (fsync, batched, open loop at $rate/s) ..."
        buyers=$(awk -v r="$rate" -v s="$sweep_seconds" 'BEGIN { b = int(r * s * 1.5) + 1000; print (b > 16000000 ? 16000000 : b) }')
        batch=$(awk -v r="$rate" 'BEGIN { b = int(r / 1000); print (b < 1 ? 1 : (b > 1000 ? 1000 : b)) }')
        start_rushd "sweep-$rate" "$(table_size "$buyers")"
        run_loadgen "$dir/rush-sweep-$rate.json" --mode open --rate "$rate" --arrivals fixed \
            --connections "$batch_connections" --inflight 64 --batch "$batch" \
            --duration "$sweep_seconds" --buyers "$buyers" --stock "$(stock_for "$buyers")"
        stop_server
        jq --argjson r "$rate" --argjson b "$batch" '. + {rate_offered: $r, batch: $b}' \
            "$dir/rush-sweep-$rate.json" >"$work/tmp.json" &&
            mv "$work/tmp.json" "$dir/rush-sweep-$rate.json"
        echo "$dir/rush-sweep-$rate.json" >>"$dir/rush-sweep.list"
    done
    # One order per message, open loop, as a gateway that does not batch sends them: 50
    # connections, each message one order.
    for rate in $(sweep_rates "$dir/rush-unbatched.json"); do
        echo "running rush (fsync, unbatched, open loop at $rate/s) ..."
        buyers=$(awk -v r="$rate" -v s="$sweep_seconds" 'BEGIN { print int(r * s * 1.5) + 1000 }')
        start_rushd "sweep-one-$rate" "$(table_size "$buyers")"
        run_loadgen "$dir/rush-sweep-one-$rate.json" --mode open --rate "$rate" --arrivals fixed \
            --connections "$single_connections" --inflight "$single_inflight" --batch 1 \
            --duration "$sweep_seconds" --buyers "$buyers" --stock "$(stock_for "$buyers")"
        stop_server
        jq --argjson r "$rate" '. + {rate_offered: $r, batch: 1}' \
            "$dir/rush-sweep-one-$rate.json" >"$work/tmp.json" &&
            mv "$work/tmp.json" "$dir/rush-sweep-one-$rate.json"
        echo "$dir/rush-sweep-one-$rate.json" >>"$dir/rush-sweep-one.list"
    done
}

if [ $rush -eq 1 ] && [ $replicated -eq 1 ]; then start_nats; fi
for run in $(seq "$runs"); do
    dir=$work/run$run
    mkdir -p "$dir"
    echo
    echo "== run $run of $runs (load average $(cut -d' ' -f1 /proc/loadavg))"
    run_redis_all "$dir"
    if [ $rush -eq 1 ]; then
        run_rush_all "$dir"
        if [ $sweep -eq 1 ]; then run_rush_sweeps "$dir"; fi
    fi
done

# ---- the figures -------------------------------------------------------------------------------

if [ $sweep -eq 1 ]; then
    for run in $(seq "$runs"); do
        dir=$work/run$run
        echo
        echo "== open-loop tables, run $run"
        if [ $rush -eq 1 ]; then
            # shellcheck disable=SC2046 # one report path per line
            sweep_table rush-batched \
                "rush, fsync, batched ($batch_connections connections, batch = rate / 1000)" \
                $(cat "$dir/rush-sweep.list")
            # shellcheck disable=SC2046
            sweep_table rush-one \
                "rush, fsync, one order per message ($single_connections connections)" \
                $(cat "$dir/rush-sweep-one.list")
        fi
        # shellcheck disable=SC2046
        sweep_table redis-always \
            "redis, appendfsync always ($redis_connections connections x $redis_pipeline)" \
            $(cat "$dir/redis-sweep.list")
    done
fi

echo
echo "== closed loop, median of $runs run(s)"
header
row "redis, appendfsync always" "50 conn x 16 (800)" redis-always.json
row "redis, appendfsync everysec" "50 conn x 16 (800)" redis-everysec.json
row "redis, no persistence" "50 conn x 16 (800)" redis-none.json
row "redis, no persistence" "1 conn x 800 (800)" redis-none-one.json
row "redis, appendfsync always" "50 conn x $wide_pipeline ($batched_in_flight)" \
    redis-always-wide.json
if [ $rush -eq 1 ]; then
    row "rush, fsync, batched" "4 x 4 msgs x $batch_size ($batched_in_flight)" rush-batched.json
    row "rush, fsync, unbatched" "50 x 16 msgs x 1 (800)" rush-unbatched.json
    row "rush, fsync, unbatched" "1 x 800 msgs x 1 (800)" rush-unbatched-one.json
    row "rush, fsync, JSON unbatched" "50 x 16 msgs x 1 (800)" rush-json.json
    row "rush, fsync, unbatched, nanomsg" "50 x 16 msgs x 1 (800)" rush-unbatched-nanomsg.json
    row "rush, fsync, unbatched, nanomsg" "1 x 800 msgs x 1 (800)" \
        rush-unbatched-one-nanomsg.json
    if [ $replicated -eq 1 ]; then
        row "rush, replicated, batched" "4 x 4 msgs x $batch_size ($batched_in_flight)" \
            rush-repl-batched.json
        row "rush, replicated, unbatched" "50 x 16 msgs x 1 (800)" rush-repl-unbatched.json
    fi
    row "echo (decides nothing), binary" "50 x 16 msgs x 1 (800)" echo-binary.json
    row "echo (decides nothing), JSON" "50 x 16 msgs x 1 (800)" echo-json.json
    echo
    ratio "rush fsync batched / redis always" rush-batched.json redis-always.json 20
    batched_ratio=$(cat "$work/ratio-last")
    ratio "rush fsync batched / redis always (same in flight)" rush-batched.json \
        redis-always-wide.json
    ratio "rush fsync batched / redis everysec" rush-batched.json redis-everysec.json
    ratio "rush fsync batched / redis no persistence" rush-batched.json redis-none.json
    ratio "rush fsync unbatched / redis always" rush-unbatched.json redis-always.json
    ratio "rush fsync unbatched / redis no persistence" rush-unbatched.json redis-none.json 1
    single_ratio=$(cat "$work/ratio-last")
    ratio "rush fsync unbatched / redis no persistence (1 conn)" rush-unbatched-one.json \
        redis-none-one.json 1
    ratio "rush fsync JSON unbatched / redis no persistence" rush-json.json redis-none.json
    ratio "rush fsync JSON unbatched / rush binary unbatched" rush-json.json rush-unbatched.json
    ratio "rush unbatched, own tcp / through nanomsg" rush-unbatched.json \
        rush-unbatched-nanomsg.json
    ratio "rush unbatched, own tcp / through nanomsg (1 conn)" rush-unbatched-one.json \
        rush-unbatched-one-nanomsg.json
    if [ $replicated -eq 1 ]; then
        ratio "rush replicated batched / rush fsync batched" rush-repl-batched.json \
            rush-batched.json
        ratio "rush replicated unbatched / rush fsync unbatched" rush-repl-unbatched.json \
            rush-unbatched.json
        ratio "rush replicated batched / redis always" rush-repl-batched.json redis-always.json
        ratio "rush replicated unbatched / redis no persistence" rush-repl-unbatched.json \
            redis-none.json
    fi
    ratio "loadgen->echo / loadgen->rushd, binary, 50 x 16" echo-binary.json rush-unbatched.json
    ratio "loadgen->echo / loadgen->rushd, JSON, 50 x 16" echo-json.json rush-json.json
    echo
    for name in rush-unbatched rush-json echo-binary echo-json; do
        printf 'rush-loadgen itself, %-15s %5.2f cores (median; all its threads, nanomsg'"'"'s included)\n' \
            "$name:" "$(median "$name.json" '.cpu_cores // 0')"
    done
fi

verdict() { if [ "$1" = 1 ]; then echo MET; else echo "NOT MET"; fi; }
target() { printf '  %-84s %s\n' "$1" "$(verdict "$2")"; }
if [ $rush -eq 1 ]; then
    single_busy=$(cat "$work"/run*/rush-unbatched.json | jq -s '[.[] | .outcomes.busy // 0] | add')
    echo
    echo "== targets (issue 12), on the medians above"
    target "durable, one order per message, 50 x 16: $(printf %.2f "$single_ratio")x redis without persistence (>= 1.0x), busy $single_busy (0)" \
        "$(awk -v r="$single_ratio" -v b="$single_busy" 'BEGIN { print (r >= 1.0 && b == 0) ? 1 : 0 }')"
    target "durable, batched: $(printf %.2f "$batched_ratio")x redis appendfsync always (>= 20x)" \
        "$(awk -v r="$batched_ratio" 'BEGIN { print (r >= 20) ? 1 : 0 }')"
    if [ $sweep -eq 1 ]; then
        for key in rush-batched rush-one; do
            knees=$(awk -v k="$key" '$1 == k { printf "%s%s", n++ ? " / " : "", ($2 > 0 ? $2 : "none") }' "$work/knees")
            met=$(awk -v k="$key" '$1 == k { runs++; if ($2 > 0 && $3 == 0) good++ } END { print (runs > 0 && good == runs) ? 1 : 0 }' "$work/knees")
            busy=$(awk -v k="$key" '$1 == k { b += $3 } END { print b + 0 }' "$work/knees")
            target "open loop, $key: knee at $knees offered/s, busy at or below it $busy (0)" "$met"
        done
    fi
fi

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
redis_books=$(cat "$work"/run*/redis-*.json | jq -s 'map(.check.passed) | all')
echo
echo "redis books (sold exactly min(stock, buyers) per SKU, every run): $([ "$redis_books" = true ] && echo ok || echo WRONG)"
if [ $rush -eq 1 ]; then
    rush_books=$(cat "$work"/run*/rush-*.json | jq -s "map($books) | map(. != \"WRONG\") | all")
    echo "rush books (ok answers = units held, nothing beyond the stock put, every run): $([ "$rush_books" = true ] && echo ok || echo WRONG)"
    [ "$rush_books" = true ]
fi
[ "$redis_books" = true ]
