#!/usr/bin/env bash
# Fleet benchmark (issue: thousands of clients at the real rate limit):
# 1,000 clients x 20 campaigns on the mock at the real platform's rules with
# time compressed tenfold (10 requests per 6 s window per client, 200 ms
# syncs, 503 on every 5th list call, a hang every 500th), 2 workers at their
# default settings. Release build in build-bench/, then
# tests/bench/fleet_bench.py. Usage: tests/bench/fleet.sh [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 -u tests/bench/fleet_bench.py "${1:-1000}" build-bench/bench-fleet.json
