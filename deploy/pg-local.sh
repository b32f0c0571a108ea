#!/usr/bin/env bash
# A throwaway local PostgreSQL for deploy/run-local.sh --postgres.
#
#   deploy/pg-local.sh start DIR PORT   initdb into DIR (fresh), start the server in the
#                                      background on 127.0.0.1:PORT, print its pid
#   deploy/pg-local.sh count DIR PORT   rows in table campaigns
#
# Loopback only, trust authentication (a local demo: nothing else can reach
# it), socket in DIR. PostgreSQL refuses to run as root, so under root the
# server runs as `nobody` (setpriv execs, so the printed pid is the server's).
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/postgres" ] || { echo "pg-local: no PostgreSQL server (apt-get install postgresql)" >&2; exit 69; }
cmd=${1:-} dir=${2:-} port=${3:-}
[ -n "$dir" ] && [ -n "$port" ] || { sed -n '4,6p' "$0" >&2; exit 64; }

as_server_user=()
[ "$(id -u)" -eq 0 ] && as_server_user=(setpriv --reuid nobody --regid "$(id -g nobody)" --clear-groups --)

case "$cmd" in
  start)
    rm -rf "$dir" && mkdir -p "$dir" && chmod 700 "$dir"
    [ "$(id -u)" -eq 0 ] && chown nobody: "$dir"
    "${as_server_user[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log"
    "${as_server_user[@]}" "$bindir/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
      >"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do "$bindir/pg_isready" -q -h "$dir" -p "$port" -U postgres && break; sleep 0.1; done
    "$bindir/pg_isready" -q -h "$dir" -p "$port" -U postgres || { echo "pg-local: server did not start, see $dir/server.log" >&2; exit 69; }
    echo "$pid"
    ;;
  count)
    "$bindir/psql" -X -h "$dir" -p "$port" -U postgres -d postgres -Atc "SELECT count(*) FROM campaigns"
    ;;
  *) sed -n '4,6p' "$0" >&2; exit 64 ;;
esac
