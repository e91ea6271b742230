#!/usr/bin/env bash
# relay_drain.sh — how fast rush-relay drains a backlog of confirmed orders into Kafka (the mock
# cluster, build/tests/kafka-mock) and JetStream, read from each of its two sources:
#   log      the cluster's replicated log on JetStream (--cluster-nats, --cluster-stream)
#   stream   the node's own stream (--pub, --replay: librush's subscriber)
#
# Starts three nats-servers with JetStream in one cluster (loopback, a fresh temporary directory)
# and one rushd as the only node of a [cluster] on them (durability replicated, 2 shards); puts a
# backlog in with rush-loadgen's midnight scenario (every click an order: one order_confirmed
# event each); then runs rush-relay --idle-exit 1000 once per source, each into a fresh Kafka
# topic and JetStream stream, and once more on the log into the sinks that already hold it all
# (what a restart of the log source costs: the whole log read and counted, nothing published),
# and prints the relay's own last line (events read, busy seconds), the rate, and the wall time
# from start to idle. Everything, the servers included, runs on the same cores.
#
# Usage: bench/relay_drain.sh [--build DIR] [--seconds S]   (S: how long the load runs, 4)
set -euo pipefail

build=build
seconds=4
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--seconds S]" >&2; exit 2 ;;
  esac
done
bin=$(cd "$build/bin" && pwd)
mock="$bin/../tests/kafka-mock"
[ -x "$mock" ] || { echo "build the kafka-mock target first" >&2; exit 2; }
# shellcheck source=bench/nats_cluster.sh
. "$(dirname "$0")/nats_cluster.sh"
nats_bench_dir relay
nats_cluster_start "$dir" relay
urls=$nats_urls

orders=$(free_port); admin=$(free_port); pub=$(free_port); replay=$(free_port)
token=bench-relay-token-0123456789
cat > "$dir/campaign.ini" << EOF
[engine]
shards = 2
orders_max = 4194304
keys_max = 4194304
user_limits_max = 4194304
durability = replicated
data_dir = $dir/data

[endpoints]
orders = tcp://127.0.0.1:$orders
json = tcp://127.0.0.1:$(free_port)
admin = tcp://127.0.0.1:$admin
publisher = tcp://127.0.0.1:$pub
replay = tcp://127.0.0.1:$replay
http =
admin_token = $token

[cluster]
node = solo
nodes = solo=tcp://127.0.0.1:$orders
nats = $urls
stream = drain
EOF
"$bin/rushd" --config "$dir/campaign.ini" > "$dir/rushd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "serving:" "$dir/rushd.log" && break; sleep 0.1; done
grep -q "serving:" "$dir/rushd.log" || { echo "rushd did not start:" >&2; tail -3 "$dir/rushd.log" >&2; exit 1; }
"$bin/rush-loadgen" --url "tcp://127.0.0.1:$orders" --admin-url "tcp://127.0.0.1:$admin" \
  --admin-token "$token" --stock 10000000 --skus 4 --batch 64 --duration "$seconds" \
  --connections 4 --inflight 8 --quiet > "$dir/lg.out" 2>&1 || true
echo "backlog: $(grep answered "$dir/lg.out" | sed 's/ *answered *//')"

"$mock" rush.drain 2 > "$dir/mock.out" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/mock.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$dir/mock.out")

# log, stream: each into fresh sinks. resume: the log source again into the log's sinks, which
# hold everything: the whole log is read and counted, nothing is published (a restart's cost).
for source in log stream resume; do
  sinks=$source
  case $source in
    log | resume) from=(--cluster-nats "$urls" --cluster-stream drain --shards 2); sinks=log ;;
    stream) from=(--pub "tcp://127.0.0.1:$pub" --replay "tcp://127.0.0.1:$replay") ;;
  esac
  start=$(date +%s.%N)
  "$bin/rush-relay" "${from[@]}" --kafka "$bootstrap" --topic "rush.drain.$sinks" \
    --nats "$urls" --js-stream "DRAIN_$sinks" --js-subject "drain.$sinks" \
    --idle-exit 1000 --log-level warn > "$dir/relay-$source.log" 2>&1 || true
  wall=$(echo "$(date +%s.%N) - $start - 1" | bc) # less the idle second before the exit
  line=$(grep "events read in" "$dir/relay-$source.log" || echo "rush-relay failed: $(tail -1 "$dir/relay-$source.log")")
  rate=$(echo "$line" | awk '{ if ($6 > 0) printf "%.0f", $2 / $6 }')
  printf '%-7s %s  => %s events/s; %.1f s from start to idle\n' "$source" "$line" "${rate:-0}" "$wall"
done
