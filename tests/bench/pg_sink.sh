#!/usr/bin/env bash
# PostgreSQL sink benchmark: release build in build-bench/, then
# tests/bench/pg_sink_bench.py (prints a table, writes build-bench/bench-pg-sink.json).
# Does the sink keep up? With the platform at 0 latency, one worker's
# campaigns/s with the sink on must be >= 80 % of the rate with it off, and
# the outbox must be empty (every row in PostgreSQL) within 1 s of the last sync.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
ulimit -n 65536 2>/dev/null || true
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 tests/bench/pg_sink_bench.py build-bench/bench-pg-sink.json
