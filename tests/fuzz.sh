#!/usr/bin/env bash
# Fuzzes the parsers that read outside input with libFuzzer (clang,
# -fsanitize=fuzzer,address,undefined): the job codec, the platform's
# answers, the configuration's URLs and the mock's request routing. Each
# target runs SECONDS (default 60) from its seed corpus in
# tests/fuzz/corpus/<target>/; new inputs go to build-fuzz/corpus/, a crash
# to build-fuzz/ (copy it into the seed corpus once fixed: it stays a
# regression input). tests/run.sh runs this for a few seconds per target.
#   tests/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DADSYNC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
failed=0
for t in job api cfg mock; do
  mkdir -p "build-fuzz/corpus/$t"
  if build-fuzz/bin/fuzz_$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="build-fuzz/crash-$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
       > "build-fuzz/fuzz_$t.log" 2>&1; then
    echo "fuzz $t: ok, $(grep -o 'Done [0-9]* runs' "build-fuzz/fuzz_$t.log" | grep -o '[0-9]*' || echo '?') runs in ${seconds}s"
  else
    echo "fuzz $t: FAILED, see build-fuzz/fuzz_$t.log"; tail -30 "build-fuzz/fuzz_$t.log"; failed=1
  fi
done
exit "$failed"
