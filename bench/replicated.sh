#!/usr/bin/env bash
# replicated.sh — what durability replicated costs against fsync, end to end, on one machine.
#
# Starts three nats-servers with JetStream in one cluster (loopback, a fresh temporary
# directory), then, one after another and each on a fresh data directory:
#   rush, fsync        rushd with durability = fsync (a reply means the local fdatasync)
#   rush, replicated   rushd as the only node of a [cluster] on those servers (it leads every
#                      shard; a reply means the local fdatasync AND JetStream's ack, a quorum of
#                      the three servers has the batch)
# and drives each with rush-loadgen's midnight scenario, batched (16 orders per message) and one
# order per message, 4 connections x 8 messages in flight, stock enough that every click is an
# order that must be made durable. The three nats-servers run on the same cores as rushd and the
# load, so the replicated figures carry their CPU too.
#
# Usage: bench/replicated.sh [--build DIR] [--seconds S] [--runs N]
# Prints one line per run and mode: orders/s answered, latency percentiles, outcomes.
set -euo pipefail

build=build
seconds=3
runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--seconds S] [--runs N]" >&2; exit 2 ;;
  esac
done
bin=$(cd "$build/bin" && pwd)
# shellcheck source=bench/nats_cluster.sh
. "$(dirname "$0")/nats_cluster.sh"
nats_bench_dir replicated
nats_cluster_start "$dir" bench
urls=$nats_urls

orders=$(free_port); json=$(free_port); admin=$(free_port); pub=$(free_port); replay=$(free_port)
token=bench-replicated-token-0123456789
campaign() { # $1 durability, $2 data dir, $3 cluster section or ""
  cat << EOF
[engine]
shards = 2
orders_max = 1048576
keys_max = 2097152
user_limits_max = 1048576
durability = $1
data_dir = $2

[endpoints]
orders = tcp://127.0.0.1:$orders
json = tcp://127.0.0.1:$json
admin = tcp://127.0.0.1:$admin
publisher = tcp://127.0.0.1:$pub
replay = tcp://127.0.0.1:$replay
http =
admin_token = $token
$3
EOF
}
cluster="[cluster]
node = solo
nodes = solo=tcp://127.0.0.1:$orders
nats = $urls
stream = bench"

measure() { # $1 label, $2 campaign file
  "$bin/rushd" --config "$2" > "$dir/rushd.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    grep -q "serving:" "$dir/rushd.log" && break
    sleep 0.1
  done
  grep -q "serving:" "$dir/rushd.log" || { echo "$1: rushd did not start:" >&2; tail -3 "$dir/rushd.log" >&2; }
  for batch in 16 1; do
    "$bin/rush-loadgen" --url "tcp://127.0.0.1:$orders" --admin-url "tcp://127.0.0.1:$admin" \
      --admin-token "$token" --stock 200000 --skus 5 --batch "$batch" --duration "$seconds" \
      --connections 4 --inflight 8 --quiet --sku-base $((RANDOM * 10 + batch)) > "$dir/lg.out" 2>&1 || true
    printf '%-18s batch %-2s  %s | %s | %s\n' "$1" "$batch" \
      "$(grep answered "$dir/lg.out" | sed 's/ *answered *//')" \
      "$(grep latency "$dir/lg.out" | sed 's/ *latency us *//')" \
      "$(grep outcomes "$dir/lg.out" | sed 's/ *outcomes *//')"
  done
  kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true
}

for run in $(seq 1 "$runs"); do
  rm -rf "$dir/data"
  campaign fsync "$dir/data/fsync" "" > "$dir/fsync.ini"
  campaign replicated "$dir/data/replicated" "$cluster" > "$dir/replicated.ini"
  echo "== run $run"
  measure "rush, fsync" "$dir/fsync.ini"
  measure "rush, replicated" "$dir/replicated.ini"
done
