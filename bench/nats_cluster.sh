# shellcheck shell=bash
# nats_cluster.sh — sourced by the bench scripts that need a JetStream cluster (replicated.sh,
# relay_drain.sh, side_by_side.sh --replicated): three nats-servers with JetStream in one cluster
# on loopback.
#
#   nats_cluster_start DIR NAME
#     writes DIR/n<i>.conf (cluster NAME, stores in DIR/js<i>), starts the three servers (logs in
#     DIR/n<i>.log), appends their pids to the caller's nats_pids array (the caller stops them),
#     waits until each answers /healthz (30 s at most; else it prints the log's tail and returns
#     1), and leaves their client URLs, comma-separated, in nats_urls.
#
#   nats_bench_dir TAG (replicated.sh, relay_drain.sh)
#     exits 77 when nats-server is not installed; else makes the run's directory
#     /tmp/rush-bench-TAG-XXXXXX (in dir; removed at exit unless KEEP is set) and a trap that
#     kills every pid in pids and nats_pids at exit.
#
# Ports come from the caller's free_port when it has one.

declare -F free_port > /dev/null ||
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nats_cluster_start() {
  local dir=$1 name=$2 i j routes ready
  local -a port cport hport
  nats_urls=
  mkdir -p "$dir"
  for i in 0 1 2; do port[i]=$(free_port); cport[i]=$(free_port); hport[i]=$(free_port); done
  for i in 0 1 2; do
    nats_urls="${nats_urls:+$nats_urls,}nats://127.0.0.1:${port[i]}"
    routes=
    for j in 0 1 2; do
      [ "$j" = "$i" ] || routes="${routes:+$routes, }nats-route://127.0.0.1:${cport[j]}"
    done
    cat > "$dir/n$i.conf" << EOF
server_name: n$i
listen: 127.0.0.1:${port[i]}
http: 127.0.0.1:${hport[i]}
jetstream { store_dir: "$dir/js$i" }
cluster { name: $name, listen: 127.0.0.1:${cport[i]}, routes: [$routes] }
EOF
    nats-server -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    nats_pids+=($!)
  done
  for i in 0 1 2; do
    ready=no
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:${hport[i]}/healthz" > /dev/null 2>&1 && { ready=yes; break; }
      sleep 0.1
    done
    if [ $ready != yes ]; then
      echo "nats-server $i did not start; its log:" >&2
      tail -5 "$dir/n$i.log" >&2
      return 1
    fi
  done
}

nats_bench_dir() {
  command -v nats-server > /dev/null || { echo "nats-server is not installed" >&2; exit 77; }
  dir=$(mktemp -d "/tmp/rush-bench-$1-XXXXXX")
  echo "# in $dir"
  pids=() nats_pids=()
  trap nats_bench_cleanup EXIT
}

nats_bench_cleanup() {
  for pid in "${pids[@]}" "${nats_pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
