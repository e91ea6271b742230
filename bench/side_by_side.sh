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
# Then an open-loop sweep (requests on a fixed schedule, latency from the intended send time, so
# queueing is charged) at fractions of each system's closed-loop throughput: throughput against
# p99, with the knee marked (the highest offered rate still served at >= 95% with a p99 under 10x
# the light-load p99).
#
# Usage: bench/side_by_side.sh [--quick] [--build DIR] [--seconds S] [--skus N] [--stock N]
#          [--no-sweep] [--redis-only]
#   --quick      short runs and a 3-point sweep (about 40 s; the smoke test uses it)
#   --build DIR  where bin/rushd, bin/rush-loadgen and bin/bench-redis are (default: build)
#   --seconds S  length of each closed-loop run (default 4)
#   --stock N    units per SKU (default: as many as buyers, so nothing sells out)
#   --no-sweep   closed-loop runs only;  --redis-only  the Redis half only (no ratios)
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
sweep_fractions="0.1 0.25 0.5 0.7 0.85 1.0 1.2"

usage() {
    sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --no-sweep) sweep=0 ;;
    --redis-only) rush=0 ;;
    --build) build=$(cd "${2:?}" && pwd); shift ;;
    --seconds) seconds=${2:?}; shift ;;
    --skus) skus=${2:?}; shift ;;
    --stock) stock=${2:?}; shift ;;
    -h | --help) usage ;;
    *) echo "side_by_side: unknown option $1" >&2; usage ;;
    esac
    shift
done
if [ $quick -eq 1 ]; then
    seconds=1
    sweep_seconds=1
    sweep_fractions="0.25 0.7 1.2"
fi

bin=$build/bin
script=$root/bench/redis/seckill.lua
for tool in "$bin/bench-redis" "$bin/rushd" redis-server redis-cli jq nanocat; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "side_by_side: $tool not found (build first; scripts/install-deps.sh installs" \
            "redis-server, redis-tools, jq, nanomsg-utils)" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rush-side-by-side-XXXXXX")
