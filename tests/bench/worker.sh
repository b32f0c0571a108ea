#!/usr/bin/env bash
# Worker throughput benchmark against the floor program (tests/bench/floor.c,
# built here only): release build in build-bench/, then
# tests/bench/worker_bench.py (prints a table, writes build-bench/bench-worker.json).
#   tests/bench/worker.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
cc -O2 -Wall -Wextra -Werror -std=gnu11 tests/bench/floor.c \
  $(pkg-config --cflags --libs libuv libcurl hiredis libcjson) -o build-bench/floor
ulimit -n 65536 2>/dev/null || true
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 tests/bench/worker_bench.py build-bench/bench-worker.json \
  build-bench/floor "${1:-3}"
