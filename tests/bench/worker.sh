#!/usr/bin/env bash
# Worker throughput benchmark: release build in build-bench/, then
# tests/bench/worker_bench.py (prints a table, writes build-bench/bench-worker.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
ulimit -n 65536 2>/dev/null || true
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 tests/bench/worker_bench.py build-bench/bench-worker.json
