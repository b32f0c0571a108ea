#!/bin/sh
# Bench: does adding workers add throughput? Runs the same sync with 1, 2
# and 4 adsync-worker processes, each held to the same small per-worker
# concurrency (ADSYNC_MAX_JOBS client jobs x ADSYNC_CLIENT_CONCURRENCY
# requests), against adsync-mock-api with 100 ms sync latency, no faults and
# no rate limit. Prints campaigns/s for each and the ratio to 1 worker.
# Goal: >= 1.8x at 2 workers and >= 3.2x at 4 while the machine has a core
# per worker; below that the workers, the mock and Redis share the cores and
# the figure says so instead of failing.
#
#   tests/bench/scale.sh [bin dir]       (default: $ADSYNC_BIN_DIR or build/bin;
#                                          use a release build, not the sanitizer one)
#   CLIENTS=32 CAMPAIGNS=40 MAX_JOBS=2 CLIENT_CONCURRENCY=4 tests/bench/scale.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${ADSYNC_BIN_DIR:-$here/../../build/bin}}
clients=${CLIENTS:-32}
campaigns=${CAMPAIGNS:-40}
max_jobs=${MAX_JOBS:-2}
client_conc=${CLIENT_CONCURRENCY:-4}
latency_ms=${SYNC_LATENCY_MS:-100}
per_worker=$((max_jobs * client_conc))
total=$((clients * campaigns))
for p in adsync-worker adsync-enqueue adsync-mock-api; do
    [ -x "$bin/$p" ] || { echo "bench: $bin/$p is not built" >&2; exit 2; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/adsync-scale.XXXXXX")
redis_pid= mock_pid= worker_pids=
stop_workers() {
    for p in $worker_pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $worker_pids; do wait "$p" 2>/dev/null || true; done
    worker_pids=
}
cleanup() {
    stop_workers
    for p in $mock_pid $redis_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ms_now() { date +%s%3N; }
until_ok() {   # until_ok WHAT COMMAND...: retry for up to 10 s
    what=$1; shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 200 ] || { echo "bench: $what did not start" >&2; exit 2; }
        sleep 0.05
    done
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --dir "$dir" --loglevel warning >"$dir/redis.log" 2>&1 &
redis_pid=$!
until_ok redis-server redis-cli -p "$redis_port" ping
rcli() { redis-cli -p "$redis_port" "$@"; }

mock_port=$(free_port)
"$bin/adsync-mock-api" --port "$mock_port" --clients "$clients" --campaigns "$campaigns" \
    --sync-latency-ms "$latency_ms" --rate-limit 0 --fail-every 0 --hang-every 0 \
    --max-connections 4096 >"$dir/mock.log" 2>&1 &
mock_pid=$!
until_ok adsync-mock-api curl -sf "http://127.0.0.1:$mock_port/health"

export REDIS_URL="redis://127.0.0.1:$redis_port/0" AD_PLATFORM_URL="http://127.0.0.1:$mock_port"
export ADSYNC_RATE_LIMIT=0 ADSYNC_LOG_FORMAT=json ADSYNC_LOG_LEVEL=warn
export ADSYNC_MAX_JOBS=$max_jobs ADSYNC_CLIENT_CONCURRENCY=$client_conc ADSYNC_CONCURRENCY=$per_worker

# One measured run: N workers already up and registered, then the enqueue;
# the clock stops when Redis has every campaign stored.
run() {
    n=$1
    rcli flushall >/dev/null
    i=1
    while [ "$i" -le "$clients" ]; do
        printf 'SADD adsync:clients client_%d\r\nHSET adsync:client:client_%d email client_%d@example.test password secret-client_%d\r\n' \
            "$i" "$i" "$i" "$i"
        i=$((i + 1))
    done | rcli --pipe >/dev/null
    i=1
    while [ "$i" -le "$n" ]; do
        "$bin/adsync-worker" --id "bench-$n-$i" 2>>"$dir/worker.log" &
        worker_pids="$worker_pids $!"
        i=$((i + 1))
    done
    until_ok "$n workers" sh -c "[ \"\$(redis-cli -p $redis_port scard adsync:workers)\" -eq $n ]"
    start=$(ms_now)
    "$bin/adsync-enqueue" sync --all >/dev/null
    while :; do
        done_n=$(rcli hget adsync:stats campaigns_synced)
        [ "${done_n:-0}" -ge "$total" ] && break
        sleep 0.02
    done
    elapsed=$(( $(ms_now) - start ))
    stop_workers
    echo "$elapsed"
}

cores=$(nproc)
echo "scale bench: $clients clients x $campaigns campaigns = $total syncs, ${latency_ms} ms each;"
echo "  per worker: $max_jobs client jobs x $client_conc = $per_worker requests in flight; $cores cores"
base=
fail=0
for n in 1 2 4; do
    ms=$(run "$n")
    rate=$(awk -v t="$total" -v ms="$ms" 'BEGIN { printf "%.1f", t * 1000 / ms }')
    [ -n "$base" ] || base=$rate
    ratio=$(awk -v r="$rate" -v b="$base" 'BEGIN { printf "%.2f", r / b }')
    ideal=$(awk -v n="$n" -v l="$latency_ms" -v p="$per_worker" 'BEGIN { printf "%.0f", n * p * 1000 / l }')
    goal=$(case $n in 1) echo 1.0 ;; 2) echo 1.8 ;; 4) echo 3.2 ;; esac)
    verdict=ok
    if awk -v r="$ratio" -v g="$goal" 'BEGIN { exit !(r < g) }'; then
        if [ "$cores" -ge "$n" ]; then verdict="BELOW GOAL"; fail=1
        else verdict="below goal: $n workers + mock + redis on $cores cores"; fi
    fi
    printf '  %d worker(s): %6d ms  %7s campaigns/s  (ideal %s)  x%s  goal x%s  %s\n' \
        "$n" "$ms" "$rate" "$ideal" "$ratio" "$goal" "$verdict"
done
exit "$fail"
