#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs a Double-11 midnight rush the way an
# operator would:
#   1. starts rushd on its built-in campaign, with a fresh local data directory (data/run);
#   2. starts `rushctl tail` on the confirmed-order stream, from now, into data/run/confirmed.jsonl;
#   3. runs rush-loadgen's midnight scenario (a million distinct buyers on 5 hot SKUs of 1000 units
#      each) with --verify: the run is checked end to end against the stream;
#   4. stops rushd cleanly (SIGTERM: in-flight requests answered, log closed, exit 0) and shows
#      that the tail wrote every confirmed order exactly once.
# Exits non-zero if any step fails or any check finds a violation.
# Extra arguments go to rush-loadgen (e.g. --buyers 200000, --scenario groups, --batch 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

data=data/run
bin=build/bin
rm -rf "$data"
mkdir -p "$data"
rushd_pid=""
tail_pid=""
cleanup() {
    [ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null || true
    [ -n "$rushd_pid" ] && kill "$rushd_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== rushd: built-in Double-11 campaign, log and admin token in $data"
"$bin/rushd" --data-dir "$data" --log-level warn 2>"$data/rushd.log" &
rushd_pid=$!
for _ in $(seq 300); do # rushd is ready once it has written the admin token
    [ -s "$data/admin.token" ] && break
    kill -0 "$rushd_pid" 2>/dev/null || { cat "$data/rushd.log" >&2; exit 1; }
    sleep 0.1
done
[ -s "$data/admin.token" ] || { echo "rushd did not come up" >&2; exit 1; }

echo "== rushctl tail: the confirmed-order stream, from now, into $data/confirmed.jsonl"
"$bin/rushctl" tail --from-now --cursor "$data/tail.cursor" --out "$data/confirmed.jsonl" \
    --idle-exit 3000 2>"$data/tail.log" &
tail_pid=$!
sleep 0.5

echo "== rush-loadgen: the midnight rush, verified against the stream"
status=0
"$bin/rush-loadgen" --admin-token-file "$data/admin.token" --buyers 1000000 --verify \
    --report "$data/report.json" "$@" || status=$?

echo "== stopping rushd (SIGTERM)"
kill -TERM "$rushd_pid"
rushd_status=0
wait "$rushd_pid" || rushd_status=$?
rushd_pid=""
wait "$tail_pid" || true
tail_pid=""
echo "rushd exited with status $rushd_status"

confirmed=$(grep -c '"type":"order_confirmed"' "$data/confirmed.jsonl" || true)
unique=$(grep -o '"order":"[0-9]*"' "$data/confirmed.jsonl" | sort -u | wc -l || true)
echo "rushctl tail wrote $confirmed order_confirmed events ($unique distinct orders)"
echo "report: $data/report.json; stream: $data/confirmed.jsonl; log: $data/rushd.log"
if [ "$status" -ne 0 ] || [ "$rushd_status" -ne 0 ] || [ "$confirmed" -ne "$unique" ]; then
    echo "run: FAILED (rush-loadgen $status, rushd $rushd_status)" >&2
    exit 1
fi
echo "run: ok"
