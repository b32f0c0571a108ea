#!/bin/sh
# Bench: "adsync-enqueue sync --all" for 10,000 registered clients must take
# under 2 s (one pipelined EVALSHA per client). Starts its own redis-server
# on a free loopback port, registers the clients with redis-cli --pipe,
# times the enqueue, checks that exactly one job per client was queued,
# prints the figure and PASS/FAIL, and cleans up.
#
#   tests/bench/enqueue.sh [path/to/adsync-enqueue]     (default: $ADSYNC_BIN_DIR or build/bin)
#   CLIENTS=20000 LIMIT_MS=2000 tests/bench/enqueue.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${ADSYNC_BIN_DIR:-$here/../../build/bin}/adsync-enqueue}
clients=${CLIENTS:-10000}
limit_ms=${LIMIT_MS:-2000}
[ -x "$bin" ] || { echo "bench: $bin is not built" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/adsync-bench.XXXXXX")
redis_pid=
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --dir "$dir" --loglevel warning >"$dir/redis.log" 2>&1 &
redis_pid=$!
i=0
until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || { echo "bench: redis-server did not start" >&2; exit 2; }
    sleep 0.05
done

ms_now() { date +%s%3N; }

# Register the clients the fast way: one pipelined stream of inline commands.
awk -v n="$clients" 'BEGIN {
    for (i = 1; i <= n; i++) {
        printf "SADD adsync:clients client_%d\r\n", i
        printf "HSET adsync:client:client_%d email client_%d@bench.test password secret-client_%d\r\n", i, i, i
    }
}' | redis-cli -p "$port" --pipe >"$dir/pipe.log"
registered=$(redis-cli -p "$port" scard adsync:clients)

export REDIS_URL="redis://127.0.0.1:$port/0" ADSYNC_LOG_FORMAT=text
start=$(ms_now)
"$bin" sync --all >"$dir/out" 2>"$dir/err" || { echo "bench: enqueue failed:" >&2; cat "$dir/err" >&2; exit 1; }
elapsed=$(( $(ms_now) - start ))

start=$(ms_now)
"$bin" sync --all >"$dir/out2" 2>>"$dir/err"
elapsed_skip=$(( $(ms_now) - start ))

jobs=$(redis-cli -p "$port" llen adsync:jobs)
queued=$(grep -c ': queued run ' "$dir/out" || true)
skipped=$(grep -c ': skipped: run ' "$dir/out2" || true)

echo "registered clients:        $registered"
echo "sync --all (queue all):    $elapsed ms ($queued queued, $jobs jobs in the list)"
echo "sync --all (all skipped):  $elapsed_skip ms ($skipped skipped)"
if [ "$jobs" -eq "$clients" ] && [ "$queued" -eq "$clients" ] && [ "$skipped" -eq "$clients" ] &&
   [ "$elapsed" -lt "$limit_ms" ]; then
    echo "PASS: $clients clients enqueued in $elapsed ms (limit $limit_ms ms)"
else
    echo "FAIL: $clients clients enqueued in $elapsed ms (limit $limit_ms ms), $jobs jobs"
    exit 1
fi