server_pid=
client_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
cleanup() {
    if [ -n "$client_pid" ]; then
        kill -TERM "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
    fi
    stop_server
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

# start_rushd NAME TABLE_SIZE: a fresh rushd, durability fsync, tables of TABLE_SIZE per shard
# (every order, key and user limit of a run fits even if one shard takes all the hot SKUs).
start_rushd() {
    local name=$1 size=$2 dir=$work/rush-$1
    mkdir -p "$dir"
    rush_token=$dir/data/admin.token
    for _ in 1 2 3; do
        rush_orders=tcp://127.0.0.1:$(free_port)
        rush_json=tcp://127.0.0.1:$(free_port)
        rush_admin=tcp://127.0.0.1:$(free_port)
        cat >"$dir/campaign.ini" <<EOF
[engine]
shards = 2
ring_slots = 1024
orders_max = $size
groups_max = 1024
keys_max = $size
user_limits_max = $size
durability = fsync
data_dir = $dir/data

[endpoints]
orders = $rush_orders
json = $rush_json
admin = $rush_admin
publisher = ipc://$dir/pub.ipc
replay = ipc://$dir/replay.ipc
http =
EOF
        rm -rf "$dir/data"
        "$bin/rushd" --config "$dir/campaign.ini" --log-level warn >>"$dir/rushd.log" 2>&1 &
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

# One table row: LABEL SHAPE REPORT
row() {
    local report=$3
    LC_ALL=C.UTF-8 awk -v label="$1" -v shape="$2" \
        -v tput="$(field "$report" "$decided")" -v lost="$(field "$report" "$lost")" \
        -v p50="$(field "$report" .latency_us.p50)" -v p99="$(field "$report" .latency_us.p99)" \
        -v p999="$(field "$report" .latency_us.p999)" \
        -v ok="$(field "$report" '.outcomes.ok // 0')" \
        -v busy="$(field "$report" '.outcomes.busy // 0')" \
        -v books="$(field "$report" "$books")" \
        'BEGIN { printf "%-30s %-26s %12.0f %10.0f %10.0f %10.0f %10d %8d %6d  %s\n",
                 label, shape, tput, p50, p99, p999, ok, busy, lost, books }'
}

header() {
    printf '%-30s %-26s %12s %10s %10s %10s %10s %8s %6s  %s\n' system \
        "load (orders in flight)" orders/s "p50 us" "p99 us" "p99.9 us" ok busy lost books
}

ratio() { # ratio LABEL NUM_REPORT DEN_REPORT [TARGET]
    awk -v label="$1" -v a="$(field "$2" "$decided")" -v b="$(field "$3" "$decided")" \
        -v target="${4:-}" 'BEGIN {
            r = b > 0 ? a / b : 0
            verdict = ""
            if (target != "") verdict = sprintf("  (target >= %s: %s)", target, r >= target ? "met" : "NOT met")
            printf "ratio  %-52s %8.2fx%s\n", label, r, verdict }'
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

# sweep_table TITLE REPORT...: one row per offered rate; the knee is the highest rate at which
# >= 95% of the requests offered were decided, with a p99 under 10x the p99 at the lowest rate
# (rows after the first miss do not count).
sweep_table() {
    local title=$1
    shift
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
    done | awk -F'\t' '
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
            if (knee == 0) print "  (no knee: even the lowest rate was not served; busy = refused)"
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

echo
echo "running redis (appendfsync always) ..."
start_redis always --appendonly yes --appendfsync always
redis_closed "$work/redis-always.json" "$redis_pipeline"
redis_closed "$work/redis-always-wide.json" "$wide_pipeline"
redis_sweep=()
if [ $sweep -eq 1 ]; then
    for rate in $(sweep_rates "$work/redis-always.json"); do
        buyers=$(awk -v r="$rate" -v s="$sweep_seconds" 'BEGIN { print int(r * s * 1.5) + 1000 }')
        run_redis "$work/redis-sweep-$rate.json" --mode open --rate "$rate" --arrivals fixed \
            --connections "$redis_connections" --pipeline "$redis_pipeline" \
            --duration "$sweep_seconds" --buyers "$buyers" --stock "$(stock_for "$buyers")"
        jq --argjson r "$rate" '. + {rate_offered: $r}' "$work/redis-sweep-$rate.json" \
            >"$work/tmp.json" && mv "$work/tmp.json" "$work/redis-sweep-$rate.json"
        redis_sweep+=("$work/redis-sweep-$rate.json")
    done
fi
stop_server

echo "running redis (appendfsync everysec) ..."
start_redis everysec --appendonly yes --appendfsync everysec
redis_closed "$work/redis-everysec.json" "$redis_pipeline"
stop_server

echo "running redis (no persistence) ..."
start_redis none --appendonly no
redis_closed "$work/redis-none.json" "$redis_pipeline"
run_redis "$work/redis-none-one.json" --mode closed --connections 1 \
    --pipeline $((redis_connections * redis_pipeline)) --duration "$seconds" \
    --buyers "$redis_buyers" --stock "$(stock_for "$redis_buyers")"
stop_server

if [ $rush -eq 1 ]; then
echo "running rush (fsync, batched) ..."
start_rushd batched "$(table_size "$rush_batched_buyers")"
run_loadgen "$work/rush-batched.json" --mode closed --connections "$batch_connections" \
    --inflight "$batch_inflight" --batch "$batch_size" --duration "$seconds" \
    --buyers "$rush_batched_buyers" --stock "$(stock_for "$rush_batched_buyers")"
stop_server

echo "running rush (fsync, unbatched) ..."
start_rushd unbatched "$(table_size $((2 * rush_single_buyers)))" # two runs, fresh SKUs each
run_loadgen "$work/rush-unbatched.json" --mode closed --connections "$single_connections" \
    --inflight "$single_inflight" --batch 1 --duration "$seconds" \
    --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
run_loadgen "$work/rush-unbatched-one.json" --mode closed --connections 1 \
    --inflight $((single_connections * single_inflight)) --batch 1 --duration "$seconds" \
    --buyers "$rush_single_buyers" --stock "$(stock_for "$rush_single_buyers")"
stop_server

# The open-loop batch: what a gateway coalesces in about 1 ms at that rate (1..1000 orders), so
# that waiting to fill a batch does not dominate the latency at low rates.
rush_sweep=()
if [ $sweep -eq 1 ]; then
    for rate in $(sweep_rates "$work/rush-batched.json"); do
        echo "running rush (fsync, batched, open loop at $rate/s) ..."
        buyers=$(awk -v r="$rate" -v s="$sweep_seconds" 'BEGIN { b = int(r * s * 1.5) + 1000; print (b > 16000000 ? 16000000 : b) }')
        batch=$(awk -v r="$rate" 'BEGIN { b = int(r / 1000); print (b < 1 ? 1 : (b > 1000 ? 1000 : b)) }')
        start_rushd "sweep-$rate" "$(table_size "$buyers")"
        run_loadgen "$work/rush-sweep-$rate.json" --mode open --rate "$rate" --arrivals fixed \
            --connections "$batch_connections" --inflight 64 --batch "$batch" \
            --duration "$sweep_seconds" --buyers "$buyers" --stock "$(stock_for "$buyers")"
        stop_server
        jq --argjson r "$rate" --argjson b "$batch" '. + {rate_offered: $r, batch: $b}' \
            "$work/rush-sweep-$rate.json" >"$work/tmp.json" &&
            mv "$work/tmp.json" "$work/rush-sweep-$rate.json"
        rush_sweep+=("$work/rush-sweep-$rate.json")
    done
fi
fi

# ---- the figures -------------------------------------------------------------------------------

echo
header
row "redis, appendfsync always" "50 conn x 16 (800)" "$work/redis-always.json"
row "redis, appendfsync everysec" "50 conn x 16 (800)" "$work/redis-everysec.json"
row "redis, no persistence" "50 conn x 16 (800)" "$work/redis-none.json"
row "redis, no persistence" "1 conn x 800 (800)" "$work/redis-none-one.json"
row "redis, appendfsync always" "50 conn x $wide_pipeline ($batched_in_flight)" \
    "$work/redis-always-wide.json"
if [ $rush -eq 1 ]; then
row "rush, fsync, batched" "4 x 4 msgs x $batch_size ($batched_in_flight)" "$work/rush-batched.json"
row "rush, fsync, unbatched" "50 x 16 msgs x 1 (800)" "$work/rush-unbatched.json"
row "rush, fsync, unbatched" "1 x 800 msgs x 1 (800)" "$work/rush-unbatched-one.json"
echo
ratio "rush fsync batched / redis always" "$work/rush-batched.json" "$work/redis-always.json" 20
ratio "rush fsync batched / redis always (same in flight)" "$work/rush-batched.json" \
    "$work/redis-always-wide.json"
ratio "rush fsync batched / redis everysec" "$work/rush-batched.json" "$work/redis-everysec.json"
ratio "rush fsync batched / redis no persistence" "$work/rush-batched.json" "$work/redis-none.json"
ratio "rush fsync unbatched / redis always" "$work/rush-unbatched.json" "$work/redis-always.json"
ratio "rush fsync unbatched / redis no persistence" "$work/rush-unbatched.json" \
    "$work/redis-none.json" 1
ratio "rush fsync unbatched / redis no persistence (1 conn)" "$work/rush-unbatched-one.json" \
    "$work/redis-none-one.json" 1
fi

if [ $sweep -eq 1 ] && [ $rush -eq 1 ]; then
    sweep_table "rush, fsync, batched ($batch_connections connections, batch = rate / 1000)" \
        "${rush_sweep[@]}"
fi
if [ $sweep -eq 1 ]; then
    sweep_table "redis, appendfsync always ($redis_connections connections x $redis_pipeline)" \
        "${redis_sweep[@]}"
fi

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
redis_books=$(cat "$work"/redis-*.json | jq -s 'map(.check.passed) | all')
echo
echo "redis books (sold exactly min(stock, buyers) per SKU, every run): $([ "$redis_books" = true ] && echo ok || echo WRONG)"
if [ $rush -eq 1 ]; then
    rush_books=$(cat "$work"/rush-*.json | jq -s "map($books) | map(. != \"WRONG\") | all")
    echo "rush books (ok answers = units held, nothing beyond the stock put, every run): $([ "$rush_books" = true ] && echo ok || echo WRONG)"
    [ "$rush_books" = true ]
fi
[ "$redis_books" = true ]
