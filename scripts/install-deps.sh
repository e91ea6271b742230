#!/usr/bin/env bash
# Installs the Debian 12 packages rush builds and tests with. Idempotent: it asks apt only for
# what dpkg does not already list as installed. Runs apt-get as root, through sudo otherwise,
# and prints the exact command when it can do neither.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    liburing-dev libjemalloc-dev libxxhash-dev libnanomsg-dev
    libinih-dev libjansson-dev
    libmicrohttpd-dev # engine/ops: rushd's HTTP console
    prometheus chromium # tests/system/test_console.c: promtool, a real Prometheus, headless Chromium
    nats-server libnats-dev # engine/cluster: the replicated log, leases and the JetStream sink
    curl # bench/nats_cluster.sh: a nats-server is ready when its /healthz answers
    librdkafka-dev kcat # engine/relay: confirmed orders on Kafka (librdkafka's mock cluster in tests)
    libcriterion-dev
    redis-server redis-tools libhiredis-dev jq # bench/side_by_side.sh (starts its own redis)
    nanomsg-utils nng-utils
    clang libclang-rt-14-dev clang-format python3
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run=(sudo)
else
    echo "install-deps: not root and no password-less sudo; run this as root:" >&2
    echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
