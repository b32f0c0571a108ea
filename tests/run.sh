#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds
# everything with AddressSanitizer + UBSan in build-test/, runs ctest.
# Unit tests are cmocka; integration tests start their own redis-server,
# adsync-mock-api and workers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh test

# The out-of-memory test (it_oom) preloads a malloc shim, which cannot sit
# under AddressSanitizer's allocator: it runs the programs of a plain build.
plain=build-plain
cmake -S . -B "$plain" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$plain" -j"$(nproc)" --target adsync-worker adsync-enqueue adsync-mock-api failalloc

build=build-test
cmake -S . -B "$build" -DADSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DADSYNC_PLAIN_BIN_DIR="$PWD/$plain/bin" >/dev/null
cmake --build "$build" -j"$(nproc)"

# The libFuzzer targets, a few seconds each, so they keep compiling and
# their seed corpus (regression inputs included) keeps passing.
bash tests/fuzz.sh "${ADSYNC_FUZZ_SECONDS:-5}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure "$@"
