#!/usr/bin/env bash
# Rate-limit benchmark at the real platform's settings (takes ~11 minutes):
# release build in build-bench/, then tests/bench/ratelimit_bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh test
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DADSYNC_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
ADSYNC_BIN_DIR="$PWD/build-bench/bin" exec python3 -u tests/bench/ratelimit_bench.py build-bench/bench-ratelimit.json
