#!/usr/bin/env bash
# Worker throughput benchmark against the floor program (tests/bench/floor.c,
# built here only): release build in build-bench/, then
# tests/bench/worker_bench.py (prints a table, writes build-bench/bench-worker.json).
# The worker of a baseline commit runs beside it for the Redis figures
# "before" (default dd81ce3, the code when the performance issue was filed;
# ADSYNC_BENCH_BASELINE=none skips it; needs the git history).
#   tests/bench/worker.sh [ROUNDS]   (default 5: medians, the box is noisy)
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
cc -O2 -Wall -Wextra -Werror -std=gnu11 tests/bench/floor.c \
  $(pkg-config --cflags --libs libuv libcurl hiredis libcjson) -o build-bench/floor

baseline=${ADSYNC_BENCH_BASELINE:-dd81ce3}
if [ "$baseline" != none ]; then
  src=build-bench/baseline-src
  if [ "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$baseline^{commit}")" ]; then
    rm -rf "$src"
    git worktree prune
    git worktree add --detach "$src" "$baseline" >/dev/null
  fi
  cmake -S "$src" -B build-bench/baseline -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
  cmake --build build-bench/baseline -j"$(nproc)" --target adsync-worker >/dev/null
  # that worker beside today's enqueue and mock: only the worker is compared
  mkdir -p build-bench/baseline-bin
  cp build-bench/baseline/bin/adsync-worker build-bench/baseline-bin/
  ln -sf "$PWD/build-bench/bin/adsync-enqueue" "$PWD/build-bench/bin/adsync-mock-api" build-bench/baseline-bin/
  export ADSYNC_BASELINE_BIN_DIR="$PWD/build-bench/baseline-bin"
fi

ulimit -n 65536 2>/dev/null || true
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 tests/bench/worker_bench.py build-bench/bench-worker.json \
  build-bench/floor "${1:-5}"
