#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds with warnings as errors,
# runs every test, then runs them again under address+undefined and thread sanitizers, then runs
# the fuzz targets for a bounded time. Usage: scripts/test.sh [--quick] (--quick: no sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/install-deps.sh

build() { # build DIR [cmake args...]
    local dir=$1
    shift
    cmake -S . -B "$dir" -DRUSH_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

run_tests() { # run_tests DIR [ctest args...]
    local dir=$1
    shift
    (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@")
}

echo "== formatting (clang-format, .clang-format)"
git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run --Werror

echo "== release build and tests"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_tests build

if [ "${1:-}" = "--quick" ]; then
    exit 0
fi

echo "== address+undefined sanitizer build and tests"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DRUSH_SANITIZE=address
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 RUSH_TEST_SCALE=4 \
    run_tests build-asan

# Criterion cannot start under TSan (its inheritable arena clashes with TSan's memory layout,
# Criterion issue 274), so this stage runs the plain concurrency programs, labelled "stress".
echo "== thread sanitizer build and concurrency tests"
build build-tsan -DCMAKE_BUILD_TYPE=Debug -DRUSH_SANITIZE=thread
TSAN_OPTIONS=halt_on_error=1 RUSH_TEST_SCALE=4 run_tests build-tsan -L stress

if [ -x scripts/fuzz.sh ]; then
    echo "== fuzz targets (bounded)"
    bash scripts/fuzz.sh 30
fi
echo "== all test suites passed"
