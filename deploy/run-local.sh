#!/usr/bin/env bash
# The one command that runs adsync locally: installs what is missing, builds,
# starts Redis (AOF, data under .run/, one ACL user per role from
# deploy/redis-users.acl), the mock ad platform with a few clients (fast,
# faults on), two workers, registers every client with its password sealed
# (a local key in .run/secret.key, made on the first run), syncs them all,
# shows progress and a summary, then stops what it started. The web console
# runs alongside (its URL is printed; --keep keeps it up too).
#
#   deploy/run-local.sh [--keep] [--postgres] [--clients N] [--campaigns M] [--workers W]
#
#   --keep      leave Redis, the mock and the workers running afterwards
#               (stop them with: deploy/run-local.sh --stop)
#   --postgres  also start a local PostgreSQL (deploy/pg-local.sh), turn the
#               sink on (ADSYNC_PG_URL) and show the row count at the end
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/.run"

keep=0 clients=3 campaigns=60 workers=2 postgres=0
stop_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --postgres) postgres=1 ;;
    --stop) stop_only=1 ;;
    --clients) clients=$2; shift ;;
    --campaigns) campaigns=$2; shift ;;
    --workers) workers=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run-local: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
  shift
done

stop_all() {
  [ -f "$run/pids" ] || return 0
  # Workers first (SIGTERM: they hand their jobs back), then the rest.
  while read -r name pid; do
    case "$name" in worker*) kill -TERM "$pid" 2>/dev/null || true ;; esac
  done < "$run/pids"
  sleep 1
  while read -r name pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$run/pids"
  rm -f "$run/pids"
}

stop_all
[ "$stop_only" -eq 1 ] && { echo "run-local: stopped"; exit 0; }

deploy/install-deps.sh build runtime $([ "$postgres" -eq 1 ] && echo postgres)
echo "run-local: building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADSYNC_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin="$root/build/bin"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }

mkdir -p "$run/logs"
rm -rf "$run/redis" && mkdir -p "$run/redis"   # every local run starts from a clean slate
: > "$run/pids"
[ "$keep" -eq 1 ] || trap stop_all EXIT

redis_port=$(pick_port 16379)
mock_port=$(pick_port 13001)

# Least-privilege users (deploy/redis-users.acl) with fresh passwords, and a
# sealing key for the clients' credentials, made on the first run and kept.
deploy/redis-users.sh "$run/acl"
password_of() { awk -v u="$1" '$1 == u { print $2 }' "$run/acl/redis-passwords"; }
[ -f "$run/secret.key" ] || "$bin/adsync-enqueue" secrets keygen "$run/secret.key" >/dev/null
export ADSYNC_SECRET_KEY_FILE="$run/secret.key"
inspect() { REDISCLI_AUTH=$(password_of adsync-inspector) redis-cli -p "$redis_port" --user adsync-inspector "$@"; }

redis-server "$root/deploy/redis.conf" --port "$redis_port" --dir "$run/redis" \
  --aclfile "$run/acl/redis-users.acl" --daemonize no --logfile "$run/logs/redis.log" &
echo "redis $!" >> "$run/pids"
for _ in $(seq 100); do inspect ping >/dev/null 2>&1 && break; sleep 0.1; done

"$bin/adsync-mock-api" --port "$mock_port" --clients "$clients" --campaigns "$campaigns" \
  --sync-latency-ms 50 --list-latency-ms 20 --rate-limit 0 --fail-every 5 --hang-every 10 \
  --error-rate 0.05 > "$run/logs/mock.log" 2>&1 &
echo "mock $!" >> "$run/pids"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$mock_port/health" >/dev/null && break; sleep 0.1; done

url_for() { echo "redis://$1:$(password_of "$1")@127.0.0.1:$redis_port/0"; }
export REDIS_URL=$(url_for adsync-enqueue)   # the workers get theirs below
export AD_PLATFORM_URL="http://127.0.0.1:$mock_port"
export ADSYNC_HTTP_TIMEOUT_MS=2000 ADSYNC_BACKOFF_BASE_MS=200 ADSYNC_BACKOFF_MAX_MS=5000
export ADSYNC_RATE_LIMIT=0 ADSYNC_LEASE_MS=10000 ADSYNC_LOG_FORMAT=json

if [ "$postgres" -eq 1 ]; then   # under root the server runs as nobody: keep its files where nobody can reach
  pg_port=$(pick_port 15432) pg_dir="$run/pg"
  [ "$(id -u)" -eq 0 ] && pg_dir=/tmp/adsync-run-local-pg
  echo "postgres $(deploy/pg-local.sh start "$pg_dir" "$pg_port")" >> "$run/pids"
  export ADSYNC_PG_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
  "$bin/adsync-enqueue" db migrate
fi

echo "run-local: redis on $redis_port, mock API on $mock_port, $workers workers, logs in .run/logs/"
for i in $(seq "$clients"); do
  printf 'secret-client_%s\n' "$i" |
    "$bin/adsync-enqueue" client add "client_$i" --email "client_$i@example.test" >/dev/null
done

for i in $(seq "$workers"); do
  REDIS_URL=$(url_for adsync-worker) "$bin/adsync-worker" --id "local-$i" 2> "$run/logs/worker-$i.log" &
  echo "worker-$i $!" >> "$run/pids"
done

console_port=$(pick_port 18080)
REDIS_URL=$(url_for adsync-console) "$bin/adsync-enqueue" web --listen "127.0.0.1:$console_port" \
  > "$run/logs/console.log" 2>&1 &
echo "console $!" >> "$run/pids"
echo "run-local: web console on http://127.0.0.1:$console_port/"

set +e
"$bin/adsync-enqueue" sync --all --wait
rc=$?
set -e

echo
echo "== summary =="
"$bin/adsync-enqueue" status
for i in $(seq "$clients"); do
  printf 'client_%s: %s campaigns stored in Redis\n' "$i" \
    "$(inspect hlen "adsync:client:client_$i:campaigns")"
done
"$bin/adsync-enqueue" dead list
if [ "$postgres" -eq 1 ]; then
  for _ in $(seq 100); do [ "$(inspect llen adsync:outbox)" = 0 ] && break; sleep 0.1; done
  echo "postgres: $(deploy/pg-local.sh count "$pg_dir" "$pg_port") rows in table campaigns" \
    "($(inspect llen adsync:outbox) results still in the outbox)"
fi
if [ "$keep" -eq 1 ]; then
  echo "run-local: still running, the console on http://127.0.0.1:$console_port/;" \
    "Redis users and passwords in .run/acl/redis-passwords" \
    "(REDIS_URL=redis://adsync-enqueue:...@127.0.0.1:$redis_port/0), sealing key .run/secret.key;" \
    "stop with deploy/run-local.sh --stop"
fi
exit "$rc"
