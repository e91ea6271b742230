#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_<name>.c) in build-fuzz with clang and
# address+undefined sanitizers, then runs each for SECONDS seconds, starting from a working
# copy of its seed corpus tests/fuzz/corpus/<name>/ (the committed seeds are never modified).
# Fails on the first crash, leak, sanitizer report or timeout; the reproducer is left in
# build-fuzz/artifacts/<name>/. Usage: scripts/fuzz.sh [SECONDS] (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS]" >&2
    exit 2
fi
jobs=$(nproc)
dir=build-fuzz

cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRUSH_FUZZ=ON -DRUSH_SANITIZE=address -DRUSH_WERROR=ON >/dev/null
mapfile -t sources < <(ls tests/fuzz/fuzz_*.c 2>/dev/null)
if [ "${#sources[@]}" -eq 0 ]; then
    echo "no fuzz targets in tests/fuzz/" >&2
    exit 1
fi
targets=()
for source in "${sources[@]}"; do
    targets+=("$(basename "$source" .c)")
done
cmake --build "$dir" -j "$jobs" --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for target in "${targets[@]}"; do
    name=${target#fuzz_}
    corpus=$dir/corpus/$name
    artifacts=$dir/artifacts/$name
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    if [ -d "tests/fuzz/corpus/$name" ]; then
        seeds=("tests/fuzz/corpus/$name")
    fi
    echo "== $target for ${seconds}s"
    if ! "$dir/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$corpus" "${seeds[@]}" 2>"$dir/$target.log"; then
        tail -60 "$dir/$target.log"
        echo "== $target FAILED: reproducer in $artifacts/, log in $dir/$target.log" >&2
        failed=1
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' \
            "$dir/$target.log" || true
        echo "== $target passed"
    fi
done
exit "$failed"
