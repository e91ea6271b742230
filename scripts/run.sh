#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs a Double-11 demo rush through the
# engine on its built-in campaign, with the write-ahead log in ./data/demo, then checks the books.
# Extra arguments go to rush-demo (--buyers N, --config FILE, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
exec ./build/bin/rush-demo "$@"
